//! Does one attestor vouch for an attestation of one image digest?
//!
//! [`check_attestation`] is cosign's `VerifyImageAttestations` and Kyverno's
//! `verifyAttestation` made offline: every layer of the `.att` image is a DSSE envelope whose
//! signature over the PAE must verify with the attestor's key (or certificate), whose in-toto
//! statement must name the image digest among its subjects (`no matching subject digest found`)
//! and whose Rekor bundle, when the attestor asks for one, must hold. Of the statements that
//! verify, those of the attestation's predicate type must all satisfy its `conditions`,
//! evaluated with the predicate's members at the top of the context (and the first statement's
//! predicate under the attestation's `name`, as Kyverno adds it).
//!
//! Like [`check_attestor`](super::check_attestor), the outcome depends only on the attestor, the
//! attestation, the layers and the time: it is kept under an [`OutcomeKey`](super::OutcomeKey)
//! whose fingerprint covers both ([`Attestation::outcome_fingerprint`]).

use std::fmt;

use serde_json::{Map, Value};

use crate::cosign::dsse::{
    DSSE_MEDIA_TYPE, Envelope, EnvelopeError, IN_TOTO_PAYLOAD_TYPE, Statement, StatementError,
};
use crate::cosign::{
    BUNDLE_ANNOTATION, SignatureLayer, SignatureSet, Signer, verify_attestation_bundle,
};
use crate::crypto::chain::{CertInfo, cert_info, verify_code_signing_chain};
use crate::crypto::key::{KeyError, PublicKey, SignatureHash};
use crate::image::digest::Digest;
use crate::policy::{
    Attestation, Attestor, AttestorKind, CertificateAttestor, KeySource, KeylessAttestor,
    RekorSettings,
};
use crate::sigstore::fulcio::CertIdentity;
use crate::sigstore::rekor::TlogProof;
use crate::timestamp::UnixTime;

use super::attestor::{
    VerifyContext, keyless_certificate, keyless_who, layer_certificate, layer_chain, rekor_logs,
};
use super::outcome::{
    AttestorFailure, AttestorOutcome, CannotEvaluate, CertificateRefusal, Reason, TlogRefusal,
    Verified,
};

/// Why an attestor does not vouch for an attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationFailure {
    /// The `.att` image does not exist or has no layers.
    NoAttestations {
        /// Where sealgate looked.
        location: String,
    },
    /// Attestations exist and none verifies with the attestor.
    NoneVerified {
        /// Where they were found.
        location: String,
        /// Why each failed, in layer order.
        layers: Vec<AttestationRefusal>,
    },
    /// The attestation has a `name` and no verified statement has an object predicate.
    NoPredicate,
    /// Statements verify, none of the predicate type.
    PredicateTypeNotFound {
        /// The type wanted.
        predicate_type: String,
        /// The types of the statements that verified.
        found: Vec<String>,
    },
    /// A statement of the type does not satisfy the conditions.
    Conditions {
        /// The predicate type.
        predicate_type: String,
        /// The failed conditions' messages, as Kyverno joins them.
        message: String,
    },
    /// The conditions could not be evaluated for a statement.
    ConditionsError {
        /// Why.
        reason: String,
    },
}

impl AttestationFailure {
    /// The words, naming `image` as Kyverno does (`attestation checks failed for IMAGE and
    /// predicate TYPE: …`).
    pub fn describe(&self, image: &str) -> String {
        match self {
            AttestationFailure::NoAttestations { location } => {
                format!("no matching attestations: no attestations found at {location}")
            }
            AttestationFailure::NoneVerified { location, layers } => {
                let parts: Vec<String> = layers
                    .iter()
                    .enumerate()
                    .map(|(i, why)| format!("attestation {}: {why}", i + 1))
                    .collect();
                format!(
                    "no matching attestations: none of {} attestation(s) at {location} verifies: {}",
                    layers.len(),
                    parts.join("; ")
                )
            }
            AttestationFailure::NoPredicate => "predicate not found in any statement".to_string(),
            // Kyverno writes "attestions"; sealgate spells it.
            AttestationFailure::PredicateTypeNotFound {
                predicate_type,
                found,
            } => format!(
                "attestations not found for predicate type {predicate_type} (found: {})",
                found.join(", ")
            ),
            AttestationFailure::Conditions {
                predicate_type,
                message,
            } => format!(
                "attestation checks failed for {image} and predicate {predicate_type}: {message}"
            ),
            AttestationFailure::ConditionsError { reason } => {
                format!("failed to check attestations: {reason}")
            }
        }
    }
}

