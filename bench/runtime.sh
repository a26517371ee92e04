#!/usr/bin/env bash
# Times `RUNTIME run` of a busybox bundle whose process is `true`, for minc and (when
# installed) runc and crun, in the same run, with hyperfine; prints medians, ratios against
# minc and the peak RSS of each runtime process.
#
# Every runtime is wrapped the same way, `unshare -m sh -c 'umount /sys/fs/cgroup/unified;
# exec RUNTIME ...'`, because crun needs that on hosts with a hybrid cgroup layout; the
# wrapper costs the same for all, so the ratios are fair.
#
# Every runtime creates a cgroup per container (runc and crun too). With `resources` as the
# second argument the bundle also sets memory, swap, CPU quota, CPU shares and pids limits.
#
# MINC_BASE=/path/to/an/older/minc adds that binary to the same run as `minc-base`, to
# measure what a change costs.
#
# Usage: sudo [SECCOMP=docker] bench/runtime.sh [RUNS] [resources]   (builds minc in release mode first)
set -euo pipefail
runs=${1:-200}
with_resources=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p minc --manifest-path "$here/Cargo.toml"
minc=$here/target/x86_64-unknown-linux-gnu/release/minc
for tool in hyperfine /usr/bin/time; do
	command -v $tool >/dev/null || { echo "bench: needs hyperfine and GNU time (apt-get install hyperfine time)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/minc-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/busybox"
for a in sh true; do ln -s busybox "$bundle/rootfs/bin/$a"; done
(cd "$bundle" && "$minc" spec)
sed -i 's/"sh"$/"true"/; s/"terminal": true/"terminal": false/' "$bundle/config.json"
grep -q '"true"' "$bundle/config.json"
# SECCOMP=docker puts Docker's default seccomp profile (resolved for the bundle's
# capabilities, as `minc run IMAGE` would) into the bundle, so every runtime compiles and
# loads the same filter.
if [ "${SECCOMP:-}" = docker ]; then
	caps=$(python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["process"]["capabilities"]["bounding"]))' "$bundle/config.json")
	# shellcheck disable=SC2086
	"$minc" seccomp-default $caps >"$work/seccomp.json"
	python3 - "$bundle/config.json" "$work/seccomp.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["linux"]["seccomp"] = json.load(open(sys.argv[2]))
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
	echo "bundle with Docker's default seccomp profile ($(grep -c '"SCMP_ACT' "$work/seccomp.json") rules)"
fi
if [ "$with_resources" = resources ]; then
	python3 - "$bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["linux"]["resources"].update({
    "memory": {"limit": 67108864, "swap": 67108864},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 100},
})
json.dump(c, open(p, "w"), indent=1)
PY
fi

wrap() { # runtime-name command...
	echo "unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec $*'"
}
names=(minc); cmds=("$(wrap "$minc" --root "$work/minc" run -b "$bundle" bench)")
if [ -n "${MINC_BASE:-}" ]; then names+=(minc-base); cmds+=("$(wrap "$MINC_BASE" --root "$work/minc-base" run -b "$bundle" bench)"); fi
if command -v crun >/dev/null; then names+=(crun); cmds+=("$(wrap crun --root "$work/crun" run -b "$bundle" bench)"); fi
if command -v runc >/dev/null; then names+=(runc); cmds+=("$(wrap runc --root "$work/runc" run -b "$bundle" bench)"); fi

args=()
for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/times.json" "${args[@]}" >/dev/null

# Peak RSS: the largest resident set of the runtime process (and of what it forks and reaps:
# its init), from GNU time, over 20 runs each. Measured inside the same wrapper so the
# wrapper's own processes (sh, umount) are not counted.
rss=()
for i in "${!names[@]}"; do
	best=0
	for _ in $(seq 20); do
		kb=$(sh -c "${cmds[$i]/exec /exec /usr/bin/time -f %M -o /dev/stderr }" 2>&1 >/dev/null | tail -1)
		((kb > best)) && best=$kb
	done
	rss+=("$best")
done

python3 "$here/bench/report.py" "$work/times.json" runtime mean "${names[@]}" -- "${rss[@]}"
