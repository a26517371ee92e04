//! The real [`System`]: performs each [`Op`] against the kernel, with no program executed.
//!
//! Links, addresses and routes go over rtnetlink (rtnetlink(7); messages from the
//! netlink-packet-route crate), nftables batches over nf_tables netlink ([`crate::nftnl`]),
//! sysctls through /proc/sys (sysctl(8) does the same), the namespace's name is a bind mount
//! (mount(2), as `ip netns attach` does). Work inside a container's namespace uses a netlink
//! socket opened there once, on a scoped thread (`sysops::netns::run_in`): sockets keep the
//! namespace they were born in, so no thread of the caller ever moves.

use crate::error::io_err;
use crate::netlink::{link_index, link_mtu, Netlink, Request, Tolerate};
use crate::nft::Family;
use crate::nftnl::Nftnl;
use crate::ops::{LinkInfo, Ns, Op, System};
use crate::{nft, Error, Protocol};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo as NlLinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The kernel, reached over netlink sockets opened on first use and kept for the call.
#[derive(Default)]
pub struct Kernel {
    host: Option<Netlink>,
    inside: HashMap<PathBuf, Netlink>,
    nft: Option<Nftnl>,
}

fn nl_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Netlink { what, source }
}

fn link_named(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.into()));
    m
}

fn up(mut m: LinkMessage) -> LinkMessage {
    m.header.flags |= LinkFlags::Up;
    m.header.change_mask |= LinkFlags::Up;
    m
}

fn info(l: &LinkMessage) -> LinkInfo {
    LinkInfo {
        index: link_index(l),
        mtu: link_mtu(l),
        up: l.header.flags.contains(LinkFlags::Up),
        mac: l.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(b) if b.len() == 6 => Some(
                b.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            _ => None,
        }),
        alias: l.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfAlias(s) => Some(s.clone()),
            _ => None,
        }),
    }
}

impl Kernel {
    pub fn new() -> Self {
        Self::default()
    }

    /// The rtnetlink socket of the host, or of the namespace `ns` (opened there once).
    fn rtnl(&mut self, ns: Option<&Ns>) -> Result<&mut Netlink, Error> {
        match ns {
            None => {
                if self.host.is_none() {
                    self.host = Some(Netlink::open().map_err(nl_err("socket"))?);
                }
                Ok(self.host.as_mut().expect("just set"))
            }
            Some(Ns(path)) => {
                if !self.inside.contains_key(path) {
                    let f = crate::netns::open(path)?;
                    let nl = sysops::netns::run_in(f.as_fd(), Netlink::open)
                        .and_then(|r| r)
                        .map_err(|source| Error::Netns {
                            path: path.clone(),
                            source,
                        })?;
                    self.inside.insert(path.clone(), nl);
                }
                Ok(self.inside.get_mut(path).expect("just inserted"))
            }
        }
    }

    fn nftnl(&mut self) -> Result<&mut Nftnl, Error> {
        if self.nft.is_none() {
            let s = Nftnl::open().map_err(|e| Error::Nft(format!("netlink socket: {e}")))?;
            self.nft = Some(s);
        }
        Ok(self.nft.as_mut().expect("just set"))
    }

    fn index_of(&mut self, ns: Option<&Ns>, name: &str) -> Result<u32, Error> {
        let where_ = ns
            .map(|n| format!(" in {}", n.0.display()))
            .unwrap_or_default();
        self.rtnl(ns)?
            .link_by_name(name)?
            .map(|l| link_index(&l))
            .ok_or_else(|| Error::Netlink {
                what: format!("link {name}{where_}"),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })
    }

