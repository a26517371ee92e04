//! `minc push`: a stored image to a registry. Each layer and the config go first, unless
//! the registry has them (`HEAD /v2/NAME/blobs/DIGEST`): a monolithic upload, `POST
//! /v2/NAME/blobs/uploads/` for a location, then `PUT LOCATION?digest=D` with the blob
//! (the registry checks the digest). The manifest goes last, byte for byte as stored, so
//! its digest is the same on both sides.

use std::fs;

use images::{ImageName, Store};

use crate::client::{http_error, scope, Client};
use crate::error::{Error, Result};
use crate::{interrupt, media, Connection};

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub conn: Connection,
}

/// Pushes the stored image `local` as `dest` (default: its own name). Returns the
/// destination's canonical name and the manifest digest.
pub fn push(
    store: &Store,
    local: &str,
    dest: Option<&str>,
    opts: &PushOptions,
) -> Result<(String, String)> {
    let img = store
        .find(local)?
        .ok_or_else(|| images::Error::NotFound(local.into()))?;
    let target = dest.unwrap_or(&img.name);
    let name =
        ImageName::parse(target).map_err(|r| Error::Name(format!("image name {target:?}: {r}")))?;
    let client = Client::new(&name.registry, None, &opts.conn)?;
    let repo = &name.repository;
    let scope = scope(repo, true);
    for (digest, media_type) in img
        .manifest
        .layers
        .iter()
        .map(|l| (&l.digest, &l.media_type))
        .chain(std::iter::once((
            &img.manifest.config.digest,
            &img.manifest.config.media_type,
        )))
    {
        if !media::is_layer(media_type)
            && media_type != media::OCI_CONFIG
            && media_type != media::DOCKER_CONFIG
        {
            return Err(Error::invalid(
                format!("blob {digest}"),
                format!("unknown media type {media_type:?}"),
            ));
        }
        if blob_exists(&client, repo, digest, &scope)? {
            tracing::debug!("{digest}: already in {}", client.registry);
            continue;
        }
        upload(&client, store, repo, digest, &scope)?;
    }
    let manifest = store.read_blob(&img.digest)?;
    let media_type = img
        .manifest
        .media_type
        .clone()
        .unwrap_or_else(|| media::OCI_MANIFEST.to_string());
    let reference = name.tag.clone().unwrap_or_else(|| img.digest.clone());
    let path = format!("/v2/{repo}/manifests/{reference}");
    let (url, resp) = client.send(&path, &scope, &|agent, url, auth| {
        let mut req = agent.put(url).header("Content-Type", media_type.as_str());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send(&manifest[..])
    })?;
    if !(200..300).contains(&resp.status().as_u16()) {
        return Err(http_error(&url, resp));
    }
    Ok((name.to_string(), img.digest))
}

fn blob_exists(client: &Client, repo: &str, digest: &str, scope: &str) -> Result<bool> {
    let (url, resp) = client.get(&format!("/v2/{repo}/blobs/{digest}"), scope, None, true)?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        _ => Err(http_error(&url, resp)),
    }
}

fn upload(client: &Client, store: &Store, repo: &str, digest: &str, scope: &str) -> Result<()> {
    interrupt::check()?;
    let (url, resp) = client.send(
        &format!("/v2/{repo}/blobs/uploads/"),
        scope,
        &|agent, url, auth| {
            let mut req = agent.post(url);
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.send_empty()
        },
    )?;
    if resp.status().as_u16() != 202 {
        return Err(http_error(&url, resp));
    }
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::invalid(&url, "upload started without a Location"))?
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{sep}digest={}", digest.replace(':', "%3A"));
    let path = store.blob_path(digest)?;
    let (url, resp) = client.send(&put, scope, &|agent, url, auth| {
        let file = fs::File::open(&path).map_err(ureq::Error::Io)?;
        let mut req = agent
            .put(url)
            .header("Content-Type", "application/octet-stream");
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        req.send(file)
    })?;
    if resp.status().as_u16() != 201 {
        return Err(http_error(&url, resp));
    }
    Ok(())
}
