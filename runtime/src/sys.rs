//! Thin, safe-ish wrappers over the system calls the runtime needs that `nix` does not cover
//! the way we want (clone with namespace flags and fork semantics, pidfd, mount_setattr).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::error::{check, Error, Result};

/// `clone(flags | SIGCHLD)` with fork semantics (no new stack, copy-on-write memory): the
/// child starts life inside the new namespaces, and with CLONE_NEWPID it is PID 1 there,
/// without changing the parent's own PID namespace for children it forks later (hooks).
/// Returns 0 in the child and the child's PID in the parent.
///
/// # Safety
/// Like fork(2): the process must be single-threaded, and the child should only do
/// async-signal-safe work or exec (minc calls this before any thread exists).
pub unsafe fn clone_fork(flags: libc::c_int) -> Result<i32> {
    // SAFETY: raw clone without CLONE_VM behaves as fork; arguments are stack=0, no tids.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if ret < 0 {
        return Err(Error::last("clone"));
    }
    Ok(ret as i32)
}

/// Like [`clone_fork`], with clone3(2)'s CLONE_INTO_CGROUP: the child is born in the v2
/// cgroup `cgroup_fd` (an open cgroup2 directory), so nobody has to move it there later
/// (a move takes a global lock whose first write waits for an RCU grace period, ~10 ms).
/// `Err` with ENOSYS, E2BIG or EINVAL when the kernel cannot do it (clone3 needs 5.7).
///
/// # Safety
/// As [`clone_fork`].
pub unsafe fn clone3_into_cgroup(flags: libc::c_int, cgroup_fd: RawFd) -> std::io::Result<i32> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // struct clone_args (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid,
    // exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let mut args = [0u64; 11];
    args[0] = flags as u32 as u64 | CLONE_INTO_CGROUP;
    args[4] = libc::SIGCHLD as u64;
    args[10] = cgroup_fd as u64;
    // SAFETY: clone3 with no stack behaves as fork; args lives across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args.as_mut_ptr(),
            std::mem::size_of_val(&args),
        )
    };
    if ret < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ret as i32)
}

/// Opens a pidfd for a process (any process, not only our children): it can be polled for
/// exit and used to send signals without racing PID reuse.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: plain syscall returning an fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(Error::last(format!("pidfd_open {pid}")));
    }
    // SAFETY: fd is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sends a signal through a pidfd.
pub fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: valid pidfd, null siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits until the process behind a pidfd exits, up to `timeout_ms` (-1 = forever).
/// Returns true if it exited.
pub fn pidfd_wait(pidfd: &OwnedFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        return r > 0;
    }
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::new("?").unwrap())
}

pub fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new("?").unwrap())
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: u32 = 0x8000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes a mount read-only, with `recursive` every mount below it too, in one call
/// (mount_setattr, Linux 5.12); `MS_REMOUNT|MS_RDONLY` would only cover the top mount.
pub fn make_readonly_recursive(path: &Path, recursive: bool) -> Result<()> {
    let c = cstr(path);
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path and attr struct of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            if recursive { AT_RECURSIVE } else { 0 },
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(r as i32, || format!("make {} read-only", path.display())).map(|_| ())
}

/// Blocks or unblocks a set of signals for this thread; returns the previous mask.
pub fn sigmask(how: libc::c_int, signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset manipulation on local values.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(how, &set, &mut old);
        old
    }
}

/// Restores a mask saved by `sigmask`.
pub fn set_sigmask(mask: &libc::sigset_t) {
    // SAFETY: mask came from pthread_sigmask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, mask, std::ptr::null_mut());
    }
}

/// The signals `run` and `exec` forward to the container process while they wait.
pub const FORWARDED: &[i32] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Waits for `pid` (our child) to exit while forwarding signals to it. SIGCHLD and the
/// forwarded signals must already be blocked (before the child was spawned), so a child that
/// exits at once cannot be missed: its SIGCHLD stays pending until sigwaitinfo takes it.
/// Returns the exit code the way a shell reports it (128+N for a signal). A second SIGINT
/// (Ctrl-C twice) sends SIGKILL.
pub fn wait_forwarding(pid: i32) -> i32 {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: local sigset.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for s in FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
    }
    let mut interrupts = 0;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return exit_code(status);
        }
        if r < 0 {
            return 255;
        }
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid set and out-pointer.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig > 0 && sig != libc::SIGCHLD {
            // A PID 1 without a handler ignores SIGINT: a second Ctrl-C kills it.
            interrupts += u32::from(sig == libc::SIGINT);
            let sig = if interrupts >= 2 { libc::SIGKILL } else { sig };
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// A wait status as a shell exit code.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Parses a signal given as a name (`TERM`, `SIGTERM`, `sigkill`) or a number (`9`).
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => {
            let rt = name.strip_prefix("RTMIN")?;
            let off: i32 = if rt.is_empty() {
                0
            } else {
                rt.trim_start_matches('+').parse().ok()?
            };
            let n = libc::SIGRTMIN() + off;
            return (n <= libc::SIGRTMAX()).then_some(n);
        }
    };
    Some(n)
}

/// Creates a connected pair of SOCK_SEQPACKET sockets (close-on-exec): message boundaries are
/// kept, and a peer that dies shows up as EOF.
pub fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out array.
    check(
        unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        },
        || "socketpair".into(),
    )?;
    // SAFETY: fresh fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message on a seqpacket socket.
pub fn send(fd: &OwnedFd, msg: &[u8]) -> std::io::Result<()> {
    // SAFETY: valid buffer.
    let r = unsafe {
        libc::send(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Receives one message (empty = peer closed).
pub fn recv(fd: &OwnedFd) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: valid buffer.
        let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        buf.truncate(r as usize);
        return Ok(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("99"), None);
    }
}
