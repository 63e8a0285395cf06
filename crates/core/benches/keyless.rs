//! In-process cost of one keyless signature check, on the real connaisseur signature
//! (`testdata/connaisseur/`: a Fulcio leaf for `philipp.belitz@securesystems.de` under
//! `sigstore-intermediate` and the `sigstore` root, a Rekor bundle, an embedded SCT from
//! `ctfe.sigstore.dev/2022`), against the embedded public-good trusted root:
//!
//! - `keyless/check_attestor/warm`: [`check_attestor`] with a keyless attestor (subject and
//!   issuer): the payload signature by the leaf's key, payload and digest, the Rekor SET and
//!   body, the leaf's validity at the Rekor time, the Fulcio chain (code signing, at that time),
//!   the SCT, the identity. The trusted root has already seen this CA (the steady state of a
//!   webhook or of a `verify` of several signatures): the intermediate→root signature comes from
//!   the trusted root's memo, the leaf→intermediate signature is checked.
//! - `keyless/check_attestor/cold`: the same on a trusted root that has not seen the CA yet (a
//!   fresh copy per iteration, made outside the measured time): the first signature of a CA.
//! - `keyless/chain/warm`, `keyless/chain/cold`: the chain step alone, as the attestor calls it.
//! - `keyless/chain/uncached`: [`verify_code_signing_chain`], which never memoises (certificate
//!   attestors, policy `roots`).
//! - `keyless/set`, `keyless/sct`, `keyless/payload_signature`, `keyless/parse_leaf`: the other
//!   steps alone.
//! - `ecdsa/p384_sha384/ring`: one bare P-384 verification (the intermediate's signature over the
//!   leaf), as the chain does it; sigstore-rs' aws-lc-rs doing the same is in
//!   `cargo bench -p sealgate-oracle --bench keyless` (`oracle/p384_sha384/aws_lc_rs`).
//!
//! Run with `cargo bench -p sealgate-core --bench keyless` (see BENCHMARKS.md).

// A benchmark: a broken fixture should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sealgate_core::Digest;
use sealgate_core::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, ImageManifest,
    SIGNATURE_ANNOTATION, SignatureLayer, SignatureSet,
};
use sealgate_core::crypto::chain::{cert_info, verify_code_signing_chain};
use sealgate_core::crypto::key::{PublicKey, SignatureHash};
use sealgate_core::crypto::pem;
use sealgate_core::engine::{AttestorOutcome, VerifyContext, check_attestor};
use sealgate_core::policy::{Attestor, load};
use sealgate_core::sigstore::fulcio::CertIdentity;
use sealgate_core::sigstore::rekor::verify_bundle;
use sealgate_core::sigstore::sct::verify_embedded_sct;
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::unix_time;
use x509_parser::prelude::{FromDer, X509Certificate};

const SIG_MANIFEST: &[u8] = include_bytes!("../testdata/connaisseur/sig-manifest.json");
const PAYLOAD: &[u8] = include_bytes!("../testdata/connaisseur/payload.json");
const IMAGE_DIGEST: &str =
    "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
/// The Rekor integrated time of the signature (inside the leaf's 10 minutes).
const SIGNED_AT: i64 = 1_717_082_297;
/// 2026-11-25: "now" for the attestor; the Rekor time is the signing time.
const NOW: i64 = 1_795_000_000;

const POLICY: &str = r#"
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: keyless
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify-keyless
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences: ["*"]
        attestors:
        - entries:
          - keyless:
              subject: philipp.belitz@securesystems.de
              issuer: https://github.com/login/oauth
              rekor:
                url: https://rekor.sigstore.dev
"#;

fn attestor() -> Attestor {
    let outcome = load("keyless.yaml", POLICY);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    outcome.policies[0].rules[0].verify_images[0].attestors[0].entries[0].clone()
}

fn layer() -> SignatureLayer {
    let manifest = ImageManifest::parse(SIG_MANIFEST).unwrap();
    SignatureLayer {
        descriptor: manifest.layers[0].clone(),
        payload: PAYLOAD.to_vec(),
    }
}

fn ctx(trust: &TrustedRoot) -> VerifyContext<'_> {
    VerifyContext {
        trust,
        now: unix_time(NOW),
    }
}

