//! One resource's evaluation as a state machine that tells its caller what it wants next, as
//! rustls' connection does: the caller does the I/O, the evaluation decides.
//!
//! ```text
//! Evaluation::new(policies, resource, mode)
//!   loop: wants() → Want::Digest(image)            → digest_resolved(image, result)
//!                   Want::CachedOutcome(key)       → outcome_cached(key, cached or None)
//!                   Want::Signatures { request }   → signatures_fetched(request, result)
//!                                                    (request.artifact Bundles:
//!                                                     bundles_fetched(request, result))
//!   finish(ctx) → Finished { decision, verified }   (checks what was fetched, then decides)
//! ```
//!
//! Each want is handed out once. A resolved tag makes the signature wants of its image
//! possible at once, so one slow tag never holds up the other images. An attestor whose first
//! place holds nothing for it (a `type: Cosign` entry's `.sig` image that does not exist) wants
//! the other place ([`OutcomeKey::fallback`]: the referrers' Sigstore bundles) once that answer
//! arrives. A caller with a cache
//! answers [`Want::CachedOutcome`] from it (a caller without one answers `None`) and keeps
//! [`Finished::verified`]; a caller with a deadline answers what is still pending with a
//! [`FetchFailure`] of kind [`Budget`](super::FetchFailureKind::Budget). Nothing here does I/O
//! or reads a clock.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::cosign::SignatureSet;
use crate::cosign::dsse::PREDICATE_TYPE_ANNOTATION;
use crate::image::ImageRef;
use crate::image::digest::Digest;
use crate::policy::{Attestation, Attestor, ImageDataSet, Policy};
use crate::sigstore::bundle_set::BundleSet;

use super::attestation::check_attestation;
use super::attestor::{VerifyContext, check_attestor};
use super::bundle::{BundleFailure, check_bundle_attestation, check_bundles};
use super::decide::{Decision, Found, decide};
use super::outcome::{
    Absent, AttestorFailure, AttestorOutcome, CannotEvaluate, FetchFailure, OutcomeKey,
    SignatureRequest, Verified,
};
use super::plan::{Mode, Plan, plan_at};
use super::resource::Resource;

/// Something the evaluation needs from outside before it can decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Resolve this tag to a digest; answer with [`Evaluation::digest_resolved`].
    Digest(ImageRef),
    /// A cached outcome for this key, if the caller keeps one; answer with
    /// [`Evaluation::outcome_cached`] (`None` when there is none).
    CachedOutcome(OutcomeKey),
    /// Fetch these signatures; answer with [`Evaluation::signatures_fetched`] (for
    /// [`Artifact::Bundles`](super::Artifact::Bundles), the referrers' Sigstore bundles, with
    /// [`Evaluation::bundles_fetched`]).
    Signatures {
        /// Where.
        request: SignatureRequest,
        /// Whether an entry with `useCache: false` needs them: a copy kept from an earlier
        /// fetch will not do.
        fresh: bool,
    },
    /// Fetch this image's manifest and config for a rule's `imageRegistry` context entry;
    /// answer with [`Evaluation::image_data_fetched`] under `reference`.
    ImageData {
        /// The reference as the entry gives it (the answer's key).
        reference: String,
        /// The image.
        image: ImageRef,
    },
}

/// The end of an evaluation.
#[derive(Debug)]
pub struct Finished {
    /// The decision.
    pub decision: Decision,
    /// Outcomes this evaluation verified that may be cached (entries with `useCache: false`
    /// excluded): each is a [`Verified`](super::Verified) outcome.
    pub verified: Vec<(OutcomeKey, AttestorOutcome)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    /// The cache was asked.
    AskedCache,
    /// Waiting for (or holding) its signatures.
    NeedsSignatures,
    /// The outcome is known.
    Known,
}

#[derive(Debug)]
struct KeyInfo<'p> {
    attestor: std::borrow::Cow<'p, Attestor>,
    /// The attestation the attestor checks, for an attestation's key.
    attestation: Option<std::borrow::Cow<'p, Attestation>>,
    /// False when any entry consulting the key has `useCache: false`.
    cacheable: bool,
    state: KeyState,
}

