//! No spelling of an image escapes a rule: the issue's spellings are covered, skips need a
//! covered spelling, and a property test checks that every spelling of one image gets the same
//! decision.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::cosign::SignatureSet;
use crate::crypto::key::SigningKey;
use crate::image::ImageRef;
use crate::image::alias::canonical_repository;
use crate::image::digest::Digest;
use crate::policy::{Operation, Policy, load};
use crate::sigstore::bundle_set::BundleSet;
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

use super::tests::{key, pem, signed_layer};

/// A registry in memory that, like a container runtime, does not care how a repository is
/// spelled: tags resolve by canonical repository, and `signed` repositories carry a signature by
/// `key` over that digest.
fn decide(policies: &[Policy], image: &str, key: &SigningKey, signed: &[&str]) -> Decision {
    let resource = Resource::from_object(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": image}]}}),
        Operation::Create,
        None,
        BTreeMap::new(),
    )
    .unwrap();
    let digest_of = |r: &ImageRef| Digest::sha256_of(canonical_repository(r).as_bytes());
    let mut evaluation = Evaluation::new(policies, &resource, Mode::Mutate);
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Digest(image) => {
                    let d = digest_of(&image);
                    evaluation.digest_resolved(&image, Ok(d));
                }
                Want::CachedOutcome(k) => evaluation.outcome_cached(k, None),
                Want::ImageData { .. } => unreachable!("no policy here reads image data"),
                Want::Signatures { request, .. } if request.artifact == Artifact::Bundles => {
                    let set = BundleSet::empty(request.location(), request.digest.clone());
                    evaluation.bundles_fetched(request, Ok(Arc::new(set)));
                }
                Want::Signatures { request, .. } => {
                    let repository = canonical_repository(&request.repository);
                    let layers = signed
                        .iter()
                        .filter(|s| {
                            canonical_repository(&ImageRef::parse(s).unwrap()) == repository
                        })
                        .map(|s| signed_layer(key, s, &request.digest))
                        .collect();
                    let set = SignatureSet {
                        location: format!("{}.sig", request.repository_name()),
                        image_digest: request.digest.clone(),
                        layers,
                    };
                    evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                }
            }
        }
    }
    evaluation
        .finish(VerifyContext {
            trust: TrustedRoot::public_good(),
            now: unix_time(1_795_000_000),
        })
        .decision
}

fn policy(key: &SigningKey, include: &[&str], skip: &[&str]) -> Vec<Policy> {
    let list = |v: &[&str]| {
        v.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let yaml = format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-signed
spec:
  rules:
    - name: check
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences: [{}]
        skipImageReferences: [{}]
        failureAction: Enforce
        attestors:
        - entries:
          - keys:
              publicKeys: |-
                {}
"#,
        list(include),
        list(skip),
        pem(key)
    );
    let outcome = load("p.yaml", &yaml);
    assert!(outcome.errors.is_empty(), "{:#?}", outcome.errors);
    outcome.policies
}

#[test]
fn every_spelling_of_a_company_image_is_covered() {
    let k = key();
    let p = policy(&k, &["registry.company.com/*"], &[]);
    for image in [
        "registry.company.com/critical/app:v1",
        "REGISTRY.COMPANY.COM/critical/app:v1",
        "Registry.Company.Com/critical/app:v1",
        "registry.company.com:443/critical/app:v1",
        "registry.company.com./critical/app:v1",
    ] {
        let d = decide(&p, image, &k, &[]);
        assert!(!d.allowed, "{image} escaped: {d:?}");
        assert!(d.uncovered.is_empty(), "{image}");
        let d = decide(&p, image, &k, &["registry.company.com/critical/app"]);
        assert!(d.allowed, "{image}: {}", d.message);
    }
    // Kyverno's own spelling matched: nothing is noted.
    let d = decide(&p, "registry.company.com/critical/app:v1", &k, &[]);
    assert_eq!(d.results[0].images[0].covered_as, None);
    // Another spelling matched: the result says which.
    let d = decide(&p, "REGISTRY.COMPANY.COM/critical/app:v1", &k, &[]);
    assert_eq!(
        d.results[0].images[0].covered_as.as_deref(),
        Some("registry.company.com/critical/app:v1")
    );
}