fn bench(c: &mut Criterion) {
    let attestor = attestor();
    let layer = layer();
    let set = SignatureSet {
        location: "index.docker.io/phbelitz/rekor-test:sha256-31dc72a1.sig".to_string(),
        image_digest: IMAGE_DIGEST.parse::<Digest>().unwrap(),
        layers: vec![layer.clone()],
    };
    let public_good = TrustedRoot::public_good();
    // Measure only what verifies: a bench of a failure path would be fast and meaningless.
    let verified = |outcome: &AttestorOutcome| matches!(outcome, AttestorOutcome::Verified(_));
    let fresh = public_good.clone();
    assert!(verified(&check_attestor(&attestor, &set, ctx(&fresh))));
    assert!(verified(&check_attestor(&attestor, &set, ctx(public_good))));

    let annotation = |name: &str| layer.descriptor.annotation(name).unwrap();
    let leaf = pem::parse_blocks(annotation(CERTIFICATE_ANNOTATION))
        .unwrap()
        .remove(0)
        .der;
    let hints: Vec<Vec<u8>> = pem::parse_blocks(annotation(CHAIN_ANNOTATION))
        .unwrap()
        .into_iter()
        .map(|b| b.der)
        .collect();
    let signature = STANDARD
        .decode(annotation(SIGNATURE_ANNOTATION).trim())
        .unwrap();
    let at = unix_time(SIGNED_AT);
    let ca = public_good
        .certificate_authorities
        .iter()
        .find(|ca| ca.valid_from.is_none_or(|f| at >= f) && ca.valid_until.is_none_or(|u| at <= u))
        .unwrap();
    let (root, intermediates) = ca.chain.split_last().unwrap();
    let mut path = intermediates.to_vec();
    path.extend(hints.iter().cloned());
    let roots = std::slice::from_ref(root);
    verify_code_signing_chain(&leaf, &path, roots, at).unwrap();
    public_good.verify_ca_chain(ca, &leaf, &path, at).unwrap();

    c.bench_function("keyless/check_attestor/warm", |b| {
        b.iter(|| check_attestor(black_box(&attestor), black_box(&set), ctx(public_good)))
    });
    c.bench_function("keyless/check_attestor/cold", |b| {
        b.iter_batched_ref(
            || public_good.clone(),
            |trust| check_attestor(black_box(&attestor), black_box(&set), ctx(trust)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("keyless/chain/warm", |b| {
        b.iter(|| public_good.verify_ca_chain(ca, black_box(&leaf), &path, at))
    });
    c.bench_function("keyless/chain/cold", |b| {
        b.iter_batched_ref(
            || public_good.clone(),
            |trust| trust.verify_ca_chain(ca, black_box(&leaf), &path, at),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("keyless/chain/uncached", |b| {
        b.iter(|| verify_code_signing_chain(black_box(&leaf), &path, roots, at))
    });

    let chain = verify_code_signing_chain(&leaf, &path, roots, at).unwrap();
    let bundle = annotation(BUNDLE_ANNOTATION);
    let leaf_ref: &[u8] = &leaf;
    verify_bundle(bundle, PAYLOAD, &signature, &[leaf_ref], &public_good.tlogs).unwrap();
    c.bench_function("keyless/set", |b| {
        b.iter(|| {
            verify_bundle(
                black_box(bundle),
                PAYLOAD,
                &signature,
                &[leaf_ref],
                &public_good.tlogs,
            )
        })
    });
    verify_embedded_sct(&leaf, &chain.issuer_spki, &public_good.ctlogs).unwrap();
    c.bench_function("keyless/sct", |b| {
        b.iter(|| verify_embedded_sct(black_box(&leaf), &chain.issuer_spki, &public_good.ctlogs))
    });
    let info = cert_info(&leaf).unwrap();
    assert_eq!(
        info.public_key
            .verify(SignatureHash::Sha256, PAYLOAD, &signature)
            .ok(),
        Some(true)
    );
    c.bench_function("keyless/payload_signature", |b| {
        b.iter(|| {
            info.public_key
                .verify(SignatureHash::Sha256, black_box(PAYLOAD), &signature)
        })
    });
    c.bench_function("keyless/parse_leaf", |b| {
        b.iter(|| {
            (
                cert_info(black_box(&leaf)).unwrap(),
                CertIdentity::read(black_box(&leaf)).unwrap(),
            )
        })
    });

    // The intermediate's P-384/SHA-384 signature over the leaf, checked with ring.
    let (_, parsed) = X509Certificate::from_der(&leaf).unwrap();
    let tbs = parsed.tbs_certificate.as_ref().to_vec();
    let leaf_signature = parsed.signature_value.data.to_vec();
    let intermediate = PublicKey::from_spki_der(&chain.issuer_spki).unwrap();
    assert_eq!(
        intermediate
            .verify(SignatureHash::Sha384, &tbs, &leaf_signature)
            .ok(),
        Some(true)
    );
    c.bench_function("ecdsa/p384_sha384/ring", |b| {
        b.iter(|| intermediate.verify(SignatureHash::Sha384, black_box(&tbs), &leaf_signature))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
