//! images: minc's local image store.
//!
//! - [`Store`]: an OCI image layout under `DATA_ROOT/images` (content-addressed blobs, every
//!   digest verified on the way in, names as `org.opencontainers.image.ref.name`), imports
//!   of OCI layouts, oci-archives, docker-archives and plain rootfs tarballs, and container
//!   root filesystems as overlayfs mounts of layers unpacked once per chain id. The
//!   directories that hold image contents are private to root (0700), whatever the umask.
//! - [`unpack`]: applying tar layers safely (on `sysops::inroot`): whiteouts, hard links,
//!   modes, owners, xattrs, and no path, link or whiteout ever resolving outside the rootfs;
//!   bounded in size and entries ([`StoreOptions`]).
//! - [`runtime_spec`]: an image config plus the user's flags as an OCI runtime spec.
//! - The built-in `echo-server` image, built from this workspace alone.

#[macro_use]
mod explain;
mod builtin;
pub mod capabilities;
pub mod digest;
mod error;
mod import;
mod layer_stream;
mod layered;
mod options;
mod progress;
pub mod reference;
mod spec;
mod store;
pub mod unpack;
mod workdir;

pub use error::Error;
pub use import::ImportOptions;
pub use options::{
    parse_devices, parse_size, DeviceNodes, StoreOptions, ENV_LAYER_DEVICES, ENV_MAX_ARCHIVE_SIZE,
    ENV_MAX_LAYER_ENTRIES, ENV_MAX_LAYER_SIZE,
};
pub use reference::ImageName;
pub use spec::{lookup_user, runtime_spec, RunOptions, PRIVILEGED};
pub use store::{local_name, BlobWriter, Image, ImageRef, ImageSummary, Rootfs, Store};

/// The echo-server program of the built-in image: a static binary built by build.rs.
pub static ECHO_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echo-server"));
