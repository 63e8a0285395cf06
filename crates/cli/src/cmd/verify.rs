//! `sealgate verify`: check an image's cosign signatures against a public key.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use sealgate_core::cosign::{Verification, VerifiedSignature, with_annotations};
use sealgate_core::crypto::key::{PublicKey, SignatureHash};

use super::{Outcome, parse_key_value};
use crate::progress::{Progress, reporting};
use crate::registry_args::ImageTargets;
use crate::render::outln;
use sealgate_registry::signatures::{fetch_signatures, resolve_digest};

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A readable summary.
    Text,
    /// The verified simple-signing payloads as a JSON array per image, as cosign prints them.
    Json,
}

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Checks, for each image: the signature manifest and every payload against \
their digests, each signature over its exact payload bytes with the key, and that the payload \
names the image's digest. Exit 0 when every image has at least one such signature, 1 when one \
has none (the message says whether no signatures exist, none is by this key, one is malformed, \
or the key signed another digest), 2 on errors.\n\nExamples:\n  sealgate verify --key cosign.pub registry.company.com/app:v1\n  sealgate verify --key cosign.pub -a git-sha=4f2c1e0 -o json registry.company.com/app:v1"
)]
pub(crate) struct Args {
    /// The PEM public key (cosign.pub).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// The hash the signatures were made with.
    #[arg(
        long = "signature-digest-algorithm",
        value_name = "ALG",
        default_value = "sha256"
    )]
    hash: String,

    /// Require these key=value annotations in the signed payload (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    annotations: Vec<(String, String)>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Output,

    /// Accepted for cosign compatibility: sealgate's key verification does not consult a
    /// transparency log.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    insecure_ignore_tlog: Option<bool>,

    #[command(flatten)]
    targets: ImageTargets,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let images = args.targets.images()?;
    let hash = SignatureHash::from_kyverno(&args.hash).with_context(|| {
        format!(
            "--signature-digest-algorithm {}: expected sha256, sha384 or sha512",
            args.hash
        )
    })?;
    let key_text = sealgate_files::read_text_bounded(&args.key, sealgate_files::KEY_FILE)
        .with_context(|| format!("reading the public key {}", args.key.display()))?;
    let key = PublicKey::from_pem(&key_text)
        .with_context(|| format!("reading the public key {}", args.key.display()))?;
    let client = args.targets.client_for(&images)?;
    let progress = match args.output {
        Output::Text => Progress::Shown,
        Output::Json => Progress::Off,
    };
    let mut outcome = Outcome::Success;
    for image in &images {
        let host = image.api_host();
        let digest = reporting(
            progress,
            host,
            || format!("resolving {image}"),
            resolve_digest(&client, image),
        )
        .await?;
        let set = reporting(
            progress,
            host,
            || format!("fetching the signatures of {image}@{digest}"),
            fetch_signatures(&client, image, &digest),
        )
        .await?;
        let verified = match sealgate_core::cosign::verify_with_key(&set, &key, hash) {
            Verification::Verified(v) => v,
            Verification::Failed(failure) => {
                eprintln!("verification failed for {image} ({digest}): {failure}");
                outcome = Outcome::Failed;
                continue;
            }
        };
        let matching = with_annotations(&verified, &args.annotations);
        if matching.is_empty() {
            let wanted: Vec<String> = args
                .annotations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            eprintln!(
                "verification failed for {image} ({digest}): {} signature(s) by the key verify, but none carries the annotations {}",
                verified.len(),
                wanted.join(", ")
            );
            outcome = Outcome::Failed;
            continue;
        }
        match args.output {
            Output::Json => outln!("{}", payloads_json(&matching))?,
            Output::Text => {
                outln!("Verified {image} ({digest})")?;
                outln!(
                    "  {} of {} signature(s) at {} verified with key {} ({})",
                    matching.len(),
                    set.layers.len(),
                    set.location,
                    key.fingerprint(),
                    args.key.display()
                )?;
                outln!(
                    "  checked: the signature manifest and payloads against their digests, each signature over its exact payload, the payload's image digest"
                )?;
            }
        }
    }
    Ok(outcome)
}

/// The payloads as a JSON array, each parsed from its exact signed bytes.
fn payloads_json(verified: &[&VerifiedSignature]) -> String {
    let values: Vec<serde_json::Value> = verified
        .iter()
        .map(|v| serde_json::from_slice(v.payload_bytes()).unwrap_or(serde_json::Value::Null))
        .collect();
    serde_json::Value::Array(values).to_string()
}
