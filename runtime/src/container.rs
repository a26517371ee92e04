//! The OCI lifecycle: create, start, state, kill, delete, plus list and ps.
//!
//! State lives in `ROOT/ID/` (state.json, a copy of config.json, the start socket). The
//! container init is a child of the process that ran `create`; `start` talks to it through
//! the start socket, so it can run in any later process, as OCI clients expect.

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use crate::cgroups;
use crate::error::{check, Error, Result};
use crate::explain;
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::spec::{NamespaceKind, Spec};
use crate::state::{self, Lock, OciState, State, Status, OCI_VERSION};
use crate::sys;

/// Where containers' state lives (`--root`, default /run/minc).
pub struct Runtime {
    pub root: PathBuf,
}

#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    /// Descriptors to give the container as stdin, stdout and stderr (default: ours).
    pub stdio: Option<[RawFd; 3]>,
    /// `--systemd-cgroup`: linux.cgroupsPath is systemd's `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// Rejects ids that could escape the root directory or confuse tools.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// Removes a half-made container directory unless disarmed.
struct DirGuard<'a>(Option<&'a Path>);

impl Drop for DirGuard<'_> {
    fn drop(&mut self) {
        if let Some(dir) = self.0 {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime { root: root.into() }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Loads a container's state; `NotFound` when there is no such container.
    pub fn load(&self, id: &str) -> Result<State> {
        validate_id(id)?;
        let dir = self.dir(id);
        if !dir.join("state.json").exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        State::load(&dir)
    }

    /// Creates the container: clones the init into new namespaces, lets it prepare the rootfs
    /// and returns once it is blocked waiting for `start`.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<State> {
        validate_id(id)?;
        let bundle = fs::canonicalize(&opts.bundle).map_err(|e| Error::Config {
            path: opts.bundle.clone(),
            reason: format!("bundle: {e}"),
        })?;
        let spec = Spec::load(&bundle)?;
        let rootfs = spec.rootfs(&bundle);
        match fs::metadata(&rootfs) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Rootfs {
                    path: rootfs,
                    reason: "not a directory".into(),
                })
            }
            Err(e) => return Err(Error::io(&rootfs, e)),
        }
        let rootfs = fs::canonicalize(&rootfs).map_err(|e| Error::io(&rootfs, e))?;

        fs::create_dir_all(&self.root).map_err(|e| Error::io(&self.root, e))?;
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let mut guard = DirGuard(Some(&dir));
        let state = self.spawn_init(id, &dir, &bundle, &rootfs, &spec, opts)?;
        guard.0 = None;
        Ok(state)
    }

    fn spawn_init(
        &self,
        id: &str,
        dir: &Path,
        bundle: &Path,
        rootfs: &Path,
        spec: &Spec,
        opts: &CreateOptions,
    ) -> Result<State> {
        let config_copy = dir.join("config.json");
        fs::copy(bundle.join("config.json"), &config_copy)
            .map_err(|e| Error::io(&config_copy, e))?;
        let listener = listen(dir)?;
        let (ours, theirs) = sys::socketpair()?;

        let mut flags = 0;
        let mut created = Vec::new();
        let mut words = Vec::new();
        for ns in spec.namespaces() {
            // The cgroup namespace is unshared by the init once it is in its cgroup (the
            // namespace's root is the cgroup its creator is in).
            if ns.path.is_none() && ns.kind != NamespaceKind::Cgroup {
                flags |= ns.kind.flag();
                created.push(ns.kind.proc_name().to_string());
                words.push(ns.kind.unshare_flag());
            }
        }
        // Joining an existing PID namespace must happen before the clone: the child's PID
        // namespace is fixed at birth. Switch only for the clone, then switch back so later
        // children (hooks) stay in ours.
        let pid_ns = spec
            .namespaces()
            .iter()
            .find(|n| n.kind == NamespaceKind::Pid)
            .and_then(|n| n.path.clone());
        let restore = match &pid_ns {
            Some(path) => Some(enter_pid_ns(path)?),
            None => None,
        };
        // The container's cgroup, made and limited before the init exists.
        let linux = spec.linux.as_ref();
        let cg = cgroups::setup(
            dir,
            id,
            linux.and_then(|l| l.cgroups_path.as_deref()),
            linux.and_then(|l| l.resources.as_ref()),
            opts.systemd_cgroup,
        )?;
        let mut undo_cgroup = cgroups::Undo(Some(&cg));
        let join = cg.prepare_join()?;
        explain!(
            "unshare {} --fork -- minc-init   # the container's init",
            words.join(" ")
        );
        // SAFETY: minc is single-threaded here (no thread is ever started before create).
        // The init is born in the container's v2 cgroup when the kernel can do that.
        let (pid, born_in_v2) = match &join.v2_dir {
            Some(dir) => match unsafe { sys::clone3_into_cgroup(flags, dir.as_raw_fd()) } {
                Ok(pid) => (Ok(pid), true),
                Err(_) => (unsafe { sys::clone_fork(flags) }, false),
            },
            None => (unsafe { sys::clone_fork(flags) }, false),
        };
        if let Some(own) = restore {
            // SAFETY: setns back to our own PID namespace fd.
            unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWPID) };
        }
        let pid = pid?;
        if pid == 0 {
            drop(ours);
            // Into the container's cgroup before anything else (see cgroups::Join).
            let joined = cgroups::join_self(join.child_files(born_in_v2));
            let msg = match &joined {
                Ok(()) => cgroups::JOINED.to_vec(),
                Err(e) => [init::MSG_ERROR, format!("join cgroup: {e}").as_bytes()].concat(),
            };
            let _ = sys::send(&theirs, &msg);
            if joined.is_err() {
                // SAFETY: leaving the forked copy.
                unsafe { libc::_exit(1) };
            }
            init::main(InitArgs {
                spec,
                bundle,
                rootfs,
                sock: theirs,
                listener,
                preserve_fds: opts.preserve_fds,
                stdio: opts.stdio,
            });
        }
        drop(theirs);
        drop(listener);

        let result = (|| {
            // The init joined its cgroup before anything else (it waits for "go" below).
            let reply = sys::recv(&ours).map_err(|e| Error::sys("read from container init", e))?;
            if reply != cgroups::JOINED {
                let msg = reply
                    .strip_prefix(init::MSG_ERROR)
                    .unwrap_or(b"exited unexpectedly");
                return Err(Error::Init(String::from_utf8_lossy(msg).into_owned()));
            }
            join.explain(pid, born_in_v2);
            let mut state = State {
                oci: OciState {
                    oci_version: OCI_VERSION.into(),
                    id: id.to_string(),
                    status: Status::Creating,
                    pid,
                    bundle: bundle.to_path_buf(),
                    annotations: spec.annotations.clone(),
                    oom_killed: false,
                },
                init_start_time: state::proc_start_time(pid).unwrap_or(0),
                created: state::now(),
                rootfs: rootfs.to_path_buf(),
                started: false,
                hooks: spec.hooks(),
                namespaces: created,
                cgroup: Some(cg.clone()),
            };
            state.save(dir)?;
            let json = serde_json::to_vec(&state.oci).expect("state serializes");
            hooks::run("prestart", &state.hooks.prestart, &json)?;
            hooks::run("createRuntime", &state.hooks.create_runtime, &json)?;
            sys::send(&ours, &[b"go".as_slice(), &json].concat())
                .map_err(|e| Error::sys("talk to container init", e))?;
            let reply = sys::recv(&ours).map_err(|e| Error::sys("read from container init", e))?;
            if let Some(msg) = reply.strip_prefix(init::MSG_ERROR) {
                return Err(Error::Init(String::from_utf8_lossy(msg).into_owned()));
            }
            if reply != init::MSG_READY {
                return Err(Error::Init("container init exited unexpectedly".into()));
            }
            state.oci.status = Status::Created;
            state.save(dir)?;
            if let Some(pf) = &opts.pid_file {
                write_pid_file(pf, pid)?;
            }
            Ok(state)
        })();
        if result.is_err() {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        } else {
            undo_cgroup.0 = None;
        }
        result
    }

    /// Releases the init of a created container: it runs its startContainer hooks and execs
    /// the program. Returns once the exec happened (or failed).
    pub fn start(&self, id: &str) -> Result<State> {
        let dir = self.dir(id);
        let mut state = self.load(id)?;
        let _lock = Lock::acquire(&dir)?;
        let state_now = State::load(&dir)?; // re-read under the lock
        match state_now.status() {
            Status::Created => {}
            s => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: s.as_str(),
                    what: "only a created container can be started",
                })
            }
        }
        let conn = connect(&dir)?;
        let json = serde_json::to_vec(&state.current()).expect("state serializes");
        explain!("# start: release the init of {id} (pid {})", state.oci.pid);
        sys::send(&conn, &json).map_err(|e| Error::sys("release container init", e))?;
        let reply = sys::recv(&conn).map_err(|e| Error::sys("read from container init", e))?;
        let _ = fs::remove_file(dir.join("start.sock"));
        if let Some(msg) = reply.strip_prefix(init::MSG_ERROR) {
            return Err(Error::Init(String::from_utf8_lossy(msg).into_owned()));
        }
        state.started = true;
        state.oci.status = Status::Running;
        state.save(&dir)?;
        let json = serde_json::to_vec(&state.current()).expect("state serializes");
        if let Err(e) = hooks::run("poststart", &state.hooks.poststart, &json) {
            tracing::warn!("{e}");
        }
        Ok(state)
    }

    /// The OCI state with the live status.
    pub fn state(&self, id: &str) -> Result<OciState> {
        Ok(self.load(id)?.current())
    }

    /// Sends a signal to the init, or with `all` to every process of the container.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let state = self.load(id)?;
        let status = state.status();
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.as_str(),
                what: "there is no process to signal",
            });
        }
        explain!("kill -{signal} {}", state.oci.pid);
        signal_init(&state, signal)?;
        if status == Status::Paused && signal == libc::SIGKILL {
            // Frozen tasks only die once thawed (v1).
            if let Some(cg) = &state.cgroup {
                cgroups::freezer::thaw(cg)?;
            }
        }
        if all {
            for pid in self.pids(&state) {
                if pid != state.oci.pid {
                    // SAFETY: plain kill.
                    unsafe { libc::kill(pid, signal) };
                }
            }
        }
        Ok(())
    }

    /// Deletes a container. A running one needs `force` (it is killed first); a created one
    /// is killed, as runc does.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let dir = self.dir(id);
        let state = match self.load(id) {
            Ok(s) => s,
            // A directory without state.json is a crashed create: remove it.
            Err(Error::NotFound(_)) if dir.is_dir() && force => {
                if let Some(cg) = cgroups::recorded(&dir) {
                    cgroups::remove(&self.root, &cg);
                }
                return fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e));
            }
            Err(e) => return Err(e),
        };
        let _lock = Lock::acquire(&dir)?;
        match state.status() {
            s @ (Status::Running | Status::Paused) if !force => {
                return Err(Error::WrongState {
                    id: id.into(),
                    status: s.as_str(),
                    what: "stop it first or use delete -f",
                })
            }
            Status::Created | Status::Running | Status::Paused | Status::Creating => {
                self.stop_all(&state)?;
            }
            Status::Stopped => {}
        }
        if let Some(cg) = &state.cgroup {
            cgroups::remove(&self.root, cg);
        }
        cgroups::retry_stale(&self.root);
        explain!("rm -rf {}", dir.display());
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut gone = state.oci.clone();
        gone.status = Status::Stopped;
        gone.pid = 0;
        let json = serde_json::to_vec(&gone).expect("state serializes");
        if let Err(e) = hooks::run("poststop", &state.hooks.poststop, &json) {
            tracing::warn!("{e}");
        }
        Ok(())
    }

    /// SIGKILLs every process of the container and waits for the init to be gone.
    fn stop_all(&self, state: &State) -> Result<()> {
        if !state.alive() {
            return Ok(());
        }
        let pidfd = sys::pidfd_open(state.oci.pid)?;
        if !state.alive() {
            return Ok(());
        }
        explain!("kill -KILL {}", state.oci.pid);
        let _ = sys::pidfd_send_signal(&pidfd, libc::SIGKILL);
        for pid in self.pids(state) {
            // SAFETY: plain kill.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(cg) = state
            .cgroup
            .as_ref()
            .filter(|c| cgroups::freezer::frozen(c))
        {
            let _ = cgroups::freezer::thaw(cg); // frozen tasks die once thawed
        }
        // A PID 1 that dies takes its namespace with it; wait until it is really gone so the
        // container's mounts are released before we report success.
        if !sys::pidfd_wait(&pidfd, 10_000) {
            return Err(Error::Init(format!(
                "container {} did not exit after SIGKILL",
                state.oci.id
            )));
        }
        // Reap it if it is our child (run, tests); harmless otherwise.
        // SAFETY: non-blocking waitpid.
        unsafe { libc::waitpid(state.oci.pid, std::ptr::null_mut(), libc::WNOHANG) };
        Ok(())
    }

    /// All containers under the root, sorted by id.
    pub fn list(&self) -> Result<Vec<State>> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        for entry in entries.flatten() {
            if let Ok(state) = State::load(&entry.path()) {
                out.push(state);
            }
        }
        out.sort_by(|a, b| a.oci.id.cmp(&b.oci.id));
        Ok(out)
    }

    /// Host PIDs of the container's processes: those in its PID namespace, or, when it shares
    /// the host's, the init and its descendants.
    pub fn pids(&self, state: &State) -> Vec<i32> {
        if !state.alive() {
            return Vec::new();
        }
        if let Some(cg) = state.cgroup.as_ref().filter(|c| c.exists()) {
            return cg.pids();
        }
        let init = state.oci.pid;
        let own_ns = state.namespaces.iter().any(|n| n == "pid");
        let ns_of = |pid: i32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let target = ns_of(init);
        let mut procs: Vec<(i32, i32)> = Vec::new(); // (pid, ppid)
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if own_ns {
                if target.is_some() && ns_of(pid) == target {
                    procs.push((pid, 0));
                }
            } else if let Some(ppid) = ppid_of(pid) {
                procs.push((pid, ppid));
            }
        }
        if own_ns {
            let mut pids: Vec<i32> = procs.into_iter().map(|p| p.0).collect();
            pids.sort();
            return pids;
        }
        let mut out = vec![init];
        let mut i = 0;
        while i < out.len() {
            let parent = out[i];
            out.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
            i += 1;
        }
        out.sort();
        out
    }
}

