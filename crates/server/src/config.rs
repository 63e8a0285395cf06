//! [`ServeConfig`]: everything `sealgate serve` is told, as typed values (the CLI parses flags into
//! it; tests build it directly).

use std::path::PathBuf;
use std::time::Duration;

use sealgate_core::policy::LoadOptions;
use sealgate_registry::Client;

use crate::audit::{AuditToken, Retention};

/// The default request budget: under Kubernetes' 10 s default `timeoutSeconds`, so sealgate
/// answers before the API server gives up and applies the webhook's `failurePolicy`.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(8);
/// How long a successful attestor outcome is reused.
pub const DEFAULT_OUTCOME_TTL: Duration = Duration::from_secs(3600);
/// How long a tag → digest resolution is reused.
pub const DEFAULT_DIGEST_TTL: Duration = Duration::from_secs(300);
/// How long a fetched signature set is reused (only to share it between requests arriving
/// together; verified outcomes are what is cached for long).
pub const DEFAULT_SIGNATURE_SET_TTL: Duration = Duration::from_secs(10);
/// Entries of each cache before the oldest are evicted.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// Registry fetches (tag resolutions and signature sets) in flight at once, all hosts together.
pub const DEFAULT_MAX_CONCURRENT_VERIFICATIONS: usize = 64;
/// Registry fetches in flight at once to one registry host.
pub const DEFAULT_PER_REGISTRY_CONCURRENCY: usize = 16;
/// How long in-flight requests may take to finish after a shutdown signal.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the policy directory is checked for changes.
pub const DEFAULT_POLICY_POLL: Duration = Duration::from_secs(2);
/// How often the certificate files are checked for changes.
pub const DEFAULT_CERT_POLL: Duration = Duration::from_secs(1);
/// The largest AdmissionReview accepted (the API server's own limit is 3 MiB per object).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// PEM files given by the operator (`--tls-cert`, `--tls-key`), reloaded when they change.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, SEC1 or PKCS#1).
        key: PathBuf,
    },
    /// A CA and a server certificate generated once into the data directory and reused.
    SelfSigned,
    /// A certificate the caller keeps current (`serve --kubernetes --tls-secret`: from a
    /// Secret that one replica rotates).
    Provided(std::sync::Arc<crate::tls::CertResolver>),
}

/// The caches' sizes and lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Lifetime of a verified attestor outcome (`--cache-ttl`).
    pub outcome_ttl: Duration,
    /// Lifetime of a tag → digest resolution (`--digest-cache-ttl`).
    pub digest_ttl: Duration,
    /// Lifetime of a fetched signature set.
    pub signature_set_ttl: Duration,
    /// Capacity of the outcome cache.
    pub outcome_entries: usize,
    /// Capacity of the digest cache.
    pub digest_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            outcome_ttl: DEFAULT_OUTCOME_TTL,
            digest_ttl: DEFAULT_DIGEST_TTL,
            signature_set_ttl: DEFAULT_SIGNATURE_SET_TTL,
            outcome_entries: DEFAULT_CACHE_ENTRIES,
            digest_entries: DEFAULT_CACHE_ENTRIES,
        }
    }
}

/// How verification runs: the budget, the caches and the concurrency bounds.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// The time one admission request may take (`--budget`).
    pub budget: Duration,
    /// The caches.
    pub cache: CacheConfig,
    /// Registry fetches in flight at once, all hosts (`--max-concurrent-verifications`).
    pub max_concurrent_fetches: usize,
    /// Registry fetches in flight at once per registry host.
    pub per_registry_concurrency: usize,
    /// How long a fetch may run on, to fill the cache, once every request that wanted it has
    /// been answered; then it is cancelled.
    pub unattended_fetch_limit: Duration,
    /// The Sigstore trust material (`--trusted-root`; the embedded public-good root by default).
    pub trusted_root: std::sync::Arc<sealgate_core::sigstore::trust::TrustedRoot>,
}

/// The default [`VerifyConfig::unattended_fetch_limit`].
pub const DEFAULT_UNATTENDED_FETCH_LIMIT: Duration = Duration::from_secs(30);

