//! `sealgate sign --new-bundle-format` and `sealgate attest --new-bundle-format` end to end: a
//! key-based Sigstore bundle (v0.3) pushed as an OCI 1.1 referrer of the image, as cosign v3
//! writes one, against both kinds of registry: Debian's distribution 2.8, which has no referrers
//! API (the referrer lands in the referrers tag index `sha256-<hex>`), and the same registry
//! behind the test proxy serving the referrers API (no tag index is written; the API lists it).
//! Each bundle is read back with `sealgate_registry::referrers::fetch_bundles` and checked with
//! the engine's bundle checks: it verifies with its key, not with another.

use sealgate_core::Digest;
use sealgate_core::engine::{VerifyContext, check_bundle, check_bundle_signature};
use sealgate_core::policy::Attestor;
use sealgate_core::sigstore::bundle::{
    BUNDLE_V03_MEDIA_TYPE, Bundle, COSIGN_SIGN_PREDICATE, Content,
};
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_registry::referrers::{FetchedBundle, ReferrersSource, fetch_bundles, list_referrers};
use sealgate_registry::{Client, RegistryOptions, media_type};
use sealgate_test_registry::{HttpFaultProxy, ReferrersApi, TestRegistry, TestRegistryConfig};
use serde_json::Value;

use crate::common::{Run, Workdir, signature_layers};

const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};
const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};
const SLSA: &str = "https://slsa.dev/provenance/v0.2";

/// Where the CLI reaches the registry: the registry itself, or the proxy serving the
/// referrers API in front of it.
struct Target {
    registry: TestRegistry,
    proxy: Option<HttpFaultProxy>,
}

impl Target {
    /// Debian's registry, TLS and a password: no referrers API.
    fn without_api() -> Target {
        Target {
            registry: TestRegistry::start(TLS_AUTH),
            proxy: None,
        }
    }

    /// A plain registry behind the proxy answering the referrers API. The proxy ignores the
    /// artifactType filter, as the spec allows (a SHOULD): `fetch_bundles` asks for the bundle
    /// media type prefix, which a filtering registry matches exactly (see referrers_api.rs).
    fn with_api() -> Target {
        let registry = TestRegistry::start(PLAIN);
        let proxy = HttpFaultProxy::start(registry.host());
        proxy.set_referrers_api(ReferrersApi::ServedUnfiltered);
        Target {
            registry,
            proxy: Some(proxy),
        }
    }

    fn host(&self) -> String {
        match &self.proxy {
            Some(p) => p.host(),
            None => self.registry.host().to_string(),
        }
    }

    fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// A client of what the CLI talks to.
    fn client(&self) -> Client {
        match &self.proxy {
            Some(p) => Client::new(RegistryOptions {
                insecure_hosts: vec![p.host()],
                max_retries: 0,
                ..RegistryOptions::default()
            })
            .unwrap(),
            None => self.registry.client(),
        }
    }

