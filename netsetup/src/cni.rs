//! CNI plugin mode (spec 1.0.0): ADD, DEL, CHECK, VERSION. The network config comes on
//! stdin, the container on CNI_* variables; the result (or an error object) goes to stdout.
//!
//! Config keys (all optional besides cniVersion/name/type): `bridge`, `subnet`, `gateway`,
//! `mtu`, `dns` (a list of nameservers, or CNI's `{"nameservers": [...], ...}`), `dataDir`,
//! and `runtimeConfig.portMappings` (`[{hostPort, containerPort, protocol}]`).

use crate::{Error, Network, PortMapping, Protocol, Request};
use serde::Deserialize;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];

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
        let code = match &e {
            Error::Config(_) | Error::InvalidPort { .. } | Error::InvalidId(_) => 7,
            Error::NotAllocated { .. } => 3,
            _ => 100,
        };
        CniError {
            code,
            msg: e.to_string(),
            details: String::new(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Conf {
    cni_version: Option<String>,
    name: Option<String>,
    bridge: Option<String>,
    subnet: Option<String>,
    gateway: Option<Ipv4Addr>,
    mtu: Option<u32>,
    dns: Option<Value>,
    data_dir: Option<PathBuf>,
    #[serde(default)]
    runtime_config: RuntimeConfig,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    #[serde(default)]
    port_mappings: Vec<CniPort>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CniPort {
    host_port: u16,
    container_port: u16,
    #[serde(default)]
    protocol: Option<String>,
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
    let _ = std::io::stdin().read_to_string(&mut stdin);
    let version = serde_json::from_str::<Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(String::from))
        .unwrap_or_else(|| "1.0.0".into());
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

fn network(c: &Conf) -> Result<Network, CniError> {
    let mut n = Network::default();
    if let Some(name) = &c.name {
        n.name = name.clone();
    }
    if let Some(b) = &c.bridge {
        n.bridge = b.clone();
    }
    if let Some(s) = &c.subnet {
        n.subnet = s
            .parse()
            .map_err(|e| CniError::new(7, format!("subnet {s:?}: {e}")))?;
        n.gateway = Ipv4Addr::from(u32::from(n.subnet.network()) + 1);
    }
    if let Some(g) = c.gateway {
        n.gateway = g;
    }
    n.mtu = c.mtu;
    if let Some(d) = &c.data_dir {
        n.data_dir = d.clone();
    }
    n.validate()?;
    Ok(n)
}

fn dns(c: &Conf) -> Result<Vec<IpAddr>, CniError> {
    let list = match &c.dns {
        None | Some(Value::Null) => return Ok(vec![]),
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Object(o)) => o
            .get("nameservers")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default(),
        Some(other) => {
            return Err(CniError::new(
                7,
                format!("dns: expected a list of addresses, got {other}"),
            ))
        }
    };
    list.iter()
        .map(|v| {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| CniError::new(7, format!("dns: {v} is not an IP address")))
        })
        .collect()
}

fn ports(c: &Conf) -> Result<Vec<PortMapping>, CniError> {
    c.runtime_config
        .port_mappings
        .iter()
        .map(|p| {
            let protocol: Protocol = p.protocol.as_deref().unwrap_or("tcp").parse()?;
            if p.host_port == 0 || p.container_port == 0 {
                return Err(CniError::new(7, "portMappings: ports must be 1-65535"));
            }
            Ok(PortMapping {
                host_port: p.host_port,
                container_port: p.container_port,
                protocol,
            })
        })
        .collect()
}

fn need<'a, T>(v: &'a Option<T>, name: &str) -> Result<&'a T, CniError> {
    v.as_ref()
        .ok_or_else(|| CniError::new(4, format!("{name} is not set")))
}

