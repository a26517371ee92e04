//! End-to-end tests against the real kernel. Each runs in its own sandbox (net, mount and pid
//! namespaces that vanish with it): "containers" are `ip netns add` namespaces, "wan" is
//! another netns reached over a veth on 203.0.113.0/24. No packet leaves the sandbox.

use minc_tests::net::{
    add_netns, assert_links_gone, mac_of, netns_path, setup_wan, spawn_in_netns, UdpWitness,
    HOST_WAN, WAN,
};
use minc_tests::run;
use netsetup::{Error, Network, Request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

fn network(dir: &Path) -> Network {
    let resolv = dir.join("host-resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.53\nsearch example.test\noptions edns0\n",
    )
    .unwrap();
    Network {
        data_dir: dir.join("data"),
        host_resolv_conf: resolv,
        ..Default::default()
    }
}

fn req(id: &str, ports: &[&str], files: Option<&Path>) -> Request {
    Request {
        id: id.into(),
        ports: ports
            .iter()
            .map(|p| p.parse::<netsetup::PortMapping>().unwrap().into())
            .collect(),
        files_dir: files.map(|f| f.join(id)),
        ..Default::default()
    }
}

/// A TCP server in a netns that answers `n` connections with "hello from <tag>" and reports
/// the peer address of each.
fn serve(
    path: Option<PathBuf>,
    addr: &str,
    n: usize,
    tag: &'static str,
) -> JoinHandle<Vec<SocketAddr>> {
    let addr: SocketAddr = addr.parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = spawn_in_netns(path.as_deref(), move || {
        let l = TcpListener::bind(addr).unwrap();
        tx.send(()).unwrap();
        let mut peers = Vec::new();
        for _ in 0..n {
            let (mut s, peer) = l.accept().unwrap();
            s.write_all(format!("hello from {tag}").as_bytes()).unwrap();
            peers.push(peer);
        }
        peers
    });
    rx.recv().unwrap();
    h
}

/// Connects from a netns and returns what the server said.
fn fetch(path: Option<PathBuf>, addr: &str) -> String {
    let addr: SocketAddr = addr.parse().unwrap();
    spawn_in_netns(path.as_deref(), move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .join()
    .unwrap()
}

fn links() -> String {
    run("ip", &["-br", "link"])
}

#[test]
fn connectivity_and_teardown() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    setup_wan(Some(1400));
    let net = network(tmp.path());
    let c1 = add_netns("c1");
    let c2 = add_netns("c2");
    let a1 = netsetup::attach(
        &net,
        &Request {
            hostname: Some("web".into()),
            ..req("c1", &["8080:8000", "5353:53/udp"], Some(&files))
        },
        &c1,
    )
    .unwrap();
    let a2 = netsetup::attach(&net, &req("c2", &[], Some(&files)), &c2).unwrap();
    let (ip1, ip2) = (a1.allocation.ip.to_string(), a2.allocation.ip.to_string());
    assert_eq!((ip1.as_str(), ip2.as_str()), ("10.77.0.2", "10.77.0.3"));
    assert_eq!(a1.mtu, 1400, "MTU follows the default-route interface");
    assert!(run("ip", &["-n", "c1", "link", "show", "eth0"]).contains("mtu 1400"));
    assert!(run("ip", &["-d", "link", "show", &a1.host_veth]).contains("hairpin on"));

    // Files, and the netns as a learner sees it.
    let resolv = std::fs::read_to_string(files.join("c1/resolv.conf")).unwrap();
    assert_eq!(
        resolv,
        "nameserver 8.8.8.8\nnameserver 1.1.1.1\nsearch example.test\noptions edns0\n"
    );
    assert!(std::fs::read_to_string(files.join("c1/hosts"))
        .unwrap()
        .contains("10.77.0.2\tweb c1\n"));
    assert_eq!(
        std::fs::read_to_string(files.join("c1/hostname")).unwrap(),
        "web\n"
    );
    // The netns has its ip-netns name, and nothing was written under /etc.
    assert_eq!(std::fs::read_dir("/etc/netns").unwrap().count(), 0);
    assert!(run("ip", &["netns", "exec", "minc-c1", "ip", "-br", "addr"]).contains("10.77.0.2/16"));
    assert!(run("ip", &["-n", "c1", "route"]).contains("default via 10.77.0.1 dev eth0"));

    // container -> gateway
    let s = serve(None, "10.77.0.1:9000", 1, "host");
    assert_eq!(fetch(Some(c1.clone()), "10.77.0.1:9000"), "hello from host");
    assert_eq!(s.join().unwrap()[0].ip().to_string(), ip1);
    // container -> container
    let s = serve(Some(c2.clone()), "0.0.0.0:9001", 1, "c2");
    assert_eq!(
        fetch(Some(c1.clone()), &format!("{ip2}:9001")),
        "hello from c2"
    );
    assert_eq!(s.join().unwrap()[0].ip().to_string(), ip1);
    // container -> wan, masqueraded to the host's wan address
    let s = serve(Some(netns_path("wan")), "0.0.0.0:9002", 1, "wan");
    assert_eq!(
        fetch(Some(c1.clone()), &format!("{WAN}:9002")),
        "hello from wan"
    );
    assert_eq!(s.join().unwrap()[0].ip().to_string(), HOST_WAN);

    // Published port 8080 -> c1:8000 from everywhere.
    let s = serve(Some(c1.clone()), "0.0.0.0:8000", 6, "c1");
    let pub_host = format!("{HOST_WAN}:8080");
    assert_eq!(
        fetch(Some(netns_path("wan")), &pub_host),
        "hello from c1",
        "from another host"
    );
    assert_eq!(
        fetch(None, "127.0.0.1:8080"),
        "hello from c1",
        "from the host's 127.0.0.1"
    );
    assert_eq!(
        fetch(None, &pub_host),
        "hello from c1",
        "from the host's own address"
    );
    assert_eq!(
        fetch(Some(c2.clone()), &pub_host),
        "hello from c1",
        "from another container"
    );
    assert_eq!(
        fetch(Some(c2.clone()), "10.77.0.1:8080"),
        "hello from c1",
        "from another container, via the gateway"
    );
    assert_eq!(
        fetch(Some(c1.clone()), &pub_host),
        "hello from c1",
        "hairpin"
    );
    let peers: Vec<String> = s
        .join()
        .unwrap()
        .iter()
        .map(|p| p.ip().to_string())
        .collect();
    assert_eq!(peers[0], WAN, "a remote client's address is preserved");

    // UDP 5353 -> c1:53
    let (tx, rx) = std::sync::mpsc::channel();
    let u = spawn_in_netns(Some(&c1), move || {
        let s = UdpSocket::bind("0.0.0.0:53").unwrap();
        tx.send(()).unwrap();
        let mut b = [0u8; 64];
        let (n, peer) = s.recv_from(&mut b).unwrap();
        s.send_to(&b[..n], peer).unwrap();
        peer
    });
    rx.recv().unwrap();
    let got = spawn_in_netns(Some(&netns_path("wan")), || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(b"ping", format!("{HOST_WAN}:5353")).unwrap();
        let mut b = [0u8; 64];
        let n = s.recv(&mut b).unwrap();
        String::from_utf8_lossy(&b[..n]).into_owned()
    })
    .join()
    .unwrap();
    assert_eq!(got, "ping");
    assert_eq!(u.join().unwrap().ip().to_string(), WAN);

    // Teardown: exactly what attach made, twice is fine.
    assert_eq!(netsetup::published_ports().unwrap().len(), 2);
    for _ in 0..2 {
        netsetup::detach(&net, "c1").unwrap();
        netsetup::detach(&net, "c2").unwrap();
    }
    assert!(!links().contains("veth"), "{}", links());
    assert!(netsetup::published_ports().unwrap().is_empty());
    assert!(netsetup::reserved_ips(&net).is_empty());
    assert!(netsetup::list(&net).unwrap().is_empty());
    for f in ["resolv.conf", "hosts", "hostname"] {
        assert!(!files.join("c1").join(f).exists(), "{f} left behind");
    }
    assert!(!Path::new("/run/netns/minc-c1").exists());
    assert_only_under(&net.data_dir, &files);
    // The network's own objects stay, like docker0: bridge and the table's rules.
    assert!(links().contains("minc0"));
    let table = run("nft", &["list", "table", "inet", "minc"]);
    assert!(
        table.contains("ip saddr 10.77.0.0/16 oifname != \"minc0\" masquerade"),
        "{table}"
    );
}

