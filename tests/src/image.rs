//! Image archives made from a rootfs directory, for clients that import images (containerd's
//! `ctr images import` takes a docker-archive; Podman imports a plain rootfs tarball). Nothing
//! is pulled from a registry.

use std::path::{Path, PathBuf};

/// `tar` of a rootfs directory: a plain rootfs tarball (also one docker-archive layer).
pub fn rootfs_tar(rootfs: &Path, out: &Path) {
    tar(rootfs, out, &["."]);
}

/// `tar -C DIR -cf OUT ENTRIES...`.
fn tar(dir: &Path, out: &Path, entries: &[&str]) {
    let mut args = vec!["-C", dir.to_str().unwrap(), "-cf", out.to_str().unwrap()];
    args.extend(entries);
    crate::run("tar", &args);
}

/// A one-layer docker-archive (`docker save` format) of `rootfs`, tagged `name` (e.g.
/// `docker.io/library/bb:latest`), whose command is `cmd`. Returns the archive's path in `dir`.
pub fn docker_archive(rootfs: &Path, name: &str, cmd: &[&str], dir: &Path) -> PathBuf {
    let work = dir.join("docker-archive");
    std::fs::create_dir_all(&work).unwrap();
    let layer = work.join("layer.tar");
    rootfs_tar(rootfs, &layer);
    let sum = crate::run("sha256sum", &[layer.to_str().unwrap()]);
    let diff_id = format!("sha256:{}", sum.split_whitespace().next().unwrap());
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    std::fs::write(work.join("config.json"), config.to_string()).unwrap();
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": [name], "Layers": ["layer.tar"]}]);
    std::fs::write(work.join("manifest.json"), manifest.to_string()).unwrap();
    let out = dir.join("image.tar");
    tar(&work, &out, &["manifest.json", "config.json", "layer.tar"]);
    out
}
