//! [`CachingFetcher`]: the webhook's [`Fetch`], which the one evaluation driver
//! ([`sealgate_registry::driver::drive`]) carries each review out through: caches, shared flights,
//! per-host and global limits, and metrics in front of an upstream fetch (the registry client;
//! a fake in tests).
//!
//! - **Parallel and bounded.** Every fetch starts as a spawned task as soon as the evaluation
//!   wants it; a global semaphore (`--max-concurrent-verifications`) and one per registry host
//!   bound how many run, and what a fetch waits for is its [`Progress`], which a deadline's
//!   timeout message names.
//! - **Shared.** Identical fetches in flight are joined ([`SingleFlight`]): 100 simultaneous
//!   admissions of a new image cost one tag resolution and one signature fetch (and, for an
//!   image with no `.sig`, one fetch of its referrers' Sigstore bundles). A fetched
//!   signature set is also kept for a few seconds (10 s by default), because verification runs
//!   in each request after the fetch: a request arriving between the end of the fetch and the
//!   caching of the verified outcome would otherwise fetch again. Requests that joined a fetch
//!   look the outcome cache up again when it ends ([`Lookup::AfterFetch`]), so the signatures
//!   are checked by the first of them, not by each.
//! - **Cached.** Verified attestor outcomes are kept for `--cache-ttl`, keyed by
//!   [`OutcomeKey`] (attestor content, signature repository, image digest), so a policy edit that
//!   changes an attestor misses by construction; tag resolutions are kept for
//!   `--digest-cache-ttl`. Failures are never cached, and entries with `useCache: false` neither
//!   read nor fill the outcome cache (as in Kyverno): the evaluation does not ask for them.
//! - **Deadline.** The driver stops waiting at the request's budget; the fetch itself runs on to
//!   fill the cache for the next request, for at most
//!   [`unattended_fetch_limit`](VerifyConfig::unattended_fetch_limit) (30 s) once no request
//!   waits for it (then it is cancelled), and never past [`FLIGHT_LIMIT`]; how such fetches end is
//!   counted (`sealgate_registry_fetches_unattended_total`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sealgate_core::cosign::SignatureSet;
use sealgate_core::engine::{
    AttestorOutcome, Decision, Evaluation, FetchFailure, FetchFailureKind, Mode, OutcomeKey,
    Resource, SignatureRequest, Waiting,
};
use sealgate_core::policy::Policy;
use sealgate_core::sigstore::bundle_set::BundleSet;
use sealgate_core::timestamp::Clock;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::driver::{
    ClientFetch, Deadline, Fetch, Fetched, Lookup, Pending, SystemClock, drive,
};
use sealgate_registry::{Client, Keyring, RequestStats};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::cache::TtlCache;
use crate::config::VerifyConfig;
use crate::metrics::Metrics;
use crate::single_flight::{Flight, Joined, Progress, SingleFlight, Unattended};

/// The single-flight map of one kind of fetch, reporting how its unattended fetches end.
fn flights<K, V>(
    config: &VerifyConfig,
    metrics: &Metrics,
    fetch: &'static str,
) -> Arc<SingleFlight<K, V>> {
    let metrics = metrics.clone();
    let report = move |end: Unattended| metrics.fetch_unattended(fetch, end.as_str());
    Arc::new(SingleFlight::new(config.unattended_fetch_limit, report))
}

/// A fetch still running after this long is abandoned. The registry client's own per-request
/// timeout (`--registry-timeout`) and bounded retries normally end it long before.
pub const FLIGHT_LIMIT: Duration = Duration::from_secs(300);

/// Registry hosts whose connection slots are remembered before idle ones are forgotten.
const MAX_TRACKED_HOSTS: usize = 1024;

/// Registry clients with a review's credentials kept at once (by keyring); past it, the idle
/// ones are forgotten.
const MAX_SCOPED_CLIENTS: usize = 256;

/// A signature fetch's key: the credentials it was made with (0: the server's own) and what.
type SignatureKey = (u64, SignatureRequest);

