//! The last step of an evaluation: from the plan and what was found to allowed or denied, with
//! the reasons, the warnings and the JSON patch.
//!
//! Pure and cheap: no cryptography (attestor outcomes are already known), no I/O.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Value, json};

use crate::image::digest::Digest;
use std::collections::HashMap;

use crate::policy::{
    ApplyRules, Attestor, AttestorKind, AttestorSet, FailureAction, FailurePolicy,
    ImageVerification,
};

use super::outcome::{AttestorOutcome, CannotEvaluate, FetchFailure, OutcomeKey, Reason};
use super::plan::{ImageCheck, Plan, RulePlan, RuleState, for_each_leaf, outcome_key};
use super::resource::ExtractedImage;
use crate::image::ImageRef;

#[path = "decide_attestations.rs"]
mod attestations;

/// What an evaluation found for the decision: tag resolutions and attestor outcomes.
#[derive(Debug, Default)]
pub(super) struct Found {
    /// Tag → digest resolutions, by normalised reference (`registry/path:tag`).
    pub(super) digests: HashMap<String, Result<Digest, FetchFailure>>,
    /// Attestor outcomes.
    pub(super) outcomes: HashMap<OutcomeKey, AttestorOutcome>,
}

impl Found {
    /// The digest an image stands for: its own, or the resolution of its tag.
    fn digest_of(&self, image: &ImageRef) -> Option<Result<Digest, &FetchFailure>> {
        match image.digest() {
            Some(d) => Some(Ok(d.clone())),
            None => self.digests.get(image.normalized()).map(|r| match r {
                Ok(d) => Ok(d.clone()),
                Err(e) => Err(e),
            }),
        }
    }

    /// What `attestor` concluded for `image` at `digest`, or why it could not conclude.
    fn outcome(
        &self,
        image: &ExtractedImage,
        entry: &ImageVerification,
        attestor: &Attestor,
        digest: &Digest,
    ) -> Leaf<'_> {
        if let Some(why) = attestor.unsupported() {
            return Leaf::Cannot(CannotEvaluate::Unsupported(why.clone()));
        }
        match outcome_key(image, entry, attestor, digest) {
            Ok(key) => match self.outcomes.get(&key) {
                Some(outcome) => Leaf::Known(outcome),
                None => Leaf::Cannot(CannotEvaluate::NotFetched),
            },
            Err(why) => Leaf::Cannot(why),
        }
    }
}

/// One leaf attestor's result as the decision sees it.
enum Leaf<'a> {
    Known(&'a AttestorOutcome),
    Cannot(CannotEvaluate),
}

/// Kyverno's annotation recording which images verified.
pub const VERIFY_IMAGES_ANNOTATION: &str = "kyverno.io/verify-images";
/// Its JSON pointer in an object (`/` escaped as `~1`), written once rather than per review.
const VERIFY_IMAGES_ANNOTATION_PATH: &str = "/metadata/annotations/kyverno.io~1verify-images";

/// The result of a rule or an image check, as Kyverno names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Verified.
    Pass,
    /// Not verified.
    Fail,
    /// Not checked (skipImageReferences).
    Skip,
    /// Could not be evaluated.
    Error,
}

impl Status {
    /// `pass`, `fail`, `skip` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One image checked by one verifyImages entry of a rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageResult {
    /// The normalised image (`registry/path:tag` or `registry/path@digest`).
    pub image: String,
    /// JSON pointer of the image in the resource.
    pub pointer: String,
    /// Index of the verifyImages entry.
    pub entry: usize,
    /// The digest verified or resolved, when known.
    pub digest: Option<Digest>,
    /// Outcome.
    pub status: Status,
    /// Why, as a kind.
    pub reason: Reason,
    /// Why, in words.
    pub message: String,
    /// Who signed, for each attestor that verified.
    pub signers: Vec<String>,
    /// The equivalent spelling the entry's `imageReferences` matched, when Kyverno's spelling
    /// did not (Kyverno would not have checked the image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub covered_as: Option<String>,
}

/// The outcome of one rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleResult {
    /// Policy name (`namespace/name` for a namespaced Policy).
    pub policy: String,
    /// Rule name.
    pub rule: String,
    /// Worst image status (fail > error > pass > skip).
    pub status: Status,
    /// Enforce or Audit for this resource.
    pub action: FailureAction,
    /// One line per image that did not pass, or a summary.
    pub message: String,
    /// Every image check.
    pub images: Vec<ImageResult>,
}

