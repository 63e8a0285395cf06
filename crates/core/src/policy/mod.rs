//! Kyverno `ClusterPolicy` / `Policy` documents with `verifyImages` rules: loading and model.
//!
//! sealgate enforces Kyverno policies unchanged. This module turns policy text into
//! [`Policy`] values the decision engine can evaluate, without network, files or clock:
//!
//! * [`yaml`]: YAML/JSON text → JSON values with a [`SourceMap`] (line and column of every node,
//!   including the lines inside `|` block scalars);
//! * [`model`]: the kyverno.io/v1 documents as written, with CRD defaults;
//! * [`load()`]: decoding, deprecated-field conversion, Kyverno's validation, key and
//!   certificate parsing (several PEM keys in one `publicKeys` become separate entries),
//!   autogen; every problem becomes a located [`PolicyError`] or [`PolicyWarning`];
//! * [`Policy`], [`Rule`], [`ImageVerification`], [`AttestorSet`]…: the compiled policy, with
//!   helpers for the engine: [`Rule::matches`], [`Rule::image_source`],
//!   [`Policy::failure_action`], [`AttestorSet::required_count`];
//! * [`autogen`]: Kyverno's pod-controller rules.
//!
//! Start with [`load()`]:
//!
//! ```
//! let text = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      failureAction: Enforce\n      required: false\n";
//! let outcome = sealgate_core::policy::load("policy.yaml", text);
//! assert!(outcome.errors.is_empty());
//! assert_eq!(outcome.policies[0].rules[0].name, "r");
//! // Autogen adds the controller and CronJob rules.
//! assert_eq!(outcome.policies[0].autogen_rules.len(), 2);
//! ```

pub mod autogen;
mod compiled;
pub mod conditions;
mod de;
pub mod error;
pub mod functions;
mod go_duration;
mod go_float;
mod load;
pub mod matching;
pub mod model;
pub mod path;
mod quantity;
mod semver;
mod unsupported;
pub mod values;
pub mod variables;
pub mod yaml;

#[cfg(test)]
mod tests;

pub use compiled::{
    Attestation, Attestor, AttestorKind, AttestorSet, CertificateAttestor, CtLogSettings,
    DEFAULT_REKOR_URL, DenyCheck, FailureAction, FailureActionOverride, FailureActionSource,
    Fingerprint, ImageSource, ImageValidation, ImageVerification, KeyAttestor, KeySource,
    KeylessAttestor, Policy, PolicyKind, RegistryCredentials, RekorSettings, ResolvedFailureAction,
    Rule, RuleOrigin, pod_spec_pointer,
};
pub use error::{
    Base64Damage, Location, PolicyError, PolicyErrorKind, PolicyWarning, PolicyWarningKind,
};
pub use load::{
    LoadOptions, LoadOutcome, RequestScope, RuleInstance, SkippedDocument, load, load_with,
    load_with_context, remove_duplicate_policies,
};
pub use matching::{Operation, ResourceMeta};
pub use model::{ApplyRules, FailurePolicy, VerifierType};
pub use path::{JsonPath, Segment};
pub use unsupported::Unsupported;
pub use values::Values;
pub use variables::{ContextValues, ImageDataSet};
pub use yaml::{Document, Position, SourceMap};
