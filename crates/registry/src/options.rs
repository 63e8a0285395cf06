//! How a [`Client`](crate::Client) talks to registries: credentials, trust, plain-HTTP hosts,
//! timeouts, retries and size limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::credentials::AuthFiles;

/// Settings for [`Client::new`](crate::Client::new).
///
/// `Default` gives HTTPS only, the built-in and system roots, no credentials, a 30 s timeout,
/// 3 retries and the default [`Limits`]. It does **not** read docker config files: pass
/// [`AuthFiles::from_env`] for that, so no file is read behind the caller's back.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// User name for every registry; overrides docker config files. Needs `password`.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<String>,
    /// The registry hosts `username`/`password` are sent to (`host:port` that port only, `host`
    /// any port; `docker.io`, `index.docker.io` and `registry-1.docker.io` are one). `None`: every
    /// host, for a caller that names every image itself. A server verifying images named by
    /// others must list them, or one image on an attacker's registry collects the password.
    pub credential_hosts: Option<Vec<String>>,
    /// PEM files of extra CA certificates to trust, besides the system and built-in roots.
    pub ca_files: Vec<PathBuf>,
    /// Hosts spoken to over plain HTTP: `host:port` matches that port only, `host` any port.
    pub insecure_hosts: Vec<String>,
    /// Timeout of each request, connection and body included.
    pub request_timeout: Duration,
    /// How often a request is repeated after 429, 5xx or a dropped connection.
    pub max_retries: u32,
    /// Size limits on what registries send.
    pub limits: Limits,
    /// Docker-style credential files, read when a registry first asks for credentials.
    pub auth_files: AuthFiles,
}

impl Default for RegistryOptions {
    fn default() -> RegistryOptions {
        RegistryOptions {
            username: None,
            password: None,
            credential_hosts: None,
            ca_files: Vec::new(),
            insecure_hosts: Vec::new(),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            limits: Limits::default(),
            auth_files: AuthFiles::none(),
        }
    }
}

/// Upper bounds on response sizes, so a hostile registry cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest manifest or index accepted (and pushed). Default 4 MiB, as distribution's own.
    pub manifest_bytes: usize,
    /// Largest signature payload or attestation callers should fetch. Default 1 MiB.
    pub payload_bytes: usize,
    /// Ceiling on any blob fetched or pushed, whatever a caller asks for. Default 64 MiB.
    pub blob_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            manifest_bytes: 4 * 1024 * 1024,
            payload_bytes: 1024 * 1024,
            blob_bytes: 64 * 1024 * 1024,
        }
    }
}
