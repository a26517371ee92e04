//! The container's root filesystem, prepared inside its new mount namespace: propagation,
//! the spec's mounts, /dev, pivot_root, masked and read-only paths.
//!
//! A mount namespace (mount_namespaces(7)) starts as a copy of the host's mounts. minc first
//! cuts the flow of mount events towards the host (rslave by default), bind-mounts the rootfs
//! onto itself (pivot_root(2) needs a mount point), mounts what the spec lists under it, then
//! swaps roots and detaches the old one, so the host's tree is gone from the container.
//!
//! Every mount target is resolved inside the rootfs and held as an fd (`sysops::inroot`:
//! openat2(2) with RESOLVE_IN_ROOT), and the mount goes onto /proc/self/fd/N of that fd, so
//! a symlink planted in an image (`proc -> /`), or swapped in while minc works, cannot
//! redirect a mount onto the host.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sysops::inroot::{proc_fd_path, Dir, Root, Target};

use super::mount_options::{self, MountOptions};
use crate::error::{Error, Result};
use crate::ops::mount::{Idmapped, MOUNT_ATTR_RDONLY};
use crate::ops::{DeviceNode, MountArgs, Sys};
use crate::spec::{LinuxDevice, LinuxDeviceType, Mount, Spec};

/// How the container's mounts are tied to the host's (the spec's rootfsPropagation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Propagation {
    Slave,
    Private,
    Shared,
    Unbindable,
}

fn propagation(spec: &Spec, rootfs: &Path) -> Result<Propagation> {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone());
    Ok(match p.as_deref() {
        None | Some("") | Some("slave") | Some("rslave") => Propagation::Slave,
        Some("private") | Some("rprivate") => Propagation::Private,
        Some("shared") | Some("rshared") => Propagation::Shared,
        Some("unbindable") | Some("runbindable") => Propagation::Unbindable,
        Some(other) => {
            return Err(Error::Rootfs {
                path: rootfs.into(),
                reason: format!("unknown rootfsPropagation {other:?}"),
            })
        }
    })
}

/// What the init reaches on the host side by path: the rootfs (bound onto itself, and held
/// as an fd) and the sources of the spec's bind mounts, each held as an O_PATH fd. A
/// container in a new user namespace opens them before it becomes root there: its root is
/// an unprivileged host uid that could not walk the runtime's private directories
/// (`/var/lib/minc` is 0700), while the init, until then, still has its creator's access.
pub struct HostSide {
    root: Root,
    /// The sources of the bind mounts, by index in the spec's mounts.
    sources: Vec<Option<OwnedFd>>,
}

impl HostSide {
    /// The rootfs, through its fd (for pivot_root).
    pub fn rootfs(&self) -> PathBuf {
        proc_fd_path(self.root.as_fd())
    }
}

/// The first steps: propagation, the rootfs bound onto itself, and what the later ones
/// reach on the host side (see [`HostSide`]).
pub fn open_host_side(
    sys: &dyn Sys,
    spec: &Spec,
    rootfs: &Path,
    bundle: &Path,
) -> Result<HostSide> {
    // Keep our mounts from reaching the host. `shared` and `unbindable` are applied to the
    // new root after pivot_root (which refuses shared mounts); until then the tree is a
    // slave of the host's, so host mounts still arrive as the spec's slave/shared promise.
    let first = match propagation(spec, rootfs)? {
        Propagation::Private | Propagation::Unbindable => libc::MS_PRIVATE,
        Propagation::Slave | Propagation::Shared => libc::MS_SLAVE,
    };
    sys.mount(&MountArgs::propagation(
        Path::new("/"),
        first | libc::MS_REC,
    ))?;
    // pivot_root needs the new root to be a mount point.
    sys.mount(&MountArgs::bind(rootfs, rootfs, true))?;
    // From here on every path under the rootfs is resolved inside it, from an fd.
    let root = Root::open(rootfs).map_err(|e| Error::io(rootfs, e))?;
    let mut sources = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let o = mount_options::parse(m.options().as_deref().unwrap_or(&[]));
        let src = match m.source() {
            Some(s) if o.bind || m.typ().as_deref() == Some("bind") => s,
            _ => {
                sources.push(None);
                continue;
            }
        };
        let src = if src.is_relative() {
            bundle.join(src)
        } else {
            src.clone()
        };
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(&src)
            .map_err(|e| Error::io(&src, e))?;
        sources.push(Some(fd.into()));
    }
    Ok(HostSide { root, sources })
}

