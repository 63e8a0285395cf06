//! Which rules apply to a resource and which of its images each rule checks: the part of an
//! evaluation that needs nothing from a registry.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::image::digest::Digest;
use crate::image::{ImageRef, alias};
use crate::policy::{
    Attestation, Attestor, AttestorKind, AttestorSet, ImageSource, ImageVerification, Policy,
    ResolvedFailureAction, Rule, RuleOrigin, VerifierType, pod_spec_pointer,
};

use super::outcome::{Artifact, CannotEvaluate, OutcomeKey, SignatureRequest};
use super::request::request_variables;
use super::resource::{ExtractedImage, Resource};
use crate::policy::functions::with_now;
use crate::policy::variables::RequestVariables;
use crate::policy::{ImageDataSet, RequestScope, RuleInstance};
use crate::timestamp::UnixTime;

/// Which webhook the evaluation answers: a mode of the one evaluation, not a second copy of the
/// policies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// The mutating webhook (and `apply`): `mutateDigest` pins tags to the digests that verified.
    #[default]
    Mutate,
    /// The validating webhook: nothing is pinned, so an image left unpinned fails
    /// `verifyDigest` ("missing digest for …") instead of passing on the strength of a pin this
    /// webhook never applies.
    Validate,
}

/// What to evaluate for one resource.
#[derive(Debug)]
pub struct Plan<'p> {
    /// The resource.
    pub resource: &'p Resource,
    /// Every image of the resource found by the built-in locations or a matching rule's
    /// extractors, each once (by JSON pointer).
    pub images: Vec<ExtractedImage>,
    /// The rules that apply and check at least one image, in policy and rule order.
    pub rules: Vec<RulePlan<'p>>,
    /// Mutate or validate.
    pub mode: Mode,
    /// The request's variables, when a rule reads them.
    request: Option<Arc<RequestVariables>>,
    /// The time of `time_now_utc()` in preconditions and variables, if given.
    now: Option<UnixTime>,
}

/// A rule as the plan evaluates it: as loaded, or compiled for this request (its attestors
/// read `request.*` variables).
#[derive(Debug)]
pub enum RuleRef<'p> {
    /// The rule as loaded.
    Loaded(&'p Rule),
    /// The rule compiled for this request.
    Resolved(Box<Rule>),
}

impl std::ops::Deref for RuleRef<'_> {
    type Target = Rule;
    fn deref(&self) -> &Rule {
        match self {
            RuleRef::Loaded(rule) => rule,
            RuleRef::Resolved(rule) => rule,
        }
    }
}

/// Where a rule that reads the request stands in this evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleState {
    /// Ready to be checked.
    Ready,
    /// Waiting for the data of these images (its `imageRegistry` context entries).
    WaitingForImages(Vec<String>),
    /// Its preconditions are not met: Kyverno's skip, with Kyverno's message.
    Skipped(String),
    /// Its context or preconditions could not be evaluated: every image gets an error result.
    CannotEvaluate(String),
}

/// One applicable rule.
#[derive(Debug)]
pub struct RulePlan<'p> {
    /// The policy.
    pub policy: &'p Policy,
    /// The policy's index in the slice the plan was made from.
    pub policy_index: usize,
    /// The rule.
    pub rule: RuleRef<'p>,
    /// Where it stands (always [`RuleState::Ready`] for a rule that reads nothing of the
    /// request).
    pub state: RuleState,
    /// Enforce or Audit, resolved for the resource's namespace.
    pub action: ResolvedFailureAction,
    /// (verifyImages entry, image) pairs: the image matches the entry's `imageReferences`.
    pub checks: Vec<ImageCheck>,
}

/// One image checked by one verifyImages entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageCheck {
    /// Index into the rule's `verify_images`.
    pub entry: usize,
    /// Index into [`Plan::images`].
    pub image: usize,
    /// `None` when `imageReferences` matched the image as Kyverno spells it; else the index of
    /// the equivalent spelling that matched ([`alias::spellings`]): an image Kyverno would not
    /// have checked.
    pub covered_as: Option<usize>,
}

