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

/// A policy file (or API object) of which nothing is in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedFile {
    /// The file's path, or the API object (`ClusterPolicy/NAME`, `Policy/NS/NAME`).
    pub source: String,
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
            .map(|f| f.source.clone())
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

/// Policies by where they came from (a file, an API object), each source with its last good
/// version: what the directory store and the Kubernetes policy watcher both keep, so a broken
/// source is treated the same wherever it comes from.
#[derive(Debug)]
pub struct PolicyBook<K> {
    sources: BTreeMap<K, SourceState>,
}

impl<K> Default for PolicyBook<K> {
    fn default() -> PolicyBook<K> {
        PolicyBook {
            sources: BTreeMap::new(),
        }
    }
}

/// What is known about one source.
#[derive(Debug)]
struct SourceState {
    /// The last good version's policies.
    policies: Vec<Policy>,
    /// Invalid, with nothing of it in force.
    failed: bool,
    /// Its errors, when it has any.
    errors: Vec<String>,
    /// Whether it means to enforce (see [`FailedFile::enforce`]).
    enforce: bool,
}

/// What one source holds now, as [`PolicyBook::record`] takes it.
#[derive(Debug)]
pub enum SourceContent {
    /// It was read: the policies that loaded and the errors of the rest (one message each).
    Loaded {
        /// The policies without error.
        policies: Vec<Policy>,
        /// The errors of the others.
        errors: Vec<String>,
    },
    /// It could not be read at all.
    Unreadable(String),
}

/// What [`PolicyBook::record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Whether what is in force changed.
    pub changed: bool,
    /// The source's errors (empty when it loaded cleanly).
    pub errors: Vec<String>,
    /// With errors: what stays in force in its place.
    pub kept: &'static str,
    /// Whether nothing of the source is in force.
    pub failed: bool,
}

impl<K: Ord + Clone> PolicyBook<K> {
    /// An empty book.
    pub fn new() -> PolicyBook<K> {
        PolicyBook::default()
    }

    /// Records what `source` holds now. A source with errors keeps its last good version when
    /// it had one; a new source with errors puts its valid policies in force. `enforce` is asked
    /// only when nothing of the source is in force (see [`FailedFile::enforce`]).
    pub fn record(
        &mut self,
        source: &K,
        content: SourceContent,
        enforce: impl FnOnce() -> bool,
    ) -> Recorded {
        let previous = self.sources.remove(source);
        let was_failed = previous.as_ref().is_some_and(|p| p.failed);
        // A source that failed before has no good version to keep.
        let previous = previous.filter(|p| !p.failed);
        let had_good = previous.is_some();
        // Whether what is in force changes: not when a broken source keeps its last version.
        let mut replaced = true;
        let (policies, errors) = match content {
            SourceContent::Unreadable(e) => {
                replaced = !had_good;
                (previous.map(|p| p.policies).unwrap_or_default(), vec![e])
            }
            SourceContent::Loaded { policies, errors } if errors.is_empty() => {
                (policies, Vec::new())
            }
            SourceContent::Loaded { policies, errors } => match previous {
                Some(p) => {
                    replaced = false;
                    (p.policies, errors)
                }
                None => (policies, errors),
            },
        };
        let failed = !errors.is_empty() && policies.is_empty();
        let enforce = failed && enforce();
        let changed = (replaced && (had_good || !policies.is_empty())) || failed != was_failed;
        let kept = if had_good {
            "its last good version stays in force"
        } else if failed {
            "nothing of it is in force"
        } else {
            "its valid documents are in force, the invalid ones skipped"
        };
        self.sources.insert(
            source.clone(),
            SourceState {
                policies,
                failed,
                errors: if failed { errors.clone() } else { Vec::new() },
                enforce,
            },
        );
        Recorded {
            changed,
            errors,
            kept,
            failed,
        }
    }

    /// Forgets `source` (deleted); returns whether it was known.
    pub fn remove(&mut self, source: &K) -> bool {
        self.sources.remove(source).is_some()
    }

