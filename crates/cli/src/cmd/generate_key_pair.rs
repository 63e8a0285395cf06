//! `sealgate generate-key-pair`: a new ECDSA P-256 key in cosign's encrypted format.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use ring::rand::SystemRandom;
use sealgate_core::crypto::key::{ScryptCost, SigningKey, encrypt_key_file};

use super::Outcome;
use crate::password::{self, Purpose};

/// Arguments of `generate-key-pair`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The password comes from COSIGN_PASSWORD when it is set (even empty), \
otherwise from a prompt on the terminal, otherwise from standard input. Keys are written as \
cosign v2.2+ writes them (ENCRYPTED SIGSTORE PRIVATE KEY, scrypt N=65536) and load in cosign.\n\nExamples:\n  COSIGN_PASSWORD=... sealgate generate-key-pair\n  sealgate generate-key-pair --output-key-prefix release   # release.key, release.pub"
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
                return Err(already_exists(p));
            }
        }
    }
    let password = password::read(Purpose::NewKey)?;
    let rng = SystemRandom::new();
    let key = SigningKey::generate(&rng)?;
    let private_pem = encrypt_key_file(&key, &password, ScryptCost::Standard, &rng)?;
    // Both files are written in full to temporary names first, then put in place: without
    // --force by a hard link, which fails if the name exists by now (no check-then-write race,
    // no symlink followed); with --force by a rename. A pair is never left half written.
    let private_tmp = write_temporary(&private_path, private_pem.as_bytes(), 0o600)?;
    let public_tmp =
        match write_temporary(&public_path, key.public_key().to_pem().as_bytes(), 0o644) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_file(&private_tmp);
                return Err(e);
            }
        };
    let placed = place(&private_tmp, &private_path, args.force).and_then(|()| {
        place(&public_tmp, &public_path, args.force).inspect_err(|_| {
            if !args.force {
                let _ = std::fs::remove_file(&private_path);
            }
        })
    });
    let _ = std::fs::remove_file(&private_tmp);
    let _ = std::fs::remove_file(&public_tmp);
    placed?;
    eprintln!("Private key written to {}", private_path.display());
    eprintln!("Public key written to {}", public_path.display());
    Ok(Outcome::Success)
}

/// Writes `bytes` to a new file next to `path` (created exclusively, with `mode`, synced) and
/// returns its name.
fn write_temporary(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    // The mode exactly, whatever the umask.
    let written = f
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| tmp)
}

/// Puts `tmp` at `path`: replacing what is there with `force`, else only if nothing is.
fn place(tmp: &Path, path: &Path, force: bool) -> anyhow::Result<()> {
    if force {
        return std::fs::rename(tmp, path).with_context(|| format!("writing {}", path.display()));
    }
    std::fs::hard_link(tmp, path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            already_exists(path)
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })
}

fn already_exists(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} already exists; pass --force to overwrite it (the key it holds is lost)",
        path.display()
    )
}
