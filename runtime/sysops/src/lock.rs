//! Exclusive locks on files (flock(2)): whoever holds a state directory's lock is the only
//! one changing it. The lock is released when the [`Lock`] is dropped, or when the process
//! dies, so a crashed holder never leaves a directory locked. See flock(2).

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// An exclusive flock held on an open file until dropped.
#[derive(Debug)]
pub struct Lock(File);

impl Lock {
    /// Opens (creating it, mode 0600) and locks `path`, waiting for another holder.
    pub fn acquire(path: &Path) -> std::io::Result<Lock> {
        Self::on(open(path)?)
    }

    /// Locks `path`, waiting for another holder, without creating it: NotFound if it is gone
    /// (the lock of a directory that someone removed stays removed).
    pub fn acquire_existing(path: &Path) -> std::io::Result<Lock> {
        Self::on(
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)?,
        )
    }

    /// Locks an already open file (a directory opened read-only works too).
    pub fn on(file: File) -> std::io::Result<Lock> {
        loop {
            // SAFETY: flock on a valid fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(Lock(file));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Tries to lock without waiting: `None` when someone else holds it.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Lock>> {
        let file = open(path)?;
        // SAFETY: flock on a valid fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Some(Lock(file)));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            Ok(None)
        } else {
            Err(e)
        }
    }

    pub fn file(&self) -> &File {
        &self.0
    }
}

/// The lock file, created 0600 if missing, never truncated (its content does not matter).
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let first = Lock::acquire(&p).unwrap();
        assert!(Lock::try_acquire(&p).unwrap().is_none());
        drop(first);
        assert!(Lock::try_acquire(&p).unwrap().is_some());
    }
}
