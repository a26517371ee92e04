//! Connecting a container's network namespace to its bridge, and undoing it: which steps, in
//! which order, decided from what the [`System`] reports. Nothing here touches the kernel
//! directly, so the same logic runs against the fake in unit tests.
//!
//! The order is the order a person would type the commands in: the bridge (once), the
//! namespace's name (so `ip -n` can reach it), the veth pair with its peer born inside,
//! the container's side (lo, address, link, default route), the sysctls, then one nft batch.

use crate::nft::{Batch, Family};
use crate::ops::{self, Ns, Op, System};
use crate::state::State;
use crate::{netns, rules, Attachment, Error, Network};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The bridge's owner mark (its `ifalias`): which data root's network it is, so a second data
/// root on the same host is refused instead of sharing addresses and rules by accident.
pub fn owner_mark(net: &Network) -> String {
    let m = format!("minc {}", net.data_dir.display());
    if m.len() <= 255 {
        m
    } else {
        use sha2::Digest;
        let h = sha2::Sha256::digest(net.data_dir.as_os_str().as_encoded_bytes());
        let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("minc sha256:{hex}")
    }
}

/// The steps that make the bridge ready (created, owned, addressed, up), given what exists.
fn bridge_steps(
    sys: &mut dyn System,
    net: &Network,
    mtu: Option<u32>,
    steps: &mut Vec<Op>,
) -> Result<(), Error> {
    let b = &net.bridge;
    let mark = owner_mark(net);
    let existing = sys.link(None, b)?;
    match &existing {
        None => {
            steps.push(Op::BridgeAdd {
                name: b.clone(),
                mtu,
            });
            steps.push(Op::LinkAlias {
                name: b.clone(),
                alias: mark,
            });
        }
        Some(l) if l.alias.as_deref() == Some(mark.as_str()) => {}
        Some(l) => {
            // Another data root's bridge is refused while that data root exists; an unmarked
            // bridge (an older minc) or one whose data root was removed is adopted.
            if let Some(other) = l.alias.as_deref().and_then(|a| a.strip_prefix("minc ")) {
                let gone = !other.starts_with("sha256:") && !Path::new(other).exists();
                if !gone {
                    return Err(Error::Config(format!(
                        "bridge {b} belongs to the minc data root {other}; give data root {} a network with another bridge and subnet",
                        net.data_dir.display()
                    )));
                }
            }
            steps.push(Op::LinkAlias {
                name: b.clone(),
                alias: mark,
            });
        }
    }
    // Idempotent, so a bridge that lost its address is repaired by the next attach.
    steps.push(Op::AddrAdd {
        ns: None,
        dev: b.clone(),
        addr: IpAddr::V4(net.gateway),
        prefix_len: net.subnet.prefix_len(),
        broadcast: broadcast(net.subnet),
        replace: true,
        nodad: false,
    });
    if let (Some(s6), Some(g6)) = (net.subnet6, net.gateway6) {
        steps.push(Op::AddrAdd {
            ns: None,
            dev: b.clone(),
            addr: IpAddr::V6(g6),
            prefix_len: s6.prefix_len(),
            broadcast: None,
            replace: true,
            nodad: true,
        });
    }
    if !existing.as_ref().is_some_and(|l| l.up) {
        steps.push(Op::LinkUp {
            ns: None,
            dev: b.clone(),
        });
    }
    Ok(())
}

/// The broadcast address the kernel would not set by itself (none on /31 and /32).
pub fn broadcast(net: ipnet::Ipv4Net) -> Option<std::net::Ipv4Addr> {
    (net.prefix_len() < 31).then(|| net.broadcast())
}

/// A sysctl step, only if the value differs.
fn sysctl_step(
    sys: &mut dyn System,
    key: &str,
    value: &str,
    steps: &mut Vec<Op>,
) -> Result<(), Error> {
    if sys.sysctl(key)?.as_deref() != Some(value) {
        steps.push(Op::Sysctl {
            key: key.into(),
            value: value.into(),
        });
    }
    Ok(())
}

