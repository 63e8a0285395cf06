//! Attestations as cosign stores them: DSSE envelopes (one per layer of the `.att` image)
//! holding in-toto Statements, signed over DSSE's pre-authentication encoding.
//!
//! [`Envelope::parse`] reads a layer, [`Envelope::verify`] checks its signatures over
//! [`pae`] (`DSSEv1 <len(type)> <type> <len(payload)> <payload>`, never over the JSON), and
//! [`Statement::parse`] reads the signed payload; [`Statement::subject_for`] finds the subject an
//! image digest is. [`Envelope::sign`] and [`statement`] make what `cosign attest` makes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use ring::rand::SecureRandom;
use serde_json::{Map, Value};

use super::payload::go_json_string;
use crate::crypto::key::{KeyError, PublicKey, SignatureHash, SigningKey};
use crate::image::digest::Digest;

/// Media type of a `.att` layer: the DSSE envelope JSON (cosign's `DssePayloadType`).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The DSSE `payloadType` of an in-toto Statement (cosign's `IntotoPayloadType`).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Layer annotation naming the statement's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// `_type` of the in-toto Statements cosign writes.
pub const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// cosign's `custom` predicate type (`{Data, Timestamp}`).
pub const COSIGN_CUSTOM_PREDICATE: &str = "https://cosign.sigstore.dev/attestation/v1";

/// DSSE's pre-authentication encoding: what a DSSE signature signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeSignature {
    /// `keyid` (cosign leaves it empty).
    pub keyid: String,
    /// The signature bytes (`sig`, base64 in the JSON).
    pub sig: Vec<u8>,
}

/// A DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `payloadType`.
    pub payload_type: String,
    /// The payload, decoded.
    pub payload: Vec<u8>,
    /// The signatures.
    pub signatures: Vec<EnvelopeSignature>,
}

/// Why a layer is not a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not a JSON object with the envelope's fields.
    #[error("not a DSSE envelope: {0}")]
    Malformed(String),
    /// `payload` is not base64.
    #[error("the DSSE payload is not base64")]
    PayloadEncoding,
    /// A `sig` is not base64.
    #[error("DSSE signature {0} is not base64")]
    SignatureEncoding(usize),
    /// No signatures.
    #[error("the DSSE envelope has no signatures")]
    Unsigned,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEnvelope {
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<RawSignature>,
}

#[derive(serde::Deserialize)]
struct RawSignature {
    #[serde(default)]
    keyid: String,
    sig: String,
}

/// DSSE asks verifiers to accept both base64 alphabets, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

