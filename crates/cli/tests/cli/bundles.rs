//! Policies over cosign v3 Sigstore bundles found through OCI referrers, end to end against the
//! real test registry (Debian's distribution 2.8: no referrers API, so the bundles sit in the
//! referrers tag `sha256-<hex>`, as go-containerregistry writes them for cosign): `apply` with
//! `type: SigstoreBundle` (referrers only) and `type: Cosign` (`.sig` first, the bundles when
//! there is none; `cosignOCI11` the other way round), an attestation from a bundle with
//! conditions, and `serve` admitting and denying Pods on a bundle.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use sealgate_core::Digest;
use sealgate_core::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use sealgate_core::cosign::{
    Descriptor, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, payload,
};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::sigstore::bundle::{
    BUNDLE_V03_MEDIA_TYPE, MAX_BUNDLE_BYTES, key_bundle, sign_statement,
};
use sealgate_registry::referrers::push_bundle_referrer;
use sealgate_registry::signatures::push_signature;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::{Value, json};

use crate::common::{Workdir, image};
use crate::serve::{SERVE, review, spawn_serve, wait_ready};

const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};

const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const KYVERNO: &str = "sigstore bundle verification failed: no matching signatures found";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn new_key() -> SigningKey {
    SigningKey::generate(&SystemRandom::new()).unwrap()
}

fn dsse_bundle(key: &SigningKey, statement: &[u8]) -> Vec<u8> {
    let envelope =
        Envelope::sign(key, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, statement).unwrap();
    key_bundle(&envelope, key.public_key())
}

/// cosign v3's signature of `digest` by `key`: its sign statement in a key-based v0.3 bundle.
fn signature_bundle(key: &SigningKey, digest: &Digest) -> Vec<u8> {
    dsse_bundle(key, &sign_statement(digest, &serde_json::Map::new()))
}

/// A key-based v0.3 bundle of a provenance statement about `digest` built by `builder`.
fn provenance_bundle(key: &SigningKey, digest: &Digest, builder: &str) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": digest.hex()}}],
        "predicateType": PROVENANCE,
        "predicate": {"builder": {"id": builder}, "buildType": "https://example.com/build/v1"},
    });
    dsse_bundle(key, statement.to_string().as_bytes())
}

/// Pushes `bundle` as a referrer of `repo:tag`, as cosign v3 stores it; returns the referrer
/// manifest's digest.
fn push_bundle(registry: &TestRegistry, repo: &str, tag: &str, bundle: &[u8]) -> Digest {
    let client = registry.client();
    let image = registry.image_ref(&format!("{repo}:{tag}"));
    runtime().block_on(async {
        let manifest = client.get_manifest(&image, tag).await.unwrap().unwrap();
        let subject = Descriptor::of(&manifest.media_type, &manifest.bytes);
        let pushed = push_bundle_referrer(
            &client,
            &image,
            &subject,
            BUNDLE_V03_MEDIA_TYPE,
            bundle,
            serde_json::Map::new(),
        )
        .await
        .unwrap();
        assert!(pushed.tag_schema, "distribution 2.8 has no referrers API");
        pushed.manifest
    })
}

/// Removes blob `digest` from the registry's storage, as its garbage collection does: the
/// repository still links it, the registry answers 404 for it.
fn remove_blob(registry: &TestRegistry, digest: &Digest) {
    let hex = digest.hex();
    let dir = registry
        .data_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex);
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
}

/// Appends a legacy cosign signature of `digest` by `key` to the `.sig` image of `repo`.
fn push_legacy_signature(registry: &TestRegistry, repo: &str, digest: &Digest, key: &SigningKey) {
    let client = registry.client();
    let image = registry.image_ref(&format!("{repo}:x"));
    let payload = payload::build(&image.cosign_identity(), digest, &BTreeMap::new());
    let signature = key.sign(&SystemRandom::new(), &payload).unwrap();
    let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    descriptor.annotations = Some(BTreeMap::from([(
        SIGNATURE_ANNOTATION.to_string(),
        STANDARD.encode(signature),
    )]));
    let layer = SignatureLayer {
        descriptor,
        payload,
    };
    runtime()
        .block_on(push_signature(
            &client,
            &image,
            digest,
            &layer,
            key.public_key(),
        ))
        .unwrap();
}

/// `publicKeys: |-` of `key`, indented under `keys:` at `indent` spaces.
fn pem(key: &SigningKey, indent: usize) -> String {
    key.public_key()
        .to_pem()
        .trim()
        .replace('\n', &format!("\n{}", " ".repeat(indent)))
}

