//! Volumes and mounts of the Docker-like face: `run -v`, `--mount`, `--tmpfs`,
//! `--read-only` and the image's `VOLUME`s, as mounts in the container's config.json (the
//! volumes themselves and `minc volume ...`: `volume_store.rs`).
//!
//! A volume is a directory of minc's, `DATA_ROOT/volumes/NAME/_data`, bind-mounted into
//! containers (Docker's layout). `volumes/` and each `volumes/NAME/` are mode 0700, so no
//! other host user can reach what containers keep there (a setuid binary in a volume would
//! otherwise be a way to root, the CVE-2021-41091 class); `_data` itself has the mode of
//! what it covers in the image. A new (empty) volume is first filled with the image's
//! content at its mount point, as Docker does (`nocopy` turns that off); the copy is made
//! from the container's rootfs held as an fd, never following its symlinks
//! (`sysops::copy`).
//!
//! Volumes named by the user (`-v data:/var/lib/x`) live until `minc volume rm`; anonymous
//! ones (`-v /data`, the image's `VOLUME`s) are named by a random id and removed with their
//! container (Docker keeps them until `rm -v`; minc does not leave them behind).
//!
//! A `-v HOST:CTR` whose host path is missing creates it as a directory (as Docker does);
//! `--mount type=bind` with a missing source is an error (as Docker's).
//!
//! Mount options are kept to a known list, so nothing unexpected reaches mount(2).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::containers::new_id;
use super::volume_store::VolumeStore;

/// The volume and mount flags of `minc run` (apart from docker.rs's own flags).
#[derive(Args, Debug, Default, Clone)]
pub struct MountArgs {
    /// Bind a host path or a named volume: HOST:CTR[:ro|rw][,z], NAME:CTR[:OPTS], or CTR
    /// alone for an anonymous volume
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:OPTS]")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=...,target=...[,readonly][,bind-propagation=...]
    /// [,volume-nocopy][,tmpfs-size=...][,tmpfs-mode=...]
    #[arg(long = "mount", value_name = "KEY=VALUE,...")]
    pub mount: Vec<String>,
    /// A tmpfs at PATH, with mount options (default nosuid,nodev,noexec)
    #[arg(long = "tmpfs", value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
}

impl MountArgs {
    pub fn any(&self) -> bool {
        !self.volume.is_empty()
            || !self.mount.is_empty()
            || !self.tmpfs.is_empty()
            || self.read_only
    }
}

/// What is mounted where, as the user asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A host path; `create`: make it (a directory) if missing.
    Bind {
        path: PathBuf,
        create: bool,
    },
    /// A named volume, or an anonymous one (None).
    Volume(Option<String>),
    Tmpfs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountReq {
    pub source: Source,
    /// Absolute, lexically clean.
    pub target: String,
    pub readonly: bool,
    /// Propagation for binds and volumes; mount options for tmpfs.
    pub options: Vec<String>,
    /// Do not fill a new volume from the image.
    pub nocopy: bool,
}

