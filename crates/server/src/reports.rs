//! Policy reports: what the webhook decided about one resource, as plain data, handed to a
//! [`ReportSink`] (in a cluster, `sealgate-kube`'s PolicyReport writer) once per admitted
//! request. The server never waits for the sink: [`ReportSink::record`] must return at once.
//!
//! Which requests are reported: only those `/validate` admits, not dry runs, CREATE or UPDATE
//! (an ephemeral container's Pod included), with at least one rule that checked an image. The
//! validating webhook runs after every mutation, on the object as it will be stored, and the API
//! server has already given that object its `metadata.uid` (and its name, for a
//! `generateName`), so its results describe the stored object and name its owner; `/mutate`,
//! called first and possibly again after other webhooks mutate, is not reported (a request is
//! reported once). A request `/validate` refuses is not reported: nothing is stored to own the
//! report (Kyverno's admission reports are likewise for admitted resources).
//!
//! One [`RuleReport`] per rule, as Kyverno's reports hold one result per policy, rule and
//! resource; its images are kept beside it. The results come from the decision the webhook has
//! just made ([`results_of`]): nothing is evaluated again.

use std::fmt::Debug;

use sealgate_core::engine::{Decision, Resource, RuleResult, Status};
use sealgate_core::policy::Policy;
use serde_json::Value;

use crate::admission::AdmissionRequest;

/// The policy annotation that sets a result's category.
pub const CATEGORY_ANNOTATION: &str = "policies.kyverno.io/category";
/// The policy annotation that sets a result's severity.
pub const SEVERITY_ANNOTATION: &str = "policies.kyverno.io/severity";
/// The policy annotation that, set to `"false"`, reports a failure as `warn` (not scored).
pub const SCORED_ANNOTATION: &str = "policies.kyverno.io/scored";

/// The severities a PolicyReport result may carry.
pub const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

/// Takes what the webhook decided about resources; implemented by a cluster's report writer.
pub trait ReportSink: Send + Sync + Debug {
    /// Records one resource's results. Must not block (queue, drop or merge instead): it is
    /// called on the admission path, after the answer is decided.
    fn record(&self, results: ResourceResults);
}

/// A result, as PolicyReports spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportStatus {
    /// The rule's images verified.
    Pass,
    /// An image did not verify.
    Fail,
    /// An image did not verify under a policy that is not scored (`policies.kyverno.io/scored:
    /// "false"`).
    Warn,
    /// The rule could not be evaluated.
    Error,
    /// The rule checked nothing (`skipImageReferences`).
    Skip,
}

impl ReportStatus {
    /// `pass`, `fail`, `warn`, `error` or `skip`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Pass => "pass",
            ReportStatus::Fail => "fail",
            ReportStatus::Warn => "warn",
            ReportStatus::Error => "error",
            ReportStatus::Skip => "skip",
        }
    }

    /// The status of an engine outcome; a failure is `warn` when the policy is not scored.
    pub fn of(status: Status, scored: bool) -> ReportStatus {
        match status {
            Status::Pass => ReportStatus::Pass,
            Status::Fail if scored => ReportStatus::Fail,
            Status::Fail => ReportStatus::Warn,
            Status::Error => ReportStatus::Error,
            Status::Skip => ReportStatus::Skip,
        }
    }
}

/// Where a result came from (a report result's `properties.process`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// An admission request.
    AdmissionReview,
    /// A background scan of existing resources.
    BackgroundScan,
}

impl Process {
    /// `admission review` or `background scan`, as Kyverno writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Process::AdmissionReview => "admission review",
            Process::BackgroundScan => "background scan",
        }
    }
}

/// The resource the results are about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportedResource {
    /// `apiVersion`, e.g. `v1` or `apps/v1`.
    pub api_version: String,
    /// `kind`, e.g. `Pod`.
    pub kind: String,
    /// The resource (plural) the API serves it as, e.g. `pods`; empty when not known.
    pub plural: String,
    /// The namespace; `None` for a cluster-scoped resource.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// `metadata.uid`, when the object carries it (it does at `/validate`).
    pub uid: Option<String>,
}

impl ReportedResource {
    /// The resource of an admission request, from the object under review (`resource`) and
    /// the request's group, version and resource.
    pub fn of(request: &AdmissionRequest, resource: &Resource) -> ReportedResource {
        let text = |pointer: &str| {
            resource
                .object
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let api_version = text("/apiVersion").unwrap_or_else(|| {
            let kind = &request.kind;
            if kind.group.is_empty() {
                kind.version.clone()
            } else {
                format!("{}/{}", kind.group, kind.version)
            }
        });
        ReportedResource {
            api_version,
            kind: resource.kind.clone(),
            plural: request.resource.resource.clone(),
            namespace: resource.namespace.clone(),
            name: text("/metadata/name").unwrap_or_else(|| resource.name.clone()),
            uid: text("/metadata/uid"),
        }
    }
}

/// One image a rule checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReport {
    /// The normalised image.
    pub image: String,
    /// Its result.
    pub result: ReportStatus,
    /// Why, in words.
    pub message: String,
}

