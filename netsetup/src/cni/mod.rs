//! CNI plugin mode (spec 0.3.x, 0.4.0, 1.0.0 and 1.1.0): ADD, DEL, CHECK, VERSION, STATUS, GC.
//!
//! The Container Network Interface (github.com/containernetworking/cni, SPEC.md) is how
//! Kubernetes runtimes (containerd, CRI-O) wire pods: they exec the plugin named by the network
//! config's `type`, with the command and container in `CNI_*` variables and the config on stdin,
//! and read a result (or an error object) from stdout. `netsetup` is such a plugin when
//! `CNI_COMMAND` is set.
//!
//! Config keys (all optional besides cniVersion/name/type), read as Go plugins read them
//! (field names case-insensitive, see [`gojson`]): `bridge`, `subnet`, `gateway`, `mtu`,
//! `dataDir`, `dns` (CNI's `{"nameservers", "domain", "search", "options"}`, or a list of
//! nameservers), `prevResult`, and the `runtimeConfig` capabilities:
//! - `portMappings`: `[{"hostPort", "containerPort", "protocol", "hostIP"}]` (an empty,
//!   `0.0.0.0` or `::` `hostIP` is every host address);
//! - `ipRanges`: `[[{"subnet", "rangeStart", "rangeEnd", "gateway"}]]`, the first IPv4 range
//!   replaces the configured subnet (IPv6 ranges are refused: not supported yet);
//! - `dns`: `{"servers", "searches", "options"}`, overriding the config's;
//! - `bandwidth`: not supported by netsetup itself (refused with a message that says so);
//!   chain the reference `bandwidth` plugin after netsetup, which finds the host veth in
//!   netsetup's result.
//!
//! ADD is idempotent: an ADD for a container that already has state on the network (a retry,
//! or a crashed ADD) connects it again and answers the same. DEL never fails on what stdin
//! holds: it releases what netsetup's saved state says. GC releases every attachment not
//! listed in `cni.dev/valid-attachments`.

mod gojson;
mod result;

use crate::{AddrRange, Error, Network, PortMapping, Protocol, Request};
use gojson::GoValue;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
const LATEST: &str = "1.1.0";

/// CNI error codes (SPEC.md, "Error").
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const GENERIC: u32 = 100;
}

/// A CNI error: spec code plus message.
#[derive(Debug)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

impl CniError {
    fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        let c = match &e {
            Error::Config(_) | Error::InvalidPort { .. } | Error::InvalidId(_) => {
                code::INVALID_CONFIG
            }
            Error::NotAllocated { .. } => code::UNKNOWN_CONTAINER,
            Error::Io { .. } | Error::State { .. } => code::IO,
            Error::PoolExhausted(_) => code::TRY_LATER,
            _ => code::GENERIC,
        };
        CniError::new(c, e.to_string())
    }
}

/// The environment a CNI runtime passes.
pub struct Env {
    pub command: String,
    pub container_id: Option<String>,
    pub netns: Option<PathBuf>,
    pub ifname: Option<String>,
}

impl Env {
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            command: var("CNI_COMMAND").unwrap_or_default(),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS").map(PathBuf::from),
            ifname: var("CNI_IFNAME"),
        }
    }
}

/// Runs the plugin against the real environment and stdin; prints the result or the error.
pub fn main() -> ExitCode {
    let env = Env::from_process();
    let mut stdin = String::new();
    // A config is small; more than 1 MiB is not one.
    let _ = std::io::stdin().take(1 << 20).read_to_string(&mut stdin);
    let version = gojson::parse(&stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(String::from))
        .filter(|v| SUPPORTED.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST.into());
    match run(&env, &stdin) {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let mut o = json!({"cniVersion": version, "code": e.code, "msg": e.msg});
            if !e.details.is_empty() {
                o["details"] = json!(e.details);
            }
            println!("{o}");
            ExitCode::FAILURE
        }
    }
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::new(code::INVALID_CONFIG, msg)
}

