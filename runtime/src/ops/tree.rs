//! Copying a directory tree the way `cp -a` does, for `tmpcopyup` mounts: entries are
//! examined without following symlinks (a link is copied as a link), and modes, owners and
//! times are kept. The source is the container's own rootfs, read before any of its
//! processes runs.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{check, Error, Result};
use crate::sys::cstr;

pub fn copy(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&src).map_err(|e| Error::io(&src, e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&dst)
                .map_err(|e| Error::io(&dst, e))?;
            copy(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&src).map_err(|e| Error::io(&src, e))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(|e| Error::io(&dst, e))?;
        } else if ft.is_file() {
            use std::os::unix::fs::OpenOptionsExt;
            let mut input = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&src)
                .map_err(|e| Error::io(&src, e))?;
            let mut output = fs::File::create(&dst).map_err(|e| Error::io(&dst, e))?;
            std::io::copy(&mut input, &mut output).map_err(|e| Error::io(&dst, e))?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let c = cstr(&dst);
            // SAFETY: valid path; mode and device number from the source.
            check(
                unsafe { libc::mknod(c.as_ptr(), meta.mode(), meta.rdev()) },
                || format!("mknod {}", dst.display()),
            )?;
        } else {
            continue; // sockets are not copied, as cp -a does not
        }
        keep_attributes(&dst, &meta, ft.is_symlink())?;
    }
    // `from` itself is a directory minc chose (often a /proc/self/fd link to one): follow it.
    let meta = fs::metadata(from).map_err(|e| Error::io(from, e))?;
    keep_attributes(to, &meta, false)
}

/// Owner, mode and times of `meta` onto `path` (for a symlink: its owner only).
fn keep_attributes(path: &Path, meta: &fs::Metadata, symlink: bool) -> Result<()> {
    let c = cstr(path);
    // SAFETY: valid path; lchown does not follow a symlink.
    check(
        unsafe { libc::lchown(c.as_ptr(), meta.uid(), meta.gid()) },
        || format!("chown {}", path.display()),
    )?;
    if symlink {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| Error::io(path, e))?;
    let times = [
        libc::timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    ];
    // SAFETY: valid path and two timespecs.
    check(
        unsafe {
            libc::utimensat(
                libc::AT_FDCWD,
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        },
        || format!("set times of {}", path.display()),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_links_as_links_and_keeps_modes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(a.join("sub")).unwrap();
        fs::write(a.join("sub/f"), "data").unwrap();
        fs::set_permissions(a.join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", a.join("link")).unwrap();
        fs::create_dir(&b).unwrap();
        copy(&a, &b).unwrap();
        assert_eq!(fs::read_to_string(b.join("sub/f")).unwrap(), "data");
        assert_eq!(fs::metadata(b.join("sub/f")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(
            fs::read_link(b.join("link")).unwrap(),
            Path::new("/etc/shadow")
        );
    }
}
