//! End-to-end tests of networks as people use them: user-defined networks with names that
//! resolve and isolation between them, multi-homed containers, `--internal`, `host`, `none`
//! and `container:NAME`, IPv6, the forms of `-p`, anti-spoofing, and what a killed `run`
//! leaves behind.
//!
//! Each test runs in its own sandbox (network, mount and PID namespaces) that stands in for
//! the host; "the internet" is a `wan` netns at 203.0.113.2 and 2001:db8::2 behind the
//! sandbox's 203.0.113.1 and 2001:db8::1. The host's resolver is a small DNS server of the
//! test's own on 127.0.0.53 (where systemd-resolved listens), named by a resolv.conf bound
//! over /etc/resolv.conf inside the sandbox: it knows one name, `outside.example`.

use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use minc_tests::docker_face::DockerFace;
use minc_tests::files_under;
use minc_tests::net::{
    assert_links_gone, echo_get, echo_ok, in_netns, link_names, mac_of, netns_path, send_frame,
    setup_wan, Frame, UdpWitness,
};
use serde_json::Value;

const MINC: &str = env!("CARGO_BIN_EXE_minc");
const OUTSIDE: &str = "192.0.2.99";

fn sh(cmd: &str) -> String {
    minc_tests::run("sh", &["-c", cmd])
}

/// The sandbox as a host: a wan link (IPv4 and IPv6) with default routes, a loopback DNS
/// server, a busybox image.
fn host() -> DockerFace {
    setup_wan(None);
    let m = DockerFace::new(MINC);
    let conf = m.dir.join("resolv.conf");
    std::fs::write(&conf, "nameserver 127.0.0.53\nsearch corp.example\n").unwrap();
    minc_tests::run(
        "mount",
        &["--bind", conf.to_str().unwrap(), "/etc/resolv.conf"],
    );
    fake_upstream("127.0.0.53:53");
    m.busybox_image(&[]);
    m
}

/// `sh -c CMD` in a new busybox container with `flags`; returns (exit code, output).
fn bb(h: &DockerFace, flags: &[&str], cmd: &str) -> (i32, String) {
    let mut args = vec!["run", "--rm"];
    args.extend(flags);
    args.extend(["busybox", "sh", "-c", cmd]);
    let out = h.minc(&args);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn ip_on(h: &DockerFace, name: &str, net: &str) -> String {
    h.inspect(name)["Network"]["Networks"][net]["IPAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no address on {net}"))
        .to_string()
}

/// A DNS server of the test's own: `outside.example` is 192.0.2.99, every other name does not
/// exist. Runs on a thread for the rest of the sandbox's life.
fn fake_upstream(addr: &str) {
    let s = UdpSocket::bind(addr).unwrap();
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, from)) = s.recv_from(&mut b) {
            let q = &b[..n];
            // The question ends with its name's 0 byte, then type and class.
            let Some(end) = q[12..].iter().position(|&x| x == 0).map(|i| 12 + i + 5) else {
                continue;
            };
            let name = &q[12..end - 4];
            let known = name == b"\x07outside\x07example\x00";
            let mut r = q[..end].to_vec();
            r[2] |= 0x80; // QR
            r[3] = 0x80 | if known { 0 } else { 3 }; // RA, NOERROR or NXDOMAIN
            r[6..12].copy_from_slice(&[0, u8::from(known), 0, 0, 0, 0]);
            if known {
                r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 99]);
            }
            let _ = s.send_to(&r, from);
        }
    });
}

/// The resolvers running, as (pid, RSS in kB, network).
fn resolvers() -> Vec<(i32, u64, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args[0].contains("minc-resolver") {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        let net = args
            .iter()
            .position(|a| a == "--network")
            .map(|i| args[i + 1].clone())
            .unwrap_or_default();
        v.push((pid, rss, net));
    }
    v
}

