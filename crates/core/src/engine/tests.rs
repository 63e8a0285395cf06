//! Engine tests: the user's scenarios with keys generated here, and Kyverno's count, failure
//! action, coverage and patch semantics. Signatures are real (signed with ring and checked by the
//! engine); only the registry is replaced by evidence built in memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use super::*;
use crate::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Descriptor, ImageManifest,
    SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, SignatureSet, payload,
};
use crate::crypto::key::SigningKey;
use crate::image::ImageRef;
use crate::image::digest::Digest;
use crate::policy::{Operation, Policy, load};
use crate::sigstore::bundle_set::BundleSet;
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::{UnixTime, unix_time};

/// 2026-11-25, when these tests were written.
const NOW: i64 = 1_795_000_000;

/// Carries out `evaluation` synchronously, as a driver without a cache: tags answered by
/// `digest`, signature sets by `signatures`; then decides at `now`.
fn drive(
    evaluation: Evaluation<'_>,
    digest: &dyn Fn(&ImageRef) -> Result<Digest, FetchFailure>,
    signatures: &dyn Fn(&SignatureRequest) -> Result<SignatureSet, FetchFailure>,
    now: UnixTime,
) -> Decision {
    drive_with(evaluation, digest, signatures, &HashMap::new(), now)
}

/// [`drive`], with image data for `imageRegistry` entries by reference (others: not found).
pub(super) fn drive_with(
    mut evaluation: Evaluation<'_>,
    digest: &dyn Fn(&ImageRef) -> Result<Digest, FetchFailure>,
    signatures: &dyn Fn(&SignatureRequest) -> Result<SignatureSet, FetchFailure>,
    image_data: &HashMap<String, Value>,
    now: UnixTime,
) -> Decision {
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Digest(image) => {
                    let result = digest(&image);
                    evaluation.digest_resolved(&image, result);
                }
                Want::CachedOutcome(key) => evaluation.outcome_cached(key, None),
                Want::Signatures { request, .. } if request.artifact == Artifact::Bundles => {
                    let set = BundleSet::empty(request.location(), request.digest.clone());
                    evaluation.bundles_fetched(request, Ok(Arc::new(set)));
                }
                Want::Signatures { request, .. } => {
                    let result = signatures(&request).map(Arc::new);
                    evaluation.signatures_fetched(request, result);
                }
                Want::ImageData { reference, image } => {
                    let result = image_data.get(&reference).cloned().ok_or(FetchFailure {
                        host: image.api_host().to_string(),
                        kind: FetchFailureKind::NotFound {
                            reason: format!("no image data for {}", image.normalized()),
                        },
                    });
                    evaluation.image_data_fetched(&reference, result);
                }
            }
        }
    }
    evaluation
        .finish(VerifyContext {
            trust: TrustedRoot::public_good(),
            now,
        })
        .decision
}

/// A fetch cut off by an 8 s budget while waiting for `host`.
fn budget_timeout(host: &str, waiting: Waiting) -> FetchFailure {
    FetchFailure {
        host: host.into(),
        kind: FetchFailureKind::Budget {
            budget: Duration::from_secs(8),
            waiting,
        },
    }
}

pub(super) fn key() -> SigningKey {
    SigningKey::generate(&SystemRandom::new()).unwrap()
}

/// `publicKeys: |-` content indented for the policies below.
pub(super) fn pem(key: &SigningKey) -> String {
    key.public_key()
        .to_pem()
        .trim_end()
        .replace('\n', "\n                ")
}

pub(super) fn policies(yaml: &str) -> Vec<Policy> {
    let outcome = load("test.yaml", yaml);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    outcome.policies
}

fn quick_start(k: &SigningKey) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-signed-images
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: check-signatures
      match:
        any:
        - resources:
            kinds:
            - Pod
      verifyImages:
      - imageReferences:
        - "registry.company.com/*"
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {}
        mutateDigest: true
"#,
        pem(k)
    )
}

fn dual(security: &SigningKey, development: &SigningKey) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-dual-signatures
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: critical-app-signatures
      match:
        any:
        - resources:
            kinds:
            - Pod
      verifyImages:
      - imageReferences:
        - "registry.company.com/critical/*"
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {}
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {}
        mutateDigest: true
"#,
        pem(security),
        pem(development)
    )
}

fn environments(production: &SigningKey, development: &SigningKey) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: environment-specific-verification
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: production-must-be-signed
      match:
        any:
        - resources:
            kinds:
            - Pod
            namespaces:
            - production
      verifyImages:
      - imageReferences:
        - "*"
        failureAction: Enforce
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {}
        mutateDigest: true
    - name: development-warn-unsigned
      match:
        any:
        - resources:
            kinds:
            - Pod
            namespaces:
            - development
            - staging
      verifyImages:
      - imageReferences:
        - "registry.company.com/*"
        failureAction: Audit
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {}
        mutateDigest: true
"#,
        pem(production),
        pem(development)
    )
}

pub(super) fn pod(namespace: &str, images: &[&str]) -> Resource {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
        .collect();
    Resource::from_object(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "test", "namespace": namespace}, "spec": {"containers": containers}}),
        Operation::Create,
        None,
        BTreeMap::new(),
    )
    .unwrap()
}

fn digest_for(image: &str) -> Digest {
    Digest::sha256_of(image.as_bytes())
}

pub(super) fn signed_layer(k: &SigningKey, identity: &str, digest: &Digest) -> SignatureLayer {
    let payload = payload::build(identity, digest, &BTreeMap::new());
    let sig = STANDARD.encode(k.sign(&SystemRandom::new(), &payload).unwrap());
    let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
    descriptor.annotations = Some(
        [(SIGNATURE_ANNOTATION.to_string(), sig)]
            .into_iter()
            .collect(),
    );
    SignatureLayer {
        descriptor,
        payload,
    }
}

