//! The pure half of registry authentication: `WWW-Authenticate` challenges, token scopes, token
//! answers and the token cache. The client does the requests; this module only reads and keeps.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a registry asks for in a 401's `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// HTTP Basic: send the user name and password with every request.
    Basic,
    /// The distribution token flow: fetch a bearer token from `realm`.
    Bearer {
        /// The token endpoint URL.
        realm: String,
        /// The `service` parameter to pass on.
        service: Option<String>,
        /// The scope the registry said it needs, if it said.
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value. A header may carry several challenges
/// (`Basic realm="x", Bearer realm="y"`); Bearer is preferred. Unknown schemes give `None`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut challenges: Vec<(String, HashMap<String, String>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        if rest.is_empty() {
            break;
        }
        let token_end = rest.find([' ', ',', '=']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = &rest[token_end..];
        if let Some(value_part) = after.strip_prefix('=') {
            // a parameter of the current challenge
            let (value, remaining) = read_param_value(value_part);
            if let Some((_, params)) = challenges.last_mut() {
                params.insert(token.to_ascii_lowercase(), value);
            }
            rest = remaining;
        } else {
            // a new auth scheme
            challenges.push((token.to_ascii_lowercase(), HashMap::new()));
            rest = after;
        }
    }
    let bearer = challenges.iter().find(|(scheme, _)| scheme == "bearer");
    if let Some((_, params)) = bearer {
        let realm = params.get("realm").filter(|r| !r.is_empty())?.clone();
        return Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    challenges
        .iter()
        .any(|(scheme, _)| scheme == "basic")
        .then_some(Challenge::Basic)
}

/// Reads a quoted string (with `\` escapes) or a bare token; returns it and what follows.
fn read_param_value(s: &str) -> (String, &str) {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find([',', ' ']).unwrap_or(s.len());
        return (s[..end].to_string(), &s[end..]);
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '"' => return (value, &quoted[i + 1..]),
            _ => value.push(c),
        }
    }
    (value, "")
}

/// The access a request needs: `repository:<name>:pull` or `repository:<name>:pull,push`,
/// or nothing for the `/v2/` version check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    repository: Option<String>,
    push: bool,
}

impl Scope {
    /// Pull access to `repository`.
    pub(crate) fn pull(repository: &str) -> Scope {
        Scope {
            repository: Some(repository.to_string()),
            push: false,
        }
    }

    /// Pull and push access to `repository`.
    pub(crate) fn push(repository: &str) -> Scope {
        Scope {
            repository: Some(repository.to_string()),
            push: true,
        }
    }

    /// No repository: the registry's `/v2/` endpoint.
    pub(crate) fn registry() -> Scope {
        Scope {
            repository: None,
            push: false,
        }
    }

    /// The `scope` parameter for the token endpoint, if any.
    pub(crate) fn token_scope(&self) -> Option<String> {
        let repository = self.repository.as_ref()?;
        let actions = if self.push { "pull,push" } else { "pull" };
        Some(format!("repository:{repository}:{actions}"))
    }

    /// `pull` or `push`, for messages.
    pub(crate) fn action(&self) -> &'static str {
        if self.push { "push" } else { "pull" }
    }
}

/// A token endpoint's answer. Docker Hub sends both fields, others one of them.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// How long a token lives when the answer does not say (the distribution token spec's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// How long before its expiry a token stops being reused.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// The longest a token is reused, whatever its service says.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(86_400);

impl TokenAnswer {
    /// The bearer token (`token` preferred over `access_token`), if there is a non-empty one.
    pub(crate) fn bearer(&self) -> Option<&str> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(self.access_token.as_deref().filter(|t| !t.is_empty()))
    }

    /// How long the token may be reused from now, leaving a safety margin.
    pub(crate) fn reuse_for(&self) -> Duration {
        // A token service's word on the lifetime is capped: a day at most (and `Instant +` a
        // huge value would overflow).
        let lifetime = self
            .expires_in
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs)
            .min(MAX_TOKEN_LIFETIME);
        if lifetime > TOKEN_EXPIRY_MARGIN * 2 {
            lifetime - TOKEN_EXPIRY_MARGIN
        } else {
            lifetime / 2
        }
    }
}

