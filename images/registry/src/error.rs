//! Typed errors of registry operations: one line each, naming the object and the cause.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Name(String),
    #[error("{url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    #[error("{url}: {status}{}", if message.is_empty() { String::new() } else { format!(" ({message})") })]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("registry {registry}: authentication required (minc login {registry})")]
    Unauthorized { registry: String },
    #[error("registry {registry}: {reason}")]
    Auth { registry: String, reason: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: more than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("{what}: no manifest for platform {wanted} (the image has {available})")]
    NoPlatform {
        what: String,
        wanted: String,
        available: String,
    },
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Store(#[from] images::Error),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