    fn one(&mut self, op: &Op) -> Result<(), Error> {
        match op {
            Op::BridgeAdd { name, mtu } => {
                let mut m = link_named(name);
                if let Some(mtu) = mtu {
                    m.attributes.push(LinkAttribute::Mtu(*mtu));
                }
                m.attributes
                    .push(LinkAttribute::LinkInfo(vec![NlLinkInfo::Kind(
                        InfoKind::Bridge,
                    )]));
                // Another attach may create it at the same moment: that is fine.
                self.rtnl(None)?.batch(vec![Request::create(
                    RouteNetlinkMessage::NewLink(m),
                    Tolerate::Exists,
                    format!("create bridge {name}"),
                )])?;
            }
            Op::LinkAlias { name, alias } => {
                let mut m = link_named(name);
                m.attributes.push(LinkAttribute::IfAlias(alias.clone()));
                self.rtnl(None)?.batch(vec![Request::change(
                    RouteNetlinkMessage::SetLink(m),
                    Tolerate::Nothing,
                    format!("alias of {name}"),
                )])?;
            }
            Op::AddrAdd {
                ns,
                dev,
                addr,
                prefix_len,
                broadcast,
                replace,
                nodad,
            } => {
                let idx = self.index_of(ns.as_ref(), dev)?;
                let mut a = AddressMessage::default();
                a.header.family = match addr {
                    IpAddr::V4(_) => AddressFamily::Inet,
                    IpAddr::V6(_) => AddressFamily::Inet6,
                };
                a.header.prefix_len = *prefix_len;
                a.header.index = idx;
                if *nodad {
                    a.header.flags |= AddressHeaderFlags::Nodad;
                }
                a.attributes.push(AddressAttribute::Local(*addr));
                a.attributes.push(AddressAttribute::Address(*addr));
                if let Some(b) = broadcast {
                    a.attributes.push(AddressAttribute::Broadcast(*b));
                }
                let what = format!("address {addr}/{prefix_len} on {dev}");
                let mut req =
                    Request::create(RouteNetlinkMessage::NewAddress(a), Tolerate::Nothing, what);
                if *replace {
                    req.flags =
                        netlink_packet_core::NLM_F_CREATE | netlink_packet_core::NLM_F_REPLACE;
                }
                self.rtnl(ns.as_ref())?.batch(vec![req])?;
            }
            Op::LinkUp { ns, dev } => {
                self.rtnl(ns.as_ref())?.batch(vec![Request::change(
                    RouteNetlinkMessage::SetLink(up(link_named(dev))),
                    Tolerate::Nothing,
                    format!("set {dev} up"),
                )])?;
            }
            Op::VethAdd {
                name,
                mtu,
                master,
                peer,
                peer_ns,
            } => {
                let master_idx = self.index_of(None, master)?;
                let ns_file = crate::netns::open(&peer_ns.0)?;
                let mut p = link_named(peer);
                p.attributes
                    .push(LinkAttribute::NetNsFd(ns_file.as_raw_fd()));
                let mut m = up(link_named(name));
                if let Some(mtu) = mtu {
                    m.attributes.push(LinkAttribute::Mtu(*mtu));
                    p.attributes.push(LinkAttribute::Mtu(*mtu));
                }
                m.attributes.push(LinkAttribute::Controller(master_idx));
                m.attributes.push(LinkAttribute::LinkInfo(vec![
                    NlLinkInfo::Kind(InfoKind::Veth),
                    NlLinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
                ]));
                self.rtnl(None)?.batch(vec![Request::create(
                    RouteNetlinkMessage::NewLink(m),
                    Tolerate::Nothing,
                    format!(
                        "create veth {name} (peer {peer} in {})",
                        peer_ns.0.display()
                    ),
                )])?;
            }
            Op::Hairpin { dev } => {
                // Port options go through RTM_NEWLINK on the existing link (RTM_SETLINK
                // ignores link info), as `ip link set DEV type bridge_slave` does.
                let mut m = link_named(dev);
                m.attributes.push(LinkAttribute::LinkInfo(vec![
                    NlLinkInfo::PortKind(InfoPortKind::Bridge),
                    NlLinkInfo::PortData(InfoPortData::BridgePort(vec![
                        InfoBridgePort::HairpinMode(true),
                    ])),
                ]));
                self.rtnl(None)?.batch(vec![Request::change(
                    RouteNetlinkMessage::NewLink(m),
                    Tolerate::Nothing,
                    format!("hairpin on {dev}"),
                )])?;
            }
            Op::DefaultRoute { ns, via, dev } => {
                let idx = self.index_of(Some(ns), dev)?;
                let mut r = RouteMessage::default();
                r.header = RouteHeader {
                    address_family: match via {
                        IpAddr::V4(_) => AddressFamily::Inet,
                        IpAddr::V6(_) => AddressFamily::Inet6,
                    },
                    table: RouteHeader::RT_TABLE_MAIN,
                    // What `ip route add` sends by default.
                    protocol: RouteProtocol::Boot,
                    scope: RouteScope::Universe,
                    kind: RouteType::Unicast,
                    ..Default::default()
                };
                r.attributes.push(RouteAttribute::Gateway(match via {
                    IpAddr::V4(a) => RouteAddress::Inet(*a),
                    IpAddr::V6(a) => RouteAddress::Inet6(*a),
                }));
                r.attributes.push(RouteAttribute::Oif(idx));
                self.rtnl(Some(ns))?.batch(vec![Request::create(
                    RouteNetlinkMessage::NewRoute(r),
                    Tolerate::Nothing,
                    format!("default route via {via} in {}", ns.0.display()),
                )])?;
            }
            Op::LinkDel { name } => {
                self.rtnl(None)?.batch(vec![Request::change(
                    RouteNetlinkMessage::DelLink(link_named(name)),
                    Tolerate::Missing,
                    format!("delete link {name}"),
                )])?;
            }
            Op::LinkNomaster { name } => {
                let mut m = link_named(name);
                m.attributes.push(LinkAttribute::Controller(0));
                self.rtnl(None)?.batch(vec![Request::change(
                    RouteNetlinkMessage::SetLink(m),
                    Tolerate::Missing,
                    format!("take {name} off its bridge"),
                )])?;
            }
            Op::Sysctl { key, value } => {
                let p = sysctl_path(key);
                std::fs::write(&p, value).map_err(io_err("write sysctl", p))?;
            }
            Op::Nft(batch) => {
                let msgs = batch.messages();
                self.nftnl()?.transact(&msgs).map_err(|e| {
                    let what = e
                        .index
                        .and_then(|i| batch.0.get(i))
                        .map(|c| format!("{}: ", c.text()))
                        .unwrap_or_default();
                    Error::Nft(format!("{what}{}", e.source))
                })?;
            }
            Op::NetnsPublish {
                source,
                target,
                expect,
            } => crate::netns::publish(source, target, *expect)?,
            Op::NetnsUnpublish { target } => crate::netns::unpublish(target)?,
            Op::WriteFile {
                path,
                content,
                in_place: false,
            } => sysops::fs::write_atomic(path, content.as_bytes(), 0o644)
                .map_err(io_err("write", path))?,
            Op::WriteFile {
                path,
                content,
                in_place: true,
            } => rewrite(path, content)?,
            Op::RemoveFile { path } => crate::state::remove_file(path)?,
            Op::ResolverStart {
                program,
                args,
                listen,
                pid_file,
            } => start_resolver(program, args, listen, pid_file)?,
            Op::ResolverStop {
                pid,
                start,
                pid_file,
            } => {
                crate::daemon::stop(*pid, *start)
                    .map_err(io_err("stop the resolver recorded in", pid_file))?;
                crate::state::remove_file(pid_file)?;
            }
        }
        Ok(())
    }
}

