//! `sealgate verify-attestation`: check an image's cosign attestations against a public key or,
//! keyless, a Fulcio certificate's identity (cosign's `--certificate-*` flags, as `verify` takes
//! them), and print the verified ones of a predicate type, as `cosign verify-attestation` does.
//! The attestations are the DSSE layers of its `.att` image, or, when it has none, the Sigstore
//! bundles among its OCI 1.1 referrers (cosign v3); both checked by the engine's attestation
//! checks. The loop, the flags and the exit codes are [`super::verifying`]'s, shared with
//! `verify`.

use anyhow::Context as _;
use sealgate_core::cosign::dsse::Statement;
use sealgate_core::cosign::{SignatureSet, Signer};
use sealgate_core::engine::{
    Artifact, AttestationFailure, AttestationRefusal, VerifyContext, check_bundle,
    verify_attestations,
};
use sealgate_core::policy::Attestor;
use sealgate_core::sigstore::bundle::Bundle;
use sealgate_core::{Digest, ImageRef};

use super::verifying::{Item, Kind, Mode, Refused, Report, VerifyArgs};
use crate::render::outln;

/// Arguments of `verify-attestation`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Checks, for each image: the attestation manifest and every envelope against \
their digests, each DSSE envelope's signature over its pre-authentication encoding with the key \
(--key) or, keyless, with its Fulcio certificate's key (or --certificate's), that it holds an \
in-toto statement naming the image's digest among its subjects, and its Rekor bundle (with \
--key when the layer carries one; keyless always, unless --insecure-ignore-tlog); keyless, then \
the certificate's validity at the logged time, its chain to the Fulcio CAs of the trusted root \
(or --certificate-chain), its embedded SCT (unless --insecure-ignore-sct) and the identity, as \
`verify` checks them (one of --certificate-identity[-regexp] and one of \
--certificate-oidc-issuer[-regexp] are required).\n\nAn image without an .att image is checked \
as cosign v3 attests it: the Sigstore bundles among its OCI 1.1 referrers, each a DSSE \
envelope checked the same way, its log entry's inclusion proof and checkpoint too.\n\nPrints, \
one per line on stdout, each verified envelope of the --type (cosign's names or a URI; default \
custom, as cosign), as cosign prints them; what was checked, and which .att image or referrer \
manifest the envelopes came from, goes to stderr. Exit 0 when every image has at least one, 1 \
when one has none (the message says whether none exist, none verifies and why, or none is of \
the type), 2 on errors.\n\nExamples:\n  sealgate verify-attestation --key cosign.pub --type slsaprovenance registry.company.com/app:v1\n  sealgate verify-attestation --key cosign.pub --type https://example.com/CodeReview/v1 registry.company.com/app:v1 | jq -r .payload | base64 -d\n  sealgate verify-attestation --certificate-identity \"$WORKFLOW\" --certificate-oidc-issuer \"$ISSUER\" --type slsaprovenance1 app:v1"
)]
pub(crate) struct Args {
    /// The predicate type to print: one of cosign's names or a URI.
    #[arg(long = "type", value_name = "TYPE", default_value = "custom")]
    predicate_type: String,

    #[command(flatten)]
    common: VerifyArgs,
}

pub(crate) async fn run(args: &Args) -> anyhow::Result<super::Outcome> {
    let predicate_type = sealgate_core::cosign::dsse::predicate_type_uri(&args.predicate_type)
        .map_err(anyhow::Error::from)
        .context("--type")?
        .to_string();
    super::verifying::run(&args.common, &Attestations { predicate_type }).await
}

/// `verify-attestation`'s checks: attestations of one predicate type.
struct Attestations {
    /// `--type`, as a URI.
    predicate_type: String,
}

impl Kind for Attestations {
    fn artifact(&self) -> Artifact {
        Artifact::Attestations
    }

