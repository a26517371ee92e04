//! Waiting for a foreground container process while minc carries its I/O: the stdio a
//! foreground `run` or `exec` gives the process, and the loop that copies it.
//!
//! Two rules shape it. First, a container never gets the caller's terminal: without a
//! terminal of its own, each of minc's stdin/stdout/stderr that is a terminal is replaced by
//! a pipe minc copies through (Docker does the same with pipes), so no TIOCSTI or tcsetattr
//! from the container can reach the caller's terminal; what is not a terminal (a file, a
//! pipe, /dev/null) is passed as it is, at no cost. Second, with `process.terminal`, the
//! container's own pty is relayed: the caller's terminal goes into raw mode (every key,
//! Ctrl-C included, reaches the container as a byte), SIGWINCH resizes the pty, and the
//! mode is restored on every way out.
//!
//! One thread, one poll(2) loop: signals arrive on a signalfd (signalfd(2)) next to the data
//! descriptors, so the fork path stays thread-free. Writes towards the container are
//! non-blocking with a pending buffer, so a container that does not read its input can never
//! stop its output from being read. When nothing needs copying, the plain signal wait of
//! `sys::wait_forwarding` runs instead: no relay costs nothing.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pty::{self, RawMode};
use crate::sys;

/// After the process exited, how long output may still drain from a pipe or pty that a
/// leftover process keeps open.
const DRAIN: Duration = Duration::from_millis(500);

/// Whether the container reads the caller's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// Our stdin (through a pipe when it is a terminal): runc, `run -i`, `exec -i`.
    Ours,
    /// /dev/null: Docker's `run` and `exec` without `-i`.
    Null,
}

/// One direction of copying.
struct Pump {
    from: RawFd,
    to: RawFd,
    pending: Vec<u8>,
    open: bool,
    /// Towards the container: stop it when the process exited (never swallow typed-ahead
    /// input the process will not read), and close `to` at EOF when it is a pipe.
    input: bool,
    /// At EOF of `from`, close this (the container's stdin pipe) so the process sees EOF.
    close_on_eof: Option<OwnedFd>,
}

impl Pump {
    fn new(from: RawFd, to: RawFd, input: bool) -> Pump {
        Pump {
            from,
            to,
            pending: Vec::new(),
            open: true,
            input,
            close_on_eof: None,
        }
    }
}

/// The stdio of a foreground container process, and what minc copies for it.
pub struct Io {
    /// What the process gets as 0, 1, 2 (None: minc's own, unchanged).
    fds: Option<[RawFd; 3]>,
    /// The ends minc made for the container: closed here once the process has them.
    theirs: Vec<OwnedFd>,
    /// Our ends of pipes and the pty master.
    ours: Vec<OwnedFd>,
    pumps: Vec<Pump>,
    /// The pty master, for resizing.
    master: Option<RawFd>,
    raw: Option<RawMode>,
}

impl Io {
    /// minc's own stdio, given as it is (detached runs, OCI clients' pipes).
    pub fn inherit() -> Io {
        Io {
            fds: None,
            theirs: Vec::new(),
            ours: Vec::new(),
            pumps: Vec::new(),
            master: None,
            raw: None,
        }
    }

    /// minc's stdio with every terminal among them replaced by a pipe minc copies.
    pub fn shielded(stdin: Stdin) -> Result<Io> {
        let mut io = Io::inherit();
        let mut fds = [0, 1, 2];
        let mut changed = false;
        if stdin == Stdin::Null {
            let null = File::open("/dev/null").map_err(|e| Error::sys("open /dev/null", e))?;
            fds[0] = null.as_raw_fd();
            io.theirs.push(null.into());
            changed = true;
        } else if pty::is_terminal(0) {
            let (read, write) = pipe()?;
            set_nonblocking(write.as_raw_fd())?;
            fds[0] = read.as_raw_fd();
            io.pumps.push(Pump::new(0, write.as_raw_fd(), true));
            io.theirs.push(read);
            io.ours.push(write);
            changed = true;
        }
        for fd in [1, 2] {
            if !pty::is_terminal(fd) {
                continue;
            }
            let (read, write) = pipe()?;
            fds[fd as usize] = write.as_raw_fd();
            io.pumps.push(Pump::new(read.as_raw_fd(), fd, false));
            io.ours.push(read);
            io.theirs.push(write);
            changed = true;
        }
        // The container's stdin pipe must see EOF when ours ends.
        if let Some(p) = io.pumps.iter_mut().find(|p| p.input) {
            let pos = io.ours.iter().position(|o| o.as_raw_fd() == p.to);
            p.close_on_eof = pos.map(|i| io.ours.remove(i));
        }
        io.fds = changed.then_some(fds);
        Ok(io)
    }

