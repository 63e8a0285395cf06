//! PolicyReports (`wgpolicyk8s.io/v1alpha2`) from the webhook's decisions: the
//! [`ReportSink`] the server hands each admitted request's results to, and the task that writes
//! them, one `PolicyReport` per resource in the resource's namespace, as Kyverno 1.10+ does.
//!
//! **Off the admission path.** [`PolicyReportWriter::record`] only puts the results in a
//! bounded queue, coalesced by resource (a second admission of the same object before it is
//! written merges into the first: same policy and rule replaced, others kept). When the queue
//! holds [`ReportConfig::capacity`] resources the oldest is dropped, counted
//! ([`PolicyReportWriter::dropped`]) and logged; an admission never waits for the API.
//!
//! **Waiting for the object.** The results are recorded at `/validate`, before the API server
//! stores the object. The object already carries its `metadata.uid` there (the API server
//! fills it in before validating admission), but a report that names an owner not stored yet
//! could be deleted by the garbage collector at once, and a request a later webhook refuses
//! never stores one. So each entry waits [`ReportConfig::settle`], then the writer reads the
//! object's metadata by name: written once an object of that name and uid exists, retried a
//! few times ([`ReportConfig::attempts`], backing off) while it does not, then dropped with a
//! debug line (the request was refused after sealgate admitted it, or the object is gone). A
//! request that carried no uid takes the stored object's.
//!
//! **The report.** Named `sealgate-<uid>` in the resource's namespace, labelled
//! `app.kubernetes.io/managed-by: sealgate`, owned by the resource (an ownerReference, so it
//! goes with the resource) and scoped to it (`scope`). Kyverno names its own `<uid>` and
//! labels it `managed-by: kyverno`; a distinct name lets both run side by side (a migration
//! with `--policy-selector`) without either overwriting the other's report. Each result is
//! Kyverno's shape: `source`, `policy`, `rule`, `result` (`pass|fail|warn|error|skip`),
//! `message`, `scored`, `category`/`severity` from the policy's annotations,
//! `properties.process`, `timestamp {seconds, nanos}` and `resources` (the scope). `source`
//! is `sealgate`, not `kyverno`: the wgpolicy field names the engine that produced the
//! result, and these are sealgate's decisions (tools like Policy Reporter filter by it, and a
//! Kyverno beside sealgate must be told apart). An existing report is merged: results of the
//! same source, policy and rule are replaced, all others kept, and `summary` counted again
//! over every result. Conflicts are retried with backoff.
//!
//! A Pod made by a Deployment is reported as the webhook sees it: the Deployment, its
//! ReplicaSet and each Pod are admitted (and so reported) separately, each in its own report.
//! Cluster-scoped resources are not reported (the webhook is registered for namespaced kinds
//! only). Results of a policy deleted since, or a rule that no longer applies, stay until the
//! resource is admitted under it again or deleted. Results still queued when sealgate stops
//! are not written; the next admission or background scan of the resource writes them again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use sealgate_server::reports::{ReportSink, ReportedResource, ResourceResults, RuleReport};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::describe;

/// The API group of PolicyReports.
pub const GROUP: &str = "wgpolicyk8s.io";
/// Its version.
pub const VERSION: &str = "v1alpha2";
/// Every result's `source`.
pub const SOURCE: &str = "sealgate";
/// The label naming who manages a report.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value on sealgate's reports.
pub const MANAGED_BY: &str = "sealgate";
/// A report's name is this followed by the resource's uid.
pub const NAME_PREFIX: &str = "sealgate-";

/// Why a report was not written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The PolicyReport kind is not served.
    #[error(
        "the API server does not serve PolicyReports (wgpolicyk8s.io/v1alpha2): apply deploy/crds/policyreports.yaml, or pass --no-policy-reports"
    )]
    NotInstalled,
    /// A request to the API failed.
    #[error("{action}: {detail}")]
    Api {
        /// What was being done, e.g. `reading PolicyReport default/sealgate-…`.
        action: String,
        /// The API's answer.
        detail: String,
    },
    /// Every attempt conflicted with another writer.
    #[error(
        "writing PolicyReport {namespace}/{name}: still conflicting with another writer after {attempts} attempts"
    )]
    Conflict {
        /// The report's namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// How the writer queues and writes.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Resources queued at most; beyond, the oldest is dropped.
    pub capacity: usize,
    /// Resources written per round at most before the writer yields.
    pub batch: usize,
    /// How long results wait before the writer looks for their object (it is stored just
    /// after `/validate` admits it).
    pub settle: Duration,
    /// How often the writer looks for the object before dropping the results; each retry
    /// waits twice as long as the one before, from `settle`.
    pub attempts: u32,
    /// How often a write conflicting with another writer is retried.
    pub conflict_retries: u32,
}

