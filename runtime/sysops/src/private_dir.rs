//! Directories that only their owner may enter (CVE-2021-41091 class): a directory that
//! holds container root filesystems lets anyone who can traverse it run the images'
//! setuid-root binaries, so such directories are mode 0700 (or 0710 where a group needs to
//! traverse them, as Docker does), whatever the umask, and an existing one that is more
//! open is tightened. See chmod(2), umask(2), and inode(7) on the sticky bit.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

/// Makes `path` a directory of this user with at most `mode` (0700 or 0710): created if
/// missing (its parents with default permissions), tightened if more open (bits outside
/// `mode` are cleared; it is never loosened). A sticky directory (like /tmp) or one owned
/// by another user is refused rather than changed: it is shared, not minc's.
pub fn ensure_private(path: &Path, mode: u32) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // The host path is trusted (it may be a symlink an admin made); the fd is what we check
    // and change, so a rename between the two cannot redirect the chmod.
    let dir = std::fs::File::open(path)?;
    let meta = dir.metadata()?;
    if !meta.is_dir() {
        return Err(io::Error::other("not a directory"));
    }
    let current = meta.mode() & 0o7777;
    // SAFETY: geteuid has no failure mode.
    let me = unsafe { libc::geteuid() };
    if current & libc::S_ISVTX != 0 || meta.uid() != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "a shared directory (mode {current:o}, owner uid {}): choose a directory of minc's own",
                meta.uid()
            ),
        ));
    }
    let wanted = (current & mode & 0o777) | 0o700;
    if current != wanted {
        // SAFETY: an fd we own.
        if unsafe { libc::fchmod(dir.as_raw_fd(), wanted) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_and_tightens_never_loosens() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("a/b");
        ensure_private(&d, 0o700).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&d), 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        ensure_private(&d, 0o710).unwrap();
        assert_eq!(mode(&d), 0o710);
        ensure_private(&d, 0o700).unwrap();
        assert_eq!(mode(&d), 0o700);
        ensure_private(&d, 0o710).unwrap();
        assert_eq!(mode(&d), 0o700, "never loosened");
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = ensure_private(&shared, 0o700).unwrap_err();
        assert!(e.to_string().contains("shared directory"), "{e}");
        assert_eq!(mode(&shared), 0o1777, "a shared directory is left alone");
    }
}
