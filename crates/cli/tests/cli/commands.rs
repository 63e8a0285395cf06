//! End-to-end tests of the `sealgate` binary against real registries (Debian's docker-registry,
//! started per test on a loopback port by `sealgate-test-registry`), driving the binary as a user
//! would and asserting exit codes and messages.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::common::{Run, Workdir, image, signature_layers};
use sealgate_core::cosign::ImageManifest;
use sealgate_test_registry::{CodeSigningPki, TestRegistry, TestRegistryConfig};

const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};
const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn generate_key_pair_writes_cosign_files_and_never_overwrites_without_force() {
    let w = Workdir::new();
    w.run("", &["generate-key-pair"])
        .success()
        .stderr_has("Private key written to cosign.key");
    let key = std::fs::read_to_string(w.path("cosign.key")).unwrap();
    let public = std::fs::read_to_string(w.path("cosign.pub")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert_eq!(mode(&w.path("cosign.key")), 0o600);
    assert_eq!(mode(&w.path("cosign.pub")), 0o644);

    w.run("", &["generate-key-pair"])
        .expect_code(2)
        .stderr_has("cosign.key already exists; pass --force");
    assert_eq!(
        std::fs::read_to_string(w.path("cosign.key")).unwrap(),
        key,
        "not overwritten"
    );

    std::fs::set_permissions(w.path("cosign.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    w.run("", &["generate-key-pair", "--force"]).success();
    assert_ne!(
        std::fs::read_to_string(w.path("cosign.key")).unwrap(),
        key,
        "overwritten with --force"
    );
    assert_eq!(
        mode(&w.path("cosign.key")),
        0o600,
        "mode reset on overwrite"
    );

    // The public key printed from the private key is the one written.
    let printed = w.run("", &["public-key", "--key", "cosign.key"]);
    printed.success();
    assert_eq!(
        printed.stdout(),
        std::fs::read_to_string(w.path("cosign.pub")).unwrap()
    );

    w.run("", &["generate-key-pair", "--output-key-prefix", "team-a"])
        .success();
    assert!(w.path("team-a.key").exists() && w.path("team-a.pub").exists());

    // A dangling symlink where the public key goes (it "does not exist" to a check) is not
    // followed, and no half pair stays: the private key just placed is taken back.
    std::os::unix::fs::symlink(w.path("nowhere"), w.path("team-b.pub")).unwrap();
    w.run("", &["generate-key-pair", "--output-key-prefix", "team-b"])
        .expect_code(2)
        .stderr_has("team-b.pub already exists");
    assert!(!w.path("team-b.key").exists(), "no half pair");
    assert!(!w.path("nowhere").exists(), "the link was not followed");
    let leftovers: Vec<_> = std::fs::read_dir(w.path("."))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn password_comes_from_stdin_when_cosign_password_is_unset() {
    let w = Workdir::new();
    let mut child = w
        .command(&["generate-key-pair"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-stdin")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    w.run("from-stdin", &["public-key", "--key", "cosign.key"])
        .success();
    w.run("wrong", &["public-key", "--key", "cosign.key"])
        .expect_code(2)
        .stderr_has("wrong password: the private key could not be decrypted");
    // An empty COSIGN_PASSWORD is a password too: it is not "unset".
    w.run("", &["public-key", "--key", "cosign.key"])
        .expect_code(2)
        .stderr_has("wrong password");
}

#[test]
fn upstream_cosign_key_files_load() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/testdata/keys");
    let w = Workdir::new();
    let empty = fixtures.join("cosign_generated_encrypted_empty_private.key");
    let legacy = fixtures.join("ecdsa_encrypted_private.key");
    let out = w.run("", &["public-key", "--key", empty.to_str().unwrap()]);
    out.success();
    assert!(out.stdout().starts_with("-----BEGIN PUBLIC KEY-----"));
    w.run("123", &["public-key", "--key", legacy.to_str().unwrap()])
        .success();
    w.run("12", &["public-key", "--key", legacy.to_str().unwrap()])
        .expect_code(2)
        .stderr_has("wrong password");
}

#[test]
fn quick_start_signs_and_verifies_and_an_unsigned_image_fails() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("app", "v1.0.0");
    let unsigned = registry.push_image("unsigned", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");

    let app = image(&registry, "app:v1.0.0");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &app])
        .success()
        .stderr_has(&format!("Signed {app} ({digest})"));
    assert_eq!(signature_layers(&registry, "app", &digest), 1);

    let ok = w.run_on(&registry, "", &["verify", "--key", &public, &app]);
    ok.success();
    assert!(
        ok.stdout().contains(&format!("Verified {app} ({digest})")),
        "{}",
        ok.stdout()
    );

    let json = w.run_on(
        &registry,
        "",
        &["verify", "--key", &public, "-o", "json", &app],
    );
    json.success();
    let payloads: serde_json::Value = serde_json::from_str(json.stdout().trim()).unwrap();
    assert_eq!(payloads.as_array().unwrap().len(), 1);
    assert_eq!(
        payloads[0]["critical"]["image"]["docker-manifest-digest"],
        digest.to_string()
    );
    assert_eq!(
        payloads[0]["critical"]["identity"]["docker-reference"],
        image(&registry, "app")
    );
    assert_eq!(
        payloads[0]["critical"]["type"],
        "cosign container image signature"
    );

    let bad = w.run_on(
        &registry,
        "",
        &["verify", "--key", &public, &image(&registry, "unsigned:v1")],
    );
    bad.expect_code(1).stderr_has(&format!(
        "no signatures found at {}/unsigned:{}",
        registry.host(),
        unsigned.signature_tag()
    ));

    // By digest too, and triangulate names the signature tag.
    w.run_on(
        &registry,
        "",
        &[
            "verify",
            "--key",
            &public,
            &format!("{}@{digest}", image(&registry, "app")),
        ],
    )
    .success();
    let tri = w.run_on(&registry, "", &["triangulate", &app]);
    tri.success();
    assert_eq!(
        tri.stdout().trim(),
        format!("{}:{}", image(&registry, "app"), digest.signature_tag())
    );
}

#[test]
fn another_key_fails_and_says_how_many_signatures_were_checked() {
    let registry = TestRegistry::start(TLS_AUTH);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, _) = w.keys("signer", "pw");
    let (_, other_pub) = w.keys("other", "pw");
    let app = image(&registry, "app:v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &app])
        .success();
    w.run_on(&registry, "", &["verify", "--key", &other_pub, &app])
        .expect_code(1)
        .stderr_has("none of 1 signature at")
        .stderr_has("verifies with the key");
}

#[test]
fn a_second_key_adds_a_layer_and_the_same_key_adds_nothing() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("critical/app", "v1");
    let w = Workdir::new();
    let (sec_key, sec_pub) = w.keys("security", "s");
    let (dev_key, dev_pub) = w.keys("development", "d");
    let app = image(&registry, "critical/app:v1");
    w.run_on(&registry, "s", &["sign", "--key", &sec_key, &app])
        .success();
    w.run_on(&registry, "d", &["sign", "--key", &dev_key, &app])
        .success()
        .stderr_has("(2 signature(s) there now)");
    assert_eq!(signature_layers(&registry, "critical/app", &digest), 2);
    w.run_on(&registry, "s", &["sign", "--key", &sec_key, &app])
        .success()
        .stderr_has("already signed with this key");
    assert_eq!(signature_layers(&registry, "critical/app", &digest), 2);
    for public in [&sec_pub, &dev_pub] {
        let out = w.run_on(&registry, "", &["verify", "--key", public, &app]);
        out.success();
        assert!(
            out.stdout().contains("1 of 2 signature(s)"),
            "{}",
            out.stdout()
        );
    }
}

#[test]
fn signing_a_tag_signs_the_digest_it_points_to_at_that_moment() {
    let registry = TestRegistry::start(TLS_AUTH);
    let first = registry.push_image("app", "v1");
    let second = registry.push_image("app", "v2");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    w.run_on(
        &registry,
        "pw",
        &["sign", "--key", &key, &image(&registry, "app:v1")],
    )
    .success();

    // Move the tag v1 to the v2 manifest.
    let client = registry.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v2 = rt
        .block_on(client.get_manifest(&registry.image_ref("app:v2"), "v2"))
        .unwrap()
        .unwrap();
    rt.block_on(client.put_manifest(
        &registry.image_ref("app:v1"),
        "v1",
        &v2.media_type,
        &v2.bytes,
    ))
    .unwrap();

    w.run_on(
        &registry,
        "",
        &["verify", "--key", &public, &image(&registry, "app:v1")],
    )
    .expect_code(1)
    .stderr_has(&format!("({second}): no signatures found"));
    w.run_on(
        &registry,
        "",
        &[
            "verify",
            "--key",
            &public,
            &format!("{}@{first}", image(&registry, "app")),
        ],
    )
    .success();

    // A signature copied next to another digest (a replay) names the digest it really signed.
    let sig = rt
        .block_on(client.get_manifest(&registry.image_ref("app:x"), &first.signature_tag()))
        .unwrap()
        .unwrap();
    rt.block_on(client.put_manifest(
        &registry.image_ref("app:x"),
        &second.signature_tag(),
        &sig.media_type,
        &sig.bytes,
    ))
    .unwrap();
    w.run_on(
        &registry,
        "",
        &[
            "verify",
            "--key",
            &public,
            &format!("{}@{second}", image(&registry, "app")),
        ],
    )
    .expect_code(1)
    .stderr_has(&format!(
        "the key signed digest {first}, not this image's digest {second}"
    ));
}

#[test]
fn a_wrong_password_says_so_and_pushes_nothing() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, _) = w.keys("cosign", "right");
    w.run_on(
        &registry,
        "wrong",
        &["sign", "--key", &key, &image(&registry, "app:v1")],
    )
    .expect_code(2)
    .stderr_has("wrong password");
    assert!(
        !registry.log().contains(&digest.signature_tag()),
        "no registry request for the signature"
    );
    assert_eq!(signature_layers(&registry, "app", &digest), 0);
}