/// The decision for one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Whether the resource may be admitted.
    pub allowed: bool,
    /// For a denial, the message for the user (names every failing policy, rule and image).
    pub message: String,
    /// Warnings for the user (Audit failures, errors that did not block, skipped images).
    pub warnings: Vec<String>,
    /// One result per applicable rule.
    pub results: Vec<RuleResult>,
    /// JSON patch: tag → digest pins and the verification annotation.
    pub patch: Vec<Value>,
    /// Normalised images no verifyImages rule covered (Kyverno admits them without a word).
    pub uncovered: Vec<String>,
}

/// Decides for `plan` with everything `found`.
pub(super) fn decide(plan: &Plan<'_>, found: &Found) -> Decision {
    let mut results = Vec::new();
    let mut warnings = Vec::new();
    let mut blocked: Vec<(String, String, String)> = Vec::new();
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    let mut annotation = Annotation::new(plan.images.len());
    let mut stop_policy: Option<usize> = None;

    // Mutation first, as Kyverno's mutating webhook: every rule's verification, pins and
    // annotation entries.
    let mut evaluated: Vec<(&RulePlan<'_>, RuleResult)> = Vec::with_capacity(plan.rules.len());
    for r in &plan.rules {
        if stop_policy == Some(r.policy_index) {
            continue;
        }
        let result = evaluate_rule(plan, r, found, &mut pins, &mut annotation);
        if r.policy.apply_rules == ApplyRules::One
            && matches!(result.status, Status::Pass | Status::Fail)
        {
            stop_policy = Some(r.policy_index);
        }
        evaluated.push((r, result));
    }
    // Then `verifyDigest`, as Kyverno's validating webhook: on the object after every pin, so
    // a rule's image pinned by a later rule has its digest (policy order does not matter).
    for (r, result) in &mut evaluated {
        check_digests(plan, r, result, &pins);
    }

    for (r, result) in evaluated {
        let enforce = r.action.action == FailureAction::Enforce;
        let qualified = r.policy.qualified_name();
        match result.status {
            Status::Fail if enforce => blocked.push((
                qualified.clone(),
                r.rule.name.clone(),
                result.message.clone(),
            )),
            Status::Error if enforce && r.policy.failure_policy == FailurePolicy::Fail => {
                blocked.push((
                    qualified.clone(),
                    r.rule.name.clone(),
                    result.message.clone(),
                ));
            }
            Status::Fail | Status::Error => warnings.push(format!(
                "policy {qualified}.{}: {}",
                r.rule.name, result.message
            )),
            Status::Skip if result.images.iter().any(|i| i.status == Status::Skip) => {
                warnings.push(format!(
                    "policy {qualified}.{}: {}",
                    r.rule.name, result.message
                ));
            }
            Status::Pass | Status::Skip if r.policy.emit_warning => {
                warnings.push(format!(
                    "policy {qualified}.{}: {}",
                    r.rule.name, result.message
                ));
            }
            _ => {}
        }
        results.push(result);
    }

    let allowed = blocked.is_empty();
    let message = if allowed {
        String::new()
    } else {
        denial_message(&plan.resource.display_name(), &blocked)
    };
    let patch = if allowed {
        build_patch(plan, &pins, &annotation.entries)
    } else {
        Vec::new()
    };
    let uncovered = plan
        .uncovered_images()
        .into_iter()
        .map(|i| plan.images[i].normalized().to_string())
        .collect();
    Decision {
        allowed,
        message,
        warnings,
        results,
        patch,
        uncovered,
    }
}

fn denial_message(resource: &str, blocked: &[(String, String, String)]) -> String {
    let mut out = format!("resource {resource} was blocked due to the following policies\n");
    let mut by_policy: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for (p, r, m) in blocked {
        by_policy.entry(p).or_default().push((r, m));
    }
    for (policy, rules) in by_policy {
        out.push_str(&format!("\n{policy}:\n"));
        for (rule, message) in rules {
            out.push_str(&format!("  {rule}: {message}\n"));
        }
    }
    out.trim_end().to_string()
}

fn evaluate_rule(
    plan: &Plan<'_>,
    r: &RulePlan<'_>,
    found: &Found,
    pins: &mut BTreeMap<String, String>,
    annotation: &mut Annotation,
) -> RuleResult {
    if let RuleState::Skipped(message) = &r.state {
        // Kyverno: a skip response for the rule, with no image checked.
        return RuleResult {
            policy: r.policy.qualified_name(),
            rule: r.rule.name.clone(),
            status: Status::Skip,
            action: r.action.action,
            message: message.clone(),
            images: Vec::new(),
        };
    }
    let rule_level = match (&r.rule.unsupported, &r.state) {
        (Some(why), _) => Some((Status::Error, Reason::Unsupported, why.to_string())),
        (None, RuleState::CannotEvaluate(why)) => {
            Some((Status::Error, Reason::Context, why.clone()))
        }
        (None, RuleState::WaitingForImages(images)) => Some((
            Status::Error,
            Reason::Context,
            format!(
                "the registry's data for {} (the rule's imageRegistry context) was not fetched",
                images.join(", ")
            ),
        )),
        (None, _) => None,
    };
    let mut images = Vec::with_capacity(r.checks.len());
    for check in &r.checks {
        let image = &plan.images[check.image];
        let entry = &r.rule.verify_images[check.entry];
        let result = match &rule_level {
            Some(why) => image_result(image, check, None, why.clone(), Vec::new()),
            None => evaluate_image(plan, r, check, image, entry, found),
        };
        let mutate_digest = plan.mutates_digest(entry);
        // Tag → digest pinning: in Enforce only what passed matters (a failure denies); in
        // Audit only digests that verified are pinned.
        if mutate_digest
            && result.status == Status::Pass
            && let (Ok(reference), Some(digest)) = (&image.reference, &result.digest)
            && reference.digest().is_none()
            // Every rule pinning the image pins it to the one digest its tag resolved to:
            // written once per image, not once per rule.
            && !pins.contains_key(&image.pointer)
        {
            pins.insert(image.pointer.clone(), reference.pinned_string_at(digest));
        }
        if entry.has_checks() && result.status != Status::Error {
            let value = match result.status {
                Status::Pass => "pass",
                Status::Skip => "skip",
                _ => "fail",
            };
            // Kyverno keys the annotation by the image as it is after mutation: the digest form
            // when this entry pinned it, else the image as written (normalised).
            match (&image.reference, &result.digest) {
                (Ok(reference), Some(d))
                    if mutate_digest
                        && result.status == Status::Pass
                        && reference.digest().is_none() =>
                {
                    annotation.set_pinned(check.image, || reference.normalized_at(d), value);
                }
                _ => annotation.set(image.normalized(), value),
            }
        }
        images.push(result);
    }
    let (status, message) = summarize(&images, &r.rule.verify_images);
    RuleResult {
        policy: r.policy.qualified_name(),
        rule: r.rule.name.clone(),
        status,
        action: r.action.action,
        message,
        images,
    }
}

/// Kyverno's `kyverno.io/verify-images` annotation as the rules fill it: image → `pass`, `fail`
/// or `skip`, the last rule's word winning.
struct Annotation {
    entries: BTreeMap<String, &'static str>,
    /// Each image's pinned name (`registry/path@digest`), formatted once per review rather than
    /// once per rule.
    pinned_names: Vec<Option<String>>,
}

impl Annotation {
    fn new(images: usize) -> Annotation {
        Annotation {
            entries: BTreeMap::new(),
            pinned_names: vec![None; images],
        }
    }

    fn set(&mut self, image: &str, value: &'static str) {
        set_entry(&mut self.entries, image, value);
    }

    /// `set` under image `index`'s pinned name, `name` making it the first time.
    fn set_pinned(&mut self, index: usize, name: impl FnOnce() -> String, value: &'static str) {
        match self.pinned_names.get_mut(index) {
            Some(slot) => set_entry(&mut self.entries, slot.get_or_insert_with(name), value),
            None => set_entry(&mut self.entries, &name(), value),
        }
    }
}

fn set_entry(entries: &mut BTreeMap<String, &'static str>, image: &str, value: &'static str) {
    match entries.get_mut(image) {
        Some(v) => *v = value,
        None => {
            entries.insert(image.to_string(), value);
        }
    }
}

/// How the message of a verified image (and of a rule whose images all verified) begins.
const VERIFIED_SIGNATURES: &str = "verified image signatures for ";
/// The same for images whose entry checks attestations.
const VERIFIED_ATTESTATIONS: &str = "verified image attestations for ";

/// A rule's status (the worst of its images': fail > error > pass > skip) and message (the
/// images that did not pass, or what verified: signatures, and attestations for the images of
/// entries that check them).
fn summarize(images: &[ImageResult], entries: &[ImageVerification]) -> (Status, String) {
    let status = images
        .iter()
        .map(|i| i.status)
        .max_by_key(|s| match s {
            Status::Fail => 3,
            Status::Error => 2,
            Status::Pass => 1,
            Status::Skip => 0,
        })
        .unwrap_or(Status::Skip);
    let not_passed: Vec<&str> = images
        .iter()
        .filter(|i| i.status == status && status != Status::Pass)
        .map(|i| i.message.as_str())
        .collect();
    let message = if not_passed.is_empty() {
        let verified = |attested: bool| -> Vec<&str> {
            images
                .iter()
                .filter(|i| {
                    i.status == Status::Pass
                        && entries
                            .get(i.entry)
                            .is_some_and(|e| e.attestations.is_empty())
                            != attested
                })
                .map(|i| i.image.as_str())
                .collect()
        };
        let (signed, attested) = (verified(false), verified(true));
        let mut message = String::new();
        for (prefix, images) in [
            (VERIFIED_SIGNATURES, &signed),
            (VERIFIED_ATTESTATIONS, &attested),
        ] {
            if images.is_empty() {
                continue;
            }
            if !message.is_empty() {
                message.push_str("; ");
            }
            message.push_str(prefix);
            for (i, image) in images.iter().enumerate() {
                if i > 0 {
                    message.push_str(", ");
                }
                message.push_str(image);
            }
        }
        if message.is_empty() {
            message.push_str("no image checked");
        }
        message
    } else {
        not_passed.join("; ")
    };
    (status, message)
}

/// `verifyDigest` (Kyverno's validating webhook): every image the rule passed must carry a
/// digest once the pins are applied, else the image fails with `missing digest for IMAGE`.
fn check_digests(
    plan: &Plan<'_>,
    r: &RulePlan<'_>,
    result: &mut RuleResult,
    pins: &BTreeMap<String, String>,
) {
    let mut changed = false;
    // `evaluate_rule` made one image result per check, in order.
    for (check, image_result) in r.checks.iter().zip(result.images.iter_mut()) {
        let entry = &r.rule.verify_images[check.entry];
        let image = &plan.images[check.image];
        if entry.verify_digest
            && image_result.status == Status::Pass
            && !pins.contains_key(&image.pointer)
            && image.reference.as_ref().is_ok_and(|i| i.digest().is_none())
        {
            image_result.status = Status::Fail;
            image_result.reason = Reason::MissingDigest;
            image_result.message = format!("missing digest for {}", image.normalized());
            changed = true;
        }
    }
    if changed {
        (result.status, result.message) = summarize(&result.images, &r.rule.verify_images);
    }
}

/// A status with its kind and its words.
type Verdict = (Status, Reason, String);

fn image_result(
    image: &ExtractedImage,
    check: &ImageCheck,
    digest: Option<Digest>,
    (status, reason, message): Verdict,
    signers: Vec<String>,
) -> ImageResult {
    ImageResult {
        image: image.normalized().to_string(),
        pointer: image.pointer.clone(),
        entry: check.entry,
        digest,
        status,
        reason,
        message,
        signers,
        covered_as: check.covered_as.map(|_| check.spelling(image).into_owned()),
    }
}

fn evaluate_image(
    plan: &Plan<'_>,
    r: &RulePlan<'_>,
    check: &ImageCheck,
    image: &ExtractedImage,
    entry: &ImageVerification,
    found: &Found,
) -> ImageResult {
    let s = image.normalized();
    let fail = |verdict: Verdict| image_result(image, check, None, verdict, Vec::new());
    if let Some(why) = &image.unreadable {
        return fail((Status::Fail, Reason::MalformedObject, why.clone()));
    }
    let reference = match &image.reference {
        Ok(reference) => reference,
        Err(e) => return fail((Status::Error, Reason::InvalidImage, format!("{e}"))),
    };
    if let Some(why) = &image.unsupported {
        return fail((
            Status::Error,
            Reason::Unsupported,
            format!("image {s}: {why}"),
        ));
    }
    if check.skipped(entry, image) {
        return fail((
            Status::Skip,
            Reason::Skipped,
            format!(
                "skipping image reference image {s}, policy {} ruleName {}",
                r.policy.qualified_name(),
                r.rule.name
            ),
        ));
    }
    if let Some(why) = &entry.unsupported {
        return fail((
            Status::Error,
            Reason::Unsupported,
            format!("image {s}: {why}"),
        ));
    }
    let mutate_digest = plan.mutates_digest(entry);
    let needs_digest = entry.has_checks() || mutate_digest;
    let digest = match found.digest_of(reference) {
        Some(Ok(d)) => Some(d),
        Some(Err(why)) if why.is_timeout() => {
            return fail((
                Status::Error,
                Reason::Fetch(why.reason()),
                format!("verification of {s} did not finish within {why}"),
            ));
        }
        Some(Err(why)) if needs_digest => {
            return fail((
                Status::Error,
                Reason::Fetch(why.reason()),
                format!("could not resolve the digest of {s}: {why}"),
            ));
        }
        Some(Err(_)) | None if needs_digest => {
            return fail((
                Status::Error,
                Reason::NotFetched,
                format!("the digest of {s} was not fetched"),
            ));
        }
        _ => None,
    };
    if !entry.has_checks() {
        if entry.required {
            return image_result(
                image,
                check,
                digest,
                (
                    Status::Fail,
                    Reason::Unverified,
                    format!("unverified image {s}"),
                ),
                Vec::new(),
            );
        }
        let message = if mutate_digest {
            "mutated image digest".to_string()
        } else {
            "image verified".to_string()
        };
        return image_result(
            image,
            check,
            digest,
            (Status::Pass, Reason::NotChecked, message),
            Vec::new(),
        );
    }
    let Some(digest) = digest else {
        return fail((
            Status::Error,
            Reason::NotFetched,
            format!("the digest of {s} is unknown"),
        ));
    };
    let n = entry.attestors.len();
    let mut signers = Vec::new();
    for (i, set) in entry.attestors.iter().enumerate() {
        let verdict = evaluate_set(set, &|attestor| {
            found.outcome(image, entry, attestor, &digest)
        });
        match verdict {
            SetVerdict::Pass(mut s) => signers.append(&mut s),
            SetVerdict::Fail {
                verified,
                required,
                reasons,
                error,
                reason,
            } => {
                // A signature fetch cut off by the caller's deadline: say so, as for a tag.
                if error && let Some(why) = signature_timeout(set, image, entry, &digest, found) {
                    return image_result(
                        image,
                        check,
                        Some(digest),
                        (
                            Status::Error,
                            Reason::Fetch(why.reason()),
                            format!("verification of {s} did not finish within {why}"),
                        ),
                        signers,
                    );
                }
                let status = if error { Status::Error } else { Status::Fail };
                let plural = if required == 1 {
                    "signature"
                } else {
                    "signatures"
                };
                let message = format!(
                    "image {s} ({digest}): attestor set {} of {n} needs {required} {plural}, got {verified}: {}",
                    i + 1,
                    reasons.join("; ")
                );
                return image_result(
                    image,
                    check,
                    Some(digest),
                    (status, reason, message),
                    signers,
                );
            }
        }
    }
    if !entry.attestations.is_empty() {
        return attestations::evaluate_attestations(image, check, entry, &digest, found, signers);
    }
    // `verified image signatures for IMAGE (DIGEST)`, built without the formatting machinery:
    // this is the message of every verified image of every review.
    let mut message = String::with_capacity(VERIFIED_SIGNATURES.len() + s.len() + 80);
    message.push_str(VERIFIED_SIGNATURES);
    message.push_str(s);
    message.push_str(" (");
    message.push_str(digest.algorithm().name());
    message.push(':');
    message.push_str(digest.hex());
    message.push(')');
    image_result(
        image,
        check,
        Some(digest),
        (Status::Pass, Reason::Verified, message),
        signers,
    )
}

/// The first signature fetch of `set`'s attestors that ran out of time, if any.
fn signature_timeout<'f>(
    set: &AttestorSet,
    image: &ExtractedImage,
    entry: &ImageVerification,
    digest: &Digest,
    found: &'f Found,
) -> Option<&'f FetchFailure> {
    let mut timeout = None;
    for_each_leaf(set, &mut |attestor| {
        if timeout.is_some() {
            return;
        }
        if let Leaf::Known(AttestorOutcome::Error(CannotEvaluate::Fetch(f))) =
            found.outcome(image, entry, attestor, digest)
            && f.is_timeout()
        {
            timeout = Some(f);
        }
    });
    timeout
}

