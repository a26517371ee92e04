//! End-to-end tests of the runc-compatible verbs: the real `minc` binary, a busybox bundle
//! and the real kernel. Each test runs in its own sandbox (network, mount and PID
//! namespaces; see `minc_tests::sandbox`) with its own `--root`.

use std::path::Path;
use std::process::{Command, Stdio};

use minc_tests::{mounts_under, stderr, stdout, stray_processes, Bundle};
use serde_json::{json, Value};

const MINC: &str = env!("CARGO_BIN_EXE_minc");

fn bundle(script: &str) -> Bundle {
    Bundle::new(MINC, script)
}

#[test]
fn run_returns_exit_code_and_output() {
    minc_tests::sandbox!();
    let b = bundle("echo out; echo err >&2; exit 7");
    let out = b.run("exit7");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert_eq!(stderr(&out), "err\n");
    b.assert_no_state();
}

#[test]
fn pid1_hostname_and_proc() {
    minc_tests::sandbox!();
    let b = bundle("echo $$; hostname; ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' '");
    b.edit(|c| c["hostname"] = json!("box1"));
    let out = b.run("p1");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1", "the process is PID 1");
    assert_eq!(lines[1], "box1");
    // Only the container's processes: sh (1), and the pipeline's ls/grep/tr.
    let pids: Vec<u32> = lines[2]
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1));
    assert!(
        pids.iter().all(|p| *p < 10),
        "host processes visible: {pids:?}"
    );
}

#[test]
fn host_files_unreachable_after_pivot_root() {
    minc_tests::sandbox!();
    // A host file next to the bundle: reachable before pivot_root, not after.
    let host_dir = minc_tests::tempdir();
    let secret = host_dir.path().join("secret");
    std::fs::write(&secret, "host secret").unwrap();
    let b = bundle(&format!("cat {} 2>&1; ls /", secret.display()));
    let out = b.run("pivot");
    let text = stdout(&out);
    assert!(!text.contains("host secret"), "{text}");
    assert!(text.contains("No such file"), "{text}");
    // The root listing is the rootfs's, not the host's.
    assert!(!text.contains("boot") && !text.contains("home"), "{text}");
}

#[test]
fn capabilities_and_masked_paths() {
    minc_tests::sandbox!();
    let b = bundle(
        "grep -E '^Cap(Bnd|Eff|Prm)' /proc/self/status; \
         echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c); \
         echo timer_list=$(cat /proc/timer_list 2>/dev/null | wc -c); \
         echo sys=$( (echo x > /proc/sys/kernel/hostname) 2>&1 | grep -c Read-only)",
    );
    b.edit(|c| {
        let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
    });
    let out = b.run("caps");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // CAP_CHOWN (0), CAP_KILL (5), CAP_NET_BIND_SERVICE (10).
    let want = format!("{:016x}", (1u64 << 0) | (1 << 5) | (1 << 10));
    for set in ["CapBnd", "CapEff", "CapPrm"] {
        assert!(text.contains(&format!("{set}:\t{want}")), "{set} in {text}");
    }
    assert!(text.contains("kcore=0"), "{text}");
    if Path::new("/proc/timer_list").exists() {
        assert!(text.contains("timer_list=0"), "{text}");
    }
    assert!(
        text.contains("sys=1"),
        "/proc/sys should be read-only: {text}"
    );
}

#[test]
fn user_groups_env_and_no_new_privileges() {
    minc_tests::sandbox!();
    let b = bundle("id -u; id -g; id -G; grep NoNewPrivs /proc/self/status; echo $GREETING $HOME; pwd; cat /proc/sys/kernel/domainname");
    b.edit(|c| {
        c["process"]["user"] = json!({"uid": 65534, "gid": 65534, "additionalGids": [10, 20]});
        c["process"]["env"] = json!(["PATH=/bin", "GREETING=hello"]);
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["noNewPrivileges"] = json!(true);
        c["domainname"] = json!("example.test");
    });
    let out = b.run("u1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "65534\n65534\n65534 10 20\nNoNewPrivs:\t1\nhello /\n/tmp\nexample.test\n"
    );
}

