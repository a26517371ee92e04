//! IP address management: one file per reserved address and per published host port under
//! the network's state directory, all changes made under an exclusive flock. Allocation is
//! round-robin from the last address handed out (like host-local), so a released address is
//! not reused at once and the cost per allocation stays O(1) until the pool is nearly full.

use crate::error::io_err;
use crate::{Error, Network, PortMapping, Protocol};
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Holds the network's IPAM lock until dropped.
pub struct Lock {
    _file: fs::File,
}

pub fn lock(net: &Network) -> Result<Lock, Error> {
    let dir = net.state_dir();
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    let p = dir.join("lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io_err("open lock", &p))?;
    loop {
        // SAFETY: flock on a valid fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(Lock { _file: file });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != ErrorKind::Interrupted {
            return Err(io_err("lock", p)(e));
        }
    }
}

fn ips_dir(net: &Network) -> PathBuf {
    net.state_dir().join("ips")
}

fn ports_dir(net: &Network) -> PathBuf {
    net.state_dir().join("ports")
}

pub fn port_file(net: &Network, proto: Protocol, port: u16) -> PathBuf {
    ports_dir(net).join(format!("{proto}-{port}"))
}

pub fn ip_file(net: &Network, ip: Ipv4Addr) -> PathBuf {
    ips_dir(net).join(ip.to_string())
}

/// Creates `p` holding `id`; false if it already exists.
fn claim(p: &Path, id: &str) -> Result<bool, Error> {
    match fs::OpenOptions::new().write(true).create_new(true).open(p) {
        Ok(mut f) => {
            f.write_all(id.as_bytes()).map_err(io_err("write", p))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err("create", p)(e)),
    }
}

/// Removes `p` only if it still belongs to `id`.
fn unclaim(p: &Path, id: &str) -> Result<(), Error> {
    match fs::read_to_string(p) {
        Ok(owner) if owner == id => crate::state::remove_file(p),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("read", p)(e)),
    }
}

/// Who holds a host port, if anyone.
pub fn port_owner(net: &Network, proto: Protocol, port: u16) -> Option<String> {
    fs::read_to_string(port_file(net, proto, port)).ok()
}

/// The host addresses of the subnet a container may get (not network, gateway, broadcast).
pub fn candidates(net: &Network) -> (u32, u32) {
    let first = u32::from(net.subnet.network()) + 1;
    let last = u32::from(net.subnet.broadcast()) - 1;
    (first, last)
}

/// Reserves the next free address after the last one handed out. Caller holds the lock.
pub fn reserve_ip(net: &Network, id: &str) -> Result<Option<Ipv4Addr>, Error> {
    let dir = ips_dir(net);
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    let last_p = net.state_dir().join("last_reserved");
    let (first, last) = candidates(net);
    let size = last - first + 1;
    let prev = fs::read_to_string(&last_p)
        .ok()
        .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .filter(|v| (first..=last).contains(v))
        .unwrap_or(last);
    let gw = u32::from(net.gateway);
    for i in 1..=size {
        let cand = first + (prev - first + i) % size;
        if cand == gw {
            continue;
        }
        let ip = Ipv4Addr::from(cand);
        if claim(&ip_file(net, ip), id)? {
            crate::state::write_atomic(&last_p, ip.to_string().as_bytes(), 0o644)?;
            return Ok(Some(ip));
        }
    }
    Ok(None)
}

/// Reserves host ports for `id`, all or none. Caller holds the lock.
pub fn reserve_ports(net: &Network, id: &str, ports: &[PortMapping]) -> Result<(), Error> {
    let dir = ports_dir(net);
    fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
    for (i, p) in ports.iter().enumerate() {
        let dup = ports[..i]
            .iter()
            .any(|q| q.host_port == p.host_port && q.protocol == p.protocol);
        let taken = dup || !claim(&port_file(net, p.protocol, p.host_port), id)?;
        if taken {
            for q in &ports[..i] {
                unclaim(&port_file(net, q.protocol, q.host_port), id)?;
            }
            let owner = if dup {
                id.to_string()
            } else {
                port_owner(net, p.protocol, p.host_port).unwrap_or_else(|| "?".into())
            };
            return Err(Error::PortInUse {
                port: p.host_port,
                proto: p.protocol,
                owner,
            });
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
        unclaim(&port_file(net, p.protocol, p.host_port), id)?;
    }
    if let Some(ip) = ip {
        unclaim(&ip_file(net, ip), id)?;
    }
    Ok(())
}

/// Every address currently reserved (for tests and `netsetup list`).
pub fn reserved(net: &Network) -> Vec<(Ipv4Addr, String)> {
    let mut v: Vec<_> = fs::read_dir(ips_dir(net))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let ip = e.file_name().to_str()?.parse().ok()?;
            Some((ip, fs::read_to_string(e.path()).ok()?))
        })
        .collect();
    v.sort();
    v
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
    fn ports_all_or_nothing() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path(), "10.9.0.0/24", "10.9.0.1");
        let p = |s: &str| s.parse::<PortMapping>().unwrap();
        reserve_ports(&n, "a", &[p("8080:80"), p("53:53/udp")]).unwrap();
        let e = reserve_ports(&n, "b", &[p("9090:90"), p("8080:81")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host port 8080/tcp is already published by container a"
        );
        assert_eq!(port_owner(&n, Protocol::Tcp, 9090), None, "rolled back");
        reserve_ports(&n, "b", &[p("8080:80/udp")]).unwrap();
        assert!(
            reserve_ports(&n, "c", &[p("1:1"), p("1:2")]).is_err(),
            "duplicate in one request"
        );
        release(&n, "a", None, &[p("8080:80")]).unwrap();
        assert_eq!(port_owner(&n, Protocol::Tcp, 8080), None);
        assert_eq!(port_owner(&n, Protocol::Udp, 8080).as_deref(), Some("b"));
    }
}
