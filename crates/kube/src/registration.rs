//! The webhook's registration: a MutatingWebhookConfiguration (`/mutate`: verify and pin
//! digests) and a ValidatingWebhookConfiguration (`/validate`: check the final object), both
//! named `--webhook-name`, created or updated to match the policies in force, and deleted by
//! `sealgate uninstall`.
//!
//! Both cover Pods (and `pods/ephemeralcontainers`) and every pod controller, on CREATE and
//! UPDATE, outside kube-system and sealgate's own namespace; `sideEffects: None`,
//! `admissionReviewVersions: [v1]`, `reinvocationPolicy: IfNeeded` (mutating). `failurePolicy`
//! is `Fail` while any policy in force says `Fail` (Kyverno's default) and `Ignore` otherwise;
//! `timeoutSeconds` is the largest the policies ask for, else 10.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use sealgate_core::policy::{FailurePolicy, Policy};
use sealgate_server::policies::PolicySet;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::KubeError;
use crate::namespaces::NAME_LABEL;

/// The default `timeoutSeconds` (Kubernetes' own default).
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 10;
/// The default name of both configurations.
pub const DEFAULT_WEBHOOK_NAME: &str = "sealgate";

/// Where the API server reaches the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A URL (outside a cluster, for tests and development clusters): `URL/mutate`,
    /// `URL/validate`.
    Url(String),
    /// A Service in the cluster.
    Service {
        /// Its namespace (also excluded from the webhooks).
        namespace: String,
        /// Its name.
        name: String,
        /// Its port.
        port: u16,
    },
}

/// What to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The configurations' name.
    pub name: String,
    /// Where the webhook is.
    pub endpoint: Endpoint,
    /// The CA bundle (PEM) that verifies the webhook's serving certificate.
    pub ca_bundle: Vec<u8>,
}

/// `failurePolicy` and `timeoutSeconds` as the policies in force ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Derived {
    /// `Fail` or `Ignore`.
    pub failure_policy: FailurePolicy,
    /// Seconds, 1 to 30.
    pub timeout_seconds: u32,
}

/// What `policies` ask of the webhook configuration.
pub fn derive(policies: &[Policy]) -> Derived {
    let failure_policy = if policies
        .iter()
        .any(|p| p.failure_policy == FailurePolicy::Fail)
    {
        FailurePolicy::Fail
    } else {
        FailurePolicy::Ignore
    };
    let timeout_seconds = policies
        .iter()
        .filter_map(|p| p.webhook_timeout_seconds)
        .max()
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
        .clamp(1, 30);
    Derived {
        failure_policy,
        timeout_seconds,
    }
}

fn rules() -> Vec<RuleWithOperations> {
    let rule = |group: &str, version: &str, resources: &[&str]| RuleWithOperations {
        api_groups: Some(vec![group.to_string()]),
        api_versions: Some(vec![version.to_string()]),
        operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        scope: Some("Namespaced".into()),
    };
    vec![
        rule(
            "",
            "v1",
            &["pods", "pods/ephemeralcontainers", "replicationcontrollers"],
        ),
        rule(
            "apps",
            "v1",
            &["deployments", "replicasets", "statefulsets", "daemonsets"],
        ),
        rule("batch", "v1", &["jobs", "cronjobs"]),
    ]
}

