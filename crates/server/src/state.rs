//! [`AppState`]: what every handler shares: the policy snapshots, the fetcher with its caches,
//! metrics and the audit writer (logs go through `tracing`, see [`crate::log`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::audit::{AuditToken, AuditWriter};
use crate::fetcher::CachingFetcher;
use crate::metrics::Metrics;
use crate::policies::PolicySet;
use crate::reports::ReportSink;
use crate::sources::{CredentialSource, NamespaceLabelSource, NamespaceLabels};

/// The parts an [`AppState`] is made of.
#[derive(Debug)]
pub struct StateParts {
    /// The policy snapshots ([`PolicyStore::open`](crate::policies::PolicyStore::open)).
    pub policies: watch::Receiver<Arc<PolicySet>>,
    /// Namespace labels, when a source knows them ([`Sources`](crate::Sources)).
    pub namespaces: Option<Arc<dyn NamespaceLabelSource>>,
    /// The fetcher reviews are decided through.
    pub fetcher: CachingFetcher,
    /// Metrics (the same handle the fetcher and policy store count into).
    pub metrics: Metrics,
    /// Where decisions are audited; `None` audits nothing.
    pub audit: Option<AuditWriter>,
    /// The audit database `GET /audit` reads; `None` answers 404.
    pub audit_db: Option<PathBuf>,
    /// The bearer token `GET /audit` requires; `None` answers anyone who reaches the port.
    pub audit_token: Option<AuditToken>,
}

/// The handlers' shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    parts: StateParts,
    reports: Option<Arc<dyn ReportSink>>,
    credentials: Option<Arc<dyn CredentialSource>>,
    draining: AtomicBool,
}

impl AppState {
    /// State from its parts.
    pub fn new(parts: StateParts) -> AppState {
        AppState::connected(parts, None, None)
    }

    /// State from its parts, with a report sink and a source of registry credentials (pull
    /// secrets) when given.
    pub fn connected(
        parts: StateParts,
        reports: Option<Arc<dyn ReportSink>>,
        credentials: Option<Arc<dyn CredentialSource>>,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                parts,
                reports,
                credentials,
                draining: AtomicBool::new(false),
            }),
        }
    }

    /// The registry credentials of `resource`'s review under `policies` (its pull secrets and
    /// the rules'), when a credential source is connected and has any.
    pub fn keyring_for(
        &self,
        resource: &sealgate_core::engine::Resource,
        policies: &[sealgate_core::policy::Policy],
    ) -> Option<Arc<sealgate_registry::Keyring>> {
        self.inner.credentials.as_ref()?.keyring(
            resource.namespace.as_deref(),
            &resource.pull_secrets(),
            policies,
        )
    }

    /// Where admitted requests' results are reported, if anywhere.
    pub fn reports(&self) -> Option<&dyn ReportSink> {
        self.inner.reports.as_deref()
    }

    /// The policies in force now.
    pub fn policies(&self) -> Arc<PolicySet> {
        Arc::clone(&self.inner.parts.policies.borrow())
    }

    /// The labels of `namespace`: unknown when no source knows them.
    pub fn namespace_labels(&self, namespace: &str) -> NamespaceLabels {
        match &self.inner.parts.namespaces {
            Some(source) => source.labels(namespace),
            None => NamespaceLabels::Unknown(
                "sealgate serve runs without the Kubernetes API (--kubernetes)",
            ),
        }
    }

    /// Whether a namespace label source is connected.
    pub fn knows_namespaces(&self) -> bool {
        self.inner.parts.namespaces.is_some()
    }

    /// The fetcher reviews are decided through.
    pub fn fetcher(&self) -> &CachingFetcher {
        &self.inner.parts.fetcher
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.parts.metrics
    }

    /// The audit writer, if auditing.
    pub fn audit(&self) -> Option<&AuditWriter> {
        self.inner.parts.audit.as_ref()
    }

    /// The audit database, if any.
    pub fn audit_db(&self) -> Option<&PathBuf> {
        self.inner.parts.audit_db.as_ref()
    }

    /// The token `GET /audit` requires, if any.
    pub fn audit_token(&self) -> Option<&AuditToken> {
        self.inner.parts.audit_token.as_ref()
    }

    /// Whether policies are loaded (and not every policy file failed) and the server is not
    /// shutting down.
    pub fn is_ready(&self) -> bool {
        self.policies().is_usable() && !self.is_draining()
    }

    /// Whether a shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Marks the server as shutting down: `/readyz` answers 503 from now on.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }
}