impl Envelope {
    /// Reads an envelope (field order and a missing `keyid` do not matter).
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let raw: RawEnvelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        let payload = decode_base64(&raw.payload).ok_or(EnvelopeError::PayloadEncoding)?;
        if raw.signatures.is_empty() {
            return Err(EnvelopeError::Unsigned);
        }
        let signatures = raw
            .signatures
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(EnvelopeSignature {
                    keyid: s.keyid,
                    sig: decode_base64(&s.sig).ok_or(EnvelopeError::SignatureEncoding(i + 1))?,
                })
            })
            .collect::<Result<Vec<_>, EnvelopeError>>()?;
        Ok(Envelope {
            payload_type: raw.payload_type,
            payload,
            signatures,
        })
    }

    /// What the signatures sign.
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }

    /// The index of the first signature that verifies with `key` over the PAE, if one does; an
    /// error when the key cannot check such signatures at all.
    pub fn verify(&self, key: &PublicKey, hash: SignatureHash) -> Result<Option<usize>, KeyError> {
        let message = self.pae();
        for (i, s) in self.signatures.iter().enumerate() {
            if key.verify(hash, &message, &s.sig)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// An envelope of `payload` signed with `key`, as `cosign attest --key` makes it.
    pub fn sign(
        key: &SigningKey,
        rng: &dyn SecureRandom,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<Envelope, KeyError> {
        let sig = key.sign(rng, &pae(payload_type, payload))?;
        Ok(Envelope {
            payload_type: payload_type.to_string(),
            payload: payload.to_vec(),
            signatures: vec![EnvelopeSignature {
                keyid: String::new(),
                sig,
            }],
        })
    }

    /// The JSON cosign v3 writes (Go's `json.Marshal` of the protobuf envelope: `payload`,
    /// `payloadType`, then `signatures` with an empty `keyid` left out).
    pub fn to_json(&self) -> Vec<u8> {
        let signatures: Vec<String> = self
            .signatures
            .iter()
            .map(|s| {
                let sig = go_json_string(&STANDARD.encode(&s.sig));
                if s.keyid.is_empty() {
                    format!(r#"{{"sig":{sig}}}"#)
                } else {
                    format!(r#"{{"sig":{sig},"keyid":{}}}"#, go_json_string(&s.keyid))
                }
            })
            .collect();
        format!(
            r#"{{"payload":{},"payloadType":{},"signatures":[{}]}}"#,
            go_json_string(&STANDARD.encode(&self.payload)),
            go_json_string(&self.payload_type),
            signatures.join(",")
        )
        .into_bytes()
    }
}

/// One `subject` of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `name`.
    pub name: Option<String>,
    /// `digest.sha256`, as written.
    pub sha256: Option<String>,
    /// `annotations` (string values only).
    pub annotations: Map<String, Value>,
}

/// An in-toto Statement, as the verifier reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `_type`.
    pub statement_type: String,
    /// `predicateType`.
    pub predicate_type: String,
    /// `subject`.
    pub subjects: Vec<Subject>,
    /// `predicate` (`null` when absent).
    pub predicate: Value,
    /// The whole statement as JSON, with Kyverno's `type` member (the predicate type) added.
    pub value: Map<String, Value>,
}

/// Why a payload is not an in-toto Statement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    /// Not a JSON object.
    #[error("the statement is not a JSON object: {0}")]
    NotJson(String),
    /// A required member is missing or of the wrong type.
    #[error("the statement has no {0}")]
    Missing(&'static str),
    /// A subject is not an object with a `digest` map.
    #[error("subject {0} of the statement is not an object with a digest")]
    BadSubject(usize),
}

impl Statement {
    /// Reads a statement from the envelope's payload.
    pub fn parse(bytes: &[u8]) -> Result<Statement, StatementError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| StatementError::NotJson(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(StatementError::NotJson("not an object".into()));
        };
        let predicate_type = map
            .get("predicateType")
            .and_then(Value::as_str)
            .ok_or(StatementError::Missing("predicateType"))?
            .to_string();
        let statement_type = map
            .get("_type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let subjects = map
            .get("subject")
            .and_then(Value::as_array)
            .ok_or(StatementError::Missing("subject list"))?
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let s = s.as_object().ok_or(StatementError::BadSubject(i + 1))?;
                let digest = s
                    .get("digest")
                    .and_then(Value::as_object)
                    .ok_or(StatementError::BadSubject(i + 1))?;
                Ok(Subject {
                    name: s.get("name").and_then(Value::as_str).map(str::to_string),
                    sha256: digest
                        .get("sha256")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    annotations: s
                        .get("annotations")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, StatementError>>()?;
        let predicate = map.get("predicate").cloned().unwrap_or(Value::Null);
        map.insert("type".into(), Value::String(predicate_type.clone()));
        Ok(Statement {
            statement_type,
            predicate_type,
            subjects,
            predicate,
            value: map,
        })
    }

    /// The subject whose `sha256` is `digest`'s (cosign's `IntotoSubjectClaimVerifier`).
    pub fn subject_for(&self, digest: &Digest) -> Option<&Subject> {
        if digest.algorithm().name() != "sha256" {
            return None;
        }
        self.subjects
            .iter()
            .find(|s| s.sha256.as_deref() == Some(digest.hex()))
    }
}

/// cosign's `--type` names (`pkg/cosign/attestation`, `options.PredicateTypeMap`) and the
/// predicate type each stands for.
pub const PREDICATE_TYPES: &[(&str, &str)] = &[
    ("custom", COSIGN_CUSTOM_PREDICATE),
    ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance02", "https://slsa.dev/provenance/v0.2"),
    ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
    ("spdx", "https://spdx.dev/Document"),
    ("spdxjson", "https://spdx.dev/Document"),
    ("cyclonedx", "https://cyclonedx.org/bom"),
    ("link", "https://in-toto.io/Link/v1"),
    ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
    ("openvex", "https://openvex.dev/ns"),
];

/// Why a statement cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredicateError {
    /// Neither one of cosign's names nor a URI.
    #[error(
        "invalid predicate type: {0} (one of slsaprovenance, slsaprovenance02, slsaprovenance1, link, spdx, spdxjson, cyclonedx, vuln, openvex, custom, or a URI)"
    )]
    UnknownType(String),
    /// The predicate must be a JSON object for this type.
    #[error("the predicate for type {predicate_type} must be a JSON object: {reason}")]
    NotAnObject {
        /// The predicate type.
        predicate_type: String,
        /// What is wrong.
        reason: String,
    },
}

/// The predicate type URI `cosign attest --type NAME` stands for: one of cosign's names, or a
/// URI as given (cosign's `ParsePredicateType`).
pub fn predicate_type_uri(name: &str) -> Result<&str, PredicateError> {
    if let Some((_, uri)) = PREDICATE_TYPES.iter().find(|(n, _)| *n == name) {
        return Ok(uri);
    }
    // Go's url.ParseRequestURI: an absolute URI (a scheme) or an absolute path.
    let scheme_ok = name.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if (scheme_ok || name.starts_with('/')) && !name.chars().any(char::is_whitespace) {
        Ok(name)
    } else {
        Err(PredicateError::UnknownType(name.to_string()))
    }
}

/// The in-toto Statement `cosign attest --type TYPE --predicate FILE` makes for the image
/// `repository@digest` (`Statement/v0.1`, one subject): `custom` wraps the file as
/// `{"Data": <text>, "Timestamp": <timestamp>}`, `spdx` keeps it as text, every other type
/// takes it as the JSON object it holds. `timestamp` is RFC 3339 (UTC).
pub fn statement(
    type_name: &str,
    predicate: &[u8],
    repository: &str,
    digest: &Digest,
    timestamp: &str,
) -> Result<Vec<u8>, PredicateError> {
    let predicate_type = predicate_type_uri(type_name)?;
    let body = if type_name == "custom" {
        format!(
            r#"{{"Data":{},"Timestamp":{}}}"#,
            go_json_string(&String::from_utf8_lossy(predicate)),
            go_json_string(timestamp)
        )
    } else if type_name == "spdx" {
        go_json_string(&String::from_utf8_lossy(predicate))
    } else {
        let parsed: Value =
            serde_json::from_slice(predicate).map_err(|e| PredicateError::NotAnObject {
                predicate_type: predicate_type.to_string(),
                reason: e.to_string(),
            })?;
        if !parsed.is_object() {
            return Err(PredicateError::NotAnObject {
                predicate_type: predicate_type.to_string(),
                reason: "it is not an object".into(),
            });
        }
        parsed.to_string()
    };
    Ok(format!(
        r#"{{"_type":{},"subject":[{{"name":{},"digest":{{"sha256":{}}}}}],"predicateType":{},"predicate":{body}}}"#,
        go_json_string(IN_TOTO_STATEMENT_V01),
        go_json_string(repository),
        go_json_string(digest.hex()),
        go_json_string(predicate_type),
    )
    .into_bytes())
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, &self.sha256) {
            (Some(n), Some(d)) => write!(f, "{n}@sha256:{d}"),
            (None, Some(d)) => write!(f, "sha256:{d}"),
            (Some(n), None) => f.write_str(n),
            (None, None) => f.write_str("(no sha256)"),
        }
    }
}

#[cfg(test)]
#[path = "dsse_tests.rs"]
mod tests;
