//! X.509 chain and identity checks for certificate attestors (the user's Scenario 3): does a
//! signing certificate chain to the policy's roots, carry the code-signing usage, and was it valid
//! when the signature was made?
//!
//! Chains are validated by rustls-webpki (the same code that validates TLS chains here) at a given
//! time; [`CertInfo`] reads what messages and identity checks need. [`LinkMemo`] remembers the
//! signatures by which a trust anchor certified one of its own CA certificates, so that a chain
//! through that CA costs one signature check instead of two (see [`verify_code_signing_chain_memo`]).

use std::collections::VecDeque;
use std::sync::Mutex;

use ring::digest::{Context, SHA256};
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm, UnixTime,
};
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
    verify_chain(leaf, intermediates, roots, at, None)
}

/// [`verify_code_signing_chain`] with `memo`: when the path goes through one of `ca_certs` (a CA
/// certificate of a trusted root, such as Fulcio's `sigstore-intermediate`) and the root that
/// signed it, the signature by which the root certified it is checked once and remembered in
/// `memo`; every later chain through the same two certificates checks only the signatures below
/// (the leaf's, always).
///
/// Nothing else is remembered, and nothing else changes: webpki builds and checks the whole path
/// every time — every certificate's validity at `at`, basic constraints, path length, name
/// constraints, the codeSigning usage — and only asks the memo, in place of the cryptography,
/// whether this exact signature verifies. Signature verification is a pure function of the key,
/// the algorithm, the signed bytes and the signature, and the memo is keyed by the SHA-256 of
/// all of them together with the full DER of the root and of the CA certificate, so a hit is a
/// verification that was made, and succeeded, on the same bytes.
pub fn verify_code_signing_chain_memo(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    at: UnixTime,
    memo: &LinkMemo,
    ca_certs: &[Vec<u8>],
) -> Result<VerifiedChain, ChainError> {
    verify_chain(leaf, intermediates, roots, at, Some((memo, ca_certs)))
}

fn verify_chain(
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    roots: &[Vec<u8>],
    at: UnixTime,
    memo: Option<(&LinkMemo, &[Vec<u8>])>,
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
    let anchor;
    let memoised: Vec<Memoised<'_>>;
    let memoised_refs: Vec<&dyn SignatureVerificationAlgorithm>;
    // One root (the CA's own, as the keyless check passes it): the links it signs may be
    // remembered. With several roots, or one x509-parser cannot read, check everything.
    let one_anchor = match (memo, roots) {
        (Some((memo, ca_certs)), [root]) => Anchor::of(root).map(|a| (memo, ca_certs, a)),
        _ => None,
    };
    let algorithms = match one_anchor {
        Some((memo, ca_certs, a)) => {
            anchor = a;
            memoised = webpki::ALL_VERIFICATION_ALGS
                .iter()
                .map(|inner| Memoised {
                    inner: *inner,
                    memo,
                    anchor: &anchor,
                    ca_certs,
                })
                .collect();
            memoised_refs = memoised
                .iter()
                .map(|m| m as &dyn SignatureVerificationAlgorithm)
                .collect();
            &memoised_refs[..]
        }
        None => webpki::ALL_VERIFICATION_ALGS,
    };
    ee.verify_for_usage(
        algorithms,
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

/// How many links a [`LinkMemo`] keeps: a trusted root has a handful of CAs, and only the
/// certificates of its own CA chains are ever remembered.
const LINK_MEMO_CAPACITY: usize = 64;

/// Signatures by which a trust anchor certified one of its CA certificates, already verified:
/// each the SHA-256 of the root's DER, the CA certificate's DER and the exact inputs of the
/// verification (algorithm, key, signed bytes, signature). Bounded (the oldest goes first), pure
/// (no clock, no I/O), shared between threads. A clone starts empty: it is a cache, not data.
#[derive(Default)]
pub struct LinkMemo {
    verified: Mutex<VecDeque<[u8; 32]>>,
}

impl LinkMemo {
    /// How many verified links it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<[u8; 32]>> {
        // The lock only guards lookups and inserts of digests: a panic elsewhere cannot leave it
        // half-written.
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        self.lock().contains(key)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut verified = self.lock();
        if !verified.contains(&key) {
            if verified.len() == LINK_MEMO_CAPACITY {
                verified.pop_front();
            }
            verified.push_back(key);
        }
    }
}

impl Clone for LinkMemo {
    fn clone(&self) -> LinkMemo {
        LinkMemo::default()
    }
}

impl std::fmt::Debug for LinkMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LinkMemo({} links)", self.len())
    }
}

