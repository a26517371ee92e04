//! Host ports: which host port each published port gets, and whether it is free.
//!
//! A host port is free for a container when nothing else holds it: no other container of this
//! data root (the claims under `DATA/.ports`: the same protocol and port overlap when their
//! addresses are equal or either is "every address"), no process of the host (a socket bound
//! to it would fail with EADDRINUSE: Docker finds the same when its proxy binds), and no other
//! minc data root (its element would already be in minc's nft maps, which every data root
//! shares). `-p 80` takes a free port of the host's ephemeral range
//! (`net.ipv4.ip_local_port_range`, as Docker does), `-p 8000-8010:80` the first free one of
//! the range; `-p 8080:80` is that port or an error that says who holds it.
//!
//! Read: ip(7) and ipv6(7) (SO_REUSEADDR, IPV6_V6ONLY), bind(2).

use crate::ipam::{self, Claim, PortClaim};
use crate::nft::Family;
use crate::ops::System;
use crate::types::addr_for_port;
use crate::{rules, Error, HostPort, Network, PortMapping, PortSpec, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

/// Asked to release a claim whose holder is gone: true when it did.
pub type Free<'a> = dyn FnMut(&mut dyn System, &Path, &Claim) -> Result<bool, Error> + 'a;

/// Why a candidate port cannot be had.
enum Busy {
    /// Another port could do (a random or range pick tries the next).
    Taken(Error),
    /// No port on this address can (the address is not the host's).
    Fatal(Error),
}

/// How a mapping names its port in messages: `8080/tcp` or `127.0.0.1:8080/tcp`.
pub fn port_text(proto: Protocol, ip: Option<IpAddr>, port: u16) -> String {
    match ip {
        Some(ip) => format!("{}:{port}/{proto}", addr_for_port(&ip)),
        None => format!("{port}/{proto}"),
    }
}

/// The host's ephemeral port range.
fn ephemeral(sys: &mut dyn System) -> (u16, u16) {
    let range = sys
        .sysctl("net.ipv4.ip_local_port_range")
        .ok()
        .flatten()
        .and_then(|s| {
            let mut w = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((w.next()??, w.next()??))
        });
    match range {
        Some((lo, hi)) if 0 < lo && lo <= hi => (lo, hi),
        _ => (32768, 60999),
    }
}

/// A starting point that differs between calls, so concurrent picks rarely try the same port.
fn spread(n: u32) -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (t ^ std::process::id().rotate_left(16)) % n.max(1)
}

/// Chooses the host port of every spec for container `id` on `net` (whose containers have
/// IPv6 when `v6`). `free` is asked to release a claim whose holder is gone (true when it
/// did). Caller holds the IPAM lock and claims the result with [`ipam::take_ports`].
pub fn choose(
    sys: &mut dyn System,
    net: &Network,
    id: &str,
    specs: &[PortSpec],
    v6: bool,
    free: &mut Free,
) -> Result<Vec<PortMapping>, Error> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    if net.internal {
        return Err(Error::Config(format!(
            "network {} is internal: it has no route out, so it publishes no ports",
            net.name
        )));
    }
    let mut claims = ipam::port_claims(net)?;
    let mut chosen: Vec<Option<PortMapping>> = vec![None; specs.len()];
    // Fixed ports first, so a random pick never takes a port asked for by number.
    let order = (0..specs.len())
        .filter(|&i| matches!(specs[i].host, HostPort::Fixed(_)))
        .chain((0..specs.len()).filter(|&i| !matches!(specs[i].host, HostPort::Fixed(_))));
    for i in order.collect::<Vec<_>>() {
        let s = &specs[i];
        if s.host_ip.is_some_and(|ip| ip.is_ipv6()) && !v6 {
            return Err(Error::Config(format!(
                "-p {}: network {} has no IPv6, so a container on it cannot be published on an IPv6 address",
                port_text(s.protocol, s.host_ip, s.container_port),
                net.name
            )));
        }
        let taken: Vec<PortMapping> = chosen.iter().flatten().copied().collect();
        let (lo, hi, start) = match s.host {
            HostPort::Fixed(p) => (p, p, 0),
            HostPort::Range(lo, hi) => (lo, hi, 0),
            HostPort::Any => {
                let (lo, hi) = ephemeral(sys);
                (lo, hi, spread(u32::from(hi - lo) + 1))
            }
        };
        let mut check = |port: u16| -> Result<PortMapping, Busy> {
            let m = PortMapping {
                host_ip: s.host_ip,
                host_port: port,
                container_port: s.container_port,
                protocol: s.protocol,
            };
            check(sys, id, &m, v6, &taken, &mut claims, free)?;
            Ok(m)
        };
        let got = match s.host {
            HostPort::Fixed(p) => match check(p) {
                Ok(m) => m,
                Err(Busy::Taken(e) | Busy::Fatal(e)) => return Err(e),
            },
            HostPort::Any | HostPort::Range(..) => {
                let n = u32::from(hi - lo) + 1;
                let mut found = None;
                for k in 0..n {
                    let port = lo + ((start + k) % n) as u16;
                    match check(port) {
                        Ok(m) => {
                            found = Some(m);
                            break;
                        }
                        Err(Busy::Taken(_)) => continue,
                        Err(Busy::Fatal(e)) => return Err(e),
                    }
                }
                found.ok_or_else(|| Error::InvalidPort {
                    spec: format!("{lo}-{hi}:{}/{}", s.container_port, s.protocol),
                    why: "every host port of the range is taken".into(),
                })?
            }
        };
        chosen[i] = Some(got);
    }
    Ok(chosen.into_iter().flatten().collect())
}

