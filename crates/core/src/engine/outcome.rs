//! What an evaluation asks for and what it is told, as types: where signatures are
//! ([`SignatureRequest`]), under which key an attestor's outcome is kept ([`OutcomeKey`]), why a
//! fetch failed ([`FetchFailure`], with what a fetch cut off by the budget was waiting for), and
//! what an attestor concluded ([`AttestorOutcome`]: a verified outcome carries a [`Verified`]
//! proof that only this crate makes, a failed one the typed reason, an error why it could not be
//! evaluated).
//!
//! Every type here displays as the words users read; the engine, the audit trail and the metrics
//! match on the kinds, never on the words.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::attestation::AttestationFailure;
use super::bundle::BundleFailure;
use crate::cosign::payload::PayloadError;
use crate::cosign::{LayerVerdict, Signer, VerifyFailure};
use crate::crypto::chain::ChainError;
use crate::image::ImageRef;
use crate::image::digest::Digest;
use crate::policy::{Fingerprint, Unsupported};
use crate::sigstore::rekor::RekorError;
use crate::sigstore::sct::SctError;
use crate::timestamp::{Rfc3339, UnixTime, format_duration};

/// Where an attestor's signatures are read: the `.sig` image (or, for attestations, the `.att`
/// image) of `digest` in `repository`, or the Sigstore bundles among the referrers of `digest`.
///
/// Its hash is computed once, when it is made: a warm review looks each of its requests up in
/// several maps (the evaluation's, the caches, the shared flights).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRequest {
    // First, so that unequal requests usually differ at the first comparison.
    hash: u64,
    /// The repository holding the signatures (no tag, no digest), shared with the image it is
    /// for.
    pub repository: Arc<ImageRef>,
    /// The image digest the signatures are for.
    pub digest: Digest,
    /// Signatures (`.sig`), attestations (`.att`) or Sigstore bundles (referrers).
    pub artifact: Artifact,
}

/// Which cosign artifact of an image a [`SignatureRequest`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Artifact {
    /// Signatures: `REPO:sha256-<hex>.sig`, simple-signing layers.
    #[default]
    Signatures,
    /// Attestations: `REPO:sha256-<hex>.att`, DSSE envelope layers.
    Attestations,
    /// Sigstore bundles (cosign v3's signatures and attestations): the OCI referrers of the
    /// digest whose one layer is a bundle (`application/vnd.dev.sigstore.bundle…`), read
    /// through the referrers API or the referrers tag `REPO:sha256-<hex>`.
    Bundles,
}

impl Artifact {
    /// The tag cosign stores the artifact of `digest` under (for bundles, the referrers tag
    /// schema's index, where a registry without the referrers API keeps them).
    pub fn tag(self, digest: &Digest) -> String {
        match self {
            Artifact::Signatures => digest.signature_tag(),
            Artifact::Attestations => digest.attestation_tag(),
            Artifact::Bundles => digest.referrers_tag(),
        }
    }

    /// `signatures`, `attestations` or `Sigstore bundles`, as messages name them.
    pub fn noun(self) -> &'static str {
        match self {
            Artifact::Signatures => "signatures",
            Artifact::Attestations => "attestations",
            Artifact::Bundles => "Sigstore bundles",
        }
    }

    /// Whether the artifact is read from a tag (`.sig`, `.att`) rather than from the referrers.
    pub fn is_tag(self) -> bool {
        !matches!(self, Artifact::Bundles)
    }
}

impl std::hash::Hash for SignatureRequest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl SignatureRequest {
    /// The signatures of `digest` in `repository`.
    pub fn new(repository: Arc<ImageRef>, digest: Digest) -> SignatureRequest {
        SignatureRequest::of(Artifact::Signatures, repository, digest)
    }

    /// The `artifact` (signatures or attestations) of `digest` in `repository`.
    pub fn of(artifact: Artifact, repository: Arc<ImageRef>, digest: Digest) -> SignatureRequest {
        use std::hash::{Hash as _, Hasher as _};
        // A fixed-key SipHash of what equality compares; maps hash this number again with
        // their own random keys.
        let mut hasher = std::hash::DefaultHasher::new();
        repository.hash(&mut hasher);
        digest.hash(&mut hasher);
        artifact.hash(&mut hasher);
        SignatureRequest {
            hash: hasher.finish(),
            repository,
            digest,
            artifact,
        }
    }

    /// Where the artifact is, e.g. `registry.example/app:sha256-….att`, or for bundles
    /// `registry.example/app@sha256:… (referrers)` (the fetch says which way it found them).
    pub fn location(&self) -> String {
        match self.artifact {
            Artifact::Bundles => format!("{}@{} (referrers)", self.repository_name(), self.digest),
            _ => format!(
                "{}:{}",
                self.repository_name(),
                self.artifact.tag(&self.digest)
            ),
        }
    }

    /// The same repository and digest, another artifact.
    pub fn with_artifact(&self, artifact: Artifact) -> SignatureRequest {
        SignatureRequest::of(artifact, Arc::clone(&self.repository), self.digest.clone())
    }