fn need<'a, T>(v: &'a Option<T>, name: &str) -> Result<&'a T, CniError> {
    v.as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, format!("{name} is not set")))
}

fn string_of(v: &GoValue, what: &str) -> Result<String, CniError> {
    v.as_str()
        .map(String::from)
        .ok_or_else(|| bad(format!("{what}: expected a string, got {}", v.kind())))
}

fn ip_of(v: &GoValue, what: &str) -> Result<IpAddr, CniError> {
    let s = string_of(v, what)?;
    s.parse()
        .map_err(|_| bad(format!("{what}: {s:?} is not an IP address")))
}

fn strings(v: Option<&GoValue>, what: &str) -> Result<Vec<String>, CniError> {
    match v {
        None => Ok(vec![]),
        Some(v) => v
            .as_array()
            .ok_or_else(|| bad(format!("{what}: expected a list, got {}", v.kind())))?
            .iter()
            .map(|x| string_of(x, what))
            .collect(),
    }
}

/// The network config, parsed.
struct Conf {
    version: String,
    doc: GoValue,
}

impl Conf {
    fn parse(stdin: &str) -> Result<Conf, CniError> {
        let doc = gojson::parse(stdin)
            .map_err(|e| CniError::new(code::DECODE, format!("network config: {e}")))?;
        if !matches!(doc, GoValue::Object(_)) {
            return Err(CniError::new(
                code::DECODE,
                format!("network config: expected an object, got {}", doc.kind()),
            ));
        }
        let version = match doc.get("cniVersion") {
            Some(v) => string_of(v, "cniVersion")?,
            None => "0.1.0".into(), // what Go's libcni assumes without one
        };
        if !SUPPORTED.contains(&version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {version} is not supported (supported: {})",
                    SUPPORTED.join(", ")
                ),
            ));
        }
        Ok(Conf { version, doc })
    }

    fn runtime(&self, key: &str) -> Option<&GoValue> {
        self.doc.get("runtimeConfig")?.get(key)
    }

    /// The network: the config's keys over netsetup's defaults, `ipRanges` over those.
    fn network(&self) -> Result<Network, CniError> {
        let d = &self.doc;
        let mut n = Network::default();
        if let Some(v) = d.get("name") {
            n.name = string_of(v, "name")?;
        }
        if let Some(v) = d.get("bridge") {
            n.bridge = string_of(v, "bridge")?;
        }
        if let Some(v) = d.get("subnet") {
            let s = string_of(v, "subnet")?;
            n.subnet = s.parse().map_err(|e| bad(format!("subnet {s:?}: {e}")))?;
            n.gateway = Ipv4Addr::from(u32::from(n.subnet.network()) + 1);
        }
        if let Some(v) = d.get("gateway") {
            n.gateway = match ip_of(v, "gateway")? {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => {
                    return Err(bad(format!("gateway {a}: IPv6 is not supported yet")))
                }
            };
        }
        if let Some(v) = d.get("mtu") {
            let m = v
                .as_i64()
                .and_then(|m| u32::try_from(m).ok())
                .ok_or_else(|| bad(format!("mtu: expected a number, got {}", v.kind())))?;
            n.mtu = Some(m);
        }
        if let Some(v) = d.get("dataDir") {
            n.data_dir = string_of(v, "dataDir")?.into();
        }
        if let Some(ranges) = self.runtime("ipRanges") {
            apply_ip_ranges(&mut n, ranges)?;
        }
        n.validate()?;
        Ok(n)
    }

    fn ports(&self) -> Result<Vec<PortMapping>, CniError> {
        let Some(list) = self.runtime("portMappings") else {
            return Ok(vec![]);
        };
        let list = list.as_array().ok_or_else(|| {
            bad(format!(
                "portMappings: expected a list, got {}",
                list.kind()
            ))
        })?;
        list.iter().map(port).collect()
    }

    fn prev_result(&self) -> Option<Value> {
        self.doc.get("prevResult").map(GoValue::to_json)
    }

    /// `runtimeConfig.bandwidth` with any non-zero rate is refused: netsetup does not shape.
    fn refuse_bandwidth(&self) -> Result<(), CniError> {
        let Some(b) = self.runtime("bandwidth") else {
            return Ok(());
        };
        let set = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"]
            .iter()
            .any(|k| b.get(k).and_then(GoValue::as_i64).unwrap_or(0) != 0);
        if set {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                "runtimeConfig.bandwidth: netsetup does not shape traffic; chain the bandwidth plugin after netsetup",
            ));
        }
        Ok(())
    }
}