/// Whether mapping `m` can be had by `id`.
#[allow(clippy::too_many_arguments)]
fn check(
    sys: &mut dyn System,
    id: &str,
    m: &PortMapping,
    v6: bool,
    taken: &[PortMapping],
    claims: &mut Vec<PortClaim>,
    free: &mut Free,
) -> Result<(), Busy> {
    let what = port_text(m.protocol, m.host_ip, m.host_port);
    let in_use = |owner: String| {
        Busy::Taken(Error::PortInUse {
            port: what.clone(),
            owner,
        })
    };
    let overlaps = |c: &PortClaim| c.overlaps(m.protocol, m.host_ip, m.host_port);
    if taken.iter().any(|t| {
        t.protocol == m.protocol
            && t.host_port == m.host_port
            && (t.host_ip.is_none() || m.host_ip.is_none() || t.host_ip == m.host_ip)
    }) {
        return Err(in_use(id.into()));
    }
    let mut k = 0;
    while k < claims.len() {
        let c = &claims[k];
        if !overlaps(c) {
            k += 1;
            continue;
        }
        // Read only now: the claims of other ports are never opened.
        let holder = match ipam::read_claim(&c.file) {
            Ok(Some(h)) => h,
            Ok(None) => {
                claims.remove(k);
                continue;
            }
            Err(e) => return Err(Busy::Fatal(e)),
        };
        if holder.id == id {
            k += 1;
            continue;
        }
        match free(sys, &c.file, &holder) {
            Ok(true) => {
                claims.remove(k);
            }
            Ok(false) => return Err(in_use(holder.id)),
            Err(e) => return Err(Busy::Fatal(e)),
        }
    }
    match sys.probe_port(m.protocol, m.host_ip, m.host_port) {
        None => {}
        Some(libc::EADDRNOTAVAIL) => {
            let ip = m.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            return Err(Busy::Fatal(Error::NotHostAddress(ip)));
        }
        Some(libc::EADDRINUSE) => {
            return Err(Busy::Taken(Error::PortHeldByHost { port: what }));
        }
        // Anything else (EACCES under a restrictive LSM, ...) says nothing about the port.
        Some(_) => {}
    }
    // Another data root's container: its element is in the shared maps already.
    let stand_in = (Ipv4Addr::UNSPECIFIED, v6.then_some(Ipv6Addr::UNSPECIFIED));
    for p in rules::published(m, stand_in.0, stand_in.1) {
        let held = sys
            .nft_elements(Family::Inet, &p.map, Some(&p.key))
            .map_err(Busy::Fatal)?;
        if !held.is_empty() {
            return Err(Busy::Taken(Error::PortPublishedElsewhere { port: what }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::ops::System;
    use std::fs;

    fn net(dir: &Path) -> Network {
        Network {
            data_dir: dir.into(),
            ..Default::default()
        }
    }

    fn never(_: &mut dyn System, _: &Path, _: &Claim) -> Result<bool, Error> {
        Ok(false)
    }

    fn specs(v: &[&str]) -> Vec<PortSpec> {
        v.iter()
            .flat_map(|s| PortSpec::parse_publish(s).unwrap())
            .collect()
    }

    fn reserve(
        sys: &mut Fake,
        n: &Network,
        id: &str,
        p: &[&str],
        free: &mut Free,
    ) -> Result<Vec<PortMapping>, Error> {
        let got = choose(sys, n, id, &specs(p), false, free)?;
        ipam::take_ports(n, id, &got)?;
        Ok(got)
    }

    #[test]
    fn claims_overlap_by_address() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path());
        let mut sys = Fake::new();
        reserve(&mut sys, &n, "a", &["8080:80", "53:53/udp"], &mut never).unwrap();
        reserve(&mut sys, &n, "a", &["8080:80"], &mut never).unwrap();
        let e = reserve(&mut sys, &n, "b", &["9090:90", "8080:81"], &mut never).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host port 8080/tcp is already published by container a"
        );
        assert_eq!(
            ipam::port_owner(&n, Protocol::Tcp, 9090),
            None,
            "nothing claimed"
        );
        reserve(&mut sys, &n, "b", &["8080:80/udp"], &mut never).unwrap();
        // One host address: taken by every-address claims, free beside other addresses.
        let e = reserve(&mut sys, &n, "c", &["127.0.0.1:8080:80"], &mut never).unwrap_err();
        assert!(e.to_string().contains("127.0.0.1:8080/tcp"), "{e}");
        reserve(&mut sys, &n, "c", &["127.0.0.1:7070:80"], &mut never).unwrap();
        reserve(&mut sys, &n, "d", &["127.0.0.2:7070:80"], &mut never).unwrap();
        assert!(reserve(&mut sys, &n, "e", &["7070:80"], &mut never).is_err());
        assert!(
            reserve(&mut sys, &n, "f", &["1:1", "1:2"], &mut never).is_err(),
            "duplicate in one request"
        );
        // A holder that is gone is released by `free`, and the port is taken.
        let mut asked = Vec::new();
        let mut free = |_: &mut dyn System, f: &Path, c: &Claim| {
            asked.push(c.id.clone());
            fs::remove_file(f).unwrap();
            Ok(true)
        };
        reserve(&mut sys, &n, "g", &["8080:80"], &mut free).unwrap();
        assert_eq!(asked, ["a"]);
        assert_eq!(
            ipam::port_owner(&n, Protocol::Tcp, 8080).as_deref(),
            Some("g")
        );
    }

    #[test]
    fn random_and_range_picks_skip_what_is_taken() {
        let d = tempfile::tempdir().unwrap();
        let n = net(d.path());
        let mut sys = Fake::new();
        sys.sysctls
            .insert("net.ipv4.ip_local_port_range".into(), "40000\t40003".into());
        sys.host_ports.insert((Protocol::Tcp, 40001));
        reserve(&mut sys, &n, "a", &["40000:80"], &mut never).unwrap();
        let got = reserve(&mut sys, &n, "b", &["80", "81"], &mut never).unwrap();
        let mut ports: Vec<u16> = got.iter().map(|m| m.host_port).collect();
        ports.sort();
        assert_eq!(
            ports,
            [40002, 40003],
            "40000 claimed, 40001 bound on the host"
        );
        let e = reserve(&mut sys, &n, "c", &["82"], &mut never).unwrap_err();
        assert!(e.to_string().contains("every host port"), "{e}");
        let got = reserve(&mut sys, &n, "d", &["39999-40002:90"], &mut never).unwrap();
        assert_eq!(got[0].host_port, 39999);
        // A fixed port held by a host process is refused, naming the host.
        let e = reserve(&mut sys, &n, "e", &["40001:80"], &mut never).unwrap_err();
        assert_eq!(
            e.to_string(),
            "host port 40001/tcp is in use by a process on the host"
        );
        // Another data root's element in the shared map.
        let mut other = Fake::new();
        let mut cmds = rules::skeleton(&n);
        let m = "9000:80".parse().unwrap();
        cmds.extend(
            rules::published(&m, "10.1.0.2".parse().unwrap(), None)
                .iter()
                .map(rules::Published::add),
        );
        other
            .perform(&[crate::ops::Op::Nft(crate::nft::Batch(cmds))])
            .unwrap();
        let e = reserve(&mut other, &n, "f", &["9000:80"], &mut never).unwrap_err();
        assert!(e.to_string().contains("another minc data root"), "{e}");
        let internal = Network {
            internal: true,
            ..n.clone()
        };
        assert!(choose(
            &mut sys,
            &internal,
            "g",
            &specs(&["1:1"]),
            false,
            &mut never
        )
        .is_err());
    }
}
