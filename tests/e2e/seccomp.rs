//! End-to-end tests of seccomp and capabilities: OCI bundles with `linux.seccomp`, the
//! Docker-like face's default profile and its `--security-opt`, `--cap-add`, `--cap-drop`
//! and `--privileged` flags, all against the real kernel. Each test runs in its own sandbox.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// A state root, a data root and a busybox rootfs in one temporary directory.
struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let tmp = minc_tests::tempdir();
        minc_tests::busybox_rootfs(&tmp.path().join("rootfs"));
        Env { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn minc(&self, args: &[&str]) -> Output {
        let mut c = Command::new(MINC);
        c.arg("--root")
            .arg(self.path("state"))
            .arg("--data-root")
            .arg(self.path("data"))
            .args(args);
        minc_tests::output_via_files(&mut c)
    }

    /// A bundle running `sh -c script` with `linux.seccomp` set to `seccomp` (runc's
    /// default spec otherwise: no_new_privs on, three capabilities). Returns its directory.
    fn bundle(&self, name: &str, script: &str, edit: impl FnOnce(&mut Value)) -> String {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let out = self.minc(&["spec", "-b", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let path = dir.join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        c["process"]["args"] = json!(["sh", "-c", script]);
        c["root"] = json!({"path": self.path("rootfs"), "readonly": false});
        edit(&mut c);
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
        dir.display().to_string()
    }

    /// Imports the busybox rootfs as the image `busybox`.
    fn busybox_image(&self) {
        let tar = self.path("busybox.tar");
        minc_tests::run(
            "tar",
            &[
                "-C",
                self.path("rootfs").to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ],
        );
        let out = self.minc(&[
            "image",
            "import",
            tar.to_str().unwrap(),
            "--name",
            "busybox",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    /// `minc run --rm --network none [flags] busybox sh -c script`: (exit code, stdout+stderr).
    fn docker_run(&self, flags: &[&str], script: &str) -> (i32, String) {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend(flags);
        args.extend(["busybox", "sh", "-c", script]);
        let out = self.minc(&args);
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout) + &text(&out.stderr),
        )
    }

    /// Asserts nothing is left of any container: no state, no container directory.
    fn assert_nothing_left(&self) {
        for dir in [self.path("state"), self.path("data/containers")] {
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|n| !n.to_string_lossy().starts_with('.')) // lock files
                .collect();
            assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value of a `Name:\tvalue` line of /proc/PID/status printed by the container.
fn status_field<'a>(out: &'a str, field: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(":\t"))
        .unwrap_or_else(|| panic!("no {field} in {out:?}"))
}

/// A capability set as /proc/self/status prints it.
fn cap_mask(caps: &[&str]) -> String {
    let bit = |c: &str| {
        let all = [
            "CHOWN",
            "DAC_OVERRIDE",
            "DAC_READ_SEARCH",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID",
            "SETPCAP",
            "LINUX_IMMUTABLE",
            "NET_BIND_SERVICE",
            "NET_BROADCAST",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "IPC_OWNER",
            "SYS_MODULE",
            "SYS_RAWIO",
            "SYS_CHROOT",
            "SYS_PTRACE",
            "SYS_PACCT",
            "SYS_ADMIN",
            "SYS_BOOT",
            "SYS_NICE",
            "SYS_RESOURCE",
            "SYS_TIME",
            "SYS_TTY_CONFIG",
            "MKNOD",
            "LEASE",
            "AUDIT_WRITE",
            "AUDIT_CONTROL",
            "SETFCAP",
            "MAC_OVERRIDE",
            "MAC_ADMIN",
            "SYSLOG",
            "WAKE_ALARM",
            "BLOCK_SUSPEND",
            "AUDIT_READ",
            "PERFMON",
            "BPF",
            "CHECKPOINT_RESTORE",
        ];
        1u64 << all.iter().position(|n| *n == c).unwrap()
    };
    format!("{:016x}", caps.iter().map(|c| bit(c)).fold(0, |a, b| a | b))
}

const DOCKER_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The profile the bundle tests use: mkdir fails with ENOSYS (38), kill with signal 0 with
/// EPERM (an argument rule), everything else is allowed.
fn profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]}
        ]
    })
}

const PROBE: &str = "grep -E '^Seccomp:' /proc/self/status; mkdir /tmp/made; echo mkdir=$?; \
    kill -0 $$; echo kill0=$?; kill -CONT $$; echo cont=$?";

fn assert_probe(out: &str) {
    assert_eq!(status_field(out, "Seccomp"), "2", "{out}");
    assert!(
        out.contains("Function not implemented"),
        "mkdir's ENOSYS: {out}"
    );
    assert!(out.contains("mkdir=1"), "{out}");
    assert!(
        out.contains("Operation not permitted"),
        "kill -0's EPERM: {out}"
    );
    assert!(out.contains("kill0=1") && out.contains("cont=0"), "{out}");
}

