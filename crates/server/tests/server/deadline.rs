//! Budgets: a registry that accepts connections and never answers. What cannot finish is
//! decided within the budget: Enforce denies and says what was slow, Audit admits with a
//! warning, and a second request joins the stuck fetch instead of opening another connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sealgate_core::Digest;
use sealgate_core::crypto::key::SigningKey;
use sealgate_registry::{Client, RegistryOptions};
use sealgate_server::config::VerifyConfig;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::common::*;

/// A TCP server that accepts every connection, reads nothing and never writes. Returns its
/// address and the count of connections accepted.
async fn silent_registry() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

fn app_for(
    host: &str,
    action: &str,
    budget: Duration,
) -> (tempfile::TempDir, sealgate_server::AppState, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    let extra = if action == "Audit" {
        "\n        mutateDigest: false"
    } else {
        ""
    };
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("require-signed", &key, &format!("{host}/*"), action, extra),
    )
    .unwrap();
    let client = Client::new(RegistryOptions {
        insecure_hosts: vec![host.to_string()],
        request_timeout: Duration::from_secs(30),
        max_retries: 0,
        ..RegistryOptions::default()
    })
    .unwrap();
    let verify = VerifyConfig {
        budget,
        ..VerifyConfig::default()
    };
    let (state, app) = state(dir.path(), verify, client, None);
    (dir, state, app)
}

async fn timed(app: &axum::Router, review: &Value) -> (Value, Duration) {
    let start = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), admit(app, "/mutate", review))
        .await
        .expect("the webhook answers; it never hangs");
    (response, start.elapsed())
}

#[tokio::test]
async fn enforce_denies_what_does_not_finish_within_the_budget_and_says_what_was_slow() {
    let (host, accepted) = silent_registry().await;
    let (_dir, state, app) = app_for(&host, "Enforce", Duration::from_secs(1));
    let image = format!("{host}/app:v1");

    let (response, took) = timed(&app, &review("pod-create", &image)).await;
    // About the budget, far from the registry client's own 30 s timeout (slack for a loaded CI).
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "check-signature: verification of {image} did not finish within 1s: waiting for {host} to answer the tag resolution of {image}"
        )),
        "{message}"
    );

    // The next request joins the stuck resolution: no second connection to the registry.
    let (response, _) = timed(&app, &review("pod-create", &image)).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(
        state.metrics().counter(
            sealgate_server::metrics::DEADLINE_EXCEEDED,
            &[("webhook", "mutate")]
        ),
        2.0
    );

    // A pinned image needs no resolution: the signature fetch is what runs out of time.
    let digest = Digest::sha256_of(b"some image");
    let pinned = format!("{host}/app@{digest}");
    let (response, _) = timed(&app, &review("pod-create", &pinned)).await;
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "verification of {pinned} did not finish within 1s: waiting for {host} to send the signatures of {host}/app@{digest}"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn audit_admits_what_does_not_finish_with_a_warning() {
    let (host, _) = silent_registry().await;
    let (_dir, _, app) = app_for(&host, "Audit", Duration::from_millis(500));
    let image = format!("{host}/app:v1");
    let (response, took) = timed(&app, &review("pod-create", &image)).await;
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(response["allowed"], true, "{response}");
    let warning = response["warnings"][0].as_str().unwrap();
    assert_eq!(
        warning,
        format!(
            "policy require-signed.check-signature: verification of {image} did not finish within 500ms: waiting for {host} to answer the tag resolution of {image}"
        )
    );
}

#[tokio::test]
async fn a_registry_that_refuses_connections_denies_enforce_at_once() {
    // Bind and drop: the port refuses connections.
    let host = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (_dir, _, app) = app_for(&host, "Enforce", Duration::from_secs(8));
    let (response, took) = timed(&app, &review("pod-create", &format!("{host}/app:v1"))).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "could not resolve the digest of {host}/app:v1: could not connect to {host}"
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_slow_tag_elsewhere_does_not_hold_up_the_other_images() {
    let (silent, _) = silent_registry().await;
    let env = Env::new(sealgate_test_registry::TestRegistryConfig {
        tls: false,
        auth: false,
    });
    let good = env.registry.host().to_string();
    env.write_policy(
        "signed.yaml",
        &policy(
            "require-signed",
            &env.key,
            &format!("{good}/*"),
            "Enforce",
            "",
        ),
    );
    env.write_policy(
        "slow.yaml",
        &policy(
            "audit-slow",
            &env.key,
            &format!("{silent}/*"),
            "Audit",
            "\n        mutateDigest: false",
        ),
    );
    let digest = env.push_signed("app", "v1").await;
    env.push_signed("app", "v2").await;
    let mut options = env.registry.client_options();
    options.insecure_hosts.push(silent.clone());
    let verify = VerifyConfig {
        budget: Duration::from_secs(1),
        ..VerifyConfig::default()
    };
    let (_, app) = env.app_with(verify, options, None);
    let pinned = format!("{good}/app@{digest}");
    let slow = format!("{silent}/tool:v1");
    let mut review = review("pod-create", &pinned);
    review["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tool", "image": slow}));
    review["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "tagged", "image": format!("{good}/app:v2")}));

    let (response, _) = timed(&app, &review).await;
    // The pinned image's signatures, and the quickly resolved tag's, were fetched while the
    // other tag hung: both verified.
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{response}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains(&format!("verification of {slow} did not finish within 1s")),
        "{response}"
    );
}
