//! What minc keeps in nftables: two tables named `minc` (nothing else is ever touched), whose
//! rules never depend on containers. A container only adds set elements, so the rule count and
//! the cost of an attach stay flat however many containers run.
//!
//! ```text
//! table inet minc {
//!   map tcp4    { type inet_service : ipv4_addr . inet_service }              # -p H:C
//!   map tcp4_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service }  # -p IP:H:C
//!   map tcp6, tcp6_ip, udp4, udp4_ip, udp6, udp6_ip { the same per protocol and family }
//!   set bridges { type ifname }                                   # every minc bridge
//!   chain prerouting  { nat prerouting -100: meta nfproto ipv4 fib daddr type local meta l4proto tcp
//!                         dnat ip to ip daddr . tcp dport map @tcp4_ip, then by port alone (@tcp4), ... }
//!   chain output      { nat output -100:     the same, for the host's own connections }
//!   chain postrouting { nat postrouting 100: oifname @bridges ip saddr 127.0.0.0/8 masquerade }
//!   chain forward     { filter forward 0:    accept to and from the bridges }
//!   chain input       { filter input 0:      iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop }
//!   chain nat-BRIDGE  { nat postrouting 100: ip saddr SUBNET oifname != BRIDGE masquerade (+ ip6, + hairpin) }
//!   chain fwd-BRIDGE  { filter forward 0:    iifname BRIDGE oifname @bridges oifname != BRIDGE
//!                                            ct status & dnat == 0 drop   (or, --internal: nothing in or out) }
//! }
//! table bridge minc {
//!   set ports  { type ifname }                       # every container's host-side veth
//!   set spoof4 { type ifname . ipv4_addr }           # (veth, the container's address)
//!   set spoof6 { type ifname . ipv6_addr }
//!   chain prerouting { filter prerouting -300: iifname @ports ether type ip iifname . ip saddr != @spoof4 drop
//!                      ... arp saddr ip, ip6 saddr (link-local and :: excepted) }
//! }
//! ```
//!
//! - Published ports are DNAT through maps whose data is `address . port`; a port published
//!   on one host address is keyed by `address . port` and looked up first.
//! - Each network has two chains named after its bridge (bridge names are unique on a host):
//!   its masquerade, and its isolation. Docker's rule: nothing goes from one network's bridge to
//!   another's (a container on both talks to each directly, over its own links); published
//!   ports stay reachable from every network, since their traffic was DNATed. An `--internal`
//!   network forwards nothing at all, and has no masquerade.
//! - Anti-spoofing needs the `bridge` family: two containers on one bridge talk through the
//!   bridge, whose switching never reaches the `inet` hooks. A frame entering a bridge from a
//!   container's veth must carry, as IPv4, ARP or IPv6 source, the address that veth was given.
//! - The `input` rule closes CVE-2020-8558: a published port is reachable on the host's
//!   127.0.0.1, which needs `route_localnet=1` on the bridge; without the rule, a container could
//!   then send packets to any service listening on the host's loopback addresses.
//!
//! Each network's `nat-BRIDGE` chain carries, as its comment, the revision of the rules minc
//! wants for it (and the bridge table's chain that of its rules); a connect applies the whole
//! skeleton again only when a comment differs (a new minc, a deleted table, a reboot), so the
//! common case is one small batch of elements.

use crate::nft::{
    Base, Change, Command, EtherType, Family, Field, Hook, IpFamily, Stmt, Type, Types, Value,
};
use crate::{Network, PortMapping, Protocol};
use ipnet::IpNet;
use sha2::Digest;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every minc bridge (`inet` table).
pub const BRIDGES: &str = "bridges";
/// Every container's host-side veth (`bridge` table).
pub const PORTS: &str = "ports";
pub const SPOOF4: &str = "spoof4";
pub const SPOOF6: &str = "spoof6";
/// The `bridge` table's one chain.
pub const BRIDGE_CHAIN: &str = "prerouting";

/// The DNAT map of a protocol and family, keyed by port (`tcp4`) or by address and port
/// (`tcp4_ip`).
pub fn dnat_map(proto: Protocol, fam: IpFamily, by_addr: bool) -> String {
    let n = match fam {
        IpFamily::V4 => 4,
        IpFamily::V6 => 6,
    };
    format!("{proto}{n}{}", if by_addr { "_ip" } else { "" })
}

/// The network's own postrouting chain (carries the revision).
pub fn net_chain(net: &Network) -> String {
    format!("nat-{}", net.bridge)
}

/// The network's own forward chain (isolation).
pub fn fwd_chain(net: &Network) -> String {
    format!("fwd-{}", net.bridge)
}