    /// Keeps only the sources `keep` says yes to; returns whether any went.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) -> bool {
        let before = self.sources.len();
        self.sources.retain(|k, _| keep(k));
        self.sources.len() != before
    }

    /// A snapshot of what is in force, in source order: a second policy of one name is not
    /// enforced (and each such duplicate is returned as an error message), and the sources of
    /// which nothing is in force are listed with `name` naming them.
    pub fn snapshot(
        &self,
        generation: u64,
        name: impl Fn(&K) -> String,
    ) -> (PolicySet, Vec<String>) {
        let mut policies: Vec<Policy> = self
            .sources
            .values()
            .flat_map(|f| f.policies.iter().cloned())
            .collect();
        let duplicates = remove_duplicate_policies(&mut policies)
            .iter()
            .map(ToString::to_string)
            .collect();
        let failed: Vec<FailedFile> = self
            .sources
            .iter()
            .filter(|(_, f)| f.failed)
            .map(|(source, f)| FailedFile {
                source: name(source),
                errors: f.errors.clone(),
                enforce: f.enforce,
            })
            .collect();
        let mut set = PolicySet::new(policies, generation);
        set.failed_files = failed.len();
        set.failed = failed;
        (set, duplicates)
    }
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
    text_means_to_enforce(&text)
}

