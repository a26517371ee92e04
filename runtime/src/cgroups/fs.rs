//! Reading and writing cgroup files. Every write is one write(2) of the whole value (the
//! kernel parses each write as one command) and is explained as `echo VALUE > FILE`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::{Error, Result};

/// Writes `value` to the cgroup file `path`. A missing file means the kernel (or the
/// hierarchy) lacks the knob: that is reported as such, naming the file.
pub fn write(path: &Path, value: &str) -> Result<()> {
    sysops::explain::Cmd::new("echo")
        .arg(value)
        .stdout_to(path)
        .emit();
    // O_TRUNC as runc does: harmless on cgroupfs, and right for plain files (tests).
    let result = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    result.map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::ENOENT) => " (this kernel or cgroup layout has no such file)".to_string(),
            Some(libc::EINVAL) => " (the kernel rejects this value)".to_string(),
            Some(libc::EBUSY) => {
                " (the kernel cannot apply it now: current usage or children conflict)".into()
            }
            Some(libc::EPERM) | Some(libc::EACCES) => {
                " (not permitted: the parent cgroup does not allow it)".to_string()
            }
            _ => String::new(),
        };
        Error::Write {
            path: path.to_path_buf(),
            value: value.to_string(),
            err: e,
            hint,
        }
    })
}

/// Reads a cgroup file as a trimmed string.
pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| Error::io(path, e))
}

/// Reads a file holding one number (`max` reads as u64::MAX).
pub fn read_u64(path: &Path) -> Result<u64> {
    let s = read(path)?;
    parse_u64(&s).ok_or_else(|| Error::Io {
        path: path.to_path_buf(),
        err: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a number: {s:?}"),
        ),
    })
}

pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// Reads a flat keyed file (`key value` per line: memory.stat, cpu.stat, memory.events).
pub fn read_keyed(path: &Path) -> Result<HashMap<String, u64>> {
    let text = read(path)?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), parse_u64(v)?))
        })
        .collect())
}
