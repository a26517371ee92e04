//! DNS messages, as far as the resolver reads and writes them (RFC 1035 section 4, RFC 3596
//! for AAAA): the question of a query, and answers of type A, AAAA and PTR. Every read is
//! bounds-checked: queries come from containers, which are not trusted.
//!
//! A message is a 12-byte header (id, flags, four counts), then the questions, answers,
//! authority and additional records. A name is a list of labels (a length byte, then that
//! many bytes), ended by a zero byte; in an answer, `0xc00c` points back at the question's
//! name at offset 12 (compression).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_PTR: u16 = 12;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;

const HEADER: usize = 12;
/// Answers a client can take over UDP without EDNS (RFC 1035 2.3.4).
pub const UDP_MAX: usize = 512;

/// The one question of a query.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Recursion desired (copied into the answer).
    pub rd: bool,
    /// The name, lowercase, without the final dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as it came (name, type, class), copied into the answer.
    pub question: Vec<u8>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// The id of a message (its first two bytes).
pub fn id(b: &[u8]) -> Option<u16> {
    u16_at(b, 0)
}

pub fn set_id(b: &mut [u8], id: u16) {
    if b.len() >= 2 {
        b[..2].copy_from_slice(&id.to_be_bytes());
    }
}

/// Whether an answer was cut short (TC).
pub fn truncated(b: &[u8]) -> bool {
    b.get(2).is_some_and(|f| f & 0x02 != 0)
}

/// Whether a message is an answer (QR).
pub fn is_response(b: &[u8]) -> bool {
    b.get(2).is_some_and(|f| f & 0x80 != 0)
}

/// What is wrong with a message that is not a query the resolver can take.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Not even a header, or an answer: ignored.
    Drop,
    /// Answered with this code (FORMERR, NOTIMP).
    Answer(u8),
}

/// Reads the question of a standard query with exactly one question.
pub fn parse_query(b: &[u8]) -> Result<Query, Bad> {
    if b.len() < HEADER || is_response(b) {
        return Err(Bad::Drop);
    }
    let id = u16_at(b, 0).ok_or(Bad::Drop)?;
    let opcode = (b[2] >> 3) & 0x0f;
    if opcode != 0 {
        return Err(Bad::Answer(NOTIMP));
    }
    if u16_at(b, 4) != Some(1) {
        return Err(Bad::Answer(FORMERR));
    }
    let mut i = HEADER;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0;
    loop {
        let len = *b.get(i).ok_or(Bad::Answer(FORMERR))? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        // No compression in a question, and names of at most 255 bytes.
        if len > 63 {
            return Err(Bad::Answer(FORMERR));
        }
        total += len + 1;
        if total > 255 {
            return Err(Bad::Answer(FORMERR));
        }
        let l = b.get(i..i + len).ok_or(Bad::Answer(FORMERR))?;
        labels.push(String::from_utf8_lossy(l).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16_at(b, i).ok_or(Bad::Answer(FORMERR))?;
    let qclass = u16_at(b, i + 2).ok_or(Bad::Answer(FORMERR))?;
    Ok(Query {
        id,
        rd: b[2] & 0x01 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question: b[HEADER..i + 4].to_vec(),
    })
}

/// An answer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Addr(IpAddr),
    Ptr(String),
}

/// `name` as labels (for PTR data); None if a label is empty or too long.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    for l in name.trim_end_matches('.').split('.') {
        if l.is_empty() || l.len() > 63 {
            return None;
        }
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    Some(v)
}

