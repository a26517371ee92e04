//! `SCMP_ACT_NOTIFY`: a seccomp agent outside the container decides the notified calls.
//!
//! A filter with a NOTIFY rule is loaded with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, which
//! returns a listener fd: whoever holds it receives the notified calls
//! (`SECCOMP_IOCTL_NOTIF_RECV`) and answers them (`SECCOMP_IOCTL_NOTIF_SEND`); see
//! seccomp_unotify(2). As runc does, the container process hands that fd to the runtime
//! process waiting for it (`start`, or `exec`), which connects to `listenerPath` and sends
//! the agent one message: the container process state (`ContainerProcessState`: ociVersion,
//! fds `["seccompFd"]`, pid, metadata, state) with the fd attached (SCM_RIGHTS, unix(7)).
//! The container process waits for the runtime's ok before it goes on, so an agent that
//! cannot be reached fails the start instead of leaving calls that block forever.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::{Error, Filter};

/// The message the listener fd travels with, container process to runtime.
const LISTENER: &[u8] = b"seccomp-listener";
/// The runtime's answer once the agent has the fd.
const OK: &[u8] = b"seccomp-ok";

/// Where the agent listens, and what to tell it.
pub struct Agent {
    pub path: PathBuf,
    pub metadata: Option<String>,
    /// The container's OCI state, as JSON.
    pub state: serde_json::Value,
    /// The container process the filter belongs to.
    pub pid: i32,
}

impl Agent {
    /// The agent of a config.json's `linux.seccomp` section (`listenerPath`,
    /// `listenerMetadata`).
    pub fn of(
        section: Option<&serde_json::Value>,
        state: serde_json::Value,
        pid: i32,
    ) -> crate::Result<Agent> {
        let field = |k: &str| section.and_then(|s| s.get(k)).and_then(|v| v.as_str());
        let path = field("listenerPath")
            .ok_or_else(|| Error::Load("a listener came without a listenerPath".into()))?;
        Ok(Agent {
            path: path.into(),
            metadata: field("listenerMetadata").map(String::from),
            state,
            pid,
        })
    }

    /// Connects to the agent and sends it the process state with the listener fd.
    fn send(&self, listener: &OwnedFd) -> Result<(), Error> {
        let fail = |e: &dyn std::fmt::Display| {
            Error::Load(format!("seccomp agent {}: {e}", self.path.display()))
        };
        let mut msg = serde_json::json!({
            "ociVersion": "1.2.0",
            "fds": [oci_spec::runtime::SECCOMP_FD_NAME],
            "pid": self.pid,
            "state": self.state,
        });
        if let Some(m) = &self.metadata {
            msg["metadata"] = m.as_str().into();
        }
        let sock = std::os::unix::net::UnixStream::connect(&self.path).map_err(|e| fail(&e))?;
        send_fd(&OwnedFd::from(sock), msg.to_string().as_bytes(), listener).map_err(|e| fail(&e))
    }
}

fn send_fd(sock: &OwnedFd, msg: &[u8], fd: &OwnedFd) -> nix::Result<()> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(msg)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map(|_| ())
}

/// Receives one message and the first fd that came with it (empty message: peer closed).
fn recv_fd(sock: &OwnedFd) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; 8192];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            sock.as_raw_fd(),
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
            Err(e) => return Err(e.into()),
        }
    };
    buf.truncate(len);
    // SAFETY: the kernel just gave us these descriptors; we own them.
    let mut fds = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Ok((buf, fds.next()))
}

/// In the container process: loads `filter` (if any) and, when it has a listener, hands
/// that to the runtime over `sock` and waits for the runtime's ok.
pub fn load(filter: Option<&Filter>, sock: &OwnedFd) -> crate::Result<()> {
    let Some(f) = filter else { return Ok(()) };
    let Some(listener) = f.load()? else {
        return Ok(());
    };
    send_fd(sock, LISTENER, &listener)
        .map_err(|e| Error::Load(format!("hand the listener to the runtime: {e}")))?;
    drop(listener);
    match crate::sys::recv(sock) {
        Ok(reply) if reply == OK => Ok(()),
        _ => Err(Error::Load("the runtime could not reach the seccomp agent".into()).into()),
    }
}

/// In the runtime, waiting on the container process (`start`, `exec`): passes a listener on
/// to the agent (made by `agent` only then), and returns the first other message (an error,
/// or empty once the process exec'd).
pub fn relay(
    sock: &OwnedFd,
    agent: impl FnOnce() -> crate::Result<Agent>,
) -> crate::Result<Vec<u8>> {
    let mut agent = Some(agent);
    loop {
        let (msg, fd) = recv_fd(sock).map_err(|e| crate::Error::sys("read from container", e))?;
        match (msg == LISTENER, fd, agent.take()) {
            (true, Some(fd), Some(make)) => {
                make()?.send(&fd)?;
                crate::sys::send(sock, OK)
                    .map_err(|e| crate::Error::sys("answer the container", e))?;
            }
            (true, _, _) => {
                return Err(Error::Load("unexpected seccomp listener message".into()).into())
            }
            _ => return Ok(msg),
        }
    }
}
