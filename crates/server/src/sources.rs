//! What the webhook learns from outside the request, through small interfaces that a cluster
//! connection (the `sealgate-kube` crate) implements and tests can fake: the policies in force
//! and the labels of namespaces. Without them the server runs alone, as `sealgate serve
//! --policies DIR` does: policies from the directory, namespace labels unknown (a
//! `namespaceSelector` then fails closed).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use tokio::sync::watch;

use sealgate_core::policy::Policy;
use sealgate_registry::Keyring;

use crate::policies::PolicySet;
use crate::reports::ReportSink;

/// The labels of a namespace, as the webhook's namespace source knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceLabels {
    /// The namespace's labels.
    Known(BTreeMap<String, String>),
    /// Not known: why, in words that finish "namespace labels are not known: …".
    Unknown(&'static str),
}

/// Looks namespace labels up, without I/O (a watched cache): called on every review.
pub trait NamespaceLabelSource: Send + Sync + Debug {
    /// The labels of `namespace`.
    fn labels(&self, namespace: &str) -> NamespaceLabels;
}

/// Registry credentials for one review: pull secrets from a watched cache, without I/O.
pub trait CredentialSource: Send + Sync + Debug {
    /// The credentials for reviewing an object in `namespace` whose pod spec names
    /// `pull_secrets` (`imagePullSecrets`), under `policies` (their rules'
    /// `imageRegistryCredentials.secrets`); `None` when no Secret applies. Each credential goes
    /// only to the registry its entry names.
    fn keyring(
        &self,
        namespace: Option<&str>,
        pull_secrets: &[String],
        policies: &[Policy],
    ) -> Option<Arc<Keyring>>;
}

/// Where the server's policies and namespace labels come from, when not from `--policies`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Policy snapshots published by another source (e.g. a watch of the Kubernetes API);
    /// `None`: the server loads and polls [`ServeConfig::policies`](crate::ServeConfig).
    /// Until its first snapshot (generation 0) `/readyz` answers 503.
    pub policies: Option<watch::Receiver<Arc<PolicySet>>>,
    /// Namespace labels; `None`: never known.
    pub namespaces: Option<Arc<dyn NamespaceLabelSource>>,
    /// Where the results of admitted requests go (PolicyReports); `None`: nowhere.
    pub reports: Option<Arc<dyn ReportSink>>,
    /// Registry credentials from pull secrets; `None`: only the server's own
    /// (`--registry-*`, docker config files).
    pub credentials: Option<Arc<dyn CredentialSource>>,
}
