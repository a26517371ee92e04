//! A container's network namespace, named: `/run/netns/minc-<id>`.
//!
//! A namespace lives as long as something refers to it: a process inside, an open file of
//! `/proc/PID/ns/net`, or a bind mount of that file. `ip netns` (ip-netns(8)) names namespaces
//! by bind-mounting them in /run/netns, which is also what lets `ip -n NAME ...` and
//! `ip netns exec NAME ...` reach them. minc publishes each container's namespace there so the
//! learner's commands work, and removes the name on teardown; that bind mount is the only thing
//! netsetup keeps outside the data root it is given.
//!
//! Read: network_namespaces(7), ip-netns(8), mount(2) (MS_BIND), umount(2) (MNT_DETACH).

use crate::error::io_err;
use crate::Error;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

pub fn name(id: &str) -> String {
    format!("minc-{id}")
}

pub fn open(path: &Path) -> Result<File, Error> {
    File::open(path).map_err(|source| Error::Netns {
        path: path.into(),
        source,
    })
}

/// (st_dev, st_ino) of a file: for a namespace file, which namespace it is.
pub fn identity(f: &File) -> std::io::Result<(u64, u64)> {
    let m = f.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// Bind-mounts `source` (a namespace file) at `target`, then checks that `target` is the
/// namespace with identity `expect` (so a recycled PID cannot name another one); on any
/// failure nothing is left behind.
pub fn publish(source: &Path, target: &Path, expect: (u64, u64)) -> Result<(), Error> {
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(io_err("create", target))?;
    let undo = |e: Error| {
        let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(target);
        e
    };
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        undo(Error::Io {
            what: "bind mount netns at",
            path: target.into(),
            source: e.into(),
        })
    })?;
    let got = open(target)
        .and_then(|f| identity(&f).map_err(io_err("stat", target)))
        .map_err(undo)?;
    if got != expect {
        return Err(undo(Error::Netns {
            path: source.into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the namespace changed while being published (its process exited?)",
            ),
        }));
    }
    Ok(())
}

/// Unmounts and removes a published name; fine if it is not there.
pub fn unpublish(target: &Path) -> Result<(), Error> {
    // Lazily, in case some process still has it open; EINVAL = not a mount point.
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Io {
                what: "unmount",
                path: target.into(),
                source: e.into(),
            })
        }
    }
    crate::state::remove_file(target)
}