/// The plugin's logic, testable without a process: returns what goes to stdout.
pub fn run(env: &Env, stdin: &str) -> Result<Option<String>, CniError> {
    if env.command == "VERSION" {
        return Ok(Some(
            json!({"cniVersion": "1.0.0", "supportedVersions": SUPPORTED}).to_string(),
        ));
    }
    let conf: Conf = serde_json::from_str(stdin)
        .map_err(|e| CniError::new(6, format!("network config: {e}")))?;
    let version = conf.cni_version.clone().unwrap_or_else(|| "1.0.0".into());
    if !SUPPORTED.contains(&version.as_str()) {
        return Err(CniError::new(
            1,
            format!(
                "cniVersion {version} is not supported (supported: {})",
                SUPPORTED.join(", ")
            ),
        ));
    }
    let net = network(&conf)?;
    let id = need(&env.container_id, "CNI_CONTAINERID")?.clone();
    match env.command.as_str() {
        "ADD" => {
            let netns = need(&env.netns, "CNI_NETNS")?;
            let req = Request {
                id: id.clone(),
                hostname: None,
                ports: ports(&conf)?,
                dns: dns(&conf)?,
                files_dir: None,
                ifname: Some(env.ifname.clone().unwrap_or_else(|| "eth0".into())),
            };
            let att = crate::attach(&net, &req, netns)?;
            let a = &att.allocation;
            let mut dns = json!({"nameservers": a.nameservers});
            if !a.search.is_empty() {
                dns["search"] = json!(a.search);
            }
            if !a.options.is_empty() {
                dns["options"] = json!(a.options);
            }
            let mut ip = json!({"address": format!("{}/{}", a.ip, a.prefix_len), "gateway": a.gateway, "interface": 2});
            if version.starts_with("0.3") {
                ip["version"] = json!("4");
            }
            let mut cif = json!({"name": att.ifname, "sandbox": netns});
            if let Some(mac) = &att.mac {
                cif["mac"] = json!(mac);
            }
            let out = json!({
                "cniVersion": version,
                "interfaces": [{"name": att.bridge}, {"name": att.host_veth}, cif],
                "ips": [ip],
                "routes": [{"dst": "0.0.0.0/0", "gw": a.gateway}],
                "dns": dns,
            });
            Ok(Some(out.to_string()))
        }
        "DEL" => {
            crate::detach(&net, &id)?;
            Ok(None)
        }
        "CHECK" => {
            crate::check(&net, &id)?;
            Ok(None)
        }
        other => Err(CniError::new(
            4,
            format!("CNI_COMMAND {other:?} is not one of ADD, DEL, CHECK, VERSION"),
        )),
    }
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
        let out = run(&env("VERSION"), "").unwrap().unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn config_parsing() {
        let c: Conf = serde_json::from_str(
            r#"{"cniVersion":"1.0.0","name":"n1","type":"netsetup","subnet":"10.88.0.0/24","dns":{"nameservers":["10.0.0.53"]},
               "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"udp"}]}}"#,
        )
        .unwrap();
        let n = network(&c).unwrap();
        assert_eq!(
            (n.name.as_str(), n.gateway),
            ("n1", Ipv4Addr::new(10, 88, 0, 1))
        );
        assert_eq!(
            dns(&c).unwrap(),
            vec!["10.0.0.53".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(ports(&c).unwrap()[0].to_string(), "8080:80/udp");
    }

    #[test]
    fn errors_have_codes() {
        assert_eq!(run(&env("ADD"), "{").unwrap_err().code, 6);
        assert_eq!(
            run(
                &env("ADD"),
                r#"{"cniVersion":"9.9.9","name":"x","type":"t"}"#
            )
            .unwrap_err()
            .code,
            1
        );
        let e = run(
            &env("ADD"),
            r#"{"cniVersion":"1.0.0","name":"x","type":"t"}"#,
        )
        .unwrap_err();
        assert_eq!((e.code, e.msg.as_str()), (4, "CNI_NETNS is not set"));
        assert_eq!(
            run(
                &env("ADD"),
                r#"{"cniVersion":"1.0.0","name":"x","type":"t","subnet":"nope"}"#
            )
            .unwrap_err()
            .code,
            7
        );
    }
}
