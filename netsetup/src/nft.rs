//! nftables, the language: tables, sets and maps, chains, rules, and how each is sent to the
//! kernel. What minc puts in its tables is in [`crate::rules`].
//!
//! nftables (nft(8)) is the kernel's packet filter and NAT: tables hold chains, a *base* chain
//! hangs on a netfilter hook (prerouting, input, forward, output, postrouting) with a priority,
//! and its rules are lists of expressions. Sets and maps are looked up by rules, so a rule can
//! stay fixed while containers come and go as set elements. A table belongs to a family: `inet`
//! sees IPv4 and IPv6 packets the host routes, `bridge` sees the frames a bridge switches
//! between its ports (which never reach the `inet` hooks).
//!
//! A change is a [`Batch`] of [`Command`]s. The same batch renders as the text `nft -f` reads
//! (`--explain`) and as the netlink messages of [`crate::nftnl`] that the kernel applies as one
//! transaction. Statements compile exactly as nft 1.0 compiles them (dependencies such as
//! `meta nfproto ipv4` before `ip saddr`, short loads for byte-aligned prefixes, registers of
//! concatenations), and sets carry nft's user data, so the kernel holds the same objects
//! whichever way the batch arrived and `nft list` prints the same.

use crate::nftnl::{
    self, Attrs, Msg, MsgType, NFPROTO_BRIDGE, NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6,
    NLM_F_APPEND, NLM_F_CREATE,
};
use crate::Protocol;
use ipnet::IpNet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// minc's tables are all called this (one per family).
pub const TABLE: &str = "minc";
const IFNAMSIZ: usize = 16;

/// The family of one of minc's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `table inet minc`: NAT, published ports, forwarding between networks.
    Inet,
    /// `table bridge minc`: what containers may send into a bridge (anti-spoofing).
    Bridge,
}

impl Family {
    fn word(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
    fn nfproto(self) -> u8 {
        match self {
            Family::Inet => NFPROTO_INET,
            Family::Bridge => NFPROTO_BRIDGE,
        }
    }
}

/// nft data types (`enum datatypes` in nftables' datatype.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    InetService,
    Ipv4Addr,
    Ipv6Addr,
    Ifname,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::InetService => "inet_service",
            Type::Ipv4Addr => "ipv4_addr",
            Type::Ipv6Addr => "ipv6_addr",
            Type::Ifname => "ifname",
        }
    }
    fn id(self) -> u32 {
        match self {
            Type::Ipv4Addr => 7,
            Type::Ipv6Addr => 8,
            Type::InetService => 13,
            Type::Ifname => 41,
        }
    }
    fn len(self) -> u32 {
        match self {
            Type::InetService => 2,
            Type::Ipv4Addr => 4,
            Type::Ipv6Addr => 16,
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

/// A key or data type: one type, or a concatenation (`ipv4_addr . inet_service`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Types(pub Vec<Type>);

impl Types {
    pub fn one(t: Type) -> Types {
        Types(vec![t])
    }
    fn text(&self) -> String {
        self.0
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(" . ")
    }
    /// A concatenation's type id packs its parts, 6 bits each (nft's `concat_subtype_add`).
    fn id(&self) -> u32 {
        self.0.iter().fold(0, |acc, t| (acc << 6) | t.id())
    }
    /// Each part takes a whole number of 32-bit registers.
    fn len(&self) -> u32 {
        if let [one] = self.0.as_slice() {
            return one.len();
        }
        self.0.iter().map(|t| t.len().next_multiple_of(4)).sum()
    }
    fn concat(&self) -> bool {
        self.0.len() > 1
    }
}

/// A set element's key or value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Port(u16),
    Addr(IpAddr),
    Ifname(String),
    /// `a . b`: each part padded to 32 bits.
    Concat(Vec<Value>),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Port(p) => p.to_string(),
            Value::Addr(a) => a.to_string(),
            Value::Ifname(n) => format!("\"{n}\""),
            Value::Concat(v) => v.iter().map(Value::text).collect::<Vec<_>>().join(" . "),
        }
    }
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Value::Port(p) => p.to_be_bytes().to_vec(),
            Value::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            Value::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            Value::Ifname(n) => ifname_bytes(n),
            Value::Concat(v) => v
                .iter()
                .flat_map(|x| {
                    let mut b = x.bytes();
                    b.resize(b.len().next_multiple_of(4), 0);
                    b
                })
                .collect(),
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
    /// `enum nf_inet_hooks` (the bridge family numbers its hooks the same way).
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn of(a: &IpAddr) -> Self {
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

/// `ether type X`: which protocol a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtherType {
    Ip,
    Arp,
    Ip6,
}

