//! What every server test needs: a real registry with signed and unsigned images, policies on
//! disk, application state, and helpers to send AdmissionReviews through the router in-process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use sealgate_core::cosign::{
    Descriptor, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, payload,
};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::driver::Fetch;
use sealgate_registry::signatures::push_signature;
use sealgate_registry::{Client, RegistryOptions};
use sealgate_server::audit::{AuditFlusher, AuditStore, AuditWriter, Retention};
use sealgate_server::config::VerifyConfig;
use sealgate_server::fetcher::CachingFetcher;
use sealgate_server::metrics::Metrics;
use sealgate_server::policies::PolicyStore;
use sealgate_server::{AppState, StateParts, app};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::Value;
use tower::ServiceExt as _;

/// A registry, a signing key and a directory for policies and data.
pub(crate) struct Env {
    pub(crate) registry: TestRegistry,
    pub(crate) key: SigningKey,
    pub(crate) dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new(config: TestRegistryConfig) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        Env {
            registry: TestRegistry::start(config),
            key: SigningKey::generate(&SystemRandom::new()).unwrap(),
            dir,
        }
    }

    pub(crate) fn policies_dir(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    pub(crate) fn write_policy(&self, file: &str, yaml: &str) {
        std::fs::write(self.policies_dir().join(file), yaml).unwrap();
    }

    /// `HOST/repository:tag`.
    pub(crate) fn image(&self, repository_and_tag: &str) -> String {
        format!("{}/{repository_and_tag}", self.registry.host())
    }

    /// Pushes `repository:tag` and signs it with the env's key, as `sealgate sign` does.
    pub(crate) async fn push_signed(&self, repository: &str, tag: &str) -> Digest {
        let digest = self.registry.push_image(repository, tag);
        let image = self.registry.image_ref(&format!("{repository}:{tag}"));
        sign(&self.registry.client(), &image, &digest, &self.key).await;
        digest
    }

    pub(crate) fn push_unsigned(&self, repository: &str, tag: &str) -> Digest {
        self.registry.push_image(repository, tag)
    }

    /// The state and router over the env's policies, with a fresh registry client (so its
    /// request counts start at zero) and no audit trail.
    pub(crate) fn app(&self, verify: VerifyConfig) -> (AppState, Router) {
        self.app_with(verify, self.registry.client_options(), None)
    }

    pub(crate) fn app_with(
        &self,
        verify: VerifyConfig,
        options: RegistryOptions,
        audit: Option<(AuditWriter, PathBuf)>,
    ) -> (AppState, Router) {
        state(
            &self.policies_dir(),
            verify,
            Client::new(options).unwrap(),
            audit,
        )
    }

    /// An audit writer over `DIR/audit.db`.
    pub(crate) fn audit(&self) -> (AuditWriter, AuditFlusher, PathBuf) {
        let path = self.dir.path().join("audit.db");
        let store = AuditStore::open(&path, Retention::default()).unwrap();
        let (writer, flusher) = AuditWriter::spawn(store);
        (writer, flusher, path)
    }
}

/// State over the policies in `dir` (loaded once; tests of reloading drive the store).
pub(crate) fn state(
    dir: &std::path::Path,
    verify: VerifyConfig,
    client: Client,
    audit: Option<(AuditWriter, PathBuf)>,
) -> (AppState, Router) {
    let metrics = Metrics::new();
    let fetcher = CachingFetcher::new(client, verify, metrics.clone());
    state_with(dir, fetcher, metrics, audit)
}

/// State over the policies in `dir` deciding through `upstream` (a fake) behind the webhook's
/// caches.
pub(crate) fn fake_state(
    dir: &std::path::Path,
    verify: VerifyConfig,
    upstream: Arc<dyn Fetch>,
) -> (AppState, Router) {
    let metrics = Metrics::new();
    let fetcher = CachingFetcher::with_upstream(upstream, verify, metrics.clone());
    state_with(dir, fetcher, metrics, None)
}

/// State over the policies in `dir` with namespace labels from `namespaces`.
pub(crate) fn state_with_namespaces(
    dir: &std::path::Path,
    client: Client,
    namespaces: Option<Arc<dyn sealgate_server::NamespaceLabelSource>>,
) -> (AppState, Router) {
    let metrics = Metrics::new();
    let fetcher = CachingFetcher::new(client, VerifyConfig::default(), metrics.clone());
    let (_store, policies) = PolicyStore::open(dir, metrics.clone()).unwrap();
    let state = AppState::new(StateParts {
        policies,
        namespaces,
        fetcher,
        metrics,
        audit: None,
        audit_db: None,
        audit_token: None,
    });
    (state.clone(), app(state))
}

