//! The built-in `echo-server` image, made from this workspace alone: one layer holding the
//! static echo-server binary (compiled by build.rs) and a few files, with fixed times so the
//! same source always gives the same digest.

use serde_json::json;

use crate::error::{Error, Result};
use crate::store::{Descriptor, Store, LAYER_TAR};

pub const NAME: &str = "localhost/echo-server:latest";

fn layer() -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, kind: tar::EntryType, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data)
    };
    let dir = tar::EntryType::Directory;
    let file = tar::EntryType::Regular;
    for d in ["etc", "proc", "sys", "dev"] {
        add(d, 0o755, dir, &[])?;
    }
    add("tmp", 0o1777, dir, &[])?;
    add("echo-server", 0o755, file, crate::ECHO_SERVER)?;
    add(
        "etc/passwd",
        0o644,
        file,
        b"root:x:0:0:root:/:/echo-server\nnobody:x:65534:65534:nobody:/:/echo-server\n",
    )?;
    add("etc/group", 0o644, file, b"root:x:0:\nnogroup:x:65534:\n")?;
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        add(f, 0o644, file, b"")?;
    }
    b.into_inner()
}

/// Builds the image and stores it as `localhost/echo-server:latest` (`echo-server`).
pub fn store(store: &Store) -> Result<()> {
    explain!("# build the built-in image {NAME} (static echo-server from this workspace)");
    let layer = layer().map_err(|e| Error::invalid(NAME, e.to_string()))?;
    let (digest, size) = store.put_bytes(&layer)?;
    let config = json!({
        "created": "1970-01-01T00:00:00Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/echo-server"],
            "ExposedPorts": {"8000/tcp": {}},
            "Env": [format!("PATH={}", sysops::container::DEFAULT_PATH)],
            "WorkingDir": "/"
        },
        "rootfs": {"type": "layers", "diff_ids": [digest.clone()]}
    });
    let layers = vec![Descriptor {
        media_type: LAYER_TAR.into(),
        digest,
        size,
        annotations: None,
    }];
    store.commit(NAME, &serde_json::to_vec(&config).expect("json"), layers)?;
    Ok(())
}