/// Prepares everything under the rootfs that must happen before pivot_root.
pub fn prepare(
    sys: &dyn Sys,
    spec: &Spec,
    host: &HostSide,
    idmapped: &[Option<Idmapped>],
) -> Result<()> {
    let root = &host.root;
    let mut dev_bound = false;
    let ns = Namespaces {
        user: crate::userns::in_userns(spec),
        cgroup: crate::spec::has_namespace(spec, crate::spec::LinuxNamespaceType::Cgroup),
    };
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let o = mount_options::parse(m.options().as_deref().unwrap_or(&[]));
        let pre = Prepared {
            idmapped: idmapped.get(i).and_then(Option::as_ref),
            source: host.sources.get(i).and_then(Option::as_ref),
        };
        mount_one(sys, root, m, &o, pre, ns)?;
        if m.destination() == Path::new("/dev") && o.bind {
            dev_bound = true;
        }
    }
    if !dev_bound {
        let devices = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        create_devices(sys, root, &devices, crate::userns::in_userns(spec))?;
    }
    Ok(())
}

/// What a mount takes that was made or opened before (by `create`, or by the init before it
/// became root of its user namespace).
#[derive(Clone, Copy)]
struct Prepared<'a> {
    idmapped: Option<&'a Idmapped>,
    /// A bind mount's source, held open.
    source: Option<&'a OwnedFd>,
}

/// What is mounted at `rel` now, as an fd and its /proc/self/fd path: after a mount, the
/// target fd taken before it still names the directory underneath, so the steps that act
/// on the new mount (remount, attributes, propagation) open it again.
fn reopen(root: &Root, rel: &Path) -> Result<(OwnedFd, PathBuf)> {
    let fd = root
        .open_at(rel, libc::O_PATH, 0)
        .map_err(|e| Error::io(&root.display(rel), e))?;
    let path = proc_fd_path(fd.as_fd());
    Ok((fd, path))
}

/// The container's namespaces that change how a mount is made.
#[derive(Clone, Copy)]
struct Namespaces {
    /// In a user namespace (flags a more privileged one set are locked).
    user: bool,
    /// In a cgroup namespace (cgroupfs mounts show it as their root).
    cgroup: bool,
}

