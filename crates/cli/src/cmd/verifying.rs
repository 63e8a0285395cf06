//! What `verify` and `verify-attestation` share, as cosign's two commands share it: the flags
//! (`--key`, or keyless with cosign's certificate flags through [`IdentityArgs`]; `-o`,
//! `--insecure-ignore-tlog`, `--offline`, `--trusted-root`, the registry flags), the [`Mode`]
//! they make, and one loop over the images: resolve each to its digest, read its cosign image
//! (`.sig` or `.att`), or, when there is none, the Sigstore bundles among its OCI 1.1 referrers
//! (cosign v3), check each with the command's [`Kind`], print the result and fold the images'
//! outcomes into the exit code (0 every image verified, 1 one did not, 2 one could not be
//! checked).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use sealgate_core::cosign::dsse::Statement;
use sealgate_core::cosign::{SignatureSet, Signer};
use sealgate_core::crypto::key::{PublicKey, SignatureHash};
use sealgate_core::engine::{Artifact, AttestationRefusal, VerifyContext};
use sealgate_core::policy::{
    Attestor, AttestorKind, JsonPath, KeyAttestor, KeySource, RekorSettings,
};
use sealgate_core::sigstore::bundle::{Bundle, Content};
use sealgate_core::sigstore::trust::TrustedRoot;
use sealgate_core::timestamp::Clock;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::Client;
use sealgate_registry::driver::SystemClock;
use sealgate_registry::referrers::{FetchedBundle, fetch_bundles};
use sealgate_registry::signatures::{fetch_artifact, resolve_digest};

use super::Outcome;
use super::identity_args::{IdentityArgs, KEY_AND_IDENTITY, KeylessFlags};
use crate::progress::{Progress, reporting};
use crate::registry_args::ImageTargets;
use crate::trust_args::TrustArgs;

/// cosign's warning for `--insecure-ignore-tlog` (`cmd/cosign/cli/verify.go`).
const IGNORE_TLOG_WARNING: &str = "WARNING: Skipping tlog verification is an insecure practice that lacks transparency and auditability verification for the signature.";

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// A readable summary (verify-attestation prints the verified envelopes either way, as
    /// cosign does).
    Text,
    /// cosign's JSON: verify prints the verified payloads as a JSON array per image, in cosign's
    /// shape; no progress lines.
    Json,
}

/// The flags both verifiers take.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
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

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Output,

    /// Do not require a Rekor bundle on keyless signatures and attestations (nor check one); the
    /// certificate must then be valid now. With --key, a transparency-log entry an attestation
    /// or a Sigstore bundle carries is checked unless this is given (key-based .sig signatures
    /// never consult a transparency log).
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

/// How a command verifies.
pub(crate) enum Mode {
    /// With a public key: the key, its file, the hash, and the key attestor it makes (for
    /// attestations and bundles).
    Key {
        /// The key.
        key: PublicKey,
        /// Its file, as given.
        path: PathBuf,
        /// The signatures' hash.
        hash: SignatureHash,
        /// The key as an attestor.
        attestor: Box<Attestor>,
    },
    /// Keyless, with the attestor the flags make.
    Keyless(Box<KeylessFlags>),
}

impl Mode {
    /// The attestor the checks run with.
    pub(crate) fn attestor(&self) -> &Attestor {
        match self {
            Mode::Key { attestor, .. } => attestor,
            Mode::Keyless(flags) => &flags.attestor,
        }
    }

    /// For a keyless failure, how sealgate read the flags.
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            Mode::Key { .. } => None,
            Mode::Keyless(flags) => Some(format!(
                "  (sealgate checks the flags as a Kyverno keyless attestor: {}; rekor.ignoreTlog is --insecure-ignore-tlog, ctlog.ignoreSCT is --insecure-ignore-sct)",
                flags.reading
            )),
        }
    }
}

/// Where an image's signatures or attestations were found.
pub(crate) enum Found {
    /// The cosign image (`REPO:sha256-<hex>.sig` or `.att`).
    Tag {
        /// Its location.
        location: String,
        /// How many layers it has.
        layers: usize,
    },
    /// No cosign image: the Sigstore bundles among the image's referrers.
    Referrers {
        /// Where the referrers were listed (the API, or the referrers tag).
        location: String,
        /// How many bundles were found there.
        bundles: usize,
    },
}