#[test]
fn signed_annotations_can_be_required_at_verification() {
    let registry = TestRegistry::start(PLAIN);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let app = image(&registry, "app:v1");
    w.run_on(
        &registry,
        "pw",
        &["sign", "--key", &key, "-a", "team=security", &app],
    )
    .success();
    w.run_on(
        &registry,
        "",
        &["verify", "--key", &public, "-a", "team=security", &app],
    )
    .success();
    w.run_on(
        &registry,
        "",
        &["verify", "--key", &public, "-a", "team=dev", &app],
    )
    .expect_code(1)
    .stderr_has("none carries the annotations team=dev");
}

#[test]
fn signing_with_a_certificate_attaches_it_and_its_chain() {
    let registry = TestRegistry::start(TLS_AUTH);
    let digest = registry.push_image("myapp", "v1.0.0");
    let w = Workdir::new();
    let pki = CodeSigningPki::generate("Company");
    std::fs::write(w.path("leaf.key"), &pki.leaf_key_pem).unwrap();
    std::fs::write(w.path("company-cert.pem"), &pki.leaf_pem).unwrap();
    std::fs::write(w.path("ca-chain.pem"), pki.chain_pem()).unwrap();
    let app = image(&registry, "myapp:v1.0.0");
    // A plain PKCS#8 key from a PKI needs no password.
    w.run_on(
        &registry,
        "",
        &[
            "sign",
            "--key",
            "leaf.key",
            "--cert",
            "company-cert.pem",
            "--cert-chain",
            "ca-chain.pem",
            &app,
        ],
    )
    .success();

    let client = registry.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sig = rt
        .block_on(client.get_manifest(&registry.image_ref("myapp:x"), &digest.signature_tag()))
        .unwrap()
        .unwrap();
    let layer = &ImageManifest::parse(&sig.bytes).unwrap().layers[0];
    assert_eq!(
        layer.annotation("dev.sigstore.cosign/certificate"),
        Some(pki.leaf_pem.as_str())
    );
    assert_eq!(
        layer.annotation("dev.sigstore.cosign/chain"),
        Some(pki.chain_pem().as_str())
    );

    let public = w.run("", &["public-key", "--key", "leaf.key"]);
    public.success();
    std::fs::write(w.path("leaf.pub"), public.stdout()).unwrap();
    w.run_on(&registry, "", &["verify", "--key", "leaf.pub", &app])
        .success();

    // A certificate for another key is refused before anything is pushed.
    let foreign = CodeSigningPki::generate("Foreign");
    std::fs::write(w.path("foreign.pem"), &foreign.leaf_pem).unwrap();
    w.run_on(
        &registry,
        "",
        &["sign", "--key", "leaf.key", "--cert", "foreign.pem", &app],
    )
    .expect_code(2)
    .stderr_has("is for another key");
}

