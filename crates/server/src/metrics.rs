//! [`Metrics`]: the server's counters, gauges and histograms, rendered in the Prometheus text
//! exposition format (version 0.0.4) for `GET /metrics`.
//!
//! One handle lives in the application state (no globals); clones share it. Labels are
//! low-cardinality only: webhook, operation, kind, allowed, policy, rule, result, cache, registry
//! host and status, never an image, a namespace or a name. As a guard against a client inventing
//! label values, each family keeps at most [`MAX_SERIES`] series; later ones are counted under the
//! value `other`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sealgate_registry::{RequestCount, RequestStats};

/// Series per family before new label sets are folded into `other`.
pub const MAX_SERIES: usize = 2000;

/// Upper bounds (seconds) of the latency histograms' buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `sealgate_admission_requests_total`.
pub const ADMISSION_REQUESTS: &str = "sealgate_admission_requests_total";
/// `sealgate_admission_review_duration_seconds`.
pub const ADMISSION_DURATION: &str = "sealgate_admission_review_duration_seconds";
/// `sealgate_admission_deadline_exceeded_total`.
pub const DEADLINE_EXCEEDED: &str = "sealgate_admission_deadline_exceeded_total";
/// `sealgate_policy_results_total`.
pub const POLICY_RESULTS: &str = "sealgate_policy_results_total";
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
/// `sealgate_policies`.
pub const POLICIES: &str = "sealgate_policies";
/// `sealgate_policy_reloads_total`.
pub const POLICY_RELOADS: &str = "sealgate_policy_reloads_total";
/// `sealgate_policy_reload_errors_total`.
pub const POLICY_RELOAD_ERRORS: &str = "sealgate_policy_reload_errors_total";
/// `sealgate_audit_records_dropped_total`.
pub const AUDIT_DROPPED: &str = "sealgate_audit_records_dropped_total";

/// HELP text and TYPE of every family, in output order.
const FAMILIES: [(&str, &str, &str); 16] = [
    (
        ADMISSION_REQUESTS,
        "counter",
        "AdmissionReviews answered, by webhook, operation, kind and decision.",
    ),
    (
        ADMISSION_DURATION,
        "histogram",
        "Time from receiving an AdmissionReview to answering it.",
    ),
    (
        DEADLINE_EXCEEDED,
        "counter",
        "AdmissionReviews decided with fetches still pending when the budget ran out.",
    ),
    (
        POLICY_RESULTS,
        "counter",
        "Rule results in admission decisions (pass, fail, skip, error).",
    ),
    (
        CACHE_HITS,
        "counter",
        "Lookups answered by a verification cache (outcome: verified attestor outcomes; digest: tag resolutions; signatures: signature sets fetched seconds ago).",
    ),
    (
        CACHE_MISSES,
        "counter",
        "Lookups a verification cache could not answer.",
    ),
    (
        FETCHES_SHARED,
        "counter",
        "Registry fetches a request joined instead of starting (single flight).",
    ),
    (
        FETCHES_UNATTENDED,
        "counter",
        "Registry fetches that outlived every request waiting for them, by how they ended (finished within the unattended limit, or cancelled at it).",
    ),
    (
        FETCH_DURATION,
        "histogram",
        "Duration of registry fetches (a tag resolution, or a signature manifest with its payloads), by host.",
    ),
    (
        REGISTRY_REQUESTS,
        "counter",
        "HTTP requests sent to registries, by host and status (0: no response).",
    ),
    (IN_FLIGHT, "gauge", "Registry fetches running now."),
    (
        CERT_EXPIRY,
        "gauge",
        "Seconds until the serving certificate expires.",
    ),
    (POLICIES, "gauge", "Policies loaded and in force."),
    (
        POLICY_RELOADS,
        "counter",
        "Policy directory reloads that found a change.",
    ),
    (
        POLICY_RELOAD_ERRORS,
        "counter",
        "Policy files that could not be read or were invalid on (re)load; the last good version stays in force.",
    ),
    (
        AUDIT_DROPPED,
        "counter",
        "Audit records dropped because the audit writer's queue was full.",
    ),
];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    /// Cumulative counts are computed at render time; these are per bucket.
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

#[derive(Debug, Default)]
struct Shared {
    families: Mutex<Families>,
    in_flight: AtomicI64,
    policies: AtomicI64,
    cert_not_after: AtomicI64,
    audit_dropped: AtomicI64,
}

/// The metrics handle. Cheap to clone; clones share the values.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    shared: Arc<Shared>,
}

