//! X.509 certificates pasted into policies (`certificates.cert`, `certChain`, keyless `roots`,
//! `ctlog.tsaCertChain`).
//!
//! For now this only reads them: [`parse_pem_certificates`] turns PEM text (or Kyverno's
//! base64-of-PEM form) into [`Certificate`]s whose DER is known to parse, and says which block
//! is wrong when one does not. Chain and identity checks live elsewhere.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::pem::{self, PemError};

/// PEM label of certificates.
pub const CERTIFICATE_LABEL: &str = "CERTIFICATE";

/// One X.509 certificate: DER that x509-parser accepts, and its PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    pem: String,
    begin_line: usize,
}

impl Certificate {
    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM block, BEGIN to END.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// 1-based line of the BEGIN line in the text it was read from.
    pub fn begin_line(&self) -> usize {
        self.begin_line
    }
}

/// Why certificate text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The PEM text is broken (a comment line, a truncated block…).
    #[error("{0}")]
    Pem(#[from] PemError),
    /// A block's base64 decodes, but not to an X.509 certificate.
    #[error("the CERTIFICATE block at line {line} is not valid DER: {reason}")]
    NotDer {
        /// 1-based line of the block's BEGIN line.
        line: usize,
        /// The parser's complaint.
        reason: String,
    },
    /// A block with another label (`PUBLIC KEY`, `PRIVATE KEY`…).
    #[error("the block at line {line} is a '{label}', not a CERTIFICATE")]
    UnexpectedBlock {
        /// 1-based line of the block's BEGIN line.
        line: usize,
        /// Its label.
        label: String,
    },
    /// No PEM block at all.
    #[error(
        "no certificate found: expected PEM text starting with '-----BEGIN CERTIFICATE-----' (or that text base64-encoded)"
    )]
    NoCertificate,
    /// The text was base64 of PEM, and that PEM is broken.
    #[error("in the base64-encoded PEM: {0}")]
    InEncodedPem(Box<CertError>),
}

impl CertError {
    /// The 1-based line of the text the error is about, when it has one.
    pub fn line(&self) -> Option<usize> {
        match self {
            CertError::Pem(e) => Some(e.line),
            CertError::NotDer { line, .. } | CertError::UnexpectedBlock { line, .. } => Some(*line),
            CertError::NoCertificate | CertError::InEncodedPem(_) => None,
        }
    }
}

/// Every certificate in `text`, in order. `text` is PEM with one or more `CERTIFICATE` blocks
/// (text between blocks is ignored, comments inside a block are not), or Kyverno's alternative
/// for `cert`: the base64 encoding of such PEM text.
pub fn parse_pem_certificates(text: &str) -> Result<Vec<Certificate>, CertError> {
    if !text.contains("-----BEGIN") {
        let compact: String = text.split_whitespace().collect();
        if !compact.is_empty()
            && let Ok(decoded) = STANDARD.decode(compact.as_bytes())
            && let Ok(inner) = String::from_utf8(decoded)
            && inner.contains("-----BEGIN")
        {
            return parse_pem_blocks(&inner).map_err(|e| CertError::InEncodedPem(Box::new(e)));
        }
        return Err(CertError::NoCertificate);
    }
    parse_pem_blocks(text)
}

fn parse_pem_blocks(text: &str) -> Result<Vec<Certificate>, CertError> {
    let blocks = pem::parse_blocks(text)?;
    if blocks.is_empty() {
        return Err(CertError::NoCertificate);
    }
    blocks
        .into_iter()
        .map(|block| {
            if block.label != CERTIFICATE_LABEL {
                return Err(CertError::UnexpectedBlock {
                    line: block.begin_line,
                    label: block.label,
                });
            }
            match x509_parser::parse_x509_certificate(&block.der) {
                Ok(([], _)) => Ok(Certificate {
                    der: block.der,
                    pem: block.text,
                    begin_line: block.begin_line,
                }),
                Ok((rest, _)) => Err(CertError::NotDer {
                    line: block.begin_line,
                    reason: format!("{} bytes follow the certificate", rest.len()),
                }),
                Err(e) => Err(CertError::NotDer {
                    line: block.begin_line,
                    reason: der_problem(&e.to_string()),
                }),
            }
        })
        .collect()
}

/// x509-parser's complaint, in words where it has a terse one.
pub(crate) fn der_problem(parser_message: &str) -> String {
    if parser_message.contains("Eof") || parser_message.contains("Incomplete") {
        "it ends before the certificate does: it is truncated".to_string()
    } else {
        parser_message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::pem::PemErrorKind;

    fn self_signed() -> String {
        // A tiny self-signed certificate made once with rcgen (P-256, CN=sealgate test).
        include_str!("../../testdata/policies/certs/test-cert.pem").to_string()
    }

    #[test]
    fn parses_one_and_several_certificates() {
        let pem = self_signed();
        let certs = parse_pem_certificates(&pem).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].begin_line(), 1);
        assert!(certs[0].pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let two = format!("# chain\n{pem}{pem}");
        let certs = parse_pem_certificates(&two).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].begin_line(), 2);
        assert_eq!(certs[0].der(), certs[1].der());
    }

    #[test]
    fn accepts_base64_of_pem() {
        let pem = self_signed();
        let encoded = STANDARD.encode(pem.as_bytes());
        let certs = parse_pem_certificates(&encoded).unwrap();
        assert_eq!(certs.len(), 1);
        let broken =
            STANDARD.encode(b"-----BEGIN CERTIFICATE-----\n# x\n-----END CERTIFICATE-----\n");
        let err = parse_pem_certificates(&broken).unwrap_err();
        assert!(matches!(err, CertError::InEncodedPem(_)));
        assert!(
            err.to_string()
                .starts_with("in the base64-encoded PEM: line 2:")
        );
    }

    #[test]
    fn reports_non_der_content() {
        let text = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = parse_pem_certificates(text).unwrap_err();
        assert_eq!(err.line(), Some(1));
        assert!(
            err.to_string()
                .starts_with("the CERTIFICATE block at line 1 is not valid DER: "),
            "{err}"
        );
    }

    #[test]
    fn reports_comments_wrong_blocks_and_nothing() {
        let text = "-----BEGIN CERTIFICATE-----\n# replace me\nAAAA\n-----END CERTIFICATE-----";
        let err = parse_pem_certificates(text).unwrap_err();
        assert!(matches!(
            err,
            CertError::Pem(PemError {
                line: 2,
                kind: PemErrorKind::NotBase64 { .. }
            })
        ));
        let key = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----";
        assert_eq!(
            parse_pem_certificates(key).unwrap_err().to_string(),
            "the block at line 1 is a 'PUBLIC KEY', not a CERTIFICATE"
        );
        assert_eq!(
            parse_pem_certificates("nothing here").unwrap_err(),
            CertError::NoCertificate
        );
        assert_eq!(
            parse_pem_certificates("").unwrap_err(),
            CertError::NoCertificate
        );
    }
}