impl AttestationFailure {
    /// The kind, for the audit trail and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            AttestationFailure::NoAttestations { .. } => Reason::NoAttestations,
            AttestationFailure::NoneVerified { layers, .. } => {
                let any = |f: fn(&AttestationRefusal) -> bool| layers.iter().any(f);
                if any(|l| matches!(l, AttestationRefusal::NoMatchingSubject { .. })) {
                    Reason::SignedOtherDigest
                } else if any(|l| {
                    matches!(
                        l,
                        AttestationRefusal::Certificate(
                            CertificateRefusal::Chain(_)
                                | CertificateRefusal::NotValidAtSigningTime { .. }
                        )
                    )
                }) {
                    Reason::Certificate
                } else if any(|l| matches!(l, AttestationRefusal::Tlog(_))) {
                    Reason::TransparencyLog
                } else if any(|l| matches!(l, AttestationRefusal::MissingAnnotations { .. })) {
                    Reason::MissingAnnotations
                } else {
                    Reason::SignatureMismatch
                }
            }
            AttestationFailure::PredicateTypeNotFound { .. } => Reason::PredicateTypeNotFound,
            AttestationFailure::NoPredicate
            | AttestationFailure::Conditions { .. }
            | AttestationFailure::ConditionsError { .. } => Reason::AttestationConditions,
        }
    }
}

impl fmt::Display for AttestationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe("the image"))
    }
}

/// Why one `.att` layer does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestationRefusal {
    /// Not a DSSE envelope layer.
    NotDsse {
        /// Its media type.
        media_type: String,
    },
    /// The envelope blob could not be fetched (missing, or over the size limit).
    PayloadUnavailable,
    /// Not a DSSE envelope.
    Malformed(EnvelopeError),
    /// The envelope does not hold an in-toto statement.
    PayloadType(String),
    /// No signature of the envelope verifies with the key.
    NotByKey,
    /// The key cannot check the signature.
    Unusable(String),
    /// The certificate checks failed (which certificate, its chain, its validity).
    Certificate(CertificateRefusal),
    /// The signed payload is not an in-toto statement.
    Statement(StatementError),
    /// The statement is about other images.
    NoMatchingSubject {
        /// Its subjects.
        subjects: Vec<String>,
    },
    /// The statement's subject lacks the annotations the attestor requires.
    MissingAnnotations {
        /// `key=value`.
        wanted: Vec<String>,
    },
    /// The transparency log does not vouch for it.
    Tlog(TlogRefusal),
    /// A Sigstore bundle's RFC 3161 timestamps refuse it.
    Timestamp(crate::sigstore::bundle::TimestampRefusal),
}

impl fmt::Display for AttestationRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttestationRefusal::NotDsse { media_type } => {
                write!(f, "not a DSSE envelope layer (media type {media_type})")
            }
            AttestationRefusal::PayloadUnavailable => f.write_str(
                "its envelope blob could not be fetched (missing from the registry, or over the 1 MiB limit)",
            ),
            AttestationRefusal::Malformed(e) => e.fmt(f),
            AttestationRefusal::PayloadType(t) => write!(
                f,
                "invalid payloadType {t} on envelope. Expected {IN_TOTO_PAYLOAD_TYPE}"
            ),
            AttestationRefusal::NotByKey => f.write_str("does not verify with the key"),
            AttestationRefusal::Unusable(e) => write!(f, "cannot be checked: {e}"),
            AttestationRefusal::Certificate(c) => c.fmt(f),
            AttestationRefusal::Statement(e) => e.fmt(f),
            AttestationRefusal::NoMatchingSubject { subjects } => write!(
                f,
                "no matching subject digest found (subjects: {})",
                subjects.join(", ")
            ),
            AttestationRefusal::MissingAnnotations { wanted } => {
                write!(f, "missing or incorrect annotation {}", wanted.join(", "))
            }
            AttestationRefusal::Tlog(t) => t.fmt(f),
            AttestationRefusal::Timestamp(t) => t.fmt(f),
        }
    }
}

/// An attestation layer that verified with an attestor: its statement and who signed it.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAttestation {
    /// Index of the layer in the `.att` image.
    pub layer_index: usize,
    /// The signed statement.
    pub statement: Statement,
    /// Who signed.
    pub signer: Signer,
}

