//! The kyverno.io/v1 `ClusterPolicy` / `Policy` documents as written, decoded from JSON.
//!
//! These types mirror Kyverno's Go API (`api/kyverno/v1`) field for field, for the parts sealgate
//! reads: metadata, the spec settings that decide failure handling, rules with `match`/`exclude`,
//! and every `verifyImages` field. Decoding applies the CRD defaults the API server (and
//! Kyverno's CLI) would inject: `mutateDigest`, `verifyDigest`, `required` and `useCache` are
//! `true`, `validationFailureAction` is `Audit`, `background` and `admission` are `true`.
//! `signatureAlgorithm` is kept as written (`None` when absent) because Kyverno's precedence
//! between the entry-level and the `keys`-level value depends on what was written; the loader
//! resolves it.
//!
//! Fields sealgate does not evaluate (`context`, `preconditions`, `mutate`, `validate`,
//! `generate`, attestation `conditions`, `validate.deny`) are kept as raw JSON.
//!
//! The loader ([`super::load`]) turns these into the engine's [`super::Policy`] after
//! [`ImageVerification::convert`] and validation; most callers never need this module.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

fn yes() -> bool {
    true
}

/// `metadata` of a policy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.namespace` (only meaningful for a namespaced `Policy`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`; `pod-policies.kyverno.io/autogen-controllers` and
    /// `policies.kyverno.io/{category,severity,scored}` matter.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Server-managed and other standard fields, accepted and ignored.
    #[serde(default)]
    pub generate_name: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub uid: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub resource_version: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub generation: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub creation_timestamp: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub deletion_timestamp: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub deletion_grace_period_seconds: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub owner_references: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub finalizers: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub managed_fields: Option<Value>,
    /// Ignored.
    #[serde(default)]
    pub self_link: Option<Value>,
}

/// A whole `ClusterPolicy` or `Policy` document.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDocument {
    /// `kyverno.io/v1`.
    pub api_version: String,
    /// `ClusterPolicy` or `Policy`.
    pub kind: String,
    /// Name, namespace, labels, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The policy.
    pub spec: Spec,
    /// Written by Kyverno; ignored.
    #[serde(default)]
    pub status: Option<Value>,
}

/// `validationFailureAction` and override `action`: the CRD accepts both spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SpecFailureAction {
    /// `Audit` or `audit`.
    #[serde(alias = "audit")]
    Audit,
    /// `Enforce` or `enforce`.
    #[serde(alias = "enforce")]
    Enforce,
}

/// `failureAction` of a verifyImages entry (case-sensitive in the CRD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum FailureAction {
    /// Report and allow.
    Audit,
    /// Block.
    Enforce,
}

impl From<SpecFailureAction> for FailureAction {
    fn from(action: SpecFailureAction) -> Self {
        match action {
            SpecFailureAction::Audit => FailureAction::Audit,
            SpecFailureAction::Enforce => FailureAction::Enforce,
        }
    }
}

/// `spec.applyRules`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ApplyRules {
    /// Apply every matching rule (default).
    #[default]
    All,
    /// Stop after the first rule that passed or failed.
    One,
}

/// `spec.failurePolicy` / `spec.webhookConfiguration.failurePolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum FailurePolicy {
    /// Errors block the request (default).
    #[default]
    Fail,
    /// Errors let the request through.
    Ignore,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    /// Deprecated policy-wide failure action; CRD default `Audit`.
    #[serde(default = "audit")]
    pub validation_failure_action: SpecFailureAction,
    /// Per-namespace failure actions (ClusterPolicy only).
    #[serde(default)]
    pub validation_failure_action_overrides: Vec<FailureActionOverride>,
    /// Background scans of existing resources; CRD default `true`.
    #[serde(default = "yes")]
    pub background: bool,
    /// Admission processing; CRD default `true`, must stay `true` with verifyImages.
    #[serde(default = "yes")]
    pub admission: bool,
    /// Emit warnings for every non-skip result.
    #[serde(default)]
    pub emit_warning: bool,
    /// `All` (default) or `One`.
    #[serde(default)]
    pub apply_rules: Option<ApplyRules>,
    /// Deprecated failure policy (use `webhookConfiguration.failurePolicy`).
    #[serde(default)]
    pub failure_policy: Option<FailurePolicy>,
    /// Webhook settings.
    #[serde(default)]
    pub webhook_configuration: Option<WebhookConfiguration>,
    /// Deprecated webhook timeout.
    #[serde(default)]
    pub webhook_timeout_seconds: Option<i64>,
    /// Accepted, not used by sealgate.
    #[serde(default)]
    pub schema_validation: Option<Value>,
    /// Accepted, not used by sealgate.
    #[serde(default)]
    pub generate_existing: Option<Value>,
    /// Accepted, not used by sealgate.
    #[serde(default)]
    pub generate_existing_on_policy_update: Option<Value>,
    /// Accepted, not used by sealgate.
    #[serde(default)]
    pub mutate_existing_on_policy_update: Option<Value>,
    /// Accepted, not used by sealgate.
    #[serde(default)]
    pub use_server_side_apply: Option<Value>,
}

