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
use super::yaml::{self, Document, Position};

mod compile;
mod keys;
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
