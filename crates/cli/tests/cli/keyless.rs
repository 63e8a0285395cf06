//! Keyless attestors end to end: the real keyless `.sig` of connaisseur's test image (a Fulcio
//! certificate for `philipp.belitz@securesystems.de` issued through GitHub, its chain, Rekor
//! bundle and embedded SCT) pushed to the test registry under the digest it signs, and
//! `sealgate apply` checking a Pod that references the image by that digest against keyless
//! policies, offline: the chain, SET and SCT against the embedded public-good trusted root.

use std::path::Path;

use crate::common::Workdir;
use sealgate_core::cosign::ImageManifest;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

/// The digest the connaisseur payload signs (`critical.image.docker-manifest-digest`).
const DIGEST: &str = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";

/// A TLS registry with authentication holding the connaisseur `.sig` for [`DIGEST`] in
/// `phbelitz/rekor-test`. The image manifest itself is not needed: the Pod names the digest, so
/// nothing is resolved, and the signature payload is only checked against that digest.
fn registry_with_the_signature() -> TestRegistry {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/testdata/connaisseur");
    let manifest_bytes = std::fs::read(fixtures.join("sig-manifest.json")).unwrap();
    let payload = std::fs::read(fixtures.join("payload.json")).unwrap();
    let manifest = ImageManifest::parse(&manifest_bytes).unwrap();
    // The fixture lacks the config blob; cosign's is reproducible from the layers.
    let (_, config) = sealgate_core::cosign::signature_image(&manifest.layers);
    let digest: sealgate_core::Digest = DIGEST.parse().unwrap();
    let repo = registry.image_ref("phbelitz/rekor-test:x");
    let client = registry.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        client.push_blob(&repo, &payload).await.unwrap();
        assert_eq!(
            client.push_blob(&repo, &config).await.unwrap(),
            manifest.config.digest
        );
        client
            .put_manifest(
                &repo,
                &digest.signature_tag(),
                "application/vnd.oci.image.manifest.v1+json",
                &manifest_bytes,
            )
            .await
            .unwrap();
    });
    registry
}

/// A ClusterPolicy whose one attestor is the `keyless` block `keyless` (YAML lines indented for
/// the entry).
fn policy(keyless: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: keyless\nspec:\n  validationFailureAction: Enforce\n  rules:\n    - name: verify-keyless\n      match:\n        any:\n        - resources:\n            kinds: [Pod]\n      verifyImages:\n      - imageReferences: [\"*\"]\n        mutateDigest: false\n        attestors:\n        - entries:\n          - keyless:\n{keyless}"
    )
}

fn workdir(registry: &TestRegistry) -> Workdir {
    let w = Workdir::new();
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: rekor-test, namespace: default}}\nspec:\n  containers:\n  - name: app\n    image: {}/phbelitz/rekor-test@{DIGEST}\n",
        registry.host()
    );
    std::fs::write(w.path("pod.yaml"), pod).unwrap();
    let write = |name: &str, keyless: &str| std::fs::write(w.path(name), policy(keyless)).unwrap();
    write(
        "right.yaml",
        "              subject: philipp.belitz@securesystems.de\n              issuer: https://github.com/login/oauth\n              rekor:\n                url: https://rekor.sigstore.dev\n",
    );
    write(
        "regexp.yaml",
        "              subjectRegExp: '@securesystems\\.de$'\n              issuerRegExp: '^https://github\\.com/'\n              rekor:\n                url: https://rekor.sigstore.dev\n              ctlog:\n                ignoreSCT: false\n",
    );
    write(
        "wrong.yaml",
        "              subject: '*@example.com'\n              issuer: https://accounts.google.com\n              rekor:\n                url: https://rekor.sigstore.dev\n",
    );
    write(
        "workflow.yaml",
        "              subject: philipp.belitz@securesystems.de\n              issuer: https://github.com/login/oauth\n              additionalExtensions:\n                githubWorkflowRepository: sse-secure-systems/connaisseur\n              rekor:\n                url: https://rekor.sigstore.dev\n",
    );
    w
}

