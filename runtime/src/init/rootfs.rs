//! Preparing the container's root filesystem inside its new mount namespace: propagation,
//! the spec's mounts, /dev, pivot_root, masked and read-only paths.
//!
//! Every mount target is resolved inside the rootfs (`secure_join`), so a symlink planted in
//! an image (`proc -> /`) cannot redirect a mount onto the host.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Component, Path, PathBuf};

use super::mount_options::{self, MountOptions};
use crate::error::{check, Error, Result};
use crate::explain;
use crate::spec::{Mount, Spec};
use crate::sys::{self, cstr, cstring};

/// mount(2) with optional source/type/data; explains itself as the `mount` command it is.
fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: &str,
) -> Result<()> {
    let src = source.map(cstr);
    let tgt = cstr(target);
    let ty = fstype.map(cstring);
    let dat = (!data.is_empty()).then(|| cstring(data));
    // SAFETY: all pointers are valid C strings or null.
    let r = unsafe {
        libc::mount(
            src.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            tgt.as_ptr(),
            ty.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            dat.as_ref().map_or(std::ptr::null(), |s| s.as_ptr().cast()),
        )
    };
    check(r, || format!("mount {}", target.display())).map(|_| ())
}

/// Sets the propagation of a mount point (`mount --make-rslave /`).
fn set_propagation(target: &Path, flag: libc::c_ulong) -> Result<()> {
    explain!(
        "mount {} {}",
        mount_options::propagation_name(flag),
        target.display()
    );
    mount(None, target, None, flag, "")
}

/// Prepares everything under `rootfs` that must happen before pivot_root.
pub fn prepare(spec: &Spec, rootfs: &Path, bundle: &Path) -> Result<()> {
    let linux = spec.linux.clone().unwrap_or_default();
    // Keep host mount events from leaking in (and ours from leaking out): rslave by default,
    // like runc.
    let prop = match linux.rootfs_propagation.as_deref() {
        None | Some("") => libc::MS_SLAVE | libc::MS_REC,
        Some(p) => {
            let o = mount_options::parse(&[p.to_string()]);
            if o.propagation == 0 {
                return Err(Error::Rootfs {
                    path: rootfs.into(),
                    reason: format!("unknown rootfsPropagation {p:?}"),
                });
            }
            o.propagation
        }
    };
    set_propagation(Path::new("/"), prop)?;

    // pivot_root needs the new root to be a mount point.
    explain!("mount --rbind {} {}", rootfs.display(), rootfs.display());
    mount(Some(rootfs), rootfs, None, libc::MS_BIND | libc::MS_REC, "")?;
    // ...whose parent is not shared (pivot_root refuses shared mounts).
    if prop & libc::MS_SHARED != 0 {
        set_propagation(rootfs, libc::MS_PRIVATE)?;
    }

    let mut dev_bound = false;
    let cgroupns = spec.has_namespace(crate::spec::NamespaceKind::Cgroup);
    for m in &spec.mounts {
        mount_one(rootfs, bundle, m, cgroupns)?;
        if m.destination == Path::new("/dev") && mount_options::parse(&m.options).bind {
            dev_bound = true;
        }
    }
    if !dev_bound {
        create_devices(rootfs, &linux.devices)?;
    }
    Ok(())
}

