//! The one driver of an [`Evaluation`]: it asks the evaluation what it wants, fetches it through
//! a [`Fetch`], answers, and at the end lets the evaluation check and decide.
//!
//! The CLI drives with [`ClientFetch`] (the registry client, at most
//! [`ClientFetch::CONCURRENCY`] requests at a time); the webhook plugs its caches, shared
//! flights, per-host limits and metrics in as its own [`Fetch`]. Every fetch the evaluation
//! wants runs concurrently in the driver's task, each started as soon as it is known (a resolved
//! tag starts its image's signature fetches at once). Under a [`Deadline`], what is still
//! pending when it passes is answered with a [`FetchFailureKind::Budget`] failure that says what
//! it was waiting for ([`Fetch::waiting_for`]); the evaluation then decides on what it has.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sealgate_core::cosign::SignatureSet;
use sealgate_core::engine::{
    Artifact, AttestorOutcome, Decision, Evaluation, FetchFailure, FetchFailureKind, OutcomeKey,
    SignatureRequest, VerifyContext, Waiting, Want,
};
use sealgate_core::sigstore::bundle_set::BundleSet;
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::Clock;
use sealgate_core::{Digest, ImageRef};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::referrers::fetch_bundle_set;
use crate::signatures::fetch_artifact;
use crate::{Client, Error};

/// Signature sets checked inline on the async thread; more move to a blocking section (on a
/// multi-threaded runtime).
const INLINE_CHECKS: usize = 4;

/// When a cached outcome is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Before anything was fetched.
    First,
    /// After the signatures arrived: another evaluation sharing the fetch may have verified them
    /// meanwhile.
    AfterFetch,
}

/// A fetch in progress.
pub type Fetched<'a, T> = Pin<Box<dyn Future<Output = Result<T, FetchFailure>> + Send + 'a>>;

/// Where an evaluation's fetches come from. Object-safe, so a server can hold any (the registry
/// client, a fake in tests) behind its caches; a fetch is boxed, which costs nothing beside a
/// registry round trip.
pub trait Fetch: Send + Sync {
    /// The cached outcome of `key`, if this fetcher keeps a cache.
    fn cached_outcome(&self, key: &OutcomeKey, lookup: Lookup) -> Option<AttestorOutcome> {
        let _ = (key, lookup);
        None
    }

    /// The digest `image`'s tag points to.
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> Fetched<'a, Digest>;

    /// The signatures at `request` (a `.sig` or `.att` image); `fresh` when a copy kept from an
    /// earlier fetch will not do.
    fn signatures<'a>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<SignatureSet>>;

    /// The Sigstore bundles among the referrers of `request`'s digest ([`Artifact::Bundles`];
    /// see [`crate::referrers::fetch_bundle_set`]); `fresh` as for signatures.
    fn bundles<'a>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<BundleSet>>;

    /// The manifest and config of `image` as Kyverno's `imageRegistry` context entry holds
    /// them (see [`crate::image_data`]), for the entry written as `reference`.
    fn image_data<'a>(&'a self, image: &'a ImageRef, reference: &'a str) -> Fetched<'a, Value>;

    /// What the fetch of `pending` is waiting for (asked when the deadline passes first).
    fn waiting_for(&self, pending: &Pending) -> Waiting {
        pending.waiting()
    }

    /// Outcomes the evaluation verified that may be kept.
    fn store_outcomes(&self, verified: &[(OutcomeKey, AttestorOutcome)]) {
        let _ = verified;
    }
}

/// A fetch the driver is waiting for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pending {
    /// The resolution of this image's tag.
    Digest(ImageRef),
    /// These signatures or attestations (a `.sig` or `.att` image).
    Signatures(SignatureRequest),
    /// The Sigstore bundles among the referrers of this request's digest
    /// ([`Artifact::Bundles`]).
    Bundles(SignatureRequest),
    /// The data of this image, for the entry written as the string.
    ImageData(String, ImageRef),
}

