//! sealgate in a cluster: everything that talks to the Kubernetes API.
//!
//! - [`connect`]: a client from `--kubeconfig`, `$KUBECONFIG`/`~/.kube/config` or the Pod's
//!   service account;
//! - [`policies`]: `ClusterPolicy` and `Policy` (`kyverno.io/v1`) watched, each compiled with the
//!   same loader as files and published as the server's policy snapshots, with
//!   `status.conditions` `Ready` written back and an Event for an invalid one;
//! - [`namespaces`]: a watched store of namespace labels, the server's
//!   [`NamespaceLabelSource`](sealgate_server::NamespaceLabelSource);
//! - [`registration`]: the webhook's Mutating- and ValidatingWebhookConfiguration, created and
//!   kept in line with the policies (re-applied when edited), and removed by `sealgate
//!   uninstall`;
//! - [`certificates`] and [`lease`]: the webhook's CA and serving certificate in a Secret shared
//!   by the replicas, rotated (with both CAs registered during the overlap) by the one replica
//!   holding a Lease, which is also the one that registers.
//!
//! The server never sees this crate: it gets snapshots and a label source
//! ([`sealgate_server::Sources`]); `sealgate serve --kubernetes` wires the two.

pub mod certificates;
pub mod config_maps;
pub mod error;
pub mod lease;
pub mod namespaces;
pub mod policies;
pub mod pull_secrets;
pub mod registration;
pub mod reports;
pub mod scan;
pub mod secrets;
pub mod watched;

use std::path::Path;

pub use error::KubeError;
pub use kube::Client;

/// A client for the API: from `kubeconfig` when given, else inferred (`$KUBECONFIG`,
/// `~/.kube/config`, then the in-cluster service account).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    // kube-client builds its TLS config from rustls' process default; make that the same ring
    // provider the rest of sealgate passes explicitly (never aws-lc, even where another crate
    // of the build enables it).
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let config = match kubeconfig {
        Some(path) => {
            let fail = |detail: String| KubeError::Kubeconfig {
                path: path.to_path_buf(),
                detail,
            };
            let file =
                kube::config::Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| fail(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::NoConfig {
                detail: e.to_string(),
            })?,
    };
    Client::try_from(config).map_err(|e| KubeError::NoConfig {
        detail: e.to_string(),
    })
}