/// Performs one entry of the spec's `mounts`.
fn mount_one(rootfs: &Path, bundle: &Path, m: &Mount, cgroupns: bool) -> Result<()> {
    let dest = secure_join(rootfs, &m.destination)?;
    let kind = m.kind.as_deref().unwrap_or("none");
    let o = mount_options::parse(&m.options);
    let bind = o.bind || kind == "bind";
    let source = m.source.as_ref().map(|s| {
        if bind && s.is_relative() {
            bundle.join(s)
        } else {
            s.clone()
        }
    });
    let explain_opts = if m.options.is_empty() {
        String::new()
    } else {
        format!(" -o {}", m.options.join(","))
    };

    if bind {
        let src = source.ok_or_else(|| Error::Rootfs {
            path: m.destination.clone(),
            reason: "bind mount without a source".into(),
        })?;
        let meta = fs::metadata(&src).map_err(|e| Error::io(&src, e))?;
        make_target(&dest, meta.is_dir())?;
        explain!(
            "mount --{}bind{} {} {}",
            if o.recursive { "r" } else { "" },
            explain_opts,
            src.display(),
            dest.display()
        );
        let rec = if o.recursive { libc::MS_REC } else { 0 };
        mount(Some(&src), &dest, None, libc::MS_BIND | rec, "")?;
        // Bind mounts ignore flags on the first call: apply them with a remount.
        let extra = o.flags & !libc::MS_REMOUNT;
        if extra & !libc::MS_RDONLY != 0 || (extra & libc::MS_RDONLY != 0 && !o.recursive) {
            mount(
                None,
                &dest,
                None,
                libc::MS_REMOUNT | libc::MS_BIND | extra,
                "",
            )?;
        }
        if extra & libc::MS_RDONLY != 0 && o.recursive {
            sys::make_readonly_recursive(&dest, true)?;
        }
    } else {
        make_target(&dest, true)?;
        if !matches!(kind, "cgroup" | "cgroup2") {
            // (the cgroup filesystem explains its own steps)
            explain!(
                "mount -t {kind}{explain_opts} {} {}",
                source.as_deref().unwrap_or(Path::new(kind)).display(),
                dest.display()
            );
        }
        mount_fs(kind, source.as_deref(), &dest, &o, cgroupns)?;
    }
    if o.propagation != 0 {
        set_propagation(&dest, o.propagation)?;
    }
    Ok(())
}

/// Mounts a filesystem (proc, sysfs, tmpfs, devpts, mqueue, cgroup, ...).
fn mount_fs(
    kind: &str,
    source: Option<&Path>,
    dest: &Path,
    o: &MountOptions,
    cgroupns: bool,
) -> Result<()> {
    let src = source.unwrap_or(Path::new(kind));
    match kind {
        // The host's cgroup design as runc shows it: v2 one mount, v1 one per hierarchy.
        "cgroup" | "cgroup2" => {
            crate::cgroups::mount::mount_cgroupfs(dest, o.flags, cgroupns, &mount)
        }
        // sysfs cannot be mounted when the network namespace is shared with the host: bind
        // the host's read-only instead, as runc does.
        "sysfs" => match mount(Some(src), dest, Some(kind), o.flags, &o.data) {
            Err(Error::Sys { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
                explain!("mount --rbind -o ro /sys {}", dest.display());
                mount(
                    Some(Path::new("/sys")),
                    dest,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    "",
                )?;
                sys::make_readonly_recursive(dest, true)
            }
            other => other,
        },
        _ => mount(Some(src), dest, Some(kind), o.flags, &o.data),
    }
}

/// Creates a mount target: a directory, or an empty file for a file bind mount.
fn make_target(dest: &Path, dir: bool) -> Result<()> {
    if dir {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dest)
            .map_err(|e| Error::io(dest, e))
    } else {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        match fs::OpenOptions::new().create(true).append(true).open(dest) {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::io(dest, e)),
        }
    }
}

