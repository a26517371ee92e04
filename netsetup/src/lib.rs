//! netsetup: gives a network namespace what Docker's default bridge gives a container — a
//! veth on the `minc0` bridge, an address from a locked IPAM, a default route, resolv.conf,
//! hosts and hostname, masquerade and published ports through one nftables table — and takes
//! it all away again from saved state.
//!
//! The work is split so a runtime can write the container's files before it creates the
//! container: [`allocate`] (IPAM, port reservation, files), then [`connect`] (links, routes,
//! sysctls, nftables, /run/netns entry). [`attach`] does both; [`detach`] undoes everything.

mod error;
mod explain;
mod files;
mod ipam;
mod links;
mod netlink;
mod netns;
mod nft;
mod state;
mod sysctl;
mod types;

pub mod cni;

pub use error::Error;
pub use files::{container_resolv, parse_resolv, render_resolv, Resolv};
pub use types::{Allocation, Attachment, Network, PortMapping, Protocol, Request};

use error::io_err;
use explain::explain;
use netlink::Netlink;
use sha2::{Digest, Sha256};
use state::{NetnsRef, ProcId, State};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// Host-side veth name: `veth` + 8 hex digits of a hash of network and id (15-char limit).
pub fn host_veth_name(net: &Network, id: &str) -> String {
    let h = Sha256::digest(format!("{}\0{}", net.name, id).as_bytes());
    format!("veth{:02x}{:02x}{:02x}{:02x}", h[0], h[1], h[2], h[3])
}

/// The name the netns is published under in /run/netns (`minc-<id>`).
pub fn netns_name(id: &str) -> String {
    netns::name(id)
}

/// Brings up `lo` in a network namespace and nothing else: what a container with no network
/// (`--network none`) gets.
pub fn loopback_up(netns: &Path) -> Result<(), Error> {
    let ns = netns::open(netns)?;
    let name = netns.display().to_string();
    netns::run_in(&ns, netns, || links::loopback_up(&name))
}

/// Reserves an address (and the host ports) for `req.id` and writes its resolv.conf, hosts
/// and hostname into `req.files_dir`. Persists state; on failure leaves nothing behind.
pub fn allocate(net: &Network, req: &Request) -> Result<Allocation, Error> {
    net.validate()?;
    types::validate_id(&req.id)?;
    let ifname = req.ifname.clone().unwrap_or_else(|| "eth0".into());
    if ifname.is_empty()
        || ifname.len() > 15
        || ifname.contains('/')
        || ifname.contains(char::is_whitespace)
    {
        return Err(Error::Config(format!(
            "interface name {ifname:?} is not valid"
        )));
    }
    // Work that needs no lock first: the resolver config.
    let host = files::read_host_resolv(&net.host_resolv_conf);
    let upstream = std::fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    let resolv = files::container_resolv(&host, upstream.as_deref(), &req.dns, &net.fallback_dns);
    let resolv_text = files::render_resolv(&resolv);
    let hostname = req
        .hostname
        .clone()
        .unwrap_or_else(|| files::default_hostname(&req.id));

    let (ip, st) = {
        let _lock = ipam::lock(net)?;
        if state::load(net, &req.id)?.is_some() {
            return Err(Error::AlreadyAttached {
                id: req.id.clone(),
                network: net.name.clone(),
            });
        }
        let ip = match ipam::reserve_ip(net, &req.id)? {
            Some(ip) => ip,
            None => {
                // Only when the pool is full do we pay for a scan of every allocation.
                reclaim_stale_locked(net)?;
                ipam::reserve_ip(net, &req.id)?.ok_or(Error::PoolExhausted(net.subnet))?
            }
        };
        if let Err(e) = ipam::reserve_ports(net, &req.id, &req.ports) {
            ipam::release(net, &req.id, Some(ip), &[])?;
            return Err(e);
        }
        let allocation = Allocation {
            id: req.id.clone(),
            ip,
            prefix_len: net.subnet.prefix_len(),
            gateway: net.gateway,
            ports: req.ports.clone(),
            nameservers: resolv.nameservers.clone(),
            search: resolv.search.clone(),
            options: resolv.options.clone(),
            resolv_conf: None,
            hosts: None,
            hostname: None,
        };
        let st = State {
            network: net.name.clone(),
            bridge: net.bridge.clone(),
            allocation,
            host_veth: host_veth_name(net, &req.id),
            ifname,
            resolv: resolv_text.clone(),
            files: Vec::new(),
            owner: ProcId::current(),
            netns: None,
            connected: false,
        };
        if let Err(e) = state::save(net, &st) {
            ipam::release(net, &req.id, Some(ip), &req.ports)?;
            return Err(e);
        }
        (ip, st)
    };
    explain!(
        "# ipam: {} -> {ip}/{} (state in {})",
        req.id,
        net.subnet.prefix_len(),
        net.state_dir().display()
    );
    match write_files(net, st, req, &hostname, &resolv_text) {
        Ok(st) => Ok(st.allocation),
        Err(e) => {
            let _ = detach(net, &req.id);
            Err(e)
        }
    }
}

