//! Carrying out an engine plan: resolve the tags it names and fetch the signature sets it needs,
//! concurrently but bounded, into the [`Evidence`] the engine decides on.

use std::sync::Arc;

use sealgate_core::ImageRef;
use sealgate_core::engine::{Evidence, FetchFailure, Plan, SignatureRequest};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::signatures::fetch_signatures;
use crate::{Client, Error};

/// Turns a registry error into the engine's fetch failure (a timeout stays a timeout; its text
/// continues the engine's "did not finish within …").
pub fn fetch_failure(e: &Error) -> FetchFailure {
    match e {
        Error::Timeout { host, timeout } => FetchFailure::Timeout(format!(
            "{}s: {host} did not answer in time; if the registry is slow, raise --registry-timeout",
            timeout.as_secs_f64()
        )),
        _ => FetchFailure::Unavailable(e.to_string()),
    }
}

/// Resolves every tag `plan` checks, then fetches every signature set it needs, at most
/// `concurrency` requests at a time. Failures are recorded, not returned: the engine decides
/// what a failure means under each rule's failure action.
pub async fn gather(client: &Client, plan: &Plan<'_>, concurrency: usize) -> Evidence {
    let limit = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut evidence = Evidence::default();

    let mut tasks = JoinSet::new();
    for image in plan.digest_requests() {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let result = client.resolve(&image).await.map_err(|e| fetch_failure(&e));
            (image.normalized().to_string(), result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((image, result)) = joined {
            evidence.digests.insert(image, result);
        }
    }

    let digests = evidence.digests.clone();
    let requests = plan.signature_requests(&|r: &ImageRef| {
        digests.get(r.normalized()).and_then(|d| d.clone().ok())
    });
    let mut tasks = JoinSet::new();
    for request in requests {
        let (client, limit) = (client.clone(), limit.clone());
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let result = fetch_request(&client, &request).await;
            (request, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((request, result)) = joined {
            evidence.signatures.insert(request, result);
        }
    }
    evidence
}

async fn fetch_request(
    client: &Client,
    request: &SignatureRequest,
) -> Result<sealgate_core::cosign::SignatureSet, FetchFailure> {
    let Some(repo) = request.repository_ref() else {
        return Err(FetchFailure::Unavailable(format!(
            "'{}' is not a valid signature repository",
            request.repository
        )));
    };
    fetch_signatures(client, &repo, &request.digest)
        .await
        .map_err(|e| fetch_failure(&e))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_timeout_reads_as_the_end_of_did_not_finish_within() {
        let e = Error::Timeout {
            host: "registry.company.com".into(),
            timeout: Duration::from_millis(300),
        };
        assert_eq!(
            fetch_failure(&e),
            FetchFailure::Timeout(
                "0.3s: registry.company.com did not answer in time; if the registry is slow, raise --registry-timeout"
                    .into()
            )
        );
        let e = Error::Connect {
            host: "registry.company.com".into(),
            detail: "connection refused".into(),
        };
        assert!(
            matches!(fetch_failure(&e), FetchFailure::Unavailable(m) if m.starts_with("could not connect"))
        );
    }
}
