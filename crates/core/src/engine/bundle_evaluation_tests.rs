//! Whole evaluations over Sigstore bundles found among the referrers: `type: SigstoreBundle`
//! (referrers only) and `type: Cosign` (`.sig`/`.att` first, the bundles when the tag holds
//! nothing; `cosignOCI11` the other way round), with the real keyless v0.3 bundles of
//! `crates/core/testdata/sigstore` and key-based bundles made as `cosign sign --key` v3 makes
//! them. What is fetched, in which order, the outcome keys and the words of each denial.

use std::sync::Arc;
use std::time::Duration;

use ring::rand::SystemRandom;
use serde_json::{Map, Value, json};

use super::*;
use crate::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::cosign::{SignatureLayer, SignatureSet};
use crate::crypto::key::SigningKey;
use crate::image::digest::Digest;
use crate::policy::Policy;
use crate::sigstore::bundle::{key_bundle, sign_statement};
use crate::sigstore::bundle_set::{BundleSet, ReferrerBundle};
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

use super::tests::{key, pod, policies, signed_layer};

const V03: &[u8] = include_bytes!("../../testdata/sigstore/bundle_v03.json");
const ATTESTATION: &[u8] = include_bytes!("../../testdata/sigstore/oci-attestation.sigstore.json");
const KUBEWARDEN: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const COSIGN_IMAGE: &str =
    "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4";
const WORKFLOW: &str = "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const ACTIONS: &str = "https://token.actions.githubusercontent.com";
const PROVENANCE: &str = "https://example.com/provenance/v1";
const NOW: i64 = 1_795_000_000;

/// What the registry holds for the one image: its `.sig` and `.att` layers and the bundles among
/// its referrers (or a failure for the referrers).
#[derive(Default)]
struct Registry {
    sig: Vec<SignatureLayer>,
    att: Vec<SignatureLayer>,
    bundles: Vec<Vec<u8>>,
    bundles_fail: Option<FetchFailure>,
}

impl Registry {
    fn set(&self, request: &SignatureRequest) -> BundleSet {
        BundleSet {
            location: format!(
                "{}:{} (referrers tag)",
                request.repository_name(),
                request.digest.referrers_tag()
            ),
            image_digest: request.digest.clone(),
            bundles: self
                .bundles
                .iter()
                .map(|b| ReferrerBundle::read(Digest::sha256_of(b), Ok(b.as_slice())))
                .collect(),
        }
    }
}

/// Carries out the evaluation of a Pod running `image` (with a digest) under `p`, answering as
/// `registry` holds: the decision, the outcomes to cache and the places asked for, in order.
fn run(p: &[Policy], image: &str, registry: &Registry) -> (Finished, Vec<SignatureRequest>) {
    let resource = pod("default", &[image]);
    let mut evaluation = Evaluation::new(p, &resource, Mode::Mutate);
    let mut asked = Vec::new();
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Digest(r) => panic!("{r} has a digest"),
                Want::CachedOutcome(key) => evaluation.outcome_cached(key, None),
                Want::ImageData { .. } => unreachable!("no image data here"),
                Want::Signatures { request, .. } => {
                    asked.push(request.clone());
                    match request.artifact {
                        Artifact::Bundles => {
                            let result = match &registry.bundles_fail {
                                Some(f) => Err(f.clone()),
                                None => Ok(Arc::new(registry.set(&request))),
                            };
                            evaluation.bundles_fetched(request, result);
                        }
                        artifact => {
                            let layers = match artifact {
                                Artifact::Signatures => registry.sig.clone(),
                                _ => registry.att.clone(),
                            };
                            let set = SignatureSet {
                                location: request.location(),
                                image_digest: request.digest.clone(),
                                layers,
                            };
                            evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                        }
                    }
                }
            }
        }
    }
    let finished = evaluation.finish(VerifyContext {
        trust: TrustedRoot::public_good(),
        now: unix_time(NOW),
    });
    (finished, asked)
}

/// An Enforce policy whose one verifyImages entry is `entry` (every image, no digest pinning).
fn policy(mut entry: Value) -> Vec<Policy> {
    entry["imageReferences"] = json!(["*"]);
    entry["mutateDigest"] = json!(false);
    policies(
        &json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "bundles"},
            "spec": {
                "validationFailureAction": "Enforce",
                "rules": [{
                    "name": "r",
                    "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "verifyImages": [entry]
                }]
            }
        })
        .to_string(),
    )
}

