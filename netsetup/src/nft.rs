//! nftables: one table (`inet minc`) owned by minc; nothing else is ever touched.
//!
//! nftables (nft(8)) is the kernel's packet filter and NAT: tables hold chains, a *base* chain
//! hangs on a netfilter hook (prerouting, input, forward, output, postrouting) with a priority,
//! and its rules are lists of expressions. Sets and maps are looked up by rules, so a rule can
//! stay fixed while containers come and go as map elements.
//!
//! ```text
//! table inet minc {
//!   map tcp_addr { type inet_service : ipv4_addr }      # host port -> container address
//!   map tcp_port { type inet_service : inet_service }   # host port -> container port
//!   map udp_addr, udp_port { ... }
//!   set bridges { type ifname }                          # every minc bridge
//!   chain prerouting  { nat prerouting -100:  meta nfproto ipv4 fib daddr type local
//!                                             meta l4proto P dnat ip to P dport map @P_addr : P dport map @P_port }
//!   chain output      { nat output -100:      the same, for the host's own connections }
//!   chain postrouting { nat postrouting 100:  oifname @bridges ip saddr 127.0.0.0/8 masquerade }
//!   chain forward     { filter forward 0:     accept to and from the bridges }
//!   chain input       { filter input 0:       iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop }
//!   chain nat-BRIDGE  { nat postrouting 100:  ip saddr SUBNET oifname != BRIDGE masquerade
//!                                             ip saddr SUBNET oifname BRIDGE ct status dnat masquerade }
//! }
//! ```
//! Rules never depend on containers: a container only adds map elements, so the rule count and
//! the cost of an attach stay flat. Each network has its own postrouting chain, named after its
//! bridge (bridge names are unique on a host), whose comment records the revision of the rules
//! minc wants; a connect applies the whole skeleton again only when that comment differs (a new
//! minc, a deleted table, a reboot), so the common case is one small batch of elements.
//!
//! The `input` rule closes CVE-2020-8558: a published port is reachable on the host's
//! 127.0.0.1, which needs `route_localnet=1` on the bridge; without the rule, a container could
//! then send packets to any service listening on the host's loopback addresses.
//!
//! A change is a [`Batch`] of [`Command`]s. The same batch renders as the text `nft -f` reads
//! (`--explain`) and as the netlink messages of [`crate::nftnl`] that the kernel applies as one
//! transaction. Statements compile exactly as nft 1.0 compiles them (dependencies such as
//! `meta nfproto ipv4` before `ip saddr`, short loads for byte-aligned prefixes), so the kernel
//! holds the same expressions whichever way the batch arrived and `nft list` prints the same.

use crate::nftnl::{
    self, Attrs, Msg, MsgType, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6, NLM_F_APPEND, NLM_F_CREATE,
};
use crate::{Network, Protocol};
use ipnet::IpNet;
use sha2::Digest;
use std::fmt::Write as _;
use std::net::IpAddr;

pub const TABLE: &str = "minc";
pub const BRIDGES: &str = "bridges";
const IFNAMSIZ: usize = 16;

/// Host port -> container address.
pub fn addr_map(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp_addr",
        Protocol::Udp => "udp_addr",
    }
}

/// Host port -> container port.
pub fn port_map(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp_port",
        Protocol::Udp => "udp_port",
    }
}

/// The network's own postrouting chain.
pub fn net_chain(net: &Network) -> String {
    format!("nat-{}", net.bridge)
}

/// nft data types (`enum datatypes` in nftables' datatype.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    InetService,
    Ipv4Addr,
    Ifname,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::InetService => "inet_service",
            Type::Ipv4Addr => "ipv4_addr",
            Type::Ifname => "ifname",
        }
    }
    fn id(self) -> u32 {
        match self {
            Type::Ipv4Addr => 7,
            Type::InetService => 13,
            Type::Ifname => 41,
        }
    }
    fn len(self) -> u32 {
        match self {
            Type::InetService => 2,
            Type::Ipv4Addr => 4,
            Type::Ifname => 16,
        }
    }
    /// nft records each set's byte order in the set's user data (1 host, 2 big endian) and
    /// uses it to print elements.
    fn byteorder(self) -> u32 {
        match self {
            Type::Ifname => 1,
            _ => 2,
        }
    }
}

/// A set element's key or value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Port(u16),
    Addr(IpAddr),
    Ifname(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Port(p) => p.to_string(),
            Value::Addr(a) => a.to_string(),
            Value::Ifname(n) => format!("\"{n}\""),
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Port(p) => p.to_be_bytes().to_vec(),
            Value::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            Value::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            Value::Ifname(n) => ifname_bytes(n),
        }
    }
}

