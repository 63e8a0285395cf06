//! Kyverno variables: `{{ JMESPATH }}` in policy fields, resolved against a rule's context.
//!
//! The rules are Kyverno's (`pkg/engine/variables`):
//!
//! * a field that is exactly one variable (`"{{ keys.data.pub }}"`) becomes the value itself;
//! * a variable inside other text (`"prefix-{{ x }}"`) is replaced by the value as text (a
//!   string as it is, anything else as JSON);
//! * `\{{ … }}` is not a variable: the backslash is dropped and the braces stay;
//! * a variable that does not resolve (no such value, `null`, a bad expression) is an error,
//!   never an empty string.
//!
//! The context is a JSON object of named values: a rule's `context` entries under their names
//! (a ConfigMap as `{metadata: {…}, data: {…}}`), built by [`RuleContext`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use jmespath::{Rcvar, ToJmespath, Variable};
use serde_json::{Map, Value};

use super::values::Values;

/// Why a variable could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// `{{` without its `}}`.
    #[error("`{text}` opens a variable with `{{{{` that is never closed")]
    Unclosed {
        /// The text.
        text: String,
    },
    /// Not a JMESPath expression.
    #[error("`{{{{ {expression} }}}}` is not a JMESPath expression: {reason}")]
    BadExpression {
        /// The expression.
        expression: String,
        /// The parser's words.
        reason: String,
    },
    /// The expression gave nothing (`null`) or failed.
    #[error("`{{{{ {expression} }}}}`{source_text}: {reason}")]
    NotResolved {
        /// The expression.
        expression: String,
        /// ` from ConfigMap NS/NAME` when the expression reads a ConfigMap context entry.
        source_text: String,
        /// Why.
        reason: String,
    },
}

/// Whether `text` holds a variable (an unescaped `{{`).
pub fn has_variables(text: &str) -> bool {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(1))
        .any(|i| bytes[i] == b'{' && bytes[i + 1] == b'{' && (i == 0 || bytes[i - 1] != b'\\'))
}

/// Every variable expression in `text`, inner ones (of `{{ a."{{ b }}" }}`) included; an
/// unclosed `{{` is text, as Kyverno reads it.
pub fn expressions(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let Ok(pieces) = pieces(text) else {
        return out;
    };
    for piece in pieces {
        if let Piece::Variable(expression) = piece {
            if has_variables(expression) {
                out.extend(expressions(expression));
            } else {
                out.push(expression);
            }
        }
    }
    out
}

/// Whether `expression` is a JMESPath expression (with Kyverno's functions).
pub fn check_expression(expression: &str) -> Result<(), VariableError> {
    super::functions::runtime()
        .compile(expression)
        .map(|_| ())
        .map_err(|e| VariableError::BadExpression {
            expression: expression.to_string(),
            reason: e.to_string(),
        })
}

/// The user variables Kyverno refuses in a policy with background processing on (it has no
/// requester in a background scan).
const USER_VARIABLES: &[&str] = &[
    "serviceAccountName",
    "serviceAccountNamespace",
    "request.userInfo",
    "request.roles",
    "request.clusterRoles",
];

/// The first user variable (`request.userInfo`, `serviceAccountName`…) `expression` names, as
/// Kyverno finds it: not after a `.`, and ending at a word boundary.
pub fn user_variable(expression: &str) -> Option<&'static str> {
    let text = format!("{{{{{expression}}}}}");
    USER_VARIABLES.iter().copied().find(|name| {
        text.match_indices(name).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + name.len()..].chars().next();
            before.is_some_and(|c| c != '.')
                && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
        })
    })
}

/// One piece of a field's text.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    /// An escaped `\{{…}}`: the text without the backslash.
    Escaped(&'a str),
    /// A variable's expression (trimmed).
    Variable(&'a str),
}

/// Splits `text` into literal text and variables. Like Kyverno's pattern, a variable's body may
/// hold one level of `{…}` (a JMESPath multi-select hash).
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, VariableError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let escaped = start > 0 && rest.as_bytes()[start - 1] == b'\\';
        let body_start = start + 2;
        let mut depth = 0usize;
        let mut end = None;
        let bytes = rest.as_bytes();
        let mut i = body_start;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => depth += 1,
                b'}' if depth > 0 => depth -= 1,
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            if escaped {
                break;
            }
            return Err(VariableError::Unclosed {
                text: text.to_string(),
            });
        };
        if escaped {
            out.push(Piece::Text(&rest[..start - 1]));
            out.push(Piece::Escaped(&rest[start..end + 2]));
        } else {
            out.push(Piece::Text(&rest[..start]));
            out.push(Piece::Variable(rest[body_start..end].trim()));
        }
        rest = &rest[end + 2..];
    }
    out.push(Piece::Text(rest));
    out.retain(|p| *p != Piece::Text(""));
    Ok(out)
}

