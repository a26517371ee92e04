//! End-to-end tests against the real kernel. Each runs in its own sandbox (net, mount and pid
//! namespaces that vanish with it): "containers" are `ip netns add` namespaces, "wan" is
//! another netns reached over a veth on 203.0.113.0/24. No packet leaves the sandbox.

use minc_tests::{run, sandbox};
use netsetup::{Error, Network, Request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

const HOST_WAN: &str = "203.0.113.1";
const WAN: &str = "203.0.113.2";

fn ns(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

fn add_ns(name: &str) -> PathBuf {
    run("ip", &["netns", "add", name]);
    ns(name)
}

/// The "wan" netns: 203.0.113.2, linked to the sandbox host (203.0.113.1), which routes its
/// default traffic there over an MTU-1400 link (so MTU detection has something to find).
fn setup_wan() {
    add_ns("wan");
    run(
        "ip",
        &[
            "link", "add", "wan0", "mtu", "1400", "type", "veth", "peer", "name", "wan1", "mtu",
            "1400", "netns", "wan",
        ],
    );
    run(
        "ip",
        &["addr", "add", &format!("{HOST_WAN}/24"), "dev", "wan0"],
    );
    run("ip", &["link", "set", "wan0", "up"]);
    run(
        "ip",
        &[
            "-n",
            "wan",
            "addr",
            "add",
            &format!("{WAN}/24"),
            "dev",
            "wan1",
        ],
    );
    run("ip", &["-n", "wan", "link", "set", "wan1", "up"]);
    run("ip", &["-n", "wan", "link", "set", "lo", "up"]);
    run("ip", &["route", "add", "default", "via", WAN]);
}

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
        ports: ports.iter().map(|p| p.parse().unwrap()).collect(),
        files_dir: files.map(|f| f.join(id)),
        ..Default::default()
    }
}

