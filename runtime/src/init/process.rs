//! What the container's process is made of, read from the spec: its identity (user, groups,
//! capabilities), rlimits, environment and the program to run. The privileged steps that
//! apply them are in `ops::process`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::ops::attrs::{parse_list, Attr, SchedAttr};
use crate::ops::process::{cap_mask, Identity, Rlimit};
use crate::spec::{self, Process, Spec};

pub use sysops::container::{env_get, env_set, DEFAULT_PATH};

/// Finds the program to run in the (already pivoted) root, like execvp would, so that a
/// missing or non-executable binary fails `create` with a clear message instead of failing
/// later, unseen, after `start`.
pub fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let check_file = |p: &Path| -> std::result::Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            _ => e.to_string(),
        })?;
        if meta.is_dir() {
            return Err("is a directory".into());
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err("permission denied (not executable)".into());
        }
        Ok(())
    };
    let fail = |program: &str, reason: String| Error::Exec {
        program: program.to_string(),
        not_found: reason.starts_with("no such") || reason.contains("not found"),
        reason,
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check_file(&p).map(|_| p).map_err(|why| fail(arg0, why));
    }
    let path = env_get(env, "PATH").unwrap_or(DEFAULT_PATH);
    let mut first_err = None;
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(arg0);
        match check_file(&p) {
            Ok(()) => return Ok(p),
            Err(why) if p.exists() && first_err.is_none() => {
                first_err = Some(fail(&p.display().to_string(), why))
            }
            Err(_) => {}
        }
    }
    Err(first_err.unwrap_or_else(|| {
        fail(
            &format!("{arg0:?}"),
            "executable file not found in $PATH".into(),
        )
    }))
}

/// The process identity the spec asks for.
pub fn identity(p: &Process) -> Result<Identity> {
    let u = p.user();
    let mut id = Identity {
        uid: u.uid(),
        gid: u.gid(),
        groups: u.additional_gids().clone().unwrap_or_default(),
        umask: u.umask(),
        no_new_privs: p.no_new_privileges().unwrap_or(false),
        ..Default::default()
    };
    if let Some(c) = p.capabilities() {
        let mask = |set: &Option<oci_spec::runtime::Capabilities>| -> Result<u64> {
            let names: Vec<String> = set.iter().flatten().map(|c| format!("CAP_{c}")).collect();
            cap_mask(names.iter().map(String::as_str))
        };
        id.bounding = mask(c.bounding())?;
        id.effective = mask(c.effective())?;
        id.permitted = mask(c.permitted())?;
        id.inheritable = mask(c.inheritable())?;
        id.ambient = mask(c.ambient())?;
        // An inheritable capability outside the bounding set could come back at the next
        // execve (through ambient or file capabilities): the kernel refuses it with EPERM
        // unless this process already had it inheritable, so refuse it always, the same way.
        // An ambient one must be inheritable too; if it is not, it cannot be raised (runc
        // warns and goes on, so does minc).
        let outside = id.inheritable & !id.bounding;
        if outside != 0 {
            let set = if id.ambient & outside != 0 {
                "ambient and inheritable"
            } else {
                "inheritable"
            };
            return Err(Error::sys(
                format!("{} {set} but not in the bounding set", caps_are(outside)),
                std::io::Error::from_raw_os_error(libc::EPERM),
            ));
        }
        if id.ambient & !id.bounding != 0 {
            tracing::warn!(
                "ambient {} not in the bounding set: not raised",
                caps_are(id.ambient & !id.bounding)
            );
        }
    }
    Ok(id)
}

