//! Builds minc-monitor (runtime/monitor/main.rs) into a small static binary that minc embeds
//! for each `run -d` container (see src/cli/monitor.rs).

include!("../build-support/static_bin.rs");

fn main() {
    println!("cargo:rerun-if-changed=../build-support/static_bin.rs");
    build_static_bin("monitor/main.rs", "minc-monitor", "s");
}
