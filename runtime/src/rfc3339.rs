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

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T12:00:00.5Z`,
/// `...+02:00`), as image configs give their `created`; None if it is not one.
pub fn parse_secs(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // The zone: after optional fractional seconds.
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        z if z.len() == 6 && matches!(&z[..1], "+" | "-") && &z[3..4] == ":" => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            sign * (z[1..3].parse::<i64>().ok()? * 3600 + z[4..6].parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + sec - offset).ok()
}

#[cfg(test)]
mod parse_tests {
    #[test]
    fn parses_what_it_formats() {
        for t in [0u64, 86_399, 1_700_000_000, 4_102_444_800] {
            assert_eq!(super::parse_secs(&super::rfc3339_secs(t)), Some(t));
        }
        assert_eq!(
            super::parse_secs("2024-01-01T00:00:00.123456789Z"),
            Some(1_704_067_200)
        );
        assert_eq!(
            super::parse_secs("2024-01-01T02:00:00+02:00"),
            Some(1_704_067_200)
        );
        assert_eq!(super::parse_secs("yesterday"), None);
        assert_eq!(super::parse_secs("2024-13-01T00:00:00Z"), None);
    }
}
