//! The Docker-like face for end-to-end tests: a state root and a data root of the test's own,
//! and a busybox image imported from a rootfs tarball (no registry).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct DockerFace {
    minc: PathBuf,
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub data: PathBuf,
    pub dir: PathBuf,
}

impl DockerFace {
    pub fn new(minc: impl Into<PathBuf>) -> DockerFace {
        let tmp = crate::tempdir();
        DockerFace {
            minc: minc.into(),
            root: tmp.path().join("run"),
            data: tmp.path().join("data"),
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    /// `minc --root R --data-root D ARGS`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.minc);
        c.arg("--root")
            .arg(&self.root)
            .arg("--data-root")
            .arg(&self.data)
            .args(args);
        c
    }

    /// Runs minc to completion (output through files: see `output_via_files`).
    pub fn minc(&self, args: &[&str]) -> Output {
        crate::output_via_files(&mut self.cmd(args))
    }

    pub fn ok(&self, args: &[&str]) -> String {
        crate::ok_via_files(&mut self.cmd(args))
    }

    /// Imports a busybox rootfs (plus `extra` files: (path in the image, host file)) as the
    /// image `busybox`.
    pub fn busybox_image(&self, extra: &[(&str, &Path)]) {
        import_busybox(&self.dir, extra, |args| self.ok(args));
    }

    pub fn inspect(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["inspect", name])).unwrap()
    }

    /// Container directories left under the data root.
    pub fn containers_left(&self) -> usize {
        std::fs::read_dir(self.data.join("containers"))
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    }
}

/// Imports a busybox rootfs (plus `extra` files: (path in the image, host file)), made in
/// `dir`, as the image `busybox`, with `minc` running minc with the test's roots.
pub fn import_busybox(dir: &Path, extra: &[(&str, &Path)], minc: impl Fn(&[&str]) -> String) {
    let rootfs = dir.join("bb");
    crate::busybox_rootfs(&rootfs);
    for (dest, src) in extra {
        std::fs::copy(src, rootfs.join(dest.trim_start_matches('/'))).unwrap();
    }
    let tar = dir.join("busybox.tar");
    crate::image::rootfs_tar(&rootfs, &tar);
    minc(&[
        "image",
        "import",
        tar.to_str().unwrap(),
        "--name",
        "busybox",
        "--cmd",
        "sh",
    ]);
}
