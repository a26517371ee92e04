//! Device control: which device nodes the container's processes may open (read, write) or
//! create (mknod). The filesystem alone cannot stop a root process with CAP_MKNOD from
//! making `/dev/sda` and writing to it; the device cgroup can.
//!
//! - v1: the `devices` controller keeps an allow or deny list, edited by writing rules
//!   (`c 1:3 rwm`, `a` for all) to `devices.allow` / `devices.deny`
//!   (kernel: Documentation/admin-guide/cgroup-v1/devices.rst).
//! - v2 has no such files: a program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the
//!   cgroup is asked about each access and returns 1 (allow) or 0 (deny) (bpf(2); kernel:
//!   Documentation/bpf/prog_cgroup_device... and cgroup-v2.rst "Device controller"). The
//!   kernel runs it for the cgroup a process is in on the v2 tree, so on a hybrid host it is
//!   enforced on top of the v1 list.
//!
//! The rules are the spec's `linux.resources.devices` followed by runc's default allowlist
//! (null, zero, full, random, urandom, tty, console, ptmx, /dev/pts/*, /dev/net/tun, and
//! mknod of any node), as runc appends it to every container; later rules win. The v2
//! program is built here, instruction by instruction, the way crun's ebpf.c and youki's
//! libcgroups do: a short prologue loads the access type, device type, major and minor into
//! registers, then each rule, last first, is a block of compare-and-skip instructions ending
//! in "return allow/deny"; the first block that matches decides.

use std::fmt::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{Error, Result};

pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;
pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;

/// One device rule, checked and normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'b' or 'c'.
    pub kind: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u32,
}

impl Rule {
    pub const fn allow(kind: char, major: Option<u32>, minor: Option<u32>, access: u32) -> Rule {
        Rule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// The OCI rule as a [`Rule`]; a bad type, number or access letter is an error.
    pub fn from_oci(r: &LinuxDeviceCgroup) -> Result<Rule> {
        let kind = match r.typ() {
            None | Some(LinuxDeviceType::A) => 'a',
            Some(LinuxDeviceType::B) => 'b',
            Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
            Some(LinuxDeviceType::P) => {
                return Err(Error::Invalid(
                    "devices: type \"p\" (FIFO) is not a device the cgroup controls".into(),
                ))
            }
        };
        let num = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
            match v {
                None | Some(-1) => Ok(None),
                Some(n) if (0..=u32::MAX as i64).contains(&n) => Ok(Some(n as u32)),
                Some(n) => Err(Error::Invalid(format!(
                    "devices: {what} {n} is out of range"
                ))),
            }
        };
        let mut access = 0;
        for c in r.access().as_deref().unwrap_or("rwm").chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                other => {
                    return Err(Error::Invalid(format!(
                        "devices: access {other:?} is not one of r, w, m"
                    )))
                }
            };
        }
        if access == 0 {
            access = ACC_ALL; // "" means all, as in runc
        }
        Ok(Rule {
            allow: r.allow(),
            kind,
            major: num(r.major(), "major")?,
            minor: num(r.minor(), "minor")?,
            access,
        })
    }

    /// Everything: type a, any numbers, all access.
    fn is_everything(&self) -> bool {
        self.kind == 'a' && self.major.is_none() && self.minor.is_none() && self.access == ACC_ALL
    }

    /// The v1 rule line: `c 1:3 rwm`, `b *:* m`, or `a` for everything.
    pub fn v1_line(&self) -> String {
        if self.is_everything() {
            return "a".into();
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        let mut acc = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        format!("{} {}:{} {acc}", self.kind, n(self.major), n(self.minor))
    }
}

/// runc's default allowlist (its `AllowedDevices`) plus /dev/console, appended to every
/// container's rules.
pub const DEFAULT_ALLOWED: &[Rule] = &[
    Rule::allow('c', None, None, ACC_MKNOD),
    Rule::allow('b', None, None, ACC_MKNOD),
    Rule::allow('c', Some(1), Some(3), ACC_ALL), // null
    Rule::allow('c', Some(1), Some(8), ACC_ALL), // random
    Rule::allow('c', Some(1), Some(7), ACC_ALL), // full
    Rule::allow('c', Some(5), Some(0), ACC_ALL), // tty
    Rule::allow('c', Some(5), Some(1), ACC_ALL), // console
    Rule::allow('c', Some(1), Some(5), ACC_ALL), // zero
    Rule::allow('c', Some(1), Some(9), ACC_ALL), // urandom
    Rule::allow('c', Some(136), None, ACC_ALL),  // /dev/pts/*
    Rule::allow('c', Some(5), Some(2), ACC_ALL), // ptmx
    Rule::allow('c', Some(10), Some(200), ACC_ALL), // /dev/net/tun
];

