//! `sealgate uninstall`: deletes the webhook configurations `serve --kubernetes` registered.

use std::io::Write as _;
use std::path::PathBuf;

use std::time::Duration;

use sealgate_kube::registration::{DEFAULT_WEBHOOK_NAME, remove, scale_down};
use sealgate_server::config::parse_duration;

use super::Outcome;

/// Arguments of `uninstall`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Deletes MutatingWebhookConfiguration/NAME and ValidatingWebhookConfiguration/NAME; ones already gone count as removed. Run it before deleting sealgate (the Helm chart's pre-delete hook does, with --scale-down), so the API server never calls a webhook that is not there.\n\nExamples:\n  sealgate uninstall --kubeconfig ~/.kube/config\n  sealgate uninstall --scale-down sealgate/sealgate"
)]
pub(crate) struct Args {
    /// Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, then the in-cluster service
    /// account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,

    /// The configurations' name (serve's --webhook-name).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_WEBHOOK_NAME)]
    webhook_name: String,

    /// First scale sealgate's Deployment to 0 and wait until no replica is active, so none is
    /// left to register the webhooks again (a replica taking the Lease over registers afresh).
    /// What the Helm chart's pre-delete hook does.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    scale_down: Option<String>,

    /// How long --scale-down waits for the replicas to stop.
    #[arg(long, value_name = "DURATION", default_value = "90s", value_parser = parse_duration)]
    scale_down_wait: Duration,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let client = sealgate_kube::connect(args.kubeconfig.as_deref()).await?;
    if let Some(deployment) = &args.scale_down {
        let Some((namespace, name)) = deployment
            .split_once('/')
            .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
        else {
            anyhow::bail!(
                "--scale-down {deployment}: expected NAMESPACE/NAME, e.g. sealgate/sealgate"
            );
        };
        scale_down(&client, namespace, name, args.scale_down_wait).await?;
        writeln!(
            std::io::stdout().lock(),
            "scaled Deployment {namespace}/{name} to 0; no replica is active"
        )?;
    }
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
