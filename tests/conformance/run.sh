#!/usr/bin/env bash
# The OCI runtime-tools validation suite against minc, runc and crun, side by side.
#
#   tests/conformance/run.sh -s RUNTIME_TOOLS_CHECKOUT [-r "minc runc crun"] [-j N] [-v] [-n] [TEST...]
#
# Builds the suite (cmd/runtimetest and one program per validation/*/NAME.go) with Debian's
# Go (golang-go) from a runtime-tools checkout at the commit Debian packages
# (0.9.0+git20220423.g0105384: golang-github-opencontainers-runtime-tools-dev ships the
# library, validate/ generate/ specerror/ cgroups/, but not validation/ nor runtimetest, so
# those come from the checkout; the library Debian ships is used in place of the checkout's
# when installed). Nothing fetched is kept in this repository: the build lives in $WORK
# (default /var/tmp/minc-conformance).
#
# Every program runs once per runtime in a sandbox of its own (`minc-sandbox`, the same as an
# end-to-end test's: network, mount, PID, UTS, IPC and cgroup namespaces, a cgroup subtree
# removed afterwards, a tmpfs /tmp and runtime roots), so the suite's fixed cgroup paths
# (/cgrouptest) and bundles never reach the host. crun runs with the hybrid host's
# /sys/fs/cgroup/unified unmounted in that sandbox (it mistakes the hybrid layout otherwise).
#
# Prints one line per program: for each runtime `ok` (every TAP assertion passed or was
# skipped), `FAIL` with the failed assertions' count, or `SKIP` (the program skipped itself),
# then totals. TAP outputs are kept in $WORK/results/RUNTIME/NAME.tap; -v prints each failed
# assertion; -n only prints the table of the last run. Exit code 0.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
WORK=${WORK:-/var/tmp/minc-conformance}
src=""
runtimes="minc runc crun"
verbose=0
jobs=1
summary_only=0
while getopts "s:r:j:vn" o; do
	case $o in
	s) src=$OPTARG ;;
	r) runtimes=$OPTARG ;;
	j) jobs=$OPTARG ;;
	v) verbose=1 ;;
	n) summary_only=1 ;;
	*) sed -n 3,4p "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

if [ "$(id -u)" != 0 ]; then
	echo "conformance: run as root (the suite creates namespaces, mounts and cgroups)" >&2
	exit 1
fi
for p in go tar unshare; do
	command -v $p >/dev/null || { echo "conformance: $p is missing (apt-get install golang-go util-linux)" >&2; exit 1; }
done

# --- build -----------------------------------------------------------------------------------
build=$WORK/build
if [ ! -x "$build/runtimetest" ]; then
	if [ -z "$src" ] || [ ! -d "$src/validation" ]; then
		echo "conformance: give -s with a runtime-tools checkout (commit 0105384, the one Debian packages)" >&2
		exit 1
	fi
	rm -rf "$build"
	mkdir -p "$build"
	(cd "$src" && tar -cf - --exclude=.git .) | tar -xf - -C "$build"
	deb=/usr/share/gocode/src/github.com/opencontainers/runtime-tools
	for lib in validate generate specerror cgroups error filepath; do
		if [ -d "$deb/$lib" ]; then
			if ! diff -qr "$deb/$lib" "$build/$lib" >/dev/null; then
				echo "conformance: note: $lib differs from Debian's packaged source; using Debian's" >&2
			fi
			rm -rf "${build:?}/$lib" && cp -r "$deb/$lib" "$build/$lib"
		fi
	done
	export GOFLAGS=-mod=vendor GOCACHE=$WORK/gocache GOPATH=$WORK/gopath GOTOOLCHAIN=local
	(cd "$build" && go build -tags "netgo osusergo" -ldflags "-extldflags -static" -o runtimetest ./cmd/runtimetest)
fi
if ls "$build"/validation/*/*.go >/dev/null 2>&1; then
	export GOFLAGS=-mod=vendor GOCACHE=$WORK/gocache GOPATH=$WORK/gopath GOTOOLCHAIN=local
	for f in "$build"/validation/*/*.go; do
		case $f in */util/*) continue ;; esac
		[ -x "${f%.go}.t" ] || (cd "$build" && go build -o "${f%.go}.t" "$f")
	done
fi

sandbox=$repo/target/x86_64-unknown-linux-gnu/debug/minc-sandbox
minc=${MINC:-$repo/target/x86_64-unknown-linux-gnu/debug/minc}
if [ ! -x "$sandbox" ] || [ ! -x "$minc" ]; then
	(cd "$repo" && cargo build -q -p minc -p minc-tests --bin minc --bin minc-sandbox)
fi

# --- run -------------------------------------------------------------------------------------
if [ $# -eq 0 ]; then
	set -- $(cd "$build/validation" && ls -d */ | tr -d / | grep -v '^util$')
