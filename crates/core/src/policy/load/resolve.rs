//! Attestor fields that hold variables (`publicKeys: "{{ keys.data.pub }}"`): resolved from the
//! rule's context, then compiled as if written. A variable that does not resolve, or a value
//! that is not a valid key or certificate, is never a load error: the attestor gets an error
//! result (denied under Enforce) with the field, the variable, where its value comes from and
//! why.

use crate::crypto::key::SignatureHash;
use crate::policy::compiled::{Attestor, AttestorKind, KeyAttestor, KeySource};
use crate::policy::model;
use crate::policy::path::JsonPath;
use crate::policy::unsupported::Unsupported;
use crate::policy::variables::{RuleContext, VariableError, has_variables};
use std::sync::Arc;

use serde_json::Value;

use super::DocumentLoader;

/// The variable-bearing string fields of an attestor entry, with their paths.
fn fields<'m>(
    attestor: &'m mut model::Attestor,
    path: &JsonPath,
) -> Vec<(JsonPath, &'m mut Option<String>)> {
    let mut out: Vec<(JsonPath, &mut Option<String>)> = Vec::new();
    let logs = |out: &mut Vec<(JsonPath, &'m mut Option<String>)>,
                base: &JsonPath,
                rekor: &'m mut Option<model::Rekor>,
                ctlog: &'m mut Option<model::CtLog>| {
        if let Some(rekor) = rekor {
            out.push((base.field("rekor").field("pubkey"), &mut rekor.pubkey));
        }
        if let Some(ctlog) = ctlog {
            out.push((base.field("ctlog").field("pubkey"), &mut ctlog.pubkey));
        }
    };
    if let Some(keys) = &mut attestor.keys {
        let base = path.field("keys");
        out.push((base.field("publicKeys"), &mut keys.public_keys));
        logs(&mut out, &base, &mut keys.rekor, &mut keys.ctlog);
    }
    if let Some(certs) = &mut attestor.certificates {
        let base = path.field("certificates");
        out.push((base.field("cert"), &mut certs.cert));
        out.push((base.field("certChain"), &mut certs.cert_chain));
        logs(&mut out, &base, &mut certs.rekor, &mut certs.ctlog);
    }
    if let Some(keyless) = &mut attestor.keyless {
        let base = path.field("keyless");
        out.push((base.field("subject"), &mut keyless.subject));
        out.push((base.field("issuer"), &mut keyless.issuer));
        out.push((base.field("roots"), &mut keyless.roots));
        logs(&mut out, &base, &mut keyless.rekor, &mut keyless.ctlog);
    }
    out.retain(|(_, v)| v.as_deref().is_some_and(has_variables));
    out
}

/// The expression of a field that is one variable (for messages).
fn expression_of(text: &str) -> String {
    text.trim()
        .trim_start_matches("{{")
        .trim_end_matches("}}")
        .trim()
        .to_string()
}

