//! Rules whose attestors read the request: compiled again for each resource.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::tests::{FakeRegistry, assert_denied, key, pod, run};
use crate::policy::{ContextValues, LoadOptions, Policy, Values, load_with_context};

fn load(yaml: &str, values: &ContextValues) -> Vec<Policy> {
    let outcome = load_with_context("test.yaml", yaml, LoadOptions::default(), values);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    outcome.policies
}

/// Each namespace keeps its team's key in ConfigMap `keys`; the policy reads the one of the
/// namespace under review.
const PER_NAMESPACE: &str = r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: team-keys
spec:
  validationFailureAction: Enforce
  rules:
    - name: team-key
      match:
        any:
        - resources:
            kinds: [Pod]
      context:
      - name: keys
        configMap:
          name: keys
          namespace: "{{ request.namespace }}"
      verifyImages:
      - imageReferences: ["registry.company.com/*"]
        attestors:
        - entries:
          - keys:
              publicKeys: "{{ keys.data.pub }}"
"#;

fn config_map_values(entries: &[(&str, String)]) -> ContextValues {
    let mut values = ContextValues::reading_config_maps();
    for (namespace, pem) in entries {
        values.insert_config_map(
            namespace,
            "keys",
            &BTreeMap::from([("pub".to_string(), pem.clone())]),
        );
    }
    values
}

fn plain_pem(k: &crate::crypto::key::SigningKey) -> String {
    k.public_key().to_pem()
}

#[test]
fn a_key_looked_up_by_the_request_namespace_is_the_namespace_s_own() {
    let (a, b) = (key(), key());
    let values = config_map_values(&[("team-a", plain_pem(&a)), ("team-b", plain_pem(&b))]);
    let policies = load(PER_NAMESPACE, &values);
    assert!(policies[0].reads_request());
    let image = "registry.company.com/app:v1";
    let registry = FakeRegistry::default().sign(image, &a);
    let d = run(&policies, &pod("team-a", &[image]), &registry);
    assert!(d.allowed, "{}", d.message);
    // Signed by team a's key, run in team b: team b's key does not verify it.
    let d = run(&policies, &pod("team-b", &[image]), &registry);
    assert_denied(&d, "registry.company.com/app:v1");
    // A namespace without the ConfigMap: the image's error result names it.
    let d = run(&policies, &pod("team-c", &[image]), &registry);
    assert_denied(&d, "ConfigMap team-c/keys");
    // Each namespace's key was compiled once; the error is not kept.
    let scope = policies[0].rules[0].request_scope.as_ref().unwrap();
    assert_eq!(scope.compiled_entries(), 2);
    let d = run(&policies, &pod("team-a", &[image]), &registry);
    assert!(d.allowed, "{}", d.message);
    assert_eq!(scope.compiled_entries(), 2);
}

#[test]
fn values_given_per_resource_resolve_the_attestor_for_that_resource_only() {
    let (a, b) = (key(), key());
    let policy = PER_NAMESPACE.replace(
        "namespace: \"{{ request.namespace }}\"",
        "namespace: default",
    );
    let mut given = Values::new();
    given.set_for_resource("team-keys", "test", "keys.data.pub", json!(plain_pem(&a)));
    let values = ContextValues::new().with_values(given);
    let policies = load(&policy, &values);
    let image = "registry.company.com/app:v1";
    let d = run(
        &policies,
        &pod("default", &[image]),
        &FakeRegistry::default().sign(image, &a),
    );
    assert!(d.allowed, "{}", d.message);
    let d = run(
        &policies,
        &pod("default", &[image]),
        &FakeRegistry::default().sign(image, &b),
    );
    assert_denied(&d, "registry.company.com/app:v1");
}

#[test]
fn a_pod_controller_s_rule_reads_its_template_as_kyverno_s_autogen_shifts_it() {
    let (a, b) = (key(), key());
    let policy = PER_NAMESPACE.replace(
        "name: keys\n          namespace: \"{{ request.namespace }}\"",
        "name: \"{{ request.object.metadata.labels.team }}-keys\"\n          namespace: default",
    );
    assert!(policy.contains("labels.team"));
    let mut values = ContextValues::reading_config_maps();
    for (team, k) in [("a", &a), ("b", &b)] {
        values.insert_config_map(
            "default",
            &format!("{team}-keys"),
            &BTreeMap::from([("pub".to_string(), plain_pem(k))]),
        );
    }
    let policies = load(&policy, &values);
    let image = "registry.company.com/app:v1";
    let registry = FakeRegistry::default().sign(image, &a);
    let deployment = |team: &str| {
        crate::engine::Resource::from_object(
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "default"},
                "spec": {"template": {
                    "metadata": {"labels": {"team": team}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                }},
            }),
            crate::policy::Operation::Create,
            None,
            BTreeMap::new(),
        )
        .unwrap()
    };
    let d = run(&policies, &deployment("a"), &registry);
    assert!(d.allowed, "{}", d.message);
    assert_eq!(d.results[0].rule, "autogen-team-key");
    let d = run(&policies, &deployment("b"), &registry);
    assert_denied(&d, image);
}