/// What a signature request brought: a `.sig`/`.att` image's layers or the referrers' bundles.
#[derive(Debug, Clone)]
enum Fetched {
    Layers(Arc<SignatureSet>),
    Bundles(Arc<BundleSet>),
}

impl Fetched {
    /// Whether the place holds anything for a check of `attestation` (or of signatures): a
    /// `.sig` image with layers, an `.att` layer that is (or may be: no annotation) of the
    /// predicate type, a bundle that is (or may be: unreadable) of it.
    fn holds(&self, attestation: Option<&Attestation>) -> bool {
        match (self, attestation) {
            (Fetched::Layers(set), None) => !set.layers.is_empty(),
            (Fetched::Layers(set), Some(a)) => set.layers.iter().any(|l| {
                l.descriptor
                    .annotation(PREDICATE_TYPE_ANNOTATION)
                    .is_none_or(|t| t == a.predicate_type)
            }),
            (Fetched::Bundles(set), None) => set.holds_signatures(),
            (Fetched::Bundles(set), Some(a)) => set.holds(&a.predicate_type),
        }
    }

    /// The place, holding nothing for the check.
    fn absent(&self, attestation: Option<&Attestation>) -> Absent {
        match (self, attestation) {
            (Fetched::Layers(set), None) => Absent::Signatures {
                location: set.location.clone(),
            },
            (Fetched::Layers(set), Some(a)) => Absent::Attestations {
                location: set.location.clone(),
                predicate_type: a.predicate_type.clone(),
            },
            (Fetched::Bundles(set), a) => Absent::Bundles(BundleFailure::nothing_in(
                set,
                a.map(|a| a.predicate_type.as_str()),
            )),
        }
    }

    /// Whether it is read from a tag (`.sig`, `.att`).
    fn is_tag(&self) -> bool {
        matches!(self, Fetched::Layers(_))
    }
}

/// One resource's evaluation. See the module documentation for the protocol.
#[derive(Debug)]
pub struct Evaluation<'p> {
    plan: Plan<'p>,
    found: Found,
    signatures: HashMap<SignatureRequest, Result<Fetched, FetchFailure>>,
    keys: HashMap<OutcomeKey, KeyInfo<'p>>,
    requested: HashSet<SignatureRequest>,
    queue: Vec<Want>,
    /// Image data for `imageRegistry` context entries, by reference.
    image_data: ImageDataSet,
    /// The references asked for.
    image_data_asked: HashSet<String>,
}

