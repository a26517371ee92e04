//! The per-container monitor of `minc run -d`: a tiny process that stays the parent of the
//! container's init, so it can reap it and record its exit code, and do `--rm` cleanup, long
//! after the `minc` command that started it has returned.
//!
//! The monitor is its own small static program (runtime/monitor/main.rs, built by build.rs)
//! embedded in minc and written once to `DATA_ROOT/bin/` (so every monitor shares its pages).
//! The forked setup process, once the container runs, execs it: exec keeps the PID, so the
//! init stays its child, and the memory the setup used (image store, netlink, JSON) is gone.
//! When the container exits, the monitor execs `minc __finish ...` to record the exit and
//! clean up. With `-t` the monitor also keeps the container's pty master and serves it to
//! `minc attach` over `attach.sock` (see runtime/monitor/protocol.rs and `attach.rs`).

use std::ffi::CString;
use std::io::Write;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The static monitor binary.
static MONITOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/minc-monitor"));

/// The hidden first argument of minc that finishes a container after its process exited.
pub const FINISH: &str = "__finish";

/// `minc __finish ROOT DATA_ROOT ID CODE`: records the exit and releases or removes the
/// container. Runs in the monitor's process, before argument parsing and logging.
pub fn finish(args: &[String]) -> i32 {
    let [root, data_root, id, code] = args else {
        return 2;
    };
    let code = code.parse().unwrap_or(255);
    super::docker::finish(Path::new(root), Path::new(data_root), id, code);
    0
}

/// Detaches from the terminal and the starting command's session, so Ctrl-C or a hangup in
/// the shell that ran `minc run -d` never reaches the monitor (a session of its own is
/// enough: it has no controlling terminal to get them from; ignoring them would pass the
/// ignoring on to the container's processes).
pub fn detach() {
    sysops::explain::comment(
        "fork(2) and setsid(2): the container's monitor-to-be, in a session of its own (the \
         closest command: setsid -f); it makes and starts the container, the steps below",
    );
    // SAFETY: setsid in the freshly forked monitor.
    unsafe {
        libc::setsid();
    }
}

/// The descriptors a `-t` container's monitor serves its terminal with.
pub struct TerminalFds {
    pub master: RawFd,
    /// The listening `attach.sock`.
    pub listen: RawFd,
    /// The container's log, appended to.
    pub log: RawFd,
    /// A client already connected (the foreground `run -t` that started it).
    pub client: Option<RawFd>,
}

/// The monitor's program and command line, ready to exec.
pub struct Monitor {
    path: CString,
    argv: Vec<CString>,
}

impl Monitor {
    /// The monitor for container `id` whose init is `pid` (writing its program out the first
    /// time), shown under `--explain` before the caller lets go of its terminal.
    pub fn new(
        root: &Path,
        data_root: &Path,
        id: &str,
        pid: i32,
        tty: Option<&TerminalFds>,
    ) -> std::io::Result<Monitor> {
        let minc = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let program = installed(data_root)?;
        let mut words = vec![
            minc.display().to_string(),
            root.display().to_string(),
            data_root.display().to_string(),
            id.to_string(),
            pid.to_string(),
        ];
        if let Some(t) = tty {
            let fds = [Some(t.master), Some(t.listen), Some(t.log), t.client];
            for fd in fds.into_iter().flatten() {
                // The monitor inherits these; everything else of ours is close-on-exec.
                // SAFETY: fcntl on descriptors we hold.
                unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
                words.push(fd.to_string());
            }
        }
        if sysops::explain::enabled() {
            sysops::explain::Cmd::new("exec")
                .arg(&program)
                .args(&words)
                .note(format!(
                    "the monitor: this forked process (setsid, stdio on /dev/null) becomes it; \
                     it waits for the init (pid {pid}), then execs `minc __finish` to record \
                     the exit"
                ))
                .emit();
        }
        let s = |v: &str| CString::new(v).unwrap_or_default();
        let mut argv = vec![s("minc-monitor")];
        argv.extend(words.iter().map(|w| s(w)));
        Ok(Monitor {
            path: CString::new(program.as_os_str().as_encoded_bytes()).unwrap_or_default(),
            argv,
        })
    }

    /// Replaces this process with the monitor. Returns only if that failed.
    pub fn exec(&self) -> std::io::Error {
        let mut ptrs: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        // A clean environment with the default PATH, as every process minc starts gets one.
        let path_env =
            CString::new(format!("PATH={}", sysops::container::DEFAULT_PATH)).unwrap_or_default();
        let env: [*const libc::c_char; 2] = [path_env.as_ptr(), std::ptr::null()];
        // SAFETY: argv and envp are null-terminated arrays of valid C strings.
        unsafe { libc::execve(self.path.as_ptr(), ptrs.as_ptr(), env.as_ptr()) };
        std::io::Error::last_os_error()
    }
}

/// `DATA_ROOT/bin/minc-monitor-HASH`, written (atomically) the first time this build runs.
fn installed(data_root: &Path) -> std::io::Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    MONITOR.hash(&mut h);
    let dir = data_root.join("bin");
    let path = dir.join(format!("minc-monitor-{:016x}", h.finish()));
    if !path.exists() {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".minc-monitor-{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o755)
            .open(&tmp)?;
        f.write_all(MONITOR)?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}