/// Bearer tokens per (registry host, scope), each with the instant it stops being reused.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    tokens: HashMap<(String, Scope), (String, Instant)>,
}

impl TokenCache {
    /// A token for `host` and `scope` that is still fresh at `now`.
    pub(crate) fn get(&self, host: &str, scope: &Scope, now: Instant) -> Option<String> {
        let (token, until) = self.tokens.get(&(host.to_string(), scope.clone()))?;
        (now < *until).then(|| token.clone())
    }

    /// Keeps `token` for `host` and `scope` until `until`.
    pub(crate) fn insert(&mut self, host: &str, scope: &Scope, token: String, until: Instant) {
        self.tokens
            .insert((host.to_string(), scope.clone()), (token, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_bearer_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
    }

    #[test]
    fn scope_with_comma_inside_quotes_is_one_value() {
        let c = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token", scope="repository:a/b:pull,push", service="ghcr.io""#,
        );
        let Some(Challenge::Bearer { scope, service, .. }) = c else {
            panic!("{c:?}")
        };
        assert_eq!(scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(service.as_deref(), Some("ghcr.io"));
    }

    #[test]
    fn parses_basic_and_is_case_insensitive() {
        assert_eq!(
            parse_challenge(r#"Basic realm="sealgate-test""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge(r#"BEARER REALM="http://r/t""#),
            Some(Challenge::Bearer {
                realm: "http://r/t".into(),
                service: None,
                scope: None
            })
        );
    }

    #[test]
    fn prefers_bearer_among_several_challenges() {
        let c = parse_challenge(r#"Basic realm="x", Bearer realm="https://t/token",service=reg"#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://t/token".into(),
                service: Some("reg".into()),
                scope: None
            })
        );
    }

    #[test]
    fn escapes_and_unknown_schemes() {
        let c = parse_challenge(r#"Bearer realm="https://t/a\"b""#);
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://t/a\"b".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge(r#"Negotiate abc"#), None);
        assert_eq!(parse_challenge(""), None);
        assert_eq!(
            parse_challenge(r#"Bearer service="x""#),
            None,
            "bearer without a realm is unusable"
        );
    }

    #[test]
    fn scopes_read_as_the_token_spec_says() {
        assert_eq!(
            Scope::pull("library/nginx").token_scope().as_deref(),
            Some("repository:library/nginx:pull")
        );
        assert_eq!(
            Scope::push("app").token_scope().as_deref(),
            Some("repository:app:pull,push")
        );
        assert_eq!(Scope::registry().token_scope(), None);
    }

    #[test]
    fn token_answers_accept_either_field_and_default_lifetime() {
        let a: TokenAnswer = serde_json::from_str(r#"{"access_token":"x"}"#).unwrap();
        assert_eq!(a.bearer(), Some("x"));
        assert_eq!(a.reuse_for(), Duration::from_secs(50));
        let a: TokenAnswer =
            serde_json::from_str(r#"{"token":"t","access_token":"x","expires_in":300}"#).unwrap();
        assert_eq!(a.bearer(), Some("t"));
        assert_eq!(a.reuse_for(), Duration::from_secs(290));
        let a: TokenAnswer = serde_json::from_str(r#"{"token":"","expires_in":4}"#).unwrap();
        assert_eq!(a.bearer(), None);
        assert_eq!(a.reuse_for(), Duration::from_secs(2));
        // A lifetime that would overflow the clock is capped at a day.
        let a: TokenAnswer =
            serde_json::from_str(r#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        assert_eq!(a.reuse_for(), Duration::from_secs(86_400 - 10));
        assert!(
            std::time::Instant::now()
                .checked_add(a.reuse_for())
                .is_some()
        );
    }

    #[test]
    fn token_cache_expires() {
        let mut cache = TokenCache::default();
        let now = Instant::now();
        let scope = Scope::pull("app");
        cache.insert("r:5000", &scope, "tok".into(), now + Duration::from_secs(5));
        assert_eq!(cache.get("r:5000", &scope, now).as_deref(), Some("tok"));
        assert_eq!(cache.get("r:5000", &Scope::push("app"), now), None);
        assert_eq!(
            cache.get("r:5000", &scope, now + Duration::from_secs(6)),
            None
        );
    }
}
