#!/usr/bin/env bash
# Times pods on a Kubernetes node's runtime side (containerd 1.6's CRI plugin, the runc shim):
# pod start (RunPodSandbox + CreateContainer + StartContainer, with a hostPort) and pod
# teardown (StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox), medians for
# minc + netsetup against runc + the CNI bridge/host-local/portmap chain (Debian's
# containernetworking-plugins), in alternating blocks of the same run (tests/cri/src/bin/cri-bench.rs).
#
# Everything runs in the sandbox the end-to-end tests run in (`minc-sandbox`): its own
# network, mount and PID namespaces, and a cgroup subtree of its own behind a cgroup namespace,
# with the cgroup filesystems mounted again, so every pod cgroup either runtime makes (runc's
# in the unified hierarchy of a hybrid host too) lands in that subtree, which goes at the end.
#
#   bench/cri.sh [ROUNDS]           (root; builds minc, netsetup, cri-bench and minc-sandbox in release mode)
#   RUNC=/path/to/runc CNI_BIN=/usr/lib/cni bench/cri.sh
set -euo pipefail
shopt -s inherit_errexit

ROUNDS=${1:-20}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
REL=$TARGET/x86_64-unknown-linux-gnu/release
RUNC=${RUNC:-$(command -v runc)}
CNI_BIN=${CNI_BIN:-/usr/lib/cni}

if [[ -z "${BENCH_IN_SANDBOX:-}" ]]; then
    [[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 1; }
    (cd "$HERE" && cargo build --release -p minc -p netsetup -p cri-client -p minc-tests --target-dir "$TARGET")
    BENCH_IN_SANDBOX=1 exec "$TARGET/x86_64-unknown-linux-gnu/release/minc-sandbox" bench-cri \
        --timeout 7200 -- bash "$HERE/bench/cri.sh" "$ROUNDS"
fi

# ---- inside the sandbox ----
for d in /run/netns /run/minc /var/lib/cni /etc/netns; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
ip link set lo up
echo "minc $REL/minc, runc $RUNC ($("$RUNC" --version | head -1)), $(nproc) cores, kernel $(uname -r)"
"$REL/cri-bench" "$REL/minc" "$REL/netsetup" "$RUNC" "$CNI_BIN" "$ROUNDS"
# The pods' parent cgroups stay, as on a node until the kubelet removes them: remove them here
# (this is the sandbox's own cgroup tree, mounted for its cgroup namespace).
find /sys/fs/cgroup -depth -type d -path '*/kubepods*' -exec rmdir {} + 2>/dev/null || true