/// Whether a policy's text (YAML or JSON) that did not load means to enforce: a
/// `failureAction` or `validationFailureAction` of `Enforce` (any case), or none that reads as
/// `Audit` (fail closed).
pub fn text_means_to_enforce(text: &str) -> bool {
    let mut audit = false;
    // `failureAction:` and `validationFailureAction:`, in block or flow style, and their JSON
    // spellings (`"failureAction": "Audit"`).
    for (at, key) in text.match_indices("ailureAction") {
        let rest = text.get(at + key.len()..).unwrap_or_default();
        let Some(rest) = rest
            .strip_prefix(['"', '\''])
            .unwrap_or(rest)
            .trim_start()
            .strip_prefix(':')
        else {
            continue;
        };
        let value = rest
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
    /// What each file held when it was last read.
    stamps: BTreeMap<PathBuf, Stamp>,
    book: PolicyBook<PathBuf>,
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
            stamps: BTreeMap::new(),
            book: PolicyBook::new(),
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
            if self.stamps.get(file).is_some_and(|s| *s == now) {
                continue;
            }
            let content = match load_policy_file(file, self.options) {
                Err(e) => SourceContent::Unreadable(e.to_string()),
                Ok(outcome) => {
                    for w in &outcome.warnings {
                        tracing::warn!(warning = %w, "policy warning");
                    }
                    SourceContent::Loaded {
                        policies: outcome.policies,
                        errors: outcome.errors.iter().map(ToString::to_string).collect(),
                    }
                }
            };
            let recorded = self.book.record(file, content, || means_to_enforce(file));
            if !recorded.errors.is_empty() {
                for e in &recorded.errors {
                    tracing::error!(
                        file = %file.display(),
                        error = %e,
                        kept = recorded.kept,
                        "invalid policy file"
                    );
                }
                self.metrics.policy_reload_errors(1);
                report.errors.extend(recorded.errors);
            }
            changed |= recorded.changed;
            self.stamps.insert(file.clone(), now);
        }
        self.stamps.retain(|path, _| files.contains(path));
        changed |= self.book.retain(|path| files.contains(path));
        if changed {
            self.publish();
            report.changed = true;
        }
        report
    }

    fn publish(&mut self) {
        self.generation += 1;
        let (set, duplicates) = self
            .book
            .snapshot(self.generation, |path| path.display().to_string());
        // A second policy of one name is not enforced (the files are read in name order, so
        // the first stays the same from one reload to the next), and says so.
        for duplicate in &duplicates {
            tracing::error!(error = %duplicate, "policy not loaded");
        }
        let names: Vec<String> = set.policies.iter().map(Policy::qualified_name).collect();
        self.metrics.set_policies(set.policies.len());
        if self.generation > 1 {
            self.metrics.policy_reload();
        }
        tracing::info!(
            directory = %self.root.display(),
            generation = self.generation,
            count = set.policies.len() as u64,
            policies = %names.join(","),
            "{}",
            if self.generation == 1 {
                "policies loaded"
            } else {
                "policies reloaded"
            }
        );
        if set.policies.is_empty() && set.failed_files > 0 {
            tracing::error!(
                failed_files = set.failed_files as u64,
                "no policy is in force: every policy file is invalid; /readyz answers 503 and reviews are denied (or, if every file meant Audit, admitted with a warning) until one loads"
            );
        } else if set.policies.is_empty() && self.generation == 1 {
            tracing::warn!(
                directory = %self.root.display(),
                "no policy files: every review is admitted unchecked until policies are added"
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str) -> Policy {
        let text = format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: {name}\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      required: false\n      mutateDigest: false\n      attestors: []\n"
        );
        let mut outcome = sealgate_core::policy::load("test.yaml", &text);
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        outcome.policies.remove(0)
    }

    fn loaded(names: &[&str], errors: &[&str]) -> SourceContent {
        SourceContent::Loaded {
            policies: names.iter().map(|n| policy(n)).collect(),
            errors: errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn names(set: &PolicySet) -> Vec<String> {
        set.policies.iter().map(Policy::qualified_name).collect()
    }

    #[test]
    fn a_broken_source_keeps_its_last_good_version() {
        let mut book = PolicyBook::new();
        let first = book.record(&"a", loaded(&["one"], &[]), || true);
        assert!(first.changed && first.errors.is_empty() && !first.failed);
        let broken = book.record(&"a", loaded(&[], &["bad field"]), || true);
        assert!(
            !broken.changed,
            "the last good version stays: nothing in force changed"
        );
        assert_eq!(broken.errors, vec!["bad field".to_string()]);
        assert_eq!(broken.kept, "its last good version stays in force");
        let (set, _) = book.snapshot(2, |k| k.to_string());
        assert_eq!(names(&set), ["one"]);
        assert_eq!(set.failed_files, 0);

        let unreadable = book.record(&"a", SourceContent::Unreadable("gone".into()), || true);
        assert!(!unreadable.changed);
        assert_eq!(names(&book.snapshot(3, |k| k.to_string()).0), ["one"]);
    }

    #[test]
    fn a_new_broken_source_fails_and_says_whether_it_meant_to_enforce() {
        let mut book = PolicyBook::new();
        let recorded = book.record(&"b", loaded(&[], &["no rules"]), || true);
        assert!(recorded.failed && recorded.changed);
        let (set, _) = book.snapshot(1, |k| format!("ClusterPolicy/{k}"));
        assert_eq!(set.failed_files, 1);
        assert_eq!(set.failed[0].source, "ClusterPolicy/b");
        assert!(set.failed[0].enforce);
        assert!(
            matches!(set.nothing_in_force(), Some(NothingInForce::Deny(m)) if m.contains("ClusterPolicy/b"))
        );
        assert!(!set.is_usable());

        // Fixed: in force, no longer failed.
        let fixed = book.record(&"b", loaded(&["two"], &[]), || panic!("not asked"));
        assert!(fixed.changed && !fixed.failed);
        let (set, _) = book.snapshot(2, |k| k.to_string());
        assert_eq!(
            (names(&set), set.failed_files),
            (vec!["two".to_string()], 0)
        );
        assert!(set.is_usable());
    }

    #[test]
    fn duplicates_keep_the_first_source_and_removal_changes_what_is_in_force() {
        let mut book = PolicyBook::new();
        book.record(&"a", loaded(&["same"], &[]), || true);
        book.record(&"b", loaded(&["same", "other"], &[]), || true);
        let (set, duplicates) = book.snapshot(1, |k| k.to_string());
        assert_eq!(names(&set), ["same", "other"]);
        assert_eq!(duplicates.len(), 1, "{duplicates:?}");
        assert!(book.remove(&"a"));
        assert!(!book.remove(&"a"));
        assert!(book.retain(|k| *k != "b"));
        assert!(book.snapshot(2, |k| k.to_string()).0.policies.is_empty());
    }

    #[test]
    fn enforcement_is_read_from_yaml_and_json_text() {
        assert!(!text_means_to_enforce(
            "spec:\n  validationFailureAction: Audit\n"
        ));
        assert!(text_means_to_enforce(
            "spec:\n  validationFailureAction: Enforce\n"
        ));
        assert!(!text_means_to_enforce(
            r#"{"spec":{"validationFailureAction":"Audit"}}"#
        ));
        assert!(!text_means_to_enforce(
            r#"{"spec":{"rules":[{"verifyImages":[{"failureAction": "audit"}]}]}}"#
        ));
        assert!(text_means_to_enforce(
            r#"{"spec":{"validationFailureAction":"Enforce","x":{"failureAction":"Audit"}}}"#
        ));
        assert!(
            text_means_to_enforce(r#"{"spec":{}}"#),
            "none named: fail closed"
        );
        assert!(
            text_means_to_enforce("failureActionsAreNice: yes"),
            "not the field: fail closed"
        );
    }
}
