//! Hostile layers, as an attacker would write them: symlink and hard-link escapes,
//! whiteouts of `.` and `..`, directories swapped for symlinks, device nodes, absurd names
//! and depths, decompression bombs, entry floods, a killed import, and the permissions of
//! the store itself. Layers are built with the tar crate (raw headers where it refuses a
//! name); each test keeps a sentinel on the "host" (a directory outside every root) and
//! asserts it is untouched and never copied in.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use images::{DeviceNodes, Image, ImportOptions, Store, StoreOptions};
use tar::EntryType as T;

mod common;
use common::{layer, oci_layout, sha, tree, E};

const SECRET: &[u8] = b"host secret, never in a container";

struct Host {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    /// The "host": a directory outside every root, holding the sentinel.
    outside: PathBuf,
    sentinel: PathBuf,
    data: PathBuf,
    store: Store,
    n: std::cell::Cell<u32>,
}

fn host() -> Host {
    host_with(StoreOptions::default())
}

fn host_with(opts: StoreOptions) -> Host {
    let tmp = minc_tests::tempdir();
    let dir = tmp.path().to_path_buf();
    let outside = dir.join("outside");
    fs::create_dir(&outside).unwrap();
    let sentinel = outside.join("sentinel");
    fs::write(&sentinel, SECRET).unwrap();
    let data = dir.join("data");
    let store = Store::open_with(&data, opts).unwrap();
    Host {
        _tmp: tmp,
        dir,
        outside,
        sentinel,
        data,
        store,
        n: Default::default(),
    }
}

impl Host {
    /// The sentinel's path as an absolute symlink or hard link in a layer names it.
    fn sentinel_abs(&self) -> String {
        self.sentinel.display().to_string()
    }

    fn import(&self, layers: &[Vec<u8>]) -> Image {
        self.n.set(self.n.get() + 1);
        let name = format!("img{}", self.n.get());
        let layout = self.dir.join(format!("layout-{name}"));
        oci_layout(&layout, layers, "t");
        let opts = ImportOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        self.store.import(&layout, &opts).unwrap();
        self.store.resolve(&name).unwrap()
    }

    /// Flattened (`image unpack`, and `run` without overlayfs) into `outside/rootfs-N`, so
    /// that `..` of the unpack target is the directory holding the sentinel.
    fn flat(&self, img: &Image) -> (PathBuf, images::Error) {
        let dest = self.outside.join(format!("rootfs-{}", self.n.get()));
        let e = self.store.unpack(img, &dest).unwrap_err();
        (dest, e)
    }

    /// The sentinel is as it was, the host directory holds only it and our unpack
    /// targets, and the store's own directories are all there.
    fn untouched(&self) {
        assert_eq!(
            fs::read(&self.sentinel).unwrap(),
            SECRET,
            "sentinel changed"
        );
        for e in fs::read_dir(&self.outside).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(
                n == "sentinel" || n.starts_with("rootfs-"),
                "{n} appeared on the host"
            );
        }
        for d in [
            "images/index.json",
            "images/blobs/sha256",
            "images/tmp",
            "layers",
        ] {
            assert!(self.data.join(d).exists(), "{d} of the store is gone");
        }
    }

    /// No file under `root` holds the sentinel's contents.
    fn no_secret_in(&self, root: &Path) {
        let listing = tree(root).join("\n");
        assert!(
            !listing.contains(&sha(SECRET)),
            "the host file was copied in:\n{listing}"
        );
    }
}

