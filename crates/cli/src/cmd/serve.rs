//! `sealgate serve`: the admission webhook (`sealgate_server`) on one machine: policies from a
//! directory, HTTPS with given or self-signed certificates, audit trail in the data directory.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use sealgate_kube::namespaces::NamespaceStore;
use sealgate_kube::policies::{PolicyWatch, WatchConfig};
use sealgate_kube::registration::{Endpoint, Registration};
use sealgate_kube::reports::{PolicyReportWriter, ReportConfig};
use sealgate_server::audit::{AuditToken, DEFAULT_DATA_DIR, Retention};
use sealgate_server::config::{
    CacheConfig, DEFAULT_MAX_CONCURRENT_VERIFICATIONS, DEFAULT_PER_REGISTRY_CONCURRENCY,
    VerifyConfig, format_duration, parse_duration,
};
use sealgate_server::log::LogFormat;
use sealgate_server::metrics::Metrics;
use sealgate_server::reports::ReportSink;
use sealgate_server::{ServeConfig, Server, Sources, TlsSource};
use std::sync::Arc;

use super::Outcome;
use crate::registry_args::RegistryArgs;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormatArg {
    /// `time LEVEL message key=value ...`
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Endpoints: POST /mutate and POST /validate (AdmissionReview \
admission.k8s.io/v1), GET /healthz, GET /readyz, GET /metrics (Prometheus), GET /audit (JSON; \
since, image, namespace, result, dryRun, limit). Prints the listen address, the CA certificate \
(self-signed mode) and 'ready' on stdout ('not ready: …' while every policy file is invalid); logs go to stderr. SIGTERM or SIGINT: stop accepting, \
finish in-flight requests (at most 10s), flush the audit trail, exit 0. Exit 2 when the server \
cannot start (policy directory missing, port in use, unusable certificate).\n\nExamples:\n  sealgate serve --policies /etc/sealgate/policies --tls-san sealgate.sealgate.svc\n  sealgate serve --policies policies/ --listen 127.0.0.1:0 --data-dir ./data"
)]
pub(crate) struct Args {
    #[command(flatten)]
    load: crate::inputs::PolicyLoadArgs,

    /// Directory (or file) of Kyverno ClusterPolicy/Policy documents; reloaded when files
    /// change (an invalid file is reported and its last good version kept).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "kubernetes",
        conflicts_with = "kubernetes"
    )]
    policies: Option<PathBuf>,

    #[command(flatten)]
    cluster: ClusterArgs,

    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8443")]
    listen: String,

    /// PEM certificate chain to serve (reloaded when it changes). Without it, a self-signed CA
    /// and certificate are made in --data-dir and the CA's path is printed.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Another DNS name or IP the self-signed certificate is valid for (repeatable), e.g. the
    /// Service name the API server calls: sealgate.sealgate.svc.
    #[arg(long, value_name = "NAME", conflicts_with = "tls_cert")]
    tls_san: Vec<String>,

    /// Directory for the audit database and the self-signed certificates.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    /// Time allowed per admission request; what does not finish is decided (Enforce denies,
    /// Audit warns). Keep it under the webhook's timeoutSeconds (10s by default).
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_duration)]
    budget: Duration,

    /// How long a verified signature is reused (per image digest and attestor).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    cache_ttl: Duration,

    /// How long a tag's digest is reused (so a registry blip does not deny images just
    /// verified).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    digest_cache_ttl: Duration,

    /// Registry fetches in flight at once, all registries together.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONCURRENT_VERIFICATIONS)]
    max_concurrent_verifications: usize,

    /// Registry fetches in flight at once to one registry host.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PER_REGISTRY_CONCURRENCY)]
    registry_concurrency: usize,

    /// How long a registry fetch may run on, to fill the cache, once every admission request
    /// that waited for it has been answered; then it is cancelled.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    unattended_fetch_limit: Duration,

    /// How long audit records are kept (whole admission requests are deleted once older).
    #[arg(long, value_name = "DURATION", default_value = "720h", value_parser = parse_duration)]
    audit_retention: Duration,

    /// How many admission requests the audit trail keeps at most, the newest. Each is one row
    /// holding all of its records (one per image per rule), so this counts requests, not
    /// records; about 2.5 KB each for a Pod of 3 images under 10 policies.
    #[arg(long, value_name = "N", default_value_t = Retention::default().max_rows)]
    audit_max_rows: u64,

    /// File holding a bearer token (at least 16 characters, e.g. `openssl rand -hex 32`):
    /// GET /audit then answers only requests with `Authorization: Bearer TOKEN`. Without it,
    /// GET /audit answers anyone who can reach --listen.
    #[arg(long, value_name = "FILE")]
    audit_token_file: Option<PathBuf>,

    /// Answer each review only once its audit row is committed (group commit: one fsync for
    /// the reviews that arrived meanwhile). Without it, rows are written every 200 ms and a
    /// process killed outright (SIGKILL, OOM, power cut) loses at most that last window.
    #[arg(long)]
    audit_sync: bool,

    /// Log line format (stderr).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormatArg,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// The flags of `serve --kubernetes`.
