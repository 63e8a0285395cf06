//! The request loop under every [`Client`] operation: authorization (Basic or bearer tokens,
//! learnt from `WWW-Authenticate` and then sent up front), retries of 429/5xx and dropped
//! connections with backoff, request counting, and turning transport failures into [`Error`]s
//! that say what to do.

use std::error::Error as StdError;
use std::io;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode, Url};

use crate::auth::{Challenge, Scope, TokenAnswer, parse_challenge};
use crate::client::{Client, is_insecure};
use crate::credentials::Credentials;
use crate::error::Error;
use crate::stats::RequestCount;

/// The first retry waits this long; each further one twice as long.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);
/// No retry waits longer than this, whatever `Retry-After` says.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// Largest token-service answer read.
const MAX_TOKEN_ANSWER_BYTES: usize = 1024 * 1024;
/// How much of an unexpected error body is quoted in messages.
const ERROR_BODY_EXCERPT_BYTES: usize = 512;
/// Redirects followed for one request before giving up (blob downloads redirect once or twice).
pub(crate) const MAX_REDIRECTS: usize = 5;
/// The `client_id` sent when exchanging an identity token.
const OAUTH_CLIENT_ID: &str = "sealgate";

/// What an operation works on: the registry, the repository and the access it needs.
#[derive(Debug)]
pub(crate) struct Target {
    /// The registry `host[:port]`.
    pub(crate) host: String,
    /// `scheme://host/`.
    pub(crate) base: Url,
    /// `host/path`, for messages.
    pub(crate) repository: String,
    /// The access needed.
    pub(crate) scope: Scope,
}

/// One HTTP request, kept so that it can be sent again.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
}

impl Request {
    pub(crate) fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// The request a redirect with `status` to `url` asks for: 303 (and 301/302 after a
    /// POST) turns into a GET without body, as browsers and docker do; 307/308 repeat the
    /// request as it was.
    fn redirected(&self, status: StatusCode, url: Url) -> Request {
        let to_get = status == StatusCode::SEE_OTHER && self.method != Method::HEAD
            || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                && self.method == Method::POST;
        if !to_get {
            return Request {
                url,
                ..self.clone()
            };
        }
        let mut headers = self.headers.clone();
        headers.remove(CONTENT_TYPE);
        headers.remove(CONTENT_LENGTH);
        Request {
            method: Method::GET,
            url,
            headers,
            body: None,
        }
    }
}

/// An `Authorization` header and who it speaks for.
#[derive(Debug)]
struct Authorization {
    header: HeaderValue,
    /// The user name behind it, `None` for anonymous tokens.
    username: Option<String>,
    /// Basic credentials are not worth a second try after a 401.
    is_basic: bool,
}

impl Client {
    /// Sends `request` for `target`, authenticating as the registry asks. A 401 that remains
    /// after answering the challenge becomes an error; other statuses are the caller's to read.
    pub(crate) async fn send(&self, target: &Target, request: &Request) -> Result<Response, Error> {
        // Credentials go only to the registry's own origin, never to another scheme, host or
        // port (an upload Location or a redirect target).
        let to_registry = same_origin(&request.url, &target.base);
        let mut authorization = if to_registry {
            self.prepared_authorization(target).await?
        } else {
            None
        };
        let mut answered = authorization.as_ref().is_some_and(|a| a.is_basic);
        loop {
            let response = self
                .send_following_redirects(
                    request,
                    authorization.as_ref().map(|a| &a.header),
                    &target.base,
                )
                .await?;
            // A 401 from elsewhere (object storage refusing a signed URL) is not the
            // registry's challenge: it is the caller's to report.
            if response.status() != StatusCode::UNAUTHORIZED
                || !to_registry
                || !same_origin(response.url(), &target.base)
            {
                return Ok(response);
            }
            if answered {
                return Err(unauthorized(target, authorization.as_ref()));
            }
            let header = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let Some(challenge) = parse_challenge(header) else {
                let detail = match header {
                    "" => "it answered 401 without a WWW-Authenticate challenge".to_string(),
                    _ => format!("it asked for an unsupported kind of authentication: '{header}'"),
                };
                return Err(Error::UnsupportedAuthentication {
                    host: target.host.clone(),
                    detail,
                });
            };
            self.with_state(|s| s.challenges.insert(target.host.clone(), challenge.clone()));
            authorization = Some(self.answer_challenge(target, &challenge, true).await?);
            answered = true;
        }
    }

