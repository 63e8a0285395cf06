//! Step 1 of a decision: which rules apply to a resource, which of its images each rule checks,
//! and what must be fetched from registries to decide.

use std::collections::{BTreeSet, HashMap};

use crate::image::ImageRef;
use crate::image::digest::Digest;
use crate::policy::{
    Attestor, AttestorKind, AttestorSet, ImageSource, ImageVerification, Policy,
    ResolvedFailureAction, Rule, RuleOrigin, VerifierType, pod_spec_pointer,
};

use super::evidence::OutcomeKey;
use super::resource::{ExtractedImage, Resource};

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
}

/// One applicable rule.
#[derive(Debug)]
pub struct RulePlan<'p> {
    /// The policy.
    pub policy: &'p Policy,
    /// The rule.
    pub rule: &'p Rule,
    /// Enforce or Audit, resolved for the resource's namespace.
    pub action: ResolvedFailureAction,
    /// Why the rule cannot be evaluated, when it uses something sealgate does not support.
    pub unsupported: Option<String>,
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
}

/// Where signatures must be fetched from: the `.sig` of `digest` in `repository`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignatureRequest {
    /// The repository holding the signatures (`registry/path`).
    pub repository: String,
    /// The image digest.
    pub digest: Digest,
}

impl SignatureRequest {
    /// The repository as a reference the registry client can use.
    pub fn repository_ref(&self) -> Option<ImageRef> {
        ImageRef::parse(&self.repository).ok()
    }
}

/// Builds the plan for `resource` under `policies`.
pub fn plan<'p>(policies: &'p [Policy], resource: &'p Resource) -> Plan<'p> {
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
    let meta = resource.meta();
    let mut rules = Vec::new();
    for policy in policies {
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
            for (e, entry) in rule.verify_images.iter().enumerate() {
                for &i in rule_images {
                    if entry.applies_to(images[i].normalized()) {
                        checks.push(ImageCheck { entry: e, image: i });
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
            rules.push(RulePlan {
                policy,
                rule,
                action,
                unsupported: unsupported(rule),
                checks,
            });
        }
    }
    Plan {
        resource,
        images,
        rules,
    }
}

fn unsupported(rule: &Rule) -> Option<String> {
    if !rule.context.is_empty() {
        return Some(
            "the rule uses `context`, which sealgate does not support yet; it cannot be evaluated"
                .into(),
        );
    }
    if rule.preconditions.is_some() || rule.cel_preconditions.is_some() {
        return Some("the rule uses `preconditions`, which sealgate does not support yet; it cannot be evaluated".into());
    }
    None
}

impl Plan<'_> {
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

    /// The images whose tags must be resolved to digests: checked images without a digest.
    /// Each reference appears once, by its normalised form.
    pub fn digest_requests(&self) -> Vec<ImageRef> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for r in &self.rules {
            for c in &r.checks {
                if let Ok(reference) = &self.images[c.image].reference
                    && reference.digest().is_none()
                    && seen.insert(reference.normalized())
                {
                    out.push(reference.clone());
                }
            }
        }
        out
    }

    /// Every (attestor, image digest) pair the decision will look up, given the digests known so
    /// far (`digest_of` returns the digest of a checked tag, when known): where that attestor's
    /// signatures are, and the key its outcome is stored (and may be cached) under. Checks the
    /// engine refuses before looking at signatures (skipped images, unsupported rules, types or
    /// attestations) need nothing fetched and are left out.
    pub fn attestor_checks(
        &self,
        digest_of: &dyn Fn(&ImageRef) -> Option<Digest>,
    ) -> Vec<AttestorCheck<'_>> {
        let mut out = Vec::new();
        // Each image's digest is asked for once, however many checks it is in.
        let mut digests: Vec<Option<Option<Digest>>> = vec![None; self.images.len()];
        for r in &self.rules {
            if r.unsupported.is_some() {
                continue;
            }
            for c in &r.checks {
                let entry = &r.rule.verify_images[c.entry];
                let image = &self.images[c.image];
                let Ok(reference) = &image.reference else {
                    continue;
                };
                if entry.attestors.is_empty()
                    || image.unsupported.is_some()
                    || entry.skips(image.normalized())
                    || entry.verifier != VerifierType::Cosign
                    || !entry.attestations.is_empty()
                {
                    continue;
                }
                let known = digests[c.image].get_or_insert_with(|| {
                    reference.digest().cloned().or_else(|| digest_of(reference))
                });
                let Some(digest) = known.clone() else {
                    continue;
                };
                for set in &entry.attestors {
                    for_each_leaf(set, &mut |attestor| {
                        let repository = signature_repository(image, entry, attestor).into_owned();
                        out.push(AttestorCheck {
                            attestor,
                            entry,
                            key: OutcomeKey {
                                attestor: attestor.fingerprint().to_string(),
                                repository: repository.clone(),
                                digest: digest.clone(),
                            },
                            request: SignatureRequest {
                                repository,
                                digest: digest.clone(),
                            },
                        });
                    });
                }
            }
        }
        out
    }

    /// The signature sets needed, given the digests resolved so far: the distinct
    /// [`AttestorCheck::request`]s.
    pub fn signature_requests(
        &self,
        digest_of: &dyn Fn(&ImageRef) -> Option<Digest>,
    ) -> Vec<SignatureRequest> {
        let unique: BTreeSet<SignatureRequest> = self
            .attestor_checks(digest_of)
            .into_iter()
            .map(|c| c.request)
            .collect();
        unique.into_iter().collect()
    }
}

/// One attestor to check against one image digest.
#[derive(Debug, Clone)]
pub struct AttestorCheck<'p> {
    /// The attestor (never a nested set: those are walked into).
    pub attestor: &'p Attestor,
    /// The verifyImages entry it belongs to.
    pub entry: &'p ImageVerification,
    /// Where its signatures are.
    pub request: SignatureRequest,
    /// Where its outcome is stored.
    pub key: OutcomeKey,
}

/// Where an attestor looks for an image's signatures: the attestor's `repository`, else the
/// entry's, else the image's own repository.
pub fn signature_repository<'a>(
    image: &'a ExtractedImage,
    entry: &ImageVerification,
    attestor: &Attestor,
) -> std::borrow::Cow<'a, str> {
    match attestor
        .repository
        .as_deref()
        .or(entry.repository.as_deref())
    {
        Some(repo) if !repo.is_empty() => std::borrow::Cow::Owned(match ImageRef::parse(repo) {
            Ok(r) => r.repository(),
            Err(_) => repo.to_string(),
        }),
        _ => std::borrow::Cow::Borrowed(image.repository()),
    }
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
