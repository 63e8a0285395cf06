//! The audit trail: every admission decision, stored in an embedded SQLite database in the data
//! directory (`--data-dir`, file [`AUDIT_DB_FILE`]).
//!
//! - [`AuditRecord`] is one check: what was decided about one image of one request under one
//!   rule (or that no rule covered it), with the request's overall decision and its duration.
//!   The webhook records one per image per rule, all of a request's records in one call.
//! - [`AuditStore`] owns a SQLite connection: the schema (WAL mode, one row per admission
//!   request with its records in one compact column, indexes on time and on namespace, a schema
//!   version table, migration from the one-row-per-record version 1), batched inserts, filtered
//!   queries that expand each request back into its records, and retention by request.
//! - [`AuditWriter`] keeps SQLite off the request path. Handlers queue a request's records
//!   without waiting; they are encoded into the request's row on the handler's thread, and one
//!   dedicated thread owns the writable store, writes batches of rows in transactions and prunes
//!   old ones. When the queue is full, records are dropped and counted, never waited for.
//!   [`AuditFlusher::shutdown`] writes what is queued and closes the database.
//! - [`query_async`], [`filter_from_query`] and [`parse_since`] serve `GET /audit` and
//!   `sealgate audit`, which read the database through their own read-only connections (WAL lets
//!   them read while the writer writes). Both answer with records, one per check.
//! - [`AuditToken`] is the bearer token `GET /audit` requires when `--audit-token-file` is given.

mod decision;
mod filter;
mod store;
mod token;
mod writer;

use std::path::PathBuf;

pub(crate) use decision::{Check, DecisionBuilder, RequestFields};
pub use filter::{AuditFilter, MAX_QUERY_LIMIT, RESULTS, filter_from_query, parse_since};
pub use store::{AuditStore, Retention, SCHEMA_VERSION};
pub use token::{AuditToken, MIN_TOKEN_LEN};
pub use writer::{AuditFlusher, AuditWriter, Commit, CommitError};

/// The audit database's file name inside the data directory.
pub const AUDIT_DB_FILE: &str = "audit.db";

/// The server's data directory when `--data-dir` is not given (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "sealgate-data";

/// One audited check: one image of one admission request, under one rule.
///
/// A request with several images or rules gives several records sharing `time_unix_ms`, `uid`,
/// `allowed`, `duration_ms` and the other request-level fields; the store keeps them as one row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// When the decision was made, in milliseconds since the Unix epoch.
    pub time_unix_ms: i64,
    /// The AdmissionReview request uid ("" for background or CLI decisions).
    pub uid: String,
    /// `request.dryRun`: decided, but not a real admission.
    pub dry_run: bool,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// The resource's namespace, "" for cluster-scoped resources.
    pub namespace: String,
    /// The resource kind: Pod, Deployment, ...
    pub kind: String,
    /// The resource name.
    pub name: String,
    /// The normalised image, e.g. `registry.company.com/app:v1`.
    pub image: String,
    /// The image digest (`sha256:...`) when known.
    pub digest: Option<String>,
    /// The policy that decided, "" when none applied (an image no rule covers).
    pub policy: String,
    /// The rule that decided, "" when none applied.
    pub rule: String,
    /// pass, fail, skip, error or none (no rule covers the image).
    pub result: String,
    /// The admission decision for the whole request.
    pub allowed: bool,
    /// Why: the rule's message, the verification failure, or what could not be evaluated.
    pub reason: String,
    /// Who signed: `key sha256:...` or `certificate CN=...`.
    pub signer: Option<String>,
    /// The kind of `reason`, for matching without reading words: `verified`,
    /// `signature_mismatch`, `no_signatures`, `fetch_budget`, `fetch_unauthorized`, ...
    /// (`null` where the engine gave none: an image no rule covers, a request refused before
    /// evaluation, a record written before kinds were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Time taken to decide the whole request, in milliseconds.
    pub duration_ms: f64,
}