/// One rule's result for the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleReport {
    /// The policy (`namespace/name` for a namespaced Policy).
    pub policy: String,
    /// The rule (`autogen-…` for a pod controller).
    pub rule: String,
    /// The rule's result (its worst image).
    pub result: ReportStatus,
    /// The rule's message.
    pub message: String,
    /// Whether the policy is scored (`policies.kyverno.io/scored` is not `"false"`).
    pub scored: bool,
    /// `policies.kyverno.io/category`, if set.
    pub category: Option<String>,
    /// `policies.kyverno.io/severity`, if set.
    pub severity: Option<String>,
    /// Each image the rule checked.
    pub images: Vec<ImageReport>,
}

/// Everything decided about one resource at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceResults {
    /// The resource.
    pub resource: ReportedResource,
    /// One per rule that checked an image.
    pub rules: Vec<RuleReport>,
    /// When it was decided, in seconds since the Unix epoch.
    pub time_unix_s: i64,
    /// Where the results came from.
    pub process: Process,
}

/// The results of `decision` about `resource`, decided at `time_unix_s` under `policies`
/// (read for their category, severity and scored annotations; a policy no longer among them
/// counts as scored, without category or severity).
pub fn results_of(
    resource: ReportedResource,
    decision: &Decision,
    policies: &[Policy],
    process: Process,
    time_unix_s: i64,
) -> ResourceResults {
    let rules = decision
        .results
        .iter()
        .map(|r| rule_report(r, policies.iter().find(|p| p.qualified_name() == r.policy)))
        .collect();
    ResourceResults {
        resource,
        rules,
        time_unix_s,
        process,
    }
}

