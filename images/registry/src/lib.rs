//! registry: pulling images from, and pushing them to, OCI distribution registries
//! (the OCI distribution spec; Docker Hub, ghcr.io, quay.io, Debian's `docker-registry`).
//!
//! - [`pull`]: a reference (`busybox`, `user/app:1`, `host:5000/x@sha256:...`, normalized
//!   by `images::ImageName`) is resolved to a manifest (an OCI index or Docker manifest list
//!   is resolved to one platform), then the config and layers that the store does not hold
//!   yet are downloaded, a few at a time, in manifest order, each hashed while it streams
//!   and refused past its announced size; only when all are in does the name point at the
//!   image. A failure, a digest mismatch, or Ctrl-C leaves no partial blob (blobs stream
//!   into the store's flocked work directory, which a killed process's successor reclaims).
//! - [`push`]: the reverse, blobs the registry lacks first, the manifest last.
//! - [`auth`]: anonymous pulls with the Bearer token flow, basic auth, and credentials in
//!   Docker's `config.json` format (`minc login`).
//!
//! A registry is untrusted input: every response body is read with a bound (manifests 4
//! MiB, configs 8 MiB, tokens 1 MiB, error bodies 64 KiB, layers their descriptor's size,
//! at most `MINC_MAX_LAYER_SIZE`), every digest is checked.
//!
//! Why not oci-client (the well-kept Rust client): it reads manifests, token responses and
//! error bodies whole into memory with no bound (a hostile registry that answers a manifest
//! request with an endless body makes the client allocate until the OOM killer comes), and
//! it needs tokio and reqwest (worker and DNS threads, a larger binary). The distribution
//! protocol a client needs is small (a ping, a token request, GET and HEAD of manifests and
//! blobs, upload POST/PUT), so it is written here on ureq, a synchronous HTTP client with
//! rustls; ureq does the HTTP, TLS, redirects and connection reuse.
//!
//! Threads: a pull downloads on a few scoped threads; the `minc run` fork path must stay
//! single-threaded, so `run` pulls in a child process (`minc pull`), never in-process.

mod auth;
mod client;
mod error;
mod interrupt;
mod platform;
mod pull;
mod push;

pub use auth::{login, logout, AuthFile, Credentials};
pub use error::Error;
pub use interrupt::install_interrupt_handler;
pub use platform::Platform;
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, PushOptions};

/// Settings every registry operation shares.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// Allow plain HTTP (and unverified TLS is never allowed) for this registry, as the
    /// user asked with `--insecure`. Loopback registries (`localhost`, `127.0.0.0/8`,
    /// `[::1]`) may always fall back to plain HTTP, as Docker's do.
    pub insecure: bool,
    /// Where credentials are read (Docker's `config.json` format).
    pub auth_file: Option<std::path::PathBuf>,
}

/// The media types minc understands.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

    /// What a manifest request accepts.
    pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.v2+json";

    pub fn is_index(t: &str) -> bool {
        t == OCI_INDEX || t == DOCKER_LIST
    }

    pub fn is_manifest(t: &str) -> bool {
        t == OCI_MANIFEST || t == DOCKER_MANIFEST
    }

    /// Layers the store can unpack (tar, gzip, zstd; OCI or Docker names).
    pub fn is_layer(t: &str) -> bool {
        matches!(
            t,
            "application/vnd.oci.image.layer.v1.tar"
                | "application/vnd.oci.image.layer.v1.tar+gzip"
                | "application/vnd.oci.image.layer.v1.tar+zstd"
                | "application/vnd.docker.image.rootfs.diff.tar"
                | "application/vnd.docker.image.rootfs.diff.tar.gzip"
                | "application/vnd.docker.image.rootfs.diff.tar.zstd"
        )
    }
}

/// Bounds on what is read from a registry.
pub mod limits {
    pub const MANIFEST: u64 = 4 << 20;
    pub const CONFIG: u64 = 8 << 20;
    pub const TOKEN: u64 = 1 << 20;
    pub const ERROR_BODY: u64 = 64 << 10;
}