/// The root of a memoised chain check: its DER and the `subjectPublicKey` bits webpki hands to
/// signature checks made with its key.
#[derive(Debug)]
struct Anchor<'a> {
    der: &'a [u8],
    key: Vec<u8>,
}

impl<'a> Anchor<'a> {
    fn of(der: &'a [u8]) -> Option<Anchor<'a>> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        Some(Anchor {
            der,
            key: cert
                .tbs_certificate
                .subject_pki
                .subject_public_key
                .data
                .to_vec(),
        })
    }
}

/// A webpki signature algorithm that answers from a [`LinkMemo`] for one kind of signature only:
/// made with the anchor's key over the TBS of one of `ca_certs`. Every other signature — the
/// leaf's above all — goes to `inner` (ring) every time.
#[derive(Debug)]
struct Memoised<'a> {
    inner: &'static dyn SignatureVerificationAlgorithm,
    memo: &'a LinkMemo,
    anchor: &'a Anchor<'a>,
    ca_certs: &'a [Vec<u8>],
}

impl Memoised<'_> {
    /// The memo key of this verification, when it is one the memo may answer.
    fn link_key(&self, public_key: &[u8], message: &[u8], signature: &[u8]) -> Option<[u8; 32]> {
        if public_key != self.anchor.key.as_slice() {
            return None;
        }
        // `message` is the TBSCertificate (tag and length included) of the certificate being
        // checked; a leaf never has the TBS of a CA certificate (webpki refuses a CA as end
        // entity, and the same TBS with the same signature would be the same certificate).
        let ca = self
            .ca_certs
            .iter()
            .find(|ca| tbs_of(ca) == Some(message))?;
        let mut digest = Context::new(&SHA256);
        for part in [
            b"sealgate chain link v1".as_slice(),
            self.anchor.der,
            ca,
            self.inner.signature_alg_id().as_ref(),
            self.inner.public_key_alg_id().as_ref(),
            public_key,
            message,
            signature,
        ] {
            digest.update(&(part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.finish().as_ref().try_into().ok()
    }
}

impl SignatureVerificationAlgorithm for Memoised<'_> {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let Some(key) = self.link_key(public_key, message, signature) else {
            return self.inner.verify_signature(public_key, message, signature);
        };
        if self.memo.contains(&key) {
            return Ok(());
        }
        self.inner
            .verify_signature(public_key, message, signature)?;
        self.memo.insert(key);
        Ok(())
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.public_key_alg_id()
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.inner.signature_alg_id()
    }

    fn fips(&self) -> bool {
        self.inner.fips()
    }
}

/// The TBSCertificate element (tag and length included) of a DER certificate: the first element
/// inside its outer SEQUENCE.
fn tbs_of(der: &[u8]) -> Option<&[u8]> {
    let (header, _) = der_header(der)?;
    let inner = der.get(header..)?;
    let (tbs_header, tbs_len) = der_header(inner)?;
    inner.get(..tbs_header.checked_add(tbs_len)?)
}

