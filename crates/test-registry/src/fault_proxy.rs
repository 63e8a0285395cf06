//! Registries that misbehave on purpose: proxies in front of a real [`TestRegistry`], for fault
//! tests.
//!
//! - [`TcpFaultProxy`] forwards TCP as it is (a TLS registry stays TLS end to end, its
//!   certificate valid for `127.0.0.1` on any port). It can delay every chunk it forwards
//!   ([`TcpMode::Delay`]), swallow everything while keeping connections open
//!   ([`TcpMode::BlackHole`]), or [`stop`](TcpFaultProxy::stop): the listener is closed and every
//!   open connection dropped, so the registry looks dead in the middle of a run.
//! - [`HttpFaultProxy`] speaks HTTP/1.1 in front of a plain-HTTP registry (clients reach it with
//!   `--allow-insecure-registry HOST`). It forwards each request to the registry and, while a
//!   [`FaultRule`] is set and matches the request path, answers a status of its own (429 with or
//!   without `Retry-After`, 500), truncates the body (a `Content-Length` for all of it, half of
//!   it sent, then the connection closed) or changes one byte of it (every header kept,
//!   `Docker-Content-Digest` included), so content no longer matches its digest. It counts the
//!   requests it saw by what it did to them. [`HttpFaultProxy::in_front_of`] puts it in front
//!   of a TLS registry too (serving TLS with the registry's own certificate). It can also
//!   redirect a request ([`Fault::Redirect`]): to itself (same origin), or to its storage
//!   listener on another port (plain HTTP or TLS), which serves the registry's answer and
//!   records the headers it received, as object storage behind a real registry would; and it
//!   can turn the registry's 401 challenge into a Bearer challenge whose token realm is the
//!   storage listener over plain HTTP ([`Fault::PlainHttpTokenRealm`]).
//!   With [`HttpFaultProxy::set_referrers_api`] it serves the OCI 1.1 referrers API the
//!   registry lacks ([`ReferrersApi`]): the manifests with a `subject` PUT through it are
//!   recorded and listed at `GET /v2/<name>/referrers/<digest>`, as distribution-spec 1.1
//!   ("Listing Referrers") defines it.
//!
//! Both run on a runtime of their own in a helper thread, so a test may block (push an image,
//! stop the proxy) while they serve, from a sync or an async test alike. Dropping a proxy stops it.
//!
//! ```no_run
//! use sealgate_test_registry::{Fault, FaultRule, HttpFaultProxy, TestRegistry, TestRegistryConfig};
//!
//! let registry = TestRegistry::start(TestRegistryConfig::default()); // plain HTTP
//! let proxy = HttpFaultProxy::start(registry.host());
//! proxy.set_rule(FaultRule::new(Fault::Status { status: 429, retry_after: None }).times(2));
//! // … clients of proxy.host() get two 429s, then the registry's answers …
//! assert_eq!(proxy.count("429"), 2);
//! ```
//!
//! [`TestRegistry`]: crate::TestRegistry

use std::collections::BTreeMap;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use http_body::Frame;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tokio::task::JoinSet;

use sealgate_core::Digest;
use sealgate_registry::media_type;

/// How long [`TcpFaultProxy::stop`] waits for the proxy to close everything.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per chunk by the TCP proxy.
const CHUNK: usize = 16 * 1024;

/// A runtime of its own for a proxy (one worker thread).
fn runtime(name: &str) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for a fault proxy")
}

/// A loopback listener on a free port, ready to be handed to a runtime.
fn loopback_listener() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("cannot make a listener non-blocking");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    (listener, addr)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// TCP

/// What the [`TcpFaultProxy`] does with the bytes it receives, in both directions. A change
/// applies to open connections too, from their next chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpMode {
    /// Forward at once.
    Forward,
    /// Wait this long before forwarding each chunk.
    Delay(Duration),
    /// Accept and keep connections, forward nothing (what arrives is dropped).
    BlackHole,
}

/// A TCP proxy on a free loopback port in front of `upstream`: forwards, delays, black-holes,
/// or stops (listener closed, open connections dropped), as a test asks.
#[derive(Debug)]
pub struct TcpFaultProxy {
    addr: SocketAddr,
    shared: Arc<TcpShared>,
    stop: watch::Sender<bool>,
    /// Signalled once the listener and every connection are closed; taken by the first stop.
    closed: Mutex<Option<mpsc::Receiver<()>>>,
    runtime: Option<Runtime>,
}

#[derive(Debug)]
struct TcpShared {
    mode: Mutex<TcpMode>,
    accepted: AtomicUsize,
}

impl TcpShared {
    fn mode(&self) -> TcpMode {
        *lock(&self.mode)
    }
}

