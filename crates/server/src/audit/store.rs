//! [`AuditStore`]: the SQLite database behind the audit trail — schema, batched inserts,
//! filtered queries and retention.
//!
//! The database runs in WAL mode, so read-only connections (`GET /audit`, `sealgate audit`) read
//! while the writer writes. Table `schema_version` holds one row, [`SCHEMA_VERSION`], checked on
//! every open.
//!
//! **Schema version 2**: table `decisions` has one row per admission request, not per audit
//! record: the request-level fields, two filter columns and the request's checks (its
//! [`AuditRecord`]s, one per image per rule) in one JSON column — see
//! [`decision`](super::decision) for the encoding. It is indexed on time, and on namespace and
//! time. A query narrows the rows in SQL (since, namespace, dry run, a result among the
//! request's results, an image starting with the pattern's literal prefix), walking an index
//! newest first; expands each remaining row into its records; applies the exact filters (the
//! Kyverno wildcard on the image, the result) to each; and stops at the limit, which counts
//! records. Retention counts and deletes rows, i.e. admission requests.
//!
//! **Version 1** (one row per record, table `audit`) is migrated when a writable store opens
//! it: in one transaction the records of each request (consecutive rows sharing the time, the
//! uid and every other request-level field) become one row of `decisions`, table `audit` is
//! dropped, and the freed pages are given back to the file system. If that fails the file is
//! left as it was. Read-only stores (`sealgate audit` next to a server not yet upgraded) read a
//! version 1 database as it is.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{Type, Value};
use rusqlite::{
    CachedStatement, Connection, ErrorCode, OpenFlags, Row, Transaction, TransactionBehavior,
    params, params_from_iter,
};
use sealgate_core::image::wildcard;

use super::decision::{DecisionRow, RequestFields, decode_checks};
use super::{AuditError, AuditFilter, AuditRecord};

/// The schema version this build creates, reads and writes.
pub const SCHEMA_VERSION: i64 = 2;

/// How long SQLite waits for another connection's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Rows deleted per statement when pruning, so one prune never makes one huge transaction.
const PRUNE_CHUNK: i64 = 10_000;

/// Records a query returns when the filter's limit is 0.
const DEFAULT_QUERY_LIMIT: usize = 1000;

/// The schema of version 2 (created in one transaction with the version row).
const SCHEMA_V2: &str = "
CREATE TABLE decisions (
    id           INTEGER PRIMARY KEY,
    time_unix_ms INTEGER NOT NULL,
    uid          TEXT    NOT NULL,
    dry_run      INTEGER NOT NULL,
    operation    TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    allowed      INTEGER NOT NULL,
    duration_ms  REAL    NOT NULL,
    check_count  INTEGER NOT NULL,
    results      TEXT    NOT NULL,
    images       TEXT    NOT NULL,
    checks       TEXT    NOT NULL
);
CREATE INDEX decisions_time ON decisions (time_unix_ms);
CREATE INDEX decisions_namespace_time ON decisions (namespace, time_unix_ms);
";

/// Inserts one [`DecisionRow`].
const INSERT_DECISION: &str = "INSERT INTO decisions (time_unix_ms, uid, dry_run, operation, \
namespace, kind, name, allowed, duration_ms, check_count, results, images, checks) VALUES \
(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// The columns a query reads, in the order [`AuditStore::query_rows`] reads them.
const QUERY_COLUMNS: &str = "id, time_unix_ms, uid, dry_run, operation, namespace, kind, name, allowed, duration_ms, checks";

/// Version 1's columns in [`AuditRecord`] field order (after `id`), for reading and migrating
/// a version 1 database.
const V1_COLUMNS: &str = "time_unix_ms, uid, dry_run, operation, namespace, kind, name, image, \
digest, policy, rule, result, allowed, reason, signer, duration_ms";

/// How much of the audit trail is kept; older requests, then the oldest beyond the row limit,
/// are deleted by [`AuditStore::prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Admission requests older than this are deleted with all their records (default 30 days).
    pub max_age: Duration,
    /// At most this many admission requests (rows of table `decisions`) are kept, the newest,
    /// each with all of its records (default 1,000,000).
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
    /// The file's schema version: [`SCHEMA_VERSION`], or 1 in a read-only store.
    version: i64,
}

