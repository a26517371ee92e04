//! The logic of attach and detach against the fake [`System`]: which steps, in which order,
//! what is skipped when it already exists, what a failure leaves. No root needed.

use super::*;
use crate::fake::Fake;
use std::fs;

struct T {
    dir: tempfile::TempDir,
    net: Network,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
        fs::create_dir_all(dir.path().join("netns")).unwrap();
        let net = Network {
            data_dir: dir.path().join("data"),
            run_netns_dir: dir.path().join("netns"),
            host_resolv_conf: resolv,
            ..Default::default()
        };
        T { dir, net }
    }

    /// A file standing for a container's namespace (its identity is all connect needs).
    fn ns(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(format!("ns-{name}"));
        fs::write(&p, "").unwrap();
        p
    }

    fn req(&self, id: &str, ports: &[&str]) -> Request {
        Request {
            id: id.into(),
            ports: ports
                .iter()
                .flat_map(|p| PortSpec::parse_publish(p).unwrap())
                .collect(),
            files_dir: Some(self.dir.path().join("files").join(id)),
            ..Default::default()
        }
    }
}

#[test]
fn first_attach_does_every_step_in_order() {
    let t = T::new();
    let mut sys = Fake::new();
    let ns = t.ns("a");
    let att = attach_with(&mut sys, &t.net, &t.req("a", &["8080:8000"]), &ns).unwrap();
    assert_eq!(att.allocation.ip, Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!(att.mtu, 1500);
    let netns = t.net.run_netns_dir.join("minc-a");
    let files = t.dir.path().join("files/a");
    let veth = host_veth_name(&t.net, "a");
    let script = sys.script();
    let want = format!(
        "cat > {files}/resolv.conf <<'EOF'\nnameserver 192.0.2.53\nEOF\n\
         cat > {files}/hosts <<'EOF'\n",
        files = files.display()
    );
    assert!(script.starts_with(&want), "{script}");
    let after_files = &script[script.find("mkdir -p").unwrap()..];
    let lines: Vec<&str> = after_files.lines().collect();
    let want = [
        format!("mkdir -p {}", t.net.run_netns_dir.display()),
        format!("touch {}", netns.display()),
        format!("mount --bind {} {}", ns.display(), netns.display()),
        "ip link add minc0 mtu 1500 type bridge".into(),
        format!("ip link set minc0 alias 'minc {}'", t.net.data_dir.display()),
        "ip addr replace 10.77.0.1/16 broadcast 10.77.255.255 dev minc0".into(),
        "ip link set minc0 up".into(),
        format!("ip link add {veth} mtu 1500 master minc0 up type veth peer name eth0 mtu 1500 netns {}", netns.display()),
        format!("ip link set {veth} type bridge_slave hairpin on"),
        format!("nsenter --net={} ip link set lo up", netns.display()),
        format!("nsenter --net={} ip addr add 10.77.0.2/16 broadcast 10.77.255.255 dev eth0", netns.display()),
        format!("nsenter --net={} ip link set eth0 up", netns.display()),
        format!("nsenter --net={} ip route add default via 10.77.0.1 dev eth0", netns.display()),
        "sysctl -w net.ipv4.ip_forward=1".into(),
        "sysctl -w net.ipv4.conf.minc0.route_localnet=1".into(),
        "nft -f - <<'EOF'".into(),
        "add table inet minc".into(),
    ];
    assert_eq!(lines[..want.len()], want[..], "{script}");
    assert!(
        script.ends_with(&format!(
            "add element inet minc tcp4 {{ 8080 : 10.77.0.2 . 8000 }}\n\
             add element bridge minc ports {{ \"{veth}\" }}\n\
             add element bridge minc spoof4 {{ \"{veth}\" . 10.77.0.2 }}\nEOF\n"
        )),
        "{script}"
    );
    assert!(script.contains("add table bridge minc\n"), "{script}");
}

#[test]
fn second_attach_only_adds_its_own_steps() {
    let t = T::new();
    let mut sys = Fake::new();
    attach_with(&mut sys, &t.net, &t.req("a", &["8080:8000"]), &t.ns("a")).unwrap();
    sys.done.clear();
    attach_with(&mut sys, &t.net, &t.req("b", &["8081:8000"]), &t.ns("b")).unwrap();
    let s = sys.script();
    assert!(!s.contains("type bridge\n") && !s.contains("alias"), "{s}");
    assert!(
        !s.contains("ip link set minc0 up"),
        "bridge already up:\n{s}"
    );
    assert!(!s.contains("sysctl"), "sysctls already set:\n{s}");
    assert!(!s.contains("add table"), "table at this revision:\n{s}");
    assert!(
        s.contains("ip addr replace 10.77.0.1/16"),
        "address re-asserted:\n{s}"
    );
    let vb = host_veth_name(&t.net, "b");
    assert!(
        s.ends_with(&format!(
            "nft -f - <<'EOF'\nadd element inet minc tcp4 {{ 8081 : 10.77.0.3 . 8000 }}\n\
             add element bridge minc ports {{ \"{vb}\" }}\n\
             add element bridge minc spoof4 {{ \"{vb}\" . 10.77.0.3 }}\nEOF\n"
        )),
        "{s}"
    );
}

#[test]
fn detach_deletes_the_veth_only_while_the_namespace_lives() {
    let t = T::new();
    let mut sys = Fake::new();
    attach_with(&mut sys, &t.net, &t.req("a", &["8080:8000"]), &t.ns("a")).unwrap();
    attach_with(&mut sys, &t.net, &t.req("b", &[]), &t.ns("b")).unwrap();
    let (va, vb) = (host_veth_name(&t.net, "a"), host_veth_name(&t.net, "b"));
    sys.done.clear();
    detach_with(&mut sys, &t.net, "a", false).unwrap();
    let s = sys.script();
    let netns_a = t.net.run_netns_dir.join("minc-a");
    assert_eq!(
        s,
        format!(
            "nft -f - <<'EOF'\ndelete element inet minc tcp4 {{ 8080 }}\n\
             delete element bridge minc ports {{ \"{va}\" }}\n\
             delete element bridge minc spoof4 {{ \"{va}\" . 10.77.0.2 }}\nEOF\n\
             ip link del {va}\numount -l {0}\nrm -f {0}\n\
             rm -f {1}/resolv.conf\nrm -f {1}/hosts\nrm -f {1}/hostname\n",
            netns_a.display(),
            t.dir.path().join("files/a").display(),
        )
    );
    // b's container has exited: its namespace file no longer is the one connected.
    fs::remove_file(t.dir.path().join("ns-b")).unwrap();
    sys.done.clear();
    detach_with(&mut sys, &t.net, "b", false).unwrap();
    let s = sys.script();
    assert!(!s.contains("link del"), "no synchronous veth delete:\n{s}");
    assert!(
        s.contains(&format!(
            "\nEOF\nip link set {vb} nomaster   # the namespace is gone: the kernel deletes the pair with it\numount -l "
        )),
        "{s}"
    );
    assert!(
        s.starts_with("nft -f - <<'EOF'\ndelete element bridge minc ports"),
        "{s}"
    );
    // Everything released; twice is fine.
    detach_with(&mut sys, &t.net, "b", false).unwrap();
    assert!(reserved_ips(&t.net).is_empty());
    assert!(list(&t.net).unwrap().is_empty());
    let empty = |set: &str, f| sys.elements[&(f, set.to_string())].is_empty();
    assert!(empty("tcp4", Family::Inet));
    assert!(empty("spoof4", Family::Bridge) && empty("ports", Family::Bridge));
}

#[test]
fn failed_connect_leaves_only_the_allocation() {
    let t = T::new();
    let mut sys = Fake::new();
    sys.fail = Some(|op| matches!(op, Op::VethAdd { .. }));
    let e = attach_with(&mut sys, &t.net, &t.req("a", &["8080:8000"]), &t.ns("a")).unwrap_err();
    assert!(e.to_string().contains("injected"), "{e}");
    assert!(!t.net.run_netns_dir.join("minc-a").exists(), "name removed");
    assert!(
        reserved_ips(&t.net).is_empty(),
        "attach undoes the allocation"
    );
    assert!(ipam::port_owner(&t.net, Protocol::Tcp, 8080).is_none());
    // The bridge made on the way stays, like docker0.
    assert!(sys.links.contains_key(&(None, "minc0".to_string())));
}

#[test]
fn a_taken_namespace_name_is_never_removed() {
    let t = T::new();
    let mut sys = Fake::new();
    let taken = t.net.run_netns_dir.join("minc-a");
    fs::write(&taken, "someone's").unwrap();
    let e = attach_with(&mut sys, &t.net, &t.req("a", &[]), &t.ns("a")).unwrap_err();
    assert!(e.to_string().contains("already in use"), "{e}");
    assert_eq!(fs::read_to_string(&taken).unwrap(), "someone's");
}

#[test]
fn bridge_of_another_data_root() {
    let t = T::new();
    let mut sys = Fake::new();
    let other = tempfile::tempdir().unwrap();
    attach_with(&mut sys, &t.net, &t.req("a", &[]), &t.ns("a")).unwrap();
    let mark = |p: &Path| format!("minc {}", p.display());
    sys.links.get_mut(&(None, "minc0".into())).unwrap().alias = Some(mark(other.path()));
    let e = attach_with(&mut sys, &t.net, &t.req("b", &[]), &t.ns("b")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "invalid network config: bridge minc0 belongs to the minc data root {}; give data root {} a network with another bridge and subnet",
            other.path().display(),
            t.net.data_dir.display()
        )
    );
    assert!(reserved_ips(&t.net).iter().all(|(_, id)| id != "b"));
    // Once that data root is gone, the bridge is adopted.
    let gone = other.path().to_path_buf();
    drop(other);
    sys.done.clear();
    attach_with(&mut sys, &t.net, &t.req("b", &[]), &t.ns("b")).unwrap();
    assert!(sys.script().contains(&format!(
        "ip link set minc0 alias '{}'",
        mark(&t.net.data_dir)
    )));
    assert!(!gone.exists());
}

