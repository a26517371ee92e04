//! The process attributes set just before the container's program runs: resource limits,
//! user and groups, capabilities, no_new_privs; and how each is written in a shell
//! (`prlimit`, and one `setpriv ... -- PROGRAM` line for the identity).
//!
//! Capabilities in brief (capabilities(7)): a process has five sets. The bounding set caps
//! what it can ever gain; permitted is what it may use; effective is what the kernel checks;
//! inheritable and ambient pass across execve(2). The bounding set is dropped first (that
//! needs CAP_SETPCAP), then the user switch (with PR_SET_KEEPCAPS so the sets survive it),
//! then the other sets in one capset(2). Man pages: capabilities(7), setpriv(1),
//! prctl(2), setgroups(2), getrlimit(2), prlimit(1).

use std::str::FromStr;

use caps::{CapSet, Capability};
use sysops::explain::Cmd;

use crate::error::{check, Error, Result};

/// One resource limit.
#[derive(Debug, Clone)]
pub struct Rlimit {
    /// The spec's name, e.g. `RLIMIT_NOFILE`.
    pub name: String,
    pub resource: libc::__rlimit_resource_t,
    pub soft: u64,
    pub hard: u64,
}

impl Rlimit {
    pub fn new(name: &str, soft: u64, hard: u64) -> Result<Rlimit> {
        let resource = rlimit_resource(name)
            .ok_or_else(|| Error::Init(format!("unknown rlimit type {name:?}")))?;
        Ok(Rlimit {
            name: name.into(),
            resource,
            soft,
            hard,
        })
    }

    /// `prlimit --pid $$ --nofile=SOFT:HARD` ($$: the shell that goes on to exec the program).
    pub fn render(&self) -> Cmd {
        let opt = self.name.trim_start_matches("RLIMIT_").to_ascii_lowercase();
        Cmd::new("prlimit")
            .arg("--pid")
            .raw_arg("$$")
            .arg(format!("--{opt}={}:{}", self.soft, self.hard))
    }

    pub fn perform(&self) -> Result<()> {
        let lim = libc::rlimit {
            rlim_cur: self.soft,
            rlim_max: self.hard,
        };
        // SAFETY: valid rlimit struct.
        if unsafe { libc::setrlimit(self.resource, &lim) } == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out-pointer.
        unsafe { libc::getrlimit(self.resource, &mut cur) };
        if err.raw_os_error() == Some(libc::EPERM) && self.hard > cur.rlim_max {
            return Err(Error::Init(format!(
                "rlimit {}: hard limit {} is above the current hard limit {} and raising it needs CAP_SYS_RESOURCE, which this host does not grant",
                self.name, self.hard, cur.rlim_max
            )));
        }
        Err(Error::sys(format!("rlimit {}", self.name), err))
    }
}

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// A capability set as a bit mask (bit N = capability N).
pub type CapMask = u64;

/// Parses capability names (`CAP_CHOWN` or `CHOWN`) into a mask.
pub fn cap_mask<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<CapMask> {
    let mut mask = 0;
    for n in names {
        let up = n.to_ascii_uppercase();
        let full = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        let c = Capability::from_str(&full)
            .map_err(|_| Error::Init(format!("unknown capability {n:?}")))?;
        mask |= c.bitmask();
    }
    Ok(mask)
}

