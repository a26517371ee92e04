//! `exec`: run another process inside a running container, and `run`: create + start +
//! wait in one go.
//!
//! The exec'd process joins the container's namespaces (setns(2), see namespaces(7)); the
//! PID namespace is joined by this process first, so that its child is born inside it. It
//! gets the process of config.json (or of an `exec --process` file) with runc's overrides:
//! its capabilities, rlimits, no_new_privs and user, in a session of its own, and with
//! `terminal` a pty from the container's /dev/pts (see `init::console`). Foreground runs
//! and execs carry their I/O through `relay`.

use std::fs;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use sysops::explain::{self, Cmd};

use crate::channel;
use crate::console;
use crate::container::{check_terminal, write_pid_file, CreateOptions, Runtime};
use crate::dmz::{self, Dmz};
use crate::error::{check, Error, Result};
use crate::init;
use crate::ops::{Linux, Stdio, Sys};
use crate::pty;
use crate::relay::{self, Io};
use crate::seccomp;
use crate::spec::{self, LinuxNamespaceType, Process};
use crate::state::Status;
use crate::sys;

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The whole process: config.json's with the command line's overrides
    /// ([`process_with`]), or an `exec --process` file.
    pub process: Process,
    /// runc's `--console-socket`: where the pty master goes (with `--detach`).
    pub console_socket: Option<PathBuf>,
    /// Return once the process runs (runc's `--detach`); it is then not our child to wait.
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    /// Pass fds 3..3+N on to the process.
    pub preserve_fds: u32,
    /// What a foreground process reads (ours, or /dev/null: Docker's exec without -i).
    pub stdin: relay::Stdin,
    /// runc's `--ignore-paused`: exec into a paused container too. The process joins the
    /// frozen cgroup, so it starts (and `exec` returns) only once the container is resumed.
    pub ignore_paused: bool,
}

/// runc's `exec` flags that change config.json's process.
#[derive(Debug, Default, Clone)]
pub struct ProcessFlags {
    pub args: Vec<String>,
    /// `KEY=value` pairs added to (or replacing in) the environment.
    pub env: Vec<String>,
    pub cwd: Option<String>,
    /// `--user UID[:GID]`.
    pub user: Option<(u32, Option<u32>)>,
    pub additional_gids: Vec<u32>,
    /// `--cap`: added to the bounding, effective and permitted sets (and ambient when the
    /// process has inheritable capabilities), as runc does.
    pub caps: Vec<String>,
    pub no_new_privs: Option<bool>,
    pub tty: bool,
}

