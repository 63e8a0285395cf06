//! `sealgate test`: Kyverno CLI test files (`kyverno-test.yaml`) run with sealgate's engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::ValueEnum;
use sealgate_core::engine::{Decision, Status};
use sealgate_core::policy::yaml::parse_documents;
use sealgate_core::policy::{ContextValues, JsonPath};
use sealgate_files::values::{CliValues, read_user_info, read_values_file, values_at};
use serde::Deserialize;
use serde_json::json;

use super::Outcome;
use crate::evaluate::evaluate;
use crate::inputs::{
    PolicyArguments, SourcedResource, apply_values, load_policies_with, load_resources,
};
use crate::progress::Progress;
use crate::registry_args::RegistryArgs;
use crate::render::table;
use crate::render::{out, outln};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// The results table.
    Table,
    /// One JSON object per row.
    Json,
}

/// Arguments of `test`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Runs every test file below each DIR. Exit 0 when every expected result \
holds, 1 when one does not (or a test file or policy is invalid), 2 on usage or runtime errors.\n\nExamples:\n  sealgate test policies/tests/\n  sealgate test . --fail-only --detailed-results"
)]
pub(crate) struct Args {
    #[command(flatten)]
    load: crate::inputs::PolicyLoadArgs,

    #[command(flatten)]
    trust: crate::trust_args::TrustArgs,

    /// Directories (searched recursively) or test files.
    #[arg(required = true, value_name = "DIR")]
    dirs: Vec<PathBuf>,

    /// Name of the test files to look for.
    #[arg(short = 'f', long, default_value = "kyverno-test.yaml")]
    file_name: String,

    /// Print only the rows that failed.
    #[arg(long)]
    fail_only: bool,

    /// Add each rule's message to the table.
    #[arg(long)]
    detailed_results: bool,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    output: Output,

    #[command(flatten)]
    registry: RegistryArgs,
}

/// `cli.kyverno.io/v1alpha1` `Test`. Fields sealgate does not evaluate are read so that a test
/// using them fails with a reason instead of passing without checking what it says.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestFile {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default, rename = "metadata")]
    _metadata: Option<serde_json::Value>,
    /// The deprecated pre-1.10 schema's top-level name.
    name: Option<String>,
    #[serde(default)]
    policies: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    results: Vec<ExpectedResult>,
    #[serde(default)]
    exceptions: Vec<String>,
    /// A values file, relative to the test file.
    variables: Option<String>,
    /// Inline values (Kyverno reads them instead of `variables` when both are given).
    values: Option<serde_json::Value>,
    /// A user info file, relative to the test file (Kyverno spells it in lower case).
    #[serde(rename = "userinfo")]
    user_info: Option<String>,
    /// `userInfo`: not a field of Kyverno's test file, refused with the spelling it has.
    #[serde(rename = "userInfo")]
    user_info_misspelled: Option<serde_json::Value>,
    #[serde(default)]
    target_resources: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExpectedResult {
    policy: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    resource: Option<String>,
    result: String,
    #[serde(default)]
    resource_specs: Vec<serde_json::Value>,
    patched_resources: Option<String>,
    generated_resource: Option<String>,
    clone_source_resource: Option<String>,
    operation: Option<String>,
}

impl TestFile {
    /// Why sealgate cannot run this file as Kyverno would, if it cannot.
    fn unsupported(&self) -> Option<String> {
        if self.name.is_some() {
            return Some(
                "a top-level 'name' is the deprecated test schema, which Kyverno refuses too: \
use apiVersion: cli.kyverno.io/v1alpha1, kind: Test and metadata.name"
                    .into(),
            );
        }
        if self.api_version.as_deref() != Some("cli.kyverno.io/v1alpha1")
            || self.kind.as_deref() != Some("Test")
        {
            return Some(format!(
                "apiVersion '{}' and kind '{}': a test file needs apiVersion: cli.kyverno.io/v1alpha1 and kind: Test",
                self.api_version.as_deref().unwrap_or(""),
                self.kind.as_deref().unwrap_or("")
            ));
        }
        if self.user_info_misspelled.is_some() {
            return Some(
                "unknown field `userInfo`: kyverno's test file spells it `userinfo` (a path to a kind: UserInfo file)"
                    .into(),
            );
        }
        let file_level = [
            ("exceptions", !self.exceptions.is_empty()),
            ("targetResources", !self.target_resources.is_empty()),
        ];
        if let Some((field, _)) = file_level.iter().find(|(_, used)| *used) {
            return Some(format!(
                "'{field}' is not supported by sealgate test yet; run this test with kyverno test"
            ));
        }
        for (i, r) in self.results.iter().enumerate() {
            let per_result = [
                ("resourceSpecs", !r.resource_specs.is_empty()),
                ("generatedResource", r.generated_resource.is_some()),
                ("cloneSourceResource", r.clone_source_resource.is_some()),
                (
                    "operation",
                    r.operation
                        .as_deref()
                        .is_some_and(|o| !o.eq_ignore_ascii_case("CREATE")),
                ),
            ];
            if let Some((field, _)) = per_result.iter().find(|(_, used)| *used) {
                let hint = if *field == "resourceSpecs" {
                    "name the resources with 'resources: [name]' or 'ns/name'"
                } else {
                    "run this test with kyverno test"
                };
                return Some(format!(
                    "results[{i}].{field} is not supported by sealgate test yet; {hint}"
                ));
            }
        }
        if self.results.is_empty() {
            return Some("the file has no results to check".into());
        }
        None
    }
}