fn ifname_bytes(n: &str) -> Vec<u8> {
    let mut b = n.as_bytes().to_vec();
    b.resize(IFNAMSIZ, 0);
    b
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
    /// `enum nf_inet_hooks`.
    fn num(self) -> u32 {
        match self {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
}

/// What makes a chain a base chain: its type (`nat`, `filter`), hook and priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base {
    pub kind: &'static str,
    pub hook: Hook,
    pub prio: i32,
}

/// One statement of a rule, as written in nft's syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `meta nfproto ipv4|ipv6`
    Nfproto(IpFamily),
    /// `meta l4proto tcp|udp`
    L4proto(Protocol),
    /// `fib daddr type local`: the destination is one of this host's addresses.
    FibDaddrLocal,
    /// `ip saddr NET` / `ip6 saddr NET`
    Saddr(IpNet),
    /// `ip daddr NET` / `ip6 daddr NET`
    Daddr(IpNet),
    /// `oifname [!=] "NAME"`
    Oifname {
        eq: bool,
        name: String,
    },
    /// `iifname @SET`
    IifIn(String),
    /// `oifname @SET`
    OifIn(String),
    /// `ct status dnat` (true) or `ct status & dnat == 0` (false)
    CtDnat(bool),
    /// `ct state established,related`
    CtEstablishedRelated,
    /// `dnat ip|ip6 to P dport map @ADDR : P dport map @PORT`
    DnatViaMaps {
        family: IpFamily,
        proto: Protocol,
        addr_map: String,
        port_map: String,
    },
    Masquerade,
    Accept,
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    fn of(a: &IpAddr) -> Self {
        if a.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }
    fn nfproto(self) -> u8 {
        match self {
            IpFamily::V4 => NFPROTO_IPV4,
            IpFamily::V6 => NFPROTO_IPV6,
        }
    }
    fn word(self) -> &'static str {
        match self {
            IpFamily::V4 => "ip",
            IpFamily::V6 => "ip6",
        }
    }
}

impl Stmt {
    fn text(&self) -> String {
        match self {
            Stmt::Nfproto(f) => format!(
                "meta nfproto {}",
                match f {
                    IpFamily::V4 => "ipv4",
                    IpFamily::V6 => "ipv6",
                }
            ),
            Stmt::L4proto(p) => format!("meta l4proto {p}"),
            Stmt::FibDaddrLocal => "fib daddr type local".into(),
            Stmt::Saddr(n) => format!("{} saddr {n}", IpFamily::of(&n.addr()).word()),
            Stmt::Daddr(n) => format!("{} daddr {n}", IpFamily::of(&n.addr()).word()),
            Stmt::Oifname { eq, name } => format!("oifname {}\"{name}\"", ne(*eq)),
            Stmt::IifIn(s) => format!("iifname @{s}"),
            Stmt::OifIn(s) => format!("oifname @{s}"),
            Stmt::CtDnat(true) => "ct status dnat".into(),
            Stmt::CtDnat(false) => "ct status & dnat == 0".into(),
            Stmt::CtEstablishedRelated => "ct state established,related".into(),
            Stmt::DnatViaMaps {
                family,
                proto,
                addr_map,
                port_map,
            } => format!(
                "dnat {} to {proto} dport map @{addr_map} : {proto} dport map @{port_map}",
                family.word()
            ),
            Stmt::Masquerade => "masquerade".into(),
            Stmt::Accept => "accept".into(),
            Stmt::Drop => "drop".into(),
        }
    }
}

fn ne(eq: bool) -> &'static str {
    if eq {
        ""
    } else {
        "!= "
    }
}

/// One nft command of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    AddTable,
    AddMap {
        name: String,
        key: Type,
        data: Type,
    },
    AddSet {
        name: String,
        key: Type,
    },
    AddChain {
        name: String,
        base: Option<Base>,
        comment: Option<String>,
    },
    /// Deletes every rule of the chain.
    FlushChain {
        name: String,
    },
    AddRule {
        chain: String,
        stmts: Vec<Stmt>,
    },
    AddElement {
        set: String,
        key: Value,
        data: Option<Value>,
    },
    DeleteElement {
        set: String,
        key: Value,
    },
}

/// Commands applied as one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch(pub Vec<Command>);

