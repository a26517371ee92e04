//! Image names as people type them, and the one normal form minc stores and compares.
//!
//! The rules are Docker's (distribution/reference "normalized names"):
//!
//! - `busybox`, `library/busybox`, `docker.io/library/busybox:latest` and
//!   `index.docker.io/library/busybox` are one image: the registry is `docker.io` unless the
//!   first component looks like a host (it has a `.` or a `:`, or is `localhost`), a single
//!   Docker Hub component gets the `library/` prefix, and the tag defaults to `latest`.
//! - `name@sha256:HEX` names content by digest (no tag is implied then); `name:tag@sha256:`
//!   keeps both, and the digest decides.
//! - Repository paths are lowercase `[a-z0-9]` runs joined by `.`, `_`, `__` or dashes,
//!   split by `/`; tags are `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. Anything else is refused
//!   with the reason, so a name never becomes a surprising URL or file name.
//!
//! Images made on this machine (imported, built in) live under `localhost/`, as Podman does;
//! a short name that is not found as `docker.io/library/NAME` is looked up as
//! `localhost/NAME` too, so `localhost/x:latest` runs as `x` (see `Store::resolve`).

use std::fmt;

pub const DOCKER_HUB: &str = "docker.io";
/// Where names without a registry that were made on this machine live.
pub const LOCAL: &str = "localhost";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// `docker.io`, `localhost:5000`, `ghcr.io`, `[::1]:5000`.
    pub registry: String,
    /// `library/busybox`, `team/app`.
    pub repository: String,
    /// None only when a digest is given without a tag.
    pub tag: Option<String>,
    /// `sha256:HEX`.
    pub digest: Option<String>,
}

impl ImageName {
    /// Parses and normalizes `s` (see the module comment); the error says what is wrong.
    pub fn parse(s: &str) -> Result<ImageName, String> {
        if s.is_empty() {
            return Err("an empty image name".into());
        }
        if s.len() > 4096 {
            return Err("an image name longer than 4096 characters".into());
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if crate::digest::hex(d).is_none() {
                    return Err(format!(
                        "{d:?} is not a sha256 digest (sha256:64 hex digits)"
                    ));
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(format!(
                    "tag {t:?} is invalid (letters, digits, '_', '.', '-'; at most 128)"
                ));
            }
        }
        let (registry, repo) = match path.split_once('/') {
            Some((first, more)) if looks_like_host(first) => (first.to_string(), more.to_string()),
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if !valid_host(&registry) {
            return Err(format!("registry {registry:?} is not a host[:port]"));
        }
        let repository = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        if !valid_repository(&repository) {
            return Err(format!(
                "repository {repository:?} is invalid (lowercase letters, digits and separators \
                 '.', '_', '__', '-', components split by '/')"
            ));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t,
        };
        Ok(ImageName {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`.
    pub fn repo_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What a registry is asked for: the digest if there is one, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The repository as `docker images` shows it: `busybox`, `user/app`,
    /// `localhost/x`, `localhost:5000/x`.
    pub fn familiar_repository(&self) -> String {
        if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.repo_path()
        }
    }

    /// `busybox:latest`, `localhost:5000/x:1`, `x@sha256:...`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s = format!("{s}:{t}");
        }
        if let Some(d) = &self.digest {
            s = format!("{s}@{d}");
        }
        s
    }

    /// The same repository with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> ImageName {
        ImageName {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// Whether the registry is this machine's loopback (plain HTTP is then allowed, as
    /// Docker allows it for 127.0.0.0/8).
    pub fn is_loopback_registry(&self) -> bool {
        let host = host_of(&self.registry);
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }
}

/// The canonical text: `docker.io/library/busybox:latest`, `ghcr.io/a/b@sha256:...`.
impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repo_path())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `x` -> `docker.io/library/x:latest` as text; a name that does not parse stays as it is
/// (so that looking it up simply finds nothing).
pub fn normalize(name: &str) -> String {
    ImageName::parse(name)
        .map(|n| n.to_string())
        .unwrap_or_else(|_| name.to_string())
}

/// The host part of `host[:port]` (brackets of an IPv6 address removed).
pub fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    registry.split(':').next().unwrap_or(registry)
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == LOCAL || first.starts_with('[')
}

fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((addr, port)) => {
                if addr.parse::<std::net::Ipv6Addr>().is_err() {
                    return false;
                }
                (None, port.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match h.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(h), None),
        }
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return false;
        }
    }
    match host {
        None => true,
        Some(host) => {
            !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                })
        }
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/...)*`, at most 255 characters.
fn valid_repository(r: &str) -> bool {
    if r.is_empty() || r.len() > 255 {
        return false;
    }
    r.split('/').all(|comp| {
        let b = comp.as_bytes();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return false;
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            // A separator: '.', '_', '__' or a run of '-'.
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
                return false;
            }
        }
        true
    })
}

fn alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        ImageName::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_conventions() {
        for s in [
            "busybox",
            "library/busybox",
            "docker.io/library/busybox:latest",
            "index.docker.io/library/busybox",
            "docker.io/busybox",
        ] {
            assert_eq!(n(s), "docker.io/library/busybox:latest", "{s}");
        }
        assert_eq!(n("user/app:1.2"), "docker.io/user/app:1.2");
        assert_eq!(n("localhost/x"), "localhost/x:latest");
        assert_eq!(n("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(n("127.0.0.1:5000/x"), "127.0.0.1:5000/x:latest");
        assert_eq!(n("[::1]:5000/x:t"), "[::1]:5000/x:t");
        assert_eq!(n("ghcr.io/o/r"), "ghcr.io/o/r:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let by_digest = ImageName::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(by_digest.tag, None);
        assert_eq!(by_digest.reference(), d);
        assert_eq!(
            by_digest.to_string(),
            format!("docker.io/library/busybox@{d}")
        );
        assert_eq!(n(&format!("x:1@{d}")), format!("docker.io/library/x:1@{d}"));
        let x = ImageName::parse("busybox").unwrap();
        assert_eq!(x.familiar(), "busybox:latest");
        assert_eq!(x.familiar_repository(), "busybox");
        assert_eq!(
            ImageName::parse("localhost:5000/x").unwrap().familiar(),
            "localhost:5000/x:latest"
        );
        assert!(ImageName::parse("127.0.0.1:5000/x")
            .unwrap()
            .is_loopback_registry());
        assert!(!x.is_loopback_registry());
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for s in [
            "",
            "Busybox",
            "a//b",
            "a/../b",
            "x:",
            "x:-tag",
            "x@sha256:abc",
            "x@md5:0",
            "-rf",
            "a b",
            "host:99999/x",
            "a/b\n",
            &format!("x:{}", "t".repeat(129)),
        ] {
            assert!(ImageName::parse(s).is_err(), "{s:?} accepted");
        }
        assert_eq!(normalize("Not Valid"), "Not Valid");
    }
}
