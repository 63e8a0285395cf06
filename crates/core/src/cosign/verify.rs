//! Checking the layers of a `.sig` image against a key.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::payload::{self, SimpleSigning};
use super::{Descriptor, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::crypto::key::{KeyError, PublicKey, SignatureHash};
use crate::image::digest::Digest;

/// One layer of a `.sig` image with its payload blob (already checked against the descriptor's
/// digest by whoever fetched it).
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureLayer {
    /// The layer descriptor from the `.sig` manifest, with its annotations.
    pub descriptor: Descriptor,
    /// The payload blob.
    pub payload: Vec<u8>,
}

/// The marker containers/image (podman, skopeo) puts before a cosign signature it stores on
/// disk.
const SIGSTORE_JSON_MARKER: &[u8] = b"\x00sigstore-json\n";

/// Why a containers/image signature file is not a signature layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureFileError {
    /// The file does not start with `\0sigstore-json\n`.
    #[error("not a containers/image sigstore signature: it does not start with \\0sigstore-json")]
    NoMarker,
    /// The JSON after the marker is not `{mimeType, payload, annotations}`.
    #[error("containers/image sigstore signature: {0}")]
    Json(String),
    /// The payload is not base64.
    #[error("containers/image sigstore signature: the payload is not base64 ({0})")]
    Payload(String),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigstoreJson {
    mime_type: String,
    payload: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl SignatureLayer {
    /// The layer a registry's `.sig` image would hold for a cosign signature as containers/image
    /// (podman, skopeo) stores it on disk: `\0sigstore-json\n` and then JSON `{mimeType,
    /// payload (base64), annotations}`.
    pub fn from_containers_image(file: &[u8]) -> Result<SignatureLayer, SignatureFileError> {
        let json = file
            .strip_prefix(SIGSTORE_JSON_MARKER)
            .ok_or(SignatureFileError::NoMarker)?;
        let parsed: SigstoreJson =
            serde_json::from_slice(json).map_err(|e| SignatureFileError::Json(e.to_string()))?;
        let payload = STANDARD
            .decode(parsed.payload.as_bytes())
            .map_err(|e| SignatureFileError::Payload(e.to_string()))?;
        let mut descriptor = Descriptor::of(&parsed.mime_type, &payload);
        descriptor.annotations = Some(parsed.annotations);
        Ok(SignatureLayer {
            descriptor,
            payload,
        })
    }
}

/// The signatures found for one image: where they were looked for and the layers found there.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureSet {
    /// Where the signatures were looked for, e.g. `registry.example/app:sha256-….sig`.
    pub location: String,
    /// The image digest the signatures must name.
    pub image_digest: Digest,
    /// The layers of the `.sig` image; empty when it does not exist.
    pub layers: Vec<SignatureLayer>,
}

/// Who made a verified signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// A public key, by its fingerprint (`sha256:` of the SubjectPublicKeyInfo).
    Key {
        /// The key fingerprint.
        fingerprint: String,
    },
    /// A certificate, by its subject DN.
    Certificate {
        /// The subject.
        subject: String,
    },
    /// A keyless (Fulcio) certificate, by the identity it certifies.
    Keyless {
        /// Its subject alternative names, joined with `, `.
        identity: String,
        /// Its OIDC issuer, if it names one.
        issuer: Option<String>,
    },
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Key { fingerprint } => write!(f, "key {fingerprint}"),
            Signer::Certificate { subject } => write!(f, "certificate {subject}"),
            Signer::Keyless {
                identity,
                issuer: Some(issuer),
            } => write!(f, "keyless {identity} (issuer {issuer})"),
            Signer::Keyless {
                identity,
                issuer: None,
            } => write!(f, "keyless {identity}"),
        }
    }
}

/// A signature that verified: the proof that an image digest was signed. Only this module makes
/// one.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSignature {
    layer_index: usize,
    payload_bytes: Vec<u8>,
    payload: SimpleSigning,
    digest: Digest,
    signer: Signer,
}

impl VerifiedSignature {
    /// Index of the layer in the `.sig` image.
    pub fn layer_index(&self) -> usize {
        self.layer_index
    }

