//! Running the engine on one resource: plan, fetch, verify, decide.

use std::time::{SystemTime, UNIX_EPOCH};

use sealgate_core::engine::{Decision, Resource, VerifyContext, decide, plan};
use sealgate_core::policy::Policy;
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_registry::Client;
use sealgate_registry::evidence::gather;

/// How many registry requests one evaluation keeps in flight.
const CONCURRENCY: usize = 8;

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The engine's decision for `resource` under `policies`, fetching from registries with `client`.
pub(crate) async fn evaluate(
    client: &Client,
    policies: &[Policy],
    resource: &Resource,
) -> Decision {
    let plan = plan(policies, resource);
    let mut evidence = gather(client, &plan, CONCURRENCY).await;
    evidence.verify_missing(
        &plan,
        VerifyContext {
            trust: TrustedRoot::public_good(),
            now: now_unix(),
        },
    );
    decide(&plan, &evidence)
}
