//! Bundles checked with attestors: the two real keyless v0.3 bundles (sigstore-rs's cosign v3
//! signature of kubewarden-controller v1.34.0 by its GitHub release workflow, and
//! sigstore/cosign's attestation by cody@soyland.com) offline against the public-good root, and
//! key-based v0.3 bundles made as `cosign sign --key` makes them; each changed part fails with
//! its own refusal.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use serde_json::{Map, Value, json};

use super::*;
use crate::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::crypto::key::SigningKey;
use crate::engine::outcome::{CertificateRefusal, IdentityMismatchKind};
use crate::engine::tests::policies;
use crate::policy::Policy;
use crate::sigstore::bundle::{key_bundle, sign_statement};
use crate::sigstore::rekor::RekorError;
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

const V03: &[u8] = include_bytes!("../../testdata/sigstore/bundle_v03.json");
const ATTESTATION: &[u8] = include_bytes!("../../testdata/sigstore/oci-attestation.sigstore.json");
const KUBEWARDEN: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const COSIGN_IMAGE: &str =
    "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
const WORKFLOW: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const ACTIONS: &str = "https://token.actions.githubusercontent.com";

fn ctx() -> VerifyContext<'static> {
    VerifyContext {
        trust: TrustedRoot::public_good(),
        now: unix_time(1_795_000_000),
    }
}

fn digest(d: &str) -> Digest {
    d.parse().unwrap()
}

/// A policy whose one attestor entry is `entry`; kept alive with the attestor.
fn attestor(entry: Value) -> (Vec<Policy>, usize) {
    let p = policies(
        &json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "bundles"},
            "spec": {
                "validationFailureAction": "Enforce",
                "rules": [{
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [{
                        "imageReferences": ["*"],
                        "mutateDigest": false,
                        "attestors": [{"entries": [entry]}]
                    }]
                }]
            }
        })
        .to_string(),
    );
    (p, 0)
}

fn entry(p: &[Policy]) -> &Attestor {
    &p[0].rules[0].verify_images[0].attestors[0].entries[0]
}

fn keyless(subject: &str, issuer: &str) -> (Vec<Policy>, usize) {
    attestor(json!({"keyless": {"subject": subject, "issuer": issuer,
        "rekor": {"url": "https://rekor.sigstore.dev"}}}))
}

fn edited(data: &[u8], edit: impl FnOnce(&mut Value)) -> Bundle {
    let mut v: Value = serde_json::from_slice(data).unwrap();
    edit(&mut v);
    Bundle::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
}

#[test]
fn the_real_cosign_v3_signature_verifies_keyless_offline() {
    let (p, _) = keyless(WORKFLOW, ACTIONS);
    let b = Bundle::parse(V03).unwrap();
    let signer = check_bundle_signature(entry(&p), &b, &digest(KUBEWARDEN), ctx()).unwrap();
    assert_eq!(
        signer,
        Signer::Keyless {
            identity: WORKFLOW.into(),
            issuer: Some(ACTIONS.into())
        }
    );
    // A wildcard over the repository's workflows, too.
    let (p, _) = keyless(
        "https://github.com/kubewarden/kubewarden-controller/.github/workflows/*",
        ACTIONS,
    );
    check_bundle_signature(entry(&p), &b, &digest(KUBEWARDEN), ctx()).unwrap();
}

#[test]
fn the_real_attestation_bundle_verifies_and_is_not_a_signature() {
    let (p, _) = keyless("cody@soyland.com", "https://github.com/login/oauth");
    let b = Bundle::parse(ATTESTATION).unwrap();
    let (statement, _) = check_bundle(entry(&p), &b, &digest(COSIGN_IMAGE), ctx()).unwrap();
    assert_eq!(
        statement.predicate_type,
        "https://cosign.sigstore.dev/attestation/v1"
    );
    let err = check_bundle_signature(entry(&p), &b, &digest(COSIGN_IMAGE), ctx()).unwrap_err();
    assert!(err.to_string().contains("not a signature"), "{err}");
}