    /// The exact payload bytes that were signed.
    pub fn payload_bytes(&self) -> &[u8] {
        &self.payload_bytes
    }

    /// The parsed payload.
    pub fn payload(&self) -> &SimpleSigning {
        &self.payload
    }

    /// The image digest the signature covers.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Who signed.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
}

/// What one layer amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerVerdict {
    /// A valid signature over this image by the key.
    Verified,
    /// The layer is not a simple-signing payload (another artifact type).
    NotSimpleSigning {
        /// Its media type.
        media_type: String,
    },
    /// The payload blob could not be fetched (missing, or over the size limit): the registry
    /// client leaves such a layer's payload empty, which no simple-signing payload is.
    PayloadUnavailable,
    /// No signature annotation on the layer.
    MissingSignature,
    /// The signature annotation is not base64.
    BadSignatureEncoding,
    /// The signature does not verify with the key: someone else signed, or it was altered.
    NotByKey,
    /// The signature verifies but the payload cannot be read.
    MalformedPayload(String),
    /// The signature verifies but covers another image digest.
    OtherDigest {
        /// The digest the payload names.
        signed: String,
    },
    /// The key cannot check this signature (e.g. an unsupported hash).
    Unusable(String),
}

impl fmt::Display for LayerVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerVerdict::Verified => f.write_str("verified"),
            LayerVerdict::NotSimpleSigning { media_type } => {
                write!(f, "not a simple-signing layer (media type {media_type})")
            }
            LayerVerdict::PayloadUnavailable => f.write_str(
                "its payload blob could not be fetched (missing from the registry, or over the 1 MiB limit)",
            ),
            LayerVerdict::MissingSignature => {
                write!(f, "malformed: no {SIGNATURE_ANNOTATION} annotation")
            }
            LayerVerdict::BadSignatureEncoding => {
                write!(
                    f,
                    "malformed: the {SIGNATURE_ANNOTATION} annotation is not base64"
                )
            }
            LayerVerdict::NotByKey => f.write_str("does not verify with the key"),
            LayerVerdict::MalformedPayload(e) => write!(f, "malformed payload: {e}"),
            LayerVerdict::OtherDigest { signed } => {
                write!(f, "signed by the key but for digest {signed}")
            }
            LayerVerdict::Unusable(e) => write!(f, "cannot be checked: {e}"),
        }
    }
}

/// The outcome of checking a [`SignatureSet`].
#[derive(Debug, Clone, PartialEq)]
pub enum Verification {
    /// At least one signature verified; all that did, in layer order.
    Verified(Vec<VerifiedSignature>),
    /// None did, and why.
    Failed(VerifyFailure),
}

/// Why no signature in a set verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The `.sig` image does not exist or has no layers.
    NoSignatures {
        /// Where sealgate looked.
        location: String,
    },
    /// Signatures exist and none verified; one verdict per layer.
    NoneVerified {
        /// Where they were found.
        location: String,
        /// The image digest they had to name.
        image_digest: Digest,
        /// What each layer amounted to.
        verdicts: Vec<LayerVerdict>,
    },
}

impl fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyFailure::NoSignatures { location } => {
                write!(f, "no signatures found at {location}")
            }
            VerifyFailure::NoneVerified {
                location,
                image_digest,
                verdicts,
            } => {
                let n = verdicts.len();
                let plural = if n == 1 { "signature" } else { "signatures" };
                let other_digest: Vec<&str> = verdicts
                    .iter()
                    .filter_map(|v| match v {
                        LayerVerdict::OtherDigest { signed } => Some(signed.as_str()),
                        _ => None,
                    })
                    .collect();
                if let Some(signed) = other_digest.first() {
                    return write!(
                        f,
                        "the key signed digest {signed}, not this image's digest {image_digest} (checked {n} {plural} at {location}; the tag may have moved since signing)"
                    );
                }
                let not_by_key = verdicts
                    .iter()
                    .filter(|v| **v == LayerVerdict::NotByKey)
                    .count();
                if not_by_key == n {
                    return write!(
                        f,
                        "none of {n} {plural} at {location} verifies with the key"
                    );
                }
                write!(
                    f,
                    "none of {n} {plural} at {location} verifies with the key: "
                )?;
                let parts: Vec<String> = verdicts
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("signature {}: {v}", i + 1))
                    .collect();
                f.write_str(&parts.join("; "))
            }
        }
    }
}

