//! [`AuditWriter`]: the audit trail off the request path.
//!
//! The webhook hands a request's checks to [`AuditWriter::record_request`], which encodes them
//! straight into the request's row ([`DecisionRow`]) on the calling thread ([`AuditWriter::record`]
//! does the same from [`AuditRecord`]s), counts them into a bounded queue (at
//! most 1,048,576 records and about 16 MiB of rows: the bytes bind first, at about 6,000 requests
//! of 30 records) and returns at once; when the queue is full the
//! records are dropped and counted ([`AuditWriter::dropped`]), without being encoded. One
//! dedicated thread owns the writable [`AuditStore`]: it writes what arrives in transactions of
//! up to 4,096 records (one INSERT per request), or every 200 ms when fewer come, and prunes at
//! start and every 10 minutes. [`AuditFlusher::shutdown`] asks it to write everything queued so
//! far, close the database and stop.
//!
//! So a process killed outright (SIGKILL, OOM, power cut) loses at most the rows of its last
//! [flush window](WriterConfig::flush_interval) and the transaction being committed; the database
//! stays readable (SQLite WAL, `synchronous=FULL`). A writer started [`synced`](AuditWriter::synced)
//! (`sealgate serve --audit-sync`) leaves no such gap: each row carries a [`Commit`] the request
//! waits on, and the thread commits as soon as a waited-for row arrives, together with every row
//! queued behind it (group commit: one fsync for all the requests that arrived during the last).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::decision::{DecisionBuilder, DecisionRow, RequestFields};
use super::{AuditError, AuditRecord, AuditStore, now_unix_ms};

/// How the writer thread batches, prunes and bounds its queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriterConfig {
    /// Records queued (sent, not yet taken by the thread) at most; more are dropped.
    pub(crate) capacity: usize,
    /// Bytes of queued rows at most (as [`DecisionRow::bytes`] estimates them); more are
    /// dropped. This bounds the memory a writer that cannot keep up holds.
    pub(crate) capacity_bytes: usize,
    /// A transaction is written as soon as the waiting rows hold this many records.
    pub(crate) batch_size: usize,
    /// ... or when the oldest waiting record has waited this long.
    pub(crate) flush_interval: Duration,
    /// Retention is applied at start and then this often.
    pub(crate) prune_interval: Duration,
    /// While rows wait for their transaction, the thread sleeps this long and then takes
    /// everything queued meanwhile, instead of blocking in `recv` and being woken (a futex
    /// wake-up, a syscall on the request path) by every send. Zero when requests wait for their
    /// commit ([`WriterConfig::synced`]): there every row is taken at once.
    pub(crate) linger: Duration,
    /// Whether each request waits for its row's commit ([`Commit`]).
    pub(crate) synced: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            capacity: 1 << 20,
            capacity_bytes: 16 * 1024 * 1024,
            batch_size: 4096,
            flush_interval: Duration::from_millis(200),
            prune_interval: Duration::from_secs(600),
            linger: Duration::from_millis(5),
            synced: false,
        }
    }
}

/// Where the writer thread's warnings go.
pub(crate) type Reporter = Arc<dyn Fn(&str) + Send + Sync>;

/// What the writer thread is sent.
// Almost every message is a row; boxing it would cost the request path an allocation per
// request to shrink the one shutdown message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Message {
    /// One request's row, its [`DecisionRow::bytes`], and who waits for its commit.
    Row(DecisionRow, usize, Option<oneshot::Sender<bool>>),
    /// Write everything before this message, close the database, answer, stop.
    Shutdown(oneshot::Sender<Result<(), AuditError>>),
}

/// Counters shared by the writers and the thread.
#[derive(Debug)]
struct Shared {
    capacity: usize,
    capacity_bytes: usize,
    /// Records sent and not yet taken by the thread.
    queued: AtomicUsize,
    /// The [`DecisionRow::bytes`] of their rows.
    queued_bytes: AtomicUsize,
    /// Records refused: queue full, or the writer stopped.
    dropped: AtomicU64,
    /// Records lost because SQLite could not write them.
    failed: AtomicU64,
    /// Set when the thread starts shutting down; later records are dropped.
    closed: AtomicBool,
    /// Whether requests wait for their rows' commits.
    synced: bool,
}

