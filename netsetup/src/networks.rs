//! Networks by name: the default bridge and the user's own (`minc network create`), each
//! defined once in `DATA/NAME/network.json`, next to its state.
//!
//! A user-defined network is Docker's: its own bridge (`minc-` and ten hex digits of the
//! network's id, so two data roots never pick the same), its own IPv4 subnet (the next /16 of
//! 10.78.0.0-10.127.255.255 that neither another network of this data root nor any route of
//! the host uses, unless given), with `--ipv6` an IPv6 subnet too (a random unique local /64,
//! RFC 4193, unless given), and names that resolve ([`crate::dns`]). `--internal` gives it no
//! route out. The default network (`minc`, which the CLI calls `bridge`) has no resolver, as
//! Docker's default bridge has none.
//!
//! The default network is fixed in its data root when first used: `minc0` with 10.77.0.0/16,
//! unless another data root of the same host already holds `minc0` (the bridge's alias names
//! its data root); then the next free `mincN` with a free subnet, so a second data root works
//! side by side instead of failing.

use crate::connect::owner_mark;
use crate::error::io_err;
use crate::kernel::Kernel;
use crate::nft::Family;
use crate::ops::{self, Op, System};
use crate::{dns, ipam, rules, state, Error, Network};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use sysops::explain;

/// The default network's name (the CLI's `bridge`).
pub const DEFAULT: &str = "minc";

/// Names a user network cannot take: Docker's special ones and the default's own.
pub const RESERVED: &[&str] = &["bridge", "host", "none", "default", DEFAULT];

/// A network as defined.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Defined {
    /// 64 hex digits, like Docker's.
    pub id: String,
    /// Seconds since the epoch.
    pub created: u64,
    pub network: Network,
}

/// What `minc network create` asks for.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ipv6: bool,
    pub subnet6: Option<Ipv6Net>,
    pub gateway6: Option<Ipv6Addr>,
    pub internal: bool,
    pub mtu: Option<u32>,
}

/// netsetup's defaults, with state under `data_dir`.
pub fn base(data_dir: &Path) -> Network {
    Network {
        data_dir: data_dir.into(),
        ..Default::default()
    }
}

/// Another network of the same data directory, by name (enough to reach its saved state).
pub fn sibling(net: &Network, name: &str) -> Network {
    load(&net.data_dir, name)
        .ok()
        .flatten()
        .map(|d| d.network)
        .unwrap_or_else(|| Network {
            name: name.into(),
            ..net.clone()
        })
}

fn file(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(name).join("network.json")
}

/// The network called `name`, if it is defined.
pub fn load(data_dir: &Path, name: &str) -> Result<Option<Defined>, Error> {
    if !valid_name(name) {
        return Ok(None);
    }
    let p = file(data_dir, name);
    match std::fs::read(&p) {
        Ok(b) => {
            let mut d: Defined = serde_json::from_slice(&b).map_err(|e| Error::State {
                path: p.clone(),
                why: e.to_string(),
            })?;
            // The data root may have moved since.
            d.network.data_dir = data_dir.into();
            Ok(Some(d))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", p)(e)),
    }
}

/// Every defined network, the default first, then by name.
pub fn list(data_dir: &Path) -> Result<Vec<Defined>, Error> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(data_dir).into_iter().flatten().flatten() {
        if let Some(d) = e
            .file_name()
            .to_str()
            .and_then(|n| load(data_dir, n).ok().flatten())
        {
            v.push(d);
        }
    }
    v.sort_by(|a, b| {
        (a.network.name != DEFAULT, &a.network.name)
            .cmp(&(b.network.name != DEFAULT, &b.network.name))
    });
    Ok(v)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn save(d: &Defined) -> Result<(), Error> {
    let p = file(&d.network.data_dir, &d.network.name);
    ipam::create_private_dir(&d.network.state_dir())?;
    let data = serde_json::to_vec_pretty(d).expect("serializes");
    state::write_atomic(&p, &data, 0o600)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, x) in b.iter_mut().enumerate() {
            *x = (t >> ((i % 16) * 8)) as u8;
        }
    }
    b
}