impl TcpFaultProxy {
    /// Starts forwarding `127.0.0.1:PORT` (a free port) to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> TcpFaultProxy {
        let runtime = runtime("tcp-fault-proxy");
        let (listener, addr) = loopback_listener();
        let shared = Arc::new(TcpShared {
            mode: Mutex::new(TcpMode::Forward),
            accepted: AtomicUsize::new(0),
        });
        let (stop, mut stopped) = watch::channel(false);
        let (closed_tx, closed_rx) = mpsc::channel();
        let upstream = upstream.to_string();
        let accepting = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("cannot register the listener");
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    // A stop, or the proxy dropped.
                    _ = stopped.wait_for(|stop| *stop) => break,
                    accepted = listener.accept() => {
                        if let Ok((client, _)) = accepted {
                            accepting.accepted.fetch_add(1, Ordering::SeqCst);
                            connections.spawn(relay(client, upstream.clone(), Arc::clone(&accepting)));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
            // Refuse new connections, then cut the open ones (their sockets drop with the tasks).
            drop(listener);
            connections.shutdown().await;
            let _ = closed_tx.send(());
        });
        TcpFaultProxy {
            addr,
            shared,
            stop,
            closed: Mutex::new(Some(closed_rx)),
            runtime: Some(runtime),
        }
    }

    /// `127.0.0.1:PORT`: the registry part of image references that go through the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets what happens to the bytes from now on.
    pub fn set_mode(&self, mode: TcpMode) {
        *lock(&self.shared.mode) = mode;
    }

    /// The mode in force.
    pub fn mode(&self) -> TcpMode {
        self.shared.mode()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Closes the listener (connections are refused from now on) and drops every open
    /// connection; returns once both are done. Blocks the calling thread for a moment.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
        if let Some(closed) = lock(&self.closed).take() {
            closed
                .recv_timeout(STOP_TIMEOUT)
                .expect("the TCP fault proxy did not close its connections within 5 s");
        }
    }
}

impl Drop for TcpFaultProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Connects to `upstream` and pumps both directions until either side closes.
async fn relay(client: TcpStream, upstream: String, shared: Arc<TcpShared>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return; // dropping `client` closes it, as a dead upstream would
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, &shared),
        pump(server_read, client_write, &shared),
    );
}

async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, shared: &TcpShared) {
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match shared.mode() {
            TcpMode::Forward => {}
            TcpMode::Delay(delay) => tokio::time::sleep(delay).await,
            TcpMode::BlackHole => continue,
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// What the [`HttpFaultProxy`] does to a request its [`FaultRule`] matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `status` without asking the registry, with `Retry-After: SECONDS` if given, and a
    /// distribution-style error body.
    Status {
        /// The HTTP status, e.g. 429 or 500.
        status: u16,
        /// The `Retry-After` header in seconds.
        retry_after: Option<u64>,
    },
    /// Forward, then send the registry's headers (its `Content-Length` included) and only the
    /// first half of the body, and close the connection.
    Truncate,
    /// Forward, with one byte of the body changed and every header kept (so the body no longer
    /// hashes to `Docker-Content-Digest` nor to the digest it was asked for). The byte changed is
    /// the first hex digit after the first `sha256:`, if any (the JSON stays valid), else the
    /// middle byte.
    Corrupt,
    /// Answer `307 Temporary Redirect` to where [`RedirectTo`] says. Storage redirects fetch
    /// the registry's answer first (with the request's headers) and redirect only when it is
    /// a 200; other answers (a 401 challenge) pass as they are.
    Redirect(RedirectTo),
    /// Forward; a 401 answer gets `WWW-Authenticate: Bearer realm="http://STORAGE/token"`
    /// instead of the registry's challenge (STORAGE: the plain-HTTP storage listener).
    PlainHttpTokenRealm,
}

/// Where a [`Fault::Redirect`] sends the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectTo {
    /// The proxy itself: the same path with `?sealgate-redirected=1` (a relative `Location`).
    /// That second request is forwarded untouched.
    SameOrigin,
    /// The storage listener over plain HTTP, on another port.
    PlainStorage,
    /// The storage listener over TLS, on another port (a proxy started with
    /// [`HttpFaultProxy::in_front_of`] a TLS registry; otherwise plain HTTP).
    TlsStorage,
}

/// The query marking a request the proxy redirected to itself.
const REDIRECTED_MARKER: &str = "sealgate-redirected=1";

impl Fault {
    /// How requests it touched are counted: `429`, `500`, `truncated`, `corrupted`.
    pub fn label(&self) -> String {
        match self {
            Fault::Status { status, .. } => status.to_string(),
            Fault::Truncate => "truncated".into(),
            Fault::Corrupt => "corrupted".into(),
            Fault::Redirect(_) => "redirected".into(),
            Fault::PlainHttpTokenRealm => "challenge rewritten".into(),
        }
    }
}

/// Which requests get a [`Fault`], and how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    fault: Fault,
    path_contains: Option<String>,
    times: Option<usize>,
}

impl FaultRule {
    /// `fault` for every request, for ever.
    pub fn new(fault: Fault) -> FaultRule {
        FaultRule {
            fault,
            path_contains: None,
            times: None,
        }
    }

    /// Only requests whose path contains `fragment` (e.g. `/manifests/` or `/blobs/`); the
    /// others are forwarded untouched.
    pub fn on_paths(mut self, fragment: &str) -> FaultRule {
        self.path_contains = Some(fragment.to_string());
        self
    }

