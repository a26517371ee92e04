#!/usr/bin/env bash
# Times attach/detach of minc's netsetup against the CNI bridge + host-local + portmap chain
# (Debian's containernetworking-plugins), in one throwaway sandbox (its own net, mount and pid
# namespaces; nothing touches the host's network). Medians of ROUNDS runs, at 1 container
# and marginal with 50 and 100 containers already attached.
#
# Three timings per tool: attach; detach while the container's namespace lives (the veth must
# be deleted, synchronously, by both); detach once the container is gone (its namespace was
# deleted first, as after `minc rm` or a pod's sandbox going away).
#
#   bench/netsetup.sh [ROUNDS]      (root; builds netsetup in release mode if needed)
#   NETSETUP=/path/to/netsetup bench/netsetup.sh    (compare another build)
set -euo pipefail
shopt -s inherit_errexit

ROUNDS=${1:-30}
HERE=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$HERE/target}
NETSETUP=${NETSETUP:-$TARGET/x86_64-unknown-linux-gnu/release/netsetup}
CNI_BIN=${CNI_BIN:-/usr/lib/cni}

if [[ -z "${BENCH_IN_SANDBOX:-}" ]]; then
    [[ $EUID -eq 0 ]] || { echo "run as root" >&2; exit 1; }
    if [[ ! -x $NETSETUP ]]; then
        (cd "$HERE" && cargo build --release -p netsetup --target-dir "$TARGET")
    fi
    exec env BENCH_IN_SANDBOX=1 NETSETUP="$NETSETUP" unshare --net --mount --propagation private --pid --fork --mount-proc -- "$0" "$ROUNDS"
fi

# ---- inside the sandbox ----
# /etc/netns only for older netsetup builds, which wrote there.
for d in /run/netns /var/lib/cni /run/minc /etc/netns; do
    mkdir -p "$d"
    mount -t tmpfs -o mode=0755 tmpfs "$d"
done
ip link set lo up
WORK=$(mktemp -d)
DATA=$WORK/minc
export CNI_PATH=$CNI_BIN CNI_IFNAME=eth0