fn check_layer(
    layer: &SignatureLayer,
    key: &PublicKey,
    hash: SignatureHash,
    image_digest: &Digest,
) -> Result<SimpleSigning, LayerVerdict> {
    if layer.descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(LayerVerdict::NotSimpleSigning {
            media_type: layer.descriptor.media_type.clone(),
        });
    }
    if layer.payload.is_empty() {
        return Err(LayerVerdict::PayloadUnavailable);
    }
    let sig_b64 = layer
        .descriptor
        .annotation(SIGNATURE_ANNOTATION)
        .ok_or(LayerVerdict::MissingSignature)?;
    let sig = STANDARD
        .decode(sig_b64.trim())
        .map_err(|_| LayerVerdict::BadSignatureEncoding)?;
    match key.verify(hash, &layer.payload, &sig) {
        Ok(true) => {}
        Ok(false) => return Err(LayerVerdict::NotByKey),
        Err(KeyError::UnsupportedHash { algorithm, hash }) => {
            return Err(LayerVerdict::Unusable(format!(
                "{algorithm} keys cannot verify {hash} signatures"
            )));
        }
        Err(e) => return Err(LayerVerdict::Unusable(e.to_string())),
    }
    let parsed = payload::parse(&layer.payload)
        .map_err(|e| LayerVerdict::MalformedPayload(e.to_string()))?;
    if parsed.manifest_digest != image_digest.to_string() {
        return Err(LayerVerdict::OtherDigest {
            signed: parsed.manifest_digest,
        });
    }
    Ok(parsed)
}

/// Checks every layer of `set` against `key`: the signature over the exact payload bytes, then
/// that the payload names `set.image_digest`.
pub fn verify_with_key(set: &SignatureSet, key: &PublicKey, hash: SignatureHash) -> Verification {
    if set.layers.is_empty() {
        return Verification::Failed(VerifyFailure::NoSignatures {
            location: set.location.clone(),
        });
    }
    let mut verified = Vec::new();
    let mut verdicts = Vec::with_capacity(set.layers.len());
    for (i, layer) in set.layers.iter().enumerate() {
        match check_layer(layer, key, hash, &set.image_digest) {
            Ok(payload) => {
                verdicts.push(LayerVerdict::Verified);
                verified.push(VerifiedSignature {
                    layer_index: i,
                    payload_bytes: layer.payload.clone(),
                    payload,
                    digest: set.image_digest.clone(),
                    signer: Signer::Key {
                        fingerprint: key.fingerprint(),
                    },
                });
            }
            Err(v) => verdicts.push(v),
        }
    }
    if verified.is_empty() {
        Verification::Failed(VerifyFailure::NoneVerified {
            location: set.location.clone(),
            image_digest: set.image_digest.clone(),
            verdicts,
        })
    } else {
        Verification::Verified(verified)
    }
}

/// Whether `existing` is the same signature as `new` by `key`: the same payload, media type and
/// certificate annotations, and its signature verifies with `key` (ECDSA signatures are
/// randomised, so the signature bytes themselves differ between two signings). cosign's
/// duplicate detector applies the same test before appending a layer.
pub fn is_same_signature(existing: &Descriptor, new: &SignatureLayer, key: &PublicKey) -> bool {
    use super::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION};
    if existing.media_type != new.descriptor.media_type || existing.digest != new.descriptor.digest
    {
        return false;
    }
    for a in [CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION] {
        if existing.annotation(a) != new.descriptor.annotation(a) {
            return false;
        }
    }
    let Some(sig) = existing
        .annotation(SIGNATURE_ANNOTATION)
        .and_then(|s| STANDARD.decode(s.trim()).ok())
    else {
        return false;
    };
    key.verify(SignatureHash::Sha256, &new.payload, &sig)
        .unwrap_or(false)
}

