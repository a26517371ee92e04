//! End-to-end tests of pulling and pushing with a real registry (Debian's docker-registry on
//! 127.0.0.1 in each test's sandbox), images built here and pushed with skopeo, and the
//! real minc binary: pull by tag and by digest, multi-platform indexes, pulling again
//! without downloads, `run --pull`, push and pull back, basic auth with login/logout, and
//! what a hostile or dying registry leaves behind (nothing).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minc_tests::docker_face::DockerFace;
use minc_tests::registry::{
    busybox_layer, oci_layout, skopeo_digest, skopeo_push, skopeo_raw, tar_files, PlatformImage,
    Registry,
};
use serde_json::{json, Value};

const MINC: &str = env!("CARGO_BIN_EXE_minc");

/// The sandbox as a host with minc's roots and a credentials file of its own.
fn host() -> DockerFace {
    let h = DockerFace::new(MINC);
    let auth = h.dir.join("auth/config.json");
    h.with_env("MINC_AUTH_FILE", auth)
}

/// Where `h` keeps registry credentials.
fn auth(h: &DockerFace) -> PathBuf {
    h.dir.join("auth/config.json")
}

/// A second host: its own roots, the same credentials file as `h`.
fn second_host(h: &DockerFace) -> DockerFace {
    DockerFace::new(MINC).with_env("MINC_AUTH_FILE", auth(h))
}

/// A busybox image with a second layer holding /hello and /arch.
fn app_image(tmp: &Path, arch: &'static str) -> PlatformImage {
    PlatformImage {
        arch,
        layers: vec![
            busybox_layer(tmp),
            tar_files(&[
                ("hello", 0o644, b"hello from the registry\n"),
                ("arch", 0o644, arch.as_bytes()),
            ]),
        ],
        config: json!({}),
    }
}

/// Pushes [`app_image`] (one platform) to `dest` with skopeo, from a layout made in `h.dir`.
fn push_app(h: &DockerFace, dest: &str, creds: Option<&str>) {
    let layout = h.dir.join("single");
    oci_layout(&layout, "v1", &[app_image(&h.dir, "amd64")]);
    skopeo_push(&layout, "v1", dest, creds);
}

/// `minc run --rm --network none IMAGE CMD...`, which must succeed: its stdout.
fn run_offline(h: &DockerFace, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend(cmd);
    h.ok(&args)
}

