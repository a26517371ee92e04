//! Docker-like containers: what `minc run IMAGE` records beside the runtime's own state.
//!
//! `DATA_ROOT/containers/ID/` holds the bundle (config.json, the rootfs mount and its
//! overlay dirs), the network files (resolv.conf, hosts, hostname), the log, `container.json`
//! (name, image, ports, address) and, once the process is gone, `exit.json`. The container's
//! runtime id is its ID, so the runc-style verbs work on these containers too.

use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::state::now;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_digest: String,
    pub command: Vec<String>,
    pub created: u64,
    /// None with `--network none`.
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<netsetup::PortMapping>,
    /// `--rm`: the monitor (or the foreground run) removes the container when it exits.
    pub auto_remove: bool,
    /// `-t`: the container has a terminal, which its monitor keeps (`minc attach`).
    #[serde(default)]
    pub tty: bool,
    /// The volumes it uses (the anonymous ones go with it).
    #[serde(default)]
    pub volumes: super::volumes::Used,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exit {
    pub code: i32,
    pub finished: u64,
    /// The kernel's OOM killer killed a process of the container (read from its cgroup).
    #[serde(default, rename = "oomKilled")]
    pub oom_killed: bool,
}

/// The file in a container's directory that holds its [`Record`]: a directory without one is
/// being made (under a `.new-` name) or torn down.
pub const RECORD: &str = "container.json";

/// The container's lock file, made with its directory (see `docker::lock`).
pub const LOCK: &str = ".lock";

pub struct Containers {
    pub dir: PathBuf,
}

impl Containers {
    pub fn new(data_root: &Path) -> Containers {
        Containers {
            dir: data_root.join("containers"),
        }
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Makes a new container directory for `name`, refusing a name already in use (checked
    /// under a lock, so two concurrent runs cannot both take it).
    pub fn reserve(&self, id: &str, name: &str) -> Result<PathBuf> {
        // Container directories hold rootfs mounts: no other host user may enter them.
        crate::sys::create_private_dir(&self.dir)?;
        let _lock = sysops::lock::Lock::acquire(&self.dir.join(".lock"))
            .with_context(|| format!("lock {}", self.dir.display()))?;
        if let Some(other) = self.all()?.into_iter().find(|r| r.name == name) {
            bail!("name {name} is already in use by container {}", other.id);
        }
        // The directory is made and its record written under a temporary name, then renamed:
        // a `kill -9` in between leaves a `.new-*` directory that no listing shows and the
        // next reserve (holding the same lock, so none is half-made) removes.
        self.remove_unfinished();
        let path = self.path(id);
        let tmp = self.dir.join(format!(".new-{id}"));
        fs::create_dir(&tmp).with_context(|| format!("{}", tmp.display()))?;
        // A placeholder record holds the name until the real one is written.
        let placeholder = Record {
            id: id.into(),
            name: name.into(),
            image: String::new(),
            image_digest: String::new(),
            command: Vec::new(),
            created: now(),
            ip: None,
            ports: Vec::new(),
            auto_remove: false,
            tty: false,
            volumes: Default::default(),
        };
        // Written in place: the directory is not visible under its name yet.
        let record = serde_json::to_vec_pretty(&placeholder)?;
        // The lock file is made here, as Lock makes it (0600), and never again (docker::lock).
        let done = sysops::lock::Lock::acquire(&tmp.join(LOCK))
            .and_then(|_| fs::write(tmp.join(RECORD), record))
            .with_context(|| format!("{}", tmp.display()))
            .and_then(|()| fs::rename(&tmp, &path).with_context(|| format!("{}", path.display())));
        if let Err(e) = done {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok(path)
    }

    /// Removes what a `reserve` killed half-way left (`rm` calls it: a killed `run` leaves
    /// nothing that `rm -f` does not clean).
    pub fn sweep(&self) {
        if let Ok(_lock) = sysops::lock::Lock::acquire(&self.dir.join(".lock")) {
            self.remove_unfinished();
        }
    }

    /// Removes what a reserve killed half-way left (called with the lock held: a reserve in
    /// progress holds it from mkdir to rename, so what is found is a dead one's).
    fn remove_unfinished(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".new-") {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }

    pub fn save(&self, r: &Record) -> Result<()> {
        write_json(&self.path(&r.id).join(RECORD), r)
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        let p = self.path(id).join(RECORD);
        let data = fs::read(&p).with_context(|| format!("{}", p.display()))?;
        serde_json::from_slice(&data).with_context(|| format!("{}", p.display()))
    }

    /// Every recorded container, oldest first.
    pub fn all(&self) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = names_in(&self.dir)?
            .iter()
            .filter_map(|id| self.load(id).ok())
            .collect();
        out.sort_by_key(|r| r.created);
        Ok(out)
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Record> {
        match self.lookup(key)? {
            Some(r) => Ok(r),
            None => bail!("no such container: {key}"),
        }
    }

    /// Like `find`, but a key that names nothing is `None`; an ambiguous prefix is an error
    /// that lists the containers it matches.
    pub fn lookup(&self, key: &str) -> Result<Option<Record>> {
        if key.is_empty() {
            return Ok(None);
        }
        let all = self.all()?;
        if let Some(r) = all.iter().find(|r| r.name == key || r.id == key) {
            return Ok(Some(r.clone()));
        }
        let matches: Vec<&Record> = all.iter().filter(|r| r.id.starts_with(key)).collect();
        match matches.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => bail!(
                "container id prefix {key} is ambiguous: it matches {}",
                many.iter()
                    .map(|r| format!("{} ({})", &r.id[..12.min(r.id.len())], r.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    pub fn exit(&self, id: &str) -> Option<Exit> {
        let data = fs::read(self.path(id).join("exit.json")).ok()?;
        serde_json::from_slice(&data).ok()
    }

    pub fn record_exit(&self, id: &str, code: i32, oom_killed: bool) -> Result<()> {
        write_json(
            &self.path(id).join("exit.json"),
            &Exit {
                code,
                finished: now(),
                oom_killed,
            },
        )
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.path(id).join("container.log")
    }

    /// Where the monitor of a `-t` container listens for `minc attach`.
    pub fn attach_path(&self, id: &str) -> PathBuf {
        self.path(id).join("attach.sock")
    }
}

/// The names in a directory of records (none if it does not exist yet), without the dot
/// names: the lock and entries being made.
pub fn names_in(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    };
    Ok(entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect())
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, serde_json::to_vec_pretty(v)?).with_context(|| format!("{}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))
}

/// A new random container id: 64 hex digits, like Docker's (the first 12 are shown).
pub fn new_id() -> String {
    let mut buf = [0u8; 32];
    let ok = fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        let seed = now() ^ u64::from(std::process::id()) << 32;
        buf[..8].copy_from_slice(&seed.to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// `3 minutes ago`, `2 hours ago`.
pub fn ago(secs: u64) -> String {
    let d = now().saturating_sub(secs);
    match d {
        0..=59 => format!("{d} seconds ago"),
        60..=3599 => format!("{} minutes ago", d / 60),
        3600..=86_399 => format!("{} hours ago", d / 3600),
        _ => format!("{} days ago", d / 86_400),
    }
}
