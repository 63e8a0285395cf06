//! [`AuditStore`]: the SQLite database behind the audit trail — schema, batched inserts,
//! filtered queries and retention.
//!
//! The database runs in WAL mode, so read-only connections (`GET /audit`, `sealgate audit`) read
//! while the writer writes. Each [`AuditRecord`] field is a column of table `audit`; `time_unix_ms`
//! is indexed, and queries walk that index newest first. Table `schema_version` holds one row,
//! [`SCHEMA_VERSION`], checked on every open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, params, params_from_iter};
use sealgate_core::image::wildcard;

use super::{AuditError, AuditFilter, AuditRecord};

/// The schema version this build creates, reads and writes.
pub const SCHEMA_VERSION: i64 = 1;

/// How long SQLite waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows deleted per statement when pruning, so one prune never makes one huge transaction.
const PRUNE_CHUNK: i64 = 10_000;

/// Rows a query returns when the filter's limit is 0.
const DEFAULT_QUERY_LIMIT: usize = 1000;

/// The schema of version 1 (created in one transaction with the version row).
const SCHEMA_V1: &str = "
CREATE TABLE audit (
    id           INTEGER PRIMARY KEY,
    time_unix_ms INTEGER NOT NULL,
    uid          TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    operation    TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    image        TEXT    NOT NULL,
    digest       TEXT,
    policy       TEXT    NOT NULL,
    rule         TEXT    NOT NULL,
    result       TEXT    NOT NULL,
    allowed      INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    signer       TEXT,
    duration_ms  REAL    NOT NULL
);
CREATE INDEX audit_time ON audit (time_unix_ms);
";

/// The columns in [`AuditRecord`] field order (after `id`).
const COLUMNS: &str = "time_unix_ms, uid, dry_run, operation, namespace, kind, name, image, \
digest, policy, rule, result, allowed, reason, signer, duration_ms";

/// How much of the audit trail is kept; older rows, then the oldest beyond the row limit, are
/// deleted by [`AuditStore::prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rows older than this are deleted (default 30 days).
    pub max_age: Duration,
    /// At most this many rows are kept, the newest (default 1,000,000).
    pub max_rows: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_rows: 1_000_000,
        }
    }
}

/// The audit database: one SQLite connection, writable ([`AuditStore::open`]) or read-only
/// ([`AuditStore::open_read_only`]).
#[derive(Debug)]
pub struct AuditStore {
    conn: Connection,
    path: PathBuf,
    retention: Retention,
}

impl AuditStore {
    /// Opens the database at `path` for writing, creating the file (and its directory) and the
    /// schema when missing. Refuses files that are not SQLite, SQLite databases sealgate did not
    /// create, and databases of a newer schema.
    pub fn open(path: &Path, retention: Retention) -> Result<AuditStore, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| AuditError::CreateDir {
                dir: dir.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(|e| open_error(path, &e))?;
        let mut store = AuditStore {
            conn,
            path: path.to_path_buf(),
            retention,
        };
        store.set_up().map_err(|e| open_error(path, &e))??;
        Ok(store)
    }

