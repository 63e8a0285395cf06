//! The policy loader: text in, [`Policy`]s, errors and warnings out.
//!
//! [`load`] reads every YAML/JSON document of one source, skips documents that are not Kyverno
//! policies (noting their `apiVersion`/`kind`), and for each `ClusterPolicy`/`Policy`:
//!
//! 1. decodes it with CRD defaults ([`super::model`]), warning about unknown fields;
//! 2. converts deprecated verifyImages fields (Kyverno's `Convert()`);
//! 3. validates it as Kyverno's admission webhook would, with one deliberate difference:
//!    Audit with `mutateDigest: true` is accepted with a warning;
//! 4. parses every key and certificate, expanding several PEM keys in one `publicKeys` into
//!    separate attestor entries, with errors located at the file line of the offending PEM line;
//! 5. computes autogen rules.
//!
//! A policy with any error is left out; the other documents still load.

use std::collections::HashMap;

use serde_json::Value;

use crate::cert::{self, Certificate};
use crate::key::{PUBLIC_KEY_LABEL, PublicKey, SignatureHash};
use crate::pem::{self, PemErrorKind};

use super::autogen::{self, AUTOGEN_ANNOTATION};
use super::compiled::{
    Attestation, Attestor, AttestorKind, AttestorSet, CertificateAttestor, CtLogSettings,
    FailureAction, FailureActionOverride, ImageValidation, ImageVerification, KeyAttestor,
    KeySource, KeylessAttestor, Policy, PolicyKind, RegistryCredentials, RekorSettings, Rule,
    RuleOrigin, pod_spec_pointer,
};
use super::de::{self, UnknownField};
use super::error::{
    Base64Damage, Location, PolicyError, PolicyErrorKind, PolicyWarning, PolicyWarningKind,
    error_hint, warning_hint,
};
use super::matching::{LABEL_OPERATORS, Operation, kind_of};
use super::model::{
    self, FailurePolicy, LabelSelector, MatchResources, PolicyDocument, ResourceDescription,
    VerifierType,
};
use super::path::JsonPath;
use super::yaml::{self, Document, Position};

/// Everything one source yielded.
#[derive(Debug, Clone, Default)]
pub struct LoadOutcome {
    /// The policies that loaded without error, in document order.
    pub policies: Vec<Policy>,
    /// Why the others did not (several per policy, all of them).
    pub errors: Vec<PolicyError>,
    /// Things worth knowing about the policies, loaded or not.
    pub warnings: Vec<PolicyWarning>,
    /// Documents that are not Kyverno policies.
    pub skipped: Vec<SkippedDocument>,
}

/// A document the loader skipped because it is not a `ClusterPolicy` or `Policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDocument {
    /// The source name.
    pub source: String,
    /// The document's first line.
    pub line: usize,
    /// Its `apiVersion`, if it has one.
    pub api_version: Option<String>,
    /// Its `kind`, if it has one.
    pub kind: Option<String>,
}

impl std::fmt::Display for SkippedDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: skipped {} {} (not a Kyverno ClusterPolicy or Policy)",
            self.source,
            self.line,
            self.api_version.as_deref().unwrap_or("(no apiVersion)"),
            self.kind.as_deref().unwrap_or("(no kind)")
        )
    }
}

/// Loads every policy in `text`, read from `source` (a name used in messages only).
pub fn load(source: &str, text: &str) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    for document in yaml::parse_documents(text) {
        match document {
            Err(e) => outcome.errors.push(PolicyError {
                location: Location {
                    source: source.to_string(),
                    line: e.position.line,
                    column: e.position.column,
                    policy: None,
                    rule: None,
                    path: JsonPath::root(),
                },
                hint: None,
                kind: PolicyErrorKind::Yaml(e.kind),
            }),
            Ok(document) => {
                let mut loader = DocumentLoader::new(source, &document);
                let policy = loader.load();
                if let Some(skipped) = loader.skipped.take() {
                    outcome.skipped.push(skipped);
                }
                let failed = !loader.errors.is_empty();
                loader
                    .errors
                    .sort_by_key(|e| (e.location.line, e.location.column));
                loader
                    .warnings
                    .sort_by_key(|w| (w.location.line, w.location.column));
                outcome.errors.append(&mut loader.errors);
                outcome.warnings.append(&mut loader.warnings);
                if let Some(policy) = policy
                    && !failed
                {
                    outcome.policies.push(policy);
                }
            }
        }
    }
    outcome
}

const KMS_SCHEMES: [&str; 4] = ["awskms://", "gcpkms://", "azurekms://", "hashivault://"];

struct DocumentLoader<'a> {
    source: &'a str,
    document: &'a Document,
    policy: Option<String>,
    rule: Option<String>,
    errors: Vec<PolicyError>,
    warnings: Vec<PolicyWarning>,
    skipped: Option<SkippedDocument>,
    /// Paths of fields created by `Convert()`, mapped to the written field they came from.
    aliases: Vec<(JsonPath, JsonPath)>,
    spec_action: FailureAction,
}

impl<'a> DocumentLoader<'a> {
    fn new(source: &'a str, document: &'a Document) -> Self {
        DocumentLoader {
            source,
            document,
            policy: None,
            rule: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            skipped: None,
            aliases: Vec::new(),
            spec_action: FailureAction::Audit,
        }
    }

    /// The written path a (possibly converted) path stands for.
    fn real_path(&self, path: &JsonPath) -> JsonPath {
        for (synthetic, real) in &self.aliases {
            if path.starts_with(synthetic) {
                let mut out = real.clone();
                for segment in &path.segments()[synthetic.segments().len()..] {
                    match segment {
                        super::path::Segment::Field(f) => out.push_field(f),
                        super::path::Segment::Index(i) => out.push_index(*i),
                    }
                }
                return out;
            }
        }
        path.clone()
    }

    fn location(&self, path: &JsonPath, position: Position) -> Location {
        Location {
            source: self.source.to_string(),
            line: position.line,
            column: position.column,
            policy: self.policy.clone(),
            rule: self.rule.clone(),
            path: path.clone(),
        }
    }

    fn error(&mut self, path: &JsonPath, kind: PolicyErrorKind) {
        let path = self.real_path(path);
        let position = self.document.source_map.position(&path);
        self.error_at(&path, position, kind);
    }

