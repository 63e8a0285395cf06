//! Kyverno conditions (`preconditions`, attestation `conditions`): `any`/`all` blocks of
//! `key`/`operator`/`value` statements over variables.
//!
//! Pure: no I/O, no clock, no global state. [`Conditions::parse`] reads a rule's
//! `preconditions` as written (an `{any, all}` object, or the legacy plain list where every
//! condition must hold); [`ConditionBlocks::parse`] reads a verifyImages attestation's
//! `conditions` (a list of `{any, all}` objects, all of which must hold). Evaluation takes a
//! JSON object of variables and follows Kyverno HEAD (`pkg/engine/variables/evaluate.go`,
//! `pkg/engine/variables/operator/`, `pkg/engine/pattern/`), including its oddities:
//!
//! * `any` present (even `any: []`) holds when one of its conditions holds; `all` when every
//!   one does; both present: both must hold; neither: the block holds. In attestation
//!   conditions `any: []` counts as absent (Kyverno re-encodes them with `omitempty`).
//! * Operator names are case-sensitive at load (Kyverno's policy validation; its runtime
//!   lookup is case-insensitive but never sees another spelling). `Equal`/`NotEqual` are
//!   accepted in preconditions only: the CRD's enum rejects them in attestation conditions.
//! * Type mismatches give `false`, never an error; the one Kyverno crash (the deprecated
//!   `In`/`NotIn` with a list key holding a non-string, a Go panic) is an
//!   [`EvaluationError`].
//! * Numbers follow Go's: a JSON integer is Go's `int64`, anything else `float64`; a literal
//!   top-level number is a `float64` (Kyverno round-trips it through `encoding/json`).
//! * A variable that does not resolve is an [`EvaluationError`] (Kyverno: "failed to
//!   substitute variables in condition key: … Unknown key …"), never a null or empty value.
//!   Preconditions resolve lazily, condition by condition, so a variable in a condition
//!   that is never reached (after an `any` condition held, after an `all` condition failed)
//!   is never an error. Attestation conditions resolve every variable (messages included)
//!   before evaluating anything, then each evaluated condition a second time.
//! * The failure message: the messages of the conditions that failed, empty ones skipped,
//!   joined with `"; "`; a rule whose preconditions fail is skipped with
//!   `"preconditions not met"` followed by `"; "` and that message when there is one
//!   ([`ConditionsOutcome::skip_message`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

use serde_json::{Map, Number, Value};

use crate::image::wildcard;

use super::go_duration::{self, SECOND};
use super::go_float::{self, TWO_63};
use super::path::JsonPath;
use super::quantity::{self, Quantity};
use super::semver::Version;
use super::variables::{self, Context, VariableError};

#[cfg(test)]
#[path = "conditions_tests.rs"]
mod tests;

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

/// A condition's `operator`, as Kyverno HEAD accepts them (`kyvernov1.ConditionOperators`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `Equals`: same value; a string value is a wildcard pattern; quantities and durations
    /// compare by amount.
    Equals,
    /// `NotEquals`.
    NotEquals,
    /// `In` (deprecated: use `AnyIn` or `AllIn`).
    In,
    /// `AnyIn`: some key item is in the value set.
    AnyIn,
    /// `AllIn`: every key item is in the value set.
    AllIn,
    /// `NotIn` (deprecated: use `AnyNotIn` or `AllNotIn`).
    NotIn,
    /// `AnyNotIn`: some key item is not in the value set.
    AnyNotIn,
    /// `AllNotIn`: no key item is in the value set.
    AllNotIn,
    /// `GreaterThanOrEquals`: numbers, quantities, durations, semantic versions.
    GreaterThanOrEquals,
    /// `GreaterThan`.
    GreaterThan,
    /// `LessThanOrEquals`.
    LessThanOrEquals,
    /// `LessThan`.
    LessThan,
    /// `DurationGreaterThanOrEquals` (deprecated: `GreaterThanOrEquals` compares durations).
    DurationGreaterThanOrEquals,
    /// `DurationGreaterThan` (deprecated).
    DurationGreaterThan,
    /// `DurationLessThanOrEquals` (deprecated).
    DurationLessThanOrEquals,
    /// `DurationLessThan` (deprecated).
    DurationLessThan,
    /// `Equal`: the deprecated spelling of `Equals` (preconditions only).
    Equal,
    /// `NotEqual`: the deprecated spelling of `NotEquals` (preconditions only).
    NotEqual,
}

impl Operator {
    /// Every operator: the CRD's enum order, then the two deprecated spellings.
    pub const ALL: [Operator; 18] = [
        Operator::Equals,
        Operator::NotEquals,
        Operator::In,
        Operator::AnyIn,
        Operator::AllIn,
        Operator::NotIn,
        Operator::AnyNotIn,
        Operator::AllNotIn,
        Operator::GreaterThanOrEquals,
        Operator::GreaterThan,
        Operator::LessThanOrEquals,
        Operator::LessThan,
        Operator::DurationGreaterThanOrEquals,
        Operator::DurationGreaterThan,
        Operator::DurationLessThanOrEquals,
        Operator::DurationLessThan,
        Operator::Equal,
        Operator::NotEqual,
    ];

    /// The name as written in a policy.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Equals => "Equals",
            Operator::NotEquals => "NotEquals",
            Operator::In => "In",
            Operator::AnyIn => "AnyIn",
            Operator::AllIn => "AllIn",
            Operator::NotIn => "NotIn",
            Operator::AnyNotIn => "AnyNotIn",
            Operator::AllNotIn => "AllNotIn",
            Operator::GreaterThanOrEquals => "GreaterThanOrEquals",
            Operator::GreaterThan => "GreaterThan",
            Operator::LessThanOrEquals => "LessThanOrEquals",
            Operator::LessThan => "LessThan",
            Operator::DurationGreaterThanOrEquals => "DurationGreaterThanOrEquals",
            Operator::DurationGreaterThan => "DurationGreaterThan",
            Operator::DurationLessThanOrEquals => "DurationLessThanOrEquals",
            Operator::DurationLessThan => "DurationLessThan",
            Operator::Equal => "Equal",
            Operator::NotEqual => "NotEqual",
        }
    }

    /// The operator named exactly `name` (case-sensitive, as Kyverno validates policies).
    pub fn from_name(name: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|op| op.name() == name)
    }

    /// Whether the CRD's `operator` enum lists it (all but `Equal` and `NotEqual`).
    pub fn in_crd_enum(self) -> bool {
        !matches!(self, Operator::Equal | Operator::NotEqual)
    }

    /// Whether Kyverno documents it as deprecated.
    pub fn is_deprecated(self) -> bool {
        !self.replacements().is_empty()
    }

    /// What to use instead of a deprecated operator (empty for the others).
    pub fn replacements(self) -> &'static [Operator] {
        match self {
            Operator::In => &[Operator::AllIn, Operator::AnyIn],
            Operator::NotIn => &[Operator::AllNotIn, Operator::AnyNotIn],
            Operator::Equal => &[Operator::Equals],
            Operator::NotEqual => &[Operator::NotEquals],
            Operator::DurationGreaterThanOrEquals => &[Operator::GreaterThanOrEquals],
            Operator::DurationGreaterThan => &[Operator::GreaterThan],
            Operator::DurationLessThanOrEquals => &[Operator::LessThanOrEquals],
            Operator::DurationLessThan => &[Operator::LessThan],
            _ => &[],
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// `"PATH: "`, or nothing at the root.
fn at(path: &JsonPath) -> String {
    if path.is_root() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Why a conditions block is not valid (found when the policy is loaded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionsError {
    /// `preconditions` is neither an object nor a list.
    #[error(
        "{}conditions must be an object with `any` and/or `all` lists, or a list of conditions, not {found}",
        at(.path)
    )]
    NotConditions {
        /// Where.
        path: JsonPath,
        /// What was written instead (`a string`, …).
        found: &'static str,
    },
    /// Attestation `conditions` is not a list of objects.
    #[error(
        "{}attestation conditions must be a list of objects with `any` and/or `all` lists, not {found}",
        at(.path)
    )]
    NotBlocks {
        /// Where.
        path: JsonPath,
        /// What was written instead.
        found: &'static str,
    },
    /// `any` or `all` is not a list.
    #[error("{}`{block}` must be a list of conditions, not {found}", at(.path))]
    NotAList {
        /// Where.
        path: JsonPath,
        /// `any` or `all`.
        block: &'static str,
        /// What was written instead.
        found: &'static str,
    },
    /// A condition is not an object.
    #[error(
        "{}a condition must be an object with `key`, `operator` and `value`, not {found}",
        at(.path)
    )]
    NotACondition {
        /// Where.
        path: JsonPath,
        /// What was written instead.
        found: &'static str,
    },
    /// `operator` or `message` is not a string.
    #[error("{}`{field}` must be a string, not {found}", at(.path))]
    NotAString {
        /// Where.
        path: JsonPath,
        /// `operator` or `message`.
        field: &'static str,
        /// What was written instead.
        found: &'static str,
    },
    /// `key`, `value` or `operator` is missing (or null, or an empty operator).
    #[error(
        "{}entered value of `key`, `value` or `operator` is missing or misspelled: {} missing",
        at(.path),
        missing_list(.fields)
    )]
    Missing {
        /// The condition.
        path: JsonPath,
        /// The missing fields, in the order key, operator, value.
        fields: Vec<&'static str>,
    },
    /// An operator Kyverno does not accept here.
    #[error("{}unknown operator `{operator}`: expected one of {}{}", at(.path), .expected, .hint.as_deref().unwrap_or(""))]
    UnknownOperator {
        /// The `operator` field.
        path: JsonPath,
        /// As written.
        operator: String,
        /// The accepted names, comma-separated.
        expected: String,
        /// `; did you mean …` when one is close.
        hint: Option<String>,
    },
    /// A `{{request.operation}}` key compared with something that is not an operation.
    #[error(
        "{}unknown value '{value}' found under the 'value' field. Only the following values are allowed: [CREATE, UPDATE, DELETE, CONNECT]",
        at(.path)
    )]
    UnknownOperation {
        /// The value (or the list item).
        path: JsonPath,
        /// As written.
        value: String,
    },
    /// A `{{request.operation}}` key compared with a value that is neither a string nor a
    /// list of strings.
    #[error(
        "{}a `{{{{request.operation}}}}` key is compared with {found}: the value must be an operation (CREATE, UPDATE, DELETE, CONNECT) or a list of them",
        at(.path)
    )]
    OperationNotText {
        /// The value (or the list item).
        path: JsonPath,
        /// What was written instead.
        found: &'static str,
    },
}