type DigestResult = Result<Digest, FetchFailure>;
type SignatureResult = Result<Arc<SignatureSet>, FetchFailure>;
type BundleResult = Result<Arc<BundleSet>, FetchFailure>;
/// The fetches in flight of one kind of set ([`SetKind`]).
type SetFlights<T> = Arc<SingleFlight<SignatureKey, Result<Arc<T>, FetchFailure>>>;

/// The caching, shared, bounded fetcher the webhook decides with. Cheap to clone.
#[derive(Clone)]
pub struct CachingFetcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CachingFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingFetcher")
            .field("outcomes", &self.inner.outcomes.len())
            .field("digests", &self.inner.digests.len())
            .field("in_flight", &self.inner.metrics.in_flight())
            .finish()
    }
}

struct Inner {
    upstream: Arc<dyn Fetch>,
    client: Option<Client>,
    config: VerifyConfig,
    clock: Arc<dyn Clock>,
    outcomes: TtlCache<OutcomeKey, AttestorOutcome>,
    digests: TtlCache<String, Digest>,
    /// Signature sets just fetched, kept briefly so that a request arriving between the end of a
    /// fetch and the caching of its verified outcome does not fetch again.
    signature_sets: TtlCache<SignatureKey, Arc<SignatureSet>>,
    /// The referrers' Sigstore bundles just fetched, kept as briefly and for the same reason.
    bundle_sets: TtlCache<SignatureKey, Arc<BundleSet>>,
    resolving: Arc<SingleFlight<String, DigestResult>>,
    fetching: Arc<SingleFlight<SignatureKey, SignatureResult>>,
    bundling: Arc<SingleFlight<SignatureKey, BundleResult>>,
    /// Upstreams with a review's registry credentials, by keyring fingerprint.
    scoped: Mutex<HashMap<u64, Arc<dyn Fetch>>>,
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
    /// Cache hits (digests, signature sets and outcomes).
    pub cache_hits: usize,
}

impl CachingFetcher {
    /// A fetcher in front of the registry client `client`.
    pub fn new(client: Client, config: VerifyConfig, metrics: Metrics) -> CachingFetcher {
        let upstream = Arc::new(ClientFetch::unbounded(client.clone()));
        let mut fetcher = CachingFetcher::with_upstream(upstream, config, metrics);
        if let Some(inner) = Arc::get_mut(&mut fetcher.inner) {
            inner.client = Some(client);
        }
        fetcher
    }

    /// A fetcher in front of any upstream fetch (a fake one in tests).
    pub fn with_upstream(
        upstream: Arc<dyn Fetch>,
        config: VerifyConfig,
        metrics: Metrics,
    ) -> CachingFetcher {
        CachingFetcher::with_clock(upstream, config, metrics, Arc::new(SystemClock))
    }

    /// A fetcher that verifies at the times `clock` reads.
    pub fn with_clock(
        upstream: Arc<dyn Fetch>,
        config: VerifyConfig,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    ) -> CachingFetcher {
        let all = Arc::new(Semaphore::new(config.max_concurrent_fetches.max(1)));
        let resolving = flights(&config, &metrics, "digest");
        let fetching = flights(&config, &metrics, "signatures");
        let bundling = flights(&config, &metrics, "bundles");
        CachingFetcher {
            inner: Arc::new(Inner {
                upstream,
                client: None,
                outcomes: TtlCache::new(config.cache.outcome_ttl, config.cache.outcome_entries),
                digests: TtlCache::new(config.cache.digest_ttl, config.cache.digest_entries),
                signature_sets: TtlCache::new(
                    config.cache.signature_set_ttl,
                    config.cache.outcome_entries,
                ),
                bundle_sets: TtlCache::new(
                    config.cache.signature_set_ttl,
                    config.cache.outcome_entries,
                ),
                config,
                clock,
                resolving,
                fetching,
                bundling,
                hosts: Mutex::new(HashMap::new()),
                scoped: Mutex::new(HashMap::new()),
                all,
                metrics,
            }),
        }
    }

