//! The public configuration and result types.

use crate::Error;
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// One bridge network: its bridge, subnets and where its state lives.
///
/// Every file netsetup keeps for the network is under `data_dir`; the only other thing it
/// leaves on the host, besides links, its nft tables and a network's resolver process, is
/// each connected container's namespace name in `run_netns_dir` (removed on teardown).
/// Host-wide names are derived from the bridge (veth names, the nft chains), and the bridge
/// carries its data root as its alias, so two data roots never share a bridge by accident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Network name; names the state directory (`data_dir/<name>`).
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Addresses handed out, when narrower than the subnet (CNI `ipRanges`).
    #[serde(default)]
    pub range: Option<AddrRange>,
    /// MTU for the bridge and veths; `None` = the host's default-route interface MTU.
    pub mtu: Option<u32>,
    /// Nameservers used when the host has none a container can reach.
    pub fallback_dns: Vec<IpAddr>,
    /// IPAM and per-container state (a directory per network below it).
    pub data_dir: PathBuf,
    /// Where namespaces are published by name (`ip netns`' directory).
    pub run_netns_dir: PathBuf,
    /// The host's resolv.conf (read to derive the containers', and by the resolver).
    pub host_resolv_conf: PathBuf,
    /// IPv6 too (dual stack): the container's address is the subnet's prefix plus the offset
    /// of its IPv4 address in `subnet`, so one reservation covers both.
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// No route out: no default route in the containers, no masquerade, nothing forwarded
    /// between the bridge and any other interface.
    #[serde(default)]
    pub internal: bool,
    /// Names resolve: a resolver on the gateway answers the containers' names and aliases and
    /// forwards the rest to the host's resolvers (see [`crate::dns`]).
    #[serde(default)]
    pub dns: bool,
}

/// A range of addresses, first and last included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            name: "minc".into(),
            bridge: "minc0".into(),
            subnet: "10.77.0.0/16".parse().unwrap(),
            gateway: Ipv4Addr::new(10, 77, 0, 1),
            range: None,
            mtu: None,
            fallback_dns: vec![
                IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)),
                IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)),
            ],
            data_dir: "/var/lib/minc/net".into(),
            run_netns_dir: crate::ops::IP_NETNS_DIR.into(),
            host_resolv_conf: "/etc/resolv.conf".into(),
            subnet6: None,
            gateway6: None,
            internal: false,
            dns: false,
        }
    }
}

impl Network {
    /// Checks names, subnet and gateway before anything is touched.
    pub fn validate(&self) -> Result<(), Error> {
        let ok_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 32
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !ok_name(&self.name) {
            return Err(Error::Config(format!(
                "network name {:?}: use 1-32 of [A-Za-z0-9_-]",
                self.name
            )));
        }
        if !ok_name(&self.bridge) || self.bridge.len() > 15 {
            return Err(Error::Config(format!(
                "bridge name {:?}: use 1-15 of [A-Za-z0-9_-]",
                self.bridge
            )));
        }
        if self.subnet.prefix_len() > 30 {
            return Err(Error::Config(format!(
                "subnet {}: prefix must be /30 or shorter",
                self.subnet
            )));
        }
        if self.subnet != self.subnet.trunc() {
            return Err(Error::Config(format!(
                "subnet {}: host bits set (did you mean {}?)",
                self.subnet,
                self.subnet.trunc()
            )));
        }
        if !self.subnet.contains(&self.gateway)
            || self.gateway == self.subnet.network()
            || self.gateway == self.subnet.broadcast()
        {
            return Err(Error::Config(format!(
                "gateway {} is not a host address of {}",
                self.gateway, self.subnet
            )));
        }
        if let Some(r) = &self.range {
            let inside = |a: &IpAddr| match a {
                IpAddr::V4(v4) => self.subnet.contains(v4),
                IpAddr::V6(_) => false,
            };
            if !inside(&r.start) || !inside(&r.end) || r.start > r.end {
                return Err(Error::Config(format!(
                    "range {}-{}: must be an ascending range inside {}",
                    r.start, r.end, self.subnet
                )));
            }
        }
        if let Some(m) = self.mtu {
            if !(68..=65535).contains(&m) {
                return Err(Error::Config(format!("mtu {m}: must be 68..65535")));
            }
        }
        self.validate6()
    }

