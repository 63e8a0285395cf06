//! Go's `float64` as Kyverno's Go code meets it: `fmt`'s `%v` (how a condition prints a number,
//! how an arithmetic function turns a scalar into a quantity's text), `math.Pow10`, and the
//! bound of Go's `int64`.

/// 2⁶³, the bound of Go's `int64` (and of durations) as a `float64`.
pub(crate) const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// `fmt.Sprint(f)` (`%v`): the shortest digits, in exponent form when the exponent is below -4
/// or at least 6 (`1e+06`, `1.5e-05`), else plain (`123456`, `0.001`); `NaN`, `+Inf`, `-Inf`.
pub(crate) fn format_v(f: f64) -> String {
    let mut out = String::new();
    write_v(f, &mut out);
    out
}

/// [`format_v`], appended to `out`.
pub(crate) fn write_v(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if f == 0.0 {
        out.push_str(if f.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exp: i64 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let magnitude = exp.unsigned_abs();
        if magnitude < 10 {
            out.push('0');
        }
        out.push_str(&magnitude.to_string());
        return;
    }
    // The decimal point after `exp + 1` digits.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if point >= digits.len() {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
}

/// 10ⁿ as Go's `math.Pow10` gives it (exact table values for small n; infinity above, zero
/// below the range).
pub(crate) fn pow10(n: i32) -> f64 {
    let positive = |n: u32| format!("1e{n}").parse::<f64>().unwrap_or(f64::INFINITY);
    if n >= 0 {
        positive(n.unsigned_abs())
    } else {
        1.0 / positive(n.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting_for_quantities() {
        assert_eq!(format_v(2.5), "2.5");
        assert_eq!(format_v(123456.0), "123456");
        assert_eq!(format_v(1e6), "1e+06");
        assert_eq!(format_v(1.234567e6), "1.234567e+06");
        assert_eq!(format_v(0.0001), "0.0001");
        assert_eq!(format_v(0.00001), "1e-05");
        assert_eq!(format_v(-2e21), "-2e+21");
        assert_eq!(format_v(0.0), "0");
    }

    #[test]
    fn go_float_formatting_edges() {
        assert_eq!(format_v(-0.0), "-0");
        assert_eq!(format_v(f64::NAN), "NaN");
        assert_eq!(format_v(f64::INFINITY), "+Inf");
        assert_eq!(format_v(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_v(1e100), "1e+100");
        assert_eq!(format_v(-2.5e-7), "-2.5e-07");
        assert_eq!(format_v(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_v(100000.5), "100000.5");
        assert_eq!(pow10(3), 1000.0);
        assert_eq!(pow10(-2), 0.01);
        assert_eq!(pow10(400), f64::INFINITY);
        assert_eq!(pow10(-400), 0.0);
    }
}
