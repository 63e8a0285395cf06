//! Sigstore trusted roots: the transparency-log, certificate-authority and CT-log keys that
//! Rekor bundles and Fulcio certificates are checked against, with their validity windows.
//!
//! [`TrustedRoot::public_good`] is the public-good Sigstore root (the TUF target
//! `trusted_root.json`) embedded at build time, so nothing is fetched at admission time.

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::chain::{ChainError, LinkMemo, VerifiedChain, verify_code_signing_chain_memo};
use crate::crypto::key::PublicKey;
use crate::image::digest::{Digest, hex_encode};
use crate::timestamp::{UnixTime, parse_rfc3339, unix_time};

const PUBLIC_GOOD: &str = include_str!("../../trust/public-good-trusted-root.json");

/// A transparency log (Rekor) or certificate-transparency log and its key.
#[derive(Debug, Clone)]
pub struct LogKey {
    /// Where the log lives, e.g. `https://rekor.sigstore.dev`.
    pub base_url: String,
    /// The log's public key.
    pub key: PublicKey,
    /// Hex of sha256(DER SubjectPublicKeyInfo): the log ID bundles and SCTs name.
    pub log_id: String,
    /// When the key starts to be valid.
    pub valid_from: Option<UnixTime>,
    /// When the key stops being valid.
    pub valid_until: Option<UnixTime>,
}

impl LogKey {
    /// A log key from a PEM public key given in a policy (`rekor.pubkey`, `ctlog.pubkey`),
    /// valid forever.
    pub fn from_key(base_url: &str, key: PublicKey) -> LogKey {
        LogKey {
            base_url: base_url.to_string(),
            log_id: hex_encode(&Digest::sha256_of(key.spki_der()).bytes()),
            key,
            valid_from: None,
            valid_until: None,
        }
    }

    /// Whether `time` lies in the key's validity window.
    pub fn valid_at(&self, time: UnixTime) -> bool {
        self.valid_from.is_none_or(|f| time >= f) && self.valid_until.is_none_or(|u| time <= u)
    }
}

/// A certificate authority (Fulcio) and its chain, leaf-most CA first.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// Where the CA lives.
    pub uri: String,
    /// DER certificates, issuing CA first, root last.
    pub chain: Vec<Vec<u8>>,
    /// When the CA starts to issue.
    pub valid_from: Option<UnixTime>,
    /// When the CA stops issuing.
    pub valid_until: Option<UnixTime>,
}

/// An RFC 3161 timestamp authority (`timestampAuthorities`) and its chain.
#[derive(Debug, Clone)]
pub struct TimestampAuthority {
    /// Where the TSA lives, e.g. `https://timestamp.sigstore.dev/api/v1/timestamp`.
    pub uri: String,
    /// DER certificates as the root lists them: the TSA's signing (leaf) certificate first,
    /// then intermediates, the root last.
    pub chain: Vec<Vec<u8>>,
    /// When the TSA starts to be trusted.
    pub valid_from: Option<UnixTime>,
    /// When the TSA stops being trusted.
    pub valid_until: Option<UnixTime>,
}

/// The keys a signature's transparency and certificate proofs are checked against.
#[derive(Debug, Clone, Default)]
pub struct TrustedRoot {
    /// Rekor logs.
    pub tlogs: Vec<LogKey>,
    /// Fulcio CAs.
    pub certificate_authorities: Vec<CertificateAuthority>,
    /// Certificate-transparency logs.
    pub ctlogs: Vec<LogKey>,
    /// RFC 3161 timestamp authorities.
    pub timestamp_authorities: Vec<TimestampAuthority>,
    /// The signatures by which the CAs' roots certified their intermediates, once verified (see
    /// [`TrustedRoot::verify_ca_chain`]). A clone starts with an empty memo.
    ca_links: LinkMemo,
}