#[test]
fn plain_http_needs_an_explicit_allow_and_https_is_the_default() {
    let registry = TestRegistry::start(PLAIN);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let app = image(&registry, "app:v1");
    w.run("pw", &["sign", "--key", &key, &app])
        .expect_code(2)
        .stderr_has(&format!(
            "pass --allow-insecure-registry {}",
            registry.host()
        ));
    w.run_on(&registry, "pw", &["sign", "--key", &key, &app])
        .success();
    w.run_on(&registry, "", &["verify", "--key", &public, &app])
        .success();
}

#[test]
fn registry_failures_are_distinct_errors_that_name_the_fix() {
    let registry = TestRegistry::start(TLS_AUTH);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (_, public) = w.keys("cosign", "pw");
    let app = image(&registry, "app:v1");
    let ca = registry.ca_pem_path().unwrap();
    let ca = ca.to_str().unwrap();

    w.run("", &["verify", "--key", &public, &app])
        .expect_code(2)
        .stderr_has("--registry-ca FILE");
    w.run("", &["verify", "--key", &public, "--registry-ca", ca, &app])
        .expect_code(2)
        .stderr_has(&format!("authentication required by {}", registry.host()));
    w.run(
        "",
        &[
            "verify",
            "--key",
            &public,
            "--registry-ca",
            ca,
            "--registry-username",
            "sealgate",
            "--registry-password",
            "nope",
            &app,
        ],
    )
    .expect_code(2)
    .stderr_has("rejected the credentials of user 'sealgate'");
    // The password goes only where --registry-auth-host says (by default the image's registry):
    // named for another host, this registry never sees it and asks for authentication.
    let password = registry.password().unwrap().to_string();
    let bound_elsewhere = [
        "verify",
        "--key",
        &public,
        "--registry-ca",
        ca,
        "--registry-username",
        "sealgate",
        "--registry-password",
        &password,
        "--registry-auth-host",
        "registry.example.com",
        &app,
    ];
    w.run("", &bound_elsewhere)
        .expect_code(2)
        .stderr_has(&format!("authentication required by {}", registry.host()));
    let mut default_host = bound_elsewhere.to_vec();
    default_host.drain(9..11);
    // By default it goes to the image's registry: authenticated, the (unsigned) image is found.
    w.run("", &default_host)
        .expect_code(1)
        .stderr_has("no signatures found");
    // apply takes images from resources: explicit credentials need their hosts named.
    std::fs::write(
        w.path("policies.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      verifyDigest: true\n      required: false\n",
    )
    .unwrap();
    std::fs::write(
        w.path("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: nginx\n",
    )
    .unwrap();
    w.run(
        "",
        &[
            "apply",
            "policies.yaml",
            "--resource",
            "pod.yaml",
            "--registry-username",
            "sealgate",
            "--registry-password",
            &password,
        ],
    )
    .expect_code(2)
    .stderr_has("--registry-username needs --registry-auth-host HOST here");
    w.run_on(
        &registry,
        "",
        &["verify", "--key", &public, &image(&registry, "app:missing")],
    )
    .expect_code(2)
    .stderr_has("not found");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    w.run(
        "",
        &["verify", "--key", &public, &format!("{closed}/app:v1")],
    )
    .expect_code(2)
    .stderr_has(&format!("could not connect to {closed}"));

    // Usage errors are exit code 2 too.
    w.run("", &["verify", &app]).expect_code(2);
    w.run(
        "",
        &["verify", "--key", &public, "--registry-username", "u", &app],
    )
    .expect_code(2)
    .stderr_has("--registry-username and --registry-password (SEALGATE_REGISTRY_USERNAME and SEALGATE_REGISTRY_PASSWORD) go together; pass both or neither");
    w.run("", &["verify", "--key", "missing.pub", &app])
        .expect_code(2)
        .stderr_has("reading the public key missing.pub");
    w.run("", &["verify", "--key", &public, "Not/A/Valid:Image"])
        .expect_code(2)
        .stderr_has("invalid image reference");
}

#[test]
fn credentials_come_from_docker_config_json() {
    let registry = TestRegistry::start(TLS_AUTH);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let config_dir = w.path("docker");
    std::fs::create_dir_all(&config_dir).unwrap();
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        registry.username().unwrap(),
        registry.password().unwrap()
    ));
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let ca = registry.ca_pem_path().unwrap();
    let app = image(&registry, "app:v1");
    let out = w
        .command(&[
            "sign",
            "--key",
            &key,
            "--registry-ca",
            ca.to_str().unwrap(),
            &app,
        ])
        .env("COSIGN_PASSWORD", "pw")
        .env("DOCKER_CONFIG", &config_dir)
        .output()
        .unwrap();
    Run(out).success();
    let out = w
        .command(&[
            "verify",
            "--key",
            &public,
            "--registry-ca",
            ca.to_str().unwrap(),
            &app,
        ])
        .env("DOCKER_CONFIG", &config_dir)
        .output()
        .unwrap();
    Run(out).success();
}

