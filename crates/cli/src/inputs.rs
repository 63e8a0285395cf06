//! Reading what `apply`, `test` and `lint` are given: policy files and directories, and resource
//! manifests (multi-document YAML or JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use sealgate_core::engine::Resource;
use sealgate_core::policy::yaml::parse_documents;
use sealgate_core::policy::{
    ContextValues, LoadOptions, Operation, Policy, PolicyError, PolicyWarning, PolicyWarningKind,
    SkippedDocument,
};
use sealgate_files::values::CliValues;

/// Policies loaded from files, with every problem found on the way.
#[derive(Debug, Default)]
pub(crate) struct LoadedPolicies {
    /// The valid policies, in file order.
    pub(crate) policies: Vec<Policy>,
    /// Invalid documents (each names its file:line).
    pub(crate) errors: Vec<PolicyError>,
    /// Warnings.
    pub(crate) warnings: Vec<PolicyWarning>,
    /// Documents that were not policies.
    pub(crate) skipped: Vec<SkippedDocument>,
}

/// Files under `path` that may hold manifests (as the webhook finds them: `sealgate_files`).
pub(crate) fn manifest_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    Ok(sealgate_files::manifest_files(path)?)
}

/// `--allow-unknown-fields`, for every command that reads policies.
#[derive(Debug, Clone, Copy, clap::Args)]
pub(crate) struct PolicyLoadArgs {
    /// Read policies with unknown fields, dropping those fields with a warning (as an API server
    /// without strict field validation prunes them) instead of refusing the policy.
    #[arg(long)]
    pub(crate) allow_unknown_fields: bool,
}

impl PolicyLoadArgs {
    /// The loader's options.
    pub(crate) fn options(self) -> LoadOptions {
        LoadOptions {
            allow_unknown_fields: self.allow_unknown_fields,
        }
    }
}

/// Where the policies loaded by [`load_policies`] are given, which says what a mix-up looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyArguments {
    /// Alone (`lint`).
    Alone,
    /// Next to resource arguments (`apply`, `test`), with which they may have been swapped.
    BesideResources,
}

/// Loads every policy under `paths`. Unreadable paths are errors; invalid policies are
/// collected, never fatal. A path that holds no policy document at all (valid or not) is an
/// error naming what it holds instead: nothing would be checked.
pub(crate) fn load_policies(
    paths: &[PathBuf],
    arguments: PolicyArguments,
    options: LoadOptions,
) -> anyhow::Result<LoadedPolicies> {
    load_policies_with(paths, arguments, options, &ContextValues::new())
}

/// [`load_policies`], resolving variables from `context` (the values given for them).
pub(crate) fn load_policies_with(
    paths: &[PathBuf],
    arguments: PolicyArguments,
    options: LoadOptions,
    context: &ContextValues,
) -> anyhow::Result<LoadedPolicies> {
    let mut loaded = LoadedPolicies::default();
    for path in paths {
        let files = manifest_files(path)?;
        let (policies, errors, skipped, warnings) = (
            loaded.policies.len(),
            loaded.errors.len(),
            loaded.skipped.len(),
            loaded.warnings.len(),
        );
        for file in &files {
            let outcome = sealgate_files::load_policy_file_with(file, options, context)?;
            loaded.policies.extend(outcome.policies);
            loaded.errors.extend(outcome.errors);
            loaded.warnings.extend(outcome.warnings);
            loaded.skipped.extend(outcome.skipped);
        }
        if loaded.policies.len() == policies && loaded.errors.len() == errors {
            // Policies were there, but none with a verifyImages rule: say that, not "no document".
            let without_rules: Vec<String> = loaded.warnings[warnings..]
                .iter()
                .filter(|w| matches!(w.kind, PolicyWarningKind::NoVerifyImagesRules))
                .map(ToString::to_string)
                .collect();
            if !without_rules.is_empty() {
                bail!(
                    "{} holds Kyverno policies but none with a verifyImages rule, so there is no policy for sealgate to check: {}",
                    path.display(),
                    without_rules.join("; ")
                );
            }
            let kinds = loaded.skipped[skipped..].iter().map(|s| s.kind.as_deref());
            bail!("{}", no_policy_message(path, files.len(), kinds, arguments));
        }
    }
    let duplicates = sealgate_core::policy::remove_duplicate_policies(&mut loaded.policies);
    loaded.errors.extend(duplicates);
    Ok(loaded)
}

/// Why `path` (with `files` manifest files, whose documents have `kinds`) gave no policy.
fn no_policy_message<'a>(
    path: &Path,
    files: usize,
    kinds: impl Iterator<Item = Option<&'a str>>,
    arguments: PolicyArguments,
) -> String {
    let path = path.display();
    if files == 0 {
        return format!(
            "{path} holds no *.yaml, *.yml or *.json file, so there is no policy to check; \
give the file or directory that holds your ClusterPolicy or Policy documents"
        );
    }
    let kinds = kinds_found(kinds);
    if kinds.is_empty() {
        return format!(
            "{path} holds no document, so there is no policy to check; \
give the file or directory that holds your ClusterPolicy or Policy documents"
        );
    }
    match arguments {
        PolicyArguments::BesideResources => {
            format!(
                "{path} holds {kinds}, not policies; did you swap the arguments? (policies come first, resources after --resource)"
            )
        }
        PolicyArguments::Alone => format!(
            "{path} holds no Kyverno policy (kind ClusterPolicy or Policy, apiVersion kyverno.io/v1): it holds {kinds}"
        ),
    }
}

