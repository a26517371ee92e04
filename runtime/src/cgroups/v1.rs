//! cgroup v1: one hierarchy per controller, each with its own files
//! (kernel: Documentation/admin-guide/cgroup-v1/{memory,cpusets,blkio-controller,pids,
//! hugetlb,devices,freezer-subsystem}.rst; cgroups(7)).
//!
//! `linux.resources` maps onto v1 files almost one to one (the OCI spec was written for v1).
//! The exceptions are what current kernels no longer have: kernel memory limits
//! (`memory.kmem.limit_in_bytes` still exists but ignores writes on this host's 6.18: refused
//! here, naming the file), blkio's CFQ weights (`blkio.weight`, `blkio.leaf_weight`: gone
//! with CFQ in Linux 5.0; BFQ's `blkio.bfq.weight` takes the weight), and, on a hybrid host,
//! controllers that are only in the v2 tree (hugetlb here): those are written to the
//! container's v2 directory instead. Anything else that cannot be applied is an error naming
//! the file.

use std::path::Path;

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::fs::{self, write};
use super::{v2, Cgroup, Dir, Error, Result};

/// Makes the directory of one v1 hierarchy. cpuset is special: a new cpuset cgroup starts
/// with no CPUs and no memory nodes (and then no process can join it) unless its parent has
/// `cgroup.clone_children` set. So the parent gets that flag (once; it only makes children
/// inherit the parent's CPUs and nodes, as crun does), which is much cheaper than writing
/// `cpuset.cpus` into every new cgroup (a write that rebuilds scheduling domains).
pub fn create(d: &Dir) -> Result<()> {
    if !d.has("cpuset") {
        mkdir_all(&d.path)?;
        return Ok(());
    }
    let mut inherits = false;
    if let Some(parent) = d.path.parent() {
        for dir in mkdir_all(parent)? {
            inherit_cpuset(&dir)?; // a parent made now needs CPUs itself
        }
        let flag = parent.join("cgroup.clone_children");
        inherits = fs::read(&flag).is_ok_and(|v| v == "1");
        if !inherits {
            inherits = write(&flag, "1").is_ok();
        }
    }
    for dir in mkdir_all(&d.path)? {
        if !inherits {
            inherit_cpuset(&dir)?;
        }
    }
    Ok(())
}

/// Gives a new cpuset cgroup its parent's CPUs and memory nodes if it has none.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        if fs::read(&own)?.is_empty() {
            let parent = dir.parent().expect("made below a mount").join(file);
            write(&own, &fs::read(&parent)?)?;
        }
    }
    Ok(())
}