    /// `registry/path`, as messages name the repository.
    pub fn repository_name(&self) -> String {
        self.repository.repository()
    }

    /// The host the signatures are fetched from.
    pub fn host(&self) -> &str {
        self.repository.api_host()
    }
}

impl Ord for SignatureRequest {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.repository.normalized(), &self.digest, self.artifact).cmp(&(
            other.repository.normalized(),
            &other.digest,
            other.artifact,
        ))
    }
}

impl PartialOrd for SignatureRequest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The key under which an attestor's outcome is stored (and may be cached): what the attestor
/// checks, where its signatures are (and where they are looked for next when the first place
/// holds none), and the image digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutcomeKey {
    /// The attestor's [`fingerprint`](crate::policy::Attestor::fingerprint).
    pub attestor: Fingerprint,
    /// Where its signatures are looked for first.
    pub request: SignatureRequest,
    /// Where they are looked for when `request` holds none for the check (same repository and
    /// digest): a `type: Cosign` entry reads the referrers' Sigstore bundles when the `.sig`
    /// (`.att`) image holds none, or with `cosignOCI11` the other way round; `None` for
    /// `type: SigstoreBundle` (referrers only).
    pub fallback: Option<Artifact>,
}

impl OutcomeKey {
    /// The fallback's request, if the key has one.
    pub fn fallback_request(&self) -> Option<SignatureRequest> {
        self.fallback.map(|a| self.request.with_artifact(a))
    }
}

/// What a fetch cut off by the budget was waiting for when time ran out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The registry to answer the resolution of a tag.
    TagResolution {
        /// The registry host.
        host: String,
        /// The image, normalised.
        image: String,
    },
    /// The registry to send an image's signatures.
    Signatures {
        /// The registry host.
        host: String,
        /// `registry/path` of the signatures.
        repository: String,
        /// The image digest.
        digest: Digest,
    },
    /// The registry to send an image's attestations (its `.att` image).
    Attestations {
        /// The registry host.
        host: String,
        /// Where they are, `registry/path:sha256-<hex>.att` (smaller than
        /// [`Waiting::Signatures`]' fields, so that the enum stays as small as it was).
        location: String,
    },
    /// The registry to send the Sigstore bundles among an image's referrers.
    Bundles {
        /// The registry host.
        host: String,
        /// The image, `registry/path@sha256:…`.
        image: String,
    },
    /// The registry to send an image's manifest and config (an `imageRegistry` context entry).
    ImageData {
        /// The registry host.
        host: String,
        /// The image, normalised.
        image: String,
    },
    /// A free connection slot to the registry host.
    HostSlot {
        /// The registry host.
        host: String,
        /// How many slots the host has.
        slots: usize,
    },
    /// A free slot among all registry fetches.
    FetchSlot {
        /// How many slots there are (`--max-concurrent-verifications`).
        slots: usize,
    },
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::TagResolution { host, image } => {
                write!(
                    f,
                    "waiting for {host} to answer the tag resolution of {image}"
                )
            }
            Waiting::Signatures {
                host,
                repository,
                digest,
            } => write!(
                f,
                "waiting for {host} to send the signatures of {repository}@{digest}"
            ),
            Waiting::Attestations { host, location } => {
                write!(
                    f,
                    "waiting for {host} to send the attestations at {location}"
                )
            }
            Waiting::Bundles { host, image } => write!(
                f,
                "waiting for {host} to send the Sigstore bundles among the referrers of {image}"
            ),
            Waiting::ImageData { host, image } => write!(
                f,
                "waiting for {host} to send the manifest and config of {image}"
            ),
            Waiting::HostSlot { host, slots } => write!(
                f,
                "waiting for one of the {slots} connection slots to {host} (all busy)"
            ),
            Waiting::FetchSlot { slots } => write!(
                f,
                "waiting for one of the {slots} registry fetch slots (--max-concurrent-verifications; all busy)"
            ),
        }
    }
}

/// Why something could not be fetched from a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchFailure {
    /// The registry host (and port) the fetch went to.
    pub host: String,
    /// What went wrong.
    pub kind: FetchFailureKind,
}

