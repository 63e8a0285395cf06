//! The pure decision: a Pod of 10 containers against N ClusterPolicies, with every fetch and
//! signature check already done (the evidence holds the attestor outcomes), so what is measured
//! is `plan` + `decide`: rule matching, image extraction and normalisation, wildcard matching,
//! count/AND logic, failure actions, messages and the JSON patch.
//!
//! Group `decide_pod_10_containers`: each policy checks `registry<i>.company.com/*` with one
//! key; the Pod's containers use registries 0–9, so with N ≥ 10 every container is checked by
//! one policy and the other N − 10 policies are evaluated and do not match.
//!
//! Group `decide_pod_10_containers_every_policy_matches`: each policy checks `*`, so every
//! container is checked by every policy: N rule results over 10 × N attestor outcomes.
//!
//! `cargo bench -p sealgate-core --bench decide`

// A benchmark: setup failures should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ring::rand::SystemRandom;
use sealgate_core::Digest;
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::engine::{AttestorOutcome, Evidence, Resource, decide, plan};
use sealgate_core::policy::{Operation, Policy, load};
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

/// Evidence in which every tag resolves and every attestor verified.
fn evidence(policies: &[Policy], resource: &Resource) -> Evidence {
    let p = plan(policies, resource);
    let mut ev = Evidence::default();
    for image in p.digest_requests() {
        ev.digests.insert(
            image.normalized().to_string(),
            Ok(Digest::sha256_of(image.normalized().as_bytes())),
        );
    }
    for check in p.attestor_checks(&|r| Some(Digest::sha256_of(r.normalized().as_bytes()))) {
        ev.outcomes.insert(
            check.key,
            AttestorOutcome::Verified {
                signer: "key".into(),
            },
        );
    }
    ev
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
            let ev = evidence(&policies, &resource);
            let d = decide(&plan(&policies, &resource), &ev);
            assert!(d.allowed, "{}", d.message);
            assert_eq!(d.results.len(), results(n));
            group.bench_with_input(BenchmarkId::new("policies", n), &n, |b, _| {
                b.iter(|| {
                    let p = plan(&policies, &resource);
                    decide(&p, &ev)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
