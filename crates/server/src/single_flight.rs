//! [`SingleFlight`]: identical fetches in flight are shared, so a burst of admissions of a new
//! image costs one set of registry requests.
//!
//! The first requester of a key starts the fetch as a spawned task; later requesters of the same
//! key wait for that task's result. The task is not tied to any requester: when the first one's
//! deadline passes it stops waiting, but the fetch runs on and fills the cache for the next
//! request. The caller's fetch future fills the cache itself *before* the key leaves the in-flight
//! map, and a requester that finds no flight checks the cache again under the map's lock, so no
//! request can slip between "finished" and "cached" and fetch a second time.
//!
//! A fetch nobody waits for any more (every request that wanted it was answered) runs on for at
//! most the flights' *unattended limit* (30 s in the webhook) to fill the cache, then it is
//! dropped, which cancels its registry requests; how each such fetch ended ([`Unattended`]) is
//! reported, for the metrics.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sealgate_core::engine::Waiting;
use tokio::sync::{Notify, watch};

/// How a fetch that outlived every request waiting for it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unattended {
    /// It finished within the unattended limit (and filled the cache).
    Finished,
    /// It was cancelled at the limit.
    Cancelled,
}

impl Unattended {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Unattended::Finished => "finished",
            Unattended::Cancelled => "cancelled",
        }
    }
}

/// Told how each unattended fetch ended.
type UnattendedReport = Arc<dyn Fn(Unattended) + Send + Sync>;

/// Fetches in flight, by key.
pub struct SingleFlight<K, V> {
    inflight: Mutex<HashMap<K, Entry<V>>>,
    /// How long a fetch nobody waits for may run on.
    unattended_limit: Duration,
    report: UnattendedReport,
}

/// A flight as the map keeps it: joining it makes a [`Flight`], which counts as a waiter.
struct Entry<V> {
    result: watch::Receiver<Option<V>>,
    progress: Progress,
    waiters: Arc<Waiters>,
}

/// How many [`Flight`]s of one fetch are alive, and a signal when the last one goes.
#[derive(Debug, Default)]
struct Waiters {
    count: AtomicUsize,
    none_left: Notify,
}

/// One requester's hold on a flight: counted while alive.
#[derive(Debug)]
struct Waiter(Arc<Waiters>);

impl Waiter {
    fn new(waiters: &Arc<Waiters>) -> Waiter {
        waiters.count.fetch_add(1, Ordering::AcqRel);
        Waiter(Arc::clone(waiters))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            // notify_one keeps the signal if the fetch task is not listening yet.
            self.0.none_left.notify_one();
        }
    }
}

impl<V: Clone> Entry<V> {
    fn join(&self) -> Flight<V> {
        Flight {
            result: self.result.clone(),
            progress: self.progress.clone(),
            _waiter: Waiter::new(&self.waiters),
        }
    }
}

impl<K, V> fmt::Debug for SingleFlight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .inflight
            .lock()
            .map(|m| m.len())
            .unwrap_or_else(|p| p.into_inner().len());
        f.debug_struct("SingleFlight")
            .field("in_flight", &n)
            .finish()
    }
}

/// A fetch in flight: its result once it is there, and what it is doing meanwhile.
#[derive(Debug)]
pub struct Flight<V> {
    result: watch::Receiver<Option<V>>,
    progress: Progress,
    _waiter: Waiter,
}

/// What a fetch is waiting for now ("HOST to answer …", a free slot), for timeout messages.
#[derive(Debug, Clone)]
pub struct Progress(Arc<Mutex<Waiting>>);

impl Progress {
    pub(crate) fn new(initial: Waiting) -> Progress {
        Progress(Arc::new(Mutex::new(initial)))
    }

    /// Records what the fetch is waiting for now.
    pub fn set(&self, what: Waiting) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = what;
    }

    /// What the fetch is waiting for now.
    pub fn get(&self) -> Waiting {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How a request got its value.
#[derive(Debug)]
pub enum Joined<V> {
    /// From the cache (checked under the lock).
    Cached(V),
    /// This request started the fetch.
    Started(Flight<V>),
    /// Another request's fetch was already in flight; this one shares it.
    Shared(Flight<V>),
}

impl<V: Clone> Flight<V> {
    /// Waits for the result; `None` when the fetch task ended without one (it panicked or the
    /// runtime is shutting down).
    pub async fn wait(&mut self) -> Option<V> {
        match self.result.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            Err(_) => None,
        }
    }

    /// What the fetch is waiting for now.
    pub fn progress(&self) -> Waiting {
        self.progress.get()
    }
}

impl<K, V> Default for SingleFlight<K, V> {
    /// Unattended fetches run on for at most [`FLIGHT_LIMIT`](crate::fetcher::FLIGHT_LIMIT),
    /// unreported.
    fn default() -> Self {
        SingleFlight::new(crate::fetcher::FLIGHT_LIMIT, |_| {})
    }
}