#[test]
fn pull_run_repull_digest_and_platforms() {
    minc_tests::sandbox!();
    let h = host();
    let reg = Registry::start(&h.dir.join("reg"), 5000, None);
    let a = reg.addr();
    push_app(&h, &format!("{a}/app/single:v1"), None);
    let multi = h.dir.join("multi");
    let arm = PlatformImage {
        arch: "arm64",
        layers: vec![tar_files(&[("arch", 0o644, b"arm64")])],
        config: json!({}),
    };
    oci_layout(&multi, "m1", &[app_image(&h.dir, "amd64"), arm]);
    skopeo_push(&multi, "m1", &format!("{a}/app/multi:m1"), None);

    // By tag: config + 2 layers downloaded, then it runs.
    let before = reg.blob_gets();
    let name = h.ok(&["pull", "-q", &format!("{a}/app/single:v1")]);
    assert_eq!(name.trim(), format!("{a}/app/single:v1"));
    assert_eq!(reg.blob_gets() - before, 3, "config and two layers");
    let out = run_offline(&h, &format!("{a}/app/single:v1"), &["cat", "/hello"]);
    assert_eq!(out, "hello from the registry\n");

    // Again: the manifest is asked for, no blob is downloaded.
    let before = reg.blob_gets();
    let manifests = reg.requests("GET", "/manifests/");
    h.ok(&["pull", "-q", &format!("{a}/app/single:v1")]);
    assert_eq!(reg.blob_gets(), before, "nothing downloaded again");
    assert_eq!(reg.requests("GET", "/manifests/"), manifests + 1);

    // By digest (the registry's own, as skopeo computes it): same image, nothing new.
    let digest = skopeo_digest(&format!("{a}/app/single:v1"), None);
    let by_digest = format!("{a}/app/single@{digest}");
    assert_eq!(h.ok(&["pull", "-q", &by_digest]).trim(), by_digest);
    assert_eq!(reg.blob_gets(), before);
    assert_eq!(run_offline(&h, &by_digest, &["cat", "/arch"]), "amd64");
    let missing = format!("{a}/app/single@sha256:{}", "0".repeat(64));
    let err = h.fails(&["pull", "-q", &missing]);
    assert!(err.contains("not found"), "{err}");

    // A two-platform index: `run` pulls what is missing (in a child `minc pull`) and gets
    // this machine's platform.
    let m = format!("{a}/app/multi:m1");
    let out = run_offline(&h, &m, &["cat", "/arch"]);
    assert_eq!(out, "amd64", "the host's platform from the index");
    h.ok(&["pull", "-q", "--platform", "linux/arm64", &m]);
    let cfg: Value = serde_json::from_str(&h.ok(&["image", "inspect", &m])).unwrap();
    assert_eq!(cfg["architecture"], "arm64");
    let err = h.fails(&["pull", "-q", "--platform", "linux/s390x", &m]);
    assert!(
        err.contains("no manifest for platform linux/s390x") && err.contains("linux/amd64"),
        "{err}"
    );

    // Docker's media types (a manifest list of v2s2 manifests), as `docker push` writes.
    minc_tests::registry::skopeo_push_as(
        &multi,
        "m1",
        &format!("{a}/app/docker:1"),
        None,
        Some("v2s2"),
    );
    let raw = skopeo_raw(&format!("{a}/app/docker:1"), None);
    assert!(String::from_utf8_lossy(&raw).contains("manifest.list.v2+json"));
    let d = format!("{a}/app/docker:1");
    assert_eq!(run_offline(&h, &d, &["cat", "/arch"]), "amd64");

    // --pull=never does not pull; --pull=always asks the registry again.
    let gets = reg.requests("GET", "/manifests/");
    let err = h.fails(&[
        "run",
        "--rm",
        "--pull=never",
        "--network",
        "none",
        &format!("{a}/app/other:1"),
        "true",
    ]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(
        reg.requests("GET", "/manifests/"),
        gets,
        "never means never"
    );
    h.ok(&[
        "run",
        "--rm",
        "--pull=always",
        "--network",
        "none",
        &format!("{a}/app/single:v1"),
        "true",
    ]);
    assert_eq!(reg.requests("GET", "/manifests/"), gets + 1);

    // `minc images`: repository, tag, id, created, size.
    let images = h.ok(&["images"]);
    let header = images.lines().next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{images}");
    }
    assert!(
        images
            .lines()
            .any(|l| l.starts_with(&format!("{a}/app/single ")) && l.contains(" v1 ")),
        "{images}"
    );
    // Nothing left in the store's work directories.
    assert_eq!(h.store_temp_files(), Vec::<PathBuf>::new());
}

#[test]
fn push_and_pull_back_under_another_name() {
    minc_tests::sandbox!();
    let h = host();
    let reg = Registry::start(&h.dir.join("reg"), 5000, None);
    let a = reg.addr();
    // A local image: `localhost/bb:latest`, run as `bb`.
    let rootfs = h.dir.join("bb");
    minc_tests::busybox_rootfs(&rootfs);
    std::fs::write(rootfs.join("made-here"), "local\n").unwrap();
    let tar = h.dir.join("bb.tar");
    std::fs::write(&tar, minc_tests::registry::tar_dir(&rootfs)).unwrap();
    let name = h.ok(&[
        "image",
        "import",
        tar.to_str().unwrap(),
        "--name",
        "bb",
        "--cmd",
        "sh",
    ]);
    assert_eq!(name.trim(), "localhost/bb:latest");
    assert_eq!(run_offline(&h, "bb", &["cat", "/made-here"]), "local\n");
    assert_eq!(
        run_offline(&h, "localhost/bb", &["cat", "/made-here"]),
        "local\n"
    );

    // tag + push, and the two-argument form under another name.
    let dest = format!("{a}/team/bb:v1");
    assert_eq!(h.ok(&["tag", "bb", &dest]).trim(), dest);
    h.ok(&["push", &dest]);
    let local_digest = h.image_index()["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == dest.as_str())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        skopeo_digest(&dest, None),
        local_digest,
        "same manifest bytes"
    );
    let uploads = reg.requests("PUT", "/blobs/uploads/");
    let other = format!("{a}/elsewhere/renamed:2");
    h.ok(&["push", "bb", &other]);
    // The second push finds the blobs... in another repository, so they go up again; a
    // third push to the same place uploads none.
    let after_second = reg.requests("PUT", "/blobs/uploads/");
    h.ok(&["push", "bb", &other]);
    assert_eq!(
        reg.requests("PUT", "/blobs/uploads/"),
        after_second,
        "no upload when the registry has the blobs"
    );
    assert!(after_second > uploads);

    // Pulled back on another host under the other name, it runs.
    let h2 = second_host(&h);
    h2.ok(&["pull", "-q", &other]);
    assert_eq!(run_offline(&h2, &other, &["cat", "/made-here"]), "local\n");

    // An image a container was made from is not removed without -f.
    h.ok(&["run", "--name", "user1", "--network", "none", "bb", "true"]);
    h.ok(&["image", "rm", &dest]); // another name of it stays: fine
    let err = h.fails(&["image", "rm", "bb"]);
    assert!(err.contains("in use by container user1"), "{err}");
    h.ok(&["image", "rm", "-f", "bb"]);
    assert!(h.fails(&["image", "inspect", "bb"]).contains("not found"));
    h.ok(&["rm", "user1"]);
}