#[test]
fn lifecycle_states_and_kill() {
    minc_tests::sandbox!();
    let b = bundle("trap 'echo TERM > /got-term; exit 0' TERM; while true; do sleep 0.05; done");
    let pid_file = b.dir.join("pid");
    b.ok(&[
        "create",
        "-b",
        &b.bundle_arg(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "k1",
    ]);
    let state = b.state("k1");
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], "k1");
    assert_eq!(state["bundle"], b.bundle_arg());
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(!b.rootfs().join("got-term").exists());

    b.ok(&["start", "k1"]);
    assert_eq!(b.status("k1"), "running");
    // start releases the init exactly once.
    let again = b.minc(&["start", "k1"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("running"), "{}", stderr(&again));

    // list and ps see it.
    let list: Value = serde_json::from_str(&b.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], "k1");
    let pids: Vec<i64> = serde_json::from_str(&b.ok(&["ps", "--format", "json", "k1"])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");

    // A running container is not deleted without -f.
    let del = b.minc(&["delete", "k1"]);
    assert_eq!(del.status.code(), Some(1));
    assert!(stderr(&del).contains("running"), "{}", stderr(&del));

    b.ok(&["kill", "k1", "TERM"]);
    b.wait_status("k1", "stopped");
    assert_eq!(
        std::fs::read_to_string(b.rootfs().join("got-term")).unwrap(),
        "TERM\n"
    );
    assert_eq!(b.state("k1")["pid"], 0);
    let kill = b.minc(&["kill", "k1", "KILL"]);
    assert!(!kill.status.success(), "kill of a stopped container");
    b.ok(&["delete", "k1"]);
    assert!(!b.minc(&["state", "k1"]).status.success());
    b.assert_no_state();
    assert!(mounts_under(&b.rootfs()).is_empty());
}

#[test]
fn recycled_pid_does_not_look_alive() {
    minc_tests::sandbox!();
    let b = bundle("sleep 100");
    b.create("r1");
    // Pretend the init died and its PID went to another live process (this test, PID 1).
    let path = b.root.join("r1/state.json");
    let mut st: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let real = st["pid"].as_i64().unwrap();
    st["pid"] = json!(std::process::id());
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(b.status("r1"), "stopped");
    // SAFETY: killing the init we created.
    unsafe { libc::kill(real as i32, libc::SIGKILL) };
    b.ok(&["delete", "r1"]);
}

#[test]
fn delete_force_kills_running_container() {
    minc_tests::sandbox!();
    let b = bundle("sleep 1000");
    b.ok(&["run", "-d", "-b", &b.bundle_arg(), "f1"]);
    assert_eq!(b.status("f1"), "running");
    let pid = b.state("f1")["pid"].as_i64().unwrap();
    b.ok(&["delete", "-f", "f1"]);
    assert!(
        !Path::new(&format!("/proc/{pid}/cmdline")).exists() || {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            s.contains(") Z")
        }
    );
    b.assert_no_state();
    assert!(mounts_under(&b.rootfs()).is_empty());
}

