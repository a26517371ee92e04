//! Files for the container: resolv.conf, hosts, hostname.

use std::net::IpAddr;
use std::path::Path;

/// What a container's resolv.conf says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

/// Parses nameserver, search/domain and options lines; everything else is dropped.
pub fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => {
                // Drop a zone suffix (fe80::1%eth0): it names a host interface.
                if let Some(ip) = w.next().and_then(|a| a.split('%').next()?.parse().ok()) {
                    r.nameservers.push(ip);
                }
            }
            // The last search/domain line wins, as in the resolver.
            Some("search") | Some("domain") => r.search = w.map(String::from).collect(),
            Some("options") => r.options.extend(w.map(String::from)),
            _ => {}
        }
    }
    r
}

/// A nameserver a container can reach: not loopback (systemd-resolved's 127.0.0.53 is the
/// host's own), and IPv4 since containers get IPv4 only.
fn reachable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_unspecified(),
        IpAddr::V6(_) => false,
    }
}

/// The container's resolver config: the override if given; else the host's reachable
/// nameservers, then those behind systemd-resolved's stub, then the fallback. Search and
/// options lines are kept from the host.
pub fn container_resolv(
    host: &str,
    resolved_upstream: Option<&str>,
    dns: &[IpAddr],
    fallback: &[IpAddr],
) -> Resolv {
    let mut r = parse_resolv(host);
    if !dns.is_empty() {
        r.nameservers = dns.to_vec();
        return r;
    }
    r.nameservers.retain(reachable);
    if r.nameservers.is_empty() {
        if let Some(up) = resolved_upstream {
            r.nameservers = parse_resolv(up)
                .nameservers
                .into_iter()
                .filter(reachable)
                .collect();
        }
    }
    if r.nameservers.is_empty() {
        r.nameservers = fallback.to_vec();
    }
    // The stub's "trust-ad"/"edns0" options are fine to keep; nothing else to fix up.
    r
}

pub fn render_resolv(r: &Resolv) -> String {
    let mut s = String::new();
    for ns in &r.nameservers {
        s += &format!("nameserver {ns}\n");
    }
    if !r.search.is_empty() {
        s += &format!("search {}\n", r.search.join(" "));
    }
    if !r.options.is_empty() {
        s += &format!("options {}\n", r.options.join(" "));
    }
    s
}

/// The container's hosts file: the usual loopback lines, its own addresses under its
/// hostname (and id), then `extra` (`--add-host NAME:IP`) in order.
pub fn render_hosts(
    ips: &[IpAddr],
    hostname: &str,
    id: &str,
    extra: &[(String, IpAddr)],
) -> String {
    let mut names = hostname.to_string();
    if id != hostname && id.len() <= 64 {
        names += &format!(" {id}");
    }
    let mut s = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        .to_string();
    for ip in ips {
        s += &format!("{ip}\t{names}\n");
    }
    for (name, ip) in extra {
        s += &format!("{ip}\t{name}\n");
    }
    s
}

/// The resolver config of a container whose names resolve through its networks' resolvers:
/// those (their gateways) as nameservers, the host's search domains and options.
pub fn resolver_resolv(host: &str, gateways: &[IpAddr]) -> Resolv {
    let mut r = parse_resolv(host);
    r.nameservers = gateways.to_vec();
    r
}

/// Reads the host's resolv.conf; a missing file means "no nameservers" (fallback applies).
pub fn read_host_resolv(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Default hostname: the id, cut to 12 characters like Docker (and 63, the label limit).
pub fn default_hostname(id: &str) -> String {
    id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESOLVED_STUB: &str = "# managed by systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example lan\n";

    #[test]
    fn loopback_nameservers_are_dropped() {
        let host = "nameserver 127.0.0.53\nnameserver 192.0.2.53\nnameserver ::1\nnameserver 2001:db8::1\nsearch a.example\noptions ndots:2\n";
        let r = container_resolv(host, None, &[], &["9.9.9.9".parse().unwrap()]);
        assert_eq!(r.nameservers, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            render_resolv(&r),
            "nameserver 192.0.2.53\nsearch a.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn stub_uses_upstream_then_fallback() {
        let up = "nameserver 198.51.100.1\nnameserver 127.0.0.1\n";
        let r = container_resolv(RESOLVED_STUB, Some(up), &[], &["9.9.9.9".parse().unwrap()]);
        assert_eq!(
            r.nameservers,
            vec!["198.51.100.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(r.search, vec!["corp.example", "lan"]);
        assert_eq!(r.options, vec!["edns0", "trust-ad"]);
        let r = container_resolv(RESOLVED_STUB, None, &[], &["9.9.9.9".parse().unwrap()]);
        assert_eq!(
            render_resolv(&r),
            "nameserver 9.9.9.9\nsearch corp.example lan\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn override_wins_and_keeps_search() {
        let r = container_resolv(RESOLVED_STUB, None, &["10.0.0.53".parse().unwrap()], &[]);
        assert_eq!(
            render_resolv(&r),
            "nameserver 10.0.0.53\nsearch corp.example lan\noptions edns0 trust-ad\n"
        );
    }

    #[test]
    fn hosts_file() {
        let h = render_hosts(&["10.77.0.2".parse().unwrap()], "web", "abc", &[]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.77.0.2\tweb abc\n"));
        let h = render_hosts(
            &["10.77.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
            "web",
            "web",
            &[("db".into(), "192.0.2.9".parse().unwrap())],
        );
        assert!(
            h.ends_with("10.77.0.2\tweb\nfd00::2\tweb\n192.0.2.9\tdb\n"),
            "{h}"
        );
        assert_eq!(default_hostname("0123456789abcdef"), "0123456789ab");
    }
}
