//! [`Client`]: the OCI distribution v2 operations sealgate needs (resolve a tag, read manifests
//! and blobs, push blobs and manifests), each bounded in size and checked against digests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use sealgate_core::{Digest, ImageRef};

use crate::auth::{Challenge, Scope, TokenCache};
use crate::credentials::{Credentials, Keyring};
use crate::error::Error;
use crate::media_type;
use crate::options::RegistryOptions;
use crate::stats::{RequestCounters, RequestStats};
use crate::transport::{Request, Target, read_bounded, unexpected_status};

/// The header registries use to announce a manifest's digest. Checked, never trusted.
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A registry client. Cheap to clone: clones share connections, tokens and counters.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) options: RegistryOptions,
    /// `options.username`/`password`, which override every file.
    explicit_credentials: Option<Credentials>,
    /// Credentials of this client only (a review's pull secrets), before the files.
    keyring: Option<Arc<Keyring>>,
    /// What this client learned with its credentials.
    state: Mutex<State>,
    /// What every client made from one [`Client::new`] shares, whatever its credentials.
    shared: Arc<Mutex<Shared>>,
}

/// What the client learns as it goes with its credentials. Never locked across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The last challenge per registry host, answered up front on later requests.
    pub(crate) challenges: HashMap<String, Challenge>,
    pub(crate) tokens: TokenCache,
    /// Credentials looked up per host (`None`: no file has any).
    credentials: HashMap<String, Option<Credentials>>,
}

/// What is true of a registry whoever asks. Never locked across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) stats: RequestCounters,
    /// Hosts that answered 429: no request goes to them before this instant.
    pub(crate) rate_limited_until: HashMap<String, std::time::Instant>,
}

/// A manifest or index as the registry sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Its media type, from the `mediaType` field or else the `Content-Type` header.
    pub media_type: String,
    /// The digest of `bytes`, computed here.
    pub digest: Digest,
    /// The exact bytes: signatures are over these, so never re-serialise them.
    pub bytes: Vec<u8>,
}

impl Client {
    /// Builds a client: one HTTP connection pool over rustls, trusting the built-in Mozilla
    /// roots, `options.ca_files`, and the system store (read only when a certificate needs it;
    /// see `trust`).
    pub fn new(options: RegistryOptions) -> Result<Client, Error> {
        let explicit_credentials = match (&options.username, &options.password) {
            (Some(username), Some(password)) => Some(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            (Some(_), None) => {
                return Err(Error::InvalidOptions(
                    "a registry user name needs a password",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::InvalidOptions(
                    "a registry password needs a user name",
                ));
            }
            (None, None) => None,
        };
        let mut extra_roots = Vec::new();
        for path in &options.ca_files {
            extra_roots.extend(read_ca_file(path)?);
        }
        let builder = reqwest::Client::builder()
            .use_preconfigured_tls(crate::tls_roots::client_config(extra_roots)?)
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .user_agent(concat!("sealgate/", env!("CARGO_PKG_VERSION")))
            // Redirects are followed by `transport`, which decides where credentials may go.
            .redirect(reqwest::redirect::Policy::none());
        let http = builder
            .build()
            .map_err(|e| Error::ClientSetup(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                options,
                explicit_credentials,
                keyring: None,
                state: Mutex::new(State::default()),
                shared: Arc::new(Mutex::new(Shared::default())),
            }),
        })
    }

