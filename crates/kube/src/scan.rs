//! The background scan (Kyverno's, for policies with `spec.background: true`): every Pod and
//! pod controller in the cluster evaluated again and its results written as PolicyReports
//! (`properties.process: background scan`), so resources admitted before a policy existed, or
//! before a key was rotated, are reported too.
//!
//! A scan runs once the first policies are in force, again whenever a background policy is
//! added, changed or removed (after the changes have settled for [`ScanConfig::settle`]), and
//! every [`ScanConfig::interval`]. Objects are listed a page at a time and evaluated through
//! the webhook's own evaluation ([`BackgroundEvaluator`]: the same caches, shared fetches and
//! per-registry limits), at most [`ScanConfig::concurrency`] at once, so admission requests
//! always find fetch slots; results go to the [`PolicyReportWriter`], the scan waiting while
//! its queue is half full rather than making it drop anything. Namespaces in
//! [`ScanConfig::excluded_namespaces`] (those the webhook is not called for) are skipped. Of
//! several replicas only the one holding the Lease scans ([`BackgroundScan::leader`]); one
//! that takes the Lease over scans at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use sealgate_server::policies::PolicySet;
use sealgate_server::reports::ReportSink as _;
use sealgate_server::scan::{BackgroundEvaluator, ScanRound};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::describe;
use crate::reports::PolicyReportWriter;

/// The kinds scanned: Pods and every pod controller the webhook is registered for, as
/// (group, version, kind, plural).
pub const SCANNED: [(&str, &str, &str, &str); 8] = [
    ("", "v1", "Pod", "pods"),
    ("", "v1", "ReplicationController", "replicationcontrollers"),
    ("apps", "v1", "Deployment", "deployments"),
    ("apps", "v1", "ReplicaSet", "replicasets"),
    ("apps", "v1", "StatefulSet", "statefulsets"),
    ("apps", "v1", "DaemonSet", "daemonsets"),
    ("batch", "v1", "Job", "jobs"),
    ("batch", "v1", "CronJob", "cronjobs"),
];

/// Objects listed per page.
const PAGE: u32 = 250;

/// Why a kind was not scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Listing the kind failed.
    #[error(
        "listing {kind} in every namespace: {detail}; check that sealgate may list {plural} (deploy/sealgate.yaml's ClusterRole)"
    )]
    List {
        /// The kind.
        kind: String,
        /// Its plural, as RBAC names it.
        plural: String,
        /// The API's answer.
        detail: String,
    },
}

/// How scans are run.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// How often every resource is scanned again (`--background-scan-interval`).
    pub interval: Duration,
    /// Evaluations in flight at once.
    pub concurrency: usize,
    /// How long policy changes must settle before a scan starts.
    pub settle: Duration,
    /// Namespaces not scanned.
    pub excluded_namespaces: Vec<String>,
}

impl Default for ScanConfig {
    fn default() -> ScanConfig {
        ScanConfig {
            interval: Duration::from_secs(3600),
            concurrency: 2,
            settle: Duration::from_secs(2),
            excluded_namespaces: vec!["kube-system".into()],
        }
    }
}

/// What one scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCount {
    /// Objects evaluated.
    pub evaluated: u64,
    /// Objects with results, handed to the writer.
    pub reported: u64,
    /// Kinds that could not be listed.
    pub unlisted_kinds: u64,
}

/// Why a scan starts now, if it does: this replica leads, there are background policies, and
/// they changed since the last scan (or none was made) or the interval is up.
fn scan_reason(
    leading: bool,
    any: bool,
    scanned: Option<u64>,
    fingerprint: u64,
    due: bool,
) -> Option<&'static str> {
    if !leading || !any {
        return None;
    }
    match scanned {
        None => Some("start"),
        Some(last) if last != fingerprint => Some("background policies changed"),
        Some(_) if due => Some("interval"),
        Some(_) => None,
    }
}

/// The background scan: call [`BackgroundScan::run`] on a task.
pub struct BackgroundScan {
    /// The API.
    pub client: Client,
    /// The webhook's evaluation.
    pub evaluator: BackgroundEvaluator,
    /// Where results go.
    pub writer: Arc<PolicyReportWriter>,
    /// When and how.
    pub config: ScanConfig,
    /// Whether this replica scans: `true` while it holds the replicas' Lease (always, for a
    /// replica that keeps none). The others answer and report admissions but leave scans to
    /// the holder, so the cluster is scanned once per interval, not once per replica.
    pub leader: watch::Receiver<bool>,
}