#[test]
fn exec_joins_the_container() {
    minc_tests::sandbox!();
    let b = bundle("echo $$ > /init-pid; sleep 1000");
    b.edit(|c| c["hostname"] = json!("exec-box"));
    b.ok(&["run", "-d", "-b", &b.bundle_arg(), "e1"]);
    let out = b.ok(&[
        "exec",
        "-e",
        "GREETING=hi",
        "--cwd",
        "/tmp",
        "e1",
        "--",
        "sh",
        "-c",
        "hostname; pwd; echo $GREETING; cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-box");
    assert_eq!(lines[1], "/tmp");
    assert_eq!(lines[2], "hi");
    // (sh execs its last command, so PID 1 is now sleep.)
    assert!(
        lines[3].contains("sleep 1000"),
        "PID 1 seen by exec: {}",
        lines[3]
    );
    // Same PID namespace as the init.
    let init = b.state("e1")["pid"].as_i64().unwrap();
    let exec_ns = b.ok(&["exec", "e1", "--", "readlink", "/proc/self/ns/pid"]);
    let init_ns = std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap();
    assert_eq!(exec_ns.trim(), init_ns.to_str().unwrap());
    // The exit code comes back.
    let code = b.minc(&["exec", "e1", "--", "sh", "-c", "exit 5"]);
    assert_eq!(code.status.code(), Some(5));
    // A missing program is a clear error, not a hang, with runc's exit codes: 127 when it
    // is not found, 126 when it cannot be executed.
    let missing = b.minc(&["exec", "e1", "--", "no-such-program"]);
    assert_eq!(missing.status.code(), Some(127));
    let not_exec = b.minc(&["exec", "e1", "--", "/etc/passwd"]);
    assert_eq!(not_exec.status.code(), Some(126), "{}", stderr(&not_exec));
    assert!(
        stderr(&missing).contains("executable file not found"),
        "{}",
        stderr(&missing)
    );
    b.ok(&["delete", "-f", "e1"]);
    b.assert_no_state();
}

#[test]
fn hooks_run_in_order_with_state() {
    minc_tests::sandbox!();
    let b = bundle("echo process >> /hooks.log");
    let log = b.rootfs().join("hooks.log");
    // Hooks that run in the runtime's mount namespace see the host path; startContainer runs
    // after pivot_root and sees the container's /hooks.log (the same file).
    let hook = |stage: &str, path: &Path| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("read -r state; echo \"{stage} $state\" >> {}", path.display())],
            "timeout": 10
        })
    };
    b.edit(|c| {
        c["hooks"] = json!({
            "prestart": [hook("prestart", &log)],
            "createRuntime": [hook("createRuntime", &log)],
            "createContainer": [hook("createContainer", &log)],
            "startContainer": [hook("startContainer", Path::new("/hooks.log"))],
            "poststart": [hook("poststart", &log)],
            "poststop": [hook("poststop", &log)],
        });
    });
    // runc-style explicit lifecycle so every stage happens.
    b.create("h1");
    b.ok(&["start", "h1"]);
    b.wait_status("h1", "stopped");
    b.ok(&["delete", "h1"]);
    let text = std::fs::read_to_string(&log).unwrap();
    let stages: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    // poststart runs after the process started, so it may land before or after its output.
    let mut without_process: Vec<&str> =
        stages.iter().copied().filter(|s| *s != "process").collect();
    assert_eq!(
        without_process,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    without_process.clear();
    for line in text.lines().filter(|l| !l.starts_with("process")) {
        let state: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        assert_eq!(state["id"], "h1", "{line}");
        assert_eq!(state["bundle"], b.bundle_arg());
    }
    // Each stage sees the status the runtime spec gives it.
    for line in text.lines().filter(|l| !l.starts_with("process")) {
        let (stage, json) = line.split_once(' ').unwrap();
        let state: Value = serde_json::from_str(json).unwrap();
        let want = match stage {
            "createRuntime" => "creating",
            "prestart" | "createContainer" | "startContainer" => "created",
            "poststart" => "running",
            _ => "stopped",
        };
        assert_eq!(state["status"], want, "{line}");
        if stage == "poststart" {
            assert!(state["pid"].as_i64().unwrap() > 0, "{line}");
        }
    }
}

