//! What the loader reports: [`PolicyError`]s (the policy is not loaded) and
//! [`PolicyWarning`]s (it is, but something deserves attention).
//!
//! Both carry the file, 1-based line and column, the policy and rule they concern, the JSON
//! path of the field, a specific message and, where one helps, a hint of what to do:
//!
//! ```text
//! seed.yaml:24:17: policy require-signed-images, rule check-signatures: spec.rules[0].verifyImages[0].attestors[0].entries[0].keys.publicKeys: line 2 of the PEM block ('# Paste the cosign.pub content here') is not base64 — paste the exact contents of cosign.pub, without comments
//! ```
//!
//! Messages Kyverno also produces keep Kyverno's wording, so that they can be searched for.

use std::fmt;

use crate::crypto::cert::CertError;
use crate::crypto::key::KeyError;
use crate::crypto::pem::PemErrorKind;

use super::path::JsonPath;
use super::yaml::YamlErrorKind;

/// Where a diagnostic points, and in which policy and rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The source name given to the loader (usually a file name).
    pub source: String,
    /// 1-based line; 0 for a source without lines (an object from the Kubernetes API).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The policy's name, once known.
    pub policy: Option<String>,
    /// The rule's name, inside a rule.
    pub rule: Option<String>,
    /// The field.
    pub path: JsonPath,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: a source without lines (an API object), named with the JSON path alone.
        if self.line == 0 {
            write!(f, "{}: ", self.source)?;
        } else {
            write!(f, "{}:{}:{}: ", self.source, self.line, self.column)?;
        }
        match (&self.policy, &self.rule) {
            (Some(policy), Some(rule)) => write!(f, "policy {policy}, rule {rule}: ")?,
            (Some(policy), None) => write!(f, "policy {policy}: ")?,
            _ => {}
        }
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        Ok(())
    }
}

