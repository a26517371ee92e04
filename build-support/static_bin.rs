// Shared by images/build.rs and runtime/build.rs (through `include!`): compiles a std-only
// single-file program into a small static binary with the rustc cargo gives build scripts, so
// minc can embed it (the echo-server image's program, the -d monitor) without depending on
// anything installed on the host.

/// Compiles `src` (relative to the crate) to `$OUT_DIR/name` with `+crt-static`.
#[allow(dead_code)]
fn build_static_bin(src: &str, name: &str, opt_level: &str) {
    let src = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join(src);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join(name);
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = std::process::Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", &name.replace('-', "_")])
        .args(["-C", &format!("opt-level={opt_level}"), "-C", "panic=abort"])
        .args(["-C", "strip=symbols", "-C", "target-feature=+crt-static"])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("run rustc for {name}: {e}"));
    assert!(status.success(), "building the static {name} failed");
}

/// Compiles a `#![no_std]` `#![no_main]` program (its own `_start`, raw system calls) to
/// `$OUT_DIR/name`: no libc at all, a few kilobytes.
#[allow(dead_code)]
fn build_freestanding_bin(src: &str, name: &str) {
    let src = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join(src);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join(name);
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = std::process::Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", &name.replace('-', "_")])
        .args(["-C", "opt-level=s", "-C", "panic=abort", "-C", "strip=symbols"])
        .args(["-C", "relocation-model=static"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args(["-C", "link-arg=-static", "-C", "link-arg=-Wl,--build-id=none"])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("run rustc for {name}: {e}"));
    assert!(status.success(), "building the freestanding {name} failed");
}
