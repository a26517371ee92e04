//! nf_tables over netlink, without the `nft` program.
//!
//! The nft(8) tool is a compiler: it turns `add rule inet minc ...` into netlink messages of the
//! `NETLINK_NETFILTER` family (subsystem `NFNL_SUBSYS_NFTABLES`), each a netlink header, a
//! `nfgenmsg` (address family, version, resource id) and nested attributes. Changes travel as
//! one *batch* (`NFNL_MSG_BATCH_BEGIN` ... `NFNL_MSG_BATCH_END`) that the kernel applies as a
//! single transaction: all or nothing. `nft --debug=netlink,mnl -f FILE` prints what it sends;
//! the messages built here are the same, checked by the replay test that compares a table made
//! by minc with one made by `nft -f` from minc's own `--explain` text.
//!
//! This module knows the wire format (attributes, messages, batches, acks, dumps); `nft.rs`
//! knows minc's table and how each statement compiles to expressions.
//!
//! Why not a crate: `nftables` (used before) runs the `nft` binary for every change; `rustables`
//! is GPL-3.0 (minc is Apache-2.0 and links statically); `nftnl`/`mnl` bind the C libraries
//! libnftnl and libmnl (a static C build for every target); `nf_tables` 0.1 has no lookup, fib,
//! ct, nat or masquerade expressions and no maps. minc needs about a dozen message and
//! expression kinds, so they are written here, against the kernel's `nf_tables.h`.
//!
//! Read: nft(8), netlink(7), include/uapi/linux/netfilter/nf_tables.h and nfnetlink.h.

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::io;

pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_BRIDGE: u8 = 7;
pub const NFPROTO_IPV6: u8 = 10;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// nf_tables message types (`enum nf_tables_msg_types`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum MsgType {
    NewTable = 0,
    NewChain = 3,
    GetChain = 4,
    DelChain = 5,
    NewRule = 6,
    DelRule = 8,
    NewSet = 9,
    NewSetElem = 12,
    GetSetElem = 13,
    DelSetElem = 14,
}

/// Netlink attributes being built: type-length-value, each padded to 4 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs(Vec<u8>);

impl Attrs {
    pub fn new() -> Self {
        Attrs(Vec::new())
    }

    pub fn bytes(&mut self, ty: u16, v: &[u8]) -> &mut Self {
        let len = 4 + v.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(v);
        self.pad();
        self
    }

    /// A NUL-terminated string.
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.bytes(ty, &v)
    }

    /// nf_tables' integers are big endian (`NLA_BE32`).
    pub fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.bytes(ty, &v.to_be_bytes())
    }

    pub fn nested(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::new();
        f(&mut inner);
        self.bytes(ty | NLA_F_NESTED, &inner.0)
    }

    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

/// Iterates over the attributes in `buf` as (type without flags, value).
pub fn parse_attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let len = u16::from_ne_bytes([buf[off], buf[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 2], buf[off + 3]]) & NLA_TYPE_MASK;
        if len < 4 || off + len > buf.len() {
            return None;
        }
        let v = &buf[off + 4..off + len];
        off += (len + 3) & !3;
        Some((ty, v))
    })
}

/// The value of the first attribute of type `ty`.
pub fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    parse_attrs(buf).find(|(t, _)| *t == ty).map(|(_, v)| v)
}

/// One nf_tables request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: MsgType,
    /// NLM_F_* beyond REQUEST and ACK.
    pub flags: u16,
    pub family: u8,
    pub attrs: Attrs,
}

fn push_header(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> usize {
    let start = out.len();
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish()
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    // struct nfgenmsg
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    start
}

fn finish(out: &mut [u8], start: usize) {
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Why a request failed: the kernel's errno and which message it answered.
#[derive(Debug)]
pub struct NftError {
    /// Index of the failing message in the batch (None: the batch itself or the socket).
    pub index: Option<usize>,
    pub source: io::Error,
}

pub struct Nftnl {
    sock: Socket,
    seq: u32,
    rbuf: Vec<u8>,
}

/// One received netlink message: type, sequence number and payload (after the nlmsghdr).
struct Reply<'a> {
    ty: u16,
    seq: u32,
    payload: &'a [u8],
}

fn replies(buf: &[u8]) -> Vec<Reply<'_>> {
    let mut v = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < 16 || off + len > buf.len() {
            break;
        }
        v.push(Reply {
            ty: u16::from_ne_bytes([buf[off + 4], buf[off + 5]]),
            seq: u32::from_ne_bytes(buf[off + 8..off + 12].try_into().unwrap()),
            payload: &buf[off + 16..off + len],
        });
        off += (len + 3) & !3;
    }
    v
}

