//! One AdmissionReview, from request to response: the decision (or the reason there is no work),
//! then its audit records, metrics and log line, all inside one `review` span.
//!
//! The routes decode and encode; this module decides what the response says:
//!
//! - DELETE and CONNECT, and subresources other than `ephemeralcontainers`, are allowed without
//!   work (they run no new image).
//! - Otherwise one evaluation, driven through the [`CachingFetcher`](crate::fetcher::CachingFetcher),
//!   decides under the request's budget; `/mutate` returns the engine's JSON patch (digest pins,
//!   `kyverno.io/verify-images`), `/validate` never patches and evaluates in
//!   [`Mode::Validate`] (no `mutateDigest`).
//! - A denial is `allowed: false` with `status.code` 403 and the engine's message; Audit failures
//!   and non-blocking errors are `warnings`.

use std::time::{Duration, Instant};

use sealgate_core::ImageRef;
use sealgate_core::engine::{Decision, Mode, Resource, Status};
use sealgate_core::policy::{FailureAction, FailurePolicy, Operation, Policy};
use sealgate_core::timestamp::{Clock as _, unix_seconds};
use sealgate_registry::driver::SystemClock;
use serde::Deserialize as _;
use serde_json::Value;
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::admission::{AdmissionRequest, AdmissionResponse};
use crate::audit::{Check, Commit, DecisionBuilder, RequestFields, now_unix_ms};
use crate::config::format_duration;
use crate::fetcher::Verdict;
use crate::policies::NothingInForce;
use crate::reports::{self, Process, ReportedResource};
use crate::sources::NamespaceLabels;
use crate::state::AppState;

/// How long the decision may overrun the budget (CPU work after the last fetch) before the
/// safety net answers instead.
const OVERRUN: Duration = Duration::from_secs(1);

/// Which webhook was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Webhook {
    /// `POST /mutate`: decides and patches.
    Mutate,
    /// `POST /validate`: decides, never patches.
    Validate,
}

impl Webhook {
    /// `mutate` or `validate`, as in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Mutate => "mutate",
            Webhook::Validate => "validate",
        }
    }
}

/// Decides `request` (received at `received`) and records the decision; with a synced audit
/// trail (`--audit-sync`) the answer waits for its row's commit.
///
/// Runs inside one `review` span: the request's uid, webhook, operation, kind and namespace
/// from the start, its decision (`allowed` or `denied`) and duration recorded once at the end,
/// so every line logged while deciding it names the request.
pub async fn review(
    state: &AppState,
    webhook: Webhook,
    request: AdmissionRequest,
    received: Instant,
) -> AdmissionResponse {
    let span = tracing::info_span!(
        "review",
        uid = %request.uid,
        webhook = webhook.as_str(),
        operation = %request.operation,
        kind = %request.kind.kind,
        namespace = request.namespace.as_deref().unwrap_or_default(),
        decision = Empty,
        duration_ms = Empty,
    );
    decide(state, webhook, request, received)
        .instrument(span)
        .await
}

async fn decide(
    state: &AppState,
    webhook: Webhook,
    mut request: AdmissionRequest,
    received: Instant,
) -> AdmissionResponse {
    let answered = answer(state, webhook, &mut request, received).await;
    let took = received.elapsed();
    let (response, commit) = match answered {
        Answered::Evaluated {
            response,
            resource,
            verdict,
        } => {
            let commit = record(state, webhook, &request, &resource, &verdict, took);
            report(state, webhook, &request, &resource, &verdict.decision);
            (response, commit)
        }
        Answered::WithoutWork { response, why } => {
            let commit = finish_without_work(state, webhook, &request, &response, took, why);
            (response, commit)
        }
    };
    if let Err(e) = commit.wait(AUDIT_COMMIT_BOUND).await {
        tracing::warn!(error = %e, "answered without knowing the decision's audit row is written");
    }
    response
}

/// How long an answer waits for its audit row's commit under `--audit-sync`; a slower disk
/// gets a warning, not a failed admission.
const AUDIT_COMMIT_BOUND: Duration = Duration::from_secs(2);

