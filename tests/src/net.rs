//! The sandbox as a networked host, for end-to-end tests of networking: a `wan` network
//! namespace that stands in for the internet, work done from inside a network namespace,
//! raw Ethernet frames (what a container with CAP_NET_RAW can send whatever its routes say),
//! the links of a namespace, and a client for the built-in `echo-server` image.
//!
//! Network namespaces belong to threads, not processes: a thread that calls setns(2) moves
//! alone, so work "inside" a namespace runs on a thread of its own. Man pages: ip-netns(8),
//! setns(2), network_namespaces(7), packet(7), arp(7).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The sandbox host's address on the wan link (see [`setup_wan`]).
pub const HOST_WAN: &str = "203.0.113.1";
/// The wan namespace's address: the host's default gateway.
pub const WAN: &str = "203.0.113.2";
/// The sandbox host's IPv6 address on the wan link.
pub const HOST_WAN6: &str = "2001:db8::1";
/// The wan namespace's IPv6 address: the host's IPv6 default gateway.
pub const WAN6: &str = "2001:db8::2";

/// Makes the sandbox look like a host on the internet: a netns `wan` (the internet, with its
/// own loopback up) joined to the sandbox by the veth pair `wan0` (here, [`HOST_WAN`] and
/// [`HOST_WAN6`]) / `eth0` (there, [`WAN`] and [`WAN6`]), both ends up, default routes both
/// ways in IPv4 and IPv6. IPv6 addresses skip duplicate address detection, so they work at
/// once. With `mtu`, both ends of the link have it (what a container's MTU is detected from).
/// Call it inside a sandbox only.
pub fn setup_wan(mtu: Option<u32>) {
    let mtu = mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
    crate::run(
        "sh",
        &[
            "-c",
            &format!(
                "set -e; ip netns add wan; \
                 ip link add wan0{mtu} type veth peer name eth0{mtu} netns wan; \
                 ip addr add {HOST_WAN}/24 dev wan0; ip -6 addr add {HOST_WAN6}/64 dev wan0 nodad; \
                 ip link set wan0 up; \
                 ip -n wan addr add {WAN}/24 dev eth0; ip -n wan -6 addr add {WAN6}/64 dev eth0 nodad; \
                 ip -n wan link set eth0 up; ip -n wan link set lo up; \
                 ip route add default via {WAN}; ip -6 route add default via {WAN6}; \
                 ip -n wan route add default via {HOST_WAN}; ip -n wan -6 route add default via {HOST_WAN6}"
            ),
        ],
    );
}

/// The path `ip netns` gives the namespace `name`.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// `ip netns add NAME`: a new, empty network namespace (a "container"); its path.
pub fn add_netns(name: &str) -> PathBuf {
    crate::run("ip", &["netns", "add", name]);
    netns_path(name)
}

/// Runs `f` on a new thread inside the network namespace at `netns` (`None`: this one, the
/// sandbox host's). The namespace is opened here, so a wrong path fails in the caller.
pub fn spawn_in_netns<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let ns = netns
        .map(|p| std::fs::File::open(p).unwrap_or_else(|e| panic!("netns {}: {e}", p.display())));
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            use std::os::fd::AsRawFd;
            // SAFETY: setns(2) of a network namespace fd, for this thread only.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        }
        f()
    })
}