impl Pending {
    /// The fetch of `request`: its referrers' bundles for [`Artifact::Bundles`], else its `.sig`
    /// or `.att` image.
    pub fn fetch_of(request: SignatureRequest) -> Pending {
        match request.artifact {
            Artifact::Bundles => Pending::Bundles(request),
            Artifact::Signatures | Artifact::Attestations => Pending::Signatures(request),
        }
    }

    /// What the fetch waits for at the least: the registry's answer.
    pub fn waiting(&self) -> Waiting {
        match self {
            Pending::Digest(image) => Waiting::TagResolution {
                host: image.api_host().to_string(),
                image: image.normalized().to_string(),
            },
            Pending::Signatures(request) => match request.artifact {
                Artifact::Attestations => Waiting::Attestations {
                    host: request.host().to_string(),
                    location: request.location(),
                },
                // A bundle request is `Pending::Bundles` ([`Pending::fetch_of`]).
                Artifact::Signatures | Artifact::Bundles => Waiting::Signatures {
                    host: request.host().to_string(),
                    repository: request.repository_name(),
                    digest: request.digest.clone(),
                },
            },
            Pending::Bundles(request) => Waiting::Bundles {
                host: request.host().to_string(),
                image: format!("{}@{}", request.repository_name(), request.digest),
            },
            Pending::ImageData(_, image) => Waiting::ImageData {
                host: image.api_host().to_string(),
                image: image.normalized().to_string(),
            },
        }
    }
}

/// When waiting stops.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// The instant waiting stops.
    pub at: Instant,
    /// The request's whole budget, as timeout messages name it ("did not finish within 8s").
    pub budget: Duration,
}

/// The end of a driven evaluation.
#[derive(Debug)]
pub struct Driven {
    /// The decision.
    pub decision: Decision,
    /// Whether the deadline passed with fetches still pending.
    pub timed_out: bool,
}

enum Answer {
    Digest(ImageRef, Result<Digest, FetchFailure>),
    Signatures(SignatureRequest, Result<Arc<SignatureSet>, FetchFailure>),
    Bundles(SignatureRequest, Result<Arc<BundleSet>, FetchFailure>),
    ImageData(String, ImageRef, Result<Value, FetchFailure>),
}

async fn answer(fetch: &dyn Fetch, want: Pending, fresh: bool) -> Answer {
    match want {
        Pending::Digest(image) => {
            let result = fetch.resolve(&image).await;
            Answer::Digest(image, result)
        }
        Pending::Signatures(request) => {
            let result = fetch.signatures(&request, fresh).await;
            Answer::Signatures(request, result)
        }
        Pending::Bundles(request) => {
            let result = fetch.bundles(&request, fresh).await;
            Answer::Bundles(request, result)
        }
        Pending::ImageData(reference, image) => {
            let result = fetch.image_data(&image, &reference).await;
            Answer::ImageData(reference, image, result)
        }
    }
}