    /// Only the first `n` matching requests; later ones are forwarded untouched.
    pub fn times(mut self, n: usize) -> FaultRule {
        self.times = Some(n);
        self
    }

    fn matches(&self, path: &str) -> bool {
        self.path_contains
            .as_deref()
            .is_none_or(|fragment| path.contains(fragment))
    }
}

/// How the [`HttpFaultProxy`] answers the OCI 1.1 referrers API,
/// `GET /v2/<name>/referrers/<digest>` (distribution-spec 1.1, "Listing Referrers").
///
/// Whatever the mode, every image manifest or index with a `subject` that the registry accepts
/// through the proxy (a `PUT /v2/<name>/manifests/<reference>` answered 201) is recorded as the
/// spec's referrer descriptor: its media type, size, digest (of the bytes PUT), `artifactType`
/// (the manifest's, else its config's media type; omitted for an index without one) and
/// annotations. A `DELETE` of that digest removes it. Manifests pushed to the registry around the
/// proxy are not seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReferrersApi {
    /// No API: referrers requests are forwarded (Debian's distribution 2.8 answers 404) and
    /// manifest PUTs get no `OCI-Subject`, so clients use the referrers tag schema.
    #[default]
    Forward,
    /// The API: `200` with an OCI image index of the recorded referrers of that digest in that
    /// repository (an empty `manifests` when there are none, never 404; `400` for a digest that
    /// does not parse). `?artifactType=T` keeps the descriptors whose `artifactType` is exactly
    /// `T` and sets `OCI-Filters-Applied: artifactType`. A manifest PUT with a `subject` is
    /// answered with `OCI-Subject: <subject digest>`.
    Served,
    /// The API without filtering (the spec's filter is a SHOULD): `artifactType` is ignored,
    /// every referrer listed, no `OCI-Filters-Applied`.
    ServedUnfiltered,
    /// A broken API: every referrers request is answered `200` with this body as the index
    /// (with the OCI index content type), e.g. text that is not JSON, or JSON with no
    /// `manifests` list.
    Malformed(String),
}

/// The `OCI-Subject` header (distribution-spec 1.1, "Pushing Manifests with Subject").
const OCI_SUBJECT: &str = "oci-subject";
/// The `OCI-Filters-Applied` header (distribution-spec 1.1, "Listing Referrers").
const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";

/// Referrer descriptors by repository and subject digest, in the order they were pushed.
type ReferrerBook = BTreeMap<(String, String), Vec<serde_json::Value>>;

/// An HTTP/1.1 proxy on a free loopback port in front of a plain-HTTP registry: forwards every
/// request, and applies the [`FaultRule`] set to those it matches.
#[derive(Debug)]
pub struct HttpFaultProxy {
    addr: SocketAddr,
    shared: Arc<HttpShared>,
    runtime: Option<Runtime>,
}

#[derive(Debug)]
struct HttpShared {
    /// `http://host:port` or `https://host:port` of the registry.
    upstream: String,
    client: reqwest::Client,
    rule: Mutex<Option<(FaultRule, usize)>>,
    /// Requests seen, by what was done to them (`forwarded` or a [`Fault::label`]).
    counts: Mutex<BTreeMap<String, usize>>,
    /// `METHOD PATH -> what` per request, in order.
    seen: Mutex<Vec<String>>,
    /// `METHOD PATH?QUERY` of the requests that carried `Authorization`, in order.
    authorized: Mutex<Vec<String>>,
    /// How the referrers API is answered.
    referrers_api: Mutex<ReferrersApi>,
    /// The manifests with a `subject` PUT through the proxy.
    referrers: Mutex<ReferrerBook>,
    storage: Arc<StorageShared>,
    /// `http://127.0.0.1:PORT` of the plain storage listener.
    plain_storage: String,
    /// `https://127.0.0.1:PORT` of the TLS storage listener (the plain one without TLS).
    tls_storage: String,
}

/// One request the storage listener received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRequest {
    /// `GET`, `HEAD`, …
    pub method: String,
    /// The path and query.
    pub path_and_query: String,
    /// Its `Authorization` header, if it had one.
    pub authorization: Option<String>,
}

/// What the storage listeners share: the objects they serve and the requests they saw.
#[derive(Debug, Default)]
struct StorageShared {
    objects: Mutex<Vec<(HeaderMap, Bytes)>>,
    seen: Mutex<Vec<StorageRequest>>,
}

impl HttpShared {
    /// The fault for a request to `path` under the current rule, counting it against the
    /// rule's `times`.
    fn fault_for(&self, path: &str) -> Option<Fault> {
        let mut rule = lock(&self.rule);
        let (current, applied) = rule.as_mut()?;
        if !current.matches(path) || current.times.is_some_and(|n| *applied >= n) {
            return None;
        }
        *applied += 1;
        Some(current.fault)
    }

    fn record_authorization(&self, method: &str, path_and_query: &str, headers: &HeaderMap) {
        if headers.contains_key(header::AUTHORIZATION) {
            lock(&self.authorized).push(format!("{method} {path_and_query}"));
        }
    }

