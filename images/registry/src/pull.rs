//! `minc pull`: a reference to a stored image.
//!
//! 1. The manifest: `GET /v2/NAME/manifests/REF` (at most 4 MiB). By digest, its sha256
//!    must be that digest. An index (OCI) or manifest list (Docker) is resolved to the
//!    entry for our platform, which is then fetched by its digest, unless already stored.
//! 2. Its config and layers that the store lacks are downloaded, at most `jobs` at a time
//!    and in manifest order, each into the store's work directory through a
//!    `BlobWriter` (hashed while streaming, refused past the descriptor's size, moved into
//!    place only when digest and size match). The first failure stops the others.
//! 3. Only then the manifest is stored and the name points at it: an interrupted pull
//!    leaves the store as it was (plus any whole, verified blobs, reused next time).

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use images::{ImageName, Store};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;

use crate::client::{http_error, read_bounded, scope, Client};
use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::{interrupt, limits, media, Connection};

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Default: this machine's.
    pub platform: Option<Platform>,
    pub conn: Connection,
    /// No progress bars.
    pub quiet: bool,
    /// Blobs downloaded at once (default 3, as Docker).
    pub jobs: usize,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The stored name, `docker.io/library/busybox:latest`.
    pub name: String,
    /// The (platform) manifest's digest.
    pub digest: String,
    /// Blobs downloaded and their bytes (0 when everything was already stored).
    pub blobs: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Desc {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[serde(default)]
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Desc>>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Option<Vec<Desc>>,
}

/// A fetched manifest or index: its bytes, media type and digest.
struct Fetched {
    bytes: Vec<u8>,
    media_type: String,
    digest: String,
    doc: Doc,
}

pub fn pull(store: &Store, reference: &str, opts: &PullOptions) -> Result<Pulled> {
    interrupt::watch(|| pull_watched(store, reference, opts))
}

