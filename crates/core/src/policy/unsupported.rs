//! What a policy may say that sealgate does not evaluate yet, decided once when the policy is
//! loaded: a rule, a verifyImages entry, an attestor or an image extractor carries its
//! [`Unsupported`] reason, and the engine turns it into an `error` result (denied under Enforce)
//! without fetching anything for it.

use std::fmt;

use super::model::VerifierType;

/// A feature sealgate does not evaluate yet, with the words the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// A `context` entry sealgate does not evaluate.
    ContextEntry {
        /// The entry's name.
        name: String,
        /// What it is, in words (see [`context_entry_kind`]).
        what: &'static str,
    },
    /// The rule has `celPreconditions`.
    CelPreconditions,
    /// The entry is `type: Notary`.
    VerifierType(VerifierType),
    /// A key kept in a Kubernetes Secret.
    SecretKey {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A key in a KMS.
    KmsKey {
        /// The KMS URI.
        uri: String,
    },
    /// A key reference sealgate does not resolve.
    KeyReference {
        /// The reference as written.
        reference: String,
    },
    /// An attestor field holds a variable that does not resolve, or resolves to a value that
    /// is not a valid key or certificate.
    Variable {
        /// The located words: field, variable, where its value comes from, why.
        message: String,
    },
    /// An image extractor that post-processes the value with JMESPath.
    ExtractorJmesPath {
        /// The expression.
        expression: String,
    },
}

/// What a context entry sealgate does not evaluate is, in words; `None` for the entries it
/// evaluates (`configMap`, `variable`).
pub(crate) fn context_entry_kind(entry: &serde_json::Value) -> Option<&'static str> {
    const EVALUATED: &[&str] = &["configMap", "variable", "imageRegistry"];
    if EVALUATED.iter().any(|k| entry.get(k).is_some()) {
        return None;
    }
    Some(if entry.get("apiCall").is_some() {
        "an apiCall, which sealgate does not make (a call to the Kubernetes API or a service on every review, unbounded on the admission path)"
    } else if entry.get("globalReference").is_some() {
        "a globalReference (a Kyverno GlobalContextEntry), which sealgate does not read"
    } else {
        "of no kind sealgate knows (configMap, variable, imageRegistry, apiCall, globalReference)"
    })
}

impl Unsupported {
    /// Whether the words are about one image (the engine prefixes them with `image IMAGE: `).
    pub fn is_about_an_image(&self) -> bool {
        matches!(
            self,
            Unsupported::VerifierType(_) | Unsupported::ExtractorJmesPath { .. }
        )
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::ContextEntry { name, what } => write!(
                f,
                "context entry `{name}` is {what}; the rule cannot be evaluated"
            ),
            Unsupported::CelPreconditions => f.write_str(
                "the rule uses `celPreconditions`, which sealgate does not support yet; it cannot be evaluated",
            ),
            Unsupported::VerifierType(t) => {
                write!(
                    f,
                    "verifyImages type {t:?} is not supported yet; only Cosign and SigstoreBundle are"
                )
            }
            Unsupported::SecretKey { namespace, name } => write!(
                f,
                "the key in Secret {namespace}/{name} is not available: `sealgate serve --kubernetes` reads it when the Secret exists, holds a *.pub entry and sealgate may read it (RBAC: get/list/watch Secrets in {namespace}); `apply`, `test` and `serve --policies` do not read Secrets: paste the public key into publicKeys there"
            ),
            Unsupported::KmsKey { uri } => write!(
                f,
                "KMS keys ({uri}) are not supported yet; paste the public key into publicKeys"
            ),
            Unsupported::KeyReference { reference } => write!(
                f,
                "key reference '{reference}' is not supported; paste the PEM public key into publicKeys"
            ),
            Unsupported::Variable { message } => f.write_str(message),
            Unsupported::ExtractorJmesPath { expression } => write!(
                f,
                "imageExtractors jmesPath '{expression}' is not supported yet; the image cannot be checked"
            ),
        }
    }
}
