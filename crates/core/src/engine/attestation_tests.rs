//! Attestations through the one evaluation: DSSE envelopes signed here with keys generated here,
//! checked by the engine (signature over the PAE, subject digest, predicate type, conditions,
//! count), with Kyverno's messages.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use ring::rand::SystemRandom;
use serde_json::{Value, json};

use super::super::tests::{key, pem, pod, policies, signed_layer};
use super::super::*;
use crate::cosign::dsse::{
    DSSE_MEDIA_TYPE, Envelope, IN_TOTO_PAYLOAD_TYPE, IN_TOTO_STATEMENT_V01,
    PREDICATE_TYPE_ANNOTATION,
};
use crate::cosign::{Descriptor, SIGNATURE_ANNOTATION, SignatureLayer, SignatureSet};
use crate::crypto::key::SigningKey;
use crate::image::digest::Digest;
use crate::policy::{Policy, load};
use crate::sigstore::bundle_set::BundleSet;
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

const IMAGE: &str = "registry.company.com/app:v1";
const PROVENANCE: &str = "https://slsa.dev/provenance/v0.2";
const REVIEW: &str = "https://example.com/CodeReview/v1";

fn digest_of(image: &str) -> Digest {
    Digest::sha256_of(image.as_bytes())
}

/// A `.att` layer as `cosign attest --key` writes it: the DSSE envelope of a statement about
/// `subject`, signed by `k`.
fn attestation_layer(
    k: &SigningKey,
    subject: &Digest,
    predicate_type: &str,
    predicate: Value,
) -> SignatureLayer {
    let statement = json!({
        "_type": IN_TOTO_STATEMENT_V01,
        "subject": [{"name": "registry.company.com/app", "digest": {"sha256": subject.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    let payload = serde_json::to_vec(&statement).unwrap();
    let envelope = Envelope::sign(k, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, &payload).unwrap();
    layer_of(&envelope.to_json(), predicate_type)
}

fn layer_of(envelope: &[u8], predicate_type: &str) -> SignatureLayer {
    let mut descriptor = Descriptor::of(DSSE_MEDIA_TYPE, envelope);
    descriptor.annotations = Some(BTreeMap::from([
        (SIGNATURE_ANNOTATION.to_string(), String::new()),
        (
            PREDICATE_TYPE_ANNOTATION.to_string(),
            predicate_type.to_string(),
        ),
    ]));
    SignatureLayer {
        descriptor,
        payload: envelope.to_vec(),
    }
}

fn provenance(builder: &str) -> Value {
    json!({"builder": {"id": builder}, "buildType": "https://example.com/build/v1"})
}

/// A registry holding one provenance of [`IMAGE`] by `builder`, signed by `k`.
fn provenance_by(k: &SigningKey, builder: &str) -> Registry {
    Registry::new(vec![attestation_layer(
        k,
        &digest_of(IMAGE),
        PROVENANCE,
        provenance(builder),
    )])
}

/// `.sig` layers and `.att` layers of [`IMAGE`]; every key wanted recorded.
struct Registry {
    signatures: Vec<SignatureLayer>,
    attestations: Vec<SignatureLayer>,
    keys: Mutex<Vec<OutcomeKey>>,
}

impl Registry {
    fn new(attestations: Vec<SignatureLayer>) -> Registry {
        Registry {
            signatures: Vec::new(),
            attestations,
            keys: Mutex::new(Vec::new()),
        }
    }

    fn decide(&self, policies: &[Policy]) -> Decision {
        self.decide_image(policies, IMAGE)
    }

    /// The decision for a Pod running `image`.
    fn decide_image(&self, policies: &[Policy], image: &str) -> Decision {
        self.decide_resource(policies, &pod("default", &[image]))
    }

    /// The decision for `resource`.
    fn decide_resource(&self, policies: &[Policy], resource: &Resource) -> Decision {
        self.finish_resource(policies, resource).decision
    }

    /// The finished evaluation of `resource`: its decision and the outcomes it offers for
    /// caching.
    fn finish_resource(&self, policies: &[Policy], resource: &Resource) -> Finished {
        let mut evaluation = Evaluation::new(policies, resource, Mode::Mutate);
        loop {
            let wants = evaluation.wants();
            if wants.is_empty() {
                break;
            }
            for want in wants {
                match want {
                    Want::Digest(image) => {
                        evaluation.digest_resolved(&image, Ok(digest_of(image.normalized())))
                    }
                    // No cache: every key asked for is recorded, none answered.
                    Want::CachedOutcome(key) => {
                        self.keys.lock().unwrap().push(key.clone());
                        evaluation.outcome_cached(key, None);
                    }
                    Want::Signatures { request, .. } if request.artifact == Artifact::Bundles => {
                        let set = BundleSet::empty(request.location(), request.digest.clone());
                        evaluation.bundles_fetched(request, Ok(Arc::new(set)));
                    }
                    Want::Signatures { request, .. } => {
                        let layers = match request.artifact {
                            Artifact::Signatures => self.signatures.clone(),
                            Artifact::Attestations => self.attestations.clone(),
                            Artifact::Bundles => unreachable!("answered above"),
                        };
                        let set = SignatureSet {
                            location: request.location(),
                            image_digest: request.digest.clone(),
                            layers,
                        };
                        evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                    }
                    Want::ImageData { .. } => {}
                }
            }
        }
        evaluation.finish(VerifyContext {
            trust: TrustedRoot::public_good(),
            now: unix_time(1_795_000_000),
        })
    }
}

/// A policy whose entry checks `attestations` (YAML, indented for the entry) and, optionally,
/// signatures by `signer`.
fn policy(attestations: &str, signer: Option<&SigningKey>) -> Vec<Policy> {
    let attestors = match signer {
        Some(k) => format!(
            r#"
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                {}
              rekor:
                ignoreTlog: true"#,
            pem(k)
        ),
        None => String::new(),
    };
    policy_text("", &attestors, attestations)
}

/// One attestation of `predicate_type` by `k` with `conditions` (YAML under `conditions:`).
fn attestation(k: &SigningKey, predicate_type: &str, conditions: &str) -> String {
    format!(
        r#"        - type: {predicate_type}
          attestors:
          - entries:
            - keys:
                publicKeys: |-
                  {}
          conditions:
{conditions}"#,
        pem(k).replace("\n                ", "\n                  ")
    )
}

const BUILDER_IS_CI: &str = r#"          - all:
            - key: "{{ builder.id }}"
              operator: Equals
              value: "https://ci.company.com/builder"
              message: "the image was not built by the company's CI""#;

fn only_result(d: &Decision) -> &ImageResult {
    assert_eq!(d.results.len(), 1, "{:#?}", d.results);
    assert_eq!(d.results[0].images.len(), 1, "{:#?}", d.results);
    &d.results[0].images[0]
}

#[test]
fn an_attestation_signed_by_the_key_with_conditions_met_passes() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    let d = registry.decide(&policy(&attestation(&k, PROVENANCE, BUILDER_IS_CI), None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Pass, "{image:#?}");
    assert_eq!(image.reason, Reason::Verified);
    assert_eq!(
        image.message,
        format!(
            "verified image attestations for {IMAGE} ({})",
            digest_of(IMAGE)
        )
    );
    assert_eq!(
        image.signers,
        [format!("key {}", k.public_key().fingerprint())]
    );
    assert!(d.allowed);
    assert_eq!(
        d.results[0].message,
        format!("verified image attestations for {IMAGE}")
    );
    // mutateDigest (the CRD default) pins the verified digest.
    assert!(
        d.patch
            .iter()
            .any(|p| p["value"] == json!(format!("{IMAGE}@{}", digest_of(IMAGE))))
    );
}

#[test]
fn a_failing_condition_fails_with_kyvernos_message() {
    let k = key();
    let registry = provenance_by(&k, "https://laptop.example/me");
    let d = registry.decide(&policy(&attestation(&k, PROVENANCE, BUILDER_IS_CI), None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert_eq!(image.reason, Reason::AttestationConditions);
    assert_eq!(
        image.message,
        format!(
            "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: attestation checks failed for {IMAGE} and predicate {PROVENANCE}: the image was not built by the company's CI"
        )
    );
    assert!(!d.allowed);
}

#[test]
fn the_wrong_key_a_tampered_statement_and_another_subject_do_not_verify() {
    let k = key();
    let stranger = key();
    let digest = digest_of(IMAGE);
    let by_stranger = attestation_layer(&stranger, &digest, PROVENANCE, provenance("https://ci"));
    // The statement changed after signing: same signature, another payload.
    let genuine = attestation_layer(&k, &digest, PROVENANCE, provenance("https://ci"));
    let mut envelope = Envelope::parse(&genuine.payload).unwrap();
    envelope.payload = String::from_utf8(envelope.payload)
        .unwrap()
        .replace("https://ci", "https://cj")
        .into_bytes();
    let tampered = layer_of(&envelope.to_json(), PROVENANCE);
    let other_image = attestation_layer(
        &k,
        &digest_of("registry.company.com/other:v1"),
        PROVENANCE,
        provenance("https://ci"),
    );
    for (layer, words, reason) in [
        (
            by_stranger,
            "attestation 1: does not verify with the key",
            Reason::SignatureMismatch,
        ),
        (
            tampered,
            "attestation 1: does not verify with the key",
            Reason::SignatureMismatch,
        ),
        (
            other_image,
            "attestation 1: no matching subject digest found (subjects: registry.company.com/app@sha256:",
            Reason::SignedOtherDigest,
        ),
    ] {
        let registry = Registry::new(vec![layer]);
        let d = registry.decide(&policy(
            &attestation(&k, PROVENANCE, "            []"),
            None,
        ));
        let image = only_result(&d);
        assert_eq!(image.status, Status::Fail, "{image:#?}");
        assert_eq!(image.reason, reason);
        assert!(
            image.message.starts_with(
                "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: no matching attestations: none of 1 attestation(s) at registry.company.com/app:sha256-"
            ),
            "{}",
            image.message
        );
        assert!(
            image.message.contains(".att verifies: "),
            "{}",
            image.message
        );
        assert!(image.message.contains(words), "{}", image.message);
    }
}

#[test]
fn another_predicate_type_is_not_found() {
    let k = key();
    let registry = Registry::new(vec![attestation_layer(
        &k,
        &digest_of(IMAGE),
        REVIEW,
        json!({"repo": {"branch": "main"}}),
    )]);
    let d = registry.decide(&policy(&attestation(&k, PROVENANCE, BUILDER_IS_CI), None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert_eq!(image.reason, Reason::PredicateTypeNotFound);
    assert!(
        image.message.ends_with(&format!(
            ".attestations[0].attestors[0].entries[0].keys: attestations not found for predicate type {PROVENANCE} (found: {REVIEW}); no Sigstore bundle attestations of type {PROVENANCE} found among the referrers at registry.company.com/app@{} (referrers)",
            digest_of(IMAGE)
        )),
        "{}",
        image.message
    );
}

#[test]
fn no_att_image_fails_with_no_matching_attestations() {
    let k = key();
    let registry = Registry::new(Vec::new());
    let d = registry.decide(&policy(&attestation(&k, PROVENANCE, BUILDER_IS_CI), None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert_eq!(image.reason, Reason::NoAttestations);
    assert_eq!(
        image.message,
        format!(
            "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: no matching attestations: no attestations found at registry.company.com/app:{}; no Sigstore bundle attestations of type {PROVENANCE} found among the referrers at registry.company.com/app@{} (referrers)",
            digest_of(IMAGE).attestation_tag(),
            digest_of(IMAGE)
        )
    );
}

#[test]
fn count_two_of_two_with_one_missing_fails_with_the_counts() {
    let (k1, k2) = (key(), key());
    let registry = Registry::new(vec![attestation_layer(
        &k1,
        &digest_of(IMAGE),
        PROVENANCE,
        provenance("https://ci.company.com/builder"),
    )]);
    let two = format!(
        r#"        - type: {PROVENANCE}
          attestors:
          - entries:
            - keys:
                publicKeys: |-
                  {}
            - keys:
                publicKeys: |-
                  {}"#,
        pem(&k1).replace("\n                ", "\n                  "),
        pem(&k2).replace("\n                ", "\n                  ")
    );
    let d = registry.decide(&policy(&two, None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert!(
        image.message.starts_with(
            "image attestations verification failed, verifiedCount: 1, requiredCount: 2, error: .attestations[0].attestors[0].entries[1].keys: no matching attestations: none of 1 attestation(s)"
        ),
        "{}",
        image.message
    );
    // count: 1 of the same two passes on the first.
    let one = two.replace(
        "          attestors:\n          - entries:",
        "          attestors:\n          - count: 1\n            entries:",
    );
    let d = registry.decide(&policy(&one, None));
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
}

#[test]
fn every_statement_of_the_type_must_satisfy_the_conditions() {
    let k = key();
    let digest = digest_of(IMAGE);
    let registry = Registry::new(vec![
        attestation_layer(
            &k,
            &digest,
            PROVENANCE,
            provenance("https://ci.company.com/builder"),
        ),
        // Another type is not checked against these conditions.
        attestation_layer(&k, &digest, REVIEW, json!({"repo": {"branch": "dev"}})),
        attestation_layer(&k, &digest, PROVENANCE, provenance("https://laptop")),
    ]);
    let d = registry.decide(&policy(&attestation(&k, PROVENANCE, BUILDER_IS_CI), None));
    assert_eq!(only_result(&d).reason, Reason::AttestationConditions);
    let registry = Registry::new(registry.attestations[..2].to_vec());
    let d = registry.decide(&policy(&attestation(&k, PROVENANCE, BUILDER_IS_CI), None));
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
}

#[test]
fn the_attestation_name_holds_the_first_predicate() {
    let k = key();
    let registry = Registry::new(vec![attestation_layer(
        &k,
        &digest_of(IMAGE),
        REVIEW,
        json!({"repo": {"branch": "main", "uri": "https://github.com/example/my-project"}}),
    )]);
    let named = format!(
        "        - name: review\n{}",
        attestation(
            &k,
            REVIEW,
            r#"          - any:
            - key: "{{ review.repo.branch }}"
              operator: Equals
              value: main
            all:
            - key: "{{ repo.uri }}"
              operator: Equals
              value: https://github.com/example/my-project"#
        )
        .replacen("        - type:", "          type:", 1)
    );
    let d = registry.decide(&policy(&named, None));
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
    // A variable neither the predicate, the name nor the rule's context holds cannot be
    // evaluated: a failure that says so, as in Kyverno.
    let unknown = attestation(
        &k,
        REVIEW,
        r#"          - all:
            - key: "{{ nowhere.metadata.name }}"
              operator: Equals
              value: test"#,
    );
    let d = registry.decide(&policy(&unknown, None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert!(
        image.message.contains(
            "failed to check attestations: failed to substitute variables in attestation conditions: "
        ),
        "{}",
        image.message
    );
}

#[test]
fn two_attestations_with_other_conditions_never_share_an_outcome() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    let other_builder = BUILDER_IS_CI.replace("https://ci.company.com/builder", "https://other");
    let both = format!(
        "{}\n{}",
        attestation(&k, PROVENANCE, BUILDER_IS_CI),
        attestation(&k, PROVENANCE, &other_builder)
    );
    let d = registry.decide(&policy(&both, None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail, "{image:#?}");
    assert!(
        image
            .message
            .contains(".attestations[1].attestors[0].entries[0].keys: attestation checks failed"),
        "{}",
        image.message
    );
    let keys = registry.keys.lock().unwrap();
    let distinct: HashSet<&OutcomeKey> = keys.iter().collect();
    assert_eq!(distinct.len(), 2, "{keys:#?}");
    assert!(
        keys.iter()
            .all(|k| k.request.artifact == Artifact::Attestations)
    );
    // The signature check of the same key is another key again.
    drop(keys);
    let registry = Registry {
        signatures: vec![signed_layer(
            &k,
            "registry.company.com/app",
            &digest_of(IMAGE),
        )],
        ..Registry::new(registry.attestations.clone())
    };
    let d = registry.decide(&policy(
        &attestation(&k, PROVENANCE, BUILDER_IS_CI),
        Some(&k),
    ));
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
    let keys = registry.keys.lock().unwrap();
    assert_eq!(keys.len(), 2, "{keys:#?}");
    assert_ne!(keys[0].attestor, keys[1].attestor);
}

#[test]
fn signatures_are_checked_first() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    // The image is not signed: the signature check's failure is the result.
    let d = registry.decide(&policy(
        &attestation(&k, PROVENANCE, BUILDER_IS_CI),
        Some(&k),
    ));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail);
    assert_eq!(image.reason, Reason::NoSignatures);
    assert!(
        image.message.contains("attestor set 1 of 1"),
        "{}",
        image.message
    );
}

#[test]
fn a_rekor_block_requires_the_attestations_bundle() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    let with_rekor = attestation(&k, PROVENANCE, BUILDER_IS_CI).replace(
        "          conditions:",
        "                rekor:\n                  url: https://rekor.sigstore.dev\n          conditions:",
    );
    let d = registry.decide(&policy(&with_rekor, None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail, "{image:#?}");
    assert_eq!(image.reason, Reason::TransparencyLog);
    assert!(
        image
            .message
            .contains("the transparency-log proof is missing"),
        "{}",
        image.message
    );
}

#[test]
fn keyless_and_implicit_attestors_want_a_certificate() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    // Kyverno's implicit attestor (none written) is keyless with any identity: an envelope
    // signed with a plain key and no certificate does not pass it.
    let implicit = format!("        - type: {PROVENANCE}");
    let d = registry.decide(&policy(&implicit, None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail, "{image:#?}");
    assert!(
        image.message.contains(".attestations[0].attestors[0].entries[0].keyless: no matching attestations: none of 1 attestation(s)"),
        "{}",
        image.message
    );
    assert!(
        image
            .message
            .contains("attestation 1: it carries no certificate"),
        "{}",
        image.message
    );
    let keyless = format!(
        r#"        - type: {PROVENANCE}
          attestors:
          - entries:
            - keyless:
                subject: "https://github.com/company/*"
                issuer: https://token.actions.githubusercontent.com
                rekor:
                  url: https://rekor.sigstore.dev"#
    );
    let d = registry.decide(&policy(&keyless, None));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail, "{image:#?}");
    assert!(
        image
            .message
            .contains("attestation 1: it carries no certificate"),
        "{}",
        image.message
    );
    let outcome = load(
        "p.yaml",
        &format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - imageReferences: ['*']\n      attestations:\n{implicit}\n"
        ),
    );
    assert!(
        outcome.warnings.iter().any(|w| w.location.path.to_string()
            == "spec.rules[0].verifyImages[0].attestations[0]"
            && w.kind == crate::policy::PolicyWarningKind::AttestationWithoutAttestors),
        "{:#?}",
        outcome.warnings
    );
}

#[test]
fn bad_conditions_are_located_load_errors() {
    let k = key();
    let text = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: r
      match:
        any:
        - resources:
            kinds:
            - Pod
      verifyImages:
      - imageReferences:
        - "registry.company.com/*"
        attestations:
{}
"#,
        attestation(
            &k,
            PROVENANCE,
            r#"          - all:
            - key: "{{ builder.id }}"
              operator: Equal
              value: x"#
        )
    );
    let outcome = load("p.yaml", &text);
    assert_eq!(outcome.errors.len(), 1, "{:#?}", outcome.errors);
    let e = &outcome.errors[0];
    assert!(
        e.location
            .path
            .to_string()
            .starts_with("spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0]"),
        "{}",
        e.location.path
    );
    assert!(e.location.line > 0);
    assert!(outcome.policies.is_empty());
}

#[path = "attestation_keyless_tests.rs"]
mod keyless;

/// One attestation of `predicate_type` named `name`, by `k`, without conditions.
fn named_attestation(k: &SigningKey, predicate_type: &str, name: &str) -> String {
    attestation(k, predicate_type, "            []").replacen(
        "        - type:",
        &format!("        - name: {name}\n          type:"),
        1,
    )
}

/// `validate` with `message` and `deny.conditions` (YAML under `conditions:`), for the entry.
fn validate_deny(message: &str, conditions: &str) -> String {
    format!(
        "        validate:\n          message: \"{message}\"\n          deny:\n            conditions:\n{conditions}"
    )
}

const DENY_OTHER_BUILDERS: &str = r#"              any:
              - key: "{{ prov.builder.id }}"
                operator: NotEquals
                value: https://ci.company.com/builder
                message: "built by {{ prov.builder.id }}""#;

#[test]
fn validate_deny_reads_the_named_predicates_after_the_attestations() {
    let k = key();
    let entry = format!(
        "{}\n{}",
        named_attestation(&k, PROVENANCE, "prov"),
        validate_deny(
            "{{ images.containers.c0.name }} is not allowed",
            DENY_OTHER_BUILDERS
        )
    );
    let policies = policy(&entry, None);
    let ci = provenance_by(&k, "https://ci.company.com/builder");
    let d = ci.decide(&policies);
    let image = only_result(&d);
    assert_eq!(image.status, Status::Pass, "{image:#?}");
    assert_eq!(image.reason, Reason::Verified);
    assert!(
        image
            .message
            .ends_with("validate.deny conditions do not hold"),
        "{}",
        image.message
    );
    // The same attestation by the laptop verifies, and the deny conditions hold: Kyverno's words,
    // the entry's message and the held condition's, their variables resolved.
    let laptop = provenance_by(&k, "https://laptop");
    let d = laptop.decide(&policies);
    let image = only_result(&d);
    assert_eq!(image.status, Status::Fail, "{image:#?}");
    assert_eq!(image.reason, Reason::DenyConditions);
    assert_eq!(
        image.message,
        "validation in verifyImages failed: app is not allowed; built by https://laptop"
    );
    assert!(!d.allowed);
    // The outcome keeps the predicate, so it is another key than the same attestation's
    // without validate.deny (whose cached outcome holds none).
    let plain = policy(&named_attestation(&k, PROVENANCE, "prov"), None);
    let d = laptop.decide(&plain);
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
    let keys = laptop.keys.lock().unwrap();
    let distinct: HashSet<&OutcomeKey> = keys.iter().collect();
    assert_eq!(distinct.len(), 2, "{keys:#?}");
}

#[test]
fn validate_deny_compares_two_attestations_and_fails_closed_when_it_cannot_decide() {
    // The builder signs the provenance, the review tool the review. (Kyverno puts under an
    // attestation's name the first predicate that verifies with the attestor, of any type, so
    // one key signing both would put the provenance under both names; sealgate does the same.)
    let (k, reviewer) = (key(), key());
    let digest = digest_of(IMAGE);
    let registry = Registry::new(vec![
        attestation_layer(
            &k,
            &digest,
            PROVENANCE,
            provenance("https://ci.company.com/builder"),
        ),
        attestation_layer(
            &reviewer,
            &digest,
            REVIEW,
            json!({"repo": {"branch": "dev", "uri": "https://github.com/example/my-project"}}),
        ),
    ]);
    let two = |conditions: &str| {
        policy(
            &format!(
                "{}\n{}\n{}",
                named_attestation(&k, PROVENANCE, "prov"),
                named_attestation(&reviewer, REVIEW, "review"),
                validate_deny("", conditions)
            ),
            None,
        )
    };
    // Built by CI from a branch other than main: denied, with the condition's message only.
    let d = registry.decide(&two(r#"              all:
              - key: "{{ prov.builder.id }}"
                operator: Equals
                value: https://ci.company.com/*
              - key: "{{ review.repo.branch }}"
                operator: NotEquals
                value: main
                message: "branch {{ review.repo.branch }} is not main""#));
    let image = only_result(&d);
    assert_eq!(
        (image.status, image.message.as_str()),
        (
            Status::Fail,
            "validation in verifyImages failed: branch dev is not main"
        ),
        "{image:#?}"
    );
    // A variable nothing holds: the image cannot be decided, an error (denied under Enforce).
    let d = registry.decide(&two(r#"              any:
              - key: "{{ nowhere.branch }}"
                operator: Equals
                value: main"#));
    let image = only_result(&d);
    assert_eq!(image.status, Status::Error, "{image:#?}");
    assert_eq!(image.reason, Reason::DenyConditions);
    assert!(
        image.message.starts_with(
            "validation in verifyImages failed: failed to check deny conditions at spec.rules[0].verifyImages[0].validate.deny.conditions: "
        ),
        "{}",
        image.message
    );
    assert!(!d.allowed);
}

#[test]
fn validate_deny_without_attestations_is_never_checked_and_lint_says_so() {
    let k = key();
    let text = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: p
spec:
  validationFailureAction: Enforce
  rules:
    - name: r
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences: ["registry.company.com/*"]
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                {}
{}"#,
        pem(&k),
        validate_deny("never", "              any: []")
    );
    let outcome = load("p.yaml", &text);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    let warning = outcome
        .warnings
        .iter()
        .map(ToString::to_string)
        .find(|w| w.contains("validate.deny is checked only after the entry's attestations"))
        .unwrap_or_else(|| panic!("{:#?}", outcome.warnings));
    assert!(
        warning.contains("spec.rules[0].verifyImages[0].validate.deny"),
        "{warning}"
    );
}

/// A policy whose rule has `context` (YAML under `context:`) and whose entry checks
/// `attestations`.
fn policy_with_context(context: &str, attestations: &str) -> Vec<Policy> {
    policy_text(&format!("\n      context:\n{context}"), "", attestations)
}

/// The policy of one rule over Pods with `context` (YAML lines after the rule's `match`, or
/// empty) and one entry for `registry.company.com/*` with `attestors` (YAML lines after
/// `imageReferences`, or empty) and `attestations` (YAML under `attestations:`).
fn policy_text(context: &str, attestors: &str, attestations: &str) -> Vec<Policy> {
    policies(&format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-provenance
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: check-provenance
      match:
        any:
        - resources:
            kinds:
            - Pod{context}
      verifyImages:
      - imageReferences:
        - "registry.company.com/*"{attestors}
        attestations:
{attestations}
"#
    ))
}

const BUILDER_FROM_CONTEXT: &str = r#"          - all:
            - key: "{{ builder.id }}"
              operator: Equals
              value: "{{ allowed.builder }}"
              message: "built by {{ builder.id }}, not by {{ allowed.builder }}""#;

#[test]
fn conditions_read_the_rules_context_entries_beside_the_predicate() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    let allowed = |builder: &str| {
        format!(
            "      - name: allowed\n        variable:\n          value:\n            builder: {builder}"
        )
    };
    let ci = policy_with_context(
        &allowed("https://ci.company.com/builder"),
        &attestation(&k, PROVENANCE, BUILDER_FROM_CONTEXT),
    );
    assert!(
        !ci[0].reads_request(),
        "a context entry alone is resolved at load"
    );
    let d = registry.decide(&ci);
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
    let other = policy_with_context(
        &allowed("https://other.example.com/builder"),
        &attestation(&k, PROVENANCE, BUILDER_FROM_CONTEXT),
    );
    let d = registry.decide(&other);
    let image = only_result(&d);
    assert_eq!(image.reason, Reason::AttestationConditions, "{image:#?}");
    assert!(
        image.message.contains(
            "built by https://ci.company.com/builder, not by https://other.example.com/builder"
        ),
        "{}",
        image.message
    );
    // Two values of the entry are two outcomes, never one cached for both.
    let keys = registry.keys.lock().unwrap();
    let distinct: HashSet<&OutcomeKey> = keys.iter().collect();
    assert_eq!(distinct.len(), 2, "{keys:#?}");
    drop(keys);
    // An entry with no value (a ConfigMap nobody gave) is the attestors' error, naming the
    // condition, the variable and the ConfigMap; nothing is fetched for it.
    let missing = policy_with_context(
        "      - name: allowed\n        configMap:\n          name: builders\n          namespace: platform",
        &attestation(&k, PROVENANCE, BUILDER_FROM_CONTEXT),
    );
    let registry = Registry::new(Vec::new());
    let d = registry.decide(&missing);
    let image = only_result(&d);
    assert_eq!(image.status, Status::Error, "{image:#?}");
    assert!(
        image.message.contains(
            "spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].value: `{{ allowed.builder }}` from ConfigMap platform/builders: context entry `allowed` has no value"
        ),
        "{}",
        image.message
    );
    assert!(registry.keys.lock().unwrap().is_empty());
}

#[test]
fn conditions_read_the_request_and_the_entry_is_compiled_per_request() {
    let k = key();
    let registry = provenance_by(&k, "https://ci.company.com/builder");
    // Only builds by the namespace's own builder: the request and the predicate in one
    // expression, as Kyverno merges the predicate into the rule's context.
    let conditions = r#"          - all:
            - key: "{{ contains(builder.id, request.object.metadata.namespace) }}"
              operator: Equals
              value: true
              message: "not built for {{ request.object.metadata.namespace }}""#;
    let policies = policy(&attestation(&k, PROVENANCE, conditions), None);
    assert!(policies[0].reads_request());
    let d = registry.decide_resource(&policies, &pod("ci", &[IMAGE]));
    assert_eq!(only_result(&d).status, Status::Pass, "{:#?}", d.results);
    let d = registry.decide_resource(&policies, &pod("laptop", &[IMAGE]));
    let image = only_result(&d);
    assert_eq!(image.reason, Reason::AttestationConditions, "{image:#?}");
    assert!(
        image.message.contains("not built for laptop"),
        "{}",
        image.message
    );
    // The outcome of one request is not the other's.
    let keys = registry.keys.lock().unwrap();
    let distinct: HashSet<&OutcomeKey> = keys.iter().collect();
    assert_eq!(distinct.len(), 2, "{keys:#?}");
}

#[test]
fn a_kept_predicate_too_large_to_cache_is_verified_again_instead() {
    let k = key();
    let entry = format!(
        "{}\n{}",
        named_attestation(&k, PROVENANCE, "prov"),
        validate_deny("not allowed", DENY_OTHER_BUILDERS)
    );
    let policies = policy(&entry, None);
    let resource = pod("default", &[IMAGE]);
    // A provenance of a few bytes: verified, and offered for caching with its predicate.
    let small = provenance_by(&k, "https://ci.company.com/builder");
    let finished = small.finish_resource(&policies, &resource);
    assert!(
        finished.decision.allowed,
        "{:#?}",
        finished.decision.results
    );
    assert_eq!(finished.verified.len(), 1);
    assert!(
        finished.verified[0]
            .1
            .verified()
            .and_then(|v| v.predicate())
            .is_some()
    );
    // The same with a predicate over the limit (an SBOM-sized statement): the same decision,
    // and nothing offered for caching.
    let mut large = provenance("https://ci.company.com/builder");
    large["materials"] = json!("x".repeat(CACHED_PREDICATE_BYTES));
    let registry = Registry::new(vec![attestation_layer(
        &k,
        &digest_of(IMAGE),
        PROVENANCE,
        large,
    )]);
    let finished = registry.finish_resource(&policies, &resource);
    assert!(
        finished.decision.allowed,
        "{:#?}",
        finished.decision.results
    );
    assert!(finished.verified.is_empty(), "{:#?}", finished.verified);
}
