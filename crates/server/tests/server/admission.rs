//! AdmissionReviews through the router: signed, unsigned, Audit, DELETE, pod controllers, dry
//! runs and the audit trail, and bodies that are not AdmissionReviews.

use axum::body::Body;
use axum::http::StatusCode;
use sealgate_server::config::VerifyConfig;
use sealgate_test_registry::TestRegistryConfig;
use serde_json::{Value, json};

use crate::common::*;

const SECURE: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};

/// An Enforce policy for everything on the registry except `audited/`, and an Audit policy for
/// `audited/`.
fn env_with_policies() -> Env {
    let env = Env::new(SECURE);
    let host = env.registry.host().to_string();
    env.write_policy(
        "require-signed.yaml",
        &policy(
            "require-signed",
            &env.key,
            &format!("{host}/app*"),
            "Enforce",
            "",
        ),
    );
    env.write_policy(
        "audit-signed.yaml",
        &policy(
            "audit-signed",
            &env.key,
            &format!("{host}/audited/*"),
            "Audit",
            "\n        mutateDigest: false\n        verifyDigest: false",
        ),
    );
    env
}

#[tokio::test]
async fn a_signed_pod_is_pinned_on_mutate_and_validate_decides_from_the_cache() {
    let env = env_with_policies();
    let digest = env.push_signed("app", "v1").await;
    let (state, app) = env.app(VerifyConfig::default());
    let image = env.image("app:v1");
    let review = review("pod-create", &image);

    let response = admit(&app, "/mutate", &review).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("status").is_none(), "{response}");
    let pinned = format!("{image}@{digest}");
    assert_eq!(
        patch_of(&response),
        vec![
            json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
            json!({"op": "add", "path": "/metadata/annotations/kyverno.io~1verify-images",
                   "value": format!("{{\"{}/app@{digest}\":\"pass\"}}", env.registry.host())}),
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": pinned}),
        ]
    );
    let after_mutate = registry_requests(&state);
    assert!(after_mutate > 0);

    // What the API server sends the validating webhook: the patched object.
    let mut validated = review.clone();
    validated["request"]["object"]["spec"]["containers"][0]["image"] = json!(pinned);
    let response = admit(&app, "/validate", &validated).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("patch").is_none(), "/validate never patches");
    assert!(response.get("patchType").is_none());
    assert_eq!(
        registry_requests(&state),
        after_mutate,
        "/validate after /mutate is decided from the caches"
    );

    // /validate on its own, on the unpinned object: verifyDigest (on by default) requires the
    // digest the mutating webhook would have pinned, as Kyverno's validating webhook does.
    let response = admit(&app, "/validate", &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("check-signature: missing digest for {image}")),
        "{message}"
    );
    assert!(response.get("patch").is_none());
    assert_eq!(registry_requests(&state), after_mutate);
}

#[tokio::test]
async fn validate_alone_admits_a_verified_tag_without_a_patch_when_digests_are_not_required() {
    let env = Env::new(SECURE);
    let host = env.registry.host().to_string();
    env.write_policy(
        "p.yaml",
        &policy(
            "require-signed",
            &env.key,
            &format!("{host}/*"),
            "Enforce",
            "\n        verifyDigest: false",
        ),
    );
    env.push_signed("app", "v1").await;
    let (_, app) = env.app(VerifyConfig::default());
    let response = admit(
        &app,
        "/validate",
        &review("pod-create", &env.image("app:v1")),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("patch").is_none(), "{response}");
}

#[tokio::test]
async fn an_unsigned_pod_under_enforce_is_denied_with_403_naming_policy_rule_and_image() {
    let env = env_with_policies();
    let digest = env.push_unsigned("app", "unsigned");
    let (_, app) = env.app(VerifyConfig::default());
    let image = env.image("app:unsigned");
    for webhook in ["/mutate", "/validate"] {
        let response = admit(&app, webhook, &review("pod-create", &image)).await;
        assert_eq!(response["allowed"], false, "{response}");
        assert_eq!(response["status"]["code"], 403);
        assert!(response.get("patch").is_none());
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message
                .starts_with("resource Pod/team-a/web was blocked due to the following policies"),
            "{message}"
        );
        assert!(message.contains("\nrequire-signed:\n"), "{message}");
        assert!(
            message.contains(&format!(
                "  check-signature: image {image} ({digest}): attestor set 1 of 1 needs 1 signature, got 0: entry 0: no signatures found at {}/app:{}",
                env.registry.host(),
                digest.signature_tag()
            )),
            "{webhook}: {message}"
        );
    }
}

