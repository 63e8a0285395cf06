//! The audit trail under load when the process is stopped: SIGTERM (drain, flush: one row per
//! answered request, none missing, none twice) and SIGKILL (the database stays readable, and
//! what is missing was answered within the last flush window; with `--audit-sync`, nothing).
//!
//! The load is AdmissionReviews of Pods whose image no rule covers: one audit row each, no
//! registry, so the writer, not verification, is what is measured.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::Workdir;
use crate::serve::{SERVE, Serving, review, spawn_serve, wait_ready};

/// A policy that covers nothing the load sends: every review is admitted, one row each.
fn policy(pem: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: require-signed\nspec:\n  rules:\n  - name: check\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.invalid/*\"]\n      failureAction: Enforce\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n              {}\n",
        pem.trim().replace('\n', "\n              ")
    )
}

/// How the server is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Kill,
}

/// Requests answered (uid → when the answer arrived), and when the signal was sent.
struct Run {
    answered: HashMap<String, Instant>,
    signalled: Instant,
    exit: std::process::ExitStatus,
}

/// Starts `sealgate serve` (with `extra` flags) in `w`, sends reviews from 4 concurrent clients
/// for about a second, stops it with `stop` while they keep sending, and returns what was
/// answered.
fn load_then_stop(w: &Workdir, extra: &[&str], stop: Stop) -> Run {
    let mut args: Vec<&str> = SERVE.to_vec();
    args.extend(extra);
    let (mut serving, lines_rx) = spawn_serve(w, &args);
    let (port, ca) = wait_ready(w, &lines_rx);
    let answered: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pid = serving.0.id();
    let signalled = rt.block_on(async {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("https://localhost:{port}/mutate");
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut clients = Vec::new();
        for client in 0..4 {
            let (http, url, answered, stopping) = (
                http.clone(),
                url.clone(),
                Arc::clone(&answered),
                Arc::clone(&stopping),
            );
            clients.push(tokio::spawn(async move {
                for n in 0.. {
                    let uid = format!("c{client}-{n}");
                    let body = review(&uid, "docker.io/library/nginx:1").to_string();
                    let sent = http.post(&url).body(body).send().await;
                    // Refused or cut off: the server is going (or gone); not answered.
                    let Ok(response) = sent else { break };
                    let Ok(bytes) = response.bytes().await else {
                        break;
                    };
                    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                        // A plain-text 503 while draining is an answer, but not a review's.
                        if stopping.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        panic!(
                            "not an AdmissionReview: {}",
                            String::from_utf8_lossy(&bytes)
                        );
                    };
                    assert_eq!(v["response"]["uid"], uid.as_str(), "{v}");
                    assert_eq!(v["response"]["allowed"], true, "{v}");
                    answered.lock().unwrap().insert(uid, Instant::now());
                }
            }));
        }
        // Let the load run, then signal while it still runs.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let signal = match stop {
            Stop::Term => "-TERM",
            Stop::Kill => "-KILL",
        };
        stopping.store(true, std::sync::atomic::Ordering::Relaxed);
        let signalled = Instant::now();
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        for c in clients {
            c.await.unwrap();
        }
        signalled
    });
    drop(rt);
    let exit = wait_exit(&mut serving, w);
    let answered = std::mem::take(&mut *answered.lock().unwrap());
    assert!(
        answered.len() > 20,
        "too little load to say anything: {} answered",
        answered.len()
    );
    Run {
        answered,
        signalled,
        exit,
    }
}

fn wait_exit(serving: &mut Serving, w: &Workdir) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(exit) = serving.0.try_wait().unwrap() {
            return exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no exit after the signal: {}",
            std::fs::read_to_string(w.path("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The uids in the audit trail, with how many rows each has, read by `sealgate audit`.
fn audited(w: &Workdir) -> HashMap<String, usize> {
    let out = w.run(
        "",
        &[
            "audit",
            "--data-dir",
            "data",
            "-o",
            "json",
            "--limit",
            "100000",
        ],
    );
    out.success();
    let records: Vec<Value> = serde_json::from_str(&out.stdout()).unwrap();
    let mut uids = HashMap::new();
    for r in records {
        *uids
            .entry(r["uid"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    uids
}

fn workdir() -> Workdir {
    let w = Workdir::new();
    let (_, public) = w.keys("cosign", "pw");
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    std::fs::create_dir(w.path("policies")).unwrap();
    std::fs::write(w.path("policies/require-signed.yaml"), policy(&pem)).unwrap();
    w
}

#[test]
fn sigterm_under_load_leaves_one_audit_row_per_answered_request() {
    let w = workdir();
    let run = load_then_stop(&w, &[], Stop::Term);
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert_eq!(run.exit.code(), Some(0), "{log}");
    let audited = audited(&w);
    let answered: HashSet<&String> = run.answered.keys().collect();
    let missing: Vec<_> = answered
        .iter()
        .filter(|u| !audited.contains_key(**u))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered requests have no audit row, e.g. {:?}",
        missing.len(),
        answered.len(),
        &missing[..missing.len().min(10)]
    );
    let twice: Vec<_> = audited.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "rows written more than once: {twice:?}");
    // Nothing unanswered was recorded as answered... except requests answered while the
    // client was cut off: those are at most the connections in flight (4).
    let extra = audited.keys().filter(|u| !answered.contains(u)).count();
    assert!(
        extra <= 4,
        "{extra} rows for requests no client saw answered"
    );
}

/// What SIGKILL may lose without `--audit-sync`: rows answered within the flush window (200 ms)
/// and the commit in flight, with room for a loaded 2-core machine.
const KILL_WINDOW: Duration = Duration::from_millis(1000);

#[test]
fn sigkill_under_load_leaves_a_readable_trail_missing_at_most_the_last_flush_window() {
    let w = workdir();
    let run = load_then_stop(&w, &[], Stop::Kill);
    assert_eq!(run.exit.code(), None, "killed by a signal");
    // Readable as it was left (WAL not yet checkpointed), then after a restart recovered it.
    let before_restart = audited(&w);
    let (serving, lines_rx) = spawn_serve(&w, &SERVE);
    let _ = wait_ready(&w, &lines_rx);
    drop(serving);
    let after_restart = audited(&w);
    assert_eq!(before_restart, after_restart, "a restart changed the trail");
    let mut early_missing = Vec::new();
    let mut late_missing = 0;
    for (uid, at) in &run.answered {
        if after_restart.contains_key(uid) {
            continue;
        }
        if run.signalled.saturating_duration_since(*at) > KILL_WINDOW {
            early_missing.push(uid);
        } else {
            late_missing += 1;
        }
    }
    assert!(
        early_missing.is_empty(),
        "{} answered more than {KILL_WINDOW:?} before SIGKILL yet not in the trail, e.g. {:?} ({late_missing} later ones missing too)",
        early_missing.len(),
        &early_missing[..early_missing.len().min(10)]
    );
}

#[test]
fn with_audit_sync_sigkill_loses_no_answered_request() {
    let w = workdir();
    let run = load_then_stop(&w, &["--audit-sync"], Stop::Kill);
    assert_eq!(run.exit.code(), None, "killed by a signal");
    let audited = audited(&w);
    let missing: Vec<_> = run
        .answered
        .keys()
        .filter(|u| !audited.contains_key(*u))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "answered requests lost to SIGKILL under --audit-sync (of {}), e.g. {missing:?}",
        run.answered.len()
    );
}
