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
//!
//! One `DocumentLoader` per document collects the diagnostics; its steps are split by concern:
//! `compile` (rules, entries, attestors), `validate` (match blocks, selectors, deprecated
//! fields) and `keys` (key sources and PEM forensics).

use serde_json::Value;

use super::compiled::{FailureAction, Policy};
use super::de::{self, UnknownField};
use super::error::{
    Location, PolicyError, PolicyErrorKind, PolicyWarning, PolicyWarningKind, error_hint,
    warning_hint,
};
use super::model::PolicyDocument;
use super::path::JsonPath;
use super::variables::{ContextValues, RuleContext};

use super::yaml::{self, Document, Position};
pub use instance::{RequestScope, RuleInstance};

mod attestations;
mod compile;
mod instance;
mod keys;
mod resolve;
mod validate;

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

/// How strictly [`load_with`] reads policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Unknown fields are warnings (dropped, as a Kubernetes API server without strict field
    /// validation prunes them) instead of errors.
    pub allow_unknown_fields: bool,
}

/// Kyverno's kinds in the `kyverno.io` group besides `ClusterPolicy` and `Policy`: documents
/// sealgate does not enforce, skipped with a note.
const OTHER_KYVERNO_KINDS: &[&str] = &[
    "PolicyException",
    "CleanupPolicy",
    "ClusterCleanupPolicy",
    "UpdateRequest",
    "GlobalContextEntry",
    "ClusterPolicyList",
    "PolicyList",
];

/// Loads every policy in `text`, read from `source` (a name used in messages only), refusing
/// unknown fields.
pub fn load(source: &str, text: &str) -> LoadOutcome {
    load_with(source, text, LoadOptions::default())
}

/// Loads every policy in `text`, read from `source`, with `options`.
pub fn load_with(source: &str, text: &str, options: LoadOptions) -> LoadOutcome {
    load_with_context(source, text, options, &ContextValues::new())
}

/// Loads every policy in `text`, read from `source`, with `options`, resolving the variables of
/// attestor fields from the rules' `context` entries, which read ConfigMaps from `values`.
/// A variable that does not resolve (or resolves to a bad key) never fails the load: the
/// attestor gets an error result saying why.
pub fn load_with_context(
    source: &str,
    text: &str,
    options: LoadOptions,
    values: &ContextValues,
) -> LoadOutcome {
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
                hint: pem_indentation_hint(text, e.position.line),
                kind: PolicyErrorKind::Yaml(e.kind),
            }),
            Ok(document) => {
                let mut loader = DocumentLoader::new(source, &document, values);
                loader.options = options;
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
    options: LoadOptions,
    /// What `context` entries read (ConfigMaps).
    values: &'a ContextValues,
    /// The context of the rule being compiled, when all its entries are resolved by sealgate.
    rule_context: Option<RuleContext>,
    /// Compiling one request's instance of a rule ([`instance`]): the request's variables are
    /// in the context.
    per_request: bool,
    /// Set when an attestor of the entry being compiled reads the request (compiled per
    /// request).
    entry_reads_request: bool,
    /// Every variable is resolved per request (values are given per resource).
    defer_all_variables: bool,
    /// The document, shared by the request scopes of its rules.
    shared_document: Option<std::sync::Arc<Document>>,
}
impl<'a> DocumentLoader<'a> {
    fn new(source: &'a str, document: &'a Document, values: &'a ContextValues) -> Self {
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
            options: LoadOptions::default(),
            values,
            rule_context: None,
            per_request: false,
            entry_reads_request: false,
            defer_all_variables: false,
            shared_document: None,
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
        if group == Some("kyverno.io")
            && let Some(kind) = kind
            && !is_policy_kind
            && !OTHER_KYVERNO_KINDS.contains(&kind)
        {
            let known: Vec<&'static str> = ["ClusterPolicy", "Policy"]
                .into_iter()
                .chain(OTHER_KYVERNO_KINDS.iter().copied())
                .collect();
            self.error(
                &root.field("kind"),
                PolicyErrorKind::UnknownKind {
                    kind: kind.to_string(),
                    api_version: api_version.unwrap_or_default().to_string(),
                    suggestion: closest(kind, &known),
                },
            );
            return None;
        }
        if is_policy_kind
            && let Some(written) = api_version
            && let Some(g) = group
            && g != "kyverno.io"
            && edit_distance(&g.to_ascii_lowercase(), "kyverno.io") <= 2
        {
            let version = written.split_once('/').map_or("v1", |(_, v)| v);
            self.error(
                &root.field("apiVersion"),
                PolicyErrorKind::MisspelledApiVersion {
                    written: written.to_string(),
                    suggestion: format!("kyverno.io/{version}"),
                },
            );
            return None;
        }
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
        if api_version == Some("kyverno.io/v2beta1") {
            self.warn(&root.field("apiVersion"), PolicyWarningKind::ReadAsV1);
        }
        self.unknown_fields(unknown);
        self.compile(document)
    }