impl ImageCheck {
    /// The spelling of `image` the entry's `imageReferences` matched first: Kyverno's own when
    /// it matched, else the equivalent one.
    pub fn spelling<'i>(&self, image: &'i ExtractedImage) -> Cow<'i, str> {
        match (self.covered_as, &image.reference) {
            (Some(i), Ok(reference)) => alias::spellings(reference)
                .into_iter()
                .nth(i)
                .map_or(Cow::Borrowed(image.normalized()), Cow::Owned),
            _ => Cow::Borrowed(image.normalized()),
        }
    }

    /// Whether `skipImageReferences` skips the image: a skip pattern must match a spelling that
    /// `imageReferences` covers (Kyverno's own first, so Kyverno's skips stay), never merely some
    /// other spelling. Every spelling of one image gets the same answer.
    pub fn skipped(&self, entry: &ImageVerification, image: &ExtractedImage) -> bool {
        if entry.skip_image_references.is_empty() {
            return false;
        }
        let raw = image.normalized();
        if entry.applies_to(raw) && entry.skips(raw) {
            return true;
        }
        let Ok(reference) = &image.reference else {
            return false;
        };
        alias::spellings(reference)
            .iter()
            .skip(1)
            .any(|s| entry.applies_to(s) && entry.skips(s))
    }
}

/// Whether `entry` covers `image`: Kyverno's spelling first, then the equivalent ones
/// (computed once per image, and only when Kyverno's does not match).
fn coverage(
    entry: &ImageVerification,
    image: &ExtractedImage,
    spellings: &mut Option<Vec<String>>,
) -> Option<Option<usize>> {
    // What cannot be read as an image is covered by every entry of a rule that matches: its
    // image could be anything.
    if image.unreadable.is_some() || entry.applies_to(image.normalized()) {
        return Some(None);
    }
    let reference = image.reference.as_ref().ok()?;
    let spellings = spellings.get_or_insert_with(|| alias::spellings(reference));
    spellings
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, s)| entry.applies_to(s))
        .map(|(i, _)| Some(i))
}

/// Builds the plan for `resource` under `policies`.
pub fn plan<'p>(policies: &'p [Policy], resource: &'p Resource, mode: Mode) -> Plan<'p> {
    plan_at(policies, resource, mode, None)
}

/// [`plan()`], with `now` as the time of `time_now_utc()` and the like in preconditions and
/// variables (without it those functions are errors: core reads no clock).
pub fn plan_at<'p>(
    policies: &'p [Policy],
    resource: &'p Resource,
    mode: Mode,
    now: Option<UnixTime>,
) -> Plan<'p> {
    let mut images: Vec<ExtractedImage> = Vec::new();
    let mut by_pointer: HashMap<String, usize> = HashMap::new();
    let mut add = |found: Vec<ExtractedImage>, images: &mut Vec<ExtractedImage>| -> Vec<usize> {
        found
            .into_iter()
            .map(|img| {
                *by_pointer.entry(img.pointer.clone()).or_insert_with(|| {
                    images.push(img);
                    images.len() - 1
                })
            })
            .collect()
    };
    // The built-in images always, so images no rule covers can be reported.
    if let Some(pointer) = pod_spec_pointer(&resource.kind) {
        add(resource.images(ImageSource::PodSpec(pointer)), &mut images);
    }
    let builtin: Vec<usize> = (0..images.len()).collect();
    // Equivalent spellings of each image, made only for an image some entry's patterns miss.
    let mut spellings: Vec<Option<Vec<String>>> = Vec::new();
    let meta = resource.meta();
    let mut rules = Vec::new();
    // The request's variables, made once and only for a rule that reads them.
    let mut request: Option<Arc<RequestVariables>> = None;
    for (policy_index, policy) in policies.iter().enumerate() {
        if !policy.covers_namespace(resource.namespace.as_deref()) {
            continue;
        }
        for rule in policy.all_rules() {
            // Autogen rules match only pod controllers, never Pods: skip them without matching.
            if resource.kind == "Pod" && rule.origin != RuleOrigin::Written {
                continue;
            }
            if !rule.matches_resource(&meta) {
                continue;
            }
            let extracted;
            let rule_images: &[usize] = match rule.image_source(&resource.kind) {
                ImageSource::PodSpec(_) => &builtin,
                source @ ImageSource::Extractors(_) => {
                    extracted = add(resource.images(source), &mut images);
                    &extracted
                }
                ImageSource::None => &[],
            };
            let mut checks = Vec::new();
            spellings.resize(images.len(), None);
            for (e, entry) in rule.verify_images.iter().enumerate() {
                for &i in rule_images {
                    if let Some(covered_as) = coverage(entry, &images[i], &mut spellings[i]) {
                        checks.push(ImageCheck {
                            entry: e,
                            image: i,
                            covered_as,
                        });
                    }
                }
            }
            if checks.is_empty() {
                // Kyverno: no matching image, no rule response at all.
                continue;
            }
            let action = policy.failure_action(
                rule,
                resource.namespace.as_deref(),
                resource.known_namespace_labels(),
            );
            let (rule, state) = match &rule.request_scope {
                None => (RuleRef::Loaded(rule), RuleState::Ready),
                Some(scope) => {
                    let request = request.get_or_insert_with(|| {
                        Arc::new(RequestVariables::new(request_variables(resource, &images)))
                    });
                    settle(rule, scope, request, resource, &ImageDataSet::new(), now)
                }
            };
            rules.push(RulePlan {
                policy,
                policy_index,
                rule,
                state,
                action,
                checks,
            });
        }
    }
    Plan {
        resource,
        images,
        rules,
        mode,
        request,
        now,
    }
}

