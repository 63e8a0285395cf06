//! OCI 1.1 referrers: the manifests whose `subject` is an image, as cosign v3 stores Sigstore
//! bundles. Read through the referrers API (`GET /v2/<repo>/referrers/<digest>`), or, where a
//! registry lacks it (Debian's distribution 2.8 answers 404), the referrers tag schema: the
//! index at tag `sha256-<hex>`. Written by pushing the referrer by digest and, without the API,
//! adding it to that index (as go-containerregistry does for cosign).
//!
//! Every manifest and blob is checked against its digest and bounded in size; at most
//! [`MAX_REFERRERS`] referrers are read (Kyverno's limit and message).

use serde_json::{Value, json};

use crate::{Client, Error, media_type};
use sealgate_core::cosign::{Descriptor, ImageManifest};
use sealgate_core::sigstore::bundle::{BUNDLE_MEDIA_TYPE_PREFIX, MAX_BUNDLE_BYTES};
use sealgate_core::sigstore::bundle_set::{BundleSet, ReferrerBundle};
use sealgate_core::{Digest, ImageRef};

/// The most referrers read for one image (Kyverno: `too many referrers found, max limit is 50`).
pub const MAX_REFERRERS: usize = 50;
/// The config media type of an artifact manifest with no config.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The empty config blob.
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// How the referrers were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrersSource {
    /// The registry's referrers API.
    Api,
    /// The referrers tag schema (`sha256-<hex>` index).
    TagSchema,
}

/// The referrers of one image.
#[derive(Debug, Clone)]
pub struct Referrers {
    /// Where they were looked for, e.g. `127.0.0.1:5000/app@sha256:… (referrers API)`.
    pub location: String,
    /// How.
    pub source: ReferrersSource,
    /// Their descriptors, as the index lists them.
    pub descriptors: Vec<Value>,
}

/// One Sigstore bundle found among the referrers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBundle {
    /// The referrer manifest's digest.
    pub manifest: Digest,
    /// The bundle's media type (the layer's).
    pub media_type: String,
    /// The bundle bytes (digest-checked, at most [`MAX_BUNDLE_BYTES`]).
    pub bytes: Vec<u8>,
}

fn invalid(host: &str, what: &str, detail: impl Into<String>) -> Error {
    Error::InvalidJson {
        host: host.to_string(),
        what: what.to_string(),
        detail: detail.into(),
    }
}

/// The referrers of `digest` in `repo`: through the API (filtered by `artifact_type` when the
/// registry honours the filter, and here too), else the tag schema's index (not filtered:
/// go-containerregistry records the config type there, not the artifact type). A missing
/// fallback tag is no referrers.
pub async fn list_referrers(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
    artifact_type: Option<&str>,
) -> Result<Referrers, Error> {
    let host = repo.api_host().to_string();
    let (source, index) = match client.get_referrers(repo, digest, artifact_type).await? {
        Some(bytes) => (ReferrersSource::Api, Some(bytes)),
        None => (
            ReferrersSource::TagSchema,
            client
                .get_manifest(repo, &digest.referrers_tag())
                .await?
                .map(|m| m.bytes),
        ),
    };
    let location = match source {
        ReferrersSource::Api => format!("{}@{digest} (referrers API)", repo.repository()),
        ReferrersSource::TagSchema => {
            format!(
                "{}:{} (referrers tag)",
                repo.repository(),
                digest.referrers_tag()
            )
        }
    };
    let mut descriptors = match index {
        None => Vec::new(),
        Some(bytes) => {
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| invalid(&host, &location, e.to_string()))?;
            v["manifests"]
                .as_array()
                .cloned()
                .ok_or_else(|| invalid(&host, &location, "not an index: no manifests"))?
        }
    };
    if source == ReferrersSource::Api
        && let Some(t) = artifact_type
    {
        descriptors.retain(|d| d["artifactType"].as_str().is_some_and(|a| a.starts_with(t)));
    }
    Ok(Referrers {
        location,
        source,
        descriptors,
    })
}

