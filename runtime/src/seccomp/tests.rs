//! Compiler tests. Most run the generated program in a small classic-BPF interpreter (no
//! root, no kernel filter); `kernel_*` tests load filters into a forked child, which needs
//! no privilege once no_new_privs is set, so the kernel's own verifier checks them too.

use super::*;
use serde_json::json;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const KILL: u32 = libc::SECCOMP_RET_KILL_THREAD;

fn errno(e: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | e as u32
}

/// Runs a program on one call, as the kernel would (the instructions minc emits only).
fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = Vec::with_capacity(64);
    data.extend_from_slice(&nr.to_ne_bytes());
    data.extend_from_slice(&arch.to_ne_bytes());
    data.extend_from_slice(&0u64.to_ne_bytes());
    for a in args {
        data.extend_from_slice(&a.to_ne_bytes());
    }
    let (mut a, mut pc) = (0u32, 0usize);
    loop {
        let i = prog[pc];
        let k = i.k;
        let cond = |taken: bool| 1 + if taken { i.jt } else { i.jf } as usize;
        pc += match i.code {
            0x20 => {
                a = u32::from_ne_bytes(data[k as usize..k as usize + 4].try_into().unwrap());
                1
            }
            0x54 => {
                a &= k;
                1
            }
            0x05 => 1 + k as usize,
            0x15 => cond(a == k),
            0x25 => cond(a > k),
            0x35 => cond(a >= k),
            0x06 => return k,
            c => panic!("unexpected instruction {c:#x} at {pc}"),
        };
    }
}

fn filter(profile: serde_json::Value) -> Filter {
    compile(&parse(&profile).unwrap()).unwrap()
}

fn x86_64(f: &Filter, name: &str, args: [u64; 6]) -> u32 {
    let nr = Abi::X86_64.nr(name).unwrap();
    eval(&f.program, AUDIT_ARCH_X86_64, nr, args)
}

#[test]
fn syscall_table_is_sorted_and_right() {
    let t = syscalls::TABLE;
    assert!(t.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(lookup("getppid"), Some((110, 64, 110)));
    assert_eq!(lookup("socketcall"), Some((-1, 102, -1)));
    assert_eq!(Abi::X32.nr("rt_sigaction"), Some(0x4000_0000 | 512));
    assert_eq!(lookup("no_such_call"), None);
}

#[test]
fn default_and_rule_errnos() {
    let f = filter(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["uname"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_TRACE"},
            {"names": ["gettid"], "action": "SCMP_ACT_KILL_PROCESS"},
            {"names": ["getuid"], "action": "SCMP_ACT_LOG"},
            {"names": ["getgid"], "action": "SCMP_ACT_TRAP"},
            {"names": ["getegid"], "action": "SCMP_ACT_KILL"}
        ]
    }));
    assert_eq!(x86_64(&f, "getppid", [0; 6]), errno(38));
    assert_eq!(x86_64(&f, "uname", [0; 6]), errno(libc::EPERM));
    assert_eq!(x86_64(&f, "getpid", [0; 6]), libc::SECCOMP_RET_TRACE | 1);
    assert_eq!(x86_64(&f, "gettid", [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
    assert_eq!(x86_64(&f, "getuid", [0; 6]), libc::SECCOMP_RET_LOG);
    assert_eq!(x86_64(&f, "getgid", [0; 6]), libc::SECCOMP_RET_TRAP);
    assert_eq!(x86_64(&f, "getegid", [0; 6]), KILL);
    assert_eq!(x86_64(&f, "read", [0; 6]), ALLOW);

    let f = filter(
        json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "syscalls": [{"names": ["read", "uname"], "action": "SCMP_ACT_ALLOW"}]}),
    );
    assert_eq!(x86_64(&f, "read", [0; 6]), ALLOW);
    assert_eq!(x86_64(&f, "write", [0; 6]), errno(1));
    let f = filter(json!({"defaultAction": "SCMP_ACT_ERRNO"}));
    // No syscall named: no ENOSYS stub, everything gets the default EPERM.
    assert_eq!(x86_64(&f, "write", [0; 6]), errno(libc::EPERM));
}

