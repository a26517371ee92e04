//! `minc run --userns`: Docker's userns-remap for one container. Root in the container is an
//! unprivileged host uid: the container gets a user namespace mapping its ids 0..N to a
//! range of host ids, by default the first range /etc/subuid (and /etc/subgid) gives the
//! user `minc`, else `root` (Docker's daemon reads a `dockremap` entry the same way). The
//! image's layers are shown to it through idmapped mounts (images::Store::
//! create_rootfs_mapped), so nothing is copied or chowned.
//!
//! `--userns` (or `--userns=remap`): that range; `--userns=START:COUNT`: an explicit one;
//! `--userns=host` (the default): no user namespace, as with Docker.
//! Man pages: subuid(5), subgid(5), user_namespaces(7).

use std::path::Path;

use anyhow::{bail, Context, Result};

/// The host range a remapped container's ids 0.. map to: (first host id, count) for uids
/// and for gids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remap {
    pub uid: (u32, u32),
    pub gid: (u32, u32),
}

/// Parses `--userns`'s value: `None` for the host's user namespace.
pub fn parse(value: Option<&str>, etc: &Path) -> Result<Option<Remap>> {
    match value {
        None | Some("host") => Ok(None),
        Some("remap") | Some("") => {
            let uid = subordinate(&etc.join("subuid"))?;
            let gid = subordinate(&etc.join("subgid"))?;
            Ok(Some(Remap { uid, gid }))
        }
        Some(range) => {
            let bad = || {
                anyhow::anyhow!(
                    "--userns {range:?}: expected host, remap or START:COUNT (a host id range)"
                )
            };
            let (start, count) = range.split_once(':').ok_or_else(bad)?;
            let start: u32 = start.parse().map_err(|_| bad())?;
            let count: u32 = count.parse().map_err(|_| bad())?;
            if count == 0 || u64::from(start) + u64::from(count) > 1 << 32 || start == 0 {
                bail!("--userns {range}: a range of host ids that is not empty, starts above 0 and ends before 2^32");
            }
            Ok(Some(Remap {
                uid: (start, count),
                gid: (start, count),
            }))
        }
    }
}

/// The first range subuid(5)/subgid(5) gives `minc`, else `root` (or uid 0).
fn subordinate(file: &Path) -> Result<(u32, u32)> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("--userns: {}", file.display())),
    };
    let ranges: Vec<(&str, u32, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.trim().splitn(3, ':');
            let (name, start, count) = (f.next()?, f.next()?, f.next()?);
            Some((name, start.parse().ok()?, count.parse().ok()?))
        })
        .filter(|(_, start, count)| *count > 0 && *start > 0)
        .collect();
    for who in ["minc", "root", "0"] {
        if let Some((_, start, count)) = ranges.iter().find(|(n, _, _)| *n == who) {
            return Ok((*start, (*count).min(u32::MAX - *start)));
        }
    }
    bail!(
        "--userns: {} has no range for minc or root (add a line such as minc:100000:65536, or give --userns=START:COUNT)",
        file.display()
    )
}

impl Remap {
    /// The spec's user namespace and mappings, added to a config.json.
    pub fn apply(&self, config: &mut serde_json::Value) -> Result<()> {
        let ns = config["linux"]["namespaces"]
            .as_array_mut()
            .context("spec without linux.namespaces")?;
        ns.retain(|n| n["type"] != "user");
        ns.push(serde_json::json!({"type": "user"}));
        let map = |(host, size): (u32, u32)| serde_json::json!([{"containerID": 0, "hostID": host, "size": size}]);
        config["linux"]["uidMappings"] = map(self.uid);
        config["linux"]["gidMappings"] = map(self.gid);
        Ok(())
    }

    /// The runtime's view of the mappings.
    pub fn maps(&self) -> crate::userns::Maps {
        let one = |(host, size): (u32, u32)| -> Vec<oci_spec::runtime::LinuxIdMapping> {
            serde_json::from_value(
                serde_json::json!([{"containerID": 0, "hostID": host, "size": size}]),
            )
            .expect("a valid mapping")
        };
        crate::userns::Maps {
            uid: one(self.uid),
            gid: one(self.gid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_from_subuid_and_flags() {
        let etc = tempfile::tempdir().unwrap();
        let p = etc.path();
        assert_eq!(parse(None, p).unwrap(), None);
        assert_eq!(parse(Some("host"), p).unwrap(), None);
        let err = parse(Some("remap"), p).unwrap_err().to_string();
        assert!(err.contains("no range for minc or root"), "{err}");
        std::fs::write(p.join("subuid"), "alice:100000:65536\nroot:200000:65536\n").unwrap();
        std::fs::write(p.join("subgid"), "root:300000:1000\nminc:400000:65536\n").unwrap();
        assert_eq!(
            parse(Some("remap"), p).unwrap(),
            Some(Remap {
                uid: (200000, 65536),
                gid: (400000, 65536)
            })
        );
        assert_eq!(
            parse(Some("500000:10"), p).unwrap().unwrap().uid,
            (500000, 10)
        );
        for bad in ["0:10", "5", "x:1", "4294967295:2", "7:0"] {
            assert!(parse(Some(bad), p).is_err(), "{bad}");
        }
    }
}
