//! Kyverno's autogen (§4): Pod rules applied to the pod templates of controllers.
//!
//! For every rule that matches `Pod` (and whose `exclude`, if any, also names `Pod`), Kyverno
//! adds `autogen-<rule>` matching DaemonSet, Deployment, Job, ReplicaSet,
//! ReplicationController and StatefulSet, and `autogen-cronjob-<rule>` matching CronJob. The
//! annotation `pod-policies.kyverno.io/autogen-controllers` chooses the controllers: absent
//! means all of them, `none` turns autogen off, a comma-separated list names them; `all` is
//! refused by the loader. Autogen is off for the whole policy when [`can_autogen`] says so.
//!
//! Generated rules keep the verifyImages entries verbatim (images are found by kind, see
//! [`super::Rule::image_source`]); `context` and `preconditions` get Kyverno's text
//! replacement `request.object.spec` → `request.object.spec.template.spec` (CronJob:
//! `…spec.jobTemplate.spec.template.spec`), likewise for `oldObject` and `.metadata`.

use serde_json::Value;

use super::compiled::{Rule, RuleOrigin};
use super::matching::kind_of;
use super::model::{MatchResources, ResourceDescription, ResourceFilter, RuleSpec};

/// The annotation choosing autogen controllers.
pub const AUTOGEN_ANNOTATION: &str = "pod-policies.kyverno.io/autogen-controllers";

/// The controllers autogen covers by default, in Kyverno's order.
pub const DEFAULT_CONTROLLERS: [&str; 7] = [
    "DaemonSet",
    "Deployment",
    "Job",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
    "CronJob",
];

/// Kyverno's `CanAutoGen`: autogen is off when a rule generates or patches with JSON6902, or
/// when a resource description names resources (`name`, `names`), selects them (`selector`,
/// `annotations`) or mixes `Pod` with other kinds; it is needed only when some rule matches
/// Pod or a pod controller.
pub fn can_autogen(rules: &[RuleSpec]) -> bool {
    let mut needed = false;
    for rule in rules {
        if rule.generate.as_ref().is_some_and(|g| !g.is_null()) || has_json6902(rule) {
            return false;
        }
        let mut descriptions: Vec<&ResourceDescription> =
            rule.match_resources.descriptions().collect();
        if let Some(exclude) = &rule.exclude {
            descriptions.extend(exclude.descriptions());
        }
        for desc in descriptions {
            let pod_and_more = desc.kinds.len() > 1 && desc.kinds.iter().any(|k| is_pod(k));
            if desc.name.as_deref().is_some_and(|n| !n.is_empty())
                || !desc.names.is_empty()
                || desc.selector.is_some()
                || desc.annotations.is_some()
                || pod_and_more
            {
                return false;
            }
            needed = needed
                || desc.kinds.iter().any(|k| {
                    let kind = kind_of(k);
                    kind == "Pod" || DEFAULT_CONTROLLERS.contains(&kind)
                });
        }
    }
    needed
}

fn has_json6902(rule: &RuleSpec) -> bool {
    let Some(mutate) = &rule.mutate else {
        return false;
    };
    let set = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    set(mutate.get("patchesJson6902"))
        || mutate
            .get("foreach")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(|f| set(f.get("patchesJson6902"))))
}

fn is_pod(kind: &str) -> bool {
    kind_of(kind) == "Pod"
}

/// The controllers requested by the annotation value (`None` = annotation absent).
/// Returns the controllers to generate for and the names that are not pod controllers.
pub fn requested_controllers(annotation: Option<&str>) -> (Vec<String>, Vec<String>) {
    let Some(value) = annotation else {
        return (
            DEFAULT_CONTROLLERS.iter().map(|s| s.to_string()).collect(),
            Vec::new(),
        );
    };
    if value.trim() == "none" {
        return (Vec::new(), Vec::new());
    }
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if DEFAULT_CONTROLLERS.contains(&name) {
            if !known.iter().any(|k| k == name) {
                known.push(name.to_string());
            }
        } else if name != "all" {
            unknown.push(name.to_string());
        }
    }
    (known, unknown)
}

fn gvk(kind: &str) -> String {
    match kind {
        "DaemonSet" | "Deployment" | "ReplicaSet" | "StatefulSet" => format!("apps/v1/{kind}"),
        "Job" | "CronJob" => format!("batch/v1/{kind}"),
        "ReplicationController" => format!("v1/{kind}"),
        other => other.to_string(),
    }
}

/// `prefix-name`, cut to 63 bytes as Kyverno does (at a character boundary).
fn autogen_name(prefix: &str, name: &str) -> String {
    let mut full = format!("{prefix}-{name}");
    if full.len() > 63 {
        let mut cut = 63;
        while !full.is_char_boundary(cut) {
            cut -= 1;
        }
        full.truncate(cut);
    }
    full
}

/// Replaces the kinds of the filters that match `Pod` (or of all filters when `all_filters`).
fn rewrite_filters(filters: &mut [ResourceFilter], kinds: &[String], all_filters: bool) {
    for filter in filters {
        if let Some(desc) = &mut filter.resources
            && (all_filters || desc.kinds.iter().any(|k| is_pod(k)))
        {
            desc.kinds = kinds.to_vec();
        }
    }
}