/// `ipRanges`: a list of range sets; the first IPv4 range gives subnet, gateway and pool.
fn apply_ip_ranges(n: &mut Network, ranges: &GoValue) -> Result<(), CniError> {
    let sets = ranges
        .as_array()
        .ok_or_else(|| bad(format!("ipRanges: expected a list, got {}", ranges.kind())))?;
    let r = sets
        .iter()
        .flat_map(|s| s.as_array().unwrap_or_default())
        .next()
        .ok_or_else(|| bad("ipRanges: no range given"))?;
    let s = string_of(
        r.get("subnet")
            .ok_or_else(|| bad("ipRanges: a range has no subnet"))?,
        "ipRanges subnet",
    )?;
    let net: ipnet::IpNet = s
        .parse()
        .map_err(|e| bad(format!("ipRanges subnet {s:?}: {e}")))?;
    let ipnet::IpNet::V4(v4) = net else {
        return Err(bad(format!(
            "ipRanges subnet {s}: IPv6 is not supported yet"
        )));
    };
    n.subnet = v4.trunc();
    n.gateway = match r.get("gateway") {
        Some(g) => match ip_of(g, "ipRanges gateway")? {
            IpAddr::V4(a) => a,
            IpAddr::V6(a) => return Err(bad(format!("ipRanges gateway {a}: not IPv4"))),
        },
        None => Ipv4Addr::from(u32::from(v4.network()) + 1),
    };
    let start = r
        .get("rangeStart")
        .map(|v| ip_of(v, "rangeStart"))
        .transpose()?;
    let end = r
        .get("rangeEnd")
        .map(|v| ip_of(v, "rangeEnd"))
        .transpose()?;
    if start.is_some() || end.is_some() {
        n.range = Some(AddrRange {
            start: start.unwrap_or(IpAddr::V4(v4.network())),
            end: end.unwrap_or(IpAddr::V4(v4.broadcast())),
        });
    }
    Ok(())
}

/// One `portMappings` entry.
fn port(v: &GoValue) -> Result<PortMapping, CniError> {
    let num = |key: &str| -> Result<u16, CniError> {
        let x = v
            .get(key)
            .ok_or_else(|| bad(format!("portMappings: {key} is missing")))?;
        x.as_i64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n != 0)
            .ok_or_else(|| bad(format!("portMappings: {key} must be a port number 1-65535")))
    };
    let protocol: Protocol = match v.get("protocol") {
        Some(p) => string_of(p, "portMappings protocol")?.parse()?,
        None => Protocol::Tcp,
    };
    let host_ip = match v.get("hostIP") {
        Some(h) => {
            let h = string_of(h, "portMappings hostIP")?;
            match h.as_str() {
                "" => None,
                h => Some(h.parse::<IpAddr>().map_err(|_| {
                    bad(format!("portMappings: hostIP {h:?} is not an IP address"))
                })?),
            }
        }
        None => None,
    };
    Ok(PortMapping {
        // Every address, as Docker and the portmap plugin read 0.0.0.0 and ::.
        host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
        host_port: num("hostPort")?,
        container_port: num("containerPort")?,
        protocol,
    })
}

