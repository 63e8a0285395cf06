//! Is a point on the curve? A small, allocation-light check for P-256 and P-384 public keys.
//!
//! ring validates points only when it verifies, so a policy holding a corrupted key would load and
//! then fail every verification with "signature invalid". Checking `y² = x³ − 3x + b (mod p)` at
//! load time lets sealgate say "this key is not a valid P-256 point" where the key is written.

/// Short-Weierstrass curve parameters with a = −3.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Curve {
    p: &'static str,
    b: &'static str,
    /// Coordinate length in bytes.
    pub(crate) len: usize,
}

pub(crate) const P256: Curve = Curve {
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    len: 32,
};

pub(crate) const P384: Curve = Curve {
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    len: 48,
};

/// Unsigned big integer, little-endian 32-bit limbs, no leading-zero invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_be(bytes: &[u8]) -> Big {
        let mut limbs = Vec::with_capacity(bytes.len() / 4 + 1);
        for chunk in bytes.rchunks(4) {
            let mut v = 0u32;
            for b in chunk {
                v = (v << 8) | u32::from(*b);
            }
            limbs.push(v);
        }
        Big(limbs).trimmed()
    }

    fn from_hex(hex: &str) -> Big {
        Big::from_be(&crate::digest::hex_decode(hex).unwrap_or_default())
    }

    fn trimmed(mut self) -> Big {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        self
    }

    fn bits(&self) -> usize {
        match self.0.last() {
            None => 0,
            Some(top) => (self.0.len() - 1) * 32 + (32 - top.leading_zeros() as usize),
        }
    }

    fn bit(&self, i: usize) -> bool {
        self.0.get(i / 32).is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    fn cmp(&self, other: &Big) -> std::cmp::Ordering {
        let (a, b) = (self.clone().trimmed(), other.clone().trimmed());
        a.0.len()
            .cmp(&b.0.len())
            .then_with(|| a.0.iter().rev().cmp(b.0.iter().rev()))
    }

    fn add(&self, other: &Big) -> Big {
        let n = self.0.len().max(other.0.len());
        let mut out = Vec::with_capacity(n + 1);
        let mut carry = 0u64;
        for i in 0..n {
            let s = u64::from(*self.0.get(i).unwrap_or(&0))
                + u64::from(*other.0.get(i).unwrap_or(&0))
                + carry;
            out.push(s as u32);
            carry = s >> 32;
        }
        out.push(carry as u32);
        Big(out).trimmed()
    }

    /// `self − other`, requires `self ≥ other`.
    fn sub(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut d = i64::from(self.0[i]) - i64::from(*other.0.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if d < 0 {
                d += 1 << 32;
                borrow = 1;
            }
            out.push(d as u32);
        }
        Big(out).trimmed()
    }

    fn mul(&self, other: &Big) -> Big {
        let mut out = vec![0u32; self.0.len() + other.0.len() + 1];
        for (i, a) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            for (j, b) in other.0.iter().enumerate() {
                let t = u64::from(*a) * u64::from(*b) + u64::from(out[i + j]) + carry;
                out[i + j] = t as u32;
                carry = t >> 32;
            }
            let mut k = i + other.0.len();
            while carry > 0 {
                let t = u64::from(out[k]) + carry;
                out[k] = t as u32;
                carry = t >> 32;
                k += 1;
            }
        }
        Big(out).trimmed()
    }

    /// `self mod m` by binary long division.
    fn rem(&self, m: &Big) -> Big {
        let mut r = Big(Vec::new());
        for i in (0..self.bits()).rev() {
            r = r.add(&r);
            if self.bit(i) {
                r = r.add(&Big(vec![1]));
            }
            if r.cmp(m) != std::cmp::Ordering::Less {
                r = r.sub(m);
            }
        }
        r
    }
}

/// Whether the uncompressed point `04 ‖ x ‖ y` lies on `curve`.
pub(crate) fn on_curve(curve: Curve, point: &[u8]) -> bool {
    if point.len() != 1 + 2 * curve.len || point[0] != 0x04 {
        return false;
    }
    let p = Big::from_hex(curve.p);
    let b = Big::from_hex(curve.b);
    let x = Big::from_be(&point[1..1 + curve.len]);
    let y = Big::from_be(&point[1 + curve.len..]);
    if x.cmp(&p) != std::cmp::Ordering::Less || y.cmp(&p) != std::cmp::Ordering::Less {
        return false;
    }
    let lhs = y.mul(&y).rem(&p);
    let x3 = x.mul(&x).rem(&p).mul(&x).rem(&p);
    let three_x = x.add(&x).add(&x).rem(&p);
    // x³ − 3x + b, kept non-negative by adding p before subtracting.
    let rhs = x3.add(&b).add(&p).sub(&three_x).rem(&p);
    lhs == rhs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        crate::digest::hex_decode(s).unwrap()
    }

    #[test]
    fn generators_are_on_their_curves() {
        let g256 = hex(
            "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        );
        assert!(on_curve(P256, &g256));
        let g384 = hex(
            "04aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab73617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
        );
        assert!(on_curve(P384, &g384));
        assert!(!on_curve(P256, &g384), "wrong length");
    }

    #[test]
    fn a_changed_coordinate_is_off_the_curve() {
        let mut g = hex(
            "046b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c2964fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        );
        for i in 1..g.len() {
            g[i] ^= 1;
            assert!(!on_curve(P256, &g), "flip at byte {i}");
            g[i] ^= 1;
        }
        g[0] = 0x02;
        assert!(!on_curve(P256, &g), "compressed points are not accepted");
    }

    #[test]
    fn arithmetic_matches_small_numbers() {
        let a = Big::from_be(&1_000_000_007u64.to_be_bytes());
        let b = Big::from_be(&998_244_353u64.to_be_bytes());
        let prod = a.mul(&b);
        let m = Big::from_be(&65_537u64.to_be_bytes());
        let want = (1_000_000_007u128 * 998_244_353u128) % 65_537;
        assert_eq!(prod.rem(&m), Big::from_be(&(want as u64).to_be_bytes()));
    }
}
