//! RFC 3161 timestamps, as Sigstore bundles carry them
//! (`verificationMaterial.timestampVerificationData.rfc3161Timestamps[].signedTimestamp`): a DER
//! `TimeStampResp` whose token is a CMS `SignedData` over a `TSTInfo`.
//!
//! [`SignedTimestamp::parse`] reads one (the status must be granted; the token must be SignedData
//! with one signer over id-ct-TSTInfo, with signed attributes); [`SignedTimestamp::verify`] checks
//! it against the trusted root's timestamp authorities as sigstore-go does
//! (`root.SigstoreTimestampingAuthority.Verify`, which calls sigstore/timestamp-authority's
//! `VerifyTimestampResponse`), for each authority in turn until one verifies:
//!
//! - the `messageImprint` is the hash, by the imprint's own algorithm (SHA-256, -384 or -512;
//!   SHA-1 is refused as weak), of the bundle's signature bytes (the DSSE envelope's first
//!   signature, or the message signature), decoded;
//! - the signer is the token's certificate named by the signer's issuer and serial number, or,
//!   when the token carries none, the authority's leaf; a certificate in the token must be that
//!   leaf when the authority lists one;
//! - the `messageDigest` signed attribute is the hash of the TSTInfo, the `contentType` attribute
//!   is id-ct-TSTInfo, and the CMS signature over the signed attributes (DER, as a SET) verifies
//!   with the signer's key;
//! - the signer chains to the authority's root at genTime (so genTime lies inside every
//!   certificate's validity) with the timeStamping extended key usage, is no CA, and has exactly
//!   one extended key usage, timeStamping, marked critical (timestamp-authority's leaf checks);
//! - genTime lies inside the authority's `validFor`.
//!
//! Nothing here reads a clock: genTime is the time the chain is checked at.

use ring::digest;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::sct::{Tlv, read_tlv};
use super::trust::TimestampAuthority;
use crate::crypto::key::{PublicKey, SignatureHash};
use crate::image::digest::hex_encode;
use crate::timestamp::{Rfc3339, format_rfc3339, parse_rfc3339, unix_seconds, unix_time};

/// The most timestamps a bundle may carry (sigstore-go's `limits.MaxAllowedTimestamps`).
pub const MAX_TIMESTAMPS: usize = 32;
/// The most bytes one timestamp may have (sigstore's are under 1 KiB; a chain in the token adds
/// a few KiB).
pub const MAX_TIMESTAMP_BYTES: usize = 64 * 1024;

const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const TST_INFO: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];
const CONTENT_TYPE_ATTR: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const MESSAGE_DIGEST_ATTR: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
const RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), DER contents.
const TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// A hash an imprint or a CMS digest is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampHash {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl TimestampHash {
    fn from_oid(oid: &[u8]) -> Result<TimestampHash, String> {
        match oid {
            SHA256 => Ok(TimestampHash::Sha256),
            SHA384 => Ok(TimestampHash::Sha384),
            SHA512 => Ok(TimestampHash::Sha512),
            SHA1 => Err("sha1, which is too weak".into()),
            other => Err(format!("the unsupported algorithm {}", oid_text(other))),
        }
    }

    /// The hash of `data`.
    pub fn of(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            TimestampHash::Sha256 => &digest::SHA256,
            TimestampHash::Sha384 => &digest::SHA384,
            TimestampHash::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }

    /// Its name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            TimestampHash::Sha256 => "sha256",
            TimestampHash::Sha384 => "sha384",
            TimestampHash::Sha512 => "sha512",
        }
    }

    fn signature_hash(self) -> SignatureHash {
        match self {
            TimestampHash::Sha256 => SignatureHash::Sha256,
            TimestampHash::Sha384 => SignatureHash::Sha384,
            TimestampHash::Sha512 => SignatureHash::Sha512,
        }
    }
}

/// Who signed the token, as its SignerInfo names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerId {
    /// `issuerAndSerialNumber`: the issuer's DER Name and the serial's INTEGER contents.
    IssuerSerial {
        /// The issuer Name, DER.
        issuer: Vec<u8>,
        /// The serial number (INTEGER contents, big-endian).
        serial: Vec<u8>,
    },
    /// `subjectKeyIdentifier`.
    KeyId(Vec<u8>),
}

