//! End-to-end tests of resource isolation: the real `minc`, busybox bundles and the real
//! kernel's cgroups (on this host: v1 controllers plus a v2 tree at /sys/fs/cgroup/unified;
//! the pure v2 case runs in a VM, tests/vm/cgroups-v2.sh).
//!
//! Each test runs in its sandbox, which also has a cgroup subtree and cgroup namespace of
//! its own (see `minc_tests::sandbox`): the paths below (`/t/ID`) are inside it, and it is
//! removed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use minc_tests::docker_face::DockerFace;
use minc_tests::{stderr, stdout, Bundle};
use serde_json::{json, Value};

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// A busybox bundle (see [`Bundle`]) whose process is `sh -c SCRIPT`, with `resources` merged
/// into its `linux.resources`.
fn ctr(script: &str, resources: Value) -> Bundle {
    let b = Bundle::new(MINC, script);
    b.edit(|cfg| {
        if let Value::Object(r) = resources {
            for (k, v) in r {
                cfg["linux"]["resources"][k] = v;
            }
        }
    });
    b
}

/// What these tests do with a bundle: its containers get the cgroup `/t/ID`.
trait InCgroup {
    /// Sets linux.cgroupsPath to `/t/ID` before create; returns it.
    fn path_for(&self, id: &str) -> String;
    /// `create` and `start` in `/t/ID`; returns the path.
    fn create_start(&self, id: &str) -> String;
    /// `run` in `/t/ID`.
    fn run_in_cgroup(&self, id: &str) -> Output;
    /// [`Bundle::wait_status`] for `stopped`, for 20 s at the most (an OOM kill may take
    /// its time).
    fn wait_stopped(&self, id: &str) -> Value;
}

impl InCgroup for Bundle {
    fn path_for(&self, id: &str) -> String {
        let p = format!("/t/{id}");
        self.edit(|c| c["linux"]["cgroupsPath"] = json!(p));
        p
    }

    fn create_start(&self, id: &str) -> String {
        let p = self.path_for(id);
        self.create(id);
        self.ok(&["start", id]);
        p
    }

    fn run_in_cgroup(&self, id: &str) -> Output {
        self.path_for(id);
        self.run(id)
    }

    fn wait_stopped(&self, id: &str) -> Value {
        self.wait_status_for(id, "stopped", Duration::from_secs(20))
    }
}