/// Why a trusted root could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid trusted root: {0}")]
pub struct TrustError(String);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoot {
    #[serde(default)]
    tlogs: Vec<RawLog>,
    #[serde(default)]
    certificate_authorities: Vec<RawCa>,
    #[serde(default)]
    ctlogs: Vec<RawLog>,
    #[serde(default)]
    timestamp_authorities: Vec<RawCa>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLog {
    base_url: String,
    public_key: RawKey,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    raw_bytes: String,
    valid_for: Option<RawValidity>,
}

#[derive(serde::Deserialize)]
struct RawValidity {
    start: Option<String>,
    end: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCa {
    uri: String,
    cert_chain: RawChain,
    valid_for: Option<RawValidity>,
}

#[derive(serde::Deserialize)]
struct RawChain {
    certificates: Vec<RawCert>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCert {
    raw_bytes: String,
}

type Window = (Option<UnixTime>, Option<UnixTime>);

fn window(v: &Option<RawValidity>) -> Result<Window, TrustError> {
    let parse = |s: &Option<String>| -> Result<Option<UnixTime>, TrustError> {
        match s {
            None => Ok(None),
            Some(t) => parse_rfc3339(t)
                .map(|secs| Some(unix_time(secs)))
                .ok_or_else(|| TrustError(format!("bad timestamp '{t}'"))),
        }
    };
    match v {
        None => Ok((None, None)),
        Some(v) => Ok((parse(&v.start)?, parse(&v.end)?)),
    }
}

fn log(raw: RawLog) -> Result<LogKey, TrustError> {
    let der = STANDARD
        .decode(&raw.public_key.raw_bytes)
        .map_err(|e| TrustError(format!("key of {} is not base64: {e}", raw.base_url)))?;
    let key = PublicKey::from_spki_der(&der)
        .map_err(|e| TrustError(format!("key of {}: {e}", raw.base_url)))?;
    let (valid_from, valid_until) = window(&raw.public_key.valid_for)?;
    Ok(LogKey {
        valid_from,
        valid_until,
        ..LogKey::from_key(&raw.base_url, key)
    })
}

/// A CA's or TSA's DER chain and validity window.
fn ca_parts(ca: &RawCa, what: &str) -> Result<(Vec<Vec<u8>>, Window), TrustError> {
    let chain = ca
        .cert_chain
        .certificates
        .iter()
        .map(|c| {
            STANDARD
                .decode(&c.raw_bytes)
                .map_err(|e| TrustError(format!("{what} {}: {e}", ca.uri)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((chain, window(&ca.valid_for)?))
}

impl TrustedRoot {
    /// Parses a Sigstore `trusted_root.json`, or a `ClientTrustConfig` (cosign v3's
    /// `--trusted-root` accepts both) by its `trustedRoot` member.
    pub fn from_json(bytes: &[u8]) -> Result<TrustedRoot, TrustError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| TrustError(e.to_string()))?;
        let root = match value.get("trustedRoot") {
            Some(inner) if inner.is_object() => inner.clone(),
            _ => value,
        };
        let raw: RawRoot = serde_json::from_value(root).map_err(|e| TrustError(e.to_string()))?;
        let tlogs = raw.tlogs.into_iter().map(log).collect::<Result<_, _>>()?;
        let ctlogs = raw.ctlogs.into_iter().map(log).collect::<Result<_, _>>()?;
        let certificate_authorities = raw
            .certificate_authorities
            .into_iter()
            .map(|ca| {
                let (chain, (valid_from, valid_until)) = ca_parts(&ca, "CA")?;
                Ok(CertificateAuthority {
                    uri: ca.uri,
                    chain,
                    valid_from,
                    valid_until,
                })
            })
            .collect::<Result<_, TrustError>>()?;
        let timestamp_authorities = raw
            .timestamp_authorities
            .into_iter()
            .map(|tsa| {
                let (chain, (valid_from, valid_until)) = ca_parts(&tsa, "timestamp authority")?;
                Ok(TimestampAuthority {
                    uri: tsa.uri,
                    chain,
                    valid_from,
                    valid_until,
                })
            })
            .collect::<Result<_, TrustError>>()?;
        Ok(TrustedRoot {
            tlogs,
            certificate_authorities,
            ctlogs,
            timestamp_authorities,
            ca_links: LinkMemo::default(),
        })
    }

    /// The public-good Sigstore trusted root, embedded in sealgate.
    pub fn public_good() -> &'static TrustedRoot {
        static ROOT: LazyLock<TrustedRoot> =
            LazyLock::new(|| TrustedRoot::from_json(PUBLIC_GOOD.as_bytes()).unwrap_or_default());
        &ROOT
    }

    /// Validates `leaf` at `at` up to the root of `ca` (the last certificate of its chain), with
    /// `path` as the intermediates to build the path from (the CA's own intermediates and the
    /// signature's chain annotation), as [`crate::crypto::chain::verify_code_signing_chain`]
    /// does, except that the root's signature on one of the CA's own intermediates is verified
    /// once per trusted root and then remembered, keyed by the exact bytes of both certificates:
    /// Fulcio's intermediate→root link is the same for every signature it issues. Everything else
    /// (the leaf's signature by the intermediate, every certificate's validity at `at`, the
    /// code-signing usage, constraints) is checked every time.
    pub fn verify_ca_chain(
        &self,
        ca: &CertificateAuthority,
        leaf: &[u8],
        path: &[Vec<u8>],
        at: UnixTime,
    ) -> Result<VerifiedChain, ChainError> {
        let (roots, ca_certs) = match ca.chain.split_last() {
            Some((root, intermediates)) => (std::slice::from_ref(root), intermediates),
            None => (&[][..], &[][..]),
        };
        verify_code_signing_chain_memo(leaf, path, roots, at, &self.ca_links, ca_certs)
    }

    /// How many verified CA links the trusted root remembers.
    pub fn remembered_ca_links(&self) -> usize {
        self.ca_links.len()
    }

    /// The transparency log with this hex log ID.
    pub fn tlog(&self, log_id: &str) -> Option<&LogKey> {
        self.tlogs.iter().find(|l| l.log_id == log_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_public_good_root_has_rekor_fulcio_and_ct() {
        let root = TrustedRoot::public_good();
        let rekor = root
            .tlog("c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d")
            .unwrap();
        assert_eq!(rekor.base_url, "https://rekor.sigstore.dev");
        assert_eq!(
            rekor.valid_from,
            parse_rfc3339("2021-01-12T11:53:27Z").map(unix_time)
        );
        assert!(rekor.valid_at(unix_time(1_717_082_297)));
        assert!(!rekor.valid_at(unix_time(1_600_000_000)));
        assert_eq!(root.tlogs.len(), 2);
        assert_eq!(root.certificate_authorities.len(), 2);
        assert_eq!(root.ctlogs.len(), 2);
        assert_eq!(root.timestamp_authorities.len(), 1);
        let tsa = &root.timestamp_authorities[0];
        assert_eq!(tsa.uri, "https://timestamp.sigstore.dev/api/v1/timestamp");
        assert_eq!(tsa.chain.len(), 2);
    }

    #[test]
    fn the_root_remembers_its_ca_link_once_and_a_clone_starts_afresh() {
        use crate::cosign::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, ImageManifest};
        use crate::crypto::pem;
        let m = ImageManifest::parse(include_bytes!(
            "../../testdata/connaisseur/sig-manifest.json"
        ))
        .unwrap();
        let ders = |name| -> Vec<Vec<u8>> {
            pem::parse_blocks(m.layers[0].annotation(name).unwrap())
                .unwrap()
                .into_iter()
                .map(|b| b.der)
                .collect()
        };
        let leaf = ders(CERTIFICATE_ANNOTATION).remove(0);
        let root = TrustedRoot::public_good().clone();
        assert_eq!(root.remembered_ca_links(), 0);
        let at = unix_time(1_717_082_297);
        let ca = root
            .certificate_authorities
            .iter()
            .find(|ca| {
                ca.valid_from.is_none_or(|f| at >= f) && ca.valid_until.is_none_or(|u| at <= u)
            })
            .unwrap();
        for _ in 0..2 {
            root.verify_ca_chain(ca, &leaf, &ders(CHAIN_ANNOTATION), at)
                .unwrap();
            assert_eq!(root.remembered_ca_links(), 1);
        }
        assert_eq!(root.clone().remembered_ca_links(), 0);
        // A CA without certificates chains nothing.
        let empty = CertificateAuthority {
            chain: Vec::new(),
            ..ca.clone()
        };
        assert!(root.verify_ca_chain(&empty, &leaf, &[], at).is_err());
    }

    #[test]
    fn malformed_roots_are_errors() {
        assert!(TrustedRoot::from_json(b"{").is_err());
        let bad_key = r#"{"tlogs":[{"baseUrl":"x","publicKey":{"rawBytes":"AAAA"}}]}"#;
        assert!(
            TrustedRoot::from_json(bad_key.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("key of x")
        );
    }
}
