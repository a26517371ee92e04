//! The network part of `minc --explain` is a script that reproduces what minc did.
//!
//! In one sandbox, `minc --explain run -d -p 8080:8000 echo-server` runs for real and prints its
//! steps. The network section of that transcript (from `# netsetup: connect` to
//! `# netsetup: ... connected`) is then run with `sh -e` in a fresh sandbox (new network and
//! mount namespaces), where a plain `unshare --net sleep` stands in for the container (its PID
//! replaces the container's in `/proc/PID/ns/net`). Both sides are then described the same way
//! — links (`ip -d -j link`), addresses, routes, the sysctls minc sets and minc's nft table
//! (`nft -j list table inet minc`) — and compared field by field. Any difference fails.
//!
//! Normalised before comparing, because they differ between any two runs of the same commands:
//! interface indexes and netns ids, MAC addresses (random) and what embeds them (bridge ids,
//! IPv6 link-local addresses), and the bridge's running timers. Names are not normalised: the
//! replay uses the transcript's own (the veth's name is derived from the container's id).

use std::path::Path;

use minc_tests::docker_face::DockerFace;
use minc_tests::net::{echo_ok, setup_wan};
use serde_json::Value;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// Describes the network state a connect makes: host side (the bridge `$4`, the veth), the
/// container's namespace (`$1`), sysctls and minc's nft tables, as JSON files in `$3`; with a
/// resolver on the bridge (`$5`: a name to look up), what it answers.
const SNAPSHOT: &str = r#"set -e
ns=$1 veth=$2 out=$3 br=$4 name=$5
mkdir -p "$out"
ip -d -j link show "$br" > "$out/link-bridge.json"
ip -d -j link show "$veth" > "$out/link-veth.json"
ip -j addr show dev "$br" > "$out/addr-bridge.json"
ip -j route show dev "$br" > "$out/route-bridge.json"
ip -j -6 route show dev "$br" > "$out/route6-bridge.json"
nsenter --net="$ns" ip -d -j link > "$out/link-container.json"
nsenter --net="$ns" ip -j addr > "$out/addr-container.json"
nsenter --net="$ns" ip -j route > "$out/route-container.json"
nsenter --net="$ns" ip -j -6 route > "$out/route6-container.json"
{
  printf '{'
  for k in net/ipv4/ip_forward net/ipv4/conf/$br/route_localnet net/ipv4/conf/$br/forwarding net/ipv4/conf/all/forwarding net/ipv6/conf/all/forwarding; do
    printf '"%s": "%s", ' "$k" "$(cat /proc/sys/$k)"
  done
  printf '"container/net/ipv4/ip_forward": "%s"}' "$(nsenter --net="$ns" cat /proc/sys/net/ipv4/ip_forward)"
} > "$out/sysctl.json"
nft -j list table inet minc > "$out/nft.json"
nft -j list table bridge minc > "$out/nft-bridge.json"
if [ -n "$name" ]; then
  gw=$(ip -j -4 addr show dev "$br" | sed 's/.*"local":"\([0-9.]*\)".*/\1/')
  for i in 1 2 3 4 5 6 7 8 9 10; do
    a=$(nsenter --net="$ns" busybox nslookup "$name" "$gw" 2>/dev/null | sed -n 's/^Address: \([0-9a-f.:]*\)$/\1/p' | sort | tr '\n' ' ')
    [ -n "$a" ] && break
    sleep 0.1
  done
  printf '{"answer": "%s"}' "$a" > "$out/dns.json"
fi
"#;

