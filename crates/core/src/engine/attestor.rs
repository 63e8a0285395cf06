//! Step 2 of a decision: does one attestor entry have a valid signature for one image digest?
//!
//! [`check_attestor`] is pure but does the cryptography: signatures over payloads, Rekor bundles,
//! certificate chains at signing time. Its result, an [`AttestorOutcome`], depends only on the
//! attestor's content, the signature set and the time, so callers may cache it by
//! the attestor's fingerprint ([`crate::policy::Attestor::fingerprint`]), repository and digest.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, SignatureSet, Verification, VerifiedSignature,
    payload, verify_with_key, with_annotations,
};
use crate::crypto::chain::{cert_info, verify_code_signing_chain};
use crate::crypto::key::SignatureHash;
use crate::image::digest::Digest;
use crate::policy::{
    Attestor, AttestorKind, CertificateAttestor, KeyAttestor, KeySource, RekorSettings,
};
use crate::sigstore::rekor::{TlogProof, verify_bundle};
use crate::sigstore::trust::{LogKey, TrustedRoot};
use crate::timestamp::format_rfc3339;

/// What one attestor concluded about one image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestorOutcome {
    /// A signature verified.
    Verified {
        /// Who signed: `key sha256:…` or `certificate CN=…`.
        signer: String,
    },
    /// No signature satisfies the attestor; why.
    Failed(String),
    /// The attestor could not be evaluated (fetch failure, unsupported feature); why.
    Error(String),
}

/// What verification may assume: the trust roots and the current time.
#[derive(Debug, Clone, Copy)]
pub struct VerifyContext<'a> {
    /// Trusted Rekor, Fulcio and CT keys (for attestors that name no key of their own).
    pub trust: &'a TrustedRoot,
    /// Unix seconds now: the signing time when no transparency log proves an earlier one.
    pub now: i64,
}

