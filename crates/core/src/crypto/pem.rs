//! PEM blocks, parsed strictly enough to say which line is wrong.
//!
//! Policies paste PEM text into YAML, and users paste the wrong thing (comments, placeholders,
//! truncated keys). [`parse_blocks`] therefore reports the 1-based line of the text where a block
//! goes wrong, and what the line holds, instead of "invalid PEM".

use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

/// Go's `base64.StdEncoding` ignores non-zero bits after the last symbol; so must we, or keys that
/// Kyverno reads would be refused here for the wrong reason.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label, e.g. `PUBLIC KEY` or `CERTIFICATE`.
    pub label: String,
    /// The decoded body.
    pub der: Vec<u8>,
    /// 1-based line of the text holding the BEGIN line.
    pub begin_line: usize,
    /// The block's text from BEGIN to END, inclusive.
    pub text: String,
}

/// What is wrong with a PEM text, and on which line (1-based, counted in the text given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct PemError {
    /// 1-based line within the text.
    pub line: usize,
    /// What is wrong.
    pub kind: PemErrorKind,
}

/// What is wrong with a PEM text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemErrorKind {
    /// There is no BEGIN line at all.
    #[error("no PEM block found: expected a '-----BEGIN {expected}-----' line")]
    NoBlock {
        /// The label looked for (or a generic description).
        expected: String,
    },
    /// A BEGIN line without its END line.
    #[error("'-----BEGIN {label}-----' has no matching '-----END {label}-----' line")]
    Unterminated {
        /// The label of the open block.
        label: String,
    },
    /// END names another label than BEGIN.
    #[error("'-----END {end}-----' closes a '-----BEGIN {begin}-----' block")]
    MismatchedEnd {
        /// Label at BEGIN.
        begin: String,
        /// Label at END.
        end: String,
    },
    /// A body line holds something that is not base64.
    #[error(
        "'{content}' is not base64: a PEM block holds only base64 lines between BEGIN and END (remove comments and placeholders)"
    )]
    NotBase64 {
        /// The offending line, trimmed.
        content: String,
    },
    /// The body lines are base64 characters but do not decode (wrong length or padding).
    #[error(
        "the base64 body of '{label}' does not decode ({reason}): the block is truncated or was edited"
    )]
    BadBase64 {
        /// The block label.
        label: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// An empty body.
    #[error("the '{label}' block is empty")]
    Empty {
        /// The block label.
        label: String,
    },
    /// A block with an unexpected label.
    #[error("expected a '{expected}' block, found '{found}'")]
    WrongLabel {
        /// Wanted.
        expected: String,
        /// Found.
        found: String,
    },
}

