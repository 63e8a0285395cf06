//! `sealgate uninstall`: deletes the webhook configurations `serve --kubernetes` registered.

use std::io::Write as _;
use std::path::PathBuf;

use sealgate_kube::registration::{DEFAULT_WEBHOOK_NAME, remove};

use super::Outcome;

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Deletes MutatingWebhookConfiguration/NAME and ValidatingWebhookConfiguration/NAME; ones already gone count as removed. Run it before deleting sealgate (the Helm chart's pre-delete hook does), so the API server never calls a webhook that is not there.\n\nExample:\n  sealgate uninstall --kubeconfig ~/.kube/config"
)]
pub(crate) struct Args {
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,

    /// The configurations' name (serve's --webhook-name).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_WEBHOOK_NAME)]
    webhook_name: String,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let client = sealgate_kube::connect(args.kubeconfig.as_deref()).await?;
    let deleted = remove(&client, &args.webhook_name).await?;
    let mut out = std::io::stdout().lock();
    if deleted.is_empty() {
        writeln!(
            out,
            "no webhook configuration named {} was registered; nothing to remove",
            args.webhook_name
        )?;
    }
    for name in deleted {
        writeln!(out, "deleted {name}")?;
    }
    Ok(Outcome::Success)
}
