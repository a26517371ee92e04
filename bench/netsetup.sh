#!/usr/bin/env bash
# Times attach/detach of minc's netsetup against the CNI bridge + host-local + portmap chain
# (Debian's containernetworking-plugins), in one throwaway sandbox (its own net, mount and pid
# namespaces; nothing touches the host's network). Medians of ROUNDS runs, at 1 container
# and marginal with 50 and 100 containers already attached.
#
#   bench/netsetup.sh [ROUNDS]      (root; builds netsetup in release mode if needed)
set -euo pipefail

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
    for d in /run/netns /etc/netns /var/lib/cni /var/lib/minc; do mkdir -p "$d"; done
    exec env BENCH_IN_SANDBOX=1 NETSETUP="$NETSETUP" unshare --net --mount --propagation private --pid --fork --mount-proc -- "$0" "$ROUNDS"
fi

# ---- inside the sandbox ----
for d in /run/netns /etc/netns /var/lib/cni /var/lib/minc /run/minc; do
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

# cni_add ID PORT  (PORT empty = no published port); saves the chain's result for DEL
cni_add() {
    local id=$1 port=$2 res rc mappings='[]'
    [[ -n $port ]] && mappings="[{\"hostPort\":$port,\"containerPort\":80,\"protocol\":\"tcp\"}]"
    res=$(CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$id "$CNI_BIN/bridge" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",$BRIDGE_CONF}")
    res=$(CNI_COMMAND=ADD CNI_CONTAINERID=$id CNI_NETNS=/run/netns/$id "$CNI_BIN/portmap" \
        <<<"{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",$PORTMAP_CONF,\"runtimeConfig\":{\"portMappings\":$mappings},\"prevResult\":$res}")
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

# measure TOOL PORT -> "attach_median detach_median" over ROUNDS fresh containers
measure() {
    local tool=$1 port=$2 i id t0 t1 t2
    : >"$WORK/add" ; : >"$WORK/del"
    for ((i = 0; i < ROUNDS; i++)); do
        id=b-$tool-$i
        ip netns add "$id"
        t0=$(now); "${tool}_add" "$id" "$port"; t1=$(now); "${tool}_del" "$id"; t2=$(now)
        ip netns del "$id"
        ms "$t0" "$t1" >>"$WORK/add"; echo >>"$WORK/add"
        ms "$t1" "$t2" >>"$WORK/del"; echo >>"$WORK/del"
    done
    echo "$(median <"$WORK/add") $(median <"$WORK/del")"
}

preloaded=0
preload() { # bring both tools to N attached containers (each with a published port)
    local n=$1 i
    for ((i = preloaded; i < n; i++)); do
        ip netns add "pm-$i"; minc_add "pm-$i" $((20000 + i))
        ip netns add "pc-$i"; CNI_NETNS=/run/netns/pc-$i cni_add "pc-$i" $((30000 + i))
    done
    preloaded=$n
}

declare -A R
for level in 1 50 100; do
    [[ $level -gt 1 ]] && preload "$level"
    for tool in minc cni; do
        R[$tool,port,$level]=$(measure "$tool" 8080)
        R[$tool,noport,$level]=$(measure "$tool" "")
    done
done

echo
echo "netsetup vs CNI bridge+host-local+portmap: median ms over $ROUNDS runs (attach / detach)"
echo "(\"at N\" = marginal cost with N other containers attached; $(nproc) cores, kernel $(uname -r))"
printf '%-26s %18s %18s %18s\n' "" "at 1" "at 50" "at 100"
for variant in port noport; do
    for tool in minc cni; do
        label="$tool $( [[ $variant == port ]] && echo '(1 published port)' || echo '(no port)')"
        printf '%-26s' "$label"
        for level in 1 50 100; do
            read -r a d <<<"${R[$tool,$variant,$level]}"
            printf ' %8s / %7s' "$a" "$d"
        done
        echo
    done
    printf '%-26s' "  ratio cni/minc"
    for level in 1 50 100; do
        read -r ma md <<<"${R[minc,$variant,$level]}"
        read -r ca cd <<<"${R[cni,$variant,$level]}"
        printf ' %7sx / %6sx' "$(awk -v c="$ca" -v m="$ma" 'BEGIN{printf "%.1f", c/m}')" "$(awk -v c="$cd" -v m="$md" 'BEGIN{printf "%.1f", c/m}')"
    done
    echo
done
echo "sanity: $(ip -br link | grep -c veth) veths left, expected $((2 * preloaded)) (the preloaded containers)"
rm -rf "$WORK"
