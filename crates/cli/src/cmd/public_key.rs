//! `sealgate public-key`: the PEM public key of a cosign private key file.

use std::path::PathBuf;

use ring::rand::SystemRandom;

use super::{Outcome, load_signing_key};
use crate::render::out;

/// Arguments of `public-key`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  sealgate public-key --key cosign.key > cosign.pub\n  COSIGN_PASSWORD=... sealgate public-key --key release.key"
)]
pub(crate) struct Args {
    /// The cosign private key file.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let key = load_signing_key(&args.key, &SystemRandom::new())?;
    out!("{}", key.public_key().to_pem())?;
    Ok(Outcome::Success)
}
