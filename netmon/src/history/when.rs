//! Times, spans and sizes as people type them on the command line and in the config file:
//! `6h`, `2d`, `30m` ago; RFC 3339 (`2026-12-07T10:00:00Z`); a date or date and time in local
//! time (`2026-12-07`, `2026-12-07 10:30`); sizes like `1GiB` or `500MB`.
//!
//! Errors are one line with an example, for clap and the config file to show as they are.

const SECOND: i64 = 1_000;
const UNITS: [(&str, i64); 5] = [
    ("s", SECOND),
    ("m", 60 * SECOND),
    ("h", 3_600 * SECOND),
    ("d", 86_400 * SECOND),
    ("w", 7 * 86_400 * SECOND),
];

/// A span: a whole number with a unit (`s`, `m`, `h`, `d`, `w`), in milliseconds, > 0.
pub fn parse_span_ms(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let err = || format!("{t:?} is not a span like 30m, 6h, 2d or 1w");
    let n: i64 = num.parse().map_err(|_| err())?;
    let per = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, ms)| *ms)
        .ok_or_else(err)?;
    match n.checked_mul(per) {
        Some(ms) if ms > 0 && ms <= 100 * 365 * 86_400 * SECOND => Ok(ms),
        _ => Err(format!("{t:?} must be more than 0 and at most 100 years")),
    }
}

/// A point in time, in Unix ms: a span ago (`6h`), `now`, RFC 3339, or a local date
/// (`2026-12-07`, midnight) or date and time (`2026-12-07 10:30[:15]`, `T` also accepted).
pub fn parse_time_ms(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    let err = || {
        format!(
            "{t:?} is not a time: use a span ago (6h, 2d, 30m), a date (2026-12-07), a local \
             time (2026-12-07 10:30) or RFC 3339 (2026-12-07T10:30:00Z)"
        )
    };
    if t == "now" {
        return Ok(now_ms);
    }
    if t.starts_with(|c: char| c.is_ascii_digit()) && t.len() <= 6 {
        return parse_span_ms(t).map(|ms| now_ms - ms).map_err(|_| err());
    }
    let (date, rest) = t.split_at(t.len().min(10));
    let (y, mo, d) = parse_date(date).ok_or_else(err)?;
    let rest = rest.strip_prefix(['T', 't', ' ']).unwrap_or(rest);
    if rest.is_empty() {
        return local_to_unix_ms(y, mo, d, 0, 0, 0).ok_or_else(err);
    }
    // Time of day, then an optional fraction and offset.
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ':'))
        .unwrap_or(rest.len());
    let (clock, mut tail) = rest.split_at(end);
    let parts: Vec<&str> = clock.split(':').collect();
    let num = |p: &str, max: u32| p.parse::<u32>().ok().filter(|&v| v <= max && p.len() == 2);
    let (h, mi, sec) = match parts.as_slice() {
        [h, m] => (num(h, 23), num(m, 59), Some(0)),
        [h, m, s] => (num(h, 23), num(m, 59), num(s, 60)),
        _ => return Err(err()),
    };
    let (h, mi, sec) = (
        h.ok_or_else(err)?,
        mi.ok_or_else(err)?,
        sec.ok_or_else(err)?,
    );
    let mut frac_ms = 0;
    if let Some(f) = tail.strip_prefix('.') {
        let digits = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
        if digits == 0 {
            return Err(err());
        }
        let ms: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms.parse::<i64>().map_err(|_| err())?;
        tail = &f[digits..];
    }
    let base = if tail.is_empty() {
        local_to_unix_ms(y, mo, d, h, mi, sec).ok_or_else(err)?
    } else {
        let offset_min = parse_offset(tail).ok_or_else(err)?;
        utc_ms(y, mo, d, h, mi, sec) - i64::from(offset_min) * 60 * SECOND
    };
    Ok(base + frac_ms)
}

/// A size in bytes: a number with an optional unit (B, KB, MB, GB, TB powers of 1000; KiB,
/// MiB, GiB, TiB and K, M, G, T powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let err = || format!("{t:?} is not a size like 500MiB, 1GiB or 2GB");
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| err())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(err()),
    };
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("{t:?} must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

fn parse_date(s: &str) -> Option<(i32, u32, u32)> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i32 = s[..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in).contains(&d).then_some((y, m, d))
}

