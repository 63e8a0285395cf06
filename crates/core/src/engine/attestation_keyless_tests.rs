//! Keyless attestations with a real one: sigstore/cosign's `oci-attestation.sigstore.json`
//! (a DSSE attestation signed keyless by `cody@soyland.com` through GitHub's OAuth, logged in
//! the public-good Rekor), laid out as cosign writes an `.att` layer (envelope, certificate and
//! Rekor bundle annotations) and verified offline: the Fulcio chain at the signing time, the
//! embedded SCT, the SET, the identity, the subject digest, the predicate type and conditions.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{Registry, only_result};
use crate::cosign::{BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION};
use crate::engine::tests::policies;
use crate::engine::{Reason, Status};
use crate::policy::Policy;

const BUNDLE: &str = include_str!("../../testdata/sigstore/oci-attestation.sigstore.json");
/// The image the fixture's statement is about.
const IMAGE: &str =
    "127.0.0.1:60943/repo@sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
const CUSTOM: &str = "https://cosign.sigstore.dev/attestation/v1";

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// The fixture as a legacy `.att` layer; `edit` may change the Rekor bundle first.
fn fixture_layer(edit: impl FnOnce(&mut Value)) -> crate::cosign::SignatureLayer {
    let bundle: Value = serde_json::from_str(BUNDLE).unwrap();
    let envelope = serde_json::to_vec(&bundle["dsseEnvelope"]).unwrap();
    let cert = STANDARD
        .decode(
            bundle["verificationMaterial"]["certificate"]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let log_id = STANDARD
        .decode(entry["logId"]["keyId"].as_str().unwrap())
        .unwrap();
    // cosign's RekorBundleFromProtoTlogEntry.
    let mut rekor = json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
            "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": crate::image::digest::hex_encode(&log_id),
        }
    });
    edit(&mut rekor);
    let mut layer = super::layer_of(&envelope, CUSTOM);
    let annotations = layer.descriptor.annotations.as_mut().unwrap();
    annotations.insert(CERTIFICATE_ANNOTATION.to_string(), pem(&cert));
    annotations.insert(CHAIN_ANNOTATION.to_string(), String::new());
    annotations.insert(BUNDLE_ANNOTATION.to_string(), rekor.to_string());
    layer
}

/// A policy with one attestation of cosign's custom type, `attestors` as given (none: Kyverno's
/// implicit one) and a condition on the predicate's timestamp.
fn policy(attestors: Option<Value>) -> Vec<Policy> {
    let mut attestation = json!({
        "type": CUSTOM,
        "conditions": [{"all": [{
            "key": "{{ Timestamp }}",
            "operator": "Equals",
            "value": "2025-02-28T19:18:11Z",
            "message": "not the attestation of 2025-02-28"
        }]}]
    });
    if let Some(a) = attestors {
        attestation["attestors"] = a;
    }
    policies(
        &json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "keyless-attestations"},
            "spec": {
                "validationFailureAction": "Enforce",
                "rules": [{
                    "name": "attested",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [{
                        "imageReferences": ["*"],
                        "mutateDigest": false,
                        "attestations": [attestation]
                    }]
                }]
            }
        })
        .to_string(),
    )
}

fn keyless(subject: &str, issuer: &str) -> Value {
    json!([{"entries": [{"keyless": {
        "subject": subject,
        "issuer": issuer,
        "rekor": {"url": "https://rekor.sigstore.dev"}
    }}]}])
}

#[test]
fn cosigns_real_keyless_attestation_verifies_offline() {
    let registry = Registry::new(vec![fixture_layer(|_| {})]);
    let d = registry.decide_image(
        &policy(Some(keyless(
            "cody@soyland.com",
            "https://github.com/login/oauth",
        ))),
        IMAGE,
    );
    let image = only_result(&d);
    assert_eq!(image.status, Status::Pass, "{image:#?}");
    assert_eq!(
        image.signers,
        ["keyless cody@soyland.com (issuer https://github.com/login/oauth)"]
    );
    assert!(
        image
            .message
            .starts_with("verified image attestations for 127.0.0.1:60943/repo@sha256:7321"),
        "{}",
        image.message
    );
    // Kyverno's implicit attestor (none written): any Fulcio identity, with its Rekor bundle.
    let d = registry.decide_image(&policy(None), IMAGE);
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
}

#[test]
fn another_identity_another_image_or_a_broken_set_fail() {
    let registry = Registry::new(vec![fixture_layer(|_| {})]);
    let d = registry.decide_image(
        &policy(Some(keyless(
            "alice@example.com",
            "https://github.com/login/oauth",
        ))),
        IMAGE,
    );
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert_eq!(image.reason, Reason::SignatureMismatch);
    assert!(
        image.message.contains("attestation 1: certificate identity cody@soyland.com issued by https://github.com/login/oauth does not match"),
        "{}",
        image.message
    );

    // The same layer served for another image: its statement names another digest.
    let other = "127.0.0.1:60943/repo@sha256:0000000000000000000000000000000000000000000000000000000000000001";
    let d = registry.decide_image(&policy(None), other);
    let image = only_result(&d);
    assert_eq!(image.reason, Reason::SignedOtherDigest);
    assert!(
        image.message.contains("no matching subject digest found"),
        "{}",
        image.message
    );

    // A SET changed by one byte: the log does not vouch for it, and keyless needs the log.
    let broken = Registry::new(vec![fixture_layer(|rekor| {
        let mut set = STANDARD
            .decode(rekor["SignedEntryTimestamp"].as_str().unwrap())
            .unwrap();
        set[20] ^= 1;
        rekor["SignedEntryTimestamp"] = json!(STANDARD.encode(set));
    })]);
    let d = broken.decide_image(&policy(None), IMAGE);
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert_eq!(image.reason, Reason::TransparencyLog);
    assert!(
        image
            .message
            .contains("signed entry timestamp does not verify"),
        "{}",
        image.message
    );
    // Without its bundle, a keyless attestation has no signing time: refused, saying so.
    let unlogged = Registry::new(vec![{
        let mut layer = fixture_layer(|_| {});
        layer
            .descriptor
            .annotations
            .as_mut()
            .unwrap()
            .remove(BUNDLE_ANNOTATION);
        layer
    }]);
    let d = unlogged.decide_image(&policy(None), IMAGE);
    assert!(
        only_result(&d)
            .message
            .contains("the transparency-log proof is missing"),
        "{}",
        only_result(&d).message
    );
}

#[test]
fn the_conditions_see_the_real_predicate() {
    let registry = Registry::new(vec![fixture_layer(|_| {})]);
    let mut policies = policy(None);
    // The same policy, wanting another timestamp.
    let text = serde_json::to_string(&json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "keyless-attestations"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "attested",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": ["*"],
                    "mutateDigest": false,
                    "attestations": [{
                        "type": CUSTOM,
                        "conditions": [{"any": [{
                            "key": "{{ Data }}",
                            "operator": "Equals",
                            "value": "{\"foo\": \"baz\"}\n",
                            "message": "Data is {{ Data }}"
                        }]}]
                    }]
                }]
            }]
        }
    }))
    .unwrap();
    policies.extend(crate::engine::tests::policies(&text));
    let d = registry.decide_image(&policies[1..], IMAGE);
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert!(
        image.message.ends_with(&format!(
            "attestation checks failed for {IMAGE} and predicate {CUSTOM}: Data is {{\"foo\": \"bar\"}}\n"
        )),
        "{:?}",
        image.message
    );
}
