//! runc's exit codes and messages for each verb's error cases, against minc's, side by side
//! in the same sandbox: the table in the README ("Running under Kubernetes"), checked.
//!
//! What matters is what clients match on: containerd's runc shim treats a `kill` error that
//! contains "container not running", "no such process" or "does not exist" as "already
//! gone", and a `delete` error with "does not exist" as done; Podman derives exec's 126/127
//! from "executable file not found in" / "permission denied" in the runtime's message; both
//! rely on `kill --all` of a stopped container and `delete --force` of a missing one exiting
//! 0, and both read the message from `--log` (JSON). The wording around those substrings
//! may differ (minc names the container); the substrings and the exit codes may not, except
//! exec's, where runc exits 255 for every failure and minc keeps 126/127 (and 1), which no
//! client reads (see the README's table).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minc_tests::{output_via_files, Bundle};

const MINC: &str = env!("CARGO_BIN_EXE_minc");

struct Runtime {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
}

impl Runtime {
    fn call(&self, args: &[&str]) -> (i32, String) {
        let out = output_via_files(
            std::process::Command::new(&self.bin)
                .arg("--root")
                .arg(&self.root)
                .args(args),
        );
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn status(&self, id: &str) -> String {
        let out = output_via_files(
            std::process::Command::new(&self.bin)
                .arg("--root")
                .arg(&self.root)
                .args(["state", id]),
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"].as_str().unwrap_or_default().to_string()
    }
}

/// One row: runc's exit code, minc's, and the words a client matches in both messages.
fn row(rts: &[Runtime; 2], args: &[&str], runc_code: i32, minc_code: i32, words: Option<&str>) {
    for (rt, want) in rts.iter().zip([runc_code, minc_code]) {
        let (code, err) = rt.call(args);
        assert_eq!(
            code, want,
            "{} {args:?}: exit {code}, stderr {err:?}",
            rt.name
        );
        if let Some(w) = words {
            assert!(err.contains(w), "{} {args:?}: {err:?} lacks {w:?}", rt.name);
        }
    }
}

fn wait_stopped(rt: &Runtime, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.status(id) != "stopped" {
        assert!(Instant::now() < deadline, "{}: {id} never stopped", rt.name);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn runc() -> PathBuf {
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("runc is installed (Debian's runc, a dependency of containerd)")
}

#[test]
fn errors_match_runc() {
    minc_tests::sandbox!();
    let b = Bundle::new(MINC, "sleep 1000");
    b.edit(|c| c["process"]["terminal"] = serde_json::json!(false));
    let tmp = minc_tests::tempdir();
    let rts = [
        Runtime {
            name: "runc",
            bin: runc(),
            root: tmp.path().join("runc"),
        },
        Runtime {
            name: "minc",
            bin: MINC.into(),
            root: tmp.path().join("minc"),
        },
    ];
    let bundle = b.bundle_arg();
    let gone = Some("does not exist");

    // A container that does not exist.
    for args in [
        &["state", "nosuch"][..],
        &["kill", "nosuch", "9"],
        &["kill", "--all", "nosuch", "KILL"],
        &["delete", "nosuch"],
        &["start", "nosuch"],
        &["pause", "nosuch"],
        &["resume", "nosuch"],
        &["ps", "nosuch"],
        &["events", "--stats", "nosuch"],
        &["update", "--pids-limit", "10", "nosuch"],
    ] {
        row(&rts, args, 1, 1, gone);
    }
    row(&rts, &["delete", "--force", "nosuch"], 0, 0, None);
    row(&rts, &["exec", "nosuch", "true"], 255, 1, gone);

    // The message reaches --log as JSON, where containerd's shim reads it.
    for rt in &rts {
        let log = tmp.path().join(format!("{}.log", rt.name));
        let l = log.to_str().unwrap();
        let (code, _) = rt.call(&["--log", l, "--log-format", "json", "kill", "nosuch", "9"]);
        assert_eq!(code, 1);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last: serde_json::Value =
            serde_json::from_str(text.lines().last().unwrap_or("{}")).unwrap();
        assert_eq!(last["level"], "error", "{}: {text}", rt.name);
        assert!(
            last["msg"]
                .as_str()
                .unwrap_or("")
                .contains("does not exist"),
            "{}: {text}",
            rt.name
        );
    }

    // Created.
    for rt in &rts {
        let (code, err) = rt.call(&["create", "-b", &bundle, "c1"]);
        assert_eq!(code, 0, "{} create: {err}", rt.name);
    }
    row(
        &rts,
        &["create", "-b", &bundle, "c1"],
        1,
        1,
        Some("already exists"),
    );
    row(&rts, &["kill", "c1", "0"], 0, 0, None);
    row(&rts, &["kill", "c1", "FOO"], 1, 1, Some("unknown signal"));

    // Running.
    row(&rts, &["start", "c1"], 0, 0, None);
    row(&rts, &["start", "c1"], 1, 1, Some("running"));
    row(&rts, &["delete", "c1"], 1, 1, Some("running"));
    row(&rts, &["resume", "c1"], 1, 1, Some("not paused"));
    row(&rts, &["exec", "c1", "sh", "-c", "exit 3"], 3, 3, None);
    row(
        &rts,
        &["exec", "c1", "no-such-program"],
        255,
        127,
        Some("executable file not found in $PATH"),
    );
    row(&rts, &["kill", "c1", "KILL"], 0, 0, None);
    for rt in &rts {
        wait_stopped(rt, "c1");
    }

    // Stopped: what containerd's shim sends when it stops a task (kill, then kill --all).
    row(
        &rts,
        &["kill", "c1", "9"],
        1,
        1,
        Some("container not running"),
    );
    row(
        &rts,
        &["kill", "c1", "0"],
        1,
        1,
        Some("container not running"),
    );
    row(&rts, &["kill", "--all", "c1", "9"], 0, 0, None);
    row(
        &rts,
        &["exec", "c1", "true"],
        255,
        1,
        Some("cannot exec in a stopped container"),
    );
    row(&rts, &["start", "c1"], 1, 1, Some("stopped"));
    row(&rts, &["pause", "c1"], 1, 1, None);
    row(
        &rts,
        &["events", "--stats", "c1"],
        1,
        1,
        Some("is not running"),
    );
    row(&rts, &["delete", "c1"], 0, 0, None);
    row(&rts, &["delete", "c1"], 1, 1, gone);
    row(&rts, &["delete", "--force", "c1"], 0, 0, None);
    for rt in &rts {
        assert_no_containers(&rt.root);
    }
}

fn assert_no_containers(root: &Path) {
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{}: {left:?}", root.display());
}
