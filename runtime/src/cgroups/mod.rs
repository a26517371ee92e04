//! Control groups: every container gets its own cgroup, which limits what its processes may
//! use (memory, CPU, PIDs, block I/O, huge pages, devices), counts what they did use, and can
//! freeze them all at once.
//!
//! A cgroup is a directory in a cgroup filesystem; its files are the knobs
//! (`memory.max`, `pids.max`) and the counters (`memory.current`), and writing a PID to its
//! `cgroup.procs` moves that process in. Children of a process start in its cgroup. There are
//! two designs, and a host may use both at once:
//!
//! - **v1** (legacy): one hierarchy per controller (`/sys/fs/cgroup/memory/`,
//!   `/sys/fs/cgroup/pids/`, ...), each with its own tree; a process is in one cgroup per
//!   hierarchy. See the kernel's `Documentation/admin-guide/cgroup-v1/`.
//! - **v2** (unified): one tree (`/sys/fs/cgroup/`) where a parent enables controllers for its
//!   children in `cgroup.subtree_control`, and only leaves hold processes. See the kernel's
//!   `Documentation/admin-guide/cgroup-v2.rst`.
//! - **hybrid**: v1 controllers plus an (often controller-less) v2 tree at
//!   `/sys/fs/cgroup/unified`; a process is placed in both.
//!
//! Man pages: cgroups(7), cgroup_namespaces(7); bpf(2) for v2 device control.
//!
//! The modules follow the concepts: [`paths`] finds the hierarchies and turns
//! `linux.cgroupsPath` into directories, [`v1`] and [`v2`] write `linux.resources` into the
//! files of each design, [`devices`] builds the device allowlist (v1 lines or a v2 eBPF
//! program), [`freezer`] pauses and resumes, [`stats`] reads the counters in runc's
//! `events` shape. [`Cgroup`] ties them together for one container.
//!
//! minc writes the cgroup files itself instead of using a crate (youki's libcgroups,
//! cgroups-rs): see the README's design notes for the comparison.

pub mod devices;
pub mod freezer;
mod fs;
pub mod mount;
pub mod paths;
pub mod stats;
pub mod v1;
pub mod v2;

use std::fs as stdfs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use paths::{Layout, Mode};

/// What can go wrong with cgroups; each variant names the file or value concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// The kernel refused a value written to a cgroup file.
    #[error("{}: write {value:?}: {err}{hint}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        err: std::io::Error,
        hint: String,
    },
    /// A setting this host's kernel or cgroup layout cannot apply.
    #[error("{what}: not supported here: {why}")]
    Unsupported { what: String, why: String },
    /// A value of `linux.resources` that is wrong whatever the host.
    #[error("linux.resources: {0}")]
    Invalid(String),
    /// A `linux.cgroupsPath` that cannot be used.
    #[error("cgroupsPath {path:?}: {reason}")]
    Path { path: String, reason: String },
    #[error("{what}: {err}")]
    Sys { what: String, err: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn io(path: &Path, err: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            err,
        }
    }
}

/// One directory of a container's cgroup: its place in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    /// The v1 controllers of this hierarchy (`["cpu"]`, `["name=systemd"]`); empty for the
    /// v2 (unified) hierarchy.
    #[serde(default)]
    pub controllers: Vec<String>,
    /// The directory, e.g. `/sys/fs/cgroup/memory/minc/ID`.
    pub path: PathBuf,
}

impl Dir {
    pub fn unified(&self) -> bool {
        self.controllers.is_empty()
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A container's cgroup: where it is in every hierarchy. Saved in the container's state so
/// later commands (exec, pause, update, stats, delete) find it without looking again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    /// The path inside the hierarchies, as given or derived (`/minc/ID`,
    /// `/kubepods/burstable/podUID/ID`).
    pub path: String,
    pub mode: Mode,
    pub dirs: Vec<Dir>,
}

/// Where a container's cgroup goes when its config gives no `linux.cgroupsPath`.
pub const DEFAULT_PARENT: &str = "/minc";

impl Cgroup {
    /// Works out the container's cgroup (no side effects): `cgroups_path` with runc's rules
    /// (absolute: from the hierarchy's root; relative: under minc's own cgroup; with
    /// `systemd`, the `slice:prefix:name` form), or `/minc/ID` when none is given.
    pub fn resolve(cgroups_path: Option<&str>, id: &str, systemd: bool) -> Result<Cgroup> {
        let layout = Layout::detect()?;
        layout.place(cgroups_path, id, systemd)
    }