impl<'p> Evaluation<'p> {
    /// Starts evaluating `resource` under `policies` (with no time for `time_now_utc()` and
    /// the like in preconditions: see [`Evaluation::new_at`]).
    pub fn new(policies: &'p [Policy], resource: &'p Resource, mode: Mode) -> Evaluation<'p> {
        Evaluation::new_at(policies, resource, mode, None)
    }

    /// Starts evaluating `resource` under `policies`, `now` being the time preconditions and
    /// variables read through Kyverno's time functions.
    pub fn new_at(
        policies: &'p [Policy],
        resource: &'p Resource,
        mode: Mode,
        now: Option<crate::timestamp::UnixTime>,
    ) -> Evaluation<'p> {
        let mut evaluation = Evaluation {
            plan: plan_at(policies, resource, mode, now),
            found: Found::default(),
            signatures: HashMap::new(),
            keys: HashMap::new(),
            requested: HashSet::new(),
            queue: Vec::new(),
            image_data: ImageDataSet::new(),
            image_data_asked: HashSet::new(),
        };
        let tags: Vec<Want> = evaluation
            .plan
            .tags_to_resolve()
            .into_iter()
            .map(|r| Want::Digest(r.clone()))
            .collect();
        evaluation.queue = tags;
        evaluation.want_image_data();
        for image in 0..evaluation.plan.images.len() {
            if let Ok(reference) = &evaluation.plan.images[image].reference
                && let Some(digest) = reference.digest().cloned()
            {
                evaluation.expand(image, &digest);
            }
        }
        evaluation
    }

    /// The plan: the rules that apply and the images they check.
    pub fn plan(&self) -> &Plan<'p> {
        &self.plan
    }

    /// Whether any rule applies at all (with none, the decision needs nothing fetched).
    pub fn has_work(&self) -> bool {
        !self.plan.rules.is_empty()
    }

    /// What the evaluation needs that it has not asked for yet. Empty means nothing more can be
    /// learned from outside until an answer arrives: once every want has been answered,
    /// [`Evaluation::finish`] decides.
    pub fn wants(&mut self) -> Vec<Want> {
        std::mem::take(&mut self.queue)
    }

    /// The answer to [`Want::Digest`].
    pub fn digest_resolved(&mut self, image: &ImageRef, result: Result<Digest, FetchFailure>) {
        let normalized = image.normalized().to_string();
        let digest = result.as_ref().ok().cloned();
        self.found.digests.insert(normalized, result);
        let Some(digest) = digest else {
            return;
        };
        let matching: Vec<usize> = (0..self.plan.images.len())
            .filter(|&i| {
                self.plan.images[i]
                    .reference
                    .as_ref()
                    .is_ok_and(|r| r.digest().is_none() && r.normalized() == image.normalized())
            })
            .collect();
        for i in matching {
            self.expand(i, &digest);
        }
    }

    /// The answer to [`Want::ImageData`]: Kyverno's image data object, or why it could not be
    /// fetched.
    pub fn image_data_fetched(
        &mut self,
        reference: &str,
        result: Result<serde_json::Value, FetchFailure>,
    ) {
        let result = result.map_err(|f| f.to_string());
        self.image_data.insert(reference.to_string(), result);
        self.settle_waiting();
    }

    /// Asks for the image data rules wait for, once each; a reference that is no image is
    /// answered at once.
    fn want_image_data(&mut self) {
        let mut answered = false;
        for reference in self.plan.images_wanted() {
            if self.image_data.contains_key(&reference)
                || self.image_data_asked.contains(&reference)
            {
                continue;
            }
            match ImageRef::parse(&reference) {
                Ok(image) => {
                    self.queue.push(Want::ImageData {
                        reference: reference.clone(),
                        image,
                    });
                    self.image_data_asked.insert(reference);
                }
                Err(e) => {
                    self.image_data.insert(
                        reference.clone(),
                        Err(format!("`{reference}` is not an image reference: {e}")),
                    );
                    answered = true;
                }
            }
        }
        if answered {
            self.settle_waiting();
        }
    }

    /// Settles the rules whose images are all known, then registers their checks.
    fn settle_waiting(&mut self) {
        let ready = self.plan.settle_waiting(&self.image_data);
        let mut images: Vec<usize> = ready
            .iter()
            .flat_map(|&r| self.plan.rules[r].checks.iter().map(|c| c.image))
            .collect();
        images.sort_unstable();
        images.dedup();
        for image in images {
            let digest = match &self.plan.images[image].reference {
                Ok(reference) => match reference.digest() {
                    Some(d) => Some(d.clone()),
                    None => self
                        .found
                        .digests
                        .get(reference.normalized())
                        .and_then(|r| r.as_ref().ok().cloned()),
                },
                Err(_) => None,
            };
            if let Some(digest) = digest {
                self.expand(image, &digest);
            }
        }
        self.want_image_data();
    }

    /// The answer to [`Want::CachedOutcome`]: the cached outcome, or `None`.
    pub fn outcome_cached(&mut self, key: OutcomeKey, outcome: Option<AttestorOutcome>) {
        match outcome {
            Some(outcome) => {
                if let Some(info) = self.keys.get_mut(&key) {
                    info.state = KeyState::Known;
                }
                self.found.outcomes.insert(key, outcome);
            }
            None => self.needs_signatures(&key),
        }
    }

    /// The answer to [`Want::Signatures`] for a `.sig` or `.att` image.
    pub fn signatures_fetched(
        &mut self,
        request: SignatureRequest,
        result: Result<Arc<SignatureSet>, FetchFailure>,
    ) {
        self.fetched(request, result.map(Fetched::Layers));
    }

    /// The answer to [`Want::Signatures`] for the referrers' Sigstore bundles
    /// ([`Artifact::Bundles`](super::Artifact::Bundles)).
    pub fn bundles_fetched(
        &mut self,
        request: SignatureRequest,
        result: Result<Arc<BundleSet>, FetchFailure>,
    ) {
        self.fetched(request, result.map(Fetched::Bundles));
    }

    fn fetched(&mut self, request: SignatureRequest, result: Result<Fetched, FetchFailure>) {
        self.signatures.insert(request.clone(), result);
        let waiting: Vec<OutcomeKey> = self
            .keys
            .iter()
            .filter(|(key, info)| {
                info.state == KeyState::NeedsSignatures
                    && key.fallback.is_some()
                    && key.request == request
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in waiting {
            self.want_fallback(&key);
        }
    }

    /// Asks for `key`'s fallback place once its first place has answered holding nothing for it.
    fn want_fallback(&mut self, key: &OutcomeKey) {
        let Some(info) = self.keys.get(key) else {
            return;
        };
        let Some(fallback) = key.fallback_request() else {
            return;
        };
        let Some(Ok(first)) = self.signatures.get(&key.request) else {
            return;
        };
        if first.holds(info.attestation.as_deref()) {
            return;
        }
        let fresh = !info.cacheable;
        if self.requested.insert(fallback.clone()) {
            self.queue.push(Want::Signatures {
                request: fallback,
                fresh,
            });
        }
    }

    /// Whether every place `key`'s check reads has answered (successfully or not).
    fn answered(&self, key: &OutcomeKey, info: &KeyInfo<'_>) -> bool {
        match self.signatures.get(&key.request) {
            None => false,
            Some(Err(_)) => true,
            Some(Ok(first)) => match key.fallback_request() {
                Some(fallback) if !first.holds(info.attestation.as_deref()) => {
                    self.signatures.contains_key(&fallback)
                }
                _ => true,
            },
        }
    }

    /// Keys whose signatures have arrived but whose outcome is not known yet and may come from a
    /// cache: a caller that shares fetches between evaluations may find that another one has
    /// verified them meanwhile, and answer with [`Evaluation::outcome_cached`].
    pub fn awaiting_verification(&self) -> Vec<OutcomeKey> {
        self.keys
            .iter()
            .filter(|(key, info)| {
                info.cacheable
                    && info.state == KeyState::NeedsSignatures
                    && matches!(self.signatures.get(&key.request), Some(Ok(_)))
                    && self.answered(key, info)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// How many signature sets [`Evaluation::finish`] will check (its CPU cost).
    pub fn checks_to_run(&self) -> usize {
        self.keys
            .values()
            .filter(|info| info.state == KeyState::NeedsSignatures)
            .count()
    }

    /// Checks the signatures that were fetched, then decides.
    pub fn finish(mut self, ctx: VerifyContext<'_>) -> Finished {
        let mut verified = Vec::new();
        for (key, info) in &mut self.keys {
            if info.state != KeyState::NeedsSignatures {
                continue;
            }
            // Never answered: the decision says its signatures were not fetched.
            let Some(outcome) = check_key(key, info, &self.signatures, ctx) else {
                continue;
            };
            info.state = KeyState::Known;
            if info.cacheable && outcome.verified().is_some_and(Verified::is_cacheable) {
                verified.push((key.clone(), outcome.clone()));
            }
            self.found.outcomes.insert(key.clone(), outcome);
        }
        Finished {
            decision: decide(&self.plan, &self.found),
            verified,
        }
    }

    /// Registers the attestor checks image `image` needs at `digest`.
    fn expand(&mut self, image: usize, digest: &Digest) {
        type Found<'p> = (
            std::borrow::Cow<'p, Attestor>,
            Option<std::borrow::Cow<'p, Attestation>>,
            OutcomeKey,
            bool,
        );
        let mut found: Vec<Found<'p>> = Vec::new();
        self.plan.attestors_of(
            image,
            digest,
            &mut |attestor, attestation, key, use_cache| {
                found.push((attestor, attestation, key, use_cache));
            },
        );
        for (attestor, attestation, key, use_cache) in found {
            match self.keys.get_mut(&key) {
                Some(info) => info.cacheable &= use_cache,
                None => {
                    self.keys.insert(
                        key.clone(),
                        KeyInfo {
                            attestor,
                            attestation,
                            cacheable: use_cache,
                            state: KeyState::AskedCache,
                        },
                    );
                    if use_cache {
                        self.queue.push(Want::CachedOutcome(key));
                    } else {
                        self.needs_signatures(&key);
                    }
                }
            }
        }
    }

    fn needs_signatures(&mut self, key: &OutcomeKey) {
        let Some(info) = self.keys.get_mut(key) else {
            return;
        };
        info.state = KeyState::NeedsSignatures;
        let fresh = !info.cacheable;
        if self.requested.insert(key.request.clone()) {
            self.queue.push(Want::Signatures {
                request: key.request.clone(),
                fresh,
            });
        }
        // The first place may have answered already (for another attestor).
        self.want_fallback(key);
    }
}

/// Checks one attestor with what was fetched for `key`: its first place, or, when that holds
/// nothing for the check, its fallback place (the words then name both). `None` while a place it
/// needs was never answered.
fn check_key(
    key: &OutcomeKey,
    info: &KeyInfo<'_>,
    fetched: &HashMap<SignatureRequest, Result<Fetched, FetchFailure>>,
    ctx: VerifyContext<'_>,
) -> Option<AttestorOutcome> {
    let attestation = info.attestation.as_deref();
    let check = |request: &SignatureRequest, set: &Fetched| {
        // An answer of the other kind (a caller's mistake) is no answer.
        if request.artifact.is_tag() != set.is_tag() {
            return AttestorOutcome::Error(CannotEvaluate::NotFetched);
        }
        match (set, attestation) {
            (Fetched::Layers(set), None) => check_attestor(&info.attestor, set, ctx),
            (Fetched::Layers(set), Some(a)) => check_attestation(&info.attestor, a, set, ctx),
            (Fetched::Bundles(set), None) => check_bundles(&info.attestor, set, ctx),
            (Fetched::Bundles(set), Some(a)) => {
                check_bundle_attestation(&info.attestor, a, set, ctx)
            }
        }
    };
    let first = match fetched.get(&key.request)? {
        Ok(first) => first,
        Err(failure) => {
            return Some(AttestorOutcome::Error(CannotEvaluate::Fetch(
                failure.clone(),
            )));
        }
    };
    let fallback_request = match key.fallback_request() {
        Some(r) if !first.holds(attestation) => r,
        _ => return Some(check(&key.request, first)),
    };
    let second = match fetched.get(&fallback_request)? {
        Ok(second) => second,
        Err(failure) => {
            return Some(AttestorOutcome::Error(CannotEvaluate::Fetch(
                failure.clone(),
            )));
        }
    };
    let also = |outcome: AttestorOutcome, absent: Absent, absent_first: bool| match outcome {
        AttestorOutcome::Failed(failure) => AttestorOutcome::Failed(AttestorFailure::Also {
            failure: Box::new(failure),
            absent: Box::new(absent),
            absent_first,
        }),
        other => other,
    };
    Some(if second.holds(attestation) {
        also(
            check(&fallback_request, second),
            first.absent(attestation),
            true,
        )
    } else if first.is_tag() {
        // Neither holds anything: the tag's own words (what its layers are), then the referrers.
        also(
            check(&key.request, first),
            second.absent(attestation),
            false,
        )
    } else {
        also(
            check(&fallback_request, second),
            first.absent(attestation),
            true,
        )
    })
}