#[test]
fn failing_poststart_and_poststop_hooks_warn_and_the_rest_run() {
    minc_tests::sandbox!();
    let b = bundle("true");
    let log = b.rootfs().join("hooks.log");
    let ok = |stage: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {stage} >> {}", log.display())]});
    let fail = json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]});
    b.edit(|c| {
        c["hooks"] = json!({
            "poststart": [fail, ok("poststart")],
            "poststop": [fail, ok("poststop")],
            // Without an env of its own, a startContainer hook gets the process's.
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "echo \"env $GREETING\" >> /hooks.log"]}],
        });
        c["process"]["env"] = json!(["PATH=/bin", "GREETING=from-the-process"]);
    });
    b.create("w1");
    let out = b.minc(&["start", "w1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("poststart: exit status 4"),
        "{}",
        stderr(&out)
    );
    b.wait_status("w1", "stopped");
    let out = b.minc(&["delete", "w1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("poststop: exit status 4"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text, "env from-the-process\npoststart\npoststop\n");
    b.assert_no_state();
}

#[test]
fn failing_hook_fails_create_and_leaves_nothing() {
    minc_tests::sandbox!();
    let b = bundle("true");
    b.edit(|c| {
        c["hooks"] =
            json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    });
    let out = b.minc(&["create", "-b", &b.bundle_arg(), "hk"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("hook /bin/sh: createRuntime: exit status 3"),
        "{err}"
    );
    b.assert_no_state();
    assert!(stray_processes().is_empty(), "{:?}", stray_processes());
}

#[test]
fn bad_input_is_one_clear_line_and_leaves_nothing() {
    minc_tests::sandbox!();
    let b = bundle("sleep 100");
    let bundle = b.bundle_arg();
    let check = |args: &[&str], want: &str| {
        let out = b.minc(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(
            err.lines().count(),
            1,
            "{args:?} printed more than one line: {err}"
        );
        assert!(err.starts_with("minc: "), "{err}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        b.assert_no_state();
        assert!(mounts_under(&b.rootfs()).is_empty());
        assert!(stray_processes().is_empty(), "{:?}", stray_processes());
    };
    check(&["create", "-b", "/no/such/bundle", "x"], "/no/such/bundle");
    check(&["create", "-b", &bundle, "a/b"], "invalid");
    check(&["create", "-b", &bundle, ".."], "invalid");
    check(&["create", "-b", &bundle, ""], "invalid");
    check(&["create", "-b", &bundle, "--", "-"], "invalid");
    check(&["create", "-b", &bundle, "--", "-rf"], "invalid");
    check(&["state", "nope"], "container nope does not exist");

    // A process that does not exist or cannot be executed.
    b.edit(|c| c["process"]["args"] = json!(["no-such-binary"]));
    check(
        &["create", "-b", &bundle, "x"],
        "executable file not found in $PATH",
    );
    check(
        &["run", "-b", &bundle, "x"],
        "executable file not found in $PATH",
    );
    b.edit(|c| c["process"]["args"] = json!(["/etc/passwd"]));
    check(&["run", "-b", &bundle, "x"], "not executable");
    b.edit(|c| c["process"]["args"] = json!(["sleep", "100"]));

    // Malformed config, unknown field, rootfs that is not a directory.
    let cfg = b.dir.join("config.json");
    let good = std::fs::read(&cfg).unwrap();
    std::fs::write(&cfg, b"{ not json").unwrap();
    check(&["create", "-b", &bundle, "x"], "config.json");
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["hostnmae"] = json!("typo");
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    check(
        &["--strict", "create", "-b", &bundle, "x"],
        "unknown field hostnmae (--strict)",
    );
    // Without --strict an unknown field is ignored, as the runtime spec requires.
    b.ok(&["create", "-b", &bundle, "unknown-ok"]);
    b.ok(&["delete", "-f", "unknown-ok"]);
    b.assert_no_state();
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["root"]["path"] = json!("");
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    check(&["create", "-b", &bundle, "x"], "root.path is empty");
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["hooks"] = json!({"prestart": [{"path": "/bin/true", "timeout": 0}]});
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    check(
        &["create", "-b", &bundle, "x"],
        "timeout must be greater than zero",
    );
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["root"]["path"] = json!("/etc/passwd");
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    check(
        &["create", "-b", &bundle, "x"],
        "rootfs /etc/passwd: not a directory",
    );
    std::fs::write(&cfg, &good).unwrap();

    // Bad signal, duplicate id.
    b.create("dup");
    let out = b.minc(&["kill", "dup", "SIGBOGUS"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown signal \"SIGBOGUS\""),
        "{}",
        stderr(&out)
    );
    let out = b.minc(&["kill", "dup", "+9"]);
    assert!(
        stderr(&out).contains("unknown signal \"+9\""),
        "{}",
        stderr(&out)
    );
    let out = b.minc(&["create", "-b", &bundle, "--preserve-fds", "1000000", "big"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--preserve-fds 1000000: file descriptor 3 is not open"),
        "{}",
        stderr(&out)
    );
    // Usage errors: exit 2, one line, also in the --log file as JSON for OCI clients.
    let log = b.dir.join("log.json");
    let out = b.minc(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--frobnicate",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let logged: Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert!(
        logged["msg"].as_str().unwrap().contains("--frobnicate"),
        "{logged}"
    );
    let out = b.minc(&["create", "-b", &bundle, "dup"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("container dup already exists"),
        "{}",
        stderr(&out)
    );
    b.ok(&["delete", "dup"]);
    b.assert_no_state();
}

#[test]
fn rlimit_above_hard_limit_is_explained() {
    minc_tests::sandbox!();
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    let want = cur.rlim_max + 1;
    let b = bundle("ulimit -Hn");
    b.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": want, "soft": 1024}]);
    });
    let out = b.run("rl");
    let has_sys_resource = caps_has(24);
    if has_sys_resource {
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out).trim(), want.to_string());
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("CAP_SYS_RESOURCE"),
            "{}",
            stderr(&out)
        );
        b.assert_no_state();
    }
}

/// Whether this process has a capability in its effective set.
fn caps_has(bit: u32) -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    let mask = u64::from_str_radix(eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    mask & (1 << bit) != 0
}

#[test]
fn run_forwards_signals_and_never_hangs_on_quick_exit() {
    minc_tests::sandbox!();
    // A process that exits at once must not make `run` hang (SIGCHLD race).
    let b = bundle("true");
    for i in 0..20 {
        let out = b.run(&format!("q{i}"));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    b.assert_no_state();

    // SIGINT to `minc run` reaches the container's process.
    let b = bundle("trap 'echo got INT; exit 42' INT; echo ready; while true; do sleep 0.05; done");
    let mut child = b
        .cmd(&["run", "-b", &b.bundle_arg(), "sig"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut buf).unwrap();
    assert_eq!(&buf, b"ready\n");
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "got INT\n");
    assert_eq!(status.code(), Some(42));
    b.assert_no_state();
}

#[test]
fn explain_shows_each_privileged_step() {
    minc_tests::sandbox!();
    let b = bundle("true");
    b.edit(|c| {
        c["root"]["readonly"] = json!(true);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    let out = b.minc(&["--explain", "run", "-b", &b.bundle_arg(), "x1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for step in [
        "+ unshare --pid --net --ipc --uts --mount",
        "+ mount --make-rslave /",
        "+ mount -t proc proc ",
        "+ mknod -m 666 ",
        "pivot_root . .",
        "+ umount -l .",
        "+ mount -t tmpfs -o ro tmpfs /proc/acpi",
        "+ echo 1 > /proc/sys/net/ipv4/ip_forward",
        "+ hostname minc",
        "+ mount -o remount,bind,ro /\n",
        "+ exec setpriv --reuid=0 --regid=0 --clear-groups --bounding-set=-all,+audit_write,+kill,+net_bind_service",
        " -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=xterm HOME=/root /bin/sh -c true",
    ] {
        assert!(err.contains(step), "missing {step:?} in:\n{err}");
    }
    // Without --explain, nothing is printed.
    let quiet = b.run("x2");
    assert_eq!(stderr(&quiet), "");
}

#[test]
fn readonly_root_and_bind_mounts() {
    minc_tests::sandbox!();
    let b = bundle("touch /x 2>&1 | grep -c Read-only; cat /data/hello; touch /data/new && echo rw; touch /ro/x 2>&1 | grep -c Read-only");
    let data = b.dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello"), "hello from host\n").unwrap();
    b.edit(|c| {
        c["root"]["readonly"] = json!(true);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "rw"]}));
        mounts.push(json!({"destination": "/ro", "type": "bind", "source": "data", "options": ["rbind", "ro"]}));
    });
    let out = b.run("ro");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\nhello from host\nrw\n1\n");
    assert!(data.join("new").exists());
}

#[test]
fn state_and_list_carry_what_runcs_carry() {
    minc_tests::sandbox!();
    let b = bundle("sleep 100");
    b.create("s1");
    let state = b.state("s1");
    let list: Value = serde_json::from_str(&b.ok(&["list", "--format", "json"])).unwrap();
    let created = state["created"].as_str().unwrap();
    // RFC 3339 with nanoseconds: 2026-11-29T01:03:16.747057917Z
    assert_eq!(created.len(), 30, "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    assert_eq!(state["rootfs"], b.rootfs().display().to_string());
    assert_eq!(state["owner"], "");
    assert_eq!(list[0]["owner"], "root");
    assert_eq!(state["ociVersion"], "1.2.0");

    // The same keys as runc's, for the same bundle (runc's cgroup goes under a parent of
    // this test's own, removed afterwards).
    let parent = format!("minc-test-{}", std::process::id());
    b.edit(|c| c["linux"]["cgroupsPath"] = json!(format!("/{parent}/r1")));
    let runc_root = b.dir.join("runc-state");
    let runc = |args: &[&str]| {
        minc_tests::ok_via_files(
            std::process::Command::new("runc")
                .arg("--root")
                .arg(&runc_root)
                .args(args),
        )
    };
    runc(&["create", "-b", &b.bundle_arg(), "r1"]);
    let runc_state: Value = serde_json::from_str(&runc(&["state", "r1"])).unwrap();
    let runc_list: Value = serde_json::from_str(&runc(&["list", "-f", "json"])).unwrap();
    runc(&["delete", "-f", "r1"]);
    for dir in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(dir.path().join(&parent));
    }
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&state), keys(&runc_state));
    assert_eq!(keys(&list[0]), keys(&runc_list[0]));
    assert_eq!(state["status"], runc_state["status"]);
    b.ok(&["delete", "-f", "s1"]);
}