fn write_files(
    net: &Network,
    mut st: State,
    req: &Request,
    hostname: &str,
    resolv: &str,
) -> Result<State, Error> {
    let Some(dir) = &req.files_dir else {
        return Ok(st);
    };
    let hosts = files::render_hosts(IpAddr::V4(st.allocation.ip), hostname, &req.id);
    let list: [(&str, String); 3] = [
        ("resolv.conf", resolv.into()),
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
    ];
    for (name, content) in list {
        let p = dir.join(name);
        // Record before writing so a failure half-way still gets cleaned up.
        st.files.push(p.clone());
        state::save(net, &st)?;
        explain!(
            "cat > {} <<EOF  # {} line(s)",
            p.display(),
            content.lines().count()
        );
        state::write_atomic(&p, content.as_bytes(), 0o644)?;
    }
    st.allocation.resolv_conf = Some(dir.join("resolv.conf"));
    st.allocation.hosts = Some(dir.join("hosts"));
    st.allocation.hostname = Some(dir.join("hostname"));
    state::save(net, &st)?;
    Ok(st)
}

/// Connects the netns at `netns` for a container allocated with [`allocate`]: bridge
/// (idempotent), veth pair, address, routes, sysctls, one nft batch, /run/netns/minc-<id>.
/// On failure, what connect made is undone (the allocation stays; [`detach`] releases it).
pub fn connect(net: &Network, id: &str, netns: &Path) -> Result<Attachment, Error> {
    net.validate()?;
    types::validate_id(id)?;
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
    let ns = netns::open(netns)?;
    st.netns = Some(netns_ref(netns));
    // Saved before anything is made so a crash in between is still torn down from disk.
    st.connected = true;
    state::save(net, &st)?;
    match connect_inner(net, &st, &ns, netns) {
        Ok(att) => Ok(att),
        Err(e) => {
            let _ = disconnect(net, &st);
            st.connected = false;
            st.netns = None;
            let _ = state::save(net, &st);
            Err(e)
        }
    }
}

fn netns_ref(p: &Path) -> NetnsRef {
    use std::os::unix::fs::MetadataExt;
    let (dev, ino) = std::fs::metadata(p)
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or((0, 0));
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

fn connect_inner(
    net: &Network,
    st: &State,
    ns: &std::fs::File,
    ns_path: &Path,
) -> Result<Attachment, Error> {
    let a = &st.allocation;
    let nsname = netns::name(&a.id);
    let nl_err = |e| Error::Netlink {
        what: "socket".into(),
        source: e,
    };
    let mut nl = Netlink::open().map_err(nl_err)?;
    let mtu = match net.mtu {
        Some(m) => Some(m),
        None => links::default_route_mtu(&mut nl)?,
    };
    let bidx = links::ensure_bridge(&mut nl, net, mtu)?;
    use std::os::fd::AsFd;
    let veth = links::Veth {
        host: &st.host_veth,
        bridge: &net.bridge,
        bridge_idx: bidx,
        mtu,
        ifname: &st.ifname,
        netns_name: &nsname,
    };
    links::create_veth(&mut nl, &veth, ns.as_fd())?;
    let (mac, cmtu) = netns::run_in(ns, ns_path, || {
        links::configure_container(&nsname, &st.ifname, a.ip, a.prefix_len, a.gateway)
    })?;
    sysctl::ensure("net.ipv4.ip_forward", "1")?;
    if !a.ports.is_empty() {
        // Lets the host's 127.0.0.1 connections, DNATed in the output hook, leave via the bridge.
        sysctl::ensure(&format!("net.ipv4.conf.{}.route_localnet", net.bridge), "1")?;
    }
    nft::explain_connect(net, a.ip, &a.ports);
    nft::connect(net, a.ip, &a.ports)?;
    netns::publish(net, &a.id, ns)?;
    let etc = netns::etc_dir(net, &a.id);
    explain!("mkdir -p {0} && cat > {0}/resolv.conf", etc.display());
    state::write_atomic(&etc.join("resolv.conf"), st.resolv.as_bytes(), 0o644)?;
    Ok(Attachment {
        allocation: a.clone(),
        bridge: net.bridge.clone(),
        host_veth: st.host_veth.clone(),
        ifname: st.ifname.clone(),
        mac,
        mtu: cmtu.or(mtu).unwrap_or(1500),
        netns_name: nsname,
    })
}

/// Undoes what connect made; idempotent and fine when the netns is gone.
fn disconnect(net: &Network, st: &State) -> Result<(), Error> {
    let mut first: Option<Error> = None;
    let mut keep = |r: Result<(), Error>| {
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    };
    match Netlink::open() {
        Ok(mut nl) => keep(links::delete_link(&mut nl, &st.host_veth)),
        Err(e) => keep(Err(Error::Netlink {
            what: "socket".into(),
            source: e,
        })),
    }
    keep(nft::disconnect(st.allocation.ip, &st.allocation.ports));
    keep(netns::unpublish(net, &st.allocation.id));
    keep(netns::remove_etc(net, &st.allocation.id));
    first.map_or(Ok(()), Err)
}

/// [`allocate`] then [`connect`]; on failure nothing is left behind.
pub fn attach(net: &Network, req: &Request, netns: &Path) -> Result<Attachment, Error> {
    allocate(net, req)?;
    connect(net, &req.id, netns).inspect_err(|_| {
        let _ = detach(net, &req.id);
    })
}

/// Tears down everything attach made for `id`, from saved state: veth, nft elements,
/// /run/netns entry, files, address and ports. Idempotent; fine if nothing exists.
pub fn detach(net: &Network, id: &str) -> Result<(), Error> {
    types::validate_id(id)?;
    let Some(st) = state::load(net, id)? else {
        return Ok(());
    };
    teardown(net, &st)?;
    let _lock = ipam::lock(net)?;
    release_locked(net, &st)
}

fn teardown(net: &Network, st: &State) -> Result<(), Error> {
    disconnect(net, st)?;
    for f in &st.files {
        explain!("rm -f {}", f.display());
        state::remove_file(f)?;
    }
    Ok(())
}

fn release_locked(net: &Network, st: &State) -> Result<(), Error> {
    let a = &st.allocation;
    explain!("# ipam: release {} ({})", a.ip, a.id);
    ipam::release(net, &a.id, Some(a.ip), &a.ports)?;
    state::remove(net, &a.id)
}

/// Tears down allocations whose container is gone (its netns vanished, or the process that
/// allocated died before connecting). Caller holds the IPAM lock. Returns the ids reclaimed.
fn reclaim_stale_locked(net: &Network) -> Result<Vec<String>, Error> {
    let dir = state::containers_dir(net);
    let mut done = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        if let Some(st) = state::load_path(&p)? {
            if st.is_stale() {
                teardown(net, &st)?;
                release_locked(net, &st)?;
                done.push(st.allocation.id.clone());
            }
        }
    }
    Ok(done)
}

