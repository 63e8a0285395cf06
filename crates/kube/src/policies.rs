//! Kyverno policies from the API: `ClusterPolicy` (cluster-wide) and `Policy` (its namespace
//! only), `kyverno.io/v1`, watched.
//!
//! Each object is compiled with the loader `sealgate apply` uses for files (the object's JSON is
//! its text; messages name the object and the JSON path instead of a file line) and kept in a
//! [`PolicyBook`]: an invalid policy keeps its last good version. Snapshots go out on the same
//! `watch` channel the policy directory uses, generation 0 until both kinds have been listed
//! once (so `/readyz` stays 503 until then). Each object's `status.conditions` gets `Ready`
//! (`True`, or `False` with the errors), and an invalid one a Warning Event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use sealgate_core::policy::{ContextValues, LoadOptions, load_with_context};
use sealgate_server::metrics::Metrics;
use sealgate_server::policies::{PolicyBook, PolicySet, SourceContent, text_means_to_enforce};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::config_maps::{self, ConfigMapEvent, ConfigMapRef, WatchScope};
use crate::secrets::{self, SecretEvent, SecretRef};
use crate::watched::Watched;

/// The two kinds watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `ClusterPolicy`.
    ClusterPolicy,
    /// `Policy`.
    Policy,
}

impl PolicyKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
        }
    }

    fn resource(self) -> ApiResource {
        let gvk = GroupVersionKind::gvk("kyverno.io", "v1", self.as_str());
        let plural = match self {
            PolicyKind::ClusterPolicy => "clusterpolicies",
            PolicyKind::Policy => "policies",
        };
        ApiResource::from_gvk_with_plural(&gvk, plural)
    }
}

/// One policy object: its kind, namespace (for a `Policy`) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyObject {
    /// The kind.
    pub kind: PolicyKind,
    /// The namespace of a `Policy`.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl std::fmt::Display for PolicyObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{}/{}", self.kind.as_str(), self.name),
        }
    }
}