/// Runs the replay in its own sandbox: a fresh /run/netns, a copy of the network's state
/// directory over the original (the script writes the names file and the resolver's pid file
/// there), a sleeping stand-in for the container, the script with the container's PID
/// substituted, then the snapshot.
const REPLAY: &str = r#"set -e
dir=$1 oldpid=$2 veth=$3 br=$4 name=$5 net=$6
mount -t tmpfs -o mode=0755 tmpfs /run/netns
if [ -n "$net" ]; then cp -a "$net" "$dir/net-copy" && mount --bind "$dir/net-copy" "$net"; fi
ip link set lo up
unshare --net sleep 600 &
s=$!
while [ "$(readlink /proc/$s/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.01; done
sed "s#/proc/$oldpid/ns/net#/proc/$s/ns/net#g" "$dir/net.sh" > "$dir/net-replay.sh"
sh -e "$dir/net-replay.sh" > "$dir/replay.log" 2>&1 || { cat "$dir/replay.log" >&2; kill $s; exit 1; }
sh "$dir/snapshot.sh" "/proc/$s/ns/net" "$veth" "$dir/b" "$br" "$name"
kill $s
"#;

/// The lines between the two netsetup markers, as a shell script: `+ ` removed from each
/// command line, heredoc bodies kept as they are. Also returns the id and the container's PID.
fn network_section(transcript: &str) -> (String, String, String) {
    let mut out = String::new();
    let mut on = false;
    let mut heredoc: Option<String> = None;
    let (mut id, mut pid) = (String::new(), String::new());
    for line in transcript.lines() {
        if let Some(tag) = &heredoc {
            if on {
                out.push_str(line);
                out.push('\n');
            }
            if line == tag {
                heredoc = None;
            }
            continue;
        }
        let Some(cmd) = line.strip_prefix("+ ") else {
            continue;
        };
        if let Some(rest) = cmd.strip_prefix("# netsetup: connect ") {
            // "# netsetup: connect ID (namespace /proc/PID/ns/net) to network minc"
            id = rest.split(' ').next().unwrap().to_string();
            pid = rest
                .split("/proc/")
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap()
                .to_string();
            on = true;
            continue;
        }
        if on && cmd == format!("# netsetup: {id} connected") {
            on = false;
            continue;
        }
        if let Some(i) = cmd.find("<<'") {
            let tag = cmd[i + 3..].split('\'').next().unwrap().to_string();
            heredoc = Some(tag);
        }
        if on {
            out.push_str(cmd);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no network section in:\n{transcript}");
    (out, id, pid)
}

/// Removes what differs between any two runs of the same commands (see the module docs).
fn normalise(v: &mut Value) {
    const VOLATILE: &[&str] = &[
        "ifindex",
        "link_index",
        "link_netnsid",
        "address",
        "bridge_id",
        "root_id",
        "designated_root",
        "designated_bridge",
        "hello_timer",
        "tcn_timer",
        "topology_change_timer",
        "gc_timer",
        "hold_timer",
        "message_age_timer",
        "forward_delay_timer",
        "preferred_life_time",
        "valid_life_time",
    ];
    match v {
        Value::Object(m) => {
            // "address" is a MAC on a link (which has a link_type); elsewhere it is compared.
            let is_link = m.contains_key("link_type");
            for k in VOLATILE {
                if *k != "address" || is_link {
                    m.remove(*k);
                }
            }
            if let Some(Value::Array(ai)) = m.get_mut("addr_info") {
                // IPv6 link-local addresses are derived from the (random) MAC.
                ai.retain(|a| !(a["family"] == "inet6" && a["scope"] == "link"));
            }
            m.values_mut().for_each(normalise);
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// Every path where `a` and `b` differ.
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                diff(
                    &format!("{path}.{k}"),
                    &x[k.as_str()].clone(),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(format!("{path}: minc {a} / replay {b}")),
        _ => {}
    }
}

fn load(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    let mut v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"));
    normalise(&mut v);
    v
}

/// `minc --explain ARGS` with the test's roots: the transcript (stderr).
fn explain(d: &DockerFace, args: &[&str]) -> String {
    let mut explain = vec!["--explain"];
    explain.extend(args);
    let out = d.minc(&explain);
    let transcript = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{transcript}");
    transcript
}

/// The sandbox as a host whose default route out has an MTU of 1480 (what minc's links get),
/// and minc with roots of the test's own.
fn host() -> DockerFace {
    setup_wan(Some(1480));
    DockerFace::new(MINC)
}

/// Replays the network section of `transcript` and compares both sides. `bridge`: the
/// network's bridge; `name`: a name its resolver must answer (both sides); `net`: the
/// network's state directory (copied for the replay).
fn replay_and_compare(dir: &Path, transcript: &str, bridge: &str, name: &str, net: &str) -> String {
    let (script, _id, pid) = network_section(transcript);
    // No fd numbers of minc's own, and the steps that need a name come after it is made.
    assert!(!script.contains("/proc/self/fd"), "{script}");
    let publish = script
        .find("mount --bind")
        .expect("the namespace is published");
    assert!(script.find("ip -n ").unwrap() > publish, "{script}");
    let veth = script
        .lines()
        .find_map(|l| l.strip_prefix("ip link add veth"))
        .map(|r| format!("veth{}", r.split(' ').next().unwrap()))
        .expect("a veth is made");
    std::fs::write(dir.join("net.sh"), &script).unwrap();
    std::fs::write(dir.join("snapshot.sh"), SNAPSHOT).unwrap();
    minc_tests::run(
        "sh",
        &[
            dir.join("snapshot.sh").to_str().unwrap(),
            &format!("/proc/{pid}/ns/net"),
            &veth,
            dir.join("a").to_str().unwrap(),
            bridge,
            name,
        ],
    );
    std::fs::write(dir.join("replay-driver.sh"), REPLAY).unwrap();
    minc_tests::run(
        "unshare",
        &[
            "--net",
            "--mount",
            "--propagation",
            "private",
            "sh",
            dir.join("replay-driver.sh").to_str().unwrap(),
            dir.to_str().unwrap(),
            &pid,
            &veth,
            bridge,
            name,
            net,
        ],
    );
    let mut files = vec![
        "link-bridge.json",
        "link-veth.json",
        "addr-bridge.json",
        "route-bridge.json",
        "route6-bridge.json",
        "link-container.json",
        "addr-container.json",
        "route-container.json",
        "route6-container.json",
        "sysctl.json",
        "nft.json",
        "nft-bridge.json",
    ];
    if !name.is_empty() {
        files.push("dns.json");
    }
    let mut differences = Vec::new();
    for f in files {
        let (a, b) = (load(&dir.join("a"), f), load(&dir.join("b"), f));
        assert!(!a.is_null() && a != Value::Array(vec![]), "{f} is empty");
        diff(f, &a, &b, &mut differences);
    }
    assert!(
        differences.is_empty(),
        "the replayed script made something else:\n{}\n\nscript:\n{script}",
        differences.join("\n")
    );
    script
}

#[test]
fn network_explain_replays_to_the_same_state() {
    minc_tests::sandbox!();
    let d = host();
    let transcript = explain(&d, &["run", "-d", "-p", "8080:8000", "echo-server"]);
    let (_, id, _) = network_section(&transcript);
    replay_and_compare(&d.dir, &transcript, "minc0", "", "");
    // The echo server answers through what minc made.
    echo_ok("127.0.0.1:8080");
    let _ = d.minc(&["rm", "-f", &id]);
}

/// The same for the first container of a dual-stack user-defined network: IPv6 addresses
/// without duplicate address detection, IPv6 routes and forwarding, both of minc's nft tables,
/// the container's names file and the network's resolver, which answers the same on both sides.
#[test]
fn user_network_explain_replays_to_the_same_state() {
    minc_tests::sandbox!();
    let d = host();
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:5::/64",
        "rn",
    ]);
    let inspect: Value = serde_json::from_str(&d.ok(&["network", "inspect", "rn"])).unwrap();
    let bridge = inspect[0]["Options"]["bridge"]
        .as_str()
        .unwrap()
        .to_string();
    let transcript = explain(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "rn",
            "-p",
            "8080:8000",
            "echo-server",
        ],
    );
    let net = d.data.join("net/rn");
    let script = replay_and_compare(&d.dir, &transcript, &bridge, "web", net.to_str().unwrap());
    for step in [
        "-6 addr replace fd00:5::1/64 dev",
        "-6 addr add fd00:5::2/64 dev eth0 nodad",
        "-6 route add default via fd00:5::1 dev eth0",
        "sysctl -w net.ipv6.conf.all.forwarding=1",
        "add element bridge minc spoof6 {",
        "/names/",
        "setsid -f ",
    ] {
        assert!(script.contains(step), "{step:?} missing from:\n{script}");
    }
    let answer = load(&d.dir.join("a"), "dns.json");
    assert!(
        answer["answer"].as_str().unwrap().contains("fd00:5::2"),
        "{answer}"
    );
    d.ok(&["rm", "-f", "web"]);
}
