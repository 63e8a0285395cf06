//! [`TtlCache`]: a bounded map whose entries expire a fixed time after they were stored.
//!
//! Used for verified attestor outcomes (keyed by [`OutcomeKey`](sealgate_core::engine::OutcomeKey):
//! attestor content, signature repository, image digest) and for tag → digest resolutions. Every
//! entry lives the same `ttl`, so insertion order is expiry order: a FIFO queue finds both the
//! expired entries and, at capacity, the oldest one in O(1) amortised. Time is passed in (an
//! [`Instant`]), so expiry is tested without sleeping.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A bounded cache with a fixed time to live. Safe to share between tasks; the lock is never held
/// across an `.await`.
#[derive(Debug)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner<K, V>>,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, Entry<V>>,
    /// Keys in insertion order with the sequence number of that insertion; a key re-inserted
    /// later appears again, and its older queue item is skipped as stale.
    order: VecDeque<(K, u64)>,
    next_seq: u64,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    expires: Instant,
    seq: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A cache keeping at most `capacity` entries (at least 1), each for `ttl`.
    pub fn new(ttl: Duration, capacity: usize) -> TtlCache<K, V> {
        TtlCache {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
                next_seq: 0,
            }),
        }
    }

    /// The value stored under `key`, unless it expired by `now`.
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut inner = self.lock();
        match inner.map.get(key) {
            Some(entry) if entry.expires > now => Some(entry.value.clone()),
            Some(_) => {
                inner.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores `value` under `key` until `now + ttl`, evicting expired entries and, at capacity,
    /// the oldest.
    pub fn insert(&self, key: K, value: V, now: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.push_back((key.clone(), seq));
        inner.map.insert(
            key,
            Entry {
                value,
                expires: now + self.ttl,
                seq,
            },
        );
        inner.evict(now, self.capacity);
    }

    /// How many entries are stored (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // The map stays consistent whatever panicked while holding the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Eq + Hash + Clone, V> Inner<K, V> {
    fn evict(&mut self, now: Instant, capacity: usize) {
        while let Some((key, seq)) = self.order.front() {
            let current = self.map.get(key).map(|e| (e.seq, e.expires));
            let stale = current.is_none_or(|(s, _)| s != *seq);
            let expired = current.is_some_and(|(s, expires)| s == *seq && expires <= now);
            let over = self.map.len() > capacity;
            if stale {
                self.order.pop_front();
            } else if expired || over {
                if let Some((key, _)) = self.order.pop_front() {
                    self.map.remove(&key);
                }
            } else {
                break;
            }
        }
        // Stale items behind a live one are skipped only when they reach the front; keep the
        // queue from growing past a small multiple of the map.
        if self.order.len() > 2 * capacity + 64 {
            let mut live: Vec<(K, u64)> =
                self.map.iter().map(|(k, e)| (k.clone(), e.seq)).collect();
            live.sort_by_key(|(_, seq)| *seq);
            self.order = live.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = TtlCache::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        cache.insert("a", 1, t0);
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(59)), Some(1));
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(60)), None);
        assert!(cache.is_empty(), "an expired entry is removed when read");
    }

    #[test]
    fn the_oldest_entry_goes_at_capacity() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        cache.insert("a", 1, t0);
        cache.insert("b", 2, t0 + Duration::from_secs(1));
        cache.insert("c", 3, t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get(&"a", t0), None);
        assert_eq!(cache.get(&"b", t0), Some(2));
        assert_eq!(cache.get(&"c", t0), Some(3));
    }

    #[test]
    fn reinserting_renews_and_the_stale_queue_item_is_skipped() {
        let cache = TtlCache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        cache.insert("a", 1, t0);
        cache.insert("b", 2, t0);
        cache.insert("a", 3, t0 + Duration::from_secs(5));
        // "a" was renewed: "b" is now the oldest and goes first.
        cache.insert("c", 4, t0 + Duration::from_secs(6));
        assert_eq!(cache.get(&"a", t0 + Duration::from_secs(12)), Some(3));
        assert_eq!(cache.get(&"b", t0 + Duration::from_secs(6)), None);
        assert_eq!(cache.get(&"c", t0 + Duration::from_secs(12)), Some(4));
    }

    #[test]
    fn expired_entries_are_evicted_on_insert_and_the_queue_stays_bounded() {
        let cache = TtlCache::new(Duration::from_secs(1), 1000);
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            cache.insert(i % 7, i, t0 + Duration::from_millis(i));
        }
        let inner = cache.lock();
        assert!(inner.map.len() <= 7);
        assert!(inner.order.len() <= 2 * 1000 + 64, "{}", inner.order.len());
        drop(inner);

        // A long-lived entry at the front does not let stale items pile up behind it.
        let cache = TtlCache::new(Duration::from_secs(3600), 10);
        cache.insert(u64::MAX, 0, t0);
        for i in 0..10_000u64 {
            cache.insert(i % 3, i, t0);
        }
        assert!(cache.lock().order.len() <= 2 * 10 + 64);
        assert_eq!(cache.get(&u64::MAX, t0), Some(0));
    }

    #[test]
    fn a_zero_ttl_disables_the_cache() {
        let cache = TtlCache::new(Duration::ZERO, 10);
        cache.insert("a", 1, Instant::now());
        assert!(cache.is_empty());
    }
}