/// What went wrong with a fetch. The first three are timeouts; for the others, `reason` is the
/// registry client's own explanation (it names the host, the repository and the fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailureKind {
    /// The request's budget ran out while the fetch was still waiting.
    Budget {
        /// The request's whole budget.
        budget: Duration,
        /// What the fetch was waiting for.
        waiting: Waiting,
    },
    /// The registry did not answer one request within the client's per-request timeout.
    RequestTimeout {
        /// The timeout in force (`--registry-timeout`).
        after: Duration,
    },
    /// The fetch kept going past the longest any fetch may run, and was abandoned.
    Abandoned {
        /// The limit.
        after: Duration,
    },
    /// No connection could be made (refused, no route, DNS).
    Unreachable {
        /// The registry client's explanation.
        reason: String,
    },
    /// TLS failed: an untrusted certificate, a name mismatch, a plain-HTTP server.
    Tls {
        /// The registry client's explanation.
        reason: String,
    },
    /// The registry wants credentials, or rejected the ones sent (401).
    Unauthorized {
        /// The registry client's explanation.
        reason: String,
    },
    /// The credentials lack the permission (403).
    Forbidden {
        /// The registry client's explanation.
        reason: String,
    },
    /// The image, tag or blob does not exist (404).
    NotFound {
        /// The registry client's explanation.
        reason: String,
    },
    /// A response was over its size limit.
    TooLarge {
        /// The registry client's explanation.
        reason: String,
    },
    /// Content did not hash to the digest asked for.
    DigestMismatch {
        /// The registry client's explanation.
        reason: String,
    },
    /// 429 or 5xx answers, or a body cut off, until the retries ran out.
    Overloaded {
        /// The registry client's explanation.
        reason: String,
    },
    /// The registry answered something sealgate cannot read (bad JSON, an unexpected media type
    /// or status).
    Malformed {
        /// The registry client's explanation.
        reason: String,
    },
    /// The fetch could not be made for a local reason (a credential helper failed, a file could
    /// not be read).
    Local {
        /// The registry client's explanation.
        reason: String,
    },
    /// The task carrying the fetch stopped without a result (the server is shutting down).
    Stopped,
}

impl FetchFailure {
    /// Whether the fetch ran out of time (the budget, the per-request timeout or the flight
    /// limit), rather than failing.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            FetchFailureKind::Budget { .. }
                | FetchFailureKind::RequestTimeout { .. }
                | FetchFailureKind::Abandoned { .. }
        )
    }
}

impl fmt::Display for FetchFailure {
    /// A timeout reads as the end of "did not finish within …": the time, then what was slow.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        match &self.kind {
            FetchFailureKind::Budget { budget, waiting } => {
                write!(f, "{}: {waiting}", format_duration(*budget))
            }
            FetchFailureKind::RequestTimeout { after } => write!(
                f,
                "{}s: {host} did not answer in time; if the registry is slow, raise --registry-timeout",
                after.as_secs_f64()
            ),
            FetchFailureKind::Abandoned { after } => write!(
                f,
                "{}: {host} kept the fetch going that long; it was abandoned",
                format_duration(*after)
            ),
            FetchFailureKind::Unreachable { reason }
            | FetchFailureKind::Tls { reason }
            | FetchFailureKind::Unauthorized { reason }
            | FetchFailureKind::Forbidden { reason }
            | FetchFailureKind::NotFound { reason }
            | FetchFailureKind::TooLarge { reason }
            | FetchFailureKind::DigestMismatch { reason }
            | FetchFailureKind::Overloaded { reason }
            | FetchFailureKind::Malformed { reason }
            | FetchFailureKind::Local { reason } => f.write_str(reason),
            FetchFailureKind::Stopped => f.write_str(
                "the fetch task stopped without a result (the server is shutting down?)",
            ),
        }
    }
}

/// The proof that an attestor verified a signature over an image digest. Only the engine's
/// attestor checks make one, so a decision can only count signatures that were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    signer: Signer,
    /// An attestation's predicate kept under its `name` for the entry's `validate.deny`, and
    /// its size as JSON.
    predicate: Option<(Arc<Value>, usize)>,
}

/// The largest kept predicate (as JSON) an outcome may hold and still be offered for caching:
/// a server keeps thousands of outcomes, and an SBOM can be megabytes. An outcome with a
/// larger one is verified again from the fetched (and cached) attestations each time.
pub const CACHED_PREDICATE_BYTES: usize = 16 * 1024;

impl Verified {
    /// Made by the attestor checks, and nowhere else.
    pub(super) fn new(signer: Signer) -> Verified {
        Verified {
            signer,
            predicate: None,
        }
    }

    /// This proof keeping an attestation's named predicate.
    pub(super) fn with_predicate(mut self, predicate: Value) -> Verified {
        let bytes = serde_json::to_vec(&predicate).map_or(usize::MAX, |json| json.len());
        self.predicate = Some((Arc::new(predicate), bytes));
        self
    }

    /// Whether the proof is small enough to be cached: it keeps no predicate, or one of at most
    /// [`CACHED_PREDICATE_BYTES`].
    pub fn is_cacheable(&self) -> bool {
        self.predicate
            .as_ref()
            .is_none_or(|(_, bytes)| *bytes <= CACHED_PREDICATE_BYTES)
    }

    /// Who signed.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The attestation's named predicate, when its entry's `validate.deny` reads it.
    pub fn predicate(&self) -> Option<&Arc<Value>> {
        self.predicate.as_ref().map(|(predicate, _)| predicate)
    }
}

/// What one attestor concluded about one image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestorOutcome {
    /// A signature verified.
    Verified(Verified),
    /// No signature satisfies the attestor.
    Failed(AttestorFailure),
    /// The attestor could not be evaluated.
    Error(CannotEvaluate),
}

