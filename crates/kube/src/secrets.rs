//! Public keys kept in Secrets: `publicKeys: k8s://NAMESPACE/NAME` and `keys.secret: {name,
//! namespace}`. Every `*.pub` entry of the Secret is a key (as Kyverno reads them), in the order
//! of the entry names.
//!
//! Secrets are watched, never fetched per review: one watch per namespace a policy names,
//! started when a policy first names it. The policy watch substitutes the keys into the
//! policy's text before compiling it ([`substitute`]) and compiles it again when the Secret
//! changes, so a key rotated in its Secret takes effect without touching the policy. A Secret
//! not seen (missing, or not readable under the RBAC granted) is left as the reference, which
//! the engine reports as an unverifiable key (denied under Enforce).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::watched::{self, Watched};

/// A Secret by namespace and name.
pub type SecretRef = (String, String);

/// What a namespace's Secret watch reports to the policy watch: a Secret's `*.pub` keys (`None`:
/// deleted), and when the namespace has been listed.
pub type SecretEvent = Watched<Vec<String>>;

/// The `*.pub` entries of a Secret, in name order, as text.
pub fn public_keys(secret: &Secret) -> Vec<String> {
    let mut keys: Vec<(String, String)> = secret
        .data
        .iter()
        .flatten()
        .filter(|(name, _)| name.ends_with(".pub"))
        .filter_map(|(name, value)| {
            String::from_utf8(value.0.clone())
                .ok()
                .map(|text| (name.clone(), text))
        })
        .collect();
    keys.extend(
        secret
            .string_data
            .iter()
            .flatten()
            .filter(|(name, _)| name.ends_with(".pub"))
            .map(|(n, v)| (n.clone(), v.clone())),
    );
    keys.sort();
    keys.into_iter()
        .map(|(_, text)| text.trim().to_string())
        .collect()
}

/// The `keys` blocks of a policy's attestor entries, mutable.
fn key_blocks(policy: &mut Value) -> Vec<&mut serde_json::Map<String, Value>> {
    let mut blocks = Vec::new();
    let Some(rules) = policy
        .pointer_mut("/spec/rules")
        .and_then(Value::as_array_mut)
    else {
        return blocks;
    };
    for rule in rules {
        let Some(entries) = rule.get_mut("verifyImages").and_then(Value::as_array_mut) else {
            continue;
        };
        for entry in entries {
            let Some(attestors) = entry.get_mut("attestors").and_then(Value::as_array_mut) else {
                continue;
            };
            for attestor in attestors {
                let Some(items) = attestor.get_mut("entries").and_then(Value::as_array_mut) else {
                    continue;
                };
                for item in items {
                    if let Some(keys) = item.get_mut("keys").and_then(Value::as_object_mut) {
                        blocks.push(keys);
                    }
                }
            }
        }
    }
    blocks
}

/// The Secret a `keys` block names, if any.
fn named_secret(keys: &serde_json::Map<String, Value>) -> Option<SecretRef> {
    if let Some(reference) = keys
        .get("publicKeys")
        .and_then(Value::as_str)
        .and_then(|k| k.trim().strip_prefix("k8s://"))
    {
        let (ns, name) = reference.split_once('/')?;
        return (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
            .then(|| (ns.to_string(), name.to_string()));
    }
    let secret = keys.get("secret")?;
    Some((
        secret.get("namespace")?.as_str()?.to_string(),
        secret.get("name")?.as_str()?.to_string(),
    ))
}

/// The Secrets `policy` names for keys.
pub fn referenced(policy: &mut Value) -> BTreeSet<SecretRef> {
    key_blocks(policy)
        .into_iter()
        .filter_map(|keys| named_secret(keys))
        .collect()
}

/// Puts the keys of every Secret `policy` names and `known` has into `publicKeys` (the Secret
/// reference removed); references to Secrets with no key known stay as they are.
pub fn substitute(policy: &mut Value, known: &BTreeMap<SecretRef, Vec<String>>) {
    for keys in key_blocks(policy) {
        let Some(secret) = named_secret(keys) else {
            continue;
        };
        let Some(pems) = known.get(&secret).filter(|k| !k.is_empty()) else {
            continue;
        };
        keys.remove("secret");
        keys.insert("publicKeys".into(), Value::String(pems.join("\n")));
    }
}

/// Watches the Secrets of `namespace`, reporting their keys on `events`.
pub async fn watch_namespace(client: Client, namespace: String, events: mpsc::Sender<SecretEvent>) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    watched::watch(
        api,
        watcher::Config::default(),
        namespace,
        "Secret",
        public_keys,
        events,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> Value {
        json!({"spec": {"rules": [{"verifyImages": [{"attestors": [{"entries": [
            {"keys": {"publicKeys": "k8s://keys/cosign"}},
            {"keys": {"secret": {"name": "other", "namespace": "team-a"}}},
            {"keys": {"publicKeys": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}},
            {"keys": {"publicKeys": "k8s://bad"}}
        ]}]}]}]}})
    }

    #[test]
    fn both_spellings_of_a_secret_key_are_found_and_substituted() {
        let mut p = policy();
        let refs = referenced(&mut p);
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            [
                ("keys".to_string(), "cosign".to_string()),
                ("team-a".to_string(), "other".to_string())
            ]
        );
        let known = BTreeMap::from([(
            ("keys".to_string(), "cosign".to_string()),
            vec!["PEM-1".to_string(), "PEM-2".to_string()],
        )]);
        substitute(&mut p, &known);
        let entries = &p["spec"]["rules"][0]["verifyImages"][0]["attestors"][0]["entries"];
        assert_eq!(entries[0]["keys"]["publicKeys"], "PEM-1\nPEM-2");
        // Not known: the reference stays, for the engine to report.
        assert_eq!(entries[1]["keys"]["secret"]["name"], "other");
        assert!(
            entries[2]["keys"]["publicKeys"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN")
        );
        assert_eq!(entries[3]["keys"]["publicKeys"], "k8s://bad");
    }

    #[test]
    fn only_pub_entries_are_keys_in_name_order() {
        let secret = Secret {
            data: Some(BTreeMap::from([
                (
                    "z.pub".to_string(),
                    k8s_openapi::ByteString(b"Z\n".to_vec()),
                ),
                (
                    "cosign.key".to_string(),
                    k8s_openapi::ByteString(b"PRIVATE".to_vec()),
                ),
                ("a.pub".to_string(), k8s_openapi::ByteString(b"A".to_vec())),
            ])),
            ..Secret::default()
        };
        assert_eq!(public_keys(&secret), ["A", "Z"]);
    }
}
