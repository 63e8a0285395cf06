//! One module per subcommand; [`run`] dispatches and [`Outcome`] maps results to exit codes.

mod apply;
mod attest;
mod audit;
mod generate_key_pair;
mod identity_args;
mod lint;
mod public_key;
mod serve;
mod sign;
mod signing;
mod test;
mod triangulate;
mod uninstall;
mod verify;
mod verify_attestation;
mod verifying;

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

/// What a command concluded, when it ran to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything checked out.
    Success,
    /// A verification or check failed: exit 1.
    Failed,
    /// A check could not be evaluated (e.g. an unreachable registry): exit 2.
    Error,
}

impl Outcome {
    pub(crate) fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failed => ExitCode::from(1),
            Outcome::Error => ExitCode::from(2),
        }
    }
}

/// sealgate's subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a cosign key pair: cosign.key (encrypted, mode 0600) and cosign.pub.
    GenerateKeyPair(generate_key_pair::Args),
    /// Print the public key of a cosign private key file.
    PublicKey(public_key::Args),
    /// Sign images: resolve each tag to its digest and push a cosign signature next to it.
    Sign(sign::Args),
    /// Verify the cosign signatures of images with a public key, a certificate or a keyless
    /// identity: their .sig images, or cosign v3's Sigstore bundles among their OCI referrers.
    Verify(verify::Args),
    /// Attest images: sign an in-toto statement about each image's digest with a key and push
    /// it next to the image as cosign does (REPO:sha256-<hex>.att).
    Attest(attest::Args),
    /// Verify the cosign attestations of images with a public key, a certificate or a keyless
    /// identity (their .att images, or cosign v3's Sigstore bundles among their OCI referrers)
    /// and print the verified ones of a predicate type.
    VerifyAttestation(verify_attestation::Args),
    /// Print where the signatures of an image are stored (REPO:sha256-<hex>.sig).
    Triangulate(triangulate::Args),
    /// Run Kyverno verifyImages policies against resource files (a CI check).
    Apply(apply::Args),
    /// Run Kyverno CLI test files (kyverno-test.yaml) with sealgate's engine.
    Test(test::Args),
    /// Load and validate policies, printing every problem with file:line.
    Lint(lint::Args),
    /// Show the webhook's audit trail: every admission decision, newest first.
    Audit(audit::Args),
    /// Run the admission webhook: AdmissionReviews over HTTPS, decided by the policies in a
    /// directory (reloaded on change) or watched in the cluster (--kubernetes), with caches,
    /// deadlines, metrics and an audit trail.
    Serve(Box<serve::Args>),
    /// Remove the webhook configurations `serve --kubernetes` registered, so a cluster never
    /// waits on a webhook that is gone.
    Uninstall(uninstall::Args),
}

/// Runs one command.
pub(crate) fn run(command: Command) -> anyhow::Result<Outcome> {
    match command {
        Command::GenerateKeyPair(args) => generate_key_pair::run(&args),
        Command::PublicKey(args) => public_key::run(&args),
        Command::Sign(args) => block_on(sign::run(&args)),
        Command::Verify(args) => block_on(verify::run(&args)),
        Command::Attest(args) => block_on(attest::run(&args)),
        Command::VerifyAttestation(args) => block_on(verify_attestation::run(&args)),
        Command::Triangulate(args) => block_on(triangulate::run(&args)),
        Command::Apply(args) => block_on(apply::run(&args)),
        Command::Test(args) => block_on(test::run(&args)),
        Command::Lint(args) => lint::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Uninstall(args) => block_on(uninstall::run(&args)),
    }
}

/// Runs a future on a single-threaded runtime: the CLI does one thing at a time.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        // Building a current-thread runtime only fails when the OS refuses a timer or an fd.
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            std::process::exit(2)
        }
    }
}

/// Parses `key=value` (cosign's `-a`).
pub(crate) fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not key=value")),
    }
}

/// Reads a private key: a cosign key file (decrypted with the password, asked for as cosign
/// does) or a plain PEM key (`PRIVATE KEY`, `EC PRIVATE KEY`, `RSA PRIVATE KEY`).
pub(crate) fn load_signing_key(
    path: &std::path::Path,
    rng: &dyn ring::rand::SecureRandom,
) -> anyhow::Result<sealgate_core::crypto::key::SigningKey> {
    use sealgate_core::crypto::key::{PrivateKeyFile, decrypt_key_file};
    let text = sealgate_files::read_text_bounded(path, sealgate_files::KEY_FILE)
        .with_context(|| format!("reading the private key {}", path.display()))?;
    let context = || format!("loading the private key {}", path.display());
    match PrivateKeyFile::parse(&text, rng).with_context(context)? {
        PrivateKeyFile::Plain(key) => Ok(*key),
        PrivateKeyFile::Encrypted => {
            let password = crate::password::read(crate::password::Purpose::ExistingKey)?;
            decrypt_key_file(&text, &password, rng).with_context(context)
        }
    }
}
