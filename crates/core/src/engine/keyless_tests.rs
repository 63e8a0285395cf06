//! Keyless attestors on the real connaisseur signature (Fulcio certificate for
//! `philipp.belitz@securesystems.de`, issuer `https://github.com/login/oauth`, Rekor bundle,
//! embedded SCT from `ctfe.sigstore.dev/2022`), checked offline against the public-good trusted
//! root. Every failure is a decision whose words name what was found and what was wanted.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use crate::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, ImageManifest, SignatureLayer,
    SignatureSet,
};
use crate::crypto::key::SigningKey;
use crate::engine::tests::{assert_denied, pod, policies};
use crate::engine::{
    Artifact, AttestorOutcome, Decision, Evaluation, Mode, Reason, Status, VerifyContext, Want,
};
use crate::image::digest::{Digest, hex_encode};
use crate::policy::{AttestorKind, Policy};
use crate::sigstore::bundle_set::BundleSet;
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

/// 2026-11-25: long after the 10-minute certificate expired (2024-05-30).
const NOW: i64 = 1_795_000_000;
const IMAGE: &str = "index.docker.io/phbelitz/rekor-test@sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
const EMAIL: &str = "philipp.belitz@securesystems.de";
const GITHUB: &str = "https://github.com/login/oauth";

fn layer() -> SignatureLayer {
    let manifest = ImageManifest::parse(include_bytes!(
        "../../testdata/connaisseur/sig-manifest.json"
    ))
    .unwrap();
    SignatureLayer {
        descriptor: manifest.layers[0].clone(),
        payload: include_bytes!("../../testdata/connaisseur/payload.json").to_vec(),
    }
}

/// A ClusterPolicy (as JSON, which is YAML) whose one entry has the `keyless` block `keyless`.
fn keyless_policy(keyless: Value) -> Vec<Policy> {
    policies(&keyless_entries(vec![json!({ "keyless": keyless })], None))
}

fn keyless_entries(entries: Vec<Value>, count: Option<usize>) -> String {
    let mut set = json!({ "entries": entries });
    if let Some(count) = count {
        set["count"] = json!(count);
    }
    json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": {"name": "keyless"},
        "spec": {
            "validationFailureAction": "Enforce",
            "rules": [{
                "name": "verify-keyless",
                "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{
                    "imageReferences": ["*"],
                    "mutateDigest": false,
                    "attestors": [set]
                }]
            }]
        }
    })
    .to_string()
}

/// `subject`/`issuer` constraints with the public-good Rekor.
fn identity(subject: &str, issuer: &str) -> Value {
    json!({"subject": subject, "issuer": issuer, "rekor": {"url": "https://rekor.sigstore.dev"}})
}

/// The evaluation of the connaisseur Pod when every signature set holds `layers`, finished with
/// `trust` at `now`.
fn evaluate(
    policies: &[Policy],
    layers: Vec<SignatureLayer>,
    trust: &TrustedRoot,
    now: i64,
) -> crate::engine::Finished {
    let resource = pod("default", &[IMAGE]);
    let mut evaluation = Evaluation::new(policies, &resource, Mode::Mutate);
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Digest(r) => panic!("{r} has a digest: nothing to resolve"),
                Want::CachedOutcome(key) => evaluation.outcome_cached(key, None),
                Want::Signatures { request, .. } if request.artifact == Artifact::Bundles => {
                    let set = BundleSet::empty(request.location(), request.digest.clone());
                    evaluation.bundles_fetched(request, Ok(Arc::new(set)));
                }
                Want::Signatures { request, .. } => {
                    let set = SignatureSet {
                        location: format!(
                            "{}:{}",
                            request.repository_name(),
                            request.digest.signature_tag()
                        ),
                        image_digest: request.digest.clone(),
                        layers: layers.clone(),
                    };
                    evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                }
                Want::ImageData { .. } => unreachable!("no policy here reads image data"),
            }
        }
    }
    evaluation.finish(VerifyContext {
        trust,
        now: unix_time(now),
    })
}

fn decide(policies: &[Policy], layers: Vec<SignatureLayer>) -> Decision {
    evaluate(policies, layers, TrustedRoot::public_good(), NOW).decision
}

fn reason(d: &Decision) -> Reason {
    d.results[0].images[0].reason
}

fn without(mut layer: SignatureLayer, annotation: &str) -> SignatureLayer {
    layer
        .descriptor
        .annotations
        .as_mut()
        .unwrap()
        .remove(annotation);
    layer
}