/// The variables expressions read: a JSON value and, made the first time an expression reads
/// it, its conversion to JMESPath's own values, shared by every later expression. (Converting
/// a request with its Pod for every variable was most of the cost of a rule that reads the
/// request.)
#[derive(Debug)]
pub struct Context<'v> {
    /// The JSON value, when the context was given as one (`None`: made converted, see
    /// [`Context::converted_as`]).
    value: Option<&'v Value>,
    converted: OnceLock<Rcvar>,
}

impl<'v> Context<'v> {
    /// The context `value`, not converted yet.
    pub fn new(value: &'v Value) -> Context<'v> {
        Context {
            value: Some(value),
            converted: OnceLock::new(),
        }
    }

    /// A context converted already.
    fn converted_as(converted: Rcvar) -> Context<'v> {
        Context {
            value: None,
            converted: OnceLock::from(converted),
        }
    }

    fn converted(&self) -> Result<&Rcvar, String> {
        if let Some(done) = self.converted.get() {
            return Ok(done);
        }
        let done = self
            .value
            .unwrap_or(&Value::Null)
            .to_jmespath()
            .map_err(|e| e.to_string())?;
        Ok(self.converted.get_or_init(|| done))
    }
}

/// A rule context's conversion for JMESPath (see [`Context`]), kept member by member: the
/// request's members come converted once per review ([`RequestVariables`]), an entry is
/// converted when it is added, and the whole object is assembled from them (shared, not
/// copied) the first time an expression reads it. Two are always equal: it is a cache of the
/// value beside it.
#[derive(Debug, Clone, Default)]
struct Conversion {
    /// The rule's own members, converted when they were set.
    members: BTreeMap<String, Rcvar>,
    whole: OnceLock<Rcvar>,
}

impl PartialEq for Conversion {
    fn eq(&self, _: &Conversion) -> bool {
        true
    }
}

impl Conversion {
    /// The whole context: the request's members (converted once per review) under the rule's
    /// own (`own`, converted as they were set or now).
    fn whole(&self, own: &Map<String, Value>, shared: Option<&RequestVariables>) -> Option<Rcvar> {
        if let Some(done) = self.whole.get() {
            return Some(done.clone());
        }
        let mut members = shared.map(|r| r.members().clone()).unwrap_or_default();
        for (name, member) in own {
            let converted = match self.members.get(name) {
                Some(done) => done.clone(),
                None => member.to_jmespath().ok()?,
            };
            members.insert(name.clone(), converted);
        }
        Some(
            self.whole
                .get_or_init(|| Rcvar::new(Variable::Object(members)))
                .clone(),
        )
    }

    /// The rule's own member `name` was set to `value`: converted now, the whole made again when
    /// read.
    fn set(&mut self, name: &str, value: &Value) {
        self.whole = OnceLock::new();
        match value.to_jmespath() {
            Ok(converted) => {
                self.members.insert(name.to_string(), converted);
            }
            Err(_) => {
                self.members.remove(name);
            }
        }
    }
}

/// The variables Kyverno sets from the request (`request`, `images`, `serviceAccountName`…),
/// made once per review for every rule that reads them, converted for JMESPath once.
#[derive(Debug)]
pub struct RequestVariables {
    values: Map<String, Value>,
    members: OnceLock<BTreeMap<String, Rcvar>>,
}

impl PartialEq for RequestVariables {
    fn eq(&self, other: &RequestVariables) -> bool {
        self.values == other.values
    }
}

impl RequestVariables {
    /// The variables `values`, not converted yet.
    pub fn new(values: Map<String, Value>) -> RequestVariables {
        RequestVariables {
            values,
            members: OnceLock::new(),
        }
    }

    /// The variables.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// Each member converted (made the first time a rule asks).
    fn members(&self) -> &BTreeMap<String, Rcvar> {
        self.members.get_or_init(|| {
            self.values
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.to_jmespath().ok()?)))
                .collect()
        })
    }
}

/// Evaluates one JMESPath expression against `context`.
pub fn evaluate(expression: &str, context: &Value) -> Result<Value, VariableError> {
    evaluate_in(expression, &Context::new(context))
}