#[test]
fn process_attributes_and_time_namespace_are_applied() {
    minc_tests::sandbox!();
    // personality, ioPriority, scheduler and a time namespace with a boottime offset, all
    // seen from inside: /proc/self/personality, ionice, /proc/self/stat (nice, policy), and
    // /proc/uptime (boottime) a day ahead of the host's.
    let b = bundle(
        "cat /proc/self/personality; ionice -p $$; \
         awk '{print $19, $41}' /proc/self/stat; cut -d. -f1 /proc/uptime",
    );
    b.edit(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
        c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400, "nanosecs": 0}});
    });
    let host_uptime: u64 = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = b.run("attrs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "00000008", "personality PER_LINUX32: {text}");
    assert!(lines[1].starts_with("idle"), "{text}");
    assert_eq!(lines[2], "7 3", "nice 7, SCHED_BATCH (3): {text}");
    let uptime: u64 = lines[3].parse().unwrap();
    assert!(
        (86_400..86_400 + 60).contains(&(uptime - host_uptime)),
        "{uptime} vs {host_uptime}"
    );

    // What the kernel cannot do is an error naming the field, not silently dropped.
    b.edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_ISO"}));
    let out = b.run("iso");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("SCHED_ISO"), "{}", stderr(&out));
    b.assert_no_state();
}

