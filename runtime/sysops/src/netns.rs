//! Entering a network namespace.
//!
//! A network namespace (network_namespaces(7)) is a separate copy of the network stack: its own
//! links, addresses, routes, sysctls under /proc/sys/net and nftables tables. A namespace is
//! named by a file: `/proc/PID/ns/net` of a process inside it, or a bind mount of that file
//! such as `/run/netns/NAME` (ip-netns(8)). setns(2) with `CLONE_NEWNET` moves the *calling
//! thread* into it; the other threads of the process stay where they are, and sockets keep the
//! namespace they were created in.
//!
//! Two ways to use that, one per kind of caller:
//! - [`run_in`]: run a closure on a scoped thread that enters the namespace and ends with it.
//!   The caller's thread never moves, so a multi-threaded program stays safe. netsetup uses it.
//! - [`enter`]: switch the calling thread and get a [`Guard`] that switches it back when
//!   dropped. No thread is created, which is what a fork path that must stay thread-free needs.
//!
//! Read: namespaces(7), network_namespaces(7), setns(2), ip-netns(8).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// setns(2) for a network namespace, on the calling thread.
fn setns_net(ns: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns on a valid fd; it only changes the calling thread's namespace.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs `f` on a fresh scoped thread that has entered the network namespace `ns`, and returns
/// what it returns. The calling thread (and so the rest of the process) stays where it is.
pub fn run_in<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| setns_net(ns).map(|()| f()))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// The calling thread's stay in another network namespace; dropping it switches back.
#[must_use = "dropping the guard switches the thread back at once"]
pub struct Guard {
    home: File,
}

/// Moves the calling thread into the network namespace `ns` until the returned [`Guard`] is
/// dropped. Creates no thread.
pub fn enter(ns: BorrowedFd<'_>) -> io::Result<Guard> {
    // thread-self, not self: the namespace is per thread.
    let home = File::open("/proc/thread-self/ns/net")?;
    setns_net(ns)?;
    Ok(Guard { home })
}

impl Guard {
    /// Switches back, reporting a failure instead of aborting.
    pub fn leave(self) -> io::Result<()> {
        let r = setns_net(self.home.as_fd());
        std::mem::forget(self);
        r
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = setns_net(self.home.as_fd()) {
            // A thread left in a container's namespace would make every later network call
            // of this process act on the container: never continue in that state.
            eprintln!("fatal: cannot return to the original network namespace: {e}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_id(path: &str) -> String {
        std::fs::read_link(path).unwrap().display().to_string()
    }

    /// A namespace to enter: this test's own (setns into the current namespace is allowed for
    /// root and exercises the same calls), or a fresh one when unshare works.
    #[test]
    fn run_in_and_enter_return_home() {
        if unsafe { libc::geteuid() } != 0 {
            return; // setns needs CAP_SYS_ADMIN
        }
        let home = ns_id("/proc/thread-self/ns/net");
        // A new namespace, made on a thread so this thread stays home.
        let other = std::thread::spawn(|| {
            // SAFETY: unshare on this short-lived thread only.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap();
        let other_id = std::thread::scope(|s| {
            s.spawn(|| {
                setns_net(other.as_fd()).unwrap();
                ns_id("/proc/thread-self/ns/net")
            })
            .join()
            .unwrap()
        });
        assert_ne!(home, other_id);

        let seen = run_in(other.as_fd(), || ns_id("/proc/thread-self/ns/net")).unwrap();
        assert_eq!(seen, other_id);
        assert_eq!(ns_id("/proc/thread-self/ns/net"), home, "caller stayed");

        let g = enter(other.as_fd()).unwrap();
        assert_eq!(ns_id("/proc/thread-self/ns/net"), other_id);
        drop(g);
        assert_eq!(ns_id("/proc/thread-self/ns/net"), home);
        let g = enter(other.as_fd()).unwrap();
        g.leave().unwrap();
        assert_eq!(ns_id("/proc/thread-self/ns/net"), home);

        // Not a namespace file: a clear error, and nothing moved.
        let f = File::open("/proc/self/stat").unwrap();
        assert!(run_in(f.as_fd(), || ()).is_err());
        assert!(enter(f.as_fd()).is_err());
        assert_eq!(ns_id("/proc/thread-self/ns/net"), home);
    }
}