#[test]
fn basic_auth_login_logout() {
    minc_tests::sandbox!();
    let h = host();
    let reg = Registry::start(&h.dir.join("reg"), 5000, Some(("alice", "s3cret")));
    let a = reg.addr();
    let image = format!("{a}/priv/app:v1");
    push_app(&h, &image, Some("alice:s3cret"));

    let err = h.fails(&["pull", "-q", &image]);
    assert!(
        err.contains("authentication required") && err.contains("minc login"),
        "{err}"
    );

    let login = |pass: &str| {
        minc_tests::output_with_stdin(
            &mut h.cmd(&["login", "-u", "alice", "--password-stdin", &a]),
            format!("{pass}\n").as_bytes(),
        )
    };
    let bad = login("wrong");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("refused"),
        "{bad:?}"
    );
    assert!(!auth(&h).exists(), "nothing stored for refused credentials");
    let good = login("s3cret");
    assert!(good.status.success(), "{good:?}");
    assert_eq!(String::from_utf8_lossy(&good.stdout), "Login Succeeded\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(auth(&h)).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(auth(&h)).unwrap()).unwrap();
    assert_eq!(
        doc["auths"][&a]["auth"], "YWxpY2U6czNjcmV0",
        "Docker's format"
    );
    // skopeo reads the same file.
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(auth(&h))
        .arg(format!("docker://{image}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo with minc's credentials");

    h.ok(&["pull", "-q", &image]);
    assert_eq!(run_offline(&h, &image, &["cat", "/arch"]), "amd64");
    h.ok(&["push", &image, &format!("{a}/priv/copy:1")]);
    h.ok(&["logout", &a]);
    let err = h.fails(&["pull", "-q", &format!("{a}/priv/copy:1")]);
    assert!(err.contains("authentication required"), "{err}");
}

#[test]
fn corrupted_blob_is_refused_and_leaves_nothing() {
    minc_tests::sandbox!();
    let h = host();
    let reg = Registry::start(&h.dir.join("reg"), 5000, None);
    let a = reg.addr();
    push_app(&h, &format!("{a}/app/bad:v1"), None);
    // Flip bytes in the second layer's stored data (same size).
    let manifest: Value =
        serde_json::from_slice(&skopeo_raw(&format!("{a}/app/bad:v1"), None)).unwrap();
    let layer = manifest["layers"][1]["digest"].as_str().unwrap();
    let file = reg.blob_file(layer);
    let mut data = std::fs::read(&file).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).unwrap();

    // Something already stored is kept; the failed pull adds nothing.
    let h_index = |h: &DockerFace| h.image_index()["manifests"].as_array().map_or(0, Vec::len);
    let err = h.fails(&["pull", "-q", &format!("{a}/app/bad:v1")]);
    assert!(
        err.contains("digest mismatch") && err.contains(layer),
        "{err}"
    );
    assert_eq!(h_index(&h), 0, "no name");
    assert_eq!(
        h.blob_count(),
        0,
        "no blob, not even the good ones of this pull"
    );
    assert_eq!(
        h.store_temp_files(),
        Vec::<PathBuf>::new(),
        "no partial file"
    );
}

