//! [`ServeError`]: why the server could not start or stop cleanly. Request-level problems never
//! become errors: they are answered (AdmissionReview, HTTP 4xx) and logged.

use std::path::PathBuf;

use crate::audit::AuditError;
use crate::tls::TlsError;
use sealgate_files::PolicyFileError;

/// Why `sealgate serve` could not start, or did not shut down cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The policy path could not be read.
    #[error("loading policies: {0}; pass an existing directory with --policies")]
    Policies(PolicyFileError),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The data directory could not be created.
    #[error("creating the data directory {}: {detail}; create it or pass another --data-dir", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// The listen address could not be bound.
    #[error(
        "could not listen on {listen}: {detail}; is another process using the port? pass another --listen"
    )]
    Bind {
        /// The address given.
        listen: String,
        /// What the OS said.
        detail: String,
    },
    /// The audit trail could not be opened or flushed.
    #[error(transparent)]
    Audit(#[from] AuditError),
}