#[test]
fn ports_of_gone_containers_and_dead_reservers_are_reclaimed() {
    let t = T::new();
    let mut sys = Fake::new();
    attach_with(&mut sys, &t.net, &t.req("a", &["8080:80"]), &t.ns("a")).unwrap();
    // a's namespace goes away without a detach: its port is taken over, a is reclaimed.
    fs::remove_file(t.dir.path().join("ns-a")).unwrap();
    attach_with(&mut sys, &t.net, &t.req("b", &["8080:80"]), &t.ns("b")).unwrap();
    assert!(netsetup_allocation_missing(&t.net, "a"));
    assert_eq!(
        ipam::port_owner(&t.net, Protocol::Tcp, 8080).as_deref(),
        Some("b")
    );

    // A reservation whose reserver died before recording it (no state), made by hand the
    // way a killed process leaves it: freed when the port is wanted, and by gc.
    let dead = ProcId {
        start: 1,
        ..ProcId::current().unwrap()
    };
    assert!(!dead.alive());
    let ports = t.net.data_dir.join(".ports");
    let ips = t.net.state_dir().join("ips");
    fs::write(
        ports.join("udp-53"),
        format!("x {} {}\n", dead.pid, dead.start),
    )
    .unwrap();
    fs::write(
        ips.join("10.77.0.9"),
        format!("y {} {}\n", dead.pid, dead.start),
    )
    .unwrap();
    let live = ProcId::current().unwrap();
    fs::write(
        ips.join("10.77.0.10"),
        format!("z {} {}\n", live.pid, live.start),
    )
    .unwrap();
    attach_with(&mut sys, &t.net, &t.req("c", &["53:53/udp"]), &t.ns("c")).unwrap();
    assert_eq!(
        ipam::port_owner(&t.net, Protocol::Udp, 53).as_deref(),
        Some("c")
    );
    let _l = ipam::lock(&t.net).unwrap();
    let got = reclaim_stale_locked(&mut sys, &t.net).unwrap();
    assert_eq!(got, ["y"], "the live reserver's claim stays");
    assert!(reserved_ips(&t.net).iter().any(|(_, id)| id == "z"));
}

