//! cosign's signature formats: the simple-signing payload, the `.sig` image that carries
//! signatures as layers, and the checks that decide whether a layer is a valid signature.
//!
//! The flow is sigstore-rs's two steps made strict: the caller fetches the `.sig` manifest and
//! its layer blobs (checking each blob against its digest) into a [`SignatureSet`]; the functions
//! here check signatures over the exact payload bytes and say, for each layer, why it does or does
//! not count. Only this module can create a [`VerifiedSignature`].

pub mod dsse;
mod dsse_tlog;
mod manifest;
pub mod payload;
mod verify;

pub use dsse_tlog::verify_attestation_bundle;
pub use manifest::{Descriptor, ImageManifest, ManifestError, signature_image};
pub use verify::{
    LayerVerdict, SignatureFileError, SignatureLayer, SignatureSet, Signer, Verification,
    VerifiedSignature, VerifyFailure, is_same_signature, verify_with_key, with_annotations,
};

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 signature over the payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Layer annotation holding the PEM signing certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Layer annotation holding the PEM certificate chain (intermediates, then root).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Layer annotation holding a Rekor bundle (SET).
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// OCI image manifest media type.
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config media type.
pub const OCI_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest media type.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list media type.
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The most layers a `.sig` image may carry (cosign's own limit).
pub const MAX_SIGNATURE_LAYERS: usize = 1000;
