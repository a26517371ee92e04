//! Image store tests against real tar layers, the real kernel, and umoci/skopeo as the
//! reference. Fixtures are made here with the tar crate; nothing is downloaded.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use images::{ImportOptions, Store};
use serde_json::json;

mod common;
use common::{layer, oci_layout, raw_entry, sha, tree, E};

/// The fixture: whiteouts, an opaque dir, hard links, setuid, non-root owners, var/run.
fn fixture_layers() -> Vec<Vec<u8>> {
    let l1 = layer(&[
        E::Dir("bin", 0o755),
        E::File("bin/tool", 0o4755, 0, b"#!/bin/sh\necho tool\n"),
        E::Link("bin/tool-link", "bin/tool"),
        E::Dir("etc", 0o755),
        E::File("etc/old", 0o644, 0, b"old\n"),
        E::File("etc/keep", 0o600, 1000, b"keep\n"),
        E::Dir("opaque", 0o755),
        E::File("opaque/lower", 0o644, 0, b"lower\n"),
        E::Dir("run", 0o755),
        E::Dir("var", 0o755),
        E::Sym("var/run", "/run"),
    ]);
    let l2 = layer(&[
        E::File("etc/.wh.old", 0o644, 0, b""),
        E::Dir("opaque", 0o755),
        E::File("opaque/.wh..wh..opq", 0o644, 0, b""),
        E::File("opaque/upper", 0o640, 1000, b"upper\n"),
        E::File("var/run/app.pid", 0o644, 0, b"42\n"),
        E::File("home-file", 0o2755, 1234, b"sgid\n"),
    ]);
    vec![l1, l2]
}

struct T {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: Store,
}

fn setup() -> T {
    let tmp = minc_tests::tempdir();
    let dir = tmp.path().to_path_buf();
    let store = Store::open(&dir.join("data")).unwrap();
    T {
        _tmp: tmp,
        dir,
        store,
    }
}