fn netsetup_allocation_missing(net: &Network, id: &str) -> bool {
    allocation(net, id).unwrap().is_none() && !reserved_ips(net).iter().any(|(_, o)| o == id)
}

#[test]
fn a_changed_skeleton_is_applied_again() {
    let t = T::new();
    let mut sys = Fake::new();
    attach_with(&mut sys, &t.net, &t.req("a", &[]), &t.ns("a")).unwrap();
    // Someone deleted the table (or an older minc made it): the chain comment is missing.
    sys.chains.clear();
    sys.done.clear();
    attach_with(&mut sys, &t.net, &t.req("b", &[]), &t.ns("b")).unwrap();
    assert!(sys.script().contains("add table inet minc"));
}

#[test]
fn netns_ref_of_proc_path_follows_the_process() {
    let me = std::process::id();
    let r = netns_ref(Path::new(&format!("/proc/{me}/ns/net")), (1, 2));
    assert_eq!(r.proc.map(|p| p.pid), Some(me as i32));
    assert!(!r.gone());
    let r = netns_ref(Path::new("/run/netns/x"), (1, 2));
    assert!(r.proc.is_none() && r.gone());
}

fn user_net(t: &T, name: &str, bridge: &str, third: u8) -> Network {
    Network {
        name: name.into(),
        bridge: bridge.into(),
        subnet: format!("10.{third}.0.0/16").parse().unwrap(),
        gateway: format!("10.{third}.0.1").parse().unwrap(),
        subnet6: Some(format!("fd00:{third}::/64").parse().unwrap()),
        gateway6: Some(format!("fd00:{third}::1").parse().unwrap()),
        dns: true,
        ..t.net.clone()
    }
}