impl Default for ReportConfig {
    fn default() -> ReportConfig {
        ReportConfig {
            capacity: 10_000,
            batch: 100,
            settle: Duration::from_secs(1),
            attempts: 5,
            conflict_retries: 5,
        }
    }
}

/// The resource a queue entry is for: kind, namespace and name (the uid may come later).
type EntryKey = (String, String, Option<String>, String);

fn key_of(resource: &ReportedResource) -> EntryKey {
    (
        resource.api_version.clone(),
        resource.kind.clone(),
        resource.namespace.clone(),
        resource.name.clone(),
    )
}

/// Results waiting to be written.
#[derive(Debug)]
struct Entry {
    results: ResourceResults,
    /// Lookups of the object made so far.
    attempts: u32,
    /// Not before this.
    due: Instant,
}

#[derive(Debug, Default)]
struct Queue {
    /// Oldest first.
    order: VecDeque<EntryKey>,
    entries: HashMap<EntryKey, Entry>,
}

/// Takes the webhook's results ([`ReportSink`]) and writes them as PolicyReports
/// ([`PolicyReportWriter::run`]).
#[derive(Debug)]
pub struct PolicyReportWriter {
    config: ReportConfig,
    queue: Mutex<Queue>,
    wake: Notify,
    dropped: AtomicU64,
    written: AtomicU64,
}

impl ReportSink for PolicyReportWriter {
    fn record(&self, results: ResourceResults) {
        if results.resource.namespace.is_none() || results.rules.is_empty() {
            return;
        }
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        let key = key_of(&results.resource);
        let due = Instant::now() + self.config.settle;
        match queue.entries.get_mut(&key) {
            Some(entry) => {
                coalesce(&mut entry.results, results);
                entry.due = due;
                entry.attempts = 0;
            }
            None => {
                queue.order.push_back(key.clone());
                queue.entries.insert(
                    key,
                    Entry {
                        results,
                        attempts: 0,
                        due,
                    },
                );
            }
        }
        let mut dropped = 0;
        while queue.entries.len() > self.config.capacity.max(1) {
            let Some(oldest) = queue.order.pop_front() else {
                break;
            };
            if queue.entries.remove(&oldest).is_some() {
                dropped += 1;
            }
        }
        drop(queue);
        if dropped > 0 {
            let total = self.dropped.fetch_add(dropped, Ordering::Relaxed) + dropped;
            // The first drop, then every thousandth: enough to see it, never a flood.
            if total == dropped || total / 1000 != (total - dropped) / 1000 {
                tracing::warn!(
                    dropped = total,
                    capacity = self.config.capacity as u64,
                    "policy report queue full: the oldest queued results were dropped (the API server is slow or unreachable)"
                );
            }
        }
        self.wake.notify_one();
    }
}

/// Merges `newer` into `older` (the same resource): the newer results replace the older ones
/// of the same policy and rule, others are kept; a different uid (another object of the same
/// name) replaces everything.
fn coalesce(older: &mut ResourceResults, newer: ResourceResults) {
    if older.resource.uid.is_some()
        && newer.resource.uid.is_some()
        && older.resource.uid != newer.resource.uid
    {
        *older = newer;
        return;
    }
    let uid = newer.resource.uid.clone().or(older.resource.uid.take());
    older
        .rules
        .retain(|o| !newer.rules.iter().any(|n| same_rule(o, n)));
    older.rules.extend(newer.rules);
    older.resource = ReportedResource {
        uid,
        ..newer.resource
    };
    older.time_unix_s = newer.time_unix_s;
    older.process = newer.process;
}

fn same_rule(a: &RuleReport, b: &RuleReport) -> bool {
    a.policy == b.policy && a.rule == b.rule
}

/// What became of one entry.
enum Written {
    /// The report is written.
    Done,
    /// The object is not (yet) stored under that uid.
    NotStored,
}

