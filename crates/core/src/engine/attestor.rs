//! Does one attestor entry have a valid signature for one image digest?
//!
//! [`check_attestor`] is pure but does the cryptography: signatures over payloads, Rekor bundles,
//! certificate chains at signing time, and for keyless attestors the Fulcio chain, the embedded
//! SCT and the certificate's identity (as cosign's `CheckOpts` and Kyverno's `matchSignatures`
//! check them, offline). Its result, an [`AttestorOutcome`], depends only on the
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
use crate::crypto::chain::{
    CertInfo, ChainError, VerifiedChain, cert_info, verify_code_signing_chain,
};
use crate::crypto::key::SignatureHash;
use crate::image::digest::Digest;
use crate::image::wildcard;
use crate::policy::{
    Attestor, AttestorKind, CertificateAttestor, KeyAttestor, KeylessAttestor, RekorSettings,
};
use crate::sigstore::fulcio::{CertIdentity, extension_oid};
use crate::sigstore::rekor::{TlogProof, verify_bundle};
use crate::sigstore::sct::verify_embedded_sct;
use crate::sigstore::trust::{LogKey, TrustedRoot};
use crate::timestamp::UnixTime;

use super::outcome::{
    AttestorFailure, AttestorOutcome, CannotEvaluate, CertificateRefusal, IdentityMismatch,
    IdentityMismatchKind, KeylessRoots, TlogRefusal, UntrustedKeyless, Verified,
};

#[cfg(test)]
#[path = "keyless_tests.rs"]
mod keyless_tests;

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
        AttestorKind::Keyless(k) => check_keyless(attestor, k, signatures, ctx),
        // Nested sets are walked by the engine and never reach a leaf check.
        AttestorKind::Nested(_) => AttestorOutcome::Error(CannotEvaluate::NestedSet),
    }
}

pub(super) fn rekor_logs<'a>(
    rekor: &RekorSettings,
    ctx: VerifyContext<'a>,
) -> std::borrow::Cow<'a, [LogKey]> {
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

/// The signature of a simple-signing layer whose payload is there.
fn simple_signing_signature(layer: &SignatureLayer) -> Result<Vec<u8>, CertificateRefusal> {
    if layer.descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(CertificateRefusal::NotSimpleSigning {
            media_type: layer.descriptor.media_type.clone(),
        });
    }
    if layer.payload.is_empty() {
        return Err(CertificateRefusal::PayloadUnavailable);
    }
    signature_bytes(layer).ok_or(CertificateRefusal::NoSignature)
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
    let sig = simple_signing_signature(layer)?;
    let layer_cert = layer_certificate(layer)?;
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
        verify_code_signing_chain(&signing_cert, &layer_chain(layer), &roots, signing_time)
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

/// The layer's certificate annotation as DER: `None` without one, an error when it is not PEM.
pub(super) fn layer_certificate(
    layer: &SignatureLayer,
) -> Result<Option<Vec<u8>>, CertificateRefusal> {
    match layer
        .descriptor
        .annotation(CERTIFICATE_ANNOTATION)
        .filter(|t| !t.trim().is_empty())
    {
        Some(text) => Ok(Some(
            crate::crypto::pem::parse_blocks(text)
                .ok()
                .and_then(|b| b.into_iter().next())
                .ok_or(CertificateRefusal::BadCertificateAnnotation)?
                .der,
        )),
        None => Ok(None),
    }
}

/// The certificates of the layer's chain annotation (path hints), in order.
pub(super) fn layer_chain(layer: &SignatureLayer) -> Vec<Vec<u8>> {
    layer
        .descriptor
        .annotation(CHAIN_ANNOTATION)
        .and_then(|t| crate::crypto::pem::parse_blocks(t).ok())
        .map(|b| b.into_iter().map(|b| b.der).collect())
        .unwrap_or_default()
}

fn check_keyless(
    attestor: &Attestor,
    k: &KeylessAttestor,
    signatures: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    let mut layers = Vec::new();
    for layer in &signatures.layers {
        match check_keyless_layer(attestor, k, layer, &signatures.image_digest, ctx) {
            Ok(signer) => return AttestorOutcome::Verified(Verified::new(signer)),
            Err(why) => layers.push(why),
        }
    }
    AttestorOutcome::Failed(AttestorFailure::Keyless {
        location: signatures.location.clone(),
        layers,
    })
}