impl AttestorOutcome {
    /// The proof, when the attestor verified.
    pub fn verified(&self) -> Option<&Verified> {
        match self {
            AttestorOutcome::Verified(v) => Some(v),
            _ => None,
        }
    }
}

/// Why an attestor could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CannotEvaluate {
    /// Its signatures could not be fetched.
    Fetch(FetchFailure),
    /// It uses something sealgate does not evaluate yet.
    Unsupported(Unsupported),
    /// Its signature repository is not a repository name.
    InvalidRepository {
        /// The repository as written.
        repository: String,
    },
    /// Its signatures were never fetched (the evaluation finished without them).
    NotFetched,
    /// A nested set reached the leaf check (the engine walks nested sets itself).
    NestedSet,
}

impl fmt::Display for CannotEvaluate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CannotEvaluate::Fetch(e) => e.fmt(f),
            CannotEvaluate::Unsupported(u) => u.fmt(f),
            CannotEvaluate::InvalidRepository { repository } => {
                write!(f, "'{repository}' is not a valid signature repository")
            }
            CannotEvaluate::NotFetched => f.write_str("its signatures were not fetched"),
            CannotEvaluate::NestedSet => {
                f.write_str("nested attestor sets are evaluated by the engine")
            }
        }
    }
}

/// Kyverno's words when no Sigstore bundle verifies (`type: SigstoreBundle`).
pub const BUNDLE_VERIFICATION_FAILED: &str =
    "sigstore bundle verification failed: no matching signatures found";

/// Why no signature satisfies an attestor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttestorFailure {
    /// No signature verifies with the key (or there are none).
    Key(VerifyFailure),
    /// The attestor does not vouch for an attestation (see [`AttestationFailure`]).
    Attestation(AttestationFailure),
    /// Signatures verify, but none carries the annotations the attestor requires.
    MissingAnnotations {
        /// How many verified.
        verified: usize,
        /// The annotations required, `key=value`.
        wanted: Vec<String>,
    },
    /// Signatures verify with the key, but the transparency log refuses every one.
    Tlog(Vec<TlogRefusal>),
    /// No signature verifies with the certificate.
    Certificate {
        /// Where the signatures were found.
        location: String,
        /// Why each signature failed, in layer order.
        layers: Vec<CertificateRefusal>,
    },
    /// No signature verifies as a keyless (Fulcio) signature with the identity wanted.
    Keyless {
        /// Where the signatures were found.
        location: String,
        /// Why each signature failed, in layer order.
        layers: Vec<CertificateRefusal>,
    },
    /// No Sigstore bundle among the referrers satisfies the attestor (`type: SigstoreBundle`,
    /// or a `type: Cosign` entry whose first place was the referrers).
    Bundles(BundleFailure),
    /// One place held nothing for the check and the other did not satisfy the attestor: where
    /// sealgate looked, in its order.
    Also {
        /// The failure of the place that was checked.
        failure: Box<AttestorFailure>,
        /// The place that held nothing.
        absent: Box<Absent>,
        /// Whether `absent` was looked at first.
        absent_first: bool,
    },
}

/// A place that held nothing for a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absent {
    /// cosign's `.sig` image does not exist or has no layers.
    Signatures {
        /// Where sealgate looked.
        location: String,
    },
    /// cosign's `.att` image does not exist or has no layer of the predicate type.
    Attestations {
        /// Where sealgate looked.
        location: String,
        /// The predicate type.
        predicate_type: String,
    },
    /// No bundle among the referrers is (or may be) of the check's predicate type.
    Bundles(BundleFailure),
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Absent::Signatures { location } => write!(f, "no signatures found at {location}"),
            Absent::Attestations {
                location,
                predicate_type,
            } => write!(
                f,
                "no attestations of type {predicate_type} found at {location}"
            ),
            Absent::Bundles(b) => b.fmt(f),
        }
    }
}

impl AttestorFailure {
    /// The words, naming `image` where Kyverno's attestation messages do.
    pub fn describe(&self, image: &str) -> String {
        match self {
            AttestorFailure::Attestation(a) => a.describe(image),
            AttestorFailure::Also {
                failure,
                absent,
                absent_first,
            } => {
                let failure = match failure.as_ref() {
                    // Within the places looked at, the bundles' words without Kyverno's prefix.
                    AttestorFailure::Bundles(b) => b.to_string(),
                    other => other.describe(image),
                };
                if *absent_first {
                    format!("{absent}; {failure}")
                } else {
                    format!("{failure}; {absent}")
                }
            }
            other => other.to_string(),
        }
    }
}

