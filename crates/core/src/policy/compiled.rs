//! The loaded policy, as the decision engine uses it.
//!
//! A [`Policy`] is a validated `ClusterPolicy`/`Policy` with CRD defaults applied, deprecated
//! fields converted, every key and certificate parsed, several PEM keys in one `publicKeys`
//! expanded into separate attestor entries, and autogen rules computed. Its helpers answer the
//! engine's questions: which rules apply to a resource ([`Rule::matches`]), where the images of
//! a kind live ([`Rule::image_source`]), which failure action holds in a namespace
//! ([`Policy::failure_action`]) and how many attestors must verify
//! ([`AttestorSet::required_count`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::crypto::cert::Certificate;
use crate::crypto::key::{PublicKey, SignatureHash};
use crate::image::wildcard;

use super::matching::{self, Operation, ResourceMeta};
use super::model::{
    ApplyRules, CredentialProvider, FailurePolicy, ImageExtractorConfig, LabelSelector,
    MatchResources, VerifierType,
};
use super::path::JsonPath;
use super::unsupported::Unsupported;

pub use super::model::FailureAction;

/// `https://rekor.sigstore.dev`: Kyverno's Rekor when an attestor has no `rekor` block.
pub const DEFAULT_REKOR_URL: &str = "https://rekor.sigstore.dev";

/// `ClusterPolicy` or `Policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Cluster-wide.
    ClusterPolicy,
    /// Applies only in its own namespace.
    Policy,
}

