//! `sealgate verify` with cosign's keyless flags, end to end: the real keyless `.sig` of
//! connaisseur's test image (a Fulcio certificate for `philipp.belitz@securesystems.de` issued
//! through GitHub, its chain, Rekor bundle and embedded SCT) pushed to the test registry under the
//! digest it signs, as tests/cli/keyless.rs pushes it, plus copies without its bundle or its
//! certificate; and a throw-away Fulcio-like CA made with openssl, for what the public-good
//! signature cannot show (a certificate valid now, without Rekor or SCT).

use std::path::Path;
use std::process::Command;

use crate::common::Workdir;
use sealgate_core::cosign::ImageManifest;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

/// The digest the connaisseur payload signs.
const DIGEST: &str = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
const EMAIL: &str = "philipp.belitz@securesystems.de";
const GITHUB: &str = "https://github.com/login/oauth";

const BUNDLE: &str = "dev.sigstore.cosign/bundle";
const CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
const CHAIN: &str = "dev.sigstore.cosign/chain";

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/testdata/connaisseur")
}

/// The connaisseur `.sig` manifest as JSON.
fn manifest() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("sig-manifest.json")).unwrap()).unwrap()
}

/// The annotation `key` of the fixture's one layer.
fn annotation(key: &str) -> String {
    manifest()["layers"][0]["annotations"][key]
        .as_str()
        .unwrap()
        .to_string()
}

/// Pushes the connaisseur payload, its config and `manifest` (the fixture's, or a copy with an
/// annotation removed) as the `.sig` of [`DIGEST`] in `repo`.
fn push_signature(registry: &TestRegistry, repo: &str, manifest: &serde_json::Value) {
    let payload = std::fs::read(fixtures().join("payload.json")).unwrap();
    let manifest_bytes = serde_json::to_vec(manifest).unwrap();
    let parsed = ImageManifest::parse(&manifest_bytes).unwrap();
    let (_, config) = sealgate_core::cosign::signature_image(&parsed.layers);
    let digest: sealgate_core::Digest = DIGEST.parse().unwrap();
    let repo = registry.image_ref(&format!("{repo}:x"));
    let client = registry.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        client.push_blob(&repo, &payload).await.unwrap();
        assert_eq!(
            client.push_blob(&repo, &config).await.unwrap(),
            parsed.config.digest
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
}

/// The fixture's manifest without the layer annotation `key`.
fn without(key: &str) -> serde_json::Value {
    let mut m = manifest();
    m["layers"][0]["annotations"]
        .as_object_mut()
        .unwrap()
        .remove(key)
        .unwrap();
    m
}

/// A TLS registry with authentication holding the signature as signed (`phbelitz/rekor-test`),
/// without its Rekor bundle (`nobundle/rekor-test`) and without its certificate
/// (`nocert/rekor-test`).
fn registry() -> TestRegistry {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    push_signature(&registry, "phbelitz/rekor-test", &manifest());
    push_signature(&registry, "nobundle/rekor-test", &without(BUNDLE));
    push_signature(&registry, "nocert/rekor-test", &without(CERTIFICATE));
    registry
}

fn image(registry: &TestRegistry, repo: &str) -> String {
    format!("{}/{repo}@{DIGEST}", registry.host())
}

/// `verify` with `flags`, then `image`, then the registry's flags.
fn verify(w: &Workdir, registry: &TestRegistry, flags: &[&str], image: &str) -> crate::common::Run {
    let mut args = vec!["verify"];
    args.extend_from_slice(flags);
    args.push(image);
    w.run_on(registry, "", &args)
}

#[test]
fn verify_passes_with_cosigns_identity_flags_and_prints_cosigns_lines() {
    let registry = registry();
    let w = Workdir::new();
    let img = image(&registry, "phbelitz/rekor-test");
    let ok = verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            GITHUB,
        ],
        &img,
    );
    ok.success()
        .stderr_has(&format!("\nVerification for {img} --\n"))
        .stderr_has(
            "The following checks were performed on each of these signatures:\n  - The cosign claims were validated\n  - Existence of the claims in the transparency log was verified offline\n  - The code-signing certificate was verified using trusted certificate authority certificates\n",
        )
        .stdout_has(&format!("Verified {img} ({DIGEST})"))
        .stdout_has(&format!(
            "1 of 1 signature(s) at {}/phbelitz/rekor-test:sha256-",
            registry.host()
        ))
        .stdout_has(&format!("verified: keyless {EMAIL} (issuer {GITHUB})"))
        .stdout_has("the embedded SCT");
    assert!(!ok.stderr().contains("public key"), "{}", ok.stderr());
    assert!(!ok.stderr().contains("WARNING"), "{}", ok.stderr());

    // The regexp forms (RE2, unanchored), alone and mixed with the exact ones; --offline is
    // accepted (sealgate never goes online).
    for flags in [
        &[
            "--certificate-identity-regexp",
            r"@securesystems\.de$",
            "--certificate-oidc-issuer-regexp",
            r"^https://github\.com/",
        ][..],
        &[
            "--certificate-identity-regexp",
            "belitz",
            "--certificate-oidc-issuer",
            GITHUB,
            "--offline",
        ],
        &[
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer-regexp",
            "github",
            "--offline=true",
        ],
    ] {
        verify(&w, &registry, flags, &img).success();
    }
    // cosign's issuer regexp overrides the exact issuer, and sealgate says so.
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            "https://accounts.google.com",
            "--certificate-oidc-issuer-regexp",
            "github",
        ],
        &img,
    )
    .success()
    .stderr_has("--certificate-oidc-issuer is not used when --certificate-oidc-issuer-regexp is given (as in cosign)");
}