/// `mkdir -p`, returning the directories it made, top first (empty: it existed). The
/// common case, a parent that exists, is one mkdir(2).
pub(super) fn mkdir_all(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    // Explained once made, so the transcript has parents first.
    let explain = |p: &Path| sysops::explain::Cmd::new("mkdir").arg("-p").arg(p).emit();
    match std::fs::create_dir(path) {
        Ok(()) => {
            explain(path);
            Ok(vec![path.to_path_buf()])
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = path.parent().ok_or_else(|| Error::io(path, e))?;
            let mut made = mkdir_all(parent)?;
            match std::fs::create_dir(path) {
                Ok(()) => {
                    explain(path);
                    made.push(path.to_path_buf())
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(path, e)),
            }
            Ok(made)
        }
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes the resources into the v1 hierarchies (device rules are separate: `devices`).
pub fn apply(cg: &Cgroup, r: &LinuxResources, update: bool) -> Result<()> {
    let need = |controller: &str, what: &str| -> Result<&Path> {
        cg.dir(controller)
            .map(|d| d.path.as_path())
            .ok_or_else(|| Error::Unsupported {
                what: what.into(),
                why: format!("the {controller} controller is not mounted on this host"),
            })
    };
    if let Some(m) = r.memory() {
        if memory_set(m) {
            memory(need("memory", "linux.resources.memory")?, m, update)?;
        }
    }
    if let Some(c) = r.cpu() {
        cpu(cg, c, &need)?;
    }
    if let Some(p) = r.pids() {
        if p.limit() != 0 {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            write(&need("pids", "linux.resources.pids")?.join("pids.max"), &v)?;
        }
    }
    if let Some(b) = r.block_io() {
        blkio(b, &|| need("blkio", "linux.resources.blockIO"))?;
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        match cg.dir("hugetlb") {
            Some(d) => {
                for l in h {
                    let file = format!("hugetlb.{}.limit_in_bytes", l.page_size());
                    write(&d.path.join(file), &l.limit().to_string())?;
                }
            }
            // Hybrid hosts may have hugetlb only in the v2 tree.
            None => match cg.unified_dir() {
                Some(d) => {
                    v2::enable_path(&d.path)?;
                    v2::hugepages(&d.path, h)?
                }
                None => need("hugetlb", "linux.resources.hugepageLimits").map(|_| ())?,
            },
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            write(
                &need("net_cls", "linux.resources.network.classID")?.join("net_cls.classid"),
                &id.to_string(),
            )?;
        }
        for p in n.priorities().iter().flatten() {
            write(
                &need("net_prio", "linux.resources.network.priorities")?.join("net_prio.ifpriomap"),
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
    }
    if let Some(rdma) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        let dir = need("rdma", "linux.resources.rdma")?;
        for (dev, l) in rdma {
            write(&dir.join("rdma.max"), &super::rdma_line(dev, l))?;
        }
    }
    if let Some(u) = r.unified().as_ref().filter(|u| !u.is_empty()) {
        // runc refuses these on v1; on a hybrid host they can go to the v2 tree.
        match cg.unified_dir() {
            Some(d) => {
                v2::enable_path(&d.path)?;
                v2::unified(&d.path, u)?
            }
            None => {
                return Err(Error::Unsupported {
                    what: "linux.resources.unified".into(),
                    why: "this host has no cgroup v2 hierarchy".into(),
                })
            }
        }
    }
    Ok(())
}

fn memory_set(m: &LinuxMemory) -> bool {
    #[allow(deprecated)]
    let kernel = m.kernel();
    m.limit().is_some()
        || m.reservation().is_some()
        || m.swap().is_some()
        || kernel.is_some()
        || m.kernel_tcp().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer().is_some()
        || m.use_hierarchy().is_some()
}

fn memory(dir: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    let limit_file = dir.join("memory.limit_in_bytes");
    let swap_file = dir.join("memory.memsw.limit_in_bytes");
    let limit = m.limit().filter(|v| *v != 0);
    let mut swap = m.swap().filter(|v| *v != 0);
    if limit == Some(-1) && swap.is_none() && swap_file.exists() {
        swap = Some(-1); // unlimited memory means unlimited swap too, as in runc
    }
    if let Some(l) = limit {
        if l < -1 || (0..4096).contains(&l) {
            return Err(Error::Invalid(format!(
                "memory.limit {l}: give at least 4096 bytes, or -1 for no limit"
            )));
        }
    }
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(Error::Invalid(format!(
                "memory.swap {s} is below memory.limit {l}: swap is memory+swap, so it must be at least the limit"
            )));
        }
    }
    if swap.is_some() && !swap_file.exists() {
        return Err(Error::Unsupported {
            what: "linux.resources.memory.swap".into(),
            why: format!(
                "{} is missing (the kernel does not account swap: boot with swapaccount=1)",
                swap_file.display()
            ),
        });
    }
    let write_mem = |v: i64| -> Result<()> {
        if update && m.check_before_update() == Some(true) && v > 0 {
            let usage = fs::read_u64(&dir.join("memory.usage_in_bytes"))?;
            if usage > v as u64 {
                return Err(Error::Invalid(format!(
                    "memory.limit {v} is below the current usage {usage}"
                )));
            }
        }
        write(&limit_file, &v.to_string())
    };
    // The kernel wants memory <= memory+swap at every step: raise swap first when growing.
    match (limit, swap) {
        (Some(l), Some(s)) => {
            let current = fs::read_u64(&limit_file)?;
            if s == -1 || current < s as u64 {
                write(&swap_file, &s.to_string())?;
                write_mem(l)?;
            } else {
                write_mem(l)?;
                write(&swap_file, &s.to_string())?;
            }
        }
        (Some(l), None) => write_mem(l)?,
        (None, Some(s)) => write(&swap_file, &s.to_string())?,
        (None, None) => {}
    }
    if let Some(r) = m.reservation().filter(|v| *v != 0) {
        write(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
    }
    #[allow(deprecated)]
    if let Some(k) = m.kernel().filter(|v| *v != 0) {
        return Err(Error::Unsupported {
            what: format!("linux.resources.memory.kernel {k}"),
            why: format!(
                "{}: this kernel no longer enforces kernel memory limits (it ignores writes); remove the setting",
                dir.join("memory.kmem.limit_in_bytes").display()
            ),
        });
    }
    if let Some(t) = m.kernel_tcp().filter(|v| *v != 0) {
        write(&dir.join("memory.kmem.tcp.limit_in_bytes"), &t.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            return Err(Error::Invalid(format!(
                "memory.swappiness {s}: the range is 0 to 100"
            )));
        }
        write(&dir.join("memory.swappiness"), &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write(&dir.join("memory.oom_control"), "1")?;
    } else if update && m.disable_oom_killer() == Some(false) {
        write(&dir.join("memory.oom_control"), "0")?;
    }
    if let Some(h) = m.use_hierarchy() {
        write(&dir.join("memory.use_hierarchy"), if h { "1" } else { "0" })?;
    }
    Ok(())
}

fn cpu<'a>(
    cg: &'a Cgroup,
    c: &LinuxCpu,
    need: &dyn Fn(&str, &str) -> Result<&'a Path>,
) -> Result<()> {
    let cpu = || need("cpu", "linux.resources.cpu");
    if let Some(s) = c.shares().filter(|v| *v != 0) {
        write(&cpu()?.join("cpu.shares"), &s.to_string())?;
    }
    // The period first: a quota is checked against the period in force.
    if let Some(p) = c.period().filter(|v| *v != 0) {
        write(&cpu()?.join("cpu.cfs_period_us"), &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|v| *v != 0) {
        write(&cpu()?.join("cpu.cfs_quota_us"), &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        write(&cpu()?.join("cpu.cfs_burst_us"), &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|v| *v != 0) {
        write(&cpu()?.join("cpu.rt_period_us"), &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|v| *v != 0) {
        write(&cpu()?.join("cpu.rt_runtime_us"), &r.to_string())?;
    }
    if let Some(i) = c.idle() {
        write(&cpu()?.join("cpu.idle"), &i.to_string())?;
    }
    let cpuset = || need("cpuset", "linux.resources.cpu.cpus/mems");
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write(&cpuset()?.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write(&cpuset()?.join("cpuset.mems"), mems)?;
    }
    let _ = cg;
    Ok(())
}

fn blkio<'a>(b: &LinuxBlockIo, dir: &dyn Fn() -> Result<&'a Path>) -> Result<()> {
    if let Some(w) = b.weight().filter(|v| *v != 0) {
        let d = dir()?;
        // CFQ's blkio.weight is gone since Linux 5.0; BFQ has its own file.
        let file = ["blkio.weight", "blkio.bfq.weight"]
            .iter()
            .map(|f| d.join(f))
            .find(|p| p.exists())
            .ok_or_else(|| Error::Unsupported {
                what: format!("linux.resources.blockIO.weight {w}"),
                why: format!(
                    "{} has neither blkio.weight nor blkio.bfq.weight (no proportional I/O scheduler)",
                    d.display()
                ),
            })?;
        write(&file, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|v| *v != 0) {
        let file = dir()?.join("blkio.leaf_weight");
        if !file.exists() {
            return Err(Error::Unsupported {
                what: format!("linux.resources.blockIO.leafWeight {w}"),
                why: format!(
                    "{} does not exist (leaf weights went with the CFQ scheduler in Linux 5.0)",
                    file.display()
                ),
            });
        }
        write(&file, &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        let d = dir()?;
        if let Some(w) = wd.weight() {
            let file = ["blkio.weight_device", "blkio.bfq.weight_device"]
                .iter()
                .map(|f| d.join(f))
                .find(|p| p.exists())
                .unwrap_or_else(|| d.join("blkio.weight_device"));
            write(&file, &format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
        if let Some(w) = wd.leaf_weight() {
            write(
                &d.join("blkio.leaf_weight_device"),
                &format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
        }
    }
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ];
    for (file, list) in throttles {
        for t in list.iter().flatten() {
            write(
                &dir()?.join(file),
                &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
            )?;
        }
    }
    Ok(())
}