/// config.json's `process` with runc's `exec` overrides applied (runc's getProcess).
pub fn process_with(base: &Process, f: &ProcessFlags) -> Result<Process> {
    use oci_spec::runtime::{Capability, LinuxCapabilities};
    let mut p = base.clone();
    if f.args.is_empty() {
        return Err(Error::Init("exec: no command given".into()));
    }
    p.set_args(Some(f.args.clone()));
    let mut env = spec::env(&p).to_vec();
    for kv in &f.env {
        init::env_set(&mut env, kv);
    }
    p.set_env(Some(env));
    if let Some(cwd) = &f.cwd {
        if !Path::new(cwd).is_absolute() {
            return Err(Error::Init(format!("--cwd {cwd:?}: not an absolute path")));
        }
        p.set_cwd(cwd.into());
    }
    let mut user = p.user().clone();
    if let Some((uid, gid)) = f.user {
        user.set_uid(uid);
        if let Some(g) = gid {
            user.set_gid(g);
        }
    }
    if !f.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&f.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if !f.caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_else(|| {
            let mut none = LinuxCapabilities::default();
            for set in [
                LinuxCapabilities::set_bounding,
                LinuxCapabilities::set_effective,
                LinuxCapabilities::set_permitted,
                LinuxCapabilities::set_inheritable,
                LinuxCapabilities::set_ambient,
            ] {
                set(&mut none, None);
            }
            none
        });
        let has_inheritable = c.inheritable().as_ref().is_some_and(|i| !i.is_empty());
        for name in &f.caps {
            // oci-spec parses the name without its CAP_ prefix (its JSON form has it).
            let up = name.to_ascii_uppercase();
            let cap: Capability = up
                .strip_prefix("CAP_")
                .unwrap_or(&up)
                .parse()
                .map_err(|_| Error::Init(format!("--cap {name}: unknown capability")))?;
            let add = |set: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            c.set_bounding(add(c.bounding()));
            c.set_effective(add(c.effective()));
            c.set_permitted(add(c.permitted()));
            if has_inheritable {
                c.set_ambient(add(c.ambient()));
            }
        }
        p.set_capabilities(Some(c));
    }
    if let Some(nnp) = f.no_new_privs {
        p.set_no_new_privileges(Some(nnp));
    }
    // Like runc: the terminal is what the command line says, never config.json's.
    p.set_terminal(Some(f.tty));
    Ok(p)
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
    /// (runc's codes when it cannot start: 127 not found, 126 not executable), or 0 at once
    /// with `detach`.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let state = self.load(id)?;
        let status = state.status();
        if status == Status::Paused && !opts.ignore_paused {
            return Err(Error::WrongState {
                id: id.into(),
                status: "paused",
                what: "resume it before exec",
            });
        }
        if !matches!(status, Status::Running | Status::Created | Status::Paused) {
            return Err(Error::NotRunning(id.into()));
        }
        let spec = spec::load(&self.dir(id), false)?;
        let seccomp = seccomp::for_spec(&spec, &self.dir(id).join("config.json"))?;
        let process = &opts.process;
        if spec::args(process).is_empty() {
            return Err(Error::Init("exec: no command given".into()));
        }
        let terminal = process.terminal() == Some(true);
        check_terminal(terminal, opts.console_socket.as_deref(), !opts.detach)?;
        if !opts.detach && opts.console_socket.is_some() {
            return Err(Error::Init(
                "--console-socket is only for a detached exec (--detach): without it, minc relays the terminal itself".into(),
            ));
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
        // The container's cgroup.procs files, for the child to join by itself.
        let cgroup_join = match &state.cgroup {
            Some(cg) => Some(cg.prepare_join()?),
            None => None,
        };
        let mut joins = Vec::new();
        for kind in JOIN_ORDER {
            if let Some((fd, path)) = open_ns(*kind)? {
                joins.push((*kind, fd, path));
            }
        }
        let dmz = Dmz::new()?;
        // The process's stdio: ours as they are when detached (the client's pipes), with
        // terminals shielded in the foreground.
        let io = if opts.detach || terminal {
            Io::inherit()
        } else {
            Io::shielded(opts.stdin)?
        };
        let child_opts = ChildOptions {
            console_size: match (terminal, opts.detach) {
                (true, false) => Io::caller_size().or_else(|| init::console::spec_size(process)),
                (true, true) => init::console::spec_size(process),
                _ => None,
            },
            stdio: io.container_fds(),
            preserve_fds: opts.preserve_fds,
        };

        if let Some(j) = &cgroup_join {
            j.explain();
        }
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
                    .args(["--", "setsid", "sh"])
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
            let err = exec_child(
                cgroup_join.as_ref(),
                &joins,
                process,
                &dmz,
                seccomp.as_ref(),
                &theirs,
                &child_opts,
            );
            let _ = channel::send(&theirs, &channel::error(&err));
            // SAFETY: leave the forked copy without unwinding.
            unsafe { libc::_exit(err.exit_code().max(1)) };
        }
        drop(theirs);
        drop(dmz);
        let result = (|| {
            // The terminal's master, and a NOTIFY seccomp filter's listener for its agent.
            let agent = || {
                let state = serde_json::to_value(state.current()).expect("state serializes");
                seccomp::notify::Agent::of(&spec, state, child)
            };
            let (reply, master) = console::receive(&ours, opts.console_socket.as_deref(), agent)
                .unwrap_or((None, None));
            channel::expect_exec(reply, &spec::args(process)[0])?;
            if let Some(pf) = &opts.pid_file {
                write_pid_file(pf, child)?;
            }
            Ok(master)
        })();
        let master = match result {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: killing and reaping our child.
                unsafe {
                    libc::kill(child, libc::SIGKILL);
                    libc::waitpid(child, std::ptr::null_mut(), 0);
                }
                sys::set_sigmask(&old_mask);
                return Err(e);
            }
        };
        if opts.detach {
            sys::set_sigmask(&old_mask);
            return Ok(0);
        }
        let io = match master {
            Some(m) => Io::terminal(m, opts.stdin == relay::Stdin::Ours)?,
            None => io,
        };
        let code = io.wait(child);
        sys::set_sigmask(&old_mask);
        Ok(code)
    }

    /// `run`: create, start and (unless `detach`) wait for the container, forwarding
    /// signals and relaying its terminal or shielded stdio, then delete it (unless `keep`).
    /// Returns the container's exit code.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool, keep: bool) -> Result<i32> {
        if !detach && opts.console_socket.is_some() {
            return Err(Error::Init(
                "--console-socket is only for a detached run (-d): without it, minc relays the terminal itself".into(),
            ));
        }
        // Block SIGCHLD and the forwarded signals *before* the init exists: a program that
        // exits at once leaves its SIGCHLD pending instead of racing our wait.
        let old_mask = block_signals();
        let result = (|| {
            let mut opts = opts.clone();
            let mut io = Io::inherit();
            let master = if detach {
                self.create(id, &opts)?;
                None
            } else {
                if opts.stdio.is_none() {
                    io = Io::shielded(relay::Stdin::Ours)?;
                    opts.stdio = io.container_fds();
                }
                opts.console_size = opts.console_size.or_else(Io::caller_size);
                self.create_with_terminal(id, &opts)?.1
            };
            if let Err(e) = self.start(id) {
                let _ = self.delete(id, true);
                return Err(e);
            }
            if detach {
                return Ok(0);
            }
            if let Some(m) = master {
                io = Io::terminal(m, true)?;
            }
            let pid = self.load(id)?.oci.pid;
            let code = io.wait(pid);
            if !keep {
                self.delete(id, true)?;
            }
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

/// What the exec helper needs besides the process.
struct ChildOptions {
    console_size: Option<pty::Size>,
    stdio: Option<[RawFd; 3]>,
    preserve_fds: u32,
}

/// In the forked child: join the namespaces, take a session (and the terminal), become the
/// container's user, exec.
fn exec_child(
    cgroup_join: Option<&crate::cgroups::Join>,
    joins: &[(LinuxNamespaceType, OwnedFd, String)],
    process: &Process,
    dmz: &Dmz,
    seccomp: Option<&seccomp::Filter>,
    report: &OwnedFd,
    o: &ChildOptions,
) -> Error {
    let run = || -> Result<std::convert::Infallible> {
        // Into the container's cgroup first, so everything below is counted and limited.
        if let Some(j) = cgroup_join {
            crate::cgroups::join_self(j.child_files(false))
                .map_err(|e| Error::sys("join the container's cgroup", e))?;
        }
        dmz::make_non_dumpable()?;
        let sys = &Linux;
        for (kind, fd, path) in joins {
            init::join(sys, fd, *kind, Path::new(path))?;
        }
        sys.setsid()?;
        sys.chdir(process.cwd())?;
        let env = init::environment(process);
        let args = spec::args(process);
        let program = init::find_executable(&args[0], &env)?;
        let id = init::identity(process)?;
        for r in init::rlimits(process)? {
            sys.setrlimit(&r)?;
        }
        let tty = match process.terminal() {
            Some(true) => Some(init::console::open(
                sys,
                report,
                o.console_size,
                process.user().uid(),
                false,
            )?),
            _ => None,
        };
        init::close_fds_on_exec(o.preserve_fds);
        // The container's filter, at the moment the init loads it (see init step 6).
        init::load_seccomp(seccomp, !id.no_new_privs, report)?;
        sys.set_identity(&id)?;
        let stdio = match (&tty, o.stdio) {
            (Some(t), _) => Some(Stdio::Pty(t)),
            (None, Some(fds)) => Some(Stdio::Fds(fds)),
            (None, None) => None,
        };
        if explain::enabled() {
            init::explain_exec(&id, &program, args, &env, stdio.as_ref());
        }
        if let Some(s) = &stdio {
            sys.set_stdio(s)?;
        }
        init::reset_signals();
        init::load_seccomp(seccomp, id.no_new_privs, report)?;
        Err(dmz.exec(report.as_raw_fd(), &program, args, &env))
    };
    match run() {
        Err(e) => e,
    }
}
