//! Number, size, duration and time formatting for the views (text is cut and padded by
//! display width in [`crate::text`]).
//!
//! Invariant: every function is total (any input, including negative, NaN and infinite
//! values, gives a short printable string) and the same input always gives the same text.

use time::OffsetDateTime;

/// `1234567` → `1,234,567`.
pub fn int(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1234` → `1.2k`, `3400000` → `3.4M`: at most 5 characters for non-negative values.
pub fn compact(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    let (v, unit) = if a >= 1e9 {
        (a / 1e9, "G")
    } else if a >= 1e6 {
        (a / 1e6, "M")
    } else if a >= 1e3 {
        (a / 1e3, "k")
    } else {
        return n.to_string();
    };
    if v >= 99.95 {
        format!("{sign}{v:.0}{unit}")
    } else {
        format!("{sign}{v:.1}{unit}")
    }
}

/// Bytes in binary units: `1536` → `1.5 KiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.max(0) as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", n.max(0))
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration in the largest two units: `0.42` → `420ms`, `75` → `1m 15s`, `90000` →
/// `1d 1h`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() {
        return "∞".into();
    }
    let s = s.max(0.0);
    if s < 1.0 {
        return format!("{:.0}ms", s * 1000.0);
    }
    if s < 10.0 {
        return format!("{s:.1}s");
    }
    let t = s.round() as u64;
    let (d, h, m, sec) = (t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// A short age: `4s`, `3m`, `2h`, `5d`.
pub fn age(s: f64) -> String {
    if !s.is_finite() {
        return "—".into();
    }
    let t = s.max(0.0).round() as u64;
    if t < 120 {
        format!("{t}s")
    } else if t < 7200 {
        format!("{}m", t / 60)
    } else if t < 172_800 {
        format!("{}h", t / 3600)
    } else {
        format!("{}d", t / 86_400)
    }
}

/// A fraction as a percentage: `0.4213` → `42.1%`.
pub fn pct(f: f64) -> String {
    if !f.is_finite() {
        return "—".into();
    }
    format!("{:.1}%", f * 100.0)
}

/// A per-second rate: `1234.5` → `1,234/s`, `3.25` → `3.2/s`.
pub fn rate(r: f64) -> String {
    if !r.is_finite() {
        return "—".into();
    }
    if r.abs() >= 100.0 {
        format!("{}/s", int(r.round() as i64))
    } else {
        format!("{r:.1}/s")
    }
}

/// `12:00:03` (UTC).
pub fn hms(t: OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// A horizontal bar of `width` cells for `fraction` of the full length, in eighths.
pub fn bar(fraction: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let eighths = (f * width as f64 * 8.0).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) && s.chars().count() < width {
        s.push(PARTS[eighths % 8]);
    }
    s
}

/// A gauge of `width` cells: filled part `█`, rest `░`.
pub fn gauge(fraction: f64, width: usize) -> String {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = (f * width as f64).round() as usize;
    let filled = if f > 0.0 { filled.max(1) } else { 0 }.min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(int(0), "0");
        assert_eq!(int(1_234_567), "1,234,567");
        assert_eq!(int(-1000), "-1,000");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(1_234), "1.2k");
        assert_eq!(compact(123_456), "123k");
        assert_eq!(compact(3_400_000), "3.4M");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(256 << 20), "256 MiB");
        assert_eq!(secs(0.42), "420ms");
        assert_eq!(secs(75.0), "1m 15s");
        assert_eq!(secs(90_000.0), "1d 1h");
        assert_eq!(secs(f64::INFINITY), "∞");
        assert_eq!(age(45.0), "45s");
        assert_eq!(age(7_300.0), "2h");
        assert_eq!(pct(0.4213), "42.1%");
        assert_eq!(rate(1234.5), "1,235/s");
        assert_eq!(bar(0.5, 4), "██");
        assert_eq!(bar(1.0, 3), "███");
        assert_eq!(gauge(0.5, 4), "██░░");
        assert_eq!(gauge(0.001, 4), "█░░░");
        assert_eq!(gauge(f64::NAN, 2), "░░");
    }
}