fn missing_list(fields: &[&'static str]) -> String {
    let names: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
    let verb = if names.len() == 1 { "is" } else { "are" };
    format!("{} {verb}", names.join(" and "))
}

impl ConditionsError {
    /// The field the error is about.
    pub fn path(&self) -> &JsonPath {
        match self {
            ConditionsError::NotConditions { path, .. }
            | ConditionsError::NotBlocks { path, .. }
            | ConditionsError::NotAList { path, .. }
            | ConditionsError::NotACondition { path, .. }
            | ConditionsError::NotAString { path, .. }
            | ConditionsError::Missing { path, .. }
            | ConditionsError::UnknownOperator { path, .. }
            | ConditionsError::UnknownOperation { path, .. }
            | ConditionsError::OperationNotText { path, .. } => path,
        }
    }

    /// The message without the leading path (for callers that print the path themselves).
    pub fn reason(&self) -> String {
        let text = self.to_string();
        let prefix = at(self.path());
        text.strip_prefix(&prefix).unwrap_or(&text).to_string()
    }
}

/// Which part of a condition a variable was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// `key`.
    Key,
    /// `value`.
    Value,
    /// `message` (attestation conditions only).
    Message,
}

impl Side {
    /// The field's name.
    pub fn name(self) -> &'static str {
        match self {
            Side::Key => "key",
            Side::Value => "value",
            Side::Message => "message",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why conditions could not be evaluated. Kyverno makes these the rule's error result
/// ("failed to evaluate preconditions: …", "failed to check attestations: …"), not a skip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    /// A variable in a key or value did not resolve (Kyverno errors, it never substitutes
    /// null or an empty string).
    #[error("failed to substitute variables in condition {side} at {path}: {source}")]
    Variable {
        /// The field.
        path: JsonPath,
        /// Key or value.
        side: Side,
        /// Why.
        source: VariableError,
    },
    /// A variable in an attestation condition did not resolve when Kyverno substitutes them
    /// all, before evaluating.
    #[error("failed to substitute variables in attestation conditions at {path}: {source}")]
    AttestationVariable {
        /// The field.
        path: JsonPath,
        /// Why.
        source: VariableError,
    },
    /// An attestation condition's `message` became something other than text.
    #[error(
        "failed to substitute variables in attestation conditions at {path}: the message became {found}, not a string"
    )]
    MessageNotText {
        /// The `message` field.
        path: JsonPath,
        /// What it became.
        found: &'static str,
    },
    /// The deprecated `In`/`NotIn` with a list key holding a non-string: Kyverno's handler
    /// panics (the admission request fails and the webhook's failure policy decides).
    #[error(
        "{path}: `{operator}` compares a list key only when all its items are strings, and item {index} is {found}; use AnyIn/AllIn (AnyNotIn/AllNotIn), which compare any items"
    )]
    NonStringKeyItem {
        /// The condition.
        path: JsonPath,
        /// `In` or `NotIn`.
        operator: Operator,
        /// The item's index in the key.
        index: usize,
        /// What the item is.
        found: &'static str,
    },
}

impl EvaluationError {
    /// The field the error is about.
    pub fn path(&self) -> &JsonPath {
        match self {
            EvaluationError::Variable { path, .. }
            | EvaluationError::AttestationVariable { path, .. }
            | EvaluationError::MessageNotText { path, .. }
            | EvaluationError::NonStringKeyItem { path, .. } => path,
        }
    }

    /// The variable error, when that is the cause.
    pub fn variable_error(&self) -> Option<&VariableError> {
        match self {
            EvaluationError::Variable { source, .. }
            | EvaluationError::AttestationVariable { source, .. } => Some(source),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// Which of Kyverno's two paths a condition takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Mode {
    /// Rule `preconditions`: `pkg/validation/policy` checks, lazy substitution.
    Preconditions,
    /// verifyImages attestation `conditions`: the CRD's enum, substitution up front.
    Attestation,
}

/// One statement: `key` `operator` `value`, with an optional `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    key: Operand,
    operator: Operator,
    value: Operand,
    message: Option<String>,
    path: JsonPath,
    mode: Mode,
}

/// The outcome of evaluating conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionsOutcome {
    /// Whether they hold.
    pub met: bool,
    /// The messages of the statements that failed, as Kyverno joins them (`"; "`, empty
    /// messages skipped). `None` when met or when none of them has a message.
    pub message: Option<String>,
}

impl ConditionsOutcome {
    /// Kyverno's skip message for a rule whose preconditions are not met:
    /// `preconditions not met`, then `; MESSAGE` when there is one.
    pub fn skip_message(&self) -> String {
        match &self.message {
            Some(message) => format!("preconditions not met; {message}"),
            None => "preconditions not met".to_string(),
        }
    }
}

/// A compiled `any`/`all` block (or the legacy list, which behaves as an `all` block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// `None`: no `any` block; `Some(empty)`: an `any` block that never holds.
    any: Option<Vec<Condition>>,
    all: Vec<Condition>,
    legacy: bool,
    mode: Mode,
    ignored: Vec<JsonPath>,
    path: JsonPath,
}

/// A verifyImages attestation's `conditions`: blocks that must all hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionBlocks {
    blocks: Vec<Conditions>,
    path: JsonPath,
}

impl Condition {
    /// A precondition-style statement (located at the root). Literal top-level numbers
    /// become Go `float64`s, as in Kyverno.
    pub fn new(key: Value, operator: Operator, value: Value, message: Option<String>) -> Condition {
        Condition::build(
            key,
            operator,
            value,
            message,
            JsonPath::root(),
            Mode::Preconditions,
        )
    }

    fn build(
        key: Value,
        operator: Operator,
        value: Value,
        message: Option<String>,
        path: JsonPath,
        mode: Mode,
    ) -> Condition {
        Condition {
            key: Operand::new(key, mode),
            operator,
            value: Operand::new(value, mode),
            message: message.filter(|m| !m.is_empty()),
            path,
            mode,
        }
    }

