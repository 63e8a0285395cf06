//! X.509 chain and identity checks for certificate attestors (the user's Scenario 3): does a
//! signing certificate chain to the policy's roots, carry the code-signing usage, and was it valid
//! when the signature was made?
//!
//! Chains are validated by rustls-webpki (the same code that validates TLS chains here) at a given
//! time; [`CertInfo`] reads what messages and identity checks need.

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crypto::key::{KeyError, PublicKey};
use crate::timestamp::{Rfc3339, unix_time};

/// DER contents of the OID id-kp-codeSigning (1.3.6.1.5.5.7.3.3).
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// What sealgate reads from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject DN, RFC 4514 style.
    pub subject: String,
    /// The issuer DN.
    pub issuer: String,
    /// Subject alternative names: e-mail addresses, URIs, DNS names.
    pub sans: Vec<String>,
    /// Start of the validity period.
    pub not_before: UnixTime,
    /// End of the validity period.
    pub not_after: UnixTime,
    /// The certified public key.
    pub public_key: PublicKey,
}

/// Why a certificate or chain is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Not a parseable certificate.
    #[error("the certificate is not valid DER: {0}")]
    Malformed(String),
    /// Its public key is not one sealgate verifies with.
    #[error("the certificate's public key is unusable: {0}")]
    Key(#[from] KeyError),
    /// No path to a trusted root.
    #[error(
        "the certificate '{subject}' does not chain to the roots in certChain (issuer '{issuer}')"
    )]
    UntrustedIssuer {
        /// The leaf subject.
        subject: String,
        /// The leaf issuer.
        issuer: String,
    },
    /// A certificate of the chain was not valid at the signing time.
    #[error(
        "the certificate '{subject}' was not valid at the signing time {} (valid {} to {})",
        Rfc3339(*at), Rfc3339(*not_before), Rfc3339(*not_after)
    )]
    NotValidAtSigningTime {
        /// The leaf subject.
        subject: String,
        /// The signing time.
        at: UnixTime,
        /// Validity start.
        not_before: UnixTime,
        /// Validity end.
        not_after: UnixTime,
    },
    /// The leaf lacks the code-signing extended key usage.
    #[error(
        "the certificate '{0}' is not for code signing: it lacks the codeSigning extended key usage"
    )]
    NotForCodeSigning(String),
    /// Anything else webpki refuses.
    #[error("the certificate chain of '{subject}' is invalid: {reason}")]
    Invalid {
        /// The leaf subject.
        subject: String,
        /// webpki's reason.
        reason: String,
    },
}

/// Reads a DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, ChainError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| ChainError::Malformed(e.to_string()))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::RFC822Name(s) | GeneralName::URI(s) | GeneralName::DNSName(s) => {
                    sans.push(s.to_string())
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        sans,
        not_before: unix_time(cert.validity().not_before.timestamp()),
        not_after: unix_time(cert.validity().not_after.timestamp()),
        public_key: PublicKey::from_spki_der(cert.tbs_certificate.subject_pki.raw)?,
    })
}

/// What a validated chain tells beyond "it holds".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The DER SubjectPublicKeyInfo of the certificate that issued the leaf (an intermediate or
    /// the root itself): what an embedded SCT's issuer key hash is computed from.
    pub issuer_spki: Vec<u8>,
}

