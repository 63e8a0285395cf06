//! The report sink fed from reviews, and background evaluations, against a real registry:
//! `/validate` hands an admitted request's results to the sink (the mutating call, a dry run and
//! a denial do not), and the [`BackgroundEvaluator`] evaluates existing objects under the
//! background policies only.

use std::sync::{Arc, Mutex};

use sealgate_registry::Client;
use sealgate_server::config::VerifyConfig;
use sealgate_server::fetcher::CachingFetcher;
use sealgate_server::metrics::Metrics;
use sealgate_server::policies::PolicyStore;
use sealgate_server::reports::{Process, ReportSink, ReportStatus, ResourceResults};
use sealgate_server::scan::BackgroundEvaluator;
use sealgate_server::{AppState, StateParts, app};
use sealgate_test_registry::TestRegistryConfig;
use serde_json::json;

use crate::common::*;

/// Keeps what it is given.
#[derive(Debug, Default)]
struct Recorded(Mutex<Vec<ResourceResults>>);

impl ReportSink for Recorded {
    fn record(&self, results: ResourceResults) {
        self.0.lock().unwrap().push(results);
    }
}

impl Recorded {
    fn take(&self) -> Vec<ResourceResults> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn state(env: &Env, sink: Arc<Recorded>) -> (AppState, axum::Router) {
    let metrics = Metrics::new();
    let client = Client::new(env.registry.client_options()).unwrap();
    let fetcher = CachingFetcher::new(client, VerifyConfig::default(), metrics.clone());
    let (_store, policies) = PolicyStore::open(&env.policies_dir(), metrics.clone()).unwrap();
    let state = AppState::connected(
        StateParts {
            policies,
            namespaces: None,
            fetcher,
            metrics,
            audit: None,
            audit_db: None,
            audit_token: None,
        },
        Some(sink),
        None,
    );
    (state.clone(), app(state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admitted_validations_are_reported_once_with_the_decisions_results() {
    let env = Env::new(TestRegistryConfig {
        tls: false,
        auth: false,
    });
    let pattern = format!("{}/app*", env.registry.host());
    env.write_policy(
        "audit.yaml",
        &policy("audit-signed", &env.key, &pattern, "Audit", ""),
    );
    env.write_policy(
        "enforce.yaml",
        &policy(
            "enforce-signed",
            &env.key,
            &format!("{}/blocked*", env.registry.host()),
            "Enforce",
            "",
        ),
    );
    let signed = env.push_signed("app", "v1").await;
    let unsigned = env.push_unsigned("app", "v2");
    env.push_unsigned("blocked", "v1");
    let sink = Arc::new(Recorded::default());
    let (_state, app) = state(&env, Arc::clone(&sink));

    // The object /validate sees: pinned by /mutate, and given its uid by the API server.
    let final_object = |image: String| {
        let mut review = review("pod-create", &image);
        review["request"]["object"]["metadata"]["uid"] = json!("7c1e-pod-uid");
        review
    };
    let pinned = final_object(format!("{}@{signed}", env.image("app:v1")));

    // The mutating call is not reported (the request is reported once, at /validate).
    let mutated = admit(&app, "/mutate", &review("pod-create", &env.image("app:v1"))).await;
    assert_eq!(mutated["allowed"], true, "{mutated}");
    assert!(sink.take().is_empty());

    let answer = admit(&app, "/validate", &pinned).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    let recorded = sink.take();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let results = &recorded[0];
    assert_eq!(results.resource.kind, "Pod");
    assert_eq!(results.resource.api_version, "v1");
    assert_eq!(results.resource.plural, "pods");
    assert_eq!(results.resource.namespace.as_deref(), Some("team-a"));
    assert_eq!(results.resource.name, "web");
    assert_eq!(results.resource.uid.as_deref(), Some("7c1e-pod-uid"));
    assert_eq!(results.process, Process::AdmissionReview);
    assert!(results.time_unix_s > 1_600_000_000);
    assert_eq!(results.rules.len(), 1, "{results:?}");
    let rule = &results.rules[0];
    assert_eq!(
        (rule.policy.as_str(), rule.rule.as_str(), rule.result),
        ("audit-signed", "check-signature", ReportStatus::Pass)
    );
    assert_eq!(rule.images.len(), 1);
    assert_eq!(rule.images[0].result, ReportStatus::Pass);

    // Admitted under Audit with a failure: reported as the failure it is.
    let answer = admit(
        &app,
        "/validate",
        &final_object(format!("{}@{unsigned}", env.image("app:v2"))),
    )
    .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    let recorded = sink.take();
    assert_eq!(recorded.len(), 1);
    let rule = &recorded[0].rules[0];
    assert_eq!(rule.result, ReportStatus::Fail);
    assert!(rule.message.contains("no signatures found"), "{rule:?}");

    // A dry run is not reported, nor a denial (nothing is stored to own the report).
    let mut dry = pinned.clone();
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(admit(&app, "/validate", &dry).await["allowed"], true);
    let denied = admit(&app, "/validate", &final_object(env.image("blocked:v1"))).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    assert!(sink.take().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_evaluator_uses_only_background_policies() {
    let env = Env::new(TestRegistryConfig {
        tls: false,
        auth: false,
    });
    let pattern = format!("{}/app*", env.registry.host());
    env.write_policy(
        "scanned.yaml",
        &policy("scanned", &env.key, &pattern, "Audit", "")
            .replace("background: false", "background: true"),
    );
    env.write_policy(
        "admission-only.yaml",
        &policy("admission-only", &env.key, &pattern, "Audit", ""),
    );
    env.push_signed("app", "v1").await;
    env.push_unsigned("app", "v2");
    let sink = Arc::new(Recorded::default());
    let (state, _app) = state(&env, Arc::clone(&sink));
    let evaluator = BackgroundEvaluator::new(state);
    let (fingerprint, any) = evaluator.background_fingerprint();
    assert!(any);
    assert_eq!(evaluator.background_fingerprint().0, fingerprint);
    let round = evaluator.round();
    assert_eq!(round.policies(), 1);

    let pod = |image: String| {
        let mut object = review("pod-create", &image)["request"]["object"].clone();
        object["metadata"]["uid"] = json!("stored-uid");
        // Left by an earlier admission; the scan verifies afresh regardless.
        object["metadata"]["annotations"] =
            json!({"kyverno.io/verify-images": format!("{{\"{image}\":\"pass\"}}")});
        object
    };
    let results = round
        .evaluate(pod(env.image("app:v1")), "pods")
        .await
        .unwrap();
    assert_eq!(results.process, Process::BackgroundScan);
    assert_eq!(results.resource.uid.as_deref(), Some("stored-uid"));
    assert_eq!(results.resource.plural, "pods");
    let rules: Vec<_> = results
        .rules
        .iter()
        .map(|r| (r.policy.as_str(), r.result))
        .collect();
    assert_eq!(rules, [("scanned", ReportStatus::Pass)]);

    let results = round
        .evaluate(pod(env.image("app:v2")), "pods")
        .await
        .unwrap();
    assert_eq!(results.rules[0].result, ReportStatus::Fail);

    // An object no rule checks an image of: nothing to report.
    let other = pod("docker.io/library/busybox:1".into());
    assert!(round.evaluate(other, "pods").await.is_none());
    // The sink is the writer's business, never the evaluator's.
    assert!(sink.take().is_empty());
}