/// Why the audit trail could not be opened, written or read, or a query was not understood.
///
/// Every variant about the database names its file. Causes from SQLite and the OS are summarised
/// into `detail`, so a `{:#}` print shows each fact once.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The directory that should hold the database could not be created.
    #[error(
        "could not create the data directory {}: {detail}; create it or pass another --data-dir",
        dir.display()
    )]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// What the OS said.
        detail: String,
    },

    /// There is no database to read.
    #[error(
        "no audit database at {}: the server writes it (`sealgate serve --data-dir DIR` writes \
DIR/{AUDIT_DB_FILE}); pass the --data-dir the server uses",
        path.display()
    )]
    Missing {
        /// Where it was looked for.
        path: PathBuf,
    },

    /// SQLite could not open or set up the file.
    #[error(
        "could not open the audit database {}: {detail}; check the path and its permissions",
        path.display()
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },

    /// The file is not SQLite, is corrupt, or is a SQLite database sealgate did not create.
    #[error(
        "{} is not a sealgate audit database ({detail}); move it aside and `sealgate serve` \
creates a new one",
        path.display()
    )]
    NotAuditDatabase {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// The database was written by a newer sealgate.
    #[error(
        "the audit database {} has schema version {found}, but this sealgate understands only \
version {supported}; use a newer sealgate to read it",
        path.display()
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The version this build reads and writes.
        supported: i64,
    },

    /// A database of an older schema version could not be migrated; it was left unchanged.
    #[error(
        "could not migrate the audit database {} from schema version {from} to {to}: {detail}; \
the file is unchanged: free disk space (the migration needs about as much again as the file) \
and start `sealgate serve` again, or move the file aside (with its -wal and -shm files) and \
`sealgate serve` creates a new one",
        path.display()
    )]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// Its schema version.
        from: i64,
        /// The version this build writes.
        to: i64,
        /// What SQLite said.
        detail: String,
    },

    /// Inserting or pruning failed.
    #[error(
        "could not write to the audit database {}: {detail}; check free disk space and permissions",
        path.display()
    )]
    Write {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },

    /// The `--audit-token-file` cannot be read or holds no usable token.
    #[error(
        "cannot use the audit token file {}: {detail}; write one random token to it, e.g. \
`openssl rand -hex 32 > FILE`",
        path.display()
    )]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A query failed.
    #[error("could not read the audit database {}: {detail}", path.display())]
    Read {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },

    /// `since` is neither a duration nor an RFC 3339 time.
    #[error(
        "invalid since '{value}': give a duration such as 45s, 30m, 1h or 2d, or an RFC 3339 time \
such as 2025-01-31T12:00:00Z"
    )]
    InvalidSince {
        /// The value given.
        value: String,
    },

    /// `result` is not one of the known results.
    #[error("invalid result '{value}': use pass, fail, skip, error or none")]
    InvalidResult {
        /// The value given.
        value: String,
    },

    /// `limit` is not a number in range.
    #[error("invalid limit '{value}': use a whole number from 1 to {MAX_QUERY_LIMIT}")]
    InvalidLimit {
        /// The value given.
        value: String,
    },

    /// `dryRun` is not a boolean.
    #[error("invalid dryRun '{value}': use true or false")]
    InvalidDryRun {
        /// The value given.
        value: String,
    },

    /// A query parameter `GET /audit` does not know (most likely a typo).
    #[error(
        "unknown audit query parameter '{name}': use since, image, namespace, result, limit or dryRun"
    )]
    UnknownParameter {
        /// The parameter's name.
        name: String,
    },

    /// The writer thread could not be started.
    #[error("could not start the audit writer thread: {detail}; no decisions are being audited")]
    WriterThread {
        /// What the OS said.
        detail: String,
    },

    /// The writer thread was gone when asked to flush, so queued records were lost.
    #[error(
        "the audit writer stopped before the queued records were written; see the earlier audit \
warnings for why"
    )]
    WriterStopped,

    /// The blocking task running a query did not finish.
    #[error("the audit query did not finish: {detail}")]
    QueryTask {
        /// What tokio said (a panic or a cancelled task).
        detail: String,
    },
}

