//! Sigstore bundles (`application/vnd.dev.sigstore.bundle…`, v0.1 to v0.3), as cosign v3 stores
//! signatures and attestations: read ([`Bundle::parse`]) and their transparency-log proofs checked
//! offline ([`TlogEntry::verify_inclusion`]: the Merkle inclusion proof against the checkpoint's
//! root hash, and the checkpoint's signature by the log's key).
//!
//! The inclusion promise (SET) of an entry is the same signature cosign's legacy
//! `dev.sigstore.cosign/bundle` annotation carries: [`TlogEntry::legacy_rekor_bundle`] writes it
//! in that form, so [`crate::sigstore::rekor`] and [`crate::cosign::verify_attestation_bundle`]
//! check it (the SET over `{body, integratedTime, logID, logIndex}` with the entry's top-level
//! `logIndex`, not the shard-local `inclusionProof.logIndex`) and bind the entry's body to the
//! signature, statement and signer. Who may sign is the attestor's business
//! ([`crate::engine`]).
//!
//! Its RFC 3161 timestamps are read with the bundle: one that is not a DER timestamp response
//! with a SignedData token over a TSTInfo makes the bundle unreadable
//! ([`BundleError::Timestamp`]), as sigstore-python refuses it on load (sigstore-go only decodes
//! it while verifying, and drops it then). [`Bundle::verify_timestamps`] checks them against the
//! trusted root's timestamp authorities ([`crate::sigstore::rfc3161`]) and gives the verified
//! times and why the others do not verify; what a failure means is [`judge_timestamps`]'s.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::cosign::dsse::Envelope;
use crate::crypto::key::SignatureHash;
use crate::image::digest::{Digest, hex_encode};
use crate::sigstore::rfc3161::{
    MAX_TIMESTAMPS, SignedTimestamp, TimestampError, VerifiedTimestamp,
};
use crate::sigstore::trust::{LogKey, TimestampAuthority};
use crate::timestamp::{Rfc3339, UnixTime, unix_seconds};

/// Every Sigstore bundle media type starts with this (Kyverno keeps referrers whose
/// `artifactType` does, cosign those whose layer's media type does).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The media type cosign v3 writes.
pub const BUNDLE_V03_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of the in-toto statement `cosign sign` (v3) signs for an image.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The most bytes a bundle may have (Kyverno reads at most 10 MB of a referrer's layer).
pub const MAX_BUNDLE_BYTES: usize = 10 * 1024 * 1024;

/// A bundle's format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BundleVersion {
    /// `application/vnd.dev.sigstore.bundle+json;version=0.1`
    V01,
    /// `…;version=0.2`
    V02,
    /// `application/vnd.dev.sigstore.bundle.v0.3+json` (or `…+json;version=0.3`)
    V03,
}

impl BundleVersion {
    /// The version a media type names, if it is a bundle's.
    pub fn from_media_type(media_type: &str) -> Option<BundleVersion> {
        match media_type.trim() {
            "application/vnd.dev.sigstore.bundle+json;version=0.1" => Some(BundleVersion::V01),
            "application/vnd.dev.sigstore.bundle+json;version=0.2" => Some(BundleVersion::V02),
            "application/vnd.dev.sigstore.bundle+json;version=0.3"
            | "application/vnd.dev.sigstore.bundle.v0.3+json" => Some(BundleVersion::V03),
            _ => None,
        }
    }
}

/// Who the bundle says signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// `certificate.rawBytes`: the DER leaf (v0.3).
    Certificate(Vec<u8>),
    /// `x509CertificateChain.certificates`: DER, leaf first (v0.1, v0.2).
    Chain(Vec<Vec<u8>>),
    /// `publicKey.hint`: a key known out of band (cosign: base64 of sha256 of the PKIX DER).
    PublicKey {
        /// The hint, as written.
        hint: String,
    },
}

impl Material {
    /// The signing certificate (DER), if the bundle has one.
    pub fn leaf(&self) -> Option<&[u8]> {
        match self {
            Material::Certificate(der) => Some(der),
            Material::Chain(chain) => chain.first().map(Vec::as_slice),
            Material::PublicKey { .. } => None,
        }
    }

    /// The certificates after the leaf (path hints only: trust comes from the roots).
    pub fn intermediates(&self) -> &[Vec<u8>] {
        match self {
            Material::Chain(chain) if !chain.is_empty() => &chain[1..],
            _ => &[],
        }
    }
}

