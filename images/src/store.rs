//! The image store: an OCI image layout under `DATA_ROOT/images`, unpacked layers under
//! `DATA_ROOT/layers/<chain id>`, container root filesystems as overlayfs mounts of them.
//!
//! `DATA_ROOT`, `images/` and `layers/` are mode 0700 (tightened if found more open, set
//! whatever the umask): an unpacked layer holds the image's setuid-root binaries, and a
//! host user who could traverse to them would run them as root (CVE-2021-41091).

use std::fs;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::digest;
use crate::error::{Error, Result};
use crate::options::StoreOptions;
use crate::reference::{self, normalize, ImageName};
use crate::unpack::{self, Whiteouts};
pub use crate::workdir::TempTree;
use crate::workdir::{self, WorkDir};

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// A content descriptor (manifest entries, layers, config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// A stored image, ready to unpack or run.
#[derive(Debug, Clone)]
pub struct Image {
    /// `name:tag`
    pub name: String,
    /// The manifest's digest.
    pub digest: String,
    pub manifest: Manifest,
    pub config: ImageConfiguration,
}

impl Image {
    /// The uncompressed digest of each layer, bottom first.
    pub fn diff_ids(&self) -> &[String] {
        self.config.rootfs().diff_ids()
    }

    /// The chain id of each layer, bottom first: what the layer unpacks to depends on the
    /// layers below it (its entries resolve through them), so an unpacked layer is named by
    /// its diff_id *and* everything below, as containerd does:
    /// `chain(0) = diff_id(0)`, `chain(n) = sha256(chain(n-1) + " " + diff_id(n))`.
    pub fn chain_ids(&self) -> Vec<String> {
        chain_ids(self.diff_ids())
    }

    /// `ExposedPorts` as (port, "tcp"|"udp").
    pub fn exposed_ports(&self) -> Vec<(u16, String)> {
        let ports = self
            .config
            .config()
            .as_ref()
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        ports
            .iter()
            .filter_map(|p| {
                let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                Some((n.parse().ok()?, proto.to_string()))
            })
            .collect()
    }

    pub fn size(&self) -> u64 {
        self.manifest.config.size + self.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    }
}

#[derive(Debug, Clone)]
pub struct ImageRef {
    pub name: String,
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// The stored (canonical) name, `docker.io/library/busybox:latest`.
    pub name: String,
    /// The manifest's digest.
    pub digest: String,
    /// The config's digest: the image id, as `docker images` shows it.
    pub id: String,
    pub size: u64,
    pub created: Option<String>,
}

/// A container's root filesystem made by `create_rootfs`.
#[derive(Debug, Clone)]
pub struct Rootfs {
    pub path: PathBuf,
    /// true: an overlayfs mount; false: a flattened copy (overlayfs unavailable).
    pub overlay: bool,
}

pub struct Store {
    pub root: PathBuf,
    layers: PathBuf,
    opts: StoreOptions,
    /// This process's temporary directory, made (and the leftovers of dead processes
    /// reclaimed) on first use.
    work: OnceLock<WorkDir>,
}

/// See [`Image::chain_ids`].
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let id = match out.last() {
            None => d.clone(),
            Some(parent) => format!("sha256:{:x}", Sha256::digest(format!("{parent} {d}"))),
        };
        out.push(id);
    }
    out
}

/// Makes a directory of the store: mode 0700 exactly, tightened if it exists more open.
fn private(dir: &Path) -> Result<()> {
    sysops::private_dir::ensure_private(dir, 0o700).map_err(|e| Error::io(dir, e))
}

/// A name for an image made on this machine (imported, built in): `x` is
/// `localhost/x:latest`; a name with a registry (`ghcr.io/a/b`) stays as given. Invalid
/// names are refused.
pub fn local_name(name: &str) -> Result<String> {
    let first = name.split('/').next().unwrap_or(name);
    let qualified = name.contains('/')
        && (first.contains('.') || first.contains(':') || first == reference::LOCAL);
    let full = if qualified {
        name.to_string()
    } else {
        format!("{}/{name}", reference::LOCAL)
    };
    ImageName::parse(&full)
        .map(|n| n.to_string())
        .map_err(|r| Error::invalid(format!("image name {name:?}"), r))
}

