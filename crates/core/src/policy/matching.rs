//! `match` / `exclude` evaluation: kinds, names, namespaces, annotations, label selectors and
//! operations, with Kyverno's wildcards.
//!
//! Request users (`subjects`, `roles`, `clusterRoles`) are not known to sealgate in every mode:
//! a filter that names them is treated as satisfied in `match` (the rule applies, so images are
//! still checked) and as not satisfied in `exclude` (nothing is let through on that basis). The
//! loader warns about such filters.

use std::collections::BTreeMap;

use crate::image::wildcard;

use super::model::{
    LabelSelector, LabelSelectorRequirement, MatchResources, ResourceDescription, ResourceFilter,
};

/// The label operators Kubernetes accepts in `matchExpressions`.
pub const LABEL_OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// An admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// CREATE.
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// The name as written in policies and AdmissionReviews.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// Parses `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn parse(name: &str) -> Option<Operation> {
        match name {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct ResourceMeta<'a> {
    /// Kind, e.g. `Pod`, `Deployment`.
    pub kind: &'a str,
    /// Namespace; `None` for cluster-scoped resources.
    pub namespace: Option<&'a str>,
    /// Name.
    pub name: &'a str,
    /// The resource's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The resource's annotations.
    pub annotations: &'a BTreeMap<String, String>,
    /// The labels of the resource's namespace; `None` when they are not known (the webhook has no
    /// Kubernetes API to ask): a `namespaceSelector` is then taken as satisfied in `match` and
    /// as not satisfied in `exclude`, so the rule applies (fail closed).
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    /// The admission operation.
    pub operation: Operation,
}

/// The kind part of a `kinds` entry: `Pod`, `v1/Pod`, `apps/v1/Deployment`, `Pod/exec` → the
/// `Kind` segment.
pub fn kind_of(entry: &str) -> &str {
    entry
        .rsplit('/')
        .find(|s| s.starts_with(|c: char| c.is_ascii_uppercase() || c == '*'))
        .unwrap_or(entry)
}

/// Whether a `kinds` list names `kind` (wildcards allowed).
pub fn kinds_match(kinds: &[String], kind: &str) -> bool {
    kinds.iter().any(|k| wildcard::matches(kind_of(k), kind))
}

/// Whether `selector` matches `labels` (Kubernetes semantics; an empty selector matches all).
/// Invalid requirements (unknown operators) never match; the loader refuses them.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector
            .match_expressions
            .iter()
            .all(|r| requirement_matches(r, labels))
}

fn requirement_matches(req: &LabelSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => value.is_some_and(|v| req.values.contains(v)),
        "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

/// Whether a resource description matches. The namespace of a `Namespace` is its name.
pub fn description_matches(
    desc: &ResourceDescription,
    resource: &ResourceMeta<'_>,
    in_exclude: bool,
) -> bool {
    if !desc.kinds.is_empty() && !kinds_match(&desc.kinds, resource.kind) {
        return false;
    }
    if let Some(name) = &desc.name
        && !wildcard::matches(name, resource.name)
    {
        return false;
    }
    if !desc.names.is_empty() && !wildcard::matches_any(&desc.names, resource.name) {
        return false;
    }
    let namespace = if resource.kind == "Namespace" {
        resource.name
    } else {
        resource.namespace.unwrap_or("")
    };
    if !desc.namespaces.is_empty() && !wildcard::matches_any(&desc.namespaces, namespace) {
        return false;
    }
    if let Some(annotations) = &desc.annotations {
        let all = annotations.iter().all(|(key, pattern)| {
            resource
                .annotations
                .iter()
                .any(|(k, v)| wildcard::matches(key, k) && wildcard::matches(pattern, v))
        });
        if !all {
            return false;
        }
    }
    if let Some(selector) = &desc.selector
        && !selector_matches(selector, resource.labels)
    {
        return false;
    }
    if let Some(selector) = &desc.namespace_selector {
        let satisfied = match resource.namespace_labels {
            Some(labels) => selector_matches(selector, labels),
            None => !in_exclude,
        };
        if !satisfied {
            return false;
        }
    }
    if !desc.operations.is_empty()
        && !desc
            .operations
            .iter()
            .any(|op| op == resource.operation.name())
    {
        return false;
    }
    true
}

fn filter_matches(filter: &ResourceFilter, resource: &ResourceMeta<'_>, in_exclude: bool) -> bool {
    if in_exclude && filter.has_user_info() {
        return false;
    }
    filter
        .resources
        .as_ref()
        .is_none_or(|desc| description_matches(desc, resource, in_exclude))
}

/// Whether `match` selects the resource. An empty `match` selects nothing.
pub fn match_selects(resources: &MatchResources, resource: &ResourceMeta<'_>) -> bool {
    selects(resources, resource, false)
}

/// Whether `exclude` removes the resource. An empty `exclude` removes nothing.
pub fn exclude_removes(resources: &MatchResources, resource: &ResourceMeta<'_>) -> bool {
    if resources.is_empty() {
        return false;
    }
    selects(resources, resource, true)
}

fn selects(resources: &MatchResources, resource: &ResourceMeta<'_>, in_exclude: bool) -> bool {
    if !resources.any.is_empty() {
        return resources
            .any
            .iter()
            .any(|f| filter_matches(f, resource, in_exclude));
    }
    if !resources.all.is_empty() {
        return resources
            .all
            .iter()
            .all(|f| filter_matches(f, resource, in_exclude));
    }
    let legacy_user_info = !resources.subjects.is_empty()
        || !resources.roles.is_empty()
        || !resources.cluster_roles.is_empty();
    if in_exclude && legacy_user_info {
        return false;
    }
    match &resources.resources {
        Some(desc) if !desc.is_empty() => description_matches(desc, resource, in_exclude),
        _ => legacy_user_info && !in_exclude,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(value: serde_json::Value) -> LabelSelector {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn kind_entries() {
        assert_eq!(kind_of("Pod"), "Pod");
        assert_eq!(kind_of("v1/Pod"), "Pod");
        assert_eq!(kind_of("apps/v1/Deployment"), "Deployment");
        assert_eq!(kind_of("Pod/exec"), "Pod");
        assert_eq!(kind_of("*"), "*");
        assert!(kinds_match(&["apps/v1/Deployment".into()], "Deployment"));
        assert!(kinds_match(&["*".into()], "Deployment"));
        assert!(!kinds_match(&["Pod".into()], "Deployment"));
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("env", "prod"), ("tier", "web")]);
        let table = [
            (json!({}), true),
            (json!({"matchLabels": {"env": "prod"}}), true),
            (json!({"matchLabels": {"env": "dev"}}), false),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "prod"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "team", "operator": "Bogus"}]}),
                false,
            ),
            (
                json!({"matchLabels": {"env": "prod"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}),
                false,
            ),
        ];
        for (sel, expected) in table {
            assert_eq!(
                selector_matches(&selector(sel.clone()), &l),
                expected,
                "{sel}"
            );
        }
    }
}
