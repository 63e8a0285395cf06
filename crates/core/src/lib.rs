//! sealgate's pure core: everything that decides, nothing that fetches.
//!
//! This crate holds image references and wildcards ([`image`]), digests ([`digest`]), PEM and
//! key files ([`pem`], [`key`]), cosign's signature formats and their verification ([`cosign`]).
//! It does no network, file or clock access: callers pass bytes in, and the current time and
//! randomness as parameters. The registry crate fetches; the CLI and server wire the two together.

pub mod cert;
pub mod chain;
pub mod cosign;
pub mod digest;
mod ec_point;
pub mod engine;
pub mod image;
pub mod key;
pub mod pem;
pub mod policy;
pub mod rekor;
pub mod timestamp;
pub mod trust;

pub use digest::Digest;
pub use image::ImageRef;
