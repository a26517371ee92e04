//! Helpers shared by minc's end-to-end tests: a throwaway "host" sandbox and a busybox rootfs.
//!
//! Tests run as root against the real kernel. Each test that touches networks or mounts runs
//! in its own sandbox: the test binary re-executes itself (just that one test) under
//! `unshare --net --mount --pid`, so links, routes, sysctls, nftables tables and mounts it makes
//! live in namespaces that vanish with it, and every process it leaves behind is killed when
//! the sandbox's PID 1 exits — even when the test fails.

mod bundle;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use bundle::{mounts_under, stderr, stdout, stray_processes, Bundle};

const SANDBOX_ENV: &str = "MINC_TEST_SANDBOX";

/// Enters the sandbox for the test `name` (its full path as libtest prints it, e.g.
/// `lifecycle::run_exit_code`). Returns `true` inside the sandbox, where the test body runs;
/// returns `false` in the outer process once the inner run has passed (it panics if it failed).
///
/// ```ignore
/// #[test]
/// fn attach_and_detach() {
///     if !minc_tests::sandbox("attach_and_detach") { return; }
///     // ... runs in its own network, mount and PID namespaces ...
/// }
/// ```
pub fn sandbox(name: &str) -> bool {
    if std::env::var(SANDBOX_ENV).as_deref() == Ok(name) {
        prepare_inside();
        return true;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // `timeout` bounds a hung test; the PID namespace kills whatever it left running.
    let out = Command::new("timeout")
        .args([
            "--kill-after=10",
            "300",
            "unshare",
            "--net",
            "--uts",
            "--ipc",
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--",
        ])
        .arg(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(SANDBOX_ENV, name)
        .output()
        .expect("run unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "sandboxed test {name} failed: {}",
        out.status
    );
    // libtest exits 0 when the filter matched nothing: make sure the body really ran.
    assert!(
        stdout.contains("1 passed"),
        "sandboxed test {name} did not run (wrong name?)"
    );
    false
}

/// Inside the sandbox: loopback up, and private /run/netns and /etc/netns so `ip netns add`
/// and per-netns resolv.conf files stay inside the test.
fn prepare_inside() {
    run("ip", &["link", "set", "lo", "up"]);
    for dir in ["/run/netns", "/etc/netns", "/run/minc", "/var/lib/minc"] {
        std::fs::create_dir_all(dir).ok();
        run("mount", &["-t", "tmpfs", "-o", "mode=0755", "tmpfs", dir]);
    }
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Builds a minimal busybox rootfs at `root`: /bin/busybox plus one symlink per applet, and
/// the empty directories a container expects (proc, sys, dev, tmp, etc).
pub fn busybox_rootfs(root: &Path) {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in [
        "proc", "sys", "dev", "tmp", "etc", "root", "usr/bin", "sbin",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, bin.join("busybox")).expect("busybox-static is installed");
    let list = run(BUSYBOX, &["--list"]);
    for applet in list.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

/// A fresh temporary directory that is removed when dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("minc-test-")
        .tempdir()
        .unwrap()
}

/// Path of a binary built by this workspace (`minc`, `netsetup`, `echo-server`), next to the
/// test executable's `deps/` directory.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap()
    } else {
        dir
    };
    dir.join(name)
}

/// Runs a command to completion with its stdout and stderr going through temporary files
/// instead of pipes: a created or detached container inherits them and would otherwise
/// hold a pipe open long after the command returned.
pub fn output_via_files(cmd: &mut Command) -> std::process::Output {
    use std::io::{Read, Seek};
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let status = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let read = |mut f: std::fs::File| {
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    std::process::Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

/// Like `output_via_files` for a command that must succeed; returns its stdout.
pub fn ok_via_files(cmd: &mut Command) -> String {
    let out = output_via_files(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