fn base(kind: &'static str, hook: Hook, prio: i32) -> Option<Base> {
    Some(Base { kind, hook, prio })
}

/// `add chain`, `flush chain`, then the rules: a chain of minc's, whatever it held before.
fn chain(family: Family, name: &str, b: Option<Base>, rules: Vec<Vec<Stmt>>) -> Vec<Command> {
    let mk = |change| Command { family, change };
    let mut v = vec![
        mk(Change::AddChain {
            name: name.into(),
            base: b,
            comment: None,
        }),
        mk(Change::FlushChain { name: name.into() }),
    ];
    v.extend(rules.into_iter().map(|stmts| {
        mk(Change::AddRule {
            chain: name.into(),
            stmts,
        })
    }));
    v
}

fn families() -> [(IpFamily, Type); 2] {
    [
        (IpFamily::V4, Type::Ipv4Addr),
        (IpFamily::V6, Type::Ipv6Addr),
    ]
}

const PROTOCOLS: [Protocol; 2] = [Protocol::Tcp, Protocol::Udp];

/// The `inet` table's objects every network shares.
fn shared_inet() -> Vec<Command> {
    let mut c = vec![Command::inet(Change::AddTable)];
    for p in PROTOCOLS {
        for (f, addr) in families() {
            let data = Types(vec![addr, Type::InetService]);
            c.push(Command::inet(Change::AddMap {
                name: dnat_map(p, f, false),
                key: Types::one(Type::InetService),
                data: data.clone(),
            }));
            c.push(Command::inet(Change::AddMap {
                name: dnat_map(p, f, true),
                key: Types(vec![addr, Type::InetService]),
                data,
            }));
        }
    }
    c.push(Command::inet(Change::AddSet {
        name: BRIDGES.into(),
        key: Types::one(Type::Ifname),
    }));
    // Published ports, from other hosts and containers (prerouting) and from the host itself
    // (output: the host's own connections, 127.0.0.1 included). One host address first.
    let mut dnat = Vec::new();
    for p in PROTOCOLS {
        for (f, _) in families() {
            for by_daddr in [true, false] {
                dnat.push(vec![
                    Stmt::Nfproto(f),
                    Stmt::FibDaddrLocal,
                    Stmt::L4proto(p),
                    Stmt::Dnat {
                        family: f,
                        proto: p,
                        map: dnat_map(p, f, by_daddr),
                        by_daddr,
                    },
                ]);
            }
        }
    }
    for (name, hook) in [("prerouting", Hook::Prerouting), ("output", Hook::Output)] {
        c.extend(chain(
            Family::Inet,
            name,
            base("nat", hook, -100),
            dnat.clone(),
        ));
    }
    let loopback: IpNet = "127.0.0.0/8".parse().expect("valid");
    // The host's 127.0.0.1 connections DNATed to a container (this needs route_localnet on
    // the bridge) must leave with an address the container can answer.
    c.extend(chain(
        Family::Inet,
        "postrouting",
        base("nat", Hook::Postrouting, 100),
        vec![vec![
            Stmt::OifIn(BRIDGES.into()),
            Stmt::Saddr(loopback),
            Stmt::Masquerade,
        ]],
    ));
    // Forward accepts, so containers work even where another table's policy is stricter.
    c.extend(chain(
        Family::Inet,
        "forward",
        base("filter", Hook::Forward, 0),
        vec![
            vec![
                Stmt::OifIn(BRIDGES.into()),
                Stmt::CtEstablishedRelated,
                Stmt::Accept,
            ],
            vec![Stmt::IifIn(BRIDGES.into()), Stmt::Accept],
            vec![
                Stmt::OifIn(BRIDGES.into()),
                Stmt::CtDnat(true),
                Stmt::Accept,
            ],
        ],
    ));
    // CVE-2020-8558: with route_localnet=1 on a bridge, a container could reach the host's
    // 127.0.0.0/8 services; only DNATed traffic (published ports, their replies) may.
    c.extend(chain(
        Family::Inet,
        "input",
        base("filter", Hook::Input, 0),
        vec![vec![
            Stmt::IifIn(BRIDGES.into()),
            Stmt::Daddr(loopback),
            Stmt::CtDnat(false),
            Stmt::Drop,
        ]],
    ));
    c
}