#[test]
fn hard_link_to_a_lower_symlink_copies_the_link_never_the_host_file() {
    let h = host();
    let abs = h.sentinel_abs();
    let img = h.import(&[
        layer(&[E::Sym("secretlink", &abs), E::Dir("d", 0o755)]),
        layer(&[E::Link("stolen", "secretlink")]),
    ]);
    // Overlay mode (what `run` uses): the upper layer copies the symlink itself up.
    let dirs = h.store.ensure_layers(&img).unwrap();
    let stolen = dirs[1].join("stolen");
    let m = fs::symlink_metadata(&stolen).unwrap();
    assert!(m.file_type().is_symlink(), "copied up as a symlink");
    assert_eq!(fs::read_link(&stolen).unwrap(), Path::new(&abs));
    h.no_secret_in(&dirs[1]);
    // Flattened: a second name of the symlink.
    let dest = h.outside.join("rootfs-flat");
    h.store.unpack(&img, &dest).unwrap();
    assert!(fs::symlink_metadata(dest.join("stolen"))
        .unwrap()
        .file_type()
        .is_symlink());
    h.no_secret_in(&dest);

    // A hard link whose target's parent is a symlink to the host resolves inside the root,
    // where there is no such file: a layer error naming the layer and the entry.
    let outside = h.outside.display().to_string();
    let img = h.import(&[
        layer(&[E::Sym("hostdir", &outside)]),
        layer(&[E::Link("stolen2", "hostdir/sentinel")]),
    ]);
    let e = h.store.ensure_layers(&img).unwrap_err().to_string();
    assert!(
        e.contains("stolen2")
            && e.contains("does not exist")
            && e.contains(&img.manifest.layers[1].digest),
        "{e}"
    );
    let (_, e) = h.flat(&img);
    assert!(e.to_string().contains("does not exist"), "{e}");
    h.untouched();
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_layer_errors() {
    let h = host();
    for name in [
        &b".wh.."[..],
        b".wh...",
        b"sub/.wh..",
        b"sub/.wh...",
        b"./.wh...",
    ] {
        let img = h.import(&[
            layer(&[E::Dir("sub", 0o755), E::File("sub/f", 0o644, 0, b"f")]),
            layer(&[E::Raw(name, T::Regular, b"", b"")]),
        ]);
        let shown = String::from_utf8_lossy(name).into_owned();
        let digest = &img.manifest.layers[1].digest;
        for e in [h.store.ensure_layers(&img).unwrap_err(), h.flat(&img).1] {
            let e = e.to_string();
            assert!(
                e.contains(digest) && e.contains(&shown) && e.contains("names no file"),
                "{shown}: {e}"
            );
            assert_eq!(e.lines().count(), 1);
        }
        h.untouched();
    }
    // `..` in a whiteout's directory that climbs out is refused the same way.
    let img = h.import(&[layer(&[E::Raw(b"../.wh.outside", T::Regular, b"", b"")])]);
    assert!(h.flat(&img).1.to_string().contains("escapes the rootfs"));
    h.untouched();
}

#[test]
fn symlink_chains_absolute_and_dotdot_targets_stay_inside() {
    let h = host();
    let rel_out = h.outside.strip_prefix("/").unwrap().display().to_string();
    let abs_out = h.outside.display().to_string();
    let img = h.import(&[
        layer(&[
            E::Sym("a", "b"),
            E::Sym("b", "c/../../../../../../.."),
            E::Dir("c", 0o755),
            E::Sym("root", "/"),
            E::Sym("hostdir", &abs_out),
        ]),
        layer(&[
            E::File(&format!("a/{rel_out}/via-chain"), 0o644, 0, b"x"),
            E::File(&format!("root/{rel_out}/via-root"), 0o644, 0, b"x"),
            E::File("hostdir/via-abs", 0o644, 0, b"x"),
            E::File("hostdir/.wh.sentinel", 0o644, 0, b""),
            E::Sym("escape2", "../../../../../../../../.."),
            E::File(&format!("escape2/{rel_out}/via-new-link"), 0o644, 0, b"x"),
        ]),
    ]);
    let dirs = h.store.ensure_layers(&img).unwrap();
    // Everything landed in the upper layer, at the host path *inside* the root.
    for f in ["via-chain", "via-root", "via-abs", "via-new-link"] {
        assert!(dirs[1].join(&rel_out).join(f).is_file(), "{f}");
    }
    let dest = h.outside.join("rootfs-flat");
    h.store.unpack(&img, &dest).unwrap();
    assert!(dest.join(&rel_out).join("via-abs").is_file());
    h.untouched();
}

#[test]
fn a_directory_replaced_by_a_symlink_is_not_written_through() {
    let h = host();
    let abs_out = h.outside.display().to_string();
    let rel_out = h.outside.strip_prefix("/").unwrap().display().to_string();
    let l = layer(&[
        E::Dir("d", 0o755),
        E::File("d/f", 0o644, 0, b"first"),
        E::Sym("d", &abs_out),
        E::File("d/evil", 0o644, 0, b"x"),
        E::Link("d/sentinel-link", &format!("{abs_out}/sentinel")),
    ]);
    let img = h.import(&[layer(&[E::Dir("etc", 0o755)]), l]);
    let e = h.store.ensure_layers(&img).unwrap_err().to_string();
    assert!(
        e.contains("does not exist"),
        "the hard link finds no host file: {e}"
    );
    let (dest, e) = h.flat(&img);
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(dest.join(&rel_out).join("evil").is_file(), "written inside");
    assert!(!dest.join("d/f").exists());
    h.untouched();
}

#[test]
fn entries_under_a_file_duplicates_and_absurd_names() {
    let h = host();
    // A file where a directory is needed.
    let img = h.import(&[layer(&[
        E::File("f", 0o644, 0, b"x"),
        E::File("f/x", 0o644, 0, b"x"),
    ])]);
    let e = h.flat(&img).1.to_string();
    assert!(
        e.contains("entry f/x") && e.contains("Not a directory"),
        "{e}"
    );
    assert!(h.store.ensure_layers(&img).is_err());
    // Duplicates: the last entry wins, whatever the types.
    let img = h.import(&[layer(&[
        E::File("x", 0o644, 0, b"1"),
        E::Dir("x", 0o755),
        E::File("x/in", 0o644, 0, b"in"),
        E::File("x", 0o600, 0, b"2"),
        E::Sym("y", "x"),
        E::File("y", 0o644, 0, b"3"),
    ])]);
    let dest = h.dir.join("dups");
    h.store.unpack(&img, &dest).unwrap();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"2");
    assert_eq!(fs::read(dest.join("y")).unwrap(), b"3");
    assert!(!fs::symlink_metadata(dest.join("y"))
        .unwrap()
        .file_type()
        .is_symlink());
    // A name longer than PATH_MAX (a GNU long name) and a component longer than NAME_MAX.
    let long = "d/".repeat(2100) + "f";
    let img = h.import(&[layer(&[E::File(&long, 0o644, 0, b"x")])]);
    assert!(h.flat(&img).1.to_string().contains("more than 4096"));
    let wide = "w".repeat(300);
    let img = h.import(&[layer(&[E::File(&wide, 0o644, 0, b"x")])]);
    assert!(h.flat(&img).1.to_string().contains("more than 255"));
    // A GNU long name of 3 MiB: refused before the parser reads it into memory.
    let mut hd = tar::Header::new_gnu();
    hd.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    hd.set_entry_type(T::GNULongName);
    hd.set_size(3 << 20);
    hd.set_cksum();
    let mut l = hd.as_bytes().to_vec();
    l.extend(vec![b'n'; 3 << 20]);
    l.extend(layer(&[E::File("after", 0o644, 0, b"x")]));
    let img = h.import(&[l]);
    let e = h.flat(&img).1.to_string();
    assert!(
        e.contains("extended header") && e.lines().count() == 1,
        "{e}"
    );
    h.untouched();
}