    /// The registry client's request counters (zero without a client).
    pub fn request_stats(&self) -> RequestStats {
        self.inner
            .client
            .as_ref()
            .map(Client::request_stats)
            .unwrap_or_default()
    }

    /// The request budget.
    pub fn budget(&self) -> Duration {
        self.inner.config.budget
    }

    /// Decides `resource` under `policies` for the webhook `mode`, waiting for registries at
    /// most `remaining`. Timeout messages name `budget`, the request's whole budget ("did not
    /// finish within 8s").
    pub async fn decide(
        &self,
        policies: &[Policy],
        resource: &Resource,
        mode: Mode,
        remaining: Duration,
        budget: Duration,
    ) -> Verdict {
        self.decide_with(policies, resource, mode, remaining, budget, None)
            .await
    }

    /// [`CachingFetcher::decide`] with registry credentials of the review's own (its pull
    /// secrets): its fetches use them, for the registries they name, and are shared and cached
    /// only with reviews that hold the same credentials. Verified outcomes are facts about a
    /// digest and stay shared.
    pub async fn decide_with(
        &self,
        policies: &[Policy],
        resource: &Resource,
        mode: Mode,
        remaining: Duration,
        budget: Duration,
        keyring: Option<Arc<Keyring>>,
    ) -> Verdict {
        let evaluation = Evaluation::new_at(policies, resource, mode, Some(self.inner.clock.now()));
        let scope = keyring
            .filter(|k| !k.is_empty())
            .and_then(|k| self.inner.scoped_upstream(k));
        let fetch = ReviewFetch {
            inner: &self.inner,
            counts: Counts::default(),
            scope,
        };
        let deadline = Deadline {
            at: Instant::now() + remaining,
            budget,
        };
        let driven = drive(
            evaluation,
            &fetch,
            Some(deadline),
            &self.inner.config.trusted_root,
            self.inner.clock.as_ref(),
        )
        .await;
        fetch.counts.report(&self.inner.metrics);
        Verdict {
            decision: driven.decision,
            timed_out: driven.timed_out,
            started: fetch.counts.started.load(Ordering::Relaxed),
            shared: fetch.counts.shared.load(Ordering::Relaxed),
            cache_hits: fetch.counts.cache_hits.load(Ordering::Relaxed),
        }
    }
}

/// One review's view of the fetcher: what it counts goes to its verdict and, once, to the
/// metrics.
struct ReviewFetch<'f> {
    inner: &'f Arc<Inner>,
    counts: Counts,
    /// The review's own credentials: their fingerprint and the upstream that uses them.
    scope: Option<(u64, Arc<dyn Fetch>)>,
}

impl ReviewFetch<'_> {
    fn scope_id(&self) -> u64 {
        self.scope.as_ref().map_or(0, |(id, _)| *id)
    }

    fn upstream(&self) -> Arc<dyn Fetch> {
        match &self.scope {
            Some((_, upstream)) => Arc::clone(upstream),
            None => Arc::clone(&self.inner.upstream),
        }
    }

    /// The set of kind `S` at `request`: kept from a fetch a moment ago (unless `fresh`: for
    /// `useCache: false` entries; a shared fetch in flight is fresh), else joined in flight,
    /// else fetched.
    fn set<'a, S: SetKind>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<S::Set>> {
        let inner = self.inner;
        let key = (self.scope_id(), request.clone());
        let upstream = self.upstream();
        let joined = S::flights(inner).join_or_start(
            key.clone(),
            || {
                if fresh {
                    return None;
                }
                let hit = S::kept(inner).get(&key, std::time::Instant::now());
                self.counts.lookup(S::CACHE, hit.is_some());
                hit.map(Ok)
            },
            || S::pending(request.clone()).waiting(),
            |progress| Arc::clone(inner).fetch_set::<S>(upstream, key.clone(), progress),
        );
        self.counts
            .joined(joined, S::FETCH, &inner.metrics)
            .into_future(request.host())
    }

    /// The digest cache's and flights' key of `image` (borrowed, without a scope: no
    /// allocation on the hot path's cache hits).
    fn digest_key<'i>(&self, image: &'i ImageRef) -> std::borrow::Cow<'i, str> {
        match self.scope_id() {
            0 => std::borrow::Cow::Borrowed(image.normalized()),
            id => std::borrow::Cow::Owned(format!("{id:016x} {}", image.normalized())),
        }
    }
}