impl PolicyObject {
    fn of(kind: PolicyKind, object: &DynamicObject) -> PolicyObject {
        PolicyObject {
            kind,
            namespace: match kind {
                PolicyKind::ClusterPolicy => None,
                PolicyKind::Policy => object.metadata.namespace.clone(),
            },
            name: object.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// What compiling one object gave.
#[derive(Debug)]
pub struct Compiled {
    /// For the book.
    pub content: SourceContent,
    /// The loader's warnings, located.
    pub warnings: Vec<String>,
    /// Whether the object's text means to enforce (for an object of which nothing loads).
    pub enforce: bool,
}

/// Compiles one policy object as the loader compiles a file: the object's JSON is its text, and
/// each message names the object and the field's JSON path (there is no file line).
pub fn compile(object: &PolicyObject, value: &Value, options: LoadOptions) -> Compiled {
    compile_with(object, value, options, &ContextValues::new())
}

/// [`compile`], with the values its `context` entries read (ConfigMaps).
pub fn compile_with(
    object: &PolicyObject,
    value: &Value,
    options: LoadOptions,
    values: &ContextValues,
) -> Compiled {
    let mut value = value.clone();
    if let Some(map) = value.as_object_mut() {
        // A list's items may come without their type; the loader needs it.
        map.entry("apiVersion")
            .or_insert_with(|| json!("kyverno.io/v1"));
        map.entry("kind")
            .or_insert_with(|| json!(object.kind.as_str()));
    }
    let text = value.to_string();
    let source = object.to_string();
    let outcome = load_with_context(&source, &text, options, values);
    let unlocated = |mut location: sealgate_core::policy::Location| {
        location.line = 0;
        location.column = 0;
        location
    };
    let errors: Vec<String> = outcome
        .errors
        .into_iter()
        .map(|mut e| {
            e.location = unlocated(e.location);
            e.to_string()
        })
        .collect();
    let warnings = outcome
        .warnings
        .into_iter()
        .map(|mut w| {
            w.location = unlocated(w.location);
            w.to_string()
        })
        .collect();
    let mut errors = errors;
    if outcome.policies.is_empty() && errors.is_empty() {
        // Not a policy at all (the loader skipped it): say so rather than enforce nothing.
        errors.push(format!(
            "{source}: not read as a Kyverno {} (apiVersion kyverno.io/v1)",
            object.kind.as_str()
        ));
    }
    Compiled {
        enforce: text_means_to_enforce(&text),
        content: SourceContent::Loaded {
            policies: outcome.policies,
            errors,
        },
        warnings,
    }
}

/// How the watch is set up.
#[derive(Debug, Clone, Default)]
pub struct WatchConfig {
    /// Only policies with these labels (`--policy-selector`, a Kubernetes label selector).
    pub selector: Option<String>,
    /// How strictly policies are read.
    pub load: LoadOptions,
    /// Who writes Events and statuses (`reportingInstance`: the Pod's name when known).
    pub instance: Option<String>,
}

/// The policy watch: call [`PolicyWatch::run`] on a task; read snapshots from
/// [`PolicyWatch::subscribe`].
pub struct PolicyWatch {
    client: Client,
    config: WatchConfig,
    metrics: Metrics,
    sender: watch::Sender<Arc<PolicySet>>,
}

impl std::fmt::Debug for PolicyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyWatch")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The `Ready` condition one object gets.
#[derive(Debug)]
struct Status {
    key: PolicyObject,
    ready: bool,
    message: String,
    /// In force, but a key Secret it names gives no key, or a ConfigMap its context names is
    /// not there: the Event's reason and message.
    unavailable_keys: Option<(&'static str, String)>,
}

/// What the watch keeps between events.
#[derive(Debug, Default)]
struct WatchState {
    book: PolicyBook<PolicyObject>,
    /// Whether each kind has been listed once (ClusterPolicy, Policy).
    listed: [bool; 2],
    /// Objects of each kind seen in the listing under way.
    listing: [Vec<PolicyObject>; 2],
    generation: u64,
    /// Each policy object as last seen, and the Secrets it takes keys from.
    objects: BTreeMap<PolicyObject, (DynamicObject, BTreeSet<SecretRef>)>,
    /// The `*.pub` keys of the Secrets seen.
    secret_keys: BTreeMap<SecretRef, Vec<String>>,
    /// Namespaces whose Secrets are watched, and those not listed yet.
    watched: BTreeSet<String>,
    unlisted: BTreeSet<String>,
    /// Where the Secret watches report (None: no Secret watches, e.g. in unit tests).
    secret_events: Option<mpsc::Sender<SecretEvent>>,
    /// The ConfigMaps each policy object names in `context`.
    config_map_refs: BTreeMap<PolicyObject, BTreeSet<ConfigMapRef>>,
    /// The data of the ConfigMaps seen (in watched namespaces).
    config_maps: BTreeMap<ConfigMapRef, BTreeMap<String, String>>,
    /// Namespaces whose ConfigMaps are watched, and those not listed yet.
    config_maps_watched: BTreeSet<String>,
    config_maps_unlisted: BTreeSet<String>,
    /// Where the ConfigMap watches report (None: none, e.g. in unit tests).
    config_map_events: Option<mpsc::Sender<ConfigMapEvent>>,
    /// What was last logged and counted of each object (its warnings and errors), so the
    /// echo of sealgate's own status write (a new resourceVersion, the same policy) is not
    /// logged again.
    said: BTreeMap<PolicyObject, Vec<String>>,
}

impl PolicyWatch {
    /// A watch through `client`.
    pub fn new(client: Client, config: WatchConfig, metrics: Metrics) -> PolicyWatch {
        let (sender, _) = watch::channel(Arc::new(PolicySet::default()));
        PolicyWatch {
            client,
            config,
            metrics,
            sender,
        }
    }

    /// The snapshots (generation 0 until both kinds have been listed).
    pub fn subscribe(&self) -> watch::Receiver<Arc<PolicySet>> {
        self.sender.subscribe()
    }

    /// Watches until `stop` resolves. Errors of the watch are logged and retried with backoff
    /// (the last snapshot stays in force meanwhile).
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let mut config = watcher::Config::default();
        if let Some(selector) = &self.config.selector {
            config = config.labels(selector);
        }
        let stream = |kind: PolicyKind| {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &kind.resource());
            watcher::watcher(api, config.clone())
                .default_backoff()
                .map(move |event| (kind, event))
        };
        let events = futures_util::stream::select(
            stream(PolicyKind::ClusterPolicy),
            stream(PolicyKind::Policy),
        );
        tokio::pin!(events);
        let mut event_writer = EventWriter::new(self.config.instance.clone());
        let (secret_tx, mut secret_rx) = mpsc::channel(256);
        let (config_map_tx, mut config_map_rx) = mpsc::channel(256);
        let mut state = WatchState {
            secret_events: Some(secret_tx),
            config_map_events: Some(config_map_tx),
            ..WatchState::default()
        };
        let mut secret_watches = tokio::task::JoinSet::new();
        let mut config_map_watches = tokio::task::JoinSet::new();
        tokio::pin!(stop);
        loop {
            let next = tokio::select! {
                _ = &mut stop => return,
                next = events.next() => next,
                Some(secret) = secret_rx.recv() => {
                    let reloaded = self.secret_changed(&mut state, secret);
                    self.publish_when_ready(&mut state, reloaded.0);
                    for (kind, object, status) in reloaded.1 {
                        self.report(kind, &object, &status, &mut event_writer).await;
                    }
                    continue;
                }
                Some(config_map) = config_map_rx.recv() => {
                    let reloaded = self.config_map_changed(&mut state, config_map);
                    self.publish_when_ready(&mut state, reloaded.0);
                    for (kind, object, status) in reloaded.1 {
                        self.report(kind, &object, &status, &mut event_writer).await;
                    }
                    continue;
                }
            };
            let Some((kind, event)) = next else { return };
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    tracing::warn!(kind = kind.as_str(), error = %e, "policy watch failed; retrying (the policies in force stay)");
                    continue;
                }
            };
            let slot = kind as usize;
            let mut loaded = None;
            let changed = match event {
                Event::Init => {
                    state.listing[slot].clear();
                    false
                }
                Event::InitApply(object) => {
                    state.listing[slot].push(PolicyObject::of(kind, &object));
                    let (changed, status) = self.load(&mut state, kind, &object);
                    loaded = Some((object, status));
                    changed
                }
                Event::InitDone => {
                    let seen = std::mem::take(&mut state.listing[slot]);
                    let gone = state
                        .book
                        .retain(|key| key.kind != kind || seen.contains(key));
                    let first = !state.listed[slot];
                    state.listed[slot] = true;
                    gone || first
                }
                Event::Apply(object) => {
                    let (changed, status) = self.load(&mut state, kind, &object);
                    loaded = Some((object, status));
                    changed
                }
                Event::Delete(object) => {
                    let key = PolicyObject::of(kind, &object);
                    tracing::info!(policy = %key, "policy deleted");
                    state.objects.remove(&key);
                    state.config_map_refs.remove(&key);
                    state.said.remove(&key);
                    state.book.remove(&key)
                }
            };
            // Secret watches for namespaces a policy has just named.
            for namespace in self.namespaces_to_watch(&mut state) {
                if let Some(tx) = state.secret_events.clone() {
                    secret_watches.spawn(secrets::watch_namespace(
                        self.client.clone(),
                        namespace,
                        tx,
                    ));
                }
            }
            // ConfigMap watches for the scopes a policy's context has just named.
            for scope in self.config_map_scopes_to_watch(&mut state) {
                if let Some(tx) = state.config_map_events.clone() {
                    config_map_watches.spawn(config_maps::watch(self.client.clone(), scope, tx));
                }
            }
            // In force first, then said so: a status of Ready=True means the webhook enforces it.
            self.publish_when_ready(&mut state, changed);
            if let Some((object, status)) = loaded {
                self.report(kind, &object, &status, &mut event_writer).await;
            }
        }
    }

