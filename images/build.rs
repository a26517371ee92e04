//! Builds the built-in image's program: the echo-server, compiled from the workspace source
//! with the same rustc into a static binary (`+crt-static`), which the images crate embeds.
//! `minc run echo-server` then needs no download and no binary from the host.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("echo-server/src/main.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("echo-server");
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "echo_server",
        ])
        .args([
            "-C",
            "opt-level=3",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("run rustc for the echo-server");
    assert!(status.success(), "building the static echo-server failed");
}