/// Counts a fetch as in flight until dropped.
#[derive(Debug)]
pub struct InFlight {
    shared: Arc<Shared>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
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
        self.with(|f| {
            add(
                f.counters.entry(ADMISSION_REQUESTS).or_default(),
                labels.clone(),
                1.0,
            );
            observe(
                f.histograms.entry(ADMISSION_DURATION).or_default(),
                labels,
                took,
            );
        });
    }

    /// One AdmissionReview decided with fetches still pending at the deadline.
    pub fn deadline_exceeded(&self, webhook: &str) {
        self.count(DEADLINE_EXCEEDED, vec![("webhook", webhook.to_string())]);
    }

    /// One rule result.
    pub fn policy_result(&self, policy: &str, rule: &str, result: &str) {
        self.count(
            POLICY_RESULTS,
            vec![
                ("policy", policy.to_string()),
                ("rule", rule.to_string()),
                ("result", result.to_string()),
            ],
        );
    }

    /// One cache lookup (`cache` is `outcome`, `digest` or `signatures`).
    pub fn cache_lookup(&self, cache: &'static str, hit: bool) {
        let name = if hit { CACHE_HITS } else { CACHE_MISSES };
        self.count(name, vec![("cache", cache.to_string())]);
    }

    /// `hits` and `misses` lookups of one cache at once (nothing when both are 0).
    pub fn cache_lookups(&self, cache: &'static str, hits: usize, misses: usize) {
        if hits == 0 && misses == 0 {
            return;
        }
        self.with(|f| {
            for (name, n) in [(CACHE_HITS, hits), (CACHE_MISSES, misses)] {
                if n > 0 {
                    add(
                        f.counters.entry(name).or_default(),
                        vec![("cache", cache.to_string())],
                        n as f64,
                    );
                }
            }
        });
    }

    /// A request joined a fetch already in flight (`fetch` is `digest` or `signatures`).
    pub fn fetch_shared(&self, fetch: &'static str) {
        self.count(FETCHES_SHARED, vec![("fetch", fetch.to_string())]);
    }

    /// A fetch that outlived every request waiting for it `end`ed (`finished` within the
    /// unattended limit, or `cancelled` at it).
    pub fn fetch_unattended(&self, fetch: &'static str, end: &'static str) {
        self.count(
            FETCHES_UNATTENDED,
            vec![("fetch", fetch.to_string()), ("end", end.to_string())],
        );
    }

    /// A registry fetch finished.
    pub fn fetch_duration(&self, host: &str, fetch: &'static str, took: Duration) {
        let labels = vec![("host", host.to_string()), ("fetch", fetch.to_string())];
        self.with(|f| {
            observe(
                f.histograms.entry(FETCH_DURATION).or_default(),
                labels,
                took,
            )
        });
    }

    /// Marks a registry fetch as running until the returned guard is dropped.
    pub fn fetch_started(&self) -> InFlight {
        self.shared.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A policy reload that found a change.
    pub fn policy_reload(&self) {
        self.count(POLICY_RELOADS, Vec::new());
    }

    /// `n` policy files that could not be loaded.
    pub fn policy_reload_errors(&self, n: usize) {
        self.with(|f| {
            add(
                f.counters.entry(POLICY_RELOAD_ERRORS).or_default(),
                Vec::new(),
                n as f64,
            )
        });
    }

    /// How many policies are in force.
    pub fn set_policies(&self, n: usize) {
        self.shared
            .policies
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// When the serving certificate expires (Unix seconds).
    pub fn set_certificate_not_after(&self, unix: i64) {
        self.shared.cert_not_after.store(unix, Ordering::Relaxed);
    }

    /// How many audit records have been dropped so far (the writer's own counter).
    pub fn set_audit_dropped(&self, n: u64) {
        self.shared
            .audit_dropped
            .store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// The value of a counter series, for tests and benchmarks (0 when absent).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.with(|f| {
            f.counters
                .get(name)
                .and_then(|series| {
                    series
                        .iter()
                        .find(|(l, _)| same_labels(l, labels))
                        .map(|(_, v)| *v)
                })
                .unwrap_or(0.0)
        })
    }

    /// Registry fetches running now.
    pub fn in_flight(&self) -> i64 {
        self.shared.in_flight.load(Ordering::Relaxed)
    }

    /// The exposition text: every family with its HELP and TYPE, series sorted by labels.
    /// `now_unix` is for the certificate expiry; `registry` are the client's request counts.
    pub fn render(&self, now_unix: i64, registry: &RequestStats) -> String {
        let mut out = String::new();
        let families = self
            .shared
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            match name {
                REGISTRY_REQUESTS => {
                    for RequestCount {
                        host,
                        status,
                        count,
                    } in &registry.counts
                    {
                        let labels = vec![("host", host.clone()), ("status", status.to_string())];
                        let _ = writeln!(out, "{name}{} {count}", format_labels(&labels, None));
                    }
                }
                IN_FLIGHT => gauge(
                    &mut out,
                    name,
                    self.shared.in_flight.load(Ordering::Relaxed),
                ),
                POLICIES => gauge(&mut out, name, self.shared.policies.load(Ordering::Relaxed)),
                AUDIT_DROPPED => gauge(
                    &mut out,
                    name,
                    self.shared.audit_dropped.load(Ordering::Relaxed),
                ),
                CERT_EXPIRY => {
                    let not_after = self.shared.cert_not_after.load(Ordering::Relaxed);
                    if not_after != 0 {
                        gauge(&mut out, name, not_after - now_unix);
                    }
                }
                _ if kind == "histogram" => {
                    for (labels, h) in families.histograms.get(name).into_iter().flatten() {
                        let mut cumulative = 0;
                        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                            cumulative += h.buckets[i];
                            let le = format_float(*le);
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cumulative}",
                                format_labels(labels, Some(&le))
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            format_labels(labels, Some("+Inf")),
                            h.count
                        );
                        let l = format_labels(labels, None);
                        let _ = writeln!(out, "{name}_sum{l} {}", format_float(h.sum));
                        let _ = writeln!(out, "{name}_count{l} {}", h.count);
                    }
                }
                _ => {
                    let series = families.counters.get(name);
                    if series.is_none_or(BTreeMap::is_empty) && name == POLICY_RELOAD_ERRORS {
                        let _ = writeln!(out, "{name} 0");
                    }
                    for (labels, v) in series.into_iter().flatten() {
                        let _ = writeln!(
                            out,
                            "{name}{} {}",
                            format_labels(labels, None),
                            format_float(*v)
                        );
                    }
                }
            }
        }
        out
    }

    fn count(&self, name: &'static str, labels: Labels) {
        self.with(|f| add(f.counters.entry(name).or_default(), labels, 1.0));
    }

    fn with<T>(&self, f: impl FnOnce(&mut Families) -> T) -> T {
        f(&mut self
            .shared
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }
}

