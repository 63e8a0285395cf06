//! The bodies of sealgate's fuzz targets, one function per parser, each taking the fuzzer's
//! bytes.
//!
//! Each body feeds the bytes to a parser that reads untrusted input (an image reference from a
//! Pod, a policy file, a key or certificate file, a Rekor bundle, an AdmissionReview) and then
//! checks what must hold of any result it accepts: a parsed image reference parses again to
//! itself, a decision is reached for every review the parser accepts. A panic, an overflow or a
//! hang is a finding; an `Err` is the parser doing its job.
//!
//! `fuzz/` (a cargo-fuzz project outside the workspace, built on nightly) wraps each function
//! in `fuzz_target!`; `tests/replay.rs` runs every file of `fuzz/corpus/TARGET/` and
//! `fuzz/regressions/TARGET/` through the same function on stable, so CI fails when a fixed
//! crash comes back. See `docs/fuzzing.md`.

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use sealgate_core::cosign::{
    ImageManifest, SignatureLayer, SignatureSet, payload, verify_with_key,
};
use sealgate_core::crypto::cert::parse_pem_certificates;
use sealgate_core::crypto::chain::{cert_info, verify_code_signing_chain};
use sealgate_core::crypto::key::{
    EncryptedKeyFile, PrivateKeyFile, PublicKey, SignatureHash, SigningKey,
};
use sealgate_core::crypto::pem;
use sealgate_core::engine::{Artifact, Evaluation, Mode, Resource, VerifyContext, Want};
use sealgate_core::image::alias::{canonical_repository, same_repository, spellings};
use sealgate_core::image::wildcard;
use sealgate_core::policy::{self, LoadOptions, Policy};
use sealgate_core::sigstore::fulcio::CertIdentity;
use sealgate_core::sigstore::rekor::verify_bundle;
use sealgate_core::sigstore::sct::verify_embedded_sct;
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::unix_time;
use sealgate_core::{Digest, ImageRef};
use sealgate_server::admission::parse_review;

/// A fuzz target: its name (the folder of its corpus) and its body.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name cargo-fuzz knows it by, and the folder of its corpus.
    pub name: &'static str,
    /// What it feeds the bytes to.
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "image_reference",
        run: image_reference,
    },
    Target {
        name: "wildcard",
        run: wildcard_match,
    },
    Target {
        name: "policy_yaml",
        run: policy_yaml,
    },
    Target {
        name: "key_file",
        run: key_file,
    },
    Target {
        name: "certificate",
        run: certificate,
    },
    Target {
        name: "rekor_bundle",
        run: rekor_bundle,
    },
    Target {
        name: "signature_artifacts",
        run: signature_artifacts,
    },
    Target {
        name: "admission_review",
        run: admission_review,
    },
    Target {
        name: "variables",
        run: variables,
    },
];

/// The time every target checks validity windows at (2026-01-01T00:00:00Z): fixed, so a finding
/// replays the same way on any day.
const NOW: i64 = 1_767_225_600;

/// An image reference as a Pod spells it: when it parses, its normal form parses to itself, and
/// every equivalent spelling parses and names the same repository.
pub fn image_reference(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(image) = ImageRef::parse(text) else {
        return;
    };
    let again = ImageRef::parse(image.normalized());
    assert!(
        again
            .as_ref()
            .is_ok_and(|a| a.normalized() == image.normalized()),
        "{text:?}: the normal form {:?} does not parse back to itself: {again:?}",
        image.normalized()
    );
    let _ = image.pinned_string();
    let _ = image.api_host();
    let _ = image.api_repository();
    let _ = image.cosign_identity();
    let canonical = canonical_repository(&image);
    for spelling in spellings(&image) {
        let other = ImageRef::parse(&spelling);
        assert!(
            other.as_ref().is_ok_and(|o| same_repository(o, &image)),
            "{text:?}: the spelling {spelling:?} does not name {canonical}: {other:?}"
        );
    }
}

/// Kyverno's wildcards: the bytes are `PATTERN\nTEXT`. A pattern without wildcards matches
/// itself, `*` matches everything, and matching ends (the fuzzer's timeout catches a pattern
/// that backtracks without bound).
pub fn wildcard_match(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, subject) = text.split_once('\n').unwrap_or((text, text));
    let _ = wildcard::matches(pattern, subject);
    assert!(wildcard::matches("*", subject), "'*' refused {subject:?}");
    if !wildcard::has_wildcards(pattern) {
        assert!(
            wildcard::matches(pattern, pattern),
            "{pattern:?} has no wildcards and does not match itself"
        );
    }
}

