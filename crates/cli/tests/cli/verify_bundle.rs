//! `sealgate verify` and `verify-attestation` on cosign v3's Sigstore bundles, found through
//! the image's OCI 1.1 referrers (the test registry, distribution 2.8, has no referrers API: the
//! `sha256-<hex>` referrers tag is what they go through), and `verify-attestation` keyless:
//!
//! - key-based v0.3 bundles made as `cosign sign --key` / `cosign attest --key` make them
//!   (`sign_statement`, `key_bundle`), pushed with `push_bundle_referrer`: verify passes with the
//!   key and names the referrer, fails with another key naming it, prints cosign v3's JSON;
//!   verify-attestation finds an attestation bundle by `--type`;
//! - the two real keyless v0.3 bundles of core's testdata pushed as referrers of the digests they
//!   sign: kubewarden-controller's signature (its release workflow's identity) through `verify`,
//!   sigstore/cosign's attestation (cody@soyland.com) through `verify-attestation`;
//! - sigstore/cosign's real keyless attestation as cosign v2 stores it (the `.att` layout
//!   tests/cli/attestations.rs pushes) through `verify-attestation` with cosign's keyless flags.

use ring::rand::SystemRandom;
use sealgate_core::Digest;
use sealgate_core::cosign::Descriptor;
use sealgate_core::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::sigstore::bundle::{BUNDLE_V03_MEDIA_TYPE, key_bundle, sign_statement};
use sealgate_registry::referrers::push_bundle_referrer;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::{Map, Value, json};

use crate::common::{Run, Workdir, image};

pub(crate) const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};

const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const SLSA: &str = "https://slsa.dev/provenance/v0.2";

/// The digest kubewarden-controller v1.34.0's real cosign v3 bundle signs, and its signer.
pub(crate) const KUBEWARDEN: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
pub(crate) const WORKFLOW: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
pub(crate) const ACTIONS: &str = "https://token.actions.githubusercontent.com";
/// The digest sigstore/cosign's real attestation names, and its signer.
pub(crate) const COSIGN_IMAGE: &str =
    "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
pub(crate) const CODY: &str = "cody@soyland.com";
pub(crate) const GITHUB: &str = "https://github.com/login/oauth";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A key-based v0.3 bundle of `statement`, signed by `key`.
fn bundle_of(key: &SigningKey, statement: &[u8]) -> Vec<u8> {
    let envelope =
        Envelope::sign(key, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, statement).unwrap();
    key_bundle(&envelope, key.public_key())
}

/// cosign v3's sign statement for `digest`, with subject `annotations`.
fn signature_bundle(key: &SigningKey, digest: &Digest, annotations: &[(&str, &str)]) -> Vec<u8> {
    let annotations: Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    bundle_of(key, &sign_statement(digest, &annotations))
}

/// An in-toto v1 statement of `predicate_type` about `digest`.
fn attestation_bundle(key: &SigningKey, digest: &Digest, predicate_type: &str) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": digest.hex()}}],
        "predicateType": predicate_type,
        "predicate": {"builder": {"id": "https://ci.company.com/builder"}},
    });
    bundle_of(key, statement.to_string().as_bytes())
}

/// Pushes `bundle` as a referrer of `digest` in `repo` (whose manifest need not be there: a
/// subject is a descriptor); the referrer manifest's digest.
pub(crate) fn push_referrer(
    registry: &TestRegistry,
    repo: &str,
    digest: &Digest,
    bundle: &[u8],
) -> Digest {
    let client = registry.client();
    let repo = registry.image_ref(&format!("{repo}:x"));
    let rt = runtime();
    let subject = match rt.block_on(client.get_manifest(&repo, &digest.to_string())) {
        Ok(Some(m)) => Descriptor::of(&m.media_type, &m.bytes),
        _ => Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            size: 1024,
            digest: digest.clone(),
            annotations: None,
            extra: Map::new(),
        },
    };
    assert_eq!(&subject.digest, digest);
    rt.block_on(push_bundle_referrer(
        &client,
        &repo,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        bundle,
        Map::new(),
    ))
    .unwrap()
    .manifest
}

/// A signing key and its public key written to `name`.
fn key_file(w: &Workdir, name: &str) -> SigningKey {
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    std::fs::write(w.path(name), key.public_key().to_pem()).unwrap();
    key
}

/// A registry with `app:v1` (its digest), and a work directory holding `cosign.pub` (of the key
/// returned) and `other.pub`.
fn app_and_keys() -> (TestRegistry, Digest, Workdir, SigningKey) {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("app", "v1");
    let w = Workdir::new();
    let key = key_file(&w, "cosign.pub");
    key_file(&w, "other.pub");
    (registry, digest, w, key)
}