impl<K, V> SingleFlight<K, V> {
    /// Flights whose unattended fetches run on for at most `unattended_limit`; `report` is told
    /// how each of those ended.
    pub fn new(
        unattended_limit: Duration,
        report: impl Fn(Unattended) + Send + Sync + 'static,
    ) -> SingleFlight<K, V> {
        SingleFlight {
            inflight: Mutex::new(HashMap::new()),
            unattended_limit,
            report: Arc::new(report),
        }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the fetch of `key` in flight, or, if there is none and `cached` finds nothing,
    /// spawns `start(progress)`. The future must store its result where `cached` will find it
    /// (or decide not to). `initial` describes the fetch before it reports progress.
    pub fn join_or_start<Fut>(
        self: &Arc<Self>,
        key: K,
        cached: impl FnOnce() -> Option<V>,
        initial: impl FnOnce() -> Waiting,
        start: impl FnOnce(Progress) -> Fut,
    ) -> Joined<V>
    where
        Fut: Future<Output = V> + Send + 'static,
    {
        let mut inflight = self.lock();
        if let Some(entry) = inflight.get(&key) {
            return Joined::Shared(entry.join());
        }
        if let Some(v) = cached() {
            return Joined::Cached(v);
        }
        let (tx, rx) = watch::channel(None);
        let progress = Progress::new(initial());
        let entry = Entry {
            result: rx,
            progress: progress.clone(),
            waiters: Arc::default(),
        };
        let flight = entry.join();
        let waiters = Arc::clone(&entry.waiters);
        inflight.insert(key.clone(), entry);
        drop(inflight);
        let fetch = start(progress);
        let guard = Landing {
            flights: Arc::clone(self),
            key,
        };
        let (limit, report) = (self.unattended_limit, Arc::clone(&self.report));
        tokio::spawn(async move {
            let value = attended(fetch, &waiters, limit, &*report).await;
            // Leave the map first: a requester arriving now finds the cache already filled.
            drop(guard);
            // Nobody waiting is fine; a cancelled fetch drops `tx`, so late joiners get None.
            if let Some(value) = value {
                let _ = tx.send(Some(value));
            }
        });
        Joined::Started(flight)
    }

    /// How many fetches are in flight.
    /// What the fetch of `key` is waiting for, while it is in flight.
    pub fn progress_of(&self, key: &K) -> Option<Waiting> {
        self.lock().get(key).map(|e| e.progress.get())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<V>>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `fetch` while someone waits for it; once nobody does, for at most `limit` more (a
/// requester joining meanwhile keeps it going), then drops it: `None`. `report` hears how each
/// fetch that lost its waiters ended.
async fn attended<V>(
    fetch: impl Future<Output = V>,
    waiters: &Waiters,
    limit: Duration,
    report: &(dyn Fn(Unattended) + Send + Sync),
) -> Option<V> {
    let mut fetch = std::pin::pin!(fetch);
    let mut unattended = false;
    loop {
        if waiters.count.load(Ordering::Acquire) > 0 {
            tokio::select! {
                value = &mut fetch => {
                    if unattended {
                        report(Unattended::Finished);
                    }
                    return Some(value);
                }
                () = waiters.none_left.notified() => continue,
            }
        }
        unattended = true;
        match tokio::time::timeout(limit, &mut fetch).await {
            Ok(value) => {
                report(Unattended::Finished);
                return Some(value);
            }
            // A requester joined while the limit ran: it waits for the fetch now.
            Err(_) if waiters.count.load(Ordering::Acquire) > 0 => continue,
            Err(_) => {
                report(Unattended::Cancelled);
                return None;
            }
        }
    }
}

/// Removes a flight from the map when its task ends, however it ends.
struct Landing<K: Eq + Hash, V> {
    flights: Arc<SingleFlight<K, V>>,
    key: K,
}

impl<K: Eq + Hash, V> Drop for Landing<K, V> {
    fn drop(&mut self) {
        self.flights
            .inflight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn starting() -> Waiting {
        Waiting::FetchSlot { slots: 1 }
    }

    fn released_by_the_test() -> Waiting {
        Waiting::HostSlot {
            host: "the test".into(),
            slots: 1,
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch_and_later_ones_hit_the_cache() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::default();
        let cache: Arc<Mutex<Option<u32>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));

        let mut handles = Vec::new();
        let mut started = 0;
        for _ in 0..50 {
            let (cache2, fetches2, released2) = (cache.clone(), fetches.clone(), released.clone());
            let joined = flights.join_or_start(
                "k",
                || *cache.lock().unwrap(),
                starting,
                move |progress| async move {
                    fetches2.fetch_add(1, Ordering::SeqCst);
                    progress.set(released_by_the_test());
                    if let Some(rx) = released2.lock().await.take() {
                        let _ = rx.await;
                    }
                    *cache2.lock().unwrap() = Some(7);
                    7
                },
            );
            match joined {
                Joined::Started(f) => {
                    started += 1;
                    handles.push(f);
                }
                Joined::Shared(f) => handles.push(f),
                Joined::Cached(_) => panic!("nothing is cached yet"),
            }
        }
        assert_eq!(started, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(handles[0].progress(), released_by_the_test());
        release.send(()).unwrap();
        for mut h in handles {
            assert_eq!(h.wait().await, Some(7));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(flights.is_empty());
        let again =
            flights.join_or_start("k", || *cache.lock().unwrap(), starting, |_| async { 8 });
        assert!(matches!(again, Joined::Cached(7)));
    }

    #[tokio::test]
    async fn a_fetch_outlives_a_requester_that_stopped_waiting() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::default();
        let cache: Arc<Mutex<Option<u32>>> = Arc::default();
        let cache2 = cache.clone();
        let joined = flights.join_or_start(
            "k",
            || None,
            starting,
            move |_| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                *cache2.lock().unwrap() = Some(1);
                1
            },
        );
        let Joined::Started(mut flight) = joined else {
            panic!("expected a new flight")
        };
        let waited = tokio::time::timeout(Duration::from_millis(5), flight.wait()).await;
        assert!(waited.is_err(), "the requester gave up");
        drop(flight);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(*cache.lock().unwrap(), Some(1), "the fetch ran on");
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_panicking_fetch_leaves_the_map_and_waiters_get_none() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::default();
        let joined = flights.join_or_start(
            "k",
            || None,
            starting,
            |_| async { panic!("fetch failed badly") },
        );
        let Joined::Started(mut flight) = joined else {
            panic!("expected a new flight")
        };
        assert_eq!(flight.wait().await, None);
        assert!(flights.is_empty());
    }

    /// Flights with `limit` that record how their unattended fetches ended.
    fn reporting(limit: Duration) -> (Arc<SingleFlight<&'static str, u32>>, Reports) {
        let reports = Reports::default();
        let seen = reports.clone();
        let flights = SingleFlight::new(limit, move |end| seen.0.lock().unwrap().push(end));
        (Arc::new(flights), reports)
    }

    #[derive(Clone, Default)]
    struct Reports(Arc<Mutex<Vec<Unattended>>>);

    impl Reports {
        fn get(&self) -> Vec<Unattended> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Sets its flag when dropped: the fetch future holding it was cancelled or finished.
    struct DropFlag(Arc<std::sync::atomic::AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn an_unattended_fetch_is_cancelled_at_the_limit_and_reported() {
        let (flights, reports) = reporting(Duration::from_millis(30));
        let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = DropFlag(dropped.clone());
        let joined = flights.join_or_start(
            "k",
            || None,
            starting,
            move |_| async move {
                let _flag = flag;
                std::future::pending::<u32>().await
            },
        );
        let Joined::Started(flight) = joined else {
            panic!("expected a new flight")
        };
        drop(flight);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(flights.len(), 1, "it runs on within the limit");
        assert!(!dropped.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            dropped.load(Ordering::SeqCst),
            "the fetch future was dropped"
        );
        assert!(flights.is_empty());
        assert_eq!(reports.get(), vec![Unattended::Cancelled]);
    }

    #[tokio::test]
    async fn an_unattended_fetch_that_finishes_within_the_limit_fills_the_cache() {
        let (flights, reports) = reporting(Duration::from_secs(5));
        let cache: Arc<Mutex<Option<u32>>> = Arc::default();
        let cache2 = cache.clone();
        let joined = flights.join_or_start(
            "k",
            || None,
            starting,
            move |_| async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                *cache2.lock().unwrap() = Some(3);
                3
            },
        );
        drop(joined);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(*cache.lock().unwrap(), Some(3));
        assert!(flights.is_empty());
        assert_eq!(reports.get(), vec![Unattended::Finished]);
    }

    #[tokio::test]
    async fn an_attended_fetch_is_never_cut_off_or_reported() {
        let (flights, reports) = reporting(Duration::from_millis(20));
        let joined = flights.join_or_start(
            "k",
            || None,
            starting,
            |_| async {
                tokio::time::sleep(Duration::from_millis(120)).await;
                5
            },
        );
        let Joined::Started(mut flight) = joined else {
            panic!("expected a new flight")
        };
        assert_eq!(flight.wait().await, Some(5), "waited six times the limit");
        assert!(reports.get().is_empty());
    }

    #[tokio::test]
    async fn a_requester_joining_within_the_limit_keeps_the_fetch_going() {
        let (flights, reports) = reporting(Duration::from_millis(40));
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let joined = flights.join_or_start(
            "k",
            || None,
            starting,
            |_| async {
                let _ = released.await;
                9
            },
        );
        drop(joined);
        tokio::time::sleep(Duration::from_millis(15)).await;
        let Joined::Shared(mut late) =
            flights.join_or_start("k", || None, starting, |_| async { 0 })
        else {
            panic!("the fetch is still in flight")
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(flights.len(), 1, "a waiter holds it past the limit");
        assert!(reports.get().is_empty());
        release.send(()).unwrap();
        assert_eq!(late.wait().await, Some(9));
        assert_eq!(reports.get(), vec![Unattended::Finished]);
    }
}
