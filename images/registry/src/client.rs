//! The HTTP side of the distribution protocol: which scheme a registry speaks, who we are
//! to it (see `auth`), and reading its answers with a bound.
//!
//! Endpoints used (OCI distribution spec): `GET /v2/` (is it a registry, how to
//! authenticate), `GET|HEAD /v2/NAME/manifests/REF`, `GET|HEAD /v2/NAME/blobs/DIGEST`,
//! `POST /v2/NAME/blobs/uploads/` then `PUT LOCATION?digest=...`, `PUT
//! /v2/NAME/manifests/REF`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::Response;
use ureq::Body;

use crate::auth::{parse_challenge, AuthFile, Challenge, Credentials};
use crate::error::{Error, Result};
use crate::limits;

pub struct Client {
    agent: ureq::Agent,
    /// As named: `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Where its API is: `registry-1.docker.io` for Docker Hub, else the registry.
    api_host: String,
    /// `https://HOST` or, where allowed and HTTPS fails, `http://HOST`; set by `ping`.
    base: Mutex<Option<String>>,
    allow_http: bool,
    creds: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    /// `Authorization` values by scope.
    tokens: Mutex<HashMap<String, String>>,
}

/// Builds and sends one request: given the agent, the URL and the `Authorization` value.
pub type Build<'a> = dyn Fn(&ureq::Agent, &str, Option<&str>) -> std::result::Result<Response<Body>, ureq::Error>
    + 'a;

/// `repository:NAME:pull` or `repository:NAME:pull,push`.
pub fn scope(repository: &str, push: bool) -> String {
    format!(
        "repository:{repository}:{}",
        if push { "pull,push" } else { "pull" }
    )
}