impl Command {
    /// The line `nft -f` reads for this command.
    pub fn text(&self) -> String {
        let t = format!("inet {TABLE}");
        match self {
            Command::AddTable => format!("add table {t}"),
            Command::AddMap { name, key, data } => format!(
                "add map {t} {name} {{ type {} : {}; }}",
                key.name(),
                data.name()
            ),
            Command::AddSet { name, key } => {
                format!("add set {t} {name} {{ type {}; }}", key.name())
            }
            Command::AddChain {
                name,
                base,
                comment,
            } => {
                let mut body = String::new();
                if let Some(b) = base {
                    let _ = write!(
                        body,
                        " type {} hook {} priority {}; policy accept;",
                        b.kind,
                        b.hook.name(),
                        b.prio
                    );
                }
                if let Some(c) = comment {
                    let _ = write!(body, " comment \"{c}\";");
                }
                if body.is_empty() {
                    format!("add chain {t} {name}")
                } else {
                    format!("add chain {t} {name} {{{body} }}")
                }
            }
            Command::FlushChain { name } => format!("flush chain {t} {name}"),
            Command::AddRule { chain, stmts } => format!(
                "add rule {t} {chain} {}",
                stmts.iter().map(Stmt::text).collect::<Vec<_>>().join(" ")
            ),
            Command::AddElement { set, key, data } => match data {
                Some(d) => format!("add element {t} {set} {{ {} : {} }}", key.text(), d.text()),
                None => format!("add element {t} {set} {{ {} }}", key.text()),
            },
            Command::DeleteElement { set, key } => {
                format!("delete element {t} {set} {{ {} }}", key.text())
            }
        }
    }
}

impl Batch {
    /// The complete input of `nft -f -` for this batch.
    pub fn text(&self) -> String {
        self.0.iter().map(|c| c.text() + "\n").collect()
    }

    /// The netlink messages of this batch, in order.
    pub fn messages(&self) -> Vec<Msg> {
        let mut set_id = 0;
        self.0.iter().map(|c| encode(c, &mut set_id)).collect()
    }
}

// ---- netlink encoding (attribute numbers from linux/netfilter/nf_tables.h) ----

fn msg(ty: MsgType, flags: u16, attrs: Attrs) -> Msg {
    Msg {
        ty,
        flags,
        family: NFPROTO_INET,
        attrs,
    }
}

/// nftnl's user data format: (type u8, length u8, value) records.
fn udata(records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut v = Vec::new();
    for (ty, val) in records {
        v.push(*ty);
        v.push(val.len() as u8);
        v.extend_from_slice(val);
    }
    v
}

fn comment_udata(c: &str) -> Vec<u8> {
    let mut s = c.as_bytes().to_vec();
    s.push(0);
    udata(&[(0, &s)]) // NFTNL_UDATA_{CHAIN,TABLE,RULE}_COMMENT
}

fn encode(c: &Command, set_id: &mut u32) -> Msg {
    let mut a = Attrs::new();
    match c {
        Command::AddTable => {
            a.str(1, TABLE).be32(2, 0); // NFTA_TABLE_NAME, NFTA_TABLE_FLAGS
            msg(MsgType::NewTable, NLM_F_CREATE, a)
        }
        Command::AddMap { name, key, data } => {
            *set_id += 1;
            a.str(1, TABLE).str(2, name); // NFTA_SET_TABLE, NFTA_SET_NAME
            a.be32(3, 0x8); // NFTA_SET_FLAGS: NFT_SET_MAP
            a.be32(4, key.id()).be32(5, key.len()); // KEY_TYPE, KEY_LEN
            a.be32(6, data.id()).be32(7, data.len()); // DATA_TYPE, DATA_LEN
            a.be32(10, *set_id); // NFTA_SET_ID
                                 // KEYBYTEORDER, DATABYTEORDER, DATA_INTERVAL (no)
            let (k, d) = (
                key.byteorder().to_ne_bytes(),
                data.byteorder().to_ne_bytes(),
            );
            a.bytes(13, &udata(&[(0, &k), (1, &d), (6, &0u32.to_ne_bytes())]));
            msg(MsgType::NewSet, NLM_F_CREATE, a)
        }
        Command::AddSet { name, key } => {
            *set_id += 1;
            a.str(1, TABLE).str(2, name);
            a.be32(3, 0);
            a.be32(4, key.id()).be32(5, key.len());
            a.be32(10, *set_id);
            a.bytes(13, &udata(&[(0, &key.byteorder().to_ne_bytes())]));
            msg(MsgType::NewSet, NLM_F_CREATE, a)
        }
        Command::AddChain {
            name,
            base,
            comment,
        } => {
            a.str(1, TABLE).str(3, name); // NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME
            if let Some(b) = base {
                a.str(7, b.kind); // NFTA_CHAIN_TYPE
                a.be32(5, 1); // NFTA_CHAIN_POLICY: NF_ACCEPT
                a.nested(4, |h| {
                    h.be32(1, b.hook.num()); // NFTA_HOOK_HOOKNUM
                    h.be32(2, b.prio as u32); // NFTA_HOOK_PRIORITY
                });
            }
            if let Some(c) = comment {
                a.bytes(12, &comment_udata(c)); // NFTA_CHAIN_USERDATA
            }
            msg(MsgType::NewChain, NLM_F_CREATE, a)
        }
        Command::FlushChain { name } => {
            a.str(1, TABLE).str(2, name); // NFTA_RULE_TABLE, NFTA_RULE_CHAIN
            msg(MsgType::DelRule, 0, a)
        }
        Command::AddRule { chain, stmts } => {
            a.str(1, TABLE).str(2, chain);
            a.nested(4, |list| compile(stmts, list)); // NFTA_RULE_EXPRESSIONS
            msg(MsgType::NewRule, NLM_F_CREATE | NLM_F_APPEND, a)
        }
        Command::AddElement { set, key, data } => {
            element_attrs(&mut a, set, key, data.as_ref());
            msg(MsgType::NewSetElem, NLM_F_CREATE, a)
        }
        Command::DeleteElement { set, key } => {
            element_attrs(&mut a, set, key, None);
            msg(MsgType::DelSetElem, 0, a)
        }
    }
}

