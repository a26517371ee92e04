//! End-to-end tests of terminals and exec: real ptys held by the test (the test is the person
//! at the terminal), runc's console-socket protocol with a receiver in the test, runc's exec
//! flags, the Docker-like `run -it`, `exec -it`, `attach` and detach keys, and what a
//! container must never reach: the caller's terminal (TIOCSTI) and descriptors it was not
//! given. Each test runs in its own sandbox (network, mount and PID namespaces).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use minc_tests::console::ConsoleSocket;
use minc_tests::docker_face::DockerFace;
use minc_tests::pty::{modes, same_modes, PtySession};
use minc_tests::{stderr, Bundle};
use serde_json::{json, Value};

const MINC: &str = env!("CARGO_BIN_EXE_minc");
const PROMPT: &str = "/ # ";

fn docker() -> DockerFace {
    let d = DockerFace::new(MINC);
    d.busybox_image(&[]);
    d
}

/// Types a shell line and waits for `want` in the output.
fn say(t: &mut PtySession, line: &str, want: &str) {
    t.send(&format!("{line}\r"));
    t.expect(want, 15);
}

/// The shell session every interactive test goes through, `cmd` on a 33x101 pty the test
/// holds: arithmetic, the window size and a resize, Ctrl-C reaching the container as a
/// character (it interrupts `sleep`, not minc), then `exit 3`; and afterwards the caller's
/// terminal in the mode it was in (raw mode undone).
fn shell_session(cmd: &mut Command) {
    let mut t = PtySession::spawn(cmd, 33, 101);
    let before = modes(t.slave_fd());
    let t = &mut t;
    t.expect(PROMPT, 15);
    say(t, "echo $((6*7))", "42\r\n");
    say(t, "stty size", "33 101\r\n");
    t.resize(40, 120);
    say(t, "stty size", "40 120\r\n");
    say(t, "tty", "/dev/pts/");
    t.send("sleep 30\r");
    std::thread::sleep(Duration::from_millis(300));
    t.send("\x03");
    t.expect("^C", 10);
    say(t, "echo after-$((1+1))", "after-2\r\n");
    t.send("exit 3\r");
    let status = t.wait(20);
    assert_eq!(status.code(), Some(3), "terminal showed {:?}", t.output);
    assert!(
        same_modes(&before, &modes(t.slave_fd())),
        "terminal modes not restored"
    );
}

#[test]
fn run_it_is_a_shell_on_a_pty_of_its_own() {
    minc_tests::sandbox!();
    let d = docker();
    shell_session(&mut d.cmd(&["run", "-it", "--rm", "--network", "none", "busybox", "sh"]));
    assert_eq!(d.containers_left(), 0, "--rm left the container");
}

/// A bundle whose process is an interactive `sh` with `process.terminal`.
fn terminal_bundle() -> Bundle {
    let b = Bundle::new(MINC, "true");
    b.edit(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh"]);
    });
    b
}