fn new_id() -> String {
    random_bytes::<32>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random unique local /64 (RFC 4193: fd00::/8, a 40-bit global id, subnet 0).
fn ula64() -> Ipv6Net {
    let r = random_bytes::<5>();
    let mut o = [0u8; 16];
    o[0] = 0xfd;
    o[1..6].copy_from_slice(&r);
    Ipv6Net::new(Ipv6Addr::from(o), 64).expect("valid prefix")
}

/// What `subnet` would collide with: another network of this data root, or a route of the
/// host (another data root's bridge, a VPN, the LAN).
fn overlap(
    sys: &mut dyn System,
    data_dir: &Path,
    subnet: IpNet,
    skip: &str,
) -> Result<Option<String>, Error> {
    let meets = |a: &IpNet, b: &IpNet| a.contains(&b.network()) || b.contains(&a.network());
    for d in list(data_dir)? {
        let n = &d.network;
        if n.name == skip {
            continue;
        }
        let theirs = [Some(IpNet::V4(n.subnet)), n.subnet6.map(IpNet::V6)];
        if theirs.iter().flatten().any(|t| meets(t, &subnet)) {
            return Ok(Some(format!("network {}", shown(&n.name))));
        }
    }
    for r in sys.routes()? {
        if meets(&r, &subnet) {
            return Ok(Some(format!("the host's route to {r}")));
        }
    }
    Ok(None)
}

/// The name the CLI shows for a network (`bridge` for the default).
pub fn shown(name: &str) -> &str {
    if name == DEFAULT {
        "bridge"
    } else {
        name
    }
}

/// The first /16 of 10.78.0.0-10.127.255.255 nothing uses.
fn free_subnet(sys: &mut dyn System, data_dir: &Path) -> Result<Ipv4Net, Error> {
    for b in 78..=127u8 {
        let s = Ipv4Net::new(Ipv4Addr::new(10, b, 0, 0), 16).expect("valid");
        if overlap(sys, data_dir, IpNet::V4(s), "")?.is_none() {
            return Ok(s);
        }
    }
    Err(Error::Config(
        "no free /16 left in 10.78.0.0-10.127.255.255: give the network a --subnet".into(),
    ))
}

fn first_host4(s: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(s.network()) + 1)
}

/// Defines network `name`. Nothing is made on the host until a container connects.
pub fn create(data_dir: &Path, name: &str, o: &Options) -> Result<Defined, Error> {
    create_with(&mut Kernel::new(), data_dir, name, o)
}

fn create_with(
    sys: &mut dyn System,
    data_dir: &Path,
    name: &str,
    o: &Options,
) -> Result<Defined, Error> {
    if !valid_name(name) {
        return Err(Error::Config(format!(
            "network name {name:?}: use 1-32 of [A-Za-z0-9_-], starting with a letter or digit"
        )));
    }
    if RESERVED.contains(&name) {
        return Err(Error::Config(format!(
            "network name {name} is reserved (bridge, host and none are minc's own)"
        )));
    }
    if o.gateway.is_some() && o.subnet.is_none() {
        return Err(Error::Config("--gateway needs --subnet".into()));
    }
    if o.gateway6.is_some() && o.subnet6.is_none() {
        return Err(Error::Config(
            "an IPv6 --gateway needs an IPv6 --subnet".into(),
        ));
    }
    let base = base(data_dir);
    ipam::create_private_dir(data_dir)?;
    let _lock = ipam::lock_dir(data_dir)?;
    if load(data_dir, name)?.is_some() {
        return Err(Error::Config(format!("network {name} already exists")));
    }
    let subnet = match o.subnet {
        Some(s) => {
            if let Some(what) = overlap(sys, data_dir, IpNet::V4(s), name)? {
                return Err(Error::Config(format!("subnet {s} overlaps {what}")));
            }
            s
        }
        None => free_subnet(sys, data_dir)?,
    };
    let (subnet6, gateway6) = if o.ipv6 || o.subnet6.is_some() {
        let s6 = match o.subnet6 {
            Some(s6) => {
                if let Some(what) = overlap(sys, data_dir, IpNet::V6(s6), name)? {
                    return Err(Error::Config(format!("subnet {s6} overlaps {what}")));
                }
                s6
            }
            None => ula64(),
        };
        let g6 = o
            .gateway6
            .unwrap_or_else(|| Ipv6Addr::from(u128::from(s6.network()) + 1));
        (Some(s6), Some(g6))
    } else {
        (None, None)
    };
    let id = new_id();
    let network = Network {
        name: name.into(),
        bridge: format!("minc-{}", &id[..10]),
        subnet,
        gateway: o.gateway.unwrap_or_else(|| first_host4(&subnet)),
        mtu: o.mtu,
        subnet6,
        gateway6,
        internal: o.internal,
        dns: true,
        ..base
    };
    network.validate()?;
    if sys.link(None, &network.bridge)?.is_some() {
        return Err(Error::Config(format!(
            "a link named {} exists already; try again",
            network.bridge
        )));
    }
    let d = Defined {
        id,
        created: now(),
        network,
    };
    save(&d)?;
    Ok(d)
}