/// The DNS settings to report: `runtimeConfig.dns` over the config's `dns`.
#[derive(Default)]
struct Dns {
    nameservers: Vec<IpAddr>,
    domain: Option<String>,
    search: Vec<String>,
    options: Vec<String>,
}

fn dns(c: &Conf) -> Result<Dns, CniError> {
    let mut d = Dns::default();
    match c.doc.get("dns") {
        None => {}
        Some(GoValue::Array(list)) => {
            d.nameservers = list
                .iter()
                .map(|v| ip_of(v, "dns"))
                .collect::<Result<_, _>>()?;
        }
        Some(o @ GoValue::Object(_)) => {
            d.nameservers = strings(o.get("nameservers"), "dns nameservers")?
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|_| bad(format!("dns: {s:?} is not an IP address")))
                })
                .collect::<Result<_, _>>()?;
            d.domain = o
                .get("domain")
                .map(|v| string_of(v, "dns domain"))
                .transpose()?;
            d.search = strings(o.get("search"), "dns search")?;
            d.options = strings(o.get("options"), "dns options")?;
        }
        Some(other) => {
            return Err(bad(format!(
                "dns: expected an object, got {}",
                other.kind()
            )))
        }
    }
    if let Some(r) = c.runtime("dns") {
        let servers = strings(r.get("servers"), "runtimeConfig dns servers")?;
        if !servers.is_empty() {
            d.nameservers = servers
                .iter()
                .map(|s| {
                    s.parse()
                        .map_err(|_| bad(format!("runtimeConfig dns: {s:?} is not an IP address")))
                })
                .collect::<Result<_, _>>()?;
        }
        let searches = strings(r.get("searches"), "runtimeConfig dns searches")?;
        if !searches.is_empty() {
            d.search = searches;
        }
        let options = strings(r.get("options"), "runtimeConfig dns options")?;
        if !options.is_empty() {
            d.options = options;
        }
    }
    Ok(d)
}

fn version_at_least(v: &str, min: &str) -> bool {
    let p = |s: &str| -> Vec<u32> { s.split('.').map(|x| x.parse().unwrap_or(0)).collect() };
    p(v) >= p(min)
}

/// The plugin's logic, testable without a process: returns what goes to stdout.
pub fn run(env: &Env, stdin: &str) -> Result<Option<String>, CniError> {
    match env.command.as_str() {
        "VERSION" => Ok(Some(
            json!({"cniVersion": LATEST, "supportedVersions": SUPPORTED}).to_string(),
        )),
        "ADD" => add(env, stdin).map(Some),
        "DEL" => del(env, stdin).map(|()| None),
        "CHECK" => check(env, stdin).map(|()| None),
        "STATUS" => {
            let c = Conf::parse(stdin)?;
            let net = c.network()?;
            crate::status(&net).map_err(|e| CniError::new(code::NOT_AVAILABLE, e.to_string()))?;
            Ok(None)
        }
        "GC" => gc(stdin).map(|()| None),
        other => Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"),
        )),
    }
}

fn add(env: &Env, stdin: &str) -> Result<String, CniError> {
    let c = Conf::parse(stdin)?;
    let net = c.network()?;
    let id = need(&env.container_id, "CNI_CONTAINERID")?;
    let netns = need(&env.netns, "CNI_NETNS")?;
    let ifname = need(&env.ifname, "CNI_IFNAME")?;
    c.refuse_bandwidth()?;
    let mut d = dns(&c)?;
    let req = Request {
        id: id.clone(),
        hostname: None,
        ports: c.ports()?.into_iter().map(Into::into).collect(),
        dns: d.nameservers.clone(),
        files_dir: None,
        ifname: Some(ifname.clone()),
        ..Default::default()
    };
    let att = crate::reattach(&net, &req, netns)?;
    let a = &att.allocation;
    if d.nameservers.is_empty() {
        d.nameservers = a.nameservers.clone();
    }
    if d.search.is_empty() {
        d.search = a.search.clone();
    }
    if d.options.is_empty() {
        d.options = a.options.clone();
    }
    Ok(result::add(&c.version, &att, netns, &d, c.prev_result().as_ref()).to_string())
}