/// Queues audit records for the writer thread. Cheap to clone; never blocks the request path.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    sender: Sender<Message>,
    shared: Arc<Shared>,
}

/// Stops the writer thread after it has written everything queued.
#[derive(Debug)]
pub struct AuditFlusher {
    sender: Sender<Message>,
    /// Why there is no writer thread, when it could not be started.
    not_started: Option<String>,
}

impl AuditWriter {
    /// Starts the writer thread owning `store` and returns the handle to queue records and the
    /// one to stop it. Problems (records SQLite refused, retention not applied) are reported on
    /// stderr as `warning: audit: ...`; see [`AuditWriter::spawn_with_reporter`] to send them to
    /// the server's log instead.
    pub fn spawn(store: AuditStore) -> (AuditWriter, AuditFlusher) {
        Self::spawn_with_reporter(store, |warning| eprintln!("warning: audit: {warning}"))
    }

    /// As [`AuditWriter::spawn`], with `report` called (from the writer thread) with each
    /// warning; write failures at most once a minute.
    ///
    /// If the OS refuses a thread, nothing is written: `report` is told, every record is counted
    /// as dropped, and [`AuditFlusher::shutdown`] returns the error.
    pub fn spawn_with_reporter(
        store: AuditStore,
        report: impl Fn(&str) + Send + Sync + 'static,
    ) -> (AuditWriter, AuditFlusher) {
        Self::start(store, WriterConfig::default(), Arc::new(report))
    }

    /// As [`AuditWriter::spawn_with_reporter`], with every [`Commit`] it hands out resolving
    /// only once its row is committed (group commit): no answered request lacks its row, even
    /// after SIGKILL, at the cost of one fsync per group of requests.
    pub fn synced(
        store: AuditStore,
        report: impl Fn(&str) + Send + Sync + 'static,
    ) -> (AuditWriter, AuditFlusher) {
        let config = WriterConfig {
            synced: true,
            linger: Duration::ZERO,
            ..WriterConfig::default()
        };
        Self::start(store, config, Arc::new(report))
    }

    /// Starts the thread with `config`.
    pub(crate) fn start(
        store: AuditStore,
        config: WriterConfig,
        report: Reporter,
    ) -> (AuditWriter, AuditFlusher) {
        let (writer, receiver) =
            AuditWriter::queue(config.capacity, config.capacity_bytes, config.synced);
        let shared = Arc::clone(&writer.shared);
        let thread_report = Arc::clone(&report);
        let spawned = std::thread::Builder::new()
            .name("sealgate-audit".into())
            .spawn(move || run(store, &receiver, &shared, config, &*thread_report));
        let not_started = match spawned {
            Ok(_) => None,
            Err(e) => {
                writer.shared.closed.store(true, Ordering::Release);
                let error = AuditError::WriterThread {
                    detail: e.to_string(),
                };
                report(&error.to_string());
                Some(e.to_string())
            }
        };
        let flusher = AuditFlusher {
            sender: writer.sender.clone(),
            not_started,
        };
        (writer, flusher)
    }

