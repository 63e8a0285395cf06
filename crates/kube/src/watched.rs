//! One watch of the objects of a kind (in a namespace, or everywhere), reported by namespace and
//! name: each object's value as it is now, a deletion, and the end of each full list (the
//! objects gone while the watch was away are reported deleted then). The Secret, ConfigMap and
//! pull-secret watches are this loop with another `read`.

use std::collections::BTreeSet;
use std::fmt::Debug;

use futures_util::StreamExt as _;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// An object by namespace and name.
pub type ObjectRef = (String, String);

/// What a watch reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Watched<V> {
    /// An object's value now (`None`: it was deleted).
    Object {
        /// The object.
        key: ObjectRef,
        /// What `read` made of it.
        value: Option<V>,
    },
    /// The scope's objects have been listed once (or the first list failed: nothing more will
    /// come soon, and what is not seen stays unknown).
    Listed(String),
}

/// Watches `api` (with `config`) until `events` is closed, reporting `read` of each object.
/// `scope` names the namespace (or "every namespace") in logs and in [`Watched::Listed`];
/// `kind` names the objects in logs.
pub async fn watch<K, V>(
    api: Api<K>,
    config: watcher::Config,
    scope: String,
    kind: &'static str,
    read: impl Fn(&K) -> V,
    events: mpsc::Sender<Watched<V>>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let stream = watcher::watcher(api, config).default_backoff();
    tokio::pin!(stream);
    let mut listed = false;
    let mut listing: BTreeSet<ObjectRef> = BTreeSet::new();
    let mut seen: BTreeSet<ObjectRef> = BTreeSet::new();
    let key_of = |object: &K| {
        let meta = object.meta();
        (
            meta.namespace.clone().unwrap_or_else(|| scope.clone()),
            meta.name.clone().unwrap_or_default(),
        )
    };
    while let Some(event) = stream.next().await {
        let sent = match event {
            Err(e) => {
                tracing::warn!(namespace = %scope, error = %e, "{kind} watch failed; retrying (what this namespace's {kind}s hold is not known meanwhile; what was seen stays)");
                if listed {
                    continue;
                }
                // Do not hold the policies back: what is not seen stays unknown.
                listed = true;
                events.send(Watched::Listed(scope.clone())).await
            }
            Ok(Event::Init) => {
                listing.clear();
                continue;
            }
            Ok(Event::InitApply(object) | Event::Apply(object)) => {
                let key = key_of(&object);
                listing.insert(key.clone());
                seen.insert(key.clone());
                let value = Some(read(&object));
                events.send(Watched::Object { key, value }).await
            }
            Ok(Event::Delete(object)) => {
                let key = key_of(&object);
                seen.remove(&key);
                events.send(Watched::Object { key, value: None }).await
            }
            Ok(Event::InitDone) => {
                // Objects gone while the watch was away.
                for key in seen.difference(&listing).cloned().collect::<Vec<_>>() {
                    seen.remove(&key);
                    if events
                        .send(Watched::Object { key, value: None })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                listed = true;
                events.send(Watched::Listed(scope.clone())).await
            }
        };
        if sent.is_err() {
            return;
        }
    }
}