/// The default network of the data root (see the module docs), defined on first use.
pub fn default(data_dir: &Path) -> Result<Network, Error> {
    if let Some(d) = load(data_dir, DEFAULT)? {
        return Ok(d.network);
    }
    default_with(&mut Kernel::new(), data_dir)
}

fn default_with(sys: &mut dyn System, data_dir: &Path) -> Result<Network, Error> {
    ipam::create_private_dir(data_dir)?;
    let _lock = ipam::lock_dir(data_dir)?;
    if let Some(d) = load(data_dir, DEFAULT)? {
        return Ok(d.network);
    }
    let mut net = base(data_dir);
    let mark = owner_mark(&net);
    // A bridge is ours to take if it is absent, marked ours, unmarked (an older minc), or
    // marked by a data root that no longer exists.
    let free = |sys: &mut dyn System, name: &str| -> Result<bool, Error> {
        Ok(match sys.link(None, name)? {
            None => true,
            Some(l) => match l.alias.as_deref() {
                Some(a) if a == mark => true,
                Some(a) => a
                    .strip_prefix("minc ")
                    .is_some_and(|root| !root.starts_with("sha256:") && !Path::new(root).exists()),
                None => true,
            },
        })
    };
    if !free(sys, &net.bridge)? {
        let taken = net.bridge.clone();
        let name = (1..100)
            .map(|i| format!("minc{i}"))
            .find(|n| free(sys, n).unwrap_or(false))
            .ok_or_else(|| Error::Config("no free bridge name minc1-minc99".into()))?;
        net.bridge = name;
        net.subnet = free_subnet(sys, data_dir)?;
        net.gateway = first_host4(&net.subnet);
        explain::comment(&format!(
            "netsetup: {taken} belongs to another minc data root: this one's default network is {} with {}",
            net.bridge, net.subnet
        ));
    }
    let d = Defined {
        id: new_id(),
        created: now(),
        network: net.clone(),
    };
    save(&d)?;
    Ok(net)
}

/// Removes network `name`: its resolver, its chains and bridge element, its bridge, its
/// state. Refused while a container is connected to it (one that is gone is reclaimed).
pub fn remove(data_dir: &Path, name: &str) -> Result<(), Error> {
    remove_with(&mut Kernel::new(), data_dir, name)
}

fn remove_with(sys: &mut dyn System, data_dir: &Path, name: &str) -> Result<(), Error> {
    if name == DEFAULT || name == "bridge" {
        return Err(Error::Config(
            "the default network cannot be removed".into(),
        ));
    }
    let Some(d) = load(data_dir, name)? else {
        return Err(Error::Config(format!("no such network: {name}")));
    };
    let net = d.network;
    {
        let _lock = ipam::lock(&net)?;
        crate::reclaim_stale_locked(sys, &net)?;
        let users: Vec<String> = crate::list(&net)?.into_iter().map(|e| e.id).collect();
        if !users.is_empty() {
            let short: Vec<&str> = users.iter().map(|u| &u[..u.len().min(12)]).collect();
            return Err(Error::Config(format!(
                "network {name} has containers connected: {} (disconnect or remove them first)",
                short.join(", ")
            )));
        }
        let mut steps = dns::stop_steps(&net);
        let mut chains = Vec::new();
        for c in [rules::net_chain(&net), rules::fwd_chain(&net)] {
            if sys.nft_chain(Family::Inet, &c)?.is_some() {
                chains.push(c);
            }
        }
        let key = crate::nft::Value::Ifname(net.bridge.clone());
        let in_bridges = !sys
            .nft_elements(Family::Inet, rules::BRIDGES, Some(&key))?
            .is_empty();
        let cmds = rules::remove_network(&net, &chains, in_bridges);
        if !cmds.is_empty() {
            steps.push(Op::Nft(crate::nft::Batch(cmds)));
        }
        // Only the bridge this data root made.
        if sys
            .link(None, &net.bridge)?
            .is_some_and(|l| l.alias.as_deref() == Some(owner_mark(&net).as_str()))
        {
            steps.push(Op::LinkDel {
                name: net.bridge.clone(),
            });
        }
        explain::comment(&format!("netsetup: remove network {name}"));
        ops::run(sys, steps)?;
    }
    let dir = net.state_dir();
    std::fs::remove_dir_all(&dir).map_err(io_err("remove", dir))
}