fn rule_report(result: &RuleResult, policy: Option<&Policy>) -> RuleReport {
    let annotation = |key: &str| {
        policy
            .and_then(|p| p.annotations.get(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let scored = annotation(SCORED_ANNOTATION).is_none_or(|v| v != "false");
    RuleReport {
        policy: result.policy.clone(),
        rule: result.rule.clone(),
        result: ReportStatus::of(result.status, scored),
        message: result.message.clone(),
        scored,
        category: annotation(CATEGORY_ANNOTATION),
        // The report's schema allows these only; another word is left out, not sent.
        severity: annotation(SEVERITY_ANNOTATION)
            .map(|s| s.to_ascii_lowercase())
            .filter(|s| SEVERITIES.contains(&s.as_str())),
        images: result
            .images
            .iter()
            .map(|i| ImageReport {
                image: i.image.clone(),
                result: ReportStatus::of(i.status, scored),
                message: i.message.clone(),
            })
            .collect(),
    }
}

/// Whether a request answered `allowed` by `webhook` with `decision` is reported: see the
/// module's documentation.
pub fn is_reported(
    webhook: crate::review::Webhook,
    request: &AdmissionRequest,
    decision: &Decision,
) -> bool {
    webhook == crate::review::Webhook::Validate
        && decision.allowed
        && !request.is_dry_run()
        && matches!(request.operation.as_str(), "CREATE" | "UPDATE")
        && !decision.results.is_empty()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sealgate_core::engine::{ImageResult, Reason};
    use sealgate_core::policy::{FailureAction, Operation};
    use serde_json::json;

    use super::*;
    use crate::review::Webhook;

    fn request(operation: &str, dry_run: bool) -> AdmissionRequest {
        serde_json::from_value(json!({
            "uid": "u1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a",
            "operation": operation,
            "dryRun": dry_run,
        }))
        .unwrap()
    }

    fn pod(uid: Option<&str>) -> Resource {
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "team-a"},
            "spec": {"containers": [{"name": "web", "image": "registry.company.com/web:v1"}]}
        });
        if let Some(uid) = uid {
            object["metadata"]["uid"] = json!(uid);
        }
        Resource::from_object(object, Operation::Create, None, BTreeMap::new()).unwrap()
    }

    fn rule(policy: &str, status: Status) -> RuleResult {
        RuleResult {
            policy: policy.into(),
            rule: "check-signatures".into(),
            status,
            action: FailureAction::Audit,
            message: format!("{status} message"),
            images: vec![ImageResult {
                image: "registry.company.com/web:v1".into(),
                pointer: "/spec/containers/0/image".into(),
                entry: 0,
                digest: None,
                status,
                reason: Reason::Verified,
                message: format!("{status} image"),
                signers: Vec::new(),
                covered_as: None,
            }],
        }
    }

    fn decision(allowed: bool, results: Vec<RuleResult>) -> Decision {
        Decision {
            allowed,
            message: String::new(),
            warnings: Vec::new(),
            results,
            patch: Vec::new(),
            uncovered: Vec::new(),
        }
    }

    #[test]
    fn the_resource_is_named_by_the_object_with_its_uid_and_the_requests_resource() {
        let r = ReportedResource::of(&request("CREATE", false), &pod(Some("0a-1b")));
        assert_eq!(
            r,
            ReportedResource {
                api_version: "v1".into(),
                kind: "Pod".into(),
                plural: "pods".into(),
                namespace: Some("team-a".into()),
                name: "web".into(),
                uid: Some("0a-1b".into()),
            }
        );
        assert_eq!(
            ReportedResource::of(&request("CREATE", false), &pod(None)).uid,
            None
        );
    }

    #[test]
    fn one_result_per_rule_with_its_images_and_the_policys_annotations() {
        let mut policy = sealgate_core::policy::load("p.yaml", POLICY)
            .policies
            .remove(0);
        policy
            .annotations
            .insert(SEVERITY_ANNOTATION.into(), "High".into());
        policy
            .annotations
            .insert(CATEGORY_ANNOTATION.into(), "Supply chain".into());
        let d = decision(
            true,
            vec![rule("check", Status::Fail), rule("gone", Status::Pass)],
        );
        let resource = ReportedResource::of(&request("CREATE", false), &pod(Some("u")));
        let results = results_of(
            resource,
            &d,
            std::slice::from_ref(&policy),
            Process::AdmissionReview,
            1_700_000_000,
        );
        assert_eq!(results.rules.len(), 2);
        let first = &results.rules[0];
        assert_eq!(
            (first.policy.as_str(), first.rule.as_str(), first.result),
            ("check", "check-signatures", ReportStatus::Fail)
        );
        assert_eq!(first.message, "fail message");
        assert_eq!(first.severity.as_deref(), Some("high"));
        assert_eq!(first.category.as_deref(), Some("Supply chain"));
        assert_eq!(first.images[0].message, "fail image");
        // A policy no longer in force: scored, no annotations.
        let second = &results.rules[1];
        assert_eq!(second.result, ReportStatus::Pass);
        assert!(second.scored && second.severity.is_none());
        assert_eq!(results.time_unix_s, 1_700_000_000);

        // A severity the report's schema does not allow is left out.
        policy
            .annotations
            .insert(SEVERITY_ANNOTATION.into(), "moderate".into());
        let d2 = results_of(
            results.resource.clone(),
            &d,
            std::slice::from_ref(&policy),
            Process::AdmissionReview,
            0,
        );
        assert_eq!(d2.rules[0].severity, None);

        // Not scored: a failure is a warning.
        policy
            .annotations
            .insert(SCORED_ANNOTATION.into(), "false".into());
        let results = results_of(results.resource, &d, &[policy], Process::AdmissionReview, 0);
        assert_eq!(results.rules[0].result, ReportStatus::Warn);
        assert!(!results.rules[0].scored);
    }

    #[test]
    fn only_admitted_final_objects_are_reported() {
        let checked = decision(true, vec![rule("check", Status::Pass)]);
        let create = request("CREATE", false);
        assert!(is_reported(Webhook::Validate, &create, &checked));
        assert!(is_reported(
            Webhook::Validate,
            &request("UPDATE", false),
            &checked
        ));
        // Once per request: the mutating call is not reported.
        assert!(!is_reported(Webhook::Mutate, &create, &checked));
        assert!(!is_reported(
            Webhook::Validate,
            &request("CREATE", true),
            &checked
        ));
        assert!(!is_reported(
            Webhook::Validate,
            &request("DELETE", false),
            &checked
        ));
        let denied = decision(false, vec![rule("check", Status::Fail)]);
        assert!(!is_reported(Webhook::Validate, &create, &denied));
        assert!(!is_reported(
            Webhook::Validate,
            &create,
            &decision(true, Vec::new())
        ));
    }

    const POLICY: &str = "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check
spec:
  rules:
    - name: check-signatures
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences: [\"registry.company.com/*\"]
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                -----BEGIN PUBLIC KEY-----
                MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM
                5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==
                -----END PUBLIC KEY-----
";
}
