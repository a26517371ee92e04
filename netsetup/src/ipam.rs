//! IP address management: one file per reserved address under the network's state directory,
//! one per published host port under the data directory (host ports are the host's, whatever
//! the network), all changes made under one exclusive flock(2) of the data directory.
//!
//! A reservation is atomic: its record (container id, and the PID and start time of the
//! process that reserved) is written to a temporary file first, then link(2)ed into place,
//! which fails with EEXIST if the name is taken. So a reservation is never visible without its
//! owner, whatever moment the reserving process is killed at. And the caller records the
//! container's state (which names the address and ports) before it claims them, so every
//! claim is accounted for by a state file.
//!
//! Allocation is round-robin from the last address handed out (like CNI's host-local), so a
//! released address is not reused at once and the cost per allocation stays O(1) until the
//! pool is nearly full.

use crate::error::io_err;
use crate::state::ProcId;
use crate::{Error, Network, PortMapping, Protocol};
use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use sysops::lock::Lock;

/// Takes the IPAM lock of the network's data directory (held until dropped): one for every
/// network of a data root, so a reclaim may release what a container held on any of them.
/// Never taken twice by one process (flock(2) locks per open file).
pub fn lock(net: &Network) -> Result<Lock, Error> {
    create_private_dir(&net.state_dir())?;
    lock_dir(&net.data_dir)
}

/// The same lock, by data directory (which must exist).
pub fn lock_dir(data_dir: &Path) -> Result<Lock, Error> {
    let p = data_dir.join(".lock");
    Lock::acquire(&p).map_err(io_err("lock", p))
}

/// Creates `dir` (and its parents) with mode 0700: the state names containers and their
/// addresses, which other users of the host have no business reading.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create directory", dir))
}

fn ips_dir(net: &Network) -> PathBuf {
    net.state_dir().join("ips")
}

fn ports_dir(net: &Network) -> PathBuf {
    net.data_dir.join(".ports")
}

/// `.ports/tcp-8080` (every host address) or `.ports/tcp-8080@127.0.0.1`.
pub fn port_file(net: &Network, proto: Protocol, ip: Option<IpAddr>, port: u16) -> PathBuf {
    ports_dir(net).join(match ip {
        None => format!("{proto}-{port}"),
        Some(ip) => format!("{proto}-{port}@{ip}"),
    })
}

fn parse_port_file(name: &str) -> Option<(Protocol, u16, Option<IpAddr>)> {
    let (proto, rest) = name.split_once('-')?;
    let (port, ip) = match rest.split_once('@') {
        Some((p, ip)) => (p, Some(ip.parse().ok()?)),
        None => (rest, None),
    };
    Some((proto.parse().ok()?, port.parse().ok()?, ip))
}

pub fn ip_file(net: &Network, ip: Ipv4Addr) -> PathBuf {
    ips_dir(net).join(ip.to_string())
}

/// Who holds a reservation: the container, the process that reserved it, and (for a host
/// port) the network the container is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub reserver: Option<ProcId>,
    pub network: Option<String>,
}

impl Claim {
    fn parse(text: &str) -> Claim {
        let mut w = text.split_whitespace();
        let id = w.next().unwrap_or_default().to_string();
        let reserver = match (
            w.next().and_then(|s| s.parse().ok()),
            w.next().and_then(|s| s.parse().ok()),
        ) {
            (Some(pid), Some(start)) => Some(ProcId { pid, start }),
            _ => None,
        };
        let network = w.next().map(String::from);
        Claim {
            id,
            reserver,
            network,
        }
    }

    fn render(&self) -> String {
        let mut s = self.id.clone();
        if let Some(p) = self.reserver {
            s += &format!(" {} {}", p.pid, p.start);
            if let Some(n) = &self.network {
                s += &format!(" {n}");
            }
        }
        s + "\n"
    }
}