fn pull_watched(store: &Store, reference: &str, opts: &PullOptions) -> Result<Pulled> {
    let name = ImageName::parse(reference)
        .map_err(|r| Error::Name(format!("image name {reference:?}: {r}")))?;
    let client = Client::new(&name.registry, None, &opts.conn)?;
    let repo = &name.repository;
    let scope = scope(repo, false);
    let what = name.to_string();

    let top = fetch_manifest(&client, repo, name.reference(), &scope, &what)?;
    if let Some(want) = &name.digest {
        if *want != top.digest {
            return Err(images::Error::DigestMismatch {
                expected: want.clone(),
                actual: top.digest,
            }
            .into());
        }
    }
    let manifest = if media::is_index(&top.media_type) {
        let platform = opts.platform.clone().unwrap_or_else(Platform::host);
        let entries = top.doc.manifests.as_deref().unwrap_or_default();
        let entry = entries
            .iter()
            .find(|d| {
                media::is_manifest(&d.media_type)
                    && d.platform.as_ref().is_some_and(|p| platform.matches(p))
            })
            .ok_or_else(|| Error::NoPlatform {
                what: what.clone(),
                wanted: platform.to_string(),
                available: available(entries),
            })?;
        check_size(entry, limits::MANIFEST, &what)?;
        if store.has_blob(&entry.digest) {
            let bytes = store.read_blob(&entry.digest)?;
            let doc = parse(&bytes, &what)?;
            Fetched {
                media_type: entry.media_type.clone(),
                digest: entry.digest.clone(),
                bytes,
                doc,
            }
        } else {
            let m = fetch_manifest(&client, repo, &entry.digest, &scope, &what)?;
            if m.digest != entry.digest {
                return Err(images::Error::DigestMismatch {
                    expected: entry.digest.clone(),
                    actual: m.digest,
                }
                .into());
            }
            m
        }
    } else {
        top
    };
    if !media::is_manifest(&manifest.media_type) {
        return Err(Error::invalid(
            &what,
            format!("unsupported manifest type {:?}", manifest.media_type),
        ));
    }
    let (config, layers) = match (&manifest.doc.config, &manifest.doc.layers) {
        (Some(c), Some(l)) if manifest.doc.schema_version == 2 => (c.clone(), l.clone()),
        _ => return Err(Error::invalid(&what, "a manifest without config or layers")),
    };
    if config.media_type != media::OCI_CONFIG && config.media_type != media::DOCKER_CONFIG {
        return Err(Error::invalid(
            &what,
            format!(
                "config of type {:?} is not a container image (an artifact?)",
                config.media_type
            ),
        ));
    }
    check_size(&config, limits::CONFIG, &what)?;
    let max_layer = store.options().max_layer_size;
    for l in &layers {
        if !media::is_layer(&l.media_type) {
            return Err(Error::invalid(
                &what,
                format!(
                    "layer {}: unsupported media type {:?}",
                    l.digest, l.media_type
                ),
            ));
        }
        check_size(l, max_layer, &what)?;
    }

    // The blobs we lack, config first, then the layers in manifest order.
    let mut seen = HashSet::new();
    let wanted: Vec<Desc> = std::iter::once(&config)
        .chain(&layers)
        .filter(|d| seen.insert(d.digest.clone()) && !store.has_blob(&d.digest))
        .cloned()
        .collect();
    let bytes: u64 = wanted.iter().map(|d| d.size).sum();
    let finish = || -> Result<()> {
        download_all(&client, store, repo, &scope, &wanted, opts)?;
        check_config(store, &config, layers.len(), &what)?;
        store.put_blob(&manifest.bytes[..], Some(&manifest.digest))?;
        let blobs: Vec<String> = std::iter::once(&config)
            .chain(&layers)
            .map(|d| d.digest.clone())
            .collect();
        store.tag_with_blobs(
            &what,
            &manifest.digest,
            manifest.bytes.len() as u64,
            &manifest.media_type,
            &blobs,
        )?;
        Ok(())
    };
    if let Err(e) = finish() {
        // Whole blobs this pull stored are of no use to a half-pulled image.
        let ours: Vec<String> = wanted.iter().map(|d| d.digest.clone()).collect();
        if let Err(cleanup) = store.remove_unreferenced_blobs(&ours) {
            tracing::warn!("{what}: removing its blobs: {cleanup}");
        }
        return Err(e);
    }
    Ok(Pulled {
        name: what,
        digest: manifest.digest,
        blobs: wanted.len(),
        bytes,
    })
}

/// The config must describe the manifest's layers before a name can point at them.
fn check_config(store: &Store, config: &Desc, layers: usize, what: &str) -> Result<()> {
    let cfg: serde_json::Value = serde_json::from_slice(&store.read_blob(&config.digest)?)
        .map_err(|e| Error::invalid(format!("{what}: config"), e.to_string()))?;
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    if diff_ids != layers {
        return Err(Error::invalid(
            what,
            format!("the config lists {diff_ids} layers, the manifest {layers}"),
        ));
    }
    Ok(())
}

fn available(entries: &[Desc]) -> String {
    let list: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

fn check_size(d: &Desc, limit: u64, what: &str) -> Result<()> {
    if images::digest::hex(&d.digest).is_none() {
        return Err(Error::invalid(
            what,
            format!("{:?} is not a sha256 digest", d.digest),
        ));
    }
    if d.size > limit {
        return Err(Error::TooLarge {
            what: format!("{what}: blob {}", d.digest),
            limit,
        });
    }
    Ok(())
}

fn parse(bytes: &[u8], what: &str) -> Result<Doc> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::invalid(format!("{what}: manifest"), e.to_string()))
}