/// A TCP proxy in front of the registry that, once `limit` bytes went from the registry to
/// the client, runs `at_limit` and then stops forwarding (closing both sides if `close`).
fn proxy(
    listen: u16,
    upstream: u16,
    limit: u64,
    close: bool,
    at_limit: impl Fn() + Send + Sync + 'static,
) -> Arc<AtomicBool> {
    let l = TcpListener::bind(("127.0.0.1", listen)).unwrap();
    let tripped = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let at_limit = Arc::new(at_limit);
    let t = tripped.clone();
    std::thread::spawn(move || {
        for client in l.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
            });
            let (t, sent, at_limit) = (t.clone(), sent.clone(), at_limit.clone());
            std::thread::spawn(move || {
                let (mut client, mut server) = (client, server);
                let mut buf = [0u8; 64 << 10];
                loop {
                    let n = match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    if sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64 >= limit
                        && !t.swap(true, Ordering::SeqCst)
                    {
                        at_limit();
                        if close {
                            let _ = client.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        // Stall: keep the connection open, send nothing more.
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                }
            });
        }
    });
    tripped
}

/// Waits until a partial download of at least 4 MiB is in the store's work area.
fn wait_for_partial(h: &DockerFace) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let big: Vec<PathBuf> = h
            .store_temp_files()
            .into_iter()
            .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() >= 4 << 20))
            .collect();
        if let Some(f) = big.into_iter().next() {
            return f;
        }
        assert!(Instant::now() < deadline, "no partial download appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 48 MiB that do not compress.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn registry_dying_or_minc_killed_mid_pull_leaves_no_partial_blob() {
    minc_tests::sandbox!();
    let h = host();
    let regdir = h.dir.join("reg");
    let reg = Registry::start(&regdir, 5000, None);
    let layout = h.dir.join("big");
    let big = PlatformImage {
        arch: "amd64",
        layers: vec![
            busybox_layer(&h.dir),
            tar_files(&[("noise", 0o644, &noise(48 << 20))]),
        ],
        config: json!({}),
    };
    oci_layout(&layout, "1", &[big]);
    skopeo_push(&layout, "1", "127.0.0.1:5000/big:1", None);

    // 1. The registry is killed (SIGKILL) when 8 MiB of blob data went out.
    let pid = reg.child.id() as i32;
    let tripped = proxy(5001, 5000, 8 << 20, true, move || {
        // SAFETY: killing the registry this test started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let err = h.fails(&["pull", "-q", "127.0.0.1:5001/big:1"]);
    assert!(
        tripped.load(Ordering::SeqCst),
        "the proxy cut the download: {err}"
    );
    assert_eq!(
        h.store_temp_files(),
        Vec::<PathBuf>::new(),
        "no partial blob: {err}"
    );
    assert_eq!(h.blob_count(), 0, "no blob of the failed pull");
    assert_eq!(h.image_index()["manifests"].as_array().unwrap().len(), 0);
    drop(reg);

    // 2. Ctrl-C (SIGINT) while the registry stalls mid-blob: minc stops at once and
    //    removes its partial file.
    let reg = Registry::start(&regdir, 5000, None);
    proxy(5003, 5000, 8 << 20, false, || {});
    let child = h
        .cmd(&["pull", "-q", "127.0.0.1:5003/big:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_partial(&h);
    // SAFETY: signalling the minc this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Ctrl-C took {:?}",
        started.elapsed()
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("interrupted"),
        "{out:?}"
    );
    assert_eq!(
        h.store_temp_files(),
        Vec::<PathBuf>::new(),
        "partial file removed"
    );
    assert_eq!(h.blob_count(), 0);

    // 3. minc itself killed with SIGKILL mid-download: its partial file stays until the
    //    next minc that needs the store's work area reclaims it.
    proxy(5002, 5000, 8 << 20, false, || {});
    let mut child = h
        .cmd(&["pull", "-q", "127.0.0.1:5002/big:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = wait_for_partial(&h);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.exists(), "SIGKILL leaves the partial file for now");
    h.ok(&["pull", "-q", "127.0.0.1:5000/big:1"]);
    assert!(!partial.exists(), "reclaimed by the next pull");
    assert_eq!(h.store_temp_files(), Vec::<PathBuf>::new());
    assert_eq!(
        run_offline(&h, "127.0.0.1:5000/big:1", &["sh", "-c", "wc -c < /noise"]).trim(),
        (48u64 << 20).to_string()
    );
    drop(reg);
}

/// A hostile registry (a small HTTP server of this test, since no real registry misbehaves
/// on purpose): the Bearer token flow first, then answers no client should believe.
fn hostile_registry(port: u16, hits: Arc<AtomicU64>) {
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let hits = hits.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut req = Vec::new();
                let mut byte = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") && req.len() < 65536 {
                    if conn.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    req.push(byte[0]);
                }
                let req = String::from_utf8_lossy(&req).into_owned();
                let line = req.lines().next().unwrap_or("").to_string();
                let authed = req.contains("Authorization: Bearer good-token")
                    || req.contains("authorization: Bearer good-token");
                let send = |conn: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(body);
                };
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"hostile\"\r\n"
                );
                if line.starts_with("GET /token?") {
                    assert!(
                        line.contains("service=hostile") && line.contains("scope=repository%3A"),
                        "{line}"
                    );
                    send(
                        &mut conn,
                        "200 OK",
                        "Content-Type: application/json\r\n",
                        br#"{"token":"good-token"}"#,
                    );
                } else if !authed {
                    send(&mut conn, "401 Unauthorized", &challenge, b"");
                } else if line.starts_with("GET /v2/endless/manifests/") {
                    // A manifest that never ends (4 GiB announced, streamed as long as read).
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4294967296\r\n\r\n"
                    );
                    let chunk = vec![b' '; 1 << 20];
                    while conn.write_all(&chunk).is_ok() {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                } else if line.starts_with("GET /v2/noisy/manifests/") {
                    let mut body = b"{\"errors\":[{\"code\":\"DENIED\",\"message\":\"\x1b[31mred\x1b]0;title\x07".to_vec();
                    body.extend(vec![b'x'; 1 << 20]);
                    body.extend(b"\"}]}");
                    send(
                        &mut conn,
                        "403 Forbidden",
                        "Content-Type: application/json\r\n",
                        &body,
                    );
                } else if line.starts_with("GET /v2/liar/manifests/") {
                    let layer = minc_tests::registry::sha(b"small");
                    let config = minc_tests::registry::sha(b"{}");
                    let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
                        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}]});
                    send(
                        &mut conn,
                        "200 OK",
                        "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
                        m.to_string().as_bytes(),
                    );
                } else if line.starts_with("GET /v2/liar/blobs/") {
                    // Five bytes announced in the manifest; an endless stream sent without a
                    // length.
                    let _ = write!(conn, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
                    let chunk = vec![b'a'; 1 << 20];
                    while conn.write_all(&chunk).is_ok() {
                        hits.fetch_add(1, Ordering::SeqCst);
                    }
                } else {
                    send(&mut conn, "404 Not Found", "", b"");
                }
            });
        }
    });
}

