//! Helpers shared by minc's end-to-end tests: a throwaway "host" sandbox and a busybox rootfs.
//!
//! Tests run as root against the real kernel. Each test that touches networks or mounts runs
//! in its own sandbox: the test binary re-executes itself (just that one test) under
//! `unshare --net --mount --pid`, so links, routes, sysctls, nftables tables and mounts it makes
//! live in namespaces that vanish with it, and every process it leaves behind is killed when
//! the sandbox's PID 1 exits — even when the test fails.
//!
//! Cgroups too: the sandbox runs in a cgroup of its own, `minc-test-PID-NAME` (below the test
//! runner's cgroup in every hierarchy), inside a cgroup namespace rooted there, with the
//! cgroup filesystems mounted again in its mount namespace. So every cgroup a test (or minc,
//! or Podman) makes lands in that subtree, whatever path it asks for, and the subtree is
//! removed when the sandbox ends, even when the test failed.

mod bundle;
pub mod console;
pub mod containerd;
pub mod docker_face;
pub mod image;
pub mod net;
pub mod podman;
pub mod pty;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::Command;

pub use bundle::{
    bad_input_error, child_of, mounts_under, open_fds, reap, stderr, stdout, stray_processes,
    user_namespace, Bundle,
};

/// The environment variable that names the sandbox a process runs in.
pub const SANDBOX_ENV: &str = "MINC_TEST_SANDBOX";

/// At the top of a test: the rest of the test runs in a sandbox of its own (see
/// [`sandbox()`]), named for the test it stands in, so the name cannot drift from the
/// function's. In the outer process it returns from the test once the sandboxed run has
/// passed (and panics if it failed or did not run).
///
/// ```ignore
/// #[test]
/// fn attach_and_detach() {
///     minc_tests::sandbox!();
///     // ... runs in its own network, mount and PID namespaces ...
/// }
/// ```
#[macro_export]
macro_rules! sandbox {
    () => {
        if !$crate::sandbox($crate::test_name({
            fn here() {}
            ::std::any::type_name_of_val(&here)
        })) {
            return;
        }
    };
}

