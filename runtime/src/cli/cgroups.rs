//! The cgroup verbs: `pause`, `resume`, `update`, `events` (runc's), `stats` and `top`
//! (Docker's), and the Docker-like `run` flags that become `linux.resources`
//! (--memory, --memory-swap, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit, --device,
//! --cgroup-parent). The cgroup work itself is in `crate::cgroups`.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Value};

use super::docker::Ctx;
use super::format;
use crate::cgroups::{self, stats, Cgroup};
use crate::container::Runtime;
use crate::state::{State, Status};
use sysops::lock::Lock;

#[derive(Args, Debug)]
pub struct IdArg {
    /// Container id
    pub id: String,
}

/// runc's `update` flags.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A JSON file of linux.resources to apply ("-": standard input); other flags are ignored
    #[arg(short = 'r', long = "resources", value_name = "FILE")]
    resources: Option<String>,
    /// Block I/O weight (10-1000)
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds)
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds per period; -1 for none)
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<i64>,
    /// CPU CFS burst (microseconds)
    #[arg(long = "cpu-burst")]
    cpu_burst: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    /// Realtime period (microseconds)
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// Realtime runtime (microseconds)
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    /// CPUs to use (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Memory nodes to use
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// SCHED_IDLE for the cgroup (0 or 1)
    #[arg(long = "cpu-idle")]
    cpu_idle: Option<i64>,
    /// Memory limit (bytes, or 16m, 1g; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Maximum number of processes (-1 for none)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Obsolete (rejected when set)
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    /// Obsolete (rejected when set)
    #[arg(long = "kernel-memory-tcp", hide = true)]
    kernel_memory_tcp: Option<String>,
    /// Container id
    id: String,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print the container's stats once and exit
    #[arg(long)]
    stats: bool,
    /// How often to print stats (Go duration: 5s, 500ms, 1m)
    #[arg(long, default_value = "5s")]
    interval: String,
    /// Container id
    id: String,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Print one sample and exit
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// table, or json (one object per container per sample, raw numbers)
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// Containers (default: all running)
    names: Vec<String>,
}

/// Docker's resource flags of `run IMAGE`.
#[derive(Args, Debug, Default, Clone)]
pub struct ResourceFlags {
    /// Memory limit (bytes or 16m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs' worth of time (0.5, 2)
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight, default 1024)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Give the container a host device: HOST[:CONTAINER][:rwm]
    #[arg(long = "device", value_name = "HOST[:CTR][:rwm]")]
    pub device: Vec<String>,
    /// Parent cgroup of the container's cgroup (default /minc)
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
}

impl ResourceFlags {
    pub fn any(&self) -> bool {
        self.memory.is_some()
            || self.memory_swap.is_some()
            || self.cpus.is_some()
            || self.cpu_shares.is_some()
            || self.cpuset_cpus.is_some()
            || self.pids_limit.is_some()
            || !self.device.is_empty()
            || self.cgroup_parent.is_some()
    }

    /// The flags as `linux.resources` (without device rules) and the `--device` entries as
    /// (linux.devices entry, resources.devices rule). Checked before anything is made.
    pub fn to_spec(&self) -> Result<(Value, Vec<(Value, Value)>)> {
        let mut r = json!({});
        if let Some(m) = &self.memory {
            let v = parse_size(m).with_context(|| format!("--memory {m}"))?;
            if v < 6 * 1024 * 1024 {
                bail!("--memory {m}: the minimum is 6MiB");
            }
            r["memory"]["limit"] = json!(v);
        }
        if let Some(s) = &self.memory_swap {
            let v = if s == "-1" {
                -1
            } else {
                parse_size(s).with_context(|| format!("--memory-swap {s}"))?
            };
            let Some(limit) = r["memory"]["limit"].as_i64() else {
                bail!("--memory-swap needs --memory (it is memory plus swap)");
            };
            if v != -1 && v < limit {
                bail!("--memory-swap {s} is smaller than --memory: it is memory plus swap");
            }
            r["memory"]["swap"] = json!(v);
        }
        if let Some(c) = self.cpus {
            let host = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            if c <= 0.0 || c > host || !c.is_finite() {
                bail!(
                    "--cpus {c}: give a number above 0 and at most {host} (the CPUs of this host)"
                );
            }
            r["cpu"]["period"] = json!(100_000);
            r["cpu"]["quota"] = json!((c * 100_000.0).round() as i64);
        }
        if let Some(s) = self.cpu_shares {
            if !(2..=262_144).contains(&s) {
                bail!("--cpu-shares {s}: the range is 2 to 262144");
            }
            r["cpu"]["shares"] = json!(s);
        }
        if let Some(c) = &self.cpuset_cpus {
            if c.is_empty()
                || !c
                    .chars()
                    .all(|ch| ch.is_ascii_digit() || ch == ',' || ch == '-')
            {
                bail!("--cpuset-cpus {c:?}: expected a list like 0-2,4");
            }
            r["cpu"]["cpus"] = json!(c);
        }
        if let Some(p) = self.pids_limit {
            r["pids"]["limit"] = json!(if p <= 0 { -1 } else { p });
        }
        let devices = self
            .device
            .iter()
            .map(|d| parse_device(d).with_context(|| format!("--device {d}")))
            .collect::<Result<Vec<_>>>()?;
        Ok((r, devices))
    }
}