/// The rules in force: the spec's, then the defaults. A rule of type `a` with numbers or
/// partial access means both `b` and `c` (v1's `a` always means everything).
pub fn effective(spec: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for r in spec {
        let rule = Rule::from_oci(r)?;
        if rule.kind == 'a' && !rule.is_everything() {
            out.push(Rule { kind: 'b', ..rule });
            out.push(Rule { kind: 'c', ..rule });
        } else {
            out.push(rule);
        }
    }
    out.extend_from_slice(DEFAULT_ALLOWED);
    Ok(out)
}

/// v1: start from "deny everything", then replay the rules in order. Each write(2) is one
/// rule, so both files are opened once and written to repeatedly.
pub fn apply_v1(dir: &Path, spec: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = effective(spec)?;
    let mut allow = Writer::open(&dir.join("devices.allow"))?;
    let mut deny = Writer::open(&dir.join("devices.deny"))?;
    deny.rule("a")?;
    // (a leading "deny everything" of the spec is what was just written)
    let skip = rules.first().is_some_and(|r| !r.allow && r.is_everything());
    for r in &rules[usize::from(skip)..] {
        let w = if r.allow { &mut allow } else { &mut deny };
        w.rule(&r.v1_line())?;
    }
    Ok(())
}

/// An open devices.allow or devices.deny.
struct Writer {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl Writer {
    fn open(path: &Path) -> Result<Writer> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        Ok(Writer {
            path: path.to_path_buf(),
            file,
        })
    }

    fn rule(&mut self, line: &str) -> Result<()> {
        use std::io::Write;
        sysops::explain::Cmd::new("echo")
            .arg(line)
            .stdout_to(&self.path)
            .emit();
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| Error::Write {
                path: self.path.clone(),
                value: line.to_string(),
                err: e,
                hint: String::new(),
            })
    }
}

/// v2: load the program for the rules and attach it to the cgroup `dir`.
pub fn apply_v2(dir: &Path, spec: &[LinuxDeviceCgroup]) -> Result<()> {
    let rules = effective(spec)?;
    let prog = program(&rules);
    let fd = load(&prog)?;
    attach(dir, &fd, &rules)
}

// eBPF instructions (linux/bpf.h, linux/bpf_common.h): 8 bytes each.
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// One eBPF instruction (struct bpf_insn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

impl Insn {
    fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// Builds the program. The context (struct bpf_cgroup_dev_ctx) is
/// `{ u32 access_type /* (ACC << 16) | DEV */; u32 major; u32 minor; }`.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),        // r2 = ctx->access_type
        insn(ALU32_AND_K, 2, 0, 0, 0xffff), // w2 &= 0xffff: device type
        insn(LDX_MEM_W, 3, 1, 0, 0),        // r3 = ctx->access_type
        insn(ALU32_RSH_K, 3, 0, 0, 16),     // w3 >>= 16: access requested
        insn(LDX_MEM_W, 4, 1, 4, 0),        // r4 = ctx->major
        insn(LDX_MEM_W, 5, 1, 8, 0),        // r5 = ctx->minor
    ];
    let mut default_allow = false;
    for r in rules.iter().rev() {
        if r.is_everything() {
            // Nothing earlier can matter: this is the answer for whatever got this far.
            default_allow = r.allow;
            break;
        }
        let mut checks: Vec<Vec<Insn>> = Vec::new();
        if r.kind != 'a' {
            let t = if r.kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
            checks.push(vec![insn(JNE_K, 2, 0, 0, t as i32)]);
        }
        if r.access != ACC_ALL {
            // Allowed when every requested bit is in the rule: (req & rule) == req.
            checks.push(vec![
                insn(ALU32_MOV_X, 1, 3, 0, 0),
                insn(ALU32_AND_K, 1, 0, 0, r.access as i32),
                insn(JNE_X, 1, 3, 0, 0),
            ]);
        }
        if let Some(m) = r.major {
            checks.push(vec![insn(JNE_K, 4, 0, 0, m as i32)]);
        }
        if let Some(m) = r.minor {
            checks.push(vec![insn(JNE_K, 5, 0, 0, m as i32)]);
        }
        let mut block: Vec<Insn> = checks.into_iter().flatten().collect();
        block.push(insn(ALU64_MOV_K, 0, 0, 0, r.allow as i32));
        block.push(insn(EXIT, 0, 0, 0, 0));
        // Each jump skips to the end of the block (past the return).
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == JNE_K || ins.code == JNE_X {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, default_allow as i32));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_int = 15;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

