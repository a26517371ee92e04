//! images: minc's local image store.
//!
//! - [`Store`]: an OCI image layout under `DATA_ROOT/images` (content-addressed blobs, every
//!   digest verified on the way in, names as `org.opencontainers.image.ref.name`), imports
//!   of OCI layouts, oci-archives, docker-archives and plain rootfs tarballs, and container
//!   root filesystems as overlayfs mounts of layers unpacked once per diff_id.
//! - [`unpack`]: applying tar layers safely: whiteouts, hard links, modes, owners, xattrs, and
//!   no path, link or whiteout ever resolving outside the rootfs.
//! - [`runtime_spec`]: an image config plus the user's flags as an OCI runtime spec.
//! - The built-in `echo-server` image, built from this workspace alone.

#[macro_use]
mod explain;
mod builtin;
mod digest;
mod error;
mod import;
mod progress;
mod safepath;
mod spec;
mod store;
pub mod unpack;

pub use error::Error;
pub use import::ImportOptions;
pub use spec::{default_spec, lookup_user, runtime_spec, RunOptions};
pub use store::{Image, ImageRef, ImageSummary, Rootfs, Store};

/// The echo-server program of the built-in image: a static binary built by build.rs.
pub static ECHO_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echo-server"));
