//! The trust material a decision is made with is the caller's (`--trusted-root`), not a
//! built-in: the real keyless signature's Rekor proof verifies with the public-good root, and
//! not with a root that lacks its log.

use std::sync::Arc;

use super::tests::{connaisseur_layer, connaisseur_policy, pod, policies};
use super::*;
use crate::cosign::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SignatureSet};
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

fn decide_with(trust: &TrustedRoot) -> Decision {
    let layer = connaisseur_layer();
    let cert = layer.descriptor.annotation(CERTIFICATE_ANNOTATION).unwrap().to_string();
    let chain = layer.descriptor.annotation(CHAIN_ANNOTATION).unwrap().to_string();
    let rekor = "              rekor:\n                url: https://rekor.sigstore.dev\n";
    let p = policies(&connaisseur_policy(&cert, &chain, rekor));
    let image = "index.docker.io/phbelitz/rekor-test@sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
    let resource = pod("default", &[image]);
    let mut evaluation = Evaluation::new(&p, &resource, Mode::Mutate);
    loop {
        let wants = evaluation.wants();
        if wants.is_empty() {
            break;
        }
        for want in wants {
            match want {
                Want::Signatures { request, .. } => {
                    let set = SignatureSet {
                        location: format!("{}.sig", request.repository_name()),
                        image_digest: request.digest.clone(),
                        layers: vec![layer.clone()],
                    };
                    evaluation.signatures_fetched(request, Ok(Arc::new(set)));
                }
                Want::CachedOutcome(key) => evaluation.outcome_cached(key, None),
                other => panic!("nothing else to fetch: {other:?}"),
            }
        }
    }
    evaluation
        .finish(VerifyContext {
            trust,
            // 2024-05-30, a minute after the signature was logged.
            now: unix_time(1_717_082_357),
        })
        .decision
}

#[test]
fn the_rekor_proof_is_checked_against_the_trusted_root_given() {
    let d = decide_with(TrustedRoot::public_good());
    assert!(d.allowed, "{}", d.message);
    // A private Sigstore's root without the public-good Rekor log: the SET cannot verify.
    let private = TrustedRoot::default();
    let d = decide_with(&private);
    assert!(!d.allowed, "admitted with a root that lacks the log");
    // The same root read from a ClientTrustConfig wrapper as from the plain file.
    let plain = include_str!("../../trust/public-good-trusted-root.json");
    let wrapped = format!(
        "{{\"mediaType\":\"application/vnd.dev.sigstore.clienttrustconfig.v0.1+json\",\"trustedRoot\":{plain}}}"
    );
    let root = TrustedRoot::from_json(wrapped.as_bytes()).unwrap();
    assert_eq!(root.tlogs.len(), TrustedRoot::public_good().tlogs.len());
    assert!(decide_with(&root).allowed);
}
