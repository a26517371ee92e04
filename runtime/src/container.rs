//! The OCI lifecycle: create, start, state, kill, delete, plus list and ps.
//!
//! State lives in `ROOT/ID/` (state.json, a copy of config.json, the start socket). The
//! container init is a child of the process that ran `create`; `start` talks to it through
//! the start socket, so it can run in any later process, as OCI clients expect.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use sysops::explain::{self, Cmd};
use sysops::lock::Lock;

use crate::cgroups;
use crate::channel::{self, Msg};
use crate::console;
use crate::dmz::Dmz;
use crate::error::{check, Error, Result};
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::pty;
use crate::seccomp;
use crate::spec::{self, LinuxNamespaceType, Spec};
use crate::state::{self, OciState, State, Status};
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
    /// Refuse config.json fields minc does not know (`--strict`).
    pub strict: bool,
    /// runc's `--console-socket`: where the pty master goes when `process.terminal` is set.
    pub console_socket: Option<PathBuf>,
    /// The terminal's size, instead of the spec's consoleSize (a relaying caller's own).
    pub console_size: Option<pty::Size>,
    /// `--systemd-cgroup`: linux.cgroupsPath is systemd's `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// Rejects ids that could escape the root directory or confuse tools (see
/// `sysops::container::valid_id`).
pub fn validate_id(id: &str) -> Result<()> {
    if sysops::container::valid_id(id) {
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

/// The lock file of a container directory. `create` holds it from the moment the directory
/// exists until state.json is written; whoever can take it and finds no state.json knows the
/// creator died (kill -9) and may remove the leftover.
fn lock_path(dir: &Path) -> PathBuf {
    dir.join(".lock")
}

/// Locks an existing container directory; None if it is gone (see
/// [`Lock::existing_dir`]: a directory being removed never gets its lock file back).
pub(crate) fn lock_existing(dir: &Path) -> std::io::Result<Option<Lock>> {
    Lock::existing_dir(dir, ".lock", "state.json")
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
            self.reclaim_if_orphan(&dir);
            return Err(Error::NotFound(id.to_string()));
        }
        // A concurrent delete may remove it between the check and the read.
        State::load(&dir).map_err(|e| match e {
            Error::Io { ref err, .. } if err.kind() == std::io::ErrorKind::NotFound => {
                Error::NotFound(id.to_string())
            }
            e => e,
        })
    }

    /// Removes what is left of a container without state.json (a create or a delete that
    /// died half-way): the cgroup it recorded, then its directory.
    fn remove_remains(&self, dir: &Path) -> std::io::Result<()> {
        if let Some(cg) = cgroups::recorded(dir) {
            cgroups::remove(&self.root, &cg);
        }
        fs::remove_dir_all(dir)
    }

    /// Removes a container directory that has no state.json and whose creator is gone.
    /// Returns true if it removed one.
    fn reclaim_if_orphan(&self, dir: &Path) -> bool {
        if !dir.is_dir() || dir.join("state.json").exists() {
            return false;
        }
        match Lock::try_acquire(&lock_path(dir)) {
            Ok(Some(_held)) if !dir.join("state.json").exists() => {
                tracing::debug!("removing {}: its create did not finish", dir.display());
                self.remove_remains(dir).is_ok()
            }
            _ => false,
        }
    }

    /// Creates the container: clones the init into new namespaces, lets it prepare the rootfs
    /// and returns once it is blocked waiting for `start`.
    ///
    /// The init is a fork of this process (no exec), which is only sound while the process
    /// has a single thread: this is checked, and an error otherwise.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<State> {
        let (state, _) = self.create_inner(id, opts, false)?;
        Ok(state)
    }

    /// Like [`Runtime::create`], but a container with `process.terminal` and no console socket
    /// is allowed: its pty master is returned, for the caller to relay (a foreground `run`)
    /// or keep (the `-d` monitor).
    pub fn create_with_terminal(
        &self,
        id: &str,
        opts: &CreateOptions,
    ) -> Result<(State, Option<OwnedFd>)> {
        self.create_inner(id, opts, true)
    }

    fn create_inner(
        &self,
        id: &str,
        opts: &CreateOptions,
        keep_master: bool,
    ) -> Result<(State, Option<OwnedFd>)> {
        validate_id(id)?;
        if sys::thread_count() != 1 {
            return Err(Error::Init(
                "create must run in a single-threaded process (the init is forked)".into(),
            ));
        }
        let bundle = fs::canonicalize(&opts.bundle).map_err(|e| Error::Config {
            path: opts.bundle.clone(),
            reason: format!("bundle: {e}"),
        })?;
        let spec = spec::load(&bundle, opts.strict)?;
        let terminal = spec::process(&spec).terminal() == Some(true);
        check_terminal(terminal, opts.console_socket.as_deref(), keep_master)?;
        let rootfs = spec::rootfs(&spec, &bundle);
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

        sys::create_private_dir(&self.root)?;
        let dir = self.dir(id);
        self.reclaim_if_orphan(&dir);
        // The directory appears with its lock already held: made under a temporary name,
        // locked, then renamed into place (RENAME_NOREPLACE), so no `state` or `list` can
        // ever see it unlocked without a state.json and take it for a crashed create.
        let tmp = self
            .root
            .join(format!(".{id}.creating-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let lock = match Lock::acquire(&lock_path(&tmp)) {
            Ok(l) => l,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(Error::io(&tmp, e));
            }
        };
        if let Err(e) = sys::rename_noreplace(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Exists(id.to_string()),
                _ => Error::io(&dir, e),
            });
        }
        let mut guard = DirGuard(Some(&dir));
        let made = self.spawn_init(id, &dir, &bundle, &rootfs, &spec, opts, lock)?;
        guard.0 = None;
        Ok(made)
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_init(
        &self,
        id: &str,
        dir: &Path,
        bundle: &Path,
        rootfs: &Path,
        spec: &Spec,
        opts: &CreateOptions,
        lock: Lock,
    ) -> Result<(State, Option<OwnedFd>)> {
        // Compiled here, before the clone: the init only loads it.
        let seccomp = seccomp::for_spec(spec, &bundle.join("config.json"))?;
        // Idmapped mounts need a privilege the init lacks: made here, moved in by the init.
        let idmapped = crate::idmap::prepare(spec, bundle)?;
        let config_copy = dir.join("config.json");
        fs::copy(bundle.join("config.json"), &config_copy)
            .map_err(|e| Error::io(&config_copy, e))?;
        let listener = listen(dir)?;
        let (ours, theirs) = sys::socketpair()?;
        let dmz = Dmz::new()?;

        let mut flags = 0;
        let mut created = Vec::new();
        let mut unshare = Cmd::new("unshare");
        // The PID and time namespaces of a process are fixed at its birth: minc switches the
        // namespace its children are born in (setns, or unshare + offsets for a new time
        // namespace), clones, and switches back so that later children (hooks) stay in ours.
        let mut restore = Vec::new();
        for ns in spec::namespaces(spec) {
            let kind = ns.typ();
            match (kind, ns.path()) {
                (LinuxNamespaceType::Pid | LinuxNamespaceType::Time, Some(path)) => {
                    restore.push(for_children(kind, Some(path), spec, &mut unshare)?);
                }
                (LinuxNamespaceType::Time, None) => {
                    restore.push(for_children(kind, None, spec, &mut unshare)?);
                    created.push(spec::ns_proc_name(kind).to_string());
                }
                // The cgroup namespace is unshared by the init once it is in its cgroup (a
                // cgroup namespace's root is the cgroup its creator is in). In a shell the
                // cgroup is joined before `unshare`, so `--cgroup` there is the same.
                (LinuxNamespaceType::Cgroup, None) => {
                    created.push(spec::ns_proc_name(kind).to_string());
                    unshare = unshare.arg(spec::ns_option(kind));
                }
                (_, Some(_)) => {} // joined by the init
                (_, None) => {
                    flags |= spec::ns_flag(kind);
                    created.push(spec::ns_proc_name(kind).to_string());
                    unshare = unshare.arg(spec::ns_option(kind));
                }
            }
        }
        // The container's cgroup, made and limited before the init exists. Without root
        // (rootless) there is none unless the spec asks for one: an unprivileged user cannot
        // make cgroups unless they were delegated to it.
        let linux = spec.linux().as_ref();
        let cgroups_path = linux
            .and_then(|l| l.cgroups_path().as_ref())
            .and_then(|p| p.to_str());
        let resources = linux.and_then(|l| l.resources().as_ref());
        // SAFETY: geteuid cannot fail.
        let rootless = unsafe { libc::geteuid() } != 0;
        let cg = if rootless && cgroups_path.is_none() && resources.is_none() {
            None
        } else {
            Some(cgroups::setup(
                dir,
                id,
                cgroups_path,
                resources,
                opts.systemd_cgroup,
            )?)
        };
        let mut undo_cgroup = cgroups::Undo(cg.as_ref());
        let join = cg.as_ref().map(|c| c.prepare_join()).transpose()?;
        let maps = crate::userns::new_userns(spec).then(|| crate::userns::Maps::of(spec));
        // A user namespace joined by path while others are created: the init is cloned from
        // inside it (userns::clone_inside), so they belong to it.
        let inside = match crate::userns::clone_inside_of(spec) {
            Some(path) => {
                let path = path.to_path_buf();
                let fd: OwnedFd = fs::File::open(&path)
                    .map_err(|e| Error::io(&path, e))?
                    .into();
                unshare = Cmd::new("nsenter")
                    .arg(format!("--user={}", path.display()))
                    .arg("--")
                    .args(unshare.words().iter().cloned());
                Some((fd, path))
            }
            _ => None,
        };
        if let Some(j) = &join {
            j.explain();
        }
        if explain::enabled() {
            if let Some(m) = &maps {
                // Map the ids, then become root of the namespace, as the init does.
                unshare = m.unshare_args(unshare).args(["--setuid=0", "--setgid=0"]);
            }
            unshare
                .args(["--propagation", "unchanged", "--fork", "--", "setsid", "sh"])
                .note(
                    "the container's init: clone(2) with these namespaces; what follows runs in it",
                )
                .emit();
        }
        // SAFETY: checked single-threaded above (thread_count), and nothing below spawns a
        // thread before the fork. The init is born in the container's v2 cgroup when the
        // kernel can do that.
        let v2_dir = join.as_ref().and_then(|j| j.v2_dir.as_ref());
        let (pid, born_in_v2) = match (&inside, v2_dir) {
            (Some((userns, path)), dir) => {
                match unsafe {
                    crate::userns::clone_inside(userns, path, flags, dir.map(|d| d.as_raw_fd()))
                } {
                    Ok((pid, born)) => (Ok(pid), born),
                    Err(e) => (Err(e), false),
                }
            }
            (None, Some(dir)) => match unsafe { sys::clone3_into_cgroup(flags, dir.as_raw_fd()) } {
                Ok(pid) => (Ok(pid), true),
                Err(_) => (unsafe { sys::clone_fork(flags) }, false),
            },
            (None, None) => (unsafe { sys::clone_fork(flags) }, false),
        };
        if !matches!(pid, Ok(0)) {
            // Only the parent switches back: the init stays where it was born.
            for (own, kind) in restore {
                // SAFETY: setns back to our own namespace fd.
                unsafe { libc::setns(own.as_raw_fd(), spec::ns_flag(kind)) };
            }
        }
        let pid = pid?;
        if pid == 0 {
            // The init must not hold the create lock: start and delete take it later.
            drop(lock);
            drop(ours);
            // Into the container's cgroup before anything else (see cgroups::Join): the
            // files were opened by the parent, whose credentials the kernel checks.
            let joined = match &join {
                Some(j) => cgroups::join_self(j.child_files(born_in_v2)),
                None => Ok(()),
            };
            let msg = match &joined {
                Ok(()) => Msg::Joined,
                Err(e) => channel::error(&Error::sys("join the container's cgroup", e.kind())),
            };
            let _ = channel::send(&theirs, &msg);
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
                dmz: &dmz,
                preserve_fds: opts.preserve_fds,
                stdio: opts.stdio,
                seccomp: seccomp.as_ref(),
                idmapped: &idmapped,
                console_size: opts
                    .console_size
                    .or_else(|| init::console::spec_size(spec::process(spec))),
                release_stdio: spec::process(spec).terminal() == Some(true)
                    && opts.console_socket.is_some(),
            });
        }
        drop(theirs);
        drop(listener);
        drop(dmz);
        drop(idmapped);

        let result = (|| {
            // The init joined its cgroup before anything else (it waits for Go below).
            match channel::recv(&ours)? {
                Some(Msg::Joined) => {}
                Some(Msg::Error { message, code }) => return Err(Error::from_child(message, code)),
                _ => return Err(Error::Init("container init exited unexpectedly".into())),
            }
            // The new user namespace's mappings, before the init does anything in it.
            if let Some(m) = &maps {
                m.write(pid)?;
            }
            let mut state = State {
                oci: OciState {
                    oci_version: spec::OCI_VERSION.into(),
                    id: id.to_string(),
                    status: Status::Creating,
                    pid,
                    bundle: bundle.to_path_buf(),
                    annotations: spec.annotations().clone().unwrap_or_default(),
                    oom_killed: false,
                },
                init_start_time: state::proc_start_time(pid).unwrap_or(0),
                created: crate::rfc3339::rfc3339_nanos(std::time::SystemTime::now()),
                rootfs: rootfs.to_path_buf(),
                started: false,
                hooks: spec.hooks().clone().unwrap_or_default(),
                namespaces: created,
                cgroup: cg.clone(),
            };
            state.save(dir)?;
            // Each stage's hooks get the status the spec gives that stage: creating for
            // createRuntime, created for prestart (and, in the init, createContainer and
            // startContainer).
            let mut created_state = state.oci.clone();
            created_state.status = Status::Created;
            let creating = serde_json::to_vec(&state.oci).expect("state serializes");
            let created = serde_json::to_vec(&created_state).expect("state serializes");
            let hooks = spec.hooks().clone().unwrap_or_default();
            #[allow(deprecated)]
            hooks::run_stage("prestart", hooks.prestart().as_deref(), &created, None)?;
            hooks::run_stage(
                "createRuntime",
                hooks.create_runtime().as_deref(),
                &creating,
                None,
            )?;
            channel::send(
                &ours,
                &Msg::Go {
                    state: created_state,
                },
            )?;
            // With a terminal, its master comes first (runc: during create, so a client
            // holds it before `start`).
            // The console socket is connected only now, so the init (a copy of this
            // process) never holds the client's connection.
            let no_agent = || -> Result<seccomp::notify::Agent> {
                Err(Error::Init("a seccomp listener before start".into()))
            };
            let master = match console::receive(&ours, opts.console_socket.as_deref(), no_agent)? {
                (Some(Msg::Ready), master) => master,
                (Some(Msg::Error { message, code }), _) => {
                    return Err(Error::from_child(message, code))
                }
                _ => return Err(Error::Init("container init exited unexpectedly".into())),
            };
            state.oci.status = Status::Created;
            state.save(dir)?;
            if let Some(pf) = &opts.pid_file {
                write_pid_file(pf, pid)?;
            }
            Ok((state, master))
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
        drop(lock);
        result
    }

    /// Releases the init of a created container: it runs its startContainer hooks and execs
    /// the program. Returns once the exec happened (or failed).
    pub fn start(&self, id: &str) -> Result<State> {
        let dir = self.dir(id);
        let mut state = self.load(id)?;
        let _lock = lock_existing(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .ok_or_else(|| Error::NotFound(id.into()))?;
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
        let created = state.current();
        explain::comment(&format!(
            "start: release the init of {id} (pid {}) through its start socket",
            state.oci.pid
        ));
        channel::send(&conn, &Msg::Start { state: created })?;
        // A NOTIFY seccomp filter's listener comes first, for the agent (seccomp/notify.rs).
        let reply = seccomp::notify::relay(&conn, || {
            let spec = spec::load(&dir, false)?;
            let current = serde_json::to_value(state.current()).expect("state serializes");
            seccomp::notify::Agent::of(&spec, current, state.oci.pid)
        })?;
        let _ = fs::remove_file(dir.join("start.sock"));
        channel::expect_exec(reply, "the container's program")?;
        state.started = true;
        state.oci.status = Status::Running;
        state.save(&dir)?;
        // poststart: failures are warnings, and every hook of the stage runs (the spec). The
        // state says running with the pid even if the program already exited.
        let mut running = state.oci.clone();
        running.status = Status::Running;
        let json = serde_json::to_vec(&running).expect("state serializes");
        hooks::run_stage_warn("poststart", state.hooks.poststart().as_deref(), &json);
        Ok(state)
    }

    /// The OCI state with the live status.
    pub fn state(&self, id: &str) -> Result<OciState> {
        Ok(self.load(id)?.current())
    }

    /// What `minc state` prints: the OCI state plus runc's rootfs, created and owner.
    pub fn report(&self, id: &str) -> Result<state::Report> {
        Ok(self.load(id)?.report(&self.dir(id), false))
    }

    /// Sends a signal to the init, or with `all` to every process of the container. As runc:
    /// `kill --all` of a stopped container succeeds (there is nothing left to signal), a
    /// plain `kill` of one fails with "container not running".
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let state = self.load(id)?;
        let status = state.status();
        if !matches!(status, Status::Created | Status::Running | Status::Paused) {
            if all {
                return Ok(());
            }
            return Err(Error::NotRunning(id.into()));
        }
        if explain::enabled() {
            Cmd::new("kill")
                .arg(format!("-{signal}"))
                .arg(state.oci.pid.to_string())
                .emit();
        }
        match signal_init(&state, signal) {
            Err(Error::NotRunning(_)) if all => {}
            Err(Error::NotRunning(_)) => return Err(Error::NotRunning(id.into())),
            other => other?,
        }
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
            // A directory without state.json whose creator is gone was removed by load; one
            // whose create is still running belongs to that create.
            Err(Error::NotFound(_)) if force && dir.is_dir() => {
                return self.remove_remains(&dir).map_err(|e| Error::io(&dir, e));
            }
            // As runc and crun: `delete --force` of a container that does not exist succeeds
            // (Podman and containerd's shim rely on it when cleaning up).
            Err(Error::NotFound(_)) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        // Another delete (a foreground `run` finishing while a client deletes with --force)
        // may have removed the container while we waited for the lock: then it is gone.
        let gone = || {
            if force {
                Ok(())
            } else {
                Err(Error::NotFound(id.to_string()))
            }
        };
        let _lock = match lock_existing(&dir) {
            Ok(Some(l)) => l,
            Ok(None) => return gone(),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        if !dir.join("state.json").exists() {
            // What a delete before us (or one killed half-way) left: ours to finish.
            let _ = self.remove_remains(&dir);
            return gone();
        }
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
        if explain::enabled() {
            Cmd::new("rm").arg("-rf").arg(&dir).emit();
        }
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut gone = state.oci.clone();
        gone.status = Status::Stopped;
        gone.pid = 0;
        let json = serde_json::to_vec(&gone).expect("state serializes");
        hooks::run_stage_warn("poststop", state.hooks.poststop().as_deref(), &json);
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
        if explain::enabled() {
            Cmd::new("kill")
                .arg("-KILL")
                .arg(state.oci.pid.to_string())
                .emit();
        }
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
            let path = entry.path();
            if self.reclaim_if_orphan(&path) {
                continue;
            }
            if let Ok(state) = State::load(&path) {
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
        return Err(Error::NotRunning(state.oci.id.clone()));
    }
    sys::pidfd_send_signal(&pidfd, signal)
        .map_err(|e| Error::sys(format!("kill {} {signal}", state.oci.pid), e))
}

/// runc's rules for terminals and console sockets: a container that detaches (every
/// `create`) needs a console socket for its terminal, and a console socket is only for a
/// terminal. `relay`: the caller takes the master itself (a foreground `run`, the monitor).
pub fn check_terminal(terminal: bool, socket: Option<&Path>, relay: bool) -> Result<()> {
    match (terminal, socket) {
        (true, None) if !relay => Err(Error::Init(
            "process.terminal is set but there is no --console-socket to send the terminal to \
             (minc cannot relay a terminal it detaches from)"
                .into(),
        )),
        (false, Some(p)) => Err(Error::Init(format!(
            "--console-socket {}: the process has no terminal (process.terminal is false; -t for exec)",
            p.display()
        ))),
        _ => Ok(()),
    }
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    // Write then rename, so a client polling for the file never reads it half-written.
    let tmp = path.with_extension("minc-tmp");
    fs::write(&tmp, pid.to_string()).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Makes our next child be born in another PID or time namespace: the one at `path`, or
/// (time only) a new one with the spec's clock offsets (time_namespaces(7): they can only be
/// written before any process is in it). Returns our own namespace, to switch back to.
fn for_children(
    kind: LinuxNamespaceType,
    path: Option<&Path>,
    spec: &Spec,
    unshare: &mut Cmd,
) -> Result<(OwnedFd, LinuxNamespaceType)> {
    let name = spec::ns_proc_name(kind);
    let own_path = format!("/proc/self/ns/{name}");
    let own: OwnedFd = fs::File::open(&own_path)
        .map_err(|e| Error::io(Path::new(&own_path), e))?
        .into();
    let flag = spec::ns_flag(kind);
    match path {
        Some(path) => {
            let target = fs::File::open(path).map_err(|e| Error::io(path, e))?;
            explain::comment(&format!(
                "the init is born in the {name} namespace {} (setns(2) before clone(2))",
                path.display()
            ));
            // SAFETY: setns on a namespace fd.
            check(unsafe { libc::setns(target.as_raw_fd(), flag) }, || {
                format!("join {name} namespace {}", path.display())
            })?;
        }
        None => {
            // SAFETY: unshare of the time namespace only changes our children's.
            check(unsafe { libc::unshare(flag) }, || {
                "create a time namespace".into()
            })?;
            let offsets = spec
                .linux()
                .as_ref()
                .and_then(|l| l.time_offsets().clone())
                .unwrap_or_default();
            let mut text = String::new();
            let mut keys: Vec<_> = offsets.keys().cloned().collect();
            keys.sort();
            let mut cmd = std::mem::replace(unshare, Cmd::new("unshare")).arg("--time");
            for clock in keys {
                if clock != "monotonic" && clock != "boottime" {
                    return Err(Error::Init(format!(
                        "linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
                    )));
                }
                let o = &offsets[&clock];
                let (secs, nanos) = (o.secs().unwrap_or(0), o.nanosecs().unwrap_or(0));
                text.push_str(&format!("{clock} {secs} {nanos}\n"));
                cmd = cmd.arg(format!("--{clock}={secs}.{nanos:09}"));
            }
            *unshare = cmd;
            if !text.is_empty() {
                fs::write("/proc/self/timens_offsets", &text)
                    .map_err(|e| Error::sys("linux.timeOffsets: write timens_offsets", e))?;
            }
        }
    }
    Ok((own, kind))
}

/// The start socket the init will wait on, bound before the clone (SOCK_SEQPACKET: each
/// message is one packet, and the init's exec shows up as EOF).
fn listen(dir: &Path) -> Result<OwnedFd> {
    let path = dir.join("start.sock");
    sys::unix_listen(&path, libc::SOCK_SEQPACKET)
        .map_err(|e| Error::sys(format!("bind {}", path.display()), e))
}

fn connect(dir: &Path) -> Result<OwnedFd> {
    sys::unix_connect(&dir.join("start.sock"), libc::SOCK_SEQPACKET)
        .map_err(|e| Error::sys(format!("connect to the init of {}", dir.display()), e))
}