/// Docker's sizes: `1024`, `16m`, `1.5g`, `512k`, `2gb` (binary multiples).
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix('b')
        .filter(|r| !r.is_empty() && !r.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a size (use bytes or a number with k, m, g, t)"))?;
    if !(0.0..9e18).contains(&(v * mult as f64)) {
        bail!("{s:?} is out of range");
    }
    Ok((v * mult as f64) as i64)
}

/// `HOST[:CONTAINER][:PERMISSIONS]`, as `docker run --device`: the host node's type and
/// numbers are read from the host; the container gets the node at CONTAINER (default the
/// same path) and a cgroup rule allowing PERMISSIONS (default rwm).
pub fn parse_device(spec: &str) -> Result<(Value, Value)> {
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perm = |s: &str| !s.is_empty() && s.chars().all(|c| "rwm".contains(c));
    let (host, ctr, perm) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perm(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perm(p) => (*h, *c, *p),
        _ => bail!("expected HOST[:CONTAINER][:rwm]"),
    };
    if !host.starts_with('/') || !ctr.starts_with('/') {
        bail!("device paths must be absolute");
    }
    if ctr.split('/').any(|c| c == "..") {
        bail!("container path {ctr} may not contain ..");
    }
    let meta = std::fs::metadata(host).with_context(|| format!("host device {host}"))?;
    let kind = if meta.file_type().is_block_device() {
        "b"
    } else if meta.file_type().is_char_device() {
        "c"
    } else {
        bail!("{host} is not a device node");
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let node = json!({
        "path": ctr, "type": kind, "major": major, "minor": minor,
        "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid()
    });
    let rule = json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perm});
    Ok((node, rule))
}

/// Loads a container that has a cgroup, under its lock.
fn with_cgroup(rt: &Runtime, id: &str) -> Result<(State, Cgroup, Lock)> {
    let state = rt.load(id)?;
    let lock = crate::container::lock_existing(&rt.dir(id))
        .with_context(|| format!("lock container {id}"))?
        .ok_or_else(|| anyhow!("container {id} does not exist"))?;
    let cg = state
        .cgroup
        .clone()
        .ok_or_else(|| anyhow!("container {id} has no cgroup (made by an older minc)"))?;
    Ok((state, cg, lock))
}

/// `pause ID`: freeze every process of a running container.
pub fn pause(rt: &Runtime, id: &str) -> Result<()> {
    let (state, cg, _lock) = with_cgroup(rt, id)?;
    match state.status() {
        Status::Running => {}
        s => bail!(
            "container {id} is {}: only a running container can be paused",
            s.as_str()
        ),
    }
    cgroups::freezer::freeze(&cg)?;
    Ok(())
}

/// `resume ID`: thaw a paused container.
pub fn resume(rt: &Runtime, id: &str) -> Result<()> {
    let (state, cg, _lock) = with_cgroup(rt, id)?;
    match state.status() {
        Status::Paused => {}
        s => bail!("container {id} is {}: it is not paused", s.as_str()),
    }
    cgroups::freezer::thaw(&cg)?;
    Ok(())
}

