//! runc's `--console-socket` protocol, which OCI clients (containerd's shim, Podman's conmon)
//! use to receive a container's terminal.
//!
//! The client listens on a unix stream socket and passes its path. The runtime connects to
//! it, allocates the pty inside the container, and sends one message whose data is the
//! master's name and whose ancillary data (SCM_RIGHTS) is the master's descriptor; then it
//! closes the connection. From then on the client owns the terminal: it relays it, resizes it,
//! and closing it hangs the container's terminal up.
//!
//! minc connects before the container process exists, so a wrong path fails at once and
//! nothing is left behind; the socket's path is reached through an fd of its directory, so
//! paths longer than sun_path's 108 bytes work. Man pages: unix(7), cmsg(3).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use sysops::explain;

use crate::channel::{self, Msg};
use crate::error::{Error, Result};
use crate::sys;

/// A connection to a console socket.
pub struct ConsoleSocket {
    sock: OwnedFd,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Connects to the client's socket at `path`.
    pub fn connect(path: &Path) -> Result<ConsoleSocket> {
        let sock = sys::unix_connect(path, libc::SOCK_STREAM)
            .map_err(|e| Error::sys(format!("console socket {}", path.display()), e))?;
        Ok(ConsoleSocket {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// Sends the pty master (its name as the data, as runc does) and closes the connection.
    pub fn send(self, master: BorrowedFd<'_>) -> Result<()> {
        explain::comment(&format!(
            "send the pty master to the console socket {} (sendmsg(2) with SCM_RIGHTS; no shell equivalent)",
            self.path.display()
        ));
        channel::send_fd(&self.sock, b"/dev/ptmx", master)
            .map_err(|e| Error::sys(format!("console socket {}", self.path.display()), e))
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// Reads what the init or exec helper says on `sock`. When its process has a terminal, the
/// first message carries the pty master: it goes on to the console socket at `socket` if
/// there is one, else it is returned for the caller to relay. A NOTIFY seccomp filter's
/// listener goes on to the seccomp agent `agent` describes (seccomp/notify.rs). Returns the
/// next message (None at EOF, i.e. after the program's execve) and the master.
pub fn receive(
    sock: &OwnedFd,
    socket: Option<&Path>,
    agent: impl FnOnce() -> Result<crate::seccomp::notify::Agent>,
) -> Result<(Option<Msg>, Option<OwnedFd>)> {
    let mut master = None;
    let mut agent = Some(agent);
    loop {
        match channel::recv_with_fd(sock)? {
            (Some(Msg::SeccompListener), fd) => {
                crate::seccomp::notify::hand_over(sock, fd, agent.take())?
            }
            (Some(Msg::Console { .. }), Some(fd)) => match socket {
                Some(path) => ConsoleSocket::connect(path)?.send(fd.as_fd())?,
                None => master = Some(fd),
            },
            (Some(Msg::Console { .. }), None) => {
                return Err(Error::Init(
                    "a terminal was announced without its descriptor".into(),
                ))
            }
            (reply, _) => return Ok((reply, master)),
        }
    }
}