/// Every operator against a direct evaluation, on values that differ in the high word, the
/// low word, both, and around the edges.
#[test]
fn operators_compare_64_bit_values() {
    let values = [
        0u64,
        1,
        5,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0005,
        0x2_0000_0000,
        u64::MAX,
        0x8000_0000_0000_0000,
    ];
    type Holds = fn(u64, u64, u64) -> bool;
    let ops: [(&str, Holds); 7] = [
        ("SCMP_CMP_EQ", |a, v, _| a == v),
        ("SCMP_CMP_NE", |a, v, _| a != v),
        ("SCMP_CMP_LT", |a, v, _| a < v),
        ("SCMP_CMP_LE", |a, v, _| a <= v),
        ("SCMP_CMP_GT", |a, v, _| a > v),
        ("SCMP_CMP_GE", |a, v, _| a >= v),
        ("SCMP_CMP_MASKED_EQ", |a, m, d| a & m == d),
    ];
    for (op, holds) in ops {
        for &v in &values {
            let v2 = v & 0x1_0000_0004;
            let f = filter(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 7,
                    "args": [{"index": 3, "value": v, "valueTwo": v2, "op": op}]}]
            }));
            for &a in &values {
                let want = if holds(a, v, v2) { errno(7) } else { ALLOW };
                let got = x86_64(&f, "getppid", [0, 0, 0, a, 0, 0]);
                assert_eq!(got, want, "{op} arg {a:#x} value {v:#x}");
            }
        }
    }
}

#[test]
fn conditions_and_rules_combine_like_runc() {
    let f = filter(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            // AND: both arguments must match.
            {"names": ["kill"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]},
            // The same argument twice: runc makes each its own rule, so either matches.
            {"names": ["dup2"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 4, "op": "SCMP_CMP_EQ"}]},
            // A rule that restates the default is dropped (so it does not beat the
            // conditional allow below, as an unconditional rule otherwise would).
            {"names": ["close"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_GT"}]},
            // An unconditional rule beats a conditional one (libseccomp).
            {"names": ["dup"], "action": "SCMP_ACT_ERRNO", "errnoRet": 9,
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["dup"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["not_a_syscall_at_all"], "action": "SCMP_ACT_ALLOW"}
        ]
    }));
    assert_eq!(x86_64(&f, "kill", [1, 9, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86_64(&f, "kill", [1, 15, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(x86_64(&f, "kill", [2, 9, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(x86_64(&f, "dup2", [3, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86_64(&f, "dup2", [4, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86_64(&f, "dup2", [5, 0, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(x86_64(&f, "close", [11, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86_64(&f, "close", [3, 0, 0, 0, 0, 0]), errno(libc::EPERM));
    assert_eq!(x86_64(&f, "dup", [1, 0, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn architectures_and_abis() {
    let profile = |arches: serde_json::Value| {
        filter(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": arches,
            "syscalls": [{"names": ["getppid", "socketcall"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3,
                "args": [{"index": 0, "value": 100, "op": "SCMP_CMP_LT"}]}]
        }))
    };
    // Native only: i386 and x32 calls are from architectures the profile does not list.
    let f = profile(json!([]));
    assert_eq!(x86_64(&f, "getppid", [0; 6]), errno(3));
    assert_eq!(eval(&f.program, AUDIT_ARCH_I386, 64, [0; 6]), KILL);
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_X86_64, 0x4000_0000 | 110, [0; 6]),
        KILL
    );
    assert_eq!(eval(&f.program, 0xc000_00b7, 173, [0; 6]), KILL); // aarch64

    let f = profile(json!([
        "SCMP_ARCH_X86_64",
        "SCMP_ARCH_X86",
        "SCMP_ARCH_X32",
        "SCMP_ARCH_AARCH64"
    ]));
    // i386: its own numbers, and only the low 32 bits of arguments exist.
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_I386, 64, [5, 0, 0, 0, 0, 0]),
        errno(3)
    );
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_I386, 102, [5, 0, 0, 0, 0, 0]),
        errno(3)
    );
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_I386, 110, [5, 0, 0, 0, 0, 0]),
        ALLOW
    ); // iopl there
       // x32: x86_64's numbers with bit 30, 64-bit arguments.
    let x32 = 0x4000_0000 | 110;
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_X86_64, x32, [5, 0, 0, 0, 0, 0]),
        errno(3)
    );
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_X86_64, x32, [1 << 33, 0, 0, 0, 0, 0]),
        ALLOW
    );
    // socketcall exists on i386 only.
    assert_eq!(x86_64(&f, "getppid", [1 << 33, 0, 0, 0, 0, 0]), ALLOW);
}

#[test]
fn newer_calls_get_enosys_like_runc() {
    let f = filter(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["read", "openat2"], "action": "SCMP_ACT_ALLOW"}]
    }));
    assert_eq!(x86_64(&f, "openat2", [0; 6]), ALLOW);
    assert_eq!(x86_64(&f, "write", [0; 6]), errno(libc::EPERM));
    assert_eq!(x86_64(&f, "faccessat2", [0; 6]), errno(libc::ENOSYS)); // 439 > 437
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_X86_64, 1000, [0; 6]),
        errno(libc::ENOSYS)
    );
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_I386, 500, [0; 6]),
        errno(libc::ENOSYS)
    );
    // Not with a permissive default, nor when the default already is ENOSYS.
    let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}));
    assert_eq!(eval(&f.program, AUDIT_ARCH_X86_64, 1000, [0; 6]), ALLOW);
}