/// The scheduling and execution attributes the spec asks for (none of them is ignored: each
/// is applied, or refused with an error naming it).
pub fn attributes(spec: &Spec) -> Result<Vec<Attr>> {
    use oci_spec::runtime::{
        IOPriorityClass, LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy,
        MemoryPolicyFlagType, MemoryPolicyModeType,
    };
    let bad = |what: &str| Error::Init(what.to_string());
    let mut out = Vec::new();
    let linux = spec.linux().as_ref();
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        if p.flags().as_ref().is_some_and(|f| !f.is_empty()) {
            return Err(bad(
                "linux.personality.flags are not supported (as in runc)",
            ));
        }
        let (persona, name) = match p.domain() {
            LinuxPersonalityDomain::PerLinux => (0, "LINUX"),
            LinuxPersonalityDomain::PerLinux32 => (0x0008, "LINUX32"),
        };
        out.push(Attr::Personality {
            persona,
            name: name.into(),
        });
    }
    let process = spec::process(spec);
    if let Some(io) = process.io_priority() {
        let class = match io.class() {
            IOPriorityClass::IoprioClassRt => 1,
            IOPriorityClass::IoprioClassBe => 2,
            IOPriorityClass::IoprioClassIdle => 3,
        };
        let level = u32::try_from(io.priority())
            .ok()
            .filter(|l| *l <= 7)
            .ok_or_else(|| bad("process.ioPriority.priority must be 0 to 7"))?;
        out.push(Attr::IoPriority { class, level });
    }
    if let Some(s) = process.scheduler() {
        let policy = match s.policy() {
            LinuxSchedulerPolicy::SchedOther => 0,
            LinuxSchedulerPolicy::SchedFifo => 1,
            LinuxSchedulerPolicy::SchedRr => 2,
            LinuxSchedulerPolicy::SchedBatch => 3,
            LinuxSchedulerPolicy::SchedIso => {
                return Err(bad(
                    "process.scheduler.policy SCHED_ISO is not implemented by Linux",
                ))
            }
            LinuxSchedulerPolicy::SchedIdle => 5,
            LinuxSchedulerPolicy::SchedDeadline => 6,
        };
        let flags = s.flags().iter().flatten().fold(0u64, |f, flag| {
            f | match flag {
                LinuxSchedulerFlag::SchedResetOnFork => 0x01,
                LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
                LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
                LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
                LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
                LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
                LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
            }
        });
        out.push(Attr::Scheduler(SchedAttr {
            policy,
            flags,
            nice: s.nice().unwrap_or(0),
            priority: s.priority().unwrap_or(0).max(0) as u32,
            runtime: s.runtime().unwrap_or(0),
            deadline: s.deadline().unwrap_or(0),
            period: s.period().unwrap_or(0),
            ..Default::default()
        }));
    }
    if let Some(m) = linux.and_then(|l| l.memory_policy().as_ref()) {
        let mode = match m.mode() {
            MemoryPolicyModeType::MpolDefault => 0,
            MemoryPolicyModeType::MpolPreferred => 1,
            MemoryPolicyModeType::MpolBind => 2,
            MemoryPolicyModeType::MpolInterleave => 3,
            MemoryPolicyModeType::MpolLocal => 4,
            MemoryPolicyModeType::MpolPreferredMany => 5,
            MemoryPolicyModeType::MpolWeightedInterleave => 6,
        };
        let flags = m.flags().iter().flatten().fold(0i32, |f, flag| {
            f | match flag {
                MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
                MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
                MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            }
        });
        let nodes = m.nodes().clone().unwrap_or_default();
        out.push(Attr::MemPolicy {
            mode,
            flags,
            mask: parse_list(&nodes, "linux.memoryPolicy.nodes")?,
            nodes,
            name: m.mode().to_string(),
        });
    }
    Ok(out)
}

/// "capability CAP_X is" / "capabilities CAP_X, CAP_Y are", for messages.
fn caps_are(mask: u64) -> String {
    let list = crate::ops::process::cap_list(mask);
    if mask.count_ones() == 1 {
        format!("capability {list} is")
    } else {
        format!("capabilities {list} are")
    }
}

/// The spec's rlimits.
pub fn rlimits(p: &Process) -> Result<Vec<Rlimit>> {
    p.rlimits()
        .iter()
        .flatten()
        .map(|r| Rlimit::new(&r.typ().to_string(), r.soft(), r.hard()))
        .collect()
}

/// The environment the process gets: the spec's, plus HOME when it is missing (from the
/// container's /etc/passwd, else `/`), as runc does.
pub fn environment(p: &Process) -> Vec<String> {
    let mut env = spec::env(p).to_vec();
    if env_get(&env, "HOME").is_none() {
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| {
                passwd.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 5 && f[2].parse() == Ok(p.user().uid())).then(|| f[5].to_string())
                })
            })
            .unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    env
}

/// Undoes what the Rust runtime and the parent set up that must not leak into the container:
/// ignored signals (std ignores SIGPIPE; `nohup` or a shell may have ignored SIGHUP, SIGINT,
/// SIGQUIT; an ignored disposition survives execve) and the blocked signal mask. The
/// program starts with every signal at its default, as in a fresh login.
pub fn reset_signals() {
    // SAFETY: resetting dispositions and the mask of this thread.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Marks every inherited descriptor above stderr (plus `preserve` more) close-on-exec, so
/// nothing of minc's leaks into the container.
pub fn close_fds_on_exec(preserve: u32) {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 + preserve,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_lookup() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_executable("sh", &env).is_ok());
        let e = find_executable("no-such-binary-xyz", &env).unwrap_err();
        assert!(e.to_string().contains("executable file not found"), "{e}");
        let e = find_executable("/etc/passwd", &env).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
    }
}
