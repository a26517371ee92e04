//! Imports: an OCI image layout (directory or oci-archive tar), a docker-archive
//! (`docker save`), or a plain rootfs tarball. Every blob is hashed on the way in; nothing is
//! named in index.json until all of an image's blobs are stored and verified.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use crate::digest;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::store::{
    default_config, ref_name, Descriptor, ImageRef, Index, Manifest, Store, LAYER_TAR,
    MANIFEST_TYPE,
};

#[derive(Debug, Default, Clone)]
pub struct ImportOptions {
    /// `name[:tag]` to store the image under.
    pub name: Option<String>,
    /// For rootfs tarballs (which have no config).
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// Show a progress line on a terminal when the import takes more than a moment.
    pub progress: bool,
}

/// `docker save`'s manifest.json entries.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

enum Kind {
    OciArchive,
    DockerArchive,
    Rootfs,
}

impl Store {
    pub fn import(&self, path: &Path, opts: &ImportOptions) -> Result<ImageRef> {
        let what = path.display().to_string();
        if path.is_dir() {
            if !path.join("oci-layout").exists() {
                return Err(Error::invalid(
                    what,
                    "a directory that is not an OCI image layout (no oci-layout file)",
                ));
            }
            return self.import_layout(path, opts, &what);
        }
        explain!("# import {what}");
        match sniff(path)? {
            Kind::OciArchive => {
                let tmp = self.extract(path)?;
                self.import_layout(tmp.path(), opts, &what)
            }
            Kind::DockerArchive => {
                let tmp = self.extract(path)?;
                self.import_docker(tmp.path(), opts, &what)
            }
            Kind::Rootfs => self.import_rootfs(path, opts),
        }
    }

    /// Extracts an archive into a temporary directory of the store (the tar crate's own
    /// unpack refuses entries that would land outside it).
    fn extract(&self, path: &Path) -> Result<tempfile::TempDir> {
        let tmp = self.temp_dir()?;
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let r = digest::decompress(f).map_err(|e| Error::io(path, e))?;
        tar::Archive::new(r).unpack(tmp.path()).map_err(|e| {
            Error::invalid(
                path.display().to_string(),
                format!("not a valid archive: {e}"),
            )
        })?;
        Ok(tmp)
    }

    fn import_layout(&self, dir: &Path, opts: &ImportOptions, what: &str) -> Result<ImageRef> {
        let index: Index = read_json(&dir.join("index.json"))?;
        let desc = index
            .manifests
            .first()
            .ok_or_else(|| Error::invalid(what, "index.json lists no image"))?;
        if desc.media_type != MANIFEST_TYPE {
            return Err(Error::invalid(
                what,
                format!("unsupported media type {}", desc.media_type),
            ));
        }
        let blob = |d: &str| -> Result<std::path::PathBuf> {
            let hex =
                digest::hex(d).ok_or_else(|| Error::invalid(what, format!("bad digest {d}")))?;
            let p = dir.join("blobs/sha256").join(hex);
            if p.exists() {
                Ok(p)
            } else {
                Err(Error::invalid(what, format!("blob {d} is missing")))
            }
        };
        let manifest: Manifest = read_json(&blob(&desc.digest)?)?;
        for layer in &manifest.layers {
            if !layer
                .media_type
                .starts_with("application/vnd.oci.image.layer.v1.tar")
                && !layer
                    .media_type
                    .starts_with("application/vnd.docker.image.rootfs.diff.tar")
            {
                return Err(Error::invalid(
                    what,
                    format!(
                        "layer {}: unknown media type {}",
                        layer.digest, layer.media_type
                    ),
                ));
            }
        }
        // All blobs in (verified) before the name points at them.
        let mut progress = Progress::new(opts.progress);
        let total = manifest.layers.len() + 1;
        for (i, d) in std::iter::once(&manifest.config)
            .chain(&manifest.layers)
            .enumerate()
        {
            let p = blob(&d.digest)?;
            let f = fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            progress.stage(format!("importing blob {}/{total}", i + 1));
            self.put_blob(progress.reader(f), Some(&d.digest))?;
        }
        let p = blob(&desc.digest)?;
        let (digest, size) = self.put_blob(
            fs::File::open(&p).map_err(|e| Error::io(&p, e))?,
            Some(&desc.digest),
        )?;
        let stem = Path::new(what)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image");
        let name = match (&opts.name, ref_name(desc)) {
            (Some(n), _) => n.clone(),
            (None, Some(r)) if r.contains(':') || r.contains('/') => r.to_string(),
            (None, Some(tag)) => format!("{stem}:{tag}"),
            (None, None) => stem.to_string(),
        };
        self.tag(&name, &digest, size)
    }

