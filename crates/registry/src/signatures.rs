//! Reading and writing cosign `.sig` and `.att` images on a registry: the I/O half of cosign
//! signatures and attestations (the checks are in `sealgate_core::cosign`). Shared by
//! `sealgate sign`/`verify`/`attest`/`verify-attestation`, the policy evaluation driver and the
//! webhook.

use crate::{Client, Error};
use sealgate_core::cosign::dsse::DSSE_MEDIA_TYPE;
use sealgate_core::cosign::{
    Descriptor, ImageManifest, OCI_MANIFEST_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer,
    SignatureSet, is_same_signature, signature_image,
};
use sealgate_core::crypto::key::PublicKey;
use sealgate_core::engine::Artifact;
use sealgate_core::{Digest, ImageRef};

/// Signature payloads fetched at once from one `.sig` image.
const PARALLEL_PAYLOADS: usize = 8;

/// How often a signer retries when another signer rewrote the `.sig` image at the same time.
const PUSH_ATTEMPTS: usize = 3;

/// The digest an image reference stands for: its own digest, or what its tag resolves to now.
pub async fn resolve_digest(client: &Client, image: &ImageRef) -> Result<Digest, Error> {
    match image.digest() {
        Some(d) => Ok(d.clone()),
        None => client.resolve(image).await,
    }
}

/// Where the signatures of `digest` live in `repo`, e.g. `127.0.0.1:5000/app:sha256-….sig`.
pub fn signature_location(repo: &ImageRef, digest: &Digest) -> String {
    artifact_location(repo, digest, Artifact::Signatures)
}

/// Where the `artifact` of `digest` lives in `repo`, e.g. `127.0.0.1:5000/app:sha256-….att`.
pub fn artifact_location(repo: &ImageRef, digest: &Digest, artifact: Artifact) -> String {
    format!("{}:{}", repo.repository(), artifact.tag(digest))
}

/// The layer media type whose blobs an artifact's checks read (none for bundles: they are no
/// tag's layers).
fn payload_media_type(artifact: Artifact) -> Option<&'static str> {
    match artifact {
        Artifact::Signatures => Some(SIMPLE_SIGNING_MEDIA_TYPE),
        Artifact::Attestations => Some(DSSE_MEDIA_TYPE),
        Artifact::Bundles => None,
    }
}

/// How messages name the manifest of an artifact's image.
fn manifest_noun(artifact: Artifact) -> &'static str {
    match artifact {
        Artifact::Signatures => "signature",
        Artifact::Attestations => "attestation",
        Artifact::Bundles => "referrers",
    }
}

