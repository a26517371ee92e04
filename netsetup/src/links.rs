//! Links, addresses and routes over rtnetlink: the bridge, the veth pair, and the container
//! side (configured from a thread that has entered the container's netns).

use crate::explain::explain;
use crate::netlink::{link_index, link_mtu, Netlink, Request, Tolerate};
use crate::{Error, Network};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

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

fn addr_msg(index: u32, ip: Ipv4Addr, len: u8) -> AddressMessage {
    let mut a = AddressMessage::default();
    a.header.family = AddressFamily::Inet;
    a.header.prefix_len = len;
    a.header.index = index;
    a.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
    a.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
    let net = ipnet::Ipv4Net::new(ip, len).expect("valid prefix");
    if len < 31 {
        a.attributes
            .push(AddressAttribute::Broadcast(net.broadcast()));
    }
    a
}

/// The MTU of the interface the host's default route uses (a route lookup, no packet sent).
pub fn default_route_mtu(nl: &mut Netlink) -> Result<Option<u32>, Error> {
    let mut r = RouteMessage::default();
    r.header.address_family = AddressFamily::Inet;
    r.header.destination_prefix_length = 32;
    // Any address that only the default route covers (TEST-NET-2); nothing is sent to it.
    r.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(
            Ipv4Addr::new(198, 51, 100, 1),
        )));
    let oif = match nl.get_one(RouteNetlinkMessage::GetRoute(r), "route get 198.51.100.1") {
        Ok(Some(RouteNetlinkMessage::NewRoute(r))) => r.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        }),
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

/// Creates the bridge if needed, gives it the gateway address and brings it up. Idempotent
/// (and repairs a bridge that lost its address or went down). Returns its ifindex.
pub fn ensure_bridge(nl: &mut Netlink, net: &Network, mtu: Option<u32>) -> Result<u32, Error> {
    let b = &net.bridge;
    let idx = match nl.link_by_name(b)? {
        Some(l) => link_index(&l),
        None => {
            explain!(
                "ip link add {b} type bridge{}",
                mtu.map(|m| format!(" mtu {m}")).unwrap_or_default()
            );
            let mut m = link_named(b);
            if let Some(mtu) = mtu {
                m.attributes.push(LinkAttribute::Mtu(mtu));
            }
            m.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Bridge,
                )]));
            nl.batch(vec![Request::create(
                RouteNetlinkMessage::NewLink(m),
                Tolerate::Exists,
                format!("create bridge {b}"),
            )])?;
            let l = nl.link_by_name(b)?.ok_or_else(|| Error::Netlink {
                what: format!("bridge {b}"),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            })?;
            link_index(&l)
        }
    };
    explain!(
        "ip addr add {}/{} dev {b}",
        net.gateway,
        net.subnet.prefix_len()
    );
    explain!("ip link set {b} up");
    let mut bridge_up = LinkMessage::default();
    bridge_up.header.index = idx;
    nl.batch(vec![
        Request::create(
            RouteNetlinkMessage::NewAddress(addr_msg(idx, net.gateway, net.subnet.prefix_len())),
            Tolerate::Exists,
            format!("address {}/{} on {b}", net.gateway, net.subnet.prefix_len()),
        ),
        Request::change(
            RouteNetlinkMessage::SetLink(up(bridge_up)),
            Tolerate::Nothing,
            format!("set {b} up"),
        ),
    ])?;
    Ok(idx)
}

/// Creates the veth pair in one request, its peer born inside the container's netns (moved
/// by fd, so a host `eth0` never clashes), the host end enslaved and up; then hairpin on.
/// The veth pair to create for one container.
#[derive(Clone, Copy)]
pub struct Veth<'a> {
    pub host: &'a str,
    pub bridge: &'a str,
    pub bridge_idx: u32,
    pub mtu: Option<u32>,
    pub ifname: &'a str,
    pub netns_name: &'a str,
}

