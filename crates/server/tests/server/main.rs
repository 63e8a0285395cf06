//! The webhook's integration tests: one binary (link once), a module per concern. Every test
//! uses a real registry (Debian's docker-registry via `sealgate-test-registry`), real
//! signatures and, where it matters, real TLS; none mocks the registry.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admission;
mod attestations;
mod caching;
mod common;
mod deadline;
mod fake_fetch;
mod faults;
mod namespaces;
mod reload;
mod reports;
mod tls;
