//! `sealgate verify-attestation`: check an image's cosign attestations against a public key and
//! print the verified ones, as `cosign verify-attestation` does.

use std::path::PathBuf;

use anyhow::Context;
use sealgate_core::crypto::key::{PublicKey, SignatureHash};
use sealgate_core::engine::{VerifyContext, verify_attestations};
use sealgate_core::policy::{Attestor, AttestorKind, JsonPath, KeyAttestor, KeySource};
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::Clock;
use sealgate_registry::driver::SystemClock;
use sealgate_registry::signatures::{fetch_attestations, resolve_digest};

use super::Outcome;
use crate::progress::{Progress, reporting};
use crate::registry_args::ImageTargets;
use crate::render::outln;

/// Arguments of `verify-attestation`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Checks, for each image: the attestation manifest and every envelope against \
their digests, each DSSE envelope's signature over its pre-authentication encoding with the key, \
that it holds an in-toto statement naming the image's digest among its subjects, and (when the \
layer carries one) its Rekor bundle. Prints, one per line on stdout, each verified envelope of \
the --type (cosign's names or a URI; default custom, as cosign), as cosign prints them; what was \
checked goes to stderr. Exit 0 when every image has at least one, 1 when one has none (the \
message says whether none exist, none verifies and why, or none is of the type), 2 on \
errors.\n\nExamples:\n  sealgate verify-attestation --key cosign.pub --type slsaprovenance registry.company.com/app:v1\n  sealgate verify-attestation --key cosign.pub --type https://example.com/CodeReview/v1 registry.company.com/app:v1 | jq -r .payload | base64 -d"
)]
pub(crate) struct Args {
    /// The PEM public key (cosign.pub).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,

    /// The predicate type to print: one of cosign's names or a URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    predicate_type: String,

    /// The hash the signatures were made with.
    #[arg(
        long = "signature-digest-algorithm",
        value_name = "ALG",
        default_value = "sha256"
    )]
    hash: String,

    /// Accepted for cosign compatibility: a Rekor bundle is checked when a layer carries one,
    /// never required or looked up.
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    insecure_ignore_tlog: Option<bool>,

    #[command(flatten)]
    targets: ImageTargets,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let images = args.targets.images()?;
    let predicate_type = sealgate_core::cosign::dsse::predicate_type_uri(&args.predicate_type)
        .map_err(anyhow::Error::from)
        .context("--type")?
        .to_string();
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
    let fingerprint = key.fingerprint();
    let attestor = Attestor::new(
        AttestorKind::Key(KeyAttestor {
            key: KeySource::Pem(key),
            hash,
            rekor: Default::default(),
            ctlog: Default::default(),
        }),
        Default::default(),
        None,
        JsonPath::root(),
        None,
    );
    let client = args.targets.client_for(&images)?;
    let ctx = VerifyContext {
        trust: TrustedRoot::public_good(),
        now: SystemClock.now(),
    };
    let mut outcome = Outcome::Success;
    for image in &images {
        let host = image.api_host();
        let progress = Progress::Shown;
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
            || format!("fetching the attestations of {image}@{digest}"),
            fetch_attestations(&client, image, &digest),
        )
        .await?;
        let verified = match verify_attestations(&attestor, &set, ctx) {
            Ok(v) => v,
            Err(failure) => {
                eprintln!("verification failed for {image} ({digest}): {failure}");
                outcome = Outcome::Failed;
                continue;
            }
        };
        let of_type: Vec<_> = verified
            .iter()
            .filter(|v| v.statement.predicate_type == predicate_type)
            .collect();
        if of_type.is_empty() {
            let found: Vec<&str> = verified
                .iter()
                .map(|v| v.statement.predicate_type.as_str())
                .collect();
            eprintln!(
                "verification failed for {image} ({digest}): none of the attestations matched the predicate type: {predicate_type}, found: {}",
                found.join(",")
            );
            outcome = Outcome::Failed;
            continue;
        }
        eprintln!("\nVerification for {image} ({digest}) --");
        eprintln!("The following checks were performed on each of these attestations:");
        eprintln!("  - The attestation manifest and envelopes were checked against their digests");
        eprintln!("  - The in-toto statements name the image's digest among their subjects");
        eprintln!(
            "  - The signatures over the DSSE envelopes were verified against the specified public key ({fingerprint})"
        );
        eprintln!(
            "  - {} of {} attestation(s) at {} verified, {} of type {predicate_type}",
            verified.len(),
            set.layers.len(),
            set.location,
            of_type.len()
        );
        for v in of_type {
            let envelope = &set.layers[v.layer_index].payload;
            outln!("{}", String::from_utf8_lossy(envelope))?;
        }
    }
    Ok(outcome)
}
