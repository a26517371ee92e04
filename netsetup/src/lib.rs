//! netsetup: gives a network namespace what a Docker network gives a container — a veth on
//! the network's bridge, IPv4 (and IPv6) addresses from a locked IPAM, default routes,
//! resolv.conf, hosts and hostname, masquerade, published ports, isolation from other
//! networks and anti-spoofing through minc's nftables tables, names that resolve through the
//! network's resolver — and takes it all away again from saved state.
//!
//! The work is split so a runtime can write the container's files before it creates the
//! container: [`allocate`] (IPAM, port reservation, files), then [`connect`] (links, routes,
//! sysctls, nftables, the /run/netns name, the resolver). [`attach`] does both; [`detach`]
//! undoes everything. A container may be on several networks (one call per network, each
//! with its own interface name). Every privileged step goes through [`ops`], which performs it
//! and renders it for `--explain`; nothing on the attach or detach path runs another program
//! (a network's resolver is started once, with its first container).
//!
//! Files: everything netsetup keeps lives under [`Network::data_dir`] (network definitions,
//! state, reservations, the resolver's names); the container's resolv.conf, hosts and
//! hostname go where the caller asks ([`Request::files_dir`]).

mod connect;
mod daemon;
pub mod dns;
mod error;
mod files;
mod ipam;
mod kernel;
mod netlink;
mod netns;
pub mod networks;
mod nft;
mod nftnl;
mod ops;
mod ports;
mod rules;
mod state;
mod types;

#[cfg(test)]
mod fake;

pub mod cni;

pub use error::Error;
pub use files::{container_resolv, parse_resolv, render_resolv, resolver_resolv, Resolv};
/// The address and subnet types of netsetup's API.
pub use ipnet;
pub use types::{
    addr_for_port, AddrRange, Allocation, Attachment, HostPort, Network, PortMapping, PortSpec,
    Protocol, Request,
};

use error::io_err;
use kernel::Kernel;
use nft::Family;
use ops::{Op, System};
use sha2::{Digest, Sha256};
use state::{NetnsRef, ProcId, State};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use sysops::explain;

