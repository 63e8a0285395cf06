//! Rekor bundles (`dev.sigstore.cosign/bundle`): offline proof that a signature was entered in a
//! transparency log, and when.
//!
//! [`verify_bundle`] checks the Signed Entry Timestamp (SET) against the log's key, that the log
//! key was valid at the entry's time, and that the entry's body is about *this* signature: same
//! signature bytes, same payload hash, same key or certificate. A valid bundle gives the signing
//! time ([`TlogProof::integrated_time`]). The SET and log checks are one implementation
//! (`verify_entry`) for every kind of entry: an attestation's `dsse`/`intoto` entry is bound
//! to its envelope by `cosign::verify_attestation_bundle` after the same checks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::key::SignatureHash;
use crate::crypto::pem;
use crate::image::digest::{Digest, hex_encode};
use crate::sigstore::trust::LogKey;
use crate::timestamp::{Rfc3339, UnixTime, unix_time};

/// What a valid bundle proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// When the log integrated the entry: the signing time.
    pub integrated_time: UnixTime,
    /// The entry's index in the log.
    pub log_index: i64,
    /// The log, by URL.
    pub log_url: String,
}

/// Why a bundle does not prove what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RekorError {
    /// Not the JSON cosign writes.
    #[error("the Rekor bundle is malformed: {0}")]
    Malformed(String),
    /// No trusted log has the bundle's log ID.
    #[error("the Rekor bundle is from log {0}, which is not trusted (add its key as rekor.pubkey)")]
    UnknownLog(String),
    /// The SET does not verify with the log key.
    #[error("the Rekor bundle's signed entry timestamp does not verify with the key of {0}")]
    BadSet(String),
    /// The log key was not valid when the entry was made.
    #[error("the Rekor key of {log} was not valid at the entry's time {}", Rfc3339(*time))]
    KeyNotValidAtTime {
        /// The log.
        log: String,
        /// The integrated time.
        time: UnixTime,
    },
    /// The log entry is about another signature, payload or key.
    #[error("the Rekor entry does not match this signature: {0}")]
    BodyMismatch(String),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Bundle {
    signed_entry_timestamp: String,
    payload: BundlePayload,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundlePayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// A Rekor bundle whose SET verified: the log entry's body (decoded) and what the entry proves.
/// What the body must say is the caller's to check: a `hashedrekord` naming a signature
/// ([`verify_bundle`]), or a `dsse`/`intoto` entry naming an attestation
/// (`cosign::verify_attestation_bundle`).
#[derive(Debug, Clone)]
pub(crate) struct LoggedEntry {
    /// The entry's body, as the log holds it.
    pub(crate) body: serde_json::Value,
    /// When and where it was logged.
    pub(crate) proof: TlogProof,
}

/// The checks every cosign Rekor bundle gets, whatever it logs: its JSON, the SET against the
/// trusted `logs` (the key of the log the bundle names), that key's validity at the entry's
/// time, then the body decoded (base64 of JSON).
pub(crate) fn verify_entry(bundle_json: &str, logs: &[LogKey]) -> Result<LoggedEntry, RekorError> {
    let bundle: Bundle =
        serde_json::from_str(bundle_json).map_err(|e| RekorError::Malformed(e.to_string()))?;
    let p = &bundle.payload;
    let log = logs
        .iter()
        .find(|l| l.log_id == p.log_id)
        .ok_or_else(|| RekorError::UnknownLog(p.log_id.clone()))?;
    // The SET signs the canonical (RFC 8785) JSON of these four fields: sorted keys, no spaces.
    let canonical = format!(
        r#"{{"body":{},"integratedTime":{},"logID":{},"logIndex":{}}}"#,
        serde_json::Value::String(p.body.clone()),
        p.integrated_time,
        serde_json::Value::String(p.log_id.clone()),
        p.log_index
    );
    let set = STANDARD
        .decode(bundle.signed_entry_timestamp.trim())
        .map_err(|e| RekorError::Malformed(format!("SignedEntryTimestamp is not base64: {e}")))?;
    if !log
        .key
        .verify(SignatureHash::Sha256, canonical.as_bytes(), &set)
        .unwrap_or(false)
    {
        return Err(RekorError::BadSet(log.base_url.clone()));
    }
    let integrated_time = unix_time(p.integrated_time);
    if !log.valid_at(integrated_time) {
        return Err(RekorError::KeyNotValidAtTime {
            log: log.base_url.clone(),
            time: integrated_time,
        });
    }
    let body = STANDARD
        .decode(&p.body)
        .map_err(|e| RekorError::Malformed(format!("body is not base64: {e}")))?;
    let body = serde_json::from_slice(&body)
        .map_err(|e| RekorError::Malformed(format!("body is not JSON: {e}")))?;
    Ok(LoggedEntry {
        body,
        proof: TlogProof {
            integrated_time,
            log_index: p.log_index,
            log_url: log.base_url.clone(),
        },
    })
}

/// Checks a cosign Rekor bundle for a signature over `payload` by `signer_der` (the DER
/// SubjectPublicKeyInfo of the key, or the DER certificate), against the trusted `logs`.
pub fn verify_bundle(
    bundle_json: &str,
    payload: &[u8],
    signature: &[u8],
    signer_der: &[&[u8]],
    logs: &[LogKey],
) -> Result<TlogProof, RekorError> {
    let entry = verify_entry(bundle_json, logs)?;
    check_body(&entry.body, payload, signature, signer_der)?;
    Ok(entry.proof)
}

/// Hex of the SHA-256 of `bytes`, as log entries record hashes.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex_encode(&Digest::sha256_of(bytes).bytes())
}

