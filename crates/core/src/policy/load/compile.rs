//! Compiling a decoded document into a [`Policy`]: rules, verifyImages entries, attestor sets
//! and attestors, with Kyverno's defaults and its admission-time checks of each field.

use crate::crypto::key::SignatureHash;
use crate::policy::autogen::{self, AUTOGEN_ANNOTATION};
use crate::policy::compiled::{
    Attestor, AttestorKind, AttestorSet, CertificateAttestor, CtLogSettings, DenyCheck,
    FailureAction, FailureActionOverride, ImageValidation, ImageVerification, KeyAttestor,
    KeylessAttestor, Policy, PolicyKind, RegistryCredentials, RekorSettings, Rule, RuleOrigin,
    pod_spec_pointer,
};
use crate::policy::conditions::Conditions;
use crate::policy::error::{PolicyErrorKind, PolicyWarningKind};
use crate::policy::matching::kind_of;
use crate::policy::model::{self, CredentialProvider, FailurePolicy, PolicyDocument, VerifierType};
use crate::policy::path::JsonPath;
use crate::policy::unsupported::Unsupported;
use crate::policy::unsupported::context_entry_kind;
use crate::policy::variables::{RuleContext, has_variables};
use serde_json::Value;
use std::collections::HashMap;

use super::DocumentLoader;
use super::validate::strings_with_variables;

