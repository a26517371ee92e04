#!/usr/bin/env bash
# Runs minc's cgroup checks on a pure cgroup v2 host: a small VM booted by vm-run (qemu,
# Debian's kernel, every controller available) with the static minc binary inside. This
# host's own layout is v1/hybrid, which the cargo tests (tests/e2e/cgroups.rs) cover.
#
# Usage: bash tests/vm/cgroups-v2.sh   (needs qemu-system-x86, cpio, busybox-static; root
# not needed on the host). Exits non-zero when a check fails; prints the VM's transcript.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
vmrun=${VM_RUN:-}
for c in "$vmrun" "$here/../shared/tools/vm-run" /work/shared/tools/vm-run; do
	[ -n "$c" ] && [ -x "$c" ] && { vmrun=$c; break; }
done
[ -x "$vmrun" ] || { echo "cgroups-v2: vm-run not found (set VM_RUN)" >&2; exit 2; }
cargo build -q -p minc --manifest-path "$here/Cargo.toml"
minc=$here/target/x86_64-unknown-linux-gnu/debug/minc
exec "$vmrun" -m 1024 -t 900 "$here/tests/vm/cgroups-v2.inner.sh" "$minc:/bin/minc"