/// A registry in memory: tags resolve to `digest_for(image)`; `.sig` images hold layers signed
/// by the given keys.
#[derive(Default)]
pub(super) struct FakeRegistry {
    signers: HashMap<String, Vec<SigningKey>>,
    unreachable: bool,
}

impl FakeRegistry {
    pub(super) fn sign(mut self, image: &str, k: &SigningKey) -> Self {
        let copy = SigningKey::from_pkcs8(k.pkcs8_der(), &SystemRandom::new()).unwrap();
        self.signers
            .entry(image.to_string())
            .or_default()
            .push(copy);
        self
    }

    fn decide(&self, policies: &[Policy], resource: &Resource) -> Decision {
        self.decide_with_image_data(policies, resource, &HashMap::new())
    }

    /// [`FakeRegistry::decide`], the registry also holding `image_data` (by reference).
    pub(super) fn decide_with_image_data(
        &self,
        policies: &[Policy],
        resource: &Resource,
        image_data: &HashMap<String, Value>,
    ) -> Decision {
        let digest = |r: &ImageRef| {
            if self.unreachable {
                Err(FetchFailure {
                    host: "registry.company.com".into(),
                    kind: FetchFailureKind::Unreachable {
                        reason: "could not connect to registry.company.com".into(),
                    },
                })
            } else {
                Ok(digest_for(r.normalized()))
            }
        };
        let signatures = |req: &SignatureRequest| {
            let mut layers = Vec::new();
            for (image, keys) in &self.signers {
                let reference = ImageRef::parse(image).unwrap();
                if reference.repository_ref() == *req.repository
                    && digest_for(reference.normalized()) == req.digest
                {
                    layers.extend(
                        keys.iter()
                            .map(|k| signed_layer(k, &reference.repository(), &req.digest)),
                    );
                }
            }
            Ok(SignatureSet {
                location: format!("{}:{}", req.repository_name(), req.digest.signature_tag()),
                image_digest: req.digest.clone(),
                layers,
            })
        };
        drive_with(
            Evaluation::new(policies, resource, Mode::Mutate),
            &digest,
            &signatures,
            image_data,
            unix_time(NOW),
        )
    }
}

/// Asserts that `d` denies and that its message contains `needle`.
#[track_caller]
pub(super) fn assert_denied(d: &Decision, needle: &str) {
    assert!(!d.allowed, "allowed, expected a denial with {needle:?}");
    assert!(
        d.message.contains(needle),
        "{needle:?} not in {}",
        d.message
    );
}

pub(super) fn run(policies: &[Policy], resource: &Resource, registry: &FakeRegistry) -> Decision {
    registry.decide(policies, resource)
}

#[test]
fn quick_start_signed_image_is_admitted_and_pinned() {
    let k = key();
    let p = policies(&quick_start(&k));
    let image = "registry.company.com/app:v1.0.0";
    let d = run(
        &p,
        &pod("default", &[image]),
        &FakeRegistry::default().sign(image, &k),
    );
    assert!(d.allowed, "{}", d.message);
    let digest = digest_for(image);
    assert_eq!(d.results.len(), 1);
    assert_eq!(d.results[0].status, Status::Pass);
    assert_eq!(
        d.results[0].images[0].signers,
        vec![format!("key {}", k.public_key().fingerprint())]
    );
    assert_eq!(
        d.patch,
        vec![
            json!({"op": "add", "path": "/metadata/annotations", "value": {}}),
            json!({"op": "add", "path": "/metadata/annotations/kyverno.io~1verify-images",
                   "value": format!("{{\"registry.company.com/app@{digest}\":\"pass\"}}")}),
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": format!("registry.company.com/app:v1.0.0@{digest}")}),
        ]
    );
}