/// The verified signatures whose payload `optional` map holds every `(key, value)` of
/// `required` (cosign `verify -a`, Kyverno `annotations`).
pub fn with_annotations<'a>(
    verified: &'a [VerifiedSignature],
    required: &[(String, String)],
) -> Vec<&'a VerifiedSignature> {
    verified
        .iter()
        .filter(|v| {
            required.iter().all(|(k, want)| {
                matches!(v.payload.optional.get(k), Some(serde_json::Value::String(got)) if got == want)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const CI_SIGNATURE: &[u8] = include_bytes!("../../testdata/containers-image/signature-1");
    const CI_MANIFEST: &[u8] = include_bytes!("../../testdata/containers-image/manifest.json");
    const CI_KEY: &str = include_str!("../../testdata/containers-image/cosign2.pub");
    const OTHER_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----";

    fn containers_image_layer() -> SignatureLayer {
        SignatureLayer::from_containers_image(CI_SIGNATURE).unwrap()
    }

    #[test]
    fn a_file_that_is_not_a_containers_image_signature_says_what_is_wrong() {
        assert_eq!(
            SignatureLayer::from_containers_image(b"{}"),
            Err(SignatureFileError::NoMarker)
        );
        let e = SignatureLayer::from_containers_image(b"\x00sigstore-json\n{\"payload\": 1}")
            .unwrap_err();
        assert!(matches!(e, SignatureFileError::Json(_)), "{e}");
        let e = SignatureLayer::from_containers_image(
            b"\x00sigstore-json\n{\"mimeType\": \"x\", \"payload\": \"***\"}",
        )
        .unwrap_err();
        assert!(matches!(e, SignatureFileError::Payload(_)), "{e}");
    }

    fn ci_set(layers: Vec<SignatureLayer>) -> SignatureSet {
        SignatureSet {
            location: "example/key-1:sha256-0489.sig".into(),
            image_digest: Digest::sha256_of(CI_MANIFEST),
            layers,
        }
    }

    #[test]
    fn real_key_based_cosign_signature_verifies_offline() {
        let key = PublicKey::from_pem(CI_KEY).unwrap();
        let set = ci_set(vec![containers_image_layer()]);
        let Verification::Verified(v) = verify_with_key(&set, &key, SignatureHash::Sha256) else {
            panic!("expected the real signature to verify");
        };
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].digest().to_string(), v[0].payload().manifest_digest);
        assert!(
            v[0].payload()
                .manifest_digest
                .starts_with("sha256:0489474d")
        );
        assert_eq!(
            v[0].signer(),
            &Signer::Key {
                fingerprint: key.fingerprint()
            }
        );
    }

    #[test]
    fn another_key_is_reported_as_not_by_key() {
        let key = PublicKey::from_pem(OTHER_KEY).unwrap();
        let set = ci_set(vec![containers_image_layer(), containers_image_layer()]);
        let Verification::Failed(f) = verify_with_key(&set, &key, SignatureHash::Sha256) else {
            panic!()
        };
        assert_eq!(
            f.to_string(),
            "none of 2 signatures at example/key-1:sha256-0489.sig verifies with the key"
        );
    }

    #[test]
    fn a_signature_for_another_digest_says_so() {
        let key = PublicKey::from_pem(CI_KEY).unwrap();
        let mut set = ci_set(vec![containers_image_layer()]);
        set.image_digest = Digest::sha256_of(b"another image");
        let Verification::Failed(f) = verify_with_key(&set, &key, SignatureHash::Sha256) else {
            panic!()
        };
        let msg = f.to_string();
        assert!(
            msg.starts_with("the key signed digest sha256:0489474d"),
            "{msg}"
        );
        assert!(msg.contains(&set.image_digest.to_string()), "{msg}");
    }

    #[test]
    fn tampered_payload_and_malformed_layers() {
        let key = PublicKey::from_pem(CI_KEY).unwrap();
        let mut tampered = containers_image_layer();
        tampered.payload.push(b' ');
        let mut no_sig = containers_image_layer();
        no_sig.descriptor.annotations = None;
        let mut bad_b64 = containers_image_layer();
        bad_b64
            .descriptor
            .annotations
            .as_mut()
            .unwrap()
            .insert(SIGNATURE_ANNOTATION.into(), "%%%".into());
        let mut other_type = containers_image_layer();
        other_type.descriptor.media_type = "application/vnd.dsse.envelope.v1+json".into();
        let set = ci_set(vec![tampered, no_sig, bad_b64, other_type]);
        let Verification::Failed(VerifyFailure::NoneVerified { verdicts, .. }) =
            verify_with_key(&set, &key, SignatureHash::Sha256)
        else {
            panic!()
        };
        assert_eq!(verdicts[0], LayerVerdict::NotByKey);
        assert_eq!(verdicts[1], LayerVerdict::MissingSignature);
        assert_eq!(verdicts[2], LayerVerdict::BadSignatureEncoding);
        assert!(matches!(verdicts[3], LayerVerdict::NotSimpleSigning { .. }));
    }

    #[test]
    fn same_signature_means_same_payload_and_key_not_same_bytes() {
        use crate::crypto::key::SigningKey;
        use ring::rand::SystemRandom;
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let other = SigningKey::generate(&rng).unwrap();
        let layer = |k: &SigningKey, payload: &[u8]| {
            let mut d = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, payload);
            let sig = STANDARD.encode(k.sign(&rng, payload).unwrap());
            d.annotations = Some(
                [(SIGNATURE_ANNOTATION.to_string(), sig)]
                    .into_iter()
                    .collect(),
            );
            SignatureLayer {
                descriptor: d,
                payload: payload.to_vec(),
            }
        };
        let first = layer(&key, b"p");
        let again = layer(&key, b"p");
        assert_ne!(
            first.descriptor.annotations, again.descriptor.annotations,
            "ECDSA is randomised"
        );
        assert!(is_same_signature(
            &first.descriptor,
            &again,
            key.public_key()
        ));
        assert!(!is_same_signature(
            &layer(&other, b"p").descriptor,
            &again,
            key.public_key()
        ));
        assert!(!is_same_signature(
            &layer(&key, b"q").descriptor,
            &again,
            key.public_key()
        ));
        let mut with_cert = again.clone();
        with_cert
            .descriptor
            .annotations
            .as_mut()
            .unwrap()
            .insert(super::super::CERTIFICATE_ANNOTATION.into(), "c".into());
        assert!(!is_same_signature(
            &first.descriptor,
            &with_cert,
            key.public_key()
        ));
    }

    #[test]
    fn annotations_filter_needs_every_pair() {
        use crate::crypto::key::SigningKey;
        use ring::rand::SystemRandom;
        let rng = SystemRandom::new();
        let key = SigningKey::generate(&rng).unwrap();
        let image_digest = Digest::sha256_of(b"image");
        let wanted: BTreeMap<String, String> = [("team".to_string(), "sec".to_string())]
            .into_iter()
            .collect();
        let payload = super::super::payload::build("r/app", &image_digest, &wanted);
        let mut d = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
        let sig = STANDARD.encode(key.sign(&rng, &payload).unwrap());
        d.annotations = Some(
            [(SIGNATURE_ANNOTATION.to_string(), sig)]
                .into_iter()
                .collect(),
        );
        let set = SignatureSet {
            location: "r/app:x.sig".into(),
            image_digest,
            layers: vec![SignatureLayer {
                descriptor: d,
                payload,
            }],
        };
        let Verification::Verified(v) =
            verify_with_key(&set, key.public_key(), SignatureHash::Sha256)
        else {
            panic!()
        };
        assert_eq!(with_annotations(&v, &[]).len(), 1);
        assert_eq!(
            with_annotations(&v, &[("team".into(), "sec".into())]).len(),
            1
        );
        assert_eq!(
            with_annotations(&v, &[("team".into(), "dev".into())]).len(),
            0
        );
        assert_eq!(
            with_annotations(
                &v,
                &[("team".into(), "sec".into()), ("env".into(), "x".into())]
            )
            .len(),
            0
        );
    }

    #[test]
    fn no_layers_is_no_signatures_with_the_location() {
        let key = PublicKey::from_pem(CI_KEY).unwrap();
        let Verification::Failed(f) = verify_with_key(&ci_set(vec![]), &key, SignatureHash::Sha256)
        else {
            panic!()
        };
        assert_eq!(
            f.to_string(),
            "no signatures found at example/key-1:sha256-0489.sig"
        );
    }
}