fn keys(k: &SigningKey) -> Value {
    json!([{"entries": [{"keys": {"publicKeys": k.public_key().to_pem()}}]}])
}

fn digest(d: &str) -> Digest {
    d.parse().unwrap()
}

fn image_at(d: &Digest) -> String {
    format!("registry.company.com/app@{d}")
}

/// cosign v3's signature of `d` by `k`: a key-based v0.3 bundle of its sign statement.
fn sign_bundle(k: &SigningKey, d: &Digest) -> Vec<u8> {
    dsse_bundle(k, &sign_statement(d, &Map::new()))
}

fn dsse_bundle(k: &SigningKey, statement: &[u8]) -> Vec<u8> {
    let envelope =
        Envelope::sign(k, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, statement).unwrap();
    key_bundle(&envelope, k.public_key())
}

/// A key-based bundle of an in-toto statement of `predicate_type` about `d`.
fn attestation_bundle(
    k: &SigningKey,
    d: &Digest,
    predicate_type: &str,
    predicate: Value,
) -> Vec<u8> {
    let statement = json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "app", "digest": {"sha256": d.hex()}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    });
    dsse_bundle(k, statement.to_string().as_bytes())
}

fn message(f: &Finished) -> String {
    f.decision.results[0].images[0].message.clone()
}

fn artifacts(asked: &[SignatureRequest]) -> Vec<Artifact> {
    asked.iter().map(|r| r.artifact).collect()
}

#[test]
fn a_sigstore_bundle_rule_reads_the_referrers_only_and_passes_with_a_key_bundle() {
    let k = key();
    let d = digest(KUBEWARDEN);
    let p = policy(json!({"type": "SigstoreBundle", "attestors": keys(&k)}));
    let registry = Registry {
        bundles: vec![sign_bundle(&k, &d)],
        sig: vec![signed_layer(&key(), "registry.company.com/app", &d)],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image_at(&d), &registry);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(artifacts(&asked), vec![Artifact::Bundles]);
    let result = &f.decision.results[0].images[0];
    assert_eq!(result.reason, Reason::Verified);
    assert_eq!(
        result.signers,
        vec![format!("key {}", k.public_key().fingerprint())]
    );
    // The verified outcome is kept under the referrers, with no fallback.
    assert_eq!(f.verified.len(), 1);
    let (key, _) = &f.verified[0];
    assert_eq!(key.request.artifact, Artifact::Bundles);
    assert_eq!(key.fallback, None);
}

#[test]
fn a_sigstore_bundle_rule_with_another_key_fails_with_kyvernos_words_and_each_bundles_reason() {
    let (k, other) = (key(), key());
    let d = digest(KUBEWARDEN);
    let p = policy(json!({"type": "SigstoreBundle", "attestors": keys(&other)}));
    let registry = Registry {
        bundles: vec![sign_bundle(&k, &d), b"{not a bundle".to_vec()],
        ..Registry::default()
    };
    let (f, _) = run(&p, &image_at(&d), &registry);
    assert!(!f.decision.allowed);
    let m = message(&f);
    assert!(
        m.contains(&format!(
            "entry 0: {BUNDLE_VERIFICATION_FAILED}: none of 2 Sigstore bundle signature(s) among the referrers at registry.company.com/app:{} (referrers tag) verifies: bundle 1 (sha256:",
            d.referrers_tag()
        )),
        "{m}"
    );
    assert!(
        m.contains("): does not verify with the key; bundle 2 (sha256:"),
        "{m}"
    );
    assert!(m.contains("the Sigstore bundle is malformed"), "{m}");
    assert_eq!(
        f.decision.results[0].images[0].reason,
        Reason::SignatureMismatch
    );
    assert!(f.verified.is_empty());
}

