//! Every committed fuzz input, replayed on stable: the corpora cargo-fuzz grew
//! (`fuzz/corpus/TARGET/`) and each input that once crashed a target (`fuzz/regressions/TARGET/`),
//! run through the same function the fuzzer runs. A failure names the target and the file.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sealgate_fuzz_targets::{TARGETS, Target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every file of `dir` through `target`; returns how many ran and the failures.
fn replay(target: &Target, dir: &Path) -> (usize, Vec<String>) {
    let files = inputs(dir);
    let mut failures = Vec::new();
    for file in &files {
        let data = match std::fs::read(file) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: cannot read: {e}", file.display()));
                continue;
            }
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{} ({}): {message}", file.display(), target.name));
        }
    }
    (files.len(), failures)
}

#[test]
fn every_target_has_a_committed_corpus_and_every_input_replays() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let corpus = fuzz_dir().join("corpus").join(target.name);
        let (count, mut failed) = replay(target, &corpus);
        assert!(
            count > 0,
            "{}: no corpus at {} (scripts/fuzz {} grows one; commit it)",
            target.name,
            corpus.display(),
            target.name
        );
        failures.append(&mut failed);
        let (_, mut failed) = replay(target, &fuzz_dir().join("regressions").join(target.name));
        failures.append(&mut failed);
    }
    assert!(
        failures.is_empty(),
        "fuzz inputs that fail:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_cargo_fuzz_target_is_a_listed_target_and_the_reverse() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for target in TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{}\"", target.name)),
            "fuzz/Cargo.toml has no [[bin]] for {}",
            target.name
        );
        let source = fuzz_dir()
            .join("fuzz_targets")
            .join(format!("{}.rs", target.name));
        assert!(source.is_file(), "{} is missing", source.display());
    }
    let bins = manifest.matches("[[bin]]").count();
    assert_eq!(
        bins,
        TARGETS.len(),
        "fuzz/Cargo.toml and TARGETS list different targets"
    );
}
