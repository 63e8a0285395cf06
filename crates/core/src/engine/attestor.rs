//! Does one attestor entry have a valid signature for one image digest?
//!
//! [`check_attestor`] is pure but does the cryptography: signatures over payloads, Rekor bundles,
//! certificate chains at signing time. Its result, an [`AttestorOutcome`], depends only on the
//! attestor's content, the signature set and the time, so callers may cache it by the
//! attestor's fingerprint ([`crate::policy::Attestor::fingerprint`]), repository and digest. A
//! verified outcome carries the [`Verified`] proof, which nothing outside the engine can make.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, SignatureSet, Signer, Verification,
    VerifiedSignature, payload, verify_with_key, with_annotations,
};
use crate::crypto::chain::{cert_info, verify_code_signing_chain};
use crate::crypto::key::SignatureHash;
use crate::image::digest::Digest;
use crate::policy::{Attestor, AttestorKind, CertificateAttestor, KeyAttestor, RekorSettings};
use crate::sigstore::rekor::{TlogProof, verify_bundle};
use crate::sigstore::trust::{LogKey, TrustedRoot};
use crate::timestamp::UnixTime;

use super::outcome::{
    AttestorFailure, AttestorOutcome, CannotEvaluate, CertificateRefusal, TlogRefusal, Verified,
};

/// What verification may assume: the trust roots and the current time.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// Trusted Rekor, Fulcio and CT keys (for attestors that name no key of their own).
    pub trust: &'a TrustedRoot,
    /// Now: the signing time when no transparency log proves an earlier one.
    pub now: UnixTime,
}

/// Checks `attestor` against the signatures found for an image.
pub fn check_attestor(
    attestor: &Attestor,
    signatures: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    if let Some(why) = attestor.unsupported() {
        return AttestorOutcome::Error(CannotEvaluate::Unsupported(why.clone()));
    }
    match &attestor.kind {
        AttestorKind::Key(k) => check_key(attestor, k, signatures, ctx),
        AttestorKind::Certificate(c) => check_certificate(attestor, c, signatures, ctx),
        // Keyless attestors carry their `Unsupported` reason (above); nested sets are walked by
        // the engine and never reach a leaf check.
        AttestorKind::Keyless(_) | AttestorKind::Nested(_) => {
            AttestorOutcome::Error(CannotEvaluate::NestedSet)
        }
    }
}

fn rekor_logs<'a>(rekor: &RekorSettings, ctx: VerifyContext<'a>) -> std::borrow::Cow<'a, [LogKey]> {
    match &rekor.public_key {
        Some(k) => std::borrow::Cow::Owned(vec![LogKey::from_key(
            rekor.url.as_deref().unwrap_or("rekor.pubkey"),
            k.clone(),
        )]),
        None => std::borrow::Cow::Borrowed(&ctx.trust.tlogs),
    }
}

/// The transparency-log verdict for one verified signature: no proof required and none given
/// (`Ok(None)`), a valid proof, or a refusal.
fn check_tlog(
    rekor: &RekorSettings,
    layer: &SignatureLayer,
    signature: &[u8],
    signer_der: &[&[u8]],
    ctx: VerifyContext<'_>,
) -> Result<Option<TlogProof>, TlogRefusal> {
    if rekor.ignore_tlog {
        return Ok(None);
    }
    match layer.descriptor.annotation(BUNDLE_ANNOTATION) {
        Some(bundle) => verify_bundle(
            bundle,
            &layer.payload,
            signature,
            signer_der,
            &rekor_logs(rekor, ctx),
        )
        .map(Some)
        .map_err(TlogRefusal::Invalid),
        None if rekor.written => Err(TlogRefusal::Missing),
        None => Ok(None),
    }
}

fn signature_bytes(layer: &SignatureLayer) -> Option<Vec<u8>> {
    STANDARD
        .decode(layer.descriptor.annotation(SIGNATURE_ANNOTATION)?.trim())
        .ok()
}

fn check_key(
    attestor: &Attestor,
    k: &KeyAttestor,
    signatures: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    // Only PEM keys reach here: the other sources carry an `Unsupported` reason.
    let crate::policy::KeySource::Pem(key) = &k.key else {
        return AttestorOutcome::Error(CannotEvaluate::NestedSet);
    };
    let verified = match verify_with_key(signatures, key, k.hash) {
        Verification::Verified(v) => v,
        Verification::Failed(f) => return AttestorOutcome::Failed(AttestorFailure::Key(f)),
    };
    let candidates = annotated(&verified, attestor);
    if candidates.is_empty() {
        return AttestorOutcome::Failed(AttestorFailure::MissingAnnotations {
            verified: verified.len(),
            wanted: wanted_annotations(attestor),
        });
    }
    let mut refusals = Vec::new();
    for v in candidates {
        let layer = &signatures.layers[v.layer_index()];
        let Some(sig) = signature_bytes(layer) else {
            continue;
        };
        match check_tlog(&k.rekor, layer, &sig, &[key.spki_der()], ctx) {
            Err(why) => refusals.push(why),
            Ok(_) => {
                return AttestorOutcome::Verified(Verified::new(v.signer().clone()));
            }
        }
    }
    AttestorOutcome::Failed(AttestorFailure::Tlog(refusals))
}

