//! A runc-style bundle for end-to-end tests: a busybox rootfs, a config.json written by
//! `minc spec`, and a state root of its own; plus helpers to look at what a test left.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A bundle (busybox rootfs + config.json from `minc spec`) and a state root.
pub struct Bundle {
    minc: PathBuf,
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub root: PathBuf,
}

impl Bundle {
    /// A bundle whose process is `sh -c SCRIPT`, with a writable root.
    pub fn new(minc: impl Into<PathBuf>, script: &str) -> Bundle {
        let tmp = crate::tempdir();
        let dir = tmp.path().join("bundle");
        let root = tmp.path().join("state");
        crate::busybox_rootfs(&dir.join("rootfs"));
        let b = Bundle {
            minc: minc.into(),
            _tmp: tmp,
            dir,
            root,
        };
        let out = b.minc(&["spec", "-b", b.dir.to_str().unwrap()]);
        assert!(out.status.success(), "spec: {}", stderr(&out));
        b.edit(|c| {
            c["process"]["args"] = json!(["sh", "-c", script]);
            c["root"]["readonly"] = json!(false);
        });
        b
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.dir.join("config.json");
        let mut c: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut c);
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.minc);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Runs `minc ARGS` to completion (output through files: see `output_via_files`).
    pub fn minc(&self, args: &[&str]) -> Output {
        crate::output_via_files(&mut self.cmd(args))
    }

    /// `minc ARGS` that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::ok_via_files(&mut self.cmd(args))
    }

    pub fn bundle_arg(&self) -> String {
        self.dir.display().to_string()
    }

    pub fn run(&self, id: &str) -> Output {
        self.minc(&["run", "-b", &self.bundle_arg(), id])
    }

    pub fn create(&self, id: &str) {
        self.ok(&["create", "-b", &self.bundle_arg(), id]);
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Waits until the container's status is `want` (for 10 s at the most); its state then.
    pub fn wait_status(&self, id: &str, want: &str) -> Value {
        self.wait_status_for(id, want, Duration::from_secs(10))
    }

    /// Waits until the container's status is `want`, for `within` at the most (then panics
    /// with the last state); its state then.
    pub fn wait_status_for(&self, id: &str, want: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.state(id);
            if s["status"] == want {
                return s;
            }
            assert!(Instant::now() < deadline, "{id} never became {want}: {s}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Puts the container in a user namespace of its own whose ids 0-65535 are the host's
    /// `first`..`first + 65535` (see [`user_namespace`]), and gives the rootfs to that range
    /// (`chown -R`), as an image unpacked for it would be.
    pub fn map_root_to(&self, first: u32) {
        self.chown_rootfs(&format!("{first}:{first}"));
        self.edit(|c| user_namespace(c, first));
    }

    /// `chown -R -h OWNER` of the rootfs (`OWNER` as `UID:GID`).
    pub fn chown_rootfs(&self, owner: &str) {
        crate::run(
            "chown",
            &["-R", "-h", owner, self.rootfs().to_str().unwrap()],
        );
    }

    /// Asserts the state root holds no container directory.
    pub fn assert_no_state(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "state left behind: {left:?}");
    }
}

/// Adds a new user namespace to the config `c`, mapping container ids 0-65535 to the host's
/// `first`..`first + 65535` (uidMappings and gidMappings alike).
pub fn user_namespace(c: &mut Value, first: u32) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": first, "size": 65536}]);
    c["linux"]["uidMappings"] = map.clone();
    c["linux"]["gidMappings"] = map;
}

/// The error of a minc that failed the way bad input must (asserted): exit code 1 and one
/// line on stderr, `minc: ...`, naming the cause.
pub fn bad_input_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit code 1: {err}");
    assert!(err.starts_with("minc: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Mount points under `path` in this (sandbox) mount namespace.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let p = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&p))
        .map(String::from)
        .collect()
}

/// Processes in the sandbox other than this test and its ancestors (PID 1 is the test).
pub fn stray_processes() -> Vec<String> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.parse::<u32>().is_ok() && *n != me && n != "1")
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (!cmd.is_empty()).then(|| String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect()
}

/// The descriptors process `pid` holds, as "0 1 2 " (from /proc/PID/fd, read from outside).
pub fn open_fds(pid: i32) -> String {
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    fds.iter().map(|f| format!("{f} ")).collect()
}

/// Reaps `pid`, a process this test became the parent of (the sandbox's PID 1 inherits
/// what detached processes leave behind, as a subreaper such as containerd's shim would):
/// until it is reaped, a container whose PID namespace it was in cannot finish exiting.
pub fn reap(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // SAFETY: waitpid without blocking.
        let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        if r == pid || r < 0 {
            return;
        }
        assert!(Instant::now() < deadline, "process {pid} never exited");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PID of a child of `parent` (bounded wait for it to appear).
pub fn child_of(parent: u32) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rfind(')')
                .and_then(|i| stat[i + 2..].split(' ').nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(parent) {
                return pid;
            }
        }
        assert!(Instant::now() < deadline, "{parent} has no child");
        std::thread::sleep(Duration::from_millis(20));
    }
}