/// The default devices every container gets (runc's list), as (path, major, minor).
const DEFAULT_DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Creates /dev nodes (defaults plus the spec's) and the usual /dev symlinks.
fn create_devices(rootfs: &Path, extra: &[crate::spec::Device]) -> Result<()> {
    let dev = secure_join(rootfs, Path::new("/dev"))?;
    make_target(&dev, true)?;
    // SAFETY: umask is always safe; nodes get exactly the modes we ask for.
    let old = unsafe { libc::umask(0) };
    let result = (|| {
        for (name, major, minor) in DEFAULT_DEVICES {
            mknod(&dev.join(name), libc::S_IFCHR, 0o666, *major, *minor, 0, 0)?;
        }
        for d in extra {
            let kind = match d.kind.as_str() {
                "c" | "u" => libc::S_IFCHR,
                "b" => libc::S_IFBLK,
                "p" => libc::S_IFIFO,
                other => {
                    return Err(Error::Rootfs {
                        path: d.path.clone(),
                        reason: format!("unknown device type {other:?}"),
                    })
                }
            };
            let path = secure_join(rootfs, &d.path)?;
            if let Some(parent) = path.parent() {
                make_target(parent, true)?;
            }
            mknod(
                &path,
                kind,
                d.file_mode.unwrap_or(0o666) & 0o7777,
                d.major as u32,
                d.minor as u32,
                d.uid.unwrap_or(0),
                d.gid.unwrap_or(0),
            )?;
        }
        Ok(())
    })();
    // SAFETY: restoring the previous umask.
    unsafe { libc::umask(old) };
    result?;

    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if dev.join("pts").is_dir() {
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        let path = dev.join(name);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        explain!("ln -s {target} {}", path.display());
        symlink(target, &path).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

fn mknod(
    path: &Path,
    kind: libc::mode_t,
    mode: u32,
    major: u32,
    minor: u32,
    uid: u32,
    gid: u32,
) -> Result<()> {
    let letter = match kind {
        libc::S_IFBLK => "b",
        libc::S_IFIFO => "p",
        _ => "c",
    };
    explain!(
        "mknod -m {mode:o} {} {letter} {major} {minor}",
        path.display()
    );
    let c = cstr(path);
    let _ = fs::remove_file(path);
    // SAFETY: valid path.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | mode, libc::makedev(major, minor)) };
    check(r, || format!("mknod {}", path.display()))?;
    if uid != 0 || gid != 0 {
        // SAFETY: valid path.
        let r = unsafe { libc::chown(c.as_ptr(), uid, gid) };
        check(r, || format!("chown {}", path.display()))?;
    }
    Ok(())
}

/// Swaps the root: `rootfs` becomes `/` and the old root is detached.
///
/// This is runc's `pivot_root(".", ".")` trick: no `oldroot` directory is needed inside the
/// rootfs (which may be read-only); the old root ends up stacked on `.` and is lazily
/// unmounted from there.
pub fn pivot_root(rootfs: &Path) -> Result<()> {
    let open_dir = |p: &Path| -> Result<std::os::fd::OwnedFd> {
        let f = fs::File::open(p).map_err(|e| Error::io(p, e))?;
        Ok(f.into())
    };
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(rootfs)?;
    use std::os::fd::AsRawFd;
    explain!("cd {} && pivot_root . .", rootfs.display());
    // SAFETY: plain syscalls on valid fds and static C strings.
    unsafe {
        check(libc::fchdir(new.as_raw_fd()), || "chdir to rootfs".into())?;
        let dot = c".".as_ptr();
        check(libc::syscall(libc::SYS_pivot_root, dot, dot) as i32, || {
            format!("pivot_root {}", rootfs.display())
        })?;
        check(libc::fchdir(old.as_raw_fd()), || "chdir to old root".into())?;
        // Keep the unmount below from propagating to the host.
        check(
            libc::mount(
                std::ptr::null(),
                dot,
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ),
            || "make old root rslave".into(),
        )?;
        explain!("umount -l .   # detach the old root");
        check(libc::umount2(dot, libc::MNT_DETACH), || {
            "detach old root".into()
        })?;
        check(libc::chdir(c"/".as_ptr()), || "chdir /".into())?;
    }
    Ok(())
}

/// Without a mount namespace there is no pivot_root: chroot, as runc does.
pub fn chroot(rootfs: &Path) -> Result<()> {
    explain!("chroot {}", rootfs.display());
    let c = cstr(rootfs);
    // SAFETY: valid path.
    unsafe {
        check(libc::chroot(c.as_ptr()), || {
            format!("chroot {}", rootfs.display())
        })?;
        check(libc::chdir(c"/".as_ptr()), || "chdir /".into())?;
    }
    Ok(())
}

/// Hides paths from the container (after pivot_root): directories get an empty read-only
/// tmpfs, files get /dev/null bound over them. Missing paths are fine.
pub fn mask_paths(paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            explain!("mount -t tmpfs -o ro tmpfs {p}");
            mount(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                libc::MS_RDONLY,
                "",
            )?;
        } else {
            explain!("mount --bind /dev/null {p}");
            mount(Some(Path::new("/dev/null")), path, None, libc::MS_BIND, "")?;
        }
    }
    Ok(())
}

/// Makes paths read-only (after pivot_root), including everything mounted below them.
pub fn readonly_paths(paths: &[String]) -> Result<()> {
    for p in paths {
        let path = Path::new(p);
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        explain!("mount --rbind -o ro {p} {p}");
        mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, "")?;
        sys::make_readonly_recursive(path, true)?;
    }
    Ok(())
}

