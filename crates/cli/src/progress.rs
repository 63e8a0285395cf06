//! A line on standard error while a registry request has waited long: `waiting for HOST …`, so a
//! hung registry is not 30 s of silence. The timer wraps the CLI's calls into the registry
//! client and the driver ([`ReportingFetch`]); the engine and the client know nothing of it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sealgate_core::cosign::SignatureSet;
use sealgate_core::engine::SignatureRequest;
use sealgate_core::sigstore::bundle_set::BundleSet;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::driver::{ClientFetch, Fetch, Fetched};

/// How long a request waits before the line is printed.
pub(crate) const PROGRESS_AFTER: Duration = Duration::from_secs(2);

/// Whether the progress line is printed: not when standard output is machine-read (`-o json`),
/// where a reader may take standard error along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Print it.
    Shown,
    /// Stay quiet.
    Off,
}

/// Awaits `request`; if it has not finished after [`PROGRESS_AFTER`], says on standard error
/// that it waits for `host` and for what, then goes on waiting.
pub(crate) async fn reporting<T>(
    progress: Progress,
    host: &str,
    what: impl FnOnce() -> String,
    request: impl Future<Output = T>,
) -> T {
    if progress == Progress::Off {
        return request.await;
    }
    let mut request = std::pin::pin!(request);
    match tokio::time::timeout(PROGRESS_AFTER, request.as_mut()).await {
        Ok(done) => done,
        Err(_) => {
            eprintln!(
                "waiting for {host} … ({}, {} s so far)",
                what(),
                PROGRESS_AFTER.as_secs()
            );
            request.await
        }
    }
}

/// The driver's fetches through the registry client, each reported when it waits long.
pub(crate) struct ReportingFetch {
    inner: ClientFetch,
    progress: Progress,
}

impl ReportingFetch {
    pub(crate) fn new(inner: ClientFetch, progress: Progress) -> ReportingFetch {
        ReportingFetch { inner, progress }
    }
}

impl Fetch for ReportingFetch {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> Fetched<'a, Digest> {
        Box::pin(reporting(
            self.progress,
            image.api_host(),
            move || format!("resolving {image}"),
            self.inner.resolve(image),
        ))
    }

    fn signatures<'a>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<SignatureSet>> {
        Box::pin(reporting(
            self.progress,
            request.host(),
            move || {
                format!(
                    "fetching the {} of {}@{}",
                    request.artifact.noun(),
                    request.repository,
                    request.digest
                )
            },
            self.inner.signatures(request, fresh),
        ))
    }

    fn bundles<'a>(
        &'a self,
        request: &'a SignatureRequest,
        fresh: bool,
    ) -> Fetched<'a, Arc<BundleSet>> {
        Box::pin(reporting(
            self.progress,
            request.host(),
            move || {
                format!(
                    "fetching the Sigstore bundles among the referrers of {}@{}",
                    request.repository, request.digest
                )
            },
            self.inner.bundles(request, fresh),
        ))
    }

    fn image_data<'a>(
        &'a self,
        image: &'a ImageRef,
        reference: &'a str,
    ) -> Fetched<'a, serde_json::Value> {
        Box::pin(reporting(
            self.progress,
            image.api_host(),
            move || format!("fetching the manifest and config of {image}"),
            self.inner.image_data(image, reference),
        ))
    }
}