/// Issue 11, Must 3: with `DOCKER_CONFIG` set to a folder without `config.json`,
/// `~/.docker/config.json` is not read (as docker and cosign); podman's
/// `$XDG_RUNTIME_DIR/containers/auth.json` and `REGISTRY_AUTH_FILE` are.
#[test]
fn credential_files_are_found_as_docker_and_podman_find_them() {
    use base64::Engine;
    let registry = TestRegistry::start(TLS_AUTH);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, _) = w.keys("cosign", "pw");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        registry.username().unwrap(),
        registry.password().unwrap()
    ));
    let config = format!(
        r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
        registry.host()
    );
    for file in [
        ".docker/config.json",
        "run/containers/auth.json",
        "podman-auth.json",
    ] {
        let path = w.path(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &config).unwrap();
    }
    std::fs::create_dir_all(w.path("empty-docker-config")).unwrap();
    let ca = registry.ca_pem_path().unwrap();
    let app = image(&registry, "app:v1");
    let sign = |env: &[(&str, PathBuf)]| {
        let mut command = w.command(&[
            "sign",
            "--key",
            &key,
            "--registry-ca",
            ca.to_str().unwrap(),
            &app,
        ]);
        command.env("COSIGN_PASSWORD", "pw");
        for (name, value) in env {
            command.env(name, value);
        }
        Run(command.output().unwrap())
    };

    // HOME is the work directory, whose .docker/config.json has the credentials
    sign(&[("DOCKER_CONFIG", w.path("empty-docker-config"))])
        .expect_code(2)
        .stderr_has("authentication required by");
    sign(&[
        ("DOCKER_CONFIG", w.path("empty-docker-config")),
        ("XDG_RUNTIME_DIR", w.path("run")),
    ])
    .success();
    sign(&[
        ("DOCKER_CONFIG", w.path("empty-docker-config")),
        ("REGISTRY_AUTH_FILE", w.path("podman-auth.json")),
    ])
    .success();
    sign(&[("DOCKER_CONFIG", w.path(".docker"))]).success();
}

