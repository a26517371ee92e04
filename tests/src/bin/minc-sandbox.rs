//! `minc-sandbox NAME [--timeout SECS] -- PROGRAM [ARGS...]`: runs a program in a throwaway
//! sandbox, the same one every end-to-end test runs in (`minc_tests::sandboxed`): its own
//! network, mount, PID, UTS and IPC namespaces, and a cgroup subtree of its own
//! (`minc-test-PID-NAME`, behind a cgroup namespace) that is removed afterwards. For scripts
//! that drive other runtimes, such as `tests/conformance/run.sh`. Exits with the program's
//! exit code.

use std::os::unix::process::CommandExt;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if minc_tests::enter_sandbox().is_some() {
        // Inside: args are PROGRAM ARGS...
        let Some((program, rest)) = args.split_first() else {
            eprintln!("minc-sandbox: nothing to run");
            std::process::exit(2);
        };
        let err = std::process::Command::new(program).args(rest).exec();
        eprintln!("minc-sandbox: {}: {err}", program.to_string_lossy());
        std::process::exit(127);
    }
    let usage = || -> ! {
        eprintln!("usage: minc-sandbox NAME [--timeout SECS] -- PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let mut it = args.iter();
    let Some(name) = it.next().and_then(|n| n.to_str()) else {
        usage()
    };
    let mut timeout = 300;
    loop {
        match it.next().and_then(|a| a.to_str()) {
            Some("--") => break,
            Some("--timeout") => {
                timeout = match it.next().and_then(|t| t.to_str()?.parse().ok()) {
                    Some(t) => t,
                    None => usage(),
                }
            }
            _ => usage(),
        }
    }
    let rest: Vec<_> = it.collect();
    if rest.is_empty() {
        usage();
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = minc_tests::sandboxed(name, timeout, exe.as_os_str(), rest);
    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("minc-sandbox: run unshare (util-linux): {e}");
            std::process::exit(127);
        }
    };
    drop(cmd);
    std::process::exit(status.code().unwrap_or(128 + 9));
}
