//! minc-dmz: the last hop before the container's program, run from a sealed memfd.
//!
//! Why it exists (CVE-2019-5736): the container init and the `exec` helper are copies of the
//! host's minc. If one of them execve()s a program that is really `#!/proc/self/exe` (or a
//! symlink to it), the kernel resolves /proc/self/exe in *that* process and runs the host's
//! minc binary inside the container, where a hostile process can keep a handle on it and
//! rewrite it once it stops running. So minc never execs the container's program itself: it
//! execs this stub from a memfd sealed against writes (memfd_create(2), F_SEAL_WRITE), and the
//! stub execs the program. Inside the container, /proc/self/exe can then only ever name the
//! sealed memfd, which the kernel refuses to modify.
//!
//! The stub is a few kilobytes: no std, no libc, raw system calls.
//! Usage (only from minc): minc-dmz ERRFD PATH ARGV0 [ARGS...]
//! It marks ERRFD close-on-exec and execs PATH with ARGV0 ARGS and the inherited environment;
//! if that fails it writes `{"ExecFailed":{"errno":N}}` to ERRFD and exits 127.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor rbp, rbp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call dmz_main",
    "ud2"
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "bl dmz_main",
    "brk #0"
);

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const FCNTL: usize = 72;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const FCNTL: usize = 25;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
}

/// A raw three-argument system call; returns the kernel's value (negative errno on error).
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
         lateout("rcx") _, lateout("r11") _, options(nostack));
    #[cfg(target_arch = "aarch64")]
    asm!("svc #0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c,
         options(nostack));
    ret
}

fn exit(code: usize) -> ! {
    loop {
        // SAFETY: exit_group never returns.
        unsafe { syscall3(nr::EXIT_GROUP, code, 0, 0) };
    }
}

/// Parses a small decimal number from a C string.
unsafe fn parse_fd(mut p: *const u8) -> Option<usize> {
    let mut n: usize = 0;
    let mut digits = 0;
    while *p != 0 {
        let d = *p;
        if !d.is_ascii_digit() || digits > 6 {
            return None;
        }
        n = n * 10 + (d - b'0') as usize;
        digits += 1;
        p = p.add(1);
    }
    (digits > 0).then_some(n)
}

#[no_mangle]
unsafe extern "C" fn dmz_main(sp: *const usize) -> ! {
    let argc = *sp;
    let argv = sp.add(1) as *const *const u8;
    let envp = argv.add(argc + 1);
    // Anything but minc's exact call (e.g. this stub run as a script's interpreter) stops here.
    if argc < 4 {
        exit(127);
    }
    let Some(errfd) = parse_fd(*argv.add(1)) else {
        exit(127);
    };
    const F_SETFD: usize = 2;
    const FD_CLOEXEC: usize = 1;
    syscall3(nr::FCNTL, errfd, F_SETFD, FD_CLOEXEC);
    let path = *argv.add(2);
    let ret = syscall3(nr::EXECVE, path as usize, argv.add(3) as usize, envp as usize);
    // Only reached when execve failed: report the errno as the typed message minc expects,
    // in one write (the peer is a SOCK_SEQPACKET socket: one write, one message).
    let mut out = [0u8; 64];
    let head = b"{\"ExecFailed\":{\"errno\":";
    out[..head.len()].copy_from_slice(head);
    let mut n = head.len();
    let mut digits = [0u8; 20];
    let mut k = digits.len();
    let mut e = (-ret) as usize;
    loop {
        k -= 1;
        digits[k] = b'0' + (e % 10) as u8;
        e /= 10;
        if e == 0 {
            break;
        }
    }
    for &d in &digits[k..] {
        out[n] = d;
        n += 1;
    }
    out[n] = b'}';
    out[n + 1] = b'}';
    syscall3(nr::WRITE, errfd, out.as_ptr() as usize, n + 2);
    exit(127)
}

// What the compiler may call for the byte copies above; there is no libc to provide them.
// Volatile accesses keep LLVM from turning these loops back into calls to themselves.
#[no_mangle]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        core::ptr::write_volatile(dst.add(i), core::ptr::read_volatile(src.add(i)));
    }
    dst
}

#[no_mangle]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        core::ptr::write_volatile(dst.add(i), c as u8);
    }
    dst
}

/// libcore refers to the unwinder's personality routine; with panic=abort it is never called.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(127)
}