fn rewrite_match(
    resources: &mut MatchResources,
    kinds: &[String],
    all_filters: bool,
    exclude: bool,
) {
    if !resources.any.is_empty() {
        rewrite_filters(&mut resources.any, kinds, all_filters);
    } else if !resources.all.is_empty() {
        rewrite_filters(&mut resources.all, kinds, all_filters);
    } else if let Some(desc) = &mut resources.resources {
        if !exclude || !desc.kinds.is_empty() {
            desc.kinds = kinds.to_vec();
        }
    } else if !exclude {
        resources.resources = Some(ResourceDescription {
            kinds: kinds.to_vec(),
            ..ResourceDescription::default()
        });
    }
}

const POD_REPLACEMENTS: [(&str, &str); 4] = [
    ("request.object.spec", "request.object.spec.template.spec"),
    (
        "request.oldObject.spec",
        "request.oldObject.spec.template.spec",
    ),
    (
        "request.object.metadata",
        "request.object.spec.template.metadata",
    ),
    (
        "request.oldObject.metadata",
        "request.oldObject.spec.template.metadata",
    ),
];

const CRONJOB_REPLACEMENTS: [(&str, &str); 4] = [
    (
        "request.object.spec",
        "request.object.spec.jobTemplate.spec.template.spec",
    ),
    (
        "request.oldObject.spec",
        "request.oldObject.spec.jobTemplate.spec.template.spec",
    ),
    (
        "request.object.metadata",
        "request.object.spec.jobTemplate.spec.template.metadata",
    ),
    (
        "request.oldObject.metadata",
        "request.oldObject.spec.jobTemplate.spec.template.metadata",
    ),
];

/// Kyverno's text replacement, applied to every string of a raw JSON value in sequence.
fn replace_references(value: &mut Value, replacements: &[(&str, &str)]) {
    match value {
        Value::String(s) => {
            for (from, to) in replacements {
                if s.contains(from) {
                    *s = s.replace(from, to);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| replace_references(v, replacements)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| replace_references(v, replacements)),
        _ => {}
    }
}

fn shift_rule(rule: &mut Rule, replacements: &[(&str, &str)]) {
    for entry in &mut rule.context {
        replace_references(entry, replacements);
    }
    for raw in [&mut rule.preconditions, &mut rule.cel_preconditions]
        .into_iter()
        .flatten()
    {
        replace_references(raw, replacements);
    }
    if let Some(scope) = &rule.request_scope {
        rule.request_scope = Some(std::sync::Arc::new(scope.shifted(
            replacements,
            replace_references,
            rule.preconditions.as_ref(),
        )));
    }
}

/// The rules Kyverno generates for `rules` given the chosen `controllers` (from
/// [`requested_controllers`]); empty when `enabled` (see [`can_autogen`]) is false.
/// Rules already named `autogen-…` are not expanded again.
pub fn generate_rules(rules: &[Rule], controllers: &[String], enabled: bool) -> Vec<Rule> {
    if !enabled || controllers.is_empty() {
        return Vec::new();
    }
    let mut pod_controllers: Vec<&str> = controllers
        .iter()
        .map(String::as_str)
        .filter(|c| *c != "CronJob")
        .collect();
    pod_controllers.sort_unstable();
    let pod_kinds: Vec<String> = pod_controllers.iter().map(|k| gvk(k)).collect();
    let cronjob = controllers.iter().any(|c| c == "CronJob");
    let mut out = Vec::new();
    for rule in rules {
        if rule.name.starts_with("autogen-") {
            continue;
        }
        let match_kinds = rule.match_resources.kinds();
        let exclude_kinds = rule
            .exclude
            .as_ref()
            .map(MatchResources::kinds)
            .unwrap_or_default();
        if !match_kinds.iter().any(|k| is_pod(k))
            || (!exclude_kinds.is_empty() && !exclude_kinds.iter().any(|k| is_pod(k)))
        {
            continue;
        }
        // Kyverno derives the CronJob rule from the controllers rule (before its text shift).
        let mut controllers_rule = rule.clone();
        controllers_rule.name = autogen_name("autogen", &rule.name);
        controllers_rule.origin = RuleOrigin::Autogen {
            rule: rule.name.clone(),
        };
        if !pod_kinds.is_empty() || cronjob {
            let kinds = if pod_kinds.is_empty() {
                vec![gvk("CronJob")]
            } else {
                pod_kinds.clone()
            };
            rewrite_match(&mut controllers_rule.match_resources, &kinds, false, false);
            if let Some(exclude) = &mut controllers_rule.exclude {
                rewrite_match(exclude, &kinds, false, true);
            }
        }
        if cronjob {
            let mut cron = controllers_rule.clone();
            cron.name = autogen_name("autogen-cronjob", &rule.name);
            cron.origin = RuleOrigin::AutogenCronJob {
                rule: rule.name.clone(),
            };
            let kinds = vec![gvk("CronJob")];
            rewrite_match(&mut cron.match_resources, &kinds, true, false);
            if let Some(exclude) = &mut cron.exclude {
                rewrite_match(exclude, &kinds, true, true);
            }
            shift_rule(&mut cron, &CRONJOB_REPLACEMENTS);
            if !pod_kinds.is_empty() {
                shift_rule(&mut controllers_rule, &POD_REPLACEMENTS);
                out.push(controllers_rule);
            }
            out.push(cron);
        } else if !pod_kinds.is_empty() {
            shift_rule(&mut controllers_rule, &POD_REPLACEMENTS);
            out.push(controllers_rule);
        }
    }
    out
}