/// The real keyless `.sig` of connaisseur's test image, pushed to the test registry, passes a
/// `certificates` attestor built from its own certificate and chain (Rekor bundle checked offline
/// against the public-good key, chain at the logged signing time); with another root it fails.
#[test]
fn a_real_keyless_signature_on_the_registry_passes_a_certificates_attestor() {
    let registry = TestRegistry::start(TLS_AUTH);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/testdata/connaisseur");
    let manifest_bytes = std::fs::read(fixtures.join("sig-manifest.json")).unwrap();
    let payload = std::fs::read(fixtures.join("payload.json")).unwrap();
    let manifest = ImageManifest::parse(&manifest_bytes).unwrap();
    // The config blob is not in the fixture; cosign's is reproducible from the layers.
    let (_, config) = sealgate_core::cosign::signature_image(&manifest.layers);
    let digest: sealgate_core::Digest =
        "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"
            .parse()
            .unwrap();
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

    let layer = &manifest.layers[0];
    let indent = |s: &str| s.trim_end().replace('\n', "\n                ");
    let policy = |chain: &str| {
        format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: certificate-verification\nspec:\n  validationFailureAction: Enforce\n  rules:\n    - name: verify-with-certificates\n      match:\n        any:\n        - resources:\n            kinds: [Pod]\n      verifyImages:\n      - imageReferences: [\"*\"]\n        mutateDigest: false\n        attestors:\n        - count: 1\n          entries:\n          - certificates:\n              cert: |-\n                {}\n              certChain: |-\n                {}\n              rekor:\n                url: https://rekor.sigstore.dev\n",
            indent(layer.annotation("dev.sigstore.cosign/certificate").unwrap()),
            indent(chain)
        )
    };
    let w = Workdir::new();
    std::fs::write(
        w.path("own.yaml"),
        policy(layer.annotation("dev.sigstore.cosign/chain").unwrap()),
    )
    .unwrap();
    std::fs::write(
        w.path("foreign.yaml"),
        policy(&CodeSigningPki::generate("Foreign").root_pem),
    )
    .unwrap();
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: rekor-test, namespace: default}}\nspec:\n  containers:\n  - name: app\n    image: {}/phbelitz/rekor-test@{digest}\n",
        registry.host()
    );
    std::fs::write(w.path("pod.yaml"), pod).unwrap();
    let ok = w.run_on(
        &registry,
        "",
        &["apply", "own.yaml", "--resource", "pod.yaml"],
    );
    ok.success();
    assert!(ok.stdout().contains("pass"), "{}", ok.stdout());
    let bad = w.run_on(
        &registry,
        "",
        &["apply", "foreign.yaml", "--resource", "pod.yaml"],
    );
    bad.expect_code(1);
    assert!(
        bad.stdout()
            .contains("does not chain to the roots in certChain"),
        "{}",
        bad.stdout()
    );
}

