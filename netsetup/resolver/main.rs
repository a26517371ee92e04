//! minc-resolver: the DNS server of one user-defined network, on its gateway, port 53.
//!
//! It answers A, AAAA and PTR for the containers' names and aliases (records.rs) and forwards
//! every other query to the host's resolvers (the nameservers of the host's resolv.conf, read
//! again when it changes; loopback ones such as systemd-resolved's 127.0.0.53 work, since the
//! resolver runs in the host's network namespace), or to the asking container's own `--dns`
//! servers. A query from outside the network's subnets is refused, so one network's names are
//! not told to another's containers.
//!
//! One thread, one poll(2) loop over: the UDP and TCP sockets it was given (fds 3 and 4 with
//! `LISTEN_FDS=2`, as netsetup starts it) or bound itself (`--listen`, when started by hand),
//! an inotify(7) descriptor on the names directories, the upstream sockets, and at most 32 TCP
//! clients. Forwarded queries get a random id of their own and are matched back by id and
//! server address; a server that does not answer in two seconds is replaced by the next, and
//! with none left the client gets SERVFAIL. After binding, it drops every capability and sets
//! no_new_privs: it keeps nothing but its sockets and read access to its data directory.
//!
//! Built with only std into a small static binary (netsetup's build.rs) and embedded in
//! netsetup. Usage:
//!
//! minc-resolver --network NAME --listen IP:PORT --names DIR --networks DIR --resolv-conf FILE
//!               --pid-file FILE --subnet CIDR... [--fallback IP]... [--no-forward]

mod message;
mod records;

use message::{Answer, Bad, Query};
use records::{Book, Dir, Entry};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[repr(C)]
struct PollFd {
    fd: i32,
    events: i16,
    revents: i16,
}

extern "C" {
    fn poll(fds: *mut PollFd, n: u64, timeout: i32) -> i32;
    fn inotify_init1(flags: i32) -> i32;
    fn inotify_add_watch(fd: i32, path: *const u8, mask: u32) -> i32;
    fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
    fn prctl(op: i32, a: u64, b: u64, c: u64, d: u64) -> i32;
    fn syscall(n: i64, ...) -> i64;
}

const POLLIN: i16 = 1;
const POLLOUT: i16 = 4;
const IN_NONBLOCK: i32 = 0o4000;
const IN_CLOEXEC: i32 = 0o2000000;
const IN_MODIFY: u32 = 0x2;
const IN_CLOSE_WRITE: u32 = 0x8;
const IN_MOVED_FROM: u32 = 0x40;
const IN_MOVED_TO: u32 = 0x80;
const IN_CREATE: u32 = 0x100;
const IN_DELETE: u32 = 0x200;
const IN_Q_OVERFLOW: u32 = 0x4000;
const PR_SET_NO_NEW_PRIVS: i32 = 38;
const SYS_CAPSET: i64 = 126;

/// In-flight forwarded queries, TCP clients, and how long a server gets.
const MAX_PENDING: usize = 512;
const MAX_TCP: usize = 32;
const SERVER_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_IDLE: Duration = Duration::from_secs(10);

struct Args {
    network: String,
    listen: SocketAddr,
    names: PathBuf,
    networks: PathBuf,
    resolv_conf: PathBuf,
    pid_file: Option<PathBuf>,
    subnets: Vec<(IpAddr, u8)>,
    fallback: Vec<IpAddr>,
    forward: bool,
}

fn usage(why: &str) -> ! {
    eprintln!("minc-resolver: {why}");
    std::process::exit(2)
}

