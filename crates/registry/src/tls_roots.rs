//! Which registry certificates the client trusts, and what that costs at start-up.
//!
//! Trusted: the Mozilla roots built into the binary (webpki-roots), the CA files given with
//! `--registry-ca`, and the operating system's store. Reading the system store costs a few
//! milliseconds on every process start (on Debian it opens about 150 files), which is a fifth of a
//! whole `sealgate verify`. So it is read only when a server certificate does not chain to the
//! first two: public registries and registries named by `--registry-ca` never pay for it, and a
//! private CA installed system-wide is still trusted, exactly as before.

use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::Error;

/// A rustls client configuration over the ring provider with the lazy trust described above,
/// offering HTTP/2 and HTTP/1.1.
pub(crate) fn client_config(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = LazySystemRoots::new(extra_roots, provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::ClientSetup(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Verifies with the built-in and extra roots; on an unknown issuer, once more with the system
/// store added (loaded on first need, then kept).
#[derive(Debug)]
struct LazySystemRoots {
    primary: Arc<WebPkiServerVerifier>,
    extra_roots: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    with_system: OnceLock<Option<Arc<WebPkiServerVerifier>>>,
}

fn verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, Error> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| Error::ClientSetup(format!("TLS certificate verifier: {e}")))
}

fn base_roots(extra: &[CertificateDer<'static>]) -> RootCertStore {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // CA files were checked when read; one that is not a usable anchor is skipped as rustls does.
    let _ = roots.add_parsable_certificates(extra.iter().cloned());
    roots
}

impl LazySystemRoots {
    fn new(
        extra_roots: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<LazySystemRoots, Error> {
        Ok(LazySystemRoots {
            primary: verifier(base_roots(&extra_roots), &provider)?,
            extra_roots,
            provider,
            with_system: OnceLock::new(),
        })
    }

    fn system(&self) -> Option<&Arc<WebPkiServerVerifier>> {
        self.with_system
            .get_or_init(|| {
                let mut roots = base_roots(&self.extra_roots);
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return None;
                }
                verifier(roots, &self.provider).ok()
            })
            .as_ref()
    }
}

impl ServerCertVerifier for LazySystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.primary.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                match self.system() {
                    Some(system) => system.verify_server_cert(
                        end_entity,
                        intermediates,
                        server_name,
                        ocsp_response,
                        now,
                    ),
                    None => Err(rustls::Error::InvalidCertificate(
                        CertificateError::UnknownIssuer,
                    )),
                }
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.primary.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.primary.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.primary.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_store_is_not_read_until_needed() {
        let v = LazySystemRoots::new(
            Vec::new(),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .unwrap();
        assert!(v.with_system.get().is_none());
        let config = client_config(Vec::new()).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }
}