#[test]
fn tmpcopyup_tmpfs_keeps_the_contents_it_covers() {
    minc_tests::sandbox!();
    // A read-only root with a writable /etc that still holds the image's files.
    let b = bundle("cat /etc/group | head -1; echo new > /etc/new && cat /etc/new; ls -l /etc/passwd | cut -c1-10; grep ' /etc ' /proc/self/mountinfo | cut -d' ' -f9");
    std::os::unix::fs::symlink("passwd", b.rootfs().join("etc/passwd-link")).unwrap();
    b.edit(|c| {
        c["root"]["readonly"] = json!(true);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/etc", "type": "tmpfs", "source": "tmpfs",
            "options": ["tmpcopyup", "nosuid", "mode=755"]
        }));
    });
    let out = b.run("tc");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "root:x:0:\nnew\n-rw-r--r--\ntmpfs\n");
    // The image's /etc is untouched, and no scratch directory is left on the host.
    assert!(!b.rootfs().join("etc/new").exists());
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("minc-tmpcopyup")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn user_namespace_maps_root_to_a_host_range() {
    minc_tests::sandbox!();
    let b = bundle("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/made-inside; ls -ln /dev/null | awk '{print $5 $6}'");
    // The rootfs belongs to the mapped range, as an image unpacked for it would.
    b.map_root_to(100_000);
    let out = b.run("u1");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {text}");
    assert_eq!(lines[1], "0", "{text}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    assert_eq!(
        lines[3].split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    // /dev/null is the host's node, bind-mounted (mknod is not allowed in a user namespace).
    assert_eq!(lines[4], "1,3", "{text}");
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(b.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (100_000, 100_000));

    // Mappings are required for a new user namespace.
    b.edit(|c| c["linux"]["uidMappings"] = json!([]));
    let out = b.run("u2");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("uidMappings"), "{}", stderr(&out));
    b.assert_no_state();
}