    fn error_at(&mut self, path: &JsonPath, position: Position, kind: PolicyErrorKind) {
        let hint = error_hint(&kind, path);
        self.errors.push(PolicyError {
            location: self.location(path, position),
            kind,
            hint,
        });
    }

    /// An error about line `line` of the string at `path`.
    fn error_in_text(&mut self, path: &JsonPath, text: &str, line: usize, kind: PolicyErrorKind) {
        let path = self.real_path(path);
        let position = self
            .document
            .source_map
            .content_line_position(&path, text, line);
        self.error_at(&path, position, kind);
    }

    fn warn(&mut self, path: &JsonPath, kind: PolicyWarningKind) {
        let path = self.real_path(path);
        let position = self.document.source_map.position(&path);
        let hint = warning_hint(&kind);
        self.warnings.push(PolicyWarning {
            location: self.location(&path, position),
            kind,
            hint,
        });
    }

    fn load(&mut self) -> Option<Policy> {
        let root = JsonPath::root();
        let Value::Object(map) = &self.document.value else {
            self.error(&root, PolicyErrorKind::NotAnObject);
            return None;
        };
        let api_version = map.get("apiVersion").and_then(Value::as_str);
        let kind = map.get("kind").and_then(Value::as_str);
        let is_policy_kind = matches!(kind, Some("ClusterPolicy" | "Policy"));
        let group = api_version.and_then(|v| v.split_once('/')).map(|(g, _)| g);
        if !is_policy_kind || group != Some("kyverno.io") {
            self.skipped = Some(SkippedDocument {
                source: self.source.to_string(),
                line: self.document.first_line,
                api_version: api_version.map(str::to_string),
                kind: kind.map(str::to_string),
            });
            return None;
        }
        self.policy = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        if !matches!(api_version, Some("kyverno.io/v1" | "kyverno.io/v2beta1")) {
            let version = api_version.unwrap_or_default().to_string();
            self.error(
                &root.field("apiVersion"),
                PolicyErrorKind::UnsupportedApiVersion(version),
            );
            return None;
        }
        let (document, unknown) = match de::decode::<PolicyDocument>(&self.document.value, &root) {
            Ok(decoded) => decoded,
            Err(e) => {
                self.error(&e.path, PolicyErrorKind::Decode(e.message));
                return None;
            }
        };
        self.unknown_field_warnings(unknown);
        self.compile(document)
    }

    fn unknown_field_warnings(&mut self, unknown: Vec<UnknownField>) {
        for field in unknown {
            let Some(name) = field.path.last_field() else {
                continue;
            };
            let suggestion = closest(name, field.known).map(str::to_string);
            self.rule = rule_name_for(&self.document.value, &field.path);
            self.warn(&field.path, PolicyWarningKind::UnknownField { suggestion });
        }
        self.rule = None;
    }

    fn compile(&mut self, document: PolicyDocument) -> Option<Policy> {
        let root = JsonPath::root();
        let meta_path = root.field("metadata");
        let spec_path = root.field("spec");
        let kind = if document.kind == "Policy" {
            PolicyKind::Policy
        } else {
            PolicyKind::ClusterPolicy
        };
        let spec = document.spec;
        let meta = document.metadata;
        if meta.name.is_empty() {
            self.error(&meta_path.field("name"), PolicyErrorKind::MissingName);
        }
        let namespace = match (kind, meta.namespace.as_deref()) {
            (PolicyKind::ClusterPolicy, Some(_)) => {
                self.warn(
                    &meta_path.field("namespace"),
                    PolicyWarningKind::NamespaceIgnored,
                );
                None
            }
            (PolicyKind::ClusterPolicy, None) => None,
            (PolicyKind::Policy, Some(ns)) if !ns.is_empty() => Some(ns.to_string()),
            (PolicyKind::Policy, _) => {
                self.warn(&meta_path, PolicyWarningKind::NamespaceDefaulted);
                Some("default".to_string())
            }
        };
        self.spec_action = spec.validation_failure_action.into();
        let has_verify_images = spec.rules.iter().any(model::RuleSpec::has_verify_images);

        // Spec-level checks.
        if !spec.admission && has_verify_images {
            self.error(
                &spec_path.field("admission"),
                PolicyErrorKind::AdmissionDisabled,
            );
        }
        let overrides_path = spec_path.field("validationFailureActionOverrides");
        if kind == PolicyKind::Policy && !spec.validation_failure_action_overrides.is_empty() {
            self.error(
                &overrides_path,
                PolicyErrorKind::OverridesOnNamespacedPolicy,
            );
        }
        let mut overrides = Vec::new();
        let mut seen: HashMap<String, FailureAction> = HashMap::new();
        for (i, o) in spec.validation_failure_action_overrides.iter().enumerate() {
            let path = overrides_path.index(i);
            let action: FailureAction = o.action.into();
            for (k, ns) in o.namespaces.iter().flatten().enumerate() {
                match seen.get(ns) {
                    Some(previous) if *previous != action => self.error(
                        &path.field("namespaces").index(k),
                        PolicyErrorKind::ConflictingOverrideNamespaces {
                            namespace: ns.clone(),
                            path: path.field("namespaces").to_string(),
                        },
                    ),
                    _ => {
                        seen.insert(ns.clone(), action);
                    }
                }
            }
            if let Some(selector) = &o.namespace_selector {
                self.check_selector(selector, &path.field("namespaceSelector"));
            }
            overrides.push(FailureActionOverride {
                action,
                namespaces: o.namespaces.clone(),
                namespace_selector: o.namespace_selector.clone(),
            });
        }
        let annotation = meta.annotations.get(AUTOGEN_ANNOTATION).map(String::as_str);
        let annotation_path = meta_path.field("annotations").field(AUTOGEN_ANNOTATION);
        if annotation.is_some_and(|a| a.split(',').any(|c| c.trim() == "all")) {
            self.error(&annotation_path, PolicyErrorKind::AutogenAll);
        }
        let webhook = spec.webhook_configuration.clone().unwrap_or_default();
        let timeout = match (webhook.timeout_seconds, spec.webhook_timeout_seconds) {
            (Some(t), _) => Some((
                t,
                spec_path
                    .field("webhookConfiguration")
                    .field("timeoutSeconds"),
            )),
            (None, Some(t)) => Some((t, spec_path.field("webhookTimeoutSeconds"))),
            (None, None) => None,
        };
        let webhook_timeout_seconds = match timeout {
            Some((t, path)) => match u32::try_from(t) {
                Ok(t @ 1..=30) => Some(t),
                _ => {
                    self.error(&path, PolicyErrorKind::WebhookTimeout(t));
                    None
                }
            },
            None => None,
        };

        // Rules.
        let mut rules = Vec::new();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let rules_path = spec_path.field("rules");
        for (i, rule) in spec.rules.iter().enumerate() {
            let path = rules_path.index(i);
            self.rule = (!rule.name.is_empty()).then(|| rule.name.clone());
            if rule.name.is_empty() {
                self.error(&path.field("name"), PolicyErrorKind::MissingRuleName);
            } else if rule.name.len() > 63 {
                self.error(
                    &path.field("name"),
                    PolicyErrorKind::RuleNameTooLong(rule.name.clone()),
                );
            }
            if !rule.name.is_empty() && names.insert(&rule.name, i).is_some() {
                self.error(
                    &path.field("name"),
                    PolicyErrorKind::DuplicateRuleName(rule.name.clone()),
                );
            }
            let types = rule.rule_types();
            if types.len() > 1 {
                self.error(
                    &path,
                    PolicyErrorKind::MultipleOperations(rule.name.clone()),
                );
            } else if types.is_empty() {
                self.error(&path, PolicyErrorKind::NoOperation(rule.name.clone()));
            }
            if rule.image_extractors.is_some() && !rule.has_verify_images() {
                self.error(
                    &path.field("imageExtractors"),
                    PolicyErrorKind::ImageExtractorsWithoutVerifyImages(rule.name.clone()),
                );
            }
            if let [only] = types.as_slice()
                && *only != "verifyImages"
            {
                self.warn(&path, PolicyWarningKind::RuleTypeIgnored(only));
                continue;
            }
            if rule.has_verify_images()
                && let Some(compiled) = self.compile_rule(rule, &path)
            {
                rules.push(compiled);
            }
        }
        self.rule = None;
        if rules.is_empty() && !has_verify_images && self.errors.is_empty() {
            self.warn(&rules_path, PolicyWarningKind::NoVerifyImagesRules);
            return None;
        }

        // Autogen.
        let (controllers, unknown) = autogen::requested_controllers(annotation);
        for name in unknown {
            self.warn(
                &annotation_path,
                PolicyWarningKind::UnknownAutogenController(name),
            );
        }
        let enabled = autogen::can_autogen(&spec.rules);
        let autogen_rules = autogen::generate_rules(&rules, &controllers, enabled);
        let autogen_controllers = if enabled && !autogen_rules.is_empty() {
            controllers
        } else {
            Vec::new()
        };

        Some(Policy {
            kind,
            name: meta.name,
            namespace,
            labels: meta.labels,
            annotations: meta.annotations,
            source: self.source.to_string(),
            line: self.document.first_line,
            validation_failure_action: self.spec_action,
            failure_action_overrides: overrides,
            background: spec.background,
            admission: spec.admission,
            emit_warning: spec.emit_warning,
            apply_rules: spec.apply_rules.unwrap_or_default(),
            failure_policy: webhook
                .failure_policy
                .or(spec.failure_policy)
                .unwrap_or(FailurePolicy::Fail),
            webhook_timeout_seconds,
            rules,
            autogen_controllers,
            autogen_rules,
        })
    }