fn element_attrs(a: &mut Attrs, set: &str, key: &Value, data: Option<&Value>) {
    // NFTA_SET_ELEM_LIST_TABLE, _SET, _ELEMENTS { NFTA_LIST_ELEM { KEY, DATA } }
    a.str(1, TABLE).str(2, set);
    a.nested(3, |list| {
        list.nested(1, |e| {
            e.nested(1, |k| {
                k.bytes(1, &key.bytes()); // NFTA_DATA_VALUE
            });
            if let Some(d) = data {
                e.nested(2, |v| {
                    v.bytes(1, &d.bytes());
                });
            }
        });
    });
}

/// The messages asking for one element of `set` (its key), or for all of them.
pub fn get_elements(set: &str, key: Option<&Value>) -> Msg {
    let mut a = Attrs::new();
    match key {
        Some(k) => element_attrs(&mut a, set, k, None),
        None => {
            a.str(1, TABLE).str(2, set);
        }
    }
    msg(MsgType::GetSetElem, 0, a)
}

/// Set elements as (key, data) bytes.
pub type Elements = Vec<(Vec<u8>, Vec<u8>)>;

/// (key, data) pairs of the elements in GETSETELEM answers.
pub fn parse_elements(answers: &[Vec<u8>]) -> Elements {
    let value = |b: &[u8]| nftnl::attr(b, 1).map(<[u8]>::to_vec).unwrap_or_default();
    let mut v = Vec::new();
    for a in answers {
        let Some(list) = nftnl::attr(a, 3) else {
            continue;
        };
        for (_, el) in nftnl::parse_attrs(list) {
            let key = nftnl::attr(el, 1).map(value).unwrap_or_default();
            let data = nftnl::attr(el, 2).map(value).unwrap_or_default();
            v.push((key, data));
        }
    }
    v
}

/// The message asking for one chain of the table.
pub fn get_chain(name: &str) -> Msg {
    let mut a = Attrs::new();
    a.str(1, TABLE).str(3, name);
    msg(MsgType::GetChain, 0, a)
}

/// The comment of a chain from its GETCHAIN answer.
pub fn chain_comment(answer: &[u8]) -> Option<String> {
    let ud = nftnl::attr(answer, 12)?;
    // (type 0 = comment, len, "text\0")
    let (&ty, rest) = ud.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let s = rest.get(..len as usize)?;
    (ty == 0).then(|| String::from_utf8_lossy(s.strip_suffix(&[0]).unwrap_or(s)).into_owned())
}

// ---- statements to expressions, as nft compiles them ----

const REG_VERDICT: u32 = 0;
const REG1: u32 = 1;
const REG2: u32 = 2;

fn expr(list: &mut Attrs, name: &str, f: impl FnOnce(&mut Attrs)) {
    list.nested(1, |e| {
        e.str(1, name); // NFTA_EXPR_NAME
        e.nested(2, f); // NFTA_EXPR_DATA
    });
}