/// The nft batch of a connect: the skeleton when the kernel's tables are not at this
/// network's revision, then the container's elements (published ports, anti-spoofing).
fn nft_steps(
    sys: &mut dyn System,
    net: &Network,
    st: &State,
    steps: &mut Vec<Op>,
) -> Result<(), Error> {
    let mut cmds = Vec::new();
    let current = sys
        .nft_chain(Family::Inet, &rules::net_chain(net))?
        .flatten()
        == Some(rules::revision(net))
        && sys
            .nft_chain(Family::Bridge, rules::BRIDGE_CHAIN)?
            .flatten()
            == Some(rules::bridge_revision());
    if !current {
        cmds.extend(rules::skeleton(net));
    }
    let a = &st.allocation;
    for p in &a.ports {
        cmds.extend(
            rules::published(p, a.ip, a.ip6)
                .iter()
                .map(rules::Published::add),
        );
    }
    for (set, key) in rules::port_elements(&st.host_veth, a.ip, a.ip6) {
        cmds.push(rules::add_element(set, key));
    }
    steps.push(Op::Nft(Batch(cmds)));
    Ok(())
}

/// Where the namespace of `id` is published.
pub fn published_path(net: &Network, id: &str) -> PathBuf {
    net.run_netns_dir.join(netns::name(id))
}

/// Whether the namespace name is free (false: it already names this very namespace, published
/// for another network of the container). A name that exists for anything else (another data
/// root's container, someone's `ip netns add`) is refused: checked before the name is recorded,
/// so teardown never removes it.
pub fn check_name(target: &Path, expect: (u64, u64)) -> Result<bool, Error> {
    if !target.exists() {
        return Ok(true);
    }
    let ours = netns::open(target)
        .ok()
        .and_then(|f| netns::identity(&f).ok())
        == Some(expect);
    if ours {
        return Ok(false);
    }
    Err(Error::Netns {
        path: target.into(),
        source: std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "this namespace name is already in use",
        ),
    })
}

/// Publishes the namespace at `source` (identity `expect`) under its name.
pub fn publish(
    sys: &mut dyn System,
    source: &Path,
    target: &Path,
    expect: (u64, u64),
) -> Result<(), Error> {
    ops::run(
        sys,
        vec![Op::NetnsPublish {
            source: source.into(),
            target: target.into(),
            expect,
        }],
    )
}