    fn check_layers(
        &self,
        mode: &Mode,
        set: &SignatureSet,
        ctx: VerifyContext<'_>,
    ) -> Result<Vec<Item>, Refused> {
        let checked = match mode {
            Mode::Key { .. } => set.clone(),
            Mode::Keyless(flags) => flags.signatures_to_check(set),
        };
        let verified = verify_attestations(mode.attestor(), &checked, ctx)
            .map_err(|failure| Refused::failed(failure.to_string(), mode.hint()))?;
        Ok(verified
            .into_iter()
            .map(|v| Item {
                signer: v.signer,
                predicate_type: Some(v.statement.predicate_type),
                printed: String::from_utf8_lossy(&set.layers[v.layer_index].payload).into_owned(),
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
        check_bundle(attestor, bundle, digest, ctx)
    }

    fn bundle_output(
        &self,
        _image: &ImageRef,
        _digest: &Digest,
        _statement: &Statement,
        envelope: &[u8],
    ) -> String {
        String::from_utf8_lossy(envelope).into_owned()
    }

    fn none_at(&self, location: &str) -> String {
        AttestationFailure::NoAttestations {
            location: location.to_string(),
        }
        .to_string()
    }

    fn select(&self, verified: Vec<Item>) -> Result<Vec<Item>, String> {
        let found: Vec<String> = verified
            .iter()
            .filter_map(|v| v.predicate_type.clone())
            .collect();
        let of_type: Vec<Item> = verified
            .into_iter()
            .filter(|v| v.predicate_type.as_deref() == Some(self.predicate_type.as_str()))
            .collect();
        if of_type.is_empty() {
            return Err(format!(
                "none of the attestations matched the predicate type: {}, found: {}",
                self.predicate_type,
                found.join(",")
            ));
        }
        Ok(of_type)
    }

    fn report(&self, r: &Report<'_>) -> anyhow::Result<()> {
        eprintln!("\nVerification for {} ({}) --", r.image, r.digest);
        eprintln!("The following checks were performed on each of these attestations:");
        if r.found.is_referrers() {
            eprintln!(
                "  - The referrer manifests and Sigstore bundles were checked against their digests"
            );
        } else {
            eprintln!(
                "  - The attestation manifest and envelopes were checked against their digests"
            );
        }
        eprintln!("  - The in-toto statements name the image's digest among their subjects");
        match r.mode {
            Mode::Key { key, .. } => eprintln!(
                "  - The signatures over the DSSE envelopes were verified against the specified public key ({})",
                key.fingerprint()
            ),
            Mode::Keyless(flags) => {
                if flags.certificate.is_some() {
                    eprintln!(
                        "  - The signatures over the DSSE envelopes were verified against the specified certificate (--certificate)"
                    );
                } else {
                    eprintln!(
                        "  - The signatures over the DSSE envelopes were verified with their certificates' keys"
                    );
                }
                if !flags.ignore_tlog {
                    eprintln!(
                        "  - Existence of the claims in the transparency log was verified offline"
                    );
                }
                if flags.chain.is_empty() {
                    eprintln!(
                        "  - The code-signing certificate was verified using trusted certificate authority certificates"
                    );
                } else {
                    eprintln!(
                        "  - The code-signing certificate was verified against --certificate-chain's root"
                    );
                }
                if !flags.ignore_sct {
                    eprintln!("  - The certificate's embedded SCT was verified");
                }
                eprintln!("  - The certificate identity matched ({})", flags.reading);
            }
        }
        eprintln!(
            "  - {} verified, {} of type {}",
            r.found.count(r.verified, "attestation"),
            r.items.len(),
            self.predicate_type
        );
        if let Some(referrers) = r.referrers() {
            eprintln!("  - Verified referrer(s) of the type: {referrers}");
        }
        if let Some(signer) = r.items.first().map(|i| &i.signer)
            && matches!(r.mode, Mode::Keyless(_))
        {
            eprintln!("  - Signed by {signer}");
        }
        for item in r.items {
            outln!("{}", item.printed)?;
        }
        Ok(())
    }
}