/// The network's own chains and its place in `bridges`.
fn network_inet(net: &Network) -> Vec<Command> {
    let b = net.bridge.as_str();
    let on = |eq| Stmt::Oifname { eq, name: b.into() };
    let mut nat = Vec::new();
    if !net.internal {
        // Masquerade what leaves the bridge's subnet, and hairpin (a container reaching
        // itself or a neighbour through a published port) so replies come back via us.
        let subnets = [Some(IpNet::V4(net.subnet)), net.subnet6.map(IpNet::V6)];
        for s in subnets.into_iter().flatten() {
            nat.push(vec![Stmt::Saddr(s), on(false), Stmt::Masquerade]);
            nat.push(vec![
                Stmt::Saddr(s),
                on(true),
                Stmt::CtDnat(true),
                Stmt::Masquerade,
            ]);
        }
    }
    let iif = |eq| Stmt::Iifname { eq, name: b.into() };
    let fwd = if net.internal {
        vec![
            vec![iif(true), on(false), Stmt::Drop],
            vec![on(true), iif(false), Stmt::Drop],
        ]
    } else {
        vec![vec![
            iif(true),
            Stmt::OifIn(BRIDGES.into()),
            on(false),
            Stmt::CtDnat(false),
            Stmt::Drop,
        ]]
    };
    let mut c = chain(
        Family::Inet,
        &net_chain(net),
        base("nat", Hook::Postrouting, 100),
        nat,
    );
    c.extend(chain(
        Family::Inet,
        &fwd_chain(net),
        base("filter", Hook::Forward, 0),
        fwd,
    ));
    c.push(Command::inet(Change::AddElement {
        set: BRIDGES.into(),
        key: Value::Ifname(b.into()),
        data: None,
    }));
    c
}

/// The `bridge` table (shared by every network).
fn bridge_table() -> Vec<Command> {
    let ports = Types::one(Type::Ifname);
    let mut c = vec![
        Command::bridge(Change::AddTable),
        Command::bridge(Change::AddSet {
            name: PORTS.into(),
            key: ports,
        }),
    ];
    for (name, t) in [(SPOOF4, Type::Ipv4Addr), (SPOOF6, Type::Ipv6Addr)] {
        c.push(Command::bridge(Change::AddSet {
            name: name.into(),
            key: Types(vec![Type::Ifname, t]),
        }));
    }
    let from_port = || Stmt::IifIn(PORTS.into());
    let not_in = |f: Field, set: &str| Stmt::NotIn {
        fields: vec![Field::Iifname, f],
        set: set.into(),
    };
    let rules = vec![
        vec![
            from_port(),
            Stmt::Ether(EtherType::Ip),
            not_in(Field::Saddr(IpFamily::V4), SPOOF4),
            Stmt::Drop,
        ],
        vec![
            from_port(),
            Stmt::Ether(EtherType::Arp),
            not_in(Field::ArpSaddr, SPOOF4),
            Stmt::Drop,
        ],
        // Link-local sources (neighbour discovery) and :: (duplicate address detection) are
        // every interface's own.
        vec![
            from_port(),
            Stmt::Ether(EtherType::Ip6),
            Stmt::SaddrNot("fe80::/10".parse().expect("valid")),
            Stmt::SaddrNot("::/128".parse().expect("valid")),
            not_in(Field::Saddr(IpFamily::V6), SPOOF6),
            Stmt::Drop,
        ],
    ];
    c.extend(chain(
        Family::Bridge,
        BRIDGE_CHAIN,
        base("filter", Hook::Prerouting, -300),
        rules,
    ));
    c
}

