//! Sigstore's trust material and transparency-log proofs: the trusted root with its keys and
//! validity windows ([`trust`]), Rekor bundles checked offline against it ([`rekor`]), the
//! identity in Fulcio certificates ([`fulcio`]) and their embedded SCTs ([`sct`]); Sigstore
//! bundles ([`bundle`]) with their RFC 3161 timestamps ([`rfc3161`]) and those found among an image's referrers ([`bundle_set`]).

pub mod bundle;
pub mod bundle_set;
pub mod fulcio;
pub mod rekor;
pub mod rfc3161;
pub mod sct;
pub mod trust;