/// The addresses `nslookup` printed for `name` (or for `name` with a search domain appended,
/// which is what busybox's nslookup asks).
fn resolved(out: &str, name: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut on = false;
    for l in out.lines() {
        if l.starts_with("Server:") {
            on = false;
        } else if let Some(n) = l.strip_prefix("Name:") {
            let n = n.trim();
            on = n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('.'));
        } else if let (true, Some(a)) = (on, l.strip_prefix("Address:")) {
            if !v.contains(&a.trim().to_string()) {
                v.push(a.trim().to_string());
            }
        }
    }
    v
}

#[test]
fn user_networks_resolve_isolate_and_multihome() {
    minc_tests::sandbox!();
    let h = host();
    h.ok(&["network", "create", "a"]);
    h.ok(&["network", "create", "b", "--subnet", "10.90.0.0/24"]);
    let ls = h.ok(&["network", "ls"]);
    assert!(
        ls.contains("10.90.0.0/24") && ls.contains(" bridge "),
        "{ls}"
    );
    assert!(resolvers().is_empty(), "no container, no resolver");
    h.run_d(
        "web-a",
        &["--network", "a", "--network-alias", "svc", "echo-server"],
    );
    h.run_d(
        "web-b",
        &["--network", "b", "--network-alias", "svc", "echo-server"],
    );
    let (ip_a, ip_b) = (ip_on(&h, "web-a", "a"), ip_on(&h, "web-b", "b"));
    assert!(ip_b.starts_with("10.90.0."), "{ip_b}");
    let running = resolvers();
    assert_eq!(running.len(), 2, "one resolver per network: {running:?}");
    for (pid, rss, net) in &running {
        // Measured, not asserted (README reports it): the target is under 2 MB.
        println!("resolver of network {net} (pid {pid}): {rss} kB RSS");
    }

    // On a: a's names and aliases, not b's; the rest through the host's resolver (a loopback
    // one, which a container could not reach itself).
    let (code, out) = bb(&h,
        &["--network", "a"],
        "cat /etc/resolv.conf; nslookup web-a; nslookup svc; nslookup outside.example; nslookup web-b; echo rc=$?",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("nameserver 10.78.0.1\n") && out.contains("search corp.example"),
        "{out}"
    );
    assert_eq!(resolved(&out, "web-a"), [ip_a.as_str()], "{out}");
    assert_eq!(resolved(&out, "svc"), [ip_a.as_str()], "{out}");
    assert_eq!(resolved(&out, "outside.example"), [OUTSIDE], "{out}");
    assert!(
        resolved(&out, "web-b").is_empty() && out.contains("rc=1"),
        "{out}"
    );
    // Names work for programs, and isolation holds: b's subnet is out of reach.
    let (code, out) = bb(&h,
        &["--network", "a"],
        &format!("wget -qO- http://web-a:8000/echo && echo; nc -w 2 {ip_b} 8000 </dev/null && echo reached-b; true"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Echo response"), "{out}");
    assert!(!out.contains("reached-b"), "a reached b: {out}");
    // And from b, the other way.
    let (_, out) = bb(
        &h,
        &["--network", "b"],
        &format!(
            "nslookup svc; nslookup web-a; nc -w 2 {ip_a} 8000 </dev/null && echo reached-a; true"
        ),
    );
    assert_eq!(resolved(&out, "svc"), [ip_b.as_str()], "{out}");
    assert!(
        resolved(&out, "web-a").is_empty() && !out.contains("reached-a"),
        "{out}"
    );
    // A query from another network's container is refused by a's resolver.
    let (_, out) = bb(&h, &["--network", "b"], "nslookup web-a 10.78.0.1; true");
    assert!(resolved(&out, "web-a").is_empty(), "{out}");

    // Multi-homed from the start: both networks' names, both reached.
    let (code, out) = bb(&h,
        &["--network", "a", "--network", "b"],
        "ip -o -4 addr show; nslookup web-a; nslookup web-b; wget -qO- http://web-a:8000/echo && wget -qO- http://web-b:8000/echo",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" eth0 ") && out.contains(" eth1 "), "{out}");
    assert_eq!(resolved(&out, "web-b"), [ip_b.as_str()], "{out}");
    assert_eq!(out.matches("Echo response").count(), 2, "{out}");

    // Multi-homed later: network connect, then disconnect, on a running container.
    h.run_d("mover", &["--network", "a", "busybox", "sleep", "600"]);
    let exec = |cmd: &str| {
        let out = h.minc(&["exec", "mover", "sh", "-c", cmd]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    assert!(resolved(&exec("nslookup web-b"), "web-b").is_empty());
    h.ok(&["network", "connect", "--alias", "mv", "b", "mover"]);
    let out = exec("ip -o -4 addr show eth1; nslookup web-b; wget -qO- http://web-b:8000/echo");
    assert!(out.contains("inet 10.90.0."), "{out}");
    assert_eq!(resolved(&out, "web-b"), [ip_b.as_str()], "{out}");
    assert!(out.contains("Echo response"), "{out}");
    let (_, out) = bb(&h, &["--network", "b"], "nslookup mv");
    assert_eq!(
        resolved(&out, "mv").len(),
        1,
        "the alias given at connect: {out}"
    );
    let err = h.fails(&["network", "connect", "b", "mover"]);
    assert!(err.contains("already on network b"), "{err}");
    h.ok(&["network", "disconnect", "b", "mover"]);
    let out = exec("ip -o link; nslookup web-b");
    assert!(!out.contains("eth1"), "{out}");
    assert!(resolved(&out, "web-b").is_empty(), "{out}");

    // A network in use cannot go; removing its containers stops its resolver.
    let err = h.fails(&["network", "rm", "b"]);
    assert!(err.contains("has containers connected"), "{err}");
    h.ok(&["rm", "-f", "web-b"]);
    assert_eq!(
        resolvers().len(),
        1,
        "b's resolver is gone with its last container"
    );
    let inspect: Value = serde_json::from_str(&h.ok(&["network", "inspect", "b"])).unwrap();
    let br = inspect[0]["Options"]["bridge"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link_names().contains(&br), "{:?}", link_names());
    h.ok(&["network", "rm", "b"]);
    assert!(
        !link_names().contains(&br),
        "the bridge goes: {:?}",
        link_names()
    );
    let table = sh("nft list table inet minc");
    assert!(!table.contains(&br), "its chains and element go: {table}");
    assert!(h.fails(&["network", "inspect", "b"]).contains("not found"));
    h.ok(&["rm", "-f", "web-a", "mover"]);
    assert!(resolvers().is_empty());
    let err = h.fails(&["network", "create", "a"]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(h.ok(&["network", "prune"]), "Deleted Networks:\na\n");
    assert_eq!(h.containers_left(), 0);
}

#[test]
fn internal_network_has_no_way_out() {
    minc_tests::sandbox!();
    let h = host();
    h.ok(&["network", "create", "--internal", "--opt", "mtu=1400", "in"]);
    h.run_d("peer", &["--network", "in", "echo-server"]);
    let (code, out) = bb(&h,
        &["--network", "in"],
        "ip link show eth0; ip route; wget -qO- http://peer:8000/echo; echo; nc -w 2 203.0.113.2 80 </dev/null; echo nc=$?; nslookup outside.example; echo ns=$?",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(" mtu 1400 "), "--opt mtu: {out}");
    assert!(!out.contains("default"), "no default route: {out}");
    assert!(
        out.contains("Echo response"),
        "containers reach each other: {out}"
    );
    assert!(out.contains("nc=1"), "no way out: {out}");
    assert!(
        out.contains("ns=1") && resolved(&out, "outside.example").is_empty(),
        "{out}"
    );
    // Even with a route of its own, a container gets nothing forwarded.
    let (_, out) = bb(
        &h,
        &["--network", "in"],
        "ip route add default via 10.78.0.1; nc -w 2 203.0.113.2 80 </dev/null; echo nc=$?",
    );
    assert!(out.contains("nc=1"), "{out}");
    let err = h.fails(&[
        "run",
        "-d",
        "--network",
        "in",
        "-p",
        "8080:8000",
        "echo-server",
    ]);
    assert!(err.contains("internal"), "{err}");
    // On an internal network and a routed one: out through the routed one, names of both,
    // and the routed network's resolver first (the internal one forwards nothing).
    h.ok(&["network", "create", "out"]);
    let (code, out) = bb(&h,
        &["--network", "in", "--network", "out"],
        "cat /etc/resolv.conf; ip route; wget -qO- http://peer:8000/echo; echo; nslookup outside.example",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Echo response"), "{out}");
    assert!(out.contains("default via 10.79.0.1 dev eth1"), "{out}");
    let ns: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(
        ns,
        ["nameserver 10.79.0.1", "nameserver 10.78.0.1"],
        "{out}"
    );
    assert_eq!(resolved(&out, "outside.example"), [OUTSIDE], "{out}");
    h.ok(&["rm", "-f", "peer"]);
    assert_eq!(h.containers_left(), 0);
}

#[test]
fn host_none_and_container_modes() {
    minc_tests::sandbox!();
    let h = host();
    h.run_d("web", &["-p", "8080:8000", "echo-server"]);
    let ip = h.inspect("web")["Network"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // container:NAME shares web's namespace: its address, and web's server on 127.0.0.1.
    let (code, out) = bb(
        &h,
        &["--network", "container:web"],
        "ip -o -4 addr show eth0; wget -qO- http://127.0.0.1:8000/echo",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("inet {ip}/")), "{out}");
    assert!(out.contains("Echo response"), "{out}");
    // A detached one outlives web; web's address goes with web, not left in the namespace.
    h.run_d(
        "pod",
        &["--network", "container:web", "busybox", "sleep", "600"],
    );
    assert_eq!(
        h.inspect("pod")["Network"]["Mode"],
        format!("container:{}", h.inspect("web")["Id"].as_str().unwrap())
    );
    h.ok(&["rm", "-f", "web"]);
    let out = h.ok(&["exec", "pod", "ip", "-o", "link"]);
    assert!(!out.contains("eth0"), "web's interface must go: {out}");
    h.ok(&["rm", "-f", "pod"]);
    // host: the host's links and resolv.conf.
    let (code, out) = bb(
        &h,
        &["--network", "host"],
        "ip -o link; cat /etc/resolv.conf",
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("wan0") && out.contains("nameserver 127.0.0.53"),
        "{out}"
    );
    // none: lo only.
    let (_, out) = bb(&h, &["--network", "none"], "ip -o link");
    assert_eq!(out.lines().count(), 1, "{out}");
    for (args, want) in [
        (vec!["--network", "host", "-p", "80"], "publish"),
        (
            vec!["--network", "none", "--network", "bridge"],
            "cannot be combined",
        ),
        (vec!["--network", "container:nope"], "no such container"),
        (
            vec!["--network", "bridge", "--network-alias", "x"],
            "user-defined networks only",
        ),
        (vec!["--network", "nope"], "network nope not found"),
        (vec!["--add-host", "x"], "expected NAME:IP"),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend(args);
        a.extend(["busybox", "true"]);
        let err = h.fails(&a);
        assert!(err.contains(want), "{a:?}: {err}");
    }
    // --add-host on the default bridge.
    let (_, out) = bb(
        &h,
        &[
            "--add-host",
            "db:192.0.2.7",
            "--add-host",
            "gw:host-gateway",
        ],
        "cat /etc/hosts",
    );
    assert!(
        out.contains("192.0.2.7\tdb\n") && out.contains("10.77.0.1\tgw\n"),
        "{out}"
    );
    assert_eq!(h.containers_left(), 0);
}

#[test]
fn ipv6_between_containers_and_through_a_published_port() {
    minc_tests::sandbox!();
    let h = host();
    h.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:77::/64",
        "v6",
    ]);
    h.run_d(
        "web6",
        &[
            "--network",
            "v6",
            "-p",
            "8080:8000",
            "echo-server",
            "--listen",
            "[::]:8000",
        ],
    );
    let ip6 = h.inspect("web6")["Network"]["Networks"]["v6"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip6.starts_with("fd00:77::"), "{ip6}");
    // Container to container over IPv6, by address and by name; the address is usable at
    // once (no duplicate address detection), and the default route is IPv6 too.
    let (code, out) = bb(&h,
        &["--network", "v6"],
        &format!("ip -6 route; ip -6 addr show eth0; wget -qO- http://[{ip6}]:8000/echo; echo; nslookup web6"),
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("default via fd00:77::1"), "{out}");
    let global = out
        .lines()
        .find(|l| l.contains("inet6 fd00:77::"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(!global.contains("tentative"), "usable at once: {out}");
    assert!(out.contains("Echo response"), "{out}");
    assert!(resolved(&out, "web6").contains(&ip6), "AAAA: {out}");
    // From the "internet" over IPv6 to the host's address, and over IPv4 to the same port.
    in_netns(&netns_path("wan"), || echo_ok("[2001:db8::1]:8080"));
    in_netns(&netns_path("wan"), || echo_ok("203.0.113.1:8080"));
    let ps = h.ok(&["ps"]);
    assert!(
        ps.contains("0.0.0.0:8080->8000/tcp, [::]:8080->8000/tcp"),
        "{ps}"
    );
    // Outbound IPv6 is masqueraded behind the host's address.
    let seen = std::thread::spawn(|| {
        in_netns(&netns_path("wan"), || {
            let l = std::net::TcpListener::bind("[2001:db8::2]:9000").unwrap();
            let (_, peer) = l.accept().unwrap();
            peer.ip()
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let (code, out) = bb(
        &h,
        &["--network", "v6"],
        "echo hi | nc -w 2 2001:db8::2 9000",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        seen.join().unwrap(),
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
    h.ok(&["rm", "-f", "web6"]);
    assert_links_gone("veth", Duration::from_secs(3), "rm -f web6");
}

#[test]
fn publish_forms() {
    minc_tests::sandbox!();
    let h = host();
    // One host address only.
    h.run_d("lo-only", &["-p", "127.0.0.1:8081:8000", "echo-server"]);
    echo_ok("127.0.0.1:8081");
    assert!(
        echo_get("203.0.113.1:8081").is_err(),
        "reachable on the host's other address"
    );
    assert!(
        in_netns(&netns_path("wan"), || echo_get("203.0.113.1:8081").is_err()),
        "reachable from outside"
    );
    // Random host ports: -p CONTAINER and -P (the image exposes 8000).
    h.run_d("rnd", &["-p", "8000", "echo-server"]);
    let port = h.ok(&["port", "rnd"]);
    let host_port: u16 = port
        .trim()
        .strip_prefix("8000/tcp -> 0.0.0.0:")
        .unwrap_or_else(|| panic!("{port}"))
        .parse()
        .unwrap();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let (lo, hi) = range.split_once('\t').unwrap();
    assert!(
        (lo.trim().parse().unwrap()..=hi.trim().parse().unwrap()).contains(&host_port),
        "{port}"
    );
    echo_ok(&format!("127.0.0.1:{host_port}"));
    assert_eq!(
        h.ok(&["port", "rnd", "8000/tcp"]).trim(),
        format!("0.0.0.0:{host_port}")
    );
    let ps = h.ok(&["ps"]);
    assert!(
        ps.contains(&format!("0.0.0.0:{host_port}->8000/tcp")),
        "{ps}"
    );
    assert!(ps.contains("127.0.0.1:8081->8000/tcp"), "{ps}");
    h.run_d("all", &["-P", "echo-server"]);
    let p = h.ok(&["port", "all", "8000"]);
    echo_ok(&format!(
        "127.0.0.1:{}",
        p.trim().rsplit(':').next().unwrap()
    ));
    // A range picks a free port in it.
    h.run_d("rng", &["-p", "8081-8083:8000", "echo-server"]);
    let p = h.ok(&["port", "rng", "8000"]);
    assert_eq!(
        p.trim(),
        "0.0.0.0:8082",
        "8081 is lo-only's on 127.0.0.1, so every address's is taken"
    );
    // A port a host process holds is reported, and nothing is left behind.
    let _holder = std::net::TcpListener::bind("0.0.0.0:8089").unwrap();
    let err = h.fails(&["run", "-d", "-p", "8089:8000", "echo-server"]);
    assert!(
        err.contains("host port 8089/tcp is in use by a process on the host"),
        "{err}"
    );
    let err = h.fails(&["run", "-d", "-p", "198.51.100.7:8090:8000", "echo-server"]);
    assert!(
        err.contains("198.51.100.7 is not an address of this host"),
        "{err}"
    );
    let err = h.fails(&["port", "rnd", "9999"]);
    assert!(err.contains("no public port"), "{err}");
    h.ok(&["rm", "-f", "lo-only", "rnd", "all", "rng"]);
    assert_eq!(h.containers_left(), 0);
    let table = sh("nft list table inet minc");
    assert!(!table.contains(" : 10.77."), "{table}");
}

/// A container cannot send as another: frames with another container's source address (IPv4,
/// or an ARP reply claiming its address) are dropped where they enter the bridge; its own go
/// through (the control that shows the test can see a frame arrive).
#[test]
fn spoofed_sources_are_dropped() {
    minc_tests::sandbox!();
    let h = host();
    h.ok(&["network", "create", "s"]);
    h.run_d("victim", &["--network", "s", "busybox", "sleep", "600"]);
    let id = h.run_d("attacker", &["--network", "s", "busybox", "sleep", "600"]);
    let ns = format!("minc-{}", id.trim());
    let (victim, attacker) = (ip_on(&h, "victim", "s"), ip_on(&h, "attacker", "s"));
    let bridge = h.ok(&["network", "inspect", "s"]);
    let bridge: Value = serde_json::from_str(&bridge).unwrap();
    let br = bridge[0]["Options"]["bridge"].as_str().unwrap().to_string();
    let gw = bridge[0]["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let gw_mac = mac_of(None, &br);
    let witness = UdpWitness::bind(&format!("{gw}:9999"));
    assert!(
        !witness.frame_arrives(&ns, gw_mac, &victim, b"spoofed"),
        "a frame with the victim's source address got through"
    );
    assert!(
        !witness.frame_arrives(&ns, gw_mac, "10.200.0.1", b"foreign"),
        "any address but its own is refused"
    );
    assert!(
        witness.frame_arrives(&ns, gw_mac, &attacker, b"honest"),
        "the control frame did not arrive: the test proves nothing"
    );
    // ARP: "the victim is at my MAC" is not believed by the host, which knows the victim.
    sh(&format!("busybox ping -c 1 -W 2 {victim} >/dev/null"));
    let victim_mac = || {
        let n = sh(&format!("ip -j neigh show {victim}"));
        let v: Value = serde_json::from_str(&n).unwrap();
        v[0]["lladdr"].as_str().unwrap_or_default().to_string()
    };
    let real = victim_mac();
    assert!(!real.is_empty(), "the host learnt the victim's address");
    let attacker_mac = mac_of(Some(&ns), "eth0")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    // Past ARP's locktime (1 s), so a reply could change the entry.
    std::thread::sleep(Duration::from_millis(1200));
    send_frame(&ns, gw_mac, &victim, &gw, Frame::ArpReply);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(victim_mac(), real, "ARP cache poisoned");
    let rules = sh("nft list table bridge minc");
    assert!(rules.contains(&format!(" . {attacker} ")), "{rules}");
    // Control: without minc's rules the same reply poisons the host's cache.
    sh("nft flush chain bridge minc prerouting");
    std::thread::sleep(Duration::from_millis(1200));
    send_frame(&ns, gw_mac, &victim, &gw, Frame::ArpReply);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        victim_mac(),
        attacker_mac,
        "the control reply did not take: the test proves nothing"
    );
    h.ok(&["rm", "-f", "victim", "attacker"]);
    let rules = sh("nft list table bridge minc");
    assert!(
        !rules.contains(&attacker),
        "anti-spoofing elements left: {rules}"
    );
}

/// Whatever moment `minc run` is killed at (SIGKILL at its Nth netlink, mount, link or rename
/// system call, with strace's fault injection) during the setup of a container on a network
/// with names and a published port, a later `rm -f` leaves nothing: no veth, no nft element,
/// no namespace name, no resolver, no state under either root; and nothing is ever written
/// under /etc (read-only for the whole test).
#[test]
fn killed_run_then_rm_leaves_nothing() {
    minc_tests::sandbox!();
    let h = host();
    h.ok(&["network", "create", "k"]);
    sh("mount --bind /etc /etc && mount -o remount,bind,ro /etc");
    let data = h.data.clone();
    let root = h.root.clone();
    let mut kills = 0;
    for syscall in ["sendto", "sendmsg", "mount", "linkat", "rename", "clone"] {
        // The first rename publishes the container's directory with its record (a run killed
        // before it leaves a `.new-*` directory, which `rm` sweeps).
        for nth in 1..60 {
            let name = format!("k-{syscall}-{nth}");
            // Only minc's own process: the container's init is not traced (its mounts are no
            // network step).
            let out = minc_tests::output_via_files(
                Command::new("strace")
                    .args(["-qq", "-o", "/dev/null", "-e"])
                    .arg(format!("inject={syscall}:signal=KILL:when={nth}"))
                    .arg(MINC)
                    .arg("--root")
                    .arg(&root)
                    .arg("--data-root")
                    .arg(&data)
                    .args([
                        "run",
                        "--rm",
                        "--name",
                        &name,
                        "--network",
                        "k",
                        "-p",
                        "8095:8000",
                        "echo-server",
                        "--help",
                    ]),
            );
            let _ = h.minc(&["rm", "-f", &name]);
            assert_nothing_left(&data, &root, &format!("{syscall} #{nth}"));
            use std::os::unix::process::ExitStatusExt;
            if out.status.signal().is_none() {
                break; // past the last such call: it ran to the end
            }
            kills += 1;
        }
    }
    println!("{kills} kill points, each followed by rm -f and a check");
    assert!(kills > 15, "only {kills} kill points");
}

fn assert_nothing_left(data: &Path, root: &Path, at: &str) {
    assert_links_gone("veth", Duration::from_secs(3), at);
    let table = sh("nft list ruleset");
    assert!(
        !table.contains(" : 10.") && !table.contains("\"veth"),
        "{at}: elements left: {table}"
    );
    assert_eq!(
        std::fs::read_dir("/run/netns").unwrap().count(),
        1,
        "{at}: only wan's name"
    );
    assert!(
        resolvers().is_empty(),
        "{at}: resolver left {:?}",
        resolvers()
    );
    assert_eq!(std::fs::read_dir("/etc/netns").unwrap().count(), 0, "{at}");
    let left: Vec<PathBuf> = files_under(&data.join("net"))
        .into_iter()
        .chain(files_under(&data.join("containers")))
        .chain(files_under(root))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            // What a data root keeps without containers: network definitions, the lock, the
            // resolver program, IPAM's round-robin mark.
            !(n == "network.json"
                || n == ".lock"
                || n == "last_reserved"
                || n.starts_with("minc-resolver-"))
        })
        .collect();
    assert!(left.is_empty(), "{at}: left under the roots: {left:?}");
}

/// A second data root on the same host gets a bridge and subnet of its own for its default
/// network, instead of an error, and both work side by side.
#[test]
fn second_data_root_gets_its_own_bridge() {
    minc_tests::sandbox!();
    let h = host();
    let other = DockerFace::new(MINC);
    h.run_d("one", &["-p", "8081:8000", "echo-server"]);
    other.run_d("two", &["-p", "8082:8000", "echo-server"]);
    echo_ok("127.0.0.1:8081");
    echo_ok("127.0.0.1:8082");
    let ls = other.ok(&["network", "ls"]);
    assert!(ls.contains("minc1") && ls.contains("10.78.0.0/16"), "{ls}");
    // A port the first data root publishes is refused by the second, saying so.
    let out = other.minc(&["run", "-d", "-p", "8081:8000", "echo-server"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already published by another minc data root"),
        "{err}"
    );
    other.ok(&["rm", "-f", "two"]);
    h.ok(&["rm", "-f", "one"]);
}
