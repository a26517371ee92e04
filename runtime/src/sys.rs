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

/// Like [`pidfd_wait`] for a timeout in seconds of any size (polled in slices, so a huge
/// timeout neither overflows nor becomes "forever").
pub fn pidfd_wait_secs(pidfd: &OwnedFd, secs: u64) -> bool {
    let deadline = std::time::Instant::now().checked_add(std::time::Duration::from_secs(secs));
    loop {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(std::time::Instant::now()),
            None => std::time::Duration::from_secs(3600),
        };
        if left.is_zero() {
            return false;
        }
        let slice = left.as_millis().min(3_600_000) as i32;
        if pidfd_wait(pidfd, slice.max(1)) {
            return true;
        }
    }
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_else(|_| CString::new("?").unwrap())
}

pub fn cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| CString::new("?").unwrap())
}

/// The number of threads of this process (from /proc/self/stat): forking is only sound while
/// it is 1.
pub fn thread_count() -> usize {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return usize::MAX;
    };
    // Field 20 (num_threads), counted after the command name, which may contain spaces.
    stat.rfind(')')
        .and_then(|i| stat[i + 2..].split(' ').nth(17))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of replacing `to` (rename(2)
/// would replace an empty directory).
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    let (f, t) = (cstr(from), cstr(to));
    // SAFETY: valid C strings.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Creates (or tightens) a directory only its owner may enter: see
/// `sysops::private_dir`.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    sysops::private_dir::ensure_private(dir, 0o700).map_err(|e| Error::io(dir, e))
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
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i32>().ok().filter(|n| (1..=64).contains(n));
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

/// A unix socket address for `path`, reached through its directory's fd as
/// `/proc/self/fd/N/NAME`, so that long paths do not hit sun_path's 108-byte limit. The
/// directory fd must stay open until the bind or connect is done.
fn unix_addr(path: &Path) -> std::io::Result<(OwnedFd, libc::sockaddr_un, libc::socklen_t)> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    let dfd: OwnedFd = std::fs::File::open(dir)?.into();
    // SAFETY: zeroed sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let mut full = format!("/proc/self/fd/{}/", dfd.as_raw_fd()).into_bytes();
    full.extend_from_slice(name.as_bytes());
    if full.len() >= addr.sun_path.len() {
        return Err(std::io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(&full) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + full.len() + 1;
    Ok((dfd, addr, len as libc::socklen_t))
}

fn unix_socket(kind: libc::c_int) -> std::io::Result<OwnedFd> {
    // SAFETY: socket() returns a fresh fd or -1.
    let fd = unsafe { libc::socket(libc::AF_UNIX, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fresh fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Connects a new unix socket of `kind` (SOCK_STREAM, SOCK_SEQPACKET) to `path`.
pub fn unix_connect(path: &Path, kind: libc::c_int) -> std::io::Result<OwnedFd> {
    let sock = unix_socket(kind)?;
    let (_dir, addr, len) = unix_addr(path)?;
    loop {
        // SAFETY: valid socket and address.
        let r = unsafe {
            libc::connect(
                sock.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r == 0 {
            return Ok(sock);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Binds a new unix socket of `kind` at `path` and listens on it.
pub fn unix_listen(path: &Path, kind: libc::c_int) -> std::io::Result<OwnedFd> {
    let sock = unix_socket(kind)?;
    let (_dir, addr, len) = unix_addr(path)?;
    // SAFETY: valid socket and address.
    unsafe {
        if libc::bind(
            sock.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        ) != 0
            || libc::listen(sock.as_raw_fd(), 16) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(sock)
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
    fn one_thread_here() {
        // The test harness runs tests on threads: there is more than one.
        assert!(thread_count() > 1);
        assert_ne!(thread_count(), usize::MAX);
    }

    #[test]
    fn signal_names_and_numbers() {
        assert_eq!(parse_signal("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Some(libc::SIGKILL));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("RTMIN+1"), Some(libc::SIGRTMIN() + 1));
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("99"), None);
        assert_eq!(parse_signal("+9"), None);
        assert_eq!(parse_signal("-9"), None);
    }
}