fn audit() -> SpecFailureAction {
    SpecFailureAction::Audit
}

/// `spec.webhookConfiguration`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    /// Failure policy of the webhook.
    #[serde(default)]
    pub failure_policy: Option<FailurePolicy>,
    /// Timeout, 1 to 30 seconds.
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    /// CEL match conditions; kept raw.
    #[serde(default)]
    pub match_conditions: Option<Value>,
}

/// One entry of `spec.validationFailureActionOverrides`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureActionOverride {
    /// The action for the namespaces below.
    pub action: SpecFailureAction,
    /// Namespace patterns (wildcards allowed); absent means any namespace.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// Namespace label selector.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist` (checked by the loader).
    pub operator: String,
    /// Values for `In`/`NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// One rule of `spec.rules`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleSpec {
    /// Rule name (unique in the policy, at most 63 characters).
    #[serde(default)]
    pub name: String,
    /// Which resources the rule applies to.
    #[serde(default, rename = "match")]
    pub match_resources: MatchResources,
    /// Which resources it does not apply to.
    #[serde(default)]
    pub exclude: Option<MatchResources>,
    /// Context entries (ConfigMaps, API calls, variables); kept raw.
    #[serde(default)]
    pub context: Vec<Value>,
    /// JMESPath preconditions; kept raw.
    #[serde(default)]
    pub preconditions: Option<Value>,
    /// CEL preconditions; kept raw.
    #[serde(default)]
    pub cel_preconditions: Option<Value>,
    /// A mutate rule (not evaluated by sealgate).
    #[serde(default)]
    pub mutate: Option<Value>,
    /// A validate rule (not evaluated by sealgate).
    #[serde(default)]
    pub validate: Option<Value>,
    /// A generate rule (not evaluated by sealgate).
    #[serde(default)]
    pub generate: Option<Value>,
    /// The image verification entries.
    #[serde(default)]
    pub verify_images: Option<Vec<ImageVerification>>,
    /// Custom image locations per resource kind.
    #[serde(default)]
    pub image_extractors: Option<BTreeMap<String, Vec<ImageExtractorConfig>>>,
    /// Skip background requests; accepted, not used.
    #[serde(default)]
    pub skip_background_requests: Option<Value>,
    /// Extra report properties.
    #[serde(default)]
    pub report_properties: BTreeMap<String, String>,
}

impl RuleSpec {
    /// The rule types present, in Kyverno's order. As in Kyverno, an empty `mutate`,
    /// `validate` or `generate` object and an empty `verifyImages` list do not count.
    pub fn rule_types(&self) -> Vec<&'static str> {
        let present = |v: &Option<Value>| match v {
            None | Some(Value::Null) => false,
            Some(Value::Object(map)) => !map.is_empty(),
            Some(_) => true,
        };
        let mut types = Vec::new();
        if present(&self.mutate) {
            types.push("mutate");
        }
        if present(&self.validate) {
            types.push("validate");
        }
        if present(&self.generate) {
            types.push("generate");
        }
        if self.has_verify_images() {
            types.push("verifyImages");
        }
        types
    }

    /// Whether the rule has at least one verifyImages entry.
    pub fn has_verify_images(&self) -> bool {
        self.verify_images.as_ref().is_some_and(|v| !v.is_empty())
    }
}

/// `match` / `exclude`: `any`, `all`, or the legacy inline form.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    /// Matches when any filter matches.
    #[serde(default)]
    pub any: Vec<ResourceFilter>,
    /// Matches when every filter matches.
    #[serde(default)]
    pub all: Vec<ResourceFilter>,
    /// Legacy form: a single resource description.
    #[serde(default)]
    pub resources: Option<ResourceDescription>,
    /// Legacy form: request subjects (users, groups, service accounts); kept raw.
    #[serde(default)]
    pub subjects: Vec<Value>,
    /// Legacy form: namespaced roles of the requester.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Legacy form: cluster roles of the requester.
    #[serde(default)]
    pub cluster_roles: Vec<String>,
}