#[test]
fn detach_after_netns_is_gone() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    let c = add_netns("gone");
    let a = netsetup::attach(
        &net,
        &req("gone", &["8081:80"], Some(&tmp.path().join("f"))),
        &c,
    )
    .unwrap();
    // The container dies: every handle on its netns goes, and the veth with it.
    run("ip", &["netns", "del", "gone"]);
    run("ip", &["netns", "del", "minc-gone"]);
    assert_links_gone(&a.host_veth, Duration::from_secs(1), "after the netns went");
    assert_eq!(
        netsetup::published_ports().unwrap().len(),
        1,
        "the nft element outlives the netns"
    );
    assert!(netsetup::list(&net).unwrap()[0].stale);
    netsetup::detach(&net, "gone").unwrap();
    netsetup::detach(&net, "gone").unwrap();
    assert!(netsetup::published_ports().unwrap().is_empty());
    assert!(netsetup::reserved_ips(&net).is_empty());
}

#[test]
fn parallel_attaches() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    const N: usize = 50;
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let net = net.clone();
            std::thread::spawn(move || {
                let id = format!("p{i}");
                let path = add_netns(&id);
                let port = format!("{}:80", 10000 + i);
                netsetup::attach(&net, &req(&id, &[&port], None), &path)
                    .unwrap()
                    .allocation
                    .ip
            })
        })
        .collect();
    let mut ips: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), N, "distinct addresses");
    assert_eq!(netsetup::published_ports().unwrap().len(), N);
    assert_eq!(links().matches("veth").count(), N);
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let net = net.clone();
            std::thread::spawn(move || netsetup::detach(&net, &format!("p{i}")).unwrap())
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert!(!links().contains("veth"));
    assert!(netsetup::published_ports().unwrap().is_empty());
    assert!(netsetup::reserved_ips(&net).is_empty());
    assert!(!std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("minc-")));
}