fn state_with(
    dir: &std::path::Path,
    fetcher: CachingFetcher,
    metrics: Metrics,
    audit: Option<(AuditWriter, PathBuf)>,
) -> (AppState, Router) {
    let (_store, policies) = PolicyStore::open(dir, metrics.clone()).unwrap();
    let (audit, audit_db) = match audit {
        Some((w, p)) => (Some(w), Some(p)),
        None => (None, None),
    };
    let state = AppState::new(StateParts {
        policies,
        namespaces: None,
        fetcher,
        metrics,
        audit,
        audit_db,
        audit_token: None,
    });
    (state.clone(), app(state))
}

/// Pushes a cosign signature of `digest` by `key` next to `image`.
pub(crate) async fn sign(client: &Client, image: &ImageRef, digest: &Digest, key: &SigningKey) {
    let payload = payload::build(&image.cosign_identity(), digest, &BTreeMap::new());
    let signature = key.sign(&SystemRandom::new(), &payload).unwrap();
    let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    descriptor.annotations = Some(
        [(SIGNATURE_ANNOTATION.to_string(), STANDARD.encode(signature))]
            .into_iter()
            .collect(),
    );
    let layer = SignatureLayer {
        descriptor,
        payload,
    };
    push_signature(client, image, digest, &layer, key.public_key())
        .await
        .unwrap();
}

/// A ClusterPolicy requiring a signature by `key` on images matching `pattern`, for Pods (and
/// pod controllers by autogen). `extra` is appended to the verifyImages entry (indented 8).
pub(crate) fn policy(
    name: &str,
    key: &SigningKey,
    pattern: &str,
    action: &str,
    extra: &str,
) -> String {
    let pem = key
        .public_key()
        .to_pem()
        .trim_end()
        .replace('\n', "\n                ");
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  background: false
  rules:
    - name: check-signature
      match:
        any:
        - resources:
            kinds:
            - Pod
      verifyImages:
      - imageReferences:
        - "{pattern}"
        failureAction: {action}
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {pem}{extra}
"#
    )
}

/// The fixture `tests/data/NAME.json` with `{{IMAGE}}` (and `{{INIT_IMAGE}}`) replaced.
pub(crate) fn review(name: &str, image: &str) -> Value {
    review_with(name, &[("{{IMAGE}}", image)])
}

pub(crate) fn review_with(name: &str, replacements: &[(&str, &str)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(format!("{name}.json"));
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

/// Sends `body` to `path` and returns the status and the body.
pub(crate) async fn call(
    app: &Router,
    method: &str,
    path: &str,
    body: Body,
) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

/// POSTs an AdmissionReview and returns its `response` (asserting HTTP 200 and the envelope).
pub(crate) async fn admit(app: &Router, path: &str, review: &Value) -> Value {
    let (status, body) = call(app, "POST", path, Body::from(review.to_string())).await;
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, StatusCode::OK, "{text}");
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{text}");
    assert_eq!(answer["kind"], "AdmissionReview", "{text}");
    assert_eq!(
        answer["response"]["uid"], review["request"]["uid"],
        "the uid is echoed"
    );
    answer["response"].clone()
}

/// The decoded JSON patch of a response (empty when there is none).
pub(crate) fn patch_of(response: &Value) -> Vec<Value> {
    match response["patch"].as_str() {
        None => Vec::new(),
        Some(b64) => {
            assert_eq!(response["patchType"], "JSONPatch");
            serde_json::from_slice(&STANDARD.decode(b64).unwrap()).unwrap()
        }
    }
}

/// Lines of the registry's access log that contain every one of `needles`, after letting the
/// registry write them.
pub(crate) async fn log_lines(registry: &TestRegistry, needles: &[&str]) -> usize {
    tokio::time::sleep(Duration::from_millis(300)).await;
    registry
        .log()
        .lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// Requests sent so far by the state's registry client.
pub(crate) fn registry_requests(state: &AppState) -> u64 {
    state
        .fetcher()
        .request_stats()
        .counts
        .iter()
        .map(|c| c.count)
        .sum()
}