    /// An `Authorization` to send before being asked, when this host challenged us before.
    async fn prepared_authorization(
        &self,
        target: &Target,
    ) -> Result<Option<Authorization>, Error> {
        let challenge = self.with_state(|s| s.challenges.get(&target.host).cloned());
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match self.credentials_for(&target.host).await? {
                Some(Credentials::Basic { username, password }) => {
                    Ok(Some(basic_authorization(&username, &password)))
                }
                _ => Ok(None),
            },
            Some(bearer) => self
                .answer_challenge(target, &bearer, false)
                .await
                .map(Some),
        }
    }

    /// Builds the `Authorization` that answers `challenge`; `fresh` skips cached tokens.
    async fn answer_challenge(
        &self,
        target: &Target,
        challenge: &Challenge,
        fresh: bool,
    ) -> Result<Authorization, Error> {
        let credentials = self.credentials_for(&target.host).await?;
        match challenge {
            Challenge::Basic => match credentials {
                Some(Credentials::Basic { username, password }) => Ok(basic_authorization(&username, &password)),
                Some(Credentials::IdentityToken(_)) => Err(Error::UnsupportedAuthentication {
                    host: target.host.clone(),
                    detail: "it wants a user name and password, but docker config.json only has an identity token for it; pass --registry-username/--registry-password".into(),
                }),
                None => Err(Error::AuthenticationRequired {
                    host: target.host.clone(),
                    repository: target.repository.clone(),
                }),
            },
            Challenge::Bearer { realm, service, .. } => {
                let username = credentials.as_ref().map(|c| c.username().to_string());
                let cached = if fresh {
                    None
                } else {
                    self.with_state(|s| s.tokens.get(&target.host, &target.scope, Instant::now()))
                };
                let token = match cached {
                    Some(token) => token,
                    None => {
                        let answer = self.fetch_token(target, realm, service.as_deref(), credentials.as_ref()).await?;
                        let Some(token) = answer.bearer().map(str::to_string) else {
                            return Err(Error::UnsupportedAuthentication {
                                host: target.host.clone(),
                                detail: format!("the token service {realm} answered without a token"),
                            });
                        };
                        let until = Instant::now() + answer.reuse_for();
                        self.with_state(|s| s.tokens.insert(&target.host, &target.scope, token.clone(), until));
                        token
                    }
                };
                let header = sensitive_header(&format!("Bearer {token}"), &target.host)?;
                Ok(Authorization { header, username, is_basic: false })
            }
        }
    }

    /// Asks the token service at `realm` for a bearer token for `target.scope`.
    async fn fetch_token(
        &self,
        target: &Target,
        realm: &str,
        service: Option<&str>,
        credentials: Option<&Credentials>,
    ) -> Result<TokenAnswer, Error> {
        let unusable_realm = || Error::UnsupportedAuthentication {
            host: target.host.clone(),
            detail: format!("its token realm '{realm}' is not an http(s) URL"),
        };
        let realm_url = Url::parse(realm).map_err(|_| unusable_realm())?;
        if !matches!(realm_url.scheme(), "http" | "https") {
            return Err(unusable_realm());
        }
        let realm_host = authority(&realm_url);
        // A registry reached over HTTPS must not make us send credentials (or trust a token
        // answer) in the clear: a plain-HTTP token service is used only when its host is
        // allowed plain HTTP.
        if realm_url.scheme() == "http"
            && !is_insecure(&self.inner.options.insecure_hosts, &realm_host)
        {
            return Err(Error::InsecureTokenRealm {
                host: target.host.clone(),
                realm: display_url(&realm_url),
                realm_host,
            });
        }
        let realm_origin = realm_url.clone();
        let scope = target.scope.token_scope();
        let (request, authorization) = match credentials {
            Some(Credentials::IdentityToken(refresh_token)) => {
                // OAuth2 refresh-token grant, as docker does with an identitytoken
                let mut form = Url::parse("form:").map_err(|_| unusable_realm())?;
                {
                    let mut pairs = form.query_pairs_mut();
                    pairs
                        .append_pair("grant_type", "refresh_token")
                        .append_pair("client_id", OAUTH_CLIENT_ID);
                    if let Some(service) = service {
                        pairs.append_pair("service", service);
                    }
                    if let Some(scope) = &scope {
                        pairs.append_pair("scope", scope);
                    }
                    pairs.append_pair("refresh_token", refresh_token);
                }
                let mut request = Request::new(Method::POST, realm_url);
                request.headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                request.body = Some(Bytes::from(form.query().unwrap_or_default().to_string()));
                (request, None)
            }
            _ => {
                let mut url = realm_url;
                {
                    let mut pairs = url.query_pairs_mut();
                    if let Some(service) = service {
                        pairs.append_pair("service", service);
                    }
                    if let Some(scope) = &scope {
                        pairs.append_pair("scope", scope);
                    }
                    if let Some(Credentials::Basic { username, .. }) = credentials {
                        pairs.append_pair("account", username);
                    }
                }
                let authorization = match credentials {
                    Some(Credentials::Basic { username, password }) => {
                        Some(basic_authorization(username, password))
                    }
                    _ => None,
                };
                (Request::new(Method::GET, url), authorization)
            }
        };
        let response = self
            .send_following_redirects(
                &request,
                authorization.as_ref().map(|a| &a.header),
                &realm_origin,
            )
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(match credentials {
                    Some(c) => Error::CredentialsRejected {
                        host: target.host.clone(),
                        repository: target.repository.clone(),
                        username: c.username().to_string(),
                    },
                    None => Error::AuthenticationRequired {
                        host: target.host.clone(),
                        repository: target.repository.clone(),
                    },
                });
            }
            StatusCode::FORBIDDEN => {
                return Err(Error::Forbidden {
                    host: target.host.clone(),
                    repository: target.repository.clone(),
                    action: target.scope.action(),
                });
            }
            _ => return Err(unexpected_status(&request, response).await),
        }
        let body = read_bounded(
            response,
            MAX_TOKEN_ANSWER_BYTES,
            &realm_host,
            "token answer",
            self.timeout(),
        )
        .await?;
        serde_json::from_slice(&body).map_err(|e| Error::InvalidJson {
            host: realm_host,
            what: "token answer".into(),
            detail: e.to_string(),
        })
    }

    /// Sends `request` and follows its redirects, at most [`MAX_REDIRECTS`]. `authorization`
    /// goes only to URLs of `origin`'s scheme, host and port: a registry's redirect to object
    /// storage (or anywhere else) is followed without it. A redirect from HTTPS to plain HTTP
    /// is refused unless its host is allowed plain HTTP. Each hop has the request timeout and
    /// retries of [`Client::send_with_retries`]; the caller bounds the final body.
    pub(crate) async fn send_following_redirects(
        &self,
        request: &Request,
        authorization: Option<&HeaderValue>,
        origin: &Url,
    ) -> Result<Response, Error> {
        let mut redirected: Option<Request> = None;
        for hop in 0..=MAX_REDIRECTS {
            let current = redirected.as_ref().unwrap_or(request);
            let credentials = authorization.filter(|_| same_origin(&current.url, origin));
            let response = self.send_with_retries(current, credentials).await?;
            if !is_redirect(response.status()) {
                return Ok(response);
            }
            let host = authority(&current.url);
            if hop == MAX_REDIRECTS {
                return Err(Error::Transport {
                    host,
                    detail: format!(
                        "more than {MAX_REDIRECTS} redirects for {} {} (the last to {})",
                        request.method,
                        request.url.path(),
                        display_url(&current.url)
                    ),
                });
            }
            let next = redirect_target(&current.url, response.headers()).ok_or_else(|| {
                Error::Transport {
                    host: host.clone(),
                    detail: format!(
                        "it answered {} to {} {} with a missing or unusable Location",
                        response.status().as_u16(),
                        current.method,
                        current.url.path()
                    ),
                }
            })?;
            if current.url.scheme() == "https"
                && next.scheme() == "http"
                && !is_insecure(&self.inner.options.insecure_hosts, &authority(&next))
            {
                return Err(Error::InsecureRedirect {
                    host,
                    to: display_url(&next),
                    to_host: authority(&next),
                });
            }
            let next_request = current.redirected(response.status(), next);
            redirected = Some(next_request);
        }
        // the loop returns on its last hop
        Err(Error::Transport {
            host: authority(&request.url),
            detail: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Sends `request` once, and again after 429, 5xx or a dropped connection, up to
    /// `max_retries` more times with exponential backoff (or the server's `Retry-After`).
    pub(crate) async fn send_with_retries(
        &self,
        request: &Request,
        authorization: Option<&HeaderValue>,
    ) -> Result<Response, Error> {
        let host = authority(&request.url);
        let max_retries = self.inner.options.max_retries;
        let mut tries: u32 = 0;
        loop {
            tries += 1;
            // What answered 429 is left alone until its Retry-After (or the backoff) has
            // passed, by every request of this client: the repository it answered for, or the
            // whole host when the limit is the host's (see `RateLimitScope`).
            let scope = RateLimitScope::of_request(&host, &request.url);
            let wait = self.with_shared(|s| {
                let now = Instant::now();
                let mut wait = None;
                for key in [scope.host_key(), scope.key()] {
                    match s.rate_limited_until.get(&key) {
                        Some(until) if *until > now => {
                            wait = wait.max(Some(*until - now));
                        }
                        Some(_) => {
                            s.rate_limited_until.remove(&key);
                        }
                        None => {}
                    }
                }
                wait
            });
            if let Some(wait) = wait {
                tokio::time::sleep(wait.min(MAX_RETRY_DELAY)).await;
            }
            let mut builder = self
                .inner
                .http
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone());
            if let Some(authorization) = authorization {
                builder = builder.header(AUTHORIZATION, authorization.clone());
            }
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let (last_failure, delay) = match builder.send().await {
                Ok(response) => {
                    let status = response.status();
                    self.with_shared(|s| s.stats.record(&host, status.as_u16()));
                    if !is_retryable(status) {
                        return Ok(response);
                    }
                    let delay = retry_after(response.headers()).unwrap_or_else(|| backoff(tries));
                    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                        let until = Instant::now() + delay;
                        let key = if limit_is_host_wide(response.headers()) {
                            scope.host_key()
                        } else {
                            scope.key()
                        };
                        self.with_shared(|s| {
                            let entry = s.rate_limited_until.entry(key).or_insert(until);
                            *entry = (*entry).max(until);
                        });
                        (status.to_string(), Duration::ZERO)
                    } else {
                        (status.to_string(), delay)
                    }
                }
                Err(error) => {
                    self.with_shared(|s| s.stats.record(&host, RequestCount::NO_RESPONSE));
                    if !is_dropped_connection(&error) {
                        return Err(classify(&host, self.timeout(), &error));
                    }
                    (
                        format!("connection dropped: {}", innermost_message(&error)),
                        backoff(tries),
                    )
                }
            };
            if tries > max_retries {
                return Err(Error::RetriesExhausted {
                    host,
                    method: request.method.to_string(),
                    path: request.url.path().to_string(),
                    last_failure,
                    tries,
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    fn timeout(&self) -> Duration {
        self.inner.options.request_timeout
    }
}

fn unauthorized(target: &Target, authorization: Option<&Authorization>) -> Error {
    match authorization.and_then(|a| a.username.clone()) {
        Some(username) => Error::CredentialsRejected {
            host: target.host.clone(),
            repository: target.repository.clone(),
            username,
        },
        None => Error::AuthenticationRequired {
            host: target.host.clone(),
            repository: target.repository.clone(),
        },
    }
}

fn basic_authorization(username: &str, password: &str) -> Authorization {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    // base64 is always a valid header value
    let mut header =
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap_or(HeaderValue::from_static(""));
    header.set_sensitive(true);
    Authorization {
        header,
        username: Some(username.to_string()),
        is_basic: true,
    }
}

fn sensitive_header(value: &str, host: &str) -> Result<HeaderValue, Error> {
    let mut header =
        HeaderValue::from_str(value).map_err(|_| Error::UnsupportedAuthentication {
            host: host.to_string(),
            detail: "its token service sent a token with characters not allowed in a header".into(),
        })?;
    header.set_sensitive(true);
    Ok(header)
}

/// `host[:port]` of a URL, as written in image references (no port when it is the default).
pub(crate) fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Whether two URLs have the same origin: scheme, host and port.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The statuses that send the client elsewhere.
fn is_redirect(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// Where a redirect points: its `Location`, relative to `from`; only http(s) URLs.
fn redirect_target(from: &Url, headers: &HeaderMap) -> Option<Url> {
    let location = headers.get(LOCATION)?.to_str().ok()?.trim();
    if location.is_empty() {
        return None;
    }
    let next = from.join(location).ok()?;
    matches!(next.scheme(), "http" | "https").then_some(next)
}

/// `scheme://host[:port]/path` of a URL, for messages: the query is left out, since signed
/// storage URLs carry their signature there.
fn display_url(url: &Url) -> String {
    format!("{}://{}{}", url.scheme(), authority(url), url.path())
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// 200 ms, 400 ms, 800 ms, … for the 1st, 2nd, 3rd try; never more than [`MAX_RETRY_DELAY`].
fn backoff(tries: u32) -> Duration {
    let factor = 2u32.saturating_pow(tries.saturating_sub(1));
    FIRST_RETRY_DELAY
        .saturating_mul(factor)
        .min(MAX_RETRY_DELAY)
}

/// What a 429 holds back: the repository a request was for (`/v2/NAME/manifests/…`,
/// `/v2/NAME/blobs/…`, `/v2/NAME/tags/…`), or the whole host for any other path (token
/// services, `/v2/`, the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RateLimitScope {
    host: String,
    repository: Option<String>,
}

impl RateLimitScope {
    fn of_request(host: &str, url: &Url) -> RateLimitScope {
        let path = url.path();
        let repository = path.strip_prefix("/v2/").and_then(|rest| {
            ["/manifests/", "/blobs/", "/tags/"]
                .iter()
                .filter_map(|marker| rest.rfind(marker).map(|at| &rest[..at]))
                .max_by_key(|name| name.len())
                .filter(|name| !name.is_empty())
                .map(str::to_string)
        });
        RateLimitScope {
            host: host.to_string(),
            repository,
        }
    }

    /// The key of the whole host.
    fn host_key(&self) -> String {
        self.host.clone()
    }

    /// The key of what this request was for.
    fn key(&self) -> String {
        match &self.repository {
            Some(repository) => format!("{}/{repository}", self.host),
            None => self.host.clone(),
        }
    }
}

/// Whether a 429 says its limit is the host's, not the repository's: Docker Hub (and registries
/// that copy it) announce a per-client pull quota with `RateLimit-Limit`/`RateLimit-Remaining`,
/// which every repository shares.
fn limit_is_host_wide(headers: &HeaderMap) -> bool {
    headers.contains_key("ratelimit-limit") || headers.contains_key("ratelimit-remaining")
}

/// `Retry-After` in seconds, capped at [`MAX_RETRY_DELAY`]. HTTP dates are ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_DELAY))
}

/// Reads a response body of at most `limit` bytes, checking `Content-Length` first and counting
/// while streaming (a server may lie or send no length).
pub(crate) async fn read_bounded(
    mut response: Response,
    limit: usize,
    host: &str,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let too_large = || Error::TooLarge {
        host: host.to_string(),
        what: what.to_string(),
        limit: limit as u64,
    };
    let announced = response.content_length();
    if announced.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(announced.map_or(0, |len| len as usize));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            // Not a timeout or TLS failure: the body was cut short.
            Err(error) => {
                return Err(match classify(host, timeout, &error) {
                    Error::Transport { host, detail } => Error::Truncated {
                        host,
                        what: what.to_string(),
                        received: body.len() as u64,
                        announced,
                        detail,
                    },
                    other => other,
                });
            }
        }
    }
}

/// An [`Error::UnexpectedStatus`] quoting the start of the body.
pub(crate) async fn unexpected_status(request: &Request, response: Response) -> Error {
    let host = authority(&request.url);
    let status = response.status().as_u16();
    let mut excerpt = Vec::new();
    let mut response = response;
    while let Ok(Some(chunk)) = response.chunk().await {
        excerpt.extend_from_slice(&chunk);
        if excerpt.len() >= ERROR_BODY_EXCERPT_BYTES {
            excerpt.truncate(ERROR_BODY_EXCERPT_BYTES);
            break;
        }
    }
    let body = String::from_utf8_lossy(&excerpt).trim().to_string();
    Error::UnexpectedStatus {
        host,
        method: request.method.to_string(),
        path: request.url.path().to_string(),
        status,
        body: if body.is_empty() {
            "(empty body)".into()
        } else {
            body
        },
    }
}

/// The errors in `error`'s chain, including the ones an `io::Error` wraps (whose `source()`
/// skips the wrapped error itself).
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        out.push(cause);
        // io::Error::source() skips the error it wraps (often another io::Error): step into it
        next = match cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => cause.source(),
        };
    }
    out
}

fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    causes(error)
        .into_iter()
        .find_map(|c| c.downcast_ref::<rustls::Error>())
}

fn find_io_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a io::Error> {
    causes(error)
        .into_iter()
        .find_map(|c| c.downcast_ref::<io::Error>())
}

/// The deepest message in the chain, without the `(os error N)` suffix and lower-cased first
/// letter: "connection refused".
fn innermost_message(error: &(dyn StdError + 'static)) -> String {
    let message = causes(error)
        .last()
        .map_or_else(|| error.to_string(), |c| c.to_string());
    let message = match message.find(" (os error ") {
        Some(i) => message[..i].to_string(),
        None => message,
    };
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => message,
    }
}

/// A connection that broke mid-request: worth retrying.
fn is_dropped_connection(error: &reqwest::Error) -> bool {
    if error.is_timeout() || find_rustls_error(error).is_some() {
        return false;
    }
    let dropped_io = find_io_error(error).is_some_and(|io| {
        matches!(
            io.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof
        )
    });
    // hyper's IncompleteMessage carries no io::Error; its message is stable
    dropped_io
        || causes(error).iter().any(|c| {
            c.to_string()
                .contains("connection closed before message completed")
        })
}

/// Turns a transport failure into the [`Error`] that says what to do about it.
pub(crate) fn classify(host: &str, timeout: Duration, error: &reqwest::Error) -> Error {
    let host = host.to_string();
    if let Some(tls) = find_rustls_error(error) {
        return classify_tls(host, tls);
    }
    let timed_out = find_io_error(error).is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
    if error.is_timeout() || timed_out {
        return Error::Timeout { host, timeout };
    }
    if error.is_connect() {
        return Error::Connect {
            host,
            detail: innermost_message(error),
        };
    }
    Error::Transport {
        host,
        detail: innermost_message(error),
    }
}

