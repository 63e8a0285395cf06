//! `sealgate attest`: in-toto attestations signed with a key and stored as cosign stores them
//! (a DSSE envelope layer of `REPO:sha256-<hex>.att`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use ring::rand::SystemRandom;
use sealgate_core::cosign::dsse::{
    DSSE_MEDIA_TYPE, Envelope, IN_TOTO_PAYLOAD_TYPE, PREDICATE_TYPE_ANNOTATION, predicate_type_uri,
    statement,
};
use sealgate_core::cosign::{
    CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Descriptor, SIGNATURE_ANNOTATION, SignatureLayer,
};
use sealgate_core::crypto::key::PublicKey;
use sealgate_core::engine::Artifact;
use sealgate_core::timestamp::{Clock, Rfc3339};
use sealgate_files::{CERTIFICATE_FILE, FileKind, read_bounded, read_text_bounded};
use sealgate_registry::driver::SystemClock;
use sealgate_registry::signatures::{artifact_location, push_attestation, resolve_digest};

use super::{Outcome, load_signing_key};
use crate::registry_args::ImageTargets;

/// Predicate files: at most 1 MiB (the envelope must stay under what verifiers fetch).
const PREDICATE_FILE: FileKind = FileKind {
    plural: "predicate files",
    limit: 1 << 20,
};

/// Arguments of `attest`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "A tag is resolved to the digest it points to at that moment, and an in-toto \
statement about that digest (Statement v0.1, the image's repository and digest as its subject) \
is signed with the key as a DSSE envelope, as cosign attest does. The envelope is appended as \
a layer (media type application/vnd.dsse.envelope.v1+json, annotation predicateType) to \
REPO:sha256-<hex>.att. --type takes cosign's names (custom, slsaprovenance, slsaprovenance02, \
slsaprovenance1, link, spdx, spdxjson, cyclonedx, vuln, openvex) or a predicate type URI; \
custom wraps the file as {\"Data\": TEXT, \"Timestamp\": NOW}, spdx keeps it as text, every other \
type takes the JSON object the file holds, unchanged. Nothing is uploaded to a transparency \
log.\n\nExamples:\n  sealgate attest --key cosign.key --type slsaprovenance --predicate provenance.json registry.company.com/app:v1\n  sealgate attest --key cosign.key --type https://example.com/CodeReview/v1 --predicate review.json registry.company.com/app:v1"
)]
pub(crate) struct Args {
    /// The cosign private key file (password from COSIGN_PASSWORD, the terminal or stdin).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// The predicate file.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,

    /// The predicate type: one of cosign's names or a URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    predicate_type: String,

    /// Replace the attestations of the same predicate type already there.
    #[arg(long)]
    replace: bool,

    /// A PEM certificate for the key, attached to the attestation.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,

    /// PEM certificates from the --cert's issuer up to the root, attached to the attestation.
    #[arg(long, value_name = "FILE", requires = "cert")]
    cert_chain: Option<PathBuf>,

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
    let predicate_type = predicate_type_uri(&args.predicate_type)
        .map_err(anyhow::Error::from)
        .context("--type")?
        .to_string();
    let predicate = read_bounded(&args.predicate, PREDICATE_FILE)
        .with_context(|| format!("reading the predicate {}", args.predicate.display()))?;
    let rng = SystemRandom::new();
    let key = load_signing_key(&args.key, &rng)?;
    let mut annotations = BTreeMap::from([
        (SIGNATURE_ANNOTATION.to_string(), String::new()),
        (
            PREDICATE_TYPE_ANNOTATION.to_string(),
            predicate_type.clone(),
        ),
    ]);
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
        annotations.insert(CERTIFICATE_ANNOTATION.to_string(), cert);
        annotations.insert(CHAIN_ANNOTATION.to_string(), chain);
    }
    let client = args.targets.client_for(&images)?;
    let limit = client.options().limits.payload_bytes;
    let timestamp = Rfc3339(SystemClock.now()).to_string();
    for image in &images {
        let digest = resolve_digest(&client, image).await?;
        let statement = statement(
            &args.predicate_type,
            &predicate,
            &image.cosign_identity(),
            &digest,
            &timestamp,
        )
        .with_context(|| format!("--predicate {}", args.predicate.display()))?;
        let envelope = Envelope::sign(&key, &rng, IN_TOTO_PAYLOAD_TYPE, &statement)?.to_json();
        if envelope.len() > limit {
            bail!(
                "the attestation of {image} would be {} bytes, more than the {} bytes verifiers fetch; use a smaller predicate",
                envelope.len(),
                limit
            );
        }
        let mut descriptor = Descriptor::of(DSSE_MEDIA_TYPE, &envelope);
        descriptor.annotations = Some(annotations.clone());
        let layer = SignatureLayer {
            descriptor,
            payload: envelope,
        };
        let replace = args.replace.then_some(predicate_type.as_str());
        let pushed = push_attestation(&client, image, &digest, &layer, replace).await?;
        let location = artifact_location(image, &digest, Artifact::Attestations);
        let replaced = match pushed.replaced {
            0 => String::new(),
            n => format!(", {n} of the same type replaced"),
        };
        eprintln!(
            "Attested {image} ({digest}): pushed a {predicate_type} attestation to {location} ({} attestation(s) there now{replaced})",
            pushed.layers
        );
    }
    Ok(Outcome::Success)
}