/// Reads the store for `GET /audit` and `sealgate audit`: opens `path` read-only and runs the
/// query on tokio's blocking pool, so the async side never waits on disk.
pub async fn query_async(
    path: PathBuf,
    filter: AuditFilter,
) -> Result<Vec<AuditRecord>, AuditError> {
    tokio::task::spawn_blocking(move || AuditStore::open_read_only(&path)?.query(&filter))
        .await
        .map_err(|e| AuditError::QueryTask {
            detail: e.to_string(),
        })?
}

/// The current time in milliseconds since the Unix epoch, for `since` and record times.
pub fn now_unix_ms() -> i64 {
    use sealgate_core::timestamp::Clock as _;
    sealgate_registry::driver::SystemClock.unix_ms()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Records for the tests of the submodules.

    use super::AuditRecord;

    /// A failing Pod record at `time_unix_ms`, every optional field set.
    pub(crate) fn record(time_unix_ms: i64) -> AuditRecord {
        AuditRecord {
            time_unix_ms,
            uid: format!("uid-{time_unix_ms}"),
            dry_run: false,
            operation: "CREATE".into(),
            namespace: "team-a".into(),
            kind: "Pod".into(),
            name: "web".into(),
            image: "registry.company.com/team-a/app:v1".into(),
            digest: Some(format!("sha256:{}", "ab".repeat(32))),
            policy: "require-signed".into(),
            rule: "check-signature".into(),
            result: "fail".into(),
            allowed: false,
            reason: "no signature by key 'prod'".into(),
            signer: Some("key sha256:0123".into()),
            duration_ms: 12.5,
            cause: Some("signature_mismatch".into()),
        }
    }

    /// The records of one admitted request at `time_unix_ms` (uid `req-<time>`), as the webhook
    /// records them: `policies` policies, each checking `images` images
    /// (`registry.company.com/team-a/app-<i>:v1`), rule by rule; every check passes with a
    /// digest, a reason and a signer.
    pub(crate) fn request(time_unix_ms: i64, images: usize, policies: usize) -> Vec<AuditRecord> {
        let mut out = Vec::new();
        for p in 0..policies {
            for i in 0..images {
                let image = format!("registry.company.com/team-a/app-{i}:v1");
                let digest = format!("sha256:{}", format!("{i:02x}").repeat(32));
                out.push(AuditRecord {
                    time_unix_ms,
                    uid: format!("req-{time_unix_ms}"),
                    dry_run: false,
                    operation: "CREATE".into(),
                    namespace: "team-a".into(),
                    kind: "Pod".into(),
                    name: "web".into(),
                    reason: format!("verified image signatures for {image} ({digest})"),
                    image,
                    digest: Some(digest),
                    policy: format!("require-signed-{p:02}"),
                    rule: "check-signature".into(),
                    result: "pass".into(),
                    allowed: true,
                    signer: Some(format!("key sha256:{}", format!("{p:02x}").repeat(32))),
                    duration_ms: 0.75,
                    cause: Some("verified".into()),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::test_support::record;
    use super::*;

    #[test]
    fn records_serialise_in_camel_case_and_back() {
        let r = record(1_700_000_000_000);
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "timeUnixMs",
            "uid",
            "dryRun",
            "operation",
            "namespace",
            "kind",
            "name",
            "image",
            "digest",
            "policy",
            "rule",
            "result",
            "allowed",
            "reason",
            "signer",
            "durationMs",
            "cause",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert_eq!(json.as_object().unwrap().len(), 17);
        let back: AuditRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[tokio::test]
    async fn query_async_reads_the_file_and_says_when_it_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AUDIT_DB_FILE);
        let err = query_async(path.clone(), AuditFilter::default())
            .await
            .unwrap_err();
        assert!(matches!(err, AuditError::Missing { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("sealgate serve --data-dir"), "{message}");

        let mut store = AuditStore::open(&path, Retention::default()).unwrap();
        store.insert(&[record(1), record(2)]).unwrap();
        let found = query_async(path, AuditFilter::default()).await.unwrap();
        assert_eq!(found, vec![record(2), record(1)]);
    }

    #[test]
    fn the_clock_is_after_2020() {
        assert!(now_unix_ms() > 1_577_836_800_000);
    }
}
