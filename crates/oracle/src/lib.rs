//! The `sigstore` crate (sigstore-rs) as an oracle: an implementation of cosign's formats that
//! sealgate shares no code with, used only by tests and benchmarks to cross-check sealgate.
//! Nothing in the product depends on this crate (`cargo tree -p sealgate -e normal` has no
//! `sigstore`).
//!
//! [`verify`] checks an image's `.sig` signatures with a public key the way sigstore-rs does
//! (`trusted_signature_layers`, then `verify_constraints` with a `PublicKeyVerifier`); [`sign`]
//! pushes a signature made by sigstore-rs' own signer from a cosign key file; [`verify_keyless`]
//! checks keyless signatures (Fulcio certificate, Rekor bundle) for an e-mail identity with
//! `CertSubjectEmailVerifier` against trust material given offline. They all talk to a
//! registry described by [`RegistryAccess`]: TLS with an extra root CA and Basic credentials
//! work, as sigstore-rs passes them to `oci-client` (reqwest 0.13 + rustls).

use std::collections::BTreeMap;

use sigstore::cosign::constraint::PrivateKeySigner;
use sigstore::cosign::verification_constraint::cert_subject_email_verifier::StringVerifier;
use sigstore::cosign::verification_constraint::{
    CertSubjectEmailVerifier, PublicKeyVerifier, VerificationConstraint, VerificationConstraintVec,
};
use sigstore::cosign::{ClientBuilder, Constraint, CosignCapabilities, SignatureLayer};
use sigstore::crypto::SigningScheme;
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::errors::SigstoreError;
use sigstore::registry::{
    Auth, Certificate, CertificateEncoding, ClientConfig, ClientProtocol, OciReference,
};

/// How the oracle reaches the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryAccess {
    /// PEM of the registry's CA, trusted in addition to the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Basic-auth user and password.
    pub credentials: Option<(String, String)>,
    /// Plain HTTP instead of TLS.
    pub plain_http: bool,
}

/// Why the oracle could not evaluate or sign: what it was doing, and sigstore-rs' error.
#[derive(Debug, thiserror::Error)]
#[error("sigstore-rs: {doing}: {error}")]
pub struct OracleError {
    doing: String,
    error: SigstoreError,
}

impl OracleError {
    fn while_(doing: impl Into<String>) -> impl FnOnce(SigstoreError) -> OracleError {
        let doing = doing.into();
        move |error| OracleError { doing, error }
    }
}

/// What sigstore-rs concluded about an image's signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OracleVerdict {
    /// Signature layers sigstore-rs fetched and accepted as well-formed for this image's digest
    /// (`trusted_signature_layers`).
    pub layers: usize,
    /// How many of them the key verifies (`PublicKeyVerifier` on each layer).
    pub by_key: usize,
    /// Whether `verify_constraints` accepted the image: at least one layer satisfies the key.
    pub verified: bool,
}

fn client(access: &RegistryAccess) -> Result<sigstore::cosign::Client, OracleError> {
    ClientBuilder::default()
        .with_oci_client_config(oci_config(access))
        .build()
        .map_err(OracleError::while_("building the registry client"))
}

fn oci_config(access: &RegistryAccess) -> ClientConfig {
    let mut config = ClientConfig::default();
    if access.plain_http {
        config.protocol = ClientProtocol::Http;
    }
    if let Some(ca) = &access.ca_pem {
        config.extra_root_certificates.push(Certificate {
            encoding: CertificateEncoding::Pem,
            data: ca.clone(),
        });
    }
    config
}

fn auth(access: &RegistryAccess) -> Auth {
    match &access.credentials {
        Some((u, p)) => Auth::Basic(u.clone(), p.clone()),
        None => Auth::Anonymous,
    }
}

fn reference(image: &str) -> Result<OciReference, OracleError> {
    image.parse().map_err(OracleError::while_(format!(
        "parsing the image reference {image}"
    )))
}

/// Verifies `image`'s signatures with the PEM `public_key_pem` through sigstore-rs.
///
/// `Ok` whenever sigstore-rs could evaluate; [`OracleVerdict::verified`] says whether it
/// accepted. Note that sigstore-rs logs and skips a `.sig` image it cannot fetch (it then sees
/// zero layers), so tests should check [`OracleVerdict::layers`] too.
pub async fn verify(
    image: &str,
    public_key_pem: &[u8],
    access: &RegistryAccess,
) -> Result<OracleVerdict, OracleError> {
    let reference = reference(image)?;
    let mut client = client(access)?;
    let layers = client
        .trusted_signature_layers(&auth(access), &reference)
        .await
        .map_err(OracleError::while_(format!(
            "fetching the signatures of {image}"
        )))?;
    let verifier = PublicKeyVerifier::new(public_key_pem, &SigningScheme::default())
        .map_err(OracleError::while_("reading the public key"))?;
    let mut by_key = 0;
    for layer in &layers {
        if verifier
            .verify(layer)
            .map_err(OracleError::while_("checking a layer"))?
        {
            by_key += 1;
        }
    }
    let constraints: VerificationConstraintVec = vec![Box::new(verifier)];
    let verified = sigstore::cosign::verify_constraints(&layers, constraints.iter()).is_ok();
    Ok(OracleVerdict {
        layers: layers.len(),
        by_key,
        verified,
    })
}