/// A private CA in the system store (here via `SSL_CERT_FILE`, which the system store reader
/// honours) is trusted without `--registry-ca`: the store is read lazily, when a certificate does
/// not chain to the built-in roots, but it is read.
#[test]
fn a_ca_in_the_system_store_is_trusted_without_registry_ca() {
    let registry = TestRegistry::start(TLS_AUTH);
    registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let app = image(&registry, "app:v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &app])
        .success();
    let ca = registry.ca_pem_path().unwrap();
    let out = w
        .command(&[
            "verify",
            "--key",
            &public,
            "--registry-username",
            registry.username().unwrap(),
            "--registry-password",
            registry.password().unwrap(),
            &app,
        ])
        .env("SSL_CERT_FILE", &ca)
        .env("SSL_CERT_DIR", w.path("no-cert-dir"))
        .output()
        .unwrap();
    Run(out).success();
}

/// The user's document as written: `lint` names its three kinds of broken key material with
/// file:line:column, policy, rule, JSON path and what to do, and exits 1; `apply` with the
/// broken documents and a valid policy still evaluates the valid one.
#[test]
fn the_seed_documents_as_written_give_located_errors_and_do_not_stop_a_valid_policy() {
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/testdata/policies/seed");
    let w = Workdir::new();
    std::fs::create_dir(w.path("seed")).unwrap();
    for entry in std::fs::read_dir(&seed).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), w.path("seed").join(entry.file_name())).unwrap();
    }
    let lint = w.run("", &["lint", "seed"]);
    lint.expect_code(1);
    // lint's findings are its output.
    let err = lint.stdout();
    for want in [
        // A comment line inside the PEM block.
        "seed/quick-start.yaml:24:17: policy require-signed-images, rule check-signatures: spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: line 2 of the PEM block ('# Paste the cosign.pub content here') is not base64 — paste the exact contents of cosign.pub, without comments",
        // The made-up "Development team" key.
        "seed/scenario-1-dual-signatures.yaml:33:17: policy require-dual-signatures, rule critical-app-signatures: spec.rules[0].verifyImages[0].attestors[1].entries[0].keys.publicKeys: the PUBLIC KEY block at line 1: the key is not a valid ECDSA P-256 point",
        // The placeholder certificate.
        "seed/scenario-3-certificates.yaml:31:17: policy certificate-verification, rule verify-with-certificates: spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates.cert: line 9 of the PEM block has 67 characters",
        "it is not valid DER either",
        // Scenario 3's rekor block would refuse what `sealgate sign` signs: said before run time.
        "seed/scenario-3-certificates.yaml:36:15: policy certificate-verification, rule verify-with-certificates: spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates.rekor: this certificates attestor has a rekor block",
        "0 valid policies, 9 error(s), 2 warning(s)",
    ] {
        assert!(err.contains(want), "missing: {want}\n{err}");
    }

    // A valid policy next to the broken ones: required digests, no registry needed.
    std::fs::write(
        w.path("seed/zz-digests.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: require-digests\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: pinned\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      mutateDigest: false\n      verifyDigest: true\n      required: false\n",
    )
    .unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    std::fs::write(
        w.path("pod.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\nspec:\n  containers:\n  - name: pinned\n    image: registry.example.com/app@{digest}\n  - name: floating\n    image: registry.example.com/app:v1\n"),
    )
    .unwrap();
    let apply = w.run(
        "",
        &["apply", "seed", "--resource", "pod.yaml", "-o", "json"],
    );
    apply.expect_code(1);
    let out = format!("{}{}", apply.stdout(), apply.stderr());
    assert!(out.contains("seed/quick-start.yaml:24:17"), "{out}");
    assert!(out.contains("require-digests"), "{out}");
    assert!(
        out.contains("missing digest for registry.example.com/app:v1"),
        "{out}"
    );
}

