//! Policies from a directory: the server's live [`PolicySet`], reloaded when files change.
//!
//! Files are found and read by `sealgate_files`, as for `apply`, `test` and `lint`.
//! [`PolicyStore`] is the server's: it loads the directory, then [`PolicyStore::watch`] polls it
//! (file list, sizes and modification times; no inotify) and publishes each new immutable
//! `Arc<PolicySet>` on a `tokio::sync::watch` channel. Requests clone the `Arc` and evaluate
//! without holding any lock. A file that cannot be read or holds an invalid policy is reported
//! (log and `sealgate_policy_reload_errors_total`) and its last good version stays in force; a
//! deleted file's policies go.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sealgate_core::policy::{LoadOptions, Policy, remove_duplicate_policies};
use sealgate_files::{PolicyFileError, load_policy_file, manifest_files};
use tokio::sync::watch;

use crate::metrics::Metrics;

/// The policies in force: an immutable snapshot, replaced as a whole on reload.
#[derive(Debug, Default)]
pub struct PolicySet {
    /// The policies, by file path then document order.
    pub policies: Vec<Policy>,
    /// Increases with every reload that changed something (1 after the first load).
    pub generation: u64,
    /// Policy files of which nothing is in force: invalid, with no last good version.
    pub failed_files: usize,
    /// Those files, with their errors and what they meant to do.
    pub failed: Vec<FailedFile>,
}

/// A policy file of which nothing is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it did not load, one message per error.
    pub errors: Vec<String>,
    /// Whether it meant to block: it names `Enforce` as a failure action, or names none that
    /// can be read (sealgate cannot tell, so it fails closed).
    pub enforce: bool,
}

/// How the webhook answers while no policy is in force although policy files exist: every one
/// of them is invalid, so it knows nothing it could check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NothingInForce {
    /// A file meant to enforce: deny, with this reason.
    Deny(String),
    /// Every file meant only to audit: admit, with this warning.
    Warn(String),
}

impl PolicySet {
    /// A snapshot of `policies`.
    pub fn new(policies: Vec<Policy>, generation: u64) -> PolicySet {
        PolicySet {
            policies,
            generation,
            failed_files: 0,
            failed: Vec::new(),
        }
    }

    /// With no policy in force while policy files exist (all invalid), what the webhook
    /// answers instead of admitting unchecked; `None` when policies are in force or there are
    /// no policy files at all.
    pub fn nothing_in_force(&self) -> Option<NothingInForce> {
        if !self.policies.is_empty() || self.failed.is_empty() {
            return None;
        }
        const LISTED: usize = 5;
        let mut errors: Vec<String> = self
            .failed
            .iter()
            .flat_map(|f| f.errors.iter().cloned())
            .collect();
        let more = errors.len().saturating_sub(LISTED);
        errors.truncate(LISTED);
        let mut listed = errors.join("; ");
        if more > 0 {
            listed.push_str(&format!("; and {more} more"));
        }
        let enforcing: Vec<String> = self
            .failed
            .iter()
            .filter(|f| f.enforce)
            .map(|f| f.path.display().to_string())
            .collect();
        Some(if enforcing.is_empty() {
            NothingInForce::Warn(format!(
                "no policy is in force: every policy file is invalid (all meant Audit, so this request is admitted unchecked): {listed}"
            ))
        } else {
            NothingInForce::Deny(format!(
                "no policy is in force: every policy file is invalid and {} meant to enforce, so sealgate refuses what it cannot check until the policies load; fix them: {listed}",
                enforcing.join(", ")
            ))
        })
    }

    /// Whether the server can admit with these policies: loaded, and not a directory whose
    /// every file failed (that would admit every image unchecked; `/readyz` says 503 instead,
    /// so the API server applies the webhook's failurePolicy).
    pub fn is_usable(&self) -> bool {
        self.generation > 0 && !(self.policies.is_empty() && self.failed_files > 0)
    }
}

