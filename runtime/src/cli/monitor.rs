//! The per-container monitor of `minc run -d`: a tiny process that stays the parent of the
//! container's init, so it can reap it, record its exit code and time, and do `--rm`
//! cleanup, long after the `minc` command that started it has returned.
//!
//! It is `minc` re-executed as `minc __monitor ...` once the container runs: exec keeps the
//! PID, so the init stays its child, while the monitor sheds the memory the setup used
//! (image store, netlink, JSON). The entry point runs before any argument parsing or logging
//! is set up, so it stays small.

use std::ffi::CString;
use std::path::PathBuf;

/// The hidden first argument that selects the monitor.
pub const ARG: &str = "__monitor";

/// argv for re-executing as the monitor.
pub fn argv(
    root: &std::path::Path,
    data_root: &std::path::Path,
    id: &str,
    pid: i32,
) -> Vec<CString> {
    let s = |v: &str| CString::new(v).unwrap_or_default();
    vec![
        s("minc"),
        s(ARG),
        s(&root.display().to_string()),
        s(&data_root.display().to_string()),
        s(id),
        s(&pid.to_string()),
    ]
}

/// `minc __monitor ROOT DATA_ROOT ID PID`: waits for the init, records the exit, and removes
/// the container if it was started with `--rm`. Returns the exit code for the monitor.
pub fn main(args: &[String]) -> i32 {
    let [root, data_root, id, pid] = args else {
        return 2;
    };
    let Ok(pid) = pid.parse::<i32>() else {
        return 2;
    };
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child (the container's init).
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            status = 255 << 8;
            break;
        }
    }
    let code = crate::sys::exit_code(status);
    let (root, data_root) = (PathBuf::from(root), PathBuf::from(data_root));
    super::docker::finish(&root, &data_root, id, code);
    0
}

/// Detaches from the terminal and the starting command's session, so Ctrl-C or a hangup in
/// the shell that ran `minc run -d` never reaches the monitor.
pub fn detach() {
    // SAFETY: setsid in the freshly forked monitor; ignoring SIGHUP and SIGINT.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
}

/// Replaces this process with the monitor. Returns only if exec failed.
pub fn exec(argv: &[CString]) -> std::io::Error {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: a null-terminated argv of valid C strings; /proc/self/exe is this binary.
    unsafe { libc::execv(c"/proc/self/exe".as_ptr(), ptrs.as_ptr()) };
    std::io::Error::last_os_error()
}