impl fmt::Display for AttestorFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttestorFailure::Key(v) => v.fmt(f),
            AttestorFailure::Attestation(a) => a.fmt(f),
            AttestorFailure::Bundles(b) => write!(f, "{BUNDLE_VERIFICATION_FAILED}: {b}"),
            AttestorFailure::Also { .. } => f.write_str(&self.describe("the image")),
            AttestorFailure::MissingAnnotations { verified, wanted } => write!(
                f,
                "{verified} signature(s) verify, but none carries the required annotations {}",
                wanted.join(", ")
            ),
            AttestorFailure::Tlog(refusals) => {
                f.write_str("a signature verifies with the key, but ")?;
                join(f, refusals.iter(), "; ")
            }
            AttestorFailure::Certificate { location, layers }
            | AttestorFailure::Keyless { location, layers }
                if layers.is_empty() =>
            {
                write!(f, "no signatures found at {location}")
            }
            AttestorFailure::Certificate { location, layers } => {
                write!(
                    f,
                    "none of {} signature(s) at {location} verifies with the certificate: ",
                    layers.len()
                )?;
                numbered(f, layers)
            }
            AttestorFailure::Keyless { location, layers } => {
                write!(
                    f,
                    "none of {} signature(s) at {location} verifies as keyless: ",
                    layers.len()
                )?;
                numbered(f, layers)
            }
        }
    }
}

/// `signature 1: why; signature 2: why`.
fn numbered(f: &mut fmt::Formatter<'_>, layers: &[CertificateRefusal]) -> fmt::Result {
    for (i, why) in layers.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "signature {}: {why}", i + 1)?;
    }
    Ok(())
}

/// Why the transparency log does not vouch for a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlogRefusal {
    /// A proof is required and the signature carries none.
    Missing,
    /// The Rekor bundle does not hold.
    Invalid(RekorError),
    /// A Sigstore bundle's inclusion proof or checkpoint does not hold.
    Inclusion(crate::sigstore::bundle::BundleError),
}

impl fmt::Display for TlogRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlogRefusal::Missing => f.write_str(
                "the transparency-log proof is missing: the signature carries no Rekor bundle (sign with a tool that uploads to Rekor, or set rekor.ignoreTlog: true)",
            ),
            TlogRefusal::Invalid(e) => e.fmt(f),
            TlogRefusal::Inclusion(e) => e.fmt(f),
        }
    }
}

/// Why one signature does not verify with a certificate attestor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateRefusal {
    /// The layer is another artifact type.
    NotSimpleSigning {
        /// Its media type.
        media_type: String,
    },
    /// The payload blob could not be fetched.
    PayloadUnavailable,
    /// No signature annotation, or not base64.
    NoSignature,
    /// The certificate annotation is not a PEM certificate.
    BadCertificateAnnotation,
    /// The layer carries another certificate than the policy's `cert`.
    OtherCertificate,
    /// Neither the policy nor the layer gives a certificate.
    NoCertificate,
    /// The certificate cannot be read or its chain does not hold.
    Chain(ChainError),
    /// The signature does not verify with the certificate's key.
    NotByCertificate {
        /// The certificate's subject.
        subject: String,
    },
    /// The payload cannot be read.
    MalformedPayload(PayloadError),
    /// The payload names another digest.
    OtherDigest {
        /// The digest signed.
        signed: String,
        /// The image's digest.
        image: Digest,
    },
    /// The required annotations are missing.
    MissingAnnotations {
        /// The annotations required, `key=value`.
        wanted: Vec<String>,
    },
    /// The transparency log does not vouch for it.
    Tlog(TlogRefusal),
    /// The certificate was not valid when the signature was made.
    NotValidAtSigningTime {
        /// The certificate's subject.
        subject: String,
        /// The signing time.
        at: UnixTime,
        /// Start of validity.
        not_before: UnixTime,
        /// End of validity.
        not_after: UnixTime,
    },
    /// A keyless signature without its Fulcio certificate.
    NoKeylessCertificate,
    /// The certificate does not chain to the keyless roots at the signing time.
    UntrustedKeyless(Box<UntrustedKeyless>),
    /// The certificate's embedded SCTs do not prove it was logged.
    Sct(SctError),
    /// The certificate verifies, but its identity is not the one wanted.
    Identity(Box<IdentityMismatch>),
}

/// A keyless certificate that does not chain to its roots at the signing time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UntrustedKeyless {
    /// The certificate's identity (its SANs), for the words.
    pub identity: String,
    /// The certificate's issuer DN.
    pub issuer: String,
    /// Which roots it was checked against.
    pub roots: KeylessRoots,
    /// The signing time.
    pub at: UnixTime,
    /// What the chain check said, when it was not simply "unknown issuer".
    pub reason: Option<ChainError>,
}

impl fmt::Display for UntrustedKeyless {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the certificate of {} (issuer '{}') does not chain to {} at the signing time {}",
            self.identity,
            self.issuer,
            self.roots,
            Rfc3339(self.at)
        )?;
        match &self.reason {
            Some(why) => write!(f, ": {why}"),
            None => Ok(()),
        }
    }
}

/// The roots a keyless certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeylessRoots {
    /// The policy's `roots`, this many certificates.
    Policy(usize),
    /// The Fulcio CAs of the trusted root; this many were valid at the signing time.
    TrustedRoot {
        /// CAs valid at the signing time.
        valid: usize,
        /// All CAs.
        total: usize,
    },
}