/// A reason a policy cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: PolicyErrorKind,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.location, self.kind)?;
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// Something a loaded policy does that deserves attention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    /// Where.
    pub location: Location,
    /// What.
    pub kind: PolicyWarningKind,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.location, self.kind)?;
        if let Some(hint) = &self.hint {
            write!(f, " — {hint}")?;
        }
        Ok(())
    }
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrorKind {
    /// The text is not valid YAML, or cannot be JSON.
    #[error("{0}")]
    Yaml(YamlErrorKind),
    /// A document is a scalar or a sequence.
    #[error(
        "the document is not a mapping: a Kubernetes object starts with 'apiVersion:' and 'kind:'"
    )]
    NotAnObject,
    /// A kyverno.io version sealgate does not read.
    #[error(
        "apiVersion '{0}' is not supported: sealgate reads kyverno.io/v1 (and kyverno.io/v2beta1)"
    )]
    UnsupportedApiVersion(String),
    /// A field the schema does not have.
    #[error("unknown field '{field}'{}", suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    UnknownField {
        /// The field as written.
        field: String,
        /// The closest known field.
        suggestion: Option<String>,
    },
    /// A kyverno.io document of a kind Kyverno does not have.
    #[error("unknown kind '{kind}' for {api_version}{}", suggestion.map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    UnknownKind {
        /// The kind as written.
        kind: String,
        /// The apiVersion.
        api_version: String,
        /// The closest Kyverno kind.
        suggestion: Option<&'static str>,
    },
    /// A ClusterPolicy or Policy whose apiVersion is close to kyverno.io but is not it.
    #[error("apiVersion '{written}' is not a Kyverno group; did you mean '{suggestion}'?")]
    MisspelledApiVersion {
        /// The apiVersion as written.
        written: String,
        /// The likely intended apiVersion.
        suggestion: String,
    },
    /// A second policy of one kind, namespace and name.
    #[error("{kind} '{name}' is defined twice: first at {first}")]
    DuplicatePolicy {
        /// `ClusterPolicy` or `Policy` (with its namespace).
        kind: String,
        /// The name.
        name: String,
        /// `file:line` of the first definition.
        first: String,
    },
    /// A field of the wrong type, or a missing required field.
    #[error("{0}")]
    Decode(String),
    /// A variable Kyverno refuses when the policy runs in background scans.
    #[error(
        "only select variables are allowed in background mode: `{{{{ {expression} }}}}` reads {variable}, which a background scan does not have"
    )]
    VariableNotInBackground {
        /// The expression.
        expression: String,
        /// The user variable it reads.
        variable: &'static str,
    },
    /// A variable that is not a JMESPath expression (Kyverno refuses the policy).
    #[error("variable substitution failed for rule {rule}: {reason}")]
    BadVariable {
        /// The rule.
        rule: String,
        /// The parser's words.
        reason: String,
    },
    /// `preconditions` that Kyverno would refuse (an unknown operator, a missing key…).
    #[error("{0}")]
    Conditions(String),
    /// `metadata.name` is empty.
    #[error("metadata.name is required")]
    MissingName,
    /// `validationFailureActionOverrides` in a namespaced Policy.
    #[error("Use of validationFailureActionOverrides is supported only with ClusterPolicy")]
    OverridesOnNamespacedPolicy,
    /// One namespace both enforced and audited by overrides.
    #[error("conflicting namespaces found in path: {path}: {namespace}")]
    ConflictingOverrideNamespaces {
        /// The namespace pattern.
        namespace: String,
        /// The override listing it second.
        path: String,
    },
    /// `admission: false` with verifyImages.
    #[error("disabling admission processing is only allowed with validation policies")]
    AdmissionDisabled,
    /// The autogen annotation says `all`.
    #[error(
        "Autogen annotation does not support 'all' anymore, remove the annotation or set it to a valid value"
    )]
    AutogenAll,
    /// `timeoutSeconds` out of range.
    #[error("timeoutSeconds must be between 1 and 30, not {0}")]
    WebhookTimeout(i64),
    /// A rule without a name.
    #[error("a rule name is required")]
    MissingRuleName,
    /// A rule name longer than Kubernetes allows.
    #[error("rule name '{0}' is longer than 63 characters")]
    RuleNameTooLong(String),
    /// Two rules with one name.
    #[error("duplicate rule name '{0}'")]
    DuplicateRuleName(String),
    /// Several of mutate/validate/generate/verifyImages in one rule.
    #[error(
        "Multiple operations defined in the rule '{0}', only one operation (mutate,validate,generate,verifyImages) is allowed per rule"
    )]
    MultipleOperations(String),
    /// None of them.
    #[error(
        "No operation defined in the rule '{0}'.(supported operations: mutate,validate,generate,verifyImages)"
    )]
    NoOperation(String),
    /// `imageExtractors` outside a verifyImages rule.
    #[error(
        "Invalid rule spec for rule '{0}', imageExtractors can only be defined for verifyImages rule"
    )]
    ImageExtractorsWithoutVerifyImages(String),
    /// `match` says nothing.
    #[error("match is empty: the rule must say which resources it applies to")]
    MatchRequired,
    /// `any` and `all` together.
    #[error("can't specify any and all together")]
    MatchAnyAndAll,
    /// The legacy inline form mixed with `any`/`all`.
    #[error("'resources' cannot be combined with 'any' or 'all'")]
    MatchMixedForms,
    /// A match resource description without kinds.
    #[error("kinds is required: say which kinds of resources the rule applies to")]
    KindsRequired,
    /// `kinds: ["*"]` with verifyImages.
    #[error("wildcard policy does not support rule type")]
    WildcardKind,
    /// An operator other than In/NotIn/Exists/DoesNotExist.
    #[error("'{0}' is not a valid label selector operator: use In, NotIn, Exists or DoesNotExist")]
    BadSelectorOperator(String),
    /// In/NotIn without values, or Exists/DoesNotExist with values.
    #[error("operator {operator} {expectation}")]
    BadSelectorValues {
        /// The operator.
        operator: String,
        /// What it needs.
        expectation: &'static str,
    },
    /// An unknown admission operation.
    #[error("'{0}' is not an admission operation: use CREATE, UPDATE, DELETE or CONNECT")]
    BadOperation(String),
    /// No image reference after conversion.
    #[error("An image reference is required")]
    ImageReferenceRequired,
    /// `{{` in an image reference.
    #[error("rule \"{0}\" should not have variables in image reference section")]
    VariablesInImageReferences(String),
    /// Notary with keys.
    #[error("Keys field is not allowed for type notary")]
    NotaryKeys,
    /// Notary with keyless.
    #[error("Keyless field is not allowed for type notary")]
    NotaryKeyless,
    /// `count` larger than the entries.
    #[error("Count cannot exceed length of entries")]
    CountExceedsEntries,
    /// `count` below 1.
    #[error("count must be at least 1, not {0}")]
    CountBelowOne(i64),
    /// An attestor set without entries.
    #[error("An entry is required")]
    EntryRequired,
    /// An entry with none, or several, of keys/certificates/keyless/attestor.
    #[error("keys, certificates, keyless, or a nested attestor is required")]
    AttestorKindRequired,
    /// `keys` without a key.
    #[error("A public key, kms key or secret is required")]
    KeyRequired,
    /// A `signatureAlgorithm` that is not one of Kyverno's.
    #[error("Invalid signature algorithm provided: '{0}' (use sha256, sha384 or sha512)")]
    InvalidSignatureAlgorithm(String),
    /// `sha224`, which Kyverno accepts and sealgate cannot verify.
    #[error(
        "signature algorithm '{0}' is not supported by sealgate (use sha256, sha384 or sha512)"
    )]
    UnsupportedSignatureAlgorithm(String),
    /// `certificates` without a certificate.
    #[error("cert or certChain required")]
    CertRequired,
    /// `keyless` with neither a Rekor URL nor roots.
    #[error("Either Rekor URL or roots are required")]
    KeylessRekorOrRoots,
    /// `rekor` without `url` in a keyless attestor.
    #[error("An URL is required")]
    RekorUrlRequired,
    /// A malformed `k8s://` key reference.
    #[error("'{0}' is not a valid Secret reference: expected k8s://<namespace>/<name>")]
    BadSecretReference(String),
    /// A line inside a PEM block that is not base64 (a comment, a placeholder).
    #[error("line {line} of the PEM block ('{content}') is not base64")]
    PemCommentLine {
        /// 1-based line in the field's text.
        line: usize,
        /// The line, trimmed.
        content: String,
    },
    /// Any other PEM defect.
    #[error("line {line} of the PEM text: {kind}")]
    BadPem {
        /// 1-based line in the field's text.
        line: usize,
        /// The defect.
        kind: PemErrorKind,
    },
    /// A PEM body line of the wrong length: the base64 does not decode.
    #[error("{0}")]
    DamagedBase64(Base64Damage),
    /// Text outside the PEM blocks of `publicKeys`.
    #[error("line {line} ('{content}') is outside any PEM block")]
    TextOutsidePem {
        /// 1-based line in the field's text.
        line: usize,
        /// The line, trimmed.
        content: String,
    },
    /// A PEM block that is not a public key.
    #[error("the block at line {line} is a '{label}', not a PUBLIC KEY")]
    NotAPublicKey {
        /// 1-based line of its BEGIN line.
        line: usize,
        /// Its label.
        label: String,
    },
    /// A key that does not parse or is not usable.
    #[error("the PUBLIC KEY block at line {line}: {reason}")]
    BadKey {
        /// 1-based line of its BEGIN line.
        line: usize,
        /// What is wrong.
        reason: KeyError,
    },
    /// A certificate that does not parse.
    #[error("{0}")]
    BadCertificate(CertError),
    /// An attestation without a type.
    #[error("missing type: say which predicate type the attestation checks")]
    AttestationTypeMissing,
}

