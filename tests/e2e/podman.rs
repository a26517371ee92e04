//! Podman with minc as its OCI runtime (`podman --runtime minc --cgroup-manager cgroupfs`):
//! resource limits set by Podman are enforced, and Podman's own view of the container's
//! cgroup (`podman stats`, `inspect`'s OOMKilled, `pause`) is the container's.
//!
//! All of Podman's state (storage, run root, tmp, its shared-memory locks) lives in temp
//! dirs inside the test's sandbox, which also has its own cgroup subtree; the image is a
//! busybox rootfs imported locally (`podman import`), no registry is involved.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

struct Podman {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Podman {
    fn new() -> Podman {
        let tmp = minc_tests::tempdir();
        let dir = tmp.path().to_path_buf();
        // Podman's locks are a shared-memory segment: keep ours apart from any other Podman.
        minc_tests::run("mount", &["-t", "tmpfs", "tmpfs", "/dev/shm"]);
        for d in ["storage", "run", "tmp", "rt", "cfg"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(
            dir.join("cfg/containers.conf"),
            "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n\
             [network]\ndefault_network = \"none\"\n",
        )
        .unwrap();
        let p = Podman { _tmp: tmp, dir };
        let rootfs = p.dir.join("bb");
        minc_tests::busybox_rootfs(&rootfs);
        let tar = p.dir.join("busybox.tar");
        minc_tests::run(
            "tar",
            &[
                "-C",
                rootfs.to_str().unwrap(),
                "-cf",
                tar.to_str().unwrap(),
                ".",
            ],
        );
        p.ok(&[
            "import",
            "--change",
            "CMD=sh",
            tar.to_str().unwrap(),
            "localhost/busybox",
        ]);
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = |s: &str| self.dir.join(s);
        let mut c = Command::new("podman");
        // (conmon writes its `oom` marker into its working directory)
        c.current_dir(&self.dir)
            .env("CONTAINERS_CONF", d("cfg/containers.conf"))
            .env("TMPDIR", d("tmp"))
            .arg("--root")
            .arg(d("storage"))
            .arg("--runroot")
            .arg(d("run"))
            .arg("--tmpdir")
            .arg(d("tmp"))
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--runtime")
            // MINC_TEST_PODMAN_RUNTIME=runc runs the same checks against a reference runtime.
            .arg(std::env::var("MINC_TEST_PODMAN_RUNTIME").unwrap_or_else(|_| MINC.into()))
            .arg("--cgroup-manager")
            .arg("cgroupfs")
            .args(args);
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        minc_tests::output_via_files(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        minc_tests::ok_via_files(&mut self.cmd(args))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Directories of a cgroup path in every hierarchy of the sandbox.
fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(name))
            {
                found.push(p.clone());
            }
            if p.components().count() < 9 {
                stack.push(p);
            }
        }
    }
    found
}

#[test]
fn podman_limits_stats_and_pause_with_minc() {
    minc_tests::sandbox!();
    let p = Podman::new();

    // --memory: the container that allocates past it is OOM-killed, and Podman knows.
    let o = p.podman(&[
        "run",
        "--name",
        "oom",
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        "localhost/busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         dd if=/dev/zero of=/dev/null bs=64M count=1",
    ]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(
        text(&o.stdout).trim(),
        "16777216",
        "the limit as the container sees it"
    );
    // The same allocation under a roomier limit succeeds: the 137 above was the limit.
    // (Podman 4.3's inspect OOMKilled stays false on this v1 host with runc too: conmon
    // writes its oom marker where this Podman does not look; minc's own `state` reports it.)
    let o = p.podman(&[
        "run",
        "--rm",
        "--memory",
        "128m",
        "localhost/busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    p.ok(&["rm", "oom"]);

    // --pids-limit: forks past it fail.
    let o = p.podman(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "localhost/busybox",
        "sh",
        "-c",
        "(for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done) 2>/tmp/e; read l < /tmp/e; echo $l",
    ]);
    assert!(
        text(&o.stdout).contains("can't fork"),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    // stats: the container's own cgroup (its limit, its one process), not Podman's.
    let id = p
        .ok(&[
            "run",
            "-d",
            "--name",
            "s1",
            "--memory",
            "32m",
            "--pids-limit",
            "20",
            "localhost/busybox",
            "sleep",
            "100",
        ])
        .trim()
        .to_string();
    let stats: Value =
        serde_json::from_str(&p.ok(&["stats", "--no-stream", "--format", "json", "s1"])).unwrap();
    let s = &stats[0];
    assert_eq!(s["pids"], "1", "{stats}");
    let mem = s["mem_usage"].as_str().unwrap_or_default();
    assert!(
        mem.ends_with("/ 33.55MB"),
        "the limit is not the container's: {stats}"
    );
    let dirs = cgroup_dirs(&id);
    assert!(!dirs.is_empty(), "no cgroup named after the container");
    assert!(
        dirs.iter().any(
            |d| read_trim(&d.join("memory.limit_in_bytes")) == "33554432"
                || read_trim(&d.join("memory.max")) == "33554432"
        ),
        "{dirs:?}"
    );

    // pause/unpause go through minc's freezer.
    p.ok(&["pause", "s1"]);
    assert_eq!(
        p.ok(&["inspect", "--format", "{{.State.Status}}", "s1"])
            .trim(),
        "paused"
    );
    p.ok(&["unpause", "s1"]);
    assert_eq!(
        p.ok(&["inspect", "--format", "{{.State.Status}}", "s1"])
            .trim(),
        "running"
    );

    p.ok(&["rm", "-f", "-t", "0", "s1"]);
    assert!(
        cgroup_dirs(&id).is_empty(),
        "cgroups left: {:?}",
        cgroup_dirs(&id)
    );
}

fn read_trim(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}