#[test]
fn docker_hub_aliases_and_the_implicit_library_are_covered() {
    let k = key();
    let p = policy(&k, &["docker.io/*"], &[]);
    for image in [
        "index.docker.io/library/nginx:1",
        "registry-1.docker.io/library/nginx:1",
        "nginx:1",
    ] {
        assert!(!decide(&p, image, &k, &[]).allowed, "{image}");
    }
    let p = policy(&k, &["docker.io/library/*"], &[]);
    let d = decide(&p, "nginx:1", &k, &[]);
    assert!(!d.allowed, "nginx:1 escaped docker.io/library/*");
    assert_eq!(
        d.results[0].images[0].covered_as.as_deref(),
        Some("docker.io/library/nginx:1")
    );
    assert!(decide(&p, "nginx:1", &k, &["docker.io/library/nginx"]).allowed);
    // Another registry is another registry.
    assert!(decide(&p, "ghcr.io/library/nginx:1", &k, &[]).allowed);
}

#[test]
fn a_skip_needs_a_spelling_that_is_covered() {
    let k = key();
    // Kyverno's skip stays.
    let p = policy(
        &k,
        &["registry.company.com/*"],
        &["registry.company.com/tools/*"],
    );
    let d = decide(&p, "registry.company.com/tools/debug:v1", &k, &[]);
    assert!(d.allowed);
    assert_eq!(d.results[0].status, Status::Skip);
    // Respelled, still the same skip.
    let d = decide(&p, "REGISTRY.COMPANY.COM:443/tools/debug:v1", &k, &[]);
    assert_eq!(d.results[0].status, Status::Skip, "{d:?}");
    // A skip pattern that only matches a spelling no include pattern covers does not skip.
    let p = policy(&k, &["docker.io/library/*"], &["docker.io/nginx*"]);
    let d = decide(&p, "nginx:1", &k, &[]);
    assert!(
        !d.allowed,
        "skipped through a spelling that was not covered"
    );
}

/// Spellings of one image: (registry, path) with their respellings.
fn spell(base: usize, variant: usize) -> Option<String> {
    let (host, path) = [
        ("registry.company.com", "critical/app"),
        ("docker.io", "library/nginx"),
        ("ghcr.io", "team/app"),
    ][base];
    let hub = host == "docker.io";
    let short = path.strip_prefix("library/").unwrap_or(path);
    let s = match variant {
        0 => format!("{host}/{path}:v1"),
        1 => format!("{}/{path}:v1", host.to_uppercase()),
        2 if !hub => format!("{host}:443/{path}:v1"),
        3 if !hub => format!("{host}./{path}:v1"),
        4 if !hub => format!("{}:443/{path}:v1", host.to_uppercase()),
        2 if hub => format!("{short}:v1"),
        3 if hub => format!("index.docker.io/{path}:v1"),
        4 if hub => format!("registry-1.docker.io/{short}:v1"),
        5 if hub => format!("Docker.IO/{short}:v1"),
        _ => return None,
    };
    Some(s)
}

/// Patterns as policies write them: lower-case hosts and paths with Kyverno's wildcards.
fn pattern() -> impl Strategy<Value = String> {
    let host = prop::sample::select(vec![
        "registry.company.com",
        "registry.company.com:443",
        "docker.io",
        "index.docker.io",
        "ghcr.io",
        "*",
        "registry.*",
    ]);
    let path = prop::sample::select(vec![
        "*",
        "critical/*",
        "library/*",
        "nginx*",
        "team/app:v1",
        "*app*",
        "c?itical/app:*",
    ]);
    prop_oneof![
        Just("*".to_string()),
        (host, path).prop_map(|(h, p)| format!("{h}/{p}")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_spelling_of_one_image_gets_the_same_decision(
        base in 0usize..3,
        include in prop::collection::vec(pattern(), 1..3),
        skip in prop::collection::vec(pattern(), 0..2),
        signed in any::<bool>(),
    ) {
        let k = key();
        let include: Vec<&str> = include.iter().map(String::as_str).collect();
        let skip: Vec<&str> = skip.iter().map(String::as_str).collect();
        let p = policy(&k, &include, &skip);
        let canonical = spell(base, 0).unwrap();
        let signers: Vec<&str> = if signed { vec![canonical.as_str()] } else { Vec::new() };
        let mut first: Option<(String, bool, Vec<Status>)> = None;
        for variant in 0..6 {
            let Some(image) = spell(base, variant) else { continue };
            let d = decide(&p, &image, &k, &signers);
            let statuses: Vec<Status> = d.results.iter().map(|r| r.status).collect();
            match &first {
                None => first = Some((image, d.allowed, statuses)),
                Some((other, allowed, other_statuses)) => {
                    prop_assert_eq!(
                        d.allowed, *allowed,
                        "{} and {} decided differently under {:?} skip {:?}: {}",
                        image, other, include, skip, d.message
                    );
                    prop_assert_eq!(&statuses, other_statuses, "{} vs {}", image, other);
                }
            }
        }
    }
}