fi

run_one() { # runtime test
	local rt=$1 t=$2 bin out
	case $rt in
	minc) bin=$minc ;;
	*) bin=$(command -v "$rt") ;;
	esac
	out=$WORK/results/$rt/$t.tap
	mkdir -p "$WORK/results/$rt"
	# Inside the sandbox: private /tmp and runtime roots; crun without the v2 tree of the
	# hybrid layout.
	local inner='set -e
		for d in /tmp /run/runc /run/crun /run/minc /var/lib/minc; do mkdir -p $d; mount -t tmpfs -o mode=0755 tmpfs $d; done
		chmod 1777 /tmp
		if [ "$RT" = crun ] && mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
		cd "$BUILD"
		exec env RUNTIME="$BIN" "./validation/$T/$T.t"'
	RT=$rt BIN=$bin BUILD=$build T=$t timeout 200 "$sandbox" "conf-$rt-$t" --timeout 180 -- \
		sh -c "$inner" >"$out" 2>"$out.err" </dev/null || echo "# exit status $?" >>"$out"
}

# A program's verdict from its TAP output: "ok N" (N assertions passed), "FAIL n/N", "SKIP".
# Besides `not ok` lines, the suite reports some failures as a YAML block with an "error"
# that follows no assertion (the hook programs). The *_fail programs print nothing at all when
# the runtime refused the bad config as it should, and exit 1 when it did not.
verdict() { # tapfile
	awk '
		/^ok [0-9]+ # SKIP/ { skip++; total++; last = "t"; next }
		/^ok [0-9]+/ { ok++; total++; last = "t"; next }
		/^not ok [0-9]+/ { fail++; total++; last = "t"; next }
		/^1\.\.[0-9]+/ { plan = 1; last = ""; next }
		/^# exit status/ { died = 1; next }
		/^  ---/ { yaml = 1; attached = (last == "t"); next }
		/^  \.\.\./ { yaml = 0; last = ""; next }
		yaml && /"error"/ && !attached { loose++; next }
		END {
			if (!plan) { print (died ? "FAIL(died)" : "ok 0"); exit }
			if (fail + loose > 0 || died) { printf "FAIL %d/%d\n", fail + loose, total + loose; exit }
			if (total == 1 && skip == 1) { print "SKIP"; exit }
			printf "ok %d\n", ok + skip
		}' "$1"
}

export -f run_one
export WORK build sandbox minc
for t in "$@"; do
	for rt in $runtimes; do
		echo "$rt $t"
	done
done | if [ $summary_only = 0 ]; then xargs -P "$jobs" -n 2 bash -c 'run_one "$0" "$1"'; else cat >/dev/null; fi

printf '%-36s' "program"
for rt in $runtimes; do printf ' %-14s' "$rt"; done
echo
declare -A passed
for rt in $runtimes; do passed[$rt]=0; done
for t in "$@"; do
	printf '%-36s' "$t"
	for rt in $runtimes; do
		v=$(verdict "$WORK/results/$rt/$t.tap")
		printf ' %-14s' "$v"
		case $v in ok*) passed[$rt]=$((passed[$rt] + 1)) ;; esac
	done
	echo
	if [ $verbose = 1 ]; then
		for rt in $runtimes; do
			grep -E '^not ok ' "$WORK/results/$rt/$t.tap" | sed "s/^/    $rt: /" || true
		done
	fi
done
printf '%-36s' "programs passed (of $#)"
for rt in $runtimes; do printf ' %-14s' "${passed[$rt]}"; done
echo
printf '%-36s' "assertions failed"
for rt in $runtimes; do
	n=0
	for t in "$@"; do
		v=$(verdict "$WORK/results/$rt/$t.tap")
		case $v in "FAIL "*) f=${v#FAIL } && n=$((n + ${f%%/*})) ;; esac
	done
	printf ' %-14s' "$n"
done
echo