const PROPAGATION: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// `/a/./b/` -> `/a/b`; must be absolute and not `/`.
fn clean_target(t: &str, what: &str) -> Result<String> {
    if !t.starts_with('/') {
        bail!("{what}: the container path {t:?} must be absolute");
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in t.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        bail!("{what}: cannot mount over the container's root /");
    }
    if t.contains('\0') {
        bail!("{what}: a path with a NUL byte");
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A volume name: `[A-Za-z0-9][A-Za-z0-9_.-]*` (Docker's rule), at most 128 characters.
pub fn valid_volume_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `-v SRC:DST[:OPTS]` or `-v DST`.
pub fn parse_volume_flag(s: &str) -> Result<MountReq> {
    let what = format!("-v {s}");
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => (None, *dst, None),
        [src, dst] => (Some(*src), *dst, None),
        [src, dst, opts] => (Some(*src), *dst, Some(*opts)),
        _ => bail!("{what}: expected HOST:CONTAINER[:OPTIONS] (a path with ':' is not supported)"),
    };
    let target = clean_target(dst, &what)?;
    let source = match src {
        None => Source::Volume(None),
        Some(p) if p.starts_with('/') => Source::Bind {
            path: PathBuf::from(p),
            create: true,
        },
        Some(n) if valid_volume_name(n) => Source::Volume(Some(n.to_string())),
        Some(n) => bail!(
            "{what}: {n:?} is neither an absolute host path nor a volume name \
             (letters, digits, '_', '.', '-')"
        ),
    };
    let mut req = MountReq {
        source,
        target,
        readonly: false,
        options: Vec::new(),
        nocopy: false,
    };
    for o in opts.into_iter().flat_map(|o| o.split(',')) {
        match o {
            "ro" | "readonly" => req.readonly = true,
            "rw" => req.readonly = false,
            // SELinux relabelling: this host has no SELinux policy to apply, so, as Docker
            // does without SELinux, accepted and ignored.
            "z" | "Z" => {}
            "nocopy" => req.nocopy = true,
            p if PROPAGATION.contains(&p) => req.options = vec![p.to_string()],
            other => {
                bail!("{what}: unknown option {other:?} (ro, rw, z, Z, nocopy, rprivate, ...)")
            }
        }
    }
    Ok(req)
}

/// `--mount type=...,source=...,target=...,...`.
pub fn parse_mount_flag(s: &str) -> Result<MountReq> {
    let what = format!("--mount {s}");
    let mut kind = "volume".to_string();
    let (mut source, mut target) = (None::<String>, None::<String>);
    let mut readonly = false;
    let mut nocopy = false;
    let mut propagation = None;
    let mut tmpfs_opts = Vec::new();
    let yes = |v: Option<&str>| -> Result<bool> {
        match v {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => bail!("{what}: {v:?} is not true or false"),
        }
    };
    for field in s.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let value = || v.ok_or_else(|| anyhow!("{what}: {k} needs a value"));
        match k {
            "type" => kind = value()?.to_string(),
            "source" | "src" => source = Some(value()?.to_string()),
            "target" | "destination" | "dst" => target = Some(value()?.to_string()),
            "readonly" | "ro" => readonly = yes(v)?,
            "volume-nocopy" => nocopy = yes(v)?,
            "bind-propagation" => {
                let p = value()?;
                if !PROPAGATION.contains(&p) {
                    bail!("{what}: unknown bind-propagation {p:?}");
                }
                propagation = Some(p.to_string());
            }
            "tmpfs-size" => tmpfs_opts.push(format!("size={}", tmpfs_size(value()?, &what)?)),
            "tmpfs-mode" => {
                let m = value()?;
                if u32::from_str_radix(m, 8).map_or(true, |m| m > 0o7777) {
                    bail!("{what}: tmpfs-mode {m:?} is not an octal mode");
                }
                tmpfs_opts.push(format!("mode={m}"));
            }
            "consistency" | "bind-nonrecursive" => {} // macOS / Docker-only hints
            "" => {}
            other => bail!("{what}: unknown key {other:?}"),
        }
    }
    let target = clean_target(
        target
            .as_deref()
            .ok_or_else(|| anyhow!("{what}: target= is required"))?,
        &what,
    )?;
    let source = match kind.as_str() {
        "bind" => {
            let p = source.ok_or_else(|| anyhow!("{what}: a bind mount needs source="))?;
            if !p.starts_with('/') {
                bail!("{what}: the bind source {p:?} must be an absolute path");
            }
            Source::Bind {
                path: PathBuf::from(p),
                create: false,
            }
        }
        "volume" => match source {
            Some(n) if !valid_volume_name(&n) => bail!("{what}: {n:?} is not a volume name"),
            n => Source::Volume(n),
        },
        "tmpfs" => {
            if source.is_some() {
                bail!("{what}: a tmpfs has no source");
            }
            Source::Tmpfs
        }
        other => bail!("{what}: unknown type {other:?} (bind, volume, tmpfs)"),
    };
    let options = if source == Source::Tmpfs {
        let mut o = vec![
            "nosuid".to_string(),
            "nodev".to_string(),
            "noexec".to_string(),
        ];
        o.extend(tmpfs_opts);
        o
    } else {
        propagation.into_iter().collect()
    };
    Ok(MountReq {
        source,
        target,
        readonly,
        options,
        nocopy,
    })
}

/// A tmpfs size: bytes, or with a k/m/g suffix.
fn tmpfs_size(v: &str, what: &str) -> Result<String> {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', 'b', 'B']);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || v.len() - digits.len() > 1
    {
        bail!("{what}: size {v:?} is not a size (e.g. 64m)");
    }
    Ok(v.trim_end_matches(['b', 'B']).to_string())
}

/// `--tmpfs PATH[:OPTS]`: options from a known list.
pub fn parse_tmpfs_flag(s: &str) -> Result<MountReq> {
    let what = format!("--tmpfs {s}");
    let (path, opts) = s.split_once(':').unwrap_or((s, ""));
    let target = clean_target(path, &what)?;
    let mut options = vec![
        "nosuid".to_string(),
        "nodev".to_string(),
        "noexec".to_string(),
    ];
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        match (k, v.is_empty()) {
            ("ro", true) => readonly = true,
            ("rw", true) => readonly = false,
            (
                "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev" | "atime" | "noatime"
                | "relatime" | "strictatime" | "tmpcopyup",
                true,
            ) => options.push(k.to_string()),
            ("size", false) => options.push(format!("size={}", tmpfs_size(v, &what)?)),
            ("mode", false) if u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o7777) => {
                options.push(o.to_string())
            }
            ("uid" | "gid" | "nr_inodes", false) if v.bytes().all(|b| b.is_ascii_digit()) => {
                options.push(o.to_string())
            }
            _ => bail!("{what}: unknown or invalid option {o:?}"),
        }
    }
    Ok(MountReq {
        source: Source::Tmpfs,
        target,
        readonly,
        options,
        nocopy: false,
    })
}