fn hash6(text: &str) -> String {
    let h = sha2::Sha256::digest(text.as_bytes());
    h[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn text(cmds: &[Command]) -> String {
    cmds.iter().map(|c| c.text() + "\n").collect()
}

/// The comment minc's network chain carries: which rules it holds. A connect whose expected
/// comment differs from the kernel's applies the skeleton again.
pub fn revision(net: &Network) -> String {
    let mut cmds = shared_inet();
    cmds.extend(network_inet(net));
    format!("minc network {} rules {}", net.name, hash6(&text(&cmds)))
}

/// The comment of the `bridge` table's chain.
pub fn bridge_revision() -> String {
    format!("minc bridge rules {}", hash6(&text(&bridge_table())))
}

/// The whole skeleton for `net`, both tables, the revisions as chain comments. Every command
/// is idempotent (`add` of what exists is a no-op, minc's own chains are flushed and refilled).
pub fn skeleton(net: &Network) -> Vec<Command> {
    let (rev, brev) = (revision(net), bridge_revision());
    let mine = net_chain(net);
    let mut c = shared_inet();
    c.extend(network_inet(net));
    c.extend(bridge_table());
    for cmd in &mut c {
        if let Change::AddChain { name, comment, .. } = &mut cmd.change {
            match cmd.family {
                Family::Inet if *name == mine => *comment = Some(rev.clone()),
                Family::Bridge if name == BRIDGE_CHAIN => *comment = Some(brev.clone()),
                _ => {}
            }
        }
    }
    c
}

/// What removing a network takes out of the `inet` table: its chains (those that exist) and
/// its bridge's element.
pub fn remove_network(net: &Network, chains: &[String], in_bridges: bool) -> Vec<Command> {
    let mut c = Vec::new();
    for name in chains {
        c.push(Command::inet(Change::FlushChain { name: name.clone() }));
        c.push(Command::inet(Change::DeleteChain { name: name.clone() }));
    }
    if in_bridges {
        c.push(Command::inet(Change::DeleteElement {
            set: BRIDGES.into(),
            key: Value::Ifname(net.bridge.clone()),
        }));
    }
    c
}

/// One map element of a published port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub map: String,
    pub key: Value,
    pub data: Value,
}

impl Published {
    pub fn add(&self) -> Command {
        Command::inet(Change::AddElement {
            set: self.map.clone(),
            key: self.key.clone(),
            data: Some(self.data.clone()),
        })
    }
    pub fn delete(&self) -> Command {
        Command::inet(Change::DeleteElement {
            set: self.map.clone(),
            key: self.key.clone(),
        })
    }
}

/// The map elements publishing `m` for a container at `ip` (and `ip6`): on every address, one
/// per family the container has; on one host address, one in that address's family.
pub fn published(m: &PortMapping, ip: Ipv4Addr, ip6: Option<Ipv6Addr>) -> Vec<Published> {
    let mut v = Vec::new();
    let targets = [
        (IpFamily::V4, Some(IpAddr::V4(ip))),
        (IpFamily::V6, ip6.map(IpAddr::V6)),
    ];
    for (fam, target) in targets {
        let Some(target) = target else { continue };
        let key = match m.host_ip {
            None => Value::Port(m.host_port),
            Some(h) if IpFamily::of(&h) == fam => {
                Value::Concat(vec![Value::Addr(h), Value::Port(m.host_port)])
            }
            Some(_) => continue,
        };
        v.push(Published {
            map: dnat_map(m.protocol, fam, m.host_ip.is_some()),
            key,
            data: Value::Concat(vec![Value::Addr(target), Value::Port(m.container_port)]),
        });
    }
    v
}

/// The anti-spoofing elements of a container's host veth: its port, and which addresses it may
/// send from.
pub fn port_elements(
    veth: &str,
    ip: Ipv4Addr,
    ip6: Option<Ipv6Addr>,
) -> Vec<(&'static str, Value)> {
    let name = || Value::Ifname(veth.into());
    let mut v = vec![
        (PORTS, name()),
        (
            SPOOF4,
            Value::Concat(vec![name(), Value::Addr(IpAddr::V4(ip))]),
        ),
    ];
    if let Some(a) = ip6 {
        v.push((
            SPOOF6,
            Value::Concat(vec![name(), Value::Addr(IpAddr::V6(a))]),
        ));
    }
    v
}

pub fn add_element(set: &str, key: Value) -> Command {
    Command::bridge(Change::AddElement {
        set: set.into(),
        key,
        data: None,
    })
}

pub fn delete_element(set: &str, key: Value) -> Command {
    Command::bridge(Change::DeleteElement {
        set: set.into(),
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::Batch;

    fn dual() -> Network {
        Network {
            name: "n6".into(),
            bridge: "minc-n6".into(),
            subnet: "10.78.0.0/16".parse().unwrap(),
            gateway: "10.78.0.1".parse().unwrap(),
            subnet6: Some("fd00:78::/64".parse().unwrap()),
            gateway6: Some("fd00:78::1".parse().unwrap()),
            ..Default::default()
        }
    }

    #[test]
    fn skeleton_text_is_what_nft_reads() {
        let net = Network::default();
        let text = Batch(skeleton(&net)).text();
        let want = [
            "add table inet minc",
            "add map inet minc tcp4 { type inet_service : ipv4_addr . inet_service; }",
            "add map inet minc udp6_ip { type ipv6_addr . inet_service : ipv6_addr . inet_service; }",
            "add set inet minc bridges { type ifname; }",
            "add chain inet minc prerouting { type nat hook prerouting priority -100; policy accept; }",
            "flush chain inet minc prerouting",
            "add rule inet minc prerouting meta nfproto ipv4 fib daddr type local meta l4proto tcp dnat ip to ip daddr . tcp dport map @tcp4_ip",
            "add rule inet minc prerouting meta nfproto ipv6 fib daddr type local meta l4proto udp dnat ip6 to udp dport map @udp6",
            "add rule inet minc postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade",
            "add rule inet minc input iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop",
            "add rule inet minc nat-minc0 ip saddr 10.77.0.0/16 oifname != \"minc0\" masquerade",
            "add rule inet minc nat-minc0 ip saddr 10.77.0.0/16 oifname \"minc0\" ct status dnat masquerade",
            "add rule inet minc fwd-minc0 iifname \"minc0\" oifname @bridges oifname != \"minc0\" ct status & dnat == 0 drop",
            "add element inet minc bridges { \"minc0\" }",
            "add table bridge minc",
            "add set bridge minc spoof4 { type ifname . ipv4_addr; }",
            "add rule bridge minc prerouting iifname @ports ether type ip iifname . ip saddr != @spoof4 drop",
            "add rule bridge minc prerouting iifname @ports ether type arp iifname . arp saddr ip != @spoof4 drop",
            "add rule bridge minc prerouting iifname @ports ether type ip6 ip6 saddr != fe80::/10 ip6 saddr != :: iifname . ip6 saddr != @spoof6 drop",
        ];
        for w in want {
            assert!(text.lines().any(|l| l == w), "missing {w:?} in\n{text}");
        }
        let chain_line = text
            .lines()
            .find(|l| l.starts_with("add chain inet minc nat-minc0"))
            .unwrap();
        assert!(
            chain_line.ends_with(&format!("comment \"{}\"; }}", revision(&net))),
            "{chain_line}"
        );
        assert!(text.contains(&format!(
            "add chain bridge minc prerouting {{ type filter hook prerouting priority -300; policy accept; comment \"{}\"; }}",
            bridge_revision()
        )));
        // Rules never depend on containers, and a different subnet changes the revision.
        let other = Network {
            subnet: "10.99.0.0/16".parse().unwrap(),
            gateway: "10.99.0.1".parse().unwrap(),
            ..Default::default()
        };
        assert_ne!(revision(&net), revision(&other));
        assert_eq!(skeleton(&net).len(), skeleton(&other).len());
    }

    #[test]
    fn dual_stack_and_internal_networks() {
        let net = dual();
        let text = Batch(skeleton(&net)).text();
        assert!(text.contains(
            "add rule inet minc nat-minc-n6 ip6 saddr fd00:78::/64 oifname != \"minc-n6\" masquerade\n"
        ));
        let internal = Network {
            internal: true,
            ..net
        };
        let text = Batch(skeleton(&internal)).text();
        assert!(!text.contains("nat-minc-n6 ip"), "no masquerade:\n{text}");
        assert!(text.contains(
            "add rule inet minc fwd-minc-n6 iifname \"minc-n6\" oifname != \"minc-n6\" drop\n\
             add rule inet minc fwd-minc-n6 oifname \"minc-n6\" iifname != \"minc-n6\" drop\n"
        ));
    }

    #[test]
    fn published_elements_per_family_and_address() {
        let ip = "10.78.0.5".parse().unwrap();
        let ip6 = Some("fd00:78::5".parse().unwrap());
        let cmds = |s: &str| {
            let m: PortMapping = s.parse().unwrap();
            Batch(published(&m, ip, ip6).iter().map(Published::add).collect()).text()
        };
        assert_eq!(
            cmds("8080:80"),
            "add element inet minc tcp4 { 8080 : 10.78.0.5 . 80 }\n\
             add element inet minc tcp6 { 8080 : fd00:78::5 . 80 }\n"
        );
        assert_eq!(
            cmds("127.0.0.1:8080:80/udp"),
            "add element inet minc udp4_ip { 127.0.0.1 . 8080 : 10.78.0.5 . 80 }\n"
        );
        assert_eq!(
            cmds("[2001:db8::1]:8080:80"),
            "add element inet minc tcp6_ip { 2001:db8::1 . 8080 : fd00:78::5 . 80 }\n"
        );
        let m: PortMapping = "[::1]:1:1".parse().unwrap();
        assert!(published(&m, ip, None).is_empty(), "no IPv6 address");
        let spoof = Batch(
            port_elements("veth1", ip, ip6)
                .into_iter()
                .map(|(s, k)| add_element(s, k))
                .collect(),
        );
        assert_eq!(
            spoof.text(),
            "add element bridge minc ports { \"veth1\" }\n\
             add element bridge minc spoof4 { \"veth1\" . 10.78.0.5 }\n\
             add element bridge minc spoof6 { \"veth1\" . fd00:78::5 }\n"
        );
    }
}