/// Kyverno variables and conditions over request data, `TEMPLATE\nJSON`: the template is what
/// a policy writes (a field with `{{ }}` and Kyverno's JMESPath functions, or, when it is JSON,
/// preconditions, attestation conditions and deny conditions), the JSON what a request brings
/// (`request.object`, anything an admission review holds, or the text itself when it is not
/// JSON). Substitution and evaluation end without a panic; a text without variables substitutes
/// to itself.
pub fn variables(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (template, request) = text.split_once('\n').unwrap_or((text, ""));
    let object = serde_json::from_str::<serde_json::Value>(request)
        .unwrap_or_else(|_| serde_json::Value::String(request.to_string()));
    let context = serde_json::json!({
        "request": {"object": object.clone(), "namespace": "default", "operation": "CREATE"},
        "images": {"containers": {"c": {"registry": "ghcr.io", "name": "app", "tag": "v1"}}},
        "element": object,
    });
    let substituted = policy::variables::substitute(template, &context);
    if !template.contains("{{")
        && let Ok(value) = &substituted
    {
        assert_eq!(
            value,
            &serde_json::Value::String(template.to_string()),
            "{template:?} has no variables and did not substitute to itself"
        );
    }
    let Ok(written) = serde_json::from_str::<serde_json::Value>(template) else {
        return;
    };
    let path = policy::JsonPath::parse("spec.rules[0].preconditions").unwrap_or_default();
    if let Ok(conditions) = policy::conditions::Conditions::parse(&written, &path) {
        let _ = conditions.evaluate(&context);
        let _ = conditions.deny(&context);
    }
    if let Ok(blocks) = policy::conditions::ConditionBlocks::parse(&written, &path) {
        let _ = blocks.evaluate(&context);
    }
}

/// A policy file, read as `lint` reads it (strict and lenient): every error and warning renders.
pub fn policy_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow_unknown_fields in [false, true] {
        let outcome = policy::load_with(
            "fuzz.yaml",
            text,
            LoadOptions {
                allow_unknown_fields,
            },
        );
        for e in &outcome.errors {
            let _ = e.to_string();
        }
        for w in &outcome.warnings {
            let _ = w.to_string();
        }
    }
}

/// Key files: public keys (PEM, one or several), a certificate's key, private-key files (plain
/// and encrypted, read up to the password) and raw DER for the SPKI and PKCS#8 readers.
pub fn key_file(data: &[u8]) {
    let rng = SystemRandom::new();
    let _ = PublicKey::from_spki_der(data);
    if let Ok(key) = SigningKey::from_pkcs8(data, &rng) {
        let _ = key.public_key().fingerprint();
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = pem::parse_blocks(text);
    if let Ok(keys) = PublicKey::all_from_pem(text) {
        for key in keys {
            let again = PublicKey::from_pem(&key.to_pem());
            assert!(
                again.as_ref().is_ok_and(|a| *a == key),
                "a public key does not read back from its own PEM: {again:?}"
            );
        }
    }
    let _ = PublicKey::from_certificate_pem(text);
    let _ = PrivateKeyFile::parse(text, &rng);
    // Up to the password: scrypt itself is not parsing, and would slow the fuzzer a hundredfold.
    let _ = EncryptedKeyFile::parse(text).map(|f| f.cost());
}

/// Certificates and chains: PEM bundles, DER, and a chain built from what was given (the first
/// certificate as leaf, the rest as intermediates, the last also as root); the Fulcio identity
/// and the embedded SCTs (the precertificate TBS rebuilt) of each.
pub fn certificate(data: &[u8]) {
    let _ = cert_info(data);
    let _ = CertIdentity::read(data);
    let _ = verify_embedded_sct(data, data, &TrustedRoot::public_good().ctlogs);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(certs) = parse_pem_certificates(text) else {
        return;
    };
    let ders: Vec<Vec<u8>> = certs.iter().map(|c| c.der().to_vec()).collect();
    for der in &ders {
        let _ = cert_info(der);
        let _ = CertIdentity::read(der);
        let issuer = ders.last().map_or(&[][..], Vec::as_slice);
        let _ = verify_embedded_sct(der, issuer, &TrustedRoot::public_good().ctlogs);
    }
    if let (Some(leaf), Some(root)) = (ders.first(), ders.last()) {
        let _ =
            verify_code_signing_chain(leaf, &ders[1..], std::slice::from_ref(root), unix_time(NOW));
    }
}

/// The signature, payload and certificate a real cosign bundle (Connaisseur's fixture) was made
/// for, so a seed close to the real bundle gets past the log lookup.
struct RekorSubject {
    payload: Vec<u8>,
    signature: Vec<u8>,
    certificate: Vec<u8>,
}

fn rekor_subject() -> &'static Option<RekorSubject> {
    static SUBJECT: OnceLock<Option<RekorSubject>> = OnceLock::new();
    SUBJECT.get_or_init(|| {
        let manifest = ImageManifest::parse(include_bytes!(
            "../../core/testdata/connaisseur/sig-manifest.json"
        ))
        .ok()?;
        let layer = manifest.layers.first()?;
        let signature = STANDARD
            .decode(layer.annotation("dev.cosignproject.cosign/signature")?)
            .ok()?;
        let certificate = pem::parse_blocks(layer.annotation("dev.sigstore.cosign/certificate")?)
            .ok()?
            .into_iter()
            .next()?
            .der;
        Some(RekorSubject {
            payload: include_bytes!("../../core/testdata/connaisseur/payload.json").to_vec(),
            signature,
            certificate,
        })
    })
}