    /// A writer and the receiving end of its queue, with no thread yet.
    fn queue(
        capacity: usize,
        capacity_bytes: usize,
        synced: bool,
    ) -> (AuditWriter, Receiver<Message>) {
        let (sender, receiver) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared {
            capacity,
            capacity_bytes,
            queued: AtomicUsize::new(0),
            queued_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            synced,
        });
        (AuditWriter { sender, shared }, receiver)
    }

    /// Queues one request's `records` for writing (consecutive records of one request become
    /// one row). When the queue is full or the writer has stopped they are dropped and counted
    /// instead: this never blocks and never panics.
    pub fn record(&self, records: Vec<AuditRecord>) {
        let n = records.len();
        if n == 0 {
            return;
        }
        if self.refuses(n) {
            self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        self.send(DecisionRow::from_records(&records), None);
    }

    /// Queues one request's `n` checks, which `fill` adds to the row's builder straight from the
    /// caller's data (no [`AuditRecord`] is made: on the webhook's path that was 30 records of
    /// cloned strings per review). Dropped and counted, without calling `fill`, when the queue
    /// has no room. The [`Commit`] resolves at once unless the writer is
    /// [`synced`](AuditWriter::synced).
    pub(crate) fn record_request(
        &self,
        request: RequestFields<'_>,
        n: usize,
        fill: impl FnOnce(&mut DecisionBuilder),
    ) -> Commit {
        if n == 0 {
            return Commit(CommitState::Done);
        }
        if self.refuses(n) {
            self.shared.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return Commit(self.done_or(CommitState::Dropped));
        }
        let mut builder = DecisionBuilder::new(request, n);
        fill(&mut builder);
        if !self.shared.synced {
            self.send(vec![builder.finish()], None);
            return Commit(CommitState::Done);
        }
        let (committed, commit) = oneshot::channel();
        self.send(vec![builder.finish()], Some(committed));
        Commit(CommitState::Waiting(commit))
    }

    /// `state` for a synced writer, [`CommitState::Done`] for one nobody waits on.
    fn done_or(&self, state: CommitState) -> CommitState {
        if self.shared.synced {
            state
        } else {
            CommitState::Done
        }
    }

    /// Whether `n` more records would be dropped anyway: the writer stopped, the queue has no
    /// room for them, or it is full in bytes.
    fn refuses(&self, n: usize) -> bool {
        let shared = &self.shared;
        shared.closed.load(Ordering::Acquire)
            || shared.queued.load(Ordering::Acquire).saturating_add(n) > shared.capacity
            || shared.queued_bytes.load(Ordering::Acquire) >= shared.capacity_bytes
    }

    /// Queues `rows` (one call's: all or none), or drops and counts their records. `committed`,
    /// sent with the last row, is told when it is written (dropped unanswered when it is not).
    fn send(&self, rows: Vec<DecisionRow>, mut committed: Option<oneshot::Sender<bool>>) {
        let shared = &self.shared;
        let n: usize = rows.iter().map(|r| r.check_count).sum();
        if n == 0 {
            return;
        }
        let bytes: usize = rows.iter().map(DecisionRow::bytes).sum();
        let before = shared.queued.fetch_add(n, Ordering::AcqRel);
        let before_bytes = shared.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        let full = before.saturating_add(n) > shared.capacity
            || before_bytes.saturating_add(bytes) > shared.capacity_bytes;
        let mut unsent = (n, bytes);
        if !full {
            let last = rows.len().saturating_sub(1);
            for (i, row) in rows.into_iter().enumerate() {
                let (records, size) = (row.check_count, row.bytes());
                let waiter = if i == last { committed.take() } else { None };
                if self.sender.send(Message::Row(row, size, waiter)).is_err() {
                    // The thread is gone: this row and the rest are not sent.
                    break;
                }
                unsent.0 -= records;
                unsent.1 -= size;
            }
        }
        if unsent.0 > 0 || unsent.1 > 0 {
            shared.queued.fetch_sub(unsent.0, Ordering::AcqRel);
            shared.queued_bytes.fetch_sub(unsent.1, Ordering::AcqRel);
            shared.dropped.fetch_add(unsent.0 as u64, Ordering::Relaxed);
        }
    }

    /// Records dropped so far because the queue was full or the writer had stopped.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Records lost so far because SQLite refused to write them (also reported as warnings, at
    /// most once a minute).
    pub fn failed(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }
}

impl AuditFlusher {
    /// Writes everything queued so far, closes the database and stops the writer thread. Call it
    /// on graceful shutdown, after in-flight requests have drained; records queued afterwards
    /// are counted as dropped.
    pub async fn shutdown(self) -> Result<(), AuditError> {
        if let Some(detail) = self.not_started {
            return Err(AuditError::WriterThread { detail });
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Message::Shutdown(reply))
            .map_err(|_| AuditError::WriterStopped)?;
        answer.await.map_err(|_| AuditError::WriterStopped)?
    }
}

/// A request's audit row on its way to the database: [`Commit::wait`] returns once it is
/// committed (at once when the writer is not [`synced`](AuditWriter::synced)).
#[derive(Debug)]
#[must_use = "a synced writer's row is only known to be written once the commit is awaited"]
pub struct Commit(CommitState);

#[derive(Debug)]
enum CommitState {
    /// Nothing to wait for.
    Done,
    /// The row was refused (queue full, writer stopped).
    Dropped,
    /// The writer thread answers once the row's transaction has committed (or failed).
    Waiting(oneshot::Receiver<bool>),
}