/// A kind of set fetched per [`SignatureRequest`], shared in flight and kept briefly: the
/// signatures (or attestations) of a `.sig` (`.att`) image, or the Sigstore bundles among an
/// image's referrers.
trait SetKind: 'static {
    type Set: Send + Sync + 'static;
    /// Its index in [`CACHES`].
    const CACHE: usize;
    /// Its name in the fetch metrics.
    const FETCH: &'static str;
    /// The sets just fetched.
    fn kept(inner: &Inner) -> &TtlCache<SignatureKey, Arc<Self::Set>>;
    /// Its fetches in flight.
    fn flights(inner: &Inner) -> &SetFlights<Self::Set>;
    /// The pending fetch of `request`.
    fn pending(request: SignatureRequest) -> Pending;
    /// The upstream's fetch of `request`.
    fn upstream<'a>(
        upstream: &'a dyn Fetch,
        request: &'a SignatureRequest,
    ) -> Fetched<'a, Arc<Self::Set>>;
}

/// Signature (or attestation) sets.
struct Signatures;

impl SetKind for Signatures {
    type Set = SignatureSet;
    const CACHE: usize = 1;
    const FETCH: &'static str = "signatures";
    fn kept(inner: &Inner) -> &TtlCache<SignatureKey, Arc<SignatureSet>> {
        &inner.signature_sets
    }
    fn flights(inner: &Inner) -> &SetFlights<SignatureSet> {
        &inner.fetching
    }
    fn pending(request: SignatureRequest) -> Pending {
        Pending::Signatures(request)
    }
    fn upstream<'a>(
        upstream: &'a dyn Fetch,
        request: &'a SignatureRequest,
    ) -> Fetched<'a, Arc<SignatureSet>> {
        upstream.signatures(request, true)
    }
}

/// The Sigstore bundle sets of referrers.
struct Bundles;

impl SetKind for Bundles {
    type Set = BundleSet;
    const CACHE: usize = 4;
    const FETCH: &'static str = "bundles";
    fn kept(inner: &Inner) -> &TtlCache<SignatureKey, Arc<BundleSet>> {
        &inner.bundle_sets
    }
    fn flights(inner: &Inner) -> &SetFlights<BundleSet> {
        &inner.bundling
    }
    fn pending(request: SignatureRequest) -> Pending {
        Pending::Bundles(request)
    }
    fn upstream<'a>(
        upstream: &'a dyn Fetch,
        request: &'a SignatureRequest,
    ) -> Fetched<'a, Arc<BundleSet>> {
        upstream.bundles(request, true)
    }
}

#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    shared: AtomicUsize,
    cache_hits: AtomicUsize,
    /// Hits and misses per cache: digest, signatures, outcome, outcome_after_fetch, bundles.
    lookups: [(AtomicUsize, AtomicUsize); 5],
}

const CACHES: [&str; 5] = [
    "digest",
    "signatures",
    "outcome",
    "outcome_after_fetch",
    "bundles",
];