impl AuditStore {
    /// Opens the database at `path` for writing, creating the file (and its directory) and the
    /// schema when missing, and migrating a version 1 database (see the module documentation).
    /// Refuses files that are not SQLite, SQLite databases sealgate did not create, and
    /// databases of a newer schema.
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
            version: SCHEMA_VERSION,
        };
        let migrated = store.set_up().map_err(|e| open_error(path, &e))??;
        if migrated {
            store
                .reclaim_after_migration()
                .map_err(|e| open_error(path, &e))?;
        }
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
        let mut store = AuditStore {
            conn,
            path: path.to_path_buf(),
            retention: Retention::default(),
            version: SCHEMA_VERSION,
        };
        store
            .conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(path, &e))?;
        match store.schema_version().map_err(|e| open_error(path, &e))? {
            Some(found) => {
                store.check_version(found)?;
                store.version = found;
            }
            None => return Err(not_ours(path)),
        }
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the connection up for writing and creates, checks or migrates the schema. The outer
    /// error is SQLite's; the inner one a file sealgate cannot use. `Ok(Ok(true))`: a version 1
    /// database was migrated.
    fn set_up(&mut self) -> rusqlite::Result<Result<bool, AuditError>> {
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
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let migrated = match schema_version_of(&tx)? {
            Some(found) if found > SCHEMA_VERSION => {
                return Ok(Err(AuditError::NewerSchema {
                    path,
                    found,
                    supported: SCHEMA_VERSION,
                }));
            }
            Some(1) => {
                if let Err(e) = migrate_v1(&tx) {
                    return Ok(Err(AuditError::Migrate {
                        path,
                        from: 1,
                        to: SCHEMA_VERSION,
                        detail: e.to_string(),
                    }));
                }
                true
            }
            Some(_) => false,
            None => {
                let tables: i64 = tx.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                    [],
                    |row| row.get(0),
                )?;
                if tables > 0 {
                    return Ok(Err(not_ours(&path)));
                }
                tx.execute_batch(SCHEMA_V2)?;
                tx.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
                false
            }
        };
        if let Err(e) = tx.commit() {
            if migrated {
                return Ok(Err(AuditError::Migrate {
                    path,
                    from: 1,
                    to: SCHEMA_VERSION,
                    detail: e.to_string(),
                }));
            }
            return Err(e);
        }
        Ok(Ok(migrated))
    }

    /// After a migration: gives the pages of the dropped table back to the file system and
    /// empties the write-ahead log, which held the whole new table.
    fn reclaim_after_migration(&mut self) -> rusqlite::Result<()> {
        self.incremental_vacuum()?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
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

    /// Inserts `records` in one transaction: all or none. Each run of consecutive records of
    /// one request (the same time, uid and other request-level fields) is stored as one row.
    pub fn insert(&mut self, records: &[AuditRecord]) -> Result<(), AuditError> {
        if records.is_empty() {
            return Ok(());
        }
        self.insert_rows(&DecisionRow::from_records(records))
    }

    /// Inserts `rows` in one transaction: all or none.
    pub(crate) fn insert_rows(&mut self, rows: &[DecisionRow]) -> Result<(), AuditError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.insert_all(rows).map_err(|e| self.write_error(&e))
    }

    fn insert_all(&mut self, rows: &[DecisionRow]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT_DECISION)?;
            for row in rows {
                insert_row(&mut insert, row)?;
            }
        }
        tx.commit()
    }

    /// The records matching `filter`, newest request first and each request's records in the
    /// order they were recorded; at most `filter.limit` records (1000 when 0).
    ///
    /// `since`, `namespace`, dry-run exclusion, "a check with this result" and "an image
    /// starting with the pattern's literal prefix" are SQL conditions on an index walk, newest
    /// first; the matching requests are expanded into records here, and the Kyverno wildcard
    /// and the result are matched on each record, until the limit is reached.
    pub fn query(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, AuditError> {
        let found = if self.version == 1 {
            self.query_v1(filter)
        } else {
            self.query_rows(filter)
        };
        found.map_err(|e| AuditError::Read {
            path: self.path.clone(),
            detail: e.to_string(),
        })
    }

    fn query_rows(&self, filter: &AuditFilter) -> rusqlite::Result<Vec<AuditRecord>> {
        let limit = effective_limit(filter);
        let mut query = SqlQuery::common(filter);
        if let Some(result) = &filter.result {
            query.push(
                "instr(results, ?) > 0",
                [Value::Text(format!(" {result} "))],
            );
        }
        if let Some(prefix) = filter.image.as_deref().map(literal_prefix)
            && !prefix.is_empty()
        {
            query.push("instr(images, ?) > 0", [Value::Text(format!(" {prefix}"))]);
        }
        let (sql, values) = query.select(QUERY_COLUMNS, "decisions");
        let mut statement = self.conn.prepare(&sql)?;
        let mut rows = statement.query(params_from_iter(values))?;
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(row) = rows.next()? else { break };
            let id: i64 = row.get(0)?;
            let uid: String = row.get(2)?;
            let operation: String = row.get(4)?;
            let namespace: String = row.get(5)?;
            let kind: String = row.get(6)?;
            let name: String = row.get(7)?;
            let request = RequestFields {
                time_unix_ms: row.get(1)?,
                uid: &uid,
                dry_run: row.get(3)?,
                operation: &operation,
                namespace: &namespace,
                kind: &kind,
                name: &name,
                allowed: row.get(8)?,
                duration_ms: row.get(9)?,
            };
            let checks = row.get_ref(10)?.as_str()?;
            let checks = decode_checks(id, checks)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(10, Type::Text, e.into()))?;
            for check in checks {
                if found.len() >= limit {
                    break;
                }
                let wanted = filter
                    .result
                    .as_deref()
                    .is_none_or(|result| check.result == result)
                    && filter
                        .image
                        .as_deref()
                        .is_none_or(|pattern| wildcard::matches(pattern, &check.image));
                if wanted {
                    found.push(check.into_record(&request));
                }
            }
        }
        Ok(found)
    }

    /// [`AuditStore::query`] on a version 1 database (read-only stores only: a writable store
    /// migrates it).
    fn query_v1(&self, filter: &AuditFilter) -> rusqlite::Result<Vec<AuditRecord>> {
        let limit = effective_limit(filter);
        let mut query = SqlQuery::common(filter);
        if let Some(result) = &filter.result {
            query.push("result = ?", [Value::Text(result.clone())]);
        }
        if let Some(prefix) = filter.image.as_deref().map(literal_prefix)
            && !prefix.is_empty()
        {
            let chars = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
            query.push(
                "substr(image, 1, ?) = ?",
                [Value::Integer(chars), Value::Text(prefix.to_string())],
            );
        }
        let (mut sql, mut values) = query.select(V1_COLUMNS, "audit");
        if filter.image.is_none() {
            sql.push_str(" LIMIT ?");
            values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        }
        let mut statement = self.conn.prepare(&sql)?;
        let mut rows = statement.query(params_from_iter(values))?;
        let mut found = Vec::new();
        while found.len() < limit {
            let Some(row) = rows.next()? else { break };
            let record = v1_record(row)?;
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

    /// Applies the retention: deletes the admission requests (rows, each with all its records)
    /// older than `max_age` before `now_unix_ms`, then the oldest beyond `max_rows`, in chunks.
    /// Returns how many requests were deleted.
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
                "DELETE FROM decisions WHERE id IN \
                 (SELECT id FROM decisions WHERE time_unix_ms < ?1 ORDER BY time_unix_ms LIMIT ?2)",
                params![cutoff, PRUNE_CHUNK],
            )?;
            deleted += n as u64;
            if n == 0 {
                break;
            }
        }
        let rows: i64 = self
            .conn
            .query_row("SELECT count(*) FROM decisions", [], |row| row.get(0))?;
        let max_rows = i64::try_from(self.retention.max_rows).unwrap_or(i64::MAX);
        let mut excess = rows.saturating_sub(max_rows);
        while excess > 0 {
            let n = self.conn.execute(
                "DELETE FROM decisions WHERE id IN \
                 (SELECT id FROM decisions ORDER BY time_unix_ms, id LIMIT ?1)",
                [excess.min(PRUNE_CHUNK)],
            )?;
            if n == 0 {
                break;
            }
            deleted += n as u64;
            excess -= n as i64;
        }
        if deleted > 0 {
            self.incremental_vacuum()?;
        }
        Ok(deleted)
    }

    /// Gives the free pages back to the file system (auto_vacuum = INCREMENTAL). The pragma
    /// frees pages one step at a time, so step it to the end.
    fn incremental_vacuum(&mut self) -> rusqlite::Result<()> {
        let mut vacuum = self.conn.prepare("PRAGMA incremental_vacuum")?;
        let mut steps = vacuum.query([])?;
        while steps.next()?.is_some() {}
        Ok(())
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

/// The filter's limit, 1000 when 0.
/// The conditions of a query and the values of their `?` placeholders, in order.
#[derive(Debug, Default)]
struct SqlQuery {
    conditions: Vec<&'static str>,
    values: Vec<Value>,
}

impl SqlQuery {
    /// The conditions both schemas express the same way: `since`, `namespace`, dry runs.
    fn common(filter: &AuditFilter) -> SqlQuery {
        let mut query = SqlQuery::default();
        if let Some(since) = filter.since_unix_ms {
            query.push("time_unix_ms >= ?", [Value::Integer(since)]);
        }
        if let Some(namespace) = &filter.namespace {
            query.push("namespace = ?", [Value::Text(namespace.clone())]);
        }
        if !filter.include_dry_run {
            query.push("dry_run = 0", []);
        }
        query
    }

    fn push<const N: usize>(&mut self, condition: &'static str, values: [Value; N]) {
        self.conditions.push(condition);
        self.values.extend(values);
    }

    /// `SELECT columns FROM table [WHERE …] ORDER BY` newest first, and its values.
    fn select(self, columns: &str, table: &str) -> (String, Vec<Value>) {
        let mut sql = format!("SELECT {columns} FROM {table}");
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY time_unix_ms DESC, id DESC");
        (sql, self.values)
    }
}

fn effective_limit(filter: &AuditFilter) -> usize {
    if filter.limit == 0 {
        DEFAULT_QUERY_LIMIT
    } else {
        filter.limit
    }
}

/// What an image must start with to match `pattern`: everything before its first `*` or `?`.
fn literal_prefix(pattern: &str) -> &str {
    pattern
        .find(['*', '?'])
        .map_or(pattern, |end| pattern.get(..end).unwrap_or_default())
}

fn insert_row(insert: &mut CachedStatement<'_>, row: &DecisionRow) -> rusqlite::Result<()> {
    insert.execute(params![
        row.time_unix_ms,
        row.uid,
        row.dry_run,
        row.operation,
        row.namespace,
        row.kind,
        row.name,
        row.allowed,
        row.duration_ms,
        i64::try_from(row.check_count).unwrap_or(i64::MAX),
        row.results,
        row.images,
        row.checks,
    ])?;
    Ok(())
}

/// A version 1 row (columns [`V1_COLUMNS`]).
fn v1_record(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
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
        cause: None,
    })
}

