//! Networks in the Docker-like face: `minc network create|ls|inspect|rm|prune|connect|
//! disconnect`, `minc port`, the network flags of `run` (`--network`, `--network-alias`,
//! `-p`, `-P`, `--dns`, `--add-host`), and what a container's networks mean for its spec, its
//! start and its removal. The networks themselves are netsetup's ([`netsetup::networks`]).
//!
//! A container's networks are recorded in `DATA/containers/ID/networks.json` before anything
//! is reserved for it, so its removal finds every one of them, even after a crash half-way.
//! Its network mode is one of: a list of networks (the default bridge when none is named;
//! one interface each, `eth0`, `eth1`, ...), `none` (only lo), `host` (the host's network
//! namespace: no namespace of its own) or `container:NAME` (another container's namespace,
//! as in a pod).

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use netsetup::networks::{self as nets, Options};
use netsetup::{Network, PortMapping, PortSpec, Protocol};
use serde::{Deserialize, Serialize};

use super::containers::{Containers, Record};
use super::docker::Ctx;
use super::format;
use crate::container::Runtime;

/// The network flags of `minc run`.
#[derive(Args, Debug, Default, Clone)]
pub struct RunNetArgs {
    /// Publish a container port, as Docker's -p: [IP:][HOST[-HOST]:]CONTAINER[-CONTAINER][/tcp|/udp]
    /// (`-p 80` takes a free host port: see `minc port`)
    #[arg(
        short = 'p',
        long = "publish",
        value_name = "[IP:][HOST:]CONTAINER[/PROTO]"
    )]
    pub publish: Vec<String>,
    /// Publish every port the image exposes, each on a free host port
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// DNS server for the container (repeatable; on a user-defined network, where its
    /// network's resolver forwards the names it does not know)
    #[arg(long)]
    pub dns: Vec<String>,
    /// bridge (the default), a user-defined network (repeatable: one interface each), host,
    /// none (only lo), or container:NAME (share that container's network namespace)
    #[arg(long = "network", visible_alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Another name the container resolves by on its user-defined networks (repeatable)
    #[arg(
        long = "network-alias",
        visible_alias = "net-alias",
        value_name = "NAME"
    )]
    pub network_alias: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP (IP may be host-gateway) (repeatable)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
}

