//! Copying files and directory trees between two directories held as fds, the way `cp -a`
//! does, for `minc cp` (both ways between the host and a container) and for filling a new
//! volume from the image's content at its mount point (Docker's copy-up).
//!
//! Either side may be a tree that a container wrote, so nothing here follows a symlink:
//! entries are examined with `fstatat(AT_SYMLINK_NOFOLLOW)`, opened with `O_NOFOLLOW` (a
//! directory swapped for a symlink between the look and the open is an error, not a
//! detour), created with `O_EXCL` under a directory fd (so nothing is written through a
//! link), and a symlink is copied as a symlink, its target text unchanged. A regular file is
//! opened `O_NONBLOCK` and checked again after the open, so a FIFO swapped in cannot make
//! the copy hang. Device nodes and sockets are not copied (a warning names them). Hard links
//! become separate files; extended attributes are not copied.
//!
//! Depth is bounded (each level holds two directory fds).
//!
//! Read: openat(2), fstatat(2), mkdirat(2), symlinkat(2), fchownat(2), utimensat(2).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

use crate::inroot::{Dir, Stat};

/// How deep a copied tree may be.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Keep owners (uid/gid) as in the source; otherwise new entries belong to the caller.
    pub owners: bool,
}

/// Copies the entry `name` of `from` (a file, a symlink itself, a FIFO or a directory
/// tree) to `to/to_name`. An existing directory there is merged into; an existing file or
/// symlink is replaced; a directory is never replaced by a non-directory or the reverse.
pub fn copy_entry(
    from: &Dir,
    name: &OsStr,
    to: &Dir,
    to_name: &OsStr,
    opts: CopyOptions,
) -> io::Result<()> {
    let st = from
        .stat(name)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    if kind(&st) != libc::S_IFDIR {
        return copy_leaf(from, name, &st, to, to_name, opts);
    }
    let made = prepare_dir(to, to_name)?;
    let src = from.subdir(name)?;
    let dst = to.subdir(to_name)?;
    copy_contents(&src, &dst, opts)?;
    finish_dir(to, to_name, &st, made, opts)
}

/// Copies everything in directory `from` into the existing directory `to` (merging).
pub fn copy_contents(from: &Dir, to: &Dir, opts: CopyOptions) -> io::Result<()> {
    // Depth first with an explicit stack of (source dir, destination dir, names left,
    // the directory's own stat and name in its parent, for the final mode and times).
    struct Level {
        src: Dir,
        dst: Dir,
        names: std::vec::IntoIter<OsString>,
        pending: Option<(OsString, Stat, bool)>,
    }
    let mut stack = vec![Level {
        src: Dir::from_fd(from.as_fd().try_clone_to_owned()?)?,
        dst: Dir::from_fd(to.as_fd().try_clone_to_owned()?)?,
        names: from.names()?.into_iter(),
        pending: None,
    }];
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            let done = stack.pop().expect("non-empty");
            if let (Some((name, st, made)), Some(parent)) = (done.pending, stack.last()) {
                finish_dir(&parent.dst, &name, &st, made, opts)?;
            }
            continue;
        };
        let Some(st) = top.src.stat(&name)? else {
            continue; // removed meanwhile
        };
        if kind(&st) != libc::S_IFDIR {
            copy_leaf(&top.src, &name, &st, &top.dst, &name, opts)?;
            continue;
        }
        let made = prepare_dir(&top.dst, &name)?;
        let src = top.src.subdir(&name)?;
        let dst = top.dst.subdir(&name)?;
        let names = src.names()?.into_iter();
        if stack.len() >= MAX_DEPTH {
            return Err(io::Error::other(format!(
                "a directory tree deeper than {MAX_DEPTH} levels"
            )));
        }
        stack.push(Level {
            src,
            dst,
            names,
            pending: Some((name, st, made)),
        });
    }
    Ok(())
}