/// An inclusion proof of an entry in a log's Merkle tree (RFC 6962), with its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's index in the tree (shard-local for Rekor v1).
    pub log_index: u64,
    /// The tree's root hash.
    pub root_hash: Vec<u8>,
    /// The tree's size.
    pub tree_size: u64,
    /// The audit path, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed checkpoint (a signed note), if the bundle has one.
    pub checkpoint: Option<String>,
}

/// One transparency-log entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// The entry's index in the log (the one the SET signs).
    pub log_index: i64,
    /// Hex of the log ID (sha256 of the log key's DER SubjectPublicKeyInfo).
    pub log_id: String,
    /// `kindVersion.kind`, e.g. `dsse`, `hashedrekord`.
    pub kind: String,
    /// `kindVersion.version`.
    pub version: String,
    /// When the log integrated the entry.
    pub integrated_time: i64,
    /// `inclusionPromise.signedEntryTimestamp` (base64), if any.
    pub signed_entry_timestamp: Option<String>,
    /// The inclusion proof, if any.
    pub inclusion_proof: Option<InclusionProof>,
    /// `canonicalizedBody` (base64 of the entry's JSON, as the log holds it).
    pub canonicalized_body: String,
}

/// What the bundle signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A signature over an artifact (cosign `sign-blob`).
    MessageSignature {
        /// `messageDigest`: its algorithm (`SHA2_256`, …) and the digest, if given.
        digest: Option<(String, Vec<u8>)>,
        /// The signature.
        signature: Vec<u8>,
    },
    /// A DSSE envelope (cosign v3 `sign` and `attest`).
    Dsse {
        /// The envelope.
        envelope: Envelope,
        /// The envelope as JSON (`payloadType`, `payload`, `signatures`), for the log's
        /// envelope hash.
        json: Vec<u8>,
    },
}

/// A parsed Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// The format version.
    pub version: BundleVersion,
    /// Who signed.
    pub material: Material,
    /// Transparency-log entries.
    pub tlog_entries: Vec<TlogEntry>,
    /// Its RFC 3161 timestamps, read (see [`Bundle::verify_timestamps`]).
    pub rfc3161_timestamps: Vec<SignedTimestamp>,
    /// What it signs.
    pub content: Content,
}

/// Why a bundle cannot be read, or its log proofs do not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle's JSON.
    #[error("the Sigstore bundle is malformed: {0}")]
    Malformed(String),
    /// Its media type is no known bundle version.
    #[error("unsupported Sigstore bundle media type '{0}' (sealgate reads v0.1 to v0.3)")]
    MediaType(String),
    /// No trusted log has the entry's log ID.
    #[error(
        "the bundle's log entry is from log {0}, which is not trusted (add its key as rekor.pubkey)"
    )]
    UnknownLog(String),
    /// The inclusion proof does not lead to the root hash.
    #[error("the bundle's inclusion proof does not verify: {0}")]
    InclusionProof(String),
    /// The checkpoint is malformed, names another tree, or is not signed by the log.
    #[error("the bundle's checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// An RFC 3161 timestamp cannot be read.
    #[error("the bundle's rfc3161 timestamp {index} {error}")]
    Timestamp {
        /// Its index in `rfc3161Timestamps`.
        index: usize,
        /// What is wrong.
        error: TimestampError,
    },
}

fn malformed(what: impl Into<String>) -> BundleError {
    BundleError::Malformed(what.into())
}

/// A protobuf-JSON int64: a string of digits, or a number.
fn int(v: &Value, field: &str) -> Result<i64, BundleError> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        Value::Null => Some(0),
        _ => None,
    }
    .ok_or_else(|| malformed(format!("{field} is not an integer")))
}

fn bytes(v: &Value, field: &str) -> Result<Vec<u8>, BundleError> {
    v.as_str()
        .and_then(|s| STANDARD.decode(s.trim()).ok())
        .ok_or_else(|| malformed(format!("{field} is not base64")))
}