impl Registration {
    fn client_config(&self, path: &str) -> WebhookClientConfig {
        let (url, service) = match &self.endpoint {
            Endpoint::Url(url) => (Some(format!("{}{path}", url.trim_end_matches('/'))), None),
            Endpoint::Service {
                namespace,
                name,
                port,
            } => (
                None,
                Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_string()),
                    port: Some(i32::from(*port)),
                }),
            ),
        };
        WebhookClientConfig {
            ca_bundle: Some(ByteString(self.ca_bundle.clone())),
            service,
            url,
        }
    }

    fn namespace_selector(&self) -> LabelSelector {
        let excluded = self.excluded_namespaces();
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: NAME_LABEL.to_string(),
                operator: "NotIn".into(),
                values: Some(excluded),
            }]),
            match_labels: None,
        }
    }

    fn metadata(&self) -> ObjectMeta {
        ObjectMeta {
            name: Some(self.name.clone()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_string(),
                    "sealgate".to_string(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        }
    }

    /// The MutatingWebhookConfiguration for `derived`.
    pub fn mutating(&self, derived: Derived) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: self.metadata(),
            webhooks: Some(vec![MutatingWebhook {
                admission_review_versions: vec!["v1".into()],
                client_config: self.client_config("/mutate"),
                failure_policy: Some(failure_policy(derived)),
                match_policy: Some("Equivalent".into()),
                name: format!("mutate.{}.sealgate.dev", self.name),
                namespace_selector: Some(self.namespace_selector()),
                reinvocation_policy: Some("IfNeeded".into()),
                rules: Some(rules()),
                side_effects: "None".into(),
                timeout_seconds: Some(derived.timeout_seconds as i32),
                ..MutatingWebhook::default()
            }]),
        }
    }

    /// The ValidatingWebhookConfiguration for `derived`.
    pub fn validating(&self, derived: Derived) -> ValidatingWebhookConfiguration {
        ValidatingWebhookConfiguration {
            metadata: self.metadata(),
            webhooks: Some(vec![ValidatingWebhook {
                admission_review_versions: vec!["v1".into()],
                client_config: self.client_config("/validate"),
                failure_policy: Some(failure_policy(derived)),
                match_policy: Some("Equivalent".into()),
                name: format!("validate.{}.sealgate.dev", self.name),
                namespace_selector: Some(self.namespace_selector()),
                rules: Some(rules()),
                side_effects: "None".into(),
                timeout_seconds: Some(derived.timeout_seconds as i32),
                ..ValidatingWebhook::default()
            }]),
        }
    }

    /// Creates or updates both configurations for `derived`.
    pub async fn apply(&self, client: &Client, derived: Derived) -> Result<(), KubeError> {
        self.apply_except(client, derived, Deleted::default()).await
    }

    /// While `held` (this replica holds the Lease, or there is no Lease), registers and keeps
    /// registering until `stop` resolves: again whenever the policies in force ask for another
    /// `failurePolicy` or `timeoutSeconds`, `bundle` changes (a certificate rotation), or
    /// someone edits a configuration away from what sealgate registered. A configuration
    /// someone deletes stays deleted (that is how an operator switches a webhook off in an
    /// emergency, and what `sealgate uninstall` does): it is logged, and registered again only
    /// when sealgate restarts or another replica takes the Lease over. A failed update is
    /// logged and retried after 30 s.
    pub async fn keep(
        mut self,
        client: Client,
        mut policies: tokio::sync::watch::Receiver<std::sync::Arc<PolicySet>>,
        mut bundle: tokio::sync::watch::Receiver<Vec<u8>>,
        mut held: tokio::sync::watch::Receiver<bool>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        use futures_util::StreamExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};
        tokio::pin!(stop);
        let fields = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let mut mutating_events = watcher(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            fields.clone(),
        )
        .default_backoff()
        .boxed();
        let mut validating_events = watcher(
            Api::<ValidatingWebhookConfiguration>::all(client.clone()),
            fields,
        )
        .default_backoff()
        .boxed();
        let mut applied: Option<(Derived, Vec<u8>)> = None;
        let mut failed = false;
        let mut deleted = Deleted::default();
        let mut was_held = false;
        let mut labels_checked = false;
        loop {
            let set = policies.borrow_and_update().clone();
            self.ca_bundle = bundle.borrow_and_update().clone();
            let is_held = *held.borrow_and_update();
            if is_held && !was_held {
                // A new holder registers afresh, deleted configurations included.
                applied = None;
                deleted = Deleted::default();
                labels_checked = false;
            }
            was_held = is_held;
            if is_held && !labels_checked {
                // Once per holding: a refusal is said once, not on every policy change.
                self.label_excluded_namespaces(&client).await;
                labels_checked = true;
            }
            if is_held && set.generation > 0 {
                let derived = derive(&set.policies);
                let want = (derived, self.ca_bundle.clone());
                if applied.as_ref() != Some(&want) {
                    match self.apply_except(&client, derived, deleted).await {
                        Ok(()) => {
                            applied = Some(want);
                            failed = false;
                        }
                        Err(e) => {
                            failed = true;
                            tracing::error!(error = %e, "webhook registration failed; retrying in 30 s")
                        }
                    }
                }
            }
            let retry = tokio::time::sleep(std::time::Duration::from_secs(30));
            tokio::select! {
                _ = &mut stop => return,
                changed = policies.changed() => if changed.is_err() { return },
                changed = bundle.changed() => if changed.is_err() { return },
                changed = held.changed() => if changed.is_err() { return },
                _ = retry, if failed => {}
                Some(event) = mutating_events.next() => {
                    if let Some((derived, _)) = applied.clone().filter(|_| is_held) {
                        let desired = self.mutating(derived);
                        if self.edited_or_deleted(event, &desired, "MutatingWebhookConfiguration", &mut deleted.mutating) {
                            applied = None;
                        }
                    }
                }
                Some(event) = validating_events.next() => {
                    if let Some((derived, _)) = applied.clone().filter(|_| is_held) {
                        let desired = self.validating(derived);
                        if self.edited_or_deleted(event, &desired, "ValidatingWebhookConfiguration", &mut deleted.validating) {
                            applied = None;
                        }
                    }
                }
            }
        }
    }

    /// Whether `event` shows the configuration edited away from `desired` (so it is applied
    /// again); a deletion is noted in `deleted` and logged.
    fn edited_or_deleted<K: Serialize + kube::Resource>(
        &self,
        event: Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
        desired: &K,
        kind: &str,
        deleted: &mut bool,
    ) -> bool {
        use kube::runtime::watcher::Event;
        match event {
            Ok(Event::Apply(existing) | Event::InitApply(existing)) => {
                let edited = !covers(
                    &serde_json::to_value(&existing).unwrap_or_default()["webhooks"],
                    &serde_json::to_value(desired).unwrap_or_default()["webhooks"],
                );
                if edited {
                    tracing::warn!(name = %self.name, kind, "webhook configuration edited by someone else; registering it again as the policies ask (change the policies, not the configuration)");
                }
                edited
            }
            Ok(Event::Delete(_)) => {
                *deleted = true;
                tracing::warn!(name = %self.name, kind, "webhook configuration deleted: admissions are no longer sent to sealgate; it is not re-created until sealgate restarts (run `sealgate uninstall` before removing sealgate)");
                false
            }
            _ => false,
        }
    }

    /// The namespaces the webhooks leave out.
    fn excluded_namespaces(&self) -> Vec<String> {
        let mut excluded = vec!["kube-system".to_string()];
        if let Endpoint::Service { namespace, .. } = &self.endpoint {
            excluded.push(namespace.clone());
        }
        excluded
    }

    /// Before Kubernetes 1.21 no namespace carries `kubernetes.io/metadata.name`, so the
    /// webhooks' `NotIn` selector would not leave kube-system out: its Pods would wait on
    /// sealgate. Each excluded namespace without the label gets it (the value 1.21+ sets); if
    /// that is not allowed, the error says what to run.
    async fn label_excluded_namespaces(&self, client: &Client) {
        use k8s_openapi::api::core::v1::Namespace;
        use kube::api::{Patch, PatchParams};
        let api: Api<Namespace> = Api::all(client.clone());
        for name in self.excluded_namespaces() {
            let labelled = match api.get_opt(&name).await {
                Ok(Some(ns)) => ns
                    .metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.get(NAME_LABEL) == Some(&name)),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(namespace = %name, error = %crate::error::describe(&e), "cannot read the namespace to check its kubernetes.io/metadata.name label");
                    continue;
                }
            };
            if labelled {
                continue;
            }
            let patch = serde_json::json!({"metadata": {"labels": {NAME_LABEL: name}}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace = %name, "labelled {NAME_LABEL}={name} (Kubernetes before 1.21 does not), so the webhooks leave it out")
                }
                Err(e) => {
                    tracing::error!(namespace = %name, error = %crate::error::describe(&e), "namespace {name} has no {NAME_LABEL} label (Kubernetes before 1.21), so the webhooks do not leave it out and its Pods are sent to sealgate; run: kubectl label namespace {name} {NAME_LABEL}={name}")
                }
            }
        }
    }

    async fn apply_except(
        &self,
        client: &Client,
        derived: Derived,
        deleted: Deleted,
    ) -> Result<(), KubeError> {
        if !deleted.mutating {
            put(
                Api::all(client.clone()),
                self.mutating(derived),
                "MutatingWebhookConfiguration",
            )
            .await?;
        }
        if !deleted.validating {
            put(
                Api::all(client.clone()),
                self.validating(derived),
                "ValidatingWebhookConfiguration",
            )
            .await?;
        }
        tracing::info!(
            name = %self.name,
            failure_policy = %failure_policy(derived),
            timeout_seconds = derived.timeout_seconds as u64,
            "webhook configurations registered"
        );
        Ok(())
    }
}

