//! nftables: one table (`inet minc`) owned by minc; nothing else is ever touched.
//!
//! ```text
//! table inet minc {
//!   map tcp_addr { type inet_service : ipv4_addr }      # host port -> container address
//!   map tcp_port { type inet_service : inet_service }   # host port -> container port
//!   map udp_addr, udp_port { ... }
//!   set bridges   { type ifname }                                     # every minc bridge
//!   chain prerouting  { nat prerouting -100:  fib daddr type local  dnat via the port maps }
//!   chain output      { nat output -100:      same, for the host's own connections (127.0.0.1) }
//!   chain postrouting { nat postrouting 100:  oifname @bridges ip saddr 127.0.0.0/8 masquerade }
//!   chain nat-<net>   { nat postrouting 100:  ip saddr SUBNET oifname != BRIDGE masquerade
//!                                             ip saddr SUBNET oifname BRIDGE ct status dnat masquerade }
//!   chain forward     { filter forward 0: accept to/from the bridges }
//! }
//! ```
//! Rules never depend on containers: a container only adds map elements, so the rule count
//! and the cost of an attach stay flat. Each connect re-asserts the skeleton (add is
//! idempotent, our own chains are flushed and refilled) in the same atomic batch as its
//! elements, which also repairs a table someone deleted.

use crate::explain::explain;
use crate::{Error, Network, PortMapping, Protocol};
use serde_json::{json, Value};
use sha2::Digest;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

pub const TABLE: &str = "minc";

/// Host port -> container address.
fn addr_map(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp_addr",
        Protocol::Udp => "udp_addr",
    }
}

/// Host port -> container port.
fn port_map(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp_port",
        Protocol::Udp => "udp_port",
    }
}

fn net_chain(net: &Network) -> String {
    format!("nat-{}", net.name)
}

fn table() -> Value {
    json!({"family": "inet", "name": TABLE})
}

fn chain(name: &str, base: Option<(&str, &str, i32)>) -> Value {
    let mut c = json!({"family": "inet", "table": TABLE, "name": name});
    if let Some((ty, hook, prio)) = base {
        c["type"] = json!(ty);
        c["hook"] = json!(hook);
        c["prio"] = json!(prio);
        c["policy"] = json!("accept");
    }
    c
}

fn rule(chain: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": expr}}})
}

fn meta_eq(key: &str, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}})
}

/// `meta nfproto ipv4 fib daddr type local meta l4proto P dnat ip to P dport map @P_addr : P dport map @P_port`
///
/// One concatenated map (`ipv4_addr . inet_service` data) would do in nft's text syntax, but
/// nft 1.0.6 segfaults on that rule in JSON, so address and port live in two maps.
fn dnat_rule(chain: &str, p: Protocol) -> Value {
    let proto = p.to_string();
    rule(
        chain,
        vec![
            meta_eq("nfproto", "==", json!("ipv4")),
            json!({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}),
            meta_eq("l4proto", "==", json!(proto)),
            json!({"dnat": {"family": "ip",
                "addr": {"map": {"key": {"payload": {"protocol": proto, "field": "dport"}}, "data": format!("@{}", addr_map(p))}},
                "port": {"map": {"key": {"payload": {"protocol": proto, "field": "dport"}}, "data": format!("@{}", port_map(p))}}}}),
        ],
    )
}

/// The two elements publishing `p` to `ip`.
fn elements(p: &PortMapping, ip: Ipv4Addr) -> [Value; 2] {
    [
        json!({"element": {"family": "inet", "table": TABLE, "name": addr_map(p.protocol),
            "elem": [[p.host_port, ip.to_string()]]}}),
        json!({"element": {"family": "inet", "table": TABLE, "name": port_map(p.protocol),
            "elem": [[p.host_port, p.container_port]]}}),
    ]
}

