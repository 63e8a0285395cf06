//! `--trusted-root FILE`: the Sigstore trust material (Fulcio CAs, Rekor and CT log keys, each
//! with its validity window) that keyless signatures and transparency-log proofs are checked
//! against, for a private Sigstore. Without it, the public-good trusted root embedded in
//! sealgate; no network either way.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use sealgate_core::sigstore::trust::TrustedRoot;

/// The trusted-root flag of the commands that verify.
#[derive(Debug, Clone, Args)]
pub(crate) struct TrustArgs {
    /// A Sigstore trusted_root.json (or a ClientTrustConfig holding one) for a private
    /// Sigstore; default: the public-good root built into sealgate.
    #[arg(
        long,
        value_name = "FILE",
        env = "SEALGATE_TRUSTED_ROOT",
        help_heading = "Sigstore"
    )]
    trusted_root: Option<PathBuf>,
}

impl TrustArgs {
    /// The trusted root to verify with.
    pub(crate) fn load(&self) -> anyhow::Result<Arc<TrustedRoot>> {
        let Some(path) = &self.trusted_root else {
            return Ok(Arc::new(TrustedRoot::public_good().clone()));
        };
        let text = sealgate_files::read_text_bounded(path, sealgate_files::TRUST_FILE)
            .with_context(|| format!("reading the trusted root {}", path.display()))?;
        let root = TrustedRoot::from_json(text.as_bytes()).with_context(|| {
            format!(
                "{} is not a Sigstore trusted root: give a trusted_root.json (as `cosign trusted-root create` or TUF's trusted_root.json target) or a ClientTrustConfig",
                path.display()
            )
        })?;
        Ok(Arc::new(root))
    }
}
