//! Sigstore bundles (cosign v3 signatures and attestations, found through OCI referrers)
//! checked with one attestor.
//!
//! A DSSE bundle is checked as the `.att` layer it is equivalent to (the envelope as the blob,
//! the certificate and chain as annotations, the tlog entry's SET in cosign's legacy bundle
//! form), through the same attestation checks ([`super::attestation`]: the signature over the
//! PAE by the key, the certificate or the keyless certificate, the in-toto subject digest and
//! annotations, the SET and entry body, then for keyless the chain at the signing time, the SCT
//! and the identity). Before that, the entry's inclusion proof and checkpoint are checked against
//! the same log keys as the SET. Its RFC 3161 timestamps are then verified against the trusted
//! root's timestamp authorities and judged as sigstore-go does ([`judge_timestamps`]: one that
//! does not verify is dropped when the checked log entry gives a verified time, and is the
//! refusal otherwise; the signing certificate must be valid at every verified one). A signature is a verified bundle whose statement has cosign's
//! sign predicate ([`COSIGN_SIGN_PREDICATE`]), as sigstore-rs and security-profiles-operator
//! keep them (cosign itself takes any bundle).

use std::collections::BTreeMap;
use std::fmt;

use crate::cosign::dsse::{DSSE_MEDIA_TYPE, Statement};
use crate::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Descriptor, SignatureLayer, Signer,
};
use crate::crypto::chain::cert_info;
use crate::crypto::pem;
use crate::image::digest::Digest;
use crate::policy::{Attestation, Attestor, AttestorKind};
use crate::sigstore::bundle::{
    Bundle, COSIGN_SIGN_PREDICATE, Content, TimestampRefusal, judge_timestamps,
};
use crate::sigstore::bundle_set::{BundleSet, ReferrerBundle, Unreadable};

use super::attestation::{AttestationRefusal, check_layer, judge_statements};
use super::attestor::{VerifyContext, rekor_logs};
use super::outcome::{
    AttestorFailure, AttestorOutcome, CannotEvaluate, CertificateRefusal, Reason, TlogRefusal,
    Verified,
};

/// `bundle` as the `.att` layer cosign would have written for it: `None` for a message-signature
/// bundle, which has no envelope.
pub fn bundle_layer(bundle: &Bundle) -> Option<SignatureLayer> {
    let Content::Dsse { json, .. } = &bundle.content else {
        return None;
    };
    let mut annotations = BTreeMap::new();
    if let Some(leaf) = bundle.material.leaf() {
        annotations.insert(
            CERTIFICATE_ANNOTATION.to_string(),
            pem::encode("CERTIFICATE", leaf),
        );
        let chain: String = bundle
            .material
            .intermediates()
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect();
        annotations.insert(CHAIN_ANNOTATION.to_string(), chain);
    }
    if let Some(rekor) = bundle
        .tlog_entries
        .first()
        .and_then(|e| e.legacy_rekor_bundle())
    {
        annotations.insert(BUNDLE_ANNOTATION.to_string(), rekor);
    }
    let mut descriptor = Descriptor::of(DSSE_MEDIA_TYPE, json);
    descriptor.annotations = Some(annotations);
    Some(SignatureLayer {
        descriptor,
        payload: json.clone(),
    })
}

/// Checks one bundle with `attestor` for `image_digest`: its statement and who signed it.
pub fn check_bundle(
    attestor: &Attestor,
    bundle: &Bundle,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<(Statement, Signer), AttestationRefusal> {
    let Some(layer) = bundle_layer(bundle) else {
        return Err(AttestationRefusal::Unusable(
            "a message-signature bundle (cosign sign-blob) signs a blob, not an image statement"
                .into(),
        ));
    };
    let rekor = match &attestor.kind {
        AttestorKind::Key(k) => &k.rekor,
        AttestorKind::Certificate(c) => &c.rekor,
        AttestorKind::Keyless(k) => &k.rekor,
        AttestorKind::Nested(_) => {
            return Err(AttestationRefusal::Unusable(
                "a nested attestor set is not a signer".into(),
            ));
        }
    };
    if !rekor.ignore_tlog
        && let Some(entry) = bundle.tlog_entries.first()
    {
        entry
            .verify_inclusion(&rekor_logs(rekor, ctx))
            .map_err(|e| AttestationRefusal::Tlog(TlogRefusal::Inclusion(e)))?;
    }
    let Some(verified) = check_layer(attestor, &layer, image_digest, ctx)? else {
        return Err(AttestationRefusal::Unusable(
            "this attestor kind does not verify bundles".into(),
        ));
    };
    if !bundle.rfc3161_timestamps.is_empty() {
        let check = bundle.verify_timestamps(&ctx.trust.timestamp_authorities);
        // The layer check verified the entry's SET (or refused): a verified time.
        let tlog_time = !rekor.ignore_tlog && !bundle.tlog_entries.is_empty();
        let validity = bundle
            .material
            .leaf()
            .and_then(|leaf| cert_info(leaf).ok())
            .map(|info| (info.not_before, info.not_after));
        judge_timestamps(&check, tlog_time, validity).map_err(AttestationRefusal::Timestamp)?;
    }
    Ok(verified)
}

/// Checks `bundle` as an image signature: a verified bundle whose statement is cosign's sign
/// statement.
pub fn check_bundle_signature(
    attestor: &Attestor,
    bundle: &Bundle,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<Signer, AttestationRefusal> {
    let (statement, signer) = check_bundle(attestor, bundle, image_digest, ctx)?;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(AttestationRefusal::Unusable(format!(
            "the bundle is an attestation of {}, not a signature ({COSIGN_SIGN_PREDICATE})",
            statement.predicate_type
        )));
    }
    Ok(signer)
}

/// Why one bundle among the referrers does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleRefusal {
    /// It cannot be read.
    Unreadable(Unreadable),
    /// It was checked with the attestor and refused.
    Refused(AttestationRefusal),
}

