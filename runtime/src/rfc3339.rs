//! Dates as RFC 3339 text (`2026-11-23T01:02:03Z`), the format of OCI state and logs,
//! without a date crate: a few lines of calendar arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

/// `2026-11-23T01:02:03Z` for a point in time.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_secs(secs)
}

pub fn rfc3339_secs(secs: u64) -> String {
    rfc3339_parts(secs, None)
}

/// With nanoseconds, as runc's `created` (`2026-11-23T01:02:03.123456789Z`).
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    rfc3339_parts(d.as_secs(), Some(d.subsec_nanos()))
}

fn rfc3339_parts(secs: u64, nanos: Option<u32>) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let frac = nanos.map(|n| format!(".{n:09}")).unwrap_or_default();
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(1_709_251_199), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + std::time::Duration::new(86_400, 5);
        assert_eq!(rfc3339_nanos(t), "1970-01-02T00:00:00.000000005Z");
    }
}
