//! `sealgate verify`: check an image's cosign signatures against a public key (`--key`), or
//! keyless: a Fulcio certificate's identity, with cosign's `--certificate-*` flags, checked by the
//! engine's keyless attestor checks offline. The signatures are the layers of its `.sig` image,
//! or, when it has none, the Sigstore bundles among its OCI 1.1 referrers (cosign v3), each a
//! DSSE envelope of cosign's sign statement checked by the engine's bundle checks. Prints what
//! cosign prints: its check lines on standard error and, with `-o json`, its JSON array on
//! standard output. The loop, the flags and the exit codes are [`super::verifying`]'s, shared
//! with `verify-attestation`.

use std::collections::BTreeMap;

use sealgate_core::cosign::dsse::Statement;
use sealgate_core::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, SignatureLayer, SignatureSet, Signer, Verification,
    with_annotations,
};
use sealgate_core::crypto::cert::parse_pem_certificates;
use sealgate_core::crypto::key::{PublicKey, SignatureHash};
use sealgate_core::engine::{
    Artifact, AttestationRefusal, AttestorOutcome, VerifyContext, check_attestor,
    check_bundle_signature,
};
use sealgate_core::policy::Attestor;
use sealgate_core::sigstore::bundle::{Bundle, COSIGN_SIGN_PREDICATE, Content};
use sealgate_core::sigstore::fulcio::{CertIdentity, OIDC_ISSUER_V1, extension_oid};
use sealgate_core::{Digest, ImageRef};
use serde_json::Value;

use super::identity_args::KeylessFlags;
use super::parse_key_value;
use super::verifying::{Item, Kind, Mode, Output, Refused, Report, VerifyArgs};
use crate::render::outln;

/// Arguments of `verify`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "With --key, checks for each image: the signature manifest and every payload \
against their digests, each signature over its exact payload bytes with the key, and that the \
payload names the image's digest.\n\nWithout --key (keyless, as cosign): each signature over its \
payload with its Fulcio certificate's key (or --certificate's), the payload's digest, its Rekor \
bundle offline (SET and entry; required unless --insecure-ignore-tlog: sealgate never asks Rekor), \
the certificate's validity at the logged time, its chain to the Fulcio CAs of the trusted root \
(or --certificate-chain), its embedded SCT (unless --insecure-ignore-sct), then the identity: \
--certificate-identity[-regexp], --certificate-oidc-issuer[-regexp] (one of each is required) \
and --certificate-github-workflow-*.\n\nAn image without a .sig image is checked as cosign v3 \
signs it: the Sigstore bundles among its OCI 1.1 referrers (the referrers API, or the \
sha256-<hex> referrers tag), each a DSSE envelope of cosign's sign statement \
(https://sigstore.dev/cosign/sign/v1) naming the image's digest, signed by the key or the \
keyless identity, its log entry's inclusion proof, checkpoint and SET checked offline when it \
has one (keyless: required). The output names the referrer manifest that verified.\n\nExit 0 \
when every image has at least one such signature, 1 when one has none (the message says why, \
naming the identity found and the one wanted, or each referrer and why it failed), 2 on \
errors.\n\nFor an image signed keyless by the release workflow of github.com/org/app: \
--certificate-identity https://github.com/org/app/.github/workflows/release.yml@refs/heads/main \
--certificate-oidc-issuer https://token.actions.githubusercontent.com\n\nExamples:\n  sealgate verify --key cosign.pub registry.company.com/app:v1\n  sealgate verify --key cosign.pub -a git-sha=4f2c1e0 -o json registry.company.com/app:v1\n  sealgate verify --certificate-identity \"$WORKFLOW\" --certificate-oidc-issuer \"$ISSUER\" app:v1"
)]
pub(crate) struct Args {
    /// Require these key=value annotations in the signed payload (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    annotations: Vec<(String, String)>,

    #[command(flatten)]
    common: VerifyArgs,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<super::Outcome> {
    super::verifying::run(
        &args.common,
        &Signatures {
            annotations: &args.annotations,
        },
    )
    .await
}

/// `verify`'s checks: image signatures.
struct Signatures<'a> {
    /// `-a`.
    annotations: &'a [(String, String)],
}

