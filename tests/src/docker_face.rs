//! The Docker-like face for end-to-end tests: a state root and a data root of the test's own,
//! and a busybox image imported from a rootfs tarball (no registry).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// minc with a state root (`--root`) and a data root (`--data-root`) of its own, in a
/// temporary directory (`dir`, removed when this is dropped) where a test may keep its files
/// too. Two of them on one host are two separate minc installations.
pub struct DockerFace {
    minc: PathBuf,
    env: Vec<(String, OsString)>,
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
            env: Vec::new(),
            root: tmp.path().join("run"),
            data: tmp.path().join("data"),
            dir: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }

    /// The same, with `key=value` in the environment of every minc it runs (e.g.
    /// `MINC_AUTH_FILE`).
    pub fn with_env(mut self, key: &str, value: impl Into<OsString>) -> DockerFace {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// `minc --root R --data-root D ARGS`, with the environment given to [`Self::with_env`].
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.minc);
        c.arg("--root")
            .arg(&self.root)
            .arg("--data-root")
            .arg(&self.data)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Runs minc to completion (output through files: see `output_via_files`).
    pub fn minc(&self, args: &[&str]) -> Output {
        crate::output_via_files(&mut self.cmd(args))
    }

    /// Runs minc, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        crate::ok_via_files(&mut self.cmd(args))
    }

    /// `minc run -d --name NAME ARGS...` (flags, then the image and its command), which must
    /// succeed: the new container's id.
    pub fn run_d(&self, name: &str, args: &[&str]) -> String {
        let mut run = vec!["run", "-d", "--name", name];
        run.extend(args);
        self.ok(&run).trim().to_string()
    }

    /// Runs minc, which must fail the way bad input does (see [`crate::bad_input_error`]):
    /// that one line.
    pub fn fails(&self, args: &[&str]) -> String {
        crate::bad_input_error(&self.minc(args))
    }

    /// Imports a busybox rootfs (plus `extra` files: (path in the image, host file)) as the
    /// image `busybox`.
    pub fn busybox_image(&self, extra: &[(&str, &Path)]) {
        import_busybox(&self.dir, extra, |args| self.ok(args));
    }

    pub fn inspect(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["inspect", name])).unwrap()
    }

    /// The image store's index (`images/index.json` under the data root).
    pub fn image_index(&self) -> Value {
        let index = std::fs::read(self.data.join("images/index.json")).unwrap();
        serde_json::from_slice(&index).unwrap()
    }

    /// How many blobs the image store holds.
    pub fn blob_count(&self) -> usize {
        std::fs::read_dir(self.data.join("images/blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Files in the image store's work directories (partial downloads, unfinished imports).
    pub fn store_temp_files(&self) -> Vec<PathBuf> {
        crate::files_under(&self.data.join("images/tmp"))
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
