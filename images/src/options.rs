//! What the store accepts from a layer: size bounds (a small compressed blob can expand
//! without end) and which device nodes a layer may create.
//!
//! The CLI reads them from the environment ([`StoreOptions::from_env`]):
//! `MINC_MAX_LAYER_SIZE` (uncompressed bytes per layer; `K`, `M`, `G`, `T` suffixes, powers
//! of 1024), `MINC_MAX_LAYER_ENTRIES`, `MINC_MAX_ARCHIVE_SIZE` (uncompressed bytes of an
//! imported oci-archive or docker-archive), and `MINC_LAYER_DEVICES`
//! (`harmless` | `all` | `none`).

use crate::error::{Error, Result};

/// Which character and block device nodes a layer may create.
///
/// A device node in an image is a door to a kernel driver: with the node, whoever can open
/// it reaches the device (the container, subject to its devices cgroup; any host user who
/// can traverse the store, which [`crate::Store`] prevents). FIFOs are always allowed (they
/// lead nowhere); so is the 0/0 character device (overlayfs' whiteout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceNodes {
    /// Only the nodes every container gets anyway: null, zero, full, random, urandom, tty,
    /// console, ptmx (the OCI default devices). Any other device is a layer error naming
    /// it. The default.
    #[default]
    Harmless,
    /// Every device node is created as the layer says (as Docker and umoci do as root).
    All,
    /// No device node at all (a layer with one is refused).
    None,
}

/// Limits and policies for what the store takes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Uncompressed bytes of one layer.
    pub max_layer_size: u64,
    /// Entries (files, directories, links, ...) in one layer.
    pub max_layer_entries: u64,
    /// Uncompressed bytes of an imported archive (oci-archive, docker-archive).
    pub max_archive_size: u64,
    pub devices: DeviceNodes,
}

pub const GIB: u64 = 1 << 30;

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            max_layer_size: 10 * GIB,
            max_layer_entries: 1_000_000,
            max_archive_size: 64 * GIB,
            devices: DeviceNodes::Harmless,
        }
    }
}

pub const ENV_MAX_LAYER_SIZE: &str = "MINC_MAX_LAYER_SIZE";
pub const ENV_MAX_LAYER_ENTRIES: &str = "MINC_MAX_LAYER_ENTRIES";
pub const ENV_MAX_ARCHIVE_SIZE: &str = "MINC_MAX_ARCHIVE_SIZE";
pub const ENV_LAYER_DEVICES: &str = "MINC_LAYER_DEVICES";

impl StoreOptions {
    /// The defaults, with each setting the environment gives replacing its default.
    pub fn from_env() -> Result<StoreOptions> {
        let mut o = StoreOptions::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var(ENV_MAX_LAYER_SIZE) {
            o.max_layer_size = parse_size(&v).map_err(|r| Error::invalid(ENV_MAX_LAYER_SIZE, r))?;
        }
        if let Some(v) = var(ENV_MAX_ARCHIVE_SIZE) {
            o.max_archive_size =
                parse_size(&v).map_err(|r| Error::invalid(ENV_MAX_ARCHIVE_SIZE, r))?;
        }
        if let Some(v) = var(ENV_MAX_LAYER_ENTRIES) {
            o.max_layer_entries = v.parse().map_err(|_| {
                Error::invalid(ENV_MAX_LAYER_ENTRIES, format!("{v:?} is not a number"))
            })?;
        }
        if let Some(v) = var(ENV_LAYER_DEVICES) {
            o.devices = parse_devices(&v).map_err(|r| Error::invalid(ENV_LAYER_DEVICES, r))?;
        }
        Ok(o)
    }
}

/// `harmless`, `all` or `none`.
pub fn parse_devices(s: &str) -> Result<DeviceNodes, String> {
    match s {
        "harmless" => Ok(DeviceNodes::Harmless),
        "all" => Ok(DeviceNodes::All),
        "none" => Ok(DeviceNodes::None),
        _ => Err(format!("{s:?} is not one of harmless, all, none")),
    }
}

/// A byte count: `1048576`, `512K`, `64M`, `10G`, `1T` (powers of 1024; a trailing `B` or
/// `iB` is accepted). Zero is refused (nothing would fit).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("{s:?}: unknown unit {c:?} (K, M, G, T)")),
            };
            (&t[..i], shift)
        }
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 10G, 512M)"))?;
    let v = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    if v == 0 {
        return Err(format!("{s:?}: a limit of zero lets nothing in"));
    }
    Ok(v)
}

/// `10 GiB`, `512 MiB`, `1000 bytes`: a limit as the error message shows it.
pub fn show_size(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{} {unit}", n >> shift);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10 * GIB));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(show_size(10 * GIB), "10 GiB");
        assert_eq!(show_size(1000), "1000 bytes");
    }
}