/// `sealgate test` as `kyverno test`: a rule no image of the resource matched is `Excluded`
/// (passing whatever was expected), a policy the test does not load is `Not found`, and a file
/// using what sealgate cannot evaluate fails with the reason instead of passing unchecked.
#[test]
fn kyverno_test_files_excluded_not_found_and_unsupported_fields() {
    let w = Workdir::new();
    let dir = w.path("t");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("policy.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: require-digests\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: pinned\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      mutateDigest: false\n      verifyDigest: true\n      required: false\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("resources.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: floating\nspec:\n  containers:\n  - name: c\n    image: registry.example.com/app:v1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: elsewhere\nspec:\n  containers:\n  - name: c\n    image: ghcr.io/other/app:v1\n",
    )
    .unwrap();
    let test = "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: digests\npolicies: [policy.yaml]\nresources: [resources.yaml]\nresults:\n- policy: require-digests\n  rule: pinned\n  kind: Pod\n  resources: [floating]\n  result: fail\n- policy: require-digests\n  rule: pinned\n  kind: Pod\n  resources: [elsewhere]\n  result: fail\n";
    std::fs::write(dir.join("kyverno-test.yaml"), test).unwrap();
    let run = w.run("", &["test", "t"]);
    run.success();
    let out = run.stdout();
    assert!(out.contains("Excluded"), "{out}");
    assert!(
        out.contains("Test Summary: 2 tests passed and 0 tests failed"),
        "{out}"
    );

    // A policy the test does not load.
    std::fs::write(
        dir.join("kyverno-test.yaml"),
        test.replace(
            "- policy: require-digests\n  rule: pinned\n  kind: Pod\n  resources: [elsewhere]",
            "- policy: no-such-policy\n  rule: pinned\n  kind: Pod\n  resources: [elsewhere]",
        ),
    )
    .unwrap();
    let run = w.run("", &["test", "t", "--detailed-results"]);
    run.expect_code(1);
    assert!(run.stdout().contains("Not found"), "{}", run.stdout());
    assert!(
        run.stdout()
            .contains("no policy named no-such-policy among the test's policies"),
        "{}",
        run.stdout()
    );

    // What sealgate cannot evaluate is refused with the field and what to do.
    for (edit, want) in [
        (
            test.replace(
                "  resources: [floating]",
                "  resourceSpecs: [{kind: Pod, name: floating}]",
            ),
            "results[0].resourceSpecs is not supported by sealgate test yet; name the resources with 'resources: [name]'",
        ),
        (
            test.replace("kind: Test\n", "kind: Test\nexceptions: [x.yaml]\n"),
            "'exceptions' is not supported by sealgate test yet",
        ),
        (
            test.replace("kind: Test\n", ""),
            "apiVersion 'cli.kyverno.io/v1alpha1' and kind ''",
        ),
        (
            test.replace("metadata:\n  name: digests\n", "name: digests\n"),
            "a top-level 'name' is the deprecated test schema",
        ),
        (
            test.replace("  result: fail\n", "  result: fail\n  colour: blue\n"),
            "unknown field `colour`",
        ),
    ] {
        std::fs::write(dir.join("kyverno-test.yaml"), &edit).unwrap();
        let run = w.run("", &["test", "t"]);
        run.expect_code(2).stderr_has(want);
    }
}

