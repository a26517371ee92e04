//! containerd as a test's OCI client, with minc (or any runc-compatible binary) as the runtime
//! its runc shim drives.
//!
//! Everything lives in a temp dir of the test: config, root, state, the gRPC and ttrpc
//! sockets, the log. The shims keep their own sockets and runtime state under
//! /run/containerd, so a tmpfs is mounted there first: call this only inside a sandbox
//! (`minc_tests::sandbox`), whose mount namespace it belongs to. containerd is started and
//! stopped by its PID; shims that outlive it die with the sandbox's PID namespace.
//!
//! The runc shim (`io.containerd.runc.v2`) runs `runtime` as its BinaryName: `ctr` passes
//! that per container (`--runc-binary`), which is what `ctr` offers; a CRI setup would put
//! `BinaryName` in the runtime's options in config.toml instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Containerd {
    child: Child,
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub socket: PathBuf,
    runtime: PathBuf,
}

impl Containerd {
    /// Starts containerd with its state in a new temp dir; waits until it answers.
    pub fn start(runtime: &Path) -> Containerd {
        Containerd::start_with(runtime, None)
    }

    /// Like `start`; with `cri`, the CRI plugin runs too, configured by that TOML (the
    /// `[plugins."io.containerd.grpc.v1.cri"]` tables), and serves on the same socket.
    pub fn start_with(runtime: &Path, cri: Option<&str>) -> Containerd {
        std::fs::create_dir_all("/run/containerd").unwrap();
        crate::run(
            "mount",
            &["-t", "tmpfs", "-o", "mode=0711", "tmpfs", "/run/containerd"],
        );
        let tmp = crate::tempdir();
        let dir = tmp.path().to_path_buf();
        let socket = dir.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{no_cri}"io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
{cri}
"#,
            no_cri = if cri.is_some() {
                ""
            } else {
                r#""io.containerd.grpc.v1.cri", "#
            },
            cri = cri.unwrap_or_default(),
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed");
        let c = Containerd {
            child,
            _tmp: tmp,
            dir,
            socket,
            runtime: runtime.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !crate::output_via_files(&mut c.ctr(&["version"]))
            .status
            .success()
        {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// `ctr -a SOCKET ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.socket).args(args);
        c
    }

    /// `ctr run` with the native snapshotter and the runtime binary, then `extra` (flags,
    /// image, id, command).
    pub fn run(&self, flags: &[&str], rest: &[&str]) -> Command {
        let mut c = self.ctr(&["run", "--snapshotter", "native", "--runc-binary"]);
        c.arg(&self.runtime).args(flags).args(rest);
        c
    }

    /// Imports `rootfs` as the image `name` (a docker-archive made from it).
    pub fn import(&self, rootfs: &Path, name: &str, cmd: &[&str]) {
        self.import_to("default", "native", rootfs, name, cmd);
    }

    /// Imports `rootfs` as the image `name` into a containerd namespace (`k8s.io` is the
    /// CRI plugin's), unpacked for `snapshotter`.
    pub fn import_to(&self, ns: &str, snapshotter: &str, rootfs: &Path, name: &str, cmd: &[&str]) {
        let work = tempfile::Builder::new()
            .prefix("image-")
            .tempdir_in(&self.dir)
            .unwrap();
        let archive = crate::image::docker_archive(rootfs, name, cmd, work.path());
        crate::ok_via_files(&mut self.ctr(&[
            "-n",
            ns,
            "images",
            "import",
            "--snapshotter",
            snapshotter,
            archive.to_str().unwrap(),
        ]));
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: signalling the containerd we started, by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
