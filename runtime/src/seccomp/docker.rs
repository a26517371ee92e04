//! The Docker-like face's profile: Docker's default seccomp profile (moby's
//! `profiles/seccomp/default.json`), and profiles in Docker's file format for
//! `--security-opt seccomp=FILE`.
//!
//! Docker's format is the OCI one plus three things that are resolved before the container
//! is created, here as in moby's `setupSeccomp`:
//! - `archMap`: per native architecture, the architectures to list (x86_64 brings x86 and
//!   x32, so 32-bit programs keep working);
//! - per rule, `includes` / `excludes` on the container's capabilities (its bounding set),
//!   the architecture and the kernel version: `unshare`, `mount`, `bpf`, ... are only allowed
//!   with CAP_SYS_ADMIN, and without it `clone` may not ask for new namespaces;
//! - `name` as well as `names`.
//!
//! The default profile is built here in Rust from those rules instead of embedding the
//! 800-line JSON: the allowlist is data, the conditions are code that reads like moby's.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Action, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator as Operator, LinuxSyscall,
};
use serde::{Deserialize, Serialize};

use super::{invalid, Error};

/// A profile in Docker's format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub default_action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Arch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    #[serde(default)]
    pub syscalls: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    pub architecture: Arch,
    #[serde(default)]
    pub sub_architectures: Vec<Arch>,
}

/// One rule of a Docker profile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    pub action: Option<Action>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<LinuxSeccompArg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub includes: Condition,
    #[serde(default)]
    pub excludes: Condition,
}

/// When a rule applies (`includes`) or does not (`excludes`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Capabilities of the container's bounding set (`CAP_SYS_ADMIN`).
    #[serde(default)]
    pub caps: Vec<String>,
    /// Architectures in Go's naming (`amd64`, `x86`, `x32`, `arm64`, ...).
    #[serde(default)]
    pub arches: Vec<String>,
    /// `major.minor`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// This machine's architecture in the Go naming Docker profiles use.
const NATIVE: &str = "amd64";
const NATIVE_ARCH: Arch = Arch::ScmpArchX86_64;

/// Docker's default allowlist: calls every container may make.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
    "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
    "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc",
    "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount", "listxattr",
    "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
    "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall",
    "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
    "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
    "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev",
];

/// Calls allowed only with a capability in the bounding set (moby's `includes.caps`).
#[rustfmt::skip]
const WITH_CAP: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    ("CAP_SYS_ADMIN", &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount",
        "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl", "quotactl_fd",
        "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2", "unshare",
    ]),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    ("CAP_SYS_MODULE", &["delete_module", "init_module", "finit_module"]),
    ("CAP_SYS_PACCT", &["acct"]),
    ("CAP_SYS_PTRACE", &[
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace",
    ]),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    ("CAP_SYS_TIME", &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYS_NICE", &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// Calls allowed on some architectures only (moby's `includes.arches`).
#[rustfmt::skip]
const ON_ARCH: &[(&[&str], &[&str])] = &[
    (&["ppc64le"], &["sync_file_range2", "swapcontext"]),
    (&["arm", "arm64"], &[
        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
        "set_tls",
    ]),
    (&["amd64", "x32"], &["arch_prctl"]),
    (&["amd64", "x32", "x86"], &["modify_ldt"]),
    (&["s390", "s390x"], &["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"]),
    (&["riscv64"], &["riscv_flush_icache"]),
];

/// The namespace flags of clone(2) that a container without CAP_SYS_ADMIN may not use:
/// CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
/// CLONE_NEWNET | CLONE_NEWCGROUP.
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

fn arg(index: usize, op: Operator, value: u64, value_two: Option<u64>) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    match value_two {
        Some(v) => b.value_two(v),
        None => b,
    }
    .build()
    .expect("every field is set")
}

