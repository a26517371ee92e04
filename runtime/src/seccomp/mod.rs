//! seccomp: which system calls the container's processes may make.
//!
//! seccomp-bpf lets a process attach a small classic-BPF program to itself that the kernel
//! runs on every system call it (and every child, across `execve`) makes afterwards. The
//! program sees the call's number, the architecture and the six raw arguments (never the
//! memory they point to) and returns an action: allow, fail with an errno, kill, trap,
//! trace, log, or hand the call to a supervisor (user notification). Filters only ever
//! stack up; none can be removed. Read seccomp(2), prctl(2) (`PR_SET_NO_NEW_PRIVS`),
//! seccomp_unotify(2) and the kernel's Documentation/userspace-api/seccomp_filter.rst.
//!
//! minc applies the OCI `linux.seccomp` section as runc does:
//! - `defaultAction` (+ `defaultErrnoRet`, EPERM when absent), `syscalls` (names, action,
//!   `errnoRet`, `args` with every `SCMP_CMP_*` operator), `architectures` (the native one is
//!   always included), `flags` (`SECCOMP_FILTER_FLAG_LOG`, `_SPEC_ALLOW`,
//!   `_WAIT_KILLABLE_RECV`; `_TSYNC` is accepted and has nothing to do: the container's
//!   process is single-threaded when the filter is loaded).
//! - Syscall names this kernel family does not know are skipped, as libseccomp does, so a
//!   profile written for a newer kernel still loads; unknown actions, operators,
//!   architectures and flags are errors that name them.
//! - Rules whose action is the default action are dropped, a rule whose conditions repeat
//!   an argument becomes one rule per condition, and calls newer than every call the
//!   profile names get ENOSYS rather than the default errno (runc's "-ENOSYS stub", so
//!   that libc falls back to an older call): all as runc does.
//! - `SCMP_ACT_NOTIFY` hands calls to a seccomp agent at `listenerPath`, as runc does
//!   ([`notify`]); like runc, not as the default action, and not for `sendmsg`, which hands
//!   the listener over.
//!
//! The BPF program is compiled by minc itself ([`bpf`]), from a syscall table generated
//! from the kernel's headers ([`syscalls`]); see the README's design notes for why not
//! libseccomp. Compiling happens in `create` (or `exec`) before the clone, so the container
//! init only makes the one `seccomp(2)` call, as late as it can: see [`Filter::load`].

mod bpf;
pub mod docker;
pub mod notify;
mod syscalls;

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompFilterFlag as Flag,
    LinuxSeccompOperator as Operator,
};

use bpf::{AbiRules, Call, Cond, Op, Section};

/// What can go wrong with a profile or its loading.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile cannot be turned into a filter (names the field and the value).
    #[error("{0}")]
    Invalid(String),
    #[error("load seccomp filter: {0}")]
    Load(String),
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Invalid(msg.into())
}

/// A compiled filter, ready for [`Filter::load`].
#[derive(Debug, Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    /// Rules kept, for `--explain`.
    rules: usize,
    default: Action,
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The ABIs whose calls this machine's kernel can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Abi {
    X86_64,
    I386,
    X32,
}

impl Abi {
    fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::I386 => AUDIT_ARCH_I386,
        }
    }

    /// The `nr` the kernel reports for a call of this ABI.
    #[cfg(test)]
    fn nr(self, name: &str) -> Option<u32> {
        self.nr_in(lookup(name)?)
    }

    /// The `nr` of this ABI in a row of the syscall table.
    fn nr_in(self, row: (i16, i16, i16)) -> Option<u32> {
        let n = match self {
            Abi::X86_64 => row.0,
            Abi::I386 => row.1,
            Abi::X32 => row.2,
        };
        let n = u32::try_from(n).ok()?;
        Some(if self == Abi::X32 {
            n | X32_SYSCALL_BIT
        } else {
            n
        })
    }

    /// The `nr` range this ABI owns within its audit architecture.
    fn range(self) -> (u32, u64) {
        match self {
            Abi::X86_64 | Abi::I386 => (0, X32_SYSCALL_BIT as u64),
            Abi::X32 => (X32_SYSCALL_BIT, 1 << 32),
        }
    }
}