fn annotated<'a>(
    verified: &'a [VerifiedSignature],
    attestor: &Attestor,
) -> Vec<&'a VerifiedSignature> {
    let required: Vec<(String, String)> = attestor
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    with_annotations(verified, &required)
}

fn wanted_annotations(attestor: &Attestor) -> Vec<String> {
    attestor
        .annotations
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

fn check_certificate(
    attestor: &Attestor,
    c: &CertificateAttestor,
    signatures: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    let mut layers = Vec::new();
    for layer in &signatures.layers {
        match check_certificate_layer(attestor, c, layer, &signatures.image_digest, ctx) {
            Ok(subject) => {
                return AttestorOutcome::Verified(Verified::new(Signer::Certificate { subject }));
            }
            Err(why) => layers.push(why),
        }
    }
    AttestorOutcome::Failed(AttestorFailure::Certificate {
        location: signatures.location.clone(),
        layers,
    })
}

/// Checks one layer against a certificate attestor; the signing certificate's subject when it
/// verifies.
fn check_certificate_layer(
    attestor: &Attestor,
    c: &CertificateAttestor,
    layer: &SignatureLayer,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<String, CertificateRefusal> {
    if layer.descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(CertificateRefusal::NotSimpleSigning {
            media_type: layer.descriptor.media_type.clone(),
        });
    }
    if layer.payload.is_empty() {
        return Err(CertificateRefusal::PayloadUnavailable);
    }
    let sig = signature_bytes(layer).ok_or(CertificateRefusal::NoSignature)?;
    let layer_cert = match layer
        .descriptor
        .annotation(CERTIFICATE_ANNOTATION)
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => Some(
            crate::crypto::pem::parse_blocks(text)
                .ok()
                .and_then(|b| b.into_iter().next())
                .ok_or(CertificateRefusal::BadCertificateAnnotation)?
                .der,
        ),
        None => None,
    };
    let signing_cert: Vec<u8> = match (&c.cert, &layer_cert) {
        (Some(want), Some(got)) if want.der() != got.as_slice() => {
            return Err(CertificateRefusal::OtherCertificate);
        }
        (Some(want), _) => want.der().to_vec(),
        (None, Some(got)) => got.clone(),
        (None, None) => return Err(CertificateRefusal::NoCertificate),
    };
    let info = cert_info(&signing_cert).map_err(CertificateRefusal::Chain)?;
    if !info
        .public_key
        .verify(SignatureHash::Sha256, &layer.payload, &sig)
        .unwrap_or(false)
    {
        return Err(CertificateRefusal::NotByCertificate {
            subject: info.subject,
        });
    }
    let parsed = payload::parse(&layer.payload).map_err(CertificateRefusal::MalformedPayload)?;
    if parsed.manifest_digest != image_digest.to_string() {
        return Err(CertificateRefusal::OtherDigest {
            signed: parsed.manifest_digest,
            image: image_digest.clone(),
        });
    }
    if !with_annotations_ok(&parsed.optional, attestor) {
        return Err(CertificateRefusal::MissingAnnotations {
            wanted: wanted_annotations(attestor),
        });
    }
    let signing_time = match check_tlog(&c.rekor, layer, &sig, &[&signing_cert], ctx) {
        Err(why) => return Err(CertificateRefusal::Tlog(why)),
        Ok(Some(proof)) => proof.integrated_time,
        Ok(None) => ctx.now,
    };
    if !c.chain.is_empty() {
        let roots: Vec<Vec<u8>> = c.chain.iter().map(|x| x.der().to_vec()).collect();
        let hints: Vec<Vec<u8>> = layer
            .descriptor
            .annotation(CHAIN_ANNOTATION)
            .and_then(|t| crate::crypto::pem::parse_blocks(t).ok())
            .map(|b| b.into_iter().map(|b| b.der).collect())
            .unwrap_or_default();
        verify_code_signing_chain(&signing_cert, &hints, &roots, signing_time)
            .map_err(CertificateRefusal::Chain)?;
    } else if signing_time < info.not_before || signing_time > info.not_after {
        return Err(CertificateRefusal::NotValidAtSigningTime {
            subject: info.subject,
            at: signing_time,
            not_before: info.not_before,
            not_after: info.not_after,
        });
    }
    Ok(info.subject)
}

fn with_annotations_ok(
    optional: &serde_json::Map<String, serde_json::Value>,
    attestor: &Attestor,
) -> bool {
    attestor.annotations.iter().all(
        |(k, want)| matches!(optional.get(k), Some(serde_json::Value::String(got)) if got == want),
    )
}