    /// Compiles and records one object; returns whether what is in force changed, and the
    /// status to report.
    fn load(
        &self,
        state: &mut WatchState,
        kind: PolicyKind,
        object: &DynamicObject,
    ) -> (bool, Status) {
        let key = PolicyObject::of(kind, object);
        let mut missing: Vec<String> = Vec::new();
        let mut missing_config_maps: Vec<String> = Vec::new();
        let compiled = match serde_json::to_value(object) {
            Ok(mut value) => {
                let named = secrets::referenced(&mut value);
                secrets::substitute(&mut value, &state.secret_keys);
                // Secrets of listed namespaces that hold no key (missing, no *.pub entry, or
                // not readable under sealgate's RBAC).
                missing = named
                    .iter()
                    .filter(|(ns, _)| state.watched.contains(ns) && !state.unlisted.contains(ns))
                    .filter(|r| state.secret_keys.get(*r).is_none_or(Vec::is_empty))
                    .map(|(ns, name)| format!("{ns}/{name}"))
                    .collect();
                state.objects.insert(key.clone(), (object.clone(), named));
                let config_maps_named = config_maps::referenced(&value);
                let values = config_maps::values(&config_maps_named, &state.config_maps);
                // ConfigMaps of listed namespaces not seen (missing, or not readable); one
                // whose namespace is a variable may be missing in some namespaces only.
                missing_config_maps = config_maps_named
                    .iter()
                    .filter(|r| r.0 != config_maps::EVERY_NAMESPACE && r.1 != config_maps::ANY_NAME)
                    .filter(|r| {
                        let scope = WatchScope::of(r).label();
                        state.config_maps_watched.contains(&scope)
                            && !state.config_maps_unlisted.contains(&scope)
                    })
                    .filter(|r| !state.config_maps.contains_key(*r))
                    .map(|(ns, name)| format!("{ns}/{name}"))
                    .collect();
                state.config_map_refs.insert(key.clone(), config_maps_named);
                compile_with(&key, &value, self.config.load, &values)
            }
            Err(e) => Compiled {
                content: SourceContent::Unreadable(format!("{key}: not readable as JSON: {e}")),
                warnings: Vec::new(),
                enforce: true,
            },
        };
        let warnings = compiled.warnings.clone();
        let enforce = compiled.enforce;
        let recorded = state.book.record(&key, compiled.content, || enforce);
        let said: Vec<String> = warnings.iter().chain(&recorded.errors).cloned().collect();
        let new = state.said.get(&key) != Some(&said);
        if new {
            for w in &warnings {
                tracing::warn!(policy = %key, warning = %w, "policy warning");
            }
            state.said.insert(key.clone(), said);
        }
        if recorded.errors.is_empty() {
            let mut problems = Vec::new();
            if !missing.is_empty() {
                problems.push(format!(
                    "no public key in Secret {}: it is missing, has no *.pub entry, or sealgate may not read it (RBAC: get/list/watch Secrets there); the images its attestors cover get an error result (denied under Enforce)",
                    missing.join(", ")
                ));
            }
            if !missing_config_maps.is_empty() {
                problems.push(format!(
                    "no ConfigMap {}: it is missing or sealgate may not read it (RBAC: get/list/watch ConfigMaps there); the images whose attestors take variables from it get an error result (denied under Enforce)",
                    missing_config_maps.join(", ")
                ));
            }
            let reason = if missing.is_empty() {
                "ConfigMapUnavailable"
            } else {
                "SecretKeyUnavailable"
            };
            let unavailable_keys = (!problems.is_empty()).then(|| (reason, problems.join("; ")));
            let message = match &unavailable_keys {
                Some((_, why)) => format!("Ready; {why}"),
                None => "Ready".into(),
            };
            return (
                recorded.changed,
                Status {
                    key,
                    ready: true,
                    message,
                    unavailable_keys,
                },
            );
        }
        let kept = recorded.kept;
        if new {
            for e in &recorded.errors {
                tracing::error!(policy = %key, error = %e, kept, "invalid policy");
            }
            self.metrics.policy_reload_errors(1);
        }
        let message = format!("{} ({kept})", recorded.errors.join("; "));
        (
            recorded.changed,
            Status {
                key,
                ready: false,
                message,
                unavailable_keys: None,
            },
        )
    }

