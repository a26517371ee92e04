//! Per-container state saved at allocate/connect time, so teardown works from disk alone
//! (after a crash, or after the netns is gone). Written atomically (tmp + rename).
//!
//! When is a container gone? netsetup does not know the runtime, so it decides from what it
//! recorded itself:
//! - before connect, the container is its allocating process ([`State::owner`], a PID plus
//!   its start time, so a reused PID is not mistaken for it): gone when that process is;
//! - once connected, the container is its network namespace ([`NetnsRef`]): gone when the
//!   process whose `/proc/PID/ns/net` was given has exited, or when the namespace file given
//!   (e.g. a CNI runtime's `/run/netns/X`) no longer is that namespace;
//! - allocation records the container's state before it claims the address and ports (both
//!   under one hold of the lock), so a killed process leaves a state file to judge as above,
//!   never a bare claim. A claim without state (from an older minc) is orphaned once its
//!   reserver, recorded in the claim, is gone.

use crate::error::io_err;
use crate::{Allocation, Error, Network};
use serde::{Deserialize, Serialize};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A process identity that survives PID reuse: pid plus its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

impl ProcId {
    /// The identity of a living process (a zombie has exited: None).
    pub fn of(pid: i32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields 3 (state) and 22 (starttime), counted after the ")" that ends the name.
        let mut rest = stat[stat.rfind(')')? + 2..].split_whitespace();
        if rest.next()? == "Z" {
            return None;
        }
        let start = rest.nth(18)?.parse().ok()?;
        Some(ProcId { pid, start })
    }
    pub fn current() -> Option<Self> {
        Self::of(std::process::id() as i32)
    }
    pub fn alive(&self) -> bool {
        Self::of(self.pid) == Some(*self)
    }
}

/// The netns a container was connected to, identified so we can tell when it is gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetnsRef {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Set when the path was /proc/PID/ns/net: the netns lives as long as that process.
    pub proc: Option<ProcId>,
}

impl NetnsRef {
    pub fn gone(&self) -> bool {
        if let Some(p) = self.proc {
            return !p.alive();
        }
        use std::os::unix::fs::MetadataExt;
        match fs::metadata(&self.path) {
            Ok(m) => m.dev() != self.dev || m.ino() != self.ino,
            Err(_) => true,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct State {
    pub network: String,
    pub bridge: String,
    pub allocation: Allocation,
    pub host_veth: String,
    pub ifname: String,
    /// Files written for the container (removed on teardown).
    pub files: Vec<PathBuf>,
    /// The process that allocated (stale if it died before connecting).
    pub owner: Option<ProcId>,
    pub netns: Option<NetnsRef>,
    pub connected: bool,
    /// Where connect published the namespace (`/run/netns/minc-<id>`), once it did.
    #[serde(default)]
    pub published: Option<PathBuf>,
    /// The names the network's resolver answers with this container's addresses.
    #[serde(default)]
    pub names: Vec<String>,
    /// Where the resolver forwards this container's other queries (its `--dns`).
    #[serde(default)]
    pub upstream: Vec<IpAddr>,
}

impl State {
    pub fn is_stale(&self) -> bool {
        match (&self.netns, self.connected) {
            (Some(ns), true) => ns.gone(),
            _ => self.owner.is_some_and(|o| !o.alive()),
        }
    }
}

pub fn containers_dir(net: &Network) -> PathBuf {
    net.state_dir().join("containers")
}

pub fn path(net: &Network, id: &str) -> PathBuf {
    containers_dir(net).join(format!("{id}.json"))
}

/// The other networks of the data directory on which `id` has state (a container on
/// several networks shares one namespace name between them).
pub fn other_networks(net: &Network, id: &str) -> Vec<String> {
    let file = format!("{id}.json");
    std::fs::read_dir(&net.data_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| *n != net.name && !n.starts_with('.'))
        .filter(|n| net.data_dir.join(n).join("containers").join(&file).exists())
        .collect()
}

pub fn load(net: &Network, id: &str) -> Result<Option<State>, Error> {
    load_path(&path(net, id))
}

pub fn load_path(p: &Path) -> Result<Option<State>, Error> {
    match fs::read(p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::State {
                path: p.into(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", p)(e)),
    }
}

pub fn save(net: &Network, st: &State) -> Result<(), Error> {
    let p = path(net, &st.allocation.id);
    let data = serde_json::to_vec_pretty(st).expect("state serializes");
    crate::ipam::create_private_dir(&containers_dir(net))?;
    write_atomic(&p, &data, 0o600)
}

pub fn remove(net: &Network, id: &str) -> Result<(), Error> {
    remove_file(&path(net, id))
}

/// Removes a file; a missing file is fine (teardown is idempotent).
pub fn remove_file(p: &Path) -> Result<(), Error> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("remove", p)(e)),
        _ => Ok(()),
    }
}

/// Writes via a temp file and rename so readers never see half a file.
pub fn write_atomic(p: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    sysops::fs::write_atomic(p, data, mode).map_err(io_err("write", p))
}
