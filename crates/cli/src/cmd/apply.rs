//! `sealgate apply`: Kyverno verifyImages policies run against resource files, as a CI check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::ValueEnum;
use sealgate_core::engine::{Decision, Status};
use sealgate_core::policy::{ContextValues, FailureAction};
use serde_json::{Value, json};

use super::Outcome;
use crate::evaluate::evaluate;
use crate::inputs::{
    PolicyArguments, apply_values, load_policies_with, load_resources, parse_labels,
};
use crate::progress::Progress;
use crate::registry_args::RegistryArgs;
use crate::render::{out, outln};
use crate::render::{table, to_yaml};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// One row per resource, rule and image.
    Table,
    /// Everything, including the JSON patch mutateDigest would apply.
    Json,
    /// As json, in YAML.
    Yaml,
}

/// Arguments of `apply`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit 0 when nothing an Enforce rule checks fails, 1 when an Enforce rule \
fails or a policy is invalid (invalid policies are reported with file:line and skipped; the others \
still run), 2 when a check could not be evaluated (e.g. the registry is unreachable) or on usage errors, and when an argument gives nothing to check (an empty folder, a file of resources given as policies or the reverse). \
Audit failures are reported as warnings and do not change the exit code.\n\nExamples:\n  sealgate apply policies/ --resource deploy/pod.yaml\n  sealgate apply policy.yaml -r manifests/ -n shop --namespace-labels env=prod -o json\n  sealgate apply policy.yaml -r pod.yaml --values-file values.yaml"
)]
pub(crate) struct Args {
    #[command(flatten)]
    load: crate::inputs::PolicyLoadArgs,

    #[command(flatten)]
    trust: crate::trust_args::TrustArgs,

    /// Policy files or directories (ClusterPolicy/Policy, YAML or JSON, several documents per file).
    #[arg(required = true, value_name = "POLICY_PATH")]
    policies: Vec<PathBuf>,

    /// Resource files or directories to check (repeatable).
    #[arg(short = 'r', long = "resource", value_name = "FILE", required = true)]
    resources: Vec<PathBuf>,

    /// Namespace for namespaced resources that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,

    /// Labels of that namespace, for namespaceSelector and override selectors: k=v,k2=v2
    /// (resources that name another namespace get none).
    #[arg(long, value_name = "K=V,...", value_parser = parse_labels, default_value = "")]
    namespace_labels: BTreeMap<String, String>,

    /// Values for the policies' variables: a kind: Values file (globalValues, policies[].rules[]
    /// and resources[] values, namespaceSelector labels), as `kyverno apply --values-file`.
    #[arg(
        short = 'f',
        long = "values-file",
        value_name = "FILE",
        conflicts_with = "set"
    )]
    values_file: Option<PathBuf>,

    /// Global values for the policies' variables: name=value (repeatable, or comma-separated),
    /// as `kyverno apply --set`.
    #[arg(
        short = 's',
        long = "set",
        value_name = "NAME=VALUE",
        value_delimiter = ','
    )]
    set: Vec<String>,

    /// The requester: a kind: UserInfo file (roles, clusterRoles, userInfo: username, groups),
    /// for request.userInfo, request.roles, request.clusterRoles and serviceAccountName, as
    /// `kyverno apply --userinfo`.
    #[arg(short = 'u', long = "userinfo", value_name = "FILE")]
    userinfo: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,

    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Default)]