/// The layers of `attestations` that verify with `attestor` (a key or certificate attestor),
/// in layer order: what cosign's `VerifyImageAttestations` returns. No layer at all, or none
/// that verifies, is the failure.
pub fn verify_attestations(
    attestor: &Attestor,
    attestations: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> Result<Vec<VerifiedAttestation>, AttestationFailure> {
    if attestations.layers.is_empty() {
        return Err(AttestationFailure::NoAttestations {
            location: attestations.location.clone(),
        });
    }
    let mut verified = Vec::new();
    let mut refusals = Vec::new();
    for (layer_index, layer) in attestations.layers.iter().enumerate() {
        match check_layer(attestor, layer, &attestations.image_digest, ctx) {
            Ok(Some((statement, signer))) => verified.push(VerifiedAttestation {
                layer_index,
                statement,
                signer,
            }),
            Ok(None) => refusals.push(AttestationRefusal::Unusable(
                "only keys and certificates verify attestations here".into(),
            )),
            Err(why) => refusals.push(why),
        }
    }
    if verified.is_empty() {
        return Err(AttestationFailure::NoneVerified {
            location: attestations.location.clone(),
            layers: refusals,
        });
    }
    Ok(verified)
}

/// Checks `attestor` for `attestation` against the `.att` layers found for an image.
pub fn check_attestation(
    attestor: &Attestor,
    attestation: &Attestation,
    attestations: &SignatureSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    if let Some(why) = attestor.unsupported() {
        return AttestorOutcome::Error(CannotEvaluate::Unsupported(why.clone()));
    }
    if matches!(attestor.kind, AttestorKind::Nested(_)) {
        return AttestorOutcome::Error(CannotEvaluate::NestedSet);
    }
    let failed = |f: AttestationFailure| AttestorOutcome::Failed(AttestorFailure::Attestation(f));
    let verified: Vec<(Statement, Signer)> = match verify_attestations(attestor, attestations, ctx)
    {
        Ok(v) => v.into_iter().map(|v| (v.statement, v.signer)).collect(),
        Err(f) => return failed(f),
    };
    judge_statements(attestation, verified)
}

/// What Kyverno decides from the statements that verified with an attestor (from `.att` layers
/// or Sigstore bundles): the first object predicate under the attestation's `name`, the
/// statements of its predicate type (none is the failure), each meeting its `conditions`.
pub(super) fn judge_statements(
    attestation: &Attestation,
    verified: Vec<(Statement, Signer)>,
) -> AttestorOutcome {
    let failed = |f: AttestationFailure| AttestorOutcome::Failed(AttestorFailure::Attestation(f));
    // Kyverno's order: the rule's context (when the conditions read it), then the named
    // predicate, then each statement's predicate members at the top.
    let mut base = match attestation.context.as_deref() {
        Some(Value::Object(context)) => context.clone(),
        _ => Map::new(),
    };
    let mut named = None;
    if let Some(name) = &attestation.name {
        // Kyverno's getRawResp: the first statement whose predicate is an object.
        match verified.iter().find_map(|(s, _)| s.predicate.as_object()) {
            Some(predicate) => {
                let predicate = Value::Object(predicate.clone());
                if attestation.keeps_predicate {
                    named = Some(predicate.clone());
                }
                base.insert(name.clone(), predicate);
            }
            None => return failed(AttestationFailure::NoPredicate),
        }
    }
    let of_type: Vec<&(Statement, Signer)> = verified
        .iter()
        .filter(|(s, _)| s.predicate_type == attestation.predicate_type)
        .collect();
    let Some((_, signer)) = of_type.first() else {
        let mut found: Vec<String> = verified
            .iter()
            .map(|(s, _)| s.predicate_type.clone())
            .collect();
        found.dedup();
        return failed(AttestationFailure::PredicateTypeNotFound {
            predicate_type: attestation.predicate_type.clone(),
            found,
        });
    };
    if !attestation.conditions.is_empty() {
        for (statement, _) in &of_type {
            let Some(predicate) = statement.predicate.as_object() else {
                return failed(AttestationFailure::ConditionsError {
                    reason: format!(
                        "failed to extract predicate from statement: the predicate of {} is not an object",
                        statement.predicate_type
                    ),
                });
            };
            let mut context = base.clone();
            for (k, v) in predicate {
                context.insert(k.clone(), v.clone());
            }
            match attestation.conditions.evaluate(&Value::Object(context)) {
                Ok(outcome) if outcome.met => {}
                Ok(outcome) => {
                    return failed(AttestationFailure::Conditions {
                        predicate_type: attestation.predicate_type.clone(),
                        message: outcome.message.unwrap_or_default(),
                    });
                }
                Err(e) => {
                    return failed(AttestationFailure::ConditionsError {
                        reason: format!(
                            "failed to substitute variables in attestation conditions: {e}"
                        ),
                    });
                }
            }
        }
    }
    let proof = Verified::new(signer.clone());
    AttestorOutcome::Verified(match named {
        Some(predicate) => proof.with_predicate(predicate),
        None => proof,
    })
}

/// Who an attestation layer must be signed by, once its attestor kind is known.
enum Signing<'a> {
    /// A key, or a certificate's key.
    Known(Signer),
    /// A keyless certificate, whose checks end after the transparency log's.
    Keyless {
        attestor: &'a KeylessAttestor,
        info: Box<CertInfo>,
        identity: CertIdentity,
    },
}