impl Kind for Signatures<'_> {
    fn artifact(&self) -> Artifact {
        Artifact::Signatures
    }

    fn annotations(&self) -> &[(String, String)] {
        self.annotations
    }

    fn check_layers(
        &self,
        mode: &Mode,
        set: &SignatureSet,
        ctx: VerifyContext<'_>,
    ) -> Result<Vec<Item>, Refused> {
        let (layers, signer) = match mode {
            Mode::Key { key, hash, .. } => self.verify_key(set, key, *hash)?,
            Mode::Keyless(flags) => verify_keyless(set, flags, mode, ctx)?,
        };
        Ok(layers
            .into_iter()
            .map(|i| Item {
                signer: signer.clone(),
                predicate_type: None,
                printed: cosign_entry(&set.layers[i]).to_string(),
                referrer: None,
            })
            .collect())
    }

    fn check_bundle(
        &self,
        attestor: &Attestor,
        bundle: &Bundle,
        digest: &Digest,
        ctx: VerifyContext<'_>,
    ) -> Result<(Statement, Signer), AttestationRefusal> {
        let signer = check_bundle_signature(attestor, bundle, digest, ctx)?;
        let statement = match &bundle.content {
            Content::Dsse { envelope, .. } => {
                Statement::parse(&envelope.payload).map_err(AttestationRefusal::Statement)?
            }
            Content::MessageSignature { .. } => {
                return Err(AttestationRefusal::Unusable(
                    "the bundle holds no DSSE envelope".into(),
                ));
            }
        };
        Ok((statement, signer))
    }

    fn bundle_output(
        &self,
        image: &ImageRef,
        digest: &Digest,
        statement: &Statement,
        _envelope: &[u8],
    ) -> String {
        bundle_entry(image, digest, statement).to_string()
    }

    fn none_at(&self, location: &str) -> String {
        sealgate_core::cosign::VerifyFailure::NoSignatures {
            location: location.to_string(),
        }
        .to_string()
    }

    fn select(&self, verified: Vec<Item>) -> Result<Vec<Item>, String> {
        Ok(verified)
    }

    fn report(&self, r: &Report<'_>) -> anyhow::Result<()> {
        print_header(r.image, self.annotations, r.mode);
        if r.output == Output::Json {
            let entries: Vec<&str> = r.items.iter().map(|i| i.printed.as_str()).collect();
            outln!("\n[{}]", entries.join(","))?;
            return Ok(());
        }
        let bundles = r.found.is_referrers();
        outln!("Verified {} ({})", r.image, r.digest)?;
        let count = r.found.count(r.items.len(), "signature");
        let signer = r
            .items
            .first()
            .map(|i| i.signer.to_string())
            .unwrap_or_default();
        match r.mode {
            Mode::Key { key, path, .. } => outln!(
                "  {count} verified with key {} ({})",
                key.fingerprint(),
                path.display()
            )?,
            Mode::Keyless(_) => outln!("  {count} verified: {signer}")?,
        }
        if let Some(referrers) = r.referrers() {
            outln!("  verified referrer(s): {referrers}")?;
        }
        let checks = match (r.mode, bundles) {
            (Mode::Key { .. }, false) => "the signature manifest and payloads against their digests, each signature over its exact payload, the payload's image digest".to_string(),
            (Mode::Key { .. }, true) => {
                let mut checks = vec![
                    "the referrer manifests and bundles against their digests".to_string(),
                    "each bundle's DSSE signature over its in-toto statement".into(),
                    format!("the statement's subject digest and predicate type ({COSIGN_SIGN_PREDICATE})"),
                ];
                if !self.annotations.is_empty() {
                    checks.push("the annotations".into());
                }
                if !r.ignore_tlog {
                    checks.push("the log entry offline when the bundle carries one (inclusion proof, checkpoint, SET, entry body)".into());
                }
                checks.join(", ")
            }
            (Mode::Keyless(flags), bundles) => keyless_checks(self.annotations, flags, bundles),
        };
        outln!("  checked: {checks}")?;
        Ok(())
    }
}

impl Signatures<'_> {
    /// Key-based: the layers signed by the key over this digest carrying the annotations, and
    /// the signer; or the failure.
    fn verify_key(
        &self,
        set: &SignatureSet,
        key: &PublicKey,
        hash: SignatureHash,
    ) -> Result<(Vec<usize>, Signer), Refused> {
        let verified = match sealgate_core::cosign::verify_with_key(set, key, hash) {
            Verification::Verified(v) => v,
            Verification::Failed(failure) => {
                return Err(Refused::failed(failure.to_string(), None));
            }
        };
        let matching = with_annotations(&verified, self.annotations);
        if matching.is_empty() {
            let wanted: Vec<String> = self
                .annotations
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            return Err(Refused::failed(
                format!(
                    "{} signature(s) by the key verify, but none carries the annotations {}",
                    verified.len(),
                    wanted.join(", ")
                ),
                None,
            ));
        }
        Ok((
            matching.iter().map(|v| v.layer_index()).collect(),
            Signer::Key {
                fingerprint: key.fingerprint(),
            },
        ))
    }
}

