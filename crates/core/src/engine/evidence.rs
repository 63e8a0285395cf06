//! What the caller fetched for a plan, and the attestor outcomes computed from it.

use std::collections::HashMap;

use crate::cosign::SignatureSet;
use crate::image::ImageRef;
use crate::image::digest::Digest;

use super::attestor::{AttestorOutcome, VerifyContext, check_attestor};
use super::plan::{Plan, SignatureRequest};

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
    /// The attestor's [`fingerprint`](crate::policy::Attestor::fingerprint).
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
            None => self.digests.get(image.normalized()).cloned(),
        }
    }

    /// Computes every attestor outcome the plan needs that is not known yet, and returns the
    /// keys it computed (callers may cache those).
    pub fn verify_missing(&mut self, plan: &Plan<'_>, ctx: VerifyContext<'_>) -> Vec<OutcomeKey> {
        let mut computed = Vec::new();
        let digests = &self.digests;
        let checks = plan.attestor_checks(&|r: &ImageRef| match r.digest() {
            Some(d) => Some(d.clone()),
            None => digests.get(r.normalized()).and_then(|d| d.clone().ok()),
        });
        for check in checks {
            if self.outcomes.contains_key(&check.key) {
                continue;
            }
            let outcome = match self.signatures.get(&check.request) {
                Some(Ok(set)) => check_attestor(check.attestor, set, ctx),
                Some(Err(f)) => AttestorOutcome::Error(f.to_string()),
                None => continue,
            };
            self.outcomes.insert(check.key.clone(), outcome);
            computed.push(check.key);
        }
        computed
    }
}