#[test]
fn runc_run_relays_a_terminal_bundle() {
    minc_tests::sandbox!();
    let b = terminal_bundle();
    shell_session(&mut b.cmd(&["run", "-b", &b.bundle_arg(), "tty1"]));
    b.assert_no_state();

    // A terminal cannot be created detached without somewhere to send it.
    let out = b.minc(&["create", "-b", &b.bundle_arg(), "nosock"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--console-socket"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    b.assert_no_state();
    // A console socket nobody listens on: a clear error, nothing left behind.
    let missing = b.dir.join("nobody.sock");
    let out = b.minc(&[
        "create",
        "-b",
        &b.bundle_arg(),
        "--console-socket",
        missing.to_str().unwrap(),
        "badsock",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nobody.sock"), "{}", stderr(&out));
    b.assert_no_state();
    assert!(minc_tests::stray_processes().is_empty());
}

/// Reads from a pty master until `want` shows up (bounded).
fn read_until(master: &OwnedFd, want: &str, secs: u64) -> String {
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    while !seen.contains(want) {
        assert!(Instant::now() < deadline, "no {want:?}; saw {seen:?}");
        let mut pfd = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, then a read into our buffer.
        unsafe {
            if libc::poll(&mut pfd, 1, 100) > 0 {
                let n = libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
                if n > 0 {
                    seen.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
                }
            }
        }
    }
    seen
}

fn write_str(master: &OwnedFd, s: &str) {
    // SAFETY: writing our buffer to the master.
    let n = unsafe { libc::write(master.as_raw_fd(), s.as_ptr().cast(), s.len()) };
    assert_eq!(n, s.len() as isize);
}

#[test]
fn console_socket_hands_over_a_working_master() {
    minc_tests::sandbox!();
    let b = terminal_bundle();
    b.edit(|c| c["process"]["consoleSize"] = json!({"height": 24, "width": 77}));
    let sock = ConsoleSocket::bind(&b.dir.join("console.sock"));
    // create sends the master while it runs, before start (as runc does).
    b.ok(&[
        "create",
        "-b",
        &b.bundle_arg(),
        "--console-socket",
        sock.path.to_str().unwrap(),
        "cs1",
    ]);
    let (master, name) = sock.receive(10);
    assert_eq!(name, b"/dev/ptmx");
    assert_eq!(b.status("cs1"), "created");
    b.ok(&["start", "cs1"]);
    write_str(&master, "stty size; tty; echo hi-$((6*7))\r");
    let seen = read_until(&master, "hi-42", 10);
    assert!(seen.contains("24 77"), "consoleSize not applied: {seen:?}");
    assert!(seen.contains("/dev/pts/0"), "{seen:?}");
    // The pty is the controlling terminal, and /dev/console is the same terminal.
    write_str(
        &master,
        "ps -o pid,tty | grep -c pts/0; echo ctty >/dev/tty; echo console >/dev/console\r",
    );
    read_until(&master, "console\r\n", 10);
    write_str(&master, "exit 4\r");
    b.wait_status("cs1", "stopped");
    b.ok(&["delete", "cs1"]);

    // exec -t --detach --console-socket into a running container.
    b.edit(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["sleep", "1000"]);
    });
    b.ok(&["run", "-d", "-b", &b.bundle_arg(), "cs2"]);
    let sock2 = ConsoleSocket::bind(&b.dir.join("console2.sock"));
    let pid_file = b.dir.join("exec.pid");
    b.ok(&[
        "exec",
        "-t",
        "--detach",
        "--console-socket",
        sock2.path.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        "cs2",
        "sh",
    ]);
    let (master, _) = sock2.receive(10);
    write_str(&master, "tty; echo exec-$((6*7))\r");
    let seen = read_until(&master, "exec-42", 10);
    assert!(seen.contains("/dev/pts/"), "{seen:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    write_str(&master, "exit\r");
    minc_tests::reap(pid);
    b.ok(&["delete", "-f", "cs2"]);
    b.assert_no_state();
}

#[test]
fn exec_process_file_detach_and_pid_file() {
    minc_tests::sandbox!();
    let b = Bundle::new(MINC, "sleep 1000");
    b.ok(&["run", "-d", "-b", &b.bundle_arg(), "ex"]);
    // --process: the whole process from a file, as containerd's shim and conmon send it.
    let process = b.dir.join("process.json");
    std::fs::write(
        &process,
        json!({
            "terminal": false,
            "user": {"uid": 65534, "gid": 65534, "additionalGids": [7]},
            "args": ["sh", "-c", "id -u; id -G; pwd; echo $FOO; grep NoNewPrivs /proc/self/status; ulimit -n"],
            "env": ["PATH=/bin", "FOO=from-file"],
            "cwd": "/tmp",
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]
        })
        .to_string(),
    )
    .unwrap();
    let out = b.ok(&["exec", "--process", process.to_str().unwrap(), "ex"]);
    assert_eq!(
        out, "65534\n65534 7\n/tmp\nfrom-file\nNoNewPrivs:\t1\n256\n",
        "exec --process"
    );
    // The flags runc's exec takes, on config.json's process.
    let out = b.ok(&[
        "exec",
        "--user",
        "1000:1001",
        "--additional-gids",
        "20",
        "--cap",
        "CAP_NET_ADMIN",
        "--no-new-privs",
        "--cwd",
        "/tmp",
        "--env",
        "A=1",
        "ex",
        "sh",
        "-c",
        "id -u; id -g; id -G; grep -E '^CapBnd|NoNewPrivs' /proc/self/status; echo $A; pwd",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["1000", "1001", "1001 20"], "{out}");
    let bnd = lines[3].split_whitespace().nth(1).unwrap();
    assert_ne!(
        u64::from_str_radix(bnd, 16).unwrap() & (1 << 12),
        0,
        "{out}"
    );
    assert_eq!(lines[4..], ["NoNewPrivs:\t1", "1", "/tmp"], "{out}");

    // --detach returns while the process still runs; --pid-file names it.
    let pid_file = b.dir.join("exec.pid");
    b.ok(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "ex",
        "sh",
        "-c",
        "while [ ! -e /go ]; do sleep 0.02; done; echo done > /done",
    ]);
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("while [ ! -e /go ]"),
        "the pid file names another process"
    );
    assert!(!b.rootfs().join("done").exists());
    std::fs::write(b.rootfs().join("go"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.rootfs().join("done").exists() {
        assert!(
            Instant::now() < deadline,
            "the detached process never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    minc_tests::reap(pid);

    // Bad input: one line, exit 1 (127 for a missing program, as runc).
    for (args, want) in [
        (
            vec!["exec", "--apparmor", "p", "ex", "true"],
            "not supported",
        ),
        (
            vec!["exec", "--process-label", "l", "ex", "true"],
            "not supported",
        ),
        (
            vec!["exec", "--process", process.to_str().unwrap(), "ex", "ls"],
            "cannot be combined",
        ),
        (
            vec!["exec", "-t", "--detach", "ex", "sh"],
            "--console-socket",
        ),
        (vec!["exec", "--user", "root", "ex", "true"], "UID[:GID]"),
        (
            vec!["exec", "--cap", "CAP_BOGUS", "ex", "true"],
            "unknown capability",
        ),
        (vec!["exec", "ex"], "no command"),
    ] {
        let out = b.minc(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    b.ok(&["delete", "-f", "ex"]);
    b.assert_no_state();
}

/// Spawns `cmd` with descriptors a sloppy client leaks (the read end of a pipe, not
/// close-on-exec, at fd 7; and at 3 too when `at3`) that nothing asked to pass on.
fn spawn_leaking(cmd: &mut Command, at3: bool) -> std::process::Child {
    let mut p = [0; 2];
    // SAFETY: valid out array; close-on-exec here, dup2 below makes inheritable copies.
    assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let fd = p[0];
    // SAFETY: dup2 and fcntl in the child between fork and exec (fcntl: dup2 onto itself
    // would keep close-on-exec).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            for target in [Some(7), at3.then_some(3)].into_iter().flatten() {
                if libc::dup2(fd, target) < 0 || libc::fcntl(target, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SAFETY: closing the pipe we made (the child has its copies).
    unsafe {
        libc::close(p[0]);
        libc::close(p[1]);
    }
    child
}

#[test]
fn no_descriptor_leaks_into_the_container() {
    minc_tests::sandbox!();
    // The container's process is `sleep`: the descriptors it holds are exactly what minc
    // gave it, read from outside in /proc/PID/fd.
    let b = Bundle::new(MINC, "true");
    b.edit(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let pid_of = |id: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = b.minc(&["state", id]);
            if out.status.success() {
                let state: Value = serde_json::from_slice(&out.stdout).unwrap();
                if state["status"] == "running" {
                    return state["pid"].as_i64().unwrap() as i32;
                }
            }
            assert!(Instant::now() < deadline, "{id} never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // run (foreground), run --preserve-fds 1, create + start.
    let mut run = spawn_leaking(&mut b.cmd(&["run", "-b", &b.bundle_arg(), "fd1"]), false);
    assert_eq!(minc_tests::open_fds(pid_of("fd1")), "0 1 2 ", "run");
    let cmd = &mut b.cmd(&["run", "--preserve-fds", "1", "-b", &b.bundle_arg(), "fd2"]);
    let mut run2 = spawn_leaking(cmd, true);
    assert_eq!(
        minc_tests::open_fds(pid_of("fd2")),
        "0 1 2 3 ",
        "run --preserve-fds 1"
    );
    let mut create = spawn_leaking(&mut b.cmd(&["create", "-b", &b.bundle_arg(), "fd3"]), false);
    assert!(create.wait().unwrap().success());
    b.ok(&["start", "fd3"]);
    assert_eq!(
        minc_tests::open_fds(pid_of("fd3")),
        "0 1 2 ",
        "create + start"
    );
    // exec: in the foreground (the process is the exec command's child), and detached.
    let mut exec = spawn_leaking(&mut b.cmd(&["exec", "fd3", "sleep", "1000"]), false);
    let pid = minc_tests::child_of(exec.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .starts_with(b"sleep")
    {
        assert!(Instant::now() < deadline, "exec never ran sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(minc_tests::open_fds(pid), "0 1 2 ", "exec");
    let pid_file = b.dir.join("exec.pid");
    let cmd = &mut b.cmd(&[
        "exec",
        "-d",
        "--preserve-fds",
        "1",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "fd3",
        "sleep",
        "1000",
    ]);
    assert!(spawn_leaking(cmd, true).wait().unwrap().success());
    let detached: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(
        minc_tests::open_fds(detached),
        "0 1 2 3 ",
        "exec -d --preserve-fds 1"
    );
    // SAFETY: killing the detached process, which this test (the sandbox's PID 1) inherited.
    unsafe { libc::kill(detached, libc::SIGKILL) };
    minc_tests::reap(detached);
    for id in ["fd1", "fd2", "fd3"] {
        b.ok(&["delete", "-f", id]);
    }
    for c in [&mut run, &mut run2, &mut exec] {
        let _ = c.wait();
    }
    b.assert_no_state();
}

/// Not a test on its own: run inside a container (the test binary is static), it tries to
/// push keystrokes into whatever terminal its stdin, stdout, stderr or /dev/tty are.
#[test]
fn tiocsti_helper() {
    if std::env::var("MINC_TIOCSTI_HELPER").is_err() {
        return;
    }
    let mut report = String::new();
    let try_fd = |fd: i32| {
        let c = b'X';
        // SAFETY: TIOCSTI with a pointer to one byte.
        let r = unsafe { libc::ioctl(fd, libc::TIOCSTI, &c) };
        if r == 0 {
            "injected".to_string()
        } else {
            std::io::Error::last_os_error().to_string()
        }
    };
    for fd in 0..3 {
        report.push_str(&format!("fd{fd}: {}\n", try_fd(fd)));
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(f) => report.push_str(&format!("/dev/tty: {}\n", try_fd(f.as_raw_fd()))),
        Err(e) => report.push_str(&format!("/dev/tty: {e}\n")),
    }
    print!("{report}");
}

#[test]
fn a_container_cannot_type_into_the_callers_terminal() {
    minc_tests::sandbox!();
    let d = DockerFace::new(MINC);
    let me = std::env::current_exe().unwrap();
    d.busybox_image(&[("/tiocsti", &me)]);
    for interactive in [false, true] {
        // The caller's terminal: a pty the test holds, minc's stdio and controlling terminal.
        let (master, slave) = minc_tests::pty::openpty(24, 80);
        let mut args = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "-e",
            "MINC_TIOCSTI_HELPER=1",
        ];
        if interactive {
            args.push("-i");
        }
        args.extend([
            "busybox",
            "/tiocsti",
            "--exact",
            "tiocsti_helper",
            "--nocapture",
        ]);
        let mut cmd = d.cmd(&args);
        minc_tests::pty::on_terminal(&mut cmd, &slave);
        let status = cmd.status().unwrap();
        assert!(status.success());
        // What the container printed came out on the terminal...
        let mut out = String::new();
        let mut buf = [0u8; 4096];
        // SAFETY: fcntl/read on our master.
        unsafe {
            let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
            loop {
                let n = libc::read(master.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
                if n <= 0 {
                    break;
                }
                out.push_str(&String::from_utf8_lossy(&buf[..n as usize]));
            }
        }
        assert!(
            out.contains("fd1:"),
            "no report from the container: {out:?}"
        );
        assert!(!out.contains("injected"), "-i {interactive}: {out}");
        // ...and nothing was pushed into its input queue for the caller's shell to run.
        let mut queued = 0i32;
        // SAFETY: FIONREAD on the slave with a valid out-pointer.
        unsafe { libc::ioctl(slave.as_raw_fd(), libc::FIONREAD, &mut queued) };
        assert_eq!(
            queued, 0,
            "-i {interactive}: input injected into the caller's terminal"
        );
    }
    assert_eq!(d.containers_left(), 0);
}

#[test]
fn exec_it_by_name_and_prefix_and_attach_with_detach_keys() {
    minc_tests::sandbox!();
    let d = docker();
    let id = d
        .ok(&[
            "run",
            "-d",
            "-it",
            "--name",
            "web",
            "--network",
            "none",
            "busybox",
            "sh",
        ])
        .trim()
        .to_string();
    // exec -it by name, then by a unique id prefix.
    for key in ["web", &id[..6]] {
        let mut t = PtySession::spawn(&mut d.cmd(&["exec", "-it", key, "sh"]), 33, 101);
        t.expect(PROMPT, 15);
        say(
            &mut t,
            "echo exec-$((6*7)); stty size; tty",
            "exec-42\r\n33 101\r\n/dev/pts/",
        );
        t.send("exit 5\r");
        assert_eq!(t.wait(20).code(), Some(5), "{:?}", t.output);
    }
    // -u takes a name of the image's users; -w and -e as Docker's.
    let out = d.ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "K=v",
        "web",
        "sh",
        "-c",
        "id -u; pwd; echo $K",
    ]);
    assert_eq!(out, "65534\n/tmp\nv\n");
    // exec without -i reads nothing from us; exec -d returns at once.
    let out = d.ok(&["exec", "web", "sh", "-c", "cat; echo read-nothing"]);
    assert_eq!(out, "read-nothing\n");
    let pid_file = d.dir.join("exec.pid");
    d.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "web",
        "sh",
        "-c",
        "echo detached > /detached",
    ]);
    minc_tests::reap(std::fs::read_to_string(&pid_file).unwrap().parse().unwrap());

    // attach, detach with Ctrl-P Ctrl-Q, the container runs on.
    let mut t = PtySession::spawn(&mut d.cmd(&["attach", "web"]), 30, 90);
    say(&mut t, "echo att-$((6*7))", "att-42\r\n");
    say(&mut t, "stty size", "30 90\r\n");
    t.send("\x10\x11");
    assert_eq!(t.wait(20).code(), Some(0), "{:?}", t.output);
    assert!(
        d.ok(&["ps"]).contains("Up "),
        "detaching stopped the container"
    );
    // Attach again; the container's exit ends the attachment with its code.
    let mut t = PtySession::spawn(&mut d.cmd(&["attach", &id[..8]]), 30, 90);
    say(&mut t, "cat /detached", "detached\r\n");
    t.send("exit 6\r");
    assert_eq!(t.wait(20).code(), Some(6), "{:?}", t.output);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["ps", "-a"]).contains("Exited (6)") {
        assert!(Instant::now() < deadline, "exit never recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The log has the terminal's output.
    assert!(d.ok(&["logs", "web"]).contains("att-42"));
    d.ok(&["rm", "web"]);

    // A foreground run -it can be detached from too, and attached to again.
    let mut t = PtySession::spawn(
        &mut d.cmd(&[
            "run",
            "-it",
            "--rm",
            "--name",
            "fg",
            "--network",
            "none",
            "busybox",
            "sh",
        ]),
        33,
        101,
    );
    say(&mut t, "echo fg-$((6*7))", "fg-42\r\n");
    t.send("\x10\x11");
    assert_eq!(t.wait(20).code(), Some(0), "{:?}", t.output);
    let mut t = PtySession::spawn(&mut d.cmd(&["attach", "fg"]), 33, 101);
    t.send("exit 9\r");
    assert_eq!(t.wait(20).code(), Some(9), "{:?}", t.output);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.containers_left() > 0 {
        assert!(
            Instant::now() < deadline,
            "--rm after attach left the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Attach to a container without a terminal: a clear error.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--network",
        "none",
        "busybox",
        "sleep",
        "100",
    ]);
    let out = d.minc(&["attach", "plain"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no terminal"), "{}", stderr(&out));
    d.ok(&["rm", "-f", "plain"]);
}

#[test]
fn ambiguous_prefixes_list_their_matches() {
    minc_tests::sandbox!();
    let d = docker();
    // Start containers until two ids share a first digit (at most 17: pigeonhole).
    let mut ids: Vec<String> = Vec::new();
    let pair = loop {
        let id = d
            .ok(&["run", "-d", "--network", "none", "busybox", "sleep", "100"])
            .trim()
            .to_string();
        if let Some(other) = ids.iter().find(|o| o[..1] == id[..1]) {
            break (other.clone(), id);
        }
        ids.push(id);
        assert!(ids.len() <= 16);
    };
    let out = d.minc(&["exec", &pair.0[..1], "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("ambiguous"), "{err}");
    assert!(
        err.contains(&pair.0[..12]) && err.contains(&pair.1[..12]),
        "{err}"
    );
    // The runc verbs resolve names too (and never by prefix for bundle containers).
    assert_eq!(
        d.inspect(&pair.1[..10])["Id"],
        Value::String(pair.1.clone())
    );
    let state: Value = serde_json::from_str(&d.ok(&["state", &pair.1[..10]])).unwrap();
    assert_eq!(state["id"], Value::String(pair.1.clone()));
    for id in ids.iter().chain([&pair.1]) {
        d.ok(&["rm", "-f", id]);
    }
    assert_eq!(d.containers_left(), 0);
}

#[test]
fn client_details_delete_missing_features_and_log() {
    minc_tests::sandbox!();
    let b = Bundle::new(MINC, "true");
    // delete --force of a container that does not exist: exit 0, as runc and crun.
    let out = b.minc(&["delete", "--force", "nosuch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.minc(&["delete", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"));
    // Concurrent deletes (a foreground run finishing while clients delete --force): all
    // succeed, whoever gets there first.
    b.edit(|c| c["process"]["args"] = json!(["sleep", "1000"]));
    let mut run = b
        .cmd(&["run", "-b", &b.bundle_arg(), "racy"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.minc(&["state", "racy"]).status.success() {
        assert!(Instant::now() < deadline, "racy never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let deleters: Vec<_> = (0..3)
        .map(|_| {
            b.cmd(&["delete", "--force", "racy"])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for d in deleters {
        let out = d.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(run.wait().unwrap().code(), Some(137));
    b.assert_no_state();
    b.edit(|c| c["process"]["args"] = json!(["sh", "-c", "true"]));
    // run --keep leaves the stopped container for the client to inspect and delete.
    let out = b.minc(&["run", "--keep", "-b", &b.bundle_arg(), "kept"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status("kept"), "stopped");
    b.ok(&["delete", "kept"]);
    let out = b.minc(&[
        "run",
        "--pidfd-socket",
        "/x",
        "-b",
        &b.bundle_arg(),
        "pidfd",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not supported"), "{}", stderr(&out));
    b.assert_no_state();
    // features: runc 1.1+'s JSON.
    let f: Value = serde_json::from_str(&b.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(f["hooks"].as_array().unwrap().contains(&json!("poststop")));
    assert!(f["mountOptions"]
        .as_array()
        .unwrap()
        .contains(&json!("rbind")));
    let ns = f["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.contains(&json!("pid")) && ns.contains(&json!("user")));
    // --log: every verb's failure is in the log, as JSON with --log-format json.
    let log = b.dir.join("log.json");
    let d = DockerFace::new(MINC);
    for args in [
        vec!["state", "nosuch"],
        vec!["start", "nosuch"],
        vec!["kill", "nosuch"],
        vec!["delete", "nosuch"],
        vec!["ps", "nosuch"],
        vec!["exec", "nosuch", "true"],
        vec!["create", "-b", "/nonexistent", "x"],
        vec!["run", "-b", "/nonexistent", "x"],
        vec!["logs", "nosuch"],
        vec!["stop", "nosuch"],
        vec!["rm", "nosuch"],
        vec!["inspect", "nosuch"],
        vec!["attach", "nosuch"],
        vec!["image", "rm", "nosuch"],
        vec!["exec", "--frobnicate", "x"],
    ] {
        let _ = std::fs::remove_file(&log);
        let mut full = vec!["--log", log.to_str().unwrap(), "--log-format", "json"];
        full.extend(&args);
        let out = d.minc(&full);
        assert!(!out.status.success(), "{args:?}");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let line: Value = serde_json::from_str(text.lines().last().unwrap_or("{}"))
            .unwrap_or_else(|_| panic!("{args:?}: log is not JSON: {text:?}"));
        assert_eq!(line["level"], "error", "{args:?}: {text}");
        let first = stderr(&out);
        let msg = line["msg"].as_str().unwrap();
        assert!(
            first.contains(msg),
            "{args:?}: log {msg:?} vs stderr {first:?}"
        );
    }
}

#[test]
fn explain_renders_the_terminal_steps() {
    minc_tests::sandbox!();
    let b = terminal_bundle();
    b.edit(|c| {
        c["process"]["args"] = json!(["true"]);
        c["process"]["user"] = json!({"uid": 65534, "gid": 65534});
    });
    let mut t = PtySession::spawn(
        &mut b.cmd(&["--explain", "run", "-b", &b.bundle_arg(), "ex1"]),
        30,
        90,
    );
    assert!(t.wait(20).success(), "{:?}", t.output);
    let text = t.output.replace("\r\n", "\n");
    for step in [
        " --fork -- setsid sh ",
        "+ # setsid(2): a session of its own",
        "+ # open /dev/pts/ptmx: a new pty pair whose slave is /dev/pts/0",
        "+ stty -F /dev/pts/0 rows 30 cols 90\n",
        "+ touch /dev/console\n",
        "+ mount --bind /dev/pts/0 /dev/console\n",
        "+ # ioctl(TIOCSCTTY): /dev/pts/0 becomes the controlling terminal",
        "+ chown 65534 /dev/pts/0\n",
        " -- env -i PATH=",
        " /bin/true </dev/pts/0 >/dev/pts/0 2>&1 ",
    ] {
        assert!(text.contains(step), "missing {step:?} in:\n{text}");
    }
}