now() { date +%s%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

BRIDGE_CONF='"type":"bridge","bridge":"cni0","isGateway":true,"ipMasq":true,"hairpinMode":true,"ipam":{"type":"host-local","subnet":"10.88.0.0/16","routes":[{"dst":"0.0.0.0/0"}]}'
PORTMAP_CONF='"type":"portmap","capabilities":{"portMappings":true},"snat":true'

# cni_add ID PORT  (PORT empty = no published port); saves the chain's result for DEL, on one
# line (the plugins print indented JSON).
cni_add() {
    local id=$1 port=$2 res mappings='[]'
    [[ -n $port ]] && mappings="[{\"hostPort\":$port,\"containerPort\":80,\"protocol\":\"tcp\"}]"
    res=$(CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$id "$CNI_BIN/bridge" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",$BRIDGE_CONF}" | tr -d '\n')
    res=$(CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$id "$CNI_BIN/portmap" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",$PORTMAP_CONF,\"runtimeConfig\":{\"portMappings\":$mappings},\"prevResult\":$res}" | tr -d '\n')
    printf '%s\n%s\n' "$mappings" "$res" >"$WORK/cni-$id"
}

cni_del() {
    local id=$1 mappings res
    { read -r mappings; read -r res; } <"$WORK/cni-$id"
    CNI_COMMAND=DEL CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$id "$CNI_BIN/portmap" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",$PORTMAP_CONF,\"runtimeConfig\":{\"portMappings\":$mappings},\"prevResult\":$res}" >/dev/null
    CNI_COMMAND=DEL CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$id "$CNI_BIN/bridge" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",$BRIDGE_CONF,\"prevResult\":$res}" >/dev/null
}

minc_add() {
    local id=$1 port=$2
    "$NETSETUP" attach --id "$id" --netns "/run/netns/$id" --data-dir "$DATA" ${port:+-p "$port:80"} >/dev/null
}

minc_del() { "$NETSETUP" detach --id "$1" --data-dir "$DATA"; }

veths() { ip -o link show type veth | wc -l; }

# Waits (up to 3 s) for the veths of gone containers, which the kernel frees asynchronously,
# to be gone: only the preloaded containers' remain.
settle() {
    local i
    for ((i = 0; i < 150; i++)); do
        [[ $(veths) -eq $((2 * preloaded)) ]] && return 0
        sleep 0.02
    done
    echo "veths left behind: $(veths), expected $((2 * preloaded))" >&2
    exit 1
}

# one TOOL PORT I: one round for one tool, appending to its attach/detach/gone files
one() {
    local tool=$1 port=$2 i=$3 id t0 t1 t2 f=$WORK/$1
    id=b-$tool-${port:-none}-$i
    settle
    ip netns add "$id"
    t0=$(now); "${tool}_add" "$id" "$port"; t1=$(now); "${tool}_del" "$id"; t2=$(now)
    # Both must really have removed the veth on their own, before the namespace goes.
    [[ $(veths) -eq $((2 * preloaded)) ]] || { echo "$tool left a veth behind" >&2; exit 1; }
    ip netns del "$id"
    ms "$t0" "$t1" >>"$f.add"; echo >>"$f.add"
    ms "$t1" "$t2" >>"$f.del"; echo >>"$f.del"
    # The container goes first; then its network is torn down. (A new id: the CNI bridge
    # plugin leaves its masquerade chain behind when DEL comes after the namespace is gone.)
    id=g-$tool-${port:-none}-$i
    ip netns add "$id"
    "${tool}_add" "$id" "$port"
    ip netns del "$id"
    t1=$(now); "${tool}_del" "$id"; t2=$(now)
    ms "$t1" "$t2" >>"$f.gone"; echo >>"$f.gone"
}

# measure PORT LEVEL: ROUNDS rounds, minc and CNI alternating (so a change in the machine's
# load hits both), medians into R[tool,variant,LEVEL] as "attach detach gone".
measure() {
    local port=$1 level=$2 i tool variant
    variant=$([[ -n $port ]] && echo port || echo noport)
    for tool in minc cni; do : >"$WORK/$tool.add"; : >"$WORK/$tool.del"; : >"$WORK/$tool.gone"; done
    for ((i = 0; i < ROUNDS; i++)); do
        one minc "$port" "$i"
        one cni "$port" "$i"
    done
    for tool in minc cni; do
        R[$tool,$variant,$level]="$(median <"$WORK/$tool.add") $(median <"$WORK/$tool.del") $(median <"$WORK/$tool.gone")"
    done
}

preloaded=0
preload() { # bring both tools to N attached containers (each with a published port)
    local n=$1 i
    for ((i = preloaded; i < n; i++)); do
        ip netns add "pm-$i"; minc_add "pm-$i" $((20000 + i))
        ip netns add "pc-$i"; cni_add "pc-$i" $((30000 + i))
    done
    preloaded=$n
}

declare -A R
for level in 1 50 100; do
    [[ $level -gt 1 ]] && preload "$level"
    measure 8080 "$level"
    measure "" "$level"
done

echo
echo "netsetup ($NETSETUP) vs CNI bridge+host-local+portmap: median ms over $ROUNDS runs"
echo "(\"at N\" = marginal cost with N other containers attached; $(nproc) cores, kernel $(uname -r))"
echo "columns: attach / detach (namespace alive) / detach (container gone)"
printf '%-24s %26s %26s %26s\n' "" "at 1" "at 50" "at 100"
for variant in port noport; do
    for tool in minc cni; do
        label="$tool $( [[ $variant == port ]] && echo '(1 port)' || echo '(no port)')"
        printf '%-24s' "$label"
        for level in 1 50 100; do
            read -r a d g <<<"${R[$tool,$variant,$level]}"
            printf ' %7s / %7s / %7s' "$a" "$d" "$g"
        done
        echo
    done
    printf '%-24s' "  minc/cni"
    for level in 1 50 100; do
        read -r ma md mg <<<"${R[minc,$variant,$level]}"
        read -r ca cd cg <<<"${R[cni,$variant,$level]}"
        printf ' %7s / %7s / %7s' "$(awk -v c="$ca" -v m="$ma" 'BEGIN{printf "%.2f", m/c}')" \
            "$(awk -v c="$cd" -v m="$md" 'BEGIN{printf "%.2f", m/c}')" "$(awk -v c="$cg" -v m="$mg" 'BEGIN{printf "%.2f", m/c}')"
    done
    echo
done
settle
echo "sanity: $(veths) veths left, expected $((2 * preloaded)) (the preloaded containers)"
rm -rf "$WORK"