/// Nothing netsetup keeps is outside its data root and the files directory it was given:
/// /etc/netns and /run/minc stay empty (they are the sandbox's own tmpfs), and every file it
/// wrote since the sandbox began is below `data` or `files`.
fn assert_only_under(data: &Path, files: &Path) {
    for d in ["/etc/netns", "/run/minc", "/var/lib/minc"] {
        let n = std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
        assert_eq!(n, 0, "{d} is not empty");
    }
    assert!(!Path::new("/run/minc-net").exists());
    let mine = |p: &Path| p.starts_with(data) || p.starts_with(files);
    let root = data.parent().unwrap();
    for e in walk(root) {
        assert!(
            mine(&e)
                || e == root.join("host-resolv.conf")
                || files.starts_with(&e)
                || data.starts_with(&e),
            "{} is outside the roots",
            e.display()
        );
    }
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let path = e.path();
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            v.extend(walk(&path));
        }
        v.push(path);
    }
    v
}

/// Nothing of `id` exists: no state, no address, no veth, no /run/netns entry, no files.
fn assert_nothing_of(net: &Network, id: &str, files: &Path) {
    assert!(netsetup::allocation(net, id).unwrap().is_none());
    assert!(!netsetup::reserved_ips(net).iter().any(|(_, o)| o == id));
    // The kernel frees a veth whose namespace is gone asynchronously: wait a little.
    let veth = netsetup::host_veth_name(net, id);
    assert_links_gone(&veth, Duration::from_secs(10), id);
    assert!(!Path::new(&format!("/run/netns/minc-{id}")).exists());
    assert!(!Path::new(&format!("/etc/netns/minc-{id}")).exists());
    assert!(!files.join(id).join("resolv.conf").exists());
}

#[test]
fn exhausted_pool_and_stale_reclaim() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    let net = Network {
        name: "small".into(),
        bridge: "minc-small".into(),
        subnet: "10.78.0.0/29".parse().unwrap(),
        gateway: "10.78.0.1".parse().unwrap(),
        ..network(tmp.path())
    };
    for i in 0..5 {
        let id = format!("s{i}");
        netsetup::attach(&net, &req(&id, &[], Some(&files)), &add_netns(&id)).unwrap();
    }
    let p = add_netns("s5");
    let e = netsetup::attach(&net, &req("s5", &["8082:80"], Some(&files)), &p).unwrap_err();
    assert!(matches!(e, Error::PoolExhausted(_)), "{e}");
    assert_eq!(e.to_string(), "address pool 10.78.0.0/29 is exhausted");
    assert_nothing_of(&net, "s5", &files);
    assert!(netsetup::published_ports().unwrap().is_empty());
    // One container goes away without a detach: its address is reclaimed when needed.
    run("ip", &["netns", "del", "s2"]);
    run("ip", &["netns", "del", "minc-s2"]);
    let a = netsetup::attach(&net, &req("s5", &[], Some(&files)), &p).unwrap();
    assert_eq!(
        a.allocation.ip.to_string(),
        "10.78.0.4",
        "s2's address, reclaimed"
    );
    assert_nothing_of(&net, "s2", &files);
}

#[test]
fn duplicate_host_port_is_refused() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    let net = network(tmp.path());
    netsetup::attach(&net, &req("a", &["8080:80"], Some(&files)), &add_netns("a")).unwrap();
    let e = netsetup::attach(
        &net,
        &req("b", &["9090:90", "8080:80"], Some(&files)),
        &add_netns("b"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "host port 8080/tcp is already published by container a"
    );
    assert_nothing_of(&net, "b", &files);
    assert_eq!(netsetup::published_ports().unwrap().len(), 1);
    // Same port number over udp is a different port.
    netsetup::attach(
        &net,
        &req("b", &["8080:80/udp"], Some(&files)),
        &netns_path("b"),
    )
    .unwrap();
    // Attaching the same id twice is refused and does not disturb the first.
    let e = netsetup::attach(&net, &req("a", &[], Some(&files)), &netns_path("b")).unwrap_err();
    assert!(matches!(e, Error::AlreadyAttached { .. }), "{e}");
    assert_eq!(netsetup::published_ports().unwrap().len(), 2);
    assert!(files.join("a/hosts").exists());
}