    fn record(&self, method: &str, path: &str, what: &str) {
        *lock(&self.counts).entry(what.to_string()).or_default() += 1;
        lock(&self.seen).push(format!("{method} {path} -> {what}"));
    }

    /// The proxy's own answer to `GET /v2/<name>/referrers/<digest>` under its
    /// [`ReferrersApi`] mode; `None` when the request is for the registry.
    fn answer_referrers(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
    ) -> Option<(StatusCode, HeaderMap, Bytes)> {
        if method != Method::GET {
            return None;
        }
        let (repository, digest) = path.strip_prefix("/v2/")?.rsplit_once("/referrers/")?;
        let filtering = match lock(&self.referrers_api).clone() {
            ReferrersApi::Forward => return None,
            ReferrersApi::Malformed(body) => {
                return Some((StatusCode::OK, index_headers(), Bytes::from(body)));
            }
            ReferrersApi::Served => true,
            ReferrersApi::ServedUnfiltered => false,
        };
        let Ok(subject) = digest.parse::<Digest>() else {
            let body = serde_json::json!({"errors": [{
                "code": "DIGEST_INVALID",
                "message": format!("'{digest}' is not a digest"),
                "detail": null,
            }]});
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Some((
                StatusCode::BAD_REQUEST,
                headers,
                Bytes::from(body.to_string()),
            ));
        };
        let mut manifests = lock(&self.referrers)
            .get(&(repository.to_string(), subject.to_string()))
            .cloned()
            .unwrap_or_default();
        let mut headers = index_headers();
        if filtering && let Some(wanted) = query_value(query, "artifactType") {
            manifests.retain(|d| d["artifactType"].as_str() == Some(wanted.as_str()));
            headers.insert(
                HeaderName::from_static(OCI_FILTERS_APPLIED),
                HeaderValue::from_static("artifactType"),
            );
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": manifests,
        });
        Some((StatusCode::OK, headers, Bytes::from(index.to_string())))
    }

    /// After the registry answered `request` (`body` its body): a manifest with a `subject` it
    /// accepted (`PUT /v2/<name>/manifests/<reference>`, 201) is recorded as a referrer (and
    /// announced with `OCI-Subject` when the API is served); a manifest it deleted is
    /// forgotten.
    fn note_manifest(
        &self,
        request: &axum::http::request::Parts,
        path: &str,
        body: &[u8],
        status: StatusCode,
        headers: &mut HeaderMap,
    ) {
        let Some((repository, reference)) = path
            .strip_prefix("/v2/")
            .and_then(|p| p.rsplit_once("/manifests/"))
        else {
            return;
        };
        if request.method == Method::DELETE && status.is_success() {
            for ((repo, _), referrers) in lock(&self.referrers).iter_mut() {
                if repo == repository {
                    referrers.retain(|d| d["digest"].as_str() != Some(reference));
                }
            }
            return;
        }
        if request.method != Method::PUT || status != StatusCode::CREATED {
            return;
        }
        let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(body) else {
            return;
        };
        let Some(subject) = manifest["subject"]["digest"].as_str() else {
            return;
        };
        let content_type = request
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let media = manifest["mediaType"]
            .as_str()
            .or(content_type)
            .unwrap_or_default();
        let is_index = media == media_type::OCI_INDEX || manifest["manifests"].is_array();
        let mut descriptor = serde_json::json!({
            "mediaType": media,
            "size": body.len(),
            "digest": Digest::sha256_of(body).to_string(),
        });
        // The spec: the manifest's artifactType, else its config's media type; an index
        // without one has none.
        let artifact_type = manifest["artifactType"]
            .as_str()
            .filter(|t| !t.is_empty())
            .or_else(|| {
                (!is_index)
                    .then(|| manifest["config"]["mediaType"].as_str())
                    .flatten()
            });
        if let Some(t) = artifact_type {
            descriptor["artifactType"] = t.into();
        }
        if manifest["annotations"].is_object() {
            descriptor["annotations"] = manifest["annotations"].clone();
        }
        {
            let mut book = lock(&self.referrers);
            let referrers = book
                .entry((repository.to_string(), subject.to_string()))
                .or_default();
            referrers.retain(|d| d["digest"] != descriptor["digest"]);
            referrers.push(descriptor);
        }
        if *lock(&self.referrers_api) != ReferrersApi::Forward
            && let Ok(value) = HeaderValue::from_str(subject)
        {
            headers.insert(HeaderName::from_static(OCI_SUBJECT), value);
        }
    }
}

/// `Content-Type: application/vnd.oci.image.index.v1+json`.
fn index_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type::OCI_INDEX),
    );
    headers
}

/// The decoded value of `name` in a URL query, if given and not empty.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://query.invalid/?{}", query?)).ok()?;
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

impl HttpFaultProxy {
    /// Starts an HTTP proxy on `127.0.0.1:PORT` (a free port) forwarding to the plain-HTTP
    /// registry at `upstream` (`host:port`), with no fault set.
    pub fn start(upstream: &str) -> HttpFaultProxy {
        HttpFaultProxy::start_with(format!("http://{upstream}"), None, None)
    }