/// Reads the claim at `p` (None if there is none).
pub fn read_claim(p: &Path) -> Result<Option<Claim>, Error> {
    match fs::read_to_string(p) {
        Ok(s) => Ok(Some(Claim::parse(&s))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", p)(e)),
    }
}

/// Creates `p` holding the claim of `id` (on `network`) by this process, atomically; false if
/// it is taken.
fn claim(p: &Path, id: &str, network: Option<&str>) -> Result<bool, Error> {
    let c = Claim {
        id: id.into(),
        reserver: ProcId::current(),
        network: network.map(String::from),
    };
    let tmp = sysops::fs::temp_sibling(p);
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(c.render().as_bytes())
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("write", &tmp)(e));
    }
    // link(2) never replaces: the reservation appears whole, owner included, or not at all.
    let r = fs::hard_link(&tmp, p);
    let _ = fs::remove_file(&tmp);
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("create", p)(e)),
    }
}

/// Removes `p` only if it still belongs to `id`.
fn unclaim(p: &Path, id: &str) -> Result<(), Error> {
    match read_claim(p)? {
        Some(c) if c.id == id => crate::state::remove_file(p),
        _ => Ok(()),
    }
}

/// Who holds a host port (on every address), if anyone.
#[cfg(test)]
pub fn port_owner(net: &Network, proto: Protocol, port: u16) -> Option<String> {
    read_claim(&port_file(net, proto, None, port))
        .ok()
        .flatten()
        .map(|c| c.id)
}

/// The host addresses of the subnet (and of the network's range, if any) a container may
/// get: not the network, gateway or broadcast address.
pub fn candidates(net: &Network) -> (u32, u32) {
    let mut first = u32::from(net.subnet.network()) + 1;
    let mut last = u32::from(net.subnet.broadcast()) - 1;
    if let Some(r) = &net.range {
        if let (std::net::IpAddr::V4(s), std::net::IpAddr::V4(e)) = (r.start, r.end) {
            first = first.max(u32::from(s));
            last = last.min(u32::from(e));
        }
    }
    (first, last)
}

/// The next free address after the last one handed out (None: the pool is full). Caller
/// holds the lock, and records the address in the container's state before it claims it.
pub fn next_free_ip(net: &Network) -> Result<Option<Ipv4Addr>, Error> {
    create_private_dir(&ips_dir(net))?;
    let (first, last) = candidates(net);
    if first > last {
        return Ok(None);
    }
    let size = last - first + 1;
    let prev = fs::read_to_string(last_reserved(net))
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .filter(|v| (first..=last).contains(v))
        .unwrap_or(last);
    let gw = u32::from(net.gateway);
    for i in 1..=size {
        let cand = first + (prev - first + i) % size;
        let ip = Ipv4Addr::from(cand);
        // Neither the gateway nor the address whose IPv6 twin is the IPv6 gateway.
        if cand == gw || (net.gateway6.is_some() && net.ip6_of(ip) == net.gateway6) {
            continue;
        }
        match fs::symlink_metadata(ip_file(net, ip)) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Some(ip)),
            Err(e) => return Err(io_err("stat", ip_file(net, ip))(e)),
            Ok(_) => {}
        }
    }
    Ok(None)
}

fn last_reserved(net: &Network) -> PathBuf {
    net.state_dir().join("last_reserved")
}

fn taken(file: &Path) -> Error {
    Error::Io {
        what: "claim",
        path: file.into(),
        source: std::io::Error::from_raw_os_error(libc::EEXIST),
    }
}

/// Claims `ip` for `id` (free, as [`next_free_ip`] found it under the same lock). Idempotent
/// for the same id.
pub fn take_ip(net: &Network, ip: Ipv4Addr, id: &str) -> Result<(), Error> {
    let file = ip_file(net, ip);
    if !claim(&file, id, None)? && read_claim(&file)?.is_none_or(|c| c.id != id) {
        return Err(taken(&file));
    }
    sysops::fs::write_atomic(&last_reserved(net), ip.to_string().as_bytes(), 0o600)
        .map_err(io_err("write", last_reserved(net)))
}

/// Reserves the next free address for `id` (for tests: allocation records before it claims).
#[cfg(test)]
pub fn reserve_ip(net: &Network, id: &str) -> Result<Option<Ipv4Addr>, Error> {
    let Some(ip) = next_free_ip(net)? else {
        return Ok(None);
    };
    take_ip(net, ip, id)?;
    Ok(Some(ip))
}