/// One RFC 3161 timestamp, read (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTimestamp {
    /// The `TimeStampResp`, as the bundle holds it.
    pub der: Vec<u8>,
    /// The imprint's hash algorithm.
    pub imprint_hash: TimestampHash,
    /// The imprint: the hash of what was timestamped.
    pub imprint: Vec<u8>,
    /// `genTime`, in seconds since the epoch (fractions dropped).
    pub gen_time: i64,
    /// `serialNumber` (INTEGER contents).
    pub serial: Vec<u8>,
    /// `nonce` (INTEGER contents), if any.
    pub nonce: Option<Vec<u8>>,
    /// `tsa` (the DER GeneralName), if any.
    pub tsa_name: Option<Vec<u8>>,
    /// The certificates the token carries (DER).
    pub certificates: Vec<Vec<u8>>,
    /// Who signed.
    pub signer: SignerId,
    tst_info: Vec<u8>,
    digest_hash: TimestampHash,
    message_digest: Vec<u8>,
    signed_attrs: Vec<u8>,
    signature_hash: TimestampHash,
    signature: Vec<u8>,
}

/// A timestamp that verified with an authority of the trusted root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    /// `genTime`.
    pub time: UnixTime,
    /// The authority's URI.
    pub uri: String,
}

/// Why one authority does not vouch for a timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityRefusal {
    /// The authority's chain in the trusted root is empty or unreadable.
    #[error("its chain in the trusted root is unusable: {0}")]
    Chain(String),
    /// No certificate for the signer.
    #[error("the token carries no certificate and the authority lists no leaf")]
    NoSigner,
    /// The token's signer is not the authority's leaf.
    #[error("the token's signer certificate is not the authority's leaf certificate")]
    OtherSigner,
    /// The token's certificates do not include the one its signer names.
    #[error("no certificate of the token is the signer it names")]
    SignerNotFound,
    /// The messageDigest attribute is not the hash of the TSTInfo.
    #[error("the messageDigest attribute {attribute} is not the {hash} of the TSTInfo ({actual})")]
    ContentDigest {
        /// The hash algorithm.
        hash: &'static str,
        /// Hex of the attribute.
        attribute: String,
        /// Hex of the TSTInfo's hash.
        actual: String,
    },
    /// The CMS signature does not verify.
    #[error("the signature over the signed attributes does not verify with the key of '{0}'")]
    Signature(String),
    /// The signer does not chain to the authority's root at genTime.
    #[error("the signer certificate '{subject}' does not chain to the authority's root at {}: {reason}", Rfc3339(*at))]
    Untrusted {
        /// The signer's subject.
        subject: String,
        /// genTime.
        at: UnixTime,
        /// webpki's reason.
        reason: String,
    },
    /// The signer is no timestamping leaf.
    #[error("the signer certificate '{subject}' is not a timestamping leaf: {reason}")]
    NotTimestamping {
        /// The signer's subject.
        subject: String,
        /// What is missing.
        reason: String,
    },
    /// genTime is outside the authority's validFor.
    #[error("genTime {} is outside the authority's validFor ({} to {})", Rfc3339(*at), window_end(*from), window_end(*until))]
    OutsideValidity {
        /// genTime.
        at: UnixTime,
        /// validFor.start.
        from: Option<UnixTime>,
        /// validFor.end.
        until: Option<UnixTime>,
    },
}

fn window_end(t: Option<UnixTime>) -> String {
    t.map_or_else(|| "open".to_string(), |t| Rfc3339(t).to_string())
}