/// `root.readonly`: the root mount itself becomes read-only (not /proc, /dev, ... on it).
pub fn readonly_root() -> Result<()> {
    explain!("mount -o remount,bind,ro /");
    sys::make_readonly_recursive(Path::new("/"), false)
}

/// Joins `path` onto `root` resolving every symlink *inside* `root`, as if `root` were `/`:
/// `..` cannot climb above it and absolute link targets restart at it.
pub fn secure_join(root: &Path, path: &Path) -> Result<PathBuf> {
    let mut resolved = root.to_path_buf();
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            if resolved != root {
                resolved.pop();
            }
            continue;
        }
        let next = resolved.join(&part);
        match fs::read_link(&next) {
            Ok(target) => {
                links += 1;
                if links > 40 {
                    return Err(Error::Rootfs {
                        path: path.to_path_buf(),
                        reason: "too many levels of symbolic links".into(),
                    });
                }
                if target.is_absolute() {
                    resolved = root.to_path_buf();
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(n) => pending.push(n.to_os_string()),
                        Component::ParentDir => pending.push("..".into()),
                        _ => {}
                    }
                }
            }
            Err(_) => resolved = next,
        }
    }
    Ok(resolved)
}

/// Writes a file under /proc/sys for a namespaced sysctl (`net.ipv4.ip_forward`).
pub fn sysctl(key: &str, value: &str) -> Result<()> {
    if key.contains("..") || key.contains('/') {
        return Err(Error::Init(format!("sysctl {key:?} is invalid")));
    }
    explain!("sysctl -w {key}={value}");
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    fs::write(&path, value).map_err(|e| Error::sys(format!("sysctl {key}"), e))
}

/// Sets the hostname or domainname (UTS namespace).
pub fn set_uts(hostname: Option<&str>, domainname: Option<&str>) -> Result<()> {
    if let Some(h) = hostname {
        explain!("hostname {h}");
        let c = CString::new(h).map_err(|_| Error::Init("hostname has a NUL byte".into()))?;
        // SAFETY: valid buffer and length.
        let r = unsafe { libc::sethostname(c.as_ptr(), h.len()) };
        check(r, || format!("sethostname {h}"))?;
    }
    if let Some(d) = domainname {
        explain!("domainname {d}");
        let c = CString::new(d).map_err(|_| Error::Init("domainname has a NUL byte".into()))?;
        // SAFETY: valid buffer and length.
        let r = unsafe { libc::setdomainname(c.as_ptr(), d.len()) };
        check(r, || format!("setdomainname {d}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("etc")).unwrap();
        symlink("/", root.join("escape")).unwrap();
        symlink("../../..", root.join("etc/up")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            secure_join(root, Path::new("/escape/etc")).unwrap(),
            root.join("etc")
        );
        assert_eq!(
            secure_join(root, Path::new("/etc/up/x")).unwrap(),
            root.join("x")
        );
        assert_eq!(
            secure_join(root, Path::new("/../../proc")).unwrap(),
            root.join("proc")
        );
        assert!(secure_join(root, Path::new("/loop")).is_err());
    }
}