fn meta(list: &mut Attrs, key: u32) {
    expr(list, "meta", |d| {
        d.be32(2, key).be32(1, REG1); // NFTA_META_KEY, NFTA_META_DREG
    });
}

/// `op` 0 = eq, 1 = neq.
fn cmp(list: &mut Attrs, op: u32, data: &[u8]) {
    expr(list, "cmp", |d| {
        d.be32(1, REG1).be32(2, op);
        d.nested(3, |v| {
            v.bytes(1, data);
        });
    });
}

fn payload(list: &mut Attrs, base: u32, offset: u32, len: u32, dreg: u32) {
    expr(list, "payload", |d| {
        d.be32(1, dreg).be32(2, base).be32(3, offset).be32(4, len);
    });
}

fn bitwise(list: &mut Attrs, mask: &[u8]) {
    expr(list, "bitwise", |d| {
        d.be32(1, REG1).be32(2, REG1).be32(3, mask.len() as u32);
        d.nested(4, |v| {
            v.bytes(1, mask);
        });
        d.nested(5, |v| {
            v.bytes(1, &vec![0; mask.len()]);
        });
    });
}

fn lookup(list: &mut Attrs, set: &str, sreg: u32, dreg: Option<u32>) {
    expr(list, "lookup", |d| {
        d.be32(2, sreg);
        if let Some(r) = dreg {
            d.be32(3, r);
        }
        d.str(1, set);
    });
}

fn verdict(list: &mut Attrs, code: u32) {
    expr(list, "immediate", |d| {
        d.be32(1, REG_VERDICT);
        d.nested(2, |data| {
            data.nested(2, |v| {
                v.be32(1, code); // NFTA_VERDICT_CODE
            });
        });
    });
}

const META_IIFNAME: u32 = 6;
const META_OIFNAME: u32 = 7;
const META_NFPROTO: u32 = 15;
const META_L4PROTO: u32 = 16;
const PAYLOAD_NETWORK: u32 = 1;
const PAYLOAD_TRANSPORT: u32 = 2;
const CT_STATE: u32 = 0;
const CT_STATUS: u32 = 2;
const IPS_DST_NAT: u32 = 1 << 5;
const CT_ESTABLISHED_RELATED: u32 = (1 << 1) | (1 << 2);

fn l4num(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
    }
}