/// The skeleton plus this network's chain, as commands (all idempotent).
fn skeleton(net: &Network, cmds: &mut Vec<Value>) {
    let b = net.bridge.as_str();
    let nc = net_chain(net);
    cmds.push(json!({"add": {"table": table()}}));
    for p in [Protocol::Tcp, Protocol::Udp] {
        cmds.push(
            json!({"add": {"map": {"family": "inet", "table": TABLE, "name": addr_map(p),
            "type": "inet_service", "map": "ipv4_addr"}}}),
        );
        cmds.push(
            json!({"add": {"map": {"family": "inet", "table": TABLE, "name": port_map(p),
            "type": "inet_service", "map": "inet_service"}}}),
        );
    }
    cmds.push(json!({"add": {"set": {"family": "inet", "table": TABLE, "name": "bridges", "type": "ifname"}}}));
    let bases = [
        ("prerouting", ("nat", "prerouting", -100)),
        // The output hook rejects "dstnat" as priority; -100 is the same number.
        ("output", ("nat", "output", -100)),
        ("postrouting", ("nat", "postrouting", 100)),
        ("forward", ("filter", "forward", 0)),
    ];
    for (name, base) in bases {
        cmds.push(json!({"add": {"chain": chain(name, Some(base))}}));
        cmds.push(json!({"flush": {"chain": chain(name, None)}}));
    }
    // Each network has its own srcnat base chain, so networks never need to know each other
    // and re-asserting one never disturbs another.
    cmds.push(json!({"add": {"chain": chain(&nc, Some(("nat", "postrouting", 100)))}}));
    cmds.push(json!({"flush": {"chain": chain(&nc, None)}}));
    for c in ["prerouting", "output"] {
        cmds.push(dnat_rule(c, Protocol::Tcp));
        cmds.push(dnat_rule(c, Protocol::Udp));
    }
    // The host's own 127.0.0.1 connections DNATed to a container (needs route_localnet on
    // the bridge) must leave with an address the container can answer to.
    cmds.push(rule(
        "postrouting",
        vec![
            meta_eq("oifname", "==", json!("@bridges")),
            json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "127.0.0.0", "len": 8}}}}),
            json!({"masquerade": null}),
        ],
    ));
    // Per network: masquerade what leaves the bridge's subnet, and hairpin (a container
    // reaching itself or a neighbour through a published port) so replies come back via us.
    let saddr = json!({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
        "right": {"prefix": {"addr": net.subnet.network().to_string(), "len": net.subnet.prefix_len()}}}});
    cmds.push(rule(
        &nc,
        vec![
            saddr.clone(),
            meta_eq("oifname", "!=", json!(b)),
            json!({"masquerade": null}),
        ],
    ));
    cmds.push(rule(
        &nc,
        vec![
            saddr,
            meta_eq("oifname", "==", json!(b)),
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            json!({"masquerade": null}),
        ],
    ));
    // Forward accepts, so containers work even where another table's policy is stricter.
    cmds.push(rule(
        "forward",
        vec![
            meta_eq("oifname", "==", json!("@bridges")),
            json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}),
            json!({"accept": null}),
        ],
    ));
    cmds.push(rule(
        "forward",
        vec![
            meta_eq("iifname", "==", json!("@bridges")),
            json!({"accept": null}),
        ],
    ));
    cmds.push(rule(
        "forward",
        vec![
            meta_eq("oifname", "==", json!("@bridges")),
            json!({"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}),
            json!({"accept": null}),
        ],
    ));
    cmds.push(json!({"add": {"element": {"family": "inet", "table": TABLE, "name": "bridges", "elem": [b]}}}));
}

/// Publishes a container's ports. The skeleton costs nft ~15 ms to parse and apply, so it is
/// re-asserted only when this network's marker (under the volatile run dir, so a reboot
/// clears it along with the kernel's tables) does not match it; otherwise the batch holds just
/// the elements plus a probe (`add element bridges`) that fails if someone removed the table,
/// in which case every marker is dropped and the full batch is applied.
pub fn connect(net: &Network, ip: Ipv4Addr, ports: &[PortMapping]) -> Result<(), Error> {
    let full = connect_batch(net, ip, ports);
    // The marker holds a hash of the skeleton alone (the last 2 commands per port are elements).
    let skel_len = full.len() - 2 * ports.len();
    let key_skel = format!(
        "{:x}",
        sha2::Sha256::digest(
            Value::Array(full[..skel_len].to_vec())
                .to_string()
                .as_bytes()
        )
    );
    let marker = net.run_dir.join(format!("{}.nft", net.name));
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(key_skel.as_str()) {
        let mut cmds = vec![
            json!({"add": {"element": {"family": "inet", "table": TABLE, "name": "bridges", "elem": [net.bridge]}}}),
        ];
        cmds.extend_from_slice(&full[skel_len..]);
        if apply(cmds).is_ok() {
            return Ok(());
        }
        // The table changed under us: no network's marker can be trusted any more.
        for e in std::fs::read_dir(&net.run_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.path().extension().is_some_and(|x| x == "nft") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    apply(full)?;
    let _ = crate::state::write_atomic(&marker, key_skel.as_bytes(), 0o644);
    Ok(())
}

/// The batch for connecting a container: skeleton + its port elements.
pub fn connect_batch(net: &Network, ip: Ipv4Addr, ports: &[PortMapping]) -> Vec<Value> {
    let mut cmds = Vec::new();
    skeleton(net, &mut cmds);
    for p in ports {
        cmds.extend(elements(p, ip).map(|e| json!({"add": e})));
    }
    cmds
}

/// The batch for removing a container's elements. Each element is added (a no-op when it is
/// there with the same value) then deleted, so the batch succeeds whether or not an earlier
/// teardown already removed it.
pub fn disconnect_batch(ip: Ipv4Addr, ports: &[PortMapping]) -> Vec<Value> {
    let mut cmds = Vec::new();
    for p in ports {
        for e in elements(p, ip) {
            cmds.push(json!({"add": e.clone()}));
            cmds.push(json!({"delete": e}));
        }
    }
    cmds
}

pub fn explain_connect(net: &Network, ip: Ipv4Addr, ports: &[PortMapping]) {
    explain!("nft -f - <<EOF  # table inet {TABLE}: maps tcp_addr/tcp_port/udp_addr/udp_port, set bridges, chains prerouting/output/postrouting/forward/{}", net_chain(net));
    explain!(
        "nft add element inet {TABLE} bridges {{ \"{}\" }}",
        net.bridge
    );
    explain!(
        "nft add rule inet {TABLE} {} ip saddr {} oifname != \"{}\" masquerade",
        net_chain(net),
        net.subnet,
        net.bridge
    );
    for p in ports {
        explain!(
            "nft add element inet {TABLE} {} {{ {} : {ip} }}",
            addr_map(p.protocol),
            p.host_port
        );
        explain!(
            "nft add element inet {TABLE} {} {{ {} : {} }}",
            port_map(p.protocol),
            p.host_port,
            p.container_port
        );
    }
}

pub fn explain_disconnect(ip: Ipv4Addr, ports: &[PortMapping]) {
    for p in ports {
        explain!(
            "nft delete element inet {TABLE} {} {{ {} : {ip} }}",
            addr_map(p.protocol),
            p.host_port
        );
        explain!(
            "nft delete element inet {TABLE} {} {{ {} : {} }}",
            port_map(p.protocol),
            p.host_port,
            p.container_port
        );
    }
}

/// Validates the commands through the `nftables` crate's schema, then runs them as one
/// atomic batch with `nft -j -f -`, keeping nft's stderr for the error.
pub fn apply(cmds: Vec<Value>) -> Result<(), Error> {
    if cmds.is_empty() {
        return Ok(());
    }
    let typed = typed(cmds)?;
    let payload = serde_json::to_string(&typed).expect("serializes");
    if std::env::var_os("NETSETUP_NFT_DEBUG").is_some() {
        eprintln!("nft -j -f - <<< '{payload}'");
    }
    run_nft(&["-j", "-f", "-"], Some(&payload)).map(|_| ())
}

/// Checks every command against the `nftables` crate's schema, naming the one that fails.
fn typed(cmds: Vec<Value>) -> Result<nftables::schema::Nftables<'static>, Error> {
    let mut objects = Vec::with_capacity(cmds.len());
    for c in cmds {
        let o: nftables::schema::NfObject<'static> =
            serde_json::from_value(c.clone()).map_err(|e| {
                Error::Nft(format!(
                    "internal: {c} does not fit the nftables schema: {e}"
                ))
            })?;
        objects.push(o);
    }
    Ok(nftables::schema::Nftables {
        objects: objects.into(),
    })
}

/// The nft binary: from PATH, else where Debian puts it (a caller may run with no PATH).
fn nft_binary() -> &'static str {
    let in_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("nft").is_file()));
    if in_path || !std::path::Path::new("/usr/sbin/nft").is_file() {
        "nft"
    } else {
        "/usr/sbin/nft"
    }
}

