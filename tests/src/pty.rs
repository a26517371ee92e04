//! Driving a program through a real pseudo-terminal, as a person at a terminal would: the
//! test holds the master, the program gets the slave as stdin, stdout, stderr and controlling
//! terminal (in a session of its own), so its raw mode, window size, SIGWINCH and Ctrl-C are
//! the kernel's real ones.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A program running on a pty the test holds.
pub struct PtySession {
    master: std::fs::File,
    /// The slave, kept so the test can look at its modes after the program exits.
    slave: OwnedFd,
    child: Child,
    /// Everything read from the terminal so far.
    pub output: String,
}

/// A new pty pair with the given size: (master, slave).
pub fn openpty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-pointers and winsize.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [m, s] {
        // SAFETY: marking our fresh fds close-on-exec.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: fresh fds.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

/// The terminal modes of `fd` (to compare before and after a program ran on it).
pub fn modes(fd: RawFd) -> libc::termios {
    // SAFETY: zeroed termios is valid; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    t
}

/// Whether two terminal modes are the same (flags and control characters).
pub fn same_modes(a: &libc::termios, b: &libc::termios) -> bool {
    a.c_iflag == b.c_iflag
        && a.c_oflag == b.c_oflag
        && a.c_cflag == b.c_cflag
        && a.c_lflag == b.c_lflag
        && a.c_cc == b.c_cc
}

/// Makes `cmd` run with `slave` as its stdio and controlling terminal, in its own session.
pub fn on_terminal(cmd: &mut Command, slave: &OwnedFd) {
    let s = slave.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(s, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for fd in 0..3 {
                if libc::dup2(s, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

impl PtySession {
    /// Starts `cmd` on a new pty of `rows` x `cols`.
    pub fn spawn(cmd: &mut Command, rows: u16, cols: u16) -> PtySession {
        let (master, slave) = openpty(rows, cols);
        on_terminal(cmd, &slave);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        // SAFETY: fcntl on our master.
        unsafe {
            let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
        PtySession {
            master: std::fs::File::from(master),
            slave,
            child,
            output: String::new(),
        }
    }

    pub fn slave_fd(&self) -> RawFd {
        self.slave.as_raw_fd()
    }

    /// Types `text` (as keys: `\r` is Enter, `\x03` Ctrl-C).
    pub fn send(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Reads until the output (since the start) contains `want`; panics with what was seen
    /// after `secs` seconds.
    pub fn expect(&mut self, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.output.contains(want) {
            assert!(
                Instant::now() < deadline,
                "no {want:?} on the terminal; saw {:?}",
                self.output
            );
            self.read_some(Duration::from_millis(50));
        }
    }

    /// Reads what the terminal has now (waiting up to `wait`).
    pub fn read_some(&mut self, wait: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as i32) };
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.master.read(&mut buf) {
            if n == 0 {
                break;
            }
            self.output.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Sets the terminal's window size (the kernel sends SIGWINCH to its foreground group).
    pub fn resize(&mut self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: ioctl with a valid winsize.
        assert_eq!(
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) },
            0
        );
    }

    /// Waits for the program to exit (bounded), reading its last output.
    pub fn wait(&mut self, secs: u64) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            self.read_some(Duration::from_millis(20));
            if let Some(st) = self.child.try_wait().unwrap() {
                self.read_some(Duration::from_millis(50));
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("program did not exit; terminal showed {:?}", self.output);
            }
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
