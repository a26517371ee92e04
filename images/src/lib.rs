//! images: minc's local image store (placeholder: the store lands next).

/// The echo-server program of the built-in image: a static binary built by build.rs.
pub static ECHO_SERVER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/echo-server"));
