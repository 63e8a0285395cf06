//! Checks of a document that compile nothing: match/exclude blocks, label selectors,
//! deprecated verifyImages fields (Kyverno's `Convert()`) and Notary entries.

use crate::policy::error::{PolicyErrorKind, PolicyWarningKind};
use crate::policy::matching::{LABEL_OPERATORS, Operation, kind_of};
use crate::policy::model::{self, LabelSelector, MatchResources, ResourceDescription};
use crate::policy::path::{JsonPath, Segment};
use crate::policy::variables::{check_expression, expressions, has_variables, user_variable};

use super::DocumentLoader;

impl DocumentLoader<'_> {
    /// Kyverno's variable checks at admission: with background processing on, no user
    /// variable (`request.userInfo`, `serviceAccountName`…) anywhere in the policy; and every
    /// variable of a rule a JMESPath expression (attestation conditions excepted: they are
    /// resolved against the predicate).
    pub(super) fn check_variables(&mut self, background: bool) {
        let doc = self.document;
        let document = &doc.value;
        let mut found: Vec<(JsonPath, String)> = Vec::new();
        strings_with_variables(document, &JsonPath::root(), &mut found);
        for (path, text) in found {
            let segments = path.segments();
            let in_conditions = segments
                .iter()
                .position(|s| *s == Segment::Field("attestations".into()))
                .is_some_and(|a| {
                    segments[a..]
                        .iter()
                        .any(|s| *s == Segment::Field("conditions".into()))
                });
            let rule = match path.segments() {
                [
                    Segment::Field(spec),
                    Segment::Field(rules),
                    Segment::Index(i),
                    ..,
                ] if spec == "spec" && rules == "rules" => document["spec"]["rules"][*i]["name"]
                    .as_str()
                    .map(str::to_string),
                _ => None,
            };
            for expression in expressions(&text) {
                if background && let Some(variable) = user_variable(expression) {
                    self.error(
                        &path,
                        PolicyErrorKind::VariableNotInBackground {
                            expression: expression.to_string(),
                            variable,
                        },
                    );
                }
                if let (Some(rule), false) = (&rule, in_conditions)
                    && let Err(e) = check_expression(expression)
                {
                    self.error(
                        &path,
                        PolicyErrorKind::BadVariable {
                            rule: rule.clone(),
                            reason: e.to_string(),
                        },
                    );
                }
            }
        }
    }
    pub(super) fn check_selector(&mut self, selector: &LabelSelector, path: &JsonPath) {
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

    pub(super) fn check_match(
        &mut self,
        resources: &MatchResources,
        path: &JsonPath,
        in_match: bool,
    ) {
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

    pub(super) fn deprecated_field_warnings(
        &mut self,
        entry: &model::ImageVerification,
        path: &JsonPath,
    ) {
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

    pub(super) fn check_notary(&mut self, entry: &model::ImageVerification, path: &JsonPath) {
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
}

/// Every string of `value` that holds a variable, with its path (keys not included).
pub(super) fn strings_with_variables(
    value: &serde_json::Value,
    path: &JsonPath,
    out: &mut Vec<(JsonPath, String)>,
) {
    match value {
        serde_json::Value::String(s) if has_variables(s) => out.push((path.clone(), s.clone())),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings_with_variables(item, &path.index(i), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                // Annotations may hold anything (kubectl's last-applied-configuration).
                if k == "annotations" && path.last_field() == Some("metadata") {
                    continue;
                }
                strings_with_variables(v, &path.field(k), out);
            }
        }
        _ => {}
    }
}
