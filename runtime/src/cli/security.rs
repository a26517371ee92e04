//! `--security-opt` of the Docker-like `run`, and the seccomp profile the container gets:
//! Docker's default unless `seccomp=unconfined`, `seccomp=FILE` or `--privileged` says
//! otherwise.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::seccomp::docker::{self, Profile};

/// A profile file larger than this is refused (Docker's default is about 20 KiB).
const MAX_PROFILE: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub enum Seccomp {
    /// Docker's default profile, resolved for the container's capabilities.
    Default,
    Unconfined,
    Profile(Profile),
}

#[derive(Debug, Clone)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
}

/// Parses every `--security-opt` (Docker's `key=value`, or the older `key:value`).
pub fn parse(opts: &[String]) -> Result<SecurityOpts> {
    let mut out = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges: false,
    };
    for opt in opts {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => out.seccomp = Seccomp::Unconfined,
            ("seccomp", Some(file)) if !file.is_empty() => {
                let profile = load(Path::new(file))
                    .with_context(|| format!("--security-opt seccomp={file}"))?;
                out.seccomp = Seccomp::Profile(profile);
            }
            ("no-new-privileges", None | Some("true")) => out.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => out.no_new_privileges = false,
            _ => bail!(
                "--security-opt {opt}: unknown option (minc knows seccomp=unconfined|FILE and no-new-privileges[=true|false])"
            ),
        }
    }
    Ok(out)
}

fn load(path: &Path) -> Result<Profile> {
    let f = std::fs::File::open(path)?;
    let mut data = Vec::new();
    f.take(MAX_PROFILE + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_PROFILE {
        bail!("larger than {} KiB", MAX_PROFILE >> 10);
    }
    Ok(docker::parse(&data)?)
}

impl SecurityOpts {
    /// The `linux.seccomp` section of a container with bounding set `bounding`; None: no
    /// filter (`unconfined`, `--privileged`, or an empty profile).
    pub fn seccomp_section(
        &self,
        privileged: bool,
        bounding: &[String],
    ) -> Result<Option<serde_json::Value>> {
        let profile = match (&self.seccomp, privileged) {
            (Seccomp::Unconfined, _) | (_, true) => return Ok(None),
            (Seccomp::Default, false) => docker::default_profile(),
            (Seccomp::Profile(p), false) => p.clone(),
        };
        let section = profile
            .resolve(bounding)
            .map_err(|e| anyhow!("seccomp profile: {e}"))?;
        Ok(section.map(|s| serde_json::to_value(s).expect("a seccomp section serializes")))
    }
}

/// `minc seccomp-default [CAP...]`: the resolved default profile as JSON (for the
/// benchmark's bundle, and to read).
pub fn print_default(caps: &[String]) -> Result<()> {
    let caps = images::capabilities::tweak(caps, &["ALL".into()], false)?;
    let caps = if caps.is_empty() {
        images::capabilities::tweak(&[], &[], false)?
    } else {
        caps
    };
    let section = SecurityOpts {
        seccomp: Seccomp::Default,
        no_new_privileges: false,
    }
    .seccomp_section(false, &caps)?;
    println!("{}", serde_json::to_string_pretty(&section)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Result<SecurityOpts> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn security_opts() {
        let o = opts(&[]).unwrap();
        assert!(matches!(o.seccomp, Seccomp::Default) && !o.no_new_privileges);
        let o = opts(&["seccomp=unconfined", "no-new-privileges"]).unwrap();
        assert!(matches!(o.seccomp, Seccomp::Unconfined) && o.no_new_privileges);
        assert!(
            !opts(&["no-new-privileges:true", "no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        let e = opts(&["apparmor=unconfined"]).unwrap_err().to_string();
        assert!(
            e.starts_with("--security-opt apparmor=unconfined: unknown option"),
            "{e}"
        );
        let e = format!("{:#}", opts(&["seccomp=/nonexistent/p.json"]).unwrap_err());
        assert!(
            e.contains("seccomp=/nonexistent/p.json: No such file"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.json");
        std::fs::write(&big, vec![b' '; (MAX_PROFILE + 1) as usize]).unwrap();
        let e = format!(
            "{:#}",
            opts(&[&format!("seccomp={}", big.display())]).unwrap_err()
        );
        assert!(e.ends_with("larger than 1024 KiB"), "{e}");
    }

    #[test]
    fn privileged_and_unconfined_have_no_filter() {
        let o = opts(&[]).unwrap();
        assert!(o.seccomp_section(true, &[]).unwrap().is_none());
        let s = o.seccomp_section(false, &[]).unwrap().unwrap();
        assert_eq!(s["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(
            s["architectures"],
            serde_json::json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let o = opts(&["seccomp=unconfined"]).unwrap();
        assert!(o.seccomp_section(false, &[]).unwrap().is_none());
    }
}