impl fmt::Display for KeylessRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeylessRoots::Policy(n) => write!(f, "the policy's roots ({n} certificate(s))"),
            KeylessRoots::TrustedRoot { valid: 0, total } => write!(
                f,
                "a Fulcio CA of the trusted root (none of its {total} was valid at the signing time)"
            ),
            KeylessRoots::TrustedRoot { valid, .. } => write!(
                f,
                "the Fulcio CAs of the trusted root ({valid} valid at the signing time)"
            ),
        }
    }
}

/// The identity a keyless certificate carries and the one an attestor wants, and what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityMismatch {
    /// The certificate's subject alternative names.
    pub sans: Vec<String>,
    /// The certificate's OIDC issuer.
    pub issuer: Option<String>,
    /// What the attestor wants, in words (`subject *@example.com, issuer https://…`).
    pub wanted: String,
    /// What does not match.
    pub kind: IdentityMismatchKind,
}

/// Which part of an identity does not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityMismatchKind {
    /// No SAN matches `subject` or `subjectRegExp`.
    Subject,
    /// The issuer does not match `issuer` or `issuerRegExp`.
    Issuer,
    /// An `additionalExtensions` entry is missing or has another value.
    Extension {
        /// The key as written.
        key: String,
        /// The OID it names.
        oid: &'static str,
        /// The pattern wanted.
        wanted: String,
        /// The certificate's value, if it has the extension.
        found: Option<String>,
    },
    /// An `additionalExtensions` key Kyverno does not know (its `invalid certificate extension`).
    UnknownExtension(String),
    /// `subjectRegExp` or `issuerRegExp` does not compile (Kyverno's `invalid regexp for …`).
    InvalidRegexp {
        /// `subject` or `issuer`.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// The compiler's complaint.
        reason: String,
    },
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identity = if self.sans.is_empty() {
            "(no subject alternative name)".to_string()
        } else {
            self.sans.join(", ")
        };
        let issuer = self
            .issuer
            .as_deref()
            .unwrap_or("(no OIDC issuer extension)");
        write!(f, "certificate identity {identity} issued by {issuer} ")?;
        match &self.kind {
            IdentityMismatchKind::Subject | IdentityMismatchKind::Issuer => {
                write!(f, "does not match {}", self.wanted)
            }
            IdentityMismatchKind::Extension {
                key,
                oid,
                wanted,
                found: Some(found),
            } => write!(
                f,
                "has {key} ({oid}) '{found}', which does not match '{wanted}' (additionalExtensions)"
            ),
            IdentityMismatchKind::Extension {
                key,
                oid,
                wanted,
                found: None,
            } => write!(
                f,
                "lacks the extension {key} ({oid}) that additionalExtensions requires as '{wanted}'"
            ),
            IdentityMismatchKind::UnknownExtension(key) => write!(
                f,
                "cannot be checked: invalid certificate extension {key} in additionalExtensions (Kyverno knows oidcIssuer, githubWorkflowTrigger, githubWorkflowSha, githubWorkflowName, githubWorkflowRepository, githubWorkflowRef, or their OIDs)"
            ),
            IdentityMismatchKind::InvalidRegexp {
                field,
                pattern,
                reason,
            } => write!(
                f,
                "cannot be checked: invalid regexp for {field}: {pattern} : {reason}"
            ),
        }
    }
}

impl fmt::Display for CertificateRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateRefusal::NotSimpleSigning { media_type } => {
                write!(f, "not a simple-signing layer ({media_type})")
            }
            CertificateRefusal::PayloadUnavailable => LayerVerdict::PayloadUnavailable.fmt(f),
            CertificateRefusal::NoSignature => f.write_str("no or malformed signature annotation"),
            CertificateRefusal::BadCertificateAnnotation => {
                f.write_str("its certificate annotation is not a PEM certificate")
            }
            CertificateRefusal::OtherCertificate => {
                f.write_str("it carries another certificate than the policy's cert")
            }
            CertificateRefusal::NoCertificate => {
                f.write_str("it carries no certificate to check against certChain")
            }
            CertificateRefusal::Chain(e) => e.fmt(f),
            CertificateRefusal::NotByCertificate { subject } => {
                write!(f, "does not verify with the certificate's key ({subject})")
            }
            CertificateRefusal::MalformedPayload(e) => e.fmt(f),
            CertificateRefusal::OtherDigest { signed, image } => {
                write!(f, "signed digest {signed}, not this image's {image}")
            }
            CertificateRefusal::MissingAnnotations { wanted } => write!(
                f,
                "1 signature(s) verify, but none carries the required annotations {}",
                wanted.join(", ")
            ),
            CertificateRefusal::Tlog(t) => t.fmt(f),
            CertificateRefusal::NotValidAtSigningTime {
                subject,
                at,
                not_before,
                not_after,
            } => write!(
                f,
                "the certificate '{subject}' was not valid at the signing time {} (valid {} to {})",
                Rfc3339(*at),
                Rfc3339(*not_before),
                Rfc3339(*not_after)
            ),
            CertificateRefusal::NoKeylessCertificate => f.write_str(
                "it carries no certificate (a keyless signature carries its Fulcio certificate in the dev.sigstore.cosign/certificate annotation)",
            ),
            CertificateRefusal::UntrustedKeyless(u) => u.fmt(f),
            CertificateRefusal::Sct(e) => e.fmt(f),
            CertificateRefusal::Identity(m) => m.fmt(f),
        }
    }
}

