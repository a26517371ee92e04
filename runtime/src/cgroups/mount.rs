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

/// The mount(2) wrapper of the caller: (source, target, fstype, flags, data).
pub type MountFn<'a, E> =
    &'a dyn Fn(Option<&Path>, &Path, Option<&str>, libc::c_ulong, &str) -> Result<(), E>;

/// Mounts the container's cgroup filesystem at `dest` (already resolved inside the rootfs).
/// `flags` are the mount's flags (MS_RDONLY, MS_NOSUID, ...); `cgroupns` says whether the
/// init has its own cgroup namespace.
pub fn mount_cgroupfs<E: From<super::Error>>(
    dest: &Path,
    flags: libc::c_ulong,
    cgroupns: bool,
    mount: MountFn<'_, E>,
) -> Result<(), E> {
    let layout = Layout::detect()?;
    let Some(mode) = layout.mode() else {
        return Ok(()); // no cgroups on this host: nothing to show
    };
    let explain = |cmd: sysops::explain::Cmd| cmd.emit();
    if mode == Mode::V2 {
        explain(mount_cmd("cgroup2", "cgroup2", flags, dest, None));
        return mount(Some(Path::new("cgroup2")), dest, Some("cgroup2"), flags, "");
    }
    let base = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    explain(mount_cmd("tmpfs", "tmpfs", base, dest, Some("mode=755")));
    mount(
        Some(Path::new("tmpfs")),
        dest,
        Some("tmpfs"),
        base,
        "mode=755",
    )?;
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
        sysops::explain::Cmd::new("mkdir").arg(&target).emit();
        std::fs::create_dir_all(&target).map_err(|e| super::Error::io(&target, e))?;
        let mflags = flags | base;
        if cgroupns {
            let (fstype, data) = if controllers.is_empty() {
                ("cgroup2", String::new())
            } else if controllers.iter().all(|c| c.starts_with("name=")) {
                ("cgroup", format!("none,{}", controllers.join(",")))
            } else {
                ("cgroup", controllers.join(","))
            };
            explain(mount_cmd(fstype, "cgroup", mflags, &target, Some(&data)));
            mount(
                Some(Path::new("cgroup")),
                &target,
                Some(fstype),
                mflags,
                &data,
            )?;
        } else {
            sysops::explain::Cmd::new("mount")
                .arg("--bind")
                .arg(host)
                .arg(&target)
                .emit();
            mount(Some(host), &target, None, libc::MS_BIND | libc::MS_REC, "")?;
            let ro = flags & libc::MS_RDONLY;
            mount(
                None,
                &target,
                None,
                libc::MS_REMOUNT | libc::MS_BIND | base | ro,
                "",
            )?;
        }
        if controllers.len() > 1 {
            for c in controllers {
                let link = dest.join(c);
                if !link.exists() {
                    sysops::explain::Cmd::new("ln")
                        .args(["-s", name])
                        .arg(&link)
                        .emit();
                    std::os::unix::fs::symlink(name, &link)
                        .map_err(|e| super::Error::io(&link, e))?;
                }
            }
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        explain(
            sysops::explain::Cmd::new("mount")
                .args(["-o", "remount,ro"])
                .arg(dest),
        );
        mount(
            None,
            dest,
            None,
            libc::MS_REMOUNT | base | libc::MS_RDONLY,
            "mode=755",
        )?;
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

fn mount_cmd(
    fstype: &str,
    source: &str,
    flags: libc::c_ulong,
    target: &Path,
    data: Option<&str>,
) -> sysops::explain::Cmd {
    let mut opts: Vec<&str> = Vec::new();
    for (bit, name) in [
        (libc::MS_RDONLY, "ro"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
    ] {
        if flags & bit != 0 {
            opts.push(name);
        }
    }
    if let Some(d) = data.filter(|d| !d.is_empty()) {
        opts.push(d);
    }
    let mut cmd = sysops::explain::Cmd::new("mount").args(["-t", fstype]);
    if !opts.is_empty() {
        cmd = cmd.arg("-o").arg(opts.join(","));
    }
    cmd.arg(source).arg(target)
}