/// A call's numbers by name: (x86_64, i386, x32 without its bit); -1 where absent.
fn lookup(name: &str) -> Option<(i16, i16, i16)> {
    let t = syscalls::TABLE;
    let i = t.binary_search_by(|row| row.0.cmp(name)).ok()?;
    Some((t[i].1, t[i].2, t[i].3))
}

/// The ABIs a profile's `architectures` entry stands for on this machine; `None` for an
/// architecture this machine's kernel never reports (harmless to list, as with libseccomp).
fn abi_of(arch: Arch) -> Option<Abi> {
    match arch {
        Arch::ScmpArchNative | Arch::ScmpArchX86_64 => Some(Abi::X86_64),
        Arch::ScmpArchX86 => Some(Abi::I386),
        Arch::ScmpArchX32 => Some(Abi::X32),
        _ => None,
    }
}

/// The value a filter returns for an action (runc: ERRNO and TRACE default to EPERM).
fn action_value(action: Action, errno: Option<u32>, what: &str) -> Result<u32, Error> {
    let data = |e: Option<u32>| -> Result<u32, Error> {
        let e = e.unwrap_or(libc::EPERM as u32);
        if e > 0xffff {
            return Err(invalid(format!(
                "{what}: errnoRet {e} is out of range (0-65535)"
            )));
        }
        Ok(e)
    };
    Ok(match action {
        Action::ScmpActKill | Action::ScmpActKillThread => libc::SECCOMP_RET_KILL_THREAD,
        Action::ScmpActKillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        Action::ScmpActTrap => libc::SECCOMP_RET_TRAP,
        Action::ScmpActErrno => libc::SECCOMP_RET_ERRNO | data(errno)?,
        Action::ScmpActTrace => libc::SECCOMP_RET_TRACE | data(errno)?,
        Action::ScmpActLog => libc::SECCOMP_RET_LOG,
        Action::ScmpActAllow => libc::SECCOMP_RET_ALLOW,
        Action::ScmpActNotify => libc::SECCOMP_RET_USER_NOTIF,
    })
}

fn op_of(op: Operator) -> Op {
    match op {
        Operator::ScmpCmpNe => Op::Ne,
        Operator::ScmpCmpLt => Op::Lt,
        Operator::ScmpCmpLe => Op::Le,
        Operator::ScmpCmpEq => Op::Eq,
        Operator::ScmpCmpGe => Op::Ge,
        Operator::ScmpCmpGt => Op::Gt,
        Operator::ScmpCmpMaskedEq => Op::MaskedEq,
    }
}

/// Parses the `linux.seccomp` object of a config.json. Unknown actions, operators,
/// architectures and flags are named in the error (serde alone would list every variant).
pub fn parse(value: &serde_json::Value) -> Result<LinuxSeccomp, Error> {
    fn check<T: std::str::FromStr>(
        v: Option<&serde_json::Value>,
        kind: &str,
        at: &str,
    ) -> Result<(), Error> {
        match v {
            Some(serde_json::Value::String(s)) if s.parse::<T>().is_err() => {
                Err(invalid(format!("{at}: unknown {kind} {s:?}")))
            }
            _ => Ok(()),
        }
    }
    check::<Action>(value.get("defaultAction"), "action", "defaultAction")?;
    let list = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    for (i, a) in list("architectures").iter().enumerate() {
        check::<Arch>(Some(a), "architecture", &format!("architectures[{i}]"))?;
    }
    for (i, f) in list("flags").iter().enumerate() {
        check::<Flag>(Some(f), "flag", &format!("flags[{i}]"))?;
    }
    for (i, s) in list("syscalls").iter().enumerate() {
        check::<Action>(s.get("action"), "action", &format!("syscalls[{i}]"))?;
        let args = s
            .get("args")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        for (j, a) in args.iter().enumerate() {
            check::<Operator>(a.get("op"), "operator", &format!("syscalls[{i}].args[{j}]"))?;
        }
    }
    serde::Deserialize::deserialize(value).map_err(|e: serde_json::Error| invalid(e.to_string()))
}