fn same_labels(have: &Labels, want: &[(&str, &str)]) -> bool {
    have.len() == want.len()
        && have
            .iter()
            .zip(want)
            .all(|((k1, v1), (k2, v2))| k1 == k2 && v1 == v2)
}

/// The series for `labels`, or `other` values once the family is full.
fn bounded<T: Default>(series: &mut BTreeMap<Labels, T>, labels: Labels) -> &mut T {
    let labels = if series.len() >= MAX_SERIES && !series.contains_key(&labels) {
        labels
            .into_iter()
            .map(|(k, _)| (k, "other".to_string()))
            .collect()
    } else {
        labels
    };
    series.entry(labels).or_default()
}

fn add(series: &mut BTreeMap<Labels, f64>, labels: Labels, n: f64) {
    *bounded(series, labels) += n;
}

fn observe(series: &mut BTreeMap<Labels, Histogram>, labels: Labels, took: Duration) {
    let h = bounded(series, labels);
    let secs = took.as_secs_f64();
    if let Some(i) = LATENCY_BUCKETS.iter().position(|le| secs <= *le) {
        h.buckets[i] += 1;
    }
    h.count += 1;
    h.sum += secs;
}

fn gauge(out: &mut String, name: &str, v: i64) {
    let _ = writeln!(out, "{name} {v}");
}

fn format_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// `{a="x",b="y"}` with values escaped (backslash, double quote, newline); `le` last.
fn format_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
            "# TYPE sealgate_admission_requests_total counter",
            "sealgate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 2",
            "sealgate_admission_review_duration_seconds_bucket{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\",le=\"0.001\"} 0",
            "sealgate_admission_review_duration_seconds_bucket{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\",le=\"0.005\"} 1",
            "sealgate_admission_review_duration_seconds_bucket{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\",le=\"0.05\"} 2",
            "sealgate_admission_review_duration_seconds_bucket{webhook=\"validate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"false\",le=\"10\"} 0",
            "sealgate_admission_review_duration_seconds_bucket{webhook=\"validate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"false\",le=\"+Inf\"} 1",
            "sealgate_admission_review_duration_seconds_count{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 2",
            "sealgate_policy_results_total{policy=\"require-signed\",rule=\"check\",result=\"pass\"} 1",
            "sealgate_verification_cache_hits_total{cache=\"outcome\"} 1",
            "sealgate_verification_cache_misses_total{cache=\"digest\"} 1",
            "sealgate_registry_requests_total{host=\"registry.company.com\",status=\"200\"} 4",
            "sealgate_verifications_in_flight 1",
            "sealgate_certificate_expiry_seconds 100",
            "sealgate_policy_reload_errors_total 0",
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
