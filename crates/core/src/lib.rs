//! sealgate's pure core: everything that decides, nothing that fetches.
//!
//! This crate holds image references, digests and wildcards ([`image`]), PEM, keys and
//! certificates ([`crypto`]), Sigstore trust roots and Rekor bundles ([`sigstore`]), cosign's
//! signature formats and their verification ([`cosign`]), Kyverno policies ([`policy`]) and the
//! decision engine ([`engine`]).
//! It does no network, file or clock access: callers pass bytes in, and the current time and
//! randomness as parameters. The registry crate fetches; the CLI and server wire the two together.

pub mod cosign;
pub mod crypto;
pub mod engine;
pub mod image;
pub mod policy;
pub mod sigstore;
pub mod timestamp;

pub use image::ImageRef;
pub use image::digest::{self, Digest};
