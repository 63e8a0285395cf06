//! The local files sealgate reads, for every command that takes paths: `apply`, `test`, `lint`
//! and the webhook's policy directory.
//!
//! [`manifest_files`] finds the manifests under a path (the file itself, or `*.yaml`, `*.yml` and
//! `*.json` below a directory); [`load_policy_file`] reads one and loads it with the core's
//! policy loader, so a file gives the same located messages wherever it is read.

use std::path::{Path, PathBuf};

use sealgate_core::policy::{LoadOutcome, load};

/// Why policy files could not be listed or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyFileError {
    /// The path given does not exist.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// A directory could not be listed.
    #[error("reading the directory {}: {detail}", path.display())]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// A file could not be read.
    #[error("reading {}: {detail}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
}

/// Files under `path` that may hold manifests: the file itself, or `*.yaml`, `*.yml` and `*.json`
/// below a directory, in sorted order. Entries whose name starts with `.` are skipped, so the
/// `..data` links of a Kubernetes ConfigMap volume do not load every file twice.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, PolicyFileError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(PolicyFileError::Missing {
            path: path.to_path_buf(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| PolicyFileError::ReadDir {
            path: dir.clone(),
            detail: e.to_string(),
        })?;
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            let hidden = p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml" | "json")
            ) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and loads one policy file (several documents allowed); invalid documents are in the
/// outcome's `errors`, each with file:line.
pub fn load_policy_file(path: &Path) -> Result<LoadOutcome, PolicyFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyFileError::ReadFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(load(&path.display().to_string(), &text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_configmap_volume_lists_each_file_once() {
        // kubelet's layout: ..2026_11_25_…/p.yaml, ..data -> ..2026_11_25_…, p.yaml -> ..data/p.yaml
        let dir = tempfile::tempdir().unwrap();
        let version = dir.path().join("..2026_11_25_18_00_00.123");
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("p.yaml"), "kind: x\n").unwrap();
        std::os::unix::fs::symlink(&version, dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/p.yaml", dir.path().join("p.yaml")).unwrap();
        assert_eq!(
            manifest_files(dir.path()).unwrap(),
            vec![dir.path().join("p.yaml")]
        );
    }
}
