//! The registry client's errors.
//!
//! Every variant names the registry host (and the image or file where known), says what went
//! wrong, and, where the user can fix it, how: the hints name the CLI flags `--registry-ca`,
//! `--allow-insecure-registry`, `--registry-username`/`--registry-password` and
//! `--registry-timeout`. Causes are summarised into the message rather than chained, so a
//! `{:#}` print shows each fact once.

use std::path::PathBuf;
use std::time::Duration;

use sealgate_core::Digest;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No TCP connection could be made (refused, no route, DNS failure).
    #[error(
        "could not connect to {host}: {detail}; is the registry running and is the address right?"
    )]
    Connect {
        /// The registry host (and port).
        host: String,
        /// What the operating system said, e.g. "connection refused".
        detail: String,
    },

    /// The server's certificate does not chain to a trusted root.
    #[error(
        "the TLS certificate of {host} is not trusted ({detail}); pass its CA with --registry-ca FILE"
    )]
    UntrustedCertificate {
        /// The registry host.
        host: String,
        /// What the certificate check said, e.g. "unknown issuer".
        detail: String,
    },

    /// The server's certificate is trusted but not issued for this host name.
    #[error(
        "the TLS certificate of {host} is not valid for that name ({detail}); use a name the certificate lists"
    )]
    CertificateNameMismatch {
        /// The registry host.
        host: String,
        /// What the certificate check said.
        detail: String,
    },

    /// The server did not speak TLS: most likely a plain-HTTP registry.
    #[error(
        "{host} did not answer with TLS ({detail}); if {host} serves plain HTTP, pass --allow-insecure-registry {host}"
    )]
    PlainHttpServer {
        /// The registry host.
        host: String,
        /// What the TLS layer said.
        detail: String,
    },

    /// Any other TLS handshake failure.
    #[error("TLS handshake with {host} failed: {detail}")]
    Tls {
        /// The registry host.
        host: String,
        /// What the TLS layer said.
        detail: String,
    },

    /// The registry wants credentials and none were configured.
    #[error(
        "authentication required by {host} for {repository}: pass --registry-username/--registry-password, add credentials to docker config.json, or (under serve --kubernetes) give the Pod an imagePullSecret or the rule imageRegistryCredentials.secrets"
    )]
    AuthenticationRequired {
        /// The registry host.
        host: String,
        /// The repository asked for (`host/path`).
        repository: String,
    },

    /// The registry (or its token service) rejected the configured credentials.
    #[error(
        "{host} rejected the credentials of user '{username}' for {repository} (401); check --registry-username/--registry-password or the credentials in docker config.json"
    )]
    CredentialsRejected {
        /// The registry host.
        host: String,
        /// The repository asked for.
        repository: String,
        /// The user name sent (`<token>` for an identity token).
        username: String,
    },

    /// The registry refused the operation for these credentials (403).
    #[error(
        "{host} denied {action} access to {repository} (403 forbidden); the credentials lack that permission on the repository: grant it, or pass credentials that have it (--registry-username/--registry-password with --registry-auth-host {host}, or docker config.json)"
    )]
    Forbidden {
        /// The registry host.
        host: String,
        /// The repository asked for.
        repository: String,
        /// `pull` or `push`.
        action: &'static str,
    },

    /// Something that must exist does not (404).
    #[error("{what} not found on {host}; check the repository name, tag and digest")]
    NotFound {
        /// The registry host.
        host: String,
        /// What was looked for, e.g. `manifest 127.0.0.1:5000/app:v1`.
        what: String,
    },

    /// A request took longer than the configured timeout.
    #[error(
        "request to {host} timed out after {}s; if the registry is slow, raise --registry-timeout",
        timeout.as_secs_f64()
    )]
    Timeout {
        /// The registry host.
        host: String,
        /// The timeout in force.
        timeout: Duration,
    },

    /// A response was larger than the limit for its kind.
    #[error("{what} from {host} is larger than the {limit}-byte limit")]
    TooLarge {
        /// The registry host.
        host: String,
        /// What was being read, e.g. `manifest 127.0.0.1:5000/app:v1`.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },

    /// Content does not hash to the digest it was asked for or announced with.
    #[error("digest mismatch for {what}: expected {expected}, but the content hashes to {actual}")]
    DigestMismatch {
        /// What was checked, e.g. `blob sha256:… of 127.0.0.1:5000/app`.
        what: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },

    /// The connection closed (or broke) while a body was being read: it is incomplete.
    #[error(
        "{what} from {host} ended early: {received} of {} bytes arrived before the connection was cut ({detail}); try again",
        announced.map_or_else(|| "the".to_string(), |n| n.to_string())
    )]
    Truncated {
        /// The registry host.
        host: String,
        /// What was being read, e.g. `manifest 127.0.0.1:5000/app:v1`.
        what: String,
        /// Bytes received before the end.
        received: u64,
        /// The `Content-Length`, when the registry sent one.
        announced: Option<u64>,
        /// What the HTTP layer said, e.g. "end of file before message length reached".
        detail: String,
    },

    /// A response body that must be JSON is not.
    #[error("{what} from {host} is not valid JSON: {detail}")]
    InvalidJson {
        /// The registry (or token service) host.
        host: String,
        /// What was being read.
        what: String,
        /// The parser's message.
        detail: String,
    },

    /// A manifest of a kind sealgate does not handle.
    #[error(
        "{what} from {host} has unsupported media type '{media_type}'; expected an OCI or Docker v2 manifest or index"
    )]
    UnsupportedMediaType {
        /// The registry host.
        host: String,
        /// What was read.
        what: String,
        /// The media type found.
        media_type: String,
    },

    /// 429 or 5xx answers (or dropped connections) until the retries ran out.
    #[error(
        "{host} kept failing {method} {path} ({last_failure}) after {tries} tries; the registry is overloaded or failing, try again later"
    )]
    RetriesExhausted {
        /// The registry host.
        host: String,
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// The last answer, e.g. `503 Service Unavailable` or `connection reset`.
        last_failure: String,
        /// How many requests were sent.
        tries: u32,
    },

    /// A status the operation does not expect.
    #[error("{host} answered {status} to {method} {path}: {body}")]
    UnexpectedStatus {
        /// The registry host.
        host: String,
        /// The HTTP method.
        method: String,
        /// The request path.
        path: String,
        /// The status code.
        status: u16,
        /// The start of the response body (the registry's error JSON, usually).
        body: String,
    },

    /// The registry answered an upload without a usable `Location`.
    #[error(
        "{host} answered the blob upload for {repository} with an unusable Location '{location}'"
    )]
    InvalidUploadLocation {
        /// The registry host.
        host: String,
        /// The repository uploaded to.
        repository: String,
        /// The header value (empty when missing).
        location: String,
    },

    /// A `WWW-Authenticate` challenge or token answer sealgate cannot use.
    #[error("cannot authenticate to {host}: {detail}")]
    UnsupportedAuthentication {
        /// The registry host.
        host: String,
        /// What was wrong with the challenge or token.
        detail: String,
    },

    /// A redirect from HTTPS to plain HTTP, to a host not allowed plain HTTP.
    #[error(
        "{host} redirected to plain http ({to}); sealgate does not leave https: if {to_host} really serves plain http, pass --allow-insecure-registry {to_host}"
    )]
    InsecureRedirect {
        /// The host that answered the redirect.
        host: String,
        /// Where it pointed (without the query, which may hold a signature).
        to: String,
        /// The `host[:port]` it pointed to.
        to_host: String,
    },

    /// A registry's token service (`WWW-Authenticate: Bearer realm=...`) over plain HTTP, on a
    /// host not allowed plain HTTP: neither credentials nor a token request go there.
    #[error(
        "{host} names a token service over plain http ({realm}); sealgate sends no credentials or token request in the clear: if {realm_host} really serves plain http, pass --allow-insecure-registry {realm_host}"
    )]
    InsecureTokenRealm {
        /// The registry host whose challenge named the realm.
        host: String,
        /// The realm URL (without its query).
        realm: String,
        /// The realm's `host[:port]`.
        realm_host: String,
    },

    /// Any other transport failure (broken connection, bad HTTP, too many redirects).
    #[error("request to {host} failed: {detail}")]
    Transport {
        /// The registry host.
        host: String,
        /// What went wrong.
        detail: String,
    },

    /// A tag-or-digest string that is neither.
    #[error("'{reference}' is neither a tag nor a digest")]
    InvalidReference {
        /// The string given.
        reference: String,
    },

    /// A `ca_files` entry could not be read or holds no certificate.
    #[error("CA file {}: {detail}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why it is unusable.
        detail: String,
    },

    /// A docker credential file exists but cannot be read or parsed.
    #[error("docker credential file {}: {detail}", path.display())]
    AuthFile {
        /// The file.
        path: PathBuf,
        /// Why it is unusable.
        detail: String,
    },

    /// A `docker-credential-<name>` helper failed.
    #[error("credential helper docker-credential-{helper} failed for {host}: {detail}")]
    CredentialHelper {
        /// The helper name (the part after `docker-credential-`).
        helper: String,
        /// The registry host asked about.
        host: String,
        /// What went wrong.
        detail: String,
    },

    /// Options that cannot work together.
    #[error("invalid registry options: {0}")]
    InvalidOptions(&'static str),

    /// The HTTP client could not be built.
    #[error("could not set up the HTTP client: {0}")]
    ClientSetup(String),
}
