//! ConfigMaps named by policies' `context[].configMap` entries (`{name, namespace}`), whose
//! values the policies' variables read (`publicKeys: "{{ keys.data.pub }}"`).
//!
//! As for key Secrets ([`crate::secrets`]): watched, never fetched per review, one watch per
//! namespace a policy names, started when a policy first names it. The policy watch compiles a
//! policy with the ConfigMaps it names ([`sealgate_core::policy::load_with_context`]) and
//! compiles it again when one changes, so a key rotated in its ConfigMap takes effect without
//! touching the policy (one parse of the new key). A ConfigMap not seen (missing, or not
//! readable under the RBAC granted) gives the images its variables' attestors cover an error
//! result naming it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use sealgate_core::policy::ContextValues;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::watched::{self, Watched};

/// A ConfigMap by namespace and name; the namespace [`EVERY_NAMESPACE`] stands for a namespace
/// that is a variable (`namespace: "{{ request.namespace }}"`): the ConfigMaps of that name in
/// every namespace.
pub type ConfigMapRef = (String, String);

/// The namespace of a [`ConfigMapRef`] whose namespace is a variable.
pub const EVERY_NAMESPACE: &str = "*";

/// The name of a [`ConfigMapRef`] whose name is a variable: every ConfigMap of its namespace.
pub const ANY_NAME: &str = "*";

/// What a ConfigMap watch covers: a namespace, or one name in every namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchScope {
    /// Every ConfigMap of one namespace.
    Namespace(String),
    /// The ConfigMaps of this name in every namespace.
    NameEverywhere(String),
}

impl WatchScope {
    /// The scope a reference is watched in.
    pub fn of(reference: &ConfigMapRef) -> WatchScope {
        if reference.0 == EVERY_NAMESPACE {
            WatchScope::NameEverywhere(reference.1.clone())
        } else {
            WatchScope::Namespace(reference.0.clone())
        }
    }

    /// The scope's name in [`ConfigMapEvent`]'s `Listed` and in logs.
    pub fn label(&self) -> String {
        match self {
            WatchScope::Namespace(ns) => ns.clone(),
            WatchScope::NameEverywhere(name) => format!("{EVERY_NAMESPACE}/{name}"),
        }
    }
}

/// Whether the seen ConfigMap `seen` is the one `named` (a policy's reference) stands for.
pub fn stands_for(named: &ConfigMapRef, seen: &ConfigMapRef) -> bool {
    named == seen
        || (named.0 == EVERY_NAMESPACE && named.1 == seen.1)
        || (named.1 == ANY_NAME && named.0 == seen.0)
}

/// What a namespace's ConfigMap watch reports to the policy watch: a ConfigMap's data (`None`:
/// deleted), and when the namespace has been listed.
pub type ConfigMapEvent = Watched<BTreeMap<String, String>>;

/// The ConfigMaps `policy`'s rules name in `context`. An empty namespace is `default`; a
/// namespace that is a variable is [`EVERY_NAMESPACE`]; a name that is a variable is
/// [`ANY_NAME`] (the namespace's ConfigMaps are watched anyway); both variables are not
/// watched (that would be every ConfigMap of the cluster): they resolve to nothing known.
pub fn referenced(policy: &Value) -> BTreeSet<ConfigMapRef> {
    let mut out = BTreeSet::new();
    let Some(rules) = policy.pointer("/spec/rules").and_then(Value::as_array) else {
        return out;
    };
    for entry in rules
        .iter()
        .filter_map(|r| r.get("context").and_then(Value::as_array))
        .flatten()
    {
        let Some(config_map) = entry.get("configMap") else {
            continue;
        };
        let name = config_map.get("name").and_then(Value::as_str).unwrap_or("");
        let namespace = config_map
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        if name.is_empty() || (name.contains("{{") && namespace.contains("{{")) {
            continue;
        }
        let name = if name.contains("{{") { ANY_NAME } else { name };
        let namespace = if namespace.contains("{{") {
            EVERY_NAMESPACE
        } else {
            namespace
        };
        out.insert((namespace.to_string(), name.to_string()));
    }
    out
}