/// The cgroup layout seen in the sandbox: true when /sys/fs/cgroup is the v2 tree.
fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup file of the container at `path` for `controller` (v1) or the v2 name.
fn cgfile(controller: &str, path: &str, v1: &str, v2name: &str) -> PathBuf {
    if v2() {
        PathBuf::from(format!("/sys/fs/cgroup{path}/{v2name}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/{controller}{path}/{v1}"))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Every directory named like the container's cgroup in any hierarchy.
fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(d.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for r in roots {
        let p = r.join(path.trim_start_matches('/'));
        if p.is_dir() {
            found.push(p);
        }
    }
    found
}

#[test]
fn memory_limit_oom_kill_is_recorded() {
    minc_tests::sandbox!();
    // dd's 64 MiB buffer cannot fit in 16 MiB (and there is no swap to go to).
    let c = ctr(
        "dd if=/dev/zero of=/dev/null bs=64M count=1; echo survived",
        json!({"memory": {"limit": 16 << 20, "swap": 16 << 20}}),
    );
    let path = c.create_start("oom");
    let s = c.wait_stopped("oom");
    assert_eq!(s["oomKilled"], true, "{s}");
    let limit = cgfile("memory", &path, "memory.limit_in_bytes", "memory.max");
    assert_eq!(read(&limit), (16 << 20).to_string());
    c.ok(&["delete", "oom"]);
    assert!(cgroup_dirs(&path).is_empty(), "{:?}", cgroup_dirs(&path));

    // Under the limit: no OOM, and state says nothing about it.
    let c = ctr(
        "dd if=/dev/zero of=/dev/null bs=1M count=1",
        json!({"memory": {"limit": 16 << 20}}),
    );
    c.create_start("fine");
    let s = c.wait_stopped("fine");
    assert!(s.get("oomKilled").is_none(), "{s}");
    c.ok(&["delete", "fine"]);
}

#[test]
fn pids_limit_stops_forks() {
    minc_tests::sandbox!();
    let c = ctr(
        // busybox sh gives up at the first failed fork, hence the subshell; only builtins
        // after it, since no fork is left for anything else.
        "(for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done) 2>/tmp/err; \
         f=/sys/fs/cgroup/pids/pids.current; [ -e $f ] || f=/sys/fs/cgroup/pids.current; \
         read c < $f; echo $c; read l < /tmp/err; echo \"$l\"",
        json!({"pids": {"limit": 5}}),
    );
    let o = c.run_in_cgroup("pids");
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(lines.len(), 2, "{}{}", stdout(&o), stderr(&o));
    let current: u32 = lines[0].parse().unwrap();
    assert!(current <= 5, "pids.current {current} above the limit");
    assert!(
        lines[1].contains("can't fork"),
        "the fork did not fail: {text}"
    );
}

#[test]
fn cpu_limits_are_in_the_cgroup_files_inside_and_out() {
    minc_tests::sandbox!();
    let inside = if v2() {
        "cat /sys/fs/cgroup/cpu.max"
    } else {
        "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
    };
    let c = ctr(
        &format!("{inside}; cat /proc/self/cgroup"),
        json!({"cpu": {"quota": 25000, "period": 100000, "shares": 512, "cpus": "0"}}),
    );
    let path = c.path_for("cpu");
    c.ok(&["create", "-b", c.dir.to_str().unwrap(), "cpu"]);
    if v2() {
        assert_eq!(read(&cgfile("cpu", &path, "", "cpu.max")), "25000 100000");
        assert_eq!(read(&cgfile("cpu", &path, "", "cpu.weight")), "59");
    } else {
        assert_eq!(read(&cgfile("cpu", &path, "cpu.cfs_quota_us", "")), "25000");
        assert_eq!(read(&cgfile("cpu", &path, "cpu.shares", "")), "512");
        assert_eq!(read(&cgfile("cpuset", &path, "cpuset.cpus", "")), "0");
    }
    c.ok(&["start", "cpu"]);
    c.wait_stopped("cpu");
    let log = c.minc(&["delete", "cpu"]);
    assert!(log.status.success());
    // What the container saw: its limits, and itself at the root of its cgroup namespace.
    let o = c.run_in_cgroup("cpu2");
    let text = stdout(&o);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default();
    assert!(first == "25000 100000", "inside: {text}{}", stderr(&o));
    for l in lines {
        assert!(l.ends_with(":/"), "not rooted at its own cgroup: {l}");
    }
    // Without a cgroup namespace the container's own cgroup directories are bound in
    // instead (v1), so the same files show the same limits.
    c.edit(|cfg| {
        cfg["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "cgroup")
    });
    let o = c.run_in_cgroup("cpu3");
    let text = stdout(&o);
    assert_eq!(
        text.lines().next(),
        Some("25000 100000"),
        "{text}{}",
        stderr(&o)
    );
}

#[test]
fn devices_are_denied_unless_allowed() {
    minc_tests::sandbox!();
    // CAP_MKNOD as Docker grants it: the node can be made, but the cgroup refuses to open it.
    let script = "mknod /tmp/loop b 7 0 && echo made; \
                  (exec 3</tmp/loop) 2>&1; \
                  echo x > /dev/null && echo null-ok; \
                  head -c 4 /dev/urandom | wc -c";
    let c = ctr(script, json!({}));
    c.edit(|cfg| {
        for set in ["bounding", "effective", "permitted"] {
            cfg["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_MKNOD"));
        }
    });
    let o = c.run_in_cgroup("dev");
    let text = stdout(&o);
    assert!(text.contains("made\n"), "{text}{}", stderr(&o));
    assert!(text.contains("Operation not permitted"), "{text}");
    assert!(text.contains("null-ok\n"), "{text}");
    assert!(text.ends_with("4\n"), "{text}");
    // An explicit rule lets that one device through (and only for reading).
    c.edit(|cfg| {
        cfg["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"}));
        cfg["process"]["args"] = json!([
            "sh",
            "-c",
            "mknod /tmp/loop b 7 0; (exec 3</tmp/loop) && echo read-ok; (exec 3>/tmp/loop) 2>&1"
        ]);
    });
    let text = stdout(&c.run_in_cgroup("dev2"));
    assert!(text.contains("read-ok\n"), "{text}");
    assert!(
        text.contains("Operation not permitted"),
        "write must stay denied: {text}"
    );
}

