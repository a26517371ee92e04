//! minc-monitor: the tiny process that stays behind a `minc run -d` container.
//!
//! It is the parent of the container's init, so it can reap it and learn its exit code. Then
//! it hands over to `minc __finish`, which records the exit and releases (or with `--rm`
//! removes) the container. Built with only std into a static binary (runtime/build.rs) and
//! embedded in minc, which runs it from memory: a few hundred kilobytes of RSS for as long as
//! the container lives.
//!
//! With `-t`, it also holds the container's pty master: everything the terminal prints goes
//! to the container's log and to the attached clients (`minc attach`, or the foreground
//! `minc run -t` that started it), and what they type goes into the terminal. One poll(2)
//! loop; a client that cannot keep up holds the output back (as a real terminal would),
//! nothing is dropped. The protocol is in protocol.rs.
//!
//! Usage: minc-monitor MINC ROOT DATA_ROOT ID PID [MASTER_FD LISTEN_FD LOG_FD [CLIENT_FD]]

mod protocol;

use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

#[repr(C)]
struct WinSize {
    rows: u16,
    cols: u16,
    xpixel: u16,
    ypixel: u16,
}

extern "C" {
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn send(fd: i32, buf: *const u8, n: usize, flags: i32) -> isize;
    fn recv(fd: i32, buf: *mut u8, n: usize, flags: i32) -> isize;
    fn accept4(fd: i32, addr: *mut u8, len: *mut u32, flags: i32) -> i32;
    fn close(fd: i32) -> i32;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    fn ioctl(fd: i32, req: u64, ...) -> i32;
    fn syscall(n: i64, ...) -> i64;
    fn __errno_location() -> *mut i32;
}

const EINTR: i32 = 4;
const EAGAIN: i32 = 11;
const POLLIN: i16 = 1;
const POLLOUT: i16 = 4;
const F_GETFL: i32 = 3;
const F_SETFL: i32 = 4;
const O_NONBLOCK: i32 = 0o4000;
const SOCK_CLOEXEC: i32 = 0o2000000;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_NOSIGNAL: i32 = 0x4000;
const TIOCSWINSZ: u64 = 0x5414;
const SYS_PIDFD_OPEN: i64 = 434;
const MAX_CLIENTS: usize = 16;
/// After the container exited, how long its last output may take to come out of the pty.
const DRAIN: Duration = Duration::from_millis(500);

fn errno() -> i32 {
    // SAFETY: errno is thread-local and always valid.
    unsafe { *__errno_location() }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (minc, root, data_root, id, pid, pty) = match args.as_slice() {
        [_, minc, root, data_root, id, pid, rest @ ..] if rest.len() <= 4 => {
            (minc, root, data_root, id, pid.parse().unwrap_or(-1), rest)
        }
        _ => {
            eprintln!("usage: minc-monitor MINC ROOT DATA_ROOT ID PID [MASTER LISTEN LOG [CLIENT]]");
            std::process::exit(2);
        }
    };
    let fd = |i: usize| pty.get(i).and_then(|s| s.parse::<i32>().ok());
    let code = match (fd(0), fd(1), fd(2)) {
        (Some(master), Some(listen), Some(log)) => {
            Terminal::new(pid, master, listen, log, fd(3)).serve()
        }
        _ => wait_for(pid),
    };
    let err = Command::new(minc)
        .args(["__finish", root, data_root, id, &code.to_string()])
        .exec();
    eprintln!("minc-monitor: exec {minc}: {err}");
    std::process::exit(1);
}

/// Blocks until `pid` exits; its exit code.
fn wait_for(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child, the container's init.
        let r = unsafe { waitpid(pid, &mut status, 0) };
        if r == pid {
            return exit_code(status);
        }
        if r < 0 && errno() != EINTR {
            return 255;
        }
    }
}

/// A wait status as a shell exit code (128+N for a signal).
fn exit_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}

struct Client {
    fd: i32,
    /// An output packet the client could not take yet.
    pending: Vec<u8>,
}

