//! [`Verifier`]: the engine's three steps with registry evidence fetched fast and never late.
//!
//! For one resource: [`plan`] → tag digests (digest cache, else a shared resolution) → attestor
//! outcomes (outcome cache, else the signature sets they need, fetched as shared flights) →
//! [`Evidence::verify_missing`] → [`decide`]. Properties:
//!
//! - **Parallel and bounded.** Every fetch a request needs starts at once, as a spawned task; a
//!   global semaphore (`--max-concurrent-verifications`) and one per registry host bound how many
//!   run.
//! - **Shared.** Identical fetches in flight are joined ([`SingleFlight`]): 100 simultaneous
//!   admissions of a new image cost one tag resolution and one signature fetch. A fetched
//!   signature set is also kept for a few seconds (10 s by default), because verification runs
//!   in each request after the fetch: a request arriving between the end of the fetch and the
//!   caching of the verified outcome would otherwise fetch again.
//! - **Cached.** Verified attestor outcomes are kept for `--cache-ttl`, keyed by
//!   [`OutcomeKey`] (attestor content, signature repository, image digest), so a policy edit that
//!   changes an attestor misses by construction; tag resolutions are kept for
//!   `--digest-cache-ttl`. Failures are never cached, and entries with `useCache: false` neither
//!   read nor fill the outcome cache (as in Kyverno).
//! - **Deadline.** Waiting stops at the request's budget. Fetches still pending become
//!   [`FetchFailure::Timeout`] with the budget and what was slow, so the engine decides (Enforce
//!   with failurePolicy Fail denies, Audit and Ignore warn); the fetch itself runs on and fills
//!   the cache for the next request.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sealgate_core::cosign::SignatureSet;
use sealgate_core::engine::Resource;
use sealgate_core::engine::{
    AttestorOutcome, Decision, Evidence, FetchFailure, OutcomeKey, Plan, SignatureRequest,
    VerifyContext, decide, plan, signature_repository,
};
use sealgate_core::policy::{Attestor, AttestorKind, AttestorSet, Policy, VerifierType};
use sealgate_core::trust::TrustedRoot;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::Client;
use sealgate_registry::evidence::fetch_failure;
use sealgate_registry::signatures::fetch_signatures;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cache::TtlCache;
use crate::config::{VerifyConfig, format_duration};
use crate::metrics::Metrics;
use crate::single_flight::{Flight, Joined, Progress, SingleFlight};

/// A fetch still running after this long is abandoned. The registry client's own per-request
/// timeout (`--registry-timeout`) and bounded retries normally end it long before.
const FLIGHT_LIMIT: Duration = Duration::from_secs(300);

/// How many signature sets are checked inline on the async thread; more move to a blocking
/// section (multi-threaded runtime only).
const INLINE_CHECKS: usize = 4;

type DigestResult = Result<Digest, FetchFailure>;
type SignatureResult = Result<Arc<SignatureSet>, FetchFailure>;

/// The caching, shared, deadline-bounded evidence gatherer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: VerifyConfig,
    outcomes: TtlCache<OutcomeKey, AttestorOutcome>,
    digests: TtlCache<String, Digest>,
    /// Signature sets just fetched, kept briefly so that a request arriving between the end of a
    /// fetch and the caching of its verified outcome does not fetch again.
    signature_sets: TtlCache<SignatureRequest, Arc<SignatureSet>>,
    resolving: Arc<SingleFlight<String, DigestResult>>,
    fetching: Arc<SingleFlight<SignatureRequest, SignatureResult>>,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
    all: Arc<Semaphore>,
    metrics: Metrics,
}

/// A decision and how it was reached.
#[derive(Debug)]
pub struct Verdict {
    /// The engine's decision.
    pub decision: Decision,
    /// Whether the budget ran out with fetches still pending.
    pub timed_out: bool,
    /// Registry fetches this request started.
    pub started: usize,
    /// Registry fetches this request joined.
    pub shared: usize,
    /// Cache hits (digests and outcomes).
    pub cache_hits: usize,
}

/// A fetch this request waits for.
struct Pending<K, V> {
    key: K,
    flight: Flight<V>,
}

