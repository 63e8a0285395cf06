//! What `sign` and `attest` share: their flags, the key (its password asked for as cosign
//! asks) with the certificate attached to what it signs, the images and their registry client,
//! and, with `--new-bundle-format`, a Sigstore bundle (v0.3) of a DSSE envelope pushed as an
//! OCI 1.1 referrer of the image, as cosign v3 writes one, and the words that report it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ring::rand::SystemRandom;
use sealgate_core::ImageRef;
use sealgate_core::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use sealgate_core::cosign::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Descriptor};
use sealgate_core::crypto::key::{PublicKey, SigningKey};
use sealgate_core::sigstore::bundle::{BUNDLE_V03_MEDIA_TYPE, MAX_BUNDLE_BYTES, key_bundle};
use sealgate_core::timestamp::{Clock, Rfc3339};
use sealgate_files::{CERTIFICATE_FILE, read_text_bounded};
use sealgate_registry::driver::SystemClock;
use sealgate_registry::referrers::push_bundle_referrer;
use sealgate_registry::{Client, Error as RegistryError};

use super::load_signing_key;
use crate::registry_args::ImageTargets;

/// The referrer manifest's annotations, as cosign v3 writes them
/// (`WriteAttestationNewBundleFormat`): when, what the bundle holds, and its predicate type.
const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
const BUNDLE_CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
const BUNDLE_PREDICATE_TYPE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";

/// What `after_help` of `sign` and `attest` says about `--new-bundle-format`.
pub(crate) const BUNDLE_FORMAT_HELP: &str = "With --new-bundle-format (cosign v3's flag, \
which is on by default in cosign v3 and off here), what is signed is instead a Sigstore bundle \
(v0.3, the key's hint, a DSSE envelope, no transparency log entry) pushed by digest as an OCI 1.1 \
referrer of the image (artifactType application/vnd.dev.sigstore.bundle.v0.3+json, the empty \
config, the image as its subject); where the registry has no referrers API, the referrer is \
added to the referrers tag index REPO:sha256-<hex>. Every run adds a referrer. Not supported \
with it: --cert and --cert-chain (only key bundles are written), and keyless signing, which \
sealgate never does (--key is required).";

/// The flags `sign` and `attest` share.
#[derive(Debug, clap::Args)]
pub(crate) struct SignerArgs {
    /// The cosign private key file (password from COSIGN_PASSWORD, the terminal or stdin).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// A PEM certificate for the key, attached to what is pushed (not with
    /// --new-bundle-format).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// PEM certificates from the --cert's issuer up to the root, attached with it.
    #[arg(long, value_name = "FILE", requires = "cert")]
    cert_chain: Option<PathBuf>,

    /// Push a Sigstore bundle (v0.3) as an OCI 1.1 referrer of the image instead of a layer of
    /// the .sig/.att tag (cosign v3's flag; off unless given; --new-bundle-format=false also
    /// accepted).
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    new_bundle_format: bool,

    /// Accepted for cosign compatibility; sealgate never uploads to a transparency log.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    tlog_upload: Option<bool>,

    /// Accepted for cosign compatibility (sealgate asks no questions).
    #[arg(short = 'y', long, hide = true)]
    yes: bool,

    #[command(flatten)]
    targets: ImageTargets,
}

impl SignerArgs {
    /// Whether `--new-bundle-format` was given (and not `=false`).
    pub(crate) fn bundle_format(&self) -> bool {
        self.new_bundle_format
    }

    /// Refuses what sealgate cannot write, parses the images, loads the key (asking for its
    /// password) and the certificate, and builds the registry client.
    pub(crate) fn load(&self) -> anyhow::Result<Signer> {
        if self.new_bundle_format && self.cert.is_some() {
            bail!(
                "--cert is not supported with --new-bundle-format: sealgate writes key bundles \
only (the key's hint, no certificate); leave out --cert, or leave out --new-bundle-format to \
attach the certificate to the .sig/.att layer"
            );
        }
        let images = self.targets.images()?;
        let rng = SystemRandom::new();
        let key = load_signing_key(&self.key, &rng)?;
        let certificate_annotations = self.certificate_annotations(key.public_key())?;
        let client = self.targets.client_for(&images)?;
        Ok(Signer {
            images,
            client,
            key,
            rng,
            certificate_annotations,
            bundle_format: self.new_bundle_format,
        })
    }

