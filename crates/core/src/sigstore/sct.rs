//! Signed certificate timestamps embedded in Fulcio certificates (RFC 6962 §3.3): offline proof
//! that a certificate-transparency log saw the certificate before it was issued.
//!
//! Fulcio logs a precertificate, then embeds the log's SCT in the certificate it issues
//! (extension 1.3.6.1.4.1.11129.2.4.2). The SCT signs the precertificate's TBSCertificate,
//! which is the issued certificate's TBSCertificate without that extension, together with the
//! SHA-256 of the issuer's public key. [`verify_embedded_sct`] rebuilds exactly those bytes and
//! checks the signature with the CT log keys of the trusted root (or a policy's `ctlog.pubkey`),
//! each inside its validity window.

use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crypto::key::SignatureHash;
use crate::image::digest::{Digest, hex_encode};
use crate::sigstore::trust::LogKey;
use crate::timestamp::{Rfc3339, UnixTime};

/// The embedded SCT list extension, 1.3.6.1.4.1.11129.2.4.2.
pub const SCT_LIST_OID: &str = "1.3.6.1.4.1.11129.2.4.2";
/// The DER contents of that OID.
const SCT_LIST_OID_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02];

/// What a valid SCT proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SctProof {
    /// The CT log that signed it.
    pub log_url: String,
    /// When the log saw the precertificate.
    pub timestamp: UnixTime,
}

/// Why a certificate's SCTs do not prove it was logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctError {
    /// The certificate has no embedded SCT.
    #[error(
        "the certificate carries no embedded SCT (certificate-transparency proof); set ctlog.ignoreSCT: true if its CA does not log certificates"
    )]
    Missing,
    /// The certificate or its SCT list cannot be read.
    #[error("the certificate's SCT list is malformed: {0}")]
    Malformed(String),
    /// Every SCT failed; why each did, in order.
    #[error("no embedded SCT verifies: {}", join(.0))]
    NoneVerified(Vec<SctRefusal>),
}

/// Why one SCT does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctRefusal {
    /// No trusted CT log has its log ID.
    #[error("SCT from CT log {0}, which is not trusted (add its key as ctlog.pubkey)")]
    UnknownLog(String),
    /// The log key was not valid when the SCT was made.
    #[error("the key of CT log {log} was not valid at the SCT's time {}", Rfc3339(*time))]
    KeyNotValidAtTime {
        /// The log.
        log: String,
        /// The SCT's timestamp.
        time: UnixTime,
    },
    /// Not a version 1 SCT, or a hash sealgate does not verify with.
    #[error("SCT from {log} has version {version} and hash {hash}, which sealgate does not verify")]
    Unsupported {
        /// The log.
        log: String,
        /// The SCT version (0 is v1).
        version: u8,
        /// The TLS hash algorithm number.
        hash: u8,
    },
    /// The signature does not verify with the log key.
    #[error("the SCT signature does not verify with the key of CT log {0}")]
    BadSignature(String),
}