/// A rule that reads the request, for this request: its context built with the image data
/// known so far, then (when no image is awaited) compiled for the request.
fn settle<'p>(
    rule: &'p Rule,
    scope: &RequestScope,
    request: &Arc<RequestVariables>,
    resource: &Resource,
    image_data: &ImageDataSet,
    now: Option<UnixTime>,
) -> (RuleRef<'p>, RuleState) {
    match now {
        Some(now) => with_now(now, || {
            settle_now(rule, scope, request, resource, image_data)
        }),
        None => settle_now(rule, scope, request, resource, image_data),
    }
}

fn settle_now<'p>(
    rule: &'p Rule,
    scope: &RequestScope,
    request: &Arc<RequestVariables>,
    resource: &Resource,
    image_data: &ImageDataSet,
) -> (RuleRef<'p>, RuleState) {
    let base = scope.base(rule, request, &resource.name);
    let context = scope.context(rule, base, request, image_data);
    if !context.images_wanted().is_empty() {
        let wanted = context.images_wanted().to_vec();
        return (RuleRef::Loaded(rule), RuleState::WaitingForImages(wanted));
    }
    match scope.preconditions(&context) {
        Ok(None) => {}
        Ok(Some(skip)) => return (RuleRef::Loaded(rule), RuleState::Skipped(skip)),
        Err(why) => return (RuleRef::Loaded(rule), RuleState::CannotEvaluate(why)),
    }
    match scope.instantiate(rule, context) {
        RuleInstance::Unchanged => (RuleRef::Loaded(rule), RuleState::Ready),
        RuleInstance::Resolved(resolved) => (RuleRef::Resolved(resolved), RuleState::Ready),
    }
}

impl<'p> Plan<'p> {
    /// Settles again, with `image_data`, every rule that waits only for images now known;
    /// returns the indices of the rules that became ready.
    pub(super) fn settle_waiting(&mut self, image_data: &ImageDataSet) -> Vec<usize> {
        let mut ready = Vec::new();
        let Some(request) = &self.request else {
            return ready;
        };
        for (i, r) in self.rules.iter_mut().enumerate() {
            let RuleState::WaitingForImages(wanted) = &r.state else {
                continue;
            };
            if !wanted.iter().all(|w| image_data.contains_key(w)) {
                continue;
            }
            let RuleRef::Loaded(rule) = r.rule else {
                continue;
            };
            let Some(scope) = &rule.request_scope else {
                continue;
            };
            let (settled, state) =
                settle(rule, scope, request, self.resource, image_data, self.now);
            r.rule = settled;
            r.state = state;
            if r.state == RuleState::Ready {
                ready.push(i);
            }
        }
        ready
    }

