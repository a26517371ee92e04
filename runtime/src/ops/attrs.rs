//! Scheduling and execution attributes of the container's process, from the spec's
//! `process.scheduler`, `process.ioPriority`, `process.execCPUAffinity`, `linux.personality`
//! and `linux.memoryPolicy`. Each survives execve(2), so the init sets them on itself before
//! it runs the program. Man pages: sched_setattr(2), ioprio_set(2), sched_setaffinity(2),
//! personality(2), set_mempolicy(2); the shell tools chrt(1), ionice(1), taskset(1),
//! setarch(8), numactl(8).

use sysops::explain::{self, Cmd};

use crate::error::{check, Error, Result};

/// One attribute, with the values the kernel will get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    /// personality(2): an execution domain (PER_LINUX, PER_LINUX32).
    Personality {
        persona: libc::c_ulong,
        name: String,
    },
    /// ioprio_set(2) on this process: class (1 rt, 2 best-effort, 3 idle) and level.
    IoPriority { class: u32, level: u32 },
    /// sched_setattr(2).
    Scheduler(SchedAttr),
    /// sched_setaffinity(2) with a CPU list such as `0-3,7`.
    Affinity { cpus: String, mask: Vec<u64> },
    /// set_mempolicy(2): mode (with flags) over a node list.
    MemPolicy {
        mode: i32,
        flags: i32,
        nodes: String,
        mask: Vec<u64>,
        name: String,
    },
}

/// The kernel's struct sched_attr (linux/sched/types.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
}

impl Attr {
    pub fn render(&self) -> Option<Cmd> {
        Some(match self {
            Attr::Personality { name, .. } => {
                explain::comment(&format!(
                    "personality(2) {name}: a shell sets it only for a program it starts (setarch {} PROGRAM)",
                    name.to_ascii_lowercase()
                ));
                return None;
            }
            Attr::IoPriority { class, level } => Cmd::new("ionice")
                .arg("-c")
                .arg(class.to_string())
                .arg("-n")
                .arg(level.to_string())
                .arg("-p")
                .raw_arg("$$"),
            Attr::Scheduler(a) => {
                let policy = match a.policy {
                    1 => "--fifo",
                    2 => "--rr",
                    3 => "--batch",
                    5 => "--idle",
                    6 => "--deadline",
                    _ => "--other",
                };
                let mut c = Cmd::new("chrt").arg(policy);
                if a.policy == 6 {
                    c = c
                        .arg(format!("--sched-runtime={}", a.runtime))
                        .arg(format!("--sched-deadline={}", a.deadline))
                        .arg(format!("--sched-period={}", a.period));
                }
                if a.flags & 1 != 0 {
                    c = c.arg("--reset-on-fork");
                }
                let c = c.arg("-p").arg(a.priority.to_string()).raw_arg("$$");
                if a.nice != 0 {
                    c.emit();
                    return Some(
                        Cmd::new("renice")
                            .arg("-n")
                            .arg(a.nice.to_string())
                            .arg("-p")
                            .raw_arg("$$"),
                    );
                }
                c
            }
            Attr::Affinity { cpus, .. } => Cmd::new("taskset")
                .arg("-c")
                .arg("-p")
                .arg(cpus)
                .raw_arg("$$"),
            Attr::MemPolicy { name, nodes, .. } => {
                explain::comment(&format!(
                    "set_mempolicy(2) {name} over nodes {nodes:?}: a shell sets it only for a program it starts (numactl)"
                ));
                return None;
            }
        })
    }

    pub fn perform(&self) -> Result<()> {
        // SAFETY (all arms): plain syscalls with valid arguments and buffers that outlive them.
        match self {
            Attr::Personality { persona, name } => {
                let r = unsafe { libc::personality(*persona) };
                check(r, || format!("personality {name}")).map(|_| ())
            }
            Attr::IoPriority { class, level } => {
                const IOPRIO_WHO_PROCESS: i32 = 1;
                let prio = (class << 13) | level;
                let r = unsafe {
                    libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio as i32)
                };
                check(r as i32, || {
                    format!("ioprio_set class {class} level {level}")
                })
                .map(|_| ())
            }
            Attr::Scheduler(a) => {
                let mut a = *a;
                a.size = std::mem::size_of::<SchedAttr>() as u32;
                let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const _, 0) };
                check(r as i32, || format!("sched_setattr policy {}", a.policy)).map(|_| ())
            }
            Attr::Affinity { cpus, mask } => {
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_sched_setaffinity,
                        0,
                        mask.len() * 8,
                        mask.as_ptr(),
                    )
                };
                check(r as i32, || format!("sched_setaffinity {cpus}")).map(|_| ())
            }
            Attr::MemPolicy {
                mode,
                flags,
                mask,
                name,
                ..
            } => {
                let (ptr, maxnode) = if mask.iter().all(|w| *w == 0) {
                    (std::ptr::null(), 0)
                } else {
                    (mask.as_ptr(), mask.len() * 64 + 1)
                };
                let r =
                    unsafe { libc::syscall(libc::SYS_set_mempolicy, mode | flags, ptr, maxnode) };
                check(r as i32, || format!("set_mempolicy {name}")).map(|_| ())
            }
        }
    }
}

/// Parses a Linux CPU or node list (`0-3,7`) into a bit mask of 64-bit words.
pub fn parse_list(list: &str, what: &str) -> Result<Vec<u64>> {
    let bad = || Error::Init(format!("{what} {list:?} is not a list such as 0-3,7"));
    let mut mask = vec![0u64; 1];
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        let (lo, hi) = (lo.map_err(|_| bad())?, hi.map_err(|_| bad())?);
        if lo > hi || hi >= 8192 {
            return Err(bad());
        }
        for bit in lo..=hi {
            if mask.len() <= bit / 64 {
                mask.resize(bit / 64 + 1, 0);
            }
            mask[bit / 64] |= 1 << (bit % 64);
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert_eq!(parse_list("0-3,7", "cpus").unwrap(), [0b1000_1111]);
        assert_eq!(parse_list("64", "cpus").unwrap(), [0, 1]);
        assert!(parse_list("3-1", "cpus").is_err());
        assert!(parse_list("x", "cpus").is_err());
    }

    #[test]
    fn renderings() {
        let io = Attr::IoPriority { class: 2, level: 4 };
        assert_eq!(io.render().unwrap().render(), "ionice -c 2 -n 4 -p $$");
        let aff = Attr::Affinity {
            cpus: "0-1".into(),
            mask: vec![3],
        };
        assert_eq!(aff.render().unwrap().render(), "taskset -c -p 0-1 $$");
    }
}