fn run_nft(args: &[&str], stdin: Option<&str>) -> Result<String, Error> {
    let mut child = Command::new(nft_binary())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Nft(format!("cannot run nft: {e}")))?;
    if let Some(s) = stdin {
        let mut w = child.stdin.take().unwrap();
        w.write_all(s.as_bytes())
            .map_err(|e| Error::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Nft(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Error::Nft(if err.is_empty() {
            format!("nft exited with {}", out.status)
        } else {
            err
        }))
    }
}

/// The elements of one map as (key, value) JSON pairs; empty if the table or map is missing.
fn list_map(name: &str) -> Result<Vec<(u64, Value)>, Error> {
    let out = match run_nft(&["-j", "list", "map", "inet", TABLE, name], None) {
        Ok(o) => o,
        // The map (or table) does not exist: nothing is published. Not to be confused with
        // nft itself missing, which must fail the caller.
        Err(Error::Nft(e)) if e.contains("No such file") && !e.starts_with("cannot run nft") => {
            return Ok(vec![])
        }
        Err(e) => return Err(e),
    };
    let v: Value =
        serde_json::from_str(&out).map_err(|e| Error::Nft(format!("bad json from nft: {e}")))?;
    let mut res = Vec::new();
    for obj in v["nftables"].as_array().into_iter().flatten() {
        for el in obj["map"]["elem"].as_array().into_iter().flatten() {
            if let Some(k) = el[0].as_u64() {
                res.push((k, el[1].clone()));
            }
        }
    }
    Ok(res)
}