fn with_annotation(mut layer: SignatureLayer, annotation: &str, value: String) -> SignatureLayer {
    layer
        .descriptor
        .annotations
        .as_mut()
        .unwrap()
        .insert(annotation.to_string(), value);
    layer
}

fn pem_of(der: &[u8]) -> String {
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

#[test]
fn the_right_identity_passes_in_wildcard_and_regexp_forms() {
    let forms = [
        identity(EMAIL, GITHUB),
        identity("*@securesystems.de", "https://github.com/*"),
        json!({"subjectRegExp": "^philipp\\.belitz@securesystems\\.de$",
               "issuerRegExp": "github\\.com/login", "rekor": {"url": "https://rekor.sigstore.dev"}}),
        // subject or subjectRegExp: one of them is enough (Kyverno's OR).
        json!({"subject": "nobody@example.com", "subjectRegExp": "securesystems",
               "issuer": GITHUB, "rekor": {"url": "https://rekor.sigstore.dev"}}),
        json!({"subject": EMAIL, "additionalExtensions": {"oidcIssuer": "https://github.com/*"},
               "rekor": {"url": "https://rekor.sigstore.dev"}}),
        json!({"subject": EMAIL, "additionalExtensions": {"1.3.6.1.4.1.57264.1.1": GITHUB},
               "rekor": {"url": "https://rekor.sigstore.dev"}}),
    ];
    for keyless in forms {
        let d = decide(&keyless_policy(keyless.clone()), vec![layer()]);
        assert!(d.allowed, "{keyless}: {}", d.message);
        let image = &d.results[0].images[0];
        assert_eq!(image.status, Status::Pass);
        assert_eq!(image.reason, Reason::Verified);
        assert_eq!(
            image.signers,
            [format!("keyless {EMAIL} (issuer {GITHUB})")],
            "{keyless}"
        );
    }
}

#[test]
fn a_wrong_subject_or_issuer_is_denied_naming_both_identities() {
    let d = decide(
        &keyless_policy(identity("*@example.com", "https://accounts.google.com")),
        vec![layer()],
    );
    assert_denied(
        &d,
        "certificate identity philipp.belitz@securesystems.de issued by https://github.com/login/oauth does not match subject *@example.com, issuer https://accounts.google.com",
    );
    assert_eq!(reason(&d), Reason::Identity);
    assert_eq!(d.results[0].images[0].status, Status::Fail);

    // The right subject from the wrong issuer.
    let d = decide(
        &keyless_policy(identity(EMAIL, "https://accounts.google.com")),
        vec![layer()],
    );
    assert_denied(
        &d,
        "issued by https://github.com/login/oauth does not match subject philipp.belitz@securesystems.de, issuer https://accounts.google.com",
    );
    // issuer and issuerRegExp must both match (Kyverno's AND).
    let d = decide(
        &keyless_policy(
            json!({"subject": EMAIL, "issuer": GITHUB, "issuerRegExp": "google",
                                "rekor": {"url": "https://rekor.sigstore.dev"}}),
        ),
        vec![layer()],
    );
    assert_denied(
        &d,
        "does not match subject philipp.belitz@securesystems.de, issuer https://github.com/login/oauth and issuerRegExp google",
    );
    // A regexp is unanchored, as Go's MatchString: a substring of another SAN does not match.
    let d = decide(
        &keyless_policy(
            json!({"subjectRegExp": "^belitz", "rekor": {"url": "https://rekor.sigstore.dev"}}),
        ),
        vec![layer()],
    );
    assert_denied(&d, "does not match subjectRegExp ^belitz");
}

#[test]
fn additional_extensions_are_kyvernos_keys_matched_with_wildcards() {
    let with = |extensions: Value| {
        keyless_policy(json!({"subject": EMAIL, "issuer": GITHUB,
                              "additionalExtensions": extensions,
                              "rekor": {"url": "https://rekor.sigstore.dev"}}))
    };
    // The connaisseur certificate comes from a GitHub login, not a workflow.
    let d = decide(
        &with(json!({"githubWorkflowRepository": "sse-secure-systems/*"})),
        vec![layer()],
    );
    assert_denied(
        &d,
        "certificate identity philipp.belitz@securesystems.de issued by https://github.com/login/oauth lacks the extension githubWorkflowRepository (1.3.6.1.4.1.57264.1.5) that additionalExtensions requires as 'sse-secure-systems/*'",
    );
    assert_eq!(reason(&d), Reason::Identity);
    let d = decide(
        &with(json!({"oidcIssuer": "https://accounts.*"})),
        vec![layer()],
    );
    assert_denied(
        &d,
        "has oidcIssuer (1.3.6.1.4.1.57264.1.1) 'https://github.com/login/oauth', which does not match 'https://accounts.*'",
    );
    // A key Kyverno does not know fails every image, as Kyverno's `invalid certificate extension`.
    let d = decide(&with(json!({"buildSignerURI": "x"})), vec![layer()]);
    assert_denied(&d, "invalid certificate extension buildSignerURI");
}

#[test]
fn an_invalid_regexp_fails_as_kyverno_says() {
    let p = keyless_policy(
        json!({"subjectRegExp": "(unclosed", "rekor": {"url": "https://rekor.sigstore.dev"}}),
    );
    let d = decide(&p, vec![layer()]);
    assert_denied(&d, "invalid regexp for subject: (unclosed : ");
}

#[test]
fn roots_replace_fulcio() {
    let l = layer();
    let chain =
        crate::crypto::pem::parse_blocks(l.descriptor.annotation(CHAIN_ANNOTATION).unwrap())
            .unwrap();
    // Fulcio's own root as `roots`: the chain annotation gives the intermediate.
    let fulcio_root = pem_of(&chain[1].der);
    let with_roots = |roots: &str| {
        keyless_policy(json!({"subject": EMAIL, "issuer": GITHUB, "roots": roots,
                              "rekor": {"url": "https://rekor.sigstore.dev"}}))
    };
    let d = decide(&with_roots(&fulcio_root), vec![l.clone()]);
    assert!(d.allowed, "{}", d.message);
    // Another CA as roots: Fulcio's certificate does not chain to it.
    let other = {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.self_signed(&KeyPair::generate().unwrap()).unwrap().pem()
    };
    let d = decide(&with_roots(&other), vec![l.clone()]);
    assert_denied(
        &d,
        "the certificate of philipp.belitz@securesystems.de (issuer 'O=sigstore.dev, CN=sigstore-intermediate') does not chain to the policy's roots (1 certificate(s)) at the signing time 2024-05-30T15:18:17Z",
    );
    assert_eq!(reason(&d), Reason::Certificate);
    // Without the chain annotation, Fulcio's root alone lacks the intermediate.
    let d = decide(
        &with_roots(&fulcio_root),
        vec![without(l, CHAIN_ANNOTATION)],
    );
    assert_denied(&d, "does not chain to the policy's roots");
}

#[test]
fn each_fulcio_ca_holds_only_inside_its_validity_window() {
    let p = keyless_policy(identity(EMAIL, GITHUB));
    // Without the chain annotation the trusted root's own intermediate completes the path.
    let f = evaluate(
        &p,
        vec![without(layer(), CHAIN_ANNOTATION)],
        TrustedRoot::public_good(),
        NOW,
    );
    assert!(f.decision.allowed, "{}", f.decision.message);
    // The same root with every CA starting after the signature: nothing to chain to.
    let mut late = TrustedRoot::public_good().clone();
    for ca in &mut late.certificate_authorities {
        ca.valid_from = Some(unix_time(1_717_082_298));
    }
    let f = evaluate(&p, vec![layer()], &late, NOW);
    assert_denied(
        &f.decision,
        "does not chain to a Fulcio CA of the trusted root (none of its 2 was valid at the signing time) at the signing time 2024-05-30T15:18:17Z",
    );
    // Only the 2021 CA (valid until 2022): valid, but not Fulcio's current issuer.
    let mut old = TrustedRoot::public_good().clone();
    for ca in &mut old.certificate_authorities {
        ca.valid_until = Some(unix_time(1_672_531_199));
    }
    let f = evaluate(&p, vec![layer()], &old, NOW);
    assert_denied(&f.decision, "none of its 2 was valid at the signing time");
}

#[test]
fn keyless_needs_the_tlog_proof_unless_ignore_tlog() {
    let p = keyless_policy(identity(EMAIL, GITHUB));
    let d = decide(&p, vec![without(layer(), BUNDLE_ANNOTATION)]);
    assert_denied(
        &d,
        "none of 1 signature(s) at index.docker.io/phbelitz/rekor-test:sha256-31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee.sig verifies as keyless: signature 1: the transparency-log proof is missing",
    );
    assert_eq!(reason(&d), Reason::TransparencyLog);
    // Even without a rekor block (roots given instead): Kyverno would look the entry up online.
    let l = layer();
    let chain =
        crate::crypto::pem::parse_blocks(l.descriptor.annotation(CHAIN_ANNOTATION).unwrap())
            .unwrap();
    let p = keyless_policy(json!({"subject": EMAIL, "roots": pem_of(&chain[1].der)}));
    let d = decide(&p, vec![without(l, BUNDLE_ANNOTATION)]);
    assert_denied(&d, "the transparency-log proof is missing");
    // ignoreTlog: the signing time is now, when the 10-minute certificate has long expired.
    let p = keyless_policy(
        json!({"subject": EMAIL, "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": true}}),
    );
    let d = decide(&p, vec![without(layer(), BUNDLE_ANNOTATION)]);
    assert_denied(
        &d,
        "the certificate 'philipp.belitz@securesystems.de' was not valid at the signing time 2026-11-18T11:06:40Z (valid 2024-05-30T15:18:10Z to 2024-05-30T15:28:10Z)",
    );
    // … and at a time inside its validity it verifies without any bundle.
    let f = evaluate(
        &p,
        vec![without(layer(), BUNDLE_ANNOTATION)],
        TrustedRoot::public_good(),
        1_717_082_297,
    );
    assert!(f.decision.allowed, "{}", f.decision.message);
}