#[test]
fn deep_trees_unpack_and_are_removed() {
    let h = host();
    // 2000 levels: more than the default 1024 open files, were one held per level.
    let deep = "d/".repeat(2000) + "f";
    let img = h.import(&[layer(&[E::File(&deep, 0o644, 0, b"deep")])]);
    let dirs = h.store.ensure_layers(&img).unwrap();
    // Longer than PATH_MAX from the host's /: read through the layer's root fd.
    let root = sysops::inroot::Root::open(&dirs[0]).unwrap();
    let mut f = root.open_file(Path::new(&deep)).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).unwrap();
    assert_eq!(text, "deep");
    h.store.remove(&img.name).unwrap();
    assert!(!dirs[0].exists(), "the layer is removed however deep");
}

#[test]
fn device_nodes_follow_the_store_policy() {
    let layers = || {
        vec![layer(&[
            E::Dev("null", T::Char, 1, 3),
            E::Dev("fifo", T::Fifo, 0, 0),
            E::Dev("disk", T::Block, 8, 0),
        ])]
    };
    // Default (harmless): null and the FIFO would do, the disk is refused by name.
    let h = host();
    let img = h.import(&layers());
    let e = h.flat(&img).1.to_string();
    assert!(
        e.contains("entry disk") && e.contains("block 8:0") && e.contains("MINC_LAYER_DEVICES"),
        "{e}"
    );
    assert!(h.store.ensure_layers(&img).is_err());
    // All: created as the layer says.
    let h = host_with(StoreOptions {
        devices: DeviceNodes::All,
        ..Default::default()
    });
    let img = h.import(&layers());
    let dirs = h.store.ensure_layers(&img).unwrap();
    let disk = fs::symlink_metadata(dirs[0].join("disk")).unwrap();
    assert_eq!(disk.rdev(), libc::makedev(8, 0));
    assert!(dirs[0].join("fifo").exists());
    // None: even /dev/null is refused.
    let h = host_with(StoreOptions {
        devices: DeviceNodes::None,
        ..Default::default()
    });
    let img = h.import(&[layer(&[E::Dev("null", T::Char, 1, 3)])]);
    assert!(h.flat(&img).1.to_string().contains("char 1:3"));
}