fn bpf(cmd: libc::c_int, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    // SAFETY: bpf(2) with a zero-padded attribute buffer of the size we pass.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn put32(a: &mut [u8; 128], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8; 128], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads the program (BPF_PROG_LOAD); on a verifier rejection, the verifier's log is in
/// the error.
pub fn load(prog: &[Insn]) -> Result<OwnedFd> {
    let code: Vec<u8> = prog.iter().flat_map(|i| i.bytes()).collect();
    let license = b"Apache-2.0\0";
    let try_load = |log: Option<&mut Vec<u8>>| {
        let mut a = [0u8; 128];
        put32(&mut a, 0, BPF_PROG_TYPE_CGROUP_DEVICE);
        put32(&mut a, 4, prog.len() as u32);
        put64(&mut a, 8, code.as_ptr() as u64);
        put64(&mut a, 16, license.as_ptr() as u64);
        if let Some(buf) = log {
            put32(&mut a, 24, 1);
            put32(&mut a, 28, buf.len() as u32);
            put64(&mut a, 32, buf.as_mut_ptr() as u64);
        }
        let name = b"minc_devices"; // at most 15 bytes
        a[48..48 + name.len()].copy_from_slice(name);
        put32(&mut a, 68, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_LOAD, &mut a)
    };
    match try_load(None) {
        // SAFETY: a new fd from the kernel.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let mut log = vec![0u8; 1 << 16];
            let _ = try_load(Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            let text = text.trim_end_matches('\0').trim();
            Err(Error::Sys {
                what: format!(
                    "load the device cgroup eBPF program (bpf BPF_PROG_LOAD){}",
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(", verifier: {}", text.replace('\n', "; "))
                    }
                ),
                err: e,
            })
        }
    }
}

/// Attaches the program to the cgroup (BPF_PROG_ATTACH, BPF_F_ALLOW_MULTI so that a
/// parent's program, if any, still runs too). The attachment keeps the program alive; it
/// goes away with the cgroup.
pub fn attach(dir: &Path, prog: &OwnedFd, rules: &[Rule]) -> Result<()> {
    if sysops::explain::enabled() {
        let mut what = String::new();
        for r in rules {
            let _ = write!(
                what,
                "{}{} {}",
                if what.is_empty() { "" } else { ", " },
                if r.allow { "allow" } else { "deny" },
                r.v1_line()
            );
        }
        sysops::explain::comment(&format!(
            "bpf(BPF_PROG_LOAD) a BPF_PROG_TYPE_CGROUP_DEVICE program: {what}; the last matching rule wins, anything else is denied"
        ));
        sysops::explain::Cmd::new("bpftool")
            .args(["cgroup", "attach"])
            .arg(dir)
            .args(["device", "id", &prog_id(prog).to_string(), "multi"])
            .emit();
    }
    let cg = std::fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
    let mut a = [0u8; 128];
    put32(&mut a, 0, cg.as_raw_fd() as u32);
    put32(&mut a, 4, prog.as_raw_fd() as u32);
    put32(&mut a, 8, BPF_CGROUP_DEVICE);
    put32(&mut a, 12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a).map_err(|e| Error::Sys {
        what: format!(
            "attach the device eBPF program to {} (bpf BPF_PROG_ATTACH)",
            dir.display()
        ),
        err: e,
    })?;
    Ok(())
}

