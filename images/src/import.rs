//! Imports: an OCI image layout (directory or oci-archive tar), a docker-archive
//! (`docker save`), or a plain rootfs tarball. Every blob is hashed on the way in; nothing is
//! named in index.json until all of an image's blobs are stored and verified.

use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;
use sysops::inroot::Root;

use crate::digest;
use crate::error::{Error, Result};
use crate::layer_stream;
use crate::options::{ENV_MAX_ARCHIVE_SIZE, ENV_MAX_LAYER_SIZE};
use crate::progress::Progress;
use crate::store::{
    default_config, local_name, ref_name, Descriptor, ImageRef, Index, Manifest, Store, LAYER_TAR,
    MANIFEST_TYPE,
};
use crate::workdir::TempTree;

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
        let limit = self
            .options()
            .max_archive_size
            .max(self.options().max_layer_size);
        match sniff(path, limit)? {
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

    /// Extracts an archive (at most `max_archive_size` bytes uncompressed) into a
    /// temporary directory of the store. Only directories, files and links are extracted
    /// (the tar crate's `unpack_in` refuses entries that would land outside it); what is
    /// read from there later is opened inside it.
    fn extract(&self, path: &Path) -> Result<TempTree> {
        let tmp = self.temp_dir()?;
        let what = path.display().to_string();
        let limit = self.options().max_archive_size;
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let (stream, meter) = layer_stream::tar_stream(f, limit).map_err(|e| Error::io(path, e))?;
        let bad = archive_error(&meter, &what, limit, "not a valid archive");
        let mut ar = tar::Archive::new(stream);
        for entry in ar.entries().map_err(bad)? {
            let mut e = entry.map_err(bad)?;
            use tar::EntryType as T;
            if matches!(
                e.header().entry_type(),
                T::Directory | T::Regular | T::Continuous | T::Symlink | T::Link
            ) {
                e.unpack_in(tmp.path()).map_err(bad)?;
            }
        }
        Ok(tmp)
    }

    fn import_layout(&self, dir: &Path, opts: &ImportOptions, what: &str) -> Result<ImageRef> {
        let root = Root::open(dir).map_err(|e| Error::io(dir, e))?;
        let index: Index = read_json(&root, "index.json", what)?;
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
        let blob_path = |d: &str| -> Result<String> {
            let hex =
                digest::hex(d).ok_or_else(|| Error::invalid(what, format!("bad digest {d}")))?;
            Ok(format!("blobs/sha256/{hex}"))
        };
        let blob = |d: &str| -> Result<fs::File> {
            open_regular(&root, &blob_path(d)?)
                .map_err(|_| Error::invalid(what, format!("blob {d} is missing")))
        };
        let manifest: Manifest = read_json(&root, &blob_path(&desc.digest)?, what)?;
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
            let f = blob(&d.digest)?;
            progress.stage(format!("importing blob {}/{total}", i + 1));
            self.put_blob(progress.reader(f), Some(&d.digest))?;
        }
        let (digest, size) = self.put_blob(blob(&desc.digest)?, Some(&desc.digest))?;
        let stem = Path::new(what)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image");
        let name = match (&opts.name, ref_name(desc)) {
            (Some(n), _) => local_name(n)?,
            // A full reference (skopeo's oci: transport writes one) keeps its registry.
            (None, Some(r)) if r.contains('/') => crate::reference::normalize(r),
            (None, Some(r)) if r.contains(':') => local_name(r)?,
            (None, Some(tag)) => local_name(&format!("{stem}:{tag}"))?,
            (None, None) => local_name(stem)?,
        };
        self.tag(&name, &digest, size)
    }

    fn import_docker(&self, dir: &Path, opts: &ImportOptions, what: &str) -> Result<ImageRef> {
        let root = Root::open(dir).map_err(|e| Error::io(dir, e))?;
        let entries: Vec<DockerManifest> = read_json(&root, "manifest.json", what)?;
        let m = entries
            .first()
            .ok_or_else(|| Error::invalid(what, "manifest.json lists no image"))?;
        // Members are opened inside the extracted archive: `docker save` links duplicate
        // layers with relative symlinks, which resolve there and never on the host.
        let member = |rel: &str| -> Result<fs::File> {
            open_regular(&root, rel).map_err(|_| {
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
        // `docker save` names are Docker's (docker.io/library/... for short ones).
        let name = match (&opts.name, m.repo_tags.as_ref().and_then(|t| t.first())) {
            (Some(n), _) => local_name(n)?,
            (None, Some(t)) => crate::reference::normalize(t),
            (None, None) => local_name(
                Path::new(what)
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("image"),
            )?,
        };
        self.commit(&name, &config, layers)
    }

    fn import_rootfs(&self, path: &Path, opts: &ImportOptions) -> Result<ImageRef> {
        // The diff_id is the digest of the uncompressed tar (bounded: it is one layer),
        // computed first, so that a refused layer leaves no blob behind.
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let limit = self.options().max_layer_size;
        let (stream, meter) = layer_stream::tar_stream(f, limit).map_err(|e| Error::io(path, e))?;
        let diff_id = stream.inner.inner.finish().map_err(|e| {
            if meter.exceeded() {
                Error::TooLarge {
                    what: format!("layer {}", path.display()),
                    limit,
                    setting: ENV_MAX_LAYER_SIZE,
                }
            } else {
                Error::io(path, e)
            }
        })?;
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut progress = Progress::new(opts.progress);
        progress.stage("importing rootfs".into());
        let (digest, size) = self.put_blob(progress.reader(f), None)?;
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
        let name = local_name(&opts.name.clone().unwrap_or_else(|| {
            let stem = path.file_name().and_then(|s| s.to_str()).unwrap_or("image");
            stem.split('.').next().unwrap_or(stem).to_string()
        }))?;
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

/// What a failed read of an archive means: the size limit was hit, or it is not a valid
/// archive (`bad`, then the cause).
fn archive_error<'a>(
    meter: &'a layer_stream::Meter,
    what: &'a str,
    limit: u64,
    bad: &'a str,
) -> impl Fn(std::io::Error) -> Error + Copy + 'a {
    move |e| {
        if meter.exceeded() {
            Error::TooLarge {
                what: format!("archive {what}"),
                limit,
                setting: ENV_MAX_ARCHIVE_SIZE,
            }
        } else {
            Error::invalid(what, format!("{bad}: {e}"))
        }
    }
}

/// Looks at an archive's member names (one streaming pass, at most `limit` bytes) to tell
/// the formats apart.
fn sniff(path: &Path, limit: u64) -> Result<Kind> {
    let what = path.display().to_string();
    let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let (stream, meter) = layer_stream::tar_stream(f, limit).map_err(|e| Error::io(path, e))?;
    let bad = archive_error(&meter, &what, limit, "not an archive");
    let mut ar = tar::Archive::new(stream);
    let entries = ar.entries().map_err(bad)?;
    let mut any = false;
    for e in entries {
        let e = e.map_err(bad)?;
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

/// Opens a regular file inside `root` (an image layout or an extracted archive), following
/// symlinks only inside it; a FIFO or device node there is never opened for reading.
fn open_regular(root: &Root, rel: &str) -> std::io::Result<fs::File> {
    let fd = root.open_at(Path::new(rel), libc::O_PATH, 0)?;
    let f = fs::File::from(fd);
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    // Reopened through the fd itself: the same inode, now for reading.
    fs::File::open(sysops::inroot::proc_fd_path(std::os::fd::AsFd::as_fd(&f)))
}

/// A JSON document of an image layout or archive (at most 4 MiB).
fn read_json<T: serde::de::DeserializeOwned>(root: &Root, rel: &str, what: &str) -> Result<T> {
    let shown = root.display(Path::new(rel)).display().to_string();
    let f = open_regular(root, rel).map_err(|e| Error::invalid(what, format!("{rel}: {e}")))?;
    let mut data = Vec::new();
    f.take(4 << 20)
        .read_to_end(&mut data)
        .map_err(|e| Error::invalid(&shown, e.to_string()))?;
    serde_json::from_slice(&data).map_err(|e| Error::invalid(shown, e.to_string()))
}
