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
    let (store, policies) = PolicyStore::open(dir.path(), metrics.clone()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(store.watch(Duration::from_millis(100), async {
        let _ = stopped.await;
    }));
    let state = AppState::new(StateParts {
        policies,
        namespaces: None,
        fetcher: CachingFetcher::new(
            Client::new(RegistryOptions::default()).unwrap(),
            VerifyConfig::default(),
            metrics.clone(),
        ),
        metrics: metrics.clone(),
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
    let err = PolicyStore::open(&missing, Metrics::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} does not exist", missing.display())
    );
}

/// A policy whose every document is invalid (`imageReferences` is not a list), with `action`
/// as its failure action (none when empty).
fn invalid_policy(action: &str) -> String {
    let action = if action.is_empty() {
        String::new()
    } else {
        format!(", failureAction: {action}")
    };
    format!(
        "kind: ClusterPolicy\napiVersion: kyverno.io/v1\nmetadata: {{name: broken}}\nspec: {{rules: [{{name: r, match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}, verifyImages: [{{imageReferences: 5{action}}}]}}]}}\n"
    )
}

fn app_over(files: &[(&str, String)]) -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let client = Client::new(RegistryOptions::default()).unwrap();
    let (_, app) = state(dir.path(), VerifyConfig::default(), client, None);
    (dir, app)
}

#[tokio::test]
async fn with_every_policy_file_invalid_the_webhook_denies_what_it_cannot_check() {
    for action in ["Enforce", "enforce", ""] {
        let (_dir, app) = app_over(&[("broken.yaml", invalid_policy(action))]);
        for path in ["/mutate", "/validate"] {
            let response = admit(
                &app,
                path,
                &review("pod-create", "registry.company.com/app:v1"),
            )
            .await;
            assert_eq!(response["allowed"], false, "{action:?} {path}: {response}");
            let message = response["status"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("no policy is in force: every policy file is invalid and ")
                    && message.contains("broken.yaml meant to enforce")
                    && message.contains("imageReferences"),
                "{message}"
            );
        }
        // Nothing runs no image: a DELETE is still allowed.
        let mut delete = review("pod-create", "registry.company.com/app:v1");
        delete["request"]["operation"] = serde_json::json!("DELETE");
        assert_eq!(admit(&app, "/mutate", &delete).await["allowed"], true);
    }
}

#[tokio::test]
async fn with_every_policy_file_invalid_and_meant_for_audit_the_webhook_admits_with_a_warning() {
    let (_dir, app) = app_over(&[
        ("a.yaml", invalid_policy("Audit")),
        ("b.yaml", invalid_policy("Audit")),
    ]);
    let response = admit(
        &app,
        "/mutate",
        &review("pod-create", "registry.company.com/app:v1"),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("no policy is in force: every policy file is invalid (all meant Audit"),
        "{warning}"
    );
    // One file meaning to enforce is enough to deny.
    let (_dir, app) = app_over(&[
        ("a.yaml", invalid_policy("Audit")),
        ("b.yaml", invalid_policy("Enforce")),
    ]);
    let response = admit(
        &app,
        "/mutate",
        &review("pod-create", "registry.company.com/app:v1"),
    )
    .await;
    assert_eq!(response["allowed"], false, "{response}");
}

#[tokio::test]
async fn an_empty_policy_directory_admits() {
    let (_dir, app) = app_over(&[]);
    let response = admit(
        &app,
        "/mutate",
        &review("pod-create", "registry.company.com/app:v1"),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        response["warnings"].as_array().is_none_or(Vec::is_empty),
        "{response}"
    );
}

#[test]
fn a_second_policy_of_one_name_is_not_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let other = SigningKey::generate(&SystemRandom::new()).unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        policy("same", &key, "registry.company.com/*", "Enforce", ""),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        policy("same", &other, "other.company.com/*", "Enforce", ""),
    )
    .unwrap();
    let (_store, policies) = PolicyStore::open(dir.path(), Metrics::new()).unwrap();
    let set = policies.borrow().clone();
    assert_eq!(set.policies.len(), 1);
    assert!(
        set.policies[0].source.ends_with("a.yaml"),
        "{}",
        set.policies[0].source
    );
}