/// Compiles a profile into a filter for this machine.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, Error> {
    if !cfg!(target_arch = "x86_64") {
        return Err(invalid(
            "minc's seccomp compiler knows the x86 family's system calls only",
        ));
    }
    let default = action_value(s.default_action(), s.default_errno_ret(), "defaultAction")?;
    if default == libc::SECCOMP_RET_USER_NOTIF {
        return Err(invalid(
            "defaultAction: SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }

    let mut abis = vec![Abi::X86_64]; // libseccomp always includes the native architecture
    for arch in s.architectures().iter().flatten() {
        match abi_of(*arch) {
            Some(abi) if !abis.contains(&abi) => abis.push(abi),
            Some(_) => {}
            None => tracing::debug!("seccomp: {arch} is never seen on this machine: skipped"),
        }
    }

    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            // Synchronizing threads means nothing for a single-threaded process (runc
            // ignores it too).
            Flag::SeccompFilterFlagTsync => 0,
        };
    }

    // Per ABI, rules by syscall number (without the x32 bit).
    let mut calls: BTreeMap<Abi, Vec<Call>> = BTreeMap::new();
    let mut highest: BTreeMap<Abi, u32> = BTreeMap::new();
    let mut rules = 0;
    for (i, sc) in s.syscalls().iter().flatten().enumerate() {
        let what = format!("syscalls[{i}]");
        let action = action_value(sc.action(), sc.errno_ret(), &what)?;
        if action == libc::SECCOMP_RET_USER_NOTIF {
            if s.listener_path().is_none() {
                return Err(invalid(format!(
                    "{what}: SCMP_ACT_NOTIFY needs a listenerPath"
                )));
            }
            if sc.names().iter().any(|n| n == "sendmsg") {
                return Err(invalid(format!(
                    "{what}: SCMP_ACT_NOTIFY cannot be used for sendmsg (it hands the listener to the runtime)"
                )));
            }
            flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        }
        let mut conds = Vec::new();
        for (j, a) in sc.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(invalid(format!(
                    "{what}.args[{j}]: index {} is not an argument (0-5)",
                    a.index()
                )));
            }
            conds.push(Cond {
                arg: a.index() as u8,
                op: op_of(a.op()),
                value: a.value(),
                value_two: a.value_two().unwrap_or(0),
            });
        }
        // runc: conditions on the same argument twice cannot all hold in libseccomp's
        // model, so each becomes a rule of its own (any of them matches).
        let repeats = (0..6).any(|arg| conds.iter().filter(|c| c.arg == arg).count() > 1);
        let groups: Vec<Vec<Cond>> = if repeats {
            conds.into_iter().map(|c| vec![c]).collect()
        } else {
            vec![conds]
        };
        for name in sc.names() {
            let Some(row) = lookup(name) else {
                tracing::debug!("seccomp: unknown syscall {name:?} skipped");
                continue;
            };
            for &abi in &abis {
                let Some(nr) = abi.nr_in(row) else { continue };
                let top = highest.entry(abi).or_insert(nr);
                *top = (*top).max(nr);
                if action == default {
                    continue; // runc drops rules that only restate the default
                }
                let table = calls.entry(abi).or_default();
                let index = (nr & !X32_SYSCALL_BIT) as usize;
                if table.len() <= index {
                    table.resize(index + 1, Call::default());
                }
                let call = &mut table[index];
                for g in &groups {
                    if g.is_empty() {
                        call.unconditional.get_or_insert(action);
                    } else {
                        call.conditional.push((g.clone(), action));
                    }
                }
                rules += 1;
            }
        }
    }

    // runc's -ENOSYS stub: not for permissive defaults, nor when the default is ENOSYS.
    let stub = !matches!(
        s.default_action(),
        Action::ScmpActAllow | Action::ScmpActLog | Action::ScmpActTrace
    ) && default != libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut sections: Vec<Section> = Vec::new();
    abis.sort();
    for abi in abis {
        let (base, end) = abi.range();
        let rules = AbiRules {
            base,
            end,
            wide: abi != Abi::I386,
            calls: calls.remove(&abi).unwrap_or_default(),
            default,
            enosys_above: highest.get(&abi).copied().filter(|_| stub),
        };
        match sections
            .iter_mut()
            .find(|s| s.audit_arch == abi.audit_arch())
        {
            Some(sec) => sec.abis.push(rules),
            None => sections.push(Section {
                audit_arch: abi.audit_arch(),
                abis: vec![rules],
            }),
        }
    }
    // Like libseccomp, a call from an architecture the profile does not list kills.
    let program = bpf::program(&sections, libc::SECCOMP_RET_KILL_THREAD);
    if program.len() > bpf::MAX_INSNS {
        return Err(invalid(format!(
            "the profile needs {} BPF instructions, more than the kernel's limit of {}",
            program.len(),
            bpf::MAX_INSNS
        )));
    }
    Ok(Filter {
        program,
        flags,
        rules,
        default: s.default_action(),
    })
}