/// Never fails on stdin: whatever parses is used, the rest defaults, and the saved state
/// says what to release.
fn del(env: &Env, stdin: &str) -> Result<(), CniError> {
    let id = need(&env.container_id, "CNI_CONTAINERID")?;
    if crate::types::validate_id(id).is_err() {
        return Ok(()); // netsetup never made state for such an id
    }
    let net = lenient_network(stdin);
    if let (Some(ifname), Some(st)) = (&env.ifname, crate::state::load(&net, id).ok().flatten()) {
        if st.ifname != *ifname {
            return Ok(()); // another attachment of this container, not this one
        }
    }
    crate::detach(&net, id)?;
    Ok(())
}

/// The network of a DEL's config, taking what parses: the full config if it is valid, else its
/// name and dataDir (which locate the saved state), else the defaults.
fn lenient_network(stdin: &str) -> Network {
    if let Ok(n) = Conf::parse(stdin).and_then(|c| c.network()) {
        return n;
    }
    let mut n = Network::default();
    if let Ok(doc) = gojson::parse(stdin) {
        if let Some(name) = doc.get("name").and_then(GoValue::as_str) {
            n.name = name.into();
        }
        if let Some(d) = doc.get("dataDir").and_then(GoValue::as_str) {
            n.data_dir = d.into();
        }
        if let Some(b) = doc.get("bridge").and_then(GoValue::as_str) {
            n.bridge = b.into();
        }
    }
    n
}

fn check(env: &Env, stdin: &str) -> Result<(), CniError> {
    let c = Conf::parse(stdin)?;
    if !version_at_least(&c.version, "0.4.0") {
        return Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!(
                "CHECK needs cniVersion 0.4.0 or later, the config says {}",
                c.version
            ),
        ));
    }
    let net = c.network()?;
    let id = need(&env.container_id, "CNI_CONTAINERID")?;
    need(&env.netns, "CNI_NETNS")?;
    let ifname = need(&env.ifname, "CNI_IFNAME")?;
    let prev = c
        .prev_result()
        .ok_or_else(|| bad("CHECK needs prevResult"))?;
    let a = crate::allocation(&net, id)?.ok_or_else(|| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("container {id} is not on network {}", net.name),
        )
    })?;
    let st = crate::state::load(&net, id).ok().flatten();
    if st.as_ref().is_some_and(|s| s.ifname != *ifname) {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("container {id} is not on network {} as {ifname}", net.name),
        ));
    }
    let addr = format!("{}/{}", a.ip, a.prefix_len);
    let listed = prev["ips"]
        .as_array()
        .is_some_and(|ips| ips.iter().any(|i| i["address"] == addr.as_str()));
    if !listed {
        return Err(bad(format!(
            "prevResult does not list {addr}, the address of {id}"
        )));
    }
    crate::check(&net, id)?;
    Ok(())
}

