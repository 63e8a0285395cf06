//! Tests of Kyverno conditions.
//!
//! The Kyverno test vectors (inputs → expected results) are ported from Kyverno HEAD
//! (github.com/kyverno/kyverno, commit 111e07bbecc66abfde36ab99969af22d7a961003):
//!
//! * `pkg/engine/variables/evaluate_test.go`: `TestEvaluate` (all 336 cases, in order),
//!   `Test_Eval_Equal_Var_Pass`, `Test_Eval_Equal_Var_Fail`, `Test_Condition_Messages`,
//!   `TestEvaluateConditionsWithContext`, `TestEvaluateAnyAllConditionsNestedContext`;
//! * `pkg/engine/variables/operator/equal_test.go`, `notequal_test.go`, `in_test.go`,
//!   `anynotin_test.go`, `allnotin_test.go`, `numeric_test.go`, `duration_test.go`,
//!   `operator_test.go` (`parseDuration`, `CreateOperatorHandler`) and `utils_test.go`
//!   (`IsOperatorValid`);
//! * `pkg/engine/pattern/pattern_test.go`: the string-pattern cases the `In` family's ranges
//!   go through (`TestValidateValueWithStringPattern_Ranges`, `TestValidateDuration`,
//!   `TestValidateQuantity_*`, `TestValidateNumberWithStr_LessFloatAndInt`,
//!   `Test_validateStringPatterns`);
//! * `pkg/engine/validation_test.go`: `Test_EmptyStringInDenyCondition` (an unresolvable
//!   variable is an error).
//!
//! Go test values typed `int`/`int64` are JSON integers here and `float64` ones JSON floats
//! (`42.0`), which is how this module models Go's types. Where a Go test passes a number to
//! a function that formats it first (`pattern.convertNumberToString`), the string Go makes
//! is passed. The other tests are sealgate's.

use serde_json::{Value, json};

use super::*;

/// A precondition-style condition, as Kyverno's `TestEvaluate` builds them.
fn condition(key: Value, operator: &str, value: Value) -> Condition {
    let operator = Operator::from_name(operator).unwrap();
    Condition::new(key, operator, value, None)
}