/// `GET /v2/REPO/manifests/REFERENCE`, at most 4 MiB, with its digest computed.
fn fetch_manifest(
    client: &Client,
    repo: &str,
    reference: &str,
    scope: &str,
    what: &str,
) -> Result<Fetched> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let (url, resp) = client.get(&path, scope, Some(media::ACCEPT_MANIFESTS), false)?;
    match resp.status().as_u16() {
        200 => {}
        404 => {
            return Err(
                images::Error::NotFound(format!("{what} in registry {}", client.registry)).into(),
            )
        }
        _ => return Err(http_error(&url, resp)),
    }
    let header_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let bytes = read_bounded(resp, limits::MANIFEST, &format!("{what}: manifest"))?;
    let digest = images::digest::sha256(&bytes);
    if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
        if h != digest {
            return Err(images::Error::DigestMismatch {
                expected: h,
                actual: digest,
            }
            .into());
        }
    }
    let doc = parse(&bytes, what)?;
    let media_type = doc
        .media_type
        .clone()
        .filter(|t| !t.is_empty())
        .or(header_type.filter(|t| media::is_index(t) || media::is_manifest(t)))
        .unwrap_or_else(|| {
            if doc.manifests.is_some() {
                media::OCI_INDEX.into()
            } else {
                media::OCI_MANIFEST.into()
            }
        });
    Ok(Fetched {
        bytes,
        media_type,
        digest,
        doc,
    })
}

/// Downloads `blobs` with at most `opts.jobs` threads, in order; the first error stops
/// the rest (their partial files are removed as their writers are dropped).
fn download_all(
    client: &Client,
    store: &Store,
    repo: &str,
    scope: &str,
    blobs: &[Desc],
    opts: &PullOptions,
) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    let bars = MultiProgress::with_draw_target(if opts.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr() // hidden by indicatif when stderr is not a terminal
    });
    let style = ProgressStyle::with_template(
        "{prefix:.bold} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
    )
    .expect("template")
    .progress_chars("=> ");
    let queue: Mutex<VecDeque<(&Desc, ProgressBar)>> = Mutex::new(
        blobs
            .iter()
            .map(|d| {
                let bar = bars.add(ProgressBar::new(d.size).with_style(style.clone()));
                bar.set_prefix(d.digest[7..19].to_string());
                (d, bar)
            })
            .collect(),
    );
    let stop = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let jobs = opts.jobs.clamp(1, 8).min(blobs.len());
    let jobs = if opts.jobs == 0 {
        3.min(blobs.len())
    } else {
        jobs
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some((desc, bar)) = queue.lock().expect("lock").pop_front() else {
                    return;
                };
                match download(client, store, repo, scope, desc, &bar, &stop) {
                    Ok(()) => bar.finish(),
                    Err(e) => {
                        bar.abandon();
                        stop.store(true, Ordering::SeqCst);
                        let mut first = first_error.lock().expect("lock");
                        // A real cause beats the "stopped" of the others.
                        if first.is_none() || matches!(*first, Some(Error::Interrupted)) {
                            *first = Some(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("lock") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One blob into the store, verified while it streams.
fn download(
    client: &Client,
    store: &Store,
    repo: &str,
    scope: &str,
    desc: &Desc,
    bar: &ProgressBar,
    stop: &AtomicBool,
) -> Result<()> {
    let path = format!("/v2/{repo}/blobs/{}", desc.digest);
    let (url, resp) = client.get(&path, scope, None, false)?;
    if resp.status().as_u16() != 200 {
        return Err(http_error(&url, resp));
    }
    if let Some(n) = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if n != desc.size {
            return Err(Error::invalid(
                format!("blob {}", desc.digest),
                format!(
                    "the registry sends {n} bytes, the manifest says {}",
                    desc.size
                ),
            ));
        }
    }
    let mut writer = store.blob_writer(&desc.digest, desc.size)?;
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        interrupt::check()?;
        if stop.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                interrupt::check()?;
                return Err(Error::Io {
                    path: format!("blob {} from {url}", desc.digest),
                    source: e,
                });
            }
        };
        writer.write(&buf[..n])?;
        bar.inc(n as u64);
    }
    writer.commit()?;
    Ok(())
}