fn args() -> Args {
    let mut a = Args {
        network: String::new(),
        listen: "127.0.0.1:53".parse().expect("valid"),
        names: PathBuf::new(),
        networks: PathBuf::new(),
        resolv_conf: "/etc/resolv.conf".into(),
        pid_file: None,
        subnets: Vec::new(),
        fallback: Vec::new(),
        forward: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--no-forward" {
            a.forward = false;
            continue;
        }
        let v = it.next().unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--network" => a.network = v,
            "--listen" => a.listen = v.parse().unwrap_or_else(|_| usage("--listen IP:PORT")),
            "--names" => a.names = v.into(),
            "--networks" => a.networks = v.into(),
            "--resolv-conf" => a.resolv_conf = v.into(),
            "--pid-file" => a.pid_file = Some(v.into()),
            "--subnet" => {
                let (ip, len) = v.split_once('/').unwrap_or_else(|| usage("--subnet CIDR"));
                let ip: IpAddr = ip.parse().unwrap_or_else(|_| usage("--subnet CIDR"));
                let len: u8 = len.parse().unwrap_or_else(|_| usage("--subnet CIDR"));
                a.subnets.push((ip, len));
            }
            "--fallback" => a
                .fallback
                .push(v.parse().unwrap_or_else(|_| usage("--fallback IP"))),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if a.names.as_os_str().is_empty() || a.networks.as_os_str().is_empty() {
        usage("--names and --networks are needed");
    }
    a
}

fn in_subnet(ip: &IpAddr, (net, len): &(IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
            u32::from(*a) & m == u32::from(*n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX.checked_shl(128 - u32::from(*len)).unwrap_or(0);
            u128::from(*a) & m == u128::from(*n) & m
        }
        _ => false,
    }
}

/// The sockets handed over (`LISTEN_FDS=2`: UDP as fd 3, TCP as fd 4), or bound here.
fn sockets(listen: &SocketAddr) -> (UdpSocket, TcpListener) {
    if std::env::var("LISTEN_FDS").as_deref() == Ok("2") {
        // SAFETY: the starter passes these two descriptors as the protocol says.
        let (u, t) = unsafe { (UdpSocket::from_raw_fd(3), TcpListener::from_raw_fd(4)) };
        if u.local_addr().is_ok() && t.local_addr().is_ok() {
            return (u, t);
        }
        usage("LISTEN_FDS=2 but fds 3 and 4 are not a UDP and a TCP socket");
    }
    let u = UdpSocket::bind(listen).unwrap_or_else(|e| usage(&format!("bind {listen}/udp: {e}")));
    let t =
        TcpListener::bind(listen).unwrap_or_else(|e| usage(&format!("bind {listen}/tcp: {e}")));
    (u, t)
}

/// Keeps nothing it does not need: no capabilities (a process of uid 0 still reads the
/// root-owned data directory), and no way to gain any (no_new_privs).
fn drop_privileges() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    let h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [0u32; 6]; // two __user_cap_data_struct, all empty
    // SAFETY: capset(2) and prctl(2) with valid arguments.
    unsafe {
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        syscall(SYS_CAPSET, &h as *const Header, data.as_ptr());
    }
}

fn write_pid_file(p: &Path) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let start = stat
        .rfind(')')
        .and_then(|i| stat[i + 2..].split_whitespace().nth(19))
        .unwrap_or("0");
    // A temporary name netsetup's cleanup knows (`.NAME.tmp-*`).
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("resolver.pid");
    let tmp = p.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    if std::fs::write(&tmp, format!("{} {start}\n", std::process::id())).is_ok() {
        let _ = std::fs::rename(&tmp, p);
    }
}

/// The host's nameservers and search domains, read again when resolv.conf changes (the
/// containers' resolv.conf carries the same search domains).
struct Upstreams {
    path: PathBuf,
    seen: Option<(std::time::SystemTime, u64)>,
    servers: Vec<IpAddr>,
    search: Vec<String>,
    fallback: Vec<IpAddr>,
}