impl Verifier {
    /// A verifier fetching with `client`.
    pub fn new(client: Client, config: VerifyConfig, metrics: Metrics) -> Verifier {
        let all = Arc::new(Semaphore::new(config.max_concurrent_fetches.max(1)));
        Verifier {
            inner: Arc::new(Inner {
                client,
                outcomes: TtlCache::new(config.cache.outcome_ttl, config.cache.outcome_entries),
                digests: TtlCache::new(config.cache.digest_ttl, config.cache.digest_entries),
                signature_sets: TtlCache::new(
                    config.cache.signature_set_ttl,
                    config.cache.outcome_entries,
                ),
                config,
                resolving: Arc::default(),
                fetching: Arc::default(),
                hosts: Mutex::new(HashMap::new()),
                all,
                metrics,
            }),
        }
    }

    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The request budget.
    pub fn budget(&self) -> Duration {
        self.inner.config.budget
    }

    /// Decides `resource` under `policies`, waiting for registries at most `remaining`. Timeout
    /// messages name `budget`, the request's whole budget ("did not finish within 8s").
    pub async fn decide(
        &self,
        policies: &[Policy],
        resource: &Resource,
        remaining: Duration,
        budget: Duration,
    ) -> Verdict {
        let deadline = Instant::now() + remaining;
        let plan = plan(policies, resource);
        let mut verdict = Verdict {
            decision: Decision {
                allowed: true,
                message: String::new(),
                warnings: Vec::new(),
                results: Vec::new(),
                patch: Vec::new(),
                uncovered: Vec::new(),
            },
            timed_out: false,
            started: 0,
            shared: 0,
            cache_hits: 0,
        };
        let mut evidence = Evidence::default();
        if !plan.rules.is_empty() {
            self.resolve_digests(&plan, &mut evidence, &mut verdict, deadline, budget)
                .await;
            let uncached = self
                .fetch_signatures(&plan, &mut evidence, &mut verdict, deadline, budget)
                .await;
            self.verify(&plan, &mut evidence, &uncached);
        }
        verdict.decision = decide(&plan, &evidence);
        verdict
    }

    async fn resolve_digests(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
        deadline: Instant,
        budget: Duration,
    ) {
        let inner = &self.inner;
        let mut pending = Vec::new();
        for image in plan.digest_requests() {
            let key = image.normalized();
            if let Some(d) = inner.digests.get(&key, std::time::Instant::now()) {
                inner.metrics.cache_lookup("digest", true);
                verdict.cache_hits += 1;
                evidence.digests.insert(key, Ok(d));
                continue;
            }
            inner.metrics.cache_lookup("digest", false);
            let host = image.api_host().to_string();
            let joined = inner.resolving.join_or_start(
                key.clone(),
                || inner.digests.get(&key, std::time::Instant::now()).map(Ok),
                || format!("waiting for {host} to answer the tag resolution of {key}"),
                |progress| Arc::clone(inner).resolve(image.clone(), progress),
            );
            self.track(joined, key, "digest", verdict, &mut pending, |k, v| {
                evidence.digests.insert(k, v);
            });
        }
        let results = wait_all(pending, deadline, budget, verdict).await;
        evidence.digests.extend(results);
    }

    /// Fetches the signature sets the plan needs; returns the outcome keys not to cache.
    async fn fetch_signatures(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
        deadline: Instant,
        budget: Duration,
    ) -> HashSet<OutcomeKey> {
        let inner = &self.inner;
        let (needed, uncached) = self.needed_signatures(plan, evidence, verdict);
        let uncached_requests: HashSet<SignatureRequest> = uncached
            .iter()
            .map(|k| SignatureRequest {
                repository: k.repository.clone(),
                digest: k.digest.clone(),
            })
            .collect();
        let mut pending = Vec::new();
        for request in needed {
            let key = request.clone();
            let Some(repository) = request.repository_ref() else {
                evidence.signatures.insert(
                    request.clone(),
                    Err(FetchFailure::Unavailable(format!(
                        "'{}' is not a valid signature repository",
                        request.repository
                    ))),
                );
                continue;
            };
            let host = repository.api_host().to_string();
            let what = format!(
                "waiting for {host} to send the signatures of {}@{}",
                request.repository, request.digest
            );
            // `useCache: false` entries get a fresh set (a shared fetch in flight is fresh).
            let cacheable = !uncached_requests.contains(&request);
            let joined = inner.fetching.join_or_start(
                key.clone(),
                || {
                    if !cacheable {
                        return None;
                    }
                    let hit = inner.signature_sets.get(&key, std::time::Instant::now());
                    inner.metrics.cache_lookup("signatures", hit.is_some());
                    hit.map(Ok)
                },
                || what,
                |progress| Arc::clone(inner).fetch(repository, request.clone(), progress),
            );
            self.track(joined, key, "signatures", verdict, &mut pending, |k, v| {
                evidence.signatures.insert(k, v.map(unshare));
            });
        }
        let results = wait_all(pending, deadline, budget, verdict).await;
        evidence
            .signatures
            .extend(results.into_iter().map(|(k, v)| (k, v.map(unshare))));
        uncached
    }

