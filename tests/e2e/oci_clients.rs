//! minc as the runtime of real OCI clients: Podman (`podman --runtime minc`, through conmon)
//! and containerd (`ctr`, through the `io.containerd.runc.v2` shim whose BinaryName is minc).
//! Terminals through a pty the test holds (`run -it`, `exec -it`, `ctr run -t`, `ctr task
//! exec -t`), exec's exit codes, and the descriptors the container's process holds under the
//! client, read from outside. Each client keeps its state in temp dirs inside the test's
//! sandbox; images are imported locally (no registry).

use std::time::{Duration, Instant};

use minc_tests::containerd::Containerd;
use minc_tests::podman::Podman;
use minc_tests::pty::PtySession;
use minc_tests::stderr;

const MINC: &str = env!("CARGO_BIN_EXE_minc");
const PROMPT: &str = "/ # ";

fn rootfs() -> tempfile::TempDir {
    let dir = minc_tests::tempdir();
    minc_tests::busybox_rootfs(dir.path());
    dir
}

/// An interactive shell on a pty: arithmetic, the window size, the terminal's name, then
/// `exit CODE`; the client must come back with that code.
fn shell(cmd: &mut std::process::Command, tag: &str, code: i32) -> String {
    let mut t = PtySession::spawn(cmd, 33, 101);
    t.expect(PROMPT, 30);
    t.send(&format!("stty size; tty; echo {tag}-$((6*7))\r"));
    t.expect(&format!("{tag}-42"), 15);
    t.send(&format!("exit {code}\r"));
    let status = t.wait(30);
    assert_eq!(status.code(), Some(code), "terminal showed {:?}", t.output);
    assert!(t.output.contains("33 101"), "{:?}", t.output);
    assert!(t.output.contains("/dev/pts/"), "{:?}", t.output);
    std::mem::take(&mut t.output)
}

/// The PID a client reports for a container, once it has one.
fn wait_pid(mut get: impl FnMut() -> Option<i32>) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = get().filter(|p| *p > 0) {
            return pid;
        }
        assert!(Instant::now() < deadline, "the container never got a PID");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn podman_runs_and_execs_through_minc() {
    minc_tests::sandbox!();
    let p = Podman::new(MINC.as_ref());
    let rf = rootfs();
    p.import(rf.path(), "localhost/bb");
    let out = p.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/bb",
        "sh",
        "-c",
        "echo hi; exit 0",
    ]);
    assert_eq!(out, "hi\n");
    let out = minc_tests::output_via_files(&mut p.cmd(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/bb",
        "sh",
        "-c",
        "exit 7",
    ]));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    // run -it through a pty.
    shell(
        &mut p.cmd(&[
            "run",
            "-it",
            "--rm",
            "--network",
            "none",
            "localhost/bb",
            "sh",
        ]),
        "podman",
        3,
    );
    // exec, exec -it, and the descriptors the container's process holds.
    p.ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "--network",
        "none",
        "localhost/bb",
        "sleep",
        "1000",
    ]);
    assert_eq!(
        p.ok(&["exec", "p1", "sh", "-c", "echo exec-ok"]),
        "exec-ok\n"
    );
    let out = minc_tests::output_via_files(&mut p.cmd(&["exec", "p1", "sh", "-c", "exit 5"]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    shell(&mut p.cmd(&["exec", "-it", "p1", "sh"]), "podman-exec", 4);
    let pid = wait_pid(|| {
        p.ok(&["inspect", "--format", "{{.State.Pid}}", "p1"])
            .trim()
            .parse()
            .ok()
    });
    assert_eq!(minc_tests::open_fds(pid), "0 1 2 ", "under conmon");
    p.ok(&["rm", "--force", "--time", "0", "p1"]);
}

#[test]
fn containerd_runs_and_execs_through_minc() {
    minc_tests::sandbox!();
    let c = Containerd::start(MINC.as_ref());
    let rf = rootfs();
    let image = "docker.io/library/bb:latest";
    c.import(rf.path(), image, &["sh"]);
    let out =
        minc_tests::ok_via_files(&mut c.run(&["--rm"], &[image, "t0", "sh", "-c", "echo hi"]));
    assert_eq!(out, "hi\n", "{}", c.log());
    // ctr run -t: the shim gets the terminal over the console socket.
    shell(&mut c.run(&["-t", "--rm"], &[image, "t1", "sh"]), "ctr", 3);
    // A running task: exec -t, exec's exit code, the descriptors its processes hold.
    minc_tests::ok_via_files(&mut c.run(&["-d"], &[image, "t2", "sleep", "1000"]));
    shell(
        &mut c.ctr(&["task", "exec", "-t", "--exec-id", "e1", "t2", "sh"]),
        "ctr-exec",
        4,
    );
    let out = minc_tests::output_via_files(&mut c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e2",
        "t2",
        "sh",
        "-c",
        "exit 5",
    ]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let pid = wait_pid(|| {
        let list = minc_tests::ok_via_files(&mut c.ctr(&["task", "ls"]));
        list.lines()
            .find(|l| l.starts_with("t2 "))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
    });
    assert_eq!(minc_tests::open_fds(pid), "0 1 2 ", "under the shim");
    // Stop and remove: kill, then the shim's delete (which minc must finish).
    minc_tests::ok_via_files(&mut c.ctr(&["task", "kill", "-s", "KILL", "t2"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !minc_tests::ok_via_files(&mut c.ctr(&["task", "ls"])).contains("STOPPED") {
        assert!(Instant::now() < deadline, "t2 never stopped: {}", c.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    minc_tests::ok_via_files(&mut c.ctr(&["task", "rm", "t2"]));
    minc_tests::ok_via_files(&mut c.ctr(&["containers", "rm", "t2"]));
    let left = minc_tests::ok_via_files(&mut c.ctr(&["containers", "ls", "-q"]));
    assert_eq!(left, "", "containers left");
}
