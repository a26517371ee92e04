//! Paths resolved *inside* a root directory, as if it were `/`, by the kernel.
//!
//! A container's rootfs and an image layer being unpacked are trees that an attacker wrote:
//! any component of a path in them may be a symlink (`etc -> /etc`, `up -> ../../..`), and
//! it may be swapped for one between a check and a use. Resolving such a path as a string on
//! the host (`root.join(p)`, `canonicalize`, `is_file()`) follows those links onto the host.
//! So nothing here takes a host path string into a syscall: the root is held as an fd, and
//!
//! - every multi-component path is resolved by openat2(2) relative to that fd with
//!   `RESOLVE_IN_ROOT` (an absolute symlink target or `..` at the top stays at the root, the
//!   way chroot(2) would see it), `RESOLVE_NO_MAGICLINKS` (no `/proc/self/fd/N`-style jumps
//!   out) and, for trees that must not contain mounts, `RESOLVE_NO_XDEV`;
//! - every change is made by an `*at()` call on a directory fd obtained that way, with one
//!   plain name (no `/`, not `.` or `..`): mkdirat, mknodat, symlinkat, linkat, unlinkat,
//!   renameat, and `AT_SYMLINK_NOFOLLOW` / `O_NOFOLLOW` so the final name is never followed;
//! - owners, modes, times and xattrs are set through an fd of the object itself (fchown,
//!   fchmod, futimens, fsetxattr) or, for symlinks and device nodes, with the no-follow
//!   variant of the `*at()` call.
//!
//! Two users: unpacking image layers (create, replace, remove entries, hard links,
//! whiteouts) and the runtime's mount targets ([`Root::mount_target`]: resolve-and-create a
//! target inside the rootfs and return an `O_PATH` fd, so that the mount goes onto
//! `/proc/self/fd/N` and a symlink swapped in afterwards cannot redirect it; crun's
//! `crun_safe_create_and_open_ref_at` and runc's securejoin + `WithProcfd` do the same).
//!
//! Read: openat2(2) (the `RESOLVE_*` flags), path_resolution(7), symlink(7), and the `*at`
//! man pages (openat(2), mkdirat(2), linkat(2), unlinkat(2), fchownat(2), utimensat(2)).
//!
//! Lexical rule: paths given here are first cleaned lexically (`.` dropped, `a/..` folded,
//! `..` at the top dropped), as runc cleans mount destinations; then the kernel resolves the
//! clean path inside the root, following symlinks there.

use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Symlinks followed in one resolution, as the kernel's own limit (path_resolution(7)).
const MAX_LINKS: usize = 40;

/// A directory that paths are resolved inside of, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    resolve: u64,
}

/// What [`Root::mount_target`] makes when the target does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A directory (mode 0755), for mounting a directory or a filesystem.
    Dir,
    /// An empty regular file (mode 0644), for bind-mounting a file.
    File,
}

