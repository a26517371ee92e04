//! Who we are to a registry.
//!
//! - Credentials live in Docker's `config.json` format, `{"auths": {"REGISTRY": {"auth":
//!   base64("user:password")}}}`, at `$MINC_AUTH_FILE`, else `$DOCKER_CONFIG/config.json`,
//!   else `~/.docker/config.json` (so a `docker login` is honoured, and minc's is seen by
//!   Docker and skopeo). `minc login` writes the file with mode 0600 (its directory 0700),
//!   atomically, keeping every other key. Credential helpers (`credsStore`) are not run.
//! - A registry says how to authenticate in its `WWW-Authenticate` challenge (RFC 7235):
//!   `Basic realm=...` (send the credentials), or `Bearer realm=URL,service=S,scope=...`:
//!   ask the realm for a token for `repository:NAME:pull[,push]` (anonymously, or with the
//!   credentials as basic auth), then send `Authorization: Bearer TOKEN` (Docker's token
//!   protocol, distribution/docs/spec/auth/token.md).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <hidden>)", self.user)
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The key Docker uses in `auths` for a registry (Docker Hub has a legacy URL).
fn auth_key(registry: &str) -> String {
    if registry == images::reference::DOCKER_HUB {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

/// The credentials file.
#[derive(Debug, Clone)]
pub struct AuthFile {
    pub path: PathBuf,
}

impl AuthFile {
    /// `given`, else `$MINC_AUTH_FILE`, `$DOCKER_CONFIG/config.json`, `~/.docker/config.json`.
    pub fn locate(given: Option<&Path>) -> AuthFile {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let path = given
            .map(Path::to_path_buf)
            .or_else(|| var("MINC_AUTH_FILE").map(PathBuf::from))
            .or_else(|| var("DOCKER_CONFIG").map(|d| PathBuf::from(d).join("config.json")))
            .unwrap_or_else(|| {
                PathBuf::from(var("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".docker/config.json")
            });
        AuthFile { path }
    }

    /// The whole file as JSON (an empty object when there is none); at most 1 MiB.
    fn read(&self) -> Result<Map<String, Value>> {
        use std::io::Read;
        let f = match fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut data = Vec::new();
        f.take(1 << 20)
            .read_to_end(&mut data)
            .map_err(|e| self.io(e))?;
        if data.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        serde_json::from_slice(&data)
            .map_err(|e| Error::invalid(self.path.display().to_string(), e.to_string()))
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::Io {
            path: self.path.display().to_string(),
            source: e,
        }
    }

    /// The stored credentials for `registry`, if any.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let doc = self.read()?;
        let Some(entry) = doc
            .get("auths")
            .and_then(|a| a.get(auth_key(registry)).or_else(|| a.get(registry)))
        else {
            return Ok(None);
        };
        let bad = |r: &str| Error::invalid(format!("{}: {registry}", self.path.display()), r);
        let Some(auth) = entry.get("auth").and_then(Value::as_str) else {
            return Ok(None);
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("auth is not base64"))?;
        let text = String::from_utf8(raw).map_err(|_| bad("auth is not text"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| bad("auth is not user:password"))?;
        Ok(Some(Credentials {
            user: user.into(),
            password: password.into(),
        }))
    }

    /// Stores (Some) or removes (None) the credentials of `registry`; returns whether
    /// anything was there before.
    pub fn set(&self, registry: &str, creds: Option<&Credentials>) -> Result<bool> {
        let mut doc = self.read()?;
        let auths = doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(auths) = auths else {
            return Err(Error::invalid(
                self.path.display().to_string(),
                "\"auths\" is not an object",
            ));
        };
        let key = auth_key(registry);
        let had = auths.remove(&key).is_some() | auths.remove(registry).is_some();
        if let Some(c) = creds {
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", c.user, c.password));
            auths.insert(key, serde_json::json!({ "auth": auth }));
        }
        self.write(&Value::Object(doc))?;
        Ok(had)
    }

    /// Writes the file atomically, 0600 in a 0700 directory (it holds passwords).
    fn write(&self, doc: &Value) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| self.io(e))?;
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(doc).expect("json"))?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(|e| self.io(e))
    }
}

/// `minc login`: checks the credentials against the registry, then stores them.
pub fn login(registry: &str, creds: &Credentials, conn: &crate::Connection) -> Result<PathBuf> {
    let file = AuthFile::locate(conn.auth_file.as_deref());
    let client = crate::client::Client::new(registry, Some(creds.clone()), conn)?;
    client.check_login()?;
    file.set(registry, Some(creds))?;
    Ok(file.path)
}

/// `minc logout`: forgets the credentials; false if there were none.
pub fn logout(registry: &str, conn: &crate::Connection) -> Result<bool> {
    AuthFile::locate(conn.auth_file.as_deref()).set(registry, None)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses `Bearer realm="https://auth",service="registry",scope="repository:a:pull"` or
/// `Basic realm="x"`. Quoted values may contain commas and escaped quotes.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = std::collections::HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    _ => v.push(c),
                }
            }
            (v, &q[end?..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        s = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Bearer realm="https://a/t",scope="repository:x:pull,push""#),
            Some(Challenge::Bearer {
                realm: "https://a/t".into(),
                service: None,
                scope: Some("repository:x:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None, "no realm");
        assert_eq!(parse_challenge(r#"Bearer realm="unterminated"#), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn auth_file_round_trip_is_private_and_keeps_other_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/config.json");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(
            &path,
            r#"{"credsStore":"x","auths":{"other.io":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let f = AuthFile { path: path.clone() };
        let c = Credentials {
            user: "u".into(),
            password: "p:w".into(),
        };
        assert!(!f.set("localhost:5000", Some(&c)).unwrap());
        assert_eq!(f.get("localhost:5000").unwrap(), Some(c.clone()));
        assert_eq!(
            f.get("other.io").unwrap().unwrap().user,
            "a",
            "other entries kept"
        );
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(doc["credsStore"], "x");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        f.set("docker.io", Some(&c)).unwrap();
        assert!(doc["auths"].get("https://index.docker.io/v1/").is_none());
        let doc: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert!(doc["auths"].get("https://index.docker.io/v1/").is_some());
        assert!(f.set("localhost:5000", None).unwrap());
        assert_eq!(f.get("localhost:5000").unwrap(), None);
        assert_eq!(c.basic_header(), "Basic dTpwOnc=");
    }
}