    /// Runs the CLI with the flags for what it talks to.
    fn run(&self, w: &Workdir, password: &str, args: &[&str]) -> Run {
        match &self.proxy {
            Some(p) => {
                let host = p.host();
                let mut all = args.to_vec();
                all.extend(["--allow-insecure-registry", host.as_str()]);
                w.run(password, &all)
            }
            None => w.run_on(&self.registry, password, args),
        }
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The bundles among the referrers of `digest` in `repo`, and where they were found.
fn bundles(target: &Target, repo: &str, digest: &Digest) -> (String, Vec<FetchedBundle>) {
    let client = target.client();
    let image = sealgate_core::ImageRef::parse(&target.image(&format!("{repo}:x"))).unwrap();
    block_on(fetch_bundles(&client, &image, digest)).unwrap()
}

/// The manifest `reference` of `repo`, as JSON (`None` when missing), read from the registry
/// itself.
fn manifest(registry: &TestRegistry, repo: &str, reference: &str) -> Option<Value> {
    let client = registry.client();
    let image = registry.image_ref(&format!("{repo}:x"));
    block_on(client.get_manifest(&image, reference))
        .unwrap()
        .map(|m| serde_json::from_slice(&m.bytes).unwrap())
}

/// The referrer manifest digest a `sign`/`attest` run reports.
fn reported_referrer(run: &Run, repo: &str) -> Digest {
    let stderr = run.stderr();
    let marker = format!("as the referrer {repo}@");
    let at = stderr
        .find(&marker)
        .unwrap_or_else(|| panic!("no referrer reported:\n{stderr}"));
    let rest = &stderr[at + marker.len()..];
    rest[..rest.find(',').unwrap()].parse().unwrap()
}

/// A key attestor for `public` (a PEM file in `w`), as a policy states it.
fn key_attestor(w: &Workdir, public: &str) -> Attestor {
    sealgate_test_registry::key_attestor(&std::fs::read_to_string(w.path(public)).unwrap())
}

fn ctx() -> VerifyContext<'static> {
    VerifyContext {
        trust: TrustedRoot::public_good(),
        now: sealgate_core::timestamp::unix_time(1_795_000_000),
    }
}

/// What the referrer manifest `referrer` of `digest` holds, as cosign v3 writes it: the bundle
/// type as artifactType, the empty config, one bundle layer, the image as subject, and cosign's
/// annotations naming `predicate_type`.
fn check_referrer_manifest(
    target: &Target,
    repo: &str,
    referrer: &Digest,
    digest: &Digest,
    predicate_type: &str,
) {
    let m = manifest(&target.registry, repo, &referrer.to_string()).unwrap();
    assert_eq!(m["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(m["artifactType"], BUNDLE_V03_MEDIA_TYPE);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    assert_eq!(m["layers"].as_array().unwrap().len(), 1);
    assert_eq!(m["layers"][0]["mediaType"], BUNDLE_V03_MEDIA_TYPE);
    assert_eq!(m["subject"]["digest"], digest.to_string());
    let image = manifest(&target.registry, repo, &digest.to_string()).unwrap();
    assert_eq!(m["subject"]["mediaType"], image["mediaType"]);
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.content"],
        "dsse-envelope"
    );
    assert_eq!(
        m["annotations"]["dev.sigstore.bundle.predicateType"],
        predicate_type
    );
    assert!(
        m["annotations"]["org.opencontainers.image.created"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{m}"
    );
}

/// The referrers tag index of `digest` in `repo` on the registry itself, and which referrers it
/// lists (`None` when there is no such tag).
fn tag_index(registry: &TestRegistry, repo: &str, digest: &Digest) -> Option<Vec<String>> {
    let index = manifest(registry, repo, &digest.referrers_tag())?;
    assert_eq!(index["mediaType"], media_type::OCI_INDEX);
    Some(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect(),
    )
}

/// Checks where the referrer went: in the tag index without the API; through the API (and no
/// tag index) with it. `referrers` are all the referrers written so far, each listed once.
fn check_listing(target: &Target, repo: &str, digest: &Digest, referrers: &[Digest]) {
    let mut want: Vec<String> = referrers.iter().map(ToString::to_string).collect();
    want.sort();
    let client = target.client();
    let image = sealgate_core::ImageRef::parse(&target.image(&format!("{repo}:x"))).unwrap();
    let listed = block_on(list_referrers(&client, &image, digest, None)).unwrap();
    let mut listed_digests: Vec<String> = listed
        .descriptors
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect();
    listed_digests.sort();
    assert_eq!(listed_digests, want, "{listed:?}");
    match &target.proxy {
        None => {
            assert_eq!(listed.source, ReferrersSource::TagSchema);
            let mut index = tag_index(&target.registry, repo, digest).unwrap();
            index.sort();
            assert_eq!(index, want);
        }
        Some(proxy) => {
            assert_eq!(listed.source, ReferrersSource::Api);
            assert_eq!(tag_index(&target.registry, repo, digest), None);
            assert_eq!(
                proxy.recorded_referrers(repo, digest).len(),
                referrers.len()
            );
            assert!(
                listed
                    .descriptors
                    .iter()
                    .all(|d| d["artifactType"] == BUNDLE_V03_MEDIA_TYPE),
                "{listed:?}"
            );
        }
    }
}

fn sign_writes_a_bundle_referrer(target: &Target) {
    let digest = target.registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let (_, other_public) = w.keys("other", "pw");
    let app = target.image("app:v1");
    let repo = target.image("app");

    let first = target.run(
        &w,
        "pw",
        &["sign", "--key", &key, "--new-bundle-format", &app],
    );
    first.success().stderr_has(&format!(
        "Signed {app} ({digest}): pushed a Sigstore bundle as the referrer {repo}@"
    ));
    match &target.proxy {
        None => first.stderr_has(&format!(
            "listed in the referrers tag index {repo}:{} (the registry has no referrers API)",
            digest.referrers_tag()
        )),
        Some(_) => first
            .stderr_has("listed by the registry's referrers API (no referrers tag index written)"),
    };
    let referrer = reported_referrer(&first, &repo);
    check_referrer_manifest(target, "app", &referrer, &digest, COSIGN_SIGN_PREDICATE);
    check_listing(target, "app", &digest, std::slice::from_ref(&referrer));
    // A referrer instead of a .sig layer.
    assert_eq!(signature_layers(&target.registry, "app", &digest), 0);

    // Read back, it verifies with its key as a signature of this digest, not with another key.
    let (_, found) = bundles(target, "app", &digest);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].manifest, referrer);
    assert_eq!(found[0].media_type, BUNDLE_V03_MEDIA_TYPE);
    let bundle = Bundle::parse(&found[0].bytes).unwrap();
    assert_eq!(
        bundle.predicate_type().as_deref(),
        Some(COSIGN_SIGN_PREDICATE)
    );
    check_bundle_signature(&key_attestor(&w, &public), &bundle, &digest, ctx()).unwrap();
    assert!(
        check_bundle_signature(&key_attestor(&w, &other_public), &bundle, &digest, ctx()).is_err()
    );
    let other_digest = target.registry.push_image("app", "v2");
    assert!(
        check_bundle_signature(&key_attestor(&w, &public), &bundle, &other_digest, ctx()).is_err()
    );

    // Signing again adds a second, distinct bundle, listed once beside the first; its -a
    // annotation is on the statement's subject.
    let second = target.run(
        &w,
        "pw",
        &[
            "sign",
            "--key",
            &key,
            "--new-bundle-format",
            "-a",
            "team=payments",
            &app,
        ],
    );
    second.success();
    let second_referrer = reported_referrer(&second, &repo);
    assert_ne!(second_referrer, referrer);
    check_listing(
        target,
        "app",
        &digest,
        &[referrer.clone(), second_referrer.clone()],
    );
    let (_, found) = bundles(target, "app", &digest);
    assert_eq!(found.len(), 2);
    let newest = found
        .iter()
        .find(|b| b.manifest == second_referrer)
        .unwrap();
    let bundle = Bundle::parse(&newest.bytes).unwrap();
    check_bundle_signature(&key_attestor(&w, &public), &bundle, &digest, ctx()).unwrap();
    let Content::Dsse { envelope, .. } = &bundle.content else {
        panic!("not a DSSE bundle");
    };
    let statement: Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(statement["subject"][0]["annotations"]["team"], "payments");
    assert_eq!(statement["subject"][0]["digest"]["sha256"], digest.hex());

    // =false is sealgate's default: the .sig layer, no referrer.
    target
        .run(
            &w,
            "pw",
            &["sign", "--key", &key, "--new-bundle-format=false", &app],
        )
        .success()
        .stderr_has("pushed the signature to");
    assert_eq!(signature_layers(&target.registry, "app", &digest), 1);
    assert_eq!(bundles(target, "app", &digest).1.len(), 2);
}

#[test]
fn sign_new_bundle_format_without_a_referrers_api_writes_the_referrers_tag_index() {
    sign_writes_a_bundle_referrer(&Target::without_api());
}

#[test]
fn sign_new_bundle_format_with_a_referrers_api_writes_no_tag_index() {
    sign_writes_a_bundle_referrer(&Target::with_api());
}

fn attest_writes_a_bundle_referrer(target: &Target) {
    let digest = target.registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let (_, other_public) = w.keys("other", "pw");
    std::fs::write(
        w.path("provenance.json"),
        r#"{"builder": {"id": "https://ci.company.com/builder"}, "buildType": "https://example.com/build/v1"}"#,
    )
    .unwrap();
    let app = target.image("app:v1");
    let repo = target.image("app");
    let attest = |extra: &[&str]| {
        let mut args = vec![
            "attest",
            "--key",
            &key,
            "--new-bundle-format",
            "--type",
            "slsaprovenance",
            "--predicate",
            "provenance.json",
        ];
        args.extend(extra);
        args.push(&app);
        target.run(&w, "pw", &args)
    };

    let first = attest(&[]);
    first.success().stderr_has(&format!(
        "Attested {app} ({digest}): pushed a {SLSA} attestation: a Sigstore bundle as the referrer {repo}@"
    ));
    let referrer = reported_referrer(&first, &repo);
    check_referrer_manifest(target, "app", &referrer, &digest, SLSA);
    check_listing(target, "app", &digest, std::slice::from_ref(&referrer));
    // No .att image.
    assert_eq!(
        manifest(&target.registry, "app", &digest.attestation_tag()),
        None
    );

    // Read back: an attestation of the predicate by this key about this digest, and no
    // signature; another key does not verify it.
    let (_, found) = bundles(target, "app", &digest);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].manifest, referrer);
    let bundle = Bundle::parse(&found[0].bytes).unwrap();
    assert_eq!(bundle.predicate_type().as_deref(), Some(SLSA));
    let (statement, _) = check_bundle(&key_attestor(&w, &public), &bundle, &digest, ctx()).unwrap();
    assert_eq!(statement.predicate_type, SLSA);
    assert!(check_bundle(&key_attestor(&w, &other_public), &bundle, &digest, ctx()).is_err());
    assert!(check_bundle_signature(&key_attestor(&w, &public), &bundle, &digest, ctx()).is_err());
    let Content::Dsse { envelope, .. } = &bundle.content else {
        panic!("not a DSSE bundle");
    };
    let payload: Value = serde_json::from_slice(&envelope.payload).unwrap();
    assert_eq!(
        payload["predicate"]["builder"]["id"],
        "https://ci.company.com/builder"
    );

    // A second attestation is a second referrer, each listed once.
    let second = attest(&[]);
    second.success();
    let second_referrer = reported_referrer(&second, &repo);
    assert_ne!(second_referrer, referrer);
    check_listing(target, "app", &digest, &[referrer, second_referrer]);
    assert_eq!(bundles(target, "app", &digest).1.len(), 2);

    // --replace has no meaning for referrers: refused before anything is read or pushed.
    attest(&["--replace"])
        .expect_code(2)
        .stderr_has("--replace is not supported with --new-bundle-format");
    assert_eq!(bundles(target, "app", &digest).1.len(), 2);
}

