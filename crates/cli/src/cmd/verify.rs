//! `sealgate verify`: check an image's cosign signatures against a public key (`--key`), or
//! keyless: a Fulcio certificate's identity, with cosign's `--certificate-*` flags, checked by the
//! engine's keyless attestor checks offline. Prints what cosign prints: its check lines on
//! standard error and, with `-o json`, its JSON array on standard output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::ValueEnum;
use sealgate_core::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, SignatureLayer, SignatureSet, Signer, Verification,
    with_annotations,
};
use sealgate_core::crypto::cert::parse_pem_certificates;
use sealgate_core::crypto::key::{PublicKey, SignatureHash};
use sealgate_core::engine::{AttestorOutcome, VerifyContext, check_attestor};
use sealgate_core::sigstore::fulcio::{CertIdentity, OIDC_ISSUER_V1, extension_oid};
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::Clock;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::driver::SystemClock;
use serde_json::Value;

#[path = "identity_args.rs"]
pub(crate) mod identity_args;

use self::identity_args::{IdentityArgs, KEY_AND_IDENTITY, KeylessFlags};
use super::{Outcome, parse_key_value};
use crate::progress::{Progress, reporting};
use crate::registry_args::ImageTargets;
use crate::render::outln;
use crate::trust_args::TrustArgs;
use sealgate_registry::signatures::{fetch_signatures, resolve_digest};

/// cosign's warning for `--insecure-ignore-tlog` (`cmd/cosign/cli/verify.go`).
const IGNORE_TLOG_WARNING: &str = "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.";

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// A readable summary.
    Text,
    /// The verified simple-signing payloads as a JSON array per image, in cosign's shape.
    Json,
}

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
and --certificate-github-workflow-*.\n\nExit 0 when every image has at least one such signature, \
1 when one has none (the message says why, naming the identity found and the one wanted), 2 on \
errors.\n\nFor an image signed keyless by the release workflow of github.com/org/app: \
--certificate-identity https://github.com/org/app/.github/workflows/release.yml@refs/heads/main \
--certificate-oidc-issuer https://token.actions.githubusercontent.com\n\nExamples:\n  sealgate verify --key cosign.pub registry.company.com/app:v1\n  sealgate verify --key cosign.pub -a git-sha=4f2c1e0 -o json registry.company.com/app:v1\n  sealgate verify --certificate-identity \"$WORKFLOW\" --certificate-oidc-issuer \"$ISSUER\" app:v1"
)]
pub(crate) struct Args {
    /// The PEM public key (cosign.pub); without it, verification is keyless.
    #[arg(long, value_name = "FILE", conflicts_with = "certificate")]
    key: Option<PathBuf>,

    /// The hash the signatures were made with (key-based).
    #[arg(
        long = "signature-digest-algorithm",
        value_name = "ALG",
        default_value = "sha256"
    )]
    hash: String,

    /// Require these key=value annotations in the signed payload (repeatable).
    #[arg(short = 'a', long = "annotations", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    annotations: Vec<(String, String)>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Output,

    /// Do not require a Rekor bundle on keyless signatures (nor check one); the certificate must
    /// then be valid now. Key-based verification never consults a transparency log.
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    insecure_ignore_tlog: Option<bool>,

    /// Accepted for cosign compatibility: sealgate is always offline (Rekor proofs come from the
    /// signature's bundle, trust from the trusted root; nothing is looked up).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    offline: Option<bool>,

    #[command(flatten)]
    identity: IdentityArgs,

    #[command(flatten)]
    trust: TrustArgs,

    #[command(flatten)]
    targets: ImageTargets,
}

/// How the command verifies.
enum Mode {
    /// With a public key.
    Key(PublicKey, PathBuf, SignatureHash),
    /// Keyless, with the attestor the flags make and the trusted root.
    Keyless(Box<KeylessFlags>, std::sync::Arc<TrustedRoot>),
}