#[derive(Debug, Clone, clap::Args)]
struct ClusterArgs {
    /// Run against the Kubernetes API: ClusterPolicy and Policy objects watched (instead of
    /// --policies), namespace labels watched (namespaceSelector), webhook configurations
    /// registered and kept in line with the policies, statuses and Events written.
    #[arg(long)]
    kubernetes: bool,

    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account).
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    kubeconfig: Option<PathBuf>,

    /// Register this URL (outside a cluster: tests, development clusters); the API server
    /// calls URL/mutate and URL/validate.
    #[arg(long, value_name = "URL", requires = "kubernetes")]
    webhook_url: Option<String>,

    /// Register this Service (in a cluster; default: `$POD_NAMESPACE/sealgate`).
    #[arg(
        long,
        value_name = "NAMESPACE/NAME",
        requires = "kubernetes",
        conflicts_with = "webhook_url"
    )]
    service: Option<String>,

    /// The Service's port.
    #[arg(
        long,
        value_name = "PORT",
        default_value_t = 443,
        requires = "kubernetes"
    )]
    service_port: u16,

    /// Name of the MutatingWebhookConfiguration and ValidatingWebhookConfiguration.
    #[arg(long, value_name = "NAME", default_value = sealgate_kube::registration::DEFAULT_WEBHOOK_NAME, requires = "kubernetes")]
    webhook_name: String,

    /// Enforce only the policies with these labels (a Kubernetes label selector, e.g.
    /// `sealgate.dev/enforce=true`), e.g. beside an installed Kyverno during a migration.
    #[arg(long, value_name = "LABELS", requires = "kubernetes")]
    policy_selector: Option<String>,

    /// Write no PolicyReports. By default every resource the webhook admits gets one
    /// (wgpolicyk8s.io/v1alpha2, in its namespace, owned by it) with a result per policy rule;
    /// that needs the CRD (deploy/crds/policyreports.yaml, or Kyverno's).
    #[arg(long, requires = "kubernetes")]
    no_policy_reports: bool,

    /// PEM CA bundle registered for the webhook's certificate (default: the self-signed CA, or
    /// the --tls-cert chain).
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    ca_bundle: Option<PathBuf>,
}