#[test]
fn quick_start_unsigned_company_image_is_denied_and_nginx_is_not_covered() {
    let k = key();
    let p = policies(&quick_start(&k));
    let image = "registry.company.com/app:v1.0.0";
    let d = run(&p, &pod("default", &[image]), &FakeRegistry::default());
    assert!(!d.allowed);
    let digest = digest_for(image);
    assert!(
        d.message
            .starts_with("resource Pod/default/test was blocked due to the following policies"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains(&format!(
            "check-signatures: image {image} ({digest}): attestor set 1 of 1 needs 1 signature, got 0: entry 0: no signatures found at registry.company.com/app:{}",
            digest.signature_tag()
        )),
        "{}",
        d.message
    );
    assert!(d.patch.is_empty());

    // The seed's "should fail" example: Kyverno admits nginx:latest, no rule matches it.
    let d = run(
        &p,
        &pod("default", &["nginx:latest"]),
        &FakeRegistry::default(),
    );
    assert!(d.allowed);
    assert!(d.results.is_empty());
    assert_eq!(d.uncovered, vec!["docker.io/nginx:latest".to_string()]);
}

#[test]
fn dual_signatures_need_both_teams() {
    let (sec, dev) = (key(), key());
    let p = policies(&dual(&sec, &dev));
    let image = "registry.company.com/critical/app:v1";
    let both = FakeRegistry::default().sign(image, &sec).sign(image, &dev);
    let d = run(&p, &pod("default", &[image]), &both);
    assert!(d.allowed, "{}", d.message);
    assert_eq!(d.results[0].images[0].signers.len(), 2);

    let only_security = FakeRegistry::default().sign(image, &sec);
    let d = run(&p, &pod("default", &[image]), &only_security);
    assert!(!d.allowed);
    let digest = digest_for(image);
    assert!(
        d.message.contains(&format!(
            "image {image} ({digest}): attestor set 2 of 2 needs 1 signature, got 0: entry 0: none of 1 signature at registry.company.com/critical/app:{} verifies with the key",
            digest.signature_tag()
        )),
        "{}",
        d.message
    );
    let only_dev = FakeRegistry::default().sign(image, &dev);
    let d = run(&p, &pod("default", &[image]), &only_dev);
    assert!(
        d.message
            .contains("attestor set 1 of 2 needs 1 signature, got 0"),
        "{}",
        d.message
    );
}

#[test]
fn production_is_strict_development_and_staging_are_audited() {
    let (prod, dev) = (key(), key());
    let p = policies(&environments(&prod, &dev));
    let company = "registry.company.com/web:v2";
    // Production: every image, company or not, must be signed with the production key.
    let d = run(
        &p,
        &pod("production", &[company, "nginx:1.25"]),
        &FakeRegistry::default().sign(company, &prod),
    );
    assert_denied(&d, "production-must-be-signed: image docker.io/nginx:1.25");
    let signed_both = FakeRegistry::default()
        .sign(company, &prod)
        .sign("nginx:1.25", &prod);
    let d = run(
        &p,
        &pod("production", &[company, "nginx:1.25"]),
        &signed_both,
    );
    assert!(d.allowed, "{}", d.message);
    assert_eq!(
        d.patch.iter().filter(|op| op["op"] == "replace").count(),
        2,
        "both pinned"
    );

    for ns in ["development", "staging"] {
        let d = run(&p, &pod(ns, &[company]), &FakeRegistry::default());
        assert!(d.allowed, "{ns}: Audit never blocks");
        assert_eq!(d.warnings.len(), 1, "{ns}");
        assert!(
            d.warnings[0].starts_with("policy environment-specific-verification.development-warn-unsigned: image registry.company.com/web:v2"),
            "{}",
            d.warnings[0]
        );
        assert!(
            d.patch.iter().all(|op| op["op"] != "replace"),
            "{ns}: an unverified digest is not pinned in Audit"
        );
        assert_eq!(d.results[0].status, Status::Fail);
        assert_eq!(d.results[0].action, crate::policy::FailureAction::Audit);
        // Signed with the development key: pinned.
        let d = run(
            &p,
            &pod(ns, &[company]),
            &FakeRegistry::default().sign(company, &dev),
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        assert!(
            d.patch.iter().any(|op| op["op"] == "replace"),
            "{ns}: verified digest pinned"
        );
    }
    // Another namespace: no rule applies.
    let d = run(&p, &pod("default", &[company]), &FakeRegistry::default());
    assert!(d.allowed && d.results.is_empty());
}

#[test]
fn every_container_kind_is_checked_whatever_the_order() {
    let k = key();
    let p = policies(&quick_start(&k));
    let signed = "registry.company.com/app:v1";
    let unsigned = "registry.company.com/debug:v1";
    let registry = FakeRegistry::default().sign(signed, &k);
    for group in ["initContainers", "ephemeralContainers"] {
        let object = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {group: [{"name": "sneaky", "image": unsigned}], "containers": [{"name": "app", "image": signed}]}});
        let resource =
            Resource::from_object(object, Operation::Create, None, BTreeMap::new()).unwrap();
        let d = run(&p, &resource, &registry);
        assert!(!d.allowed, "{group} must be verified");
        assert!(d.message.contains(unsigned), "{}", d.message);
    }
}

#[test]
fn pod_controllers_are_covered_by_autogen() {
    let k = key();
    let p = policies(&quick_start(&k));
    let image = "registry.company.com/app:v1";
    let deployment = Resource::from_object(
        json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}),
        Operation::Create,
        None,
        BTreeMap::new(),
    )
    .unwrap();
    let d = run(&p, &deployment, &FakeRegistry::default());
    assert_denied(&d, "autogen-check-signatures");
    let d = run(&p, &deployment, &FakeRegistry::default().sign(image, &k));
    assert!(d.allowed);
    assert_eq!(
        d.patch.last().unwrap()["path"],
        "/spec/template/spec/containers/0/image"
    );
}

fn keys_policy(keys_yaml: &str, count: Option<usize>, extra: &str) -> String {
    let count = count
        .map(|c| format!("\n        - count: {c}\n          entries:"))
        .unwrap_or_else(|| "\n        - entries:".into());
    format!(
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
      - imageReferences: ["registry.company.com/*"]{extra}
        attestors:{count}
{keys_yaml}"#
    )
}

fn key_entry(k: &SigningKey) -> String {
    format!(
        "          - keys:\n              publicKeys: |-\n                {}\n",
        pem(k)
    )
}

#[test]
fn count_omitted_means_all_and_count_n_means_at_least_n() {
    let (a, b) = (key(), key());
    let image = "registry.company.com/app:v1";
    let entries = format!("{}{}", key_entry(&a), key_entry(&b));
    let only_a = FakeRegistry::default().sign(image, &a);
    let both = FakeRegistry::default().sign(image, &a).sign(image, &b);

    let all = policies(&keys_policy(&entries, None, ""));
    assert!(!run(&all, &pod("default", &[image]), &only_a).allowed);
    assert!(run(&all, &pod("default", &[image]), &both).allowed);
    let d = run(&all, &pod("default", &[image]), &only_a);
    assert!(
        d.message.contains("needs 2 signatures, got 1: entry 1:"),
        "{}",
        d.message
    );

    let one = policies(&keys_policy(&entries, Some(1), ""));
    assert!(run(&one, &pod("default", &[image]), &only_a).allowed);
    assert!(
        run(
            &one,
            &pod("default", &[image]),
            &FakeRegistry::default().sign(image, &b)
        )
        .allowed
    );
    assert!(!run(&one, &pod("default", &[image]), &FakeRegistry::default()).allowed);
}

