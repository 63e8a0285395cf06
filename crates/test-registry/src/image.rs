//! Tiny OCI images to push: one config blob and one uncompressed tar layer holding a text file
//! that names the repository, tag and platform, so every (repository, tag, platform) has its
//! own digest.

use sealgate_core::{Digest, ImageRef};
use sealgate_registry::{Client, Error, media_type};
use serde_json::json;

/// The platforms of the index [`push_tiny_index`] pushes.
pub const INDEX_PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

/// Pushes a one-layer linux/amd64 OCI image and tags it with `image`'s tag (`latest` if none).
/// Returns the manifest digest.
pub async fn push_tiny_image(client: &Client, image: &ImageRef) -> Result<Digest, Error> {
    let manifest = push_image_blobs(client, image, "linux", "amd64").await?;
    client
        .put_manifest(
            image,
            image.tag_or_latest(),
            media_type::OCI_MANIFEST,
            &manifest,
        )
        .await
}

/// Pushes an OCI index of two tiny images ([`INDEX_PLATFORMS`]) and tags it with `image`'s tag.
/// Returns the index digest; the platform manifests are pushed by digest only.
pub async fn push_tiny_index(client: &Client, image: &ImageRef) -> Result<Digest, Error> {
    let mut manifests = Vec::new();
    for (os, architecture) in INDEX_PLATFORMS {
        let manifest = push_image_blobs(client, image, os, architecture).await?;
        let digest = Digest::sha256_of(&manifest);
        client
            .put_manifest(
                image,
                &digest.to_string(),
                media_type::OCI_MANIFEST,
                &manifest,
            )
            .await?;
        manifests.push(json!({
            "mediaType": media_type::OCI_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "platform": {"architecture": architecture, "os": os},
        }));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let bytes = to_json(&index);
    client
        .put_manifest(image, image.tag_or_latest(), media_type::OCI_INDEX, &bytes)
        .await
}

/// Pushes the layer and config of one tiny image; returns its manifest bytes (not pushed).
async fn push_image_blobs(
    client: &Client,
    image: &ImageRef,
    os: &str,
    architecture: &str,
) -> Result<Vec<u8>, Error> {
    let text = format!(
        "sealgate test image {} {os}/{architecture}\n",
        image.pinned_string()
    );
    let layer = tar_with_one_file("hello.txt", text.as_bytes());
    let layer_digest = client.push_blob(image, &layer).await?;
    let config = to_json(&json!({
        "architecture": architecture,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "sealgate-test-registry"}],
    }));
    let config_digest = client.push_blob(image, &config).await?;
    Ok(to_json(&json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": media_type::OCI_LAYER_TAR, "digest": layer_digest, "size": layer.len()}],
    })))
}

fn to_json(value: &serde_json::Value) -> Vec<u8> {
    // serialising a Value built from json! cannot fail
    serde_json::to_vec(value).unwrap_or_default()
}

const BLOCK: usize = 512;

/// A POSIX ustar archive holding one regular file.
pub(crate) fn tar_with_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; BLOCK];
    let mut put =
        |offset: usize, field: &[u8]| header[offset..offset + field.len()].copy_from_slice(field);
    put(0, &name.as_bytes()[..name.len().min(99)]);
    put(100, b"0000644\0"); // mode
    put(108, b"0000000\0"); // uid
    put(116, b"0000000\0"); // gid
    put(124, format!("{:011o}\0", content.len()).as_bytes()); // size
    put(136, b"00000000000\0"); // mtime
    put(148, b"        "); // checksum, as spaces while summing
    put(156, b"0"); // regular file
    put(257, b"ustar\0"); // magic
    put(263, b"00"); // version
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());

    let padded = content.len().div_ceil(BLOCK) * BLOCK;
    let mut tar = Vec::with_capacity(BLOCK + padded + 2 * BLOCK);
    tar.extend_from_slice(&header);
    tar.extend_from_slice(content);
    tar.resize(BLOCK + padded + 2 * BLOCK, 0);
    tar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_layout() {
        let tar = tar_with_one_file("hello.txt", b"hi\n");
        assert_eq!(tar.len(), 512 * 4);
        assert_eq!(&tar[0..9], b"hello.txt");
        assert_eq!(&tar[124..136], b"00000000003\0");
        assert_eq!(&tar[512..515], b"hi\n");
        // the checksum field holds the sum of the header with the field as spaces
        let mut header = tar[..512].to_vec();
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(&tar[148..156], format!("{sum:06o}\0 ").as_bytes());
    }
}