/// Every mount the flags ask for, checked (no two on one path).
pub fn requests(a: &MountArgs) -> Result<Vec<MountReq>> {
    let mut out = Vec::new();
    for v in &a.volume {
        out.push(parse_volume_flag(v)?);
    }
    for m in &a.mount {
        out.push(parse_mount_flag(m)?);
    }
    for t in &a.tmpfs {
        out.push(parse_tmpfs_flag(t)?);
    }
    for (i, m) in out.iter().enumerate() {
        if out[..i].iter().any(|o| o.target == m.target) {
            bail!("{}: mounted twice", m.target);
        }
    }
    Ok(out)
}

/// The volumes a container uses, for its record.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Used {
    pub named: Vec<String>,
    pub anonymous: Vec<String>,
}

/// Makes what the requests (and the image's `VOLUME`s not covered by them) need, and
/// returns the OCI mounts for config.json and the volumes used. `rootfs` is the
/// container's root filesystem (the copy-up source). On failure, anonymous volumes made
/// here are removed again.
pub fn prepare(
    data_root: &Path,
    reqs: &[MountReq],
    image_volumes: &[String],
    rootfs: &Path,
) -> Result<(Vec<Value>, Used)> {
    let mut reqs = reqs.to_vec();
    for v in image_volumes {
        let Ok(target) = clean_target(v, &format!("image VOLUME {v}")) else {
            tracing::warn!("image VOLUME {v:?} ignored: not an absolute path");
            continue;
        };
        if !reqs.iter().any(|r| r.target == target) {
            reqs.push(MountReq {
                source: Source::Volume(None),
                target,
                readonly: false,
                options: Vec::new(),
                nocopy: false,
            });
        }
    }
    let store = VolumeStore::new(data_root);
    let mut used = Used::default();
    let result = (|| {
        let mut mounts = Vec::new();
        for r in &reqs {
            mounts.push(mount_for(&store, r, rootfs, &mut used)?);
        }
        Ok(mounts)
    })();
    match result {
        Ok(m) => Ok((m, used)),
        Err(e) => {
            release(data_root, &used);
            Err(e)
        }
    }
}

fn mount_for(store: &VolumeStore, r: &MountReq, rootfs: &Path, used: &mut Used) -> Result<Value> {
    let mut options: Vec<String> = Vec::new();
    let source: PathBuf = match &r.source {
        Source::Tmpfs => {
            options.extend(r.options.iter().cloned());
            if r.readonly {
                options.push("ro".into());
            }
            return Ok(json!({
                "destination": r.target, "type": "tmpfs", "source": "tmpfs", "options": options
            }));
        }
        Source::Bind { path, create } => {
            if !path.exists() {
                if !*create {
                    bail!("bind source path does not exist: {}", path.display());
                }
                fs::create_dir_all(path)
                    .with_context(|| format!("-v: create the host directory {}", path.display()))?;
            }
            path.clone()
        }
        Source::Volume(name) => {
            let (vol, fresh) = match name {
                Some(n) => store.create(n, false)?,
                None => store.create(&new_id(), true)?,
            };
            if vol.anonymous {
                used.anonymous.push(vol.name.clone());
            } else {
                used.named.push(vol.name.clone());
            }
            let data = store.data(&vol.name);
            // A new or empty volume starts with the image's content there (Docker's rule).
            if !r.nocopy && (fresh || store.is_empty(&vol.name)?) {
                copy_up(rootfs, &r.target, &data).with_context(|| {
                    format!("volume {}: copy {} from the image", vol.name, r.target)
                })?;
            }
            data
        }
    };
    options.push("rbind".into());
    options.push(
        r.options
            .first()
            .cloned()
            .unwrap_or_else(|| "rprivate".into()),
    );
    if r.readonly {
        options.push("ro".into());
    }
    Ok(json!({
        "destination": r.target, "type": "bind", "source": source, "options": options
    }))
}