/// The stored names `name` may stand for, most specific first: its normal form, and for a
/// name without a registry, the same under `localhost/` (so `localhost/x:latest` runs as
/// `x`).
fn candidates(name: &str) -> Vec<String> {
    let mut out = vec![normalize(name)];
    let first = name.split('/').next().unwrap_or(name);
    let has_host = name.contains('/')
        && (first.contains('.') || first.contains(':') || first == reference::LOCAL);
    if !has_host && !name.starts_with("sha256:") {
        if let Ok(n) = ImageName::parse(&format!("{}/{name}", reference::LOCAL)) {
            out.push(n.to_string());
        }
    }
    out
}

impl Store {
    /// Opens (creating if needed) the store under `data_root`, with the options the
    /// environment gives ([`StoreOptions::from_env`]).
    pub fn open(data_root: &Path) -> Result<Store> {
        Store::open_with(data_root, StoreOptions::from_env()?)
    }

    /// Opens (creating if needed) the store under `data_root` with `opts`.
    pub fn open_with(data_root: &Path, opts: StoreOptions) -> Result<Store> {
        let root = data_root.join("images");
        let layers = data_root.join("layers");
        for d in [
            data_root,
            &root,
            &root.join("blobs"),
            &root.join("blobs/sha256"),
            &root.join("tmp"),
            &layers,
        ] {
            private(d)?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        if !root.join("index.json").exists() {
            write_atomic(
                &root.join("index.json"),
                br#"{"schemaVersion":2,"manifests":[]}"#,
            )?;
        }
        Ok(Store {
            root,
            layers,
            opts,
            work: OnceLock::new(),
        })
    }

    pub fn options(&self) -> &StoreOptions {
        &self.opts
    }

    /// This process's work directory in `tmp/` (see `workdir`).
    fn work(&self) -> Result<&Path> {
        if let Some(w) = self.work.get() {
            return Ok(w.path());
        }
        let lock = self.lock()?;
        let w = WorkDir::create(&self.root.join("tmp"), &lock)?;
        drop(lock);
        let _ = self.work.set(w);
        Ok(self.work.get().expect("just set").path())
    }

    /// Reclaims the temporary files of dead processes now (they are also reclaimed when
    /// a process first needs a temporary file).
    pub fn reclaim(&self) -> Result<()> {
        let _lock = self.lock()?;
        workdir::reclaim(&self.root.join("tmp"))
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex =
            digest::hex(digest).ok_or_else(|| Error::invalid(digest, "not a sha256 digest"))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// A temporary file in the store (same filesystem as the blobs, so rename works);
    /// removed when dropped, or reclaimed after a crash.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let w = self.work()?;
        tempfile::NamedTempFile::new_in(w).map_err(|e| Error::io(w, e))
    }

    /// A temporary directory in the store (mode 0700), removed with everything in it when
    /// dropped, or reclaimed after a crash.
    pub fn temp_dir(&self) -> Result<TempTree> {
        let w = self.work()?;
        let path = tempfile::Builder::new()
            .prefix("t-")
            .tempdir_in(w)
            .map_err(|e| Error::io(w, e))?
            .keep();
        Ok(TempTree { path: Some(path) })
    }

    /// Streams a blob in, hashing as it goes; with `expected`, a mismatch stores nothing.
    pub fn put_blob(
        &self,
        mut r: impl std::io::Read,
        expected: Option<&str>,
    ) -> Result<(String, u64)> {
        let mut tmp = self.temp_file()?;
        let (got, size) = digest::copy_hashing(&mut r, tmp.as_file_mut())
            .map_err(|e| Error::io(tmp.path(), e))?;
        if let Some(want) = expected {
            if want != got {
                return Err(Error::DigestMismatch {
                    expected: want.to_string(),
                    actual: got,
                });
            }
        }
        let dest = self.blob_path(&got)?;
        if !dest.exists() {
            tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        }
        Ok((got, size))
    }

    pub fn put_bytes(&self, data: &[u8]) -> Result<(String, u64)> {
        self.put_blob(data, None)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| Error::io(&p, e))
    }

    fn lock(&self) -> Result<sysops::lock::Lock> {
        let p = self.root.join(".lock");
        sysops::lock::Lock::acquire(&p).map_err(|e| Error::io(&p, e))
    }