/// Which configurations someone deleted while this replica kept them.
#[derive(Debug, Clone, Copy, Default)]
struct Deleted {
    mutating: bool,
    validating: bool,
}

/// Whether `existing` holds everything `desired` says: every field of an object (fields the API
/// server added by default do not count), arrays element by element.
fn covers(existing: &serde_json::Value, desired: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (existing, desired) {
        (Value::Object(e), Value::Object(d)) => d
            .iter()
            .all(|(k, v)| e.get(k).is_some_and(|ev| covers(ev, v))),
        (Value::Array(e), Value::Array(d)) => {
            e.len() == d.len() && e.iter().zip(d).all(|(ev, dv)| covers(ev, dv))
        }
        (e, d) => e == d,
    }
}

/// Whether both configurations named `name` carry `bundle` (PEM) as every webhook's
/// `caBundle`: the check before a certificate of a new CA is served.
pub async fn carries_bundle(client: &Client, name: &str, bundle: &str) -> bool {
    let want = bundle.as_bytes();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let (Ok(Some(m)), Ok(Some(v))) = (mutating.get_opt(name).await, validating.get_opt(name).await)
    else {
        return false;
    };
    let m_ok = m
        .webhooks
        .iter()
        .flatten()
        .all(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(want));
    let v_ok = v
        .webhooks
        .iter()
        .flatten()
        .all(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) == Some(want));
    m_ok && v_ok
}