/// The Sigstore bundles among the referrers of `digest` (cosign's rule: a referrer whose one
/// layer has a bundle media type; its `subject` must be `digest`), with where they were found.
/// More than [`MAX_REFERRERS`] candidates is an error, as in Kyverno.
pub async fn fetch_bundles(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<(String, Vec<FetchedBundle>), Error> {
    let (location, found) = referrer_bundles(client, repo, digest, false).await?;
    let bundles = found
        .into_iter()
        .map(|(manifest, media_type, bytes)| {
            bytes.map(|bytes| FetchedBundle {
                manifest,
                media_type,
                bytes,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((location, bundles))
}

/// The Sigstore bundles among the referrers of `digest`, each read once
/// ([`BundleSet`], as the engine checks them): as [`fetch_bundles`] finds them, except that a
/// bundle whose blob is missing or over [`MAX_BUNDLE_BYTES`] spoils only that bundle (kept with
/// why), as a `.sig` layer's payload does. A digest mismatch or a transport failure still fails
/// the fetch.
pub async fn fetch_bundle_set(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<BundleSet, Error> {
    let (location, found) = referrer_bundles(client, repo, digest, true).await?;
    let bundles = found
        .into_iter()
        .map(|(manifest, _, bytes)| match bytes {
            Ok(bytes) => ReferrerBundle::read(manifest, Ok(bytes.as_slice())),
            Err(e) => ReferrerBundle::read(manifest, Err(e.to_string())),
        })
        .collect();
    Ok(BundleSet {
        location,
        image_digest: digest.clone(),
        bundles,
    })
}

/// A referrer manifest holding a bundle: its digest, the layer's media type and the blob (or,
/// when `lenient`, why a missing or oversized blob could not be read).
type Found = (Digest, String, Result<Vec<u8>, Error>);

async fn referrer_bundles(
    client: &Client,
    repo: &ImageRef,
    digest: &Digest,
    lenient: bool,
) -> Result<(String, Vec<Found>), Error> {
    let host = repo.api_host().to_string();
    let referrers = list_referrers(client, repo, digest, None).await?;
    if referrers.descriptors.len() > MAX_REFERRERS {
        return Err(invalid(
            &host,
            &referrers.location,
            format!("too many referrers found, max limit is {MAX_REFERRERS}"),
        ));
    }
    let mut bundles = Vec::new();
    for d in &referrers.descriptors {
        let Some(manifest_digest) = d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok())
        else {
            continue;
        };
        // get_manifest checks the bytes against the digest asked for.
        let Some(m) = client
            .get_manifest(repo, &manifest_digest.to_string())
            .await?
        else {
            continue;
        };
        let Ok(parsed) = ImageManifest::parse(&m.bytes) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&m.bytes).unwrap_or(Value::Null);
        if v["subject"]["digest"].as_str() != Some(digest.to_string().as_str()) {
            continue;
        }
        let [layer] = parsed.layers.as_slice() else {
            continue;
        };
        if !layer.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
            continue;
        }
        let bytes = match client.get_blob(repo, &layer.digest, MAX_BUNDLE_BYTES).await {
            Ok(bytes) => Ok(bytes),
            Err(e @ (Error::NotFound { .. } | Error::TooLarge { .. })) if lenient => Err(e),
            Err(e) => return Err(e),
        };
        bundles.push((manifest_digest, layer.media_type.clone(), bytes));
    }
    Ok((referrers.location, bundles))
}

/// Where a referrer was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferrerPushed {
    /// The referrer manifest's digest.
    pub manifest: Digest,
    /// Whether the referrers tag index was written too (the registry has no referrers API).
    pub tag_schema: bool,
}

/// Pushes `bundle` (of `bundle_media_type`) as a referrer of `subject` (its manifest's media
/// type and size given), as cosign v3 writes it: an OCI manifest with `artifactType` the bundle
/// type, the empty config, one layer, the `subject`, pushed by digest; then, when the registry
/// has no referrers API, the referrer added to the `sha256-<hex>` index (kept sorted, once).
pub async fn push_bundle_referrer(
    client: &Client,
    repo: &ImageRef,
    subject: &Descriptor,
    bundle_media_type: &str,
    bundle: &[u8],
    annotations: serde_json::Map<String, Value>,
) -> Result<ReferrerPushed, Error> {
    client.push_blob(repo, EMPTY_CONFIG).await?;
    let layer_digest = client.push_blob(repo, bundle).await?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "artifactType": bundle_media_type,
        "config": {
            "mediaType": EMPTY_CONFIG_MEDIA_TYPE,
            "size": EMPTY_CONFIG.len(),
            "digest": Digest::sha256_of(EMPTY_CONFIG).to_string(),
        },
        "layers": [{
            "mediaType": bundle_media_type,
            "size": bundle.len(),
            "digest": layer_digest.to_string(),
        }],
        "subject": {
            "mediaType": subject.media_type,
            "size": subject.size,
            "digest": subject.digest.to_string(),
        },
        "annotations": annotations,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Transport {
        host: repo.api_host().to_string(),
        detail: e.to_string(),
    })?;
    let digest = Digest::sha256_of(&bytes);
    client
        .put_manifest(repo, &digest.to_string(), media_type::OCI_MANIFEST, &bytes)
        .await?;
    if client
        .get_referrers(repo, &subject.digest, None)
        .await?
        .is_some()
    {
        return Ok(ReferrerPushed {
            manifest: digest,
            tag_schema: false,
        });
    }
    let tag = subject.digest.referrers_tag();
    let mut index = match client.get_manifest(repo, &tag).await? {
        Some(m) => serde_json::from_slice::<Value>(&m.bytes).map_err(|e| {
            invalid(
                repo.api_host(),
                &format!("referrers tag {tag}"),
                e.to_string(),
            )
        })?,
        None => json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": []}),
    };
    let entries = index["manifests"].as_array_mut().ok_or_else(|| {
        invalid(
            repo.api_host(),
            &format!("referrers tag {tag}"),
            "no manifests",
        )
    })?;
    if !entries
        .iter()
        .any(|e| e["digest"].as_str() == Some(digest.to_string().as_str()))
    {
        entries.push(json!({
            "mediaType": media_type::OCI_MANIFEST,
            "size": bytes.len(),
            "digest": digest.to_string(),
            "artifactType": bundle_media_type,
        }));
        entries.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
        let index_bytes = serde_json::to_vec(&index).map_err(|e| Error::Transport {
            host: repo.api_host().to_string(),
            detail: e.to_string(),
        })?;
        client
            .put_manifest(repo, &tag, media_type::OCI_INDEX, &index_bytes)
            .await?;
    }
    Ok(ReferrerPushed {
        manifest: digest,
        tag_schema: true,
    })
}
