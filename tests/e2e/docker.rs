//! End-to-end tests of the Docker-like face: `minc run IMAGE` with the built-in echo-server
//! image and a busybox image, real networking (bridge, NAT, published ports) and real TCP.
//!
//! Each test runs in its own sandbox (network, mount and PID namespaces) that stands in for
//! the host; "the internet" is a `wan` netns at 203.0.113.2 behind the sandbox's 203.0.113.1.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minc_tests::docker_face::DockerFace;
use minc_tests::net::{assert_links_gone, echo_ok, in_netns, netns_path, setup_wan, HOST_WAN};
use serde_json::Value;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// The sandbox as a host: a wan link with a default route (see [`setup_wan`]), and minc's
/// roots.
fn host() -> DockerFace {
    setup_wan(None);
    DockerFace::new(MINC)
}

fn ip_of(h: &DockerFace, name: &str) -> String {
    h.inspect(name)["Network"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Asserts that no container, veth, published port, mount, IP or state is left.
fn assert_clean(h: &DockerFace) {
    // A stopped container's veth pair goes with its namespace, which the kernel frees
    // asynchronously (netsetup does not wait for it): allow it a moment.
    assert_links_gone("veth", Duration::from_secs(3), "veth left");
    let table = Command::new("nft")
        .args(["list", "table", "inet", "minc"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(!table.contains(" : 10.77."), "map elements left: {table}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(h.data.to_str().unwrap()),
        "mounts left under the data root"
    );
    assert_eq!(h.containers_left(), 0, "container dirs left");
    let states = std::fs::read_dir(&h.root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("state.json").exists())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(states, 0, "runtime state left");
    let ips = std::fs::read_dir(h.data.join("net/minc"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("10.77."))
                .count()
        })
        .unwrap_or(0);
    assert_eq!(ips, 0, "IP allocations left");
}

/// The JSON body of an HTTP response printed by `nc` in a container.
fn body_json(resp: &str) -> Value {
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or(resp);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"))
}

#[test]
fn echo_server_end_to_end() {
    minc_tests::sandbox!();
    let h = host();
    h.busybox_image(&[]);
    let id = h.run_d("web", &["-p", "8080:8000", "echo-server"]);
    assert_eq!(id.trim().len(), 64, "run -d prints the id: {id}");

    // From the host's loopback, its own address, and from "the internet".
    echo_ok("127.0.0.1:8080");
    echo_ok(&format!("{HOST_WAN}:8080"));
    in_netns(&netns_path("wan"), || echo_ok(&format!("{HOST_WAN}:8080")));

    // From a second container, to the first by IP.
    let ip = ip_of(&h, "web");
    assert!(ip.starts_with("10.77."), "{ip}");
    let request = format!("printf 'GET /echo HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8000");
    let out = h.ok(&["run", "--rm", "busybox", "sh", "-c", &request]);
    assert_eq!(body_json(&out)["body"], "Echo response");

    // Inside a container: resolv.conf, hostname, eth0 address and default route.
    let out = h.ok(&[
        "run",
        "--rm",
        "--hostname",
        "inside",
        "--dns",
        "192.0.2.53",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; hostname; ip -o -4 addr show eth0; ip route",
    ]);
    assert!(out.contains("nameserver 192.0.2.53"), "{out}");
    assert!(out.lines().any(|l| l == "inside"), "{out}");
    assert!(out.contains("inet 10.77."), "{out}");
    assert!(out.contains("default via 10.77.0.1 dev eth0"), "{out}");

    // Logs show the requests; ps lists it with its ports.
    let logs = h.ok(&["logs", "web"]);
    assert!(logs.contains("GET /echo 200"), "{logs}");
    let ps = h.ok(&["ps"]);
    assert!(
        ps.contains("web") && ps.contains("0.0.0.0:8080->8000/tcp"),
        "{ps}"
    );

    h.ok(&["stop", "-t", "5", "web"]);
    let ps = h.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    h.ok(&["rm", "web"]);
    assert_clean(&h);
}

#[test]
fn foreground_rm_returns_exit_code() {
    minc_tests::sandbox!();
    let h = host();
    h.busybox_image(&[]);
    let out = h.minc(&["run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_clean(&h);

    // Ctrl-C: the first SIGINT is forwarded (sleep as PID 1 ignores it), the second kills;
    // --rm still removes everything.
    let mut child = h
        .cmd(&[
            "run", "--rm", "--name", "sleeper", "busybox", "sleep", "1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.ok(&["ps"]).contains("sleeper") {
        assert!(Instant::now() < deadline, "sleeper never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..2 {
        // SAFETY: signalling the minc process we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137), "killed by the second Ctrl-C");
    assert_clean(&h);

    // --network none: only lo.
    let out = h.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("lo: <LOOPBACK,UP"), "{out}");
    assert_clean(&h);
}

#[test]
fn rm_finishes_a_container_whose_removal_was_killed() {
    minc_tests::sandbox!();
    let h = host();
    h.busybox_image(&[]);
    let id = h.run_d("half", &["busybox", "sleep", "100"]);
    // An `rm` (or a runtime `delete`) killed while removing the directories, after their
    // lock files went: the next `rm -f` must still find and remove everything.
    std::fs::remove_file(h.data.join("containers").join(&id).join(".lock")).unwrap();
    std::fs::remove_file(h.root.join(&id).join(".lock")).unwrap();
    h.ok(&["rm", "-f", "half"]);
    assert_clean(&h);
}

#[test]
fn ports_are_published_once() {
    minc_tests::sandbox!();
    let h = host();
    // --explain shows the steps of all three parts, on stderr, not in the container's log.
    let out = h.minc(&[
        "--explain",
        "run",
        "-d",
        "--name",
        "a",
        "-p",
        "8081:8000",
        "echo-server",
    ]);
    assert!(out.status.success());
    let steps = String::from_utf8_lossy(&out.stderr);
    for step in [
        "+ mount -t overlay overlay -o lowerdir=",
        " --propagation unchanged --fork -- setsid sh",
        "pivot_root . .",
        "type veth peer name eth0",
        "route add default via 10.77.0.1 dev eth0",
        "\nadd element inet minc tcp4 { 8081 : 10.77.0.",
        "+ exec setpriv --reuid=0 --regid=0",
        " /echo-server   # minc execs it through its sealed minc-dmz stub",
        // The -d monitor: forked and set apart before the container's steps, exec'd after.
        "+ # fork(2) and setsid(2): the container's monitor-to-be",
        "/bin/minc-monitor-",
    ] {
        assert!(steps.contains(step), "--explain lacks {step:?}:\n{steps}");
    }
    h.run_d("b", &["-p", "8082:8000", "echo-server"]);
    echo_ok("127.0.0.1:8081");
    let log = h.ok(&["logs", "a"]);
    assert!(
        !log.contains("+ "),
        "explain lines leaked into the log: {log}"
    );
    echo_ok("127.0.0.1:8082");
    assert_ne!(ip_of(&h, "a"), ip_of(&h, "b"));

    let links_before = minc_tests::run("ip", &["-o", "link"]);
    let check = |args: &[&str], want: &str| {
        let out = h.minc(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        let ps = h.ok(&["ps", "-a"]);
        assert_eq!(ps.lines().count(), 3, "only a and b remain: {ps}");
        assert_eq!(minc_tests::run("ip", &["-o", "link"]), links_before);
    };
    check(
        &["run", "-d", "-p", "8081:8000", "echo-server"],
        "host port 8081/tcp is already published",
    );
    check(
        &["run", "-d", "--name", "a", "echo-server"],
        "name a is already in use",
    );
    check(
        &["run", "-d", "-p", "80x:8000", "echo-server"],
        "invalid port mapping",
    );
    check(&["run", "-d", "no-such-image"], "no-such-image");
    // The first two still answer.
    echo_ok("127.0.0.1:8081");
    h.ok(&["rm", "-f", "a", "b"]);
    assert_clean(&h);
}

#[test]
fn detached_container_outlives_its_cli() {
    minc_tests::sandbox!();
    let h = host();
    // The CLI in its own process group, which we then kill whole.
    let mut cmd = h.cmd(&["run", "-d", "--name", "d", "-p", "8090:8000", "echo-server"]);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let status = cmd.stdout(Stdio::null()).status().unwrap();
    assert!(status.success());
    echo_ok("127.0.0.1:8090");
    let pid = h.inspect("d")["State"]["pid"].as_i64().unwrap();
    let pgid = unsafe { libc::getpgid(pid as i32) };
    assert_ne!(pgid, unsafe { libc::getpgid(0) });
    // The monitor is the init's parent, and small.
    let ppid = ppid(pid as i32);
    let status = std::fs::read_to_string(format!("/proc/{ppid}/status")).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    // Measured, not asserted (bench/run.sh reports it for the release build).
    println!("monitor RSS: {rss_kb} kB");
    assert!(rss_kb > 0);
    echo_ok("127.0.0.1:8090");
    // The monitor records the exit when the container stops.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.ok(&["ps", "-a"]).contains("Exited") {
        assert!(Instant::now() < deadline, "exit never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    h.ok(&["rm", "d"]);
    assert_clean(&h);
}

/// The README's quick start on a machine without nftables or iproute2 installed: minc runs
/// no program to wire a container (nft, ip and sysctl hidden, no sbin in PATH).
#[test]
fn quick_start_needs_no_network_tools() {
    minc_tests::sandbox!();
    let h = host();
    minc_tests::run("mount", &["-t", "tmpfs", "tmpfs", "/usr/sbin"]);
    let mut cmd = h.cmd(&["run", "-d", "--name", "q", "-p", "8091:8000", "echo-server"]);
    cmd.env("PATH", "/usr/bin:/bin");
    let out = minc_tests::output_via_files(&mut cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    echo_ok("127.0.0.1:8091");
    let mut cmd = h.cmd(&["rm", "-f", "q"]);
    cmd.env("PATH", "/usr/bin:/bin");
    assert!(minc_tests::output_via_files(&mut cmd).status.success());
    assert_links_gone("veth", Duration::from_secs(3), "veth left");
}

fn ppid(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}
