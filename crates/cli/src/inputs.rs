//! Reading what `apply`, `test` and `lint` are given: policy files and directories, and resource
//! manifests (multi-document YAML or JSON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sealgate_core::engine::Resource;
use sealgate_core::policy::yaml::parse_documents;
use sealgate_core::policy::{Operation, Policy, PolicyError, PolicyWarning, SkippedDocument};

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

/// Loads every policy under `paths`. Unreadable paths are errors; invalid policies are
/// collected, never fatal.
pub(crate) fn load_policies(paths: &[PathBuf]) -> anyhow::Result<LoadedPolicies> {
    let mut loaded = LoadedPolicies::default();
    for path in paths {
        for file in manifest_files(path)? {
            let outcome = sealgate_files::load_policy_file(&file)?;
            loaded.policies.extend(outcome.policies);
            loaded.errors.extend(outcome.errors);
            loaded.warnings.extend(outcome.warnings);
            loaded.skipped.extend(outcome.skipped);
        }
    }
    Ok(loaded)
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
        for file in manifest_files(path)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            for doc in parse_documents(&text) {
                let doc = doc.map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let source = format!("{}:{}", file.display(), doc.first_line);
                if doc.value.is_null() {
                    continue;
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