#[test]
fn bad_profiles_are_named() {
    let err = |v: serde_json::Value| parse(&v).and_then(|s| compile(&s)).unwrap_err().to_string();
    let e = err(json!({"defaultAction": "SCMP_ACT_BOGUS"}));
    assert_eq!(e, r#"defaultAction: unknown action "SCMP_ACT_BOGUS""#);
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}));
    assert_eq!(e, r#"syscalls[0]: unknown action "SCMP_ACT_NOPE""#);
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
        "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}),
    );
    assert_eq!(
        e,
        r#"syscalls[0].args[0]: unknown operator "SCMP_CMP_ABOUT""#
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}));
    assert_eq!(
        e,
        r#"architectures[0]: unknown architecture "SCMP_ARCH_Z80""#
    );
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_FAST"]}));
    assert_eq!(e, r#"flags[0]: unknown flag "SECCOMP_FILTER_FLAG_FAST""#);
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"],
        "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
    );
    assert!(e.contains("index 6 is not an argument"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
    assert!(e.contains("errnoRet 70000 is out of range"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}));
    assert_eq!(e, "syscalls[0]: SCMP_ACT_NOTIFY needs a listenerPath");
    let e = err(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["sendmsg"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert!(e.contains("cannot be used for sendmsg"), "{e}");
    let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"}));
    assert!(e.contains("cannot be the default action"), "{e}");
    let e = err(json!({"syscalls": []}));
    assert!(e.contains("defaultAction"), "{e}");
}

/// Enough argument rules that jumps must cross more than 255 instructions.
#[test]
fn far_jumps_are_correct() {
    let names: Vec<&str> = syscalls::TABLE
        .iter()
        .filter(|r| r.1 >= 0)
        .map(|r| r.0)
        .take(100)
        .collect();
    let rules: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            json!({"names": [n], "action": "SCMP_ACT_ERRNO", "errnoRet": i + 1,
            "args": [{"index": 1, "value": i, "op": "SCMP_CMP_EQ"},
                     {"index": 2, "value": 1000 + i, "op": "SCMP_CMP_GE"}]})
        })
        .collect();
    let f = filter(json!({"defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86"], "syscalls": rules}));
    assert!(f.len() > 2000, "{}", f.len());
    for (i, n) in names.iter().enumerate() {
        let i = i as u64;
        assert_eq!(
            x86_64(&f, n, [0, i, 1000 + i, 0, 0, 0]),
            errno(i as i32 + 1),
            "{n}"
        );
        assert_eq!(x86_64(&f, n, [0, i, 999 + i, 0, 0, 0]), ALLOW, "{n}");
        assert_eq!(x86_64(&f, n, [0, i + 1, 1000 + i, 0, 0, 0]), ALLOW, "{n}");
    }
}

fn docker_default(bounding: &[&str]) -> Filter {
    let caps: Vec<String> = bounding.iter().map(|c| c.to_string()).collect();
    let s = docker::default_profile().resolve(&caps).unwrap().unwrap();
    compile(&s).unwrap()
}

use images::capabilities::DEFAULT as DOCKER_CAPS;