/// Compiles a rule's statements into its expression list.
fn compile(stmts: &[Stmt], list: &mut Attrs) {
    // nft adds `meta nfproto` before a network-header match unless the rule already has it.
    let mut nfproto: Option<IpFamily> = None;
    let mut need_family = |list: &mut Attrs, f: IpFamily| {
        if nfproto != Some(f) {
            meta(list, META_NFPROTO);
            cmp(list, 0, &[f.nfproto()]);
            nfproto = Some(f);
        }
    };
    for s in stmts {
        match s {
            Stmt::Nfproto(f) => need_family(list, *f),
            Stmt::L4proto(p) => {
                meta(list, META_L4PROTO);
                cmp(list, 0, &[l4num(*p)]);
            }
            Stmt::FibDaddrLocal => {
                expr(list, "fib", |d| {
                    // NFTA_FIB_FLAGS: daddr, NFTA_FIB_RESULT: addrtype, NFTA_FIB_DREG
                    d.be32(3, 1 << 1).be32(2, 3).be32(1, REG1);
                });
                cmp(list, 0, &2u32.to_ne_bytes()); // RTN_LOCAL
            }
            Stmt::Saddr(n) | Stmt::Daddr(n) => {
                let fam = IpFamily::of(&n.addr());
                need_family(list, fam);
                let (off, alen) = match (fam, matches!(s, Stmt::Saddr(_))) {
                    (IpFamily::V4, true) => (12, 4),
                    (IpFamily::V4, false) => (16, 4),
                    (IpFamily::V6, true) => (8, 16),
                    (IpFamily::V6, false) => (24, 16),
                };
                let net = Value::Addr(n.network()).bytes();
                let plen = n.prefix_len() as usize;
                if plen.is_multiple_of(8) {
                    // Byte-aligned: load only the prefix bytes.
                    let l = plen / 8;
                    payload(list, PAYLOAD_NETWORK, off, l as u32, REG1);
                    cmp(list, 0, &net[..l]);
                } else {
                    payload(list, PAYLOAD_NETWORK, off, alen, REG1);
                    bitwise(list, &Value::Addr(n.netmask()).bytes());
                    cmp(list, 0, &net);
                }
            }
            Stmt::Oifname { eq, name } => {
                meta(list, META_OIFNAME);
                cmp(list, if *eq { 0 } else { 1 }, &ifname_bytes(name));
            }
            Stmt::IifIn(set) | Stmt::OifIn(set) => {
                let key = if matches!(s, Stmt::IifIn(_)) {
                    META_IIFNAME
                } else {
                    META_OIFNAME
                };
                meta(list, key);
                lookup(list, set, REG1, None);
            }
            Stmt::CtDnat(set) => {
                expr(list, "ct", |d| {
                    d.be32(2, CT_STATUS).be32(1, REG1);
                });
                bitwise(list, &IPS_DST_NAT.to_ne_bytes());
                cmp(list, if *set { 1 } else { 0 }, &0u32.to_ne_bytes());
            }
            Stmt::CtEstablishedRelated => {
                expr(list, "ct", |d| {
                    d.be32(2, CT_STATE).be32(1, REG1);
                });
                bitwise(list, &CT_ESTABLISHED_RELATED.to_ne_bytes());
                cmp(list, 1, &0u32.to_ne_bytes());
            }
            Stmt::DnatViaMaps {
                family,
                addr_map,
                port_map,
                ..
            } => {
                payload(list, PAYLOAD_TRANSPORT, 2, 2, REG1); // P dport
                lookup(list, addr_map, REG1, Some(REG1));
                payload(list, PAYLOAD_TRANSPORT, 2, 2, REG2);
                lookup(list, port_map, REG2, Some(REG2));
                expr(list, "nat", |d| {
                    d.be32(1, 1); // NFTA_NAT_TYPE: NFT_NAT_DNAT
                    d.be32(2, family.nfproto() as u32); // NFTA_NAT_FAMILY
                    d.be32(3, REG1); // NFTA_NAT_REG_ADDR_MIN
                    d.be32(5, REG2); // NFTA_NAT_REG_PROTO_MIN
                    d.be32(7, 0x2); // NFTA_NAT_FLAGS: NF_NAT_RANGE_PROTO_SPECIFIED
                });
            }
            Stmt::Masquerade => expr(list, "masq", |_| {}),
            Stmt::Accept => verdict(list, 1),
            Stmt::Drop => verdict(list, 0),
        }
    }
}

// ---- minc's table ----

