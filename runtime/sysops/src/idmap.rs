//! Idmapped mounts, with the kernel's new mount API: open_tree(2) clones a mount (detached,
//! in no mount namespace), mount_setattr(2) MOUNT_ATTR_IDMAP gives the copy the mappings of
//! a user namespace (a file owned by id N on disk shows as owned by what N maps to there),
//! and move_mount(2) attaches it. Linux 5.12; the filesystem must allow it (ext4, xfs,
//! btrfs, tmpfs since 6.3, ...; overlayfs only as its layers). The runtime uses them for the
//! spec's `idmap` mounts, the image store for a user-namespaced container's layers.
//! Man pages: open_tree(2), mount_setattr(2), move_mount(2), user_namespaces(7).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const OPEN_TREE_CLONE: u32 = 1;
const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;
pub const AT_RECURSIVE: u32 = 0x8000;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
/// Follow the target's symlinks (minc mounts onto /proc/self/fd/N, see `inroot`).
const MOVE_MOUNT_T_SYMLINKS: u32 = 0x10;

/// mount_setattr(2)'s argument.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// An idmapped, detached copy of the mount at `source` (with its submounts when `tree`; all
/// of them idmapped when `all`, else only the top one), with the mappings of `userns`.
pub fn idmapped_tree(
    source: &Path,
    userns: BorrowedFd<'_>,
    tree: bool,
    all: bool,
) -> io::Result<OwnedFd> {
    let c = cpath(source)?;
    let rec = |yes: bool| if yes { AT_RECURSIVE } else { 0 };
    // SAFETY: valid path; the fd returned is ours.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec(tree),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd.
    let copy = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    mount_setattr(
        copy.as_raw_fd(),
        c"",
        AT_EMPTY_PATH | rec(all),
        MOUNT_ATTR_IDMAP,
        0,
        Some(userns),
    )?;
    Ok(copy)
}

/// mount_setattr(2) (Linux 5.12): sets and clears `MOUNT_ATTR_*` flags of the mount at
/// `dirfd`/`path` (`flags`: `AT_RECURSIVE` for every mount below, `AT_EMPTY_PATH` for the fd
/// itself), with `userns` for `MOUNT_ATTR_IDMAP`.
pub fn mount_setattr(
    dirfd: RawFd,
    path: &CStr,
    flags: u32,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |u| u.as_raw_fd() as u64),
    };
    // SAFETY: a valid C string and an attr struct of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Attaches a detached mount at `target` (move_mount(2)).
pub fn move_tree(tree: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    let t = cpath(target)?;
    // SAFETY: valid fd and paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