    /// `key` as written (`null` when absent).
    pub fn key(&self) -> &Value {
        &self.key.written
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// `value` as written (`null` when absent).
    pub fn value(&self) -> &Value {
        &self.value.written
    }

    /// `message` as written, when not empty.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// Where the condition is in the policy.
    pub fn path(&self) -> &JsonPath {
        &self.path
    }

    /// Whether key and value hold variables (the condition depends on the context).
    pub fn has_variables(&self) -> bool {
        self.key.constant.is_none() || self.value.constant.is_none()
    }

    /// Evaluates this one statement against `context`.
    pub fn holds(&self, context: &Value) -> Result<bool, EvaluationError> {
        self.check(&Context::new(context), None)
    }

    fn check(
        &self,
        context: &Context<'_>,
        first: Option<&mut FirstPass>,
    ) -> Result<bool, EvaluationError> {
        let (first_key, first_value) = match first {
            Some(pass) => (pass.key.take(), pass.value.take()),
            None => (None, None),
        };
        let key = self.resolve(&self.key, Side::Key, context, first_key)?;
        let value = self.resolve(&self.value, Side::Value, context, first_value)?;
        apply(self.operator, &key, &value).map_err(|(index, found)| {
            EvaluationError::NonStringKeyItem {
                path: self.path.clone(),
                operator: self.operator,
                index,
                found,
            }
        })
    }

    /// The operand's value for this evaluation: the prepared constant, or its variables
    /// substituted (attestation conditions: twice, as Kyverno does).
    fn resolve<'a>(
        &self,
        operand: &'a Operand,
        side: Side,
        context: &Context<'_>,
        first: Option<Value>,
    ) -> Result<Cow<'a, Prepared>, EvaluationError> {
        if let Some(prepared) = &operand.constant {
            return Ok(Cow::Borrowed(prepared));
        }
        let path = || self.path.field(side.name());
        let substituted = match self.mode {
            Mode::Preconditions => substitute_leaves(&operand.written, context),
            Mode::Attestation => {
                let first = match first {
                    Some(value) => value,
                    None => first_pass_operand(operand, context).map_err(|source| {
                        EvaluationError::AttestationVariable {
                            path: path(),
                            source,
                        }
                    })?,
                };
                if leaves_any(&first, |s| s.contains("{{")) {
                    substitute_leaves(&first, context)
                } else {
                    Ok(first)
                }
            }
        };
        let value = substituted.map_err(|source| EvaluationError::Variable {
            path: path(),
            side,
            source,
        })?;
        Ok(Cow::Owned(Prepared::new(value)))
    }

    /// Kyverno's first substitution of an attestation condition (every string holding `{{`,
    /// message included), before anything is evaluated.
    fn first_pass(&self, context: &Context<'_>) -> Result<FirstPass, EvaluationError> {
        let error = |side: Side| {
            let path = self.path.field(side.name());
            move |source| EvaluationError::AttestationVariable { path, source }
        };
        let key = match self.key.constant {
            Some(_) => None,
            None => Some(first_pass_operand(&self.key, context).map_err(error(Side::Key))?),
        };
        let value = match self.value.constant {
            Some(_) => None,
            None => Some(first_pass_operand(&self.value, context).map_err(error(Side::Value))?),
        };
        let message = match &self.message {
            Some(text) if text.contains("{{") => {
                match variables::substitute_in(text, context).map_err(error(Side::Message))? {
                    Value::String(s) => Some(s),
                    other => {
                        return Err(EvaluationError::MessageNotText {
                            path: self.path.field("message"),
                            found: type_name(&other),
                        });
                    }
                }
            }
            _ => None,
        };
        Ok(FirstPass {
            key,
            value,
            message,
        })
    }
}

/// The first pass's results for one attestation condition (`None`: unchanged).
#[derive(Debug, Default)]
struct FirstPass {
    key: Option<Value>,
    value: Option<Value>,
    message: Option<String>,
}

fn first_pass_operand(operand: &Operand, context: &Context<'_>) -> Result<Value, VariableError> {
    let mut value = substitute_leaves(&operand.written, context)?;
    normalize_numbers(&mut value, Mode::Attestation);
    Ok(value)
}

impl Conditions {
    /// Parses a rule's `preconditions` as written (located at `path`): an object with `any`
    /// and/or `all` lists, or the legacy list of conditions (all must hold); `null` is an
    /// empty block. Checks what Kyverno's policy validation checks.
    pub fn parse(value: &Value, path: &JsonPath) -> Result<Conditions, Vec<ConditionsError>> {
        let mut errors = Vec::new();
        let mut ignored = Vec::new();
        let conditions = match value {
            Value::Null => Some(Conditions::empty(Mode::Preconditions, path)),
            Value::Array(items) => {
                let all = parse_list(items, path, Mode::Preconditions, &mut errors, &mut ignored);
                Some(Conditions {
                    any: None,
                    all,
                    legacy: true,
                    mode: Mode::Preconditions,
                    ignored: Vec::new(),
                    path: path.clone(),
                })
            }
            Value::Object(map) => Some(parse_any_all(
                map,
                path,
                Mode::Preconditions,
                &mut errors,
                &mut ignored,
            )),
            other => {
                errors.push(ConditionsError::NotConditions {
                    path: path.clone(),
                    found: type_name(other),
                });
                None
            }
        };
        match conditions {
            Some(mut conditions) if errors.is_empty() => {
                conditions.ignored = ignored;
                Ok(conditions)
            }
            _ => Err(errors),
        }
    }

    fn empty(mode: Mode, path: &JsonPath) -> Conditions {
        Conditions {
            any: None,
            all: Vec::new(),
            legacy: false,
            mode,
            ignored: Vec::new(),
            path: path.clone(),
        }
    }

    /// The `any` conditions (empty when there is no `any` block).
    pub fn any(&self) -> &[Condition] {
        self.any.as_deref().unwrap_or(&[])
    }

    /// Whether an `any` block is present (`any: []` is, and never holds, in preconditions).
    pub fn has_any_block(&self) -> bool {
        self.any.is_some()
    }

    /// The `all` conditions, or the legacy list.
    pub fn all(&self) -> &[Condition] {
        &self.all
    }

    /// Whether this was written as the legacy plain list.
    pub fn is_legacy(&self) -> bool {
        self.legacy
    }

    /// Whether there is nothing to evaluate (always met).
    pub fn is_empty(&self) -> bool {
        self.any.is_none() && self.all.is_empty()
    }

    /// Whether some condition depends on variables.
    pub fn has_variables(&self) -> bool {
        self.conditions()
            .any(|c| c.has_variables() || c.message_has_variables())
    }

    /// Every condition, `any` first.
    pub fn conditions(&self) -> impl Iterator<Item = &Condition> {
        self.any().iter().chain(self.all.iter())
    }

    /// Fields Kyverno ignores without a word (unknown members of the block and of its
    /// conditions): worth a warning.
    pub fn ignored_fields(&self) -> &[JsonPath] {
        &self.ignored
    }

    /// Where the block is.
    pub fn path(&self) -> &JsonPath {
        &self.path
    }

    /// Evaluates against `context` (a JSON object of variables).
    pub fn evaluate(&self, context: &Value) -> Result<ConditionsOutcome, EvaluationError> {
        self.evaluate_in(&Context::new(context))
    }

    /// [`Conditions::evaluate`] over a context converted once for every condition.
    pub fn evaluate_in(&self, context: &Context<'_>) -> Result<ConditionsOutcome, EvaluationError> {
        let (met, message) = match self.mode {
            Mode::Preconditions => self.evaluate_with(context, None)?,
            Mode::Attestation => {
                let mut passes = self.first_passes(context)?;
                self.evaluate_with(context, Some(&mut passes))?
            }
        };
        Ok(ConditionsOutcome {
            met,
            message: if met { None } else { message },
        })
    }

    /// Evaluates as a verifyImages entry's `validate.deny` conditions (Kyverno's
    /// `CheckDenyPreconditions`, lazily as preconditions): `Some(message)` when they hold, so
    /// the image is denied, with the messages of the conditions that held, joined as Kyverno
    /// joins them (`"; "`, `";"` in the legacy list; empty when none has one); `None` when they
    /// do not hold.
    pub fn deny(&self, context: &Value) -> Result<Option<String>, EvaluationError> {
        let context = Context::new(context);
        let context = &context;
        let mut held = Vec::new();
        let (met, _) = self.evaluate_recording(context, None, Some(&mut held))?;
        let separator = if self.legacy { ";" } else { "; " };
        Ok(met.then(|| {
            join_non_empty(held.iter().map(|m| m.as_ref()), separator).unwrap_or_default()
        }))
    }

    fn first_passes(&self, context: &Context<'_>) -> Result<Vec<FirstPass>, EvaluationError> {
        self.conditions().map(|c| c.first_pass(context)).collect()
    }

    /// Kyverno's `evaluateAnyAllConditions`: `any` (when present) until one holds, then
    /// `all` until one fails; the messages of the failed ones, joined.
    fn evaluate_with(
        &self,
        context: &Context<'_>,
        passes: Option<&mut Vec<FirstPass>>,
    ) -> Result<(bool, Option<String>), EvaluationError> {
        self.evaluate_recording(context, passes, None)
    }