#[test]
fn docker_default_profile() {
    let f = docker_default(DOCKER_CAPS);
    let eperm = errno(libc::EPERM);
    for call in [
        "unshare",
        "mount",
        "keyctl",
        "add_key",
        "bpf",
        "kexec_load",
        "open_by_handle_at",
        "setns",
        "reboot",
        "init_module",
        "kcmp",
        "perf_event_open",
        "userfaultfd",
    ] {
        assert_eq!(x86_64(&f, call, [0; 6]), eperm, "{call}");
    }
    for call in [
        "read",
        "execve",
        "chroot",
        "arch_prctl",
        "clone3",
        "openat2",
        "statx",
    ] {
        assert_ne!(x86_64(&f, call, [0; 6]), eperm, "{call}");
    }
    assert_eq!(x86_64(&f, "clone3", [0; 6]), errno(libc::ENOSYS));
    let newuser = libc::CLONE_NEWUSER as u64;
    assert_eq!(
        x86_64(&f, "clone", [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        x86_64(&f, "clone", [newuser | libc::SIGCHLD as u64, 0, 0, 0, 0, 0]),
        eperm
    );
    assert_eq!(
        x86_64(&f, "socket", [libc::AF_INET as u64, 1, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        x86_64(&f, "socket", [libc::AF_VSOCK as u64, 1, 0, 0, 0, 0]),
        eperm
    );
    assert_eq!(
        x86_64(&f, "socket", [libc::AF_ALG as u64, 1, 0, 0, 0, 0]),
        eperm
    );
    assert_eq!(x86_64(&f, "socket", [39, 1, 0, 0, 0, 0]), ALLOW);
    assert_eq!(
        x86_64(&f, "personality", [0xffff_ffff, 0, 0, 0, 0, 0]),
        ALLOW
    );
    assert_eq!(
        x86_64(&f, "personality", [0x0040_0000, 0, 0, 0, 0, 0]),
        eperm
    );
    // 32-bit programs keep working: i386 execve (11), socketcall (102).
    assert_eq!(eval(&f.program, AUDIT_ARCH_I386, 11, [0; 6]), ALLOW);
    assert_eq!(eval(&f.program, AUDIT_ARCH_I386, 102, [0; 6]), ALLOW);
    assert_eq!(
        eval(&f.program, AUDIT_ARCH_X86_64, 0x4000_0000 | 520, [0; 6]), // x32 execve
        ALLOW
    );

    // With CAP_SYS_ADMIN, namespaces and mounts are the capability's business.
    let mut caps = DOCKER_CAPS.to_vec();
    caps.extend(["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]);
    let f = docker_default(&caps);
    assert_eq!(x86_64(&f, "unshare", [0; 6]), ALLOW);
    assert_eq!(x86_64(&f, "mount", [0; 6]), ALLOW);
    assert_eq!(x86_64(&f, "clone", [newuser, 0, 0, 0, 0, 0]), ALLOW);
    assert_eq!(x86_64(&f, "clone3", [0; 6]), ALLOW);
    assert_eq!(x86_64(&f, "ptrace", [0; 6]), ALLOW);
    assert_eq!(x86_64(&f, "keyctl", [0; 6]), eperm);
}

#[test]
fn docker_profile_files() {
    let p = docker::parse(
        br#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"name": "getppid", "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "excludes": {"minKernel": "3.0"}},
        {"names": ["gettid"], "action": "SCMP_ACT_ERRNO", "includes": {"arches": ["arm64"]}}]}"#,
    )
    .unwrap();
    let s = p.resolve(&[]).unwrap().unwrap();
    let f = compile(&s).unwrap();
    assert_eq!(x86_64(&f, "getppid", [0; 6]), errno(38));
    for skipped in ["uname", "getpid", "gettid"] {
        assert_eq!(x86_64(&f, skipped, [0; 6]), ALLOW, "{skipped}");
    }
    assert!(docker::parse(b"{")
        .unwrap_err()
        .to_string()
        .starts_with("not JSON"));
    let e = docker::parse(br#"{"defaultAction": "SCMP_ACT_KILL_ALL"}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"defaultAction: unknown action "SCMP_ACT_KILL_ALL""#
    );
    let e = docker::parse(
        br#"{"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"name": "read", "action": "SCMP_ACT_FOO"}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"syscalls[0]: unknown action "SCMP_ACT_FOO""#
    );
    // Docker's "no default action, no rules" means no filter.
    assert!(docker::parse(b"{}")
        .unwrap()
        .resolve(&[])
        .unwrap()
        .is_none());
}

/// Loads a filter in a forked child and returns what `getppid` and `uname` returned there
/// (negative: -errno).
fn in_child(f: &Filter) -> (i64, i64) {
    let mut fds = [0; 2];
    // SAFETY: plain pipe/fork; the child only makes raw system calls and _exit.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
            let mut out = [-1i64; 2];
            if f.load().is_ok() {
                let ret = |r: libc::c_long| {
                    if r < 0 {
                        -(*libc::__errno_location() as i64)
                    } else {
                        0
                    }
                };
                let mut u: libc::utsname = std::mem::zeroed();
                out[0] = ret(libc::syscall(libc::SYS_getppid));
                out[1] = ret(libc::syscall(libc::SYS_uname, &mut u as *mut libc::utsname));
            } else {
                out = [i64::MIN, i64::MIN];
            }
            libc::write(fds[1], out.as_ptr().cast(), 16);
            libc::_exit(0);
        }
        libc::close(fds[1]);
        let mut out = [0i64; 2];
        assert_eq!(libc::read(fds[0], out.as_mut_ptr().cast(), 16), 16);
        libc::close(fds[0]);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
        (out[0], out[1])
    }
}

#[test]
fn kernel_runs_the_filter() {
    let f = filter(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                     {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]}]
    }));
    assert_eq!(in_child(&f), (-38, -1));
}

#[test]
fn notify_rules_ask_for_a_listener() {
    let f = filter(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
    );
    assert_eq!(x86_64(&f, "mkdir", [0; 6]), libc::SECCOMP_RET_USER_NOTIF);
    assert_eq!(f.flags, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
}

#[test]
fn kernel_accepts_docker_default() {
    let f = docker_default(DOCKER_CAPS);
    assert!(f.len() < bpf::MAX_INSNS);
    // getppid and uname are on Docker's allowlist.
    assert_eq!(in_child(&f), (0, 0));
}
