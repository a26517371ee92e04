//! The cgroup filesystem as the container sees it (a `cgroup` mount in config.json, usually
//! at /sys/fs/cgroup), made by the init inside the container's mount namespace after it
//! joined its cgroup, so tools inside find their own limits (`memory.max`,
//! `memory.limit_in_bytes`).
//!
//! - v2: one `cgroup2` mount. With a cgroup namespace (cgroup_namespaces(7)) its root is the
//!   container's own cgroup.
//! - v1 and hybrid, as runc does: a tmpfs, and in it one directory per hierarchy (`memory`,
//!   `cpu`, ..., `systemd`, and `unified` on a hybrid host) holding either a fresh mount of
//!   that hierarchy (with a cgroup namespace: rooted at the container's cgroup) or a bind
//!   mount of the container's own cgroup directory (without one). Co-mounted controllers
//!   (`cpu,cpuacct`) get a symlink per name. Read-only when the mount asks for `ro`.

use std::path::{Path, PathBuf};

use super::paths::Layout;
use super::Mode;
use crate::ops::{MountArgs, Sys};

/// Mounts the container's cgroup filesystem at `dest` (resolved inside the rootfs, before
/// pivot_root), every step through the operations layer (so `--explain` shows each mount).
/// `flags` are the mount's flags (MS_RDONLY, MS_NOSUID, ...); `cgroupns` says whether the
/// init has its own cgroup namespace.
/// `after` names what is mounted at the target once the tmpfs is there (`dest` is a
/// /proc/self/fd path of the directory underneath).
pub fn mount_cgroupfs(
    sys: &dyn Sys,
    dest: &Path,
    flags: libc::c_ulong,
    cgroupns: bool,
    after: &dyn Fn() -> crate::Result<(Option<std::os::fd::OwnedFd>, PathBuf)>,
) -> crate::Result<()> {
    let layout = Layout::detect()?;
    let Some(mode) = layout.mode() else {
        return Ok(()); // no cgroups on this host: nothing to show
    };
    let fs = |fstype: &str, source: &str, target: &Path, flags, data: &str| {
        sys.mount(&MountArgs::fs(
            fstype,
            Path::new(source),
            target,
            flags,
            data,
        ))
    };
    if mode == Mode::V2 {
        return fs("cgroup2", "cgroup2", dest, flags, "");
    }
    let base = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    fs("tmpfs", "tmpfs", dest, base, "mode=755")?;
    // From here on, into the tmpfs just mounted.
    let (_fd, dest) = after()?;
    let dest = dest.as_path();
    let mut hierarchies: Vec<(String, Vec<String>, PathBuf)> = layout
        .v1
        .iter()
        .map(|h| {
            let name = h
                .mountpoint
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| h.controllers.join(","));
            let host = container_dir(&layout, &h.controllers, &h.mountpoint, &h.root);
            (name, h.controllers.clone(), host)
        })
        .collect();
    if let Some(u) = &layout.unified {
        hierarchies.push((
            "unified".into(),
            Vec::new(),
            container_dir(&layout, &[], &u.mountpoint, &u.root),
        ));
    }
    for (name, controllers, host) in &hierarchies {
        let target = dest.join(name);
        sys.mkdir_all(&target, 0o755)?;
        let mflags = flags | base;
        if cgroupns {
            let (fstype, data) = if controllers.is_empty() {
                ("cgroup2", String::new())
            } else if controllers.iter().all(|c| c.starts_with("name=")) {
                ("cgroup", format!("none,{}", controllers.join(",")))
            } else {
                ("cgroup", controllers.join(","))
            };
            fs(fstype, "cgroup", &target, mflags, &data)?;
        } else {
            sys.mount(&MountArgs::bind(host, &target, true))?;
            sys.mount(&MountArgs {
                target: target.clone(),
                flags: libc::MS_REMOUNT | libc::MS_BIND | base | (flags & libc::MS_RDONLY),
                ..Default::default()
            })?;
        }
        if controllers.len() > 1 {
            for c in controllers {
                let link = dest.join(c);
                if std::fs::symlink_metadata(&link).is_err() {
                    sys.symlink(Path::new(name), &link)?;
                }
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        sys.mount(&MountArgs {
            target: dest.to_path_buf(),
            flags: libc::MS_REMOUNT | base | libc::MS_RDONLY,
            data: "mode=755".into(),
            ..Default::default()
        })?;
    }
    Ok(())
}

/// The host directory of the container's cgroup in one hierarchy: from `create`
/// ([`super::current`]), else this process's own cgroup (the init is already in it).
fn container_dir(
    layout: &Layout,
    controllers: &[String],
    mountpoint: &Path,
    root: &str,
) -> PathBuf {
    if let Some(d) = super::current().and_then(|cg| {
        cg.dirs.iter().find(|d| {
            d.controllers.len() == controllers.len()
                && controllers.iter().all(|c| d.controllers.contains(c))
        })
    }) {
        return d.path.clone();
    }
    let fresh = std::fs::read_to_string("/proc/self/cgroup")
        .map(|own| Layout::parse("", &own))
        .unwrap_or_default();
    let own = fresh
        .own_path(controllers)
        .or(layout.own_path(controllers))
        .unwrap_or("/");
    let below = own
        .strip_prefix(root)
        .filter(|_| root != "/")
        .unwrap_or(own)
        .trim_start_matches('/');
    mountpoint.join(below)
}