/// Why a timestamp cannot be read or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Not a DER TimeStampResp with a SignedData token over a TSTInfo.
    #[error("is not a valid DER timestamp response: {0}")]
    Malformed(String),
    /// The TSA did not grant it.
    #[error("is a refused timestamp response (status {0})")]
    NotGranted(u64),
    /// The imprint is not the hash of the bundle's signature.
    #[error("covers {hash} {imprint}, not the bundle's signature ({hash} {actual})")]
    Imprint {
        /// The imprint's algorithm.
        hash: &'static str,
        /// Hex of the imprint.
        imprint: String,
        /// Hex of the hash of the signature.
        actual: String,
    },
    /// The trusted root lists no timestamp authority.
    #[error("cannot be verified: the trusted root has no timestamp authorities")]
    NoAuthorities,
    /// It verifies, but another timestamp of the bundle by the same authority already counts.
    #[error("is a second timestamp by {0}, which counts once")]
    DuplicateAuthority(String),
    /// No authority of the trusted root vouches for it.
    #[error("is not verified by any timestamp authority of the trusted root: {}", refusals(.0))]
    Unverified(Vec<(String, AuthorityRefusal)>),
}

fn refusals(list: &[(String, AuthorityRefusal)]) -> String {
    list.iter()
        .map(|(uri, why)| format!("{uri}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn bad(what: impl Into<String>) -> TimestampError {
    TimestampError::Malformed(what.into())
}

/// The whole encoding of the element read from `input` with `rest` left after it.
fn whole<'a>(input: &'a [u8], rest: &[u8]) -> &'a [u8] {
    &input[..input.len() - rest.len()]
}

/// Reads one element of `tag` at the start of `input`.
fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), TimestampError> {
    let (tlv, rest) =
        read_tlv(input).ok_or_else(|| bad(format!("{what} is truncated or not DER")))?;
    if tlv.tag != tag {
        return Err(bad(format!(
            "{what} has tag 0x{:02x}, not 0x{tag:02x}",
            tlv.tag
        )));
    }
    Ok((tlv, rest))
}

/// Reads an optional element of `tag`.
fn optional<'a>(input: &'a [u8], tag: u8) -> Option<(Tlv<'a>, &'a [u8])> {
    match input.first() {
        Some(t) if *t == tag => read_tlv(input),
        _ => None,
    }
}

/// An AlgorithmIdentifier's OID.
fn algorithm<'a>(input: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), TimestampError> {
    let (seq, rest) = expect(input, 0x30, what)?;
    let (oid, _) = expect(seq.contents, 0x06, what)?;
    Ok((oid.contents, rest))
}