#[test]
fn an_image_registry_entry_reads_the_image_s_config_to_choose_the_key() {
    let (a, b) = (key(), key());
    let policy = PER_NAMESPACE
        .replace(
            "namespace: \"{{ request.namespace }}\"",
            "namespace: default\n      - name: imageData\n        imageRegistry:\n          reference: \"{{ images.containers.c0.reference }}\"",
        )
        .replace(
            "publicKeys: \"{{ keys.data.pub }}\"",
            "publicKeys: '{{ keys.data.\"{{ imageData.configData.config.Labels.team }}\" }}'",
        );
    let mut values = ContextValues::reading_config_maps();
    values.insert_config_map(
        "default",
        "keys",
        &BTreeMap::from([
            ("a".to_string(), plain_pem(&a)),
            ("b".to_string(), plain_pem(&b)),
        ]),
    );
    let outcome = load_with_context("test.yaml", &policy, LoadOptions::default(), &values);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    assert!(
        outcome
            .warnings
            .iter()
            .all(|w| !w.to_string().contains("imageRegistry")),
        "{:?}",
        outcome.warnings
    );
    let policies = outcome.policies;
    let image = "registry.company.com/app:v1";
    let registry = FakeRegistry::default().sign(image, &a);
    let data = |team: &str| {
        HashMap::from([(
            "registry.company.com/app:v1".to_string(),
            json!({"configData": {"config": {"Labels": {"team": team}}}}),
        )])
    };
    let resource = pod("default", &[image]);
    let d = registry.decide_with_image_data(&policies, &resource, &data("a"));
    assert!(d.allowed, "{}", d.message);
    let d = registry.decide_with_image_data(&policies, &resource, &data("b"));
    assert_denied(&d, image);
    // No data for the image: the attestor's error says where the value was to come from.
    let d = registry.decide_with_image_data(&policies, &resource, &HashMap::new());
    assert_denied(
        &d,
        "from the registry's data for registry.company.com/app:v1",
    );
}

/// The Quick Start rule with `preconditions` (and a key written in the policy).
fn with_preconditions(k: &crate::crypto::key::SigningKey, preconditions: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: opt-in
spec:
  validationFailureAction: Enforce
  rules:
    - name: signed-when-asked
      match:
        any:
        - resources:
            kinds: [Pod]
      preconditions:
{preconditions}
      verifyImages:
      - imageReferences: ["registry.company.com/*"]
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                {}
"#,
        super::tests::pem(k)
    )
}

fn labelled_pod(labels: serde_json::Value, image: &str) -> crate::engine::Resource {
    crate::engine::Resource::from_object(
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }),
        crate::policy::Operation::Create,
        None,
        BTreeMap::new(),
    )
    .unwrap()
}

#[test]
fn preconditions_decide_whether_the_rule_applies_and_say_why_it_was_skipped() {
    let k = key();
    let opt_in = with_preconditions(
        &k,
        "        all:\n        - key: \"{{ request.object.metadata.labels.verify || '' }}\"\n          operator: Equals\n          value: \"true\"\n          message: the Pod does not ask for verification\n        - key: \"{{ request.operation }}\"\n          operator: AnyIn\n          value: [CREATE, UPDATE]",
    );
    let policies = load(&opt_in, &ContextValues::new());
    assert!(policies[0].reads_request());
    let image = "registry.company.com/app:v1";
    let unsigned = FakeRegistry::default();
    // Not asked: skipped with Kyverno's message, and admitted unsigned.
    let d = run(&policies, &labelled_pod(json!({}), image), &unsigned);
    assert!(d.allowed, "{}", d.message);
    assert_eq!(d.results[0].status, crate::engine::Status::Skip);
    assert_eq!(
        d.results[0].message,
        "preconditions not met; the Pod does not ask for verification"
    );
    assert!(d.results[0].images.is_empty());
    // Asked: the rule applies; unsigned is denied, signed admitted.
    let asked = labelled_pod(json!({"verify": "true"}), image);
    assert_denied(&run(&policies, &asked, &unsigned), image);
    let signed = FakeRegistry::default().sign(image, &k);
    let d = run(&policies, &asked, &signed);
    assert!(d.allowed, "{}", d.message);
    assert_eq!(d.results[0].status, crate::engine::Status::Pass);
}

#[test]
fn preconditions_that_cannot_be_evaluated_fail_closed_under_enforce() {
    let k = key();
    let broken = with_preconditions(
        &k,
        "        any:\n        - key: \"{{ request.object.metadata.labels.verify }}\"\n          operator: Equals\n          value: \"true\"",
    );
    let policies = load(&broken, &ContextValues::new());
    let image = "registry.company.com/app:v1";
    // No such label: the variable does not resolve, which Kyverno reports as an error.
    let d = run(
        &policies,
        &labelled_pod(json!({}), image),
        &FakeRegistry::default().sign(image, &k),
    );
    assert_denied(&d, "failed to evaluate preconditions");
    assert_eq!(d.results[0].status, crate::engine::Status::Error);
}