#[test]
fn connect_failure_leaves_nothing() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    let net = network(tmp.path());
    let p = add_netns("x");
    // An eth0 already in the netns makes the veth creation fail half-way through attach.
    run(
        "ip",
        &[
            "-n", "x", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ],
    );
    let e = netsetup::attach(&net, &req("x", &["8083:80"], Some(&files)), &p).unwrap_err();
    assert!(e.to_string().contains("File exists"), "{e}");
    assert_nothing_of(&net, "x", &files);
    assert!(netsetup::published_ports().unwrap().is_empty());
    assert!(!Path::new("/nonexistent-netns").exists());
    let e = netsetup::attach(
        &net,
        &req("y", &[], Some(&files)),
        Path::new("/nonexistent-netns"),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("netns /nonexistent-netns:"),
        "{e}"
    );
    assert_nothing_of(&net, "y", &files);
}

fn netsetup_bin() -> &'static str {
    env!("CARGO_BIN_EXE_netsetup")
}

/// Runs a CNI plugin as a CNI runtime does: `CNI_*` variables, the config on stdin, the result
/// (or an error object) on stdout. `argv[0]` is run: netsetup, a reference plugin's path, or
/// a wrapper such as strace with the plugin last.
fn cni_run(
    argv: &[&str],
    cmd: &str,
    id: &str,
    netns: &str,
    ifname: &str,
    conf: &str,
) -> (bool, serde_json::Value) {
    let plugin = argv.last().unwrap();
    let out = minc_tests::output_with_stdin(
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", "/usr/lib/cni"),
        conf.as_bytes(),
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let v = if out.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{plugin} {cmd}: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    };
    (out.status.success(), v)
}

fn cni(cmd: &str, id: &str, netns: &str, conf: &str) -> (bool, serde_json::Value) {
    cni_run(&[netsetup_bin()], cmd, id, netns, "eth0", conf)
}