/// What is known about one file.
#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    /// The last good version's policies.
    policies: Vec<Policy>,
    /// Invalid, with nothing of it in force.
    failed: bool,
    /// Its errors, when it has any.
    errors: Vec<String>,
    /// Whether it means to enforce (see [`FailedFile::enforce`]).
    enforce: bool,
}

/// Whether a policy file's text means to enforce: a `failureAction` or
/// `validationFailureAction` of `Enforce` (any case), or none that reads as `Audit`. Read from
/// the raw text because the file did not load; unreadable means "enforce" (fail closed).
fn means_to_enforce(path: &Path) -> bool {
    const MAX_SCANNED: u64 = 8 << 20;
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    let mut text = String::new();
    use std::io::Read as _;
    if std::io::Read::take(file, MAX_SCANNED)
        .read_to_string(&mut text)
        .is_err()
    {
        return true;
    }
    let mut audit = false;
    // `failureAction:` and `validationFailureAction:`, in block or flow style.
    for (at, key) in text.match_indices("ailureAction:") {
        let value = text
            .get(at + key.len()..)
            .unwrap_or_default()
            .split(['\n', ',', '}', '#'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if value.eq_ignore_ascii_case("audit") {
            audit = true;
        } else {
            return true;
        }
    }
    !audit
}

/// What changes when a file is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// What a reload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Whether a new snapshot was published.
    pub changed: bool,
    /// Files (and documents) that could not be loaded, one message each.
    pub errors: Vec<String>,
}

/// The policy directory and the snapshot published from it.
#[derive(Debug)]
pub struct PolicyStore {
    root: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    generation: u64,
    sender: watch::Sender<Arc<PolicySet>>,
    metrics: Metrics,
    options: LoadOptions,
}

impl PolicyStore {
    /// Loads `root` (a directory or one file) and returns the store with a receiver of its
    /// snapshots. Fails only when `root` cannot be listed; invalid files are logged and skipped.
    pub fn open(
        root: &Path,
        metrics: Metrics,
    ) -> Result<(PolicyStore, watch::Receiver<Arc<PolicySet>>), PolicyFileError> {
        PolicyStore::open_with(root, metrics, LoadOptions::default())
    }

    /// [`open`](PolicyStore::open), loading every file with `options`.
    pub fn open_with(
        root: &Path,
        metrics: Metrics,
        options: LoadOptions,
    ) -> Result<(PolicyStore, watch::Receiver<Arc<PolicySet>>), PolicyFileError> {
        manifest_files(root)?;
        let (sender, receiver) = watch::channel(Arc::new(PolicySet::default()));
        let mut store = PolicyStore {
            root: root.to_path_buf(),
            files: BTreeMap::new(),
            generation: 0,
            sender,
            metrics,
            options,
        };
        let report = store.reload();
        if !report.changed {
            // An empty directory: publish generation 1 anyway, so readiness is explicit.
            store.publish();
        }
        Ok((store, receiver))
    }

    /// Looks at the directory once and publishes a new snapshot if anything changed.
    pub fn reload(&mut self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let files = match manifest_files(&self.root) {
            Ok(files) => files,
            Err(e) => {
                let message = format!("{e}; the policies loaded before stay in force");
                tracing::error!(error = %message, "policy reload failed");
                self.metrics.policy_reload_errors(1);
                report.errors.push(message);
                return report;
            }
        };
        let mut changed = false;
        for file in &files {
            let Some(now) = stamp(file) else {
                continue;
            };
            if self.files.get(file).is_some_and(|s| s.stamp == now) {
                continue;
            }
            let previous = self.files.remove(file);
            let was_failed = previous.as_ref().is_some_and(|p| p.failed);
            // A file that failed before has no good version to keep.
            let previous = previous.filter(|p| !p.failed);
            let had_good = previous.is_some();
            // Whether what is in force changes: not when a broken file keeps its last version.
            let mut replaced = true;
            let (policies, errors) = match load_policy_file(file, self.options) {
                Err(e) => {
                    replaced = !had_good;
                    (
                        previous.map(|p| p.policies).unwrap_or_default(),
                        vec![e.to_string()],
                    )
                }
                Ok(outcome) => {
                    for w in &outcome.warnings {
                        tracing::warn!(warning = %w, "policy warning");
                    }
                    if outcome.errors.is_empty() {
                        (outcome.policies, Vec::new())
                    } else {
                        let errors = outcome.errors.iter().map(ToString::to_string).collect();
                        // The last good version of the file stays; a new file keeps its valid
                        // documents.
                        match previous {
                            Some(p) => {
                                replaced = false;
                                (p.policies, errors)
                            }
                            None => (outcome.policies, errors),
                        }
                    }
                }
            };
            let failed = !errors.is_empty() && policies.is_empty();
            let enforce = failed && means_to_enforce(file);
            if !errors.is_empty() {
                let kept = if had_good {
                    "its last good version stays in force"
                } else {
                    "its valid documents are in force, the invalid ones skipped"
                };
                for e in &errors {
                    tracing::error!(
                        file = %file.display(),
                        error = %e,
                        kept,
                        "invalid policy file"
                    );
                }
                self.metrics.policy_reload_errors(1);
                report.errors.extend(errors.iter().cloned());
            }
            changed |= (replaced && (had_good || !policies.is_empty())) || failed != was_failed;
            self.files.insert(
                file.clone(),
                FileState {
                    stamp: now,
                    policies,
                    failed,
                    errors: if failed { errors } else { Vec::new() },
                    enforce,
                },
            );
        }
        let before = self.files.len();
        self.files.retain(|path, _| files.contains(path));
        changed |= self.files.len() != before;
        if changed {
            self.publish();
            report.changed = true;
        }
        report
    }

    fn publish(&mut self) {
        self.generation += 1;
        let mut policies: Vec<Policy> = self
            .files
            .values()
            .flat_map(|f| f.policies.iter().cloned())
            .collect();
        // A second policy of one name is not enforced (the files are read in name order, so
        // the first stays the same from one reload to the next), and says so.
        for duplicate in remove_duplicate_policies(&mut policies) {
            tracing::error!(error = %duplicate, "policy not loaded");
        }
        let names: Vec<String> = policies.iter().map(Policy::qualified_name).collect();
        self.metrics.set_policies(policies.len());
        if self.generation > 1 {
            self.metrics.policy_reload();
        }
        tracing::info!(
            directory = %self.root.display(),
            generation = self.generation,
            count = policies.len() as u64,
            policies = %names.join(","),
            "{}",
            if self.generation == 1 {
                "policies loaded"
            } else {
                "policies reloaded"
            }
        );
        let failed: Vec<FailedFile> = self
            .files
            .iter()
            .filter(|(_, f)| f.failed)
            .map(|(path, f)| FailedFile {
                path: path.clone(),
                errors: f.errors.clone(),
                enforce: f.enforce,
            })
            .collect();
        let failed_files = failed.len();
        if policies.is_empty() && failed_files > 0 {
            tracing::error!(
                failed_files = failed_files as u64,
                "no policy is in force: every policy file is invalid; /readyz answers 503 and reviews are denied (or, if every file meant Audit, admitted with a warning) until one loads"
            );
        } else if policies.is_empty() && self.generation == 1 {
            tracing::warn!(
                directory = %self.root.display(),
                "no policy files: every review is admitted unchecked until policies are added"
            );
        }
        let mut set = PolicySet::new(policies, self.generation);
        set.failed_files = failed_files;
        set.failed = failed;
        self.sender.send_replace(Arc::new(set));
    }

    /// Polls the directory every `every` until `stop` resolves.
    pub async fn watch(mut self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                // A few stat calls, and a parse only when a file changed: inline is fine.
                _ = tick.tick() => {
                    self.reload();
                }
            }
        }
    }
}
