//! sigstore-rs' in-process verification of the same real cosign signature that
//! `cargo bench -p sealgate-core --bench verify` measures (containers/image's fixture in
//! `crates/core/testdata/containers-image/`), for a side-by-side comparison:
//!
//! - `sigstore/layer_check/one_layer`: what sealgate's `verify_with_key/one_layer` covers, done
//!   by sigstore-rs: parse the simple-signing payload (`SignatureLayer::new` does it when
//!   fetching), compare its image digest (`satisfies_manifest_digest`), then
//!   `verify_constraints` with a `PublicKeyVerifier` (base64 decode + ECDSA over the payload).
//! - `sigstore/verify_constraints/one_layer`: only the last step, on an already-built layer.
//! - `sigstore/verify_signature/p256_sha256`: the bare `CosignVerificationKey::verify_signature`
//!   (aws-lc-rs underneath), to compare with sealgate's `public_key_verify/p256_sha256` (ring).
//! - `sigstore/key_from_pem/p256`: reading the public key.
//!
//! Run with `cargo bench -p sealgate-oracle --bench verify`.

// A benchmark: a broken fixture should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use sigstore::cosign::SignatureLayer;
use sigstore::cosign::payload::simple_signing::SimpleSigning;
use sigstore::cosign::verification_constraint::{PublicKeyVerifier, VerificationConstraintVec};
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

const SIGNATURE_FILE: &[u8] = include_bytes!("../../core/testdata/containers-image/signature-1");
const MANIFEST: &[u8] = include_bytes!("../../core/testdata/containers-image/manifest.json");
const KEY: &[u8] = include_bytes!("../../core/testdata/containers-image/cosign2.pub");
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// The payload bytes and the base64 signature annotation of the fixture.
fn fixture() -> (Vec<u8>, String) {
    let json = SIGNATURE_FILE
        .strip_prefix(b"\x00sigstore-json\n")
        .expect("the fixture starts with the containers/image marker");
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    let payload = STANDARD.decode(v["payload"].as_str().unwrap()).unwrap();
    let signature = v["annotations"][SIGNATURE_ANNOTATION]
        .as_str()
        .unwrap()
        .to_string();
    (payload, signature)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// What sigstore-rs' (crate-private) `SignatureLayer::new` builds for a key-signed layer.
fn layer(payload: &[u8], signature: &str) -> SignatureLayer {
    SignatureLayer {
        simple_signing: serde_json::from_slice(payload).unwrap(),
        oci_digest: format!("sha256:{}", sha256_hex(payload)),
        certificate_signature: None,
        bundle: None,
        signature: Some(signature.to_string()),
        raw_data: payload.to_vec(),
    }
}

fn bench(c: &mut Criterion) {
    let (payload, signature) = fixture();
    let image_digest = format!("sha256:{}", sha256_hex(MANIFEST));
    let key = CosignVerificationKey::from_pem(KEY, &SigningScheme::default()).unwrap();
    let constraints: VerificationConstraintVec = vec![Box::new(
        PublicKeyVerifier::new(KEY, &SigningScheme::default()).unwrap(),
    )];
    let built = layer(&payload, &signature);
    // Measure only what verifies.
    assert!(
        built
            .simple_signing
            .satisfies_manifest_digest(&image_digest)
    );
    assert!(constraints[0].verify(&built).unwrap());
    assert!(
        sigstore::cosign::verify_constraints(std::slice::from_ref(&built), constraints.iter())
            .is_ok()
    );
    let raw_signature = STANDARD.decode(&signature).unwrap();
    assert!(
        key.verify_signature(Signature::Raw(&raw_signature), &payload)
            .is_ok()
    );

    c.bench_function("sigstore/layer_check/one_layer", |b| {
        b.iter(|| {
            let simple_signing: SimpleSigning =
                serde_json::from_slice(black_box(&payload)).unwrap();
            assert!(simple_signing.satisfies_manifest_digest(&image_digest));
            let layers = [SignatureLayer {
                simple_signing,
                oci_digest: built.oci_digest.clone(),
                certificate_signature: None,
                bundle: None,
                signature: Some(signature.clone()),
                raw_data: payload.clone(),
            }];
            sigstore::cosign::verify_constraints(&layers, constraints.iter()).is_ok()
        })
    });
    let layers = [built];
    c.bench_function("sigstore/verify_constraints/one_layer", |b| {
        b.iter(|| {
            sigstore::cosign::verify_constraints(black_box(&layers), constraints.iter()).is_ok()
        })
    });
    c.bench_function("sigstore/verify_signature/p256_sha256", |b| {
        b.iter(|| {
            key.verify_signature(
                Signature::Raw(black_box(&raw_signature)),
                black_box(&payload),
            )
            .is_ok()
        })
    });
    c.bench_function("sigstore/key_from_pem/p256", |b| {
        b.iter(|| CosignVerificationKey::from_pem(black_box(KEY), &SigningScheme::default()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