    /// The container's own terminal, relayed to minc's stdio; with `input`, our stdin is
    /// forwarded (in raw mode when it is a terminal).
    pub fn terminal(master: OwnedFd, input: bool) -> Result<Io> {
        set_nonblocking(master.as_raw_fd())?;
        let m = master.as_raw_fd();
        let mut io = Io::inherit();
        io.master = Some(m);
        io.pumps.push(Pump::new(m, 1, false));
        if input {
            io.pumps.push(Pump::new(0, m, true));
        }
        io.ours.push(master);
        Ok(io)
    }

    /// The descriptors to give the process as 0, 1, 2, when they differ from minc's own.
    pub fn container_fds(&self) -> Option<[RawFd; 3]> {
        self.fds
    }

    /// Closes minc's copies of the container's ends (once the process holds its own), so
    /// that its exit shows up as EOF.
    pub fn close_container_ends(&mut self) {
        self.theirs.clear();
    }

    /// The caller's terminal size, to start the container's pty with.
    pub fn caller_size() -> Option<pty::Size> {
        [0, 1, 2]
            .into_iter()
            .filter(|fd| pty::is_terminal(*fd))
            // SAFETY: our own stdio descriptor, borrowed for the call.
            .find_map(|fd| pty::size(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }))
    }

    /// Waits for `pid` (our child) while copying and forwarding signals; returns its exit
    /// code as a shell reports it. SIGCHLD and `sys::FORWARDED` must already be blocked.
    pub fn wait(mut self, pid: i32) -> i32 {
        self.close_container_ends();
        if self.pumps.is_empty() {
            return sys::wait_forwarding(pid);
        }
        if self.master.is_some() && self.pumps.iter().any(|p| p.input) {
            self.raw = RawMode::enable(0);
        }
        if let Some(m) = self.master {
            resize(m);
        }
        let code = self.run(pid);
        if let Some(r) = &mut self.raw {
            r.restore();
        }
        code
    }

    fn run(&mut self, pid: i32) -> i32 {
        let sigfd = match signalfd() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("{e}: output is not relayed");
                return sys::wait_forwarding(pid);
            }
        };
        let mut interrupts = 0;
        let mut exited: Option<(i32, Instant)> = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some((code, at)) = exited {
                let draining = self.pumps.iter().any(|p| p.open && !p.input);
                if !draining || at.elapsed() >= DRAIN {
                    self.flush();
                    return code;
                }
            }
            let mut fds = vec![libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            let mut slots = Vec::new();
            for (i, p) in self.pumps.iter().enumerate() {
                if !p.open {
                    continue;
                }
                let (fd, events) = if p.pending.is_empty() {
                    (p.from, libc::POLLIN)
                } else {
                    (p.to, libc::POLLOUT)
                };
                fds.push(libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                });
                slots.push(i);
            }
            let timeout = match exited {
                Some((_, at)) => DRAIN.saturating_sub(at.elapsed()).as_millis() as i32 + 1,
                None => -1,
            };
            // SAFETY: a valid array of pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if r < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return sys::wait_forwarding(pid);
            }
            if fds[0].revents != 0 {
                for sig in read_signals(&sigfd) {
                    match sig {
                        libc::SIGCHLD => {} // reaped below, after the data
                        libc::SIGWINCH if self.master.is_some() => {
                            resize(self.master.unwrap_or(-1));
                        }
                        _ if exited.is_none() => {
                            // A PID 1 without a handler ignores SIGINT: a second one kills.
                            interrupts += u32::from(sig == libc::SIGINT);
                            let sig = if interrupts >= 2 { libc::SIGKILL } else { sig };
                            // SAFETY: signalling our own child.
                            unsafe { libc::kill(pid, sig) };
                        }
                        _ => {}
                    }
                }
            }
            for (pfd, &i) in fds[1..].iter().zip(&slots) {
                if pfd.revents != 0 {
                    self.step(i, &mut buf);
                }
            }
            // A child that exited between waits, with its SIGCHLD already consumed.
            if exited.is_none() {
                if let Some(code) = reap(pid) {
                    exited = Some((code, Instant::now()));
                    self.stop_input();
                }
            }
        }
    }

    /// Moves data for pump `i`: reads when nothing is pending, else writes.
    fn step(&mut self, i: usize, buf: &mut [u8]) {
        let p = &mut self.pumps[i];
        if p.pending.is_empty() {
            // SAFETY: reading into our buffer.
            let n = unsafe { libc::read(p.from, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                p.pending.extend_from_slice(&buf[..n as usize]);
            } else if n == 0 || !would_block() {
                // EOF, or EIO from a pty master whose slave is closed everywhere.
                p.open = false;
                p.close_on_eof = None;
                return;
            }
        }
        if !p.pending.is_empty() {
            // SAFETY: writing from our buffer.
            let n = unsafe { libc::write(p.to, p.pending.as_ptr().cast(), p.pending.len()) };
            if n > 0 {
                p.pending.drain(..n as usize);
            } else if !would_block() {
                p.pending.clear();
                p.open = false;
            }
        }
    }

    /// After the process exited: stop reading our stdin.
    fn stop_input(&mut self) {
        for p in self.pumps.iter_mut().filter(|p| p.input) {
            p.open = false;
            p.pending.clear();
            p.close_on_eof = None;
        }
    }

    /// Writes out whatever output was read but not yet written.
    fn flush(&mut self) {
        for p in self.pumps.iter_mut().filter(|p| !p.input) {
            while !p.pending.is_empty() {
                // SAFETY: writing from our buffer to our own stdio.
                let n = unsafe { libc::write(p.to, p.pending.as_ptr().cast(), p.pending.len()) };
                if n <= 0 && !would_block() {
                    break;
                }
                p.pending.drain(..n.max(0) as usize);
            }
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some(r) = &mut self.raw {
            r.restore();
        }
    }
}

/// The exit code of `pid` if it has exited (reaped now), else None.
fn reap(pid: i32) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waitpid on our own child, without blocking.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r == pid {
        Some(sys::exit_code(status))
    } else if r < 0 {
        Some(255)
    } else {
        None
    }
}