fn rule(names: &[&str], action: Action) -> Rule {
    Rule {
        names: names.iter().map(|n| n.to_string()).collect(),
        action: Some(action),
        ..Default::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Docker's default profile, unresolved (as `docker` would print it).
pub fn default_profile() -> Profile {
    let allow = |names: &[&str]| rule(names, Action::ScmpActAllow);
    let mut rules = vec![allow(ALLOWED)];
    // ptrace and process_vm_* were unsafe before 4.8 (seccomp could be bypassed with it).
    let mut ptrace = allow(&["process_vm_readv", "process_vm_writev", "ptrace"]);
    ptrace.includes.min_kernel = Some("4.8".into());
    rules.push(ptrace);
    // socket(2) for every address family but AF_ALG (38) and AF_VSOCK (40).
    for (op, family) in [
        (Operator::ScmpCmpLt, libc::AF_ALG),
        (Operator::ScmpCmpEq, libc::AF_ALG + 1),
        (Operator::ScmpCmpGt, libc::AF_VSOCK),
    ] {
        let mut r = allow(&["socket"]);
        r.args = vec![arg(0, op, family as u64, None)];
        rules.push(r);
    }
    // personality(2): only the harmless personas (PER_LINUX, PER_LINUX32, UNAME26 variants,
    // and the query 0xffffffff).
    for persona in [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
        let mut r = allow(&["personality"]);
        r.args = vec![arg(0, Operator::ScmpCmpEq, persona, None)];
        rules.push(r);
    }
    for (arches, names) in ON_ARCH {
        let mut r = allow(names);
        r.includes.arches = strings(arches);
        rules.push(r);
    }
    for (cap, names) in WITH_CAP.iter().take(2) {
        let mut r = allow(names);
        r.includes.caps = vec![cap.to_string()];
        rules.push(r);
    }
    // Without CAP_SYS_ADMIN: clone without namespace flags only (s390 swaps the first two
    // arguments), and clone3 fails with ENOSYS, whose flags hide in memory seccomp cannot
    // read, so that libc falls back to clone.
    let mut clone = allow(&["clone"]);
    clone.args = vec![masked_zero(0)];
    clone.excludes.caps = strings(&["CAP_SYS_ADMIN"]);
    clone.excludes.arches = strings(&["s390", "s390x"]);
    rules.push(clone);
    let mut clone_s390 = allow(&["clone"]);
    clone_s390.args = vec![masked_zero(1)];
    clone_s390.comment = Some("s390 parameter ordering for clone is different".into());
    clone_s390.includes.arches = strings(&["s390", "s390x"]);
    clone_s390.excludes.caps = strings(&["CAP_SYS_ADMIN"]);
    rules.push(clone_s390);
    let mut clone3 = rule(&["clone3"], Action::ScmpActErrno);
    clone3.errno_ret = Some(libc::ENOSYS as u32);
    clone3.excludes.caps = strings(&["CAP_SYS_ADMIN"]);
    rules.push(clone3);
    for (cap, names) in WITH_CAP.iter().skip(2) {
        let mut r = allow(names);
        r.includes.caps = vec![cap.to_string()];
        rules.push(r);
    }
    Profile {
        default_action: Some(Action::ScmpActErrno),
        default_errno_ret: Some(libc::EPERM as u32),
        arch_map: vec![ArchMap {
            architecture: Arch::ScmpArchX86_64,
            sub_architectures: vec![Arch::ScmpArchX86, Arch::ScmpArchX32],
        }],
        syscalls: rules,
        ..Default::default()
    }
}

/// `(arg & CLONE_NAMESPACES) == 0`
fn masked_zero(index: usize) -> LinuxSeccompArg {
    arg(index, Operator::ScmpCmpMaskedEq, CLONE_NAMESPACES, Some(0))
}

/// Parses a profile file's contents (Docker's format, which includes the OCI one).
pub fn parse(json: &[u8]) -> Result<Profile, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| invalid(format!("not JSON: {e}")))?;
    // The OCI checks name unknown actions, operators, architectures and flags.
    let mut oci = value.clone();
    if let Some(o) = oci.as_object_mut() {
        o.entry("defaultAction").or_insert("SCMP_ACT_ALLOW".into());
        o.remove("archMap");
        if let Some(calls) = o.get_mut("syscalls").and_then(|s| s.as_array_mut()) {
            for c in calls {
                if let Some(c) = c.as_object_mut() {
                    c.entry("names").or_insert(serde_json::json!([]));
                    c.entry("action").or_insert("SCMP_ACT_ALLOW".into());
                }
            }
        }
    }
    super::parse(&oci)?;
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

impl Profile {
    /// The OCI section for a container whose bounding set is `bounding`, on this machine
    /// (moby's `setupSeccomp`). `None`: the profile is empty (no default action, no rules),
    /// which Docker takes as "no seccomp".
    pub fn resolve(&self, bounding: &[String]) -> Result<Option<LinuxSeccomp>, Error> {
        let Some(default_action) = self.default_action else {
            if self.syscalls.is_empty() {
                return Ok(None);
            }
            return Err(invalid("no defaultAction"));
        };
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(invalid(
                "both architectures and archMap are given: use one of them",
            ));
        }
        let mut architectures = self.architectures.clone();
        if let Some(m) = self.arch_map.iter().find(|m| m.architecture == NATIVE_ARCH) {
            architectures.push(m.architecture);
            architectures.extend(&m.sub_architectures);
        }
        let kernel = kernel_version();
        let mut syscalls = Vec::new();
        for (i, r) in self.syscalls.iter().enumerate() {
            let names = match (&r.name, r.names.is_empty()) {
                (Some(_), false) => {
                    return Err(invalid(format!(
                        "syscalls[{i}]: both name and names are given: use one of them"
                    )))
                }
                (Some(n), true) => vec![n.clone()],
                (None, _) => r.names.clone(),
            };
            let action = r
                .action
                .ok_or_else(|| invalid(format!("syscalls[{i}]: no action")))?;
            let has = |cap: &String| bounding.contains(cap);
            let min_kernel = |c: &Condition| -> Result<Option<bool>, Error> {
                c.min_kernel
                    .as_deref()
                    .map(|v| {
                        let want = parse_version(v).ok_or_else(|| {
                            invalid(format!("syscalls[{i}]: minKernel {v:?} is not major.minor"))
                        })?;
                        Ok(kernel >= want)
                    })
                    .transpose()
            };
            let ex = &r.excludes;
            if ex.arches.iter().any(|a| a == NATIVE)
                || ex.caps.iter().any(has)
                || min_kernel(ex)? == Some(true)
            {
                continue;
            }
            let inc = &r.includes;
            if (!inc.arches.is_empty() && !inc.arches.iter().any(|a| a == NATIVE))
                || !inc.caps.iter().all(has)
                || min_kernel(inc)? == Some(false)
            {
                continue;
            }
            let mut s = LinuxSyscall::default();
            s.set_names(names);
            s.set_action(action);
            s.set_errno_ret(r.errno_ret);
            s.set_args((!r.args.is_empty()).then(|| r.args.clone()));
            syscalls.push(s);
        }
        let mut out = LinuxSeccomp::default();
        out.set_default_action(default_action);
        out.set_default_errno_ret(self.default_errno_ret);
        out.set_architectures((!architectures.is_empty()).then_some(architectures));
        out.set_flags((!self.flags.is_empty()).then(|| self.flags.clone()));
        out.set_listener_path(self.listener_path.clone());
        out.set_listener_metadata(self.listener_metadata.clone());
        out.set_syscalls(Some(syscalls));
        Ok(Some(out))
    }
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()
        .map(|m| {
            let digits: String = m.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .unwrap_or(Some(0))?;
    Some((major, minor))
}

/// The running kernel's `major.minor`, from uname(2).
fn kernel_version() -> (u32, u32) {
    // SAFETY: uname fills the zeroed struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return (0, 0);
    }
    // SAFETY: the kernel NUL-terminates release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    parse_version(&release.to_string_lossy()).unwrap_or((0, 0))
}