#[test]
fn another_identity_digest_signature_set_or_proof_fails_with_its_reason() {
    let (p, _) = keyless(WORKFLOW, ACTIONS);
    let a = entry(&p);
    let b = Bundle::parse(V03).unwrap();
    // Another identity.
    let (other, _) = keyless("https://github.com/evil/*", ACTIONS);
    assert!(matches!(
        check_bundle(entry(&other), &b, &digest(KUBEWARDEN), ctx()),
        Err(AttestationRefusal::Certificate(CertificateRefusal::Identity(m)))
            if m.kind == IdentityMismatchKind::Subject
    ));
    // Another image.
    assert!(matches!(
        check_bundle(a, &b, &digest(COSIGN_IMAGE), ctx()),
        Err(AttestationRefusal::NoMatchingSubject { .. })
    ));
    // A changed signature.
    let sig = edited(V03, |v| {
        let s = &mut v["dsseEnvelope"]["signatures"][0]["sig"];
        let mut raw = STANDARD.decode(s.as_str().unwrap()).unwrap();
        raw[12] ^= 1;
        *s = Value::String(STANDARD.encode(raw));
    });
    assert!(matches!(
        check_bundle(a, &sig, &digest(KUBEWARDEN), ctx()),
        Err(AttestationRefusal::Certificate(
            CertificateRefusal::NotByCertificate { .. }
        ))
    ));
    // A changed subject (the statement is signed, so the signature fails first).
    let subject = edited(V03, |v| {
        let payload = STANDARD
            .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let text = String::from_utf8(payload)
            .unwrap()
            .replace("c811d58d", "c811d58e");
        v["dsseEnvelope"]["payload"] = Value::String(STANDARD.encode(text));
    });
    assert!(matches!(
        check_bundle(a, &subject, &digest(KUBEWARDEN), ctx()),
        Err(AttestationRefusal::Certificate(
            CertificateRefusal::NotByCertificate { .. }
        ))
    ));
    // A changed SET.
    let set = edited(V03, |v| {
        let e = &mut v["verificationMaterial"]["tlogEntries"][0];
        e["integratedTime"] = Value::String("1775719410".into());
    });
    assert!(matches!(
        check_bundle(a, &set, &digest(KUBEWARDEN), ctx()),
        Err(AttestationRefusal::Tlog(TlogRefusal::Invalid(
            RekorError::BadSet(_)
        )))
    ));
    // A changed inclusion proof.
    let proof = edited(V03, |v| {
        let p = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
        p["logIndex"] = Value::String("1139201546".into());
    });
    assert!(matches!(
        check_bundle(a, &proof, &digest(KUBEWARDEN), ctx()),
        Err(AttestationRefusal::Tlog(TlogRefusal::Inclusion(_)))
    ));
    // No log entry: keyless needs one.
    let none = edited(V03, |v| {
        v["verificationMaterial"]["tlogEntries"] = json!([]);
    });
    assert!(matches!(
        check_bundle(a, &none, &digest(KUBEWARDEN), ctx()),
        Err(AttestationRefusal::Tlog(TlogRefusal::Missing))
    ));
}

fn key_signed(key: &SigningKey, d: &Digest, annotations: Map<String, Value>) -> Bundle {
    let rng = SystemRandom::new();
    let statement = sign_statement(d, &annotations);
    let envelope = Envelope::sign(key, &rng, IN_TOTO_PAYLOAD_TYPE, &statement).unwrap();
    Bundle::parse(&key_bundle(&envelope, key.public_key())).unwrap()
}