impl Counts {
    fn lookup(&self, cache: usize, hit: bool) {
        let (hits, misses) = &self.lookups[cache];
        if hit {
            hits.fetch_add(1, Ordering::Relaxed);
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            misses.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn report(&self, metrics: &Metrics) {
        for (name, (hits, misses)) in CACHES.iter().zip(&self.lookups) {
            let (hits, misses) = (hits.load(Ordering::Relaxed), misses.load(Ordering::Relaxed));
            if hits + misses > 0 {
                metrics.cache_lookups(name, hits, misses);
            }
        }
    }

    fn joined<V>(&self, joined: Joined<V>, fetch: &'static str, metrics: &Metrics) -> Joining<V> {
        match joined {
            Joined::Cached(v) => {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                Joining::Ready(v)
            }
            Joined::Started(flight) => {
                self.started.fetch_add(1, Ordering::Relaxed);
                Joining::Wait(flight)
            }
            Joined::Shared(flight) => {
                self.shared.fetch_add(1, Ordering::Relaxed);
                metrics.fetch_shared(fetch);
                Joining::Wait(flight)
            }
        }
    }
}

enum Joining<V> {
    Ready(V),
    Wait(Flight<V>),
}

impl<T: Clone + Send + Sync + 'static> Joining<Result<T, FetchFailure>> {
    fn into_future<'a>(self, host: &'a str) -> Fetched<'a, T> {
        match self {
            Joining::Ready(v) => Box::pin(std::future::ready(v)),
            Joining::Wait(mut flight) => Box::pin(async move {
                flight.wait().await.unwrap_or_else(|| {
                    Err(FetchFailure {
                        host: host.to_string(),
                        kind: FetchFailureKind::Stopped,
                    })
                })
            }),
        }
    }
}

