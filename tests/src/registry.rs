//! A real OCI registry for end-to-end tests (Debian's `docker-registry`, distribution 2.8),
//! started on 127.0.0.1 inside the test's sandbox (its own network namespace, so the port
//! is the test's alone) with a throwaway config and storage directory; and OCI image
//! layouts built here (busybox layers, one or two platforms) for `skopeo copy` to push.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub struct Registry {
    pub child: Child,
    pub port: u16,
    /// The storage directory (`docker/registry/v2/...` below it).
    pub storage: PathBuf,
    /// Its access log (stderr).
    pub log: PathBuf,
}

impl Registry {
    /// Starts a registry on 127.0.0.1:`port` storing in `dir/storage`; with `htpasswd`
    /// (user, password) it asks for basic auth.
    pub fn start(dir: &Path, port: u16, htpasswd: Option<(&str, &str)>) -> Registry {
        let storage = dir.join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some((user, pass)) = htpasswd {
            let file = dir.join("htpasswd");
            let out = crate::run("htpasswd", &["-Bbn", user, pass]);
            std::fs::write(&file, out).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: minc-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg = dir.join("config.yml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.join(format!("registry-{port}.log"));
        // The access log goes to stdout, the rest to stderr: both into the log file.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("docker-registry is installed (apt-get install docker-registry)");
        let r = Registry {
            child,
            port,
            storage,
            log,
        };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Access-log lines of requests that match `method` and contain `part`.
    pub fn requests(&self, method: &str, part: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"{method} ")) && l.contains(part))
            .count()
    }

    /// Blob downloads so far.
    pub fn blob_gets(&self) -> usize {
        self.requests("GET", "/blobs/sha256:")
    }

    /// The stored data of a blob.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = &digest[7..];
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Kills the registry (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A tar of `dir` (symlinks stored as links, not followed).
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.into_inner().unwrap()
}

/// A tar of files given as (path, mode, content); directories as (path ending in '/').
pub fn tar_files(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, data) in files {
        let mut h = tar::Header::new_gnu();
        if let Some(dir) = path.strip_suffix('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(*mode);
            h.set_size(0);
            b.append_data(&mut h, dir, &[][..]).unwrap();
        } else {
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// The busybox rootfs (`crate::busybox_rootfs`) as a layer tar.
pub fn busybox_layer(tmp: &Path) -> Vec<u8> {
    let root = tmp.join("busybox-rootfs");
    if !root.exists() {
        crate::busybox_rootfs(&root);
    }
    tar_dir(&root)
}

/// One platform's image: its layers (uncompressed tars; stored gzipped) and config.
pub struct PlatformImage {
    pub arch: &'static str,
    pub layers: Vec<Vec<u8>>,
    /// Merged into the config's `config` object (Cmd, Volumes, ...).
    pub config: Value,
}

/// Writes an OCI image layout at `dir` whose `tag` names one image (one platform) or an
/// image index (several). Returns the digest `tag` points at.
pub fn oci_layout(dir: &Path, tag: &str, images: &[PlatformImage]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let d = sha(data);
        std::fs::write(blobs.join(&d[7..]), data).unwrap();
        (d, data.len())
    };
    let mut manifests = Vec::new();
    for img in images {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for l in &img.layers {
            diff_ids.push(sha(l));
            let (d, n) = put(&gzip(l));
            layers.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}));
        }
        let mut cfg = json!({"Env": ["PATH=/bin"], "Cmd": ["sh"]});
        if let Value::Object(extra) = &img.config {
            for (k, v) in extra {
                cfg[k] = v.clone();
            }
        }
        let config = serde_json::to_vec(&json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": img.arch, "os": "linux", "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": diff_ids}
        }))
        .unwrap();
        let (cd, cn) = put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
            "layers": layers
        }))
        .unwrap();
        let (md, mn) = put(&manifest);
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
            "platform": {"os": "linux", "architecture": img.arch}
        }));
    }
    let top = if manifests.len() == 1 {
        manifests.pop().unwrap()
    } else {
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests
        }))
        .unwrap();
        let (d, n) = put(&index);
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": n})
    };
    let digest = top["digest"].as_str().unwrap().to_string();
    let mut entry = top;
    entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [entry]})).unwrap(),
    )
    .unwrap();
    digest
}

/// `skopeo copy --all oci:LAYOUT:TAG docker://DEST` over plain HTTP (OCI media types).
pub fn skopeo_push(layout: &Path, tag: &str, dest: &str, creds: Option<&str>) {
    skopeo_push_as(layout, tag, dest, creds, None)
}

/// [`skopeo_push`] converting to `format` (`v2s2`: Docker's manifest and manifest list).
pub fn skopeo_push_as(
    layout: &Path,
    tag: &str,
    dest: &str,
    creds: Option<&str>,
    format: Option<&str>,
) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--all", "--quiet", "--dest-tls-verify=false"]);
    if let Some(f) = format {
        cmd.arg("--format").arg(f);
    }
    if let Some(c) = creds {
        cmd.arg("--dest-creds").arg(c);
    }
    let out = cmd
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{dest}"))
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo copy to {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The manifest (or index) a registry serves for `reference`, byte for byte, as skopeo reads
/// it over plain HTTP (`skopeo inspect --raw`, which must succeed).
pub fn skopeo_raw(reference: &str, creds: Option<&str>) -> Vec<u8> {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.arg("--creds").arg(c);
    }
    let out = cmd.arg(format!("docker://{reference}")).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The manifest digest a registry gives for `reference` (`skopeo inspect --raw`).
pub fn skopeo_digest(reference: &str, creds: Option<&str>) -> String {
    sha(&skopeo_raw(reference, creds))
}