/// A PEM body whose base64 does not decode because a line was edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Damage {
    /// 1-based line (in the field's text) of the first line with the wrong length.
    pub line: usize,
    /// Its length.
    pub length: usize,
    /// The length of the other lines.
    pub expected: usize,
    /// What the body is when decoded anyway, if that is informative.
    pub decoded_anyway: Option<String>,
}

impl fmt::Display for Base64Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} of the PEM block has {} characters where the other lines have {}, so the base64 body does not decode",
            self.line, self.length, self.expected
        )?;
        if let Some(anyway) = &self.decoded_anyway {
            write!(f, "; decoded anyway, it is {anyway}")?;
        }
        Ok(())
    }
}

/// Something worth knowing about a policy that loads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyWarningKind {
    /// A field the schema does not have (Kubernetes would drop it silently).
    #[error("unknown field{}", suggestion.as_ref().map(|s| format!("; did you mean {s}?")).unwrap_or_else(|| " (Kubernetes would drop it silently)".into()))]
    UnknownField {
        /// The closest known field.
        suggestion: Option<String>,
    },
    /// `mutateDigest` in Audit mode: accepted by sealgate, rejected by Kyverno.
    #[error(
        "mutateDigest is true in Audit mode: in Audit, sealgate pins only digests that verified (Kyverno rejects this: mutateDigest must be set to false for 'Audit' failure action)"
    )]
    MutateDigestInAudit,
    /// An image pattern that cannot match a normalised image reference.
    #[error(
        "image pattern '{pattern}' never matches: images are matched in normalised form, such as 'docker.io/nginx:latest'"
    )]
    PatternNeverMatches {
        /// The pattern.
        pattern: String,
    },
    /// The rule matches only kinds without images.
    #[error(
        "the rule matches only kinds that hold no images ({kinds}): it never verifies anything"
    )]
    NoImageKinds {
        /// The kinds, comma-separated.
        kinds: String,
    },
    /// A mutate/validate/generate rule, ignored.
    #[error("this is a {0} rule: sealgate enforces only verifyImages rules and ignores it")]
    RuleTypeIgnored(&'static str),
    /// A policy without verifyImages rules, skipped.
    #[error("the policy has no verifyImages rule: sealgate skips it")]
    NoVerifyImagesRules,
    /// A feature sealgate reads but cannot evaluate yet.
    #[error(
        "{0} not supported yet: every image it applies to gets an error result (denied under Enforce, a warning under Audit)"
    )]
    NotSupportedYet(&'static str),
    /// A context entry sealgate does not evaluate.
    #[error(
        "context entry `{name}` is {what}: every image the rule applies to gets an error result (denied under Enforce, a warning under Audit)"
    )]
    ContextEntryNotEvaluated {
        /// The entry's name.
        name: String,
        /// What it is, in words.
        what: &'static str,
    },
    /// A member of a conditions block that is none of Kyverno's (`alll:`): ignored, as Kyverno
    /// ignores it.
    #[error("`{0}` is not a field of conditions: Kyverno ignores it, and so does sealgate")]
    IgnoredConditionField(String),
    /// A field sealgate reads but does not act on.
    #[error("{field} is not used by sealgate: {instead}")]
    NotUsed {
        /// The field.
        field: &'static str,
        /// What sealgate does instead.
        instead: &'static str,
    },
    /// A `rekor` block on a key or certificate attestor: a transparency-log proof is required.
    #[error(
        "this {attestor} attestor has a rekor block, so every signature must carry a transparency-log (Rekor) proof: signatures made without a Rekor upload, as `sealgate sign` makes them, will be refused"
    )]
    TlogRequired {
        /// `keys` or `certificates`.
        attestor: &'static str,
    },
    /// A `kyverno.io/v2beta1` document.
    #[error(
        "kyverno.io/v2beta1 is read as kyverno.io/v1: the verifyImages fields sealgate evaluates are the same in both"
    )]
    ReadAsV1,
    /// A key reference sealgate cannot resolve yet.
    #[error("{0} are not supported yet: images checked by this attestor will fail with an error")]
    UnsupportedKeySource(&'static str),
    /// Filters on request users.
    #[error(
        "subjects, roles and clusterRoles are not evaluated by sealgate: in match they are taken as satisfied, in exclude as not satisfied"
    )]
    UserInfoNotEvaluated,
    /// `predicateType` instead of `type`.
    #[error("predicateType has been deprecated use 'type: {0}' instead of 'predicateType: {0}'")]
    DeprecatedPredicateType(String),
    /// A deprecated verifyImages field, converted.
    #[error("'{field}' is deprecated: it was converted to {replacement}")]
    DeprecatedField {
        /// The field.
        field: &'static str,
        /// Where it went.
        replacement: &'static str,
    },
    /// Deprecated `additionalExtensions`, which Kyverno's conversion drops.
    #[error("the deprecated 'additionalExtensions' is ignored (Kyverno's conversion drops it)")]
    AdditionalExtensionsDropped,
    /// An attestor-level `signatureAlgorithm` that `keys` overrides.
    #[error(
        "signatureAlgorithm '{0}' is ignored for keys: Kyverno uses keys.signatureAlgorithm (default sha256)"
    )]
    EntrySignatureAlgorithmIgnored(String),
    /// An autogen annotation value that is not a pod controller.
    #[error("'{0}' is not a pod controller: autogen ignores it")]
    UnknownAutogenController(String),
    /// `required: true` without attestors or attestations.
    #[error(
        "required is true but the entry has no attestors or attestations: every matching image will be reported unverified"
    )]
    RequiredWithoutChecks,
    /// Several certificates in `cert`.
    #[error("cert holds {0} certificates: only the first is used")]
    SeveralCertificates(usize),
    /// Several keys inside an attestation's attestors.
    #[error(
        "publicKeys holds {0} keys: inside attestations Kyverno does not expand keys, only the first is used"
    )]
    KeysNotExpanded(usize),
    /// A keyless attestor without `subject`, `issuer`, their regexps or `additionalExtensions`.
    #[error(
        "this keyless attestor names no subject, issuer or extension: any certificate from the Fulcio roots passes, whoever it was issued to (Kyverno does the same)"
    )]
    KeylessWithoutIdentity,
    /// An attestation without `attestors`: Kyverno's implicit keyless attestor.
    #[error(
        "this attestation has no attestors: as Kyverno, it is checked with an implicit keyless attestor, so a signature by any identity the Fulcio roots certify passes (with its Rekor bundle)"
    )]
    AttestationWithoutAttestors,
    /// `validate.deny` on an entry without `attestations`: Kyverno checks it only after them.
    #[error(
        "validate.deny is checked only after the entry's attestations, as in Kyverno, and this entry has none: it is never checked"
    )]
    DenyWithoutAttestations,
    /// `subjectRegExp` or `issuerRegExp` that does not compile.
    #[error(
        "{field} is not a valid regular expression ({reason}): every image this attestor checks fails, as Kyverno fails it ('invalid regexp')"
    )]
    InvalidIdentityRegexp {
        /// `subjectRegExp` or `issuerRegExp`.
        field: &'static str,
        /// The compiler's complaint.
        reason: String,
    },
    /// An `additionalExtensions` key Kyverno does not know.
    #[error(
        "'{0}' is not a certificate extension Kyverno knows (oidcIssuer, githubWorkflowTrigger, githubWorkflowSha, githubWorkflowName, githubWorkflowRepository, githubWorkflowRef, or their OIDs 1.3.6.1.4.1.57264.1.1 to .1.6): every image this attestor checks fails, as Kyverno fails it ('invalid certificate extension')"
    )]
    UnknownCertificateExtension(String),
    /// `metadata.namespace` on a ClusterPolicy.
    #[error("a ClusterPolicy is not namespaced: metadata.namespace is ignored")]
    NamespaceIgnored,
    /// A Policy without `metadata.namespace`.
    #[error("the Policy has no metadata.namespace: it applies in namespace 'default'")]
    NamespaceDefaulted,
}