/// Trust material for [`verify_keyless`], given offline (as sigstore-rs' `ManualTrustRoot`).
#[derive(Debug, Clone, Default)]
pub struct KeylessTrust {
    /// DER certificates of the Fulcio CAs (roots and intermediates: sigstore-rs trusts each).
    pub fulcio_certs: Vec<Vec<u8>>,
    /// Rekor public keys (DER SubjectPublicKeyInfo) by hex log ID.
    pub rekor_keys: BTreeMap<String, Vec<u8>>,
}

/// What sigstore-rs concluded about an image's keyless signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeylessVerdict {
    /// Signature layers sigstore-rs fetched (`trusted_signature_layers`).
    pub layers: usize,
    /// Layers whose certificate sigstore-rs trusted (Fulcio chain, validity at the Rekor time).
    pub with_trusted_certificate: usize,
    /// Whether some layer's certificate is for `email` from `issuer`.
    pub verified: bool,
}

/// Verifies `image`'s keyless signatures for the e-mail identity `email` issued by `issuer`
/// through sigstore-rs, trusting `trust` only.
pub async fn verify_keyless(
    image: &str,
    email: &str,
    issuer: &str,
    trust: &KeylessTrust,
    access: &RegistryAccess,
) -> Result<KeylessVerdict, OracleError> {
    let reference = reference(image)?;
    let root = sigstore::trust::ManualTrustRoot {
        fulcio_certs: trust
            .fulcio_certs
            .iter()
            .map(|c| c.clone().into())
            .collect(),
        rekor_keys: trust.rekor_keys.clone(),
        ctfe_keys: BTreeMap::new(),
    };
    let mut client = ClientBuilder::default()
        .with_oci_client_config(oci_config(access))
        .with_trust_repository(&root)
        .map_err(OracleError::while_("loading the trust material"))?
        .build()
        .map_err(OracleError::while_("building the registry client"))?;
    let layers = client
        .trusted_signature_layers(&auth(access), &reference)
        .await
        .map_err(OracleError::while_(format!(
            "fetching the signatures of {image}"
        )))?;
    let constraints: VerificationConstraintVec = vec![Box::new(CertSubjectEmailVerifier {
        email: StringVerifier::ExactMatch(email.to_string()),
        issuer: Some(StringVerifier::ExactMatch(issuer.to_string())),
    })];
    Ok(KeylessVerdict {
        layers: layers.len(),
        with_trusted_certificate: layers
            .iter()
            .filter(|l| l.certificate_signature.is_some())
            .count(),
        verified: sigstore::cosign::verify_constraints(&layers, constraints.iter()).is_ok(),
    })
}

/// Signs `image` with a cosign key file (`ENCRYPTED SIGSTORE PRIVATE KEY` or `ENCRYPTED COSIGN
/// PRIVATE KEY`) through sigstore-rs and pushes the signature. sigstore-rs replaces the `.sig`
/// image with one holding this one layer (it does not append as cosign does).
pub async fn sign(
    image: &str,
    encrypted_key_pem: &[u8],
    password: &[u8],
    access: &RegistryAccess,
) -> Result<(), OracleError> {
    let reference = reference(image)?;
    let mut client = client(access)?;
    let auth = auth(access);
    let (sig_ref, digest) = client
        .triangulate(&reference, &auth)
        .await
        .map_err(OracleError::while_(format!("resolving {image}")))?;
    let mut layer = SignatureLayer::new_unsigned(&reference, &digest)
        .map_err(OracleError::while_("building the payload"))?;
    let pair = SigStoreKeyPair::from_encrypted_pem(encrypted_key_pem, password)
        .map_err(OracleError::while_("loading the private key"))?;
    let signer = pair
        .to_sigstore_signer(&SigningScheme::default())
        .map_err(OracleError::while_("making a signer of the key"))?;
    PrivateKeySigner::new_with_signer(signer)
        .add_constraint(&mut layer)
        .map_err(OracleError::while_("signing the payload"))?;
    client
        .push_signature(Some(BTreeMap::new()), &auth, &sig_ref, vec![layer])
        .await
        .map_err(OracleError::while_(format!(
            "pushing the signature of {image}"
        )))?;
    Ok(())
}