/// An Enforce ClusterPolicy for the registry's images: one verifyImages entry with `extra`
/// fields (`type`, `cosignOCI11`) and one key attestor.
fn signature_policy(registry: &TestRegistry, extra: &str, key: &SigningKey) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-signed
spec:
  validationFailureAction: Enforce
  rules:
  - name: check
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["{}/*"]
{extra}      attestors:
      - entries:
        - keys:
            publicKeys: |-
              {}
"#,
        registry.host(),
        pem(key, 14)
    )
}

fn attestation_policy(registry: &TestRegistry, extra: &str, key: &SigningKey) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-provenance
spec:
  validationFailureAction: Enforce
  rules:
  - name: provenance
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["{}/*"]
{extra}      attestations:
      - type: {PROVENANCE}
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                {}
        conditions:
        - all:
          - key: "{{{{ builder.id }}}}"
            operator: Equals
            value: https://ci.company.com
            message: the image was not built by the company's CI
"#,
        registry.host(),
        pem(key, 16)
    )
}

fn pod(w: &Workdir, name: &str, image: &str) -> String {
    let file = format!("{name}.yaml");
    std::fs::write(
        w.path(&file),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
        ),
    )
    .unwrap();
    file
}

#[test]
fn apply_checks_a_sigstore_bundle_rule_against_the_referrers() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("app", "v1");
    let bare = registry.push_image("bare", "v1");
    let (key, other) = (new_key(), new_key());
    push_bundle(&registry, "app", "v1", &signature_bundle(&key, &digest));
    // A legacy `.sig` of the bare image: a SigstoreBundle rule does not read it.
    push_legacy_signature(&registry, "bare", &bare, &key);
    let w = Workdir::new();
    let app = image(&registry, "app:v1");
    let good = pod(&w, "good", &app);
    std::fs::write(
        w.path("bundle.yaml"),
        signature_policy(&registry, "      type: SigstoreBundle\n", &key),
    )
    .unwrap();
    w.run_on(
        &registry,
        "",
        &["apply", "bundle.yaml", "--resource", &good],
    )
    .success()
    .stdout_has(&format!("verified image signatures for {app} ({digest})"));

    // Another key: Kyverno's words, then which bundle and why.
    std::fs::write(
        w.path("other.yaml"),
        signature_policy(&registry, "      type: SigstoreBundle\n", &other),
    )
    .unwrap();
    w.run_on(&registry, "", &["apply", "other.yaml", "--resource", &good])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: {KYVERNO}: none of 1 Sigstore bundle signature(s) among the referrers at {}:{} (referrers tag) verifies: bundle 1 (sha256:",
            image(&registry, "app"),
            digest.referrers_tag()
        ))
        .stdout_has("): does not verify with the key");

    // The bare image has a `.sig` and no bundle.
    let bare_pod = pod(&w, "bare", &image(&registry, "bare:v1"));
    w.run_on(&registry, "", &["apply", "bundle.yaml", "--resource", &bare_pod])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: {KYVERNO}: no Sigstore bundle signatures found among the referrers at {}:{} (referrers tag)",
            image(&registry, "bare"),
            bare.referrers_tag()
        ));
}

