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

    /// Locks the lock file `name` that was made with the directory `dir`, waiting for another
    /// holder; None if the directory is gone. The file is not recreated when missing: opening
    /// it with O_CREAT while another process removes the directory would make that removal's
    /// rmdir fail and leave the directory behind. Only a directory that still holds `record`
    /// but lost its lock file (a removal killed half-way) gets a new one, so what is left of
    /// it can still be removed.
    pub fn existing_dir(dir: &Path, name: &str, record: &str) -> std::io::Result<Option<Lock>> {
        let path = dir.join(name);
        match Self::acquire_existing(&path) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.join(record).exists() {
                    Self::acquire(&path).map(Some)
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(e),
        }
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
    fn a_directory_lock_is_never_recreated_without_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Neither lock file nor record: gone, and nothing is created.
        assert!(Lock::existing_dir(d, ".lock", "record").unwrap().is_none());
        assert!(!d.join(".lock").exists());
        // A record without its lock file (a removal killed half-way): taken over.
        std::fs::write(d.join("record"), b"").unwrap();
        assert!(Lock::existing_dir(d, ".lock", "record").unwrap().is_some());
        assert!(d.join(".lock").exists());
        // The lock file is held while it exists.
        let held = Lock::existing_dir(d, ".lock", "record").unwrap().unwrap();
        assert!(Lock::try_acquire(&d.join(".lock")).unwrap().is_none());
        drop(held);
    }

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
