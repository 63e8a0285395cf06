//! Values for policy variables and the request's user, as Kyverno's CLI reads them: a values
//! file (`kyverno apply -f`, a test's `variables:`), a test's inline `values:`, `--set k=v`
//! and a user info file (`kyverno apply -u`, a test's `userinfo:`).
//!
//! A values file is `apiVersion: cli.kyverno.io/v1alpha1`, `kind: Values` with the fields of
//! Kyverno's `ValuesSpec` (`cmd/cli/kubectl-kyverno/apis/v1alpha1/values_spec.go`):
//!
//! * `globalValues`: variable name → value, for every policy, rule and resource;
//! * `policies[]`: `{name, rules[]: {name, values, foreachValues}, resources[]: {name, values}}`;
//! * `namespaceSelector[]`: `{name, labels}`, the labels of a namespace, for `namespaceSelector`
//!   in match and exclude; `namespaces[]`: Namespace objects, whose labels win;
//! * `subresources`: read and ignored (sealgate evaluates no subresource request).
//!
//! As Kyverno reads it (`yaml.UnmarshalStrict`), an unknown field is an error; unlike Kyverno,
//! which accepts any non-empty `apiVersion` and `kind`, other values than those are refused.
//! Kyverno refuses the older form without `apiVersion` and `kind` ("uses a deprecated schema",
//! `deprecations.CheckValues`), so sealgate does too. Every error names the file, the line and
//! the field's path.
//!
//! `request.operation` among the global and resource values sets the operation a resource is
//! matched under (`processor/policy_processor.go` `makePolicyContext`: `UPDATE` and `DELETE`,
//! anything else `CREATE`); the global one must be CREATE, UPDATE, DELETE or CONNECT
//! (`NormalizeValuesOperation`), and so must the resource ones here.

use std::collections::BTreeMap;
use std::path::Path;

use sealgate_core::policy::path::JsonPath;
use sealgate_core::policy::yaml::{Document, parse_documents};
use sealgate_core::policy::{Operation, Policy, Values};
use serde_json::{Map, Value};

use crate::{MANIFEST_FILE, ReadError, read_text_bounded};

/// The `apiVersion` of values and user info files.
pub const API_VERSION: &str = "cli.kyverno.io/v1alpha1";

/// Why values or a user info file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The file is not what it should be; the message starts with the field's path.
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// The 1-based line.
        line: usize,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A `--set` entry is not `name=value`.
    #[error("--set '{entry}': {message}")]
    Set {
        /// The entry as given.
        entry: String,
        /// What is wrong.
        message: String,
    },
}

/// What an entry of the values names, to be checked against what was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Named {
    /// A policy (`policies[].name`).
    Policy,
    /// A rule of the policy (`policies[].rules[].name`).
    Rule(String),
    /// A resource, by name (`policies[].resources[].name`).
    Resource(String),
}

/// One name the values give, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedEntry {
    /// `FILE:LINE: PATH`.
    pub location: String,
    /// The policy.
    pub policy: String,
    /// What under it.
    pub named: Named,
}

/// Values read from a values file, inline `values:` or `--set`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CliValues {
    /// The variables, by scope, as the policy loader and the engine take them.
    pub values: Values,
    /// Labels by namespace name (`namespaceSelector[]`, then `namespaces[]`, which win).
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// `request.operation` of `globalValues` (or `--set`).
    global_operation: Option<Operation>,
    /// `request.operation` of `policies[].resources[].values`, by (policy, resource).
    resource_operations: BTreeMap<(String, String), Operation>,
    /// The policies, rules and resources the values name.
    pub names: Vec<NamedEntry>,
    /// What was read but is not used, each a sentence with its location.
    pub notes: Vec<String>,
}

/// The operation a resource is matched under, and a note when the policies disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceOperation {
    /// The operation.
    pub operation: Operation,
    /// Set when the values give different operations for the resource under different
    /// policies: sealgate evaluates a resource under one operation.
    pub conflict: Option<String>,
}

impl CliValues {
    /// No values.
    pub fn new() -> CliValues {
        CliValues::default()
    }

