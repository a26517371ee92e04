//! Per-container state saved at allocate/connect time, so teardown works from disk alone
//! (after a crash, or after the netns is gone). Written atomically (tmp + rename).

use crate::error::io_err;
use crate::{Allocation, Error, Network};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A process identity that survives PID reuse: pid plus its start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcId {
    pub pid: i32,
    pub start: u64,
}

impl ProcId {
    pub fn of(pid: i32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22 (starttime) counted after the ")" that ends the command name.
        let rest = &stat[stat.rfind(')')? + 2..];
        let start = rest.split_whitespace().nth(19)?.parse().ok()?;
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
    /// resolv.conf content, also written to /etc/netns/minc-<id>/resolv.conf on connect.
    pub resolv: String,
    /// Files written for the container (removed on teardown).
    pub files: Vec<PathBuf>,
    /// The process that allocated (stale if it died before connecting).
    pub owner: Option<ProcId>,
    pub netns: Option<NetnsRef>,
    pub connected: bool,
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
    use std::os::unix::fs::OpenOptionsExt;
    let dir = p.parent().expect("path has a parent");
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        p.file_name().unwrap().to_string_lossy(),
        std::process::id() as u64 * 1_000_000 + thread_tag()
    ));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err("write", &tmp))?;
    f.write_all(data).map_err(io_err("write", &tmp))?;
    drop(f);
    fs::rename(&tmp, p).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("write", p)(e)
    })
}

fn thread_tag() -> u64 {
    // SAFETY: gettid has no preconditions.
    (unsafe { libc::syscall(libc::SYS_gettid) } as u64) % 1_000_000
}
