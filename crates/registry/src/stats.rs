//! Request counts per registry host and HTTP status, for the server's metrics.

use std::collections::HashMap;

/// A snapshot of how many requests a [`Client`](crate::Client) sent, per host and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// One entry per (host, status), sorted by host then status.
    pub counts: Vec<RequestCount>,
}

impl RequestStats {
    /// The count for `host` and `status` (0 if none).
    pub fn count(&self, host: &str, status: u16) -> u64 {
        self.counts
            .iter()
            .filter(|c| c.host == host && c.status == status)
            .map(|c| c.count)
            .sum()
    }

    /// All requests to `host`, whatever their outcome.
    pub fn total(&self, host: &str) -> u64 {
        self.counts
            .iter()
            .filter(|c| c.host == host)
            .map(|c| c.count)
            .sum()
    }
}

/// How many requests to one host ended with one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCount {
    /// The host (and port) the request was sent to.
    pub host: String,
    /// The HTTP status, or [`RequestCount::NO_RESPONSE`] when none came (connection or TLS
    /// failure, timeout).
    pub status: u16,
    /// How many.
    pub count: u64,
}

impl RequestCount {
    /// The status recorded for a request that got no HTTP answer.
    pub const NO_RESPONSE: u16 = 0;
}

/// The live counters behind [`RequestStats`].
#[derive(Debug, Default)]
pub(crate) struct RequestCounters {
    counts: HashMap<(String, u16), u64>,
}

impl RequestCounters {
    pub(crate) fn record(&mut self, host: &str, status: u16) {
        *self.counts.entry((host.to_string(), status)).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> RequestStats {
        let mut counts: Vec<RequestCount> = self
            .counts
            .iter()
            .map(|((host, status), count)| RequestCount {
                host: host.clone(),
                status: *status,
                count: *count,
            })
            .collect();
        counts.sort_by(|a, b| (&a.host, a.status).cmp(&(&b.host, b.status)));
        RequestStats { counts }
    }
}