#[test]
fn layers_unpack_with_whiteouts_links_modes_and_owners() {
    let t = setup();
    let layout = t.dir.join("layout");
    oci_layout(&layout, &fixture_layers(), "fixture:1");
    let r = t.store.import(&layout, &ImportOptions::default()).unwrap();
    assert_eq!(r.name, "localhost/fixture:1");
    let img = t.store.resolve("fixture:1").unwrap();
    let out = t.dir.join("out");
    t.store.unpack(&img, &out).unwrap();

    assert!(!out.join("etc/old").exists(), "whiteout removed etc/old");
    assert_eq!(fs::read_to_string(out.join("etc/keep")).unwrap(), "keep\n");
    assert!(
        !out.join("opaque/lower").exists(),
        "opaque dir hides the lower layer"
    );
    assert_eq!(
        fs::read_to_string(out.join("opaque/upper")).unwrap(),
        "upper\n"
    );
    let tool = fs::metadata(out.join("bin/tool")).unwrap();
    assert_eq!(tool.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    let link = fs::metadata(out.join("bin/tool-link")).unwrap();
    assert_eq!(link.ino(), tool.ino(), "hard link shares the inode");
    let keep = fs::metadata(out.join("etc/keep")).unwrap();
    assert_eq!(
        (keep.uid(), keep.gid(), keep.permissions().mode() & 0o777),
        (1000, 1000, 0o600)
    );
    let sgid = fs::metadata(out.join("home-file")).unwrap();
    assert_eq!(
        (sgid.uid(), sgid.permissions().mode() & 0o7777),
        (1234, 0o2755)
    );
    // var/run -> /run resolved inside the rootfs.
    assert_eq!(
        fs::read_link(out.join("var/run")).unwrap(),
        Path::new("/run")
    );
    assert_eq!(fs::read_to_string(out.join("run/app.pid")).unwrap(), "42\n");
}

#[test]
fn unpack_equals_umoci() {
    if Command::new("umoci").arg("--version").output().is_err() {
        panic!("umoci is not installed (apt-get install umoci)");
    }
    let t = setup();
    let layout = t.dir.join("layout");
    oci_layout(&layout, &fixture_layers(), "fixture");
    t.store.import(&layout, &ImportOptions::default()).unwrap();
    let img = t.store.resolve("layout:fixture").unwrap();
    let ours = t.dir.join("ours");
    t.store.unpack(&img, &ours).unwrap();
    let bundle = t.dir.join("umoci");
    let st = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:fixture", layout.display()))
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(tree(&ours), tree(&bundle.join("rootfs")));
}

#[test]
fn hostile_layers_stay_inside() {
    let t = setup();
    let outside = t.dir.join("outside");
    fs::create_dir(&outside).unwrap();
    let sentinel = outside.join("sentinel");
    fs::write(&sentinel, "untouched").unwrap();
    let before = tree(&outside);
    let rel_out = outside.strip_prefix("/").unwrap().display().to_string();
    let sentinel_abs = sentinel.display().to_string();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            raw_entry(&format!("../../../../../../../{rel_out}/dotdot")),
        ),
        ("absolute", raw_entry(&format!("/{rel_out}/absolute"))),
        (
            "symlink-then-write",
            layer(&[
                E::Sym("escape", "/"),
                E::File(&format!("escape/{rel_out}/through-link"), 0o644, 0, b"evil"),
            ]),
        ),
        (
            "relative-symlink-then-write",
            layer(&[
                E::Sym("up", "../../../../../../../../.."),
                E::File(&format!("up/{rel_out}/through-relative"), 0o644, 0, b"evil"),
            ]),
        ),
        (
            "hardlink-to-host-file",
            layer(&[E::Link("stolen", &sentinel_abs)]),
        ),
        (
            "whiteout-through-symlink",
            layer(&[
                E::Sym("out", &outside.display().to_string()),
                E::File("out/.wh.sentinel", 0o644, 0, b""),
            ]),
        ),
        (
            "symlink-loop",
            layer(&[
                E::Sym("loop1", "loop2"),
                E::Sym("loop2", "loop1"),
                E::File("loop1/x", 0o644, 0, b"evil"),
            ]),
        ),
    ];
    for (name, l) in cases {
        let layout = t.dir.join(format!("layout-{name}"));
        oci_layout(&layout, &[l], name);
        let dest = t.dir.join(format!("root-{name}"));
        let result = t
            .store
            .import(
                &layout,
                &ImportOptions {
                    name: Some(name.into()),
                    ..Default::default()
                },
            )
            .and_then(|_| {
                let img = t.store.resolve(name)?;
                t.store.unpack(&img, &dest)
            });
        // Either refused or kept inside; never anything outside.
        assert_eq!(
            tree(&outside),
            before,
            "{name} changed {}: {result:?}",
            outside.display()
        );
        assert_eq!(
            fs::read_to_string(&sentinel).unwrap(),
            "untouched",
            "{name}"
        );
        if let Ok(()) = result {
            // What was written lives under the rootfs.
            let inside = tree(&dest).join("\n");
            assert!(
                !inside.contains("untouched"),
                "{name} read a host file:\n{inside}"
            );
        }
    }
    // The hard link to a host path is refused (no such file inside the rootfs).
    let img = t.store.resolve("hardlink-to-host-file").unwrap();
    let e = t
        .store
        .unpack(&img, &t.dir.join("again"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("hard link target"), "{e}");
}