pub fn create_veth(nl: &mut Netlink, v: &Veth<'_>, netns: BorrowedFd<'_>) -> Result<(), Error> {
    let Veth {
        host,
        bridge,
        bridge_idx,
        mtu,
        ifname,
        netns_name,
    } = *v;
    let mtu_s = mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    explain!("ip link add {host}{mtu_s} type veth peer name {ifname}{mtu_s} netns {netns_name}");
    explain!("ip link set {host} master {bridge} up");
    explain!("ip link set {host} type bridge_slave hairpin on");
    let mut peer = link_named(ifname);
    peer.attributes
        .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
    let mut m = up(link_named(host));
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
        peer.attributes.push(LinkAttribute::Mtu(mtu));
    }
    m.attributes.push(LinkAttribute::Controller(bridge_idx));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    // Port options go through RTM_NEWLINK on the existing link (RTM_SETLINK ignores linkinfo).
    let mut hp = link_named(host);
    hp.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            true,
        )])),
    ]));
    nl.batch(vec![
        Request::create(
            RouteNetlinkMessage::NewLink(m),
            Tolerate::Nothing,
            format!("create veth {host} (peer {ifname} in {netns_name})"),
        ),
        Request::change(
            RouteNetlinkMessage::NewLink(hp),
            Tolerate::Nothing,
            format!("hairpin on {host}"),
        ),
    ])?;
    Ok(())
}

/// Deletes a link by name (its veth peer goes with it); a missing link is fine.
pub fn delete_link(nl: &mut Netlink, name: &str) -> Result<(), Error> {
    explain!("ip link del {name}");
    nl.batch(vec![Request::change(
        RouteNetlinkMessage::DelLink(link_named(name)),
        Tolerate::Missing,
        format!("delete link {name}"),
    )])?;
    Ok(())
}

pub fn link_exists(nl: &mut Netlink, name: &str) -> Result<bool, Error> {
    Ok(nl.link_by_name(name)?.is_some())
}

/// Inside a netns (the caller's thread must have entered it): brings `lo` up. For
/// containers without a network (`--network none`), which still want 127.0.0.1.
pub fn loopback_up(netns_name: &str) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(|e| Error::Netlink {
        what: format!("socket in {netns_name}"),
        source: e,
    })?;
    explain!("ip -n {netns_name} link set lo up");
    let mut lo = LinkMessage::default();
    lo.header.index = 1; // lo is always ifindex 1 in a netns
    nl.batch(vec![Request::change(
        RouteNetlinkMessage::SetLink(up(lo)),
        Tolerate::Nothing,
        format!("set lo up in {netns_name}"),
    )])?;
    Ok(())
}

/// Inside the container's netns (the caller's thread must have entered it): lo up, address,
/// interface up, default route. Returns the interface's MAC and MTU.
pub fn configure_container(
    netns_name: &str,
    ifname: &str,
    ip: Ipv4Addr,
    len: u8,
    gw: Ipv4Addr,
) -> Result<(Option<String>, Option<u32>), Error> {
    let mut nl = Netlink::open().map_err(|e| Error::Netlink {
        what: format!("socket in {netns_name}"),
        source: e,
    })?;
    let l = nl.link_by_name(ifname)?.ok_or_else(|| Error::Netlink {
        what: format!("{ifname} in {netns_name}"),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    let idx = link_index(&l);
    let mac = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Address(b) if b.len() == 6 => Some(
            b.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    });
    explain!("ip -n {netns_name} link set lo up");
    explain!("ip -n {netns_name} addr add {ip}/{len} dev {ifname}");
    explain!("ip -n {netns_name} link set {ifname} up");
    explain!("ip -n {netns_name} route add default via {gw} dev {ifname}");
    let mut lo = LinkMessage::default();
    lo.header.index = 1; // lo is always ifindex 1 in a netns
    let mut dev = LinkMessage::default();
    dev.header.index = idx;
    let mut route = RouteMessage::default();
    route.header = RouteHeader {
        address_family: AddressFamily::Inet,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Boot,
        scope: RouteScope::Universe,
        kind: RouteType::Unicast,
        ..Default::default()
    };
    route
        .attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
    route.attributes.push(RouteAttribute::Oif(idx));
    nl.batch(vec![
        Request::change(
            RouteNetlinkMessage::SetLink(up(lo)),
            Tolerate::Nothing,
            format!("set lo up in {netns_name}"),
        ),
        Request::create(
            RouteNetlinkMessage::NewAddress(addr_msg(idx, ip, len)),
            Tolerate::Nothing,
            format!("address {ip}/{len} on {ifname} in {netns_name}"),
        ),
        Request::change(
            RouteNetlinkMessage::SetLink(up(dev)),
            Tolerate::Nothing,
            format!("set {ifname} up in {netns_name}"),
        ),
        Request::create(
            RouteNetlinkMessage::NewRoute(route),
            Tolerate::Nothing,
            format!("default route via {gw} in {netns_name}"),
        ),
    ])?;
    Ok((mac, link_mtu(&l)))
}