#[test]
fn a_wrong_identity_fails_naming_the_identity_found_and_the_one_wanted() {
    let registry = registry();
    let w = Workdir::new();
    let img = image(&registry, "phbelitz/rekor-test");
    let hint = "(sealgate checks the flags as a Kyverno keyless attestor: --certificate-identity as subject, --certificate-oidc-issuer as issuer;";
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            "someone@example.com",
            "--certificate-oidc-issuer",
            GITHUB,
        ],
        &img,
    )
    .expect_code(1)
    .stderr_has(&format!("verification failed for {img} ({DIGEST}): none of 1 signature(s) at"))
    .stderr_has(&format!(
        "certificate identity {EMAIL} issued by {GITHUB} does not match subject someone@example.com, issuer {GITHUB}"
    ))
    .stderr_has(hint);
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            "https://token.actions.githubusercontent.com",
        ],
        &img,
    )
    .expect_code(1)
    .stderr_has(&format!(
        "certificate identity {EMAIL} issued by {GITHUB} does not match subject {EMAIL}, issuer https://token.actions.githubusercontent.com"
    ));
    // cosign compares --certificate-identity exactly: '*' is no wildcard there.
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            "*@securesystems.de",
            "--certificate-oidc-issuer",
            GITHUB,
        ],
        &img,
    )
    .expect_code(1)
    .stderr_has(r"does not match subjectRegExp ^\*@securesystems\.de$")
    .stderr_has(
        "--certificate-identity as subjectRegExp (escaped and anchored: cosign compares exactly)",
    );
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity-regexp",
            "^someone@",
            "--certificate-oidc-issuer",
            GITHUB,
        ],
        &img,
    )
    .expect_code(1)
    .stderr_has("does not match subjectRegExp ^someone@, issuer");
    // The GitHub workflow flags are Fulcio extensions this e-mail certificate lacks.
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            GITHUB,
            "--certificate-github-workflow-repository",
            "sse-secure-systems/connaisseur",
        ],
        &img,
    )
    .expect_code(1)
    .stderr_has("lacks the extension githubWorkflowRepository (1.3.6.1.4.1.57264.1.5) that additionalExtensions requires as 'sse-secure-systems/connaisseur'")
    .stderr_has("--certificate-github-workflow-repository as additionalExtensions.githubWorkflowRepository");
}

#[test]
fn cosigns_flag_errors_come_before_anything_is_fetched() {
    let w = Workdir::new();
    // No registry runs at this address: each error is about the flags, exit code 2.
    let img = format!("127.0.0.1:9/phbelitz/rekor-test@{DIGEST}");
    let run = |flags: &[&str]| {
        let mut args = vec!["verify"];
        args.extend_from_slice(flags);
        args.push(&img);
        w.run("", &args)
    };
    run(&["--certificate-identity", EMAIL])
        .expect_code(2)
        .stderr_has("--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for verification in keyless mode");
    run(&["--certificate-oidc-issuer", GITHUB])
        .expect_code(2)
        .stderr_has("--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode");
    run(&[])
        .expect_code(2)
        .stderr_has("--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode");
    run(&[
        "--certificate-identity",
        EMAIL,
        "--certificate-identity-regexp",
        "x",
        "--certificate-oidc-issuer",
        GITHUB,
    ])
    .expect_code(2)
    .stderr_has("exactly one of: key reference (--key) or certificate identity (--certificate-identity or --certificate-identity-regexp), must be provided");
    std::fs::write(w.path("cosign.pub"), "not read").unwrap();
    run(&["--key", "cosign.pub", "--certificate-identity", EMAIL])
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
        EMAIL,
        "--certificate-oidc-issuer",
        GITHUB,
        "--certificate-github-workflow-ref",
        "refs/heads/*",
    ])
    .expect_code(2)
    .stderr_has(
        "--certificate-github-workflow-ref refs/heads/*: cosign compares this value exactly",
    );
    run(&[
        "--certificate-identity",
        EMAIL,
        "--certificate-oidc-issuer",
        GITHUB,
        "--certificate",
        "missing.pem",
    ])
    .expect_code(2)
    .stderr_has("--certificate: reading missing.pem");
    run(&[
        "--certificate-identity",
        EMAIL,
        "--certificate-oidc-issuer",
        GITHUB,
        "--certificate-chain",
        "cosign.pub",
    ])
    .expect_code(2)
    .stderr_has("--certificate-chain cosign.pub: give PEM certificates");
}