fn gc(stdin: &str) -> Result<(), CniError> {
    let c = Conf::parse(stdin)?;
    let net = c.network()?;
    let list = c
        .doc
        .get("cni.dev/valid-attachments")
        .ok_or_else(|| bad("GC needs cni.dev/valid-attachments"))?;
    let list = list.as_array().ok_or_else(|| {
        bad(format!(
            "cni.dev/valid-attachments: expected a list, got {}",
            list.kind()
        ))
    })?;
    let mut keep = Vec::new();
    for a in list {
        let id = a.get("containerID").and_then(GoValue::as_str);
        let ifname = a.get("ifname").and_then(GoValue::as_str);
        match (id, ifname) {
            (Some(i), Some(f)) => keep.push((i.to_string(), f.to_string())),
            _ => {
                return Err(bad(
                    "cni.dev/valid-attachments: each needs containerID and ifname",
                ))
            }
        }
    }
    crate::gc_except(&net, &|id, ifname| {
        keep.iter().any(|(i, f)| i == id && f == ifname)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(cmd: &str) -> Env {
        Env {
            command: cmd.into(),
            container_id: Some("c1".into()),
            netns: None,
            ifname: None,
        }
    }

    #[test]
    fn version() {
        let out = run(&env("VERSION"), r#"{"cniVersion":"1.1.0"}"#)
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        let list: Vec<&str> = v["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        for want in ["0.4.0", "1.0.0", "1.1.0"] {
            assert!(list.contains(&want), "{list:?}");
        }
    }

    fn conf(s: &str) -> Conf {
        Conf::parse(s).unwrap()
    }

    #[test]
    fn config_parsing() {
        let c = conf(
            r#"{"cniVersion":"1.0.0","name":"n1","type":"netsetup","subnet":"10.88.0.0/24","dns":{"nameservers":["10.0.0.53"],"search":["a.example"]},
               "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp"}]}}"#,
        );
        let n = c.network().unwrap();
        assert_eq!(
            (n.name.as_str(), n.gateway),
            ("n1", Ipv4Addr::new(10, 88, 0, 1))
        );
        let d = dns(&c).unwrap();
        assert_eq!(d.nameservers, vec!["10.0.0.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(d.search, ["a.example"]);
        assert_eq!(c.ports().unwrap()[0].to_string(), "8080:80/udp");
    }

    #[test]
    fn go_cni_port_keys() {
        // As containerd's go-cni sends them.
        let c = conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"netsetup","runtimeConfig":{"portMappings":[
                {"HostPort":18080,"ContainerPort":8080,"Protocol":"tcp","HostIP":""},
                {"hostport":53,"containerport":5353,"protocol":"UDP"}]}}"#,
        );
        let p = c.ports().unwrap();
        assert_eq!(p[0].to_string(), "18080:8080/tcp");
        assert_eq!(p[1].to_string(), "53:5353/udp");
        let one = conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"t","runtimeConfig":{"portMappings":[
                {"hostPort":1,"containerPort":2,"hostIP":"192.0.2.1"},{"hostPort":3,"containerPort":4,"hostIP":"::"}]}}"#,
        );
        let p = one.ports().unwrap();
        assert_eq!(p[0].to_string(), "192.0.2.1:1:2/tcp");
        assert_eq!(p[1].to_string(), "3:4/tcp", ":: is every address");
        for (bad_entry, why) in [
            (r#"{"hostPort":0,"containerPort":1}"#, "hostPort must be"),
            (r#"{"hostPort":"80","containerPort":1}"#, "hostPort must be"),
            (
                r#"{"hostPort":70000,"containerPort":1}"#,
                "hostPort must be",
            ),
            (r#"{"containerPort":1}"#, "hostPort is missing"),
            (
                r#"{"hostPort":1,"containerPort":1,"protocol":"sctp"}"#,
                "tcp or udp",
            ),
            (
                r#"{"hostPort":1,"containerPort":1,"hostIP":"192.0.2.x"}"#,
                "not an IP address",
            ),
        ] {
            let c = conf(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"t","runtimeConfig":{{"portMappings":[{bad_entry}]}}}}"#
            ));
            let e = c.ports().unwrap_err();
            assert!(e.msg.contains(why), "{bad_entry}: {}", e.msg);
        }
    }

    #[test]
    fn ip_ranges_dns_and_bandwidth() {
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","subnet":"10.1.0.0/16","runtimeConfig":{
                "ipRanges":[[{"subnet":"10.99.7.0/24","rangeStart":"10.99.7.50","rangeEnd":"10.99.7.60"}]],
                "dns":{"servers":["192.0.2.53"],"searches":["svc.example"],"options":["ndots:5"]},
                "bandwidth":{"ingressRate":0,"egressRate":0}}}"#,
        );
        let n = c.network().unwrap();
        assert_eq!(n.subnet.to_string(), "10.99.7.0/24");
        assert_eq!(n.gateway, Ipv4Addr::new(10, 99, 7, 1));
        assert_eq!(
            n.range,
            Some(AddrRange {
                start: "10.99.7.50".parse().unwrap(),
                end: "10.99.7.60".parse().unwrap()
            })
        );
        let d = dns(&c).unwrap();
        assert_eq!(
            (
                d.nameservers[0].to_string(),
                d.search[0].as_str(),
                d.options[0].as_str()
            ),
            ("192.0.2.53".to_string(), "svc.example", "ndots:5")
        );
        c.refuse_bandwidth().unwrap();
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","runtimeConfig":{"bandwidth":{"ingressRate":1000}}}"#,
        );
        let e = c.refuse_bandwidth().unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(e.msg.contains("chain the bandwidth plugin"), "{}", e.msg);
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","runtimeConfig":{"ipRanges":[[{"subnet":"fd00::/64"}]]}}"#,
        );
        assert!(c
            .network()
            .unwrap_err()
            .msg
            .contains("IPv6 is not supported yet"));
        let c = conf(
            r#"{"cniVersion":"1.1.0","name":"n","type":"t","runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/24","rangeStart":"10.8.0.1"}]]}}"#,
        );
        assert!(c.network().unwrap_err().msg.contains("inside 10.9.0.0/24"));
    }

    #[test]
    fn errors_have_codes() {
        assert_eq!(run(&env("ADD"), "{").unwrap_err().code, code::DECODE);
        assert_eq!(run(&env("ADD"), "[]").unwrap_err().code, code::DECODE);
        assert_eq!(
            run(
                &env("ADD"),
                r#"{"cniVersion":"9.9.9","name":"x","type":"t"}"#
            )
            .unwrap_err()
            .code,
            code::INCOMPATIBLE_VERSION
        );
        let e = run(
            &env("ADD"),
            r#"{"cniVersion":"1.0.0","name":"x","type":"t"}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (code::INVALID_ENV, "CNI_NETNS is not set")
        );
        assert_eq!(
            run(
                &env("ADD"),
                r#"{"cniVersion":"1.0.0","name":"x","type":"t","subnet":"nope"}"#
            )
            .unwrap_err()
            .code,
            code::INVALID_CONFIG
        );
        let e = run(
            &env("CHECK"),
            r#"{"cniVersion":"0.3.1","name":"x","type":"t"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let e = run(
            &env("GC"),
            r#"{"cniVersion":"1.1.0","name":"x","type":"t"}"#,
        )
        .unwrap_err();
        assert!(e.msg.contains("valid-attachments"), "{}", e.msg);
        assert_eq!(run(&env("NOPE"), "").unwrap_err().code, code::INVALID_ENV);
    }

    #[test]
    fn del_tolerates_any_stdin() {
        let d = tempfile::tempdir().unwrap();
        // An id no host has state for, whichever data root a stdin leads to.
        let env = Env {
            container_id: Some(format!("netsetup-unit-test-{}", std::process::id())),
            ..env("DEL")
        };
        for stdin in [
            "".to_string(),
            "{".into(),
            r#"{"cniVersion":"9.9.9"}"#.into(),
            format!(
                r#"{{"cniVersion":"1.0.0","name":"x","dataDir":"{}","subnet":"bad","runtimeConfig":{{"portMappings":[{{"HostPort":"x"}}]}}}}"#,
                d.path().display()
            ),
        ] {
            run(&env, &stdin).unwrap_or_else(|e| panic!("{stdin}: {}", e.msg));
        }
        let n = lenient_network(&format!(
            r#"{{"name":"x","dataDir":"{}","subnet":"bad"}}"#,
            d.path().display()
        ));
        assert_eq!((n.name.as_str(), n.data_dir.as_path()), ("x", d.path()));
    }
}
