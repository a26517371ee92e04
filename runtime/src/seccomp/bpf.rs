//! From rules to a classic BPF program (see bpf(4)'s older sibling, `linux/filter.h`, and
//! "Seccomp filtering" in the kernel's userspace-api docs).
//!
//! The kernel runs the program once per system call on a `struct seccomp_data`
//! (`nr`, `arch`, `instruction_pointer`, `args[6]`) and acts on the 32-bit value it returns.
//! The program minc builds:
//!
//! ```text
//!   ld  arch                      ; one section per audit architecture
//!   jeq AUDIT_ARCH_X86_64 -> x86_64
//!   jeq AUDIT_ARCH_I386   -> i386
//!   ret KILL_THREAD               ; an architecture the profile does not list
//! x86_64:
//!   ld  nr
//!   jge 0x40000000 ...            ; a binary search over ranges of syscall numbers that share
//!   jge 59 ...                    ; one outcome: x32 calls (bit 30) are a range of their own
//!   ret ALLOW                     ; a whole range of allowed calls
//!   ...
//! openat_rules:                   ; a call with argument rules gets a small body
//!   ld  args[2].hi ; jeq ... ; ld args[2].lo ; jeq ... ; ret ERRNO(1)
//!   ret <default>
//! ```
//!
//! Jumps only go forward, and a conditional jump reaches at most 255 instructions. So the
//! program is emitted backwards, last instruction first: every jump target already exists
//! when the jump is written, and a target that is too far is reached through an
//! unconditional `ja` (32-bit offset) placed right after the jump.

use std::collections::BTreeMap;

use libc::sock_filter;

const BPF_LD: u16 = 0x00;
const BPF_W: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_ALU: u16 = 0x04;
const BPF_AND: u16 = 0x50;
const BPF_K: u16 = 0x00;
const BPF_JMP: u16 = 0x05;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_RET: u16 = 0x06;

/// The largest program the kernel accepts (BPF_MAXINSNS).
pub(super) const MAX_INSNS: usize = 4096;

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
fn off_arg(index: u8, high: bool) -> u32 {
    let base = 16 + 8 * index as u32;
    // Each argument is a u64; its halves sit in memory in the machine's byte order.
    if high == cfg!(target_endian = "little") {
        base + 4
    } else {
        base
    }
}

/// Where an instruction sits, counted from the end of the program (emission order).
type Label = usize;

/// A program being written backwards.
#[derive(Default)]
struct Asm {
    rev: Vec<sock_filter>,
}

impl Asm {
    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
        self.rev.push(sock_filter { code, jt, jf, k });
        self.rev.len() - 1
    }

    /// The offset a jump written now needs to land on `target`.
    fn dist(&self, target: Label) -> usize {
        self.rev.len() - target - 1
    }

    fn ret(&mut self, value: u32) -> Label {
        self.push(BPF_RET | BPF_K, 0, 0, value)
    }

    fn load(&mut self, offset: u32) -> Label {
        self.push(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset)
    }

    fn and(&mut self, mask: u32) -> Label {
        self.push(BPF_ALU | BPF_AND | BPF_K, 0, 0, mask)
    }

    fn ja(&mut self, target: Label) -> Label {
        let k = self.dist(target) as u32;
        self.push(BPF_JMP | BPF_JA, 0, 0, k)
    }

    /// `if (A op k) goto t else goto f`, with `ja` trampolines for far targets.
    fn jump(&mut self, op: u16, k: u32, mut t: Label, mut f: Label) -> Label {
        if t == f {
            // Both ways lead to the same place: no test needed.
            return if self.dist(t) == 0 { t } else { self.ja(t) };
        }
        loop {
            // A trampoline moves the other target one instruction further: check again.
            if self.dist(t) > 255 {
                t = self.ja(t);
            } else if self.dist(f) > 255 {
                f = self.ja(f);
            } else {
                break;
            }
        }
        let (jt, jf) = (self.dist(t) as u8, self.dist(f) as u8);
        self.push(BPF_JMP | op | BPF_K, jt, jf, k)
    }

    fn finish(mut self) -> Vec<sock_filter> {
        self.rev.reverse();
        self.rev
    }
}

