//! Builds the two small programs minc embeds: minc-monitor (runtime/monitor/main.rs), the
//! static waiter behind each `run -d` container (see src/cli/monitor.rs), and minc-dmz
//! (runtime/dmz/main.rs), the freestanding stub that execs the container's program from a
//! sealed memfd (see src/dmz.rs).

include!("../build-support/static_bin.rs");

fn main() {
    println!("cargo:rerun-if-changed=../build-support/static_bin.rs");
    println!("cargo:rerun-if-changed=monitor/protocol.rs");
    build_static_bin("monitor/main.rs", "minc-monitor", "s");
    build_freestanding_bin("dmz/main.rs", "minc-dmz");
}
