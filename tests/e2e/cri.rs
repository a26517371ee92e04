//! The Kubernetes node path, end to end: the kubelet's CRI calls (a Rust client of the
//! cri-api, see `tests/cri`) to containerd's CRI plugin, whose `io.containerd.runc.v2` shim
//! runs the built minc (`BinaryName`), with the built netsetup as the CNI plugin. A pod with
//! DNS config and a hostPort, a server container, exec probes (ExecSync), stats, a live
//! resource update, a tty container, the pod reached from the node over its IP and its
//! hostPort, then the whole teardown, after which nothing may be left: no network namespace,
//! veth, IP allocation, nft map element, cgroup or runtime state directory.
//!
//! Everything runs in the test's sandbox (network, mount, PID and cgroup namespaces): the
//! "node" is the sandbox, containerd keeps its root and state in a temp dir, images are
//! imported from local archives (busybox, and a pause image built from `tests/cri/pause.c`).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cri_client::node::{Network, Node, BUSYBOX_IMAGE};
use cri_client::{api, container_config, pod_config};

const MINC: &str = env!("CARGO_BIN_EXE_minc");
const POD_UID: &str = "5c1d7f0e-0000-4000-8000-00000000c41d";
const HOST_PORT: i32 = 18080;

/// The netsetup binary cargo built beside minc (`cargo test --workspace` builds it; a lone
/// `cargo test -p minc --test cri` needs `cargo build -p netsetup` first).
fn netsetup() -> PathBuf {
    let p = minc_tests::workspace_bin("netsetup");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build -p netsetup)",
        p.display()
    );
    p
}

/// One HTTP GET of / over TCP; returns the whole answer.
fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Retries `http_get` for a few seconds (the server starts after StartContainer returns).
fn http_get_retry(addr: SocketAddr) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_get(addr) {
            Ok(out) if out.contains("200 OK") => return out,
            other if Instant::now() > deadline => panic!("GET http://{addr}/: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A cgroup v1 controller's directory of a cgroup path, or the v2 one on a pure v2 host.
fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let base = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    base.join(path.trim_start_matches('/'))
}

/// Reads the first existing file among `names` in `dir`, trimmed.
fn read_first(dir: &Path, names: &[&str]) -> String {
    for n in names {
        if let Ok(s) = std::fs::read_to_string(dir.join(n)) {
            return s.trim().to_string();
        }
    }
    panic!("none of {names:?} in {}", dir.display());
}

/// Every directory below `dir`, recursively.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
            out.extend(subdirs(&e.path()));
        }
    }
    out
}

/// Every file below `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn veths() -> String {
    minc_tests::run("ip", &["-o", "link", "show", "type", "veth"])
}

/// The elements of netsetup's nft maps (none once every pod is gone).
fn nft_elements() -> Vec<String> {
    let out = minc_tests::run("nft", &["-j", "list", "ruleset"]);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut elems = Vec::new();
    for item in doc["nftables"].as_array().into_iter().flatten() {
        if let Some(map) = item.get("map") {
            for e in map["elem"].as_array().into_iter().flatten() {
                elems.push(format!("{} {}: {e}", map["table"], map["name"]));
            }
        }
    }
    elems
}