    /// The operation `resource` (by name) is evaluated under with `policies`: its resource
    /// values' `request.operation` under a policy, else the global one, else CREATE. Kyverno
    /// decides it per policy; sealgate evaluates a resource once, so when the policies' values
    /// differ the first policy's operation is used and `conflict` says so.
    pub fn operation_for<'a>(
        &self,
        resource: &str,
        policies: impl IntoIterator<Item = &'a str>,
    ) -> ResourceOperation {
        let global = self.global_operation.unwrap_or(Operation::Create);
        let mut seen: Vec<(&str, Operation)> = Vec::new();
        for policy in policies {
            let operation = self
                .resource_operations
                .get(&(policy.to_string(), resource.to_string()))
                .copied()
                .unwrap_or(global);
            seen.push((policy, operation));
        }
        let Some(&(_, first)) = seen.first() else {
            return ResourceOperation {
                operation: global,
                conflict: None,
            };
        };
        let conflict = seen.iter().any(|(_, o)| *o != first).then(|| {
            let each: Vec<String> = seen
                .iter()
                .map(|(p, o)| format!("{p}: {}", o.name()))
                .collect();
            format!(
                "the values give resource {resource} different request.operation values by policy ({}); kyverno evaluates each policy under its own, sealgate evaluates the resource once, under {}",
                each.join(", "),
                first.name()
            )
        });
        ResourceOperation {
            operation: first,
            conflict,
        }
    }

    /// Warnings for the policies, rules and resources the values name that are not among
    /// `policies` and `resources` (names): their values are not used. Kyverno ignores them
    /// silently. A rule named as written also covers its `autogen-` rules.
    pub fn unused(&self, policies: &[Policy], resources: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for entry in &self.names {
            let policy = policies.iter().find(|p| p.name == entry.policy);
            let warning = match (&entry.named, policy) {
                (Named::Policy, None) => Some(format!(
                    "{}: no policy {} is loaded, so its values are not used; check the name against metadata.name of your policies",
                    entry.location, entry.policy
                )),
                (Named::Policy, Some(_)) => None,
                (Named::Rule(rule), Some(policy)) => {
                    let known = policy
                        .rules
                        .iter()
                        .chain(&policy.autogen_rules)
                        .any(|r| &r.name == rule);
                    (!known).then(|| {
                        format!(
                            "{}: policy {} has no rule {rule}, so these values are not used; its rules are {}",
                            entry.location,
                            entry.policy,
                            policy
                                .rules
                                .iter()
                                .map(|r| r.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                }
                (Named::Resource(resource), Some(_)) => {
                    (!resources.contains(&resource.as_str())).then(|| {
                        format!(
                            "{}: no resource named {resource} is checked, so these values are not used",
                            entry.location
                        )
                    })
                }
                (_, None) => None,
            };
            out.extend(warning);
        }
        out
    }
}

/// Reads a values file (`kind: Values`).
pub fn read_values_file(path: &Path) -> Result<CliValues, ValuesError> {
    let text = read_text_bounded(path, MANIFEST_FILE)?;
    let source = path.display().to_string();
    let doc = single_document(&source, &text, "values")?;
    let reader = Reader {
        source: &source,
        doc: &doc,
    };
    reader.spec(&JsonPath::root(), Form::File)
}

/// Reads inline values (a test's `values:`) at `path` of `doc`, read from `source`.
pub fn values_at(source: &str, doc: &Document, path: &JsonPath) -> Result<CliValues, ValuesError> {
    let reader = Reader { source, doc };
    reader.spec(path, Form::Inline)
}

/// Values from `--set name=value` entries: global values, as strings (as Kyverno's `--set`).
/// Unlike Kyverno, which ignores them silently, an entry without `=`, with an empty name or
/// value, given twice or under `request.object.` is an error; a value may hold `=` (Kyverno
/// ignores an entry with a second `=`, so a PEM key with base64 padding).
pub fn values_from_set(entries: &[String]) -> Result<CliValues, ValuesError> {
    let mut out = CliValues::new();
    let mut seen: Vec<String> = Vec::new();
    for entry in entries {
        let trimmed = entry.trim();
        if trimmed.is_empty() {
            continue;
        }
        let set_error = |message: &str| ValuesError::Set {
            entry: trimmed.to_string(),
            message: message.to_string(),
        };
        let Some((name, value)) = trimmed.split_once('=') else {
            return Err(set_error("not name=value; give --set name=value"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() {
            return Err(set_error(
                "the name and the value must not be empty; give --set name=value",
            ));
        }
        if name.contains("request.object.") {
            return Err(set_error(
                "values under request.object are ignored by kyverno; the object is the resource given with --resource",
            ));
        }
        if seen.iter().any(|s| s == name) {
            return Err(set_error("this name is given twice; give it once"));
        }
        if name == "request.operation" {
            out.global_operation = Some(operation(value).map_err(|message| set_error(&message))?);
        }
        seen.push(name.to_string());
        out.values
            .set_global(name, Value::String(value.to_string()));
    }
    Ok(out)
}

/// A user info file (`kind: UserInfo`): the admission request's user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInfo {
    /// The request members it gives, as Kyverno adds them under `request`: `roles`,
    /// `clusterRoles` (when not empty) and `userInfo` (`username`, `uid`, `groups`, `extra`).
    pub request: Value,
    /// Whether it lacks `apiVersion` or `kind`: the deprecated form, a warning under
    /// `kyverno apply` and an error under `kyverno test`.
    pub deprecated: bool,
}

/// Reads a user info file (`kind: UserInfo`: `roles`, `clusterRoles`, `userInfo`), as Kyverno's
/// `userinfo.Load` (strict: an unknown field is an error).
pub fn read_user_info(path: &Path) -> Result<UserInfo, ValuesError> {
    let text = read_text_bounded(path, MANIFEST_FILE)?;
    let source = path.display().to_string();
    let doc = single_document(&source, &text, "user info")?;
    let reader = Reader {
        source: &source,
        doc: &doc,
    };
    reader.user_info()
}

/// How values are given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A file: `apiVersion`, `kind` and `metadata` besides the spec.
    File,
    /// Inline in a test file: the spec alone.
    Inline,
}

/// The one document of a file of `what` ("values", "user info").
fn single_document(source: &str, text: &str, what: &str) -> Result<Document, ValuesError> {
    let invalid = |line: usize, message: String| ValuesError::Invalid {
        file: source.to_string(),
        line,
        message,
    };
    let mut docs = parse_documents(text).into_iter();
    let first = match docs.next() {
        None => {
            return Err(invalid(
                1,
                format!(
                    "the {what} file is empty; give a kind: {} document",
                    kind_of_file(what)
                ),
            ));
        }
        Some(Err(e)) => {
            return Err(invalid(
                e.position.line,
                format!("{}; a {what} file is one YAML document", e.kind),
            ));
        }
        Some(Ok(doc)) => doc,
    };
    if let Some(next) = docs.next() {
        let line = match &next {
            Ok(doc) => doc.first_line,
            Err(e) => e.position.line,
        };
        return Err(invalid(
            line,
            format!(
                "a second document: a {what} file holds one kind: {} document; put the values into the first",
                kind_of_file(what)
            ),
        ));
    }
    Ok(first)
}

fn kind_of_file(what: &str) -> &'static str {
    if what == "values" {
        "Values"
    } else {
        "UserInfo"
    }
}

/// What a JSON value is, for messages.
fn found(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "true or false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// `request.operation` as Kyverno's `NormalizeValuesOperation` accepts it, mapped as
/// `makePolicyContext` maps it (CONNECT is matched as CREATE).
fn operation(value: &str) -> Result<Operation, String> {
    match value {
        "CREATE" | "CONNECT" => Ok(Operation::Create),
        "UPDATE" => Ok(Operation::Update),
        "DELETE" => Ok(Operation::Delete),
        other => Err(format!(
            "request.operation '{other}' is not an operation: give CREATE, UPDATE, DELETE or CONNECT (upper case)"
        )),
    }
}

struct Reader<'a> {
    source: &'a str,
    doc: &'a Document,
}

impl Reader<'_> {
    fn error(&self, path: &JsonPath, message: String) -> ValuesError {
        ValuesError::Invalid {
            file: self.source.to_string(),
            line: self.doc.source_map.position(path).line,
            message,
        }
    }

    fn location(&self, path: &JsonPath) -> String {
        format!(
            "{}:{}: {path}",
            self.source,
            self.doc.source_map.position(path).line
        )
    }

    fn at(&self, path: &JsonPath) -> Option<&Value> {
        let mut value = &self.doc.value;
        for segment in path.segments() {
            value = match segment {
                sealgate_core::policy::Segment::Field(name) => value.get(name)?,
                sealgate_core::policy::Segment::Index(index) => value.get(index)?,
            };
        }
        Some(value)
    }

    /// The mapping at `path`, whose fields must be among `allowed` (`holds` says which they
    /// are, for the message); `what` says what it must be.
    fn mapping(
        &self,
        value: &Value,
        path: &JsonPath,
        what: &str,
        allowed: &[&str],
        holds: &str,
    ) -> Result<Map<String, Value>, ValuesError> {
        let Value::Object(map) = value else {
            return Err(self.error(
                path,
                format!("{} must be {what} (found {})", name(path), found(value)),
            ));
        };
        if !allowed.is_empty()
            && let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str()))
        {
            return Err(self.error(
                &path.field(unknown),
                format!(
                    "{}: unknown field; {holds} (kyverno refuses unknown fields too)",
                    path.field(unknown)
                ),
            ));
        }
        Ok(map.clone())
    }

    /// The list at `path` (null: none).
    fn list(&self, value: &Value, path: &JsonPath, what: &str) -> Result<Vec<Value>, ValuesError> {
        match value {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => Ok(items.clone()),
            other => Err(self.error(
                path,
                format!("{path} must be a list of {what} (found {})", found(other)),
            )),
        }
    }

    /// The non-empty string `field` of `map` at `path`.
    fn name_of(
        &self,
        map: &Map<String, Value>,
        path: &JsonPath,
        what: &str,
    ) -> Result<String, ValuesError> {
        let field = path.field("name");
        match map.get("name") {
            Some(Value::String(name)) if !name.is_empty() => Ok(name.clone()),
            None | Some(Value::Null) => Err(self.error(
                path,
                format!("{path} has no name: name the {what} these values are for"),
            )),
            Some(Value::String(_)) => Err(self.error(
                &field,
                format!("{field} is empty: name the {what} these values are for"),
            )),
            Some(other) => Err(self.error(
                &field,
                format!("{field} must be a string (found {})", found(other)),
            )),
        }
    }

    /// Variable name → value at `path` (null: none).
    fn variables(&self, value: &Value, path: &JsonPath) -> Result<Map<String, Value>, ValuesError> {
        if value.is_null() {
            return Ok(Map::new());
        }
        let map = self.mapping(
            value,
            path,
            "a mapping of variable names to values",
            &[],
            "",
        )?;
        if map.contains_key("") {
            return Err(self.error(
                path,
                format!("{path} has an empty variable name; name each variable"),
            ));
        }
        Ok(map)
    }

    /// Name → string at `path` (labels).
    fn labels(
        &self,
        value: &Value,
        path: &JsonPath,
    ) -> Result<BTreeMap<String, String>, ValuesError> {
        if value.is_null() {
            return Ok(BTreeMap::new());
        }
        let map = self.mapping(value, path, "a mapping of label names to values", &[], "")?;
        map.iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(self.error(
                    &path.field(k),
                    format!(
                        "{} must be a string (found {}): quote the label value",
                        path.field(k),
                        found(other)
                    ),
                )),
            })
            .collect()
    }

    /// A `ValuesSpec` at `base`.
    fn spec(&self, base: &JsonPath, form: Form) -> Result<CliValues, ValuesError> {
        let root = self.at(base).cloned().unwrap_or(Value::Null);
        let (allowed, holds): (&[&str], &str) = match form {
            Form::File => (
                &[
                    "apiVersion",
                    "kind",
                    "metadata",
                    "globalValues",
                    "policies",
                    "namespaceSelector",
                    "namespaces",
                    "subresources",
                ],
                "a values file holds apiVersion, kind, metadata, globalValues, policies, namespaceSelector, namespaces and subresources",
            ),
            Form::Inline => (
                &[
                    "globalValues",
                    "policies",
                    "namespaceSelector",
                    "namespaces",
                    "subresources",
                ],
                "inline values hold globalValues, policies, namespaceSelector, namespaces and subresources",
            ),
        };
        let what = match form {
            Form::File => "the values file must be a mapping (kind: Values)".to_string(),
            Form::Inline => format!("{base} must be a mapping of globalValues, policies…"),
        };
        let Value::Object(_) = &root else {
            return Err(self.error(base, format!("{what} (found {})", found(&root))));
        };
        let map = self.mapping(&root, base, "a mapping", allowed, holds)?;
        if form == Form::File {
            self.type_meta(&map, base, "Values")?;
        }
        let mut out = CliValues::new();
        let field = |name: &str| map.get(name).cloned().unwrap_or(Value::Null);

        let global_path = base.field("globalValues");
        for (name, value) in self.variables(&field("globalValues"), &global_path)? {
            if name == "request.operation" {
                out.global_operation = Some(self.operation(&value, &global_path.field(&name))?);
            }
            out.values.set_global(&name, value);
        }

        let policies_path = base.field("policies");
        for (i, policy) in self
            .list(&field("policies"), &policies_path, "policies")?
            .iter()
            .enumerate()
        {
            self.policy(policy, &policies_path.index(i), &mut out)?;
        }

        let selectors_path = base.field("namespaceSelector");
        for (i, selector) in self
            .list(
                &field("namespaceSelector"),
                &selectors_path,
                "namespaces and their labels",
            )?
            .iter()
            .enumerate()
        {
            let path = selectors_path.index(i);
            let entry = self.mapping(
                selector,
                &path,
                "a mapping of name and labels",
                &["name", "labels"],
                "a namespaceSelector entry holds name and labels",
            )?;
            let name = self.name_of(&entry, &path, "namespace")?;
            let labels = self.labels(
                entry.get("labels").unwrap_or(&Value::Null),
                &path.field("labels"),
            )?;
            out.namespace_labels.insert(name, labels);
        }

        let namespaces_path = base.field("namespaces");
        for (i, namespace) in self
            .list(&field("namespaces"), &namespaces_path, "Namespace objects")?
            .iter()
            .enumerate()
        {
            let path = namespaces_path.index(i);
            let object = self.mapping(
                namespace,
                &path,
                "a Namespace object",
                &["apiVersion", "kind", "metadata", "spec", "status"],
                "a Namespace holds apiVersion, kind, metadata, spec and status",
            )?;
            let meta_path = path.field("metadata");
            let metadata = self.mapping(
                object.get("metadata").unwrap_or(&Value::Null),
                &meta_path,
                "a mapping with the namespace's name and labels",
                &[],
                "",
            )?;
            let name = self.name_of(&metadata, &meta_path, "namespace")?;
            let labels = self.labels(
                metadata.get("labels").unwrap_or(&Value::Null),
                &meta_path.field("labels"),
            )?;
            // Namespaces win over namespaceSelector entries, as in Kyverno.
            out.namespace_labels.insert(name, labels);
        }

        let subresources_path = base.field("subresources");
        let subresources = self.list(
            &field("subresources"),
            &subresources_path,
            "subresource and parentResource mappings",
        )?;
        if !subresources.is_empty() {
            out.notes.push(format!(
                "{}: ignored: sealgate evaluates no subresource request",
                self.location(&subresources_path)
            ));
        }
        Ok(out)
    }

    /// `apiVersion` and `kind` of a file whose kind is `kind`.
    fn type_meta(
        &self,
        map: &Map<String, Value>,
        base: &JsonPath,
        kind: &str,
    ) -> Result<(), ValuesError> {
        let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let written_kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version.is_empty() || written_kind.is_empty() {
            let missing = match (api_version.is_empty(), written_kind.is_empty()) {
                (true, true) => "apiVersion and kind",
                (true, false) => "apiVersion",
                _ => "kind",
            };
            return Err(self.error(
                base,
                format!(
                    "the file has no {missing}: kyverno refuses this older form too (\"uses a deprecated schema\"); begin the file with apiVersion: {API_VERSION} and kind: {kind}"
                ),
            ));
        }
        if written_kind != kind {
            return Err(self.error(
                &base.field("kind"),
                format!(
                    "kind is {written_kind}, not {kind}: give a kind: {kind} file here (apiVersion: {API_VERSION})"
                ),
            ));
        }
        if api_version != API_VERSION {
            return Err(self.error(
                &base.field("apiVersion"),
                format!("apiVersion is {api_version}: a {kind} file has apiVersion: {API_VERSION}"),
            ));
        }
        if let Some(metadata) = map.get("metadata")
            && !metadata.is_null()
            && !metadata.is_object()
        {
            return Err(self.error(
                &base.field("metadata"),
                format!("metadata must be a mapping (found {})", found(metadata)),
            ));
        }
        Ok(())
    }

    fn operation(&self, value: &Value, path: &JsonPath) -> Result<Operation, ValuesError> {
        let Value::String(text) = value else {
            return Err(self.error(
                path,
                format!(
                    "{path} must be CREATE, UPDATE, DELETE or CONNECT (found {})",
                    found(value)
                ),
            ));
        };
        operation(text).map_err(|message| self.error(path, format!("{path}: {message}")))
    }

    /// One `policies[]` entry.
    fn policy(
        &self,
        value: &Value,
        path: &JsonPath,
        out: &mut CliValues,
    ) -> Result<(), ValuesError> {
        let map = self.mapping(
            value,
            path,
            "a mapping of name, rules and resources",
            &["name", "rules", "resources"],
            "a policies entry holds name, rules and resources",
        )?;
        let policy = self.name_of(&map, path, "policy")?;
        out.names.push(NamedEntry {
            location: self.location(&path.field("name")),
            policy: policy.clone(),
            named: Named::Policy,
        });
        let rules_path = path.field("rules");
        let rules = self.list(
            map.get("rules").unwrap_or(&Value::Null),
            &rules_path,
            "rules",
        )?;
        for (j, rule) in rules.iter().enumerate() {
            let path = rules_path.index(j);
            let entry = self.mapping(
                rule,
                &path,
                "a mapping of name, values and foreachValues",
                &["name", "values", "foreachValues"],
                "a rules entry holds name, values and foreachValues",
            )?;
            let name = self.name_of(&entry, &path, "rule")?;
            out.names.push(NamedEntry {
                location: self.location(&path.field("name")),
                policy: policy.clone(),
                named: Named::Rule(name.clone()),
            });
            let values_path = path.field("values");
            for (variable, value) in
                self.variables(entry.get("values").unwrap_or(&Value::Null), &values_path)?
            {
                out.values.set_for_rule(&policy, &name, &variable, value);
            }
            let foreach_path = path.field("foreachValues");
            let foreach = self.variables(
                entry.get("foreachValues").unwrap_or(&Value::Null),
                &foreach_path,
            )?;
            for (variable, value) in &foreach {
                if !value.is_array() {
                    let at = foreach_path.field(variable);
                    return Err(self.error(
                        &at,
                        format!(
                            "{at} must be a list of values, one per foreach element (found {})",
                            found(value)
                        ),
                    ));
                }
            }
            if !foreach.is_empty() {
                out.notes.push(format!(
                    "{}: ignored: foreachValues are for foreach declarations of validate and mutate rules, which sealgate does not evaluate",
                    self.location(&foreach_path)
                ));
            }
        }
        let resources_path = path.field("resources");
        let resources = self.list(
            map.get("resources").unwrap_or(&Value::Null),
            &resources_path,
            "resources",
        )?;
        for (j, resource) in resources.iter().enumerate() {
            let path = resources_path.index(j);
            let entry = self.mapping(
                resource,
                &path,
                "a mapping of name and values",
                &["name", "values"],
                "a resources entry holds name and values",
            )?;
            let name = self.name_of(&entry, &path, "resource")?;
            out.names.push(NamedEntry {
                location: self.location(&path.field("name")),
                policy: policy.clone(),
                named: Named::Resource(name.clone()),
            });
            let values_path = path.field("values");
            for (variable, value) in
                self.variables(entry.get("values").unwrap_or(&Value::Null), &values_path)?
            {
                if variable == "request.operation" {
                    let operation = self.operation(&value, &values_path.field(&variable))?;
                    out.resource_operations
                        .insert((policy.clone(), name.clone()), operation);
                }
                out.values
                    .set_for_resource(&policy, &name, &variable, value);
            }
        }
        Ok(())
    }

    /// A `UserInfo` document.
    fn user_info(&self) -> Result<UserInfo, ValuesError> {
        let base = JsonPath::root();
        let root = &self.doc.value;
        if !root.is_object() {
            return Err(self.error(
                &base,
                format!(
                    "the user info file must be a mapping (kind: UserInfo) (found {})",
                    found(root)
                ),
            ));
        }
        let map = self.mapping(
            root,
            &base,
            "a mapping",
            &[
                "apiVersion",
                "kind",
                "metadata",
                "roles",
                "clusterRoles",
                "userInfo",
                "synchronize",
            ],
            "a user info file holds apiVersion, kind, metadata, roles, clusterRoles, userInfo and synchronize",
        )?;
        let deprecated = map
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            || map
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty();
        if !deprecated {
            self.type_meta(&map, &base, "UserInfo")?;
        }
        let mut request = Map::new();
        for field in ["roles", "clusterRoles"] {
            let path = base.field(field);
            let items = self.strings(map.get(field).unwrap_or(&Value::Null), &path)?;
            if !items.is_empty() {
                request.insert(field.to_string(), Value::from(items));
            }
        }
        let user_path = base.field("userInfo");
        let user = map.get("userInfo").cloned().unwrap_or(Value::Null);
        let mut info = Map::new();
        if !user.is_null() {
            let user = self.mapping(
                &user,
                &user_path,
                "a mapping of username, uid, groups and extra",
                &["username", "uid", "groups", "extra"],
                "userInfo holds username, uid, groups and extra",
            )?;
            for field in ["username", "uid"] {
                match user.get(field) {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if s.is_empty() => {}
                    Some(Value::String(s)) => {
                        info.insert(field.to_string(), Value::String(s.clone()));
                    }
                    Some(other) => {
                        let at = user_path.field(field);
                        return Err(self.error(
                            &at,
                            format!("{at} must be a string (found {})", found(other)),
                        ));
                    }
                }
            }
            let groups = self.strings(
                user.get("groups").unwrap_or(&Value::Null),
                &user_path.field("groups"),
            )?;
            if !groups.is_empty() {
                info.insert("groups".into(), Value::from(groups));
            }
            let extra_path = user_path.field("extra");
            let extra = user.get("extra").cloned().unwrap_or(Value::Null);
            if !extra.is_null() {
                let extra = self.mapping(
                    &extra,
                    &extra_path,
                    "a mapping of names to lists of strings",
                    &[],
                    "",
                )?;
                let mut out = Map::new();
                for (k, v) in &extra {
                    out.insert(
                        k.clone(),
                        Value::from(self.strings(v, &extra_path.field(k))?),
                    );
                }
                if !out.is_empty() {
                    info.insert("extra".into(), Value::Object(out));
                }
            }
        }
        request.insert("userInfo".into(), Value::Object(info));
        if let Some(sync) = map.get("synchronize")
            && !sync.is_null()
            && !sync.is_boolean()
        {
            let at = base.field("synchronize");
            return Err(self.error(
                &at,
                format!("{at} must be true or false (found {})", found(sync)),
            ));
        }
        Ok(UserInfo {
            request: Value::Object(request),
            deprecated,
        })
    }

    /// A list of strings at `path` (null: none).
    fn strings(&self, value: &Value, path: &JsonPath) -> Result<Vec<String>, ValuesError> {
        self.list(value, path, "strings")?
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.error(
                    &path.index(i),
                    format!(
                        "{} must be a string (found {})",
                        path.index(i),
                        found(other)
                    ),
                )),
            })
            .collect()
    }
}