/// An operator applied to Go-typed values (no top-level float conversion), as Kyverno's
/// handler tests call `handler.Evaluate(key, value)`.
fn handler(operator: Operator, key: Value, value: Value) -> bool {
    apply(operator, &Prepared::new(key), &Prepared::new(value)).unwrap()
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn preconditions(value: Value) -> Conditions {
    Conditions::parse(
        &value,
        &JsonPath::parse("spec.rules[0].preconditions").unwrap(),
    )
    .unwrap()
}

fn preconditions_errors(value: Value) -> Vec<ConditionsError> {
    Conditions::parse(
        &value,
        &JsonPath::parse("spec.rules[0].preconditions").unwrap(),
    )
    .unwrap_err()
}

fn attestation(value: Value) -> ConditionBlocks {
    ConditionBlocks::parse(
        &value,
        &JsonPath::parse("spec.rules[0].verifyImages[0].attestations[0].conditions").unwrap(),
    )
    .unwrap()
}

fn attestation_errors(value: Value) -> Vec<ConditionsError> {
    ConditionBlocks::parse(
        &value,
        &JsonPath::parse("spec.rules[0].verifyImages[0].attestations[0].conditions").unwrap(),
    )
    .unwrap_err()
}

fn request_object(object: Value) -> Value {
    json!({"request": {"object": object}})
}

// ---------------------------------------------------------------------------------------------
// pkg/engine/variables/evaluate_test.go: TestEvaluate
// ---------------------------------------------------------------------------------------------

#[test]
fn kyverno_test_evaluate_table() {
    // (key, operator, value, expected), keys and values as the JSON `kyverno.ToJSON` writes.
    let cases: &[(&str, &str, &str, bool)] = &[
        // Equals
        (r#""string""#, "Equals", r#""string""#, true),
        (r#"1"#, "Equals", r#"1"#, true),
        (r#"1"#, "Equals", r#"1"#, true),
        (r#"1"#, "Equals", r#"1"#, true),
        (r#"1.0"#, "Equals", r#"1.0"#, true),
        (r#"true"#, "Equals", r#"true"#, true),
        (r#"false"#, "Equals", r#"false"#, true),
        (r#""1024""#, "Equals", r#""1Ki""#, true),
        (r#""1Ki""#, "Equals", r#""1024""#, true),
        (r#""1Gi""#, "Equals", r#""1Gi""#, true),
        (r#""1Gi""#, "Equals", r#""1024Mi""#, true),
        (r#""1h""#, "Equals", r#""1h""#, true),
        (r#""1h""#, "Equals", r#""60m""#, true),
        (r#"{"foo": "bar"}"#, "Equals", r#"{"foo": "bar"}"#, true),
        (r#"["foo", "bar"]"#, "Equals", r#"["foo", "bar"]"#, true),
        (r#"[{"foo": "bar"}]"#, "Equals", r#"[{"foo": "bar"}]"#, true),
        (r#""string""#, "Equals", r#""not string""#, false),
        (r#"1"#, "Equals", r#"2"#, false),
        (r#"1"#, "Equals", r#"2"#, false),
        (r#"1"#, "Equals", r#"2"#, false),
        (r#"1.0"#, "Equals", r#"2.0"#, false),
        (r#"true"#, "Equals", r#"false"#, false),
        (r#"false"#, "Equals", r#"true"#, false),
        (r#""1Gi""#, "Equals", r#""10Gi""#, false),
        (r#""10Gi""#, "Equals", r#""1024Mi""#, false),
        (r#""1h""#, "Equals", r#""5h""#, false),
        (r#""1h""#, "Equals", r#""30m""#, false),
        (r#""string""#, "Equals", r#"1"#, false),
        (r#"1"#, "Equals", r#""2""#, false),
        (r#"1.0"#, "Equals", r#""2.0""#, false),
        (r#"true"#, "Equals", r#""false""#, false),
        (r#"false"#, "Equals", r#""true""#, false),
        (r#"{"foo": "bar"}"#, "Equals", r#"{"bar": "foo"}"#, false),
        (r#"["foo", "bar"]"#, "Equals", r#"["bar", "foo"]"#, false),
        (
            r#"[{"foo": "bar"}]"#,
            "Equals",
            r#"[{"bar": "foo"}]"#,
            false,
        ),
        (r#""1h""#, "Equals", r#"3600"#, true),
        (r#""2h""#, "Equals", r#"3600"#, false),
        (r#""1.5.2""#, "Equals", r#""1.5.2""#, true),
        (r#""1.5.2""#, "Equals", r#""1.5.*""#, true),
        (r#""1.5.0""#, "Equals", r#""1.5.5""#, false),
        // Not Equals
        (r#""string""#, "NotEquals", r#""string""#, false),
        (r#"1"#, "NotEquals", r#"1"#, false),
        (r#"1"#, "NotEquals", r#"1"#, false),
        (r#"1"#, "NotEquals", r#"1"#, false),
        (r#"1.0"#, "NotEquals", r#"1.0"#, false),
        (r#"true"#, "NotEquals", r#"false"#, true),
        (r#"false"#, "NotEquals", r#"false"#, false),
        (r#""1024""#, "NotEquals", r#""1Ki""#, false),
        (r#""1Ki""#, "NotEquals", r#""1024""#, false),
        (r#""1023""#, "NotEquals", r#""1Ki""#, true),
        (r#""1Ki""#, "NotEquals", r#""1023""#, true),
        (r#""1Gi""#, "NotEquals", r#""1Gi""#, false),
        (r#""10Gi""#, "NotEquals", r#""1024Mi""#, true),
        (r#""1h""#, "NotEquals", r#""1h""#, false),
        (r#""1h""#, "NotEquals", r#""60m""#, false),
        (r#"{"foo": "bar"}"#, "NotEquals", r#"{"foo": "bar"}"#, false),
        (r#"["foo", "bar"]"#, "NotEquals", r#"["foo", "bar"]"#, false),
        (
            r#"[{"foo": "bar"}]"#,
            "NotEquals",
            r#"[{"foo": "bar"}]"#,
            false,
        ),
        (r#""string""#, "NotEquals", r#""not string""#, true),
        (r#"1"#, "NotEquals", r#"2"#, true),
        (r#"1"#, "NotEquals", r#"2"#, true),
        (r#"1"#, "NotEquals", r#"2"#, true),
        (r#"1.0"#, "NotEquals", r#"2.0"#, true),
        (r#"true"#, "NotEquals", r#"true"#, false),
        (r#"false"#, "NotEquals", r#"true"#, true),
        (r#""1Gi""#, "NotEquals", r#""10Gi""#, true),
        (r#""1Gi""#, "NotEquals", r#""1024Mi""#, false),
        (r#""1h""#, "NotEquals", r#""5h""#, true),
        (r#""1h""#, "NotEquals", r#""30m""#, true),
        (r#""string""#, "NotEquals", r#"1"#, true),
        (r#"1"#, "NotEquals", r#""2""#, true),
        (r#"1.0"#, "NotEquals", r#""2.0""#, true),
        (r#"true"#, "NotEquals", r#""false""#, true),
        (r#"false"#, "NotEquals", r#""true""#, true),
        (r#"{"foo": "bar"}"#, "NotEquals", r#"{"bar": "foo"}"#, true),
        (r#"["foo", "bar"]"#, "NotEquals", r#"["bar", "foo"]"#, true),
        (
            r#"[{"foo": "bar"}]"#,
            "NotEquals",
            r#"[{"bar": "foo"}]"#,
            true,
        ),
        (r#""1h""#, "NotEquals", r#"3600"#, false),
        (r#""2h""#, "NotEquals", r#"3600"#, true),
        (r#""1.5.2""#, "NotEquals", r#""1.5.5""#, true),
        (r#""1.5.2""#, "NotEquals", r#""1.5.*""#, false),
        (r#""1.5.0""#, "NotEquals", r#""1.5.0""#, false),
        // Greater Than
        (r#"10"#, "GreaterThan", r#"1"#, true),
        (r#"1.5"#, "GreaterThan", r#"1.0"#, true),
        (r#"1.5"#, "GreaterThan", r#"1"#, true),
        (r#"1"#, "GreaterThan", r#"10"#, false),
        (r#"1.0"#, "GreaterThan", r#"1.5"#, false),
        (r#"1"#, "GreaterThan", r#"1.5"#, false),
        (r#"1"#, "GreaterThan", r#"1"#, false),
        (r#"1.0"#, "GreaterThan", r#"1.0"#, false),
        (r#""1025""#, "GreaterThan", r#""1Ki""#, true),
        (r#""1Ki""#, "GreaterThan", r#""1023""#, true),
        (r#""10Gi""#, "GreaterThan", r#""1Gi""#, true),
        (r#""1Gi""#, "GreaterThan", r#""1Mi""#, true),
        (r#""1Gi""#, "GreaterThan", r#""10Gi""#, false),
        (r#""10Mi""#, "GreaterThan", r#""10Mi""#, false),
        (r#""10h""#, "GreaterThan", r#""1h""#, true),
        (r#""1h""#, "GreaterThan", r#""30m""#, true),
        (r#""1h""#, "GreaterThan", r#""1h""#, false),
        (r#""1Gi""#, "GreaterThan", r#""1Gi""#, false),
        (r#""10""#, "GreaterThan", r#"1"#, true),
        (r#"100"#, "GreaterThan", r#""10""#, true),
        (r#""100""#, "GreaterThan", r#""10""#, true),
        (r#""10""#, "GreaterThan", r#""10""#, false),
        (r#""1""#, "GreaterThan", r#""10""#, false),
        (r#""1""#, "GreaterThan", r#"10"#, false),
        (r#"1"#, "GreaterThan", r#""10""#, false),
        (r#""1h""#, "GreaterThan", r#"3600"#, false),
        (r#""2h""#, "GreaterThan", r#"3600"#, true),
        (r#"3600"#, "GreaterThan", r#""1h""#, false),
        (r#"3600"#, "GreaterThan", r#""30m""#, true),
        (r#"1"#, "GreaterThan", r#"1"#, false),
        (r#"10"#, "GreaterThan", r#"1"#, true),
        (r#"1"#, "GreaterThan", r#"10"#, false),
        (r#"1"#, "GreaterThan", r#"1"#, false),
        (r#"10"#, "GreaterThan", r#"1"#, true),
        (r#"1"#, "GreaterThan", r#"10"#, false),
        (r#"1"#, "GreaterThan", r#"1"#, false),
        (r#"10"#, "GreaterThan", r#"1"#, true),
        (r#"1"#, "GreaterThan", r#"10"#, false),
        (r#"-5"#, "GreaterThan", r#"1"#, false),
        (r#"-5"#, "GreaterThan", r#"-10"#, true),
        (r#"1"#, "GreaterThan", r#"-10"#, true),
        (r#""1.5.5""#, "GreaterThan", r#""1.5.0""#, true),
        (r#""1.5.0""#, "GreaterThan", r#""1.5.5""#, false),
        // Less Than
        (r#"10"#, "LessThan", r#"1"#, false),
        (r#"1.5"#, "LessThan", r#"1.0"#, false),
        (r#"1.5"#, "LessThan", r#"1"#, false),
        (r#"1"#, "LessThan", r#"10"#, true),
        (r#"1.0"#, "LessThan", r#"1.5"#, true),
        (r#"1"#, "LessThan", r#"1.5"#, true),
        (r#"1"#, "LessThan", r#"1"#, false),
        (r#"1.0"#, "LessThan", r#"1.0"#, false),
        (r#""1023""#, "LessThan", r#""1Ki""#, true),
        (r#""1Ki""#, "LessThan", r#""1025""#, true),
        (r#""10Gi""#, "LessThan", r#""1Gi""#, false),
        (r#""1Gi""#, "LessThan", r#""10Gi""#, true),
        (r#""1Gi""#, "LessThan", r#""1Mi""#, false),
        (r#""1Mi""#, "LessThan", r#""1Gi""#, true),
        (r#""10h""#, "LessThan", r#""1h""#, false),
        (r#""1h""#, "LessThan", r#""30m""#, false),
        (r#""1h""#, "LessThan", r#""1h""#, false),
        (r#""1Gi""#, "LessThan", r#""1Gi""#, false),
        (r#""10""#, "LessThan", r#"1"#, false),
        (r#"100"#, "LessThan", r#""10""#, false),
        (r#""100""#, "LessThan", r#""10""#, false),
        (r#""10""#, "LessThan", r#""10""#, false),
        (r#""1""#, "LessThan", r#""10""#, true),
        (r#""1""#, "LessThan", r#"10"#, true),
        (r#"1"#, "LessThan", r#""10""#, true),
        (r#""1h""#, "LessThan", r#"3600"#, false),
        (r#""30m""#, "LessThan", r#"3600"#, true),
        (r#"3600"#, "LessThan", r#""1h""#, false),
        (r#"3600"#, "LessThan", r#""30m""#, false),
        (r#"1"#, "LessThan", r#"1"#, false),
        (r#"10"#, "LessThan", r#"1"#, false),
        (r#"1"#, "LessThan", r#"10"#, true),
        (r#"1"#, "LessThan", r#"1"#, false),
        (r#"10"#, "LessThan", r#"1"#, false),
        (r#"1"#, "LessThan", r#"10"#, true),
        (r#"1"#, "LessThan", r#"1"#, false),
        (r#"10"#, "LessThan", r#"1"#, false),
        (r#"1"#, "LessThan", r#"10"#, true),
        (r#"-5"#, "LessThan", r#"1"#, true),
        (r#"-5"#, "LessThan", r#"-10"#, false),
        (r#"1"#, "LessThan", r#"-10"#, false),
        (r#""1.5.5""#, "LessThan", r#""1.5.0""#, false),
        (r#""1.5.0""#, "LessThan", r#""1.5.5""#, true),
        // Greater Than or Equal
        (r#"10"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"1.5"#, "GreaterThanOrEquals", r#"1.0"#, true),
        (r#"1.5"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"1"#, "GreaterThanOrEquals", r#"10"#, false),
        (r#"1.0"#, "GreaterThanOrEquals", r#"1.5"#, false),
        (r#"1"#, "GreaterThanOrEquals", r#"1.5"#, false),
        (r#"1"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"1.0"#, "GreaterThanOrEquals", r#"1.0"#, true),
        (r#"1.0"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#""1025""#, "GreaterThanOrEquals", r#""1Ki""#, true),
        (r#""1024""#, "GreaterThanOrEquals", r#""1Ki""#, true),
        (r#""1Ki""#, "GreaterThanOrEquals", r#""1023""#, true),
        (r#""1Ki""#, "GreaterThanOrEquals", r#""1024""#, true),
        (r#""10Gi""#, "GreaterThanOrEquals", r#""1Gi""#, true),
        (r#""1Gi""#, "GreaterThanOrEquals", r#""1Mi""#, true),
        (r#""1Gi""#, "GreaterThanOrEquals", r#""10Gi""#, false),
        (r#""10h""#, "GreaterThanOrEquals", r#""1h""#, true),
        (r#""1h""#, "GreaterThanOrEquals", r#""30m""#, true),
        (r#""1h""#, "GreaterThanOrEquals", r#""1h""#, true),
        (r#""1Gi""#, "GreaterThanOrEquals", r#""1Gi""#, true),
        (r#""10""#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"100"#, "GreaterThanOrEquals", r#""10""#, true),
        (r#""100""#, "GreaterThanOrEquals", r#""10""#, true),
        (r#""10""#, "GreaterThanOrEquals", r#""10""#, true),
        (r#""1""#, "GreaterThanOrEquals", r#""10""#, false),
        (r#""1""#, "GreaterThanOrEquals", r#"10"#, false),
        (r#"1"#, "GreaterThanOrEquals", r#""10""#, false),
        (r#""1h""#, "GreaterThanOrEquals", r#"3600"#, true),
        (r#""2h""#, "GreaterThanOrEquals", r#"3600"#, true),
        (r#"1"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"10"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"1"#, "GreaterThanOrEquals", r#"10"#, false),
        (r#"1"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"10"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"1"#, "GreaterThanOrEquals", r#"10"#, false),
        (r#"1"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"10"#, "GreaterThanOrEquals", r#"1"#, true),
        (r#"1"#, "GreaterThanOrEquals", r#"10"#, false),
        (r#""1.5.5""#, "GreaterThanOrEquals", r#""1.5.5""#, true),
        (r#""1.5.5""#, "GreaterThanOrEquals", r#""1.5.0""#, true),
        (r#""1.5.0""#, "GreaterThanOrEquals", r#""1.5.5""#, false),
        // Less Than or Equal
        (r#"10"#, "LessThanOrEquals", r#"1"#, false),
        (r#"1.5"#, "LessThanOrEquals", r#"1.0"#, false),
        (r#"1.5"#, "LessThanOrEquals", r#"1"#, false),
        (r#"1"#, "LessThanOrEquals", r#"10"#, true),
        (r#"1.0"#, "LessThanOrEquals", r#"1.5"#, true),
        (r#"1"#, "LessThanOrEquals", r#"1.5"#, true),
        (r#"1"#, "LessThanOrEquals", r#"1"#, true),
        (r#"1.0"#, "LessThanOrEquals", r#"1.0"#, true),
        (r#""1Ki""#, "LessThanOrEquals", r#""1024""#, true),
        (r#""1024""#, "LessThanOrEquals", r#""1Ki""#, true),
        (r#""1Ki""#, "LessThanOrEquals", r#""1025""#, true),
        (r#""1023""#, "LessThanOrEquals", r#""1Ki""#, true),
        (r#""10Gi""#, "LessThanOrEquals", r#""1Gi""#, false),
        (r#""1Gi""#, "LessThanOrEquals", r#""10Gi""#, true),
        (r#""1Gi""#, "LessThanOrEquals", r#""1Mi""#, false),
        (r#""1Mi""#, "LessThanOrEquals", r#""1Gi""#, true),
        (r#""10h""#, "LessThanOrEquals", r#""1h""#, false),
        (r#""1h""#, "LessThanOrEquals", r#""30m""#, false),
        (r#""1h""#, "LessThanOrEquals", r#""1h""#, true),
        (r#""1Gi""#, "LessThanOrEquals", r#""1Gi""#, true),
        (r#""10""#, "LessThanOrEquals", r#"1"#, false),
        (r#"100"#, "LessThanOrEquals", r#""10""#, false),
        (r#""100""#, "LessThanOrEquals", r#""10""#, false),
        (r#""10""#, "LessThanOrEquals", r#""10""#, true),
        (r#""1""#, "LessThanOrEquals", r#""10""#, true),
        (r#""1""#, "LessThanOrEquals", r#"10"#, true),
        (r#"1"#, "LessThanOrEquals", r#""10""#, true),
        (r#""1h""#, "LessThanOrEquals", r#"3600"#, true),
        (r#""2h""#, "LessThanOrEquals", r#"3600"#, false),
        (r#"1"#, "LessThanOrEquals", r#"1"#, true),
        (r#"10"#, "LessThanOrEquals", r#"1"#, false),
        (r#"1"#, "LessThanOrEquals", r#"10"#, true),
        (r#"1"#, "LessThanOrEquals", r#"1"#, true),
        (r#"10"#, "LessThanOrEquals", r#"1"#, false),
        (r#"1"#, "LessThanOrEquals", r#"10"#, true),
        (r#"1"#, "LessThanOrEquals", r#"1"#, true),
        (r#"10"#, "LessThanOrEquals", r#"1"#, false),
        (r#"1"#, "LessThanOrEquals", r#"10"#, true),
        (r#""1.5.5""#, "LessThanOrEquals", r#""1.5.5""#, true),
        (r#""1.5.0""#, "LessThanOrEquals", r#""1.5.5""#, true),
        (r#""1.5.5""#, "LessThanOrEquals", r#""1.5.0""#, false),
        // In
        (r#"1"#, "In", r#"[1, 2, 3]"#, true),
        (r#"1.5"#, "In", r#"[1, 1.5, 2, 3]"#, true),
        (r#""1""#, "In", r#"["1", "2", "3"]"#, true),
        (
            r#"["1.1.1.1", "2.2.2.2"]"#,
            "In",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (r#"5"#, "In", r#"[1, 2, 3]"#, false),
        (r#"5.5"#, "In", r#"[1, 1.5, 2, 3]"#, false),
        (r#""5""#, "In", r#"["1", "2", "3"]"#, false),
        (r#""1.1.1.1""#, "In", r#"["1*"]"#, true),
        (
            r#"["1.1.1.1", "4.4.4.4"]"#,
            "In",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        // Not In
        (r#"1"#, "NotIn", r#"[1, 2, 3]"#, false),
        (r#"1.5"#, "NotIn", r#"[1, 1.5, 2, 3]"#, false),
        (r#""1""#, "NotIn", r#"["1", "2", "3"]"#, false),
        (
            r#"["1.1.1.1", "2.2.2.2"]"#,
            "NotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (r#"5"#, "NotIn", r#"[1, 2, 3]"#, true),
        (r#"5.5"#, "NotIn", r#"[1, 1.5, 2, 3]"#, true),
        (r#""5""#, "NotIn", r#"["1", "2", "3"]"#, true),
        (
            r#"["1.1.1.1", "4.4.4.4"]"#,
            "NotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        // Any In
        (
            r#"["1.1.1.1", "5.5.5.5"]"#,
            "AnyIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (r#"["1.1.1.1", "5.5.5.5"]"#, "AnyIn", r#""1.1.1.1""#, true),
        (
            r#"["4.4.4.4", "5.5.5.5"]"#,
            "AnyIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (r#"["1.1.1.1", "5.5.5.5"]"#, "AnyIn", r#"["1.1.1.1"]"#, true),
        (r#"[1, 2]"#, "AnyIn", r#"[1, 2, 3, 4]"#, true),
        (r#"[1, 5]"#, "AnyIn", r#"[1, 2, 3, 4]"#, true),
        (r#"[5]"#, "AnyIn", r#"[1, 2, 3, 4]"#, false),
        (
            r#"["1*"]"#,
            "AnyIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["5*"]"#,
            "AnyIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (
            r#"["1.1.1.1", "2.2.2.2", "5.5.5.5"]"#,
            "AnyIn",
            r#"["2*"]"#,
            true,
        ),
        (
            r#"["1.1.1.1", "2.2.2.2", "5.5.5.5"]"#,
            "AnyIn",
            r#"["4*"]"#,
            false,
        ),
        (r#"["5"]"#, "AnyIn", r#""1-3""#, false),
        (r#""1.1.1.1""#, "AnyIn", r#"["1*"]"#, true),
        (r#""5""#, "AnyIn", r#""1-10""#, true),
        (r#"5"#, "AnyIn", r#""1-10""#, true),
        (r#"[1, 5]"#, "AnyIn", r#""7-10""#, false),
        (r#"[1, 5]"#, "AnyIn", r#""0-10""#, true),
        (r#"[1.002, 1.222]"#, "AnyIn", r#""1.001-10""#, true),
        // All In
        (
            r#"["1.1.1.1", "2.2.2.2"]"#,
            "AllIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["1.1.1.1", "5.5.5.5"]"#,
            "AllIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (
            r#"["4.4.4.4", "5.5.5.5"]"#,
            "AllIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (
            r#"["1.1.1.1", "5.5.5.5"]"#,
            "AllIn",
            r#"["1.1.1.1"]"#,
            false,
        ),
        (r#"[1, 2]"#, "AllIn", r#"[1, 2, 3, 4]"#, true),
        (r#"[1, 5]"#, "AllIn", r#"[1, 2, 3, 4]"#, false),
        (r#"[5]"#, "AllIn", r#"[1, 2, 3, 4]"#, false),
        (
            r#"["1*"]"#,
            "AllIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["5*"]"#,
            "AllIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (
            r#"["2.1.1.1", "2.2.2.2", "2.5.5.5"]"#,
            "AllIn",
            r#"["2*"]"#,
            true,
        ),
        (
            r#"["1.1.1.1", "2.2.2.2", "5.5.5.5"]"#,
            "AllIn",
            r#"["4*"]"#,
            false,
        ),
        (r#"["1.1.1.1", "5.5.5.5"]"#, "AllIn", r#""5.5.5.5""#, false),
        (r#"5"#, "AllIn", r#""1-10""#, true),
        (r#"[3, 2]"#, "AllIn", r#""1-10""#, true),
        (r#"[3, 2]"#, "AllIn", r#""5-10""#, false),
        // All Not In
        (r#"1"#, "AllNotIn", r#"[1, 2, 3]"#, false),
        (r#"1.5"#, "AllNotIn", r#"[1, 1.5, 2, 3]"#, false),
        (r#""1""#, "AllNotIn", r#"["1", "2", "3"]"#, false),
        (
            r#"["1.1.1.1", "2.2.2.2"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (r#"5"#, "AllNotIn", r#"[1, 2, 3]"#, true),
        (r#"5.5"#, "AllNotIn", r#"[1, 1.5, 2, 3]"#, true),
        (r#""5""#, "AllNotIn", r#"["1", "2", "3"]"#, true),
        (
            r#"["1.1.1.1", "4.4.4.4"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (
            r#"["1.1.1.1", "4.4.4.4"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1"]"#,
            false,
        ),
        (
            r#"["1.1.1.1", "4.4.4.4", "1.1.1.1"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3", "1.1.1.1", "4.4.4.4"]"#,
            false,
        ),
        (
            r#"["5.5.5.5", "4.4.4.4"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["7*", "6*", "5*"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["1*", "2*"]"#,
            "AllNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (
            r#"["1.1.1.1", "3.3.3.3", "5.5.5.5"]"#,
            "AllNotIn",
            r#"["2*"]"#,
            true,
        ),
        (
            r#"["4.1.1.1", "4.2.2.2", "4.5.5.5"]"#,
            "AllNotIn",
            r#"["4*"]"#,
            false,
        ),
        (
            r#"["1.1.1.1", "4.4.4.4"]"#,
            "AllNotIn",
            r#""2.2.2.2""#,
            true,
        ),
        (r#"5.5"#, "AllNotIn", r#""6-10""#, true),
        (r#""5""#, "AllNotIn", r#""1-6""#, false),
        (r#"[3, 2]"#, "AllNotIn", r#""5-10""#, true),
        (r#"[2, 6]"#, "AllNotIn", r#""5-10""#, false),
        // Any Not In
        (r#"1"#, "AnyNotIn", r#"[1, 2, 3]"#, false),
        (r#"1.5"#, "AnyNotIn", r#"[1, 1.5, 2, 3]"#, false),
        (r#""1""#, "AnyNotIn", r#"["1", "2", "3"]"#, false),
        (
            r#"["1.1.1.1", "2.2.2.2"]"#,
            "AnyNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            false,
        ),
        (r#"5"#, "AnyNotIn", r#"[1, 2, 3]"#, true),
        (r#"5.5"#, "AnyNotIn", r#"[1, 1.5, 2, 3]"#, true),
        (r#""5""#, "AnyNotIn", r#"["1", "2", "3"]"#, true),
        (
            r#"["1.1.1.1", "4.4.4.4"]"#,
            "AnyNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["5.5.5.5", "4.4.4.4"]"#,
            "AnyNotIn",
            r#""4.4.4.4""#,
            true,
        ),
        (
            r#"["5.5.5.5", "4.4.4.4"]"#,
            "AnyNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["1*", "3*", "5*"]"#,
            "AnyNotIn",
            r#"["1.1.1.1", "2.2.2.2", "3.3.3.3"]"#,
            true,
        ),
        (
            r#"["1.1.1.1", "2.2.2.2", "5.5.5.5"]"#,
            "AnyNotIn",
            r#"["2*"]"#,
            true,
        ),
        (r#"["2.2*"]"#, "AnyNotIn", r#"["2.2.2.2"]"#, false),
        (r#""5""#, "AnyNotIn", r#""1-3""#, true),
        (r#"[1, 5, 11]"#, "AnyNotIn", r#""0-10""#, true),
        (r#"[1, 5, 7]"#, "AnyNotIn", r#""0-10""#, false),
    ];
    assert_eq!(cases.len(), 336);
    let context = json!({});
    for (i, (key, operator, value, want)) in cases.iter().enumerate() {
        let c = condition(parse_json(key), operator, parse_json(value));
        assert_eq!(
            c.holds(&context).unwrap(),
            *want,
            "case {i}: {key} {operator} {value}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// pkg/engine/variables/operator/*_test.go: the handlers
// ---------------------------------------------------------------------------------------------

fn handler_table(operator: Operator, cases: &[(&str, &str, bool)]) {
    for (key, value, want) in cases {
        assert_eq!(
            handler(operator, parse_json(key), parse_json(value)),
            *want,
            "{key} {operator} {value}"
        );
    }
}

#[test]
fn kyverno_equal_handler() {
    // TestEqualHandler_Evaluate, then ValidateValueWith{Int,Float,Bool}Pattern.
    handler_table(
        Operator::Equals,
        &[
            ("true", "true", true),
            ("false", "false", true),
            ("true", "false", false),
            ("true", r#""true""#, false),
            ("42", "42", true),
            ("42", "43", false),
            ("100", "100", true),
            ("42", "42", true),
            ("42", "42.0", true),
            ("42", "42.5", false),
            ("42", r#""42""#, true),
            ("42", r#""invalid""#, false),
            ("3.14", "3.14", true),
            ("3.14", "2.71", false),
            ("42.0", "42", true),
            ("100.0", "100", true),
            ("3.14", r#""3.14""#, true),
            ("3.14", r#""invalid""#, false),
            (r#""hello""#, r#""hello""#, true),
            (r#""hello""#, r#""world""#, false),
            (r#""hello-world""#, r#""hello-*""#, true),
            (r#""goodbye-world""#, r#""hello-*""#, false),
            (r#""hello""#, "123", false),
            (r#""100Mi""#, r#""100Mi""#, true),
            (r#""1Gi""#, r#""1024Mi""#, true),
            (r#""100Mi""#, r#""200Mi""#, false),
            (r#""1h""#, r#""60m""#, true),
            (r#""1h""#, r#""30m""#, false),
            (r#"{"foo": "bar"}"#, r#"{"foo": "bar"}"#, true),
            (r#"{"foo": "bar"}"#, r#"{"foo": "baz"}"#, false),
            (r#"{"foo": "bar"}"#, r#""not a map""#, false),
            (r#"["a", "b", "c"]"#, r#"["a", "b", "c"]"#, true),
            (r#"["a", "b", "c"]"#, r#"["a", "b", "d"]"#, false),
            (r#"["a", "b", "c"]"#, r#"["a", "b"]"#, false),
            (r#"["a", "b", "c"]"#, r#""not a slice""#, false),
            // "unsupported type" (struct{}): JSON has none; null is the unsupported key.
            ("null", "null", false),
            ("10", "10", true),
            ("10", "10.0", true),
            ("10", "10.5", false),
            ("10", r#""10""#, true),
            ("10", r#""abc""#, false),
            ("10", "true", false),
            ("10.0", "10", true),
            ("10.5", "10", false),
            ("3.14", "true", false),
            ("true", r#""true""#, false),
        ],
    );
}

#[test]
fn kyverno_not_equal_handler() {
    handler_table(
        Operator::NotEquals,
        &[
            ("true", "false", true),
            ("42", "43", true),
            ("5", "5.5", true),
            ("3.14", "2.71", true),
            (r#""hello""#, r#""world""#, true),
            (r#""100Mi""#, r#""not-a-quantity""#, true),
            (r#""1h""#, r#""30m""#, true),
            (r#"{"foo": "bar"}"#, r#"{"foo": "baz"}"#, true),
            (r#"["a", "b"]"#, r#"["a", "c"]"#, true),
        ],
    );
}

#[test]
fn kyverno_in_handler() {
    // TestInHandler_Evaluate.
    handler_table(
        Operator::In,
        &[
            (r#""apple""#, r#"["apple", "banana", "cherry"]"#, true),
            (r#""grape""#, r#"["apple", "banana", "cherry"]"#, false),
            (r#""apple""#, "[]", false),
            (r#""hello""#, r#""hello""#, true),
            (r#""hello-world""#, r#""hello-*""#, true),
            (r#""goodbye-world""#, r#""hello-*""#, false),
            (
                r#""apple""#,
                r#""[\"apple\", \"banana\", \"cherry\"]""#,
                true,
            ),
            (
                r#""grape""#,
                r#""[\"apple\", \"banana\", \"cherry\"]""#,
                false,
            ),
            ("42", r#"["42", "43", "44"]"#, true),
            ("99", r#"["42", "43", "44"]"#, false),
            ("100", r#"["100", "200"]"#, true),
            ("3.14", r#"["3.14", "2.71"]"#, true),
            ("true", r#"["true", "false"]"#, true),
            (
                r#"["apple", "banana"]"#,
                r#"["apple", "banana", "cherry"]"#,
                true,
            ),
            (
                r#"["apple", "grape"]"#,
                r#"["apple", "banana", "cherry"]"#,
                false,
            ),
            (
                r#"["apple", "banana"]"#,
                r#""[\"apple\", \"banana\", \"cherry\"]""#,
                true,
            ),
            (r#"{"foo": "bar"}"#, r#"["a", "b"]"#, false),
            (r#""apple""#, "12345", false),
            // TestInHandler_ValidateValueWithStringPattern.
            (r#""test""#, r#"["test", "other"]"#, true),
            (r#""missing""#, r#"["test", "other"]"#, false),
            (r#""prefix-suffix""#, r#""prefix-*""#, true),
            (r#""test""#, "123", false),
            // TestInHandler_ValidateValueWithStringSetPattern.
            (r#"["a", "b"]"#, r#"["a", "b", "c"]"#, true),
            (r#"["a", "d"]"#, r#"["a", "b", "c"]"#, false),
            (r#"["a", "b"]"#, r#""[\"a\", \"b\", \"c\"]""#, true),
            (r#"["test"]"#, r#""test""#, true),
            (r#"["other"]"#, r#""test""#, false),
            (r#"["a"]"#, "123", false),
            // TestSetExistsInArray (In): found, not all found, invalid JSON, non-string
            // item in the value, value of another type.
            (r#"["a", "b"]"#, r#"["a", "b", "c"]"#, true),
            (r#"["a", "d"]"#, r#"["a", "b", "c"]"#, false),
            (r#"["a"]"#, r#""not-json""#, false),
            (r#"["a"]"#, r#"["a", 123]"#, false),
            (r#"["a"]"#, "12345", false),
            // TestIsIn: empty key, empty value, both empty.
            (r#"[]"#, r#"["a", "b"]"#, true),
            (r#"["a"]"#, "[]", false),
            ("[]", "[]", true),
        ],
    );
    // TestSetExistsInArray (NotIn) and TestIsNotIn.
    handler_table(
        Operator::NotIn,
        &[
            (r#"["a", "d"]"#, r#"["a", "b", "c"]"#, true),
            (r#"["a", "b"]"#, r#"["a", "b", "c"]"#, false),
            ("[]", r#"["a", "b"]"#, false),
            (r#"["a"]"#, "[]", true),
            ("[]", "[]", false),
        ],
    );
}

#[test]
fn kyverno_key_exists_in_array() {
    // TestKeyExistsInArray: `None` is Kyverno's "invalid type".
    let cases: &[(&str, &str, Option<bool>)] = &[
        ("apple", r#"["apple", "banana"]"#, Some(true)),
        ("cherry", r#"["apple", "banana"]"#, Some(false)),
        ("hello-world", r#"["hello-*", "goodbye"]"#, Some(true)),
        ("hello-*", r#"["hello-world", "goodbye"]"#, Some(true)),
        ("test", r#""test""#, Some(true)),
        ("prefix-suffix", r#""prefix-*""#, Some(true)),
        ("a", r#""[\"a\", \"b\", \"c\"]""#, Some(true)),
        ("d", r#""[\"a\", \"b\", \"c\"]""#, Some(false)),
        ("a", r#""not-valid-json""#, None),
        ("a", "12345", None),
    ];
    for (key, value, want) in cases {
        let value = Prepared::new(parse_json(value));
        assert_eq!(
            scalar_in(key, &value, true),
            *want,
            "{key} in {:?}",
            value.value
        );
    }
}

#[test]
fn kyverno_any_not_in_handler() {
    handler_table(
        Operator::AnyNotIn,
        &[
            (r#""kyverno""#, r#""kyverno""#, false),
            (r#""kube-system""#, r#"["default", "kube-*"]"#, false),
            (r#""kyverno""#, r#""default""#, true),
            ("64", r#""64""#, false),
            ("1", "[1, 2, 3]", false),
            ("64", r#""default""#, true),
            ("3.14", r#""3.14""#, false),
            ("2.2", "[1.1, 2.2, 3.3]", false),
            ("3.14", r#""default""#, true),
            ("true", "true", false),
            (r#"["kube-system", "kube-public"]"#, r#""kube-*""#, false),
            (r#"["kube-system", "default"]"#, r#""kube-system""#, true),
            (r#"["default", "kyverno"]"#, r#""kube-*""#, true),
            ("[1, 2, 3]", "2", true),
            ("[1, 2, 3]", "4", true),
            ("[1.1, 2.2, 3.3]", "1.1", true),
            ("[1.1, 2.2, 3.3]", "4.4", true),
            ("[true, false]", "true", true),
            ("[true]", "false", true),
            (
                r#"["default", "kyverno"]"#,
                r#"["kube-*", "kube-system"]"#,
                true,
            ),
            (r#"["default", "kyverno"]"#, r#"["kube-*", "ky*"]"#, true),
            ("[]", r#"["default", "kyverno"]"#, false),
            (r#""""#, r#"["default", "kyverno"]"#, true),
        ],
    );
}

#[test]
fn kyverno_all_not_in_handler() {
    handler_table(
        Operator::AllNotIn,
        &[
            (r#""kyverno""#, r#""kyverno""#, false),
            (r#""kube-system""#, r#"["default", "kube-*"]"#, false),
            (r#""kyverno""#, r#""default""#, true),
            ("64", r#""64""#, false),
            ("64", r#""default""#, true),
            (r#"["kube-system", "kube-public"]"#, r#""kube-*""#, false),
            (r#"["kube-system", "default"]"#, r#""kube-system""#, false),
            (r#"["default", "kyverno"]"#, r#""kube-*""#, true),
            (
                r#"["default", "kyverno"]"#,
                r#"["kube-*", "kube-system"]"#,
                true,
            ),
            (r#"["default", "kyverno"]"#, r#"["kube-*", "ky*"]"#, false),
        ],
    );
}

#[test]
fn kyverno_numeric_handler() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("GreaterThan", "10", "5", true),
        ("GreaterThan", "5", "10", false),
        ("GreaterThan", "5", "5", false),
        ("GreaterThanOrEquals", "10", "10", true),
        ("LessThan", "5", "10", true),
        ("LessThanOrEquals", "5", "5", true),
        ("GreaterThan", "10.5", "10.4", true),
        ("LessThan", "10.4", "10.5", true),
        ("GreaterThan", r#""100""#, "50", true),
        ("LessThan", r#""50""#, r#""100""#, true),
        ("GreaterThan", r#""1.2.3""#, r#""1.2.2""#, true),
        ("LessThan", r#""1.1.0""#, r#""1.2.0""#, true),
        ("GreaterThanOrEquals", r#""1.2.0""#, r#""1.2.0""#, true),
        ("GreaterThan", r#""200Mi""#, r#""100Mi""#, true),
        ("LessThan", r#""1Gi""#, r#""2Gi""#, true),
        ("GreaterThanOrEquals", r#""500m""#, r#""0.5""#, true),
        ("GreaterThan", "true", "5", false),
        ("GreaterThan", r#""not-a-number""#, "5", false),
        ("GreaterThan", "null", "5", false),
    ];
    for (operator, key, value, want) in cases {
        let op = Operator::from_name(operator).unwrap();
        assert_eq!(
            handler(op, parse_json(key), parse_json(value)),
            *want,
            "{key} {operator} {value}"
        );
    }
}

#[test]
fn kyverno_duration_handlers() {
    handler_table(
        Operator::DurationGreaterThan,
        &[
            (r#""2h""#, r#""1h""#, true),
            (r#""1h""#, r#""2h""#, false),
            (r#""1h""#, r#""1h""#, false),
            (r#""60m""#, r#""1h""#, false),
            (r#""61m""#, r#""1h""#, true),
            ("120", "60", true),
            ("60", "120", false),
            ("3600", "1800", true),
            ("120", r#""1m""#, true),
            ("120.5", "60.5", true),
            ("120.5", "60", true),
            ("120.0", r#""1m""#, true),
            ("true", "false", false),
            // ValidateValueWith{Int,Float,String}Pattern.
            ("120", "60.0", true),
            ("120", r#""invalid""#, false),
            ("120", "true", false),
            ("120.0", "60", true),
            ("120.0", "60.0", true),
            ("120.0", r#""invalid""#, false),
            ("120.0", "true", false),
            (r#""2m""#, "60", true),
            (r#""2m""#, "60.0", true),
            (r#""invalid""#, "60", false),
            (r#""1h""#, r#""invalid""#, false),
            (r#""1h""#, "true", false),
        ],
    );
    handler_table(
        Operator::DurationGreaterThanOrEquals,
        &[
            (r#""2h""#, r#""1h""#, true),
            (r#""1h""#, r#""60m""#, true),
            (r#""30m""#, r#""1h""#, false),
            ("60", "60", true),
        ],
    );
    handler_table(
        Operator::DurationLessThan,
        &[
            (r#""30m""#, r#""1h""#, true),
            (r#""2h""#, r#""1h""#, false),
            (r#""1h""#, r#""60m""#, false),
            ("30", "60", true),
        ],
    );
    handler_table(
        Operator::DurationLessThanOrEquals,
        &[
            (r#""30m""#, r#""1h""#, true),
            (r#""1h""#, r#""60m""#, true),
            (r#""2h""#, r#""1h""#, false),
            ("60", "60", true),
        ],
    );
}

#[test]
fn kyverno_parse_duration() {
    let pair = |key: &str, value: &str| {
        let (k, v) = (
            Prepared::new(parse_json(key)),
            Prepared::new(parse_json(value)),
        );
        duration_pair(duration_side(&k), duration_side(&v))
    };
    const S: i64 = SECOND;
    // Both durations; one a duration, the other a number of seconds.
    assert_eq!(pair(r#""2h""#, r#""1h""#), Some((7200 * S, 3600 * S)));
    assert_eq!(pair(r#""90m""#, r#""1h30m""#), Some((5400 * S, 5400 * S)));
    assert_eq!(pair(r#""30s""#, r#""45s""#), Some((30 * S, 45 * S)));
    assert_eq!(pair(r#""0s""#, r#""1h""#), Some((0, 3600 * S)));
    assert_eq!(pair(r#""2m""#, "60"), Some((120 * S, 60 * S)));
    assert_eq!(pair(r#""1h""#, "120"), Some((3600 * S, 120 * S)));
    assert_eq!(pair(r#""30s""#, "10.0"), Some((30 * S, 10 * S)));
    assert_eq!(pair("120", r#""2m""#), Some((120 * S, 120 * S)));
    assert_eq!(pair("3600", r#""30m""#), Some((3600 * S, 1800 * S)));
    assert_eq!(pair("60.0", r#""1m""#), Some((60 * S, 60 * S)));
    // Neither is a duration ("0" is not one here).
    assert_eq!(pair(r#""hello""#, r#""world""#), None);
    assert_eq!(pair("100", "200"), None);
    assert_eq!(pair(r#""0""#, r#""0""#), None);
    // A duration with something that is neither a duration nor a number.
    assert_eq!(pair(r#""1h""#, "true"), None);
    assert_eq!(pair("true", r#""1h""#), None);
    assert_eq!(pair(r#""1h""#, "{}"), None);
}

#[test]
fn kyverno_operator_names() {
    // TestCreateOperatorHandler_*, TestIsOperatorValid: the 18 names are valid, exactly.
    for name in [
        "Equal",
        "Equals",
        "NotEqual",
        "NotEquals",
        "In",
        "AnyIn",
        "AllIn",
        "NotIn",
        "AnyNotIn",
        "AllNotIn",
        "GreaterThanOrEquals",
        "GreaterThan",
        "LessThanOrEquals",
        "LessThan",
        "DurationGreaterThanOrEquals",
        "DurationGreaterThan",
        "DurationLessThanOrEquals",
        "DurationLessThan",
    ] {
        assert_eq!(Operator::from_name(name).map(Operator::name), Some(name));
    }
    assert_eq!(Operator::from_name("InvalidOperator"), None);
    assert_eq!(Operator::from_name(""), None);
    // Kyverno's handler lookup ignores case, its policy validation does not: sealgate
    // refuses other spellings at load (see `operator_names_are_case_sensitive_at_load`).
    assert_eq!(Operator::from_name("equals"), None);
    assert_eq!(Operator::from_name("EQUALS"), None);
    // TestIsOperatorDeprecated / GetDeprecatedOperatorAlternative.
    assert_eq!(
        Operator::In.replacements(),
        &[Operator::AllIn, Operator::AnyIn]
    );
    assert_eq!(
        Operator::NotIn.replacements(),
        &[Operator::AllNotIn, Operator::AnyNotIn]
    );
    assert!(!Operator::AnyIn.is_deprecated());
    assert!(Operator::DurationLessThan.is_deprecated());
}

// ---------------------------------------------------------------------------------------------
// pkg/engine/pattern/pattern_test.go: the patterns behind `In` ranges
// ---------------------------------------------------------------------------------------------

#[test]
fn kyverno_string_pattern_ranges() {
    // TestValidateValueWithStringPattern_Ranges (numbers as convertNumberToString writes
    // them: Itoa for integers, %f for floats).
    let cases: &[(&str, &str, bool)] = &[
        ("4", ">= 3", true),
        ("0", "0-2", true),
        ("1", "0-2", true),
        ("2", "0-2", true),
        ("3", "0-2", false),
        ("0", "10!-20", true),
        ("15", "10!-20", false),
        ("25", "10!-20", true),
        ("0", "0.00001-2.00001", false),
        ("1", "0.00001-2.00001", true),
        ("2", "0.00001-2.00001", true),
        ("2.000100", "0.00001-2.00001", false),
        ("0", "0.00001!-2.00001", true),
        ("1", "0.00001!-2.00001", false),
        ("2", "0.00001!-2.00001", false),
        ("2.000100", "0.00001!-2.00001", true),
        ("2", "2-2", true),
        ("2", "2!-2", false),
        ("2.999990", "2.99998-3", true),
        ("2.999970", "2.99998!-3", true),
        ("3.000010", "2.99998!-3", true),
        ("256Mi", "128Mi-512Mi", true),
        ("1024Mi", "128Mi-512Mi", false),
        ("64Mi", "128Mi-512Mi", false),
        ("256Mi", "128Mi!-512Mi", false),
        ("1024Mi", "128Mi!-512Mi", true),
        ("64Mi", "128Mi!-512Mi", true),
        ("-9", "-10-8", true),
        ("9", "-10--8", false),
        ("9", "-10!--8", true),
        ("9Mi", "-10Mi!--8Mi", true),
        ("-9", "-10!--8", false),
        ("-9Mi", "-10Mi-8Mi", true),
        ("9Mi", "-10Mi!-8Mi", true),
        ("0", "-10-+8", true),
        ("7Mi", "-10Mi-+8Mi", true),
        ("10", "-10!-+8", true),
        ("10Mi", "-10Mi!-+8Mi", true),
        ("0", "+0-+1", true),
        ("10Mi", "+0Mi-+1024Mi", true),
        ("10", "+0!-+1", true),
        ("1025Mi", "+0Mi!-+1024Mi", true),
    ];
    for (value, pattern, want) in cases {
        assert_eq!(
            validate_string_pattern(value, pattern),
            *want,
            "{value} vs {pattern}"
        );
    }
    // Test_validateStringPatterns.
    let cases: &[(&str, &str, bool)] = &[
        ("5.16.5-arch1-1", "!5.10.84-1", true),
        ("5.10.84-1", "5.10.84-1", true),
        ("!5.10.84-1", "!5.10.84-1", true),
        ("5.10.84-1", "!5.10.84-1", false),
        ("5.16.5-arch1-1", "!5.10.84-1 & !5.15.2-1", true),
        ("5.10.84-1", "!5.10.84-1 & !5.15.2-1", false),
        ("5.15.2-1", "!5.10.84-1 & !5.15.2-1", false),
    ];
    for (value, pattern, want) in cases {
        assert_eq!(
            validate_string_patterns(value, pattern),
            *want,
            "{value} vs {pattern}"
        );
    }
    // TestGetOperatorFromStringPattern_OneChar / _EmptyString, and Test_split.
    assert_eq!(pattern_operator("f"), PatternOp::Equal);
    assert_eq!(pattern_operator(""), PatternOp::Equal);
    assert_eq!(split_range("", "-"), None);
    assert_eq!(split_range("", "!-"), None);
    assert_eq!(split_range("1-10", "-"), Some(("1", "10")));
    assert_eq!(split_range("-10Mi!--8Mi", "!-"), Some(("-10Mi", "-8Mi")));
}

#[test]
fn kyverno_validate_string() {
    use PatternOp::*;
    let cases: &[(&str, &str, PatternOp, bool)] = &[
        // TestValidateNumberWithStr_LessFloatAndInt (%f of 7.00001, 7.0, 6.000000001).
        ("7.000010", "7.000001", More, true),
        ("7.000010", "7", NotEqual, true),
        ("7.000000", "7", Equal, true),
        ("6.000000", "6", Less, false),
        // TestValidateQuantity_InvalidQuantity.
        ("1024Gi", "", Equal, false),
        ("gii", "1024Gi", Equal, false),
        // TestValidateDuration.
        ("12s", "12s", Equal, true),
        ("12s", "15s", NotEqual, true),
        ("12s", "15s", Less, true),
        ("12s", "15s", LessEqual, true),
        ("12s", "12s", LessEqual, true),
        ("15s", "12s", Less, false),
        ("15s", "12s", LessEqual, false),
        ("15s", "12s", More, true),
        ("15s", "12s", MoreEqual, true),
        ("12s", "12s", MoreEqual, true),
        ("12s", "15s", More, false),
        ("12s", "15s", MoreEqual, false),
        // TestValidateQuantity_Equal.
        ("1024Gi", "1024Gi", Equal, true),
        ("1024Mi", "1Gi", Equal, true),
        ("0.2", "200m", Equal, true),
        ("500", "500", Equal, true),
        ("2048", "1024", Equal, false),
        ("1024", "1024", Equal, true),
        // TestValidateQuantity_Operation and _No_String_Check.
        ("1Gi", "1000Mi", More, true),
        ("1G", "1Gi", Less, true),
        ("500m", "0.5", MoreEqual, true),
        ("1", "500m", MoreEqual, true),
        ("0.5", ".5", LessEqual, true),
        ("0.2", ".5", LessEqual, true),
        ("0.2", ".5", NotEqual, true),
        ("500m", "0.6", MoreEqual, false),
    ];
    for (value, pattern, op, want) in cases {
        assert_eq!(
            validate_string(value, pattern, *op),
            *want,
            "{value} {op:?} {pattern}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// pkg/engine/variables/evaluate_test.go: variables and messages
// ---------------------------------------------------------------------------------------------

fn temp_resource() -> Value {
    request_object(json!({
        "metadata": {"name": "temp", "namespace": "n1"},
        "spec": {"namespace": "n1", "name": "temp1", "foo": "bar", "foo2": "bar2"}
    }))
}

#[test]
fn kyverno_eval_equal_var() {
    // Test_Eval_Equal_Var_Pass / _Fail (operator `Equal`).
    let pass = condition(
        json!("{{request.object.metadata.name}}"),
        "Equal",
        json!("temp"),
    );
    assert!(pass.holds(&temp_resource()).unwrap());
    let fail = condition(
        json!("{{request.object.metadata.name}}"),
        "Equal",
        json!("temp1"),
    );
    assert!(!fail.holds(&temp_resource()).unwrap());
}

#[test]
fn kyverno_condition_messages() {
    // Test_Condition_Messages, its four steps.
    let name = |value: &str, message: &str| json!({"key": "{{request.object.metadata.name}}", "operator": "Equal", "value": value, "message": message});
    let foo = |value: &str, message: &str| json!({"key": "{{request.object.spec.foo}}", "operator": "Equal", "value": value, "message": message});
    let context = temp_resource();

    let block =
        preconditions(json!({"any": [name("temp2", "invalid name"), foo("bar2", "invalid foo")]}));
    let outcome = block.evaluate(&context).unwrap();
    assert!(!outcome.met);
    assert_eq!(
        outcome.message.as_deref(),
        Some("invalid name; invalid foo")
    );

    // Kyverno also returns the messages of the conditions that held ("invalid name");
    // sealgate reports messages only when the block fails.
    let block =
        preconditions(json!({"any": [name("temp", "invalid name"), foo("bar", "invalid foo")]}));
    assert_eq!(
        block.evaluate(&context).unwrap(),
        ConditionsOutcome {
            met: true,
            message: None
        }
    );

    let block = preconditions(json!({
        "any": [name("temp", "invalid name"), foo("bar", "invalid foo")],
        "all": [name("temp", "invalid name"), foo("bar2", "invalid foo")]
    }));
    let outcome = block.evaluate(&context).unwrap();
    assert!(!outcome.met);
    assert_eq!(outcome.message.as_deref(), Some("invalid foo"));

    let block = preconditions(json!({
        "any": [name("temp1", "invalid name"), foo("bar2", "invalid foo")],
        "all": [name("temp", "invalid name"), foo("bar2", "invalid foo2")]
    }));
    let outcome = block.evaluate(&context).unwrap();
    assert!(!outcome.met);
    assert_eq!(
        outcome.message.as_deref(),
        Some("invalid name; invalid foo; invalid foo2")
    );
    assert_eq!(
        outcome.skip_message(),
        "preconditions not met; invalid name; invalid foo; invalid foo2"
    );
}

fn test_pod() -> Value {
    request_object(json!({
        "metadata": {"name": "test-pod", "namespace": "test-namespace"},
        "spec": {"containers": [{"name": "test-container", "image": "nginx:latest"}]}
    }))
}

#[test]
fn kyverno_evaluate_conditions_with_context() {
    // TestEvaluateConditionsWithContext, its six cases.
    let eq = |key: &str, value: &str| json!({"key": key, "operator": "Equals", "value": value});
    let name = "{{request.object.metadata.name}}";
    let namespace = "{{request.object.metadata.namespace}}";
    let context = test_pod();
    let met = |conditions: Value| preconditions(conditions).evaluate(&context).unwrap().met;

    assert!(!met(
        json!({"any": [eq(name, "wrong-name"), eq(namespace, "wrong-namespace")]})
    ));
    assert!(met(
        json!({"any": [eq(name, "test-pod"), eq(namespace, "wrong-namespace")]})
    ));
    assert!(!met(
        json!({"all": [eq(name, "test-pod"), eq(namespace, "wrong-namespace")]})
    ));
    assert!(met(
        json!({"all": [eq(name, "test-pod"), eq(namespace, "test-namespace")]})
    ));

    let blocks = |namespace_value: &str| {
        attestation(json!([
            {"any": [eq(name, "test-pod")]},
            {"all": [eq(namespace, namespace_value)]}
        ]))
    };
    assert!(blocks("test-namespace").evaluate(&context).unwrap().met);
    assert!(!blocks("wrong-namespace").evaluate(&context).unwrap().met);
}

#[test]
fn kyverno_evaluate_any_all_conditions_nested_context() {
    let context = request_object(json!({"metadata": {"name": "test"}}));
    let block = json!({"any": [{"key": "{{request.object.metadata.name}}", "operator": "Equals", "value": "test"}]});
    let blocks = attestation(json!([block.clone(), block]));
    assert!(blocks.evaluate(&context).unwrap().met);
}

#[test]
fn kyverno_unresolvable_variable_is_an_error() {
    // Test_EmptyStringInDenyCondition: a missing annotation is "Unknown key", an error.
    let block = preconditions(json!([{
        "key": "{{ request.object.metadata.annotations.\"service.beta.kubernetes.io/azure-load-balancer-internal\"}}",
        "operator": "NotEquals",
        "value": "true"
    }]));
    let error = block
        .evaluate(&request_object(
            json!({"metadata": {"name": "example-service"}}),
        ))
        .unwrap_err();
    match &error {
        EvaluationError::Variable { side, path, .. } => {
            assert_eq!(*side, Side::Key);
            assert_eq!(path.to_string(), "spec.rules[0].preconditions[0].key");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("failed to substitute variables in condition key at spec.rules[0].preconditions[0].key: "),
        "{error}"
    );
    assert!(error.variable_error().is_some());
}

// ---------------------------------------------------------------------------------------------
// sealgate: forms, laziness, attestation conditions
// ---------------------------------------------------------------------------------------------

#[test]
fn legacy_list_means_all() {
    let context = test_pod();
    let list = preconditions(json!([
        {"key": "{{request.object.metadata.name}}", "operator": "Equals", "value": "test-pod", "message": "m1"},
        {"key": "{{request.object.metadata.namespace}}", "operator": "Equals", "value": "other", "message": "m2"},
        {"key": "{{request.object.metadata.name}}", "operator": "Equals", "value": "x", "message": "m3"}
    ]));
    assert!(list.is_legacy());
    let outcome = list.evaluate(&context).unwrap();
    assert_eq!(
        outcome,
        ConditionsOutcome {
            met: false,
            message: Some("m2".into())
        },
        "the first failure stops the list"
    );
    assert!(preconditions(json!([])).evaluate(&context).unwrap().met);
}

#[test]
fn empty_blocks() {
    let context = json!({});
    // No block, null, an empty `all`: met.
    for value in [
        json!(null),
        json!({}),
        json!({"all": []}),
        json!({"any": null}),
    ] {
        assert!(
            preconditions(value.clone()).evaluate(&context).unwrap().met,
            "{value}"
        );
    }
    // An empty `any` in preconditions never holds, even beside a passing `all`.
    let empty_any = preconditions(
        json!({"any": [], "all": [{"key": "a", "operator": "Equals", "value": "a"}]}),
    );
    assert!(empty_any.has_any_block());
    assert_eq!(
        empty_any.evaluate(&context).unwrap(),
        ConditionsOutcome {
            met: false,
            message: None
        }
    );
    // In attestation conditions Kyverno's re-encoding drops it.
    let blocks = attestation(json!([{"any": []}]));
    assert!(!blocks.blocks()[0].has_any_block());
    assert!(blocks.evaluate(&context).unwrap().met);
    assert!(attestation(json!([])).evaluate(&context).unwrap().met);
    assert!(attestation(json!(null)).is_empty());
}

#[test]
fn any_and_all_both_must_hold() {
    let yes = json!({"key": "a", "operator": "Equals", "value": "a", "message": "yes failed"});
    let no = json!({"key": "a", "operator": "Equals", "value": "b", "message": "no failed"});
    let context = json!({});
    let met = |v: Value| preconditions(v).evaluate(&context).unwrap();
    assert!(met(json!({"any": [no, yes], "all": [yes]})).met);
    assert_eq!(
        met(json!({"any": [yes], "all": [yes, no]}))
            .message
            .as_deref(),
        Some("no failed")
    );
    assert_eq!(
        met(json!({"any": [no], "all": [yes]})).message.as_deref(),
        Some("no failed")
    );
    // Failed `any` conditions before one that held still count when `all` fails.
    assert_eq!(
        met(json!({"any": [no, yes], "all": [no]}))
            .message
            .as_deref(),
        Some("no failed; no failed")
    );
    // No message: `None`, and Kyverno's bare skip message.
    let outcome = met(json!({"all": [{"key": "a", "operator": "Equals", "value": "b"}]}));
    assert_eq!(outcome.message, None);
    assert_eq!(outcome.skip_message(), "preconditions not met");
}

#[test]
fn preconditions_resolve_lazily() {
    let missing =
        json!({"key": "{{ request.object.missing }}", "operator": "Equals", "value": "x"});
    let yes = json!({"key": "a", "operator": "Equals", "value": "a"});
    let no = json!({"key": "a", "operator": "Equals", "value": "b"});
    let context = test_pod();
    // Never reached: after an `any` condition held, after an `all` condition failed.
    assert!(
        preconditions(json!({"any": [yes, missing]}))
            .evaluate(&context)
            .unwrap()
            .met
    );
    assert!(
        !preconditions(json!({"all": [no, missing]}))
            .evaluate(&context)
            .unwrap()
            .met
    );
    // Reached: an error.
    assert!(
        preconditions(json!({"any": [no, missing]}))
            .evaluate(&context)
            .is_err()
    );
    // Attestation conditions substitute everything first.
    let error = attestation(json!([{"any": [yes, missing]}]))
        .evaluate(&context)
        .unwrap_err();
    assert!(
        matches!(error, EvaluationError::AttestationVariable { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("failed to substitute variables in attestation conditions at ")
    );
}

#[test]
fn variables_in_values_and_embedded() {
    let context =
        json!({"builder": {"id": "https://github.com/actions/runner"}, "n": 3, "list": ["a", "b"]});
    let holds =
        |key: Value, op: &str, value: Value| condition(key, op, value).holds(&context).unwrap();
    assert!(holds(
        json!("{{ builder.id }}"),
        "Equals",
        json!("https://github.com/*")
    ));
    assert!(holds(
        json!("runner: {{ builder.id }}"),
        "Equals",
        json!("runner: https://*")
    ));
    assert!(holds(json!("x"), "AnyNotIn", json!("{{ list }}")));
    assert!(holds(json!("{{ list }}"), "AllIn", json!(["a", "b", "c"])));
    assert!(holds(json!("{{ n }}"), "GreaterThan", json!(2)));
    // `\{{` is not a variable: the text compared is `{{ n }}`.
    assert!(holds(json!("\\{{ n }}"), "Equals", json!("\\{{ n }}")));
    assert!(holds(json!("\\{{ n }}"), "Equals", json!("?{ n }}")));
    assert!(
        !holds(json!("\\{{ n }}"), "Equals", json!("\\?{ n }}")),
        "no backslash left"
    );
}

#[test]
fn attestation_messages_are_substituted() {
    let context = json!({"builder": {"id": "evil"}});
    let blocks = attestation(json!([{"all": [{
        "key": "{{ builder.id }}", "operator": "Equals", "value": "good",
        "message": "builder {{ builder.id }} is not trusted"
    }]}]));
    assert_eq!(
        blocks.evaluate(&context).unwrap(),
        ConditionsOutcome {
            met: false,
            message: Some("builder evil is not trusted".into())
        }
    );
    // A precondition's message is used as written.
    let block = preconditions(json!({"all": [{
        "key": "{{ builder.id }}", "operator": "Equals", "value": "good",
        "message": "builder {{ builder.id }}"
    }]}));
    assert_eq!(
        block.evaluate(&context).unwrap().message.as_deref(),
        Some("builder {{ builder.id }}")
    );
    // A message that becomes a number is Kyverno's decoding error.
    let blocks = attestation(json!([{"all": [{
        "key": "a", "operator": "Equals", "value": "b", "message": "{{ n }}"
    }]}]));
    let error = blocks.evaluate(&json!({"n": 1})).unwrap_err();
    assert!(
        matches!(error, EvaluationError::MessageNotText { .. }),
        "{error:?}"
    );
}

#[test]
fn attestation_conditions_substitute_twice() {
    // Kyverno substitutes the conditions, then each condition again: a predicate value that
    // holds `{{ … }}` is itself looked up.
    let context = json!({"a": "{{ b }}", "b": "resolved"});
    let blocks = attestation(
        json!([{"all": [{"key": "{{ a }}", "operator": "Equals", "value": "resolved"}]}]),
    );
    assert!(blocks.evaluate(&context).unwrap().met);
    let block = preconditions(
        json!({"all": [{"key": "{{ a }}", "operator": "Equals", "value": "{{ b }}"}]}),
    );
    assert!(
        !block.evaluate(&context).unwrap().met,
        "once in preconditions"
    );
}

#[test]
fn numbers_follow_go_types() {
    // A literal top-level number is a float64: 1e6 prints as Go prints it.
    assert!(
        !condition(json!(1000000), "AnyIn", json!(["1000000"]))
            .holds(&json!({}))
            .unwrap()
    );
    assert!(
        condition(json!(1000000), "AnyIn", json!(["1e+06"]))
            .holds(&json!({}))
            .unwrap()
    );
    // Inside a literal list it stays an int64.
    assert!(
        condition(json!(["1000000"]), "AllIn", json!([1000000]))
            .holds(&json!({}))
            .unwrap()
    );
    // From the context, an integer is an int64 (as Kyverno reads request.object).
    let context = json!({"replicas": 1000000, "ports": [80, 443]});
    assert!(
        condition(json!("{{ replicas }}"), "AnyIn", json!(["1000000"]))
            .holds(&context)
            .unwrap()
    );
    // reflect.DeepEqual: an int64 list equals an int64 list, never a float64 one.
    assert!(
        condition(json!("{{ ports }}"), "Equals", json!([80, 443]))
            .holds(&context)
            .unwrap()
    );
    assert!(
        !condition(json!("{{ ports }}"), "Equals", json!([80.0, 443]))
            .holds(&context)
            .unwrap()
    );
    // Attestation conditions are re-encoded: an integral float in a list is an int64 again.
    let blocks = attestation(
        json!([{"all": [{"key": "{{ ports }}", "operator": "Equals", "value": [80.0, 443]}]}]),
    );
    assert!(blocks.evaluate(&context).unwrap().met);
    // Asymmetries of Kyverno's Equals.
    let holds = |k: Value, v: Value| condition(k, "Equals", v).holds(&json!({})).unwrap();
    assert!(holds(json!(5), json!("5")));
    assert!(!holds(json!("5"), json!(5)));
    assert!(holds(json!("1h"), json!(3600)));
    assert!(!holds(json!(3600), json!("1h")));
    assert!(holds(json!(1), json!("1.0")), "float64 key: ParseFloat");
    assert!(
        !handler(Operator::Equals, json!(1), json!("1.0")),
        "int64 key: ParseInt"
    );
}

#[test]
fn type_mismatches_are_false() {
    let holds = |k: Value, op: &str, v: Value| condition(k, op, v).holds(&json!({})).unwrap();
    assert!(!holds(json!(true), "Equals", json!("true")));
    assert!(holds(json!(true), "NotEquals", json!("true")));
    assert!(!holds(json!(null), "Equals", json!(null)));
    assert!(
        !holds(json!(null), "NotEquals", json!("x")),
        "a null key is never unequal"
    );
    assert!(!holds(json!({"a": 1}), "GreaterThan", json!(1)));
    assert!(!holds(json!("abc"), "LessThan", json!("abd")));
    assert!(!holds(json!("x"), "AnyIn", json!({"x": 1})));
    assert!(
        !holds(json!("x"), "AnyNotIn", json!(5)),
        "an invalid value is false for NotIn too"
    );
    assert!(
        !holds(json!(["x"]), "AllIn", json!(5)),
        "AllIn has no number value case"
    );
    assert!(holds(json!(["5"]), "AnyIn", json!(5)));
    // A quantity key against a non-quantity string: never a wildcard match.
    assert!(!holds(json!("1"), "Equals", json!("*")));
    assert!(holds(json!("x1"), "Equals", json!("x*")));
    // A suffix alone is the quantity zero to Kubernetes.
    assert!(holds(json!("m"), "Equals", json!("0")));
}

#[test]
fn deprecated_in_quirks() {
    let holds = |k: Value, op: &str, v: Value| condition(k, op, v).holds(&json!({}));
    // NotIn with a one-item list equal to the string value: Kyverno says true.
    assert!(holds(json!(["a"]), "NotIn", json!("a")).unwrap());
    // A list key with a non-string item: Kyverno's handler panics.
    let error = holds(json!(["a", 1]), "In", json!(["a"])).unwrap_err();
    assert!(
        matches!(
            error,
            EvaluationError::NonStringKeyItem {
                index: 1,
                operator: Operator::In,
                ..
            }
        ),
        "{error:?}"
    );
    // AnyIn prints any item instead.
    assert!(holds(json!(["a", 1]), "AnyIn", json!(["1"])).unwrap());
    // In has no ranges; AnyIn has.
    assert!(!holds(json!("5"), "In", json!("1-10")).unwrap());
    assert!(holds(json!("5"), "AnyIn", json!("1-10")).unwrap());
}

#[test]
fn ranges_in_the_in_family() {
    let holds = |k: Value, op: &str, v: Value| condition(k, op, v).holds(&json!({})).unwrap();
    assert!(holds(json!("256Mi"), "AnyIn", json!("128Mi-512Mi")));
    assert!(holds(json!(["1h", "3h"]), "AnyIn", json!("2h-4h")));
    assert!(!holds(json!(["1h", "3h"]), "AllIn", json!("2h-4h")));
    assert!(holds(json!(["1", "11"]), "AnyNotIn", json!("0-10")));
    assert!(!holds(json!(["1", "5"]), "AnyNotIn", json!("0-10")));
    assert!(holds(json!(["11", "12"]), "AllNotIn", json!("0-10")));
    // `!-` is not a range for AnyIn: the value is compared as text.
    assert!(!holds(json!("5"), "AnyIn", json!("1!-10")));
    // A negative lower bound: Kyverno's `-` → `!-` rewrite hits the sign.
    assert!(holds(json!(["0"]), "AnyNotIn", json!("-5-10")));
}

// ---------------------------------------------------------------------------------------------
// sealgate: parsing and load-time errors
// ---------------------------------------------------------------------------------------------

#[test]
fn operator_names_are_case_sensitive_at_load() {
    let errors =
        preconditions_errors(json!({"all": [{"key": "a", "operator": "equals", "value": "a"}]}));
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].path().to_string(),
        "spec.rules[0].preconditions.all[0].operator"
    );
    assert_eq!(
        errors[0].to_string(),
        "spec.rules[0].preconditions.all[0].operator: unknown operator `equals`: expected one of Equals, NotEquals, In, AnyIn, AllIn, NotIn, AnyNotIn, AllNotIn, GreaterThanOrEquals, GreaterThan, LessThanOrEquals, LessThan, DurationGreaterThanOrEquals, DurationGreaterThan, DurationLessThanOrEquals, DurationLessThan (or the deprecated Equal, NotEqual); did you mean `Equals`? (operator names are case-sensitive)"
    );
    assert!(errors[0].reason().starts_with("unknown operator `equals`"));
    let errors = preconditions_errors(json!([{"key": "a", "operator": "Matches", "value": "a"}]));
    assert!(matches!(
        &errors[0],
        ConditionsError::UnknownOperator { hint: None, .. }
    ));
}

#[test]
fn equal_is_for_preconditions_only() {
    let c = preconditions(json!({"any": [{"key": "a", "operator": "Equal", "value": "a"}]}));
    assert_eq!(c.any()[0].operator(), Operator::Equal);
    assert!(c.any()[0].operator().is_deprecated());
    let errors =
        attestation_errors(json!([{"all": [{"key": "a", "operator": "Equal", "value": "a"}]}]));
    assert_eq!(
        errors[0].to_string(),
        "spec.rules[0].verifyImages[0].attestations[0].conditions[0].all[0].operator: unknown operator `Equal`: expected one of Equals, NotEquals, In, AnyIn, AllIn, NotIn, AnyNotIn, AllNotIn, GreaterThanOrEquals, GreaterThan, LessThanOrEquals, LessThan, DurationGreaterThanOrEquals, DurationGreaterThan, DurationLessThanOrEquals, DurationLessThan; the deprecated `Equal` is not accepted in attestation conditions: use `Equals`"
    );
}

#[test]
fn missing_fields() {
    let errors = preconditions_errors(json!({"any": [{"key": "a", "value": null}]}));
    assert_eq!(
        errors,
        vec![ConditionsError::Missing {
            path: JsonPath::parse("spec.rules[0].preconditions.any[0]").unwrap(),
            fields: vec!["operator", "value"],
        }]
    );
    assert_eq!(
        errors[0].to_string(),
        "spec.rules[0].preconditions.any[0]: entered value of `key`, `value` or `operator` is missing or misspelled: `operator` and `value` are missing"
    );
    // Attestation conditions need only an operator (Kyverno checks no more there).
    let blocks = attestation(json!([{"all": [{"operator": "Equals", "value": "x"}]}]));
    assert!(!blocks.evaluate(&json!({})).unwrap().met);
    let errors = attestation_errors(json!([{"all": [{"key": "a", "value": "x"}]}]));
    assert!(
        matches!(&errors[0], ConditionsError::Missing { fields, .. } if fields == &["operator"])
    );
}

#[test]
fn shapes_and_types() {
    let path = |p: &str| JsonPath::parse(p).unwrap();
    assert_eq!(
        preconditions_errors(json!("x")),
        vec![ConditionsError::NotConditions {
            path: path("spec.rules[0].preconditions"),
            found: "a string"
        }]
    );
    assert_eq!(
        preconditions_errors(json!({"all": {"key": "a"}})),
        vec![ConditionsError::NotAList {
            path: path("spec.rules[0].preconditions.all"),
            block: "all",
            found: "an object"
        }]
    );
    assert_eq!(
        preconditions_errors(json!([1])),
        vec![ConditionsError::NotACondition {
            path: path("spec.rules[0].preconditions[0]"),
            found: "a number"
        }]
    );
    let errors =
        preconditions_errors(json!([{"key": "a", "operator": 1, "value": "a", "message": []}]));
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0].to_string(),
        "spec.rules[0].preconditions[0].operator: `operator` must be a string, not a number"
    );
    assert_eq!(
        errors[1].to_string(),
        "spec.rules[0].preconditions[0].message: `message` must be a string, not a list"
    );
    assert!(matches!(
        &attestation_errors(json!({"all": []}))[0],
        ConditionsError::NotBlocks {
            found: "an object",
            ..
        }
    ));
    // Every error is reported, not only the first.
    assert_eq!(
        preconditions_errors(json!({"any": [{"operator": "X"}, 5], "all": [{"key": "k", "operator": "Y", "value": 1}]})).len(),
        3
    );
}

#[test]
fn request_operation_values() {
    let key = "{{ request.operation }}";
    let ok = |value: Value| {
        Conditions::parse(
            &json!([{"key": key, "operator": "AnyIn", "value": value}]),
            &JsonPath::root(),
        )
        .is_ok()
    };
    assert!(ok(json!("CREATE")));
    assert!(ok(json!(["CREATE", "UPDATE"])));
    assert!(ok(json!("{{ operations }}")));
    assert!(!ok(json!("create")));
    assert!(!ok(json!(["CREATE", "PATCH"])));
    assert!(!ok(json!(["{{ operations }}"])), "no variables in a list");
    assert!(!ok(json!(5)));
    let errors = preconditions_errors(
        json!([{"key": key, "operator": "Equals", "value": ["CREATE", "PATCH"]}]),
    );
    assert_eq!(
        errors[0].to_string(),
        "spec.rules[0].preconditions[0].value[1]: unknown value 'PATCH' found under the 'value' field. Only the following values are allowed: [CREATE, UPDATE, DELETE, CONNECT]"
    );
}

#[test]
fn field_names_as_go_decodes_them() {
    // Preconditions go through encoding/json: names match case-insensitively.
    let c = preconditions(
        json!({"ANY": [{"Key": "a", "OPERATOR": "Equals", "vAlUe": "a", "Message": "m"}]}),
    );
    assert_eq!(c.any().len(), 1);
    assert_eq!(c.any()[0].message(), Some("m"));
    assert!(c.ignored_fields().is_empty());
    assert!(field_matches("\u{212A}ey", "key", true));
    // Unknown members are ignored by Kyverno: listed for a warning.
    let c = preconditions(
        json!({"alll": [], "all": [{"key": "a", "operator": "Equals", "value": "a", "mesage": "m"}]}),
    );
    let ignored: Vec<String> = c.ignored_fields().iter().map(ToString::to_string).collect();
    assert_eq!(
        ignored,
        [
            "spec.rules[0].preconditions.alll",
            "spec.rules[0].preconditions.all[0].mesage"
        ]
    );
    // Attestation conditions go through the CRD's schema: exact names only.
    let blocks = attestation(json!([{"all": [{"Key": "a", "operator": "Equals", "value": "a"}]}]));
    assert_eq!(blocks.ignored_fields().count(), 1);
    assert!(
        !blocks.evaluate(&json!({})).unwrap().met,
        "the key is pruned: null"
    );
}

#[test]
fn accessors() {
    let c = preconditions(
        json!({"all": [{"key": "{{ a }}", "operator": "GreaterThan", "value": 5, "message": ""}]}),
    );
    let first = &c.all()[0];
    assert_eq!(first.key(), &json!("{{ a }}"));
    assert_eq!(first.value(), &json!(5));
    assert_eq!(first.message(), None);
    assert_eq!(first.operator(), Operator::GreaterThan);
    assert_eq!(
        first.path().to_string(),
        "spec.rules[0].preconditions.all[0]"
    );
    assert!(first.has_variables());
    assert!(c.has_variables());
    assert!(!c.is_empty());
    assert!(
        !preconditions(json!({"all": [{"key": 1, "operator": "Equals", "value": 1}]}))
            .has_variables()
    );
}

// ---------------------------------------------------------------------------------------------
// sealgate: Go's parsers and formats
// ---------------------------------------------------------------------------------------------

#[test]
fn go_float_formatting() {
    let sprint = |v: Value| go_sprint(&v).into_owned();
    let cases: &[(Value, &str)] = &[
        (json!(1.0), "1"),
        (json!(1.5), "1.5"),
        (json!(123456.0), "123456"),
        (json!(1000000.0), "1e+06"),
        (json!(1234567.0), "1.234567e+06"),
        (json!(0.0001), "0.0001"),
        (json!(0.00001), "1e-05"),
        (json!(-2.5e-7), "-2.5e-07"),
        (json!(1e100), "1e+100"),
        (json!(-0.0), "-0"),
        (json!(1000000), "1000000"),
        (json!(true), "true"),
        (json!(null), "<nil>"),
        (json!([1, "a", [true]]), "[1 a [true]]"),
        (json!({"b": 2, "a": 1.5}), "map[a:1.5 b:2]"),
    ];
    for (value, want) in cases {
        assert_eq!(sprint(value.clone()), *want, "{value}");
    }
}

#[test]
fn go_floats_parse() {
    assert_eq!(go_parse_float("1.5"), Some(1.5));
    assert_eq!(go_parse_float("+1e3"), Some(1000.0));
    assert_eq!(go_parse_float("Inf"), Some(f64::INFINITY));
    assert_eq!(go_parse_float("-infinity"), Some(f64::NEG_INFINITY));
    assert!(go_parse_float("NaN").is_some_and(f64::is_nan));
    assert_eq!(go_parse_float("-NaN"), None);
    assert_eq!(go_parse_float("1e400"), None);
    assert_eq!(go_parse_float("1_000"), None);
    assert_eq!(go_parse_float(""), None);
}

#[test]
fn semantic_versions() {
    // Parsing and precedence are semver.rs's tests; here, the operators that use them.
    let holds = |k: &str, op: &str, val: &str| {
        condition(json!(k), op, json!(val))
            .holds(&json!({}))
            .unwrap()
    };
    assert!(holds("1.10.0", "GreaterThan", "1.9.9"));
    assert!(holds("1.0.0-rc.1", "LessThan", "1.0.0"));
    assert!(!holds("1.0.0", "GreaterThan", "v0.9.0"));
}

#[test]
fn conditions_are_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Conditions>();
    assert_send_sync::<ConditionBlocks>();
}

#[test]
fn deny_conditions_say_the_messages_of_those_that_held() {
    let held =
        |message: &str| json!({"key": "a", "operator": "Equals", "value": "a", "message": message});
    let failed = json!({"key": "a", "operator": "Equals", "value": "b", "message": "never said"});
    let context = json!({});
    // `any` stops at the first that holds; `all` says every one; joined with "; ".
    let block = preconditions(json!({
        "any": [failed.clone(), held("first"), held("not reached")],
        "all": [held("one"), held(""), held("two")]
    }));
    assert_eq!(
        block.deny(&context).unwrap().as_deref(),
        Some("first; one; two")
    );
    // The legacy list joins with ";", as Kyverno's evaluateOldConditions.
    let legacy = preconditions(json!([held("one"), held("two")]));
    assert_eq!(legacy.deny(&context).unwrap().as_deref(), Some("one;two"));
    // Not holding: no denial, whatever the messages.
    let not = preconditions(json!({"all": [held("one"), failed]}));
    assert_eq!(not.deny(&context).unwrap(), None);
    // Holding without messages: denied with nothing to say.
    let silent = preconditions(json!({"all": [{"key": "a", "operator": "Equals", "value": "a"}]}));
    assert_eq!(silent.deny(&context).unwrap().as_deref(), Some(""));
}
