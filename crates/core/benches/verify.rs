//! In-process cost of verifying one cosign signature, on a real signature made by cosign
//! (containers/image's test fixture, `testdata/containers-image/`):
//!
//! - `verify_with_key/one_layer`: [`verify_with_key`] on a one-layer signature set: base64 of the
//!   signature annotation, ECDSA P-256/SHA-256 over the exact payload, payload JSON parse, digest
//!   comparison, and the verified result (with the key fingerprint).
//! - `public_key_verify/p256_sha256`: the bare [`PublicKey::verify`] call inside it.
//! - `public_key_from_pem/p256`: reading the public key file's PEM, which `sealgate verify` does once.
//!
//! Run with `cargo bench -p sealgate-core --bench verify`. The same signature through sigstore-rs
//! is `cargo bench -p sealgate-oracle --bench verify` (see BENCHMARKS.md).

// A benchmark: a broken fixture should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use sealgate_core::Digest;
use sealgate_core::cosign::{
    SIGNATURE_ANNOTATION, SignatureLayer, SignatureSet, Verification, verify_with_key,
};
use sealgate_core::crypto::key::{PublicKey, SignatureHash};

const SIGNATURE_FILE: &[u8] = include_bytes!("../testdata/containers-image/signature-1");
const MANIFEST: &[u8] = include_bytes!("../testdata/containers-image/manifest.json");
const KEY: &str = include_str!("../testdata/containers-image/cosign2.pub");

fn bench(c: &mut Criterion) {
    let key = PublicKey::from_pem(KEY).unwrap();
    let layer = SignatureLayer::from_containers_image(SIGNATURE_FILE).unwrap();
    let set = SignatureSet {
        location: "example/key-1:sha256-0489.sig".to_string(),
        image_digest: Digest::sha256_of(MANIFEST),
        layers: vec![layer.clone()],
    };
    // Measure only what verifies: a bench of a failure path would be fast and meaningless.
    assert!(matches!(
        verify_with_key(&set, &key, SignatureHash::Sha256),
        Verification::Verified(ref v) if v.len() == 1
    ));
    let signature = STANDARD
        .decode(layer.descriptor.annotations.as_ref().unwrap()[SIGNATURE_ANNOTATION].trim())
        .unwrap();
    assert_eq!(
        key.verify(SignatureHash::Sha256, &layer.payload, &signature)
            .ok(),
        Some(true)
    );

    c.bench_function("verify_with_key/one_layer", |b| {
        b.iter(|| verify_with_key(black_box(&set), black_box(&key), SignatureHash::Sha256))
    });
    c.bench_function("public_key_verify/p256_sha256", |b| {
        b.iter(|| {
            key.verify(
                SignatureHash::Sha256,
                black_box(&layer.payload),
                black_box(&signature),
            )
        })
    });
    c.bench_function("public_key_from_pem/p256", |b| {
        b.iter(|| PublicKey::from_pem(black_box(KEY)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