#[test]
fn apply_verifies_the_real_keyless_signature_and_names_the_identity_it_refuses() {
    let registry = registry_with_the_signature();
    let w = workdir(&registry);
    for good in ["right.yaml", "regexp.yaml"] {
        let ok = w.run_on(&registry, "", &["apply", good, "--resource", "pod.yaml"]);
        ok.success();
        assert!(ok.stdout().contains("pass"), "{good}: {}", ok.stdout());
        assert!(
            !ok.stderr().contains("not supported"),
            "{good}: {}",
            ok.stderr()
        );
    }
    let json = w.run_on(
        &registry,
        "",
        &[
            "apply",
            "right.yaml",
            "--resource",
            "pod.yaml",
            "-o",
            "json",
        ],
    );
    json.success();
    assert!(
        json.stdout().contains(
            "keyless philipp.belitz@securesystems.de (issuer https://github.com/login/oauth)"
        ),
        "{}",
        json.stdout()
    );

    let bad = w.run_on(
        &registry,
        "",
        &["apply", "wrong.yaml", "--resource", "pod.yaml"],
    );
    bad.expect_code(1);
    assert!(
        bad.stdout().contains("certificate identity philipp.belitz@securesystems.de issued by https://github.com/login/oauth does not match subject *@example.com, issuer https://accounts.google.com"),
        "{}",
        bad.stdout()
    );
    let workflow = w.run_on(
        &registry,
        "",
        &["apply", "workflow.yaml", "--resource", "pod.yaml"],
    );
    workflow.expect_code(1);
    assert!(
        workflow.stdout().contains(
            "lacks the extension githubWorkflowRepository (1.3.6.1.4.1.57264.1.5) that additionalExtensions requires as 'sse-secure-systems/connaisseur'"
        ),
        "{}",
        workflow.stdout()
    );
}

#[test]
fn lint_has_nothing_to_say_about_a_checked_keyless_attestor() {
    let w = Workdir::new();
    std::fs::write(
        w.path("p.yaml"),
        policy(
            "              subject: https://github.com/org/*\n              issuer: https://token.actions.githubusercontent.com\n              rekor:\n                url: https://rekor.sigstore.dev\n",
        ),
    )
    .unwrap();
    let out = w.run("", &["lint", "p.yaml"]);
    out.success();
    let all = format!("{}{}", out.stdout(), out.stderr());
    assert!(!all.contains("keyless"), "{all}");
}

/// A `--trusted-root` without Fulcio's CAs (a private Sigstore's) refuses the public-good
/// certificate, and says it found no CA to chain to; its CT and Rekor keys are its own too.
#[test]
fn a_private_trusted_root_does_not_vouch_for_a_public_good_certificate() {
    let registry = registry_with_the_signature();
    let w = workdir(&registry);
    let public_good: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../core/trust/public-good-trusted-root.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut private = public_good.clone();
    private["certificateAuthorities"] = serde_json::json!([]);
    std::fs::write(w.path("private.json"), private.to_string()).unwrap();
    std::fs::write(w.path("public.json"), public_good.to_string()).unwrap();
    let ok = w.run_on(
        &registry,
        "",
        &[
            "apply",
            "right.yaml",
            "--resource",
            "pod.yaml",
            "--trusted-root",
            "public.json",
        ],
    );
    ok.success();
    let bad = w.run_on(
        &registry,
        "",
        &[
            "apply",
            "right.yaml",
            "--resource",
            "pod.yaml",
            "--trusted-root",
            "private.json",
        ],
    );
    bad.expect_code(1);
    assert!(
        bad.stdout().contains("does not chain to a Fulcio CA of the trusted root (none of its 0 was valid at the signing time)"),
        "{}",
        bad.stdout()
    );
}
