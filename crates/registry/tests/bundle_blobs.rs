//! Referrers whose Sigstore bundle blob cannot be read, against the real test registry (Debian's
//! distribution 2.8, referrers tag schema): a blob gone from the registry's storage (404, as after
//! a garbage collection) and one over the client's bundle limit (the smaller of
//! [`MAX_BUNDLE_BYTES`] and `Limits::blob_bytes`). The bundle set keeps each such bundle with
//! why, beside the readable ones, and still counts it as a possible signature, so a decision
//! names it; the strict [`fetch_bundles`] fails with the same error.

// Test helpers outside #[test] fns: a failed unwrap or panic is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use ring::rand::SystemRandom;
use sealgate_core::Digest;
use sealgate_core::ImageRef;
use sealgate_core::cosign::Descriptor;
use sealgate_core::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::engine::{Artifact, SignatureRequest};
use sealgate_core::sigstore::bundle::{
    BUNDLE_V03_MEDIA_TYPE, COSIGN_SIGN_PREDICATE, MAX_BUNDLE_BYTES, key_bundle, sign_statement,
};
use sealgate_core::sigstore::bundle_set::{BundleSet, ReferrerBundle, Unreadable};
use sealgate_registry::driver::{ClientFetch, Fetch};
use sealgate_registry::referrers::{fetch_bundle_set, fetch_bundles, push_bundle_referrer};
use sealgate_registry::{Client, Error, Limits, RegistryOptions};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig, push_tiny_image};

const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

fn bundle_for(key: &SigningKey, digest: &Digest) -> Vec<u8> {
    let statement = sign_statement(digest, &serde_json::Map::new());
    let envelope =
        Envelope::sign(key, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, &statement).unwrap();
    key_bundle(&envelope, key.public_key())
}

/// An image `app:v1` in `registry`: the reference and its digest.
async fn image(registry: &TestRegistry, client: &Client) -> (ImageRef, Digest) {
    let image = registry.image_ref("app:v1");
    let digest = push_tiny_image(client, &image).await.unwrap();
    (image, digest)
}

/// Pushes `bundle` as a referrer of `image`; returns the referrer manifest's digest.
async fn push(client: &Client, image: &ImageRef, bundle: &[u8]) -> Digest {
    let manifest = client.get_manifest(image, "v1").await.unwrap().unwrap();
    let subject = Descriptor::of(&manifest.media_type, &manifest.bytes);
    let pushed = push_bundle_referrer(
        client,
        image,
        &subject,
        BUNDLE_V03_MEDIA_TYPE,
        bundle,
        serde_json::Map::new(),
    )
    .await
    .unwrap();
    assert!(pushed.tag_schema, "distribution 2.8 has no referrers API");
    pushed.manifest
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

/// The bundle of referrer `manifest` in `set`.
fn of<'s>(set: &'s BundleSet, manifest: &Digest) -> &'s ReferrerBundle {
    set.bundles
        .iter()
        .find(|b| &b.manifest == manifest)
        .unwrap_or_else(|| panic!("no bundle of referrer {manifest} in {set:?}"))
}

/// Why `bundle`'s blob could not be fetched (a failed test if it was, or if it is no blob
/// failure).
fn blob_failure(bundle: &ReferrerBundle) -> String {
    match &bundle.bundle {
        Err(Unreadable::Blob(why)) => {
            assert_eq!(bundle.predicate_type, None);
            assert_eq!(
                Unreadable::Blob(why.clone()).to_string(),
                format!("its bundle blob could not be fetched: {why}")
            );
            why.clone()
        }
        other => panic!("expected a blob failure, got {other:?}"),
    }
}

