//! The data a Kyverno `imageRegistry` context entry reads about an image: its manifest (for an
//! index, the `linux/amd64` image's, as go-containerregistry picks by default, with the index as
//! `manifestList`) and its config blob, every one checked against its digest and bounded by
//! the client's limits.
//!
//! The object has Kyverno's shape: `{image, resolvedImage, registry, repository, identifier,
//! manifestList, manifest, configData}`, with go-containerregistry's names for Docker Hub
//! (`index.docker.io`, `library/` for one-component paths).

use sealgate_core::{Digest, ImageRef};
use serde_json::{Value, json};

use crate::media_type::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use crate::{Client, Error};

/// Kyverno's image data for `image`, written as `reference` in the policy.
pub async fn image_data(
    client: &Client,
    image: &ImageRef,
    reference: &str,
) -> Result<Value, Error> {
    let wanted = match image.digest() {
        Some(digest) => digest.to_string(),
        None => image.tag_or_latest().to_string(),
    };
    let top = client
        .get_manifest(image, &wanted)
        .await?
        .ok_or_else(|| Error::NotFound {
            host: image.api_host().to_string(),
            what: format!("manifest {image}"),
        })?;
    let what = format!("manifest {image}");
    let top_json = parse(&top.bytes, image, &what)?;
    let (manifest_list, manifest) =
        if top.media_type == OCI_INDEX || top.media_type == DOCKER_MANIFEST_LIST {
            let chosen = platform_manifest(&top_json).ok_or_else(|| Error::NotFound {
                host: image.api_host().to_string(),
                what: format!("a linux/amd64 image in index {image}"),
            })?;
            let digest = chosen.parse::<Digest>().map_err(|e| Error::InvalidJson {
                host: image.api_host().to_string(),
                what: what.clone(),
                detail: format!("manifests[].digest '{chosen}': {e}"),
            })?;
            let inner = client
                .get_manifest(image, &digest.to_string())
                .await?
                .ok_or_else(|| Error::NotFound {
                    host: image.api_host().to_string(),
                    what: format!("manifest {digest} of {}", image.repository()),
                })?;
            let inner_json = parse(&inner.bytes, image, &format!("manifest {digest}"))?;
            (top_json, inner_json)
        } else {
            (Value::Null, top_json)
        };
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidJson {
            host: image.api_host().to_string(),
            what: what.clone(),
            detail: "the manifest has no config.digest".into(),
        })?;
    let config_digest = config_digest
        .parse::<Digest>()
        .map_err(|e| Error::InvalidJson {
            host: image.api_host().to_string(),
            what: what.clone(),
            detail: format!("config.digest '{config_digest}': {e}"),
        })?;
    let limit = client.options().limits.manifest_bytes;
    let config = client.get_blob(image, &config_digest, limit).await?;
    let config = parse(&config, image, &format!("config {config_digest}"))?;
    let (registry, repository) = go_names(image);
    let identifier = match (image.tag(), image.digest()) {
        (Some(tag), Some(digest)) => format!("{tag}@{digest}"),
        (None, Some(digest)) => digest.to_string(),
        (Some(tag), None) => tag.to_string(),
        (None, None) => "latest".to_string(),
    };
    Ok(json!({
        "image": reference,
        "resolvedImage": format!("{registry}/{repository}@{}", top.digest),
        "registry": registry,
        "repository": repository,
        "identifier": identifier,
        "manifestList": manifest_list,
        "manifest": manifest,
        "configData": config,
    }))
}

fn parse(bytes: &[u8], image: &ImageRef, what: &str) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
        host: image.api_host().to_string(),
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// The digest of the `linux/amd64` entry of an index (go-containerregistry's default
/// platform), the first without a platform otherwise.
fn platform_manifest(index: &Value) -> Option<&str> {
    let manifests = index.get("manifests")?.as_array()?;
    let of = |m: &Value, key: &str| {
        m.pointer(&format!("/platform/{key}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    manifests
        .iter()
        .find(|m| {
            of(m, "os").as_deref() == Some("linux")
                && of(m, "architecture").as_deref() == Some("amd64")
        })
        .or_else(|| manifests.iter().find(|m| m.get("platform").is_none()))
        .and_then(|m| m.get("digest"))
        .and_then(Value::as_str)
}

/// go-containerregistry's registry and repository names: Docker Hub is `index.docker.io`,
/// and its one-component paths are under `library/`.
fn go_names(image: &ImageRef) -> (String, String) {
    if image.registry() == "docker.io" {
        let path = if image.path().contains('/') {
            image.path().to_string()
        } else {
            format!("library/{}", image.path())
        };
        ("index.docker.io".to_string(), path)
    } else {
        (image.registry().to_string(), image.path().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_amd64_linux_image_of_an_index_is_chosen() {
        let index = json!({"manifests": [
            {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "amd64"}},
        ]});
        assert_eq!(platform_manifest(&index), Some("sha256:b"));
        let none = json!({"manifests": [
            {"digest": "sha256:a", "platform": {"os": "windows", "architecture": "amd64"}},
        ]});
        assert_eq!(platform_manifest(&none), None);
    }

    #[test]
    fn docker_hub_names_are_go_containerregistry_s() {
        let nginx = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(
            go_names(&nginx),
            ("index.docker.io".into(), "library/nginx".into())
        );
        let ghcr = ImageRef::parse("ghcr.io/o/app:v1").unwrap();
        assert_eq!(go_names(&ghcr), ("ghcr.io".into(), "o/app".into()));
    }
}