/// Checks one layer as a keyless signature, in cosign's order: the signature over the payload by
/// the certificate's key, the payload's digest and annotations, the Rekor bundle (required unless
/// `ignoreTlog`; its integrated time is the signing time), the certificate's validity then, its
/// chain to the Fulcio CAs valid then (or the policy's `roots`), its embedded SCT, and last, as
/// Kyverno does after cosign, the identity.
fn check_keyless_layer(
    attestor: &Attestor,
    k: &KeylessAttestor,
    layer: &SignatureLayer,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<Signer, CertificateRefusal> {
    let sig = simple_signing_signature(layer)?;
    let leaf = layer_certificate(layer)?.ok_or(CertificateRefusal::NoKeylessCertificate)?;
    let info = cert_info(&leaf).map_err(CertificateRefusal::Chain)?;
    let identity = CertIdentity::read(&leaf).map_err(CertificateRefusal::Chain)?;
    let who = keyless_who(&info, &identity);
    if !info
        .public_key
        .verify(SignatureHash::Sha256, &layer.payload, &sig)
        .unwrap_or(false)
    {
        return Err(CertificateRefusal::NotByCertificate { subject: who });
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
    let signing_time = if k.rekor.ignore_tlog {
        ctx.now
    } else {
        // Keyless needs the log: without it nothing says the short-lived certificate was valid
        // when the signature was made (and sealgate never looks entries up online).
        let bundle = layer
            .descriptor
            .annotation(BUNDLE_ANNOTATION)
            .ok_or(CertificateRefusal::Tlog(TlogRefusal::Missing))?;
        verify_bundle(
            bundle,
            &layer.payload,
            &sig,
            &[&leaf],
            &rekor_logs(&k.rekor, ctx),
        )
        .map_err(|e| CertificateRefusal::Tlog(TlogRefusal::Invalid(e)))?
        .integrated_time
    };
    keyless_certificate(
        k,
        &leaf,
        &info,
        identity,
        &layer_chain(layer),
        signing_time,
        ctx,
    )
}

/// How messages name a keyless certificate: its SANs, else its subject DN.
pub(super) fn keyless_who(info: &CertInfo, identity: &CertIdentity) -> String {
    if identity.sans.is_empty() {
        info.subject.clone()
    } else {
        identity.sans.join(", ")
    }
}

/// The checks of a keyless certificate that come after its signature and transparency-log
/// proof, shared by signatures and attestations: its validity at `signing_time`, its chain to the
/// Fulcio CAs valid then (or the policy's `roots`; `hints` as path hints), its embedded SCT, and
/// last, as Kyverno does after cosign, the identity.
pub(super) fn keyless_certificate(
    k: &KeylessAttestor,
    leaf: &[u8],
    info: &CertInfo,
    identity: CertIdentity,
    hints: &[Vec<u8>],
    signing_time: UnixTime,
    ctx: VerifyContext<'_>,
) -> Result<Signer, CertificateRefusal> {
    let who = keyless_who(info, &identity);
    if signing_time < info.not_before || signing_time > info.not_after {
        return Err(CertificateRefusal::NotValidAtSigningTime {
            subject: who,
            at: signing_time,
            not_before: info.not_before,
            not_after: info.not_after,
        });
    }
    let chain = keyless_chain(k, leaf, hints, signing_time, ctx).map_err(|(roots, reason)| {
        CertificateRefusal::UntrustedKeyless(Box::new(UntrustedKeyless {
            identity: who.clone(),
            issuer: info.issuer.clone(),
            roots,
            at: signing_time,
            reason,
        }))
    })?;
    if !k.ctlog.ignore_sct {
        let own;
        let logs: &[LogKey] = match &k.ctlog.public_key {
            Some(key) => {
                own = [LogKey::from_key("ctlog.pubkey", key.clone())];
                &own
            }
            None => &ctx.trust.ctlogs,
        };
        verify_embedded_sct(leaf, &chain.issuer_spki, logs).map_err(CertificateRefusal::Sct)?;
    }
    match_identity(k, &identity).map_err(CertificateRefusal::Identity)?;
    Ok(Signer::Keyless {
        identity: who,
        issuer: identity.issuer,
    })
}

/// The leaf's chain at `at`: to the policy's `roots` when it has them (the layer's chain
/// annotation as path hints, as cosign uses it), else to a Fulcio CA of the trusted root whose
/// validity window holds `at`. On failure, which roots were tried and, when it was not simply an
/// unknown issuer, what the chain check said.
fn keyless_chain(
    k: &KeylessAttestor,
    leaf: &[u8],
    hints: &[Vec<u8>],
    at: UnixTime,
    ctx: VerifyContext<'_>,
) -> Result<VerifiedChain, (KeylessRoots, Option<ChainError>)> {
    let specific = |e: ChainError| match e {
        ChainError::UntrustedIssuer { .. } => None,
        other => Some(other),
    };
    if !k.roots.is_empty() {
        let roots: Vec<Vec<u8>> = k.roots.iter().map(|r| r.der().to_vec()).collect();
        return verify_code_signing_chain(leaf, hints, &roots, at)
            .map_err(|e| (KeylessRoots::Policy(roots.len()), specific(e)));
    }
    let cas = &ctx.trust.certificate_authorities;
    let mut valid = 0;
    let mut reason = None;
    for ca in cas {
        let in_window =
            ca.valid_from.is_none_or(|f| at >= f) && ca.valid_until.is_none_or(|u| at <= u);
        let Some((_, intermediates)) = ca.chain.split_last() else {
            continue;
        };
        if !in_window {
            continue;
        }
        valid += 1;
        let mut path: Vec<Vec<u8>> = intermediates.to_vec();
        path.extend(hints.iter().cloned());
        // The trusted root remembers the CA's intermediate→root signature; the leaf's signature,
        // validity and usage are checked every time.
        match ctx.trust.verify_ca_chain(ca, leaf, &path, at) {
            Ok(chain) => return Ok(chain),
            Err(e) => reason = specific(e).or(reason),
        }
    }
    Err((
        KeylessRoots::TrustedRoot {
            valid,
            total: cas.len(),
        },
        reason,
    ))
}

/// Kyverno's `matchCertificateData`: some SAN matches `subject` (wildcards) or `subjectRegExp`
/// (unanchored RE2); the issuer matches `issuer` and `issuerRegExp`; every `additionalExtensions`
/// value matches (wildcards). Unlike Kyverno, a certificate without SANs does not pass a subject
/// constraint.
fn match_identity(k: &KeylessAttestor, id: &CertIdentity) -> Result<(), Box<IdentityMismatch>> {
    let mismatch = |kind: IdentityMismatchKind| {
        Box::new(IdentityMismatch {
            sans: id.sans.clone(),
            issuer: id.issuer.clone(),
            wanted: wanted_identity(k),
            kind,
        })
    };
    let compiled = |regex: &Option<Result<regex::Regex, String>>,
                    pattern: &Option<String>,
                    field: &'static str|
     -> Result<Option<regex::Regex>, Box<IdentityMismatch>> {
        match regex {
            None => Ok(None),
            Some(Ok(re)) => Ok(Some(re.clone())),
            Some(Err(reason)) => Err(mismatch(IdentityMismatchKind::InvalidRegexp {
                field,
                pattern: pattern.clone().unwrap_or_default(),
                reason: reason.clone(),
            })),
        }
    };
    let subject_regex = compiled(&k.subject_regex, &k.subject_regexp, "subject")?;
    let issuer_regex = compiled(&k.issuer_regex, &k.issuer_regexp, "issuer")?;
    if k.subject.is_some() || subject_regex.is_some() {
        let by_wildcard = k
            .subject
            .as_deref()
            .is_some_and(|p| id.sans.iter().any(|s| wildcard::matches(p, s)));
        let by_regex = subject_regex
            .as_ref()
            .is_some_and(|re| id.sans.iter().any(|s| re.is_match(s)));
        if !(by_wildcard || by_regex) {
            return Err(mismatch(IdentityMismatchKind::Subject));
        }
    }
    let issuer = id.issuer.as_deref().unwrap_or("");
    if k.issuer
        .as_deref()
        .is_some_and(|p| !wildcard::matches(p, issuer))
        || issuer_regex.as_ref().is_some_and(|re| !re.is_match(issuer))
    {
        return Err(mismatch(IdentityMismatchKind::Issuer));
    }
    for (key, wanted) in &k.additional_extensions {
        let Some(oid) = extension_oid(key) else {
            return Err(mismatch(IdentityMismatchKind::UnknownExtension(
                key.clone(),
            )));
        };
        let found = id.extension(oid);
        if !wildcard::matches(wanted, found.unwrap_or("")) {
            return Err(mismatch(IdentityMismatchKind::Extension {
                key: key.clone(),
                oid,
                wanted: wanted.clone(),
                found: found.map(str::to_string),
            }));
        }
    }
    Ok(())
}

/// The identity constraints in words: `subject *@example.com, issuer https://…`.
fn wanted_identity(k: &KeylessAttestor) -> String {
    let pair = |name: &str, plain: &Option<String>, regexp: &Option<String>, joiner: &str| match (
        plain, regexp,
    ) {
        (Some(p), Some(r)) => Some(format!("{name} {p} {joiner} {name}RegExp {r}")),
        (Some(p), None) => Some(format!("{name} {p}")),
        (None, Some(r)) => Some(format!("{name}RegExp {r}")),
        (None, None) => None,
    };
    [
        pair("subject", &k.subject, &k.subject_regexp, "or"),
        pair("issuer", &k.issuer, &k.issuer_regexp, "and"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

fn with_annotations_ok(
    optional: &serde_json::Map<String, serde_json::Value>,
    attestor: &Attestor,
) -> bool {
    attestor.annotations.iter().all(
        |(k, want)| matches!(optional.get(k), Some(serde_json::Value::String(got)) if got == want),
    )
}
