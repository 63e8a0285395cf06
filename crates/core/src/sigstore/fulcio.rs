//! The identity in a Fulcio certificate: who signed (the subject alternative names) and who
//! vouched for them (the OIDC issuer and the other Fulcio extensions under 1.3.6.1.4.1.57264.1).
//!
//! [`CertIdentity::read`] reads them as cosign and Kyverno do: the SANs in the order of sigstore's
//! `cryptoutils.GetSubjectAlternateNames` (DNS names, e-mail addresses, IP addresses, URIs, then
//! Fulcio's otherName SAN 1.3.6.1.4.1.57264.1.7), the issuer from the DER extension
//! 1.3.6.1.4.1.57264.1.8 or, in older certificates, the raw legacy extension
//! 1.3.6.1.4.1.57264.1.1, and the GitHub workflow extensions .1.2 to .1.6 as their raw values (what
//! cosign's `CertExtensions` compares).

use std::collections::BTreeMap;

use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crypto::chain::ChainError;

/// The legacy OIDC issuer extension (raw string value).
pub const OIDC_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// The OIDC issuer extension (DER UTF8String value).
pub const OIDC_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Fulcio's otherName SAN type (a username, DER UTF8String).
pub const OTHER_NAME_SAN: &str = "1.3.6.1.4.1.57264.1.7";

/// The `additionalExtensions` keys Kyverno knows (`extractCertExtensionValue`): each by its cosign
/// name or its OID, with the OID it reads.
pub const KYVERNO_EXTENSIONS: [(&str, &str); 6] = [
    ("oidcIssuer", OIDC_ISSUER_V1),
    ("githubWorkflowTrigger", "1.3.6.1.4.1.57264.1.2"),
    ("githubWorkflowSha", "1.3.6.1.4.1.57264.1.3"),
    ("githubWorkflowName", "1.3.6.1.4.1.57264.1.4"),
    ("githubWorkflowRepository", "1.3.6.1.4.1.57264.1.5"),
    ("githubWorkflowRef", "1.3.6.1.4.1.57264.1.6"),
];

/// The OID an `additionalExtensions` key names (`githubWorkflowTrigger` or
/// `1.3.6.1.4.1.57264.1.2`), `None` for a key Kyverno refuses.
pub fn extension_oid(key: &str) -> Option<&'static str> {
    KYVERNO_EXTENSIONS
        .iter()
        .find(|(name, oid)| *name == key || *oid == key)
        .map(|(_, oid)| *oid)
}

/// The cosign name of a Fulcio extension OID, for messages.
pub fn extension_name(oid: &str) -> Option<&'static str> {
    KYVERNO_EXTENSIONS
        .iter()
        .find(|(_, o)| *o == oid)
        .map(|(name, _)| *name)
}

/// Who a certificate says signed, and who vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Subject alternative names, in `GetSubjectAlternateNames` order.
    pub sans: Vec<String>,
    /// The OIDC issuer: extension .1.8, else the legacy .1.1.
    pub issuer: Option<String>,
    /// The raw values of extensions .1.1 to .1.6, by OID.
    extensions: BTreeMap<&'static str, String>,
}

impl CertIdentity {
    /// Reads the identity of a DER certificate.
    pub fn read(der: &[u8]) -> Result<CertIdentity, ChainError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| ChainError::Malformed(e.to_string()))?;
        let (mut dns, mut email, mut ip, mut uri, mut other) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), None);
        let mut issuer_v2 = None;
        let mut extensions = BTreeMap::new();
        for ext in cert.extensions() {
            let oid = ext.oid.to_id_string();
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(s) => dns.push(s.to_string()),
                        GeneralName::RFC822Name(s) => email.push(s.to_string()),
                        GeneralName::IPAddress(bytes) => ip.extend(ip_text(bytes)),
                        GeneralName::URI(s) => uri.push(s.to_string()),
                        GeneralName::OtherName(type_id, value)
                            if type_id.to_id_string() == OTHER_NAME_SAN && other.is_none() =>
                        {
                            other = other_name_value(value);
                        }
                        _ => {}
                    }
                }
            } else if oid == OIDC_ISSUER_V2 {
                issuer_v2 = utf8_string(ext.value);
            } else if let Some((_, known)) = KYVERNO_EXTENSIONS.iter().find(|(_, o)| *o == oid) {
                extensions.insert(*known, String::from_utf8_lossy(ext.value).into_owned());
            }
        }
        let mut sans = dns;
        sans.append(&mut email);
        sans.append(&mut ip);
        sans.append(&mut uri);
        sans.extend(other);
        let issuer = issuer_v2.or_else(|| extensions.get(OIDC_ISSUER_V1).cloned());
        Ok(CertIdentity {
            sans,
            issuer,
            extensions,
        })
    }

    /// The value of the Fulcio extension `oid` (one of [`KYVERNO_EXTENSIONS`]); the OIDC issuer
    /// extension reads as [`CertIdentity::issuer`].
    pub fn extension(&self, oid: &str) -> Option<&str> {
        if oid == OIDC_ISSUER_V1 {
            return self.issuer.as_deref();
        }
        self.extensions.get(oid).map(String::as_str)
    }
}

/// Go's `net.IP.String()` of a SAN IP address.
fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            let v6 = std::net::Ipv6Addr::from(a);
            // Go prints IPv4-mapped addresses in dotted form.
            Some(match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            })
        }
        _ => None,
    }
}

