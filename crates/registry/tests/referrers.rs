//! OCI 1.1 referrers against the real test registry (Debian's distribution 2.8, which has no
//! referrers API: the referrers tag schema is what it exercises): a key-based cosign v3 bundle
//! pushed as a referrer lands in the `sha256-<hex>` index, is found again, digest-checked and
//! verifies; a second one is added once; an image without referrers has none.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ring::rand::SystemRandom;
use sealgate_core::cosign::Descriptor;
use sealgate_core::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::engine::{VerifyContext, check_bundle_signature};
use sealgate_core::policy::load;
use sealgate_core::sigstore::bundle::{BUNDLE_V03_MEDIA_TYPE, Bundle, key_bundle, sign_statement};
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_registry::media_type;
use sealgate_registry::referrers::{
    ReferrersSource, fetch_bundle_set, fetch_bundles, list_referrers, push_bundle_referrer,
};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

fn bundle_for(key: &SigningKey, digest: &sealgate_core::Digest) -> Vec<u8> {
    let statement = sign_statement(digest, &serde_json::Map::new());
    let envelope =
        Envelope::sign(key, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, &statement).unwrap();
    key_bundle(&envelope, key.public_key())
}

#[tokio::test(flavor = "multi_thread")]
async fn bundles_round_trip_through_the_referrers_tag_schema() {
    let registry = TestRegistry::start(PLAIN);
    let client = registry.client();
    let image = registry.image_ref("app:v1");
    let digest = sealgate_test_registry::push_tiny_image(&client, &image)
        .await
        .unwrap();
    let manifest = client.get_manifest(&image, "v1").await.unwrap().unwrap();
    let subject = Descriptor::of(&manifest.media_type, &manifest.bytes);
    assert_eq!(subject.digest, digest);

    // Nothing yet: the API is missing (404) and so is the fallback tag.
    let none = list_referrers(&client, &image, &digest, None)
        .await
        .unwrap();
    assert_eq!(none.source, ReferrersSource::TagSchema);
    assert!(none.descriptors.is_empty());
    assert!(
        fetch_bundles(&client, &image, &digest)
            .await
            .unwrap()
            .1
            .is_empty()
    );

    let rng = SystemRandom::new();
    let key = SigningKey::generate(&rng).unwrap();
    let bundle = bundle_for(&key, &digest);
    let pushed = push_bundle_referrer(
        &client,
        &image,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        &bundle,
        serde_json::Map::new(),
    )
    .await
    .unwrap();
    assert!(pushed.tag_schema, "distribution 2.8 has no referrers API");
    let index = client
        .get_manifest(&image, &digest.referrers_tag())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(index.media_type, media_type::OCI_INDEX);

    let (location, found) = fetch_bundles(&client, &image, &digest).await.unwrap();
    assert!(location.ends_with(&format!(":{} (referrers tag)", digest.referrers_tag())));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].manifest, pushed.manifest);
    assert_eq!(found[0].bytes, bundle);

    // It verifies with its key, for this image.
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {{name: p}}
spec:
  validationFailureAction: Enforce
  rules:
  - name: r
    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}
    verifyImages:
    - imageReferences: ["*"]
      mutateDigest: false
      attestors:
      - entries:
        - keys:
            publicKeys: |-
{}
"#,
        key.public_key()
            .to_pem()
            .lines()
            .map(|l| format!("              {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let loaded = load("p.yaml", &yaml);
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let attestor = &loaded.policies[0].rules[0].verify_images[0].attestors[0].entries[0];
    let ctx = VerifyContext {
        trust: TrustedRoot::public_good(),
        now: sealgate_core::timestamp::unix_time(1_795_000_000),
    };
    let parsed = Bundle::parse(&found[0].bytes).unwrap();
    check_bundle_signature(attestor, &parsed, &digest, ctx).unwrap();

    // The same bundle again is listed once; another is added.
    push_bundle_referrer(
        &client,
        &image,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        &bundle,
        serde_json::Map::new(),
    )
    .await
    .unwrap();
    let other = bundle_for(&SigningKey::generate(&rng).unwrap(), &digest);
    push_bundle_referrer(
        &client,
        &image,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        &other,
        serde_json::Map::new(),
    )
    .await
    .unwrap();
    let (_, found) = fetch_bundles(&client, &image, &digest).await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().any(|b| b.bytes == other));

    // Another image of the repository has no referrers.
    let image2 = registry.image_ref("app:v2");
    let digest2 = sealgate_test_registry::push_tiny_image(&client, &image2)
        .await
        .unwrap();
    assert!(
        fetch_bundles(&client, &image2, &digest2)
            .await
            .unwrap()
            .1
            .is_empty()
    );
}

/// What the engine reads: every bundle parsed once, one that is no bundle kept with why (not
/// dropped), in the location the fetch found them.
#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_set_keeps_each_bundle_read_once_and_a_bad_one_with_why() {
    let registry = TestRegistry::start(PLAIN);
    let client = registry.client();
    let image = registry.image_ref("app:v1");
    let digest = sealgate_test_registry::push_tiny_image(&client, &image)
        .await
        .unwrap();
    let manifest = client.get_manifest(&image, "v1").await.unwrap().unwrap();
    let subject = Descriptor::of(&manifest.media_type, &manifest.bytes);
    let empty = fetch_bundle_set(&client, &image, &digest).await.unwrap();
    assert!(empty.bundles.is_empty());
    assert_eq!(empty.image_digest, digest);

    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let good = push_bundle_referrer(
        &client,
        &image,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        &bundle_for(&key, &digest),
        serde_json::Map::new(),
    )
    .await
    .unwrap();
    let bad = push_bundle_referrer(
        &client,
        &image,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        b"{\"mediaType\": \"application/vnd.dev.sigstore.bundle.v0.3+json\"}",
        serde_json::Map::new(),
    )
    .await
    .unwrap();
    let set = fetch_bundle_set(&client, &image, &digest).await.unwrap();
    assert!(
        set.location
            .ends_with(&format!(":{} (referrers tag)", digest.referrers_tag())),
        "{}",
        set.location
    );
    assert_eq!(set.bundles.len(), 2);
    let of = |m| set.bundles.iter().find(|b| b.manifest == m).unwrap();
    let good = of(good.manifest);
    assert!(good.bundle.is_ok());
    assert_eq!(
        good.predicate_type.as_deref(),
        Some(sealgate_core::sigstore::bundle::COSIGN_SIGN_PREDICATE)
    );
    assert!(set.holds_signatures());
    let bad = of(bad.manifest);
    let why = bad.bundle.as_ref().unwrap_err().to_string();
    assert!(why.contains("no verificationMaterial"), "{why}");
}