/// What [`answer`] decided, for the records.
// One per request, moved once: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Answered {
    /// The policies were evaluated.
    Evaluated {
        response: AdmissionResponse,
        resource: Resource,
        verdict: Verdict,
    },
    /// The request was answered without evaluation.
    WithoutWork {
        response: AdmissionResponse,
        why: NoWork,
    },
}

impl Answered {
    fn without(response: AdmissionResponse, why: NoWork) -> Answered {
        Answered::WithoutWork { response, why }
    }
}

/// Decides `request`, records nothing.
async fn answer(
    state: &AppState,
    webhook: Webhook,
    request: &mut AdmissionRequest,
    received: Instant,
) -> Answered {
    let response = AdmissionResponse::allow(&request.uid);
    let Some(operation) = request.operation() else {
        let response = response.invalid(format!(
            "unknown operation '{}': expected CREATE, UPDATE, DELETE or CONNECT",
            request.operation
        ));
        return Answered::without(response, NoWork::UnknownOperation);
    };
    if matches!(operation, Operation::Delete | Operation::Connect) {
        return Answered::without(response, NoWork::RunsNoImage);
    }
    if let Some(sub) = request.sub_resource.as_deref().filter(|s| !s.is_empty())
        && sub != "ephemeralcontainers"
    {
        return Answered::without(response, NoWork::SubresourceRunsNoImage);
    }
    // The object moves into the resource; the request keeps its other fields for the records.
    let mut resource = match request.take_resource(operation) {
        Ok(r) => r,
        Err(why) => {
            let response = response.invalid(why);
            return Answered::without(response, NoWork::InvalidObject);
        }
    };

    // Namespace labels from the cluster when a source knows them; otherwise they stay unknown
    // (a namespaceSelector fails closed) and, with a source that has not synced yet, the
    // answer says so.
    let mut unknown_labels = None;
    if let Some(namespace) = resource.namespace.clone() {
        match state.namespace_labels(&namespace) {
            NamespaceLabels::Known(labels) => {
                resource.namespace_labels = labels;
                resource.namespace_labels_known = true;
            }
            NamespaceLabels::Unknown(why) if state.knows_namespaces() => {
                unknown_labels = Some(format!(
                    "the labels of namespace {namespace} are not known: {why}; a namespaceSelector is taken as satisfied in match and not in exclude (fail closed)"
                ));
            }
            NamespaceLabels::Unknown(_) => {}
        }
    }
    let policies = state.policies();
    // Every policy file invalid: sealgate knows nothing it could check, so it never admits
    // unchecked on that account (an empty policy source does admit, and says so at start).
    match policies.nothing_in_force() {
        None => {}
        Some(NothingInForce::Deny(why)) => {
            let response = response.deny(why);
            return Answered::without(response, NoWork::NothingInForce);
        }
        Some(NothingInForce::Warn(why)) => {
            let response = response.with_warnings(&[why]);
            return Answered::without(response, NoWork::NothingInForce);
        }
    }
    // `request.*` variables: given only when a policy reads them (a copy of userInfo and
    // oldObject per review otherwise wasted).
    if policies.policies.iter().any(Policy::reads_request) {
        resource = resource.with_request(request.variables());
    }
    let fetcher = state.fetcher();
    let budget = fetcher.budget();
    let mode = match webhook {
        Webhook::Mutate => Mode::Mutate,
        Webhook::Validate => Mode::Validate,
    };
    let remaining = budget.saturating_sub(received.elapsed());
    let keyring = state.keyring_for(&resource, &policies.policies);
    let deciding = fetcher.decide_with(
        &policies.policies,
        &resource,
        mode,
        remaining,
        budget,
        keyring,
    );
    let Ok(verdict) = tokio::time::timeout(remaining + OVERRUN, deciding).await else {
        // Never expected: waiting is bounded inside the driver. Fail closed and say so.
        let message = format!(
            "verification of {} did not finish within {}: the decision itself overran; this is a sealgate bug, please report it",
            resource.display_name(),
            format_duration(budget)
        );
        tracing::error!(error = %message, "decision overran the budget");
        let response = response.deny(message);
        return Answered::without(response, NoWork::Overran);
    };
    let decision = &verdict.decision;
    let mut response = response.with_warnings(&decision.warnings);
    if let Some(why) = unknown_labels
        && policies.policies.iter().any(Policy::uses_namespace_labels)
    {
        response = response.with_warnings(&[why]);
    }
    if decision.allowed {
        if webhook == Webhook::Mutate {
            match checked_patch(&decision.patch, &resource.object) {
                Ok(patch) => response = response.with_patch(&patch),
                Err(e) => {
                    // Never expected: the engine builds its patch from this object. A patch
                    // that does not apply is not sent; the review could not be evaluated.
                    let message = format!(
                        "the JSON patch sealgate computed for {} does not apply to the object ({e}), so it is not sent and the review could not be evaluated; this is a sealgate bug, please report it",
                        resource.display_name()
                    );
                    tracing::error!(error = %message, "refused a JSON patch that does not apply");
                    let response = AdmissionResponse::allow(&request.uid);
                    let response = if patch_failure_blocks(decision, &policies.policies) {
                        response.deny(message)
                    } else {
                        response
                            .with_warnings(&decision.warnings)
                            .with_warnings(&[message])
                    };
                    return Answered::without(response, NoWork::InvalidPatch);
                }
            }
        }
    } else {
        response = response.deny(decision.message.clone());
    }
    Answered::Evaluated {
        response,
        resource,
        verdict,
    }
}