impl EtherType {
    fn word(self) -> &'static str {
        match self {
            EtherType::Ip => "ip",
            EtherType::Arp => "arp",
            EtherType::Ip6 => "ip6",
        }
    }
    fn value(self) -> u16 {
        match self {
            EtherType::Ip => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ip6 => 0x86dd,
        }
    }
}

/// A part of a concatenated lookup key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// `iifname`
    Iifname,
    /// `ip saddr` / `ip6 saddr`
    Saddr(IpFamily),
    /// `arp saddr ip`: the sender address of an ARP packet
    ArpSaddr,
}

impl Field {
    fn text(self) -> String {
        match self {
            Field::Iifname => "iifname".into(),
            Field::Saddr(f) => format!("{} saddr", f.word()),
            Field::ArpSaddr => "arp saddr ip".into(),
        }
    }
    fn len(self) -> u32 {
        match self {
            Field::Iifname => IFNAMSIZ as u32,
            Field::Saddr(IpFamily::V4) | Field::ArpSaddr => 4,
            Field::Saddr(IpFamily::V6) => 16,
        }
    }
}

/// One statement of a rule, as written in nft's syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `meta nfproto ipv4|ipv6`
    Nfproto(IpFamily),
    /// `meta l4proto tcp|udp`
    L4proto(Protocol),
    /// `ether type ip|arp|ip6`
    Ether(EtherType),
    /// `fib daddr type local`: the destination is one of this host's addresses.
    FibDaddrLocal,
    /// `ip saddr NET` / `ip6 saddr NET`
    Saddr(IpNet),
    /// `ip saddr != NET` / `ip6 saddr != NET`
    SaddrNot(IpNet),
    /// `ip daddr NET` / `ip6 daddr NET`
    Daddr(IpNet),
    /// `iifname [!=] "NAME"`
    Iifname {
        eq: bool,
        name: String,
    },
    /// `oifname [!=] "NAME"`
    Oifname {
        eq: bool,
        name: String,
    },
    /// `iifname @SET`
    IifIn(String),
    /// `oifname @SET`
    OifIn(String),
    /// `A . B != @SET`: the concatenation is not an element of SET.
    NotIn {
        fields: Vec<Field>,
        set: String,
    },
    /// `ct status dnat` (true) or `ct status & dnat == 0` (false)
    CtDnat(bool),
    /// `ct state established,related`
    CtEstablishedRelated,
    /// `dnat ip|ip6 to [ip daddr .] P dport map @MAP`: the map gives address . port.
    Dnat {
        family: IpFamily,
        proto: Protocol,
        map: String,
        by_daddr: bool,
    },
    Masquerade,
    Accept,
    Drop,
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
            Stmt::Ether(t) => format!("ether type {}", t.word()),
            Stmt::FibDaddrLocal => "fib daddr type local".into(),
            Stmt::Saddr(n) => format!("{} saddr {}", IpFamily::of(&n.addr()).word(), net(n)),
            Stmt::SaddrNot(n) => {
                format!("{} saddr != {}", IpFamily::of(&n.addr()).word(), net(n))
            }
            Stmt::Daddr(n) => format!("{} daddr {}", IpFamily::of(&n.addr()).word(), net(n)),
            Stmt::Iifname { eq, name } => format!("iifname {}\"{name}\"", ne(*eq)),
            Stmt::Oifname { eq, name } => format!("oifname {}\"{name}\"", ne(*eq)),
            Stmt::IifIn(s) => format!("iifname @{s}"),
            Stmt::OifIn(s) => format!("oifname @{s}"),
            Stmt::NotIn { fields, set } => format!(
                "{} != @{set}",
                fields
                    .iter()
                    .map(|f| f.text())
                    .collect::<Vec<_>>()
                    .join(" . ")
            ),
            Stmt::CtDnat(true) => "ct status dnat".into(),
            Stmt::CtDnat(false) => "ct status & dnat == 0".into(),
            Stmt::CtEstablishedRelated => "ct state established,related".into(),
            Stmt::Dnat {
                family,
                proto,
                map,
                by_daddr,
            } => {
                let w = family.word();
                let key = if *by_daddr {
                    format!("{w} daddr . ")
                } else {
                    String::new()
                };
                format!("dnat {w} to {key}{proto} dport map @{map}")
            }
            Stmt::Masquerade => "masquerade".into(),
            Stmt::Accept => "accept".into(),
            Stmt::Drop => "drop".into(),
        }
    }
}

