//! The pure decision, warm: a Pod of 10 containers against N ClusterPolicies, with every tag
//! digest and every attestor outcome answered from memory (as the webhook's caches answer
//! them), so what is measured is one [`Evaluation`] from start to decision: rule matching,
//! image extraction and normalisation, wildcard matching, the wants and their answers,
//! count/AND logic, failure actions, messages and the JSON patch. The outcomes are real: one
//! cold evaluation first checks real signatures and keeps what verified.
//!
//! Group `decide_pod_10_containers`: each policy checks `registry<i>.company.com/*` with one
//! key; the Pod's containers use registries 0–9, so with N ≥ 10 every container is checked by
//! one policy and the other N − 10 policies are evaluated and do not match.
//!
//! Group `decide_pod_10_containers_every_policy_matches`: each policy checks `*`, so every
//! container is checked by every policy: N rule results over 10 × N attestor outcomes.
//!
//! Group `key_source_10_policies`: the first group's 10 policies with their key taken four
//! ways: `written` (the PEM in the policy), `configmap` (`{{ keys.data.pub }}` from a
//! ConfigMap the loader was given, as `serve --kubernetes` gives it: resolved when the policy is
//! compiled), `configmap_per_namespace` (the same ConfigMap looked up in the request's
//! namespace, `namespace: "{{ request.namespace }}"`: the entry compiled per request, its
//! resolved text found in the scope's cache) and `written_with_preconditions` (the written key
//! and a precondition on `{{ request.object.metadata.namespace }}`, evaluated per request).
//!
//! `cargo bench -p sealgate-core --bench decide`

// A benchmark: setup failures should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine as _;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use sealgate_core::Digest;
use sealgate_core::cosign::{
    Descriptor, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, SignatureSet,
    payload,
};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::engine::{
    AttestorOutcome, Decision, Evaluation, Mode, OutcomeKey, Resource, VerifyContext, Want,
};
use sealgate_core::policy::{
    ContextValues, LoadOptions, Operation, Policy, load, load_with_context,
};
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::unix_time;
use serde_json::json;

/// `n` ClusterPolicies; policy `i` checks the images that `pattern(i)` matches.
fn policies(n: usize, key_pem: &str, pattern: impl Fn(usize) -> String) -> Vec<Policy> {
    let key = key_pem.trim_end().replace('\n', "\n                ");
    let mut text = String::new();
    for i in 0..n {
        let pattern = pattern(i);
        text.push_str(&format!(
            "---\napiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: policy-{i}\nspec:\n  validationFailureAction: Enforce\n  rules:\n    - name: check-{i}\n      match:\n        any:\n        - resources:\n            kinds: [Pod]\n      verifyImages:\n      - imageReferences: [\"{pattern}\"]\n        attestors:\n        - count: 1\n          entries:\n          - keys:\n              publicKeys: |-\n                {key}\n"
        ));
    }
    let outcome = load("bench.yaml", &text);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.policies.len(), n);
    outcome.policies
}

/// Ten ClusterPolicies as [`policies`] makes them with the pattern `registry<i>.company.com/*`,
/// each rule's text after `match` being `rule_tail` (its context, preconditions and
/// verifyImages), loaded with `values`.
fn policies_with(rule_tail: &str, values: &ContextValues) -> Vec<Policy> {
    let mut text = String::new();
    for i in 0..10 {
        text.push_str(&format!(
            "---\napiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: policy-{i}\nspec:\n  validationFailureAction: Enforce\n  background: false\n  rules:\n    - name: check-{i}\n      match:\n        any:\n        - resources:\n            kinds: [Pod]\n{}",
            rule_tail.replace("PATTERN", &format!("registry{i}.company.com/*"))
        ));
    }
    let outcome = load_with_context("bench.yaml", &text, LoadOptions::default(), values);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.policies.len(), 10);
    outcome.policies
}

/// The `verifyImages` of [`policies_with`]'s rules, with `public_keys` as the key.
fn verify_images(public_keys: &str) -> String {
    format!(
        "      verifyImages:\n      - imageReferences: [\"PATTERN\"]\n        attestors:\n        - count: 1\n          entries:\n          - keys:\n              publicKeys: {public_keys}\n"
    )
}

fn pod() -> Resource {
    let containers: Vec<_> = (0..10)
        .map(|j| json!({"name": format!("c{j}"), "image": format!("registry{j}.company.com/team/app-{j}:v1.{j}")}))
        .collect();
    Resource::from_object(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench", "namespace": "default"}, "spec": {"containers": containers}}),
        Operation::Create,
        None,
        BTreeMap::new(),
    )
    .unwrap()
}

fn digest_of(image: &str) -> Digest {
    Digest::sha256_of(image.as_bytes())
}