impl Found {
    /// `N of M signature(s) at LOCATION`, or `N of M Sigstore bundle(s) among the referrers at
    /// LOCATION`.
    pub(crate) fn count(&self, verified: usize, noun: &str) -> String {
        match self {
            Found::Tag { location, layers } => {
                format!("{verified} of {layers} {noun}(s) at {location}")
            }
            Found::Referrers { location, bundles } => format!(
                "{verified} of {bundles} Sigstore bundle(s) among the referrers at {location}"
            ),
        }
    }

    /// Whether the bundles were checked.
    pub(crate) fn is_referrers(&self) -> bool {
        matches!(self, Found::Referrers { .. })
    }
}

/// One verified signature or attestation.
pub(crate) struct Item {
    /// Who signed.
    pub(crate) signer: Signer,
    /// The in-toto predicate type, for attestations and bundles.
    pub(crate) predicate_type: Option<String>,
    /// What stdout gets for it: cosign's JSON entry (verify) or the envelope
    /// (verify-attestation).
    pub(crate) printed: String,
    /// The referrer it came from (`REPO@sha256:…`), for a bundle.
    pub(crate) referrer: Option<String>,
}

/// Why an image did not verify: a failure (exit 1) or an error (exit 2), in words, with a hint
/// on the next line.
pub(crate) struct Refused {
    /// [`Outcome::Failed`] or [`Outcome::Error`].
    pub(crate) outcome: Outcome,
    /// What was wrong.
    pub(crate) message: String,
    /// A line after it.
    pub(crate) hint: Option<String>,
}

impl Refused {
    /// A failed verification.
    pub(crate) fn failed(message: String, hint: Option<String>) -> Refused {
        Refused {
            outcome: Outcome::Failed,
            message,
            hint,
        }
    }
}

/// One image's verification, for the command to print.
pub(crate) struct Report<'a> {
    /// The image as given.
    pub(crate) image: &'a ImageRef,
    /// Its digest.
    pub(crate) digest: &'a Digest,
    /// How it was verified.
    pub(crate) mode: &'a Mode,
    /// Whether `--insecure-ignore-tlog` was given.
    pub(crate) ignore_tlog: bool,
    /// The output format.
    pub(crate) output: Output,
    /// Where the signatures were.
    pub(crate) found: &'a Found,
    /// How many verified (before [`Kind::select`]).
    pub(crate) verified: usize,
    /// What verified and is printed.
    pub(crate) items: &'a [Item],
}

impl Report<'_> {
    /// The referrers the printed items came from, joined; `None` for a `.sig`/`.att`.
    pub(crate) fn referrers(&self) -> Option<String> {
        let list: Vec<&str> = self
            .items
            .iter()
            .filter_map(|i| i.referrer.as_deref())
            .collect();
        (!list.is_empty()).then(|| list.join(", "))
    }
}