#[test]
fn a_tampered_set_is_refused() {
    let l = layer();
    let bundle: Value =
        serde_json::from_str(l.descriptor.annotation(BUNDLE_ANNOTATION).unwrap()).unwrap();
    let mut set = STANDARD
        .decode(bundle["SignedEntryTimestamp"].as_str().unwrap())
        .unwrap();
    let at = set.len() - 3;
    set[at] ^= 1;
    let mut tampered = bundle.clone();
    tampered["SignedEntryTimestamp"] = json!(STANDARD.encode(&set));
    let d = decide(
        &keyless_policy(identity(EMAIL, GITHUB)),
        vec![with_annotation(l, BUNDLE_ANNOTATION, tampered.to_string())],
    );
    assert_denied(
        &d,
        "the Rekor bundle's signed entry timestamp does not verify with the key of https://rekor.sigstore.dev",
    );
    assert_eq!(reason(&d), Reason::TransparencyLog);
}

/// The connaisseur bundle with its integrated time moved by `shift` seconds, signed again by
/// `log` (the policy then names that key as `rekor.pubkey`, so the SET itself verifies).
fn resigned_bundle(log: &SigningKey, shift: i64) -> String {
    let l = layer();
    let bundle: Value =
        serde_json::from_str(l.descriptor.annotation(BUNDLE_ANNOTATION).unwrap()).unwrap();
    let p = &bundle["Payload"];
    let time = p["integratedTime"].as_i64().unwrap() + shift;
    let log_id = hex_encode(&Digest::sha256_of(log.public_key().spki_der()).bytes());
    let canonical = format!(
        r#"{{"body":{},"integratedTime":{time},"logID":"{log_id}","logIndex":{}}}"#,
        p["body"], p["logIndex"]
    );
    let set = log
        .sign(&SystemRandom::new(), canonical.as_bytes())
        .unwrap();
    json!({
        "SignedEntryTimestamp": STANDARD.encode(set),
        "Payload": {"body": p["body"], "integratedTime": time, "logIndex": p["logIndex"], "logID": log_id}
    })
    .to_string()
}