struct Terminal {
    pid: i32,
    pidfd: i32,
    master: i32,
    master_open: bool,
    listen: i32,
    log: File,
    clients: Vec<Client>,
    /// Typed bytes the terminal could not take yet.
    input: Vec<u8>,
}

impl Terminal {
    fn new(pid: i32, master: i32, listen: i32, log: i32, client: Option<i32>) -> Terminal {
        // SAFETY: fcntl on descriptors handed to us; pidfd_open of our own child.
        let pidfd = unsafe {
            let flags = fcntl(master, F_GETFL);
            fcntl(master, F_SETFL, flags | O_NONBLOCK);
            syscall(SYS_PIDFD_OPEN, pid as i64, 0i64) as i32
        };
        Terminal {
            pid,
            pidfd,
            master,
            master_open: true,
            listen,
            // SAFETY: the log descriptor was handed to us and is ours alone.
            log: unsafe { File::from_raw_fd(log) },
            clients: client.map(|fd| Client { fd, pending: Vec::new() }).into_iter().collect(),
            input: Vec::new(),
        }
    }

    /// Relays until the container exits and its output is drained; returns its exit code.
    fn serve(mut self) -> i32 {
        if self.pidfd < 0 {
            return wait_for(self.pid);
        }
        let mut exited: Option<(i32, Instant)> = None;
        loop {
            if let Some((code, at)) = exited {
                if !self.master_open || at.elapsed() >= DRAIN {
                    self.say_exit(code);
                    return code;
                }
            }
            let held = self.clients.iter().any(|c| !c.pending.is_empty());
            let mut fds = vec![
                PollFd { fd: if exited.is_none() { self.pidfd } else { -1 }, events: POLLIN, revents: 0 },
                PollFd {
                    fd: if self.master_open { self.master } else { -1 },
                    events: if held { 0 } else { POLLIN } | if self.input.is_empty() { 0 } else { POLLOUT },
                    revents: 0,
                },
                PollFd { fd: self.listen, events: POLLIN, revents: 0 },
            ];
            for c in &self.clients {
                let mut events = 0;
                if self.input.is_empty() {
                    events |= POLLIN;
                }
                if !c.pending.is_empty() {
                    events |= POLLOUT;
                }
                fds.push(PollFd { fd: c.fd, events, revents: 0 });
            }
            let timeout = match exited {
                Some((_, at)) => DRAIN.saturating_sub(at.elapsed()).as_millis() as i32 + 1,
                None => -1,
            };
            // SAFETY: a valid array of pollfds.
            let r = unsafe { poll(fds.as_mut_ptr(), fds.len() as u64, timeout) };
            if r < 0 && errno() != EINTR {
                return wait_for(self.pid);
            }
            if fds[0].revents != 0 && exited.is_none() {
                exited = Some((wait_for(self.pid), Instant::now()));
            }
            if fds[1].revents != 0 {
                self.from_terminal(fds[1].revents);
            }
            if fds[2].revents != 0 {
                self.accept();
            }
            let ready: Vec<(i32, i16)> = fds[3..].iter().map(|p| (p.fd, p.revents)).collect();
            for (fd, revents) in ready {
                if revents != 0 {
                    self.from_client(fd, revents);
                }
            }
        }
    }

    /// The pty is readable (output) or writable (pending input).
    fn from_terminal(&mut self, revents: i16) {
        if revents & POLLOUT != 0 && !self.input.is_empty() {
            // SAFETY: writing our buffer to the master.
            let n = unsafe { write(self.master, self.input.as_ptr(), self.input.len()) };
            if n > 0 {
                self.input.drain(..n as usize);
            } else if errno() != EAGAIN && errno() != EINTR {
                self.input.clear();
            }
        }
        if revents & !POLLOUT == 0 {
            return;
        }
        let mut buf = [0u8; protocol::MAX_PACKET];
        buf[0] = protocol::OUTPUT;
        // SAFETY: reading into our buffer after the tag byte.
        let n = unsafe { read(self.master, buf[1..].as_mut_ptr(), buf.len() - 1) };
        if n <= 0 {
            if n == 0 || (errno() != EAGAIN && errno() != EINTR) {
                // EIO: every slave descriptor is closed (the container is gone).
                self.master_open = false;
            }
            return;
        }
        let packet = &buf[..1 + n as usize];
        let _ = self.log.write_all(&packet[1..]);
        self.clients.retain_mut(|c| match send_packet(c.fd, packet) {
            Sent::All => true,
            Sent::Later => {
                c.pending = packet.to_vec();
                true
            }
            Sent::Gone => {
                // SAFETY: closing a client we accepted.
                unsafe { close(c.fd) };
                false
            }
        });
    }

