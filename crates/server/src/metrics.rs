//! [`Metrics`]: the server's counters, gauges and histograms, kept in a `prometheus-client`
//! registry (typed families of atomics) and rendered by its text encoder (OpenMetrics 1.0, which
//! Prometheus reads) for `GET /metrics`.
//!
//! One handle lives in the application state (no globals); clones share it. Labels are
//! low-cardinality only: webhook, operation, kind, allowed, policy, rule, result, reason kind,
//! cache, registry host and status, never an image, a namespace or a name. As a guard against a
//! client inventing label values, each family keeps at most [`MAX_SERIES`] series; later ones are
//! counted under the value `other`.
//!
//! Sample names are as before the switch to prometheus-client: a counter registered as
//! `sealgate_x` is written `sealgate_x_total` (its `# HELP`/`# TYPE` lines name the family
//! `sealgate_x`, as OpenMetrics has it), and the text ends with `# EOF`.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sealgate_core::engine::{Reason, Status};
use sealgate_registry::{RequestCount, RequestStats};

/// Series per family before new label sets are folded into `other`.
pub const MAX_SERIES: usize = 2000;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `sealgate_admission_requests_total`.
pub const ADMISSION_REQUESTS: &str = "sealgate_admission_requests_total";
/// `sealgate_admission_review_duration_seconds`.
pub const ADMISSION_DURATION: &str = "sealgate_admission_review_duration_seconds";
/// `sealgate_admission_deadline_exceeded_total`.
pub const DEADLINE_EXCEEDED: &str = "sealgate_admission_deadline_exceeded_total";
/// `sealgate_policy_results_total`.
pub const POLICY_RESULTS: &str = "sealgate_policy_results_total";
/// `sealgate_image_checks_total`: image checks by result and by the kind of their reason.
pub const IMAGE_CHECKS: &str = "sealgate_image_checks_total";
/// `sealgate_verification_cache_hits_total`.
pub const CACHE_HITS: &str = "sealgate_verification_cache_hits_total";
/// `sealgate_verification_cache_misses_total`.
pub const CACHE_MISSES: &str = "sealgate_verification_cache_misses_total";
/// `sealgate_registry_fetches_shared_total`.
pub const FETCHES_SHARED: &str = "sealgate_registry_fetches_shared_total";
/// `sealgate_registry_fetches_unattended_total`.
pub const FETCHES_UNATTENDED: &str = "sealgate_registry_fetches_unattended_total";
/// `sealgate_registry_fetch_duration_seconds`.
pub const FETCH_DURATION: &str = "sealgate_registry_fetch_duration_seconds";
/// `sealgate_registry_requests_total`.
pub const REGISTRY_REQUESTS: &str = "sealgate_registry_requests_total";
/// `sealgate_verifications_in_flight`.
pub const IN_FLIGHT: &str = "sealgate_verifications_in_flight";
/// `sealgate_certificate_expiry_seconds`.
pub const CERT_EXPIRY: &str = "sealgate_certificate_expiry_seconds";
/// Seconds until the CA registered in the webhooks' caBundle expires (the earliest, while two
/// are registered during a rotation).
pub const CA_EXPIRY: &str = "sealgate_ca_certificate_expiry_seconds";
/// `sealgate_policies`.
pub const POLICIES: &str = "sealgate_policies";
/// `sealgate_policy_reloads_total`.
pub const POLICY_RELOADS: &str = "sealgate_policy_reloads_total";
/// `sealgate_policy_reload_errors_total`.
pub const POLICY_RELOAD_ERRORS: &str = "sealgate_policy_reload_errors_total";
/// `sealgate_audit_records_dropped_total`.
pub const AUDIT_DROPPED: &str = "sealgate_audit_records_dropped_total";

