//! Keys and certificates pasted into policies: where a key comes from (PEM, Secret, KMS), and
//! PEM forensics that locate a damaged line at its file line.

use crate::crypto::cert::{self, Certificate};
use crate::crypto::key::{PUBLIC_KEY_LABEL, PublicKey};
use crate::crypto::pem::{self, PemErrorKind};
use crate::policy::compiled::KeySource;
use crate::policy::error::{Base64Damage, PolicyErrorKind, PolicyWarningKind};
use crate::policy::model;
use crate::policy::path::JsonPath;

use super::DocumentLoader;

impl DocumentLoader<'_> {
    /// The keys of a `keys` block, in Kyverno's precedence: publicKeys, secret, kms.
    pub(super) fn key_sources(
        &mut self,
        keys: &model::StaticKeyAttestor,
        path: &JsonPath,
        expand: bool,
    ) -> Option<Vec<KeySource>> {
        let public_keys = keys.public_keys.as_deref().filter(|k| !k.trim().is_empty());
        let kms = keys.kms.as_deref().filter(|k| !k.trim().is_empty());
        if let Some(text) = public_keys {
            let trimmed = text.trim();
            let pk_path = path.field("publicKeys");
            if text.contains("-----BEGIN") {
                let keys = self.pem_keys(text, &pk_path)?;
                if !expand && keys.len() > 1 {
                    self.warn(&pk_path, PolicyWarningKind::KeysNotExpanded(keys.len()));
                    return Some(keys.into_iter().take(1).map(KeySource::Pem).collect());
                }
                return Some(keys.into_iter().map(KeySource::Pem).collect());
            }
            if let Some(reference) = trimmed.strip_prefix("k8s://") {
                return match reference.split_once('/') {
                    Some((namespace, name))
                        if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
                    {
                        // Read from the Secret by `serve --kubernetes`; elsewhere the image gets
                        // an error result saying so (no warning: the policy is right).
                        Some(vec![KeySource::Secret {
                            namespace: namespace.to_string(),
                            name: name.to_string(),
                        }])
                    }
                    _ => {
                        self.error(
                            &pk_path,
                            PolicyErrorKind::BadSecretReference(trimmed.to_string()),
                        );
                        None
                    }
                };
            }
            if KMS_SCHEMES.iter().any(|s| trimmed.starts_with(s)) {
                self.warn(
                    &pk_path,
                    PolicyWarningKind::UnsupportedKeySource("KMS keys"),
                );
                return Some(vec![KeySource::Kms(trimmed.to_string())]);
            }
            self.warn(
                &pk_path,
                PolicyWarningKind::UnsupportedKeySource("key references other than PEM text"),
            );
            return Some(vec![KeySource::Reference(trimmed.to_string())]);
        }
        if let Some(secret) = &keys.secret {
            return Some(vec![KeySource::Secret {
                namespace: secret.namespace.clone(),
                name: secret.name.clone(),
            }]);
        }
        if let Some(kms) = kms {
            self.warn(
                &path.field("kms"),
                PolicyWarningKind::UnsupportedKeySource("KMS keys"),
            );
            return Some(vec![KeySource::Kms(kms.trim().to_string())]);
        }
        self.error(path, PolicyErrorKind::KeyRequired);
        None
    }

    /// Splits PEM text into blocks. A non-base64 line (a comment, a placeholder) is reported and
    /// parsing goes on without it, so that one run shows every problem; other PEM defects end
    /// it (`None`). Returns the blocks and the text they were read from.
    fn recover_blocks(
        &mut self,
        text: &str,
        path: &JsonPath,
        what: PemContent,
    ) -> Option<(Vec<pem::PemBlock>, String)> {
        let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
        for _ in 0..=lines.len() {
            let current = lines.join("\n");
            let e = match pem::parse_blocks(&current) {
                Ok(blocks) => return Some((blocks, current)),
                Err(e) => e,
            };
            match e.kind {
                PemErrorKind::NotBase64 { content } if e.line >= 1 && e.line <= lines.len() => {
                    self.error_in_text(
                        path,
                        text,
                        e.line,
                        PolicyErrorKind::PemCommentLine {
                            line: e.line,
                            content,
                        },
                    );
                    lines[e.line - 1] = String::new();
                }
                PemErrorKind::BadBase64 { label, reason } => {
                    let damage = diagnose_base64(&lines, e.line, what);
                    let kind = match damage {
                        Some(damage) => PolicyErrorKind::DamagedBase64(damage),
                        None => PolicyErrorKind::BadPem {
                            line: e.line,
                            kind: PemErrorKind::BadBase64 { label, reason },
                        },
                    };
                    let line = match &kind {
                        PolicyErrorKind::DamagedBase64(d) => d.line,
                        _ => e.line,
                    };
                    self.error_in_text(path, text, line, kind);
                    return None;
                }
                kind => {
                    self.error_in_text(
                        path,
                        text,
                        e.line,
                        PolicyErrorKind::BadPem { line: e.line, kind },
                    );
                    return None;
                }
            }
        }
        None
    }

    /// Reports non-blank lines of `publicKeys` outside PEM blocks; true if there were any.
    fn text_outside_blocks(
        &mut self,
        text: &str,
        blocks: &[pem::PemBlock],
        path: &JsonPath,
    ) -> bool {
        let inside = |line: usize| {
            blocks.iter().any(|b| {
                let end = b.begin_line + b.text.lines().count().saturating_sub(1);
                (b.begin_line..=end).contains(&line)
            })
        };
        let mut found = false;
        for (i, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            if !trimmed.is_empty() && !inside(i + 1) {
                self.error_in_text(
                    path,
                    text,
                    i + 1,
                    PolicyErrorKind::TextOutsidePem {
                        line: i + 1,
                        content: trimmed.to_string(),
                    },
                );
                found = true;
            }
        }
        found
    }

    pub(super) fn pem_keys(&mut self, text: &str, path: &JsonPath) -> Option<Vec<PublicKey>> {
        let errors_before = self.errors.len();
        let (blocks, _) = self.recover_blocks(text, path, PemContent::PublicKey)?;
        self.text_outside_blocks(text, &blocks, path);
        if blocks.is_empty() {
            self.error_in_text(
                path,
                text,
                1,
                PolicyErrorKind::BadPem {
                    line: 1,
                    kind: PemErrorKind::NoBlock {
                        expected: PUBLIC_KEY_LABEL.into(),
                    },
                },
            );
        }
        let mut keys = Vec::new();
        for block in blocks {
            if block.label != PUBLIC_KEY_LABEL {
                self.error_in_text(
                    path,
                    text,
                    block.begin_line,
                    PolicyErrorKind::NotAPublicKey {
                        line: block.begin_line,
                        label: block.label,
                    },
                );
                continue;
            }
            match PublicKey::from_spki_der(&block.der) {
                Ok(key) => keys.push(key),
                Err(reason) => self.error_in_text(
                    path,
                    text,
                    block.begin_line,
                    PolicyErrorKind::BadKey {
                        line: block.begin_line,
                        reason,
                    },
                ),
            }
        }
        (self.errors.len() == errors_before).then_some(keys)
    }

    /// Parses certificate PEM (or Kyverno's base64 of PEM), reporting comment lines and parsing
    /// on without them. `None` if anything was wrong.
    pub(super) fn certificates(&mut self, text: &str, path: &JsonPath) -> Option<Vec<Certificate>> {
        if !text.contains("-----BEGIN") {
            return match cert::parse_pem_certificates(text) {
                Ok(certs) => Some(certs),
                Err(e) => {
                    self.error(path, PolicyErrorKind::BadCertificate(e));
                    None
                }
            };
        }
        let errors_before = self.errors.len();
        let (_, cleaned) = self.recover_blocks(text, path, PemContent::Certificate)?;
        match cert::parse_pem_certificates(&cleaned) {
            Ok(certs) => (self.errors.len() == errors_before).then_some(certs),
            Err(e) => {
                let line = e.line().unwrap_or(1);
                self.error_in_text(path, text, line, PolicyErrorKind::BadCertificate(e));
                None
            }
        }
    }
}

