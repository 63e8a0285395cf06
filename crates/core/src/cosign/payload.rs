//! The simple-signing payload cosign signs: which image digest, under which repository name.
//!
//! [`build`] writes exactly the bytes Go's `json.Marshal` writes for cosign's payload struct, so a
//! payload sealgate makes is indistinguishable from one cosign makes. [`parse`] reads one; only
//! `critical.image.docker-manifest-digest` is binding (cosign ignores `docker-reference`).

use std::collections::BTreeMap;

use crate::image::digest::Digest;

/// `critical.type` of an image signature payload.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// A parsed simple-signing payload.
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleSigning {
    /// `critical.identity.docker-reference`: the repository the signer named (not binding).
    pub docker_reference: Option<String>,
    /// `critical.image.docker-manifest-digest`: the signed image digest, as written.
    pub manifest_digest: String,
    /// `critical.type`.
    pub kind: Option<String>,
    /// `optional`: the signer's annotations (`-a key=value`), empty when `null`.
    pub optional: serde_json::Map<String, serde_json::Value>,
}

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON.
    #[error("the payload is not JSON: {0}")]
    NotJson(String),
    /// `critical.image.docker-manifest-digest` is missing or not a string.
    #[error("the payload has no critical.image.docker-manifest-digest")]
    MissingDigest,
}

/// The payload bytes cosign would sign for `digest` in repository `identity` (see
/// [`crate::ImageRef::cosign_identity`]), with optional annotations.
pub fn build(identity: &str, digest: &Digest, annotations: &BTreeMap<String, String>) -> Vec<u8> {
    let optional = if annotations.is_empty() {
        "null".to_string()
    } else {
        let fields: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{}:{}", go_json_string(k), go_json_string(v)))
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{}}},"image":{{"docker-manifest-digest":{}}},"type":{}}},"optional":{}}}"#,
        go_json_string(identity),
        go_json_string(&digest.to_string()),
        go_json_string(SIGNATURE_TYPE),
        optional
    )
    .into_bytes()
}

/// Reads a payload.
pub fn parse(bytes: &[u8]) -> Result<SimpleSigning, PayloadError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let critical = &v["critical"];
    let manifest_digest = critical["image"]["docker-manifest-digest"]
        .as_str()
        .ok_or(PayloadError::MissingDigest)?
        .to_string();
    Ok(SimpleSigning {
        docker_reference: critical["identity"]["docker-reference"]
            .as_str()
            .map(str::to_string),
        manifest_digest,
        kind: critical["type"].as_str().map(str::to_string),
        optional: v["optional"].as_object().cloned().unwrap_or_default(),
    })
}

/// A JSON string literal as Go's `encoding/json` writes it (HTML-safe escaping of `<`, `>`, `&`,
/// and U+2028/U+2029).
pub fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNAISSEUR_PAYLOAD: &[u8] = include_bytes!("../../testdata/connaisseur/payload.json");

    #[test]
    fn build_reproduces_a_real_cosign_payload_byte_for_byte() {
        let digest: Digest =
            "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee"
                .parse()
                .unwrap();
        let built = build(
            "index.docker.io/phbelitz/rekor-test",
            &digest,
            &BTreeMap::new(),
        );
        assert_eq!(built, CONNAISSEUR_PAYLOAD);
        assert_eq!(
            Digest::sha256_of(&built).to_string(),
            "sha256:897d9e862b4599b723442f36ed7b4cfd1628bb7656643c56855988cac161d065"
        );
    }

    #[test]
    fn annotations_are_sorted_and_html_escaped_like_go() {
        let digest = Digest::sha256_of(b"x");
        let mut a = BTreeMap::new();
        a.insert("team".to_string(), "sec<&>".to_string());
        a.insert("env".to_string(), "prod".to_string());
        let built = String::from_utf8(build("r/a", &digest, &a)).unwrap();
        assert!(
            built.ends_with(r#""optional":{"env":"prod","team":"sec\u003c\u0026\u003e"}}"#),
            "{built}"
        );
        let parsed = parse(built.as_bytes()).unwrap();
        assert_eq!(parsed.optional["team"], "sec<&>");
        assert_eq!(parsed.manifest_digest, digest.to_string());
        assert_eq!(parsed.kind.as_deref(), Some(SIGNATURE_TYPE));
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(parse(b"{"), Err(PayloadError::NotJson(_))));
        assert_eq!(
            parse(br#"{"critical":{}}"#),
            Err(PayloadError::MissingDigest)
        );
    }
}