/// Rekor bundles (cosign's `dev.sigstore.cosign/bundle` annotation) checked against the public
/// good log keys, and trusted-root files.
pub fn rekor_bundle(data: &[u8]) {
    let _ = TrustedRoot::from_json(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let logs = &TrustedRoot::public_good().tlogs;
    if let Some(subject) = rekor_subject() {
        let _ = verify_bundle(
            text,
            &subject.payload,
            &subject.signature,
            &[&subject.certificate],
            logs,
        );
    }
    let _ = verify_bundle(text, data, data, &[data], logs);
}

/// What a registry hands back for a signature: the `.sig` manifest, the simple-signing payload,
/// and a containers/image signature file, whose layer is then verified (as the engine verifies a
/// fetched layer: annotations, base64, payload JSON, digest) against the key that made the real
/// one.
pub fn signature_artifacts(data: &[u8]) {
    if let Ok(manifest) = ImageManifest::parse(data) {
        for layer in &manifest.layers {
            let _ = layer.annotation("dev.cosignproject.cosign/signature");
        }
    }
    let _ = payload::parse(data);
    let Ok(layer) = SignatureLayer::from_containers_image(data) else {
        return;
    };
    let Ok(key) = PublicKey::from_pem(include_str!(
        "../../core/testdata/containers-image/cosign2.pub"
    )) else {
        return;
    };
    let image_digest = payload::parse(&layer.payload)
        .ok()
        .and_then(|p| p.manifest_digest.parse::<Digest>().ok())
        .unwrap_or_else(|| Digest::sha256_of(b"sealgate fuzz"));
    let set = SignatureSet {
        location: "fuzz.example/app:sha256-fuzz.sig".into(),
        image_digest,
        layers: vec![layer],
    };
    std::hint::black_box(format!(
        "{:?}",
        verify_with_key(&set, &key, SignatureHash::Sha256)
    ));
}

/// The user's guide's policies, as the webhook would enforce them.
fn seed_policies() -> &'static [Policy] {
    static POLICIES: OnceLock<Vec<Policy>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        let files = [
            include_str!("../../core/testdata/policies/fixed/quick-start.yaml"),
            include_str!("../../core/testdata/policies/fixed/scenario-1-dual-signatures.yaml"),
            include_str!("../../core/testdata/policies/fixed/scenario-2-environments.yaml"),
            include_str!("../../core/testdata/policies/fixed/scenario-3-certificates.yaml"),
        ];
        files
            .iter()
            .flat_map(|text| policy::load("seed.yaml", text).policies)
            .collect()
    })
}

/// An AdmissionReview as the webhook reads it, through planning to a decision: the review is
/// parsed, its object read as the kind the request names, and evaluated in both modes against
/// the user's guide's policies, every tag resolving to one digest and every signature set empty.
pub fn admission_review(data: &[u8]) {
    let Ok(mut request) = parse_review(data) else {
        return;
    };
    let _ = request.is_dry_run();
    let Some(operation) = request.operation() else {
        return;
    };
    let Ok(resource) = request.take_resource(operation) else {
        return;
    };
    for mode in [Mode::Mutate, Mode::Validate] {
        evaluate(seed_policies(), &resource, mode);
    }
}

/// Runs one evaluation to its decision, answering every want (at most a bounded number of
/// rounds: an evaluation that keeps asking is a finding).
fn evaluate(policies: &[Policy], resource: &Resource, mode: Mode) {
    const ROUNDS: usize = 8;
    let digest = Digest::sha256_of(b"sealgate fuzz");
    let mut evaluation = Evaluation::new(policies, resource, mode);
    for round in 0.. {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        assert!(
            round < ROUNDS,
            "the evaluation still wants more after {ROUNDS} rounds"
        );
        for want in wants {
            match want {
                Want::Digest(image) => evaluation.digest_resolved(&image, Ok(digest.clone())),
                Want::CachedOutcome(key) => evaluation.outcome_cached(key, None),
                Want::ImageData { reference, .. } => {
                    evaluation.image_data_fetched(&reference, Ok(serde_json::json!({})))
                }
                Want::Signatures { request, .. } if request.artifact == Artifact::Bundles => {
                    let set = sealgate_core::sigstore::bundle_set::BundleSet::empty(
                        request.location(),
                        request.digest.clone(),
                    );
                    evaluation.bundles_fetched(request, Ok(Arc::new(set)));
                }
                Want::Signatures { request, .. } => {
                    let set = SignatureSet {
                        location: format!("{}:fuzz.sig", request.repository_name()),
                        image_digest: request.digest.clone(),
                        layers: Vec::new(),
                    };
                    evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                }
            }
        }
    }
    let finished = evaluation.finish(VerifyContext {
        trust: TrustedRoot::public_good(),
        now: unix_time(NOW),
    });
    std::hint::black_box(format!("{:?}", finished.decision));
}
