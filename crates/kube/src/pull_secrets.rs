//! Registry credentials from pull secrets (`kubernetes.io/dockerconfigjson` and
//! `kubernetes.io/dockercfg` Secrets): the server's
//! [`CredentialSource`](sealgate_server::CredentialSource).
//!
//! A review's keyring is, in this order (the first with an entry for a registry answers for
//! it):
//!
//! 1. the object's `imagePullSecrets` (a Pod's, or a pod controller's template's), in the
//!    object's namespace, with `--pod-pull-secrets`;
//! 2. the `imageRegistryCredentials.secrets` of the rules in force (`NAME` in sealgate's
//!    namespace, or `NAMESPACE/NAME`);
//! 3. `--image-pull-secret` (`NAME` or `NAMESPACE/NAME`), for every review.
//!
//! Kyverno uses the secrets of the rule being evaluated; here a review's fetches get the secrets
//! of every rule in force, which differs only when two rules name different secrets for the same
//! registry. Credentials go only to the registries their entries name, whichever rule they
//! came from.
//!
//! Secrets are watched, never fetched per review: with `--pod-pull-secrets`, docker-config
//! Secrets in every namespace (two watches, one per type, filtered by the API server on `type`;
//! RBAC: list/watch Secrets cluster-wide); otherwise one watch per namespace the flags and
//! policies name, started when first named (RBAC: list/watch Secrets there). A Secret that is
//! not seen (missing, unreadable, wrong type, bad JSON — the last logged) gives no credentials:
//! the registry then answers as it does anonymously, and the decision says so.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use sealgate_core::policy::Policy;
use sealgate_registry::Keyring;
use sealgate_server::CredentialSource;
use sealgate_server::policies::PolicySet;
use tokio::sync::watch;

use crate::watched::{self, Watched};

/// The two Secret types that hold docker configs, and the data key of each.
const TYPES: [(&str, &str); 2] = [
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
    ("kubernetes.io/dockercfg", ".dockercfg"),
];

/// Which pull secrets count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSecretConfig {
    /// Where a `NAME` without a namespace lives (sealgate's namespace).
    pub home_namespace: String,
    /// `--image-pull-secret`, as given.
    pub global: Vec<String>,
    /// `--pod-pull-secrets`: use the object's `imagePullSecrets`.
    pub pods: bool,
}

impl PullSecretConfig {
    /// `NAME` or `NAMESPACE/NAME` as a Secret reference.
    pub fn secret_ref(&self, text: &str) -> (String, String) {
        match text.split_once('/') {
            Some((ns, name)) => (ns.to_string(), name.to_string()),
            None => (self.home_namespace.clone(), text.to_string()),
        }
    }

    /// The Secrets `policies` name in `imageRegistryCredentials.secrets`, in order.
    fn rule_secrets(&self, policies: &[Policy]) -> Vec<(String, String)> {
        let mut refs = Vec::new();
        for entry in policies
            .iter()
            .flat_map(|p| &p.rules)
            .flat_map(|r| &r.verify_images)
        {
            for name in entry
                .image_registry_credentials
                .iter()
                .flat_map(|c| &c.secrets)
            {
                let r = self.secret_ref(name);
                if !refs.contains(&r) {
                    refs.push(r);
                }
            }
        }
        refs
    }
}