/// A network as nft writes it: a single address without its `/32` or `/128`.
fn net(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

fn ne(eq: bool) -> &'static str {
    if eq {
        ""
    } else {
        "!= "
    }
}

/// One change to a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    AddTable,
    AddMap {
        name: String,
        key: Types,
        data: Types,
    },
    AddSet {
        name: String,
        key: Types,
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
    /// Deletes an empty chain.
    DeleteChain {
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

/// One nft command of a batch: a change to minc's table of one family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub family: Family,
    pub change: Change,
}

impl Command {
    pub fn inet(change: Change) -> Command {
        Command {
            family: Family::Inet,
            change,
        }
    }
    pub fn bridge(change: Change) -> Command {
        Command {
            family: Family::Bridge,
            change,
        }
    }

    /// The line `nft -f` reads for this command.
    pub fn text(&self) -> String {
        let t = format!("{} {TABLE}", self.family.word());
        match &self.change {
            Change::AddTable => format!("add table {t}"),
            Change::AddMap { name, key, data } => format!(
                "add map {t} {name} {{ type {} : {}; }}",
                key.text(),
                data.text()
            ),
            Change::AddSet { name, key } => {
                format!("add set {t} {name} {{ type {}; }}", key.text())
            }
            Change::AddChain {
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
            Change::FlushChain { name } => format!("flush chain {t} {name}"),
            Change::DeleteChain { name } => format!("delete chain {t} {name}"),
            Change::AddRule { chain, stmts } => format!(
                "add rule {t} {chain} {}",
                stmts.iter().map(Stmt::text).collect::<Vec<_>>().join(" ")
            ),
            Change::AddElement { set, key, data } => match data {
                Some(d) => format!("add element {t} {set} {{ {} : {} }}", key.text(), d.text()),
                None => format!("add element {t} {set} {{ {} }}", key.text()),
            },
            Change::DeleteElement { set, key } => {
                format!("delete element {t} {set} {{ {} }}", key.text())
            }
        }
    }
}

/// Commands applied as one transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch(pub Vec<Command>);

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

fn msg(family: Family, ty: MsgType, flags: u16, attrs: Attrs) -> Msg {
    Msg {
        ty,
        flags,
        family: family.nfproto(),
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

/// What nft 1.0 records for a concatenated key or data type (read back from
/// `nft --debug=mnl`; the same for every concatenation minc uses).
const CONCAT_TYPEOF: [u8; 8] = [0, 4, 0x0d, 0, 0, 0, 1, 0];

/// A set's user data as nft writes it: byte orders (0 for a concatenation), the
/// concatenations' records, and for a map that its data is no interval.
fn set_udata(key: &Types, data: Option<&Types>) -> Vec<u8> {
    let order = |t: &Types| match t.0.as_slice() {
        [one] => one.byteorder(),
        _ => 0,
    };
    let key_order = order(key).to_ne_bytes();
    let data_order = data.map(|d| order(d).to_ne_bytes());
    let mut rec: Vec<(u8, &[u8])> = vec![(0, &key_order)]; // NFTNL_UDATA_SET_KEYBYTEORDER
    if let Some(d) = &data_order {
        rec.push((1, d)); // NFTNL_UDATA_SET_DATABYTEORDER
    }
    if key.concat() {
        rec.push((3, &CONCAT_TYPEOF)); // NFTNL_UDATA_SET_KEY_TYPEOF
    }
    if data.is_some_and(Types::concat) {
        rec.push((4, &CONCAT_TYPEOF)); // NFTNL_UDATA_SET_DATA_TYPEOF
    }
    const NOT_INTERVAL: [u8; 4] = [0; 4];
    if data.is_some() {
        rec.push((6, &NOT_INTERVAL)); // NFTNL_UDATA_SET_DATA_INTERVAL
    }
    udata(&rec)
}

fn encode(c: &Command, set_id: &mut u32) -> Msg {
    let f = c.family;
    let mut a = Attrs::new();
    match &c.change {
        Change::AddTable => {
            a.str(1, TABLE).be32(2, 0); // NFTA_TABLE_NAME, NFTA_TABLE_FLAGS
            msg(f, MsgType::NewTable, NLM_F_CREATE, a)
        }
        Change::AddMap { name, key, data } => {
            *set_id += 1;
            a.str(1, TABLE).str(2, name); // NFTA_SET_TABLE, NFTA_SET_NAME
            a.be32(3, 0x8); // NFTA_SET_FLAGS: NFT_SET_MAP
            a.be32(4, key.id()).be32(5, key.len()); // KEY_TYPE, KEY_LEN
            a.be32(6, data.id()).be32(7, data.len()); // DATA_TYPE, DATA_LEN
            a.be32(10, *set_id); // NFTA_SET_ID
            a.bytes(13, &set_udata(key, Some(data))); // NFTA_SET_USERDATA
            msg(f, MsgType::NewSet, NLM_F_CREATE, a)
        }
        Change::AddSet { name, key } => {
            *set_id += 1;
            a.str(1, TABLE).str(2, name);
            a.be32(3, 0);
            a.be32(4, key.id()).be32(5, key.len());
            a.be32(10, *set_id);
            a.bytes(13, &set_udata(key, None));
            msg(f, MsgType::NewSet, NLM_F_CREATE, a)
        }
        Change::AddChain {
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
            msg(f, MsgType::NewChain, NLM_F_CREATE, a)
        }
        Change::FlushChain { name } => {
            a.str(1, TABLE).str(2, name); // NFTA_RULE_TABLE, NFTA_RULE_CHAIN
            msg(f, MsgType::DelRule, 0, a)
        }
        Change::DeleteChain { name } => {
            a.str(1, TABLE).str(3, name);
            msg(f, MsgType::DelChain, 0, a)
        }
        Change::AddRule { chain, stmts } => {
            a.str(1, TABLE).str(2, chain);
            a.nested(4, |list| compile(f, stmts, list)); // NFTA_RULE_EXPRESSIONS
            msg(f, MsgType::NewRule, NLM_F_CREATE | NLM_F_APPEND, a)
        }
        Change::AddElement { set, key, data } => {
            element_attrs(&mut a, set, key, data.as_ref());
            msg(f, MsgType::NewSetElem, NLM_F_CREATE, a)
        }
        Change::DeleteElement { set, key } => {
            element_attrs(&mut a, set, key, None);
            msg(f, MsgType::DelSetElem, 0, a)
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

/// The message asking for one element of a set (its key), or for all of them.
pub fn get_elements(family: Family, set: &str, key: Option<&Value>) -> Msg {
    let mut a = Attrs::new();
    match key {
        Some(k) => element_attrs(&mut a, set, k, None),
        None => {
            a.str(1, TABLE).str(2, set);
        }
    }
    msg(family, MsgType::GetSetElem, 0, a)
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

/// The message asking for one chain of a table.
pub fn get_chain(family: Family, name: &str) -> Msg {
    let mut a = Attrs::new();
    a.str(1, TABLE).str(3, name);
    msg(family, MsgType::GetChain, 0, a)
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

/// The register of the 32-bit word `w` of a value starting at register 1, numbered as nft
/// numbers them: the 128-bit register when the word starts one (`NFT_REG_1 + w/4`), else the
/// 32-bit one (`NFT_REG32_00 + w`).
fn reg_at(w: u32) -> u32 {
    if w.is_multiple_of(4) {
        REG1 + w / 4
    } else {
        8 + w
    }
}

fn expr(list: &mut Attrs, name: &str, f: impl FnOnce(&mut Attrs)) {
    list.nested(1, |e| {
        e.str(1, name); // NFTA_EXPR_NAME
        e.nested(2, f); // NFTA_EXPR_DATA
    });
}

fn meta(list: &mut Attrs, key: u32, dreg: u32) {
    expr(list, "meta", |d| {
        d.be32(2, key).be32(1, dreg); // NFTA_META_KEY, NFTA_META_DREG
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

fn lookup(list: &mut Attrs, set: &str, dreg: Option<u32>, invert: bool) {
    expr(list, "lookup", |d| {
        d.be32(2, REG1); // NFTA_LOOKUP_SREG
        if let Some(r) = dreg {
            d.be32(3, r); // NFTA_LOOKUP_DREG
        }
        d.str(1, set); // NFTA_LOOKUP_SET
        if invert {
            d.be32(5, 1); // NFTA_LOOKUP_FLAGS: NFT_LOOKUP_F_INV
        }
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
const PAYLOAD_LL: u32 = 0;
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

/// (offset, length) of a source or destination address in the network header.
fn addr_offset(fam: IpFamily, src: bool) -> (u32, u32) {
    match (fam, src) {
        (IpFamily::V4, true) => (12, 4),
        (IpFamily::V4, false) => (16, 4),
        (IpFamily::V6, true) => (8, 16),
        (IpFamily::V6, false) => (24, 16),
    }
}

/// Loads `field` into the register of word `w`.
fn load(list: &mut Attrs, field: Field, w: u32) {
    match field {
        Field::Iifname => meta(list, META_IIFNAME, reg_at(w)),
        Field::Saddr(f) => {
            let (off, len) = addr_offset(f, true);
            payload(list, PAYLOAD_NETWORK, off, len, reg_at(w));
        }
        Field::ArpSaddr => payload(list, PAYLOAD_NETWORK, 14, 4, reg_at(w)),
    }
}

/// Compiles a rule's statements into its expression list. In an `inet` table nft adds
/// `meta nfproto` before a network-header match unless the rule already has it; in a
/// `bridge` table rules carry their `ether type` themselves.
fn compile(family: Family, stmts: &[Stmt], list: &mut Attrs) {
    let mut nfproto: Option<IpFamily> = None;
    let mut need_family = |list: &mut Attrs, f: IpFamily| {
        if family == Family::Inet && nfproto != Some(f) {
            meta(list, META_NFPROTO, REG1);
            cmp(list, 0, &[f.nfproto()]);
            nfproto = Some(f);
        }
    };
    for s in stmts {
        match s {
            Stmt::Nfproto(f) => need_family(list, *f),
            Stmt::L4proto(p) => {
                meta(list, META_L4PROTO, REG1);
                cmp(list, 0, &[l4num(*p)]);
            }
            Stmt::Ether(t) => {
                payload(list, PAYLOAD_LL, 12, 2, REG1);
                cmp(list, 0, &t.value().to_be_bytes());
            }
            Stmt::FibDaddrLocal => {
                expr(list, "fib", |d| {
                    // NFTA_FIB_FLAGS: daddr, NFTA_FIB_RESULT: addrtype, NFTA_FIB_DREG
                    d.be32(3, 1 << 1).be32(2, 3).be32(1, REG1);
                });
                cmp(list, 0, &2u32.to_ne_bytes()); // RTN_LOCAL
            }
            Stmt::Saddr(n) | Stmt::SaddrNot(n) | Stmt::Daddr(n) => {
                let fam = IpFamily::of(&n.addr());
                need_family(list, fam);
                let (off, alen) = addr_offset(fam, !matches!(s, Stmt::Daddr(_)));
                let op = u32::from(matches!(s, Stmt::SaddrNot(_)));
                let bytes = Value::Addr(n.network()).bytes();
                let plen = n.prefix_len() as usize;
                if plen.is_multiple_of(8) {
                    // Byte-aligned: load only the prefix bytes.
                    let l = plen / 8;
                    payload(list, PAYLOAD_NETWORK, off, l as u32, REG1);
                    cmp(list, op, &bytes[..l]);
                } else {
                    payload(list, PAYLOAD_NETWORK, off, alen, REG1);
                    bitwise(list, &Value::Addr(n.netmask()).bytes());
                    cmp(list, op, &bytes);
                }
            }
            Stmt::Iifname { eq, name } | Stmt::Oifname { eq, name } => {
                let key = if matches!(s, Stmt::Iifname { .. }) {
                    META_IIFNAME
                } else {
                    META_OIFNAME
                };
                meta(list, key, REG1);
                cmp(list, u32::from(!*eq), &ifname_bytes(name));
            }
            Stmt::IifIn(set) | Stmt::OifIn(set) => {
                let key = if matches!(s, Stmt::IifIn(_)) {
                    META_IIFNAME
                } else {
                    META_OIFNAME
                };
                meta(list, key, REG1);
                lookup(list, set, None, false);
            }
            Stmt::NotIn { fields, set } => {
                let mut w = 0;
                for f in fields {
                    load(list, *f, w);
                    w += f.len().div_ceil(4);
                }
                lookup(list, set, None, true);
            }
            Stmt::CtDnat(set) => {
                expr(list, "ct", |d| {
                    d.be32(2, CT_STATUS).be32(1, REG1);
                });
                bitwise(list, &IPS_DST_NAT.to_ne_bytes());
                cmp(list, u32::from(*set), &0u32.to_ne_bytes());
            }
            Stmt::CtEstablishedRelated => {
                expr(list, "ct", |d| {
                    d.be32(2, CT_STATE).be32(1, REG1);
                });
                bitwise(list, &CT_ESTABLISHED_RELATED.to_ne_bytes());
                cmp(list, 1, &0u32.to_ne_bytes());
            }
            Stmt::Dnat {
                family: fam,
                map,
                by_daddr,
                ..
            } => {
                let alen = match fam {
                    IpFamily::V4 => 4,
                    IpFamily::V6 => 16,
                };
                if *by_daddr {
                    // Key `daddr . dport`, the port in the word after the address.
                    let (off, len) = addr_offset(*fam, false);
                    payload(list, PAYLOAD_NETWORK, off, len, REG1);
                    payload(list, PAYLOAD_TRANSPORT, 2, 2, reg_at(alen / 4));
                } else {
                    payload(list, PAYLOAD_TRANSPORT, 2, 2, REG1);
                }
                // Data `address . port` lands at register 1: the port follows the address.
                lookup(list, map, Some(REG1), false);
                expr(list, "nat", |d| {
                    d.be32(1, 1); // NFTA_NAT_TYPE: NFT_NAT_DNAT
                    d.be32(2, fam.nfproto() as u32); // NFTA_NAT_FAMILY
                    d.be32(3, REG1); // NFTA_NAT_REG_ADDR_MIN
                    d.be32(5, reg_at(alen / 4)); // NFTA_NAT_REG_PROTO_MIN
                    d.be32(7, 0x2); // NFTA_NAT_FLAGS: NF_NAT_RANGE_PROTO_SPECIFIED
                });
            }
            Stmt::Masquerade => expr(list, "masq", |_| {}),
            Stmt::Accept => verdict(list, 1),
            Stmt::Drop => verdict(list, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr_names(l: &Attrs) -> Vec<String> {
        nftnl::parse_attrs(l.as_slice())
            .map(|(_, e)| {
                let name = nftnl::attr(e, 1).unwrap();
                String::from_utf8_lossy(&name[..name.len() - 1]).into_owned()
            })
            .collect()
    }

    /// The value of attribute `ty` of the `n`th expression's data.
    fn expr_attr(l: &Attrs, n: usize, ty: u16) -> Vec<u8> {
        let (_, e) = nftnl::parse_attrs(l.as_slice()).nth(n).unwrap();
        let data = nftnl::attr(e, 2).unwrap();
        nftnl::attr(data, ty).unwrap().to_vec()
    }

    #[test]
    fn elements_render_and_encode() {
        let ip: IpAddr = "10.77.0.2".parse().unwrap();
        let add = Command::inet(Change::AddElement {
            set: "tcp4".into(),
            key: Value::Port(8080),
            data: Some(Value::Concat(vec![Value::Addr(ip), Value::Port(8000)])),
        });
        let del = Command::bridge(Change::DeleteElement {
            set: "spoof4".into(),
            key: Value::Concat(vec![Value::Ifname("veth1".into()), Value::Addr(ip)]),
        });
        let b = Batch(vec![add, del]);
        assert_eq!(
            b.text(),
            "add element inet minc tcp4 { 8080 : 10.77.0.2 . 8000 }\n\
             delete element bridge minc spoof4 { \"veth1\" . 10.77.0.2 }\n"
        );
        let m = b.messages();
        assert_eq!((m[0].ty, m[0].family), (MsgType::NewSetElem, NFPROTO_INET));
        assert_eq!(
            (m[1].ty, m[1].family),
            (MsgType::DelSetElem, NFPROTO_BRIDGE)
        );
        // The wire form nft sends (from `nft --debug=mnl`): port padded to 4 bytes in data.
        let el = nftnl::attr(m[0].attrs.as_slice(), 3).unwrap();
        assert_eq!(
            el,
            &[
                0x20, 0, 1, 0x80, 0x0c, 0, 1, 0x80, 6, 0, 1, 0, 0x1f, 0x90, 0, 0, 0x10, 0, 2, 0x80,
                0x0c, 0, 1, 0, 10, 77, 0, 2, 0x1f, 0x40, 0, 0
            ]
        );
        assert_eq!(
            parse_elements(&[m[0].attrs.as_slice().to_vec()]),
            vec![(vec![0x1f, 0x90], vec![10, 77, 0, 2, 0x1f, 0x40, 0, 0])]
        );
        let key = nftnl::attr(m[1].attrs.as_slice(), 3).unwrap();
        assert_eq!(key.len(), 4 + 4 + 4 + 20, "ifname (16) . ipv4 (4)");
    }

    #[test]
    fn sets_carry_nfts_type_ids_and_user_data() {
        // As `nft --debug=mnl` sends `map tcp4_ip { type ipv4_addr . inet_service :
        // ipv4_addr . inet_service; }` and `set spoof4 { type ifname . ipv4_addr; }`.
        let v4port = Types(vec![Type::Ipv4Addr, Type::InetService]);
        let m = encode(
            &Command::inet(Change::AddMap {
                name: "tcp4_ip".into(),
                key: v4port.clone(),
                data: v4port,
            }),
            &mut 0,
        );
        let at = |ty| nftnl::attr(m.attrs.as_slice(), ty).unwrap().to_vec();
        assert_eq!(at(4), 0x1cdu32.to_be_bytes(), "7 << 6 | 13");
        assert_eq!(at(5), 8u32.to_be_bytes());
        assert_eq!(
            at(13),
            [
                0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 0x0d, 0, 0, 0, 1, 0, 4, 8, 0, 4,
                0x0d, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0
            ]
        );
        let s = encode(
            &Command::bridge(Change::AddSet {
                name: "spoof6".into(),
                key: Types(vec![Type::Ifname, Type::Ipv6Addr]),
            }),
            &mut 0,
        );
        assert_eq!(s.family, NFPROTO_BRIDGE);
        let at = |ty| nftnl::attr(s.attrs.as_slice(), ty).unwrap().to_vec();
        assert_eq!(at(4), ((41u32 << 6) | 8).to_be_bytes());
        assert_eq!(at(5), 32u32.to_be_bytes());
        assert_eq!(at(13), [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 0x0d, 0, 0, 0, 1, 0]);
    }

    #[test]
    fn statements_compile_as_nft_does() {
        // `ip saddr 10.77.0.0/16` loads 2 bytes; `/12` loads 4 and masks; the nfproto
        // dependency comes once, before the first network-header match.
        let mut l = Attrs::new();
        compile(
            Family::Inet,
            &[
                Stmt::Saddr("10.77.0.0/16".parse().unwrap()),
                Stmt::Daddr("10.64.0.0/12".parse().unwrap()),
                Stmt::Masquerade,
            ],
            &mut l,
        );
        assert_eq!(
            expr_names(&l),
            ["meta", "cmp", "payload", "cmp", "payload", "bitwise", "cmp", "masq"]
        );
        let m = Batch(vec![Command::inet(Change::AddRule {
            chain: "c".into(),
            stmts: vec![Stmt::Accept],
        })])
        .messages();
        assert_eq!(
            m[0].flags,
            NLM_F_CREATE | NLM_F_APPEND,
            "appended, as `add rule`"
        );
    }

    #[test]
    fn dnat_by_address_uses_nfts_registers() {
        // `dnat ip to ip daddr . tcp dport map @tcp4_ip`: daddr in reg 1, dport in reg 9
        // (NFT_REG32_01), NAT port from reg 9; for IPv6 the port follows 16 bytes: reg 2.
        for (fam, port_reg) in [(IpFamily::V4, 9), (IpFamily::V6, 2)] {
            let mut l = Attrs::new();
            let stmt = Stmt::Dnat {
                family: fam,
                proto: Protocol::Tcp,
                map: "m".into(),
                by_daddr: true,
            };
            compile(Family::Inet, &[stmt], &mut l);
            assert_eq!(expr_names(&l), ["payload", "payload", "lookup", "nat"]);
            assert_eq!(expr_attr(&l, 1, 1), (port_reg as u32).to_be_bytes());
            assert_eq!(expr_attr(&l, 3, 5), (port_reg as u32).to_be_bytes());
        }
        assert_eq!(
            Stmt::Dnat {
                family: IpFamily::V6,
                proto: Protocol::Udp,
                map: "udp6_ip".into(),
                by_daddr: true
            }
            .text(),
            "dnat ip6 to ip6 daddr . udp dport map @udp6_ip"
        );
    }

    #[test]
    fn anti_spoof_rule_compiles_as_nft_does() {
        // `iifname . ip6 saddr != @spoof6` (bridge family): iifname in reg 1, the address
        // after 16 bytes in reg 2, an inverted lookup; no nfproto dependency.
        let mut l = Attrs::new();
        let stmts = [
            Stmt::IifIn("ports".into()),
            Stmt::Ether(EtherType::Ip6),
            Stmt::SaddrNot("fe80::/10".parse().unwrap()),
            Stmt::NotIn {
                fields: vec![Field::Iifname, Field::Saddr(IpFamily::V6)],
                set: "spoof6".into(),
            },
            Stmt::Drop,
        ];
        compile(Family::Bridge, &stmts, &mut l);
        assert_eq!(
            expr_names(&l),
            [
                "meta",
                "lookup",
                "payload",
                "cmp",
                "payload",
                "bitwise",
                "cmp",
                "meta",
                "payload",
                "lookup",
                "immediate"
            ]
        );
        assert_eq!(&expr_attr(&l, 3, 3)[4..6], &[0x86, 0xdd], "ether type ip6");
        assert_eq!(expr_attr(&l, 8, 1), 2u32.to_be_bytes(), "saddr into reg 2");
        assert_eq!(expr_attr(&l, 9, 5), 1u32.to_be_bytes(), "inverted");
        assert_eq!(
            stmts.iter().map(Stmt::text).collect::<Vec<_>>().join(" "),
            "iifname @ports ether type ip6 ip6 saddr != fe80::/10 iifname . ip6 saddr != @spoof6 drop"
        );
    }

    #[test]
    fn chain_comment_round_trip() {
        let m = Batch(vec![Command::inet(Change::AddChain {
            name: "x".into(),
            base: None,
            comment: Some("minc network n rules 0011".into()),
        })])
        .messages();
        assert_eq!(
            chain_comment(m[0].attrs.as_slice()).as_deref(),
            Some("minc network n rules 0011")
        );
    }
}