#[test]
fn a_sigstore_bundle_rule_without_bundles_says_none_were_found() {
    let k = key();
    let d = digest(KUBEWARDEN);
    let p = policy(json!({"type": "SigstoreBundle", "attestors": keys(&k)}));
    // An attestation bundle is no signature; a `.sig` is not read.
    let registry = Registry {
        bundles: vec![attestation_bundle(&k, &d, PROVENANCE, json!({}))],
        sig: vec![signed_layer(&k, "registry.company.com/app", &d)],
        ..Registry::default()
    };
    let (f, _) = run(&p, &image_at(&d), &registry);
    assert!(!f.decision.allowed);
    let m = message(&f);
    assert!(
        m.contains(&format!(
            "{BUNDLE_VERIFICATION_FAILED}: no Sigstore bundle signatures found among the referrers at registry.company.com/app:{} (referrers tag) (other bundles: {PROVENANCE})",
            d.referrers_tag()
        )),
        "{m}"
    );
    assert_eq!(f.decision.results[0].images[0].reason, Reason::NoSignatures);
}

#[test]
fn the_real_keyless_v03_signature_verifies_through_a_sigstore_bundle_rule() {
    let d = digest(KUBEWARDEN);
    let attestors = |subject: &str| {
        json!([{"entries": [{"keyless": {"subject": subject, "issuer": ACTIONS,
            "rekor": {"url": "https://rekor.sigstore.dev"}}}]}])
    };
    let image = format!("ghcr.io/kubewarden/kubewarden-controller@{d}");
    let registry = Registry {
        bundles: vec![V03.to_vec()],
        ..Registry::default()
    };
    let p = policy(json!({"type": "SigstoreBundle", "attestors": attestors(WORKFLOW)}));
    let (f, _) = run(&p, &image, &registry);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(
        f.decision.results[0].images[0].signers,
        vec![format!("keyless {WORKFLOW} (issuer {ACTIONS})")]
    );
    // Another identity: the bundle verifies but is someone else's.
    let p = policy(json!({"type": "SigstoreBundle",
        "attestors": attestors("https://github.com/evil/*")}));
    let (f, _) = run(&p, &image, &registry);
    assert!(!f.decision.allowed);
    let result = &f.decision.results[0].images[0];
    assert_eq!(result.reason, Reason::Identity);
    assert!(
        result.message.contains(BUNDLE_VERIFICATION_FAILED),
        "{}",
        result.message
    );
    assert!(
        result
            .message
            .contains(&format!("certificate identity {WORKFLOW}")),
        "{}",
        result.message
    );
}

#[test]
fn a_cosign_rule_reads_the_bundles_only_when_the_sig_image_holds_nothing() {
    let (k, other) = (key(), key());
    let d = digest(KUBEWARDEN);
    let image = image_at(&d);
    let p = policy(json!({"attestors": keys(&k)}));
    // No `.sig`: the bundle signs.
    let only_bundle = Registry {
        bundles: vec![sign_bundle(&k, &d)],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image, &only_bundle);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(
        artifacts(&asked),
        vec![Artifact::Signatures, Artifact::Bundles]
    );
    // The verified outcome enters the cache under the Cosign key: `.sig`, then the referrers.
    let (key, _) = &f.verified[0];
    assert_eq!(key.request.artifact, Artifact::Signatures);
    assert_eq!(key.fallback, Some(Artifact::Bundles));

    // A `.sig` signed by this key: the referrers are not read.
    let both = Registry {
        sig: vec![signed_layer(&k, "registry.company.com/app", &d)],
        bundles: vec![sign_bundle(&other, &d)],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image, &both);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(artifacts(&asked), vec![Artifact::Signatures]);

    // A `.sig` by another key: it decides, as cosign's `.sig` does; the bundle is not tried.
    let other_sig = Registry {
        sig: vec![signed_layer(&other, "registry.company.com/app", &d)],
        bundles: vec![sign_bundle(&k, &d)],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image, &other_sig);
    assert!(!f.decision.allowed);
    assert_eq!(artifacts(&asked), vec![Artifact::Signatures]);
    assert!(
        message(&f).contains("verifies with the key"),
        "{}",
        message(&f)
    );

    // Neither: the denial names both places.
    let (f, asked) = run(&p, &image, &Registry::default());
    assert!(!f.decision.allowed);
    assert_eq!(
        artifacts(&asked),
        vec![Artifact::Signatures, Artifact::Bundles]
    );
    assert!(
        message(&f).ends_with(&format!(
            "entry 0: no signatures found at registry.company.com/app:{}; no Sigstore bundle signatures found among the referrers at registry.company.com/app:{} (referrers tag)",
            d.signature_tag(),
            d.referrers_tag()
        )),
        "{}",
        message(&f)
    );
    assert_eq!(f.decision.results[0].images[0].reason, Reason::NoSignatures);

    // No `.sig` and a bundle by another key: both places and the bundle's reason.
    let wrong = Registry {
        bundles: vec![sign_bundle(&other, &d)],
        ..Registry::default()
    };
    let (f, _) = run(&p, &image, &wrong);
    let m = message(&f);
    assert!(
        m.contains(&format!(
            "entry 0: no signatures found at registry.company.com/app:{}; none of 1 Sigstore bundle signature(s) among the referrers at registry.company.com/app:{} (referrers tag) verifies: bundle 1 (sha256:",
            d.signature_tag(),
            d.referrers_tag()
        )),
        "{m}"
    );
    assert!(m.ends_with("): does not verify with the key"), "{m}");
    assert!(!m.contains(BUNDLE_VERIFICATION_FAILED), "{m}");
    assert_eq!(
        f.decision.results[0].images[0].reason,
        Reason::SignatureMismatch
    );
}

