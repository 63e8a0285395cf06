//! The Sigstore bundles found among an image's OCI referrers, as the engine checks them: each
//! read once, when it is fetched ([`BundleSet::read`]); one that cannot be read (its blob could
//! not be fetched, or it is no bundle) is kept with why, so that a decision can say so, never
//! dropped.

use std::fmt;

use crate::image::digest::Digest;

use super::bundle::{Bundle, BundleError, COSIGN_SIGN_PREDICATE};

/// The Sigstore bundles among the referrers of one image digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSet {
    /// Where they were looked for, e.g. `registry.example/app:sha256-… (referrers tag)`.
    pub location: String,
    /// The image digest they must be about.
    pub image_digest: Digest,
    /// The bundles, in the order the referrers list names them.
    pub bundles: Vec<ReferrerBundle>,
}

/// One referrer holding a Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerBundle {
    /// The referrer manifest's digest.
    pub manifest: Digest,
    /// The bundle, or why it cannot be read.
    pub bundle: Result<Bundle, Unreadable>,
    /// The predicate type of its in-toto statement, if it has one (read once; not verified).
    pub predicate_type: Option<String>,
}

/// Why a referrer's bundle cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Its blob could not be fetched (missing from the registry, or over the size limit).
    Blob(String),
    /// The blob is not a Sigstore bundle sealgate reads.
    Bundle(BundleError),
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::Blob(why) => write!(f, "its bundle blob could not be fetched: {why}"),
            Unreadable::Bundle(e) => e.fmt(f),
        }
    }
}

impl ReferrerBundle {
    /// Reads the bundle fetched from referrer `manifest` (or why its blob could not be fetched).
    pub fn read(manifest: Digest, blob: Result<&[u8], String>) -> ReferrerBundle {
        let bundle = match blob {
            Ok(bytes) => Bundle::parse(bytes).map_err(Unreadable::Bundle),
            Err(why) => Err(Unreadable::Blob(why)),
        };
        let predicate_type = bundle.as_ref().ok().and_then(Bundle::predicate_type);
        ReferrerBundle {
            manifest,
            bundle,
            predicate_type,
        }
    }

    /// Whether the bundle may be of `predicate_type`: it is, or it cannot be read (then nothing
    /// says it is not).
    pub fn may_be(&self, predicate_type: &str) -> bool {
        self.bundle.is_err() || self.predicate_type.as_deref() == Some(predicate_type)
    }
}

impl BundleSet {
    /// No bundles at `location` for `image_digest`.
    pub fn empty(location: impl Into<String>, image_digest: Digest) -> BundleSet {
        BundleSet {
            location: location.into(),
            image_digest,
            bundles: Vec::new(),
        }
    }

    /// Whether any bundle may be an image signature (cosign's sign statement).
    pub fn holds_signatures(&self) -> bool {
        self.holds(COSIGN_SIGN_PREDICATE)
    }

    /// Whether any bundle may be an attestation of `predicate_type`.
    pub fn holds(&self, predicate_type: &str) -> bool {
        self.bundles.iter().any(|b| b.may_be(predicate_type))
    }
}
