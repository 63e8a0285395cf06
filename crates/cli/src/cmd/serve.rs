//! `sealgate serve`: the admission webhook (`sealgate_server`) on one machine: policies from a
//! directory, HTTPS with given or self-signed certificates, audit trail in the data directory.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use sealgate_kube::certificates::{CertificateKeeper, Schedule, TlsSecretRef};
use sealgate_kube::lease::{DEFAULT_LEASE_DURATION, LeaseConfig};
use sealgate_kube::namespaces::NamespaceStore;
use sealgate_kube::policies::{PolicyWatch, WatchConfig};
use sealgate_kube::pull_secrets::{PullSecretConfig, PullSecretStore};
use sealgate_kube::registration::{Endpoint, Registration};
use sealgate_kube::reports::{PolicyReportWriter, ReportConfig};
use sealgate_kube::scan::{BackgroundScan, ScanConfig};
use sealgate_server::audit::{AuditToken, DEFAULT_DATA_DIR, Retention};
use sealgate_server::config::{
    CacheConfig, DEFAULT_MAX_CONCURRENT_VERIFICATIONS, DEFAULT_PER_REGISTRY_CONCURRENCY,
    VerifyConfig, format_duration, parse_duration,
};
use sealgate_server::log::LogFormat;
use sealgate_server::metrics::Metrics;
use sealgate_server::reports::ReportSink;
use sealgate_server::scan::BackgroundEvaluator;
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

    #[command(flatten)]
    trust: crate::trust_args::TrustArgs,

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

    /// A pull secret (kubernetes.io/dockerconfigjson or dockercfg) whose credentials every
    /// review may use, for the registries it names: NAMESPACE/NAME, or NAME in sealgate's
    /// namespace ($POD_NAMESPACE, else the --service's or --tls-secret's, else default).
    /// Repeatable. Watched (RBAC: list/watch Secrets in that namespace).
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kubernetes")]
    image_pull_secret: Vec<String>,

    /// Also use the imagePullSecrets of the Pod (or pod controller template) under review, as
    /// the kubelet will. Watches docker-config Secrets in every namespace (RBAC: list/watch
    /// Secrets cluster-wide). Rules' imageRegistryCredentials.secrets are used either way.
    #[arg(long, requires = "kubernetes")]
    pod_pull_secrets: bool,

    /// How often every Pod and pod controller is evaluated again under the policies with
    /// `background: true`, for their PolicyReports (also at start and whenever such a policy
    /// changes); 0s scans never.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration, requires = "kubernetes")]
    background_scan_interval: Duration,

    /// PEM CA bundle registered for the webhook's certificate (default: the self-signed CA, or
    /// the --tls-cert chain); re-registered when the file changes (e.g. cert-manager's ca.crt).
    #[arg(long, value_name = "FILE", requires = "kubernetes")]
    ca_bundle: Option<PathBuf>,

    /// Keep the webhook's CA and serving certificate in this Secret, shared by every replica
    /// and rotated (both CAs registered while a CA is replaced) by the one replica holding the
    /// Lease of the same name, which is also the one that registers the webhook. Default in a
    /// cluster (--service): NAMESPACE/NAME-tls of the Service; outside one: the self-signed
    /// files of --data-dir, and every process registers.
    #[arg(long, value_name = "NAMESPACE/NAME", requires = "kubernetes", conflicts_with_all = ["tls_cert", "ca_bundle"])]
    tls_secret: Option<String>,

    /// Validity of a CA made for --tls-secret; a new one is rotated in when a third is left.
    #[arg(long, value_name = "DURATION", default_value = "8760h", value_parser = parse_duration)]
    ca_validity: Duration,

    /// Validity of a serving certificate made for --tls-secret (never past its CA's); reissued
    /// when a third is left.
    #[arg(long, value_name = "DURATION", default_value = "2160h", value_parser = parse_duration)]
    cert_validity: Duration,

    /// How long each step of a CA rotation waits for every replica and API server to see the
    /// previous one (new CA registered → served → old CA removed). The Secret is read every
    /// quarter of it (at most every 15 s).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    rotation_overlap: Duration,
}

impl ClusterArgs {
    /// The Secret and Lease for the certificates: --tls-secret, else the Service's
    /// `NAMESPACE/NAME-tls` unless the operator brings certificates (--tls-cert).
    fn tls_secret(
        &self,
        endpoint: &Endpoint,
        own_certificates: bool,
    ) -> anyhow::Result<Option<TlsSecretRef>> {
        let text = match (&self.tls_secret, endpoint) {
            (Some(text), _) => text.clone(),
            (
                None,
                Endpoint::Service {
                    namespace, name, ..
                },
            ) if !own_certificates && self.ca_bundle.is_none() => format!("{namespace}/{name}-tls"),
            _ => return Ok(None),
        };
        let Some((namespace, name)) = text
            .split_once('/')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
        else {
            bail!("--tls-secret {text}: expected NAMESPACE/NAME, e.g. sealgate/sealgate-tls");
        };
        Ok(Some(TlsSecretRef {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }))
    }

