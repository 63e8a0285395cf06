//! Running the engine on one resource: one evaluation, carried out by the registry driver with
//! the registry client (no deadline: the client's per-request timeout bounds each fetch).

use crate::progress::{Progress, ReportingFetch};
use sealgate_core::engine::{Decision, Evaluation, Mode, Resource};
use sealgate_core::policy::Policy;
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::Clock as _;
use sealgate_registry::Client;
use sealgate_registry::driver::{ClientFetch, SystemClock, drive};

/// The engine's decision for `resource` under `policies`, fetching from registries with `client`
/// (a fetch that waits long is reported on standard error under [`Progress::Shown`]).
pub(crate) async fn evaluate(
    client: &Client,
    trust: &TrustedRoot,
    policies: &[Policy],
    resource: &Resource,
    progress: Progress,
) -> Decision {
    let evaluation = Evaluation::new_at(policies, resource, Mode::Mutate, Some(SystemClock.now()));
    let fetch = ReportingFetch::new(ClientFetch::new(client.clone()), progress);
    drive(evaluation, &fetch, None, trust, &SystemClock)
        .await
        .decision
}