fn kind(st: &Stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// Makes `to/name` a directory we can fill (0700 while filling); returns whether we made
/// it. An existing directory is kept; anything else there is an error.
fn prepare_dir(to: &Dir, name: &OsStr) -> io::Result<bool> {
    match to.stat(name)? {
        Some(st) if kind(&st) == libc::S_IFDIR => Ok(false),
        Some(_) => Err(io::Error::other(format!(
            "{}: cannot overwrite a non-directory with a directory",
            name.to_string_lossy()
        ))),
        None => {
            to.mkdir(name, 0o700)?;
            Ok(true)
        }
    }
}

/// A copied directory's owner, mode and times, set once its contents are in.
fn finish_dir(to: &Dir, name: &OsStr, st: &Stat, made: bool, opts: CopyOptions) -> io::Result<()> {
    if !made && !opts.owners {
        return Ok(()); // merged into an existing directory: leave it as it was
    }
    if opts.owners {
        to.chown(name, st.st_uid, st.st_gid)?;
    }
    to.chmod(name, st.st_mode & 0o7777)?;
    to.set_mtime(name, st.st_mtime)
}

/// A non-directory: a regular file, a symlink, a FIFO. Device nodes and sockets are
/// skipped with a warning.
fn copy_leaf(
    from: &Dir,
    name: &OsStr,
    st: &Stat,
    to: &Dir,
    to_name: &OsStr,
    opts: CopyOptions,
) -> io::Result<()> {
    let k = kind(st);
    if !matches!(k, libc::S_IFREG | libc::S_IFLNK | libc::S_IFIFO) {
        tracing::warn!(
            "{}: not copied (a device node or socket)",
            name.to_string_lossy()
        );
        return Ok(());
    }
    // What is there is replaced, unless it is a directory.
    if let Some(old) = to.stat(to_name)? {
        if kind(&old) == libc::S_IFDIR {
            return Err(io::Error::other(format!(
                "{}: cannot overwrite a directory with a non-directory",
                to_name.to_string_lossy()
            )));
        }
        to.unlink(to_name, false)?;
    }
    let mode = st.st_mode & 0o7777;
    match k {
        libc::S_IFREG => {
            let mut input =
                File::from(from.open_nofollow(name, libc::O_RDONLY | libc::O_NONBLOCK)?);
            let now = fstat(&input)?;
            if kind(&now) != libc::S_IFREG {
                return Err(io::Error::other(format!(
                    "{}: changed while being copied",
                    name.to_string_lossy()
                )));
            }
            // Only the owner may touch it until owner and mode are set.
            let mut output = to.create_file(to_name, 0o600)?;
            io::copy(&mut input, &mut output)?;
            if opts.owners {
                // SAFETY: an fd we own.
                check(unsafe { libc::fchown(output.as_raw_fd(), now.st_uid, now.st_gid) })?;
            }
            // SAFETY: an fd we own; after chown, which clears setuid/setgid.
            check(unsafe { libc::fchmod(output.as_raw_fd(), now.st_mode & 0o7777) })?;
            crate::inroot::set_fd_mtime(output.as_fd(), now.st_mtime)
        }
        libc::S_IFLNK => {
            let target = from.readlink(name)?;
            to.symlink(&target, to_name)?;
            if opts.owners {
                to.chown(to_name, st.st_uid, st.st_gid)?;
            }
            to.set_mtime(to_name, st.st_mtime)
        }
        _ => {
            to.mknod(to_name, libc::S_IFIFO, mode, 0)?;
            if opts.owners {
                to.chown(to_name, st.st_uid, st.st_gid)?;
                to.chmod(to_name, mode)?;
            }
            to.set_mtime(to_name, st.st_mtime)
        }
    }
}

fn fstat(f: &File) -> io::Result<Stat> {
    // SAFETY: zeroed stat is valid; an fd we own.
    let mut st: Stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(f.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inroot::Root;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
    use std::path::Path;

    #[test]
    fn copies_trees_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        let dst = t.path().join("dst");
        let secret = t.path().join("secret");
        std::fs::write(&secret, "host secret").unwrap();
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/f"), "data").unwrap();
        std::fs::set_permissions(src.join("a/b/f"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        symlink(&secret, src.join("a/link")).unwrap();
        symlink("/", src.join("root")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        // The destination has a symlink where a directory would go: not written through.
        symlink(t.path(), dst.join("a")).unwrap();
        let from = Root::open(&src).unwrap().dir(Path::new("")).unwrap();
        let to = Root::open(&dst).unwrap().dir(Path::new("")).unwrap();
        let err = copy_contents(&from, &to, CopyOptions { owners: true }).unwrap_err();
        assert!(err.to_string().contains("non-directory"), "{err}");
        std::fs::remove_file(dst.join("a")).unwrap();
        copy_contents(&from, &to, CopyOptions { owners: true }).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("a/b/f")).unwrap(), "data");
        assert_eq!(
            std::fs::metadata(dst.join("a/b/f")).unwrap().mode() & 0o7777,
            0o4750
        );
        assert_eq!(std::fs::read_link(dst.join("a/link")).unwrap(), secret);
        assert_eq!(
            std::fs::read_link(dst.join("root")).unwrap(),
            Path::new("/")
        );
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");
        // Copying a symlink entry copies the link, not the file it names.
        copy_entry(
            &from.subdir(OsStr::new("a")).unwrap(),
            OsStr::new("link"),
            &to,
            OsStr::new("l2"),
            CopyOptions::default(),
        )
        .unwrap();
        assert!(std::fs::symlink_metadata(dst.join("l2"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
