//! Namespace labels from the API: a watch of Namespaces (metadata only) into a store the
//! webhook reads on every review without I/O ([`NamespaceStore`] is its
//! [`NamespaceLabelSource`]).
//!
//! Until the first full list has arrived the labels are unknown, and a `namespaceSelector`
//! keeps today's fail-closed rule (the review says why). Clusters before 1.21 do not set
//! `kubernetes.io/metadata.name`; the store adds it, so policies written for current clusters
//! select the same namespaces on older ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use sealgate_server::{NamespaceLabelSource, NamespaceLabels};

/// The label Kubernetes 1.21+ sets on every namespace to its name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespace labels as last seen by the watch.
#[derive(Debug, Default)]
pub struct NamespaceStore {
    labels: RwLock<HashMap<String, BTreeMap<String, String>>>,
    synced: AtomicBool,
}

impl NamespaceLabelSource for NamespaceStore {
    fn labels(&self, namespace: &str) -> NamespaceLabels {
        if !self.synced.load(Ordering::Acquire) {
            return NamespaceLabels::Unknown(
                "the namespace watch has not listed the namespaces yet",
            );
        }
        let Ok(labels) = self.labels.read() else {
            return NamespaceLabels::Unknown("the namespace store is unusable");
        };
        match labels.get(namespace) {
            Some(l) => NamespaceLabels::Known(l.clone()),
            None => NamespaceLabels::Unknown("the namespace watch has not seen this namespace yet"),
        }
    }
}

/// A namespace's labels as the store keeps them: `kubernetes.io/metadata.name` added when the
/// cluster did not set it.
pub fn labels_of(
    name: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut labels = labels.cloned().unwrap_or_default();
    labels
        .entry(NAME_LABEL.to_string())
        .or_insert_with(|| name.to_string());
    labels
}

impl NamespaceStore {
    /// An empty store, not synced.
    pub fn new() -> Arc<NamespaceStore> {
        Arc::new(NamespaceStore::default())
    }

    fn with_labels(&self, f: impl FnOnce(&mut HashMap<String, BTreeMap<String, String>>)) {
        if let Ok(mut labels) = self.labels.write() {
            f(&mut labels);
        }
    }

    /// Watches Namespaces through `client` until `stop` resolves.
    pub async fn run(self: Arc<Self>, client: Client, stop: impl std::future::Future<Output = ()>) {
        // Metadata only: labels are all the store needs.
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(client);
        let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
        tokio::pin!(events);
        let mut listing: HashMap<String, BTreeMap<String, String>> = HashMap::new();
        tokio::pin!(stop);
        loop {
            let next = tokio::select! {
                _ = &mut stop => return,
                next = events.next() => next,
            };
            let Some(event) = next else { return };
            match event {
                Err(e) => {
                    tracing::warn!(error = %e, "namespace watch failed; retrying (the labels seen stay)");
                }
                Ok(Event::Init) => listing.clear(),
                Ok(Event::InitApply(ns)) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    listing.insert(name.clone(), labels_of(&name, ns.metadata.labels.as_ref()));
                }
                Ok(Event::InitDone) => {
                    let listed = std::mem::take(&mut listing);
                    let count = listed.len();
                    self.with_labels(|labels| *labels = listed);
                    if !self.synced.swap(true, Ordering::AcqRel) {
                        tracing::info!(count = count as u64, "namespace labels listed");
                    }
                }
                Ok(Event::Apply(ns)) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    let l = labels_of(&name, ns.metadata.labels.as_ref());
                    self.with_labels(|labels| {
                        labels.insert(name, l);
                    });
                }
                Ok(Event::Delete(ns)) => {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    self.with_labels(|labels| {
                        labels.remove(&name);
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_label_is_added_only_when_the_cluster_did_not_set_it() {
        // Kubernetes 1.20: no automatic label.
        let old = labels_of(
            "team-a",
            Some(&BTreeMap::from([("env".into(), "prod".into())])),
        );
        assert_eq!(old.get(NAME_LABEL).map(String::as_str), Some("team-a"));
        assert_eq!(old.get("env").map(String::as_str), Some("prod"));
        // 1.21+: the cluster's own value is kept.
        let new = labels_of(
            "team-a",
            Some(&BTreeMap::from([(NAME_LABEL.into(), "team-a".into())])),
        );
        assert_eq!(new.len(), 1);
        assert_eq!(
            labels_of("x", None).get(NAME_LABEL).map(String::as_str),
            Some("x")
        );
    }

    #[test]
    fn labels_are_unknown_until_listed_and_for_namespaces_not_seen() {
        let store = NamespaceStore::new();
        assert!(
            matches!(store.labels("default"), NamespaceLabels::Unknown(w) if w.contains("not listed"))
        );
        store.with_labels(|l| {
            l.insert("default".into(), labels_of("default", None));
        });
        store.synced.store(true, Ordering::Release);
        assert!(
            matches!(store.labels("default"), NamespaceLabels::Known(l) if l[NAME_LABEL] == "default")
        );
        assert!(
            matches!(store.labels("new"), NamespaceLabels::Unknown(w) if w.contains("not seen"))
        );
    }
}