/// One image's verified signatures: their layer indices in the set fetched, and who signed.
struct Verified {
    layers: Vec<usize>,
    signer: Signer,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<Outcome> {
    let ignore_tlog = args.insecure_ignore_tlog.unwrap_or(false);
    // cosign's flag checks come before anything is read.
    if args.key.is_some() && args.identity.names_identity() {
        bail!(
            "{KEY_AND_IDENTITY}: --key and an identity flag were both given; keep --key for a key-signed image, or the --certificate-* flags for a keyless one"
        );
    }
    let keyless = match &args.key {
        Some(_) => None,
        None => Some(args.identity.keyless(&args.annotations, ignore_tlog)?),
    };
    if args.key.is_some() {
        let moot = args.identity.keyless_only_flags();
        if !moot.is_empty() {
            eprintln!(
                "note: {} only apply to keyless verification; with --key they are not used (as in cosign)",
                moot.join(", ")
            );
        }
    }
    if ignore_tlog {
        eprintln!("{IGNORE_TLOG_WARNING}");
    }
    let images = args.targets.images()?;
    let mode = match (keyless, &args.key) {
        (Some(flags), _) => Mode::Keyless(Box::new(flags), args.trust.load()?),
        (None, Some(path)) => {
            let hash = SignatureHash::from_kyverno(&args.hash).with_context(|| {
                format!(
                    "--signature-digest-algorithm {}: expected sha256, sha384 or sha512",
                    args.hash
                )
            })?;
            let key_text = sealgate_files::read_text_bounded(path, sealgate_files::KEY_FILE)
                .with_context(|| format!("reading the public key {}", path.display()))?;
            let key = PublicKey::from_pem(&key_text)
                .with_context(|| format!("reading the public key {}", path.display()))?;
            Mode::Key(key, path.clone(), hash)
        }
        (None, None) => bail!("--key or the keyless flags are needed"),
    };
    let client = args.targets.client_for(&images)?;
    let progress = match args.output {
        Output::Text => Progress::Shown,
        Output::Json => Progress::Off,
    };
    let now = SystemClock.now();
    let mut outcome = Outcome::Success;
    for image in &images {
        let host = image.api_host();
        let digest = reporting(
            progress,
            host,
            || format!("resolving {image}"),
            resolve_digest(&client, image),
        )
        .await?;
        let set = reporting(
            progress,
            host,
            || format!("fetching the signatures of {image}@{digest}"),
            fetch_signatures(&client, image, &digest),
        )
        .await?;
        let verified = match &mode {
            Mode::Key(key, _, hash) => verify_key(args, image, &digest, &set, key, *hash),
            Mode::Keyless(flags, trust) => {
                let ctx = VerifyContext { trust, now };
                verify_keyless(image, &digest, &set, flags, ctx)
            }
        };
        let verified = match verified {
            Ok(v) => v,
            Err(failed) => {
                outcome = worst(outcome, failed);
                continue;
            }
        };
        print_header(image, args, &mode);
        match args.output {
            Output::Json => {
                let entries: Vec<Value> = verified
                    .layers
                    .iter()
                    .map(|&i| cosign_entry(&set.layers[i]))
                    .collect();
                outln!("\n{}", Value::Array(entries))?;
            }
            Output::Text => {
                outln!("Verified {image} ({digest})")?;
                match &mode {
                    Mode::Key(key, path, _) => {
                        outln!(
                            "  {} of {} signature(s) at {} verified with key {} ({})",
                            verified.layers.len(),
                            set.layers.len(),
                            set.location,
                            key.fingerprint(),
                            path.display()
                        )?;
                        outln!(
                            "  checked: the signature manifest and payloads against their digests, each signature over its exact payload, the payload's image digest"
                        )?;
                    }
                    Mode::Keyless(flags, _) => {
                        outln!(
                            "  {} of {} signature(s) at {} verified: {}",
                            verified.layers.len(),
                            set.layers.len(),
                            set.location,
                            verified.signer
                        )?;
                        outln!("  checked: {}", keyless_checks(args, flags))?;
                    }
                }
            }
        }
    }
    Ok(outcome)
}

/// The worse of two outcomes: an error over a failure over a success.
fn worst(a: Outcome, b: Outcome) -> Outcome {
    match (a, b) {
        (Outcome::Error, _) | (_, Outcome::Error) => Outcome::Error,
        (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
        _ => Outcome::Success,
    }
}

/// Key-based: the signatures by the key over this digest carrying the annotations, or the
/// failure (said on standard error).
fn verify_key(
    args: &Args,
    image: &ImageRef,
    digest: &Digest,
    set: &SignatureSet,
    key: &PublicKey,
    hash: SignatureHash,
) -> Result<Verified, Outcome> {
    let verified = match sealgate_core::cosign::verify_with_key(set, key, hash) {
        Verification::Verified(v) => v,
        Verification::Failed(failure) => {
            eprintln!("verification failed for {image} ({digest}): {failure}");
            return Err(Outcome::Failed);
        }
    };
    let matching = with_annotations(&verified, &args.annotations);
    if matching.is_empty() {
        let wanted: Vec<String> = args
            .annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        eprintln!(
            "verification failed for {image} ({digest}): {} signature(s) by the key verify, but none carries the annotations {}",
            verified.len(),
            wanted.join(", ")
        );
        return Err(Outcome::Failed);
    }
    Ok(Verified {
        layers: matching.iter().map(|v| v.layer_index()).collect(),
        signer: Signer::Key {
            fingerprint: key.fingerprint(),
        },
    })
}

/// Keyless: each layer checked on its own by the engine's keyless attestor check (so every
/// verified signature is printed, as cosign prints them); when none verifies, the whole set
/// checked once more for the engine's account of every layer.
fn verify_keyless(
    image: &ImageRef,
    digest: &Digest,
    set: &SignatureSet,
    flags: &KeylessFlags,
    ctx: VerifyContext<'_>,
) -> Result<Verified, Outcome> {
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
        return Ok(Verified { layers, signer });
    }
    match check_attestor(&flags.attestor, &checked, ctx) {
        AttestorOutcome::Failed(failure) => {
            eprintln!("verification failed for {image} ({digest}): {failure}");
            if !checked.layers.is_empty() {
                eprintln!(
                    "  (sealgate checks the flags as a Kyverno keyless attestor: {}; rekor.ignoreTlog is --insecure-ignore-tlog, ctlog.ignoreSCT is --insecure-ignore-sct)",
                    flags.reading
                );
            }
            Err(Outcome::Failed)
        }
        AttestorOutcome::Error(why) => {
            eprintln!("could not verify {image} ({digest}): {why}");
            Err(Outcome::Error)
        }
        AttestorOutcome::Verified(_) => {
            // Each layer failed alone, so the set cannot verify; say so rather than guess.
            eprintln!(
                "could not verify {image} ({digest}): the signatures verify together but none alone"
            );
            Err(Outcome::Error)
        }
    }
}

/// What the keyless checks covered, for the text summary.
fn keyless_checks(args: &Args, flags: &KeylessFlags) -> String {
    let mut checks = vec![if flags.certificate.is_some() {
        "each signature over its exact payload with --certificate's key".to_string()
    } else {
        "each signature over its exact payload with its certificate's key".to_string()
    }];
    checks.push("the payload's image digest".into());
    if !args.annotations.is_empty() {
        checks.push("the annotations".into());
    }
    if flags.ignore_tlog {
        checks.push(
            "the certificate's validity now (no Rekor bundle: --insecure-ignore-tlog)".into(),
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
fn print_header(image: &ImageRef, args: &Args, mode: &Mode) {
    eprintln!("\nVerification for {image} --");
    eprintln!("The following checks were performed on each of these signatures:");
    if !args.annotations.is_empty() {
        eprintln!("  - The specified annotations were verified.");
    }
    eprintln!("  - The cosign claims were validated");
    let (bundle_verified, public_key, fulcio) = match mode {
        Mode::Key(..) => (false, true, false),
        Mode::Keyless(flags, _) => (
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