fn join(refusals: &[SctRefusal]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks the SCTs embedded in `leaf_der`, issued by the key `issuer_spki_der` (DER
/// SubjectPublicKeyInfo), against the CT `logs`: one SCT that verifies is enough (as sigstore-go's
/// threshold of one); SCTs from other logs are ignored then.
pub fn verify_embedded_sct(
    leaf_der: &[u8],
    issuer_spki_der: &[u8],
    logs: &[LogKey],
) -> Result<SctProof, SctError> {
    let (_, cert) =
        X509Certificate::from_der(leaf_der).map_err(|e| SctError::Malformed(e.to_string()))?;
    let Some(ext) = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == SCT_LIST_OID)
    else {
        return Err(SctError::Missing);
    };
    let ParsedExtension::SCT(scts) = ext.parsed_extension() else {
        return Err(SctError::Malformed("not an SCT list".into()));
    };
    if scts.is_empty() {
        return Err(SctError::Missing);
    }
    let tbs = precertificate_tbs(cert.tbs_certificate.as_ref())
        .ok_or_else(|| SctError::Malformed("the TBSCertificate cannot be rebuilt".into()))?;
    let issuer_key_hash = Digest::sha256_of(issuer_spki_der).bytes();
    let mut refusals = Vec::new();
    for sct in scts {
        let log_id = hex_encode(sct.id.key_id);
        let Some(log) = logs.iter().find(|l| l.log_id == log_id) else {
            refusals.push(SctRefusal::UnknownLog(log_id));
            continue;
        };
        let millis = sct.timestamp;
        let time = UnixTime::since_unix_epoch(std::time::Duration::from_millis(millis));
        let hash = match sct.signature.hash_alg_id {
            4 => Some(SignatureHash::Sha256),
            5 => Some(SignatureHash::Sha384),
            6 => Some(SignatureHash::Sha512),
            _ => None,
        };
        let (0, Some(hash)) = (sct.version.0, hash) else {
            refusals.push(SctRefusal::Unsupported {
                log: log.base_url.clone(),
                version: sct.version.0,
                hash: sct.signature.hash_alg_id,
            });
            continue;
        };
        if !log.valid_at(time) {
            refusals.push(SctRefusal::KeyNotValidAtTime {
                log: log.base_url.clone(),
                time,
            });
            continue;
        }
        let signed = signed_data(millis, &issuer_key_hash, &tbs, sct.extensions.0);
        if log
            .key
            .verify(hash, &signed, sct.signature.data)
            .unwrap_or(false)
        {
            return Ok(SctProof {
                log_url: log.base_url.clone(),
                timestamp: time,
            });
        }
        refusals.push(SctRefusal::BadSignature(log.base_url.clone()));
    }
    Err(SctError::NoneVerified(refusals))
}

/// RFC 6962 §3.2: the `digitally-signed` struct of a precertificate entry's SCT.
fn signed_data(timestamp: u64, issuer_key_hash: &[u8], tbs: &[u8], extensions: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tbs.len() + extensions.len() + 50);
    out.push(0); // sct_version v1
    out.push(0); // signature_type certificate_timestamp
    out.extend_from_slice(&timestamp.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // entry_type precert_entry
    out.extend_from_slice(issuer_key_hash);
    let len = tbs.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]); // uint24 length
    out.extend_from_slice(tbs);
    out.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    out.extend_from_slice(extensions);
    out
}

/// One DER element: its tag, the whole encoding, and its contents.
pub(super) struct Tlv<'a> {
    pub(super) tag: u8,
    whole: &'a [u8],
    pub(super) contents: &'a [u8],
}

/// Reads the DER element at the start of `input` (single-byte tags, definite lengths).
pub(super) fn read_tlv(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    Some((
        Tlv {
            tag,
            whole: &input[..header + len],
            contents: &rest[..len],
        },
        &rest[len..],
    ))
}

/// Every element in `input`, in order.
fn read_all(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (tlv, rest) = read_tlv(input)?;
        out.push(tlv);
        input = rest;
    }
    Some(out)
}

/// `tag`, a DER definite length, then `contents`.
fn encode(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = contents.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(contents);
    out
}