#[test]
fn archives_import_like_layouts() {
    let t = setup();
    let layout = t.dir.join("layout");
    oci_layout(&layout, &fixture_layers(), "v1");
    let docker = t.dir.join("img.docker.tar");
    let oci = t.dir.join("img.oci.tar");
    for (dest, how) in [
        (
            &docker,
            format!("docker-archive:{}:fixture:v1", docker.display()),
        ),
        (&oci, format!("oci-archive:{}:v1", oci.display())),
    ] {
        let st = Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(&how)
            .status()
            .expect("skopeo is installed (apt-get install skopeo)");
        assert!(st.success(), "skopeo copy to {}", dest.display());
    }
    let d = t.store.import(&docker, &ImportOptions::default()).unwrap();
    assert_eq!(d.name, "fixture:v1", "docker-archive keeps its RepoTag");
    let o = t
        .store
        .import(
            &oci,
            &ImportOptions {
                name: Some("from-oci:v1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        o.name, "localhost/from-oci:v1",
        "local images live under localhost/"
    );
    let a = t.dir.join("a");
    let b = t.dir.join("b");
    t.store
        .unpack(&t.store.resolve("fixture:v1").unwrap(), &a)
        .unwrap();
    t.store
        .unpack(&t.store.resolve("from-oci:v1").unwrap(), &b)
        .unwrap();
    assert_eq!(tree(&a), tree(&b));
    assert!(a.join("opaque/upper").exists());

    // rm drops the name and the blobs no other image uses.
    let blobs = |s: &Store| fs::read_dir(s.root.join("blobs/sha256")).unwrap().count();
    let n = blobs(&t.store);
    t.store.remove("from-oci:v1").unwrap();
    assert!(t.store.resolve("from-oci:v1").is_err());
    assert!(blobs(&t.store) <= n);
    t.store.remove("fixture:v1").unwrap();
    assert_eq!(blobs(&t.store), 0, "all blobs collected");
}

#[test]
fn bad_input_leaves_nothing_stored() {
    let t = setup();
    let index_before = fs::read(t.store.root.join("index.json")).unwrap();
    let blobs = || {
        fs::read_dir(t.store.root.join("blobs/sha256"))
            .unwrap()
            .count()
    };
    // The store's temporary files live in this process's work directory (tmp/w-*).
    let tmp_files = || -> usize {
        fs::read_dir(t.store.root.join("tmp"))
            .unwrap()
            .flatten()
            .map(|w| fs::read_dir(w.path()).map(|d| d.count()).unwrap_or(1))
            .sum()
    };

    let not_archive = t.dir.join("junk.tar");
    fs::write(&not_archive, vec![7u8; 3000]).unwrap();
    let e = t
        .store
        .import(&not_archive, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not an archive") || e.contains("not a valid archive"),
        "{e}"
    );

    // A layer whose content does not match its digest.
    let layout = t.dir.join("tampered");
    oci_layout(&layout, &fixture_layers(), "x");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&md)).unwrap()).unwrap();
    let ld = manifest["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(layout.join("blobs/sha256").join(&ld))
        .unwrap();
    f.write_all(b"tampered").unwrap();
    let e = t
        .store
        .import(&layout, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("digest mismatch"), "{e}");

    // A manifest naming a missing blob.
    fs::remove_file(layout.join("blobs/sha256").join(&ld)).unwrap();
    let e = t
        .store
        .import(&layout, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("is missing"), "{e}");

    // Unknown layer media type.
    let layout = t.dir.join("weird");
    oci_layout(&layout, &fixture_layers(), "x");
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let md = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mpath = layout.join("blobs/sha256").join(&md);
    let text = fs::read_to_string(&mpath)
        .unwrap()
        .replace("layer.v1.tar", "layer.v9.weird");
    fs::write(&mpath, &text).unwrap();
    let new = sha(text.as_bytes());
    fs::rename(&mpath, layout.join("blobs/sha256").join(&new[7..])).unwrap();
    let idx = fs::read_to_string(layout.join("index.json"))
        .unwrap()
        .replace(&md, &new[7..])
        .replace(
            &format!(
                "\"size\":{}",
                text.len() + 2 /* not exact: size is not checked */
            ),
            "",
        );
    fs::write(layout.join("index.json"), idx).unwrap();
    let e = t
        .store
        .import(&layout, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown media type"), "{e}");

    assert_eq!(
        fs::read(t.store.root.join("index.json")).unwrap(),
        index_before,
        "index untouched"
    );
    assert_eq!(tmp_files(), 0, "no temporary files left");
    // Verified blobs of a failed import may stay (content-addressed, unnamed); none is
    // half-written: every stored blob matches its name.
    for e in fs::read_dir(t.store.root.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let data = fs::read(e.path()).unwrap();
        assert_eq!(sha(&data)[7..], *e.file_name().to_str().unwrap());
    }
    let _ = blobs();
}

#[test]
fn rootfs_tarball_gzip_zstd_and_missing_end_marker() {
    let t = setup();
    let l = layer(&[
        E::Dir("bin", 0o755),
        E::File("bin/hello", 0o755, 0, b"hi\n"),
    ]);
    // Some tools omit the two zero blocks at the end.
    let trimmed = &l[..l.len() - 1024];
    let raw = t.dir.join("rootfs.tar");
    fs::write(&raw, trimmed).unwrap();
    let gz = t.dir.join("rootfs.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&l).unwrap();
    enc.finish().unwrap();
    let zst = t.dir.join("rootfs.tar.zst");
    fs::write(&zst, zstd::stream::encode_all(&l[..], 3).unwrap()).unwrap();
    for (path, name) in [(&raw, "raw"), (&gz, "gz"), (&zst, "zst")] {
        let opts = ImportOptions {
            name: Some(name.into()),
            entrypoint: Some(vec!["/bin/hello".into()]),
            ..Default::default()
        };
        t.store.import(path, &opts).unwrap();
        let img = t.store.resolve(name).unwrap();
        let out = t.dir.join(format!("out-{name}"));
        t.store.unpack(&img, &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("bin/hello")).unwrap(), "hi\n");
        let ep = img
            .config
            .config()
            .as_ref()
            .unwrap()
            .entrypoint()
            .clone()
            .unwrap();
        assert_eq!(ep, ["/bin/hello"]);
    }
}

#[test]
fn builtin_echo_server_answers_in_a_chroot() {
    minc_tests::sandbox!();
    let t = setup();
    let img = t.store.resolve("echo-server").unwrap();
    assert_eq!(img.exposed_ports(), [(8000, "tcp".to_string())]);
    // Deterministic: building it again gives the same digest.
    let again = Store::open(&t.dir.join("data2"))
        .unwrap()
        .resolve("echo-server")
        .unwrap();
    assert_eq!(img.digest, again.digest);
    let root = t.dir.join("rootfs");
    t.store.unpack(&img, &root).unwrap();
    let mut child = Command::new("chroot")
        .arg(&root)
        .args(["/echo-server", "--listen", "127.0.0.1:18000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let get = |req: &str| -> String {
        for _ in 0..200 {
            if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:18000") {
                s.write_all(req.as_bytes()).unwrap();
                let mut resp = String::new();
                s.read_to_string(&mut resp).unwrap();
                return resp;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("echo-server did not listen");
    };
    let resp = get("GET /echo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nConnection: close\r\n\r\n");
    let body: serde_json::Value =
        serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(
        body,
        json!({"header": {"Host": "x", "X-A": "1", "Connection": "close"}, "body": "Echo response"})
    );
    let resp = get("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello \"you\"");
    let body: serde_json::Value =
        serde_json::from_str(resp.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["body"], "hello \"you\"");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("GET /echo 200") && log.contains("POST /echo 200"),
        "{log}"
    );
}

#[test]
fn overlay_rootfs_is_created_and_removed() {
    minc_tests::sandbox!();
    let t = setup();
    let layout = t.dir.join("layout");
    oci_layout(&layout, &fixture_layers(), "ov");
    t.store.import(&layout, &ImportOptions::default()).unwrap();
    let img = t.store.resolve("layout:ov").unwrap();
    let c = t.dir.join("container");
    let rootfs = t.store.create_rootfs(&img, &c).unwrap();
    assert!(rootfs.overlay, "overlayfs is available here");
    let r = &rootfs.path;
    assert!(!r.join("etc/old").exists() && !r.join("opaque/lower").exists());
    assert_eq!(fs::read_to_string(r.join("run/app.pid")).unwrap(), "42\n");
    // Writes go to the container's upper dir, not the shared layers.
    fs::write(r.join("etc/keep"), "changed").unwrap();
    let c2 = t.dir.join("container2");
    let other = t.store.create_rootfs(&img, &c2).unwrap();
    assert_eq!(
        fs::read_to_string(other.path.join("etc/keep")).unwrap(),
        "keep\n"
    );
    Store::remove_rootfs(&c).unwrap();
    Store::remove_rootfs(&c).unwrap(); // idempotent
    assert!(!c.join("rootfs").exists() && !c.join("upper").exists());
    Store::remove_rootfs(&c2).unwrap();
}

/// umoci `insert` writes a layer that ends right after the last file's data: no padding,
/// no end-of-archive blocks. It imports, unpacks flattened, and unpacks for `run`.
#[test]
fn umoci_insert_layer_without_end_marker_runs() {
    let t = setup();
    let layout = t.dir.join("umoci");
    let image = format!("{}:t", layout.display());
    let src = t.dir.join("hello");
    fs::write(&src, "hello\n").unwrap();
    for args in [
        vec!["init", "--layout", layout.to_str().unwrap()],
        vec!["new", "--image", &image],
        vec!["insert", "--image", &image, src.to_str().unwrap(), "/hello"],
    ] {
        let st = Command::new("umoci")
            .args(&args)
            .status()
            .expect("umoci is installed");
        assert!(st.success(), "umoci {args:?}");
    }
    t.store
        .import(
            &layout,
            &ImportOptions {
                name: Some("inserted".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let img = t.store.resolve("inserted").unwrap();
    let dirs = t.store.ensure_layers(&img).unwrap();
    assert_eq!(
        fs::read_to_string(dirs[0].join("hello")).unwrap(),
        "hello\n"
    );
    let out = t.dir.join("flat");
    t.store.unpack(&img, &out).unwrap();
    assert_eq!(fs::read_to_string(out.join("hello")).unwrap(), "hello\n");

    // A layer cut inside a file's data is still refused, not zero-filled.
    let l = layer(&[E::File("f", 0o644, 0, &[7u8; 1000])]);
    let cut = l[..512 + 700].to_vec();
    let layout = t.dir.join("cut");
    oci_layout(&layout, &[cut], "t");
    t.store.import(&layout, &ImportOptions::default()).unwrap();
    let img = t.store.resolve("cut:t").unwrap();
    let e = t
        .store
        .unpack(&img, &t.dir.join("cut-out"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("entry f") && e.contains("truncated"), "{e}");
}