    /// A client that also uses `keyring` (after explicit credentials, before the files), for
    /// the registries its entries name. It shares this client's connections, counters and
    /// rate limits, but has its own tokens: a token got with one set of credentials never
    /// serves a request made with another.
    pub fn with_keyring(&self, keyring: Arc<Keyring>) -> Client {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                options: self.inner.options.clone(),
                explicit_credentials: self.inner.explicit_credentials.clone(),
                keyring: Some(keyring),
                state: Mutex::new(State::default()),
                shared: Arc::clone(&self.inner.shared),
            }),
        }
    }

    /// The options this client was built with.
    pub fn options(&self) -> &RegistryOptions {
        &self.inner.options
    }

    /// Requests sent so far, per host and status.
    pub fn request_stats(&self) -> RequestStats {
        self.with_shared(|s| s.stats.snapshot())
    }

    /// Checks that the registry at `host` answers its API root (`GET /v2/`) and accepts the
    /// configured credentials, if it wants any.
    pub async fn ping(&self, host: &str) -> Result<(), Error> {
        let target = self.target_for_host(host, host.to_string(), Scope::registry())?;
        let request = Request::new(Method::GET, join(&target, "v2/")?);
        let response = self.send(&target, &request).await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::NotFound {
                host: target.host.clone(),
                what: format!("the registry API (/v2/) at {host}"),
            }),
            _ => Err(unexpected_status(&request, response).await),
        }
    }

    /// The digest of the manifest `image` names: its tag's (`latest` by default), or, for a
    /// digest reference, that digest once the manifest is fetched and checked against it.
    pub async fn resolve(&self, image: &ImageRef) -> Result<Digest, Error> {
        let reference = match image.digest() {
            Some(digest) => digest.to_string(),
            None => image.tag_or_latest().to_string(),
        };
        match self.get_manifest(image, &reference).await? {
            Some(manifest) => Ok(manifest.digest),
            None => Err(Error::NotFound {
                host: image.api_host().to_string(),
                what: format!("manifest {image}"),
            }),
        }
    }

    /// Fetches the manifest or index `reference` (a tag or a digest) from `image`'s repository.
    /// `Ok(None)` when the registry has no such manifest (or repository).
    pub async fn get_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Option<Manifest>, Error> {
        let requested_digest = parse_reference(reference)?;
        let target = self.target(image, Scope::pull(&image.api_repository()))?;
        let what = format!("manifest {}", display_reference(image, reference));
        let mut request = Request::new(Method::GET, self.manifest_url(&target, image, reference)?);
        let accept = media_type::MANIFEST_TYPES.join(", ");
        request.headers.insert(ACCEPT, header_value(&accept)?);
        let response = self.send(&target, &request).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::FORBIDDEN => return Err(forbidden(&target)),
            _ => return Err(unexpected_status(&request, response).await),
        }
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str());
        let announced = header_str(response.headers(), DOCKER_CONTENT_DIGEST);
        let limit = self.inner.options.limits.manifest_bytes;
        let bytes = self.body(response, limit, &target, &what).await?;
        let digest = match requested_digest {
            Some(expected) => {
                verify_digest(&what, &expected, &bytes)?;
                expected
            }
            None => Digest::sha256_of(&bytes),
        };
        check_announced_digest(announced.as_deref(), &bytes, &what)?;
        let media_type = manifest_media_type(&bytes, content_type.as_deref(), &target.host, &what)?;
        Ok(Some(Manifest {
            media_type,
            digest,
            bytes,
        }))
    }

    /// The OCI 1.1 referrers API: the index of manifests whose `subject` is `digest`
    /// (`GET /v2/<repo>/referrers/<digest>`, `artifactType` as a filter the registry may
    /// ignore). `Ok(None)` when the registry has no referrers API (404, as distribution 2.8
    /// answers), so the caller falls back to the referrers tag schema.
    pub async fn get_referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<u8>>, Error> {
        let target = self.target(image, Scope::pull(&image.api_repository()))?;
        let what = format!("referrers of {}@{digest}", target.repository);
        let mut url = join(
            &target,
            &format!("v2/{}/referrers/{digest}", image.api_repository()),
        )?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut request = Request::new(Method::GET, url);
        request
            .headers
            .insert(ACCEPT, HeaderValue::from_static(media_type::OCI_INDEX));
        let response = self.send(&target, &request).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::FORBIDDEN => return Err(forbidden(&target)),
            _ => return Err(unexpected_status(&request, response).await),
        }
        let limit = self.inner.options.limits.manifest_bytes;
        Ok(Some(self.body(response, limit, &target, &what).await?))
    }

    /// Fetches blob `digest` from `image`'s repository, reading at most `max_bytes` (and never
    /// more than the `blob_bytes` limit), and checks that it hashes to `digest`. Redirects to
    /// storage are followed; credentials are not sent to another origin.
    pub async fn get_blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        max_bytes: usize,
    ) -> Result<Vec<u8>, Error> {
        let target = self.target(image, Scope::pull(&image.api_repository()))?;
        let what = format!("blob {digest} of {}", target.repository);
        let request = Request::new(Method::GET, self.blob_url(&target, image, digest)?);
        let response = self.send(&target, &request).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound {
                    host: target.host.clone(),
                    what,
                });
            }
            StatusCode::FORBIDDEN => return Err(forbidden(&target)),
            _ => return Err(unexpected_status(&request, response).await),
        }
        let limit = max_bytes.min(self.inner.options.limits.blob_bytes);
        let bytes = self.body(response, limit, &target, &what).await?;
        verify_digest(&what, digest, &bytes)?;
        Ok(bytes)
    }

    /// The body of `response`, at most `limit` bytes, read within the request timeout.
    async fn body(
        &self,
        response: reqwest::Response,
        limit: usize,
        target: &Target,
        what: &str,
    ) -> Result<Vec<u8>, Error> {
        read_bounded(
            response,
            limit,
            &target.host,
            what,
            self.inner.options.request_timeout,
        )
        .await
    }

    /// Uploads `bytes` as a blob of `image`'s repository, unless the registry already has it.
    /// Returns its digest.
    pub async fn push_blob(&self, image: &ImageRef, bytes: &[u8]) -> Result<Digest, Error> {
        let target = self.target(image, Scope::push(&image.api_repository()))?;
        let digest = Digest::sha256_of(bytes);
        let what = format!("blob {digest} for {}", target.repository);
        let limit = self.inner.options.limits.blob_bytes;
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                host: target.host.clone(),
                what,
                limit: limit as u64,
            });
        }

        let head = Request::new(Method::HEAD, self.blob_url(&target, image, &digest)?);
        let response = self.send(&target, &head).await?;
        match response.status() {
            StatusCode::OK => return Ok(digest),
            StatusCode::NOT_FOUND => {}
            StatusCode::FORBIDDEN => return Err(forbidden(&target)),
            _ => return Err(unexpected_status(&head, response).await),
        }

        let start = Request::new(
            Method::POST,
            join(
                &target,
                &format!("v2/{}/blobs/uploads/", image.api_repository()),
            )?,
        );
        let response = self.send(&target, &start).await?;
        match response.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::FORBIDDEN => return Err(forbidden(&target)),
            _ => return Err(unexpected_status(&start, response).await),
        }
        let location = header_str(response.headers(), LOCATION.as_str()).unwrap_or_default();
        let Some(url) = upload_url(&target.base, &location, &digest) else {
            return Err(Error::InvalidUploadLocation {
                host: target.host.clone(),
                repository: target.repository.clone(),
                location,
            });
        };

        let mut upload = Request::new(Method::PUT, url);
        upload.headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        upload.body = Some(Bytes::copy_from_slice(bytes));
        let response = self.send(&target, &upload).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(digest),
            StatusCode::FORBIDDEN => Err(forbidden(&target)),
            _ => Err(unexpected_status(&upload, response).await),
        }
    }

    /// Uploads a manifest under `tag_or_digest` (a digest must be the bytes' own). Returns the
    /// manifest's digest.
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, Error> {
        let requested_digest = parse_reference(tag_or_digest)?;
        let target = self.target(image, Scope::push(&image.api_repository()))?;
        let what = format!("manifest {}", display_reference(image, tag_or_digest));
        let limit = self.inner.options.limits.manifest_bytes;
        if bytes.len() > limit {
            return Err(Error::TooLarge {
                host: target.host.clone(),
                what,
                limit: limit as u64,
            });
        }
        let digest = match &requested_digest {
            Some(expected) => {
                verify_digest(&what, expected, bytes)?;
                expected.clone()
            }
            None => Digest::sha256_of(bytes),
        };
        let mut request = Request::new(
            Method::PUT,
            self.manifest_url(&target, image, tag_or_digest)?,
        );
        request
            .headers
            .insert(CONTENT_TYPE, header_value(media_type)?);
        request.body = Some(Bytes::copy_from_slice(bytes));
        let response = self.send(&target, &request).await?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => {}
            StatusCode::FORBIDDEN => return Err(forbidden(&target)),
            _ => return Err(unexpected_status(&request, response).await),
        }
        check_announced_digest(
            header_str(response.headers(), DOCKER_CONTENT_DIGEST).as_deref(),
            bytes,
            &what,
        )?;
        Ok(digest)
    }

    /// Credentials for `host`: the explicit ones, else this client's keyring's, else the first
    /// docker config file entry.
    pub(crate) async fn credentials_for(&self, host: &str) -> Result<Option<Credentials>, Error> {
        if let Some(explicit) = &self.inner.explicit_credentials
            && self
                .inner
                .options
                .credential_hosts
                .as_ref()
                .is_none_or(|hosts| host_listed(hosts, host))
        {
            return Ok(Some(explicit.clone()));
        }
        if let Some(found) = self.inner.keyring.as_ref().and_then(|k| k.lookup(host)) {
            return Ok(Some(found));
        }
        if let Some(known) = self.with_state(|s| s.credentials.get(host).cloned()) {
            return Ok(known);
        }
        let found = self.inner.options.auth_files.lookup(host).await?;
        self.with_state(|s| s.credentials.insert(host.to_string(), found.clone()));
        Ok(found)
    }

    pub(crate) fn with_shared<T>(&self, f: impl FnOnce(&mut Shared) -> T) -> T {
        let mut shared = self
            .inner
            .shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut shared)
    }

    pub(crate) fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    fn target(&self, image: &ImageRef, scope: Scope) -> Result<Target, Error> {
        let repository = format!("{}/{}", image.api_host(), image.api_repository());
        self.target_for_host(image.api_host(), repository, scope)
    }

    fn target_for_host(
        &self,
        host: &str,
        repository: String,
        scope: Scope,
    ) -> Result<Target, Error> {
        let scheme = if is_insecure(&self.inner.options.insecure_hosts, host) {
            "http"
        } else {
            "https"
        };
        let base = Url::parse(&format!("{scheme}://{host}/")).map_err(|_| Error::Transport {
            host: host.to_string(),
            detail: "it is not a valid host[:port]".into(),
        })?;
        Ok(Target {
            host: host.to_string(),
            base,
            repository,
            scope,
        })
    }

    fn manifest_url(
        &self,
        target: &Target,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Url, Error> {
        join(
            target,
            &format!("v2/{}/manifests/{reference}", image.api_repository()),
        )
    }

    fn blob_url(&self, target: &Target, image: &ImageRef, digest: &Digest) -> Result<Url, Error> {
        join(
            target,
            &format!("v2/{}/blobs/{digest}", image.api_repository()),
        )
    }
}