impl fmt::Display for BundleRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BundleRefusal::Unreadable(u) => u.fmt(f),
            BundleRefusal::Refused(r) => r.fmt(f),
        }
    }
}

/// Why no Sigstore bundle among an image's referrers satisfies an attestor: each bundle that was
/// checked (of the check's predicate type, or unreadable) and why it failed, and what else was
/// there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFailure {
    /// Where the bundles were looked for.
    pub location: String,
    /// The attestation's predicate type; `None` for a signature (cosign's sign statement).
    pub predicate_type: Option<String>,
    /// The bundles checked, by referrer manifest digest, and why each failed, in order.
    pub refused: Vec<(Digest, BundleRefusal)>,
    /// The predicate types of the other bundles found (not checked), each once.
    pub others: Vec<String>,
}

impl BundleFailure {
    fn new(set: &BundleSet, predicate_type: Option<&str>) -> BundleFailure {
        BundleFailure {
            location: set.location.clone(),
            predicate_type: predicate_type.map(str::to_string),
            refused: Vec::new(),
            others: Vec::new(),
        }
    }

    /// `set` holds nothing for the check: what it holds instead.
    pub fn nothing_in(set: &BundleSet, predicate_type: Option<&str>) -> BundleFailure {
        let mut failure = BundleFailure::new(set, predicate_type);
        for b in &set.bundles {
            failure.other(b);
        }
        failure
    }

    fn other(&mut self, b: &ReferrerBundle) {
        let kind = match &b.predicate_type {
            Some(t) if t == COSIGN_SIGN_PREDICATE => format!("a signature ({t})"),
            Some(t) => t.clone(),
            None => "no in-toto statement".to_string(),
        };
        if !self.others.contains(&kind) {
            self.others.push(kind);
        }
    }

    /// The kind, for the audit trail and metrics.
    pub fn reason(&self) -> Reason {
        if self.refused.is_empty() {
            return match self.predicate_type {
                None => Reason::NoSignatures,
                Some(_) => Reason::NoAttestations,
            };
        }
        let refusals = || {
            self.refused.iter().filter_map(|(_, r)| match r {
                BundleRefusal::Refused(r) => Some(r),
                BundleRefusal::Unreadable(_) => None,
            })
        };
        let certificate = |f: fn(&CertificateRefusal) -> bool| {
            refusals().any(|r| matches!(r, AttestationRefusal::Certificate(c) if f(c)))
        };
        if certificate(|c| matches!(c, CertificateRefusal::Identity(_))) {
            Reason::Identity
        } else if certificate(|c| {
            matches!(
                c,
                CertificateRefusal::Chain(_)
                    | CertificateRefusal::NotValidAtSigningTime { .. }
                    | CertificateRefusal::UntrustedKeyless(_)
                    | CertificateRefusal::NoKeylessCertificate
            )
        }) {
            Reason::Certificate
        } else if certificate(|c| matches!(c, CertificateRefusal::Sct(_))) {
            Reason::CertificateTransparency
        } else if refusals().any(|r| {
            matches!(
                r,
                AttestationRefusal::Timestamp(TimestampRefusal::CertificateNotValid { .. })
            )
        }) {
            Reason::Certificate
        } else if refusals().any(|r| {
            matches!(
                r,
                AttestationRefusal::Tlog(_)
                    | AttestationRefusal::Timestamp(_)
                    | AttestationRefusal::Certificate(CertificateRefusal::Tlog(_))
            )
        }) {
            Reason::TransparencyLog
        } else if refusals().any(|r| matches!(r, AttestationRefusal::NoMatchingSubject { .. })) {
            Reason::SignedOtherDigest
        } else if refusals().any(|r| matches!(r, AttestationRefusal::MissingAnnotations { .. })) {
            Reason::MissingAnnotations
        } else {
            Reason::SignatureMismatch
        }
    }
}

