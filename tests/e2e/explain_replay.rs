//! `--explain` must be a runnable transcript: the runtime part of `minc --explain run -b` is
//! replayed with `sh` (unshare, mount, mknod, pivot_root, setpriv, ...), and the process it
//! ends in must see exactly what the process minc started saw: mounts, hostname,
//! capabilities, limits, identity, environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use minc_tests::{stderr, stdout, Bundle};
use serde_json::json;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// What the container's process reports about itself.
const PROBE: &str = r#"
echo "== pid"; echo $$; cat /proc/self/uid_map
echo "== mountinfo"; cat /proc/self/mountinfo
echo "== hostname"; hostname
echo "== status"; grep -E '^(Cap|NoNewPrivs|Uid|Gid|Groups|Seccomp)' /proc/self/status
echo "== limits"; grep -E '^Max open files' /proc/self/limits
echo "== cwd"; pwd
echo "== env"; env | sort
echo "== sysctl"; cat /proc/sys/net/ipv4/ip_forward
echo "== write-root"; touch /probe-write 2>&1 | sed 's/.*: //'
"#;

/// Copies a dynamically linked host program and the libraries it needs into the rootfs, at
/// the same paths (the replay runs it after pivot_root).
fn install_host_program(rootfs: &Path, program: &str) {
    let out = minc_tests::run("ldd", &[program]);
    let mut files = vec![program.to_string()];
    for line in out.lines() {
        let path = line
            .split("=>")
            .last()
            .and_then(|p| p.split_whitespace().next())
            .unwrap_or("");
        if path.starts_with('/') {
            files.push(path.to_string());
        }
    }
    for f in files {
        let dest = rootfs.join(f.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
}

/// The transcript in a --explain stderr: `+ ` starts a step; other lines continue the step
/// before them (heredoc bodies).
fn transcript(stderr: &str) -> String {
    let mut out = String::new();
    let mut in_step = false;
    for line in stderr.lines() {
        if let Some(step) = line.strip_prefix("+ ") {
            in_step = true;
            out.push_str(step);
            out.push('\n');
        } else if in_step {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// One mountinfo line without what differs between two identical mounts (ids, device
/// numbers, peer group numbers).
fn normalize_mount(line: &str) -> String {
    let (left, right) = line.split_once(" - ").unwrap_or((line, ""));
    let f: Vec<&str> = left.split(' ').collect();
    let optional: Vec<String> = f[6..]
        .iter()
        .map(|o| o.split(':').next().unwrap_or("").to_string())
        .collect();
    format!(
        "{} {} {} [{}] - {right}",
        f[3],
        f[4],
        f[5],
        optional.join(",")
    )
}

fn sections(report: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in report.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            current = name.to_string();
            out.entry(current.clone()).or_default();
        } else if current == "mountinfo" {
            out.get_mut(&current).unwrap().push(normalize_mount(line));
        } else if !current.is_empty() {
            out.get_mut(&current).unwrap().push(line.to_string());
        }
    }
    out
}

/// Runs the bundle with `--explain`, replays the transcript, compares the two reports.
fn run_and_replay(edit: impl FnOnce(&mut serde_json::Value), owner: Option<&str>) {
    let b = Bundle::new(MINC, PROBE);
    install_host_program(&b.rootfs(), "/usr/bin/setpriv");
    std::fs::create_dir(b.dir.join("data")).unwrap();
    if let Some(owner) = owner {
        // The rootfs (and the bind-mounted data) belong to the container's mapped range.
        for dir in [b.rootfs(), b.dir.join("data")] {
            minc_tests::run("chown", &["-R", "-h", owner, dir.to_str().unwrap()]);
        }
    }
    b.edit(|c| {
        c["hostname"] = json!("replayed");
        c["root"]["readonly"] = json!(true);
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = json!(["PATH=/bin:/usr/bin", "GREETING=it's a test"]);
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1000}]);
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro", "nosuid"]}));
    });
    b.edit(edit);

    let first = b.minc(&["--explain", "run", "-b", &b.bundle_arg(), "c1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let script = transcript(&stderr(&first));
    // The runtime's own steps (the cgroup) come first, then the init's `unshare ... sh` line.
    let at = script
        .find("\nunshare ")
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no unshare line in:\n{script}"));
    let (before, script) = script.split_at(at);
    let script = script.to_string();
    b.assert_no_state();

    // Replay: the first line (`unshare ... -- sh`) is the container's init; the shell it
    // starts reads the rest of the transcript on its stdin, inside the new namespaces.
    let (init_line, rest) = script.split_once('\n').unwrap();
    // One shell runs the runtime's steps and then the init's line, as a user would paste
    // them: the cgroup it joins is the one the init inherits.
    let init_line = format!("{before}{init_line}");
    let rest_file = b.dir.join("transcript-rest.sh");
    std::fs::write(&rest_file, rest).unwrap();
    let hostname_before = minc_tests::run("hostname", &[]);
    let replay = Command::new("sh")
        .arg("-c")
        .arg(&init_line)
        .stdin(std::fs::File::open(&rest_file).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        minc_tests::run("hostname", &[]),
        hostname_before,
        "the replay escaped its namespaces"
    );
    let (want, got) = (sections(&stdout(&first)), sections(&stdout(&replay)));
    assert!(
        want.contains_key("mountinfo") && want["mountinfo"].len() > 10,
        "{want:#?}"
    );
    for (name, lines) in &want {
        assert_eq!(
            got.get(name),
            Some(lines),
            "the replay differs in {name:?}\ntranscript:\n{script}\nreplay stderr:\n{}",
            stderr(&replay)
        );
    }
    assert_eq!(want.len(), got.len());
}

#[test]
fn runtime_transcript_replays_to_the_same_container() {
    minc_tests::sandbox!();
    run_and_replay(|_| {}, None);
}

#[test]
fn runtime_transcript_replays_a_non_root_process_with_ambient_caps() {
    minc_tests::sandbox!();
    run_and_replay(
        |c| {
            c["root"]["readonly"] = json!(false);
            c["process"]["user"] = json!({"uid": 1000, "gid": 100, "additionalGids": [10, 20]});
            c["process"]["noNewPrivileges"] = json!(false);
            let caps = json!(["CAP_NET_BIND_SERVICE", "CAP_KILL"]);
            c["process"]["capabilities"] = json!({
                "bounding": caps, "permitted": caps, "effective": caps,
                "inheritable": ["CAP_NET_BIND_SERVICE"], "ambient": ["CAP_NET_BIND_SERVICE", "CAP_KILL"]
            });
            c["linux"]["maskedPaths"] = json!(["/proc/kcore", "/proc/scsi"]);
            c["linux"]["rootfsPropagation"] = json!("private");
        },
        None,
    );
}

#[test]
fn runtime_transcript_replays_a_user_namespaced_container() {
    minc_tests::sandbox!();
    // unshare(1) maps ranges through newuidmap/newgidmap, which want root's /etc/subuid entry.
    let _etc = minc_tests::sub_ids("root:100000:65536\n", "root:100000:65536\n");
    run_and_replay(
        |c| {
            c["root"]["readonly"] = json!(false);
            minc_tests::user_namespace(c, 100_000);
        },
        Some("100000:100000"),
    );
}