/// Truncates and rewrites an existing file of ours in place (never following a symlink).
fn rewrite(path: &Path, content: &str) -> Result<(), Error> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .map_err(io_err("rewrite", path))
}

/// Binds the resolver's sockets, starts it with them, and records its identity.
fn start_resolver(
    program: &Path,
    args: &[String],
    listen: &SocketAddr,
    pid_file: &Path,
) -> Result<(), Error> {
    let (udp, tcp) = crate::daemon::bind_pair(listen).map_err(|source| Error::Io {
        what: "bind the resolver's port",
        path: PathBuf::from(listen.to_string()),
        source,
    })?;
    let pid =
        crate::daemon::spawn(program, args, &[&udp, &tcp]).map_err(io_err("start", program))?;
    let id = crate::state::ProcId::of(pid).ok_or_else(|| Error::Io {
        what: "the resolver exited at once",
        path: program.into(),
        source: std::io::Error::from_raw_os_error(libc::ESRCH),
    })?;
    crate::state::write_atomic(
        pid_file,
        format!("{} {}\n", id.pid, id.start).as_bytes(),
        0o600,
    )
}

fn sysctl_path(key: &str) -> PathBuf {
    Path::new("/proc/sys").join(key.replace('.', "/"))
}

impl System for Kernel {
    fn perform(&mut self, steps: &[Op]) -> Result<(), Error> {
        for s in steps {
            self.one(s)?;
        }
        Ok(())
    }