/// A hint for an error, given the field it concerns.
pub(crate) fn error_hint(kind: &PolicyErrorKind, path: &JsonPath) -> Option<String> {
    let field = path.last_field().unwrap_or("");
    let in_cert = matches!(field, "cert" | "certChain" | "roots" | "tsaCertChain");
    let hint = match kind {
        PolicyErrorKind::PemCommentLine { .. } | PolicyErrorKind::TextOutsidePem { .. } => {
            if in_cert {
                "paste the exact PEM of the certificate, without comments (YAML comments belong outside the block)"
            } else if field == "publicKeys" || field == "key" {
                "paste the exact contents of cosign.pub, without comments"
            } else {
                "PEM blocks hold only base64 lines between BEGIN and END: remove the line"
            }
        }
        PolicyErrorKind::BadPem { .. } | PolicyErrorKind::DamagedBase64(_) => {
            if in_cert {
                "paste the certificate's PEM again, complete and unedited"
            } else {
                "paste the exact contents of cosign.pub, complete and unedited"
            }
        }
        PolicyErrorKind::BadKey { reason, .. } => match reason {
            KeyError::PointNotOnCurve { .. } => {
                "this is not a real public key (it was edited or made up): paste the exact contents of cosign.pub ('cosign public-key --key cosign.key' prints it)"
            }
            _ => "paste the exact contents of cosign.pub",
        },
        PolicyErrorKind::NotAPublicKey { label, .. } if label.contains("PRIVATE") => {
            "this is a private key: paste cosign.pub, never cosign.key"
        }
        PolicyErrorKind::NotAPublicKey { .. } => "publicKeys takes PUBLIC KEY blocks (cosign.pub)",
        PolicyErrorKind::BadCertificate(CertError::NotDer { .. }) => {
            "the certificate is a placeholder or was edited: paste the signing certificate's PEM exactly as issued"
        }
        PolicyErrorKind::BadCertificate(_) => "paste the certificate's PEM exactly as issued",
        PolicyErrorKind::CountExceedsEntries => {
            "lower count, or add entries (count 1 means any one entry, omitting it means all)"
        }
        PolicyErrorKind::CountBelowOne(_) => "omit count to require every entry",
        PolicyErrorKind::AttestorKindRequired => {
            "give each entry exactly one of keys, certificates, keyless or attestor"
        }
        PolicyErrorKind::ImageReferenceRequired => {
            "add imageReferences, e.g. [\"registry.example.com/*\"]"
        }
        PolicyErrorKind::VariablesInImageReferences(_) => {
            "image references must be literal patterns"
        }
        PolicyErrorKind::WildcardKind => "name the kinds, e.g. Pod (autogen covers controllers)",
        PolicyErrorKind::VariableNotInBackground { .. } => {
            "set spec.background: false to disable background mode for this policy, as Kyverno asks"
        }
        PolicyErrorKind::BadVariable { .. } => {
            "write a JMESPath expression between {{ and }} (or \\{{ for literal braces)"
        }
        PolicyErrorKind::AdmissionDisabled => "remove 'admission: false'",
        PolicyErrorKind::OverridesOnNamespacedPolicy => {
            "use a ClusterPolicy, or set failureAction on the verifyImages entries"
        }
        PolicyErrorKind::KeylessRekorOrRoots | PolicyErrorKind::RekorUrlRequired => {
            "add rekor: {url: https://rekor.sigstore.dev}, or roots"
        }
        PolicyErrorKind::UnknownField { .. } => {
            "correct or remove the field: the Kubernetes API server refuses unknown fields under strict field validation (pass --allow-unknown-fields to drop them with a warning, as a lenient server would)"
        }
        PolicyErrorKind::UnknownKind { .. } => {
            "sealgate enforces kyverno.io/v1 ClusterPolicy and Policy documents"
        }
        PolicyErrorKind::MisspelledApiVersion { .. } => "write apiVersion: kyverno.io/v1",
        PolicyErrorKind::DuplicatePolicy { .. } => {
            "rename one of them: in a cluster the second would replace the first (this one is not loaded)"
        }
        PolicyErrorKind::MultipleOperations(_) => "split the rule into one rule per operation",
        PolicyErrorKind::UnsupportedSignatureAlgorithm(_)
        | PolicyErrorKind::InvalidSignatureAlgorithm(_) => {
            "sign with sha256 (cosign's default) and remove signatureAlgorithm"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// A hint for a warning.
pub(crate) fn warning_hint(kind: &PolicyWarningKind) -> Option<String> {
    let hint = match kind {
        PolicyWarningKind::MutateDigestInAudit => {
            "set failureAction: Enforce, or mutateDigest: false to leave tags alone".to_string()
        }
        PolicyWarningKind::PatternNeverMatches { pattern } => {
            format!("write 'docker.io/{pattern}' for Docker Hub images, or the registry host first")
        }
        PolicyWarningKind::NoImageKinds { .. } => {
            "match Pod (autogen covers controllers), or add imageExtractors for the kind".into()
        }
        PolicyWarningKind::RuleTypeIgnored(_) => "run it with Kyverno".into(),
        PolicyWarningKind::RequiredWithoutChecks => "add attestors, or set required: false".into(),
        PolicyWarningKind::NotSupportedYet(_) => {
            "remove it, or keep this policy with Kyverno until sealgate supports it".into()
        }
        PolicyWarningKind::IgnoredConditionField(_) => {
            "write `any` or `all` (a list of key/operator/value conditions)".into()
        }
        PolicyWarningKind::ContextEntryNotEvaluated { .. } => {
            "take the value from a configMap or variable entry, or keep this policy with Kyverno".into()
        }
        PolicyWarningKind::TlogRequired { .. } => {
            "add ignoreTlog: true under rekor if the images are signed without a Rekor upload, or sign with a tool that uploads to Rekor".into()
        }
        PolicyWarningKind::UnsupportedKeySource(_) => {
            "paste the public key PEM into publicKeys".into()
        }
        PolicyWarningKind::KeylessWithoutIdentity => {
            "add subject (e.g. 'https://github.com/ORG/*') and issuer (e.g. 'https://token.actions.githubusercontent.com')".into()
        }
        PolicyWarningKind::AttestationWithoutAttestors => {
            "add attestors naming the key, certificate or keyless identity that signs the attestation".into()
        }
        PolicyWarningKind::DenyWithoutAttestations => {
            "add the attestations whose predicates the conditions read, or remove validate.deny".into()
        }
        PolicyWarningKind::InvalidIdentityRegexp { .. } => {
            "write an RE2 regular expression (Go's regexp syntax), or use subject/issuer with wildcards".into()
        }
        _ => return None,
    };
    Some(hint)
}