    /// Records how a fetch was joined; a cached value goes straight to `ready`.
    fn track<K, V>(
        &self,
        joined: Joined<V>,
        key: K,
        fetch: &'static str,
        verdict: &mut Verdict,
        pending: &mut Vec<Pending<K, V>>,
        mut ready: impl FnMut(K, V),
    ) {
        match joined {
            Joined::Cached(v) => {
                verdict.cache_hits += 1;
                ready(key, v);
            }
            Joined::Started(flight) => {
                verdict.started += 1;
                pending.push(Pending { key, flight });
            }
            Joined::Shared(flight) => {
                verdict.shared += 1;
                self.inner.metrics.fetch_shared(fetch);
                pending.push(Pending { key, flight });
            }
        }
    }

    /// The signature sets the plan still needs: for every attestor the engine will consult, the
    /// cached outcome goes into `evidence`; the others need their `.sig` set. Keys that an entry
    /// with `useCache: false` consults are neither read from nor written to the cache (Kyverno
    /// bypasses its cache both ways for such entries); they are returned as `uncached`.
    fn needed_signatures(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
    ) -> (BTreeSet<SignatureRequest>, HashSet<OutcomeKey>) {
        let inner = &self.inner;
        let now = std::time::Instant::now();
        // Every key the engine will look up, and whether the cache may answer it.
        let mut keys: HashMap<OutcomeKey, bool> = HashMap::new();
        for r in &plan.rules {
            if r.unsupported.is_some() {
                continue;
            }
            for c in &r.checks {
                let entry = &r.rule.verify_images[c.entry];
                let image = &plan.images[c.image];
                let Ok(reference) = &image.reference else {
                    continue;
                };
                if entry.attestors.is_empty()
                    || image.unsupported.is_some()
                    || entry.skips(image.normalized())
                    || entry.verifier != VerifierType::Cosign
                    || !entry.attestations.is_empty()
                {
                    continue;
                }
                let Some(Ok(digest)) = evidence.digest_of(reference) else {
                    continue;
                };
                let mut leaves = Vec::new();
                for set in &entry.attestors {
                    leaves_of(set, &mut leaves);
                }
                for attestor in leaves {
                    let key = OutcomeKey {
                        attestor: attestor.fingerprint().to_string(),
                        repository: signature_repository(image, entry, attestor).into_owned(),
                        digest: digest.clone(),
                    };
                    *keys.entry(key).or_insert(true) &= entry.use_cache;
                }
            }
        }
        let mut needed = BTreeSet::new();
        let mut uncached = HashSet::new();
        for (key, cacheable) in keys {
            if evidence.outcomes.contains_key(&key) {
                continue;
            }
            if cacheable {
                if let Some(outcome) = inner.outcomes.get(&key, now) {
                    inner.metrics.cache_lookup("outcome", true);
                    verdict.cache_hits += 1;
                    evidence.outcomes.insert(key, outcome);
                    continue;
                }
                inner.metrics.cache_lookup("outcome", false);
            }
            needed.insert(SignatureRequest {
                repository: key.repository.clone(),
                digest: key.digest.clone(),
            });
            if !cacheable {
                uncached.insert(key);
            }
        }
        (needed, uncached)
    }

    /// Checks the fetched signatures and caches what verified (except `uncached` keys).
    fn verify(&self, plan: &Plan<'_>, evidence: &mut Evidence, uncached: &HashSet<OutcomeKey>) {
        let ctx = VerifyContext {
            trust: TrustedRoot::public_good(),
            now: unix_now(),
        };
        let many = evidence.signatures.len() > INLINE_CHECKS
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let computed = if many {
            tokio::task::block_in_place(|| evidence.verify_missing(plan, ctx))
        } else {
            evidence.verify_missing(plan, ctx)
        };
        let now = std::time::Instant::now();
        for key in computed {
            if uncached.contains(&key) {
                continue;
            }
            if let Some(outcome @ AttestorOutcome::Verified { .. }) = evidence.outcomes.get(&key) {
                self.inner.outcomes.insert(key, outcome.clone(), now);
            }
        }
    }
}

