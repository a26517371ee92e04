//! Network namespaces: entering one on a private thread, and publishing one as
//! /run/netns/minc-<id> (a bind mount of the netns file) for `ip netns exec`.

use crate::error::io_err;
use crate::explain::explain;
use crate::{Error, Network};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};

pub fn name(id: &str) -> String {
    format!("minc-{id}")
}

pub fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::Netns {
        path: path.into(),
        source,
    })
}

/// Runs `f` on a fresh thread that has entered the netns `ns`; the calling thread (and so
/// the rest of the process) stays where it is. The thread ends with `f`.
pub fn run_in<T: Send>(
    ns: &File,
    path: &Path,
    f: impl FnOnce() -> Result<T, Error> + Send,
) -> Result<T, Error> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                Error::Netns {
                    path: path.into(),
                    source: e.into(),
                }
            })?;
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

fn run_path(net: &Network, id: &str) -> PathBuf {
    net.run_netns_dir.join(name(id))
}

/// Bind-mounts the netns file at /run/netns/minc-<id>.
pub fn publish(net: &Network, id: &str, ns: &File) -> Result<(), Error> {
    let dir = &net.run_netns_dir;
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let target = run_path(net, id);
    unpublish(net, id)?; // a leftover from a crash
    explain!(
        "touch {0} && mount --bind /proc/self/fd/{1} {0}",
        target.display(),
        ns.as_raw_fd()
    );
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&target)
        .map_err(io_err("create", &target))?;
    let src = PathBuf::from(format!("/proc/self/fd/{}", ns.as_raw_fd()));
    nix::mount::mount(
        Some(&src),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        let _ = std::fs::remove_file(&target);
        Error::Io {
            what: "bind mount netns at",
            path: target.clone(),
            source: e.into(),
        }
    })
}

/// Unmounts and removes /run/netns/minc-<id>; fine if it is not there.
pub fn unpublish(net: &Network, id: &str) -> Result<(), Error> {
    let target = run_path(net, id);
    if !target.exists() {
        return Ok(());
    }
    explain!("umount {0} && rm {0}", target.display());
    // Lazily, in case some process still has it open; EINVAL = not a mount point.
    match nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Io {
                what: "unmount",
                path: target,
                source: e.into(),
            })
        }
    }
    crate::state::remove_file(&target)
}

/// /etc/netns/minc-<id>/resolv.conf, which `ip netns exec` binds over /etc/resolv.conf.
pub fn etc_dir(net: &Network, id: &str) -> PathBuf {
    net.etc_netns_dir.join(name(id))
}

pub fn remove_etc(net: &Network, id: &str) -> Result<(), Error> {
    let d = etc_dir(net, id);
    if d.exists() {
        explain!("rm -r {}", d.display());
        std::fs::remove_dir_all(&d).map_err(io_err("remove", &d))?;
    }
    Ok(())
}