fn ppid_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
}

/// Signals the init through a pidfd, after checking the PID still belongs to it.
fn signal_init(state: &State, signal: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(state.oci.pid)?;
    if !state.alive() {
        return Err(Error::WrongState {
            id: state.oci.id.clone(),
            status: "stopped",
            what: "there is no process to signal",
        });
    }
    sys::pidfd_send_signal(&pidfd, signal)
        .map_err(|e| Error::sys(format!("kill {} {signal}", state.oci.pid), e))
}

fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    // Write then rename, so a client polling for the file never reads it half-written.
    let tmp = path.with_extension("minc-tmp");
    fs::write(&tmp, pid.to_string()).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn enter_pid_ns(path: &Path) -> Result<OwnedFd> {
    let own: OwnedFd = fs::File::open("/proc/self/ns/pid")
        .map_err(|e| Error::io(Path::new("/proc/self/ns/pid"), e))?
        .into();
    let target = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    explain!("nsenter --pid={}", path.display());
    // SAFETY: setns on a namespace fd.
    check(
        unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWPID) },
        || format!("join pid namespace {}", path.display()),
    )?;
    Ok(own)
}

/// A unix socket address for `DIR/start.sock`, reached through /proc/self/fd so that long
/// `--root` paths do not hit the 108-byte sun_path limit.
fn start_addr(dir_fd: &OwnedFd) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = format!("/proc/self/fd/{}/start.sock", dir_fd.as_raw_fd());
    for (d, s) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *d = s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    (addr, len as libc::socklen_t)
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    Ok(fs::File::open(dir).map_err(|e| Error::io(dir, e))?.into())
}

fn seqpacket_socket() -> Result<OwnedFd> {
    // SAFETY: socket() returns a fresh fd or -1.
    let fd = check(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) },
        || "socket".into(),
    )?;
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The start socket the init will wait on, bound before the clone.
fn listen(dir: &Path) -> Result<OwnedFd> {
    let dfd = open_dir(dir)?;
    let sock = seqpacket_socket()?;
    let (addr, len) = start_addr(&dfd);
    // SAFETY: valid socket and address.
    unsafe {
        check(
            libc::bind(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            ),
            || format!("bind {}/start.sock", dir.display()),
        )?;
        check(libc::listen(sock.as_raw_fd(), 1), || "listen".into())?;
    }
    Ok(sock)
}

fn connect(dir: &Path) -> Result<OwnedFd> {
    let dfd = open_dir(dir)?;
    let sock = seqpacket_socket()?;
    let (addr, len) = start_addr(&dfd);
    // SAFETY: valid socket and address.
    check(
        unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        },
        || format!("connect to the init of {}", dir.display()),
    )?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["a", "abc-1_2.3", "A+b"] {
            validate_id(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