/// The DER of the first PEM block of a logged key or certificate (base64 of its PEM text).
pub(crate) fn logged_pem_der(b64: &serde_json::Value) -> Option<Vec<u8>> {
    let text = String::from_utf8(STANDARD.decode(b64.as_str()?).ok()?).ok()?;
    pem::parse_blocks(&text)
        .ok()?
        .into_iter()
        .next()
        .map(|b| b.der)
}

/// The body must be a `hashedrekord` (or `rekord`) entry naming this signature, the SHA-256 of
/// this payload and this key or certificate.
fn check_body(
    v: &serde_json::Value,
    payload: &[u8],
    signature: &[u8],
    signer_der: &[&[u8]],
) -> Result<(), RekorError> {
    let mismatch = |s: &str| RekorError::BodyMismatch(s.to_string());
    let kind = v["kind"].as_str().unwrap_or_default();
    if kind != "hashedrekord" && kind != "rekord" {
        return Err(mismatch(&format!(
            "entry kind '{kind}' is not hashedrekord"
        )));
    }
    let spec = &v["spec"];
    let hash = &spec["data"]["hash"];
    if hash["algorithm"].as_str() != Some("sha256") {
        return Err(mismatch("the entry's payload hash is not sha256"));
    }
    if hash["value"].as_str() != Some(sha256_hex(payload).as_str()) {
        return Err(mismatch("the entry records another payload"));
    }
    let logged_sig = spec["signature"]["content"]
        .as_str()
        .and_then(|s| STANDARD.decode(s).ok())
        .ok_or_else(|| mismatch("the entry has no signature"))?;
    if logged_sig != signature {
        return Err(mismatch("the entry records another signature"));
    }
    let logged_key = logged_pem_der(&spec["signature"]["publicKey"]["content"])
        .ok_or_else(|| mismatch("the entry has no public key or certificate"))?;
    if !signer_der.contains(&logged_key.as_slice()) {
        return Err(mismatch("the entry records another key or certificate"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::{
        BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, ImageManifest, SIGNATURE_ANNOTATION,
    };
    use crate::crypto::key::PublicKey;
    use crate::sigstore::trust::TrustedRoot;

    const CONNAISSEUR_SIG: &[u8] = include_bytes!("../../testdata/connaisseur/sig-manifest.json");
    const CONNAISSEUR_PAYLOAD: &[u8] = include_bytes!("../../testdata/connaisseur/payload.json");
    const CI_SIGNATURE: &[u8] = include_bytes!("../../testdata/containers-image/signature-1");
    const CI_KEY: &str = include_str!("../../testdata/containers-image/cosign2.pub");

    fn connaisseur() -> (String, Vec<u8>, Vec<u8>) {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        let l = &m.layers[0];
        let sig = STANDARD
            .decode(l.annotation(SIGNATURE_ANNOTATION).unwrap())
            .unwrap();
        let cert = pem::parse_blocks(l.annotation(CERTIFICATE_ANNOTATION).unwrap())
            .unwrap()
            .remove(0)
            .der;
        (
            l.annotation(BUNDLE_ANNOTATION).unwrap().to_string(),
            sig,
            cert,
        )
    }

    #[test]
    fn real_keyless_bundle_verifies_against_the_public_good_rekor_key() {
        let (bundle, sig, cert) = connaisseur();
        let proof = verify_bundle(
            &bundle,
            CONNAISSEUR_PAYLOAD,
            &sig,
            &[&cert],
            &TrustedRoot::public_good().tlogs,
        )
        .unwrap();
        assert_eq!(proof.integrated_time, unix_time(1_717_082_297));
        assert_eq!(proof.log_url, "https://rekor.sigstore.dev");
    }

    #[test]
    fn real_key_based_bundle_verifies() {
        let json = CI_SIGNATURE.strip_prefix(b"\x00sigstore-json\n").unwrap();
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        let payload = STANDARD.decode(v["payload"].as_str().unwrap()).unwrap();
        let sig = STANDARD
            .decode(v["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap())
            .unwrap();
        let bundle = v["annotations"][BUNDLE_ANNOTATION].as_str().unwrap();
        let key = PublicKey::from_pem(CI_KEY).unwrap();
        let proof = verify_bundle(
            bundle,
            &payload,
            &sig,
            &[key.spki_der()],
            &TrustedRoot::public_good().tlogs,
        )
        .unwrap();
        assert_eq!(proof.integrated_time, unix_time(1_674_251_859));
    }

    #[test]
    fn a_bundle_for_another_signature_payload_or_key_is_refused() {
        let (bundle, sig, cert) = connaisseur();
        let logs = &TrustedRoot::public_good().tlogs;
        let mut other_sig = sig.clone();
        other_sig[10] ^= 1;
        assert!(matches!(
            verify_bundle(&bundle, CONNAISSEUR_PAYLOAD, &other_sig, &[&cert], logs),
            Err(RekorError::BodyMismatch(_))
        ));
        assert!(matches!(
            verify_bundle(&bundle, b"{}", &sig, &[&cert], logs),
            Err(RekorError::BodyMismatch(_))
        ));
        assert!(matches!(
            verify_bundle(&bundle, CONNAISSEUR_PAYLOAD, &sig, &[b"x"], logs),
            Err(RekorError::BodyMismatch(_))
        ));
    }

    #[test]
    fn a_tampered_set_or_unknown_log_is_refused() {
        let (bundle, sig, cert) = connaisseur();
        let logs = &TrustedRoot::public_good().tlogs;
        let tampered = bundle.replace(
            "\"integratedTime\":1717082297",
            "\"integratedTime\":1717082298",
        );
        assert_ne!(tampered, bundle);
        assert!(matches!(
            verify_bundle(&tampered, CONNAISSEUR_PAYLOAD, &sig, &[&cert], logs),
            Err(RekorError::BadSet(_))
        ));
        assert!(matches!(
            verify_bundle(&bundle, CONNAISSEUR_PAYLOAD, &sig, &[&cert], &[]),
            Err(RekorError::UnknownLog(_))
        ));
        assert!(matches!(
            verify_bundle("{}", CONNAISSEUR_PAYLOAD, &sig, &[&cert], logs),
            Err(RekorError::Malformed(_))
        ));
    }
}