impl Client {
    /// A client for `registry`, with `creds` or those stored for it.
    pub fn new(
        registry: &str,
        creds: Option<Credentials>,
        conn: &crate::Connection,
    ) -> Result<Client> {
        let creds = match creds {
            Some(c) => Some(c),
            None => AuthFile::locate(conn.auth_file.as_deref()).get(registry)?,
        };
        let host = images::reference::host_of(registry);
        let loopback = host == "localhost" || host == "::1" || host.starts_with("127.");
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(concat!("minc/", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            // A registry that stops sending mid-blob does not hang us forever.
            .timeout_per_read(Some(Duration::from_secs(120)))
            .max_redirects(10)
            // Blob downloads are redirected to storage hosts (S3, CDNs) that must not get
            // our registry token.
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .max_idle_connections_per_host(8)
            .build();
        Ok(Client {
            agent: config.new_agent(),
            registry: registry.to_string(),
            api_host: if registry == images::reference::DOCKER_HUB {
                "registry-1.docker.io".into()
            } else {
                registry.to_string()
            },
            base: Mutex::new(None),
            allow_http: conn.insecure || loopback,
            creds,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn base(&self) -> Result<String> {
        if let Some(b) = self.base.lock().expect("lock").clone() {
            return Ok(b);
        }
        self.ping()?;
        Ok(self
            .base
            .lock()
            .expect("lock")
            .clone()
            .expect("set by ping"))
    }

    /// `GET /v2/`: over HTTPS, or plain HTTP where allowed and HTTPS cannot connect.
    /// Remembers the authentication challenge.
    fn ping(&self) -> Result<()> {
        let mut last = None;
        for scheme in ["https", "http"] {
            if scheme == "http" && !self.allow_http {
                break;
            }
            let url = format!("{scheme}://{}/v2/", self.api_host);
            crate::interrupt::check()?;
            let mut req = self.agent.get(&url);
            if scheme == "https" && self.allow_http {
                // Where plain HTTP may follow, a server that does not answer TLS at all
                // must not hold us for the whole connect timeout.
                req = req
                    .config()
                    .timeout_global(Some(Duration::from_secs(3)))
                    .build();
            }
            match req.call() {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 401 {
                        *self.challenge.lock().expect("lock") = challenge_of(&resp);
                    } else if !(200..300).contains(&status) {
                        return Err(http_error(&url, resp));
                    }
                    *self.base.lock().expect("lock") =
                        Some(format!("{scheme}://{}", self.api_host));
                    return Ok(());
                }
                Err(e) => {
                    crate::interrupt::check()?;
                    tracing::debug!("{url}: {e}");
                    last = Some(Error::Transport {
                        url,
                        source: Box::new(e),
                    });
                }
            }
        }
        Err(last.expect("one scheme tried"))
    }

    /// `minc login`: the credentials must be accepted (a token for the registry's own
    /// challenge, or a 200 on `/v2/` with basic auth).
    pub fn check_login(&self) -> Result<()> {
        self.base()?;
        let challenge = self.challenge.lock().expect("lock").clone();
        let auth = match &challenge {
            None => return Ok(()), // the registry asks for nothing
            Some(Challenge::Basic) => self.creds.as_ref().map(Credentials::basic_header),
            Some(Challenge::Bearer { realm, service, .. }) => {
                Some(self.fetch_token(realm, service.as_deref(), None)?)
            }
        };
        let url = format!("{}/v2/", self.base()?);
        let mut req = self.agent.get(&url);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let resp = req.call().map_err(|e| transport(&url, e))?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 | 403 => Err(Error::Auth {
                registry: self.registry.clone(),
                reason: "login refused: wrong user name or password".into(),
            }),
            _ => Err(http_error(&url, resp)),
        }
    }

    /// The `Authorization` value for `scope`, fetching a token if the registry wants one.
    fn authorization(&self, scope: &str, fresh: bool) -> Result<Option<String>> {
        if !fresh {
            if let Some(t) = self.tokens.lock().expect("lock").get(scope) {
                return Ok(Some(t.clone()));
            }
        }
        let challenge = self.challenge.lock().expect("lock").clone();
        let value = match challenge {
            None => return Ok(None),
            Some(Challenge::Basic) => match &self.creds {
                Some(c) => c.basic_header(),
                None => {
                    return Err(Error::Unauthorized {
                        registry: self.registry.clone(),
                    })
                }
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                self.fetch_token(&realm, service.as_deref(), Some(scope))?
            }
        };
        self.tokens
            .lock()
            .expect("lock")
            .insert(scope.to_string(), value.clone());
        Ok(Some(value))
    }

    /// Docker's token protocol: `GET REALM?service=S&scope=X`, anonymously or with basic
    /// auth; the answer is JSON with `token` (or OAuth's `access_token`).
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String> {
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(Error::Auth {
                registry: self.registry.clone(),
                reason: format!("token realm {realm:?} is not an http(s) URL"),
            });
        }
        if realm.starts_with("http://") && self.creds.is_some() && !self.allow_http {
            return Err(Error::Auth {
                registry: self.registry.clone(),
                reason: format!("will not send credentials to {realm} over plain HTTP"),
            });
        }
        let mut url = realm.to_string();
        let mut sep = if realm.contains('?') { '&' } else { '?' };
        for (k, v) in [("service", service), ("scope", scope)] {
            if let Some(v) = v {
                url.push_str(&format!("{sep}{k}={}", query_escape(v)));
                sep = '&';
            }
        }
        crate::interrupt::check()?;
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.creds {
            req = req.header("Authorization", c.basic_header());
        }
        let resp = req.call().map_err(|e| transport(realm, e))?;
        match resp.status().as_u16() {
            200..=299 => {}
            401 | 403 => {
                return Err(Error::Auth {
                    registry: self.registry.clone(),
                    reason: if self.creds.is_some() {
                        "the token service refused the credentials".into()
                    } else {
                        "the token service refused an anonymous token (minc login?)".into()
                    },
                })
            }
            _ => return Err(http_error(realm, resp)),
        }
        let body = read_bounded(resp, limits::TOKEN, &format!("token from {realm}"))?;
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid(format!("token from {realm}"), e.to_string()))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| Error::invalid(format!("token from {realm}"), "no usable token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// A URL of the registry's API: `/v2/...` paths, or an upload `Location` (absolute,
    /// or relative to the registry).
    pub fn url(&self, path: &str) -> Result<String> {
        if path.starts_with("https://") || path.starts_with("http://") {
            return Ok(path.to_string());
        }
        Ok(format!("{}{path}", self.base()?))
    }

    /// Whether `url` is on the registry's own host (only then does it get our token).
    fn ours(&self, url: &str) -> bool {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .unwrap_or("");
        rest.split('/').next() == Some(self.api_host.as_str())
    }

    /// Sends a request built by `build` (given the URL and the authorization), with the
    /// token for `scope`; a 401 gets one retry with a fresh token (the challenge may
    /// have changed, or the token expired). `build` may be called twice.
    pub fn send(&self, path: &str, scope: &str, build: &Build) -> Result<(String, Response<Body>)> {
        let url = self.url(path)?;
        let mut fresh = false;
        loop {
            crate::interrupt::check()?;
            let auth = if self.ours(&url) {
                self.authorization(scope, fresh)?
            } else {
                None
            };
            let resp = build(&self.agent, &url, auth.as_deref()).map_err(|e| {
                if crate::interrupt::interrupted() {
                    Error::Interrupted
                } else {
                    transport(&url, e)
                }
            })?;
            if resp.status().as_u16() == 401 && !fresh {
                if let Some(c) = challenge_of(&resp) {
                    *self.challenge.lock().expect("lock") = Some(c);
                }
                fresh = true;
                continue;
            }
            if resp.status().as_u16() == 401 {
                return Err(Error::Unauthorized {
                    registry: self.registry.clone(),
                });
            }
            return Ok((url, resp));
        }
    }

    /// GET (or HEAD) with an `Accept` header.
    pub fn get(
        &self,
        path: &str,
        scope: &str,
        accept: Option<&str>,
        head: bool,
    ) -> Result<(String, Response<Body>)> {
        self.send(path, scope, &|agent, url, auth| {
            let mut req = if head {
                agent.head(url)
            } else {
                agent.get(url)
            };
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            req.call()
        })
    }
}

fn challenge_of(resp: &Response<Body>) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        // Prefer Bearer when a registry offers both.
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

pub fn transport(url: &str, e: ureq::Error) -> Error {
    Error::Transport {
        url: url.to_string(),
        source: Box::new(e),
    }
}

/// Reads a whole (small) body, refusing more than `limit` bytes.
pub fn read_bounded(resp: Response<Body>, limit: u64, what: &str) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| {
            if crate::interrupt::interrupted() {
                Error::Interrupted
            } else {
                Error::Io {
                    path: what.to_string(),
                    source: e,
                }
            }
        })?;
    if data.len() as u64 > limit {
        return Err(Error::TooLarge {
            what: what.to_string(),
            limit,
        });
    }
    Ok(data)
}

/// An unexpected status as an error, with the registry's own message (its JSON `errors`
/// list, at most 64 KiB of it read).
pub fn http_error(url: &str, resp: Response<Body>) -> Error {
    let status = resp.status().as_u16();
    // At most 64 KiB of it, cut there if longer.
    let mut body = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(limits::ERROR_BODY)
        .read_to_end(&mut body);
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            let errors = v.get("errors")?.as_array()?;
            Some(
                errors
                    .iter()
                    .map(|e| {
                        let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("");
                        let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
                        format!("{code}: {msg}")
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
    // What a registry says is shown, never its control characters.
    let message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    Error::Http {
        url: url.to_string(),
        status,
        message,
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_escaped() {
        assert_eq!(
            super::query_escape("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(super::scope("x/y", true), "repository:x/y:pull,push");
    }
}