/// Evaluates one JMESPath expression against `context`, converted once for every expression
/// that reads it.
pub fn evaluate_in(expression: &str, context: &Context<'_>) -> Result<Value, VariableError> {
    let compiled = super::functions::runtime()
        .compile(expression)
        .map_err(|e| VariableError::BadExpression {
            expression: expression.to_string(),
            reason: e.to_string(),
        })?;
    let not_resolved = |reason: String| VariableError::NotResolved {
        expression: expression.to_string(),
        source_text: String::new(),
        reason,
    };
    // `interpret` over the converted context: `Expression::search` would convert it again
    // (without the crate's `specialized` feature it serialises whatever it is given).
    let runtime = super::functions::runtime();
    let found = jmespath::interpret(
        context.converted().map_err(not_resolved)?,
        compiled.as_ast(),
        &mut jmespath::Context::new(expression, runtime),
    )
    .map_err(|e| not_resolved(super::functions::describe_error(&e)))?;
    let value = serde_json::to_value(&*found).map_err(|e| not_resolved(e.to_string()))?;
    if value.is_null() && !names_a_null(expression, context.converted().map_err(not_resolved)?) {
        return Err(not_resolved("no such value".into()));
    }
    Ok(value)
}

/// Whether `expression` is a plain path (`a.b."c.d"`) to a member that is there and `null`:
/// Kyverno's JMESPath tells a missing key (an error) from a `null` value (substituted as null),
/// which a search result alone does not.
fn names_a_null(expression: &str, context: &Variable) -> bool {
    let mut node = context;
    let mut rest = expression.trim();
    loop {
        let (name, after) = if let Some(quoted) = rest.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => return false,
            }
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return false;
            }
            (name, &rest[end..])
        };
        let Variable::Object(members) = node else {
            return false;
        };
        let Some(next) = members.get(name) else {
            return false;
        };
        node = next;
        match after.strip_prefix('.') {
            Some(more) => rest = more,
            None if after.is_empty() => return matches!(node, Variable::Null),
            None => return false,
        }
    }
}

/// Substitutes the variables of `text` from `context`: a field that is exactly one variable
/// becomes its value (any JSON), otherwise the text with each variable's value as text.
pub fn substitute(text: &str, context: &Value) -> Result<Value, VariableError> {
    substitute_in(text, &Context::new(context))
}

/// [`substitute`] over a context converted once for every variable that reads it.
pub fn substitute_in(text: &str, context: &Context<'_>) -> Result<Value, VariableError> {
    let pieces = pieces(text)?;
    if let [Piece::Variable(expression)] = pieces.as_slice() {
        return evaluate_nested(expression, context);
    }
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Text(t) | Piece::Escaped(t) => out.push_str(t),
            Piece::Variable(expression) => match evaluate_nested(expression, context)? {
                Value::String(s) => out.push_str(&s),
                other => out.push_str(&other.to_string()),
            },
        }
    }
    Ok(Value::String(out))
}

/// Evaluates an expression that may itself hold variables (`keys.data."{{ team }}"`): the inner
/// ones first, as Kyverno resolves the innermost variable first.
fn evaluate_nested(expression: &str, context: &Context<'_>) -> Result<Value, VariableError> {
    if !has_variables(expression) {
        return evaluate_in(expression, context);
    }
    let inner = match substitute_in(expression, context)? {
        Value::String(s) => s,
        other => other.to_string(),
    };
    evaluate_in(&inner, context)
}

/// Substitutes the variables in every string of `value` (keys are left as written).
pub fn substitute_value(value: &Value, context: &Value) -> Result<Value, VariableError> {
    let context = Context::new(context);
    map_strings(value, &|s| substitute_in(s, &context))
}

/// `value` with every string holding a variable replaced by `f`'s value for it.
fn map_strings(
    value: &Value,
    f: &dyn Fn(&str) -> Result<Value, VariableError>,
) -> Result<Value, VariableError> {
    Ok(match value {
        Value::String(s) if has_variables(s) => f(s)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| map_strings(v, f))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), map_strings(v, f)?)))
                .collect::<Result<_, VariableError>>()?,
        ),
        other => other.clone(),
    })
}

/// Every string in `value` (object keys left out), in document order.
pub(crate) fn strings_of(value: &Value) -> Vec<&str> {
    fn walk<'v>(value: &'v Value, out: &mut Vec<&'v str>) {
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out);
    out
}

/// Values `context` entries read from outside the policy: ConfigMaps by namespace and name
/// (`serve --kubernetes` watches them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextValues {
    config_maps: BTreeMap<(String, String), Value>,
    /// Whether ConfigMaps are read at all (a ConfigMap not here is then missing).
    reads_config_maps: bool,
    /// Values given for variables (`apply --values-file`, a test's values).
    values: Values,
}

impl ContextValues {
    /// No values: ConfigMaps are not read (`apply`, `test`, `serve --policies`).
    pub fn new() -> ContextValues {
        ContextValues::default()
    }

    /// ConfigMaps are read (from a cluster); those not added are missing.
    pub fn reading_config_maps() -> ContextValues {
        ContextValues {
            reads_config_maps: true,
            ..ContextValues::default()
        }
    }