    fn accept(&mut self) {
        // SAFETY: accept on our listening socket.
        let fd = unsafe {
            accept4(self.listen, std::ptr::null_mut(), std::ptr::null_mut(), SOCK_CLOEXEC)
        };
        if fd < 0 {
            return;
        }
        if self.clients.len() >= MAX_CLIENTS {
            // SAFETY: refusing the connection.
            unsafe { close(fd) };
            return;
        }
        self.clients.push(Client { fd, pending: Vec::new() });
    }

    fn from_client(&mut self, fd: i32, revents: i16) {
        let Some(i) = self.clients.iter().position(|c| c.fd == fd) else {
            return;
        };
        if revents & POLLOUT != 0 && !self.clients[i].pending.is_empty() {
            match send_packet(fd, &self.clients[i].pending) {
                Sent::All => self.clients[i].pending.clear(),
                Sent::Later => {}
                Sent::Gone => return self.drop_client(i),
            }
        }
        if revents & !POLLOUT == 0 {
            return;
        }
        let mut buf = [0u8; protocol::MAX_PACKET];
        // SAFETY: receiving one packet into our buffer.
        let n = unsafe { recv(fd, buf.as_mut_ptr(), buf.len(), MSG_DONTWAIT) };
        if n < 0 && (errno() == EAGAIN || errno() == EINTR) {
            return;
        }
        if n <= 0 {
            return self.drop_client(i);
        }
        let packet = &buf[..n as usize];
        match packet[0] {
            protocol::INPUT if self.master_open => {
                self.input.extend_from_slice(&packet[1..]);
                self.from_terminal(POLLOUT);
            }
            protocol::RESIZE if packet.len() == 5 => {
                let ws = WinSize {
                    rows: u16::from_le_bytes([packet[1], packet[2]]),
                    cols: u16::from_le_bytes([packet[3], packet[4]]),
                    xpixel: 0,
                    ypixel: 0,
                };
                // SAFETY: ioctl on our master with a valid winsize.
                unsafe { ioctl(self.master, TIOCSWINSZ, &ws as *const WinSize) };
            }
            _ => {}
        }
    }

    fn drop_client(&mut self, i: usize) {
        let c = self.clients.remove(i);
        // SAFETY: closing a client we held.
        unsafe { close(c.fd) };
    }

    /// Tells every client the exit code (after what they still have to receive).
    fn say_exit(&mut self, code: i32) {
        let mut packet = vec![protocol::EXIT];
        packet.extend_from_slice(&code.to_le_bytes());
        for c in &self.clients {
            // The last packets may block: a client that is still there gets them.
            if !c.pending.is_empty() {
                // SAFETY: sending our buffer.
                unsafe { send(c.fd, c.pending.as_ptr(), c.pending.len(), MSG_NOSIGNAL) };
            }
            // SAFETY: sending our buffer.
            unsafe { send(c.fd, packet.as_ptr(), packet.len(), MSG_NOSIGNAL) };
        }
    }
}

enum Sent {
    All,
    Later,
    Gone,
}

fn send_packet(fd: i32, packet: &[u8]) -> Sent {
    // SAFETY: sending our buffer without blocking.
    let n = unsafe { send(fd, packet.as_ptr(), packet.len(), MSG_DONTWAIT | MSG_NOSIGNAL) };
    if n >= 0 {
        Sent::All
    } else if errno() == EAGAIN || errno() == EINTR {
        Sent::Later
    } else {
        Sent::Gone
    }
}
