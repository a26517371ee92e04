//! Builds minc-monitor (runtime/monitor/main.rs) into a small static binary that minc embeds
//! and runs from memory for each `run -d` container (see src/cli/monitor.rs).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    // A position-dependent `minc`: the dynamic loader then has no relocations to apply to
    // the binary's own data at each start, which keeps both start time and RSS down (every
    // `run` execs minc anew).
    println!("cargo:rustc-link-arg-bin=minc=-no-pie");
    let src = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("monitor/main.rs");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("minc-monitor");
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--crate-name",
            "minc_monitor",
        ])
        .args([
            "-C",
            "opt-level=s",
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
        .expect("run rustc for minc-monitor");
    assert!(status.success(), "building the static minc-monitor failed");
}