/// Performs one entry of the spec's `mounts`.
fn mount_one(
    sys: &dyn Sys,
    root: &Root,
    m: &Mount,
    o: &MountOptions,
    pre: Prepared,
    ns: Namespaces,
) -> Result<()> {
    let idmapped = pre.idmapped;
    let (in_userns, cgroupns) = (ns.user, ns.cgroup);
    let kind = m.typ().as_deref().unwrap_or("none");
    let rel = m.destination();
    // proc and sysfs only on ordinary directories: a symlink there (planted by an image) could
    // make the kernel's files appear elsewhere (runc's CVE-2019-19921 fix).
    if matches!(kind, "proc" | "sysfs") {
        if let Ok((dir, name)) = root.parent(rel, None) {
            if let Ok(Some(st)) = dir.stat(&name) {
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    return Err(Error::Rootfs {
                        path: rel.clone(),
                        reason: format!("{kind} must be mounted on an ordinary directory"),
                    });
                }
            }
        }
    }
    let bind = o.bind || kind == "bind";
    let source = match (bind, pre.source) {
        (true, Some(fd)) => Some(proc_fd_path(fd.as_fd())),
        _ => m.source().clone(),
    };
    if bind {
        let src = source.ok_or_else(|| Error::Rootfs {
            path: rel.clone(),
            reason: "bind mount without a source".into(),
        })?;
        // Checked by spec::load; what is left is key=value data, which a bind ignores.
        let ignored = o.bind_data().map_err(|reason| Error::Rootfs {
            path: rel.clone(),
            reason,
        })?;
        if !ignored.is_empty() {
            tracing::warn!(
                "mount {}: ignoring {} (a bind mount makes no filesystem to give options to)",
                rel.display(),
                ignored.join(",")
            );
        }
        let meta = fs::metadata(&src).map_err(|e| Error::io(&src, e))?;
        let kind = if meta.is_dir() {
            Target::Dir
        } else {
            Target::File
        };
        let target = sys.mount_target(root, rel, kind)?;
        match idmapped {
            Some(tree) => sys.mount_idmapped(tree, &proc_fd_path(target.as_fd()))?,
            None => sys.mount(&MountArgs::bind(
                &src,
                &proc_fd_path(target.as_fd()),
                o.recursive,
            ))?,
        }
        // A bind mount ignores flags on its first call: apply them with a remount, which
        // changes the top mount only (`ro` on an rbind is runc's behaviour too: the
        // recursive form is `rro`).
        let extra = o.flags & !libc::MS_REMOUNT;
        if extra != 0 {
            let (_fd, now) = reopen(root, rel)?;
            // In a user namespace the flags a mount got from a more privileged one are
            // locked: a remount must keep them or it fails with EPERM.
            let locked = if in_userns { locked_flags(&now) } else { 0 };
            sys.mount(&MountArgs {
                target: now,
                flags: libc::MS_REMOUNT | libc::MS_BIND | extra | locked,
                ..Default::default()
            })?;
        }
    } else if o.tmpcopyup {
        if kind != "tmpfs" {
            return Err(Error::Rootfs {
                path: rel.clone(),
                reason: format!("tmpcopyup is only for tmpfs, not {kind}"),
            });
        }
        let target = sys.mount_target(root, rel, Target::Dir)?;
        let dest = proc_fd_path(target.as_fd());
        // runc's way: a tmpfs on a scratch directory, the covered contents copied into it,
        // then the tmpfs moved over the target.
        let scratch = std::env::temp_dir().join(format!("minc-tmpcopyup-{}", std::process::id()));
        sys.mkdir_all(&scratch, 0o700)?;
        mount_fs(sys, kind, source.as_deref(), &scratch, o, cgroupns, &|| {
            Ok((None, scratch.clone()))
        })?;
        let result = sys.copy_tree(&dest, &scratch).and_then(|_| {
            sys.mount(&MountArgs {
                source: Some(scratch.clone()),
                target: dest.clone(),
                flags: libc::MS_MOVE,
                ..Default::default()
            })
        });
        if result.is_err() {
            let _ = sys.umount(&scratch, libc::MNT_DETACH);
        }
        let _ = sys.rmdir(&scratch);
        result?;
    } else {
        let target = sys.mount_target(root, rel, Target::Dir)?;
        mount_fs(
            sys,
            kind,
            source.as_deref(),
            &proc_fd_path(target.as_fd()),
            o,
            cgroupns,
            &|| reopen(root, rel).map(|(fd, p)| (Some(fd), p)),
        )?;
    }
    if o.attr_set != 0 || o.attr_clear != 0 {
        let (_fd, now) = reopen(root, rel)?;
        sys.mount_setattr(&now, o.attr_set, o.attr_clear, true)?;
    }
    if o.propagation != 0 {
        let (_fd, now) = reopen(root, rel)?;
        sys.mount(&MountArgs::propagation(&now, o.propagation))?;
    }
    Ok(())
}

/// The nosuid/nodev/noexec/ro and atime flags a mount has now (statvfs(3)).
fn locked_flags(path: &Path) -> libc::c_ulong {
    let c = crate::sys::cstr(path);
    // SAFETY: zeroed statvfs is valid; valid path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ]
    .iter()
    .filter(|(st, _)| f & st != 0)
    .fold(0, |acc, (_, ms)| acc | ms)
}

/// What a mount target is after it was mounted on (see [`reopen`]).
type Reopen<'a> = &'a dyn Fn() -> Result<(Option<OwnedFd>, PathBuf)>;

/// Mounts a filesystem (proc, sysfs, tmpfs, devpts, mqueue, cgroup, ...).
fn mount_fs(
    sys: &dyn Sys,
    kind: &str,
    source: Option<&Path>,
    dest: &Path,
    o: &MountOptions,
    cgroupns: bool,
    after: Reopen,
) -> Result<()> {
    let src = source.unwrap_or(Path::new(kind));
    let result = match kind {
        // The host's cgroup design as runc shows it: v2 one mount, v1 one per hierarchy
        // (cgroups/mount.rs).
        "cgroup" | "cgroup2" => {
            crate::cgroups::mount::mount_cgroupfs(sys, dest, o.flags, cgroupns, after)
        }
        // sysfs cannot be mounted when the network namespace is shared with the host: bind
        // the host's read-only instead, as runc does.
        "sysfs" => match sys.mount(&MountArgs::fs(kind, src, dest, o.flags, &o.data)) {
            Err(Error::Sys { err, .. }) if err.raw_os_error() == Some(libc::EPERM) => {
                sys.mount(&MountArgs::bind(Path::new("/sys"), dest, true))?;
                let (_fd, now) = after()?;
                sys.mount_setattr(&now, MOUNT_ATTR_RDONLY, 0, true)
            }
            other => other,
        },
        _ => sys.mount(&MountArgs::fs(kind, src, dest, o.flags, &o.data)),
    };
    // EINVAL from a filesystem usually means an option it does not take: name it.
    match result {
        Err(Error::Sys { what, err })
            if err.raw_os_error() == Some(libc::EINVAL) && !o.data.is_empty() =>
        {
            let what = match crate::ops::mount::rejected_option(kind, &o.data) {
                Some((opt, why)) => format!("{what}: {kind} does not take option {opt:?} ({why})"),
                None => format!("{what} (type {kind}, options {:?})", o.data),
            };
            Err(Error::Sys { what, err })
        }
        other => other,
    }
}