/// The rules of a network's postrouting chain and the table's common skeleton, without the
/// revision comment (which is computed from them).
fn skeleton_without_rev(net: &Network) -> Vec<Command> {
    use Command::*;
    let b = net.bridge.as_str();
    let subnet = IpNet::V4(net.subnet);
    let base = |kind, hook, prio| Some(Base { kind, hook, prio });
    let mut c = vec![AddTable];
    for p in [Protocol::Tcp, Protocol::Udp] {
        c.push(AddMap {
            name: addr_map(p).into(),
            key: Type::InetService,
            data: Type::Ipv4Addr,
        });
        c.push(AddMap {
            name: port_map(p).into(),
            key: Type::InetService,
            data: Type::InetService,
        });
    }
    c.push(AddSet {
        name: BRIDGES.into(),
        key: Type::Ifname,
    });
    let chain = |name: &str, b: Option<Base>, rules: Vec<Vec<Stmt>>| {
        let mut v = vec![
            AddChain {
                name: name.into(),
                base: b,
                comment: None,
            },
            FlushChain { name: name.into() },
        ];
        v.extend(rules.into_iter().map(|stmts| AddRule {
            chain: name.into(),
            stmts,
        }));
        v
    };
    let dnat = |p: Protocol| {
        vec![
            Stmt::Nfproto(IpFamily::V4),
            Stmt::FibDaddrLocal,
            Stmt::L4proto(p),
            Stmt::DnatViaMaps {
                family: IpFamily::V4,
                proto: p,
                addr_map: addr_map(p).into(),
                port_map: port_map(p).into(),
            },
        ]
    };
    let loopback: IpNet = "127.0.0.0/8".parse().expect("valid");
    // Published ports, from other hosts and containers (prerouting) and from the host itself
    // (output: the host's own connections, 127.0.0.1 included).
    for (name, hook) in [("prerouting", Hook::Prerouting), ("output", Hook::Output)] {
        c.extend(chain(
            name,
            base("nat", hook, -100),
            vec![dnat(Protocol::Tcp), dnat(Protocol::Udp)],
        ));
    }
    // The host's 127.0.0.1 connections DNATed to a container (this needs route_localnet on
    // the bridge) must leave with an address the container can answer.
    c.extend(chain(
        "postrouting",
        base("nat", Hook::Postrouting, 100),
        vec![vec![
            Stmt::OifIn(BRIDGES.into()),
            Stmt::Saddr(loopback),
            Stmt::Masquerade,
        ]],
    ));
    // Forward accepts, so containers work even where another table's policy is stricter.
    c.extend(chain(
        "forward",
        base("filter", Hook::Forward, 0),
        vec![
            vec![
                Stmt::OifIn(BRIDGES.into()),
                Stmt::CtEstablishedRelated,
                Stmt::Accept,
            ],
            vec![Stmt::IifIn(BRIDGES.into()), Stmt::Accept],
            vec![
                Stmt::OifIn(BRIDGES.into()),
                Stmt::CtDnat(true),
                Stmt::Accept,
            ],
        ],
    ));
    // CVE-2020-8558: with route_localnet=1 on a bridge, a container could reach the host's
    // 127.0.0.0/8 services; only DNATed traffic (published ports, their replies) may.
    c.extend(chain(
        "input",
        base("filter", Hook::Input, 0),
        vec![vec![
            Stmt::IifIn(BRIDGES.into()),
            Stmt::Daddr(loopback),
            Stmt::CtDnat(false),
            Stmt::Drop,
        ]],
    ));
    // Per network: masquerade what leaves the bridge's subnet, and hairpin (a container
    // reaching itself or a neighbour through a published port) so replies come back via us.
    c.extend(chain(
        &net_chain(net),
        base("nat", Hook::Postrouting, 100),
        vec![
            vec![
                Stmt::Saddr(subnet),
                Stmt::Oifname {
                    eq: false,
                    name: b.into(),
                },
                Stmt::Masquerade,
            ],
            vec![
                Stmt::Saddr(subnet),
                Stmt::Oifname {
                    eq: true,
                    name: b.into(),
                },
                Stmt::CtDnat(true),
                Stmt::Masquerade,
            ],
        ],
    ));
    c.push(AddElement {
        set: BRIDGES.into(),
        key: Value::Ifname(b.into()),
        data: None,
    });
    c
}

/// The comment minc's network chain carries: which rules it holds. A connect whose expected
/// comment differs from the kernel's applies the skeleton again.
pub fn revision(net: &Network) -> String {
    let text = Batch(skeleton_without_rev(net)).text();
    let h = sha2::Sha256::digest(text.as_bytes());
    let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("minc network {} rules {hex}", net.name)
}

/// The whole skeleton for `net`, its chain carrying the revision comment. Every command is
/// idempotent (`add` of what exists is a no-op, minc's own chains are flushed and refilled).
pub fn skeleton(net: &Network) -> Vec<Command> {
    let rev = revision(net);
    let chain = net_chain(net);
    let mut c = skeleton_without_rev(net);
    for cmd in &mut c {
        if let Command::AddChain { name, comment, .. } = cmd {
            if *name == chain {
                *comment = Some(rev.clone());
            }
        }
    }
    c
}

/// The elements publishing host port `host` to `ip`:`ctr`.
pub fn publish(proto: Protocol, host: u16, ip: IpAddr, ctr: u16) -> [Command; 2] {
    [
        Command::AddElement {
            set: addr_map(proto).into(),
            key: Value::Port(host),
            data: Some(Value::Addr(ip)),
        },
        Command::AddElement {
            set: port_map(proto).into(),
            key: Value::Port(host),
            data: Some(Value::Port(ctr)),
        },
    ]
}