/// Dotted text of DER OID contents, for messages.
fn oid_text(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut acc: u64 = 0;
    for (i, b) in oid.iter().enumerate() {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() && i < 8 {
                let first = (acc / 40).min(2);
                parts.push(first);
                parts.push(acc - first * 40);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
        if acc > u64::MAX >> 8 {
            break;
        }
    }
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// `YYYYMMDDHHMMSS[.f*]Z` in seconds since the epoch.
fn generalized_time(text: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(text).ok()?;
    let s = s.strip_suffix('Z')?;
    let (main, fraction) = s.split_once('.').unwrap_or((s, ""));
    if main.len() != 14
        || !main.bytes().all(|c| c.is_ascii_digit())
        || !fraction.bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &main[0..4],
        &main[4..6],
        &main[6..8],
        &main[8..10],
        &main[10..12],
        &main[12..14]
    );
    parse_rfc3339(&rfc3339)
}

impl SignedTimestamp {
    /// Reads a DER `TimeStampResp` (RFC 3161 §2.4.2): a granted status and its token.
    pub fn parse(der: &[u8]) -> Result<SignedTimestamp, TimestampError> {
        if der.len() > MAX_TIMESTAMP_BYTES {
            return Err(bad(format!(
                "{} bytes is over the {MAX_TIMESTAMP_BYTES}-byte limit",
                der.len()
            )));
        }
        let (resp, rest) = expect(der, 0x30, "the TimeStampResp")?;
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes follow the TimeStampResp",
                rest.len()
            )));
        }
        let (status_info, rest) = expect(resp.contents, 0x30, "the PKIStatusInfo")?;
        let (status, _) = expect(status_info.contents, 0x02, "the PKIStatus")?;
        let status = match status.contents {
            [s] => u64::from(*s),
            _ => return Err(bad("the PKIStatus is not a small integer")),
        };
        // granted (0) or grantedWithMods (1), as digitorus/timestamp accepts.
        if status > 1 {
            return Err(TimestampError::NotGranted(status));
        }
        if rest.is_empty() {
            return Err(bad("the response has no timeStampToken"));
        }
        let (token, trailing) = expect(rest, 0x30, "the timeStampToken")?;
        if !trailing.is_empty() {
            return Err(bad("data follows the timeStampToken"));
        }
        let (content_type, rest) = expect(token.contents, 0x06, "the token's contentType")?;
        if content_type.contents != SIGNED_DATA {
            return Err(bad(format!(
                "the token is {}, not CMS SignedData",
                oid_text(content_type.contents)
            )));
        }
        let (explicit, _) = expect(rest, 0xa0, "the token's content")?;
        let (signed_data, _) = expect(explicit.contents, 0x30, "the SignedData")?;
        Self::signed_data(der, signed_data.contents)
    }

    fn signed_data(der: &[u8], input: &[u8]) -> Result<SignedTimestamp, TimestampError> {
        let (_version, rest) = expect(input, 0x02, "the SignedData version")?;
        let (_digests, rest) = expect(rest, 0x31, "the SignedData digestAlgorithms")?;
        let (encap, rest) = expect(rest, 0x30, "the encapContentInfo")?;
        let (e_type, e_rest) = expect(encap.contents, 0x06, "the eContentType")?;
        if e_type.contents != TST_INFO {
            return Err(bad(format!(
                "the signed content is {}, not a TSTInfo",
                oid_text(e_type.contents)
            )));
        }
        let (e_explicit, _) = expect(e_rest, 0xa0, "the eContent")?;
        let (e_octets, _) = expect(e_explicit.contents, 0x04, "the eContent")?;
        let tst_info = e_octets.contents;
        let mut rest = rest;
        let mut certificates = Vec::new();
        if let Some((certs, after)) = optional(rest, 0xa0) {
            let mut list = certs.contents;
            while !list.is_empty() {
                let (_cert, more) = expect(list, 0x30, "a certificate of the token")?;
                certificates.push(whole(list, more).to_vec());
                if certificates.len() > 16 {
                    return Err(bad("the token carries more than 16 certificates"));
                }
                list = more;
            }
            rest = after;
        }
        if let Some((_crls, after)) = optional(rest, 0xa1) {
            rest = after;
        }
        let (signer_infos, _) = expect(rest, 0x31, "the signerInfos")?;
        let (signer_info, others) = expect(signer_infos.contents, 0x30, "the SignerInfo")?;
        if !others.is_empty() {
            return Err(bad("the token has more than one signer"));
        }
        let tst = TstInfo::parse(tst_info)?;
        let info = SignerInfo::parse(signer_info.contents)?;
        Ok(SignedTimestamp {
            der: der.to_vec(),
            imprint_hash: tst.imprint_hash,
            imprint: tst.imprint,
            gen_time: tst.gen_time,
            serial: tst.serial,
            nonce: tst.nonce,
            tsa_name: tst.tsa_name,
            certificates,
            signer: info.signer,
            tst_info: tst_info.to_vec(),
            digest_hash: info.digest_hash,
            message_digest: info.message_digest,
            signed_attrs: info.signed_attrs,
            signature_hash: info.signature_hash,
            signature: info.signature,
        })
    }

    /// genTime.
    pub fn time(&self) -> UnixTime {
        unix_time(self.gen_time)
    }

    /// Verifies the timestamp over `signature` (the bundle's signature bytes) with the first of
    /// `authorities` that vouches for it (see the module).
    pub fn verify(
        &self,
        signature: &[u8],
        authorities: &[TimestampAuthority],
    ) -> Result<VerifiedTimestamp, TimestampError> {
        let actual = self.imprint_hash.of(signature);
        if actual != self.imprint {
            return Err(TimestampError::Imprint {
                hash: self.imprint_hash.name(),
                imprint: hex_encode(&self.imprint),
                actual: hex_encode(&actual),
            });
        }
        if authorities.is_empty() {
            return Err(TimestampError::NoAuthorities);
        }
        let mut refused = Vec::new();
        for tsa in authorities {
            match self.verify_with(tsa) {
                Ok(()) => {
                    return Ok(VerifiedTimestamp {
                        time: self.time(),
                        uri: tsa.uri.clone(),
                    });
                }
                Err(why) => refused.push((tsa.uri.clone(), why)),
            }
        }
        Err(TimestampError::Unverified(refused))
    }

    fn verify_with(&self, tsa: &TimestampAuthority) -> Result<(), AuthorityRefusal> {
        let (root, below) = tsa
            .chain
            .split_last()
            .ok_or_else(|| AuthorityRefusal::Chain("it has no certificates".into()))?;
        // As sigstore-go reads a TSA's chain: the first certificate is the leaf when it is no
        // CA, the last the root, those between intermediates.
        let (leaf, intermediates) = match below.split_first() {
            Some((first, rest)) if !is_ca(first) => (Some(first), rest),
            _ => (None, below),
        };
        let signer: &[u8] = match (self.find_signer()?, leaf) {
            (Some(cert), Some(leaf)) if cert != leaf.as_slice() => {
                return Err(AuthorityRefusal::OtherSigner);
            }
            (Some(cert), _) => cert,
            (None, Some(leaf)) => leaf,
            (None, None) => return Err(AuthorityRefusal::NoSigner),
        };
        let (_, cert) = X509Certificate::from_der(signer)
            .map_err(|e| AuthorityRefusal::Chain(format!("the signer certificate: {e}")))?;
        let subject = cert.subject().to_string();
        if let SignerId::IssuerSerial { issuer, serial } = &self.signer
            && (cert.issuer().as_raw() != issuer.as_slice()
                || cert.raw_serial() != serial.as_slice())
        {
            return Err(AuthorityRefusal::SignerNotFound);
        }
        let content_digest = self.digest_hash.of(&self.tst_info);
        if content_digest != self.message_digest {
            return Err(AuthorityRefusal::ContentDigest {
                hash: self.digest_hash.name(),
                attribute: hex_encode(&self.message_digest),
                actual: hex_encode(&content_digest),
            });
        }
        let key = PublicKey::from_spki_der(cert.tbs_certificate.subject_pki.raw)
            .map_err(|e| AuthorityRefusal::Chain(format!("the signer's key: {e}")))?;
        if !key
            .verify(
                self.signature_hash.signature_hash(),
                &self.signed_attrs,
                &self.signature,
            )
            .unwrap_or(false)
        {
            return Err(AuthorityRefusal::Signature(subject));
        }
        let at = self.time();
        let mut path: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        path.extend(
            self.certificates
                .iter()
                .filter(|c| c.as_slice() != signer)
                .map(|c| CertificateDer::from(c.as_slice())),
        );
        let root_der = CertificateDer::from(root.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&root_der)
            .map_err(|e| AuthorityRefusal::Chain(format!("its root: {e}")))?;
        let signer_der = CertificateDer::from(signer);
        let untrusted = |reason: String| AuthorityRefusal::Untrusted {
            subject: subject.clone(),
            at,
            reason,
        };
        let ee =
            webpki::EndEntityCert::try_from(&signer_der).map_err(|e| untrusted(e.to_string()))?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &path,
            at,
            webpki::KeyUsage::required(TIME_STAMPING),
            None,
            None,
        )
        .map_err(|e| untrusted(e.to_string()))?;
        timestamping_leaf(&cert).map_err(|reason| AuthorityRefusal::NotTimestamping {
            subject: subject.clone(),
            reason,
        })?;
        let secs = unix_seconds(at);
        if tsa.valid_from.is_some_and(|f| secs < unix_seconds(f))
            || tsa.valid_until.is_some_and(|u| secs > unix_seconds(u))
        {
            return Err(AuthorityRefusal::OutsideValidity {
                at,
                from: tsa.valid_from,
                until: tsa.valid_until,
            });
        }
        Ok(())
    }

    /// The token's certificate its signer names, if it carries certificates.
    fn find_signer(&self) -> Result<Option<&[u8]>, AuthorityRefusal> {
        if self.certificates.is_empty() {
            return Ok(None);
        }
        for der in &self.certificates {
            let Ok((_, cert)) = X509Certificate::from_der(der) else {
                continue;
            };
            let matches = match &self.signer {
                SignerId::IssuerSerial { issuer, serial } => {
                    cert.issuer().as_raw() == issuer.as_slice()
                        && cert.raw_serial() == serial.as_slice()
                }
                SignerId::KeyId(id) => cert.extensions().iter().any(|e| {
                    matches!(e.parsed_extension(), ParsedExtension::SubjectKeyIdentifier(k) if k.0 == id.as_slice())
                }),
            };
            if matches {
                return Ok(Some(der));
            }
        }
        Err(AuthorityRefusal::SignerNotFound)
    }
}