    /// Adds a ConfigMap's `data` (string values).
    pub fn insert_config_map(
        &mut self,
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, String>,
    ) {
        let data: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
            "data": data,
        });
        self.config_maps
            .insert((namespace.to_string(), name.to_string()), object);
        self.reads_config_maps = true;
    }

    /// The ConfigMap, as an object.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.config_maps
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Whether ConfigMaps are read at all.
    pub fn reads_config_maps(&self) -> bool {
        self.reads_config_maps
    }

    /// These values with `values` given for variables.
    pub fn with_values(mut self, values: Values) -> ContextValues {
        self.values = values;
        self
    }

    /// The values given for variables.
    pub fn values(&self) -> &Values {
        &self.values
    }
}

/// The names Kyverno puts into every rule's context from the request: a variable starting with
/// one of them can only be resolved per request.
pub const REQUEST_NAMES: &[&str] = &[
    "request",
    "serviceAccountName",
    "serviceAccountNamespace",
    "images",
    "image",
    "element",
    "elementIndex",
];

/// Whether the variables of `text` read something known only per request: a [`REQUEST_NAMES`]
/// name or one of `scoped` (context entries that do).
pub fn reads_request(text: &str, scoped: &BTreeSet<String>) -> bool {
    let Ok(pieces) = pieces(text) else {
        return false;
    };
    pieces.iter().any(|p| match p {
        Piece::Variable(expression) => expression_reads_request(expression, scoped),
        _ => false,
    })
}

/// Whether a JMESPath expression names a request name or a scoped entry anywhere.
fn expression_reads_request(expression: &str, scoped: &BTreeSet<String>) -> bool {
    expression_names(expression, &|word| {
        REQUEST_NAMES.contains(&word) || scoped.contains(word)
    })
}

/// Whether a JMESPath expression starts a path with a name `wanted` accepts anywhere (an
/// identifier at the start or after a non-identifier character, not after `.`, outside string
/// literals).
fn expression_names(expression: &str, wanted: &dyn Fn(&str) -> bool) -> bool {
    let bytes = expression.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || (!ident(bytes[i - 1]) && bytes[i - 1] != b'.')) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &expression[start..i];
            // Not inside a string literal: count quotes before.
            let quotes = expression[..start].matches('\'').count();
            let backticks = expression[..start].matches('`').count();
            if quotes.is_multiple_of(2) && backticks.is_multiple_of(2) && wanted(word) {
                return true;
            }
        } else {
            i += 1;
        }
    }
    false
}

/// Why a context entry has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Missing {
    /// ` from ConfigMap NS/NAME`, or empty.
    source_text: String,
    /// Why it is missing.
    reason: String,
}

impl Missing {
    /// The error of `expression`, which reads the entry `name` this is missing from.
    fn error(&self, name: &str, expression: String) -> VariableError {
        VariableError::NotResolved {
            expression,
            source_text: self.source_text.clone(),
            reason: format!("context entry `{name}` has no value: {}", self.reason),
        }
    }
}

/// A rule's context: its `configMap` and `variable` entries, resolved in order (a later entry
/// may use an earlier one).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleContext {
    /// The rule's own variables: given values (with the request's members they change) and the
    /// context entries; a member here hides the request's of the same name.
    own: Map<String, Value>,
    /// The request's variables, shared by every rule of one review that reads them.
    shared: Option<Arc<RequestVariables>>,
    /// The context converted for JMESPath, made once for every expression that reads it.
    conversion: Conversion,
    /// Entries whose value depends on the request (resolved per request).
    request_scoped: BTreeSet<String>,
    /// Where each named entry came from (` from ConfigMap NS/NAME`).
    sources: BTreeMap<String, String>,
    /// Entries that have no value, and why.
    missing: BTreeMap<String, Missing>,
    /// Images whose data `imageRegistry` entries need and that were not given.
    images_wanted: Vec<String>,
}

/// Image data fetched for `imageRegistry` entries, by image reference (the entry's `reference`
/// with its variables resolved): Kyverno's `{image, resolvedImage, registry, repository,
/// identifier, manifestList, manifest, configData}`, or why it could not be fetched.
pub type ImageDataSet = BTreeMap<String, Result<Value, String>>;

impl RuleContext {
    /// The context of `entries` (the rule's raw `context`), reading ConfigMaps from `values`.
    /// Entries of other kinds are skipped (the loader reports them).
    pub fn build(entries: &[Value], values: &ContextValues) -> RuleContext {
        RuleContext::build_with(entries, values, Map::new(), None)
    }

    /// The context of `entries` over `base` (the request's variables and given values, set
    /// before the entries as Kyverno does). Without a request (`image_data` `None`, at load),
    /// entries that read the request are left unresolved and listed by
    /// [`RuleContext::request_scoped`]; with one, `imageRegistry` entries read `image_data`
    /// and those whose image is not there are listed by [`RuleContext::images_wanted`].
    pub fn build_with(
        entries: &[Value],
        values: &ContextValues,
        base: Map<String, Value>,
        image_data: Option<&ImageDataSet>,
    ) -> RuleContext {
        RuleContext::build_over(entries, values, base, None, image_data)
    }