#[tokio::test]
async fn an_audit_failure_is_allowed_with_a_warning() {
    let env = env_with_policies();
    env.push_unsigned("audited/tool", "v2");
    let (_, app) = env.app(VerifyConfig::default());
    let image = env.image("audited/tool:v2");
    let response = admit(&app, "/mutate", &review("pod-create", &image)).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("status").is_none());
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{response}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.starts_with(&format!(
            "policy audit-signed.check-signature: image {image} (sha256:"
        )),
        "{warning}"
    );
    assert!(warning.contains("no signatures found"), "{warning}");
    // No pin for what did not verify; the annotation records the failure.
    let patch = patch_of(&response);
    assert!(patch.iter().all(|p| p["op"] != "replace"), "{patch:?}");
}

#[tokio::test]
async fn delete_and_connect_are_allowed_without_a_registry_request() {
    let env = env_with_policies();
    let (state, app) = env.app(VerifyConfig::default());
    let before = env.registry.log().lines().count();
    let image = env.image("app:never-pushed");
    let response = admit(&app, "/mutate", &review("pod-delete", &image)).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
    let mut connect = review("pod-create", &image);
    connect["request"]["operation"] = json!("CONNECT");
    connect["request"]["object"] =
        json!({"kind": "PodExecOptions", "apiVersion": "v1", "command": ["sh"]});
    let response = admit(&app, "/validate", &connect).await;
    assert_eq!(response["allowed"], true);
    assert_eq!(registry_requests(&state), 0);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        env.registry.log().lines().count(),
        before,
        "the registry saw nothing"
    );
}

#[tokio::test]
async fn every_pod_controller_kind_is_checked_through_the_webhook() {
    let env = env_with_policies();
    env.push_unsigned("app", "worker");
    let (_, app) = env.app(VerifyConfig::default());
    let image = env.image("app:worker");
    for (group, kind, resource) in [
        ("apps", "DaemonSet", "daemonsets"),
        ("apps", "StatefulSet", "statefulsets"),
        ("apps", "ReplicaSet", "replicasets"),
        ("", "ReplicationController", "replicationcontrollers"),
        ("batch", "Job", "jobs"),
    ] {
        // The Deployment review with another kind: all keep the pod template at spec.template.
        let mut review = review("deployment-create", &image);
        let api_version = if group.is_empty() {
            "v1".to_string()
        } else {
            format!("{group}/v1")
        };
        review["request"]["kind"] = json!({"group": group, "version": "v1", "kind": kind});
        review["request"]["resource"] =
            json!({"group": group, "version": "v1", "resource": resource});
        review["request"]["object"]["kind"] = json!(kind);
        review["request"]["object"]["apiVersion"] = json!(api_version);
        let response = admit(&app, "/mutate", &review).await;
        assert_eq!(response["allowed"], false, "{kind}: {response}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("resource {kind}/team-a/api was blocked")),
            "{message}"
        );
        assert!(
            message.contains(&format!("autogen-check-signature: image {image}")),
            "{kind}: {message}"
        );
    }
}

#[tokio::test]
async fn pod_controllers_are_checked_by_autogen() {
    let env = env_with_policies();
    let digest = env.push_signed("app", "api").await;
    env.push_unsigned("app", "report");
    env.push_signed("app", "fetch").await;
    let (_, app) = env.app(VerifyConfig::default());

    let response = admit(
        &app,
        "/mutate",
        &review("deployment-create", &env.image("app:api")),
    )
    .await;
    assert_eq!(response["allowed"], true, "{response}");
    let patch = patch_of(&response);
    assert!(
        patch.contains(
            &json!({"op": "replace", "path": "/spec/template/spec/containers/0/image",
                               "value": format!("{}@{digest}", env.image("app:api"))})
        ),
        "{patch:?}"
    );

    let cronjob = review_with(
        "cronjob-create",
        &[
            ("{{IMAGE}}", &env.image("app:report")),
            ("{{INIT_IMAGE}}", &env.image("app:fetch")),
        ],
    );
    let response = admit(&app, "/mutate", &cronjob).await;
    assert_eq!(response["allowed"], false, "{response}");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("resource CronJob/team-a/nightly-report was blocked"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "autogen-cronjob-check-signature: image {}",
            env.image("app:report")
        )),
        "{message}"
    );
    assert!(
        !message.contains(&env.image("app:fetch")),
        "the signed init container passes: {message}"
    );
}