impl Bundle {
    /// Reads a bundle's protobuf JSON (camelCase fields, int64 as strings or numbers).
    pub fn parse(data: &[u8]) -> Result<Bundle, BundleError> {
        if data.len() > MAX_BUNDLE_BYTES {
            return Err(malformed(format!(
                "{} bytes is over the {MAX_BUNDLE_BYTES}-byte limit",
                data.len()
            )));
        }
        let v: Value = serde_json::from_slice(data).map_err(|e| malformed(e.to_string()))?;
        if !v.is_object() {
            return Err(malformed("not a JSON object"));
        }
        let media_type = v["mediaType"].as_str().unwrap_or_default();
        let version = BundleVersion::from_media_type(media_type)
            .ok_or_else(|| BundleError::MediaType(media_type.to_string()))?;
        let vm = &v["verificationMaterial"];
        if !vm.is_object() {
            return Err(malformed("no verificationMaterial"));
        }
        let material = if vm["certificate"].is_object() {
            Material::Certificate(bytes(
                &vm["certificate"]["rawBytes"],
                "certificate.rawBytes",
            )?)
        } else if let Some(certs) = vm["x509CertificateChain"]["certificates"].as_array() {
            if certs.is_empty() {
                return Err(malformed("x509CertificateChain has no certificates"));
            }
            Material::Chain(
                certs
                    .iter()
                    .map(|c| bytes(&c["rawBytes"], "x509CertificateChain.certificates.rawBytes"))
                    .collect::<Result<_, _>>()?,
            )
        } else if vm["publicKey"].is_object() {
            Material::PublicKey {
                hint: vm["publicKey"]["hint"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            }
        } else {
            return Err(malformed(
                "verificationMaterial has no certificate, x509CertificateChain or publicKey",
            ));
        };
        let tlog_entries = vm["tlogEntries"]
            .as_array()
            .map(|a| a.iter().map(|e| tlog_entry(e, version)).collect())
            .transpose()?
            .unwrap_or_default();
        let rfc3161_timestamps = timestamps(&vm["timestampVerificationData"])?;
        let content = if v["dsseEnvelope"].is_object() {
            let json =
                serde_json::to_vec(&v["dsseEnvelope"]).map_err(|e| malformed(e.to_string()))?;
            let envelope =
                Envelope::parse(&json).map_err(|e| malformed(format!("dsseEnvelope: {e}")))?;
            Content::Dsse { envelope, json }
        } else if v["messageSignature"].is_object() {
            let ms = &v["messageSignature"];
            let digest = if ms["messageDigest"].is_object() {
                Some((
                    ms["messageDigest"]["algorithm"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    bytes(&ms["messageDigest"]["digest"], "messageDigest.digest")?,
                ))
            } else {
                None
            };
            Content::MessageSignature {
                digest,
                signature: bytes(&ms["signature"], "messageSignature.signature")?,
            }
        } else {
            return Err(malformed("neither dsseEnvelope nor messageSignature"));
        };
        Ok(Bundle {
            version,
            material,
            tlog_entries,
            rfc3161_timestamps,
            content,
        })
    }

    /// The in-toto predicate type of a DSSE bundle's statement, if it has one.
    pub fn predicate_type(&self) -> Option<String> {
        let Content::Dsse { envelope, .. } = &self.content else {
            return None;
        };
        let v: Value = serde_json::from_slice(&envelope.payload).ok()?;
        v["predicateType"].as_str().map(str::to_string)
    }
}

/// `timestampVerificationData.rfc3161Timestamps`, each read.
fn timestamps(data: &Value) -> Result<Vec<SignedTimestamp>, BundleError> {
    let Some(list) = data["rfc3161Timestamps"].as_array() else {
        return Ok(Vec::new());
    };
    if list.len() > MAX_TIMESTAMPS {
        return Err(malformed(format!(
            "{} rfc3161 timestamps is over the limit of {MAX_TIMESTAMPS}",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(index, t)| {
            let der = t["signedTimestamp"]
                .as_str()
                .and_then(|s| STANDARD.decode(s.trim()).ok())
                .ok_or(BundleError::Timestamp {
                    index,
                    error: TimestampError::Malformed("signedTimestamp is not base64".into()),
                })?;
            SignedTimestamp::parse(&der).map_err(|error| BundleError::Timestamp { index, error })
        })
        .collect()
}

/// What the bundle's RFC 3161 timestamps prove.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimestampCheck {
    /// The timestamps that verified, by index, each from another authority.
    pub verified: Vec<(usize, VerifiedTimestamp)>,
    /// The others, by index, and why.
    pub refused: Vec<(usize, TimestampError)>,
}

/// Why a bundle's RFC 3161 timestamps refuse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampRefusal {
    /// None verified, and no transparency-log entry gives a verified time instead.
    #[error("its rfc3161 timestamp {index} {error}")]
    Unverified {
        /// The first timestamp's index.
        index: usize,
        /// Why it does not verify.
        error: TimestampError,
    },
    /// The signing certificate was not valid at a verified timestamp's time.
    #[error(
        "the signing certificate was not valid at the time of its rfc3161 timestamp {index} ({} by {uri}; valid {} to {})",
        Rfc3339(*at), Rfc3339(*not_before), Rfc3339(*not_after)
    )]
    CertificateNotValid {
        /// The timestamp's index.
        index: usize,
        /// genTime.
        at: UnixTime,
        /// The authority.
        uri: String,
        /// The certificate's validity start.
        not_before: UnixTime,
        /// Its end.
        not_after: UnixTime,
    },
}

/// Judges a bundle's timestamps as sigstore-go does for a bundle with observer timestamps
/// (cosign v3 verifies bundles so): a timestamp that does not verify is dropped (sigstore-go's
/// `VerifySignedTimestamp` collects its error and goes on), and refuses the bundle only when
/// nothing else gives a verified time: when `tlog_time` is false (no log entry checked) and no
/// other timestamp verified, the first failure is the refusal (sigstore-go: "threshold not met").
/// Every verified timestamp is a signing time: the signing certificate `validity` (not before,
/// not after), when the bundle has one, must cover it (sigstore-go verifies the leaf at each
/// verified timestamp and fails the bundle otherwise).
pub fn judge_timestamps(
    check: &TimestampCheck,
    tlog_time: bool,
    validity: Option<(UnixTime, UnixTime)>,
) -> Result<(), TimestampRefusal> {
    if check.verified.is_empty()
        && !tlog_time
        && let Some((index, error)) = check.refused.first()
    {
        return Err(TimestampRefusal::Unverified {
            index: *index,
            error: error.clone(),
        });
    }
    if let Some((not_before, not_after)) = validity {
        for (index, ts) in &check.verified {
            let at = unix_seconds(ts.time);
            if at < unix_seconds(not_before) || at > unix_seconds(not_after) {
                return Err(TimestampRefusal::CertificateNotValid {
                    index: *index,
                    at: ts.time,
                    uri: ts.uri.clone(),
                    not_before,
                    not_after,
                });
            }
        }
    }
    Ok(())
}

impl Bundle {
    /// The bytes its timestamps cover, as sigstore-go's `SignatureContent().Signature()`: the DSSE
    /// envelope's first signature (decoded; empty when it has none), or the message signature.
    pub fn signature_bytes(&self) -> &[u8] {
        match &self.content {
            Content::Dsse { envelope, .. } => envelope
                .signatures
                .first()
                .map_or(&[][..], |s| s.sig.as_slice()),
            Content::MessageSignature { signature, .. } => signature,
        }
    }