/// A registry that cannot be reached is an error result: under Enforce with failurePolicy: Fail
/// the resource is denied and apply exits 2 (could not evaluate); with failurePolicy: Ignore it
/// is admitted with a warning and apply exits 0.
#[test]
fn apply_exit_code_for_errors_follows_the_failure_policy() {
    let w = Workdir::new();
    let (_, public) = w.keys("cosign", "pw");
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    // Nothing listens on port 9 (discard) here: the connection is refused at once.
    let registry = "127.0.0.1:9";
    let policy = |failure_policy: &str| {
        format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  failurePolicy: {failure_policy}\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"{registry}/*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n              {}\n",
            pem.trim().replace('\n', "\n              ")
        )
    };
    std::fs::write(
        w.path("pod.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: {registry}/app:v1\n"),
    )
    .unwrap();
    std::fs::write(w.path("fail.yaml"), policy("Fail")).unwrap();
    std::fs::write(w.path("ignore.yaml"), policy("Ignore")).unwrap();
    let denied = w.run("", &["apply", "fail.yaml", "--resource", "pod.yaml"]);
    denied.expect_code(2);
    assert!(denied.stdout().contains("DENIED"), "{}", denied.stdout());
    assert!(
        denied.stdout().contains("127.0.0.1:9"),
        "{}",
        denied.stdout()
    );
    let admitted = w.run("", &["apply", "ignore.yaml", "--resource", "pod.yaml"]);
    admitted.expect_code(0);
    assert!(admitted.stdout().contains("error"), "{}", admitted.stdout());
}

/// `--namespace-labels` are the labels of `--namespace`: a namespaceSelector rule checks the
/// resources there, not one that names another namespace.
#[test]
fn namespace_labels_belong_to_the_namespace_flag() {
    let w = Workdir::new();
    std::fs::write(
        w.path("policy.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: prod-digests\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: pinned\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n          namespaceSelector:\n            matchLabels:\n              env: prod\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      mutateDigest: false\n      verifyDigest: true\n      required: false\n",
    )
    .unwrap();
    std::fs::write(
        w.path("pods.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: here\nspec:\n  containers:\n  - name: c\n    image: registry.example.com/app:v1\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: there\n  namespace: staging\nspec:\n  containers:\n  - name: c\n    image: registry.example.com/app:v1\n",
    )
    .unwrap();
    let run = w.run(
        "",
        &[
            "apply",
            "policy.yaml",
            "--resource",
            "pods.yaml",
            "--namespace",
            "shop",
            "--namespace-labels",
            "env=prod",
        ],
    );
    run.expect_code(1);
    let out = run.stdout();
    assert!(out.contains("Pod/shop/here: DENIED"), "{out}");
    assert!(!out.contains("Pod/staging/there: DENIED"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("Pod/staging/there") && l.contains("not covered")),
        "{out}"
    );
}

/// An image spelled differently from the policy's pattern is still covered, and apply says
/// which rule now covers what Kyverno would have missed.
#[test]
fn apply_covers_every_spelling_of_an_image_and_names_the_rule_kyverno_would_have_missed() {
    let w = Workdir::new();
    std::fs::write(
        w.path("policy.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: pinned-only\nspec:\n  rules:\n  - name: digests\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.company.com/*\"]\n      failureAction: Enforce\n      mutateDigest: false\n      verifyDigest: true\n      required: false\n",
    )
    .unwrap();
    for image in [
        "REGISTRY.COMPANY.COM/critical/app:v1",
        "registry.company.com:443/critical/app:v1",
        "registry.company.com./critical/app:v1",
    ] {
        std::fs::write(
            w.path("pod.yaml"),
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: {image}\n"),
        )
        .unwrap();
        let run = w.run("", &["apply", "policy.yaml", "--resource", "pod.yaml"]);
        run.expect_code(1);
        assert!(run.stdout().contains("DENIED"), "{image}: {}", run.stdout());
        assert!(
            run.stderr()
                .contains("note: Pod/default/web: policy pinned-only rule digests covers ")
                && run
                    .stderr()
                    .contains("Kyverno matches the reference as written and would not check it"),
            "{image}: {}",
            run.stderr()
        );
    }
}
