#!/usr/bin/env bash
# The Docker-like face, end to end:
#   1. time from `minc run -d -p 8080:8000 echo-server` to the first successful HTTP answer;
#   2. `run --rm` of an image whose process is `true`;
# median of RUNS each, and the same for `podman run` (same images imported) when podman is
# installed. Everything runs inside a throwaway network + mount namespace (podman writes
# firewall rules and sysctls), with its own data roots.
#
# Usage: sudo bench/run.sh [RUNS]
set -euo pipefail
runs=${1:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p minc --manifest-path "$here/Cargo.toml"

if [ -z "${MINC_BENCH_SANDBOX:-}" ]; then
	exec unshare --net --mount --propagation private --pid --fork --kill-child --mount-proc \
		env MINC_BENCH_SANDBOX=1 bash "$0" "$@"
fi
for d in /run/netns /etc/netns /run/minc /var/lib/minc /var/lib/containers /run/containers /var/lib/cni /run/libpod; do
	mkdir -p "$d" && mount -t tmpfs tmpfs "$d"
done
ip link set lo up
# A stand-in uplink with a default route, as a host has.
ip link add uplink type veth peer name uplink-peer && ip link set uplink-peer up && ip addr add 203.0.113.1/24 dev uplink && ip link set uplink up
ip route add default via 203.0.113.2

minc=$here/target/x86_64-unknown-linux-gnu/release/minc
work=$(mktemp -d /tmp/minc-bench-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
M=("$minc" --root "$work/run" --data-root "$work/data")

# A busybox image whose default process is `true`.
mkdir -p "$work/bb/bin"
cp /bin/busybox "$work/bb/bin/"
for a in sh true wget; do ln -s busybox "$work/bb/bin/$a"; done
mkdir -p "$work/bb/etc" "$work/bb/proc" "$work/bb/sys" "$work/bb/dev" "$work/bb/tmp"
tar -C "$work/bb" -cf "$work/bb.tar" .
"${M[@]}" image import "$work/bb.tar" --name bbtrue --cmd true >/dev/null
"${M[@]}" run --rm echo-server --help >/dev/null 2>&1 || true   # builds the built-in image once

now_ms() { date +%s%N | cut -b1-13; }
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}'; }

first_answer() { # run-command... ; prints ms from start to the first HTTP 200 on :8080
	local t0 t1
	t0=$(now_ms)
	"$@" >/dev/null
	until curl -sf -o /dev/null --max-time 1 http://127.0.0.1:8080/echo; do :; done
	t1=$(now_ms)
	echo $((t1 - t0))
}

declare -A result
bench_minc() {
	local i
	: >"$work/m1"; : >"$work/m2"
	for i in $(seq "$runs"); do
		first_answer "${M[@]}" run -d --name e -p 8080:8000 echo-server >>"$work/m1"
		"${M[@]}" rm -f e >/dev/null
	done
	for i in $(seq "$runs"); do
		local t0; t0=$(now_ms); "${M[@]}" run --rm bbtrue; echo $(($(now_ms) - t0)) >>"$work/m2"
	done
	result[minc_first]=$(median <"$work/m1")
	result[minc_true]=$(median <"$work/m2")
}

bench_podman() {
	command -v podman >/dev/null || return 0
	local P=(podman --root "$work/podman" --runroot "$work/podman-run" --cgroup-manager cgroupfs
		--events-backend none)
	"${M[@]}" run -d --name exp echo-server >/dev/null
	"${M[@]}" rm -f exp >/dev/null
	"${M[@]}" image unpack echo-server "$work/es" && tar -C "$work/es" -cf "$work/es.tar" .
	"${P[@]}" import -q --change 'ENTRYPOINT ["/echo-server"]' "$work/es.tar" echo-server >/dev/null
	"${P[@]}" import -q --change 'CMD ["true"]' "$work/bb.tar" bbtrue >/dev/null
	# No CAP_SYS_RESOURCE on some hosts: ulimits no higher than the hard limits. crun needs
	# the cgroup v2 mount out of the way on hybrid hosts (we are in a private mount ns).
	umount /sys/fs/cgroup/unified 2>/dev/null || true
	local limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$(ulimit -Hu):$(ulimit -Hu)")
	local i
	: >"$work/p1"; : >"$work/p2"
	for i in $(seq "$runs"); do
		first_answer "${P[@]}" run -d "${limits[@]}" --name e -p 8080:8000 echo-server >>"$work/p1"
		"${P[@]}" rm -f e >/dev/null
	done
	for i in $(seq "$runs"); do
		local t0; t0=$(now_ms); "${P[@]}" run --rm "${limits[@]}" bbtrue; echo $(($(now_ms) - t0)) >>"$work/p2"
	done
	result[podman_first]=$(median <"$work/p1")
	result[podman_true]=$(median <"$work/p2")
}

bench_minc
bench_podman
printf '%-34s %10s %10s %8s\n' "median of $runs" minc podman ratio
for k in first true; do
	label=$([ $k = first ] && echo "run -d -p echo-server -> 1st answer" || echo "run --rm (true)")
	m=${result[minc_$k]}; p=${result[podman_$k]:-}
	if [ -n "$p" ]; then
		printf '%-34s %8sms %8sms %7.1fx\n' "$label" "$m" "$p" "$(echo "$p / $m" | bc -l)"
	else
		printf '%-34s %8sms %10s\n' "$label" "$m" "n/a"
	fi
done