#[test]
fn apply_with_a_cosign_rule_falls_back_to_the_bundles_when_there_is_no_sig() {
    let registry = TestRegistry::start(TLS_AUTH);
    let v3 = registry.push_image("v3", "v1");
    let both = registry.push_image("both", "v1");
    let unsigned = registry.push_image("unsigned", "v1");
    let (key, other) = (new_key(), new_key());
    // Signed the cosign v3 way only.
    push_bundle(&registry, "v3", "v1", &signature_bundle(&key, &v3));
    // A legacy `.sig` by `key` and a bundle by `other`.
    push_legacy_signature(&registry, "both", &both, &key);
    push_bundle(&registry, "both", "v1", &signature_bundle(&other, &both));
    let w = Workdir::new();
    std::fs::write(w.path("key.yaml"), signature_policy(&registry, "", &key)).unwrap();
    std::fs::write(
        w.path("other.yaml"),
        signature_policy(&registry, "", &other),
    )
    .unwrap();
    std::fs::write(
        w.path("other-oci11.yaml"),
        signature_policy(&registry, "      cosignOCI11: true\n", &other),
    )
    .unwrap();

    let v3_image = image(&registry, "v3:v1");
    let v3_pod = pod(&w, "v3", &v3_image);
    w.run_on(&registry, "", &["apply", "key.yaml", "--resource", &v3_pod])
        .success()
        .stdout_has(&format!("verified image signatures for {v3_image} ({v3})"));

    // Both: the `.sig` decides (cosign's order), so `other`'s bundle is not read...
    let both_image = image(&registry, "both:v1");
    let both_pod = pod(&w, "both", &both_image);
    w.run_on(
        &registry,
        "",
        &["apply", "key.yaml", "--resource", &both_pod],
    )
    .success();
    w.run_on(
        &registry,
        "",
        &["apply", "other.yaml", "--resource", &both_pod],
    )
    .expect_code(1)
    .stdout_has(&format!(
        "none of 1 signature at {}:{} verifies with the key",
        image(&registry, "both"),
        both.signature_tag()
    ));
    // ... unless cosignOCI11 reads the referrers first.
    w.run_on(
        &registry,
        "",
        &["apply", "other-oci11.yaml", "--resource", &both_pod],
    )
    .success();

    // Neither: the denial names both places.
    let unsigned_pod = pod(&w, "unsigned", &image(&registry, "unsigned:v1"));
    w.run_on(&registry, "", &["apply", "key.yaml", "--resource", &unsigned_pod])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: no signatures found at {repo}:{}; no Sigstore bundle signatures found among the referrers at {repo}:{} (referrers tag)",
            unsigned.signature_tag(),
            unsigned.referrers_tag(),
            repo = image(&registry, "unsigned"),
        ));
    // No `.sig` and a bundle by another key: the `.sig` place, then the bundle's reason.
    w.run_on(&registry, "", &["apply", "other.yaml", "--resource", &v3_pod])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: no signatures found at {repo}:{}; none of 1 Sigstore bundle signature(s) among the referrers at {repo}:{} (referrers tag) verifies: bundle 1 (sha256:",
            v3.signature_tag(),
            v3.referrers_tag(),
            repo = image(&registry, "v3"),
        ));
}

#[test]
fn apply_checks_an_attestation_from_a_bundle_with_its_conditions() {
    let registry = TestRegistry::start(TLS_AUTH);
    let app = registry.push_image("app", "v1");
    let laptop = registry.push_image("laptop", "v1");
    let key = new_key();
    push_bundle(&registry, "app", "v1", &signature_bundle(&key, &app));
    push_bundle(
        &registry,
        "app",
        "v1",
        &provenance_bundle(&key, &app, "https://ci.company.com"),
    );
    push_bundle(
        &registry,
        "laptop",
        "v1",
        &provenance_bundle(&key, &laptop, "https://laptop.example"),
    );
    let w = Workdir::new();
    let app_image = image(&registry, "app:v1");
    let laptop_image = image(&registry, "laptop:v1");
    let good = pod(&w, "good", &app_image);
    let bad = pod(&w, "bad", &laptop_image);
    for (file, extra) in [
        ("bundle.yaml", "      type: SigstoreBundle\n"),
        ("cosign.yaml", ""),
    ] {
        std::fs::write(w.path(file), attestation_policy(&registry, extra, &key)).unwrap();
        w.run_on(&registry, "", &["apply", file, "--resource", &good])
            .success()
            .stdout_has(&format!(
                "verified image attestations for {app_image} ({app})"
            ));
        w.run_on(&registry, "", &["apply", file, "--resource", &bad])
            .expect_code(1)
            .stdout_has(
                "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: ",
            )
            .stdout_has(&format!(
                "attestation checks failed for {laptop_image} and predicate {PROVENANCE}: the image was not built by the company's CI"
            ));
    }
}

#[test]
fn serve_admits_and_denies_pods_on_a_bundle() {
    let registry = TestRegistry::start(TLS_AUTH);
    let signed_digest = registry.push_image("app", "v1");
    let other_digest = registry.push_image("app", "v2");
    let (key, other) = (new_key(), new_key());
    push_bundle(
        &registry,
        "app",
        "v1",
        &signature_bundle(&key, &signed_digest),
    );
    push_bundle(
        &registry,
        "app",
        "v2",
        &signature_bundle(&other, &other_digest),
    );
    let w = Workdir::new();
    std::fs::create_dir(w.path("policies")).unwrap();
    std::fs::write(
        w.path("policies/require-signed.yaml"),
        signature_policy(&registry, "      type: SigstoreBundle\n", &key),
    )
    .unwrap();
    let mut args: Vec<String> = SERVE.iter().map(|a| a.to_string()).collect();
    args.extend(registry.cli_args());
    let (_serving, lines_rx) =
        spawn_serve(&w, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (port, ca) = wait_ready(&w, &lines_rx);
    let signed = image(&registry, "app:v1");
    let unsigned = image(&registry, "app:v2");
    runtime().block_on(async {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let post = |uid: &str, img: &str| {
            let http = http.clone();
            let url = format!("https://localhost:{port}/mutate");
            let body = review(uid, img).to_string();
            async move {
                let r = http.post(url).body(body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()["response"]
                    .clone()
            }
        };
        let allowed = post("signed-pod", &signed).await;
        assert_eq!(allowed["allowed"], true, "{allowed}");
        let denied = post("unsigned-pod", &unsigned).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        assert_eq!(denied["status"]["code"], 403);
        let message = denied["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!(
                "check: image {unsigned} ({other_digest}): attestor set 1 of 1 needs 1 signature, got 0: entry 0: {KYVERNO}: none of 1 Sigstore bundle signature(s) among the referrers at"
            )),
            "{message}"
        );
        // Admitted again from the outcome cache.
        let again = post("signed-pod-2", &signed).await;
        assert_eq!(again["allowed"], true, "{again}");
    });
}