    /// [`Conditions::evaluate_with`], also recording the messages of the conditions that held
    /// in `held` when given.
    fn evaluate_recording<'s>(
        &'s self,
        context: &Context<'_>,
        mut passes: Option<&mut Vec<FirstPass>>,
        mut held: Option<&mut Vec<Cow<'s, str>>>,
    ) -> Result<(bool, Option<String>), EvaluationError> {
        let mut failed: Vec<Cow<'_, str>> = Vec::new();
        let any_len = self.any().len();
        let mut any_holds = true;
        if let Some(any) = &self.any {
            any_holds = false;
            for (i, condition) in any.iter().enumerate() {
                let pass = passes.as_deref_mut().and_then(|p| p.get_mut(i));
                if check_one(condition, context, pass, &mut failed, held.as_deref_mut())? {
                    any_holds = true;
                    break;
                }
            }
        }
        let mut all_holds = true;
        for (j, condition) in self.all.iter().enumerate() {
            let pass = passes.as_deref_mut().and_then(|p| p.get_mut(any_len + j));
            if !check_one(condition, context, pass, &mut failed, held.as_deref_mut())? {
                all_holds = false;
                break;
            }
        }
        let met = any_holds && all_holds;
        Ok((met, join_non_empty(failed.iter().map(|m| m.as_ref()), "; ")))
    }
}

/// Evaluates one condition of a block, recording its message in `failed` when it fails (and
/// in `held`, when given, when it holds).
fn check_one<'s>(
    condition: &'s Condition,
    context: &Context<'_>,
    pass: Option<&mut FirstPass>,
    failed: &mut Vec<Cow<'s, str>>,
    held: Option<&mut Vec<Cow<'s, str>>>,
) -> Result<bool, EvaluationError> {
    let (holds, substituted_message) = match pass {
        Some(pass) => {
            let message = pass.message.take();
            (condition.check(context, Some(pass))?, message)
        }
        None => (condition.check(context, None)?, None),
    };
    let record = match (holds, held) {
        (false, _) => Some(failed),
        (true, Some(held)) => Some(held),
        (true, None) => None,
    };
    if let Some(record) = record {
        match substituted_message {
            Some(message) => record.push(Cow::Owned(message)),
            None => {
                if let Some(message) = &condition.message {
                    record.push(Cow::Borrowed(message));
                }
            }
        }
    }
    Ok(holds)
}

/// Go's `JoinNonEmpty`: the non-empty parts joined with `separator`; `None` when empty.
fn join_non_empty<'a>(parts: impl Iterator<Item = &'a str>, separator: &str) -> Option<String> {
    let mut out = String::new();
    for part in parts.filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push_str(separator);
        }
        out.push_str(part);
    }
    (!out.is_empty()).then_some(out)
}

impl Condition {
    fn message_has_variables(&self) -> bool {
        self.mode == Mode::Attestation && self.message.as_deref().is_some_and(|m| m.contains("{{"))
    }
}

