//! [`AuditToken`]: the bearer token `GET /audit` requires when the server is given one
//! (`sealgate serve --audit-token-file FILE`).
//!
//! The audit trail names every image, namespace and workload admitted or refused; a webhook port
//! is reachable by everything that can reach the API server's side of the network. With a
//! token, `GET /audit` answers only `Authorization: Bearer TOKEN`; the admission routes, health
//! and metrics are unaffected.

use std::path::Path;

use ring::digest::{SHA256, digest};

use super::AuditError;

/// The token, kept only as its SHA-256 so that comparing takes the same time whatever the
/// candidate (no early exit on the first differing byte, no length leak).
#[derive(Clone)]
pub struct AuditToken {
    sha256: [u8; 32],
}

impl std::fmt::Debug for AuditToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditToken(..)")
    }
}

/// Tokens shorter than this are refused: a guessable token protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

impl AuditToken {
    /// A token from its text (surrounding white space, such as a file's final newline, is not
    /// part of it).
    pub fn new(token: &str) -> Result<AuditToken, String> {
        let token = token.trim();
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token has {} characters, fewer than {MIN_TOKEN_LEN}; use a random one, e.g. `openssl rand -hex 32`",
                token.len()
            ));
        }
        if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(
                "the token contains white space or control characters; an HTTP header cannot carry it"
                    .into(),
            );
        }
        Ok(AuditToken {
            sha256: sha256(token.as_bytes()),
        })
    }

    /// The token in `path` (its whole content, trimmed).
    pub fn from_file(path: &Path) -> Result<AuditToken, AuditError> {
        let fail = |detail: String| AuditError::TokenFile {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        AuditToken::new(&text).map_err(fail)
    }

    /// Whether an `Authorization` header value carries this token (`Bearer TOKEN`, the scheme
    /// case-insensitive).
    pub fn admits(&self, authorization: Option<&[u8]>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, token)) = value.split_at_checked(7) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer ") {
            return false;
        }
        let candidate = sha256(token.trim_ascii());
        candidate
            .iter()
            .zip(self.sha256.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const TOKEN: &str = "0123456789abcdef0123";

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let token = AuditToken::new(&format!("{TOKEN}\n")).unwrap();
        assert!(token.admits(Some(format!("Bearer {TOKEN}").as_bytes())));
        assert!(token.admits(Some(format!("bearer {TOKEN}").as_bytes())));
        assert!(!token.admits(None));
        assert!(!token.admits(Some(b"")));
        assert!(!token.admits(Some(b"Bearer ")));
        assert!(!token.admits(Some(TOKEN.as_bytes())), "no scheme");
        assert!(!token.admits(Some(format!("Basic {TOKEN}").as_bytes())));
        assert!(!token.admits(Some(format!("Bearer {TOKEN}x").as_bytes())));
        assert!(!token.admits(Some(format!("Bearer {}", &TOKEN[1..]).as_bytes())));
    }

    #[test]
    fn short_empty_or_multi_word_tokens_are_refused_with_the_reason() {
        assert_eq!(AuditToken::new(" \n").unwrap_err(), "the token is empty");
        assert!(
            AuditToken::new("secret")
                .unwrap_err()
                .contains("fewer than 16")
        );
        assert!(
            AuditToken::new("0123456789 abcdef0123")
                .unwrap_err()
                .contains("white space")
        );
    }

    #[test]
    fn a_token_file_that_cannot_be_used_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let e = AuditToken::from_file(&missing).unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        let e = AuditToken::from_file(&short).unwrap_err().to_string();
        assert!(e.contains("short") && e.contains("fewer than 16"), "{e}");
        let good = dir.path().join("good");
        std::fs::write(&good, format!("{TOKEN}\n")).unwrap();
        let token = AuditToken::from_file(&good).unwrap();
        assert!(token.admits(Some(format!("Bearer {TOKEN}").as_bytes())));
    }
}