/// CPU time of the container, in nanoseconds, from its cgroup.
fn cpu_ns(path: &str) -> u64 {
    if v2() {
        let stat = read(&cgfile("cpu", path, "", "cpu.stat"));
        let usec: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.parse().ok())
            .unwrap();
        usec * 1000
    } else {
        read(&cgfile("cpuacct", path, "cpuacct.usage", ""))
            .parse()
            .unwrap()
    }
}

#[test]
fn pause_stops_a_busy_loop_and_resume_restarts_it() {
    minc_tests::sandbox!();
    let c = ctr("while :; do :; done", json!({}));
    let path = c.create_start("busy");
    let advance = || {
        let a = cpu_ns(&path);
        std::thread::sleep(Duration::from_millis(300));
        cpu_ns(&path) - a
    };
    assert!(advance() > 50_000_000, "the loop should burn CPU");
    c.ok(&["pause", "busy"]);
    assert_eq!(c.state("busy")["status"], "paused");
    assert_eq!(advance(), 0, "CPU time advanced while paused");
    let e = c.minc(&["exec", "busy", "true"]);
    assert!(
        !e.status.success() && stderr(&e).contains("paused"),
        "{}",
        stderr(&e)
    );
    let again = c.minc(&["pause", "busy"]);
    assert!(!again.status.success(), "pausing twice must fail");
    // runc's --ignore-paused: the process joins the frozen cgroup and runs once resumed.
    let mut late = c
        .cmd(&["exec", "--ignore-paused", "busy", "sh", "-c", "echo ran"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        late.try_wait().unwrap().is_none(),
        "exec --ignore-paused returned while the container was paused"
    );
    c.ok(&["resume", "busy"]);
    let out = late.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    assert_eq!(c.state("busy")["status"], "running");
    assert!(advance() > 50_000_000, "the loop did not resume");
    // A paused container can still be killed and deleted.
    c.ok(&["pause", "busy"]);
    c.ok(&["delete", "-f", "busy"]);
    assert!(cgroup_dirs(&path).is_empty(), "{:?}", cgroup_dirs(&path));
}

#[test]
fn update_changes_live_limits() {
    minc_tests::sandbox!();
    let c = ctr(
        "sleep 100",
        json!({"memory": {"limit": 32 << 20}, "pids": {"limit": 10}}),
    );
    let path = c.create_start("up");
    let mem = cgfile("memory", &path, "memory.limit_in_bytes", "memory.max");
    let pids = cgfile("pids", &path, "pids.max", "pids.max");
    c.ok(&["update", "--memory", "64m", "up"]);
    assert_eq!(read(&mem), (64u64 << 20).to_string());
    c.ok(&[
        "update",
        "--pids-limit",
        "7",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        "up",
    ]);
    assert_eq!(read(&pids), "7");
    let json_file = c.dir.join("res.json");
    std::fs::write(
        &json_file,
        r#"{"memory": {"limit": 50331648}, "pids": {"limit": 9}}"#,
    )
    .unwrap();
    c.ok(&["update", "-r", json_file.to_str().unwrap(), "up"]);
    assert_eq!(read(&mem), "50331648");
    assert_eq!(read(&pids), "9");
    // containerd's form: resources on stdin.
    let o = minc_tests::output_with_stdin(
        &mut c.cmd(&["update", "--resources", "-", "up"]),
        br#"{"pids": {"limit": 11}}"#,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&pids), "11");
    // Bad values: one clear line naming the file or the setting; the old value stays.
    let bad = c.minc(&["update", "--memory", "lots", "up"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("--memory lots"), "{}", stderr(&bad));
    std::fs::write(
        &json_file,
        r#"{"memory": {"limit": 8192, "checkBeforeUpdate": true}}"#,
    )
    .unwrap();
    let bad = c.minc(&["update", "-r", json_file.to_str().unwrap(), "up"]);
    assert!(
        !bad.status.success(),
        "a limit below the usage must be refused"
    );
    assert!(
        stderr(&bad).contains("below the current usage"),
        "{}",
        stderr(&bad)
    );
    assert_eq!(stderr(&bad).lines().count(), 1, "{}", stderr(&bad));
    assert_eq!(read(&mem), "50331648");
    std::fs::write(&json_file, vec![b' '; 2 << 20]).unwrap();
    let bad = c.minc(&["update", "-r", json_file.to_str().unwrap(), "up"]);
    assert!(
        stderr(&bad).contains("larger than 1 MiB"),
        "{}",
        stderr(&bad)
    );
    let bad = c.minc(&["update", "--cpu-rt-runtime", "999999999", "up"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("cpu.rt_runtime_us") || stderr(&bad).contains("realtime"),
        "{}",
        stderr(&bad)
    );
    c.ok(&["delete", "-f", "up"]);
}

#[test]
fn events_stats_match_the_cgroup_files() {
    minc_tests::sandbox!();
    let c = ctr(
        "sleep 100 & sleep 100 & wait",
        json!({"pids": {"limit": 50}}),
    );
    let path = c.create_start("ev");
    std::thread::sleep(Duration::from_millis(200));
    let v: Value = serde_json::from_str(&c.ok(&["events", "--stats", "ev"])).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], "ev");
    let d = &v["data"];
    let pids_now: u64 = read(&cgfile("pids", &path, "pids.current", "pids.current"))
        .parse()
        .unwrap();
    assert_eq!(d["pids"]["current"], pids_now);
    assert_eq!(d["pids"]["current"], 3);
    assert_eq!(d["pids"]["limit"], 50);
    let usage: u64 = read(&cgfile(
        "memory",
        &path,
        "memory.usage_in_bytes",
        "memory.current",
    ))
    .parse()
    .unwrap();
    let reported = d["memory"]["usage"]["usage"].as_u64().unwrap();
    assert!(
        reported > 0 && reported.abs_diff(usage) < 1 << 20,
        "{reported} vs {usage}"
    );
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    // The stream form: a stats line per interval until the container stops.
    let child = c
        .cmd(&["events", "--interval", "100ms", "ev"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(450));
    c.ok(&["kill", "ev", "KILL"]);
    let o = child.wait_with_output().unwrap();
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{}", stdout(&o));
    assert!(lines.iter().all(|l| l["type"] == "stats"));
    c.ok(&["delete", "ev"]);
    let e = c.minc(&["events", "--stats", "ev"]);
    assert!(stderr(&e).contains("does not exist"), "{}", stderr(&e));
}

#[test]
fn exec_joins_the_cgroup_and_delete_leaves_nothing() {
    minc_tests::sandbox!();
    let c = ctr("sleep 100", json!({}));
    let path = c.create_start("ex");
    let found = cgroup_dirs(&path);
    assert!(found.len() >= 2 || v2(), "{found:?}");
    let o = c.minc(&["exec", "ex", "cat", "/proc/self/cgroup"]);
    let text = stdout(&o);
    assert!(!text.is_empty(), "{}", stderr(&o));
    for l in text.lines() {
        assert!(
            l.ends_with(":/"),
            "exec'd process outside the container's cgroup: {l}"
        );
    }
    // And from the host's side: the exec'd process is listed in the container's cgroup.
    let pidfile = c.dir.join("exec.pid");
    let mut child = c
        .cmd(&[
            "exec",
            "--pid-file",
            pidfile.to_str().unwrap(),
            "ex",
            "sleep",
            "5",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pidfile.exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
    let pid = read(&pidfile);
    let procs = read(&cgfile("pids", &path, "cgroup.procs", "cgroup.procs"));
    assert!(procs.lines().any(|p| p == pid), "{pid} not in {procs}");
    // Child cgroups made inside the container's (a nested runtime would) go too.
    for d in cgroup_dirs(&path) {
        std::fs::create_dir(d.join("nested")).unwrap();
    }
    c.ok(&["delete", "-f", "ex"]);
    let _ = child.wait();
    assert!(
        cgroup_dirs(&path).is_empty(),
        "left behind: {:?}",
        cgroup_dirs(&path)
    );
}

#[test]
fn cgroup_paths_systemd_form_and_bad_input() {
    minc_tests::sandbox!();
    let c = ctr("sleep 100", json!({}));
    // The kubelet's cgroupfs form.
    c.edit(|cfg| cfg["linux"]["cgroupsPath"] = json!("/kubepods/burstable/pod42/ctr1"));
    c.ok(&["create", "-b", c.dir.to_str().unwrap(), "k1"]);
    assert!(!cgroup_dirs("/kubepods/burstable/pod42/ctr1").is_empty());
    // A second container may not share a cgroup that has processes.
    let twin = c.minc(&["create", "-b", c.dir.to_str().unwrap(), "k2"]);
    assert!(!twin.status.success());
    assert!(
        stderr(&twin).contains("already holds processes"),
        "{}",
        stderr(&twin)
    );
    assert!(!c.root.join("k2").exists(), "failed create left state");
    assert_eq!(
        c.state("k1")["status"],
        "created",
        "the failed create harmed k1"
    );
    c.ok(&["delete", "-f", "k1"]);
    assert!(cgroup_dirs("/kubepods/burstable/pod42/ctr1").is_empty());

    // systemd's slice:prefix:name, mapped to the directory systemd would use (no systemd
    // runs here).
    c.edit(|cfg| {
        cfg["linux"]["cgroupsPath"] = json!("kubepods-besteffort.slice:cri-containerd:abc")
    });
    let o = c.minc(&[
        "--systemd-cgroup",
        "create",
        "-b",
        c.dir.to_str().unwrap(),
        "s1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let unit = "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-abc.scope";
    assert!(!cgroup_dirs(unit).is_empty(), "no {unit}");
    c.ok(&["delete", "-f", "s1"]);
    assert!(cgroup_dirs(unit).is_empty());

    // A create that died before writing its state: `delete -f` still removes the cgroup it
    // recorded first.
    c.edit(|cfg| cfg["linux"]["cgroupsPath"] = json!("/t/crashed"));
    c.ok(&["create", "-b", c.dir.to_str().unwrap(), "cr"]);
    let pid = c.state("cr")["pid"].as_i64().unwrap() as i32;
    std::fs::remove_file(c.root.join("cr/state.json")).unwrap();
    // SAFETY: killing the init of our own test container.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!cgroup_dirs("/t/crashed").is_empty());
    c.ok(&["delete", "-f", "cr"]);
    assert!(
        cgroup_dirs("/t/crashed").is_empty(),
        "{:?}",
        cgroup_dirs("/t/crashed")
    );
    assert!(!c.root.join("cr").exists());

    // `..` never leaves the hierarchy.
    c.edit(|cfg| cfg["linux"]["cgroupsPath"] = json!("/../../../escape"));
    c.ok(&["create", "-b", c.dir.to_str().unwrap(), "e1"]);
    assert!(!cgroup_dirs("/escape").is_empty());
    c.ok(&["delete", "-f", "e1"]);

    // Values the kernel cannot apply: one line naming the setting, nothing left behind.
    for (res, needle) in [
        (json!({"memory": {"kernel": 1 << 30}}), "memory.kernel"),
        (json!({"blockIO": {"leafWeight": 300}}), "leafWeight"),
        (json!({"memory": {"limit": 100}}), "memory.limit 100"),
        (json!({"unified": {"../../x": "1"}}), "../../x"),
        (
            json!({"devices": [{"allow": true, "access": "rwx"}]}),
            "access",
        ),
    ] {
        let c = ctr("true", res.clone());
        c.edit(|cfg| cfg["linux"]["cgroupsPath"] = json!("/t/bad"));
        let o = c.minc(&["create", "-b", c.dir.to_str().unwrap(), "bad"]);
        assert!(!o.status.success(), "{res}");
        assert!(stderr(&o).contains(needle), "{res}: {}", stderr(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        assert!(cgroup_dirs("/t/bad").is_empty(), "{res}: cgroup left");
        assert!(!c.root.join("bad").exists(), "{res}: state left");
    }
}

/// The Docker-like face: resource flags, limits in `ps` and `inspect`, `stats`, `top`,
/// `--device`, and OOM kills in `inspect` and `ps -a`.
#[test]
fn docker_face_limits_stats_top_and_devices() {
    minc_tests::sandbox!();
    let d = DockerFace::new(MINC);
    d.busybox_image(&[]);

    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "lim",
            "--network",
            "none",
            "--memory",
            "32m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "20",
            "busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_string();
    let ps = d.ok(&["ps"]);
    assert!(ps.contains("mem 32MiB, cpus 0.5, pids 20"), "{ps}");
    let v: Value = serde_json::from_str(&d.ok(&["inspect", "lim"])).unwrap();
    assert_eq!(v["Limits"]["Memory"], 32 << 20, "{v}");
    assert_eq!(v["Limits"]["Pids"], 20);
    assert_eq!(v["Limits"]["Cpus"], 0.5);
    let path = v["Cgroup"].as_str().unwrap().to_string();
    assert_eq!(path, format!("/minc/{id}"));
    let s: Value = serde_json::from_str(
        d.ok(&["stats", "--no-stream", "--format", "json", "lim"])
            .trim(),
    )
    .unwrap();
    assert_eq!(s["MemLimit"], 32 << 20, "{s}");
    assert_eq!(s["PIDs"], 1);
    assert!(s["MemUsage"].as_u64().unwrap() > 0);
    let table = d.ok(&["stats", "--no-stream"]);
    assert!(
        table.contains("MEM USAGE / LIMIT") && table.contains("/ 32MiB"),
        "{table}"
    );
    let top = d.ok(&["top", "lim"]);
    assert!(top.lines().any(|l| l.ends_with("sleep 100")), "{top}");
    d.ok(&["pause", &id]);
    assert!(d.ok(&["ps"]).contains("(Paused)"));
    d.ok(&["resume", &id]);
    d.ok(&["update", "--memory", "48m", &id]);
    assert!(d.ok(&["ps"]).contains("mem 48MiB"), "update shows in ps");
    d.ok(&["rm", "-f", "lim"]);
    assert!(cgroup_dirs(&path).is_empty(), "{:?}", cgroup_dirs(&path));

    // Devices: denied by default (CAP_MKNOD or not), allowed one by one with --device.
    let o = d.minc(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "mknod /tmp/l b 7 0 && (exec 3</tmp/l) 2>&1",
    ]);
    assert!(
        stdout(&o).contains("Operation not permitted"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    if Path::new("/dev/loop0").exists() {
        let o = d.minc(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--device",
            "/dev/loop0:/dev/xloop:r",
            "busybox",
            "sh",
            "-c",
            "(exec 3</dev/xloop) && echo read-ok; (exec 3>/dev/xloop) 2>&1",
        ]);
        let text = stdout(&o);
        assert!(text.contains("read-ok"), "{text}{}", stderr(&o));
        assert!(
            text.contains("Operation not permitted"),
            "only r was granted: {text}"
        );
    }

    // OOM: the exit is recorded as such.
    let o = d.minc(&[
        "run",
        "--name",
        "oomy",
        "--network",
        "none",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&d.ok(&["inspect", "oomy"])).unwrap();
    assert_eq!(v["OOMKilled"], true, "{v}");
    assert!(d.ok(&["ps", "-a"]).contains("Exited (137) OOM-killed"));
    d.ok(&["rm", "oomy"]);

    // Bad flags: one line, nothing made.
    for (flag, value, needle) in [
        ("--memory", "1k", "minimum"),
        ("--cpus", "0", "--cpus"),
        ("--device", "/etc/passwd", "not a device"),
        ("--memory-swap", "8m", "--memory"),
    ] {
        let o = d.minc(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            value,
            "busybox",
            "true",
        ]);
        assert!(!o.status.success(), "{flag} {value}");
        assert!(
            stderr(&o).contains(needle),
            "{flag} {value}: {}",
            stderr(&o)
        );
        assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    }
    assert!(
        d.ok(&["ps", "-a", "-q"]).trim().is_empty(),
        "a failed run left a container"
    );
}