fn failure_policy(derived: Derived) -> String {
    match derived.failure_policy {
        FailurePolicy::Fail => "Fail".into(),
        FailurePolicy::Ignore => "Ignore".into(),
    }
}

/// Creates `object`, or replaces the one of its name.
async fn put<K>(api: Api<K>, mut object: K, kind: &str) -> Result<(), KubeError>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let action = |verb: &str| format!("{verb} {kind} {name}");
    match api
        .get_opt(&name)
        .await
        .map_err(|e| KubeError::api(action("reading"), e))?
    {
        Some(existing) => {
            object.meta_mut().resource_version = existing.meta().resource_version.clone();
            api.replace(&name, &PostParams::default(), &object)
                .await
                .map_err(|e| KubeError::api(action("updating"), e))?;
        }
        None => {
            api.create(&PostParams::default(), &object)
                .await
                .map_err(|e| KubeError::api(action("creating"), e))?;
        }
    }
    Ok(())
}

/// Scales the Deployment `namespace/name` (sealgate itself) to 0 and waits, at most `within`,
/// until none of its Pods is active: the step before [`remove`] when uninstalling, so no
/// replica is left to register the webhooks again (a replica stops registering as soon as it
/// is told to stop). A Deployment that does not exist counts as scaled down.
pub async fn scale_down(
    client: &Client,
    namespace: &str,
    name: &str,
    within: std::time::Duration,
) -> Result<(), KubeError> {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::{Patch, PatchParams};
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let what = format!("Deployment {namespace}/{name}");
    let patch = serde_json::json!({"spec": {"replicas": 0}});
    match api
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(()),
        Err(e) => return Err(KubeError::api(format!("scaling {what} to 0"), e)),
    }
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let deployment = api
            .get_opt(name)
            .await
            .map_err(|e| KubeError::api(format!("reading {what}"), e))?;
        let Some(deployment) = deployment else {
            return Ok(());
        };
        let generation = deployment.metadata.generation.unwrap_or(0);
        let status = deployment.status.unwrap_or_default();
        let observed = status.observed_generation.unwrap_or(0) >= generation;
        if observed && status.replicas.unwrap_or(0) == 0 {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KubeError::Api {
                action: format!("waiting for {what} to scale down"),
                detail: format!(
                    "{} replicas still active after {}s; the webhooks were left in place (run again, or run without --scale-down once sealgate has stopped)",
                    status.replicas.unwrap_or(0),
                    within.as_secs()
                ),
            });
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Deletes both configurations named `name`; those already gone count as deleted. Returns what
/// was deleted.
pub async fn remove(client: &Client, name: &str) -> Result<Vec<String>, KubeError> {
    let mut deleted = Vec::new();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    if delete(&mutating, name, "MutatingWebhookConfiguration").await? {
        deleted.push(format!("MutatingWebhookConfiguration/{name}"));
    }
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    if delete(&validating, name, "ValidatingWebhookConfiguration").await? {
        deleted.push(format!("ValidatingWebhookConfiguration/{name}"));
    }
    Ok(deleted)
}