/// Carries `evaluation` out through `fetch`, waiting at most until `deadline`, and decides at
/// `now` with `trust`.
pub async fn drive(
    mut evaluation: Evaluation<'_>,
    fetch: &dyn Fetch,
    deadline: Option<Deadline>,
    trust: &TrustedRoot,
    clock: &dyn Clock,
) -> Driven {
    let mut running = FuturesUnordered::new();
    let mut pending: HashSet<Pending> = HashSet::new();
    let mut timed_out = false;
    loop {
        // Cached outcomes are answered at once and may lead to more wants.
        let mut wants = evaluation.wants();
        while !wants.is_empty() {
            for want in wants {
                match want {
                    Want::CachedOutcome(key) => {
                        let cached = fetch.cached_outcome(&key, Lookup::First);
                        evaluation.outcome_cached(key, cached);
                    }
                    Want::Digest(image) => {
                        let want = Pending::Digest(image);
                        pending.insert(want.clone());
                        running.push(answer(fetch, want, false));
                    }
                    Want::Signatures { request, fresh } => {
                        let want = Pending::fetch_of(request);
                        pending.insert(want.clone());
                        running.push(answer(fetch, want, fresh));
                    }
                    Want::ImageData { reference, image } => {
                        let want = Pending::ImageData(reference, image);
                        pending.insert(want.clone());
                        running.push(answer(fetch, want, false));
                    }
                }
            }
            wants = evaluation.wants();
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.at, running.next()).await {
                Ok(next) => next,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            },
            None => running.next().await,
        };
        match next {
            None => break,
            Some(Answer::Digest(image, result)) => {
                pending.remove(&Pending::Digest(image.clone()));
                evaluation.digest_resolved(&image, result);
            }
            Some(Answer::Signatures(request, result)) => {
                pending.remove(&Pending::Signatures(request.clone()));
                evaluation.signatures_fetched(request, result);
            }
            Some(Answer::Bundles(request, result)) => {
                pending.remove(&Pending::Bundles(request.clone()));
                evaluation.bundles_fetched(request, result);
            }
            Some(Answer::ImageData(reference, image, result)) => {
                pending.remove(&Pending::ImageData(reference.clone(), image));
                evaluation.image_data_fetched(&reference, result);
            }
        }
    }
    drop(running);
    if let Some(d) = deadline {
        for want in pending {
            let failure = FetchFailure {
                host: want.host().to_string(),
                kind: FetchFailureKind::Budget {
                    budget: d.budget,
                    waiting: fetch.waiting_for(&want),
                },
            };
            match want {
                Pending::Digest(image) => evaluation.digest_resolved(&image, Err(failure)),
                Pending::Signatures(request) => {
                    evaluation.signatures_fetched(request, Err(failure))
                }
                Pending::Bundles(request) => evaluation.bundles_fetched(request, Err(failure)),
                Pending::ImageData(reference, _) => {
                    evaluation.image_data_fetched(&reference, Err(failure))
                }
            }
        }
    }
    for key in evaluation.awaiting_verification() {
        if let Some(outcome) = fetch.cached_outcome(&key, Lookup::AfterFetch) {
            evaluation.outcome_cached(key, Some(outcome));
        }
    }
    let ctx = VerifyContext {
        trust,
        now: clock.now(),
    };
    let many = evaluation.checks_to_run() > INLINE_CHECKS
        && tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    let finished = if many {
        tokio::task::block_in_place(|| evaluation.finish(ctx))
    } else {
        evaluation.finish(ctx)
    };
    if !finished.verified.is_empty() {
        fetch.store_outcomes(&finished.verified);
    }
    Driven {
        decision: finished.decision,
        timed_out,
    }
}

impl Pending {
    /// The registry host the fetch goes to.
    pub fn host(&self) -> &str {
        match self {
            Pending::Digest(image) => image.api_host(),
            Pending::Signatures(request) | Pending::Bundles(request) => request.host(),
            Pending::ImageData(_, image) => image.api_host(),
        }
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn since_epoch(&self) -> Duration {
        // A clock set before 1970 reads as the epoch: nothing sealgate checks predates it.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The registry client as a [`Fetch`], with no cache: the CLI's, and the one a server's caches
/// sit in front of.
#[derive(Debug)]
pub struct ClientFetch {
    client: Client,
    slots: Option<Semaphore>,
}

impl ClientFetch {
    /// How many registry requests one evaluation keeps in flight ([`ClientFetch::new`]).
    pub const CONCURRENCY: usize = 8;

    /// Fetches with `client`, at most [`ClientFetch::CONCURRENCY`] requests at a time.
    pub fn new(client: Client) -> ClientFetch {
        ClientFetch {
            client,
            slots: Some(Semaphore::new(Self::CONCURRENCY)),
        }
    }

    /// Fetches with `client`, leaving the limits to the caller.
    pub fn unbounded(client: Client) -> ClientFetch {
        ClientFetch {
            client,
            slots: None,
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        // The semaphore is never closed.
        match &self.slots {
            Some(slots) => slots.acquire().await.ok(),
            None => None,
        }
    }
}

impl Fetch for ClientFetch {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> Fetched<'a, Digest> {
        Box::pin(async move {
            let _slot = self.slot().await;
            self.client
                .resolve(image)
                .await
                .map_err(|e| fetch_failure(image.api_host(), &e))
        })
    }

    fn signatures<'a>(
        &'a self,
        request: &'a SignatureRequest,
        _fresh: bool,
    ) -> Fetched<'a, Arc<SignatureSet>> {
        Box::pin(async move {
            let _slot = self.slot().await;
            fetch_artifact(
                &self.client,
                &request.repository,
                &request.digest,
                request.artifact,
            )
            .await
            .map(Arc::new)
            .map_err(|e| fetch_failure(request.host(), &e))
        })
    }

    fn bundles<'a>(
        &'a self,
        request: &'a SignatureRequest,
        _fresh: bool,
    ) -> Fetched<'a, Arc<BundleSet>> {
        Box::pin(async move {
            let _slot = self.slot().await;
            fetch_bundle_set(&self.client, &request.repository, &request.digest)
                .await
                .map(Arc::new)
                .map_err(|e| fetch_failure(request.host(), &e))
        })
    }

    fn image_data<'a>(&'a self, image: &'a ImageRef, reference: &'a str) -> Fetched<'a, Value> {
        Box::pin(async move {
            let _slot = self.slot().await;
            crate::image_data::image_data(&self.client, image, reference)
                .await
                .map_err(|e| fetch_failure(image.api_host(), &e))
        })
    }
}