/// A gzip stream that expands to `gib` GiB: one member holding a tar header of a huge file
/// and 16 MiB of zeros, then members of 16 MiB of zeros (gzip readers read concatenated
/// members as one stream). A few MB on disk.
fn gzip_bomb(gib: u64) -> Vec<u8> {
    let chunk = vec![0u8; 16 << 20];
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(gib << 30);
    h.set_mode(0o644);
    h.set_entry_type(T::Regular);
    h.set_cksum();
    let gz = |data: &[&[u8]]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        for d in data {
            e.write_all(d).unwrap();
        }
        e.finish().unwrap()
    };
    let mut out = gz(&[h.as_bytes(), &chunk]);
    let zeros = gz(&[&chunk]);
    for _ in 1..gib * 64 {
        out.extend_from_slice(&zeros);
    }
    out
}

#[test]
fn a_decompression_bomb_stops_at_the_layer_limit_and_leaves_nothing() {
    let opts = StoreOptions {
        max_layer_size: 48 << 20,
        max_archive_size: 64 << 20,
        ..Default::default()
    };
    let h = host_with(opts);
    let bomb = gzip_bomb(8);
    assert!(bomb.len() < 20 << 20, "a small blob: {} bytes", bomb.len());
    // As an OCI layer: the import stores the compressed blob (verified); unpacking stops.
    let layout = h.dir.join("bomb-layout");
    write_gzip_layout(&layout, &bomb);
    h.store
        .import(
            &layout,
            &ImportOptions {
                name: Some("bomb".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let img = h.store.resolve("bomb").unwrap();
    let dest = h.outside.join("rootfs-bomb");
    let e = h.store.unpack(&img, &dest).unwrap_err().to_string();
    assert!(
        e.contains("larger than the limit of 48 MiB") && e.contains("MINC_MAX_LAYER_SIZE"),
        "{e}"
    );
    let e = h.store.ensure_layers(&img).unwrap_err().to_string();
    assert!(e.contains("larger than the limit"), "{e}");
    assert_eq!(work_files(&h), 0, "no half-unpacked layer left");
    assert_eq!(fs::read_dir(h.data.join("layers")).unwrap().count(), 0);
    // As a rootfs tarball: refused at import, nothing stored.
    let index = fs::read(h.data.join("images/index.json")).unwrap();
    let blobs = fs::read_dir(h.data.join("images/blobs/sha256"))
        .unwrap()
        .count();
    let tarball = h.dir.join("bomb.tar.gz");
    fs::write(&tarball, &bomb).unwrap();
    let e = h
        .store
        .import(&tarball, &ImportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than the limit"), "{e}");
    assert_eq!(fs::read(h.data.join("images/index.json")).unwrap(), index);
    assert_eq!(
        fs::read_dir(h.data.join("images/blobs/sha256"))
            .unwrap()
            .count(),
        blobs,
        "no blob of the refused import"
    );
    assert_eq!(work_files(&h), 0);
    h.untouched();
}

#[test]
fn an_entry_flood_stops_at_the_entry_limit() {
    let h = host_with(StoreOptions {
        max_layer_entries: 100,
        ..Default::default()
    });
    let names: Vec<String> = (0..101).map(|i| format!("f{i}")).collect();
    let entries: Vec<E> = names.iter().map(|n| E::File(n, 0o644, 0, b"")).collect();
    let img = h.import(&[layer(&entries)]);
    let e = h.flat(&img).1.to_string();
    assert!(
        e.contains("more than 100 entries") && e.contains("entry f100"),
        "{e}"
    );
}

/// Files in the store's temporary area (work directories themselves not counted).
fn work_files(h: &Host) -> usize {
    fs::read_dir(h.data.join("images/tmp"))
        .unwrap()
        .flatten()
        .map(|w| fs::read_dir(w.path()).map(|d| d.count()).unwrap_or(1))
        .sum()
}

fn write_gzip_layout(dir: &Path, blob: &[u8]) {
    // The layout helper writes uncompressed layers; swap in the gzip blob and its digests.
    oci_layout(dir, &[Vec::new()], "t");
    let blobs = dir.join("blobs/sha256");
    let digest = sha(blob);
    fs::write(blobs.join(&digest[7..]), blob).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:".to_string() + &"0".repeat(64)]}
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = sha(&config);
    fs::write(blobs.join(&cd[7..]), &config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": blob.len()}]
    }))
    .unwrap();
    let md = sha(&manifest);
    fs::write(blobs.join(&md[7..]), &manifest).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t"}
        }]}))
        .unwrap(),
    )
    .unwrap();
}