fn find_test_files(path: &Path, name: &str, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            find_test_files(&p, name, out)?;
        } else if p.file_name().and_then(|n| n.to_str()) == Some(name) {
            out.push(p);
        }
    }
    Ok(())
}

struct Row {
    policy: String,
    rule: String,
    resource: String,
    ok: bool,
    result: String,
    reason: String,
    message: String,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mut files = Vec::new();
    for d in &args.dirs {
        if !d.exists() {
            bail!("{} does not exist", d.display());
        }
        find_test_files(d, &args.file_name, &mut files)?;
    }
    if files.is_empty() {
        bail!(
            "no {} found below {}",
            args.file_name,
            args.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let client = args.registry.client()?;
    let trust = args.trust.load()?;
    let mut rows = Vec::new();
    let mut invalid = false;
    for file in &files {
        let progress = match args.output {
            Output::Table => Progress::Shown,
            Output::Json => Progress::Off,
        };
        let (file_rows, file_invalid) =
            run_file(file, &client, &trust, progress, args.load.options()).await?;
        rows.extend(file_rows);
        invalid |= file_invalid;
    }
    let failed = rows.iter().filter(|r| !r.ok).count();
    let passed = rows.len() - failed;
    let shown: Vec<&Row> = rows.iter().filter(|r| !args.fail_only || !r.ok).collect();
    match args.output {
        Output::Table => {
            let mut header = vec!["ID", "POLICY", "RULE", "RESOURCE", "RESULT", "REASON"];
            if args.detailed_results {
                header.push("MESSAGE");
            }
            let body: Vec<Vec<String>> = shown
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut row = vec![
                        (i + 1).to_string(),
                        r.policy.clone(),
                        r.rule.clone(),
                        r.resource.clone(),
                        if r.ok { "Pass".into() } else { "Fail".into() },
                        r.reason.clone(),
                    ];
                    if args.detailed_results {
                        row.push(r.message.clone());
                    }
                    row
                })
                .collect();
            out!("{}", table(&header, &body))?;
            outln!("\nTest Summary: {passed} tests passed and {failed} tests failed")?;
        }
        Output::Json => {
            for r in shown {
                outln!(
                    "{}",
                    json!({"policy": r.policy, "rule": r.rule, "resource": r.resource, "ok": r.ok, "result": r.result, "reason": r.reason, "message": r.message})
                )?;
            }
        }
    }
    Ok(if failed > 0 || invalid {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

async fn run_file(
    file: &Path,
    client: &sealgate_registry::Client,
    trust: &sealgate_core::sigstore::trust::TrustedRoot,
    progress: Progress,
    options: sealgate_core::policy::LoadOptions,
) -> anyhow::Result<(Vec<Row>, bool)> {
    let text = sealgate_files::read_text_bounded(file, sealgate_files::MANIFEST_FILE)?;
    let doc = parse_documents(&text)
        .into_iter()
        .next()
        .with_context(|| format!("{} is empty", file.display()))?
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let test: TestFile = serde_json::from_value(doc.value.clone())
        .map_err(|e| anyhow::anyhow!("{}: not a Kyverno test file: {e}", file.display()))?;
    if let Some(why) = test.unsupported() {
        bail!("{}: {why}", file.display());
    }
    if test.results.iter().any(|r| r.patched_resources.is_some()) {
        eprintln!(
            "warning: {}: patchedResources is not compared (Kyverno compares it with the input resource for verifyImages rules, so it cannot check the digest patch either)",
            file.display()
        );
    }
    if test.policies.is_empty() || test.resources.is_empty() {
        bail!(
            "{}: the test lists no {}, so it would check nothing; name the files under 'policies:' and 'resources:'",
            file.display(),
            if test.policies.is_empty() {
                "policies"
            } else {
                "resources"
            }
        );
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    // As kyverno test: values (inline ones instead of the file), then the user, then policies.
    let values = match (&test.values, &test.variables) {
        (Some(_), variables) => {
            if let Some(variables) = variables {
                eprintln!(
                    "warning: {}: both values and variables ({variables}) are given; kyverno uses the inline values and does not read {variables}, and so does sealgate",
                    file.display()
                );
            }
            let source = file.display().to_string();
            values_at(&source, &doc, &JsonPath::root().field("values"))?
        }
        (None, Some(variables)) => read_values_file(&dir.join(variables))?,
        (None, None) => CliValues::new(),
    };
    for note in &values.notes {
        eprintln!("note: {note}");
    }
    let user = match &test.user_info {
        Some(path) => {
            let user = read_user_info(&dir.join(path))?;
            if user.deprecated {
                bail!(
                    "{}: the user info file has no apiVersion or kind: kyverno test refuses this deprecated form too; begin it with apiVersion: {} and kind: UserInfo",
                    dir.join(path).display(),
                    sealgate_files::values::API_VERSION
                );
            }
            Some(user)
        }
        None => None,
    };
    let context = ContextValues::new().with_values(values.values.clone());
    let policy_paths: Vec<PathBuf> = test.policies.iter().map(|p| dir.join(p)).collect();
    let resource_paths: Vec<PathBuf> = test.resources.iter().map(|p| dir.join(p)).collect();
    let loaded = load_policies_with(
        &policy_paths,
        PolicyArguments::BesideResources,
        options,
        &context,
    )?;
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    let mut resources = load_resources(&resource_paths, "default", &Default::default())?;
    for warning in apply_values(
        &mut resources,
        &values,
        user.as_ref().map(|u| &u.request),
        &loaded.policies,
    ) {
        eprintln!("warning: {warning}");
    }
    let mut decisions: HashMap<usize, Decision> = HashMap::new();
    let mut rows = Vec::new();
    for expected in &test.results {
        let names: Vec<&String> = expected
            .resources
            .iter()
            .chain(expected.resource.iter())
            .collect();
        for name in names {
            let Some(index) = find_resource(&resources, name, expected.kind.as_deref()) else {
                rows.push(row(
                    expected,
                    name,
                    false,
                    "",
                    "Not found",
                    format!("no resource {name} in {}", test.resources.join(", ")),
                ));
                continue;
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = decisions.entry(index) {
                slot.insert(
                    evaluate(
                        client,
                        trust,
                        &loaded.policies,
                        &resources[index].resource,
                        progress,
                    )
                    .await,
                );
            }
            let decision = &decisions[&index];
            let policy_loaded = loaded
                .policies
                .iter()
                .any(|p| p.qualified_name() == expected.policy);
            rows.extend(compare(expected, name, decision, policy_loaded));
        }
    }
    Ok((rows, !loaded.errors.is_empty()))
}

fn find_resource(resources: &[SourcedResource], name: &str, kind: Option<&str>) -> Option<usize> {
    let (ns, name) = match name.split_once('/') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, name),
    };
    resources.iter().position(|r| {
        r.resource.name == name
            && ns.is_none_or(|ns| r.resource.namespace.as_deref() == Some(ns))
            && kind.is_none_or(|k| sealgate_core::policy::matching::kind_of(k) == r.resource.kind)
    })
}

/// The rows for one expected result. A loaded policy with no result for the rule (no image
/// matched it, or the rule did not match the resource) is `Excluded`, which passes whatever was
/// expected, as in `kyverno test`; a policy that is not loaded is `Not found`.
fn compare(
    expected: &ExpectedResult,
    resource: &str,
    decision: &Decision,
    policy_loaded: bool,
) -> Vec<Row> {
    let candidates = [
        expected.rule.clone(),
        format!("autogen-{}", expected.rule),
        format!("autogen-cronjob-{}", expected.rule),
    ];
    let policy_results: Vec<_> = decision
        .results
        .iter()
        .filter(|r| r.policy == expected.policy)
        .collect();
    let matching: Vec<_> = policy_results
        .iter()
        .filter(|r| candidates.contains(&r.rule))
        .collect();
    if matching.is_empty() {
        return vec![if !policy_loaded {
            row(
                expected,
                resource,
                false,
                "",
                "Not found",
                format!(
                    "no policy named {} among the test's policies",
                    expected.policy
                ),
            )
        } else {
            row(
                expected,
                resource,
                true,
                "",
                "Excluded",
                "no image matched the rule".into(),
            )
        }];
    }
    matching
        .iter()
        .map(|r| {
            let actual = match r.status {
                Status::Pass => "pass",
                Status::Fail => "fail",
                Status::Skip => "skip",
                Status::Error => "error",
            };
            let ok = actual == expected.result;
            let reason = if ok {
                "Ok".to_string()
            } else {
                format!("Want {}, got {actual}", expected.result)
            };
            Row {
                policy: expected.policy.clone(),
                rule: r.rule.clone(),
                resource: resource.to_string(),
                ok,
                result: actual.into(),
                reason,
                message: r.message.clone(),
            }
        })
        .collect()
}

fn row(
    expected: &ExpectedResult,
    resource: &str,
    ok: bool,
    result: &str,
    reason: &str,
    message: String,
) -> Row {
    Row {
        policy: expected.policy.clone(),
        rule: expected.rule.clone(),
        resource: resource.to_string(),
        ok,
        result: result.to_string(),
        reason: reason.to_string(),
        message,
    }
}
