//! minc-monitor: the tiny process that stays behind a `minc run -d` container.
//!
//! It is the parent of the container's init, so it can reap it and learn its exit code. Then
//! it hands over to `minc __finish`, which records the exit and releases (or with `--rm`
//! removes) the container. Built with only std into a static binary (runtime/build.rs) and
//! embedded in minc, which runs it from memory: a few hundred kilobytes of RSS for as long as
//! the container lives.
//!
//! Usage: minc-monitor MINC ROOT DATA_ROOT ID PID

use std::os::unix::process::CommandExt;
use std::process::Command;

extern "C" {
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
}

const EINTR: i32 = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, minc, root, data_root, id, pid] = args.as_slice() else {
        eprintln!("usage: minc-monitor MINC ROOT DATA_ROOT ID PID");
        std::process::exit(2);
    };
    let pid: i32 = pid.parse().unwrap_or(-1);
    let mut status = 0;
    let code = loop {
        // SAFETY: waiting for our own child, the container's init.
        let r = unsafe { waitpid(pid, &mut status, 0) };
        if r == pid {
            break exit_code(status);
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(EINTR) {
            break 255;
        }
    };
    let err = Command::new(minc)
        .args(["__finish", root, data_root, id, &code.to_string()])
        .exec();
    eprintln!("minc-monitor: exec {minc}: {err}");
    std::process::exit(1);
}

/// A wait status as a shell exit code (128+N for a signal).
fn exit_code(status: i32) -> i32 {
    let sig = status & 0x7f;
    if sig == 0 {
        (status >> 8) & 0xff
    } else {
        128 + sig
    }
}
