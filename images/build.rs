//! Builds the built-in image's program: the echo-server, compiled from the workspace source
//! into a static binary (`+crt-static`), which the images crate embeds. `minc run
//! echo-server` then needs no download and no binary from the host.

include!("../build-support/static_bin.rs");

fn main() {
    println!("cargo:rerun-if-changed=../build-support/static_bin.rs");
    build_static_bin("echo-server/src/main.rs", "echo-server", "3");
}
