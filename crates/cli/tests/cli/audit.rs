//! End-to-end tests of `sealgate audit`: a store written through the server library in a
//! temporary data directory, read by the `sealgate` binary as a user would.

use std::path::Path;
use std::process::{Command, Output};

use sealgate_server::audit::{
    AUDIT_DB_FILE, AuditRecord, AuditStore, AuditWriter, Retention, now_unix_ms,
};

fn sealgate(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn record(time_unix_ms: i64, name: &str, result: &str, allowed: bool) -> AuditRecord {
    AuditRecord {
        time_unix_ms,
        uid: format!("uid-{name}"),
        dry_run: false,
        operation: "CREATE".into(),
        namespace: "team-a".into(),
        kind: "Pod".into(),
        name: name.into(),
        image: format!("registry.company.com/team-a/{name}:v1"),
        digest: Some(format!("sha256:{}", "c0ffee".repeat(10) + "abcd")),
        policy: "require-signed".into(),
        rule: "check-signature".into(),
        result: result.into(),
        allowed,
        reason: format!("{name}: {result}"),
        signer: (result == "pass").then(|| "key sha256:1234abcd".to_string()),
        cause: None,
        duration_ms: 3.5,
    }
}

/// A data directory with four decisions: two failures (one two hours old), a pass and a dry run.
fn data_dir() -> (tempfile::TempDir, Vec<AuditRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let now = now_unix_ms();
    let old_fail = record(now - 2 * 3_600_000, "old", "fail", false);
    let pass = record(now - 60_000, "ok", "pass", true);
    let fail = record(now - 30_000, "bad", "fail", false);
    let mut dry_run = record(now - 10_000, "try", "fail", false);
    dry_run.dry_run = true;
    let mut store = AuditStore::open(
        &dir.path().join("data").join(AUDIT_DB_FILE),
        Retention::default(),
    )
    .unwrap();
    store
        .insert(&[
            old_fail.clone(),
            pass.clone(),
            fail.clone(),
            dry_run.clone(),
        ])
        .unwrap();
    (dir, vec![dry_run, fail, pass, old_fail])
}

fn json_rows(output: &Output) -> Vec<AuditRecord> {
    assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap()
}

#[test]
fn result_filter_returns_the_failures_newest_first_as_json() {
    let (dir, records) = data_dir();
    let output = sealgate(
        dir.path(),
        &[
            "audit",
            "--data-dir",
            "data",
            "-o",
            "json",
            "--result",
            "fail",
        ],
    );
    assert_eq!(
        json_rows(&output),
        vec![records[1].clone(), records[3].clone()]
    );
    // The JSON is the camelCase AuditRecord, as GET /audit serves it.
    let raw: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(raw[0]["name"], "bad");
    assert_eq!(raw[0]["timeUnixMs"], records[1].time_unix_ms);
    assert_eq!(raw[0]["dryRun"], false);
}

#[test]
fn since_leaves_out_older_decisions_and_dry_runs_unless_asked() {
    let (dir, records) = data_dir();
    let output = sealgate(
        dir.path(),
        &["audit", "--data-dir", "data", "-o", "json", "--since", "1h"],
    );
    assert_eq!(
        json_rows(&output),
        vec![records[1].clone(), records[2].clone()]
    );

    let output = sealgate(
        dir.path(),
        &[
            "audit",
            "--data-dir",
            "data",
            "-o",
            "json",
            "--since",
            "1h",
            "--include-dry-run",
            "--limit",
            "2",
        ],
    );
    assert_eq!(
        json_rows(&output),
        vec![records[0].clone(), records[1].clone()]
    );
}

#[test]
fn image_and_namespace_filters_and_the_table() {
    let (dir, _) = data_dir();
    let output = sealgate(
        dir.path(),
        &[
            "audit",
            "--data-dir",
            "data",
            "--image",
            "registry.company.com/*/ok:*",
            "--namespace",
            "team-a",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for column in [
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
    ] {
        assert!(lines[0].contains(column), "{column} missing: {}", lines[0]);
    }
    for cell in [
        "CREATE",
        "team-a",
        "Pod/ok",
        "registry.company.com/team-a/ok:v1",
        "sha256:c0ffeec0ffee ",
        "require-signed/check-signature",
        "pass",
        "key sha256:1234abcd",
        "ok: pass",
    ] {
        assert!(lines[1].contains(cell), "{cell} missing: {}", lines[1]);
    }
    assert!(
        lines[1].contains('T') && lines[1].contains("Z "),
        "{}",
        lines[1]
    );

    let output = sealgate(
        dir.path(),
        &["audit", "--data-dir", "data", "--namespace", "team-b"],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 1, "header only");
    assert!(stderr(&output).contains("no audit records match"));
}

#[test]
fn reads_while_the_server_writer_holds_the_database() {
    let (dir, records) = data_dir();
    let path = dir.path().join("data").join(AUDIT_DB_FILE);
    let store = AuditStore::open(&path, Retention::default()).unwrap();
    let (writer, flusher) = AuditWriter::spawn(store);
    let output = sealgate(
        dir.path(),
        &[
            "audit",
            "--data-dir",
            "data",
            "-o",
            "json",
            "--include-dry-run",
        ],
    );
    assert_eq!(json_rows(&output), records);
    drop(writer);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(flusher.shutdown())
        .unwrap();
}

#[test]
fn a_missing_database_says_where_it_looked_and_who_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = sealgate(dir.path(), &["audit", "--data-dir", "nowhere"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    let expected = dir.path().join("nowhere").join(AUDIT_DB_FILE);
    assert!(
        message.contains(&format!("no audit database at {}", expected.display())),
        "{message}"
    );
    assert!(
        message.contains("sealgate serve --data-dir DIR"),
        "{message}"
    );
    assert!(stdout(&output).is_empty());

    // The default data directory is ./sealgate-data.
    let output = sealgate(dir.path(), &["audit"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("sealgate-data/audit.db"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(
        dir.path().join("data").join(AUDIT_DB_FILE),
        "garbage".repeat(1000),
    )
    .unwrap();
    let output = sealgate(dir.path(), &["audit", "--data-dir", "data"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("audit.db is not a sealgate audit database"),
        "{message}"
    );
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        ["audit", "--since", "yesterday"],
        ["audit", "--result", "denied"],
        ["audit", "--limit", "0"],
    ] {
        let output = sealgate(dir.path(), &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
    let output = sealgate(dir.path(), &["audit", "--since", "yesterday"]);
    assert!(stderr(&output).contains("such as 45s, 30m, 1h or 2d"));
}

/// One admission request as the webhook records it: 3 images under 10 policies, 30 records in
/// one call; the second image fails the seventh policy.
fn pod_request(time_unix_ms: i64) -> Vec<AuditRecord> {
    let mut records = Vec::new();
    for p in 1..=10 {
        for image in ["web", "sidecar", "logger"] {
            let failed = p == 7 && image == "sidecar";
            let mut r = record(
                time_unix_ms,
                "web-7d9f8b6c5d-x2k9d",
                if failed { "fail" } else { "pass" },
                false,
            );
            r.image = format!("registry.company.com/team-a/{image}:v1");
            r.policy = format!("require-signed-k{p:02}");
            r.reason = format!("{image} under k{p:02}");
            records.push(r);
        }
    }
    records
}

#[test]
fn a_request_of_thirty_checks_comes_back_as_thirty_records_and_filters_look_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join(AUDIT_DB_FILE);
    let now = now_unix_ms();
    let older = pod_request(now - 20_000);
    let newer = pod_request(now - 10_000);
    // Written as the server writes: through the writer, one call per request.
    let (writer, flusher) =
        AuditWriter::spawn(AuditStore::open(&path, Retention::default()).unwrap());
    writer.record(older.clone());
    writer.record(newer.clone());
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(flusher.shutdown())
        .unwrap();

    let json = |extra: &[&str]| {
        let mut args = vec!["audit", "--data-dir", "data", "-o", "json"];
        args.extend_from_slice(extra);
        json_rows(&sealgate(dir.path(), &args))
    };
    assert_eq!(json(&[]), [newer.clone(), older.clone()].concat());
    assert_eq!(
        json(&["--result", "fail"]),
        vec![newer[19].clone(), older[19].clone()]
    );
    let sidecar = json(&["--image", "*/sidecar:v1"]);
    assert_eq!(sidecar.len(), 20);
    assert!(sidecar.iter().all(|r| r.image.ends_with("/sidecar:v1")));
    assert_eq!(json(&["--limit", "35"]), [&newer[..], &older[..5]].concat());

    let output = sealgate(
        dir.path(),
        &[
            "audit",
            "--data-dir",
            "data",
            "--image",
            "registry.company.com/team-a/logger:*",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 21, "a header and 20 records: {text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains("require-signed-k01/check-signature")
    );
}