impl Default for VerifyConfig {
    fn default() -> VerifyConfig {
        VerifyConfig {
            budget: DEFAULT_BUDGET,
            cache: CacheConfig::default(),
            max_concurrent_fetches: DEFAULT_MAX_CONCURRENT_VERIFICATIONS,
            per_registry_concurrency: DEFAULT_PER_REGISTRY_CONCURRENCY,
            unattended_fetch_limit: DEFAULT_UNATTENDED_FETCH_LIMIT,
            trusted_root: std::sync::Arc::new(
                sealgate_core::sigstore::trust::TrustedRoot::public_good().clone(),
            ),
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The directory (or file) of Kyverno policies, polled for changes.
    pub policies: PathBuf,
    /// `host:port` to listen on (port 0: any free port).
    pub listen: String,
    /// The serving certificate.
    pub tls: TlsSource,
    /// Extra DNS names or IPs of the self-signed server certificate (`--tls-san`).
    pub tls_names: Vec<String>,
    /// Where the audit database and the self-signed certificates live.
    pub data_dir: PathBuf,
    /// Budget, caches and concurrency.
    pub verify: VerifyConfig,
    /// How long audit records are kept, and how many.
    pub audit_retention: Retention,
    /// The bearer token `GET /audit` requires (`--audit-token-file`); `None`: no token.
    pub audit_token: Option<AuditToken>,
    /// Whether each answer waits for its audit row's commit (`--audit-sync`): no answered
    /// request without its row, even after SIGKILL; otherwise a kill loses at most the last
    /// flush window (200 ms) of rows.
    pub audit_sync: bool,
    /// The registry client (built from the shared registry flags).
    pub registry: Client,
    /// How policy files are read (`--allow-unknown-fields`).
    pub load: LoadOptions,
    /// How often the policy directory is checked.
    pub policy_poll: Duration,
    /// How often the certificate files are checked.
    pub cert_poll: Duration,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

impl ServeConfig {
    /// A configuration with every default: self-signed TLS on `127.0.0.1:8443`, data in
    /// [`DEFAULT_DATA_DIR`](crate::audit::DEFAULT_DATA_DIR).
    pub fn new(policies: PathBuf, registry: Client) -> ServeConfig {
        ServeConfig {
            policies,
            listen: "127.0.0.1:8443".into(),
            tls: TlsSource::SelfSigned,
            tls_names: Vec::new(),
            data_dir: PathBuf::from(crate::audit::DEFAULT_DATA_DIR),
            verify: VerifyConfig::default(),
            audit_retention: Retention::default(),
            audit_token: None,
            audit_sync: false,
            load: LoadOptions::default(),
            registry,
            policy_poll: DEFAULT_POLICY_POLL,
            cert_poll: DEFAULT_CERT_POLL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

pub use sealgate_core::timestamp::format_duration;

/// Why a duration flag value is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration '{input}': give a number and a unit, such as 500ms, 8s, 5m, 1h or 2d (at most ten years)"
)]
pub struct DurationError {
    /// The text given.
    pub input: String,
}

/// Parses `500ms`, `8s`, `1.5s`, `5m`, `1h`, `2d` (and combinations such as `1h30m`).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_string(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (number, tail) = rest.split_at(number_end);
        let value: f64 = number.parse().map_err(|_| err())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let seconds = match unit {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(err()),
        };
        total += value * seconds;
        rest = tail;
    }
    // Longer than ten years is a typo, and `Instant + duration` would overflow.
    if total > MAX_DURATION_SECS {
        return Err(err());
    }
    Duration::try_from_secs_f64(total).map_err(|_| err())
}

/// The longest duration a flag takes: ten years.
const MAX_DURATION_SECS: f64 = 10.0 * 365.0 * 86_400.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_beyond_ten_years_are_refused() {
        assert!(parse_duration("3650d").is_ok());
        assert!(parse_duration("3651d").is_err());
        assert!(parse_duration("18446744073709551615s").is_err());
    }

    #[test]
    fn durations_parse_and_print_as_the_flags_write_them() {
        let cases = [
            ("8s", Duration::from_secs(8), "8s"),
            ("500ms", Duration::from_millis(500), "500ms"),
            ("1.5s", Duration::from_millis(1500), "1.5s"),
            ("5m", Duration::from_secs(300), "5m"),
            ("1h", Duration::from_secs(3600), "1h"),
            ("720h", Duration::from_secs(720 * 3600), "720h"),
            ("1h30m", Duration::from_secs(5400), "90m"),
            ("2d", Duration::from_secs(172_800), "48h"),
        ];
        for (text, want, printed) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
            assert_eq!(format_duration(want), printed, "{text}");
        }
        for bad in ["", "8", "s", "8x", "-1s", "1..5s", "8 s"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.to_string().contains("such as 500ms, 8s"), "{bad}: {e}");
        }
    }
}