    fn check_selector(&mut self, selector: &LabelSelector, path: &JsonPath) {
        for (i, req) in selector.match_expressions.iter().enumerate() {
            let req_path = path.field("matchExpressions").index(i);
            if !LABEL_OPERATORS.contains(&req.operator.as_str()) {
                self.error(
                    &req_path.field("operator"),
                    PolicyErrorKind::BadSelectorOperator(req.operator.clone()),
                );
                continue;
            }
            let needs_values = matches!(req.operator.as_str(), "In" | "NotIn");
            if needs_values && req.values.is_empty() {
                self.error(
                    &req_path.field("values"),
                    PolicyErrorKind::BadSelectorValues {
                        operator: req.operator.clone(),
                        expectation: "needs at least one value",
                    },
                );
            } else if !needs_values && !req.values.is_empty() {
                self.error(
                    &req_path.field("values"),
                    PolicyErrorKind::BadSelectorValues {
                        operator: req.operator.clone(),
                        expectation: "takes no values",
                    },
                );
            }
        }
    }

    fn check_description(&mut self, desc: &ResourceDescription, path: &JsonPath, in_match: bool) {
        if in_match && desc.kinds.is_empty() {
            self.error(&path.field("kinds"), PolicyErrorKind::KindsRequired);
        }
        if in_match {
            for (k, kind) in desc.kinds.iter().enumerate() {
                if kind_of(kind) == "*" {
                    self.error(&path.field("kinds").index(k), PolicyErrorKind::WildcardKind);
                }
            }
        }
        for (name, selector) in [
            ("selector", &desc.selector),
            ("namespaceSelector", &desc.namespace_selector),
        ] {
            if let Some(selector) = selector {
                self.check_selector(selector, &path.field(name));
            }
        }
        for (k, op) in desc.operations.iter().enumerate() {
            if Operation::parse(op).is_none() {
                self.error(
                    &path.field("operations").index(k),
                    PolicyErrorKind::BadOperation(op.clone()),
                );
            }
        }
    }

    fn check_match(&mut self, resources: &MatchResources, path: &JsonPath, in_match: bool) {
        if in_match && resources.is_empty() {
            self.error(path, PolicyErrorKind::MatchRequired);
            return;
        }
        if !resources.any.is_empty() && !resources.all.is_empty() {
            self.error(path, PolicyErrorKind::MatchAnyAndAll);
        }
        let legacy = resources.resources.as_ref().is_some_and(|d| !d.is_empty());
        if legacy && (!resources.any.is_empty() || !resources.all.is_empty()) {
            self.error(&path.field("resources"), PolicyErrorKind::MatchMixedForms);
        }
        let mut user_info = !resources.subjects.is_empty()
            || !resources.roles.is_empty()
            || !resources.cluster_roles.is_empty();
        if let Some(desc) = &resources.resources {
            self.check_description(desc, &path.field("resources"), in_match);
        }
        for (name, filters) in [("any", &resources.any), ("all", &resources.all)] {
            for (i, filter) in filters.iter().enumerate() {
                let filter_path = path.field(name).index(i);
                user_info |= filter.has_user_info();
                match &filter.resources {
                    Some(desc) => {
                        self.check_description(desc, &filter_path.field("resources"), in_match)
                    }
                    None if in_match && !filter.has_user_info() => self.error(
                        &filter_path.field("resources"),
                        PolicyErrorKind::KindsRequired,
                    ),
                    None => {}
                }
            }
        }
        if user_info {
            self.warn(path, PolicyWarningKind::UserInfoNotEvaluated);
        }
    }

