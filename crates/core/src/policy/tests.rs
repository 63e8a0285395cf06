//! Loader tests: the seed policies, every validation message, defaults, conversion, key
//! expansion, autogen, failure actions, matching and unknown fields.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::crypto::cert::CertError;
use crate::crypto::key::{KeyAlgorithm, KeyError, SignatureHash};

const SEED_QUICK_START: &str = include_str!("../../testdata/policies/seed/quick-start.yaml");
const SEED_SCENARIO_1: &str =
    include_str!("../../testdata/policies/seed/scenario-1-dual-signatures.yaml");
const SEED_SCENARIO_2: &str =
    include_str!("../../testdata/policies/seed/scenario-2-environments.yaml");
const SEED_SCENARIO_3: &str =
    include_str!("../../testdata/policies/seed/scenario-3-certificates.yaml");
const FIXED_QUICK_START: &str = include_str!("../../testdata/policies/fixed/quick-start.yaml");
const FIXED_SCENARIO_1: &str =
    include_str!("../../testdata/policies/fixed/scenario-1-dual-signatures.yaml");
const FIXED_SCENARIO_2: &str =
    include_str!("../../testdata/policies/fixed/scenario-2-environments.yaml");
const FIXED_SCENARIO_3: &str =
    include_str!("../../testdata/policies/fixed/scenario-3-certificates.yaml");
const K1: &str = include_str!("../../testdata/policies/keys/k1.pub");
const DEV_KEY: &str = include_str!("../../testdata/policies/keys/dev-team.pub");
const EXTRA_KEY: &str = include_str!("../../testdata/policies/keys/extra.pub");
const TEST_CERT: &str = include_str!("../../testdata/policies/certs/test-cert.pem");

/// (line, column, path, error kind) of each error.
fn located(outcome: &LoadOutcome) -> Vec<(usize, usize, String, PolicyErrorKind)> {
    outcome
        .errors
        .iter()
        .map(|e| {
            (
                e.location.line,
                e.location.column,
                e.location.path.to_string(),
                e.kind.clone(),
            )
        })
        .collect()
}

fn comment(line: usize, content: &str) -> PolicyErrorKind {
    PolicyErrorKind::PemCommentLine {
        line,
        content: content.to_string(),
    }
}

fn not_on_curve() -> PolicyErrorKind {
    PolicyErrorKind::BadKey {
        line: 1,
        reason: KeyError::PointNotOnCurve {
            algorithm: KeyAlgorithm::EcdsaP256,
        },
    }
}

const KEY_PATH: &str = "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys";

// ---------------------------------------------------------------------------------------------
// The user's document.

#[test]
fn seed_quick_start_placeholder_comment_is_located() {
    let outcome = load("quick-start.yaml", SEED_QUICK_START);
    assert!(outcome.policies.is_empty());
    assert_eq!(
        located(&outcome),
        vec![(
            24,
            17,
            KEY_PATH.to_string(),
            comment(2, "# Paste the cosign.pub content here")
        )]
    );
    let error = &outcome.errors[0];
    assert_eq!(
        error.location.policy.as_deref(),
        Some("require-signed-images")
    );
    assert_eq!(error.location.rule.as_deref(), Some("check-signatures"));
    assert_eq!(
        error.to_string(),
        "quick-start.yaml:24:17: policy require-signed-images, rule check-signatures: \
         spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: \
         line 2 of the PEM block ('# Paste the cosign.pub content here') is not base64 \
         — paste the exact contents of cosign.pub, without comments"
    );
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
}

#[test]
fn seed_scenario_1_development_key_is_not_on_the_curve() {
    let outcome = load("scenario-1.yaml", SEED_SCENARIO_1);
    assert!(outcome.policies.is_empty());
    let second = "spec.rules[0].verifyImages[0].attestors[1].entries[0].keys.publicKeys";
    assert_eq!(
        located(&outcome),
        vec![
            (
                25,
                17,
                KEY_PATH.to_string(),
                comment(2, "# Security team's public key")
            ),
            (33, 17, second.to_string(), not_on_curve()),
            (
                34,
                17,
                second.to_string(),
                comment(2, "# Development team's public key")
            ),
        ]
    );
    assert_eq!(
        outcome.errors[1].to_string(),
        "scenario-1.yaml:33:17: policy require-dual-signatures, rule critical-app-signatures: \
         spec.rules[0].verifyImages[0].attestors[1].entries[0].keys.publicKeys: \
         the PUBLIC KEY block at line 1: the key is not a valid ECDSA P-256 point: its coordinates \
         do not lie on the curve (the key is corrupted or was not generated for this curve) \
         — this is not a real public key (it was edited or made up): paste the exact contents of \
         cosign.pub ('cosign public-key --key cosign.key' prints it)"
    );
}

#[test]
fn seed_scenario_2_development_key_is_not_on_the_curve() {
    let outcome = load("scenario-2.yaml", SEED_SCENARIO_2);
    assert!(outcome.policies.is_empty());
    let second = "spec.rules[1].verifyImages[0].attestors[0].entries[0].keys.publicKeys";
    assert_eq!(
        located(&outcome),
        vec![
            (
                28,
                17,
                KEY_PATH.to_string(),
                comment(2, "# Production signing key")
            ),
            (53, 17, second.to_string(), not_on_curve()),
            (
                54,
                17,
                second.to_string(),
                comment(2, "# Development signing key")
            ),
        ]
    );
    assert_eq!(
        outcome.errors[1].location.rule.as_deref(),
        Some("development-warn-unsigned")
    );
    let warnings: Vec<_> = outcome
        .warnings
        .iter()
        .map(|w| (w.location.line, w.location.path.to_string(), w.kind.clone()))
        .collect();
    assert_eq!(
        warnings,
        vec![(
            58,
            "spec.rules[1].verifyImages[0].mutateDigest".to_string(),
            PolicyWarningKind::MutateDigestInAudit
        )]
    );
}

#[test]
fn seed_scenario_3_certificate_comment_and_damaged_body() {
    let outcome = load("scenario-3.yaml", SEED_SCENARIO_3);
    assert!(outcome.policies.is_empty());
    let cert_path = "spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates.cert";
    let errors = located(&outcome);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(
        errors[0],
        (
            24,
            17,
            cert_path.to_string(),
            comment(
                2,
                "# Company's signing certificate (replace with real certificate)"
            )
        )
    );
    assert_eq!(
        (errors[1].0, errors[1].1, errors[1].2.as_str()),
        (31, 17, cert_path)
    );
    let PolicyErrorKind::DamagedBase64(damage) = &errors[1].3 else {
        panic!("{:?}", errors[1].3);
    };
    assert_eq!((damage.line, damage.length, damage.expected), (9, 67, 64));
    assert_eq!(
        outcome.errors[1].to_string(),
        "scenario-3.yaml:31:17: policy certificate-verification, rule verify-with-certificates: \
         spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates.cert: \
         line 9 of the PEM block has 67 characters where the other lines have 64, so the base64 \
         body does not decode; decoded anyway, it is not valid DER either (it ends before the \
         certificate does: it is truncated) — paste the certificate's PEM again, complete and \
         unedited"
    );
}

#[test]
fn all_seed_documents_in_one_file_fail_independently() {
    let text = format!(
        "{SEED_QUICK_START}\n---\n{FIXED_SCENARIO_1}\n---\n{SEED_SCENARIO_3}\n---\n{FIXED_QUICK_START}"
    );
    let outcome = load("all.yaml", &text);
    let names: Vec<_> = outcome.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["require-dual-signatures", "require-signed-images"]);
    assert_eq!(outcome.errors.len(), 3);
    // Lines count from the start of the combined file.
    let third = text
        .find("metadata:\n  name: certificate-verification")
        .unwrap();
    let offset = text[..third].lines().count() - 2;
    assert_eq!(outcome.errors[1].location.line, offset + 24);
}

#[test]
fn fixed_quick_start_loads() {
    let outcome = load("quick-start.yaml", FIXED_QUICK_START);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let policy = &outcome.policies[0];
    assert_eq!(policy.kind, PolicyKind::ClusterPolicy);
    assert_eq!(policy.name, "require-signed-images");
    assert_eq!(policy.validation_failure_action, FailureAction::Enforce);
    assert!(!policy.background);
    assert!(policy.admission);
    assert_eq!(policy.failure_policy, FailurePolicy::Fail);
    assert_eq!(policy.apply_rules, ApplyRules::All);
    let rule = &policy.rules[0];
    assert_eq!(rule.name, "check-signatures");
    let entry = &rule.verify_images[0];
    assert_eq!(entry.image_references, ["registry.company.com/*"]);
    assert_eq!(entry.verifier, VerifierType::Cosign);
    assert!(entry.mutate_digest && entry.verify_digest && entry.required && entry.use_cache);
    assert_eq!(entry.attestors.len(), 1);
    assert_eq!(entry.attestors[0].count, Some(1));
    let AttestorKind::Key(key) = &entry.attestors[0].entries[0].kind else {
        panic!("not a key attestor");
    };
    assert_eq!(
        key.key,
        KeySource::Pem(crate::crypto::key::PublicKey::from_pem(K1).unwrap())
    );
    assert_eq!(key.hash, SignatureHash::Sha256);
    assert_eq!(key.rekor.url.as_deref(), Some(DEFAULT_REKOR_URL));
    let autogen: Vec<_> = policy
        .autogen_rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(
        autogen,
        [
            "autogen-check-signatures",
            "autogen-cronjob-check-signatures"
        ]
    );
}

#[test]
fn fixed_scenario_1_has_two_attestor_sets_of_one() {
    let outcome = load("scenario-1.yaml", FIXED_SCENARIO_1);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let entry = &outcome.policies[0].rules[0].verify_images[0];
    assert_eq!(entry.attestors.len(), 2);
    for set in &entry.attestors {
        assert_eq!(set.count, Some(1));
        assert_eq!(set.entries.len(), 1);
        assert_eq!(set.required_count(), 1);
    }
    let keys: Vec<_> = entry
        .attestors
        .iter()
        .map(|s| match &s.entries[0].kind {
            AttestorKind::Key(k) => k.key.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            KeySource::Pem(crate::crypto::key::PublicKey::from_pem(K1).unwrap()),
            KeySource::Pem(crate::crypto::key::PublicKey::from_pem(DEV_KEY).unwrap())
        ]
    );
}

