//! `sealgate triangulate`: where cosign keeps an image's signatures.

use clap::ValueEnum;
use sealgate_registry::signatures::resolve_digest;

use super::Outcome;
use crate::registry_args::{RegistryArgs, parse_image};
use crate::render::outln;

/// What to locate.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// The `.sig` tag.
    Signature,
    /// The `.att` tag.
    Attestation,
    /// The `.sbom` tag.
    Sbom,
    /// The image digest itself.
    Digest,
}

/// Arguments of `triangulate`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  sealgate triangulate registry.company.com/app:v1   # REPO:sha256-<hex>.sig\n  sealgate triangulate --type digest registry.company.com/app:v1"
)]
pub(crate) struct Args {
    /// What to locate.
    #[arg(long = "type", value_enum, default_value = "signature")]
    kind: Kind,

    /// The image (a tag is resolved to its digest on the registry).
    image: String,

    #[command(flatten)]
    registry: RegistryArgs,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let image = parse_image(&args.image)?;
    let client = args.registry.client_for(std::slice::from_ref(&image))?;
    let digest = resolve_digest(&client, &image).await?;
    let tag = digest.referrers_tag();
    match args.kind {
        Kind::Signature => outln!("{}:{tag}.sig", image.cosign_identity())?,
        Kind::Attestation => outln!("{}:{tag}.att", image.cosign_identity())?,
        Kind::Sbom => outln!("{}:{tag}.sbom", image.cosign_identity())?,
        Kind::Digest => outln!("{}@{digest}", image.cosign_identity())?,
    }
    Ok(Outcome::Success)
}