/// The docker config of `secret` when it is a pull secret: `Ok(None)` for other types.
pub fn keyring_of(secret: &Secret) -> Result<Option<Keyring>, String> {
    let Some((_, key)) = TYPES
        .iter()
        .find(|(t, _)| secret.type_.as_deref() == Some(*t))
    else {
        return Ok(None);
    };
    let origin = format!(
        "Secret {}/{}",
        secret.metadata.namespace.as_deref().unwrap_or_default(),
        secret.metadata.name.as_deref().unwrap_or_default()
    );
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(*key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(*key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| format!("{origin} has no {key} entry"))?;
    let mut keyring = Keyring::default();
    keyring
        .add_docker_config(&origin, &bytes)
        .map_err(|e| e.to_string())?;
    Ok(Some(keyring))
}

/// The pull secrets seen, by namespace and name.
#[derive(Debug)]
pub struct PullSecretStore {
    config: PullSecretConfig,
    secrets: RwLock<HashMap<(String, String), Arc<Keyring>>>,
}

impl PullSecretStore {
    /// An empty store for `config`.
    pub fn new(config: PullSecretConfig) -> Arc<PullSecretStore> {
        Arc::new(PullSecretStore {
            config,
            secrets: RwLock::new(HashMap::new()),
        })
    }

    fn set(&self, key: (String, String), keyring: Option<Arc<Keyring>>) {
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        match keyring {
            Some(k) => secrets.insert(key, k),
            None => secrets.remove(&key),
        };
    }

    /// Records what a watch saw of `secret` (an `Apply`).
    pub fn apply(&self, secret: &Secret) {
        let key = (
            secret.metadata.namespace.clone().unwrap_or_default(),
            secret.metadata.name.clone().unwrap_or_default(),
        );
        self.record(key, keyring_of(secret));
    }

    /// Records what [`keyring_of`] made of the Secret `key`: its credentials, or none (another
    /// type, or unusable: said in the log).
    fn record(&self, key: (String, String), read: Result<Option<Keyring>, String>) {
        match read {
            Ok(keyring) => self.set(key, keyring.map(Arc::new)),
            Err(problem) => {
                tracing::warn!(problem = %problem, "pull secret not usable; no credentials from it");
                self.set(key, None);
            }
        }
    }

    /// Watches until `stop` resolves: cluster-wide with `--pod-pull-secrets`, else the
    /// namespaces the flags and the policies in force name (new ones as policies name them).
    pub async fn run(
        self: Arc<Self>,
        client: Client,
        mut policies: watch::Receiver<Arc<PolicySet>>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tasks = Vec::new();
        if self.config.pods {
            for (secret_type, _) in TYPES {
                let api: Api<Secret> = Api::all(client.clone());
                tasks.push(tokio::spawn(Arc::clone(&self).watch(
                    api,
                    secret_type,
                    None,
                )));
            }
        }
        let mut watched: BTreeSet<String> = BTreeSet::new();
        loop {
            if !self.config.pods {
                let set = policies.borrow_and_update().clone();
                let mut wanted: BTreeSet<String> = self
                    .config
                    .global
                    .iter()
                    .map(|g| self.config.secret_ref(g).0)
                    .collect();
                wanted.extend(
                    self.config
                        .rule_secrets(&set.policies)
                        .into_iter()
                        .map(|r| r.0),
                );
                for namespace in wanted.difference(&watched).cloned().collect::<Vec<_>>() {
                    for (secret_type, _) in TYPES {
                        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                        tasks.push(tokio::spawn(Arc::clone(&self).watch(
                            api,
                            secret_type,
                            Some(namespace.clone()),
                        )));
                    }
                    watched.insert(namespace);
                }
            }
            tokio::select! {
                _ = &mut stop => break,
                changed = policies.changed() => if changed.is_err() { break },
            }
        }
        for task in tasks {
            task.abort();
        }
    }

    async fn watch(
        self: Arc<Self>,
        api: Api<Secret>,
        secret_type: &'static str,
        namespace: Option<String>,
    ) {
        let config = watcher::Config::default().fields(&format!("type={secret_type}"));
        let scope = namespace.unwrap_or_else(|| "every namespace".into());
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let watching = watched::watch(api, config, scope, "pull secret", keyring_of, tx);
        let applying = async {
            while let Some(event) = rx.recv().await {
                let Watched::Object { key, value } = event else {
                    continue;
                };
                match value {
                    Some(read) => self.record(key, read),
                    None => self.set(key, None),
                }
            }
        };
        tokio::join!(watching, applying);
    }
}

impl CredentialSource for PullSecretStore {
    fn keyring(
        &self,
        namespace: Option<&str>,
        pull_secrets: &[String],
        policies: &[Policy],
    ) -> Option<Arc<Keyring>> {
        let mut refs: Vec<(String, String)> = Vec::new();
        if self.config.pods {
            let namespace = namespace.unwrap_or(&self.config.home_namespace);
            refs.extend(
                pull_secrets
                    .iter()
                    .map(|n| (namespace.to_string(), n.clone())),
            );
        }
        refs.extend(self.config.rule_secrets(policies));
        refs.extend(self.config.global.iter().map(|g| self.config.secret_ref(g)));
        if refs.is_empty() {
            return None;
        }
        let secrets = self.secrets.read().unwrap_or_else(PoisonError::into_inner);
        let found: Vec<&Arc<Keyring>> = refs.iter().filter_map(|r| secrets.get(r)).collect();
        match found.as_slice() {
            [] => None,
            [one] => Some(Arc::clone(one)),
            many => {
                let mut keyring = Keyring::default();
                for k in many {
                    keyring.extend(k);
                }
                Some(Arc::new(keyring))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pull_secret(ns: &str, name: &str, host: &str, user: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            type_: Some("kubernetes.io/dockerconfigjson".into()),
            data: Some(
                [(
                    ".dockerconfigjson".to_string(),
                    ByteString(
                        format!(
                            r#"{{"auths": {{"{host}": {{"username": "{user}", "password": "p"}}}}}}"#
                        )
                        .into_bytes(),
                    ),
                )]
                .into(),
            ),
            ..Secret::default()
        }
    }

    fn policy(secrets: &str) -> Vec<Policy> {
        let text = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: a}}\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"*\"]\n      imageRegistryCredentials:\n        secrets: [{secrets}]\n      attestors: []\n"
        );
        let outcome = sealgate_core::policy::load("p.yaml", &text);
        outcome.policies
    }

    #[test]
    fn a_review_gets_its_pods_then_its_rules_then_the_global_secrets() {
        let store = PullSecretStore::new(PullSecretConfig {
            home_namespace: "sealgate".into(),
            global: vec!["global-cred".into()],
            pods: true,
        });
        assert!(
            store.keyring(Some("app"), &[], &[]).is_none(),
            "nothing seen yet"
        );
        store.apply(&pull_secret("app", "regcred", "r.example", "pod-user"));
        store.apply(&pull_secret(
            "sealgate",
            "rule-cred",
            "r.example",
            "rule-user",
        ));
        store.apply(&pull_secret(
            "sealgate",
            "rule-cred-2",
            "q.example",
            "rule-user",
        ));
        store.apply(&pull_secret(
            "sealgate",
            "global-cred",
            "g.example",
            "global-user",
        ));
        // A Secret of another type is no pull secret.
        let mut opaque = pull_secret("app", "opaque", "o.example", "x");
        opaque.type_ = Some("Opaque".into());
        store.apply(&opaque);

        let user = |k: &Keyring, host: &str| k.lookup(host).map(|c| c.username().to_string());
        let policies = policy("rule-cred, sealgate/rule-cred-2");
        assert!(!policies.is_empty());
        let k = store
            .keyring(Some("app"), &["regcred".into(), "opaque".into()], &policies)
            .unwrap();
        assert_eq!(user(&k, "r.example").as_deref(), Some("pod-user"));
        assert_eq!(user(&k, "q.example").as_deref(), Some("rule-user"));
        assert_eq!(user(&k, "g.example").as_deref(), Some("global-user"));
        assert_eq!(user(&k, "o.example"), None);
        // Another namespace's Pod naming the same secret name gets none of app's.
        let other = store
            .keyring(Some("web"), &["regcred".into()], &[])
            .unwrap();
        assert_eq!(user(&other, "r.example"), None);
        assert_eq!(user(&other, "g.example").as_deref(), Some("global-user"));
        // Deleted.
        store.set(("sealgate".into(), "global-cred".into()), None);
        assert!(
            store
                .keyring(Some("web"), &["regcred".into()], &[])
                .is_none()
        );

        // Without --pod-pull-secrets, a Pod's imagePullSecrets are not read.
        let no_pods = PullSecretStore::new(PullSecretConfig {
            home_namespace: "sealgate".into(),
            global: vec![],
            pods: false,
        });
        no_pods.apply(&pull_secret("app", "regcred", "r.example", "pod-user"));
        assert!(
            no_pods
                .keyring(Some("app"), &["regcred".into()], &[])
                .is_none()
        );
    }

    #[test]
    fn a_broken_pull_secret_is_named() {
        let mut s = pull_secret("app", "broken", "r.example", "u");
        s.data = Some(
            [(
                ".dockerconfigjson".to_string(),
                ByteString(b"{nope".to_vec()),
            )]
            .into(),
        );
        let e = keyring_of(&s).unwrap_err();
        assert!(
            e.contains("Secret app/broken") && e.contains("not valid JSON"),
            "{e}"
        );
        s.data = None;
        assert_eq!(
            keyring_of(&s).unwrap_err(),
            "Secret app/broken has no .dockerconfigjson entry"
        );
    }
}