impl DocumentLoader<'_> {
    /// The compiled attestors of an entry whose fields hold variables; `None` when none does.
    pub(super) fn resolve_attestor(
        &mut self,
        attestor: &model::Attestor,
        path: &JsonPath,
        expand_keys: bool,
    ) -> Option<Vec<Attestor>> {
        let mut resolved = attestor.clone();
        let context = self
            .rule_context
            .clone()
            .unwrap_or_else(|| RuleContext::build(&[], self.values));
        let mut written = Vec::new();
        let fields = fields(&mut resolved, path);
        if !self.per_request
            && fields.iter().any(|(_, v)| {
                self.defer_all_variables
                    || v.as_deref().is_some_and(|t| context.text_reads_request(t))
            })
        {
            // Known only per request: compiled again for each one (see `instance`).
            self.entry_reads_request = true;
            return Some(vec![self.unresolved(
                attestor,
                path,
                "the attestor's variables are resolved per request; this one was not".into(),
            )]);
        }
        for (field_path, value) in fields {
            let text = value.clone().unwrap_or_default();
            let is_key = field_path.last_field() == Some("publicKeys");
            let result = context.substitute(&text).and_then(|v| match v {
                // A key from a variable must be PEM text: a reference there is a mistake, not
                // something to warn about and skip.
                Value::String(s) if is_key && !s.contains("-----BEGIN") => {
                    Err(VariableError::NotResolved {
                        expression: expression_of(&text),
                        source_text: context.source_of(&text),
                        reason:
                            "the value is not a PEM public key (no -----BEGIN PUBLIC KEY----- line)"
                                .into(),
                    })
                }
                Value::String(s) => Ok(s),
                other => Err(VariableError::NotResolved {
                    expression: expression_of(&text),
                    source_text: context.source_of(&text),
                    reason: format!("the value is not text but {other}"),
                }),
            });
            match result {
                Ok(s) => {
                    written.push((field_path, text));
                    *value = Some(s);
                }
                Err(e) => {
                    return Some(vec![self.unresolved(
                        attestor,
                        path,
                        format!("{}: {e}", self.real_path(&field_path)),
                    )]);
                }
            }
        }
        if written.is_empty() {
            return None;
        }
        // Compiled as written; its errors are the attestor's result, not the policy's.
        let errors_before = self.errors.len();
        let out = self.compile_attestor_as_written(&resolved, path, expand_keys);
        if self.errors.len() == errors_before {
            return Some(out);
        }
        let problems: Vec<String> = self
            .errors
            .drain(errors_before..)
            .map(|e| e.kind.to_string())
            .collect();
        let variables: Vec<String> = written
            .iter()
            .map(|(field, text)| format!("{field}: `{}`{}", text.trim(), context.source_of(text)))
            .collect();
        let message = format!("{}: {}", variables.join(", "), problems.join("; "));
        Some(vec![self.unresolved(attestor, path, message)])
    }

    /// The rule's context when the strings of conditions (`variables`, with their paths: an
    /// attestation's `conditions`, an entry's `validate.deny`) read it: a request variable
    /// (`{{ request.object.metadata.labels.team }}`), a `context` entry or a given value, beside
    /// what the statements add. Strings that read the request make the entry one compiled per
    /// request (see `instance`), where the context holds the request; at load they get none.
    /// `None` when they read nothing of the rule's context.
    pub(super) fn context_read_by(
        &mut self,
        variables: &[(JsonPath, String)],
    ) -> Option<Arc<Value>> {
        let context = self.rule_context.as_ref()?;
        if !variables.iter().any(|(_, t)| context.text_reads_context(t)) {
            return None;
        }
        if !self.per_request
            && (self.defer_all_variables
                || variables.iter().any(|(_, t)| context.text_reads_request(t)))
        {
            self.entry_reads_request = true;
            return None;
        }
        Some(Arc::new(context.values()))
    }

    /// The first of `variables` (strings with their paths) that reads a context entry with no
    /// value, as the error result it makes: the path, the variable, where its value comes from
    /// and why.
    pub(super) fn entry_with_no_value_read_by(
        &self,
        variables: &[(JsonPath, String)],
    ) -> Option<Unsupported> {
        let context = self.rule_context.as_ref()?;
        variables.iter().find_map(|(field, text)| {
            let why = context.missing_entry_read_by(text)?;
            Some(Unsupported::Variable {
                message: format!("{}: {why}", self.real_path(field)),
            })
        })
    }

    /// An attestor that cannot be evaluated: its variables do not give a usable key.
    fn unresolved(&self, attestor: &model::Attestor, path: &JsonPath, message: String) -> Attestor {
        let written = attestor
            .keys
            .as_ref()
            .and_then(|k| k.public_keys.clone())
            .or_else(|| attestor.certificates.as_ref().and_then(|c| c.cert.clone()))
            .unwrap_or_default();
        Attestor::new(
            AttestorKind::Key(KeyAttestor {
                key: KeySource::Reference(written),
                hash: SignatureHash::Sha256,
                rekor: Default::default(),
                ctlog: Default::default(),
            }),
            attestor.annotations.clone(),
            Some(attestor.repository.clone()).filter(|r| !r.is_empty()),
            path.clone(),
            None,
        )
        .cannot_evaluate(Unsupported::Variable { message })
    }
}