/// `verify` or `verify-attestation` with `args` on the registry.
pub(crate) fn run(w: &Workdir, registry: &TestRegistry, args: &[&str]) -> Run {
    w.run_on(registry, "", args)
}

/// Where the referrers of `digest` in `repo` are listed on the test registry.
fn referrers_tag(registry: &TestRegistry, repo: &str, digest: &Digest) -> String {
    format!(
        "{}:{} (referrers tag)",
        image(registry, repo),
        digest.referrers_tag()
    )
}

#[test]
fn verify_checks_a_key_based_bundle_when_there_is_no_sig() {
    let (registry, digest, w, key) = app_and_keys();
    let manifest = push_referrer(
        &registry,
        "app",
        &digest,
        &signature_bundle(&key, &digest, &[]),
    );
    let app = image(&registry, "app:v1");
    let referrer = format!("{}@{manifest}", image(&registry, "app"));
    let listed = referrers_tag(&registry, "app", &digest);

    let ok = run(&w, &registry, &["verify", "--key", "cosign.pub", &app]);
    ok.success()
        .stderr_has(&format!("\nVerification for {app} --\n"))
        .stderr_has("  - The signatures were verified against the specified public key\n")
        .stdout_has(&format!("Verified {app} ({digest})"))
        .stdout_has(&format!(
            "  1 of 1 Sigstore bundle(s) among the referrers at {listed} verified with key {} (cosign.pub)",
            key.public_key().fingerprint()
        ))
        .stdout_has(&format!("  verified referrer(s): {referrer}\n"))
        .stdout_has(SIGN_PREDICATE);

    // Another key: exit 1, naming the .sig looked for and the referrer that failed.
    run(&w, &registry, &["verify", "--key", "other.pub", &app])
        .expect_code(1)
        .stderr_has(&format!(
            "verification failed for {app} ({digest}): no signatures found at {}:{}, and none of 1 Sigstore bundle(s) among the referrers at {listed} verifies: {referrer}: does not verify with the key",
            image(&registry, "app"),
            digest.signature_tag()
        ));

    // An image with neither: the message says both were looked for.
    let bare = registry.push_image("bare", "v1");
    run(
        &w,
        &registry,
        &[
            "verify",
            "--key",
            "cosign.pub",
            &image(&registry, "bare:v1"),
        ],
    )
    .expect_code(1)
    .stderr_has(&format!(
        "no signatures found at {}:{}, and no Sigstore bundle among the referrers at {}",
        image(&registry, "bare"),
        bare.signature_tag(),
        referrers_tag(&registry, "bare", &bare)
    ));

    // A .sig, when there is one, is what verify checks (cosign v2's layout), bundles aside.
    let (signer, signer_pub) = w.keys("signer", "pw");
    w.run_on(&registry, "pw", &["sign", "--key", &signer, &app])
        .success();
    run(&w, &registry, &["verify", "--key", &signer_pub, &app])
        .success()
        .stdout_has(&format!(
            "1 of 1 signature(s) at {}:{} verified with key",
            image(&registry, "app"),
            digest.signature_tag()
        ));
}

#[test]
fn verify_json_of_a_bundle_has_cosign_v3s_shape_and_annotations_are_checked() {
    let (registry, digest, w, key) = app_and_keys();
    push_referrer(
        &registry,
        "app",
        &digest,
        &signature_bundle(&key, &digest, &[("env", "prod")]),
    );
    let app = image(&registry, "app:v1");
    let out = run(
        &w,
        &registry,
        &["verify", "--key", "cosign.pub", "-o", "json", &app],
    );
    out.success();
    assert!(out.stdout().starts_with("\n["), "{:?}", out.stdout());
    // cosign v3's transformOutput: the reference as given, the subject's digest, the predicate
    // type as `type`, the subject's annotations as `optional`.
    assert_eq!(
        out.stdout().trim(),
        format!(
            r#"[{{"critical":{{"identity":{{"docker-reference":"{app}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"{SIGN_PREDICATE}"}},"optional":{{"env":"prod"}}}}]"#
        )
    );
    // By digest, the reference is REPO@DIGEST.
    let pinned = format!("{}@{digest}", image(&registry, "app"));
    let out = run(
        &w,
        &registry,
        &["verify", "--key", "cosign.pub", "-o", "json", &pinned],
    );
    let entries: Value = serde_json::from_str(out.success().stdout().trim()).unwrap();
    assert_eq!(
        entries[0]["critical"]["identity"]["docker-reference"],
        pinned
    );

    run(
        &w,
        &registry,
        &["verify", "--key", "cosign.pub", "-a", "env=prod", &app],
    )
    .success()
    .stderr_has("  - The specified annotations were verified.")
    .stdout_has("the annotations");
    run(
        &w,
        &registry,
        &["verify", "--key", "cosign.pub", "-a", "env=dev", &app],
    )
    .expect_code(1)
    .stderr_has("missing or incorrect annotation env=dev");
}

