//! cgroup v2: one tree; a cgroup's controllers are those its parent enabled in
//! `cgroup.subtree_control`, and (outside the root) only leaves may hold processes
//! (kernel: Documentation/admin-guide/cgroup-v2.rst; cgroups(7)).
//!
//! The OCI resources were written for v1, so some values are converted as runc does:
//! `cpu.shares` becomes `cpu.weight` (runc's quadratic fit of 2..262144 onto 1..10000),
//! the blkio weight becomes `io.weight` (10..1000 onto 1..10000), and `memory.swap` (memory
//! plus swap in OCI) becomes `memory.swap.max` = swap - limit. `linux.resources.unified`
//! writes any file by name. Settings v2 has no file for (realtime CPU, swappiness, leaf
//! weights, kernel memory, disabling the OOM killer) are errors when set.

use std::collections::HashMap;
use std::path::Path;

use oci_spec::runtime::{LinuxHugepageLimit, LinuxResources};

use super::fs::{self, write};
use super::{v1, Error, Result};

/// Makes the container's v2 directory and the missing parents. On a v2 host (`enable`)
/// every available controller is then enabled down the path; on a hybrid host's v2 tree
/// (often without controllers) nothing is enabled until a setting needs it
/// ([`enable_path`]), so the host's tree is left as it was.
pub fn create(path: &Path, enable: bool) -> Result<()> {
    v1::mkdir_all(path)?;
    if enable {
        enable_path(path)?;
    }
    Ok(())
}

/// Enables the available controllers in every ancestor of `leaf` inside the cgroup
/// filesystem, from the top down (`+memory +pids ...` in each `cgroup.subtree_control`), as
/// runc does: a controller reaches a cgroup only if every parent passed it on.
pub fn enable_path(leaf: &Path) -> Result<()> {
    let mut ancestors: Vec<&Path> = leaf
        .ancestors()
        .skip(1)
        .take_while(|a| a.join("cgroup.controllers").exists())
        .collect();
    ancestors.reverse();
    for a in ancestors {
        enable_controllers(a)?;
    }
    Ok(())
}

/// Writes `+c` for every controller in `dir/cgroup.controllers` missing from its
/// `cgroup.subtree_control`.
pub fn enable_controllers(dir: &Path) -> Result<()> {
    let available = fs::read(&dir.join("cgroup.controllers"))?;
    let enabled = fs::read(&dir.join("cgroup.subtree_control"))?;
    let missing: Vec<String> = available
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &missing.join(" "))
}

/// runc's conversion of cpu.shares (2..262144, default 1024) to cpu.weight (1..10000,
/// default 100).
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        s => {
            let l = (s as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            10f64.powf(exponent).ceil() as u64
        }
    }
}

/// blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w).saturating_sub(10)) * 9999 / 990
}

fn unsupported(what: impl Into<String>, why: &str) -> Error {
    Error::Unsupported {
        what: what.into(),
        why: why.into(),
    }
}