    /// [`RuleContext::build_with`] over `shared`, the request's variables, under `own` (the
    /// values given for the rule, and the request's members they change): the request is
    /// neither copied nor converted for JMESPath again for each rule.
    pub fn build_over(
        entries: &[Value],
        values: &ContextValues,
        own: Map<String, Value>,
        shared: Option<Arc<RequestVariables>>,
        image_data: Option<&ImageDataSet>,
    ) -> RuleContext {
        let mut given: BTreeSet<String> = own.keys().cloned().collect();
        if let Some(shared) = &shared {
            given.extend(shared.values().keys().cloned());
        }
        let request = image_data.is_some();
        let mut context = RuleContext {
            own,
            shared,
            conversion: Conversion::default(),
            request_scoped: BTreeSet::new(),
            sources: BTreeMap::new(),
            missing: BTreeMap::new(),
            images_wanted: Vec::new(),
        };
        for entry in entries {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            if !request && context.entry_reads_request(entry) {
                context.request_scoped.insert(name.to_string());
                continue;
            }
            let resolved = if let Some(config_map) = entry.get("configMap") {
                // Kyverno's CLI loads no ConfigMap: a value given under the entry's name stays.
                if !values.reads_config_maps() && given.contains(name) {
                    continue;
                }
                context.config_map(config_map, values)
            } else if let Some(variable) = entry.get("variable") {
                context.variable(variable)
            } else if let (Some(registry), Some(data)) = (entry.get("imageRegistry"), image_data) {
                // A value given under the entry's name stands in for the registry, as in
                // Kyverno's CLI (which reads registries only with --registry).
                if given.contains(name) {
                    continue;
                }
                context.image_registry(registry, data)
            } else {
                continue;
            };
            match resolved {
                Ok((value, source_text)) => {
                    context.missing.remove(name);
                    context.sources.insert(name.to_string(), source_text);
                    context.conversion.set(name, &value);
                    context.own.insert(name.to_string(), value);
                }
                Err(missing) => {
                    context.missing.insert(name.to_string(), missing);
                }
            }
        }
        context
    }

    /// Where each entry's value came from, as one text (part of a cache key: the same resolved
    /// text from another ConfigMap is said to come from there).
    pub fn sources_text(&self) -> String {
        let mut out = String::new();
        for (name, source) in &self.sources {
            out.push_str(name);
            out.push_str(source);
            out.push('\n');
        }
        out
    }

    /// The entries that depend on the request.
    pub fn request_scoped(&self) -> &BTreeSet<String> {
        &self.request_scoped
    }

    /// Whether `text`'s variables read the request (directly or through an entry that does).
    pub fn text_reads_request(&self, text: &str) -> bool {
        reads_request(text, &self.request_scoped)
    }

    /// Whether a context entry reads the request: a variable in any of its strings, or a
    /// `variable` whose bare `jmesPath` does; an `imageRegistry` entry always (its reference
    /// names an image of the resource).
    fn entry_reads_request(&self, entry: &Value) -> bool {
        if entry.get("imageRegistry").is_some() {
            return true;
        }
        if let Some(path) = entry
            .get("variable")
            .filter(|v| v.get("value").is_none())
            .and_then(|v| v.get("jmesPath"))
            .and_then(Value::as_str)
            && expression_reads_request(path, &self.request_scoped)
        {
            return true;
        }
        strings_of(entry).iter().any(|s| self.text_reads_request(s))
    }

    /// Why `text` cannot be substituted when one of its variables reads an entry that has no
    /// value (a ConfigMap not found, a variable without a default…): the variable, where its
    /// value comes from and why, as [`RuleContext::substitute`] says it. `None` when every entry
    /// it reads has a value.
    pub fn missing_entry_read_by(&self, text: &str) -> Option<VariableError> {
        for piece in pieces(text).ok()? {
            let Piece::Variable(expression) = piece else {
                continue;
            };
            let read = self
                .missing
                .iter()
                .find(|(name, _)| expression_names(expression, &|word| word == name.as_str()));
            if let Some((name, missing)) = read {
                return Some(missing.error(name, expression.trim().to_string()));
            }
        }
        None
    }

    /// Whether `text`'s variables read this context at all: the request's names, an entry (with
    /// a value, without one, or resolved per request) or a given value.
    pub fn text_reads_context(&self, text: &str) -> bool {
        let mut names = self.request_scoped.clone();
        names.extend(self.missing.keys().cloned());
        names.extend(self.own.keys().cloned());
        if let Some(shared) = &self.shared {
            names.extend(shared.values().keys().cloned());
        }
        reads_request(text, &names)
    }