    fn validate6(&self) -> Result<(), Error> {
        let (Some(s6), Some(g6)) = (self.subnet6, self.gateway6) else {
            if self.subnet6.is_some() != self.gateway6.is_some() {
                return Err(Error::Config(
                    "an IPv6 subnet needs an IPv6 gateway and the other way round".into(),
                ));
            }
            return Ok(());
        };
        if s6 != s6.trunc() {
            return Err(Error::Config(format!(
                "subnet {s6}: host bits set (did you mean {}?)",
                s6.trunc()
            )));
        }
        // Every IPv4 offset must have its IPv6 twin.
        let host_bits4 = 32 - u32::from(self.subnet.prefix_len());
        if u32::from(s6.prefix_len()) > 128 - host_bits4 {
            return Err(Error::Config(format!(
                "subnet {s6} is smaller than {}: an IPv6 subnet needs at least as many addresses",
                self.subnet
            )));
        }
        if !s6.contains(&g6) || g6 == s6.network() {
            return Err(Error::Config(format!(
                "gateway {g6} is not a host address of {s6}"
            )));
        }
        Ok(())
    }

    /// The IPv6 twin of a container's IPv4 address (same offset in the IPv6 subnet).
    pub fn ip6_of(&self, ip: Ipv4Addr) -> Option<Ipv6Addr> {
        let s6 = self.subnet6?;
        let off = u32::from(ip) - u32::from(self.subnet.network());
        Some(Ipv6Addr::from(u128::from(s6.network()) + u128::from(off)))
    }

    /// This network's own state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl FromStr for Protocol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            _ => Err(Error::InvalidPort {
                spec: s.into(),
                why: "protocol must be tcp or udp".into(),
            }),
        }
    }
}

/// A published port: `host_port` on `host_ip` (None: every host address) -> `container_port`
/// in the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// An address as it is written before a port: IPv6 in brackets.
pub fn addr_for_port(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ip) = &self.host_ip {
            write!(f, "{}:", addr_for_port(ip))?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl FromStr for PortMapping {
    type Err = Error;
    /// `8080:80`, `8080:80/udp`, `127.0.0.1:8080:80`, `[::1]:8080:80`, or `80` (same port on
    /// both sides).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidPort {
            spec: s.into(),
            why: why.into(),
        };
        let specs = PortSpec::parse_publish(s)?;
        let [spec] = specs.as_slice() else {
            return Err(bad("a range is not one port"));
        };
        let host_port = match spec.host {
            HostPort::Fixed(p) => p,
            HostPort::Any => spec.container_port,
            HostPort::Range(..) => return Err(bad("a range is not one port")),
        };
        Ok(PortMapping {
            host_ip: spec.host_ip,
            host_port,
            container_port: spec.container_port,
            protocol: spec.protocol,
        })
    }
}

/// Which host port a published port gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPort {
    Fixed(u16),
    /// A free port of the host's ephemeral range (`ip_local_port_range`), as Docker's `-p 80`.
    Any,
    /// A free port in this range, first and last included (`-p 8000-8010:80`).
    Range(u16, u16),
}

/// One port a container asks to publish (what `-p` says, one container port each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortSpec {
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    pub host: HostPort,
    pub container_port: u16,
    pub protocol: Protocol,
}

/// At most this many ports from one `-p` range.
pub const MAX_RANGE: u32 = 1024;

impl From<PortMapping> for PortSpec {
    fn from(m: PortMapping) -> Self {
        PortSpec {
            host_ip: m.host_ip,
            host: HostPort::Fixed(m.host_port),
            container_port: m.container_port,
            protocol: m.protocol,
        }
    }
}

