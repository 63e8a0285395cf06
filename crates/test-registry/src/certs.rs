//! A throw-away certificate authority and a server certificate for the test registry.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The common name of the generated CA.
pub const CA_COMMON_NAME: &str = "sealgate test CA";
/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "localhost", "registry.company.com"];

/// PEM text of a CA certificate, and of a server certificate and key it signed.
#[derive(Debug)]
pub(crate) struct TlsFiles {
    pub(crate) ca_pem: String,
    pub(crate) server_cert_pem: String,
    pub(crate) server_key_pem: String,
}

/// Generates a fresh CA and a server certificate for [`SERVER_NAMES`].
pub(crate) fn generate() -> Result<TlsFiles, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut server_params = CertificateParams::new(SERVER_NAMES.map(str::to_string).to_vec())?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, "sealgate test registry");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server_params.signed_by(&server_key, &ca)?;

    Ok(TlsFiles {
        ca_pem: ca.pem(),
        server_cert_pem: server_cert.pem(),
        server_key_pem: server_key.serialize_pem(),
    })
}