    pub fn dir(&self, controller: &str) -> Option<&Dir> {
        self.dirs.iter().find(|d| d.has(controller))
    }

    pub fn unified_dir(&self) -> Option<&Dir> {
        self.dirs.iter().find(|d| d.unified())
    }

    /// The directory that lists the container's processes: the v2 one on a v2 host, else
    /// the first v1 hierarchy (pids if mounted).
    pub fn procs_dir(&self) -> Option<&Path> {
        match self.mode {
            Mode::V2 => self.unified_dir(),
            _ => self
                .dir("pids")
                .or_else(|| self.dirs.iter().find(|d| !d.unified())),
        }
        .map(|d| d.path.as_path())
    }

    /// Makes the cgroup's directories (and missing parents: on v2 with the controllers
    /// enabled down the path). A directory that already exists is reused if no process is
    /// in it (left over by a crash); one with processes in it is an error.
    pub fn create(&self) -> Result<()> {
        self.check_unused()?;
        for d in &self.dirs {
            if d.unified() {
                v2::create(&d.path, self.mode == Mode::V2)?;
            } else {
                v1::create(d)?;
            }
        }
        Ok(())
    }

    /// Refuses a cgroup that already has processes: it belongs to someone else (a running
    /// container), and `create` must neither share nor, on failure, remove it.
    pub fn check_unused(&self) -> Result<()> {
        if let Some(dir) = self.procs_dir() {
            if !procs_in(dir).is_empty() {
                return Err(Error::Path {
                    path: self.path.clone(),
                    reason: format!(
                        "{} already holds processes (is another container using it?)",
                        dir.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Writes `res` into the cgroup's files. `update` is set for `minc update` (values not
    /// given keep their current setting; device rules are not changed then, as in runc).
    pub fn apply(&self, res: &LinuxResources, update: bool) -> Result<()> {
        match self.mode {
            Mode::V2 => {
                let d = self.unified_dir().expect("v2 cgroup has its dir");
                v2::apply(&d.path, res, update)?;
                if !update {
                    devices::apply_v2(&d.path, res.devices().as_deref().unwrap_or(&[]))?;
                }
            }
            Mode::V1 | Mode::Hybrid => {
                v1::apply(self, res, update)?;
                if !update {
                    if let Some(d) = self.dir("devices") {
                        devices::apply_v1(&d.path, res.devices().as_deref().unwrap_or(&[]))?;
                    } else if let Some(d) = self.unified_dir() {
                        // No v1 devices controller: the unified tree enforces the list.
                        devices::apply_v2(&d.path, res.devices().as_deref().unwrap_or(&[]))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens what a new process needs to join the cgroup by itself (see [`Join`]).
    pub fn prepare_join(&self) -> Result<Join> {
        let open = |p: PathBuf, dir: bool| -> Result<(PathBuf, OwnedFd)> {
            let mut o = stdfs::OpenOptions::new();
            if dir {
                o.read(true).custom_flags(libc::O_DIRECTORY);
            } else {
                o.write(true);
            }
            let f = o.open(&p).map_err(|e| Error::io(&p, e))?;
            Ok((p, f.into()))
        };
        let mut join = Join {
            v1_tasks: Vec::new(),
            v2_dir: None,
            v2_procs: None,
        };
        for d in &self.dirs {
            if d.unified() {
                join.v2_dir = Some(open(d.path.clone(), true)?.1);
                join.v2_procs = Some(open(d.path.join("cgroup.procs"), false)?);
            } else {
                join.v1_tasks.push(open(d.path.join("tasks"), false)?);
            }
        }
        Ok(join)
    }

    /// The PIDs in the cgroup (host view), sorted.
    pub fn pids(&self) -> Vec<i32> {
        let mut pids = self.procs_dir().map(procs_in).unwrap_or_default();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Whether the cgroup's directories still exist.
    pub fn exists(&self) -> bool {
        self.procs_dir().is_some_and(|d| d.is_dir())
    }

    /// Sends `signal` to every process in the cgroup. On v2 a SIGKILL uses `cgroup.kill`,
    /// which also catches processes forked while it runs; on v1 the cgroup is frozen first
    /// (when the freezer is there) so nothing forks between listing and signalling.
    pub fn signal_all(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL && self.mode == Mode::V2 {
            let d = self.unified_dir().expect("v2 dir");
            let kill = d.path.join("cgroup.kill");
            if kill.exists() {
                return fs::write(&kill, "1");
            }
        }
        let frozen = signal == libc::SIGKILL && freezer::freeze(self).is_ok();
        for pid in self.pids() {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, signal) };
        }
        if frozen {
            let _ = freezer::thaw(self);
        }
        Ok(())
    }

    /// Removes the cgroup: kills what is left in it, then removes its directories (retrying
    /// while the kernel finishes taking exiting processes out).
    pub fn destroy(&self) -> Result<()> {
        if !self.exists() {
            return self.remove_dirs();
        }
        if !self.pids().is_empty() {
            self.signal_all(libc::SIGKILL)?;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut delay = Duration::from_micros(200);
        loop {
            match self.remove_dirs() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
            }
        }
    }

    fn remove_dirs(&self) -> Result<()> {
        let mut first_err = None;
        for d in &self.dirs {
            if let Err(e) = rmdir_tree(&d.path) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// How many processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let read = |p: PathBuf, key: &str| {
            fs::read_keyed(&p)
                .ok()
                .and_then(|m| m.get(key).copied())
                .unwrap_or(0)
        };
        match self.mode {
            Mode::V2 => self
                .unified_dir()
                .map(|d| read(d.path.join("memory.events"), "oom_kill"))
                .unwrap_or(0),
            _ => self
                .dir("memory")
                .map(|d| read(d.path.join("memory.oom_control"), "oom_kill"))
                .unwrap_or(0),
        }
    }

    /// A file to watch for OOM events: readable (poll) when one happens. v2: an inotify on
    /// memory.events; v1: an eventfd registered in cgroup.event_control.
    pub fn oom_notifier(&self) -> Result<OwnedFd> {
        stats::oom_notifier(self)
    }
}

/// rmdir(2) of a cgroup; when it has child cgroups (a container may make some in its own
/// cgroup), those go first, deepest first, as runc does. A missing directory is fine.
fn rmdir_tree(dir: &Path) -> Result<()> {
    sysops::explain::Cmd::new("rmdir").arg(dir).emit();
    match stdfs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
            return Err(Error::io(dir, e))
        }
        Err(_) => {}
    }
    let children = stdfs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for c in children.flatten() {
        if c.file_type().is_ok_and(|t| t.is_dir()) {
            rmdir_tree(&c.path())?;
        }
    }
    stdfs::remove_dir(dir).map_err(|e| Error::io(dir, e))
}

/// The PIDs listed in `dir/cgroup.procs`.
fn procs_in(dir: &Path) -> Vec<i32> {
    stdfs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// How a new process (the init, an exec'd process) gets into the container's cgroup
/// without paying for the global lock a move takes: moving a whole process (a write to
/// `cgroup.procs`, even of "0") write-locks cgroup_threadgroup_rwsem, whose first writer
/// waits for an RCU grace period (measured here: ~10 ms per `run`, crun pays it too). So:
/// - v1: the process writes "0" (itself) to each hierarchy's `tasks`: moving the calling
///   thread of a single-threaded process skips that lock (kernel: cgroup_procs_write_start);
/// - v2: it is born in the cgroup (clone3 CLONE_INTO_CGROUP, [`Join::v2_dir`]); where that
///   cannot be used, it writes "0" to `cgroup.procs` and pays the grace period.
pub struct Join {
    /// (path, fd) of each v1 hierarchy's `tasks`.
    pub v1_tasks: Vec<(PathBuf, OwnedFd)>,
    /// The v2 directory, for CLONE_INTO_CGROUP.
    pub v2_dir: Option<OwnedFd>,
    /// The v2 `cgroup.procs`, when the process was not born there.
    pub v2_procs: Option<(PathBuf, OwnedFd)>,
}

/// What the init sends its parent once it joined its cgroup.
pub const JOINED: &[u8] = b"joined";

impl Join {
    /// The files the process writes "0" to: all, or without the v2 one when it was born
    /// in its v2 cgroup.
    pub fn child_files(&self, born_in_v2: bool) -> impl Iterator<Item = &OwnedFd> {
        self.v1_tasks
            .iter()
            .chain(self.v2_procs.iter().filter(move |_| !born_in_v2))
            .map(|(_, fd)| fd)
    }

    /// The steps, for --explain (the process did them itself).
    /// Explains the join, before the clone: in a shell, the process that goes on to become
    /// the container's init (the shell that runs `unshare ...`) moves itself (`0`) into the
    /// cgroup, and the init inherits it. minc's init writes the same `0` itself, through
    /// files its parent opened (the kernel checks the opener's credentials, which matters in
    /// a user namespace), or is born in the v2 cgroup (clone3 CLONE_INTO_CGROUP).
    pub fn explain(&self) {
        if !sysops::explain::enabled() {
            return;
        }
        let files = self
            .v1_tasks
            .iter()
            .map(|(p, _)| p)
            .chain(self.v2_procs.iter().map(|(p, _)| p));
        for path in files {
            sysops::explain::Cmd::new("echo")
                .arg("0")
                .stdout_to(path)
                .note("into the container's cgroup (0: the writer itself)")
                .emit();
        }
    }
}

/// One line of `rdma.max` (v1 and v2 write the same): `DEVICE hca_handle=N hca_object=M`.
fn rdma_line(dev: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let mut v = dev.to_string();
    if let Some(h) = l.hca_handles() {
        v += &format!(" hca_handle={h}");
    }
    if let Some(o) = l.hca_objects() {
        v += &format!(" hca_object={o}");
    }
    v
}

/// In a forked child: joins the cgroup by writing "0" to each file of
/// [`Join::child_files`]. Async-signal-safe (plain write(2) calls).
pub fn join_self<'a>(fds: impl Iterator<Item = &'a OwnedFd>) -> std::io::Result<()> {
    for fd in fds {
        // SAFETY: writing a static buffer to an fd we own.
        if unsafe { libc::write(fd.as_raw_fd(), b"0".as_ptr().cast(), 1) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Cleans up cgroups that an earlier `delete` could not remove (a process that took long to
/// die): their paths are listed in `ROOT/stale-cgroups`, one JSON [`Cgroup`] a line. Cheap
/// when there are none (one failed open).
pub fn retry_stale(root: &Path) {
    let list = root.join("stale-cgroups");
    let Ok(text) = stdfs::read_to_string(&list) else {
        return;
    };
    let _lock = sysops::lock::Lock::acquire(&root.join(".stale-cgroups.lock")).ok();
    let keep: Vec<&str> = text
        .lines()
        .filter(|l| match serde_json::from_str::<Cgroup>(l) {
            Ok(cg) => {
                let _ = cg.signal_all(libc::SIGKILL);
                cg.remove_dirs().is_err()
            }
            Err(_) => false,
        })
        .collect();
    if keep.is_empty() {
        let _ = stdfs::remove_file(&list);
    } else {
        let _ = stdfs::write(&list, keep.join("\n") + "\n");
    }
}

/// Records a cgroup that could not be removed now, for [`retry_stale`].
pub fn remember_stale(root: &Path, cg: &Cgroup) {
    use std::io::Write;
    let _lock = sysops::lock::Lock::acquire(&root.join(".stale-cgroups.lock")).ok();
    if let Ok(mut f) = stdfs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("stale-cgroups"))
    {
        let _ = writeln!(
            f,
            "{}",
            serde_json::to_string(cg).expect("cgroup serializes")
        );
    }
}

/// The file in a container's state directory that records its cgroup before the cgroup is
/// made, so a `delete` after a crashed `create` still finds and removes it.
const RECORD: &str = "cgroup.json";

/// `create`'s cgroup step, run by the parent before the init exists: work out the cgroup,
/// record it, make it and write the limits. The init then joins it first thing
/// ([`Join`]). On error nothing is left behind.
pub fn setup(
    state_dir: &Path,
    id: &str,
    cgroups_path: Option<&str>,
    resources: Option<&LinuxResources>,
    systemd: bool,
) -> Result<Cgroup> {
    let res = resources.cloned().unwrap_or_default();
    if systemd && paths::systemd_running() {
        return Err(Error::Unsupported {
            what: "--systemd-cgroup".into(),
            why: "systemd manages this host's cgroups and minc does not drive systemd over \
                  D-Bus; use the cgroupfs driver (podman --cgroup-manager cgroupfs, containerd \
                  SystemdCgroup = false)"
                .into(),
        });
    }
    let cg = Cgroup::resolve(cgroups_path, id, systemd)?;
    let _ = CURRENT.set(cg.clone()); // for the init, a copy of this process
    cg.check_unused()?; // before anything is made: a failed create must not remove it
    let record = state_dir.join(RECORD);
    stdfs::write(&record, serde_json::to_vec(&cg).expect("cgroup serializes"))
        .map_err(|e| Error::io(&record, e))?;
    let made = cg.create().and_then(|()| cg.apply(&res, false));
    if let Err(e) = made {
        let _ = cg.destroy();
        return Err(e);
    }
    Ok(cg)
}

/// The cgroup [`setup`] made in this process (the init, cloned from it, sees it too).
static CURRENT: std::sync::OnceLock<Cgroup> = std::sync::OnceLock::new();

/// The container's cgroup, in the container's init.
pub fn current() -> Option<&'static Cgroup> {
    CURRENT.get()
}

/// The cgroup recorded by [`setup`] in a state directory, if any.
pub fn recorded(state_dir: &Path) -> Option<Cgroup> {
    let data = stdfs::read(state_dir.join(RECORD)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Removes a deleted container's cgroup; one that cannot be removed yet is remembered and
/// retried by later `delete`s ([`retry_stale`]), so a slow-dying process never leaves an
/// empty cgroup behind for good.
pub fn remove(root: &Path, cg: &Cgroup) {
    if let Err(e) = cg.destroy() {
        tracing::warn!("cgroup {}: {e} (will retry on a later delete)", cg.path);
        remember_stale(root, cg);
    }
}

/// Destroys a cgroup when dropped unless disarmed: `create`'s error paths.
pub struct Undo<'a>(pub Option<&'a Cgroup>);

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(cg) = self.0 {
            let _ = cg.destroy();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `retry_stale` removes what it can and keeps the rest listed (plain directories stand
    /// in for cgroups here; the kernel side is in the end-to-end tests).
    #[test]
    fn stale_cgroups_are_retried_and_forgotten_once_gone() {
        let root = tempfile::tempdir().unwrap();
        let gone = root.path().join("gone/c1");
        let busy = root.path().join("busy/c2");
        std::fs::create_dir_all(&gone).unwrap();
        std::fs::create_dir_all(&busy).unwrap();
        std::fs::write(busy.join("a file, as a stand-in for a live cgroup"), "").unwrap();
        let cg = |dir: &Path| Cgroup {
            path: "/x".into(),
            mode: Mode::V2,
            dirs: vec![Dir {
                controllers: Vec::new(),
                path: dir.to_path_buf(),
            }],
        };
        remember_stale(root.path(), &cg(&gone));
        remember_stale(root.path(), &cg(&busy));
        retry_stale(root.path());
        assert!(!gone.exists());
        let left = std::fs::read_to_string(root.path().join("stale-cgroups")).unwrap();
        assert_eq!(left.lines().count(), 1);
        assert!(left.contains("busy"));
        std::fs::remove_file(busy.join("a file, as a stand-in for a live cgroup")).unwrap();
        retry_stale(root.path());
        assert!(!busy.exists());
        assert!(!root.path().join("stale-cgroups").exists());
    }

    #[test]
    fn nested_child_cgroups_are_removed_first() {
        let root = tempfile::tempdir().unwrap();
        let c = root.path().join("ctr");
        std::fs::create_dir_all(c.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(c.join("other")).unwrap();
        rmdir_tree(&c).unwrap();
        assert!(!c.exists());
        rmdir_tree(&c).unwrap(); // already gone: fine
    }
}