/// Reads the `.sig` image of `digest` from `repo` with every simple-signing payload, each checked
/// against its digest and bounded in size. A missing `.sig` image gives an empty set; a layer
/// whose payload is missing or too large is kept with an empty payload (see the code).
pub async fn fetch_signatures(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<SignatureSet, Error> {
    fetch_artifact(client, repo, digest, Artifact::Signatures).await
}

/// Reads the `.att` image of `digest` from `repo` with every DSSE envelope, as
/// [`fetch_signatures`] reads signatures (same checks and bounds).
pub async fn fetch_attestations(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<SignatureSet, Error> {
    fetch_artifact(client, repo, digest, Artifact::Attestations).await
}

/// Reads the `artifact` image of `digest` from `repo`: the manifest, then each layer blob of
/// the artifact's media type (checked against its digest, at most the payload limit). Bundles
/// are no tag's layers: read them with [`crate::referrers::fetch_bundle_set`].
pub async fn fetch_artifact(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
    artifact: Artifact,
) -> Result<SignatureSet, Error> {
    let location = artifact_location(repo, digest, artifact);
    let tag = artifact.tag(digest);
    let Some(media_type) = payload_media_type(artifact) else {
        return Err(Error::InvalidOptions(
            "Sigstore bundles are read from the referrers (fetch_bundle_set), not as a tag's layers",
        ));
    };
    let mut layers = Vec::new();
    if let Some(manifest) = client.get_manifest(repo, &tag).await? {
        let what = manifest_noun(artifact);
        let parsed = ImageManifest::parse(&manifest.bytes).map_err(|e| Error::InvalidJson {
            host: repo.api_host().to_string(),
            what: format!("{what} manifest {location}"),
            detail: e.to_string(),
        })?;
        let limit = client.options().limits.payload_bytes;
        // The payloads are fetched a few at a time (one round trip each: 10 signers would be
        // 10 in a row), and kept in layer order.
        let mut payloads: Vec<Option<Vec<u8>>> = vec![None; parsed.layers.len()];
        for chunk in parsed
            .layers
            .iter()
            .enumerate()
            .filter(|(_, d)| d.media_type == media_type)
            .collect::<Vec<_>>()
            .chunks(PARALLEL_PAYLOADS)
        {
            let mut fetches = tokio::task::JoinSet::new();
            for (index, descriptor) in chunk {
                let (client, repo, digest) =
                    (client.clone(), repo.clone(), descriptor.digest.clone());
                let index = *index;
                fetches.spawn(async move { (index, client.get_blob(&repo, &digest, limit).await) });
            }
            while let Some(joined) = fetches.join_next().await {
                let Ok((index, fetched)) = joined else {
                    return Err(Error::Transport {
                        host: repo.api_host().to_string(),
                        detail: "a signature payload fetch stopped unexpectedly".into(),
                    });
                };
                payloads[index] = Some(match fetched {
                    Ok(bytes) => bytes,
                    // One missing or oversized payload makes that layer unusable, not the
                    // others: it stays with an empty payload, which the checks report as such.
                    // A digest mismatch, a truncated body or a transport failure still fails
                    // the whole fetch: the registry or the network cannot be trusted then.
                    Err(Error::NotFound { .. } | Error::TooLarge { .. }) => Vec::new(),
                    Err(e) => return Err(e),
                });
            }
        }
        for (descriptor, payload) in parsed.layers.into_iter().zip(payloads) {
            layers.push(SignatureLayer {
                descriptor,
                payload: payload.unwrap_or_default(),
            });
        }
    }
    Ok(SignatureSet {
        location,
        image_digest: digest.clone(),
        layers,
    })
}

/// What pushing a signature did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The layer was added; the `.sig` image now has this many layers.
    Added { layers: usize },
    /// An equivalent signature by the same key was already there; nothing was pushed.
    AlreadyPresent { layers: usize },
}

/// Appends `layer` to the `.sig` image of `digest` in `repo` (creating it if needed), unless the
/// same signature by `key` is already there. Existing layers are kept as they are. When another
/// signer rewrites the image at the same moment, the push is repeated so neither signature is lost.
pub async fn push_signature(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
    layer: &SignatureLayer,
    key: &PublicKey,
) -> Result<PushOutcome, Error> {
    let tag = digest.signature_tag();
    for attempt in 0..PUSH_ATTEMPTS {
        let existing = existing_layers(client, repo, digest).await?;
        if let Some(n) = contains(&existing, layer, key) {
            return Ok(if attempt > 0 {
                PushOutcome::Added { layers: n }
            } else {
                PushOutcome::AlreadyPresent { layers: n }
            });
        }
        client.push_blob(repo, &layer.payload).await?;
        let mut layers = existing;
        layers.push(layer.descriptor.clone());
        let (manifest, config) = signature_image(&layers);
        client.push_blob(repo, &config).await?;
        client
            .put_manifest(repo, &tag, OCI_MANIFEST_MEDIA_TYPE, &manifest)
            .await?;
    }
    // Still not visible after our pushes: report what the registry holds now.
    let existing = existing_layers(client, repo, digest).await?;
    match contains(&existing, layer, key) {
        Some(n) => Ok(PushOutcome::Added { layers: n }),
        None => Err(Error::NotFound {
            host: repo.api_host().to_string(),
            what: format!(
                "the pushed signature in {} (other signers kept rewriting it; try again)",
                signature_location(repo, digest)
            ),
        }),
    }
}

/// `Some(total layers)` when `layer` (by `key`) is among `existing`.
fn contains(existing: &[Descriptor], layer: &SignatureLayer, key: &PublicKey) -> Option<usize> {
    existing
        .iter()
        .any(|d| is_same_signature(d, layer, key))
        .then_some(existing.len())
}

async fn existing_layers(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<Vec<Descriptor>, Error> {
    existing_artifact_layers(client, repo, digest, Artifact::Signatures).await
}

async fn existing_artifact_layers(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
    artifact: Artifact,
) -> Result<Vec<Descriptor>, Error> {
    let tag = artifact.tag(digest);
    match client.get_manifest(repo, &tag).await? {
        None => Ok(Vec::new()),
        Some(m) => ImageManifest::parse(&m.bytes)
            .map(|m| m.layers)
            .map_err(|e| Error::InvalidJson {
                host: repo.api_host().to_string(),
                what: format!(
                    "{} manifest {}",
                    manifest_noun(artifact),
                    artifact_location(repo, digest, artifact)
                ),
                detail: e.to_string(),
            }),
    }
}

/// What pushing an attestation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPushed {
    /// Layers of the `.att` image now.
    pub layers: usize,
    /// Layers of the same predicate type removed (`--replace`).
    pub replaced: usize,
}

/// Appends the DSSE envelope `layer` to the `.att` image of `digest` in `repo` (creating it if
/// needed), as `cosign attest` does; with `replace`, first drops the layers whose
/// `predicateType` annotation is that predicate type (`cosign attest --replace`). Existing
/// layers are otherwise kept as they are; a concurrent rewrite by another signer is retried.
pub async fn push_attestation(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
    layer: &SignatureLayer,
    replace: Option<&str>,
) -> Result<AttestationPushed, Error> {
    use sealgate_core::cosign::dsse::PREDICATE_TYPE_ANNOTATION;
    let tag = Artifact::Attestations.tag(digest);
    let present =
        |layers: &[Descriptor]| layers.iter().any(|d| d.digest == layer.descriptor.digest);
    let mut replaced = 0;
    for _ in 0..PUSH_ATTEMPTS {
        let existing =
            existing_artifact_layers(client, repo, digest, Artifact::Attestations).await?;
        if present(&existing) {
            return Ok(AttestationPushed {
                layers: existing.len(),
                replaced,
            });
        }
        let before = existing.len();
        let mut layers: Vec<Descriptor> = existing
            .into_iter()
            .filter(|d| replace.is_none_or(|t| d.annotation(PREDICATE_TYPE_ANNOTATION) != Some(t)))
            .collect();
        replaced = before - layers.len();
        client.push_blob(repo, &layer.payload).await?;
        layers.push(layer.descriptor.clone());
        let (manifest, config) = signature_image(&layers);
        client.push_blob(repo, &config).await?;
        client
            .put_manifest(repo, &tag, OCI_MANIFEST_MEDIA_TYPE, &manifest)
            .await?;
    }
    let existing = existing_artifact_layers(client, repo, digest, Artifact::Attestations).await?;
    if present(&existing) {
        return Ok(AttestationPushed {
            layers: existing.len(),
            replaced,
        });
    }
    Err(Error::NotFound {
        host: repo.api_host().to_string(),
        what: format!(
            "the pushed attestation in {} (other signers kept rewriting it; try again)",
            artifact_location(repo, digest, Artifact::Attestations)
        ),
    })
}