#[test]
fn cri_node_path() {
    minc_tests::sandbox!();
    let node = Node::start(MINC.as_ref(), &Network::Netsetup(netsetup()));
    let cri = &node.cri;

    let v = cri.version().expect("Version");
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");

    // A pod with the kubelet's DNS settings and a hostPort.
    let dns = api::DnsConfig {
        servers: vec!["192.0.2.53".into()],
        searches: vec![
            "default.svc.cluster.local".into(),
            "svc.cluster.local".into(),
        ],
        options: vec!["ndots:5".into()],
    };
    let pod_cfg = pod_config(
        "web",
        POD_UID,
        &node.log_dir("web"),
        dns,
        Some((HOST_PORT, 8080)),
    );
    let pod = cri
        .run_pod(&pod_cfg)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", node.log()));
    let status = cri.pod_status(&pod).expect("PodSandboxStatus");
    let st = status.status.expect("pod status");
    assert_eq!(st.state, api::PodSandboxState::SandboxReady as i32);
    let ip: Ipv4Addr = st
        .network
        .expect("pod network status")
        .ip
        .parse()
        .expect("pod IP");
    assert_eq!(
        ip.octets()[..2],
        [10, 88],
        "pod IP {ip} outside the pod subnet"
    );

    // A server in the pod.
    let server = container_config(
        "server",
        BUSYBOX_IMAGE,
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
        false,
    );
    let ctr = cri
        .create_container(&pod, &server, &pod_cfg)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", node.log()));
    cri.start_container(&ctr)
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", node.log()));
    let cs = cri.container_status(&ctr).expect("ContainerStatus");
    assert_eq!(
        cs.state,
        api::ContainerState::ContainerRunning as i32,
        "{cs:?}"
    );

    // Exec probes: output, stderr, exit code, and the pod's DNS and hostname.
    let r = cri
        .exec_sync(&ctr, &["sh", "-c", "echo out; echo err >&2; exit 3"], 10)
        .unwrap_or_else(|e| panic!("ExecSync: {e}\n{}", node.log()));
    assert_eq!(
        (r.stdout.as_slice(), r.stderr.as_slice(), r.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 3)
    );
    let r = cri
        .exec_sync(&ctr, &["cat", "/etc/resolv.conf"], 10)
        .expect("ExecSync resolv.conf");
    let resolv = String::from_utf8_lossy(&r.stdout);
    for want in [
        "nameserver 192.0.2.53",
        "search default.svc.cluster.local svc.cluster.local",
        "options ndots:5",
    ] {
        assert!(
            resolv.contains(want),
            "resolv.conf lacks {want:?}:\n{resolv}"
        );
    }
    let r = cri.exec_sync(&ctr, &["hostname"], 10).expect("hostname");
    assert_eq!(String::from_utf8_lossy(&r.stdout).trim(), "web");
    // The exec'd process holds only its stdio.
    let r = cri
        .exec_sync(&ctr, &["ls", "/proc/self/fd"], 10)
        .expect("ls fd");
    let fds: Vec<String> = String::from_utf8_lossy(&r.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    // 3 is ls's own handle on the directory it lists.
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "the exec'd process holds more than its stdio"
    );

    // The container's own cgroup, where the kubelet's cgroupfs path puts it.
    let cg_path = format!("/kubepods/besteffort/pod{POD_UID}/{ctr}");
    let mem_dir = cgroup_dir("memory", &cg_path);
    assert!(mem_dir.is_dir(), "no cgroup {}", mem_dir.display());

    // ContainerStats are the container's: 32 MiB written to its tmpfs are charged to it.
    cri.exec_sync(
        &ctr,
        &["sh", "-c", "head -c 33554432 /dev/zero > /dev/shm/fill"],
        20,
    )
    .expect("fill /dev/shm");
    let stats = cri
        .container_stats(&ctr)
        .unwrap_or_else(|e| panic!("ContainerStats: {e}\n{}", node.log()));
    assert_eq!(
        stats.attributes.as_ref().map(|a| a.id.as_str()),
        Some(ctr.as_str())
    );
    let ws = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(
        ws >= 32 << 20,
        "working set {ws} bytes: not the container's cgroup ({stats:?})"
    );
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref())
        .map(|v| v.value)
        .unwrap_or(0);
    assert!(cpu > 0, "no CPU time: {stats:?}");

    // UpdateContainerResources reaches the container's cgroup.
    cri.update_resources(
        &ctr,
        &api::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            memory_limit_in_bytes: 256 << 20,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}\n{}", node.log()));
    assert_eq!(
        read_first(&mem_dir, &["memory.limit_in_bytes", "memory.max"]),
        (256u64 << 20).to_string()
    );
    let cpu_dir = cgroup_dir("cpu", &cg_path);
    let quota = read_first(&cpu_dir, &["cpu.cfs_quota_us", "cpu.max"]);
    assert!(quota.starts_with("50000"), "cpu quota {quota}");

    // The pod from the node: its IP, and the hostPort on the node's loopback.
    let body = http_get_retry(SocketAddr::from((ip, 8080)));
    assert!(body.contains("hello-from-pod"), "{body}");
    let body = http_get_retry(SocketAddr::from(([127, 0, 0, 1], HOST_PORT as u16)));
    assert!(body.contains("hello-from-pod"), "via hostPort: {body}");

    // A tty container: the shim gets the terminal over the console socket and logs it.
    let tty_cfg = container_config(
        "tty",
        BUSYBOX_IMAGE,
        &["sh", "-c", "tty; echo tty-ok; exec sleep 1000"],
        true,
    );
    let tty = cri
        .create_container(&pod, &tty_cfg, &pod_cfg)
        .unwrap_or_else(|e| panic!("CreateContainer tty: {e}\n{}", node.log()));
    cri.start_container(&tty)
        .unwrap_or_else(|e| panic!("StartContainer tty: {e}\n{}", node.log()));
    let log = node.log_dir("web").join("tty.log");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("tty-ok") {
            assert!(text.contains("/dev/pts/"), "tty container's log: {text}");
            break;
        }
        assert!(Instant::now() < deadline, "tty container's log: {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Teardown, as the kubelet does it.
    for id in [&ctr, &tty] {
        let t = Instant::now();
        cri.stop_container(id, 2)
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}\n{}", node.log()));
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "StopContainer took {:?}",
            t.elapsed()
        );
        let cs = cri.container_status(id).expect("ContainerStatus");
        assert_eq!(
            cs.state,
            api::ContainerState::ContainerExited as i32,
            "{cs:?}"
        );
        cri.remove_container(id)
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}\n{}", node.log()));
    }
    cri.stop_pod(&pod)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", node.log()));
    cri.remove_pod(&pod)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", node.log()));
    assert_eq!(cri.list_containers().unwrap(), Vec::<String>::new());
    assert_eq!(cri.list_pods().unwrap(), Vec::<String>::new());

    // Nothing left.
    let netns: Vec<_> = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(netns.is_empty(), "network namespaces left: {netns:?}");
    // The kernel frees a veth whose namespace went away asynchronously.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !veths().is_empty() {
        assert!(Instant::now() < deadline, "veths left: {}", veths());
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = files(&node.net_data());
    assert!(
        left.iter().all(|f| !is_allocation(f)),
        "netsetup allocations left: {left:?}"
    );
    assert_eq!(
        nft_elements(),
        Vec::<String>::new(),
        "nft map elements left"
    );
    // Containers' cgroups are the runtime's to remove, in every hierarchy; the pod's own and
    // its parents are the kubelet's, removed here as it would.
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .chain([PathBuf::from("/sys/fs/cgroup")]);
    for h in hierarchies {
        let pod_cg = h.join(format!("kubepods/besteffort/pod{POD_UID}"));
        let below = subdirs(&pod_cg);
        assert!(below.is_empty(), "cgroups left: {below:?}");
        for d in [
            pod_cg.clone(),
            h.join("kubepods/besteffort"),
            h.join("kubepods"),
        ] {
            let _ = std::fs::remove_dir(d);
        }
    }
    let runtime_root = Path::new("/run/containerd/runc/k8s.io");
    let states: Vec<_> = std::fs::read_dir(runtime_root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        states.is_empty(),
        "runtime state left in {}: {states:?}",
        runtime_root.display()
    );
}

/// Whether a file under netsetup's data dir records a container's address, ports or state
/// (the network's lock and its allocation cursor, `last_reserved`, stay).
/// Whether a file in netsetup's data directory records something held (an address, a port,
/// an attachment) rather than being a lock or the next-address hint.
fn is_allocation(f: &Path) -> bool {
    let name = f.file_name().unwrap_or_default().to_string_lossy();
    !matches!(&*name, "lock" | ".lock" | "last_reserved")
}