    fn compile_rule(&mut self, rule: &model::RuleSpec, path: &JsonPath) -> Option<Rule> {
        let errors_before = self.errors.len();
        self.check_match(&rule.match_resources, &path.field("match"), true);
        if let Some(exclude) = &rule.exclude {
            self.check_match(exclude, &path.field("exclude"), false);
        }
        let image_extractors = rule.image_extractors.clone().unwrap_or_default();
        let kinds = rule.match_resources.kinds();
        if !kinds.is_empty()
            && kinds.iter().all(|k| {
                let kind = kind_of(k);
                kind != "*"
                    && pod_spec_pointer(kind).is_none()
                    && !image_extractors.contains_key(kind)
            })
        {
            self.warn(
                &path.field("match"),
                PolicyWarningKind::NoImageKinds {
                    kinds: kinds.join(", "),
                },
            );
        }
        if !rule.context.is_empty() {
            self.warn(
                &path.field("context"),
                PolicyWarningKind::NotSupportedYet("rule context is"),
            );
        }
        if rule.preconditions.as_ref().is_some_and(|v| !v.is_null()) {
            self.warn(
                &path.field("preconditions"),
                PolicyWarningKind::NotSupportedYet("preconditions are"),
            );
        }
        if rule
            .cel_preconditions
            .as_ref()
            .is_some_and(|v| !v.is_null())
        {
            self.warn(
                &path.field("celPreconditions"),
                PolicyWarningKind::NotSupportedYet("celPreconditions are"),
            );
        }
        for (kind, extractors) in &image_extractors {
            for (i, extractor) in extractors.iter().enumerate() {
                if extractor.jmes_path.is_some() {
                    self.warn(
                        &path
                            .field("imageExtractors")
                            .field(kind)
                            .index(i)
                            .field("jmesPath"),
                        PolicyWarningKind::NotSupportedYet("jmesPath in imageExtractors is"),
                    );
                }
            }
        }
        let mut verify_images = Vec::new();
        let entries_path = path.field("verifyImages");
        for (j, entry) in rule.verify_images.iter().flatten().enumerate() {
            if let Some(compiled) = self.compile_entry(entry, &entries_path.index(j), &rule.name) {
                verify_images.push(compiled);
            }
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Rule {
            name: rule.name.clone(),
            origin: RuleOrigin::Written,
            match_resources: rule.match_resources.clone(),
            exclude: rule.exclude.clone(),
            context: rule.context.clone(),
            preconditions: rule.preconditions.clone().filter(|v| !v.is_null()),
            cel_preconditions: rule.cel_preconditions.clone().filter(|v| !v.is_null()),
            image_extractors,
            verify_images,
            report_properties: rule.report_properties.clone(),
            path: path.clone(),
        })
    }