    /// Starts a proxy in front of `registry`: plain HTTP for a plain registry, TLS (the
    /// registry's own certificate, valid for `127.0.0.1` on any port, so clients keep its CA)
    /// for a TLS one.
    pub fn in_front_of(registry: &crate::TestRegistry) -> HttpFaultProxy {
        if !registry.config().tls {
            return HttpFaultProxy::start(registry.host());
        }
        let dir = registry.dir();
        let tls = server_tls(&dir.join("server.pem"), &dir.join("server-key.pem"));
        let ca = std::fs::read(dir.join("ca.pem")).expect("cannot read the test registry's CA");
        let ca = reqwest::Certificate::from_pem(&ca).expect("the test registry's CA is not PEM");
        HttpFaultProxy::start_with(format!("https://{}", registry.host()), Some(tls), Some(ca))
    }

    fn start_with(
        upstream: String,
        tls: Option<Arc<rustls::ServerConfig>>,
        upstream_ca: Option<reqwest::Certificate>,
    ) -> HttpFaultProxy {
        let runtime = runtime("http-fault-proxy");
        let (listener, addr) = loopback_listener();
        let (plain_storage_listener, plain_storage_addr) = loopback_listener();
        let (tls_storage_listener, tls_storage_addr) = loopback_listener();
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(ca) = upstream_ca {
            client = client.add_root_certificate(ca);
        }
        let client = client
            .build()
            .expect("cannot build the fault proxy's HTTP client");
        let storage = Arc::new(StorageShared::default());
        let tls_scheme = if tls.is_some() { "https" } else { "http" };
        let shared = Arc::new(HttpShared {
            upstream,
            client,
            rule: Mutex::new(None),
            counts: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(Vec::new()),
            authorized: Mutex::new(Vec::new()),
            referrers_api: Mutex::new(ReferrersApi::Forward),
            referrers: Mutex::new(BTreeMap::new()),
            storage: Arc::clone(&storage),
            plain_storage: format!("http://{plain_storage_addr}"),
            tls_storage: format!("{tls_scheme}://{tls_storage_addr}"),
        });
        let router = Router::new()
            .fallback(proxy)
            .with_state(Arc::clone(&shared));
        let storage_router = Router::new().fallback(serve_storage).with_state(storage);
        runtime.spawn(serve(listener, router, tls.clone()));
        runtime.spawn(serve(plain_storage_listener, storage_router.clone(), None));
        runtime.spawn(serve(tls_storage_listener, storage_router, tls));
        HttpFaultProxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// Every request the storage listeners received, in order.
    pub fn storage_requests(&self) -> Vec<StorageRequest> {
        lock(&self.shared.storage.seen).clone()
    }

    /// `host:port` of the plain-HTTP storage listener (to allow it plain HTTP).
    pub fn plain_storage_host(&self) -> String {
        self.shared
            .plain_storage
            .trim_start_matches("http://")
            .to_string()
    }

    /// `METHOD PATH?QUERY` of every request to the proxy that carried `Authorization`.
    pub fn requests_with_authorization(&self) -> Vec<String> {
        lock(&self.shared.authorized).clone()
    }

    /// `127.0.0.1:PORT`: the registry part of image references that go through the proxy.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Applies `rule` from now on (replacing any other; its `times` count from zero).
    pub fn set_rule(&self, rule: FaultRule) {
        *lock(&self.shared.rule) = Some((rule, 0));
    }

    /// Forwards everything untouched from now on.
    pub fn clear_rule(&self) {
        *lock(&self.shared.rule) = None;
    }

    /// Requests seen so far that got `what`: `forwarded` (untouched), or a [`Fault::label`]
    /// (`429`, `500`, `truncated`, `corrupted`).
    pub fn count(&self, what: &str) -> usize {
        lock(&self.shared.counts).get(what).copied().unwrap_or(0)
    }

    /// Every count so far, by what was done.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        lock(&self.shared.counts).clone()
    }

    /// Every request so far as `METHOD PATH -> what`, in order (for failure messages).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.shared.seen).clone()
    }

    /// Answers the referrers API as `mode` says from now on (see [`ReferrersApi`]).
    pub fn set_referrers_api(&self, mode: ReferrersApi) {
        *lock(&self.shared.referrers_api) = mode;
    }

    /// The referrer descriptors recorded for `subject` (a digest) in `repository` (e.g.
    /// `app`), in the order they were pushed: what [`ReferrersApi::Served`] lists unfiltered.
    pub fn recorded_referrers(&self, repository: &str, subject: &Digest) -> Vec<serde_json::Value> {
        lock(&self.shared.referrers)
            .get(&(repository.to_string(), subject.to_string()))
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Hop-by-hop headers: never forwarded.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ]
    .contains(name)
        || name.as_str() == "keep-alive"
}

