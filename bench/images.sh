#!/usr/bin/env bash
# Import + unpack of a generated ~200 MB image in several layers: minc (`image import` of the
# OCI layout, then `image unpack`) against `umoci unpack` of the same layout, in the same run.
# Prints wall time and peak RSS (GNU time) for each.
#
# Usage: sudo bench/images.sh [SIZE_MB]
set -euo pipefail
size=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -q -p minc --manifest-path "$here/Cargo.toml"
minc=$here/target/x86_64-unknown-linux-gnu/release/minc
for tool in umoci skopeo /usr/bin/time; do
	command -v $tool >/dev/null || { echo "bench: needs umoci, skopeo and GNU time (apt-get install umoci skopeo time)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/minc-bench-img.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Four layers: big random files, many small files, a compressible tree, and one that
# whites out and replaces part of the first. Gzip-compressed, as registries serve them.
per=$((size / 4))
mkdir -p "$work/src"
for i in 1 2 3 4; do mkdir -p "$work/l$i"; done
head -c $((per * 1024 * 1024)) /dev/urandom >"$work/l1/big.bin"
mkdir -p "$work/l2/many"
python3 - "$work/l2/many" "$per" <<'PY'
import os, sys
d, mb = sys.argv[1], int(sys.argv[2])
n = mb * 1024 // 8  # 8 KiB files
for i in range(n):
    sub = os.path.join(d, str(i % 100))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}"), "wb") as f:
        f.write(os.urandom(4096) + bytes(4096))
PY
mkdir -p "$work/l3/text"
head -c $((per * 1024 * 1024)) < <(yes "minc benchmark text line, quite compressible") >"$work/l3/text/log.txt"
touch "$work/l4/.wh.big.bin"
head -c $((per * 1024 * 1024)) /dev/urandom >"$work/l4/big2.bin"

# Build the OCI layout by hand: gzip layers, config, manifest, index.
layout=$work/layout
mkdir -p "$layout/blobs/sha256"
echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
layers=() diffs=()
for i in 1 2 3 4; do
	tar -C "$work/l$i" -cf "$work/l$i.tar" .
	diffs+=("sha256:$(sha256sum "$work/l$i.tar" | cut -d' ' -f1)")
	gzip -1 -c "$work/l$i.tar" >"$work/l$i.tar.gz"
	d=$(sha256sum "$work/l$i.tar.gz" | cut -d' ' -f1)
	mv "$work/l$i.tar.gz" "$layout/blobs/sha256/$d"
	layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$d\",\"size\":$(stat -c %s "$layout/blobs/sha256/$d")}")
	rm "$work/l$i.tar"
done
diff_json=$(printf '"%s",' "${diffs[@]}")
config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[${diff_json%,}]}}"
cd_=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" >"$layout/blobs/sha256/$cd_"
layer_json=$(printf '%s,' "${layers[@]}")
manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cd_\",\"size\":${#config}},\"layers\":[${layer_json%,}]}"
md=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
printf '%s' "$manifest" >"$layout/blobs/sha256/$md"
echo "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:$md\",\"size\":${#manifest},\"annotations\":{\"org.opencontainers.image.ref.name\":\"big\"}}]}" >"$layout/index.json"
echo "image: $(du -sh "$layout/blobs" | cut -f1) compressed in 4 layers, $(du -sh "$work"/l? | awk '{print $1}' | paste -sd+) uncompressed"

measure() { # label command...
	local label=$1
	shift
	sync
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null
	read -r secs kb <"$work/time"
	printf '%-22s %8.2fs %8.1fMB\n' "$label" "$secs" "$(echo "$kb / 1024" | bc -l)"
}
printf '%-22s %9s %10s\n' "" "wall" "peak RSS"
run_minc() {
	"$minc" --data-root "$work/minc" image import "$layout" --name big >/dev/null
	"$minc" --data-root "$work/minc" image unpack big "$work/minc-rootfs"
}
export -f run_minc; export minc work layout
measure "minc import+unpack" bash -c run_minc
measure "umoci unpack" umoci unpack --image "$layout:big" "$work/umoci-bundle"
[ "$(cd "$work/minc-rootfs" && find . | sort | md5sum)" = "$(cd "$work/umoci-bundle/rootfs" && find . | sort | md5sum)" ] &&
	echo "same tree: yes" || echo "same tree: NO"