/// `-1` means no limit (`max`) in the OCI spec.
fn limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Writes the resources into a v2 cgroup directory (device rules are separate).
pub fn apply(dir: &Path, r: &LinuxResources, update: bool) -> Result<()> {
    if let Some(m) = r.memory() {
        let lim = m.limit().filter(|v| *v != 0);
        let swap = m.swap().filter(|v| *v != 0);
        if let Some(l) = lim {
            if (0..4096).contains(&l) || l < -1 {
                return Err(Error::Invalid(format!(
                    "memory.limit {l}: give at least 4096 bytes, or -1 for no limit"
                )));
            }
        }
        // memory+swap (OCI) to swap alone (v2).
        let swap_max = match (swap, lim) {
            (None, Some(-1)) => Some("max".to_string()),
            (None, _) => None,
            (Some(-1), _) => Some("max".into()),
            (Some(s), Some(-1)) => Some(s.to_string()),
            (Some(_), None) if !update => {
                return Err(Error::Invalid(
                    "memory.swap without memory.limit: swap is memory+swap, give both".into(),
                ))
            }
            (Some(s), None) => {
                let cur = fs::read_u64(&dir.join("memory.max"))?;
                if cur == u64::MAX {
                    Some(s.to_string())
                } else {
                    Some((s as u64).saturating_sub(cur).to_string())
                }
            }
            (Some(s), Some(l)) if s < l => {
                return Err(Error::Invalid(format!(
                    "memory.swap {s} is below memory.limit {l}: swap is memory+swap, so it must be at least the limit"
                )))
            }
            (Some(s), Some(l)) => Some((s - l).to_string()),
        };
        if let Some(s) = swap_max {
            let file = dir.join("memory.swap.max");
            // No swap accounting: "max" and "0" mean nothing to enforce.
            if file.exists() || (s != "max" && s != "0") {
                write(&file, &s)?;
            }
        }
        if let Some(l) = lim {
            if update && m.check_before_update() == Some(true) && l > 0 {
                let usage = fs::read_u64(&dir.join("memory.current"))?;
                if usage > l as u64 {
                    return Err(Error::Invalid(format!(
                        "memory.limit {l} is below the current usage {usage}"
                    )));
                }
            }
            write(&dir.join("memory.max"), &limit(l))?;
        }
        if let Some(res) = m.reservation().filter(|v| *v != 0) {
            write(&dir.join("memory.low"), &limit(res))?;
        }
        #[allow(deprecated)]
        if m.kernel().is_some_and(|k| k != 0) {
            return Err(unsupported(
                "linux.resources.memory.kernel",
                "cgroup v2 has no kernel memory limit (kernel memory counts in memory.max)",
            ));
        }
        if m.kernel_tcp().is_some_and(|k| k != 0) {
            return Err(unsupported(
                "linux.resources.memory.kernelTCP",
                "cgroup v2 has no TCP buffer limit (it counts in memory.max)",
            ));
        }
        if m.swappiness().is_some_and(|s| s != u64::MAX) {
            return Err(unsupported(
                "linux.resources.memory.swappiness",
                "cgroup v2 has no per-cgroup swappiness",
            ));
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(unsupported(
                "linux.resources.memory.disableOOMKiller",
                "cgroup v2 cannot disable the OOM killer (use memory.high to throttle instead)",
            ));
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|v| *v != 0) {
            write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
        }
        let quota = c.quota().filter(|v| *v != 0);
        let period = c.period().filter(|v| *v != 0);
        if quota.is_some() || period.is_some() {
            let file = dir.join("cpu.max");
            // cpu.max is "QUOTA PERIOD"; keep the part not given.
            let current = fs::read(&file).unwrap_or_else(|_| "max 100000".into());
            let mut cur = current.split_whitespace();
            let (cq, cp) = (cur.next().unwrap_or("max"), cur.next().unwrap_or("100000"));
            let q = quota.map(limit).unwrap_or_else(|| cq.to_string());
            let p = period
                .map(|p| p.to_string())
                .unwrap_or_else(|| cp.to_string());
            write(&file, &format!("{q} {p}"))?;
        }
        if let Some(b) = c.burst() {
            write(&dir.join("cpu.max.burst"), &b.to_string())?;
        }
        if let Some(i) = c.idle() {
            write(&dir.join("cpu.idle"), &i.to_string())?;
        }
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(unsupported(
                "linux.resources.cpu.realtimeRuntime/realtimePeriod",
                "cgroup v2 has no realtime CPU budget (CONFIG_RT_GROUP_SCHED is v1 only)",
            ));
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            write(&dir.join("cpuset.cpus"), cpus)?;
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            write(&dir.join("cpuset.mems"), mems)?;
        }
    }
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            write(&dir.join("pids.max"), &limit(p.limit()))?;
        }
    }
    if let Some(b) = r.block_io() {
        if let Some(w) = b.weight().filter(|v| *v != 0) {
            // BFQ takes the v1 range; the io controller's own weight wants 1..10000.
            let bfq = dir.join("io.bfq.weight");
            if bfq.exists() {
                write(&bfq, &w.to_string())?;
            } else {
                write(
                    &dir.join("io.weight"),
                    &format!("default {}", blkio_to_io_weight(w)),
                )?;
            }
        }
        if b.leaf_weight().is_some_and(|v| v != 0) {
            return Err(unsupported(
                "linux.resources.blockIO.leafWeight",
                "cgroup v2 has no leaf weights",
            ));
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                write(
                    &dir.join("io.weight"),
                    &format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w)),
                )?;
            }
        }
        let throttles = [
            ("rbps", b.throttle_read_bps_device()),
            ("wbps", b.throttle_write_bps_device()),
            ("riops", b.throttle_read_iops_device()),
            ("wiops", b.throttle_write_iops_device()),
        ];
        for (key, list) in throttles {
            for t in list.iter().flatten() {
                let rate = if t.rate() == 0 {
                    "max".to_string()
                } else {
                    t.rate().to_string()
                };
                write(
                    &dir.join("io.max"),
                    &format!("{}:{} {key}={rate}", t.major(), t.minor()),
                )?;
            }
        }
    }
    if let Some(h) = r.hugepage_limits() {
        hugepages(dir, h)?;
    }
    if r.network().as_ref().is_some_and(|n| {
        n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
    }) {
        return Err(unsupported(
            "linux.resources.network",
            "cgroup v2 has no net_cls/net_prio (use BPF or nftables socket cgroup matching)",
        ));
    }
    if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        for (dev, l) in rdma {
            write(&dir.join("rdma.max"), &super::rdma_line(dev, l))?;
        }
    }
    if let Some(u) = r.unified() {
        unified(dir, u)?;
    }
    Ok(())
}