#[test]
fn several_keys_in_one_public_keys_block_are_separate_entries() {
    let (a, b) = (key(), key());
    let image = "registry.company.com/app:v1";
    let block = format!(
        "          - keys:\n              publicKeys: |-\n                {}\n                {}\n",
        pem(&a),
        pem(&b)
    );
    let any = policies(&keys_policy(&block, Some(1), ""));
    assert!(
        run(
            &any,
            &pod("default", &[image]),
            &FakeRegistry::default().sign(image, &b)
        )
        .allowed
    );
    let all = policies(&keys_policy(&block, None, ""));
    let d = run(
        &all,
        &pod("default", &[image]),
        &FakeRegistry::default().sign(image, &b),
    );
    assert_denied(
        &d,
        "needs 2 signatures, got 1: entry 0 (key 1 of publicKeys)",
    );
}

#[test]
fn nested_attestor_sets_recurse() {
    let (a, b, c) = (key(), key(), key());
    let image = "registry.company.com/app:v1";
    let nested = format!(
        "{}          - attestor:\n              count: 1\n              entries:\n              - keys:\n                  publicKeys: |-\n                    {}\n              - keys:\n                  publicKeys: |-\n                    {}\n",
        key_entry(&a),
        pem(&b).replace("\n                ", "\n                    "),
        pem(&c).replace("\n                ", "\n                    ")
    );
    let p = policies(&keys_policy(&nested, None, ""));
    assert!(
        run(
            &p,
            &pod("default", &[image]),
            &FakeRegistry::default().sign(image, &a).sign(image, &c)
        )
        .allowed
    );
    let d = run(
        &p,
        &pod("default", &[image]),
        &FakeRegistry::default().sign(image, &a),
    );
    assert_denied(&d, "entry 1: nested set needs 1, got 0");
}

#[test]
fn registry_errors_deny_in_enforce_and_warn_in_audit() {
    let k = key();
    let image = "registry.company.com/app:v1";
    let down = FakeRegistry {
        unreachable: true,
        ..FakeRegistry::default()
    };
    let enforce = policies(&keys_policy(&key_entry(&k), Some(1), ""));
    let d = run(&enforce, &pod("default", &[image]), &down);
    assert!(!d.allowed, "fail closed");
    assert_eq!(d.results[0].status, Status::Error);
    assert!(
        d.message.contains(
            "could not resolve the digest of registry.company.com/app:v1: could not connect"
        ),
        "{}",
        d.message
    );

    let audit = policies(&keys_policy(
        &key_entry(&k),
        Some(1),
        "\n        failureAction: Audit\n        mutateDigest: false",
    ));
    let d = run(&audit, &pod("default", &[image]), &down);
    assert!(d.allowed);
    assert_eq!(d.warnings.len(), 1);

    let ignore = policies(&keys_policy(&key_entry(&k), Some(1), "").replace(
        "  validationFailureAction: Enforce\n",
        "  validationFailureAction: Enforce\n  failurePolicy: Ignore\n",
    ));
    let d = run(&ignore, &pod("default", &[image]), &down);
    assert!(
        d.allowed,
        "failurePolicy: Ignore lets evaluation errors through"
    );
    // … but never a failed verification.
    let up_unsigned = FakeRegistry::default();
    assert!(!run(&ignore, &pod("default", &[image]), &up_unsigned).allowed);
}

#[test]
fn timeouts_say_which_image_did_not_finish_within_the_budget() {
    let k = key();
    let image = "registry.company.com/app:v1";
    let enforce = policies(&keys_policy(&key_entry(&k), Some(1), ""));
    let resource = pod("default", &[image]);
    let host = "registry.company.com";
    let slow_tag = || {
        Err(budget_timeout(
            host,
            Waiting::TagResolution {
                host: host.into(),
                image: image.into(),
            },
        ))
    };
    let no_signatures = |_: &SignatureRequest| -> Result<SignatureSet, FetchFailure> {
        panic!("no signatures are fetched for an image whose tag did not resolve")
    };
    let decide_at_budget =
        |policies: &[Policy],
         digest: &dyn Fn(&ImageRef) -> Result<Digest, FetchFailure>,
         signatures: &dyn Fn(&SignatureRequest) -> Result<SignatureSet, FetchFailure>| {
            drive(
                Evaluation::new(policies, &resource, Mode::Mutate),
                digest,
                signatures,
                unix_time(NOW),
            )
        };

    // The tag resolution ran out of time.
    let d = decide_at_budget(&enforce, &|_| slow_tag(), &no_signatures);
    assert!(!d.allowed);
    assert_eq!(d.results[0].status, Status::Error);
    assert!(
        d.message.contains(&format!(
            "verification of {image} did not finish within 8s: waiting for registry.company.com to answer"
        )),
        "{}",
        d.message
    );

    // The tag resolved (or was cached) but the signatures did not arrive in time.
    let digest = digest_for(image);
    let slow_signatures = |req: &SignatureRequest| {
        Err(budget_timeout(
            host,
            Waiting::Signatures {
                host: host.into(),
                repository: req.repository_name(),
                digest: req.digest.clone(),
            },
        ))
    };
    let d = decide_at_budget(&enforce, &|_| Ok(digest.clone()), &slow_signatures);
    assert!(!d.allowed);
    assert_eq!(d.results[0].status, Status::Error);
    assert!(
        d.message.contains(&format!(
            "verification of {image} did not finish within 8s: waiting for registry.company.com to send the signatures of registry.company.com/app@{digest}"
        )),
        "{}",
        d.message
    );

    // Audit: admitted, with the same words as a warning.
    let audit = policies(&keys_policy(
        &key_entry(&k),
        Some(1),
        "\n        failureAction: Audit\n        mutateDigest: false",
    ));
    let d = decide_at_budget(&audit, &|_| Ok(digest.clone()), &slow_signatures);
    assert!(d.allowed);
    assert!(
        d.warnings[0].contains("did not finish within 8s"),
        "{:?}",
        d.warnings
    );
}