impl ConditionBlocks {
    /// Parses a verifyImages attestation's `conditions` (located at `path`): a list of
    /// objects with `any` and/or `all` lists; `null` is no conditions. Operators follow the
    /// CRD's enum (no `Equal`/`NotEqual`); fields are matched exactly.
    pub fn parse(value: &Value, path: &JsonPath) -> Result<ConditionBlocks, Vec<ConditionsError>> {
        let mut errors = Vec::new();
        let mut blocks = Vec::new();
        match value {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = path.index(i);
                    match item {
                        Value::Object(map) => {
                            let mut ignored = Vec::new();
                            let mut block = parse_any_all(
                                map,
                                &item_path,
                                Mode::Attestation,
                                &mut errors,
                                &mut ignored,
                            );
                            block.ignored = ignored;
                            blocks.push(block);
                        }
                        other => errors.push(ConditionsError::NotBlocks {
                            path: item_path,
                            found: type_name(other),
                        }),
                    }
                }
            }
            other => errors.push(ConditionsError::NotBlocks {
                path: path.clone(),
                found: type_name(other),
            }),
        }
        if errors.is_empty() {
            Ok(ConditionBlocks {
                blocks,
                path: path.clone(),
            })
        } else {
            Err(errors)
        }
    }

    /// The blocks.
    pub fn blocks(&self) -> &[Conditions] {
        &self.blocks
    }

    /// Whether there are no blocks (the attestation check is then satisfied by any statement
    /// of the right type).
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Fields ignored (pruned by the CRD's schema), in every block.
    pub fn ignored_fields(&self) -> impl Iterator<Item = &JsonPath> {
        self.blocks.iter().flat_map(|b| b.ignored.iter())
    }

    /// Where the list is.
    pub fn path(&self) -> &JsonPath {
        &self.path
    }

    /// Evaluates against `context`: Kyverno adds the statement's `predicate` members at the
    /// context's top level (`{{ builder.id }}`), beside the request. Every variable of every
    /// block is substituted first; then the blocks in order, stopping at the first that fails
    /// (its message is the outcome's).
    pub fn evaluate(&self, context: &Value) -> Result<ConditionsOutcome, EvaluationError> {
        let context = Context::new(context);
        let context = &context;
        let mut passes = self
            .blocks
            .iter()
            .map(|b| b.first_passes(context))
            .collect::<Result<Vec<_>, _>>()?;
        for (block, pass) in self.blocks.iter().zip(passes.iter_mut()) {
            let (met, message) = block.evaluate_with(context, Some(pass))?;
            if !met {
                return Ok(ConditionsOutcome {
                    met: false,
                    message,
                });
            }
        }
        Ok(ConditionsOutcome {
            met: true,
            message: None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A JSON value's type, for messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whether the member `name` sets the field `field` (lower-case ASCII). Preconditions are
/// decoded by Go's `encoding/json`, which also accepts a case-insensitive match (with
/// Unicode's simple folding: `K` KELVIN SIGN is `k`, `ſ` LONG S is `s`); attestation
/// conditions go through the CRD's schema, which keeps exact names only.
fn field_matches(name: &str, field: &str, fold: bool) -> bool {
    if name == field {
        return true;
    }
    if !fold {
        return false;
    }
    let mut chars = name.chars();
    for f in field.chars() {
        let Some(c) = chars.next() else {
            return false;
        };
        let same = c.to_ascii_lowercase() == f
            || (f == 'k' && c == '\u{212A}')
            || (f == 's' && c == '\u{17F}');
        if !same {
            return false;
        }
    }
    chars.next().is_none()
}

fn parse_any_all(
    map: &Map<String, Value>,
    path: &JsonPath,
    mode: Mode,
    errors: &mut Vec<ConditionsError>,
    ignored: &mut Vec<JsonPath>,
) -> Conditions {
    let fold = mode == Mode::Preconditions;
    let mut any: Option<Vec<Condition>> = None;
    let mut all: Vec<Condition> = Vec::new();
    for (name, member) in map {
        let block = if field_matches(name, "any", fold) {
            "any"
        } else if field_matches(name, "all", fold) {
            "all"
        } else {
            ignored.push(path.field(name));
            continue;
        };
        let block_path = path.field(name);
        let list = match member {
            Value::Null => None,
            Value::Array(items) => Some(parse_list(items, &block_path, mode, errors, ignored)),
            other => {
                errors.push(ConditionsError::NotAList {
                    path: block_path,
                    block,
                    found: type_name(other),
                });
                None
            }
        };
        if block == "any" {
            // Attestation conditions are re-encoded with `omitempty` before Kyverno evaluates
            // them: an empty `any` disappears.
            any = match list {
                Some(list) if mode == Mode::Attestation && list.is_empty() => None,
                other => other,
            };
        } else {
            all = list.unwrap_or_default();
        }
    }
    Conditions {
        any,
        all,
        legacy: false,
        mode,
        ignored: Vec::new(),
        path: path.clone(),
    }
}

fn parse_list(
    items: &[Value],
    path: &JsonPath,
    mode: Mode,
    errors: &mut Vec<ConditionsError>,
    ignored: &mut Vec<JsonPath>,
) -> Vec<Condition> {
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| parse_condition(item, &path.index(i), mode, errors, ignored))
        .collect()
}

/// The operator names accepted in `mode`, for messages.
fn expected_operators(mode: Mode) -> String {
    let names: Vec<&str> = Operator::ALL
        .iter()
        .filter(|op| op.in_crd_enum())
        .map(|op| op.name())
        .collect();
    match mode {
        Mode::Preconditions => format!("{} (or the deprecated Equal, NotEqual)", names.join(", ")),
        Mode::Attestation => names.join(", "),
    }
}

fn unknown_operator(name: &str, path: JsonPath, mode: Mode) -> ConditionsError {
    let exact = Operator::from_name(name);
    let folded = Operator::ALL
        .into_iter()
        .find(|op| op.name().eq_ignore_ascii_case(name));
    let hint = match (exact, folded) {
        (Some(op), _) => op.replacements().first().map(|r| {
            format!("; the deprecated `{op}` is not accepted in attestation conditions: use `{r}`")
        }),
        (None, Some(op)) if mode == Mode::Attestation && !op.in_crd_enum() => {
            let r = op
                .replacements()
                .first()
                .copied()
                .unwrap_or(Operator::Equals);
            Some(format!(
                "; did you mean `{r}`? (operator names are case-sensitive)"
            ))
        }
        (None, Some(op)) => Some(format!(
            "; did you mean `{op}`? (operator names are case-sensitive)"
        )),
        (None, None) => None,
    };
    ConditionsError::UnknownOperator {
        path,
        operator: name.to_string(),
        expected: expected_operators(mode),
        hint,
    }
}

fn parse_condition(
    item: &Value,
    path: &JsonPath,
    mode: Mode,
    errors: &mut Vec<ConditionsError>,
    ignored: &mut Vec<JsonPath>,
) -> Option<Condition> {
    let Value::Object(map) = item else {
        errors.push(ConditionsError::NotACondition {
            path: path.clone(),
            found: type_name(item),
        });
        return None;
    };
    let fold = mode == Mode::Preconditions;
    let mut key: Option<(&str, &Value)> = None;
    let mut operator: Option<(&str, &Value)> = None;
    let mut value: Option<(&str, &Value)> = None;
    let mut message: Option<(&str, &Value)> = None;
    for (name, member) in map {
        let slot = if field_matches(name, "key", fold) {
            &mut key
        } else if field_matches(name, "operator", fold) {
            &mut operator
        } else if field_matches(name, "value", fold) {
            &mut value
        } else if field_matches(name, "message", fold) {
            &mut message
        } else {
            ignored.push(path.field(name));
            continue;
        };
        *slot = Some((name.as_str(), member));
    }
    let errors_before = errors.len();
    let mut text_field = |field: &'static str, member: Option<(&str, &Value)>| match member {
        None | Some((_, Value::Null)) => Some(String::new()),
        Some((_, Value::String(s))) => Some(s.clone()),
        Some((name, other)) => {
            errors.push(ConditionsError::NotAString {
                path: path.field(name),
                field,
                found: type_name(other),
            });
            None
        }
    };
    let operator_text = text_field("operator", operator);
    let message_text = text_field("message", message);
    let key_value = key.map(|(_, v)| v).filter(|v| !v.is_null());
    let value_value = value.map(|(_, v)| v).filter(|v| !v.is_null());

    if let Some(operator_text) = &operator_text {
        let mut missing = Vec::new();
        if mode == Mode::Preconditions && key_value.is_none() {
            missing.push("key");
        }
        if operator_text.is_empty() {
            missing.push("operator");
        }
        if mode == Mode::Preconditions && value_value.is_none() {
            missing.push("value");
        }
        if !missing.is_empty() {
            errors.push(ConditionsError::Missing {
                path: path.clone(),
                fields: missing,
            });
        } else if !operator_text.is_empty() {
            let allowed = Operator::from_name(operator_text)
                .filter(|op| mode == Mode::Preconditions || op.in_crd_enum());
            if allowed.is_none() {
                let name = operator.map_or("operator", |(n, _)| n);
                errors.push(unknown_operator(operator_text, path.field(name), mode));
            }
        }
    }
    if mode == Mode::Preconditions
        && let (Some(Value::String(k)), Some(v)) = (key_value, value_value)
        && k.replace(' ', "") == "{{request.operation}}"
    {
        let name = value.map_or("value", |(n, _)| n);
        check_operation_values(v, &path.field(name), errors);
    }
    if errors.len() > errors_before {
        return None;
    }
    let operator = Operator::from_name(operator_text.as_deref()?)?;
    Some(Condition::build(
        key_value.cloned().unwrap_or(Value::Null),
        operator,
        value_value.cloned().unwrap_or(Value::Null),
        message_text,
        path.clone(),
        mode,
    ))
}

/// Kyverno's check of the values a `{{request.operation}}` key is compared with.
fn check_operation_values(value: &Value, path: &JsonPath, errors: &mut Vec<ConditionsError>) {
    const OPERATIONS: [&str; 4] = ["CREATE", "UPDATE", "DELETE", "CONNECT"];
    match value {
        Value::String(s) => {
            // A whole-field variable may name an allowed value.
            let templated = s.len() >= 4 && s.starts_with("{{") && s.ends_with("}}");
            if !templated && !OPERATIONS.contains(&s.as_str()) {
                errors.push(ConditionsError::UnknownOperation {
                    path: path.clone(),
                    value: s.clone(),
                });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) if OPERATIONS.contains(&s.as_str()) => {}
                    Value::String(s) => {
                        errors.push(ConditionsError::UnknownOperation {
                            path: path.index(i),
                            value: s.clone(),
                        });
                        return;
                    }
                    other => {
                        errors.push(ConditionsError::OperationNotText {
                            path: path.index(i),
                            found: type_name(other),
                        });
                        return;
                    }
                }
            }
        }
        other => errors.push(ConditionsError::OperationNotText {
            path: path.clone(),
            found: type_name(other),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Operands
// ---------------------------------------------------------------------------------------------

/// A key or value: as written, and prepared once when it holds no variables.
#[derive(Debug, Clone)]
struct Operand {
    written: Value,
    /// `None`: holds variables, substituted at each evaluation.
    constant: Option<Prepared>,
}

impl PartialEq for Operand {
    fn eq(&self, other: &Operand) -> bool {
        self.written == other.written
    }
}

impl Eq for Operand {}

impl Operand {
    fn new(written: Value, mode: Mode) -> Operand {
        let template = match mode {
            Mode::Preconditions => leaves_any(&written, variables::has_variables),
            // Kyverno's first pass unescapes `\{{`; its second pass then substitutes it.
            Mode::Attestation => leaves_any(&written, |s| s.contains("{{")),
        };
        if template {
            return Operand {
                written,
                constant: None,
            };
        }
        let mut value = if leaves_any(&written, |s| s.contains("\\{{")) {
            // No variable: substitution only unescapes `\{{`.
            substitute_leaves(&written, &Context::new(&Value::Null))
                .unwrap_or_else(|_| written.clone())
        } else {
            written.clone()
        };
        normalize_numbers(&mut value, mode);
        let prepared = Prepared::new(value);
        prepared.warm();
        Operand {
            written,
            constant: Some(prepared),
        }
    }
}

/// Whether some string in `value` satisfies `test` (map keys are not looked at).
fn leaves_any(value: &Value, test: fn(&str) -> bool) -> bool {
    match value {
        Value::String(s) => test(s),
        Value::Array(items) => items.iter().any(|v| leaves_any(v, test)),
        Value::Object(map) => map.values().any(|v| leaves_any(v, test)),
        _ => false,
    }
}

/// Substitutes the variables of every string holding `{{` (so that `\{{` is unescaped, as
/// Kyverno does for every string it visits); map keys are left as written.
fn substitute_leaves(value: &Value, context: &Context<'_>) -> Result<Value, VariableError> {
    Ok(match value {
        Value::String(s) if s.contains("{{") => variables::substitute_in(s, context)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute_leaves(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute_leaves(v, context)?)))
                .collect::<Result<_, VariableError>>()?,
        ),
        other => other.clone(),
    })
}

/// Go's types after Kyverno's decoding: a top-level literal number is a `float64`
/// (`DocumentToUntyped` re-encodes scalars); in attestation conditions, which Kyverno
/// re-encodes as a whole, a nested integral number is an `int64` again.
fn normalize_numbers(value: &mut Value, mode: Mode) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().and_then(Number::from_f64) {
                *n = f;
            }
        }
        Value::Array(_) | Value::Object(_) if mode == Mode::Attestation => nested_integers(value),
        _ => {}
    }
}

fn nested_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.as_i64().is_none()) {
                // encoding/json writes it without a fraction below 1e21; it is read back as
                // an int64 when it fits.
                if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
                    *n = Number::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nested_integers),
        Value::Object(map) => map.values_mut().for_each(nested_integers),
        _ => {}
    }
}

/// A key or value for one evaluation, with what its text parses as, found once.
#[derive(Debug, Clone)]
struct Prepared {
    value: Value,
    facts: Facts,
}

#[derive(Debug, Clone, Default)]
struct Facts {
    duration: OnceLock<Option<i64>>,
    quantity: OnceLock<Option<Quantity>>,
    float: OnceLock<Option<f64>>,
    int: OnceLock<Option<i64>>,
    semver: OnceLock<Option<Version>>,
    json: OnceLock<JsonStrings>,
    in_range: OnceLock<bool>,
}