/// The certificates in a PEM file, as reqwest roots.
fn read_ca_file(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let fail = |detail: String| Error::CaFile {
        path: path.to_path_buf(),
        detail,
    };
    let pem = sealgate_files::read_bounded(path, sealgate_files::CERTIFICATE_FILE)
        .map_err(|e| fail(format!("cannot be read: {}", e.reason())))?;
    let mut certificates = Vec::new();
    for der in CertificateDer::pem_slice_iter(&pem) {
        let der = der.map_err(|e| fail(format!("is not valid PEM: {e}")))?;
        let mut probe = rustls::RootCertStore::empty();
        probe
            .add(der.clone())
            .map_err(|e| fail(format!("holds a certificate that cannot be used: {e}")))?;
        certificates.push(der);
    }
    if certificates.is_empty() {
        return Err(fail("holds no PEM 'CERTIFICATE' block".into()));
    }
    Ok(certificates)
}

/// Whether `host` (`host[:port]`) is to be spoken to over plain HTTP: an entry equal to it, or
/// an entry without a port equal to its host name.
pub(crate) fn is_insecure(insecure_hosts: &[String], host: &str) -> bool {
    host_listed(insecure_hosts, host)
}

/// Whether `host[:port]` is in `list`: an entry `host:port` matches that port only, an entry
/// `host` any port; Docker Hub's names (`docker.io`, `index.docker.io`, `registry-1.docker.io`)
/// are one.
pub(crate) fn host_listed(list: &[String], host: &str) -> bool {
    let host = docker_hub_as_one(host);
    let name = host_name(host);
    list.iter().map(|e| docker_hub_as_one(e)).any(|entry| {
        entry.eq_ignore_ascii_case(host)
            || (entry.eq_ignore_ascii_case(name) && host_name(entry) == entry)
    })
}