#[test]
fn the_same_diff_id_on_another_base_is_unpacked_again() {
    let h = host();
    let top = layer(&[E::File("d/file", 0o644, 0, b"top")]);
    // On base A, `d` is a symlink to `a`: the top layer's d/file lands in a/.
    let a = h.import(&[layer(&[E::Dir("a", 0o755), E::Sym("d", "a")]), top.clone()]);
    // On base B, `d` is a directory.
    let b = h.import(&[layer(&[E::Dir("d", 0o755)]), top]);
    assert_eq!(a.diff_ids()[1], b.diff_ids()[1], "one diff_id");
    let da = h.store.ensure_layers(&a).unwrap();
    let db = h.store.ensure_layers(&b).unwrap();
    assert_ne!(da[1], db[1], "cached by chain id, not diff_id");
    assert!(da[1].join("a/file").is_file());
    assert!(db[1].join("d/file").is_file() && !db[1].join("a").exists());
    // Removing one image keeps the other's layers.
    h.store.remove(&a.name).unwrap();
    assert!(!da[1].exists() && db[1].join("d/file").is_file());
}

/// The child side of `a_killed_import_is_reclaimed_but_a_live_one_is_not`: opens the store
/// given in the environment, writes a temporary file, says so, and waits to be killed.
#[test]
fn importer_child() {
    let Ok(data) = std::env::var("HOSTILE_IMPORTER") else {
        return;
    };
    let store = Store::open(Path::new(&data)).unwrap();
    let mut f = store.temp_file().unwrap();
    f.write_all(b"half a blob").unwrap();
    fs::write(
        Path::new(&data).join("ready"),
        f.path().as_os_str().as_encoded_bytes(),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(60));
}

