//! [`SingleFlight`]: identical fetches in flight are shared, so a burst of admissions of a new
//! image costs one set of registry requests.
//!
//! The first requester of a key starts the fetch as a spawned task; later requesters of the same
//! key wait for that task's result. The task is not tied to any requester: when the first one's
//! deadline passes it stops waiting, but the fetch runs on and fills the cache for the next
//! request. The caller's fetch future fills the cache itself *before* the key leaves the in-flight
//! map, and a requester that finds no flight checks the cache again under the map's lock, so no
//! request can slip between "finished" and "cached" and fetch a second time.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use sealgate_core::engine::Waiting;
use tokio::sync::watch;

/// Fetches in flight, by key.
pub struct SingleFlight<K, V> {
    inflight: Mutex<HashMap<K, Flight<V>>>,
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
}

impl<V> Clone for Flight<V> {
    fn clone(&self) -> Self {
        Flight {
            result: self.result.clone(),
            progress: self.progress.clone(),
        }
    }
}

/// What a fetch is waiting for now ("HOST to answer …", a free slot), for timeout messages.
#[derive(Debug, Clone)]
pub struct Progress(Arc<Mutex<Waiting>>);

impl Progress {
    fn new(initial: Waiting) -> Progress {
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
    fn default() -> Self {
        SingleFlight {
            inflight: Mutex::new(HashMap::new()),
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
        if let Some(flight) = inflight.get(&key) {
            return Joined::Shared(flight.clone());
        }
        if let Some(v) = cached() {
            return Joined::Cached(v);
        }
        let (tx, rx) = watch::channel(None);
        let progress = Progress::new(initial());
        let flight = Flight {
            result: rx,
            progress: progress.clone(),
        };
        inflight.insert(key.clone(), flight.clone());
        drop(inflight);
        let fetch = start(progress);
        let guard = Landing {
            flights: Arc::clone(self),
            key,
        };
        tokio::spawn(async move {
            let value = fetch.await;
            // Leave the map first: a requester arriving now finds the cache already filled.
            drop(guard);
            // Nobody waiting is fine.
            let _ = tx.send(Some(value));
        });
        Joined::Started(flight)
    }

    /// How many fetches are in flight.
    /// What the fetch of `key` is waiting for, while it is in flight.
    pub fn progress_of(&self, key: &K) -> Option<Waiting> {
        self.lock().get(key).map(Flight::progress)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Flight<V>>> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
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
}