fn docker_hub_as_one(host: &str) -> &str {
    match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        _ => host,
    }
}

/// The host name of `host[:port]` (brackets kept for IPv6).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn join(target: &Target, path: &str) -> Result<Url, Error> {
    target.base.join(path).map_err(|e| Error::Transport {
        host: target.host.clone(),
        detail: format!("cannot build the URL for '{path}': {e}"),
    })
}

/// The URL to `PUT` an upload to: `location` (absolute, or relative to the registry) with the
/// `digest` parameter added to whatever query it already has.
pub(crate) fn upload_url(base: &Url, location: &str, digest: &Digest) -> Option<Url> {
    if location.trim().is_empty() {
        return None;
    }
    let mut url = base.join(location.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    Some(url)
}

/// Checks that `bytes` hash to `expected`.
pub(crate) fn verify_digest(what: &str, expected: &Digest, bytes: &[u8]) -> Result<(), Error> {
    let actual = Digest::compute(expected.algorithm(), bytes);
    if actual == *expected {
        return Ok(());
    }
    Err(Error::DigestMismatch {
        what: what.to_string(),
        expected: expected.clone(),
        actual,
    })
}

/// A `Docker-Content-Digest` that does not match the bytes is an error; one that cannot be
/// parsed is ignored (it is never trusted anyway).
fn check_announced_digest(announced: Option<&str>, bytes: &[u8], what: &str) -> Result<(), Error> {
    match announced.and_then(|a| a.trim().parse::<Digest>().ok()) {
        Some(announced) => verify_digest(what, &announced, bytes),
        None => Ok(()),
    }
}

/// `Some(digest)` for a digest reference, `None` for a tag; anything else is an error.
fn parse_reference(reference: &str) -> Result<Option<Digest>, Error> {
    let invalid = || Error::InvalidReference {
        reference: reference.to_string(),
    };
    if reference.contains(':') {
        return reference.parse::<Digest>().map(Some).map_err(|_| invalid());
    }
    let bytes = reference.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let valid_tag = !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-');
    if valid_tag { Ok(None) } else { Err(invalid()) }
}

/// `host/path:tag` or `host/path@digest`, for messages.
fn display_reference(image: &ImageRef, reference: &str) -> String {
    let separator = if reference.contains(':') { '@' } else { ':' };
    format!(
        "{}/{}{separator}{reference}",
        image.api_host(),
        image.api_repository()
    )
}

/// The manifest's media type: its `mediaType` field, else the `Content-Type`. It must be JSON
/// and one of [`media_type::MANIFEST_TYPES`].
fn manifest_media_type(
    bytes: &[u8],
    content_type: Option<&str>,
    host: &str,
    what: &str,
) -> Result<String, Error> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
        host: host.to_string(),
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string());
    let media_type = head.media_type.or(content_type).unwrap_or_default();
    if !media_type::is_manifest_type(&media_type) {
        return Err(Error::UnsupportedMediaType {
            host: host.to_string(),
            what: what.to_string(),
            media_type,
        });
    }
    Ok(media_type)
}