/// Everything after publishing: bridge, veth, the container's side, sysctls, nft.
pub fn connect(sys: &mut dyn System, net: &Network, st: &State) -> Result<Attachment, Error> {
    let a = &st.allocation;
    let target = st
        .published
        .clone()
        .unwrap_or_else(|| published_path(net, &a.id));
    let ns = Ns(target);
    let mtu = match net.mtu {
        Some(m) => Some(m),
        None => sys.default_route_mtu()?,
    };
    let mut steps = Vec::new();
    bridge_steps(sys, net, mtu, &mut steps)?;
    steps.push(Op::VethAdd {
        name: st.host_veth.clone(),
        mtu,
        master: net.bridge.clone(),
        peer: st.ifname.clone(),
        peer_ns: ns.clone(),
    });
    steps.push(Op::Hairpin {
        dev: st.host_veth.clone(),
    });
    steps.push(Op::LinkUp {
        ns: Some(ns.clone()),
        dev: "lo".into(),
    });
    steps.push(Op::AddrAdd {
        ns: Some(ns.clone()),
        dev: st.ifname.clone(),
        addr: IpAddr::V4(a.ip),
        prefix_len: a.prefix_len,
        broadcast: broadcast(ipnet::Ipv4Net::new(a.ip, a.prefix_len).expect("valid prefix")),
        replace: false,
        nodad: false,
    });
    if let (Some(ip6), Some(plen)) = (a.ip6, a.prefix_len6) {
        steps.push(Op::AddrAdd {
            ns: Some(ns.clone()),
            dev: st.ifname.clone(),
            addr: IpAddr::V6(ip6),
            prefix_len: plen,
            broadcast: None,
            replace: false,
            nodad: true,
        });
    }
    steps.push(Op::LinkUp {
        ns: Some(ns.clone()),
        dev: st.ifname.clone(),
    });
    if a.default_route && !net.internal {
        steps.push(Op::DefaultRoute {
            ns: ns.clone(),
            via: IpAddr::V4(a.gateway),
            dev: st.ifname.clone(),
        });
        if let (Some(g6), Some(_)) = (a.gateway6, a.ip6) {
            steps.push(Op::DefaultRoute {
                ns: ns.clone(),
                via: IpAddr::V6(g6),
                dev: st.ifname.clone(),
            });
        }
    }
    sysctl_step(sys, "net.ipv4.ip_forward", "1", &mut steps)?;
    if net.subnet6.is_some() {
        // IPv6 forwarding is per interface; `all` sets every one (and stops the host taking
        // router advertisements on interfaces whose accept_ra is 1, as for Docker).
        sysctl_step(sys, "net.ipv6.conf.all.forwarding", "1", &mut steps)?;
    }
    if !a.ports.is_empty() {
        // Lets the host's 127.0.0.1 connections, DNATed in the output hook, leave via the
        // bridge; the table's input rule keeps containers off the host's loopback services.
        let key = format!("net.ipv4.conf.{}.route_localnet", net.bridge);
        sysctl_step(sys, &key, "1", &mut steps)?;
    }
    nft_steps(sys, net, st, &mut steps)?;
    ops::run(sys, steps)?;
    let l = sys.link(Some(&ns), &st.ifname)?;
    let mac_of = |l: Option<ops::LinkInfo>| l.and_then(|l| l.mac);
    Ok(Attachment {
        allocation: a.clone(),
        bridge: net.bridge.clone(),
        bridge_mac: mac_of(sys.link(None, &net.bridge)?),
        host_veth: st.host_veth.clone(),
        host_mac: mac_of(sys.link(None, &st.host_veth)?),
        ifname: st.ifname.clone(),
        mac: l.as_ref().and_then(|l| l.mac.clone()),
        mtu: l.and_then(|l| l.mtu).or(mtu).unwrap_or(1500),
        netns_name: netns::name(&a.id),
    })
}

/// Undoes what connect made; idempotent and fine when the namespace is gone. When the
/// container's namespace is gone, the veth pair is not deleted (the kernel deletes it with
/// the namespace, asynchronously, once its name is unmounted; a synchronous delete costs
/// 10-40 ms): the host side only leaves the bridge. The namespace's name stays when
/// `keep_name` (another network of the container still uses it).
pub fn disconnect(sys: &mut dyn System, st: &State, keep_name: bool) -> Result<(), Error> {
    let a = &st.allocation;
    let mut cmds = Vec::new();
    for p in &a.ports {
        for e in rules::published(p, a.ip, a.ip6) {
            // Only elements that still point at this container (a port may have moved on).
            let held = sys.nft_elements(Family::Inet, &e.map, Some(&e.key))?;
            if held.iter().any(|(_, d)| *d == e.data.bytes()) {
                cmds.push(e.delete());
            }
        }
    }
    for (set, key) in rules::port_elements(&st.host_veth, a.ip, a.ip6) {
        if !sys
            .nft_elements(Family::Bridge, set, Some(&key))?
            .is_empty()
        {
            cmds.push(rules::delete_element(set, key));
        }
    }
    let mut steps = Vec::new();
    if !cmds.is_empty() {
        steps.push(Op::Nft(Batch(cmds)));
    }
    let gone = st.netns.as_ref().is_none_or(|n| n.gone());
    if !gone {
        steps.push(Op::LinkDel {
            name: st.host_veth.clone(),
        });
    } else if sys.link(None, &st.host_veth)?.is_some() {
        steps.push(Op::LinkNomaster {
            name: st.host_veth.clone(),
        });
    }
    if let Some(t) = &st.published {
        if t.exists() && !keep_name {
            steps.push(Op::NetnsUnpublish { target: t.clone() });
        }
    }
    ops::run(sys, steps)
}