impl Inner {
    /// A slot for `host` and a global one; `progress` says which is awaited.
    async fn slots(
        &self,
        host: &str,
        progress: &Progress,
    ) -> (Option<OwnedSemaphorePermit>, Option<OwnedSemaphorePermit>) {
        let per_host = {
            let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(hosts.entry(host.to_string()).or_insert_with(|| {
                Arc::new(Semaphore::new(self.config.per_registry_concurrency.max(1)))
            }))
        };
        let before = progress.get();
        progress.set(format!(
            "waiting for one of the {} connection slots to {host} (all busy)",
            self.config.per_registry_concurrency.max(1)
        ));
        // The semaphores are never closed, so acquiring only fails if that changes.
        let host_permit = per_host.acquire_owned().await.ok();
        progress.set(format!(
            "waiting for one of the {} registry fetch slots (--max-concurrent-verifications; all busy)",
            self.config.max_concurrent_fetches.max(1)
        ));
        let global = Arc::clone(&self.all).acquire_owned().await.ok();
        progress.set(before);
        (host_permit, global)
    }

    async fn resolve(self: Arc<Self>, image: ImageRef, progress: Progress) -> DigestResult {
        let host = image.api_host().to_string();
        let key = image.normalized();
        let _slots = self.slots(&host, &progress).await;
        let _in_flight = self.metrics.fetch_started();
        let start = Instant::now();
        let result = match tokio::time::timeout(FLIGHT_LIMIT, self.client.resolve(&image)).await {
            Ok(r) => r.map_err(|e| fetch_failure(&e)),
            Err(_) => Err(abandoned(&host)),
        };
        self.metrics
            .fetch_duration(&host, "digest", start.elapsed());
        if let Ok(d) = &result {
            self.digests
                .insert(key, d.clone(), std::time::Instant::now());
        }
        result
    }

    async fn fetch(
        self: Arc<Self>,
        repository: ImageRef,
        request: SignatureRequest,
        progress: Progress,
    ) -> SignatureResult {
        let host = repository.api_host().to_string();
        let _slots = self.slots(&host, &progress).await;
        let _in_flight = self.metrics.fetch_started();
        let start = Instant::now();
        let fetched = fetch_signatures(&self.client, &repository, &request.digest);
        let result = match tokio::time::timeout(FLIGHT_LIMIT, fetched).await {
            Ok(r) => r.map(Arc::new).map_err(|e| fetch_failure(&e)),
            Err(_) => Err(abandoned(&host)),
        };
        self.metrics
            .fetch_duration(&host, "signatures", start.elapsed());
        if let Ok(set) = &result {
            self.signature_sets
                .insert(request, Arc::clone(set), std::time::Instant::now());
        }
        result
    }
}

fn abandoned(host: &str) -> FetchFailure {
    FetchFailure::Timeout(format!(
        "{}: {host} kept the fetch going that long; it was abandoned",
        format_duration(FLIGHT_LIMIT)
    ))
}

/// Waits for every fetch until `deadline`; what is still pending then becomes a timeout that
/// says what it was waiting for.
async fn wait_all<K, V>(
    pending: Vec<Pending<K, Result<V, FetchFailure>>>,
    deadline: Instant,
    budget: Duration,
    verdict: &mut Verdict,
) -> Vec<(K, Result<V, FetchFailure>)>
where
    V: Clone,
{
    let mut out = Vec::with_capacity(pending.len());
    // The fetches run concurrently as tasks; waiting for them one after the other costs nothing.
    for Pending { key, mut flight } in pending {
        let result = match tokio::time::timeout_at(deadline, flight.wait()).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(FetchFailure::Unavailable(
                "the fetch task stopped without a result (the server is shutting down?)".into(),
            )),
            Err(_) => {
                verdict.timed_out = true;
                Err(FetchFailure::Timeout(format!(
                    "{}: {}",
                    format_duration(budget),
                    flight.progress()
                )))
            }
        };
        out.push((key, result));
    }
    out
}

fn leaves_of<'a>(set: &'a AttestorSet, out: &mut Vec<&'a Attestor>) {
    for entry in &set.entries {
        match &entry.kind {
            AttestorKind::Nested(inner) => leaves_of(inner, out),
            _ => out.push(entry),
        }
    }
}

fn unshare(set: Arc<SignatureSet>) -> SignatureSet {
    Arc::unwrap_or_clone(set)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
