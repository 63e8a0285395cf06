//! OCI manifests as cosign's `.sig` images use them, and building a new `.sig` image.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{OCI_CONFIG_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE};
use crate::image::digest::Digest;

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The size in bytes.
    pub size: u64,
    /// The digest of the content.
    pub digest: Digest,
    /// Annotations, written in sorted key order as Go does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Fields sealgate does not interpret, kept when a manifest is rewritten.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor for `bytes` of `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            size: bytes.len() as u64,
            digest: Digest::sha256_of(bytes),
            annotations: None,
            extra: serde_json::Map::new(),
        }
    }

    /// The annotation `key`, if present.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// An OCI (or Docker schema 2) image manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest media type, when the manifest names it.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not a JSON image manifest.
    #[error("not an OCI image manifest: {0}")]
    Malformed(String),
    /// Too many layers.
    #[error("the signature image has {0} layers, more than the {max} allowed", max = super::MAX_SIGNATURE_LAYERS)]
    TooManyLayers(usize),
}

impl ImageManifest {
    /// Parses manifest bytes.
    pub fn parse(bytes: &[u8]) -> Result<ImageManifest, ManifestError> {
        let m: ImageManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        if m.layers.len() > super::MAX_SIGNATURE_LAYERS {
            return Err(ManifestError::TooManyLayers(m.layers.len()));
        }
        Ok(m)
    }
}

/// The config blob go-containerregistry writes for an image of `layers` uncompressed layers.
fn signature_config(layers: &[Descriptor]) -> Vec<u8> {
    let zero = r#"{"created":"0001-01-01T00:00:00Z"}"#;
    let history = vec![zero; layers.len()].join(",");
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("\"{}\"", l.digest)).collect();
    format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{history}],"os":"","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{{}}}}"#,
        diff_ids.join(",")
    )
    .into_bytes()
}

/// The manifest and config bytes of a cosign `.sig` image holding `layers`, as cosign writes them.
pub fn signature_image(layers: &[Descriptor]) -> (Vec<u8>, Vec<u8>) {
    let config = signature_config(layers);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST_MEDIA_TYPE.to_string()),
        config: Descriptor::of(OCI_CONFIG_MEDIA_TYPE, &config),
        layers: layers.to_vec(),
        annotations: None,
    };
    // Serialising plain structs with string maps cannot fail.
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    (bytes, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNAISSEUR_SIG: &[u8] = include_bytes!("../../testdata/connaisseur/sig-manifest.json");

    #[test]
    fn reads_a_real_keyless_sig_manifest() {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        assert_eq!(m.layers.len(), 1);
        let l = &m.layers[0];
        assert_eq!(l.media_type, super::super::SIMPLE_SIGNING_MEDIA_TYPE);
        assert!(
            l.annotation(super::super::CERTIFICATE_ANNOTATION)
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert_eq!(m.config.size, 233);
    }

    #[test]
    fn config_for_one_layer_is_the_233_bytes_cosign_writes() {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        let (manifest, config) = signature_image(&m.layers);
        assert_eq!(config.len(), 233);
        // The connaisseur fixture's config has this exact digest.
        assert_eq!(Digest::sha256_of(&config), m.config.digest);
        let back = ImageManifest::parse(&manifest).unwrap();
        assert_eq!(back.layers, m.layers);
        let text = String::from_utf8(manifest).unwrap();
        assert!(text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:"#), "{text}");
    }

    #[test]
    fn unknown_descriptor_fields_survive_a_rewrite() {
        let d = r#"{"mediaType":"x","size":1,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","urls":["u"]}"#;
        let desc: Descriptor = serde_json::from_str(d).unwrap();
        let (manifest, _) = signature_image(&[desc]);
        assert!(
            String::from_utf8(manifest)
                .unwrap()
                .contains(r#""urls":["u"]"#)
        );
    }
}
