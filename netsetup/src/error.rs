//! Typed errors: each names the object and the cause.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}: use 1-128 characters from [A-Za-z0-9_.+-], not starting with '.' or '-'")]
    InvalidId(String),
    #[error("invalid network config: {0}")]
    Config(String),
    #[error("invalid port mapping {spec:?}: {why}")]
    InvalidPort { spec: String, why: String },
    #[error("address pool {0} is exhausted")]
    PoolExhausted(ipnet::Ipv4Net),
    #[error("host port {port} is already published by container {owner}")]
    PortInUse { port: String, owner: String },
    #[error("host port {port} is in use by a process on the host")]
    PortHeldByHost { port: String },
    #[error("host port {port} is already published by another minc data root")]
    PortPublishedElsewhere { port: String },
    #[error("{0} is not an address of this host")]
    NotHostAddress(std::net::IpAddr),
    #[error("container {id} is already attached to network {network}")]
    AlreadyAttached { id: String, network: String },
    #[error("container {id} is already connected to network {network}")]
    AlreadyConnected { id: String, network: String },
    #[error("container {id} has no address on network {network} (call allocate first)")]
    NotAllocated { id: String, network: String },
    #[error("netns {path}: {source}")]
    Netns { path: PathBuf, source: io::Error },
    #[error("netlink: {what}: {source}")]
    Netlink { what: String, source: io::Error },
    #[error("nft: {0}")]
    Nft(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("state {path}: {why}")]
    State { path: PathBuf, why: String },
}

impl From<crate::netlink::NlError> for Error {
    fn from(e: crate::netlink::NlError) -> Self {
        Error::Netlink {
            what: e.what,
            source: e.source,
        }
    }
}

/// Shorthand for wrapping an io::Error with what we were doing and to which path.
pub(crate) fn io_err(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}