    /// Opens an existing database read-only, for queries while the server writes it.
    pub fn open_read_only(path: &Path) -> Result<AuditStore, AuditError> {
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AuditError::Missing {
                    path: path.to_path_buf(),
                });
            }
            // E.g. a data directory this user may not enter.
            Err(e) => {
                return Err(AuditError::Open {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                });
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, &e))?;
        let store = AuditStore {
            conn,
            path: path.to_path_buf(),
            retention: Retention::default(),
        };
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(path, &e))?;
        match store.schema_version().map_err(|e| open_error(path, &e))? {
            Some(found) => store.check_version(found)?,
            None => return Err(not_ours(path)),
        }
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the connection up for writing and creates or checks the schema. The outer error is
    /// SQLite's; the inner one a file sealgate cannot use.
    fn set_up(&mut self) -> rusqlite::Result<Result<(), AuditError>> {
        self.conn.busy_timeout(BUSY_TIMEOUT)?;
        // Only takes effect before the first table is created: lets prune give space back.
        self.conn
            .pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        let mode: String =
            self.conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Ok(Err(AuditError::Open {
                path: self.path.clone(),
                detail: format!("SQLite kept journal mode '{mode}' instead of WAL"),
            }));
        }
        // An audit trail should survive a power cut; with batched writes the fsyncs are cheap.
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        let tx = self.conn.transaction()?;
        let version = schema_version_of(&tx)?;
        match version {
            Some(found) => {
                if found > SCHEMA_VERSION {
                    return Ok(Err(AuditError::NewerSchema {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    }));
                }
            }
            None => {
                let tables: i64 = tx.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |row| row.get(0),
                )?;
                if tables > 0 {
                    return Ok(Err(not_ours(&self.path)));
                }
                tx.execute_batch(SCHEMA_V1)?;
                tx.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
            }
        }
        tx.commit()?;
        Ok(Ok(()))
    }

    /// The version in `schema_version`, `None` when the table does not exist.
    fn schema_version(&self) -> rusqlite::Result<Option<i64>> {
        schema_version_of(&self.conn)
    }

    fn check_version(&self, found: i64) -> Result<(), AuditError> {
        if found > SCHEMA_VERSION {
            Err(AuditError::NewerSchema {
                path: self.path.clone(),
                found,
                supported: SCHEMA_VERSION,
            })
        } else {
            Ok(())
        }
    }

    /// Inserts `records` in one transaction: all or none.
    pub fn insert(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        self.insert_all(records).map_err(|e| self.write_error(&e))
    }

    fn insert_all(&mut self, records: &[AuditRecord]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO audit ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?;
            for r in records {
                // SQLite stores NaN as NULL, which the NOT NULL column would reject with the
                // whole batch: a duration that is not a number is recorded as 0.
                let duration_ms = if r.duration_ms.is_finite() {
                    r.duration_ms
                } else {
                    0.0
                };
                insert.execute(params![
                    r.time_unix_ms,
                    r.uid,
                    r.dry_run,
                    r.operation,
                    r.namespace,
                    r.kind,
                    r.name,
                    r.image,
                    r.digest,
                    r.policy,
                    r.rule,
                    r.result,
                    r.allowed,
                    r.reason,
                    r.signer,
                    duration_ms,
                ])?;
            }
        }
        tx.commit()
    }

    /// The records matching `filter`, newest first, at most `filter.limit` (1000 when 0).
    ///
    /// `since`, `namespace`, `result` and dry-run exclusion are SQL conditions on the time-ordered
    /// index walk; the image pattern's literal prefix is one too, and the Kyverno wildcard match
    /// itself runs here, on each candidate row, until the limit is reached.
    pub fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        self.query_rows(filter).map_err(|e| AuditError::Read {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }

    fn query_rows(&self, filter: &AuditFilter) -> rusqlite::Result<Vec<AuditRecord>> {
        let limit = if filter.limit == 0 {
            DEFAULT_QUERY_LIMIT
        } else {
            filter.limit
        };
        let mut conditions: Vec<&str> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        if let Some(since) = filter.since_unix_ms {
            conditions.push("time_unix_ms >= ?");
            values.push(Value::Integer(since));
        }
        if let Some(namespace) = &filter.namespace {
            conditions.push("namespace = ?");
            values.push(Value::Text(namespace.clone()));
        }
        if let Some(result) = &filter.result {
            conditions.push("result = ?");
            values.push(Value::Text(result.clone()));
        }
        if !filter.include_dry_run {
            conditions.push("dry_run = 0");
        }
        if let Some(pattern) = &filter.image {
            let prefix: String = pattern
                .chars()
                .take_while(|c| !matches!(c, '*' | '?'))
                .collect();
            if !prefix.is_empty() {
                conditions.push("substr(image, 1, ?) = ?");
                values.push(Value::Integer(
                    i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX),
                ));
                values.push(Value::Text(prefix));
            }
        }
        let mut sql = format!("SELECT {COLUMNS} FROM audit");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY time_unix_ms DESC, id DESC");
        if filter.image.is_none() {
            sql.push_str(" LIMIT ?");
            values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        let mut statement = self.conn.prepare(&sql)?;
        let mut rows = statement.query(params_from_iter(values))?;
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(row) = rows.next()? else { break };
            let record = AuditRecord {
                time_unix_ms: row.get(0)?,
                uid: row.get(1)?,
                dry_run: row.get(2)?,
                operation: row.get(3)?,
                namespace: row.get(4)?,
                kind: row.get(5)?,
                name: row.get(6)?,
                image: row.get(7)?,
                digest: row.get(8)?,
                policy: row.get(9)?,
                rule: row.get(10)?,
                result: row.get(11)?,
                allowed: row.get(12)?,
                reason: row.get(13)?,
                signer: row.get(14)?,
                duration_ms: row.get(15)?,
            };
            if filter
                .image
                .as_deref()
                .is_none_or(|pattern| wildcard::matches(pattern, &record.image))
            {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// Applies the retention: deletes rows older than `max_age` before `now_unix_ms`, then the
    /// oldest rows beyond `max_rows`, in chunks. Returns how many rows were deleted.
    pub fn prune(&mut self, now_unix_ms: i64) -> Result<u64, AuditError> {
        self.prune_rows(now_unix_ms)
            .map_err(|e| self.write_error(&e))
    }

    fn prune_rows(&mut self, now_unix_ms: i64) -> rusqlite::Result<u64> {
        let max_age_ms = i64::try_from(self.retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_unix_ms.saturating_sub(max_age_ms);
        let mut deleted = 0u64;
        loop {
            let n = self.conn.execute(
                "DELETE FROM audit WHERE id IN \
                 (SELECT id FROM audit WHERE time_unix_ms < ?1 ORDER BY time_unix_ms LIMIT ?2)",
                params![cutoff, PRUNE_CHUNK],
            )?;
            deleted += n as u64;
            if n == 0 {
                break;
            }
        }
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM audit", [], |row| row.get(0))?;
        let max_rows = i64::try_from(self.retention.max_rows).unwrap_or(i64::MAX);
        let mut excess = rows.saturating_sub(max_rows);
        while excess > 0 {
            let n = self.conn.execute(
                "DELETE FROM audit WHERE id IN \
                 (SELECT id FROM audit ORDER BY time_unix_ms, id LIMIT ?1)",
                [excess.min(PRUNE_CHUNK)],
            )?;
            if n == 0 {
                break;
            }
            deleted += n as u64;
            excess -= n as i64;
        }
        if deleted > 0 {
            // Give the freed pages back to the file system (auto_vacuum = INCREMENTAL). The
            // pragma frees pages one step at a time, so step it to the end.
            let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
        }
        Ok(deleted)
    }

    /// Closes the connection, reporting what SQLite says (the last close checkpoints the WAL).
    pub(crate) fn close(self) -> Result<(), AuditError> {
        let path = self.path;
        self.conn.close().map_err(|(_, e)| AuditError::Write {
            detail: e.to_string(),
            path,
        })
    }

    fn write_error(&self, e: &rusqlite::Error) -> AuditError {
        AuditError::Write {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }
}

/// The version in `schema_version`, `None` when the table does not exist.
fn schema_version_of(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'",
        [],
        |row| row.get(0),
    )?;
    if exists == 0 {
        return Ok(None);
    }
    conn.query_row("SELECT max(version) FROM schema_version", [], |row| {
        row.get::<_, Option<i64>>(0)
    })
    .map(|v| Some(v.unwrap_or(0)))
}

/// A SQLite database some other program made.
fn not_ours(path: &Path) -> AuditError {
    AuditError::NotAuditDatabase {
        path: path.to_path_buf(),
        detail: "a SQLite database without sealgate's schema_version table".into(),
    }
}

/// An error while opening: a file that is not a database gets its own message.
fn open_error(path: &Path, e: &rusqlite::Error) -> AuditError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            AuditError::NotAuditDatabase {
                path: path.to_path_buf(),
                detail: e.to_string(),
            }
        }
        _ => AuditError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::time::Instant;

    use super::*;
    use crate::audit::test_support::record;

    fn temp_store(retention: Retention) -> (tempfile::TempDir, AuditStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = AuditStore::open(&dir.path().join("audit.db"), retention).unwrap();
        (dir, store)
    }

    fn times(records: &[AuditRecord]) -> Vec<i64> {
        records.iter().map(|r| r.time_unix_ms).collect()
    }

    fn all(store: &AuditStore) -> Vec<AuditRecord> {
        store
            .query(&AuditFilter {
                include_dry_run: true,
                limit: MAX,
                ..AuditFilter::default()
            })
            .unwrap()
    }

    const MAX: usize = 100_000;

    #[test]
    fn every_field_round_trips() {
        let (_dir, mut store) = temp_store(Retention::default());
        let full = record(1_000);
        let sparse = AuditRecord {
            time_unix_ms: 2_000,
            uid: String::new(),
            dry_run: true,
            operation: "UPDATE".into(),
            namespace: String::new(),
            kind: "ClusterRole".into(),
            name: "ünïcode-名前".into(),
            image: "docker.io/library/nginx:1.27".into(),
            digest: None,
            policy: String::new(),
            rule: String::new(),
            result: "none".into(),
            allowed: true,
            reason: "not covered by any verifyImages rule; 'quoted' \"text\"\nsecond line".into(),
            signer: None,
            duration_ms: 0.125,
        };
        store.insert(&[full.clone(), sparse.clone()]).unwrap();
        assert_eq!(all(&store), vec![sparse, full]);
    }

    #[test]
    fn a_duration_that_is_not_a_number_is_stored_as_zero_not_refused() {
        let (_dir, mut store) = temp_store(Retention::default());
        let mut r = record(1);
        r.duration_ms = f64::NAN;
        let mut s = record(2);
        s.duration_ms = f64::INFINITY;
        store.insert(&[r, s]).unwrap();
        assert!(all(&store).iter().all(|r| r.duration_ms == 0.0));
    }

    #[test]
    fn records_survive_closing_and_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/dir/audit.db");
        let mut store = AuditStore::open(&path, Retention::default()).unwrap();
        store.insert(&[record(1)]).unwrap();
        store.close().unwrap();
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        assert_eq!(all(&store), vec![record(1)]);
        let version: i64 = store
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        store.close().unwrap();
        // Read-only after a clean close (no -wal/-shm files left).
        let reader = AuditStore::open_read_only(&path).unwrap();
        assert_eq!(all(&reader), vec![record(1)]);
    }

    #[test]
    fn queries_walk_the_time_index() {
        let (_dir, store) = temp_store(Retention::default());
        let plan: String = store
            .conn
            .query_row(
                &format!(
                    "EXPLAIN QUERY PLAN SELECT {COLUMNS} FROM audit WHERE time_unix_ms >= 1 \
                     AND namespace = 'a' AND dry_run = 0 ORDER BY time_unix_ms DESC, id DESC"
                ),
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("audit_time"), "{plan}");
    }

    /// Records for the filter tests: times 1..=8, spread over namespaces, results and images.
    fn filter_fixture() -> (tempfile::TempDir, AuditStore) {
        let (dir, mut store) = temp_store(Retention::default());
        let mut records = Vec::new();
        let specs: &[(i64, &str, &str, &str, bool)] = &[
            (
                1,
                "team-a",
                "registry.company.com/team-a/app:v1",
                "pass",
                false,
            ),
            (
                2,
                "team-b",
                "registry.company.com/team-b/api:v2",
                "fail",
                false,
            ),
            (3, "team-a", "docker.io/library/nginx:1.27", "none", false),
            (
                4,
                "",
                "registry.company.com/platform/agent:v9",
                "pass",
                false,
            ),
            (
                5,
                "team-a",
                "registry.company.com/team-a/app:v2",
                "fail",
                true,
            ),
            (6, "team-b", "ghcr.io/org/tool:v1", "error", false),
            (
                7,
                "team-a",
                "registry.company.com/team-a/app:v3",
                "skip",
                false,
            ),
            (
                8,
                "team-a",
                "registry.company.com/team-a/app:v4",
                "fail",
                false,
            ),
        ];
        for (time, namespace, image, result, dry_run) in specs {
            let mut r = record(*time);
            r.namespace = namespace.to_string();
            r.image = image.to_string();
            r.result = result.to_string();
            r.dry_run = *dry_run;
            records.push(r);
        }
        // Inserted out of order: newest-first comes from the time, not the insertion.
        records.reverse();
        records.swap(0, 3);
        store.insert(&records).unwrap();
        (dir, store)
    }

    fn query_times(store: &AuditStore, filter: AuditFilter) -> Vec<i64> {
        times(&store.query(&filter).unwrap())
    }

    #[test]
    fn by_default_real_decisions_come_newest_first() {
        let (_dir, store) = filter_fixture();
        assert_eq!(
            query_times(&store, AuditFilter::default()),
            vec![8, 7, 6, 4, 3, 2, 1],
            "dry-run record 5 excluded"
        );
        let with_dry_run = AuditFilter {
            include_dry_run: true,
            ..AuditFilter::default()
        };
        assert_eq!(
            query_times(&store, with_dry_run),
            vec![8, 7, 6, 5, 4, 3, 2, 1]
        );
    }

    #[test]
    fn since_keeps_records_at_or_after_the_time() {
        let (_dir, store) = filter_fixture();
        let filter = AuditFilter {
            since_unix_ms: Some(6),
            ..AuditFilter::default()
        };
        assert_eq!(query_times(&store, filter), vec![8, 7, 6]);
    }

    #[test]
    fn namespace_and_result_filter_exactly() {
        let (_dir, store) = filter_fixture();
        let namespace = |ns: &str| AuditFilter {
            namespace: Some(ns.into()),
            ..AuditFilter::default()
        };
        assert_eq!(query_times(&store, namespace("team-a")), vec![8, 7, 3, 1]);
        assert_eq!(
            query_times(&store, namespace("")),
            vec![4],
            "cluster-scoped"
        );
        assert_eq!(query_times(&store, namespace("team")), Vec::<i64>::new());
        let result = |r: &str| AuditFilter {
            result: Some(r.into()),
            ..AuditFilter::default()
        };
        assert_eq!(query_times(&store, result("fail")), vec![8, 2]);
        assert_eq!(query_times(&store, result("none")), vec![3]);
        assert_eq!(query_times(&store, result("error")), vec![6]);
        let both = AuditFilter {
            namespace: Some("team-a".into()),
            result: Some("fail".into()),
            include_dry_run: true,
            ..AuditFilter::default()
        };
        assert_eq!(query_times(&store, both), vec![8, 5]);
    }

    #[test]
    fn image_patterns_are_kyverno_wildcards() {
        let (_dir, store) = filter_fixture();
        let image = |p: &str| AuditFilter {
            image: Some(p.into()),
            ..AuditFilter::default()
        };
        // `*` crosses `/`.
        assert_eq!(
            query_times(&store, image("registry.company.com/*")),
            vec![8, 7, 4, 2, 1]
        );
        assert_eq!(query_times(&store, image("*/app:*")), vec![8, 7, 1]);
        assert_eq!(query_times(&store, image("*")), vec![8, 7, 6, 4, 3, 2, 1]);
        assert_eq!(
            query_times(&store, image("registry.company.com/team-?/*:v?")),
            vec![8, 7, 2, 1]
        );
        assert_eq!(
            query_times(&store, image("docker.io/library/nginx:1.27")),
            vec![3]
        );
        // Whole-string match: a prefix without `*` is not enough, and case matters.
        assert_eq!(
            query_times(&store, image("registry.company.com/team-a")),
            Vec::<i64>::new()
        );
        assert_eq!(query_times(&store, image("GHCR.IO/*")), Vec::<i64>::new());
        // Non-ASCII literal prefixes are compared in characters.
        assert_eq!(query_times(&store, image("ü*")), Vec::<i64>::new());
    }

    #[test]
    fn limit_counts_matches_newest_first() {
        let (_dir, store) = filter_fixture();
        let filter = AuditFilter {
            limit: 2,
            ..AuditFilter::default()
        };
        assert_eq!(query_times(&store, filter), vec![8, 7]);
        // With an image pattern the limit applies after the wildcard match.
        let filter = AuditFilter {
            image: Some("*/team-?/*".into()),
            limit: 3,
            ..AuditFilter::default()
        };
        assert_eq!(query_times(&store, filter), vec![8, 7, 2]);
    }

    #[test]
    fn limit_zero_means_a_thousand() {
        let (_dir, mut store) = temp_store(Retention::default());
        let records: Vec<AuditRecord> = (0..1500).map(record).collect();
        store.insert(&records).unwrap();
        let found = store.query(&AuditFilter::default()).unwrap();
        assert_eq!(found.len(), DEFAULT_QUERY_LIMIT);
        assert_eq!(found[0].time_unix_ms, 1499);
        let with_image = AuditFilter {
            image: Some("registry.company.com/*".into()),
            ..AuditFilter::default()
        };
        assert_eq!(store.query(&with_image).unwrap().len(), DEFAULT_QUERY_LIMIT);
    }

    #[test]
    fn retention_deletes_records_older_than_max_age() {
        let day_ms = 86_400_000;
        let (_dir, mut store) = temp_store(Retention {
            max_age: Duration::from_secs(2 * 86_400),
            max_rows: 1_000_000,
        });
        let now = 100 * day_ms;
        store
            .insert(&[
                record(now - 3 * day_ms),
                record(now - 2 * day_ms - 1),
                record(now - 2 * day_ms),
                record(now - day_ms),
            ])
            .unwrap();
        assert_eq!(store.prune(now).unwrap(), 2);
        assert_eq!(times(&all(&store)), vec![now - day_ms, now - 2 * day_ms]);
        assert_eq!(store.prune(now).unwrap(), 0);
    }

    #[test]
    fn retention_keeps_the_newest_max_rows() {
        let (_dir, mut store) = temp_store(Retention {
            max_age: Duration::from_secs(365 * 86_400),
            max_rows: 25_000,
        });
        // More than two prune chunks over the limit, inserted newest first.
        let records: Vec<AuditRecord> = (0..50_001).rev().map(|t| record(1_000 + t)).collect();
        store.insert(&records).unwrap();
        assert_eq!(store.prune(60_000).unwrap(), 25_001);
        let kept = all(&store);
        assert_eq!(kept.len(), 25_000);
        assert_eq!(kept.first().unwrap().time_unix_ms, 51_000);
        assert_eq!(kept.last().unwrap().time_unix_ms, 26_001);
        assert_eq!(store.prune(60_000).unwrap(), 0);
    }

    #[test]
    fn retention_with_equal_times_keeps_the_later_inserted() {
        let (_dir, mut store) = temp_store(Retention {
            max_age: Duration::from_secs(86_400),
            max_rows: 2,
        });
        let mut records: Vec<AuditRecord> = (0..4).map(|_| record(5)).collect();
        for (i, r) in records.iter_mut().enumerate() {
            r.uid = format!("u{i}");
        }
        store.insert(&records).unwrap();
        assert_eq!(store.prune(5).unwrap(), 2);
        let uids: Vec<String> = all(&store).into_iter().map(|r| r.uid).collect();
        assert_eq!(uids, vec!["u3", "u2"]);
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        std::fs::write(&path, "this is not a SQLite database\n".repeat(200)).unwrap();
        for err in [
            AuditStore::open(&path, Retention::default()).unwrap_err(),
            AuditStore::open_read_only(&path).unwrap_err(),
        ] {
            assert!(
                matches!(err, AuditError::NotAuditDatabase { .. }),
                "{err:?}"
            );
            let message = err.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("move it aside"), "{message}");
        }
        // Left as it was.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("this is not")
        );
    }

    #[test]
    fn a_sqlite_database_of_another_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let other = Connection::open(&path).unwrap();
        other
            .execute_batch("CREATE TABLE users (name TEXT)")
            .unwrap();
        drop(other);
        for err in [
            AuditStore::open(&path, Retention::default()).unwrap_err(),
            AuditStore::open_read_only(&path).unwrap_err(),
        ] {
            let message = err.to_string();
            assert!(
                message.contains("without sealgate's schema_version"),
                "{message}"
            );
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        store
            .conn
            .execute("UPDATE schema_version SET version = 7", [])
            .unwrap();
        store.close().unwrap();
        for err in [
            AuditStore::open(&path, Retention::default()).unwrap_err(),
            AuditStore::open_read_only(&path).unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    AuditError::NewerSchema {
                        found: 7,
                        supported: 1,
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn an_unwritable_location_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let err = AuditStore::open(&file.join("audit.db"), Retention::default()).unwrap_err();
        assert!(matches!(err, AuditError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("a-file"), "{err}");
    }

    #[test]
    fn readers_read_while_the_writer_holds_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let mut writer = AuditStore::open(&path, Retention::default()).unwrap();
        writer.insert(&[record(1), record(2)]).unwrap();

        // The writer is mid-transaction, holding the write lock.
        writer.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        writer
            .conn
            .execute(
                "INSERT INTO audit (time_unix_ms, uid, dry_run, operation, namespace, kind, \
                 name, image, policy, rule, result, allowed, reason, duration_ms) \
                 VALUES (3, '', 0, 'CREATE', '', 'Pod', 'p', 'i', '', '', 'pass', 1, '', 0)",
                [],
            )
            .unwrap();

        let started = Instant::now();
        let reader = AuditStore::open_read_only(&path).unwrap();
        assert_eq!(times(&all(&reader)), vec![2, 1], "committed rows only");
        assert!(
            started.elapsed() < BUSY_TIMEOUT,
            "the reader did not wait for the writer"
        );
        writer.conn.execute_batch("COMMIT").unwrap();
        assert_eq!(times(&all(&reader)), vec![3, 2, 1]);

        // Read-only means read-only.
        let mut reader = reader;
        let err = reader.insert(&[record(4)]).unwrap_err();
        assert!(matches!(err, AuditError::Write { .. }), "{err:?}");
    }
}