impl Upstreams {
    fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        if stamp == self.seen && self.seen.is_some() {
            return;
        }
        self.seen = stamp;
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        self.servers.clear();
        for l in text.lines() {
            let mut w = l.split_whitespace();
            match w.next() {
                Some("nameserver") => {
                    let ip = w.next().and_then(|a| a.split('%').next()?.parse::<IpAddr>().ok());
                    self.servers.extend(ip.filter(|ip| !ip.is_unspecified()));
                }
                // The last search or domain line wins, as in the resolver.
                Some("search") | Some("domain") => {
                    self.search = w.map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect();
                }
                _ => {}
            }
        }
    }

    fn get(&mut self) -> Vec<IpAddr> {
        self.refresh();
        if self.servers.is_empty() {
            self.fallback.clone()
        } else {
            self.servers.clone()
        }
    }

    /// `name` without a search domain it ends with, if any: the name a stub resolver made
    /// by appending one (`web.corp.example` for `web`).
    fn unsearched(&mut self, name: &str) -> Option<String> {
        self.refresh();
        self.search.iter().find_map(|d| {
            name.strip_suffix(d.as_str())
                .and_then(|n| n.strip_suffix('.'))
                .filter(|n| !n.is_empty())
                .map(String::from)
        })
    }
}

/// Where an answer goes back to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Udp(SocketAddr),
    Tcp(usize),
}

struct Pending {
    client: Client,
    id: u16,
    query: Vec<u8>,
    servers: Vec<SocketAddr>,
    next: usize,
    deadline: Instant,
    /// The largest answer the client takes over UDP.
    limit: usize,
}

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    last: Instant,
    token: usize,
}

struct Server {
    a: Args,
    udp: UdpSocket,
    tcp: TcpListener,
    up4: Option<UdpSocket>,
    up6: Option<UdpSocket>,
    inotify: RawFd,
    book: Book,
    upstreams: Upstreams,
    pending: HashMap<u16, Pending>,
    conns: Vec<Conn>,
    next_token: usize,
    rng: u64,
}

impl Server {
    fn rand16(&mut self) -> u16 {
        // xorshift64*, seeded from the kernel: ids an off-path sender cannot guess.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 48) as u16
    }