/// A config with `extra` keys merged in.
fn conf_with(base: &serde_json::Value, extra: serde_json::Value) -> String {
    let mut c = base.clone();
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

#[test]
fn cni_plugin_mode() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("cni");
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let p = add_netns("cni-1");
    let pn = p.to_str().unwrap();
    // Port mappings as containerd's go-cni sends them: Go field names, any case.
    let base = serde_json::json!({
        "cniVersion": "1.0.0", "name": "cnitest", "type": "netsetup",
        "bridge": "cni-minc0", "subnet": "10.79.0.0/24", "dns": ["192.0.2.53"], "dataDir": data,
        "runtimeConfig": {"portMappings": [{"HostPort": 8090, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""}]},
    });
    let conf = base.to_string();
    let (ok, v) = cni("VERSION", "", "", r#"{"cniVersion":"1.1.0"}"#);
    assert!(ok, "{v}");
    for want in ["0.4.0", "1.0.0", "1.1.0"] {
        assert!(
            v["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&want.into()),
            "{v}"
        );
    }
    let (ok, r) = cni("ADD", id, pn, &conf);
    assert!(ok, "{r}");
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["ips"][0]["address"], "10.79.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.79.0.1");
    assert_eq!(r["ips"][0]["interface"], 2);
    assert!(
        r["ips"][0].get("version").is_none(),
        "no version key in 1.0.0"
    );
    assert_eq!(r["interfaces"][0]["name"], "cni-minc0");
    assert_eq!(r["interfaces"][2]["name"], "eth0");
    assert_eq!(r["interfaces"][2]["sandbox"], pn);
    assert_eq!(r["interfaces"][2]["mac"].as_str().unwrap().len(), 17);
    assert_eq!(
        r["routes"][0],
        serde_json::json!({"dst": "0.0.0.0/0", "gw": "10.79.0.1"})
    );
    assert_eq!(r["dns"]["nameservers"][0], "192.0.2.53");
    // The published port works.
    let s = serve(Some(p.clone()), "0.0.0.0:80", 2, "cni");
    assert_eq!(fetch(None, "127.0.0.1:8090"), "hello from cni");
    let check = conf_with(&base, serde_json::json!({"prevResult": r}));
    let (ok, e) = cni("CHECK", id, pn, &check);
    assert!(ok, "{e}");
    // ADD again for the same container (a runtime's retry) answers the same, and still works.
    let (ok, r2) = cni("ADD", id, pn, &conf);
    assert!(ok, "{r2}");
    assert_eq!(r2["ips"], r["ips"]);
    assert_eq!(fetch(None, "127.0.0.1:8090"), "hello from cni");
    s.join().unwrap();
    assert_eq!(netsetup::published_ports().unwrap().len(), 1);
    // DEL, twice, and nothing is left.
    assert!(cni("DEL", id, pn, &conf).0);
    assert!(cni("DEL", id, "", &conf).0);
    assert!(!links().contains("veth"));
    assert!(netsetup::published_ports().unwrap().is_empty());
    let (ok, e) = cni("CHECK", id, pn, &check);
    assert!(!ok && e["code"] == 3, "{e}");
    let (ok, e) = cni(
        "ADD",
        id,
        pn,
        r#"{"cniVersion":"1.0.0","name":"x","type":"netsetup","subnet":"10.0.0.0/33"}"#,
    );
    assert!(!ok && e["code"] == 7 && e["cniVersion"] == "1.0.0", "{e}");
    // A config of just cniVersion, name and type works (defaults).
    let plain = serde_json::json!({"cniVersion": "1.0.0", "name": "minc", "type": "netsetup", "dataDir": data}).to_string();
    let (ok, r) = cni("ADD", "plain", pn, &plain);
    assert!(ok, "{r}");
    assert_eq!(r["ips"][0]["address"], "10.77.0.2/16");
    assert!(cni("DEL", "plain", pn, &plain).0);
    assert!(!Path::new("/run/netns/minc-plain").exists());
    // The ipRanges and dns capabilities, as the runtime passes them.
    let caps = serde_json::json!({"cniVersion": "1.1.0", "name": "ranged", "type": "netsetup",
        "bridge": "rng0", "dataDir": data, "dns": {"nameservers": ["192.0.2.1"]},
        "runtimeConfig": {
            "ipRanges": [[{"subnet": "10.81.4.0/24", "rangeStart": "10.81.4.200", "rangeEnd": "10.81.4.201"}]],
            "dns": {"servers": ["192.0.2.99"], "searches": ["svc.example"], "options": ["ndots:5"]}}})
    .to_string();
    let (ok, r) = cni("ADD", "ranged", pn, &caps);
    assert!(ok, "{r}");
    assert_eq!(r["ips"][0]["address"], "10.81.4.200/24");
    assert_eq!(r["ips"][0]["gateway"], "10.81.4.1");
    assert_eq!(
        r["dns"],
        serde_json::json!({"nameservers": ["192.0.2.99"], "search": ["svc.example"], "options": ["ndots:5"]})
    );
    assert!(run("ip", &["-br", "addr", "show", "rng0"]).contains("10.81.4.1/24"));
    assert!(cni("DEL", "ranged", pn, &caps).0);
}

/// netsetup in a chain with the reference plugins, for each spec version they share: after
/// `loopback` (netsetup's addresses point past lo), before `tuning` (which reads netsetup's
/// result to find eth0) and `bandwidth` (which finds the host veth in it: how bandwidth
/// limits are done with netsetup). Then CHECK and DEL in reverse order.
#[test]
fn cni_chain_with_reference_plugins() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("cni");
    for (i, version) in ["0.4.0", "1.0.0"].into_iter().enumerate() {
        let id = format!("chain{i}");
        let p = add_netns(&id);
        let pn = p.to_str().unwrap();
        // The network config for plugin `ty`, with `extra` keys.
        let netconf = |ty: &str, extra: serde_json::Value| {
            let base = serde_json::json!({"cniVersion": version, "name": "chain", "type": ty, "dataDir": data});
            conf_with(&base, extra)
        };
        // `cmd` of the reference plugin `name` on `ifname`, with `extra` in its config.
        let reference = |name: &str, cmd: &str, ifname: &str, extra: serde_json::Value| {
            let plugin = format!("/usr/lib/cni/{name}");
            cni_run(&[&plugin], cmd, &id, pn, ifname, &netconf(name, extra))
        };
        let (ok, lo) = reference("loopback", "ADD", "lo", serde_json::json!({}));
        assert!(ok, "{lo}");
        let prev = |r: &serde_json::Value| serde_json::json!({ "prevResult": r });
        let (ok, r) = cni("ADD", &id, pn, &netconf("netsetup", prev(&lo)));
        assert!(ok, "{version}: {r}");
        assert_eq!(r["cniVersion"], version);
        assert_eq!(r["interfaces"][0]["name"], "lo");
        let mine = r["ips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|ip| ip["address"].as_str().unwrap().starts_with("10.77."))
            .unwrap()
            .clone();
        assert_eq!(mine["interface"], 3, "{r}");
        if version == "0.4.0" {
            assert_eq!(mine["version"], "4");
        }
        let mtu = serde_json::json!({"mtu": 1280, "prevResult": r});
        let (ok, r) = reference("tuning", "ADD", "eth0", mtu);
        assert!(ok, "tuning: {r}");
        assert!(run("ip", &["-n", &id, "link", "show", "eth0"]).contains("mtu 1280"));
        let bw = serde_json::json!({"runtimeConfig": {"bandwidth": {"ingressRate": 8000000, "ingressBurst": 80000}}, "prevResult": r});
        let (ok, r) = reference("bandwidth", "ADD", "eth0", bw.clone());
        assert!(ok, "bandwidth: {r}");
        let veth = netsetup::host_veth_name(
            &Network {
                data_dir: data.clone(),
                ..Default::default()
            },
            &id,
        );
        assert!(
            run("tc", &["qdisc", "show", "dev", &veth]).contains("tbf"),
            "no tbf on {veth}"
        );
        let (ok, e) = cni("CHECK", &id, pn, &netconf("netsetup", prev(&r)));
        assert!(ok, "{version} CHECK: {e}");
        // netsetup itself refuses a bandwidth request instead of ignoring it.
        let runtime_config = serde_json::json!({"runtimeConfig": bw["runtimeConfig"]});
        let (ok, e) = cni("ADD", "bw", pn, &netconf("netsetup", runtime_config));
        assert!(!ok && e["code"] == 2, "{e}");
        for (name, ifname) in [("bandwidth", "eth0"), ("tuning", "eth0")] {
            let (ok, e) = reference(name, "DEL", ifname, prev(&r));
            assert!(ok, "{name} DEL: {e}");
        }
        assert!(cni("DEL", &id, pn, &netconf("netsetup", prev(&r))).0);
        assert!(reference("loopback", "DEL", "lo", serde_json::json!({})).0);
        assert!(!links().contains("veth"), "{}", links());
    }
    assert!(netsetup::published_ports().unwrap().is_empty());
}

/// 1.1.0's STATUS and GC; CHECK and DEL across versions.
#[test]
fn cni_status_and_gc() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("cni");
    let base = serde_json::json!({"cniVersion": "1.1.0", "name": "gcnet", "type": "netsetup",
        "bridge": "gc0", "subnet": "10.80.0.0/29", "dataDir": data});
    let conf = base.to_string();
    let (ok, e) = cni("STATUS", "", "", &conf);
    assert!(ok, "{e}");
    let mut results = Vec::new();
    for id in ["a", "b", "c", "d", "e"] {
        let p = add_netns(id);
        let port = serde_json::json!({"runtimeConfig": {"portMappings": [{"hostPort": 7000 + id.as_bytes()[0] as u16, "containerPort": 80}]}});
        let (ok, r) = cni("ADD", id, p.to_str().unwrap(), &conf_with(&base, port));
        assert!(ok, "{r}");
        results.push(r);
    }
    // A /29 holds 5 containers: the network is not available for a sixth.
    let (ok, e) = cni("STATUS", "", "", &conf);
    assert!(!ok && e["code"] == 50, "{e}");
    // The runtime knows only a and c (as eth0) and e (as another interface): the rest goes.
    let gc = conf_with(
        &base,
        serde_json::json!({"cni.dev/valid-attachments": [
        {"containerID": "a", "ifname": "eth0"}, {"containerID": "c", "ifname": "eth0"},
        {"containerID": "e", "ifname": "net1"}]}),
    );
    let (ok, e) = cni("GC", "", "", &gc);
    assert!(ok, "{e}");
    let net = Network {
        name: "gcnet".into(),
        bridge: "gc0".into(),
        subnet: "10.80.0.0/29".parse().unwrap(),
        gateway: "10.80.0.1".parse().unwrap(),
        data_dir: data.clone(),
        ..Default::default()
    };
    let left: Vec<String> = netsetup::list(&net)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(left, ["a", "c"]);
    assert_eq!(netsetup::published_ports().unwrap().len(), 2);
    assert_eq!(links().matches("veth").count(), 2);
    for id in ["b", "d", "e"] {
        assert!(!Path::new(&format!("/run/netns/minc-{id}")).exists());
    }
    let (ok, e) = cni("STATUS", "", "", &conf);
    assert!(ok, "{e}");
    for (id, r) in [("a", &results[0]), ("c", &results[2])] {
        let p = netns_path(id);
        let check = conf_with(&base, serde_json::json!({"prevResult": r}));
        assert!(cni("CHECK", id, p.to_str().unwrap(), &check).0);
        assert!(cni("DEL", id, p.to_str().unwrap(), &check).0);
    }
    assert!(netsetup::list(&net).unwrap().is_empty());
    assert!(netsetup::reserved_ips(&net).is_empty());
}

