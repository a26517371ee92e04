//! The public configuration and result types.

use crate::Error;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::str::FromStr;

/// One bridge network: its bridge, subnet and where its state lives.
///
/// Every file netsetup keeps for the network is under `data_dir`; the only other thing it
/// leaves on the host, besides links and its nft table, is each connected container's
/// namespace name in `run_netns_dir` (removed on teardown). Host-wide names are derived from
/// the bridge (veth names, the nft chain), and the bridge carries its data root as its alias,
/// so two data roots never share a bridge by accident.
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
    /// The host's resolv.conf (read to derive the containers').
    pub host_resolv_conf: PathBuf,
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
        Ok(())
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

/// A published port: host_port on every host address -> container_port in the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

impl FromStr for PortMapping {
    type Err = Error;
    /// `8080:80`, `8080:80/udp`, or `80` (same port on both sides).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::InvalidPort {
            spec: s.into(),
            why: why.into(),
        };
        let (ports, proto) = match s.split_once('/') {
            Some((p, proto)) => (
                p,
                proto
                    .parse()
                    .map_err(|_| bad("protocol must be tcp or udp"))?,
            ),
            None => (s, Protocol::Tcp),
        };
        let port = |p: &str| -> Result<u16, Error> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad("ports must be numbers 1-65535")),
                Ok(n) => Ok(n),
            }
        };
        let (h, c) = match ports.split_once(':') {
            Some((h, c)) => (port(h)?, port(c)?),
            None => (port(ports)?, port(ports)?),
        };
        Ok(PortMapping {
            host_port: h,
            container_port: c,
            protocol: proto,
        })
    }
}

/// What one container asks of the network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub hostname: Option<String>,
    pub ports: Vec<PortMapping>,
    /// Nameserver override; empty = derived from the host's resolv.conf.
    pub dns: Vec<IpAddr>,
    /// Where to write resolv.conf, hosts and hostname for the container (None = don't).
    pub files_dir: Option<PathBuf>,
    /// Interface name inside the container (default `eth0`).
    pub ifname: Option<String>,
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
    pub ports: Vec<PortMapping>,
    /// The nameservers written to resolv.conf.
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
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

pub(crate) fn validate_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.starts_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if ok {
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
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }
        );
        let p: PortMapping = "53:5353/udp".parse().unwrap();
        assert_eq!(
            p,
            PortMapping {
                host_port: 53,
                container_port: 5353,
                protocol: Protocol::Udp
            }
        );
        let p: PortMapping = "443/TCP".parse().unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol),
            (443, 443, Protocol::Tcp)
        );
        for bad in [
            "",
            "0:80",
            "8080:",
            "x:80",
            "70000:80",
            "80:80/sctp",
            "8080:80/",
        ] {
            assert!(bad.parse::<PortMapping>().is_err(), "{bad}");
        }
        assert_eq!(p.to_string(), "443:443/tcp");
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