/// `update [flags|-r FILE] ID`: change a live container's limits.
pub fn update(rt: &Runtime, a: &UpdateArgs) -> Result<()> {
    let (state, cg, _lock) = with_cgroup(rt, &a.id)?;
    if state.status() == Status::Stopped {
        bail!("container {} is stopped: there is nothing to update", a.id);
    }
    let res: LinuxResources = match &a.resources {
        Some(src) => {
            // Resources JSON is small; a bigger input is a mistake (or an attack).
            const MAX: u64 = 1 << 20;
            let mut data = Vec::new();
            if src == "-" {
                std::io::stdin()
                    .take(MAX + 1)
                    .read_to_end(&mut data)
                    .context("read resources from stdin")?;
            } else {
                std::fs::File::open(src)
                    .and_then(|f| f.take(MAX + 1).read_to_end(&mut data))
                    .with_context(|| format!("read {src}"))?;
            }
            if data.len() as u64 > MAX {
                bail!("resources {src}: larger than 1 MiB");
            }
            serde_json::from_slice(&data)
                .with_context(|| format!("resources {src}: not valid linux.resources JSON"))?
        }
        None => serde_json::from_value(a.flags_json()?)?,
    };
    cg.apply(&res, true)?;
    Ok(())
}

impl UpdateArgs {
    fn flags_json(&self) -> Result<Value> {
        if self.kernel_memory.is_some() || self.kernel_memory_tcp.is_some() {
            bail!("--kernel-memory and --kernel-memory-tcp are obsolete: kernels no longer enforce them");
        }
        let size = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .map(|s| {
                    if s == "-1" {
                        Ok(-1)
                    } else {
                        parse_size(s).with_context(|| format!("--{name} {s}"))
                    }
                })
                .transpose()
        };
        let mut r = json!({"memory": {}, "cpu": {}, "blockIO": {}});
        let mut set = |path: [&str; 2], v: Value| {
            if !v.is_null() {
                r[path[0]][path[1]] = v;
            }
        };
        set(["memory", "limit"], json!(size("memory", &self.memory)?));
        set(
            ["memory", "reservation"],
            json!(size("memory-reservation", &self.memory_reservation)?),
        );
        set(
            ["memory", "swap"],
            json!(size("memory-swap", &self.memory_swap)?),
        );
        set(["cpu", "shares"], json!(self.cpu_share));
        set(["cpu", "quota"], json!(self.cpu_quota));
        set(["cpu", "period"], json!(self.cpu_period));
        set(["cpu", "burst"], json!(self.cpu_burst));
        set(["cpu", "realtimePeriod"], json!(self.cpu_rt_period));
        set(["cpu", "realtimeRuntime"], json!(self.cpu_rt_runtime));
        set(["cpu", "cpus"], json!(self.cpuset_cpus));
        set(["cpu", "mems"], json!(self.cpuset_mems));
        set(["cpu", "idle"], json!(self.cpu_idle));
        set(["blockIO", "weight"], json!(self.blkio_weight));
        if let Some(p) = self.pids_limit {
            r["pids"] = json!({"limit": p});
        }
        if r["memory"]["limit"] == json!(-1) && r["memory"]["swap"].is_null() {
            r["memory"]["swap"] = json!(-1);
        }
        Ok(r)
    }
}

/// Go's durations as runc takes them: `5s`, `500ms`, `1m30s`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        bail!("empty duration");
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n]
            .parse()
            .map_err(|_| anyhow!("duration {s:?}: expected a number like 5s"))?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => bail!("duration {s:?}: unknown unit {other:?} (use ms, s, m, h)"),
        };
        total += num * secs;
        rest = &rest[u..];
    }
    if total <= 0.0 {
        bail!("duration interval must be greater than 0");
    }
    Ok(Duration::from_secs_f64(total))
}