#[test]
fn verify_attestation_finds_a_bundle_by_type_and_verify_does_not_take_it_for_a_signature() {
    let (registry, digest, w, key) = app_and_keys();
    let manifest = push_referrer(
        &registry,
        "app",
        &digest,
        &attestation_bundle(&key, &digest, SLSA),
    );
    let app = image(&registry, "app:v1");
    let referrer = format!("{}@{manifest}", image(&registry, "app"));

    let out = run(
        &w,
        &registry,
        &[
            "verify-attestation",
            "--key",
            "cosign.pub",
            "--type",
            "slsaprovenance",
            &app,
        ],
    );
    out.success()
        .stderr_has(
            "  - The referrer manifests and Sigstore bundles were checked against their digests",
        )
        .stderr_has(&format!(
            "  - 1 of 1 Sigstore bundle(s) among the referrers at {} verified, 1 of type {SLSA}",
            referrers_tag(&registry, "app", &digest)
        ))
        .stderr_has(&format!("  - Verified referrer(s) of the type: {referrer}"));
    // The envelope, as cosign prints it: one line, the statement inside.
    let lines: Vec<String> = out.stdout().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout());
    let envelope: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(envelope["payloadType"], IN_TOTO_PAYLOAD_TYPE);
    let statement: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            envelope["payload"].as_str().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(statement["predicateType"], SLSA);
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.hex());

    run(
        &w,
        &registry,
        &["verify-attestation", "--key", "cosign.pub", "--type", "cyclonedx", &app],
    )
    .expect_code(1)
    .stderr_has(&format!(
        "none of the attestations matched the predicate type: https://cyclonedx.org/bom, found: {SLSA}"
    ));
    run(
        &w,
        &registry,
        &[
            "verify-attestation",
            "--key",
            "other.pub",
            "--type",
            "slsaprovenance",
            &app,
        ],
    )
    .expect_code(1)
    .stderr_has(&format!(
        "no attestations found at {}:{}, and none of 1 Sigstore bundle(s) among the referrers at",
        image(&registry, "app"),
        digest.attestation_tag()
    ))
    .stderr_has(&format!("{referrer}: does not verify with the key"));
    // An attestation bundle is no image signature.
    run(&w, &registry, &["verify", "--key", "cosign.pub", &app])
        .expect_code(1)
        .stderr_has(&format!(
            "{referrer}: cannot be checked: the bundle is an attestation of {SLSA}, not a signature ({SIGN_PREDICATE})"
        ));
}

pub(crate) fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/testdata/sigstore")
            .join(name),
    )
    .unwrap()
}

#[test]
fn the_real_keyless_v3_signature_verifies_from_the_referrers() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest: Digest = KUBEWARDEN.parse().unwrap();
    let manifest = push_referrer(
        &registry,
        "kubewarden",
        &digest,
        &testdata("bundle_v03.json"),
    );
    let w = Workdir::new();
    let img = format!("{}@{KUBEWARDEN}", image(&registry, "kubewarden"));
    let ok = run(
        &w,
        &registry,
        &[
            "verify",
            "--certificate-identity",
            WORKFLOW,
            "--certificate-oidc-issuer",
            ACTIONS,
            &img,
        ],
    );
    ok.success()
        .stderr_has("  - Existence of the claims in the transparency log was verified offline")
        .stdout_has(&format!("verified: keyless {WORKFLOW} (issuer {ACTIONS})"))
        .stdout_has(&format!(
            "verified referrer(s): {}@{manifest}",
            image(&registry, "kubewarden")
        ))
        .stdout_has("the log entry offline (inclusion proof, checkpoint, SET, entry body)");

    // Another identity: refused naming the one found.
    run(
        &w,
        &registry,
        &[
            "verify",
            "--certificate-identity-regexp",
            "^https://github.com/evil/",
            "--certificate-oidc-issuer",
            ACTIONS,
            &img,
        ],
    )
    .expect_code(1)
    .stderr_has("none of 1 Sigstore bundle(s) among the referrers at")
    .stderr_has(&format!("certificate identity {WORKFLOW}"))
    .stderr_has("(sealgate checks the flags as a Kyverno keyless attestor:");

    // cosign refuses --certificate for bundles: the bundle's own certificate is the one.
    let leaf = w.path("leaf.pem");
    std::fs::write(&leaf, certificate_pem(&testdata("bundle_v03.json"))).unwrap();
    run(
        &w,
        &registry,
        &[
            "verify",
            "--certificate-identity",
            WORKFLOW,
            "--certificate-oidc-issuer",
            ACTIONS,
            "--certificate",
            "leaf.pem",
            &img,
        ],
    )
    .expect_code(2)
    .stderr_has("--certificate and --certificate-chain do not apply to bundles");
}