fn forbidden(target: &Target) -> Error {
    Error::Forbidden {
        host: target.host.clone(),
        repository: target.repository.clone(),
        action: target.scope.action(),
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn header_value(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::InvalidOptions("a media type has characters not allowed in a header"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        Digest::sha256_of(b"layer")
    }

    #[test]
    fn upload_location_forms() {
        let base = Url::parse("https://r.example:5000/").unwrap();
        let d = digest();
        let encoded = format!("digest=sha256%3A{}", d.hex());

        let url = upload_url(&base, "/v2/app/blobs/uploads/abc", &d).unwrap();
        assert_eq!(
            url.as_str(),
            format!("https://r.example:5000/v2/app/blobs/uploads/abc?{encoded}")
        );

        let url = upload_url(&base, "/v2/app/blobs/uploads/abc?_state=xyz%3D", &d).unwrap();
        assert_eq!(
            url.as_str(),
            format!("https://r.example:5000/v2/app/blobs/uploads/abc?_state=xyz%3D&{encoded}")
        );

        let url = upload_url(&base, "https://storage.example/upload/1?sig=a&x=b", &d).unwrap();
        assert_eq!(
            url.as_str(),
            format!("https://storage.example/upload/1?sig=a&x=b&{encoded}")
        );

        let url = upload_url(&base, "http://r.example:5000/v2/app/blobs/uploads/u", &d).unwrap();
        assert_eq!(
            url.scheme(),
            "http",
            "an absolute Location is taken as given"
        );

        assert_eq!(upload_url(&base, "", &d), None);
        assert_eq!(upload_url(&base, "ftp://x/y", &d), None);
    }

    #[test]
    fn insecure_host_matching() {
        let hosts = vec![
            "127.0.0.1:5000".to_string(),
            "registry.local".to_string(),
            "[::1]".to_string(),
        ];
        assert!(is_insecure(&hosts, "127.0.0.1:5000"));
        assert!(
            !is_insecure(&hosts, "127.0.0.1:5001"),
            "host:port matches that port only"
        );
        assert!(!is_insecure(&hosts, "127.0.0.1"));
        assert!(is_insecure(&hosts, "registry.local"));
        assert!(
            is_insecure(&hosts, "registry.local:8443"),
            "a bare host matches any port"
        );
        assert!(is_insecure(&hosts, "[::1]:5000"));
        assert!(!is_insecure(&hosts, "registry.local.evil.com"));
        assert!(!is_insecure(&[], "127.0.0.1:5000"));
    }

    #[test]
    fn credential_hosts_treat_docker_hub_names_as_one() {
        let hosts = vec!["docker.io".to_string(), "ghcr.io".to_string()];
        for host in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            "ghcr.io:443",
        ] {
            assert!(host_listed(&hosts, host), "{host}");
        }
        for host in ["quay.io", "docker.io.evil.com", "evil-docker.io"] {
            assert!(!host_listed(&hosts, host), "{host}");
        }
        let hub = vec!["index.docker.io".to_string()];
        assert!(host_listed(&hub, "registry-1.docker.io"));
    }

    #[tokio::test]
    async fn explicit_credentials_go_only_to_the_listed_hosts() {
        let client = Client::new(RegistryOptions {
            username: Some("u".into()),
            password: Some("p".into()),
            credential_hosts: Some(vec!["registry.company.com".into()]),
            ..RegistryOptions::default()
        })
        .unwrap();
        assert!(
            client
                .credentials_for("registry.company.com")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            client
                .credentials_for("attacker.example:5000")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn digest_verification_names_what_and_both_digests() {
        let d = digest();
        assert!(verify_digest("blob x", &d, b"layer").is_ok());
        let e = verify_digest("blob sha256:… of r/app", &d, b"tampered").unwrap_err();
        let Error::DigestMismatch {
            expected, actual, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(*expected, d);
        assert_eq!(*actual, Digest::sha256_of(b"tampered"));
        assert!(
            e.to_string()
                .starts_with("digest mismatch for blob sha256:… of r/app: expected sha256:"),
            "{e}"
        );
    }

    #[test]
    fn announced_digest_is_checked_not_trusted() {
        let bytes = b"{}";
        let right = Digest::sha256_of(bytes).to_string();
        assert!(check_announced_digest(Some(&right), bytes, "m").is_ok());
        assert!(check_announced_digest(None, bytes, "m").is_ok());
        assert!(check_announced_digest(Some("garbage"), bytes, "m").is_ok());
        let wrong = Digest::sha256_of(b"other").to_string();
        assert!(matches!(
            check_announced_digest(Some(&wrong), bytes, "m"),
            Err(Error::DigestMismatch { .. })
        ));
    }

    #[test]
    fn references_are_tags_or_digests() {
        assert_eq!(parse_reference("v1.0_rc-1").unwrap(), None);
        assert_eq!(
            parse_reference(&digest().to_string()).unwrap(),
            Some(digest())
        );
        for bad in [
            "",
            "../x",
            "a/b",
            "-x",
            "sha256:abc",
            "a b",
            &"x".repeat(129),
        ] {
            assert!(
                matches!(parse_reference(bad), Err(Error::InvalidReference { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn media_type_from_field_or_header() {
        let oci = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}"}}"#,
            media_type::OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(oci.as_bytes(), None, "h", "m").unwrap(),
            media_type::OCI_INDEX
        );
        let bare = br#"{"schemaVersion":2}"#;
        let ct = format!("{}; charset=utf-8", media_type::OCI_MANIFEST);
        assert_eq!(
            manifest_media_type(bare, Some(&ct), "h", "m").unwrap(),
            media_type::OCI_MANIFEST
        );
        let e = manifest_media_type(
            bare,
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            "h",
            "m",
        )
        .unwrap_err();
        assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e}");
        assert!(matches!(
            manifest_media_type(b"<html>", None, "h", "m"),
            Err(Error::InvalidJson { .. })
        ));
    }

    #[test]
    fn options_need_both_user_and_password() {
        let options = RegistryOptions {
            username: Some("u".into()),
            ..RegistryOptions::default()
        };
        assert!(matches!(
            Client::new(options),
            Err(Error::InvalidOptions(_))
        ));
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let options = RegistryOptions {
            ca_files: vec![missing.clone()],
            ..RegistryOptions::default()
        };
        let e = Client::new(options).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("CA file {}: cannot be read", missing.display())),
            "{e}"
        );

        let not_pem = dir.path().join("key.txt");
        std::fs::write(&not_pem, "hello").unwrap();
        let options = RegistryOptions {
            ca_files: vec![not_pem.clone()],
            ..RegistryOptions::default()
        };
        let e = Client::new(options).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "CA file {}: holds no PEM 'CERTIFICATE' block",
                not_pem.display()
            )
        );
    }
}
