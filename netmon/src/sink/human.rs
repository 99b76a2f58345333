//! Human-readable sizes and rates in binary units (1 KiB = 1024 B), as nethogs and bandwhich
//! users expect, with three significant digits at most.

pub fn bytes(n: u64) -> String {
    scaled(n as f64, "B")
}

pub fn rate(bytes_per_sec: f64) -> String {
    format!("{}/s", scaled(bytes_per_sec.max(0.0), "B"))
}

/// Cuts to `width` characters (not bytes: names may hold any UTF-8), the last one an ellipsis
/// when something was cut.
pub fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

fn scaled(v: f64, unit: &str) -> String {
    const PREFIXES: [&str; 6] = ["", "Ki", "Mi", "Gi", "Ti", "Pi"];
    if v < 1024.0 {
        return format!("{v:.0} {unit}");
    }
    let mut v = v;
    let mut i = 0;
    while v >= 1024.0 && i < PREFIXES.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {}{unit}", PREFIXES[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(u64, &str)] = &[
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.00 KiB"),
            (1536, "1.50 KiB"),
            (10 * 1024 + 512, "10.5 KiB"),
            (1_000_000, "977 KiB"),
            (5 * 1024 * 1024, "5.00 MiB"),
            (u64::MAX, "16384 PiB"),
        ];
        for (n, want) in cases {
            assert_eq!(bytes(*n), *want, "{n}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(rate(-3.0), "0 B/s");
        assert_eq!(rate(2048.0), "2.00 KiB/s");
    }
}
