//! The local files sealgate reads, for every command that takes paths: `apply`, `test`, `lint`
//! and the webhook's policy directory.
//!
//! [`manifest_files`] finds the manifests under a path (the file itself, or `*.yaml`, `*.yml` and
//! `*.json` below a directory); [`load_policy_file`] reads one and loads it with the core's
//! policy loader, so a file gives the same located messages wherever it is read.
//!
//! [`values`] reads what Kyverno's CLI takes for variables: values files (`kind: Values`), inline
//! values, `--set` and user info files (`kind: UserInfo`), with located errors.
//!
//! Every file sealgate reads goes through [`read_bounded`] or [`read_text_bounded`] with a
//! [`FileKind`] that sets its size limit: [`KEY_FILE`] and [`CERTIFICATE_FILE`] 1 MiB,
//! [`MANIFEST_FILE`] (policies, resources, test and values files) 32 MiB. A file over its limit,
//! or a device such as `/dev/zero` that never ends, is refused after reading at most limit + 1
//! bytes.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use sealgate_core::policy::{
    ContextValues, LoadOptions, LoadOutcome, load_with, load_with_context,
};

pub mod values;

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
    /// A file could not be read (or was too large).
    #[error(transparent)]
    ReadFile(#[from] ReadError),
}

/// What a file is read as, which sets how large it may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// What such files are called in messages, plural: "key files".
    pub plural: &'static str,
    /// The most bytes such a file may hold.
    pub limit: u64,
}

/// Private and public key files (PEM): 1 MiB.
pub const KEY_FILE: FileKind = FileKind {
    plural: "key files",
    limit: 1 << 20,
};

/// Certificate and certificate-chain files (PEM): 1 MiB.
pub const CERTIFICATE_FILE: FileKind = FileKind {
    plural: "certificate files",
    limit: 1 << 20,
};

/// Sigstore trusted roots (`trusted_root.json`, a ClientTrustConfig): 4 MiB.
pub const TRUST_FILE: FileKind = FileKind {
    plural: "trusted-root files",
    limit: 4 << 20,
};

/// Policy, resource, Kyverno test and values files (YAML or JSON): 32 MiB.
pub const MANIFEST_FILE: FileKind = FileKind {
    plural: "policy and resource files",
    limit: 32 << 20,
};

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The OS refused to open or read it.
    #[error("reading {}: {detail}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// It holds more than its kind allows.
    #[error("{} is {}; {} are at most {}", path.display(),
        size.map_or_else(|| format!("larger than {}", human_size(kind.limit)), |size| size_over(size, kind.limit)),
        kind.plural, human_size(kind.limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, when the file system knows it (not for devices and pipes).
        size: Option<u64>,
        /// What it was read as.
        kind: FileKind,
    },
    /// It is not UTF-8 text.
    #[error("{} is not UTF-8 text (byte {offset}); {} are text", path.display(), kind.plural)]
    NotText {
        /// The file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
        /// What it was read as.
        kind: FileKind,
    },
}

impl ReadError {
    /// The message without the leading "reading PATH: ", for errors that name the file already.
    pub fn reason(&self) -> String {
        match self {
            ReadError::Io { detail, .. } => detail.clone(),
            other => other.to_string(),
        }
    }
}

/// `bytes` as "25 GiB", "1 MiB", "3.5 KiB" or "12 bytes".
fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            let tenths = bytes.saturating_mul(10) / unit;
            return if tenths.is_multiple_of(10) {
                format!("{} {name}", tenths / 10)
            } else {
                format!("{}.{} {name}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bytes} bytes")
}

/// `size` as [`human_size`] writes it, or in bytes when that reads the same as `limit`.
fn size_over(size: u64, limit: u64) -> String {
    let human = human_size(size);
    if human == human_size(limit) {
        format!("{size} bytes")
    } else {
        human
    }
}

/// Reads `path`, refusing it when it holds more than `kind.limit` bytes: a regular file by its
/// size before reading, anything else (a device, a pipe) after at most limit + 1 bytes.
pub fn read_bounded(path: &Path, kind: FileKind) -> Result<Vec<u8>, ReadError> {
    let io = |e: std::io::Error| ReadError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let too_large = |size| ReadError::TooLarge {
        path: path.to_path_buf(),
        size,
        kind,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if metadata.is_file() && metadata.len() > kind.limit {
        return Err(too_large(Some(metadata.len())));
    }
    let mut bytes = Vec::new();
    file.take(kind.limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > kind.limit {
        // A regular file that grew while it was read has a size again.
        let size = std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        return Err(too_large(size));
    }
    Ok(bytes)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_text_bounded(path: &Path, kind: FileKind) -> Result<String, ReadError> {
    String::from_utf8(read_bounded(path, kind)?).map_err(|e| ReadError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
        kind,
    })
}

/// Files under `path` that may hold manifests: the file itself, or `*.yaml`, `*.yml` and `*.json`
/// below a directory, in sorted order. Entries whose name starts with `.` are skipped, so the
/// `..data` links of a Kubernetes ConfigMap volume do not load every file twice. A path that is
/// neither a file nor a directory (a pipe such as `<(kustomize build)`, a device) is read as a
/// file.
pub fn manifest_files(path: &Path) -> Result<Vec<PathBuf>, PolicyFileError> {
    if !path.is_dir() {
        if !path.exists() {
            return Err(PolicyFileError::Missing {
                path: path.to_path_buf(),
            });
        }
        return Ok(vec![path.to_path_buf()]);
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
pub fn load_policy_file(path: &Path, options: LoadOptions) -> Result<LoadOutcome, PolicyFileError> {
    let text = read_text_bounded(path, MANIFEST_FILE)?;
    Ok(load_with(&path.display().to_string(), &text, options))
}

/// [`load_policy_file`], resolving variables from `context` (values given for them, as
/// `apply --values-file` and a test's values give them).
pub fn load_policy_file_with(
    path: &Path,
    options: LoadOptions,
    context: &ContextValues,
) -> Result<LoadOutcome, PolicyFileError> {
    let text = read_text_bounded(path, MANIFEST_FILE)?;
    Ok(load_with_context(
        &path.display().to_string(),
        &text,
        options,
        context,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(1 << 20), "1 MiB");
        assert_eq!(human_size(3 << 9), "1.5 KiB");
        assert_eq!(human_size(25 << 30), "25 GiB");
    }

    #[test]
    fn a_file_over_its_limit_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pem");
        std::fs::write(&path, vec![b'a'; (1 << 20) + 1]).unwrap();
        let err = read_bounded(&path, KEY_FILE).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is 1048577 bytes; key files are at most 1 MiB",
                path.display()
            )
        );
        std::fs::write(&path, vec![b'a'; 1 << 20]).unwrap();
        assert_eq!(read_bounded(&path, KEY_FILE).unwrap().len(), 1 << 20);
    }

    #[cfg(unix)]
    #[test]
    fn a_device_without_end_is_refused_after_the_limit() {
        let err = read_bounded(Path::new("/dev/zero"), KEY_FILE).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero is larger than 1 MiB; key files are at most 1 MiB"
        );
        assert_eq!(
            manifest_files(Path::new("/dev/zero")).unwrap(),
            vec![PathBuf::from("/dev/zero")]
        );
    }

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