#[test]
fn cosign_oci11_reads_the_bundles_first_then_the_sig_image() {
    let (k, other) = (key(), key());
    let d = digest(KUBEWARDEN);
    let image = image_at(&d);
    let p = policy(json!({"cosignOCI11": true, "attestors": keys(&k)}));
    let registry = Registry {
        bundles: vec![sign_bundle(&k, &d)],
        sig: vec![signed_layer(&other, "registry.company.com/app", &d)],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image, &registry);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(artifacts(&asked), vec![Artifact::Bundles]);
    assert_eq!(f.verified[0].0.fallback, Some(Artifact::Signatures));
    // No bundle: the `.sig` image.
    let legacy = Registry {
        sig: vec![signed_layer(&k, "registry.company.com/app", &d)],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image, &legacy);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(
        artifacts(&asked),
        vec![Artifact::Bundles, Artifact::Signatures]
    );
    // Neither: the referrers, then the `.sig` image.
    let (f, _) = run(&p, &image, &Registry::default());
    assert!(
        message(&f).ends_with(&format!(
            "entry 0: no Sigstore bundle signatures found among the referrers at registry.company.com/app:{} (referrers tag); no signatures found at registry.company.com/app:{}",
            d.referrers_tag(),
            d.signature_tag()
        )),
        "{}",
        message(&f)
    );
}

fn attested(entry_type: Option<&str>, k: &SigningKey, value: &str) -> Vec<Policy> {
    let mut entry = json!({
        "attestations": [{
            "type": PROVENANCE,
            "attestors": keys(k),
            "conditions": [{"all": [{"key": "{{ builder.id }}", "operator": "Equals", "value": value}]}]
        }]
    });
    if let Some(t) = entry_type {
        entry["type"] = json!(t);
    }
    policy(entry)
}

#[test]
fn attestations_from_bundles_meet_their_conditions_under_both_types() {
    let k = key();
    let d = digest(KUBEWARDEN);
    let image = image_at(&d);
    let registry = Registry {
        bundles: vec![
            sign_bundle(&k, &d),
            attestation_bundle(&k, &d, PROVENANCE, json!({"builder": {"id": "ci"}})),
        ],
        ..Registry::default()
    };
    for entry_type in [Some("SigstoreBundle"), None] {
        let (f, asked) = run(&attested(entry_type, &k, "ci"), &image, &registry);
        assert!(f.decision.allowed, "{entry_type:?}: {}", f.decision.message);
        assert_eq!(
            f.decision.results[0].images[0].message,
            format!("verified image attestations for {image} ({d})")
        );
        let expected = match entry_type {
            Some(_) => vec![Artifact::Bundles],
            None => vec![Artifact::Attestations, Artifact::Bundles],
        };
        assert_eq!(artifacts(&asked), expected);

        let (f, _) = run(&attested(entry_type, &k, "elsewhere"), &image, &registry);
        assert!(!f.decision.allowed);
        let m = message(&f);
        assert!(
            m.starts_with("image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: "),
            "{m}"
        );
        assert!(
            m.contains(&format!(
                "attestation checks failed for {image} and predicate {PROVENANCE}"
            )),
            "{m}"
        );
        assert_eq!(
            f.decision.results[0].images[0].reason,
            Reason::AttestationConditions
        );
    }
}