/// Checks one layer: the statement and who signed it when it verifies; `Ok(None)` for an
/// attestor kind that never reaches a leaf check (a nested set).
pub(super) fn check_layer(
    attestor: &Attestor,
    layer: &SignatureLayer,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<Option<(Statement, Signer)>, AttestationRefusal> {
    let refuse = AttestationRefusal::Certificate;
    if layer.descriptor.media_type != DSSE_MEDIA_TYPE {
        return Err(AttestationRefusal::NotDsse {
            media_type: layer.descriptor.media_type.clone(),
        });
    }
    if layer.payload.is_empty() {
        return Err(AttestationRefusal::PayloadUnavailable);
    }
    let envelope = Envelope::parse(&layer.payload).map_err(AttestationRefusal::Malformed)?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(AttestationRefusal::PayloadType(envelope.payload_type));
    }
    // Who signs, the DER the transparency log must name, its settings, and whether a proof is
    // required without a `rekor` block (keyless: always, as for signatures).
    let (signing, signer_der, rekor, keyless) = match &attestor.kind {
        AttestorKind::Key(k) => {
            // Only PEM keys reach here: the other sources carry an `Unsupported` reason.
            let KeySource::Pem(key) = &k.key else {
                return Ok(None);
            };
            by_key(&envelope, key, k.hash)?;
            let signer = Signer::Key {
                fingerprint: key.fingerprint(),
            };
            (
                Signing::Known(signer),
                key.spki_der().to_vec(),
                &k.rekor,
                false,
            )
        }
        AttestorKind::Certificate(c) => {
            let cert = signing_certificate(c.cert.as_ref().map(|c| c.der()), layer)?;
            let info = cert_info(&cert).map_err(|e| refuse(CertificateRefusal::Chain(e)))?;
            if by_key(&envelope, &info.public_key, SignatureHash::Sha256).is_err() {
                return Err(refuse(CertificateRefusal::NotByCertificate {
                    subject: info.subject,
                }));
            }
            let signer = Signer::Certificate {
                subject: info.subject,
            };
            (Signing::Known(signer), cert, &c.rekor, false)
        }
        AttestorKind::Keyless(k) => {
            let leaf = layer_certificate(layer)
                .map_err(refuse)?
                .ok_or(refuse(CertificateRefusal::NoKeylessCertificate))?;
            let info = cert_info(&leaf).map_err(|e| refuse(CertificateRefusal::Chain(e)))?;
            let identity =
                CertIdentity::read(&leaf).map_err(|e| refuse(CertificateRefusal::Chain(e)))?;
            if by_key(&envelope, &info.public_key, SignatureHash::Sha256).is_err() {
                return Err(refuse(CertificateRefusal::NotByCertificate {
                    subject: keyless_who(&info, &identity),
                }));
            }
            let signing = Signing::Keyless {
                attestor: k,
                info: Box::new(info),
                identity,
            };
            (signing, leaf, &k.rekor, true)
        }
        // Nested sets are walked by the engine.
        AttestorKind::Nested(_) => return Ok(None),
    };
    let statement = Statement::parse(&envelope.payload).map_err(AttestationRefusal::Statement)?;
    let Some(subject) = statement.subject_for(image_digest) else {
        return Err(AttestationRefusal::NoMatchingSubject {
            subjects: statement.subjects.iter().map(|s| s.to_string()).collect(),
        });
    };
    let annotations_ok = attestor.annotations.iter().all(
        |(k, want)| matches!(subject.annotations.get(k), Some(Value::String(got)) if got == want),
    );
    if !annotations_ok {
        return Err(AttestationRefusal::MissingAnnotations {
            wanted: attestor
                .annotations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        });
    }
    let proof = check_tlog(rekor, keyless, layer, &envelope, &signer_der, ctx)?;
    let signing_time = proof.map_or(ctx.now, |p| p.integrated_time);
    let signer = match signing {
        Signing::Keyless {
            attestor: k,
            info,
            identity,
        } => keyless_certificate(
            k,
            &signer_der,
            &info,
            identity,
            &layer_chain(layer),
            signing_time,
            ctx,
        )
        .map_err(refuse)?,
        Signing::Known(signer) => {
            if let (AttestorKind::Certificate(c), Signer::Certificate { subject }) =
                (&attestor.kind, &signer)
            {
                certificate_valid(c, &signer_der, subject, layer, signing_time)?;
            }
            signer
        }
    };
    Ok(Some((statement, signer)))
}

