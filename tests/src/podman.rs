//! Podman as a test's OCI client, with minc (or any runc-compatible binary) as `--runtime`.
//!
//! Storage (vfs: no overlay mounts to leak), run root, tmpdir and events all live in a temp
//! dir of the test; cgroups are managed with plain cgroupfs (no systemd). Podman still looks
//! at /var/lib/containers, /run/containers and /run/libpod for defaults and locks, so tmpfs
//! are mounted there first: call this only inside a sandbox (`minc_tests::sandbox`). Its
//! conmon processes die with the sandbox's PID namespace.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Podman {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    runtime: PathBuf,
}

impl Podman {
    pub fn new(runtime: &Path) -> Podman {
        for d in ["/var/lib/containers", "/run/containers", "/run/libpod"] {
            std::fs::create_dir_all(d).unwrap();
            crate::run("mount", &["-t", "tmpfs", "-o", "mode=0700", "tmpfs", d]);
        }
        let tmp = crate::tempdir();
        Podman {
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
            runtime: runtime.to_path_buf(),
        }
    }

    /// `podman` with the test's storage and the runtime, then `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("/usr/bin/podman");
        c.arg("--root")
            .arg(self.dir.join("root"))
            .arg("--runroot")
            .arg(self.dir.join("runroot"))
            .arg("--tmpdir")
            .arg(self.dir.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args);
        c
    }

    /// `podman ARGS` that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::ok_via_files(&mut self.cmd(args))
    }

    /// Imports `rootfs` as the image `name` (a rootfs tarball).
    pub fn import(&self, rootfs: &Path, name: &str) {
        let tar = self.dir.join("rootfs.tar");
        crate::image::rootfs_tar(rootfs, &tar);
        self.ok(&["import", tar.to_str().unwrap(), name]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = crate::output_via_files(&mut self.cmd(&["rm", "--all", "--force", "--time", "0"]));
    }
}
