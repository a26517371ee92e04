//! End-to-end tests of volumes, mounts and `minc cp` with the real minc binary: named
//! volumes that outlive their containers, `:ro`, host binds, `--read-only --tmpfs`, the
//! image's VOLUMEs copied up into anonymous volumes, and `cp` both ways, including through
//! symlinks that a hostile container planted.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use minc_tests::docker_face::DockerFace;
use minc_tests::registry::{busybox_layer, oci_layout, tar_files, PlatformImage};
use serde_json::{json, Value};

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// A host with the image `bb` (busybox) and `seeded` (busybox plus /data/seed and
/// `VOLUME /data` in its config).
fn host() -> DockerFace {
    let h = DockerFace::new(MINC);
    let bb = h.dir.join("bb-layout");
    oci_layout(
        &bb,
        "latest",
        &[PlatformImage {
            arch: "amd64",
            layers: vec![busybox_layer(&h.dir)],
            config: json!({}),
        }],
    );
    h.ok(&["image", "import", bb.to_str().unwrap(), "--name", "bb"]);
    let seeded = h.dir.join("seeded-layout");
    oci_layout(
        &seeded,
        "latest",
        &[PlatformImage {
            arch: "amd64",
            layers: vec![
                busybox_layer(&h.dir),
                tar_files(&[
                    ("data/", 0o750, b""),
                    ("data/seed", 0o640, b"from the image\n"),
                ]),
            ],
            config: json!({"Volumes": {"/data": {}}}),
        }],
    );
    h.ok(&[
        "image",
        "import",
        seeded.to_str().unwrap(),
        "--name",
        "seeded",
    ]);
    h
}

/// `run --rm --network none IMAGE sh -c SCRIPT` with extra flags before the image.
fn sh(h: &DockerFace, flags: &[&str], image: &str, script: &str) -> Output {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image, "sh", "-c", script]);
    h.minc(&args)
}

fn volumes(h: &DockerFace) -> Vec<String> {
    h.ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect()
}

fn text(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn volumes_binds_tmpfs_and_read_only() {
    minc_tests::sandbox!();
    let h = host();
    // A named volume outlives the container that wrote to it.
    text(&sh(
        &h,
        &["-v", "store:/store"],
        "bb",
        "echo kept > /store/f",
    ));
    assert_eq!(
        text(&sh(&h, &["-v", "store:/store"], "bb", "cat /store/f")),
        "kept\n"
    );
    assert_eq!(volumes(&h), ["store"]);
    let info: Value = serde_json::from_str(&h.ok(&["volume", "inspect", "store"])).unwrap();
    let mountpoint = PathBuf::from(info[0]["Mountpoint"].as_str().unwrap());
    assert_eq!(mountpoint, h.data.join("volumes/store/_data"));
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("f")).unwrap(),
        "kept\n"
    );
    for private in [h.data.join("volumes"), h.data.join("volumes/store")] {
        let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", private.display());
    }
    // :ro refuses writes.
    let out = sh(&h, &["-v", "store:/store:ro"], "bb", "echo no > /store/g");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "{out:?}"
    );
    assert!(!mountpoint.join("g").exists());
    // --mount, same volume, read-only too.
    let out = sh(
        &h,
        &["--mount", "type=volume,source=store,target=/s,readonly"],
        "bb",
        "cat /s/f && ! touch /s/x",
    );
    assert_eq!(text(&out), "kept\n");

    // A host bind (a missing host directory is created, as Docker does); --mount
    // type=bind with a missing source is an error.
    let host_dir = h.dir.join("made/by/run");
    let bind = format!("{}:/h", host_dir.display());
    text(&sh(
        &h,
        &["-v", &bind],
        "bb",
        "echo from-container > /h/out",
    ));
    assert_eq!(
        std::fs::read_to_string(host_dir.join("out")).unwrap(),
        "from-container\n"
    );
    let err = h.fails(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=bind,source=/no/such/dir,target=/x",
        "bb",
        "true",
    ]);
    assert!(
        err.contains("bind source path does not exist: /no/such/dir"),
        "{err}"
    );
    let err = h.fails(&["run", "--rm", "-v", "/a:/x:bogus", "bb", "true"]);
    assert!(err.contains("unknown option \"bogus\""), "{err}");

    // --read-only with a tmpfs at /run: /run is writable, the rest is not.
    let out = sh(&h,
        &["--read-only", "--tmpfs", "/run:size=1m"],
        "bb",
        "echo ok > /run/pid && cat /run/pid && ! touch /etc/x 2>/dev/null && grep ' /run ' /proc/mounts",
    );
    let out = text(&out);
    assert!(out.starts_with("ok\n"), "{out}");
    assert!(
        out.contains("tmpfs /run tmpfs rw,nosuid,nodev,noexec"),
        "{out}"
    );
    let out = sh(&h, &["--read-only"], "bb", "touch /x");
    assert!(!out.status.success(), "--read-only allowed a write");
    // tmpcopyup: a tmpfs that starts with what it covers.
    let out = sh(
        &h,
        &["--read-only", "--tmpfs", "/etc:tmpcopyup"],
        "bb",
        "cat /etc/passwd | head -1 && touch /etc/new && grep -c ' /etc tmpfs' /proc/mounts",
    );
    assert_eq!(text(&out), "root:x:0:0:root:/root:/bin/sh\n1\n");

    // In use: refused without -f; prune leaves named volumes unless -a.
    h.ok(&[
        "run",
        "--name",
        "holder",
        "--network",
        "none",
        "-v",
        "store:/store",
        "bb",
        "true",
    ]);
    let err = h.fails(&["volume", "rm", "store"]);
    assert!(err.contains("in use by container holder"), "{err}");
    h.ok(&["rm", "holder"]);
    h.ok(&["volume", "prune"]);
    assert_eq!(volumes(&h), ["store"]);
    h.ok(&["volume", "prune", "-a"]);
    assert!(volumes(&h).is_empty());
    assert!(!h.data.join("volumes/store").exists());
}