/// Every host port claimed, by its file's name (protocol, port, host address): one readdir,
/// no file read. Caller holds the lock.
pub fn port_claims(net: &Network) -> Result<Vec<PortClaim>, Error> {
    let dir = ports_dir(net);
    create_private_dir(&dir)?;
    let mut v = Vec::new();
    for e in fs::read_dir(&dir)
        .map_err(io_err("read directory", &dir))?
        .flatten()
    {
        let name = e.file_name();
        if let Some((proto, port, ip)) = name.to_str().and_then(parse_port_file) {
            v.push(PortClaim {
                file: e.path(),
                proto,
                port,
                ip,
            });
        }
    }
    Ok(v)
}

/// A claimed host port (its holder: [`read_claim`] of its file).
#[derive(Clone, Debug)]
pub struct PortClaim {
    pub file: PathBuf,
    pub proto: Protocol,
    pub port: u16,
    pub ip: Option<IpAddr>,
}

impl PortClaim {
    /// Whether a mapping of (proto, ip, port) would overlap this claim: same protocol and
    /// port, and the same address or either on every address.
    pub fn overlaps(&self, proto: Protocol, ip: Option<IpAddr>, port: u16) -> bool {
        self.proto == proto
            && self.port == port
            && (self.ip.is_none() || ip.is_none() || self.ip == ip)
    }
}

/// Claims the host ports of `ports` for `id` on `net` (checked free under the same lock).
/// Idempotent for the same id.
pub fn take_ports(net: &Network, id: &str, ports: &[PortMapping]) -> Result<(), Error> {
    create_private_dir(&ports_dir(net))?;
    for p in ports {
        let file = port_file(net, p.protocol, p.host_ip, p.host_port);
        if !claim(&file, id, Some(&net.name))? && read_claim(&file)?.is_none_or(|c| c.id != id) {
            return Err(taken(&file));
        }
    }
    Ok(())
}

/// Releases what `id` holds. Caller holds the lock. Idempotent.
pub fn release(
    net: &Network,
    id: &str,
    ip: Option<Ipv4Addr>,
    ports: &[PortMapping],
) -> Result<(), Error> {
    for p in ports {
        unclaim(&port_file(net, p.protocol, p.host_ip, p.host_port), id)?;
    }
    if let Some(ip) = ip {
        unclaim(&ip_file(net, ip), id)?;
    }
    Ok(())
}

/// Every reservation file (addresses and ports) with its claim. Caller holds the lock.
pub fn claims(net: &Network) -> Vec<(PathBuf, Claim)> {
    let mut v = Vec::new();
    for dir in [ips_dir(net), ports_dir(net)] {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(Some(c)) = read_claim(&p) {
                v.push((p, c));
            }
        }
    }
    v
}

/// Removes temporary files a killed writer left (`.NAME.tmp-PID[-N]`, as
/// `sysops::fs::temp_sibling` names them), in the network's directories and the host ports';
/// a file whose writer still runs is left alone. Returns how many.
pub fn remove_temporaries(net: &Network) -> usize {
    let mut n = 0;
    for dir in [
        ips_dir(net),
        ports_dir(net),
        net.state_dir(),
        crate::state::containers_dir(net),
        crate::dns::names_dir(net),
    ] {
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some((_, tail)) = name.strip_prefix('.').and_then(|r| r.split_once(".tmp-")) else {
                continue;
            };
            let writer = tail.split('-').next().and_then(|p| p.parse::<i32>().ok());
            let alive = writer
                .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists() && p != 0);
            if !alive && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
    }
    n
}

/// Every address currently reserved, with the id holding it.
pub fn reserved(net: &Network) -> Vec<(Ipv4Addr, String)> {
    let mut v: Vec<_> = fs::read_dir(ips_dir(net))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let ip = e.file_name().to_str()?.parse().ok()?;
            Some((ip, read_claim(&e.path()).ok()??.id))
        })
        .collect();
    v.sort();
    v
}

