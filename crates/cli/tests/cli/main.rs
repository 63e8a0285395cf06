//! The `sealgate` binary end to end, as one test binary (one link instead of five): each module
//! drives the binary as a user would, against real registries (Debian's docker-registry, started
//! per test on a loopback port by `sealgate-test-registry`), and asserts exit codes and messages.

// Test code: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    unreachable_pub
)]

mod attestations;
mod audit;
mod bundles;
mod commands;
mod common;
mod configmap_keys;
mod context_entries;
mod durability;
mod footguns;
mod independent_verifier;
mod keyless;
mod kubernetes;
mod oracle;
mod policy_checks;
mod pull_secrets;
mod replicas;
mod reports;
mod seed_policies;
mod serve;
mod sign_bundle;
mod trusted_root;
mod values;
mod verify_bundle;
mod verify_keyless;
