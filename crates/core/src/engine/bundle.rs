//! Sigstore bundles (cosign v3 signatures and attestations, found through OCI referrers)
//! checked with one attestor.
//!
//! A DSSE bundle is checked as the `.att` layer it is equivalent to (the envelope as the blob,
//! the certificate and chain as annotations, the tlog entry's SET in cosign's legacy bundle
//! form), through the same attestation checks ([`super::attestation`]: the signature over the
//! PAE by the key, the certificate or the keyless certificate, the in-toto subject digest and
//! annotations, the SET and entry body, then for keyless the chain at the signing time, the SCT
//! and the identity). Before that, the entry's inclusion proof and checkpoint are checked against
//! the same log keys as the SET. A signature is a verified bundle whose statement has cosign's
//! sign predicate ([`COSIGN_SIGN_PREDICATE`]), as sigstore-rs and security-profiles-operator
//! keep them (cosign itself takes any bundle).

use std::collections::BTreeMap;

use crate::cosign::dsse::{DSSE_MEDIA_TYPE, Statement};
use crate::cosign::{
    BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, Descriptor, SignatureLayer, Signer,
};
use crate::crypto::pem;
use crate::image::digest::Digest;
use crate::policy::{Attestor, AttestorKind};
use crate::sigstore::bundle::{Bundle, COSIGN_SIGN_PREDICATE, Content};

use super::attestation::{AttestationRefusal, check_layer};
use super::attestor::{VerifyContext, rekor_logs};
use super::outcome::TlogRefusal;

/// `bundle` as the `.att` layer cosign would have written for it: `None` for a message-signature
/// bundle, which has no envelope.
pub fn bundle_layer(bundle: &Bundle) -> Option<SignatureLayer> {
    let Content::Dsse { json, .. } = &bundle.content else {
        return None;
    };
    let mut annotations = BTreeMap::new();
    if let Some(leaf) = bundle.material.leaf() {
        annotations.insert(
            CERTIFICATE_ANNOTATION.to_string(),
            pem::encode("CERTIFICATE", leaf),
        );
        let chain: String = bundle
            .material
            .intermediates()
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c))
            .collect();
        annotations.insert(CHAIN_ANNOTATION.to_string(), chain);
    }
    if let Some(rekor) = bundle
        .tlog_entries
        .first()
        .and_then(|e| e.legacy_rekor_bundle())
    {
        annotations.insert(BUNDLE_ANNOTATION.to_string(), rekor);
    }
    let mut descriptor = Descriptor::of(DSSE_MEDIA_TYPE, json);
    descriptor.annotations = Some(annotations);
    Some(SignatureLayer {
        descriptor,
        payload: json.clone(),
    })
}

/// Checks one bundle with `attestor` for `image_digest`: its statement and who signed it.
pub fn check_bundle(
    attestor: &Attestor,
    bundle: &Bundle,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<(Statement, Signer), AttestationRefusal> {
    let Some(layer) = bundle_layer(bundle) else {
        return Err(AttestationRefusal::Unusable(
            "a message-signature bundle (cosign sign-blob) signs a blob, not an image statement"
                .into(),
        ));
    };
    let rekor = match &attestor.kind {
        AttestorKind::Key(k) => &k.rekor,
        AttestorKind::Certificate(c) => &c.rekor,
        AttestorKind::Keyless(k) => &k.rekor,
        AttestorKind::Nested(_) => {
            return Err(AttestationRefusal::Unusable(
                "a nested attestor set is not a signer".into(),
            ));
        }
    };
    if !rekor.ignore_tlog
        && let Some(entry) = bundle.tlog_entries.first()
    {
        entry
            .verify_inclusion(&rekor_logs(rekor, ctx))
            .map_err(|e| AttestationRefusal::Tlog(TlogRefusal::Inclusion(e)))?;
    }
    match check_layer(attestor, &layer, image_digest, ctx)? {
        Some(verified) => Ok(verified),
        None => Err(AttestationRefusal::Unusable(
            "this attestor kind does not verify bundles".into(),
        )),
    }
}

/// Checks `bundle` as an image signature: a verified bundle whose statement is cosign's sign
/// statement.
pub fn check_bundle_signature(
    attestor: &Attestor,
    bundle: &Bundle,
    image_digest: &Digest,
    ctx: VerifyContext<'_>,
) -> Result<Signer, AttestationRefusal> {
    let (statement, signer) = check_bundle(attestor, bundle, image_digest, ctx)?;
    if statement.predicate_type != COSIGN_SIGN_PREDICATE {
        return Err(AttestationRefusal::Unusable(format!(
            "the bundle is an attestation of {}, not a signature ({COSIGN_SIGN_PREDICATE})",
            statement.predicate_type
        )));
    }
    Ok(signer)
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod tests;