#[test]
fn rekor_pubkey_replaces_the_log_key_and_integrated_time_must_fall_in_the_certificate() {
    let log = SigningKey::generate(&SystemRandom::new()).unwrap();
    let p = keyless_policy(json!({"subject": EMAIL, "issuer": GITHUB,
        "rekor": {"url": "https://rekor.example", "pubkey": log.public_key().to_pem()}}));
    // The same entry, logged by the policy's Rekor: verifies.
    let d = decide(
        &p,
        vec![with_annotation(
            layer(),
            BUNDLE_ANNOTATION,
            resigned_bundle(&log, 0),
        )],
    );
    assert!(d.allowed, "{}", d.message);
    // The real bundle is by the public-good log, which this policy does not trust.
    let d = decide(&p, vec![layer()]);
    assert_denied(&d, "which is not trusted (add its key as rekor.pubkey)");
    // Logged an hour after the certificate expired: the certificate was not valid then.
    let d = decide(
        &p,
        vec![with_annotation(
            layer(),
            BUNDLE_ANNOTATION,
            resigned_bundle(&log, 3600),
        )],
    );
    assert_denied(
        &d,
        "the certificate 'philipp.belitz@securesystems.de' was not valid at the signing time 2024-05-30T16:18:17Z (valid 2024-05-30T15:18:10Z to 2024-05-30T15:28:10Z)",
    );
    assert_eq!(reason(&d), Reason::Certificate);
    // … and a minute before it was issued.
    let d = decide(
        &p,
        vec![with_annotation(
            layer(),
            BUNDLE_ANNOTATION,
            resigned_bundle(&log, -60),
        )],
    );
    assert_denied(&d, "was not valid at the signing time 2024-05-30T15:17:17Z");
}

