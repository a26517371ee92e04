//! Builds the program netsetup embeds: minc-resolver (resolver/main.rs), the small static DNS
//! server a user-defined network runs on its gateway (see src/dns.rs).

include!("../build-support/static_bin.rs");

fn main() {
    println!("cargo:rerun-if-changed=../build-support/static_bin.rs");
    println!("cargo:rerun-if-changed=resolver/message.rs");
    println!("cargo:rerun-if-changed=resolver/records.rs");
    build_static_bin("resolver/main.rs", "minc-resolver", "s");
}