#[test]
fn json_output_has_cosigns_shape() {
    let registry = registry();
    let w = Workdir::new();
    let img = image(&registry, "phbelitz/rekor-test");
    let out = verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            GITHUB,
            "-o",
            "json",
        ],
        &img,
    );
    out.success()
        .stderr_has(&format!("Verification for {img} --"));
    // cosign prints a blank line, then the array.
    assert!(out.stdout().starts_with("\n["), "{:?}", out.stdout());
    let entries: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(
        e["critical"]["identity"]["docker-reference"],
        "index.docker.io/phbelitz/rekor-test"
    );
    assert_eq!(e["critical"]["image"]["docker-manifest-digest"], DIGEST);
    assert_eq!(e["critical"]["type"], "cosign container image signature");
    let optional = e["optional"].as_object().unwrap();
    // Go marshals the map with its keys sorted.
    let keys: Vec<&str> = optional.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["1.3.6.1.4.1.57264.1.1", "Bundle", "Issuer", "Subject"]
    );
    assert_eq!(optional["Subject"], EMAIL);
    assert_eq!(optional["Issuer"], GITHUB);
    assert_eq!(optional["1.3.6.1.4.1.57264.1.1"], GITHUB);
    let bundle: serde_json::Value = serde_json::from_str(&annotation(BUNDLE)).unwrap();
    assert_eq!(
        optional["Bundle"]["SignedEntryTimestamp"],
        bundle["SignedEntryTimestamp"]
    );
    for field in ["body", "integratedTime", "logIndex", "logID"] {
        assert_eq!(
            optional["Bundle"]["Payload"][field], bundle["Payload"][field],
            "{field}"
        );
    }
    // In cosign's RekorBundle field order.
    let payload_keys: Vec<&str> = optional["Bundle"]["Payload"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        payload_keys,
        ["body", "integratedTime", "logIndex", "logID"]
    );
    assert_eq!(
        out.stdout().trim(),
        format!(
            "[{{\"critical\":{{\"identity\":{{\"docker-reference\":\"index.docker.io/phbelitz/rekor-test\"}},\"image\":{{\"docker-manifest-digest\":\"{DIGEST}\"}},\"type\":\"cosign container image signature\"}},\"optional\":{{\"1.3.6.1.4.1.57264.1.1\":\"{GITHUB}\",\"Bundle\":{},\"Issuer\":\"{GITHUB}\",\"Subject\":\"{EMAIL}\"}}}}]",
            optional["Bundle"]
        )
    );
}

#[test]
fn insecure_ignore_tlog_drops_the_rekor_requirement_and_warns_as_cosign() {
    let registry = registry();
    let w = Workdir::new();
    let img = image(&registry, "nobundle/rekor-test");
    let flags = [
        "--certificate-identity",
        EMAIL,
        "--certificate-oidc-issuer",
        GITHUB,
    ];
    let without_log = verify(&w, &registry, &flags, &img);
    without_log
        .expect_code(1)
        .stderr_has("the transparency-log proof is missing: the signature carries no Rekor bundle")
        .stderr_has("rekor.ignoreTlog is --insecure-ignore-tlog");
    assert!(!without_log.stderr().contains("WARNING"));
    // With the flag, nothing proves when the 2022 certificate signed, so it must be valid now,
    // as cosign checks it: the refusal moves from the log to the certificate's validity.
    let mut ignoring = flags.to_vec();
    ignoring.push("--insecure-ignore-tlog");
    let out = verify(&w, &registry, &ignoring, &img);
    out.expect_code(1)
        .stderr_has("WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.")
        .stderr_has(&format!("the certificate '{EMAIL}' was not valid at the signing time"));
    assert!(
        !out.stderr().contains("transparency-log proof"),
        "{}",
        out.stderr()
    );
}

