//! The decision for an entry's `attestations[]`, as Kyverno's `verifyAttestations`: each
//! attestation in order, each of its attestor sets (AND), `count` of the set's entries (early
//! exit once enough verified); a shortfall fails the image with
//! `image attestations verification failed, verifiedCount: N, requiredCount: M, error: …`, each
//! entry's error prefixed with its path (`.attestations[i].attestors[j].entries[k].keys`).

use std::cell::RefCell;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::image::digest::Digest;
use crate::policy::variables;
use crate::policy::{
    Attestation, Attestor, AttestorKind, AttestorSet, DenyCheck, ImageVerification,
};

use super::super::outcome::{AttestorOutcome, CannotEvaluate, Reason};
use super::super::plan::{ImageCheck, attestation_key};
use super::super::resource::ExtractedImage;
use super::{Found, ImageResult, Status, Verdict, image_result};

/// What one leaf or nested set amounted to.
enum Entry {
    /// The signers, and the named predicate the outcome kept for `validate.deny`.
    Verified(Vec<String>, Option<Arc<Value>>),
    /// Not verified: the words, whether an error (not a failed check) kept it, its kind, and
    /// the fetch that ran out of time, if that was why.
    Refused {
        words: String,
        error: bool,
        reason: Reason,
        timeout: Option<String>,
    },
}

/// A set's verdict: `Ok(signers)` or the shortfall with its words and kind.
struct Shortfall {
    verified: usize,
    required: usize,
    errors: Vec<String>,
    error: bool,
    reason: Reason,
    timeout: Option<String>,
}

/// The image result of an entry with attestations whose attestor sets (if any) passed with
/// `signers`.
pub(super) fn evaluate_attestations(
    image: &ExtractedImage,
    check: &ImageCheck,
    entry: &ImageVerification,
    digest: &Digest,
    found: &Found,
    mut signers: Vec<String>,
) -> ImageResult {
    let s = image.normalized();
    // Kyverno's context entries under the attestations' names: the predicate of the last
    // attestor that verified, for `validate.deny`.
    let named: RefCell<Map<String, Value>> = RefCell::new(Map::new());
    for (i, attestation) in entry.attestations.iter().enumerate() {
        for (j, set) in attestation.attestors.iter().enumerate() {
            let prefix = format!(".attestations[{i}].attestors[{j}]");
            match evaluate_set(set, &prefix, &|a| {
                let result = leaf(image, entry, attestation, a, digest, found, s);
                if let (Entry::Verified(_, Some(predicate)), Some(name)) =
                    (&result, &attestation.name)
                {
                    named
                        .borrow_mut()
                        .insert(name.clone(), Value::clone(predicate));
                }
                result
            }) {
                Ok(mut v) => signers.append(&mut v),
                Err(short) => {
                    let verdict: Verdict = match &short.timeout {
                        Some(why) if short.error => (
                            Status::Error,
                            short.reason,
                            format!("verification of {s} did not finish within {why}"),
                        ),
                        _ => (
                            if short.error {
                                Status::Error
                            } else {
                                Status::Fail
                            },
                            short.reason,
                            format!(
                                "image attestations verification failed, verifiedCount: {}, requiredCount: {}, error: {}",
                                short.verified,
                                short.required,
                                short.errors.join("; ")
                            ),
                        ),
                    };
                    return image_result(image, check, Some(digest.clone()), verdict, signers);
                }
            }
        }
    }
    let verdict = match entry
        .validate
        .as_ref()
        .and_then(|v| v.deny.as_ref().map(|d| (v, d)))
    {
        Some((validate, deny)) => deny_verdict(
            s,
            digest,
            validate.message.as_deref(),
            deny,
            named.into_inner(),
        ),
        None => (
            Status::Pass,
            Reason::Verified,
            format!("verified image attestations for {s} ({digest})"),
        ),
    };
    image_result(image, check, Some(digest.clone()), verdict, signers)
}