/// The errno of an NLMSG_ERROR payload (0 = ack).
fn errno_of(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map(|b| -i32::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(libc::EPROTO)
}

impl Nftnl {
    /// Opens a netfilter netlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Nftnl {
            sock,
            seq: 0,
            rbuf: vec![0; 64 * 1024],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `msgs` as one batch (one transaction) and waits for every answer. The kernel
    /// applies all or none; the first failure is returned with the index of its message.
    pub fn transact(&mut self, msgs: &[Msg]) -> Result<(), NftError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let sock_err = |source| NftError {
            index: None,
            source,
        };
        let mut out = Vec::with_capacity(256 * msgs.len());
        let begin_seq = self.next_seq();
        let s = push_header(
            &mut out,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        finish(&mut out, s);
        let first = begin_seq.wrapping_add(1);
        for m in msgs {
            let seq = self.next_seq();
            let ty = (NFNL_SUBSYS_NFTABLES << 8) | m.ty as u16;
            let s = push_header(
                &mut out,
                ty,
                NLM_F_REQUEST | NLM_F_ACK | m.flags,
                seq,
                m.family,
                0,
            );
            out.extend_from_slice(m.attrs.as_slice());
            finish(&mut out, s);
        }
        let end_seq = self.next_seq();
        let s = push_header(
            &mut out,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end_seq,
            0,
            NFNL_SUBSYS_NFTABLES,
        );
        finish(&mut out, s);
        self.sock.send(&out, 0).map_err(sock_err)?;

        let mut answered = vec![false; msgs.len()];
        let mut first_err: Option<NftError> = None;
        while answered.iter().any(|a| !a) {
            let n = self
                .sock
                .recv(&mut &mut self.rbuf[..], 0)
                .map_err(sock_err)?;
            for r in replies(&self.rbuf[..n]) {
                if r.ty != NLMSG_ERROR {
                    continue;
                }
                let errno = errno_of(r.payload);
                if r.seq == begin_seq || r.seq == end_seq {
                    // The batch as a whole was refused (e.g. nf_tables is missing).
                    return Err(sock_err(io::Error::from_raw_os_error(errno)));
                }
                let Some(i) = r.seq.checked_sub(first).map(|i| i as usize) else {
                    continue;
                };
                if i < answered.len() {
                    answered[i] = true;
                    if errno != 0 && first_err.is_none() {
                        first_err = Some(NftError {
                            index: Some(i),
                            source: io::Error::from_raw_os_error(errno),
                        });
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Sends one GET request; returns the attribute payload (after the nfgenmsg) of every
    /// answer, or an empty list when the object does not exist (ENOENT).
    pub fn get(&mut self, m: &Msg, dump: bool) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | m.ty as u16;
        let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        let s = push_header(&mut out, ty, flags | m.flags, seq, m.family, 0);
        out.extend_from_slice(m.attrs.as_slice());
        finish(&mut out, s);
        self.sock.send(&out, 0)?;
        let mut got = Vec::new();
        loop {
            let n = self.sock.recv(&mut &mut self.rbuf[..], 0)?;
            for r in replies(&self.rbuf[..n]) {
                if r.seq != seq {
                    continue;
                }
                match r.ty {
                    NLMSG_DONE => return Ok(got),
                    NLMSG_ERROR => {
                        return match errno_of(r.payload) {
                            0 => Ok(got),
                            libc::ENOENT => Ok(Vec::new()),
                            e => Err(io::Error::from_raw_os_error(e)),
                        }
                    }
                    _ => {
                        got.push(r.payload.get(4..).unwrap_or_default().to_vec());
                        if !dump {
                            // A plain GET has one answer, then its ack.
                            continue;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested() {
        let mut a = Attrs::new();
        a.str(1, "minc").be32(2, 1).nested(4, |h| {
            h.be32(1, 0);
            h.be32(2, (-100i32) as u32);
        });
        let b = a.as_slice();
        // "minc\0" is 5 bytes + 4 of header = 9, padded to 12.
        assert_eq!(&b[..12], &[9, 0, 1, 0, b'm', b'i', b'n', b'c', 0, 0, 0, 0]);
        assert_eq!(&b[12..20], &[8, 0, 2, 0, 0, 0, 0, 1]);
        assert_eq!(&b[20..24], &[20, 0, 4, 0x80], "nested flag");
        assert_eq!(&b[36..40], &[0xff, 0xff, 0xff, 0x9c], "-100 big endian");
        let parsed: Vec<_> = parse_attrs(b).map(|(t, v)| (t, v.len())).collect();
        assert_eq!(parsed, vec![(1, 5), (2, 4), (4, 16)]);
        let hook = attr(b, 4).unwrap();
        assert_eq!(attr(hook, 2).unwrap(), &[0xff, 0xff, 0xff, 0x9c]);
        // A truncated buffer stops the iteration instead of reading past it.
        assert_eq!(parse_attrs(&b[..8]).count(), 0);
    }

    #[test]
    fn batch_framing() {
        let mut out = Vec::new();
        let s = push_header(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 7, 0, 10);
        finish(&mut out, s);
        assert_eq!(out.len(), 20);
        let r = replies(&out);
        assert_eq!((r[0].ty, r[0].seq), (16, 7));
        assert_eq!(
            &r[0].payload,
            &[0, 0, 0, 10],
            "res_id is the subsystem, big endian"
        );
    }
}