fn header(id: u16, rd: bool, rcode: u8, an: u16, tc: bool) -> Vec<u8> {
    let mut h = Vec::with_capacity(UDP_MAX);
    h.extend_from_slice(&id.to_be_bytes());
    // QR, AA, TC, RD as asked; RA; the code.
    h.push(0x80 | 0x04 | if tc { 0x02 } else { 0 } | u8::from(rd));
    h.push(0x80 | (rcode & 0x0f));
    h.extend_from_slice(&1u16.to_be_bytes());
    h.extend_from_slice(&an.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// The answer to `q`: `rcode`, and the records that fit in `max` bytes (TC set if some did
/// not). TTL 0: containers come and go, so no one should keep an answer.
pub fn response(q: &Query, rcode: u8, answers: &[Answer], max: usize) -> Vec<u8> {
    let mut records = Vec::new();
    let mut n = 0u16;
    let mut tc = false;
    let budget = max.saturating_sub(HEADER + q.question.len());
    for a in answers {
        let (ty, data) = match a {
            Answer::Addr(IpAddr::V4(v4)) => (TYPE_A, v4.octets().to_vec()),
            Answer::Addr(IpAddr::V6(v6)) => (TYPE_AAAA, v6.octets().to_vec()),
            Answer::Ptr(name) => match encode_name(name) {
                Some(d) => (TYPE_PTR, d),
                None => continue,
            },
        };
        let mut r = vec![0xc0, 0x0c];
        r.extend_from_slice(&ty.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&0u32.to_be_bytes());
        r.extend_from_slice(&(data.len() as u16).to_be_bytes());
        r.extend_from_slice(&data);
        if records.len() + r.len() > budget {
            tc = true;
            break;
        }
        records.extend_from_slice(&r);
        n += 1;
    }
    let mut m = header(q.id, q.rd, rcode, n, tc);
    m.extend_from_slice(&q.question);
    m.extend_from_slice(&records);
    m
}

/// An error answer to a message that did not parse as a query (its id kept, no question).
pub fn error_response(b: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let id = id(b)?;
    let rd = b.get(2).is_some_and(|f| f & 1 != 0);
    let mut m = header(id, rd, rcode, 0, false);
    m[4..6].copy_from_slice(&[0, 0]); // no question
    Some(m)
}

/// The largest UDP answer the client takes: its EDNS size (RFC 6891: the OPT record's class),
/// at least 512, at most 4096.
pub fn udp_limit(b: &[u8]) -> usize {
    // An OPT record right after the question is how every stub resolver sends it: root name
    // (0), type 41, class = size.
    let Ok(q) = parse_query(b) else {
        return UDP_MAX;
    };
    let at = HEADER + q.question.len();
    if u16_at(b, 10) == Some(1) && b.get(at) == Some(&0) && u16_at(b, at + 1) == Some(41) {
        if let Some(size) = u16_at(b, at + 3) {
            return (size as usize).clamp(UDP_MAX, 4096);
        }
    }
    UDP_MAX
}

/// The address a reverse name stands for: `4.3.2.1.in-addr.arpa` or the 32 nibbles of
/// `...ip6.arpa`.
pub fn reverse_addr(name: &str) -> Option<IpAddr> {
    if let Some(r) = name.strip_suffix(".in-addr.arpa") {
        let parts: Vec<u8> = r
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let [d, c, b, a] = parts.as_slice() else {
            return None;
        };
        return Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)));
    }
    let r = name.strip_suffix(".ip6.arpa")?;
    let nibbles: Vec<u8> = r
        .split('.')
        .map(|p| match p.len() {
            1 => u8::from_str_radix(p, 16).ok(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    if nibbles.len() != 32 {
        return None;
    }
    let mut o = [0u8; 16];
    for (i, n) in nibbles.iter().rev().enumerate() {
        o[i / 2] |= if i % 2 == 0 { n << 4 } else { *n };
    }
    Some(IpAddr::V6(Ipv6Addr::from(o)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as `dig` sends it, optionally with an EDNS OPT record.
    fn query(id: u16, name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = vec![0; 12];
        m[..2].copy_from_slice(&id.to_be_bytes());
        m[2] = 0x01; // RD
        m[5] = 1;
        if edns.is_some() {
            m[11] = 1;
        }
        m.extend(encode_name(name).unwrap());
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(size) = edns {
            m.push(0);
            m.extend_from_slice(&41u16.to_be_bytes());
            m.extend_from_slice(&size.to_be_bytes());
            m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        m
    }

    #[test]
    fn answers_a_query() {
        let b = query(0x1234, "Web.", TYPE_A, None);
        let q = parse_query(&b).unwrap();
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype, q.rd),
            (0x1234, "web", TYPE_A, true)
        );
        let r = response(
            &q,
            NOERROR,
            &[
                Answer::Addr("10.78.0.2".parse().unwrap()),
                Answer::Addr("fd00::2".parse().unwrap()),
            ],
            UDP_MAX,
        );
        assert_eq!(&r[..4], &[0x12, 0x34, 0x85, 0x80], "QR AA RD, RA NOERROR");
        assert_eq!(&r[6..8], &[0, 2], "two answers");
        let a = &r[12 + q.question.len()..];
        assert_eq!(&a[..12], &[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        assert_eq!(&a[12..16], &[10, 78, 0, 2]);
        assert_eq!(&a[18..20], &[0, 28], "then AAAA");
    }

    #[test]
    fn hostile_queries_are_refused_not_trusted() {
        assert_eq!(parse_query(&[1, 2, 3]), Err(Bad::Drop));
        let mut resp = query(1, "a", TYPE_A, None);
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp), Err(Bad::Drop), "an answer is no query");
        let mut two = query(1, "a", TYPE_A, None);
        two[5] = 2;
        assert_eq!(parse_query(&two), Err(Bad::Answer(FORMERR)));
        let mut ptr = query(1, "a", TYPE_A, None);
        ptr[12] = 0xc0; // a compression pointer in the question
        assert_eq!(parse_query(&ptr), Err(Bad::Answer(FORMERR)));
        let mut cut = query(1, "abc", TYPE_A, None);
        cut.truncate(15);
        assert_eq!(parse_query(&cut), Err(Bad::Answer(FORMERR)));
        let long = query(1, &vec!["x".repeat(63); 4].join("."), TYPE_A, None);
        assert_eq!(parse_query(&long), Err(Bad::Answer(FORMERR)), "over 255");
        let mut opcode = query(1, "a", TYPE_A, None);
        opcode[2] |= 2 << 3;
        assert_eq!(parse_query(&opcode), Err(Bad::Answer(NOTIMP)));
        let e = error_response(&two, FORMERR).unwrap();
        assert_eq!((e.len(), e[3] & 0x0f, e[5]), (12, FORMERR, 0));
    }

    #[test]
    fn answers_fit_the_client() {
        let b = query(7, "svc", TYPE_A, None);
        let q = parse_query(&b).unwrap();
        let many: Vec<Answer> = (0..100)
            .map(|i| Answer::Addr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))))
            .collect();
        let r = response(&q, NOERROR, &many, udp_limit(&b));
        assert!(r.len() <= UDP_MAX && truncated(&r), "{}", r.len());
        let e = query(7, "svc", TYPE_A, Some(4096));
        assert_eq!(udp_limit(&e), 4096);
        let r = response(&q, NOERROR, &many, udp_limit(&e));
        assert!(!truncated(&r) && r.len() > UDP_MAX);
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_addr("2.0.78.10.in-addr.arpa"),
            Some("10.78.0.2".parse().unwrap())
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa";
        assert_eq!(reverse_addr(v6), Some("fd00::2".parse().unwrap()));
        for bad in [
            "1.2.3.in-addr.arpa",
            "x.1.2.3.in-addr.arpa",
            "1.ip6.arpa",
            "web",
        ] {
            assert_eq!(reverse_addr(bad), None, "{bad}");
        }
        let q = parse_query(&query(9, "2.0.78.10.in-addr.arpa", TYPE_PTR, None)).unwrap();
        let r = response(&q, NOERROR, &[Answer::Ptr("web".into())], UDP_MAX);
        assert!(r.ends_with(&[0, 5, 3, b'w', b'e', b'b', 0]), "{r:?}");
    }
}
