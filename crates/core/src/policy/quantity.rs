//! Kubernetes resource quantities (`resource.Quantity`, k8s.io/apimachinery), exactly.
//!
//! Kyverno's conditions compare quantities (`1Gi` is `1024Mi`) and its arithmetic functions
//! compute with them (`add('12Ki', '13Ki')` is `25Ki`); both read them here:
//!
//! * [`parse`] is `resource.ParseQuantity`: a signed decimal number (`1`, `1.5`, `.5`, `5.`) and
//!   a suffix: binary SI (`Ki`…`Ei`), decimal SI (`n u m k M G T P E`, or none) or an exponent
//!   (`e3`, `E-2`, read as Go's `int32`). Values round away from zero to nanounits; binary ones
//!   are capped at 2⁶³−1. Like Kubernetes, a suffix alone is zero (`m`, `Ki`) except `Pi`/`Ei`.
//!   Any number of digits and any exponent is held exactly.
//! * [`Quantity::compare`] is `Quantity.Cmp`, exact whatever the sizes.
//! * The arithmetic is `inf.Dec`'s, on the scale Kubernetes keeps (it decides the precision of
//!   a division); [`Quantity::to_text`] is `Quantity.String`, the canonical text.
//!
//! Arithmetic writes digits out (aligning `1e5000` with `1` takes 5001); a result beyond
//! [`MAX_DIGITS`] digits is refused (`None`) rather than allocated. Parsing and comparing
//! never write digits out.

use std::cmp::Ordering;

use super::go_float;

/// The most digits an arithmetic result (or the integer a binary quantity is written as) may
/// take.
const MAX_DIGITS: usize = 4096;

/// The suffix family a quantity was written with, and is written back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DecimalExponent,
    BinarySI,
    DecimalSI,
}

/// A quantity: `±coefficient × 10^exponent`, with the `inf.Dec` scale and the format
/// Kubernetes keeps for it.
#[derive(Debug, Clone)]
pub(crate) struct Quantity {
    negative: bool,
    /// Decimal digits, most significant first, with no leading or trailing zero (none: zero).
    coefficient: Vec<u8>,
    exponent: i64,
    /// `inf.Dec`'s scale: the quantity is an integer (its unscaled value) × 10^-scale, so
    /// `exponent + scale >= 0` when it is not zero.
    scale: i32,
    format: Format,
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// The parts of a quantity's text, as Kubernetes scans them (`parseQuantityString`).
struct Scanned<'a> {
    positive: bool,
    /// Sign and number, without the suffix.
    value: &'a str,
    /// The whole digits without leading zeros (`0` when none).
    num: &'a str,
    /// The fraction digits.
    denom: &'a str,
    suffix: &'a str,
}

fn scan(s: &str) -> Option<Scanned<'_>> {
    let b = s.as_bytes();
    let end = b.len();
    let mut pos = 0;
    let mut positive = true;
    match b.first() {
        Some(b'-') => {
            positive = false;
            pos = 1;
        }
        Some(b'+') => pos = 1,
        _ => {}
    }
    while pos < end && b[pos] == b'0' {
        pos += 1;
    }
    if pos >= end {
        return Some(Scanned {
            positive,
            value: "0",
            num: "0",
            denom: "",
            suffix: "",
        });
    }
    let num_start = pos;
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    let num = match s.get(num_start..pos)? {
        "" => "0",
        n => n,
    };
    let mut denom = "";
    if pos < end && b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < end && b[pos].is_ascii_digit() {
            pos += 1;
        }
        denom = s.get(start..pos)?;
    }
    let value = s.get(..pos)?;
    let suffix_start = pos;
    while pos < end && b"eEinumkKMGTP".contains(&b[pos]) {
        pos += 1;
    }
    if pos < end && matches!(b[pos], b'-' | b'+') {
        pos += 1;
    }
    while pos < end && b[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos < end {
        return None;
    }
    Some(Scanned {
        positive,
        value,
        num,
        denom,
        suffix: s.get(suffix_start..)?,
    })
}