/// Why a request's audit row is not known to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// The queue was full, or the writer had stopped: the row was never queued.
    #[error("the audit queue had no room for the row (or the writer had stopped)")]
    Dropped,
    /// SQLite refused the transaction that held the row (see the audit warnings).
    #[error("the audit database refused the row; see the audit warnings")]
    Failed,
    /// The row was not committed within the bound.
    #[error("the audit row was not committed within {0:?}")]
    Slow(Duration),
}

impl Commit {
    /// A commit already done, for requests that write no row.
    pub fn done() -> Commit {
        Commit(CommitState::Done)
    }

    /// Waits at most `bound` for the row's commit.
    pub async fn wait(self, bound: Duration) -> Result<(), CommitError> {
        match self.0 {
            CommitState::Done => Ok(()),
            CommitState::Dropped => Err(CommitError::Dropped),
            CommitState::Waiting(answer) => match tokio::time::timeout(bound, answer).await {
                Ok(Ok(true)) => Ok(()),
                Ok(Ok(false)) => Err(CommitError::Failed),
                // The thread let go of the row without writing it: stopped, or refused it.
                Ok(Err(_)) => Err(CommitError::Dropped),
                Err(_) => Err(CommitError::Slow(bound)),
            },
        }
    }
}

/// Reports write failures at most once a minute.
#[derive(Debug, Default)]
struct FailureReport {
    last: Option<Instant>,
    unreported: u64,
}

impl FailureReport {
    fn failed(&mut self, records: usize, error: &AuditError, report: &dyn Fn(&str)) {
        self.unreported += records as u64;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            report(&format!(
                "{} record(s) not written: {error}",
                self.unreported
            ));
            self.unreported = 0;
            self.last = Some(Instant::now());
        }
    }
}

/// The rows taken from the queue and not yet written.
#[derive(Debug, Default)]
struct Batch {
    rows: Vec<DecisionRow>,
    /// The records they hold.
    records: usize,
    /// Who waits for them to be committed.
    waiters: Vec<oneshot::Sender<bool>>,
}

impl Batch {
    /// Moves `row` (of `bytes`) from the queue's count to the batch.
    fn take(
        &mut self,
        shared: &Shared,
        row: DecisionRow,
        bytes: usize,
        waiter: Option<oneshot::Sender<bool>>,
    ) {
        shared.queued.fetch_sub(row.check_count, Ordering::AcqRel);
        shared.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
        self.records += row.check_count;
        self.rows.push(row);
        self.waiters.extend(waiter);
    }
}

