//! The container init: the process `create` clones into the new namespaces. It prepares the
//! rootfs and the process environment, reports `Ready` to `create`, then blocks until `start`
//! connects to its start socket, and finally execs the container's program (through the
//! sealed minc-dmz stub, see `dmz.rs`).
//!
//! Talking to the runtime (typed messages, see `channel.rs`):
//! - `create` (over a SOCK_SEQPACKET socketpair): runtime → init `Go` once the runtime-side
//!   hooks ran; init → runtime `Ready`, or `Error`.
//! - `start` (over the start socket, bound in the state directory before the clone): start →
//!   init `Start`; init → start nothing on success (the connection is close-on-exec, so the
//!   program's successful execve closes it), or `Error` / `ExecFailed`.

pub mod console;
mod mount_options;
mod process;
mod rootfs;

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use sysops::explain::{self, Cmd};

use crate::channel::{self, Msg};
use crate::dmz::{self, Dmz};
use crate::error::{Error, Result};
use crate::hooks;
use crate::ops::{Linux, Stdio, Sys};
use crate::pty;
use crate::spec::{self, LinuxNamespaceType, Spec};

pub use mount_options::{parse as mount_options, KNOWN as KNOWN_MOUNT_OPTIONS};
pub use process::{
    attributes, close_fds_on_exec, env_get, env_set, environment, find_executable, identity,
    reset_signals, rlimits, DEFAULT_PATH,
};

/// What the init needs; it lives in the memory the clone copied from `create`.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    /// The init's end of the socketpair to `create`.
    pub sock: OwnedFd,
    /// The listening start socket.
    pub listener: OwnedFd,
    /// The sealed exec stub.
    pub dmz: &'a Dmz,
    /// Extra descriptors (after stdio) handed to the container, like runc's --preserve-fds.
    pub preserve_fds: u32,
    /// Replacement stdin, stdout, stderr.
    pub stdio: Option<[RawFd; 3]>,
    /// The compiled `linux.seccomp` filter (compiled by `create` before the clone).
    pub seccomp: Option<&'a crate::seccomp::Filter>,
    /// The idmapped mounts `create` prepared, by index in the spec's mounts.
    pub idmapped: &'a [Option<crate::ops::mount::Idmapped>],
    /// The terminal's size when `process.terminal` is set (the spec's consoleSize, or the
    /// caller's own terminal size when minc relays the terminal).
    pub console_size: Option<pty::Size>,
    /// Let go of `create`'s stdin, stdout and stderr once prepared: the terminal went to a
    /// console socket, and clients (containerd's go-runc) wait for EOF on the pipes they gave
    /// `create` before they call `start` (runc's init never holds them either).
    pub release_stdio: bool,
}

/// Runs the init; never returns. Any error goes back to whoever is waiting (create, or start
/// once it connected) as one message.
pub fn main(args: InitArgs) -> ! {
    let mut report_to = None;
    let Err(e) = run(&args, &mut report_to);
    let _ = channel::send(
        report_to.as_ref().unwrap_or(&args.sock),
        &channel::error(&e),
    );
    // SAFETY: leaving without running destructors or atexit handlers of the parent's copy.
    unsafe { libc::_exit(1) }
}