async fn proxy(State(shared): State<Arc<HttpShared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), ToString::to_string);
    shared.record_authorization(&method, &path_and_query, &parts.headers);
    let redirected_here = parts
        .uri
        .query()
        .is_some_and(|q| q.contains(REDIRECTED_MARKER));
    let fault = if redirected_here {
        None
    } else {
        shared.fault_for(&path)
    };
    if let Some(Fault::Redirect(RedirectTo::SameOrigin)) = fault {
        shared.record(&method, &path, "redirected");
        let separator = if parts.uri.query().is_some() {
            '&'
        } else {
            '?'
        };
        return redirect(&format!("{path_and_query}{separator}{REDIRECTED_MARKER}"));
    }

    if let Some(Fault::Status {
        status,
        retry_after,
    }) = fault
    {
        shared.record(&method, &path, &status.to_string());
        return injected_status(status, retry_after);
    }

    // The referrers API, when the proxy serves it, is answered here; the faults below apply to
    // that answer as to the registry's.
    let answered = shared.answer_referrers(&parts.method, &path, parts.uri.query());
    let (status, mut headers, bytes, untouched) = match answered {
        Some((status, headers, bytes)) => (status, headers, bytes, "referrers"),
        None => {
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                shared.record(&method, &path, "unreadable request");
                return plain(
                    StatusCode::BAD_REQUEST,
                    "the fault proxy could not read the request",
                );
            };
            let url = format!("{}{path_and_query}", shared.upstream);
            let mut upstream = shared.client.request(parts.method.clone(), url);
            for (name, value) in &parts.headers {
                if name != header::HOST && !is_hop_by_hop(name) {
                    upstream = upstream.header(name, value);
                }
            }
            let answer = match upstream.body(body.clone()).send().await {
                Ok(answer) => answer,
                Err(e) => {
                    shared.record(&method, &path, "upstream failed");
                    return plain(
                        StatusCode::BAD_GATEWAY,
                        &format!("the fault proxy could not reach the registry: {e}"),
                    );
                }
            };
            let status = answer.status();
            let mut headers = HeaderMap::new();
            for (name, value) in answer.headers() {
                if !is_hop_by_hop(name) {
                    headers.append(name, value.clone());
                }
            }
            let Ok(bytes) = answer.bytes().await else {
                shared.record(&method, &path, "upstream failed");
                return plain(
                    StatusCode::BAD_GATEWAY,
                    "the fault proxy could not read the registry's answer",
                );
            };
            shared.note_manifest(&parts, &path, &body, status, &mut headers);
            (status, headers, bytes, "forwarded")
        }
    };

    if let Some(Fault::Redirect(to)) = fault
        && status == StatusCode::OK
    {
        let id = {
            let mut objects = lock(&shared.storage.objects);
            objects.push((headers, bytes));
            objects.len() - 1
        };
        let base = match to {
            RedirectTo::PlainStorage => &shared.plain_storage,
            RedirectTo::TlsStorage | RedirectTo::SameOrigin => &shared.tls_storage,
        };
        shared.record(&method, &path, "redirected");
        return redirect(&format!("{base}/objects/{id}?X-Signature=storage-secret"));
    }
    if fault == Some(Fault::PlainHttpTokenRealm) && status == StatusCode::UNAUTHORIZED {
        let challenge = format!(
            r#"Bearer realm="{}/token",service="sealgate-test""#,
            shared.plain_storage
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        shared.record(&method, &path, "challenge rewritten");
        let mut response = Response::new(Body::from(bytes));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        return response;
    }

    // A fault on a body needs one; empty answers (HEAD, 202) pass untouched.
    let (what, body) = match fault {
        Some(Fault::Truncate) if !bytes.is_empty() => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            let half = bytes.slice(..bytes.len() / 2);
            ("truncated", Body::new(TruncatedBody::new(half)))
        }
        Some(Fault::Corrupt) if !bytes.is_empty() => ("corrupted", Body::from(corrupt(&bytes))),
        _ => (untouched, Body::from(bytes)),
    };
    shared.record(&method, &path, what);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A `307 Temporary Redirect` to `location`.