    /// The images awaited by rules' `imageRegistry` entries, each once.
    pub(super) fn images_wanted(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rules {
            if let RuleState::WaitingForImages(wanted) = &r.state {
                for w in wanted {
                    if !out.contains(w) {
                        out.push(w.clone());
                    }
                }
            }
        }
        out
    }

    /// Whether `entry` pins tags to digests in this mode.
    pub fn mutates_digest(&self, entry: &ImageVerification) -> bool {
        self.mode == Mode::Mutate && entry.mutate_digest
    }

    /// Indices of images no applicable verifyImages entry covers (Kyverno admits them silently).
    pub fn uncovered_images(&self) -> Vec<usize> {
        let covered: BTreeSet<usize> = self
            .rules
            .iter()
            .flat_map(|r| r.checks.iter().map(|c| c.image))
            .collect();
        (0..self.images.len())
            .filter(|i| !covered.contains(i))
            .collect()
    }

    /// The images whose tags must be resolved to digests: checked images without a digest,
    /// each reference once (by its normalised form).
    pub(super) fn tags_to_resolve(&self) -> Vec<&ImageRef> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for r in &self.rules {
            if matches!(
                r.state,
                RuleState::Skipped(_) | RuleState::CannotEvaluate(_)
            ) {
                continue;
            }
            for c in &r.checks {
                if let Ok(reference) = &self.images[c.image].reference
                    && reference.digest().is_none()
                    && seen.insert(reference.normalized())
                {
                    out.push(reference);
                }
            }
        }
        out
    }

    /// The attestors the decision consults for image `image` once its digest is `digest`: every
    /// leaf attestor of every entry that checks signatures of the image, and of each of its
    /// attestations (with the attestation), skipped images, unsupported rules, entries and
    /// attestors left out (they need nothing fetched); with whether its entry lets the outcome
    /// be cached.
    pub(super) fn attestors_of(
        &self,
        image: usize,
        digest: &Digest,
        found: &mut dyn FnMut(Cow<'p, Attestor>, Option<Cow<'p, Attestation>>, OutcomeKey, bool),
    ) {
        let extracted = &self.images[image];
        if extracted.reference.is_err() || extracted.unsupported.is_some() {
            return;
        }
        for r in &self.rules {
            if r.rule.unsupported.is_some() || r.state != RuleState::Ready {
                continue;
            }
            let loaded: Option<&'p Rule> = match &r.rule {
                RuleRef::Loaded(rule) => Some(rule),
                RuleRef::Resolved(_) => None,
            };
            let rule: &Rule = &r.rule;
            for c in r.checks.iter().filter(|c| c.image == image) {
                let entry = &rule.verify_images[c.entry];
                if !entry.has_checks() || entry.unsupported.is_some() || c.skipped(entry, extracted)
                {
                    continue;
                }
                let mut leaf =
                    |attestor: Cow<'p, Attestor>, attestation: Option<Cow<'p, Attestation>>| {
                        if attestor.unsupported().is_some() {
                            return;
                        }
                        let key = match &attestation {
                            None => outcome_key(extracted, entry, &attestor, digest),
                            Some(a) => attestation_key(extracted, entry, a, &attestor, digest),
                        };
                        if let Ok(key) = key {
                            found(attestor, attestation, key, entry.use_cache);
                        }
                    };
                match loaded {
                    // The loaded rule outlives the plan: its attestors are lent.
                    Some(loaded) => {
                        let entry = &loaded.verify_images[c.entry];
                        for set in &entry.attestors {
                            for_each_leaf(set, &mut |a| leaf(Cow::Borrowed(a), None));
                        }
                        for attestation in &entry.attestations {
                            for set in &attestation.attestors {
                                for_each_leaf(set, &mut |a| {
                                    leaf(Cow::Borrowed(a), Some(Cow::Borrowed(attestation)))
                                });
                            }
                        }
                    }
                    None => {
                        for set in &entry.attestors {
                            for_each_leaf(set, &mut |a| leaf(Cow::Owned(a.clone()), None));
                        }
                        for attestation in &entry.attestations {
                            for set in &attestation.attestors {
                                for_each_leaf(set, &mut |a| {
                                    leaf(
                                        Cow::Owned(a.clone()),
                                        Some(Cow::Owned(attestation.clone())),
                                    )
                                });
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Where an attestor looks for an image's signatures: the attestor's `repository`, else the
/// entry's, else the image's own repository.
pub(super) fn signature_repository(
    image: &ExtractedImage,
    entry: &ImageVerification,
    attestor: &Attestor,
) -> Result<Arc<ImageRef>, CannotEvaluate> {
    match attestor
        .repository
        .as_deref()
        .or(entry.repository.as_deref())
    {
        Some(repo) if !repo.is_empty() => ImageRef::parse(repo)
            .map(|r| Arc::new(r.repository_ref()))
            .map_err(|_| CannotEvaluate::InvalidRepository {
                repository: repo.to_string(),
            }),
        _ => match image.repository_ref() {
            Some(repository) => Ok(Arc::clone(repository)),
            None => Err(CannotEvaluate::InvalidRepository {
                repository: image.raw.clone(),
            }),
        },
    }
}

/// Where `entry` looks for an artifact of cosign's (`tag`: `.sig` or `.att`) first, and next
/// when that place holds none for the check: `type: SigstoreBundle` reads the referrers' Sigstore
/// bundles only (as Kyverno); `type: Cosign` reads the tag first and then the bundles (cosign v3
/// stores them as referrers by default), or with `cosignOCI11` the bundles first and then the
/// tag.
pub(super) fn sources(entry: &ImageVerification, tag: Artifact) -> (Artifact, Option<Artifact>) {
    match entry.verifier {
        VerifierType::SigstoreBundle => (Artifact::Bundles, None),
        _ if entry.cosign_oci11 => (Artifact::Bundles, Some(tag)),
        _ => (tag, Some(Artifact::Bundles)),
    }
}

/// The repository an attestor's artifacts are read from: for `type: SigstoreBundle`, the image's
/// own (Kyverno lists the referrers of the image, whatever `repository` says); else
/// [`signature_repository`].
fn lookup_repository(
    image: &ExtractedImage,
    entry: &ImageVerification,
    attestor: &Attestor,
) -> Result<Arc<ImageRef>, CannotEvaluate> {
    if entry.verifier == VerifierType::SigstoreBundle {
        return match image.repository_ref() {
            Some(repository) => Ok(Arc::clone(repository)),
            None => Err(CannotEvaluate::InvalidRepository {
                repository: image.raw.clone(),
            }),
        };
    }
    signature_repository(image, entry, attestor)
}

/// The key under which `attestor`'s outcome for `image` at `digest` is kept.
pub(super) fn outcome_key(
    image: &ExtractedImage,
    entry: &ImageVerification,
    attestor: &Attestor,
    digest: &Digest,
) -> Result<OutcomeKey, CannotEvaluate> {
    let (first, fallback) = sources(entry, Artifact::Signatures);
    Ok(OutcomeKey {
        attestor: attestor.shared_fingerprint(),
        request: SignatureRequest::of(
            first,
            lookup_repository(image, entry, attestor)?,
            digest.clone(),
        ),
        fallback,
    })
}

/// The key under which `attestor`'s outcome for `attestation` of `image` at `digest` is kept:
/// the attestor's and the attestation's fingerprints, and the `.att` image (or the referrers).
pub(super) fn attestation_key(
    image: &ExtractedImage,
    entry: &ImageVerification,
    attestation: &Attestation,
    attestor: &Attestor,
    digest: &Digest,
) -> Result<OutcomeKey, CannotEvaluate> {
    let (first, fallback) = sources(entry, Artifact::Attestations);
    Ok(OutcomeKey {
        attestor: attestation.outcome_fingerprint(attestor),
        request: SignatureRequest::of(
            first,
            lookup_repository(image, entry, attestor)?,
            digest.clone(),
        ),
        fallback,
    })
}

/// Calls `f` on every non-nested attestor of `set`, depth first.
pub(super) fn for_each_leaf<'a>(set: &'a AttestorSet, f: &mut dyn FnMut(&'a Attestor)) {
    for entry in &set.entries {
        match &entry.kind {
            AttestorKind::Nested(inner) => for_each_leaf(inner, f),
            _ => f(entry),
        }
    }
}
