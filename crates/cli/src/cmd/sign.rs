//! `sealgate sign`: cosign-compatible signatures pushed next to the image.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use sealgate_core::cosign::{
    CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Descriptor, SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, payload,
};
use sealgate_core::crypto::key::PublicKey;

use sealgate_files::{CERTIFICATE_FILE, read_text_bounded};

use super::{Outcome, load_signing_key, parse_key_value};
use crate::registry_args::ImageTargets;
use sealgate_registry::signatures::{
    PushOutcome, push_signature, resolve_digest, signature_location,
};

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A tag is resolved to the digest it points to at that moment, and that digest \
is signed. Signatures are stored as cosign stores them (REPO:sha256-<hex>.sig, one layer per \
signature); a second key adds a layer, signing again with the same key adds nothing. Nothing is \
uploaded to a transparency log (Rekor): none is reachable from sealgate's environments, so \
verifiers must not require one for these signatures (Kyverno: rekor.ignoreTlog: true).\n\nExamples:\n  COSIGN_PASSWORD=... sealgate sign --key cosign.key registry.company.com/app:v1\n  sealgate sign --key cosign.key -a git-sha=4f2c1e0 registry.company.com/app:v1"
)]
pub(crate) struct Args {
    /// The cosign private key file (password from COSIGN_PASSWORD, the terminal or stdin).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// A PEM certificate for the key, attached to the signature.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// PEM certificates from the --cert's issuer up to the root, attached to the signature.
    #[arg(long, value_name = "FILE", requires = "cert")]
    cert_chain: Option<PathBuf>,

    /// Add key=value to the signed payload's annotations (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    annotations: Vec<(String, String)>,

    /// Accepted for cosign compatibility; sealgate never uploads to a transparency log.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    tlog_upload: Option<bool>,

    /// Accepted for cosign compatibility (sealgate asks no questions).
    #[arg(short = 'y', long, hide = true)]
    yes: bool,

    #[command(flatten)]
    targets: ImageTargets,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let images = args.targets.images()?;
    let rng = SystemRandom::new();
    let key = load_signing_key(&args.key, &rng)?;
    let mut certificate_annotations = BTreeMap::new();
    if let Some(cert_path) = &args.cert {
        let cert = read_text_bounded(cert_path, CERTIFICATE_FILE)
            .with_context(|| format!("reading the certificate {}", cert_path.display()))?;
        let cert_key = PublicKey::from_certificate_pem(&cert)
            .with_context(|| format!("reading the certificate {}", cert_path.display()))?;
        if &cert_key != key.public_key() {
            bail!(
                "the certificate {} is for another key ({}) than {} ({}); pass the certificate issued for this key",
                cert_path.display(),
                cert_key.fingerprint(),
                args.key.display(),
                key.public_key().fingerprint()
            );
        }
        let chain = match &args.cert_chain {
            Some(p) => read_text_bounded(p, CERTIFICATE_FILE)
                .with_context(|| format!("reading the certificate chain {}", p.display()))?,
            None => String::new(),
        };
        certificate_annotations.insert(CERTIFICATE_ANNOTATION.to_string(), cert);
        certificate_annotations.insert(CHAIN_ANNOTATION.to_string(), chain);
    }
    let annotations: BTreeMap<String, String> = args.annotations.iter().cloned().collect();
    let client = args.targets.client_for(&images)?;
    for image in &images {
        let digest = resolve_digest(&client, image).await?;
        let payload_bytes = payload::build(&image.cosign_identity(), &digest, &annotations);
        let signature = key.sign(&rng, &payload_bytes)?;
        let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload_bytes);
        let mut layer_annotations = certificate_annotations.clone();
        layer_annotations.insert(
            SIGNATURE_ANNOTATION.to_string(),
            STANDARD.encode(&signature),
        );
        descriptor.annotations = Some(layer_annotations);
        let layer = SignatureLayer {
            descriptor,
            payload: payload_bytes,
        };
        let location = signature_location(image, &digest);
        match push_signature(&client, image, &digest, &layer, key.public_key()).await? {
            PushOutcome::Added { layers } => {
                eprintln!(
                    "Signed {image} ({digest}): pushed the signature to {location} ({layers} signature(s) there now)"
                )
            }
            PushOutcome::AlreadyPresent { layers } => eprintln!(
                "{image} ({digest}) is already signed with this key at {location} ({layers} signature(s) there); nothing pushed"
            ),
        }
    }
    Ok(Outcome::Success)
}
