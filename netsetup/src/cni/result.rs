//! The ADD result, in the version the config asked for, chained onto a previous plugin's.
//!
//! Versions differ in the `ips` entries: before 1.0.0 each names its `version` ("4" or "6").
//! A plugin in a chain returns the previous result with its own additions: the interfaces it
//! made are appended, and its addresses point at them by index.

use super::Dns;
use crate::Attachment;
use serde_json::{json, Value};
use std::path::Path;

fn before_1_0(version: &str) -> bool {
    version.starts_with("0.")
}

/// Adds or drops the `version` key of an `ips` entry for the result's version.
fn fit_ip(mut ip: Value, version: &str) -> Value {
    if let Some(o) = ip.as_object_mut() {
        if before_1_0(version) {
            if !o.contains_key("version") {
                let v6 = o
                    .get("address")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.contains(':'));
                o.insert("version".into(), json!(if v6 { "6" } else { "4" }));
            }
        } else {
            o.remove("version");
        }
    }
    ip
}

fn list(prev: Option<&Value>, key: &str) -> Vec<Value> {
    prev.and_then(|p| p[key].as_array().cloned())
        .unwrap_or_default()
}

/// The result of an ADD that made `att` in `netns`.
pub fn add(
    version: &str,
    att: &Attachment,
    netns: &Path,
    dns: &Dns,
    prev: Option<&Value>,
) -> Value {
    let a = &att.allocation;
    let mut interfaces = list(prev, "interfaces");
    let mut ips: Vec<Value> = list(prev, "ips")
        .into_iter()
        .map(|ip| fit_ip(ip, version))
        .collect();
    let mut routes = list(prev, "routes");
    let with_mac = |name: &str, mac: &Option<String>| {
        let mut i = json!({"name": name});
        if let Some(m) = mac {
            i["mac"] = json!(m);
        }
        i
    };
    interfaces.push(with_mac(&att.bridge, &att.bridge_mac));
    interfaces.push(with_mac(&att.host_veth, &att.host_mac));
    let mut cif = with_mac(&att.ifname, &att.mac);
    cif["sandbox"] = json!(netns);
    interfaces.push(cif);
    let index = interfaces.len() - 1;
    ips.push(fit_ip(
        json!({
            "address": format!("{}/{}", a.ip, a.prefix_len),
            "gateway": a.gateway,
            "interface": index,
        }),
        version,
    ));
    routes.push(json!({"dst": "0.0.0.0/0", "gw": a.gateway}));
    if let (Some(ip6), Some(plen), Some(gw6)) = (a.ip6, a.prefix_len6, a.gateway6) {
        ips.push(fit_ip(
            json!({"address": format!("{ip6}/{plen}"), "gateway": gw6, "interface": index}),
            version,
        ));
        routes.push(json!({"dst": "::/0", "gw": gw6}));
    }
    let mut out = json!({
        "cniVersion": version,
        "interfaces": interfaces,
        "ips": ips,
        "routes": routes,
    });
    // A previous plugin's DNS stays; else ours.
    let prev_dns = prev
        .map(|p| &p["dns"])
        .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()));
    let dns_out = match prev_dns {
        Some(d) => d.clone(),
        None => {
            let mut d = json!({});
            if !dns.nameservers.is_empty() {
                d["nameservers"] = json!(dns.nameservers);
            }
            if let Some(dom) = &dns.domain {
                d["domain"] = json!(dom);
            }
            if !dns.search.is_empty() {
                d["search"] = json!(dns.search);
            }
            if !dns.options.is_empty() {
                d["options"] = json!(dns.options);
            }
            d
        }
    };
    if dns_out.as_object().is_some_and(|o| !o.is_empty()) {
        out["dns"] = dns_out;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Allocation;

    fn att() -> Attachment {
        Attachment {
            allocation: Allocation {
                id: "c".into(),
                ip: "10.77.0.2".parse().unwrap(),
                prefix_len: 16,
                gateway: "10.77.0.1".parse().unwrap(),
                ip6: None,
                prefix_len6: None,
                gateway6: None,
                default_route: true,
                ports: vec![],
                nameservers: vec![],
                search: vec![],
                options: vec![],
                resolv_conf: None,
                hosts: None,
                hostname: None,
            },
            bridge: "minc0".into(),
            bridge_mac: Some("02:00:00:00:00:01".into()),
            host_veth: "veth01020304".into(),
            host_mac: None,
            ifname: "eth0".into(),
            mac: Some("02:00:00:00:00:03".into()),
            mtu: 1500,
            netns_name: "minc-c".into(),
        }
    }

    #[test]
    fn versions_and_chaining() {
        let dns = Dns {
            nameservers: vec!["192.0.2.53".parse().unwrap()],
            ..Default::default()
        };
        let r = add("1.1.0", &att(), Path::new("/run/netns/x"), &dns, None);
        assert_eq!(
            r["ips"][0],
            json!({"address": "10.77.0.2/16", "gateway": "10.77.0.1", "interface": 2})
        );
        assert_eq!(
            r["interfaces"][2],
            json!({"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": "/run/netns/x"})
        );
        assert_eq!(r["interfaces"][1], json!({"name": "veth01020304"}));
        assert_eq!(r["dns"], json!({"nameservers": ["192.0.2.53"]}));
        let r = add("0.4.0", &att(), Path::new("/run/netns/x"), &dns, None);
        assert_eq!(r["ips"][0]["version"], "4");
        // After the loopback plugin: its interface and addresses stay first.
        let prev = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/run/netns/x"}],
            "ips": [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}],
            "dns": {}});
        let r = add(
            "0.4.0",
            &att(),
            Path::new("/run/netns/x"),
            &dns,
            Some(&prev),
        );
        assert_eq!(r["interfaces"][0]["name"], "lo");
        assert_eq!(r["ips"][0]["version"], "4");
        assert_eq!(r["ips"][1]["version"], "6");
        assert_eq!(r["ips"][2]["interface"], 3);
        assert_eq!(r["ips"][2]["address"], "10.77.0.2/16");
        assert_eq!(
            r["dns"]["nameservers"][0], "192.0.2.53",
            "empty prev dns is replaced"
        );
    }
}
