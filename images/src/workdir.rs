//! The store's temporary files, reclaimed after a crash without touching a live import's.
//!
//! Each process that writes into the store gets a directory of its own, `images/tmp/w-*`,
//! and holds an flock(2) on it for as long as it lives. A process killed with SIGKILL
//! mid-import leaves its directory behind, but the kernel drops its lock; the next process
//! that needs a work directory, under the store's lock, removes every `w-*` directory whose
//! lock it can take (so never one whose owner is alive, whatever PID namespace that owner is
//! in) and anything else in `tmp/` older than an hour (left by older minc versions).

use std::ffi::OsStr;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sysops::inroot::{Dir, Root};

use crate::error::{Error, Result};

const PREFIX: &str = "w-";
const LEGACY_AGE: Duration = Duration::from_secs(3600);

/// This process's work directory, locked until dropped (then removed).
pub struct WorkDir {
    path: PathBuf,
    /// The open directory, flocked: the lock says "a live process owns this".
    lock: fs::File,
}

impl WorkDir {
    /// Reclaims what dead processes left in `tmp`, then makes and locks a directory of our
    /// own. `store_lock` is held by the caller meanwhile, so a directory is never seen
    /// between its creation and its lock.
    pub fn create(tmp: &Path, _store_lock: &sysops::lock::Lock) -> Result<WorkDir> {
        reclaim(tmp)?;
        let made = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(tmp)
            .map_err(|e| Error::io(tmp, e))?
            .keep();
        let lock = fs::File::open(&made).map_err(|e| Error::io(&made, e))?;
        // SAFETY: flock on an fd we own; never contended (the directory is new).
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
            return Err(Error::io(&made, std::io::Error::last_os_error()));
        }
        Ok(WorkDir { path: made, lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = remove_tree(&self.path);
        let _ = &self.lock;
    }
}

/// Removes the `w-*` directories of `tmp` that no live process holds, and anything else
/// there older than an hour.
pub fn reclaim(tmp: &Path) -> Result<()> {
    let entries = match fs::read_dir(tmp) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(tmp, e)),
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name();
        let stale = if name.as_bytes().starts_with(PREFIX.as_bytes()) {
            fs::File::open(&path).is_ok_and(|f| {
                // SAFETY: flock on an fd we own; released when `f` is dropped.
                unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
            })
        } else {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or_default() > LEGACY_AGE)
        };
        if stale {
            tracing::debug!("reclaiming {}", path.display());
            remove_tree(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Removes a tree of the store (a layer, a work directory) without following symlinks in
/// it, however deep it is. Missing is fine.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("not a removable path"));
    };
    let dir: Dir = Root::open(parent)?.dir(Path::new(""))?;
    dir.remove_all(OsStr::new(name))
}

/// A temporary directory tree, removed (however deep, never following a symlink in it)
/// when dropped unless kept.
pub struct TempTree {
    pub(crate) path: Option<PathBuf>,
}

impl TempTree {
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("not kept")
    }

    /// Keeps the tree: the caller renames it into place or removes it.
    pub fn keep(mut self) -> PathBuf {
        self.path.take().expect("not kept")
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = remove_tree(&p);
        }
    }
}