/// Copies the caller's terminal size to the pty `master` (the kernel then sends SIGWINCH to
/// the container's foreground process group).
fn resize(master: RawFd) {
    if let Some(size) = Io::caller_size() {
        // SAFETY: our master fd, borrowed for the call.
        let m = unsafe { std::os::fd::BorrowedFd::borrow_raw(master) };
        let _ = pty::set_size(m, size);
    }
}

fn would_block() -> bool {
    let e = std::io::Error::last_os_error();
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

/// A pipe, both ends close-on-exec (the process gets its end by dup2 onto 0-2).
pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out array.
    crate::error::check(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        || "pipe".into(),
    )?;
    // SAFETY: fresh fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: fcntl on an fd we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        crate::error::check(
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK),
            || "set O_NONBLOCK".into(),
        )?;
    }
    Ok(())
}

/// A signalfd for SIGCHLD and the forwarded signals (which the caller has blocked).
pub fn signalfd() -> Result<OwnedFd> {
    // SAFETY: local sigset; signalfd returns a fresh fd.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in sys::FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
        let fd = crate::error::check(
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK),
            || "signalfd".into(),
        )?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The signals waiting on a signalfd.
pub fn read_signals(fd: &OwnedFd) -> Vec<i32> {
    let mut out = Vec::new();
    loop {
        // SAFETY: reading one siginfo into a zeroed struct.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let n = unsafe {
            libc::read(
                fd.as_fd().as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                std::mem::size_of::<libc::signalfd_siginfo>(),
            )
        };
        if n <= 0 {
            return out;
        }
        out.push(info.ssi_signo as i32);
    }
}