#[test]
fn an_attestation_bundle_of_another_type_or_key_does_not_count() {
    let (k, other) = (key(), key());
    let d = digest(KUBEWARDEN);
    let image = image_at(&d);
    let registry = Registry {
        bundles: vec![
            attestation_bundle(&k, &d, "https://example.com/sbom", json!({})),
            attestation_bundle(&other, &d, PROVENANCE, json!({"builder": {"id": "ci"}})),
        ],
        ..Registry::default()
    };
    let (f, _) = run(
        &attested(Some("SigstoreBundle"), &k, "ci"),
        &image,
        &registry,
    );
    assert!(!f.decision.allowed);
    let m = message(&f);
    assert!(
        m.contains(&format!(
            ".keys: {BUNDLE_VERIFICATION_FAILED}: none of 1 Sigstore bundle attestation(s) of type {PROVENANCE} among the referrers at"
        )),
        "{m}"
    );
    assert!(m.contains("does not verify with the key"), "{m}");
    assert!(
        m.ends_with("(other bundles: https://example.com/sbom)"),
        "{m}"
    );
}

#[test]
fn the_real_keyless_attestation_bundle_is_found_by_a_cosign_rule_without_att() {
    let d = digest(COSIGN_IMAGE);
    let image = format!("registry.company.com/cosign@{d}");
    let p = policy(json!({
        "attestations": [{
            "type": "https://cosign.sigstore.dev/attestation/v1",
            "attestors": [{"entries": [{"keyless": {"subject": "cody@soyland.com",
                "issuer": "https://github.com/login/oauth",
                "rekor": {"url": "https://rekor.sigstore.dev"}}}]}]
        }]
    }));
    let registry = Registry {
        bundles: vec![ATTESTATION.to_vec()],
        ..Registry::default()
    };
    let (f, asked) = run(&p, &image, &registry);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(
        artifacts(&asked),
        vec![Artifact::Attestations, Artifact::Bundles]
    );
    assert_eq!(
        f.decision.results[0].images[0].signers,
        vec!["keyless cody@soyland.com (issuer https://github.com/login/oauth)".to_string()]
    );
}

#[test]
fn a_referrers_fetch_cut_off_by_the_budget_says_what_it_waited_for() {
    let k = key();
    let d = digest(KUBEWARDEN);
    let image = image_at(&d);
    let waiting = Waiting::Bundles {
        host: "registry.company.com".into(),
        image: format!("registry.company.com/app@{d}"),
    };
    let registry = Registry {
        bundles_fail: Some(FetchFailure {
            host: "registry.company.com".into(),
            kind: FetchFailureKind::Budget {
                budget: Duration::from_secs(8),
                waiting,
            },
        }),
        ..Registry::default()
    };
    for entry in [
        json!({"type": "SigstoreBundle", "attestors": keys(&k)}),
        json!({"attestors": keys(&k)}),
    ] {
        let (f, _) = run(&policy(entry), &image, &registry);
        let result = &f.decision.results[0].images[0];
        assert_eq!(result.status, Status::Error);
        assert_eq!(result.reason, Reason::Fetch(FetchReason::Budget));
        assert_eq!(
            result.message,
            format!(
                "verification of {image} did not finish within 8s: waiting for registry.company.com to send the Sigstore bundles among the referrers of registry.company.com/app@{d}"
            )
        );
    }
}

#[test]
fn sigstore_bundle_and_cosign_oci11_load_without_the_old_warnings() {
    let k = key();
    for t in ["SigstoreBundle", "Cosign"] {
        let doc = json!({
            "apiVersion": "kyverno.io/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "p"},
            "spec": {"validationFailureAction": "Enforce", "rules": [{
                "name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{"type": t, "imageReferences": ["*"], "cosignOCI11": true,
                    "attestors": keys(&k)}]
            }]}
        });
        let loaded = crate::policy::load("p.yaml", &doc.to_string());
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        assert!(loaded.warnings.is_empty(), "{t}: {:#?}", loaded.warnings);
        assert!(
            loaded.policies[0].rules[0].verify_images[0]
                .unsupported
                .is_none()
        );
    }
}