impl Prepared {
    fn new(value: Value) -> Prepared {
        Prepared {
            value,
            facts: Facts::default(),
        }
    }

    /// Parses everything now (constants, at load).
    fn warm(&self) {
        if self.text().is_some() {
            self.duration();
            self.quantity();
            self.float();
            self.int();
            self.semver();
            self.json();
            self.in_range();
        }
    }

    fn text(&self) -> Option<&str> {
        self.value.as_str()
    }

    /// `time.ParseDuration`.
    fn duration(&self) -> Option<i64> {
        let s = self.text()?;
        *self
            .facts
            .duration
            .get_or_init(|| go_duration::parse(s).ok())
    }

    /// `resource.ParseQuantity`.
    fn quantity(&self) -> Option<&Quantity> {
        let s = self.text()?;
        self.facts
            .quantity
            .get_or_init(|| quantity::parse(s))
            .as_ref()
    }

    /// `strconv.ParseFloat(s, 64)`.
    fn float(&self) -> Option<f64> {
        let s = self.text()?;
        *self.facts.float.get_or_init(|| go_parse_float(s))
    }

    /// `strconv.ParseInt(s, 10, 64)`.
    fn int(&self) -> Option<i64> {
        let s = self.text()?;
        *self.facts.int.get_or_init(|| s.parse().ok())
    }

    /// `semver.Parse` (blang/semver v4).
    fn semver(&self) -> Option<&Version> {
        let s = self.text()?;
        self.facts
            .semver
            .get_or_init(|| Version::parse(s).ok())
            .as_ref()
    }

    /// The text decoded as a JSON list of strings.
    fn json(&self) -> &JsonStrings {
        match self.text() {
            Some(s) => self.facts.json.get_or_init(|| json_strings(s)),
            None => &JsonStrings::NotJson,
        }
    }

    /// Whether the text is a range (`1-10`) for the `In` family.
    fn in_range(&self) -> bool {
        match self.text() {
            Some(s) => *self
                .facts
                .in_range
                .get_or_init(|| pattern_operator(s) == PatternOp::InRange),
            None => false,
        }
    }
}

/// A string decoded as Go decodes JSON into `[]string`.
#[derive(Debug, Clone, PartialEq)]
enum JsonStrings {
    /// Not JSON.
    NotJson,
    /// A list of strings (a JSON `null` item is `""`; `null` itself is the empty list).
    Strings(Vec<String>),
    /// JSON, but not a list of strings.
    Other,
}

fn json_strings(s: &str) -> JsonStrings {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Null) => JsonStrings::Strings(Vec::new()),
        Ok(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => out.push(s),
                    Value::Null => out.push(String::new()),
                    _ => return JsonStrings::Other,
                }
            }
            JsonStrings::Strings(out)
        }
        Ok(_) => JsonStrings::Other,
        // Valid JSON serde_json cannot hold (a number beyond f64) is still JSON to Go.
        Err(_) => match serde_json::from_str::<serde::de::IgnoredAny>(s) {
            Ok(_) => JsonStrings::Other,
            Err(_) => JsonStrings::NotJson,
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Go values
// ---------------------------------------------------------------------------------------------

/// A JSON number as Go holds it: a JSON integer that fits is an `int64`, anything else a
/// `float64`.
#[derive(Debug, Clone, Copy)]
enum GoNum {
    Int(i64),
    Float(f64),
}

impl GoNum {
    fn as_f64(self) -> f64 {
        match self {
            GoNum::Int(i) => i as f64,
            GoNum::Float(f) => f,
        }
    }
}

fn go_num(n: &Number) -> GoNum {
    match n.as_i64() {
        Some(i) => GoNum::Int(i),
        None => GoNum::Float(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Go's `int64(f)` on amd64: truncation, and the "indefinite integer" when out of range.
fn go_f64_to_i64(f: f64) -> i64 {
    if f.is_nan() || !(-TWO_63..TWO_63).contains(&f) {
        i64::MIN
    } else {
        f as i64
    }
}

/// `time.Duration(n) * time.Second` for a JSON number.
fn number_seconds(n: &Number) -> i64 {
    match go_num(n) {
        GoNum::Int(i) => i.wrapping_mul(SECOND),
        GoNum::Float(f) => go_f64_to_i64(f).wrapping_mul(SECOND),
    }
}

/// `reflect.DeepEqual` on decoded JSON (an `int64` never equals a `float64`).
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => match (go_num(x), go_num(y)) {
            (GoNum::Int(x), GoNum::Int(y)) => x == y,
            (GoNum::Float(x), GoNum::Float(y)) => x == y,
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| deep_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        _ => false,
    }
}

/// `fmt.Sprint(v)` of a decoded JSON value.
fn go_sprint(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => {
            let mut out = String::new();
            go_sprint_into(other, &mut out);
            Cow::Owned(out)
        }
    }
}

fn go_sprint_into(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match go_num(n) {
            GoNum::Int(i) => out.push_str(&i.to_string()),
            GoNum::Float(f) => go_float::write_v(f, out),
        },
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_sprint_into(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // fmt prints maps with their keys sorted.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                go_sprint_into(v, out);
            }
            out.push(']');
        }
    }
}

/// `strconv.ParseFloat(s, 64)` (decimal forms; Go's hexadecimal floats are not read).
fn go_parse_float(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.eq_ignore_ascii_case("nan") {
        // Go takes no sign before NaN.
        return (unsigned.len() == s.len()).then_some(f64::NAN);
    }
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return s.parse().ok();
    }
    let f: f64 = s.parse().ok()?;
    // Out of range is an error (ErrRange) for Go, infinity for Rust.
    f.is_finite().then_some(f)
}

// ---------------------------------------------------------------------------------------------
// Kyverno's string patterns (`pkg/engine/pattern`), for ranges in the `In` family
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatternOp {
    Equal,
    NotEqual,
    More,
    Less,
    MoreEqual,
    LessEqual,
    InRange,
    NotInRange,
}

impl PatternOp {
    fn prefix_len(self) -> usize {
        match self {
            PatternOp::MoreEqual | PatternOp::LessEqual => 2,
            PatternOp::More | PatternOp::Less | PatternOp::NotEqual => 1,
            _ => 0,
        }
    }

    fn holds(self, order: Ordering) -> bool {
        match self {
            PatternOp::Equal => order == Ordering::Equal,
            PatternOp::NotEqual => order != Ordering::Equal,
            PatternOp::More => order == Ordering::Greater,
            PatternOp::Less => order == Ordering::Less,
            PatternOp::MoreEqual => order != Ordering::Less,
            PatternOp::LessEqual => order != Ordering::Greater,
            PatternOp::InRange | PatternOp::NotInRange => false,
        }
    }
}

/// `operator.GetOperatorFromStringPattern`.
fn pattern_operator(pattern: &str) -> PatternOp {
    if pattern.len() < 2 {
        return PatternOp::Equal;
    }
    if pattern.starts_with(">=") {
        PatternOp::MoreEqual
    } else if pattern.starts_with("<=") {
        PatternOp::LessEqual
    } else if pattern.starts_with('>') {
        PatternOp::More
    } else if pattern.starts_with('<') {
        PatternOp::Less
    } else if pattern.starts_with('!') {
        PatternOp::NotEqual
    } else if split_range(pattern, "!-").is_some() {
        PatternOp::NotInRange
    } else if split_range(pattern, "-").is_some() {
        PatternOp::InRange
    } else {
        PatternOp::Equal
    }
}

/// One end of a range: `[-|+]?\d+(\.\d+)?[A-Za-z]*` from `start`; returns its end.
fn range_end(b: &[u8], mut i: usize) -> Option<usize> {
    if matches!(b.get(i), Some(b'-' | b'|' | b'+')) {
        i += 1;
    }
    let digits = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == digits {
        return None;
    }
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    while b.get(i).is_some_and(u8::is_ascii_alphabetic) {
        i += 1;
    }
    Some(i)
}

/// Kyverno's `InRangeRegex` (`separator` `-`) and `NotInRangeRegex` (`!-`): the two ends.
fn split_range<'a>(pattern: &'a str, separator: &str) -> Option<(&'a str, &'a str)> {
    let b = pattern.as_bytes();
    let left_end = range_end(b, 0)?;
    if !b.get(left_end..)?.starts_with(separator.as_bytes()) {
        return None;
    }
    let right_start = left_end + separator.len();
    if range_end(b, right_start)? != b.len() {
        return None;
    }
    Some((pattern.get(..left_end)?, pattern.get(right_start..)?))
}

