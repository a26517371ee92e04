//! A tiny synchronous rtnetlink client: requests are sent as one batch (one `sendmsg`), each
//! with its own ACK, so a whole step costs one round trip and no async runtime is needed.

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};
use std::io;

/// What to do with "already exists" / "does not exist" answers for one request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Tolerate {
    Nothing,
    /// EEXIST counts as success (idempotent create).
    Exists,
    /// ENOENT/ENODEV/ESRCH/EADDRNOTAVAIL count as success (idempotent delete).
    Missing,
}

pub struct Request {
    pub msg: RouteNetlinkMessage,
    pub flags: u16,
    pub tolerate: Tolerate,
    /// Names the object in errors, e.g. `link veth1a2b3c4d`.
    pub what: String,
}

impl Request {
    pub fn create(msg: RouteNetlinkMessage, tolerate: Tolerate, what: impl Into<String>) -> Self {
        Self {
            msg,
            flags: NLM_F_CREATE | NLM_F_EXCL,
            tolerate,
            what: what.into(),
        }
    }
    pub fn change(msg: RouteNetlinkMessage, tolerate: Tolerate, what: impl Into<String>) -> Self {
        Self {
            msg,
            flags: 0,
            tolerate,
            what: what.into(),
        }
    }
}

/// A netlink operation that failed: the object and the kernel's reason.
#[derive(Debug)]
pub struct NlError {
    pub what: String,
    pub source: io::Error,
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

pub struct Netlink {
    sock: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's current network namespace.
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&netlink_sys::SocketAddr::new(0, 0))?;
        Ok(Self { sock, seq: 0 })
    }

    fn encode(&mut self, msg: RouteNetlinkMessage, flags: u16, out: &mut Vec<u8>) -> u32 {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let start = out.len();
        out.resize(start + nl.buffer_len(), 0);
        nl.serialize(&mut out[start..]);
        self.seq
    }

    /// Sends all requests in one datagram and waits for every ACK. All requests are tried
    /// (the kernel processes them in order); the first failure is returned.
    pub fn batch(&mut self, reqs: Vec<Request>) -> Result<(), NlError> {
        if reqs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let mut pending = Vec::with_capacity(reqs.len());
        for r in reqs {
            let seq = self.encode(r.msg, r.flags | NLM_F_ACK, &mut buf);
            pending.push((seq, r.tolerate, r.what));
        }
        let io_err = |e: io::Error| NlError {
            what: "netlink socket".into(),
            source: e,
        };
        self.sock.send(&buf, 0).map_err(io_err)?;
        let mut first_err: Option<NlError> = None;
        let mut remaining = pending.len();
        let mut rbuf = vec![0u8; 65536];
        while remaining > 0 {
            for msg in self.recv_messages(&mut rbuf, &io_err)? {
                let seq = msg.header.sequence_number;
                let NetlinkPayload::Error(e) = msg.payload else {
                    continue;
                };
                let Some(idx) = pending.iter().position(|p| p.0 == seq) else {
                    continue;
                };
                remaining -= 1;
                if let Some(code) = e.code {
                    let errno = -code.get();
                    let ok = match pending[idx].1 {
                        Tolerate::Exists => errno == libc::EEXIST,
                        Tolerate::Missing => matches!(
                            errno,
                            libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL
                        ),
                        Tolerate::Nothing => false,
                    };
                    if !ok && first_err.is_none() {
                        first_err = Some(NlError {
                            what: pending[idx].2.clone(),
                            source: io::Error::from_raw_os_error(errno),
                        });
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Looks a link up by name; `None` when it does not exist.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<LinkMessage>, NlError> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_one(RouteNetlinkMessage::GetLink(m), &format!("link {name}"))
            .map(|r| match r {
                Some(RouteNetlinkMessage::NewLink(l)) => Some(l),
                _ => None,
            })
    }

    /// Sends one GET request and returns its single answer (None on ENODEV/ENOENT).
    pub fn get_one(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Option<RouteNetlinkMessage>, NlError> {
        let mut buf = Vec::new();
        let seq = self.encode(msg, 0, &mut buf);
        let io_err = |e: io::Error| NlError {
            what: what.to_string(),
            source: e,
        };
        self.sock.send(&buf, 0).map_err(io_err)?;
        let mut rbuf = vec![0u8; 65536];
        loop {
            for msg in self.recv_messages(&mut rbuf, &io_err)? {
                if msg.header.sequence_number != seq {
                    continue;
                }
                return match msg.payload {
                    NetlinkPayload::InnerMessage(m) => Ok(Some(m)),
                    NetlinkPayload::Error(e) => {
                        let errno = e.code.map(|c| -c.get()).unwrap_or(0);
                        if errno == libc::ENODEV || errno == libc::ENOENT || errno == 0 {
                            Ok(None)
                        } else {
                            Err(io_err(io::Error::from_raw_os_error(errno)))
                        }
                    }
                    _ => Ok(None),
                };
            }
        }
    }

    /// Sends one dump request and returns every answer.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let mut buf = Vec::new();
        let seq = self.encode(msg, NLM_F_DUMP, &mut buf);
        let io_err = |e: io::Error| NlError {
            what: what.to_string(),
            source: e,
        };
        self.sock.send(&buf, 0).map_err(io_err)?;
        let mut rbuf = vec![0u8; 65536];
        let mut out = Vec::new();
        loop {
            for msg in self.recv_messages(&mut rbuf, &io_err)? {
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        let errno = e.code.map(|c| -c.get()).unwrap_or(0);
                        return Err(io_err(io::Error::from_raw_os_error(errno)));
                    }
                    _ => {}
                }
            }
        }
    }

    /// Receives one datagram and parses the netlink messages in it.
    fn recv_messages(
        &mut self,
        rbuf: &mut [u8],
        io_err: &dyn Fn(io::Error) -> NlError,
    ) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>, NlError> {
        let n = self.sock.recv(&mut &mut rbuf[..], 0).map_err(io_err)?;
        let mut msgs = Vec::new();
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rbuf[off..n])
                .map_err(|e| io_err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())))?;
            let len = msg.header.length as usize;
            msgs.push(msg);
            if len == 0 {
                break;
            }
            off += (len + 3) & !3;
        }
        Ok(msgs)
    }
}

pub fn link_index(l: &LinkMessage) -> u32 {
    l.header.index
}

pub fn link_mtu(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    })
}