    /// Verifies each RFC 3161 timestamp over [`Bundle::signature_bytes`] with `authorities`. A
    /// second verified timestamp from an authority already counted is refused as a duplicate
    /// (sigstore-go's `isDuplicateTSA`).
    pub fn verify_timestamps(&self, authorities: &[TimestampAuthority]) -> TimestampCheck {
        let mut check = TimestampCheck::default();
        for (index, ts) in self.rfc3161_timestamps.iter().enumerate() {
            match ts.verify(self.signature_bytes(), authorities) {
                Ok(v) if check.verified.iter().any(|(_, o)| o.uri == v.uri) => check
                    .refused
                    .push((index, TimestampError::DuplicateAuthority(v.uri))),
                Ok(v) => check.verified.push((index, v)),
                Err(e) => check.refused.push((index, e)),
            }
        }
        check
    }
}

fn tlog_entry(e: &Value, version: BundleVersion) -> Result<TlogEntry, BundleError> {
    let log_id = hex_encode(&bytes(&e["logId"]["keyId"], "tlogEntries.logId.keyId")?);
    let signed_entry_timestamp = e["inclusionPromise"]["signedEntryTimestamp"]
        .as_str()
        .map(str::to_string);
    let inclusion_proof = if e["inclusionProof"].is_object() {
        let p = &e["inclusionProof"];
        let index = int(&p["logIndex"], "inclusionProof.logIndex")?;
        let size = int(&p["treeSize"], "inclusionProof.treeSize")?;
        Some(InclusionProof {
            log_index: u64::try_from(index)
                .map_err(|_| malformed("inclusionProof.logIndex is negative"))?,
            root_hash: bytes(&p["rootHash"], "inclusionProof.rootHash")?,
            tree_size: u64::try_from(size)
                .map_err(|_| malformed("inclusionProof.treeSize is negative"))?,
            hashes: p["hashes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|h| bytes(h, "inclusionProof.hashes"))
                        .collect()
                })
                .transpose()?
                .unwrap_or_default(),
            checkpoint: p["checkpoint"]["envelope"].as_str().map(str::to_string),
        })
    } else {
        None
    };
    // sigstore-go's bundle validation: v0.1 entries carry a promise, later ones a proof.
    if version == BundleVersion::V01 && signed_entry_timestamp.is_none() {
        return Err(malformed(
            "a v0.1 bundle's log entry has no inclusion promise",
        ));
    }
    if version >= BundleVersion::V02 && inclusion_proof.is_none() {
        return Err(malformed(
            "a v0.2+ bundle's log entry has no inclusion proof",
        ));
    }
    let canonicalized_body = e["canonicalizedBody"]
        .as_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| malformed("a log entry has no canonicalizedBody"))?
        .to_string();
    Ok(TlogEntry {
        log_index: int(&e["logIndex"], "tlogEntries.logIndex")?,
        log_id,
        kind: e["kindVersion"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        version: e["kindVersion"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        integrated_time: int(&e["integratedTime"], "tlogEntries.integratedTime")?,
        signed_entry_timestamp,
        inclusion_proof,
        canonicalized_body,
    })
}

impl TlogEntry {
    /// The entry as cosign's legacy Rekor bundle annotation (`RekorBundleFromProtoTlogEntry`):
    /// `None` without an inclusion promise (Rekor v2 entries have none).
    pub fn legacy_rekor_bundle(&self) -> Option<String> {
        let set = self.signed_entry_timestamp.as_ref()?;
        Some(
            serde_json::json!({
                "SignedEntryTimestamp": set,
                "Payload": {
                    "body": self.canonicalized_body,
                    "integratedTime": self.integrated_time,
                    "logIndex": self.log_index,
                    "logID": self.log_id,
                }
            })
            .to_string(),
        )
    }

    /// Checks the inclusion proof: the entry's leaf hash leads to the proof's root hash, and,
    /// when there is a checkpoint, the checkpoint names that root and tree size and is signed by
    /// the log's key (of `logs`, by log ID). `Ok(false)` when the entry has no proof.
    pub fn verify_inclusion(&self, logs: &[LogKey]) -> Result<bool, BundleError> {
        let Some(proof) = &self.inclusion_proof else {
            return Ok(false);
        };
        let body = STANDARD
            .decode(self.canonicalized_body.trim())
            .map_err(|_| malformed("canonicalizedBody is not base64"))?;
        let mut leaf = vec![0u8];
        leaf.extend_from_slice(&body);
        let leaf_hash = sha256(&leaf);
        let root =
            merkle_root_from_proof(proof.log_index, proof.tree_size, leaf_hash, &proof.hashes)
                .map_err(BundleError::InclusionProof)?;
        if root.as_slice() != proof.root_hash.as_slice() {
            return Err(BundleError::InclusionProof(format!(
                "the path computes root {}, the proof names {}",
                hex_encode(&root),
                hex_encode(&proof.root_hash)
            )));
        }
        if let Some(checkpoint) = &proof.checkpoint {
            let log = logs
                .iter()
                .find(|l| l.log_id == self.log_id)
                .ok_or_else(|| BundleError::UnknownLog(self.log_id.clone()))?;
            verify_checkpoint(checkpoint, proof, log)?;
        }
        Ok(true)
    }
}

/// The in-toto statement `cosign sign` (v3) signs for the image `digest`: Statement v1, one
/// subject (its `annotations` from `-a`), predicate type [`COSIGN_SIGN_PREDICATE`], predicate `{}`.
pub fn sign_statement(digest: &Digest, annotations: &serde_json::Map<String, Value>) -> Vec<u8> {
    serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"digest": {digest.algorithm().name(): digest.hex()}, "annotations": annotations}],
        "predicateType": COSIGN_SIGN_PREDICATE,
        "predicate": {},
    })
    .to_string()
    .into_bytes()
}