/// The header length and content length of the DER element starting `der` (definite lengths up to
/// four bytes, as certificates use).
fn der_header(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let len = der
        .get(2..2 + n)?
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((2 + n, len))
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

    /// The connaisseur leaf, the Fulcio intermediate and root, split as the keyless check passes
    /// them: the CA's intermediate, then the signature's chain annotation, as the path.
    fn fulcio_path() -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
        let (leaf, chain) = fulcio();
        let mut path = chain[..1].to_vec();
        path.extend(chain.iter().cloned());
        (leaf, path, chain[1].clone())
    }

    #[test]
    fn the_memo_remembers_the_intermediate_link_and_checks_the_rest_every_time() {
        let (leaf, path, root) = fulcio_path();
        let roots = std::slice::from_ref(&root);
        let ca_certs = &path[..1];
        let memo = LinkMemo::default();
        let uncached = verify_code_signing_chain(&leaf, &path, roots, signed_at(0)).unwrap();
        for _ in 0..3 {
            let memoised =
                verify_code_signing_chain_memo(&leaf, &path, roots, signed_at(0), &memo, ca_certs)
                    .unwrap();
            assert_eq!(memoised, uncached);
            // One link: the intermediate under the root; never the leaf's.
            assert_eq!(memo.len(), 1);
        }
        // A clone is a fresh cache.
        assert!(memo.clone().is_empty());

        // With the link remembered: a leaf whose signature is broken still fails...
        let mut broken = leaf.clone();
        let last = broken.len() - 1;
        broken[last] ^= 1;
        let err =
            verify_code_signing_chain_memo(&broken, &path, roots, signed_at(0), &memo, ca_certs)
                .unwrap_err();
        assert!(
            matches!(err, ChainError::Invalid { .. } | ChainError::Malformed(_)),
            "{err}"
        );
        // ...so does the leaf an hour after its validity...
        let late =
            verify_code_signing_chain_memo(&leaf, &path, roots, signed_at(3600), &memo, ca_certs)
                .unwrap_err();
        assert!(
            matches!(late, ChainError::NotValidAtSigningTime { .. }),
            "{late}"
        );
        // ...and a copy of the intermediate with the same TBS but another signature, offered as
        // the only path: the memo is keyed by the signature too, so ring checks it and refuses.
        let mut forged = path[0].clone();
        let last = forged.len() - 1;
        forged[last] ^= 1;
        let forged_path = vec![forged];
        let err = verify_code_signing_chain_memo(
            &leaf,
            &forged_path,
            roots,
            signed_at(0),
            &memo,
            ca_certs,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ChainError::Invalid { .. } | ChainError::UntrustedIssuer { .. }
            ),
            "{err}"
        );
        assert_eq!(memo.len(), 1);
        // Another root (here the intermediate itself) shares nothing with the remembered link.
        verify_code_signing_chain_memo(&leaf, &[], &path[..1], signed_at(0), &memo, &[]).unwrap();
        assert_eq!(memo.len(), 1);
    }

    /// root → intermediate (valid in 2025 only) → leaf with extended key usage `eku`.
    fn generated_chain(eku: Vec<rcgen::ExtendedKeyUsagePurpose>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            date_time_ymd,
        };
        let ca_params = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p
        };
        let root =
            CertifiedIssuer::self_signed(ca_params("root"), KeyPair::generate().unwrap()).unwrap();
        let mut inter = ca_params("intermediate");
        inter.not_before = date_time_ymd(2025, 1, 1);
        inter.not_after = date_time_ymd(2026, 1, 1);
        let inter = CertifiedIssuer::signed_by(inter, KeyPair::generate().unwrap(), &root).unwrap();
        let mut leaf = CertificateParams::new(vec!["signer".to_string()]).unwrap();
        leaf.extended_key_usages = eku;
        leaf.not_before = date_time_ymd(2025, 1, 1);
        leaf.not_after = date_time_ymd(2030, 1, 1);
        let leaf = leaf
            .signed_by(&KeyPair::generate().unwrap(), &inter)
            .unwrap();
        (
            leaf.der().to_vec(),
            inter.der().to_vec(),
            root.der().to_vec(),
        )
    }

    #[test]
    fn a_remembered_link_still_needs_the_intermediate_valid_and_the_leaf_for_code_signing() {
        use rcgen::ExtendedKeyUsagePurpose::{CodeSigning, ServerAuth};
        let june_2025 = crate::timestamp::unix_time(1_750_000_000);
        let june_2027 = crate::timestamp::unix_time(1_813_000_000);
        let (leaf, inter, root) = generated_chain(vec![CodeSigning]);
        let memo = LinkMemo::default();
        let chain = |leaf: &[u8], at| {
            verify_code_signing_chain_memo(
                leaf,
                std::slice::from_ref(&inter),
                std::slice::from_ref(&root),
                at,
                &memo,
                std::slice::from_ref(&inter),
            )
        };
        chain(&leaf, june_2025).unwrap();
        assert_eq!(memo.len(), 1);
        // The leaf is valid in 2027, the intermediate is not: refused, memo or not.
        let err = chain(&leaf, june_2027).unwrap_err();
        assert!(
            matches!(err, ChainError::NotValidAtSigningTime { .. }),
            "{err}"
        );
        // A server-auth leaf of a chain whose link was remembered is refused as ever.
        let (server, other_inter, other_root) = generated_chain(vec![ServerAuth]);
        let other = |leaf: &[u8]| {
            verify_code_signing_chain_memo(
                leaf,
                std::slice::from_ref(&other_inter),
                std::slice::from_ref(&other_root),
                june_2025,
                &memo,
                std::slice::from_ref(&other_inter),
            )
        };
        let err = other(&server).unwrap_err();
        assert!(matches!(err, ChainError::NotForCodeSigning(_)), "{err}");
        assert_eq!(
            memo.len(),
            1,
            "webpki refuses the usage before any signature"
        );
    }
}
