//! Starting a network's resolver as a process of its own, and stopping it.
//!
//! The resolver must outlive the command that started it (a `minc run` returns at once) and
//! must not become anyone's child: a `-d` container's monitor, which would be its parent
//! otherwise, reaps only the container. So it is started as daemons are (daemon(7)): fork, a
//! new session (setsid(2)), fork again and exec in the grandchild, whose parent exits at once;
//! the grandchild is adopted by init (or the nearest subreaper, prctl(2)). Its descriptors: /dev/null
//! for stdio, the two listening sockets as fds 3 and 4 (`LISTEN_FDS=2`, the convention of
//! sd_listen_fds(3)), nothing else (close_range(2)). Between the forks only async-signal-safe
//! calls are made, so this works from a process with threads too (signal-safety(7)).
//!
//! Stopping uses a pidfd (pidfd_open(2)): the process is checked to be the one started (its
//! start time, from /proc/PID/stat) and then signalled through the pidfd, so a PID reused
//! since can never be hit, and its exit is awaited (poll(2) on the pidfd) so the port is free
//! for the next resolver.

use std::ffi::CString;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn socket(addr: &SocketAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2).
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: we own the new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setsockopt(
    fd: &OwnedFd,
    level: libc::c_int,
    opt: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: an int option.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// sockaddr_in/sockaddr_in6 of `addr`, and its length.
fn raw_addr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: zeroed sockaddr_storage is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn bind(fd: &OwnedFd, addr: &SocketAddr) -> io::Result<()> {
    let (ss, len) = raw_addr(addr);
    // SAFETY: a valid sockaddr of `len` bytes.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len,
        )
    })
    .map(drop)
}