    fn compile_entry(
        &mut self,
        written: &model::ImageVerification,
        path: &JsonPath,
        rule_name: &str,
    ) -> Option<ImageVerification> {
        let errors_before = self.errors.len();
        let mut entry = written.clone();
        self.deprecated_field_warnings(&entry, path);
        let written_attestor_sets = entry.attestors.len();
        let written_attestation_sets: Vec<usize> = entry
            .attestations
            .iter()
            .map(|a| a.attestors.len())
            .collect();
        let key_written = entry.key.as_deref().is_some_and(|k| !k.is_empty());
        let issuer_written = entry.issuer.as_deref().is_some_and(|k| !k.is_empty());
        entry.convert();
        // Point the converted attestor at the fields it came from.
        let mut converted_sets = Vec::new();
        if entry.attestations.is_empty() {
            if entry.attestors.len() > written_attestor_sets {
                converted_sets.push(path.field("attestors").index(written_attestor_sets));
            }
        } else {
            for (a, count) in written_attestation_sets.iter().enumerate() {
                converted_sets.push(
                    path.field("attestations")
                        .index(a)
                        .field("attestors")
                        .index(*count),
                );
            }
        }
        for set in converted_sets {
            let attestor = set.field("entries").index(0);
            if key_written {
                self.aliases.push((
                    attestor.field("keys").field("publicKeys"),
                    path.field("key"),
                ));
            } else if issuer_written {
                self.aliases.push((
                    attestor.field("keyless").field("roots"),
                    path.field("roots"),
                ));
            }
            self.aliases.push((set, path.clone()));
        }

        let refs_path = path.field("imageReferences");
        if entry.image_references.is_empty() {
            self.error(&refs_path, PolicyErrorKind::ImageReferenceRequired);
        }
        for (k, pattern) in entry.image_references.iter().enumerate() {
            if pattern.contains("{{") {
                self.error(
                    &refs_path.index(k),
                    PolicyErrorKind::VariablesInImageReferences(rule_name.to_string()),
                );
            } else if never_matches(pattern) {
                self.warn(
                    &refs_path.index(k),
                    PolicyWarningKind::PatternNeverMatches {
                        pattern: pattern.clone(),
                    },
                );
            }
        }
        for (k, pattern) in entry.skip_image_references.iter().enumerate() {
            if never_matches(pattern) {
                self.warn(
                    &path.field("skipImageReferences").index(k),
                    PolicyWarningKind::PatternNeverMatches {
                        pattern: pattern.clone(),
                    },
                );
            }
        }
        let verifier = entry.verifier_type.unwrap_or_default();
        if verifier == VerifierType::Notary {
            self.check_notary(&entry, path);
        }
        match verifier {
            VerifierType::Cosign => {}
            VerifierType::Notary => self.warn(
                &path.field("type"),
                PolicyWarningKind::NotSupportedYet("type: Notary is"),
            ),
            VerifierType::SigstoreBundle => self.warn(
                &path.field("type"),
                PolicyWarningKind::NotSupportedYet("type: SigstoreBundle is"),
            ),
        }
        if !entry.attestations.is_empty() {
            self.warn(
                &path.field("attestations"),
                PolicyWarningKind::NotSupportedYet("verifying attestations is"),
            );
        }
        if entry.cosign_oci11 {
            self.warn(
                &path.field("cosignOCI11"),
                PolicyWarningKind::NotUsed {
                    field: "cosignOCI11",
                    instead: "signatures are read from the cosign .sig tag (OCI 1.1 referrers are not read yet)",
                },
            );
        }
        if entry.image_registry_credentials.is_some() {
            self.warn(
                &path.field("imageRegistryCredentials"),
                PolicyWarningKind::NotUsed {
                    field: "imageRegistryCredentials",
                    instead: "registry credentials come from the registry flags and the docker config.json of the process",
                },
            );
        }
        let action = entry.failure_action.unwrap_or(self.spec_action);
        if action == FailureAction::Audit && entry.mutate_digest {
            self.warn(
                &path.field("mutateDigest"),
                PolicyWarningKind::MutateDigestInAudit,
            );
        }
        if entry.required && entry.attestors.is_empty() && entry.attestations.is_empty() {
            self.warn(
                &path.field("required"),
                PolicyWarningKind::RequiredWithoutChecks,
            );
        }
        let mut attestors = Vec::new();
        for (i, set) in entry.attestors.iter().enumerate() {
            if let Some(set) = self.compile_set(set, &path.field("attestors").index(i), true) {
                attestors.push(set);
            }
        }
        let mut attestations = Vec::new();
        for (i, a) in entry.attestations.iter().enumerate() {
            let a_path = path.field("attestations").index(i);
            let written_type = a.predicate_type_name.clone().filter(|t| !t.is_empty());
            let deprecated_type = a.predicate_type.clone().filter(|t| !t.is_empty());
            if written_type.is_none()
                && let Some(t) = &deprecated_type
            {
                self.warn(
                    &a_path.field("predicateType"),
                    PolicyWarningKind::DeprecatedPredicateType(t.clone()),
                );
            }
            let Some(predicate_type) = written_type.or(deprecated_type) else {
                self.error(
                    &a_path.field("type"),
                    PolicyErrorKind::AttestationTypeMissing,
                );
                continue;
            };
            let mut sets = Vec::new();
            for (k, set) in a.attestors.iter().enumerate() {
                if let Some(set) = self.compile_set(set, &a_path.field("attestors").index(k), false)
                {
                    sets.push(set);
                }
            }
            attestations.push(Attestation {
                name: a.name.clone().filter(|n| !n.is_empty()),
                predicate_type,
                attestors: sets,
                conditions: a.conditions.clone(),
                path: a_path,
            });
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(ImageVerification {
            verifier,
            image_references: entry.image_references,
            skip_image_references: entry.skip_image_references,
            attestors,
            attestations,
            repository: Some(entry.repository).filter(|r| !r.is_empty()),
            cosign_oci11: entry.cosign_oci11,
            required: entry.required,
            verify_digest: entry.verify_digest,
            mutate_digest: entry.mutate_digest,
            use_cache: entry.use_cache,
            failure_action: entry.failure_action,
            image_registry_credentials: entry.image_registry_credentials.map(|c| {
                RegistryCredentials {
                    allow_insecure_registry: c.allow_insecure_registry,
                    providers: c.providers,
                    secrets: c.secrets,
                }
            }),
            validate: entry.validate.map(|v| ImageValidation {
                message: v.message,
                deny: v.deny,
            }),
            path: path.clone(),
        })
    }

    fn deprecated_field_warnings(&mut self, entry: &model::ImageVerification, path: &JsonPath) {
        let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let converting = set(&entry.image) || set(&entry.key) || set(&entry.issuer);
        let fields: [(&'static str, bool, &'static str); 6] = [
            ("image", set(&entry.image), "imageReferences"),
            (
                "key",
                set(&entry.key),
                "attestors[].entries[].keys.publicKeys",
            ),
            (
                "issuer",
                set(&entry.issuer),
                "attestors[].entries[].keyless.issuer",
            ),
            (
                "subject",
                set(&entry.subject),
                "attestors[].entries[].keyless.subject",
            ),
            (
                "roots",
                set(&entry.roots),
                "attestors[].entries[].keyless.roots",
            ),
            (
                "annotations",
                !entry.annotations.is_empty(),
                "attestors[].entries[].annotations",
            ),
        ];
        for (field, present, replacement) in fields {
            if present && converting {
                self.warn(
                    &path.field(field),
                    PolicyWarningKind::DeprecatedField { field, replacement },
                );
            }
        }
        if !entry.additional_extensions.is_empty() {
            self.warn(
                &path.field("additionalExtensions"),
                PolicyWarningKind::AdditionalExtensionsDropped,
            );
        }
    }

    fn check_notary(&mut self, entry: &model::ImageVerification, path: &JsonPath) {
        fn walk(loader: &mut DocumentLoader<'_>, sets: &[model::AttestorSet], path: &JsonPath) {
            for (i, set) in sets.iter().enumerate() {
                let set_path = path.index(i);
                for (k, attestor) in set.entries.iter().enumerate() {
                    let entry_path = set_path.field("entries").index(k);
                    if attestor.keys.is_some() {
                        loader.error(&entry_path.field("keys"), PolicyErrorKind::NotaryKeys);
                    }
                    if attestor.keyless.is_some() {
                        loader.error(&entry_path.field("keyless"), PolicyErrorKind::NotaryKeyless);
                    }
                }
            }
        }
        walk(self, &entry.attestors, &path.field("attestors"));
        for (i, a) in entry.attestations.iter().enumerate() {
            walk(
                self,
                &a.attestors,
                &path.field("attestations").index(i).field("attestors"),
            );
        }
    }

    fn compile_set(
        &mut self,
        set: &model::AttestorSet,
        path: &JsonPath,
        expand_keys: bool,
    ) -> Option<AttestorSet> {
        let errors_before = self.errors.len();
        let count = match set.count {
            Some(c) if c < 1 => {
                self.error(&path.field("count"), PolicyErrorKind::CountBelowOne(c));
                None
            }
            Some(c) => {
                if usize::try_from(c).map_or(true, |c| c > set.entries.len()) {
                    self.error(&path.field("count"), PolicyErrorKind::CountExceedsEntries);
                }
                usize::try_from(c).ok()
            }
            None => None,
        };
        if set.entries.is_empty() {
            self.error(&path.field("entries"), PolicyErrorKind::EntryRequired);
        }
        let mut entries = Vec::new();
        for (k, attestor) in set.entries.iter().enumerate() {
            let entry_path = path.field("entries").index(k);
            entries.extend(self.compile_attestor(attestor, &entry_path, expand_keys));
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(AttestorSet {
            count,
            entries,
            path: path.clone(),
        })
    }

    fn signature_hash(&mut self, written: Option<&str>, path: &JsonPath) -> Option<SignatureHash> {
        let name = written.unwrap_or("");
        match SignatureHash::from_kyverno(name) {
            Some(hash) => Some(hash),
            None => {
                let kind = if name == "sha224" {
                    PolicyErrorKind::UnsupportedSignatureAlgorithm(name.to_string())
                } else {
                    PolicyErrorKind::InvalidSignatureAlgorithm(name.to_string())
                };
                self.error(path, kind);
                None
            }
        }
    }

    fn compile_attestor(
        &mut self,
        attestor: &model::Attestor,
        path: &JsonPath,
        expand_keys: bool,
    ) -> Vec<Attestor> {
        let present = [
            attestor.keys.is_some(),
            attestor.certificates.is_some(),
            attestor.keyless.is_some(),
            attestor.attestor.is_some(),
        ]
        .iter()
        .filter(|p| **p)
        .count();
        if present != 1 {
            self.error(path, PolicyErrorKind::AttestorKindRequired);
        }
        let entry_hash = self.signature_hash(
            attestor.signature_algorithm.as_deref(),
            &path.field("signatureAlgorithm"),
        );
        let annotations = attestor.annotations.clone();
        let repository = Some(attestor.repository.clone()).filter(|r| !r.is_empty());
        let make = |kind: AttestorKind, key_index: Option<usize>| {
            Attestor::new(
                kind,
                annotations.clone(),
                repository.clone(),
                path.clone(),
                key_index,
            )
        };
        let mut out = Vec::new();
        if let Some(keys) = &attestor.keys {
            let keys_path = path.field("keys");
            let hash = self.signature_hash(
                keys.signature_algorithm.as_deref(),
                &keys_path.field("signatureAlgorithm"),
            );
            if keys.signature_algorithm.is_none()
                && let Some(written) = attestor.signature_algorithm.as_deref()
                && entry_hash.is_some_and(|h| h != SignatureHash::Sha256)
            {
                self.warn(
                    &path.field("signatureAlgorithm"),
                    PolicyWarningKind::EntrySignatureAlgorithmIgnored(written.to_string()),
                );
            }
            let rekor = self.rekor(keys.rekor.as_ref(), &keys_path.field("rekor"));
            let ctlog = self.ctlog(keys.ctlog.as_ref(), &keys_path.field("ctlog"));
            let sources = self.key_sources(keys, &keys_path, expand_keys);
            if let (Some(hash), Some(sources)) = (hash, sources) {
                let expanded = sources.len() > 1;
                for (i, key) in sources.into_iter().enumerate() {
                    let attestor = KeyAttestor {
                        key,
                        hash,
                        rekor: rekor.clone(),
                        ctlog: ctlog.clone(),
                    };
                    out.push(make(AttestorKind::Key(attestor), expanded.then_some(i)));
                }
            }
        }
        if let Some(certs) = &attestor.certificates {
            let certs_path = path.field("certificates");
            let cert_text = certs.cert.as_deref().filter(|c| !c.trim().is_empty());
            let chain_text = certs.cert_chain.as_deref().filter(|c| !c.trim().is_empty());
            if cert_text.is_none() && chain_text.is_none() {
                self.error(&certs_path, PolicyErrorKind::CertRequired);
            }
            let cert = match cert_text {
                Some(text) => {
                    let parsed = self.certificates(text, &certs_path.field("cert"));
                    if let Some(list) = &parsed
                        && list.len() > 1
                    {
                        self.warn(
                            &certs_path.field("cert"),
                            PolicyWarningKind::SeveralCertificates(list.len()),
                        );
                    }
                    parsed.map(|list| list.into_iter().next())
                }
                None => Some(None),
            };
            let chain = match chain_text {
                Some(text) => self.certificates(text, &certs_path.field("certChain")),
                None => Some(Vec::new()),
            };
            let rekor = self.rekor(certs.rekor.as_ref(), &certs_path.field("rekor"));
            let ctlog = self.ctlog(certs.ctlog.as_ref(), &certs_path.field("ctlog"));
            if let (Some(cert), Some(chain)) = (cert, chain) {
                out.push(make(
                    AttestorKind::Certificate(CertificateAttestor {
                        cert,
                        chain,
                        rekor,
                        ctlog,
                    }),
                    None,
                ));
            }
        }
        if let Some(keyless) = &attestor.keyless {
            let keyless_path = path.field("keyless");
            self.warn(
                &keyless_path,
                PolicyWarningKind::NotSupportedYet("keyless verification is"),
            );
            let roots_text = keyless.roots.as_deref().filter(|r| !r.trim().is_empty());
            if keyless.rekor.is_none() && roots_text.is_none() {
                self.error(&keyless_path, PolicyErrorKind::KeylessRekorOrRoots);
            }
            if keyless.rekor.as_ref().is_some_and(|r| r.url.is_empty()) {
                self.error(
                    &keyless_path.field("rekor").field("url"),
                    PolicyErrorKind::RekorUrlRequired,
                );
            }
            let roots = match roots_text {
                Some(text) => self.certificates(text, &keyless_path.field("roots")),
                None => Some(Vec::new()),
            };
            let rekor = self.rekor(keyless.rekor.as_ref(), &keyless_path.field("rekor"));
            let ctlog = self.ctlog(keyless.ctlog.as_ref(), &keyless_path.field("ctlog"));
            if let Some(roots) = roots {
                out.push(make(
                    AttestorKind::Keyless(KeylessAttestor {
                        issuer: keyless.issuer.clone().filter(|s| !s.is_empty()),
                        issuer_regexp: keyless.issuer_regexp.clone().filter(|s| !s.is_empty()),
                        subject: keyless.subject.clone().filter(|s| !s.is_empty()),
                        subject_regexp: keyless.subject_regexp.clone().filter(|s| !s.is_empty()),
                        roots,
                        additional_extensions: keyless.additional_extensions.clone(),
                        rekor,
                        ctlog,
                    }),
                    None,
                ));
            }
        }
        if let Some(nested) = &attestor.attestor
            && let Some(set) = self.compile_set(nested, &path.field("attestor"), expand_keys)
        {
            out.push(make(AttestorKind::Nested(set), None));
        }
        out
    }

    fn rekor(&mut self, rekor: Option<&model::Rekor>, path: &JsonPath) -> RekorSettings {
        let Some(rekor) = rekor else {
            return RekorSettings::default();
        };
        let public_key = rekor
            .pubkey
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .and_then(|text| self.pem_keys(text, &path.field("pubkey")))
            .and_then(|keys| keys.into_iter().next());
        RekorSettings {
            url: Some(rekor.url.clone()).filter(|u| !u.is_empty()),
            public_key,
            ignore_tlog: rekor.ignore_tlog,
            written: true,
        }
    }

    fn ctlog(&mut self, ctlog: Option<&model::CtLog>, path: &JsonPath) -> CtLogSettings {
        let Some(ctlog) = ctlog else {
            return CtLogSettings::default();
        };
        if !ctlog.ignore_sct {
            self.warn(
                path,
                PolicyWarningKind::NotUsed {
                    field: "ctlog",
                    instead: "certificate transparency (SCT) proofs are not checked yet; set ignoreSCT: true to say that on purpose",
                },
            );
        }
        let public_key = ctlog
            .pubkey
            .as_deref()
            .filter(|k| !k.trim().is_empty())
            .and_then(|text| self.pem_keys(text, &path.field("pubkey")))
            .and_then(|keys| keys.into_iter().next());
        let tsa_cert_chain = ctlog
            .tsa_cert_chain
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .and_then(|text| self.certificates(text, &path.field("tsaCertChain")))
            .unwrap_or_default();
        CtLogSettings {
            ignore_sct: ctlog.ignore_sct,
            public_key,
            tsa_cert_chain,
        }
    }

    /// The keys of a `keys` block, in Kyverno's precedence: publicKeys, secret, kms.
    fn key_sources(
        &mut self,
        keys: &model::StaticKeyAttestor,
        path: &JsonPath,
        expand: bool,
    ) -> Option<Vec<KeySource>> {
        let public_keys = keys.public_keys.as_deref().filter(|k| !k.trim().is_empty());
        let kms = keys.kms.as_deref().filter(|k| !k.trim().is_empty());
        if let Some(text) = public_keys {
            let trimmed = text.trim();
            let pk_path = path.field("publicKeys");
            if text.contains("-----BEGIN") {
                let keys = self.pem_keys(text, &pk_path)?;
                if !expand && keys.len() > 1 {
                    self.warn(&pk_path, PolicyWarningKind::KeysNotExpanded(keys.len()));
                    return Some(keys.into_iter().take(1).map(KeySource::Pem).collect());
                }
                return Some(keys.into_iter().map(KeySource::Pem).collect());
            }
            if let Some(reference) = trimmed.strip_prefix("k8s://") {
                return match reference.split_once('/') {
                    Some((namespace, name))
                        if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
                    {
                        self.warn(
                            &pk_path,
                            PolicyWarningKind::UnsupportedKeySource("keys stored in Secrets"),
                        );
                        Some(vec![KeySource::Secret {
                            namespace: namespace.to_string(),
                            name: name.to_string(),
                        }])
                    }
                    _ => {
                        self.error(
                            &pk_path,
                            PolicyErrorKind::BadSecretReference(trimmed.to_string()),
                        );
                        None
                    }
                };
            }
            if KMS_SCHEMES.iter().any(|s| trimmed.starts_with(s)) {
                self.warn(
                    &pk_path,
                    PolicyWarningKind::UnsupportedKeySource("KMS keys"),
                );
                return Some(vec![KeySource::Kms(trimmed.to_string())]);
            }
            self.warn(
                &pk_path,
                PolicyWarningKind::UnsupportedKeySource("key references other than PEM text"),
            );
            return Some(vec![KeySource::Reference(trimmed.to_string())]);
        }
        if let Some(secret) = &keys.secret {
            self.warn(
                &path.field("secret"),
                PolicyWarningKind::UnsupportedKeySource("keys stored in Secrets"),
            );
            return Some(vec![KeySource::Secret {
                namespace: secret.namespace.clone(),
                name: secret.name.clone(),
            }]);
        }
        if let Some(kms) = kms {
            self.warn(
                &path.field("kms"),
                PolicyWarningKind::UnsupportedKeySource("KMS keys"),
            );
            return Some(vec![KeySource::Kms(kms.trim().to_string())]);
        }
        self.error(path, PolicyErrorKind::KeyRequired);
        None
    }

    /// Splits PEM text into blocks. A non-base64 line (a comment, a placeholder) is reported and
    /// parsing goes on without it, so that one run shows every problem; other PEM defects end
    /// it (`None`). Returns the blocks and the text they were read from.
    fn recover_blocks(
        &mut self,
        text: &str,
        path: &JsonPath,
        what: PemContent,
    ) -> Option<(Vec<pem::PemBlock>, String)> {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        for _ in 0..=lines.len() {
            let current = lines.join("\n");
            let e = match pem::parse_blocks(&current) {
                Ok(blocks) => return Some((blocks, current)),
                Err(e) => e,
            };
            match e.kind {
                PemErrorKind::NotBase64 { content } if e.line >= 1 && e.line <= lines.len() => {
                    self.error_in_text(
                        path,
                        text,
                        e.line,
                        PolicyErrorKind::PemCommentLine {
                            line: e.line,
                            content,
                        },
                    );
                    lines[e.line - 1] = String::new();
                }
                PemErrorKind::BadBase64 { label, reason } => {
                    let damage = diagnose_base64(&lines, e.line, what);
                    let kind = match damage {
                        Some(damage) => PolicyErrorKind::DamagedBase64(damage),
                        None => PolicyErrorKind::BadPem {
                            line: e.line,
                            kind: PemErrorKind::BadBase64 { label, reason },
                        },
                    };
                    let line = match &kind {
                        PolicyErrorKind::DamagedBase64(d) => d.line,
                        _ => e.line,
                    };
                    self.error_in_text(path, text, line, kind);
                    return None;
                }
                kind => {
                    self.error_in_text(
                        path,
                        text,
                        e.line,
                        PolicyErrorKind::BadPem { line: e.line, kind },
                    );
                    return None;
                }
            }
        }
        None
    }

    /// Reports non-blank lines of `publicKeys` outside PEM blocks; true if there were any.
    fn text_outside_blocks(
        &mut self,
        text: &str,
        blocks: &[pem::PemBlock],
        path: &JsonPath,
    ) -> bool {
        let inside = |line: usize| {
            blocks.iter().any(|b| {
                let end = b.begin_line + b.text.lines().count().saturating_sub(1);
                (b.begin_line..=end).contains(&line)
            })
        };
        let mut found = false;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if !trimmed.is_empty() && !inside(i + 1) {
                self.error_in_text(
                    path,
                    text,
                    i + 1,
                    PolicyErrorKind::TextOutsidePem {
                        line: i + 1,
                        content: trimmed.to_string(),
                    },
                );
                found = true;
            }
        }
        found
    }

    fn pem_keys(&mut self, text: &str, path: &JsonPath) -> Option<Vec<PublicKey>> {
        let errors_before = self.errors.len();
        let (blocks, _) = self.recover_blocks(text, path, PemContent::PublicKey)?;
        self.text_outside_blocks(text, &blocks, path);
        if blocks.is_empty() {
            self.error_in_text(
                path,
                text,
                1,
                PolicyErrorKind::BadPem {
                    line: 1,
                    kind: PemErrorKind::NoBlock {
                        expected: PUBLIC_KEY_LABEL.into(),
                    },
                },
            );
        }
        let mut keys = Vec::new();
        for block in blocks {
            if block.label != PUBLIC_KEY_LABEL {
                self.error_in_text(
                    path,
                    text,
                    block.begin_line,
                    PolicyErrorKind::NotAPublicKey {
                        line: block.begin_line,
                        label: block.label,
                    },
                );
                continue;
            }
            match PublicKey::from_spki_der(&block.der) {
                Ok(key) => keys.push(key),
                Err(reason) => self.error_in_text(
                    path,
                    text,
                    block.begin_line,
                    PolicyErrorKind::BadKey {
                        line: block.begin_line,
                        reason,
                    },
                ),
            }
        }
        (self.errors.len() == errors_before).then_some(keys)
    }

    /// Parses certificate PEM (or Kyverno's base64 of PEM), reporting comment lines and parsing
    /// on without them. `None` if anything was wrong.
    fn certificates(&mut self, text: &str, path: &JsonPath) -> Option<Vec<Certificate>> {
        if !text.contains("-----BEGIN") {
            return match cert::parse_pem_certificates(text) {
                Ok(certs) => Some(certs),
                Err(e) => {
                    self.error(path, PolicyErrorKind::BadCertificate(e));
                    None
                }
            };
        }
        let errors_before = self.errors.len();
        let (_, cleaned) = self.recover_blocks(text, path, PemContent::Certificate)?;
        match cert::parse_pem_certificates(&cleaned) {
            Ok(certs) => (self.errors.len() == errors_before).then_some(certs),
            Err(e) => {
                let line = e.line().unwrap_or(1);
                self.error_in_text(path, text, line, PolicyErrorKind::BadCertificate(e));
                None
            }
        }
    }
}

/// What a PEM field holds, for diagnosing damaged base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PemContent {
    PublicKey,
    Certificate,
}