impl PortSpec {
    /// Docker's `-p`: `[IP:][HOST[-HOST]:]CTR[-CTR][/PROTO]`, IPv6 addresses in brackets
    /// (`[::1]:8080:80`), `IP::CTR` for a random port on one address. A container port alone
    /// gets a random host port; a host range as long as the container range maps port by
    /// port; a host range with one container port picks one free port of the range.
    pub fn parse_publish(s: &str) -> Result<Vec<PortSpec>, Error> {
        let bad = |why: &str| Error::InvalidPort {
            spec: s.into(),
            why: why.into(),
        };
        let (rest, protocol) = match s.rsplit_once('/') {
            Some((r, p)) => (
                r,
                p.parse().map_err(|_| bad("protocol must be tcp or udp"))?,
            ),
            None => (s, Protocol::Tcp),
        };
        let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
            let (ip, after) = r
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
            let ip: Ipv6Addr = ip
                .parse()
                .map_err(|_| bad("the host address is not an IP address"))?;
            let after = after
                .strip_prefix(':')
                .ok_or_else(|| bad("expected :HOST:CONTAINER after the address"))?;
            (Some(IpAddr::V6(ip)), after)
        } else {
            match rest.matches(':').count() {
                0 | 1 => (None, rest),
                2 => {
                    let (ip, after) = rest.split_once(':').expect("two colons");
                    let ip: Ipv4Addr = ip.parse().map_err(|_| {
                        bad("the host address is not an IPv4 address (IPv6 goes in brackets)")
                    })?;
                    (Some(IpAddr::V4(ip)), after)
                }
                _ => return Err(bad("too many ':' (an IPv6 address goes in brackets)")),
            }
        };
        // Docker treats 0.0.0.0 and :: as "every address".
        let host_ip = host_ip.filter(|ip| !ip.is_unspecified());
        let range = |p: &str| -> Result<(u16, u16), Error> {
            let port = |p: &str| match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad("ports must be numbers 1-65535")),
                Ok(n) => Ok(n),
            };
            match p.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (port(a)?, port(b)?);
                    if a > b {
                        return Err(bad("a range goes from low to high"));
                    }
                    if u32::from(b - a) >= MAX_RANGE {
                        return Err(bad(&format!("at most {MAX_RANGE} ports in one range")));
                    }
                    Ok((a, b))
                }
                None => port(p).map(|n| (n, n)),
            }
        };
        let (host, ctr) = match rest.split_once(':') {
            Some(("", c)) => (None, range(c)?),
            Some((h, c)) => (Some(range(h)?), range(c)?),
            None => (None, range(rest)?),
        };
        let spec = |host, container_port| PortSpec {
            host_ip,
            host,
            container_port,
            protocol,
        };
        let ctr_len = ctr.1 - ctr.0;
        Ok(match host {
            None => (ctr.0..=ctr.1).map(|c| spec(HostPort::Any, c)).collect(),
            Some((h0, h1)) if h1 - h0 == ctr_len => (0..=ctr_len)
                .map(|i| spec(HostPort::Fixed(h0 + i), ctr.0 + i))
                .collect(),
            Some((h0, h1)) if ctr_len == 0 => vec![spec(HostPort::Range(h0, h1), ctr.0)],
            Some(_) => {
                return Err(bad(
                    "the host range must be as long as the container range (or one container port)",
                ))
            }
        })
    }
}

/// What one container asks of the network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub hostname: Option<String>,
    pub ports: Vec<PortSpec>,
    /// Nameserver override; empty = derived from the host's resolv.conf. On a network with a
    /// resolver, these are where the resolver forwards this container's other queries.
    pub dns: Vec<IpAddr>,
    /// Where to write resolv.conf, hosts and hostname for the container (None = don't).
    pub files_dir: Option<PathBuf>,
    /// Interface name inside the container (default `eth0`).
    pub ifname: Option<String>,
    /// Names the network's resolver answers with this container's addresses (its name,
    /// `--network-alias` aliases); ignored on a network without one.
    #[serde(default)]
    pub names: Vec<String>,
    /// More lines for the container's hosts file (`--add-host NAME:IP`).
    #[serde(default)]
    pub extra_hosts: Vec<(String, IpAddr)>,
    /// No default route through this network (another one of the container's has it).
    #[serde(default)]
    pub no_default_route: bool,
}

impl Request {
    pub fn new(id: impl Into<String>) -> Self {
        Request {
            id: id.into(),
            ..Default::default()
        }
    }
}

/// The address and files reserved for a container by [`crate::allocate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// On a dual-stack network.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub prefix_len6: Option<u8>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Whether the container's default routes go through this network.
    #[serde(default = "yes")]
    pub default_route: bool,
    /// The published ports, host ports chosen.
    pub ports: Vec<PortMapping>,
    /// The nameservers written to resolv.conf.
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// A connected container: its allocation plus the links made for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub allocation: Allocation,
    pub bridge: String,
    /// MAC address of the bridge.
    pub bridge_mac: Option<String>,
    /// Host-side veth name.
    pub host_veth: String,
    /// MAC address of the host-side veth.
    pub host_mac: Option<String>,
    /// Interface name inside the container.
    pub ifname: String,
    /// MAC address of the container's interface.
    pub mac: Option<String>,
    pub mtu: u32,
    /// `/run/netns/minc-<id>`.
    pub netns_name: String,
}