#[test]
fn a_trusted_root_without_fulcios_cas_refuses_the_certificate() {
    let registry = registry();
    let w = Workdir::new();
    let img = image(&registry, "phbelitz/rekor-test");
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
    let flags = |root: &'static str| {
        [
            "--certificate-identity",
            EMAIL,
            "--certificate-oidc-issuer",
            GITHUB,
            "--trusted-root",
            root,
        ]
    };
    verify(&w, &registry, &flags("public.json"), &img).success();
    verify(&w, &registry, &flags("private.json"), &img)
        .expect_code(1)
        .stderr_has("does not chain to a Fulcio CA of the trusted root (none of its 0 was valid at the signing time)");
    std::fs::write(w.path("broken.json"), "not json").unwrap();
    verify(&w, &registry, &flags("broken.json"), &img)
        .expect_code(2)
        .stderr_has("broken.json is not a Sigstore trusted root");
}

#[test]
fn certificate_and_certificate_chain_stand_in_for_what_the_signature_carries() {
    let registry = registry();
    let w = Workdir::new();
    std::fs::write(w.path("leaf.pem"), annotation(CERTIFICATE)).unwrap();
    std::fs::write(w.path("chain.pem"), annotation(CHAIN)).unwrap();
    let identity = [
        "--certificate-identity",
        EMAIL,
        "--certificate-oidc-issuer",
        GITHUB,
    ];
    let with = |extra: &[&'static str]| {
        let mut flags = identity.to_vec();
        flags.extend_from_slice(extra);
        flags
    };
    let nocert = image(&registry, "nocert/rekor-test");
    verify(&w, &registry, &identity, &nocert)
        .expect_code(1)
        .stderr_has("it carries no certificate");
    // --certificate: the signature is checked with that certificate, which is checked against
    // the Fulcio CAs; cosign then says the signatures were checked with the "public key".
    let ok = verify(
        &w,
        &registry,
        &with(&["--certificate", "leaf.pem"]),
        &nocert,
    );
    ok.success()
        .stderr_has("  - The signatures were verified against the specified public key\n")
        .stdout_has("with --certificate's key");
    assert!(
        !ok.stderr().contains("trusted certificate authority"),
        "{}",
        ok.stderr()
    );
    // --certificate-chain: its root replaces the trusted root's Fulcio CAs.
    verify(
        &w,
        &registry,
        &with(&[
            "--certificate",
            "leaf.pem",
            "--certificate-chain",
            "chain.pem",
        ]),
        &nocert,
    )
    .success()
    .stdout_has("the chain to --certificate-chain's root");
    verify(
        &w,
        &registry,
        &with(&["--certificate-chain", "chain.pem"]),
        &image(&registry, "phbelitz/rekor-test"),
    )
    .success();
    // Another certificate: the signature does not verify with its key.
    let chain = sealgate_core::crypto::cert::parse_pem_certificates(&annotation(CHAIN)).unwrap();
    std::fs::write(w.path("intermediate.pem"), chain[0].pem()).unwrap();
    verify(
        &w,
        &registry,
        &with(&["--certificate", "intermediate.pem"]),
        &nocert,
    )
    .expect_code(1)
    .stderr_has("does not verify with the certificate's key");
    // Another root: the certificate does not chain to it.
    let pki = FulcioLikePki::generate(&w, "other");
    verify(
        &w,
        &registry,
        &with(&["--certificate-chain", pki.ca_path]),
        &image(&registry, "phbelitz/rekor-test"),
    )
    .expect_code(1)
    .stderr_has("does not chain to the policy's roots (1 certificate(s))")
    .stderr_has("the last certificate of --certificate-chain as the policy's roots");
    // --key and --certificate do not go together.
    std::fs::write(w.path("cosign.pub"), "x").unwrap();
    verify(
        &w,
        &registry,
        &["--key", "cosign.pub", "--certificate", "leaf.pem"],
        &nocert,
    )
    .expect_code(2)
    .stderr_has("cannot be used with");
}

/// A Fulcio-like CA made with openssl and a code-signing leaf valid now for `dev@example.com`,
/// issuer `https://issuer.example` (in .1.1 and .1.8) and workflow repository `org/app`, without
/// SCT; the files in the work directory.
struct FulcioLikePki {
    ca_path: &'static str,
    leaf_path: &'static str,
    key_path: &'static str,
}