#[test]
fn rootless_run_as_an_unprivileged_user() {
    minc_tests::sandbox!();
    // Everything belongs to `nobody`, who runs minc: `spec --rootless`, then `run`, with the
    // state under its own XDG_RUNTIME_DIR.
    let tmp = minc_tests::tempdir();
    let top = tmp.path();
    let bundle = top.join("bundle");
    minc_tests::busybox_rootfs(&bundle.join("rootfs"));
    std::fs::create_dir(top.join("run")).unwrap();
    minc_tests::run("chown", &["-R", "65534:65534", top.to_str().unwrap()]);
    minc_tests::run("chmod", &["755", top.to_str().unwrap()]);
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(MINC)
            .args(args)
            .current_dir(&bundle)
            .env("XDG_RUNTIME_DIR", top.join("run"));
        minc_tests::output_via_files(&mut c)
    };
    let out = as_nobody(&["spec", "--rootless"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = bundle.join("config.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    assert_eq!(c["linux"]["uidMappings"][0]["hostID"], 65534);
    c["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; touch /made-inside"
    ]);
    c["process"]["terminal"] = json!(false);
    c["root"]["readonly"] = json!(false);
    std::fs::write(&cfg, serde_json::to_vec(&c).unwrap()).unwrap();

    let out = as_nobody(&["run", "r1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "65534", "1"]
    );
    assert_eq!(lines[1], "0", "root in the container: {text}");
    use std::os::unix::fs::MetadataExt;
    let made = std::fs::metadata(bundle.join("rootfs/made-inside")).unwrap();
    assert_eq!(
        made.uid(),
        65534,
        "files it makes belong to the user on the host"
    );
    // Its state lived under XDG_RUNTIME_DIR, and is gone.
    let left: Vec<_> = std::fs::read_dir(top.join("run/minc"))
        .unwrap()
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A printing verb whose reader has gone (`minc state x | grep -q running`) ends quietly, as
/// runc does; a verb that writes to a hook that does not read its stdin does not die of it.
#[test]
fn broken_pipes_end_quietly() {
    minc_tests::sandbox!();
    use std::os::unix::process::ExitStatusExt;
    // A pipe whose read end is closed before minc starts: every write to it fails, not by luck.
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = Command::new(MINC)
        .arg("features")
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");

    // The state is written to each hook's stdin; these exit without reading it.
    let b = bundle("true");
    let ignore = json!({"path": "/bin/sh", "args": ["sh", "-c", "exit 0"]});
    b.edit(|c| {
        c["hooks"] = json!({"prestart": [ignore], "poststart": [ignore], "poststop": [ignore]});
    });
    for _ in 0..20 {
        b.create("p1");
        let out = b.minc(&["start", "p1"]);
        assert!(out.status.success(), "start: {}", stderr(&out));
        b.wait_status("p1", "stopped");
        let out = b.minc(&["delete", "p1"]);
        assert!(
            out.status.success(),
            "delete: {:?} {}",
            out.status,
            stderr(&out)
        );
    }
    b.assert_no_state();
}
