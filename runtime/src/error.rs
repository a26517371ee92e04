//! Typed errors of the runtime library. Each variant names the object and the cause so the
//! CLI can print one clear line (`minc: create abc: rootfs /x: not a directory`).
//!
//! The cause (an io::Error) is part of each message and deliberately not exposed as the
//! error's `source()`: the CLI prints the whole chain, and would print it twice otherwise.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error("container id {0:?} is invalid: use letters, digits, '_', '-', '.' and '+', not starting with '-' (not '/', '..' or empty)")]
    InvalidId(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    /// runc's wording, which clients (containerd's shim) match on.
    #[error("container not running")]
    NotRunning(String),
    #[error("container {id} is {status}: {what}")]
    WrongState {
        id: String,
        status: &'static str,
        what: &'static str,
    },
    #[error("rootfs {}: {reason}", path.display())]
    Rootfs { path: PathBuf, reason: String },
    #[error("unknown signal {0:?}")]
    BadSignal(String),
    #[error("{what}: {err}")]
    Sys { what: String, err: std::io::Error },
    /// The container's program could not be executed (runc's exit codes: 127 not found,
    /// 126 not executable).
    #[error("exec {program}: {reason}")]
    Exec {
        program: String,
        reason: String,
        not_found: bool,
    },
    /// An error reported by the container init process (already has its context).
    #[error("{0}")]
    Init(String),
    /// An error reported by a child process with the exit status it stands for.
    #[error("{message}")]
    Child { message: String, code: i32 },
    #[error("hook {}: {reason}", path.display())]
    Hook { path: PathBuf, reason: String },
    // Not `#[from]`: that would make the inner error the `source()` as well, and the CLI,
    // which prints the chain, would print its message twice.
    #[error("{0}")]
    Seccomp(crate::seccomp::Error),
    #[error("cgroup: {0}")]
    Cgroup(crate::cgroups::Error),
}

impl From<crate::seccomp::Error> for Error {
    fn from(e: crate::seccomp::Error) -> Error {
        Error::Seccomp(e)
    }
}

impl From<crate::cgroups::Error> for Error {
    fn from(e: crate::cgroups::Error) -> Error {
        Error::Cgroup(e)
    }
}

impl Error {
    /// An exec failure from an errno (ENOENT: not found, else not executable).
    pub fn exec_errno(program: &str, errno: i32) -> Error {
        Error::Exec {
            program: program.to_string(),
            reason: std::io::Error::from_raw_os_error(errno).to_string(),
            not_found: errno == libc::ENOENT,
        }
    }

    /// An error a child process reported over a channel.
    pub fn from_child(message: String, code: i32) -> Error {
        if code > 1 {
            Error::Child { message, code }
        } else {
            Error::Init(message)
        }
    }

    /// The exit code runc uses when this error stops `exec`/`run` before the program runs.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec {
                not_found: true, ..
            } => 127,
            Error::Exec { .. } => 126,
            Error::Child { code, .. } => *code,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            err: source,
        }
    }

    /// An error from a system call, described by what was being done.
    pub fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::Sys {
            what: what.into(),
            err: source.into(),
        }
    }

    /// The last OS error, for libc calls.
    pub fn last(what: impl Into<String>) -> Error {
        Error::sys(what, std::io::Error::last_os_error())
    }
}

/// Turns a libc return value into a Result (negative = error with errno).
pub fn check(ret: libc::c_int, what: impl FnOnce() -> String) -> Result<libc::c_int> {
    if ret < 0 {
        Err(Error::last(what()))
    } else {
        Ok(ret)
    }
}
