//! Values for variables given from outside a cluster, as Kyverno's CLI takes them: a values
//! file (`kind: Values`: `globalValues`, `policies[].rules[].values`,
//! `policies[].resources[].values`) or a test's `variables:`/`values:`.
//!
//! A value's name is a dotted variable name (`request.operation`, `keys.data.pub`); it is set
//! into the rule's context as nested objects, before the rule's `context` entries are loaded
//! (an entry sealgate does not load there, such as a ConfigMap under `apply`, keeps the value).
//! Later layers win: global, then the resource's, then the rule's.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Values by scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    global: Map<String, Value>,
    /// By (policy, rule).
    rules: BTreeMap<(String, String), Map<String, Value>>,
    /// By (policy, resource name).
    resources: BTreeMap<(String, String), Map<String, Value>>,
}

impl Values {
    /// No values.
    pub fn new() -> Values {
        Values::default()
    }

    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.global.is_empty() && self.rules.is_empty() && self.resources.is_empty()
    }

    /// Sets a value for every policy, rule and resource (`globalValues`).
    pub fn set_global(&mut self, name: &str, value: Value) {
        self.global.insert(name.to_string(), value);
    }

    /// Sets a value for one rule of one policy (`policies[].rules[].values`).
    pub fn set_for_rule(&mut self, policy: &str, rule: &str, name: &str, value: Value) {
        self.rules
            .entry((policy.to_string(), rule.to_string()))
            .or_default()
            .insert(name.to_string(), value);
    }

    /// Sets a value for one resource under one policy (`policies[].resources[].values`).
    pub fn set_for_resource(&mut self, policy: &str, resource: &str, name: &str, value: Value) {
        self.resources
            .entry((policy.to_string(), resource.to_string()))
            .or_default()
            .insert(name.to_string(), value);
    }

    /// Whether some value is set for one resource under `policy` (such a policy's rules are
    /// resolved per resource).
    pub fn has_resource_values(&self, policy: &str) -> bool {
        self.resources.keys().any(|(p, _)| p == policy)
    }

    /// Sets into `context` the values for `rule` of `policy` applied to `resource` (when
    /// known): global, then the resource's, then the rule's.
    pub fn apply(
        &self,
        policy: &str,
        rule: &str,
        resource: Option<&str>,
        context: &mut Map<String, Value>,
    ) {
        self.apply_over(policy, rule, resource, &Map::new(), context);
    }

    /// [`Values::apply`] into `own` over `shared` (the request's variables, left as they are):
    /// a name whose first segment `shared` holds and `own` does not starts from a copy of
    /// `shared`'s member, so `request.operation` changes the operation and keeps the rest of
    /// the request.
    pub fn apply_over(
        &self,
        policy: &str,
        rule: &str,
        resource: Option<&str>,
        shared: &Map<String, Value>,
        own: &mut Map<String, Value>,
    ) {
        let key = |a: &str, b: &str| (a.to_string(), b.to_string());
        let layers = [
            Some(&self.global),
            resource.and_then(|r| self.resources.get(&key(policy, r))),
            self.rules.get(&key(policy, rule)),
        ];
        for layer in layers.into_iter().flatten() {
            for (name, value) in layer {
                if let Some(top) = split_name(name).first()
                    && !own.contains_key(top)
                    && let Some(member) = shared.get(top)
                {
                    own.insert(top.clone(), member.clone());
                }
                set_dotted(own, name, value.clone());
            }
        }
    }

    /// The names set for `rule` of `policy` (any resource): what `lint` may report as given.
    pub fn names_for(&self, policy: &str, rule: &str) -> Vec<&str> {
        let mut out: Vec<&str> = self.global.keys().map(String::as_str).collect();
        for ((p, r), values) in &self.rules {
            if p == policy && r == rule {
                out.extend(values.keys().map(String::as_str));
            }
        }
        for ((p, _), values) in &self.resources {
            if p == policy {
                out.extend(values.keys().map(String::as_str));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Sets `value` at the dotted `name` in `context`, creating (or replacing non-object values
/// with) objects on the way, as Kyverno's `AddVariable` does. A name segment may be quoted
/// (`"kyverno.io/x".y`) to hold a dot.
pub fn set_dotted(context: &mut Map<String, Value>, name: &str, value: Value) {
    let segments = split_name(name);
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut map = context;
    for segment in parents {
        let slot = map
            .entry(segment.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(inner) = slot else {
            return;
        };
        map = inner;
    }
    match (map.get_mut(last.as_str()), value) {
        // Objects merge, so `request.object` and `request.operation` set apart both stay.
        (Some(Value::Object(existing)), Value::Object(new)) => {
            for (k, v) in new {
                existing.insert(k, v);
            }
        }
        (_, value) => {
            map.insert(last.clone(), value);
        }
    }
}

/// Splits a dotted name (CSV-like: a segment in double quotes may hold dots).
fn split_name(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in name.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out.retain(|s| !s.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_names_become_nested_objects_and_merge() {
        let mut context = Map::new();
        set_dotted(&mut context, "request.operation", json!("UPDATE"));
        set_dotted(&mut context, "request.object", json!({"kind": "Pod"}));
        set_dotted(&mut context, "keys.data.pub", json!("PEM"));
        set_dotted(&mut context, "\"example.com/x\".y", json!(1));
        assert_eq!(
            Value::Object(context),
            json!({
                "request": {"operation": "UPDATE", "object": {"kind": "Pod"}},
                "keys": {"data": {"pub": "PEM"}},
                "example.com/x": {"y": 1},
            })
        );
    }

    #[test]
    fn the_rule_value_wins_over_the_resource_and_global_ones() {
        let mut values = Values::new();
        values.set_global("request.operation", json!("CREATE"));
        values.set_global("a", json!("global"));
        values.set_for_resource("p", "pod", "a", json!("resource"));
        values.set_for_resource("p", "pod", "b", json!("resource"));
        values.set_for_rule("p", "r", "b", json!("rule"));
        let mut context = Map::new();
        values.apply("p", "r", Some("pod"), &mut context);
        assert_eq!(
            Value::Object(context),
            json!({"request": {"operation": "CREATE"}, "a": "resource", "b": "rule"})
        );
        let mut other = Map::new();
        values.apply("p", "other", Some("other-pod"), &mut other);
        assert_eq!(
            Value::Object(other),
            json!({"request": {"operation": "CREATE"}, "a": "global"})
        );
        assert!(values.has_resource_values("p"));
        assert!(!values.has_resource_values("q"));
        assert_eq!(
            values.names_for("p", "r"),
            vec!["a", "b", "request.operation"]
        );
    }
}
