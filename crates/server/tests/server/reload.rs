//! Policies reloaded from the directory while serving: a new file is picked up, an invalid one is
//! reported and the last good version stays, a deleted file's policies go, and the server stays
//! ready throughout.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::StatusCode;
use ring::rand::SystemRandom;
use sealgate_core::crypto::key::SigningKey;
use sealgate_registry::{Client, RegistryOptions};
use sealgate_server::config::VerifyConfig;
use sealgate_server::fetcher::CachingFetcher;
use sealgate_server::log::{LogFormat, Logger};
use sealgate_server::metrics::{Metrics, POLICY_RELOAD_ERRORS};
use sealgate_server::policies::PolicyStore;
use sealgate_server::{AppState, StateParts, app};

use crate::common::*;

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(5), "{what} within 5s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(state: &AppState) -> Vec<String> {
    state
        .policies()
        .policies
        .iter()
        .map(|p| p.name.clone())
        .collect()
}

#[tokio::test]
async fn policy_files_are_reloaded_and_an_invalid_one_keeps_the_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        policy("first", &key, "registry.company.com/*", "Enforce", ""),
    )
    .unwrap();
    let metrics = Metrics::new();
    let log = Logger::new(LogFormat::Json);
    let (store, policies) = PolicyStore::open(dir.path(), log, metrics.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(store.watch(Duration::from_millis(100), async {
        let _ = stopped.await;
    }));
    let state = AppState::new(StateParts {
        policies,
        fetcher: CachingFetcher::new(
            Client::new(RegistryOptions::default()).unwrap(),
            VerifyConfig::default(),
            metrics.clone(),
        ),
        metrics: metrics.clone(),
        log,
        audit: None,
        audit_db: None,
        audit_token: None,
    });
    let app = app(state.clone());
    assert_eq!(names(&state), ["first"]);
    let generation = state.policies().generation;

    // A new file.
    std::fs::write(
        dir.path().join("b.yaml"),
        policy("second", &key, "registry.company.com/team-b/*", "Audit", ""),
    )
    .unwrap();
    until("the new policy", || names(&state) == ["first", "second"]).await;
    assert!(state.policies().generation > generation);

    // b.yaml broken: reported, counted, its last good version stays.
    std::fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: second}\nspec:\n  rules: [",
    )
    .unwrap();
    until("the reload error", || {
        metrics.counter(POLICY_RELOAD_ERRORS, &[]) >= 1.0
    })
    .await;
    assert_eq!(names(&state), ["first", "second"]);
    // A new file that is invalid from the start adds nothing.
    std::fs::write(dir.path().join("c.yaml"), "kind: ClusterPolicy\napiVersion: kyverno.io/v1\nmetadata: {name: third}\nspec: {rules: [{name: r, match: {any: [{resources: {kinds: [Pod]}}]}, verifyImages: [{imageReferences: 5}]}]}\n").unwrap();
    until("the second reload error", || {
        metrics.counter(POLICY_RELOAD_ERRORS, &[]) >= 2.0
    })
    .await;
    assert_eq!(names(&state), ["first", "second"]);
    let (status, _) = call(&app, "GET", "/readyz", Body::empty()).await;
    assert_eq!(status, StatusCode::OK, "still ready");

    // Fixed again, then deleted.
    std::fs::write(
        dir.path().join("b.yaml"),
        policy(
            "second-fixed",
            &key,
            "registry.company.com/team-b/*",
            "Audit",
            "",
        ),
    )
    .unwrap();
    until("the fixed policy", || {
        names(&state) == ["first", "second-fixed"]
    })
    .await;
    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    until("the deletion", || names(&state) == ["first"]).await;

    let (_, body) = call(&app, "GET", "/metrics", Body::empty()).await;
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("\nsealgate_policy_reload_errors_total 2\n"),
        "{text}"
    );
    assert!(text.contains("\nsealgate_policies 1\n"), "{text}");

    // Left with only the invalid c.yaml, nothing is in force: not ready (503), so the API
    // server applies the webhook's failurePolicy instead of sealgate admitting everything.
    std::fs::remove_file(dir.path().join("a.yaml")).unwrap();
    until("the last valid policy gone", || names(&state).is_empty()).await;
    assert_eq!(state.policies().failed_files, 1);
    let (status, _) = call(&app, "GET", "/readyz", Body::empty()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // c.yaml fixed: ready again.
    std::fs::write(
        dir.path().join("c.yaml"),
        policy("third", &key, "registry.company.com/*", "Enforce", ""),
    )
    .unwrap();
    until("the fixed third policy", || names(&state) == ["third"]).await;
    let (status, _) = call(&app, "GET", "/readyz", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let _ = stop.send(());
    watcher.await.unwrap();
}

#[tokio::test]
async fn a_missing_policy_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = PolicyStore::open(&missing, Logger::default(), Metrics::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} does not exist", missing.display())
    );
}