/// The path for a message: the file itself at the root.
fn name(path: &JsonPath) -> String {
    if path.is_root() {
        "the file".to_string()
    } else {
        path.to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Result<CliValues, ValuesError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("values.yaml");
        std::fs::write(&path, text).unwrap();
        read_values_file(&path).map_err(|e| match e {
            ValuesError::Invalid { line, message, .. } => ValuesError::Invalid {
                file: "values.yaml".into(),
                line,
                message,
            },
            other => other,
        })
    }

    fn message(text: &str) -> String {
        read(text).unwrap_err().to_string()
    }

    const HEAD: &str = "apiVersion: cli.kyverno.io/v1alpha1\nkind: Values\n";

    #[test]
    fn scopes_namespaces_and_operations_are_read() {
        let values = read(&format!(
            "{HEAD}globalValues:\n  request.operation: UPDATE\n  a: 1\npolicies:\n- name: p\n  rules:\n  - name: r\n    values:\n      keys.data.pub: PEM\n  resources:\n  - name: pod\n    values:\n      request.operation: DELETE\nnamespaceSelector:\n- name: shop\n  labels:\n    env: prod\n- name: both\n  labels: {{from: selector}}\nnamespaces:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: both\n    labels: {{from: namespace}}\n"
        ))
        .unwrap();
        let mut context = Map::new();
        values.values.apply("p", "r", Some("pod"), &mut context);
        assert_eq!(
            Value::Object(context),
            json!({"request": {"operation": "DELETE"}, "a": 1, "keys": {"data": {"pub": "PEM"}}})
        );
        assert_eq!(values.namespace_labels["shop"]["env"], "prod");
        assert_eq!(values.namespace_labels["both"]["from"], "namespace");
        let op = values.operation_for("pod", ["p"]);
        assert_eq!(op.operation, Operation::Delete);
        assert!(op.conflict.is_none());
        assert_eq!(
            values.operation_for("other", ["p"]).operation,
            Operation::Update
        );
        let both = values.operation_for("pod", ["p", "q"]);
        assert_eq!(both.operation, Operation::Delete);
        assert!(both.conflict.unwrap().contains("p: DELETE, q: UPDATE"));
    }

    #[test]
    fn errors_name_the_file_line_and_path() {
        assert_eq!(
            message("globalValues:\n  a: b\n"),
            "values.yaml:1: the file has no apiVersion and kind: kyverno refuses this older form too (\"uses a deprecated schema\"); begin the file with apiVersion: cli.kyverno.io/v1alpha1 and kind: Values"
        );
        assert_eq!(
            message("apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\n"),
            "values.yaml:2: kind is Test, not Values: give a kind: Values file here (apiVersion: cli.kyverno.io/v1alpha1)"
        );
        assert_eq!(
            message(&format!("{HEAD}policies:\n  name: p\n")),
            "values.yaml:3: policies must be a list of policies (found a mapping)"
        );
        assert_eq!(
            message(&format!(
                "{HEAD}policies:\n- name: p\n  rules:\n  - name: a\n  - name: b\n    values: [x]\n"
            )),
            "values.yaml:8: policies[0].rules[1].values must be a mapping of variable names to values (found a list)"
        );
        assert_eq!(
            message(&format!("{HEAD}foo: bar\n")),
            "values.yaml:3: foo: unknown field; a values file holds apiVersion, kind, metadata, globalValues, policies, namespaceSelector, namespaces and subresources (kyverno refuses unknown fields too)"
        );
        assert_eq!(
            message(&format!(
                "{HEAD}globalValues:\n  request.operation: update\n"
            )),
            "values.yaml:4: globalValues[\"request.operation\"]: request.operation 'update' is not an operation: give CREATE, UPDATE, DELETE or CONNECT (upper case)"
        );
        assert_eq!(
            message(&format!("{HEAD}policies:\n- rules: []\n")),
            "values.yaml:4: policies[0] has no name: name the policy these values are for"
        );
        assert!(message("a: [b\n").starts_with("values.yaml:2: invalid YAML"));
        assert_eq!(
            message(&format!(
                "{HEAD}namespaceSelector:\n- name: a\n  labels: {{env: 1}}\n"
            )),
            "values.yaml:5: namespaceSelector[0].labels.env must be a string (found a number): quote the label value"
        );
    }

    #[test]
    fn set_entries_are_global_strings() {
        let values = values_from_set(&[
            "keys.data.pub=AAA==".into(),
            " request.operation = UPDATE ".into(),
        ])
        .unwrap();
        let mut context = Map::new();
        values.values.apply("p", "r", None, &mut context);
        assert_eq!(
            Value::Object(context),
            json!({"keys": {"data": {"pub": "AAA=="}}, "request": {"operation": "UPDATE"}})
        );
        assert_eq!(
            values.operation_for("x", ["p"]).operation,
            Operation::Update
        );
        for (entry, want) in [
            ("novalue", "--set 'novalue': not name=value"),
            ("a=", "--set 'a=': the name and the value must not be empty"),
            (
                "request.object.metadata.name=x",
                "--set 'request.object.metadata.name=x': values under request.object are ignored",
            ),
            (
                "request.operation=PATCH",
                "request.operation 'PATCH' is not an operation",
            ),
        ] {
            let err = values_from_set(&[entry.to_string()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let twice = values_from_set(&["a=1".into(), "a=2".into()]).unwrap_err();
        assert_eq!(
            twice.to_string(),
            "--set 'a=2': this name is given twice; give it once"
        );
    }

    #[test]
    fn user_info_becomes_request_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.yaml");
        std::fs::write(
            &path,
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: UserInfo\nroles: [ns:dev]\nclusterRoles: []\nuserInfo:\n  username: system:serviceaccount:ci:deployer\n  groups: [system:serviceaccounts]\n",
        )
        .unwrap();
        let info = read_user_info(&path).unwrap();
        assert!(!info.deprecated);
        assert_eq!(
            info.request,
            json!({"roles": ["ns:dev"], "userInfo": {"username": "system:serviceaccount:ci:deployer", "groups": ["system:serviceaccounts"]}})
        );
        std::fs::write(&path, "userInfo:\n  username: alice\n  name: x\n").unwrap();
        let err = read_user_info(&path).unwrap_err().to_string();
        assert!(
            err.ends_with(":3: userInfo.name: unknown field; userInfo holds username, uid, groups and extra (kyverno refuses unknown fields too)"),
            "{err}"
        );
        std::fs::write(&path, "userInfo:\n  username: alice\n").unwrap();
        assert!(read_user_info(&path).unwrap().deprecated);
    }
}