/// Names of the capabilities in a mask as the spec spells them (`CAP_CHOWN, CAP_KILL`).
pub fn cap_list(mask: CapMask) -> String {
    cap_names(mask)
        .iter()
        .map(|n| format!("CAP_{}", n.to_ascii_uppercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Names of the capabilities in a mask, as setpriv(1) spells them (`chown`, `kill`).
fn cap_names(mask: CapMask) -> Vec<String> {
    let mut v: Vec<String> = caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .map(|c| {
            c.to_string()
                .trim_start_matches("CAP_")
                .to_ascii_lowercase()
        })
        .collect();
    v.sort();
    v
}

/// Who the container's process is.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub bounding: CapMask,
    pub effective: CapMask,
    pub permitted: CapMask,
    pub inheritable: CapMask,
    pub ambient: CapMask,
    pub no_new_privs: bool,
}

impl Identity {
    /// `setpriv` with everything this identity sets; the exec step appends `-- PROGRAM`.
    pub fn render_setpriv(&self) -> Cmd {
        let set = |mask| {
            std::iter::once("-all".to_string())
                .chain(cap_names(mask).into_iter().map(|n| format!("+{n}")))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut c = Cmd::new("setpriv")
            .arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid));
        c = if self.groups.is_empty() {
            c.arg("--clear-groups")
        } else {
            c.arg(format!(
                "--groups={}",
                self.groups
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ))
        };
        c = c
            .arg(format!("--bounding-set={}", set(self.bounding)))
            .arg(format!("--inh-caps={}", set(self.inheritable)))
            // Only what can really be raised: ambient needs the capability in inheritable
            // too (minc skips the others, as runc does; setpriv would fail on them).
            .arg(format!(
                "--ambient-caps={}",
                set(self.ambient & self.inheritable)
            ));
        if self.no_new_privs {
            c = c.arg("--no-new-privs");
        }
        c
    }

    /// Drops the bounding set, switches user and groups, sets the capability sets and
    /// no_new_privs. Runs in the init (or exec child) just before the program is executed.
    pub fn perform(&self) -> Result<()> {
        drop_bounding(self.bounding)?;
        // SAFETY: plain syscalls with valid arguments.
        unsafe {
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0), || {
                "keep capabilities across setuid".into()
            })?;
            // A user namespace an unprivileged user made has setgroups(2) denied: with no
            // supplementary groups asked for there is nothing to set (runc does the same).
            let denied =
                std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
            if !(denied && self.groups.is_empty()) {
                check(
                    libc::setgroups(self.groups.len(), self.groups.as_ptr()),
                    || format!("setgroups {:?}", self.groups),
                )?;
            }
            check(libc::setgid(self.gid), || format!("setgid {}", self.gid))?;
            check(libc::setuid(self.uid), || format!("setuid {}", self.uid))?;
            check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0), || {
                "keep capabilities across setuid".into()
            })?;
            if let Some(mask) = self.umask {
                libc::umask(mask);
            }
        }
        capset(self.effective, self.permitted, self.inheritable)?;
        for cap in caps::all() {
            if self.ambient & cap.bitmask() == 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments.
            let r = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap.index() as libc::c_ulong,
                    0,
                    0,
                )
            };
            // Ambient needs the capability in inheritable too; runc's own default spec
            // lists ambient without inheritable, so like runc, skip what cannot be raised.
            if r < 0 {
                tracing::debug!("cannot raise ambient {cap}: not inheritable");
            }
        }
        if self.no_new_privs {
            // SAFETY: prctl with integer arguments.
            check(
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) },
                || "no_new_privs".into(),
            )?;
        }
        Ok(())
    }
}

/// Drops every capability not in `keep` from the bounding set.
fn drop_bounding(keep: CapMask) -> Result<()> {
    let current = caps::read(None, CapSet::Bounding)
        .map_err(|e| Error::Init(format!("read the bounding set: {e}")))?;
    for cap in current {
        if keep & cap.bitmask() == 0 {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| Error::Init(format!("drop {cap} from the bounding set: {e}")))?;
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets effective, permitted and inheritable in one capset(2) (one at a time could fail in
/// between, when effective would exceed permitted).
fn capset(e: CapMask, p: CapMask, i: CapMask) -> Result<()> {
    let hdr = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs as capset v3 expects.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    check(r as i32, || "set capabilities (capset)".into()).map(|_| ())
}

/// nsenter(1)'s option name for a CLONE_NEW* flag.
pub fn nsenter_name(nstype: libc::c_int) -> &'static str {
    match nstype {
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWCGROUP => "cgroup",
        _ => "time",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_names_and_masks() {
        assert_eq!(cap_mask(["CAP_KILL", "chown"]).unwrap(), (1 << 5) | 1);
        assert!(cap_mask(["CAP_BOGUS"]).is_err());
        assert_eq!(cap_names((1 << 5) | 1), ["chown", "kill"]);
    }

    #[test]
    fn setpriv_line() {
        let id = Identity {
            uid: 1000,
            gid: 100,
            groups: vec![10, 20],
            bounding: 1 << 5,
            no_new_privs: true,
            ..Default::default()
        };
        assert_eq!(
            id.render_setpriv().render(),
            "setpriv --reuid=1000 --regid=100 --groups=10,20 --bounding-set=-all,+kill \
             --inh-caps=-all --ambient-caps=-all --no-new-privs"
        );
        let r = Rlimit::new("RLIMIT_NOFILE", 1024, 4096).unwrap();
        assert_eq!(r.render().render(), "prlimit --pid $$ --nofile=1024:4096");
    }
}
