//! A throw-away code-signing PKI, for signing with certificates as the user's Scenario 3 does
//! (`sign --key leaf.key --cert leaf.pem --cert-chain chain.pem`).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A root CA, an intermediate CA and a code-signing leaf, as PEM text.
#[derive(Debug, Clone)]
pub struct CodeSigningPki {
    /// The root CA certificate.
    pub root_pem: String,
    /// The intermediate CA certificate (issued by the root).
    pub intermediate_pem: String,
    /// The leaf certificate (issued by the intermediate; EKU codeSigning).
    pub leaf_pem: String,
    /// The leaf's private key, PKCS#8 PEM (`PRIVATE KEY`), ECDSA P-256.
    pub leaf_key_pem: String,
}

impl CodeSigningPki {
    /// Generates a fresh PKI whose names start with `org`.
    pub fn generate(org: &str) -> CodeSigningPki {
        let ca = |name: String, issuer: Option<&CertifiedIssuer<'static, KeyPair>>| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("CA key");
            match issuer {
                None => CertifiedIssuer::self_signed(params, key).expect("self-signed root"),
                Some(i) => CertifiedIssuer::signed_by(params, key, i).expect("intermediate"),
            }
        };
        let root = ca(format!("{org} root CA"), None);
        let intermediate = ca(format!("{org} signing CA"), Some(&root));
        let mut leaf_params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        leaf_params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, format!("{org} release signing"));
        leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = leaf_params
            .signed_by(&leaf_key, &intermediate)
            .expect("leaf certificate");
        CodeSigningPki {
            root_pem: root.pem(),
            intermediate_pem: intermediate.pem(),
            leaf_pem: leaf.pem(),
            leaf_key_pem: leaf_key.serialize_pem(),
        }
    }

    /// The chain cosign's `--cert-chain` wants: intermediate, then root.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.intermediate_pem, self.root_pem)
    }
}
