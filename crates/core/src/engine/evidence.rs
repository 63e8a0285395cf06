//! What the caller fetched for a plan, and the attestor outcomes computed from it.

use std::collections::HashMap;

use crate::cosign::SignatureSet;
use crate::digest::Digest;
use crate::image::ImageRef;

use super::attestor::{AttestorOutcome, VerifyContext, attestor_fingerprint, check_attestor};
use super::plan::{Plan, SignatureRequest, for_each_leaf, signature_repository};

/// Why something could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// The time budget ran out. The text continues "did not finish within …": the budget, then
    /// what was slow, e.g. `8s: waiting for registry.company.com to answer …`.
    Timeout(String),
    /// Any other failure (unreachable, TLS, 401/403, 404 of the image, 5xx…), as a message that
    /// names the host and the fix.
    Unavailable(String),
}

impl std::fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchFailure::Timeout(m) | FetchFailure::Unavailable(m) => f.write_str(m),
        }
    }
}

/// The key under which an attestor outcome is stored: attestor content, signature repository and
/// image digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutcomeKey {
    /// [`attestor_fingerprint`].
    pub attestor: String,
    /// Where the signatures were read.
    pub repository: String,
    /// The image digest.
    pub digest: Digest,
}

/// Everything fetched and concluded for one plan.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Tag → digest resolutions, by normalised reference (`registry/path:tag`).
    pub digests: HashMap<String, Result<Digest, FetchFailure>>,
    /// Signature sets by where they were read.
    pub signatures: HashMap<SignatureRequest, Result<SignatureSet, FetchFailure>>,
    /// Attestor outcomes.
    pub outcomes: HashMap<OutcomeKey, AttestorOutcome>,
}

impl Evidence {
    /// The digest an image stands for: its own, or the resolution of its tag.
    pub fn digest_of(&self, image: &ImageRef) -> Option<Result<Digest, FetchFailure>> {
        match image.digest() {
            Some(d) => Some(Ok(d.clone())),
            None => self.digests.get(&image.normalized()).cloned(),
        }
    }

    /// Computes every attestor outcome the plan needs that is not known yet, and returns the
    /// keys it computed (callers may cache those).
    pub fn verify_missing(&mut self, plan: &Plan<'_>, ctx: VerifyContext<'_>) -> Vec<OutcomeKey> {
        let mut computed = Vec::new();
        for r in &plan.rules {
            for c in &r.checks {
                let entry = &r.rule.verify_images[c.entry];
                let image = &plan.images[c.image];
                let Ok(reference) = &image.reference else {
                    continue;
                };
                let Some(Ok(digest)) = self.digest_of(reference) else {
                    continue;
                };
                for set in &entry.attestors {
                    let mut leaves = Vec::new();
                    for_each_leaf(set, &mut |a| leaves.push(a));
                    for attestor in leaves {
                        let request = SignatureRequest {
                            repository: signature_repository(image, entry, attestor).into_owned(),
                            digest: digest.clone(),
                        };
                        let key = OutcomeKey {
                            attestor: attestor_fingerprint(attestor).to_string(),
                            repository: request.repository.clone(),
                            digest: digest.clone(),
                        };
                        if self.outcomes.contains_key(&key) {
                            continue;
                        }
                        let outcome = match self.signatures.get(&request) {
                            Some(Ok(set)) => check_attestor(attestor, set, ctx),
                            Some(Err(f)) => AttestorOutcome::Error(f.to_string()),
                            None => continue,
                        };
                        self.outcomes.insert(key.clone(), outcome);
                        computed.push(key);
                    }
                }
            }
        }
        computed
    }
}