/// A series' labels, in the order they are written.
type Labels = Vec<(&'static str, String)>;
/// The labels of an image check: result and reason kind, both from closed sets (borrowed on
/// the request path, so counting allocates nothing).
type CheckLabels = [(&'static str, Cow<'static, str>); 2];

type Counters = Bounded<Counter>;
type Histograms = Bounded<Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The name a counter family is registered under: its sample name without `_total`, which the
/// encoder appends.
fn family_name(sample: &'static str) -> &'static str {
    sample.strip_suffix("_total").unwrap_or(sample)
}

#[derive(Debug)]
struct Shared {
    registry: Registry,
    admission_requests: Counters,
    admission_duration: Histograms,
    deadline_exceeded: Counters,
    policy_results: Counters,
    image_checks: Family<CheckLabels, Counter>,
    cache_hits: Counters,
    cache_misses: Counters,
    fetches_shared: Counters,
    fetches_unattended: Counters,
    fetch_duration: Histograms,
    in_flight: Gauge,
    policies: Gauge,
    policy_reloads: Counter,
    policy_reload_errors: Counter,
    audit_dropped: Counter,
    /// The writer's dropped count last added to `audit_dropped`.
    audit_dropped_seen: AtomicU64,
    /// The serving certificate's notAfter (Unix seconds; 0: none yet), rendered as seconds left.
    cert_not_after: AtomicI64,
    /// The registered CA's notAfter (Unix seconds; 0: not known), rendered as seconds left.
    ca_not_after: AtomicI64,
}

impl Default for Shared {
    fn default() -> Shared {
        let counters = || {
            Counters::new(Family::new_with_constructor(
                Counter::default as fn() -> Counter,
            ))
        };
        let histograms = || {
            Histograms::new(Family::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ))
        };
        let mut shared = Shared {
            registry: Registry::default(),
            admission_requests: counters(),
            admission_duration: histograms(),
            deadline_exceeded: counters(),
            policy_results: counters(),
            image_checks: Family::default(),
            cache_hits: counters(),
            cache_misses: counters(),
            fetches_shared: counters(),
            fetches_unattended: counters(),
            fetch_duration: histograms(),
            in_flight: Gauge::default(),
            policies: Gauge::default(),
            policy_reloads: Counter::default(),
            policy_reload_errors: Counter::default(),
            audit_dropped: Counter::default(),
            audit_dropped_seen: AtomicU64::new(0),
            cert_not_after: AtomicI64::new(0),
            ca_not_after: AtomicI64::new(0),
        };
        // The registry ends each help text with a period.
        let r = &mut shared.registry;
        r.register(
            family_name(ADMISSION_REQUESTS),
            "AdmissionReviews answered, by webhook, operation, kind and decision",
            shared.admission_requests.family(),
        );
        r.register(
            ADMISSION_DURATION,
            "Time from receiving an AdmissionReview to answering it",
            shared.admission_duration.family(),
        );
        r.register(
            family_name(DEADLINE_EXCEEDED),
            "AdmissionReviews decided with fetches still pending when the budget ran out",
            shared.deadline_exceeded.family(),
        );
        r.register(
            family_name(POLICY_RESULTS),
            "Rule results in admission decisions (pass, fail, skip, error)",
            shared.policy_results.family(),
        );
        r.register(
            family_name(IMAGE_CHECKS),
            "Image checks in admission decisions (one per image per rule, and one per image no rule covers), by result (pass, fail, skip, error, none) and by the kind of their reason (verified, no_signatures, fetch_unauthorized, not_covered, ...)",
            shared.image_checks.clone(),
        );
        r.register(
            family_name(CACHE_HITS),
            "Lookups answered by a verification cache (outcome: verified attestor outcomes; digest: tag resolutions; signatures: signature sets fetched seconds ago)",
            shared.cache_hits.family(),
        );
        r.register(
            family_name(CACHE_MISSES),
            "Lookups a verification cache could not answer",
            shared.cache_misses.family(),
        );
        r.register(
            family_name(FETCHES_SHARED),
            "Registry fetches a request joined instead of starting (single flight)",
            shared.fetches_shared.family(),
        );
        r.register(
            family_name(FETCHES_UNATTENDED),
            "Registry fetches that outlived every request waiting for them, by how they ended (finished within the unattended limit, or cancelled at it)",
            shared.fetches_unattended.family(),
        );
        r.register(
            FETCH_DURATION,
            "Duration of registry fetches (a tag resolution, or a signature manifest with its payloads), by host",
            shared.fetch_duration.family(),
        );
        r.register(
            IN_FLIGHT,
            "Registry fetches running now",
            shared.in_flight.clone(),
        );
        r.register(
            POLICIES,
            "Policies loaded and in force",
            shared.policies.clone(),
        );
        r.register(
            family_name(POLICY_RELOADS),
            "Policy directory reloads that found a change",
            shared.policy_reloads.clone(),
        );
        r.register(
            family_name(POLICY_RELOAD_ERRORS),
            "Policy files that could not be read or were invalid on (re)load; the last good version stays in force",
            shared.policy_reload_errors.clone(),
        );
        r.register(
            family_name(AUDIT_DROPPED),
            "Audit records dropped because the audit writer's queue was full",
            shared.audit_dropped.clone(),
        );
        shared
    }
}

/// The metrics handle. Cheap to clone; clones share the values.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    shared: Arc<Shared>,
}