fn begin_label(line: &str) -> Option<&str> {
    line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

fn end_label(line: &str) -> Option<&str> {
    line.strip_prefix("-----END ")?.strip_suffix("-----")
}

fn is_base64_line(line: &str) -> bool {
    line.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored (as Go's `pem.Decode`
/// does); inside a block every line must be base64, except RFC 1421 `Name: value` headers
/// directly after BEGIN.
pub fn parse_blocks(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let Some(label) = begin_label(lines[i].trim()) else {
            i += 1;
            continue;
        };
        let begin = i;
        let mut body = String::new();
        let mut in_headers = true;
        i += 1;
        let mut closed = false;
        while i < lines.len() {
            let line = lines[i].trim();
            if let Some(end) = end_label(line) {
                if end != label {
                    return Err(PemError {
                        line: i + 1,
                        kind: PemErrorKind::MismatchedEnd {
                            begin: label.into(),
                            end: end.into(),
                        },
                    });
                }
                closed = true;
                break;
            }
            if begin_label(line).is_some() {
                return Err(PemError {
                    line: begin + 1,
                    kind: PemErrorKind::Unterminated {
                        label: label.into(),
                    },
                });
            }
            if in_headers && line.contains(':') && !line.is_empty() {
                // RFC 1421 header such as `Proc-Type: 4,ENCRYPTED`.
                i += 1;
                continue;
            }
            if !line.is_empty() {
                in_headers = false;
            }
            if !is_base64_line(line) {
                return Err(PemError {
                    line: i + 1,
                    kind: PemErrorKind::NotBase64 {
                        content: line.into(),
                    },
                });
            }
            body.push_str(line);
            i += 1;
        }
        if !closed {
            return Err(PemError {
                line: begin + 1,
                kind: PemErrorKind::Unterminated {
                    label: label.into(),
                },
            });
        }
        if body.is_empty() {
            return Err(PemError {
                line: begin + 1,
                kind: PemErrorKind::Empty {
                    label: label.into(),
                },
            });
        }
        let der = LENIENT.decode(body.as_bytes()).map_err(|e| PemError {
            line: begin + 1,
            kind: PemErrorKind::BadBase64 {
                label: label.into(),
                reason: e.to_string(),
            },
        })?;
        blocks.push(PemBlock {
            label: label.to_string(),
            der,
            begin_line: begin + 1,
            text: lines[begin..=i]
                .iter()
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n"),
        });
        i += 1;
    }
    Ok(blocks)
}

/// The single block with `label` in `text`; other labels are an error.
pub fn parse_one(text: &str, label: &str) -> Result<PemBlock, PemError> {
    let mut blocks = parse_blocks(text)?;
    if blocks.is_empty() {
        return Err(PemError {
            line: 1,
            kind: PemErrorKind::NoBlock {
                expected: label.into(),
            },
        });
    }
    let block = blocks.swap_remove(0);
    if block.label != label {
        return Err(PemError {
            line: block.begin_line,
            kind: PemErrorKind::WrongLabel {
                expected: label.into(),
                found: block.label,
            },
        });
    }
    Ok(block)
}

/// Encodes `der` as a PEM block with 64-character lines and a trailing newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_KEY: &str = "-----BEGIN PUBLIC KEY-----\n# Paste the cosign.pub content here\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----";

    #[test]
    fn a_comment_inside_a_block_names_its_line() {
        let err = parse_blocks(SEED_KEY).unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(
            err.to_string(),
            "line 2: '# Paste the cosign.pub content here' is not base64: a PEM block holds only base64 lines between BEGIN and END (remove comments and placeholders)"
        );
    }

    #[test]
    fn round_trip_and_several_blocks() {
        let a = encode("PUBLIC KEY", &[1, 2, 3]);
        let b = encode("CERTIFICATE", &[4; 100]);
        let text = format!("junk before\n{a}between\n  {b}");
        let blocks = parse_blocks(&text).unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].der, vec![1, 2, 3]);
        assert_eq!(blocks[0].begin_line, 2);
        assert_eq!(blocks[1].label, "CERTIFICATE");
        assert_eq!(blocks[1].der, vec![4; 100]);
        assert_eq!(parse_one(&a, "PUBLIC KEY").unwrap().der, vec![1, 2, 3]);
        assert!(matches!(
            parse_one(&b, "PUBLIC KEY").unwrap_err().kind,
            PemErrorKind::WrongLabel { .. }
        ));
    }

    #[test]
    fn broken_blocks() {
        let unterminated = "-----BEGIN PUBLIC KEY-----\nAAAA\n";
        assert!(matches!(
            parse_blocks(unterminated).unwrap_err().kind,
            PemErrorKind::Unterminated { .. }
        ));
        let mismatched = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END CERTIFICATE-----";
        assert!(matches!(
            parse_blocks(mismatched).unwrap_err().kind,
            PemErrorKind::MismatchedEnd { .. }
        ));
        let bad_len = "-----BEGIN PUBLIC KEY-----\nAAAAA\n-----END PUBLIC KEY-----";
        assert!(matches!(
            parse_blocks(bad_len).unwrap_err().kind,
            PemErrorKind::BadBase64 { .. }
        ));
        assert!(matches!(
            parse_one("nothing", "PUBLIC KEY").unwrap_err().kind,
            PemErrorKind::NoBlock { .. }
        ));
        let empty = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----";
        assert!(matches!(
            parse_blocks(empty).unwrap_err().kind,
            PemErrorKind::Empty { .. }
        ));
    }
}