/// The suffix's base, exponent and format (`suffixHandler.interpret`): an exponent is read as
/// an `int64` and kept as Go's `int32(…)` of it.
fn suffix(s: &str) -> Option<(u32, i32, Format)> {
    let decimal = match s {
        "n" => Some(-9),
        "u" => Some(-6),
        "m" => Some(-3),
        "" => Some(0),
        "k" => Some(3),
        "M" => Some(6),
        "G" => Some(9),
        "T" => Some(12),
        "P" => Some(15),
        "E" => Some(18),
        _ => None,
    };
    if let Some(e) = decimal {
        return Some((10, e, Format::DecimalSI));
    }
    let binary = match s {
        "Ki" => Some(10),
        "Mi" => Some(20),
        "Gi" => Some(30),
        "Ti" => Some(40),
        "Pi" => Some(50),
        "Ei" => Some(60),
        _ => None,
    };
    if let Some(e) = binary {
        return Some((2, e, Format::BinarySI));
    }
    let rest = s.strip_prefix(['e', 'E']).filter(|r| !r.is_empty())?;
    let e: i64 = rest.parse().ok()?;
    Some((10, e as i32, Format::DecimalExponent))
}

/// `resource.ParseQuantity`; `None` when `s` is not a quantity.
pub(crate) fn parse(s: &str) -> Option<Quantity> {
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Quantity::zero(0, Format::DecimalSI));
    }
    let p = scan(s)?;
    let (base, exponent, mut format) = suffix(p.suffix)?;
    let digits = || p.num.bytes().chain(p.denom.bytes()).map(|d| d - b'0');
    // Go converts the lengths with `int32(…)`.
    let denom_len = p.denom.len() as i32;
    // The int64 fast path, when it applies: its scale is the one Kubernetes keeps.
    match format {
        Format::DecimalExponent | Format::DecimalSI => {
            let precision = 18 - (p.num.len() + p.denom.len()) as i64;
            let scale = exponent.wrapping_sub(denom_len);
            if precision >= 0 && scale >= -9 {
                return Some(Quantity::new(
                    !p.positive,
                    digits().collect(),
                    scale.wrapping_neg(),
                    format,
                ));
            }
        }
        Format::BinarySI => {
            let precision = 15 - p.num.len() as i64 - i64::from(exponent) * 3 / 10 - 1;
            if p.denom.is_empty()
                && precision >= 0
                && let Some(value) = p
                    .num
                    .parse::<i64>()
                    .ok()
                    .and_then(|v| v.checked_mul(1i64 << exponent))
            {
                return Some(Quantity::new(
                    !p.positive,
                    digits_of(value.unsigned_abs().into()),
                    0,
                    format,
                ));
            }
        }
    }
    // The `inf.Dec` path: the suffix folded into the number, rounded up to nanounits.
    if !p.value.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut unscaled: Vec<u8> = digits().collect();
    let mut scale = denom_len;
    if base == 10 {
        scale = scale.wrapping_sub(exponent);
    } else {
        multiply_pow2(&mut unscaled, exponent.unsigned_abs());
    }
    let mut q = Quantity::new(!p.positive, unscaled, scale, format);
    if q.is_zero() {
        return Some(q);
    }
    q.round_up_to_nano();
    if format == Format::BinarySI {
        let max = Quantity::new(false, digits_of(i64::MAX.unsigned_abs().into()), 0, format);
        if q.cmp_magnitude(&max) == Ordering::Greater {
            q = Quantity {
                negative: q.negative,
                ..max
            };
        }
        let one = Quantity::new(false, vec![1], 0, format);
        if q.cmp_magnitude(&one) == Ordering::Less {
            format = Format::DecimalSI;
        }
    }
    q.format = format;
    Some(q)
}

// ---------------------------------------------------------------------------------------------
// The quantity

impl Quantity {
    fn zero(scale: i32, format: Format) -> Quantity {
        Quantity {
            negative: false,
            coefficient: Vec::new(),
            exponent: 0,
            scale,
            format,
        }
    }

    /// `±unscaled × 10^-scale`.
    fn new(negative: bool, unscaled: Vec<u8>, scale: i32, format: Format) -> Quantity {
        Quantity::from_digits(negative, unscaled, -i64::from(scale), scale, format)
    }