fn request(image: &ImageRef, digest: &Digest) -> SignatureRequest {
    SignatureRequest::of(
        Artifact::Bundles,
        std::sync::Arc::new(image.clone()),
        digest.clone(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_whose_blob_is_missing_is_kept_with_why_beside_the_readable_one() {
    let registry = TestRegistry::start(PLAIN);
    let client = registry.client();
    let (image, digest) = image(&registry, &client).await;
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let good = push(&client, &image, &bundle_for(&key, &digest)).await;
    let lost_bundle = bundle_for(&key, &digest);
    let lost_blob = Digest::sha256_of(&lost_bundle);
    let lost = push(&client, &image, &lost_bundle).await;
    remove_blob(&registry, &lost_blob);

    let set = fetch_bundle_set(&client, &image, &digest).await.unwrap();
    assert_eq!(set.bundles.len(), 2, "{set:?}");
    assert!(of(&set, &good).bundle.is_ok(), "{set:?}");
    assert_eq!(
        of(&set, &good).predicate_type.as_deref(),
        Some(COSIGN_SIGN_PREDICATE)
    );
    let why = blob_failure(of(&set, &lost));
    assert_eq!(
        why,
        format!(
            "blob {lost_blob} of {host}/app not found on {host}; check the repository name, tag and digest",
            host = registry.host()
        )
    );

    // Alone, the missing bundle still may be a signature: a policy is told why it is not one.
    let alone = registry.image_ref("alone:v1");
    let alone_digest = push_tiny_image(&client, &alone).await.unwrap();
    let alone_bundle = bundle_for(&key, &alone_digest);
    let alone_manifest = {
        let manifest = client.get_manifest(&alone, "v1").await.unwrap().unwrap();
        let subject = Descriptor::of(&manifest.media_type, &manifest.bytes);
        push_bundle_referrer(
            &client,
            &alone,
            &subject,
            BUNDLE_V03_MEDIA_TYPE,
            &alone_bundle,
            serde_json::Map::new(),
        )
        .await
        .unwrap()
        .manifest
    };
    remove_blob(&registry, &Digest::sha256_of(&alone_bundle));
    let set = fetch_bundle_set(&client, &alone, &alone_digest)
        .await
        .unwrap();
    assert_eq!(set.bundles.len(), 1, "{set:?}");
    assert!(set.holds_signatures(), "{set:?}");
    assert!(blob_failure(of(&set, &alone_manifest)).contains("not found on"));

    // The driver's fetch answers the set, not a failure of the whole fetch.
    let fetch = ClientFetch::new(registry.client());
    let fetched = fetch
        .bundles(&request(&image, &digest), false)
        .await
        .unwrap();
    assert_eq!(
        *fetched,
        fetch_bundle_set(&client, &image, &digest).await.unwrap()
    );

    // The strict fetch (cosign verify's) fails with the same error.
    match fetch_bundles(&client, &image, &digest).await {
        Err(e @ Error::NotFound { .. }) => assert_eq!(e.to_string(), why),
        other => panic!("expected the missing blob's error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_over_the_limit_is_kept_with_why_and_one_at_the_limit_is_read() {
    let registry = TestRegistry::start(PLAIN);
    let client = registry.client();
    let (image, digest) = image(&registry, &client).await;
    assert!(client.options().limits.blob_bytes > MAX_BUNDLE_BYTES);
    // Not bundles: a blob is read (up to the limit) before it is parsed.
    let at_limit = vec![b' '; MAX_BUNDLE_BYTES];
    let over_limit = vec![b' '; MAX_BUNDLE_BYTES + 1];
    let at = push(&client, &image, &at_limit).await;
    let over = push(&client, &image, &over_limit).await;

    let set = fetch_bundle_set(&client, &image, &digest).await.unwrap();
    assert_eq!(set.bundles.len(), 2, "{set:?}");
    // At the limit the blob arrives whole and is refused as no bundle, not as too large.
    match &of(&set, &at).bundle {
        Err(Unreadable::Bundle(_)) => {}
        other => panic!("expected a blob that is no bundle, got {other:?}"),
    }
    let why = blob_failure(of(&set, &over));
    assert_eq!(
        why,
        format!(
            "blob {} of {host}/app from {host} is larger than the {MAX_BUNDLE_BYTES}-byte limit",
            Digest::sha256_of(&over_limit),
            host = registry.host()
        )
    );
    assert!(set.holds_signatures(), "{set:?}");
    match fetch_bundles(&client, &image, &digest).await {
        Err(e @ Error::TooLarge { .. }) => assert_eq!(e.to_string(), why),
        other => panic!("expected the oversized blob's error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_blob_limit_below_the_bundle_limit_is_the_one_applied() {
    let registry = TestRegistry::start(PLAIN);
    let client = registry.client();
    let (image, digest) = image(&registry, &client).await;
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let bundle = bundle_for(&key, &digest);
    let manifest = push(&client, &image, &bundle).await;
    let limit = 512;
    assert!(bundle.len() > limit, "{} bytes", bundle.len());
    let small = Client::new(RegistryOptions {
        limits: Limits {
            blob_bytes: limit,
            ..Limits::default()
        },
        ..registry.client_options()
    })
    .unwrap();

    let set = fetch_bundle_set(&small, &image, &digest).await.unwrap();
    assert_eq!(
        blob_failure(of(&set, &manifest)),
        format!(
            "blob {} of {host}/app from {host} is larger than the {limit}-byte limit",
            Digest::sha256_of(&bundle),
            host = registry.host()
        )
    );
    // The default client reads the same bundle.
    let set = fetch_bundle_set(&client, &image, &digest).await.unwrap();
    assert!(of(&set, &manifest).bundle.is_ok(), "{set:?}");
}