/// The kernel's id of a loaded program (for `bpftool ... id N`).
fn prog_id(prog: &OwnedFd) -> u32 {
    let mut info = [0u8; 256];
    let mut a = [0u8; 128];
    put32(&mut a, 0, prog.as_raw_fd() as u32);
    put32(&mut a, 4, info.len() as u32);
    put64(&mut a, 8, info.as_mut_ptr() as u64);
    match bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a) {
        Ok(_) => u32::from_ne_bytes(info[4..8].try_into().expect("4 bytes")),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one access, the way the kernel would: a tiny interpreter for
    /// exactly the instructions `program` emits (an unknown one fails the test).
    fn run(prog: &[Insn], dev: u32, access: u32, major: u32, minor: u32) -> bool {
        let ctx = [(access << 16) | dev, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            pc += 1;
            let (d, s) = (i.dst as usize, i.src as usize);
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = ctx[i.off as usize / 4] as u64;
                }
                ALU32_AND_K => r[d] = (r[d] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[d] = ((r[d] as u32) >> i.imm) as u64,
                ALU32_MOV_X => r[d] = r[s] as u32 as u64,
                ALU64_MOV_K => r[d] = i.imm as i64 as u64,
                JNE_K if r[d] != i.imm as u32 as u64 => pc += i.off as usize,
                JNE_X if r[d] != r[s] => pc += i.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return r[0] == 1,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<Rule> {
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        effective(&spec).unwrap()
    }

    #[test]
    fn default_allowlist_as_a_program() {
        let p = program(&rules(r#"[{"allow": false, "access": "rwm"}]"#));
        let rw = ACC_READ | ACC_WRITE;
        assert!(run(&p, DEV_CHAR, rw, 1, 3), "/dev/null");
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 9), "/dev/urandom");
        assert!(run(&p, DEV_CHAR, rw, 136, 7), "/dev/pts/7");
        assert!(run(&p, DEV_CHAR, ACC_MKNOD, 7, 0), "mknod of anything");
        assert!(
            run(&p, DEV_BLOCK, ACC_MKNOD, 7, 0),
            "mknod of a block device"
        );
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 7, 0), "read /dev/loop0");
        assert!(!run(&p, DEV_BLOCK, rw, 8, 0), "open /dev/sda");
        assert!(!run(&p, DEV_CHAR, rw, 10, 232), "open /dev/kvm");
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 1), "open /dev/mem");
    }

    #[test]
    fn later_rules_win_and_access_must_be_covered() {
        let p = program(&rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"},
                {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}]"#,
        ));
        assert!(run(&p, DEV_BLOCK, ACC_READ, 7, 0));
        assert!(
            !run(&p, DEV_BLOCK, ACC_READ | ACC_WRITE, 7, 0),
            "rw is more than r"
        );
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 7, 1));
        // The default allowlist comes after the spec, so /dev/null stays writable (as in runc).
        assert!(run(&p, DEV_CHAR, ACC_WRITE, 1, 3));
        let p = program(&rules(
            r#"[{"allow": true, "access": "rwm"}, {"allow": false, "type": "b"}]"#,
        ));
        assert!(run(&p, DEV_CHAR, ACC_READ, 10, 232), "allow-all default");
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 8, 0));
        assert!(
            run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            "default m rule comes later"
        );
    }

    #[test]
    fn v1_lines_and_bad_rules() {
        let r = rules(
            r#"[{"allow": false, "access": "rwm"}, {"allow": true, "type": "a", "major": 4, "access": "rw"}]"#,
        );
        let lines: Vec<String> = r.iter().map(|r| r.v1_line()).collect();
        assert_eq!(
            lines[..5],
            ["a", "b 4:* rw", "c 4:* rw", "c *:* m", "b *:* m"]
        );
        for bad in [
            r#"[{"allow": true, "access": "rwx"}]"#,
            r#"[{"allow": true, "type": "p"}]"#,
            r#"[{"allow": true, "major": -5}]"#,
        ] {
            let spec: Vec<LinuxDeviceCgroup> = serde_json::from_str(bad).unwrap();
            assert!(effective(&spec).is_err(), "{bad}");
        }
    }

    /// The kernel enforces the program: a process in a cgroup with it attached can use
    /// /dev/null but not open a block device it made with mknod, while the same open works
    /// in a sibling cgroup without the program. On this hybrid host this runs on the v2 tree
    /// at /sys/fs/cgroup/unified, next to (and independent of) the v1 devices controller.
    #[test]
    fn program_is_enforced_by_the_kernel() {
        let layout = crate::cgroups::Layout::detect().unwrap();
        let Some(v2) = layout.unified.clone() else {
            eprintln!("skipped: no cgroup2 mount");
            return;
        };
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } != 0 {
            eprintln!("skipped: needs root");
            return;
        }
        let base = v2
            .mountpoint
            .join(format!("minc-test-{}-bpf", std::process::id()));
        struct Rm(Vec<std::path::PathBuf>);
        impl Drop for Rm {
            fn drop(&mut self) {
                for d in self.0.iter().rev() {
                    let _ = std::fs::remove_dir(d);
                }
            }
        }
        let (with, without) = (base.join("with"), base.join("without"));
        let _rm = Rm(vec![base.clone(), with.clone(), without.clone()]);
        for d in [&base, &with, &without] {
            std::fs::create_dir(d).unwrap();
        }
        let rules: Vec<LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow": false, "access": "rwm"}]"#).unwrap();
        apply_v2(&with, &rules).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("loop");
        let try_in = |cg: &Path| {
            let script = format!(
                "echo $$ > {}/cgroup.procs || exit 9; (exec 3</dev/null) && echo null-ok; \
                 rm -f {n}; mknod {n} b 7 0 && echo made; (exec 3<{n}) 2>&1 && echo opened",
                cg.display(),
                n = node.display()
            );
            let o = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        let out = try_in(&with);
        assert!(out.contains("null-ok\nmade\n"), "{out}");
        assert!(
            out.contains("Operation not permitted") && !out.contains("opened"),
            "{out}"
        );
        let out = try_in(&without);
        assert!(out.contains("opened"), "control without the program: {out}");
    }

    #[test]
    fn encoding() {
        assert_eq!(
            insn(LDX_MEM_W, 4, 1, 4, 0).bytes(),
            [0x61, 0x14, 4, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            insn(JNE_K, 5, 0, 3, 200).bytes(),
            [0x55, 0x05, 3, 0, 200, 0, 0, 0]
        );
    }
}