/// The kinds of documents, plural and in order of first appearance: "Pods and Deployments".
fn kinds_found<'a>(kinds: impl Iterator<Item = Option<&'a str>>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for kind in kinds {
        let name = match kind {
            Some(kind) if !kind.is_empty() => plural(kind),
            _ => "documents without a kind".to_string(),
        };
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    match seen.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// A Kubernetes kind in the plural, as `kubectl` names resources: Pods, NetworkPolicies, Ingresses.
fn plural(kind: &str) -> String {
    if let Some(stem) = kind.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        return format!("{stem}ies");
    }
    if kind.ends_with('s') || kind.ends_with('x') {
        return format!("{kind}es");
    }
    format!("{kind}s")
}

/// Whether `value` is a Kyverno policy document (given where resources were expected).
fn is_kyverno_policy(value: &serde_json::Value) -> bool {
    matches!(value["kind"].as_str(), Some("ClusterPolicy" | "Policy"))
        && value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("kyverno.io/"))
}

/// A resource and the file it came from.
#[derive(Debug)]
pub(crate) struct SourcedResource {
    /// `file:line`.
    pub(crate) source: String,
    /// The resource.
    pub(crate) resource: Resource,
}

/// Reads every Kubernetes object in `paths`. Namespaced objects without a namespace get
/// `namespace` (as `kubectl apply -n` would); `namespace_labels` are the labels of that namespace.
pub(crate) fn load_resources(
    paths: &[PathBuf],
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<SourcedResource>> {
    let mut out = Vec::new();
    for path in paths {
        let (before, mut policies) = (out.len(), 0_usize);
        for file in manifest_files(path)? {
            let text = sealgate_files::read_text_bounded(&file, sealgate_files::MANIFEST_FILE)?;
            for doc in parse_documents(&text) {
                let doc = doc.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let source = format!("{}:{}", file.display(), doc.first_line);
                if doc.value.is_null() {
                    continue;
                }
                if is_kyverno_policy(&doc.value) {
                    policies += 1;
                }
                if doc.value["kind"].as_str() == Some("List") {
                    for item in doc.value["items"].as_array().into_iter().flatten() {
                        out.push(resource(
                            item.clone(),
                            &source,
                            namespace,
                            namespace_labels,
                        )?);
                    }
                    continue;
                }
                out.push(resource(doc.value, &source, namespace, namespace_labels)?);
            }
        }
        let resources = out.len() - before;
        if resources == policies && policies > 0 {
            bail!(
                "{} holds Kyverno policies, not resources; did you swap the arguments? (policies come first, resources after --resource)",
                path.display()
            );
        }
        if resources == 0 {
            bail!(
                "{} holds no Kubernetes resource, so there is nothing to check; give the file or directory of the manifests to check",
                path.display()
            );
        }
    }
    Ok(out)
}

fn resource(
    value: serde_json::Value,
    source: &str,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
) -> anyhow::Result<SourcedResource> {
    let mut resource = Resource::from_object(
        value,
        Operation::Create,
        Some(namespace),
        namespace_labels.clone(),
    )
    .with_context(|| format!("{source}: not a Kubernetes object"))?;
    // The labels are those of --namespace: a resource that names another namespace has none.
    if resource.namespace.as_deref() != Some(namespace) {
        resource.namespace_labels.clear();
    }
    Ok(SourcedResource {
        source: source.to_string(),
        resource,
    })
}

/// Sets on each resource what the values give for it, as Kyverno's CLI does before evaluating
/// it: the labels of its namespace (`namespaceSelector[]`, `namespaces[]`; a namespace the
/// values name wins over `--namespace-labels`), the operation (`request.operation`) and the
/// request's user (`request` members from a user info file). Returns the notes to print:
/// values naming what is not loaded, policies disagreeing on an operation.
pub(crate) fn apply_values(
    resources: &mut [SourcedResource],
    values: &CliValues,
    request: Option<&serde_json::Value>,
    policies: &[Policy],
) -> Vec<String> {
    let names: Vec<String> = resources.iter().map(|r| r.resource.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut notes = values.unused(policies, &names);
    for sourced in resources.iter_mut() {
        let resource = &mut sourced.resource;
        if let Some(labels) = resource
            .namespace
            .as_ref()
            .and_then(|ns| values.namespace_labels.get(ns))
        {
            resource.namespace_labels = labels.clone();
        }
        let operation =
            values.operation_for(&resource.name, policies.iter().map(|p| p.name.as_str()));
        resource.operation = operation.operation;
        notes.extend(operation.conflict);
        if let Some(request) = request {
            resource.request = request.clone();
        }
    }
    notes
}

/// Parses `k=v,k2=v2`.
pub(crate) fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                Ok((k.trim().to_string(), v.trim().to_string()))
            }
            _ => Err(format!("'{pair}' is not key=value")),
        })
        .collect()
}
