//! `exec`: run another process inside a running container, and `run`: create + start +
//! wait in one go.
//!
//! The exec'd process joins the container's namespaces (setns(2), see namespaces(7)); the
//! PID namespace is joined by this process first, so that its child is born inside it.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use sysops::explain::{self, Cmd};

use crate::channel;
use crate::container::{CreateOptions, Runtime};
use crate::dmz::{self, Dmz};
use crate::error::{check, Error, Result};
use crate::init;
use crate::ops::{Linux, Sys};
use crate::seccomp;
use crate::spec::{self, LinuxNamespaceType, Process};
use crate::state::Status;
use crate::sys;

#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `KEY=value` pairs added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    pub pid_file: Option<std::path::PathBuf>,
}

/// The order namespaces are joined in: the mount namespace last, because after it the
/// host's /proc paths are no longer reachable (the fds are opened up front anyway).
const JOIN_ORDER: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

impl Runtime {
    /// Runs a process in a running container's namespaces and root; returns its exit code
    /// (runc's codes when it cannot start: 127 not found, 126 not executable).
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let state = self.load(id)?;
        let status = state.status();
        if status != Status::Running && status != Status::Created {
            return Err(Error::NotRunning(id.into()));
        }
        let spec = spec::load(&self.dir(id), false)?;
        let seccomp = seccomp::for_spec(&spec, &self.dir(id).join("config.json"))?;
        let mut process = spec::process(&spec).clone();
        if opts.args.is_empty() {
            return Err(Error::Init("exec: no command given".into()));
        }
        process.set_args(Some(opts.args.clone()));
        let mut env = spec::env(&process).to_vec();
        for kv in &opts.env {
            init::env_set(&mut env, kv);
        }
        process.set_env(Some(env));
        if let Some(cwd) = &opts.cwd {
            process.set_cwd(cwd.into());
        }

        // Open every namespace of the init up front (pidfd-checked: the PID is still ours).
        let pid = state.oci.pid;
        let _pidfd = sys::pidfd_open(pid)?;
        if !state.alive() {
            return Err(Error::NotRunning(id.into()));
        }
        let open_ns = |kind: LinuxNamespaceType| -> Result<Option<(OwnedFd, String)>> {
            if !spec::has_namespace(&spec, kind) {
                return Ok(None);
            }
            let path = format!("/proc/{pid}/ns/{}", spec::ns_proc_name(kind));
            let f = fs::File::open(&path).map_err(|e| Error::io(Path::new(&path), e))?;
            Ok(Some((f.into(), path)))
        };
        let pid_ns = open_ns(LinuxNamespaceType::Pid)?;
        let mut joins = Vec::new();
        for kind in JOIN_ORDER {
            if let Some((fd, path)) = open_ns(*kind)? {
                joins.push((*kind, fd, path));
            }
        }
        let dmz = Dmz::new()?;

        // Our children (only the one below) are born in the container's PID namespace.
        if let Some((fd, path)) = &pid_ns {
            if explain::enabled() {
                Cmd::new("nsenter")
                    .arg(format!("--target={pid}"))
                    .args(
                        std::iter::once(&LinuxNamespaceType::Pid)
                            .chain(joins.iter().map(|(k, _, _)| k))
                            .map(|k| spec::ns_option(*k)),
                    )
                    .arg("--")
                    .arg("sh")
                    .note("what follows runs in the container's namespaces")
                    .emit();
            }
            // SAFETY: setns on a namespace fd.
            check(
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) },
                || format!("join pid namespace {path}"),
            )?;
        }
        let old_mask = block_signals();
        let (ours, theirs) = sys::socketpair()?;
        if sys::thread_count() != 1 {
            sys::set_sigmask(&old_mask);
            return Err(Error::Init(
                "exec must run in a single-threaded process (it forks)".into(),
            ));
        }
        // SAFETY: single-threaded (checked above).
        let child = unsafe { libc::fork() };
        if child < 0 {
            sys::set_sigmask(&old_mask);
            return Err(Error::last("fork"));
        }
        if child == 0 {
            drop(ours);
            let err = exec_child(&joins, &process, &dmz, seccomp.as_ref(), &theirs);
            let _ = channel::send(&theirs, &channel::error(&err));
            // SAFETY: leave the forked copy without unwinding.
            unsafe { libc::_exit(err.exit_code().max(1)) };
        }
        drop(theirs);
        drop(dmz);
        if let Some(pf) = &opts.pid_file {
            fs::write(pf, child.to_string()).map_err(|e| Error::io(pf, e))?;
        }
        // A NOTIFY seccomp filter's listener comes first, for the agent (seccomp/notify.rs).
        let reply = seccomp::notify::relay(&ours, || {
            let state = serde_json::to_value(state.current()).expect("state serializes");
            seccomp::notify::Agent::of(&spec, state, child)
        });
        drop(ours); // a child still waiting for the agent's ok sees EOF and gives up
        if let Err(e) = reply.and_then(|r| channel::expect_exec(r, &opts.args[0])) {
            // SAFETY: reaping our child.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
            sys::set_sigmask(&old_mask);
            return Err(e);
        }
        let code = sys::wait_forwarding(child);
        sys::set_sigmask(&old_mask);
        Ok(code)
    }

    /// `run`: create, start and (unless `detach`) wait for the container, forwarding
    /// signals, then delete it. Returns the container's exit code.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
        // Block SIGCHLD and the forwarded signals *before* the init exists: a program that
        // exits at once leaves its SIGCHLD pending instead of racing our wait.
        let old_mask = block_signals();
        let result = (|| {
            self.create(id, opts)?;
            if let Err(e) = self.start(id) {
                let _ = self.delete(id, true);
                return Err(e);
            }
            if detach {
                return Ok(0);
            }
            let pid = self.load(id)?.oci.pid;
            let code = sys::wait_forwarding(pid);
            self.delete(id, true)?;
            Ok(code)
        })();
        sys::set_sigmask(&old_mask);
        result
    }
}

fn block_signals() -> libc::sigset_t {
    let mut set = sys::FORWARDED.to_vec();
    set.push(libc::SIGCHLD);
    sys::sigmask(libc::SIG_BLOCK, &set)
}

/// In the forked child: join the namespaces, become the container's user, exec.
fn exec_child(
    joins: &[(LinuxNamespaceType, OwnedFd, String)],
    process: &Process,
    dmz: &Dmz,
    seccomp: Option<&seccomp::Filter>,
    report: &OwnedFd,
) -> Error {
    let run = || -> Result<std::convert::Infallible> {
        dmz::make_non_dumpable()?;
        let sys = &Linux;
        for (kind, fd, path) in joins {
            init::join(sys, fd, *kind, Path::new(path))?;
        }
        sys.chdir(process.cwd())?;
        let env = init::environment(process);
        let args = spec::args(process);
        let program = init::find_executable(&args[0], &env)?;
        let id = init::identity(process)?;
        // The container's filter, at the moment the init loads it (see init step 6).
        init::load_seccomp(seccomp, !id.no_new_privs, report)?;
        sys.set_identity(&id)?;
        init::close_fds_on_exec(0);
        init::reset_signals();
        if explain::enabled() {
            init::render_exec(&id, &program, args, &env).emit();
        }
        init::load_seccomp(seccomp, id.no_new_privs, report)?;
        Err(dmz.exec(report.as_raw_fd(), &program, args, &env))
    };
    match run() {
        Err(e) => e,
    }
}