/// The precertificate's TBSCertificate: `tbs` (DER) without the SCT list extension.
fn precertificate_tbs(tbs: &[u8]) -> Option<Vec<u8>> {
    let (outer, rest) = read_tlv(tbs)?;
    if outer.tag != 0x30 || !rest.is_empty() {
        return None;
    }
    let mut body = Vec::with_capacity(tbs.len());
    for field in read_all(outer.contents)? {
        if field.tag != 0xa3 {
            body.extend_from_slice(field.whole);
            continue;
        }
        // extensions [3] EXPLICIT SEQUENCE OF Extension
        let (list, rest) = read_tlv(field.contents)?;
        if list.tag != 0x30 || !rest.is_empty() {
            return None;
        }
        let mut kept = Vec::with_capacity(list.contents.len());
        for extension in read_all(list.contents)? {
            let (oid, _) = read_tlv(extension.contents)?;
            if !(oid.tag == 0x06 && oid.contents == SCT_LIST_OID_DER) {
                kept.extend_from_slice(extension.whole);
            }
        }
        body.extend_from_slice(&encode(0xa3, &encode(0x30, &kept)));
    }
    Some(encode(0x30, &body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, ImageManifest};
    use crate::crypto::chain::verify_code_signing_chain;
    use crate::crypto::pem;
    use crate::sigstore::trust::TrustedRoot;
    use crate::timestamp::unix_time;

    const CONNAISSEUR_SIG: &[u8] = include_bytes!("../../testdata/connaisseur/sig-manifest.json");

    /// The connaisseur leaf and the SPKI of its issuer (the Fulcio intermediate).
    fn leaf_and_issuer() -> (Vec<u8>, Vec<u8>) {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        let l = &m.layers[0];
        let leaf = pem::parse_blocks(l.annotation(CERTIFICATE_ANNOTATION).unwrap())
            .unwrap()
            .remove(0)
            .der;
        let chain: Vec<Vec<u8>> = pem::parse_blocks(l.annotation(CHAIN_ANNOTATION).unwrap())
            .unwrap()
            .into_iter()
            .map(|b| b.der)
            .collect();
        let verified =
            verify_code_signing_chain(&leaf, &chain[..1], &chain[1..], unix_time(1_717_082_297))
                .unwrap();
        (leaf, verified.issuer_spki)
    }

    #[test]
    fn the_real_fulcio_sct_verifies_against_ctfe_2022() {
        let (leaf, issuer) = leaf_and_issuer();
        let proof =
            verify_embedded_sct(&leaf, &issuer, &TrustedRoot::public_good().ctlogs).unwrap();
        assert_eq!(proof.log_url, "https://ctfe.sigstore.dev/2022");
        // The SCT is from the moment Fulcio issued the certificate, before Rekor's entry.
        let secs = crate::timestamp::unix_seconds(proof.timestamp);
        assert!((1_717_082_200..=1_717_082_297).contains(&secs), "{secs}");
    }

    #[test]
    fn the_precertificate_tbs_drops_only_the_sct_extension() {
        let (leaf, _) = leaf_and_issuer();
        let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
        let tbs = cert.tbs_certificate.as_ref();
        let pre = precertificate_tbs(tbs).unwrap();
        assert!(pre.len() < tbs.len());
        let (_, pre_tbs) = x509_parser::certificate::TbsCertificate::from_der(&pre).unwrap();
        let oids = |t: &x509_parser::certificate::TbsCertificate<'_>| {
            t.extensions()
                .iter()
                .map(|e| e.oid.to_id_string())
                .collect::<Vec<_>>()
        };
        let mut without = oids(&cert.tbs_certificate);
        without.retain(|o| o != SCT_LIST_OID);
        assert_eq!(oids(&pre_tbs), without);
        assert_eq!(pre_tbs.subject(), cert.tbs_certificate.subject());
    }

    #[test]
    fn a_tampered_sct_another_issuer_or_log_is_refused() {
        let (leaf, issuer) = leaf_and_issuer();
        let logs = &TrustedRoot::public_good().ctlogs;
        // Flip the last byte of the SCT signature, which ends the SCT list extension's value.
        let (_, cert) = X509Certificate::from_der(&leaf).unwrap();
        let value = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == SCT_LIST_OID)
            .unwrap()
            .value;
        let at = leaf.windows(value.len()).position(|w| w == value).unwrap();
        let mut tampered = leaf.clone();
        tampered[at + value.len() - 1] ^= 1;
        assert!(matches!(
            verify_embedded_sct(&tampered, &issuer, logs),
            Err(SctError::NoneVerified(r)) if r == [SctRefusal::BadSignature("https://ctfe.sigstore.dev/2022".into())]
        ));
        // The issuer key hash is part of what is signed: the leaf's own key is not its issuer.
        let (_, c) = X509Certificate::from_der(&leaf).unwrap();
        let own = c.tbs_certificate.subject_pki.raw.to_vec();
        assert!(matches!(
            verify_embedded_sct(&leaf, &own, logs),
            Err(SctError::NoneVerified(_))
        ));
        // Only the test log: the SCT's log is unknown.
        let test_log: Vec<LogKey> = logs
            .iter()
            .filter(|l| l.base_url.ends_with("/test"))
            .cloned()
            .collect();
        let err = verify_embedded_sct(&leaf, &issuer, &test_log).unwrap_err();
        assert!(
            err.to_string()
                .contains("which is not trusted (add its key as ctlog.pubkey)"),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_without_scts_says_so() {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        let chain = pem::parse_blocks(m.layers[0].annotation(CHAIN_ANNOTATION).unwrap()).unwrap();
        // The Fulcio intermediate carries no SCT list.
        assert_eq!(
            verify_embedded_sct(&chain[0].der, &chain[1].der, &[]),
            Err(SctError::Missing)
        );
    }

    #[test]
    fn der_lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let contents = vec![7u8; len];
            let encoded = encode(0x30, &contents);
            let (tlv, rest) = read_tlv(&encoded).unwrap();
            assert!(rest.is_empty());
            assert_eq!(tlv.tag, 0x30);
            assert_eq!(tlv.contents.len(), len);
        }
        assert!(read_tlv(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read_tlv(&[0x30, 0x02, 1]).is_none());
    }
}