/// Moves a version 1 database's records into table `decisions`, one row per request, oldest
/// first; drops table `audit`; sets the version. Runs inside the caller's transaction.
fn migrate_v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA_V2)?;
    {
        // By time, then in the order they were written: a request's records are consecutive.
        let mut select = tx.prepare(&format!(
            "SELECT {V1_COLUMNS} FROM audit ORDER BY time_unix_ms, id"
        ))?;
        let mut insert = tx.prepare_cached(INSERT_DECISION)?;
        let mut rows = select.query([])?;
        let mut request: Vec<AuditRecord> = Vec::new();
        while let Some(row) = rows.next()? {
            let record = v1_record(row)?;
            if request.last().is_some_and(|last| {
                !RequestFields::of(last).same_request(&RequestFields::of(&record))
            }) {
                for decision in DecisionRow::from_records(&request) {
                    insert_row(&mut insert, &decision)?;
                }
                request.clear();
            }
            request.push(record);
        }
        for decision in DecisionRow::from_records(&request) {
            insert_row(&mut insert, &decision)?;
        }
    }
    tx.execute_batch("DROP TABLE audit")?;
    tx.execute("UPDATE schema_version SET version = ?1", [SCHEMA_VERSION])?;
    Ok(())
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
    use crate::audit::test_support::{record, request};

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
            cause: None,
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

    /// SQLite's plan for a query with `conditions`, as the query builds it.
    fn plan(store: &AuditStore, conditions: &str) -> String {
        let mut statement = store
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {QUERY_COLUMNS} FROM decisions WHERE {conditions} \
                 ORDER BY time_unix_ms DESC, id DESC"
            ))
            .unwrap();
        let steps: Vec<String> = statement
            .query_map([], |r| r.get(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        steps.join("; ")
    }

    #[test]
    fn queries_walk_an_index_newest_first_without_sorting() {
        let (_dir, store) = temp_store(Retention::default());
        let by_time = plan(
            &store,
            "time_unix_ms >= 1 AND dry_run = 0 AND instr(results, ' fail ') > 0 \
             AND instr(images, ' ghcr.io/') > 0",
        );
        assert!(by_time.contains("decisions_time"), "{by_time}");
        assert!(!by_time.contains("TEMP B-TREE"), "{by_time}");
        let by_namespace = plan(
            &store,
            "time_unix_ms >= 1 AND namespace = 'a' AND dry_run = 0",
        );
        assert!(
            by_namespace.contains("decisions_namespace_time"),
            "{by_namespace}"
        );
        assert!(!by_namespace.contains("TEMP B-TREE"), "{by_namespace}");
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
                        supported: 2,
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
                "INSERT INTO decisions (time_unix_ms, uid, dry_run, operation, namespace, kind, \
                 name, allowed, duration_ms, check_count, results, images, checks) \
                 VALUES (3, '', 0, 'CREATE', '', 'Pod', 'p', 1, 0, 1, ' pass ', ' i ', \
                 '[[\"i\",null,\"\",1,\"pass\",1,null]]')",
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

    /// The records of `store`, all of them, and the rows of table `decisions`.
    fn rows(store: &AuditStore) -> i64 {
        store
            .conn
            .query_row("SELECT count(*) FROM decisions", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_request_of_thirty_checks_is_one_row_and_round_trips_exactly() {
        let (_dir, mut store) = temp_store(Retention::default());
        let mut checks = request(1_000, 3, 10);
        // Every kind of value a field can take: absent, empty, escaped, repeated, non-ASCII.
        checks[4].digest = None;
        checks[4].signer = None;
        checks[4].result = "fail".into();
        checks[4].reason = "no signature by key 'prod': \"quoted\"\n\ttab \\ back\u{1}slash".into();
        checks[7].reason = checks[4].reason.clone();
        checks[9].image = "docker.io/library/nginx:1.27".into();
        checks[9].policy = String::new();
        checks[9].rule = String::new();
        checks[9].result = "none".into();
        checks[9].reason = "not covered by any verifyImages rule".into();
        checks[12].image = "ünïcode.example/名前:v1".into();
        checks[29].signer = Some("key a, certificate CN=b".into());
        store.insert(&checks).unwrap();
        assert_eq!(rows(&store), 1);
        assert_eq!(all(&store), checks, "order and every field");
        let (check_count, results, images, size): (i64, String, String, i64) = store
            .conn
            .query_row(
                "SELECT check_count, results, images, length(checks) FROM decisions",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(check_count, 30);
        assert_eq!(results, " pass fail none ");
        assert_eq!(
            images,
            " registry.company.com/team-a/app-0:v1 registry.company.com/team-a/app-1:v1 \
             registry.company.com/team-a/app-2:v1 docker.io/library/nginx:1.27 \
             ünïcode.example/名前:v1 "
        );
        // Repeated images, digests, reasons, policies and signers are back-references.
        let written_out: usize = checks
            .iter()
            .map(|c| {
                c.image.len()
                    + c.digest.as_ref().map_or(0, String::len)
                    + c.policy.len()
                    + c.rule.len()
                    + c.result.len()
                    + c.reason.len()
                    + c.signer.as_ref().map_or(0, String::len)
            })
            .sum();
        assert!(
            size * 3 < i64::try_from(written_out).unwrap(),
            "{size} bytes for {written_out} bytes of text"
        );
    }

    /// Three requests, oldest first: 30 passing checks; 30 checks of which one fails (the
    /// second image under the fifth policy); 30 passing checks in namespace team-b.
    fn requests_fixture() -> (tempfile::TempDir, AuditStore, Vec<Vec<AuditRecord>>) {
        let (dir, mut store) = temp_store(Retention::default());
        let first = request(100, 3, 10);
        let mut second = request(200, 3, 10);
        second[13].result = "fail".into();
        second[13].reason = "no signature by key 'prod'".into();
        second[13].signer = None;
        for r in &mut second {
            r.allowed = false;
        }
        let mut third = request(300, 3, 10);
        for r in &mut third {
            r.namespace = "team-b".into();
        }
        for r in [&first, &second, &third] {
            store.insert(r).unwrap();
        }
        assert_eq!(rows(&store), 3);
        (dir, store, vec![first, second, third])
    }

    #[test]
    fn the_result_filter_finds_the_one_failed_check_of_thirty() {
        let (_dir, store, requests) = requests_fixture();
        let result = |r: &str| AuditFilter {
            result: Some(r.into()),
            ..AuditFilter::default()
        };
        assert_eq!(
            store.query(&result("fail")).unwrap(),
            vec![requests[1][13].clone()]
        );
        let passed = store.query(&result("pass")).unwrap();
        assert_eq!(passed.len(), 89);
        assert_eq!(passed[..30], requests[2][..], "newest request first");
        assert!(!passed.contains(&requests[1][13]));
        assert!(store.query(&result("error")).unwrap().is_empty());
        let in_team_a = AuditFilter {
            namespace: Some("team-a".into()),
            ..result("pass")
        };
        assert_eq!(store.query(&in_team_a).unwrap().len(), 59);
    }

    #[test]
    fn an_image_pattern_selects_single_images_inside_a_request() {
        let (_dir, store, requests) = requests_fixture();
        let image = |p: &str| AuditFilter {
            image: Some(p.into()),
            ..AuditFilter::default()
        };
        let one_image = |request: &[AuditRecord], i: usize| -> Vec<AuditRecord> {
            request.iter().skip(i).step_by(3).cloned().collect()
        };
        // A literal prefix (prefiltered in SQL), then the wildcard on each check.
        let found = store
            .query(&image("registry.company.com/team-a/app-1:*"))
            .unwrap();
        let expected: Vec<AuditRecord> = requests
            .iter()
            .rev()
            .flat_map(|r| one_image(r, 1))
            .collect();
        assert_eq!(found.len(), 30);
        assert_eq!(found, expected);
        // No literal prefix: every row is expanded and matched.
        assert_eq!(store.query(&image("*/app-2:v?")).unwrap().len(), 30);
        // Exact, one request only.
        let exact = AuditFilter {
            namespace: Some("team-b".into()),
            ..image("registry.company.com/team-a/app-0:v1")
        };
        assert_eq!(store.query(&exact).unwrap(), one_image(&requests[2], 0));
        // A prefix no image has.
        assert!(
            store
                .query(&image("registry.company.com/team-b/*"))
                .unwrap()
                .is_empty()
        );
        // The result and the image must hold for the same check.
        let both = AuditFilter {
            result: Some("fail".into()),
            ..image("*app-0*")
        };
        assert!(store.query(&both).unwrap().is_empty());
    }

    #[test]
    fn the_limit_counts_records_not_requests() {
        let (_dir, store, requests) = requests_fixture();
        let limit = |n: usize| AuditFilter {
            limit: n,
            ..AuditFilter::default()
        };
        assert_eq!(store.query(&limit(10)).unwrap(), requests[2][..10]);
        let found = store.query(&limit(45)).unwrap();
        assert_eq!(found.len(), 45);
        assert_eq!(found[..30], requests[2][..]);
        assert_eq!(
            found[30..],
            requests[1][..15],
            "the next request, cut at the limit"
        );
        assert_eq!(store.query(&limit(1000)).unwrap().len(), 90);
        // With filters the limit counts what matched.
        let filtered = AuditFilter {
            image: Some("*app-2:v1".into()),
            limit: 12,
            ..AuditFilter::default()
        };
        let found = store.query(&filtered).unwrap();
        assert_eq!(found.len(), 12);
        assert!(
            found[10..].iter().all(|r| r.time_unix_ms == 200),
            "{found:?}"
        );
    }

    #[test]
    fn retention_by_rows_keeps_whole_requests() {
        let (_dir, mut store) = temp_store(Retention {
            max_age: Duration::from_secs(365 * 86_400),
            max_rows: 2,
        });
        for time in [100, 200, 300] {
            store.insert(&request(time, 3, 10)).unwrap();
        }
        assert_eq!(store.prune(400).unwrap(), 1, "one request deleted");
        let kept = all(&store);
        assert_eq!(kept.len(), 60);
        assert_eq!(kept[0].time_unix_ms, 300);
        assert_eq!(kept[59].time_unix_ms, 200);
        assert_eq!(store.prune(400).unwrap(), 0);
    }

    #[test]
    fn retention_by_age_deletes_whole_requests() {
        let (_dir, mut store) = temp_store(Retention {
            max_age: Duration::from_millis(150),
            max_rows: 1_000_000,
        });
        for time in [100, 200, 300] {
            store.insert(&request(time, 3, 10)).unwrap();
        }
        assert_eq!(store.prune(320).unwrap(), 1);
        assert_eq!(times(&all(&store)), [vec![300; 30], vec![200; 30]].concat());
    }

    /// The schema of version 1, as sealgate created it.
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
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version (version) VALUES (1);
    ";

    /// A version 1 database holding `records`, one row each in the given order, written as
    /// sealgate 1 wrote them.
    fn v1_database(path: &Path, records: &[AuditRecord]) {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .unwrap();
        let _: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(SCHEMA_V1).unwrap();
        {
            let mut insert = tx
                .prepare(&format!(
                    "INSERT INTO audit ({V1_COLUMNS}) VALUES \
                     (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
                ))
                .unwrap();
            for r in records {
                insert
                    .execute(params![
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
                        r.duration_ms,
                    ])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        conn.close().unwrap();
    }

    /// Requests as a version 1 writer stored them: in batches, oldest first; two requests in the
    /// same millisecond; a dry run; single-record requests (an uncovered image).
    fn v1_requests() -> Vec<Vec<AuditRecord>> {
        let mut same_ms = request(2_000, 2, 3);
        for r in &mut same_ms {
            r.uid = "other".into();
        }
        let mut dry_run = request(3_000, 3, 2);
        for r in &mut dry_run {
            r.dry_run = true;
        }
        let mut lone = record(4_000);
        lone.uid = "lone".into();
        let mut requests = vec![
            request(1_000, 3, 10),
            request(2_000, 3, 10),
            same_ms,
            dry_run,
            vec![lone],
            vec![record(5_000)],
        ];
        // Version 1 kept no cause.
        for r in requests.iter_mut().flatten() {
            r.cause = None;
        }
        requests
    }

    #[test]
    fn a_version_1_database_is_read_as_it_is_by_read_only_stores() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let requests = v1_requests();
        v1_database(&path, &requests.concat());
        let reader = AuditStore::open_read_only(&path).unwrap();
        let found = all(&reader);
        assert_eq!(found.len(), requests.concat().len());
        // Version 1 order: newest first, and the last written first.
        let mut expected = requests.concat();
        expected.reverse();
        assert_eq!(found, expected);
        let failed = reader
            .query(&AuditFilter {
                result: Some("fail".into()),
                image: Some("registry.company.com/*".into()),
                ..AuditFilter::default()
            })
            .unwrap();
        assert_eq!(times(&failed), vec![5_000, 4_000]);
        // Reading does not migrate.
        let version: i64 = reader
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
    }

    #[test]
    fn a_version_1_database_is_migrated_one_row_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        let requests = v1_requests();
        let records = requests.concat();
        v1_database(&path, &records);
        let size_v1 = std::fs::metadata(&path).unwrap().len();

        let mut store = AuditStore::open(&path, Retention::default()).unwrap();
        assert_eq!(rows(&store), 6, "one row per request");
        let version: i64 = store
            .conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let tables: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('audit', 'audit_time')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "table audit is gone");
        let free: i64 = store
            .conn
            .query_row("PRAGMA freelist_count", [], |r| r.get(0))
            .unwrap();
        assert_eq!(free, 0, "its pages were given back");
        assert!(std::fs::metadata(&path).unwrap().len() < size_v1);
        // Newest request first, each request's records in the order they were written.
        let expected: Vec<AuditRecord> = requests.iter().rev().flatten().cloned().collect();
        assert_eq!(all(&store), expected);

        // New requests go after the migrated ones; opening again changes nothing.
        store.insert(&request(6_000, 1, 1)).unwrap();
        store.close().unwrap();
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        assert_eq!(rows(&store), 7);
        assert_eq!(all(&store)[1..], expected[..]);
        let reader = AuditStore::open_read_only(&path).unwrap();
        assert_eq!(all(&reader).len(), records.len() + 1);
    }

    #[test]
    fn a_migration_that_fails_leaves_the_file_as_it_was_and_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        v1_database(&path, &request(1_000, 3, 10));
        // A table in the way of the new schema (someone's experiment).
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE decisions (x INTEGER)")
            .unwrap();
        drop(conn);
        let err = AuditStore::open(&path, Retention::default()).unwrap_err();
        assert!(
            matches!(err, AuditError::Migrate { from: 1, to: 2, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("the file is unchanged"), "{message}");
        assert!(message.contains("move the file aside"), "{message}");
        let reader = AuditStore::open_read_only(&path).unwrap();
        assert_eq!(all(&reader).len(), 30, "still version 1, still readable");
    }
}