#[test]
fn the_sct_is_checked_against_the_ct_log_keys() {
    // Another CT log key as ctlog.pubkey: the certificate's SCT is from a log not trusted.
    let ct = SigningKey::generate(&SystemRandom::new()).unwrap();
    let with_ctlog = |ctlog: Value| {
        keyless_policy(json!({"subject": EMAIL, "issuer": GITHUB, "ctlog": ctlog,
                              "rekor": {"url": "https://rekor.sigstore.dev"}}))
    };
    let d = decide(
        &with_ctlog(json!({"pubkey": ct.public_key().to_pem()})),
        vec![layer()],
    );
    assert_denied(
        &d,
        "no embedded SCT verifies: SCT from CT log dd3d306ac6c7113263191e1c99673702a24a5eb8de3cadff878a72802f29ee8e, which is not trusted (add its key as ctlog.pubkey)",
    );
    assert_eq!(reason(&d), Reason::CertificateTransparency);
    // ignoreSCT skips the check.
    let d = decide(
        &with_ctlog(json!({"ignoreSCT": true, "pubkey": ct.public_key().to_pem()})),
        vec![layer()],
    );
    assert!(d.allowed, "{}", d.message);
    // The public-good CT keys: the 2022 log's SCT verifies.
    let d = decide(&with_ctlog(json!({"ignoreSCT": false})), vec![layer()]);
    assert!(d.allowed, "{}", d.message);

    // A tampered SCT changes the certificate Fulcio signed: its chain no longer holds.
    let l = layer();
    let leaf =
        crate::crypto::pem::parse_blocks(l.descriptor.annotation(CERTIFICATE_ANNOTATION).unwrap())
            .unwrap()
            .remove(0)
            .der;
    let (_, cert) = <x509_parser::prelude::X509Certificate<'_> as x509_parser::prelude::FromDer<
        '_,
        _,
    >>::from_der(&leaf)
    .unwrap();
    let sct = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == crate::sigstore::sct::SCT_LIST_OID)
        .unwrap()
        .value;
    let at = leaf.windows(sct.len()).position(|w| w == sct).unwrap() + sct.len() - 1;
    let mut tampered = leaf.clone();
    tampered[at] ^= 1;
    let tampered_layer = with_annotation(l, CERTIFICATE_ANNOTATION, pem_of(&tampered));
    let d = decide(
        &with_ctlog(json!({"ignoreSCT": false})),
        vec![tampered_layer.clone()],
    );
    // The Rekor entry records the original certificate, so the bundle refuses it first.
    assert_denied(&d, "the Rekor entry does not match this signature");
    // Without the log (at a time the certificate was valid), Fulcio's signature over it fails.
    let no_tlog = keyless_policy(json!({"subject": EMAIL, "issuer": GITHUB,
        "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": true}}));
    let f = evaluate(
        &no_tlog,
        vec![tampered_layer],
        TrustedRoot::public_good(),
        1_717_082_297,
    );
    assert_denied(
        &f.decision,
        "does not chain to the Fulcio CAs of the trusted root (1 valid at the signing time) at the signing time 2024-05-30T15:18:17Z: the certificate chain of 'philipp.belitz@securesystems.de' is invalid: ",
    );
}