/// A UDP and a listening TCP socket on `addr` (a DNS server's pair).
pub fn bind_pair(addr: &SocketAddr) -> io::Result<(OwnedFd, OwnedFd)> {
    let udp = socket(addr, libc::SOCK_DGRAM)?;
    bind(&udp, addr)?;
    let tcp = socket(addr, libc::SOCK_STREAM)?;
    setsockopt(&tcp, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    bind(&tcp, addr)?;
    // SAFETY: listen(2) on our socket.
    cvt(unsafe { libc::listen(tcp.as_raw_fd(), 64) })?;
    Ok((udp, tcp))
}

/// Whether `addr` can be bound for `ty` (SOCK_STREAM or SOCK_DGRAM) right now: the error
/// tells a port held by another process (EADDRINUSE) from an address this host does not have
/// (EADDRNOTAVAIL). TCP probes with SO_REUSEADDR, so only listeners count, not connections
/// lingering in TIME_WAIT; an IPv6 probe is IPv6 only, so it does not see IPv4 listeners twice.
pub fn probe(addr: &SocketAddr, ty: libc::c_int) -> io::Result<()> {
    let s = match socket(addr, ty) {
        // A host without IPv6 has nothing bound on it.
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return Ok(()),
        r => r?,
    };
    if ty == libc::SOCK_STREAM {
        setsockopt(&s, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    if addr.is_ipv6() {
        setsockopt(&s, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
    }
    bind(&s, addr)
}

/// Starts `program args...` on its own with `fds` as its descriptors 3, 4, ... (see the
/// module docs); returns its PID once it has exec'd (or the exec's error).
pub fn spawn(program: &Path, args: &[String], fds: &[&OwnedFd]) -> io::Result<i32> {
    let c = |s: &str| CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL));
    let path = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut argv = vec![path.clone()];
    for a in args {
        argv.push(c(a)?);
    }
    let env = [
        c(&format!("LISTEN_FDS={}", fds.len()))?,
        c("PATH=/usr/sbin:/usr/bin:/sbin:/bin")?,
    ];
    let argv_p: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let env_p: Vec<*const libc::c_char> = env
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let null = std::fs::File::open("/dev/null")?;
    let mut pipe = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    cvt(unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: we own both ends now.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    // Out of the way of 0..3+n, so the dup2 calls below cannot overwrite one another.
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|f| {
            // SAFETY: F_DUPFD_CLOEXEC of a descriptor we hold.
            let fd = cvt(unsafe { libc::fcntl(f.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 100) })?;
            // SAFETY: the new descriptor is ours.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect::<io::Result<_>>()?;
    // SAFETY: between fork and exec/_exit only async-signal-safe calls are made, on values
    // prepared above.
    let child = cvt(unsafe { libc::fork() })?;
    if child == 0 {
        unsafe {
            libc::setsid();
            let pid = libc::fork();
            if pid != 0 {
                // The intermediate: report the grandchild, and go.
                let b = pid.to_ne_bytes();
                libc::write(wr.as_raw_fd(), b.as_ptr().cast(), b.len());
                libc::_exit(if pid < 0 { 1 } else { 0 });
            }
            // A signal mask and ignored signals survive exec: the caller's (a foreground
            // `run` blocks SIGTERM while it waits) must not become the daemon's.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            for sig in 1..libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            for fd in 0..3 {
                libc::dup2(null.as_raw_fd(), fd);
            }
            for (i, f) in high.iter().enumerate() {
                libc::dup2(f.as_raw_fd(), 3 + i as libc::c_int);
            }
            // Everything else goes, except the report pipe (close-on-exec: it tells the
            // parent the exec happened).
            let first = 3 + high.len() as libc::c_uint;
            let w = wr.as_raw_fd() as libc::c_uint;
            if w > first {
                libc::syscall(libc::SYS_close_range, first, w - 1, 0);
            }
            libc::syscall(libc::SYS_close_range, w + 1, libc::c_uint::MAX, 0);
            libc::execve(path.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
            let e = (*libc::__errno_location()).to_ne_bytes();
            libc::write(wr.as_raw_fd(), e.as_ptr().cast(), e.len());
            libc::_exit(127);
        }
    }
    drop(wr);
    drop(high);
    // SAFETY: reaping the intermediate child.
    unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
    let mut buf = [0u8; 8];
    let mut got = 0;
    loop {
        // SAFETY: reading into our buffer.
        let n = unsafe { libc::read(rd.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 8 - got) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
        if got == 8 {
            break;
        }
    }
    match got {
        4 => Ok(i32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"))),
        8 => Err(io::Error::from_raw_os_error(i32::from_ne_bytes(
            buf[4..].try_into().expect("4 bytes"),
        ))),
        _ => Err(io::Error::other("the resolver could not be started")),
    }
}

/// Sends SIGTERM to `pid` if it still is the process that started at `start` (see
/// [`crate::state::ProcId`]), and waits for it to exit (up to two seconds).
pub fn stop(pid: i32, start: u64) -> io::Result<()> {
    // SAFETY: pidfd_open(2).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(()),
            _ => Err(e),
        };
    }
    // SAFETY: the pidfd is ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // The pidfd pins the process: if it is the one we started now, it is the one we signal.
    if crate::state::ProcId::of(pid).is_none_or(|p| p.start != start) {
        return Ok(());
    }
    // SIGTERM, and SIGKILL if that did not end it within a second.
    for sig in [libc::SIGTERM, libc::SIGKILL] {
        // SAFETY: pidfd_send_signal(2) on our pidfd.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ESRCH) => Ok(()),
                _ => Err(e),
            };
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one pidfd; readable once the process exited.
        if unsafe { libc::poll(&mut p, 1, 1000) } > 0 {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_tells_in_use_from_free() {
        // In a network namespace of its own: on the host, another test's socket could take
        // the port between our close and the probe that expects it free.
        minc_tests::sandbox!();
        // A listener of ours on an ephemeral port of 127.0.0.1.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = l.local_addr().unwrap();
        let e = probe(&taken, libc::SOCK_STREAM).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        let any: SocketAddr = format!("0.0.0.0:{}", taken.port()).parse().unwrap();
        assert!(probe(&any, libc::SOCK_STREAM).is_err(), "0.0.0.0 overlaps");
        drop(l);
        probe(&taken, libc::SOCK_STREAM).unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = probe(&u.local_addr().unwrap(), libc::SOCK_DGRAM).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        let e = probe(&"192.0.2.77:80".parse().unwrap(), libc::SOCK_STREAM).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRNOTAVAIL));
    }

    #[test]
    fn spawned_process_is_nobodys_child_and_stops() {
        let (udp, tcp) = bind_pair(&"127.0.0.1:0".parse().unwrap()).unwrap();
        // As in a foreground `run`, which blocks SIGTERM (this thread's mask is what fork
        // copies): the daemon must not inherit it.
        // SAFETY: changing this thread's own signal mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        }
        let pid = spawn(
            Path::new("/bin/sh"),
            &[
                "-c".into(),
                // fds 3 and 4 are there, nothing else above stdio.
                "test -S /proc/self/fd/3 -a -S /proc/self/fd/4 -a ! -e /proc/self/fd/5 -a \"$LISTEN_FDS\" = 2 || exit 1; grep -q '^SigBlk:\\s*0*$' /proc/self/status || exit 1; exec sleep 100".into(),
            ],
            &[&udp, &tcp],
        )
        .unwrap();
        let me = std::process::id() as i32;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..]
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_ne!(ppid, me, "not our child");
        let id = crate::state::ProcId::of(pid).unwrap();
        // A wrong start time is another process: left alone.
        stop(pid, id.start + 1).unwrap();
        assert!(id.alive());
        stop(pid, id.start).unwrap();
        assert!(!id.alive());
        let e = spawn(Path::new("/nonexistent/x"), &[], &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }
}
