//! [`FakeFetch`]: a hand-written [`Fetch`] for tests of what sits in front of a fetch (the
//! webhook's caches, shared flights and deadlines): tags, `.sig` signatures and the referrers'
//! Sigstore bundles in memory, counted, with hosts that hang or fail on demand. Signatures are
//! real: signed with a real key (bundles as `cosign sign --key` v3 makes them), so the engine's
//! checks run as against a registry.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use sealgate_core::cosign::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use sealgate_core::cosign::{
    Descriptor, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer, SignatureSet,
    payload,
};
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::engine::{Artifact, FetchFailure, FetchFailureKind, SignatureRequest};
use sealgate_core::sigstore::bundle::{key_bundle, sign_statement};
use sealgate_core::sigstore::bundle_set::{BundleSet, ReferrerBundle};
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::driver::{Fetch, Fetched};

/// Tags and signatures in memory. See the module documentation.
#[derive(Debug, Default)]
pub struct FakeFetch {
    state: Mutex<State>,
    resolves: AtomicUsize,
    signature_fetches: AtomicUsize,
    bundle_fetches: AtomicUsize,
}

/// A referrer holding a bundle: its manifest digest and the bundle's bytes.
type Referrer = (Digest, Vec<u8>);

#[derive(Debug, Default)]
struct State {
    /// Normalised image → digest.
    tags: HashMap<String, Digest>,
    /// (`registry/path`, digest) → layers.
    layers: HashMap<(String, Digest), Vec<SignatureLayer>>,
    /// (`registry/path`, digest) → Sigstore bundles among the referrers (manifest digest, bytes).
    bundles: HashMap<(String, Digest), Vec<Referrer>>,
    hung: HashSet<String>,
    failing: HashMap<String, FetchFailureKind>,
    delay: Duration,
}

impl FakeFetch {
    /// An empty fake: every tag is unknown, no image is signed.
    pub fn new() -> Arc<FakeFetch> {
        Arc::new(FakeFetch::default())
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `image`'s tag resolve to `digest`.
    pub fn tag(&self, image: &str, digest: &Digest) {
        let image = ImageRef::parse(image).expect("a valid image reference");
        self.with(|s| {
            s.tags
                .insert(image.normalized().to_string(), digest.clone())
        });
    }

    /// Adds a cosign signature of `digest` by `key` to `image`'s repository.
    pub fn sign(&self, image: &str, digest: &Digest, key: &SigningKey) {
        let image = ImageRef::parse(image).expect("a valid image reference");
        let payload = payload::build(&image.cosign_identity(), digest, &BTreeMap::new());
        let signature = key
            .sign(&SystemRandom::new(), &payload)
            .expect("signing works");
        let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
        descriptor.annotations = Some(
            [(SIGNATURE_ANNOTATION.to_string(), STANDARD.encode(signature))]
                .into_iter()
                .collect(),
        );
        let layer = SignatureLayer {
            descriptor,
            payload,
        };
        self.with(|s| {
            s.layers
                .entry((image.repository(), digest.clone()))
                .or_default()
                .push(layer)
        });
    }

    /// Adds `bundle` (a Sigstore bundle's JSON) to the referrers of `digest` in `image`'s
    /// repository.
    pub fn add_bundle(&self, image: &str, digest: &Digest, bundle: Vec<u8>) {
        let image = ImageRef::parse(image).expect("a valid image reference");
        let manifest = Digest::sha256_of(&bundle);
        self.with(|s| {
            s.bundles
                .entry((image.repository(), digest.clone()))
                .or_default()
                .push((manifest, bundle))
        });
    }

    /// Adds a cosign v3 signature of `digest` by `key` as a referrer of `image`'s repository:
    /// cosign's sign statement in a DSSE envelope, in a key-based v0.3 bundle.
    pub fn sign_bundle(&self, image: &str, digest: &Digest, key: &SigningKey) {
        let statement = sign_statement(digest, &serde_json::Map::new());
        let envelope = Envelope::sign(key, &SystemRandom::new(), IN_TOTO_PAYLOAD_TYPE, &statement)
            .expect("signing works");
        self.add_bundle(image, digest, key_bundle(&envelope, key.public_key()));
    }

    /// Fetches from `host` never finish (until [`FakeFetch::release`]).
    pub fn hang(&self, host: &str) {
        self.with(|s| s.hung.insert(host.to_string()));
    }

    /// Fetches from `host` finish again.
    pub fn release(&self, host: &str) {
        self.with(|s| s.hung.remove(host));
    }

    /// Fetches from `host` fail with `kind` (until [`FakeFetch::heal`]).
    pub fn fail(&self, host: &str, kind: FetchFailureKind) {
        self.with(|s| s.failing.insert(host.to_string(), kind));
    }

    /// Fetches from `host` succeed again.
    pub fn heal(&self, host: &str) {
        self.with(|s| s.failing.remove(host));
    }

    /// Every fetch takes `delay` before it answers.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|s| s.delay = delay);
    }

