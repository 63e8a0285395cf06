//! One AdmissionReview, from request to response: the decision (or the reason there is no work),
//! then its audit records, metrics and log line.
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
use sealgate_core::policy::Operation;
use serde_json::json;

use crate::admission::{AdmissionRequest, AdmissionResponse};
use crate::audit::{Check, Commit, DecisionBuilder, RequestFields, now_unix_ms};
use crate::config::format_duration;
use crate::fetcher::Verdict;
use crate::policies::NothingInForce;
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
pub async fn review(
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
            (response, commit)
        }
        Answered::WithoutWork { response, why } => {
            let commit = finish_without_work(state, webhook, &request, &response, took, why);
            (response, commit)
        }
    };
    if let Err(e) = commit.wait(AUDIT_COMMIT_BOUND).await {
        state.log().warn(
            "answered without knowing the decision's audit row is written",
            &[("uid", json!(request.uid)), ("error", json!(e.to_string()))],
        );
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
    let resource = match request.take_resource(operation) {
        Ok(r) => r,
        Err(why) => {
            let response = response.invalid(why);
            return Answered::without(response, NoWork::InvalidObject);
        }
    };

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
    let fetcher = state.fetcher();
    let budget = fetcher.budget();
    let mode = match webhook {
        Webhook::Mutate => Mode::Mutate,
        Webhook::Validate => Mode::Validate,
    };
    let remaining = budget.saturating_sub(received.elapsed());
    let deciding = fetcher.decide(&policies.policies, &resource, mode, remaining, budget);
    let Ok(verdict) = tokio::time::timeout(remaining + OVERRUN, deciding).await else {
        // Never expected: waiting is bounded inside the driver. Fail closed and say so.
        let message = format!(
            "verification of {} did not finish within {}: the decision itself overran; this is a sealgate bug, please report it",
            resource.display_name(),
            format_duration(budget)
        );
        state.log().error(
            "decision overran the budget",
            &[("uid", json!(request.uid)), ("error", json!(message))],
        );
        let response = response.deny(message);
        return Answered::without(response, NoWork::Overran);
    };
    let decision = &verdict.decision;
    let mut response = response.with_warnings(&decision.warnings);
    if decision.allowed {
        if webhook == Webhook::Mutate {
            response = response.with_patch(&decision.patch);
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

/// Why a request was answered without evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoWork {
    UnknownOperation,
    RunsNoImage,
    SubresourceRunsNoImage,
    InvalidObject,
    NothingInForce,
    Overran,
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
    state.log().info(
        "decision",
        &[
            ("uid", json!(request.uid)),
            ("webhook", json!(webhook.as_str())),
            ("operation", json!(request.operation)),
            ("kind", json!(request.kind.kind)),
            (
                "namespace",
                json!(request.namespace.clone().unwrap_or_default()),
            ),
            ("name", json!(request.name.clone().unwrap_or_default())),
            ("allowed", json!(response.allowed)),
            ("dry_run", json!(request.is_dry_run())),
            ("duration_ms", json!(millis(took))),
            ("reasons", json!(reason)),
        ],
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
    state.log().info(
        "decision",
        &[
            ("uid", json!(request.uid)),
            ("webhook", json!(webhook.as_str())),
            ("operation", json!(request.operation)),
            ("kind", json!(resource.kind)),
            (
                "namespace",
                json!(resource.namespace.clone().unwrap_or_default()),
            ),
            ("name", json!(resource.name)),
            ("allowed", json!(decision.allowed)),
            ("dry_run", json!(request.is_dry_run())),
            ("duration_ms", json!(millis(took))),
            ("checks", json!(images)),
            ("fetches_started", json!(verdict.started)),
            ("fetches_shared", json!(verdict.shared)),
            ("cache_hits", json!(verdict.cache_hits)),
            ("timed_out", json!(verdict.timed_out)),
            ("reasons", json!(reasons)),
        ],
    );
    commit
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

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}