impl PolicyReportWriter {
    /// A writer with an empty queue; start [`PolicyReportWriter::run`] on a task.
    pub fn new(config: ReportConfig) -> Arc<PolicyReportWriter> {
        Arc::new(PolicyReportWriter {
            config,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        })
    }

    /// Results dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Reports written (created or updated).
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Resources the queue holds at most.
    pub fn capacity(&self) -> usize {
        self.config.capacity.max(1)
    }

    /// Resources waiting to be written.
    pub fn queued(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.entries.len())
    }

    /// Takes up to a batch of entries that are due; returns them and when the next one is due.
    fn take_due(&self, now: Instant) -> (Vec<Entry>, Option<Instant>) {
        let Ok(mut queue) = self.queue.lock() else {
            return (Vec::new(), None);
        };
        let Queue { order, entries } = &mut *queue;
        let mut taken = Vec::new();
        let mut next: Option<Instant> = None;
        order.retain(|key| {
            let Some(entry) = entries.get(key) else {
                return false;
            };
            if entry.due <= now && taken.len() < self.config.batch.max(1) {
                if let Some(entry) = entries.remove(key) {
                    taken.push(entry);
                }
                false
            } else {
                next = Some(next.map_or(entry.due, |n| n.min(entry.due)));
                true
            }
        });
        (taken, next)
    }

    /// Puts an entry back to be tried again after `delay` (unless newer results for the
    /// resource arrived meanwhile: those are newer and keep their own schedule).
    fn requeue(&self, mut entry: Entry, delay: Duration) {
        let Ok(mut queue) = self.queue.lock() else {
            return;
        };
        let key = key_of(&entry.results.resource);
        if let Some(newer) = queue.entries.get_mut(&key) {
            let mut merged = entry.results;
            coalesce(&mut merged, newer.results.clone());
            newer.results = merged;
            return;
        }
        entry.attempts += 1;
        entry.due = Instant::now() + delay;
        queue.order.push_back(key.clone());
        queue.entries.insert(key, entry);
    }

    /// Writes queued results through `client` until `stop` resolves.
    pub async fn run(self: Arc<Self>, client: Client, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut warned_not_installed = false;
        loop {
            let (due, next) = self.take_due(Instant::now());
            let had_work = !due.is_empty();
            for entry in due {
                match self.write(&client, &entry.results).await {
                    Ok(Written::Done) => {
                        self.written.fetch_add(1, Ordering::Relaxed);
                        warned_not_installed = false;
                    }
                    Ok(Written::NotStored) if entry.attempts + 1 < self.config.attempts => {
                        let delay = self.config.settle * 2u32.saturating_pow(entry.attempts + 1);
                        self.requeue(entry, delay);
                    }
                    Ok(Written::NotStored) => {
                        let r = &entry.results.resource;
                        tracing::debug!(
                            kind = r.kind.as_str(),
                            namespace = r.namespace.as_deref().unwrap_or_default(),
                            name = r.name.as_str(),
                            "not reported: the object was not stored (refused after sealgate admitted it, or deleted)"
                        );
                    }
                    Err(ReportError::NotInstalled) => {
                        if !warned_not_installed {
                            tracing::warn!(error = %ReportError::NotInstalled, "policy reports are not written");
                            warned_not_installed = true;
                        }
                    }
                    Err(e) => {
                        let r = &entry.results.resource;
                        tracing::warn!(
                            kind = r.kind.as_str(),
                            namespace = r.namespace.as_deref().unwrap_or_default(),
                            name = r.name.as_str(),
                            error = %e,
                            "policy report not written"
                        );
                    }
                }
            }
            if had_work {
                // Maybe more due already; give other tasks a turn first.
                tokio::task::yield_now().await;
                continue;
            }
            let wait = next.map_or(Duration::from_secs(3600), |n| {
                n.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = &mut stop => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Writes one resource's results, once its object is stored.
    async fn write(
        &self,
        client: &Client,
        results: &ResourceResults,
    ) -> Result<Written, ReportError> {
        let resource = &results.resource;
        let Some(namespace) = resource.namespace.as_deref() else {
            return Ok(Written::Done);
        };
        let objects: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &api_resource_of(resource));
        let stored = objects
            .get_metadata_opt(&resource.name)
            .await
            .map_err(|e| ReportError::Api {
                action: format!("reading {} {namespace}/{}", resource.kind, resource.name),
                detail: describe(&e),
            })?;
        let Some(uid) = stored.and_then(|o| o.metadata.uid) else {
            return Ok(Written::NotStored);
        };
        if resource.uid.as_ref().is_some_and(|u| *u != uid) {
            return Ok(Written::NotStored);
        }
        let name = report_name(&uid);
        let reports: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &policy_report_resource());
        let describe_as = |verb: &str, e: &kube::Error| ReportError::Api {
            action: format!("{verb} PolicyReport {namespace}/{name}"),
            detail: describe(e),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let existing = match reports.get_opt(&name).await {
                Ok(found) => found,
                Err(e) if is_not_found(&e) => return Err(ReportError::NotInstalled),
                Err(e) => return Err(describe_as("reading", &e)),
            };
            let existing = existing
                .map(|o| serde_json::to_value(o).unwrap_or(Value::Null))
                .filter(Value::is_object);
            let creating = existing.is_none();
            let report = report_object(existing, results, &uid);
            let object: DynamicObject =
                serde_json::from_value(report).map_err(|e| ReportError::Api {
                    action: format!("building PolicyReport {namespace}/{name}"),
                    detail: e.to_string(),
                })?;
            let sent = if creating {
                reports.create(&PostParams::default(), &object).await
            } else {
                reports
                    .replace(&name, &PostParams::default(), &object)
                    .await
            };
            match sent {
                Ok(_) => {
                    tracing::debug!(
                        report = %format_args!("{namespace}/{name}"),
                        kind = resource.kind.as_str(),
                        resource = resource.name.as_str(),
                        results = results.rules.len() as u64,
                        "policy report written"
                    );
                    return Ok(Written::Done);
                }
                Err(e) if creating && is_not_found(&e) => return Err(ReportError::NotInstalled),
                Err(e) if is_conflict(&e) => {
                    if attempt > self.config.conflict_retries {
                        return Err(ReportError::Conflict {
                            namespace: namespace.to_string(),
                            name,
                            attempts: attempt,
                        });
                    }
                    let backoff = Duration::from_millis(50) * 2u32.saturating_pow(attempt - 1);
                    tokio::time::sleep(backoff.min(Duration::from_secs(2))).await;
                }
                Err(e) => {
                    return Err(describe_as(
                        if creating { "creating" } else { "updating" },
                        &e,
                    ));
                }
            }
        }
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// A 409: an update on an old resourceVersion, or a create that lost to another.
fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// `PolicyReport`, `wgpolicyk8s.io/v1alpha2`, `policyreports`.
pub fn policy_report_resource() -> ApiResource {
    ApiResource {
        group: GROUP.into(),
        version: VERSION.into(),
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "PolicyReport".into(),
        plural: "policyreports".into(),
    }
}

/// The API resource of a reported object: its apiVersion split into group and version, its
/// plural as the admission request named it (else the lower-case kind and an `s`, right for
/// every kind the webhook is registered for).
fn api_resource_of(resource: &ReportedResource) -> ApiResource {
    let (group, version) = match resource.api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), resource.api_version.clone()),
    };
    let plural = if resource.plural.is_empty() {
        format!("{}s", resource.kind.to_ascii_lowercase())
    } else {
        resource.plural.clone()
    };
    ApiResource {
        group,
        version,
        api_version: resource.api_version.clone(),
        kind: resource.kind.clone(),
        plural,
    }
}