    /// Tag resolutions asked for so far.
    pub fn resolves(&self) -> usize {
        self.resolves.load(Ordering::SeqCst)
    }

    /// Signature fetches asked for so far (`.sig` and `.att`).
    pub fn signature_fetches(&self) -> usize {
        self.signature_fetches.load(Ordering::SeqCst)
    }

    /// Fetches of the referrers' Sigstore bundles asked for so far.
    pub fn bundle_fetches(&self) -> usize {
        self.bundle_fetches.load(Ordering::SeqCst)
    }

    /// Waits as the host is set to: the delay, for ever while hung; then its failure, if any.
    async fn answer_from(&self, host: &str) -> Result<(), FetchFailure> {
        let delay = self.with(|s| s.delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        while self.with(|s| s.hung.contains(host)) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        match self.with(|s| s.failing.get(host).cloned()) {
            Some(kind) => Err(FetchFailure {
                host: host.to_string(),
                kind,
            }),
            None => Ok(()),
        }
    }
}

impl Fetch for FakeFetch {
    fn resolve<'a>(&'a self, image: &'a ImageRef) -> Fetched<'a, Digest> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let host = image.api_host();
            self.answer_from(host).await?;
            let found = self.with(|s| s.tags.get(image.normalized()).cloned());
            found.ok_or_else(|| FetchFailure {
                host: host.to_string(),
                kind: FetchFailureKind::NotFound {
                    reason: format!(
                        "manifest {} not found on {host}; check the repository name, tag and digest",
                        image.tag_or_latest()
                    ),
                },
            })
        })
    }

    fn image_data<'a>(
        &'a self,
        image: &'a ImageRef,
        _reference: &'a str,
    ) -> Fetched<'a, serde_json::Value> {
        Box::pin(async move {
            let host = image.api_host();
            self.answer_from(host).await?;
            Err(FetchFailure {
                host: host.to_string(),
                kind: FetchFailureKind::NotFound {
                    reason: format!("the fake registry keeps no image data for {image}"),
                },
            })
        })
    }

    fn signatures<'a>(
        &'a self,
        request: &'a SignatureRequest,
        _fresh: bool,
    ) -> Fetched<'a, Arc<SignatureSet>> {
        self.signature_fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            self.answer_from(request.host()).await?;
            let key = (request.repository_name(), request.digest.clone());
            // The fake keeps signatures only: every `.att` image is empty.
            let layers = match request.artifact {
                Artifact::Signatures => {
                    self.with(|s| s.layers.get(&key).cloned().unwrap_or_default())
                }
                Artifact::Attestations | Artifact::Bundles => Vec::new(),
            };
            Ok(Arc::new(SignatureSet {
                location: request.location(),
                image_digest: request.digest.clone(),
                layers,
            }))
        })
    }

    fn bundles<'a>(
        &'a self,
        request: &'a SignatureRequest,
        _fresh: bool,
    ) -> Fetched<'a, Arc<BundleSet>> {
        self.bundle_fetches.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            self.answer_from(request.host()).await?;
            let key = (request.repository_name(), request.digest.clone());
            let found = self.with(|s| s.bundles.get(&key).cloned().unwrap_or_default());
            Ok(Arc::new(BundleSet {
                location: format!(
                    "{}:{} (referrers tag)",
                    request.repository_name(),
                    request.digest.referrers_tag()
                ),
                image_digest: request.digest.clone(),
                bundles: found
                    .iter()
                    .map(|(manifest, bytes)| {
                        ReferrerBundle::read(manifest.clone(), Ok(bytes.as_slice()))
                    })
                    .collect(),
            }))
        })
    }
}