fn redirect(location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// Serves `router` on `listener`, over TLS when `tls` is given.
async fn serve(
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let listener = TcpListener::from_std(listener).expect("cannot register the listener");
    let Some(tls) = tls else {
        let _ = axum::serve(listener, router).await;
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

/// The TLS configuration of a server with this certificate and key (PEM files).
fn server_tls(cert: &std::path::Path, key: &std::path::Path) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .expect("cannot read the test registry's certificate");
    let key = PrivateKeyDer::from_pem_file(key).expect("cannot read the test registry's key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("the test registry's certificate and key do not match");
    Arc::new(config)
}

/// The storage listeners: `GET /objects/N` serves the N-th object the proxy redirected,
/// `GET /token` answers a token; every request is recorded with its `Authorization`.
async fn serve_storage(State(storage): State<Arc<StorageShared>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), ToString::to_string);
    lock(&storage.seen).push(StorageRequest {
        method: parts.method.to_string(),
        path_and_query,
        authorization: parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    });
    let path = parts.uri.path();
    if path == "/token" {
        let mut response = Response::new(Body::from(r#"{"token":"storage-token"}"#));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    }
    let object = path
        .strip_prefix("/objects/")
        .and_then(|id| id.parse::<usize>().ok())
        .and_then(|id| lock(&storage.objects).get(id).cloned());
    match object {
        Some((headers, bytes)) => {
            let mut response = Response::new(Body::from(bytes));
            *response.headers_mut() = headers;
            response
        }
        None => plain(StatusCode::NOT_FOUND, "no such object"),
    }
}

fn injected_status(status: u16, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "TOOMANYREQUESTS",
        _ => "UNKNOWN",
    };
    let body = format!(
        r#"{{"errors":[{{"code":"{code}","message":"injected by the fault proxy","detail":null}}]}}"#
    );
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn plain(status: StatusCode, message: &str) -> Response {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response
}

/// `bytes` with one byte changed: the first hex digit after the first `sha256:` (so JSON stays
/// JSON and a digest now names other content), else the middle byte.
fn corrupt(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let marker = b"sha256:";
    let at = out
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|i| i + marker.len())
        .filter(|&i| i < out.len() && out[i].is_ascii_hexdigit());
    match at {
        Some(i) => out[i] = if out[i] == b'0' { b'1' } else { b'0' },
        None => {
            let i = out.len() / 2;
            out[i] ^= 0x01;
        }
    }
    out
}

/// How long a truncated body waits after its part before failing: long enough for the server
/// to flush the headers and the part to the client.
const TRUNCATE_FLUSH: Duration = Duration::from_millis(50);

/// A body that yields `part`, waits for it to be flushed, then fails: hyper then closes the
/// connection, short of the `Content-Length` already sent.
#[derive(Debug)]
struct TruncatedBody {
    part: Option<Bytes>,
    flushed: Pin<Box<tokio::time::Sleep>>,
}

impl TruncatedBody {
    fn new(part: Bytes) -> TruncatedBody {
        TruncatedBody {
            part: Some(part),
            flushed: Box::pin(tokio::time::sleep(TRUNCATE_FLUSH)),
        }
    }
}

impl http_body::Body for TruncatedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if let Some(part) = self.part.take() {
            return Poll::Ready(Some(Ok(Frame::data(part))));
        }
        match self.flushed.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other(
                "body truncated by the fault proxy",
            )))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupting_changes_exactly_one_byte_and_keeps_json_valid() {
        let manifest = br#"{"config":{"digest":"sha256:0bc","size":2}}"#;
        let changed = corrupt(manifest);
        assert_eq!(changed.len(), manifest.len());
        let differing = manifest
            .iter()
            .zip(&changed)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(differing, 1);
        assert!(serde_json::from_slice::<serde_json::Value>(&changed).is_ok());
        assert_eq!(corrupt(b"abc"), b"acc");
    }

    fn shared() -> HttpShared {
        HttpShared {
            upstream: String::new(),
            client: reqwest::Client::new(),
            rule: Mutex::new(None),
            counts: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(Vec::new()),
            authorized: Mutex::new(Vec::new()),
            referrers_api: Mutex::new(ReferrersApi::Forward),
            referrers: Mutex::new(BTreeMap::new()),
            storage: Arc::default(),
            plain_storage: String::new(),
            tls_storage: String::new(),
        }
    }

    /// Notes `PUT /v2/app/manifests/<reference>` of `body`, answered `status`; the headers
    /// the proxy would send back.
    fn put(shared: &HttpShared, reference: &str, body: &[u8], status: StatusCode) -> HeaderMap {
        let (parts, ()) = axum::http::Request::builder()
            .method(Method::PUT)
            .uri(format!("/v2/app/manifests/{reference}"))
            .header(header::CONTENT_TYPE, media_type::OCI_MANIFEST)
            .body(())
            .unwrap()
            .into_parts();
        let mut headers = HeaderMap::new();
        shared.note_manifest(&parts, parts.uri.path(), body, status, &mut headers);
        headers
    }

    fn list(
        shared: &HttpShared,
        subject: &Digest,
        query: Option<&str>,
    ) -> (StatusCode, HeaderMap, serde_json::Value) {
        let (status, headers, bytes) = shared
            .answer_referrers(&Method::GET, &format!("/v2/app/referrers/{subject}"), query)
            .unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn referrers_are_recorded_from_puts_and_listed_with_the_filter() {
        let shared = shared();
        let subject = Digest::sha256_of(b"image");
        let bundle = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "digest": Digest::sha256_of(b"{}").to_string()},
            "layers": [],
            "subject": {"mediaType": media_type::OCI_MANIFEST, "size": 5, "digest": subject.to_string()},
            "annotations": {"dev.sigstore.bundle.content": "dsse-envelope"},
        })
        .to_string();
        // No artifactType: the config's media type stands in.
        let sbom = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.example.sbom.v1", "size": 2, "digest": Digest::sha256_of(b"{}").to_string()},
            "layers": [],
            "subject": {"mediaType": media_type::OCI_MANIFEST, "size": 5, "digest": subject.to_string()},
        })
        .to_string();
        let plain = r#"{"schemaVersion":2,"config":{},"layers":[]}"#;

        // Forward: recorded all the same, but no API and no OCI-Subject.
        assert!(put(&shared, "sha256:x", bundle.as_bytes(), StatusCode::CREATED).is_empty());
        assert!(
            shared
                .answer_referrers(&Method::GET, &format!("/v2/app/referrers/{subject}"), None)
                .is_none()
        );

        *lock(&shared.referrers_api) = ReferrersApi::Served;
        let headers = put(&shared, "v1", bundle.as_bytes(), StatusCode::CREATED);
        assert_eq!(headers[OCI_SUBJECT], subject.to_string().as_str());
        put(&shared, "v2", sbom.as_bytes(), StatusCode::CREATED);
        assert!(put(&shared, "v3", plain.as_bytes(), StatusCode::CREATED).is_empty());
        // Refused by the registry: not a referrer.
        put(
            &shared,
            "v4",
            br#"{"subject":{"digest":"sha256:1"}}"#,
            StatusCode::BAD_REQUEST,
        );

        let (status, headers, index) = list(&shared, &subject, None);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], media_type::OCI_INDEX);
        assert!(headers.get(OCI_FILTERS_APPLIED).is_none());
        assert_eq!(index["mediaType"], media_type::OCI_INDEX);
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 2, "{index}");
        assert_eq!(
            manifests[0]["digest"],
            Digest::sha256_of(bundle.as_bytes()).to_string()
        );
        assert_eq!(manifests[0]["size"], bundle.len());
        assert_eq!(manifests[0]["mediaType"], media_type::OCI_MANIFEST);
        assert_eq!(
            manifests[0]["artifactType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        assert_eq!(
            manifests[0]["annotations"]["dev.sigstore.bundle.content"],
            "dsse-envelope"
        );
        assert_eq!(
            manifests[1]["artifactType"],
            "application/vnd.example.sbom.v1"
        );
        assert_eq!(
            manifests[1]["mediaType"],
            media_type::OCI_MANIFEST,
            "from Content-Type"
        );

        // The filter is exact, and said to be applied.
        let (_, headers, index) = list(
            &shared,
            &subject,
            Some("artifactType=application%2Fvnd.example.sbom.v1"),
        );
        assert_eq!(headers[OCI_FILTERS_APPLIED], "artifactType");
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        let (_, _, index) = list(
            &shared,
            &subject,
            Some("artifactType=application%2Fvnd.dev.sigstore.bundle"),
        );
        assert_eq!(index["manifests"], serde_json::json!([]));
        // Unfiltered: the query is ignored.
        *lock(&shared.referrers_api) = ReferrersApi::ServedUnfiltered;
        let (_, headers, index) = list(
            &shared,
            &subject,
            Some("artifactType=application%2Fvnd.example.sbom.v1"),
        );
        assert!(headers.get(OCI_FILTERS_APPLIED).is_none());
        assert_eq!(index["manifests"].as_array().unwrap().len(), 2);

        // Another subject has none (an empty index, not 404); a bad digest is a 400.
        let (status, _, index) = list(&shared, &Digest::sha256_of(b"other"), None);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(index["manifests"], serde_json::json!([]));
        let (status, _, _) = shared
            .answer_referrers(&Method::GET, "/v2/app/referrers/sha256:nothex", None)
            .unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // A deleted referrer is forgotten.
        let (parts, ()) = axum::http::Request::builder()
            .method(Method::DELETE)
            .uri(format!(
                "/v2/app/manifests/{}",
                Digest::sha256_of(sbom.as_bytes())
            ))
            .body(())
            .unwrap()
            .into_parts();
        shared.note_manifest(
            &parts,
            parts.uri.path(),
            b"",
            StatusCode::ACCEPTED,
            &mut HeaderMap::new(),
        );
        let (_, _, index) = list(&shared, &subject, None);
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);

        // Malformed: the body given, as an index.
        *lock(&shared.referrers_api) = ReferrersApi::Malformed("not json".into());
        let (status, headers, bytes) = shared
            .answer_referrers(&Method::GET, &format!("/v2/app/referrers/{subject}"), None)
            .unwrap();
        assert_eq!((status, &bytes[..]), (StatusCode::OK, &b"not json"[..]));
        assert_eq!(headers[header::CONTENT_TYPE], media_type::OCI_INDEX);
    }

    #[test]
    fn rules_match_paths_and_run_out() {
        let shared = shared();
        assert_eq!(shared.fault_for("/v2/app/manifests/v1"), None);
        *lock(&shared.rule) = Some((
            FaultRule::new(Fault::Truncate).on_paths("/blobs/").times(1),
            0,
        ));
        assert_eq!(shared.fault_for("/v2/app/manifests/v1"), None);
        assert_eq!(
            shared.fault_for("/v2/app/blobs/sha256:1"),
            Some(Fault::Truncate)
        );
        assert_eq!(shared.fault_for("/v2/app/blobs/sha256:1"), None);
    }
}
