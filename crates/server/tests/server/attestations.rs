//! Attestations through the webhook: the `.att` fetch goes through the same caches and flights
//! as signatures (keyed by the request, which names the artifact), a verified attestation
//! outcome is cached, and two attestations of one image with other conditions never share one.

use std::collections::BTreeMap;

use ring::rand::SystemRandom;
use sealgate_core::Digest;
use sealgate_core::cosign::dsse::{
    DSSE_MEDIA_TYPE, Envelope, IN_TOTO_PAYLOAD_TYPE, PREDICATE_TYPE_ANNOTATION, statement,
};
use sealgate_core::cosign::{Descriptor, SIGNATURE_ANNOTATION, SignatureLayer};
use sealgate_registry::signatures::push_attestation;
use sealgate_server::config::VerifyConfig;
use sealgate_test_registry::TestRegistryConfig;

use crate::common::*;

const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

const SLSA: &str = "https://slsa.dev/provenance/v0.2";

/// Pushes `repository:tag` with an SLSA provenance attestation by the env's key naming
/// `builder`, as `sealgate attest` writes it.
async fn push_attested(env: &Env, repository: &str, tag: &str, builder: &str) -> Digest {
    let digest = env.registry.push_image(repository, tag);
    let image = env.registry.image_ref(&format!("{repository}:{tag}"));
    let predicate = format!(r#"{{"builder": {{"id": "{builder}"}}}}"#);
    let statement = statement(
        "slsaprovenance",
        predicate.as_bytes(),
        &image.cosign_identity(),
        &digest,
        "",
    )
    .unwrap();
    let envelope = Envelope::sign(
        &env.key,
        &SystemRandom::new(),
        IN_TOTO_PAYLOAD_TYPE,
        &statement,
    )
    .unwrap()
    .to_json();
    let mut descriptor = Descriptor::of(DSSE_MEDIA_TYPE, &envelope);
    descriptor.annotations = Some(BTreeMap::from([
        (SIGNATURE_ANNOTATION.to_string(), String::new()),
        (PREDICATE_TYPE_ANNOTATION.to_string(), SLSA.to_string()),
    ]));
    let layer = SignatureLayer {
        descriptor,
        payload: envelope,
    };
    push_attestation(&env.registry.client(), &image, &digest, &layer, None)
        .await
        .unwrap();
    digest
}

/// A policy requiring an SLSA provenance by the env's key whose builder is `builder`.
fn provenance_policy(env: &Env, name: &str, builder: &str) -> String {
    let pem = env
        .key
        .public_key()
        .to_pem()
        .trim_end()
        .replace('\n', "\n                  ");
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  background: false
  rules:
    - name: built-by
      match:
        any:
        - resources:
            kinds:
            - Pod
      verifyImages:
      - imageReferences:
        - "{host}/*"
        failureAction: Enforce
        verifyDigest: false
        attestations:
        - type: {SLSA}
          attestors:
          - entries:
            - keys:
                publicKeys: |-
                  {pem}
          conditions:
          - all:
            - key: "{{{{ builder.id }}}}"
              operator: Equals
              value: {builder}
              message: not built by {builder}
"#,
        host = env.registry.host()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_attestation_is_cached_and_other_conditions_never_share_its_outcome() {
    let env = Env::new(PLAIN);
    let digest = push_attested(&env, "app", "v1", "https://ci.company.com").await;
    env.write_policy(
        "ci.yaml",
        &provenance_policy(&env, "built-by-ci", "https://ci.company.com"),
    );
    let (state, app) = env.app(VerifyConfig::default());
    let image = env.image("app:v1");
    let att_get = format!("\"GET /v2/app/manifests/{} ", digest.attestation_tag());
    // Pushing read it too (twice: before appending, then to see the layer there).
    let pushed = log_lines(&env.registry, &[&att_get]).await;

    let first = admit(&app, "/mutate", &review("pod-create", &image)).await;
    assert_eq!(first["allowed"], true, "{first}");
    assert!(
        patch_of(&first)
            .iter()
            .any(|p| p["value"] == format!("{image}@{digest}")),
        "{first}"
    );
    assert_eq!(log_lines(&env.registry, &[&att_get]).await, pushed + 1);
    let requests = registry_requests(&state);

    // Within the outcome cache's TTL, a second admission fetches no attestation again.
    let second = admit(&app, "/mutate", &review("pod-create", &image)).await;
    assert_eq!(second["allowed"], true, "{second}");
    assert_eq!(
        log_lines(&env.registry, &[&att_get]).await,
        pushed + 1,
        "{}",
        env.registry.log()
    );
    // The tag resolution is cached too: nothing at all went to the registry.
    assert_eq!(registry_requests(&state), requests);

    // Another policy on the same image, the same key and type, other conditions: its outcome is
    // its own. With both in force, the image is denied, the first time and every time after
    // the first policy's verified outcome is cached.
    env.write_policy(
        "release.yaml",
        &provenance_policy(&env, "built-by-release", "https://release.company.com"),
    );
    let (_, app) = env.app(VerifyConfig::default());
    for _ in 0..2 {
        let denied = admit(&app, "/mutate", &review("pod-create", &image)).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        let message = denied["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "attestation checks failed for {image} and predicate {SLSA}: not built by https://release.company.com"
            )),
            "{message}"
        );
        assert!(message.contains("built-by-release"), "{message}");
        assert!(!message.contains("built-by-ci:"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_without_attestations_is_denied_saying_where_sealgate_looked() {
    let env = Env::new(PLAIN);
    let digest = env.push_unsigned("bare", "v1");
    env.write_policy(
        "ci.yaml",
        &provenance_policy(&env, "built-by-ci", "https://ci.company.com"),
    );
    let (_, app) = env.app(VerifyConfig::default());
    let image = env.image("bare:v1");
    let denied = admit(&app, "/mutate", &review("pod-create", &image)).await;
    assert_eq!(denied["allowed"], false, "{denied}");
    let message = denied["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "no matching attestations: no attestations found at {}:{}",
            env.image("bare"),
            digest.attestation_tag()
        )),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_that_read_the_request_never_share_an_outcome_across_namespaces() {
    let env = Env::new(PLAIN);
    push_attested(&env, "app", "v1", "https://team-a.company.com").await;
    // Each namespace's images must come from its own builder: the condition reads the request
    // beside the predicate, so the entry is compiled per request and its outcome is keyed by
    // the context the conditions read.
    env.write_policy(
        "own-builder.yaml",
        &provenance_policy(
            &env,
            "own-builder",
            "https://{{ request.namespace }}.company.com",
        ),
    );
    let (_, app) = env.app(VerifyConfig::default());
    let image = env.image("app:v1");
    let in_namespace = |namespace: &str| {
        review_with(
            "pod-create",
            &[("{{IMAGE}}", image.as_str()), ("team-a", namespace)],
        )
    };
    let allowed = admit(&app, "/mutate", &in_namespace("team-a")).await;
    assert_eq!(allowed["allowed"], true, "{allowed}");
    // team-a's verified outcome is cached now; team-b's review is denied all the same, every
    // time, and team-a's is still admitted after it.
    for _ in 0..2 {
        let denied = admit(&app, "/mutate", &in_namespace("team-b")).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        let message = denied["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "attestation checks failed for {image} and predicate {SLSA}: not built by https://team-b.company.com"
            )),
            "{message}"
        );
    }
    let again = admit(&app, "/mutate", &in_namespace("team-a")).await;
    assert_eq!(again["allowed"], true, "{again}");
}