/// The name libtest gives the test whose nested `fn here` has the type name `here` (e.g.
/// `netsetup::daemon::tests::probe::here` is the test `daemon::tests::probe`). For
/// [`sandbox!`].
#[doc(hidden)]
pub fn test_name(here: &'static str) -> &'static str {
    let path = here
        .strip_suffix("::here")
        .unwrap_or_else(|| panic!("{here}: not a test's `here`"));
    path.split_once("::").map_or(path, |(_, test)| test)
}

/// Enters the sandbox for the test `name` (its full path as libtest prints it, e.g.
/// `lifecycle::run_exit_code`). Returns `true` inside the sandbox, where the test body runs;
/// returns `false` in the outer process once the inner run has passed (it panics if it failed).
/// Tests call it through [`sandbox!`].
pub fn sandbox(name: &str) -> bool {
    if std::env::var(SANDBOX_ENV).as_deref() == Ok(name) {
        prepare_inside();
        return true;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = sandboxed(
        name,
        300,
        exe.as_os_str(),
        ["--exact", name, "--nocapture", "--test-threads=1"],
    );
    let out = cmd.output().expect("run unshare (util-linux)");
    drop(cmd); // removes the cgroup subtree
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

/// A command that runs `program args` in a sandbox of its own named `name` (as a test's:
/// network, mount, PID, UTS and IPC namespaces, and a cgroup subtree with a cgroup namespace
/// rooted there), killed after `timeout_secs`. `program` must call [`enter_sandbox`] first
/// when it finds itself inside (the environment variable [`SANDBOX_ENV`] is `name`). The
/// cgroup subtree is removed when the returned value is dropped.
pub fn sandboxed<I, S>(
    name: &str,
    timeout_secs: u32,
    program: &std::ffi::OsStr,
    args: I,
) -> SandboxCommand
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let cgroups = TestCgroups::new(name);
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(cgroups.enter_script())
        .arg("sh")
        .args(["timeout", "--kill-after=10"])
        .arg(timeout_secs.to_string())
        .args([
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
        .arg(program)
        .args(args)
        .env(SANDBOX_ENV, name);
    SandboxCommand { cmd, cgroups }
}

/// A sandboxed command (see [`sandboxed`]); derefs to its [`Command`].
pub struct SandboxCommand {
    cmd: Command,
    cgroups: TestCgroups,
}

impl std::ops::Deref for SandboxCommand {
    type Target = Command;
    fn deref(&self) -> &Command {
        &self.cmd
    }
}

impl std::ops::DerefMut for SandboxCommand {
    fn deref_mut(&mut self) -> &mut Command {
        &mut self.cmd
    }
}

impl Drop for SandboxCommand {
    fn drop(&mut self) {
        self.cgroups.remove();
    }
}

/// Inside a sandbox made by [`sandboxed`]: the name it was given, after preparing it (cgroup
/// filesystems mounted again, loopback up, private /run/netns, /etc/netns, /run/minc and
/// /var/lib/minc). `None` outside a sandbox.
pub fn enter_sandbox() -> Option<String> {
    let name = std::env::var(SANDBOX_ENV).ok()?;
    prepare_inside();
    Some(name)
}

/// Inside the sandbox: loopback up, and private /run/netns and /etc/netns so `ip netns add`
/// and per-netns resolv.conf files stay inside the test.
fn prepare_inside() {
    TestCgroups::remount();
    // A test that fails while one of its containers is paused would leave frozen tasks,
    // which cannot die: the sandbox's PID 1 would wait for them forever. Thaw on panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        thaw_all(Path::new("/sys/fs/cgroup"), 0);
        default_hook(info);
    }));
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

/// Gives this sandbox its own `/etc/subuid` and `/etc/subgid` (the ranges newuidmap, newgidmap
/// and `minc run --userns` read), on an overlay of `/etc` that only the sandbox's mount
/// namespace sees. The overlay's directories live as long as the returned value.
pub fn sub_ids(subuid: &str, subgid: &str) -> tempfile::TempDir {
    let etc = tempdir();
    let (upper, work) = (etc.path().join("upper"), etc.path().join("work"));
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let opts = format!(
        "lowerdir=/etc,upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    run("mount", &["-t", "overlay", "-o", &opts, "overlay", "/etc"]);
    std::fs::write("/etc/subuid", subuid).unwrap();
    std::fs::write("/etc/subgid", subgid).unwrap();
    etc
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

/// Runs a command to completion with `input` as its whole stdin (then end of file) and its
/// stdout and stderr captured. For commands that start nothing that outlives them (a piped
/// output would stay open with it: see [`output_via_files`]).
pub fn output_with_stdin(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    // A command that exits without reading all of it is the caller's to judge by its status.
    let _ = stdin.write_all(input);
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Every file below `dir` that is not a directory (regular files, links, sockets, ...),
/// recursively, without following symlinks; none when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            } else {
                files.push(e.path());
            }
        }
    }
    files
}

/// The sandbox's own cgroup subtree (see the crate docs).
struct TestCgroups {
    /// The subtree's directory in every hierarchy.
    dirs: Vec<PathBuf>,
}

/// v1 controllers (the other words of a cgroup mount's options are options).
const CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The cgroup mounts of this process: (mountpoint, fstype, controllers).
fn cgroup_mounts() -> Vec<(PathBuf, String, Vec<String>)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<(PathBuf, String, Vec<String>)> = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mountpoint = PathBuf::from(left.split(' ').nth(4).unwrap_or_default());
        let mut r = right.split(' ');
        let (fstype, _, opts) = (r.next().unwrap_or(""), r.next(), r.next().unwrap_or(""));
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let ctrls: Vec<String> = opts
            .split(',')
            .filter(|o| o.starts_with("name=") || CONTROLLERS.contains(o))
            .map(String::from)
            .collect();
        if !out.iter().any(|m| m.1 == fstype && m.2 == ctrls) {
            out.push((mountpoint, fstype.to_string(), ctrls));
        }
    }
    out
}

