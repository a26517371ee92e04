//! End-to-end: hostile images through the real `minc` binary (`minc image import`, then
//! `minc run` and `minc image unpack`), each in its own sandbox. The "host" is a directory
//! outside every root with a sentinel file in it; every test asserts the sentinel is
//! unchanged and never shows up in a container, and that a refused image fails with one
//! clear line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

#[path = "../../images/tests/common/mod.rs"]
mod common;
use common::{layer, oci_layout, E};
use minc_tests::docker_face::DockerFace;

const MINC: &str = env!("CARGO_BIN_EXE_minc");
const SECRET: &str = "host secret, never in a container";

/// minc with roots of the test's own (see [`DockerFace`]) in a directory anyone may traverse,
/// beside a "host" directory holding a sentinel file.
struct Host {
    m: DockerFace,
    sentinel: PathBuf,
}

impl Host {
    fn new() -> Host {
        let m = DockerFace::new(MINC);
        // Traversable by anyone: only the store's own modes may protect it.
        fs::set_permissions(&m.dir, fs::Permissions::from_mode(0o755)).unwrap();
        let host = m.dir.join("host");
        fs::create_dir(&host).unwrap();
        let sentinel = host.join("sentinel");
        fs::write(&sentinel, SECRET).unwrap();
        Host { m, sentinel }
    }

    /// `minc ARGS` with `env` added to its environment.
    fn minc_with(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        minc_tests::output_via_files(self.m.cmd(args).envs(env.iter().copied()))
    }

    /// `minc run --rm --network none IMAGE CMD...`
    fn run(&self, env: &[(&str, &str)], image: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--network", "none", image];
        args.extend(cmd);
        self.minc_with(env, &args)
    }

    /// Imports an OCI layout of a busybox layer plus `layers` as `name`.
    fn import(&self, name: &str, layers: Vec<Vec<u8>>) {
        let bb = self.m.dir.join("bb");
        if !bb.exists() {
            minc_tests::busybox_rootfs(&bb);
        }
        let base = self.m.dir.join("busybox.tar");
        if !base.exists() {
            minc_tests::image::rootfs_tar(&bb, &base);
        }
        let mut all = vec![fs::read(&base).unwrap()];
        all.extend(layers);
        let layout = self.m.dir.join(format!("layout-{name}"));
        oci_layout(&layout, &all, "latest");
        let out = self
            .m
            .minc(&["image", "import", layout.to_str().unwrap(), "--name", name]);
        assert!(out.status.success(), "import {name}: {}", text(&out.stderr));
    }

