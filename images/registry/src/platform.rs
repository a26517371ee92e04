//! Which manifest of an index (a multi-platform image) is ours: `os/architecture[/variant]`
//! as the OCI image index names them (`linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`).

use std::fmt;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform, in Go's architecture names (what images use).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(String::from),
        }
    }

    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(v.to_string()),
            }),
            _ => Err(Error::invalid(
                format!("--platform {s}"),
                "expected OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm64/v8",
            )),
        }
    }

    /// Whether an index entry's platform runs here: same OS and architecture, and the same
    /// variant when both name one (arm64's only variant, v8, may be left out).
    pub fn matches(&self, other: &Platform) -> bool {
        let norm = |p: &Platform| {
            p.variant
                .clone()
                .filter(|v| !(p.architecture == "arm64" && v == "v8"))
        };
        self.os == other.os
            && self.architecture == other.architecture
            && match (norm(self), norm(other)) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.matches(&Platform::parse("linux/arm64").unwrap()));
        assert!(!p.matches(&Platform::parse("linux/amd64").unwrap()));
        let arm7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!arm7.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/amd64/v1/x").is_err());
        assert!(Platform::parse("../x").is_err());
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert_eq!(Platform::host().os, "linux");
    }
}
