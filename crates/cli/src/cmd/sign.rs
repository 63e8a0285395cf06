//! `sealgate sign`: cosign-compatible signatures pushed next to the image: a layer of the
//! `.sig` tag, or, with `--new-bundle-format`, a Sigstore bundle of cosign v3's sign statement
//! as an OCI 1.1 referrer.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealgate_core::ImageRef;
use sealgate_core::cosign::{
    Descriptor, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, payload,
};
use sealgate_core::sigstore::bundle::{COSIGN_SIGN_PREDICATE, sign_statement};
use sealgate_registry::signatures::{
    PushOutcome, push_signature, resolve_digest, signature_location,
};

use super::signing::{BUNDLE_FORMAT_HELP, Signer, SignerArgs};
use super::{Outcome, parse_key_value};

/// Arguments of `sign`.
#[derive(Debug, clap::Args)]
#[command(after_help = after_help())]
pub(crate) struct Args {
    #[command(flatten)]
    signer: SignerArgs,

    /// Add key=value to the signed payload's annotations (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    annotations: Vec<(String, String)>,
}

fn after_help() -> String {
    format!(
        "A tag is resolved to the digest it points to at that moment, and that digest is signed. \
Signatures are stored as cosign stores them (REPO:sha256-<hex>.sig, one layer per signature); a \
second key adds a layer, signing again with the same key adds nothing. {BUNDLE_FORMAT_HELP} The \
bundle signs cosign's sign statement (in-toto Statement v1 of the digest, predicate type \
{COSIGN_SIGN_PREDICATE}, the -a annotations on its subject). Nothing is uploaded to a \
transparency log (Rekor): none is reachable from sealgate's environments, so verifiers must not \
require one for these signatures (Kyverno: rekor.ignoreTlog: true; cosign: \
--insecure-ignore-tlog).\n\nExamples:\n  COSIGN_PASSWORD=... sealgate sign --key cosign.key \
registry.company.com/app:v1\n  sealgate sign --key cosign.key -a git-sha=4f2c1e0 \
registry.company.com/app:v1\n  sealgate sign --key cosign.key --new-bundle-format \
registry.company.com/app:v1"
    )
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let signer = args.signer.load()?;
    let annotations: BTreeMap<String, String> = args.annotations.iter().cloned().collect();
    for image in &signer.images {
        if signer.bundle_format {
            sign_bundle(&signer, image, &annotations).await?;
        } else {
            sign_layer(&signer, image, &annotations).await?;
        }
    }
    Ok(Outcome::Success)
}

/// A simple-signing layer of the `.sig` image, unless this key's signature is there already.
async fn sign_layer(
    signer: &Signer,
    image: &ImageRef,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let client = &signer.client;
    let digest = resolve_digest(client, image).await?;
    let payload_bytes = payload::build(&image.cosign_identity(), &digest, annotations);
    let signature = signer.key.sign(&signer.rng, &payload_bytes)?;
    let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload_bytes);
    let mut layer_annotations = signer.certificate_annotations.clone();
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
    match push_signature(client, image, &digest, &layer, signer.key.public_key()).await? {
        PushOutcome::Added { layers } => eprintln!(
            "Signed {image} ({digest}): pushed the signature to {location} ({layers} signature(s) there now)"
        ),
        PushOutcome::AlreadyPresent { layers } => eprintln!(
            "{image} ({digest}) is already signed with this key at {location} ({layers} signature(s) there); nothing pushed"
        ),
    }
    Ok(())
}

/// A Sigstore bundle of cosign v3's sign statement, as a referrer of the image.
async fn sign_bundle(
    signer: &Signer,
    image: &ImageRef,
    annotations: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let subject = signer.subject(image).await?;
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let statement = sign_statement(&subject.digest, &annotations);
    let envelope = signer.envelope(&statement)?;
    let pushed = signer
        .push_bundle(image, &subject, &envelope, COSIGN_SIGN_PREDICATE)
        .await?;
    eprintln!("Signed {image} ({}): pushed {pushed}", subject.digest);
    Ok(())
}