/// A loaded, valid policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `ClusterPolicy` or `Policy`.
    pub kind: PolicyKind,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` for a `Policy` (`default` when it had none); `None` for a
    /// `ClusterPolicy`.
    pub namespace: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Where the document came from (file name as given to the loader).
    pub source: String,
    /// First line of the document in `source`.
    pub line: usize,
    /// `spec.validationFailureAction` (CRD default Audit).
    pub validation_failure_action: FailureAction,
    /// `spec.validationFailureActionOverrides`, in order.
    pub failure_action_overrides: Vec<FailureActionOverride>,
    /// `spec.background`.
    pub background: bool,
    /// `spec.admission`.
    pub admission: bool,
    /// `spec.emitWarning`.
    pub emit_warning: bool,
    /// `spec.applyRules`.
    pub apply_rules: ApplyRules,
    /// `webhookConfiguration.failurePolicy`, else `spec.failurePolicy`, else `Fail`.
    pub failure_policy: FailurePolicy,
    /// `webhookConfiguration.timeoutSeconds`, else `spec.webhookTimeoutSeconds`.
    pub webhook_timeout_seconds: Option<u32>,
    /// The verifyImages rules as written (other rule types are dropped with a warning).
    pub rules: Vec<Rule>,
    /// The pod controllers autogen applies to (empty when autogen is off).
    pub autogen_controllers: Vec<String>,
    /// Rules generated for pod controllers (`autogen-…`, `autogen-cronjob-…`), in Kyverno's order.
    pub autogen_rules: Vec<Rule>,
}

/// One entry of `spec.validationFailureActionOverrides`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureActionOverride {
    /// The action.
    pub action: FailureAction,
    /// Namespace patterns; `None` means any namespace.
    pub namespaces: Option<Vec<String>>,
    /// Namespace label selector.
    pub namespace_selector: Option<LabelSelector>,
}

impl FailureActionOverride {
    /// Whether the override applies to a resource in `namespace` with `namespace_labels`
    /// (`None`: not known, as in the webhook; a `namespaceSelector` then counts as satisfied for
    /// an Enforce override and not for an Audit one, so the stricter action wins).
    pub fn applies(
        &self,
        namespace: Option<&str>,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> bool {
        let selector_ok = self
            .namespace_selector
            .as_ref()
            .is_none_or(|s| match namespace_labels {
                Some(labels) => matching::selector_matches(s, labels),
                None => self.action == FailureAction::Enforce,
            });
        match &self.namespaces {
            None => selector_ok,
            Some(patterns) => {
                let namespace = namespace.unwrap_or("");
                patterns.iter().any(|p| wildcard::matches(p, namespace)) && selector_ok
            }
        }
    }
}

/// Where a resolved failure action came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureActionSource {
    /// `verifyImages[index].failureAction` of the rule.
    Entry(usize),
    /// `spec.validationFailureActionOverrides[index]`.
    Override(usize),
    /// `spec.validationFailureAction` (or its default).
    Spec,
}

/// A failure action and why it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedFailureAction {
    /// Enforce (block) or Audit (report).
    pub action: FailureAction,
    /// Which setting decided it.
    pub source: FailureActionSource,
}

impl ResolvedFailureAction {
    /// Whether a failure blocks the request.
    pub fn is_enforce(&self) -> bool {
        self.action == FailureAction::Enforce
    }
}

impl Policy {
    /// `name` for a ClusterPolicy, `namespace/name` for a Policy (as reports name them).
    pub fn qualified_name(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether some rule reads the request (`request.*` variables, preconditions): the caller
    /// then gives the resource the admission request ([`crate::engine::Resource::with_request`]).
    pub fn reads_request(&self) -> bool {
        self.all_rules().any(|r| r.request_scope.is_some())
    }

    /// Whether a decision under this policy can depend on namespace labels: a
    /// `namespaceSelector` in a rule's `match` or `exclude`, or in a failure action override.
    pub fn uses_namespace_labels(&self) -> bool {
        fn in_description(d: &super::model::ResourceDescription) -> bool {
            d.namespace_selector.is_some()
        }
        fn in_match(m: &super::model::MatchResources) -> bool {
            m.resources.as_ref().is_some_and(in_description)
                || m.any
                    .iter()
                    .chain(&m.all)
                    .any(|f| f.resources.as_ref().is_some_and(in_description))
        }
        self.failure_action_overrides
            .iter()
            .any(|o| o.namespace_selector.is_some())
            || self
                .rules
                .iter()
                .chain(&self.autogen_rules)
                .any(|r| in_match(&r.match_resources) || r.exclude.as_ref().is_some_and(in_match))
    }

    /// Whether the policy can apply to resources in `namespace`: a `Policy` only covers its
    /// own namespace.
    pub fn covers_namespace(&self, namespace: Option<&str>) -> bool {
        match (&self.namespace, self.kind) {
            (Some(own), PolicyKind::Policy) => namespace == Some(own.as_str()),
            _ => true,
        }
    }

    /// Every rule the engine evaluates, in Kyverno's order: written rules, then autogen rules.
    pub fn all_rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(self.autogen_rules.iter())
    }

    /// The rule named `name` (written or autogen).
    pub fn rule(&self, name: &str) -> Option<&Rule> {
        self.all_rules().find(|r| r.name == name)
    }

    /// The failure action for a failure of `rule` on a resource in `namespace` (§1.9). It is the
    /// same for every verifyImages entry of the rule: Kyverno resolves it per rule.
    ///
    /// 1. if any entry says `failureAction: Enforce`, Enforce; else the first entry that sets one;
    /// 2. else the first override that applies to the namespace;
    /// 3. else `spec.validationFailureAction`.
    pub fn failure_action(
        &self,
        rule: &Rule,
        namespace: Option<&str>,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> ResolvedFailureAction {
        if let Some(index) = rule
            .verify_images
            .iter()
            .position(|e| e.failure_action == Some(FailureAction::Enforce))
        {
            return ResolvedFailureAction {
                action: FailureAction::Enforce,
                source: FailureActionSource::Entry(index),
            };
        }
        if let Some((index, action)) = rule
            .verify_images
            .iter()
            .enumerate()
            .find_map(|(i, e)| e.failure_action.map(|a| (i, a)))
        {
            return ResolvedFailureAction {
                action,
                source: FailureActionSource::Entry(index),
            };
        }
        if let Some((index, o)) = self
            .failure_action_overrides
            .iter()
            .enumerate()
            .find(|(_, o)| o.applies(namespace, namespace_labels))
        {
            return ResolvedFailureAction {
                action: o.action,
                source: FailureActionSource::Override(index),
            };
        }
        ResolvedFailureAction {
            action: self.validation_failure_action,
            source: FailureActionSource::Spec,
        }
    }

    /// The failure action for entry `entry` of `rule`: the rule's (see
    /// [`Policy::failure_action`]), since Kyverno has no finer setting.
    pub fn entry_failure_action(
        &self,
        rule: &Rule,
        _entry: usize,
        namespace: Option<&str>,
        namespace_labels: Option<&BTreeMap<String, String>>,
    ) -> ResolvedFailureAction {
        self.failure_action(rule, namespace, namespace_labels)
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleOrigin {
    /// Written in the policy.
    Written,
    /// `autogen-<rule>`: the Pod rule `rule` applied to pod controllers' templates.
    Autogen {
        /// Name of the written rule.
        rule: String,
    },
    /// `autogen-cronjob-<rule>`: the Pod rule `rule` applied to CronJobs' job templates.
    AutogenCronJob {
        /// Name of the written rule.
        rule: String,
    },
}

/// Where a kind keeps the images a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource<'a> {
    /// A pod spec at this JSON pointer (`/spec`, `/spec/template/spec`,
    /// `/spec/jobTemplate/spec/template/spec`): its `initContainers`, `containers` and
    /// `ephemeralContainers`.
    PodSpec(&'static str),
    /// The rule's `imageExtractors` for the kind (they replace the built-in ones).
    Extractors(&'a [ImageExtractorConfig]),
    /// The kind holds no images for this rule.
    None,
}

/// The built-in image location of `kind` (§2.1), if it has one.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("/spec"),
        "DaemonSet"
        | "Deployment"
        | "ReplicaSet"
        | "ReplicationController"
        | "StatefulSet"
        | "Job" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// One verifyImages rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The rule name (`autogen-…` for generated rules).
    pub name: String,
    /// Written or generated.
    pub origin: RuleOrigin,
    /// `match`.
    pub match_resources: MatchResources,
    /// `exclude`.
    pub exclude: Option<MatchResources>,
    /// `context`, raw: the engine reports it as unsupported.
    pub context: Vec<Value>,
    /// `preconditions`, raw: the engine reports it as unsupported.
    pub preconditions: Option<Value>,
    /// `celPreconditions`, raw.
    pub cel_preconditions: Option<Value>,
    /// `imageExtractors` by kind.
    pub image_extractors: BTreeMap<String, Vec<ImageExtractorConfig>>,
    /// The verifyImages entries.
    pub verify_images: Vec<ImageVerification>,
    /// `reportProperties`.
    pub report_properties: BTreeMap<String, String>,
    /// Path of the written rule (`spec.rules[i]`; for autogen rules, the rule they came from).
    pub path: JsonPath,
    /// What the rule resolves per request (variables that read the request); `None` when
    /// nothing does.
    pub request_scope: Option<std::sync::Arc<super::load::RequestScope>>,
    /// Why the rule cannot be evaluated (context, preconditions), decided when it was loaded.
    pub unsupported: Option<Unsupported>,
}

impl Rule {
    /// Whether the rule applies to a resource: `match` selects it and `exclude` does not.
    /// Name and namespace patterns use Kyverno's wildcards; selectors follow Kubernetes. A
    /// filter requiring annotations never matches here (use [`Rule::matches_resource`]).
    pub fn matches(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        labels: &BTreeMap<String, String>,
        namespace_labels: &BTreeMap<String, String>,
        operation: Operation,
    ) -> bool {
        let annotations = BTreeMap::new();
        self.matches_resource(&ResourceMeta {
            kind,
            namespace,
            name,
            labels,
            annotations: &annotations,
            namespace_labels: Some(namespace_labels),
            operation,
        })
    }

    /// [`Rule::matches`] with every resource attribute, annotations included.
    pub fn matches_resource(&self, resource: &ResourceMeta<'_>) -> bool {
        matching::match_selects(&self.match_resources, resource)
            && !self
                .exclude
                .as_ref()
                .is_some_and(|e| matching::exclude_removes(e, resource))
    }

    /// Where `kind` keeps the images this rule checks: the rule's `imageExtractors` for the
    /// kind if any, else the built-in pod spec location.
    pub fn image_source(&self, kind: &str) -> ImageSource<'_> {
        if let Some(extractors) = self.image_extractors.get(kind) {
            return ImageSource::Extractors(extractors);
        }
        match pod_spec_pointer(kind) {
            Some(pointer) => ImageSource::PodSpec(pointer),
            None => ImageSource::None,
        }
    }

    /// Kyverno's `HasVerifyImageChecks`: whether the validating webhook must check this rule
    /// (`verifyDigest` or `required` on some entry).
    pub fn has_validating_checks(&self) -> bool {
        self.verify_images
            .iter()
            .any(|e| e.verify_digest || e.required)
    }

    /// The name of the written rule this one is, or was generated from.
    pub fn written_name(&self) -> &str {
        match &self.origin {
            RuleOrigin::Written => &self.name,
            RuleOrigin::Autogen { rule } | RuleOrigin::AutogenCronJob { rule } => rule,
        }
    }
}

/// One verifyImages entry, converted and parsed.
#[derive(Debug, Clone)]
pub struct ImageVerification {
    /// The verifier.
    pub verifier: VerifierType,
    /// Patterns an image must match (against its normalised form, e.g. `docker.io/nginx:latest`).
    pub image_references: Vec<String>,
    /// Patterns of images to skip.
    pub skip_image_references: Vec<String>,
    /// Signature checks: every set must pass.
    pub attestors: Vec<AttestorSet>,
    /// Attestation checks.
    pub attestations: Vec<Attestation>,
    /// Alternate signature repository.
    pub repository: Option<String>,
    /// Read the OCI 1.1 referrers (Sigstore bundles) before the `.sig`/`.att` tag.
    pub cosign_oci11: bool,
    /// Require the verification annotation in the validating webhook.
    pub required: bool,
    /// Require a digest in the validating webhook.
    pub verify_digest: bool,
    /// Pin tags to digests.
    pub mutate_digest: bool,
    /// Use the verification cache.
    pub use_cache: bool,
    /// The entry's own failure action.
    pub failure_action: Option<FailureAction>,
    /// Registry credentials.
    pub image_registry_credentials: Option<RegistryCredentials>,
    /// Cross-attestation deny check: message and raw conditions.
    pub validate: Option<ImageValidation>,
    /// Path of the entry (`spec.rules[i].verifyImages[j]`).
    pub path: JsonPath,
    /// Why the entry's images cannot be checked (Notary, validate.deny after attestations), decided
    /// when it was loaded.
    pub unsupported: Option<Unsupported>,
}

impl ImageVerification {
    /// Whether a normalised image reference is covered by `imageReferences`.
    pub fn applies_to(&self, normalized_image: &str) -> bool {
        wildcard::matches_any(&self.image_references, normalized_image)
    }

    /// Whether a normalised image reference is skipped by `skipImageReferences`.
    pub fn skips(&self, normalized_image: &str) -> bool {
        wildcard::matches_any(&self.skip_image_references, normalized_image)
    }

    /// Whether the entry checks signatures or attestations at all.
    pub fn has_checks(&self) -> bool {
        !self.attestors.is_empty() || !self.attestations.is_empty()
    }
}

/// `imageRegistryCredentials`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Allow insecure registries.
    pub allow_insecure_registry: bool,
    /// Credential helpers.
    pub providers: Vec<CredentialProvider>,
    /// Pull secrets (`name` or `namespace/name`).
    pub secrets: Vec<String>,
}

/// `verifyImages[].validate`.
#[derive(Debug, Clone)]
pub struct ImageValidation {
    /// Message on failure (its variables resolved when the image is denied).
    pub message: Option<String>,
    /// `deny.conditions`, checked after the entry's attestations; `None` when not written (or
    /// written on an entry without attestations, which Kyverno never checks).
    pub deny: Option<DenyCheck>,
}

/// A verifyImages entry's `validate.deny`: conditions over the rule's context and the
/// attestations' named predicates that, when they hold, deny the image.
#[derive(Debug, Clone)]
pub struct DenyCheck {
    /// The conditions, parsed when the policy is loaded.
    pub conditions: super::conditions::Conditions,
    /// The rule's context when the conditions or the message read it (as for attestation
    /// conditions); the named predicates are added to it per image.
    pub context: Option<std::sync::Arc<Value>>,
}

/// A set of attestors of which [`AttestorSet::required_count`] must verify.
#[derive(Debug, Clone)]
pub struct AttestorSet {
    /// `count` as written (`None` when omitted).
    pub count: Option<usize>,
    /// Entries after multi-key expansion.
    pub entries: Vec<Attestor>,
    /// Path of the set.
    pub path: JsonPath,
}

impl AttestorSet {
    /// How many entries must verify: `count`, or every entry (after expansion) when it is
    /// omitted or 0.
    pub fn required_count(&self) -> usize {
        match self.count {
            None | Some(0) => self.entries.len(),
            Some(n) => n,
        }
    }
}

/// One attestor entry.
#[derive(Debug, Clone)]
pub struct Attestor {
    /// What verifies.
    pub kind: AttestorKind,
    /// Annotations a verified signature must carry.
    pub annotations: BTreeMap<String, String>,
    /// Alternate signature repository (overrides the entry's).
    pub repository: Option<String>,
    /// Path of the written entry (`…attestors[i].entries[j]`).
    pub path: JsonPath,
    /// For an entry expanded from several PEM keys, which one (0-based).
    pub key_index: Option<usize>,
    /// What the attestor checks, as a stable string (see [`Attestor::fingerprint`]).
    fingerprint: Fingerprint,
    /// Why the attestor cannot be evaluated (Secret, KMS or unresolved keys).
    unsupported: Option<Unsupported>,
}

impl Attestor {
    /// An attestor; its fingerprint is computed here, once.
    pub fn new(
        kind: AttestorKind,
        annotations: BTreeMap<String, String>,
        repository: Option<String>,
        path: JsonPath,
        key_index: Option<usize>,
    ) -> Attestor {
        let fingerprint = fingerprint(&kind, &annotations);
        let unsupported = match &kind {
            AttestorKind::Key(k) => match &k.key {
                KeySource::Pem(_) => None,
                KeySource::Secret { namespace, name } => Some(Unsupported::SecretKey {
                    namespace: namespace.clone(),
                    name: name.clone(),
                }),
                KeySource::Kms(uri) => Some(Unsupported::KmsKey { uri: uri.clone() }),
                KeySource::Reference(r) => Some(Unsupported::KeyReference {
                    reference: r.clone(),
                }),
            },
            AttestorKind::Certificate(_) | AttestorKind::Keyless(_) | AttestorKind::Nested(_) => {
                None
            }
        };
        Attestor {
            kind,
            annotations,
            repository,
            path,
            key_index,
            fingerprint: Fingerprint::new(fingerprint),
            unsupported,
        }
    }

    /// The attestor, which cannot be evaluated because of `why`.
    pub fn cannot_evaluate(mut self, why: Unsupported) -> Attestor {
        self.unsupported = Some(why);
        self
    }

    /// Why sealgate cannot evaluate this attestor, if it cannot.
    pub fn unsupported(&self) -> Option<&Unsupported> {
        self.unsupported.as_ref()
    }

    /// A stable description of what the attestor checks (key fingerprint, hash, certificates,
    /// keyless identity constraints and roots, transparency-log and CT-log settings, required
    /// annotations): two attestors with the same fingerprint
    /// reach the same outcome on the same signatures, so outcomes can be cached by it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The fingerprint, shared (outcome keys hold it without copying the string).
    pub fn shared_fingerprint(&self) -> Fingerprint {
        self.fingerprint.clone()
    }
}

/// An attestor's fingerprint as outcome keys hold it: the text, shared, with its hash computed
/// once when the policy is compiled (a review looks its outcomes up several times; hashing a
/// fingerprint of a hundred bytes each time was a measurable part of a warm review). Equal
/// texts are equal fingerprints, whichever policy load made them.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    text: Arc<str>,
    hash: u64,
}

impl Fingerprint {
    /// `text` as a fingerprint.
    pub fn new(text: String) -> Fingerprint {
        use std::hash::{Hash as _, Hasher as _};
        // A fixed-key SipHash: the same text hashes alike in every process and load; maps then
        // hash this number with their own random keys.
        let mut hasher = std::hash::DefaultHasher::new();
        text.hash(&mut hasher);
        Fingerprint {
            hash: hasher.finish(),
            text: text.into(),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Fingerprint) -> bool {
        Arc::ptr_eq(&self.text, &other.text) || (self.hash == other.hash && self.text == other.text)
    }
}

impl Eq for Fingerprint {}

impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl std::ops::Deref for Fingerprint {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn fingerprint(kind: &AttestorKind, annotations: &BTreeMap<String, String>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let rekor = |s: &mut String, r: &RekorSettings| {
        let key = r
            .public_key
            .as_ref()
            .map(PublicKey::fingerprint)
            .unwrap_or_default();
        let _ = write!(s, "|rekor:{}:{}:{key}", r.ignore_tlog, r.written);
    };
    let ctlog = |s: &mut String, c: &CtLogSettings| {
        let key = c
            .public_key
            .as_ref()
            .map(PublicKey::fingerprint)
            .unwrap_or_default();
        let _ = write!(s, "|ctlog:{}:{key}", c.ignore_sct);
        for tsa in &c.tsa_cert_chain {
            let _ = write!(s, ":{}", crate::Digest::sha256_of(tsa.der()));
        }
    };
    match kind {
        AttestorKind::Key(k) => {
            let key = match &k.key {
                KeySource::Pem(p) => p.fingerprint(),
                KeySource::Secret { namespace, name } => format!("secret:{namespace}/{name}"),
                KeySource::Kms(uri) | KeySource::Reference(uri) => uri.clone(),
            };
            let _ = write!(s, "key|{key}|{}", k.hash.name());
            rekor(&mut s, &k.rekor);
        }
        AttestorKind::Certificate(c) => {
            let cert = c
                .cert
                .as_ref()
                .map(|c| crate::Digest::sha256_of(c.der()).to_string())
                .unwrap_or_default();
            let _ = write!(s, "cert|{cert}");
            for ca in &c.chain {
                let _ = write!(s, "|{}", crate::Digest::sha256_of(ca.der()));
            }
            rekor(&mut s, &c.rekor);
        }
        AttestorKind::Keyless(k) => {
            // Debug quoting keeps `None`, `""` and texts holding `|` apart.
            let _ = write!(
                s,
                "keyless|{:?}|{:?}|{:?}|{:?}",
                k.issuer, k.issuer_regexp, k.subject, k.subject_regexp
            );
            for (key, value) in &k.additional_extensions {
                let _ = write!(s, "|x:{key:?}={value:?}");
            }
            for root in &k.roots {
                let _ = write!(s, "|root:{}", crate::Digest::sha256_of(root.der()));
            }
            rekor(&mut s, &k.rekor);
            ctlog(&mut s, &k.ctlog);
        }
        AttestorKind::Nested(_) => s.push_str("nested"),
    }
    for (k, v) in annotations {
        let _ = write!(s, "|a:{k}={v}");
    }
    s
}

/// What an attestor verifies with.
#[derive(Debug, Clone)]
pub enum AttestorKind {
    /// A public key.
    Key(KeyAttestor),
    /// A certificate (and chain).
    Certificate(CertificateAttestor),
    /// A keyless (Fulcio) identity.
    Keyless(KeylessAttestor),
    /// A nested set.
    Nested(AttestorSet),
}

/// `keys`, with one key.
#[derive(Debug, Clone)]
pub struct KeyAttestor {
    /// The key or where to find it.
    pub key: KeySource,
    /// Signature hash (`keys.signatureAlgorithm`, default sha256).
    pub hash: SignatureHash,
    /// Transparency log.
    pub rekor: RekorSettings,
    /// Certificate transparency.
    pub ctlog: CtLogSettings,
}

/// Where a key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM key in the policy.
    Pem(PublicKey),
    /// The `*.pub` entries of a Secret (`keys.secret`, or `publicKeys: k8s://ns/name`): read by
    /// `serve --kubernetes` and substituted before compiling; left here, it is unavailable.
    Secret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A KMS URI (`awskms://`, `gcpkms://`, `azurekms://`, `hashivault://`): not supported yet.
    Kms(String),
    /// Any other reference cosign would resolve (file, URL…): not supported.
    Reference(String),
}