/// Keyless: each layer checked on its own by the engine's keyless attestor check (so every
/// verified signature is printed, as cosign prints them); when none verifies, the whole set
/// checked once more for the engine's account of every layer.
fn verify_keyless(
    set: &SignatureSet,
    flags: &KeylessFlags,
    mode: &Mode,
    ctx: VerifyContext<'_>,
) -> Result<(Vec<usize>, Signer), Refused> {
    let checked = flags.signatures_to_check(set);
    let mut layers = Vec::new();
    let mut signer = None;
    for (i, layer) in checked.layers.iter().enumerate() {
        let one = SignatureSet {
            location: checked.location.clone(),
            image_digest: checked.image_digest.clone(),
            layers: vec![layer.clone()],
        };
        if let AttestorOutcome::Verified(v) = check_attestor(&flags.attestor, &one, ctx) {
            layers.push(i);
            signer.get_or_insert_with(|| v.signer().clone());
        }
    }
    if let Some(signer) = signer {
        return Ok((layers, signer));
    }
    Err(match check_attestor(&flags.attestor, &checked, ctx) {
        AttestorOutcome::Failed(failure) => Refused::failed(
            failure.to_string(),
            mode.hint().filter(|_| !checked.layers.is_empty()),
        ),
        AttestorOutcome::Error(why) => Refused {
            outcome: super::Outcome::Error,
            message: why.to_string(),
            hint: None,
        },
        // Each layer failed alone, so the set cannot verify; say so rather than guess.
        AttestorOutcome::Verified(_) => Refused {
            outcome: super::Outcome::Error,
            message: "the signatures verify together but none alone".into(),
            hint: None,
        },
    })
}

/// What the keyless checks covered, for the text summary: of `.sig` layers, or of referrer
/// bundles.
fn keyless_checks(annotations: &[(String, String)], flags: &KeylessFlags, bundles: bool) -> String {
    let mut checks = Vec::new();
    if bundles {
        checks.push("the referrer manifests and bundles against their digests".to_string());
        checks.push(
            "each bundle's DSSE signature over its in-toto statement with its certificate's key"
                .into(),
        );
        checks.push(format!(
            "the statement's subject digest and predicate type ({COSIGN_SIGN_PREDICATE})"
        ));
    } else {
        checks.push(if flags.certificate.is_some() {
            "each signature over its exact payload with --certificate's key".to_string()
        } else {
            "each signature over its exact payload with its certificate's key".to_string()
        });
        checks.push("the payload's image digest".into());
    }
    if !annotations.is_empty() {
        checks.push("the annotations".into());
    }
    if flags.ignore_tlog {
        checks.push(
            "the certificate's validity now (no Rekor bundle: --insecure-ignore-tlog)".into(),
        );
    } else if bundles {
        checks.push(
            "the log entry offline (inclusion proof, checkpoint, SET, entry body) and the certificate's validity at its integrated time"
                .into(),
        );
    } else {
        checks.push(
            "the Rekor bundle offline (SET, entry body) and the certificate's validity at its integrated time"
                .into(),
        );
    }
    checks.push(if flags.chain.is_empty() {
        "the chain to the Fulcio CAs of the trusted root".into()
    } else {
        "the chain to --certificate-chain's root".into()
    });
    if !flags.ignore_sct {
        checks.push("the embedded SCT".into());
    }
    checks.push(format!("the identity ({})", flags.reading));
    checks.join(", ")
}

/// cosign's `PrintVerificationHeader`, on standard error.
fn print_header(image: &ImageRef, annotations: &[(String, String)], mode: &Mode) {
    eprintln!("\nVerification for {image} --");
    eprintln!("The following checks were performed on each of these signatures:");
    if !annotations.is_empty() {
        eprintln!("  - The specified annotations were verified.");
    }
    eprintln!("  - The cosign claims were validated");
    let (bundle_verified, public_key, fulcio) = match mode {
        Mode::Key { .. } => (false, true, false),
        Mode::Keyless(flags) => (
            !flags.ignore_tlog,
            flags.certificate.is_some(),
            flags.certificate.is_none(),
        ),
    };
    if bundle_verified {
        eprintln!("  - Existence of the claims in the transparency log was verified offline");
    }
    if public_key {
        eprintln!("  - The signatures were verified against the specified public key");
    }
    if fulcio {
        eprintln!(
            "  - The code-signing certificate was verified using trusted certificate authority certificates"
        );
    }
}