/// A comparison operator (libseccomp's `SCMP_CMP_*`); all compare unsigned values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cond {
    pub arg: u8,
    pub op: Op,
    pub value: u64,
    pub value_two: u64,
}

/// What happens to one system call number of one ABI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Call {
    /// Rules with argument conditions, in profile order: the first whose conditions all
    /// hold gives its action.
    pub conditional: Vec<(Vec<Cond>, u32)>,
    /// The action of a rule without conditions. Like libseccomp, it takes precedence over
    /// every conditional rule of the same call.
    pub unconditional: Option<u32>,
}

/// One ABI's part of an audit-architecture section: the range of `nr` values it owns
/// (x32 shares AUDIT_ARCH_X86_64 with x86_64, with bit 30 set in `nr`).
pub(super) struct AbiRules {
    /// First `nr` of this ABI (0, or 0x4000_0000 for x32).
    pub base: u32,
    /// One past its last `nr`.
    pub end: u64,
    /// Whether arguments are 64-bit (false on i386: only the low words are compared).
    pub wide: bool,
    /// Rules by `nr - base`: a flat table, as syscall numbers are small and dense.
    pub calls: Vec<Call>,
    /// Action for calls the profile does not name.
    pub default: u32,
    /// runc's -ENOSYS stub: numbers above this one (newer than any call the profile
    /// knows) get ENOSYS instead of `default`, so programs fall back to older calls.
    pub enosys_above: Option<u32>,
}

/// One audit architecture (what `seccomp_data.arch` says) and the ABIs under it.
pub(super) struct Section {
    pub audit_arch: u32,
    pub abis: Vec<AbiRules>,
}

/// The outcome of a range of syscall numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ret(u32),
    /// The argument rules of this `nr` decide.
    Body(u32),
}

/// Builds the whole program. `bad_arch` is returned for architectures the profile does not
/// list, and for an ABI of a listed audit architecture that it does not list (x32 calls
/// without SCMP_ARCH_X32).
pub(super) fn program(sections: &[Section], bad_arch: u32) -> Vec<sock_filter> {
    let mut p = Asm::default();
    let mut starts = Vec::new();
    for s in sections.iter().rev() {
        starts.push((s.audit_arch, emit_section(&mut p, s, bad_arch)));
    }
    let mut next = p.ret(bad_arch);
    for (arch, start) in starts {
        // `starts` is in reverse section order, so the first section's test ends up first.
        next = p.jump(BPF_JEQ, arch, start, next);
    }
    p.load(OFF_ARCH);
    p.finish()
}

fn emit_section(p: &mut Asm, s: &Section, bad_arch: u32) -> Label {
    let ranges = section_ranges(s, bad_arch);
    let mut bodies = BTreeMap::new();
    for abi in s.abis.iter().rev() {
        for (i, call) in abi.calls.iter().enumerate().rev() {
            let nr = abi.base + i as u32;
            if outcome(call, nr, abi.default) == Some(Outcome::Body(nr)) {
                bodies.insert(nr, emit_body(p, call, abi.default, abi.wide));
            }
        }
    }
    emit_tree(p, &ranges, &bodies);
    p.load(OFF_NR)
}

/// The ranges of `nr` (first number, outcome) covering 0..=u32::MAX, neighbours merged.
fn section_ranges(s: &Section, bad_arch: u32) -> Vec<(u64, Outcome)> {
    let mut ranges: Vec<(u64, Outcome)> = Vec::new();
    let mut add = |start: u64, o: Outcome| {
        if ranges.last().map(|r| r.1) != Some(o) {
            ranges.push((start, o));
        }
    };
    let mut abis: Vec<&AbiRules> = s.abis.iter().collect();
    abis.sort_by_key(|a| a.base);
    let mut pos = 0u64;
    for abi in abis {
        if pos < abi.base as u64 {
            add(pos, Outcome::Ret(bad_arch));
        }
        let fallback = |nr: u64| match abi.enosys_above {
            Some(max) if nr > max as u64 => {
                Outcome::Ret(libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32)
            }
            _ => Outcome::Ret(abi.default),
        };
        for (i, call) in abi.calls.iter().enumerate() {
            let nr = abi.base as u64 + i as u64;
            add(
                nr,
                outcome(call, nr as u32, abi.default).unwrap_or(fallback(nr)),
            );
        }
        // Past the table only the ENOSYS boundary can change the outcome.
        let past = abi.base as u64 + abi.calls.len() as u64;
        for at in [Some(past), abi.enosys_above.map(|m| m as u64 + 1)]
            .into_iter()
            .flatten()
        {
            if at >= past && at < abi.end {
                add(at, fallback(at));
            }
        }
        pos = abi.end;
    }
    if pos <= u32::MAX as u64 {
        add(pos, Outcome::Ret(bad_arch));
    }
    ranges
}

