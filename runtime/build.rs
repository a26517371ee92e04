//! Builds minc-monitor (runtime/monitor/main.rs) into a small static binary that minc embeds
//! for each `run -d` container (see src/cli/monitor.rs).

include!("../build-support/static_bin.rs");

fn main() {
    // A position-dependent `minc`: the dynamic loader then has no relocations to apply to
    // the binary's own data at each start, which keeps both start time and RSS down (every
    // `run` execs minc anew).
    println!("cargo:rustc-link-arg-bin=minc=-no-pie");
    println!("cargo:rerun-if-changed=../build-support/static_bin.rs");
    build_static_bin("monitor/main.rs", "minc-monitor", "s");
}
