//! End-to-end tests of the runtime spec as written (issue 11): mount options minc does not
//! know, a container created without a process, user namespaces joined by path with other
//! namespaces created in them, and idmapped mounts. Each test runs in its own sandbox
//! (`minc_tests::sandbox`).

use minc_tests::{stderr, stdout, Bundle};
use serde_json::json;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

fn bundle(script: &str) -> Bundle {
    Bundle::new(MINC, script)
}

#[test]
fn mount_options_are_known_or_named() {
    if !minc_tests::sandbox("mount_options_are_known_or_named") {
        return;
    }
    // Filesystem data on a bind mount (as runtime-tools' `mounts` program sends) is ignored
    // with a warning that names it; the mount is made.
    let b = bundle("grep ' /mnt ' /proc/self/mountinfo | cut -d' ' -f4,5");
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt", "type": "none", "source": "/etc",
            "options": ["rbind", "nosuid", "mode=755", "size=1k"]}))
    });
    let out = b.run("m1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "/etc /mnt\n");
    assert!(
        stderr(&out).contains("mount /mnt: ignoring mode=755,size=1k"),
        "{}",
        stderr(&out)
    );

    // A word minc does not know on a bind mount: refused by `create`, naming it and the
    // mount, before anything is made.
    b.edit(|c| {
        c["mounts"].as_array_mut().unwrap().last_mut().unwrap()["options"] =
            json!(["rbind", "rnosiud"])
    });
    let out = b.run("m2");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("mounts: /mnt: unknown mount option \"rnosiud\""),
        "{err}"
    );
    b.assert_no_state();

    // A filesystem's own options go to the kernel, which checks each: the one it refuses is
    // named with the filesystem's words for it.
    for (opt, why) in [
        ("bogus", "Unknown parameter 'bogus'"),
        ("size=lots", "Bad value for 'size'"),
    ] {
        b.edit(|c| {
            *c["mounts"].as_array_mut().unwrap().last_mut().unwrap() = json!({
                "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "mode=700", opt]})
        });
        let out = b.run("m3");
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("tmpfs does not take option \"{opt}\"")) && err.contains(why),
            "{err}"
        );
        b.assert_no_state();
    }

    // The generic options runc knows are minc's too (here nosymfollow and lazytime).
    b.edit(|c| {
        *c["mounts"].as_array_mut().unwrap().last_mut().unwrap() = json!({
            "destination": "/mnt", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosymfollow", "lazytime", "size=1m"]})
    });
    b.edit(|c| c["process"]["args"] = json!(["sh", "-c", "grep ' /mnt ' /proc/self/mountinfo"]));
    let out = b.run("m4");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("nosymfollow"), "{}", stdout(&out));
}

#[test]
fn a_container_without_a_process_is_created_and_start_fails() {
    if !minc_tests::sandbox("a_container_without_a_process_is_created_and_start_fails") {
        return;
    }
    // The spec: `process` is optional for create; start MUST generate an error without it.
    let b = bundle("true");
    b.edit(|c| {
        c.as_object_mut().unwrap().remove("process");
        c["hostname"] = json!("noproc");
    });
    b.create("np");
    assert_eq!(b.status("np"), "created");
    let pid = b.state("np")["pid"].as_i64().unwrap();
    let uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_ne!(uts, std::fs::read_link("/proc/self/ns/uts").unwrap());
    let out = b.minc(&["start", "np"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("config.json has no process: there is nothing to start"),
        "{}",
        stderr(&out)
    );
    b.wait_status("np", "stopped");
    b.ok(&["delete", "np"]);
    b.assert_no_state();
}
