//! `exec`: run another process inside a running container, and `run`: create + start +
//! wait in one go.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use crate::container::{CreateOptions, Runtime};
use crate::error::{check, Error, Result};
use crate::explain;
use crate::init;
use crate::spec::{NamespaceKind, Spec};
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
const JOIN_ORDER: &[NamespaceKind] = &[
    NamespaceKind::Ipc,
    NamespaceKind::Uts,
    NamespaceKind::Network,
    NamespaceKind::Cgroup,
    NamespaceKind::Mount,
];

impl Runtime {
    /// Runs a process in a running container's namespaces and root; returns its exit code.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let state = self.load(id)?;
        let status = state.status();
        if status == Status::Paused {
            return Err(Error::WrongState {
                id: id.into(),
                status: "paused",
                what: "resume it before exec",
            });
        }
        if status != Status::Running && status != Status::Created {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.as_str(),
                what: "exec needs a running container",
            });
        }
        let spec = Spec::load(&self.dir(id))?;
        let mut process = spec.process().clone();
        if opts.args.is_empty() {
            return Err(Error::Init("exec: no command given".into()));
        }
        process.args = opts.args.clone();
        for kv in &opts.env {
            let key = kv.split('=').next().unwrap_or(kv);
            process.env.retain(|e| e.split('=').next() != Some(key));
            process.env.push(kv.clone());
        }
        if let Some(cwd) = &opts.cwd {
            process.cwd = cwd.clone();
        }

        // Open every namespace of the init up front (pidfd-checked: the PID is still ours).
        let pid = state.oci.pid;
        let _pidfd = sys::pidfd_open(pid)?;
        if !state.alive() {
            return Err(Error::NotFound(id.into()));
        }
        let open_ns = |kind: NamespaceKind| -> Result<Option<OwnedFd>> {
            if !spec.has_namespace(kind) {
                return Ok(None);
            }
            let path = format!("/proc/{pid}/ns/{}", kind.proc_name());
            let f = fs::File::open(&path).map_err(|e| Error::io(Path::new(&path), e))?;
            Ok(Some(f.into()))
        };
        let pid_ns = open_ns(NamespaceKind::Pid)?;
        // The container's cgroup.procs files, for the child to join by itself.
        let cgroup_join = match &state.cgroup {
            Some(cg) => Some(cg.prepare_join()?),
            None => None,
        };
        let mut joins = Vec::new();
        for kind in JOIN_ORDER {
            if let Some(fd) = open_ns(*kind)? {
                joins.push((*kind, fd));
            }
        }
        let words: Vec<String> = std::iter::once(&NamespaceKind::Pid)
            .filter(|_| pid_ns.is_some())
            .chain(joins.iter().map(|(k, _)| k))
            .map(|k| format!("--{}", k.proc_name()))
            .collect();
        explain!(
            "nsenter --target {pid} {} -- {}",
            words.join(" "),
            process.args.join(" ")
        );

        // Our children (only the one below) are born in the container's PID namespace.
        if let Some(fd) = &pid_ns {
            // SAFETY: setns on a namespace fd.
            check(
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) },
                || "join pid namespace".into(),
            )?;
        }
        let old_mask = block_signals();
        let (ours, theirs) = sys::socketpair()?;
        // SAFETY: minc exec is single-threaded.
        let child = unsafe { libc::fork() };
        if child < 0 {
            sys::set_sigmask(&old_mask);
            return Err(Error::last("fork"));
        }
        if child == 0 {
            drop(ours);
            let err = exec_child(cgroup_join.as_ref(), &joins, &process);
            let _ = sys::send(
                &theirs,
                &[init::MSG_ERROR, err.to_string().as_bytes()].concat(),
            );
            // SAFETY: leave the forked copy without unwinding.
            unsafe { libc::_exit(127) };
        }
        drop(theirs);
        if let Some(j) = &cgroup_join {
            j.explain(child, false);
        }
        if let Some(pf) = &opts.pid_file {
            fs::write(pf, child.to_string()).map_err(|e| Error::io(pf, e))?;
        }
        let reply = sys::recv(&ours).unwrap_or_default();
        if let Some(msg) = reply.strip_prefix(init::MSG_ERROR) {
            // SAFETY: reaping our child.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
            sys::set_sigmask(&old_mask);
            return Err(Error::Init(String::from_utf8_lossy(msg).into_owned()));
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
    cgroup_join: Option<&crate::cgroups::Join>,
    joins: &[(NamespaceKind, OwnedFd)],
    process: &crate::spec::Process,
) -> Error {
    let run = || -> Result<std::convert::Infallible> {
        // Into the container's cgroup first, so everything below is counted and limited.
        if let Some(j) = cgroup_join {
            crate::cgroups::join_self(j.child_files(false))
                .map_err(|e| Error::sys("join the container's cgroup", e))?;
        }
        for (kind, fd) in joins {
            // SAFETY: setns on a namespace fd.
            check(unsafe { libc::setns(fd.as_raw_fd(), kind.flag()) }, || {
                format!("join {} namespace", kind.proc_name())
            })?;
        }
        let cwd = Path::new(&process.cwd);
        std::env::set_current_dir(cwd).map_err(|e| Error::io(cwd, e))?;
        let env = init::environment(process);
        let program = init::find_executable(&process.args[0], &env)?;
        let caps = process.capabilities.clone().unwrap_or_default();
        init::drop_bounding(&caps)?;
        init::set_user(process)?;
        init::set_capabilities(&caps)?;
        if process.no_new_privileges {
            init::set_no_new_privileges()?;
        }
        init::close_fds_on_exec(0);
        init::reset_signals();
        Err(init::exec(&program, &process.args, &env))
    };
    match run() {
        Err(e) => e,
    }
}