/// Published ports of one protocol: (host port, container address, container port).
pub fn list_elements(p: Protocol) -> Result<Vec<(u16, Ipv4Addr, u16)>, Error> {
    let ports = list_map(port_map(p))?;
    let mut res = Vec::new();
    for (k, ip) in list_map(addr_map(p))? {
        let ip = ip.as_str().and_then(|s| s.parse().ok());
        let cp = ports
            .iter()
            .find(|(pk, _)| *pk == k)
            .and_then(|(_, v)| v.as_u64());
        if let (Some(ip), Some(cp)) = (ip, cp) {
            res.push((k as u16, ip, cp as u16));
        }
    }
    Ok(res)
}

/// Removes a container's elements; idempotent, and only elements that still point at `ip`.
pub fn disconnect(ip: Ipv4Addr, ports: &[PortMapping]) -> Result<(), Error> {
    if ports.is_empty() {
        return Ok(());
    }
    explain_disconnect(ip, ports);
    if apply(disconnect_batch(ip, ports)).is_ok() {
        return Ok(());
    }
    // The table is gone, or a port now maps elsewhere: delete only what is still ours.
    let mut cmds = Vec::new();
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let present = list_elements(proto)?;
        for p in ports.iter().filter(|p| p.protocol == proto) {
            if present.contains(&(p.host_port, ip, p.container_port)) {
                cmds.extend(elements(p, ip).map(|e| json!({"delete": e})));
            }
        }
    }
    apply(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_batch_parses_with_the_crate_schema() {
        let net = Network::default();
        let ports = vec!["8080:80".parse().unwrap(), "53:53/udp".parse().unwrap()];
        let cmds = connect_batch(&net, "10.77.0.2".parse().unwrap(), &ports);
        let back = serde_json::to_value(typed(cmds.clone()).unwrap()).unwrap();
        let s = back.to_string();
        assert!(
            s.contains(r#""elem":[[8080,"10.77.0.2"]],"family":"inet","name":"tcp_addr""#),
            "{s}"
        );
        assert!(
            s.contains(r#""elem":[[8080,80]],"family":"inet","name":"tcp_port""#),
            "{s}"
        );
        assert!(s.contains(r#""name":"udp_addr""#));
        assert!(s.contains(r#""name":"nat-minc""#));
        // Rules do not depend on containers: same number of rules for 0 and 2 ports.
        let rules = |c: &Vec<Value>| c.iter().filter(|v| v["add"]["rule"].is_object()).count();
        assert_eq!(
            rules(&cmds),
            rules(&connect_batch(&net, "10.77.0.3".parse().unwrap(), &[]))
        );
    }

    #[test]
    fn disconnect_batch_adds_then_deletes() {
        let cmds = disconnect_batch("10.77.0.2".parse().unwrap(), &["8080:80".parse().unwrap()]);
        assert_eq!(cmds.len(), 4);
        assert!(cmds[0]["add"]["element"].is_object());
        assert_eq!(cmds[1]["delete"]["element"]["name"], "tcp_addr");
        assert_eq!(cmds[3]["delete"]["element"]["name"], "tcp_port");
        typed(cmds).unwrap();
    }
}