    fn untouched(&self) {
        assert_eq!(fs::read_to_string(&self.sentinel).unwrap(), SECRET);
        let names: Vec<_> = fs::read_dir(self.sentinel.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("rootfs"))
            .collect();
        assert_eq!(names, ["sentinel"], "the host directory changed");
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A failed command's stderr: exactly one line, `minc: ...` (see
/// [`minc_tests::bad_input_error`]), containing each of `words`.
fn one_clear_line(out: &Output, words: &[&str]) {
    let err = minc_tests::bad_input_error(out);
    for w in words {
        assert!(err.contains(w), "{w:?} missing from: {err}");
    }
}

#[test]
fn hard_link_to_a_lower_symlink_never_copies_the_host_file() {
    minc_tests::sandbox!();
    let h = Host::new();
    let abs = h.sentinel.display().to_string();
    h.import(
        "stealer",
        vec![
            layer(&[E::Sym("secretlink", &abs)]),
            layer(&[E::Link("stolen", "secretlink")]),
        ],
    );
    let out = h.run(&[], "stealer", &["cat", "/stolen"]);
    assert!(
        !text(&out.stdout).contains(SECRET),
        "the container read the host file"
    );
    // /stolen is the symlink itself, naming a path that does not exist in the container.
    let out = h.run(&[], "stealer", &["readlink", "/stolen"]);
    assert_eq!(text(&out.stdout).trim(), abs, "{}", text(&out.stderr));
    h.untouched();
}

#[test]
fn whiteouts_of_dotdot_are_refused_and_touch_nothing() {
    minc_tests::sandbox!();
    let h = Host::new();
    // A sentinel where `..` of a layer being unpacked for `run` used to lead.
    h.m.minc(&["images"]);
    let keep = h.m.data.join("images/tmp/keep");
    fs::write(&keep, "keep").unwrap();
    h.import(
        "wh",
        vec![layer(&[E::Raw(
            b".wh...",
            tar::EntryType::Regular,
            b"",
            b"",
        )])],
    );
    let out = h.run(&[], "wh", &["true"]);
    one_clear_line(&out, &["entry .wh...", "names no file", "layer sha256:"]);
    assert!(keep.exists(), "a store directory was wiped");
    // Flattened into a directory beside the sentinel: `..` of the target is the host dir.
    let dest = h.sentinel.parent().unwrap().join("rootfs");
    let out = h.m.minc(&["image", "unpack", "wh", dest.to_str().unwrap()]);
    one_clear_line(&out, &["entry .wh...", "names no file"]);
    h.untouched();
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() {
    minc_tests::sandbox!();
    let h = Host::new();
    // 64 MiB of zeros behind a tar header, gzip-compressed to about 64 KB.
    let mut hd = tar::Header::new_gnu();
    hd.set_path("bomb").unwrap();
    hd.set_size(64 << 20);
    hd.set_mode(0o644);
    hd.set_cksum();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, hd.as_bytes()).unwrap();
    std::io::Write::write_all(&mut gz, &vec![0u8; 64 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let tarball = h.m.dir.join("bomb.tar.gz");
    fs::write(&tarball, &bomb).unwrap();
    let limit = [("MINC_MAX_LAYER_SIZE", "16M")];
    let out = h.minc_with(
        &limit,
        &[
            "image",
            "import",
            tarball.to_str().unwrap(),
            "--name",
            "bomb",
        ],
    );
    one_clear_line(
        &out,
        &["larger than the limit of 16 MiB", "MINC_MAX_LAYER_SIZE"],
    );
    // Without the lower limit it imports; `run` under the limit refuses it.
    let ok = h.m.minc(&[
        "image",
        "import",
        tarball.to_str().unwrap(),
        "--name",
        "bomb",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let out = h.run(&limit, "bomb", &["true"]);
    one_clear_line(&out, &["larger than the limit of 16 MiB"]);
    // Nothing half-written is left: no layer, no temporary file.
    assert_eq!(fs::read_dir(h.m.data.join("layers")).unwrap().count(), 0);
    let leftovers: usize = fs::read_dir(h.m.data.join("images/tmp"))
        .unwrap()
        .flatten()
        .map(|w| fs::read_dir(w.path()).map(|d| d.count()).unwrap_or(1))
        .sum();
    assert_eq!(leftovers, 0);
    h.untouched();
}

#[test]
fn host_users_cannot_reach_unpacked_layers() {
    minc_tests::sandbox!();
    let h = Host::new();
    let id = fs::read("/usr/bin/id").unwrap();
    h.import(
        "suid",
        vec![layer(&[
            E::Dir("usr", 0o755),
            E::Dir("usr/local", 0o755),
            E::File("usr/local/suid-id", 0o4755, 0, &id),
        ])],
    );
    let out = h.run(&[], "suid", &["true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let layers: Vec<PathBuf> = fs::read_dir(h.m.data.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let suid = layers
        .iter()
        .map(|l| l.join("usr/local/suid-id"))
        .find(|p| p.exists())
        .expect("the layer is unpacked");
    // An unprivileged host user (a shell of its own: setpriv still holds root's
    // capabilities at its own execve).
    let nobody = |cmd: String| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["sh", "-c", &cmd])
            .output()
            .unwrap()
    };
    let out = nobody(format!("exec {} -u", suid.display()));
    assert!(
        !out.status.success(),
        "nobody ran the image's setuid binary: euid {}",
        text(&out.stdout)
    );
    let out = nobody(format!("ls {}", h.m.data.join("layers").display()));
    assert!(!out.status.success(), "nobody listed layers/");
    for d in ["", "images", "layers"] {
        let mode = fs::metadata(h.m.data.join(d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{d:?}");
    }
}