#[test]
fn fixed_scenario_2_resolves_enforce_and_audit_per_rule() {
    let outcome = load("scenario-2.yaml", FIXED_SCENARIO_2);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let warnings: Vec<_> = outcome
        .warnings
        .iter()
        .map(|w| (w.location.rule.clone(), w.kind.clone()))
        .collect();
    assert_eq!(
        warnings,
        [(
            Some("development-warn-unsigned".to_string()),
            PolicyWarningKind::MutateDigestInAudit
        )]
    );
    let policy = &outcome.policies[0];
    let none = BTreeMap::new();
    let production = policy.rule("production-must-be-signed").unwrap();
    let development = policy.rule("development-warn-unsigned").unwrap();
    let resolved = policy.failure_action(production, Some("production"), Some(&none));
    assert_eq!(resolved.action, FailureAction::Enforce);
    assert_eq!(resolved.source, FailureActionSource::Entry(0));
    let resolved = policy.failure_action(development, Some("development"), Some(&none));
    assert_eq!(resolved.action, FailureAction::Audit);
    assert_eq!(resolved.source, FailureActionSource::Entry(0));
    assert!(!resolved.is_enforce());
    assert!(production.matches(
        "Pod",
        Some("production"),
        "p",
        &none,
        &none,
        Operation::Create
    ));
    assert!(!production.matches("Pod", Some("staging"), "p", &none, &none, Operation::Create));
    assert!(development.matches("Pod", Some("staging"), "p", &none, &none, Operation::Create));
    // The autogen copies match controllers in the same namespaces.
    let autogen = policy.rule("autogen-development-warn-unsigned").unwrap();
    assert!(autogen.matches(
        "Deployment",
        Some("staging"),
        "d",
        &none,
        &none,
        Operation::Update
    ));
    assert!(!autogen.matches(
        "Deployment",
        Some("production"),
        "d",
        &none,
        &none,
        Operation::Update
    ));
    assert!(!autogen.matches("Pod", Some("staging"), "d", &none, &none, Operation::Update));
}