#[test]
fn key_based_bundles_verify_with_their_key_only() {
    let rng = SystemRandom::new();
    let key = SigningKey::generate(&rng).unwrap();
    let other = SigningKey::generate(&rng).unwrap();
    let d = digest(KUBEWARDEN);
    let b = key_signed(&key, &d, Map::new());
    assert!(matches!(
        b.material,
        crate::sigstore::bundle::Material::PublicKey { .. }
    ));
    let (p, _) = attestor(json!({"keys": {"publicKeys": key.public_key().to_pem()}}));
    assert_eq!(
        check_bundle_signature(entry(&p), &b, &d, ctx()).unwrap(),
        Signer::Key {
            fingerprint: key.public_key().fingerprint()
        }
    );
    let (q, _) = attestor(json!({"keys": {"publicKeys": other.public_key().to_pem()}}));
    assert!(matches!(
        check_bundle(entry(&q), &b, &d, ctx()),
        Err(AttestationRefusal::NotByKey)
    ));
    assert!(matches!(
        check_bundle(entry(&p), &b, &digest(COSIGN_IMAGE), ctx()),
        Err(AttestationRefusal::NoMatchingSubject { .. })
    ));
    // A rekor block asks for a log entry the bundle does not have.
    let (r, _) = attestor(json!({"keys": {"publicKeys": key.public_key().to_pem(),
        "rekor": {"url": "https://rekor.sigstore.dev"}}}));
    assert!(matches!(
        check_bundle(entry(&r), &b, &d, ctx()),
        Err(AttestationRefusal::Tlog(TlogRefusal::Missing))
    ));
    // Annotations are on the subject, as cosign v3 writes `-a`.
    let mut annotations = Map::new();
    annotations.insert("env".into(), json!("prod"));
    let annotated = key_signed(&key, &d, annotations);
    let (s, _) = attestor(json!({"keys": {"publicKeys": key.public_key().to_pem()},
        "annotations": {"env": "prod"}}));
    check_bundle_signature(entry(&s), &annotated, &d, ctx()).unwrap();
    assert!(matches!(
        check_bundle(entry(&s), &b, &d, ctx()),
        Err(AttestationRefusal::MissingAnnotations { .. })
    ));
}

/// The bundle's RFC 3161 timestamp with the byte `from_end` bytes before its end changed.
fn timestamp_changed(from_end: usize) -> Bundle {
    edited(V03, |v| {
        let t = &mut v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
            ["signedTimestamp"];
        let mut raw = STANDARD.decode(t.as_str().unwrap()).unwrap();
        let at = raw.len() - from_end;
        raw[at] ^= 1;
        *t = Value::String(STANDARD.encode(raw));
    })
}

#[test]
fn the_real_timestamp_verifies_and_a_broken_one_is_dropped_beside_the_log_time() {
    let (p, _) = keyless(WORKFLOW, ACTIONS);
    let b = Bundle::parse(V03).unwrap();
    let check = b.verify_timestamps(&ctx().trust.timestamp_authorities);
    assert_eq!(check.verified.len(), 1, "{:?}", check.refused);
    check_bundle_signature(entry(&p), &b, &digest(KUBEWARDEN), ctx()).unwrap();
    // Its CMS signature broken: it does not verify, and the SET's time stands (sigstore-go drops
    // it, as sigstore-python does).
    let broken = timestamp_changed(3);
    let check = broken.verify_timestamps(&ctx().trust.timestamp_authorities);
    assert!(check.verified.is_empty());
    assert_eq!(check.refused.len(), 1);
    check_bundle_signature(entry(&p), &broken, &digest(KUBEWARDEN), ctx()).unwrap();
    // A trusted root without timestamp authorities: the same.
    let mut root = TrustedRoot::public_good().clone();
    root.timestamp_authorities.clear();
    let bare = VerifyContext {
        trust: &root,
        ..ctx()
    };
    check_bundle_signature(entry(&p), &b, &digest(KUBEWARDEN), bare).unwrap();
}

#[test]
fn a_verified_timestamp_outside_the_certificate_validity_refuses_the_bundle() {
    // The trusted TSA vouches for genTime; a certificate valid only later is refused for it.
    use crate::sigstore::bundle::{TimestampRefusal, judge_timestamps};
    let b = Bundle::parse(V03).unwrap();
    let check = b.verify_timestamps(&ctx().trust.timestamp_authorities);
    let at = b.rfc3161_timestamps[0].gen_time;
    let e =
        judge_timestamps(&check, true, Some((unix_time(at + 1), unix_time(at + 600)))).unwrap_err();
    assert!(matches!(
        e,
        TimestampRefusal::CertificateNotValid { index: 0, .. }
    ));
    let refusal = AttestationRefusal::Timestamp(e);
    assert!(
        refusal.to_string().starts_with(
            "the signing certificate was not valid at the time of its rfc3161 timestamp 0"
        ),
        "{refusal}"
    );
}