/// How many addresses are reserved (for CNI STATUS).
pub fn reserved_count(net: &Network) -> usize {
    fs::read_dir(ips_dir(net))
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(dir: &Path, subnet: &str, gw: &str) -> Network {
        Network {
            subnet: subnet.parse().unwrap(),
            gateway: gw.parse().unwrap(),
            data_dir: dir.into(),
            ..Default::default()
        }
    }

    #[test]
    fn round_robin_and_exhaustion() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path(), "10.9.0.0/29", "10.9.0.1");
        let _l = lock(&n).unwrap();
        let got: Vec<_> = (0..5)
            .map(|i| reserve_ip(&n, &format!("c{i}")).unwrap().unwrap())
            .collect();
        let want: Vec<Ipv4Addr> = (2..=6).map(|i| Ipv4Addr::new(10, 9, 0, i)).collect();
        assert_eq!(got, want);
        assert_eq!(
            reserve_ip(&n, "c5").unwrap(),
            None,
            "a /29 has 5 container addresses"
        );
        release(&n, "c1", Some(got[1]), &[]).unwrap();
        release(&n, "someone-else", Some(got[2]), &[]).unwrap();
        assert_eq!(reserve_ip(&n, "c6").unwrap(), Some(got[1]));
        assert_eq!(reserved(&n).len(), 5);
        assert_eq!(reserved_count(&n), 5);
    }

    #[test]
    fn range_limits_the_pool() {
        let d = tempfile::tempdir().unwrap();
        let mut n = net(d.path(), "10.9.0.0/24", "10.9.0.1");
        n.range = Some(crate::AddrRange {
            start: "10.9.0.100".parse().unwrap(),
            end: "10.9.0.101".parse().unwrap(),
        });
        let _l = lock(&n).unwrap();
        assert_eq!(
            reserve_ip(&n, "a").unwrap(),
            Some(Ipv4Addr::new(10, 9, 0, 100))
        );
        assert_eq!(
            reserve_ip(&n, "b").unwrap(),
            Some(Ipv4Addr::new(10, 9, 0, 101))
        );
        assert_eq!(reserve_ip(&n, "c").unwrap(), None);
    }

    #[test]
    fn gateway_in_the_middle_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path(), "10.9.0.0/30", "10.9.0.2");
        let _l = lock(&n).unwrap();
        assert_eq!(
            reserve_ip(&n, "a").unwrap(),
            Some(Ipv4Addr::new(10, 9, 0, 1))
        );
        assert_eq!(reserve_ip(&n, "b").unwrap(), None);
    }

    #[test]
    fn claims_carry_their_owner_and_leave_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path(), "10.9.0.0/24", "10.9.0.1");
        let _l = lock(&n).unwrap();
        let ip = reserve_ip(&n, "a").unwrap().unwrap();
        let c = read_claim(&ip_file(&n, ip)).unwrap().unwrap();
        assert_eq!(c.id, "a");
        assert_eq!(c.reserver, ProcId::current());
        assert!(c.reserver.unwrap().alive());
        let names: Vec<_> = fs::read_dir(ips_dir(&n))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // An old one-word record still names its owner.
        assert_eq!(
            Claim::parse("b\n"),
            Claim {
                id: "b".into(),
                reserver: None,
                network: None,
            }
        );
        let me = ProcId::current().unwrap();
        let c = Claim::parse(&format!("c {} {} net1\n", me.pid, me.start));
        assert_eq!(c.network.as_deref(), Some("net1"));
        assert_eq!(Claim::parse(&c.render()), c);
        assert_eq!(remove_temporaries(&n), 0);
        let dead = ProcId {
            start: 0,
            pid: i32::MAX - 1,
        };
        fs::write(
            ips_dir(&n).join(format!(".10.9.0.9.tmp-{}-0", dead.pid)),
            "x",
        )
        .unwrap();
        let mine = ips_dir(&n).join(format!(".10.9.0.8.tmp-{}-0", std::process::id()));
        fs::write(&mine, "x").unwrap();
        assert_eq!(remove_temporaries(&n), 1, "only the dead writer's");
        assert!(mine.exists());
    }

    #[test]
    fn port_files_name_protocol_port_and_address() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path(), "10.9.0.0/24", "10.9.0.1");
        let f = port_file(&n, Protocol::Udp, Some("::1".parse().unwrap()), 53);
        assert!(f.ends_with(".ports/udp-53@::1"));
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            parse_port_file(name),
            Some((Protocol::Udp, 53, Some("::1".parse().unwrap())))
        );
        assert_eq!(
            parse_port_file("tcp-8080"),
            Some((Protocol::Tcp, 8080, None))
        );
        assert_eq!(parse_port_file(".tcp-1.tmp-3-4"), None);
    }
}