fn run(a: &InitArgs, report_to: &mut Option<OwnedFd>) -> Result<Infallible> {
    let sys = &Linux;
    let spec = a.spec;
    let process = spec::process(spec);
    // A session of its own: the container never shares the caller's terminal session.
    sys.setsid()?;
    let null = match a.release_stdio {
        true => Some(
            std::fs::File::open("/dev/null").map_err(|e| Error::io(Path::new("/dev/null"), e))?,
        ),
        false => None,
    };

    // 1. Wait for the runtime's go-ahead (after its prestart/createRuntime hooks).
    let state = match channel::recv(&a.sock)? {
        Some(Msg::Go { state }) => serde_json::to_vec(&state).expect("state serializes"),
        _ => {
            return Err(Error::Init(
                "runtime went away before the container was set up".into(),
            ))
        }
    };

    // In a new user and mount namespace, what the init reaches on the host by path is
    // opened now, while it still has its creator's access (rootfs::HostSide).
    let new_mount_ns = spec::namespaces(spec)
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount && n.path().is_none());
    let mut host = None;
    if crate::userns::new_userns(spec) && new_mount_ns {
        host = Some(rootfs::open_host_side(sys, spec, a.rootfs, a.bundle)?);
    }
    // The parent wrote our uid and gid maps before Go (that needs us dumpable when it is
    // not root): become root of the user namespace.
    if crate::userns::new_userns(spec) {
        crate::userns::become_root()?;
    }
    // Before anything touches the container: nothing in it may open this process's /proc
    // files (its exe is the host's minc). Until now no process could be in the container.
    dmz::make_non_dumpable()?;

    // The cgroup namespace: `create` has put us in our cgroup, so a new namespace is rooted
    // there (cgroup_namespaces(7)).
    if spec::namespaces(spec)
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Cgroup && n.path().is_none())
    {
        sys.unshare(libc::CLONE_NEWCGROUP)?;
    }

    // 2. Namespaces given by path are joined (the new ones came with the clone; the PID
    //    namespace was joined around the clone itself).
    //    A user namespace the init was cloned inside of is joined already.
    let inside = crate::userns::clone_inside_of(spec).is_some();
    //    The user namespace first: the others' owners decide what the init may do in them.
    let mut order: Vec<_> = spec::namespaces(spec).iter().collect();
    order.sort_by_key(|n| n.typ() != LinuxNamespaceType::User);
    for ns in order {
        let done = match ns.typ() {
            LinuxNamespaceType::Pid => true,
            LinuxNamespaceType::User => inside,
            _ => false,
        };
        if let (Some(path), false) = (ns.path(), done) {
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            sys.setns(f.as_fd(), spec::ns_flag(ns.typ()), path)?;
        }
    }

    // 3. The root filesystem.
    let has_mount_ns = spec::has_namespace(spec, LinuxNamespaceType::Mount);
    if has_mount_ns {
        if host.is_none() {
            host = Some(rootfs::open_host_side(sys, spec, a.rootfs, a.bundle)?);
        }
        rootfs::prepare(sys, spec, host.as_ref().expect("just set"), a.idmapped)?;
    }
    // Without a process (allowed until start), only the container's environment is made.
    let runs = spec.process().is_some();
    if let Some(adj) = process.oom_score_adj() {
        sys.write_file(Path::new("/proc/self/oom_score_adj"), &adj.to_string())?;
    }
    // Hooks without an env of their own get the container process's, as with runc.
    let hook_env = spec::env(process).to_vec();
    hooks::run_stage(
        "createContainer",
        spec.hooks()
            .as_ref()
            .and_then(|h| h.create_container().as_deref()),
        &state,
        Some(&hook_env),
    )?;
    for r in rlimits(process)? {
        sys.setrlimit(&r)?;
    }
    for attr in attributes(spec)?.iter().filter(|_| runs) {
        sys.set_attr(attr)?;
    }
    if let Some(h) = host.as_ref().filter(|_| has_mount_ns) {
        rootfs::pivot_root(sys, spec, &h.rootfs())?;
    } else {
        sys.chroot(a.rootfs)?;
    }
    if let Some(sysctls) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = sysctls.iter().collect();
        keys.sort();
        for (key, value) in keys {
            rootfs::sysctl(sys, key, value)?;
        }
    }
    // The terminal, from the container's own /dev/pts (runc: after the mounts, before the
    // rootfs is finalized); its master goes to `create` now.
    let tty = match process.terminal() {
        Some(true) => Some(console::open(
            sys,
            &a.sock,
            a.console_size,
            process.user().uid(),
            has_mount_ns,
        )?),
        _ => None,
    };
    let (masked, readonly) = rootfs::linux_paths(spec);
    rootfs::mask_paths(sys, &masked)?;
    rootfs::readonly_paths(sys, &readonly)?;

    // 4. Identity of the machine and of the process.
    if spec.hostname().is_some() || spec.domainname().is_some() {
        if !spec::has_namespace(spec, LinuxNamespaceType::Uts) {
            return Err(Error::Init(
                "hostname or domainname set without a uts namespace".into(),
            ));
        }
        if let Some(h) = spec.hostname() {
            sys.sethostname(h)?;
        }
        if let Some(d) = spec.domainname() {
            sys.setdomainname(d)?;
        }
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) && !runs {
        rootfs::readonly_root(sys)?;
    }
    if !runs {
        return no_process(a, report_to);
    }
    let cwd = process.cwd();
    if !cwd.exists() {
        sys.mkdir_all(cwd, 0o755)?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::readonly_root(sys)?;
    }
    sys.chdir(cwd)?;
    let env = environment(process); // after pivot_root: HOME from the container's passwd
    let args = spec::args(process);
    let program = find_executable(&args[0], &env)?;
    let id = identity(process)?;
    close_fds_on_exec(a.preserve_fds);
    if let Some(null) = &null {
        explain::comment("create's stdin, stdout and stderr are let go: the console socket's client owns the terminal");
        sys.set_stdio(&Stdio::Fds([null.as_raw_fd(); 3]))?;
    }

    // 5. Ready: wait for `start`.
    channel::send(&a.sock, &Msg::Ready)?;
    let conn = accept(&a.listener)?;
    let state = match channel::recv(&conn)? {
        Some(Msg::Start { state }) => serde_json::to_vec(&state).expect("state serializes"),
        _ => return Err(Error::Init("start went away".into())),
    };
    *report_to = Some(conn);
    let conn = report_to.as_ref().expect("just set");
    hooks::run_stage(
        "startContainer",
        spec.hooks()
            .as_ref()
            .and_then(|h| h.start_container().as_deref()),
        &state,
        Some(&hook_env),
    )?;

    // 6. Become the container's process. Without no_new_privs, loading the seccomp filter
    // needs CAP_SYS_ADMIN, so it comes before the capabilities go (runc's order); with it,
    // the filter is the last step before the exec.
    load_seccomp(a.seccomp, !id.no_new_privs, conn)?;
    sys.set_identity(&id)?;
    // The container's own stdio last, so the init's --explain lines and errors go to the
    // runtime's stderr, not into the container's log or terminal (which is why the exec
    // line is rendered just before the dup2s it follows).
    let stdio = match (&tty, a.stdio) {
        (Some(t), _) => Some(Stdio::Pty(t)),
        (None, Some(fds)) => Some(Stdio::Fds(fds)),
        (None, None) => None,
    };
    if explain::enabled() {
        explain_exec(&id, &program, args, &env, stdio.as_ref());
    }
    if let Some(s) = &stdio {
        sys.set_stdio(s)?;
    }
    reset_signals();
    load_seccomp(a.seccomp, id.no_new_privs, conn)?;
    Err(a.dmz.exec(conn.as_raw_fd(), &program, args, &env))
}

