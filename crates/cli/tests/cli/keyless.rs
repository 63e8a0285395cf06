//! Keyless attestors end to end: the real keyless `.sig` of connaisseur's test image (a Fulcio
//! certificate for `philipp.belitz@securesystems.de` issued through GitHub, its chain, Rekor
//! bundle and embedded SCT) pushed to the test registry under the digest it signs, and
//! `sealgate apply` checking a Pod that references the image by that digest against keyless
//! policies, offline: the chain, SET and SCT against the embedded public-good trusted root.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use crate::common::Workdir;
use sealgate_core::cosign::ImageManifest;
use sealgate_oracle::{KeylessTrust, RegistryAccess};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

/// The digest the connaisseur payload signs (`critical.image.docker-manifest-digest`).
const DIGEST: &str = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";

/// The connaisseur fixture: the `.sig` manifest, the payload blob and the config blob cosign
/// would have written (the fixture lacks it; it is reproducible from the layers).
fn fixture() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/testdata/connaisseur");
    let manifest_bytes = std::fs::read(fixtures.join("sig-manifest.json")).unwrap();
    let payload = std::fs::read(fixtures.join("payload.json")).unwrap();
    let manifest = ImageManifest::parse(&manifest_bytes).unwrap();
    let (_, config) = sealgate_core::cosign::signature_image(&manifest.layers);
    (manifest_bytes, payload, config)
}

/// A TLS registry with authentication holding the connaisseur `.sig` for [`DIGEST`] in
/// `phbelitz/rekor-test`. The image manifest itself is not needed: the Pod names the digest, so
/// nothing is resolved, and the signature payload is only checked against that digest.
fn registry_with_the_signature() -> TestRegistry {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let (manifest_bytes, payload, config) = fixture();
    let manifest = ImageManifest::parse(&manifest_bytes).unwrap();
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

/// A plain-HTTP registry of one repository, `phbelitz/rekor-test`, that answers only what
/// sigstore-rs asks about the connaisseur signature: sigstore-rs resolves even a digest
/// reference with a `HEAD` of the image manifest, which the fixture does not have (and no
/// manifest can be made to hash to the signed digest), so this answers that `HEAD` with the
/// digest and serves the `.sig` manifest and its blobs; everything else is a 404.
fn shim_registry() -> SocketAddr {
    let (manifest, payload, config) = fixture();
    let sha256 = |b: &[u8]| sealgate_core::Digest::sha256_of(b).to_string();
    let mut routes: BTreeMap<String, (Vec<u8>, String, &'static str)> = BTreeMap::new();
    let repo = "/v2/phbelitz/rekor-test";
    let sig_tag = DIGEST.replace(':', "-") + ".sig";
    routes.insert(
        format!("{repo}/manifests/{DIGEST}"),
        (
            Vec::new(),
            DIGEST.to_string(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
    );
    routes.insert(
        format!("{repo}/manifests/{sig_tag}"),
        (
            manifest.clone(),
            sha256(&manifest),
            "application/vnd.oci.image.manifest.v1+json",
        ),
    );
    for blob in [payload, config] {
        let d = sha256(&blob);
        routes.insert(
            format!("{repo}/blobs/{d}"),
            (blob, d, "application/octet-stream"),
        );
    }
    routes.insert(
        "/v2/".to_string(),
        (b"{}".to_vec(), String::new(), "application/json"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            // The rest of the head; these requests have no body.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut parts = first.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let path = target.split('?').next().unwrap_or("");
            let (status, body, digest, media_type) = match routes.get(path) {
                Some((body, digest, media_type)) => {
                    ("200 OK", body.clone(), digest.clone(), *media_type)
                }
                None => (
                    "404 Not Found",
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}"#.to_vec(),
                    String::new(),
                    "application/json",
                ),
            };
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            if !digest.is_empty() {
                head.push_str(&format!("Docker-Content-Digest: {digest}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
    });
    addr
}

/// The Fulcio CAs and Rekor keys of a trusted root, as sigstore-rs takes them.
fn oracle_trust(root: &serde_json::Value) -> KeylessTrust {
    use base64::Engine;
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let mut trust = KeylessTrust::default();
    for ca in root["certificateAuthorities"].as_array().unwrap() {
        for cert in ca["certChain"]["certificates"].as_array().unwrap() {
            trust.fulcio_certs.push(b64(&cert["rawBytes"]));
        }
    }
    for log in root["tlogs"].as_array().unwrap() {
        let key = b64(&log["publicKey"]["rawBytes"]);
        let id = sealgate_core::Digest::sha256_of(&key).to_string();
        trust
            .rekor_keys
            .insert(id.trim_start_matches("sha256:").to_string(), key);
    }
    trust
}

/// sigstore-rs (an implementation sealgate shares no code with) and `sealgate apply` reach the
/// same verdict on the connaisseur signature for the right identity, a wrong e-mail, a wrong
/// issuer, and a trust root without Fulcio's CAs.
#[test]
fn sigstore_rs_agrees_on_the_keyless_verdicts() {
    let registry = registry_with_the_signature();
    let w = workdir(&registry);
    let shim = shim_registry();
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
    std::fs::write(w.path("public.json"), public_good.to_string()).unwrap();
    std::fs::write(w.path("private.json"), private.to_string()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let access = RegistryAccess {
        plain_http: true,
        ..RegistryAccess::default()
    };
    let image = format!("{shim}/phbelitz/rekor-test@{DIGEST}");
    let email = "philipp.belitz@securesystems.de";
    let github = "https://github.com/login/oauth";
    let cases = [
        (email, github, "public.json", true),
        ("someone@securesystems.de", github, "public.json", false),
        (email, "https://accounts.google.com", "public.json", false),
        (email, github, "private.json", false),
    ];
    for (i, (subject, issuer, root, expected)) in cases.into_iter().enumerate() {
        let root_json = if root == "public.json" {
            &public_good
        } else {
            &private
        };
        let theirs = rt
            .block_on(sealgate_oracle::verify_keyless(
                &image,
                subject,
                issuer,
                &oracle_trust(root_json),
                &access,
            ))
            .unwrap();
        assert_eq!(theirs.layers, 1, "case {i}: {theirs:?}");
        // sigstore-rs trusts the certificate (Fulcio chain, validity at the Rekor time) exactly
        // when Fulcio's CAs are given: its refusals below are about the identity or the CA.
        assert_eq!(
            theirs.with_trusted_certificate,
            usize::from(root == "public.json"),
            "case {i}: {theirs:?}"
        );
        assert_eq!(
            theirs.verified, expected,
            "case {i}: sigstore-rs {theirs:?}"
        );
        let name = format!("case{i}.yaml");
        std::fs::write(
            w.path(&name),
            policy(&format!(
                "              subject: {subject}\n              issuer: {issuer}\n              rekor:\n                url: https://rekor.sigstore.dev\n"
            )),
        )
        .unwrap();
        let ours = w.run_on(
            &registry,
            "",
            &[
                "apply",
                &name,
                "--resource",
                "pod.yaml",
                "--trusted-root",
                root,
            ],
        );
        assert_eq!(
            ours.code(),
            if expected { 0 } else { 1 },
            "case {i}: sealgate {}{}",
            ours.stdout(),
            ours.stderr()
        );
    }
}
