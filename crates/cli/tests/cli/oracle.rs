//! Interop with an independent implementation: the `sigstore` crate (sigstore-rs, through the
//! test-only `sealgate-oracle`) verifies what `sealgate sign` pushed, and `sealgate verify`
//! checks what sigstore-rs signed, with key files written by `sealgate generate-key-pair`.
//!
//! Everything runs against a real registry (Debian's `docker-registry`) serving TLS from a
//! throw-away CA and requiring Basic authentication; both tools are given that CA and the
//! credentials, so both go through the same TLS and auth paths a real registry needs.
//!
//! The key password is non-empty on purpose: sigstore-rs treats an empty password as "the key
//! is not encrypted", so an empty one would not test that it reads our encrypted key files.

use std::path::Path;
use std::process::{Command, Output};

use sealgate_oracle::{OracleVerdict, RegistryAccess};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

const PASSWORD: &str = "oracle-test-password";

fn registry() -> TestRegistry {
    TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    })
}

/// The same CA and credentials sealgate gets through `cli_args()`.
fn access(registry: &TestRegistry) -> RegistryAccess {
    let ca = registry.ca_pem_path().expect("a TLS registry has a CA");
    RegistryAccess {
        ca_pem: Some(std::fs::read(&ca).unwrap()),
        credentials: Some((
            registry.username().unwrap().to_string(),
            registry.password().unwrap().to_string(),
        )),
        plain_http: false,
    }
}

/// Runs the sealgate binary in `dir` with `COSIGN_PASSWORD` set.
fn sealgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .current_dir(dir)
        .env("COSIGN_PASSWORD", PASSWORD)
        .env_remove("SEALGATE_REGISTRY_USERNAME")
        .env_remove("SEALGATE_REGISTRY_PASSWORD")
        .env_remove("SEALGATE_REGISTRY_AUTH_HOST")
        .env("DOCKER_CONFIG", dir.join("no-docker-config"))
        .env("HOME", dir)
        .env("XDG_RUNTIME_DIR", dir.join("no-runtime-dir"))
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("REGISTRY_AUTH_FILE")
        .args(args)
        .output()
        .unwrap()
}

/// Runs sealgate with the registry's flags appended.
fn sealgate_on(registry: &TestRegistry, dir: &Path, args: &[&str]) -> Output {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.extend(registry.cli_args());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    sealgate(dir, &all)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing both streams when it differs.
fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: expected exit {code}\nstdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn generate_key_pair(dir: &Path, prefix: &str) {
    let out = sealgate(dir, &["generate-key-pair", "--output-key-prefix", prefix]);
    assert_exit(&out, 0, "generate-key-pair");
    let private = std::fs::read_to_string(dir.join(format!("{prefix}.key"))).unwrap();
    assert!(
        private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"),
        "{private}"
    );
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn oracle_verify(registry: &TestRegistry, image: &str, public_key: &Path) -> OracleVerdict {
    let pem = std::fs::read(public_key).unwrap();
    block_on(sealgate_oracle::verify(image, &pem, &access(registry)))
        .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()))
}

#[test]
fn sigstore_rs_verifies_what_sealgate_signed_and_rejects_another_key() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let digest = registry.push_image("app", "v1");
    let image = format!("{}/app:v1", registry.host());
    generate_key_pair(dir.path(), "cosign");
    generate_key_pair(dir.path(), "other");

    let out = sealgate_on(
        &registry,
        dir.path(),
        &["sign", "--key", "cosign.key", &image],
    );
    assert_exit(&out, 0, "sealgate sign");
    assert!(
        text(&out.stderr).contains(&format!("Signed {image} ({digest})")),
        "{}",
        text(&out.stderr)
    );

    let verdict = oracle_verify(&registry, &image, &dir.path().join("cosign.pub"));
    assert_eq!(
        verdict,
        OracleVerdict {
            layers: 1,
            by_key: 1,
            verified: true
        }
    );

    // The layer is fetched and well-formed for sigstore-rs, but another key does not verify it.
    let verdict = oracle_verify(&registry, &image, &dir.path().join("other.pub"));
    assert_eq!(
        verdict,
        OracleVerdict {
            layers: 1,
            by_key: 0,
            verified: false
        }
    );
}

