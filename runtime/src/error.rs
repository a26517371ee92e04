//! Typed errors of the runtime library. Each variant names the object and the cause so the
//! CLI can print one clear line (`minc: create abc: rootfs /x: not a directory`).

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
    #[error("container id {0:?} is invalid: use letters, digits, '_', '-', '.' and '+' (not '/', '..' or empty)")]
    InvalidId(String),
    #[error("container {0} already exists")]
    Exists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
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
    #[error("{what}: {source}")]
    Sys {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// An error reported by the container init process (already has its context).
    #[error("{0}")]
    Init(String),
    #[error("hook {}: {reason}", path.display())]
    Hook { path: PathBuf, reason: String },
    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::cgroups::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An error from a system call, described by what was being done.
    pub fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::Sys {
            what: what.into(),
            source: source.into(),
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