/// A container created without a process: ready like any other, and `start` is told there
/// is nothing to run (the spec: start MUST generate an error if process was not set).
fn no_process(a: &InitArgs, report_to: &mut Option<OwnedFd>) -> Result<Infallible> {
    close_fds_on_exec(a.preserve_fds);
    channel::send(&a.sock, &Msg::Ready)?;
    let conn = accept(&a.listener)?;
    match channel::recv(&conn)? {
        Some(Msg::Start { .. }) => {}
        _ => return Err(Error::Init("start went away".into())),
    }
    *report_to = Some(conn);
    Err(Error::Init(
        "config.json has no process: there is nothing to start".into(),
    ))
}

/// Loads the container's seccomp filter when `now` (explained as a comment: no shell
/// command loads one). A NOTIFY filter's listener goes to the runtime over `runtime`.
pub fn load_seccomp(
    filter: Option<&crate::seccomp::Filter>,
    now: bool,
    runtime: &OwnedFd,
) -> Result<()> {
    match filter {
        Some(f) if now => {
            f.explain();
            crate::seccomp::notify::load(Some(f), runtime)
        }
        _ => Ok(()),
    }
}

/// The last line of a transcript: `exec setpriv ... -- env -i K=V ... PROGRAM ARGS`, with the
/// terminal as redirections (`<PTY >PTY 2>&1`), or after a comment for other stdio.
pub fn explain_exec(
    id: &crate::ops::Identity,
    program: &Path,
    args: &[String],
    env: &[String],
    stdio: Option<&Stdio>,
) {
    let mut words = vec!["exec".to_string()];
    words.extend(id.render_setpriv().words().iter().cloned());
    words.extend(["--", "env", "-i"].map(String::from));
    words.extend(env.iter().cloned());
    words.push(program.display().to_string());
    words.extend(args.iter().skip(1).cloned());
    let mut cmd = Cmd::new(&words[0]).args(&words[1..]);
    match stdio {
        Some(Stdio::Pty(tty)) => {
            let q = explain::quote(&tty.path.to_string_lossy()).into_owned();
            cmd = cmd
                .raw_arg(&format!("<{q}"))
                .raw_arg(&format!(">{q}"))
                .raw_arg("2>&1");
        }
        Some(Stdio::Fds(_)) => {
            explain::comment("the container's stdin, stdout and stderr are set (dup2)")
        }
        None => {}
    }
    cmd.note("minc execs it through its sealed minc-dmz stub")
        .emit();
}

fn accept(listener: &OwnedFd) -> Result<OwnedFd> {
    loop {
        // SAFETY: accept on a listening socket; new fd is close-on-exec.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            // SAFETY: fresh fd.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::sys("wait for start", e));
        }
    }
}

/// Joins `fd`'s namespace, for the exec helper (which is not the init).
pub fn join(sys: &dyn Sys, fd: &OwnedFd, kind: LinuxNamespaceType, path: &Path) -> Result<()> {
    sys.setns(fd.as_fd(), spec::ns_flag(kind), path)
}