#[test]
fn sealgate_verifies_what_sigstore_rs_signed_with_a_sealgate_key() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    let digest = registry.push_image("app", "v2");
    let image = format!("{}/app:v2", registry.host());
    generate_key_pair(dir.path(), "cosign");
    generate_key_pair(dir.path(), "other");

    // sigstore-rs decrypts the key file sealgate wrote (scrypt + secretbox) and signs with it.
    let key_file = std::fs::read(dir.path().join("cosign.key")).unwrap();
    block_on(sealgate_oracle::sign(
        &image,
        &key_file,
        PASSWORD.as_bytes(),
        &access(&registry),
    ))
    .unwrap_or_else(|e| panic!("{e}\nregistry log:\n{}", registry.log()));

    // A wrong password is refused by sigstore-rs: the file really is encrypted.
    let wrong = block_on(sealgate_oracle::sign(
        &image,
        &key_file,
        b"not the password",
        &access(&registry),
    ));
    assert!(
        wrong
            .as_ref()
            .is_err_and(|e| e.to_string().contains("loading the private key")),
        "{wrong:?}"
    );

    let out = sealgate_on(
        &registry,
        dir.path(),
        &["verify", "--key", "cosign.pub", &image],
    );
    assert_exit(&out, 0, "sealgate verify of the sigstore-rs signature");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("Verified {image} ({digest})")),
        "{stdout}"
    );
    assert!(stdout.contains("1 of 1 signature(s)"), "{stdout}");

    let out = sealgate_on(
        &registry,
        dir.path(),
        &["verify", "--key", "other.pub", &image],
    );
    assert_exit(&out, 1, "sealgate verify with another key");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "verification failed for {image} ({digest}): none of 1 signature at"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("verifies with the key"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn sigstore_rs_verifies_each_of_two_sealgate_signatures() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    registry.push_image("app", "v3");
    let image = format!("{}/app:v3", registry.host());
    for prefix in ["a", "b", "c"] {
        generate_key_pair(dir.path(), prefix);
    }
    for (key, layers) in [("a.key", 1), ("b.key", 2)] {
        let out = sealgate_on(&registry, dir.path(), &["sign", "--key", key, &image]);
        assert_exit(&out, 0, &format!("sealgate sign --key {key}"));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("({layers} signature(s) there now)")),
            "{stderr}"
        );
    }

    for public in ["a.pub", "b.pub"] {
        let verdict = oracle_verify(&registry, &image, &dir.path().join(public));
        assert_eq!(
            verdict,
            OracleVerdict {
                layers: 2,
                by_key: 1,
                verified: true
            },
            "{public}"
        );
    }
    let verdict = oracle_verify(&registry, &image, &dir.path().join("c.pub"));
    assert_eq!(
        verdict,
        OracleVerdict {
            layers: 2,
            by_key: 0,
            verified: false
        }
    );
}

#[test]
fn sigstore_rs_fails_closed_on_an_unsigned_image() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    registry.push_image("unsigned", "v1");
    let image = format!("{}/unsigned:v1", registry.host());
    generate_key_pair(dir.path(), "cosign");
    let verdict = oracle_verify(&registry, &image, &dir.path().join("cosign.pub"));
    assert_eq!(
        verdict,
        OracleVerdict {
            layers: 0,
            by_key: 0,
            verified: false
        }
    );
    let out = sealgate_on(
        &registry,
        dir.path(),
        &["verify", "--key", "cosign.pub", &image],
    );
    assert_exit(&out, 1, "sealgate verify of an unsigned image");
    assert!(
        text(&out.stderr).contains("no signatures found at"),
        "{}",
        text(&out.stderr)
    );
}

/// The oracle really goes through TLS and authentication: without the CA, or with a wrong
/// password, sigstore-rs cannot even resolve the image.
#[test]
fn sigstore_rs_needs_the_registry_ca_and_the_password() {
    let registry = registry();
    let dir = tempfile::tempdir().unwrap();
    registry.push_image("app", "v1");
    let image = format!("{}/app:v1", registry.host());
    generate_key_pair(dir.path(), "cosign");
    let pem = std::fs::read(dir.path().join("cosign.pub")).unwrap();

    let no_ca = RegistryAccess {
        ca_pem: None,
        ..access(&registry)
    };
    // sigstore-rs flattens the cause to a string, dropping rustls' "unknown issuer"; the same
    // request succeeds with the CA (the other tests), so the certificate is what fails here.
    let err = block_on(sealgate_oracle::verify(&image, &pem, &no_ca)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("fetching the signatures of {image}"))
            && msg.contains(&format!(
                "error sending request for url (https://{}/v2/app/manifests/v1)",
                registry.host()
            )),
        "{msg}"
    );

    let wrong_password = RegistryAccess {
        credentials: Some((
            registry.username().unwrap().to_string(),
            "wrong".to_string(),
        )),
        ..access(&registry)
    };
    let err = block_on(sealgate_oracle::verify(&image, &pem, &wrong_password)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("fetching the signatures of {image}"))
            && msg.contains("Not authorized"),
        "{msg}"
    );
}