/// The commands removing host port `host` from both maps.
pub fn unpublish(proto: Protocol, host: u16) -> [Command; 2] {
    [addr_map(proto), port_map(proto)].map(|set| Command::DeleteElement {
        set: set.into(),
        key: Value::Port(host),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(m: &Msg) -> Vec<(u16, usize)> {
        nftnl::parse_attrs(m.attrs.as_slice())
            .map(|(t, v)| (t, v.len()))
            .collect()
    }

    #[test]
    fn skeleton_text_is_what_nft_reads() {
        let net = Network::default();
        let text = Batch(skeleton(&net)).text();
        let want = [
            "add table inet minc",
            "add map inet minc tcp_addr { type inet_service : ipv4_addr; }",
            "add set inet minc bridges { type ifname; }",
            "add chain inet minc prerouting { type nat hook prerouting priority -100; policy accept; }",
            "flush chain inet minc prerouting",
            "add rule inet minc prerouting meta nfproto ipv4 fib daddr type local meta l4proto tcp dnat ip to tcp dport map @tcp_addr : tcp dport map @tcp_port",
            "add rule inet minc postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade",
            "add rule inet minc input iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop",
            "add rule inet minc nat-minc0 ip saddr 10.77.0.0/16 oifname != \"minc0\" masquerade",
            "add rule inet minc nat-minc0 ip saddr 10.77.0.0/16 oifname \"minc0\" ct status dnat masquerade",
            "add element inet minc bridges { \"minc0\" }",
        ];
        for w in want {
            assert!(text.lines().any(|l| l == w), "missing {w:?} in\n{text}");
        }
        let chain_line = text
            .lines()
            .find(|l| l.starts_with("add chain inet minc nat-minc0"))
            .unwrap();
        assert!(
            chain_line.ends_with(&format!("comment \"{}\"; }}", revision(&net))),
            "{chain_line}"
        );
        // Rules never depend on containers, and a different subnet changes the revision.
        let other = Network {
            subnet: "10.99.0.0/16".parse().unwrap(),
            gateway: "10.99.0.1".parse().unwrap(),
            ..Default::default()
        };
        assert_ne!(revision(&net), revision(&other));
        assert_eq!(skeleton(&net).len(), skeleton(&other).len());
    }

    #[test]
    fn elements_render_and_encode() {
        let ip: IpAddr = "10.77.0.2".parse().unwrap();
        let b = Batch(
            publish(Protocol::Tcp, 8080, ip, 8000)
                .into_iter()
                .chain(unpublish(Protocol::Udp, 53))
                .collect(),
        );
        assert_eq!(
            b.text(),
            "add element inet minc tcp_addr { 8080 : 10.77.0.2 }\n\
             add element inet minc tcp_port { 8080 : 8000 }\n\
             delete element inet minc udp_addr { 53 }\n\
             delete element inet minc udp_port { 53 }\n"
        );
        let m = b.messages();
        assert_eq!(m[0].ty, MsgType::NewSetElem);
        assert_eq!(m[2].ty, MsgType::DelSetElem);
        // The wire form nft sends for `8080 : 10.77.0.2` (from `nft --debug=mnl`).
        let el = nftnl::attr(m[0].attrs.as_slice(), 3).unwrap();
        assert_eq!(
            el,
            &[
                0x1c, 0, 1, 0x80, 0x0c, 0, 1, 0x80, 6, 0, 1, 0, 0x1f, 0x90, 0, 0, 0x0c, 0, 2, 0x80,
                8, 0, 1, 0, 10, 77, 0, 2
            ]
        );
        assert_eq!(
            parse_elements(&[m[0].attrs.as_slice().to_vec()]),
            vec![(vec![0x1f, 0x90], vec![10, 77, 0, 2])]
        );
    }

    #[test]
    fn statements_compile_as_nft_does() {
        // `ip saddr 10.77.0.0/16` loads 2 bytes; `/12` loads 4 and masks; the nfproto
        // dependency comes once, before the first network-header match.
        let mut l = Attrs::new();
        compile(
            &[
                Stmt::Saddr("10.77.0.0/16".parse().unwrap()),
                Stmt::Daddr("10.64.0.0/12".parse().unwrap()),
                Stmt::Masquerade,
            ],
            &mut l,
        );
        let exprs: Vec<String> = nftnl::parse_attrs(l.as_slice())
            .map(|(_, e)| {
                let name = nftnl::attr(e, 1).unwrap();
                String::from_utf8_lossy(&name[..name.len() - 1]).into_owned()
            })
            .collect();
        assert_eq!(
            exprs,
            ["meta", "cmp", "payload", "cmp", "payload", "bitwise", "cmp", "masq"]
        );
        let m = Batch(vec![Command::AddRule {
            chain: "c".into(),
            stmts: vec![Stmt::Accept],
        }])
        .messages();
        assert_eq!(
            m[0].flags,
            NLM_F_CREATE | NLM_F_APPEND,
            "appended, as `add rule`"
        );
        assert_eq!(words(&m[0]).len(), 3);
    }

    #[test]
    fn chain_comment_round_trip() {
        let m = Batch(vec![Command::AddChain {
            name: "x".into(),
            base: None,
            comment: Some("minc network n rules 0011".into()),
        }])
        .messages();
        assert_eq!(
            chain_comment(m[0].attrs.as_slice()).as_deref(),
            Some("minc network n rules 0011")
        );
    }
}