fn is_ca(der: &[u8]) -> bool {
    X509Certificate::from_der(der)
        .ok()
        .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
        .unwrap_or(false)
}

/// timestamp-authority's leaf checks: no CA, an extended key usage marked critical with
/// timeStamping as its only purpose.
fn timestamping_leaf(cert: &X509Certificate<'_>) -> Result<(), String> {
    if cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|b| b.value.ca)
    {
        return Err("it is a CA certificate".into());
    }
    let eku = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.5.29.37")
        .ok_or("it has no extended key usage")?;
    if !eku.critical {
        return Err("its extended key usage is not critical".into());
    }
    let ParsedExtension::ExtendedKeyUsage(usage) = eku.parsed_extension() else {
        return Err("its extended key usage cannot be read".into());
    };
    let count = [
        usage.any,
        usage.server_auth,
        usage.client_auth,
        usage.code_signing,
        usage.email_protection,
        usage.time_stamping,
        usage.ocsp_signing,
    ]
    .iter()
    .filter(|b| **b)
    .count()
        + usage.other.len();
    if !usage.time_stamping || count != 1 {
        return Err(format!(
            "it has {count} extended key usages, timeStamping must be the only one"
        ));
    }
    Ok(())
}

struct TstInfo {
    imprint_hash: TimestampHash,
    imprint: Vec<u8>,
    gen_time: i64,
    serial: Vec<u8>,
    nonce: Option<Vec<u8>>,
    tsa_name: Option<Vec<u8>>,
}

