// Shared by images/build.rs and runtime/build.rs (through `include!`): compiles a single-file
// program into a small static binary with the rustc cargo gives build scripts, so minc can
// embed it (the echo-server image's program, the -d monitor, the dmz exec stub) without
// depending on anything installed on the host.

/// Runs cargo's rustc on `src` (relative to the crate) with `flags`, writing `$OUT_DIR/name`.
fn rustc_bin(src: &str, name: &str, flags: &[&str]) {
    let src = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join(src);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join(name);
    println!("cargo:rerun-if-changed={}", src.display());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = std::process::Command::new(rustc)
        .args(["--edition", "2021", "--crate-type", "bin"])
        .args(["--crate-name", &name.replace('-', "_")])
        .args(["-C", "panic=abort", "-C", "strip=symbols"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("run rustc for {name}: {e}"));
    assert!(status.success(), "building the static {name} failed");
}

/// A std-only program, linked statically (`+crt-static`).
#[allow(dead_code)]
fn build_static_bin(src: &str, name: &str, opt_level: &str) {
    let opt = format!("opt-level={opt_level}");
    rustc_bin(src, name, &["-C", &opt, "-C", "target-feature=+crt-static"]);
}

/// A `#![no_std]` `#![no_main]` program (its own `_start`, raw system calls): no libc at
/// all, a few kilobytes.
#[allow(dead_code)]
fn build_freestanding_bin(src: &str, name: &str) {
    rustc_bin(
        src,
        name,
        &[
            "-C", "opt-level=s", "-C", "relocation-model=static",
            "-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib",
            "-C", "link-arg=-static", "-C", "link-arg=-Wl,--build-id=none",
        ],
    );
}