/// The default devices every container gets (runc's list), as (name, major, minor).
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Creates /dev nodes (defaults plus the spec's) and the usual /dev symlinks, each in a
/// directory held as an fd inside the rootfs. In a user namespace mknod(2) is not allowed:
/// the host's nodes are bind-mounted instead, as runc does.
fn create_devices(
    sys: &dyn Sys,
    root: &Root,
    extra: &[LinuxDevice],
    in_userns: bool,
) -> Result<()> {
    let in_dir = |rel: &Path| -> Result<(Dir, PathBuf)> {
        let (dir, name) = root
            .parent(rel, Some(0o755))
            .map_err(|e| Error::io(&root.display(rel), e))?;
        let path = proc_fd_path(dir.as_fd()).join(name);
        Ok((dir, path))
    };
    let node = |rel: &Path, host: &Path, node: DeviceNode| -> Result<()> {
        if in_userns {
            let target = sys.mount_target(root, rel, Target::File)?;
            return sys.mount(&MountArgs::bind(host, &proc_fd_path(target.as_fd()), false));
        }
        let (_dir, path) = in_dir(rel)?;
        sys.mknod(&path, &node)
    };
    sys.mount_target(root, Path::new("/dev"), Target::Dir)?;
    for &(name, major, minor) in DEFAULT_DEVICES {
        let rel = Path::new("/dev").join(name);
        let dev = DeviceNode {
            kind: libc::S_IFCHR,
            mode: 0o666,
            major,
            minor,
            uid: 0,
            gid: 0,
        };
        node(&rel, &rel, dev)?;
    }
    for d in extra {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(Error::Rootfs {
                    path: d.path().clone(),
                    reason: "device type \"a\" is only valid in device cgroup rules".into(),
                })
            }
        };
        let dev = DeviceNode {
            kind,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            major: d.major() as u64,
            minor: d.minor() as u64,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        node(d.path(), d.path(), dev)?;
    }

    let pts_dir = root
        .open_at(Path::new("/dev/pts"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .is_ok();
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if pts_dir {
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        let (dir, path) = in_dir(&Path::new("/dev").join(name))?;
        if dir
            .stat(std::ffi::OsStr::new(name))
            .ok()
            .flatten()
            .is_some()
        {
            continue;
        }
        sys.symlink(Path::new(target), &path)?;
    }
    Ok(())
}

/// Swaps the root: `rootfs` becomes `/` and the old root is detached.
///
/// This is runc's `pivot_root(".", ".")` trick: no `oldroot` directory is needed inside the
/// rootfs (which may be read-only); the old root ends up stacked on `.` and is lazily
/// unmounted from there, after making it a slave so the unmount does not reach the host.
pub fn pivot_root(sys: &dyn Sys, spec: &Spec, rootfs: &Path) -> Result<()> {
    sys.pivot_root_here(rootfs)?;
    let dot = Path::new(".");
    sys.mount(&MountArgs::propagation(dot, libc::MS_SLAVE | libc::MS_REC))?;
    sys.umount(dot, libc::MNT_DETACH)?;
    sys.chdir(Path::new("/"))?;
    let last = match propagation(spec, rootfs)? {
        Propagation::Shared => libc::MS_SHARED,
        Propagation::Unbindable => libc::MS_UNBINDABLE,
        _ => 0,
    };
    if last != 0 {
        sys.mount(&MountArgs::propagation(Path::new("/"), last | libc::MS_REC))?;
    }
    Ok(())
}

/// Hides paths from the container (after pivot_root): directories get an empty read-only
/// tmpfs, files get /dev/null bound over them. Missing paths are fine.
pub fn mask_paths(sys: &dyn Sys, paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            sys.mount(&MountArgs::fs(
                "tmpfs",
                Path::new("tmpfs"),
                path,
                libc::MS_RDONLY,
                "",
            ))?;
        } else {
            sys.mount(&MountArgs::bind(Path::new("/dev/null"), path, false))?;
        }
    }
    Ok(())
}