/// What one command checks: signatures (`verify`) or attestations (`verify-attestation`).
pub(crate) trait Kind {
    /// The cosign image read first.
    fn artifact(&self) -> Artifact;
    /// The annotations the flags require (`verify -a`).
    fn annotations(&self) -> &[(String, String)] {
        &[]
    }
    /// Checks the layers of a cosign image that has some.
    fn check_layers(
        &self,
        mode: &Mode,
        set: &SignatureSet,
        ctx: VerifyContext<'_>,
    ) -> Result<Vec<Item>, Refused>;
    /// Checks one referrer bundle for `digest` with `attestor` (the engine's bundle check the
    /// command stands for): its statement and who signed it.
    fn check_bundle(
        &self,
        attestor: &Attestor,
        bundle: &Bundle,
        digest: &Digest,
        ctx: VerifyContext<'_>,
    ) -> Result<(Statement, Signer), AttestationRefusal>;
    /// What stdout gets for a verified bundle of `image` (`digest`): its `statement`, from its
    /// DSSE `envelope` (the JSON as the bundle holds it).
    fn bundle_output(
        &self,
        image: &ImageRef,
        digest: &Digest,
        statement: &Statement,
        envelope: &[u8],
    ) -> String;
    /// The words for a cosign image at `location` with nothing in it.
    fn none_at(&self, location: &str) -> String;
    /// Of the verified, those the command prints (verify-attestation: those of `--type`), or
    /// why there are none.
    fn select(&self, verified: Vec<Item>) -> Result<Vec<Item>, String>;
    /// Prints one image's verification.
    fn report(&self, report: &Report<'_>) -> anyhow::Result<()>;
}

/// What the flags resolve to before any image is fetched.
struct Setup {
    mode: Mode,
    trust: Arc<TrustedRoot>,
    ignore_tlog: bool,
    images: Vec<ImageRef>,
    client: Client,
}

impl VerifyArgs {
    /// cosign's flag checks first (nothing read before them), then the images, the key or the
    /// keyless attestor, the trusted root and the registry client.
    fn setup(&self, annotations: &[(String, String)]) -> anyhow::Result<Setup> {
        let ignore_tlog = self.insecure_ignore_tlog.unwrap_or(false);
        if self.key.is_some() && self.identity.names_identity() {
            bail!(
                "{KEY_AND_IDENTITY}: --key and an identity flag were both given; keep --key for a key-signed image, or the --certificate-* flags for a keyless one"
            );
        }
        let keyless = match &self.key {
            Some(_) => None,
            None => Some(self.identity.keyless(annotations, ignore_tlog)?),
        };
        if self.key.is_some() {
            let moot = self.identity.keyless_only_flags();
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
        let images = self.targets.images()?;
        let mode = match (keyless, &self.key) {
            (Some(flags), _) => Mode::Keyless(Box::new(flags)),
            (None, Some(path)) => key_mode(path, &self.hash, annotations, ignore_tlog)?,
            (None, None) => bail!("--key or the keyless flags are needed"),
        };
        let trust = self.trust.load()?;
        let client = self.targets.client_for(&images)?;
        Ok(Setup {
            mode,
            trust,
            ignore_tlog,
            images,
            client,
        })
    }
}

/// `--key`: the key read, and the key attestor it makes (`annotations` required, the
/// transparency log skipped when `ignore_tlog`).
fn key_mode(
    path: &std::path::Path,
    hash: &str,
    annotations: &[(String, String)],
    ignore_tlog: bool,
) -> anyhow::Result<Mode> {
    let hash = SignatureHash::from_kyverno(hash).with_context(|| {
        format!("--signature-digest-algorithm {hash}: expected sha256, sha384 or sha512")
    })?;
    let key_text = sealgate_files::read_text_bounded(path, sealgate_files::KEY_FILE)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    let key = PublicKey::from_pem(&key_text)
        .with_context(|| format!("reading the public key {}", path.display()))?;
    let attestor = Attestor::new(
        AttestorKind::Key(KeyAttestor {
            key: KeySource::Pem(key.clone()),
            hash,
            rekor: RekorSettings {
                ignore_tlog,
                ..RekorSettings::default()
            },
            ctlog: Default::default(),
        }),
        annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
        None,
        JsonPath::root(),
        None,
    );
    Ok(Mode::Key {
        key,
        path: path.to_path_buf(),
        hash,
        attestor: Box::new(attestor),
    })
}

/// The worse of two outcomes: an error over a failure over a success.
fn worst(a: Outcome, b: Outcome) -> Outcome {
    match (a, b) {
        (Outcome::Error, _) | (_, Outcome::Error) => Outcome::Error,
        (Outcome::Failed, _) | (_, Outcome::Failed) => Outcome::Failed,
        _ => Outcome::Success,
    }
}

/// Runs a verifier: every image of `args` checked by `kind`.
pub(crate) async fn run<K: Kind>(args: &VerifyArgs, kind: &K) -> anyhow::Result<Outcome> {
    let setup = args.setup(kind.annotations())?;
    let progress = match args.output {
        Output::Text => Progress::Shown,
        Output::Json => Progress::Off,
    };
    let ctx = VerifyContext {
        trust: &setup.trust,
        now: SystemClock.now(),
    };
    let client = &setup.client;
    let artifact = kind.artifact();
    let mut outcome = Outcome::Success;
    for image in &setup.images {
        let host = image.api_host();
        let digest = reporting(
            progress,
            host,
            || format!("resolving {image}"),
            resolve_digest(client, image),
        )
        .await?;
        let set = reporting(
            progress,
            host,
            || format!("fetching the {} of {image}@{digest}", artifact.noun()),
            fetch_artifact(client, image, &digest, artifact),
        )
        .await?;
        let (found, checked) = if set.layers.is_empty() {
            let (location, bundles) = reporting(
                progress,
                host,
                || format!("fetching the referrers of {image}@{digest}"),
                fetch_bundles(client, image, &digest),
            )
            .await?;
            let none_at = kind.none_at(&set.location);
            let checked = check_bundles(
                kind,
                &setup.mode,
                (image, &digest),
                (&none_at, &location),
                &bundles,
                ctx,
            );
            let found = Found::Referrers {
                location,
                bundles: bundles.len(),
            };
            (found, checked)
        } else {
            let found = Found::Tag {
                location: set.location.clone(),
                layers: set.layers.len(),
            };
            (found, kind.check_layers(&setup.mode, &set, ctx))
        };
        let verified = checked.and_then(|items| {
            let count = items.len();
            kind.select(items)
                .map(|selected| (count, selected))
                .map_err(|why| Refused::failed(why, None))
        });
        let (count, items) = match verified {
            Ok(v) => v,
            Err(refused) => {
                match refused.outcome {
                    Outcome::Error => {
                        eprintln!("could not verify {image} ({digest}): {}", refused.message)
                    }
                    _ => eprintln!(
                        "verification failed for {image} ({digest}): {}",
                        refused.message
                    ),
                }
                if let Some(hint) = &refused.hint {
                    eprintln!("{hint}");
                }
                outcome = worst(outcome, refused.outcome);
                continue;
            }
        };
        kind.report(&Report {
            image,
            digest: &digest,
            mode: &setup.mode,
            ignore_tlog: setup.ignore_tlog,
            output: args.output,
            found: &found,
            verified: count,
            items: &items,
        })?;
    }
    Ok(outcome)
}

/// One bundle checked with `kind`, as the item printed for it.
fn check_bundle<K: Kind>(
    kind: &K,
    mode: &Mode,
    image: &ImageRef,
    digest: &Digest,
    bundle: &Bundle,
    ctx: VerifyContext<'_>,
) -> Result<Item, AttestationRefusal> {
    let Content::Dsse { json, .. } = &bundle.content else {
        return Err(AttestationRefusal::Unusable(
            "a message-signature bundle (cosign sign-blob) signs a blob, not an image statement"
                .into(),
        ));
    };
    let (statement, signer) = kind.check_bundle(mode.attestor(), bundle, digest, ctx)?;
    Ok(Item {
        signer,
        printed: kind.bundle_output(image, digest, &statement, json),
        predicate_type: Some(statement.predicate_type),
        referrer: None,
    })
}

/// The referrer bundles (found at `location`) checked with `kind`: those that verify, or why
/// none does, after `none_at` (the words for the empty cosign image).
fn check_bundles<K: Kind>(
    kind: &K,
    mode: &Mode,
    (image, digest): (&ImageRef, &Digest),
    (none_at, location): (&str, &str),
    bundles: &[FetchedBundle],
    ctx: VerifyContext<'_>,
) -> Result<Vec<Item>, Refused> {
    if bundles.is_empty() {
        return Err(Refused::failed(
            format!("{none_at}, and no Sigstore bundle among the referrers at {location}"),
            None,
        ));
    }
    if let Mode::Keyless(flags) = mode
        && (flags.certificate.is_some() || !flags.chain.is_empty())
    {
        return Err(Refused {
            outcome: Outcome::Error,
            message: format!(
                "{none_at}; {} Sigstore bundle(s) are among the referrers at {location}, and --certificate and --certificate-chain do not apply to bundles: a bundle carries its own certificate, checked against the trusted root (cosign: certificate must be in bundle); drop those flags, or give --trusted-root with the private CA",
                bundles.len()
            ),
            hint: None,
        });
    }
    let mut verified = Vec::new();
    let mut refusals = Vec::new();
    for fetched in bundles {
        let referrer = format!("{}@{}", image.repository(), fetched.manifest);
        match Bundle::parse(&fetched.bytes) {
            Ok(bundle) => match check_bundle(kind, mode, image, digest, &bundle, ctx) {
                Ok(mut item) => {
                    item.referrer = Some(referrer);
                    verified.push(item);
                }
                Err(why) => refusals.push(format!("{referrer}: {why}")),
            },
            Err(why) => refusals.push(format!("{referrer}: {why}")),
        }
    }
    if verified.is_empty() {
        return Err(Refused::failed(
            format!(
                "{none_at}, and none of {} Sigstore bundle(s) among the referrers at {location} verifies: {}",
                bundles.len(),
                refusals.join("; ")
            ),
            mode.hint(),
        ));
    }
    Ok(verified)
}