/// Kyverno's `validate.deny` after every attestation verified: the conditions over the rule's
/// context and the attestations' named predicates. They hold: the image fails with
/// `validation in verifyImages failed: MESSAGE` (the entry's message and the messages of the
/// conditions that held, joined with `; ` and their variables resolved); they cannot be
/// evaluated: an error result (Kyverno fails it, sealgate says it could not decide).
fn deny_verdict(
    image: &str,
    digest: &Digest,
    message: Option<&str>,
    deny: &DenyCheck,
    named: Map<String, Value>,
) -> Verdict {
    let mut context = match deny.context.as_deref() {
        Some(Value::Object(context)) => context.clone(),
        _ => Map::new(),
    };
    context.extend(named);
    let context = Value::Object(context);
    match deny.conditions.deny(&context) {
        Ok(None) => (
            Status::Pass,
            Reason::Verified,
            format!(
                "verified image attestations for {image} ({digest}); validate.deny conditions do not hold"
            ),
        ),
        Ok(Some(held)) => {
            let joined: Vec<&str> = [message.unwrap_or_default(), held.as_str()]
                .into_iter()
                .filter(|m| !m.is_empty())
                .collect();
            let words = if joined.is_empty() {
                // Kyverno's words for a deny without any message.
                "validation error: imageVerify  failed".to_string()
            } else {
                let joined = joined.join("; ");
                match variables::substitute(&joined, &context) {
                    Ok(Value::String(text)) => text,
                    Ok(_) => "the produced message didn't resolve to a string, check your policy definition.".to_string(),
                    // Kyverno falls back to the conditions' messages.
                    Err(_) => held,
                }
            };
            (
                Status::Fail,
                Reason::DenyConditions,
                format!("validation in verifyImages failed: {words}"),
            )
        }
        Err(e) => (
            Status::Error,
            Reason::DenyConditions,
            format!(
                "validation in verifyImages failed: failed to check deny conditions at {}: {e}",
                deny.conditions.path()
            ),
        ),
    }
}

/// Kyverno's count semantics over `set`'s entries, in order, stopping once enough verified.
fn evaluate_set(
    set: &AttestorSet,
    prefix: &str,
    outcome: &dyn Fn(&Attestor) -> Entry,
) -> Result<Vec<String>, Shortfall> {
    let required = set.required_count();
    let mut verified = 0;
    let mut signers = Vec::new();
    let mut errors = Vec::new();
    let mut error_count = 0;
    let (mut first_error, mut first_failure, mut timeout) = (None, None, None);
    for (k, attestor) in set.entries.iter().enumerate() {
        if verified >= required {
            break;
        }
        let path = format!("{prefix}.entries[{k}]");
        let result = match &attestor.kind {
            AttestorKind::Nested(inner) => {
                match evaluate_set(inner, &format!("{path}.attestor"), outcome) {
                    Ok(s) => Entry::Verified(s, None),
                    Err(short) => Entry::Refused {
                        words: format!(
                            "nested set needs {}, got {}: {}",
                            short.required,
                            short.verified,
                            short.errors.join("; ")
                        ),
                        error: short.error,
                        reason: short.reason,
                        timeout: short.timeout,
                    },
                }
            }
            _ => outcome(attestor),
        };
        match result {
            Entry::Verified(mut s, _) => {
                verified += 1;
                signers.append(&mut s);
            }
            Entry::Refused {
                words,
                error,
                reason,
                timeout: t,
            } => {
                let sub = match &attestor.kind {
                    AttestorKind::Key(_) => ".keys",
                    AttestorKind::Certificate(_) => ".certificates",
                    AttestorKind::Keyless(_) => ".keyless",
                    AttestorKind::Nested(_) => "",
                };
                errors.push(format!("{path}{sub}: {words}"));
                if error {
                    error_count += 1;
                    first_error.get_or_insert(reason);
                } else {
                    first_failure.get_or_insert(reason);
                }
                if timeout.is_none() {
                    timeout = t;
                }
            }
        }
    }
    if verified >= required {
        return Ok(signers);
    }
    let error = error_count > 0 && verified + error_count >= required;
    let reason = if error {
        first_error.or(first_failure)
    } else {
        first_failure.or(first_error)
    };
    Err(Shortfall {
        verified,
        required,
        errors,
        error,
        reason: reason.unwrap_or(Reason::NotFetched),
        timeout,
    })
}

/// One leaf attestor's outcome for `attestation`.
fn leaf(
    image: &ExtractedImage,
    entry: &ImageVerification,
    attestation: &Attestation,
    attestor: &Attestor,
    digest: &Digest,
    found: &Found,
    s: &str,
) -> Entry {
    let refused = |why: &CannotEvaluate| Entry::Refused {
        words: why.to_string(),
        error: true,
        reason: why.reason(),
        timeout: match why {
            CannotEvaluate::Fetch(f) if f.is_timeout() => Some(f.to_string()),
            _ => None,
        },
    };
    if let Some(why) = attestor.unsupported() {
        return refused(&CannotEvaluate::Unsupported(why.clone()));
    }
    let key = match attestation_key(image, entry, attestation, attestor, digest) {
        Ok(key) => key,
        Err(why) => return refused(&why),
    };
    match found.outcomes.get(&key) {
        Some(AttestorOutcome::Verified(v)) => {
            Entry::Verified(vec![v.signer().to_string()], v.predicate().cloned())
        }
        Some(AttestorOutcome::Failed(why)) => Entry::Refused {
            words: why.describe(s),
            error: false,
            reason: why.reason(),
            timeout: None,
        },
        Some(AttestorOutcome::Error(why)) => refused(why),
        None => refused(&CannotEvaluate::NotFetched),
    }
}