/// A certificate attestor's certificate at the signing time: its chain to `certChain` when
/// the policy gives one, else its own validity.
fn certificate_valid(
    c: &CertificateAttestor,
    cert: &[u8],
    subject: &str,
    layer: &SignatureLayer,
    signing_time: UnixTime,
) -> Result<(), AttestationRefusal> {
    let refuse = AttestationRefusal::Certificate;
    let info = cert_info(cert).map_err(|e| refuse(CertificateRefusal::Chain(e)))?;
    if !c.chain.is_empty() {
        let roots: Vec<Vec<u8>> = c.chain.iter().map(|x| x.der().to_vec()).collect();
        verify_code_signing_chain(cert, &layer_chain(layer), &roots, signing_time)
            .map_err(|e| refuse(CertificateRefusal::Chain(e)))?;
    } else if signing_time < info.not_before || signing_time > info.not_after {
        return Err(refuse(CertificateRefusal::NotValidAtSigningTime {
            subject: subject.to_string(),
            at: signing_time,
            not_before: info.not_before,
            not_after: info.not_after,
        }));
    }
    Ok(())
}

fn by_key(
    envelope: &Envelope,
    key: &PublicKey,
    hash: SignatureHash,
) -> Result<(), AttestationRefusal> {
    match envelope.verify(key, hash) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(AttestationRefusal::NotByKey),
        Err(KeyError::UnsupportedHash { algorithm, hash }) => Err(AttestationRefusal::Unusable(
            format!("{algorithm} keys cannot verify {hash} signatures"),
        )),
        Err(e) => Err(AttestationRefusal::Unusable(e.to_string())),
    }
}

/// The certificate that signed: the policy's `cert` (the layer's, when it has one, must be the
/// same), else the layer's certificate annotation.
fn signing_certificate(
    policy: Option<&[u8]>,
    layer: &SignatureLayer,
) -> Result<Vec<u8>, AttestationRefusal> {
    let refuse = AttestationRefusal::Certificate;
    match (policy, layer_certificate(layer).map_err(refuse)?) {
        (Some(want), Some(got)) if want != got.as_slice() => {
            Err(refuse(CertificateRefusal::OtherCertificate))
        }
        (Some(want), _) => Ok(want.to_vec()),
        (None, Some(got)) => Ok(got),
        (None, None) => Err(refuse(CertificateRefusal::NoCertificate)),
    }
}

/// The transparency-log verdict, as for signatures: no proof required and none given
/// (`Ok(None)`), a valid proof, or a refusal. A proof is required with a `rekor` block, and
/// always for keyless (`keyless`) attestors, unless `ignoreTlog`.
fn check_tlog(
    rekor: &RekorSettings,
    keyless: bool,
    layer: &SignatureLayer,
    envelope: &Envelope,
    signer_der: &[u8],
    ctx: VerifyContext<'_>,
) -> Result<Option<TlogProof>, AttestationRefusal> {
    if rekor.ignore_tlog {
        return Ok(None);
    }
    match layer.descriptor.annotation(BUNDLE_ANNOTATION) {
        Some(bundle) => verify_attestation_bundle(
            bundle,
            &layer.payload,
            envelope,
            &[signer_der],
            &rekor_logs(rekor, ctx),
        )
        .map(Some)
        .map_err(|e| AttestationRefusal::Tlog(TlogRefusal::Invalid(e))),
        None if rekor.written || keyless => Err(AttestationRefusal::Tlog(TlogRefusal::Missing)),
        None => Ok(None),
    }
}

#[cfg(test)]
#[path = "attestation_tests.rs"]
mod tests;