impl DocumentLoader<'_> {
    pub(super) fn compile(&mut self, document: PolicyDocument) -> Option<Policy> {
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
        self.check_variables(spec.background);
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
        // `configMap` and `variable` entries are resolved (ConfigMaps from the values given);
        // a rule with another kind of entry cannot be evaluated yet.
        let mut context_unsupported = None;
        for (i, entry) in rule.context.iter().enumerate() {
            if let Some(what) = context_entry_kind(entry) {
                let name = entry
                    .get("name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                self.warn(
                    &path.field("context").index(i),
                    PolicyWarningKind::ContextEntryNotEvaluated {
                        name: name.clone(),
                        what,
                    },
                );
                context_unsupported.get_or_insert(Unsupported::ContextEntry { name, what });
            }
        }
        let policy_name = self.policy.clone().unwrap_or_default();
        let mut given = serde_json::Map::new();
        self.values
            .values()
            .apply(&policy_name, &rule.name, None, &mut given);
        self.rule_context = Some(RuleContext::build_with(
            &rule.context,
            self.values,
            given,
            None,
        ));
        self.defer_all_variables = self.values.values().has_resource_values(&policy_name);
        let preconditions = match rule.preconditions.as_ref().filter(|v| !v.is_null()) {
            None => None,
            Some(raw) => match Conditions::parse(raw, &path.field("preconditions")) {
                Ok(conditions) => {
                    for field in conditions.ignored_fields() {
                        let name = field.last_field().unwrap_or_default().to_string();
                        self.warn(field, PolicyWarningKind::IgnoredConditionField(name));
                    }
                    Some(conditions)
                }
                Err(errors) => {
                    for e in errors {
                        self.error(e.path(), PolicyErrorKind::Conditions(e.reason()));
                    }
                    None
                }
            },
        };
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
        let mut deferred = Vec::new();
        for (j, entry) in rule.verify_images.iter().flatten().enumerate() {
            self.entry_reads_request = false;
            let entry_path = entries_path.index(j);
            if let Some(compiled) = self.compile_entry(entry, &entry_path, &rule.name) {
                verify_images.push(compiled);
            }
            if self.entry_reads_request {
                deferred.push((j, entry_path.clone(), self.written_entry(&entry_path)));
            }
        }
        self.entry_reads_request = false;
        self.rule_context = None;
        let request_scope = self.request_scope(deferred, preconditions);
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
            request_scope,
            unsupported: if let Some(why) = context_unsupported {
                Some(why)
            } else if rule
                .cel_preconditions
                .as_ref()
                .is_some_and(|v| !v.is_null())
            {
                Some(Unsupported::CelPreconditions)
            } else {
                None
            },
        })
    }

    pub(super) fn compile_entry(
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
            VerifierType::Cosign | VerifierType::SigstoreBundle => {}
            VerifierType::Notary => self.warn(
                &path.field("type"),
                PolicyWarningKind::NotSupportedYet("type: Notary is"),
            ),
        }
        if verifier == VerifierType::SigstoreBundle && !entry.repository.is_empty() {
            self.warn(
                &path.field("repository"),
                PolicyWarningKind::NotUsed {
                    field: "repository",
                    instead: "type: SigstoreBundle reads the referrers of the image in its own repository, as Kyverno does",
                },
            );
        }
        // `secrets` are read by `serve --kubernetes` (pull secrets); `apply` and `test` use the
        // registry flags and docker config files, as Kyverno's CLI does.
        if let Some(credentials) = &entry.image_registry_credentials {
            let creds = path.field("imageRegistryCredentials");
            if credentials
                .providers
                .iter()
                .any(|p| *p != CredentialProvider::Default)
            {
                self.warn(
                    &creds.field("providers"),
                    PolicyWarningKind::NotUsed {
                        field: "providers",
                        instead: "cloud credential providers (google, azure, amazon, github) are not read; keep the registry's credentials in a pull secret named in secrets",
                    },
                );
            }
            if credentials.allow_insecure_registry {
                self.warn(
                    &creds.field("allowInsecureRegistry"),
                    PolicyWarningKind::NotUsed {
                        field: "allowInsecureRegistry",
                        instead: "plain HTTP is allowed only for the hosts given to --allow-insecure-registry",
                    },
                );
            }
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
        let written_deny = entry
            .validate
            .as_ref()
            .and_then(|v| v.deny.as_ref())
            .filter(|d| !d.is_null());
        // Named predicates are kept in the outcomes only for the deny conditions to read.
        let keep_predicates = written_deny.is_some();
        let mut attestations = Vec::new();
        for (i, a) in entry.attestations.iter().enumerate() {
            let a_path = path.field("attestations").index(i);
            attestations.extend(self.compile_attestation(a, &a_path, keep_predicates));
        }
        let validate_path = path.field("validate");
        let mut deny_unresolved = None;
        let deny = match written_deny {
            None => None,
            Some(_) if entry.attestations.is_empty() => {
                self.warn(
                    &validate_path.field("deny"),
                    PolicyWarningKind::DenyWithoutAttestations,
                );
                None
            }
            Some(raw) => {
                let conditions_path = validate_path.field("deny").field("conditions");
                let written = raw.get("conditions").cloned().unwrap_or(Value::Null);
                match Conditions::parse(&written, &conditions_path) {
                    Ok(conditions) => {
                        for field in conditions.ignored_fields() {
                            let name = field.last_field().unwrap_or_default().to_string();
                            self.warn(field, PolicyWarningKind::IgnoredConditionField(name));
                        }
                        let mut variables = Vec::new();
                        strings_with_variables(&written, &conditions_path, &mut variables);
                        if let Some(message) =
                            entry.validate.as_ref().and_then(|v| v.message.as_ref())
                            && has_variables(message)
                        {
                            variables.push((validate_path.field("message"), message.clone()));
                        }
                        deny_unresolved = self.entry_with_no_value_read_by(&variables);
                        Some(DenyCheck {
                            conditions,
                            context: self.context_read_by(&variables),
                        })
                    }
                    Err(errors) => {
                        for e in errors {
                            self.error(e.path(), PolicyErrorKind::Conditions(e.reason()));
                        }
                        None
                    }
                }
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let unsupported = if verifier == VerifierType::Notary {
            Some(Unsupported::VerifierType(verifier))
        } else {
            deny_unresolved
        };
        Some(ImageVerification {
            unsupported,
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
                deny,
            }),
            path: path.clone(),
        })
    }

    pub(super) fn compile_set(
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

    pub(super) fn compile_attestor(
        &mut self,
        attestor: &model::Attestor,
        path: &JsonPath,
        expand_keys: bool,
    ) -> Vec<Attestor> {
        if let Some(resolved) = self.resolve_attestor(attestor, path, expand_keys) {
            return resolved;
        }
        self.compile_attestor_as_written(attestor, path, expand_keys)
    }

    pub(super) fn compile_attestor_as_written(
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
            self.warn_tlog_required(keys.rekor.as_ref(), &keys_path.field("rekor"), "keys");
            let ctlog = self.ctlog(keys.ctlog.as_ref(), &keys_path.field("ctlog"), false);
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
            self.warn_tlog_required(
                certs.rekor.as_ref(),
                &certs_path.field("rekor"),
                "certificates",
            );
            let ctlog = self.ctlog(certs.ctlog.as_ref(), &certs_path.field("ctlog"), false);
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
            let ctlog = self.ctlog(keyless.ctlog.as_ref(), &keyless_path.field("ctlog"), true);
            let text = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
            let (issuer, issuer_regexp) = (text(&keyless.issuer), text(&keyless.issuer_regexp));
            let (subject, subject_regexp) = (text(&keyless.subject), text(&keyless.subject_regexp));
            let mut regex = |pattern: &Option<String>, field: &'static str| {
                pattern.as_deref().map(|p| {
                    let compiled = regex::Regex::new(p).map_err(|e| e.to_string());
                    if let Err(reason) = &compiled {
                        self.warn(
                            &keyless_path.field(field),
                            PolicyWarningKind::InvalidIdentityRegexp {
                                field,
                                reason: reason.clone(),
                            },
                        );
                    }
                    compiled
                })
            };
            let issuer_regex = regex(&issuer_regexp, "issuerRegExp");
            let subject_regex = regex(&subject_regexp, "subjectRegExp");
            for key in keyless.additional_extensions.keys() {
                if crate::sigstore::fulcio::extension_oid(key).is_none() {
                    self.warn(
                        &keyless_path.field("additionalExtensions").field(key),
                        PolicyWarningKind::UnknownCertificateExtension(key.clone()),
                    );
                }
            }
            if issuer.is_none()
                && issuer_regexp.is_none()
                && subject.is_none()
                && subject_regexp.is_none()
                && keyless.additional_extensions.is_empty()
            {
                self.warn(&keyless_path, PolicyWarningKind::KeylessWithoutIdentity);
            }
            if let Some(roots) = roots {
                out.push(make(
                    AttestorKind::Keyless(KeylessAttestor {
                        issuer,
                        issuer_regexp,
                        subject,
                        subject_regexp,
                        issuer_regex,
                        subject_regex,
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

    /// A `rekor` block on a `keys` or `certificates` attestor, without `ignoreTlog: true`,
    /// requires a transparency-log proof that signatures made with a key and no upload (as
    /// `sealgate sign` and `cosign sign --tlog-upload=false` make them) do not carry.
    fn warn_tlog_required(
        &mut self,
        rekor: Option<&model::Rekor>,
        path: &JsonPath,
        attestor: &'static str,
    ) {
        if rekor.is_some_and(|r| !r.ignore_tlog) {
            self.warn(path, PolicyWarningKind::TlogRequired { attestor });
        }
    }

    /// `ctlog` with Kyverno's defaults; `scts_checked` says whether sealgate checks SCTs for the
    /// attestor (keyless: yes; keys and certificates: not yet, which a block without
    /// `ignoreSCT: true` is told).
    fn ctlog(
        &mut self,
        ctlog: Option<&model::CtLog>,
        path: &JsonPath,
        scts_checked: bool,
    ) -> CtLogSettings {
        let Some(ctlog) = ctlog else {
            return CtLogSettings::default();
        };
        if !ctlog.ignore_sct && !scts_checked {
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