impl MatchResources {
    /// Whether nothing at all is specified.
    pub fn is_empty(&self) -> bool {
        self.any.is_empty()
            && self.all.is_empty()
            && self
                .resources
                .as_ref()
                .is_none_or(ResourceDescription::is_empty)
            && self.subjects.is_empty()
            && self.roles.is_empty()
            && self.cluster_roles.is_empty()
    }

    /// Every resource description (`resources`, `any[*].resources`, `all[*].resources`).
    pub fn descriptions(&self) -> impl Iterator<Item = &ResourceDescription> {
        self.resources.iter().chain(
            self.any
                .iter()
                .chain(self.all.iter())
                .filter_map(|f| f.resources.as_ref()),
        )
    }

    /// Every kind named anywhere (Kyverno's `GetKinds`).
    pub fn kinds(&self) -> Vec<&str> {
        self.descriptions()
            .flat_map(|d| d.kinds.iter().map(String::as_str))
            .collect()
    }
}

/// One entry of `any` / `all`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// The resource conditions.
    #[serde(default)]
    pub resources: Option<ResourceDescription>,
    /// Request subjects; kept raw.
    #[serde(default)]
    pub subjects: Vec<Value>,
    /// Namespaced roles of the requester.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Cluster roles of the requester.
    #[serde(default)]
    pub cluster_roles: Vec<String>,
}

impl ResourceFilter {
    /// Whether the filter names request users (which sealgate cannot see in every mode).
    pub fn has_user_info(&self) -> bool {
        !self.subjects.is_empty() || !self.roles.is_empty() || !self.cluster_roles.is_empty()
    }
}

/// Conditions on a resource.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescription {
    /// Kinds: `Pod`, `v1/Pod`, `apps/v1/Deployment`, `*`.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Deprecated single name pattern.
    #[serde(default)]
    pub name: Option<String>,
    /// Name patterns (wildcards).
    #[serde(default)]
    pub names: Vec<String>,
    /// Namespace patterns (wildcards).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Annotations the resource must carry (wildcards in keys and values).
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Resource label selector.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Namespace label selector.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Admission operations: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    #[serde(default)]
    pub operations: Vec<String>,
}

impl ResourceDescription {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
            && self.name.is_none()
            && self.names.is_empty()
            && self.namespaces.is_empty()
            && self.annotations.is_none()
            && self.selector.is_none()
            && self.namespace_selector.is_none()
            && self.operations.is_empty()
    }
}

/// `imageExtractors.<Kind>[]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageExtractorConfig {
    /// Slash-separated path; `*` expands arrays and maps.
    pub path: String,
    /// Field holding the image (default: last path segment).
    #[serde(default)]
    pub value: Option<String>,
    /// Group name under `images.<name>` (default `custom`).
    #[serde(default)]
    pub name: Option<String>,
    /// Field used as the map key.
    #[serde(default)]
    pub key: Option<String>,
    /// JMESPath applied to the value.
    #[serde(default)]
    pub jmes_path: Option<String>,
}

/// `verifyImages[].type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
pub enum VerifierType {
    /// cosign signatures in `<repo>:sha256-<hex>.sig` (default).
    #[default]
    Cosign,
    /// Sigstore bundles attached as OCI referrers.
    SigstoreBundle,
    /// Notary v2 signatures.
    Notary,
}

