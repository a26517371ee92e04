#!/usr/bin/env bash
# Times pods on a Kubernetes node's runtime side (containerd 1.6's CRI plugin, the runc shim):
# pod start (RunPodSandbox + CreateContainer + StartContainer, with a hostPort) and pod
# teardown (StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox), medians for
# minc + netsetup against runc + the CNI bridge/host-local/portmap chain (Debian's
# containernetworking-plugins), in alternating blocks of the same run (tests/cri/src/bin/cri-bench.rs).
#
# Everything runs in a throwaway sandbox: its own network, mount and PID namespaces, and a
# cgroup of its own (minc-bench-cri-PID in every hierarchy, below this shell's) under which the
# pods' cgroups go (the bench gives pods a relative cgroup parent); it is removed at the end.
#
#   bench/cri.sh [ROUNDS]           (root; builds minc, netsetup and cri-bench in release mode)
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
    (cd "$HERE" && cargo build --release -p minc -p netsetup -p cri-client --target-dir "$TARGET")
    # A cgroup of our own in every hierarchy, below the one we are in.
    CG=minc-bench-cri-$$
    dirs=()
    while IFS=: read -r _ ctrls path; do
        if [[ -z $ctrls ]]; then
            mp=$(findmnt -n -t cgroup2 -o TARGET | head -1)
        else
            mp=$(findmnt -n -t cgroup -o TARGET,OPTIONS | awk -v c="$ctrls" '{
                n = split(c, a, ","); ok = 1
                for (i = 1; i <= n; i++) if (index("," $2 ",", "," a[i] ",") == 0) ok = 0
                if (ok) { print $1; exit } }')
        fi
        [[ -n $mp ]] && dirs+=("${mp}${path%/}/$CG")
    done </proc/self/cgroup
    cleanup() {
        # Out of the subtree first (this shell would kill itself), then what is left in it
        # dies and the cgroups go, deepest first.
        for d in "${dirs[@]}"; do
            [[ -d $d ]] && echo $$ >"$(dirname "$d")/cgroup.procs"
        done
        for d in "${dirs[@]}"; do
            [[ -d $d ]] || continue
            find "$d" -depth -type d | while read -r c; do
                [[ -f $c/freezer.state ]] && echo THAWED >"$c/freezer.state"
                for p in $(cat "$c/cgroup.procs"); do kill -9 "$p" 2>/dev/null || true; done
                for _ in $(seq 100); do rmdir "$c" 2>/dev/null && break; sleep 0.02; done
            done
        done
    }
    trap cleanup EXIT
    for d in "${dirs[@]}"; do
        mkdir -p "$d"
        for f in cpuset.cpus cpuset.mems; do
            [[ -f $d/$f && -z $(cat "$d/$f") ]] && cat "$(dirname "$d")/$f" >"$d/$f"
        done
        echo $$ >"$d/cgroup.procs"
    done
    BENCH_IN_SANDBOX=1 unshare --net --uts --ipc --mount --propagation private --pid --fork \
        --kill-child --mount-proc -- "$0" "$ROUNDS"
    exit
fi

# ---- inside the sandbox ----
for d in /run/netns /run/minc /var/lib/cni /etc/netns; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
ip link set lo up
echo "minc $REL/minc, runc $RUNC ($("$RUNC" --version | head -1)), $(nproc) cores, kernel $(uname -r)"
"$REL/cri-bench" "$REL/minc" "$REL/netsetup" "$RUNC" "$CNI_BIN" "$ROUNDS"