/// An ADD killed at any step (the runtime's timeout, an OOM kill) is followed by an ADD that
/// works; a DEL whose config no longer parses still releases everything.
#[test]
fn cni_add_after_killed_add_and_lenient_del() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("cni");
    let base = serde_json::json!({"cniVersion": "1.0.0", "name": "killnet", "type": "netsetup",
        "dataDir": data, "runtimeConfig": {"portMappings": [{"hostPort": 8095, "containerPort": 80}]}});
    let conf = base.to_string();
    let p = add_netns("k");
    let pn = p.to_str().unwrap();
    for (syscall, nth) in [
        ("linkat", 1),
        ("linkat", 2),
        ("rename", 2),
        ("mount", 1),
        ("sendto", 5),
        ("sendto", 12),
    ] {
        let inject = format!("inject={syscall}:signal=KILL:when={nth}");
        let strace = [
            "strace",
            "-f",
            "-qq",
            "-o",
            "/dev/null",
            "-e",
            &inject,
            netsetup_bin(),
        ];
        let (ok, out) = cni_run(&strace, "ADD", "k", pn, "eth0", &conf);
        assert!(
            !ok && out.is_null(),
            "{syscall} #{nth}: the ADD was not killed"
        );
        let (ok, r) = cni("ADD", "k", pn, &conf);
        assert!(ok, "ADD after a kill at {syscall} #{nth}: {r}");
        let s = serve(Some(p.clone()), "0.0.0.0:80", 1, "k");
        assert_eq!(fetch(None, "127.0.0.1:8095"), "hello from k");
        s.join().unwrap();
        assert!(cni("DEL", "k", pn, &conf).0);
        assert!(!links().contains("veth"), "{}", links());
    }
    // A DEL whose config is broken everywhere but in name and dataDir releases what ADD made.
    let (ok, r) = cni("ADD", "k", pn, &conf);
    assert!(ok, "{r}");
    let broken = conf_with(
        &base,
        serde_json::json!({"cniVersion": "7.7.7", "subnet": "nope", "mtu": "x",
        "runtimeConfig": {"portMappings": [{"HostPort": "eighty"}], "ipRanges": 3}}),
    );
    let (ok, e) = cni("DEL", "k", pn, &broken);
    assert!(ok, "{e}");
    assert!(!links().contains("veth"));
    assert!(netsetup::published_ports().unwrap().is_empty());
    let net = Network {
        name: "killnet".into(),
        data_dir: data.clone(),
        ..Default::default()
    };
    assert!(netsetup::reserved_ips(&net).is_empty());
    assert!(netsetup::list(&net).unwrap().is_empty());
    assert!(!Path::new("/run/netns/minc-k").exists());
    // Not even JSON: still exit 0.
    assert!(cni("DEL", "k", pn, "not json").0);
}