/// One `verifyImages` entry (`ImageVerification`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerification {
    /// Per-entry failure action.
    #[serde(default)]
    pub failure_action: Option<FailureAction>,
    /// The verifier; `Cosign` when absent.
    #[serde(default, rename = "type")]
    pub verifier_type: Option<VerifierType>,
    /// Deprecated: a single image pattern (converted into `imageReferences`).
    #[serde(default)]
    pub image: Option<String>,
    /// Image patterns this entry applies to.
    #[serde(default)]
    pub image_references: Vec<String>,
    /// Image patterns skipped.
    #[serde(default)]
    pub skip_image_references: Vec<String>,
    /// Deprecated: a public key (converted into an attestor).
    #[serde(default)]
    pub key: Option<String>,
    /// Deprecated: keyless roots.
    #[serde(default)]
    pub roots: Option<String>,
    /// Deprecated: keyless subject.
    #[serde(default)]
    pub subject: Option<String>,
    /// Deprecated: keyless issuer.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Deprecated: keyless certificate extensions (dropped by Kyverno's conversion).
    #[serde(default)]
    pub additional_extensions: BTreeMap<String, String>,
    /// Signature checks; every set must pass.
    #[serde(default)]
    pub attestors: Vec<AttestorSet>,
    /// In-toto attestation checks.
    #[serde(default)]
    pub attestations: Vec<Attestation>,
    /// Deprecated: required signature annotations (moved onto the converted attestor).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alternate repository holding signatures.
    #[serde(default)]
    pub repository: String,
    /// Look for signatures via OCI 1.1 referrers first.
    #[serde(default, rename = "cosignOCI11")]
    pub cosign_oci11: bool,
    /// Replace tags by digests; CRD default `true`.
    #[serde(default = "yes")]
    pub mutate_digest: bool,
    /// Require digests in the validating webhook; CRD default `true`.
    #[serde(default = "yes")]
    pub verify_digest: bool,
    /// Require a verification annotation in the validating webhook; CRD default `true`.
    #[serde(default = "yes")]
    pub required: bool,
    /// Use the verification cache; CRD default `true`.
    #[serde(default = "yes")]
    pub use_cache: bool,
    /// Registry credentials for this entry.
    #[serde(default)]
    pub image_registry_credentials: Option<ImageRegistryCredentials>,
    /// Cross-attestation deny check.
    #[serde(default)]
    pub validate: Option<ValidateImage>,
}

impl ImageVerification {
    /// Kyverno's `Convert()` (§1.8): moves the deprecated `image`, `key`, `issuer`, `subject`,
    /// `roots` and `annotations` into `imageReferences` and a new attestor set. Does nothing
    /// unless `image`, `key` or `issuer` is set.
    ///
    /// When `attestations` exist the new set is added to each attestation's attestors, as
    /// Kyverno's code intends (its current code then discards that copy, which silently drops
    /// the key; sealgate keeps it).
    pub fn convert(&mut self) {
        let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if !has(&self.image) && !has(&self.key) && !has(&self.issuer) {
            return;
        }
        if let Some(image) = self.image.take().filter(|s| !s.is_empty()) {
            self.image_references.push(image);
        }
        let issuer = self.issuer.take().filter(|s| !s.is_empty());
        let subject = self.subject.take().filter(|s| !s.is_empty());
        let roots = self.roots.take().filter(|s| !s.is_empty());
        let key = self.key.take().filter(|s| !s.is_empty());
        let annotations = std::mem::take(&mut self.annotations);
        if annotations.is_empty() && key.is_none() && issuer.is_none() {
            return;
        }
        let mut attestor = Attestor {
            annotations,
            ..Attestor::default()
        };
        if let Some(key) = key {
            attestor.keys = Some(StaticKeyAttestor {
                public_keys: Some(key),
                ..StaticKeyAttestor::default()
            });
        } else if let Some(issuer) = issuer {
            attestor.keyless = Some(KeylessAttestor {
                issuer: Some(issuer),
                subject,
                roots,
                ..KeylessAttestor::default()
            });
        }
        let set = AttestorSet {
            count: None,
            entries: vec![attestor],
        };
        if self.attestations.is_empty() {
            self.attestors.push(set);
        } else {
            for attestation in &mut self.attestations {
                attestation.attestors.push(set.clone());
            }
        }
    }
}

/// `attestors[]`: entries of which `count` must verify.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestorSet {
    /// How many entries must verify; absent means all.
    #[serde(default)]
    pub count: Option<i64>,
    /// The entries.
    #[serde(default)]
    pub entries: Vec<Attestor>,
}

/// One attestor entry: exactly one of `keys`, `certificates`, `keyless`, `attestor`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestor {
    /// Static public keys.
    #[serde(default)]
    pub keys: Option<StaticKeyAttestor>,
    /// Certificates.
    #[serde(default)]
    pub certificates: Option<CertificateAttestor>,
    /// Keyless (Fulcio) identities.
    #[serde(default)]
    pub keyless: Option<KeylessAttestor>,
    /// A nested attestor set.
    #[serde(default)]
    pub attestor: Option<Box<AttestorSet>>,
    /// Annotations some verified signature must carry.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Alternate signature repository for this entry.
    #[serde(default)]
    pub repository: String,
    /// Signature hash (`sha256` when absent); superseded by `keys.signatureAlgorithm`.
    #[serde(default)]
    pub signature_algorithm: Option<String>,
}