/// What a call's rules decide; None when it has none.
fn outcome(call: &Call, nr: u32, default: u32) -> Option<Outcome> {
    match call.unconditional {
        Some(action) => Some(Outcome::Ret(action)),
        None if call.conditional.is_empty() => None,
        None if call.conditional.iter().all(|(_, a)| *a == default) => Some(Outcome::Ret(default)),
        None => Some(Outcome::Body(nr)),
    }
}

/// A binary search over the ranges: `nr >= first of the upper half ? upper : lower`. Leaves
/// sit next to their parents, so only the top levels need far jumps.
fn emit_tree(p: &mut Asm, ranges: &[(u64, Outcome)], bodies: &BTreeMap<u32, Label>) -> Label {
    if let [(_, o)] = ranges {
        return match o {
            Outcome::Ret(v) => p.ret(*v),
            Outcome::Body(nr) => bodies[nr],
        };
    }
    let mid = ranges.len() / 2;
    let upper = emit_tree(p, &ranges[mid..], bodies);
    let lower = emit_tree(p, &ranges[..mid], bodies);
    p.jump(BPF_JGE, ranges[mid].0 as u32, upper, lower)
}

/// The argument rules of one call: each rule's conditions in turn, then the default.
fn emit_body(p: &mut Asm, call: &Call, default: u32, wide: bool) -> Label {
    let mut next = p.ret(default);
    for (conds, action) in call.conditional.iter().rev() {
        let fail = next;
        let mut matched = p.ret(*action);
        for c in conds.iter().rev() {
            matched = emit_cond(p, c, matched, fail, wide);
        }
        next = matched;
    }
    next
}

/// One condition: on to `m` when it holds, to `f` when not. A 64-bit comparison decides on
/// the high words first and looks at the low words only when those are equal. On a 32-bit
/// ABI (`wide` false) only the low words exist.
fn emit_cond(p: &mut Asm, c: &Cond, m: Label, f: Label, wide: bool) -> Label {
    let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
    let (hi2, lo2) = ((c.value_two >> 32) as u32, c.value_two as u32);
    match c.op {
        Op::Eq => p.jump(BPF_JEQ, lo, m, f),
        Op::Ne => p.jump(BPF_JEQ, lo, f, m),
        Op::Gt => p.jump(BPF_JGT, lo, m, f),
        Op::Ge => p.jump(BPF_JGE, lo, m, f),
        Op::Lt => p.jump(BPF_JGE, lo, f, m),
        Op::Le => p.jump(BPF_JGT, lo, f, m),
        Op::MaskedEq => {
            p.jump(BPF_JEQ, lo2, m, f);
            p.and(lo)
        }
    };
    let low = p.load(off_arg(c.arg, false));
    if !wide {
        return low;
    }
    match c.op {
        Op::Eq => p.jump(BPF_JEQ, hi, low, f),
        Op::Ne => p.jump(BPF_JEQ, hi, low, m),
        Op::Gt | Op::Ge => {
            let eq = p.jump(BPF_JEQ, hi, low, f);
            p.jump(BPF_JGT, hi, m, eq)
        }
        Op::Lt | Op::Le => {
            let eq = p.jump(BPF_JEQ, hi, low, m);
            p.jump(BPF_JGT, hi, f, eq)
        }
        Op::MaskedEq => {
            p.jump(BPF_JEQ, hi2, low, f);
            p.and(hi)
        }
    };
    p.load(off_arg(c.arg, true))
}
