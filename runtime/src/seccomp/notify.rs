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

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use super::{Error, Filter};
use crate::channel::{self, Msg};

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
        spec: &oci_spec::runtime::Spec,
        state: serde_json::Value,
        pid: i32,
    ) -> crate::Result<Agent> {
        let section = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let path = section
            .and_then(|s| s.listener_path().clone())
            .ok_or_else(|| Error::Load("a listener came without a listenerPath".into()))?;
        Ok(Agent {
            path,
            metadata: section.and_then(|s| s.listener_metadata().clone()),
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
        channel::send_fd(
            &OwnedFd::from(sock),
            msg.to_string().as_bytes(),
            listener.as_fd(),
        )
        .map_err(|e| fail(&e))
    }
}

/// In the container process: loads `filter` (if any) and, when it has a listener, hands
/// that to the runtime over `sock` and waits for the runtime's ok.
pub fn load(filter: Option<&Filter>, sock: &OwnedFd) -> crate::Result<()> {
    let Some(f) = filter else { return Ok(()) };
    let Some(listener) = f.load()? else {
        return Ok(());
    };
    channel::send_with_fd(sock, &Msg::SeccompListener, listener.as_fd())
        .map_err(|e| Error::Load(format!("hand the listener to the runtime: {e}")))?;
    drop(listener);
    match channel::recv(sock) {
        Ok(Some(Msg::SeccompOk)) => Ok(()),
        _ => Err(Error::Load("the runtime could not reach the seccomp agent".into()).into()),
    }
}

/// In the runtime: passes a listener the container process sent (`Msg::SeccompListener`)
/// on to the agent (described by `agent` only now), then tells the process to go on.
pub fn hand_over(
    sock: &OwnedFd,
    listener: Option<OwnedFd>,
    agent: Option<impl FnOnce() -> crate::Result<Agent>>,
) -> crate::Result<()> {
    match (listener, agent) {
        (Some(fd), Some(make)) => {
            make()?.send(&fd)?;
            channel::send(sock, &Msg::SeccompOk)
        }
        _ => Err(Error::Load("unexpected seccomp listener message".into()).into()),
    }
}

/// In the runtime, waiting on the container process (`start`): passes a listener on to the
/// agent, and returns the first other message (an error, or `None` once the process
/// exec'd).
pub fn relay(
    sock: &OwnedFd,
    agent: impl FnOnce() -> crate::Result<Agent>,
) -> crate::Result<Option<Msg>> {
    crate::console::receive(sock, None, agent).map(|(msg, _)| msg)
}