/// The evaluation's fetch failure for a registry error on `host` (its words are the error's, a
/// timeout's continue the engine's "did not finish within …").
pub fn fetch_failure(host: &str, e: &Error) -> FetchFailure {
    let reason = || e.to_string();
    let kind = match e {
        Error::Timeout { timeout, .. } => FetchFailureKind::RequestTimeout { after: *timeout },
        Error::Connect { .. } | Error::Transport { .. } => {
            FetchFailureKind::Unreachable { reason: reason() }
        }
        Error::UntrustedCertificate { .. }
        | Error::CertificateNameMismatch { .. }
        | Error::PlainHttpServer { .. }
        | Error::InsecureRedirect { .. }
        | Error::Tls { .. } => FetchFailureKind::Tls { reason: reason() },
        Error::AuthenticationRequired { .. }
        | Error::CredentialsRejected { .. }
        | Error::UnsupportedAuthentication { .. }
        | Error::InsecureTokenRealm { .. } => FetchFailureKind::Unauthorized { reason: reason() },
        Error::Forbidden { .. } => FetchFailureKind::Forbidden { reason: reason() },
        Error::NotFound { .. } => FetchFailureKind::NotFound { reason: reason() },
        Error::TooLarge { .. } => FetchFailureKind::TooLarge { reason: reason() },
        Error::DigestMismatch { .. } => FetchFailureKind::DigestMismatch { reason: reason() },
        Error::Truncated { .. } | Error::RetriesExhausted { .. } => {
            FetchFailureKind::Overloaded { reason: reason() }
        }
        Error::InvalidJson { .. }
        | Error::UnsupportedMediaType { .. }
        | Error::UnexpectedStatus { .. }
        | Error::InvalidUploadLocation { .. }
        | Error::InvalidReference { .. } => FetchFailureKind::Malformed { reason: reason() },
        Error::CaFile { .. }
        | Error::AuthFile { .. }
        | Error::CredentialHelper { .. }
        | Error::InvalidOptions(_)
        | Error::ClientSetup(_) => FetchFailureKind::Local { reason: reason() },
    };
    FetchFailure {
        host: host.to_string(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_reads_as_the_end_of_did_not_finish_within() {
        let e = Error::Timeout {
            host: "registry.company.com".into(),
            timeout: Duration::from_millis(300),
        };
        let failure = fetch_failure("registry.company.com", &e);
        assert!(failure.is_timeout());
        assert_eq!(
            failure.to_string(),
            "0.3s: registry.company.com did not answer in time; if the registry is slow, raise --registry-timeout"
        );
        let e = Error::Connect {
            host: "registry.company.com".into(),
            detail: "connection refused".into(),
        };
        let failure = fetch_failure("registry.company.com", &e);
        assert!(matches!(failure.kind, FetchFailureKind::Unreachable { .. }));
        assert!(failure.to_string().starts_with("could not connect"));
    }
}