#[test]
fn bundle_profile_errnos_and_argument_rules() {
    minc_tests::sandbox!();
    let env = Env::new();
    // With no_new_privs (runc's default spec) the filter is the last step before execve;
    // without it, it is loaded before the capabilities are dropped. Both must work.
    for nnp in [true, false] {
        let b = env.bundle(&format!("b-{nnp}"), PROBE, |c| {
            c["linux"]["seccomp"] = profile();
            c["process"]["noNewPrivileges"] = json!(nnp);
        });
        let out = env.minc(&["run", "-b", &b, &format!("c-{nnp}")]);
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success(), "nnp {nnp}: {all}");
        assert_probe(&all);
        assert!(!env.path("rootfs/tmp/made").exists());
    }
    // Without the section: no filter at all.
    let b = env.bundle("plain", "grep -E '^Seccomp:' /proc/self/status", |_| {});
    let out = env.minc(&["run", "-b", &b, "plain"]);
    assert_eq!(status_field(&text(&out.stdout), "Seccomp"), "0");
    env.assert_nothing_left();
}

#[test]
fn exec_gets_the_containers_filter() {
    minc_tests::sandbox!();
    let env = Env::new();
    let b = env.bundle("b", "sleep 1000", |c| c["linux"]["seccomp"] = profile());
    let out = env.minc(&["run", "-d", "-b", &b, "x1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = env.minc(&["exec", "x1", "--", "sh", "-c", PROBE]);
    assert_probe(&(text(&out.stdout) + &text(&out.stderr)));
    assert!(env.minc(&["delete", "-f", "x1"]).status.success());
    env.assert_nothing_left();
}

#[test]
fn docker_default_profile_refuses_user_namespaces() {
    minc_tests::sandbox!();
    let env = Env::new();
    env.busybox_image();
    let script = "grep -E '^Seccomp:' /proc/self/status; unshare -U true && echo unshared";
    let (code, out) = env.docker_run(&[], script);
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(!out.contains("unshared") && code != 0, "{out}");
    // Other calls outside the allowlist fail the same way; ordinary work goes on.
    let (code, out) = env.docker_run(
        &[],
        "mount -t tmpfs t /mnt; echo mount=$?; ls / >/dev/null && echo ok",
    );
    assert!(
        out.contains("mount=") && !out.contains("mount=0") && out.contains("ok"),
        "{out}"
    );
    assert_eq!(code, 0);

    let (code, out) = env.docker_run(&["--security-opt", "seccomp=unconfined"], script);
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    assert!(out.contains("unshared") && code == 0, "{out}");
    // With CAP_SYS_ADMIN the default profile lets the capability decide.
    let (code, out) = env.docker_run(&["--cap-add", "sys_admin"], script);
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert!(out.contains("unshared") && code == 0, "{out}");
    env.assert_nothing_left();
}

#[test]
fn docker_profile_file_and_no_new_privileges() {
    minc_tests::sandbox!();
    let env = Env::new();
    env.busybox_image();
    // Docker's file format: `name`, and a rule that only applies without CAP_SYS_ADMIN.
    let file = env.path("profile.json");
    let mut p = profile();
    p["syscalls"][0] = json!({"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
        "excludes": {"caps": ["CAP_SYS_ADMIN"]}});
    std::fs::write(&file, p.to_string()).unwrap();
    let opt = format!("seccomp={}", file.display());
    let script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/d && echo made";
    let (_, out) = env.docker_run(&["--security-opt", &opt], script);
    assert_eq!(status_field(&out, "Seccomp"), "2", "{out}");
    assert_eq!(status_field(&out, "NoNewPrivs"), "0", "{out}");
    assert!(
        out.contains("Function not implemented") && !out.contains("made"),
        "{out}"
    );
    let flags = [
        "--security-opt",
        &opt,
        "--security-opt",
        "no-new-privileges",
        "--cap-add",
        "SYS_ADMIN",
    ];
    let (_, out) = env.docker_run(&flags, script);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1", "{out}");
    assert!(out.contains("made"), "{out}");
    env.assert_nothing_left();
}

#[test]
fn cap_add_drop_and_privileged() {
    minc_tests::sandbox!();
    let env = Env::new();
    env.busybox_image();
    let script =
        "grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status; grep ' /sys ' /proc/mounts";
    let (code, out) = env.docker_run(&[], script);
    assert_eq!(code, 0, "{out}");
    assert_eq!(status_field(&out, "CapEff"), cap_mask(DOCKER_CAPS));
    assert!(out.contains("sysfs ro,"), "{out}");

    let (_, out) = env.docker_run(
        &[
            "--cap-drop",
            "chown",
            "--cap-drop",
            "CAP_NET_RAW",
            "--cap-add",
            "net_admin",
        ],
        script,
    );
    let mut want: Vec<&str> = DOCKER_CAPS
        .iter()
        .copied()
        .filter(|c| *c != "CHOWN" && *c != "NET_RAW")
        .collect();
    want.push("NET_ADMIN");
    assert_eq!(status_field(&out, "CapEff"), cap_mask(&want), "{out}");
    assert_eq!(status_field(&out, "CapBnd"), cap_mask(&want), "{out}");

    let (_, out) = env.docker_run(&["--cap-drop", "ALL", "--cap-add", "kill"], script);
    assert_eq!(status_field(&out, "CapEff"), cap_mask(&["KILL"]), "{out}");

    let (code, out) = env.docker_run(&["--privileged"], script);
    assert_eq!(code, 0, "{out}");
    // Every capability this process has (this host withholds some, e.g. CAP_SYS_RESOURCE).
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        status_field(&out, "CapEff"),
        status_field(&own, "CapBnd"),
        "{out}"
    );
    assert_eq!(status_field(&out, "Seccomp"), "0", "{out}");
    assert!(out.contains("sysfs rw,"), "{out}");
    env.assert_nothing_left();
}

#[test]
fn bad_profiles_are_one_clear_line_and_leave_nothing() {
    minc_tests::sandbox!();
    let env = Env::new();
    let one_line = |out: &Output, want: &str| {
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("minc: ") && err.contains(want), "{err}");
    };
    let mut bad = profile();
    bad["syscalls"][1]["action"] = json!("SCMP_ACT_BOGUS");
    let b = env.bundle("bad-action", "true", |c| c["linux"]["seccomp"] = bad);
    let out = env.minc(&["run", "-b", &b, "bad1"]);
    one_line(
        &out,
        "config.json: linux.seccomp.syscalls[1].action: unknown variant `SCMP_ACT_BOGUS`",
    );
    let b = env.bundle("bad-op", "true", |c| {
        c["linux"]["seccomp"] = profile();
        c["linux"]["seccomp"]["syscalls"][1]["args"][0]["op"] = json!("SCMP_CMP_SOMETIMES");
    });
    one_line(
        &env.minc(&["create", "-b", &b, "bad2"]),
        "linux.seccomp.syscalls[1].args[0].op: unknown variant `SCMP_CMP_SOMETIMES`",
    );
    let b = env.bundle("notify", "true", |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    one_line(
        &env.minc(&["run", "-b", &b, "bad3"]),
        "SCMP_ACT_NOTIFY needs a listenerPath",
    );
    // An agent that is not there fails the start, and nothing is left.
    let b = env.bundle("no-agent", "true", |c| {
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": env.path("nobody-listens.sock"),
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
    });
    one_line(
        &env.minc(&["run", "-b", &b, "bad4"]),
        "nobody-listens.sock: No such file",
    );
    env.assert_nothing_left();

    // The Docker face checks the file before it makes anything.
    env.busybox_image();
    for (content, want) in [
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "#.to_string(),
            "not JSON",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_KILL_EVERYONE"}"#.to_string(),
            r#"unknown action "SCMP_ACT_KILL_EVERYONE""#,
        ),
        (" ".repeat(2 << 20), "larger than 1024 KiB"),
    ] {
        let file = env.path("bad.json");
        std::fs::write(&file, content).unwrap();
        let opt = format!("seccomp={}", file.display());
        one_line(
            &env.minc(&["run", "--rm", "--security-opt", &opt, "busybox", "true"]),
            want,
        );
    }
    one_line(
        &env.minc(&["run", "--cap-add", "CAP_TELEPORT", "busybox", "true"]),
        "--cap-add CAP_TELEPORT: unknown capability",
    );
    one_line(
        &env.minc(&["run", "--security-opt", "label=disable", "busybox", "true"]),
        "unknown option",
    );
    env.assert_nothing_left();
}