fn classify_tls(host: String, tls: &rustls::Error) -> Error {
    use rustls::CertificateError as C;
    let detail = tls.to_string();
    match tls {
        rustls::Error::InvalidCertificate(
            C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension | C::BadEncoding,
        ) => Error::UntrustedCertificate { host, detail },
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => Error::CertificateNameMismatch { host, detail },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            Error::PlainHttpServer { host, detail }
        }
        _ => Error::Tls { host, detail },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(40), MAX_RETRY_DELAY);
    }

    #[test]
    fn a_429_holds_back_the_repository_it_answered_unless_the_limit_is_the_hosts() {
        let scope =
            |url: &str| RateLimitScope::of_request("r.example", &Url::parse(url).unwrap()).key();
        assert_eq!(
            scope("https://r.example/v2/team/app/manifests/v1"),
            "r.example/team/app"
        );
        assert_eq!(
            scope("https://r.example/v2/team/app/blobs/sha256:ab"),
            "r.example/team/app"
        );
        assert_eq!(
            scope("https://r.example/v2/a/manifests/x/manifests/y"),
            "r.example/a/manifests/x"
        );
        assert_eq!(scope("https://r.example/v2/app/tags/list"), "r.example/app");
        assert_eq!(scope("https://r.example/v2/"), "r.example");
        assert_eq!(scope("https://r.example/token?scope=x"), "r.example");
        let mut h = HeaderMap::new();
        assert!(!limit_is_host_wide(&h));
        h.insert("RateLimit-Limit", HeaderValue::from_static("100;w=21600"));
        assert!(limit_is_host_wide(&h));
    }

    #[test]
    fn retry_after_seconds_are_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_DELAY));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn authority_keeps_explicit_ports_only() {
        let url = |s| Url::parse(s).unwrap();
        assert_eq!(
            authority(&url("https://127.0.0.1:5000/v2/")),
            "127.0.0.1:5000"
        );
        assert_eq!(authority(&url("https://ghcr.io:443/v2/")), "ghcr.io");
        assert_eq!(authority(&url("http://[::1]:5000/v2/")), "[::1]:5000");
        assert!(same_origin(
            &url("https://ghcr.io/a"),
            &url("https://ghcr.io:443/b")
        ));
        assert!(!same_origin(
            &url("https://ghcr.io/a"),
            &url("https://storage.ghcr.io/b")
        ));
        assert!(!same_origin(
            &url("http://r:5000/a"),
            &url("http://r:5001/b")
        ));
        assert!(
            !same_origin(&url("http://r:5000/a"), &url("https://r:5000/a")),
            "another scheme is another origin"
        );
    }

    #[test]
    fn only_429_and_5xx_are_retried() {
        assert!(is_retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(is_retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_retryable(StatusCode::INTERNAL_SERVER_ERROR));
        for s in [
            StatusCode::NOT_FOUND,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::BAD_REQUEST,
        ] {
            assert!(!is_retryable(s), "{s}");
        }
    }

    #[test]
    fn tls_errors_map_to_hints() {
        let e = classify_tls(
            "r:1".into(),
            &rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(matches!(e, Error::UntrustedCertificate { .. }));
        assert!(
            e.to_string()
                .contains("pass its CA with --registry-ca FILE"),
            "{e}"
        );
        let e = classify_tls(
            "r:1".into(),
            &rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        assert!(
            e.to_string()
                .ends_with("if r:1 serves plain HTTP, pass --allow-insecure-registry r:1"),
            "{e}"
        );
        let e = classify_tls(
            "r:1".into(),
            &rustls::Error::InvalidCertificate(rustls::CertificateError::Expired),
        );
        assert!(matches!(e, Error::Tls { .. }), "{e}");
    }
}