    pub fn index(&self) -> Result<Index> {
        let p = self.root.join("index.json");
        let data = fs::read(&p).map_err(|e| Error::io(&p, e))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(p.display().to_string(), e.to_string()))
    }

    fn save_index(&self, index: &Index) -> Result<()> {
        write_atomic(
            &self.root.join("index.json"),
            &serde_json::to_vec_pretty(index).expect("json"),
        )
    }

    /// Points `name` (normalized, see [`reference`]) at a stored OCI manifest, replacing an
    /// older image of that name.
    pub fn tag(&self, name: &str, manifest_digest: &str, size: u64) -> Result<ImageRef> {
        self.tag_typed(name, manifest_digest, size, MANIFEST_TYPE)
    }

    /// [`Store::tag`] for a manifest of any media type (a Docker v2s2 manifest keeps its own).
    pub fn tag_typed(
        &self,
        name: &str,
        manifest_digest: &str,
        size: u64,
        media_type: &str,
    ) -> Result<ImageRef> {
        self.tag_with_blobs(name, manifest_digest, size, media_type, &[])
    }

    /// [`Store::tag_typed`], checking under the store's lock that the image's blobs are all
    /// there (a failed pull removes the blobs it stored that no name uses: checked and named
    /// in one step, an image never points at a blob removed meanwhile).
    pub fn tag_with_blobs(
        &self,
        name: &str,
        manifest_digest: &str,
        size: u64,
        media_type: &str,
        blobs: &[String],
    ) -> Result<ImageRef> {
        let parsed = ImageName::parse(name)
            .map_err(|r| Error::invalid(format!("image name {name:?}"), r))?;
        let name = parsed.to_string();
        let _lock = self.lock()?;
        for d in std::iter::once(manifest_digest).chain(blobs.iter().map(String::as_str)) {
            if !self.has_blob(d) {
                return Err(Error::NotFound(format!("blob {d}")));
            }
        }
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| ref_name(d).map(normalize).as_deref() != Some(name.as_str()));
        let mut ann = serde_json::Map::new();
        ann.insert(REF_NAME.into(), Value::String(name.clone()));
        index.manifests.push(Descriptor {
            media_type: media_type.into(),
            digest: manifest_digest.to_string(),
            size,
            annotations: Some(ann),
        });
        self.save_index(&index)?;
        Ok(ImageRef {
            name: parsed.familiar(),
            digest: manifest_digest.to_string(),
        })
    }

    /// `minc tag SOURCE TARGET`: one more name for a stored image.
    pub fn add_name(&self, source: &str, target: &str) -> Result<ImageRef> {
        let img = self.resolve(source)?;
        let size = fs::metadata(self.blob_path(&img.digest)?)
            .map_err(|e| Error::io(&img.digest, e))?
            .len();
        let media_type = img
            .manifest
            .media_type
            .clone()
            .unwrap_or_else(|| MANIFEST_TYPE.to_string());
        self.tag_typed(target, &img.digest, size, &media_type)
    }

    /// Whether a blob is stored (it was verified on the way in).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// A writer for a blob whose digest and size are known in advance (from a registry):
    /// hashed as it is written, refused past `size`, stored only by
    /// [`BlobWriter::commit`] when both match; dropped, it leaves nothing (and a killed
    /// process's partial blob is reclaimed by the next process, see `workdir`).
    pub fn blob_writer(&self, digest: &str, size: u64) -> Result<BlobWriter> {
        let dest = self.blob_path(digest)?;
        Ok(BlobWriter {
            tmp: self.temp_file()?,
            hash: <sha2::Sha256 as sha2::Digest>::new(),
            written: 0,
            size,
            digest: digest.to_string(),
            dest,
        })
    }

    /// Stores a manifest for `config` + `layers` and names it (`name` as given: callers
    /// pass a normalized or [`local_name`]).
    pub fn commit(&self, name: &str, config: &[u8], layers: Vec<Descriptor>) -> Result<ImageRef> {
        let (config_digest, config_size) = self.put_bytes(config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_TYPE.into()),
            config: Descriptor {
                media_type: CONFIG_TYPE.into(),
                digest: config_digest,
                size: config_size,
                annotations: None,
            },
            layers,
        };
        let bytes = serde_json::to_vec(&manifest).expect("json");
        let (digest, size) = self.put_bytes(&bytes)?;
        self.tag(name, &digest, size)
    }

    /// Finds an image by name (`busybox`, `docker.io/library/busybox:latest`, `x` for
    /// `localhost/x:latest`, `name@sha256:...`) or by a prefix of at least 6 hex digits of
    /// its manifest digest or its id (config digest). The built-in `echo-server` is built and
    /// stored on first use.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        match self.find(name)? {
            Some(img) => Ok(img),
            None if candidates(name).iter().any(|c| c == crate::builtin::NAME) => {
                crate::builtin::store(self)?;
                self.find(name)?.ok_or_else(|| Error::NotFound(name.into()))
            }
            None => Err(Error::NotFound(name.into())),
        }
    }

    /// [`Store::resolve`] without building the built-in image: None if not stored.
    pub fn find(&self, name: &str) -> Result<Option<Image>> {
        let index = self.index()?;
        let stored: Vec<(String, &Descriptor)> = index
            .manifests
            .iter()
            .filter_map(|d| ref_name(d).map(|n| (normalize(n), d)))
            .collect();
        for want in candidates(name) {
            if let Some((n, d)) = stored.iter().find(|(n, _)| *n == want) {
                return self.load(n, &d.digest).map(Some);
            }
        }
        // By digest: a name's digest part, or a (prefix of a) manifest digest or image id.
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() < 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut found: Vec<(String, String)> = Vec::new();
        for (n, d) in &stored {
            let id = self.config_digest(&d.digest).unwrap_or_default();
            let matches = d.digest.get(7..).is_some_and(|m| m.starts_with(hex))
                || id.get(7..).is_some_and(|i| i.starts_with(hex));
            if matches && !found.iter().any(|(_, dg)| *dg == d.digest) {
                found.push((n.clone(), d.digest.clone()));
            }
        }
        match found.as_slice() {
            [(n, d)] => self.load(n, d).map(Some),
            [] => Ok(None),
            _ => Err(Error::invalid(
                format!("image id {name}"),
                "ambiguous: it is the prefix of several images",
            )),
        }
    }

    /// The config digest (image id) of a stored manifest.
    fn config_digest(&self, manifest_digest: &str) -> Option<String> {
        let m: Manifest = serde_json::from_slice(&self.read_blob(manifest_digest).ok()?).ok()?;
        Some(m.config.digest)
    }

    /// Every stored name that points at `manifest_digest` (canonical form).
    pub fn names_of(&self, manifest_digest: &str) -> Result<Vec<String>> {
        Ok(self
            .index()?
            .manifests
            .iter()
            .filter(|d| d.digest == manifest_digest)
            .filter_map(|d| ref_name(d).map(normalize))
            .collect())
    }

    fn load(&self, name: &str, manifest_digest: &str) -> Result<Image> {
        let manifest: Manifest = serde_json::from_slice(&self.read_blob(manifest_digest)?)
            .map_err(|e| Error::invalid(format!("manifest {manifest_digest}"), e.to_string()))?;
        let config: ImageConfiguration =
            serde_json::from_slice(&self.read_blob(&manifest.config.digest)?).map_err(|e| {
                Error::invalid(format!("config {}", manifest.config.digest), e.to_string())
            })?;
        if config.rootfs().diff_ids().len() != manifest.layers.len() {
            return Err(Error::invalid(
                format!("image {name}"),
                "config diff_ids and manifest layers differ in number",
            ));
        }
        Ok(Image {
            name: name.to_string(),
            digest: manifest_digest.to_string(),
            manifest,
            config,
        })
    }

    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let mut out = Vec::new();
        for d in self.index()?.manifests {
            let name = ref_name(&d).unwrap_or("<none>").to_string();
            if let Ok(img) = self.load(&name, &d.digest) {
                out.push(ImageSummary {
                    size: img.size(),
                    created: img.config.created().clone(),
                    name: normalize(&name),
                    id: img.manifest.config.digest.clone(),
                    digest: d.digest.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Removes a name (given by id or digest: every name of that image); blobs and
    /// unpacked layers that no remaining image uses go too (unpacked layers still mounted by
    /// a container stay).
    pub fn remove(&self, name: &str) -> Result<()> {
        let img = self.resolve_existing(name)?;
        let by_name = candidates(name).contains(&normalize(&img.name));
        let _lock = self.lock()?;
        let mut index = self.index()?;
        index.manifests.retain(|d| {
            if by_name {
                ref_name(d).map(normalize) != Some(normalize(&img.name))
            } else {
                d.digest != img.digest
            }
        });
        self.save_index(&index)?;
        let (keep_blobs, keep_layers) = self.referenced(&index);
        let mut drop_blobs = vec![img.digest.clone(), img.manifest.config.digest.clone()];
        drop_blobs.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
        for b in drop_blobs.iter().filter(|b| !keep_blobs.contains(*b)) {
            let _ = fs::remove_file(self.blob_path(b)?);
        }
        // Unpacked layers no image names any more (this one's, and those of older minc
        // versions, which named them by diff_id); those still mounted by a container stay.
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let keep: std::collections::HashSet<String> = keep_layers
            .iter()
            .filter_map(|c| digest::hex(c).map(str::to_string))
            .collect();
        for e in fs::read_dir(&self.layers)
            .map_err(|e| Error::io(&self.layers, e))?
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let dir = e.path();
            if !keep.contains(&name) && !mounts.contains(dir.to_str().unwrap_or("")) {
                let _ = workdir::remove_tree(&dir);
            }
        }
        Ok(())
    }

    /// The blobs and unpacked layers (chain ids) that the images named in `index` use.
    fn referenced(
        &self,
        index: &Index,
    ) -> (
        std::collections::HashSet<String>,
        std::collections::HashSet<String>,
    ) {
        let mut blobs = std::collections::HashSet::new();
        let mut layers = std::collections::HashSet::new();
        for d in &index.manifests {
            if let Ok(other) = self.load(ref_name(d).unwrap_or(""), &d.digest) {
                blobs.insert(other.digest.clone());
                blobs.insert(other.manifest.config.digest.clone());
                blobs.extend(other.manifest.layers.iter().map(|l| l.digest.clone()));
                layers.extend(other.chain_ids());
            }
        }
        (blobs, layers)
    }

    /// Removes those of `digests` that no named image uses (the whole blobs a failed pull
    /// had already stored: it leaves nothing behind).
    pub fn remove_unreferenced_blobs(&self, digests: &[String]) -> Result<()> {
        let _lock = self.lock()?;
        let (keep, _) = self.referenced(&self.index()?);
        for d in digests.iter().filter(|d| !keep.contains(*d)) {
            match fs::remove_file(self.blob_path(d)?) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(self.blob_path(d)?, e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn resolve_existing(&self, name: &str) -> Result<Image> {
        self.find(name)?.ok_or_else(|| Error::NotFound(name.into()))
    }

    fn layer_dir(&self, chain_id: &str) -> Result<PathBuf> {
        let hex =
            digest::hex(chain_id).ok_or_else(|| Error::invalid(chain_id, "not a sha256 digest"))?;
        Ok(self.layers.join(hex))
    }

    /// Unpacks the image's layers, flattened, into `dest` (for inspection and learners).
    pub fn unpack(&self, image: &Image, dest: &Path) -> Result<()> {
        fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
        for (layer, diff_id) in image.manifest.layers.iter().zip(image.diff_ids()) {
            let blob = self.blob_path(&layer.digest)?;
            explain!("tar -xf {} -C {}", blob.display(), dest.display());
            let f = fs::File::open(&blob).map_err(|e| Error::io(&blob, e))?;
            unpack::apply_layer(
                f,
                dest,
                Whiteouts::Apply,
                &layer.digest,
                Some(diff_id),
                &[],
                &self.opts,
            )?;
        }
        Ok(())
    }

    /// Each layer unpacked once, by diff_id, in overlayfs form; returns their dirs, bottom
    /// first.
    pub fn ensure_layers(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let chains = image.chain_ids();
        for ((layer, diff_id), chain) in image
            .manifest
            .layers
            .iter()
            .zip(image.diff_ids())
            .zip(&chains)
        {
            let dir = self.layer_dir(chain)?;
            if !dir.exists() {
                let tmp = self.temp_dir()?;
                set_mode(tmp.path(), 0o755)?;
                let blob = self.blob_path(&layer.digest)?;
                explain!("tar -xf {} -C {}", blob.display(), dir.display());
                let f = fs::File::open(&blob).map_err(|e| Error::io(&blob, e))?;
                unpack::apply_layer(
                    f,
                    tmp.path(),
                    Whiteouts::Overlay,
                    &layer.digest,
                    Some(diff_id),
                    &dirs,
                    &self.opts,
                )?;
                // Another run may have unpacked it meanwhile: theirs is as good as ours
                // (and ours goes when `tmp` is dropped).
                if let Err(e) = fs::rename(tmp.path(), &dir) {
                    if !dir.is_dir() {
                        return Err(Error::io(&dir, e));
                    }
                }
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// The container's rootfs at `container_dir/rootfs`: an overlayfs of the image's layers
    /// with the container's own upper and work directories, or a flattened copy where
    /// overlayfs cannot be mounted.
    pub fn create_rootfs(&self, image: &Image, container_dir: &Path) -> Result<Rootfs> {
        self.create_rootfs_mapped(image, container_dir, None)
    }

    /// Like [`Store::create_rootfs`], for a container in a user namespace: the layers are
    /// stacked through idmapped mounts of them (the user namespace `userns` holds the
    /// container's mappings), so the image's root-owned files belong to the container's
    /// root without a chowned copy of any layer (`sysops::idmap`); the container's own
    /// upper directory belongs to its root (`root`, host ids) and keeps what it writes under
    /// the host ids it has. (overlayfs does its own work in the upper directory with the
    /// mounter's credentials, which an idmapped upper would refuse.) The flattened copy,
    /// where overlayfs is missing, is idmapped onto itself.
    pub fn create_rootfs_mapped(
        &self,
        image: &Image,
        container_dir: &Path,
        userns: Option<(std::os::fd::BorrowedFd<'_>, (u32, u32))>,
    ) -> Result<Rootfs> {
        let rootfs = container_dir.join("rootfs");
        let upper = container_dir.join("upper");
        let work = container_dir.join("work");
        // upper's root is what the container sees as "/": 0755 whatever the umask.
        for (d, mode) in [(&rootfs, 0o755), (&upper, 0o755), (&work, 0o700)] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(d)
                .map_err(|e| Error::io(d, e))?;
            set_mode(d, mode)?;
        }
        let mut layers = self.ensure_layers(image)?;
        if let Some((ns, (uid, gid))) = userns {
            let mapped = container_dir.join(MAPPED);
            for (i, layer) in layers.iter_mut().enumerate() {
                let at = mapped.join(i.to_string());
                attach_idmapped(layer, &at, ns)?;
                *layer = at;
            }
            explain!("chown {uid}:{gid} {}", upper.display());
            std::os::unix::fs::chown(&upper, Some(uid), Some(gid))
                .map_err(|e| Error::io(&upper, e))?;
        }
        let lower = layers
            .iter()
            .rev()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let data = format!(
            "lowerdir={lower},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        explain!("mount -t overlay overlay -o {data} {}", rootfs.display());
        match mount_overlay(&rootfs, &data) {
            Ok(()) => Ok(Rootfs {
                path: rootfs,
                overlay: true,
            }),
            Err(e) => {
                tracing::debug!("overlayfs unavailable ({e}); copying the image instead");
                let _ = fs::remove_dir_all(&upper);
                let _ = fs::remove_dir_all(&work);
                self.unpack(image, &rootfs)?;
                if let Some((ns, _)) = userns {
                    attach_idmapped(&rootfs, &rootfs, ns)?;
                }
                Ok(Rootfs {
                    path: rootfs,
                    overlay: false,
                })
            }
        }
    }

    /// Unmounts and removes a container's rootfs (and its idmapped layers); idempotent.
    pub fn remove_rootfs(container_dir: &Path) -> Result<()> {
        let rootfs = container_dir.join("rootfs");
        let mapped = container_dir.join(MAPPED);
        let points = || -> Vec<PathBuf> {
            let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            info.lines()
                .filter_map(|l| l.split(' ').nth(4))
                .map(PathBuf::from)
                .filter(|p| p == &rootfs || p.starts_with(&mapped))
                .collect()
        };
        let umount = |p: &Path| -> Result<()> {
            let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
            explain!("umount {}", p.display());
            // SAFETY: valid C string path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } < 0 {
                return Err(Error::io(p, std::io::Error::last_os_error()));
            }
            Ok(())
        };
        // The rootfs first (twice when an idmapped copy sits on a flattened copy), then the
        // idmapped layers it was made of.
        for _ in 0..2 {
            if points().contains(&rootfs) {
                umount(&rootfs)?;
            }
        }
        for p in points() {
            umount(&p)?;
        }
        // The idmapped layers' mount points are only ever removed empty (rmdir): were one
        // still mounted, a recursive removal would reach into the shared image layer.
        if let Ok(entries) = fs::read_dir(&mapped) {
            for e in entries.flatten() {
                fs::remove_dir(e.path()).map_err(|err| Error::io(e.path(), err))?;
            }
        }
        match fs::remove_dir(&mapped) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(&mapped, e))
            }
            _ => {}
        }
        for d in ["rootfs", "upper", "work"] {
            let p = container_dir.join(d);
            match fs::remove_dir_all(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&p, e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where a user-namespaced container's idmapped layers are attached (`DIR/idmapped/N`).
const MAPPED: &str = "idmapped";

/// Attaches an idmapped copy of `source` at `at` (made if missing), with `userns`'s
/// mappings.
fn attach_idmapped(source: &Path, at: &Path, userns: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    use std::os::fd::AsFd;
    fs::create_dir_all(at).map_err(|e| Error::io(at, e))?;
    explain!(
        "mount --bind -o X-mount.idmap=... {} {}   # an idmapped copy (open_tree, mount_setattr MOUNT_ATTR_IDMAP, move_mount)",
        source.display(),
        at.display()
    );
    let tree = sysops::idmap::idmapped_tree(source, userns, false, false)
        .map_err(|e| Error::io(source, e))?;
    sysops::idmap::move_tree(tree.as_fd(), at).map_err(|e| Error::io(at, e))
}

fn mount_overlay(target: &Path, data: &str) -> std::io::Result<()> {
    let t = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
    let d = std::ffi::CString::new(data)?;
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            t.as_ptr(),
            c"overlay".as_ptr(),
            0,
            d.as_ptr().cast(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| Error::io(path, e))
}

pub fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotations.as_ref()?.get(REF_NAME)?.as_str()
}

fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(data).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// See [`Store::blob_writer`].
pub struct BlobWriter {
    tmp: tempfile::NamedTempFile,
    hash: sha2::Sha256,
    written: u64,
    size: u64,
    digest: String,
    dest: PathBuf,
}

impl BlobWriter {
    /// Appends `data`; more than the announced size is an error at once.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        use sha2::Digest;
        self.written += data.len() as u64;
        if self.written > self.size {
            return Err(Error::invalid(
                format!("blob {}", self.digest),
                format!("more data than its size of {} bytes", self.size),
            ));
        }
        self.hash.update(data);
        self.tmp
            .as_file_mut()
            .write_all(data)
            .map_err(|e| Error::io(self.tmp.path(), e))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Checks size and digest, then moves the blob into place.
    pub fn commit(self) -> Result<()> {
        use sha2::Digest;
        if self.written != self.size {
            return Err(Error::invalid(
                format!("blob {}", self.digest),
                format!("{} bytes, not its size of {}", self.written, self.size),
            ));
        }
        let got = format!("sha256:{:x}", self.hash.finalize());
        if got != self.digest {
            return Err(Error::DigestMismatch {
                expected: self.digest,
                actual: got,
            });
        }
        self.tmp
            .persist(&self.dest)
            .map_err(|e| Error::io(&self.dest, e.error))?;
        Ok(())
    }
}

/// A default image config for a rootfs without one.
pub fn default_config(
    diff_ids: &[String],
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
) -> Vec<u8> {
    let mut c =
        json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]});
    if let Some(e) = entrypoint {
        c["Entrypoint"] = json!(e);
    }
    c["Cmd"] = json!(cmd
        .map(|c| c.to_vec())
        .unwrap_or_else(|| vec!["sh".to_string()]));
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": c,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(local_name("x").unwrap(), "localhost/x:latest");
        assert_eq!(local_name("team/x:1").unwrap(), "localhost/team/x:1");
        assert_eq!(local_name("ghcr.io/a/b").unwrap(), "ghcr.io/a/b:latest");
        assert!(local_name("Bad Name").is_err());
        assert_eq!(
            candidates("x"),
            ["docker.io/library/x:latest", "localhost/x:latest"]
        );
        assert_eq!(candidates("localhost:5000/x"), ["localhost:5000/x:latest"]);
    }
}