/// A DER UTF8String's text.
fn utf8_string(der: &[u8]) -> Option<String> {
    let (tag, contents) = der_contents(der)?;
    (tag == 0x0c)
        .then(|| String::from_utf8(contents.to_vec()).ok())
        .flatten()
}

/// The UTF8String in an otherName value (`[0] EXPLICIT UTF8String`, with or without the
/// explicit tag, as parsers hand it over).
fn other_name_value(value: &[u8]) -> Option<String> {
    match der_contents(value)? {
        (0xa0, inner) => utf8_string(inner),
        (0x0c, _) => utf8_string(value),
        _ => None,
    }
}

/// The tag and contents of one DER element filling `der`.
fn der_contents(der: &[u8]) -> Option<(u8, &[u8])> {
    match super::sct::read_tlv(der)? {
        (tlv, []) => Some((tlv.tag, tlv.contents)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::{CERTIFICATE_ANNOTATION, ImageManifest};
    use crate::crypto::pem;

    const CONNAISSEUR_SIG: &[u8] = include_bytes!("../../testdata/connaisseur/sig-manifest.json");

    fn connaisseur_leaf() -> Vec<u8> {
        let m = ImageManifest::parse(CONNAISSEUR_SIG).unwrap();
        pem::parse_blocks(m.layers[0].annotation(CERTIFICATE_ANNOTATION).unwrap())
            .unwrap()
            .remove(0)
            .der
    }

    #[test]
    fn the_connaisseur_certificate_names_its_email_and_github_issuer() {
        let id = CertIdentity::read(&connaisseur_leaf()).unwrap();
        assert_eq!(id.sans, ["philipp.belitz@securesystems.de"]);
        assert_eq!(id.issuer.as_deref(), Some("https://github.com/login/oauth"));
        // The legacy extension holds the same issuer, raw.
        assert_eq!(
            id.extensions.get(OIDC_ISSUER_V1).map(String::as_str),
            Some("https://github.com/login/oauth")
        );
        assert_eq!(id.extension(OIDC_ISSUER_V1), id.issuer.as_deref());
        assert_eq!(id.extension("1.3.6.1.4.1.57264.1.5"), None);
    }

    #[test]
    fn kyverno_extension_keys_are_names_or_oids() {
        assert_eq!(
            extension_oid("githubWorkflowTrigger"),
            Some("1.3.6.1.4.1.57264.1.2")
        );
        assert_eq!(
            extension_oid("1.3.6.1.4.1.57264.1.6"),
            Some("1.3.6.1.4.1.57264.1.6")
        );
        assert_eq!(extension_oid("oidcIssuer"), Some(OIDC_ISSUER_V1));
        // Kyverno maps no newer extension (.1.8 and up) and no other name.
        assert_eq!(extension_oid("1.3.6.1.4.1.57264.1.9"), None);
        assert_eq!(extension_oid("buildSignerURI"), None);
        assert_eq!(
            extension_name("1.3.6.1.4.1.57264.1.4"),
            Some("githubWorkflowName")
        );
    }

    /// A certificate with every kind of SAN and the GitHub extensions, made with rcgen: the SANs
    /// come out in Go's order whatever the certificate's, the issuer from .1.8 over .1.1.
    #[test]
    fn sans_in_go_order_and_issuer_v2_over_v1() {
        use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![
            SanType::URI(
                "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main"
                    .try_into()
                    .unwrap(),
            ),
            SanType::Rfc822Name("dev@example.com".try_into().unwrap()),
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
            SanType::DnsName("signer.example.com".try_into().unwrap()),
        ];
        let oid = |last: u64| vec![1, 3, 6, 1, 4, 1, 57264, 1, last];
        let mut v2 = vec![0x0c, 27];
        v2.extend_from_slice(b"https://issuer.example.com/");
        params.custom_extensions = vec![
            CustomExtension::from_oid_content(&oid(1), b"https://legacy.example.com".to_vec()),
            CustomExtension::from_oid_content(&oid(2), b"push".to_vec()),
            CustomExtension::from_oid_content(&oid(5), b"org/repo".to_vec()),
            CustomExtension::from_oid_content(&oid(8), v2),
        ];
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        let id = CertIdentity::read(cert.der()).unwrap();
        assert_eq!(
            id.sans,
            [
                "signer.example.com",
                "dev@example.com",
                "10.0.0.1",
                "https://github.com/org/repo/.github/workflows/ci.yml@refs/heads/main"
            ]
        );
        assert_eq!(id.issuer.as_deref(), Some("https://issuer.example.com/"));
        assert_eq!(id.extension("1.3.6.1.4.1.57264.1.2"), Some("push"));
        assert_eq!(id.extension("1.3.6.1.4.1.57264.1.5"), Some("org/repo"));
        assert_eq!(
            id.extension(OIDC_ISSUER_V1),
            Some("https://issuer.example.com/")
        );
    }

    #[test]
    fn other_name_values_with_and_without_the_explicit_tag() {
        let utf8 = [0x0c, 3, b'b', b'o', b'b'];
        assert_eq!(other_name_value(&utf8).as_deref(), Some("bob"));
        let mut explicit = vec![0xa0, 5];
        explicit.extend_from_slice(&utf8);
        assert_eq!(other_name_value(&explicit).as_deref(), Some("bob"));
        assert_eq!(other_name_value(&[0x04, 1, 0]), None);
        assert_eq!(utf8_string(&[0x0c, 5, b'x']), None);
    }
}