#[test]
fn fixed_scenario_3_has_a_certificate_attestor_with_rekor() {
    let outcome = load("scenario-3.yaml", FIXED_SCENARIO_3);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let set = &outcome.policies[0].rules[0].verify_images[0].attestors[0];
    let AttestorKind::Certificate(attestor) = &set.entries[0].kind else {
        panic!("not a certificate attestor");
    };
    assert_eq!(
        attestor.rekor.url.as_deref(),
        Some("https://rekor.sigstore.dev")
    );
    let expected = crate::crypto::cert::parse_pem_certificates(TEST_CERT).unwrap();
    assert_eq!(
        attestor.cert.as_ref().map(|c| c.der()),
        Some(expected[0].der())
    );
    assert!(attestor.chain.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Helpers for table tests: a valid JSON policy, mutated.

fn base_policy() -> Value {
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "r",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": ["ghcr.io/*"],
                    "attestors": [{"entries": [{"keys": {"publicKeys": K1}}]}]
                }]
            }]
        }
    })
}

fn load_value(value: &Value) -> LoadOutcome {
    load("p.json", &serde_json::to_string_pretty(value).unwrap())
}

fn with(mutate: impl FnOnce(&mut Value)) -> LoadOutcome {
    let mut value = base_policy();
    mutate(&mut value);
    load_value(&value)
}

fn entry(value: &mut Value) -> &mut Value {
    &mut value["spec"]["rules"][0]["verifyImages"][0]
}

fn loaded(outcome: &LoadOutcome) -> &Policy {
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    &outcome.policies[0]
}

#[test]
fn the_base_policy_loads_cleanly() {
    let outcome = load_value(&base_policy());
    loaded(&outcome);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
}

type Mutation = Box<dyn Fn(&mut Value)>;

/// One case per validation message: (mutation, path of the error, message).
#[test]
fn every_validation_message() {
    let cases: Vec<(Mutation, &str, &str)> = vec![
        (
            Box::new(|v| v["spec"]["rules"][0]["validate"] = json!({"pattern": {}})),
            "spec.rules[0]",
            "Multiple operations defined in the rule 'r', only one operation (mutate,validate,generate,verifyImages) is allowed per rule",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"].as_array_mut().unwrap().push(
                    json!({"name": "x", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}}),
                )
            }),
            "spec.rules[1]",
            "No operation defined in the rule 'x'.(supported operations: mutate,validate,generate,verifyImages)",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"].as_array_mut().unwrap().push(
                    json!({"name": "x", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "mutate": {}, "verifyImages": []}),
                )
            }),
            "spec.rules[1]",
            "No operation defined in the rule 'x'",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"].as_array_mut().unwrap().push(json!({
                    "name": "x", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                    "validate": {"pattern": {}},
                    "imageExtractors": {"Task": [{"path": "/spec/steps/*/image"}]}
                }))
            }),
            "spec.rules[1].imageExtractors",
            "Invalid rule spec for rule 'x', imageExtractors can only be defined for verifyImages rule",
        ),
        (
            Box::new(|v| entry(v)["attestors"][0]["count"] = json!(2)),
            "spec.rules[0].verifyImages[0].attestors[0].count",
            "Count cannot exceed length of entries",
        ),
        (
            Box::new(|v| entry(v)["attestors"][0]["count"] = json!(0)),
            "spec.rules[0].verifyImages[0].attestors[0].count",
            "count must be at least 1, not 0",
        ),
        (
            Box::new(|v| entry(v)["attestors"][0]["entries"] = json!([])),
            "spec.rules[0].verifyImages[0].attestors[0].entries",
            "An entry is required",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0] = json!({"annotations": {"a": "b"}})
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0]",
            "keys, certificates, keyless, or a nested attestor is required",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["keyless"] =
                    json!({"rekor": {"url": "https://rekor.sigstore.dev"}})
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0]",
            "keys, certificates, keyless, or a nested attestor is required",
        ),
        (
            Box::new(|v| entry(v)["attestors"][0]["entries"][0]["keys"] = json!({})),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys",
            "A public key, kms key or secret is required",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["keys"]["signatureAlgorithm"] = json!("md5")
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.signatureAlgorithm",
            "Invalid signature algorithm provided: 'md5' (use sha256, sha384 or sha512)",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["signatureAlgorithm"] = json!("sha1")
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].signatureAlgorithm",
            "Invalid signature algorithm provided: 'sha1' (use sha256, sha384 or sha512)",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["keys"]["signatureAlgorithm"] =
                    json!("sha224")
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.signatureAlgorithm",
            "signature algorithm 'sha224' is not supported by sealgate (use sha256, sha384 or sha512)",
        ),
        (
            Box::new(|v| entry(v)["attestors"][0]["entries"][0] = json!({"certificates": {}})),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates",
            "cert or certChain required",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0] = json!({"keyless": {"subject": "a@b"}})
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless",
            "Either Rekor URL or roots are required",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0] = json!({"keyless": {"rekor": {}}})
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.rekor.url",
            "An URL is required",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["keys"]["publicKeys"] =
                    json!("k8s://only-namespace")
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys",
            "'k8s://only-namespace' is not a valid Secret reference: expected k8s://<namespace>/<name>",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["keys"]["publicKeys"] =
                    json!(format!("{K1}trailing words\n"))
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys",
            "line 5 ('trailing words') is outside any PEM block",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0]["keys"]["publicKeys"] = json!(TEST_CERT)
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys",
            "the block at line 1 is a 'CERTIFICATE', not a PUBLIC KEY",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0] = json!({"certificates": {"cert": K1}})
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].certificates.cert",
            "the block at line 1 is a 'PUBLIC KEY', not a CERTIFICATE",
        ),
        (
            Box::new(|v| entry(v)["imageReferences"] = json!([])),
            "spec.rules[0].verifyImages[0].imageReferences",
            "An image reference is required",
        ),
        (
            Box::new(|v| entry(v)["imageReferences"] = json!(["ghcr.io/{{request.namespace}}/*"])),
            "spec.rules[0].verifyImages[0].imageReferences[0]",
            "rule \"r\" should not have variables in image reference section",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"][0]["match"] = json!({"any": [{"resources": {"kinds": ["*"]}}]})
            }),
            "spec.rules[0].match.any[0].resources.kinds[0]",
            "wildcard policy does not support rule type",
        ),
        (
            Box::new(|v| v["spec"]["admission"] = json!(false)),
            "spec.admission",
            "disabling admission processing is only allowed with validation policies",
        ),
        (
            Box::new(|v| {
                v["metadata"]["annotations"] =
                    json!({"pod-policies.kyverno.io/autogen-controllers": "all"})
            }),
            "metadata.annotations[\"pod-policies.kyverno.io/autogen-controllers\"]",
            "Autogen annotation does not support 'all' anymore, remove the annotation or set it to a valid value",
        ),
        (
            Box::new(|v| {
                v["kind"] = json!("Policy");
                v["metadata"]["namespace"] = json!("team");
                v["spec"]["validationFailureActionOverrides"] =
                    json!([{"action": "Audit", "namespaces": ["x"]}]);
            }),
            "spec.validationFailureActionOverrides",
            "Use of validationFailureActionOverrides is supported only with ClusterPolicy",
        ),
        (
            Box::new(|v| {
                v["spec"]["validationFailureActionOverrides"] = json!([
                    {"action": "Audit", "namespaces": ["dev"]},
                    {"action": "Enforce", "namespaces": ["dev"]}
                ]);
            }),
            "spec.validationFailureActionOverrides[1].namespaces[0]",
            "conflicting namespaces found in path: spec.validationFailureActionOverrides[1].namespaces: dev",
        ),
        (
            Box::new(|v| {
                entry(v)["type"] = json!("Notary");
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys",
            "Keys field is not allowed for type notary",
        ),
        (
            Box::new(|v| {
                entry(v)["type"] = json!("Notary");
                entry(v)["attestors"][0]["entries"][0] =
                    json!({"keyless": {"rekor": {"url": "https://rekor.sigstore.dev"}}});
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless",
            "Keyless field is not allowed for type notary",
        ),
        (
            Box::new(|v| {
                let rule = v["spec"]["rules"][0].clone();
                v["spec"]["rules"].as_array_mut().unwrap().push(rule);
            }),
            "spec.rules[1].name",
            "duplicate rule name 'r'",
        ),
        (
            Box::new(|v| v["spec"]["rules"][0]["name"] = json!("")),
            "spec.rules[0].name",
            "a rule name is required",
        ),
        (
            Box::new(|v| v["spec"]["rules"][0]["name"] = json!("x".repeat(64))),
            "spec.rules[0].name",
            "is longer than 63 characters",
        ),
        (
            Box::new(|v| v["metadata"]["name"] = json!("")),
            "metadata.name",
            "metadata.name is required",
        ),
        (
            Box::new(|v| v["spec"]["rules"][0]["match"] = json!({})),
            "spec.rules[0].match",
            "match is empty: the rule must say which resources it applies to",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"][0]["match"] = json!({
                    "any": [{"resources": {"kinds": ["Pod"]}}],
                    "all": [{"resources": {"kinds": ["Pod"]}}]
                })
            }),
            "spec.rules[0].match",
            "can't specify any and all together",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"][0]["match"] =
                    json!({"any": [{"resources": {"namespaces": ["a"]}}]})
            }),
            "spec.rules[0].match.any[0].resources.kinds",
            "kinds is required",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"][0]["match"]["any"][0]["resources"]["selector"] = json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]})
            }),
            "spec.rules[0].match.any[0].resources.selector.matchExpressions[0].operator",
            "'Equals' is not a valid label selector operator: use In, NotIn, Exists or DoesNotExist",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"][0]["match"]["any"][0]["resources"]["namespaceSelector"] =
                    json!({"matchExpressions": [{"key": "a", "operator": "In"}]})
            }),
            "spec.rules[0].match.any[0].resources.namespaceSelector.matchExpressions[0].values",
            "operator In needs at least one value",
        ),
        (
            Box::new(|v| {
                v["spec"]["rules"][0]["match"]["any"][0]["resources"]["operations"] =
                    json!(["PATCH"])
            }),
            "spec.rules[0].match.any[0].resources.operations[0]",
            "'PATCH' is not an admission operation: use CREATE, UPDATE, DELETE or CONNECT",
        ),
        (
            Box::new(|v| entry(v)["attestations"] = json!([{"conditions": []}])),
            "spec.rules[0].verifyImages[0].attestations[0].type",
            "missing type",
        ),
        (
            Box::new(|v| v["spec"]["webhookConfiguration"] = json!({"timeoutSeconds": 45})),
            "spec.webhookConfiguration.timeoutSeconds",
            "timeoutSeconds must be between 1 and 30, not 45",
        ),
        (
            Box::new(|v| v["apiVersion"] = json!("kyverno.io/v9")),
            "apiVersion",
            "apiVersion 'kyverno.io/v9' is not supported",
        ),
        (
            Box::new(|v| entry(v)["attestors"][0]["count"] = json!("one")),
            "spec.rules[0].verifyImages[0].attestors[0].count",
            "invalid type: string \"one\", expected i64",
        ),
        (
            Box::new(|v| entry(v)["failureAction"] = json!("enforce")),
            "spec.rules[0].verifyImages[0].failureAction",
            "unknown variant `enforce`, expected `Audit` or `Enforce`",
        ),
        (
            Box::new(|v| entry(v)["type"] = json!("cosign")),
            "spec.rules[0].verifyImages[0].type",
            "unknown variant `cosign`",
        ),
        (
            Box::new(
                |v| entry(v)["attestors"][0]["entries"][0]["keys"]["rekor"] = json!({"url": "https://r", "pubkey": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}),
            ),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.rekor.pubkey",
            "the PUBLIC KEY block at line 1: the public key is not a valid PKIX SubjectPublicKeyInfo",
        ),
        (
            Box::new(
                |v| entry(v)["attestors"][0]["entries"][0]["keys"]["ctlog"] = json!({"tsaCertChain": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}),
            ),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.ctlog.tsaCertChain",
            "the CERTIFICATE block at line 1 is not valid DER: ",
        ),
        (
            Box::new(|v| {
                entry(v)["attestors"][0]["entries"][0] = json!({"attestor": {"count": 3, "entries": [
                    {"keys": {"publicKeys": K1}}
                ]}})
            }),
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].attestor.count",
            "Count cannot exceed length of entries",
        ),
    ];
    for (mutation, expected_path, expected_message) in cases {
        let mut value = base_policy();
        mutation(&mut value);
        let outcome = load_value(&value);
        assert!(
            outcome.policies.is_empty(),
            "{expected_message}: the policy loaded"
        );
        let found = outcome.errors.iter().any(|e| {
            e.location.path.to_string() == expected_path
                && e.kind.to_string().contains(expected_message)
        });
        assert!(
            found,
            "expected '{expected_message}' at {expected_path}, got:\n{}",
            outcome
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn error_locations_in_yaml() {
    let text = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      failureAction: Enforce\n      attestors:\n      - count: 3\n        entries:\n        - keyless: {rekor: {url: https://rekor.sigstore.dev}}\n";
    let outcome = load("p.yaml", text);
    let error = &outcome.errors[0];
    assert_eq!(
        error.to_string(),
        "p.yaml:16:9: policy p, rule r: spec.rules[0].verifyImages[0].attestors[0].count: Count cannot exceed length of entries — lower count, or add entries (count 1 means any one entry, omitting it means all)"
    );
}

#[test]
fn yaml_errors_are_reported_with_the_source() {
    let outcome = load("bad.yaml", "a: 1\nb: c: d\n");
    assert_eq!(outcome.errors.len(), 1);
    let text = outcome.errors[0].to_string();
    assert!(text.starts_with("bad.yaml:2:5: invalid YAML: "), "{text}");
    let outcome = load(
        "dup.yaml",
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nkind: Policy\n",
    );
    assert_eq!(
        outcome.errors[0].to_string(),
        "dup.yaml:3:1: duplicate key 'kind' (first set at line 2)"
    );
    let outcome = load("scalar.yaml", "just text\n");
    assert_eq!(outcome.errors[0].kind, PolicyErrorKind::NotAnObject);
}

#[test]
fn other_documents_are_skipped_with_a_note() {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: x}}\n---\n{FIXED_QUICK_START}\n---\napiVersion: policies.kyverno.io/v1alpha1\nkind: ImageValidatingPolicy\n---\n- a list\n"
    );
    let outcome = load("mixed.yaml", &text);
    assert_eq!(outcome.policies.len(), 1);
    let skipped: Vec<_> = outcome
        .skipped
        .iter()
        .map(|s| (s.line, s.api_version.clone(), s.kind.clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (1, Some("v1".into()), Some("Pod".into())),
            (
                text[..text.find("apiVersion: policies").unwrap()]
                    .lines()
                    .count()
                    + 1,
                Some("policies.kyverno.io/v1alpha1".into()),
                Some("ImageValidatingPolicy".into())
            )
        ]
    );
    assert_eq!(
        outcome.skipped[0].to_string(),
        "mixed.yaml:1: skipped v1 Pod (not a Kyverno ClusterPolicy or Policy)"
    );
    assert_eq!(outcome.errors.len(), 1, "the list is not an object");
}

// ---------------------------------------------------------------------------------------------
// Defaults and fields.

#[test]
fn crd_defaults() {
    let outcome = with(|v| {
        v["spec"]
            .as_object_mut()
            .unwrap()
            .remove("validationFailureAction");
        entry(v)["mutateDigest"] = json!(false);
    });
    let policy = loaded(&outcome);
    assert_eq!(policy.validation_failure_action, FailureAction::Audit);
    assert!(policy.background && policy.admission && !policy.emit_warning);
    assert_eq!(policy.apply_rules, ApplyRules::All);
    assert_eq!(policy.failure_policy, FailurePolicy::Fail);
    assert_eq!(policy.webhook_timeout_seconds, None);
    let e = &policy.rules[0].verify_images[0];
    assert!(e.verify_digest && e.required && e.use_cache && !e.mutate_digest);
    assert!(!e.cosign_oci11);
    assert_eq!(e.verifier, VerifierType::Cosign);
    assert_eq!(e.failure_action, None);
    assert_eq!(e.repository, None);
    let set = &e.attestors[0];
    assert_eq!(set.count, None);
    assert_eq!(set.required_count(), 1);
    let AttestorKind::Key(key) = &set.entries[0].kind else {
        panic!()
    };
    assert_eq!(key.hash, SignatureHash::Sha256);
    assert_eq!(key.rekor, RekorSettings::default());
    assert_eq!(key.ctlog, CtLogSettings::default());
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
}

#[test]
fn every_field_is_read() {
    let outcome = with(|v| {
        v["metadata"]["labels"] = json!({"team": "sec"});
        v["metadata"]["annotations"] = json!({"policies.kyverno.io/severity": "high"});
        v["spec"]["background"] = json!(false);
        v["spec"]["emitWarning"] = json!(true);
        v["spec"]["applyRules"] = json!("One");
        v["spec"]["failurePolicy"] = json!("Fail");
        v["spec"]["webhookConfiguration"] =
            json!({"failurePolicy": "Ignore", "timeoutSeconds": 15});
        v["spec"]["rules"][0]["context"] = json!([{"name": "cm", "configMap": {"name": "x", "namespace": "y"}}, {"name": "api", "apiCall": {"urlPath": "/api/v1/namespaces"}}]);
        v["spec"]["rules"][0]["preconditions"] = json!({"all": []});
        v["spec"]["rules"][0]["imageExtractors"] = json!({"Task": [{"path": "/spec/steps/*", "value": "image", "name": "steps", "key": "name", "jmesPath": "trim_prefix(@, 'docker://')"}]});
        v["spec"]["rules"][0]["exclude"] =
            json!({"any": [{"resources": {"namespaces": ["kube-system"]}}]});
        *entry(v) = json!({
            "type": "Cosign",
            "failureAction": "Enforce",
            "imageReferences": ["ghcr.io/*", "docker.io/*"],
            "skipImageReferences": ["ghcr.io/trusted/*"],
            "repository": "ghcr.io/sigs/repo",
            "cosignOCI11": true,
            "required": false,
            "verifyDigest": false,
            "mutateDigest": false,
            "useCache": false,
            "imageRegistryCredentials": {"allowInsecureRegistry": true, "providers": ["default", "github"], "secrets": ["regcred"]},
            "validate": {"message": "m", "deny": {"conditions": {"any": []}}},
            "attestors": [{
                "count": 1,
                "entries": [
                    {
                        "keys": {
                            "publicKeys": K1,
                            "signatureAlgorithm": "sha384",
                            "rekor": {"url": "https://rekor.example", "pubkey": EXTRA_KEY, "ignoreTlog": true},
                            "ctlog": {"ignoreSCT": true, "pubkey": DEV_KEY, "tsaCertChain": TEST_CERT}
                        },
                        "annotations": {"env": "prod"},
                        "repository": "ghcr.io/other/repo"
                    },
                    {"certificates": {"certChain": TEST_CERT, "rekor": {"url": "https://r2"}}},
                    {"keyless": {
                        "issuer": "https://token.actions.githubusercontent.com",
                        "issuerRegExp": "^https://.*$",
                        "subject": "https://github.com/org/*",
                        "subjectRegExp": ".*",
                        "roots": TEST_CERT,
                        "additionalExtensions": {"githubWorkflowTrigger": "push"},
                        "ctlog": {"ignoreSCT": true}
                    }},
                    {"attestor": {"entries": [{"keys": {"publicKeys": DEV_KEY}}]}}
                ]
            }],
            "attestations": [{
                "name": "prov",
                "type": "https://slsa.dev/provenance/v0.2",
                "attestors": [{"entries": [{"keys": {"publicKeys": K1}}]}],
                "conditions": [{"all": [{"key": "{{ builder.id }}", "operator": "Equals", "value": "x"}]}]
            }]
        });
    });
    let policy = loaded(&outcome);
    // Read, and said to be unsupported or unused, each where it is written.
    let warned: Vec<String> = outcome
        .warnings
        .iter()
        .map(|w| format!("{} {}", w.location.path, w.kind))
        .collect();
    let expected = [
        "spec.rules[0].verifyImages[0].imageRegistryCredentials.allowInsecureRegistry allowInsecureRegistry is not used",
        "spec.rules[0].verifyImages[0].imageRegistryCredentials.providers providers is not used",
        "spec.rules[0].verifyImages[0].attestors[0].entries[1].certificates.rekor this certificates attestor has a rekor block",
        "spec.rules[0].context[1] context entry `api` is an apiCall, which sealgate does not make",
        "spec.rules[0].imageExtractors.Task[0].jmesPath jmesPath in imageExtractors is not supported yet",
    ];
    assert_eq!(warned.len(), expected.len(), "{warned:#?}");
    for (got, want) in warned.iter().zip(expected) {
        assert!(got.starts_with(want), "{got} does not start with {want}");
    }
    assert_eq!(policy.labels["team"], "sec");
    assert_eq!(policy.annotations["policies.kyverno.io/severity"], "high");
    assert!(!policy.background && policy.emit_warning);
    assert_eq!(policy.apply_rules, ApplyRules::One);
    assert_eq!(policy.failure_policy, FailurePolicy::Ignore);
    assert_eq!(policy.webhook_timeout_seconds, Some(15));
    let rule = &policy.rules[0];
    assert_eq!(rule.context.len(), 2);
    assert_eq!(rule.preconditions, Some(json!({"all": []})));
    assert_eq!(
        rule.image_extractors["Task"][0].jmes_path.as_deref(),
        Some("trim_prefix(@, 'docker://')")
    );
    assert!(rule.exclude.is_some());
    let e = &rule.verify_images[0];
    assert_eq!(e.failure_action, Some(FailureAction::Enforce));
    assert_eq!(e.skip_image_references, ["ghcr.io/trusted/*"]);
    assert!(e.skips("ghcr.io/trusted/app:v1") && !e.skips("ghcr.io/other/app:v1"));
    assert!(e.applies_to("docker.io/nginx:latest") && !e.applies_to("quay.io/x:y"));
    assert_eq!(e.repository.as_deref(), Some("ghcr.io/sigs/repo"));
    assert!(e.cosign_oci11 && !e.required && !e.verify_digest && !e.mutate_digest && !e.use_cache);
    let creds = e.image_registry_credentials.as_ref().unwrap();
    assert!(creds.allow_insecure_registry);
    assert_eq!(creds.secrets, ["regcred"]);
    assert_eq!(e.validate.as_ref().unwrap().message.as_deref(), Some("m"));
    let set = &e.attestors[0];
    assert_eq!(set.entries.len(), 4);
    let entries = &set.entries;
    let AttestorKind::Key(key) = &entries[0].kind else {
        panic!()
    };
    assert_eq!(key.hash, SignatureHash::Sha384);
    assert_eq!(key.rekor.url.as_deref(), Some("https://rekor.example"));
    assert!(key.rekor.ignore_tlog && key.rekor.public_key.is_some());
    assert!(key.ctlog.ignore_sct && key.ctlog.public_key.is_some());
    assert_eq!(key.ctlog.tsa_cert_chain.len(), 1);
    assert_eq!(entries[0].annotations["env"], "prod");
    assert_eq!(entries[0].repository.as_deref(), Some("ghcr.io/other/repo"));
    let AttestorKind::Certificate(cert) = &entries[1].kind else {
        panic!()
    };
    assert!(cert.cert.is_none());
    assert_eq!(cert.chain.len(), 1);
    assert_eq!(cert.rekor.url.as_deref(), Some("https://r2"));
    let AttestorKind::Keyless(keyless) = &entries[2].kind else {
        panic!()
    };
    assert_eq!(
        keyless.issuer.as_deref(),
        Some("https://token.actions.githubusercontent.com")
    );
    assert_eq!(keyless.issuer_regexp.as_deref(), Some("^https://.*$"));
    assert_eq!(keyless.subject.as_deref(), Some("https://github.com/org/*"));
    assert_eq!(keyless.subject_regexp.as_deref(), Some(".*"));
    assert_eq!(keyless.roots.len(), 1);
    assert_eq!(
        keyless.additional_extensions["githubWorkflowTrigger"],
        "push"
    );
    assert_eq!(keyless.rekor.url.as_deref(), Some(DEFAULT_REKOR_URL));
    assert!(keyless.ctlog.ignore_sct);
    let AttestorKind::Nested(nested) = &entries[3].kind else {
        panic!()
    };
    assert_eq!(nested.required_count(), 1);
    assert_eq!(
        nested.path.to_string(),
        "spec.rules[0].verifyImages[0].attestors[0].entries[3].attestor"
    );
    let attestation = &e.attestations[0];
    assert_eq!(attestation.name.as_deref(), Some("prov"));
    assert_eq!(
        attestation.predicate_type,
        "https://slsa.dev/provenance/v0.2"
    );
    assert_eq!(attestation.attestors.len(), 1);
    assert_eq!(attestation.conditions.blocks().len(), 1);
}

#[test]
fn secret_kms_and_references_are_kept_and_only_kms_and_references_warned() {
    let cases = [
        (
            json!({"publicKeys": "k8s://ns/cosign"}),
            KeySource::Secret {
                namespace: "ns".into(),
                name: "cosign".into(),
            },
        ),
        (
            json!({"secret": {"name": "cosign", "namespace": "ns"}}),
            KeySource::Secret {
                namespace: "ns".into(),
                name: "cosign".into(),
            },
        ),
        (
            json!({"kms": "awskms:///arn:aws:kms:x"}),
            KeySource::Kms("awskms:///arn:aws:kms:x".into()),
        ),
        (
            json!({"publicKeys": "gcpkms://projects/p/keys/k"}),
            KeySource::Kms("gcpkms://projects/p/keys/k".into()),
        ),
        (
            json!({"publicKeys": "https://example.com/cosign.pub"}),
            KeySource::Reference("https://example.com/cosign.pub".into()),
        ),
        // publicKeys wins over secret and kms.
        (
            json!({"publicKeys": "k8s://a/b", "kms": "awskms:///x", "secret": {"name": "c", "namespace": "d"}}),
            KeySource::Secret {
                namespace: "a".into(),
                name: "b".into(),
            },
        ),
    ];
    for (keys, expected) in cases {
        let outcome = with(|v| entry(v)["attestors"][0]["entries"][0]["keys"] = keys.clone());
        let policy = loaded(&outcome);
        let AttestorKind::Key(key) = &policy.rules[0].verify_images[0].attestors[0].entries[0].kind
        else {
            panic!()
        };
        assert_eq!(key.key, expected, "{keys}");
        // A Secret key is right (`serve --kubernetes` reads it): no warning; KMS and other
        // references are not supported: warned.
        if matches!(expected, KeySource::Secret { .. }) {
            assert!(
                outcome.warnings.is_empty(),
                "{keys}: {:?}",
                outcome.warnings
            );
        } else {
            assert!(
                matches!(
                    outcome.warnings[0].kind,
                    PolicyWarningKind::UnsupportedKeySource(_)
                ),
                "{keys}"
            );
        }
    }
}

#[test]
fn certificate_cert_accepts_base64_of_pem() {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(TEST_CERT);
    let outcome = with(|v| {
        entry(v)["attestors"][0]["entries"][0] = json!({"certificates": {"cert": encoded}})
    });
    let policy = loaded(&outcome);
    let AttestorKind::Certificate(c) =
        &policy.rules[0].verify_images[0].attestors[0].entries[0].kind
    else {
        panic!()
    };
    assert!(c.cert.is_some());
    let outcome = with(|v| {
        entry(v)["attestors"][0]["entries"][0] =
            json!({"certificates": {"cert": "bm90IGEgY2VydA=="}})
    });
    assert_eq!(
        outcome.errors[0].kind,
        PolicyErrorKind::BadCertificate(CertError::NoCertificate)
    );
}

// ---------------------------------------------------------------------------------------------
// Deprecated fields (Convert()).

#[test]
fn deprecated_image_and_key_are_converted() {
    let outcome = with(|v| {
        *entry(v) = json!({"image": "ghcr.io/app/*", "key": K1, "annotations": {"a": "b"}, "failureAction": "Enforce"});
    });
    let policy = loaded(&outcome);
    let e = &policy.rules[0].verify_images[0];
    assert_eq!(e.image_references, ["ghcr.io/app/*"]);
    assert_eq!(e.attestors.len(), 1);
    let attestor = &e.attestors[0].entries[0];
    assert!(matches!(attestor.kind, AttestorKind::Key(_)));
    assert_eq!(attestor.annotations["a"], "b");
    let deprecated: Vec<_> = outcome
        .warnings
        .iter()
        .filter_map(|w| match w.kind {
            PolicyWarningKind::DeprecatedField { field, .. } => Some(field),
            _ => None,
        })
        .collect();
    assert_eq!(deprecated, ["image", "key", "annotations"]);
}

#[test]
fn deprecated_issuer_becomes_keyless_and_errors_point_at_the_written_field() {
    let outcome = with(|v| {
        *entry(v) = json!({"imageReferences": ["ghcr.io/*"], "issuer": "https://issuer", "subject": "me@x", "roots": TEST_CERT, "failureAction": "Enforce"});
    });
    let policy = loaded(&outcome);
    let AttestorKind::Keyless(k) = &policy.rules[0].verify_images[0].attestors[0].entries[0].kind
    else {
        panic!()
    };
    assert_eq!(k.issuer.as_deref(), Some("https://issuer"));
    assert_eq!(k.subject.as_deref(), Some("me@x"));
    assert_eq!(k.roots.len(), 1);

    let text = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - image: ghcr.io/*\n      key: |-\n        -----BEGIN PUBLIC KEY-----\n        # my key\n{}\n",
        K1.lines()
            .skip(1)
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let outcome = load("d.yaml", &text);
    assert_eq!(outcome.errors.len(), 1, "{:?}", outcome.errors);
    let e = &outcome.errors[0];
    assert_eq!((e.location.line, e.location.column), (13, 9));
    assert_eq!(
        e.location.path.to_string(),
        "spec.rules[0].verifyImages[0].key"
    );
}

#[test]
fn deprecated_key_with_attestations_goes_to_each_attestation() {
    let outcome = with(|v| {
        *entry(v) = json!({"image": "*", "key": K1, "failureAction": "Enforce",
            "attestations": [{"type": "a"}, {"predicateType": "b"}]});
    });
    let policy = loaded(&outcome);
    let e = &policy.rules[0].verify_images[0];
    assert!(e.attestors.is_empty());
    assert_eq!(e.attestations[0].attestors.len(), 1);
    assert_eq!(e.attestations[1].attestors.len(), 1);
    assert_eq!(e.attestations[1].predicate_type, "b");
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::DeprecatedPredicateType("b".into()))
    );
    assert_eq!(
        PolicyWarningKind::DeprecatedPredicateType("b".into()).to_string(),
        "predicateType has been deprecated use 'type: b' instead of 'predicateType: b'"
    );
}

// ---------------------------------------------------------------------------------------------
// Multi-PEM expansion (§3.4).

fn keys_text(keys: &[&str]) -> String {
    keys.concat()
}

#[test]
fn several_pem_keys_expand_into_entries() {
    for (keys, count, required) in [
        (vec![K1], None, 1),
        (vec![K1, DEV_KEY, EXTRA_KEY], None, 3),
        (vec![K1, DEV_KEY, EXTRA_KEY], Some(1), 1),
    ] {
        let text = keys_text(&keys);
        let outcome = with(|v| {
            entry(v)["attestors"][0]["entries"][0]["keys"]["publicKeys"] = json!(text);
            entry(v)["attestors"][0]["entries"][0]["annotations"] = json!({"x": "y"});
            if let Some(c) = count {
                entry(v)["attestors"][0]["count"] = json!(c);
            }
        });
        let policy = loaded(&outcome);
        let set = &policy.rules[0].verify_images[0].attestors[0];
        assert_eq!(set.entries.len(), keys.len());
        assert_eq!(set.required_count(), required);
        for (i, (attestor, pem)) in set.entries.iter().zip(&keys).enumerate() {
            let AttestorKind::Key(k) = &attestor.kind else {
                panic!()
            };
            assert_eq!(
                k.key,
                KeySource::Pem(crate::crypto::key::PublicKey::from_pem(pem).unwrap())
            );
            assert_eq!(attestor.annotations["x"], "y", "other fields are copied");
            assert_eq!(attestor.key_index, (keys.len() > 1).then_some(i));
            assert_eq!(
                attestor.path.to_string(),
                "spec.rules[0].verifyImages[0].attestors[0].entries[0]"
            );
        }
    }
}

#[test]
fn keys_in_attestations_are_not_expanded() {
    let text = keys_text(&[K1, DEV_KEY]);
    let outcome = with(|v| {
        entry(v)["attestations"] =
            json!([{"type": "t", "attestors": [{"entries": [{"keys": {"publicKeys": text}}]}]}]);
    });
    let policy = loaded(&outcome);
    let set = &policy.rules[0].verify_images[0].attestations[0].attestors[0];
    assert_eq!(set.entries.len(), 1);
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::KeysNotExpanded(2))
    );
}

#[test]
fn a_private_key_pasted_as_public_key_is_named() {
    let private = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
    let outcome =
        with(|v| entry(v)["attestors"][0]["entries"][0]["keys"]["publicKeys"] = json!(private));
    assert_eq!(
        outcome.errors[0].hint.as_deref(),
        Some("this is a private key: paste cosign.pub, never cosign.key")
    );
}

// ---------------------------------------------------------------------------------------------
// Warnings.

#[test]
fn unknown_fields_are_errors_with_suggestions() {
    let outcome = load("u.yaml", UNKNOWN_FIELDS);
    assert!(outcome.policies.is_empty());
    let rendered: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
    assert_eq!(rendered.len(), 3, "{rendered:#?}");
    assert!(
        rendered[0].starts_with(
            "u.yaml:7:3: policy p: spec.backgrond: unknown field 'backgrond'; did you mean 'background'?"
        ),
        "{rendered:#?}"
    );
    assert!(
        rendered[0].contains("--allow-unknown-fields"),
        "{}",
        rendered[0]
    );
    assert!(rendered[1].starts_with("u.yaml:12:7: policy p, rule r: spec.rules[0].verifyImages[0].imageReference: unknown field 'imageReference'; did you mean 'imageReferences'?"), "{}", rendered[1]);
    assert!(rendered[2].starts_with("u.yaml:17:11: policy p, rule r: spec.rules[0].verifyImages[0].attestors[0].entries[0].colour: unknown field 'colour' —"), "{}", rendered[2]);
}

#[test]
fn a_misspelled_attestors_field_is_an_error_naming_attestors() {
    let text = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      atestors:\n      - entries: []\n";
    let outcome = load("a.yaml", text);
    assert!(outcome.policies.is_empty());
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.to_string().contains("a.yaml:11:7")
                && e.to_string()
                    .contains("unknown field 'atestors'; did you mean 'attestors'?")),
        "{:#?}",
        outcome.errors
    );
}

const UNKNOWN_FIELDS: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  backgrond: false\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReference: [\"ghcr.io/*\"]\n      imageReferences: [\"ghcr.io/*\"]\n      attestors:\n      - entries:\n        - keyless: {rekor: {url: https://rekor.sigstore.dev}}\n          colour: blue\n";

#[test]
fn unknown_fields_are_warnings_with_suggestions_when_allowed() {
    let text = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  backgrond: false\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReference: [\"ghcr.io/*\"]\n      imageReferences: [\"ghcr.io/*\"]\n      attestors:\n      - entries:\n        - keyless: {rekor: {url: https://rekor.sigstore.dev}}\n          colour: blue\n";
    assert_eq!(text, UNKNOWN_FIELDS);
    let outcome = crate::policy::load_with(
        "u.yaml",
        text,
        crate::policy::LoadOptions {
            allow_unknown_fields: true,
        },
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let rendered: Vec<String> = outcome.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        [
            "u.yaml:7:3: policy p: spec.backgrond: unknown field; did you mean background?",
            "u.yaml:12:7: policy p, rule r: spec.rules[0].verifyImages[0].imageReference: unknown field; did you mean imageReferences?",
            "u.yaml:16:11: policy p, rule r: spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless: this keyless attestor names no subject, issuer or extension: any certificate from the Fulcio roots passes, whoever it was issued to (Kyverno does the same) — add subject (e.g. 'https://github.com/ORG/*') and issuer (e.g. 'https://token.actions.githubusercontent.com')",
            "u.yaml:17:11: policy p, rule r: spec.rules[0].verifyImages[0].attestors[0].entries[0].colour: unknown field (Kubernetes would drop it silently)",
        ]
    );
}

#[test]
fn never_matching_patterns_and_imageless_kinds_are_warned() {
    let outcome = with(|v| {
        entry(v)["imageReferences"] = json!([
            "nginx:*",
            "library/nginx",
            "ghcr.io/*",
            "localhost:5000/*",
            "*"
        ]);
    });
    loaded(&outcome);
    let patterns: Vec<_> = outcome
        .warnings
        .iter()
        .filter_map(|w| match &w.kind {
            PolicyWarningKind::PatternNeverMatches { pattern } => Some(pattern.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(patterns, ["nginx:*", "library/nginx"]);
    assert_eq!(
        outcome.warnings[0].hint.as_deref(),
        Some("write 'docker.io/nginx:*' for Docker Hub images, or the registry host first")
    );
    let outcome = with(|v| {
        v["spec"]["rules"][0]["match"] = json!({"any": [{"resources": {"kinds": ["ConfigMap"]}}]})
    });
    loaded(&outcome);
    assert!(outcome.warnings.iter().any(
        |w| matches!(&w.kind, PolicyWarningKind::NoImageKinds { kinds } if kinds == "ConfigMap")
    ));
}

#[test]
fn other_rule_types_are_ignored_with_a_warning() {
    let outcome = with(|v| {
        v["spec"]["rules"].as_array_mut().unwrap().push(json!({
            "name": "v", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "validate": {"pattern": {}}
        }));
    });
    let policy = loaded(&outcome);
    assert_eq!(policy.rules.len(), 1);
    assert_eq!(
        outcome.warnings[0].kind,
        PolicyWarningKind::RuleTypeIgnored("validate")
    );
    let outcome = with(
        |v| v["spec"]["rules"][0] = json!({"name": "m", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "mutate": {"patchStrategicMerge": {"metadata": {}}}}),
    );
    assert!(outcome.policies.is_empty() && outcome.errors.is_empty());
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::NoVerifyImagesRules)
    );
}

#[test]
fn required_without_attestors_and_namespace_notes() {
    let outcome = with(|v| {
        entry(v)
            .as_object_mut()
            .unwrap()
            .remove("attestors")
            .map(|_| ())
            .unwrap_or(())
    });
    loaded(&outcome);
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::RequiredWithoutChecks)
    );
    let outcome = with(|v| v["kind"] = json!("Policy"));
    let policy = loaded(&outcome);
    assert_eq!(policy.kind, PolicyKind::Policy);
    assert_eq!(policy.namespace.as_deref(), Some("default"));
    assert_eq!(policy.qualified_name(), "default/p");
    assert!(policy.covers_namespace(Some("default")) && !policy.covers_namespace(Some("other")));
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::NamespaceDefaulted)
    );
    let outcome = with(|v| v["metadata"]["namespace"] = json!("x"));
    assert_eq!(loaded(&outcome).namespace, None);
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::NamespaceIgnored)
    );
}

#[test]
fn audit_with_mutate_digest_is_accepted_with_a_warning() {
    // Spec-level Audit (the default) and mutateDigest (the default): Kyverno rejects this.
    let outcome = with(|v| {
        v["spec"]
            .as_object_mut()
            .unwrap()
            .remove("validationFailureAction");
    });
    let policy = loaded(&outcome);
    assert!(policy.rules[0].verify_images[0].mutate_digest);
    assert_eq!(outcome.warnings.len(), 1);
    assert_eq!(
        outcome.warnings[0].kind,
        PolicyWarningKind::MutateDigestInAudit
    );
    // Entry-level Enforce silences it.
    let outcome = with(|v| {
        v["spec"]["validationFailureAction"] = json!("audit");
        entry(v)["failureAction"] = json!("Enforce");
    });
    loaded(&outcome);
    assert!(outcome.warnings.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Failure actions (§1.9).

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn failure_action_resolution() {
    let outcome = with(|v| {
        v["spec"]["validationFailureAction"] = json!("Audit");
        v["spec"]["validationFailureActionOverrides"] = json!([
            {"action": "Enforce", "namespaces": ["prod-*"]},
            {"action": "enforce", "namespaceSelector": {"matchLabels": {"tier": "critical"}}},
            {"action": "Audit", "namespaces": ["prod-sandbox"], "namespaceSelector": {"matchExpressions": [{"key": "x", "operator": "Exists"}]}}
        ]);
        entry(v)["mutateDigest"] = json!(false);
    });
    let policy = loaded(&outcome);
    let rule = &policy.rules[0];
    let none = BTreeMap::new();
    let table = [
        (
            Some("prod-eu"),
            labels(&[]),
            FailureAction::Enforce,
            FailureActionSource::Override(0),
        ),
        (
            Some("dev"),
            labels(&[("tier", "critical")]),
            FailureAction::Enforce,
            FailureActionSource::Override(1),
        ),
        (
            Some("dev"),
            labels(&[("tier", "normal")]),
            FailureAction::Audit,
            FailureActionSource::Spec,
        ),
        (
            None,
            none.clone(),
            FailureAction::Audit,
            FailureActionSource::Spec,
        ),
    ];
    for (namespace, ns_labels, action, source) in table {
        let resolved = policy.failure_action(rule, namespace, Some(&ns_labels));
        assert_eq!(
            (resolved.action, resolved.source),
            (action, source),
            "{namespace:?}"
        );
        assert_eq!(
            policy.entry_failure_action(rule, 0, namespace, Some(&ns_labels)),
            resolved
        );
    }

    // Entry actions win; any Enforce entry makes the rule Enforce.
    let outcome = with(|v| {
        let first = entry(v).clone();
        let mut second = first.clone();
        entry(v)["failureAction"] = json!("Audit");
        entry(v)["mutateDigest"] = json!(false);
        second["failureAction"] = json!("Enforce");
        v["spec"]["rules"][0]["verifyImages"]
            .as_array_mut()
            .unwrap()
            .push(second);
        v["spec"]["validationFailureActionOverrides"] = json!([{"action": "Audit"}]);
    });
    let policy = loaded(&outcome);
    let resolved = policy.failure_action(&policy.rules[0], Some("x"), Some(&none));
    assert_eq!(
        (resolved.action, resolved.source),
        (FailureAction::Enforce, FailureActionSource::Entry(1))
    );
    let outcome = with(|v| {
        entry(v)["failureAction"] = json!("Audit");
        entry(v)["mutateDigest"] = json!(false);
    });
    let policy = loaded(&outcome);
    let resolved = policy.failure_action(&policy.rules[0], Some("x"), Some(&none));
    assert_eq!(
        (resolved.action, resolved.source),
        (FailureAction::Audit, FailureActionSource::Entry(0))
    );
}

// ---------------------------------------------------------------------------------------------
// Match and exclude.

/// kind, namespace, name, labels, namespace labels, operation, expected.
type MatchCase<'a> = (
    &'a str,
    Option<&'a str>,
    &'a str,
    &'a BTreeMap<String, String>,
    &'a BTreeMap<String, String>,
    Operation,
    bool,
);

#[test]
fn match_and_exclude() {
    let outcome = with(|v| {
        v["spec"]["rules"][0]["match"] = json!({"any": [
            {"resources": {"kinds": ["Pod"], "namespaces": ["team-*"], "operations": ["CREATE", "UPDATE"]}},
            {"resources": {"kinds": ["v1/Pod"], "namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}}}
        ]});
        v["spec"]["rules"][0]["exclude"] = json!({"any": [
            {"resources": {"kinds": ["Pod"], "names": ["debug-?"]}},
            {"resources": {"kinds": ["Pod"], "selector": {"matchLabels": {"skip": "true"}}}}
        ]});
    });
    let policy = loaded(&outcome);
    let rule = &policy.rules[0];
    let none = BTreeMap::new();
    let prod = labels(&[("env", "prod")]);
    let skip = labels(&[("skip", "true")]);
    let create = Operation::Create;
    let table: Vec<MatchCase<'_>> = vec![
        ("Pod", Some("team-a"), "web", &none, &none, create, true),
        (
            "Pod",
            Some("team-a"),
            "web",
            &none,
            &none,
            Operation::Delete,
            false,
        ),
        ("Pod", Some("other"), "web", &none, &none, create, false),
        (
            "Pod",
            Some("other"),
            "web",
            &none,
            &prod,
            Operation::Delete,
            true,
        ),
        (
            "Pod",
            Some("team-a"),
            "debug-1",
            &none,
            &none,
            create,
            false,
        ),
        (
            "Pod",
            Some("team-a"),
            "debug-12",
            &none,
            &none,
            create,
            true,
        ),
        ("Pod", Some("team-a"), "web", &skip, &none, create, false),
        (
            "Deployment",
            Some("team-a"),
            "web",
            &none,
            &none,
            create,
            false,
        ),
    ];
    for (kind, namespace, name, l, nl, op, expected) in table {
        assert_eq!(
            rule.matches(kind, namespace, name, l, nl, op),
            expected,
            "{kind} {namespace:?} {name} {l:?} {nl:?} {op:?}"
        );
    }
    // `all` needs every filter; the legacy inline form works too.
    let outcome = with(|v| {
        v["spec"]["rules"][0]["match"] = json!({"all": [
            {"resources": {"kinds": ["Pod"]}},
            {"resources": {"kinds": ["Pod"], "namespaces": ["a"]}}
        ]});
    });
    let rule = &loaded(&outcome).rules[0];
    assert!(rule.matches("Pod", Some("a"), "x", &none, &none, create));
    assert!(!rule.matches("Pod", Some("b"), "x", &none, &none, create));
    let outcome = with(|v| {
        v["spec"]["rules"][0]["match"] = json!({"resources": {"kinds": ["Pod"], "name": "web-*"}});
    });
    let rule = &loaded(&outcome).rules[0];
    assert!(rule.matches("Pod", None, "web-1", &none, &none, create));
    assert!(!rule.matches("Pod", None, "api", &none, &none, create));
    // Annotations need the full resource.
    let outcome = with(|v| {
        v["spec"]["rules"][0]["match"]["any"][0]["resources"]["annotations"] =
            json!({"team": "a*"});
    });
    let rule = &loaded(&outcome).rules[0];
    let annotations = labels(&[("team", "alpha")]);
    let meta = ResourceMeta {
        kind: "Pod",
        namespace: Some("x"),
        name: "n",
        labels: &none,
        annotations: &annotations,
        namespace_labels: Some(&none),
        operation: create,
    };
    assert!(rule.matches_resource(&meta));
    assert!(!rule.matches("Pod", Some("x"), "n", &none, &none, create));
}

#[test]
fn user_info_filters_match_but_never_exclude() {
    let outcome = with(|v| {
        v["spec"]["rules"][0]["exclude"] =
            json!({"any": [{"resources": {"kinds": ["Pod"]}, "clusterRoles": ["admin"]}]});
    });
    let rule = &loaded(&outcome).rules[0];
    let none = BTreeMap::new();
    assert!(rule.matches("Pod", Some("a"), "x", &none, &none, Operation::Create));
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::UserInfoNotEvaluated)
    );
}

// ---------------------------------------------------------------------------------------------
// Autogen (§4).

fn autogen_names(policy: &Policy) -> Vec<&str> {
    policy
        .autogen_rules
        .iter()
        .map(|r| r.name.as_str())
        .collect()
}

#[test]
fn autogen_rules_and_their_kinds() {
    let outcome = with(|v| {
        v["spec"]["rules"][0]["context"] =
            json!([{"name": "x", "variable": {"jmesPath": "request.object.spec.containers"}}]);
        v["spec"]["rules"][0]["preconditions"] = json!({"all": [{"key": "{{ request.object.metadata.name }}", "operator": "Equals", "value": "a"}]});
    });
    let policy = loaded(&outcome);
    assert_eq!(autogen_names(policy), ["autogen-r", "autogen-cronjob-r"]);
    assert_eq!(policy.autogen_controllers.len(), 7);
    let controllers = &policy.autogen_rules[0];
    assert_eq!(controllers.origin, RuleOrigin::Autogen { rule: "r".into() });
    assert_eq!(
        controllers.match_resources.any[0]
            .resources
            .as_ref()
            .unwrap()
            .kinds,
        [
            "apps/v1/DaemonSet",
            "apps/v1/Deployment",
            "batch/v1/Job",
            "apps/v1/ReplicaSet",
            "v1/ReplicationController",
            "apps/v1/StatefulSet"
        ]
    );
    assert_eq!(
        controllers.context[0]["variable"]["jmesPath"],
        "request.object.spec.template.spec.containers"
    );
    assert_eq!(
        controllers.preconditions.as_ref().unwrap()["all"][0]["key"],
        "{{ request.object.spec.template.metadata.name }}"
    );
    let cron = &policy.autogen_rules[1];
    assert_eq!(cron.origin, RuleOrigin::AutogenCronJob { rule: "r".into() });
    assert_eq!(
        cron.match_resources.any[0]
            .resources
            .as_ref()
            .unwrap()
            .kinds,
        ["batch/v1/CronJob"]
    );
    assert_eq!(
        cron.context[0]["variable"]["jmesPath"],
        "request.object.spec.jobTemplate.spec.template.spec.containers"
    );
    assert_eq!(cron.written_name(), "r");
    // Where images live.
    let none = BTreeMap::new();
    assert_eq!(
        policy.rules[0].image_source("Pod"),
        ImageSource::PodSpec("/spec")
    );
    assert_eq!(
        controllers.image_source("Deployment"),
        ImageSource::PodSpec("/spec/template/spec")
    );
    assert_eq!(
        cron.image_source("CronJob"),
        ImageSource::PodSpec("/spec/jobTemplate/spec/template/spec")
    );
    assert_eq!(cron.image_source("ConfigMap"), ImageSource::None);
    assert!(cron.matches("CronJob", Some("a"), "c", &none, &none, Operation::Create));
    assert!(!cron.matches(
        "Deployment",
        Some("a"),
        "c",
        &none,
        &none,
        Operation::Create
    ));
    assert!(controllers.matches(
        "StatefulSet",
        Some("a"),
        "s",
        &none,
        &none,
        Operation::Create
    ));
    let all: Vec<_> = policy.all_rules().map(|r| r.name.as_str()).collect();
    assert_eq!(all, ["r", "autogen-r", "autogen-cronjob-r"]);
}

#[test]
fn autogen_annotation_values() {
    let annotation = "pod-policies.kyverno.io/autogen-controllers";
    let cases: [(&str, Vec<&str>, Vec<&str>); 4] = [
        ("none", vec![], vec![]),
        (
            "Deployment,Job",
            vec!["autogen-r"],
            vec!["apps/v1/Deployment", "batch/v1/Job"],
        ),
        (
            "CronJob",
            vec!["autogen-cronjob-r"],
            vec!["batch/v1/CronJob"],
        ),
        (
            "Deployment,CronJob,Bogus",
            vec!["autogen-r", "autogen-cronjob-r"],
            vec!["apps/v1/Deployment"],
        ),
    ];
    for (value, names, first_kinds) in cases {
        let outcome = with(|v| v["metadata"]["annotations"] = json!({annotation: value}));
        let policy = loaded(&outcome);
        assert_eq!(autogen_names(policy), names, "{value}");
        if let Some(rule) = policy.autogen_rules.first() {
            assert_eq!(
                rule.match_resources.any[0]
                    .resources
                    .as_ref()
                    .unwrap()
                    .kinds,
                first_kinds,
                "{value}"
            );
        }
    }
    let outcome = with(|v| v["metadata"]["annotations"] = json!({annotation: "Deployment,Bogus"}));
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::UnknownAutogenController("Bogus".into()))
    );
}

#[test]
fn autogen_is_off_when_kyverno_cannot_autogen() {
    let cases: Vec<Mutation> = vec![
        Box::new(|v| v["spec"]["rules"][0]["match"]["any"][0]["resources"]["names"] = json!(["a"])),
        Box::new(|v| {
            v["spec"]["rules"][0]["match"]["any"][0]["resources"]["selector"] =
                json!({"matchLabels": {"a": "b"}})
        }),
        Box::new(|v| {
            v["spec"]["rules"][0]["match"]["any"][0]["resources"]["kinds"] =
                json!(["Pod", "Deployment"])
        }),
        Box::new(|v| {
            v["spec"]["rules"][0]["match"]["any"][0]["resources"]["kinds"] = json!(["Deployment"])
        }),
        Box::new(|v| {
            v["spec"]["rules"][0]["exclude"] =
                json!({"any": [{"resources": {"kinds": ["Deployment"]}}]})
        }),
        Box::new(|v| {
            v["spec"]["rules"].as_array_mut().unwrap().push(json!({
                "name": "g", "match": {"any": [{"resources": {"kinds": ["Namespace"]}}]}, "generate": {"kind": "ConfigMap"}
            }))
        }),
    ];
    for (i, mutation) in cases.into_iter().enumerate() {
        let mut value = base_policy();
        mutation(&mut value);
        let outcome = load_value(&value);
        let policy = loaded(&outcome);
        assert!(
            policy.autogen_rules.is_empty(),
            "case {i}: {:?}",
            autogen_names(policy)
        );
        assert!(policy.autogen_controllers.is_empty(), "case {i}");
    }
    // An exclude that names Pod too keeps autogen, with exclude kinds rewritten.
    let outcome = with(|v| {
        v["spec"]["rules"][0]["exclude"] =
            json!({"any": [{"resources": {"kinds": ["Pod"], "namespaces": ["kube-system"]}}]})
    });
    let policy = loaded(&outcome);
    assert_eq!(autogen_names(policy), ["autogen-r", "autogen-cronjob-r"]);
    let exclude = policy.autogen_rules[1].exclude.as_ref().unwrap();
    assert_eq!(
        exclude.any[0].resources.as_ref().unwrap().kinds,
        ["batch/v1/CronJob"]
    );
    let none = BTreeMap::new();
    assert!(!policy.autogen_rules[1].matches(
        "CronJob",
        Some("kube-system"),
        "c",
        &none,
        &none,
        Operation::Create
    ));
}

#[test]
fn autogen_names_are_cut_to_63_characters() {
    let long = "a".repeat(60);
    let outcome = with(|v| v["spec"]["rules"][0]["name"] = json!(long));
    let policy = loaded(&outcome);
    assert!(policy.autogen_rules.iter().all(|r| r.name.len() == 63));
    assert!(
        policy.autogen_rules[1]
            .name
            .starts_with("autogen-cronjob-aaa")
    );
}

// ---------------------------------------------------------------------------------------------
// YAML through the loader.

#[test]
fn json_and_anchors_load() {
    let text = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: a\n    match: &m {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - &entry\n      imageReferences: [\"ghcr.io/*\"]\n      attestors: [{{entries: [{{keys: {{publicKeys: {key}}}}}]}}]\n  - name: b\n    match: *m\n    verifyImages: [*entry]\n",
        key = serde_json::to_string(K1).unwrap()
    );
    let outcome = load("anchors.yaml", &text);
    let policy = loaded(&outcome);
    assert_eq!(policy.rules.len(), 2);
    assert_eq!(
        policy.rules[1].verify_images[0].image_references,
        ["ghcr.io/*"]
    );
}

// ---------------------------------------------------------------------------------------------
// The loader never panics.

fn seeds() -> [&'static str; 8] {
    [
        SEED_QUICK_START,
        SEED_SCENARIO_1,
        SEED_SCENARIO_2,
        SEED_SCENARIO_3,
        FIXED_QUICK_START,
        FIXED_SCENARIO_1,
        FIXED_SCENARIO_2,
        FIXED_SCENARIO_3,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_panics_on_random_text(text in "\\PC{0,400}") {
        let _ = load("random.yaml", &text);
    }

    #[test]
    fn never_panics_on_yaml_like_text(text in "[a-z:\\- \\n\\[\\]{}&*!|>'\"#0-9.]{0,300}") {
        let _ = load("random.yaml", &text);
    }

    #[test]
    fn never_panics_on_mutated_seeds(
        seed in 0usize..8,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4, "[ -~\\n]{0,6}"), 1..6),
    ) {
        let mut text: Vec<char> = seeds()[seed].chars().collect();
        for (index, op, insert) in edits {
            if text.is_empty() {
                break;
            }
            let at = index.index(text.len());
            match op {
                0 => { text.remove(at); }
                1 => { for (i, c) in insert.chars().enumerate() { text.insert(at + i, c); } }
                2 => { text.truncate(at); }
                _ => { let end = (at + insert.len()).min(text.len()); text.splice(at..end, insert.chars()); }
            }
        }
        let text: String = text.into_iter().collect();
        let outcome = load("mutated.yaml", &text);
        for error in &outcome.errors {
            prop_assert!(error.location.line >= 1);
            let _ = error.to_string();
        }
    }
}

#[test]
fn a_ctlog_block_that_does_not_ignore_scts_is_said_to_be_unchecked() {
    let outcome = with(|v| {
        entry(v)["attestors"][0]["entries"][0]["keys"]["ctlog"] = json!({"ignoreSCT": false});
    });
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let warned: Vec<String> = outcome.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warned.iter().any(|w| w.contains(
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.ctlog: ctlog is not used by sealgate: certificate transparency (SCT) proofs are not checked yet"
        )),
        "{warned:#?}"
    );
    let quiet = with(|v| {
        entry(v)["attestors"][0]["entries"][0]["keys"]["ctlog"] = json!({"ignoreSCT": true});
    });
    assert!(
        !quiet
            .warnings
            .iter()
            .any(|w| w.to_string().contains("ctlog")),
        "{:?}",
        quiet.warnings
    );
}

#[test]
fn keyless_attestors_are_checked_and_their_lint_says_what_will_fail() {
    let keyless = |block: Value| {
        with(move |v| {
            entry(v)["attestors"][0]["entries"][0] = json!({"keyless": block.clone()});
        })
    };
    let rendered = |outcome: &LoadOutcome| -> Vec<String> {
        outcome
            .warnings
            .iter()
            .map(|w| format!("{} {}", w.location.path, w.kind))
            .collect()
    };
    // An identity and a ctlog block that checks SCTs: nothing to warn about any more.
    let checked = keyless(json!({
        "subject": "https://github.com/org/*",
        "issuer": "https://token.actions.githubusercontent.com",
        "additionalExtensions": {"githubWorkflowRepository": "org/*", "1.3.6.1.4.1.57264.1.2": "push"},
        "rekor": {"url": "https://rekor.sigstore.dev"},
        "ctlog": {"ignoreSCT": false}
    }));
    assert!(checked.errors.is_empty(), "{:?}", checked.errors);
    assert!(rendered(&checked).is_empty(), "{:#?}", rendered(&checked));
    let entries = &checked.policies[0].rules[0].verify_images[0].attestors[0].entries;
    assert!(entries[0].unsupported().is_none());
    // What would fail every image, each at its field.
    let broken = keyless(json!({
        "subjectRegExp": "(unclosed",
        "issuerRegExp": "^https://",
        "additionalExtensions": {"buildSignerURI": "x"},
        "rekor": {"url": "https://rekor.sigstore.dev"}
    }));
    assert!(broken.errors.is_empty(), "{:?}", broken.errors);
    let warned = rendered(&broken);
    assert_eq!(warned.len(), 2, "{warned:#?}");
    assert!(
        warned[0].starts_with("spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.subjectRegExp subjectRegExp is not a valid regular expression ("),
        "{}",
        warned[0]
    );
    assert_eq!(
        warned[1],
        "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless.additionalExtensions.buildSignerURI 'buildSignerURI' is not a certificate extension Kyverno knows (oidcIssuer, githubWorkflowTrigger, githubWorkflowSha, githubWorkflowName, githubWorkflowRepository, githubWorkflowRef, or their OIDs 1.3.6.1.4.1.57264.1.1 to .1.6): every image this attestor checks fails, as Kyverno fails it ('invalid certificate extension')"
    );
    let AttestorKind::Keyless(k) =
        &broken.policies[0].rules[0].verify_images[0].attestors[0].entries[0].kind
    else {
        panic!()
    };
    assert!(matches!(k.subject_regex, Some(Err(_))));
    assert!(matches!(k.issuer_regex, Some(Ok(_))));
    // No identity at all: any Fulcio certificate passes, which the lint says.
    let anyone = keyless(json!({"rekor": {"url": "https://rekor.sigstore.dev"}}));
    assert_eq!(
        rendered(&anyone),
        [
            "spec.rules[0].verifyImages[0].attestors[0].entries[0].keyless this keyless attestor names no subject, issuer or extension: any certificate from the Fulcio roots passes, whoever it was issued to (Kyverno does the same)"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Kinds, versions and pasted PEM (issue 14).

#[test]
fn a_misspelled_kyverno_kind_is_an_error_with_a_suggestion() {
    let text =
        "apiVersion: kyverno.io/v1\nkind: ClusterPolcy\nmetadata:\n  name: p\nspec: {rules: []}\n";
    let outcome = load("k.yaml", text);
    assert!(outcome.skipped.is_empty(), "{:?}", outcome.skipped);
    let rendered = outcome.errors[0].to_string();
    assert!(
        rendered.starts_with("k.yaml:2:1: kind: unknown kind 'ClusterPolcy' for kyverno.io/v1; did you mean 'ClusterPolicy'?"),
        "{rendered}"
    );
}

#[test]
fn other_kyverno_kinds_and_other_groups_are_still_skipped() {
    let text = "apiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {name: e}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
    let outcome = load("s.yaml", text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.skipped.len(), 2);
}

#[test]
fn a_misspelled_kyverno_group_is_an_error() {
    let text =
        "apiVersion: kyvern.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec: {rules: []}\n";
    let outcome = load("g.yaml", text);
    assert!(
        outcome.errors[0].to_string().contains(
            "apiVersion 'kyvern.io/v1' is not a Kyverno group; did you mean 'kyverno.io/v1'?"
        ),
        "{:?}",
        outcome.errors
    );
}

#[test]
fn v2beta1_documents_are_read_as_v1_with_a_warning() {
    let text = FIXED_QUICK_START.replace("kyverno.io/v1", "kyverno.io/v2beta1");
    let outcome = load("b.yaml", &text);
    assert_eq!(outcome.policies.len(), 1, "{:?}", outcome.errors);
    assert!(
        outcome
            .warnings
            .iter()
            .any(|w| w.kind == PolicyWarningKind::ReadAsV1 && w.location.line == 1),
        "{:?}",
        outcome.warnings
    );
}

#[test]
fn a_key_pasted_without_indentation_gets_the_indentation_fix() {
    let text = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n            -----BEGIN PUBLIC KEY-----\n            MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n            -----END PUBLIC KEY-----\n";
    let outcome = load("i.yaml", text);
    let error = &outcome.errors[0];
    let hint = error.hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains("indent every line of the key under `publicKeys: |-` by 2 more spaces"),
        "{error}"
    );
    assert!(hint.contains("(line 14)"), "{hint}");
}

const CONFIGMAP_KEY_POLICY: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: verify\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    context:\n    - name: keys\n      configMap:\n        name: keys\n        namespace: default\n    verifyImages:\n    - imageReferences: [\"ghcr.io/org/*\"]\n      failureAction: Enforce\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: \"{{ keys.data.pub }}\"\n        - certificates:\n            cert: \"{{ keys.data.certificate }}\"\n";

fn configmap_attestors(values: &ContextValues) -> (LoadOutcome, Vec<Attestor>) {
    let outcome = load_with_context(
        "c.yaml",
        CONFIGMAP_KEY_POLICY,
        LoadOptions::default(),
        values,
    );
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    let entries = outcome.policies[0].rules[0].verify_images[0].attestors[0]
        .entries
        .clone();
    (outcome, entries)
}

#[test]
fn a_key_from_a_config_map_loads_without_the_config_map_and_says_where_it_is_read() {
    let (outcome, entries) = configmap_attestors(&ContextValues::new());
    assert!(
        outcome
            .warnings
            .iter()
            .all(|w| !w.to_string().contains("context")),
        "{:?}",
        outcome.warnings
    );
    assert!(outcome.policies[0].rules[0].unsupported.is_none());
    let why = entries[0]
        .unsupported()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        why.starts_with("spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: `{{ keys.data.pub }}` from ConfigMap default/keys: context entry `keys` has no value: ConfigMaps are read only by `sealgate serve --kubernetes`"),
        "{why}"
    );
    assert!(entries[1].unsupported().is_some());
}

#[test]
fn a_key_from_a_config_map_is_compiled_from_its_value() {
    let mut values = ContextValues::new();
    values.insert_config_map(
        "default",
        "keys",
        &BTreeMap::from([("pub".to_string(), K1.to_string())]),
    );
    let (_, entries) = configmap_attestors(&values);
    assert!(
        entries[0].unsupported().is_none(),
        "{:?}",
        entries[0].unsupported()
    );
    assert!(matches!(
        &entries[0].kind,
        AttestorKind::Key(KeyAttestor {
            key: KeySource::Pem(_),
            ..
        })
    ));
    // The certificate entry names the missing ConfigMap key, and the policy still loads.
    let why = entries[1]
        .unsupported()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert_eq!(
        why,
        "spec.rules[0].verifyImages[0].attestors[0].entries[1].certificates.cert: `{{ keys.data.certificate }}` from ConfigMap default/keys: no such value"
    );
}

#[test]
fn a_bad_key_in_a_config_map_is_the_attestors_error_not_the_policys() {
    let mut values = ContextValues::new();
    values.insert_config_map(
        "default",
        "keys",
        &BTreeMap::from([
            ("pub".to_string(), "not a key".to_string()),
            (
                "certificate".to_string(),
                "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----".to_string(),
            ),
        ]),
    );
    let (_, entries) = configmap_attestors(&values);
    let why = entries[0]
        .unsupported()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        why.starts_with("spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: `{{ keys.data.pub }}` from ConfigMap default/keys: "),
        "{why}"
    );
    let why = entries[1]
        .unsupported()
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(
        why.contains("`{{ keys.data.certificate }}` from ConfigMap default/keys: "),
        "{why}"
    );
}

#[test]
fn variables_in_context_entries_and_unknown_context_kinds() {
    let text = CONFIGMAP_KEY_POLICY
        .replace("      configMap:\n        name: keys\n        namespace: default\n", "      variable:\n        value: {data: {pub: \"{{ k1 }}\"}}\n")
        .replace("    context:\n", "    context:\n    - name: k1\n      variable:\n        jmesPath: missing\n        default: x\n");
    let outcome = load("v.yaml", &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(outcome.policies[0].rules[0].unsupported.is_none());
    let entries = &outcome.policies[0].rules[0].verify_images[0].attestors[0].entries;
    // `x` is no key: an error result, located.
    assert!(entries[0].unsupported().is_some());
    let api_call = CONFIGMAP_KEY_POLICY.replace(
        "      configMap:\n        name: keys\n        namespace: default\n",
        "      apiCall:\n        urlPath: /api/v1/namespaces\n",
    );
    let outcome = load("a.yaml", &api_call);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(
        outcome.policies[0].rules[0].unsupported,
        Some(Unsupported::ContextEntry {
            name: "keys".into(),
            what: "an apiCall, which sealgate does not make (a call to the Kubernetes API or a service on every review, unbounded on the admission path)",
        })
    );
}

#[test]
fn kyverno_s_variable_checks_at_admission_are_load_errors() {
    // A user variable with background processing on (the default): refused, as by Kyverno.
    let user = CONFIGMAP_KEY_POLICY.replace(
        "namespace: default",
        "namespace: \"{{ request.userInfo.username }}\"",
    );
    let outcome = load("u.yaml", &user);
    assert!(outcome.policies.is_empty());
    let e = &outcome.errors[0];
    assert_eq!(
        e.location.path.to_string(),
        "spec.rules[0].context[0].configMap.namespace"
    );
    assert!(
        e.to_string()
            .contains("only select variables are allowed in background mode: `{{ request.userInfo.username }}` reads request.userInfo"),
        "{e}"
    );
    assert!(e.to_string().contains("spec.background: false"), "{e}");
    // With background: false it loads; serviceAccountName too.
    let off = user.replace("spec:\n", "spec:\n  background: false\n");
    assert!(load("u.yaml", &off).errors.is_empty());
    let sa = CONFIGMAP_KEY_POLICY.replace(
        "name: keys\n        namespace",
        "name: \"{{serviceAccountName}}\"\n        namespace",
    );
    assert!(!load("s.yaml", &sa).errors.is_empty());
    // `x.serviceAccountName` (after a dot) is another member, not the variable.
    let member = CONFIGMAP_KEY_POLICY.replace(
        "namespace: default",
        "namespace: \"{{ request.object.spec.serviceAccountName }}\"",
    );
    assert!(
        load("m.yaml", &member).errors.is_empty(),
        "{:?}",
        load("m.yaml", &member).errors
    );

    // A variable that is not JMESPath: refused, naming the rule.
    let bad = CONFIGMAP_KEY_POLICY.replace("{{ keys.data.pub }}", "{{ keys.data.[ }}");
    let outcome = load("b.yaml", &bad);
    assert!(outcome.policies.is_empty());
    let e = &outcome.errors[0];
    assert_eq!(
        e.location.path.to_string(),
        "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys"
    );
    assert!(
        e.to_string()
            .contains("variable substitution failed for rule verify: `{{ keys.data.[ }}` is not a JMESPath expression"),
        "{e}"
    );
    // An unclosed `{{` is text to Kyverno: it loads (and the attestor says what is wrong).
    let unclosed = CONFIGMAP_KEY_POLICY.replace("{{ keys.data.pub }}", "{{ keys.data.pub");
    assert!(load("o.yaml", &unclosed).errors.is_empty());
}
