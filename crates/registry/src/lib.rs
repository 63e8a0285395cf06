//! sealgate's registry client: the OCI distribution v2 API over HTTPS, for resolving tags to
//! digests, reading manifests and blobs (cosign `.sig` artefacts included) and pushing them.
//!
//! Start at [`Client`], built from [`RegistryOptions`]. What it guarantees:
//!
//! - **Digests are computed, never trusted.** A manifest's digest is the hash of the bytes
//!   received; a `Docker-Content-Digest` that disagrees is an [`Error::DigestMismatch`], and so
//!   is a manifest or blob that does not hash to the digest asked for.
//! - **Sizes are bounded** ([`Limits`]): `Content-Length` is checked and bodies are counted as
//!   they stream.
//! - **HTTPS unless told otherwise**: plain HTTP only for hosts in
//!   [`RegistryOptions::insecure_hosts`], never as a fallback.
//! - **Authentication as docker does it**: Basic, or bearer tokens from the registry's token
//!   service (cached per host and scope), with credentials from the options or from docker
//!   config files and credential helpers ([`AuthFiles`]).
//! - **Credentials stay with the registry's origin**: redirects (blob downloads to object
//!   storage) are followed by the client itself, at most 5, without `Authorization` when the
//!   scheme, host or port differ; never from HTTPS to plain HTTP, and no token service over
//!   plain HTTP, unless that host is in [`RegistryOptions::insecure_hosts`].
//! - **Retries** of 429, 5xx and dropped connections with exponential backoff; never of other
//!   4xx, connection refusals or timeouts.
//! - **Errors say what to do** ([`Error`]): which host, which image, and the flag that fixes it.
//!
//! Modules: `client` holds the operations, `transport` the request loop (authorization,
//! retries, error mapping), `auth` challenge and token parsing, [`credentials`] docker config
//! files and helpers, [`stats`] request counters, [`media_type`] the manifest types.

mod auth;
mod client;
pub mod credentials;
pub mod driver;
mod error;
pub mod image_data;
pub mod media_type;
mod options;
pub mod referrers;
pub mod signatures;
pub mod stats;
mod tls_roots;
mod transport;

pub use client::{Client, Manifest};
pub use credentials::{AuthFiles, CredentialEnvironment, Credentials, Keyring};
pub use error::Error;
pub use options::{Limits, RegistryOptions};
pub use stats::{RequestCount, RequestStats};
