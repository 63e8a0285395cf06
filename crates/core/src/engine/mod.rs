//! The decision engine: Kyverno `verifyImages` semantics as one evaluation per resource.
//!
//! An [`Evaluation`] plans which rules apply to a [`Resource`] and which of its images each
//! checks ([`plan()`]), tells its caller what it wants fetched ([`Want`]: tag digests, cached
//! outcomes, `.sig` sets), checks the signatures it was given ([`check_attestor`]: keys,
//! certificates, Rekor bundles) and decides ([`Decision`]): AND across attestor sets,
//! count-of-N within a set, Enforce or Audit per rule, the denial message, warnings, and the
//! JSON patch (digest pins and the `kyverno.io/verify-images` annotation).
//!
//! No step does I/O or reads a clock: the caller fetches, and the time is in
//! [`VerifyContext`].

mod attestation;
mod attestor;
mod bundle;
mod decide;
mod evaluation;
mod outcome;
mod plan;
mod request;
mod resource;

pub use attestation::{
    AttestationFailure, AttestationRefusal, VerifiedAttestation, check_attestation,
    verify_attestations,
};
pub use attestor::{VerifyContext, check_attestor};
pub use bundle::{
    BundleFailure, BundleRefusal, bundle_layer, check_bundle, check_bundle_attestation,
    check_bundle_signature, check_bundles,
};
pub use decide::{Decision, ImageResult, RuleResult, Status, VERIFY_IMAGES_ANNOTATION};
pub use evaluation::{Evaluation, Finished, Want};
pub use outcome::{
    Absent, Artifact, AttestorFailure, AttestorOutcome, BUNDLE_VERIFICATION_FAILED,
    CACHED_PREDICATE_BYTES, CannotEvaluate, CertificateRefusal, FetchFailure, FetchFailureKind,
    FetchReason, OutcomeKey, Reason, SignatureRequest, TlogRefusal, Verified, Waiting,
};
pub use plan::{ImageCheck, Mode, Plan, RulePlan, RuleRef, RuleState, plan, plan_at};
pub use request::request_variables;
pub use resource::{ExtractedImage, Resource, ResourceError};

#[cfg(test)]
mod alias_tests;
#[cfg(test)]
mod bundle_evaluation_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod variable_tests;
