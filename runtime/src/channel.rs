//! The messages minc's processes exchange while a container is made: the runtime (`create`,
//! `start`, `exec`), the container init, and the dmz stub (see `dmz.rs`).
//!
//! Each message is one JSON value in one packet of a SOCK_SEQPACKET unix socket (socketpair(2)
//! or the start socket): message boundaries are kept, and a peer that dies is seen as EOF,
//! never as a silent hang. Successful execve of the container's program closes the last
//! close-on-exec end, which is how `start` and `exec` learn that the program really runs.

use std::os::fd::OwnedFd;

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