/// `sealgate test` with a `type: SigstoreBundle` rule against the real registry: the expected
/// results are checked against the referrers' bundles (one by the policy's key, one by
/// another), and a wrong expectation fails the run with what was wanted and what came out.
#[test]
fn sealgate_test_checks_expected_results_of_a_sigstore_bundle_rule() {
    let registry = TestRegistry::start(TLS_AUTH);
    let signed = registry.push_image("app", "v1");
    let forged = registry.push_image("app", "v2");
    let (key, other) = (new_key(), new_key());
    push_bundle(&registry, "app", "v1", &signature_bundle(&key, &signed));
    push_bundle(&registry, "app", "v2", &signature_bundle(&other, &forged));
    let w = Workdir::new();
    let dir = w.path("t");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        signature_policy(&registry, "      type: SigstoreBundle\n", &key),
    )
    .unwrap();
    std::fs::write(
        dir.join("resources.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: signed\n  namespace: default\nspec:\n  containers:\n  - name: c\n    image: {}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: forged\n  namespace: default\nspec:\n  containers:\n  - name: c\n    image: {}\n",
            image(&registry, "app:v1"),
            image(&registry, "app:v2"),
        ),
    )
    .unwrap();
    let test = |forged_result: &str| {
        format!(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: bundles\npolicies: [policy.yaml]\nresources: [resources.yaml]\nresults:\n- policy: require-signed\n  rule: check\n  kind: Pod\n  resources: [signed]\n  result: pass\n- policy: require-signed\n  rule: check\n  kind: Pod\n  resources: [forged]\n  result: {forged_result}\n"
        )
    };

    // A table row's columns: ID, POLICY, RULE, RESOURCE, RESULT (of the check), REASON, ...
    fn row(out: &str, name: &str) -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|columns| columns.get(3).map(String::as_str) == Some(name))
            .unwrap_or_else(|| panic!("no row for pod {name}: {out}"))
    }

    // The expected results: the signed Pod passes, the one signed by another key fails.
    std::fs::write(dir.join("kyverno-test.yaml"), test("fail")).unwrap();
    let run = w.run_on(&registry, "", &["test", "t", "--detailed-results"]);
    assert_eq!(run.code(), 0, "{run:?}");
    let out = run.stdout();
    assert!(
        out.contains("Test Summary: 2 tests passed and 0 tests failed"),
        "{out}"
    );
    assert_eq!(row(&out, "signed")[4..6], ["Pass", "Ok"], "{out}");
    assert_eq!(row(&out, "forged")[4..6], ["Pass", "Ok"], "{out}");
    // The failure it expected is the bundle's: signed by another key.
    assert!(
        row(&out, "forged").join(" ").contains(&format!(
            "{KYVERNO}: none of 1 Sigstore bundle signature(s) among the referrers at"
        )) && row(&out, "forged")
            .join(" ")
            .ends_with("does not verify with the key"),
        "{out}"
    );
    // The results themselves, as JSON: pass for the signed Pod, fail for the forged one.
    let run = w.run_on(&registry, "", &["test", "t", "-o", "json"]);
    assert_eq!(run.code(), 0, "{run:?}");
    let results: Vec<(String, String)> = run
        .stdout()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["resource"].as_str().unwrap().to_string(),
                v["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("signed".to_string(), "pass".to_string()),
            ("forged".to_string(), "fail".to_string())
        ],
        "{run:?}"
    );

    // A wrong expectation: the run fails, naming what was wanted and what came out.
    std::fs::write(dir.join("kyverno-test.yaml"), test("pass")).unwrap();
    let run = w.run_on(&registry, "", &["test", "t"]);
    assert_eq!(run.code(), 1, "{run:?}");
    let out = run.stdout();
    assert!(
        out.contains("Test Summary: 1 tests passed and 1 tests failed"),
        "{out}"
    );
    assert_eq!(row(&out, "signed")[4..6], ["Pass", "Ok"], "{out}");
    assert_eq!(
        row(&out, "forged")[4..],
        ["Fail", "Want", "pass,", "got", "fail"],
        "{out}"
    );
}

