//! What a rule resolves per request: the `request.*`, `images.*` and `serviceAccountName`
//! variables (and the context entries and given values built on them) are known only when a
//! resource is reviewed. A rule whose verifyImages entries read them is compiled once at load
//! with those entries left open, and again, entry by entry, for each request
//! ([`RequestScope::instantiate`]), with the same loader and the same messages as at load.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::policy::compiled::{FailureAction, ImageVerification, Rule};
use crate::policy::conditions::Conditions;
use crate::policy::de;
use crate::policy::model;
use crate::policy::path::JsonPath;
use crate::policy::unsupported::Unsupported;
use crate::policy::variables::{ContextValues, ImageDataSet, RequestVariables, RuleContext};
use crate::policy::yaml::Document;

use super::{DocumentLoader, LoadOptions};

/// The parts of a rule resolved per request.
#[derive(Debug, Clone)]
pub struct RequestScope {
    source: Arc<str>,
    document: Arc<Document>,
    policy: String,
    spec_action: FailureAction,
    options: LoadOptions,
    values: ContextValues,
    /// verifyImages entries compiled per request: index in the rule's entries, written path,
    /// the entry as written.
    deferred: Vec<(usize, JsonPath, Value)>,
    /// The rule's preconditions, evaluated per request before its entries are compiled.
    preconditions: Option<Conditions>,
    /// Entries compiled before, by their text with every variable resolved (and where the
    /// values came from): a request that resolves to the same keys costs no parse, and a
    /// rotated key is a new text, compiled once.
    compiled: Arc<Mutex<HashMap<String, ImageVerification>>>,
}

/// How many compiled entries a scope keeps (it starts again when full).
const COMPILED_ENTRIES: usize = 256;

/// A rule as it stands for one request.
#[derive(Debug)]
pub enum RuleInstance {
    /// Nothing in the rule depends on the request.
    Unchanged,
    /// The rule with its request-dependent entries compiled for this request.
    Resolved(Box<Rule>),
}

/// Kyverno's autogen text shift, applied to every string of a raw value.
pub(crate) type Replacements<'a> = &'a [(&'a str, &'a str)];