    /// `±digits × 10^exponent` (any digits, leading and trailing zeros allowed) at `scale`.
    fn from_digits(
        negative: bool,
        mut digits: Vec<u8>,
        exponent: i64,
        scale: i32,
        format: Format,
    ) -> Quantity {
        let leading = digits.iter().take_while(|&&d| d == 0).count();
        digits.drain(..leading);
        if digits.is_empty() {
            return Quantity::zero(scale, format);
        }
        let trailing = digits.iter().rev().take_while(|&&d| d == 0).count();
        digits.truncate(digits.len() - trailing);
        Quantity {
            negative,
            coefficient: digits,
            exponent: exponent.saturating_add(trailing as i64),
            scale,
            format,
        }
    }

    /// An integer in this quantity's format (`resource.NewQuantity`).
    pub(crate) fn with_integer(&self, value: i64) -> Quantity {
        Quantity::new(
            value < 0,
            digits_of(value.unsigned_abs().into()),
            0,
            self.format,
        )
    }

    pub(crate) fn is_zero(&self) -> bool {
        self.coefficient.is_empty()
    }

    /// Rounds away from zero to a multiple of 10⁻⁹ at scale 9 (`Round(…, 9, inf.RoundUp)`).
    fn round_up_to_nano(&mut self) {
        self.scale = 9;
        if self.exponent >= -9 {
            return;
        }
        let drop = (-9 - self.exponent).unsigned_abs();
        let digits = if drop >= self.coefficient.len() as u64 {
            vec![1]
        } else {
            let mut kept = self.coefficient.clone();
            kept.truncate(self.coefficient.len() - drop as usize);
            // The dropped digits end with a non-zero one: round up.
            add_digits(&kept, &[1])
        };
        *self = Quantity::from_digits(self.negative, digits, -9, 9, self.format);
    }

    /// The magnitude's order: the exponent of its leading digit, plus one.
    fn order(&self) -> i128 {
        self.coefficient.len() as i128 + i128::from(self.exponent)
    }

