//! Content digests (`sha256:<hex>`), the only thing sealgate trusts about a registry's answer.
//!
//! A [`Digest`] is always well formed: an algorithm sealgate knows and the right number of
//! lower-case hex characters. [`Digest::sha256_of`] computes one; [`Digest::matches`] checks bytes
//! against one.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ring::digest as ring_digest;

/// A digest algorithm that may appear in an image reference or descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 hex characters. The only algorithm registries use in practice.
    Sha256,
    /// SHA-512, 128 hex characters.
    Sha512,
}

impl Algorithm {
    /// The name as written before the colon.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    fn ring(self) -> &'static ring_digest::Algorithm {
        match self {
            Algorithm::Sha256 => &ring_digest::SHA256,
            Algorithm::Sha512 => &ring_digest::SHA512,
        }
    }
}

/// A content digest such as `sha256:31dc72a1…0aee`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    // Shared: a digest is cloned into every cache key and result of a review, and a clone is
    // then a reference count, not an allocation.
    hex: Arc<str>,
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No `algorithm:` prefix.
    #[error("digest '{0}' has no algorithm: expected 'sha256:<64 hex characters>'")]
    MissingAlgorithm(String),
    /// An algorithm other than sha256/sha512.
    #[error("digest '{0}' uses an unsupported algorithm: expected sha256 or sha512")]
    UnsupportedAlgorithm(String),
    /// Wrong length or characters after the colon.
    #[error(
        "digest '{input}' is malformed: {algorithm} needs {expected} lower-case hex characters"
    )]
    BadHex {
        /// The whole input.
        input: String,
        /// The algorithm named.
        algorithm: &'static str,
        /// How many hex characters it needs.
        expected: usize,
    },
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::compute(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn compute(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let d = ring_digest::digest(algorithm.ring(), bytes);
        Digest {
            algorithm,
            hex: hex_encode(d.as_ref()).into(),
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Digest::compute(self.algorithm, bytes) == *self
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lower-case hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest bytes.
    pub fn bytes(&self) -> Vec<u8> {
        hex_decode(&self.hex).unwrap_or_default()
    }

    /// The tag cosign stores this image's signatures under: `sha256-<hex>.sig`.
    pub fn signature_tag(&self) -> String {
        format!("{}-{}.sig", self.algorithm.name(), self.hex)
    }

    /// The tag of cosign's attestations image for this digest: `sha256-<hex>.att`.
    pub fn attestation_tag(&self) -> String {
        format!("{}-{}.att", self.algorithm.name(), self.hex)
    }

    /// The OCI referrers fallback tag: `sha256-<hex>`.
    pub fn referrers_tag(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Three plain writes: this is formatted into every verified image's message.
        f.write_str(self.algorithm.name())?;
        f.write_str(":")?;
        f.write_str(&self.hex)
    }
}

impl FromStr for Digest {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Digest, ParseError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(ParseError::MissingAlgorithm(s.to_string()));
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(ParseError::UnsupportedAlgorithm(s.to_string())),
        };
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(ParseError::BadHex {
                input: s.to_string(),
                algorithm: algorithm.name(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

/// Bytes of a hex string (either case); `None` if it is not hex.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_empty_is_the_well_known_value() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_round_trips_and_rejects_bad_input() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
        assert_eq!(d.signature_tag(), format!("sha256-{}.sig", d.hex()));
        assert_eq!(d.attestation_tag(), format!("sha256-{}.att", d.hex()));
        assert!(matches!(
            "e3b0".parse::<Digest>(),
            Err(ParseError::MissingAlgorithm(_))
        ));
        assert!(matches!(
            "md5:e3b0".parse::<Digest>(),
            Err(ParseError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            "sha256:E3B0".parse::<Digest>(),
            Err(ParseError::BadHex { .. })
        ));
        let upper = "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert!(
            upper.parse::<Digest>().is_err(),
            "upper-case hex is not canonical"
        );
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(
            hex_decode(&hex_encode(&[0, 1, 0xab, 0xff])).unwrap(),
            vec![0, 1, 0xab, 0xff]
        );
        assert_eq!(hex_decode("zz"), None);
        assert_eq!(hex_decode("abc"), None);
    }
}