/// A verified bundle signature as cosign v3 prints it in JSON (`transformOutput`): the image
/// as `docker-reference` (go-containerregistry's `Name()`: the repository with `:tag` or
/// `@digest`), the statement's subject digest, its predicate type as `type`, and the subject's
/// annotations as `optional` (`{}` without any). No certificate or Rekor fields: cosign prints
/// none for bundles.
fn bundle_entry(image: &ImageRef, digest: &Digest, statement: &Statement) -> Value {
    let reference = match image.digest() {
        Some(d) => format!("{}@{d}", image.cosign_identity()),
        None => format!("{}:{}", image.cosign_identity(), image.tag_or_latest()),
    };
    let subject = statement.subject_for(digest);
    let subject_digest = subject
        .and_then(|s| s.sha256.as_deref())
        .map_or_else(|| digest.to_string(), |hex| format!("sha256:{hex}"));
    let optional: BTreeMap<String, Value> = subject
        .map(|s| {
            s.annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": reference },
            "image": { "docker-manifest-digest": subject_digest },
            "type": statement.predicate_type,
        },
        "optional": Value::Object(optional.into_iter().collect()),
    })
}

/// One verified signature as cosign's `PrintVerification` prints it in JSON: the simple-signing
/// payload re-encoded (`critical` with `identity`, `image`, `type`; `optional`), with, from the
/// layer's certificate, `Subject` (its first SAN), `Issuer` and each Fulcio extension by name and
/// OID, and the layer's Rekor `Bundle` and `RFC3161Timestamp`. `optional`'s keys in Go's
/// (sorted) order; `null` when empty, as cosign prints it.
fn cosign_entry(layer: &SignatureLayer) -> Value {
    let payload: Value = serde_json::from_slice(&layer.payload).unwrap_or(Value::Null);
    let critical = &payload["critical"];
    let text = |v: &Value| Value::String(v.as_str().unwrap_or_default().to_string());
    let mut optional: Option<BTreeMap<String, Value>> = payload["optional"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let certificate = layer
        .descriptor
        .annotation(CERTIFICATE_ANNOTATION)
        .and_then(|pem| parse_pem_certificates(pem).ok())
        .and_then(|certs| certs.into_iter().next())
        .and_then(|cert| CertIdentity::read(cert.der()).ok());
    if let Some(identity) = certificate {
        let o = optional.get_or_insert_default();
        o.insert(
            "Subject".into(),
            identity.sans.first().cloned().unwrap_or_default().into(),
        );
        if let Some(issuer) = identity.issuer.as_deref().filter(|i| !i.is_empty()) {
            o.insert("Issuer".into(), issuer.into());
            o.insert(OIDC_ISSUER_V1.into(), issuer.into());
        }
        for name in [
            "githubWorkflowTrigger",
            "githubWorkflowSha",
            "githubWorkflowName",
            "githubWorkflowRepository",
            "githubWorkflowRef",
        ] {
            let Some(oid) = extension_oid(name) else {
                continue;
            };
            if let Some(value) = identity.extension(oid).filter(|v| !v.is_empty()) {
                o.insert(name.into(), value.into());
                o.insert(oid.into(), value.into());
            }
        }
    }
    if let Some(bundle) = layer
        .descriptor
        .annotation(BUNDLE_ANNOTATION)
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
    {
        // cosign's RekorBundle, in its struct's field order.
        let p = &bundle["Payload"];
        let ordered = serde_json::json!({
            "SignedEntryTimestamp": bundle["SignedEntryTimestamp"],
            "Payload": {
                "body": p["body"],
                "integratedTime": p["integratedTime"],
                "logIndex": p["logIndex"],
                "logID": p["logID"],
            },
        });
        optional
            .get_or_insert_default()
            .insert("Bundle".into(), ordered);
    }
    if let Some(timestamp) = layer
        .descriptor
        .annotation("dev.sigstore.cosign/rfc3161timestamp")
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        optional
            .get_or_insert_default()
            .insert("RFC3161Timestamp".into(), timestamp);
    }
    serde_json::json!({
        "critical": {
            "identity": { "docker-reference": text(&critical["identity"]["docker-reference"]) },
            "image": { "docker-manifest-digest": text(&critical["image"]["docker-manifest-digest"]) },
            "type": text(&critical["type"]),
        },
        "optional": match optional {
            Some(map) => Value::Object(map.into_iter().collect()),
            None => Value::Null,
        },
    })
}