const KMS_SCHEMES: [&str; 4] = ["awskms://", "gcpkms://", "azurekms://", "hashivault://"];

/// What a PEM field holds, for diagnosing damaged base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PemContent {
    PublicKey,
    Certificate,
}

/// Why the base64 body of the block whose BEGIN line is `begin_line` does not decode: the
/// first body line whose length differs from the others' (PEM lines all have one length but the
/// last), and what the body would be if decoded anyway.
fn diagnose_base64(lines: &[String], begin_line: usize, what: PemContent) -> Option<Base64Damage> {
    use base64::Engine;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

    let body: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .skip(begin_line)
        .map(|(i, l)| (i + 1, l.trim()))
        .take_while(|(_, l)| !l.starts_with("-----END"))
        .filter(|(_, l)| !l.is_empty() && !l.contains(':'))
        .collect();
    let (_, first) = body.first()?;
    let expected = first.len();
    let (line, length) = body
        .iter()
        .enumerate()
        .find(|(i, (_, l))| {
            let last = *i + 1 == body.len();
            if last {
                l.len() > expected
            } else {
                l.len() != expected
            }
        })
        .map(|(_, (line, l))| (*line, l.len()))?;
    let mut joined: String = body.iter().map(|(_, l)| *l).collect();
    let joined_len = joined.trim_end_matches('=').len();
    joined.truncate(joined_len - usize::from(joined_len % 4 == 1));
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded_anyway = lenient
        .decode(joined.as_bytes())
        .ok()
        .map(|der| match what {
            PemContent::PublicKey => PublicKey::from_spki_der(&der)
                .err()
                .map(|e| format!("not a valid public key either ({e})")),
            PemContent::Certificate => x509_parser::parse_x509_certificate(&der).err().map(|e| {
                format!(
                    "not valid DER either ({})",
                    cert::der_problem(&e.to_string())
                )
            }),
        });
    Some(Base64Damage {
        line,
        length,
        expected,
        decoded_anyway: decoded_anyway.flatten(),
    })
}
