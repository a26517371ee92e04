//! The messages minc's processes exchange while a container is made: the runtime (`create`,
//! `start`, `exec`), the container init, and the dmz stub (see `dmz.rs`).
//!
//! Each message is one JSON value in one packet of a SOCK_SEQPACKET unix socket (socketpair(2)
//! or the start socket): message boundaries are kept, and a peer that dies is seen as EOF,
//! never as a silent hang. Successful execve of the container's program closes the last
//! close-on-exec end, which is how `start` and `exec` learn that the program really runs.
//!
//! A message can carry one file descriptor (SCM_RIGHTS ancillary data, see unix(7) and
//! cmsg(3)): that is how the pty master of a container's terminal leaves the container.
//! [`send_fd`] and [`recv_fd`] are the raw form, also used for runc's console-socket protocol.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::OciState;
use crate::sys;

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// init → runtime: it is in the container's cgroup (its very first step).
    Joined,
    /// runtime → init: the runtime-side hooks ran; prepare the container. The state is what
    /// the createContainer hooks get on stdin.
    Go { state: OciState },
    /// init → runtime: prepared, waiting for `start`.
    Ready,
    /// start → init: run the program (the state is for the startContainer hooks).
    Start { state: OciState },
    /// any → runtime: a step failed; the message names the object and the cause, and the
    /// code is the exit status runc would give (1, or 126/127 when the program cannot run).
    Error {
        message: String,
        #[serde(default)]
        code: i32,
    },
    /// dmz → runtime: execve of the container's program failed with this errno.
    ExecFailed { errno: i32 },
    /// container process → runtime, with the listener fd of a NOTIFY seccomp filter: for the
    /// seccomp agent (see seccomp/notify.rs).
    SeccompListener,
    /// runtime → container process: the agent has the listener; go on.
    SeccompOk,
    /// init or exec helper → runtime: the pty master of the process's terminal is attached
    /// (SCM_RIGHTS); its slave is `/dev/pts/{index}` in the container.
    Console { index: u32 },
}

/// Sends one message.
pub fn send(fd: &OwnedFd, msg: &Msg) -> Result<()> {
    let data = serde_json::to_vec(msg).expect("messages serialize");
    sys::send(fd, &data).map_err(|e| Error::sys("send to a minc process", e))
}

/// Receives one message; `None` when the peer closed its end (or exec'd the program).
pub fn recv(fd: &OwnedFd) -> Result<Option<Msg>> {
    let data = sys::recv(fd).map_err(|e| Error::sys("receive from a minc process", e))?;
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| Error::Init(format!("garbled message from a minc process: {e}")))
}

/// Sends one message with a file descriptor attached.
pub fn send_with_fd(sock: &OwnedFd, msg: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
    let data = serde_json::to_vec(msg).expect("messages serialize");
    send_fd(sock, &data, fd).map_err(|e| Error::sys("send to a minc process", e))
}

/// Receives one message and the descriptor attached to it, if any.
pub fn recv_with_fd(sock: &OwnedFd) -> Result<(Option<Msg>, Option<OwnedFd>)> {
    let (data, fd) = recv_fd(sock).map_err(|e| Error::sys("receive from a minc process", e))?;
    if data.is_empty() {
        return Ok((None, fd));
    }
    let msg = serde_json::from_slice(&data)
        .map_err(|e| Error::Init(format!("garbled message from a minc process: {e}")))?;
    Ok((Some(msg), fd))
}

/// Sends `payload` with `fd` attached as SCM_RIGHTS: the receiver gets its own descriptor
/// for the same open file.
pub fn send_fd(sock: &OwnedFd, payload: &[u8], fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(payload)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receives one packet (empty = peer closed) and the first descriptor attached to it
/// (close-on-exec); any further descriptors a peer crammed in are closed.
pub fn recv_fd(sock: &OwnedFd) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 8192];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(m) => m,
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(list) = c {
                // SAFETY: the kernel just installed these descriptors for us.
                fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
            }
        }
        break (msg.bytes, fds);
    };
    buf.truncate(len);
    Ok((buf, fds.into_iter().next()))
}

/// The message that reports `e` to the runtime.
pub fn error(e: &Error) -> Msg {
    Msg::Error {
        message: e.to_string(),
        code: e.exit_code(),
    }
}

/// Turns a reply that must be "nothing more" (EOF after a successful exec) into a Result.
pub fn expect_exec(reply: Option<Msg>, program: &str) -> Result<()> {
    match reply {
        None => Ok(()),
        Some(Msg::Error { message, code }) => Err(Error::from_child(message, code)),
        Some(Msg::ExecFailed { errno }) => Err(Error::exec_errno(program, errno)),
        Some(other) => Err(Error::Init(format!("unexpected message {other:?}"))),
    }
}