/// `events [--stats] [--interval D] ID`: runc's JSON lines, `{"type":"stats","id":..,
/// "data":{...}}` every interval and `{"type":"oom","id":..}` when the OOM killer acts,
/// until the container stops.
pub fn events(rt: &Runtime, a: &EventsArgs) -> Result<()> {
    let interval = parse_duration(&a.interval)?;
    let state = rt.load(&a.id)?;
    if state.status() == Status::Stopped {
        bail!("container with id {} is not running", a.id);
    }
    let cg = state
        .cgroup
        .clone()
        .ok_or_else(|| anyhow!("container {} has no cgroup", a.id))?;
    let mut out = std::io::stdout().lock();
    let mut emit = |v: Value| -> Result<()> {
        writeln!(out, "{}", serde_json::to_string(&v)?)?;
        out.flush()?;
        Ok(())
    };
    let stats_event = |cg: &Cgroup| -> Result<Value> {
        Ok(json!({"type": "stats", "id": a.id, "data": stats::read(cg)?}))
    };
    if a.stats {
        return emit(stats_event(&cg)?);
    }
    let notifier = cg.oom_notifier().ok();
    let mut ooms = cg.oom_kills();
    let mut next = Instant::now() + interval;
    loop {
        let wait = next.saturating_duration_since(Instant::now());
        let mut ready = false;
        if let Some(fd) = &notifier {
            let mut p = libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = wait.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: one pollfd on our own fd.
            ready = unsafe { libc::poll(&mut p, 1, ms) } > 0;
            if ready {
                stats::drain(fd);
            }
        } else {
            std::thread::sleep(wait);
        }
        let now_state = rt.load(&a.id).ok();
        if !cg.exists()
            || now_state
                .as_ref()
                .is_none_or(|s| s.status() == Status::Stopped)
        {
            if cg.oom_kills() > ooms {
                emit(json!({"type": "oom", "id": a.id}))?;
            }
            return Ok(());
        }
        if ready {
            let n = cg.oom_kills();
            if n > ooms {
                ooms = n;
                emit(json!({"type": "oom", "id": a.id}))?;
            }
        }
        if Instant::now() >= next {
            match stats_event(&cg) {
                Ok(v) => emit(v)?,
                Err(e) => tracing::warn!("events {}: {e}", a.id),
            }
            next += interval;
        }
    }
}

/// One container's sample for `stats`.
struct Sample {
    cpu_ns: u64,
    at: Instant,
    stats: stats::Stats,
    net: Option<(u64, u64)>,
}

fn sample(cg: &Cgroup, pid: i32) -> Option<Sample> {
    let s = stats::read(cg).ok()?;
    Some(Sample {
        cpu_ns: s.cpu.usage.total,
        at: Instant::now(),
        net: stats::net_bytes(pid),
        stats: s,
    })
}

/// Memory in use the way Docker counts it: usage minus inactive page cache.
fn mem_used(s: &stats::Stats) -> u64 {
    let cache = ["total_inactive_file", "inactive_file"]
        .iter()
        .find_map(|k| s.memory.raw.get(*k))
        .copied()
        .unwrap_or(0);
    s.memory.usage.usage.saturating_sub(cache)
}