#[test]
fn explain_prints_commands() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("d");
    let p = add_netns("e1");
    let out = std::process::Command::new(netsetup_bin())
        .args([
            "--explain",
            "attach",
            "--id",
            "e1",
            "--netns",
            p.to_str().unwrap(),
            "-p",
            "8084:80",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    // Whole lines, in this order (others may come between).
    let want = [
        "+ mount --bind /run/netns/e1 /run/netns/minc-e1",
        "+ ip link add minc0 type bridge",
        "+ ip addr replace 10.77.0.1/16 broadcast 10.77.255.255 dev minc0",
        "+ ip -n minc-e1 addr add 10.77.0.2/16 broadcast 10.77.255.255 dev eth0",
        "+ ip -n minc-e1 route add default via 10.77.0.1 dev eth0",
        "+ sysctl -w net.ipv4.ip_forward=1",
        "+ nft -f - <<'EOF'",
        "add table inet minc",
        "add element inet minc tcp4 { 8084 : 10.77.0.2 . 80 }",
        "add element bridge minc spoof4 { \"vethd2c5806e\" . 10.77.0.2 }",
        "EOF",
    ];
    let mut at = 0;
    for w in want {
        let i = lines[at..]
            .iter()
            .position(|l| *l == w)
            .unwrap_or_else(|| panic!("missing {w:?} (in order) in:\n{err}"));
        at += i + 1;
    }
    // Every line is a command, a comment, or part of a heredoc.
    let mut in_heredoc = false;
    for l in &lines {
        if in_heredoc {
            in_heredoc = *l != "EOF";
        } else {
            assert!(l.starts_with("+ "), "not an explain line: {l:?}\n{err}");
            in_heredoc = l.ends_with("<<'EOF'");
        }
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allocation"]["ip"], "10.77.0.2");
    let out = std::process::Command::new(netsetup_bin())
        .args(["detach", "--id", "e1", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "quiet without --explain"
    );
    assert!(!links().contains("veth"));
}

#[test]
fn deleted_nft_table_is_rebuilt() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    netsetup::attach(&net, &req("t1", &["8085:80"], None), &add_netns("t1")).unwrap();
    // Someone removes our table: the next attach notices and rebuilds it in full.
    run("nft", &["delete", "table", "inet", "minc"]);
    netsetup::attach(&net, &req("t2", &["8086:80"], None), &add_netns("t2")).unwrap();
    let table = run("nft", &["list", "table", "inet", "minc"]);
    assert!(
        table.contains("oifname != \"minc0\" masquerade")
            && table.contains("8086 : 10.77.0.3 . 80"),
        "{table}"
    );
    // Teardown copes with elements that vanished with the old table.
    netsetup::detach(&net, "t1").unwrap();
    netsetup::detach(&net, "t2").unwrap();
    assert!(netsetup::published_ports().unwrap().is_empty());
}

/// The CVE-2020-8558 guard. A published port sets route_localnet=1 on the bridge (so the
/// host's own 127.0.0.1 reaches containers); without minc's input rule a container could then
/// reach any service bound to the host's 127.0.0.1 by sending a frame to the bridge with
/// destination 127.0.0.1 (CAP_NET_RAW, which containers have, is enough). Shown both ways:
/// with the rule the host listener gets nothing; with the rule removed, the same frame
/// arrives (so the test can see the attack when it works).
#[test]
fn container_cannot_reach_host_loopback() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    let c = add_netns("evil");
    netsetup::attach(&net, &req("evil", &["8087:80"], None), &c).unwrap();
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/conf/minc0/route_localnet")
            .unwrap()
            .trim(),
        "1"
    );
    let bridge_mac = mac_of(None, "minc0");
    let witness = UdpWitness::bind("127.0.0.1:9999");
    assert!(
        !witness.frame_arrives("evil", bridge_mac, "10.77.0.2", b"guarded"),
        "a container reached the host's 127.0.0.1"
    );
    // The published port, from the host's 127.0.0.1, still works (DNATed traffic is allowed).
    let s = serve(Some(c.clone()), "0.0.0.0:80", 1, "evil");
    assert_eq!(fetch(None, "127.0.0.1:8087"), "hello from evil");
    s.join().unwrap();
    // Control: without the rule the frame is delivered.
    run("nft", &["flush", "chain", "inet", "minc", "input"]);
    assert!(
        witness.frame_arrives("evil", bridge_mac, "10.77.0.2", b"unguarded"),
        "the control frame did not arrive: the test proves nothing"
    );
}