impl Root {
    /// Opens `path` (a trusted host path: it is followed like any path) as a root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let c = cstring(path.as_os_str())?;
        // SAFETY: valid C string; the result is checked.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Ok(Root {
            fd: owned(fd)?,
            path: path.to_path_buf(),
            resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        })
    }

    /// Also refuses to cross a mount point while resolving (`RESOLVE_NO_XDEV`): for trees
    /// that minc made itself and that hold no mounts, such as a layer being unpacked.
    pub fn no_xdev(mut self) -> Root {
        self.resolve |= libc::RESOLVE_NO_XDEV;
        self
    }

    /// The host path the root was opened from (for messages and `--explain`; never used to
    /// reach anything below the root).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How `rel` reads on the host, for messages: the root's path joined with the lexically
    /// cleaned `rel` (symlinks are not resolved: this names, it does not reach).
    pub fn display(&self, rel: &Path) -> PathBuf {
        let mut p = self.path.clone();
        p.extend(clean(rel));
        p
    }

    /// openat2(2) of `rel` inside the root with `flags` (O_CLOEXEC is added); symlinks are
    /// followed inside the root, including the last one unless `flags` has O_NOFOLLOW.
    pub fn open_at(&self, rel: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let parts = clean(rel);
        let path = if parts.is_empty() {
            PathBuf::from(".")
        } else {
            parts.iter().collect()
        };
        openat2(self.fd.as_fd(), &path, flags, mode, self.resolve)
    }

    /// Opens an existing directory inside the root.
    pub fn dir(&self, rel: &Path) -> io::Result<Dir> {
        Dir::from_fd(self.open_at(rel, libc::O_PATH | libc::O_DIRECTORY, 0)?)
    }

    /// Opens an existing file inside the root for reading (the last component is not
    /// followed if it is a symlink: `ELOOP`).
    pub fn open_file(&self, rel: &Path) -> io::Result<File> {
        let fd = self.open_at(rel, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
        Ok(File::from(fd))
    }

    /// `mkdir -p` inside the root: every missing directory on the way is created with
    /// `mode` (exactly, whatever the umask), symlinks met on the way (dangling ones too) are
    /// followed inside the root. Returns the directory.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> io::Result<Dir> {
        Dir::from_fd(self.walk(rel, Create::Dir(mode))?)
    }

    /// The target of a mount inside the root (runtime's mount points and device nodes'
    /// parents): `rel` resolved inside the root, created if missing (`Target::Dir`: as with
    /// [`Root::mkdir_all`]; `Target::File`: parents as directories, then an empty file, a
    /// dangling symlink at the end being followed inside the root as `mkdir -p` would).
    ///
    /// Returns an `O_PATH` fd of what is there now. Mount onto [`proc_fd_path`] of it, not
    /// onto a path string: whatever happens to the names in the rootfs afterwards, the mount
    /// lands on this inode, which is inside the root. An existing target of the other kind is
    /// returned as it is (mount(2) then reports the mismatch).
    pub fn mount_target(&self, rel: &Path, kind: Target) -> io::Result<OwnedFd> {
        match kind {
            Target::Dir => self.walk(rel, Create::Dir(0o755)),
            Target::File => self.walk(rel, Create::File(0o644)),
        }
    }

    /// The parent directory of `rel` (resolved inside the root, created with `mode` when
    /// `create` says so) and its last name. `rel` must name something below the root.
    pub fn parent(&self, rel: &Path, create: Option<u32>) -> io::Result<(Dir, OsString)> {
        let mut parts = clean(rel);
        let name = parts
            .pop()
            .ok_or_else(|| einval("the root itself has no parent"))?;
        let parent: PathBuf = parts.iter().collect();
        let dir = match create {
            Some(mode) => self.mkdir_all(&parent, mode)?,
            None => self.dir(&parent)?,
        };
        Ok((dir, name))
    }

    /// Removes `rel` (a file, a symlink itself, or a directory tree); missing is fine.
    pub fn remove_all(&self, rel: &Path) -> io::Result<()> {
        match self.parent(rel, None) {
            Ok((dir, name)) => dir.remove_all(&name),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Resolves `rel` inside the root component by component, creating what is missing
    /// (the last component as `last` says, the others as directories). Each existing prefix
    /// is resolved by the kernel (openat2 in the root); each creation is one `*at()` call on
    /// the fd of the prefix with one plain name; a symlink found where something had to be
    /// created (dangling, or swapped in meanwhile) is read and its target resolved again
    /// inside the root, so it can only lead to another place inside the root.
    fn walk(&self, rel: &Path, last: Create) -> io::Result<OwnedFd> {
        let mut todo: VecDeque<OsString> = clean(rel).into();
        let mut done = PathBuf::new();
        let mut cur = self.open_at(Path::new(""), libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            let at_end = todo.is_empty();
            let next = done.join(&c);
            let want = if at_end { last } else { Create::Dir(0o755) };
            let flags = match want {
                Create::Dir(_) => libc::O_PATH | libc::O_DIRECTORY,
                Create::File(_) => libc::O_PATH,
            };
            match openat2(self.fd.as_fd(), &next, flags, 0, self.resolve) {
                Ok(fd) => {
                    cur = fd;
                    done = next;
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && c != ".." => {}
                Err(e) => return Err(e),
            }
            let dir = Dir::from_fd(cur)?;
            let made = match want {
                Create::Dir(mode) => dir.mkdir(&c, mode),
                Create::File(mode) => dir.create_file(&c, mode).map(drop),
            };
            match made {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => return Err(e),
            }
            let st = dir
                .stat(&c)?
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = dir.readlink(&c)?;
                let parts = clean_keep_dotdot(&target);
                if target.is_absolute() {
                    done = PathBuf::new();
                    cur = self.open_at(Path::new(""), libc::O_PATH | libc::O_DIRECTORY, 0)?;
                } else {
                    cur = dir.fd;
                }
                for p in parts.into_iter().rev() {
                    todo.push_front(p);
                }
                continue;
            }
            cur = dir.open_nofollow(&c, flags)?;
            done = next;
        }
        Ok(cur)
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[derive(Debug, Clone, Copy)]
enum Create {
    Dir(u32),
    File(u32),
}

/// A directory inside a root, held open; its methods act on one plain name in it.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// The metadata of a directory entry (lstat: a symlink is described, not followed).
pub type Stat = libc::stat;

impl Dir {
    /// Wraps an fd of a directory (O_PATH is fine).
    pub fn from_fd(fd: OwnedFd) -> io::Result<Dir> {
        Ok(Dir { fd })
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// fstat(2) of the directory itself.
    pub fn stat_self(&self) -> io::Result<Stat> {
        fstatat(self.fd.as_fd(), c"", libc::AT_EMPTY_PATH)
    }

    /// lstat of `name`: `None` when it does not exist.
    pub fn stat(&self, name: &OsStr) -> io::Result<Option<Stat>> {
        let c = name_cstr(name)?;
        match fstatat(self.fd.as_fd(), &c, libc::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// mkdirat(2) with exactly `mode` (the umask does not apply).
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = name_cstr(name)?;
        // SAFETY: valid fd and C string.
        check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode) })?;
        let d = self.subdir(name)?;
        // SAFETY: a directory fd opened for reading; fchmod sets the exact mode.
        check(unsafe { libc::fchmod(d.fd.as_raw_fd(), mode) })
    }

    /// Opens the subdirectory `name` for reading (never through a symlink).
    pub fn subdir(&self, name: &OsStr) -> io::Result<Dir> {
        Dir::from_fd(self.open_nofollow(name, libc::O_RDONLY | libc::O_DIRECTORY)?)
    }

    /// openat(2) of `name` with O_NOFOLLOW added (a symlink gives ELOOP, or with O_PATH an
    /// fd of the symlink itself).
    pub fn open_nofollow(&self, name: &OsStr, flags: i32) -> io::Result<OwnedFd> {
        self.open_raw(&name_cstr(name)?, flags)
    }

    /// openat(2) of any single name, `.` and `..` included (private: `..` leaves the
    /// directory, so only callers that check where it leads use it).
    fn open_raw(&self, c: &std::ffi::CStr, flags: i32) -> io::Result<OwnedFd> {
        // SAFETY: valid fd and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        owned(fd)
    }

    /// Creates the regular file `name` (it must not exist: O_EXCL, so neither a file nor a
    /// symlink is written through), open for writing, with exactly `mode`.
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let c = name_cstr(name)?;
        // SAFETY: valid fd and C string; the result is checked.
        let fd = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode,
            )
        };
        let f = File::from(owned(fd)?);
        // SAFETY: an fd we own; fchmod sets the exact mode whatever the umask.
        check(unsafe { libc::fchmod(f.as_raw_fd(), mode) })?;
        Ok(f)
    }

    /// Opens the regular file `name` for reading, never through a symlink.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        Ok(File::from(self.open_nofollow(name, libc::O_RDONLY)?))
    }

    /// symlinkat(2): `name -> target` (the target is stored, not resolved).
    pub fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        let c = name_cstr(name)?;
        let t = cstring(target.as_os_str())?;
        // SAFETY: valid fd and C strings.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.fd.as_raw_fd(), c.as_ptr()) })
    }

    /// readlinkat(2) of the symlink `name`.
    pub fn readlink(&self, name: &OsStr) -> io::Result<PathBuf> {
        let c = name_cstr(name)?;
        readlinkat(self.fd.as_fd(), &c)
    }

    /// readlinkat(2) of the directory fd itself, for an O_PATH fd of a symlink (as
    /// `openat(.., O_PATH | O_NOFOLLOW)` gives): what that symlink points at.
    pub fn readlink_self(&self) -> io::Result<PathBuf> {
        readlinkat(self.fd.as_fd(), c"")
    }

    /// mknodat(2): a device node or FIFO (`kind` is S_IFCHR, S_IFBLK or S_IFIFO), with
    /// exactly `mode`.
    pub fn mknod(&self, name: &OsStr, kind: u32, mode: u32, dev: libc::dev_t) -> io::Result<()> {
        let c = name_cstr(name)?;
        // SAFETY: valid fd and C string.
        check(unsafe { libc::mknodat(self.fd.as_raw_fd(), c.as_ptr(), kind | mode, dev) })?;
        self.chmod(name, mode)
    }

    /// linkat(2) without AT_SYMLINK_FOLLOW: `name` becomes another name of `from/from_name`
    /// itself (a symlink is linked, not its target).
    pub fn hard_link(&self, name: &OsStr, from: &Dir, from_name: &OsStr) -> io::Result<()> {
        let c = name_cstr(name)?;
        let f = name_cstr(from_name)?;
        // SAFETY: valid fds and C strings.
        check(unsafe {
            libc::linkat(
                from.fd.as_raw_fd(),
                f.as_ptr(),
                self.fd.as_raw_fd(),
                c.as_ptr(),
                0,
            )
        })
    }

    /// renameat(2) of `name` to `to/to_name` (replacing a file there).
    pub fn rename(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> io::Result<()> {
        let c = name_cstr(name)?;
        let t = name_cstr(to_name)?;
        // SAFETY: valid fds and C strings.
        check(unsafe {
            libc::renameat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                to.fd.as_raw_fd(),
                t.as_ptr(),
            )
        })
    }

    /// unlinkat(2) of a non-directory (`dir` false) or an empty directory.
    pub fn unlink(&self, name: &OsStr, dir: bool) -> io::Result<()> {
        let c = name_cstr(name)?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid fd and C string.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), flags) })
    }

    /// Removes `name`: a file, a symlink (itself) or a whole directory tree, however deep
    /// (it holds two fds at a time, not one per level); missing is fine.
    pub fn remove_all(&self, name: &OsStr) -> io::Result<()> {
        let Some(st) = self.stat(name)? else {
            return Ok(());
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return self.unlink(name, false);
        }
        // Depth first. Going back up uses "..", checked against the (dev, ino) recorded on
        // the way down, so a directory moved meanwhile stops the removal instead of
        // leading it elsewhere.
        let top = self.stat_self()?;
        let mut path: Vec<(OsString, (u64, u64))> = vec![(name.to_os_string(), id(&top))];
        let mut cur = self.subdir(name)?;
        loop {
            let mut descended = false;
            for child in cur.names()? {
                let Some(cst) = cur.stat(&child)? else {
                    continue;
                };
                if cst.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    let here = cur.stat_self()?;
                    let next = cur.subdir(&child)?;
                    path.push((child, id(&here)));
                    cur = next;
                    descended = true;
                    break;
                }
                cur.unlink(&child, false)?;
            }
            if descended {
                continue;
            }
            // `cur` is empty now: remove it from its parent and go up.
            let (me, parent_id) = path.pop().expect("path holds the top");
            if path.is_empty() {
                return self.unlink(&me, true);
            }
            let up = Dir::from_fd(cur.open_raw(c"..", libc::O_RDONLY | libc::O_DIRECTORY)?)?;
            if id(&up.stat_self()?) != parent_id {
                return Err(io::Error::other("directory moved during removal"));
            }
            up.unlink(&me, true)?;
            cur = up;
        }
    }

    /// The names in the directory (without `.` and `..`).
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        // A fresh open fd: the directory may be held as O_PATH, and readdir needs its own
        // offset anyway.
        let fd = self.open_raw(c".", libc::O_RDONLY | libc::O_DIRECTORY)?;
        let raw = fd.as_raw_fd();
        std::mem::forget(fd); // closedir closes it
                              // SAFETY: an fd we own, handed over to the DIR stream.
        let d = unsafe { libc::fdopendir(raw) };
        if d.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so the fd is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        let mut out = Vec::new();
        loop {
            // SAFETY: a valid DIR stream; readdir64 is only used by this thread.
            let ent = unsafe { libc::readdir64(d) };
            if ent.is_null() {
                break;
            }
            // SAFETY: d_name is a NUL-terminated string inside the returned entry.
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            let b = name.to_bytes();
            if b != b"." && b != b".." {
                out.push(OsStr::from_bytes(b).to_os_string());
            }
        }
        // SAFETY: the stream from fdopendir, closed once.
        unsafe { libc::closedir(d) };
        Ok(out)
    }

    /// fchownat(2) of `name` itself (AT_SYMLINK_NOFOLLOW).
    pub fn chown(&self, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        let c = name_cstr(name)?;
        // SAFETY: valid fd and C string.
        check(unsafe {
            libc::fchownat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// The mode of `name` itself, never of what a symlink points at: fchmodat2(2) with
    /// AT_SYMLINK_NOFOLLOW (Linux 6.6), else through an O_PATH fd of the entry.
    pub fn chmod(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = name_cstr(name)?;
        // SAFETY: valid fd and C string; an unknown syscall gives ENOSYS.
        let r = unsafe {
            libc::syscall(
                libc::SYS_fchmodat2,
                self.fd.as_raw_fd(),
                c.as_ptr(),
                mode,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e);
        }
        let fd = self.open_nofollow(name, libc::O_PATH)?;
        let st = fstatat(fd.as_fd(), c"", libc::AT_EMPTY_PATH)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        let p = cstring(proc_fd_path(fd.as_fd()).as_os_str())?;
        // SAFETY: valid C string naming our own O_PATH fd of a non-symlink.
        check(unsafe { libc::chmod(p.as_ptr(), mode) })
    }

    /// utimensat(2) of `name` itself: access and modification time set to `mtime`.
    pub fn set_mtime(&self, name: &OsStr, mtime: i64) -> io::Result<()> {
        let c = name_cstr(name)?;
        let t = [timespec(mtime), timespec(mtime)];
        // SAFETY: valid fd, C string and two timespecs.
        check(unsafe {
            libc::utimensat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                t.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// Owner then mode (chown clears setuid/setgid, so the mode comes second) of the
    /// directory itself.
    pub fn set_owner_mode(&self, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        let fd = self.open_raw(c".", libc::O_RDONLY | libc::O_DIRECTORY)?;
        set_owner_mode(fd.as_fd(), uid, gid, mode)
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// fchown then fchmod of an open file or directory (chown clears setuid/setgid, so the
/// mode comes second).
pub fn set_owner_mode(fd: BorrowedFd, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // SAFETY: a valid fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    // SAFETY: a valid fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })
}

/// futimens(2): access and modification time of an open file set to `mtime`.
pub fn set_fd_mtime(fd: BorrowedFd, mtime: i64) -> io::Result<()> {
    let t = [timespec(mtime), timespec(mtime)];
    // SAFETY: a valid fd and two timespecs.
    check(unsafe { libc::futimens(fd.as_raw_fd(), t.as_ptr()) })
}

/// fsetxattr(2) on an open file or directory (not an O_PATH fd).
pub fn set_xattr(fd: BorrowedFd, key: &str, value: &[u8]) -> io::Result<()> {
    let k = cstring(OsStr::new(key))?;
    // SAFETY: valid fd, C string and buffer.
    check(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// fgetxattr(2) on an open file or directory: `None` when the attribute is not set.
pub fn get_xattr(fd: BorrowedFd, key: &str) -> io::Result<Option<Vec<u8>>> {
    let k = cstring(OsStr::new(key))?;
    let mut buf = vec![0u8; 256];
    loop {
        // SAFETY: valid fd, C string and buffer of the given length.
        let n = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                k.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 65536 => buf.resize(buf.len() * 4, 0),
            _ => return Err(e),
        }
    }
}

/// Every xattr of an open file or directory, as (name, value).
pub fn list_xattrs(fd: BorrowedFd) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let n = loop {
        // SAFETY: valid fd and buffer of the given length.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) if names.len() < 65536 * 4 => {
                let l = names.len();
                names.resize(l * 4, 0)
            }
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for key in names[..n].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let key = String::from_utf8_lossy(key).into_owned();
        if let Some(v) = get_xattr(fd, &key)? {
            out.push((key, v));
        }
    }
    Ok(out)
}

/// `/proc/self/fd/N` for an fd: the path to give mount(2) (or chmod) so that it acts on
/// the inode the fd holds, not on whatever a name points at by then.
pub fn proc_fd_path(fd: BorrowedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The lexical form of a path inside a root: its plain names, with `.` dropped, `a/..`
/// folded and `..` at the top dropped (the root is its own parent).
pub fn clean(p: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// A symlink target's components in order, `..` kept (it is resolved by the kernel from
/// the symlink's real directory, which the lexical form cannot know).
fn clean_keep_dotdot(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// openat2(2) with `resolve` flags (O_CLOEXEC is added). EAGAIN, which the kernel returns
/// when a rename raced with a `..` lookup under RESOLVE_IN_ROOT, is retried a few times.
pub fn openat2(
    dir: BorrowedFd,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstring(path.as_os_str())?;
    // SAFETY: open_how is plain data; zero is valid for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = resolve;
    let mut tries = 0;
    loop {
        // SAFETY: valid fd, C string and open_how of the size passed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            return owned(r as RawFd);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) if tries < 32 => tries += 1,
            _ => return Err(e),
        }
    }
}

fn fstatat(fd: BorrowedFd, name: &std::ffi::CStr, flags: i32) -> io::Result<Stat> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: Stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and stat buffer.
    check(unsafe { libc::fstatat(fd.as_raw_fd(), name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

fn readlinkat(fd: BorrowedFd, name: &std::ffi::CStr) -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: valid fd, C string and buffer of the given length.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// (st_dev, st_ino): what identifies an inode.
pub fn id(st: &Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

fn timespec(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }
}

/// One plain name: not empty, not `.` or `..`, no `/` (so an `*at()` call with it acts
/// in exactly the directory given).
fn name_cstr(name: &OsStr) -> io::Result<CString> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(einval("not a plain file name"));
    }
    cstring(name)
}

fn cstring(s: &OsStr) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| einval("a NUL byte in a name"))
}

fn einval(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_string())
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh fd returned by the kernel, owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    /// A root with hostile symlinks, and a "host" directory beside it with a sentinel.
    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        host: PathBuf,
        /// The host directory as a path relative to `/` (what an absolute link names).
        host_rel: String,
    }

    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let host = tmp.path().join("host");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::fs::create_dir_all(&host).unwrap();
        std::fs::write(host.join("sentinel"), "host").unwrap();
        symlink("/", root.join("escape")).unwrap();
        symlink("../../../../../../..", root.join("etc/up")).unwrap();
        symlink(&host, root.join("abs-host")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        symlink("/etc", root.join("var/etc")).unwrap();
        let host_rel = host.strip_prefix("/").unwrap().display().to_string();
        Tree {
            _tmp: tmp,
            root,
            host,
            host_rel,
        }
    }

    fn ino(fd: BorrowedFd) -> u64 {
        fstatat(fd, c"", libc::AT_EMPTY_PATH).unwrap().st_ino
    }

    fn host_untouched(t: &Tree) {
        let names: Vec<_> = std::fs::read_dir(&t.host)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["sentinel"], "the host directory changed");
        assert_eq!(
            std::fs::read_to_string(t.host.join("sentinel")).unwrap(),
            "host"
        );
    }

    #[test]
    fn symlinks_and_dotdot_resolve_inside_the_root() {
        let t = tree();
        let r = Root::open(&t.root).unwrap();
        let etc = std::fs::metadata(t.root.join("etc")).unwrap().ino();
        for p in [
            "escape/etc",
            "etc/up/etc",
            "/../../etc",
            "var/etc",
            "var/../../etc",
        ] {
            let fd = r.open_at(Path::new(p), libc::O_PATH, 0).unwrap();
            assert_eq!(ino(fd.as_fd()), etc, "{p}");
        }
        // The host file is not reachable through any of them.
        for p in [
            format!("escape/{}/sentinel", t.host_rel),
            format!("etc/up/{}/sentinel", t.host_rel),
            "abs-host/sentinel".to_string(),
        ] {
            let e = r.open_file(Path::new(&p)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{p}");
        }
        let e = r
            .open_at(Path::new("loop1/x"), libc::O_PATH, 0)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        // /proc/self/root is a magic link: never followed.
        std::os::unix::fs::symlink("/proc/self/root", t.root.join("magic")).unwrap();
        assert!(r.open_at(Path::new("magic/etc"), libc::O_PATH, 0).is_err());
    }

    #[test]
    fn mkdir_all_and_mount_targets_stay_inside() {
        let t = tree();
        let r = Root::open(&t.root).unwrap();
        // Through an absolute link to the host directory: created inside the root.
        r.mkdir_all(Path::new("abs-host/made/deeper"), 0o755)
            .unwrap();
        assert!(t.root.join(&t.host_rel).join("made/deeper").is_dir());
        let d = r
            .mount_target(Path::new("escape/proc"), Target::Dir)
            .unwrap();
        assert_eq!(
            ino(d.as_fd()),
            std::fs::metadata(t.root.join("proc")).unwrap().ino()
        );
        // A dangling absolute link at the end (as /etc/resolv.conf often is).
        symlink("/run/systemd/resolv.conf", t.root.join("etc/resolv.conf")).unwrap();
        let f = r
            .mount_target(Path::new("/etc/resolv.conf"), Target::File)
            .unwrap();
        let made = t.root.join("run/systemd/resolv.conf");
        assert_eq!(ino(f.as_fd()), std::fs::metadata(&made).unwrap().ino());
        assert!(made.is_file());
        // A dangling relative link climbing out: created at the root's top instead.
        symlink(
            format!("../../../../../../../../{}/planted", t.host_rel),
            t.root.join("etc/climb"),
        )
        .unwrap();
        r.mount_target(Path::new("etc/climb"), Target::File)
            .unwrap();
        assert!(t.root.join(&t.host_rel).join("planted").is_file());
        // A loop is an error, not a hang.
        let e = r
            .mount_target(Path::new("loop1/x"), Target::Dir)
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
        // A file in the way of a directory.
        std::fs::write(t.root.join("file"), "").unwrap();
        let e = r.mkdir_all(Path::new("file/sub"), 0o755).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
        host_untouched(&t);
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_cannot_redirect_a_held_target() {
        let t = tree();
        let r = Root::open(&t.root).unwrap();
        let target = r.mount_target(Path::new("mnt/data"), Target::Dir).unwrap();
        let before = ino(target.as_fd());
        // The attacker swaps the directory for a symlink to the host after the check.
        std::fs::rename(t.root.join("mnt"), t.root.join("mnt.old")).unwrap();
        symlink(&t.host, t.root.join("mnt")).unwrap();
        // The fd still names the original directory, inside the root; its /proc path is
        // what a mount would use.
        assert_eq!(ino(target.as_fd()), before);
        let via_proc = std::fs::metadata(proc_fd_path(target.as_fd()))
            .unwrap()
            .ino();
        assert_eq!(via_proc, before);
        // And a fresh resolution of the name follows the symlink inside the root only.
        let again = r.mount_target(Path::new("mnt/data"), Target::Dir).unwrap();
        assert_eq!(
            ino(again.as_fd()),
            std::fs::metadata(t.root.join(&t.host_rel).join("data"))
                .unwrap()
                .ino()
        );
        host_untouched(&t);
    }

    #[test]
    fn entries_are_made_and_removed_without_following_links() {
        let t = tree();
        let r = Root::open(&t.root).unwrap().no_xdev();
        let (dir, name) = r
            .parent(Path::new("abs-host/sentinel"), Some(0o755))
            .unwrap();
        assert_eq!(name, "sentinel");
        // Creating over a symlink to a host file never writes through it.
        symlink(t.host.join("sentinel"), t.root.join("var/link")).unwrap();
        let var = r.dir(Path::new("var")).unwrap();
        let e = var.create_file(OsStr::new("link"), 0o644).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(var.open_file(OsStr::new("link")).is_err(), "O_NOFOLLOW");
        // chmod, chown and times of a symlink act on the link, not the host file.
        let host_mode = std::fs::metadata(t.host.join("sentinel")).unwrap().mode();
        let _ = var.chmod(OsStr::new("link"), 0o777);
        var.chown(OsStr::new("link"), 1234, 1234).unwrap();
        var.set_mtime(OsStr::new("link"), 5).unwrap();
        let host_meta = std::fs::metadata(t.host.join("sentinel")).unwrap();
        assert_eq!((host_meta.mode(), host_meta.uid()), (host_mode, 0));
        // A hard link to a symlink is a second name of the symlink itself.
        var.hard_link(OsStr::new("hl"), &var, OsStr::new("link"))
            .unwrap();
        let hl = std::fs::symlink_metadata(t.root.join("var/hl")).unwrap();
        assert!(hl.file_type().is_symlink());
        // Plain names only.
        for bad in ["..", ".", "a/b", ""] {
            assert!(dir.mkdir(OsStr::new(bad), 0o755).is_err(), "{bad:?}");
            assert!(dir.remove_all(OsStr::new(bad)).is_err(), "{bad:?}");
        }
        // remove_all of a tree holding a link to the host removes the link only.
        std::fs::create_dir_all(t.root.join("tree/a/b")).unwrap();
        symlink(&t.host, t.root.join("tree/a/b/host")).unwrap();
        symlink("/", t.root.join("tree/a/root")).unwrap();
        r.dir(Path::new(""))
            .unwrap()
            .remove_all(OsStr::new("tree"))
            .unwrap();
        assert!(!t.root.join("tree").exists());
        r.remove_all(Path::new("escape")).unwrap();
        assert!(std::fs::symlink_metadata(t.root.join("escape")).is_err());
        assert!(Path::new("/etc").is_dir());
        host_untouched(&t);
    }

    #[test]
    fn remove_all_handles_trees_deeper_than_the_fd_limit() {
        let t = tree();
        let r = Root::open(&t.root).unwrap();
        // 3000 levels: more than the default 1024 open files, were one held per level.
        let mut d = r.mkdir_all(Path::new("deep"), 0o755).unwrap();
        for _ in 0..3000 {
            d.mkdir(OsStr::new("d"), 0o755).unwrap();
            std::mem::drop(d.create_file(OsStr::new("f"), 0o644).unwrap());
            d = d.subdir(OsStr::new("d")).unwrap();
        }
        drop(d);
        r.remove_all(Path::new("deep")).unwrap();
        assert!(!t.root.join("deep").exists());
    }
}