fn join<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl Iterator<Item = T>,
    separator: &str,
) -> fmt::Result {
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

/// Why an image check ended as it did, as a kind: what the audit trail records and the metrics
/// count beside each result's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Every attestor set passed.
    Verified,
    /// Nothing to verify (no attestors): the digest was pinned or the image let through.
    NotChecked,
    /// `skipImageReferences` matched.
    Skipped,
    /// `required` without attestors: the image carries no verification.
    Unverified,
    /// `verifyDigest` found the image without a digest.
    MissingDigest,
    /// No signatures exist for the image.
    NoSignatures,
    /// Signatures exist, none verifies with the key or certificate.
    SignatureMismatch,
    /// A signature by the key names another digest.
    SignedOtherDigest,
    /// Signatures verify but lack the required annotations.
    MissingAnnotations,
    /// The transparency log does not vouch for the signature.
    TransparencyLog,
    /// The certificate or its chain does not hold.
    Certificate,
    /// The certificate's transparency proof (embedded SCT) does not hold.
    CertificateTransparency,
    /// A keyless signature verifies, but its identity is not the one wanted.
    Identity,
    /// The policy uses something sealgate does not evaluate yet.
    Unsupported,
    /// The image reference does not parse.
    InvalidImage,
    /// The object holds something other than an image where one belongs.
    MalformedObject,
    /// The signature repository does not parse.
    InvalidRepository,
    /// What was needed was never fetched.
    NotFetched,
    /// The rule's context or preconditions could not be evaluated.
    Context,
    /// No attestations exist for the image.
    NoAttestations,
    /// Attestations verify, none of the predicate type.
    PredicateTypeNotFound,
    /// An attestation's conditions do not hold (or cannot be evaluated).
    AttestationConditions,
    /// The entry's `validate.deny` conditions hold (or cannot be evaluated).
    DenyConditions,
    /// A fetch failed, of this kind.
    Fetch(FetchReason),
}

/// [`FetchFailureKind`] without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FetchReason {
    /// [`FetchFailureKind::Budget`].
    Budget,
    /// [`FetchFailureKind::RequestTimeout`].
    RequestTimeout,
    /// [`FetchFailureKind::Abandoned`].
    Abandoned,
    /// [`FetchFailureKind::Unreachable`].
    Unreachable,
    /// [`FetchFailureKind::Tls`].
    Tls,
    /// [`FetchFailureKind::Unauthorized`].
    Unauthorized,
    /// [`FetchFailureKind::Forbidden`].
    Forbidden,
    /// [`FetchFailureKind::NotFound`].
    NotFound,
    /// [`FetchFailureKind::TooLarge`].
    TooLarge,
    /// [`FetchFailureKind::DigestMismatch`].
    DigestMismatch,
    /// [`FetchFailureKind::Overloaded`].
    Overloaded,
    /// [`FetchFailureKind::Malformed`].
    Malformed,
    /// [`FetchFailureKind::Local`].
    Local,
    /// [`FetchFailureKind::Stopped`].
    Stopped,
}

impl Reason {
    /// The kind's name: `verified`, `no_signatures`, `fetch_unauthorized`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Verified => "verified",
            Reason::NotChecked => "not_checked",
            Reason::Skipped => "skipped",
            Reason::Unverified => "unverified",
            Reason::MissingDigest => "missing_digest",
            Reason::NoSignatures => "no_signatures",
            Reason::SignatureMismatch => "signature_mismatch",
            Reason::SignedOtherDigest => "signed_other_digest",
            Reason::MissingAnnotations => "missing_annotations",
            Reason::TransparencyLog => "transparency_log",
            Reason::Certificate => "certificate",
            Reason::CertificateTransparency => "certificate_transparency",
            Reason::Identity => "identity",
            Reason::Unsupported => "unsupported",
            Reason::InvalidImage => "invalid_image",
            Reason::MalformedObject => "malformed_object",
            Reason::InvalidRepository => "invalid_repository",
            Reason::NotFetched => "not_fetched",
            Reason::Context => "context",
            Reason::NoAttestations => "no_attestations",
            Reason::PredicateTypeNotFound => "predicate_type_not_found",
            Reason::AttestationConditions => "attestation_conditions",
            Reason::DenyConditions => "deny_conditions",
            Reason::Fetch(f) => f.as_str(),
        }
    }
}

