//! Pseudo-terminals: what `process.terminal` gives a container.
//!
//! A pty is a pair of character devices. The *master* is held by whoever shows the terminal
//! to a person (minc's relay, `minc attach`'s monitor, or a console-socket client such as
//! containerd's shim); the *slave* (`/dev/pts/N`) is the container process's stdin, stdout,
//! stderr and controlling terminal. What is written to the master is what the person types;
//! what the process writes to the slave comes out of the master. The line discipline in
//! between echoes, edits lines and turns Ctrl-C into SIGINT for the foreground process group,
//! all inside the container's own session.
//!
//! minc opens the pty in the container's own devpts instance (mounted `newinstance`) after
//! pivot_root, or after joining the mount namespace for `exec`: the slave's number and node
//! belong to the container, never to the host's /dev/pts. The devpts directory is checked
//! (statfs magic) and held open, and `ptmx` is opened relative to it, so a container cannot
//! substitute another file. The master then leaves the container over a unix socket
//! (SCM_RIGHTS, see `channel.rs`).
//!
//! The caller's own terminal, when minc relays a pty to it, is put in raw mode (every key,
//! Ctrl-C included, goes to the container as a byte) and restored on every way out.
//!
//! Man pages: pty(7), pts(4), ioctl_tty(2) (TIOCGPTPEER, TIOCSPTLCK, TIOCSCTTY, TIOCSWINSZ),
//! setsid(2), credentials(7) (sessions and controlling terminals), termios(3) (raw mode).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::error::{check, Error, Result};
use crate::sys::cstr;

/// statfs(2) magic of a devpts filesystem.
const DEVPTS_SUPER_MAGIC: libc::c_long = 0x1cd1;

/// A new pty pair.
#[derive(Debug)]
pub struct Pty {
    pub master: OwnedFd,
    pub slave: Slave,
}

/// The slave end of a pty: what the container's process gets.
#[derive(Debug)]
pub struct Slave {
    pub fd: OwnedFd,
    /// `/dev/pts/N` in the devpts instance it was opened in (as the container sees it).
    pub path: PathBuf,
}

/// Opens a new pty pair in the devpts instance mounted at `pts`. Both ends are close-on-exec
/// and neither becomes our controlling terminal (O_NOCTTY).
pub fn open(pts: &Path) -> Result<Pty> {
    let fail = |what: &str, e: std::io::Error| Error::sys(format!("{what} {}", pts.display()), e);
    let c = cstr(pts);
    // SAFETY: valid C string; the fd is ours.
    let dir = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(Error::Init(format!(
            "process.terminal: {}: {} (the container needs a devpts mount there)",
            pts.display(),
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fresh fd.
    let dir = unsafe { OwnedFd::from_raw_fd(dir) };
    // SAFETY: valid fd and out-pointer.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatfs(dir.as_raw_fd(), &mut fs) }, || {
        format!("statfs {}", pts.display())
    })?;
    if fs.f_type != DEVPTS_SUPER_MAGIC {
        return Err(Error::Init(format!(
            "process.terminal: {} is not a devpts mount",
            pts.display()
        )));
    }
    // Inside a devpts instance, `ptmx` can only be its own multiplexer node.
    // SAFETY: valid dirfd and C string.
    let master = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(fail("open ptmx in", std::io::Error::last_os_error()));
    }
    // SAFETY: fresh fd.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    let mut index: libc::c_uint = 0;
    // SAFETY: ioctls on our master with valid pointers.
    unsafe {
        check(
            libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock),
            || "unlock the pty".into(),
        )?;
        check(
            libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut index),
            || "get the pty number".into(),
        )?;
    }
    // TIOCGPTPEER (Linux 4.13) opens the slave without a path lookup; older kernels get it by
    // name from the same verified directory.
    // SAFETY: ioctl returning a fresh fd.
    let mut slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        let name = crate::sys::cstring(&index.to_string());
        // SAFETY: valid dirfd and C string.
        slave = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
    }
    if slave < 0 {
        return Err(fail(
            "open the pty slave in",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(Pty {
        master,
        slave: Slave {
            // SAFETY: fresh fd.
            fd: unsafe { OwnedFd::from_raw_fd(slave) },
            path: pts.join(index.to_string()),
        },
    })
}

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub rows: u16,
    pub cols: u16,
}

/// The window size of the terminal `fd`, if it is one (and has a size).
pub fn size(fd: BorrowedFd<'_>) -> Option<Size> {
    // SAFETY: zeroed winsize is valid; ioctl with a valid out-pointer.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(Size {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sets the window size of a terminal (the kernel sends SIGWINCH to its foreground group).
pub fn set_size(fd: BorrowedFd<'_>, s: Size) -> Result<()> {
    let ws = libc::winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ioctl with a valid pointer.
    check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
        || "set the terminal size".into(),
    )
    .map(|_| ())
}

/// Makes `tty` the controlling terminal of this process's session (it must be a session
/// leader without one: right after setsid(2)).
pub fn make_controlling(tty: BorrowedFd<'_>) -> Result<()> {
    // SAFETY: ioctl with an integer argument.
    check(
        unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) },
        || "make the pty the controlling terminal (TIOCSCTTY)".into(),
    )
    .map(|_| ())
}

/// Starts a new session: this process leads it and has no controlling terminal, so nothing
/// it does can reach the terminal of the session it came from.
pub fn new_session() -> Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::setsid() }, || "setsid".into()).map(|_| ())
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

/// The caller's terminal in raw mode, restored when dropped (or by [`RawMode::restore`]).
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
    active: bool,
}

impl RawMode {
    /// Puts the terminal `fd` in raw mode: no echo, no line editing, no signals from keys
    /// (Ctrl-C is a byte), no output processing. None if `fd` is not a terminal.
    pub fn enable(fd: RawFd) -> Option<RawMode> {
        // SAFETY: zeroed termios is valid; tcgetattr fills it.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return None;
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw edits our copy.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, &raw) } != 0 {
            return None;
        }
        Some(RawMode {
            fd,
            saved,
            active: true,
        })
    }

    /// Gives the terminal back its saved mode.
    pub fn restore(&mut self) {
        if self.active {
            // SAFETY: the termios saved from this fd.
            unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved) };
            self.active = false;
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn host_devpts_pair_talks_and_has_a_size() {
        let pty = open(Path::new("/dev/pts")).unwrap();
        assert!(pty.slave.path.starts_with("/dev/pts"));
        set_size(
            pty.master.as_fd(),
            Size {
                rows: 33,
                cols: 101,
            },
        )
        .unwrap();
        assert_eq!(
            size(pty.slave.fd.as_fd()),
            Some(Size {
                rows: 33,
                cols: 101
            })
        );
        let mut m = std::fs::File::from(pty.master.try_clone().unwrap());
        let mut s = std::fs::File::from(pty.slave.fd.try_clone().unwrap());
        use std::io::{Read, Write};
        // Raw slave, so the bytes come through unchanged.
        let mut raw = RawMode::enable(s.as_raw_fd()).unwrap();
        m.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        raw.restore();
        assert!(is_terminal(s.as_raw_fd()));
    }

    #[test]
    fn not_a_devpts_is_refused() {
        let err = open(Path::new("/tmp")).unwrap_err().to_string();
        assert!(err.contains("not a devpts mount"), "{err}");
    }
}