/// Reclaims stale allocations (see [`allocate`], which does this itself when the pool is
/// full). Returns the ids reclaimed.
pub fn gc(net: &Network) -> Result<Vec<String>, Error> {
    net.validate()?;
    let _lock = ipam::lock(net)?;
    reclaim_stale_locked(net)
}

/// One container known to the network.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Entry {
    pub id: String,
    pub ip: Ipv4Addr,
    pub ports: Vec<PortMapping>,
    pub host_veth: String,
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
        if let Some(st) = state::load_path(&e.path())? {
            v.push(Entry {
                stale: st.is_stale(),
                id: st.allocation.id.clone(),
                ip: st.allocation.ip,
                ports: st.allocation.ports.clone(),
                host_veth: st.host_veth.clone(),
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

/// Checks that what attach made for `id` is still in place (CNI CHECK).
pub fn check(net: &Network, id: &str) -> Result<(), Error> {
    let st = state::load(net, id)?.ok_or_else(|| Error::NotAllocated {
        id: id.into(),
        network: net.name.clone(),
    })?;
    let mut nl = Netlink::open().map_err(|e| Error::Netlink {
        what: "socket".into(),
        source: e,
    })?;
    if !st.connected || !links::link_exists(&mut nl, &st.host_veth)? {
        return Err(Error::Netlink {
            what: format!("veth {} of {id}", st.host_veth),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        });
    }
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let present = nft::list_elements(proto)?;
        for p in st.allocation.ports.iter().filter(|p| p.protocol == proto) {
            if !present.contains(&(p.host_port, st.allocation.ip, p.container_port)) {
                return Err(Error::Nft(format!("port {p} of {id} is not published")));
            }
        }
    }
    Ok(())
}

/// Test and debugging helpers: what the nft port maps hold right now.
pub fn published_ports() -> Result<Vec<(Protocol, u16, Ipv4Addr, u16)>, Error> {
    let mut v = Vec::new();
    for proto in [Protocol::Tcp, Protocol::Udp] {
        v.extend(
            nft::list_elements(proto)?
                .into_iter()
                .map(|(h, ip, c)| (proto, h, ip, c)),
        );
    }
    Ok(v)
}

/// Every address reserved on the network, with its owner.
pub fn reserved_ips(net: &Network) -> Vec<(Ipv4Addr, String)> {
    ipam::reserved(net)
}
