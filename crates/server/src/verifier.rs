//! [`Verifier`]: the engine's three steps with registry evidence fetched fast and never late.
//!
//! For one resource: [`plan`] → tag digests (digest cache, else a shared resolution) → attestor
//! outcomes (outcome cache, else the signature sets they need, fetched as shared flights) →
//! [`Evidence::verify_missing`] → [`decide`]. Properties:
//!
//! - **Parallel and bounded.** Every fetch a request needs starts as soon as it can, as a
//!   spawned task: tag resolutions at once, each image's signature fetches as soon as its digest
//!   is known (a slow tag does not hold up the other images). A global semaphore
//!   (`--max-concurrent-verifications`) and one per registry host bound how many run.
//! - **Shared.** Identical fetches in flight are joined ([`SingleFlight`]): 100 simultaneous
//!   admissions of a new image cost one tag resolution and one signature fetch. A fetched
//!   signature set is also kept for a few seconds (10 s by default), because verification runs
//!   in each request after the fetch: a request arriving between the end of the fetch and the
//!   caching of the verified outcome would otherwise fetch again. The requests that joined a
//!   fetch look the outcome cache up again when it ends, so the signatures are checked by the
//!   first of them, not by each.
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
    VerifyContext, decide, plan,
};
use sealgate_core::policy::Policy;
use sealgate_core::sigstore::trust::TrustedRoot;
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
/// Registry hosts whose connection slots are remembered before idle ones are forgotten.
const MAX_TRACKED_HOSTS: usize = 1024;

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