enum SetVerdict {
    Pass(Vec<String>),
    Fail {
        verified: usize,
        required: usize,
        reasons: Vec<String>,
        /// True when evaluation errors (not failed checks) kept the set from passing.
        error: bool,
        /// The kind of the first error (when `error`) or of the first failure.
        reason: Reason,
    },
}

fn evaluate_set<'f>(set: &AttestorSet, outcome: &dyn Fn(&Attestor) -> Leaf<'f>) -> SetVerdict {
    let required = set.required_count();
    let mut verified = 0;
    let mut signers = Vec::new();
    let mut reasons = Vec::new();
    let mut errors = 0;
    let (mut first_error, mut first_failure) = (None, None);
    for (j, entry) in set.entries.iter().enumerate() {
        if verified >= required {
            break;
        }
        let result = match &entry.kind {
            AttestorKind::Nested(inner) => match evaluate_set(inner, outcome) {
                SetVerdict::Pass(s) => Ok(s),
                SetVerdict::Fail {
                    verified,
                    required,
                    reasons,
                    error,
                    reason,
                } => {
                    let msg = format!(
                        "nested set needs {required}, got {verified}: {}",
                        reasons.join("; ")
                    );
                    Err((msg, error, reason))
                }
            },
            _ => match outcome(entry) {
                Leaf::Known(AttestorOutcome::Verified(v)) => Ok(vec![v.signer().to_string()]),
                Leaf::Known(AttestorOutcome::Failed(why)) => {
                    Err((why.to_string(), false, why.reason()))
                }
                Leaf::Known(AttestorOutcome::Error(why)) => {
                    Err((why.to_string(), true, why.reason()))
                }
                Leaf::Cannot(why) => Err((why.to_string(), true, why.reason())),
            },
        };
        match result {
            Ok(mut s) => {
                verified += 1;
                signers.append(&mut s);
            }
            Err((why, is_error, reason)) => {
                errors += usize::from(is_error);
                let first = if is_error {
                    &mut first_error
                } else {
                    &mut first_failure
                };
                first.get_or_insert(reason);
                // Named only when it failed: a passing entry costs no formatting.
                reasons.push(match entry.key_index {
                    Some(k) => format!("entry {j} (key {} of publicKeys): {why}", k + 1),
                    None => format!("entry {j}: {why}"),
                });
            }
        }
    }
    if verified >= required {
        SetVerdict::Pass(signers)
    } else {
        let error = errors > 0 && verified + errors >= required;
        let reason = if error {
            first_error.or(first_failure)
        } else {
            first_failure.or(first_error)
        };
        SetVerdict::Fail {
            verified,
            required,
            reasons,
            error,
            reason: reason.unwrap_or(Reason::NotFetched),
        }
    }
}

fn build_patch(
    plan: &Plan<'_>,
    pins: &BTreeMap<String, String>,
    annotation: &BTreeMap<String, &'static str>,
) -> Vec<Value> {
    let mut patch = Vec::new();
    if !annotation.is_empty() {
        if !plan.resource.object["metadata"]["annotations"].is_object() {
            patch.push(json!({"op": "add", "path": "/metadata/annotations", "value": {}}));
        }
        let value = serde_json::to_string(annotation).unwrap_or_default();
        patch.push(json!({
            "op": "add",
            "path": VERIFY_IMAGES_ANNOTATION_PATH,
            "value": value,
        }));
    }
    for (pointer, value) in pins {
        patch.push(json!({"op": "replace", "path": pointer, "value": value}));
    }
    patch
}
