//! `sealgate generate-key-pair`: a new ECDSA P-256 key in cosign's encrypted format.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ring::rand::SystemRandom;
use sealgate_core::key::{ScryptCost, SigningKey, encrypt_key_file};

use super::Outcome;
use crate::password::{self, Purpose};

/// Arguments of `generate-key-pair`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The password comes from COSIGN_PASSWORD when it is set (even empty), \
otherwise from a prompt on the terminal, otherwise from standard input. Keys are written as \
cosign v2.2+ writes them (ENCRYPTED SIGSTORE PRIVATE KEY, scrypt N=65536) and load in cosign."
)]
pub(crate) struct Args {
    /// Write PREFIX.key and PREFIX.pub instead of cosign.key and cosign.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    output_key_prefix: String,

    /// Overwrite existing key files (the old private key is lost).
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let private_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let public_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    if !args.force {
        for p in [&private_path, &public_path] {
            if p.exists() {
                bail!(
                    "{} already exists; pass --force to overwrite it (the key it holds is lost)",
                    p.display()
                );
            }
        }
    }
    let password = password::read(Purpose::NewKey)?;
    let rng = SystemRandom::new();
    let key = SigningKey::generate(&rng)?;
    let private_pem = encrypt_key_file(&key, &password, ScryptCost::Standard, &rng)?;
    write_file(&private_path, private_pem.as_bytes(), 0o600)?;
    write_file(&public_path, key.public_key().to_pem().as_bytes(), 0o644)?;
    eprintln!("Private key written to {}", private_path.display());
    eprintln!("Public key written to {}", public_path.display());
    Ok(Outcome::Success)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // An existing file keeps its old mode under O_CREAT: set it explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
