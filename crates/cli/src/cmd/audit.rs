//! `sealgate audit`: read the webhook's audit trail (the SQLite database the server writes in its
//! data directory), with the same filters as `GET /audit`.

use std::path::PathBuf;

use clap::ValueEnum;
use sealgate_core::timestamp::format_rfc3339;
use sealgate_server::audit::{
    AUDIT_DB_FILE, AuditError, AuditFilter, AuditRecord, AuditStore, DEFAULT_DATA_DIR,
    MAX_QUERY_LIMIT, RESULTS, now_unix_ms, parse_since,
};

use super::Outcome;
use crate::render::table;
use crate::render::{out, outln};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One line per record (image and rule), newest request first.
    Table,
    /// A JSON array of records, as `GET /audit` serves them.
    Json,
}

/// Arguments of `audit`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads DIR/audit.db read-only, so it works while the server runs. One row per \
image and rule of each admission request, newest request first, a request's records in the \
order they were recorded; RESULT says ', denied' when the whole request was denied. --limit \
counts these records. Dry-run requests are left out unless --include-dry-run. Exit 0 when the query ran (even \
with no rows), 2 on errors (no database, unreadable file, bad flags).\n\nExamples:\n  sealgate audit --data-dir /var/lib/sealgate --since 1h --result fail\n  sealgate audit --image 'registry.company.com/*' --limit 50 -o json"
)]
pub(crate) struct Args {
    /// The server's data directory (`sealgate serve --data-dir`).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,

    /// Only decisions since: a duration ago (45s, 30m, 1h, 2d, 1w) or an RFC 3339 time.
    #[arg(long, value_name = "WHEN", value_parser = since_now)]
    since: Option<i64>,

    /// Only images matching this Kyverno wildcard pattern (`*` also matches `/`), e.g.
    /// 'registry.company.com/*'.
    #[arg(long, value_name = "PATTERN")]
    image: Option<String>,

    /// Only this namespace ('' for cluster-scoped resources).
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,

    /// Only this result (none: no verifyImages rule covered the image).
    #[arg(long, value_parser = RESULTS)]
    result: Option<String>,

    /// Include decisions on dry-run requests.
    #[arg(long)]
    include_dry_run: bool,

    /// At most this many records, newest first.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_QUERY_LIMIT as u64))]
    limit: u64,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,
}

/// `--since`, relative to now.
fn since_now(s: &str) -> Result<i64, AuditError> {
    parse_since(s, now_unix_ms())
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let filter = AuditFilter {
        since_unix_ms: args.since,
        image: args.image.clone(),
        namespace: args.namespace.clone(),
        result: args.result.clone(),
        include_dry_run: args.include_dry_run,
        limit: usize::try_from(args.limit).unwrap_or(MAX_QUERY_LIMIT),
    };
    let limit = filter.limit;
    let path = args.data_dir.join(AUDIT_DB_FILE);
    // Errors name the file; an absolute path says where it was looked for.
    let path = std::path::absolute(&path).unwrap_or(path);
    let store = AuditStore::open_read_only(&path)?;
    // One more than asked says whether there are more; only then are they counted.
    let mut records = store.query(&AuditFilter {
        limit: (limit + 1).min(MAX_QUERY_LIMIT),
        ..filter.clone()
    })?;
    if records.len() > limit {
        records.truncate(limit);
        let all = store
            .query(&AuditFilter {
                limit: MAX_QUERY_LIMIT,
                ..filter
            })?
            .len();
        let of = if all >= MAX_QUERY_LIMIT {
            format!("at least {}", thousands(MAX_QUERY_LIMIT))
        } else {
            thousands(all)
        };
        eprintln!(
            "showing {} of {of} records (use --limit, or --since, --image, --namespace or --result to narrow them)",
            thousands(limit)
        );
    }
    match args.output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&records)?)?,
        Output::Table => {
            let rows: Vec<Vec<String>> = records.iter().map(row).collect();
            out!(
                "{}",
                table(
                    &[
                        "TIME",
                        "OPERATION",
                        "NAMESPACE",
                        "KIND/NAME",
                        "IMAGE",
                        "DIGEST",
                        "POLICY/RULE",
                        "RESULT",
                        "SIGNER",
                        "REASON",
                    ],
                    &rows,
                )
            )?;
            if records.is_empty() {
                eprintln!("no audit records match");
            }
        }
    }
    Ok(Outcome::Success)
}

/// `n` with a comma between groups of three digits: 1,000.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One table row.
fn row(r: &AuditRecord) -> Vec<String> {
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    let operation = if r.dry_run {
        format!("{} (dry run)", r.operation)
    } else {
        r.operation.clone()
    };
    let policy_rule = if r.policy.is_empty() && r.rule.is_empty() {
        "-".to_string()
    } else {
        format!("{}/{}", r.policy, r.rule)
    };
    let result = if r.allowed {
        r.result.clone()
    } else {
        format!("{}, denied", r.result)
    };
    vec![
        format_rfc3339(r.time_unix_ms.div_euclid(1000)),
        operation,
        or_dash(&r.namespace),
        format!("{}/{}", r.kind, r.name),
        or_dash(&r.image),
        r.digest
            .as_deref()
            .map_or_else(|| "-".to_string(), short_digest),
        policy_rule,
        result,
        r.signer
            .as_deref()
            .map_or_else(|| "-".to_string(), str::to_string),
        // Keep each record on one line.
        or_dash(&r.reason.split_whitespace().collect::<Vec<_>>().join(" ")),
    ]
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows IDs.
fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) => {
            format!("{algorithm}:{}", hex.get(..12).unwrap_or(hex))
        }
        None => digest.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_shortened_like_docker_ids() {
        let long = format!("sha256:{}", "0123456789abcdef".repeat(4));
        assert_eq!(short_digest(&long), "sha256:0123456789ab");
        assert_eq!(short_digest("sha256:abc"), "sha256:abc");
        assert_eq!(short_digest("odd"), "odd");
    }

    #[test]
    fn rows_mark_dry_runs_denials_and_empty_fields() {
        let r = AuditRecord {
            time_unix_ms: 1_700_000_000_999,
            uid: String::new(),
            dry_run: true,
            operation: "CREATE".into(),
            namespace: String::new(),
            kind: "Pod".into(),
            name: "web".into(),
            image: "registry.company.com/app:v1".into(),
            digest: None,
            policy: String::new(),
            rule: String::new(),
            result: "none".into(),
            allowed: false,
            reason: "not covered\nby any rule".into(),
            signer: None,
            cause: None,
            duration_ms: 1.0,
        };
        assert_eq!(
            row(&r),
            vec![
                "2023-11-14T22:13:20Z",
                "CREATE (dry run)",
                "-",
                "Pod/web",
                "registry.company.com/app:v1",
                "-",
                "-",
                "none, denied",
                "-",
                "not covered by any rule",
            ]
        );
    }
}