/// Fills an empty volume with what the image has at `target` (owner, mode and contents),
/// read inside the rootfs (symlinks resolve inside it; nothing is followed while copying).
fn copy_up(rootfs: &Path, target: &str, data: &Path) -> Result<()> {
    use sysops::copy::{copy_contents, CopyOptions};
    use sysops::inroot::Root;
    let root = Root::open(rootfs).with_context(|| format!("{}", rootfs.display()))?;
    let src = match root.dir(Path::new(target)) {
        Ok(d) => d,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(()); // nothing (or no directory) there in the image
        }
        Err(e) => return Err(anyhow!("{target}: {e}")),
    };
    let dst = Root::open(data)?.dir(Path::new(""))?;
    let st = src.stat_self()?;
    if sysops::explain::enabled() {
        sysops::explain::Cmd::new("cp")
            .arg("-a")
            .arg(format!(
                "{}/{}/.",
                rootfs.display(),
                target.trim_start_matches('/')
            ))
            .arg(data)
            .note("fill the new volume from the image (symlinks resolved inside the rootfs)")
            .emit();
    }
    copy_contents(&src, &dst, CopyOptions { owners: true })?;
    dst.set_owner_mode(st.st_uid, st.st_gid, st.st_mode & 0o7777)?;
    Ok(())
}

/// Removes the anonymous volumes a container used (named ones stay).
pub fn release(data_root: &Path, used: &Used) {
    let store = VolumeStore::new(data_root);
    for v in &used.anonymous {
        if let Err(e) = store.remove(v) {
            tracing::warn!("volume {v}: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags() {
        let r = parse_volume_flag("/srv/data:/data:ro,z").unwrap();
        assert_eq!(
            r.source,
            Source::Bind {
                path: "/srv/data".into(),
                create: true
            }
        );
        assert_eq!(r.target, "/data");
        assert!(r.readonly);
        let r = parse_volume_flag("cache:/var/cache/x/").unwrap();
        assert_eq!(r.source, Source::Volume(Some("cache".into())));
        assert_eq!(r.target, "/var/cache/x");
        assert_eq!(
            parse_volume_flag("/anon").unwrap().source,
            Source::Volume(None)
        );
        for bad in [
            "./rel:/x",
            "-x:/y",
            "/a:b",
            "/a:/",
            "/a:/b:bogus",
            "a:b:c:d",
            "../x:/y",
            "/a:/b/../..",
        ] {
            assert!(parse_volume_flag(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mount_and_tmpfs_flags() {
        let r = parse_mount_flag("type=bind,source=/a,target=/b,readonly,bind-propagation=rslave")
            .unwrap();
        assert_eq!(r.options, ["rslave"]);
        assert!(r.readonly);
        let r = parse_mount_flag("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1777").unwrap();
        assert_eq!(
            r.options,
            ["nosuid", "nodev", "noexec", "size=64m", "mode=1777"]
        );
        let r = parse_mount_flag("src=v1,target=/v,volume-nocopy").unwrap();
        assert!(r.nocopy);
        for bad in [
            "type=bind,target=/b",
            "type=bind,source=rel,target=/b",
            "type=nfs,target=/x",
            "target=/x,foo=bar",
            "type=tmpfs,source=x,target=/t",
            "type=bind,source=/a",
            "type=tmpfs,target=/t,tmpfs-mode=99999",
        ] {
            assert!(parse_mount_flag(bad).is_err(), "{bad} accepted");
        }
        let r = parse_tmpfs_flag("/run:rw,size=10m,mode=755,exec").unwrap();
        assert_eq!(
            r.options,
            ["nosuid", "nodev", "noexec", "size=10m", "mode=755", "exec"]
        );
        for bad in [
            "run",
            "/run:size=lots",
            "/run:bind",
            "/run:mode=9",
            "/run:x-mount.mkdir",
        ] {
            assert!(parse_tmpfs_flag(bad).is_err(), "{bad} accepted");
        }
        let a = MountArgs {
            volume: vec!["/a:/x".into()],
            tmpfs: vec!["/x".into()],
            ..Default::default()
        };
        assert!(requests(&a).is_err(), "two mounts on /x");
    }
}
