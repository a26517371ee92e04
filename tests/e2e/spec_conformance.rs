//! End-to-end tests of the runtime spec as written (issue 11): mount options minc does not
//! know, a container created without a process, user namespaces joined by path with other
//! namespaces created in them, and idmapped mounts. Each test runs in its own sandbox
//! (`minc_tests::sandbox`).

use minc_tests::{bad_input_error, stderr, stdout, Bundle};
use serde_json::json;

const MINC: &str = env!("CARGO_BIN_EXE_minc");

fn bundle(script: &str) -> Bundle {
    Bundle::new(MINC, script)
}

#[test]
fn mount_options_are_known_or_named() {
    minc_tests::sandbox!();
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
    let err = bad_input_error(&out);
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
    minc_tests::sandbox!();
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

/// A process holding a new user namespace that maps container ids 0-65535 to host ids
/// 100000-165535 (written by this test, as root may). Killed when dropped.
struct UserNs(std::process::Child);

impl UserNs {
    fn new() -> UserNs {
        let child = std::process::Command::new("unshare")
            .args(["--user", "sleep", "1000"])
            .spawn()
            .unwrap();
        let pid = child.id();
        // Wait until unshare has exec'd sleep in its new namespace.
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap() == own
            || !std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap()
                .starts_with("sleep")
        {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for f in ["uid_map", "gid_map"] {
            std::fs::write(format!("/proc/{pid}/{f}"), "0 100000 65536\n").unwrap();
        }
        UserNs(child)
    }

    fn path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The inode of the user namespace that owns the namespace at `path` (ioctl NS_GET_USERNS).
fn owner_of(path: &str) -> u64 {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::File::open(path).unwrap();
    // SAFETY: ioctl on an open namespace fd; it returns a new fd.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), 0xb701) }; // NS_GET_USERNS
    assert!(
        fd >= 0,
        "NS_GET_USERNS {path}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a fresh fd.
    let owner = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    owner.metadata().unwrap().ino()
}

#[test]
fn a_joined_user_namespace_owns_the_namespaces_created_with_it() {
    minc_tests::sandbox!();
    use std::os::unix::fs::MetadataExt;
    let userns = UserNs::new();
    let b = bundle("id -u; cat /proc/self/uid_map; touch /tmp/made-inside");
    b.chown_rootfs("100000:100000");
    let path = userns.path();
    b.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user", "path": path}));
        c["hostname"] = json!("joined");
    });
    b.create("uj");
    let pid = b.state("uj")["pid"].as_i64().unwrap();
    let joined = std::fs::metadata(&path).unwrap().ino();
    assert_eq!(
        std::fs::metadata(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .ino(),
        joined,
        "the init is in the joined user namespace"
    );
    for ns in ["pid", "mnt", "uts", "ipc", "net"] {
        assert_eq!(
            owner_of(&format!("/proc/{pid}/ns/{ns}")),
            joined,
            "the new {ns} namespace belongs to the joined user namespace"
        );
    }
    // The init is still create's child's business: `start` runs it, `state` follows it.
    b.ok(&["start", "uj"]);
    b.wait_status("uj", "stopped");
    let made = std::fs::metadata(b.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (100_000, 100_000));
    b.ok(&["delete", "uj"]);

    // Foreground run: minc waits for an init cloned by its intermediate process.
    let out = b.run("uj2");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("0\n"), "{text}");
    assert_eq!(
        text.lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    b.assert_no_state();

    // A user namespace path that is not one: one line naming it, nothing left.
    b.edit(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.last_mut().unwrap()["path"] = json!("/proc/self/ns/net");
    });
    let out = b.run("uj3");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("user namespace"), "{}", stderr(&out));
    b.assert_no_state();
}

#[test]
fn idmapped_mounts_translate_owners() {
    minc_tests::sandbox!();
    use std::os::unix::fs::MetadataExt;
    // A host directory owned by host root, given to a container whose root is host 100000.
    let data = minc_tests::tempdir();
    std::fs::write(data.path().join("f"), "hi").unwrap();
    std::fs::create_dir(data.path().join("sub")).unwrap();
    let src = data.path().to_str().unwrap().to_string();
    let b =
        bundle("ls -ln /data/f /plain/f /own/f | awk '{print $3\":\"$4\" \"$NF}'; touch /data/new");
    b.map_root_to(100_000);
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        // idmap: the container's own mappings; the mount's own mappings; and a plain bind.
        m.push(json!({"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "idmap"]}));
        m.push(json!({"destination": "/own", "type": "bind", "source": src, "options": ["bind", "ridmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100007, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 100007, "size": 1}]}));
        m.push(json!({"destination": "/plain", "type": "bind", "source": src, "options": ["rbind"]}));
    });
    let out = b.run("i1");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "0:0 /data/f\n7:7 /own/f\n65534:65534 /plain/f\n",
        "root's file is the container root's through idmap, host 100007's (container 7) through the mount's mappings, nobody's without"
    );
    // What the container makes through the idmapped mount is host root's on disk.
    let new = std::fs::metadata(data.path().join("new")).unwrap();
    assert_eq!((new.uid(), new.gid()), (0, 0));

    // Explained as mount(8) writes it (util-linux 2.39's X-mount.idmap).
    let out = b.minc(&["--explain", "run", "-b", &b.bundle_arg(), "i2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("mount --rbind -o 'X-mount.idmap=u:0:100000:65536 g:0:100000:65536' "),
        "{}",
        stderr(&out)
    );

    // A filesystem that cannot be idmapped (procfs): one line naming the mount.
    b.edit(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.last_mut().unwrap()["source"] = json!("/proc");
        m.last_mut().unwrap()["options"] = json!(["bind", "idmap"]);
    });
    let out = b.run("i3");
    let err = bad_input_error(&out);
    assert!(
        err.contains("mounts: /plain: idmap the mount of /proc"),
        "{err}"
    );
    b.assert_no_state();

    // idmap without mappings in a container without a user namespace, and idmap on a
    // filesystem mount: refused at create.
    let b = bundle("true");
    for (m, want) in [
        (
            json!({"destination": "/x", "type": "bind", "source": src, "options": ["bind", "idmap"]}),
            "has none",
        ),
        (
            json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
            "are bind mounts",
        ),
    ] {
        b.edit(|c| c["mounts"].as_array_mut().unwrap().push(m.clone()));
        let out = b.run("i4");
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        b.edit(|c| {
            c["mounts"].as_array_mut().unwrap().pop();
        });
    }
    b.assert_no_state();
}

#[test]
fn run_userns_remaps_root_and_shows_the_image_through_idmapped_layers() {
    minc_tests::sandbox!();
    use std::os::unix::fs::MetadataExt;
    let _etc = minc_tests::sub_ids(
        "root:300000:65536\nminc:200000:65536\n",
        "minc:200000:65536\n",
    );

    let d = minc_tests::docker_face::DockerFace::new(MINC);
    d.busybox_image(&[]);
    let script =
        "id -u; cat /proc/self/uid_map; stat -c %u:%g /bin/busybox; touch /tmp/x && echo wrote";
    let out = d.minc(&[
        "run",
        "--name",
        "r1",
        "--network",
        "none",
        "--userns",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "root inside: {text}");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"],
        "minc's range from /etc/subuid"
    );
    assert_eq!(
        lines[2], "0:0",
        "the image's files are root's inside: {text}"
    );
    assert_eq!(lines[3], "wrote");
    d.ok(&["rm", "r1"]);
    // On the host, what a running container writes belongs to the remapped root, its
    // layers are idmapped mounts, and the image layers are as they were (host root's).
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "r2",
            "--network",
            "none",
            "--userns",
            "busybox",
            "sh",
            "-c",
            "touch /tmp/x; sleep 100",
        ])
        .trim()
        .to_string();
    let x = d.data.join("containers").join(&id).join("upper/tmp/x");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !x.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            x.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let m = std::fs::metadata(&x).unwrap();
    assert_eq!((m.uid(), m.gid()), (200_000, 200_000));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounts.contains(&format!("{id}/idmapped/0")), "{mounts}");
    let mut layers = 0;
    for layer in std::fs::read_dir(d.data.join("layers")).unwrap().flatten() {
        let bb = layer.path().join("bin/busybox");
        if bb.exists() {
            assert_eq!(std::fs::metadata(bb).unwrap().uid(), 0);
            layers += 1;
        }
    }
    assert_eq!(layers, 1);
    d.ok(&["rm", "-f", "r2"]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains("/idmapped/"),
        "idmapped layers left mounted:\n{mounts}"
    );
    assert_eq!(d.containers_left(), 0);

    // --userns=host: the host's user namespace, as without the flag.
    let out = d.minc(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns=host",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    // No range for minc or root: one line saying what to add; nothing left behind.
    std::fs::write("/etc/subgid", "alice:100000:65536\n").unwrap();
    let out = d.minc(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns",
        "busybox",
        "true",
    ]);
    let err = bad_input_error(&out);
    assert!(
        err.contains("/etc/subgid has no range for minc or root"),
        "{err}"
    );
    assert_eq!(d.containers_left(), 0);
}