#[tokio::test]
async fn every_decision_is_audited_and_dry_runs_are_marked() {
    let env = env_with_policies();
    let digest = env.push_signed("app", "v1").await;
    let (writer, flusher, db) = env.audit();
    let (_, app) = env.app_with(
        VerifyConfig::default(),
        env.registry.client_options(),
        Some((writer, db.clone())),
    );
    // A signed image and one no policy covers, in a dry run.
    let mut review = review("pod-create", &env.image("app:v1"));
    review["request"]["dryRun"] = json!(true);
    review["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "docker.io/library/busybox:1.36"}));
    let response = admit(&app, "/mutate", &review).await;
    assert_eq!(response["allowed"], true, "{response}");

    // GET /audit serves what the writer stored (it writes every 200 ms).
    let mut records = Vec::new();
    for _ in 0..50 {
        let (status, body) = call(&app, "GET", "/audit?dryRun=true", Body::empty()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        records = serde_json::from_slice::<Vec<Value>>(&body).unwrap();
        if records.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(records.len(), 2, "{records:?}");
    let pass = records.iter().find(|r| r["result"] == "pass").unwrap();
    assert_eq!(pass["uid"], review["request"]["uid"]);
    assert_eq!(pass["dryRun"], true);
    assert_eq!(pass["operation"], "CREATE");
    assert_eq!(pass["namespace"], "team-a");
    assert_eq!(pass["kind"], "Pod");
    assert_eq!(pass["name"], "web");
    assert_eq!(pass["image"], env.image("app:v1"));
    assert_eq!(pass["digest"], digest.to_string());
    assert_eq!(pass["policy"], "require-signed");
    assert_eq!(pass["rule"], "check-signature");
    assert_eq!(pass["allowed"], true);
    assert_eq!(
        pass["signer"],
        format!("key {}", env.key.public_key().fingerprint())
    );
    let none = records.iter().find(|r| r["result"] == "none").unwrap();
    assert_eq!(none["image"], "docker.io/library/busybox:1.36");
    assert_eq!(none["policy"], "");

    // Real admissions only, by default: the dry run is not among them.
    let (_, body) = call(&app, "GET", "/audit", Body::empty()).await;
    assert_eq!(
        serde_json::from_slice::<Vec<Value>>(&body).unwrap().len(),
        0
    );
    let (status, body) = call(&app, "GET", "/audit?result=maybe", Body::empty()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&body).contains("invalid result 'maybe'"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    flusher.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refusal_without_an_image_is_audited_too() {
    let env = env_with_policies();
    let (writer, flusher, db) = env.audit();
    let (_, app) = env.app_with(
        VerifyConfig::default(),
        env.registry.client_options(),
        Some((writer, db.clone())),
    );
    let mut review = review("pod-create", &env.image("app:v1"));
    review["request"]["operation"] = json!("PATCH");
    let response = admit(&app, "/mutate", &review).await;
    assert_eq!(response["allowed"], false, "{response}");
    flusher.shutdown().await.unwrap();
    let records = sealgate_server::audit::AuditStore::open_read_only(&db)
        .unwrap()
        .query(&sealgate_server::audit::AuditFilter {
            include_dry_run: true,
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].result, "error");
    assert!(!records[0].allowed);
    assert_eq!(records[0].uid, review["request"]["uid"].as_str().unwrap());
    assert!(
        records[0].reason.contains("unknown operation 'PATCH'"),
        "{}",
        records[0].reason
    );
    assert_eq!(records[0].cause.as_deref(), Some("invalid_request"));
}

#[tokio::test]
async fn what_is_not_an_admission_review_gets_a_clear_4xx() {
    let env = env_with_policies();
    let (_, app) = env.app(VerifyConfig::default());
    let pod = review("pod-create", &env.image("app:v1"));
    let mut v1beta1 = pod.clone();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_request = pod.clone();
    no_request.as_object_mut().unwrap().remove("request");
    let mut no_uid = pod.clone();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let huge = format!(
        "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"pad\":\"{}\"}}",
        "x".repeat(3 * 1024 * 1024 + 1)
    );
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            "{\"apiVersion\": ".into(),
            StatusCode::BAD_REQUEST,
            "the body is not a JSON AdmissionReview: EOF while parsing",
        ),
        (
            "".into(),
            StatusCode::BAD_REQUEST,
            "the body is not a JSON AdmissionReview",
        ),
        (
            v1beta1.to_string(),
            StatusCode::BAD_REQUEST,
            "unsupported AdmissionReview apiVersion 'admission.k8s.io/v1beta1': sealgate speaks admission.k8s.io/v1; set admissionReviewVersions: [\"v1\"]",
        ),
        (
            no_request.to_string(),
            StatusCode::BAD_REQUEST,
            "the AdmissionReview has no request to decide",
        ),
        (
            no_uid.to_string(),
            StatusCode::BAD_REQUEST,
            "the AdmissionReview request is malformed: missing field `uid`",
        ),
        (
            huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "the AdmissionReview is larger than 3145728 bytes",
        ),
    ];
    for (body, want_status, want) in cases {
        for path in ["/mutate", "/validate"] {
            let (status, answer) = call(&app, "POST", path, Body::from(body.clone())).await;
            let text = String::from_utf8_lossy(&answer);
            assert_eq!(status, want_status, "{path}: {text}");
            assert!(text.starts_with(want), "{path}: {text}");
        }
    }

    // An object sealgate cannot read is answered as an AdmissionReview refusal (uid known).
    let mut no_object = pod.clone();
    no_object["request"]["object"] = Value::Null;
    let response = admit(&app, "/mutate", &no_object).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(
        response["status"]["message"],
        "request.object is missing for a CREATE of Pod"
    );

    // An object that is not the kind the request names is refused, not matched as what it
    // claims (a ConfigMap-looking Pod would escape every Pod rule).
    let mut disguised = pod.clone();
    disguised["request"]["object"]["kind"] = json!("ConfigMap");
    let response = admit(&app, "/mutate", &disguised).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(
        response["status"]["message"],
        "request.object.kind is 'ConfigMap' but request.kind.kind is 'Pod': the object is not the kind the request names, so it is refused"
    );

    let (status, _) = call(&app, "GET", "/mutate", Body::empty()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, body) = call(&app, "GET", "/nope", Body::empty()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("sealgate serves POST /mutate"));
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let env = env_with_policies();
    env.push_signed("app", "v1").await;
    let (_, app) = env.app(VerifyConfig::default());
    admit(&app, "/mutate", &review("pod-create", &env.image("app:v1"))).await;
    let (status, body) = call(&app, "GET", "/healthz", Body::empty()).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ok\n".as_slice())
    );
    let (status, body) = call(&app, "GET", "/readyz", Body::empty()).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"ready\n".as_slice())
    );
    let (status, body) = call(&app, "GET", "/metrics", Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    let host = env.registry.host();
    for line in [
        "sealgate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 1".to_string(),
        "sealgate_policy_results_total{policy=\"require-signed\",rule=\"check-signature\",result=\"pass\"} 1".to_string(),
        "sealgate_verification_cache_misses_total{cache=\"digest\"} 1".to_string(),
        "sealgate_verification_cache_misses_total{cache=\"outcome\"} 1".to_string(),
        format!("sealgate_registry_requests_total{{host=\"{host}\",status=\"200\"}}"),
        format!("sealgate_registry_fetch_duration_seconds_count{{host=\"{host}\",fetch=\"digest\"}} 1"),
        "sealgate_verifications_in_flight 0".to_string(),
        "sealgate_policies 2".to_string(),
    ] {
        assert!(text.lines().any(|l| l.starts_with(&line)), "missing {line}\n{text}");
    }
    assert!(!text.contains("team-a"), "no namespace label");
    assert!(!text.contains("app:v1"), "no image label");
}

/// A body that never finishes arriving is refused with 408 at the budget, not waited for.
#[tokio::test]
async fn a_body_that_stalls_is_refused_at_the_budget() {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// Sends the first bytes of a review, then nothing, for ever.
    struct Stalled(Option<axum::body::Bytes>);
    impl http_body::Body for Stalled {
        type Data = axum::body::Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
            match self.0.take() {
                Some(bytes) => Poll::Ready(Some(Ok(http_body::Frame::data(bytes)))),
                None => Poll::Pending,
            }
        }
    }

    let env = env_with_policies();
    let budget = std::time::Duration::from_millis(400);
    let (_, app) = env.app(VerifyConfig {
        budget,
        ..VerifyConfig::default()
    });
    let start = std::time::Instant::now();
    let (status, body) = call(
        &app,
        "POST",
        "/mutate",
        Body::new(Stalled(Some(axum::body::Bytes::from_static(
            b"{\"apiVersion\": \"admission.k8s.io/v1\", \"kind\": \"AdmissionReview\", ",
        )))),
    )
    .await;
    let took = start.elapsed();
    assert_eq!(
        status,
        StatusCode::REQUEST_TIMEOUT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        took >= budget && took < budget + std::time::Duration::from_secs(2),
        "{took:?}"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("the request body did not arrive within 400ms"),
        "{text}"
    );
}

#[tokio::test]
async fn containers_that_cannot_be_read_are_denied_under_enforce_naming_the_path() {
    let env = env_with_policies();
    let digest_free = env.image("app:v1");
    let (_, app) = env.app(VerifyConfig::default());
    for (containers, path) in [
        (json!(5), "spec.containers is a number"),
        (
            json!([{"name": "c", "image": 5}]),
            "spec.containers[0].image is a number",
        ),
        (
            json!([{"name": "c", "image": [digest_free]}]),
            "spec.containers[0].image is a list",
        ),
    ] {
        let mut r = review("pod-create", &digest_free);
        r["request"]["object"]["spec"]["containers"] = containers;
        for webhook in ["/mutate", "/validate"] {
            let response = admit(&app, webhook, &r).await;
            assert_eq!(response["allowed"], false, "{path}: {response}");
            let message = response["status"]["message"].as_str().unwrap();
            assert!(message.contains(path), "{message}");
        }
    }
}