/// Checks `attestor` against the signatures found for an image.
pub fn check_attestor(
    attestor: &Attestor,
    signatures: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    match &attestor.kind {
        AttestorKind::Key(k) => check_key(attestor, k, signatures, ctx),
        AttestorKind::Certificate(c) => check_certificate(attestor, c, signatures, ctx),
        AttestorKind::Keyless(_) => AttestorOutcome::Error(
            "keyless attestors are not supported yet; use a keys or certificates attestor".into(),
        ),
        AttestorKind::Nested(_) => {
            AttestorOutcome::Error("nested attestor sets are evaluated by the engine".into())
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

/// The transparency-log verdict for one verified signature.
enum Tlog {
    /// Not required and absent.
    NotChecked,
    /// A valid bundle.
    Proven(TlogProof),
    /// Required but missing, or present but invalid.
    Refused(String),
}

fn check_tlog(
    rekor: &RekorSettings,
    layer: &SignatureLayer,
    signature: &[u8],
    signer_der: &[&[u8]],
    ctx: VerifyContext<'_>,
) -> Tlog {
    if rekor.ignore_tlog {
        return Tlog::NotChecked;
    }
    match layer.descriptor.annotation(BUNDLE_ANNOTATION) {
        Some(bundle) => match verify_bundle(bundle, &layer.payload, signature, signer_der, &rekor_logs(rekor, ctx)) {
            Ok(proof) => Tlog::Proven(proof),
            Err(e) => Tlog::Refused(e.to_string()),
        },
        None if rekor.written => Tlog::Refused(
            "the transparency-log proof is missing: the signature carries no Rekor bundle (sign with a tool that uploads to Rekor, or set rekor.ignoreTlog: true)".into(),
        ),
        None => Tlog::NotChecked,
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
    let key = match &k.key {
        KeySource::Pem(key) => key,
        KeySource::Secret { namespace, name } => {
            return AttestorOutcome::Error(format!(
                "keys from Secrets (k8s://{namespace}/{name}) are not supported yet; paste the public key into publicKeys"
            ));
        }
        KeySource::Kms(uri) => {
            return AttestorOutcome::Error(format!(
                "KMS keys ({uri}) are not supported yet; paste the public key into publicKeys"
            ));
        }
        KeySource::Reference(r) => {
            return AttestorOutcome::Error(format!(
                "key reference '{r}' is not supported; paste the PEM public key into publicKeys"
            ));
        }
    };
    let verified = match verify_with_key(signatures, key, k.hash) {
        Verification::Verified(v) => v,
        Verification::Failed(f) => return AttestorOutcome::Failed(f.to_string()),
    };
    let candidates = annotated(&verified, attestor);
    if candidates.is_empty() {
        return AttestorOutcome::Failed(missing_annotations(verified.len(), attestor));
    }
    let mut refusals = Vec::new();
    for v in candidates {
        let layer = &signatures.layers[v.layer_index()];
        let Some(sig) = signature_bytes(layer) else {
            continue;
        };
        match check_tlog(&k.rekor, layer, &sig, &[key.spki_der()], ctx) {
            Tlog::Refused(why) => refusals.push(why),
            Tlog::NotChecked | Tlog::Proven(_) => {
                return AttestorOutcome::Verified {
                    signer: format!("key {}", key.fingerprint()),
                };
            }
        }
    }
    AttestorOutcome::Failed(format!(
        "a signature verifies with the key, but {}",
        refusals.join("; ")
    ))
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

fn missing_annotations(n: usize, attestor: &Attestor) -> String {
    let wanted: Vec<String> = attestor
        .annotations
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{n} signature(s) verify, but none carries the required annotations {}",
        wanted.join(", ")
    )
}

fn check_certificate(
    attestor: &Attestor,
    c: &CertificateAttestor,
    signatures: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    if signatures.layers.is_empty() {
        return AttestorOutcome::Failed(format!("no signatures found at {}", signatures.location));
    }
    let mut reasons = Vec::new();
    for (i, layer) in signatures.layers.iter().enumerate() {
        match check_certificate_layer(attestor, c, layer, &signatures.image_digest, ctx) {
            Ok(signer) => return AttestorOutcome::Verified { signer },
            Err(why) => reasons.push(format!("signature {}: {why}", i + 1)),
        }
    }
    let n = signatures.layers.len();
    AttestorOutcome::Failed(format!(
        "none of {n} signature(s) at {} verifies with the certificate: {}",
        signatures.location,
        reasons.join("; ")
    ))
}

fn check_certificate_layer(
    attestor: &Attestor,
    c: &CertificateAttestor,
    layer: &SignatureLayer,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<String, String> {
    if layer.descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(format!(
            "not a simple-signing layer ({})",
            layer.descriptor.media_type
        ));
    }
    if layer.payload.is_empty() {
        return Err(crate::cosign::LayerVerdict::PayloadUnavailable.to_string());
    }
    let sig = signature_bytes(layer).ok_or("no or malformed signature annotation")?;
    let layer_cert = match layer
        .descriptor
        .annotation(CERTIFICATE_ANNOTATION)
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => Some(
            crate::crypto::pem::parse_blocks(text)
                .ok()
                .and_then(|b| b.into_iter().next())
                .ok_or("its certificate annotation is not a PEM certificate")?
                .der,
        ),
        None => None,
    };
    let signing_cert: Vec<u8> = match (&c.cert, &layer_cert) {
        (Some(want), Some(got)) if want.der() != got.as_slice() => {
            return Err("it carries another certificate than the policy's cert".into());
        }
        (Some(want), _) => want.der().to_vec(),
        (None, Some(got)) => got.clone(),
        (None, None) => return Err("it carries no certificate to check against certChain".into()),
    };
    let info = cert_info(&signing_cert).map_err(|e| e.to_string())?;
    if !info
        .public_key
        .verify(SignatureHash::Sha256, &layer.payload, &sig)
        .unwrap_or(false)
    {
        return Err(format!(
            "does not verify with the certificate's key ({})",
            info.subject
        ));
    }
    let parsed = payload::parse(&layer.payload).map_err(|e| e.to_string())?;
    if parsed.manifest_digest != image_digest.to_string() {
        return Err(format!(
            "signed digest {}, not this image's {image_digest}",
            parsed.manifest_digest
        ));
    }
    if !with_annotations_ok(&parsed.optional, attestor) {
        return Err(missing_annotations(1, attestor));
    }
    let signing_time = match check_tlog(&c.rekor, layer, &sig, &[&signing_cert], ctx) {
        Tlog::Refused(why) => return Err(why),
        Tlog::Proven(proof) => proof.integrated_time,
        Tlog::NotChecked => ctx.now,
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
            .map_err(|e| e.to_string())?;
    } else if signing_time < info.not_before || signing_time > info.not_after {
        return Err(format!(
            "the certificate '{}' was not valid at the signing time {} (valid {} to {})",
            info.subject,
            format_rfc3339(signing_time),
            format_rfc3339(info.not_before),
            format_rfc3339(info.not_after)
        ));
    }
    Ok(format!("certificate {}", info.subject))
}

fn with_annotations_ok(
    optional: &serde_json::Map<String, serde_json::Value>,
    attestor: &Attestor,
) -> bool {
    attestor.annotations.iter().all(
        |(k, want)| matches!(optional.get(k), Some(serde_json::Value::String(got)) if got == want),
    )
}