    /// The context as one JSON object (the request's variables, given values and entries), a
    /// copy.
    pub fn values(&self) -> Value {
        let mut all = self
            .shared
            .as_ref()
            .map(|r| r.values().clone())
            .unwrap_or_default();
        for (name, value) in &self.own {
            all.insert(name.clone(), value.clone());
        }
        Value::Object(all)
    }

    /// `f` over this context, converted for JMESPath once for every call that reads it.
    pub fn with_context<T>(&self, f: impl FnOnce(&Context<'_>) -> T) -> T {
        match self.conversion.whole(&self.own, self.shared.as_deref()) {
            Some(converted) => f(&Context::converted_as(converted)),
            None => f(&Context::new(&self.values())),
        }
    }

    /// The images `imageRegistry` entries need whose data was not given.
    pub fn images_wanted(&self) -> &[String] {
        &self.images_wanted
    }

    fn image_registry(
        &mut self,
        registry: &Value,
        data: &ImageDataSet,
    ) -> Result<(Value, String), Missing> {
        let failed = |reason: String| Missing {
            source_text: String::new(),
            reason,
        };
        let written = registry
            .get("reference")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reference = match self.substitute(written) {
            Ok(Value::String(s)) => s,
            Ok(other) => {
                return Err(failed(format!(
                    "the image reference `{written}` is {other}, not a string"
                )));
            }
            Err(e) => return Err(failed(format!("the image reference: {e}"))),
        };
        let source_text = format!(" from the registry's data for {reference}");
        let found = match data.get(&reference) {
            Some(Ok(found)) => found,
            Some(Err(why)) => {
                return Err(Missing {
                    source_text,
                    reason: why.clone(),
                });
            }
            None => {
                if !self.images_wanted.contains(&reference) {
                    self.images_wanted.push(reference.clone());
                }
                return Err(Missing {
                    source_text,
                    reason: "the image's data was not fetched".into(),
                });
            }
        };
        let value = match registry.get("jmesPath").and_then(Value::as_str) {
            Some(path) if !path.trim().is_empty() => {
                let path = match self.substitute(path) {
                    Ok(Value::String(s)) => s,
                    Ok(other) => other.to_string(),
                    Err(e) => return Err(failed(format!("the jmesPath: {e}"))),
                };
                evaluate(&path, found).map_err(|e| Missing {
                    source_text: source_text.clone(),
                    reason: e.to_string(),
                })?
            }
            _ => found.clone(),
        };
        Ok((value, source_text))
    }

    fn config_map(
        &self,
        config_map: &Value,
        values: &ContextValues,
    ) -> Result<(Value, String), Missing> {
        let field = |key: &str| -> Result<String, Missing> {
            let written = config_map.get(key).and_then(Value::as_str).unwrap_or("");
            if !has_variables(written) {
                return Ok(written.to_string());
            }
            match self.substitute(written) {
                Ok(Value::String(s)) => Ok(s),
                Ok(other) => Ok(other.to_string()),
                Err(e) => Err(Missing {
                    source_text: String::new(),
                    reason: format!("the ConfigMap's {key}: {e}"),
                }),
            }
        };
        let name = field("name")?;
        let namespace = Some(field("namespace")?)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let source_text = format!(" from ConfigMap {namespace}/{name}");
        match values.config_map(&namespace, &name) {
            Some(object) => Ok((object.clone(), source_text)),
            None if !values.reads_config_maps() => Err(Missing {
                source_text,
                reason: "ConfigMaps are read only by `sealgate serve --kubernetes` (RBAC: get/list/watch ConfigMaps in that namespace); `apply` and `test` do not read them".into(),
            }),
            None => Err(Missing {
                source_text,
                reason: "the ConfigMap is not found (missing, or sealgate may not read it: RBAC get/list/watch ConfigMaps in that namespace)".into(),
            }),
        }
    }

    fn variable(&self, variable: &Value) -> Result<(Value, String), Missing> {
        let failed = |e: VariableError| Missing {
            source_text: String::new(),
            reason: e.to_string(),
        };
        let value = match variable.get("value") {
            Some(value) => Some(self.substitute_value(value).map_err(failed)?),
            None => None,
        };
        let path = variable.get("jmesPath").and_then(Value::as_str);
        let default = variable.get("default");
        let result = match (path, value) {
            (Some(path), Some(value)) => evaluate(path, &value),
            (Some(path), None) => self.with_context(|c| evaluate_in(path, c)),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(VariableError::NotResolved {
                expression: String::new(),
                source_text: String::new(),
                reason: "the variable has no value and no jmesPath".into(),
            }),
        };
        // A null result takes the default too, as in Kyverno.
        let result = result.and_then(|value| {
            if value.is_null() {
                Err(VariableError::NotResolved {
                    expression: path.unwrap_or_default().to_string(),
                    source_text: String::new(),
                    reason: "the value is null".into(),
                })
            } else {
                Ok(value)
            }
        });
        match (result, default) {
            (Ok(value), _) => Ok((value, String::new())),
            (Err(_), Some(default)) => Ok((
                self.substitute_value(default).map_err(failed)?,
                String::new(),
            )),
            (Err(e), None) => Err(failed(e)),
        }
    }

    /// Substitutes the variables in every string of `value`, naming where a missing value
    /// comes from as [`RuleContext::substitute`] does.
    pub fn substitute_value(&self, value: &Value) -> Result<Value, VariableError> {
        map_strings(value, &|s| self.substitute(s))
    }

    /// Substitutes the variables of `text`; an error names where the value comes from (the
    /// context entry the expression starts with) and why it is missing.
    pub fn substitute(&self, text: &str) -> Result<Value, VariableError> {
        self.with_context(|context| substitute_in(text, context))
            .map_err(|e| match e {
                VariableError::NotResolved {
                    expression, reason, ..
                } => {
                    let head = head_name(&expression).to_string();
                    match self.missing.get(&head) {
                        Some(missing) => missing.error(&head, expression),
                        None => VariableError::NotResolved {
                            source_text: self.sources.get(&head).cloned().unwrap_or_default(),
                            expression,
                            reason,
                        },
                    }
                }
                other => other,
            })
    }

    /// Where the value of the variable `text` starts with comes from (` from ConfigMap …`).
    pub fn source_of(&self, text: &str) -> String {
        let Ok(pieces) = pieces(text) else {
            return String::new();
        };
        pieces
            .iter()
            .find_map(|p| match p {
                Piece::Variable(e) => self.sources.get(head_name(e)).cloned(),
                _ => None,
            })
            .unwrap_or_default()
    }
}

/// The first identifier of an expression (`keys` of `keys.data.pub`).
fn head_name(expression: &str) -> &str {
    let end = expression
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(expression.len());
    &expression[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> Value {
        json!({"keys": {"data": {"pub": "PEM", "n": 3}}, "list": [1, 2]})
    }

    #[test]
    fn a_whole_field_variable_becomes_the_value_itself() {
        assert_eq!(
            substitute("{{ keys.data.pub }}", &context()),
            Ok(json!("PEM"))
        );
        assert_eq!(substitute("{{keys.data.n}}", &context()), Ok(json!(3)));
        assert_eq!(substitute("{{ list }}", &context()), Ok(json!([1, 2])));
    }

    #[test]
    fn an_embedded_variable_becomes_text() {
        assert_eq!(
            substitute(
                "key: {{ keys.data.pub }}, n={{ keys.data.n }} {{list}}",
                &context()
            ),
            Ok(json!("key: PEM, n=3 [1,2]"))
        );
    }

    #[test]
    fn escaped_braces_are_not_a_variable() {
        assert_eq!(
            substitute(r"\{{ keys.data.pub }} and {{ keys.data.pub }}", &context()),
            Ok(json!("{{ keys.data.pub }} and PEM"))
        );
        assert!(!has_variables(r"\{{ x }}"));
        assert!(has_variables("a {{ x }}"));
        assert!(!has_variables("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn a_missing_variable_is_an_error_not_an_empty_string() {
        let e = substitute("{{ keys.data.other }}", &context()).unwrap_err();
        assert_eq!(e.to_string(), "`{{ keys.data.other }}`: no such value");
        assert!(matches!(
            substitute("a {{ nothing }} b", &context()),
            Err(VariableError::NotResolved { .. })
        ));
        assert!(matches!(
            substitute("{{ keys.[ }}", &context()),
            Err(VariableError::BadExpression { .. })
        ));
        assert!(matches!(
            substitute("{{ keys.data.pub", &context()),
            Err(VariableError::Unclosed { .. })
        ));
    }

    /// Kyverno's `Test_SubstituteNull`, `Test_SubstituteNullInString`, `Test_SubstituteInt*`,
    /// `Test_SubstituteBool*`, `Test_SubstituteArray*`, `Test_SubstituteString*`
    /// (pkg/engine/variables/vars_test.go): a whole-field variable keeps its JSON type, one in
    /// text becomes its JSON text; a member that is there and null is null, a missing one an
    /// error.
    #[test]
    fn kyverno_s_substitution_of_each_json_type() {
        let context = json!({"request": {"object": {
            "simple_object_null": null,
            "simple_object_int": 5,
            "simple_object_bool": false,
            "simple_object_string": "example",
            "complex_object_array": ["value1", "value2", "value3"],
            "complex_object_map": {"key1": "value1", "key2": "value2", "key3": "value3"},
        }}});
        let sub = |text: &str| substitute(text, &context);
        assert_eq!(
            sub("{{ request.object.simple_object_null }}"),
            Ok(Value::Null)
        );
        assert_eq!(
            sub("content = {{ request.object.simple_object_null }}"),
            Ok(json!("content = null"))
        );
        assert_eq!(sub("{{ request.object.simple_object_int }}"), Ok(json!(5)));
        assert_eq!(
            sub("content = {{ request.object.simple_object_int }}"),
            Ok(json!("content = 5"))
        );
        assert_eq!(
            sub("{{ request.object.simple_object_bool }}"),
            Ok(json!(false))
        );
        assert_eq!(
            sub("content = {{ request.object.simple_object_bool }}"),
            Ok(json!("content = false"))
        );
        assert_eq!(
            sub("{{ request.object.complex_object_array }}"),
            Ok(json!(["value1", "value2", "value3"]))
        );
        assert_eq!(
            sub("content is {{ request.object.complex_object_map }}"),
            Ok(json!(
                r#"content is {"key1":"value1","key2":"value2","key3":"value3"}"#
            ))
        );
        assert_eq!(
            sub("{{ request.object.simple_object_string }}"),
            Ok(json!("example"))
        );
        assert_eq!(
            sub("content = {{ request.object.simple_object_string }}"),
            Ok(json!("content = example"))
        );
        // Missing members are errors, never null or empty.
        assert!(sub("{{ request.object.missing }}").is_err());
        assert!(sub("{{ request.object.simple_object_null.deeper }}").is_err());
        assert!(names_a_null(
            r#"request."object".simple_object_null"#,
            &context.to_jmespath().unwrap()
        ));
    }

    #[test]
    fn a_variable_inside_a_variable_is_resolved_first() {
        let context = json!({"team": "a", "keys": {"data": {"a": "PEM-A", "b": "PEM-B"}}});
        assert_eq!(
            substitute(r#"{{ keys.data."{{ team }}" }}"#, &context),
            Ok(json!("PEM-A"))
        );
        assert_eq!(
            substitute(r#"key={{ keys.data."{{team}}" }}"#, &context),
            Ok(json!("key=PEM-A"))
        );
    }

    #[test]
    fn jmespath_functions_and_multi_select_hashes_work() {
        assert_eq!(substitute("{{ length(list) }}", &context()), Ok(json!(2)));
        assert_eq!(
            substitute("{{ {a: keys.data.pub} }}", &context()),
            Ok(json!({"a": "PEM"}))
        );
    }

    fn entries() -> Vec<Value> {
        vec![
            json!({"name": "keys", "configMap": {"name": "keys", "namespace": "default"}}),
            json!({"name": "pub", "variable": {"jmesPath": "keys.data.pub"}}),
            json!({"name": "fallback", "variable": {"jmesPath": "keys.data.none", "default": "D"}}),
            json!({"name": "literal", "variable": {"value": {"x": "{{ keys.data.pub }}"}, "jmesPath": "x"}}),
        ]
    }

    #[test]
    fn a_rule_context_reads_config_maps_and_variables_in_order() {
        let mut values = ContextValues::new();
        values.insert_config_map(
            "default",
            "keys",
            &BTreeMap::from([("pub".to_string(), "PEM".to_string())]),
        );
        let context = RuleContext::build(&entries(), &values);
        assert_eq!(context.substitute("{{ pub }}"), Ok(json!("PEM")));
        assert_eq!(context.substitute("{{ fallback }}"), Ok(json!("D")));
        assert_eq!(context.substitute("{{ literal }}"), Ok(json!("PEM")));
        assert_eq!(
            context.substitute("{{ keys.metadata.namespace }}"),
            Ok(json!("default"))
        );
        assert_eq!(
            context.source_of("{{ keys.data.pub }}"),
            " from ConfigMap default/keys"
        );
        let e = context
            .substitute("{{ keys.data.certificate }}")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`{{ keys.data.certificate }}` from ConfigMap default/keys: no such value"
        );
    }

    #[test]
    fn a_config_map_not_read_says_where_it_would_come_from() {
        let context = RuleContext::build(&entries(), &ContextValues::new());
        let e = context.substitute("{{ keys.data.pub }}").unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("`{{ keys.data.pub }}` from ConfigMap default/keys: context entry `keys` has no value: ConfigMaps are read only by `sealgate serve --kubernetes`"),
            "{text}"
        );
        let other = ContextValues::reading_config_maps();
        let context = RuleContext::build(&entries(), &other);
        let text = context
            .substitute("{{ keys.data.pub }}")
            .unwrap_err()
            .to_string();
        assert!(text.contains("the ConfigMap is not found"), "{text}");
    }
}
