//! Ctrl-C (SIGINT) and SIGTERM during a pull: the handler only records the signal (all it
//! may safely do, see signal-safety(7)); the downloading loops check the flag between reads
//! and return [`crate::Error::Interrupted`], so partial blobs are removed on the normal
//! error path. A thread blocked in a read from a stalled registry would not see the flag
//! (the HTTP client retries reads that a signal interrupts), so a watcher thread
//! ([`watch`]) shuts this process's sockets down once the signal came (shutdown(2) wakes
//! blocked readers); a pull is a process of its own, so they are all the pull's.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM (for `minc pull` and `minc push`, which are
/// processes of their own).
pub fn install_interrupt_handler() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores to an atomic.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a signal came.
pub fn check() -> crate::error::Result<()> {
    if interrupted() {
        return Err(crate::Error::Interrupted);
    }
    Ok(())
}

/// Runs `f` with a watcher that, once a signal came, shuts down every socket of this
/// process (checked every 50 ms), so that reads blocked on the network return.
pub fn watch<T>(f: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if interrupted() {
                    shutdown_sockets();
                }
                std::thread::park_timeout(std::time::Duration::from_millis(50));
            }
        });
        let out = f();
        done.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        out
    })
}

/// shutdown(2) of every socket this process has open (found in /proc/self/fd).
fn shutdown_sockets() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")) {
            // SAFETY: shutdown on a socket fd of this process; it stays open (its owner
            // closes it), only its traffic ends.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
}
