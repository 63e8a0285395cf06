//! The decision engine: Kyverno `verifyImages` semantics as three pure steps.
//!
//! 1. [`plan()`]: which rules apply to a [`Resource`], which of its images each checks, and what
//!    must be fetched ([`Plan::digest_requests`], [`Plan::signature_requests`]);
//! 2. the caller fetches (tag digests, `.sig` images) into an [`Evidence`], then
//!    [`Evidence::verify_missing`] checks signatures, bundles and certificates (pure, CPU);
//! 3. [`decide()`]: AND across attestor sets, count-of-N within a set, Enforce or Audit per rule,
//!    the denial message, warnings, and the JSON patch (digest pins and the
//!    `kyverno.io/verify-images` annotation).
//!
//! No step does I/O or reads a clock: the time is in [`VerifyContext`].

mod attestor;
mod decide;
mod evidence;
mod plan;
mod resource;

pub use attestor::{AttestorOutcome, VerifyContext, check_attestor};
pub use decide::{Decision, ImageResult, RuleResult, Status, VERIFY_IMAGES_ANNOTATION, decide};
pub use evidence::{Evidence, FetchFailure, OutcomeKey};
pub use plan::{
    AttestorCheck, ImageCheck, Plan, RulePlan, SignatureRequest, plan, signature_repository,
};
pub use resource::{ExtractedImage, Resource, ResourceError};

#[cfg(test)]
mod tests;