/// `kill -9` of the attaching process at any step of an attach (here: at each of its
/// reservation, record, mount, netlink and file syscalls in turn, with strace's fault
/// injection) never blocks the port or leaks an address: once the container is gone, the next
/// attach of the same port works, and gc leaves nothing behind.
#[test]
fn killed_attach_never_blocks_or_leaks() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    let data = net.data_dir.to_str().unwrap().to_string();
    let mut kills = 0;
    for syscall in [
        "openat", "write", "linkat", "rename", "mount", "sendto", "sendmsg",
    ] {
        for nth in 1.. {
            let id = format!("k-{syscall}-{nth}");
            let p = add_netns(&id);
            let st = std::process::Command::new("strace")
                .args([
                    "-f",
                    "-qq",
                    "-o",
                    "/dev/null",
                    "-e",
                    &format!("inject={syscall}:signal=KILL:when={nth}"),
                ])
                .arg(netsetup_bin())
                .args([
                    "attach",
                    "--id",
                    &id,
                    "--netns",
                    p.to_str().unwrap(),
                    "-p",
                    "9000:80",
                    "--data-dir",
                    &data,
                ])
                .args(["--fallback-dns", "192.0.2.53"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            use std::os::unix::process::ExitStatusExt;
            // The container goes away with its runtime.
            run("ip", &["netns", "del", &id]);
            let fresh = add_netns("fresh");
            netsetup::attach(&net, &req("fresh", &["9000:80"], None), &fresh)
                .unwrap_or_else(|e| panic!("after a kill at {syscall} #{nth}: {e}"));
            netsetup::detach(&net, "fresh").unwrap();
            run("ip", &["netns", "del", "fresh"]);
            netsetup::gc(&net).unwrap();
            assert!(
                netsetup::reserved_ips(&net).is_empty(),
                "{syscall} #{nth}: {:?}",
                netsetup::reserved_ips(&net)
            );
            assert!(netsetup::list(&net).unwrap().is_empty(), "{syscall} #{nth}");
            let leftovers: Vec<PathBuf> = walk(&net.state_dir())
                .into_iter()
                .filter(|p| p.is_file() && !p.ends_with("lock") && !p.ends_with("last_reserved"))
                .collect();
            assert!(leftovers.is_empty(), "{syscall} #{nth}: {leftovers:?}");
            if st.success() {
                // This run was past the last such syscall: it attached; remove it too.
                netsetup::detach(&net, &id).unwrap();
                break;
            }
            assert_eq!(st.signal(), Some(9), "{syscall} #{nth}: {st}");
            kills += 1;
        }
    }
    assert!(kills > 20, "only {kills} kill points");
    assert_links_gone("veth", Duration::from_secs(1), "after every kill");
    assert!(netsetup::published_ports().unwrap().is_empty());
    assert_eq!(std::fs::read_dir("/run/netns").unwrap().count(), 0);
}

/// Attach and detach execute no program: with /usr/sbin (nft, ip, sysctl) hidden and no
/// PATH, the CLI still wires a container and its published port works.
#[test]
fn attach_and_detach_run_no_program() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("d");
    let p = add_netns("q");
    run("mount", &["-t", "tmpfs", "tmpfs", "/usr/sbin"]);
    assert!(!Path::new("/usr/sbin/nft").exists());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(netsetup_bin())
            .args(args)
            .args(["--data-dir", data.to_str().unwrap()])
            .env_clear()
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&[
        "attach",
        "--id",
        "q",
        "--netns",
        p.to_str().unwrap(),
        "-p",
        "8088:80",
    ]);
    let s = serve(Some(p.clone()), "0.0.0.0:80", 1, "q");
    assert_eq!(fetch(None, "127.0.0.1:8088"), "hello from q");
    s.join().unwrap();
    cli(&["detach", "--id", "q"]);
    assert!(netsetup::published_ports().unwrap().is_empty());
    assert!(!Path::new("/run/netns/minc-q").exists());
}