/// Makes paths read-only (after pivot_root), including everything mounted below them.
pub fn readonly_paths(sys: &dyn Sys, paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        sys.mount(&MountArgs::bind(path, path, true))?;
        sys.mount_setattr(path, MOUNT_ATTR_RDONLY, 0, true)?;
    }
    Ok(())
}

/// `root.readonly`: the root mount itself becomes read-only (not /proc, /dev, ... on it).
pub fn readonly_root(sys: &dyn Sys) -> Result<()> {
    sys.mount_setattr(Path::new("/"), MOUNT_ATTR_RDONLY, 0, false)
}

/// Writes a file under /proc/sys for a namespaced sysctl (`net.ipv4.ip_forward`).
pub fn sysctl(sys: &dyn Sys, key: &str, value: &str) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.contains('/') {
        return Err(Error::Init(format!("sysctl {key:?} is invalid")));
    }
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    sys.write_file(&path, value)
        .map_err(|e| Error::Init(format!("sysctl {key}: {e}")))
}

/// The spec's masked and read-only paths.
pub fn linux_paths(spec: &Spec) -> (Vec<String>, Vec<String>) {
    let l = spec.linux().as_ref();
    (
        l.and_then(|l| l.masked_paths().clone()).unwrap_or_default(),
        l.and_then(|l| l.readonly_paths().clone())
            .unwrap_or_default(),
    )
}

/// Whether the spec bind-mounts or mounts something at `dest`.
#[allow(dead_code)]
pub fn mounts_at(spec: &Spec, dest: &Path) -> bool {
    spec.mounts()
        .iter()
        .flatten()
        .any(|m| m.destination() == dest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Recorder;

    use crate::spec;

    fn spec_with(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
        let mut v: serde_json::Value = serde_json::from_str(spec::DEFAULT_SPEC).unwrap();
        edit(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prepare_issues_the_mounts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        let spec = spec_with(|_| {});
        let rec = Recorder::default();
        let host = open_host_side(&rec, &spec, &rootfs, dir.path()).unwrap();
        prepare(&rec, &spec, &host, &[]).unwrap();
        let calls = rec.calls.borrow();
        let r = rootfs.display();
        assert_eq!(calls[0], "mount --make-rslave /");
        assert_eq!(calls[1], format!("mount --rbind {r} {r}"));
        assert!(
            calls.contains(&format!("mount -t proc proc {r}/proc")),
            "{calls:#?}"
        );
        assert!(
            calls.contains(&format!(
                "mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs {r}/dev"
            )),
            "{calls:#?}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with(&format!("mknod {r}/dev/null"))),
            "{calls:#?}"
        );
    }

    #[test]
    fn propagation_values() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        for (value, first, last) in [
            ("private", "mount --make-rprivate /", None),
            ("slave", "mount --make-rslave /", None),
            (
                "shared",
                "mount --make-rslave /",
                Some("mount --make-rshared /"),
            ),
            (
                "unbindable",
                "mount --make-rprivate /",
                Some("mount --make-runbindable /"),
            ),
        ] {
            let spec = spec_with(|v| {
                v["linux"]["rootfsPropagation"] = value.into();
                v["mounts"] = serde_json::json!([]);
            });
            let rec = Recorder::default();
            let host = open_host_side(&rec, &spec, &rootfs, dir.path()).unwrap();
            prepare(&rec, &spec, &host, &[]).unwrap();
            pivot_root(&rec, &spec, &rootfs).unwrap();
            let calls = rec.calls.borrow();
            assert_eq!(calls[0], first, "{value}");
            assert_eq!(
                calls.last().unwrap(),
                last.unwrap_or("cd /"),
                "{value}: {calls:#?}"
            );
        }
    }

    #[test]
    fn proc_on_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir(&rootfs).unwrap();
        std::os::unix::fs::symlink("/tmp", rootfs.join("proc")).unwrap();
        let spec = spec_with(|_| {});
        let rec = Recorder::default();
        let host = open_host_side(&rec, &spec, &rootfs, dir.path()).unwrap();
        let err = prepare(&rec, &spec, &host, &[]).unwrap_err();
        assert!(err.to_string().contains("ordinary directory"), "{err}");
    }
}