#[test]
fn capabilities_outside_the_bounding_set_fail() {
    minc_tests::sandbox!();
    let env = Env::new();
    // The kernel refuses these with EPERM (for runc too), whatever minc's own inheritable set.
    for (sets, id, what) in [
        (&["inheritable"][..], "inh", "inheritable"),
        (
            &["inheritable", "ambient"][..],
            "amb",
            "ambient and inheritable",
        ),
    ] {
        let b = env.bundle(id, "true", |c| {
            for set in sets {
                c["process"]["capabilities"][set] = json!(["CAP_SYS_ADMIN"]);
            }
        });
        let out = env.minc(&["run", "-b", &b, id]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let want =
            format!("CAP_SYS_ADMIN is {what} but not in the bounding set: Operation not permitted");
        assert!(err.contains(&want), "{err}");
    }
    // Ambient without inheritable cannot be raised: runc warns and runs, so does minc.
    let b = env.bundle("amb-only", "grep -E '^CapAmb:' /proc/self/status", |c| {
        c["process"]["capabilities"]["ambient"] = json!(["CAP_SYS_ADMIN"]);
    });
    let out = env.minc(&["run", "-b", &b, "amb-only"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        status_field(&text(&out.stdout), "CapAmb"),
        "0000000000000000"
    );
    assert!(
        text(&out.stderr).contains("ambient capability CAP_SYS_ADMIN is not in the bounding set")
    );
    // runc's own default spec lists ambient capabilities that are not inheritable: it runs,
    // and (as with runc) they are simply not raised.
    let b = env.bundle(
        "default",
        "grep -E '^Cap(Amb|Eff):' /proc/self/status",
        |_| {},
    );
    let out = env.minc(&["run", "-b", &b, "default"]);
    let all = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        status_field(&all, "CapEff"),
        cap_mask(&["AUDIT_WRITE", "KILL", "NET_BIND_SERVICE"])
    );
    assert_eq!(status_field(&all, "CapAmb"), "0000000000000000");
    // Inheritable and ambient inside the bounding set are raised.
    let b = env.bundle("amb-ok", "grep -E '^CapAmb:' /proc/self/status", |c| {
        c["process"]["capabilities"]["inheritable"] = json!(["CAP_KILL"]);
        c["process"]["capabilities"]["ambient"] = json!(["CAP_KILL"]);
    });
    let out = env.minc(&["run", "-b", &b, "amb-ok"]);
    assert_eq!(
        status_field(&text(&out.stdout), "CapAmb"),
        cap_mask(&["KILL"]),
        "{}",
        text(&out.stderr)
    );
    env.assert_nothing_left();
}

/// A seccomp agent at `path`: takes the listener fd each runtime connection brings,
/// answers every notified call with `-errno`, and reports (the runtime's message, the
/// call's number) for each.
fn agent(path: PathBuf, errno: i32) -> std::sync::mpsc::Receiver<(Value, i32)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let (conn, tx) = (conn.unwrap(), tx.clone());
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
                let (len, fd) = {
                    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
                    let m = recvmsg::<()>(
                        conn.as_raw_fd(),
                        &mut iov,
                        Some(&mut space),
                        MsgFlags::empty(),
                    )
                    .unwrap();
                    let fd = m.cmsgs().unwrap().find_map(|c| match c {
                        ControlMessageOwned::ScmRights(v) => v.first().copied(),
                        _ => None,
                    });
                    (m.bytes, fd.expect("the listener fd"))
                };
                let msg: Value = serde_json::from_slice(&buf[..len]).unwrap();
                loop {
                    // SAFETY: seccomp_unotify(2) ioctls on the listener with zeroed structs.
                    unsafe {
                        let mut req: libc::seccomp_notif = std::mem::zeroed();
                        if libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req) < 0 {
                            break; // every process of the filter is gone
                        }
                        let resp = libc::seccomp_notif_resp {
                            id: req.id,
                            val: 0,
                            error: -errno,
                            flags: 0,
                        };
                        libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND as _, &resp);
                        let _ = tx.send((msg.clone(), req.data.nr));
                    }
                }
            });
        }
    });
    rx
}