#[test]
fn hostile_registry_answers_are_bounded() {
    minc_tests::sandbox!();
    let h = host();
    let hits = Arc::new(AtomicU64::new(0));
    hostile_registry(5009, hits.clone());
    // An endless manifest: refused after 4 MiB, not read into memory until the OOM killer.
    let started = Instant::now();
    let out = h.minc(&["pull", "-q", "127.0.0.1:5009/endless:1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("manifest: more than 4194304 bytes"), "{err}");
    assert!(hits.load(Ordering::SeqCst) < 64, "read far past the bound");
    assert!(started.elapsed() < Duration::from_secs(30));
    // An error body with escape sequences and 1 MiB of text: shown bounded and clean.
    let err = h.fails(&["pull", "-q", "127.0.0.1:5009/noisy:1"]);
    assert!(
        err.contains("403") && err.contains("DENIED") && err.contains("[31mred]0;title"),
        "{err}"
    );
    assert!(
        !err.contains('\x1b') && !err.contains('\x07') && err.len() < 1000,
        "{err:?}"
    );
    assert_eq!(err.lines().count(), 1);
    // A blob longer than its descriptor says: refused at the first byte past it.
    hits.store(0, Ordering::SeqCst);
    let err = h.fails(&["pull", "-q", "127.0.0.1:5009/liar:1"]);
    assert!(err.contains("more data than its size of"), "{err}");
    assert!(hits.load(Ordering::SeqCst) < 64);
    assert_eq!(h.store_temp_files(), Vec::<PathBuf>::new());
    assert_eq!(h.blob_count(), 0);
}