    fn watch(inotify: RawFd, p: &Path) -> i32 {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
            return -1;
        };
        let mask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY;
        // SAFETY: a NUL-terminated path.
        unsafe { inotify_add_watch(inotify, c.as_ptr().cast(), mask) }
    }

    fn inotify_events(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reading into our buffer.
            let n = unsafe { read(self.inotify, buf.as_mut_ptr(), buf.len()) };
            if n <= 0 {
                return;
            }
            let mut off = 0;
            let n = n as usize;
            while off + 16 <= n {
                let wd = i32::from_ne_bytes(buf[off..off + 4].try_into().expect("4"));
                let mask = u32::from_ne_bytes(buf[off + 4..off + 8].try_into().expect("4"));
                let len = u32::from_ne_bytes(buf[off + 12..off + 16].try_into().expect("4"));
                if mask & IN_Q_OVERFLOW != 0 {
                    self.book.all_changed();
                } else {
                    self.book.changed(wd);
                }
                off += 16 + len as usize;
            }
        }
    }

    /// Answers `b` (from `from`) locally, or starts forwarding it. Returns an answer to send
    /// now, if any.
    fn query(&mut self, b: &[u8], from: SocketAddr, client: Client) -> Option<Vec<u8>> {
        let limit = match client {
            Client::Udp(_) => message::udp_limit(b),
            Client::Tcp(_) => 65535,
        };
        let q = match message::parse_query(b) {
            Ok(q) => q,
            Err(Bad::Drop) => return None,
            Err(Bad::Answer(code)) => return message::error_response(b, code),
        };
        let ip = from.ip();
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        if !self.a.subnets.iter().any(|s| in_subnet(&ip, s)) {
            return Some(message::response(&q, message::REFUSED, &[], limit));
        }
        let querier = self.book.querier(&ip);
        let inotify = self.inotify;
        let mut watch = |p: &Path| Self::watch(inotify, p);
        if q.qclass == message::CLASS_IN || q.qclass == message::TYPE_ANY {
            if let Some(answer) = self.local(&q, querier.as_ref(), &mut watch, limit) {
                return Some(answer);
            }
        }
        if !self.a.forward {
            return Some(message::response(&q, message::NXDOMAIN, &[], limit));
        }
        self.forward(b, &q, querier.as_ref(), client, limit)
    }

    fn local(
        &mut self,
        q: &Query,
        querier: Option<&Entry>,
        watch: &mut dyn FnMut(&Path) -> i32,
        limit: usize,
    ) -> Option<Vec<u8>> {
        if q.qtype == message::TYPE_PTR {
            let addr = message::reverse_addr(&q.name)?;
            let name = self.book.reverse(querier, &addr, watch)?;
            return Some(message::response(
                q,
                message::NOERROR,
                &[Answer::Ptr(name)],
                limit,
            ));
        }
        let mut found = self.book.lookup(querier, &q.name, watch);
        if !found.known {
            // Stub resolvers try `NAME.SEARCHDOMAIN` first (and some, such as busybox's
            // nslookup, only that): a container's name answers for it too.
            let Some(bare) = self.upstreams.unsearched(&q.name) else {
                return None;
            };
            found = self.book.lookup(querier, &bare, watch);
            if !found.known {
                return None;
            }
        }
        // A known name answers every type: with its addresses of the family asked, or none
        // (NOERROR, no records: "no such type", never "no such name").
        let answers: Vec<Answer> = found
            .ips
            .into_iter()
            .filter(|ip| match q.qtype {
                message::TYPE_A => ip.is_ipv4(),
                message::TYPE_AAAA => ip.is_ipv6(),
                message::TYPE_ANY => true,
                _ => false,
            })
            .map(Answer::Addr)
            .collect();
        Some(message::response(q, message::NOERROR, &answers, limit))
    }

    fn forward(
        &mut self,
        b: &[u8],
        q: &Query,
        querier: Option<&Entry>,
        client: Client,
        limit: usize,
    ) -> Option<Vec<u8>> {
        let servers: Vec<SocketAddr> = match querier.filter(|e| !e.upstream.is_empty()) {
            Some(e) => e.upstream.clone(),
            None => self.upstreams.get(),
        }
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
        if servers.is_empty() || self.pending.len() >= MAX_PENDING {
            return Some(message::response(q, message::SERVFAIL, &[], limit));
        }
        let mut id = self.rand16();
        while self.pending.contains_key(&id) {
            id = self.rand16();
        }
        let mut p = Pending {
            client,
            id: q.id,
            query: b.to_vec(),
            servers,
            next: 0,
            deadline: Instant::now(),
            limit,
        };
        message::set_id(&mut p.query, id);
        if self.send_next(&mut p) {
            self.pending.insert(id, p);
            None
        } else {
            Some(message::response(q, message::SERVFAIL, &[], limit))
        }
    }

    /// Sends a pending query to its next server; false when none is left.
    fn send_next(&mut self, p: &mut Pending) -> bool {
        while p.next < p.servers.len() {
            let s = p.servers[p.next];
            p.next += 1;
            let sock = if s.is_ipv4() {
                &mut self.up4
            } else {
                &mut self.up6
            };
            if sock.is_none() {
                let any: SocketAddr = if s.is_ipv4() {
                    "0.0.0.0:0".parse().expect("valid")
                } else {
                    "[::]:0".parse().expect("valid")
                };
                *sock = UdpSocket::bind(any).ok();
                if let Some(u) = sock {
                    let _ = u.set_nonblocking(true);
                }
            }
            if let Some(u) = sock {
                if u.send_to(&p.query, s).is_ok() {
                    p.deadline = Instant::now() + SERVER_TIMEOUT;
                    return true;
                }
            }
        }
        false
    }

    fn upstream_answer(&mut self, b: &mut [u8], from: SocketAddr) {
        let Some(id) = message::id(b) else { return };
        let ok = self
            .pending
            .get(&id)
            .is_some_and(|p| p.next > 0 && p.servers[p.next - 1] == from);
        if !ok || !message::is_response(b) {
            return; // not an answer we wait for (late, spoofed, or from elsewhere)
        }
        let p = self.pending.remove(&id).expect("checked");
        message::set_id(b, p.id);
        self.reply(p.client, b, p.limit);
    }

    fn reply(&mut self, client: Client, b: &[u8], limit: usize) {
        match client {
            Client::Udp(to) => {
                if b.len() > limit {
                    // Too big for this client: the header and question, TC set.
                    if let Ok(q) = message::parse_query(&reset_qr(b)) {
                        let r = message::response(&q, b[3] & 0x0f, &[], limit);
                        let mut r = r;
                        r[2] |= 0x02;
                        let _ = self.udp.send_to(&r, to);
                    }
                    return;
                }
                let _ = self.udp.send_to(b, to);
            }
            Client::Tcp(token) => {
                if let Some(c) = self.conns.iter_mut().find(|c| c.token == token) {
                    c.outbuf.extend_from_slice(&(b.len() as u16).to_be_bytes());
                    c.outbuf.extend_from_slice(b);
                }
            }
        }
    }

    fn timeouts(&mut self) {
        let now = Instant::now();
        let late: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            let mut p = self.pending.remove(&id).expect("listed");
            if self.send_next(&mut p) {
                self.pending.insert(id, p);
                continue;
            }
            let mut q = p.query.clone();
            message::set_id(&mut q, p.id);
            if let Ok(q) = message::parse_query(&q) {
                let r = message::response(&q, message::SERVFAIL, &[], p.limit);
                self.reply(p.client, &r, p.limit);
            }
        }
        self.conns
            .retain(|c| now.duration_since(c.last) < TCP_IDLE || !c.outbuf.is_empty());
    }

    fn accept(&mut self) {
        while let Ok((s, _)) = self.tcp.accept() {
            if self.conns.len() >= MAX_TCP || s.set_nonblocking(true).is_err() {
                continue; // dropped: closes it
            }
            self.next_token += 1;
            self.conns.push(Conn {
                stream: s,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                last: Instant::now(),
                token: self.next_token,
            });
        }
    }

    /// Reads what a TCP client sent; handles each whole message. False: close it.
    fn tcp_read(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.conns[i].stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    let c = &mut self.conns[i];
                    c.last = Instant::now();
                    c.inbuf.extend_from_slice(&buf[..n]);
                    if c.inbuf.len() > 2 + 65535 {
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return false,
            }
        }
        loop {
            let c = &mut self.conns[i];
            if c.inbuf.len() < 2 {
                return true;
            }
            let len = usize::from(u16::from_be_bytes([c.inbuf[0], c.inbuf[1]]));
            if c.inbuf.len() < 2 + len {
                return true;
            }
            let msg: Vec<u8> = c.inbuf.drain(..2 + len).skip(2).collect();
            let (token, from) = (c.token, c.stream.peer_addr());
            let Ok(from) = from else { return false };
            if let Some(r) = self.query(&msg, from, Client::Tcp(token)) {
                self.reply(Client::Tcp(token), &r, 65535);
            }
        }
    }

    fn tcp_write(&mut self, i: usize) -> bool {
        let c = &mut self.conns[i];
        while !c.outbuf.is_empty() {
            match c.stream.write(&c.outbuf) {
                Ok(0) => return false,
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        true
    }

    fn run(&mut self) {
        let mut buf = vec![0u8; 4096];
        loop {
            let mut fds = vec![
                PollFd {
                    fd: self.udp.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                },
                PollFd {
                    fd: self.tcp.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                },
                PollFd {
                    fd: self.inotify,
                    events: POLLIN,
                    revents: 0,
                },
            ];
            for u in [&self.up4, &self.up6].into_iter().flatten() {
                fds.push(PollFd {
                    fd: u.as_raw_fd(),
                    events: POLLIN,
                    revents: 0,
                });
            }
            let first_conn = fds.len();
            for c in &self.conns {
                let out = if c.outbuf.is_empty() { 0 } else { POLLOUT };
                fds.push(PollFd {
                    fd: c.stream.as_raw_fd(),
                    events: POLLIN | out,
                    revents: 0,
                });
            }
            let next = self
                .pending
                .values()
                .map(|p| p.deadline)
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()).as_millis() as i32 + 1);
            let timeout = match (next, self.conns.is_empty()) {
                (Some(t), _) => t.min(TCP_IDLE.as_millis() as i32),
                (None, false) => TCP_IDLE.as_millis() as i32,
                (None, true) => -1,
            };
            // SAFETY: poll on our descriptors.
            let n = unsafe { poll(fds.as_mut_ptr(), fds.len() as u64, timeout) };
            if n < 0 {
                continue; // EINTR
            }
            if fds[2].revents != 0 {
                self.inotify_events();
            }
            if fds[0].revents != 0 {
                while let Ok((len, from)) = self.udp.recv_from(&mut buf) {
                    let msg = buf[..len].to_vec();
                    if let Some(r) = self.query(&msg, from, Client::Udp(from)) {
                        let _ = self.udp.send_to(&r, from);
                    }
                }
            }
            for f in &fds[3..first_conn] {
                if f.revents == 0 {
                    continue;
                }
                let v4 = self.up4.as_ref().is_some_and(|u| u.as_raw_fd() == f.fd);
                loop {
                    let sock = if v4 { &self.up4 } else { &self.up6 };
                    let Some(Ok((len, from))) = sock.as_ref().map(|u| u.recv_from(&mut buf)) else {
                        break;
                    };
                    let mut msg = buf[..len].to_vec();
                    self.upstream_answer(&mut msg, from);
                }
            }
            // TCP clients, from the last (removal keeps the indexes of those before).
            let mut closed = Vec::new();
            for (j, f) in fds[first_conn..].iter().enumerate() {
                if f.revents == 0 {
                    continue;
                }
                let keep = (f.revents & POLLIN == 0 || self.tcp_read(j)) && self.tcp_write(j);
                if !keep || f.revents & !(POLLIN | POLLOUT) != 0 && self.conns[j].inbuf.is_empty() {
                    closed.push(j);
                }
            }
            for j in closed.into_iter().rev() {
                self.conns.remove(j);
            }
            for j in 0..self.conns.len() {
                if !self.conns[j].outbuf.is_empty() {
                    let _ = self.tcp_write(j);
                }
            }
            if fds[1].revents != 0 {
                self.accept();
            }
            self.timeouts();
        }
    }
}

