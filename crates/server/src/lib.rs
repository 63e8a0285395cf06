//! sealgate's admission webhook: Kubernetes AdmissionReviews over HTTPS, decided by the core
//! engine with registry evidence fetched under a deadline, cached and shared between requests,
//! every decision written to an audit trail, and Prometheus metrics.
//!
//! Start at [`run`] (or [`Server::bind`] then [`Server::serve`], to learn the address and CA
//! before serving) with a [`ServeConfig`]; [`app`] is the router alone, for in-process tests.
//!
//! Modules: [`admission`] (AdmissionReview v1 types), [`review`] (one request: decide, audit,
//! count, log), [`fetcher`] (the caches, shared flights and limits the evaluation driver fetches through), [`cache`],
//! [`single_flight`], [`listener`] (the HTTPS accept loop), [`policies`] (directory loading and hot reload), [`tls`] (certificate hot
//! reload, self-signed CA), [`metrics`], [`log`], [`routes`], [`audit`] (SQLite trail).

pub mod admission;
pub mod audit;
pub mod cache;
pub mod config;
pub mod error;
pub mod fetcher;
pub mod listener;
pub mod log;
pub mod metrics;
pub mod policies;
pub mod reports;
pub mod review;
pub mod routes;
pub mod scan;
pub mod single_flight;
pub mod sources;
pub mod state;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{ServeConfig, TlsSource};
pub use error::ServeError;
pub use reports::ReportSink;
pub use routes::app;
pub use sources::{CredentialSource, NamespaceLabelSource, NamespaceLabels, Sources};
pub use state::{AppState, StateParts};

use crate::audit::{AUDIT_DB_FILE, AuditFlusher, AuditStore, AuditWriter};
use crate::fetcher::CachingFetcher;
use crate::metrics::Metrics;
use crate::policies::PolicyStore;
use crate::tls::{CertResolver, SelfSigned};

/// Serves until `shutdown` resolves, then drains in-flight requests and flushes the audit trail.
pub async fn run(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Server::bind(config).await?.serve(shutdown).await
}

/// A server with its policies loaded, its certificate ready and its port bound, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    resolver: Arc<CertResolver>,
    self_signed: Option<SelfSigned>,
    /// The policy directory, when the policies come from one.
    policy_store: Option<PolicyStore>,
    audit: AuditFlusher,
    state: AppState,
    config: ServeConfig,
}

impl Server {
    /// Loads the policies, prepares TLS (generating the self-signed CA if asked), opens the audit
    /// database and binds the listen address.
    pub async fn bind(config: ServeConfig) -> Result<Server, ServeError> {
        Server::bind_with(config, Sources::default(), Metrics::new()).await
    }