/// What one request is gathering.
#[derive(Default)]
struct Gathering {
    /// Tag resolutions waited for.
    digests: Vec<Pending<String, DigestResult>>,
    /// Signature fetches waited for.
    signatures: Vec<Pending<SignatureRequest, SignatureResult>>,
    /// Outcome keys asked for (not answered by the cache).
    seen: HashSet<OutcomeKey>,
    /// Signature sets already asked for.
    requested: HashSet<SignatureRequest>,
    /// Keys consulted by `useCache: false` entries: not read from or written to the cache.
    uncached: HashSet<OutcomeKey>,
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
            let mut g = Gathering::default();
            self.start_digests(&plan, &mut evidence, &mut verdict, &mut g);
            // Images whose digest is known (pinned, or cached) do not wait for the others' tags,
            // and each resolved tag starts its signature fetches at once.
            self.start_signatures(&plan, &mut evidence, &mut verdict, &mut g);
            self.pipeline_digests(&plan, &mut evidence, &mut verdict, &mut g, deadline, budget)
                .await;
            let signatures = std::mem::take(&mut g.signatures);
            let fetched = wait_all(signatures, deadline, budget, &mut verdict).await;
            evidence
                .signatures
                .extend(fetched.into_iter().map(|(k, v)| (k, v.map(unshare))));
            // With every outcome from the cache there is nothing to check.
            if !evidence.signatures.is_empty() {
                self.take_outcomes_verified_meanwhile(&mut evidence, &g, &mut verdict);
                self.verify(&plan, &mut evidence, &g.uncached);
            }
        }
        verdict.decision = decide(&plan, &evidence);
        verdict
    }

    /// Starts (or joins) the tag resolutions the plan needs; cached digests go into `evidence`.
    fn start_digests(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
        g: &mut Gathering,
    ) {
        let inner = &self.inner;
        let (mut hits, mut misses) = (0, 0);
        let now = std::time::Instant::now();
        for image in plan.digest_requests() {
            if let Some(d) = inner.digests.get(image.normalized(), now) {
                hits += 1;
                verdict.cache_hits += 1;
                evidence
                    .digests
                    .insert(image.normalized().to_string(), Ok(d));
                continue;
            }
            let key = image.normalized().to_string();
            misses += 1;
            let host = image.api_host().to_string();
            let joined = inner.resolving.join_or_start(
                key.clone(),
                || inner.digests.get(&key, std::time::Instant::now()).map(Ok),
                || format!("waiting for {host} to answer the tag resolution of {key}"),
                |progress| Arc::clone(inner).resolve(image.clone(), progress),
            );
            self.track(joined, key, "digest", verdict, &mut g.digests, |k, v| {
                evidence.digests.insert(k, v);
            });
        }
        inner.metrics.cache_lookups("digest", hits, misses);
    }

    /// Waits for the tag resolutions in the order they finish, starting the signature fetches
    /// each one makes possible; at the deadline the rest become timeouts.
    async fn pipeline_digests(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
        g: &mut Gathering,
        deadline: Instant,
        budget: Duration,
    ) {
        let mut waiting: HashMap<String, Flight<DigestResult>> = HashMap::new();
        // Waiters only: aborting them (when the set is dropped) leaves the fetches running.
        let mut waiters = tokio::task::JoinSet::new();
        for Pending { key, flight } in std::mem::take(&mut g.digests) {
            let (k, mut f) = (key.clone(), flight.clone());
            waiters.spawn(async move { (k, f.wait().await) });
            waiting.insert(key, flight);
        }
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, waiters.join_next()).await {
            let Ok((key, result)) = joined else {
                continue;
            };
            waiting.remove(&key);
            evidence
                .digests
                .insert(key, result.unwrap_or_else(|| Err(stopped())));
            self.start_signatures(plan, evidence, verdict, g);
        }
        for (key, flight) in waiting {
            verdict.timed_out = true;
            evidence
                .digests
                .insert(key, Err(timed_out(budget, &flight)));
        }
    }

    /// Starts (or joins) the signature fetches the plan needs given the digests known so far.
    fn start_signatures(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
        g: &mut Gathering,
    ) {
        let inner = &self.inner;
        let needed = self.needed_signatures(plan, evidence, verdict, g);
        for request in needed {
            if !g.requested.insert(request.clone()) {
                continue;
            }
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
            let cacheable = !g
                .uncached
                .iter()
                .any(|k| k.repository == request.repository && k.digest == request.digest);
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
            self.track(
                joined,
                key,
                "signatures",
                verdict,
                &mut g.signatures,
                |k, v| {
                    evidence.signatures.insert(k, v.map(unshare));
                },
            );
        }
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
    /// bypasses its cache both ways for such entries); they are added to `g.uncached`. Keys
    /// already handled (`g.seen`) are skipped, so a second call only adds what new digests need.
    fn needed_signatures(
        &self,
        plan: &Plan<'_>,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
        g: &mut Gathering,
    ) -> BTreeSet<SignatureRequest> {
        let inner = &self.inner;
        let now = std::time::Instant::now();
        // Every key the engine will look up, and whether the cache may answer it.
        let checks = plan.attestor_checks(&|r: &ImageRef| match evidence.digest_of(r) {
            Some(Ok(digest)) => Some(digest),
            _ => None,
        });
        let mut keys: HashMap<OutcomeKey, bool> = HashMap::with_capacity(checks.len());
        for check in checks {
            *keys.entry(check.key).or_insert(true) &= check.entry.use_cache;
        }
        let mut needed = BTreeSet::new();
        let (mut hits, mut misses) = (0, 0);
        evidence.outcomes.reserve(keys.len());
        for (key, cacheable) in keys {
            // Outcomes found are in `evidence` from now on; `seen` holds the keys asked for, so a
            // second call (after more tags resolved) neither looks them up nor counts them again.
            if evidence.outcomes.contains_key(&key) || g.seen.contains(&key) {
                continue;
            }
            let key = if cacheable {
                match self.take_cached_outcome(key, now, evidence, verdict) {
                    None => {
                        hits += 1;
                        continue;
                    }
                    Some(key) => {
                        misses += 1;
                        key
                    }
                }
            } else {
                key
            };
            needed.insert(SignatureRequest {
                repository: key.repository.clone(),
                digest: key.digest.clone(),
            });
            if !cacheable {
                g.uncached.insert(key.clone());
            }
            g.seen.insert(key);
        }
        inner.metrics.cache_lookups("outcome", hits, misses);
        needed
    }

    /// Looks the outcomes this request missed in the cache up again once its signature sets have
    /// arrived. Requests that joined one fetch wake together; whichever checks the signatures
    /// first caches what verified, and the others take that instead of checking the same
    /// signatures again (100 simultaneous admissions of a new image signed by 10 keys: about
    /// 20 signature checks instead of 1,000). Counted as `cache="outcome_after_fetch"`.
    fn take_outcomes_verified_meanwhile(
        &self,
        evidence: &mut Evidence,
        g: &Gathering,
        verdict: &mut Verdict,
    ) {
        let now = std::time::Instant::now();
        let (mut hits, mut misses) = (0, 0);
        for key in &g.seen {
            if g.uncached.contains(key) || evidence.outcomes.contains_key(key) {
                continue;
            }
            // (the cold path: a key's clone per lookup costs nothing that matters here)
            if self
                .take_cached_outcome(key.clone(), now, evidence, verdict)
                .is_none()
            {
                hits += 1;
            } else {
                misses += 1;
            }
        }
        self.inner
            .metrics
            .cache_lookups("outcome_after_fetch", hits, misses);
    }

    /// Puts the cached outcome of `key` into `evidence` (a cache hit: `None`), or gives the key
    /// back when the cache has none.
    fn take_cached_outcome(
        &self,
        key: OutcomeKey,
        now: std::time::Instant,
        evidence: &mut Evidence,
        verdict: &mut Verdict,
    ) -> Option<OutcomeKey> {
        let Some(outcome) = self.inner.outcomes.get(&key, now) else {
            return Some(key);
        };
        verdict.cache_hits += 1;
        evidence.outcomes.insert(key, outcome);
        None
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
            // Pods may name any number of hosts: past a bound, forget the idle ones (no fetch
            // holds or waits for their semaphore, so a new one is equivalent).
            if hosts.len() >= MAX_TRACKED_HOSTS && !hosts.contains_key(host) {
                hosts.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
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
        let key = image.normalized().to_string();
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
            Ok(None) => Err(stopped()),
            Err(_) => {
                verdict.timed_out = true;
                Err(timed_out(budget, &flight))
            }
        };
        out.push((key, result));
    }
    out
}

fn stopped() -> FetchFailure {
    FetchFailure::Unavailable(
        "the fetch task stopped without a result (the server is shutting down?)".into(),
    )
}

/// "8s: waiting for HOST to …": what the engine writes after "did not finish within".
fn timed_out<V: Clone>(budget: Duration, flight: &Flight<V>) -> FetchFailure {
    FetchFailure::Timeout(format!(
        "{}: {}",
        format_duration(budget),
        flight.progress()
    ))
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