/// Host-side veth name: `veth` + 8 hex digits of a hash of bridge and id (15-char limit).
pub fn host_veth_name(net: &Network, id: &str) -> String {
    let h = Sha256::digest(format!("{}\0{}", net.bridge, id).as_bytes());
    format!("veth{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
}

/// The name the netns is published under in /run/netns (`minc-<id>`).
pub fn netns_name(id: &str) -> String {
    netns::name(id)
}

/// Brings up `lo` in a network namespace and nothing else: what a container with no network
/// (`--network none`) gets.
pub fn loopback_up(netns: &Path) -> Result<(), Error> {
    netns::open(netns)?;
    ops::run(
        &mut Kernel::new(),
        vec![Op::LinkUp {
            ns: Some(ops::Ns(netns.into())),
            dev: "lo".into(),
        }],
    )
}

fn validate_ifname(ifname: &str) -> Result<(), Error> {
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname == "."
        || ifname == ".."
        || ifname.contains('/')
        || ifname.contains(':')
        || ifname.contains(char::is_whitespace)
    {
        return Err(Error::Config(format!(
            "interface name {ifname:?} is not valid"
        )));
    }
    Ok(())
}

/// Reserves an address (and the host ports) for `req.id` and writes its resolv.conf, hosts
/// and hostname into `req.files_dir`. Persists state; on failure leaves nothing behind.
pub fn allocate(net: &Network, req: &Request) -> Result<Allocation, Error> {
    allocate_with(&mut Kernel::new(), net, req)
}

fn allocate_with(sys: &mut dyn System, net: &Network, req: &Request) -> Result<Allocation, Error> {
    net.validate()?;
    types::validate_id(&req.id)?;
    let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
    validate_ifname(&ifname)?;
    if let Some(bad) = req.names.iter().find(|n| !dns::valid_name(n)) {
        return Err(Error::Config(format!(
            "{bad:?} is not a DNS name (letters, digits, '-', '_' and dots)"
        )));
    }
    // Work that needs no lock first: the resolver config.
    let resolv = resolv_for(net, &req.dns);
    let resolv_text = files::render_resolv(&resolv);
    let hostname = req
        .hostname
        .clone()
        .unwrap_or_else(|| files::default_hostname(&req.id));

    let st = {
        let _lock = ipam::lock(net)?;
        if let Some(old) = state::load(net, &req.id)? {
            if !old.is_stale() {
                return Err(Error::AlreadyAttached {
                    id: req.id.clone(),
                    network: net.name.clone(),
                });
            }
            reclaim_locked(sys, net, &old)?;
        }
        // Recorded first, claimed second: a process killed at any point leaves either
        // nothing or a state file, never a claim nobody recorded.
        let ip = match ipam::next_free_ip(net)? {
            Some(ip) => ip,
            None => {
                // Only when the pool is full do we pay for a scan of every allocation.
                reclaim_stale_locked(sys, net)?;
                ipam::next_free_ip(net)?.ok_or(Error::PoolExhausted(net.subnet))?
            }
        };
        let ip6 = net.ip6_of(ip);
        let ports = ports::choose(
            sys,
            net,
            &req.id,
            &req.ports,
            ip6.is_some(),
            &mut |s, f, c| free_if_gone(s, net, f, c),
        )?;
        let mut files = Vec::new();
        if let Some(dir) = &req.files_dir {
            files = ["resolv.conf", "hosts", "hostname"]
                .map(|f| dir.join(f))
                .to_vec();
        }
        let st = State {
            network: net.name.clone(),
            bridge: net.bridge.clone(),
            allocation: Allocation {
                id: req.id.clone(),
                ip,
                prefix_len: net.subnet.prefix_len(),
                gateway: net.gateway,
                ip6,
                prefix_len6: net.subnet6.map(|s| s.prefix_len()),
                gateway6: net.gateway6,
                default_route: !req.no_default_route,
                ports,
                nameservers: resolv.nameservers.clone(),
                search: resolv.search.clone(),
                options: resolv.options.clone(),
                resolv_conf: files.first().cloned(),
                hosts: files.get(1).cloned(),
                hostname: files.get(2).cloned(),
            },
            host_veth: host_veth_name(net, &req.id),
            ifname,
            // Recorded before they are written, so a failure half-way is still cleaned up.
            files,
            owner: ProcId::current(),
            netns: None,
            connected: false,
            published: None,
            names: if net.dns {
                req.names.clone()
            } else {
                Vec::new()
            },
            upstream: if net.dns { req.dns.clone() } else { Vec::new() },
        };
        state::save(net, &st)?;
        let claimed = ipam::take_ip(net, ip, &req.id)
            .and_then(|()| ipam::take_ports(net, &req.id, &st.allocation.ports));
        if let Err(e) = claimed {
            release_locked(net, &st)?;
            return Err(e);
        }
        st
    };
    explain::comment(&format!(
        "netsetup: {} gets {}/{}{} on network {} (reserved under {})",
        req.id,
        st.allocation.ip,
        net.subnet.prefix_len(),
        st.allocation
            .ip6
            .map(|a| format!(" and {a}/{}", st.allocation.prefix_len6.unwrap_or(64)))
            .unwrap_or_default(),
        net.name,
        net.state_dir().display()
    ));
    let a = &st.allocation;
    let mut steps = Vec::new();
    if let (Some(r), Some(h), Some(n)) = (&a.resolv_conf, &a.hosts, &a.hostname) {
        let ips: Vec<IpAddr> = [Some(IpAddr::V4(a.ip)), a.ip6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
            .collect();
        let hosts = files::render_hosts(&ips, &hostname, &req.id, &req.extra_hosts);
        for (path, content) in [(r, resolv_text), (h, hosts), (n, format!("{hostname}\n"))] {
            steps.push(Op::WriteFile {
                path: path.clone(),
                content,
                in_place: false,
            });
        }
    }
    match ops::run(sys, steps) {
        Ok(()) => Ok(st.allocation),
        Err(e) => {
            let _ = detach_with(sys, net, &req.id, false);
            Err(e)
        }
    }
}

/// The container's resolver configuration: on a network with a resolver, that resolver (the
/// container's `--dns` servers become its upstreams); else the host's, adjusted, or the
/// override.
fn resolv_for(net: &Network, dns: &[IpAddr]) -> files::Resolv {
    let host = files::read_host_resolv(&net.host_resolv_conf);
    if net.dns {
        return files::resolver_resolv(&host, &[IpAddr::V4(net.gateway)]);
    }
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    files::container_resolv(&host, upstream.as_deref(), dns, &net.fallback_dns)
}

/// Rewrites a running container's resolv.conf in place (it is bind-mounted: a new file would
/// not reach the container), e.g. when it joins or leaves a network with a resolver.
pub fn rewrite_resolv(path: &Path, r: &Resolv) -> Result<(), Error> {
    ops::run(
        &mut Kernel::new(),
        vec![Op::WriteFile {
            path: path.into(),
            content: files::render_resolv(r),
            in_place: true,
        }],
    )
}

/// Connects the netns at `netns` for a container allocated with [`allocate`]: its
/// /run/netns name (shared by the container's networks), the bridge (idempotent), the veth
/// pair, addresses, routes, sysctls, one nft batch, and on a network with a resolver the
/// container's names (the resolver starts with the first). On failure, what connect made is
/// undone (the allocation stays; [`detach`] releases it).
pub fn connect(net: &Network, id: &str, netns: &Path) -> Result<Attachment, Error> {
    connect_with(&mut Kernel::new(), net, id, netns)
}

fn connect_with(
    sys: &mut dyn System,
    net: &Network,
    id: &str,
    netns: &Path,
) -> Result<Attachment, Error> {
    net.validate()?;
    types::validate_id(id)?;
    let ns_file = netns::open(netns)?;
    let expect = netns::identity(&ns_file).map_err(|source| Error::Netns {
        path: netns.into(),
        source,
    })?;
    let target = connect::published_path(net, id);
    let (mut st, publish) = {
        // Under the lock: a reclaim cannot remove the allocation while it becomes connected.
        let _lock = ipam::lock(net)?;
        let mut st = state::load(net, id)?.ok_or_else(|| Error::NotAllocated {
            id: id.into(),
            network: net.name.clone(),
        })?;
        if st.connected {
            return Err(Error::AlreadyConnected {
                id: id.into(),
                network: net.name.clone(),
            });
        }
        let publish = connect::check_name(&target, expect)?;
        // Saved before anything is made, so a crash in between is still torn down from disk.
        st.netns = Some(netns_ref(netns, expect));
        st.connected = true;
        st.published = Some(target.clone());
        state::save(net, &st)?;
        (st, publish)
    };
    explain::comment(&format!(
        "netsetup: connect {id} (namespace {}) to network {}",
        netns.display(),
        net.name
    ));
    let published = if publish {
        connect::publish(sys, netns, &target, expect)
    } else {
        Ok(())
    };
    let result = published
        .and_then(|()| connect::connect(sys, net, &st))
        .and_then(|att| {
            if net.dns {
                let _lock = ipam::lock(net)?;
                ops::run(sys, dns::connect_steps(net, &st)?)?;
            }
            Ok(att)
        });
    match result {
        Ok(att) => {
            explain::comment(&format!("netsetup: {id} connected"));
            Ok(att)
        }
        Err(e) => {
            let keep_name = !publish;
            let _ = connect::disconnect(sys, &st, keep_name);
            st.connected = false;
            st.netns = None;
            st.published = None;
            let _ = state::save(net, &st);
            Err(e)
        }
    }
}

fn netns_ref(p: &Path, (dev, ino): (u64, u64)) -> NetnsRef {
    // /proc/PID/ns/net lives as long as PID: remember the process, not the path.
    let proc = p
        .strip_prefix("/proc")
        .ok()
        .and_then(|r| r.iter().next()?.to_str()?.parse::<i32>().ok())
        .and_then(ProcId::of);
    NetnsRef {
        path: p.into(),
        dev,
        ino,
        proc,
    }
}

/// [`allocate`] then [`connect`]; on failure nothing is left behind.
pub fn attach(net: &Network, req: &Request, netns: &Path) -> Result<Attachment, Error> {
    attach_with(&mut Kernel::new(), net, req, netns)
}

fn attach_with(
    sys: &mut dyn System,
    net: &Network,
    req: &Request,
    netns: &Path,
) -> Result<Attachment, Error> {
    allocate_with(sys, net, req)?;
    connect_with(sys, net, &req.id, netns).inspect_err(|_| {
        let _ = detach_with(sys, net, &req.id, false);
    })
}

/// [`attach`], or for a container that already has state on this network (a retried or
/// crashed attach, as CNI runtimes do), the same again on what it holds: its connection is
/// made anew in `netns`, it keeps its address, its ports become `req.ports`. Refused when the
/// existing attachment uses another interface name.
pub fn reattach(net: &Network, req: &Request, netns: &Path) -> Result<Attachment, Error> {
    let sys = &mut Kernel::new();
    net.validate()?;
    types::validate_id(&req.id)?;
    let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
    let Some(old) = state::load(net, &req.id)? else {
        return attach_with(sys, net, req, netns);
    };
    if old.ifname != ifname {
        return Err(Error::AlreadyAttached {
            id: req.id.clone(),
            network: format!("{} (as {})", net.name, old.ifname),
        });
    }
    explain::comment(&format!(
        "netsetup: {} is already on network {}: connecting it again",
        req.id, net.name
    ));
    connect::disconnect(sys, &old, !state::other_networks(net, &req.id).is_empty())?;
    let lock = ipam::lock(net)?;
    let Some(mut st) = state::load(net, &req.id)? else {
        drop(lock);
        return attach_with(sys, net, req, netns);
    };
    let ip_holder = ipam::read_claim(&ipam::ip_file(net, st.allocation.ip))?;
    if ip_holder.is_some_and(|c| c.id != req.id) {
        // Its address went to another container meanwhile: start over.
        reclaim_locked(sys, net, &st)?;
        drop(lock);
        return attach_with(sys, net, req, netns);
    }
    let ports = ports::choose(
        sys,
        net,
        &req.id,
        &req.ports,
        st.allocation.ip6.is_some(),
        &mut |s, f, c| free_if_gone(s, net, f, c),
    )?;
    let a = &mut st.allocation;
    let dropped: Vec<_> = a
        .ports
        .iter()
        .filter(|p| !ports.contains(p))
        .copied()
        .collect();
    ipam::release(net, &req.id, None, &dropped)?;
    let resolv = resolv_for(net, &req.dns);
    a.ports = ports;
    a.nameservers = resolv.nameservers;
    a.search = resolv.search;
    a.options = resolv.options;
    st.connected = false;
    st.netns = None;
    st.published = None;
    st.owner = ProcId::current();
    state::save(net, &st)?;
    ipam::take_ip(net, st.allocation.ip, &req.id)?;
    ipam::take_ports(net, &req.id, &st.allocation.ports)?;
    drop(lock);
    connect_with(sys, net, &req.id, netns)
}

/// Tears down everything attach made for `id`, from saved state: nft elements, veth,
/// /run/netns name (unless another network of the container still uses it), files, names,
/// address and ports; with the network's last container, its resolver. Idempotent; fine if
/// nothing exists.
pub fn detach(net: &Network, id: &str) -> Result<(), Error> {
    detach_with(&mut Kernel::new(), net, id, false)
}

/// [`detach`] for a container whose process is gone while its namespace lives on (another
/// container joined it, `--network container:ID`): the veth is deleted, not only taken off the
/// bridge, so no address of the network stays behind in that namespace.
pub fn detach_shared(net: &Network, id: &str) -> Result<(), Error> {
    detach_with(&mut Kernel::new(), net, id, true)
}

fn detach_with(sys: &mut dyn System, net: &Network, id: &str, alive: bool) -> Result<(), Error> {
    types::validate_id(id)?;
    let Some(mut st) = state::load(net, id)? else {
        // An attach killed while it wrote the state leaves only a temporary file.
        if net.state_dir().is_dir() {
            let _lock = ipam::lock_dir(&net.data_dir)?;
            ipam::remove_temporaries(net);
        }
        return Ok(());
    };
    if alive {
        if let Some(ns) = &mut st.netns {
            // Judge the namespace by its published name, which this connect holds.
            ns.proc = None;
            if let Some(p) = &st.published {
                ns.path.clone_from(p);
            }
        }
    }
    teardown(sys, net, &st)?;
    let _lock = ipam::lock(net)?;
    if net.dns || dns::names_file(net, id).exists() {
        ops::run(sys, dns::detach_steps(net, id))?;
    }
    // What a killed attach may have left half-written.
    ipam::remove_temporaries(net);
    release_locked(net, &st)
}

fn teardown(sys: &mut dyn System, net: &Network, st: &State) -> Result<(), Error> {
    let keep_name = !state::other_networks(net, &st.allocation.id).is_empty();
    connect::disconnect(sys, st, keep_name)?;
    let files = st
        .files
        .iter()
        .filter(|f| f.exists())
        .map(|f| Op::RemoveFile { path: f.clone() })
        .collect();
    ops::run(sys, files)?;
    remove_partial_writes(&st.files);
    Ok(())
}

/// Temporary files of writes a killed process did not finish (`.NAME.tmp-PID-N` beside each
/// of the container's files).
fn remove_partial_writes(files: &[PathBuf]) {
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.dedup();
    for d in dirs {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let partial = files.iter().any(|f| {
                f.file_name()
                    .is_some_and(|n| name.starts_with(&format!(".{}.tmp-", n.to_string_lossy())))
            });
            if partial {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn release_locked(net: &Network, st: &State) -> Result<(), Error> {
    let a = &st.allocation;
    explain::comment(&format!("netsetup: release {} of {}", a.ip, a.id));
    ipam::release(net, &a.id, Some(a.ip), &a.ports)?;
    state::remove(net, &a.id)
}

/// Tears down and releases a container whose state is stale. Caller holds the lock.
fn reclaim_locked(sys: &mut dyn System, net: &Network, st: &State) -> Result<(), Error> {
    explain::comment(&format!(
        "netsetup: {} is gone; reclaiming what it held",
        st.allocation.id
    ));
    teardown(sys, net, st)?;
    if net.dns || dns::names_file(net, &st.allocation.id).exists() {
        ops::run(sys, dns::detach_steps(net, &st.allocation.id))?;
    }
    release_locked(net, st)
}

/// Asked when a reservation `file` is held by `claim`: frees it if its holder is gone (see
/// `state`'s module docs for how that is decided). Caller holds the lock.
fn free_if_gone(
    sys: &mut dyn System,
    net: &Network,
    file: &Path,
    claim: &ipam::Claim,
) -> Result<bool, Error> {
    // A host port's holder may be on another network of the data directory (same lock).
    let owner_net = match &claim.network {
        Some(n) if *n != net.name => networks::sibling(net, n),
        _ => net.clone(),
    };
    let net = &owner_net;
    match state::load(net, &claim.id)? {
        Some(st) if st.is_stale() => reclaim_locked(sys, net, &st).map(|()| true),
        Some(_) => Ok(false),
        None if claim.reserver.is_some_and(|p| p.alive()) => Ok(false),
        None => {
            explain::comment(&format!(
                "netsetup: {} was reserved by a process that died before recording it",
                file.display()
            ));
            state::remove_file(file).map(|()| true)
        }
    }
}

/// Tears down allocations whose container is gone, and reservations whose reserver died before
/// recording them. Caller holds the IPAM lock. Returns the ids reclaimed.
fn reclaim_stale_locked(sys: &mut dyn System, net: &Network) -> Result<Vec<String>, Error> {
    reclaim_where(sys, net, &|st: &State| st.is_stale())
}

/// Reclaims every container `drop` selects, and every orphaned reservation. Caller holds the
/// lock.
fn reclaim_where(
    sys: &mut dyn System,
    net: &Network,
    drop: &dyn Fn(&State) -> bool,
) -> Result<Vec<String>, Error> {
    ipam::remove_temporaries(net);
    let mut done = Vec::new();
    for e in std::fs::read_dir(state::containers_dir(net))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        if let Some(st) = state::load_path(&p)? {
            if drop(&st) {
                reclaim_locked(sys, net, &st)?;
                done.push(st.allocation.id.clone());
            }
        }
    }
    for (file, claim) in ipam::claims(net) {
        if free_if_gone(sys, net, &file, &claim)? && !done.contains(&claim.id) {
            done.push(claim.id);
        }
    }
    Ok(done)
}

/// Reclaims stale allocations and orphaned reservations (see [`allocate`], which does this
/// itself when the pool is full or a port is held by a container that is gone). Returns the
/// ids reclaimed.
pub fn gc(net: &Network) -> Result<Vec<String>, Error> {
    net.validate()?;
    let sys = &mut Kernel::new();
    let _lock = ipam::lock(net)?;
    reclaim_stale_locked(sys, net)
}

/// Reclaims every container on the network except those `keep` names (by id and interface),
/// plus whatever [`gc`] reclaims: CNI's GC with its list of valid attachments.
pub fn gc_except(net: &Network, keep: &dyn Fn(&str, &str) -> bool) -> Result<Vec<String>, Error> {
    net.validate()?;
    let sys = &mut Kernel::new();
    let _lock = ipam::lock(net)?;
    reclaim_where(sys, net, &|st: &State| {
        st.is_stale() || !keep(&st.allocation.id, &st.ifname)
    })
}

/// One container known to the network.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    pub id: String,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub names: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub host_veth: String,
    pub ifname: String,
    pub connected: bool,
    pub netns: Option<PathBuf>,
    pub stale: bool,
}

/// The containers with state on this network.
pub fn list(net: &Network) -> Result<Vec<Entry>, Error> {
    let dir = state::containers_dir(net);
    let mut v = Vec::new();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(v),
        Err(e) => return Err(io_err("read directory", &dir)(e)),
    };
    for e in rd.flatten() {
        if e.path().extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        if let Some(st) = state::load_path(&e.path())? {
            v.push(Entry {
                stale: st.is_stale(),
                id: st.allocation.id.clone(),
                ip: st.allocation.ip,
                ip6: st.allocation.ip6,
                names: st.names.clone(),
                ports: st.allocation.ports.clone(),
                host_veth: st.host_veth.clone(),
                ifname: st.ifname.clone(),
                connected: st.connected,
                netns: st.netns.map(|n| n.path),
            });
        }
    }
    v.sort_by_key(|e| e.ip);
    Ok(v)
}

/// The saved allocation of `id`, if any.
pub fn allocation(net: &Network, id: &str) -> Result<Option<Allocation>, Error> {
    types::validate_id(id)?;
    Ok(state::load(net, id)?.map(|s| s.allocation))
}

/// Checks that what attach made for `id` is still in place (CNI CHECK): the host veth, the
/// container's interface with its address, the published ports.
pub fn check(net: &Network, id: &str) -> Result<(), Error> {
    types::validate_id(id)?;
    let sys = &mut Kernel::new();
    let st = state::load(net, id)?.ok_or_else(|| Error::NotAllocated {
        id: id.into(),
        network: net.name.clone(),
    })?;
    let missing = |what: String| Error::Netlink {
        what,
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    };
    if !st.connected || sys.link(None, &st.host_veth)?.is_none() {
        return Err(missing(format!("veth {} of {id}", st.host_veth)));
    }
    if let Some(t) = &st.published {
        if sys.link(Some(&ops::Ns(t.clone())), &st.ifname)?.is_none() {
            return Err(missing(format!("{} in the namespace of {id}", st.ifname)));
        }
    }
    let a = &st.allocation;
    for p in &a.ports {
        for e in rules::published(p, a.ip, a.ip6) {
            let held = sys.nft_elements(Family::Inet, &e.map, Some(&e.key))?;
            if !held.iter().any(|(_, d)| *d == e.data.bytes()) {
                return Err(Error::Nft(format!("port {p} of {id} is not published")));
            }
        }
    }
    Ok(())
}

/// A published port as minc's maps hold it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    pub protocol: Protocol,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub addr: IpAddr,
    pub container_port: u16,
}

/// What minc's port maps hold right now (every data root's containers).
pub fn published_ports() -> Result<Vec<Published>, Error> {
    let sys = &mut Kernel::new();
    let mut v = Vec::new();
    let addr = |b: &[u8]| -> Option<IpAddr> {
        match b.len() {
            4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
            16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
            _ => None,
        }
    };
    let port = |b: &[u8]| Some(u16::from_be_bytes(b.get(..2)?.try_into().ok()?));
    for proto in [Protocol::Tcp, Protocol::Udp] {
        for (fam, alen) in [(nft::IpFamily::V4, 4), (nft::IpFamily::V6, 16)] {
            for by_addr in [false, true] {
                let map = rules::dnat_map(proto, fam, by_addr);
                for (k, d) in sys.nft_elements(Family::Inet, &map, None)? {
                    let (host_ip, kp) = if by_addr {
                        (k.get(..alen).and_then(addr), k.get(alen..))
                    } else {
                        (None, Some(&k[..]))
                    };
                    let got = (|| {
                        Some(Published {
                            protocol: proto,
                            host_ip,
                            host_port: port(kp?)?,
                            addr: addr(d.get(..alen)?)?,
                            container_port: port(d.get(alen..)?)?,
                        })
                    })();
                    v.extend(got);
                }
            }
        }
    }
    v.sort();
    Ok(v)
}

/// Every address reserved on the network, with its owner.
pub fn reserved_ips(net: &Network) -> Vec<(Ipv4Addr, String)> {
    ipam::reserved(net)
}

/// Whether the network can take another container now (CNI STATUS): its state directory is
/// usable and its pool has a free address.
pub fn status(net: &Network) -> Result<(), Error> {
    net.validate()?;
    let _lock = ipam::lock(net)?;
    let (first, last) = ipam::candidates(net);
    let size = (last + 1).saturating_sub(first) as usize;
    let gw_inside = (first..=last).contains(&u32::from(net.gateway)) as usize;
    if ipam::reserved_count(net) + gw_inside >= size {
        return Err(Error::PoolExhausted(net.subnet));
    }
    Ok(())
}

#[cfg(test)]
mod tests;

// The resolver's own modules, for their unit tests (the program uses what these do not).
#[cfg(test)]
#[path = "../resolver/message.rs"]
#[allow(dead_code)]
mod resolver_message;

#[cfg(test)]
#[path = "../resolver/records.rs"]
#[allow(dead_code)]
mod resolver_records;
