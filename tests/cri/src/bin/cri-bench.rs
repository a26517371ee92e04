//! Times pods on a node (containerd's CRI plugin): pod start (RunPodSandbox, CreateContainer
//! and StartContainer, with a hostPort) and pod teardown (StopContainer, RemoveContainer,
//! StopPodSandbox, RemovePodSandbox), for minc with netsetup against runc with the CNI bridge
//! and portmap plugins, in alternating blocks of the same run. Run it through `bench/cri.sh`,
//! which puts it in a sandbox (its own network, mount and PID namespaces, and a cgroup of its
//! own: pods use a relative cgroup parent, so their cgroups land below it).
//!
//!   cri-bench MINC NETSETUP RUNC CNI_BIN ROUNDS

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cri_client::node::{Network, Node, BUSYBOX_IMAGE};
use cri_client::{api, container_config, pod_config};

struct Setup {
    label: &'static str,
    runtime: PathBuf,
    network: Network,
    start: Vec<f64>,
    teardown: Vec<f64>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One pod: start it, check it serves, tear it down; returns (start, teardown).
fn one_pod(node: &Node, n: usize) -> (Duration, Duration) {
    let cri = &node.cri;
    let name = format!("bench-{n}");
    let uid = format!("00000000-0000-4000-8000-{n:012}");
    let mut pod_cfg = pod_config(
        &name,
        &uid,
        &node.log_dir(&name),
        api::DnsConfig {
            servers: vec!["192.0.2.53".into()],
            ..Default::default()
        },
        Some((18080, 8080)),
    );
    // Relative: below the bench's own cgroup (see bench/cri.sh).
    if let Some(l) = pod_cfg.linux.as_mut() {
        l.cgroup_parent = format!("kubepods/besteffort/pod{uid}");
    }
    let ctr_cfg = container_config("main", BUSYBOX_IMAGE, &["sleep", "1000"], false);
    let fail = |what: &str, e: cri_client::Status| -> ! { panic!("{what}: {e}\n{}", node.log()) };

    let t = Instant::now();
    let pod = cri
        .run_pod(&pod_cfg)
        .unwrap_or_else(|e| fail("RunPodSandbox", e));
    let ctr = cri
        .create_container(&pod, &ctr_cfg, &pod_cfg)
        .unwrap_or_else(|e| fail("CreateContainer", e));
    cri.start_container(&ctr)
        .unwrap_or_else(|e| fail("StartContainer", e));
    let start = t.elapsed();

    let t = Instant::now();
    cri.stop_container(&ctr, 0)
        .unwrap_or_else(|e| fail("StopContainer", e));
    cri.remove_container(&ctr)
        .unwrap_or_else(|e| fail("RemoveContainer", e));
    cri.stop_pod(&pod)
        .unwrap_or_else(|e| fail("StopPodSandbox", e));
    cri.remove_pod(&pod)
        .unwrap_or_else(|e| fail("RemovePodSandbox", e));
    (start, t.elapsed())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!(
            "usage: cri-bench MINC NETSETUP RUNC CNI_BIN ROUNDS (run it through bench/cri.sh)"
        );
        std::process::exit(2);
    }
    let rounds: usize = args[5].parse().expect("ROUNDS is a number");
    let mut setups = [
        Setup {
            label: "minc + netsetup",
            runtime: args[1].clone().into(),
            network: Network::Netsetup(args[2].clone().into()),
            start: vec![],
            teardown: vec![],
        },
        Setup {
            label: "runc + bridge/portmap",
            runtime: args[3].clone().into(),
            network: Network::Bridge(args[4].clone().into()),
            start: vec![],
            teardown: vec![],
        },
    ];
    // Blocks of pods per setup, alternating, so a change in the machine's load hits both
    // (one containerd at a time: the shims share /run/containerd).
    let blocks = 4.min(rounds.max(1));
    let mut n = 0;
    for b in 0..blocks {
        let per = rounds / blocks + usize::from(b < rounds % blocks);
        for s in setups.iter_mut() {
            let node = Node::start(&s.runtime, &s.network);
            one_pod(&node, n); // warm-up: page cache, first bridge and nft/iptables setup
            n += 1;
            for _ in 0..per {
                let (start, teardown) = one_pod(&node, n);
                n += 1;
                s.start.push(ms(start));
                s.teardown.push(ms(teardown));
            }
        }
    }
    println!(
        "pods on containerd's CRI plugin (containerd 1.6, overlayfs snapshotter, \
         io.containerd.runc.v2 shim), median ms over {rounds} pods each"
    );
    println!("{:<24} {:>10} {:>10}", "", "start", "teardown");
    for s in &setups {
        println!(
            "{:<24} {:>10.1} {:>10.1}",
            s.label,
            median(&s.start),
            median(&s.teardown)
        );
    }
    let (m, r) = (&setups[0], &setups[1]);
    println!(
        "{:<24} {:>10.2} {:>10.2}",
        "minc/runc",
        median(&m.start) / median(&r.start),
        median(&m.teardown) / median(&r.teardown)
    );
}