/// A container id netsetup accepts: the runtime's rule ([`sysops::container::valid_id`]),
/// narrowed where netsetup needs it: at most 128 bytes (an id is the comment of its nft
/// elements, which nft limits to 128 characters) and not starting with `.` (netsetup's own
/// files, `.bin` and the locks, are dot names beside the containers' state).
pub(crate) fn validate_id(id: &str) -> Result<(), Error> {
    if sysops::container::valid_id(id) && id.len() <= 128 && !id.starts_with('.') {
        Ok(())
    } else {
        Err(Error::InvalidId(id.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_ports() {
        let p: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(
            p,
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let p: PortMapping = "53:5353/udp".parse().unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (53, 5353, Protocol::Udp)
        );
        let p: PortMapping = "443/TCP".parse().unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (443, 443, Protocol::Tcp)
        );
        assert_eq!(p.to_string(), "443:443/tcp");
        let p: PortMapping = "[::1]:8080:80".parse().unwrap();
        assert_eq!(p.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p.to_string(), "[::1]:8080:80/tcp");
        for bad in [
            "",
            "0:80",
            "8080:",
            "x:80",
            "70000:80",
            "80:80/sctp",
            "8080:80/",
            "1-3:1-3",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_publish_forms() {
        let one = |s: &str| {
            let v = PortSpec::parse_publish(s).unwrap();
            assert_eq!(v.len(), 1, "{s}");
            v[0]
        };
        let any = one("80");
        assert_eq!((any.host, any.container_port), (HostPort::Any, 80));
        let ip = one("127.0.0.1:8080:80/udp");
        assert_eq!(ip.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            (ip.host, ip.protocol),
            (HostPort::Fixed(8080), Protocol::Udp)
        );
        let rand_on_ip = one("192.0.2.1::80");
        assert_eq!(rand_on_ip.host, HostPort::Any);
        assert!(one("0.0.0.0:8080:80").host_ip.is_none(), "all addresses");
        assert!(one("[::]:8080:80").host_ip.is_none());
        assert_eq!(
            one("[2001:db8::1]:8080:80").host_ip,
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(one("8000-8010:80").host, HostPort::Range(8000, 8010));
        let pairs = PortSpec::parse_publish("8000-8002:9000-9002").unwrap();
        let got: Vec<_> = pairs.iter().map(|p| (p.host, p.container_port)).collect();
        assert_eq!(
            got,
            [
                (HostPort::Fixed(8000), 9000),
                (HostPort::Fixed(8001), 9001),
                (HostPort::Fixed(8002), 9002)
            ]
        );
        assert_eq!(PortSpec::parse_publish("7000-7003").unwrap().len(), 4);
        for bad in [
            "8000-8001:9000-9005",
            "9-8:1",
            "1-2000",
            "::1:8080:80",
            "[::1:8080:80",
            "300.1.1.1:80:80",
            "a:b:c:d",
            "80/icmp",
        ] {
            let e = PortSpec::parse_publish(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("invalid port mapping {bad:?}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn ipv6_twins() {
        let n = Network {
            subnet: "10.5.0.0/16".parse().unwrap(),
            gateway: "10.5.0.1".parse().unwrap(),
            subnet6: Some("fd00:1:2:3::/64".parse().unwrap()),
            gateway6: Some("fd00:1:2:3::1".parse().unwrap()),
            ..Default::default()
        };
        n.validate().unwrap();
        assert_eq!(
            n.ip6_of("10.5.1.2".parse().unwrap()),
            Some("fd00:1:2:3::102".parse().unwrap())
        );
        let small = Network {
            subnet6: Some("fd00::/120".parse().unwrap()),
            gateway6: Some("fd00::1".parse().unwrap()),
            ..n.clone()
        };
        assert!(small
            .validate()
            .unwrap_err()
            .to_string()
            .contains("smaller"));
        let half = Network {
            gateway6: None,
            ..n
        };
        assert!(half.validate().is_err());
    }

    #[test]
    fn validate_network() {
        Network::default().validate().unwrap();
        let mut n = Network {
            subnet: "10.1.0.1/24".parse().unwrap(),
            ..Default::default()
        };
        assert!(n.validate().is_err());
        n.subnet = "10.1.0.0/24".parse().unwrap();
        assert!(n.validate().is_err(), "gateway outside subnet");
        n.gateway = "10.1.0.1".parse().unwrap();
        n.validate().unwrap();
        n.bridge = "a-very-long-bridge-name".into();
        assert!(n.validate().is_err());
    }

    #[test]
    fn ids() {
        validate_id("abc-1.2_3").unwrap();
        for bad in ["", "../x", "a/b", "-x", ".x", "a b"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