impl FulcioLikePki {
    fn generate(w: &Workdir, name: &str) -> FulcioLikePki {
        let paths: &'static [&'static str; 3] = match name {
            "other" => &["other-ca.pem", "other-leaf.pem", "other-leaf.key"],
            _ => &["ca.pem", "leaf.pem", "leaf.key"],
        };
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        std::fs::write(
            w.path(&format!("{name}-ext.cnf")),
            format!(
                "subjectAltName=email:dev@example.com\nextendedKeyUsage=codeSigning\nkeyUsage=critical,digitalSignature\n1.3.6.1.4.1.57264.1.1=DER:{}\n1.3.6.1.4.1.57264.1.8=ASN1:UTF8String:https://issuer.example\n1.3.6.1.4.1.57264.1.5=DER:{}\n",
                hex("https://issuer.example"),
                hex("org/app")
            ),
        )
        .unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(w.dir.path())
                .output()
                .expect("openssl is installed (.ci/run installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ca_key = format!("{name}-ca.key");
        let csr = format!("{name}-leaf.csr");
        let ext = format!("{name}-ext.cnf");
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            paths[0],
            "-days",
            "2",
            "-subj",
            "/O=sealgate test/CN=test fulcio root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            paths[2],
            "-out",
            &csr,
            "-subj",
            "/O=sealgate test",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            paths[0],
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            paths[1],
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
        FulcioLikePki {
            ca_path: paths[0],
            leaf_path: paths[1],
            key_path: paths[2],
        }
    }
}

/// A certificate valid now, from a private CA given as --certificate-chain: with
/// --insecure-ignore-tlog and --insecure-ignore-sct (it has neither a Rekor entry nor an SCT)
/// the signature verifies, and without either flag it is refused for what it lacks.
#[test]
fn a_private_ca_signature_verifies_without_rekor_or_sct_when_told_to() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let w = Workdir::new();
    let pki = FulcioLikePki::generate(&w, "dev");
    let digest = registry.push_image("app", "v1");
    let app = format!("{}/app:v1", registry.host());
    w.run_on(
        &registry,
        "",
        &[
            "sign",
            "--key",
            pki.key_path,
            "--cert",
            pki.leaf_path,
            "--cert-chain",
            pki.ca_path,
            &app,
        ],
    )
    .success();
    let identity = [
        "--certificate-identity",
        "dev@example.com",
        "--certificate-oidc-issuer",
        "https://issuer.example",
        "--certificate-chain",
        pki.ca_path,
    ];
    let with = |extra: &[&'static str]| {
        let mut flags = identity.to_vec();
        flags.extend_from_slice(extra);
        flags
    };
    let ok = verify(
        &w,
        &registry,
        &with(&[
            "--insecure-ignore-tlog",
            "--insecure-ignore-sct",
            "--certificate-github-workflow-repository",
            "org/app",
            "-o",
            "json",
        ]),
        &app,
    );
    ok.success()
        .stderr_has("WARNING: Skipping tlog verification")
        .stderr_has(&format!("Verification for {app} --"));
    assert!(
        !ok.stderr().contains("transparency log was verified"),
        "{}",
        ok.stderr()
    );
    let entries: serde_json::Value = serde_json::from_str(ok.stdout().trim()).unwrap();
    let optional = &entries[0]["optional"];
    assert_eq!(
        entries[0]["critical"]["image"]["docker-manifest-digest"],
        digest.to_string()
    );
    assert_eq!(optional["Subject"], "dev@example.com");
    assert_eq!(optional["Issuer"], "https://issuer.example");
    assert_eq!(optional["githubWorkflowRepository"], "org/app");
    assert_eq!(optional["1.3.6.1.4.1.57264.1.5"], "org/app");
    assert!(optional.get("Bundle").is_none(), "{optional}");

    verify(&w, &registry, &with(&["--insecure-ignore-sct"]), &app)
        .expect_code(1)
        .stderr_has("the transparency-log proof is missing");
    verify(&w, &registry, &with(&["--insecure-ignore-tlog"]), &app)
        .expect_code(1)
        .stderr_has("the certificate carries no embedded SCT");
    // Without the chain, the public-good Fulcio CAs do not vouch for it.
    verify(
        &w,
        &registry,
        &[
            "--certificate-identity",
            "dev@example.com",
            "--certificate-oidc-issuer",
            "https://issuer.example",
            "--insecure-ignore-tlog",
            "--insecure-ignore-sct",
        ],
        &app,
    )
    .expect_code(1)
    .stderr_has("does not chain to the Fulcio CAs of the trusted root");
}