/// A referrer whose bundle blob is missing from the registry (404) or over the bundle limit
/// ([`MAX_BUNDLE_BYTES`]) denies with that bundle named and why, under `type: SigstoreBundle`
/// and under `type: Cosign`'s fallback; a readable bundle beside a missing one still verifies.
#[test]
fn apply_names_a_bundle_whose_blob_is_missing_or_too_large() {
    let registry = TestRegistry::start(TLS_AUTH);
    let gone = registry.push_image("gone", "v1");
    let huge = registry.push_image("huge", "v1");
    let mixed = registry.push_image("mixed", "v1");
    let key = new_key();
    let gone_bundle = signature_bundle(&key, &gone);
    let gone_referrer = push_bundle(&registry, "gone", "v1", &gone_bundle);
    remove_blob(&registry, &Digest::sha256_of(&gone_bundle));
    let huge_bundle = vec![b' '; MAX_BUNDLE_BYTES + 1];
    let huge_referrer = push_bundle(&registry, "huge", "v1", &huge_bundle);
    push_bundle(&registry, "mixed", "v1", &signature_bundle(&key, &mixed));
    let lost = signature_bundle(&key, &mixed);
    push_bundle(&registry, "mixed", "v1", &lost);
    remove_blob(&registry, &Digest::sha256_of(&lost));

    let w = Workdir::new();
    std::fs::write(
        w.path("bundle.yaml"),
        signature_policy(&registry, "      type: SigstoreBundle\n", &key),
    )
    .unwrap();
    std::fs::write(w.path("cosign.yaml"), signature_policy(&registry, "", &key)).unwrap();
    let short = |d: &Digest| format!("sha256:{}", &d.hex()[..12]);
    let host = registry.host();

    let gone_pod = pod(&w, "gone", &image(&registry, "gone:v1"));
    let gone_why = format!(
        "bundle 1 ({}): its bundle blob could not be fetched: blob {} of {host}/gone not found on {host}",
        short(&gone_referrer),
        Digest::sha256_of(&gone_bundle)
    );
    w.run_on(&registry, "", &["apply", "bundle.yaml", "--resource", &gone_pod])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: {KYVERNO}: none of 1 Sigstore bundle signature(s) among the referrers at {}:{} (referrers tag) verifies: {gone_why}",
            image(&registry, "gone"),
            gone.referrers_tag()
        ));
    // With no `.sig`, a Cosign rule reads the bundles and says the same.
    w.run_on(&registry, "", &["apply", "cosign.yaml", "--resource", &gone_pod])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: no signatures found at {repo}:{}; none of 1 Sigstore bundle signature(s) among the referrers at {repo}:{} (referrers tag) verifies: {gone_why}",
            gone.signature_tag(),
            gone.referrers_tag(),
            repo = image(&registry, "gone"),
        ));

    let huge_pod = pod(&w, "huge", &image(&registry, "huge:v1"));
    w.run_on(&registry, "", &["apply", "bundle.yaml", "--resource", &huge_pod])
        .expect_code(1)
        .stdout_has(&format!(
            "entry 0: {KYVERNO}: none of 1 Sigstore bundle signature(s) among the referrers at {}:{} (referrers tag) verifies: bundle 1 ({}): its bundle blob could not be fetched: blob {} of {host}/huge from {host} is larger than the {MAX_BUNDLE_BYTES}-byte limit",
            image(&registry, "huge"),
            huge.referrers_tag(),
            short(&huge_referrer),
            Digest::sha256_of(&huge_bundle)
        ));

    // A readable bundle by the key beside a missing one: the readable one verifies.
    let mixed_image = image(&registry, "mixed:v1");
    let mixed_pod = pod(&w, "mixed", &mixed_image);
    w.run_on(
        &registry,
        "",
        &["apply", "bundle.yaml", "--resource", &mixed_pod],
    )
    .success()
    .stdout_has(&format!(
        "verified image signatures for {mixed_image} ({mixed})"
    ));
}