/// The filter for a spec's `linux.seccomp`, compiled (errors name the config file).
pub fn for_spec(
    spec: &oci_spec::runtime::Spec,
    config: &std::path::Path,
) -> crate::Result<Option<Filter>> {
    let Some(section) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let bad = |e: Error| crate::Error::Config {
        path: config.to_path_buf(),
        reason: format!("linux.seccomp: {e}"),
    };
    let started = std::time::Instant::now();
    let filter = compile(section).map_err(bad)?;
    tracing::debug!(
        "seccomp: {} rules compiled into {} BPF instructions in {:?}",
        filter.rules,
        filter.len(),
        started.elapsed()
    );
    Ok(Some(filter))
}

/// What `minc features` says of seccomp: what this compiler knows.
pub fn features() -> serde_json::Value {
    serde_json::json!({
        "enabled": true,
        "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"],
        "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
        "archs": ["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
        "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
    })
}

impl Filter {
    /// Number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// The `--explain` line for [`Filter::load`] (no shell command loads a filter). Separate
    /// so the init can print it before the container's stdio replaces its own.
    pub fn explain(&self) {
        sysops::explain::comment(&format!(
            "seccomp(SECCOMP_SET_MODE_FILTER, {:#x}, <{} BPF instructions: {} rules, default {}>)",
            self.flags,
            self.program.len(),
            self.rules,
            self.default
        ));
    }

    /// Attaches the filter to the calling thread (and so to everything it execs and forks).
    ///
    /// Without no_new_privs this needs CAP_SYS_ADMIN, so the container init loads it before
    /// it drops its capabilities when `noNewPrivileges` is false, and after setting
    /// no_new_privs, just before `execve`, when it is true: runc's order
    /// (standard_init_linux.go, setns_init_linux.go). The program is already compiled; this
    /// is one system call, no allocation.
    pub fn load(&self) -> Result<Option<OwnedFd>, Error> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points to `len` valid instructions that outlive the call; the
        // kernel copies them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::EACCES) => {
                    " (without no_new_privs, loading a filter needs CAP_SYS_ADMIN)"
                }
                Some(libc::EINVAL) if self.flags != 0 => {
                    " (a filter flag this kernel does not know?)"
                }
                _ => "",
            };
            return Err(Error::Load(format!("{e}{hint}")));
        }
        if self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
            // SAFETY: with NEW_LISTENER the kernel returns a fresh fd.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