#[test]
fn a_killed_import_is_reclaimed_but_a_live_one_is_not() {
    let h = host();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "importer_child", "--nocapture"])
        .env("HOSTILE_IMPORTER", &h.data)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = h.data.join("ready");
    for _ in 0..500 {
        if ready.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let temp = PathBuf::from(fs::read_to_string(&ready).expect("the child got going"));
    assert!(temp.exists());
    // Another store user reclaims: the live import's file stays.
    Store::open(&h.data).unwrap().reclaim().unwrap();
    assert!(temp.exists(), "a live import's temporary file was removed");
    // kill -9: the next user of the store reclaims what it left.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(temp.exists());
    let s = Store::open(&h.data).unwrap();
    s.temp_file().unwrap(); // first use of the store's temporary area
    assert!(
        !temp.exists() && !temp.parent().unwrap().exists(),
        "reclaimed"
    );
}

#[test]
fn store_directories_are_private_whatever_the_umask() {
    minc_tests::sandbox!();
    let tmp = minc_tests::tempdir();
    // Only the store's own modes may stand between a host user and the layers.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    for umask in [0o000, 0o077, 0o022] {
        // SAFETY: the sandboxed test runs alone in its process.
        unsafe { libc::umask(umask) };
        let data = tmp.path().join(format!("data-{umask:o}"));
        // An existing, too open data root and layers/ are tightened.
        fs::create_dir_all(data.join("layers")).unwrap();
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(data.join("layers"), fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::open(&data).unwrap();
        for d in [
            "",
            "images",
            "images/blobs",
            "images/blobs/sha256",
            "images/tmp",
            "layers",
        ] {
            assert_eq!(mode(&data.join(d)), 0o700, "umask {umask:o}: {d:?}");
        }
        // A setuid-root binary in an unpacked layer.
        let id = fs::read("/usr/bin/id").unwrap();
        let layout = data.with_extension("layout");
        oci_layout(
            &layout,
            &[layer(&[
                E::Dir("bin", 0o755),
                E::File("bin/id", 0o4755, 0, &id),
                E::File("secret", 0o644, 0, b"image file"),
            ])],
            "t",
        );
        store.import(&layout, &ImportOptions::default()).unwrap();
        let img = store
            .resolve(&format!(
                "{}:t",
                layout.file_stem().unwrap().to_string_lossy()
            ))
            .unwrap();
        let dirs = store.ensure_layers(&img).unwrap();
        let rootfs = store.create_rootfs(&img, &data.join("c1")).unwrap();
        assert_eq!(
            mode(&data.join("c1/upper")),
            0o755,
            "the container's / is 0755"
        );
        assert_eq!(mode(&rootfs.path), 0o755);
        assert_eq!(
            mode(&dirs[0].join("bin/id")),
            0o4755,
            "the image's own modes are kept"
        );
        // nobody can neither read nor execute anything below layers/. (Through `sh`: setpriv
        // itself still holds root's capabilities when it calls execve.)
        let nobody = |cmd: &str| {
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .args(["sh", "-c", cmd])
                .output()
                .unwrap()
        };
        let id_path = dirs[0].join("bin/id");
        let out = nobody(&format!("exec {} -u", id_path.display()));
        assert!(
            !out.status.success(),
            "umask {umask:o}: nobody ran the layer's setuid binary: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let out = nobody(&format!("cat {}", dirs[0].join("secret").display()));
        assert!(!out.status.success(), "nobody read a layer's file");
        let out = nobody(&format!("ls {}", data.join("layers").display()));
        assert!(!out.status.success(), "nobody listed layers/");
        images::Store::remove_rootfs(&data.join("c1")).unwrap();
    }
}