/// [`spawn_in_netns`] of the namespace at `netns`, waited for: what `f` returned (a panic in
/// `f` is the caller's).
pub fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(Some(netns), f)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The names of the links in the calling thread's network namespace (read from
/// /proc/thread-self/net/dev: no tool is needed, and unlike /sys/class/net it shows the
/// caller's namespace, not the one sysfs was mounted in).
pub fn link_names() -> Vec<String> {
    std::fs::read_to_string("/proc/thread-self/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split_once(':')?.0.trim().to_string()))
        .collect()
}

/// Waits up to `within` until no link's name contains `part`, then asserts so, naming `at`
/// and the links left. The kernel frees the veth pair of a namespace that went away
/// asynchronously, so a check right after a container's end has to allow it a moment.
pub fn assert_links_gone(part: &str, within: Duration, at: &str) {
    let deadline = Instant::now() + within;
    let left = || -> Vec<String> {
        link_names()
            .into_iter()
            .filter(|l| l.contains(part))
            .collect()
    };
    while !left().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = left();
    assert!(left.is_empty(), "{at}: links left: {left:?}");
}

/// The MAC address of `dev` in the namespace named `netns` (`None`: this one).
pub fn mac_of(netns: Option<&str>, dev: &str) -> [u8; 6] {
    let mut args = vec![];
    if let Some(n) = netns {
        args.extend(["-n", n]);
    }
    args.extend(["-j", "link", "show", dev]);
    let v: Value = serde_json::from_str(&crate::run("ip", &args)).unwrap();
    let b: Vec<u8> = v[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("{dev} has no MAC address: {v}"))
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    b.try_into().unwrap()
}

/// What [`send_frame`] puts in its Ethernet frame.
pub enum Frame {
    /// An IPv4 datagram from UDP port 40000 to `port` (no UDP checksum, as IPv4 allows).
    Udp { port: u16, payload: &'static [u8] },
    /// An ARP reply telling `dst` that `src` is at the sender's MAC address.
    ArpReply,
}

/// Sends one Ethernet frame out of `eth0` of the namespace named `netns`, straight to
/// `dst_mac`, claiming the IPv4 source `src` (whatever `eth0`'s address is). Returns once the
/// kernel took the whole frame.
pub fn send_frame(netns: &str, dst_mac: [u8; 6], src: &str, dst: &str, frame: Frame) {
    let src_mac = mac_of(Some(netns), "eth0");
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&dst_mac);
    bytes.extend_from_slice(&src_mac);
    match frame {
        Frame::ArpReply => {
            bytes.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
            bytes.extend_from_slice(&src_mac);
            bytes.extend_from_slice(&src.octets());
            bytes.extend_from_slice(&dst_mac);
            bytes.extend_from_slice(&dst.octets());
        }
        Frame::Udp { port, payload } => {
            let udp_len = 8 + payload.len();
            let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
            ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            let c = ipv4_checksum(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            bytes.extend_from_slice(&[0x08, 0x00]);
            bytes.extend_from_slice(&ip);
            bytes.extend_from_slice(&40000u16.to_be_bytes());
            bytes.extend_from_slice(&port.to_be_bytes());
            bytes.extend_from_slice(&(udp_len as u16).to_be_bytes());
            bytes.extend_from_slice(&[0, 0]);
            bytes.extend_from_slice(payload);
        }
    }
    in_netns(&netns_path(netns), move || {
        // SAFETY: a raw packet socket, used for one sendto with a valid address, then closed.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&dst_mac);
            let n = libc::sendto(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(
                n,
                bytes.len() as isize,
                "sendto: {}",
                std::io::Error::last_os_error()
            );
            libc::close(fd);
        }
    });
}

/// A UDP socket of the sandbox host that tells which datagrams reached it: the witness of a
/// frame sent with [`send_frame`].
pub struct UdpWitness(UdpSocket);

impl UdpWitness {
    /// Listens on `addr` (e.g. `127.0.0.1:9999`) in the calling thread's namespace.
    pub fn bind(addr: &str) -> UdpWitness {
        let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        UdpWitness(s)
    }

    /// Sends a UDP frame holding `payload` to this witness's address and port with
    /// [`send_frame`] (from `eth0` of the namespace named `netns`, straight to `dst_mac`,
    /// claiming the source `src`); whether it arrived.
    pub fn frame_arrives(
        &self,
        netns: &str,
        dst_mac: [u8; 6],
        src: &str,
        payload: &'static [u8],
    ) -> bool {
        let to = self.0.local_addr().unwrap();
        let udp = Frame::Udp {
            port: to.port(),
            payload,
        };
        send_frame(netns, dst_mac, src, &to.ip().to_string(), udp);
        self.received(payload)
    }

    /// Whether a datagram holding exactly `payload` arrives, reading what came until then
    /// and waiting up to 700 ms after the last datagram.
    pub fn received(&self, payload: &[u8]) -> bool {
        let mut b = [0u8; 64];
        loop {
            match self.0.recv_from(&mut b) {
                Ok((n, _)) if &b[..n] == payload => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

/// The IPv4 header checksum (RFC 791: the ones' complement of the ones' complement sum of
/// the header's 16-bit words).
fn ipv4_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `GET /echo` from the built-in `echo-server` at `addr`, over real TCP from the calling
/// thread's network namespace, with the header `X-Test: minc`: the response body's JSON. An
/// error when nothing answers within 2 s, the answer takes over 5 s, or it is not JSON.
pub fn echo_get(addr: &str) -> std::io::Result<Value> {
    let to = addr.parse().map_err(std::io::Error::other)?;
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nX-Test: minc\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| std::io::Error::other(format!("bad response {resp:?}")))?;
    serde_json::from_str(body).map_err(std::io::Error::other)
}

/// [`echo_get`], retried for up to 10 s (a detached server may still be starting); panics
/// with the last error if it never answers. Asserts the answer is the echo server's: body
/// `Echo response` and the request's `X-Test` header echoed back.
pub fn echo_ok(addr: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match echo_get(addr) {
            Ok(v) => {
                assert_eq!(v["body"], "Echo response", "{v}");
                assert_eq!(v["header"]["X-Test"], "minc", "{v}");
                return v;
            }
            Err(e) if Instant::now() > deadline => panic!("GET http://{addr}/echo: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