#[test]
fn image_volumes_are_copied_up() {
    minc_tests::sandbox!();
    let h = host();
    // The image's VOLUME /data: an anonymous volume filled from the image, removed with
    // the container (--rm).
    let out = sh(
        &h,
        &[],
        "seeded",
        "cat /data/seed; stat -c '%a' /data; grep -c ' /data ' /proc/mounts",
    );
    assert_eq!(text(&out), "from the image\n750\n1\n");
    assert!(
        volumes(&h).is_empty(),
        "anonymous volume removed with its container"
    );
    // A new named volume over /data is filled the same way, once; later changes stay.
    text(&sh(
        &h,
        &["-v", "keep:/data"],
        "seeded",
        "cat /data/seed && echo more >> /data/seed",
    ));
    assert_eq!(
        std::fs::read_to_string(h.data.join("volumes/keep/_data/seed")).unwrap(),
        "from the image\nmore\n"
    );
    assert_eq!(
        text(&sh(&h, &["-v", "keep:/data"], "seeded", "cat /data/seed")),
        "from the image\nmore\n"
    );
    // nocopy: an empty volume stays empty.
    assert_eq!(
        text(&sh(
            &h,
            &["-v", "empty:/data:nocopy"],
            "seeded",
            "ls -A /data | wc -l"
        ))
        .trim(),
        "0"
    );
    // A volume over a path that is a symlink to the host's /etc in the image: the copy
    // resolves it inside the image, so nothing of the host's /etc is copied.
    let evil = h.dir.join("evil-layout");
    oci_layout(
        &evil,
        "latest",
        &[PlatformImage {
            arch: "amd64",
            layers: vec![busybox_layer(&h.dir), {
                let mut b = tar::Builder::new(Vec::new());
                let mut hd = tar::Header::new_gnu();
                hd.set_entry_type(tar::EntryType::Symlink);
                hd.set_size(0);
                hd.set_mode(0o777);
                b.append_link(&mut hd, "hostetc", "/etc").unwrap();
                b.into_inner().unwrap()
            }],
            config: json!({}),
        }],
    );
    h.ok(&["image", "import", evil.to_str().unwrap(), "--name", "evil"]);
    text(&sh(&h, &["-v", "grab:/hostetc"], "evil", "true"));
    // busybox_rootfs's own /etc (passwd, group) is what the image has there.
    assert_eq!(
        std::fs::read_to_string(h.data.join("volumes/grab/_data/passwd")).unwrap(),
        std::fs::read_to_string(h.dir.join("busybox-rootfs/etc/passwd")).unwrap()
    );
    assert!(
        !h.data.join("volumes/grab/_data/os-release").exists(),
        "the host's /etc leaked"
    );
}

