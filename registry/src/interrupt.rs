//! Ctrl-C (SIGINT) and SIGTERM during a pull or push: the handler only records the signal
//! (all it may safely do, see signal-safety(7)); the downloading loops check the flag
//! between reads and return [`crate::Error::Interrupted`], so partial blobs are removed on
//! the normal error path. The handler is installed without SA_RESTART, so a read blocked on
//! the network in the thread that got the signal returns EINTR at once.

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