async fn delete<K>(api: &Api<K>, name: &str, kind: &str) -> Result<bool, KubeError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(e) => Err(KubeError::api(format!("deleting {kind} {name}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(endpoint: Endpoint) -> Registration {
        Registration {
            name: "sealgate".into(),
            endpoint,
            ca_bundle: b"-----BEGIN CERTIFICATE-----\n".to_vec(),
        }
    }

    #[test]
    fn a_url_endpoint_gets_its_paths_and_the_defaults() {
        let r = registration(Endpoint::Url("https://127.0.0.1:8443/".into()));
        let derived = derive(&[]);
        assert_eq!(
            derived,
            Derived {
                failure_policy: FailurePolicy::Ignore,
                timeout_seconds: 10
            }
        );
        let m = r.mutating(Derived {
            failure_policy: FailurePolicy::Fail,
            timeout_seconds: 10,
        });
        let hook = &m.webhooks.as_ref().unwrap()[0];
        assert_eq!(
            hook.client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/mutate")
        );
        assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
        assert_eq!(hook.reinvocation_policy.as_deref(), Some("IfNeeded"));
        assert_eq!(hook.side_effects, "None");
        assert_eq!(hook.admission_review_versions, ["v1"]);
        let resources: Vec<String> = hook
            .rules
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|r| r.resources.clone().unwrap())
            .collect();
        for kind in [
            "pods",
            "pods/ephemeralcontainers",
            "deployments",
            "cronjobs",
            "jobs",
            "daemonsets",
            "statefulsets",
            "replicasets",
            "replicationcontrollers",
        ] {
            assert!(resources.iter().any(|r| r == kind), "{kind}");
        }
        let selector = hook
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap();
        assert_eq!(selector[0].values.as_deref().unwrap(), ["kube-system"]);
        let v = r.validating(derived);
        assert_eq!(
            v.webhooks.as_ref().unwrap()[0].client_config.url.as_deref(),
            Some("https://127.0.0.1:8443/validate")
        );
    }

    #[test]
    fn a_service_endpoint_excludes_its_own_namespace() {
        let r = registration(Endpoint::Service {
            namespace: "sealgate".into(),
            name: "sealgate".into(),
            port: 443,
        });
        let m = r.mutating(derive(&[]));
        let hook = &m.webhooks.as_ref().unwrap()[0];
        let service = hook.client_config.service.as_ref().unwrap();
        assert_eq!(
            (service.path.as_deref(), service.port),
            (Some("/mutate"), Some(443))
        );
        let selector = hook
            .namespace_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap();
        assert_eq!(
            selector[0].values.as_deref().unwrap(),
            ["kube-system", "sealgate"]
        );
        // Serialises as the API expects.
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            json["webhooks"][0]["clientConfig"]["service"]["namespace"],
            "sealgate"
        );
        assert!(json["webhooks"][0]["clientConfig"]["caBundle"].is_string());
    }

    #[test]
    fn an_edit_is_told_from_the_api_servers_defaults() {
        let r = registration(Endpoint::Url("https://127.0.0.1:8443".into()));
        let desired = serde_json::to_value(r.validating(derive(&[]))).unwrap()["webhooks"].clone();
        // What the API server stores: our fields plus its defaults.
        let mut stored = desired.clone();
        stored[0]["objectSelector"] = serde_json::json!({});
        stored[0]["rules"][0]["scope"] = serde_json::json!("Namespaced");
        assert!(covers(&stored, &desired));
        let mut edited = stored.clone();
        edited[0]["timeoutSeconds"] = serde_json::json!(29);
        assert!(!covers(&edited, &desired));
        let mut fewer = stored.clone();
        fewer[0]["rules"].as_array_mut().unwrap().pop();
        assert!(!covers(&fewer, &desired));
        let mut other_ca = stored;
        other_ca[0]["clientConfig"]["caBundle"] = serde_json::json!("b3RoZXI=");
        assert!(!covers(&other_ca, &desired));
    }

    #[test]
    fn failure_policy_and_timeout_follow_the_policies() {
        let load = |text: &str| {
            let outcome = sealgate_core::policy::load("p.yaml", text);
            assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
            outcome.policies
        };
        let ignore = load(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: a}\nspec:\n  failurePolicy: Ignore\n  webhookTimeoutSeconds: 15\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      required: false\n      mutateDigest: false\n      attestors: []\n",
        );
        let fail = load(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: b}\nspec:\n  webhookTimeoutSeconds: 5\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      required: false\n      mutateDigest: false\n      attestors: []\n",
        );
        assert_eq!(
            derive(&ignore),
            Derived {
                failure_policy: FailurePolicy::Ignore,
                timeout_seconds: 15
            }
        );
        let both: Vec<Policy> = ignore.into_iter().chain(fail).collect();
        assert_eq!(
            derive(&both),
            Derived {
                failure_policy: FailurePolicy::Fail,
                timeout_seconds: 15
            }
        );
    }
}