#[test]
fn a_signature_without_certificate_or_by_another_key_is_refused() {
    let p = keyless_policy(identity(EMAIL, GITHUB));
    let d = decide(&p, vec![without(layer(), CERTIFICATE_ANNOTATION)]);
    assert_denied(
        &d,
        "it carries no certificate (a keyless signature carries its Fulcio certificate in the dev.sigstore.cosign/certificate annotation)",
    );
    let mut other = layer();
    other.payload[10] ^= 1;
    let d = decide(&p, vec![other]);
    assert_denied(
        &d,
        "does not verify with the certificate's key (philipp.belitz@securesystems.de)",
    );
    let d = decide(&p, vec![]);
    assert_eq!(reason(&d), Reason::NoSignatures);
}

#[test]
fn outcomes_are_kept_by_identity_constraints() {
    let fingerprint = |keyless: Value| {
        let p = keyless_policy(keyless);
        let a = &p[0].rules[0].verify_images[0].attestors[0].entries[0];
        assert!(matches!(a.kind, AttestorKind::Keyless(_)));
        assert!(a.unsupported().is_none());
        a.fingerprint().to_string()
    };
    let base = fingerprint(identity(EMAIL, GITHUB));
    assert_eq!(base, fingerprint(identity(EMAIL, GITHUB)));
    let l = layer();
    let chain =
        crate::crypto::pem::parse_blocks(l.descriptor.annotation(CHAIN_ANNOTATION).unwrap())
            .unwrap();
    let others = [
        identity("*@securesystems.de", GITHUB),
        identity(EMAIL, "https://github.com/*"),
        json!({"subject": EMAIL, "issuer": GITHUB, "additionalExtensions": {"githubWorkflowTrigger": "push"}, "rekor": {"url": "https://rekor.sigstore.dev"}}),
        json!({"subject": EMAIL, "issuer": GITHUB, "roots": pem_of(&chain[1].der), "rekor": {"url": "https://rekor.sigstore.dev"}}),
        json!({"subject": EMAIL, "issuer": GITHUB, "rekor": {"url": "https://rekor.sigstore.dev", "ignoreTlog": true}}),
        json!({"subject": EMAIL, "issuer": GITHUB, "ctlog": {"ignoreSCT": true}, "rekor": {"url": "https://rekor.sigstore.dev"}}),
        json!({"subjectRegExp": EMAIL, "issuer": GITHUB, "rekor": {"url": "https://rekor.sigstore.dev"}}),
    ];
    for other in others {
        assert_ne!(base, fingerprint(other.clone()), "{other}");
    }

    // Two keyless entries that differ only in subject: two outcomes, the verified one cacheable.
    let p = policies(&keyless_entries(
        vec![
            json!({"keyless": identity(EMAIL, GITHUB)}),
            json!({"keyless": identity("*@example.com", GITHUB)}),
        ],
        Some(1),
    ));
    let f = evaluate(&p, vec![layer()], TrustedRoot::public_good(), NOW);
    assert!(f.decision.allowed, "{}", f.decision.message);
    assert_eq!(f.verified.len(), 1, "{:?}", f.verified);
    let (key, outcome) = &f.verified[0];
    assert!(
        key.attestor.contains(&format!("{EMAIL:?}")),
        "{}",
        key.attestor
    );
    assert!(matches!(outcome, AttestorOutcome::Verified(_)));
}

/// The trust material is the caller's (`--trusted-root`), not a built-in: the real signature's
/// Rekor proof verifies with the public-good root, not with a root that lacks its log and CAs,
/// and a ClientTrustConfig is read as the root it holds.
#[test]
fn the_trusted_root_given_is_the_one_checked_against() {
    // 2024-05-30, a minute after the signature was logged.
    const LOGGED: i64 = 1_717_082_357;
    let policies = keyless_policy(identity(EMAIL, GITHUB));
    let allowed = |trust: &TrustedRoot| {
        evaluate(&policies, vec![layer()], trust, LOGGED)
            .decision
            .allowed
    };
    assert!(allowed(TrustedRoot::public_good()));
    assert!(!allowed(&TrustedRoot::default()));
    let plain = include_str!("../../trust/public-good-trusted-root.json");
    let wrapped = format!(
        "{{\"mediaType\":\"application/vnd.dev.sigstore.clienttrustconfig.v0.1+json\",\"trustedRoot\":{plain}}}"
    );
    let root = TrustedRoot::from_json(wrapped.as_bytes()).unwrap();
    assert_eq!(root.tlogs.len(), TrustedRoot::public_good().tlogs.len());
    assert!(allowed(&root));
}
