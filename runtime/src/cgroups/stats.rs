//! Counters: what the container's processes used, read from the cgroup's files and shaped
//! like runc's `events --stats` output (runc's types/events.go), which containerd and
//! Podman parse. Also OOM notification for `events`.
//!
//! v1 files: cpuacct.usage / usage_all, cpu.stat, memory.{usage,max_usage,limit}_in_bytes,
//! memory.memsw.*, memory.kmem.*, memory.stat, pids.current/max, blkio.throttle.*_recursive,
//! hugetlb.*. v2 files: cpu.stat, memory.current/max/peak/events/stat, memory.swap.*,
//! pids.current/max, io.stat, hugetlb.*.current/max/events (kernel docs as in v1.rs, v2.rs).

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::fs;
use super::{Cgroup, Error, Mode, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub cpuset: CpuSet,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
    pub intel_rdt: serde_json::Value,
    pub network_interfaces: Option<Vec<serde_json::Value>>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuUsage {
    /// Nanoseconds.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CpuSet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Pids {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub value: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

impl Blkio {
    /// Total bytes read and written.
    pub fn bytes(&self) -> (u64, u64) {
        let sum = |op: &str| {
            self.io_service_bytes_recursive
                .iter()
                .filter(|e| e.op.eq_ignore_ascii_case(op))
                .map(|e| e.value)
                .sum()
        };
        (sum("read"), sum("write"))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hugetlb {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Reads all counters of a container's cgroup.
pub fn read(cg: &Cgroup) -> Result<Stats> {
    let mut s = Stats::default();
    match cg.mode {
        Mode::V2 => {
            let d = &cg.unified_dir().expect("v2 dir").path;
            v2_cpu(d, &mut s)?;
            v2_memory(d, &mut s)?;
            pids(d, &mut s);
            v2_io(d, &mut s);
            hugetlb(d, ".current", ".max", ".events", &mut s);
            cpuset(d, &mut s);
        }
        _ => {
            if let Some(d) = cg.dir("cpuacct") {
                v1_cpuacct(&d.path, &mut s)?;
            }
            if let Some(d) = cg.dir("cpu") {
                if let Ok(m) = fs::read_keyed(&d.path.join("cpu.stat")) {
                    s.cpu.throttling = Throttling {
                        periods: m.get("nr_periods").copied().unwrap_or(0),
                        throttled_periods: m.get("nr_throttled").copied().unwrap_or(0),
                        throttled_time: m.get("throttled_time").copied().unwrap_or(0),
                    };
                }
            }
            if let Some(d) = cg.dir("memory") {
                v1_memory(&d.path, &mut s)?;
            }
            if let Some(d) = cg.dir("pids") {
                pids(&d.path, &mut s);
            }
            if let Some(d) = cg.dir("blkio") {
                s.blkio.io_service_bytes_recursive =
                    v1_blkio(&d.path.join("blkio.throttle.io_service_bytes_recursive"));
                s.blkio.io_serviced_recursive =
                    v1_blkio(&d.path.join("blkio.throttle.io_serviced_recursive"));
            }
            if let Some(d) = cg.dir("hugetlb") {
                hugetlb(
                    &d.path,
                    ".usage_in_bytes",
                    ".limit_in_bytes",
                    ".failcnt",
                    &mut s,
                );
            } else if let Some(d) = cg.unified_dir() {
                hugetlb(&d.path, ".current", ".max", ".events", &mut s);
            }
            if let Some(d) = cg.dir("cpuset") {
                cpuset(&d.path, &mut s);
            }
        }
    }
    Ok(s)
}

fn v2_cpu(d: &Path, s: &mut Stats) -> Result<()> {
    let m = fs::read_keyed(&d.join("cpu.stat"))?;
    let g = |k: &str| m.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g("usage_usec") * 1000;
    s.cpu.usage.user = g("user_usec") * 1000;
    s.cpu.usage.kernel = g("system_usec") * 1000;
    s.cpu.throttling = Throttling {
        periods: g("nr_periods"),
        throttled_periods: g("nr_throttled"),
        throttled_time: g("throttled_usec") * 1000,
    };
    Ok(())
}

fn v1_cpuacct(d: &Path, s: &mut Stats) -> Result<()> {
    s.cpu.usage.total = fs::read_u64(&d.join("cpuacct.usage"))?;
    // usage_all: "cpu user system" per line, in nanoseconds.
    if let Ok(all) = fs::read(&d.join("cpuacct.usage_all")) {
        for line in all.lines().skip(1) {
            let v: Vec<u64> = line
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if let [_, user, sys] = v[..] {
                s.cpu.usage.percpu_user.push(user);
                s.cpu.usage.percpu_kernel.push(sys);
                s.cpu.usage.percpu.push(user + sys);
                s.cpu.usage.user += user;
                s.cpu.usage.kernel += sys;
            }
        }
    }
    Ok(())
}

fn v2_memory(d: &Path, s: &mut Stats) -> Result<()> {
    let m = &mut s.memory;
    m.usage.usage = fs::read_u64(&d.join("memory.current"))?;
    m.usage.limit = fs::read_u64(&d.join("memory.max")).unwrap_or(u64::MAX);
    m.usage.max = fs::read_u64(&d.join("memory.peak")).unwrap_or(0);
    m.usage.failcnt = fs::read_keyed(&d.join("memory.events"))
        .ok()
        .and_then(|e| e.get("max").copied())
        .unwrap_or(0);
    // v1 reports swap as memory+swap: do the same, as runc does.
    let swap = fs::read_u64(&d.join("memory.swap.current")).unwrap_or(0);
    let swap_max = fs::read_u64(&d.join("memory.swap.max")).unwrap_or(u64::MAX);
    m.swap.usage = swap + m.usage.usage;
    m.swap.limit = if swap_max == u64::MAX || m.usage.limit == u64::MAX {
        u64::MAX
    } else {
        swap_max + m.usage.limit
    };
    m.raw = fs::read_keyed(&d.join("memory.stat"))
        .unwrap_or_default()
        .into_iter()
        .collect();
    m.cache = m.raw.get("file").copied().unwrap_or(0);
    Ok(())
}

fn v1_memory(d: &Path, s: &mut Stats) -> Result<()> {
    let entry = |prefix: &str| -> MemoryEntry {
        let f = |name: &str| fs::read_u64(&d.join(format!("{prefix}{name}"))).unwrap_or(0);
        MemoryEntry {
            limit: f("limit_in_bytes"),
            usage: f("usage_in_bytes"),
            max: f("max_usage_in_bytes"),
            failcnt: f("failcnt"),
        }
    };
    let m = &mut s.memory;
    m.usage = entry("memory.");
    if m.usage.limit == 0 {
        return Err(Error::io(
            &d.join("memory.limit_in_bytes"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    m.swap = entry("memory.memsw.");
    m.kernel = entry("memory.kmem.");
    m.kernel_tcp = entry("memory.kmem.tcp.");
    m.raw = fs::read_keyed(&d.join("memory.stat"))
        .unwrap_or_default()
        .into_iter()
        .collect();
    m.cache = m.raw.get("cache").copied().unwrap_or(0);
    Ok(())
}

fn pids(d: &Path, s: &mut Stats) {
    s.pids.current = fs::read_u64(&d.join("pids.current")).unwrap_or(0);
    // runc reports "max" as 0 (no limit).
    s.pids.limit = match fs::read_u64(&d.join("pids.max")) {
        Ok(u64::MAX) | Err(_) => 0,
        Ok(v) => v,
    };
}

fn v1_blkio(path: &Path) -> Vec<BlkioEntry> {
    let text = fs::read(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (dev, op, value) = (it.next()?, it.next()?, it.next()?);
            let (major, minor) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` into runc's blkio entries.
fn v2_io(d: &Path, s: &mut Stats) {
    let text = fs::read(&d.join("io.stat")).unwrap_or_default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some((major, minor)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut s.blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut s.blkio.io_service_bytes_recursive, "Write"),
                "rios" => (&mut s.blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut s.blkio.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
}

fn hugetlb(d: &Path, usage: &str, max: &str, fail: &str, s: &mut Stats) {
    let Ok(entries) = std::fs::read_dir(d) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(size) = name
            .strip_prefix("hugetlb.")
            .and_then(|n| n.strip_suffix(usage))
            .filter(|n| !n.contains('.'))
        else {
            continue;
        };
        let file = |suffix: &str| d.join(format!("hugetlb.{size}{suffix}"));
        let failcnt = if fail == ".events" {
            fs::read_keyed(&file(fail))
                .ok()
                .and_then(|m| m.get("max").copied())
                .unwrap_or(0)
        } else {
            fs::read_u64(&file(fail)).unwrap_or(0)
        };
        s.hugetlb.insert(
            size.to_string(),
            Hugetlb {
                usage: fs::read_u64(&file(usage)).unwrap_or(0),
                max: fs::read_u64(&file(max)).unwrap_or(0),
                failcnt,
            },
        );
    }
}

fn cpuset(d: &Path, s: &mut Stats) {
    let list = |f: &str| parse_list(&fs::read(&d.join(f)).unwrap_or_default());
    s.cpuset.cpus = list("cpuset.cpus.effective");
    if s.cpuset.cpus.is_empty() {
        s.cpuset.cpus = list("cpuset.effective_cpus");
    }
    s.cpuset.mems = list("cpuset.mems.effective");
    if s.cpuset.mems.is_empty() {
        s.cpuset.mems = list("cpuset.effective_mems");
    }
}

/// A cpuset list (`0-3,8`) as numbers.
pub fn parse_list(s: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b.min(a.saturating_add(4096)));
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// An fd that polls readable on an OOM event: v2 an inotify watch on memory.events (which
/// the kernel touches on each event; the caller compares the oom_kill count), v1 an eventfd
/// registered through cgroup.event_control on memory.oom_control
/// (cgroup-v1/memory.rst, "Memory thresholds" and "OOM Control").
pub fn oom_notifier(cg: &Cgroup) -> Result<OwnedFd> {
    let sys = |what: &str| Error::Sys {
        what: what.into(),
        err: std::io::Error::last_os_error(),
    };
    match cg.mode {
        Mode::V2 => {
            let file = cg.unified_dir().expect("v2 dir").path.join("memory.events");
            // SAFETY: inotify_init1 returns a new fd or -1.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
            if fd < 0 {
                return Err(sys("inotify_init1"));
            }
            // SAFETY: fresh fd.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let c = std::ffi::CString::new(file.as_os_str().as_encoded_bytes()).expect("path");
            // SAFETY: valid fd and C string.
            if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), libc::IN_MODIFY) } < 0 {
                return Err(Error::io(&file, std::io::Error::last_os_error()));
            }
            Ok(fd)
        }
        _ => {
            let d = &cg
                .dir("memory")
                .ok_or_else(|| Error::Unsupported {
                    what: "OOM events".into(),
                    why: "the memory controller is not mounted".into(),
                })?
                .path;
            // SAFETY: eventfd returns a new fd or -1.
            let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if efd < 0 {
                return Err(sys("eventfd"));
            }
            // SAFETY: fresh fd.
            let efd = unsafe { OwnedFd::from_raw_fd(efd) };
            let oom = d.join("memory.oom_control");
            let ofd = std::fs::File::open(&oom).map_err(|e| Error::io(&oom, e))?;
            let line = format!("{} {}", efd.as_raw_fd(), ofd.as_raw_fd());
            super::fs::write(&d.join("cgroup.event_control"), &line)?;
            // The registration holds its own reference to memory.oom_control.
            Ok(efd)
        }
    }
}

/// Drains a readable notifier (eventfd counter or inotify events).
pub fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    // SAFETY: reading into our buffer from a non-blocking fd.
    while unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Network counters of the container's network namespace (/proc/PID/net/dev): received and
/// sent bytes, all interfaces but lo.
pub fn net_bytes(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() >= 9 {
            rx += v[0];
            tx += v[8];
        }
    }
    Some((rx, tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_io_stat() {
        assert_eq!(parse_list("0-2,5"), [0, 1, 2, 5]);
        assert_eq!(parse_list(""), Vec::<u16>::new());
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("io.stat"),
            "8:0 rbytes=100 wbytes=20 rios=3 wios=4 dbytes=0\n",
        )
        .unwrap();
        let mut s = Stats::default();
        v2_io(d.path(), &mut s);
        assert_eq!(s.blkio.bytes(), (100, 20));
        assert_eq!(s.blkio.io_serviced_recursive.len(), 2);
        assert_eq!(fs::parse_u64("max"), Some(u64::MAX));
    }

    #[test]
    fn runc_json_shape() {
        let mut s = Stats::default();
        s.memory.usage = MemoryEntry {
            limit: 16,
            usage: 8,
            max: 0,
            failcnt: 0,
        };
        s.pids.current = 3;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["memory"]["usage"],
            serde_json::json!({"limit": 16, "usage": 8, "failcnt": 0})
        );
        assert_eq!(v["pids"], serde_json::json!({"current": 3}));
        assert!(v["memory"].get("kernelTCP").is_some());
        assert!(v["cpu"]["usage"].get("kernel").is_some());
    }
}

/// The limits in force, read back from the cgroup (what `ps` and `inspect` show; it also
/// reflects `update`). `None` means no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Limits {
    pub memory: Option<u64>,
    /// Memory plus swap, as Docker's --memory-swap.
    pub memory_swap: Option<u64>,
    /// CPUs' worth of time per period (quota / period).
    pub cpus: Option<f64>,
    pub pids: Option<u64>,
    pub cpuset_cpus: Option<String>,
}

impl Limits {
    pub fn read(cg: &Cgroup) -> Limits {
        let num = |p: &Path| fs::read_u64(p).ok().filter(|v| *v < (1 << 62));
        let mut l = Limits::default();
        match cg.mode {
            Mode::V2 => {
                let Some(d) = cg.unified_dir() else { return l };
                let d = &d.path;
                l.memory = num(&d.join("memory.max"));
                l.memory_swap = num(&d.join("memory.swap.max")).and_then(|s| Some(s + l.memory?));
                if let Ok(cpu) = fs::read(&d.join("cpu.max")) {
                    let mut it = cpu.split_whitespace();
                    if let (Some(q), Some(p)) = (it.next(), it.next()) {
                        if let (Ok(q), Ok(p)) = (q.parse::<f64>(), p.parse::<f64>()) {
                            l.cpus = Some(q / p);
                        }
                    }
                }
                l.pids = num(&d.join("pids.max"));
                l.cpuset_cpus = fs::read(&d.join("cpuset.cpus"))
                    .ok()
                    .filter(|s| !s.is_empty());
            }
            _ => {
                if let Some(d) = cg.dir("memory") {
                    l.memory = num(&d.path.join("memory.limit_in_bytes"));
                    l.memory_swap = num(&d.path.join("memory.memsw.limit_in_bytes"));
                }
                if let Some(d) = cg.dir("cpu") {
                    let q = fs::read(&d.path.join("cpu.cfs_quota_us")).ok();
                    let p = fs::read_u64(&d.path.join("cpu.cfs_period_us")).ok();
                    if let (Some(Ok(q)), Some(p)) = (q.map(|q| q.parse::<i64>()), p) {
                        if q > 0 && p > 0 {
                            l.cpus = Some(q as f64 / p as f64);
                        }
                    }
                }
                if let Some(d) = cg.dir("pids") {
                    l.pids = num(&d.path.join("pids.max"));
                }
                if let Some(d) = cg.dir("cpuset") {
                    let own = fs::read(&d.path.join("cpuset.cpus")).ok();
                    let parent = d
                        .path
                        .parent()
                        .and_then(|p| fs::read(&p.join("cpuset.cpus")).ok());
                    l.cpuset_cpus = own.filter(|o| Some(o) != parent.as_ref());
                }
            }
        }
        l
    }

    /// `mem 16MiB, cpus 0.5, pids 20`, or `-`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.memory {
            parts.push(format!("mem {}", human_bytes(m)));
        }
        if let Some(c) = self.cpus {
            parts.push(format!("cpus {}", (c * 100.0).round() / 100.0));
        }
        if let Some(c) = &self.cpuset_cpus {
            parts.push(format!("cpuset {c}"));
        }
        if let Some(p) = self.pids {
            parts.push(format!("pids {p}"));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(", ")
        }
    }
}

/// 1.5GiB, 16MiB, 512KiB, 100B (Docker's binary units).
pub fn human_bytes(v: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut i = 0;
    while x >= 1024.0 && i < UNITS.len() - 1 {
        x /= 1024.0;
        i += 1;
    }
    if i == 0 || x.fract() < 0.005 {
        format!("{}{}", x.round(), UNITS[i])
    } else {
        format!("{x:.2}{}", UNITS[i])
    }
}