impl TestCgroups {
    fn new(name: &str) -> TestCgroups {
        let leaf: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let leaf = format!("minc-test-{}-{leaf}", std::process::id());
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut dirs = Vec::new();
        for (mountpoint, fstype, ctrls) in cgroup_mounts() {
            // Below our own cgroup of that hierarchy ("0::" is v2's line).
            let mine = own.lines().find_map(|l| {
                let mut p = l.splitn(3, ':');
                let (_, c, path) = (p.next()?, p.next()?, p.next()?);
                let c: Vec<&str> = c.split(',').filter(|x| !x.is_empty()).collect();
                let same = if fstype == "cgroup2" {
                    c.is_empty()
                } else {
                    ctrls.iter().all(|x| c.contains(&x.as_str())) && !c.is_empty()
                };
                same.then(|| path.to_string())
            });
            let dir = mountpoint
                .join(mine.unwrap_or_default().trim_start_matches('/'))
                .join(&leaf);
            std::fs::create_dir_all(dir.join("sandbox"))
                .unwrap_or_else(|e| panic!("make the test cgroup {}: {e}", dir.display()));
            // A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
            for d in [dir.clone(), dir.join("sandbox")] {
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    let own = std::fs::read_to_string(d.join(f)).unwrap_or_default();
                    if !fstype.is_empty() && own.trim().is_empty() && d.join(f).exists() {
                        let parent = std::fs::read_to_string(d.parent().unwrap().join(f))
                            .unwrap_or_default();
                        let _ = std::fs::write(d.join(f), parent.trim());
                    }
                }
            }
            if fstype == "cgroup2" && mountpoint == Path::new("/sys/fs/cgroup") {
                // Pure v2: let the sandbox's cgroups have every controller.
                let avail =
                    std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
                let plus: Vec<String> = avail.split_whitespace().map(|c| format!("+{c}")).collect();
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), plus.join(" "));
            }
            dirs.push(dir);
        }
        TestCgroups { dirs }
    }

    /// A shell script that moves itself into the subtree, makes a cgroup namespace rooted
    /// there, moves into its `sandbox` leaf (v2: only leaves hold processes), then execs
    /// its arguments.
    fn enter_script(&self) -> String {
        let procs = |sub: &str| {
            self.dirs
                .iter()
                .map(|d| format!("echo $$ > '{}/cgroup.procs'", d.join(sub).display()))
                .collect::<Vec<_>>()
                .join(" && ")
        };
        let top = procs("");
        let leaf = procs("sandbox").replace('\'', "'\\''");
        if self.dirs.is_empty() {
            return "exec \"$@\"".into();
        }
        format!("{top} && exec unshare --cgroup sh -c '{leaf} && exec \"$@\"' sh \"$@\"")
    }

    /// Inside the sandbox: mount the cgroup filesystems again, so they show the cgroup
    /// namespace (the subtree) as their root.
    fn remount() {
        // mount(2) directly: mount(8) refuses a hierarchy that is "already mounted".
        let mount = |fstype: &str, data: &str, target: &Path| {
            let c = |v: &str| std::ffi::CString::new(v).unwrap();
            let (src, ty, d, t) = (c("cgroup"), c(fstype), c(data), c(target.to_str().unwrap()));
            // SAFETY: valid C strings.
            let r =
                unsafe { libc::mount(src.as_ptr(), t.as_ptr(), ty.as_ptr(), 0, d.as_ptr().cast()) };
            assert_eq!(
                r,
                0,
                "mount {fstype} {data} on {}: {}",
                target.display(),
                std::io::Error::last_os_error()
            );
        };
        // On a fresh tmpfs: the kernel refuses a filesystem mounted on top of itself.
        let top = Path::new("/sys/fs/cgroup");
        let links: Vec<(PathBuf, PathBuf)> = std::fs::read_dir(top)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| Some((e.path(), std::fs::read_link(e.path()).ok()?)))
                    .collect()
            })
            .unwrap_or_default();
        let mounts = cgroup_mounts();
        run(
            "mount",
            &["-t", "tmpfs", "-o", "mode=755", "tmpfs", "/sys/fs/cgroup"],
        );
        for (link, target) in links {
            std::os::unix::fs::symlink(target, link).unwrap();
        }
        for (mountpoint, fstype, ctrls) in &mounts {
            if !mountpoint.starts_with(top) {
                continue;
            }
            std::fs::create_dir_all(mountpoint).unwrap();
            if fstype == "cgroup2" {
                mount("cgroup2", "", mountpoint);
            } else if ctrls.iter().all(|c| c.starts_with("name=")) {
                mount("cgroup", &format!("none,{}", ctrls.join(",")), mountpoint);
            } else {
                mount("cgroup", &ctrls.join(","), mountpoint);
            }
        }
    }

    /// Removes the subtree, deepest first, killing anything still in it.
    fn remove(&self) {
        for dir in &self.dirs {
            let mut all = Vec::new();
            collect_dirs(dir, &mut all);
            all.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            let depth = dir.components().count();
            // Containers' own cgroups (two levels or more below the subtree's root).
            let leftover: Vec<_> = all
                .iter()
                .filter(|d| d.components().count() >= depth + 2 && !d.ends_with("sandbox"))
                .collect();
            if !leftover.is_empty() {
                eprintln!("note: cgroups left by the test: {leftover:?}");
            }
            // A test that failed while its container was paused leaves frozen tasks, which
            // cannot die: thaw everything first.
            for d in &all {
                let _ = std::fs::write(d.join("freezer.state"), "THAWED");
                let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            }
            for d in &all {
                for _ in 0..500 {
                    let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                        // SAFETY: plain kill(2) of a process left in the test's own cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    match std::fs::remove_dir(d) {
                        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                            std::thread::sleep(std::time::Duration::from_millis(10))
                        }
                        _ => break,
                    }
                }
            }
        }
    }
}

/// Thaws every cgroup below `dir` (v1 freezer.state, v2 cgroup.freeze).
fn thaw_all(dir: &Path, depth: usize) {
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
    if depth > 12 {
        return;
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            thaw_all(&e.path(), depth + 1);
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
        out.push(dir.to_path_buf());
    }
}