#[test]
fn skip_image_references_skip_with_a_warning() {
    let k = key();
    let p = policies(&keys_policy(
        &key_entry(&k),
        Some(1),
        "\n        skipImageReferences: [\"registry.company.com/tools/*\"]",
    ));
    let d = run(
        &p,
        &pod("default", &["registry.company.com/tools/debug:v1"]),
        &FakeRegistry::default(),
    );
    assert!(d.allowed);
    assert_eq!(d.results[0].status, Status::Skip);
    assert_eq!(
        d.warnings,
        vec!["policy p.r: skipping image reference image registry.company.com/tools/debug:v1, policy p ruleName r".to_string()]
    );
}

#[test]
fn verify_digest_and_required_without_attestors() {
    let base = |extra: &str| {
        format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - imageReferences: ['*']\n{extra}"
        )
    };
    let digest_only = policies(&base(
        "      mutateDigest: false\n      required: false\n      verifyDigest: true\n",
    ));
    let d = run(
        &digest_only,
        &pod("default", &["nginx:latest"]),
        &FakeRegistry::default(),
    );
    assert_denied(&d, "missing digest for docker.io/nginx:latest");
    let pinned = format!("nginx:latest@{}", digest_for("x"));
    assert!(
        run(
            &digest_only,
            &pod("default", &[&pinned]),
            &FakeRegistry::default()
        )
        .allowed
    );

    let required = policies(&base("      mutateDigest: false\n      required: true\n"));
    let d = run(
        &required,
        &pod("default", &["ghcr.io/a/b:v1"]),
        &FakeRegistry::default(),
    );
    assert!(
        d.message.contains("unverified image ghcr.io/a/b:v1"),
        "{}",
        d.message
    );

    let mutate_only = policies(&base("      required: false\n"));
    let d = run(
        &mutate_only,
        &pod("default", &["nginx:1.25"]),
        &FakeRegistry::default(),
    );
    assert!(d.allowed);
    assert_eq!(
        d.patch,
        vec![
            json!({"op": "replace", "path": "/spec/containers/0/image", "value": format!("docker.io/nginx:1.25@{}", digest_for("docker.io/nginx:1.25"))})
        ]
    );
}

#[test]
fn plan_lists_what_to_fetch_once() {
    let k = key();
    let p = policies(&quick_start(&k));
    let image = "registry.company.com/app:v1";
    let pinned = format!("registry.company.com/app@{}", digest_for("other"));
    let resource = pod("default", &[image, image, &pinned, "nginx"]);
    let mut evaluation = Evaluation::new(&p, &resource, Mode::Mutate);
    assert_eq!(evaluation.plan().uncovered_images(), vec![3]);
    // Every want, answered as a registry without a cache would, until none is left.
    let (mut tags, mut requests) = (Vec::new(), Vec::new());
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Digest(r) => {
                    tags.push(r.normalized().to_string());
                    evaluation.digest_resolved(&r, Ok(digest_for(r.normalized())));
                }
                Want::CachedOutcome(key) => evaluation.outcome_cached(key, None),
                Want::Signatures { request, .. } => requests.push(request),
                Want::ImageData { .. } => unreachable!("no policy here reads image data"),
            }
        }
    }
    assert_eq!(tags, vec![image.to_string()]);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.repository_name() == "registry.company.com/app")
    );
}

/// The real keyless `.sig` from connaisseur passes a certificates attestor built from its own
/// certificate and chain: chain at signing time, Rekor bundle verified offline.
fn connaisseur_policy(cert: &str, chain: &str, rekor: &str) -> String {
    let indent = |s: &str| s.trim_end().replace('\n', "\n                ");
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: certificate-verification
spec:
  validationFailureAction: Enforce
  rules:
    - name: verify-with-certificates
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences: ["*"]
        attestors:
        - count: 1
          entries:
          - certificates:
              cert: |-
                {}
              certChain: |-
                {}
{rekor}        mutateDigest: false
"#,
        indent(cert),
        indent(chain)
    )
}

/// The real keyless signature layer of `testdata/connaisseur` (certificate, chain, Rekor bundle).
fn connaisseur_layer() -> SignatureLayer {
    let manifest = ImageManifest::parse(include_bytes!(
        "../../testdata/connaisseur/sig-manifest.json"
    ))
    .unwrap();
    SignatureLayer {
        descriptor: manifest.layers[0].clone(),
        payload: include_bytes!("../../testdata/connaisseur/payload.json").to_vec(),
    }
}

/// The decision for `resource` when every signature set holds `layers`.
fn connaisseur_decide(
    policies: &[Policy],
    resource: &Resource,
    layers: Vec<SignatureLayer>,
    now: i64,
) -> Decision {
    drive(
        Evaluation::new(policies, resource, Mode::Mutate),
        &|r| panic!("{r} has a digest: nothing to resolve"),
        &|req| {
            Ok(SignatureSet {
                location: format!("{}:{}", req.repository_name(), req.digest.signature_tag()),
                image_digest: req.digest.clone(),
                layers: layers.clone(),
            })
        },
        unix_time(now),
    )
}

