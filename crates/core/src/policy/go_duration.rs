//! Go durations (`time.Duration`): signed nanoseconds in an `i64`, read as
//! `time.ParseDuration` reads them and written as `Duration.String` writes them.
//!
//! Kyverno's conditions compare durations (`1h30m`, `90s`) and its JMESPath functions compute
//! with them; both read them here.

/// `time.Second`, in nanoseconds.
pub(crate) const SECOND: i64 = 1_000_000_000;

/// 2⁶³: Go's bound for the magnitudes `time.ParseDuration` accumulates.
const LIMIT: u64 = 1 << 63;

/// Why a text is not a Go duration; [`Error::message`] gives Go's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// `time: invalid duration "…"`.
    Invalid,
    /// `time: missing unit in duration "…"`.
    MissingUnit,
    /// `time: unknown unit "…" in duration "…"`: the unit at these byte offsets of the text.
    UnknownUnit { start: usize, end: usize },
}

impl Error {
    /// Go's error message for `text` (the text that failed to parse).
    pub(crate) fn message(self, text: &str) -> String {
        match self {
            Error::Invalid => format!("time: invalid duration {text:?}"),
            Error::MissingUnit => format!("time: missing unit in duration {text:?}"),
            Error::UnknownUnit { start, end } => {
                let unit = text.get(start..end).unwrap_or_default();
                format!("time: unknown unit {unit:?} in duration {text:?}")
            }
        }
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, units `ns`, `us` (`µs`,
/// `μs`), `ms`, `s`, `m`, `h`; `0` alone needs no unit. Fraction digits beyond what fits are
/// ignored (precision only); a magnitude beyond `i64` is an error.
pub(crate) fn parse(text: &str) -> Result<i64, Error> {
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some(&c @ (b'-' | b'+')) = s.first() {
        negative = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(Error::Invalid);
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(Error::Invalid);
        }
        // The integer part (Go's `leadingInt`).
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &s[..digits] {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= LIMIT)
                .ok_or(Error::Invalid)?;
        }
        let pre = digits > 0;
        s = &s[digits..];
        // The fraction (Go's `leadingFraction`).
        let (mut fraction, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            post = digits > 0;
            let mut overflow = false;
            for &c in &s[..digits] {
                if overflow {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    .filter(|v| *v <= LIMIT && fraction <= (LIMIT - 1) / 10)
                {
                    Some(v) => {
                        fraction = v;
                        scale *= 10.0;
                    }
                    None => overflow = true,
                }
            }
            s = &s[digits..];
        }
        if !pre && !post {
            return Err(Error::Invalid);
        }
        // The unit: up to the next digit or point.
        let unit_len = s
            .iter()
            .position(|c| *c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(Error::MissingUnit);
        }
        let unit: u64 = match &s[..unit_len] {
            b"ns" => 1,
            // `µs` (U+00B5) and `μs` (U+03BC).
            b"us" | [0xc2, 0xb5, b's'] | [0xce, 0xbc, b's'] => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => {
                let start = text.len() - s.len();
                return Err(Error::UnknownUnit {
                    start,
                    end: start + unit_len,
                });
            }
        };
        s = &s[unit_len..];
        if whole > LIMIT / unit {
            return Err(Error::Invalid);
        }
        let mut v = whole * unit;
        if fraction > 0 {
            v = v
                .checked_add((fraction as f64 * (unit as f64 / scale)) as u64)
                .filter(|v| *v <= LIMIT)
                .ok_or(Error::Invalid)?;
        }
        total = total
            .checked_add(v)
            .filter(|t| *t <= LIMIT)
            .ok_or(Error::Invalid)?;
    }
    if negative {
        return Ok((total as i64).wrapping_neg());
    }
    i64::try_from(total).map_err(|_| Error::Invalid)
}

/// Go's `Duration.String`: `72h3m0.5s`, `1m40s`, `1.5s`, `500ms`, `2µs`, `0s`.
pub(crate) fn format(d: i64) -> String {
    if d == 0 {
        return "0s".into();
    }
    let sign = if d < 0 { "-" } else { "" };
    let u = d.unsigned_abs();
    if u < 1_000_000_000 {
        let (digits, unit) = match u {
            0..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "µs"),
            _ => (6, "ms"),
        };
        let (whole, fraction) = fraction(u, digits);
        return format!("{sign}{whole}{fraction}{unit}");
    }
    let (secs, fraction) = fraction(u, 9);
    let mut out = sign.to_string();
    let minutes = secs / 60;
    if minutes > 0 {
        let hours = minutes / 60;
        if hours > 0 {
            out.push_str(&format!("{hours}h"));
        }
        out.push_str(&format!("{}m", minutes % 60));
    }
    out.push_str(&format!("{}{fraction}s", secs % 60));
    out
}

/// `v / 10^digits` and its fraction as `.ddd` without trailing zeros (empty if none).
fn fraction(v: u64, digits: u32) -> (u64, String) {
    let p = 10u64.pow(digits);
    let (whole, rest) = (v / p, v % p);
    if rest == 0 {
        return (whole, String::new());
    }
    let text = format!("{rest:0width$}", width = digits as usize);
    (whole, format!(".{}", text.trim_end_matches('0')))
}

/// Go's `Duration.Seconds`.
pub(crate) fn seconds(d: i64) -> f64 {
    (d / SECOND) as f64 + (d % SECOND) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        for (text, nanos) in [
            ("0", 0),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("-5s", -5_000_000_000),
            ("+5s", 5_000_000_000),
            ("-0", 0),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("-2m3.4s", -123_400_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9007199254740993ns", 9_007_199_254_740_993),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("0.100000000000000000000h", 360_000_000_000),
        ] {
            assert_eq!(parse(text), Ok(nanos), "{text}");
        }
        for bad in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "\u{0}",
            "3000000h",
            "9223372036854775808ns",
            "9223372036854775.808us",
            "-9223372036854775809ns",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (3_300_000_000, "3.3s"),
            (240_000_000_000, "4m0s"),
            (290_500_000_000, "4m50.5s"),
            (18_000_000_000_000, "5h0m0s"),
            (18_241_000_000_000 + 1, "5h4m1.000000001s"),
            (648_000_000_000_000 + 1_000_000, "180h0m0.001s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (-1_000_000_000, "-1s"),
        ] {
            assert_eq!(format(nanos), text, "{nanos}");
        }
    }

    /// The vectors the conditions' duration operators were written against.
    #[test]
    fn go_durations_as_conditions_read_them() {
        const S: i64 = SECOND;
        let cases: &[(&str, Option<i64>)] = &[
            ("0", Some(0)),
            ("-0", Some(0)),
            ("+0", Some(0)),
            ("1h30m", Some(5400 * S)),
            ("1.5h", Some(5400 * S)),
            (".5s", Some(S / 2)),
            ("5.s", Some(5 * S)),
            ("300ms", Some(300_000_000)),
            ("-1.5h", Some(-5400 * S)),
            ("1us", Some(1_000)),
            ("1\u{b5}s", Some(1_000)),
            ("1\u{3bc}s", Some(1_000)),
            ("1ns", Some(1)),
            ("2h45m10s", Some((2 * 3600 + 45 * 60 + 10) * S)),
            ("9223372036854775807ns", Some(i64::MAX)),
            ("-9223372036854775808ns", Some(i64::MIN)),
            ("9223372036854775808ns", None),
            ("", None),
            ("1", None),
            ("1d", None),
            ("h", None),
            (".s", None),
            ("1h ", None),
            ("3000000h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).ok(), *want, "{text:?}");
        }
    }

    #[test]
    fn errors_have_go_messages() {
        let message = |text: &str| parse(text).map_err(|e| e.message(text));
        assert_eq!(
            message("1d"),
            Err(r#"time: unknown unit "d" in duration "1d""#.into())
        );
        assert_eq!(
            message("1h2µx"),
            Err(r#"time: unknown unit "µx" in duration "1h2µx""#.into())
        );
        assert_eq!(
            message("1"),
            Err(r#"time: missing unit in duration "1""#.into())
        );
        assert_eq!(message("x"), Err(r#"time: invalid duration "x""#.into()));
        assert_eq!(
            message("9223372036854775808ns"),
            Err(r#"time: invalid duration "9223372036854775808ns""#.into())
        );
        assert_eq!(seconds(-1_500_000_000), -1.5);
    }
}
