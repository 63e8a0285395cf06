//! Background scans: existing resources evaluated under the policies with `spec.background:
//! true`, through the same evaluation, caches and registry limits as admission requests, for
//! PolicyReports (Kyverno's background scan: `VerifyAndPatchImages` on a copy of the resource
//! with both verification annotations removed, as a CREATE).
//!
//! The server only evaluates; what to scan and when (listing the cluster's Pods and pod
//! controllers, on a policy change and at an interval) is the cluster connection's
//! (`sealgate-kube`), which also bounds how many evaluations are in flight so admissions are
//! never starved.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use sealgate_core::engine::{Mode, Resource, VERIFY_IMAGES_ANNOTATION};
use sealgate_core::policy::{Operation, Policy};
use sealgate_core::timestamp::{Clock as _, unix_seconds};
use sealgate_registry::driver::SystemClock;
use serde_json::Value;

use crate::reports::{self, Process, ReportedResource, ResourceResults};
use crate::sources::NamespaceLabels;
use crate::state::AppState;

/// Kyverno's older verification annotation, removed with [`VERIFY_IMAGES_ANNOTATION`] before
/// a scan (so a resource is verified afresh, not on the strength of an annotation).
pub const IMAGE_VERIFICATION_ANNOTATION: &str = "kyverno.io/image-verification";

/// Evaluates existing resources for reports, through the webhook's state.
#[derive(Debug, Clone)]
pub struct BackgroundEvaluator {
    state: AppState,
}

/// One scan's policies: those with `background: true` in force when it began.
#[derive(Debug, Clone)]
pub struct ScanRound {
    state: AppState,
    policies: Arc<Vec<Policy>>,
}

impl BackgroundEvaluator {
    /// An evaluator over the webhook's policies, caches and limits.
    pub fn new(state: AppState) -> BackgroundEvaluator {
        BackgroundEvaluator { state }
    }

    /// A round over the background policies in force now.
    pub fn round(&self) -> ScanRound {
        let set = self.state.policies();
        let policies = set
            .policies
            .iter()
            .filter(|p| p.background)
            .cloned()
            .collect();
        ScanRound {
            state: self.state.clone(),
            policies: Arc::new(policies),
        }
    }

    /// What the background policies in force are, as a number that changes when any of them
    /// changes (or one is added or removed), and whether there is any; a scan is due when it
    /// changes.
    pub fn background_fingerprint(&self) -> (u64, bool) {
        let set = self.state.policies();
        let mut hasher = DefaultHasher::new();
        let mut any = false;
        for p in set.policies.iter().filter(|p| p.background) {
            // The compiled policy has no Eq; its Debug form holds every field.
            format!("{p:?}").hash(&mut hasher);
            any = true;
        }
        (hasher.finish(), any)
    }
}

impl ScanRound {
    /// Whether the round has any policy to evaluate.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// How many policies it evaluates.
    pub fn policies(&self) -> usize {
        self.policies.len()
    }

    /// The results of `object` (an existing resource, served as `plural`) under the round's
    /// policies: `None` when it is not an object sealgate can review or no rule checked an
    /// image. Waits for registries at most the webhook's budget.
    pub async fn evaluate(&self, mut object: Value, plural: &str) -> Option<ResourceResults> {
        if let Some(annotations) = object
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(VERIFY_IMAGES_ANNOTATION);
            annotations.remove(IMAGE_VERIFICATION_ANNOTATION);
        }
        let mut resource =
            Resource::from_object(object, Operation::Create, None, Default::default()).ok()?;
        if let Some(namespace) = resource.namespace.clone()
            && let NamespaceLabels::Known(labels) = self.state.namespace_labels(&namespace)
        {
            resource.namespace_labels = labels;
            resource.namespace_labels_known = true;
        }
        let fetcher = self.state.fetcher();
        let budget = fetcher.budget();
        let keyring = self.state.keyring_for(&resource, &self.policies);
        let verdict = fetcher
            .decide_with(
                &self.policies,
                &resource,
                Mode::Mutate,
                budget,
                budget,
                keyring,
            )
            .await;
        if verdict.decision.results.is_empty() {
            return None;
        }
        let text = |pointer: &str| {
            resource
                .object
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let reported = ReportedResource {
            api_version: text("/apiVersion").unwrap_or_default(),
            kind: resource.kind.clone(),
            plural: plural.to_string(),
            namespace: resource.namespace.clone(),
            name: resource.name.clone(),
            uid: text("/metadata/uid"),
        };
        Some(reports::results_of(
            reported,
            &verdict.decision,
            &self.policies,
            Process::BackgroundScan,
            unix_seconds(SystemClock.now()),
        ))
    }
}