#[test]
fn notify_hands_calls_to_the_agent() {
    minc_tests::sandbox!();
    let env = Env::new();
    let calls = agent(env.path("agent.sock"), libc::EXDEV);
    let section = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": env.path("agent.sock"),
        "listenerMetadata": "from-the-test",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]});
    let b = env.bundle("b", "mkdir /tmp/n; echo mkdir=$?; sleep 1000", |c| {
        c["linux"]["seccomp"] = section
    });
    let out = env.minc(&["run", "-d", "-b", &b, "n1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wait = || {
        calls
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("a notified call")
    };
    let (msg, nr) = wait();
    assert_eq!(nr, libc::SYS_mkdir as i32);
    assert_eq!(msg["fds"], json!(["seccompFd"]), "{msg}");
    assert_eq!(msg["metadata"], "from-the-test", "{msg}");
    assert_eq!(msg["state"]["id"], "n1", "{msg}");
    let init = msg["pid"].as_i64().unwrap();
    assert!(init > 0, "{msg}");
    // exec'd processes get the filter and their own listener.
    let out = env.minc(&["exec", "n1", "--", "sh", "-c", "mkdir /tmp/m; echo rc=$?"]);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("Invalid cross-device link") && all.contains("rc=1"),
        "{all}"
    );
    let (msg, nr) = wait();
    assert_eq!(nr, libc::SYS_mkdir as i32);
    assert!(msg["pid"].as_i64().unwrap() != init, "{msg}");
    assert!(!env.path("rootfs/tmp/n").exists() && !env.path("rootfs/tmp/m").exists());
    assert!(env.minc(&["delete", "-f", "n1"]).status.success());
    env.assert_nothing_left();
}