/// `keys`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeyAttestor {
    /// PEM keys (several allowed) or a reference (`k8s://ns/name`, a KMS URI).
    #[serde(default)]
    pub public_keys: Option<String>,
    /// Signature hash; `sha256` when absent.
    #[serde(default)]
    pub signature_algorithm: Option<String>,
    /// A KMS key URI.
    #[serde(default)]
    pub kms: Option<String>,
    /// A Secret holding `cosign.pub`.
    #[serde(default)]
    pub secret: Option<SecretReference>,
    /// Transparency log settings.
    #[serde(default)]
    pub rekor: Option<Rekor>,
    /// Certificate transparency settings.
    #[serde(default)]
    pub ctlog: Option<CtLog>,
}

/// `keys.secret`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
}

/// `certificates`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAttestor {
    /// Signing certificate: PEM, or base64 of PEM.
    #[serde(default)]
    pub cert: Option<String>,
    /// Chain up to the root: PEM.
    #[serde(default)]
    pub cert_chain: Option<String>,
    /// Transparency log settings.
    #[serde(default)]
    pub rekor: Option<Rekor>,
    /// Certificate transparency settings.
    #[serde(default)]
    pub ctlog: Option<CtLog>,
}

/// `keyless`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeylessAttestor {
    /// Expected OIDC issuer (wildcards).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Expected OIDC issuer (RE2, unanchored).
    #[serde(default, rename = "issuerRegExp")]
    pub issuer_regexp: Option<String>,
    /// Expected certificate subject (wildcards).
    #[serde(default)]
    pub subject: Option<String>,
    /// Expected certificate subject (RE2, unanchored).
    #[serde(default, rename = "subjectRegExp")]
    pub subject_regexp: Option<String>,
    /// Trusted roots (PEM); Fulcio's when absent.
    #[serde(default)]
    pub roots: Option<String>,
    /// Required certificate extensions.
    #[serde(default)]
    pub additional_extensions: BTreeMap<String, String>,
    /// Transparency log settings.
    #[serde(default)]
    pub rekor: Option<Rekor>,
    /// Certificate transparency settings.
    #[serde(default)]
    pub ctlog: Option<CtLog>,
}

/// `rekor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rekor {
    /// Rekor URL.
    #[serde(default)]
    pub url: String,
    /// Custom Rekor public key (PEM).
    #[serde(default)]
    pub pubkey: Option<String>,
    /// Skip transparency log checks.
    #[serde(default)]
    pub ignore_tlog: bool,
}

/// `ctlog`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CtLog {
    /// Skip signed certificate timestamp checks.
    #[serde(default, rename = "ignoreSCT")]
    pub ignore_sct: bool,
    /// Custom CT log public key (PEM).
    #[serde(default)]
    pub pubkey: Option<String>,
    /// RFC 3161 timestamp authority chain (PEM).
    #[serde(default)]
    pub tsa_cert_chain: Option<String>,
}

/// `attestations[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    /// Context variable name for the predicate.
    #[serde(default)]
    pub name: Option<String>,
    /// Predicate type.
    #[serde(default, rename = "type")]
    pub predicate_type_name: Option<String>,
    /// Deprecated alias of `type`.
    #[serde(default)]
    pub predicate_type: Option<String>,
    /// Who must have signed the attestation.
    #[serde(default)]
    pub attestors: Vec<AttestorSet>,
    /// JMESPath conditions over the predicate; kept raw.
    #[serde(default)]
    pub conditions: Vec<Value>,
}

/// `imageRegistryCredentials`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRegistryCredentials {
    /// Allow plain HTTP / unverified TLS registries.
    #[serde(default)]
    pub allow_insecure_registry: bool,
    /// Credential helpers: `default`, `google`, `azure`, `amazon`, `github`.
    #[serde(default)]
    pub providers: Vec<CredentialProvider>,
    /// Pull secrets: `name` (Kyverno's namespace) or `namespace/name`.
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// `imageRegistryCredentials.providers[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialProvider {
    /// Docker config / default keychain.
    Default,
    /// Google.
    Google,
    /// Azure.
    Azure,
    /// Amazon ECR.
    Amazon,
    /// GitHub.
    Github,
}

/// `verifyImages[].validate`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidateImage {
    /// Message on failure.
    #[serde(default)]
    pub message: Option<String>,
    /// Deny conditions; kept raw.
    #[serde(default)]
    pub deny: Option<Value>,
}
