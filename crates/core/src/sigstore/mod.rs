//! Sigstore's trust material and transparency-log proofs: the trusted root with its keys and
//! validity windows ([`trust`]) and Rekor bundles checked offline against it ([`rekor`]).

pub mod rekor;
pub mod trust;