/// Runs `f` on a thread inside the netns at `path` (None = the sandbox host).
fn in_ns<T: Send + 'static>(
    path: Option<PathBuf>,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    std::thread::spawn(move || {
        if let Some(p) = path {
            let f = std::fs::File::open(&p).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        }
        f()
    })
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
    let h = in_ns(path, move || {
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
    in_ns(path, move || {
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
    if !sandbox("connectivity_and_teardown") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    setup_wan();
    let net = network(tmp.path());
    let c1 = add_ns("c1");
    let c2 = add_ns("c2");
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
    assert_eq!(
        std::fs::read_to_string("/etc/netns/minc-c1/resolv.conf").unwrap(),
        resolv
    );
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
    let s = serve(Some(ns("wan")), "0.0.0.0:9002", 1, "wan");
    assert_eq!(
        fetch(Some(c1.clone()), &format!("{WAN}:9002")),
        "hello from wan"
    );
    assert_eq!(s.join().unwrap()[0].ip().to_string(), HOST_WAN);

    // Published port 8080 -> c1:8000 from everywhere.
    let s = serve(Some(c1.clone()), "0.0.0.0:8000", 6, "c1");
    let pub_host = format!("{HOST_WAN}:8080");
    assert_eq!(
        fetch(Some(ns("wan")), &pub_host),
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
    let u = in_ns(Some(c1.clone()), move || {
        let s = UdpSocket::bind("0.0.0.0:53").unwrap();
        tx.send(()).unwrap();
        let mut b = [0u8; 64];
        let (n, peer) = s.recv_from(&mut b).unwrap();
        s.send_to(&b[..n], peer).unwrap();
        peer
    });
    rx.recv().unwrap();
    let got = in_ns(Some(ns("wan")), || {
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
    assert!(!Path::new("/etc/netns/minc-c1").exists());
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
    if !sandbox("detach_after_netns_is_gone") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    let c = add_ns("gone");
    let a = netsetup::attach(
        &net,
        &req("gone", &["8081:80"], Some(&tmp.path().join("f"))),
        &c,
    )
    .unwrap();
    // The container dies: every handle on its netns goes, and the veth with it.
    run("ip", &["netns", "del", "gone"]);
    run("ip", &["netns", "del", "minc-gone"]);
    for _ in 0..50 {
        if !links().contains(&a.host_veth) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!links().contains(&a.host_veth));
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
    if !sandbox("parallel_attaches") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    const N: usize = 50;
    let handles: Vec<_> = (0..N)
        .map(|i| {
            let net = net.clone();
            std::thread::spawn(move || {
                let id = format!("p{i}");
                let path = add_ns(&id);
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

/// Nothing of `id` exists: no state, no address, no veth, no /run/netns entry, no files.
fn assert_nothing_of(net: &Network, id: &str, files: &Path) {
    assert!(netsetup::allocation(net, id).unwrap().is_none());
    assert!(!netsetup::reserved_ips(net).iter().any(|(_, o)| o == id));
    assert!(!links().contains(&netsetup::host_veth_name(net, id)));
    assert!(!Path::new(&format!("/run/netns/minc-{id}")).exists());
    assert!(!Path::new(&format!("/etc/netns/minc-{id}")).exists());
    assert!(!files.join(id).join("resolv.conf").exists());
}

#[test]
fn exhausted_pool_and_stale_reclaim() {
    if !sandbox("exhausted_pool_and_stale_reclaim") {
        return;
    }
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
        netsetup::attach(&net, &req(&id, &[], Some(&files)), &add_ns(&id)).unwrap();
    }
    let p = add_ns("s5");
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
    if !sandbox("duplicate_host_port_is_refused") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    let net = network(tmp.path());
    netsetup::attach(&net, &req("a", &["8080:80"], Some(&files)), &add_ns("a")).unwrap();
    let e = netsetup::attach(
        &net,
        &req("b", &["9090:90", "8080:80"], Some(&files)),
        &add_ns("b"),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "host port 8080/tcp is already published by container a"
    );
    assert_nothing_of(&net, "b", &files);
    assert_eq!(netsetup::published_ports().unwrap().len(), 1);
    // Same port number over udp is a different port.
    netsetup::attach(&net, &req("b", &["8080:80/udp"], Some(&files)), &ns("b")).unwrap();
    // Attaching the same id twice is refused and does not disturb the first.
    let e = netsetup::attach(&net, &req("a", &[], Some(&files)), &ns("b")).unwrap_err();
    assert!(matches!(e, Error::AlreadyAttached { .. }), "{e}");
    assert_eq!(netsetup::published_ports().unwrap().len(), 2);
    assert!(files.join("a/hosts").exists());
}

#[test]
fn connect_failure_leaves_nothing() {
    if !sandbox("connect_failure_leaves_nothing") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let files = tmp.path().join("files");
    let net = network(tmp.path());
    let p = add_ns("x");
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

fn cni(cmd: &str, id: &str, netns: &str, conf: &str) -> (bool, serde_json::Value) {
    let mut child = std::process::Command::new(netsetup_bin())
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = if out.stdout.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap()
    };
    (out.status.success(), v)
}

#[test]
fn cni_plugin_mode() {
    if !sandbox("cni_plugin_mode") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("cni");
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let p = add_ns("cni-1");
    let conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "cnitest", "type": "netsetup",
        "bridge": "cni-minc0", "subnet": "10.79.0.0/24", "dns": ["192.0.2.53"], "dataDir": data,
        "runtimeConfig": {"portMappings": [{"hostPort": 8090, "containerPort": 80, "protocol": "tcp"}]},
    })
    .to_string();
    let (ok, v) = cni("VERSION", "", "", "{}");
    assert!(
        ok && v["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&"1.0.0".into()),
        "{v}"
    );
    let (ok, r) = cni("ADD", id, p.to_str().unwrap(), &conf);
    assert!(ok, "{r}");
    assert_eq!(r["cniVersion"], "1.0.0");
    assert_eq!(r["ips"][0]["address"], "10.79.0.2/24");
    assert_eq!(r["ips"][0]["gateway"], "10.79.0.1");
    assert_eq!(r["ips"][0]["interface"], 2);
    assert_eq!(r["interfaces"][0]["name"], "cni-minc0");
    assert_eq!(r["interfaces"][2]["name"], "eth0");
    assert_eq!(r["interfaces"][2]["sandbox"], p.to_str().unwrap());
    assert_eq!(r["interfaces"][2]["mac"].as_str().unwrap().len(), 17);
    assert_eq!(
        r["routes"][0],
        serde_json::json!({"dst": "0.0.0.0/0", "gw": "10.79.0.1"})
    );
    assert_eq!(r["dns"]["nameservers"][0], "192.0.2.53");
    // The published port works.
    let s = serve(Some(p.clone()), "0.0.0.0:80", 1, "cni");
    assert_eq!(fetch(None, "127.0.0.1:8090"), "hello from cni");
    s.join().unwrap();
    assert!(cni("CHECK", id, p.to_str().unwrap(), &conf).0);
    // A second ADD for the same container is an error object on stdout.
    let (ok, e) = cni("ADD", id, p.to_str().unwrap(), &conf);
    assert!(!ok);
    assert_eq!(e["code"], 100);
    assert!(
        e["msg"].as_str().unwrap().contains("already attached"),
        "{e}"
    );
    // DEL, twice, and nothing is left.
    assert!(cni("DEL", id, p.to_str().unwrap(), &conf).0);
    assert!(cni("DEL", id, "", &conf).0);
    assert!(!links().contains("veth"));
    assert!(netsetup::published_ports().unwrap().is_empty());
    let (ok, e) = cni("CHECK", id, p.to_str().unwrap(), &conf);
    assert!(!ok && e["code"] == 3, "{e}");
    let (ok, e) = cni(
        "ADD",
        id,
        p.to_str().unwrap(),
        r#"{"cniVersion":"1.0.0","name":"x","type":"netsetup","subnet":"10.0.0.0/33"}"#,
    );
    assert!(!ok && e["code"] == 7 && e["cniVersion"] == "1.0.0", "{e}");
    // A config of just cniVersion, name and type works (defaults).
    let (ok, r) = cni("ADD", "plain", p.to_str().unwrap(), &serde_json::json!({"cniVersion": "1.0.0", "name": "minc", "type": "netsetup", "dataDir": data}).to_string());
    assert!(ok, "{r}");
    assert_eq!(r["ips"][0]["address"], "10.77.0.2/16");
    assert!(cni("DEL", "plain", p.to_str().unwrap(), &serde_json::json!({"cniVersion": "1.0.0", "name": "minc", "type": "netsetup", "dataDir": data}).to_string()).0);
}

#[test]
fn explain_prints_commands() {
    if !sandbox("explain_prints_commands") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let data = tmp.path().join("d");
    let p = add_ns("e1");
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
    for want in [
        "+ ip link add minc0 type bridge",
        "type veth peer name eth0",
        "+ ip -n minc-e1 addr add 10.77.0.2/16 dev eth0",
        "+ ip -n minc-e1 route add default via 10.77.0.1 dev eth0",
        "+ sysctl -w net.ipv4.ip_forward=1",
        "+ nft add element inet minc tcp_addr { 8084 : 10.77.0.2 }",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(
        err.lines().all(|l| l.starts_with("+ ")),
        "only explain lines:\n{err}"
    );
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
    if !sandbox("deleted_nft_table_is_rebuilt") {
        return;
    }
    let tmp = minc_tests::tempdir();
    let net = network(tmp.path());
    netsetup::attach(&net, &req("t1", &["8085:80"], None), &add_ns("t1")).unwrap();
    // Someone removes our table: the next attach notices and rebuilds it in full.
    run("nft", &["delete", "table", "inet", "minc"]);
    netsetup::attach(&net, &req("t2", &["8086:80"], None), &add_ns("t2")).unwrap();
    let table = run("nft", &["list", "table", "inet", "minc"]);
    assert!(
        table.contains("oifname != \"minc0\" masquerade") && table.contains("8086 : 10.77.0.3"),
        "{table}"
    );
    // Teardown copes with elements that vanished with the old table.
    netsetup::detach(&net, "t1").unwrap();
    netsetup::detach(&net, "t2").unwrap();
    assert!(netsetup::published_ports().unwrap().is_empty());
}