/// `stats [--no-stream] [--format json] [NAME...]`, like `docker stats`.
pub fn stats_cmd(ctx: &Ctx, a: &StatsArgs) -> Result<()> {
    let rt = Runtime::new(&ctx.root);
    let containers = super::containers::Containers::new(&ctx.data_root);
    let records = if a.names.is_empty() {
        containers.all()?
    } else {
        a.names
            .iter()
            .map(|n| containers.find(n))
            .collect::<Result<Vec<_>>>()?
    };
    let host_mem = host_memory();
    let tty = std::io::stdout().is_terminal() && a.format == "table";
    let mut prev: HashMap<String, Sample> = HashMap::new();
    loop {
        let mut targets = Vec::new();
        for r in &records {
            let Ok(state) = rt.load(&r.id) else { continue };
            if !matches!(state.status(), Status::Running | Status::Paused) {
                if !a.names.is_empty() {
                    bail!("container {} is not running", r.name);
                }
                continue;
            }
            if let Some(cg) = state.cgroup.clone() {
                targets.push((r, cg, state.oci.pid));
            }
        }
        if prev.is_empty() {
            // A first sample to compute CPU % from.
            for (r, cg, pid) in &targets {
                if let Some(s) = sample(cg, *pid) {
                    prev.insert(r.id.clone(), s);
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut rows = Vec::new();
        for (r, cg, pid) in &targets {
            let Some(now) = sample(cg, *pid) else {
                continue;
            };
            let cpu = prev.get(&r.id).map_or(0.0, |p| {
                let dt = now.at.duration_since(p.at).as_nanos() as f64;
                if dt > 0.0 {
                    now.cpu_ns.saturating_sub(p.cpu_ns) as f64 / dt * 100.0
                } else {
                    0.0
                }
            });
            let used = mem_used(&now.stats);
            let limit = now.stats.memory.usage.limit.min(host_mem);
            let (rx, tx) = now.net.unwrap_or((0, 0));
            let (br, bw) = now.stats.blkio.bytes();
            if a.format == "json" {
                let v = json!({
                    "ID": &r.id[..12], "Name": r.name, "CPUPerc": (cpu * 100.0).round() / 100.0,
                    "MemUsage": used, "MemLimit": limit, "NetInput": rx, "NetOutput": tx,
                    "BlockInput": br, "BlockOutput": bw, "PIDs": now.stats.pids.current,
                    "OOMKills": cg.oom_kills(),
                });
                println!("{v}");
            } else {
                rows.push(vec![
                    r.id[..12].to_string(),
                    r.name.clone(),
                    format!("{cpu:.2}%"),
                    format!(
                        "{} / {}",
                        stats::human_bytes(used),
                        stats::human_bytes(limit)
                    ),
                    format!("{:.2}%", used as f64 / limit.max(1) as f64 * 100.0),
                    format!("{} / {}", stats::human_bytes(rx), stats::human_bytes(tx)),
                    format!("{} / {}", stats::human_bytes(br), stats::human_bytes(bw)),
                    now.stats.pids.current.to_string(),
                ]);
            }
            prev.insert(r.id.clone(), now);
        }
        if a.format == "table" {
            if tty {
                print!("\x1b[2J\x1b[H");
            }
            let header = [
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "NET I/O",
                "BLOCK I/O",
                "PIDS",
            ];
            print!("{}", format::table(&header, &rows));
        }
        std::io::stdout().flush()?;
        if a.no_stream {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(u64::MAX, |kb| kb * 1024)
}

/// `top NAME`: the container's processes, like `docker top` (ps -ef columns).
pub fn top(ctx: &Ctx, key: &str) -> Result<()> {
    let r = super::containers::Containers::new(&ctx.data_root).find(key)?;
    let rt = Runtime::new(&ctx.root);
    let state = rt.load(&r.id)?;
    if !matches!(state.status(), Status::Running | Status::Paused) {
        bail!("container {} is not running", r.name);
    }
    let tick = clock_ticks();
    let boot = boot_time();
    let uptime = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    let mut rows = Vec::new();
    for pid in rt.pids(&state) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (ppid, tty, utime, stime, start) = (num(1), num(4), num(11), num(12), num(19));
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(String::from))
            })
            .unwrap_or_default();
        let cpu_secs = (utime + stime) as f64 / tick;
        let age = uptime - start as f64 / tick;
        let c = if age > 0.0 {
            (cpu_secs / age * 100.0) as u64
        } else {
            0
        };
        let started = boot + start / tick as u64;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let t = cpu_secs as u64;
        rows.push(vec![
            uid,
            pid.to_string(),
            ppid.to_string(),
            c.to_string(),
            format::rfc3339_secs(started)[11..16].to_string(),
            if tty == 0 {
                "?".into()
            } else {
                format!("{}:{}", tty >> 8, tty & 0xff)
            },
            format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60),
            cmd.trim_end().to_string(),
        ]);
    }
    let header = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];
    print!("{}", format::table(&header, &rows));
    Ok(())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf is always safe.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("btime "))
                .and_then(|l| l[6..].trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_durations_devices() {
        assert_eq!(parse_size("16m").unwrap(), 16 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("512KB").unwrap(), 512 << 10);
        assert_eq!(parse_size("100").unwrap(), 100);
        for bad in ["", "m", "-5m", "12x", "1e30"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        let (node, rule) = parse_device("/dev/null:/dev/mynull:rw").unwrap();
        assert_eq!(node["path"], "/dev/mynull");
        assert_eq!(
            (
                rule["type"].as_str(),
                rule["major"].as_u64(),
                rule["minor"].as_u64()
            ),
            (Some("c"), Some(1), Some(3))
        );
        assert_eq!(rule["access"], "rw");
        assert!(parse_device("/etc/passwd").is_err());
        assert!(parse_device("/dev/null:/dev/../etc/x").is_err());
        assert!(parse_device("relative").is_err());
    }

    #[test]
    fn docker_flags_to_resources() {
        let f = ResourceFlags {
            memory: Some("16m".into()),
            memory_swap: Some("32m".into()),
            cpus: Some(0.5),
            pids_limit: Some(20),
            ..Default::default()
        };
        let (r, d) = f.to_spec().unwrap();
        assert_eq!(r["memory"], json!({"limit": 16 << 20, "swap": 32 << 20}));
        assert_eq!(r["cpu"], json!({"period": 100000, "quota": 50000}));
        assert_eq!(r["pids"], json!({"limit": 20}));
        assert!(d.is_empty());
        let bad = ResourceFlags {
            memory_swap: Some("32m".into()),
            ..Default::default()
        };
        assert!(bad.to_spec().is_err());
        let bad = ResourceFlags {
            memory: Some("1k".into()),
            ..Default::default()
        };
        assert!(bad.to_spec().is_err());
    }
}