impl TstInfo {
    fn parse(der: &[u8]) -> Result<TstInfo, TimestampError> {
        let (seq, trailing) = expect(der, 0x30, "the TSTInfo")?;
        if !trailing.is_empty() {
            return Err(bad("data follows the TSTInfo"));
        }
        let (_version, rest) = expect(seq.contents, 0x02, "the TSTInfo version")?;
        let (_policy, rest) = expect(rest, 0x06, "the TSTInfo policy")?;
        let (imprint, rest) = expect(rest, 0x30, "the messageImprint")?;
        let (hash_oid, imprint_rest) = algorithm(imprint.contents, "the messageImprint algorithm")?;
        let imprint_hash = TimestampHash::from_oid(hash_oid)
            .map_err(|e| bad(format!("the messageImprint is hashed with {e}")))?;
        let (hashed, _) = expect(imprint_rest, 0x04, "the hashedMessage")?;
        let expected = imprint_hash.of(b"").len();
        if hashed.contents.len() != expected {
            return Err(bad(format!(
                "the hashedMessage has {} bytes, not the {expected} of {}",
                hashed.contents.len(),
                imprint_hash.name()
            )));
        }
        let (serial, rest) = expect(rest, 0x02, "the TSTInfo serialNumber")?;
        let (time, mut rest) = expect(rest, 0x18, "the TSTInfo genTime")?;
        let gen_time = generalized_time(time.contents).ok_or_else(|| {
            bad(format!(
                "genTime '{}' is not a GeneralizedTime",
                String::from_utf8_lossy(time.contents)
            ))
        })?;
        if gen_time < 0 {
            return Err(bad(format!(
                "genTime {} is before 1970",
                format_rfc3339(gen_time)
            )));
        }
        if let Some((_accuracy, after)) = optional(rest, 0x30) {
            rest = after;
        }
        if let Some((_ordering, after)) = optional(rest, 0x01) {
            rest = after;
        }
        let mut nonce = None;
        if let Some((n, after)) = optional(rest, 0x02) {
            nonce = Some(n.contents.to_vec());
            rest = after;
        }
        let mut tsa_name = None;
        if let Some((name, after)) = optional(rest, 0xa0) {
            tsa_name = Some(name.contents.to_vec());
            rest = after;
        }
        if let Some((_extensions, after)) = optional(rest, 0xa1) {
            rest = after;
        }
        if !rest.is_empty() {
            return Err(bad("the TSTInfo has unexpected fields after genTime"));
        }
        Ok(TstInfo {
            imprint_hash,
            imprint: hashed.contents.to_vec(),
            gen_time,
            serial: serial.contents.to_vec(),
            nonce,
            tsa_name,
        })
    }
}