/// A key-based v0.3 bundle of `envelope`, as `cosign sign --key` writes one without a log
/// upload: the public-key hint (base64 of sha256 of the key's DER SubjectPublicKeyInfo, as
/// cosign's), no tlog entries.
pub fn key_bundle(envelope: &Envelope, key: &crate::crypto::key::PublicKey) -> Vec<u8> {
    let envelope: Value = serde_json::from_slice(&envelope.to_json()).unwrap_or(Value::Null);
    serde_json::json!({
        "mediaType": BUNDLE_V03_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": STANDARD.encode(sha256(key.spki_der()))},
            "tlogEntries": [],
        },
        "dsseEnvelope": envelope,
    })
    .to_string()
    .into_bytes()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Digest::sha256_of(data).bytes());
    out
}

fn node_hash(left: &[u8], right: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(65);
    buf.push(1u8);
    buf.extend_from_slice(left);
    buf.extend_from_slice(right);
    sha256(&buf)
}

/// RFC 9162 §2.1.3.2: the root an audit path computes for leaf `index` of a tree of `size`.
fn merkle_root_from_proof(
    index: u64,
    size: u64,
    leaf_hash: [u8; 32],
    path: &[Vec<u8>],
) -> Result<[u8; 32], String> {
    if index >= size {
        return Err(format!(
            "leaf index {index} is outside a tree of size {size}"
        ));
    }
    if path.len() > 64 {
        return Err(format!(
            "an audit path of {} hashes is too long",
            path.len()
        ));
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = leaf_hash;
    for p in path {
        if p.len() != 32 {
            return Err(format!("a path hash has {} bytes, not 32", p.len()));
        }
        if snode == 0 {
            return Err("the audit path is longer than the tree is deep".into());
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err("the audit path is shorter than the tree is deep".into());
    }
    Ok(r)
}

/// A signed note (`origin\nsize\nbase64(root)\n[extensions\n]\n— name base64(hint‖sig)\n`):
/// the size and root must be the proof's, and a signature whose key hint is the log ID's first
/// four bytes must verify over the note text (everything before the blank line, with its final
/// newline) with the log's key.
fn verify_checkpoint(text: &str, proof: &InclusionProof, log: &LogKey) -> Result<(), BundleError> {
    let bad = |s: String| BundleError::Checkpoint(s);
    let Some(split) = text.find("\n\n") else {
        return Err(bad("no blank line before its signatures".into()));
    };
    let note = &text[..=split];
    let mut lines = note.lines();
    let origin = lines.next().unwrap_or_default();
    let size: u64 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| bad("its second line is not a tree size".into()))?;
    let root = lines
        .next()
        .and_then(|l| STANDARD.decode(l).ok())
        .ok_or_else(|| bad("its third line is not a base64 root hash".into()))?;
    if size != proof.tree_size || root != proof.root_hash {
        return Err(bad(format!(
            "it is for a tree of size {size} with root {}, the proof for size {} with root {}",
            hex_encode(&root),
            proof.tree_size,
            hex_encode(&proof.root_hash)
        )));
    }
    let hint: Vec<u8> = crate::image::digest::hex_decode(&log.log_id)
        .map(|id| id.into_iter().take(4).collect())
        .unwrap_or_default();
    let mut signed_by_log = false;
    for line in text[split + 2..].lines().filter(|l| !l.is_empty()) {
        let Some(rest) = line.strip_prefix("\u{2014} ") else {
            return Err(bad(format!("'{line}' is not a signature line")));
        };
        let Some((_name, b64)) = rest.rsplit_once(' ') else {
            return Err(bad(format!("'{line}' is not a signature line")));
        };
        let Ok(raw) = STANDARD.decode(b64) else {
            return Err(bad(format!("the signature of '{_name}' is not base64")));
        };
        if raw.len() < 5 || raw[..4] != hint[..] {
            continue;
        }
        if log
            .key
            .verify(SignatureHash::Sha256, note.as_bytes(), &raw[4..])
            .unwrap_or(false)
        {
            signed_by_log = true;
        } else {
            return Err(bad(format!(
                "the signature of '{origin}' does not verify with the key of {}",
                log.base_url
            )));
        }
    }
    if !signed_by_log {
        return Err(bad(format!(
            "it has no signature by the key of {}",
            log.base_url
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