impl std::fmt::Debug for BackgroundScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundScan")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl BackgroundScan {
    /// Scans as the module says until `stop` resolves.
    pub async fn run(
        self,
        mut snapshots: watch::Receiver<Arc<PolicySet>>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        tokio::select! {
            _ = &mut stop => return,
            ready = snapshots.wait_for(|set| set.generation > 0) => {
                if ready.is_err() {
                    return;
                }
            }
        }
        let mut leader = self.leader.clone();
        let mut leader_open = true;
        let mut scanned = None;
        let mut next = tokio::time::Instant::now();
        loop {
            let leading = *leader.borrow_and_update();
            let (fingerprint, any) = self.evaluator.background_fingerprint();
            let due = tokio::time::Instant::now() >= next;
            if let Some(reason) = scan_reason(leading, any, scanned, fingerprint, due) {
                let scan = self.scan(reason);
                tokio::select! {
                    _ = &mut stop => return,
                    _ = scan => {}
                }
                next = tokio::time::Instant::now() + self.config.interval;
            } else if due {
                next = tokio::time::Instant::now() + self.config.interval;
            }
            // A replica that does not lead forgets what was scanned, so it scans as soon as it
            // takes over.
            scanned = leading.then_some(fingerprint);
            tokio::select! {
                _ = &mut stop => return,
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Let a burst of changes (kubectl apply -f DIR) settle into one scan.
                    tokio::select! {
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(self.config.settle) => {}
                    }
                }
                changed = leader.changed(), if leader_open => {
                    // The sender gone: leadership stays as last seen.
                    leader_open = changed.is_ok();
                }
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    /// One scan of every scanned kind.
    pub async fn scan(&self, reason: &str) -> ScanCount {
        let round = self.evaluator.round();
        let started = Instant::now();
        tracing::info!(
            reason,
            policies = round.policies() as u64,
            "background scan started"
        );
        let mut count = ScanCount::default();
        for (group, version, kind, plural) in SCANNED {
            let resource = ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: if group.is_empty() {
                    version.into()
                } else {
                    format!("{group}/{version}")
                },
                kind: kind.into(),
                plural: plural.into(),
            };
            if let Err(e) = self.scan_kind(&round, &resource, &mut count).await {
                count.unlisted_kinds += 1;
                tracing::warn!(kind, error = %e, "background scan could not list this kind; the others are scanned");
            }
        }
        tracing::info!(
            reason,
            evaluated = count.evaluated,
            reported = count.reported,
            unlisted_kinds = count.unlisted_kinds,
            duration_ms = started.elapsed().as_millis() as u64,
            "background scan finished"
        );
        count
    }

    async fn scan_kind(
        &self,
        round: &ScanRound,
        resource: &ApiResource,
        count: &mut ScanCount,
    ) -> Result<(), ScanError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        let mut token: Option<String> = None;
        let mut running = JoinSet::new();
        loop {
            let mut params = ListParams::default().limit(PAGE);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let page = api.list(&params).await.map_err(|e| ScanError::List {
                kind: resource.kind.clone(),
                plural: resource.plural.clone(),
                detail: describe(&e),
            })?;
            token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
            for mut object in page.items {
                let namespace = object.metadata.namespace.clone().unwrap_or_default();
                if self.config.excluded_namespaces.contains(&namespace) {
                    continue;
                }
                // Listed items come without their type; the evaluation needs it.
                object.types = Some(kube::api::TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                });
                let Ok(value) = serde_json::to_value(&object) else {
                    continue;
                };
                while running.len() >= self.config.concurrency.max(1) {
                    self.collect(running.join_next().await, count).await;
                }
                let round = round.clone();
                let plural = resource.plural.clone();
                running.spawn(async move { round.evaluate(value, &plural).await });
            }
            if token.is_none() {
                break;
            }
        }
        while let Some(done) = running.join_next().await {
            self.collect(Some(done), count).await;
        }
        Ok(())
    }

    /// Counts one finished evaluation and hands its results to the writer, waiting while the
    /// writer's queue is half full.
    async fn collect(
        &self,
        done: Option<
            Result<Option<sealgate_server::reports::ResourceResults>, tokio::task::JoinError>,
        >,
        count: &mut ScanCount,
    ) {
        let Some(Ok(results)) = done else {
            return;
        };
        count.evaluated += 1;
        let Some(results) = results else {
            return;
        };
        while self.writer.queued() >= self.writer.capacity() / 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        count.reported += 1;
        self.writer.record(results);
    }
}

#[cfg(test)]
mod tests {
    use super::scan_reason;

    #[test]
    fn a_scan_starts_when_leading_with_background_policies_that_changed_or_are_due() {
        // The first scan, a change, the interval.
        assert_eq!(scan_reason(true, true, None, 1, false), Some("start"));
        assert_eq!(
            scan_reason(true, true, Some(1), 2, false),
            Some("background policies changed")
        );
        assert_eq!(scan_reason(true, true, Some(1), 1, true), Some("interval"));
        assert_eq!(scan_reason(true, true, Some(1), 1, false), None);
        // No background policy, or another replica leads: never.
        assert_eq!(scan_reason(true, false, None, 1, true), None);
        assert_eq!(scan_reason(false, true, None, 1, true), None);
        assert_eq!(scan_reason(false, true, Some(1), 2, true), None);
    }
}