/// Why the engine's patch is not sent.
#[derive(Debug, thiserror::Error)]
enum PatchRefused {
    /// An element is not a JSON Patch operation.
    #[error("patch operation {index} is not a JSON Patch operation: {detail}")]
    NotAnOperation { index: usize, detail: String },
    /// The operations do not apply to the object.
    #[error("{0}")]
    DoesNotApply(#[from] json_patch::PatchError),
}

/// `ops` (the engine's patch) as a typed JSON Patch, once it is known to apply to `object`
/// (tried on a copy).
fn checked_patch(ops: &[Value], object: &Value) -> Result<json_patch::Patch, PatchRefused> {
    let patch = ops
        .iter()
        .enumerate()
        .map(|(index, op)| {
            json_patch::PatchOperation::deserialize(op).map_err(|e| PatchRefused::NotAnOperation {
                index,
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !patch.is_empty() && !applies_without_copy(&patch, object) {
        // Tried on a copy: either the patch is not of the engine's shape, or it does not apply
        // and json-patch names the operation and path.
        let mut copy = object.clone();
        json_patch::patch_unsafe(&mut copy, &patch)?;
    }
    Ok(json_patch::Patch(patch))
}

/// Whether `patch` certainly applies to `object`, decided without copying the object, for
/// patches of the engine's shape: `add` operations under `/metadata/` (the verify-images
/// annotation) and `replace` operations of a string elsewhere (the pinned images), no replaced
/// path inside another. Such adds cannot create or remove a replace target, so a replace
/// applies when its target exists, and an add when its parent exists as an object in the
/// object or was added as one before it. `false` means "not known": try it on a copy.
fn applies_without_copy(patch: &[json_patch::PatchOperation], object: &Value) -> bool {
    use json_patch::PatchOperation;
    const MOST: usize = 64;
    if patch.len() > MOST {
        return false;
    }
    // Paths added so far, with whether the value put there is an object.
    let mut added: Vec<(&str, bool)> = Vec::new();
    let mut replaced: Vec<&str> = Vec::new();
    let within = |inner: &str, outer: &str| {
        inner == outer || (inner.starts_with(outer) && inner.as_bytes()[outer.len()] == b'/')
    };
    for op in patch {
        match op {
            PatchOperation::Add(add) => {
                let path = add.path.as_str();
                if path.strip_prefix("/metadata/").is_none_or(str::is_empty) {
                    return false;
                }
                let Some((parent, _)) = path.rsplit_once('/') else {
                    return false;
                };
                // The latest add at or above the parent decides what the parent is now.
                let parent_is_object = match added.iter().rev().find(|(p, _)| within(parent, p)) {
                    Some((p, is_object)) => *p == parent && *is_object,
                    None => object.pointer(parent).is_some_and(Value::is_object),
                };
                if !parent_is_object {
                    return false;
                }
                added.push((path, add.value.is_object()));
            }
            PatchOperation::Replace(replace) => {
                let path = replace.path.as_str();
                if path.starts_with("/metadata") || !replace.value.is_string() {
                    return false;
                }
                if object.pointer(path).is_none() {
                    return false;
                }
                replaced.push(path);
            }
            _ => return false,
        }
    }
    // A replace inside another replaced value would target what the first one wrote.
    !replaced
        .iter()
        .any(|a| replaced.iter().any(|b| a != b && within(b, a)))
}

/// Whether a review whose patch cannot be sent is denied: when a rule that checked images
/// (whose pins and annotation the patch carries) blocks on errors (Enforce with `failurePolicy:
/// Fail`; a policy no longer found counts as blocking).
fn patch_failure_blocks(decision: &Decision, policies: &[Policy]) -> bool {
    decision
        .results
        .iter()
        .filter(|r| !r.images.is_empty() && r.action == FailureAction::Enforce)
        .any(|r| {
            policies
                .iter()
                .find(|p| p.qualified_name() == r.policy)
                .is_none_or(|p| p.failure_policy == FailurePolicy::Fail)
        })
}

/// Why a request was answered without evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoWork {
    UnknownOperation,
    RunsNoImage,
    SubresourceRunsNoImage,
    InvalidObject,
    NothingInForce,
    Overran,
    InvalidPatch,
}

impl NoWork {
    /// What the log says when the response carries no message.
    fn words(self) -> &'static str {
        match self {
            NoWork::UnknownOperation => "unknown operation",
            NoWork::RunsNoImage => "runs no image",
            NoWork::SubresourceRunsNoImage => "subresource runs no new image",
            NoWork::InvalidObject => "invalid object",
            NoWork::NothingInForce => "no policy in force",
            NoWork::Overran => "overran",
            NoWork::InvalidPatch => "invalid patch",
        }
    }

    /// The kind, as the audit trail's `cause` records it.
    fn as_str(self) -> &'static str {
        match self {
            NoWork::UnknownOperation => "invalid_request",
            NoWork::RunsNoImage | NoWork::SubresourceRunsNoImage => "runs_no_image",
            NoWork::InvalidObject => "invalid_object",
            NoWork::NothingInForce => "no_policy_in_force",
            NoWork::Overran => "overran",
            NoWork::InvalidPatch => "invalid_patch",
        }
    }
}

/// Metrics and a log line for a request answered without evaluation.
fn finish_without_work(
    state: &AppState,
    webhook: Webhook,
    request: &AdmissionRequest,
    response: &AdmissionResponse,
    took: Duration,
    why: NoWork,
) -> Commit {
    state.metrics().admission(
        webhook.as_str(),
        &request.operation,
        &request.kind.kind,
        response.allowed,
        took,
    );
    let reason = response
        .status
        .as_ref()
        .map_or_else(|| why.words().to_string(), |s| s.message.clone());
    // A refusal is a decision worth keeping even without an image: one `error` record.
    let mut commit = Commit::done();
    if !response.allowed
        && let Some(audit) = state.audit()
    {
        let fields = RequestFields {
            time_unix_ms: now_unix_ms(),
            uid: &request.uid,
            dry_run: request.is_dry_run(),
            operation: &request.operation,
            namespace: request.namespace.as_deref().unwrap_or_default(),
            kind: &request.kind.kind,
            name: request.name.as_deref().unwrap_or_default(),
            allowed: false,
            duration_ms: millis(took),
        };
        commit = audit.record_request(fields, 1, |row| {
            row.check(&Check {
                image: "",
                digest: None,
                policy: "",
                rule: "",
                result: Status::Error.as_str(),
                reason: &reason,
                signer: None,
                cause: Some(why.as_str()),
            });
        });
        state.metrics().set_audit_dropped(audit.dropped());
    }
    fill_review_span(response.allowed, took);
    tracing::info!(
        name = request.name.as_deref().unwrap_or_default(),
        allowed = response.allowed,
        dry_run = request.is_dry_run(),
        reasons = %reason,
        "decision"
    );
    commit
}

/// Audit records, metrics and the log line of an evaluated request.
fn record(
    state: &AppState,
    webhook: Webhook,
    request: &AdmissionRequest,
    resource: &Resource,
    verdict: &Verdict,
    took: Duration,
) -> Commit {
    let decision = &verdict.decision;
    let metrics = state.metrics();
    metrics.admission(
        webhook.as_str(),
        &request.operation,
        &resource.kind,
        decision.allowed,
        took,
    );
    if verdict.timed_out {
        metrics.deadline_exceeded(webhook.as_str());
    }
    for r in &decision.results {
        metrics.policy_result(&r.policy, &r.rule, &r.status.to_string());
        for i in &r.images {
            metrics.image_check(i.status, i.reason);
        }
    }
    for _ in &decision.uncovered {
        metrics.image_not_covered();
    }
    // One audit record per image per rule, and one per image no rule covers.
    let images: usize = decision
        .results
        .iter()
        .map(|r| r.images.len())
        .sum::<usize>()
        + decision.uncovered.len();
    let mut commit = Commit::done();
    if let Some(audit) = state.audit() {
        let namespace = resource.namespace.as_deref().unwrap_or_default();
        let fields = RequestFields {
            time_unix_ms: now_unix_ms(),
            uid: &request.uid,
            dry_run: request.is_dry_run(),
            operation: &request.operation,
            namespace,
            kind: &resource.kind,
            name: &resource.name,
            allowed: decision.allowed,
            duration_ms: millis(took),
        };
        commit = audit.record_request(fields, images, |row| add_checks(row, decision));
        metrics.set_audit_dropped(audit.dropped());
    }
    let reasons = if decision.allowed {
        decision.warnings.join("; ")
    } else {
        decision.message.clone()
    };
    fill_review_span(decision.allowed, took);
    tracing::info!(
        name = resource.name.as_str(),
        allowed = decision.allowed,
        dry_run = request.is_dry_run(),
        checks = images as u64,
        fetches_started = verdict.started as u64,
        fetches_shared = verdict.shared as u64,
        cache_hits = verdict.cache_hits as u64,
        timed_out = verdict.timed_out,
        reasons = %reasons,
        "decision"
    );
    commit
}

/// Hands an admitted request's results to the report sink, if there is one and the request is
/// reported ([`reports::is_reported`]).
fn report(
    state: &AppState,
    webhook: Webhook,
    request: &AdmissionRequest,
    resource: &Resource,
    decision: &Decision,
) {
    let Some(sink) = state.reports() else {
        return;
    };
    if !reports::is_reported(webhook, request, decision) {
        return;
    }
    let results = reports::results_of(
        ReportedResource::of(request, resource),
        decision,
        &state.policies().policies,
        Process::AdmissionReview,
        unix_seconds(SystemClock.now()),
    );
    sink.record(results);
}

/// One check per checked image per rule, and one per image no rule covers, added to the
/// request's row as they are, with no intermediate records.
fn add_checks(row: &mut DecisionBuilder, decision: &Decision) {
    for r in &decision.results {
        for i in &r.images {
            let digest = i.digest.as_ref().map(ToString::to_string);
            let signer = (!i.signers.is_empty()).then(|| i.signers.join(", "));
            row.check(&Check {
                image: &i.image,
                digest: digest.as_deref(),
                policy: &r.policy,
                rule: &r.rule,
                result: i.status.as_str(),
                reason: &i.message,
                signer: signer.as_deref(),
                cause: Some(i.reason.as_str()),
            });
        }
    }
    for image in &decision.uncovered {
        let digest = ImageRef::parse(image)
            .ok()
            .and_then(|r| r.digest().map(ToString::to_string));
        row.check(&Check {
            image,
            digest: digest.as_deref(),
            policy: "",
            rule: "",
            result: "none",
            reason: "not covered by any verifyImages rule",
            signer: None,
            cause: Some("not_covered"),
        });
    }
}

/// Records the end of the review in its span (once, just before the decision line).
fn fill_review_span(allowed: bool, took: Duration) {
    let span = tracing::Span::current();
    span.record("decision", if allowed { "allowed" } else { "denied" });
    span.record("duration_ms", millis(took));
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"containers": [{"name": "web", "image": "registry.company.com/web:v1"}]}
        })
    }

    #[test]
    fn a_patch_of_the_engines_shape_applies_and_is_typed() {
        let ops = [
            json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
            json!({"op": "add", "path": "/metadata/annotations/kyverno.io~1verify-images", "value": "{}"}),
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": "registry.company.com/web:v1@sha256:00"}),
        ];
        let patch = checked_patch(&ops, &pod()).unwrap();
        assert_eq!(patch.0.len(), 3);
        assert_eq!(serde_json::to_value(&patch).unwrap(), json!(ops));
        assert!(checked_patch(&[], &pod()).unwrap().0.is_empty());
    }

    #[test]
    fn the_engines_patches_are_known_to_apply_without_a_copy_and_others_are_tried() {
        let typed = |ops: Vec<Value>| -> Vec<json_patch::PatchOperation> {
            ops.into_iter()
                .map(|op| serde_json::from_value(op).unwrap())
                .collect()
        };
        let engine = typed(vec![
            json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
            json!({"op": "add", "path": "/metadata/annotations/kyverno.io~1verify-images", "value": "{}"}),
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": "x@sha256:00"}),
        ]);
        assert!(applies_without_copy(&engine, &pod()));
        // Each of these is decided on a copy instead (and json-patch says whether it applies).
        let not_known = [
            // The replaced image does not exist.
            vec![json!({"op": "replace", "path": "/spec/containers/3/image", "value": "x"})],
            // The annotation's parent is neither in the object nor added before it.
            vec![json!({"op": "add", "path": "/metadata/annotations/a", "value": "v"})],
            // Not the engine's shape.
            vec![json!({"op": "remove", "path": "/spec/containers/0/image"})],
            vec![json!({"op": "add", "path": "/spec/x", "value": "v"})],
            vec![json!({"op": "replace", "path": "/metadata/name", "value": "v"})],
            vec![json!({"op": "replace", "path": "/spec/containers/0", "value": {}})],
            // An add that replaced the object it would have landed in.
            vec![
                json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
                json!({"op": "add", "path": "/metadata/annotations", "value": "s"}),
                json!({"op": "add", "path": "/metadata/annotations/a", "value": "v"}),
            ],
            vec![
                json!({"op": "add", "path": "/metadata/labels", "value": "s"}),
                json!({"op": "add", "path": "/metadata/labels/a", "value": "v"}),
            ],
        ];
        for ops in not_known {
            assert!(
                !applies_without_copy(&typed(ops.clone()), &pod()),
                "{ops:?}"
            );
        }
        // Wherever the shortcut says yes, json-patch agrees on a copy.
        let mut copy = pod();
        json_patch::patch_unsafe(&mut copy, &engine).unwrap();
    }

    #[test]
    fn a_patch_that_does_not_apply_is_refused_naming_the_operation_and_path() {
        let ops = [
            json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
            json!({"op": "replace", "path": "/spec/containers/3/image", "value": "x"}),
        ];
        let e = checked_patch(&ops, &pod()).unwrap_err().to_string();
        assert!(e.contains("operation '/1'"), "{e}");
        assert!(e.contains("/spec/containers/3/image"), "{e}");

        let e = checked_patch(&[json!({"op": "frobnicate", "path": "/x"})], &pod())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("patch operation 0 is not a JSON Patch operation"),
            "{e}"
        );
    }
}