/// `pattern.Validate(value, pattern)` for a string value and a string pattern: `|`
/// alternatives of `&` conjunctions of operator patterns.
fn validate_string_patterns(value: &str, pattern: &str) -> bool {
    if value == pattern {
        return true;
    }
    pattern.split('|').any(|alternative| {
        alternative
            .trim_matches(' ')
            .split('&')
            .all(|part| validate_string_pattern(value, part.trim_matches(' ')))
    })
}

fn validate_string_pattern(value: &str, pattern: &str) -> bool {
    match pattern_operator(pattern) {
        PatternOp::InRange => split_range(pattern, "-").is_some_and(|(left, right)| {
            validate_string(value, left, PatternOp::MoreEqual)
                && validate_string(value, right, PatternOp::LessEqual)
        }),
        PatternOp::NotInRange => split_range(pattern, "!-").is_some_and(|(left, right)| {
            validate_string(value, left, PatternOp::Less)
                || validate_string(value, right, PatternOp::More)
        }),
        op => {
            let rest = pattern.get(op.prefix_len()..).unwrap_or("").trim();
            validate_string(value, rest, op)
        }
    }
}

/// Durations, then quantities, then (`=` and `!` only) wildcards.
fn validate_string(value: &str, pattern: &str, op: PatternOp) -> bool {
    if let (Ok(p), Ok(v)) = (go_duration::parse(pattern), go_duration::parse(value)) {
        return op.holds(v.cmp(&p));
    }
    if let (Some(p), Some(v)) = (quantity::parse(pattern), quantity::parse(value)) {
        return op.holds(v.compare(&p));
    }
    match op {
        PatternOp::Equal => wildcard::matches(pattern, value),
        PatternOp::NotEqual => !wildcard::matches(pattern, value),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// The operators
// ---------------------------------------------------------------------------------------------

/// `(index, type)` of a list key's item the deprecated `In`/`NotIn` cannot take (a Go panic).
type KeyItemPanic = (usize, &'static str);

/// Kyverno's operator handlers (`pkg/engine/variables/operator`).
fn apply(op: Operator, key: &Prepared, value: &Prepared) -> Result<bool, KeyItemPanic> {
    Ok(match op {
        Operator::Equals | Operator::Equal => equals(key, value),
        Operator::NotEquals | Operator::NotEqual => not_equals(key, value),
        Operator::In | Operator::NotIn => return deprecated_in(op == Operator::NotIn, key, value),
        Operator::AnyIn => any_or_all_in(false, false, key, value),
        Operator::AnyNotIn => any_or_all_in(false, true, key, value),
        Operator::AllIn => any_or_all_in(true, false, key, value),
        Operator::AllNotIn => any_or_all_in(true, true, key, value),
        Operator::GreaterThanOrEquals => numeric(Compare::Ge, key, value),
        Operator::GreaterThan => numeric(Compare::Gt, key, value),
        Operator::LessThanOrEquals => numeric(Compare::Le, key, value),
        Operator::LessThan => numeric(Compare::Lt, key, value),
        Operator::DurationGreaterThanOrEquals => duration_compare(Compare::Ge, key, value),
        Operator::DurationGreaterThan => duration_compare(Compare::Gt, key, value),
        Operator::DurationLessThanOrEquals => duration_compare(Compare::Le, key, value),
        Operator::DurationLessThan => duration_compare(Compare::Lt, key, value),
    })
}

/// What `parseDuration` makes of one side.
enum DurationSide {
    /// A duration string (not `"0"`).
    Duration(i64),
    /// A number: seconds.
    Seconds(i64),
    /// Anything else.
    Neither,
}

fn duration_side(side: &Prepared) -> DurationSide {
    match &side.value {
        Value::String(s) if s != "0" => match side.duration() {
            Some(d) => DurationSide::Duration(d),
            None => DurationSide::Neither,
        },
        Value::Number(n) => DurationSide::Seconds(number_seconds(n)),
        _ => DurationSide::Neither,
    }
}

/// `parseDuration(key, value)`: both as durations when at least one is a duration string
/// and the other a duration string or a number (seconds).
fn duration_pair(key: DurationSide, value: DurationSide) -> Option<(i64, i64)> {
    match (key, value) {
        (DurationSide::Duration(k), DurationSide::Duration(v) | DurationSide::Seconds(v))
        | (DurationSide::Seconds(k), DurationSide::Duration(v)) => Some((k, v)),
        _ => None,
    }
}

fn equals(key: &Prepared, value: &Prepared) -> bool {
    match &key.value {
        Value::Bool(k) => matches!(value.value, Value::Bool(v) if v == *k),
        Value::Number(n) => match go_num(n) {
            GoNum::Int(k) => match &value.value {
                Value::Number(v) => match go_num(v) {
                    GoNum::Int(v) => v == k,
                    GoNum::Float(v) => v == v.trunc() && go_f64_to_i64(v) == k,
                },
                Value::String(_) => value.int() == Some(k),
                _ => false,
            },
            GoNum::Float(k) => match &value.value {
                Value::Number(v) => match go_num(v) {
                    GoNum::Int(v) => k == k.trunc() && go_f64_to_i64(k) == v,
                    GoNum::Float(v) => v == k,
                },
                Value::String(_) => value.float() == Some(k),
                _ => false,
            },
        },
        Value::String(k) => {
            if let Some((kd, vd)) = duration_pair(duration_side(key), duration_side(value)) {
                return go_duration::seconds(kd) == go_duration::seconds(vd);
            }
            if let (Some(kq), Value::String(_)) = (key.quantity(), &value.value) {
                return value
                    .quantity()
                    .is_some_and(|vq| kq.compare(vq) == Ordering::Equal);
            }
            match &value.value {
                Value::String(v) => wildcard::matches(v, k),
                _ => false,
            }
        }
        Value::Object(_) => value.value.is_object() && deep_equal(&key.value, &value.value),
        Value::Array(_) => value.value.is_array() && deep_equal(&key.value, &value.value),
        Value::Null => false,
    }
}

/// Not `!equals`: mismatched types are "not equal" (true), except a missing key (false),
/// and a quantity key against a non-quantity string is true without a wildcard match.
fn not_equals(key: &Prepared, value: &Prepared) -> bool {
    match &key.value {
        Value::Bool(k) => !matches!(value.value, Value::Bool(v) if v == *k),
        Value::Number(n) => match go_num(n) {
            GoNum::Int(k) => match &value.value {
                Value::Number(v) => match go_num(v) {
                    GoNum::Int(v) => v != k,
                    GoNum::Float(v) => v != v.trunc() || go_f64_to_i64(v) != k,
                },
                Value::String(_) => value.int() != Some(k),
                _ => true,
            },
            GoNum::Float(k) => match &value.value {
                Value::Number(v) => match go_num(v) {
                    GoNum::Int(v) => k != k.trunc() || go_f64_to_i64(k) != v,
                    GoNum::Float(v) => v != k,
                },
                Value::String(_) => value.float() != Some(k),
                _ => true,
            },
        },
        Value::String(k) => {
            if let Some((kd, vd)) = duration_pair(duration_side(key), duration_side(value)) {
                return go_duration::seconds(kd) != go_duration::seconds(vd);
            }
            if let (Some(kq), Value::String(v)) = (key.quantity(), &value.value) {
                if v.is_empty() {
                    return !wildcard::matches(v, k);
                }
                return value
                    .quantity()
                    .is_none_or(|vq| kq.compare(vq) != Ordering::Equal);
            }
            match &value.value {
                Value::String(v) => !wildcard::matches(v, k),
                _ => true,
            }
        }
        Value::Object(_) => !(value.value.is_object() && deep_equal(&key.value, &value.value)),
        Value::Array(_) => !(value.value.is_array() && deep_equal(&key.value, &value.value)),
        Value::Null => false,
    }
}

#[derive(Debug, Clone, Copy)]
enum Compare {
    Ge,
    Gt,
    Le,
    Lt,
}

impl Compare {
    fn floats(self, a: f64, b: f64) -> bool {
        match self {
            Compare::Ge => a >= b,
            Compare::Gt => a > b,
            Compare::Le => a <= b,
            Compare::Lt => a < b,
        }
    }

    fn order(self, order: Ordering) -> bool {
        match self {
            Compare::Ge => order != Ordering::Less,
            Compare::Gt => order == Ordering::Greater,
            Compare::Le => order != Ordering::Greater,
            Compare::Lt => order == Ordering::Less,
        }
    }
}

/// `GreaterThan` & co: durations (as seconds), quantities, numbers, then semantic versions.
fn numeric(cmp: Compare, key: &Prepared, value: &Prepared) -> bool {
    match &key.value {
        Value::Number(n) => match go_num(n) {
            GoNum::Int(k) => numeric_number(cmp, k as f64, k.wrapping_mul(SECOND), value),
            GoNum::Float(k) => numeric_number(cmp, k, go_f64_to_i64(k).wrapping_mul(SECOND), value),
        },
        Value::String(_) => {
            if let Some((kd, vd)) = duration_pair(duration_side(key), duration_side(value)) {
                return cmp.floats(go_duration::seconds(kd), go_duration::seconds(vd));
            }
            if let (Some(kq), Value::String(_)) = (key.quantity(), &value.value)
                && let Some(vq) = value.quantity()
            {
                return cmp.order(kq.compare(vq));
            }
            if let Some(k) = key.float() {
                return numeric_number(cmp, k, go_f64_to_i64(k).wrapping_mul(SECOND), value);
            }
            if let Some(k) = key.int() {
                return numeric_number(cmp, k as f64, k.wrapping_mul(SECOND), value);
            }
            if let Some(k) = key.semver() {
                return matches!(value.value, Value::String(_))
                    && value.semver().is_some_and(|v| cmp.order(k.compare(v)));
            }
            false
        }
        _ => false,
    }
}

/// A numeric key (`as_float`; `as_duration` its seconds as a duration) against `value`.
fn numeric_number(cmp: Compare, as_float: f64, as_duration: i64, value: &Prepared) -> bool {
    match &value.value {
        Value::Number(v) => cmp.floats(as_float, go_num(v).as_f64()),
        Value::String(_) => {
            if let Some((kd, vd)) =
                duration_pair(DurationSide::Seconds(as_duration), duration_side(value))
            {
                return cmp.floats(go_duration::seconds(kd), go_duration::seconds(vd));
            }
            if let Some(v) = value.float() {
                return cmp.floats(as_float, v);
            }
            value.int().is_some_and(|v| cmp.floats(as_float, v as f64))
        }
        _ => false,
    }
}

/// The deprecated `Duration*` operators: numbers are seconds; `"0"` is a duration here.
fn duration_compare(cmp: Compare, key: &Prepared, value: &Prepared) -> bool {
    let k = match &key.value {
        Value::Number(n) => number_seconds(n),
        Value::String(_) => match key.duration() {
            Some(d) => d,
            None => return false,
        },
        _ => return false,
    };
    let v = match &value.value {
        Value::Number(n) => number_seconds(n),
        Value::String(_) => match value.duration() {
            Some(d) => d,
            None => return false,
        },
        _ => return false,
    };
    cmp.order(k.cmp(&v))
}

/// A key for the `In` family.
enum InKey<'a> {
    Scalar(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
    Unsupported,
}

/// The key as the `In` family sees it: a scalar as text (`fmt.Sprint`), a list of texts.
/// `strings_only`: the deprecated `In`/`NotIn`, which assert list items are strings.
fn in_key(key: &Value, strings_only: bool) -> Result<InKey<'_>, KeyItemPanic> {
    Ok(match key {
        Value::String(s) => InKey::Scalar(Cow::Borrowed(s)),
        Value::Number(_) | Value::Bool(_) => InKey::Scalar(go_sprint(key)),
        Value::Array(items) => InKey::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(Cow::Borrowed(s.as_str())),
                    other if strings_only => Err((i, type_name(other))),
                    other => Ok(go_sprint(other)),
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => InKey::Unsupported,
    })
}

fn wildcard_either(a: &str, b: &str) -> bool {
    wildcard::matches(a, b) || wildcard::matches(b, a)
}

/// `keyExistsInArray` (`deprecated`: the `In` handler) and `anyKeyExistsInArray` /
/// `allKeyExistsInArray` (identical): `None` when the value's type does not fit.
fn scalar_in(key: &str, value: &Prepared, deprecated: bool) -> Option<bool> {
    match &value.value {
        Value::Array(items) => Some(
            items
                .iter()
                .any(|item| wildcard_either(&go_sprint(item), key)),
        ),
        Value::String(v) => {
            if wildcard::matches(v, key) {
                return Some(true);
            }
            if !deprecated && value.in_range() {
                return Some(validate_string_patterns(key, v));
            }
            match value.json() {
                JsonStrings::Strings(list) => Some(list.iter().any(|item| item == key)),
                JsonStrings::NotJson if !deprecated => Some(v == key),
                JsonStrings::NotJson | JsonStrings::Other => None,
            }
        }
        _ => None,
    }
}

/// The values a list key is compared with (`None`: the value's type does not fit).
enum ValueSet<'a> {
    Texts(Vec<Cow<'a, str>>),
    Range(&'a str),
}

fn value_set<'a>(value: &'a Prepared, numbers: bool) -> Option<ValueSet<'a>> {
    match &value.value {
        Value::Array(items) => Some(ValueSet::Texts(items.iter().map(go_sprint).collect())),
        Value::Number(_) | Value::Bool(_) if numbers => {
            Some(ValueSet::Texts(vec![go_sprint(&value.value)]))
        }
        Value::String(v) => {
            if value.in_range() {
                return Some(ValueSet::Range(v));
            }
            match value.json() {
                JsonStrings::Strings(list) => Some(ValueSet::Texts(
                    list.iter().map(|s| Cow::Borrowed(s.as_str())).collect(),
                )),
                JsonStrings::NotJson => Some(ValueSet::Texts(vec![Cow::Borrowed(v.as_str())])),
                JsonStrings::Other => None,
            }
        }
        _ => None,
    }
}

/// `AnyIn`/`AnyNotIn` (`all` false) and `AllIn`/`AllNotIn` (`all` true).
fn any_or_all_in(all: bool, not_in: bool, key: &Prepared, value: &Prepared) -> bool {
    // Never a panic: these handlers print any item.
    let Ok(key_texts) = in_key(&key.value, false) else {
        return false;
    };
    match key_texts {
        InKey::Scalar(k) => match scalar_in(&k, value, false) {
            Some(exists) => exists != not_in,
            None => false,
        },
        InKey::List(keys) => {
            if let Value::String(v) = &value.value
                && keys.len() == 1
                && keys[0] == v.as_str()
            {
                return !not_in;
            }
            // `allSetExistsInArray` has no case for a number or boolean value.
            let Some(set) = value_set(value, !all) else {
                return false;
            };
            match set {
                ValueSet::Range(range) => {
                    let in_range = |k: &Cow<'_, str>| validate_string_patterns(k, range);
                    match (all, not_in) {
                        (false, false) => keys.iter().any(in_range),
                        (false, true) => {
                            // Kyverno turns the first `-` into `!-`.
                            let outside = range.replacen('-', "!-", 1);
                            keys.iter().any(|k| validate_string_patterns(k, &outside))
                        }
                        (true, false) => keys.iter().all(in_range),
                        (true, true) => !keys.iter().any(in_range),
                    }
                }
                ValueSet::Texts(values) => {
                    let found = |k: &Cow<'_, str>| values.iter().any(|v| wildcard_either(k, v));
                    match (all, not_in) {
                        (false, false) => keys.iter().any(found),
                        (false, true) => keys.iter().any(|k| !found(k)),
                        (true, false) => keys.iter().all(found),
                        (true, true) => !keys.iter().any(found),
                    }
                }
            }
        }
        InKey::Unsupported => false,
    }
}

/// The deprecated `In` and `NotIn`: exact set membership for list keys.
fn deprecated_in(not_in: bool, key: &Prepared, value: &Prepared) -> Result<bool, KeyItemPanic> {
    Ok(match in_key(&key.value, true)? {
        InKey::Scalar(k) => match scalar_in(&k, value, true) {
            Some(exists) => exists != not_in,
            None => false,
        },
        InKey::List(keys) => {
            let values: Vec<&str> = match &value.value {
                Value::Array(items) => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            Value::String(s) => out.push(s.as_str()),
                            _ => return Ok(false),
                        }
                    }
                    out
                }
                Value::String(v) => {
                    // Kyverno answers "found" here for NotIn too.
                    if keys.len() == 1 && keys[0] == v.as_str() {
                        return Ok(true);
                    }
                    match value.json() {
                        JsonStrings::Strings(list) => list.iter().map(String::as_str).collect(),
                        _ => return Ok(false),
                    }
                }
                _ => return Ok(false),
            };
            let contains = |k: &Cow<'_, str>| values.contains(&k.as_ref());
            if not_in {
                keys.iter().any(|k| !contains(k))
            } else {
                keys.iter().all(contains)
            }
        }
        InKey::Unsupported => false,
    })
}