/// Removes every user network no container is connected to; returns their names.
pub fn prune(data_dir: &Path) -> Result<Vec<String>, Error> {
    let mut done = Vec::new();
    for d in list(data_dir)? {
        let n = &d.network.name;
        if n == DEFAULT {
            continue;
        }
        match remove(data_dir, n) {
            Ok(()) => done.push(n.clone()),
            Err(Error::Config(_)) => {} // in use
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;

    #[test]
    fn create_picks_free_subnets_and_unique_bridges() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = Fake::new();
        sys.routes = vec![
            "10.78.0.0/16".parse().unwrap(),
            "192.168.1.0/24".parse().unwrap(),
        ];
        let a = create_with(&mut sys, d.path(), "a", &Options::default()).unwrap();
        assert_eq!(
            a.network.subnet.to_string(),
            "10.79.0.0/16",
            "10.78 is a host route"
        );
        assert_eq!(a.network.gateway, Ipv4Addr::new(10, 79, 0, 1));
        assert!(a.network.dns && !a.network.internal);
        assert!(a.network.bridge.starts_with("minc-") && a.network.bridge.len() == 15);
        let b = create_with(
            &mut sys,
            d.path(),
            "b",
            &Options {
                ipv6: true,
                internal: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(b.network.subnet.to_string(), "10.80.0.0/16");
        let s6 = b.network.subnet6.unwrap();
        assert_eq!((s6.prefix_len(), s6.network().octets()[0]), (64, 0xfd));
        assert_eq!(
            b.network.gateway6,
            Some(Ipv6Addr::from(u128::from(s6.network()) + 1))
        );
        assert_ne!(a.network.bridge, b.network.bridge);
        let names: Vec<String> = list(d.path())
            .unwrap()
            .into_iter()
            .map(|d| d.network.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let err = |name: &str, o: Options| {
            create_with(&mut Fake::new(), d.path(), name, &o)
                .unwrap_err()
                .to_string()
        };
        assert!(err("a", Options::default()).contains("already exists"));
        assert!(err("bridge", Options::default()).contains("reserved"));
        assert!(err("x y", Options::default()).contains("network name"));
        let net = |t: &str| Some(t.parse::<Ipv4Net>().unwrap());
        let ip = |t: &str| Some(t.parse::<Ipv4Addr>().unwrap());
        assert!(err(
            "c",
            Options {
                subnet: net("10.79.128.0/24"),
                ..Default::default()
            }
        )
        .contains("overlaps network a"));
        assert!(err(
            "c",
            Options {
                gateway: ip("10.1.0.1"),
                ..Default::default()
            }
        )
        .contains("--gateway needs --subnet"));
        assert!(err(
            "c",
            Options {
                subnet: net("10.1.0.0/24"),
                gateway: ip("10.2.0.1"),
                ..Default::default()
            }
        )
        .contains("not a host address"));
        assert!(err(
            "c",
            Options {
                mtu: Some(10),
                ..Default::default()
            }
        )
        .contains("mtu"));
    }

    #[test]
    fn default_network_moves_aside_for_another_data_root() {
        let d = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let mut sys = Fake::new();
        sys.perform(&[
            Op::BridgeAdd {
                name: "minc0".into(),
                mtu: None,
            },
            Op::LinkAlias {
                name: "minc0".into(),
                alias: format!("minc {}", other.path().display()),
            },
        ])
        .unwrap();
        sys.routes = vec!["10.77.0.0/16".parse().unwrap()];
        let n = default_with(&mut sys, d.path()).unwrap();
        assert_eq!(
            (n.bridge.as_str(), n.subnet.to_string()),
            ("minc1", "10.78.0.0/16".into())
        );
        // Fixed from then on.
        assert_eq!(default(d.path()).unwrap(), n);
        let mine = tempfile::tempdir().unwrap();
        let n = default_with(&mut Fake::new(), mine.path()).unwrap();
        assert_eq!(n.bridge, "minc0");
        assert!(!n.dns);
    }

    #[test]
    fn remove_refuses_a_network_in_use_and_cleans_up() {
        let d = tempfile::tempdir().unwrap();
        let mut sys = Fake::new();
        let a = create_with(&mut sys, d.path(), "a", &Options::default()).unwrap();
        assert!(remove_with(&mut sys, d.path(), DEFAULT).is_err());
        assert!(remove_with(&mut sys, d.path(), "nope")
            .unwrap_err()
            .to_string()
            .contains("no such network"));
        remove_with(&mut sys, d.path(), "a").unwrap();
        assert!(!a.network.state_dir().exists());
        assert!(load(d.path(), "a").unwrap().is_none());
    }
}