    /// Unknown fields: errors, or warnings with [`LoadOptions::allow_unknown_fields`].
    fn unknown_fields(&mut self, unknown: Vec<UnknownField>) {
        for field in unknown {
            let Some(name) = field.path.last_field() else {
                continue;
            };
            let suggestion = closest(name, field.known).map(str::to_string);
            self.rule = rule_name_for(&self.document.value, &field.path);
            if self.options.allow_unknown_fields {
                self.warn(&field.path, PolicyWarningKind::UnknownField { suggestion });
            } else {
                let field_name = name.to_string();
                self.error(
                    &field.path,
                    PolicyErrorKind::UnknownField {
                        field: field_name,
                        suggestion,
                    },
                );
            }
        }
        self.rule = None;
    }
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

/// Fields whose value is a PEM block (a key or certificates) pasted as a YAML block scalar.
const PEM_FIELDS: &[&str] = &[
    "publicKeys",
    "cert",
    "certChain",
    "roots",
    "pubkey",
    "tsaCertChain",
    "key",
];

/// When a YAML error at `line` (1-based) sits in a PEM block pasted under `FIELD: |` with its
/// lines indented no deeper than the field, the fix: indent it under the field.
fn pem_indentation_hint(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let error_index = line.checked_sub(1)?.min(lines.len().checked_sub(1)?);
    // The nearest `FIELD: |` (or `|-`) above the error whose block holds PEM.
    for i in (0..=error_index).rev() {
        let trimmed = lines[i].trim();
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let key = key.trim_start_matches("- ").trim();
        if !PEM_FIELDS.contains(&key) || !value.trim().starts_with('|') {
            continue;
        }
        let field_indent = indent(lines[i]);
        let pem_line = lines
            .get(i + 1..=error_index.max(i + 1))?
            .iter()
            .find(|l| {
                let t = l.trim();
                t.starts_with("-----BEGIN") || t.starts_with("-----END")
            })?;
        let pem_indent = indent(pem_line);
        if pem_indent > field_indent {
            return None;
        }
        let more = field_indent + 2 - pem_indent;
        return Some(format!(
            "the PEM block under `{key}: {}` (line {}) is not indented under it: indent every line of the key under `{key}: {}` by {more} more spaces",
            value.trim(),
            i + 1,
            value.trim()
        ));
    }
    None
}

/// Takes out of `policies` every policy whose kind, namespace and name an earlier one has, and
/// returns an error for each, naming where the first is: in a cluster the second would replace
/// the first, so which one is enforced would depend on the order of `kubectl apply`.
pub fn remove_duplicate_policies(policies: &mut Vec<Policy>) -> Vec<PolicyError> {
    use std::collections::HashMap;
    let mut first: HashMap<(bool, Option<String>, String), String> = HashMap::new();
    let mut errors = Vec::new();
    policies.retain(|p| {
        let cluster = p.kind == super::compiled::PolicyKind::ClusterPolicy;
        let key = (cluster, p.namespace.clone(), p.name.clone());
        let here = format!("{}:{}", p.source, p.line);
        match first.get(&key) {
            None => {
                first.insert(key, here);
                true
            }
            Some(at) => {
                let kind = match (&p.namespace, cluster) {
                    (_, true) => "ClusterPolicy".to_string(),
                    (Some(ns), false) => format!("Policy (namespace {ns})"),
                    (None, false) => "Policy".to_string(),
                };
                let error_kind = PolicyErrorKind::DuplicatePolicy {
                    kind,
                    name: p.name.clone(),
                    first: at.clone(),
                };
                errors.push(PolicyError {
                    location: Location {
                        source: p.source.clone(),
                        line: p.line,
                        column: 1,
                        policy: Some(p.name.clone()),
                        rule: None,
                        path: JsonPath::root().field("metadata").field("name"),
                    },
                    hint: error_hint(&error_kind, &JsonPath::root()),
                    kind: error_kind,
                });
                false
            }
        }
    });
    errors
}