    fn cmp_magnitude(&self, other: &Quantity) -> Ordering {
        match (self.is_zero(), other.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        // Same order: compare digit by digit, the shorter padded with zeros.
        self.order().cmp(&other.order()).then_with(|| {
            let n = self.coefficient.len().max(other.coefficient.len());
            (0..n)
                .map(|i| {
                    let a = self.coefficient.get(i).copied().unwrap_or(0);
                    let b = other.coefficient.get(i).copied().unwrap_or(0);
                    a.cmp(&b)
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
    }

    fn sign(&self) -> i8 {
        match (self.is_zero(), self.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }

    /// `Quantity.Cmp`.
    pub(crate) fn compare(&self, other: &Quantity) -> Ordering {
        match self.sign().cmp(&other.sign()) {
            Ordering::Equal if self.sign() < 0 => other.cmp_magnitude(self),
            Ordering::Equal => self.cmp_magnitude(other),
            unequal => unequal,
        }
    }

    /// The coefficient with `zeros` zeros after it, when that fits in [`MAX_DIGITS`].
    fn shifted(&self, zeros: i64) -> Option<Vec<u8>> {
        let zeros = usize::try_from(zeros).ok()?;
        if self.coefficient.len().checked_add(zeros)? > MAX_DIGITS {
            return None;
        }
        let mut digits = self.coefficient.clone();
        digits.resize(digits.len() + zeros, 0);
        Some(digits)
    }

    /// A zero quantity takes the other's format.
    fn format_with(&self, other: &Quantity) -> Format {
        if self.is_zero() {
            other.format
        } else {
            self.format
        }
    }

    /// The exact sum, at the larger scale.
    pub(crate) fn add(&self, other: &Quantity) -> Option<Quantity> {
        self.plus(other, false)
    }

    /// The exact difference, at the larger scale.
    pub(crate) fn sub(&self, other: &Quantity) -> Option<Quantity> {
        self.plus(other, true)
    }

    fn plus(&self, other: &Quantity, negate: bool) -> Option<Quantity> {
        let scale = self.scale.max(other.scale);
        let format = self.format_with(other);
        let other_negative = other.negative != negate;
        if other.is_zero() {
            return Some(Quantity {
                scale,
                format,
                ..self.clone()
            });
        }
        if self.is_zero() {
            return Some(Quantity {
                negative: other_negative,
                scale,
                format,
                ..other.clone()
            });
        }
        // Both at the smaller exponent, which the larger scale holds.
        let exponent = self.exponent.min(other.exponent);
        let a = self.shifted(self.exponent - exponent)?;
        let b = other.shifted(other.exponent - exponent)?;
        let (negative, digits) = if self.negative == other_negative {
            (self.negative, add_digits(&a, &b))
        } else {
            match cmp_digits(&a, &b) {
                Ordering::Less => (other_negative, sub_digits(&b, &a)),
                _ => (self.negative, sub_digits(&a, &b)),
            }
        };
        if digits.len() > MAX_DIGITS {
            return None;
        }
        // The larger scale holds `exponent`.
        Some(Quantity::from_digits(
            negative, digits, exponent, scale, format,
        ))
    }

    /// The exact product, in this quantity's format.
    pub(crate) fn mul(&self, other: &Quantity) -> Option<Quantity> {
        let scale = self.scale.checked_add(other.scale)?;
        if self.is_zero() || other.is_zero() {
            return Some(Quantity::zero(scale, self.format));
        }
        if self.coefficient.len() + other.coefficient.len() > MAX_DIGITS {
            return None;
        }
        Some(Quantity::from_digits(
            self.negative != other.negative,
            mul_digits(&self.coefficient, &other.coefficient),
            self.exponent.checked_add(other.exponent)?,
            scale,
            self.format,
        ))
    }

    /// The quotient rounded towards zero at the larger of the two scales, in this quantity's
    /// format (Kyverno's `QuoRound(…, RoundDown)`); `None` for a zero divisor.
    pub(crate) fn div_round_down(&self, divisor: &Quantity) -> Option<Quantity> {
        if divisor.is_zero() {
            return None;
        }
        let scale = self.scale.max(divisor.scale);
        if self.is_zero() {
            return Some(Quantity::zero(scale, self.format));
        }
        // |self / divisor| × 10^scale = coefficients' quotient × 10^k.
        let k = self
            .exponent
            .checked_sub(divisor.exponent)?
            .checked_add(i64::from(scale))?;
        let dividend = if k >= 0 {
            self.shifted(k)?
        } else {
            // ⌊⌊a / 10^-k⌋ / b⌋ = ⌊a / (b × 10^-k)⌋.
            let keep = usize::try_from(k.unsigned_abs())
                .ok()
                .and_then(|drop| self.coefficient.len().checked_sub(drop))
                .unwrap_or(0);
            self.coefficient[..keep].to_vec()
        };
        if dividend.len() > MAX_DIGITS {
            return None;
        }
        let quotient = if dividend.len() < divisor.coefficient.len() {
            Vec::new()
        } else {
            div_digits(&dividend, &divisor.coefficient)
        };
        Some(Quantity::new(
            self.negative != divisor.negative,
            quotient,
            scale,
            self.format,
        ))
    }

    /// `AsApproximateFloat64`: the unscaled value as the nearest `float64`, times
    /// `math.Pow10(-scale)`.
    pub(crate) fn approximate_f64(&self) -> f64 {
        let base = if self.is_zero() {
            0.0
        } else {
            let digits: String = self
                .coefficient
                .iter()
                .map(|d| char::from(b'0' + d))
                .collect();
            let zeros = i128::from(self.exponent) + i128::from(self.scale);
            let sign = if self.negative { "-" } else { "" };
            format!("{sign}{digits}e{zeros}")
                .parse::<f64>()
                .unwrap_or(f64::NAN)
        };
        if self.scale == 0 {
            return base;
        }
        base * go_float::pow10(self.scale.saturating_neg())
    }

    /// The magnitude as an integer: `Ok(None)` when it has a fraction, `Err` when it is too
    /// large to write.
    fn integer(&self) -> Result<Option<Vec<u8>>, ()> {
        if self.exponent < 0 {
            // The coefficient does not end with a zero.
            return Ok(None);
        }
        self.shifted(self.exponent).map(Some).ok_or(())
    }

    /// Whether -1024 < value < 1024.
    fn below_1024(&self) -> bool {
        let limit = Quantity::new(false, vec![1, 0, 2, 4], 0, self.format);
        self.cmp_magnitude(&limit) == Ordering::Less
    }

    /// The canonical text (`Quantity.String`): no fraction, the largest suffix.
    pub(crate) fn to_text(&self) -> Result<String, String> {
        let too_large = || "the quantity is too large to write".to_string();
        if self.is_zero() {
            return Ok("0".into());
        }
        let sign = if self.negative { "-" } else { "" };
        let mut format = self.format;
        let mut integer = None;
        if format == Format::BinarySI {
            if self.below_1024() {
                format = Format::DecimalSI;
            } else {
                match self.integer().map_err(|()| too_large())? {
                    Some(i) => integer = Some(i),
                    None => format = Format::DecimalSI,
                }
            }
        }
        if let (Format::BinarySI, Some(mut v)) = (format, integer) {
            let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
            let mut power = 0;
            loop {
                let (quotient, remainder) = divmod_small(&v, 1024);
                if remainder != 0 || quotient.is_empty() {
                    break;
                }
                v = quotient;
                power += 1;
                if power >= suffixes.len() {
                    return Err(too_large());
                }
            }
            let suffix = suffixes.get(power).ok_or_else(too_large)?;
            return Ok(format!("{sign}{}{suffix}", digits_text(&v)));
        }
        // The exponent down to a multiple of three.
        let r = self.exponent.rem_euclid(3);
        let mut m = self.coefficient.clone();
        m.resize(m.len() + r as usize, 0);
        let e = self.exponent - r;
        let si = match e {
            -9 => Some("n"),
            -6 => Some("u"),
            -3 => Some("m"),
            0 => Some(""),
            3 => Some("k"),
            6 => Some("M"),
            9 => Some("G"),
            12 => Some("T"),
            15 => Some("P"),
            18 => Some("E"),
            _ => None,
        };
        let m = digits_text(&m);
        Ok(match (format, si) {
            (Format::DecimalSI, Some(suffix)) => format!("{sign}{m}{suffix}"),
            _ if e == 0 => format!("{sign}{m}"),
            _ => format!("{sign}{m}e{e}"),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Natural numbers as decimal digits, most significant first, without leading zeros (the empty
// list is zero)

fn digits_of(mut v: u128) -> Vec<u8> {
    let mut out = Vec::new();
    while v > 0 {
        out.push((v % 10) as u8);
        v /= 10;
    }
    out.reverse();
    out
}

fn digits_text(digits: &[u8]) -> String {
    if digits.is_empty() {
        return "0".into();
    }
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

fn trim_leading(mut digits: Vec<u8>) -> Vec<u8> {
    let leading = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading);
    digits
}

fn cmp_digits(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn add_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut a, mut b) = (a.iter().rev(), b.iter().rev());
    let mut carry = 0;
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() && carry == 0 {
            break;
        }
        let d = x.copied().unwrap_or(0) + y.copied().unwrap_or(0) + carry;
        out.push(d % 10);
        carry = d / 10;
    }
    out.reverse();
    trim_leading(out)
}

/// `a - b`, for `a >= b`.
fn sub_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut b = b.iter().rev();
    let mut borrow = 0;
    for &x in a.iter().rev() {
        let y = b.next().copied().unwrap_or(0) + borrow;
        if x >= y {
            out.push(x - y);
            borrow = 0;
        } else {
            out.push(x + 10 - y);
            borrow = 1;
        }
    }
    out.reverse();
    trim_leading(out)
}

fn mul_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    // Least significant first while accumulating.
    let mut acc = vec![0u64; a.len() + b.len()];
    for (i, &x) in a.iter().rev().enumerate() {
        for (j, &y) in b.iter().rev().enumerate() {
            acc[i + j] += u64::from(x) * u64::from(y);
        }
    }
    let mut carry = 0;
    let mut out: Vec<u8> = acc
        .into_iter()
        .map(|v| {
            let t = v + carry;
            carry = t / 10;
            (t % 10) as u8
        })
        .collect();
    while carry > 0 {
        out.push((carry % 10) as u8);
        carry /= 10;
    }
    out.reverse();
    trim_leading(out)
}

/// `⌊a / b⌋`, for `b > 0`: long division.
fn div_digits(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut quotient = Vec::with_capacity(a.len());
    let mut remainder: Vec<u8> = Vec::with_capacity(b.len() + 1);
    for &d in a {
        if !remainder.is_empty() || d != 0 {
            remainder.push(d);
        }
        let mut q = 0;
        while cmp_digits(&remainder, b) != Ordering::Less {
            remainder = sub_digits(&remainder, b);
            q += 1;
        }
        quotient.push(q);
    }
    trim_leading(quotient)
}

/// `(⌊a / d⌋, a mod d)`.
fn divmod_small(a: &[u8], d: u32) -> (Vec<u8>, u32) {
    let mut quotient = Vec::with_capacity(a.len());
    let mut remainder: u64 = 0;
    for &x in a {
        let t = remainder * 10 + u64::from(x);
        quotient.push((t / u64::from(d)) as u8);
        remainder = t % u64::from(d);
    }
    (trim_leading(quotient), remainder as u32)
}

/// Multiplies decimal digits by 2^`power`.
fn multiply_pow2(digits: &mut Vec<u8>, mut power: u32) {
    while power > 0 {
        let step = power.min(32);
        let m: u64 = 1 << step;
        let mut carry: u64 = 0;
        for d in digits.iter_mut().rev() {
            let t = u64::from(*d) * m + carry;
            *d = (t % 10) as u8;
            carry = t / 10;
        }
        while carry > 0 {
            digits.insert(0, (carry % 10) as u8);
            carry /= 10;
        }
        power -= step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_written_canonically() {
        for (text, canonical) in [
            ("1.5", "1500m"),
            ("1.5Gi", "1536Mi"),
            ("1024", "1024"),
            ("1000", "1k"),
            ("1000Mi", "1000Mi"),
            ("2048Ki", "2Mi"),
            ("0.9n", "1n"),
            ("100e-3", "100e-3"),
            ("0.1", "100m"),
            ("1E", "1E"),
            ("1000E", "1e21"),
            ("-0.5", "-500m"),
            ("0.5Ki", "512"),
            ("8Ei", "9223372036854775807"),
            ("12e6", "12e6"),
        ] {
            let q = parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(q.to_text().as_deref(), Ok(canonical), "{text}");
        }
        // As Kubernetes: a missing number is 0.
        assert_eq!(parse("e3").map(|q| q.is_zero()), Some(true));
        for not_a_quantity in ["", "1s", "1h", "12Kii", "1.5.5", "1e", "abc"] {
            assert!(parse(not_a_quantity).is_none(), "{not_a_quantity}");
        }
    }

    #[test]
    fn kubernetes_quantities() {
        let q = |s: &str| parse(s);
        let eq = |a: &str, b: &str| q(a).unwrap().compare(&q(b).unwrap()) == Ordering::Equal;
        assert!(eq("1Gi", "1024Mi"));
        assert!(eq("1Ki", "1024"));
        assert!(eq("500m", "0.5"));
        assert!(eq("1e3", "1k"));
        assert!(eq("1E3", "1000"));
        assert!(eq("1.5Gi", "1536Mi"));
        assert!(eq(".5", "0.5"));
        assert!(eq("5.", "5"));
        assert!(eq("+1", "1"));
        assert!(eq("-0", "0"));
        assert!(eq("1.", "1"));
        assert!(eq("0.1n", "1n"), "rounded up to a nanounit");
        assert!(eq("-0.1n", "-1n"), "away from zero");
        assert!(eq("1e-20", "1n"));
        assert!(
            eq("100Ei", "9223372036854775807"),
            "binary quantities are capped"
        );
        assert!(!eq("100E", "9223372036854775807"), "decimal ones are not");
        assert!(eq("m", "0") && eq("Ki", "0") && eq(".", "0") && eq("-", "0"));
        assert!(q("Pi").is_none() && q("Ei").is_none() && q(".e-20").is_none());
        assert!(q("12345678901234567890123").is_some());
        for bad in [
            "", "1K", "1.5.5", "1 Gi", "Gi1", "1e", "1ee3", "0x10", "1Mi5", "abc", "1h",
        ] {
            assert!(q(bad).is_none(), "{bad:?}");
        }
        let cmp = |a: &str, b: &str| q(a).unwrap().compare(&q(b).unwrap());
        assert_eq!(cmp("1G", "1Gi"), Ordering::Less);
        assert_eq!(cmp("-2", "-1"), Ordering::Less);
        assert_eq!(cmp("1e100", "1e99"), Ordering::Greater);
        assert_eq!(cmp("0.000000001", "0"), Ordering::Greater);
    }

    #[test]
    fn beyond_i128_and_int32_exponents() {
        let q = |s: &str| parse(s).unwrap();
        let text = |s: &str| q(s).to_text().unwrap();
        // Forty digits and more are exact (the slow path, at nanounits).
        let big = "1234567890123456789012345678901234567890123";
        assert_eq!(text(big), "1234567890123456789012345678901234567890123");
        assert_eq!(
            q(big).add(&q("1")).unwrap().to_text().unwrap(),
            "1234567890123456789012345678901234567890124"
        );
        assert_eq!(q(big).compare(&q("1e42")), Ordering::Greater);
        assert_eq!(q(big).compare(&q("1e43")), Ordering::Less);
        // Any exponent: Go reads it as an int64 and keeps its int32.
        assert_eq!(text("1e99999"), "1e99999");
        assert_eq!(text("1e100000"), "10e99999");
        assert_eq!(q("1e4294967296").compare(&q("1")), Ordering::Equal);
        assert_eq!(q("1e4294967297").compare(&q("10")), Ordering::Equal);
        assert_eq!(q("1e-100000").compare(&q("1n")), Ordering::Equal);
        assert_eq!(
            q("1e99999").add(&q("1e99999")).unwrap().to_text().unwrap(),
            "2e99999"
        );
        // Writing out more than MAX_DIGITS digits is refused, not allocated.
        assert!(q("1e100000").add(&q("1")).is_none());
        assert!(q("1e4000").add(&q("1")).is_some());
        assert_eq!(q("1e400").approximate_f64(), f64::INFINITY);
        assert_eq!(q("-1.5Ki").approximate_f64(), -1536.0);
    }

    #[test]
    fn arithmetic_keeps_the_scale() {
        let q = |s: &str| parse(s).unwrap();
        let div = |a: &str, b: &str| q(a).div_round_down(&q(b)).unwrap().to_text().unwrap();
        assert_eq!(div("1", "3"), "0");
        assert_eq!(div("1.0", "3"), "300m");
        assert_eq!(div("-1.0", "3"), "-300m");
        assert_eq!(div("1Gi", "2.5"), "429496729600m");
        assert_eq!(div("10", "1e5"), "0");
        assert_eq!(div("1e10", "1e-3"), "10e12");
        assert!(q("1").div_round_down(&q("0")).is_none());
        let mul = |a: &str, b: &str| q(a).mul(&q(b)).unwrap().to_text().unwrap();
        assert_eq!(mul("12Ki", "2"), "24Ki");
        assert_eq!(mul("100m", "1.5"), "150m");
        assert_eq!(mul("1Ki", "1e3"), "1000Ki");
        assert_eq!(mul("8Ei", "1024"), "9223372036854775807Ki");
        assert_eq!(
            q("1Ei").mul(&q("1024")).unwrap().to_text(),
            Err("the quantity is too large to write".into())
        );
        let sub = |a: &str, b: &str| q(a).sub(&q(b)).unwrap().to_text().unwrap();
        assert_eq!(sub("0", "1Gi"), "-1Gi");
        assert_eq!(sub("1Gi", "512Mi"), "512Mi");
        assert_eq!(sub("1", "1.5"), "-500m");
        assert_eq!(sub("-1", "-1"), "0");
        assert_eq!(q("3Ki").with_integer(-7).to_text().unwrap(), "-7");
    }
}
