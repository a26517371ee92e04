//! Sysctls, written through /proc/sys (which follows the caller's network namespace).

use crate::error::io_err;
use crate::explain::explain;
use crate::Error;
use std::path::PathBuf;

/// Sets `key` (dotted, e.g. `net.ipv4.ip_forward`) to `value` unless it already has it.
pub fn ensure(key: &str, value: &str) -> Result<(), Error> {
    let p = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    if std::fs::read_to_string(&p)
        .map(|s| s.trim() == value)
        .unwrap_or(false)
    {
        return Ok(());
    }
    explain!("sysctl -w {key}={value}");
    std::fs::write(&p, value).map_err(io_err("write sysctl", p))
}