impl Fetch for ReviewFetch<'_> {
    fn cached_outcome(&self, key: &OutcomeKey, lookup: Lookup) -> Option<AttestorOutcome> {
        let hit = self.inner.outcomes.get(key, std::time::Instant::now());
        let cache = match lookup {
            Lookup::First => 2,
            Lookup::AfterFetch => 3,
        };
        self.counts.lookup(cache, hit.is_some());
        hit
    }

    fn resolve<'a>(&'a self, image: &'a ImageRef) -> Fetched<'a, Digest> {
        let inner = self.inner;
        let key = self.digest_key(image);
        if let Some(d) = inner.digests.get(key.as_ref(), std::time::Instant::now()) {
            self.counts.lookup(0, true);
            return Box::pin(std::future::ready(Ok(d)));
        }
        self.counts.lookup(0, false);
        let upstream = self.upstream();
        let key = key.into_owned();
        let joined = inner.resolving.join_or_start(
            key.clone(),
            || {
                inner
                    .digests
                    .get(key.as_str(), std::time::Instant::now())
                    .map(Ok)
            },
            || Pending::Digest(image.clone()).waiting(),
            |progress| Arc::clone(inner).resolve(upstream, key.clone(), image.clone(), progress),
        );
        self.counts
            .joined(joined, "digest", &inner.metrics)
            .into_future(image.api_host())
    }

    fn signatures<'a>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<SignatureSet>> {
        self.set::<Signatures>(request, fresh)
    }

    fn bundles<'a>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<BundleSet>> {
        self.set::<Bundles>(request, fresh)
    }

    fn image_data<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
    ) -> Fetched<'a, serde_json::Value> {
        // Not cached (a context entry's data is read once per review, as Kyverno does), but
        // under the same host and fetch slots as every other fetch.
        let inner = self.inner;
        let upstream = self.upstream();
        Box::pin(async move {
            let host = image.api_host().to_string();
            let progress = crate::single_flight::Progress::new(
                Pending::ImageData(reference.to_string(), image.clone()).waiting(),
            );
            let _slots = inner.slots(&host, &progress).await;
            let _in_flight = inner.metrics.fetch_started();
            let start = Instant::now();
            let result =
                match tokio::time::timeout(FLIGHT_LIMIT, upstream.image_data(image, reference))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(abandoned(&host)),
                };
            inner
                .metrics
                .fetch_duration(&host, "image_data", start.elapsed());
            result
        })
    }

    fn waiting_for(&self, pending: &Pending) -> Waiting {
        let in_flight = match pending {
            Pending::Digest(image) => self
                .inner
                .resolving
                .progress_of(&self.digest_key(image).into_owned()),
            Pending::Signatures(request) => self
                .inner
                .fetching
                .progress_of(&(self.scope_id(), request.clone())),
            Pending::Bundles(request) => self
                .inner
                .bundling
                .progress_of(&(self.scope_id(), request.clone())),
            Pending::ImageData(..) => None,
        };
        in_flight.unwrap_or_else(|| pending.waiting())
    }

    fn store_outcomes(&self, verified: &[(OutcomeKey, AttestorOutcome)]) {
        let now = std::time::Instant::now();
        for (key, outcome) in verified {
            self.inner
                .outcomes
                .insert(key.clone(), outcome.clone(), now);
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
        progress.set(Waiting::HostSlot {
            host: host.to_string(),
            slots: self.config.per_registry_concurrency.max(1),
        });
        // The semaphores are never closed, so acquiring only fails if that changes.
        let host_permit = per_host.acquire_owned().await.ok();
        progress.set(Waiting::FetchSlot {
            slots: self.config.max_concurrent_fetches.max(1),
        });
        let global = Arc::clone(&self.all).acquire_owned().await.ok();
        progress.set(before);
        (host_permit, global)
    }

    /// The upstream that uses `keyring`, made once per keyring; `None` when this fetcher has no
    /// registry client to derive it from (a fake upstream in tests): then the server's own
    /// fetches serve.
    fn scoped_upstream(&self, keyring: Arc<Keyring>) -> Option<(u64, Arc<dyn Fetch>)> {
        let client = self.client.as_ref()?;
        let id = keyring.fingerprint().max(1);
        let mut scoped = self.scoped.lock().unwrap_or_else(PoisonError::into_inner);
        if scoped.len() >= MAX_SCOPED_CLIENTS && !scoped.contains_key(&id) {
            scoped.retain(|_, upstream| Arc::strong_count(upstream) > 1);
            if scoped.len() >= MAX_SCOPED_CLIENTS {
                scoped.clear();
            }
        }
        let upstream = scoped.entry(id).or_insert_with(|| {
            Arc::new(ClientFetch::unbounded(client.with_keyring(keyring))) as Arc<dyn Fetch>
        });
        Some((id, Arc::clone(upstream)))
    }

    /// One upstream fetch of `what` from `host` as every shared fetch runs: once a host slot
    /// and a fetch slot are free (waiting in `progress`), counted in flight, cut off after
    /// [`FLIGHT_LIMIT`], its duration recorded. `fetch` makes the upstream call once the slots
    /// are held.
    async fn bounded<'a, T, F>(
        &self,
        host: &str,
        what: &'static str,
        progress: &Progress,
        fetch: F,
    ) -> Result<T, FetchFailure>
    where
        F: FnOnce() -> Fetched<'a, T>,
    {
        let _slots = self.slots(host, progress).await;
        let _in_flight = self.metrics.fetch_started();
        let start = Instant::now();
        let result = match tokio::time::timeout(FLIGHT_LIMIT, fetch()).await {
            Ok(r) => r,
            Err(_) => Err(abandoned(host)),
        };
        self.metrics.fetch_duration(host, what, start.elapsed());
        result
    }

    async fn resolve(
        self: Arc<Self>,
        upstream: Arc<dyn Fetch>,
        key: String,
        image: ImageRef,
        progress: Progress,
    ) -> DigestResult {
        let result = self
            .bounded(image.api_host(), "digest", &progress, || {
                upstream.resolve(&image)
            })
            .await;
        if let Ok(d) = &result {
            self.digests
                .insert(key, d.clone(), std::time::Instant::now());
        }
        result
    }

    /// The upstream fetch of `key`'s set of kind `S`, kept briefly when it succeeds.
    async fn fetch_set<S: SetKind>(
        self: Arc<Self>,
        upstream: Arc<dyn Fetch>,
        key: SignatureKey,
        progress: Progress,
    ) -> Result<Arc<S::Set>, FetchFailure> {
        let request = &key.1;
        let result = self
            .bounded(request.host(), S::FETCH, &progress, || {
                S::upstream(upstream.as_ref(), request)
            })
            .await;
        if let Ok(set) = &result {
            S::kept(&self).insert(key, Arc::clone(set), std::time::Instant::now());
        }
        result
    }
}

fn abandoned(host: &str) -> FetchFailure {
    FetchFailure {
        host: host.to_string(),
        kind: FetchFailureKind::Abandoned {
            after: FLIGHT_LIMIT,
        },
    }
}
