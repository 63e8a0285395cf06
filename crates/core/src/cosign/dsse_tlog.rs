//! The Rekor bundle (`dev.sigstore.cosign/bundle`) of a `.att` layer: the same Signed Entry
//! Timestamp as a signature's, over a `dsse` (0.0.1) or `intoto` (0.0.1, 0.0.2) entry instead of
//! a `hashedrekord` one.
//!
//! cosign binds such an entry to the layer by its envelope hash and key only
//! (`VerifyBundle`: the signature comparison is skipped for attestations); sealgate binds it to
//! the statement (the entry's payload hash, when it records one, else the envelope hash), to a
//! signature of the envelope and to the key or certificate.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::dsse::Envelope;
use crate::sigstore::rekor::{RekorError, TlogProof, logged_pem_der, sha256_hex, verify_entry};
use crate::sigstore::trust::LogKey;

/// Checks the Rekor bundle of an attestation layer: the SET against the trusted `logs` (the log
/// key valid at the entry's time), as for a signature's (`verify_entry`), then that the entry
/// is about this envelope (`envelope_bytes` as stored, `envelope` as read), one of its
/// signatures and `signer_der` (the DER SubjectPublicKeyInfo of the key, or the DER
/// certificate).
pub fn verify_attestation_bundle(
    bundle_json: &str,
    envelope_bytes: &[u8],
    envelope: &Envelope,
    signer_der: &[&[u8]],
    logs: &[LogKey],
) -> Result<TlogProof, RekorError> {
    let entry = verify_entry(bundle_json, logs)?;
    check_body(&entry.body, envelope_bytes, envelope, signer_der)?;
    Ok(entry.proof)
}

/// `{algorithm, value}` equal to the SHA-256 of `bytes`; `None` when the entry has no such hash.
fn hash_matches(hash: &Value, bytes: &[u8]) -> Option<bool> {
    let value = hash["value"].as_str()?;
    Some(hash["algorithm"].as_str() == Some("sha256") && value == sha256_hex(bytes))
}

/// A logged signature: base64 of the signature, or (intoto 0.0.2) base64 of that base64.
fn logged_signature(b64: &Value) -> Vec<Vec<u8>> {
    let Some(once) = b64.as_str().and_then(|s| STANDARD.decode(s).ok()) else {
        return Vec::new();
    };
    let twice = std::str::from_utf8(&once)
        .ok()
        .and_then(|s| STANDARD.decode(s.trim()).ok());
    std::iter::once(once).chain(twice).collect()
}

/// The body must be a `dsse` or `intoto` entry naming this statement (or envelope), a signature
/// of the envelope and this key or certificate.
fn check_body(
    v: &Value,
    envelope_bytes: &[u8],
    envelope: &Envelope,
    signer_der: &[&[u8]],
) -> Result<(), RekorError> {
    let mismatch = |s: &str| RekorError::BodyMismatch(s.to_string());
    let kind = v["kind"].as_str().unwrap_or_default();
    let spec = &v["spec"];
    // (payload hash, envelope hash, [(signature, verifier)]) as each kind records them.
    let (payload_hash, envelope_hash, logged): (&Value, &Value, Vec<(&Value, &Value)>) = match kind
    {
        "dsse" => (
            &spec["payloadHash"],
            &spec["envelopeHash"],
            spec["signatures"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| (&s["signature"], &s["verifier"]))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        "intoto" if v["apiVersion"].as_str() == Some("0.0.1") => (
            &spec["content"]["payloadHash"],
            &spec["content"]["hash"],
            vec![(&Value::Null, &spec["publicKey"])],
        ),
        "intoto" => (
            &spec["content"]["payloadHash"],
            &spec["content"]["hash"],
            spec["content"]["envelope"]["signatures"]
                .as_array()
                .map(|a| a.iter().map(|s| (&s["sig"], &s["publicKey"])).collect())
                .unwrap_or_default(),
        ),
        other => {
            return Err(mismatch(&format!(
                "entry kind '{other}' is not dsse or intoto"
            )));
        }
    };
    let bound = match hash_matches(payload_hash, &envelope.payload) {
        Some(ok) => ok,
        None => hash_matches(envelope_hash, envelope_bytes).unwrap_or(false),
    };
    if !bound {
        return Err(mismatch("the entry records another statement"));
    }
    let by_signer = logged.iter().any(|(sig, verifier)| {
        let key_ok =
            logged_pem_der(verifier).is_some_and(|der| signer_der.contains(&der.as_slice()));
        // intoto 0.0.1 entries record no signature.
        let sig_ok = sig.is_null()
            || logged_signature(sig)
                .iter()
                .any(|s| envelope.signatures.iter().any(|e| &e.sig == s));
        key_ok && sig_ok
    });
    if !by_signer {
        return Err(mismatch(
            "the entry records another signature, key or certificate",
        ));
    }
    Ok(())
}