/// `certificates`.
#[derive(Debug, Clone)]
pub struct CertificateAttestor {
    /// The signing certificate, if given.
    pub cert: Option<Certificate>,
    /// The chain, leaf's issuer first, if given.
    pub chain: Vec<Certificate>,
    /// Transparency log.
    pub rekor: RekorSettings,
    /// Certificate transparency.
    pub ctlog: CtLogSettings,
}

/// `keyless`.
#[derive(Debug, Clone, Default)]
pub struct KeylessAttestor {
    /// Issuer pattern (wildcards).
    pub issuer: Option<String>,
    /// Issuer regular expression (RE2, unanchored).
    pub issuer_regexp: Option<String>,
    /// Subject pattern (wildcards).
    pub subject: Option<String>,
    /// Subject regular expression (RE2, unanchored).
    pub subject_regexp: Option<String>,
    /// `issuer_regexp`, compiled (or why it does not compile: every check then fails, as
    /// Kyverno's does).
    pub issuer_regex: Option<Result<regex::Regex, String>>,
    /// `subject_regexp`, compiled (or why it does not compile).
    pub subject_regex: Option<Result<regex::Regex, String>>,
    /// Trusted roots; empty means Fulcio's.
    pub roots: Vec<Certificate>,
    /// Required certificate extensions.
    pub additional_extensions: BTreeMap<String, String>,
    /// Transparency log.
    pub rekor: RekorSettings,
    /// Certificate transparency.
    pub ctlog: CtLogSettings,
}