    fn schedule(&self) -> anyhow::Result<Schedule> {
        let schedule = Schedule {
            ca_validity: self.ca_validity,
            cert_validity: self.cert_validity,
            overlap: self.rotation_overlap,
        };
        if schedule.cert_validity > schedule.ca_validity {
            bail!(
                "--cert-validity {} is longer than --ca-validity {}: a certificate cannot outlive its CA",
                format_duration(schedule.cert_validity),
                format_duration(schedule.ca_validity)
            );
        }
        if schedule.overlap * 3 > schedule.cert_validity {
            bail!(
                "--rotation-overlap {} must be under a third of --cert-validity {}, so a rotation finishes while the certificate is valid",
                format_duration(schedule.overlap),
                format_duration(schedule.cert_validity)
            );
        }
        Ok(schedule)
    }

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
        let endpoint = args.cluster.endpoint()?;
        let secret = args
            .cluster
            .tls_secret(&endpoint, args.tls_cert.is_some())?;
        let schedule = args.cluster.schedule()?;
        Some(Cluster {
            args: args.cluster.clone(),
            endpoint,
            secret,
            schedule,
        })
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
    match cluster.as_ref().map(|c| &c.endpoint) {
        Some(Endpoint::Service {
            namespace, name, ..
        }) => {
            // The names the API server calls the Service by.
            for suffix in ["svc", "svc.cluster.local"] {
                config
                    .tls_names
                    .push(format!("{name}.{namespace}.{suffix}"));
            }
        }
        Some(Endpoint::Url(url)) => {
            if let Some(host) = url_host(url.as_str()) {
                config.tls_names.push(host);
            }
        }
        None => {}
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
        trusted_root: args.trust.load()?,
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

/// What `serve --kubernetes` needs beside the server's own configuration.
struct Cluster {
    args: ClusterArgs,
    endpoint: Endpoint,
    /// Where the certificates live, when in a Secret.
    secret: Option<TlsSecretRef>,
    schedule: Schedule,
}

impl Cluster {
    /// sealgate's namespace: `$POD_NAMESPACE`, else the Service's, else the TLS Secret's, else
    /// `default`.
    fn home_namespace(&self) -> String {
        if let Ok(ns) = std::env::var("POD_NAMESPACE")
            && !ns.is_empty()
        {
            return ns;
        }
        match (&self.endpoint, &self.secret) {
            (Endpoint::Service { namespace, .. }, _) => namespace.clone(),
            (_, Some(secret)) => secret.namespace.clone(),
            _ => "default".into(),
        }
    }
}

/// The host of an `https://HOST[:PORT]/…` URL, brackets off an IPv6 address.
fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
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

async fn serve(mut config: ServeConfig, cluster: Option<Cluster>) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Told at the first SIGTERM, before the drain: the Lease and the registration stop at once,
    // so a replica on its way out never registers the webhooks again (an uninstall's
    // `--scale-down` counts on it) and another replica takes the Lease over without waiting.
    let (leading_stop_tx, leading_stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut tasks = Vec::new();
    let mut connected = None;
    let mut report_writer = None;
    let mut scan_interval = Duration::ZERO;
    // Whether this process registers the webhook: the Lease holder with --tls-secret, else
    // always. The sender lives as long as the server.
    let (held_tx, held) = tokio::sync::watch::channel(true);
    let mut from_secret = None;
    let sources = match &cluster {
        None => Sources::default(),
        Some(cluster) => {
            let args = &cluster.args;
            let client = sealgate_kube::connect(args.kubeconfig.as_deref()).await?;
            if let Some(secret) = &cluster.secret {
                held_tx.send_replace(false);
                let lease = LeaseConfig {
                    namespace: secret.namespace.clone(),
                    name: secret.name.clone(),
                    identity: std::env::var("POD_NAME")
                        .ok()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(sealgate_kube::lease::default_identity),
                    duration: DEFAULT_LEASE_DURATION,
                };
                tasks.push(tokio::spawn(lease.run(
                    client.clone(),
                    held_tx.clone(),
                    stopped(leading_stop_rx.clone()),
                )));
                let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
                for name in &config.tls_names {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                let keeper = CertificateKeeper {
                    secret: secret.clone(),
                    schedule: cluster.schedule,
                    names,
                    webhook_name: args.webhook_name.clone(),
                    metrics: metrics.clone(),
                };
                let mut waiting = held.clone();
                let published = keeper.first(&client, &mut waiting).await?;
                config.tls = TlsSource::Provided(Arc::clone(&published.resolver));
                let bundle = published.bundle.clone();
                tasks.push(tokio::spawn(keeper.run(
                    client.clone(),
                    published,
                    held.clone(),
                    stopped(stop_rx.clone()),
                )));
                from_secret = Some(bundle);
            }
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
            report_writer = (!args.no_policy_reports).then(|| {
                let writer = PolicyReportWriter::new(ReportConfig::default());
                tasks.push(tokio::spawn(
                    Arc::clone(&writer).run(client.clone(), stopped(stop_rx.clone())),
                ));
                writer
            });
            scan_interval = args.background_scan_interval;
            let reports = report_writer
                .clone()
                .map(|writer| writer as Arc<dyn ReportSink>);
            let pull_secrets = PullSecretStore::new(PullSecretConfig {
                home_namespace: cluster.home_namespace(),
                global: args.image_pull_secret.clone(),
                pods: args.pod_pull_secrets,
            });
            tasks.push(tokio::spawn(Arc::clone(&pull_secrets).run(
                client.clone(),
                snapshots.clone(),
                stopped(stop_rx.clone()),
            )));
            connected = Some((client, snapshots.clone()));
            Sources {
                policies: Some(snapshots),
                namespaces: Some(namespaces),
                reports,
                credentials: Some(pull_secrets),
            }
        }
    };
    let tls_cert = match &config.tls {
        TlsSource::Files { cert, .. } => Some(cert.clone()),
        TlsSource::SelfSigned | TlsSource::Provided(_) => None,
    };
    let server = Server::bind_with(config, sources, metrics).await?;
    if let (Some(writer), Some((client, snapshots))) = (&report_writer, &connected)
        && !scan_interval.is_zero()
    {
        let scan = BackgroundScan {
            client: client.clone(),
            evaluator: BackgroundEvaluator::new(server.state().clone()),
            writer: Arc::clone(writer),
            config: ScanConfig {
                interval: scan_interval,
                ..ScanConfig::default()
            },
            leader: held.clone(),
        };
        tasks.push(tokio::spawn(
            scan.run(snapshots.clone(), stopped(stop_rx.clone())),
        ));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "sealgate listening on https://{}", server.local_addr())?;
    if let Some(ca) = server.ca_path() {
        writeln!(out, "CA certificate: {}", ca.display())?;
    }
    if let (Some(cluster), Some((client, snapshots))) = (cluster, connected) {
        if let Some(secret) = &cluster.secret {
            writeln!(
                out,
                "certificates: Secret {secret} (rotated by the holder of the Lease {secret})"
            )?;
        }
        let bundle = match from_secret {
            Some(bundle) => bundle,
            None => {
                let path = cluster
                    .args
                    .ca_bundle
                    .clone()
                    .or_else(|| server.ca_path())
                    .or(tls_cert)
                    .context("no CA bundle to register: pass --ca-bundle FILE")?;
                let first = std::fs::read(&path)
                    .with_context(|| format!("reading the CA bundle {}", path.display()))?;
                let (tx, rx) = tokio::sync::watch::channel(first);
                tasks.push(tokio::spawn(follow_file(
                    path,
                    tx,
                    stopped(stop_rx.clone()),
                )));
                rx
            }
        };
        let registration = Registration {
            name: cluster.args.webhook_name.clone(),
            endpoint: cluster.endpoint,
            ca_bundle: bundle.borrow().clone(),
        };
        tasks.push(tokio::spawn(registration.keep(
            client,
            snapshots.clone(),
            bundle,
            held,
            stopped(leading_stop_rx.clone()),
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
    let signal = shutdown_signal()?;
    let shutdown = async move {
        signal.await;
        let _ = leading_stop_tx.send(true);
    };
    let served = server.serve(shutdown).await;
    // Stop the tasks (the Lease task releases the Lease) and give them a moment to finish.
    let _ = stop_tx.send(true);
    for task in tasks {
        let abort = task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
    drop(held_tx);
    served?;
    Ok(())
}

/// Sends the file's content on `tx` whenever it changes (checked every 10 s) until `stop`: the
/// CA bundle re-registered when cert-manager (or an operator) rotates it.
async fn follow_file(
    path: PathBuf,
    tx: tokio::sync::watch::Sender<Vec<u8>>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match tokio::fs::read(&path).await {
            Ok(bytes) if !bytes.is_empty() => {
                let changed = tx.send_if_modified(|b| {
                    let changed = *b != bytes;
                    if changed {
                        *b = bytes;
                    }
                    changed
                });
                if changed {
                    tracing::info!(path = %path.display(), "CA bundle changed; registering it");
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "reading the CA bundle failed; the one read last stays registered")
            }
        }
    }
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
    use super::{listens_on_loopback, url_host};

    #[test]
    fn the_webhook_url_host_becomes_a_certificate_name() {
        for (url, host) in [
            ("https://127.0.0.1:8443", Some("127.0.0.1")),
            (
                "https://webhook.dev.internal:9443/base",
                Some("webhook.dev.internal"),
            ),
            ("https://[::1]:8443/", Some("::1")),
            ("https://host.example", Some("host.example")),
            ("http://host.example", None),
            ("https://:8443", None),
        ] {
            assert_eq!(url_host(url).as_deref(), host, "{url}");
        }
    }

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