#[test]
fn certificate_attestor_accepts_the_real_keyless_signature_and_refuses_a_foreign_chain() {
    let layer = connaisseur_layer();
    let descriptor = &layer.descriptor;
    let cert = descriptor.annotation(CERTIFICATE_ANNOTATION).unwrap();
    let chain = descriptor.annotation(CHAIN_ANNOTATION).unwrap();
    assert!(descriptor.annotation(BUNDLE_ANNOTATION).is_some());
    let image = "index.docker.io/phbelitz/rekor-test@sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
    let resource = pod("default", &[image]);

    let rekor = "              rekor:\n                url: https://rekor.sigstore.dev\n";
    let p = policies(&connaisseur_policy(cert, chain, rekor));
    let d = connaisseur_decide(&p, &resource, vec![layer.clone()], NOW);
    assert!(d.allowed, "{}", d.message);
    assert!(
        d.results[0].images[0].signers[0].starts_with("certificate "),
        "{:?}",
        d.results[0].images[0].signers
    );

    // Without its Rekor bundle, the transparency-log proof is missing (no network call to say so).
    let mut no_bundle = layer.clone();
    no_bundle
        .descriptor
        .annotations
        .as_mut()
        .unwrap()
        .remove(BUNDLE_ANNOTATION);
    let d = connaisseur_decide(&p, &resource, vec![no_bundle.clone()], NOW);
    assert_denied(&d, "the transparency-log proof is missing");
    // … and with ignoreTlog the signing time is now, when the 10-minute Fulcio cert has expired.
    let ignore = "              rekor:\n                ignoreTlog: true\n";
    let p2 = policies(&connaisseur_policy(cert, chain, ignore));
    let d = connaisseur_decide(&p2, &resource, vec![no_bundle], NOW);
    assert!(
        d.message.contains("was not valid at the signing time"),
        "{}",
        d.message
    );

    // A chain from another CA (here: the leaf's own certificate as the only root) fails.
    let p3 = policies(&connaisseur_policy(cert, cert, rekor));
    let d = connaisseur_decide(&p3, &resource, vec![layer], NOW);
    assert_denied(&d, "none of 1 signature(s)");
}

/// Kyverno parity pitfalls (reference §9), each as Kyverno behaves.
#[test]
fn kyverno_pitfalls() {
    let k = key();
    let image = "registry.company.com/app:v1";
    // 1. Matching is on the normalised string: `nginx` is `docker.io/nginx:latest`.
    let hub = policies(
        &keys_policy(&key_entry(&k), Some(1), "")
            .replace("registry.company.com/*", "docker.io/nginx:*"),
    );
    let d = run(&hub, &pod("default", &["nginx"]), &FakeRegistry::default());
    assert!(!d.allowed, "docker.io/nginx:* covers `nginx`");
    // 3. `repo:*` does not match a digest reference: pre-pinned images bypass such a rule.
    let tag_pattern = policies(
        &keys_policy(&key_entry(&k), Some(1), "")
            .replace("registry.company.com/*", "registry.company.com/app:*"),
    );
    let pinned = format!("registry.company.com/app@{}", digest_for("x"));
    let d = run(
        &tag_pattern,
        &pod("default", &[&pinned]),
        &FakeRegistry::default(),
    );
    assert!(
        d.allowed && d.results.is_empty(),
        "Kyverno lets the digest form through: {:?}",
        d.results
    );
    assert_eq!(
        d.uncovered,
        vec![pinned.clone()],
        "and sealgate says it was not covered"
    );
    // 7. Audit failures still annotate `fail`, warn, and report fail.
    let audit = policies(&keys_policy(
        &key_entry(&k),
        Some(1),
        "\n        failureAction: Audit\n        mutateDigest: false",
    ));
    let d = run(&audit, &pod("default", &[image]), &FakeRegistry::default());
    assert!(d.allowed);
    assert_eq!(d.results[0].status, Status::Fail);
    assert_eq!(d.warnings.len(), 1);
    let annotation = d
        .patch
        .iter()
        .find(|p| p["path"] == "/metadata/annotations/kyverno.io~1verify-images")
        .unwrap();
    assert_eq!(
        annotation["value"],
        "{\"registry.company.com/app:v1\":\"fail\"}"
    );
    // 9. The annotation is compact JSON with sorted keys.
    let two = policies(&quick_start(&k));
    let (a, b) = ("registry.company.com/b:v1", "registry.company.com/a:v1");
    let d = run(
        &two,
        &pod("default", &[a, b]),
        &FakeRegistry::default().sign(a, &k).sign(b, &k),
    );
    let value = d
        .patch
        .iter()
        .find(|p| p["path"] == "/metadata/annotations/kyverno.io~1verify-images")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let (da, db) = (digest_for(a), digest_for(b));
    assert_eq!(
        value,
        format!(
            "{{\"registry.company.com/a@{db}\":\"pass\",\"registry.company.com/b@{da}\":\"pass\"}}"
        )
    );
}

#[test]
fn verify_digest_sees_the_pins_of_every_rule_whatever_the_policy_order() {
    let k = key();
    let image = "registry.company.com/app:v1";
    let checks_only = keys_policy(
        &key_entry(&k),
        None,
        "\n        mutateDigest: false\n        verifyDigest: true",
    )
    .replace("name: p\n", "name: a-checks\n");
    let pins = keys_policy(
        &key_entry(&k),
        None,
        "\n        mutateDigest: true\n        verifyDigest: false",
    )
    .replace("name: p\n", "name: b-pins\n");
    let registry = FakeRegistry::default().sign(image, &k);
    for docs in [
        format!("{checks_only}---\n{pins}"),
        format!("{pins}---\n{checks_only}"),
    ] {
        let d = run(&policies(&docs), &pod("default", &[image]), &registry);
        assert!(d.allowed, "{}", d.message);
        assert!(d.results.iter().all(|r| r.status == Status::Pass));
        assert!(
            d.patch
                .iter()
                .any(|op| op["path"] == "/spec/containers/0/image"),
            "{:?}",
            d.patch
        );
    }
    // Alone, the checking policy fails: nothing pins the tag.
    let d = run(
        &policies(&checks_only),
        &pod("default", &[image]),
        &registry,
    );
    assert_denied(&d, "missing digest for registry.company.com/app:v1");
}

