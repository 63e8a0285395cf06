//! `sealgate attest`: in-toto attestations signed with a key and stored as cosign stores them
//! (a DSSE envelope layer of `REPO:sha256-<hex>.att`), or, with `--new-bundle-format`, as a
//! Sigstore bundle pushed as an OCI 1.1 referrer of the image, as cosign v3 does.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use sealgate_core::ImageRef;
use sealgate_core::cosign::dsse::{
    DSSE_MEDIA_TYPE, PREDICATE_TYPE_ANNOTATION, predicate_type_uri, statement,
};
use sealgate_core::cosign::{Descriptor, SIGNATURE_ANNOTATION, SignatureLayer};
use sealgate_core::engine::Artifact;
use sealgate_core::timestamp::{Clock, Rfc3339};
use sealgate_files::{FileKind, read_bounded};
use sealgate_registry::driver::SystemClock;
use sealgate_registry::signatures::{artifact_location, push_attestation, resolve_digest};

use super::Outcome;
use super::signing::{BUNDLE_FORMAT_HELP, Signer, SignerArgs};

/// Predicate files: at most 1 MiB (the envelope must stay under what verifiers fetch).
const PREDICATE_FILE: FileKind = FileKind {
    plural: "predicate files",
    limit: 1 << 20,
};

/// Arguments of `attest`.
#[derive(Debug, clap::Args)]
#[command(after_help = after_help())]
pub(crate) struct Args {
    #[command(flatten)]
    signer: SignerArgs,

    /// The predicate file.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,

    /// The predicate type: one of cosign's names or a URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    predicate_type: String,

    /// Replace the attestations of the same predicate type already there (not with
    /// --new-bundle-format).
    #[arg(long)]
    replace: bool,
}

fn after_help() -> String {
    format!(
        "A tag is resolved to the digest it points to at that moment, and an in-toto statement \
about that digest (Statement v0.1, the image's repository and digest as its subject) is signed \
with the key as a DSSE envelope, as cosign attest does. The envelope is appended as a layer \
(media type application/vnd.dsse.envelope.v1+json, annotation predicateType) to \
REPO:sha256-<hex>.att. {BUNDLE_FORMAT_HELP} --replace does not go with it (a referrer is never \
replaced). --type takes cosign's names (custom, slsaprovenance, slsaprovenance02, \
slsaprovenance1, link, spdx, spdxjson, cyclonedx, vuln, openvex) or a predicate type URI; custom \
wraps the file as {{\"Data\": TEXT, \"Timestamp\": NOW}}, spdx keeps it as text, every other \
type takes the JSON object the file holds, unchanged. Nothing is uploaded to a transparency \
log.\n\nExamples:\n  sealgate attest --key cosign.key --type slsaprovenance --predicate \
provenance.json registry.company.com/app:v1\n  sealgate attest --key cosign.key --type \
https://example.com/CodeReview/v1 --predicate review.json registry.company.com/app:v1\n  \
sealgate attest --key cosign.key --new-bundle-format --type slsaprovenance --predicate \
provenance.json registry.company.com/app:v1"
    )
}

/// The predicate, its type's URI and the statement's timestamp, shared by every image.
struct Predicate<'a> {
    args: &'a Args,
    type_uri: String,
    bytes: Vec<u8>,
    timestamp: String,
}

impl Predicate<'_> {
    /// The in-toto statement about `digest` of `image`, as cosign attest makes it.
    fn statement(
        &self,
        image: &ImageRef,
        digest: &sealgate_core::Digest,
    ) -> anyhow::Result<Vec<u8>> {
        statement(
            &self.args.predicate_type,
            &self.bytes,
            &image.cosign_identity(),
            digest,
            &self.timestamp,
        )
        .with_context(|| format!("--predicate {}", self.args.predicate.display()))
    }
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    if args.replace && args.signer.bundle_format() {
        bail!(
            "--replace is not supported with --new-bundle-format: a referrer is added, never \
replaced (cosign v3 ignores --replace there); leave out one of them"
        );
    }
    let type_uri = predicate_type_uri(&args.predicate_type)
        .map_err(anyhow::Error::from)
        .context("--type")?
        .to_string();
    let bytes = read_bounded(&args.predicate, PREDICATE_FILE)
        .with_context(|| format!("reading the predicate {}", args.predicate.display()))?;
    let signer = args.signer.load()?;
    let predicate = Predicate {
        args,
        type_uri,
        bytes,
        timestamp: Rfc3339(SystemClock.now()).to_string(),
    };
    for image in &signer.images {
        if signer.bundle_format {
            attest_bundle(&signer, image, &predicate).await?;
        } else {
            attest_layer(&signer, image, &predicate).await?;
        }
    }
    Ok(Outcome::Success)
}

/// A DSSE layer of the `.att` image (replacing those of the type with `--replace`).
async fn attest_layer(
    signer: &Signer,
    image: &ImageRef,
    predicate: &Predicate<'_>,
) -> anyhow::Result<()> {
    let client = &signer.client;
    let digest = resolve_digest(client, image).await?;
    let statement = predicate.statement(image, &digest)?;
    let envelope = signer.envelope(&statement)?.to_json();
    let limit = client.options().limits.payload_bytes;
    if envelope.len() > limit {
        bail!(
            "the attestation of {image} would be {} bytes, more than the {} bytes verifiers fetch; use a smaller predicate",
            envelope.len(),
            limit
        );
    }
    let type_uri = predicate.type_uri.as_str();
    let mut annotations = signer.certificate_annotations.clone();
    annotations.extend(BTreeMap::from([
        (SIGNATURE_ANNOTATION.to_string(), String::new()),
        (PREDICATE_TYPE_ANNOTATION.to_string(), type_uri.to_string()),
    ]));
    let mut descriptor = Descriptor::of(DSSE_MEDIA_TYPE, &envelope);
    descriptor.annotations = Some(annotations);
    let layer = SignatureLayer {
        descriptor,
        payload: envelope,
    };
    let replace = predicate.args.replace.then_some(type_uri);
    let pushed = push_attestation(client, image, &digest, &layer, replace).await?;
    let location = artifact_location(image, &digest, Artifact::Attestations);
    let replaced = match pushed.replaced {
        0 => String::new(),
        n => format!(", {n} of the same type replaced"),
    };
    eprintln!(
        "Attested {image} ({digest}): pushed a {type_uri} attestation to {location} ({} attestation(s) there now{replaced})",
        pushed.layers
    );
    Ok(())
}

/// A Sigstore bundle of the statement, as a referrer of the image.
async fn attest_bundle(
    signer: &Signer,
    image: &ImageRef,
    predicate: &Predicate<'_>,
) -> anyhow::Result<()> {
    let subject = signer.subject(image).await?;
    let statement = predicate.statement(image, &subject.digest)?;
    let envelope = signer.envelope(&statement)?;
    let pushed = signer
        .push_bundle(image, &subject, &envelope, &predicate.type_uri)
        .await?;
    eprintln!(
        "Attested {image} ({}): pushed a {} attestation: {pushed}",
        subject.digest, predicate.type_uri
    );
    Ok(())
}