/// Carries out one evaluation from memory: tags resolve to `digest_of`, outcomes come from
/// `cache`, signature sets are signed by `key` (a warm evaluation passes none: it must not ask).
fn evaluate(
    policies: &[Policy],
    resource: &Resource,
    key: Option<&SigningKey>,
    cache: &HashMap<OutcomeKey, AttestorOutcome>,
) -> (Decision, Vec<(OutcomeKey, AttestorOutcome)>) {
    let mut evaluation = Evaluation::new(policies, resource, Mode::Mutate);
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Digest(image) => {
                    let digest = digest_of(image.normalized());
                    evaluation.digest_resolved(&image, Ok(digest));
                }
                Want::CachedOutcome(k) => {
                    let cached = cache.get(&k).cloned();
                    evaluation.outcome_cached(k, cached);
                }
                Want::ImageData { .. } => unreachable!("the benchmark policies read no image data"),
                Want::Signatures { request, .. } => {
                    let key = key.expect("a warm evaluation asked for signatures");
                    let payload = payload::build(
                        &request.repository_name(),
                        &request.digest,
                        &BTreeMap::new(),
                    );
                    let signature = key.sign(&SystemRandom::new(), &payload).unwrap();
                    let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
                    descriptor.annotations = Some(BTreeMap::from([(
                        SIGNATURE_ANNOTATION.to_string(),
                        base64::engine::general_purpose::STANDARD.encode(signature),
                    )]));
                    let set = SignatureSet {
                        location: "bench".into(),
                        image_digest: request.digest.clone(),
                        layers: vec![SignatureLayer {
                            descriptor,
                            payload,
                        }],
                    };
                    evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                }
            }
        }
    }
    let finished = evaluation.finish(VerifyContext {
        trust: TrustedRoot::public_good(),
        now: unix_time(1_795_000_000),
    });
    (finished.decision, finished.verified)
}

/// A benchmark group: its name, the pattern of policy `i`, the rule results for `n` policies.
type Group = (&'static str, fn(usize) -> String, fn(usize) -> usize);

fn bench(c: &mut Criterion) {
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let pem = key.public_key().to_pem();
    let resource = pod();
    let groups: [Group; 2] = [
        (
            "decide_pod_10_containers",
            |i| format!("registry{i}.company.com/*"),
            |n| n.min(10),
        ),
        (
            "decide_pod_10_containers_every_policy_matches",
            |_| "*".to_string(),
            |n| n,
        ),
    ];
    for (name, pattern, results) in groups {
        let mut group = c.benchmark_group(name);
        for n in [1usize, 10, 100, 1000] {
            let policies = policies(n, &pem, pattern);
            // Cold once: real signatures checked, what verified kept as the cache.
            let (cold, verified) = evaluate(&policies, &resource, Some(&key), &HashMap::new());
            assert!(cold.allowed, "{}", cold.message);
            let cache: HashMap<_, _> = verified.into_iter().collect();
            let (warm, _) = evaluate(&policies, &resource, None, &cache);
            assert_eq!(warm, cold);
            assert_eq!(warm.results.len(), results(n));
            group.bench_with_input(BenchmarkId::new("policies", n), &n, |b, _| {
                b.iter(|| evaluate(&policies, &resource, None, &cache))
            });
        }
        group.finish();
    }
}

fn bench_key_sources(c: &mut Criterion) {
    let key = SigningKey::generate(&SystemRandom::new()).unwrap();
    let pem = key.public_key().to_pem();
    let written = format!(
        "|-\n                {}",
        pem.trim_end().replace('\n', "\n                ")
    );
    let resource = pod();
    let mut values = ContextValues::reading_config_maps();
    values.insert_config_map(
        "default",
        "keys",
        &BTreeMap::from([("pub".to_string(), pem.clone())]),
    );
    let context = |namespace: &str| {
        format!(
            "      context:\n      - name: keys\n        configMap:\n          name: keys\n          namespace: \"{namespace}\"\n"
        )
    };
    let from_config_map = verify_images("\"{{ keys.data.pub }}\"");
    let cases = [
        ("written", verify_images(&written)),
        (
            "configmap",
            format!("{}{from_config_map}", context("default")),
        ),
        (
            "configmap_per_namespace",
            format!("{}{from_config_map}", context("{{ request.namespace }}")),
        ),
        (
            "written_with_preconditions",
            format!(
                "      preconditions:\n        all:\n        - key: \"{{{{ request.object.metadata.namespace }}}}\"\n          operator: Equals\n          value: default\n{}",
                verify_images(&written)
            ),
        ),
    ];
    let mut group = c.benchmark_group("key_source_10_policies");
    for (name, tail) in cases {
        let policies = policies_with(&tail, &values);
        let (cold, verified) = evaluate(&policies, &resource, Some(&key), &HashMap::new());
        assert!(cold.allowed, "{name}: {}", cold.message);
        assert_eq!(cold.results.len(), 10, "{name}");
        let cache: HashMap<_, _> = verified.into_iter().collect();
        let (warm, _) = evaluate(&policies, &resource, None, &cache);
        assert_eq!(warm, cold, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| evaluate(&policies, &resource, None, &cache))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_key_sources);
criterion_main!(benches);