impl RequestScope {
    /// Whether some verifyImages entry is compiled per request.
    pub fn has_deferred_entries(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// The variables a rule's context starts from for one request: the request's own
    /// (`request`, `images`, `serviceAccountName`…), then the values given for the rule and
    /// `resource` (`apply --values-file`), as Kyverno sets them before the rule's entries.
    pub fn base(
        &self,
        rule: &Rule,
        request: &RequestVariables,
        resource: &str,
    ) -> Map<String, Value> {
        let mut own = Map::new();
        let shared = request.values();
        let given = self.values.values();
        given.apply_over(&self.policy, &rule.name, Some(resource), shared, &mut own);
        if let crate::policy::RuleOrigin::Autogen { rule: written }
        | crate::policy::RuleOrigin::AutogenCronJob { rule: written } = &rule.origin
        {
            given.apply_over(&self.policy, written, Some(resource), shared, &mut own);
        }
        own
    }

    /// The rule's context for one request (`base` from [`RequestScope::base`]), with the
    /// image data fetched so far for its `imageRegistry` entries.
    pub fn context(
        &self,
        rule: &Rule,
        base: Map<String, Value>,
        request: &Arc<RequestVariables>,
        image_data: &ImageDataSet,
    ) -> RuleContext {
        RuleContext::build_over(
            &rule.context,
            &self.values,
            base,
            Some(request.clone()),
            Some(image_data),
        )
    }

    /// Whether the rule's preconditions hold for one request (`context` from
    /// [`RequestScope::context`]): `Ok(None)` when they do (or there are none), `Ok(Some(message))`
    /// with Kyverno's skip message when they do not, `Err` when they cannot be evaluated.
    pub fn preconditions(&self, context: &RuleContext) -> Result<Option<String>, String> {
        let Some(conditions) = &self.preconditions else {
            return Ok(None);
        };
        match context.with_context(|c| conditions.evaluate_in(c)) {
            Ok(outcome) if outcome.met => Ok(None),
            Ok(outcome) => Ok(Some(outcome.skip_message())),
            Err(e) => Err(format!("failed to evaluate preconditions: {e}")),
        }
    }

    /// `rule` (which carries this scope) for one request whose context is `context`: its
    /// deferred entries compiled with the request's variables. A variable that does not
    /// resolve, or a value that is no valid key, is the attestor's error result, as at load.
    pub fn instantiate(&self, rule: &Rule, context: RuleContext) -> RuleInstance {
        if self.deferred.is_empty() {
            return RuleInstance::Unchanged;
        }
        let mut loader = DocumentLoader::new(&self.source, &self.document, &self.values);
        loader.options = self.options;
        loader.policy = Some(self.policy.clone());
        loader.rule = Some(rule.name.clone());
        loader.spec_action = self.spec_action;
        loader.rule_context = Some(context);
        loader.per_request = true;
        let mut resolved = rule.clone();
        for (index, path, raw) in &self.deferred {
            let Some(slot) = resolved.verify_images.get_mut(*index) else {
                continue;
            };
            // The same text compiles to the same entry: the cache key is the resolved text.
            let key = loader
                .rule_context
                .as_ref()
                .and_then(|c| compiled_key(*index, raw, c));
            if let Some(key) = &key
                && let Some(hit) = self.lock_compiled().get(key)
            {
                *slot = hit.clone();
                continue;
            }
            let errors_before = loader.errors.len();
            let compiled = match de::decode::<model::ImageVerification>(raw, path) {
                Ok((entry, _)) => loader.compile_entry(&entry, path, &rule.name),
                Err(e) => {
                    slot.unsupported = Some(Unsupported::Variable {
                        message: format!("{}: {}", e.path, e.message),
                    });
                    continue;
                }
            };
            match compiled {
                Some(entry) if loader.errors.len() == errors_before => {
                    if let Some(key) = key {
                        let mut compiled = self.lock_compiled();
                        if compiled.len() >= COMPILED_ENTRIES {
                            compiled.clear();
                        }
                        compiled.insert(key, entry.clone());
                    }
                    *slot = entry;
                }
                _ => {
                    let problems: Vec<String> = loader
                        .errors
                        .drain(errors_before..)
                        .map(|e| format!("{}: {}", e.location.path, e.kind))
                        .collect();
                    slot.unsupported = Some(Unsupported::Variable {
                        message: problems.join("; "),
                    });
                }
            }
        }
        RuleInstance::Resolved(Box::new(resolved))
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<String, ImageVerification>> {
        // A poisoned cache is still a cache of whole entries.
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many compiled entries are kept (for tests).
    #[cfg(test)]
    pub(crate) fn compiled_entries(&self) -> usize {
        self.lock_compiled().len()
    }

    /// This scope for an autogen rule: Kyverno's text shift applied to the deferred entries,
    /// and the preconditions compiled again from the rule's shifted ones.
    pub(crate) fn shifted(
        &self,
        replacements: Replacements<'_>,
        shift: fn(&mut Value, Replacements<'_>),
        preconditions: Option<&Value>,
    ) -> RequestScope {
        let mut out = self.clone();
        out.compiled = Arc::default();
        for (_, _, raw) in &mut out.deferred {
            shift(raw, replacements);
        }
        if let (Some(written), Some(raw)) = (&self.preconditions, preconditions) {
            // The text shift keeps a valid block valid.
            out.preconditions = Conditions::parse(raw, written.path()).ok();
        }
        out
    }
}

/// The key under which entry `index` (`raw`, as written) compiled over `context` is kept: its
/// text with every variable resolved, and where the values came from. Attestation
/// `conditions` and `validate` are evaluated later, over the statements, so they are part of
/// the key as written (their variables may name the predicate, which `context` lacks); when
/// they read `context` itself, the compiled entry carries this request's context and is not
/// kept (`None`).
fn compiled_key(index: usize, raw: &Value, context: &RuleContext) -> Option<String> {
    let mut checks = raw.clone();
    let mut later = Map::new();
    if let Some(attestations) = checks.get_mut("attestations").and_then(Value::as_array_mut) {
        let conditions: Vec<Value> = attestations
            .iter_mut()
            .map(|a| {
                a.as_object_mut()
                    .and_then(|a| a.remove("conditions"))
                    .unwrap_or(Value::Null)
            })
            .collect();
        later.insert("conditions".into(), Value::Array(conditions));
    }
    if let Some(validate) = checks.as_object_mut().and_then(|c| c.remove("validate")) {
        later.insert("validate".into(), validate);
    }
    let later = Value::Object(later);
    if super::super::variables::strings_of(&later)
        .iter()
        .any(|t| context.text_reads_context(t))
    {
        return None;
    }
    let resolved = context.substitute_value(&checks).ok()?;
    Some(format!(
        "{index}\n{resolved}\n{later}\n{}",
        context.sources_text()
    ))
}

impl DocumentLoader<'_> {
    /// The request scope of the rule just compiled at `path`, when something in it is
    /// resolved per request.
    pub(super) fn request_scope(
        &mut self,
        deferred: Vec<(usize, JsonPath, Value)>,
        preconditions: Option<Conditions>,
    ) -> Option<Arc<RequestScope>> {
        let values_per_resource = self
            .values
            .values()
            .has_resource_values(self.policy.as_deref().unwrap_or_default());
        if deferred.is_empty() && preconditions.is_none() && !values_per_resource {
            return None;
        }
        let document = self
            .shared_document
            .get_or_insert_with(|| Arc::new(self.document.clone()))
            .clone();
        Some(Arc::new(RequestScope {
            source: Arc::from(self.source),
            document,
            policy: self.policy.clone().unwrap_or_default(),
            spec_action: self.spec_action,
            options: self.options,
            values: self.values.clone(),
            deferred,
            preconditions,
            compiled: Arc::default(),
        }))
    }

    /// The written verifyImages entry at `path`, as it is in the document.
    pub(super) fn written_entry(&self, path: &JsonPath) -> Value {
        path.lookup(&self.document.value)
            .cloned()
            .unwrap_or(Value::Null)
    }
}