#[test]
fn a_controller_s_preconditions_read_its_template_and_bad_operators_are_load_errors() {
    let k = key();
    let opt_in = with_preconditions(
        &k,
        "        all:\n        - key: \"{{ request.object.metadata.labels.verify || '' }}\"\n          operator: Equals\n          value: \"true\"",
    );
    let policies = load(&opt_in, &ContextValues::new());
    let image = "registry.company.com/app:v1";
    let deployment = |labels: serde_json::Value| {
        crate::engine::Resource::from_object(
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "d", "namespace": "default"},
                "spec": {"template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                }},
            }),
            crate::policy::Operation::Create,
            None,
            BTreeMap::new(),
        )
        .unwrap()
    };
    let unsigned = FakeRegistry::default();
    let d = run(&policies, &deployment(json!({"verify": "true"})), &unsigned);
    assert_denied(&d, image);
    assert_eq!(d.results[0].rule, "autogen-signed-when-asked");
    let d = run(&policies, &deployment(json!({})), &unsigned);
    assert!(d.allowed, "{}", d.message);

    let bad = with_preconditions(
        &k,
        "        all:\n        - key: a\n          operator: Equal5\n          value: a",
    );
    let outcome = load_with_context(
        "bad.yaml",
        &bad,
        LoadOptions::default(),
        &ContextValues::new(),
    );
    assert!(outcome.policies.is_empty());
    let e = &outcome.errors[0];
    assert_eq!(
        e.location.path.to_string(),
        "spec.rules[0].preconditions.all[0].operator"
    );
    assert!(e.to_string().contains("unknown operator `Equal5`"), "{e}");
}

#[test]
fn time_functions_in_preconditions_read_the_time_the_caller_gives() {
    let k = key();
    // A maintenance freeze: verification is asked for after 2026-01-01 only.
    let after = with_preconditions(
        &k,
        "        all:\n        - key: \"{{ time_after(time_now_utc(), '2026-01-01T00:00:00Z') }}\"\n          operator: Equals\n          value: true",
    );
    let policies = load(&after, &ContextValues::new());
    let image = "registry.company.com/app:v1";
    let resource = labelled_pod(json!({}), image);
    let unsigned = FakeRegistry::default();
    let at = |secs: u64| {
        let evaluation = crate::engine::Evaluation::new_at(
            &policies,
            &resource,
            crate::engine::Mode::Mutate,
            Some(crate::timestamp::UnixTime::since_unix_epoch(
                std::time::Duration::from_secs(secs),
            )),
        );
        evaluation.plan().rules[0].state.clone()
    };
    // 2025-06-01: skipped; 2026-06-01: the rule applies.
    assert_eq!(
        at(1_748_736_000),
        crate::engine::RuleState::Skipped("preconditions not met".into())
    );
    assert_eq!(at(1_780_272_000), crate::engine::RuleState::Ready);
    // Without a time: the function cannot answer, and the rule is an error (fail closed).
    let d = run(&policies, &resource, &unsigned);
    assert_denied(&d, "time_now_utc");
}

#[test]
fn an_entry_whose_attestation_conditions_read_the_predicate_is_compiled_once_per_key() {
    let a = key();
    let values = config_map_values(&[("team-a", plain_pem(&a))]);
    // The attestor reads the request (the namespace's ConfigMap), the conditions only the
    // predicate: the entry's key leaves the conditions as written, so it is compiled once.
    let policy = PER_NAMESPACE.replace(
        "        attestors:\n        - entries:\n          - keys:\n              publicKeys: \"{{ keys.data.pub }}\"\n",
        "        attestations:\n        - type: https://slsa.dev/provenance/v0.2\n          attestors:\n          - entries:\n            - keys:\n                publicKeys: \"{{ keys.data.pub }}\"\n          conditions:\n          - all:\n            - key: \"{{ builder.id }}\"\n              operator: Equals\n              value: https://ci.company.com\n",
    );
    assert_ne!(policy, PER_NAMESPACE);
    let policies = load(&policy, &values);
    let image = "registry.company.com/app:v1";
    let registry = FakeRegistry::default();
    for _ in 0..3 {
        let d = run(&policies, &pod("team-a", &[image]), &registry);
        assert_denied(&d, "no attestations found");
    }
    let scope = policies[0].rules[0].request_scope.as_ref().unwrap();
    assert_eq!(scope.compiled_entries(), 1);
    // Conditions that read the request too: each request's entry carries its own context, so
    // none is kept.
    let reads_request = policy.replace(
        "value: https://ci.company.com",
        "value: \"https://{{ request.namespace }}.company.com\"",
    );
    let policies = load(&reads_request, &values);
    let d = run(&policies, &pod("team-a", &[image]), &registry);
    assert_denied(&d, "no attestations found");
    let scope = policies[0].rules[0].request_scope.as_ref().unwrap();
    assert_eq!(scope.compiled_entries(), 0);
}