/// Validates `leaf` (with `intermediates` as path hints) up to one of `roots` at `at_unix`. Every
/// certificate of the path that restricts its extended key usage must allow codeSigning; one
/// without the extension allows any use (Go's `x509.Verify`, which cosign uses, does the same).
pub fn verify_code_signing_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    at: UnixTime,
) -> Result<VerifiedChain, ChainError> {
    let info = cert_info(leaf)?;
    // Fulcio certificates have an empty subject DN: name them by their SANs then.
    let name = if info.subject.is_empty() {
        info.sans.join(", ")
    } else {
        info.subject.clone()
    };
    let roots_der: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.as_slice()))
        .collect();
    let anchors = roots_der
        .iter()
        .map(|r| {
            webpki::anchor_from_trusted_cert(r)
                .map_err(|e| ChainError::Malformed(format!("a root in certChain: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_der = CertificateDer::from(leaf);
    let ee = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| ChainError::Malformed(e.to_string()))?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        at,
        webpki::KeyUsage::required_if_present(CODE_SIGNING),
        None,
        None,
    )
    .map(|path| VerifiedChain {
        issuer_spki: path.issuer_spki().as_ref().to_vec(),
    })
    .map_err(|e| match e {
        webpki::Error::UnknownIssuer => ChainError::UntrustedIssuer {
            subject: name.clone(),
            issuer: info.issuer.clone(),
        },
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => {
            ChainError::NotValidAtSigningTime {
                subject: name.clone(),
                at,
                not_before: info.not_before,
                not_after: info.not_after,
            }
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => ChainError::NotForCodeSigning(name.clone()),
        other => ChainError::Invalid {
            subject: name.clone(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, ImageManifest};
    use crate::crypto::pem;

    const CONNAISSEUR_SIG: &[u8] = include_bytes!("../../testdata/connaisseur/sig-manifest.json");
    /// The Rekor integrated time of the connaisseur signature: inside the leaf's 10 minutes.
    fn signed_at(extra: u64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_717_082_297 + extra))
    }

    fn fulcio() -> (Vec<u8>, Vec<Vec<u8>>) {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        let l = &m.layers[0];
        let leaf = pem::parse_blocks(l.annotation(CERTIFICATE_ANNOTATION).unwrap())
            .unwrap()
            .remove(0)
            .der;
        let chain = pem::parse_blocks(l.annotation(CHAIN_ANNOTATION).unwrap())
            .unwrap()
            .into_iter()
            .map(|b| b.der)
            .collect();
        (leaf, chain)
    }

    #[test]
    fn a_real_fulcio_leaf_chains_to_its_root_at_signing_time() {
        let (leaf, chain) = fulcio();
        let info = cert_info(&leaf).unwrap();
        assert_eq!(
            info.sans,
            vec!["philipp.belitz@securesystems.de".to_string()]
        );
        assert!(info.not_before <= signed_at(0) && signed_at(0) <= info.not_after);
        let (intermediate, root) = (chain[..1].to_vec(), chain[1..].to_vec());
        verify_code_signing_chain(&leaf, &intermediate, &root, signed_at(0)).unwrap();
    }

    /// A generated CA → leaf, with the leaf's extended key usage `eku`.
    fn generated(eku: Vec<rcgen::ExtendedKeyUsagePurpose>) -> (Vec<u8>, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(vec!["signer".to_string()]).unwrap();
        leaf.extended_key_usages = eku;
        let leaf = leaf.signed_by(&KeyPair::generate().unwrap(), &ca).unwrap();
        (leaf.der().to_vec(), ca.der().to_vec())
    }

    #[test]
    fn extended_key_usage_must_allow_code_signing_when_present() {
        use rcgen::ExtendedKeyUsagePurpose::{CodeSigning, ServerAuth};
        let now = crate::timestamp::unix_time(1_795_000_000);
        for (eku, ok) in [
            (vec![CodeSigning], true),
            (vec![], true),
            (vec![ServerAuth], false),
        ] {
            let (leaf, root) = generated(eku.clone());
            let result = verify_code_signing_chain(&leaf, &[], &[root], now);
            assert_eq!(result.is_ok(), ok, "{eku:?}: {result:?}");
            if !ok {
                assert!(matches!(result, Err(ChainError::NotForCodeSigning(_))));
            }
        }
    }

    #[test]
    fn the_same_leaf_an_hour_later_or_with_another_root_fails() {
        let (leaf, chain) = fulcio();
        let (intermediate, root) = (chain[..1].to_vec(), chain[1..].to_vec());
        let late =
            verify_code_signing_chain(&leaf, &intermediate, &root, signed_at(3600)).unwrap_err();
        assert!(
            matches!(late, ChainError::NotValidAtSigningTime { .. }),
            "{late}"
        );
        assert!(
            late.to_string()
                .contains("was not valid at the signing time 2024-05-30T16:18:17Z"),
            "{late}"
        );
        // The intermediate as the only root works (it is a CA); the leaf's own key as root does not.
        verify_code_signing_chain(&leaf, &[], &intermediate, signed_at(0)).unwrap();
        let wrong =
            verify_code_signing_chain(&leaf, &[], std::slice::from_ref(&leaf), signed_at(0))
                .unwrap_err();
        assert!(
            matches!(
                wrong,
                ChainError::UntrustedIssuer { .. } | ChainError::Invalid { .. }
            ),
            "{wrong}"
        );
    }
}
