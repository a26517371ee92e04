//! The client side of a `-t` container's terminal: `minc attach NAME`, and the foreground
//! `minc run -t` (which is a client of the monitor it started, so it can detach too).
//!
//! The monitor keeps the pty master (runtime/monitor/main.rs); this relays the caller's
//! terminal to it: raw mode while attached (every key, Ctrl-C included, goes to the
//! container as a byte), SIGWINCH sent on as the new size, other signals forwarded to the
//! container's init, and Docker's detach keys: Ctrl-P then Ctrl-Q leaves the container
//! running. One thread, one poll(2) loop over the socket, stdin and a signalfd.

#[path = "../../monitor/protocol.rs"]
mod protocol;

use std::os::fd::{AsRawFd, OwnedFd};

use anyhow::{bail, Result};

use crate::pty::{self, RawMode};
use crate::relay::{read_signals, signalfd, Io};
use crate::sys;

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

/// How an attachment ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The container exited with this code.
    Exited(i32),
    /// Ctrl-P Ctrl-Q: the container runs on.
    Detached,
}

/// Relays the caller's terminal to the monitor on `sock` until the container exits or the
/// user detaches. `init` receives forwarded signals; with `input`, stdin is sent on.
pub fn client(sock: &OwnedFd, init: i32, input: bool) -> Result<Ended> {
    let mut set = sys::FORWARDED.to_vec();
    set.push(libc::SIGCHLD);
    let old = sys::sigmask(libc::SIG_BLOCK, &set);
    let mut raw = if input { RawMode::enable(0) } else { None };
    let result = relay(sock, init, input);
    if let Some(r) = &mut raw {
        r.restore();
    }
    sys::set_sigmask(&old);
    if result.as_ref().is_ok_and(|e| *e == Ended::Detached) {
        eprintln!("minc: detached; the container runs on (minc attach to come back)");
    }
    result
}

fn relay(sock: &OwnedFd, init: i32, input: bool) -> Result<Ended> {
    let sigfd = signalfd()?;
    let s = sock.as_raw_fd();
    send_size(s);
    let mut stdin_open = input;
    let mut pending: Vec<u8> = Vec::new(); // typed bytes the monitor could not take yet
    let mut ctrl_p = false;
    let mut interrupts = 0;
    let mut buf = vec![0u8; protocol::MAX_PACKET];
    loop {
        let mut fds = [
            libc::pollfd {
                fd: sigfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: s,
                events: libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open && pending.is_empty() {
                    0
                } else {
                    -1
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a valid array of pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("poll: {}", std::io::Error::last_os_error());
        }
        if fds[0].revents != 0 {
            for sig in read_signals(&sigfd) {
                match sig {
                    libc::SIGWINCH => send_size(s),
                    libc::SIGCHLD => {}
                    _ => {
                        interrupts += u32::from(sig == libc::SIGINT);
                        let sig = if interrupts >= 2 { libc::SIGKILL } else { sig };
                        // SAFETY: signalling the container's init.
                        unsafe { libc::kill(init, sig) };
                    }
                }
            }
        }
        if fds[1].revents & libc::POLLOUT != 0 && !pending.is_empty() {
            flush_input(s, &mut pending);
        }
        if fds[1].revents & !libc::POLLOUT != 0 {
            // SAFETY: receiving one packet into our buffer.
            let n = unsafe { libc::recv(s, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                bail!("the container's monitor went away");
            }
            let packet = &buf[..n as usize];
            match packet[0] {
                protocol::OUTPUT => write_all(1, &packet[1..]),
                protocol::EXIT if packet.len() == 5 => {
                    let code = i32::from_le_bytes([packet[1], packet[2], packet[3], packet[4]]);
                    return Ok(Ended::Exited(code));
                }
                _ => {}
            }
        }
        if fds[2].revents != 0 {
            // SAFETY: reading stdin into our buffer (room left for a held Ctrl-P).
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len() - 2) };
            if n <= 0 {
                stdin_open = false; // EOF: keep showing output
                continue;
            }
            // At most MAX_PACKET - 1 bytes: one packet (stdin is not read while one waits).
            let (keys, detach) = detach_filter(&buf[..n as usize], &mut ctrl_p);
            if !keys.is_empty() {
                pending.push(protocol::INPUT);
                pending.extend_from_slice(&keys);
                flush_input(s, &mut pending);
            }
            if detach {
                return Ok(Ended::Detached);
            }
        }
    }
}

/// Docker's detach keys: Ctrl-P then Ctrl-Q. Returns the bytes to send on, and whether the
/// sequence was typed. A lone Ctrl-P is held until the next byte shows what it was.
fn detach_filter(data: &[u8], ctrl_p: &mut bool) -> (Vec<u8>, bool) {
    let mut out = Vec::with_capacity(data.len() + 1);
    for &b in data {
        if *ctrl_p {
            *ctrl_p = false;
            if b == CTRL_Q {
                return (out, true);
            }
            out.push(CTRL_P);
        }
        if b == CTRL_P {
            *ctrl_p = true;
        } else {
            out.push(b);
        }
    }
    (out, false)
}

/// Sends the pending input packet if the monitor can take it now.
fn flush_input(sock: i32, pending: &mut Vec<u8>) {
    // SAFETY: sending our buffer without blocking.
    let n = unsafe {
        libc::send(
            sock,
            pending.as_ptr().cast(),
            pending.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::WouldBlock {
        pending.clear();
    }
}

/// Tells the monitor the caller's terminal size.
fn send_size(sock: i32) {
    if let Some(size) = Io::caller_size() {
        let mut p = vec![protocol::RESIZE];
        p.extend_from_slice(&size.rows.to_le_bytes());
        p.extend_from_slice(&size.cols.to_le_bytes());
        // SAFETY: sending our buffer.
        unsafe { libc::send(sock, p.as_ptr().cast(), p.len(), libc::MSG_NOSIGNAL) };
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: writing our buffer to our own stdout.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}

/// Whether the caller can be attached with input: `-it` needs stdin to be a terminal.
pub fn stdin_is_terminal() -> bool {
    pty::is_terminal(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys() {
        let mut p = false;
        assert_eq!(detach_filter(b"ab", &mut p), (b"ab".to_vec(), false));
        assert_eq!(
            detach_filter(&[b'x', CTRL_P, CTRL_Q, b'y'], &mut p),
            (b"x".to_vec(), true)
        );
        // A Ctrl-P at the end of one read waits for the next byte.
        let mut p = false;
        assert_eq!(
            detach_filter(&[b'a', CTRL_P], &mut p),
            (b"a".to_vec(), false)
        );
        assert!(p);
        assert_eq!(detach_filter(b"b", &mut p), (vec![CTRL_P, b'b'], false));
        let mut p = false;
        assert_eq!(detach_filter(&[CTRL_P], &mut p), (vec![], false));
        assert_eq!(detach_filter(&[CTRL_Q], &mut p), (vec![], true));
        // Ctrl-P twice sends one and holds the other.
        let mut p = false;
        assert_eq!(
            detach_filter(&[CTRL_P, CTRL_P, b'z'], &mut p),
            (vec![CTRL_P, CTRL_P, b'z'], false)
        );
    }
}