/// The writer thread: batches, writes, prunes; returns after a shutdown or when every sender is
/// gone.
fn run(
    mut store: AuditStore,
    receiver: &Receiver<Message>,
    shared: &Shared,
    config: WriterConfig,
    report: &dyn Fn(&str),
) {
    let mut pending = Batch::default();
    let mut flush_due: Option<Instant> = None;
    let mut next_prune = Instant::now();
    let mut failures = FailureReport::default();
    // A shutdown met while gathering a group commit, to handle once the group is written.
    let mut deferred: Option<Message> = None;
    // After a linger: taking what was queued meanwhile, without blocking, until the queue is
    // empty.
    let mut draining = false;
    let write = |store: &mut AuditStore, pending: &mut Batch, failures: &mut FailureReport| {
        if pending.rows.is_empty() {
            return Ok(());
        }
        let result = store.insert_rows(&pending.rows);
        if let Err(e) = &result {
            shared
                .failed
                .fetch_add(pending.records as u64, Ordering::Relaxed);
            failures.failed(pending.records, e, report);
        }
        for waiter in pending.waiters.drain(..) {
            // The request may have stopped waiting (its own bound): nobody to tell then.
            let _ = waiter.send(result.is_ok());
        }
        pending.rows.clear();
        pending.records = 0;
        result
    };
    loop {
        let now = Instant::now();
        if now >= next_prune {
            if let Err(e) = store.prune(now_unix_ms()) {
                report(&format!("retention not applied: {e}"));
            }
            next_prune = Instant::now() + config.prune_interval;
        }
        if flush_due.is_some_and(|due| now >= due) {
            let _ = write(&mut store, &mut pending, &mut failures);
            flush_due = None;
        }
        let wake = flush_due.map_or(next_prune, |due| due.min(next_prune));
        if deferred.is_none() && !draining && flush_due.is_some() && !config.linger.is_zero() {
            // Rows are waiting for their transaction: let more arrive without being woken by
            // each one.
            let until = wake.min(now + config.linger);
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            draining = true;
            continue;
        }
        let received = match deferred.take() {
            Some(message) => Ok(message),
            None if draining => match receiver.try_recv() {
                Ok(message) => Ok(message),
                Err(TryRecvError::Empty) => {
                    draining = false;
                    Err(RecvTimeoutError::Timeout)
                }
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            },
            None => receiver.recv_timeout(wake.saturating_duration_since(Instant::now())),
        };
        match received {
            Ok(Message::Row(row, bytes, waiter)) => {
                let waited_for = waiter.is_some();
                pending.take(shared, row, bytes, waiter);
                if waited_for {
                    // Group commit: everything already queued goes into the same transaction.
                    while pending.records < config.batch_size {
                        match receiver.try_recv() {
                            Ok(Message::Row(row, bytes, waiter)) => {
                                pending.take(shared, row, bytes, waiter);
                            }
                            Ok(message @ Message::Shutdown(_)) => {
                                // Handled next, after this group is written.
                                deferred = Some(message);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    let _ = write(&mut store, &mut pending, &mut failures);
                    flush_due = None;
                } else if pending.records >= config.batch_size {
                    let _ = write(&mut store, &mut pending, &mut failures);
                    flush_due = None;
                } else if flush_due.is_none() {
                    flush_due = Some(Instant::now() + config.flush_interval);
                }
            }
            Ok(Message::Shutdown(reply)) => {
                shared.closed.store(true, Ordering::Release);
                // Records that raced in before `closed` was seen are written too. (There is one
                // flusher, so there is no second shutdown to answer.)
                while let Ok(message) = receiver.try_recv() {
                    if let Message::Row(row, bytes, waiter) = message {
                        pending.take(shared, row, bytes, waiter);
                    }
                }
                let written = write(&mut store, &mut pending, &mut failures);
                let closed = store.close();
                // The flusher's future may have been dropped: then nobody is waiting.
                let _ = reply.send(written.and(closed));
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // Every writer and the flusher are gone: write what is left and stop.
                let _ = write(&mut store, &mut pending, &mut failures);
                if let Err(e) = store.close() {
                    report(&e.to_string());
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::PathBuf;

    use super::*;
    use crate::audit::test_support::{record, request};
    use crate::audit::{AuditFilter, Check, Retention};

    /// A reporter for tests that expect no warnings.
    fn quiet() -> Reporter {
        Arc::new(|warning: &str| panic!("unexpected audit warning: {warning}"))
    }

    fn temp_db() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        (dir, path)
    }

    fn stored(path: &std::path::Path) -> Vec<AuditRecord> {
        AuditStore::open_read_only(path)
            .unwrap()
            .query(&AuditFilter {
                include_dry_run: true,
                limit: 100_000,
                ..AuditFilter::default()
            })
            .unwrap()
    }

    #[tokio::test]
    async fn ten_thousand_records_from_several_threads_are_all_stored_after_shutdown() {
        let (_dir, path) = temp_db();
        let (writer, flusher) =
            AuditWriter::spawn(AuditStore::open(&path, Retention::default()).unwrap());
        // 4 threads × 1250 requests × 2 records (a request with two images).
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1250 {
                        let time = 1_000_000 + t * 10_000 + i * 2;
                        writer.record(vec![record(time), record(time + 1)]);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        flusher.shutdown().await.unwrap();
        assert_eq!(writer.dropped(), 0);
        assert_eq!(writer.failed(), 0);
        let found = stored(&path);
        assert_eq!(found.len(), 10_000);
        let mut times: Vec<i64> = found.iter().map(|r| r.time_unix_ms).collect();
        times.dedup();
        assert_eq!(times.len(), 10_000, "no record written twice");
        assert_eq!(found[0], record(1_000_000 + 3 * 10_000 + 2499));
    }

    #[tokio::test]
    async fn queries_while_the_writer_writes_see_whole_requests() {
        let (_dir, path) = temp_db();
        let config = WriterConfig {
            flush_interval: Duration::from_millis(5),
            ..WriterConfig::default()
        };
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::start(store, config, quiet());
        let requests: i64 = 2_000;
        let producer = {
            let writer = writer.clone();
            std::thread::spawn(move || {
                for t in 0..requests {
                    writer.record(request(1_000 + t, 3, 10));
                    if t % 100 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        };
        let mut queries = 0;
        let mut last = 0usize;
        while !producer.is_finished() || last < 60_000 {
            let found = stored(&path);
            queries += 1;
            // Committed requests only, each whole, newest first, in recorded order.
            assert_eq!(found.len() % 30, 0, "{}", found.len());
            assert!(found.len() >= last, "{} after {last}", found.len());
            for (i, chunk) in found.chunks(30).enumerate() {
                assert_eq!(chunk, &request(chunk[0].time_unix_ms, 3, 10)[..]);
                if let Some(next) = found.get((i + 1) * 30) {
                    assert!(next.time_unix_ms < chunk[0].time_unix_ms);
                }
            }
            last = found.len();
            if queries > 10_000 {
                panic!("the writer never wrote everything: {last} records");
            }
        }
        producer.join().unwrap();
        flusher.shutdown().await.unwrap();
        assert_eq!(writer.dropped(), 0);
        assert!(queries > 1, "{queries}");
        assert_eq!(stored(&path).len(), 30 * 2_000);
    }

    #[tokio::test]
    async fn records_queued_just_before_shutdown_are_written() {
        let (_dir, path) = temp_db();
        // Neither the batch size nor the timer would write these for a minute.
        let config = WriterConfig {
            batch_size: 1_000_000,
            flush_interval: Duration::from_secs(60),
            ..WriterConfig::default()
        };
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::start(store, config, quiet());
        writer.record(vec![record(1)]);
        writer.record(vec![record(2), record(3)]);
        flusher.shutdown().await.unwrap();
        assert_eq!(
            stored(&path)
                .iter()
                .map(|r| r.time_unix_ms)
                .collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        // After shutdown nothing is written, and nothing is lost silently.
        writer.record(vec![record(4), record(5)]);
        assert_eq!(writer.dropped(), 2);
        assert_eq!(stored(&path).len(), 3);
    }

    /// Fills a row with the one check of `record(time)`.
    fn fill_one(time: i64) -> impl FnOnce(&mut DecisionBuilder) {
        move |row| row.check(&Check::of(&record(time)))
    }

    #[tokio::test]
    async fn a_synced_writer_answers_each_commit_once_its_row_is_in_the_database() {
        let (_dir, path) = temp_db();
        // The timer alone would take a minute: only the group commit can write these in time.
        let config = WriterConfig {
            flush_interval: Duration::from_secs(60),
            synced: true,
            ..WriterConfig::default()
        };
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::start(store, config, quiet());
        let commits: Vec<Commit> = (0..50)
            .map(|i| writer.record_request(RequestFields::of(&record(i)), 1, fill_one(i)))
            .collect();
        for (i, commit) in commits.into_iter().enumerate() {
            commit.wait(Duration::from_secs(10)).await.unwrap();
            // Everything up to this request is readable by another connection now.
            assert!(
                stored(&path).len() > i,
                "request {i} answered before its row"
            );
        }
        assert_eq!(stored(&path).len(), 50);
        flusher.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_synced_commit_reports_a_dropped_row_and_an_unsynced_one_waits_for_nothing() {
        let (_dir, path) = temp_db();
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let config = WriterConfig {
            capacity: 1,
            flush_interval: Duration::from_secs(60),
            synced: true,
            ..WriterConfig::default()
        };
        let (writer, flusher) = AuditWriter::start(store, config, quiet());
        flusher.shutdown().await.unwrap();
        let commit = writer.record_request(RequestFields::of(&record(1)), 1, fill_one(1));
        assert_eq!(
            commit.wait(Duration::from_secs(10)).await,
            Err(CommitError::Dropped)
        );

        let (writer, _receiver) = AuditWriter::queue(10, usize::MAX, false);
        let commit = writer.record_request(RequestFields::of(&record(1)), 1, fill_one(1));
        assert_eq!(commit.wait(Duration::ZERO).await, Ok(()), "not synced");
        let (writer, _receiver) = AuditWriter::queue(10, usize::MAX, true);
        let commit = writer.record_request(RequestFields::of(&record(1)), 1, fill_one(1));
        assert_eq!(
            commit.wait(Duration::from_millis(10)).await,
            Err(CommitError::Slow(Duration::from_millis(10))),
            "no thread writes it"
        );
    }

    #[tokio::test]
    async fn batches_are_written_without_waiting_for_shutdown() {
        let (_dir, path) = temp_db();
        let config = WriterConfig {
            flush_interval: Duration::from_millis(20),
            ..WriterConfig::default()
        };
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::start(store, config, quiet());
        writer.record(vec![record(1)]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored(&path).is_empty() {
            assert!(Instant::now() < deadline, "the timer never wrote the batch");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flusher.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn rows_sent_while_the_writer_lingers_are_all_taken_and_the_timer_still_writes() {
        let (_dir, path) = temp_db();
        // The linger is longer than the flush window: the window bounds the sleep.
        let config = WriterConfig {
            flush_interval: Duration::from_millis(20),
            linger: Duration::from_secs(30),
            ..WriterConfig::default()
        };
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::start(store, config, quiet());
        writer.record(vec![record(1)]);
        // The thread now sleeps with a row pending; these arrive during the sleep.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for t in 2..=50 {
            writer.record(vec![record(t)]);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored(&path).len() < 50 {
            assert!(
                Instant::now() < deadline,
                "only {} of 50 rows written by the timer",
                stored(&path).len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        flusher.shutdown().await.unwrap();
        assert_eq!(writer.dropped(), 0);
        assert_eq!(stored(&path).len(), 50);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        // No thread takes anything out of this queue.
        let (writer, _receiver) = AuditWriter::queue(4, usize::MAX, false);
        writer.record(vec![record(1), record(2), record(3)]);
        writer.record(vec![record(4), record(5)]);
        assert_eq!(
            writer.dropped(),
            2,
            "3 + 2 > 4: the second request's records"
        );
        writer.record(vec![record(6)]);
        assert_eq!(writer.dropped(), 2, "exactly full");
        writer.record(Vec::new());
        let started = Instant::now();
        for i in 0..100_000 {
            writer.record(vec![record(i)]);
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(writer.dropped(), 100_002);
        assert_eq!(writer.shared.queued.load(Ordering::Relaxed), 4);
    }

    /// The queue bytes of the one-record request `record(time)`.
    fn row_bytes(time: i64) -> usize {
        let rows = DecisionRow::from_records(&[record(time)]);
        assert_eq!(rows.len(), 1);
        rows[0].bytes()
    }

    #[test]
    fn a_queue_full_in_bytes_drops_and_counts_too() {
        let size = row_bytes(1);
        assert!(size > std::mem::size_of::<DecisionRow>(), "{size}");
        assert!((2..=5).all(|t| row_bytes(t) == size));
        // Room for three rows by size, many more by count.
        let (writer, receiver) = AuditWriter::queue(1000, 3 * size, false);
        writer.record(vec![record(1), record(2)]);
        writer.record(vec![record(3), record(4)]);
        assert_eq!(
            writer.dropped(),
            2,
            "a call's records are queued all or none"
        );
        writer.record(vec![record(5)]);
        assert_eq!(writer.dropped(), 2, "exactly full");
        assert_eq!(writer.shared.queued_bytes.load(Ordering::Relaxed), 3 * size);
        // What the thread takes out makes room again.
        let mut batch = Batch::default();
        for _ in 0..2 {
            let Ok(Message::Row(row, bytes, _)) = receiver.recv() else {
                panic!("a row expected");
            };
            assert_eq!(bytes, size);
            batch.take(&writer.shared, row, bytes, None);
        }
        assert_eq!(batch.records, 2);
        writer.record(vec![record(6), record(7)]);
        assert_eq!(writer.dropped(), 2);
        assert_eq!(writer.shared.queued.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_request_is_encoded_on_the_callers_thread_into_one_row() {
        let (writer, receiver) = AuditWriter::queue(1000, usize::MAX, false);
        let request: Vec<AuditRecord> = (0..30)
            .map(|i| {
                let mut r = record(7);
                r.image = format!("registry.company.com/app-{}:v1", i % 3);
                r.policy = format!("policy-{}", i / 3);
                r
            })
            .collect();
        writer.record(request.clone());
        let Ok(Message::Row(row, bytes, _)) = receiver.try_recv() else {
            panic!("a row expected");
        };
        assert!(receiver.try_recv().is_err(), "one row per request");
        assert_eq!(row.check_count, 30);
        assert_eq!(bytes, row.bytes());
        assert_eq!(writer.shared.queued.load(Ordering::Relaxed), 30);
        assert_eq!(writer.shared.queued_bytes.load(Ordering::Relaxed), bytes);
        assert_eq!(DecisionRow::from_records(&request), vec![row]);
    }

    #[test]
    fn records_are_not_even_built_when_the_queue_is_full() {
        let (writer, _receiver) = AuditWriter::queue(4, usize::MAX, false);
        let one = record(1);
        let fill = |n: usize| {
            let one = &one;
            move |row: &mut DecisionBuilder| {
                for _ in 0..n {
                    row.check(&Check::of(one));
                }
            }
        };
        let _ = writer.record_request(RequestFields::of(&one), 3, fill(3));
        let _ = writer.record_request(RequestFields::of(&one), 2, |_| {
            panic!("built for a full queue")
        });
        assert_eq!(writer.dropped(), 2);
        let _ = writer.record_request(RequestFields::of(&one), 1, fill(1));
        assert_eq!(writer.dropped(), 2);
        assert_eq!(writer.shared.queued.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn records_for_a_writer_whose_thread_is_gone_are_counted_as_dropped() {
        let (writer, receiver) = AuditWriter::queue(4, usize::MAX, false);
        drop(receiver);
        writer.record(vec![record(1), record(2)]);
        assert_eq!(writer.dropped(), 2);
        assert_eq!(writer.shared.queued.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn shutdown_says_when_the_writer_is_gone() {
        let (writer, receiver) = AuditWriter::queue(4, usize::MAX, false);
        drop(receiver);
        let flusher = AuditFlusher {
            sender: writer.sender.clone(),
            not_started: None,
        };
        let err = flusher.shutdown().await.unwrap_err();
        assert!(matches!(err, AuditError::WriterStopped), "{err:?}");
    }

    #[tokio::test]
    async fn retention_is_applied_when_the_writer_starts() {
        let (_dir, path) = temp_db();
        let mut store = AuditStore::open(
            &path,
            Retention {
                max_age: Duration::from_secs(3600),
                max_rows: 1_000_000,
            },
        )
        .unwrap();
        let now = now_unix_ms();
        store
            .insert(&[record(now - 2 * 3_600_000), record(now - 60_000)])
            .unwrap();
        let (_writer, flusher) = AuditWriter::spawn(store);
        flusher.shutdown().await.unwrap();
        assert_eq!(
            stored(&path)
                .iter()
                .map(|r| r.time_unix_ms)
                .collect::<Vec<_>>(),
            vec![now - 60_000]
        );
    }

    #[tokio::test]
    async fn the_writer_stops_on_its_own_when_every_handle_is_gone() {
        let (_dir, path) = temp_db();
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::spawn(store);
        writer.record(vec![record(1)]);
        drop(writer);
        drop(flusher);
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored(&path).is_empty() {
            assert!(
                Instant::now() < deadline,
                "the last records were never written"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn records_sqlite_refuses_are_counted_reported_and_returned_by_shutdown() {
        let (_dir, path) = temp_db();
        AuditStore::open(&path, Retention::default()).unwrap();
        // A read-only store: every prune and insert fails.
        let store = AuditStore::open_read_only(&path).unwrap();
        let warnings = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&warnings);
        let (writer, flusher) = AuditWriter::spawn_with_reporter(store, move |w| {
            seen.lock().unwrap().push(w.to_string());
        });
        writer.record(vec![record(1), record(2)]);
        let err = flusher.shutdown().await.unwrap_err();
        assert!(matches!(err, AuditError::Write { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(writer.failed(), 2);
        assert_eq!(writer.dropped(), 0);
        let warnings = warnings.lock().unwrap();
        assert!(
            warnings[0].starts_with("retention not applied: could not write to the audit database"),
            "{warnings:?}"
        );
        assert!(
            warnings[1].starts_with("2 record(s) not written: could not write"),
            "{warnings:?}"
        );
    }
}
