//! `sealgate lint`: load and validate policies only.

use std::path::PathBuf;

use super::Outcome;
use crate::inputs::{PolicyArguments, load_policies};
use crate::render::outln;

/// Arguments of `lint`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit 0 when every policy is valid (warnings allowed), 1 when one is not, 2 when a path holds no policy at all (its kinds are named).\n\nExamples:\n  sealgate lint policies/\n  sealgate lint require-signed.yaml other.yaml"
)]
pub(crate) struct Args {
    #[command(flatten)]
    load: crate::inputs::PolicyLoadArgs,

    /// Policy files or directories.
    #[arg(required = true, value_name = "POLICY_PATH")]
    policies: Vec<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let loaded = load_policies(&args.policies, PolicyArguments::Alone, args.load.options())?;
    for e in &loaded.errors {
        outln!("error: {e}")?;
    }
    for w in &loaded.warnings {
        outln!("warning: {w}")?;
    }
    for s in &loaded.skipped {
        outln!("note: {s}")?;
    }
    outln!(
        "{} valid polic{}, {} error(s), {} warning(s)",
        loaded.policies.len(),
        if loaded.policies.len() == 1 {
            "y"
        } else {
            "ies"
        },
        loaded.errors.len(),
        loaded.warnings.len()
    )?;
    Ok(if loaded.errors.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}
