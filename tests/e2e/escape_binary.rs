//! The CVE-2019-5736 class: a container must never get hold of the host's minc binary.
//!
//! The container replaces its /bin/sh with `#!/proc/self/exe`. When the admin runs
//! `minc exec C /bin/sh`, a runtime that execs the program itself makes the kernel resolve
//! /proc/self/exe in the runtime's own process: the host's binary then runs inside the
//! container, and a process there opens /proc/PID/exe and rewrites it once it stops
//! running. Every test here drives a *copy* of minc, so the binary the other tests use is
//! never at risk.

use std::path::Path;

use minc_tests::{stderr, Bundle};
use serde_json::json;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// The attacker, PID 1 of the container: plants the shebang, then for every new PID in its
/// namespace (/proc/sys/kernel/ns_last_pid, read without forking) opens /proc/PID/exe and,
/// if it got one, keeps trying to append to it (it is busy while something runs it).
const ATTACK: &str = r#"
printf '#!/proc/self/exe\n' > /bin/sh.evil && chmod 755 /bin/sh.evil && /bin/busybox mv -f /bin/sh.evil /bin/sh
echo ready > /ready
seen=0
while :; do
  read n < /proc/sys/kernel/ns_last_pid
  [ "$n" = "$seen" ] && continue
  seen=$n
  if command exec 3< /proc/$n/exe 2>/dev/null; then
    echo "opened $(/bin/busybox readlink /proc/self/fd/3)" >> /attack.log
    i=0
    while [ $i -lt 3000 ]; do
      if { echo PWNED >> /proc/self/fd/3; } 2>/dev/null; then
        echo WROTE >> /attack.log
        break
      fi
      i=$((i+1))
    done
    exec 3<&-
  fi
done
"#;

fn sha(path: &Path) -> String {
    minc_tests::run("sha256sum", &[path.to_str().unwrap()])
}

#[test]
fn exec_cannot_overwrite_the_runtime_binary() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    let copy = tmp.path().join("minc-copy");
    std::fs::copy(MINC, &copy).unwrap();
    let before = sha(&copy);

    let b = Bundle::new(&copy, ATTACK);
    b.edit(|c| {
        // Root in the container with Docker's default capabilities (DAC_OVERRIDE included).
        let caps = json!(images::capabilities::DEFAULT);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["process"]["capabilities"]["ambient"] = json!([]);
    });
    b.ok(&["create", "-b", &b.bundle_arg(), "victim"]);
    b.ok(&["start", "victim"]);
    let ready = b.rootfs().join("ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the attacker never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The admin execs a shell, a few times.
    for _ in 0..8 {
        let out = b.minc(&["exec", "victim", "/bin/sh"]);
        // The program is run by the sealed stub, which refuses to be a script interpreter.
        assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Give the attacker time to write once no minc process runs the binary any more.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let log = std::fs::read_to_string(b.rootfs().join("attack.log")).unwrap_or_default();
    b.ok(&["delete", "-f", "victim"]);

    assert_eq!(
        sha(&copy),
        before,
        "the host's minc binary was modified:\n{log}"
    );
    assert!(!log.contains("WROTE"), "{log}");
    // Whatever the attacker could open was the sealed stub or its own busybox, never minc.
    assert!(!log.contains("minc-copy"), "{log}");
}

#[test]
fn the_init_is_not_dumpable_before_it_runs_the_program() {
    minc_tests::sandbox!();
    let b = Bundle::new(MINC, "sleep 100");
    b.ok(&["create", "-b", &b.bundle_arg(), "c"]);
    // The init, a copy of minc, waits for start in the container: a process in the container
    // (exec'd with Docker's capabilities, no CAP_SYS_PTRACE) cannot open its exe.
    let out = b.minc(&[
        "exec",
        "c",
        "sh",
        "-c",
        "cat /proc/1/exe > /dev/null && echo OPENED; readlink /proc/1/exe || echo DENIED",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("DENIED") && !text.contains("OPENED"),
        "{text}{}",
        stderr(&out)
    );
    b.ok(&["delete", "-f", "c"]);
}