/// A copy of an answer with QR cleared and no records, to read its question again.
fn reset_qr(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    if v.len() >= 12 {
        v[2] &= !0x80;
        v[6..12].copy_from_slice(&[0; 6]);
    }
    v
}

fn main() {
    let a = args();
    let (udp, tcp) = sockets(&a.listen);
    let _ = udp.set_nonblocking(true);
    let _ = tcp.set_nonblocking(true);
    drop_privileges();
    // netsetup records it too, but a netsetup killed right after starting it must not leave
    // a resolver nobody can find.
    if let Some(p) = &a.pid_file {
        write_pid_file(p);
    }
    // SAFETY: a fresh inotify descriptor.
    let inotify = unsafe { inotify_init1(IN_NONBLOCK | IN_CLOEXEC) };
    let own = Dir::new(a.names.clone(), Server::watch(inotify, &a.names));
    let mut seed = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    let seed = u64::from_ne_bytes(seed) | 1;
    let book = Book {
        own,
        networks: a.networks.clone(),
        network: a.network.clone(),
        others: Default::default(),
    };
    let upstreams = Upstreams {
        path: a.resolv_conf.clone(),
        seen: None,
        servers: Vec::new(),
        search: Vec::new(),
        fallback: a.fallback.clone(),
    };
    let mut s = Server {
        a,
        udp,
        tcp,
        up4: None,
        up6: None,
        inotify,
        book,
        upstreams,
        pending: HashMap::new(),
        conns: Vec::new(),
        next_token: 0,
        rng: seed,
    };
    s.run();
}