impl FetchReason {
    /// The kind's name, prefixed `fetch_`.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Budget => "fetch_budget",
            FetchReason::RequestTimeout => "fetch_request_timeout",
            FetchReason::Abandoned => "fetch_abandoned",
            FetchReason::Unreachable => "fetch_unreachable",
            FetchReason::Tls => "fetch_tls",
            FetchReason::Unauthorized => "fetch_unauthorized",
            FetchReason::Forbidden => "fetch_forbidden",
            FetchReason::NotFound => "fetch_not_found",
            FetchReason::TooLarge => "fetch_too_large",
            FetchReason::DigestMismatch => "fetch_digest_mismatch",
            FetchReason::Overloaded => "fetch_overloaded",
            FetchReason::Malformed => "fetch_malformed",
            FetchReason::Local => "fetch_local",
            FetchReason::Stopped => "fetch_stopped",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FetchFailure {
    /// The failure's kind without its data.
    pub fn reason(&self) -> FetchReason {
        match self.kind {
            FetchFailureKind::Budget { .. } => FetchReason::Budget,
            FetchFailureKind::RequestTimeout { .. } => FetchReason::RequestTimeout,
            FetchFailureKind::Abandoned { .. } => FetchReason::Abandoned,
            FetchFailureKind::Unreachable { .. } => FetchReason::Unreachable,
            FetchFailureKind::Tls { .. } => FetchReason::Tls,
            FetchFailureKind::Unauthorized { .. } => FetchReason::Unauthorized,
            FetchFailureKind::Forbidden { .. } => FetchReason::Forbidden,
            FetchFailureKind::NotFound { .. } => FetchReason::NotFound,
            FetchFailureKind::TooLarge { .. } => FetchReason::TooLarge,
            FetchFailureKind::DigestMismatch { .. } => FetchReason::DigestMismatch,
            FetchFailureKind::Overloaded { .. } => FetchReason::Overloaded,
            FetchFailureKind::Malformed { .. } => FetchReason::Malformed,
            FetchFailureKind::Local { .. } => FetchReason::Local,
            FetchFailureKind::Stopped => FetchReason::Stopped,
        }
    }
}

impl CannotEvaluate {
    /// The kind, for the audit trail and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            CannotEvaluate::Fetch(f) => Reason::Fetch(f.reason()),
            CannotEvaluate::Unsupported(_) => Reason::Unsupported,
            CannotEvaluate::InvalidRepository { .. } => Reason::InvalidRepository,
            CannotEvaluate::NotFetched | CannotEvaluate::NestedSet => Reason::NotFetched,
        }
    }
}

impl AttestorFailure {
    /// The kind, for the audit trail and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            AttestorFailure::Key(VerifyFailure::NoSignatures { .. }) => Reason::NoSignatures,
            AttestorFailure::Attestation(a) => a.reason(),
            AttestorFailure::Bundles(b) => b.reason(),
            AttestorFailure::Also { failure, .. } => failure.reason(),
            AttestorFailure::Key(VerifyFailure::NoneVerified { verdicts, .. }) => {
                if verdicts
                    .iter()
                    .any(|v| matches!(v, LayerVerdict::OtherDigest { .. }))
                {
                    Reason::SignedOtherDigest
                } else {
                    Reason::SignatureMismatch
                }
            }
            AttestorFailure::MissingAnnotations { .. } => Reason::MissingAnnotations,
            AttestorFailure::Tlog(_) => Reason::TransparencyLog,
            AttestorFailure::Certificate { layers, .. }
            | AttestorFailure::Keyless { layers, .. }
                if layers.is_empty() =>
            {
                Reason::NoSignatures
            }
            AttestorFailure::Certificate { layers, .. }
            | AttestorFailure::Keyless { layers, .. } => {
                // The most telling refusal: a signature that verifies but is someone else's,
                // then a chain or validity problem, over a plain mismatch.
                if layers
                    .iter()
                    .any(|l| matches!(l, CertificateRefusal::Identity(_)))
                {
                    Reason::Identity
                } else if layers.iter().any(|l| {
                    matches!(
                        l,
                        CertificateRefusal::Chain(_)
                            | CertificateRefusal::NotValidAtSigningTime { .. }
                            | CertificateRefusal::UntrustedKeyless(_)
                            | CertificateRefusal::NoKeylessCertificate
                    )
                }) {
                    Reason::Certificate
                } else if layers
                    .iter()
                    .any(|l| matches!(l, CertificateRefusal::Sct(_)))
                {
                    Reason::CertificateTransparency
                } else if layers
                    .iter()
                    .any(|l| matches!(l, CertificateRefusal::Tlog(_)))
                {
                    Reason::TransparencyLog
                } else if layers
                    .iter()
                    .any(|l| matches!(l, CertificateRefusal::OtherDigest { .. }))
                {
                    Reason::SignedOtherDigest
                } else {
                    Reason::SignatureMismatch
                }
            }
        }
    }
}

impl AttestorOutcome {
    /// The kind, for the audit trail and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            AttestorOutcome::Verified(_) => Reason::Verified,
            AttestorOutcome::Failed(f) => f.reason(),
            AttestorOutcome::Error(e) => e.reason(),
        }
    }
}