#[test]
fn cp_both_ways_and_through_hostile_symlinks() {
    minc_tests::sandbox!();
    let h = host();
    let secret_dir = h.dir.join("host-secret");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("secret"), "host secret\n").unwrap();
    let sentinel = h.dir.join("host-sentinel");
    std::fs::create_dir(&sentinel).unwrap();
    // The container plants links to the host paths (and a `..` chain) before we copy.
    let plant = format!(
        "mkdir -p /srv/tree/sub && echo inner > /srv/tree/sub/f && echo inside > /marker && \
         ln -s {secret} /tmp/to-secret && ln -s {sentinel} /tmp/to-sentinel && \
         ln -s ../../../../../../../{sentinel} /tmp/up && ln -s /etc /tmp/etc-link && sleep 300",
        secret = secret_dir.display(),
        sentinel = sentinel.display()
    );
    let id = h.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        &plant,
    ]);
    let id = id.trim();
    let inside = |p: &str| -> Option<String> {
        let pid = serde_json::from_str::<Value>(&h.ok(&["inspect", "box"])).unwrap()["State"]
            ["pid"]
            .as_i64()
            .unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/root{p}")).ok()
    };
    for _ in 0..200 {
        if inside("/marker").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));

    // Container -> host: a file, a directory, a directory's contents.
    let out = h.dir.join("out");
    std::fs::create_dir(&out).unwrap();
    h.ok(&["cp", "box:/marker", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("marker")).unwrap(),
        "inside\n"
    );
    h.ok(&["cp", "box:/srv/tree", out.join("copy").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("copy/sub/f")).unwrap(),
        "inner\n"
    );
    // `..` above the container's root stays at its root.
    h.ok(&[
        "cp",
        "box:../../../../marker",
        out.join("m2").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(out.join("m2")).unwrap(), "inside\n");

    // Host -> container, into an existing directory and under a new name.
    let src = h.dir.join("upload");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/file"), "uploaded\n").unwrap();
    h.ok(&["cp", src.join("d/file").to_str().unwrap(), "box:/tmp/"]);
    assert_eq!(inside("/tmp/file").as_deref(), Some("uploaded\n"));
    h.ok(&["cp", src.join("d").to_str().unwrap(), "box:/srv/newdir"]);
    assert_eq!(inside("/srv/newdir/file").as_deref(), Some("uploaded\n"));

    // Hostile links: reading through them reaches the container's paths, never the host's.
    let err = h.fails(&[
        "cp",
        "box:/tmp/to-secret/secret",
        out.join("stolen").to_str().unwrap(),
    ]);
    assert!(err.starts_with("minc: cp"), "{err}");
    assert!(!out.join("stolen").exists());
    // A symlink is copied as a symlink (its text), not as what it names on the host.
    h.ok(&[
        "cp",
        "box:/tmp/to-secret",
        out.join("link").to_str().unwrap(),
    ]);
    assert!(std::fs::symlink_metadata(out.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // Writing through them lands inside the container (or fails), never in the host dir.
    for dest in [
        "box:/tmp/to-sentinel/x",
        "box:/tmp/up/x",
        "box:/tmp/to-sentinel/",
    ] {
        let _ = h.minc(&["cp", src.join("d/file").to_str().unwrap(), dest]);
    }
    assert_eq!(
        std::fs::read_dir(&sentinel).unwrap().count(),
        0,
        "written into the host's directory"
    );
    // /tmp/etc-link -> /etc is the container's /etc.
    h.ok(&[
        "cp",
        src.join("d/file").to_str().unwrap(),
        "box:/tmp/etc-link/",
    ]);
    assert_eq!(inside("/etc/file").as_deref(), Some("uploaded\n"));
    assert!(
        !Path::new("/etc/file").exists()
            || std::fs::read_to_string("/etc/file").unwrap() != "uploaded\n"
    );
    // Replacing a symlink in the container writes a file there, not through it.
    h.ok(&[
        "cp",
        src.join("d/file").to_str().unwrap(),
        "box:/tmp/to-secret",
    ]);
    assert_eq!(
        std::fs::read_to_string(secret_dir.join("secret")).unwrap(),
        "host secret\n"
    );
    assert_eq!(inside("/tmp/to-secret").as_deref(), Some("uploaded\n"));

    h.ok(&["rm", "-f", id]);
    let err = h.fails(&["cp", "box:/marker", out.to_str().unwrap()]);
    assert!(err.contains("no such container"), "{err}");
}
