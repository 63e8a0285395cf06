//! Shared fetches and caches, counted on the registry itself: 100 simultaneous admissions of a
//! new image cost one tag resolution and one signature fetch; later ones cost nothing until the
//! TTLs pass; a registry that goes away does not deny what was just verified.

use std::time::Duration;

use sealgate_server::config::{CacheConfig, VerifyConfig};
use sealgate_test_registry::TestRegistryConfig;
use serde_json::json;

use crate::common::*;

const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

fn env() -> Env {
    let env = Env::new(PLAIN);
    let pattern = format!("{}/*", env.registry.host());
    // verifyDigest off, so /validate admits the tag itself (see the admission tests).
    env.write_policy(
        "p.yaml",
        &policy(
            "require-signed",
            &env.key,
            &pattern,
            "Enforce",
            "\n        verifyDigest: false",
        ),
    );
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_simultaneous_admissions_of_a_new_image_cost_one_resolution_and_one_signature_fetch()
 {
    let env = env();
    let digest = env.push_signed("app", "v1").await;
    let (state, app) = env.app(VerifyConfig::default());
    let image = env.image("app:v1");
    let sig_get = format!("\"GET /v2/app/manifests/{} ", digest.signature_tag());
    let tag_get = "\"GET /v2/app/manifests/v1 ";
    let sig_before = log_lines(&env.registry, &[&sig_get]).await;
    let tag_before = log_lines(&env.registry, &[tag_get]).await;

    let mut tasks = Vec::new();
    for i in 0..100 {
        let app = app.clone();
        let mut review = review("pod-create", &image);
        review["request"]["uid"] = json!(format!("uid-{i}"));
        tasks.push(tokio::spawn(async move {
            admit(&app, "/validate", &review).await
        }));
    }
    for t in tasks {
        let response = t.await.unwrap();
        assert_eq!(response["allowed"], true, "{response}");
    }
    assert_eq!(
        log_lines(&env.registry, &[&sig_get]).await - sig_before,
        1,
        "one .sig manifest GET\n{}",
        env.registry.log()
    );
    assert_eq!(
        log_lines(&env.registry, &[tag_get]).await - tag_before,
        1,
        "one tag resolution\n{}",
        env.registry.log()
    );
    // One manifest for the tag, one for the .sig, one payload blob: nothing else.
    assert_eq!(registry_requests(&state), 3);
    let metrics = state.metrics();
    assert_eq!(
        metrics.counter(
            sealgate_server::metrics::FETCHES_SHARED,
            &[("fetch", "digest")]
        ) + metrics.counter(sealgate_server::metrics::CACHE_HITS, &[("cache", "digest")]),
        99.0,
        "every other request joined the resolution or found it cached"
    );
    // The signature is checked by the requests that run before the first check is cached (at
    // most one per worker thread, give or take a wake-up); the others take the cached outcome
    // when their shared fetch ends instead of checking the same signature again.
    let outcome = |cache: &str, name: &str| metrics.counter(name, &[("cache", cache)]);
    let late_hits = outcome("outcome_after_fetch", sealgate_server::metrics::CACHE_HITS);
    let late_misses = outcome(
        "outcome_after_fetch",
        sealgate_server::metrics::CACHE_MISSES,
    );
    let early_hits = outcome("outcome", sealgate_server::metrics::CACHE_HITS);
    assert_eq!(
        early_hits + late_hits + late_misses,
        100.0,
        "each request found the outcome cached at the start, or waited for the fetch"
    );
    assert!(
        late_misses <= 8.0,
        "{late_misses} requests checked the signature themselves; {late_hits} took the cached outcome"
    );
}

#[tokio::test]
async fn a_second_request_costs_no_registry_request_until_the_ttls_pass() {
    let env = env();
    env.push_signed("app", "v1").await;
    let verify = VerifyConfig {
        cache: CacheConfig {
            outcome_ttl: Duration::from_millis(1500),
            digest_ttl: Duration::from_millis(1500),
            signature_set_ttl: Duration::from_millis(1500),
            ..CacheConfig::default()
        },
        ..VerifyConfig::default()
    };
    let (state, app) = env.app(verify);
    let review = review("pod-create", &env.image("app:v1"));

    assert_eq!(admit(&app, "/mutate", &review).await["allowed"], true);
    let first = registry_requests(&state);
    assert_eq!(first, 3, "tag, .sig manifest, payload");
    assert_eq!(admit(&app, "/mutate", &review).await["allowed"], true);
    assert_eq!(registry_requests(&state), first, "all from the caches");

    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(admit(&app, "/mutate", &review).await["allowed"], true);
    assert_eq!(
        registry_requests(&state),
        2 * first,
        "both caches expired: resolved and fetched again"
    );
}

#[tokio::test]
async fn a_registry_that_goes_away_does_not_deny_what_was_just_verified() {
    let mut env = env();
    env.push_signed("app", "v1").await;
    let (state, app) = env.app(VerifyConfig::default());
    let review = review("pod-create", &env.image("app:v1"));
    assert_eq!(admit(&app, "/mutate", &review).await["allowed"], true);
    let before = registry_requests(&state);

    // Stop the registry (a new one takes its place in `env`, on another port).
    env.registry = sealgate_test_registry::TestRegistry::start(PLAIN);
    let response = admit(&app, "/mutate", &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(registry_requests(&state), before);
}

#[tokio::test]
async fn use_cache_false_verifies_every_time() {
    let env = Env::new(PLAIN);
    let pattern = format!("{}/*", env.registry.host());
    env.write_policy(
        "p.yaml",
        &policy(
            "require-signed",
            &env.key,
            &pattern,
            "Enforce",
            "\n        useCache: false",
        ),
    );
    env.push_signed("app", "v1").await;
    let (state, app) = env.app(VerifyConfig::default());
    let review = review("pod-create", &env.image("app:v1"));
    assert_eq!(admit(&app, "/mutate", &review).await["allowed"], true);
    assert_eq!(registry_requests(&state), 3);
    assert_eq!(admit(&app, "/mutate", &review).await["allowed"], true);
    assert_eq!(
        registry_requests(&state),
        5,
        "the tag digest is reused, the signatures are fetched and checked again"
    );
}
