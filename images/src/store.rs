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
    pub name: String,
    pub digest: String,
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

/// `name` -> `name:latest`; digests and `name:tag` stay.
pub fn normalize(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if name.starts_with("sha256:") || last.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
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

    /// Points `name` at a stored manifest (replacing an older image of that name).
    pub fn tag(&self, name: &str, manifest_digest: &str, size: u64) -> Result<ImageRef> {
        let name = normalize(name);
        let _lock = self.lock()?;
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| ref_name(d) != Some(name.as_str()));
        let mut ann = serde_json::Map::new();
        ann.insert(REF_NAME.into(), Value::String(name.clone()));
        index.manifests.push(Descriptor {
            media_type: MANIFEST_TYPE.into(),
            digest: manifest_digest.to_string(),
            size,
            annotations: Some(ann),
        });
        self.save_index(&index)?;
        Ok(ImageRef {
            name,
            digest: manifest_digest.to_string(),
        })
    }

    /// Stores a manifest for `config` + `layers` and names it.
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

    /// Finds an image by `name`, `name:tag` or manifest digest (prefix). The built-in
    /// `echo-server` is built and stored on first use.
    pub fn resolve(&self, name: &str) -> Result<Image> {
        match self.find(name)? {
            Some(img) => Ok(img),
            None if normalize(name) == crate::builtin::NAME => {
                crate::builtin::store(self)?;
                self.find(name)?.ok_or_else(|| Error::NotFound(name.into()))
            }
            None => Err(Error::NotFound(name.into())),
        }
    }

    fn find(&self, name: &str) -> Result<Option<Image>> {
        let want = normalize(name);
        let index = self.index()?;
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let found = index
            .manifests
            .iter()
            .find(|d| ref_name(d) == Some(want.as_str()))
            .or_else(|| {
                let by_digest: Vec<_> = index
                    .manifests
                    .iter()
                    .filter(|d| hex.len() >= 6 && d.digest["sha256:".len()..].starts_with(hex))
                    .collect();
                (by_digest.len() == 1).then(|| by_digest[0])
            });
        let Some(desc) = found else {
            return Ok(None);
        };
        self.load(ref_name(desc).unwrap_or(name), &desc.digest)
            .map(Some)
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
                    name,
                    digest: d.digest.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Removes a name; blobs and unpacked layers that no remaining image uses go too
    /// (unpacked layers still mounted by a container stay).
    pub fn remove(&self, name: &str) -> Result<()> {
        let img = self.resolve_existing(name)?;
        let _lock = self.lock()?;
        let mut index = self.index()?;
        index
            .manifests
            .retain(|d| ref_name(d) != Some(img.name.as_str()));
        self.save_index(&index)?;
        let mut keep_blobs = std::collections::HashSet::new();
        let mut keep_layers = std::collections::HashSet::new();
        for d in &index.manifests {
            if let Ok(other) = self.load(ref_name(d).unwrap_or(""), &d.digest) {
                keep_blobs.insert(other.digest.clone());
                keep_blobs.insert(other.manifest.config.digest.clone());
                keep_blobs.extend(other.manifest.layers.iter().map(|l| l.digest.clone()));
                keep_layers.extend(other.chain_ids());
            }
        }
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
        assert_eq!(normalize("busybox"), "busybox:latest");
        assert_eq!(normalize("busybox:1"), "busybox:1");
        assert_eq!(normalize("localhost:5000/x"), "localhost:5000/x:latest");
    }
}