/// The leaf of a v0.3 bundle, as PEM.
fn certificate_pem(bundle: &[u8]) -> String {
    let v: Value = serde_json::from_slice(bundle).unwrap();
    let b64 = v["verificationMaterial"]["certificate"]["rawBytes"]
        .as_str()
        .unwrap();
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn the_real_keyless_attestation_verifies_from_the_referrers_and_from_the_att_image() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest: Digest = COSIGN_IMAGE.parse().unwrap();
    let manifest = push_referrer(
        &registry,
        "v3",
        &digest,
        &testdata("oci-attestation.sigstore.json"),
    );
    let legacy = crate::attestations::push_cosign_fixture(&registry);
    let w = Workdir::new();
    let keyless = |identity: &'static str, img: &str| {
        run(
            &w,
            &registry,
            &[
                "verify-attestation",
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                GITHUB,
                img,
            ],
        )
    };
    let v3 = format!("{}@{COSIGN_IMAGE}", image(&registry, "v3"));
    for img in [&v3, &legacy] {
        let out = keyless(CODY, img);
        out.success()
            .stderr_has("  - The signatures over the DSSE envelopes were verified with their certificates' keys")
            .stderr_has("  - Existence of the claims in the transparency log was verified offline")
            .stderr_has("  - The code-signing certificate was verified using trusted certificate authority certificates")
            .stderr_has(&format!("  - Signed by keyless {CODY} (issuer {GITHUB})"))
            .stderr_has("of type https://cosign.sigstore.dev/attestation/v1");
        let envelope: Value = serde_json::from_str(out.stdout().trim()).unwrap();
        assert_eq!(envelope["payloadType"], IN_TOTO_PAYLOAD_TYPE);
        keyless("someone@example.com", img)
            .expect_code(1)
            .stderr_has(&format!("certificate identity {CODY} issued by {GITHUB} does not match subject someone@example.com"))
            .stderr_has("--certificate-identity as subject");
    }
    keyless(CODY, &v3).stderr_has(&format!(
        "  - Verified referrer(s) of the type: {}@{manifest}",
        image(&registry, "v3")
    ));
    keyless(CODY, &legacy).stderr_has(
        "  - The attestation manifest and envelopes were checked against their digests",
    );
    // Another type: the one found is named.
    run(
        &w,
        &registry,
        &[
            "verify-attestation",
            "--certificate-identity",
            CODY,
            "--certificate-oidc-issuer",
            GITHUB,
            "--type",
            "slsaprovenance",
            &legacy,
        ],
    )
    .expect_code(1)
    .stderr_has("none of the attestations matched the predicate type: https://slsa.dev/provenance/v0.2, found: https://cosign.sigstore.dev/attestation/v1");
    // Without the log proof the 2025 certificate must be valid now: refused for its validity.
    run(
        &w,
        &registry,
        &[
            "verify-attestation",
            "--certificate-identity",
            CODY,
            "--certificate-oidc-issuer",
            GITHUB,
            "--insecure-ignore-tlog",
            &legacy,
        ],
    )
    .expect_code(1)
    .stderr_has("WARNING: Skipping tlog verification")
    .stderr_has(&format!(
        "the certificate '{CODY}' was not valid at the signing time"
    ));
}

#[test]
fn verify_attestation_takes_cosigns_keyless_flag_errors_before_fetching() {
    let w = Workdir::new();
    // Nothing listens there: each error is about the flags, exit 2.
    let img = format!("127.0.0.1:9/app@{COSIGN_IMAGE}");
    let run = |flags: &[&str]| {
        let mut args = vec!["verify-attestation"];
        args.extend_from_slice(flags);
        args.push(&img);
        w.run("", &args)
    };
    run(&[])
        .expect_code(2)
        .stderr_has("--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode");
    run(&["--certificate-identity", CODY])
        .expect_code(2)
        .stderr_has("--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for verification in keyless mode");
    std::fs::write(w.path("cosign.pub"), "not read").unwrap();
    run(&["--key", "cosign.pub", "--certificate-identity", CODY])
        .expect_code(2)
        .stderr_has("exactly one of: key reference (--key) or certificate identity");
    run(&[
        "--certificate-identity-regexp",
        "(unclosed",
        "--certificate-oidc-issuer",
        GITHUB,
    ])
    .expect_code(2)
    .stderr_has("--certificate-identity-regexp: not a valid regular expression");
    run(&[
        "--certificate-identity",
        CODY,
        "--certificate-oidc-issuer",
        GITHUB,
        "--type",
        "provenance",
    ])
    .expect_code(2)
    .stderr_has("invalid predicate type: provenance");
}