struct Summary {
    pass: usize,
    fail: usize,
    warn: usize,
    error: usize,
    skip: usize,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    // As kyverno apply: the user info and the values are read first, then the policies.
    let user = match &args.userinfo {
        Some(path) => {
            let user = sealgate_files::values::read_user_info(path)?;
            if user.deprecated {
                eprintln!(
                    "warning: {}: the user info file has no apiVersion or kind, the deprecated form (kyverno warns too); begin it with apiVersion: {} and kind: UserInfo",
                    path.display(),
                    sealgate_files::values::API_VERSION
                );
            }
            Some(user)
        }
        None => None,
    };
    let values = match &args.values_file {
        Some(path) => sealgate_files::values::read_values_file(path)?,
        None => sealgate_files::values::values_from_set(&args.set)?,
    };
    for note in &values.notes {
        eprintln!("note: {note}");
    }
    let context = ContextValues::new().with_values(values.values.clone());
    let loaded = load_policies_with(
        &args.policies,
        PolicyArguments::BesideResources,
        args.load.options(),
        &context,
    )?;
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let mut resources = load_resources(&args.resources, &args.namespace, &args.namespace_labels)?;
    for warning in apply_values(
        &mut resources,
        &values,
        user.as_ref().map(|u| &u.request),
        &loaded.policies,
    ) {
        eprintln!("warning: {warning}");
    }
    let client = args.registry.client()?;
    let trust = args.trust.load()?;
    let progress = match args.output {
        Output::Table => Progress::Shown,
        Output::Json | Output::Yaml => Progress::Off,
    };
    let mut summary = Summary::default();
    let (mut enforce_failed, mut enforce_error) = (false, false);
    let mut rows = Vec::new();
    let mut reports = Vec::new();
    let mut verdicts = Vec::new();
    for sourced in &resources {
        let decision = evaluate(
            &client,
            &trust,
            &loaded.policies,
            &sourced.resource,
            progress,
        )
        .await;
        let name = sourced.resource.display_name();
        for r in &decision.results {
            let enforce = r.action == FailureAction::Enforce;
            match r.status {
                Status::Pass => summary.pass += 1,
                Status::Skip => summary.skip += 1,
                Status::Fail if enforce => {
                    summary.fail += 1;
                    enforce_failed = true;
                }
                Status::Fail => summary.warn += 1,
                Status::Error => {
                    summary.error += 1;
                    // An error blocks only under failurePolicy: Fail (the decision says so);
                    // under Ignore the resource was admitted with a warning.
                    enforce_error |= enforce && !decision.allowed;
                }
            }
            for i in &r.images {
                if let Some(spelling) = &i.covered_as {
                    eprintln!(
                        "note: {name}: policy {} rule {} covers {} as {spelling}, the same repository; Kyverno matches the reference as written and would not check it",
                        r.policy, r.rule, i.image
                    );
                }
                let status = if i.status == Status::Fail && !enforce {
                    "warn".to_string()
                } else {
                    i.status.to_string()
                };
                rows.push(vec![
                    name.clone(),
                    r.policy.clone(),
                    r.rule.clone(),
                    i.image.clone(),
                    status,
                    i.message.clone(),
                ]);
            }
        }
        for image in &decision.uncovered {
            rows.push(vec![
                name.clone(),
                "-".into(),
                "-".into(),
                image.clone(),
                "none".into(),
                "not covered by any verifyImages rule".into(),
            ]);
        }
        verdicts.push(verdict_line(&name, &decision));
        reports.push(report(&sourced.source, &name, &decision));
    }
    let outcome = if enforce_failed || !loaded.errors.is_empty() {
        Outcome::Failed
    } else if enforce_error {
        Outcome::Error
    } else {
        Outcome::Success
    };
    let summary_json = json!({"pass": summary.pass, "fail": summary.fail, "warn": summary.warn, "error": summary.error, "skip": summary.skip});
    match args.output {
        Output::Table => {
            out!(
                "{}",
                table(
                    &["RESOURCE", "POLICY", "RULE", "IMAGE", "RESULT", "REASON"],
                    &rows
                )
            )?;
            outln!()?;
            for v in verdicts {
                outln!("{v}")?;
            }
            outln!(
                "\npass: {}, fail: {}, warn: {}, error: {}, skip: {}",
                summary.pass,
                summary.fail,
                summary.warn,
                summary.error,
                summary.skip
            )?;
            if !loaded.errors.is_empty() {
                outln!(
                    "{} invalid policy document(s) skipped (see errors above)",
                    loaded.errors.len()
                )?;
            }
        }
        Output::Json | Output::Yaml => {
            let doc = json!({
                "policyErrors": loaded.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "resources": reports,
                "summary": summary_json,
            });
            if args.output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&doc)?)?;
            } else {
                out!("{}", to_yaml(&doc))?;
            }
        }
    }
    Ok(outcome)
}

fn verdict_line(name: &str, d: &Decision) -> String {
    if d.allowed {
        let warnings = if d.warnings.is_empty() {
            String::new()
        } else {
            format!(" with {} warning(s)", d.warnings.len())
        };
        let pins = d.patch.iter().filter(|p| p["op"] == "replace").count();
        let pins = if pins == 0 {
            String::new()
        } else {
            format!("; {pins} image(s) pinned to their digest")
        };
        format!("{name}: admitted{warnings}{pins}")
    } else {
        format!("{name}: DENIED\n  {}", d.message.replace('\n', "\n  "))
    }
}

fn report(source: &str, name: &str, d: &Decision) -> Value {
    json!({
        "resource": name,
        "source": source,
        "allowed": d.allowed,
        "message": d.message,
        "warnings": d.warnings,
        "results": d.results,
        "patch": d.patch,
        "notCovered": d.uncovered,
    })
}
