//! Container state on disk: `ROOT/ID/state.json`, written atomically (write + rename).
//!
//! The OCI state (ociVersion, id, status, pid, bundle, annotations) is what `minc state`
//! prints. Alongside it minc keeps what it needs later: the init's start time (so a recycled
//! PID never makes a dead container look alive), whether `start` already ran, and the hooks
//! `delete` must run after the bundle may be gone.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::Hooks;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Running, but frozen by `pause`.
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The OCI state, as printed by `minc state` and given to hooks on stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// Set when the kernel's OOM killer killed a process of the container (read from its
    /// cgroup; not part of the OCI state, which clients ignore when unknown).
    #[serde(
        default,
        rename = "oomKilled",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub oom_killed: bool,
}

/// What minc stores per container.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    #[serde(flatten)]
    pub oci: OciState,
    /// The init's start time in clock ticks since boot (/proc/PID/stat field 22).
    pub init_start_time: u64,
    /// When the container was created, RFC 3339 with nanoseconds (runc's `created`).
    pub created: String,
    pub rootfs: PathBuf,
    /// Set once `start` has released the init.
    #[serde(default)]
    pub started: bool,
    /// The spec's hooks: `start` runs poststart and `delete` poststop, when the bundle may
    /// already be gone.
    #[serde(default)]
    pub hooks: Hooks,
    /// Namespaces the container created itself (proc names, e.g. "pid", "net"): `exec` joins
    /// these and `kill --all` finds processes by the PID namespace.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The container's cgroup (`None` for containers made before minc managed cgroups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<crate::cgroups::Cgroup>,
}

impl State {
    /// The status as it really is now: a `created`/`running` container whose init is gone
    /// (or whose PID now belongs to another process) is `stopped`.
    pub fn status(&self) -> Status {
        match self.oci.status {
            Status::Creating | Status::Stopped => self.oci.status,
            _ if !self.alive() => Status::Stopped,
            _ if self.started
                && self
                    .cgroup
                    .as_ref()
                    .is_some_and(crate::cgroups::freezer::frozen) =>
            {
                Status::Paused
            }
            _ if self.started => Status::Running,
            _ => Status::Created,
        }
    }

    /// Whether the init is still the process we started (not a zombie, not a recycled PID).
    pub fn alive(&self) -> bool {
        self.oci.pid > 0 && proc_start_time(self.oci.pid) == Some(self.init_start_time)
    }

    /// The OCI state with the live status filled in.
    pub fn current(&self) -> OciState {
        let mut oci = self.oci.clone();
        oci.status = self.status();
        if oci.status == Status::Stopped {
            oci.pid = 0;
        }
        oci.oom_killed = self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0);
        oci
    }

    pub fn load(dir: &Path) -> Result<State> {
        let path = dir.join("state.json");
        let data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&data).map_err(|e| Error::Config {
            path,
            reason: e.to_string(),
        })
    }

    /// Writes state.json atomically so a reader never sees half a file.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(".state.json.tmp");
        let path = dir.join("state.json");
        let data = serde_json::to_vec(self).expect("state serializes");
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&data).map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }
}

/// Start time of a process (clock ticks since boot), or None if it is gone or a zombie.
pub fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // rest starts at field 3; field 22 is the 20th from here.
    fields.nth(18)?.parse().ok()
}

/// The state `minc state` and `list --format json` print: the OCI state plus what runc adds
/// (rootfs, created, owner).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// The user owning the state directory: `list` fills it in, `state` leaves it empty,
    /// as runc does.
    pub owner: String,
    /// The kernel's OOM killer killed a process of the container (its cgroup counted it).
    #[serde(rename = "oomKilled", skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

impl State {
    pub fn report(&self, dir: &Path, with_owner: bool) -> Report {
        use std::os::unix::fs::MetadataExt;
        let cur = self.current();
        let owner = if with_owner {
            fs::metadata(dir)
                .map(|m| user_name(m.uid()))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Report {
            oci_version: cur.oci_version,
            id: cur.id,
            pid: cur.pid,
            status: cur.status,
            bundle: cur.bundle,
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            annotations: cur.annotations,
            owner,
            oom_killed: cur.oom_killed,
        }
    }
}

/// The name of a host user (from /etc/passwd), or `#UID` as runc prints an unknown one.
fn user_name(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_and_of_missing_pid() {
        let me = std::process::id() as i32;
        assert!(proc_start_time(me).is_some());
        assert_eq!(proc_start_time(i32::MAX), None);
    }
}