#[test]
fn dual_stack_attach_adds_ipv6_without_dad() {
    let t = T::new();
    let net = user_net(&t, "v6", "minc-v6", 78);
    let mut sys = Fake::new();
    let att = attach_with(&mut sys, &net, &t.req("a", &["8080:80"]), &t.ns("a")).unwrap();
    assert_eq!(att.allocation.ip6, Some("fd00:78::2".parse().unwrap()));
    let s = sys.script();
    let ns = t.net.run_netns_dir.join("minc-a");
    let veth = host_veth_name(&net, "a");
    for want in [
        "ip -6 addr replace fd00:78::1/64 dev minc-v6 nodad".to_string(),
        format!(
            "nsenter --net={} ip -6 addr add fd00:78::2/64 dev eth0 nodad",
            ns.display()
        ),
        format!(
            "nsenter --net={} ip -6 route add default via fd00:78::1 dev eth0",
            ns.display()
        ),
        "sysctl -w net.ipv6.conf.all.forwarding=1".into(),
        "add element inet minc tcp4 { 8080 : 10.78.0.2 . 80 }".into(),
        "add element inet minc tcp6 { 8080 : fd00:78::2 . 80 }".into(),
        format!("add element bridge minc spoof6 {{ \"{veth}\" . fd00:78::2 }}"),
    ] {
        assert!(s.lines().any(|l| l == want), "missing {want:?} in\n{s}");
    }
    // The hosts file names both addresses.
    let hosts = fs::read_to_string(t.dir.path().join("files/a/hosts")).unwrap();
    assert!(hosts.ends_with("10.78.0.2\ta\nfd00:78::2\ta\n"), "{hosts}");
}

#[test]
fn resolver_starts_with_the_first_container_and_stops_with_the_last() {
    let t = T::new();
    let net = user_net(&t, "app", "minc-app", 79);
    let mut sys = Fake::new();
    let mut req = t.req("a", &[]);
    req.names = vec!["web".into(), "alias".into()];
    req.dns = vec!["192.0.2.53".parse().unwrap()];
    attach_with(&mut sys, &net, &req, &t.ns("a")).unwrap();
    let s = sys.script();
    assert!(
        s.contains("ip 10.79.0.2\nip fd00:79::2\nname web\nname alias\nupstream 192.0.2.53\n"),
        "{s}"
    );
    assert_eq!(s.matches("setsid -f ").count(), 1, "{s}");
    assert!(s.contains("--listen 10.79.0.1:53"), "{s}");
    assert!(dns::running(&net).is_some());
    sys.done.clear();
    attach_with(&mut sys, &net, &t.req("b", &[]), &t.ns("b")).unwrap();
    assert!(!sys.script().contains("setsid"), "one resolver per network");
    sys.done.clear();
    detach_with(&mut sys, &net, "a", false).unwrap();
    let s = sys.script();
    assert!(
        s.contains("names/a\n") && !s.contains("kill "),
        "b still needs it:\n{s}"
    );
    sys.done.clear();
    detach_with(&mut sys, &net, "b", false).unwrap();
    let s = sys.script();
    assert!(
        s.contains("\nkill ") || s.starts_with("kill "),
        "the last one stops it:\n{s}"
    );
    assert!(dns::running(&net).is_none());
    assert!(!dns::pid_file(&net).exists());
    // A container's resolv.conf on such a network names the resolver.
    let r = resolv_for(&net, &["192.0.2.53".parse().unwrap()]);
    assert_eq!(r.nameservers, vec![IpAddr::V4(net.gateway)]);
}

#[test]
fn a_container_on_two_networks_shares_its_namespace_name() {
    let t = T::new();
    let a = user_net(&t, "a", "minc-a", 80);
    let b = Network {
        internal: true,
        ..user_net(&t, "b", "minc-b", 81)
    };
    let mut sys = Fake::new();
    let ns = t.ns("c");
    attach_with(&mut sys, &a, &t.req("c", &[]), &ns).unwrap();
    let mut second = t.req("c", &[]);
    second.ifname = Some("eth1".into());
    second.files_dir = None;
    second.no_default_route = true;
    sys.done.clear();
    attach_with(&mut sys, &b, &second, &ns).unwrap();
    let s = sys.script();
    assert!(!s.contains("mount --bind"), "published once:\n{s}");
    assert!(
        s.contains("dev eth1") && !s.contains("route add default"),
        "{s}"
    );
    assert!(
        s.contains("add rule inet minc fwd-minc-b iifname \"minc-b\" oifname != \"minc-b\" drop"),
        "{s}"
    );
    let name = t.net.run_netns_dir.join("minc-c");
    sys.done.clear();
    detach_with(&mut sys, &a, "c", false).unwrap();
    assert!(
        name.exists() && !sys.script().contains("umount"),
        "b still uses it"
    );
    detach_with(&mut sys, &b, "c", false).unwrap();
    assert!(!name.exists(), "gone with the last network");
    // An internal network publishes nothing.
    let e = attach_with(&mut sys, &b, &t.req("d", &["1:1"]), &t.ns("d")).unwrap_err();
    assert!(e.to_string().contains("internal"), "{e}");
}