    /// Writes the object's status and, when it is invalid, a Warning Event (once per message).
    async fn report(
        &self,
        kind: PolicyKind,
        object: &DynamicObject,
        status: &Status,
        events: &mut EventWriter,
    ) {
        self.write_status(kind, object, &status.key, status.ready, &status.message)
            .await;
        let warning = match (status.ready, status.unavailable_keys.as_ref()) {
            (true, Some((reason, why))) => {
                tracing::warn!(policy = %status.key, problem = %why, "policy in force without its Secret key or ConfigMap");
                Some((*reason, why.as_str()))
            }
            (true, None) => None,
            (false, _) => Some(("PolicyInvalid", status.message.as_str())),
        };
        match warning {
            Some((reason, message)) => {
                events
                    .warn(&self.client, kind, object, &status.key, reason, message)
                    .await
            }
            None => events.forget(&status.key),
        }
    }

    /// Writes `status.conditions` `Ready` unless it already says the same.
    async fn write_status(
        &self,
        kind: PolicyKind,
        object: &DynamicObject,
        key: &PolicyObject,
        ready: bool,
        message: &str,
    ) {
        let status = if ready { "True" } else { "False" };
        let reason = if ready { "Succeeded" } else { "Invalid" };
        let current = object
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
        if current.is_some_and(|c| c["status"] == status && c["message"] == message) {
            return;
        }
        // A merge patch replaces the whole array: keep the other conditions (Kyverno's, say)
        // and the transition time when the status itself did not change.
        let transition = match current {
            Some(c) if c["status"] == status && c["lastTransitionTime"].is_string() => {
                c["lastTransitionTime"].clone()
            }
            _ => Value::String(k8s_openapi::jiff::Timestamp::now().to_string()),
        };
        let mut conditions: Vec<Value> = object
            .data
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| c["type"] != "Ready")
            .cloned()
            .collect();
        conditions.push(json!({
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": truncate(message, 32 * 1024),
            "lastTransitionTime": transition,
        }));
        let patch = json!({
            "status": {
                "ready": ready,
                "conditions": conditions,
            }
        });
        let api: Api<DynamicObject> = match &key.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &kind.resource()),
            None => Api::all_with(self.client.clone(), &kind.resource()),
        };
        if let Err(e) = api
            .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(policy = %key, error = %crate::error::describe(&e), "could not write the policy's status");
        }
    }

    /// Namespaces named by a policy's Secret keys and not watched yet (now marked watched).
    fn namespaces_to_watch(&self, state: &mut WatchState) -> Vec<String> {
        let named: BTreeSet<String> = state
            .objects
            .values()
            .flat_map(|(_, refs)| refs.iter().map(|(ns, _)| ns.clone()))
            .collect();
        let new: Vec<String> = named.difference(&state.watched).cloned().collect();
        for ns in &new {
            state.watched.insert(ns.clone());
            state.unlisted.insert(ns.clone());
        }
        new
    }

    /// The scopes (namespaces, or a name everywhere) of policies' ConfigMap context entries
    /// not watched yet (now marked watched).
    fn config_map_scopes_to_watch(&self, state: &mut WatchState) -> Vec<WatchScope> {
        let named: BTreeSet<WatchScope> = state
            .config_map_refs
            .values()
            .flat_map(|refs| refs.iter().map(WatchScope::of))
            .collect();
        let new: Vec<WatchScope> = named
            .into_iter()
            .filter(|scope| !state.config_maps_watched.contains(&scope.label()))
            .collect();
        for scope in &new {
            state.config_maps_watched.insert(scope.label());
            state.config_maps_unlisted.insert(scope.label());
        }
        new
    }

    /// A ConfigMap changed (or its namespace was listed): the policies that name it are
    /// compiled again. Returns whether what is in force changed, and the statuses to report.
    fn config_map_changed(
        &self,
        state: &mut WatchState,
        event: ConfigMapEvent,
    ) -> (bool, Vec<(PolicyKind, DynamicObject, Status)>) {
        // A namespace listed may let policies held back for it be published.
        let mut changed = matches!(event, Watched::Listed(_));
        let dependents: Vec<(PolicyKind, DynamicObject)> = match event {
            Watched::Listed(scope) => {
                state.config_maps_unlisted.remove(&scope);
                // Policies naming a ConfigMap of it never seen: compiled again, so that their
                // error results say it is missing rather than not yet read.
                state
                    .config_map_refs
                    .iter()
                    .filter(|(_, refs)| {
                        refs.iter().any(|r| {
                            WatchScope::of(r).label() == scope && !state.config_maps.contains_key(r)
                        })
                    })
                    .filter_map(|(key, _)| {
                        state
                            .objects
                            .get(key)
                            .map(|(object, _)| (key.kind, object.clone()))
                    })
                    .collect()
            }
            Watched::Object {
                key: config_map,
                value: data,
            } => {
                if state.config_maps.get(&config_map) == data.as_ref() {
                    return (false, Vec::new());
                }
                match data {
                    Some(data) => state.config_maps.insert(config_map.clone(), data),
                    None => state.config_maps.remove(&config_map),
                };
                state
                    .config_map_refs
                    .iter()
                    .filter(|(_, refs)| {
                        refs.iter()
                            .any(|r| config_maps::stands_for(r, &config_map))
                    })
                    .filter_map(|(key, _)| {
                        state
                            .objects
                            .get(key)
                            .map(|(object, _)| (key.kind, object.clone()))
                    })
                    .inspect(|(kind, object)| {
                        tracing::info!(config_map = %format_args!("{}/{}", config_map.0, config_map.1), policy = %PolicyObject::of(*kind, object), "ConfigMap changed: policy compiled again");
                    })
                    .collect()
            }
        };
        let mut statuses = Vec::new();
        for (kind, object) in dependents {
            let (c, status) = self.load(state, kind, &object);
            changed |= c;
            statuses.push((kind, object, status));
        }
        (changed, statuses)
    }

    /// A Secret's keys changed (or its namespace was listed): the policies that name it are
    /// compiled again. Returns whether what is in force changed, and the statuses to report.
    fn secret_changed(
        &self,
        state: &mut WatchState,
        event: SecretEvent,
    ) -> (bool, Vec<(PolicyKind, DynamicObject, Status)>) {
        let secret = match event {
            Watched::Listed(namespace) => {
                state.unlisted.remove(&namespace);
                // Policies naming a Secret of it that was never seen: say so now.
                let waiting: Vec<(PolicyKind, DynamicObject)> = state
                    .objects
                    .iter()
                    .filter(|(_, (_, refs))| {
                        refs.iter().any(|r| {
                            r.0 == namespace && state.secret_keys.get(r).is_none_or(Vec::is_empty)
                        })
                    })
                    .map(|(key, (object, _))| (key.kind, object.clone()))
                    .collect();
                let mut statuses = Vec::new();
                for (kind, object) in waiting {
                    let (_, status) = self.load(state, kind, &object);
                    statuses.push((kind, object, status));
                }
                return (true, statuses);
            }
            Watched::Object { key: secret, value } => {
                let keys = value.unwrap_or_default();
                let before = state.secret_keys.get(&secret).cloned().unwrap_or_default();
                if before == keys {
                    return (false, Vec::new());
                }
                if keys.is_empty() {
                    state.secret_keys.remove(&secret);
                } else {
                    state.secret_keys.insert(secret.clone(), keys);
                }
                secret
            }
        };
        let dependents: Vec<(PolicyKind, DynamicObject)> = state
            .objects
            .iter()
            .filter(|(_, (_, refs))| refs.contains(&secret))
            .map(|(key, (object, _))| (key.kind, object.clone()))
            .collect();
        let mut changed = false;
        let mut statuses = Vec::new();
        for (kind, object) in dependents {
            tracing::info!(secret = %format_args!("{}/{}", secret.0, secret.1), policy = %PolicyObject::of(kind, &object), "keys in a Secret changed: policy compiled again");
            let (c, status) = self.load(state, kind, &object);
            changed |= c;
            statuses.push((kind, object, status));
        }
        (changed, statuses)
    }

    /// Publishes once both kinds and the Secrets they name have been listed, and after that on
    /// every change.
    fn publish_when_ready(&self, state: &mut WatchState, changed: bool) {
        let ready = state.listed.iter().all(|l| *l)
            && state.unlisted.is_empty()
            && state.config_maps_unlisted.is_empty();
        if ready && (changed || state.generation == 0) {
            self.publish(state);
        }
    }

    fn publish(&self, state: &mut WatchState) {
        state.generation += 1;
        let (set, duplicates) = state.book.snapshot(state.generation, ToString::to_string);
        for duplicate in &duplicates {
            tracing::error!(error = %duplicate, "policy not loaded");
        }
        let names: Vec<String> = set
            .policies
            .iter()
            .map(sealgate_core::policy::Policy::qualified_name)
            .collect();
        self.metrics.set_policies(set.policies.len());
        if state.generation > 1 {
            self.metrics.policy_reload();
        }
        tracing::info!(
            source = "kubernetes",
            generation = state.generation,
            count = set.policies.len() as u64,
            policies = %names.join(","),
            "{}",
            if state.generation == 1 { "policies loaded" } else { "policies reloaded" }
        );
        if set.policies.is_empty() && set.failed_files > 0 {
            tracing::error!(
                failed = set.failed_files as u64,
                "no policy is in force: every policy is invalid; /readyz answers 503 until one loads"
            );
        }
        self.sender.send_replace(Arc::new(set));
    }
}

