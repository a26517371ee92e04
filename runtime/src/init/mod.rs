//! The container init: the process `create` clones into the new namespaces. It prepares the
//! rootfs and the process environment, reports "ready" to `create`, then blocks until `start`
//! connects to its start socket, and finally `execve`s the container's program.
//!
//! Talking to the runtime:
//! - `create` (over a SOCK_SEQPACKET socketpair): runtime → init `go` + state JSON once the
//!   runtime-side hooks ran; init → runtime `ready`, or `error` + message.
//! - `start` (over the start socket, bound in the state directory before the clone): start →
//!   init state JSON; init → start nothing on success (the connection is close-on-exec, so a
//!   successful execve closes it), or an error message if a hook or the execve failed.

mod mount_options;
mod process;
mod rootfs;

use std::convert::Infallible;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::error::{check, Error, Result};
use crate::explain;
use crate::hooks;
use crate::spec::{NamespaceKind, Spec};
use crate::sys;

pub(crate) use process::{
    close_fds_on_exec, drop_bounding, exec, reset_signals, set_capabilities, set_no_new_privileges,
    set_user,
};
pub use process::{env_get, environment, find_executable};

pub const MSG_READY: &[u8] = b"ready";
pub const MSG_ERROR: &[u8] = b"error\0";

/// What the init needs; it lives in the memory the clone copied from `create`.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    /// The init's end of the socketpair to `create`.
    pub sock: OwnedFd,
    /// The listening start socket.
    pub listener: OwnedFd,
    /// Extra descriptors (after stdio) handed to the container, like runc's --preserve-fds.
    pub preserve_fds: u32,
    /// Replacement stdin, stdout, stderr.
    pub stdio: Option<[RawFd; 3]>,
}

/// Runs the init; never returns. Any error goes back to whoever is waiting (create, or start
/// once it connected) as one line.
pub fn main(args: InitArgs) -> ! {
    let mut report_to = None;
    let Err(e) = run(&args, &mut report_to);
    let msg = [MSG_ERROR, e.to_string().as_bytes()].concat();
    let _ = sys::send(report_to.as_ref().unwrap_or(&args.sock), &msg);
    // SAFETY: leaving without running destructors or atexit handlers of the parent's copy.
    unsafe { libc::_exit(1) }
}

fn run(a: &InitArgs, report_to: &mut Option<OwnedFd>) -> Result<Infallible> {
    let spec = a.spec;
    let process = spec.process();
    let linux = spec.linux.clone().unwrap_or_default();

    // 1. Wait for the runtime's go-ahead (after its prestart/createRuntime hooks).
    let go = sys::recv(&a.sock).map_err(|e| Error::sys("read from runtime", e))?;
    let state = go
        .strip_prefix(b"go".as_slice())
        .ok_or_else(|| Error::Init("runtime went away before the container was set up".into()))?
        .to_vec();

    // The cgroup namespace: `create` has put us in our cgroup, so a new namespace is rooted
    // there (cgroup_namespaces(7)).
    if spec
        .namespaces()
        .iter()
        .any(|n| n.kind == NamespaceKind::Cgroup && n.path.is_none())
    {
        explain!("unshare --cgroup   # rooted at the container's cgroup");
        // SAFETY: unshare of the cgroup namespace only.
        check(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) }, || {
            "unshare cgroup namespace".into()
        })?;
    }

    // 2. Namespaces given by path are joined (the new ones came with the clone).
    for ns in spec.namespaces() {
        if let (Some(path), false) = (&ns.path, ns.kind == NamespaceKind::Pid) {
            join_namespace(path, ns.kind)?;
        }
    }

    // 3. The root filesystem.
    let has_mount_ns = spec.has_namespace(NamespaceKind::Mount);
    if has_mount_ns {
        rootfs::prepare(spec, a.rootfs, a.bundle)?;
    }
    if let Some(adj) = process.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| Error::sys("oom_score_adj", e))?;
    }
    hooks::run("createContainer", &spec.hooks().create_container, &state)?;
    if has_mount_ns {
        rootfs::pivot_root(a.rootfs)?;
    } else {
        rootfs::chroot(a.rootfs)?;
    }
    for (key, value) in &linux.sysctl {
        rootfs::sysctl(key, value)?;
    }
    rootfs::mask_paths(&linux.masked_paths)?;
    rootfs::readonly_paths(&linux.readonly_paths)?;

    // 4. Identity and limits.
    if spec.hostname.is_some() || spec.domainname.is_some() {
        if !spec.has_namespace(NamespaceKind::Uts) {
            return Err(Error::Init(
                "hostname or domainname set without a uts namespace".into(),
            ));
        }
        rootfs::set_uts(spec.hostname.as_deref(), spec.domainname.as_deref())?;
    }
    process::set_rlimits(&process.rlimits)?;
    let cwd = Path::new(&process.cwd);
    if !cwd.exists() {
        std::fs::create_dir_all(cwd).map_err(|e| Error::io(cwd, e))?;
    }
    if spec.root.as_ref().is_some_and(|r| r.readonly) {
        rootfs::readonly_root()?;
    }
    std::env::set_current_dir(cwd).map_err(|e| Error::io(cwd, e))?;
    let env = process::environment(process);
    let program = process::find_executable(&process.args[0], &env)?;
    close_fds_on_exec(a.preserve_fds);

    // 5. Ready: wait for `start`.
    sys::send(&a.sock, MSG_READY).map_err(|e| Error::sys("report ready", e))?;
    let conn = accept(&a.listener)?;
    let state = sys::recv(&conn).map_err(|e| Error::sys("read from start", e))?;
    *report_to = Some(conn);
    hooks::run("startContainer", &spec.hooks().start_container, &state)?;

    // 6. Become the container's process.
    drop_bounding(&process.capabilities.clone().unwrap_or_default())?;
    set_user(process)?;
    set_capabilities(&process.capabilities.clone().unwrap_or_default())?;
    if process.no_new_privileges {
        set_no_new_privileges()?;
    }
    explain!("exec {}", process.args.join(" "));
    // The container's own stdio last, so the init's --explain lines and errors go to the
    // runtime's stderr, not into the container's log.
    if let Some(fds) = a.stdio {
        for (target, fd) in fds.into_iter().enumerate() {
            // SAFETY: dup2 onto our own stdio descriptors.
            check(unsafe { libc::dup2(fd, target as i32) }, || {
                "set up stdio".into()
            })?;
        }
    }
    reset_signals();
    Err(exec(&program, &process.args, &env))
}

fn join_namespace(path: &Path, kind: NamespaceKind) -> Result<()> {
    explain!("nsenter --{}={}", kind.proc_name(), path.display());
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: setns on a namespace fd.
    check(unsafe { libc::setns(f.as_raw_fd(), kind.flag()) }, || {
        format!("join {} namespace {}", kind.proc_name(), path.display())
    })
    .map(|_| ())
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