    /// [`bind`](Server::bind), with policies and namespace labels from `sources` where it has
    /// them, counting into `metrics` (which the sources may count into too).
    pub async fn bind_with(
        config: ServeConfig,
        sources: Sources,
        metrics: Metrics,
    ) -> Result<Server, ServeError> {
        let (policy_store, policies) = match sources.policies {
            Some(policies) => (None, policies),
            None => {
                let (store, policies) =
                    PolicyStore::open_with(&config.policies, metrics.clone(), config.load)
                        .map_err(ServeError::Policies)?;
                (Some(store), policies)
            }
        };

        // The port first: a clash fails before anything is written to the data directory.
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|e| ServeError::Bind {
                listen: config.listen.clone(),
                detail: e.to_string(),
            })?;
        let local_addr = listener.local_addr().map_err(|e| ServeError::Bind {
            listen: config.listen.clone(),
            detail: e.to_string(),
        })?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| ServeError::DataDir {
            path: config.data_dir.clone(),
            detail: e.to_string(),
        })?;

        // Absolute, so the CA path printed and logged works from any directory.
        let data_dir = std::fs::canonicalize(&config.data_dir).unwrap_or(config.data_dir.clone());

        let (resolver, self_signed) = match &config.tls {
            TlsSource::Files { cert, key } => (
                Arc::new(CertResolver::new(
                    tls::CertFiles {
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    metrics.clone(),
                )?),
                None,
            ),
            TlsSource::Provided(resolver) => (Arc::clone(resolver), None),
            TlsSource::SelfSigned => {
                let ss = SelfSigned::new(&data_dir, listen_host(&config.listen), &config.tls_names);
                let what = ss.ensure()?;
                tracing::info!(
                    action = what,
                    ca = %ss.ca_path().display(),
                    names = %ss.names.join(","),
                    "self-signed certificate"
                );
                if let Some(facts) = std::fs::read_to_string(ss.ca_path())
                    .ok()
                    .and_then(|pem| tls::certificate_facts(&pem).ok())
                {
                    metrics.set_ca_not_after(facts[0].not_after);
                }
                (
                    Arc::new(CertResolver::new(ss.files(), metrics.clone())?),
                    Some(ss),
                )
            }
        };
        let tls = Arc::new(tls::server_config(Arc::clone(&resolver))?);

        let audit_db = data_dir.join(AUDIT_DB_FILE);
        let store = AuditStore::open(&audit_db, config.audit_retention)?;
        let report = move |warning: &str| tracing::warn!(warning = %warning, "audit");
        let (writer, audit) = if config.audit_sync {
            AuditWriter::synced(store, report)
        } else {
            AuditWriter::spawn_with_reporter(store, report)
        };

        let fetcher = CachingFetcher::new(
            config.registry.clone(),
            config.verify.clone(),
            metrics.clone(),
        );
        let state = AppState::connected(
            StateParts {
                policies,
                namespaces: sources.namespaces,
                fetcher,
                metrics,
                audit: Some(writer),
                audit_db: Some(audit_db),
                audit_token: config.audit_token.clone(),
            },
            sources.reports,
            sources.credentials,
        );

        Ok(Server {
            listener,
            local_addr,
            tls,
            resolver,
            self_signed,
            policy_store,
            audit,
            state,
            config,
        })
    }

    /// The address bound (with the real port when `--listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The CA certificate to trust, in self-signed mode.
    pub fn ca_path(&self) -> Option<PathBuf> {
        self.self_signed.as_ref().map(SelfSigned::ca_path)
    }

    /// The handlers' state (metrics, fetcher), e.g. for benchmarks.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTPS until `shutdown` resolves; then stops accepting, lets in-flight requests
    /// finish (at most the drain timeout), stops the reload tasks and flushes the audit trail.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let Server {
            listener,
            local_addr,
            tls,
            resolver,
            self_signed,
            policy_store,
            audit,
            state,
            config,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let policy_task = policy_store
            .map(|store| tokio::spawn(store.watch(config.policy_poll, stopped(stop_rx.clone()))));
        let cert_task = tokio::spawn(Arc::clone(&resolver).watch(
            config.cert_poll,
            self_signed,
            stopped(stop_rx.clone()),
        ));

        let router = app(state.clone());
        tracing::info!(
            address = %format_args!("https://{local_addr}"),
            budget = %config::format_duration(config.verify.budget),
            "serving"
        );
        let graceful = crate::listener::accept(listener, tls, router, shutdown).await;

        state.start_draining();
        tracing::info!(
            timeout = %config::format_duration(config.drain_timeout),
            "shutting down: no new connections; draining in-flight requests"
        );
        if tokio::time::timeout(config.drain_timeout, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "some connections did not finish within the drain timeout; closing them"
            );
        }
        let _ = stop_tx.send(true);
        if let Some(task) = policy_task {
            let _ = task.await;
        }
        let _ = cert_task.await;
        let flushed = audit.shutdown().await;
        match &flushed {
            Ok(()) => tracing::info!("audit trail flushed; stopped"),
            Err(e) => tracing::error!(error = %e, "flushing the audit trail failed"),
        }
        Ok(flushed?)
    }
}

/// The host part of `host:port` (brackets kept off IPv6 addresses).
fn listen_host(listen: &str) -> &str {
    match listen.rsplit_once(':') {
        Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
        None => listen,
    }
}