/// The values a policy naming `named` is compiled with.
pub fn values(
    named: &BTreeSet<ConfigMapRef>,
    known: &BTreeMap<ConfigMapRef, BTreeMap<String, String>>,
) -> ContextValues {
    let mut values = ContextValues::reading_config_maps();
    for r in named {
        if r.0 == EVERY_NAMESPACE || r.1 == ANY_NAME {
            for (seen, data) in known.iter().filter(|(seen, _)| stands_for(r, seen)) {
                values.insert_config_map(&seen.0, &seen.1, data);
            }
        } else if let Some(data) = known.get(r) {
            values.insert_config_map(&r.0, &r.1, data);
        }
    }
    values
}

/// A ConfigMap's `data`, with its text `binaryData` entries.
pub fn data(config_map: &ConfigMap) -> BTreeMap<String, String> {
    let mut out = config_map.data.clone().unwrap_or_default();
    for (name, bytes) in config_map.binary_data.iter().flatten() {
        if let Ok(text) = String::from_utf8(bytes.0.clone()) {
            out.entry(name.clone()).or_insert(text);
        }
    }
    out
}

/// Watches the ConfigMaps of `scope`, reporting their data on `events`. A name in every
/// namespace is one cluster-wide watch with a field selector (RBAC: list/watch ConfigMaps
/// cluster-wide).
pub async fn watch(client: Client, scope: WatchScope, events: mpsc::Sender<ConfigMapEvent>) {
    let (api, config): (Api<ConfigMap>, _) = match &scope {
        WatchScope::Namespace(namespace) => (
            Api::namespaced(client, namespace),
            watcher::Config::default(),
        ),
        WatchScope::NameEverywhere(name) => (
            Api::all(client),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
    };
    watched::watch(api, config, scope.label(), "ConfigMap", data, events).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_maps_named_in_context_are_found() {
        let policy = json!({"spec": {"rules": [
            {"context": [
                {"name": "keys", "configMap": {"name": "keys", "namespace": "team-a"}},
                {"name": "d", "configMap": {"name": "other"}},
                {"name": "v", "configMap": {"name": "{{ request.namespace }}"}},
                {"name": "w", "configMap": {"name": "{{ x }}", "namespace": "{{ y }}"}},
                {"name": "t", "configMap": {"name": "team-keys", "namespace": "{{ request.namespace }}"}},
                {"name": "x", "variable": {"value": 1}}
            ]},
            {"verifyImages": []}
        ]}});
        assert_eq!(
            referenced(&policy).into_iter().collect::<Vec<_>>(),
            [
                ("*".to_string(), "team-keys".to_string()),
                ("default".to_string(), "*".to_string()),
                ("default".to_string(), "other".to_string()),
                ("team-a".to_string(), "keys".to_string())
            ]
        );
    }

    #[test]
    fn values_hold_only_the_config_maps_named() {
        let named = BTreeSet::from([("ns".to_string(), "a".to_string())]);
        let known = BTreeMap::from([
            (
                ("ns".to_string(), "a".to_string()),
                BTreeMap::from([("pub".to_string(), "PEM".to_string())]),
            ),
            (("ns".to_string(), "b".to_string()), BTreeMap::new()),
        ]);
        let values = values(&named, &known);
        assert!(values.reads_config_maps());
        assert_eq!(values.config_map("ns", "a").unwrap()["data"]["pub"], "PEM");
        assert!(values.config_map("ns", "b").is_none());
    }

    #[test]
    fn a_variable_namespace_stands_for_that_name_in_every_namespace() {
        let named = BTreeSet::from([("*".to_string(), "keys".to_string())]);
        let known = BTreeMap::from([
            (("a".to_string(), "keys".to_string()), BTreeMap::new()),
            (("b".to_string(), "keys".to_string()), BTreeMap::new()),
            (("b".to_string(), "other".to_string()), BTreeMap::new()),
        ]);
        let values = values(&named, &known);
        assert!(values.config_map("a", "keys").is_some());
        assert!(values.config_map("b", "keys").is_some());
        assert!(values.config_map("b", "other").is_none());
        let scope = WatchScope::of(&("*".to_string(), "keys".to_string()));
        assert_eq!(scope, WatchScope::NameEverywhere("keys".into()));
        assert_eq!(scope.label(), "*/keys");
        assert!(stands_for(
            &("*".into(), "keys".into()),
            &("a".into(), "keys".into())
        ));
        assert!(!stands_for(
            &("*".into(), "keys".into()),
            &("a".into(), "other".into())
        ));
    }
}
