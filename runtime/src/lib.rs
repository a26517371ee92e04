//! minc: a small runc-compatible container runtime.
//!
//! The library core knows nothing of images or networks: it runs OCI bundles
//! (`config.json` + rootfs) through the OCI lifecycle. See `container::Runtime`.

pub mod explain;

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod init;
pub mod spec;
pub mod state;
pub mod sys;

pub use container::{CreateOptions, Runtime};
pub use error::{Error, Result};
