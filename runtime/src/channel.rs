//! The messages minc's processes exchange while a container is made: the runtime (`create`,
//! `start`, `exec`), the container init, and the dmz stub (see `dmz.rs`).
//!
//! Each message is one JSON value in one packet of a SOCK_SEQPACKET unix socket (socketpair(2)
//! or the start socket): message boundaries are kept, and a peer that dies is seen as EOF,
//! never as a silent hang. Successful execve of the container's program closes the last
//! close-on-exec end, which is how `start` and `exec` learn that the program really runs.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state::OciState;
use crate::sys;

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
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
}

/// Sends one message.
pub fn send(fd: &OwnedFd, msg: &Msg) -> Result<()> {
    let data = serde_json::to_vec(msg).expect("messages serialize");
    sys::send(fd, &data).map_err(|e| Error::sys("send to a minc process", e))
}

/// Sends one message with a file descriptor attached (SCM_RIGHTS, see unix(7)).
pub fn send_with_fd(fd: &OwnedFd, msg: &Msg, passed: BorrowedFd<'_>) -> Result<()> {
    let data = serde_json::to_vec(msg).expect("messages serialize");
    send_bytes_with_fd(fd, &data, passed).map_err(|e| Error::sys("send to a minc process", e))
}

/// Sends raw bytes with a file descriptor attached (for peers that are not minc's).
pub fn send_bytes_with_fd(
    fd: &OwnedFd,
    data: &[u8],
    passed: BorrowedFd<'_>,
) -> std::io::Result<()> {
    let fds = [passed.as_raw_fd()];
    sendmsg::<()>(
        fd.as_raw_fd(),
        &[IoSlice::new(data)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(|_| ())
    .map_err(std::io::Error::from)
}

/// Receives one message and the first descriptor that came with it (close-on-exec).
pub fn recv_with_fd(fd: &OwnedFd) -> Result<(Option<Msg>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 8192];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut fds = Vec::new();
                for c in m.cmsgs().into_iter().flatten() {
                    if let ControlMessageOwned::ScmRights(v) = c {
                        fds.extend(v);
                    }
                }
                break (m.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("receive from a minc process", e)),
        }
    };
    // SAFETY: the kernel just gave us these descriptors; we own them.
    let mut fds = fds.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) });
    let passed = fds.next();
    if len == 0 {
        return Ok((None, passed));
    }
    let msg = serde_json::from_slice(&buf[..len])
        .map_err(|e| Error::Init(format!("garbled message from a minc process: {e}")))?;
    Ok((Some(msg), passed))
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