#[test]
fn attest_new_bundle_format_without_a_referrers_api_writes_the_referrers_tag_index() {
    attest_writes_a_bundle_referrer(&Target::without_api());
}

#[test]
fn attest_new_bundle_format_with_a_referrers_api_writes_no_tag_index() {
    attest_writes_a_bundle_referrer(&Target::with_api());
}

/// What sealgate cannot write with the flag is refused, saying so, before the key is read:
/// certificates (only key bundles are written) and keyless signing (--key is required).
#[test]
fn new_bundle_format_refuses_what_it_cannot_write() {
    let registry = TestRegistry::start(PLAIN);
    let digest = registry.push_image("app", "v1");
    let w = Workdir::new();
    let (key, _) = w.keys("cosign", "pw");
    std::fs::write(w.path("cert.pem"), "not read\n").unwrap();
    let app = format!("{}/app:v1", registry.host());

    w.run_on(
        &registry,
        "pw",
        &[
            "sign",
            "--key",
            &key,
            "--cert",
            "cert.pem",
            "--new-bundle-format",
            &app,
        ],
    )
    .expect_code(2)
    .stderr_has("--cert is not supported with --new-bundle-format");
    // Without --key there is no signer: keyless signing is not sealgate's.
    w.run_on(&registry, "pw", &["sign", "--new-bundle-format", &app])
        .expect_code(2)
        .stderr_has("--key <FILE>");
    // The flag takes no separate value: the image is not read as one.
    w.run_on(
        &registry,
        "wrong",
        &["sign", "--key", &key, "--new-bundle-format", &app],
    )
    .expect_code(2)
    .stderr_has("loading the private key");
    let client = registry.client();
    let image = registry.image_ref("app:x");
    let (_, found) = block_on(fetch_bundles(&client, &image, &digest)).unwrap();
    assert!(found.is_empty());
    assert_eq!(signature_layers(&registry, "app", &digest), 0);
}