/// Huge page limits: `hugetlb.2MB.max`.
pub fn hugepages(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<()> {
    for l in limits {
        let size = l.page_size();
        if size.is_empty() || size.contains('/') {
            return Err(Error::Invalid(format!("hugepageLimits pageSize {size:?}")));
        }
        write(&dir.join(format!("hugetlb.{size}.max")), &limit(l.limit()))?;
    }
    Ok(())
}

/// `linux.resources.unified`: file name -> value, written as is. The name must be a plain
/// file of a controller (not a path, not one of the `cgroup.*` core files that move
/// processes or change the tree).
pub fn unified(dir: &Path, map: &HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        let ok = !key.is_empty()
            && !key.contains('/')
            && key != "."
            && key != ".."
            && key.contains('.')
            && !matches!(
                key.as_str(),
                "cgroup.procs"
                    | "cgroup.threads"
                    | "cgroup.subtree_control"
                    | "cgroup.kill"
                    | "cgroup.type"
            );
        if !ok {
            return Err(Error::Invalid(format!(
                "unified key {key:?} is not a controller file name"
            )));
        }
        let file = dir.join(key);
        if !file.exists() {
            return Err(unsupported(
                format!("linux.resources.unified {key:?}"),
                &format!(
                    "{} does not exist (is its controller enabled for this cgroup?)",
                    file.display()
                ),
            ));
        }
        write(&file, &map[key])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The v2 writer against a fake cgroupfs tree (plain files in a temp dir): the same
    //! code paths as on a real host, minus the kernel's own checks (those are in the
    //! end-to-end tests and in the VM script tests/vm/cgroups-v2.sh).
    use super::*;

    fn fake(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (f, v) in files {
            std::fs::write(d.path().join(f), v).unwrap();
        }
        d
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn get(d: &tempfile::TempDir, f: &str) -> String {
        std::fs::read_to_string(d.path().join(f)).unwrap()
    }

    const FILES: &[(&str, &str)] = &[
        ("memory.max", "max"),
        ("memory.swap.max", "max"),
        ("memory.low", "0"),
        ("memory.current", "1000000"),
        ("cpu.max", "max 100000"),
        ("cpu.weight", "100"),
        ("cpuset.cpus", ""),
        ("pids.max", "max"),
        ("io.weight", "default 100"),
        ("io.max", ""),
        ("hugetlb.2MB.max", "max"),
    ];

    #[test]
    fn memory_cpu_pids_io_hugetlb() {
        let d = fake(FILES);
        let r = res(r#"{
            "memory": {"limit": 16777216, "swap": 33554432, "reservation": 8388608},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 20},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
        }"#);
        apply(d.path(), &r, false).unwrap();
        assert_eq!(get(&d, "memory.max"), "16777216");
        assert_eq!(get(&d, "memory.swap.max"), "16777216");
        assert_eq!(get(&d, "memory.low"), "8388608");
        assert_eq!(
            get(&d, "cpu.weight"),
            "100",
            "1024 shares are the default weight"
        );
        assert_eq!(get(&d, "cpu.max"), "50000 100000");
        assert_eq!(get(&d, "cpuset.cpus"), "0");
        assert_eq!(get(&d, "pids.max"), "20");
        assert_eq!(get(&d, "io.weight"), "default 4950");
        assert_eq!(get(&d, "io.max"), "8:0 rbps=1048576");
        assert_eq!(get(&d, "hugetlb.2MB.max"), "4194304");
    }

    #[test]
    fn update_keeps_what_is_not_given_and_checks_usage() {
        let d = fake(FILES);
        std::fs::write(d.path().join("cpu.max"), "20000 50000").unwrap();
        apply(d.path(), &res(r#"{"cpu": {"quota": 10000}}"#), true).unwrap();
        assert_eq!(get(&d, "cpu.max"), "10000 50000");
        apply(d.path(), &res(r#"{"cpu": {"quota": -1}}"#), true).unwrap();
        assert_eq!(get(&d, "cpu.max"), "max 50000");
        let err = apply(
            d.path(),
            &res(r#"{"memory": {"limit": 500000, "checkBeforeUpdate": true}}"#),
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("below the current usage"), "{err}");
        apply(d.path(), &res(r#"{"memory": {"limit": -1}}"#), true).unwrap();
        assert_eq!(get(&d, "memory.max"), "max");
        assert_eq!(get(&d, "memory.swap.max"), "max");
    }

    #[test]
    fn unsupported_and_invalid_values_are_errors_naming_the_setting() {
        let d = fake(FILES);
        for (json, needle) in [
            (r#"{"memory": {"swappiness": 10}}"#, "swappiness"),
            (
                r#"{"memory": {"disableOOMKiller": true}}"#,
                "disableOOMKiller",
            ),
            (r#"{"memory": {"kernel": 1000000}}"#, "memory.kernel"),
            (
                r#"{"memory": {"limit": 100, "swap": 50}}"#,
                "memory.limit 100",
            ),
            (
                r#"{"memory": {"limit": 1048576, "swap": 50}}"#,
                "below memory.limit",
            ),
            (r#"{"cpu": {"realtimeRuntime": 1000}}"#, "realtime"),
            (r#"{"blockIO": {"leafWeight": 100}}"#, "leafWeight"),
            (r#"{"unified": {"cgroup.procs": "1"}}"#, "cgroup.procs"),
            (r#"{"unified": {"../../x": "1"}}"#, "../../x"),
            (
                r#"{"unified": {"memory.oom.group": "1"}}"#,
                "memory.oom.group",
            ),
            (
                r#"{"hugepageLimits": [{"pageSize": "1GB", "limit": 1}]}"#,
                "hugetlb.1GB.max",
            ),
        ] {
            let err = apply(d.path(), &res(json), false).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn unified_writes_named_files() {
        let d = fake(&[("memory.high", "max"), ("pids.max", "max")]);
        apply(
            d.path(),
            &res(r#"{"unified": {"memory.high": "1048576", "pids.max": "7"}}"#),
            false,
        )
        .unwrap();
        assert_eq!(get(&d, "memory.high"), "1048576");
        assert_eq!(get(&d, "pids.max"), "7");
    }

    #[test]
    fn controllers_are_enabled_down_a_new_path() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::write(r.join("cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(r.join("cgroup.subtree_control"), "memory").unwrap();
        std::fs::create_dir(r.join("a")).unwrap();
        // (a real kernel fills a new cgroup's files itself)
        std::fs::write(r.join("a/cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::write(r.join("a/cgroup.subtree_control"), "").unwrap();
        create(&r.join("a/b"), true).unwrap();
        let ctl = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(
            ctl("cgroup.subtree_control"),
            "+cpu +pids",
            "only the missing ones"
        );
        assert_eq!(ctl("a/cgroup.subtree_control"), "+cpu +memory +pids");
        assert!(r.join("a/b").is_dir());
        // Hybrid: the directory only, the tree left as it was.
        std::fs::write(r.join("a/cgroup.subtree_control"), "").unwrap();
        create(&r.join("a/c"), false).unwrap();
        assert_eq!(ctl("a/cgroup.subtree_control"), "");
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }
}