/// Why the base64 body of the block whose BEGIN line is `begin_line` does not decode: the
/// first body line whose length differs from the others' (PEM lines all have one length but the
/// last), and what the body would be if decoded anyway.
fn diagnose_base64(lines: &[String], begin_line: usize, what: PemContent) -> Option<Base64Damage> {
    use base64::Engine;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

    let body: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .skip(begin_line)
        .map(|(i, l)| (i + 1, l.trim()))
        .take_while(|(_, l)| !l.starts_with("-----END"))
        .filter(|(_, l)| !l.is_empty() && !l.contains(':'))
        .collect();
    let (_, first) = body.first()?;
    let expected = first.len();
    let (line, length) = body
        .iter()
        .enumerate()
        .find(|(i, (_, l))| {
            let last = *i + 1 == body.len();
            if last {
                l.len() > expected
            } else {
                l.len() != expected
            }
        })
        .map(|(_, (line, l))| (*line, l.len()))?;
    let mut joined: String = body.iter().map(|(_, l)| *l).collect();
    let joined_len = joined.trim_end_matches('=').len();
    joined.truncate(joined_len - usize::from(joined_len % 4 == 1));
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded_anyway = lenient
        .decode(joined.as_bytes())
        .ok()
        .map(|der| match what {
            PemContent::PublicKey => PublicKey::from_spki_der(&der)
                .err()
                .map(|e| format!("not a valid public key either ({e})")),
            PemContent::Certificate => x509_parser::parse_x509_certificate(&der).err().map(|e| {
                format!(
                    "not valid DER either ({})",
                    cert::der_problem(&e.to_string())
                )
            }),
        });
    Some(Base64Damage {
        line,
        length,
        expected,
        decoded_anyway: decoded_anyway.flatten(),
    })
}

/// The rule name for a path under `spec.rules[i]`, read from the raw document.
fn rule_name_for(value: &Value, path: &JsonPath) -> Option<String> {
    use super::path::Segment;
    match path.segments() {
        [
            Segment::Field(spec),
            Segment::Field(rules),
            Segment::Index(i),
            ..,
        ] if spec == "spec" && rules == "rules" => value["spec"]["rules"][*i]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        _ => None,
    }
}

/// Whether an image pattern can never match a normalised reference (`registry/path:tag`):
/// its literal start names no registry (`nginx:*`, `library/nginx`, `nginx`).
fn never_matches(pattern: &str) -> bool {
    let literal_end = pattern.find(['*', '?']).unwrap_or(pattern.len());
    let literal = &pattern[..literal_end];
    let registry_like = |host: &str| host.contains(['.', ':']) || host == "localhost";
    match literal.split_once('/') {
        Some((host, _)) => !registry_like(host),
        None if literal_end == pattern.len() => true,
        None => match literal.split_once(':') {
            // `nginx:*` could only match a registry called `nginx` with a port.
            Some((host, _)) => !host.contains('.') && host != "localhost",
            None => false,
        },
    }
}

/// The known field closest to `name`, if it is close enough to be a typo.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}