    fn link(&mut self, ns: Option<&Ns>, name: &str) -> Result<Option<LinkInfo>, Error> {
        Ok(self.rtnl(ns)?.link_by_name(name)?.as_ref().map(info))
    }

    fn default_route_mtu(&mut self) -> Result<Option<u32>, Error> {
        let nl = self.rtnl(None)?;
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.destination_prefix_length = 32;
        // Any address that only the default route covers (TEST-NET-2); nothing is sent to it.
        r.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                Ipv4Addr::new(198, 51, 100, 1),
            )));
        let oif = match nl.get_one(RouteNetlinkMessage::GetRoute(r), "route get 198.51.100.1") {
            Ok(Some(RouteNetlinkMessage::NewRoute(r))) => {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                })
            }
            // No default route (ENETUNREACH): keep the kernel's default MTU.
            _ => None,
        };
        let Some(oif) = oif else { return Ok(None) };
        let mut m = LinkMessage::default();
        m.header.index = oif;
        Ok(
            match nl.get_one(RouteNetlinkMessage::GetLink(m), "default route link")? {
                Some(RouteNetlinkMessage::NewLink(l)) => link_mtu(&l),
                _ => None,
            },
        )
    }

    fn sysctl(&mut self, key: &str) -> Result<Option<String>, Error> {
        let p = sysctl_path(key);
        match std::fs::read_to_string(&p) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read sysctl", p)(e)),
        }
    }

    fn nft_chain(&mut self, family: Family, chain: &str) -> Result<Option<Option<String>>, Error> {
        let answers = self
            .nftnl()?
            .get(&nft::get_chain(family, chain), false)
            .map_err(|e| Error::Nft(format!("get chain {chain}: {e}")))?;
        Ok(answers.first().map(|a| nft::chain_comment(a)))
    }

    fn nft_elements(
        &mut self,
        family: Family,
        set: &str,
        key: Option<&nft::Value>,
    ) -> Result<nft::Elements, Error> {
        let answers = self
            .nftnl()?
            .get(&nft::get_elements(family, set, key), key.is_none())
            .map_err(|e| Error::Nft(format!("list {set}: {e}")))?;
        Ok(nft::parse_elements(&answers))
    }

    fn routes(&mut self) -> Result<Vec<ipnet::IpNet>, Error> {
        let nl = self.rtnl(None)?;
        let mut v = Vec::new();
        for fam in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut r = RouteMessage::default();
            r.header.address_family = fam;
            for m in nl.dump(RouteNetlinkMessage::GetRoute(r), "route dump")? {
                let RouteNetlinkMessage::NewRoute(r) = m else {
                    continue;
                };
                let plen = r.header.destination_prefix_length;
                let dst = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                    RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                    _ => None,
                });
                // Default routes (no destination) overlap nothing in particular.
                if let Some(Ok(n)) = dst.map(|d| ipnet::IpNet::new(d, plen)) {
                    if plen > 0 && r.header.table == RouteHeader::RT_TABLE_MAIN {
                        v.push(n);
                    }
                }
            }
        }
        Ok(v)
    }

    fn probe_port(&mut self, proto: Protocol, ip: Option<IpAddr>, port: u16) -> Option<i32> {
        let ty = match proto {
            Protocol::Tcp => libc::SOCK_STREAM,
            Protocol::Udp => libc::SOCK_DGRAM,
        };
        let addrs = match ip {
            Some(ip) => vec![ip],
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        };
        addrs.into_iter().find_map(|a| {
            crate::daemon::probe(&SocketAddr::new(a, port), ty)
                .err()
                .map(|e| e.raw_os_error().unwrap_or(libc::EIO))
        })
    }
}
