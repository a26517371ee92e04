//! minc: a small runc-compatible container runtime.
//!
//! The library core knows nothing of images or networks: it runs OCI bundles
//! (`config.json` + rootfs) through the OCI lifecycle. See `container::Runtime`.

pub mod cgroups;
pub mod channel;
pub mod cli;
pub mod console;
pub mod container;
pub mod dmz;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod ops;
pub mod pty;
pub mod relay;
pub mod rfc3339;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;
pub mod userns;

pub use container::{CreateOptions, Runtime};
pub use error::{Error, Result};