/// Warning Events about policies, as core/v1 Events: the API every cluster accepts for
/// cluster-scoped objects too (events.k8s.io/v1 refuses those before Kubernetes 1.22). One
/// Event per object and message: a repeated status write does not repeat it.
#[derive(Debug)]
struct EventWriter {
    instance: Option<String>,
    said: std::collections::HashMap<PolicyObject, String>,
}

impl EventWriter {
    fn new(instance: Option<String>) -> EventWriter {
        EventWriter {
            instance,
            said: std::collections::HashMap::new(),
        }
    }

    fn forget(&mut self, key: &PolicyObject) {
        self.said.remove(key);
    }

    async fn warn(
        &mut self,
        client: &Client,
        kind: PolicyKind,
        object: &DynamicObject,
        key: &PolicyObject,
        reason: &str,
        message: &str,
    ) {
        if self.said.get(key).is_some_and(|m| m == message) {
            return;
        }
        use k8s_openapi::api::core::v1::{Event as CoreEvent, EventSource, ObjectReference};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
        let namespace = key.namespace.clone().unwrap_or_else(|| "default".into());
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let event = CoreEvent {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", key.name)),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("kyverno.io/v1".into()),
                kind: Some(kind.as_str().into()),
                name: Some(key.name.clone()),
                namespace: key.namespace.clone(),
                uid: object.metadata.uid.clone(),
                resource_version: object.metadata.resource_version.clone(),
                field_path: None,
            },
            reason: Some(reason.into()),
            message: Some(truncate(message, 1000)),
            type_: Some("Warning".into()),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            source: Some(EventSource {
                component: Some("sealgate".into()),
                host: None,
            }),
            reporting_component: Some("sealgate".into()),
            reporting_instance: Some(self.instance.clone().unwrap_or_else(|| "sealgate".into())),
            ..CoreEvent::default()
        };
        let api: Api<CoreEvent> = Api::namespaced(client.clone(), &namespace);
        match api.create(&kube::api::PostParams::default(), &event).await {
            Ok(_) => {
                self.said.insert(key.clone(), message.to_string());
            }
            Err(e) => {
                tracing::warn!(policy = %key, error = %crate::error::describe(&e), "could not record an Event for the invalid policy");
            }
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_policy(name: &str) -> PolicyObject {
        PolicyObject {
            kind: PolicyKind::ClusterPolicy,
            namespace: None,
            name: name.into(),
        }
    }

    #[test]
    fn an_api_object_compiles_with_its_server_fields_and_messages_name_the_json_path() {
        let object = json!({
            "metadata": {"name": "p", "uid": "1", "resourceVersion": "7", "generation": 2,
                         "creationTimestamp": "2026-12-07T00:00:00Z",
                         "managedFields": [{"manager": "kubectl"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"validationFailureAction": "Enforce", "rules": [{
                "name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{"imageReferences": ["ghcr.io/*"], "atestors": []}]}]},
            "status": {"ready": false}
        });
        let key = cluster_policy("p");
        let compiled = compile(&key, &object, LoadOptions::default());
        let SourceContent::Loaded { policies, errors } = compiled.content else {
            panic!("loaded")
        };
        assert!(policies.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("ClusterPolicy/p: policy p, rule r: spec.rules[0].verifyImages[0]"),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains("atestors"), "{}", errors[0]);
        assert!(compiled.enforce);

        let mut good = object.clone();
        good["spec"]["rules"][0]["verifyImages"][0] = json!({"imageReferences": ["ghcr.io/*"],
            "attestors": [{"entries": [{"keys": {"publicKeys": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----"}}]}]});
        let compiled = compile(&key, &good, LoadOptions::default());
        let SourceContent::Loaded { policies, errors } = compiled.content else {
            panic!("loaded")
        };
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policies[0].name, "p");
    }

    #[test]
    fn a_namespaced_policy_keeps_its_namespace() {
        let key = PolicyObject {
            kind: PolicyKind::Policy,
            namespace: Some("team-a".into()),
            name: "p".into(),
        };
        assert_eq!(key.to_string(), "Policy/team-a/p");
        let object = json!({"metadata": {"name": "p", "namespace": "team-a"},
            "spec": {"rules": [{"name": "r", "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                "verifyImages": [{"imageReferences": ["*"], "attestors": [{"entries": [{"keys": {"publicKeys": "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----"}}]}]}]}]}});
        let compiled = compile(&key, &object, LoadOptions::default());
        let SourceContent::Loaded { policies, errors } = compiled.content else {
            panic!("loaded")
        };
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(policies[0].qualified_name(), "team-a/p");
        assert!(policies[0].covers_namespace(Some("team-a")));
        assert!(!policies[0].covers_namespace(Some("team-b")));
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 6);
        assert!(
            cut.len() <= 6 + '…'.len_utf8() && cut.ends_with('…'),
            "{cut}"
        );
    }
}