struct SignerInfo {
    signer: SignerId,
    digest_hash: TimestampHash,
    message_digest: Vec<u8>,
    signed_attrs: Vec<u8>,
    signature_hash: TimestampHash,
    signature: Vec<u8>,
}

impl SignerInfo {
    fn parse(input: &[u8]) -> Result<SignerInfo, TimestampError> {
        let (_version, rest) = expect(input, 0x02, "the SignerInfo version")?;
        let (signer, rest) = match rest.first() {
            Some(0x30) => {
                let (sid, after) = expect(rest, 0x30, "the signer's issuerAndSerialNumber")?;
                let (_issuer, sid_rest) = expect(sid.contents, 0x30, "the signer's issuer")?;
                let (serial, _) = expect(sid_rest, 0x02, "the signer's serialNumber")?;
                (
                    SignerId::IssuerSerial {
                        issuer: whole(sid.contents, sid_rest).to_vec(),
                        serial: serial.contents.to_vec(),
                    },
                    after,
                )
            }
            Some(0x80) => {
                let (id, after) = expect(rest, 0x80, "the signer's subjectKeyIdentifier")?;
                (SignerId::KeyId(id.contents.to_vec()), after)
            }
            _ => return Err(bad("the SignerInfo names no signer")),
        };
        let (digest_oid, rest) = algorithm(rest, "the SignerInfo digestAlgorithm")?;
        let digest_hash = TimestampHash::from_oid(digest_oid)
            .map_err(|e| bad(format!("the signer's digest is {e}")))?;
        let before = rest;
        let (attrs, rest) = expect(before, 0xa0, "the signed attributes")?;
        // The signature covers the attributes' DER with the SET OF tag (RFC 5652 §5.4).
        let mut signed_attrs = whole(before, rest).to_vec();
        if let Some(first) = signed_attrs.first_mut() {
            *first = 0x31;
        }
        let (mut content_type_ok, mut message_digest) = (false, None);
        let mut list = attrs.contents;
        while !list.is_empty() {
            let (attr, more) = expect(list, 0x30, "a signed attribute")?;
            let (oid, values) = expect(attr.contents, 0x06, "a signed attribute's type")?;
            let (set, _) = expect(values, 0x31, "a signed attribute's values")?;
            match oid.contents {
                CONTENT_TYPE_ATTR => {
                    let (value, _) = expect(set.contents, 0x06, "the contentType attribute")?;
                    content_type_ok = value.contents == TST_INFO;
                }
                MESSAGE_DIGEST_ATTR => {
                    let (value, _) = expect(set.contents, 0x04, "the messageDigest attribute")?;
                    message_digest = Some(value.contents.to_vec());
                }
                _ => {}
            }
            list = more;
        }
        if !content_type_ok {
            return Err(bad(
                "the signed attributes have no contentType attribute of id-ct-TSTInfo",
            ));
        }
        let message_digest =
            message_digest.ok_or_else(|| bad("the signed attributes have no messageDigest"))?;
        let (sig_oid, rest) = algorithm(rest, "the SignerInfo signatureAlgorithm")?;
        let signature_hash = match sig_oid {
            ECDSA_SHA256 | RSA_SHA256 => TimestampHash::Sha256,
            ECDSA_SHA384 | RSA_SHA384 => TimestampHash::Sha384,
            ECDSA_SHA512 | RSA_SHA512 => TimestampHash::Sha512,
            // A bare key algorithm (id-ecPublicKey, rsaEncryption, …): the digest algorithm's.
            _ => digest_hash,
        };
        let (signature, _) = expect(rest, 0x04, "the signature")?;
        Ok(SignerInfo {
            signer,
            digest_hash,
            message_digest,
            signed_attrs,
            signature_hash,
            signature: signature.contents.to_vec(),
        })
    }
}

#[cfg(test)]
#[path = "rfc3161_tests.rs"]
mod tests;
