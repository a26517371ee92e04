//! Typed errors of the image store: one line each, naming the object and the cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image {0} not found")]
    NotFound(String),
    // The io::Error is in the message and not the `source()`: the CLI prints the chain.
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("blob {expected}: digest mismatch (got {actual})")]
    DigestMismatch { expected: String, actual: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("layer {layer}: entry {entry}: {reason}")]
    Layer {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("{what}: larger than the limit of {} uncompressed (set {setting} to change it)", crate::options::show_size(*limit))]
    TooLarge {
        what: String,
        limit: u64,
        setting: &'static str,
    },
    #[error("user {0:?} not found in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} not found in the image's /etc/group")]
    UnknownGroup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            err,
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