#[test]
fn the_verify_images_annotation_names_the_image_as_it_is_after_mutation() {
    let k = key();
    let image = "registry.company.com/app:v1";
    let digest = digest_for(image);
    let registry = FakeRegistry::default().sign(image, &k);
    let annotation = |extra: &str, images: &[&str]| {
        let p = policies(&keys_policy(&key_entry(&k), None, extra));
        let d = run(&p, &pod("default", images), &registry);
        assert!(d.allowed, "{}", d.message);
        d.patch
            .iter()
            .find(|op| op["path"] == "/metadata/annotations/kyverno.io~1verify-images")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // Pinned: the digest form.
    assert_eq!(
        annotation("\n        mutateDigest: true", &[image]),
        format!("{{\"registry.company.com/app@{digest}\":\"pass\"}}")
    );
    // Not pinned: the image as written.
    assert_eq!(
        annotation(
            "\n        mutateDigest: false\n        verifyDigest: false",
            &[image]
        ),
        "{\"registry.company.com/app:v1\":\"pass\"}"
    );
    // Written with its digest: that digest form, whatever mutateDigest says.
    // (the fake registry keeps the tag's signatures under the tag's digest, which this is)
    let pinned = format!("registry.company.com/app@{digest}");
    let p = policies(&keys_policy(
        &key_entry(&k),
        None,
        "\n        mutateDigest: false",
    ));
    let d = run(&p, &pod("default", &[&pinned]), &registry);
    assert!(d.allowed, "{}", d.message);
    assert!(
        d.patch.iter().any(|op| op["value"]
            .as_str()
            .is_some_and(|v| v.contains(&format!("\"{pinned}\":\"pass\"")))),
        "{:?}",
        d.patch
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Kyverno #6115 was a bypass through container order. Any mix of signed and unsigned images
    /// over containers, init containers and ephemeral containers, in any order and with repeated
    /// names: denied exactly when one image is unsigned, and every unsigned image is named.
    #[test]
    fn an_unsigned_image_anywhere_in_a_pod_is_denied(
        layout in proptest::collection::vec((0usize..3, proptest::bool::ANY, 0usize..3), 1..7)
    ) {
        let k = key();
        let p = policies(&quick_start(&k));
        let mut registry = FakeRegistry::default();
        let groups = ["containers", "initContainers", "ephemeralContainers"];
        let mut spec = serde_json::Map::new();
        let mut unsigned = Vec::new();
        for (i, (group, signed, name)) in layout.iter().enumerate() {
            let image = if *signed {
                format!("registry.company.com/signed-{i}:v1")
            } else {
                format!("registry.company.com/unsigned-{i}:v1")
            };
            if *signed {
                registry = registry.sign(&image, &k);
            } else {
                unsigned.push(image.clone());
            }
            spec.entry(groups[*group])
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(json!({"name": format!("c{name}"), "image": image}));
        }
        let object = json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        let resource =
            Resource::from_object(object, Operation::Create, None, BTreeMap::new()).unwrap();
        let d = run(&p, &resource, &registry);
        proptest::prop_assert_eq!(d.allowed, unsigned.is_empty(), "{}", d.message);
        for image in &unsigned {
            proptest::prop_assert!(d.message.contains(image.as_str()), "{} not named in {}", image, d.message);
        }
    }
}

/// A `certificates` attestor with `cert` only (no `certChain`), on the real keyless signature:
/// the certificate must be the policy's (a signature carrying none is checked with the policy's,
/// as cosign's `--certificate` does), and it must be valid at the signing time.
#[test]
fn certificate_attestor_with_cert_only() {
    let layer = connaisseur_layer();
    let descriptor = &layer.descriptor;
    let cert = descriptor.annotation(CERTIFICATE_ANNOTATION).unwrap();
    let chain = descriptor.annotation(CHAIN_ANNOTATION).unwrap();
    let image = "index.docker.io/phbelitz/rekor-test@sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
    let resource = pod("default", &[image]);
    let cert_only = |cert: &str, rekor: &str| {
        let text = connaisseur_policy(cert, "CHAIN", rekor);
        let without_chain =
            text.replace("              certChain: |-\n                CHAIN\n", "");
        assert!(!without_chain.contains("CHAIN"));
        policies(&without_chain)
    };
    let decide_with =
        |p: &[Policy], layers: Vec<SignatureLayer>| connaisseur_decide(p, &resource, layers, NOW);
    let rekor = "              rekor:\n                url: https://rekor.sigstore.dev\n";

    let p = cert_only(cert, rekor);
    let d = decide_with(&p, vec![layer.clone()]);
    assert!(d.allowed, "{}", d.message);

    // The same signature without its certificate annotation: checked with the policy's cert.
    let mut bare = layer.clone();
    bare.descriptor
        .annotations
        .as_mut()
        .unwrap()
        .remove(CERTIFICATE_ANNOTATION);
    let d = decide_with(&p, vec![bare]);
    assert!(d.allowed, "{}", d.message);

    // Another certificate in the policy (the chain's first certificate, a CA): refused.
    let ca = crate::crypto::pem::parse_blocks(chain).unwrap()[0].clone();
    let ca_pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        STANDARD.encode(&ca.der)
    );
    let d = decide_with(&cert_only(&ca_pem, rekor), vec![layer.clone()]);
    assert_denied(&d, "it carries another certificate than the policy's cert");

    // Without the transparency log the signing time is now, after the 10-minute certificate.
    let ignore = "              rekor:\n                ignoreTlog: true\n";
    let d = decide_with(&cert_only(cert, ignore), vec![layer]);
    assert_denied(&d, "was not valid at the signing time");
}

/// A `keys` attestor with an explicit `rekor` block requires the transparency-log proof: a
/// signature without a bundle is refused, with `ignoreTlog: true` it verifies.
#[test]
fn keys_attestor_with_a_rekor_block_requires_a_bundle() {
    let k = key();
    let image = "registry.company.com/app:v1";
    let registry = FakeRegistry::default().sign(image, &k);
    let with_rekor = |rekor: &str| {
        keys_policy(&key_entry(&k), None, "")
            .replace(&key_entry(&k), &format!("{}{rekor}", key_entry(&k)))
    };
    let required = policies(&with_rekor(
        "              rekor:\n                url: https://rekor.sigstore.dev\n",
    ));
    let d = run(&required, &pod("default", &[image]), &registry);
    assert_denied(&d, "the transparency-log proof is missing");
    let ignored = policies(&with_rekor(
        "              rekor:\n                ignoreTlog: true\n",
    ));
    let d = run(&ignored, &pod("default", &[image]), &registry);
    assert!(d.allowed, "{}", d.message);
}

/// The webhook does not know namespace labels (an AdmissionReview does not carry them):
/// `namespaceSelector` then fails closed — satisfied in `match`, not in `exclude`, and an Enforce
/// override wins — where known labels decide as Kyverno does.
#[test]
fn unknown_namespace_labels_fail_closed() {
    let k = key();
    let image = "registry.company.com/app:v1";
    let unsigned = FakeRegistry::default();
    let text = keys_policy(&key_entry(&k), None, "")
        .replace(
            "        - resources:\n            kinds: [Pod]\n",
            "        - resources:\n            kinds: [Pod]\n            namespaceSelector:\n              matchLabels:\n                env: prod\n      exclude:\n        any:\n        - resources:\n            namespaceSelector:\n              matchLabels:\n                signing: exempt\n",
        );
    assert!(text.contains("namespaceSelector"), "{text}");
    let p = policies(&text);
    let known = |labels: &[(&str, &str)]| {
        Resource::from_object(
            pod("team", &[image]).object,
            Operation::Create,
            None,
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    };
    // Known labels decide.
    assert!(run(&p, &known(&[]), &unsigned).allowed);
    assert!(!run(&p, &known(&[("env", "prod")]), &unsigned).allowed);
    assert!(
        run(
            &p,
            &known(&[("env", "prod"), ("signing", "exempt")]),
            &unsigned
        )
        .allowed
    );
    // Unknown labels: the rule applies.
    let d = run(&p, &known(&[]).without_namespace_labels(), &unsigned);
    assert_denied(&d, "no signatures found");

    // An Enforce override limited by namespace labels applies when they are unknown.
    let audit_with_override = keys_policy(&key_entry(&k), None, "").replace(
        "  validationFailureAction: Enforce\n",
        "  validationFailureAction: Audit\n  validationFailureActionOverrides:\n  - action: Enforce\n    namespaceSelector:\n      matchLabels:\n        env: prod\n",
    );
    let p = policies(&audit_with_override);
    assert!(run(&p, &known(&[]), &unsigned).allowed, "Audit: a warning");
    assert!(!run(&p, &known(&[]).without_namespace_labels(), &unsigned).allowed);
}

#[test]
fn an_object_whose_containers_cannot_be_read_is_denied_under_enforce_and_warned_under_audit() {
    let k = key();
    let enforce = policies(&quick_start(&k));
    let audit = policies(
        &quick_start(&k)
            .replace(
                "validationFailureAction: Enforce",
                "validationFailureAction: Audit",
            )
            .replace("mutateDigest: true", "mutateDigest: false"),
    );
    let object = |kind: &str, spec: Value| {
        Resource::from_object(
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
            Operation::Create,
            None,
            BTreeMap::new(),
        )
        .unwrap()
    };
    let signed = "registry.company.com/app:v1";
    for (resource, path, found) in [
        (
            object("Pod", json!({"containers": 5})),
            "spec.containers",
            "a number",
        ),
        (
            object("Pod", json!({"containers": [{"name": "c", "image": 5}]})),
            "spec.containers[0].image",
            "a number",
        ),
        (
            object(
                "Pod",
                json!({"containers": [{"name": "c", "image": [signed]}]}),
            ),
            "spec.containers[0].image",
            "a list",
        ),
        (
            object("Pod", json!({"containers": [signed]})),
            "spec.containers[0]",
            "a string",
        ),
        (
            object(
                "Pod",
                json!({"initContainers": {"a": 1}, "containers": [{"name": "c", "image": signed}]}),
            ),
            "spec.initContainers",
            "a mapping",
        ),
        (object("Pod", json!("none")), "spec", "a string"),
        (
            object(
                "Deployment",
                json!({"template": {"spec": {"containers": 5}}}),
            ),
            "spec.template.spec.containers",
            "a number",
        ),
    ] {
        let registry = FakeRegistry::default().sign(signed, &k);
        let d = run(&enforce, &resource, &registry);
        assert!(!d.allowed, "{path} admitted under Enforce");
        assert!(
            d.message.contains(&format!("{path} is {found}, not ")),
            "{path}: {}",
            d.message
        );
        assert!(
            d.message.contains("the object cannot be checked"),
            "{}",
            d.message
        );
        let d = run(&audit, &resource, &registry);
        assert!(d.allowed, "{path}: Audit never blocks");
        assert!(
            d.warnings.iter().any(|w| w.contains(path)),
            "{path}: {:?}",
            d.warnings
        );
    }
    // A kind no rule matches is not this engine's business.
    let d = run(
        &enforce,
        &object("ConfigMap", json!({"containers": 5})),
        &FakeRegistry::default(),
    );
    assert!(d.allowed);
}