impl RunNetArgs {
    /// Whether any network flag was given.
    pub fn any(&self) -> bool {
        !self.publish.is_empty()
            || self.publish_all
            || !self.dns.is_empty()
            || !self.network.is_empty()
            || !self.network_alias.is_empty()
            || !self.add_host.is_empty()
    }
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network: its own bridge, subnet, masquerade and name resolution
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls,
    /// Show networks as JSON, with their containers
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks (no container may be connected)
    #[command(visible_alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove every user-defined network no container is connected to
    Prune {
        /// Accepted for Docker compatibility (minc does not ask)
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a running container to a network (a new interface)
    Connect {
        /// Another name it resolves by on this network (repeatable)
        #[arg(long = "alias", value_name = "NAME")]
        aliases: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Accepted for Docker compatibility
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Subnet in CIDR form; once for IPv4, once more for IPv6 (default: a free /16 of
    /// 10.78.0.0-10.127.255.255; with --ipv6, a random unique local /64)
    #[arg(long, value_name = "CIDR")]
    subnet: Vec<String>,
    /// Gateway (the bridge's address; default: the subnet's first address), per family
    #[arg(long, value_name = "IP")]
    gateway: Vec<String>,
    /// IPv6 as well: containers get an IPv6 address and default route
    #[arg(long)]
    ipv6: bool,
    /// No route out: containers reach only each other
    #[arg(long)]
    internal: bool,
    /// Accepted for Docker compatibility: bridge is the only driver
    #[arg(short, long, default_value = "bridge", value_parser = ["bridge"])]
    driver: String,
    /// Driver options: mtu=N (com.docker.network.driver.mtu=N works too)
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// The network's name: 1-32 letters, digits, '-' and '_'
    name: String,
}

/// How a container is networked (recorded in `networks.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Mode {
    /// One interface per network, in order.
    #[default]
    Networks,
    None,
    Host,
    /// The namespace of container `id`.
    Container {
        id: String,
    },
}

/// A container's place on one network.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Link {
    /// netsetup's name (`minc` for the default bridge).
    pub network: String,
    pub ifname: String,
    pub ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `DATA/containers/ID/networks.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Joined {
    #[serde(flatten)]
    pub mode: Mode,
    #[serde(default)]
    pub links: Vec<Link>,
    /// Containers started with `--network container:` this one (some may be gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub joiners: Vec<String>,
}

fn net_dir(ctx: &Ctx) -> PathBuf {
    ctx.data_root.join("net")
}

fn joined_path(ctx: &Ctx, id: &str) -> PathBuf {
    Containers::new(&ctx.data_root)
        .path(id)
        .join("networks.json")
}

fn save(ctx: &Ctx, id: &str, j: &Joined) -> Result<()> {
    let p = joined_path(ctx, id);
    sysops::fs::write_atomic(&p, &serde_json::to_vec_pretty(j)?, 0o600)
        .with_context(|| format!("{}", p.display()))
}

/// What a container's `networks.json` says (none: a container of an older minc, on the
/// default bridge when it has an address).
pub fn load(ctx: &Ctx, id: &str) -> Option<Joined> {
    let data = fs::read(joined_path(ctx, id)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// A network by the name the CLI uses (`bridge` is the default).
pub fn find(ctx: &Ctx, name: &str) -> Result<Network> {
    if name == "bridge" || name == nets::DEFAULT {
        return Ok(nets::default(&net_dir(ctx))?);
    }
    match nets::load(&net_dir(ctx), name)? {
        Some(d) => Ok(d.network),
        None => bail!("network {name} not found (see minc network ls)"),
    }
}

/// The network flags of `run`, checked before anything is made.
pub struct RunNet {
    mode: RunMode,
    ports: Vec<PortSpec>,
    dns: Vec<IpAddr>,
    aliases: Vec<String>,
    add_host: Vec<(String, String)>,
}

enum RunMode {
    Networks(Vec<String>),
    None,
    Host,
    Container(String),
}

/// Checks `run`'s network flags (no side effects). `exposed`: the image's ports, for `-P`.
pub fn parse_run(a: &RunNetArgs, exposed: &[(u16, String)]) -> Result<RunNet> {
    let mut ports = Vec::new();
    for p in &a.publish {
        ports.extend(PortSpec::parse_publish(p)?);
    }
    if a.publish_all {
        for (port, proto) in exposed {
            ports.push(PortSpec {
                host_ip: None,
                host: netsetup::HostPort::Any,
                container_port: *port,
                protocol: proto.parse()?,
            });
        }
    }
    let dns = a
        .dns
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|_| anyhow!("--dns {d}: not an IP address"))
        })
        .collect::<Result<Vec<IpAddr>>>()?;
    let mut add_host = Vec::new();
    for h in &a.add_host {
        let (name, ip) = h
            .split_once(':')
            .or_else(|| h.split_once('='))
            .ok_or_else(|| anyhow!("--add-host {h}: expected NAME:IP"))?;
        if !netsetup::dns::valid_name(name) {
            bail!("--add-host {h}: {name:?} is not a host name");
        }
        if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
            bail!("--add-host {h}: {ip:?} is not an IP address (or host-gateway)");
        }
        add_host.push((name.to_string(), ip.to_string()));
    }
    for al in &a.network_alias {
        if !netsetup::dns::valid_name(al) {
            bail!("--network-alias {al:?}: not a DNS name (letters, digits, '-', '_' and dots)");
        }
    }
    let special = |n: &str| n == "host" || n == "none" || n.starts_with("container:");
    let mode = match a.network.as_slice() {
        [] => RunMode::Networks(vec!["bridge".into()]),
        [one] if one == "none" => RunMode::None,
        [one] if one == "host" => RunMode::Host,
        [one] if one.starts_with("container:") => {
            let c = &one["container:".len()..];
            if c.is_empty() {
                bail!("--network container:NAME: the container's name is missing");
            }
            RunMode::Container(c.into())
        }
        many if many.iter().any(|n| special(n)) => {
            bail!("--network host, none and container:NAME cannot be combined with other networks")
        }
        many => {
            let mut v: Vec<String> = Vec::new();
            for n in many {
                let n = if n == "default" { "bridge" } else { n.as_str() };
                if v.iter().any(|x| x == n) {
                    bail!("--network {n} is given twice");
                }
                v.push(n.into());
            }
            RunMode::Networks(v)
        }
    };
    let what = match &mode {
        RunMode::Networks(_) => None,
        RunMode::None => Some("--network none"),
        RunMode::Host => Some("--network host"),
        RunMode::Container(_) => Some("--network container:NAME"),
    };
    if let Some(what) = what {
        if !ports.is_empty() {
            bail!("-p/-P publish ports of a network of the container's own: not with {what}");
        }
        if !a.network_alias.is_empty() {
            bail!("--network-alias needs a user-defined network, not {what}");
        }
    }
    if let RunMode::Container(_) = mode {
        if !dns.is_empty() || !add_host.is_empty() {
            bail!("--dns and --add-host go to the container whose network is shared, not to one that joins it");
        }
    }
    if let RunMode::Networks(v) = &mode {
        if !a.network_alias.is_empty() && v.iter().any(|n| n == "bridge") {
            bail!("--network-alias works on user-defined networks only (the default bridge has no names)");
        }
    }
    Ok(RunNet {
        mode,
        ports,
        dns,
        aliases: a.network_alias.clone(),
        add_host,
    })
}

/// What `prepare` made: the files to bind into the container, and for the record its
/// address and published ports.
pub struct Prepared {
    /// (file, where it goes in the container)
    pub files: Vec<(PathBuf, &'static str)>,
    pub ip: Option<Ipv4Addr>,
    pub ports: Vec<PortMapping>,
    mode: Mode,
    netns: Option<PathBuf>,
}

/// The names a container resolves by on a network with names: its name, its short id, its
/// aliases.
fn dns_names(name: &str, short: &str, aliases: &[String]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for n in [name, short]
        .into_iter()
        .chain(aliases.iter().map(String::as_str))
    {
        let n = n.to_ascii_lowercase();
        if netsetup::dns::valid_name(&n) && !v.contains(&n) {
            v.push(n);
        }
    }
    v
}

/// `--add-host` lines, `host-gateway` made the address of the host the container sees.
fn extra_hosts(r: &RunNet, gateway: IpAddr) -> Vec<(String, IpAddr)> {
    r.add_host
        .iter()
        .map(|(n, ip)| (n.clone(), ip.parse().unwrap_or(gateway)))
        .collect()
}

/// Reserves the container's networks (addresses, ports, files) before it is created. The
/// plan is recorded first; on failure the caller tears the container down, which releases
/// whatever was reserved.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    ctx: &Ctx,
    r: &RunNet,
    id: &str,
    name: &str,
    short: &str,
    hostname: &str,
    dir: &Path,
) -> Result<Prepared> {
    let files = |dir: &Path| {
        vec![
            (dir.join("resolv.conf"), "/etc/resolv.conf"),
            (dir.join("hosts"), "/etc/hosts"),
            (dir.join("hostname"), "/etc/hostname"),
        ]
    };
    match &r.mode {
        RunMode::None => {
            let j = Joined {
                mode: Mode::None,
                ..Default::default()
            };
            save(ctx, id, &j)?;
            Ok(Prepared {
                files: Vec::new(),
                ip: None,
                ports: Vec::new(),
                mode: j.mode,
                netns: None,
            })
        }
        RunMode::Host => {
            save(
                ctx,
                id,
                &Joined {
                    mode: Mode::Host,
                    ..Default::default()
                },
            )?;
            // The host's own files: its resolvers work from the host's namespace, loopback
            // ones included.
            let resolv = if r.dns.is_empty() {
                fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
            } else {
                let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                let mut res = netsetup::parse_resolv(&host);
                res.nameservers = r.dns.clone();
                netsetup::render_resolv(&res)
            };
            let mut hosts = fs::read_to_string("/etc/hosts").unwrap_or_default();
            for (n, ip) in extra_hosts(r, IpAddr::V4(Ipv4Addr::LOCALHOST)) {
                hosts += &format!("{ip}\t{n}\n");
            }
            let all = files(dir);
            for ((path, _), content) in all.iter().zip([resolv, hosts, format!("{hostname}\n")]) {
                sysops::explain::write_file(path, &content).emit();
                sysops::fs::write_atomic(path, content.as_bytes(), 0o644)
                    .with_context(|| format!("{}", path.display()))?;
            }
            Ok(Prepared {
                files: all,
                ip: None,
                ports: Vec::new(),
                mode: Mode::Host,
                netns: None,
            })
        }
        RunMode::Container(key) => {
            let (target, pid) = running(ctx, key)?;
            if target.id == id {
                bail!("a container cannot join its own network namespace");
            }
            let tdir = Containers::new(&ctx.data_root).path(&target.id);
            let shared: Vec<_> = files(&tdir)
                .into_iter()
                .filter(|(f, dest)| f.exists() && *dest != "/etc/hostname")
                .collect();
            let mode = Mode::Container {
                id: target.id.clone(),
            };
            save(
                ctx,
                id,
                &Joined {
                    mode: mode.clone(),
                    ..Default::default()
                },
            )?;
            // The target's teardown must know its namespace outlives it.
            let mut t = load(ctx, &target.id).unwrap_or_default();
            t.joiners.push(id.into());
            save(ctx, &target.id, &t)?;
            Ok(Prepared {
                files: shared,
                ip: None,
                ports: Vec::new(),
                mode,
                netns: Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
            })
        }
        RunMode::Networks(names) => {
            let networks: Vec<Network> =
                names.iter().map(|n| find(ctx, n)).collect::<Result<_>>()?;
            // Default routes and published ports go through the first network with a way
            // out, as Docker's gateway choice.
            let out = networks.iter().position(|n| !n.internal);
            if !r.ports.is_empty() && out.is_none() {
                bail!(
                    "-p: network {} is internal (no route out), so it publishes no ports",
                    networks[0].name
                );
            }
            let mut j = Joined {
                mode: Mode::Networks,
                links: networks
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Link {
                        network: n.name.clone(),
                        ifname: format!("eth{i}"),
                        ip: None,
                        ip6: None,
                        aliases: r.aliases.clone(),
                    })
                    .collect(),
                joiners: Vec::new(),
            };
            save(ctx, id, &j)?;
            let mut first = None;
            let mut ports = Vec::new();
            for (i, net) in networks.iter().enumerate() {
                let req = netsetup::Request {
                    id: id.into(),
                    hostname: Some(hostname.into()),
                    ports: if Some(i) == out {
                        r.ports.clone()
                    } else {
                        Vec::new()
                    },
                    dns: r.dns.clone(),
                    files_dir: (i == 0).then(|| dir.to_path_buf()),
                    ifname: Some(j.links[i].ifname.clone()),
                    names: dns_names(name, short, &r.aliases),
                    extra_hosts: extra_hosts(r, IpAddr::V4(net.gateway)),
                    no_default_route: Some(i) != out,
                };
                let a = netsetup::allocate(net, &req)
                    .with_context(|| format!("network {}", nets::shown(&net.name)))?;
                j.links[i].ip = Some(a.ip);
                j.links[i].ip6 = a.ip6;
                if Some(i) == out {
                    ports = a.ports.clone();
                }
                if i == 0 {
                    first = Some(a);
                }
                save(ctx, id, &j)?;
            }
            let first = first.expect("at least one network");
            // Several networks with names: every one's resolver in resolv.conf.
            let resolvers = resolvers_of(&networks);
            if resolvers.len() > 1 || (!resolvers.is_empty() && !networks[0].dns) {
                if let Some(path) = &first.resolv_conf {
                    write_resolv(path, &resolvers)?;
                }
            }
            Ok(Prepared {
                files: files(dir),
                ip: Some(first.ip),
                ports,
                mode: Mode::Networks,
                netns: None,
            })
        }
    }
}

/// The gateways (resolvers) of the networks with names, those with a way out first: an
/// internal network's resolver forwards nothing, and a stub resolver does not ask the next
/// nameserver after a "no such name" (each resolver answers the names of all the asker's
/// networks, so any one will do for those).
fn resolvers_of(networks: &[Network]) -> Vec<IpAddr> {
    let mut v: Vec<&Network> = networks.iter().filter(|n| n.dns).collect();
    v.sort_by_key(|n| n.internal);
    v.iter()
        .map(|n| IpAddr::V4(n.gateway))
        .take(3) // resolv(5): at most three nameservers
        .collect()
}

/// Points a container's resolv.conf at `resolvers` (the host's search domains kept).
fn write_resolv(path: &Path, resolvers: &[IpAddr]) -> Result<()> {
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let r = netsetup::resolver_resolv(&host, resolvers);
    netsetup::rewrite_resolv(path, &r).with_context(|| format!("{}", path.display()))
}

/// Adds what the networks mean to the container's spec: the files, and for `host` no network
/// namespace, for `container:NAME` that container's.
pub fn apply_spec(p: &Prepared, config: &mut serde_json::Value) -> Result<()> {
    let mounts = config["mounts"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("spec without mounts"))?;
    for (src, dest) in &p.files {
        mounts.push(serde_json::json!({
            "destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]
        }));
    }
    let namespaces = config["linux"]["namespaces"]
        .as_array_mut()
        .ok_or_else(|| anyhow!("spec without namespaces"))?;
    match &p.mode {
        Mode::Host => namespaces.retain(|n| n["type"] != "network"),
        Mode::Container { .. } => {
            let path = p.netns.as_ref().expect("set for container mode");
            for n in namespaces.iter_mut().filter(|n| n["type"] == "network") {
                n["path"] = serde_json::json!(path);
            }
        }
        _ => {}
    }
    Ok(())
}

/// A running container's record and init PID.
fn running(ctx: &Ctx, key: &str) -> Result<(Record, i32)> {
    let r = Containers::new(&ctx.data_root).find(key)?;
    let state = Runtime::new(&ctx.root)
        .load(&r.id)
        .ok()
        .filter(|s| s.alive())
        .ok_or_else(|| anyhow!("container {} is not running", r.name))?;
    Ok((r, state.oci.pid))
}

/// After the container's init exists (PID `pid`): connects its networks.
pub fn connect(ctx: &Ctx, id: &str, pid: i32) -> Result<()> {
    let netns = PathBuf::from(format!("/proc/{pid}/ns/net"));
    let Some(j) = load(ctx, id) else {
        return Ok(());
    };
    match j.mode {
        Mode::None => netsetup::loopback_up(&netns)?,
        Mode::Host | Mode::Container { .. } => {}
        Mode::Networks => {
            for l in &j.links {
                let net = find(ctx, &l.network)?;
                netsetup::connect(&net, id, &netns)
                    .with_context(|| format!("network {}", nets::shown(&l.network)))?;
            }
        }
    }
    Ok(())
}

/// Whether a container that joined `j`'s network namespace (`--network container:ID`) still
/// runs.
fn joined_by_others(ctx: &Ctx, j: &Joined) -> bool {
    let rt = Runtime::new(&ctx.root);
    j.joiners
        .iter()
        .any(|o| rt.load(o).is_ok_and(|s| s.alive()))
}

/// Releases everything the container's networks hold (idempotent).
pub fn release(ctx: &Ctx, id: &str) {
    let j = load(ctx, id).unwrap_or_else(|| Joined {
        mode: Mode::Networks,
        links: vec![Link {
            network: nets::DEFAULT.into(),
            ifname: "eth0".into(),
            ip: None,
            ip6: None,
            aliases: Vec::new(),
        }],
        joiners: Vec::new(),
    });
    if j.mode != Mode::Networks {
        return;
    }
    let shared = joined_by_others(ctx, &j);
    for l in j.links.iter().rev() {
        let Ok(net) = find(ctx, &l.network) else {
            continue;
        };
        let r = if shared {
            netsetup::detach_shared(&net, id)
        } else {
            netsetup::detach(&net, id)
        };
        if let Err(e) = r {
            tracing::warn!("container {id}: network {}: {e}", l.network);
        }
    }
}

/// The PORTS column of `ps`: `0.0.0.0:8080->80/tcp`, `127.0.0.1:8080->80/tcp`, and the IPv6
/// twin `[::]:8080->80/tcp` for a container with IPv6.
pub fn ports_column(ctx: &Ctx, r: &Record) -> String {
    port_lines(ctx, r)
        .into_iter()
        .map(|(m, host)| format!("{host}->{}/{}", m.container_port, m.protocol))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Each published port with the host address:port it is reached at.
fn port_lines(ctx: &Ctx, r: &Record) -> Vec<(PortMapping, String)> {
    let v6 = load(ctx, &r.id).is_some_and(|j| j.links.iter().any(|l| l.ip6.is_some()));
    let mut v = Vec::new();
    for m in &r.ports {
        match m.host_ip {
            Some(ip) => v.push((
                *m,
                format!("{}:{}", netsetup::addr_for_port(&ip), m.host_port),
            )),
            None => {
                v.push((*m, format!("0.0.0.0:{}", m.host_port)));
                if v6 {
                    v.push((*m, format!("[::]:{}", m.host_port)));
                }
            }
        }
    }
    v
}

/// `minc port NAME [PORT[/PROTO]]`: where the container's ports are published.
pub fn port(ctx: &Ctx, key: &str, which: Option<&str>) -> Result<()> {
    let r = Containers::new(&ctx.data_root).find(key)?;
    let want = match which {
        Some(w) => {
            let (p, proto) = w.split_once('/').unwrap_or((w, "tcp"));
            let p: u16 = p
                .parse()
                .map_err(|_| anyhow!("port {w}: expected PORT[/tcp|/udp]"))?;
            Some((p, proto.parse::<Protocol>()?))
        }
        None => None,
    };
    let mut any = false;
    for (m, host) in port_lines(ctx, &r) {
        if want.is_some_and(|(p, proto)| p != m.container_port || proto != m.protocol) {
            continue;
        }
        any = true;
        if want.is_some() {
            println!("{host}");
        } else {
            println!("{}/{} -> {host}", m.container_port, m.protocol);
        }
    }
    if let (Some(w), false) = (which, any) {
        bail!("no public port {w} published for container {}", r.name);
    }
    Ok(())
}

/// The `Network` part of `minc inspect`.
pub fn inspect_json(ctx: &Ctx, r: &Record) -> serde_json::Value {
    let j = load(ctx, &r.id);
    let mode = match j.as_ref().map(|j| &j.mode) {
        Some(Mode::None) => "none".to_string(),
        Some(Mode::Host) => "host".into(),
        Some(Mode::Container { id }) => format!("container:{id}"),
        _ => "bridge".into(),
    };
    let networks: serde_json::Map<String, serde_json::Value> = j
        .iter()
        .flat_map(|j| &j.links)
        .map(|l| {
            (
                nets::shown(&l.network).to_string(),
                serde_json::json!({
                    "Interface": l.ifname, "IPAddress": l.ip, "GlobalIPv6Address": l.ip6,
                    "Aliases": l.aliases,
                }),
            )
        })
        .collect();
    serde_json::json!({
        "Mode": mode,
        "IPAddress": r.ip,
        "Ports": r.ports,
        "Networks": networks,
    })
}

/// `minc network ...`.
pub fn dispatch(ctx: &Ctx, c: &NetworkCommand) -> Result<()> {
    match c {
        NetworkCommand::Create(a) => create(ctx, a),
        NetworkCommand::Ls => ls(ctx),
        NetworkCommand::Inspect { names } => inspect(ctx, names),
        NetworkCommand::Rm { names } => {
            for n in names {
                nets::remove(&net_dir(ctx), n).with_context(|| format!("network rm {n}"))?;
                println!("{n}");
            }
            Ok(())
        }
        NetworkCommand::Prune { .. } => {
            let gone = nets::prune(&net_dir(ctx))?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
            Ok(())
        }
        NetworkCommand::Connect {
            aliases,
            network,
            container,
        } => connect_running(ctx, network, container, aliases)
            .with_context(|| format!("network connect {network} {container}")),
        NetworkCommand::Disconnect {
            network, container, ..
        } => disconnect(ctx, network, container)
            .with_context(|| format!("network disconnect {network} {container}")),
    }
}

fn create(ctx: &Ctx, a: &CreateArgs) -> Result<()> {
    let mut o = Options {
        ipv6: a.ipv6,
        internal: a.internal,
        ..Default::default()
    };
    for s in &a.subnet {
        match s.parse::<netsetup::ipnet::IpNet>() {
            Ok(netsetup::ipnet::IpNet::V4(n)) if o.subnet.is_none() => o.subnet = Some(n),
            Ok(netsetup::ipnet::IpNet::V6(n)) if o.subnet6.is_none() => o.subnet6 = Some(n),
            Ok(_) => bail!("--subnet {s}: one subnet per family"),
            Err(_) => bail!("--subnet {s}: not a subnet in CIDR form (e.g. 10.90.0.0/16)"),
        }
    }
    if let (Some(s6), false) = (o.subnet6, a.ipv6) {
        bail!("--subnet {s6}: an IPv6 subnet needs --ipv6");
    }
    for g in &a.gateway {
        match g.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) if o.gateway.is_none() => o.gateway = Some(ip),
            Ok(IpAddr::V6(ip)) if o.gateway6.is_none() => o.gateway6 = Some(ip),
            Ok(_) => bail!("--gateway {g}: one gateway per family"),
            Err(_) => bail!("--gateway {g}: not an IP address"),
        }
    }
    for kv in &a.opt {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow!("--opt {kv}: expected KEY=VALUE"))?;
        match k {
            "mtu" | "com.docker.network.driver.mtu" => {
                o.mtu = Some(v.parse().map_err(|_| anyhow!("--opt {kv}: not a number"))?)
            }
            _ => bail!("--opt {k}: unknown option (mtu is the one minc knows)"),
        }
    }
    let d = nets::create(&net_dir(ctx), &a.name, &o)
        .with_context(|| format!("network create {}", a.name))?;
    println!("{}", d.id);
    Ok(())
}

fn ls(ctx: &Ctx) -> Result<()> {
    // The default network is defined on first use; list it even before.
    nets::default(&net_dir(ctx))?;
    let mut rows = Vec::new();
    for d in nets::list(&net_dir(ctx))? {
        let n = &d.network;
        let subnets = [Some(n.subnet.to_string()), n.subnet6.map(|s| s.to_string())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            d.id[..12].to_string(),
            nets::shown(&n.name).to_string(),
            "bridge".into(),
            n.bridge.clone(),
            subnets,
            if n.internal { "internal" } else { "" }.into(),
        ]);
    }
    for (name, driver) in [("host", "host"), ("none", "null")] {
        rows.push(vec![
            "-".into(),
            name.into(),
            driver.into(),
            "-".into(),
            "-".into(),
            String::new(),
        ]);
    }
    print!(
        "{}",
        format::table(
            &["NETWORK ID", "NAME", "DRIVER", "BRIDGE", "SUBNET", ""],
            &rows
        )
    );
    Ok(())
}

fn inspect(ctx: &Ctx, names: &[String]) -> Result<()> {
    let mut out = Vec::new();
    for name in names {
        let key = if name == "bridge" {
            nets::DEFAULT
        } else {
            name
        };
        if key == nets::DEFAULT {
            nets::default(&net_dir(ctx))?;
        }
        let d =
            nets::load(&net_dir(ctx), key)?.ok_or_else(|| anyhow!("network {name} not found"))?;
        let n = &d.network;
        let names: std::collections::BTreeMap<String, String> = Containers::new(&ctx.data_root)
            .all()?
            .into_iter()
            .map(|r| (r.id, r.name))
            .collect();
        let containers: serde_json::Map<String, serde_json::Value> = netsetup::list(n)?
            .into_iter()
            .map(|e| {
                (
                    e.id.clone(),
                    serde_json::json!({
                        "Name": names.get(&e.id),
                        "Interface": e.ifname,
                        "IPv4Address": format!("{}/{}", e.ip, n.subnet.prefix_len()),
                        "IPv6Address": e.ip6.map(|a| format!("{a}/{}", n.subnet6.map(|s| s.prefix_len()).unwrap_or(64))),
                        "Names": e.names,
                        "Connected": e.connected && !e.stale,
                    }),
                )
            })
            .collect();
        let mut ipam = vec![serde_json::json!({"Subnet": n.subnet, "Gateway": n.gateway})];
        if let (Some(s6), Some(g6)) = (n.subnet6, n.gateway6) {
            ipam.push(serde_json::json!({"Subnet": s6, "Gateway": g6}));
        }
        out.push(serde_json::json!({
            "Name": nets::shown(&n.name),
            "Id": d.id,
            "Created": format::rfc3339_secs(d.created),
            "Driver": "bridge",
            "EnableIPv6": n.subnet6.is_some(),
            "Internal": n.internal,
            "IPAM": {"Config": ipam},
            "Options": {"bridge": n.bridge, "mtu": n.mtu},
            "Resolver": n.dns.then(|| netsetup::dns::listen_addr(n).to_string()),
            "Containers": containers,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `network connect`: a new interface in a running container.
fn connect_running(ctx: &Ctx, network: &str, key: &str, aliases: &[String]) -> Result<()> {
    let (r, pid) = running(ctx, key)?;
    let mut j = load(ctx, &r.id).unwrap_or_default();
    match &j.mode {
        Mode::Networks => {}
        Mode::None => bail!("container {} has no network (--network none)", r.name),
        Mode::Host => bail!("container {} is on the host's network", r.name),
        Mode::Container { .. } => {
            bail!("container {} shares another container's network", r.name)
        }
    }
    let net = find(ctx, network)?;
    if j.links.iter().any(|l| l.network == net.name) {
        bail!("container {} is already on network {network}", r.name);
    }
    if !aliases.is_empty() && !net.dns {
        bail!("--alias works on user-defined networks only");
    }
    let ifname = (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !j.links.iter().any(|l| l.ifname == *n))
        .expect("a free name");
    // A default route if the container has none yet (all its networks were internal).
    let routed = j
        .links
        .iter()
        .filter_map(|l| find(ctx, &l.network).ok())
        .any(|n| !n.internal);
    let short = &r.id[..12];
    let req = netsetup::Request {
        id: r.id.clone(),
        ifname: Some(ifname.clone()),
        names: dns_names(&r.name, short, aliases),
        no_default_route: routed || net.internal,
        ..Default::default()
    };
    j.links.push(Link {
        network: net.name.clone(),
        ifname,
        ip: None,
        ip6: None,
        aliases: aliases.to_vec(),
    });
    save(ctx, &r.id, &j)?;
    let done = netsetup::allocate(&net, &req).and_then(|a| {
        let last = j.links.last_mut().expect("just pushed");
        last.ip = Some(a.ip);
        last.ip6 = a.ip6;
        netsetup::connect(&net, &r.id, &PathBuf::from(format!("/proc/{pid}/ns/net")))
    });
    if let Err(e) = done {
        let _ = netsetup::detach(&net, &r.id);
        j.links.pop();
        save(ctx, &r.id, &j)?;
        return Err(e.into());
    }
    save(ctx, &r.id, &j)?;
    refresh_resolv(ctx, &r.id, &j)
}

/// `network disconnect`.
fn disconnect(ctx: &Ctx, network: &str, key: &str) -> Result<()> {
    let r = Containers::new(&ctx.data_root).find(key)?;
    let net = find(ctx, network)?;
    let mut j = load(ctx, &r.id).unwrap_or_default();
    let Some(i) = j.links.iter().position(|l| l.network == net.name) else {
        bail!("container {} is not on network {network}", r.name);
    };
    netsetup::detach(&net, &r.id)?;
    j.links.remove(i);
    save(ctx, &r.id, &j)?;
    refresh_resolv(ctx, &r.id, &j)
}

/// After a connect or disconnect: resolv.conf names the resolvers of the networks the
/// container is on now (the host's nameservers when none has one), rewritten in place.
fn refresh_resolv(ctx: &Ctx, id: &str, j: &Joined) -> Result<()> {
    let path = Containers::new(&ctx.data_root).path(id).join("resolv.conf");
    if !path.exists() {
        return Ok(());
    }
    let networks: Vec<Network> = j
        .links
        .iter()
        .filter_map(|l| find(ctx, &l.network).ok())
        .collect();
    let resolvers = resolvers_of(&networks);
    if !resolvers.is_empty() {
        return write_resolv(&path, &resolvers);
    }
    let host = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let up = fs::read_to_string("/run/systemd/resolve/resolv.conf").ok();
    let fallback = nets::base(&net_dir(ctx)).fallback_dns;
    let res = netsetup::container_resolv(&host, up.as_deref(), &[], &fallback);
    netsetup::rewrite_resolv(&path, &res).with_context(|| format!("{}", path.display()))
}