/// The name of the report about the object with `uid`.
pub fn report_name(uid: &str) -> String {
    format!("{NAME_PREFIX}{uid}")
}

/// The report's `scope` (and each result's `resources` entry): the resource, with `uid`.
fn scope(resource: &ReportedResource, uid: &str) -> Value {
    let mut scope = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": resource.name,
        "uid": uid,
    });
    if let Some(ns) = &resource.namespace {
        scope["namespace"] = json!(ns);
    }
    scope
}

/// One result as a PolicyReport holds it.
pub fn result_entry(rule: &RuleReport, results: &ResourceResults, uid: &str) -> Value {
    let mut entry = json!({
        "source": SOURCE,
        "policy": rule.policy,
        "rule": rule.rule,
        "result": rule.result.as_str(),
        "message": rule.message,
        "scored": rule.scored,
        "properties": {"process": results.process.as_str()},
        "timestamp": {"seconds": results.time_unix_s, "nanos": 0},
        "resources": [scope(&results.resource, uid)],
    });
    if let Some(category) = &rule.category {
        entry["category"] = json!(category);
    }
    if let Some(severity) = &rule.severity {
        entry["severity"] = json!(severity);
    }
    entry
}

/// The report about the object with `uid` holding `results`, merged into `existing` (the
/// report as read, if there is one): its results of sealgate for the same policy and rule are
/// replaced, every other result and every other field kept; `summary` counts all results.
pub fn report_object(existing: Option<Value>, results: &ResourceResults, uid: &str) -> Value {
    let resource = &results.resource;
    let mut report = match existing {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    report.insert("apiVersion".into(), json!(format!("{GROUP}/{VERSION}")));
    report.insert("kind".into(), json!("PolicyReport"));

    let metadata = report.entry("metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    metadata["name"] = json!(report_name(uid));
    if let Some(ns) = &resource.namespace {
        metadata["namespace"] = json!(ns);
    }
    if !metadata["labels"].is_object() {
        metadata["labels"] = json!({});
    }
    metadata["labels"][MANAGED_BY_LABEL] = json!(MANAGED_BY);
    let owner = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": resource.name,
        "uid": uid,
    });
    let mut owners: Vec<Value> = metadata["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    owners.retain(|o| o["uid"] != json!(uid));
    owners.push(owner);
    metadata["ownerReferences"] = Value::Array(owners);

    report.insert("scope".into(), scope(resource, uid));

    let replaced = |r: &Value| {
        r["source"] == json!(SOURCE)
            && results
                .rules
                .iter()
                .any(|n| r["policy"] == json!(n.policy) && r["rule"] == json!(n.rule))
    };
    let mut entries: Vec<Value> = report
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    entries.retain(|r| !replaced(r));
    entries.extend(results.rules.iter().map(|r| result_entry(r, results, uid)));
    entries.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v["policy"].as_str().unwrap_or_default().to_string(),
                v["rule"].as_str().unwrap_or_default().to_string(),
                v["source"].as_str().unwrap_or_default().to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    report.insert("summary".into(), summary(&entries));
    report.insert("results".into(), Value::Array(entries));
    Value::Object(report)
}

/// `{pass, fail, warn, error, skip}` counted over `results`.
fn summary(results: &[Value]) -> Value {
    let count = |status: &str| {
        results
            .iter()
            .filter(|r| r["result"].as_str() == Some(status))
            .count()
    };
    json!({
        "pass": count("pass"),
        "fail": count("fail"),
        "warn": count("warn"),
        "error": count("error"),
        "skip": count("skip"),
    })
}

#[cfg(test)]
mod tests {
    use sealgate_server::reports::{ImageReport, Process, ReportStatus};

    use super::*;

    fn pod(uid: Option<&str>) -> ReportedResource {
        ReportedResource {
            api_version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
            namespace: Some("team-a".into()),
            name: "web".into(),
            uid: uid.map(str::to_string),
        }
    }

    fn rule(policy: &str, rule: &str, result: ReportStatus) -> RuleReport {
        RuleReport {
            policy: policy.into(),
            rule: rule.into(),
            result,
            message: format!("{} {policy}", result.as_str()),
            scored: true,
            category: None,
            severity: None,
            images: vec![ImageReport {
                image: "registry.company.com/web:v1".into(),
                result,
                message: String::new(),
            }],
        }
    }

    fn results(uid: Option<&str>, rules: Vec<RuleReport>, time: i64) -> ResourceResults {
        ResourceResults {
            resource: pod(uid),
            rules,
            time_unix_s: time,
            process: Process::AdmissionReview,
        }
    }

    #[test]
    fn a_new_report_is_named_owned_scoped_and_counted() {
        let mut failing = rule("audit-images", "check-signatures", ReportStatus::Fail);
        failing.severity = Some("high".into());
        failing.category = Some("Supply chain".into());
        let r = results(
            Some("u-1"),
            vec![
                rule("require-signed", "check-signatures", ReportStatus::Pass),
                failing,
            ],
            1_700_000_000,
        );
        let report = report_object(None, &r, "u-1");
        assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(report["kind"], "PolicyReport");
        assert_eq!(report["metadata"]["name"], "sealgate-u-1");
        assert_eq!(report["metadata"]["namespace"], "team-a");
        assert_eq!(
            report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "sealgate"
        );
        assert_eq!(
            report["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"}])
        );
        let scope = json!({"apiVersion": "v1", "kind": "Pod", "namespace": "team-a", "name": "web", "uid": "u-1"});
        assert_eq!(report["scope"], scope);
        assert_eq!(
            report["summary"],
            json!({"pass": 1, "fail": 1, "warn": 0, "error": 0, "skip": 0})
        );
        // Sorted by policy: audit-images first.
        assert_eq!(
            report["results"][0],
            json!({
                "source": "sealgate",
                "policy": "audit-images",
                "rule": "check-signatures",
                "result": "fail",
                "message": "fail audit-images",
                "scored": true,
                "category": "Supply chain",
                "severity": "high",
                "properties": {"process": "admission review"},
                "timestamp": {"seconds": 1_700_000_000, "nanos": 0},
                "resources": [scope],
            })
        );
        assert_eq!(report["results"][1]["result"], "pass");
        // It deserialises as the API object it is sent as.
        let object: DynamicObject = serde_json::from_value(report).unwrap();
        assert_eq!(object.metadata.name.as_deref(), Some("sealgate-u-1"));
    }

    #[test]
    fn merging_replaces_the_same_policy_and_rule_and_keeps_everything_else() {
        let first = report_object(
            None,
            &results(
                Some("u-1"),
                vec![
                    rule("a", "r1", ReportStatus::Fail),
                    rule("b", "r1", ReportStatus::Pass),
                ],
                100,
            ),
            "u-1",
        );
        let mut existing = first;
        existing["metadata"]["resourceVersion"] = json!("42");
        existing["metadata"]["labels"]["team"] = json!("a");
        // Another engine's result for the same policy and rule is not sealgate's to replace.
        existing["results"]
            .as_array_mut()
            .unwrap()
            .push(json!({"source": "kyverno", "policy": "a", "rule": "r1", "result": "pass"}));
        let second = results(Some("u-1"), vec![rule("a", "r1", ReportStatus::Pass)], 200);
        let merged = report_object(Some(existing), &second, "u-1");
        assert_eq!(merged["metadata"]["resourceVersion"], "42");
        assert_eq!(merged["metadata"]["labels"]["team"], "a");
        assert_eq!(
            merged["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let rows: Vec<(String, String, String, i64)> = merged["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["source"].as_str().unwrap().to_string(),
                    r["policy"].as_str().unwrap().to_string(),
                    r["result"].as_str().unwrap().to_string(),
                    r["timestamp"]["seconds"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("kyverno".into(), "a".into(), "pass".into(), 0),
                ("sealgate".into(), "a".into(), "pass".into(), 200),
                ("sealgate".into(), "b".into(), "pass".into(), 100),
            ]
        );
        assert_eq!(
            merged["summary"],
            json!({"pass": 3, "fail": 0, "warn": 0, "error": 0, "skip": 0})
        );
    }

    #[test]
    fn queued_results_of_one_resource_coalesce_and_a_full_queue_drops_the_oldest() {
        let writer = PolicyReportWriter::new(ReportConfig {
            capacity: 2,
            ..ReportConfig::default()
        });
        writer.record(results(
            None,
            vec![
                rule("a", "r1", ReportStatus::Fail),
                rule("b", "r1", ReportStatus::Pass),
            ],
            1,
        ));
        writer.record(results(
            Some("u-1"),
            vec![rule("a", "r1", ReportStatus::Pass)],
            2,
        ));
        assert_eq!(writer.queued(), 1);
        {
            let queue = writer.queue.lock().unwrap();
            let entry = queue.entries.values().next().unwrap();
            assert_eq!(entry.results.resource.uid.as_deref(), Some("u-1"));
            assert_eq!(entry.results.time_unix_s, 2);
            let rules: Vec<_> = entry
                .results
                .rules
                .iter()
                .map(|r| (r.policy.as_str(), r.result))
                .collect();
            assert_eq!(
                rules,
                [("b", ReportStatus::Pass), ("a", ReportStatus::Pass)]
            );
        }
        // Another object of the same name replaces what was queued for the first.
        writer.record(results(
            Some("u-2"),
            vec![rule("c", "r1", ReportStatus::Skip)],
            3,
        ));
        {
            let queue = writer.queue.lock().unwrap();
            let entry = queue.entries.values().next().unwrap();
            assert_eq!(entry.results.rules.len(), 1);
            assert_eq!(entry.results.resource.uid.as_deref(), Some("u-2"));
        }
        // Cluster-scoped or empty results are not queued.
        let mut cluster = results(None, vec![rule("a", "r1", ReportStatus::Pass)], 4);
        cluster.resource.namespace = None;
        writer.record(cluster);
        writer.record(results(None, Vec::new(), 4));
        assert_eq!(writer.queued(), 1);

        for name in ["second", "third"] {
            let mut other = results(None, vec![rule("a", "r1", ReportStatus::Pass)], 5);
            other.resource.name = name.into();
            writer.record(other);
        }
        assert_eq!(writer.queued(), 2);
        assert_eq!(writer.dropped(), 1);
        let queue = writer.queue.lock().unwrap();
        let names: Vec<_> = queue.order.iter().map(|k| k.3.as_str()).collect();
        assert_eq!(names, ["second", "third"]);
    }

    #[test]
    fn a_retried_entry_yields_to_newer_results_of_the_same_resource() {
        let writer = PolicyReportWriter::new(ReportConfig {
            settle: Duration::ZERO,
            ..ReportConfig::default()
        });
        writer.record(results(
            Some("u-1"),
            vec![
                rule("a", "r1", ReportStatus::Fail),
                rule("b", "r1", ReportStatus::Fail),
            ],
            1,
        ));
        let (mut taken, _) = writer.take_due(Instant::now());
        let older = taken.remove(0);
        // While it was being written, the resource was admitted again.
        writer.record(results(
            Some("u-1"),
            vec![rule("a", "r1", ReportStatus::Pass)],
            2,
        ));
        writer.requeue(older, Duration::from_secs(60));
        assert_eq!(writer.queued(), 1);
        let (taken, _) = writer.take_due(Instant::now());
        let entry = &taken[0];
        // The newer entry keeps its schedule (due now) and its results win; the older one's
        // other rule is kept.
        assert_eq!(entry.attempts, 0);
        assert_eq!(entry.results.time_unix_s, 2);
        let mut rules: Vec<_> = entry
            .results
            .rules
            .iter()
            .map(|r| (r.policy.as_str(), r.result))
            .collect();
        rules.sort_by_key(|(p, _)| *p);
        assert_eq!(
            rules,
            [("a", ReportStatus::Pass), ("b", ReportStatus::Fail)]
        );

        // Alone, it comes back later, one attempt more.
        let older = taken.into_iter().next().unwrap();
        writer.requeue(older, Duration::from_secs(60));
        assert!(writer.take_due(Instant::now()).0.is_empty());
        let (taken, _) = writer.take_due(Instant::now() + Duration::from_secs(61));
        assert_eq!(taken[0].attempts, 1);
    }

    #[test]
    fn only_due_entries_are_taken_a_batch_at_a_time() {
        let writer = PolicyReportWriter::new(ReportConfig {
            batch: 2,
            settle: Duration::from_secs(60),
            ..ReportConfig::default()
        });
        for name in ["a", "b", "c"] {
            let mut r = results(None, vec![rule("p", "r", ReportStatus::Pass)], 1);
            r.resource.name = name.into();
            writer.record(r);
        }
        let (none, next) = writer.take_due(Instant::now());
        assert!(none.is_empty());
        assert!(next.is_some());
        let later = Instant::now() + Duration::from_secs(61);
        let (first, next) = writer.take_due(later);
        assert_eq!(first.len(), 2);
        assert!(next.is_some());
        let (second, next) = writer.take_due(later);
        assert_eq!(second.len(), 1);
        assert!(next.is_none());
        assert_eq!(writer.queued(), 0);
    }

    #[test]
    fn the_objects_api_resource_comes_from_its_api_version_and_plural() {
        let mut deployment = pod(None);
        deployment.api_version = "apps/v1".into();
        deployment.kind = "Deployment".into();
        deployment.plural = String::new();
        let ar = api_resource_of(&deployment);
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("apps", "v1", "deployments")
        );
        let ar = api_resource_of(&pod(None));
        assert_eq!((ar.group.as_str(), ar.plural.as_str()), ("", "pods"));
    }
}