/// Counts a fetch as in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    gauge: Gauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One AdmissionReview answered.
    pub fn admission(
        &self,
        webhook: &str,
        operation: &str,
        kind: &str,
        allowed: bool,
        took: Duration,
    ) {
        let labels = vec![
            ("webhook", webhook.to_string()),
            ("operation", operation.to_string()),
            ("kind", kind.to_string()),
            ("allowed", allowed.to_string()),
        ];
        self.shared
            .admission_duration
            .series(&labels)
            .observe(took.as_secs_f64());
        self.shared.admission_requests.series(&labels).inc();
    }

    /// One AdmissionReview decided with fetches still pending at the deadline.
    pub fn deadline_exceeded(&self, webhook: &str) {
        self.shared
            .deadline_exceeded
            .series(&vec![("webhook", webhook.to_string())])
            .inc();
    }

    /// One rule result.
    pub fn policy_result(&self, policy: &str, rule: &str, result: &str) {
        self.shared
            .policy_results
            .series(&vec![
                ("policy", policy.to_string()),
                ("rule", rule.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    /// One image check: its result and the kind of its reason.
    pub fn image_check(&self, result: Status, reason: Reason) {
        self.image_check_kinds(result.as_str(), reason.as_str());
    }

    /// One image no rule covers (result `none`, reason `not_covered`, as in the audit trail).
    pub fn image_not_covered(&self) {
        self.image_check_kinds("none", "not_covered");
    }

    fn image_check_kinds(&self, result: &'static str, reason: &'static str) {
        // Both label values come from closed sets: no fold needed.
        self.shared
            .image_checks
            .get_or_create(&[
                ("result", Cow::Borrowed(result)),
                ("reason", Cow::Borrowed(reason)),
            ])
            .inc();
    }

    /// One cache lookup (`cache` is `outcome`, `digest`, `signatures` or `bundles`).
    pub fn cache_lookup(&self, cache: &'static str, hit: bool) {
        self.cache_lookups(cache, usize::from(hit), usize::from(!hit));
    }

    /// `hits` and `misses` lookups of one cache at once (nothing when both are 0).
    pub fn cache_lookups(&self, cache: &'static str, hits: usize, misses: usize) {
        let labels = vec![("cache", cache.to_string())];
        for (family, n) in [
            (&self.shared.cache_hits, hits),
            (&self.shared.cache_misses, misses),
        ] {
            if n > 0 {
                family.series(&labels).inc_by(n as u64);
            }
        }
    }

    /// A request joined a fetch already in flight (`fetch` is `digest`, `signatures` or
    /// `bundles`: the referrers' Sigstore bundles).
    pub fn fetch_shared(&self, fetch: &'static str) {
        self.shared
            .fetches_shared
            .series(&vec![("fetch", fetch.to_string())])
            .inc();
    }

    /// A fetch that outlived every request waiting for it `end`ed (`finished` within the
    /// unattended limit, or `cancelled` at it).
    pub fn fetch_unattended(&self, fetch: &'static str, end: &'static str) {
        self.shared
            .fetches_unattended
            .series(&vec![
                ("fetch", fetch.to_string()),
                ("end", end.to_string()),
            ])
            .inc();
    }

    /// A registry fetch finished.
    pub fn fetch_duration(&self, host: &str, fetch: &'static str, took: Duration) {
        let labels = vec![("host", host.to_string()), ("fetch", fetch.to_string())];
        self.shared
            .fetch_duration
            .series(&labels)
            .observe(took.as_secs_f64());
    }

    /// Marks a registry fetch as running until the returned guard is dropped.
    pub fn fetch_started(&self) -> InFlight {
        self.shared.in_flight.inc();
        InFlight {
            gauge: self.shared.in_flight.clone(),
        }
    }

    /// A policy reload that found a change.
    pub fn policy_reload(&self) {
        self.shared.policy_reloads.inc();
    }

    /// `n` policy files that could not be loaded.
    pub fn policy_reload_errors(&self, n: usize) {
        self.shared.policy_reload_errors.inc_by(n as u64);
    }

    /// How many policies are in force.
    pub fn set_policies(&self, n: usize) {
        self.shared
            .policies
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// When the serving certificate expires (Unix seconds).
    pub fn set_certificate_not_after(&self, unix: i64) {
        self.shared.cert_not_after.store(unix, Ordering::Relaxed);
    }

    /// When the CA in the webhooks' caBundle expires (Unix seconds; the earliest of two).
    pub fn set_ca_not_after(&self, unix: i64) {
        self.shared.ca_not_after.store(unix, Ordering::Relaxed);
    }

    /// How many audit records have been dropped so far (the writer's own counter, which only
    /// grows): the counter advances to it.
    pub fn set_audit_dropped(&self, n: u64) {
        let seen = self
            .shared
            .audit_dropped_seen
            .fetch_max(n, Ordering::Relaxed);
        if n > seen {
            self.shared.audit_dropped.inc_by(n - seen);
        }
    }

    /// The value of a counter series, for tests and benchmarks (0 when absent).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let s = &self.shared;
        let single = match name {
            POLICY_RELOADS => Some(&s.policy_reloads),
            POLICY_RELOAD_ERRORS => Some(&s.policy_reload_errors),
            AUDIT_DROPPED => Some(&s.audit_dropped),
            _ => None,
        };
        if let Some(counter) = single {
            return if labels.is_empty() {
                counter.get() as f64
            } else {
                0.0
            };
        }
        if name == IMAGE_CHECKS {
            let [("result", result), ("reason", reason)] = labels else {
                return 0.0;
            };
            let labels: CheckLabels = [
                ("result", Cow::Owned((*result).to_string())),
                ("reason", Cow::Owned((*reason).to_string())),
            ];
            return s.image_checks.get(&labels).map_or(0.0, |c| c.get() as f64);
        }
        let family = match name {
            ADMISSION_REQUESTS => &s.admission_requests,
            DEADLINE_EXCEEDED => &s.deadline_exceeded,
            POLICY_RESULTS => &s.policy_results,
            CACHE_HITS => &s.cache_hits,
            CACHE_MISSES => &s.cache_misses,
            FETCHES_SHARED => &s.fetches_shared,
            FETCHES_UNATTENDED => &s.fetches_unattended,
            _ => return 0.0,
        };
        let Some(labels) = owned_labels(labels) else {
            return 0.0;
        };
        family.family.get(&labels).map_or(0.0, |c| c.get() as f64)
    }

    /// Registry fetches running now.
    pub fn in_flight(&self) -> i64 {
        self.shared.in_flight.get()
    }

    /// The exposition text ([`CONTENT_TYPE`]): every family with its HELP and TYPE, then
    /// `# EOF`. `now_unix` is for the certificate expiry; `registry` are the client's request
    /// counts.
    pub fn render(&self, now_unix: i64, registry: &RequestStats) -> String {
        // What is known only now (the client's counts, seconds left on the certificate) goes
        // into a registry of its own, made for this scrape.
        let mut now = Registry::default();
        let requests = Family::<Labels, Counter>::default();
        for RequestCount {
            host,
            status,
            count,
        } in &registry.counts
        {
            let labels = vec![("host", host.clone()), ("status", status.to_string())];
            requests.get_or_create(&labels).inc_by(*count);
        }
        now.register(
            family_name(REGISTRY_REQUESTS),
            "HTTP requests sent to registries, by host and status (0: no response)",
            requests,
        );
        let not_after = self.shared.cert_not_after.load(Ordering::Relaxed);
        if not_after != 0 {
            let expiry: Gauge = Gauge::default();
            expiry.set(not_after - now_unix);
            now.register(
                CERT_EXPIRY,
                "Seconds until the serving certificate expires",
                expiry,
            );
        }
        let ca_not_after = self.shared.ca_not_after.load(Ordering::Relaxed);
        if ca_not_after != 0 {
            let expiry: Gauge = Gauge::default();
            expiry.set(ca_not_after - now_unix);
            now.register(
                CA_EXPIRY,
                "Seconds until the webhook CA registered in caBundle expires",
                expiry,
            );
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.shared.registry)
            .and_then(|()| encode_registry(&mut out, &now))
            .and_then(|()| encode_eof(&mut out));
        out
    }
}

/// A family whose series are bounded: once it holds [`MAX_SERIES`], new label sets are counted
/// under the value `other` (a guard, so two threads creating the same series at once may count
/// it twice and fold a little early).
#[derive(Debug)]
struct Bounded<M, C = fn() -> M> {
    family: Family<Labels, M, C>,
    series: AtomicUsize,
}

impl<M, C: MetricConstructor<M> + Clone> Bounded<M, C> {
    fn new(family: Family<Labels, M, C>) -> Self {
        Bounded {
            family,
            series: AtomicUsize::new(0),
        }
    }

    /// The family, to register.
    fn family(&self) -> Family<Labels, M, C> {
        self.family.clone()
    }

    /// The series for `labels` (or `other`).
    fn series(&self, labels: &Labels) -> impl std::ops::Deref<Target = M> + '_ {
        if let Some(known) = self.family.get(labels) {
            return known;
        }
        if self.series.fetch_add(1, Ordering::Relaxed) >= MAX_SERIES {
            self.series.fetch_sub(1, Ordering::Relaxed);
            let other: Labels = labels
                .iter()
                .map(|(k, _)| (*k, "other".to_string()))
                .collect();
            return self.family.get_or_create(&other);
        }
        self.family.get_or_create(labels)
    }
}

/// `labels` with `'static` keys, if every key is a label name sealgate uses.
fn owned_labels(labels: &[(&str, &str)]) -> Option<Labels> {
    labels
        .iter()
        .map(|(k, v)| Some((static_label_name(k)?, (*v).to_string())))
        .collect()
}

/// The `'static` spelling of a label name sealgate uses.
fn static_label_name(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 12] = [
        "webhook",
        "operation",
        "kind",
        "allowed",
        "policy",
        "rule",
        "result",
        "cache",
        "fetch",
        "host",
        "status",
        "end",
    ];
    NAMES.into_iter().find(|n| *n == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_help_type_series_and_cumulative_buckets() {
        let m = Metrics::new();
        m.admission("mutate", "CREATE", "Pod", true, Duration::from_millis(3));
        m.admission("mutate", "CREATE", "Pod", true, Duration::from_millis(30));
        m.admission("validate", "CREATE", "Pod", false, Duration::from_secs(20));
        m.policy_result("require-signed", "check", "pass");
        m.cache_lookup("outcome", true);
        m.cache_lookup("digest", false);
        m.set_certificate_not_after(1_000_100);
        m.set_ca_not_after(1_000_500);
        let guard = m.fetch_started();
        let stats = RequestStats {
            counts: vec![RequestCount {
                host: "registry.company.com".into(),
                status: 200,
                count: 4,
            }],
        };
        let text = m.render(1_000_000, &stats);
        for line in [
            "# TYPE sealgate_admission_requests counter",
            "sealgate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 2",
            "sealgate_admission_review_duration_seconds_bucket{le=\"0.001\",webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 0",
            "sealgate_admission_review_duration_seconds_bucket{le=\"0.005\",webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 1",
            "sealgate_admission_review_duration_seconds_bucket{le=\"0.05\",webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 2",
            "sealgate_admission_review_duration_seconds_bucket{le=\"10.0\",webhook=\"validate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"false\"} 0",
            "sealgate_admission_review_duration_seconds_bucket{le=\"+Inf\",webhook=\"validate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"false\"} 1",
            "sealgate_admission_review_duration_seconds_count{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 2",
            "sealgate_policy_results_total{policy=\"require-signed\",rule=\"check\",result=\"pass\"} 1",
            "sealgate_verification_cache_hits_total{cache=\"outcome\"} 1",
            "sealgate_verification_cache_misses_total{cache=\"digest\"} 1",
            "sealgate_registry_requests_total{host=\"registry.company.com\",status=\"200\"} 4",
            "sealgate_verifications_in_flight 1",
            "sealgate_certificate_expiry_seconds 100",
            "sealgate_ca_certificate_expiry_seconds 500",
            "sealgate_policy_reload_errors_total 0",
            "# HELP sealgate_verifications_in_flight Registry fetches running now.",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        drop(guard);
        assert_eq!(m.in_flight(), 0);
        // Every sample line belongs to a family announced before it.
        let mut announced = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.push(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    announced.iter().any(|a| name.starts_with(a.as_str())),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn label_values_are_escaped_and_series_are_bounded() {
        let m = Metrics::new();
        m.policy_result("a\"b\\c\nd", "r", "fail");
        let text = m.render(0, &RequestStats::default());
        assert!(text.contains(r#"policy="a\"b\\c\nd""#), "{text}");
        for i in 0..MAX_SERIES + 10 {
            m.policy_result(&format!("p{i}"), "r", "pass");
        }
        assert_eq!(
            m.counter(
                POLICY_RESULTS,
                &[("policy", "other"), ("rule", "other"), ("result", "other")]
            ),
            11.0
        );
    }
}