    fn import_docker(&self, dir: &Path, opts: &ImportOptions, what: &str) -> Result<ImageRef> {
        let entries: Vec<DockerManifest> = read_json(&dir.join("manifest.json"))?;
        let m = entries
            .first()
            .ok_or_else(|| Error::invalid(what, "manifest.json lists no image"))?;
        let member = |rel: &str| -> Result<fs::File> {
            let clean = crate::safepath::clean(Path::new(rel))
                .map_err(|why| Error::invalid(what, format!("{rel}: {why}")))?;
            let p = dir.join(clean);
            fs::File::open(&p).map_err(|_| {
                Error::invalid(what, format!("{rel} named in manifest.json is missing"))
            })
        };
        let (config_digest, _) = self.put_blob(member(&m.config)?, None)?;
        let mut layers = Vec::new();
        let mut progress = Progress::new(opts.progress);
        for (i, l) in m.layers.iter().enumerate() {
            progress.stage(format!("importing layer {}/{}", i + 1, m.layers.len()));
            let mut f = member(l)?;
            let mut magic = [0u8; 4];
            let n = f.read(&mut magic).unwrap_or(0);
            let media_type = match &magic[..n] {
                [0x1f, 0x8b, ..] => format!("{LAYER_TAR}+gzip"),
                [0x28, 0xb5, 0x2f, 0xfd] => format!("{LAYER_TAR}+zstd"),
                _ => LAYER_TAR.to_string(),
            };
            let (digest, size) = self.put_blob(progress.reader(member(l)?), None)?;
            layers.push(Descriptor {
                media_type,
                digest,
                size,
                annotations: None,
            });
        }
        let config = self.read_blob(&config_digest)?;
        let name = opts
            .name
            .clone()
            .or_else(|| {
                m.repo_tags
                    .as_ref()
                    .and_then(|t| t.first().map(|t| short_name(t)))
            })
            .unwrap_or_else(|| {
                Path::new(what)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("image")
                    .to_string()
            });
        self.commit(&name, &config, layers)
    }

    fn import_rootfs(&self, path: &Path, opts: &ImportOptions) -> Result<ImageRef> {
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut progress = Progress::new(opts.progress);
        progress.stage("importing rootfs".into());
        let (digest, size) = self.put_blob(progress.reader(f), None)?;
        // The diff_id is the digest of the uncompressed tar.
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut r = digest::decompress(f).map_err(|e| Error::io(path, e))?;
        let (diff_id, _) =
            digest::copy_hashing(&mut r, &mut std::io::sink()).map_err(|e| Error::io(path, e))?;
        let media_type = if diff_id == digest {
            LAYER_TAR.to_string()
        } else {
            let mut magic = [0u8; 2];
            let _ = fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
            if magic == [0x1f, 0x8b] {
                format!("{LAYER_TAR}+gzip")
            } else {
                format!("{LAYER_TAR}+zstd")
            }
        };
        let config = default_config(&[diff_id], opts.entrypoint.as_deref(), opts.cmd.as_deref());
        let name = opts.name.clone().unwrap_or_else(|| {
            let stem = path.file_name().and_then(|s| s.to_str()).unwrap_or("image");
            stem.split('.').next().unwrap_or(stem).to_string()
        });
        self.commit(
            &name,
            &config,
            vec![Descriptor {
                media_type,
                digest,
                size,
                annotations: None,
            }],
        )
    }
}

/// Looks at an archive's member names (one streaming pass) to tell the formats apart.
fn sniff(path: &Path) -> Result<Kind> {
    let what = path.display().to_string();
    let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let r = digest::decompress(f).map_err(|e| Error::io(path, e))?;
    let mut ar = tar::Archive::new(r);
    let entries = ar
        .entries()
        .map_err(|e| Error::invalid(&what, format!("not an archive: {e}")))?;
    let mut any = false;
    for e in entries {
        let e = e.map_err(|e| Error::invalid(&what, format!("not an archive: {e}")))?;
        any = true;
        let p = e.path().map_err(|e| Error::invalid(&what, e.to_string()))?;
        let p = p.to_string_lossy();
        match p.trim_start_matches("./") {
            "oci-layout" => return Ok(Kind::OciArchive),
            "manifest.json" => return Ok(Kind::DockerArchive),
            _ => {}
        }
    }
    if !any {
        return Err(Error::invalid(what, "not an archive (no entries)"));
    }
    Ok(Kind::Rootfs)
}

/// `docker.io/library/x:1` -> `x:1`, as `docker images` shows it.
fn short_name(tag: &str) -> String {
    let t = tag.strip_prefix("docker.io/").unwrap_or(tag);
    t.strip_prefix("library/").unwrap_or(t).to_string()
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<T> {
    let data = fs::read(p).map_err(|e| Error::io(p, e))?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::invalid(p.display().to_string(), e.to_string()))
}