/// `rekor` with Kyverno's runtime defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorSettings {
    /// Rekor URL: [`DEFAULT_REKOR_URL`] when the block is absent; `None` when a block was given
    /// without `url` (only the signature's bundle can then prove inclusion).
    pub url: Option<String>,
    /// Custom Rekor key.
    pub public_key: Option<PublicKey>,
    /// Skip transparency log checks.
    pub ignore_tlog: bool,
    /// Whether the policy wrote a `rekor` block. Without one, sealgate checks a Rekor bundle
    /// when the signature carries one but does not require it (Kyverno would look the signature
    /// up on rekor.sigstore.dev); with one (and no `ignoreTlog`), a valid bundle is required.
    pub written: bool,
}

impl Default for RekorSettings {
    fn default() -> Self {
        RekorSettings {
            url: Some(DEFAULT_REKOR_URL.to_string()),
            public_key: None,
            ignore_tlog: false,
            written: false,
        }
    }
}

/// `ctlog` with Kyverno's runtime defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CtLogSettings {
    /// Skip SCT checks.
    pub ignore_sct: bool,
    /// Custom CT log key.
    pub public_key: Option<PublicKey>,
    /// Timestamp authority chain; non-empty enables signed-timestamp verification.
    pub tsa_cert_chain: Vec<Certificate>,
}

