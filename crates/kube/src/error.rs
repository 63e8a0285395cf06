//! [`KubeError`]: what can go wrong talking to the Kubernetes API.

use std::path::PathBuf;

/// Why sealgate could not connect to, or act on, the Kubernetes API.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig file could not be read or used.
    #[error(
        "cannot use the kubeconfig {path}: {detail}; pass a readable kubeconfig with --kubeconfig or run in a cluster"
    )]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// No configuration was found (no `$KUBECONFIG`, no `~/.kube/config`, not in a cluster).
    #[error(
        "cannot find the Kubernetes API: {detail}; pass --kubeconfig FILE, set KUBECONFIG, or run in a cluster"
    )]
    NoConfig {
        /// What was tried.
        detail: String,
    },
    /// The webhook's certificate could not be made or loaded.
    #[error("webhook certificate: {detail}")]
    Certificate {
        /// What went wrong.
        detail: String,
    },
    /// A request to the API failed.
    #[error("{action}: {detail}")]
    Api {
        /// What was being done, e.g. `registering MutatingWebhookConfiguration sealgate`.
        action: String,
        /// The API's answer.
        detail: String,
    },
}

impl KubeError {
    /// An API error while doing `action`.
    pub(crate) fn api(action: impl Into<String>, e: kube::Error) -> KubeError {
        KubeError::Api {
            action: action.into(),
            detail: describe(&e),
        }
    }
}

/// The words of an API error: the server's message and code where it gave one.
pub(crate) fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}
