//! Compiling a verifyImages entry's `attestations[]`: the predicate type, the attestor sets
//! (not expanded, as in Kyverno; none written is Kyverno's implicit `{entries: [{}]}`), and the
//! `conditions`, parsed here so that a bad operator is a located load error.

use serde_json::Value;

use crate::image::digest::{Digest, hex_encode};
use crate::policy::compiled::{
    Attestation, Attestor, AttestorKind, AttestorSet, CtLogSettings, Fingerprint, KeylessAttestor,
    RekorSettings,
};
use crate::policy::conditions::ConditionBlocks;
use crate::policy::error::{PolicyErrorKind, PolicyWarningKind};
use crate::policy::model;
use crate::policy::path::JsonPath;

use super::DocumentLoader;
use super::validate::strings_with_variables;

impl DocumentLoader<'_> {
    /// One `attestations[i]` at `path`; `None` (with the errors recorded) when it cannot be
    /// compiled.
    pub(super) fn compile_attestation(
        &mut self,
        a: &model::Attestation,
        path: &JsonPath,
        keep_predicate: bool,
    ) -> Option<Attestation> {
        let errors_before = self.errors.len();
        let written_type = a.predicate_type_name.clone().filter(|t| !t.is_empty());
        let deprecated_type = a.predicate_type.clone().filter(|t| !t.is_empty());
        if written_type.is_none()
            && let Some(t) = &deprecated_type
        {
            self.warn(
                &path.field("predicateType"),
                PolicyWarningKind::DeprecatedPredicateType(t.clone()),
            );
        }
        let Some(predicate_type) = written_type.or(deprecated_type) else {
            self.error(&path.field("type"), PolicyErrorKind::AttestationTypeMissing);
            return None;
        };
        let conditions_path = path.field("conditions");
        let raw = Value::Array(a.conditions.clone());
        let mut variables = Vec::new();
        strings_with_variables(&raw, &conditions_path, &mut variables);
        let mut sets = Vec::new();
        for (k, set) in a.attestors.iter().enumerate() {
            if let Some(set) = self.compile_set(set, &path.field("attestors").index(k), false) {
                sets.push(set);
            }
        }
        if a.attestors.is_empty() {
            self.warn(path, PolicyWarningKind::AttestationWithoutAttestors);
            sets.push(implicit_set(path));
        }
        let conditions = match ConditionBlocks::parse(&raw, &conditions_path) {
            Ok(blocks) => {
                for field in blocks.ignored_fields() {
                    let name = field.last_field().unwrap_or_default().to_string();
                    self.warn(field, PolicyWarningKind::IgnoredConditionField(name));
                }
                Some(blocks)
            }
            Err(errors) => {
                for e in errors {
                    self.error(e.path(), PolicyErrorKind::Conditions(e.reason()));
                }
                None
            }
        };
        if self.errors.len() > errors_before {
            return None;
        }
        let name = a.name.clone().filter(|n| !n.is_empty());
        let context = self.context_read_by(&variables);
        let keeps_predicate = keep_predicate && name.is_some();
        if let Some(why) = self.entry_with_no_value_read_by(&variables) {
            // Kyverno fails the rule when a context entry cannot be loaded: every attestor of
            // the attestation is an error result saying which entry and why.
            for set in &mut sets {
                for attestor in &mut set.entries {
                    *attestor = attestor.clone().cannot_evaluate(why.clone());
                }
            }
        }
        // Debug quoting keeps `None`, `""` and texts holding `|` apart. The context enters as
        // its digest: the same conditions over another request's values are another outcome.
        let mut fingerprint = format!("type={predicate_type:?}|name={name:?}|conditions={raw}");
        if keeps_predicate {
            fingerprint.push_str("|keeps-predicate");
        }
        if let Some(context) = &context {
            let json = serde_json::to_vec(context.as_ref()).unwrap_or_default();
            fingerprint.push_str("|context=");
            fingerprint.push_str(&hex_encode(&Digest::sha256_of(&json).bytes()));
        }
        Some(Attestation {
            name,
            predicate_type,
            attestors: sets,
            conditions: conditions?,
            keeps_predicate,
            context,
            path: path.clone(),
            fingerprint: Fingerprint::new(fingerprint),
        })
    }
}

/// Kyverno's `{entries: [{}]}` for an attestation without attestors: no key, certificate or
/// identity, so cosign verifies it as keyless against the Fulcio roots, with a transparency-log
/// proof required from the signature's Rekor bundle (no Rekor URL) and no SCT check.
fn implicit_set(path: &JsonPath) -> AttestorSet {
    let set_path = path.field("attestors").index(0);
    let entry_path = set_path.field("entries").index(0);
    let keyless = KeylessAttestor {
        rekor: RekorSettings {
            url: None,
            public_key: None,
            ignore_tlog: false,
            written: true,
        },
        ctlog: CtLogSettings {
            ignore_sct: true,
            ..CtLogSettings::default()
        },
        ..KeylessAttestor::default()
    };
    let attestor = Attestor::new(
        AttestorKind::Keyless(keyless),
        Default::default(),
        None,
        entry_path,
        None,
    );
    AttestorSet {
        count: None,
        entries: vec![attestor],
        path: set_path,
    }
}
