//! Sigstore's trust material and transparency-log proofs: the trusted root with its keys and
//! validity windows ([`trust`]), Rekor bundles checked offline against it ([`rekor`]), the
//! identity in Fulcio certificates ([`fulcio`]) and their embedded SCTs ([`sct`]).

pub mod bundle;
pub mod fulcio;
pub mod rekor;
pub mod sct;
pub mod trust;
