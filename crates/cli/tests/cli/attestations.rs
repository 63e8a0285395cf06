//! Attestations end to end against the real test registry: `sealgate attest` writes them as
//! cosign does (a DSSE envelope layer of REPO:sha256-<hex>.att), `verify-attestation` prints the
//! verified ones, and `apply` checks a policy's `attestations` with conditions over the
//! predicate (issue 10, Must 5).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealgate_core::Digest;
use sealgate_core::cosign::ImageManifest;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::Value;

use crate::common::{Workdir, image};

const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};

const SLSA: &str = "https://slsa.dev/provenance/v0.2";

/// The layers of the `.att` image of `digest` in `repo`.
fn attestation_layers(
    registry: &TestRegistry,
    repo: &str,
    digest: &Digest,
) -> Vec<sealgate_core::cosign::Descriptor> {
    let client = registry.client();
    let repo_ref = registry.image_ref(&format!("{repo}:x"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manifest = rt
        .block_on(client.get_manifest(&repo_ref, &digest.attestation_tag()))
        .unwrap();
    manifest.map_or_else(Vec::new, |m| ImageManifest::parse(&m.bytes).unwrap().layers)
}

/// The statement inside an envelope printed by `verify-attestation`.
fn statement_of(envelope_line: &str) -> Value {
    let envelope: Value = serde_json::from_str(envelope_line).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let payload = STANDARD
        .decode(envelope["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn provenance(builder: &str) -> String {
    format!(
        r#"{{"builder": {{"id": "{builder}"}}, "buildType": "https://example.com/build/v1", "materials": []}}"#
    )
}

#[test]
fn attest_then_verify_attestation_round_trip() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("app", "v1");
    let bare = registry.push_image("bare", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let (_, other_public) = w.keys("other", "pw");
    std::fs::write(
        w.path("provenance.json"),
        provenance("https://ci.company.com/builder"),
    )
    .unwrap();
    std::fs::write(w.path("notes.txt"), "reviewed by alice\n").unwrap();
    let app = image(&registry, "app:v1");
    let att_tag = format!("{}:{}", image(&registry, "app"), digest.attestation_tag());

    w.run_on(
        &registry,
        "pw",
        &[
            "attest",
            "--key",
            &key,
            "--type",
            "slsaprovenance",
            "--predicate",
            "provenance.json",
            &app,
        ],
    )
    .success()
    .stderr_has(&format!(
        "Attested {app} ({digest}): pushed a {SLSA} attestation to {att_tag} (1 attestation(s) there now)"
    ));
    // As cosign stores it: one DSSE layer, its predicate type annotated, an empty signature
    // annotation (the signature is in the envelope).
    let layers = attestation_layers(&registry, "app", &digest);
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0].media_type,
        "application/vnd.dsse.envelope.v1+json"
    );
    assert_eq!(layers[0].annotation("predicateType"), Some(SLSA));
    assert_eq!(
        layers[0].annotation("dev.cosignproject.cosign/signature"),
        Some("")
    );

    // A second attestation (cosign's default type, custom) is appended.
    w.run_on(
        &registry,
        "pw",
        &["attest", "--key", &key, "--predicate", "notes.txt", &app],
    )
    .success()
    .stderr_has("(2 attestation(s) there now)");
    assert_eq!(attestation_layers(&registry, "app", &digest).len(), 2);

    // verify-attestation prints each verified envelope of the type, one per line.
    let slsa = w.run_on(
        &registry,
        "",
        &[
            "verify-attestation",
            "--key",
            &public,
            "--type",
            "slsaprovenance",
            &app,
        ],
    );
    slsa.success()
        .stderr_has("The signatures over the DSSE envelopes were verified");
    let out = slsa.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{}", slsa.stdout());
    let statement = statement_of(lines[0]);
    assert_eq!(statement["predicateType"], SLSA);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.hex());
    assert_eq!(statement["subject"][0]["name"], image(&registry, "app"));
    assert_eq!(
        statement["predicate"]["builder"]["id"],
        "https://ci.company.com/builder"
    );
    // Without --type: cosign's custom, {Data, Timestamp}.
    let custom = w.run_on(
        &registry,
        "",
        &["verify-attestation", "--key", &public, &app],
    );
    custom.success();
    let statement = statement_of(custom.stdout().trim());
    assert_eq!(
        statement["predicateType"],
        "https://cosign.sigstore.dev/attestation/v1"
    );
    assert_eq!(statement["predicate"]["Data"], "reviewed by alice\n");
    assert!(
        statement["predicate"]["Timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    // None of another type, another key, an image without attestations: exit 1, saying which.
    w.run_on(
        &registry,
        "",
        &[
            "verify-attestation",
            "--key",
            &public,
            "--type",
            "cyclonedx",
            &app,
        ],
    )
    .expect_code(1)
    .stderr_has(
        "none of the attestations matched the predicate type: https://cyclonedx.org/bom, found: ",
    );
    w.run_on(
        &registry,
        "",
        &["verify-attestation", "--key", &other_public, &app],
    )
    .expect_code(1)
    .stderr_has(&format!("none of 2 attestation(s) at {att_tag} verifies"))
    .stderr_has("attestation 1: does not verify with the key");
    w.run_on(
        &registry,
        "",
        &[
            "verify-attestation",
            "--key",
            &public,
            &image(&registry, "bare:v1"),
        ],
    )
    .expect_code(1)
    .stderr_has(&format!(
        "no attestations found at {}:{}",
        image(&registry, "bare"),
        bare.attestation_tag()
    ));

    // --replace drops the earlier attestation of the same type.
    std::fs::write(
        w.path("provenance.json"),
        provenance("https://ci.company.com/v2"),
    )
    .unwrap();
    w.run_on(
        &registry,
        "pw",
        &[
            "attest",
            "--key",
            &key,
            "--type",
            "slsaprovenance",
            "--predicate",
            "provenance.json",
            "--replace",
            &app,
        ],
    )
    .success()
    .stderr_has("(2 attestation(s) there now, 1 of the same type replaced)");
    let slsa = w.run_on(
        &registry,
        "",
        &["verify-attestation", "--key", &public, "--type", SLSA, &app],
    );
    slsa.success();
    assert_eq!(slsa.stdout().lines().count(), 1, "{}", slsa.stdout());
    assert_eq!(
        statement_of(slsa.stdout().trim())["predicate"]["builder"]["id"],
        "https://ci.company.com/v2"
    );

    // A type that is neither cosign's name nor a URI is a usage error.
    w.run_on(
        &registry,
        "pw",
        &[
            "attest",
            "--key",
            &key,
            "--type",
            "provenance",
            "--predicate",
            "provenance.json",
            &app,
        ],
    )
    .expect_code(2)
    .stderr_has("invalid predicate type: provenance");
}

/// A test registry holding `app:v1`, attested as built by the company's CI, and `laptop:v1`,
/// attested as built on a laptop, both by the key pair `cosign` (password `pw`) of the workdir.
struct CiAndLaptop {
    registry: TestRegistry,
    w: Workdir,
    /// `app:v1`'s digest.
    digest: Digest,
    /// The public key, PEM.
    pem: String,
}

fn ci_and_laptop() -> CiAndLaptop {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("app", "v1");
    registry.push_image("laptop", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    attest_ci_and_laptop(&registry, &w, &key);
    CiAndLaptop {
        registry,
        w,
        digest,
        pem,
    }
}

/// Attests `app:v1` as built by the company's CI and `laptop:v1` as built on a laptop, with the
/// key `key` (password `pw`).
fn attest_ci_and_laptop(registry: &TestRegistry, w: &Workdir, key: &str) {
    for (repo, builder) in [
        ("app", "https://ci.company.com/builder"),
        ("laptop", "https://laptop.example/alice"),
    ] {
        attest_provenance(
            registry,
            w,
            key,
            &image(registry, &format!("{repo}:v1")),
            builder,
        );
    }
}

/// `sealgate attest --key KEY --type slsaprovenance` of a provenance naming `builder`, for
/// `image` on `registry` (the key's password is `pw`).
pub(crate) fn attest_provenance(
    registry: &TestRegistry,
    w: &Workdir,
    key: &str,
    image: &str,
    builder: &str,
) {
    std::fs::write(w.path("provenance.json"), provenance(builder)).unwrap();
    w.run_on(
        registry,
        "pw",
        &[
            "attest",
            "--key",
            key,
            "--type",
            "slsaprovenance",
            "--predicate",
            "provenance.json",
            image,
        ],
    )
    .success();
}

/// `sealgate lint FILE` succeeds and its output does not hold `words`.
fn lint_says_nothing_of(w: &Workdir, file: &str, words: &str) {
    let lint = w.run("", &["lint", file]);
    lint.success();
    let said = format!("{}{}", lint.stdout(), lint.stderr());
    assert!(!said.contains(words), "{said}");
}

fn policy(registry: &TestRegistry, public_pem: &str) -> String {
    policy_with(
        registry,
        public_pem,
        "",
        r#"        - all:
          - key: "{{ builder.id }}"
            operator: Equals
            value: https://ci.company.com/builder
            message: the image was not built by the company's CI"#,
    )
}

/// The policy of one attestation of type [`SLSA`] by `public_pem` whose rule has `context`
/// (YAML at the rule's indentation, or empty) and whose attestation has `conditions` (YAML
/// under `conditions:`).
fn policy_with(
    registry: &TestRegistry,
    public_pem: &str,
    context: &str,
    conditions: &str,
) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-provenance
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: built-by-ci
    match:
      any:
      - resources:
          kinds: [Pod]
{context}
    verifyImages:
    - imageReferences: ["{host}/*"]
      attestations:
      - type: {SLSA}
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                {key}
        conditions:
{conditions}
"#,
        host = registry.host(),
        key = public_pem.trim().replace('\n', "\n                ")
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
fn apply_checks_attestation_conditions_over_the_predicate() {
    let CiAndLaptop {
        registry,
        w,
        digest,
        pem,
    } = ci_and_laptop();
    let none = registry.push_image("none", "v1");
    std::fs::write(w.path("policy.yaml"), policy(&registry, &pem)).unwrap();

    // lint no longer says attestations are not checked.
    lint_says_nothing_of(&w, "policy.yaml", "attestations");

    let app = image(&registry, "app:v1");
    let good = pod(&w, "good", &app);
    let pass = w.run_on(
        &registry,
        "",
        &["apply", "policy.yaml", "--resource", &good],
    );
    pass.success()
        .stdout_has(&format!("verified image attestations for {app} ({digest})"));
    let json = w.run_on(
        &registry,
        "",
        &["apply", "policy.yaml", "--resource", &good, "-o", "json"],
    );
    json.success()
        .stdout_has(&format!("{app}@{digest}"))
        .stdout_has("\"reason\": \"verified\"");

    let laptop = image(&registry, "laptop:v1");
    let bad = pod(&w, "bad", &laptop);
    w.run_on(&registry, "", &["apply", "policy.yaml", "--resource", &bad])
        .expect_code(1)
        .stdout_has(&format!(
            "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: attestation checks failed for {laptop} and predicate {SLSA}: the image was not built by the company's CI"
        ));

    let unattested = pod(&w, "unattested", &image(&registry, "none:v1"));
    w.run_on(
        &registry,
        "",
        &["apply", "policy.yaml", "--resource", &unattested],
    )
    .expect_code(1)
    .stdout_has(&format!(
        "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: no matching attestations: no attestations found at {}:{}",
        image(&registry, "none"),
        none.attestation_tag()
    ));

    // The attestation of one image is not another's: app's `.att` image copied under the
    // laptop image's digest (what a registry that cannot be trusted could serve) names app's
    // digest as its subject.
    let laptop_digest = copy_attestations(&registry, "app", &digest, "laptop", &laptop);
    assert_ne!(laptop_digest, digest);
    w.run_on(&registry, "", &["apply", "policy.yaml", "--resource", &bad])
        .expect_code(1)
        .stdout_has(&format!(
            "no matching attestations: none of 1 attestation(s) at {}:{} verifies: attestation 1: no matching subject digest found (subjects: {}@{digest})",
            image(&registry, "laptop"),
            laptop_digest.attestation_tag(),
            image(&registry, "app"),
        ));
}

#[test]
fn apply_checks_attestation_conditions_against_a_config_map_given_as_values() {
    let CiAndLaptop {
        registry,
        w,
        digest,
        pem,
    } = ci_and_laptop();
    // The builders allowed are kept in a ConfigMap, as teams keep keys: the conditions read it
    // beside the predicate, as Kyverno's do.
    let context = "    context:\n    - name: builders\n      configMap:\n        name: builders\n        namespace: platform";
    let conditions = r#"        - all:
          - key: "{{ builder.id }}"
            operator: AnyIn
            value: "{{ split(builders.data.allowed, ',') }}"
            message: "{{ builder.id }} is not one of the builders in ConfigMap platform/builders""#;
    std::fs::write(
        w.path("policy.yaml"),
        policy_with(&registry, &pem, context, conditions),
    )
    .unwrap();
    lint_says_nothing_of(&w, "policy.yaml", "warning:");
    let values = |allowed: &str| {
        format!(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Values\npolicies:\n- name: require-provenance\n  rules:\n  - name: built-by-ci\n    values:\n      builders.data.allowed: \"{allowed}\"\n"
        )
    };
    std::fs::write(
        w.path("ci.yaml"),
        values("https://ci.company.com/builder,https://ci2.company.com/builder"),
    )
    .unwrap();
    let app = image(&registry, "app:v1");
    let laptop = image(&registry, "laptop:v1");
    let good = pod(&w, "good", &app);
    let bad = pod(&w, "bad", &laptop);
    let apply = |resource: &str, values: &[&str]| {
        let mut args = vec!["apply", "policy.yaml", "--resource", resource];
        args.extend(values);
        w.run_on(&registry, "", &args)
    };
    apply(&good, &["--values-file", "ci.yaml"])
        .success()
        .stdout_has(&format!("verified image attestations for {app} ({digest})"));
    apply(&bad, &["--values-file", "ci.yaml"])
        .expect_code(1)
        .stdout_has(&format!(
            "attestation checks failed for {laptop} and predicate {SLSA}: https://laptop.example/alice is not one of the builders in ConfigMap platform/builders"
        ));
    // The same policy with the laptop in the ConfigMap admits it.
    std::fs::write(
        w.path("laptop.yaml"),
        values("https://laptop.example/alice"),
    )
    .unwrap();
    apply(&bad, &["--values-file", "laptop.yaml"]).success();
    // Without the ConfigMap the check cannot be made: an error result (blocked under Enforce)
    // naming the condition, the variable and the ConfigMap.
    apply(&good, &[])
        .expect_code(2)
        .stdout_has("spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].value: `{{ split(builders.data.allowed, ',') }}` from ConfigMap platform/builders: context entry `builders` has no value");
}

#[test]
fn apply_checks_validate_deny_over_the_named_predicate() {
    let CiAndLaptop {
        registry,
        w,
        digest,
        pem,
    } = ci_and_laptop();
    // The attestation is named and has no conditions of its own; the entry's validate.deny
    // reads the named predicate once every attestation verified, as in Kyverno.
    let text = policy_with(&registry, &pem, "", "          []")
        .replace("      - type:", "      - name: prov\n        type:")
        + r#"      validate:
        message: "{{ images.containers.c.name }} must be built by CI"
        deny:
          conditions:
            any:
            - key: "{{ prov.builder.id }}"
              operator: NotEquals
              value: https://ci.company.com/*
              message: "it was built by {{ prov.builder.id }}"
"#;
    std::fs::write(w.path("policy.yaml"), text).unwrap();
    lint_says_nothing_of(&w, "policy.yaml", "warning:");
    let app = image(&registry, "app:v1");
    let good = pod(&w, "good", &app);
    w.run_on(
        &registry,
        "",
        &["apply", "policy.yaml", "--resource", &good],
    )
    .success()
    .stdout_has(&format!(
        "verified image attestations for {app} ({digest}); validate.deny conditions do not hold"
    ));
    let bad = pod(&w, "bad", &image(&registry, "laptop:v1"));
    w.run_on(&registry, "", &["apply", "policy.yaml", "--resource", &bad])
        .expect_code(1)
        .stdout_has("validation in verifyImages failed: laptop must be built by CI; it was built by https://laptop.example/alice");
}

/// Copies the `.att` image of `digest` in `from` to `to`, under the digest `image`'s tag
/// resolves to (replacing what is there); that digest.
fn copy_attestations(
    registry: &TestRegistry,
    from: &str,
    digest: &Digest,
    to: &str,
    image: &str,
) -> Digest {
    let client = registry.client();
    let source = registry.image_ref(&format!("{from}:x"));
    let target = registry.image_ref(&format!("{to}:x"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target_digest = client
            .resolve(&sealgate_core::ImageRef::parse(image).unwrap())
            .await
            .unwrap();
        let manifest = client
            .get_manifest(&source, &digest.attestation_tag())
            .await
            .unwrap()
            .unwrap();
        let parsed = ImageManifest::parse(&manifest.bytes).unwrap();
        for blob in parsed.layers.iter().chain([&parsed.config]) {
            let bytes = client
                .get_blob(&source, &blob.digest, 1 << 20)
                .await
                .unwrap();
            client.push_blob(&target, &bytes).await.unwrap();
        }
        client
            .put_manifest(
                &target,
                &target_digest.attestation_tag(),
                "application/vnd.oci.image.manifest.v1+json",
                &manifest.bytes,
            )
            .await
            .unwrap();
        target_digest
    })
}

/// sigstore/cosign's real keyless attestation (`oci-attestation.sigstore.json`), pushed to the
/// test registry as cosign lays out a `.att` image, for the image digest its statement names.
pub(crate) fn push_cosign_fixture(registry: &TestRegistry) -> String {
    use sealgate_core::cosign::{Descriptor, OCI_MANIFEST_MEDIA_TYPE, signature_image};
    let bundle: Value = serde_json::from_str(include_str!(
        "../../../core/testdata/sigstore/oci-attestation.sigstore.json"
    ))
    .unwrap();
    let envelope = serde_json::to_vec(&bundle["dsseEnvelope"]).unwrap();
    let cert = bundle["verificationMaterial"]["certificate"]["rawBytes"]
        .as_str()
        .unwrap();
    let lines: Vec<String> = cert
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let cert_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let log_id = STANDARD
        .decode(entry["logId"]["keyId"].as_str().unwrap())
        .unwrap();
    let rekor = serde_json::json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
            "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": log_id.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        }
    });
    let mut descriptor = Descriptor::of("application/vnd.dsse.envelope.v1+json", &envelope);
    descriptor.annotations = Some(
        [
            ("dev.cosignproject.cosign/signature", String::new()),
            (
                "predicateType",
                "https://cosign.sigstore.dev/attestation/v1".to_string(),
            ),
            ("dev.sigstore.cosign/certificate", cert_pem),
            ("dev.sigstore.cosign/chain", String::new()),
            ("dev.sigstore.cosign/bundle", rekor.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );
    let digest: Digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
        .parse()
        .unwrap();
    let (manifest, config) = signature_image(&[descriptor]);
    let client = registry.client();
    let repo = registry.image_ref("repo:x");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        client.push_blob(&repo, &envelope).await.unwrap();
        client.push_blob(&repo, &config).await.unwrap();
        client
            .put_manifest(
                &repo,
                &digest.attestation_tag(),
                OCI_MANIFEST_MEDIA_TYPE,
                &manifest,
            )
            .await
            .unwrap();
    });
    format!("{}@{digest}", image(registry, "repo"))
}

#[test]
fn a_real_keyless_attestation_on_the_registry_passes_apply_offline() {
    let registry = TestRegistry::start(TLS_AUTH);
    let attested = push_cosign_fixture(&registry);
    let w = Workdir::new();
    let policy = |subject: &str| {
        format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: keyless-attestation
spec:
  validationFailureAction: Enforce
  background: false
  rules:
  - name: attested
    match:
      any:
      - resources:
          kinds: [Pod]
    verifyImages:
    - imageReferences: ["{host}/*"]
      attestations:
      - type: https://cosign.sigstore.dev/attestation/v1
        attestors:
        - entries:
          - keyless:
              subject: "{subject}"
              issuer: https://github.com/login/oauth
              rekor:
                url: https://rekor.sigstore.dev
        conditions:
        - all:
          - key: "{{{{ Timestamp }}}}"
            operator: Equals
            value: "2025-02-28T19:18:11Z"
"#,
            host = registry.host()
        )
    };
    std::fs::write(w.path("policy.yaml"), policy("*@soyland.com")).unwrap();
    std::fs::write(w.path("other.yaml"), policy("*@company.com")).unwrap();
    let pod = pod(&w, "attested", &attested);
    w.run_on(&registry, "", &["apply", "policy.yaml", "--resource", &pod])
        .success()
        .stdout_has(&format!("verified image attestations for {attested}"));
    w.run_on(&registry, "", &["apply", "other.yaml", "--resource", &pod])
        .expect_code(1)
        .stdout_has("certificate identity cody@soyland.com issued by https://github.com/login/oauth does not match");
}