/// `attestations[]`.
#[derive(Debug, Clone)]
pub struct Attestation {
    /// Context variable name.
    pub name: Option<String>,
    /// Predicate type (`type`, or the deprecated `predicateType`).
    pub predicate_type: String,
    /// Attestor sets (not expanded, as in Kyverno); none written means Kyverno's implicit
    /// `{entries: [{}]}` (a keyless attestor with no identity), which the loader puts here.
    pub attestors: Vec<AttestorSet>,
    /// `conditions`, parsed when the policy is loaded.
    pub conditions: super::conditions::ConditionBlocks,
    /// Whether a verified outcome keeps the predicate under `name` (for the entry's
    /// `validate.deny`, which reads it after every attestation verified).
    pub keeps_predicate: bool,
    /// The rule's context (the request's variables, given values and `context` entries) when
    /// the conditions read it: Kyverno evaluates them over that context with the statement's
    /// predicate merged at the top. `None` when they read only the statement.
    pub context: Option<std::sync::Arc<serde_json::Value>>,
    /// Path.
    pub path: JsonPath,
    /// What the attestation checks beside its attestors (predicate type, name, conditions as
    /// written, the SHA-256 of the context they read), for outcome keys: two attestations that
    /// differ here never share an outcome.
    pub fingerprint: Fingerprint,
}

impl Attestation {
    /// The fingerprint under which `attestor`'s outcome for this attestation is kept: the
    /// attestor's and the attestation's.
    pub fn outcome_fingerprint(&self, attestor: &Attestor) -> Fingerprint {
        Fingerprint::new(format!(
            "{}|attestation|{}",
            attestor.fingerprint(),
            self.fingerprint
        ))
    }
}