impl ClusterArgs {
    fn endpoint(&self) -> anyhow::Result<Endpoint> {
        if let Some(url) = &self.webhook_url {
            if !url.starts_with("https://") {
                bail!(
                    "--webhook-url {url}: the API server calls webhooks over HTTPS; give an https:// URL"
                );
            }
            return Ok(Endpoint::Url(url.clone()));
        }
        let service = match &self.service {
            Some(s) => s.clone(),
            None => match std::env::var("POD_NAMESPACE") {
                Ok(ns) if !ns.is_empty() => format!("{ns}/sealgate"),
                _ => bail!(
                    "--kubernetes needs to know where the API server reaches this webhook: pass --webhook-url https://HOST:PORT outside a cluster, or --service NAMESPACE/NAME (in a cluster, POD_NAMESPACE names the namespace)"
                ),
            },
        };
        let Some((namespace, name)) = service.split_once('/') else {
            bail!("--service {service}: expected NAMESPACE/NAME, e.g. sealgate/sealgate");
        };
        Ok(Endpoint::Service {
            namespace: namespace.to_string(),
            name: name.to_string(),
            port: self.service_port,
        })
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    if args.budget.is_zero() {
        bail!("--budget must be more than 0s, e.g. 8s");
    }
    // The log first: everything below (warnings included) is logged in --log-format.
    sealgate_server::log::install(match args.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    })?;
    if args.budget >= Duration::from_secs(10) {
        tracing::warn!(
            "--budget {} is not under Kubernetes' default webhook timeout (10s); set timeoutSeconds above it in the webhook configuration",
            format_duration(args.budget)
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => TlsSource::Files {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => TlsSource::SelfSigned,
    };
    let cluster = if args.cluster.kubernetes {
        Some((args.cluster.clone(), args.cluster.endpoint()?))
    } else {
        None
    };
    let mut config = ServeConfig::new(
        args.policies.clone().unwrap_or_default(),
        args.registry.client()?,
    );
    config.listen = args.listen.clone();
    config.tls = tls;
    config.tls_names = args.tls_san.clone();
    if let Some((
        _,
        Endpoint::Service {
            namespace, name, ..
        },
    )) = &cluster
    {
        // The names the API server calls the Service by.
        for suffix in ["svc", "svc.cluster.local"] {
            config
                .tls_names
                .push(format!("{name}.{namespace}.{suffix}"));
        }
    }
    config.data_dir = args.data_dir.clone();
    config.verify = VerifyConfig {
        budget: args.budget,
        cache: CacheConfig {
            outcome_ttl: args.cache_ttl,
            digest_ttl: args.digest_cache_ttl,
            ..CacheConfig::default()
        },
        max_concurrent_fetches: args.max_concurrent_verifications.max(1),
        per_registry_concurrency: args.registry_concurrency.max(1),
        unattended_fetch_limit: args.unattended_fetch_limit,
    };
    config.audit_retention = Retention {
        max_age: args.audit_retention,
        max_rows: args.audit_max_rows,
    };
    config.audit_sync = args.audit_sync;
    config.load = args.load.options();
    config.audit_token = match &args.audit_token_file {
        Some(path) => Some(AuditToken::from_file(path)?),
        None => {
            if !listens_on_loopback(&args.listen) {
                tracing::warn!(
                    "GET /audit answers anyone who can reach {}: it lists every image, namespace and workload decided; pass --audit-token-file to require a token",
                    args.listen
                );
            }
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, cluster))?;
    Ok(Outcome::Success)
}

/// Whether `listen` (`HOST:PORT`) binds only a loopback address (`localhost` included).
fn listens_on_loopback(listen: &str) -> bool {
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn serve(
    config: ServeConfig,
    cluster: Option<(ClusterArgs, Endpoint)>,
) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = Vec::new();
    let mut connected = None;
    let sources = match &cluster {
        None => Sources::default(),
        Some((args, _)) => {
            let client = sealgate_kube::connect(args.kubeconfig.as_deref()).await?;
            let watch = PolicyWatch::new(
                client.clone(),
                WatchConfig {
                    selector: args.policy_selector.clone(),
                    load: config.load,
                    instance: std::env::var("POD_NAME").ok(),
                },
                metrics.clone(),
            );
            let snapshots = watch.subscribe();
            let namespaces = NamespaceStore::new();
            tasks.push(tokio::spawn(watch.run(stopped(stop_rx.clone()))));
            tasks.push(tokio::spawn(
                Arc::clone(&namespaces).run(client.clone(), stopped(stop_rx.clone())),
            ));
            let reports = (!args.no_policy_reports).then(|| {
                let writer = PolicyReportWriter::new(ReportConfig::default());
                tasks.push(tokio::spawn(
                    Arc::clone(&writer).run(client.clone(), stopped(stop_rx.clone())),
                ));
                writer as Arc<dyn ReportSink>
            });
            connected = Some((client, snapshots.clone()));
            Sources {
                policies: Some(snapshots),
                namespaces: Some(namespaces),
                reports,
            }
        }
    };
    let tls_cert = match &config.tls {
        TlsSource::Files { cert, .. } => Some(cert.clone()),
        TlsSource::SelfSigned => None,
    };
    let server = Server::bind_with(config, sources, metrics).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "sealgate listening on https://{}", server.local_addr())?;
    if let Some(ca) = server.ca_path() {
        writeln!(out, "CA certificate: {}", ca.display())?;
    }
    if let (Some((args, endpoint)), Some((client, snapshots))) = (cluster, connected) {
        let bundle_path = args
            .ca_bundle
            .clone()
            .or_else(|| server.ca_path())
            .or(tls_cert)
            .context("no CA bundle to register: pass --ca-bundle FILE")?;
        let ca_bundle = std::fs::read(&bundle_path)
            .with_context(|| format!("reading the CA bundle {}", bundle_path.display()))?;
        let registration = Registration {
            name: args.webhook_name.clone(),
            endpoint,
            ca_bundle,
        };
        tasks.push(tokio::spawn(registration.keep(
            client,
            snapshots.clone(),
            stopped(stop_rx.clone()),
        )));
        writeln!(
            out,
            "not ready: waiting for the first list of policies from the Kubernetes API; /readyz answers 503 until then"
        )?;
        let mut snapshots = snapshots;
        tasks.push(tokio::spawn(async move {
            if snapshots.wait_for(|set| set.generation > 0).await.is_ok() {
                let mut out = std::io::stdout().lock();
                if snapshots.borrow().is_usable() {
                    let _ = writeln!(out, "ready");
                } else {
                    let _ = writeln!(
                        out,
                        "not ready: no policy is in force (every policy is invalid; see the log and the policies' status); /readyz answers 503 until one loads"
                    );
                }
                let _ = out.flush();
            }
        }));
    } else if server.state().is_ready() {
        writeln!(out, "ready")?;
    } else {
        // Serving, but /readyz answers 503 until a policy file loads (see the log).
        writeln!(
            out,
            "not ready: no policy is in force (every policy file is invalid; see the log); /readyz answers 503 until one loads"
        )?;
    }
    out.flush()?;
    drop(out);
    let shutdown = shutdown_signal()?;
    let served = server.serve(shutdown).await;
    let _ = stop_tx.send(true);
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    served?;
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::listens_on_loopback;

    #[test]
    fn only_loopback_listen_addresses_count_as_loopback() {
        for listen in [
            "127.0.0.1:8443",
            "127.0.0.2:0",
            "[::1]:8443",
            "localhost:8443",
        ] {
            assert!(listens_on_loopback(listen), "{listen}");
        }
        for listen in [
            "0.0.0.0:8443",
            "[::]:8443",
            "10.0.0.5:8443",
            "webhook.local:8443",
        ] {
            assert!(!listens_on_loopback(listen), "{listen}");
        }
    }
}