    /// The `--cert` and `--cert-chain` annotations (none without `--cert`); the certificate
    /// must be for `key`.
    fn certificate_annotations(&self, key: &PublicKey) -> anyhow::Result<BTreeMap<String, String>> {
        let Some(cert_path) = &self.cert else {
            return Ok(BTreeMap::new());
        };
        let cert = read_text_bounded(cert_path, CERTIFICATE_FILE)
            .with_context(|| format!("reading the certificate {}", cert_path.display()))?;
        let cert_key = PublicKey::from_certificate_pem(&cert)
            .with_context(|| format!("reading the certificate {}", cert_path.display()))?;
        if &cert_key != key {
            bail!(
                "the certificate {} is for another key ({}) than {} ({}); pass the certificate issued for this key",
                cert_path.display(),
                cert_key.fingerprint(),
                self.key.display(),
                key.fingerprint()
            );
        }
        let chain = match &self.cert_chain {
            Some(p) => read_text_bounded(p, CERTIFICATE_FILE)
                .with_context(|| format!("reading the certificate chain {}", p.display()))?,
            None => String::new(),
        };
        Ok(BTreeMap::from([
            (CERTIFICATE_ANNOTATION.to_string(), cert),
            (CHAIN_ANNOTATION.to_string(), chain),
        ]))
    }
}

/// A loaded key, what is attached with it, and the images to sign with their client.
#[derive(Debug)]
pub(crate) struct Signer {
    /// The images named, parsed.
    pub(crate) images: Vec<ImageRef>,
    /// A client whose explicit credentials go to their registries.
    pub(crate) client: Client,
    /// The private key.
    pub(crate) key: SigningKey,
    /// The randomness of every signature.
    pub(crate) rng: SystemRandom,
    /// The `--cert`/`--cert-chain` layer annotations (empty without `--cert`).
    pub(crate) certificate_annotations: BTreeMap<String, String>,
    /// Whether to push Sigstore bundles as referrers (`--new-bundle-format`).
    pub(crate) bundle_format: bool,
}

impl Signer {
    /// The descriptor of `image`'s manifest (media type, size, digest) as the subject of a
    /// referrer: a tag resolved now, a digest reference fetched and checked against its digest.
    pub(crate) async fn subject(&self, image: &ImageRef) -> Result<Descriptor, RegistryError> {
        let reference = match image.digest() {
            Some(digest) => digest.to_string(),
            None => image.tag_or_latest().to_string(),
        };
        match self.client.get_manifest(image, &reference).await? {
            Some(manifest) => {
                let mut subject = Descriptor::of(&manifest.media_type, &manifest.bytes);
                subject.digest = manifest.digest;
                Ok(subject)
            }
            None => Err(RegistryError::NotFound {
                host: image.api_host().to_string(),
                what: format!("manifest {image}"),
            }),
        }
    }

    /// `statement` signed with the key as a DSSE envelope of an in-toto payload.
    pub(crate) fn envelope(&self, statement: &[u8]) -> anyhow::Result<Envelope> {
        Ok(Envelope::sign(
            &self.key,
            &self.rng,
            IN_TOTO_PAYLOAD_TYPE,
            statement,
        )?)
    }

    /// Pushes `envelope` (whose statement has `predicate_type`) as a key-based v0.3 bundle,
    /// referrer of `subject` in `image`'s repository; returns what was written, in words
    /// (`a Sigstore bundle as the referrer REPO@DIGEST, …`).
    pub(crate) async fn push_bundle(
        &self,
        image: &ImageRef,
        subject: &Descriptor,
        envelope: &Envelope,
        predicate_type: &str,
    ) -> anyhow::Result<String> {
        let bundle = key_bundle(envelope, self.key.public_key());
        let limit = MAX_BUNDLE_BYTES.min(self.client.options().limits.blob_bytes);
        if bundle.len() > limit {
            bail!(
                "the Sigstore bundle for {image} would be {} bytes, more than the {limit} bytes \
verifiers fetch; use a smaller predicate",
                bundle.len()
            );
        }
        let mut annotations = serde_json::Map::new();
        annotations.insert(
            CREATED_ANNOTATION.to_string(),
            Rfc3339(SystemClock.now()).to_string().into(),
        );
        annotations.insert(
            BUNDLE_CONTENT_ANNOTATION.to_string(),
            "dsse-envelope".into(),
        );
        annotations.insert(
            BUNDLE_PREDICATE_TYPE_ANNOTATION.to_string(),
            predicate_type.into(),
        );
        let pushed = push_bundle_referrer(
            &self.client,
            image,
            subject,
            BUNDLE_V03_MEDIA_TYPE,
            &bundle,
            annotations,
        )
        .await?;
        let repository = image.repository();
        let listed = if pushed.tag_schema {
            format!(
                "listed in the referrers tag index {repository}:{} (the registry has no referrers API)",
                subject.digest.referrers_tag()
            )
        } else {
            "listed by the registry's referrers API (no referrers tag index written)".to_string()
        };
        Ok(format!(
            "a Sigstore bundle as the referrer {repository}@{}, {listed}",
            pushed.manifest
        ))
    }
}