/// `Z` or `±HH:MM` (or `±HHMM`), in minutes east of UTC.
fn parse_offset(s: &str) -> Option<i32> {
    if s.eq_ignore_ascii_case("z") {
        return Some(0);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|&c| c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    (h <= 23 && m <= 59).then_some(sign * (h * 60 + m))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(if m <= 2 { y - 1 } else { y });
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    (days_from_civil(y, mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s)) * SECOND
}

/// Local wall time to Unix ms through the C library's time zone rules (TZ, /etc/localtime).
fn local_to_unix_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    // SAFETY: an all-zero tm is valid; mktime reads and normalises the struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = y - 1900;
    tm.tm_mon = mo as i32 - 1;
    tm.tm_mday = d as i32;
    tm.tm_hour = h as i32;
    tm.tm_min = mi as i32;
    tm.tm_sec = s as i32;
    tm.tm_isdst = -1;
    // SAFETY: as above.
    let t = unsafe { libc::mktime(&mut tm) };
    (t != -1).then_some(t * SECOND)
}

/// A Unix ms time as local `YYYY-MM-DD HH:MM:SS`, for tables.
pub fn format_local(ms: i64) -> String {
    let t = ms.div_euclid(SECOND) as libc::time_t;
    // SAFETY: an all-zero tm is valid; localtime_r writes into the struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to values we own for the duration of the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return ms.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// A Unix ms time as RFC 3339 in UTC with milliseconds, for JSON and CSV.
pub fn format_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400 * SECOND);
    let rem = ms.rem_euclid(86_400 * SECOND);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// Now, in Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000;

    #[test]
    fn spans() {
        assert_eq!(parse_span_ms("30m"), Ok(1_800_000));
        assert_eq!(parse_span_ms("6h"), Ok(21_600_000));
        assert_eq!(parse_span_ms("2d"), Ok(172_800_000));
        assert_eq!(parse_span_ms("1w"), Ok(604_800_000));
        assert_eq!(parse_span_ms(" 45s "), Ok(45_000));
        for bad in ["", "h", "6", "6x", "-6h", "0h", "1.5h", "99999999999w"] {
            assert!(parse_span_ms(bad).is_err(), "{bad:?}");
        }
        assert!(parse_span_ms("6x").unwrap_err().contains("like 30m"));
    }

    #[test]
    fn times_ago_and_rfc3339() {
        assert_eq!(parse_time_ms("6h", NOW), Ok(NOW - 21_600_000));
        assert_eq!(parse_time_ms("now", NOW), Ok(NOW));
        assert_eq!(
            parse_time_ms("2026-12-07T10:30:00Z", NOW),
            Ok(1_796_639_400_000)
        );
        assert_eq!(
            parse_time_ms("2026-12-07T11:30:00+01:00", NOW),
            Ok(1_796_639_400_000)
        );
        assert_eq!(
            parse_time_ms("2026-12-07T10:30:00.25Z", NOW),
            Ok(1_796_639_400_250)
        );
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z", NOW), Ok(0));
        assert_eq!(
            parse_time_ms("2000-02-29T00:00:00Z", NOW),
            Ok(951_782_400_000)
        );
    }

    #[test]
    fn local_dates_round_trip() {
        let ms = parse_time_ms("2026-12-07 10:30", NOW).unwrap();
        assert_eq!(format_local(ms), "2026-12-07 10:30:00");
        let midnight = parse_time_ms("2026-12-07", NOW).unwrap();
        assert_eq!(format_local(midnight), "2026-12-07 00:00:00");
        assert_eq!(ms - midnight, 37_800_000);
    }

    #[test]
    fn bad_times_say_what_works() {
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-12-07T25:00",
            "2026-12-07T10:30:00+5",
            "2026-12-07T10:30:00.Z",
            "12/07/2026",
        ] {
            let e = parse_time_ms(bad, NOW).unwrap_err();
            assert!(e.contains("2026-12-07T10:30:00Z"), "{bad}: {e}");
        }
    }

    #[test]
    fn rfc3339_output() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_796_639_400_250),
            "2026-12-07T10:30:00.250Z"
        );
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "GiB", "1XB", "0", "-1G"] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }
}
