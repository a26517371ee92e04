#!/usr/bin/env bash
# Pull of a multi-layer image (about 100 MB compressed, 5 gzip layers, built here) from a
# local registry (Debian's docker-registry on 127.0.0.1), cold each time: minc pull against
# `skopeo copy docker://... oci:...` and `podman pull`, in the same run, with hyperfine;
# prints medians, ratios against minc and the peak RSS of each tool.
#
# What each does: minc and skopeo fetch and verify the blobs into a store (minc unpacks
# layers at the first `run`, skopeo never); podman also unpacks the layers while pulling,
# so its time includes that.
#
# Everything runs inside its own network, mount and PID namespaces (the registry listens on
# that namespace's 127.0.0.1; nothing leaves the machine), with state in a temporary
# directory.
#
# Usage: sudo bench/pull.sh [RUNS]   (builds minc in release mode first)
set -euo pipefail
runs=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${MINC_BENCH_SANDBOX:-}" ]; then
	cargo build --release -q -p minc --manifest-path "$here/Cargo.toml"
	for tool in hyperfine /usr/bin/time docker-registry skopeo python3; do
		command -v $tool >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
	done
	exec unshare --net --mount --pid --fork --kill-child --mount-proc \
		env MINC_BENCH_SANDBOX=1 bash "$0" "$@"
fi
ip link set lo up
minc=${MINC_BIN:-$here/target/x86_64-unknown-linux-gnu/release/minc}
work=$(mktemp -d /tmp/minc-pull-bench.XXXXXX)
trap 'kill $reg 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

# The image: 5 layers of 20 MB each that do not compress (random), as an OCI layout.
python3 - "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
blobs = os.path.join(out, "blobs", "sha256")
os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data)
    return "sha256:" + d, len(data)
layers, diff_ids = [], []
for i in range(5):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = os.urandom(20 << 20)
        info = tarfile.TarInfo(f"layer{i}/data")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    d, n = put(gzip.compress(raw, compresslevel=1, mtime=0))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n})
cd, cn = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
md, mn = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
                         "layers": layers}).encode())
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "1"}}]},
          open(os.path.join(out, "index.json"), "w"))
PY

cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:5000
EOF
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
reg=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/5000) 2>/dev/null && break; sleep 0.1; done
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:1" docker://127.0.0.1:5000/bench:1
size=$(du -sb "$work/layout/blobs" | cut -f1)
echo "image: 5 layers, $((size / 1000000)) MB compressed"

ref=127.0.0.1:5000/bench:1
names=(minc skopeo)
cmds=("$minc --root $work/minc-run --data-root $work/minc pull -q $ref"
	"skopeo copy -q --src-tls-verify=false docker://$ref oci:$work/skopeo:bench")
preps=("rm -rf $work/minc $work/minc-run" "rm -rf $work/skopeo")
if command -v podman >/dev/null; then
	names+=(podman)
	cmds+=("podman --root $work/podman --runroot $work/podman-run --storage-driver overlay pull -q --tls-verify=false $ref")
	preps+=("rm -rf $work/podman $work/podman-run")
fi

args=()
for i in "${!names[@]}"; do args+=(--prepare "${preps[$i]}" -n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/times.json" "${args[@]}" >/dev/null

# Peak RSS of each tool (largest resident set of the process and what it waits for), 3 cold
# runs each.
rss=()
for i in "${!names[@]}"; do
	best=0
	for _ in 1 2 3; do
		sh -c "${preps[$i]}"
		kb=$(/usr/bin/time -f %M -o /dev/stdout ${cmds[$i]} | tail -1)
		((kb > best)) && best=$kb
	done
	rss+=("$best")
done

python3 "$here/bench/report.py" "$work/times.json" tool min "${names[@]}" -- "${rss[@]}"