impl fmt::Display for BundleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = &self.location;
        if self.refused.is_empty() {
            match &self.predicate_type {
                None => write!(
                    f,
                    "no Sigstore bundle signatures found among the referrers at {location}"
                )?,
                Some(t) => write!(
                    f,
                    "no Sigstore bundle attestations of type {t} found among the referrers at {location}"
                )?,
            }
        } else {
            let n = self.refused.len();
            match &self.predicate_type {
                None => write!(
                    f,
                    "none of {n} Sigstore bundle signature(s) among the referrers at {location} verifies: "
                )?,
                Some(t) => write!(
                    f,
                    "none of {n} Sigstore bundle attestation(s) of type {t} among the referrers at {location} verifies: "
                )?,
            }
            for (i, (manifest, why)) in self.refused.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                let hex = manifest.hex();
                write!(
                    f,
                    "bundle {} ({}:{}): {why}",
                    i + 1,
                    manifest.algorithm().name(),
                    &hex[..hex.len().min(12)]
                )?;
            }
        }
        if !self.others.is_empty() {
            write!(f, " (other bundles: {})", self.others.join(", "))?;
        }
        Ok(())
    }
}

/// The leaf checks every attestor goes through first: an unsupported or nested one cannot be
/// evaluated.
fn cannot(attestor: &Attestor) -> Option<AttestorOutcome> {
    if let Some(why) = attestor.unsupported() {
        return Some(AttestorOutcome::Error(CannotEvaluate::Unsupported(
            why.clone(),
        )));
    }
    if matches!(attestor.kind, AttestorKind::Nested(_)) {
        return Some(AttestorOutcome::Error(CannotEvaluate::NestedSet));
    }
    None
}

/// Checks `attestor` against the Sigstore bundles among an image's referrers, as image
/// signatures: the first bundle of cosign's sign statement that verifies ([`check_bundle_signature`])
/// is the proof; bundles of other predicate types are not checked (Kyverno's `type:
/// SigstoreBundle` counts any verified bundle; sealgate only signatures, see the module).
pub fn check_bundles(
    attestor: &Attestor,
    set: &BundleSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    if let Some(outcome) = cannot(attestor) {
        return outcome;
    }
    let mut failure = BundleFailure::new(set, None);
    for b in &set.bundles {
        if !b.may_be(COSIGN_SIGN_PREDICATE) {
            failure.other(b);
            continue;
        }
        match &b.bundle {
            Err(e) => failure
                .refused
                .push((b.manifest.clone(), BundleRefusal::Unreadable(e.clone()))),
            Ok(bundle) => match check_bundle_signature(attestor, bundle, &set.image_digest, ctx) {
                Ok(signer) => return AttestorOutcome::Verified(Verified::new(signer)),
                Err(why) => failure
                    .refused
                    .push((b.manifest.clone(), BundleRefusal::Refused(why))),
            },
        }
    }
    AttestorOutcome::Failed(AttestorFailure::Bundles(failure))
}

/// Checks `attestor` for `attestation` against the Sigstore bundles among an image's referrers,
/// as Kyverno's `type: SigstoreBundle` does: the bundles whose statement is of the
/// attestation's predicate type, each checked with the attestor ([`check_bundle`]); none that
/// verifies is the failure; the statements that verify then meet the attestation's conditions as
/// `.att` statements do.
pub fn check_bundle_attestation(
    attestor: &Attestor,
    attestation: &Attestation,
    set: &BundleSet,
    ctx: VerifyContext<'_>,
) -> AttestorOutcome {
    if let Some(outcome) = cannot(attestor) {
        return outcome;
    }
    let wanted = attestation.predicate_type.as_str();
    let mut failure = BundleFailure::new(set, Some(wanted));
    let mut verified: Vec<(Statement, Signer)> = Vec::new();
    for b in &set.bundles {
        if !b.may_be(wanted) {
            failure.other(b);
            continue;
        }
        match &b.bundle {
            Err(e) => failure
                .refused
                .push((b.manifest.clone(), BundleRefusal::Unreadable(e.clone()))),
            Ok(bundle) => match check_bundle(attestor, bundle, &set.image_digest, ctx) {
                Ok(v) => verified.push(v),
                Err(why) => failure
                    .refused
                    .push((b.manifest.clone(), BundleRefusal::Refused(why))),
            },
        }
    }
    if verified.is_empty() {
        return AttestorOutcome::Failed(AttestorFailure::Bundles(failure));
    }
    judge_statements(attestation, verified)
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
