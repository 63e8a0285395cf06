//! The JMESPath runtime variables are evaluated with: JMESPath's built-in functions and Kyverno's
//! own functions (`pkg/engine/jmespath`), with Kyverno's names, argument types and results.
//!
//! * strings: `compare`, `equal_fold`, `replace`, `replace_all`, `to_upper`, `to_lower`, `trim`,
//!   `trim_prefix`, `split`, `truncate`, `path_canonicalize`, `base64_decode`,
//!   `base64_encode`, `to_boolean`, `sha256`, `sha1`, `md5`;
//! * matching: `regex_replace_all`, `regex_replace_all_literal`, `regex_match` (Go's RE2
//!   syntax: `\d`, `\w`, `\s` and `\b` are ASCII as in Go), `pattern_match` (Kyverno
//!   wildcards), `label_match`, `semver_compare` (blang/semver ranges);
//! * arithmetic on numbers, Kubernetes quantities (`1Gi`) and Go durations (`1h30m`): `add`,
//!   `subtract`, `multiply`, `divide`, `modulo`, `sum`, `round`, with Kyverno's rules for
//!   which combinations are allowed (a string is a quantity if it parses as one, else a
//!   duration: `'1m'` is a milli-quantity);
//! * data: `parse_json`, `parse_yaml` (this crate's YAML parser, YAML 1.2 core schema: `yes`
//!   is a string, not a boolean as in Kyverno's YAML 1.1 parser), `lookup`, `items`,
//!   `object_from_lists`, `image_normalize`, `is_external_url` (IP literals and `localhost`
//!   only: a host name would need a DNS lookup, which the core does not do);
//! * time: `time_since`, `time_now`, `time_now_utc`, `time_add`, `time_after`, `time_before`,
//!   `time_between`, `time_diff`, `time_parse` (Go layouts, `2006-01-02T15:04:05Z07:00`, or an
//!   epoch), `time_to_cron`, `time_truncate`, `time_utc`. Go reads zone abbreviations (`MST`)
//!   against the local zone; Kyverno runs in UTC, so every abbreviation but `GMT±h` is UTC
//!   here too.
//!
//! The core has no clock: `time_now`, `time_now_utc` and `time_since` with an empty end take
//! "now" from [`with_now`], and fail when the caller gave none.
//!
//! Left out, with an error saying why when a policy calls them: `random` (a decision must be
//! reproducible) and `x509_decode` (its result is Go's `x509.Certificate` struct as JSON).
//!
//! Every function fails with a JMESPath error, never a panic, on arguments of the wrong type or
//! value; [`describe_error`] gives the error's words.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::LazyLock;

use base64::Engine as _;
use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, Runtime, Variable};
use rustls_pki_types::UnixTime;
use serde_json::{Number, Value};

use super::go_duration;
use super::go_float::{self, TWO_63};
use super::quantity::{self, Quantity};
use super::semver;

#[cfg(test)]
#[path = "functions_tests.rs"]
mod tests;

/// The runtime every variable is evaluated with: JMESPath's built-ins and Kyverno's functions.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
        let mut runtime = Runtime::new();
        runtime.register_builtin_functions();
        for function in FUNCTIONS {
            let inputs = function.args.iter().map(|a| a.argument_type()).collect();
            register(&mut runtime, function.name, inputs, None, function.handler);
        }
        for (name, _) in LEFT_OUT {
            register(
                &mut runtime,
                name,
                Vec::new(),
                Some(ArgumentType::Any),
                left_out_handler,
            );
        }
        runtime
    });
    &RUNTIME
}

/// Kyverno's functions this runtime does not have, and why.
pub const LEFT_OUT: &[(&str, &str)] = &[
    (
        "random",
        "randomness is not allowed in sealgate's core: a decision must be reproducible",
    ),
    (
        "x509_decode",
        "its result is Go's x509.Certificate structure encoded as JSON, which sealgate does not reproduce",
    ),
];

thread_local! {
    /// "Now" for the time functions, set by [`with_now`].
    static NOW: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` with `now` as the evaluation time of `time_now`, `time_now_utc` and `time_since`
/// (on this thread; the previous value, if any, is restored afterwards, even on a panic).
pub fn with_now<T>(now: UnixTime, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            NOW.with(|n| n.set(self.0));
        }
    }
    let _restore = Restore(NOW.with(|n| n.replace(Some(now.as_secs()))));
    f()
}

/// The words of an error from evaluating an expression (without the expression and caret the
/// error's `Display` adds).
pub fn describe_error(error: &JmespathError) -> String {
    match &error.reason {
        ErrorReason::Parse(message) => message.clone(),
        ErrorReason::Runtime(reason) => reason.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Registration

/// A function's result, or the whole message of its error.
type Outcome = Result<Rcvar, String>;
/// A function's body: its name (for messages) and its arguments, already checked against its
/// signature.
type Handler = fn(&'static str, &[Rcvar]) -> Outcome;

/// The argument types Kyverno declares.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Any,
    String,
    Number,
    Object,
    Array,
    StringOrNumber,
    ObjectOrArray,
}

impl Arg {
    fn argument_type(self) -> ArgumentType {
        match self {
            Arg::Any => ArgumentType::Any,
            Arg::String => ArgumentType::String,
            Arg::Number => ArgumentType::Number,
            Arg::Object => ArgumentType::Object,
            Arg::Array => ArgumentType::Array,
            Arg::StringOrNumber => {
                ArgumentType::Union(vec![ArgumentType::String, ArgumentType::Number])
            }
            Arg::ObjectOrArray => {
                ArgumentType::Union(vec![ArgumentType::Object, ArgumentType::Array])
            }
        }
    }
}

struct Function {
    name: &'static str,
    args: &'static [Arg],
    handler: Handler,
}

const fn f(name: &'static str, args: &'static [Arg], handler: Handler) -> Function {
    Function {
        name,
        args,
        handler,
    }
}

use Arg::{Any, Array, Number as Num, Object, ObjectOrArray, String as Str, StringOrNumber};

const FUNCTIONS: &[Function] = &[
    f("compare", &[Str, Str], compare),
    f("equal_fold", &[Str, Str], equal_fold),
    f("replace", &[Str, Str, Str, Num], replace),
    f("replace_all", &[Str, Str, Str], replace_all),
    f("to_upper", &[Str], change_case),
    f("to_lower", &[Str], change_case),
    f("trim", &[Str, Str], trim),
    f("trim_prefix", &[Str, Str], trim_prefix),
    f("split", &[Str, Str], split),
    f(
        "regex_replace_all",
        &[Str, StringOrNumber, StringOrNumber],
        regex_replace_all,
    ),
    f(
        "regex_replace_all_literal",
        &[Str, StringOrNumber, StringOrNumber],
        regex_replace_all,
    ),
    f("regex_match", &[Str, StringOrNumber], regex_match),
    f("pattern_match", &[Str, StringOrNumber], pattern_match),
    f("label_match", &[Object, Object], label_match),
    f("to_boolean", &[Str], to_boolean),
    f("add", &[Any, Any], arithmetic),
    f("sum", &[Array], sum),
    f("subtract", &[Any, Any], arithmetic),
    f("multiply", &[Any, Any], arithmetic),
    f("divide", &[Any, Any], arithmetic),
    f("modulo", &[Any, Any], arithmetic),
    f("round", &[Num, Num], round),
    f("base64_decode", &[Str], base64_decode),
    f("base64_encode", &[Str], base64_encode),
    f("time_since", &[Str, Str, Str], time_since),
    f("time_now", &[], time_now),
    f("time_now_utc", &[], time_now),
    f("path_canonicalize", &[Str], path_canonicalize),
    f("truncate", &[Str, Num], truncate),
    f("semver_compare", &[Str, Str], semver_compare),
    f("parse_json", &[Str], parse_json),
    f("parse_yaml", &[Str], parse_yaml),
    f("lookup", &[ObjectOrArray, StringOrNumber], lookup),
    f("items", &[ObjectOrArray, Str, Str], items),
    f("object_from_lists", &[Array, Array], object_from_lists),
    f("time_to_cron", &[Str], time_to_cron),
    f("time_add", &[Str, Str], time_shift),
    f("time_parse", &[Str, Str], time_parse),
    f("time_utc", &[Str], time_utc),
    f("time_diff", &[Str, Str], time_diff),
    f("time_before", &[Str, Str], time_compare),
    f("time_after", &[Str, Str], time_compare),
    f("time_between", &[Str, Str, Str], time_between),
    f("time_truncate", &[Str, Str], time_shift),
    f("image_normalize", &[Str], image_normalize),
    f("is_external_url", &[Str], is_external_url),
    f("sha256", &[Str], hash),
    f("sha1", &[Str], hash),
    f("md5", &[Str], hash),
];

fn register(
    runtime: &mut Runtime,
    name: &'static str,
    inputs: Vec<ArgumentType>,
    variadic: Option<ArgumentType>,
    handler: Handler,
) {
    let body = move |args: &[Rcvar], ctx: &mut Context<'_>| {
        handler(name, args)
            .map_err(|message| JmespathError::from_ctx(ctx, ErrorReason::Parse(message)))
    };
    runtime.register_function(
        name,
        Box::new(CustomFunction::new(
            Signature::new(inputs, variadic),
            Box::new(body),
        )),
    );
}

fn left_out_handler(name: &'static str, _: &[Rcvar]) -> Outcome {
    let why = LEFT_OUT
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, why)| *why);
    Err(fail(name, format!("not supported by sealgate: {why}")))
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Kyverno's message shape: `JMESPath function 'NAME': MESSAGE`.
fn fail(name: &str, message: impl Display) -> String {
    format!("JMESPath function '{name}': {message}")
}

fn not_of_type(name: &str, index: usize, kind: &str) -> String {
    fail(
        name,
        format!("argument #{} is not of type {kind}", index + 1),
    )
}

fn arg<'a>(name: &str, args: &'a [Rcvar], index: usize) -> Result<&'a Variable, String> {
    args.get(index)
        .map(|a| &**a)
        .ok_or_else(|| fail(name, format!("argument #{} is missing", index + 1)))
}

fn string<'a>(name: &str, args: &'a [Rcvar], index: usize) -> Result<&'a str, String> {
    arg(name, args, index)?
        .as_string()
        .map(String::as_str)
        .ok_or_else(|| not_of_type(name, index, "string"))
}

fn object<'a>(
    name: &str,
    args: &'a [Rcvar],
    index: usize,
) -> Result<&'a BTreeMap<String, Rcvar>, String> {
    arg(name, args, index)?
        .as_object()
        .ok_or_else(|| not_of_type(name, index, "Object"))
}

fn array<'a>(name: &str, args: &'a [Rcvar], index: usize) -> Result<&'a [Rcvar], String> {
    arg(name, args, index)?
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| not_of_type(name, index, "Array"))
}

fn number_arg(name: &str, args: &[Rcvar], index: usize) -> Result<f64, String> {
    arg(name, args, index)?
        .as_number()
        .ok_or_else(|| not_of_type(name, index, "number"))
}

fn text(s: impl Into<String>) -> Rcvar {
    Rcvar::new(Variable::String(s.into()))
}

fn boolean(b: bool) -> Rcvar {
    Rcvar::new(Variable::Bool(b))
}

fn integer(i: i64) -> Rcvar {
    Rcvar::new(Variable::Number(Number::from(i)))
}

/// A float64 result as JSON writes it: whole numbers without a fraction (`25`, as Go prints
/// `25.0`), others as they are. NaN and infinities have no JSON form: an error.
fn number(name: &str, x: f64) -> Outcome {
    Ok(Rcvar::new(Variable::Number(go_number(x).ok_or_else(
        || fail(name, "the result is not a finite number"),
    )?)))
}

fn go_number(x: f64) -> Option<Number> {
    if !x.is_finite() {
        return None;
    }
    if x.fract() == 0.0 && x.abs() < 9_007_199_254_740_992.0 {
        return Some(Number::from(x as i64));
    }
    Number::from_f64(x)
}

/// JSON numbers as Go decodes them (float64), written back as [`go_number`] does.
fn go_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64().and_then(go_number) {
            Some(n) => Value::Number(n),
            None => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(go_numbers).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, go_numbers(v))).collect())
        }
        other => other,
    }
}

fn from_json(name: &str, value: Value) -> Outcome {
    Variable::try_from(go_numbers(value))
        .map(Rcvar::new)
        .map_err(|e| fail(name, describe_error(&e)))
}

/// Kyverno's `ifaceToString`: strings as they are, numbers as Go writes them at float32
/// precision, booleans as `true`/`false`; nothing else.
fn go_string(value: &Variable) -> Option<String> {
    match value {
        Variable::String(s) => Some(s.clone()),
        Variable::Bool(b) => Some(b.to_string()),
        Variable::Number(n) => {
            let x = n.as_f64()? as f32;
            Some(if x.is_infinite() {
                if x > 0.0 { "+Inf" } else { "-Inf" }.to_string()
            } else {
                x.to_string()
            })
        }
        _ => None,
    }
}

/// Go's `intNumber`: the float as an integer, when it is one.
fn int_number(x: f64) -> Result<i64, String> {
    if !x.is_finite() || x.trunc() != x {
        return Err(format!("expected an integer number but got: {x}"));
    }
    if x.abs() >= TWO_63 {
        return Err(format!(
            "number is outside the range of integer numbers: {x}"
        ));
    }
    Ok(x as i64)
}

// ---------------------------------------------------------------------------------------------
// Strings

fn compare(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (a, b) = (string(name, args, 0)?, string(name, args, 1)?);
    Ok(integer(match a.cmp(b) {
        std::cmp::Ordering::Less => -1,
        std::cmp::Ordering::Equal => 0,
        std::cmp::Ordering::Greater => 1,
    }))
}

/// Go's `strings.EqualFold`: rune by rune, equal under simple case folding.
fn equal_fold(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (a, b) = (string(name, args, 0)?, string(name, args, 1)?);
    let same = a.chars().count() == b.chars().count()
        && a.chars().zip(b.chars()).all(|(x, y)| {
            x == y || simple_lower(x) == simple_lower(y) || simple_upper(x) == simple_upper(y)
        });
    Ok(boolean(same))
}

/// A character's upper case when it is one character (Go's `unicode.ToUpper` maps rune to
/// rune), else the character itself.
fn simple_upper(c: char) -> char {
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

fn simple_lower(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

fn replace(name: &'static str, args: &[Rcvar]) -> Outcome {
    let s = string(name, args, 0)?;
    let (old, new) = (string(name, args, 1)?, string(name, args, 2)?);
    // Go converts the float to an int by truncation; a negative count replaces every one.
    let n = number_arg(name, args, 3)? as i64;
    Ok(text(match usize::try_from(n) {
        Ok(n) => s.replacen(old, new, n),
        Err(_) => s.replace(old, new),
    }))
}

fn replace_all(name: &'static str, args: &[Rcvar]) -> Outcome {
    let s = string(name, args, 0)?;
    Ok(text(
        s.replace(string(name, args, 1)?, string(name, args, 2)?),
    ))
}

/// `to_upper(s)` and `to_lower(s)`, character by character.
fn change_case(name: &'static str, args: &[Rcvar]) -> Outcome {
    let change = if name == "to_upper" {
        simple_upper
    } else {
        simple_lower
    };
    Ok(text(
        string(name, args, 0)?
            .chars()
            .map(change)
            .collect::<String>(),
    ))
}

fn trim(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (s, cutset) = (string(name, args, 0)?, string(name, args, 1)?);
    Ok(text(s.trim_matches(|c| cutset.contains(c))))
}

fn trim_prefix(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (s, prefix) = (string(name, args, 0)?, string(name, args, 1)?);
    Ok(text(s.strip_prefix(prefix).unwrap_or(s)))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (s, sep) = (string(name, args, 0)?, string(name, args, 1)?);
    let parts: Vec<Rcvar> = if sep.is_empty() {
        s.chars().map(|c| text(c.to_string())).collect()
    } else {
        s.split(sep).map(text).collect()
    };
    Ok(Rcvar::new(Variable::Array(parts)))
}

/// `truncate(s, n)`: the first `n` characters (a fraction is dropped, a negative `n` is 0).
fn truncate(name: &'static str, args: &[Rcvar]) -> Outcome {
    let s = string(name, args, 0)?;
    let n = number_arg(name, args, 1)?.max(0.0) as usize;
    Ok(text(s.chars().take(n).collect::<String>()))
}

/// Go's `filepath.Join(p)` on Linux: `filepath.Clean`, except that empty stays empty.
fn path_canonicalize(name: &'static str, args: &[Rcvar]) -> Outcome {
    let path = string(name, args, 0)?;
    if path.is_empty() {
        return Ok(text(""));
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(last) if *last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    Ok(text(if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }))
}

fn base64_engine() -> base64::engine::GeneralPurpose {
    // Go's StdEncoding: padding required, non-zero trailing bits accepted.
    base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical)
            .with_decode_allow_trailing_bits(true),
    )
}

fn base64_decode(name: &'static str, args: &[Rcvar]) -> Outcome {
    // Go's decoder skips line breaks.
    let input: String = string(name, args, 0)?
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let bytes = base64_engine()
        .decode(input)
        .map_err(|e| fail(name, format!("illegal base64 data: {e}")))?;
    Ok(text(String::from_utf8_lossy(&bytes)))
}

fn base64_encode(name: &'static str, args: &[Rcvar]) -> Outcome {
    Ok(text(base64_engine().encode(string(name, args, 0)?)))
}

fn to_boolean(name: &'static str, args: &[Rcvar]) -> Outcome {
    let input = string(name, args, 0)?;
    match input.to_lowercase().as_str() {
        "true" => Ok(boolean(true)),
        "false" => Ok(boolean(false)),
        _ => Err(fail(
            name,
            format!("lowercase argument must be 'true' or 'false' (provided: '{input}')"),
        )),
    }
}

fn hash(name: &'static str, args: &[Rcvar]) -> Outcome {
    let input = string(name, args, 0)?.as_bytes();
    let bytes = match name {
        "sha256" => ring::digest::digest(&ring::digest::SHA256, input)
            .as_ref()
            .to_vec(),
        "sha1" => ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, input)
            .as_ref()
            .to_vec(),
        _ => md5::digest(input).to_vec(),
    };
    Ok(text(crate::digest::hex_encode(&bytes)))
}

// ---------------------------------------------------------------------------------------------
// Matching

/// A `String or Real` argument, as text ([`go_string`]).
fn string_or_real(name: &str, args: &[Rcvar], index: usize) -> Result<String, String> {
    go_string(arg(name, args, index)?).ok_or_else(|| not_of_type(name, index, "String or Real"))
}

fn regex_replace_all(name: &'static str, args: &[Rcvar]) -> Outcome {
    let pattern = string(name, args, 0)?;
    let src = string_or_real(name, args, 1)?;
    let replacement = string_or_real(name, args, 2)?;
    let re = go_regex::compile(pattern).map_err(|e| fail(name, e))?;
    Ok(text(if name == "regex_replace_all_literal" {
        re.replace_all(&src, regex::NoExpand(&replacement))
    } else {
        re.replace_all(&src, replacement.as_str())
    }))
}

fn regex_match(name: &'static str, args: &[Rcvar]) -> Outcome {
    let pattern = string(name, args, 0)?;
    let src = string_or_real(name, args, 1)?;
    let re = go_regex::compile(pattern).map_err(|e| fail(name, e))?;
    Ok(boolean(re.is_match(&src)))
}

fn pattern_match(name: &'static str, args: &[Rcvar]) -> Outcome {
    let pattern = string(name, args, 0)?;
    let src = string_or_real(name, args, 1)?;
    Ok(boolean(crate::image::wildcard::matches(pattern, &src)))
}

/// Every label of the first object is in the second, with an equal value.
fn label_match(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (labels, against) = (object(name, args, 0)?, object(name, args, 1)?);
    Ok(boolean(
        labels
            .iter()
            .all(|(k, v)| against.get(k).is_some_and(|w| **w == **v)),
    ))
}

fn semver_compare(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (version, range) = (string(name, args, 0)?, string(name, args, 1)?);
    // As Kyverno: a version that does not parse is 0.0.0.
    let version = semver::Version::parse(version).unwrap_or_default();
    let range = semver::Range::parse(range).map_err(|e| fail(name, e))?;
    Ok(boolean(range.matches(&version)))
}

// ---------------------------------------------------------------------------------------------
// Data

fn parse_json(name: &'static str, args: &[Rcvar]) -> Outcome {
    let value: Value = serde_json::from_str(string(name, args, 0)?).map_err(|e| fail(name, e))?;
    from_json(name, value)
}

/// The first YAML document (null when there is none).
fn parse_yaml(name: &'static str, args: &[Rcvar]) -> Outcome {
    let documents = super::yaml::parse_documents(string(name, args, 0)?);
    match documents.into_iter().next() {
        None => Ok(Rcvar::new(Variable::Null)),
        Some(Ok(document)) => from_json(name, document.value),
        Some(Err(e)) => Err(fail(name, e)),
    }
}

fn lookup(name: &'static str, args: &[Rcvar]) -> Outcome {
    let key = arg(name, args, 1)?;
    match arg(name, args, 0)? {
        Variable::Object(map) => {
            let key = key
                .as_string()
                .ok_or_else(|| not_of_type(name, 1, "String"))?;
            Ok(map
                .get(key)
                .cloned()
                .unwrap_or_else(|| Rcvar::new(Variable::Null)))
        }
        Variable::Array(items) => {
            let key = key
                .as_number()
                .ok_or_else(|| not_of_type(name, 1, "Number"))?;
            let index = int_number(key).map_err(|e| fail(name, format!("argument #2: {e}")))?;
            Ok(usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .unwrap_or_else(|| Rcvar::new(Variable::Null)))
        }
        _ => Err(not_of_type(name, 0, "Object or Array")),
    }
}

/// `items(collection, keyName, valueName)`: `[{keyName: key, valueName: value}]`, keys sorted.
fn items(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (key_name, value_name) = (string(name, args, 1)?, string(name, args, 2)?);
    let item = |key: Rcvar, value: Rcvar| {
        let mut object = BTreeMap::new();
        object.insert(key_name.to_string(), key);
        object.insert(value_name.to_string(), value);
        Rcvar::new(Variable::Object(object))
    };
    let out = match arg(name, args, 0)? {
        Variable::Object(map) => map
            .iter()
            .map(|(k, v)| item(text(k.clone()), v.clone()))
            .collect(),
        Variable::Array(values) => values
            .iter()
            .enumerate()
            .map(|(i, v)| item(integer(i as i64), v.clone()))
            .collect(),
        _ => return Err(not_of_type(name, 0, "Object or Array")),
    };
    Ok(Rcvar::new(Variable::Array(out)))
}

/// An object from a list of keys and a list of values (missing values are null).
fn object_from_lists(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (keys, values) = (array(name, args, 0)?, array(name, args, 1)?);
    let mut out = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let key = go_string(key).ok_or_else(|| not_of_type(name, 0, "StringArray"))?;
        let value = values
            .get(i)
            .cloned()
            .unwrap_or_else(|| Rcvar::new(Variable::Null));
        out.insert(key, value);
    }
    Ok(Rcvar::new(Variable::Object(out)))
}

fn image_normalize(name: &'static str, args: &[Rcvar]) -> Outcome {
    let image = string(name, args, 0)?;
    crate::image::ImageRef::parse(image)
        .map(|r| text(r.normalized()))
        .map_err(|e| fail(name, format!("bad image: {e}")))
}

/// Whether a URL's host is neither loopback nor private. Only IP literals and `localhost` are
/// answered: any other name needs a DNS lookup, which the core does not do.
fn is_external_url(name: &'static str, args: &[Rcvar]) -> Outcome {
    use std::net::IpAddr;
    let url = string(name, args, 0)?;
    let host = url_hostname(url);
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(boolean(false));
    }
    let ip: IpAddr = host.parse().map_err(|_| {
        fail(
            name,
            format!(
                "the host '{host}' of '{url}' is not an IP address, and sealgate does not resolve host names in policies"
            ),
        )
    })?;
    let internal = match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.is_loopback() || v4.is_private(),
            None => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        },
    };
    Ok(boolean(!internal))
}

/// Go's `url.Parse(u).Hostname()`, for the URLs policies hold: the authority after `scheme://`,
/// without user information, port and IPv6 brackets.
fn url_hostname(url: &str) -> &str {
    let is_scheme = |s: &str| {
        s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    };
    let rest = match url.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        _ => url,
    };
    let Some(rest) = rest.strip_prefix("//") else {
        return "";
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(inner) = host.strip_prefix('[') {
        return inner.find(']').map_or(inner, |end| &inner[..end]);
    }
    match host.rfind(':') {
        Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
        _ => host,
    }
}

// ---------------------------------------------------------------------------------------------
// Arithmetic

/// An arithmetic operand: a number, else a quantity, else a duration.
#[derive(Debug, Clone)]
enum Operand {
    Scalar(f64),
    Quantity(Quantity),
    Duration(i64),
}

fn operand(name: &str, value: &Variable) -> Result<Operand, String> {
    match value {
        Variable::Number(n) => n
            .as_f64()
            .map(Operand::Scalar)
            .ok_or_else(|| fail(name, "invalid operand")),
        Variable::String(s) => quantity::parse(s)
            .map(Operand::Quantity)
            .or_else(|| go_duration::parse(s).ok().map(Operand::Duration))
            .ok_or_else(|| fail(name, "invalid operand")),
        _ => Err(fail(name, "invalid operand")),
    }
}

fn arithmetic(name: &'static str, args: &[Rcvar]) -> Outcome {
    let a = operand(name, arg(name, args, 0)?)?;
    let b = operand(name, arg(name, args, 1)?)?;
    match name {
        "add" => add(name, a, b),
        "subtract" => subtract(name, a, b),
        "multiply" => multiply(name, a, b),
        "divide" => divide(name, a, b),
        _ => modulo(name, a, b),
    }
}

fn mismatch(name: &str) -> String {
    fail(name, "Types mismatch")
}

fn zero_divisor(name: &str) -> String {
    fail(name, "Zero divisor passed")
}

fn quantity_text(name: &str, q: Option<Quantity>) -> Outcome {
    let q = q.ok_or_else(|| fail(name, "the quantity is too large"))?;
    q.to_text().map(text).map_err(|e| fail(name, e))
}

fn duration_text(name: &str, d: Option<i64>) -> Outcome {
    d.map(|d| text(go_duration::format(d)))
        .ok_or_else(|| fail(name, "the duration overflows"))
}

/// `Quantity ± Quantity`, `Duration ± Duration`, `Scalar ± Scalar`; nothing else.
fn add(name: &str, a: Operand, b: Operand) -> Outcome {
    match (a, b) {
        (Operand::Quantity(a), Operand::Quantity(b)) => quantity_text(name, a.add(&b)),
        (Operand::Duration(a), Operand::Duration(b)) => duration_text(name, a.checked_add(b)),
        (Operand::Scalar(a), Operand::Scalar(b)) => number(name, a + b),
        _ => Err(mismatch(name)),
    }
}

fn subtract(name: &str, a: Operand, b: Operand) -> Outcome {
    match (a, b) {
        (Operand::Quantity(a), Operand::Quantity(b)) => quantity_text(name, a.sub(&b)),
        (Operand::Duration(a), Operand::Duration(b)) => duration_text(name, a.checked_sub(b)),
        (Operand::Scalar(a), Operand::Scalar(b)) => number(name, a - b),
        _ => Err(mismatch(name)),
    }
}

/// A scalar as a quantity, as Kyverno makes it: parsing the float's `%v` text.
fn scalar_quantity(name: &str, x: f64) -> Result<Quantity, String> {
    quantity::parse(&go_float::format_v(x))
        .ok_or_else(|| fail(name, format!("{x} cannot be read as a quantity")))
}

/// A duration times (or divided by) a float, through seconds as Kyverno computes it.
fn scaled_duration(name: &str, seconds: f64) -> Outcome {
    let nanos = seconds * 1e9;
    if !(nanos.is_finite() && (-TWO_63..TWO_63).contains(&nanos)) {
        return Err(fail(name, "the duration overflows"));
    }
    Ok(text(go_duration::format(nanos as i64)))
}

/// `Quantity × Scalar` and `Duration × Scalar` (either way round), `Scalar × Scalar`.
fn multiply(name: &str, a: Operand, b: Operand) -> Outcome {
    match (a, b) {
        (Operand::Scalar(a), Operand::Scalar(b)) => number(name, a * b),
        (Operand::Quantity(q), Operand::Scalar(s)) | (Operand::Scalar(s), Operand::Quantity(q)) => {
            quantity_text(name, q.mul(&scalar_quantity(name, s)?))
        }
        (Operand::Duration(d), Operand::Scalar(s)) | (Operand::Scalar(s), Operand::Duration(d)) => {
            scaled_duration(name, go_duration::seconds(d) * s)
        }
        _ => Err(mismatch(name)),
    }
}

/// `Quantity / Quantity` and `Duration / Duration` are numbers; `Quantity / Scalar` a quantity
/// (rounded down at the operands' precision), `Duration / Scalar` a duration.
fn divide(name: &str, a: Operand, b: Operand) -> Outcome {
    match (a, b) {
        (Operand::Quantity(a), Operand::Quantity(b)) => {
            let divisor = b.approximate_f64();
            if divisor == 0.0 {
                return Err(zero_divisor(name));
            }
            number(name, a.approximate_f64() / divisor)
        }
        (Operand::Quantity(q), Operand::Scalar(s)) => {
            if s == 0.0 {
                return Err(zero_divisor(name));
            }
            let divisor = scalar_quantity(name, s)?;
            if divisor.is_zero() {
                return Err(zero_divisor(name));
            }
            quantity_text(name, q.div_round_down(&divisor))
        }
        (Operand::Duration(a), Operand::Duration(b)) => {
            if go_duration::seconds(b) == 0.0 {
                return Err(zero_divisor(name));
            }
            number(name, go_duration::seconds(a) / go_duration::seconds(b))
        }
        (Operand::Duration(d), Operand::Scalar(s)) => {
            if s == 0.0 {
                return Err(zero_divisor(name));
            }
            scaled_duration(name, go_duration::seconds(d) / s)
        }
        (Operand::Scalar(a), Operand::Scalar(b)) => {
            if b == 0.0 {
                return Err(zero_divisor(name));
            }
            number(name, a / b)
        }
        _ => Err(mismatch(name)),
    }
}

/// The float as an int64 when it is a whole number in range.
fn whole(x: f64) -> Option<i64> {
    (x.is_finite() && x.trunc() == x && x.abs() < TWO_63).then_some(x as i64)
}

/// `Quantity % Quantity`, `Duration % Duration`, `Scalar % Scalar`, on whole numbers.
fn modulo(name: &str, a: Operand, b: Operand) -> Outcome {
    let non_integer = || fail(name, "Non-integer argument(s) passed for modulo");
    match (a, b) {
        (Operand::Quantity(a), Operand::Quantity(b)) => {
            let x = whole(a.approximate_f64()).ok_or_else(non_integer)?;
            let y = whole(b.approximate_f64()).ok_or_else(non_integer)?;
            if y == 0 {
                return Err(zero_divisor(name));
            }
            quantity_text(name, Some(a.with_integer(x.wrapping_rem(y))))
        }
        (Operand::Duration(a), Operand::Duration(b)) => {
            if b == 0 {
                return Err(zero_divisor(name));
            }
            Ok(text(go_duration::format(a.wrapping_rem(b))))
        }
        (Operand::Scalar(a), Operand::Scalar(b)) => {
            let x = whole(a).ok_or_else(non_integer)?;
            let y = whole(b).ok_or_else(non_integer)?;
            if y == 0 {
                return Err(zero_divisor(name));
            }
            number(name, x.wrapping_rem(y) as f64)
        }
        _ => Err(mismatch(name)),
    }
}

fn sum(name: &'static str, args: &[Rcvar]) -> Outcome {
    let items = arg(name, args, 0)?
        .as_array()
        .ok_or_else(|| fail(name, "Types mismatch"))?;
    let Some((first, rest)) = items.split_first() else {
        return Err(fail(name, "at least one element in the array is required"));
    };
    let mut total = first.clone();
    for item in rest {
        total = add(name, operand(name, &total)?, operand(name, item)?)?;
    }
    Ok(total)
}

fn round(name: &'static str, args: &[Rcvar]) -> Outcome {
    let x = number_arg(name, args, 0)?;
    let places = int_number(number_arg(name, args, 1)?)
        .map_err(|_| fail(name, "Non-integer argument(s) passed for round off"))?;
    if places < 0 {
        return Err(fail(
            name,
            "the number of decimal places must not be negative",
        ));
    }
    let shift = go_float::pow10(i32::try_from(places).unwrap_or(i32::MAX));
    number(name, (x * shift).round() / shift)
}

// ---------------------------------------------------------------------------------------------
// Time

fn time_arg(name: &str, args: &[Rcvar], index: usize) -> Result<go_time::Time, String> {
    go_time::parse(go_time::RFC3339, string(name, args, index)?).map_err(|e| fail(name, e))
}

fn duration_arg(name: &str, args: &[Rcvar], index: usize) -> Result<i64, String> {
    let written = string(name, args, index)?;
    go_duration::parse(written).map_err(|e| fail(name, e.message(written)))
}

fn now(name: &str) -> Result<go_time::Time, String> {
    let secs = NOW
        .with(Cell::get)
        .ok_or_else(|| format!("{name} needs the evaluation time; none was given"))?;
    Ok(go_time::Time {
        secs: i64::try_from(secs).unwrap_or(i64::MAX),
        nanos: 0,
        offset: 0,
    })
}

/// `time_now()` and `time_now_utc()`: now, RFC 3339 (Kyverno's local time is UTC).
fn time_now(name: &'static str, _: &[Rcvar]) -> Outcome {
    Ok(text(now(name)?.rfc3339()))
}

/// `time_since(layout, start, end)`: `end - start` as a Go duration; an empty layout is RFC
/// 3339, an empty end is now.
fn time_since(name: &'static str, args: &[Rcvar]) -> Outcome {
    let layout = match string(name, args, 0)? {
        "" => go_time::RFC3339,
        layout => layout,
    };
    let start = go_time::parse(layout, string(name, args, 1)?).map_err(|e| fail(name, e))?;
    let end = match string(name, args, 2)? {
        "" => now(name)?,
        end => go_time::parse(layout, end).map_err(|e| fail(name, e))?,
    };
    Ok(text(go_duration::format(end.sub(start))))
}

fn time_to_cron(name: &'static str, args: &[Rcvar]) -> Outcome {
    let t = time_arg(name, args, 0)?.fields();
    Ok(text(format!(
        "{} {} {} {} {}",
        t.minute, t.hour, t.day, t.month, t.weekday
    )))
}

/// `time_add(t, d)` and `time_truncate(t, d)`.
fn time_shift(name: &'static str, args: &[Rcvar]) -> Outcome {
    let t = time_arg(name, args, 0)?;
    let d = duration_arg(name, args, 1)?;
    let shifted = if name == "time_add" {
        t.add(d)
    } else {
        t.truncate(d)
    };
    shifted
        .map(|t| text(t.rfc3339()))
        .ok_or_else(|| fail(name, "the time is out of range"))
}

/// `time_parse(layout, value)`: a Go layout, or (when the layout is an integer) Unix seconds.
fn time_parse(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (layout, value) = (string(name, args, 0)?, string(name, args, 1)?);
    if layout.parse::<i64>().is_ok() {
        let secs: i64 = value
            .parse()
            .map_err(|e| fail(name, format!("parsing {value:?}: {e}")))?;
        return Ok(text(
            go_time::Time {
                secs,
                nanos: 0,
                offset: 0,
            }
            .rfc3339(),
        ));
    }
    let t = go_time::parse(layout, value).map_err(|e| fail(name, e))?;
    Ok(text(t.rfc3339()))
}

fn time_utc(name: &'static str, args: &[Rcvar]) -> Outcome {
    Ok(text(time_arg(name, args, 0)?.utc().rfc3339()))
}

fn time_diff(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (start, end) = (time_arg(name, args, 0)?, time_arg(name, args, 1)?);
    Ok(text(go_duration::format(end.sub(start))))
}

/// `time_before(a, b)` and `time_after(a, b)`, strictly.
fn time_compare(name: &'static str, args: &[Rcvar]) -> Outcome {
    let (a, b) = (time_arg(name, args, 0)?, time_arg(name, args, 1)?);
    Ok(boolean(if name == "time_before" {
        a.before(b)
    } else {
        b.before(a)
    }))
}

/// `time_between(t, start, end)`: strictly after start and strictly before end.
fn time_between(name: &'static str, args: &[Rcvar]) -> Outcome {
    let t = time_arg(name, args, 0)?;
    let (start, end) = (time_arg(name, args, 1)?, time_arg(name, args, 2)?);
    Ok(boolean(start.before(t) && t.before(end)))
}

// ---------------------------------------------------------------------------------------------

/// Go times: `time.Parse` with Go layouts, `Format(time.RFC3339)`, and the arithmetic the
/// Kyverno functions use. A time keeps the offset it was written with.
mod go_time {
    /// Go's `time.RFC3339` layout.
    pub(super) const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
    /// Seconds from Go's zero time (January 1, year 1, UTC) to the Unix epoch.
    const ZERO_TO_UNIX: i128 = 62_135_596_800;
    const NANOS: i128 = 1_000_000_000;

    /// An instant and the offset (seconds east of UTC) it is shown in.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct Time {
        pub(super) secs: i64,
        pub(super) nanos: u32,
        pub(super) offset: i32,
    }

    /// A time's fields in its own offset.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Fields {
        pub(super) year: i64,
        pub(super) month: u32,
        pub(super) day: u32,
        pub(super) hour: i64,
        pub(super) minute: i64,
        pub(super) second: i64,
        /// 0 is Sunday.
        pub(super) weekday: i64,
    }

    impl Time {
        fn total(self) -> i128 {
            i128::from(self.secs) * NANOS + i128::from(self.nanos)
        }

        fn from_total(total: i128, offset: i32) -> Option<Time> {
            Some(Time {
                secs: i64::try_from(total.div_euclid(NANOS)).ok()?,
                nanos: u32::try_from(total.rem_euclid(NANOS)).ok()?,
                offset,
            })
        }

        pub(super) fn utc(self) -> Time {
            Time { offset: 0, ..self }
        }

        pub(super) fn add(self, d: i64) -> Option<Time> {
            Time::from_total(self.total() + i128::from(d), self.offset)
        }

        /// `self - earlier`, saturated to the range of a duration (as Go's `Time.Sub`).
        pub(super) fn sub(self, earlier: Time) -> i64 {
            let d = self.total() - earlier.total();
            i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
        }

        pub(super) fn before(self, other: Time) -> bool {
            self.total() < other.total()
        }

        /// Rounded down to a multiple of `d` since Go's zero time (`Time.Truncate`).
        pub(super) fn truncate(self, d: i64) -> Option<Time> {
            if d <= 0 {
                return Some(self);
            }
            let since_zero = self.total() + ZERO_TO_UNIX * NANOS;
            Time::from_total(
                self.total() - since_zero.rem_euclid(i128::from(d)),
                self.offset,
            )
        }

        pub(super) fn fields(self) -> Fields {
            let local = self.secs.saturating_add(i64::from(self.offset));
            let days = local.div_euclid(86_400);
            let rest = local.rem_euclid(86_400);
            let (year, month, day) = civil_from_days(days);
            Fields {
                year,
                month,
                day,
                hour: rest / 3600,
                minute: rest % 3600 / 60,
                second: rest % 60,
                weekday: (days + 4).rem_euclid(7),
            }
        }

        /// `Format(time.RFC3339)`: whole seconds, `Z` for UTC, else `±hh:mm`.
        pub(super) fn rfc3339(self) -> String {
            let f = self.fields();
            let year = if f.year < 0 {
                format!("-{:04}", f.year.unsigned_abs())
            } else {
                format!("{:04}", f.year)
            };
            let zone = if self.offset == 0 {
                "Z".to_string()
            } else {
                let minutes = self.offset / 60;
                let sign = if minutes < 0 { '-' } else { '+' };
                let minutes = minutes.unsigned_abs();
                format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
            };
            format!(
                "{year}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
                f.month, f.day, f.hour, f.minute, f.second
            )
        }
    }

    /// The civil date of a day count from 1970-01-01 (proleptic Gregorian).
    fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month as u32, day as u32)
    }

    /// The day count from 1970-01-01 of a civil date.
    fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    fn is_leap(year: i64) -> bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    fn days_in(month: i64, year: i64) -> i64 {
        match month {
            2 if is_leap(year) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// The elements of a Go layout.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Std {
        None,
        LongMonth,
        Month,
        NumMonth,
        ZeroMonth,
        LongWeekDay,
        WeekDay,
        Day,
        UnderDay,
        ZeroDay,
        UnderYearDay,
        ZeroYearDay,
        Hour,
        Hour12,
        ZeroHour12,
        Minute,
        ZeroMinute,
        Second,
        ZeroSecond,
        LongYear,
        Year,
        UpperPm,
        LowerPm,
        Tz,
        Iso8601Tz,
        Iso8601SecondsTz,
        Iso8601ShortTz,
        Iso8601ColonTz,
        Iso8601ColonSecondsTz,
        NumTz,
        NumSecondsTz,
        NumShortTz,
        NumColonTz,
        NumColonSecondsTz,
        /// `.000`: exactly this many digits.
        FracSecond0(usize),
        /// `.999`: any digits, or none.
        FracSecond9,
    }

    /// The first layout element: (bytes before it, the element, its length).
    fn next_std_chunk(l: &[u8]) -> (usize, Std, usize) {
        let has = |i: usize, s: &str| l.get(i..i + s.len()) == Some(s.as_bytes());
        let lower_at = |i: usize| l.get(i).is_some_and(u8::is_ascii_lowercase);
        for (i, &c) in l.iter().enumerate() {
            match c {
                b'J' if has(i, "Jan") => {
                    if has(i, "January") {
                        return (i, Std::LongMonth, 7);
                    }
                    if !lower_at(i + 3) {
                        return (i, Std::Month, 3);
                    }
                }
                b'M' => {
                    if has(i, "Mon") {
                        if has(i, "Monday") {
                            return (i, Std::LongWeekDay, 6);
                        }
                        if !lower_at(i + 3) {
                            return (i, Std::WeekDay, 3);
                        }
                    }
                    if has(i, "MST") {
                        return (i, Std::Tz, 3);
                    }
                }
                b'0' => {
                    if let Some(c @ b'1'..=b'6') = l.get(i + 1) {
                        let std = [
                            Std::ZeroMonth,
                            Std::ZeroDay,
                            Std::ZeroHour12,
                            Std::ZeroMinute,
                            Std::ZeroSecond,
                            Std::Year,
                        ][usize::from(c - b'1')];
                        return (i, std, 2);
                    }
                    if has(i, "002") {
                        return (i, Std::ZeroYearDay, 3);
                    }
                }
                b'1' => {
                    if l.get(i + 1) == Some(&b'5') {
                        return (i, Std::Hour, 2);
                    }
                    return (i, Std::NumMonth, 1);
                }
                b'2' => {
                    if has(i, "2006") {
                        return (i, Std::LongYear, 4);
                    }
                    return (i, Std::Day, 1);
                }
                b'_' => {
                    if l.get(i + 1) == Some(&b'2') {
                        // `_2006` is a literal `_` and the year.
                        if has(i + 1, "2006") {
                            return (i + 1, Std::LongYear, 4);
                        }
                        return (i, Std::UnderDay, 2);
                    }
                    if has(i, "__2") {
                        return (i, Std::UnderYearDay, 3);
                    }
                }
                b'3' => return (i, Std::Hour12, 1),
                b'4' => return (i, Std::Minute, 1),
                b'5' => return (i, Std::Second, 1),
                b'P' if l.get(i + 1) == Some(&b'M') => return (i, Std::UpperPm, 2),
                b'p' if l.get(i + 1) == Some(&b'm') => return (i, Std::LowerPm, 2),
                b'-' | b'Z' => {
                    let zones: [(&str, Std, Std); 5] = [
                        ("070000", Std::NumSecondsTz, Std::Iso8601SecondsTz),
                        (
                            "07:00:00",
                            Std::NumColonSecondsTz,
                            Std::Iso8601ColonSecondsTz,
                        ),
                        ("0700", Std::NumTz, Std::Iso8601Tz),
                        ("07:00", Std::NumColonTz, Std::Iso8601ColonTz),
                        ("07", Std::NumShortTz, Std::Iso8601ShortTz),
                    ];
                    for (rest, num, iso) in zones {
                        if has(i + 1, rest) {
                            let std = if c == b'-' { num } else { iso };
                            return (i, std, rest.len() + 1);
                        }
                    }
                }
                b'.' | b',' => {
                    if let Some(&ch @ (b'0' | b'9')) = l.get(i + 1) {
                        let mut j = i + 1;
                        while l.get(j) == Some(&ch) {
                            j += 1;
                        }
                        if !l.get(j).is_some_and(u8::is_ascii_digit) {
                            let std = if ch == b'0' {
                                Std::FracSecond0(j - (i + 1))
                            } else {
                                Std::FracSecond9
                            };
                            return (i, std, j - i);
                        }
                    }
                }
                _ => {}
            }
        }
        (l.len(), Std::None, 0)
    }

    const SHORT_MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const LONG_MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const LONG_DAYS: [&str; 7] = [
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
    ];

    /// The name `v` starts with (ASCII case-insensitively): its index and the rest.
    fn lookup<'a>(names: &[&str], v: &'a [u8]) -> Option<(usize, &'a [u8])> {
        names.iter().enumerate().find_map(|(i, name)| {
            let n = name.len();
            (v.len() >= n && v[..n].eq_ignore_ascii_case(name.as_bytes())).then(|| (i, &v[n..]))
        })
    }

    /// Go's `leadingInt`: the leading digits (`None` on overflow) and the rest.
    fn leading_int(s: &[u8]) -> Option<(i64, &[u8])> {
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut x: i64 = 0;
        for &c in &s[..digits] {
            x = x.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
        }
        Some((x, &s[digits..]))
    }

    /// Go's `atoi` in the time package: an optional sign and only digits.
    fn atoi(s: &[u8]) -> Option<i64> {
        let (negative, digits) = match s.first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let (x, rest) = leading_int(digits)?;
        if !rest.is_empty() {
            return None;
        }
        Some(if negative { -x } else { x })
    }

    /// One or two digits (exactly two when `fixed`).
    fn getnum(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
        let digit = |i: usize| {
            s.get(i)
                .filter(|c| c.is_ascii_digit())
                .map(|c| i64::from(c - b'0'))
        };
        let first = digit(0)?;
        match digit(1) {
            Some(second) => Some((first * 10 + second, &s[2..])),
            None if fixed => None,
            None => Some((first, &s[1..])),
        }
    }

    /// One to three digits (exactly three when `fixed`).
    fn getnum3(s: &[u8], fixed: bool) -> Option<(i64, &[u8])> {
        let n = s.iter().take(3).take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || (fixed && n != 3) {
            return None;
        }
        let value = s[..n]
            .iter()
            .fold(0, |acc, c| acc * 10 + i64::from(c - b'0'));
        Some((value, &s[n..]))
    }

    /// The fraction `.ddd` (or `,ddd`) of `nbytes` bytes, as nanoseconds.
    fn parse_nanoseconds(v: &[u8], nbytes: usize) -> Result<i64, &'static str> {
        if !matches!(v.first(), Some(b'.' | b',')) {
            return Err("");
        }
        let nbytes = nbytes.min(10).min(v.len());
        let ns = atoi(&v[1..nbytes]).ok_or("")?;
        if ns < 0 {
            return Err("fractional second");
        }
        Ok(ns * 10i64.pow((10 - nbytes) as u32))
    }

    /// The fraction of a second in `v`'s first `n` bytes (`.123`, `,5`) into `nanos` (or the
    /// range error into `range`), and what follows it; `None` when there is none.
    fn take_fraction<'v>(
        v: &'v [u8],
        n: usize,
        nanos: &mut i64,
        range: &mut Option<&'static str>,
    ) -> Option<&'v [u8]> {
        match parse_nanoseconds(v, n) {
            Ok(ns) => *nanos = ns,
            Err(what) if !what.is_empty() => *range = Some(what),
            Err(_) => return None,
        }
        v.get(n..)
    }

    fn parse_signed_offset(v: &[u8]) -> usize {
        if !matches!(v.first(), Some(b'-' | b'+')) {
            return 0;
        }
        match leading_int(&v[1..]) {
            Some((x, rest)) if rest.len() != v.len() - 1 && x <= 23 => v.len() - rest.len(),
            _ => 0,
        }
    }

    /// The length of the zone abbreviation `v` starts with (Go's `parseTimeZone`).
    fn parse_time_zone(v: &[u8]) -> Option<usize> {
        if v.len() < 3 {
            return None;
        }
        if v.starts_with(b"ChST") || v.starts_with(b"MeST") {
            return Some(4);
        }
        if v.starts_with(b"GMT") {
            return Some(
                3 + if v.len() > 3 {
                    parse_signed_offset(&v[3..])
                } else {
                    0
                },
            );
        }
        if matches!(v[0], b'+' | b'-') {
            return match parse_signed_offset(v) {
                0 => None,
                n => Some(n),
            };
        }
        let upper = v
            .iter()
            .take(6)
            .take_while(|c| c.is_ascii_uppercase())
            .count();
        match upper {
            3 => Some(3),
            4 if v[3] == b'T' || v.starts_with(b"WITA") => Some(4),
            5 if v[4] == b'T' => Some(5),
            _ => None,
        }
    }

    /// Go's `skip`: the layout's literal text; a space matches any run of spaces.
    fn skip<'a>(mut v: &'a [u8], mut prefix: &[u8]) -> Option<&'a [u8]> {
        let trim = |s: &'a [u8]| &s[s.iter().take_while(|c| **c == b' ').count()..];
        while let Some(&p) = prefix.first() {
            if p == b' ' {
                if v.first().is_some_and(|c| *c != b' ') {
                    return None;
                }
                prefix = &prefix[prefix.iter().take_while(|c| **c == b' ').count()..];
                v = trim(v);
                continue;
            }
            if v.first() != Some(&p) {
                return None;
            }
            prefix = &prefix[1..];
            v = &v[1..];
        }
        Some(v)
    }

    /// Go's `time.Parse(layout, value)`, with the local zone being UTC.
    pub(super) fn parse(layout: &str, value: &str) -> Result<Time, String> {
        let quote = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
        let cannot = |rest: &[u8], element: &[u8]| {
            format!(
                "parsing time {value:?} as {layout:?}: cannot parse {} as {}",
                quote(rest),
                quote(element)
            )
        };
        let out_of_range = |what: &str| format!("parsing time {value:?}: {what} out of range");
        let mut l = layout.as_bytes();
        let mut v = value.as_bytes();
        let (mut year, mut month, mut day, mut yday) = (0i64, -1i64, -1i64, -1i64);
        let (mut hour, mut minute, mut second, mut nanos) = (0i64, 0i64, 0i64, 0i64);
        let (mut utc, mut zone_offset, mut zone_name) = (false, None::<i64>, None::<&[u8]>);
        let (mut pm, mut am) = (false, false);
        loop {
            let (start, std, len) = next_std_chunk(l);
            let prefix = &l[..start];
            let element = &l[start..start + len];
            v = skip(v, prefix).ok_or_else(|| cannot(v, prefix))?;
            if std == Std::None {
                if !v.is_empty() {
                    return Err(format!("parsing time {value:?}: extra text: {}", quote(v)));
                }
                break;
            }
            l = &l[start + len..];
            let hold = v;
            let mut range: Option<&str> = None;
            let parsed: Option<&[u8]> = match std {
                Std::None => None,
                Std::Year => match v.get(..2).and_then(atoi) {
                    Some(y) => {
                        year = if y >= 69 { y + 1900 } else { y + 2000 };
                        Some(&v[2..])
                    }
                    None => None,
                },
                Std::LongYear => {
                    match v.get(..4).filter(|y| y[0].is_ascii_digit()).and_then(atoi) {
                        Some(y) => {
                            year = y;
                            Some(&v[4..])
                        }
                        None => None,
                    }
                }
                Std::Month | Std::LongMonth => {
                    let names: &[&str] = if std == Std::Month {
                        &SHORT_MONTHS
                    } else {
                        &LONG_MONTHS
                    };
                    lookup(names, v).map(|(i, rest)| {
                        month = i as i64 + 1;
                        rest
                    })
                }
                Std::NumMonth | Std::ZeroMonth => {
                    getnum(v, std == Std::ZeroMonth).map(|(m, rest)| {
                        if !(1..=12).contains(&m) {
                            range = Some("month");
                        }
                        month = m;
                        rest
                    })
                }
                Std::WeekDay => lookup(&SHORT_DAYS, v).map(|(_, rest)| rest),
                Std::LongWeekDay => lookup(&LONG_DAYS, v).map(|(_, rest)| rest),
                Std::Day | Std::UnderDay | Std::ZeroDay => {
                    if std == Std::UnderDay && v.first() == Some(&b' ') {
                        v = &v[1..];
                    }
                    getnum(v, std == Std::ZeroDay).map(|(d, rest)| {
                        day = d;
                        rest
                    })
                }
                Std::UnderYearDay | Std::ZeroYearDay => {
                    for _ in 0..2 {
                        if std == Std::UnderYearDay && v.first() == Some(&b' ') {
                            v = &v[1..];
                        }
                    }
                    getnum3(v, std == Std::ZeroYearDay).map(|(d, rest)| {
                        if !(1..=366).contains(&d) {
                            range = Some("day-of-year");
                        }
                        yday = d;
                        rest
                    })
                }
                Std::Hour => getnum(v, false).map(|(h, rest)| {
                    if h >= 24 {
                        range = Some("hour");
                    }
                    hour = h;
                    rest
                }),
                Std::Hour12 | Std::ZeroHour12 => {
                    getnum(v, std == Std::ZeroHour12).map(|(h, rest)| {
                        if h > 12 {
                            range = Some("hour");
                        }
                        hour = h;
                        rest
                    })
                }
                Std::Minute | Std::ZeroMinute => {
                    getnum(v, std == Std::ZeroMinute).map(|(m, rest)| {
                        if m >= 60 {
                            range = Some("minute");
                        }
                        minute = m;
                        rest
                    })
                }
                Std::Second | Std::ZeroSecond => match getnum(v, std == Std::ZeroSecond) {
                    None => None,
                    Some((s, rest)) if s >= 60 => {
                        range = Some("second");
                        Some(rest)
                    }
                    Some((s, mut rest)) => {
                        second = s;
                        // A fraction the layout does not have is read anyway.
                        let next = next_std_chunk(l).1;
                        if rest.len() >= 2
                            && matches!(rest[0], b'.' | b',')
                            && rest[1].is_ascii_digit()
                            && !matches!(next, Std::FracSecond0(_) | Std::FracSecond9)
                        {
                            let n = 1 + rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                            match parse_nanoseconds(rest, n) {
                                Ok(ns) => nanos = ns,
                                Err(what) if !what.is_empty() => range = Some(what),
                                Err(_) => {}
                            }
                            rest = &rest[n..];
                        }
                        Some(rest)
                    }
                },
                Std::UpperPm | Std::LowerPm => {
                    let (p, a): (&[u8], &[u8]) = if std == Std::UpperPm {
                        (b"PM", b"AM")
                    } else {
                        (b"pm", b"am")
                    };
                    match v.get(..2) {
                        Some(x) if x == p => {
                            pm = true;
                            Some(&v[2..])
                        }
                        Some(x) if x == a => {
                            am = true;
                            Some(&v[2..])
                        }
                        _ => None,
                    }
                }
                Std::Iso8601Tz
                | Std::Iso8601SecondsTz
                | Std::Iso8601ShortTz
                | Std::Iso8601ColonTz
                | Std::Iso8601ColonSecondsTz
                | Std::NumTz
                | Std::NumSecondsTz
                | Std::NumShortTz
                | Std::NumColonTz
                | Std::NumColonSecondsTz => {
                    let iso = matches!(
                        std,
                        Std::Iso8601Tz
                            | Std::Iso8601SecondsTz
                            | Std::Iso8601ShortTz
                            | Std::Iso8601ColonTz
                            | Std::Iso8601ColonSecondsTz
                    );
                    if iso && v.first() == Some(&b'Z') {
                        utc = true;
                        Some(&v[1..])
                    } else {
                        match parse_offset(std, v) {
                            Some((offset, rest, bad_range)) => {
                                if bad_range.is_some() {
                                    range = bad_range;
                                }
                                zone_offset = Some(offset);
                                Some(rest)
                            }
                            None => None,
                        }
                    }
                }
                Std::Tz => {
                    if v.starts_with(b"UTC") {
                        utc = true;
                        Some(&v[3..])
                    } else {
                        parse_time_zone(v).map(|n| {
                            zone_name = Some(&v[..n]);
                            &v[n..]
                        })
                    }
                }
                Std::FracSecond0(digits) => {
                    let n = 1 + digits;
                    if v.len() < n {
                        None
                    } else {
                        take_fraction(v, n, &mut nanos, &mut range)
                    }
                }
                Std::FracSecond9 => {
                    if v.len() < 2 || !matches!(v[0], b'.' | b',') || !v[1].is_ascii_digit() {
                        Some(v)
                    } else {
                        let n = 1 + v[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                        take_fraction(v, n, &mut nanos, &mut range)
                    }
                }
            };
            if let Some(what) = range {
                return Err(out_of_range(what));
            }
            v = parsed.ok_or_else(|| cannot(hold, element))?;
        }
        if pm && hour < 12 {
            hour += 12;
        } else if am && hour == 12 {
            hour = 0;
        }
        if yday >= 0 {
            let (mut m, mut d) = (0, 0);
            let mut yd = yday;
            if is_leap(year) {
                if yd == 31 + 29 {
                    (m, d) = (2, 29);
                } else if yd > 31 + 29 {
                    yd -= 1;
                }
            }
            if m == 0 {
                const BEFORE: [i64; 13] =
                    [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
                m = yd / 31 + 1;
                if BEFORE.get(m as usize).is_some_and(|b| *b < yd) {
                    m += 1;
                }
                if m > 12 {
                    return Err(out_of_range("day-of-year"));
                }
                d = yd - BEFORE[(m - 1) as usize];
            }
            if month >= 0 && month != m {
                return Err(format!(
                    "parsing time {value:?}: day-of-year does not match month"
                ));
            }
            month = m;
            if day >= 0 && day != d {
                return Err(format!(
                    "parsing time {value:?}: day-of-year does not match day"
                ));
            }
            day = d;
        } else {
            if month < 0 {
                month = 1;
            }
            if day < 0 {
                day = 1;
            }
        }
        if day < 1 || day > days_in(month, year) {
            return Err(out_of_range("day"));
        }
        let offset = if utc {
            0
        } else if let Some(offset) = zone_offset {
            offset
        } else if let Some(name) = zone_name {
            // A zone Go does not know has offset 0, except `GMT±h`.
            match name.strip_prefix(b"GMT") {
                Some(hours) if !hours.is_empty() => atoi(hours).unwrap_or(0) * 3600,
                _ => 0,
            }
        } else {
            0
        };
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset;
        Ok(Time {
            secs,
            nanos: u32::try_from(nanos).unwrap_or(0),
            offset: i32::try_from(offset).unwrap_or(0),
        })
    }

    /// A numeric zone offset: (seconds east, the rest, an out-of-range field).
    fn parse_offset(std: Std, v: &[u8]) -> Option<(i64, &[u8], Option<&'static str>)> {
        let (sign, hh, mm, ss, rest): (u8, &[u8], &[u8], &[u8], &[u8]) = match std {
            Std::Iso8601ColonTz | Std::NumColonTz => {
                if v.len() < 6 || v[3] != b':' {
                    return None;
                }
                (v[0], &v[1..3], &v[4..6], b"00", &v[6..])
            }
            Std::NumShortTz | Std::Iso8601ShortTz => {
                if v.len() < 3 {
                    return None;
                }
                (v[0], &v[1..3], b"00", b"00", &v[3..])
            }
            Std::Iso8601ColonSecondsTz | Std::NumColonSecondsTz => {
                if v.len() < 9 || v[3] != b':' || v[6] != b':' {
                    return None;
                }
                (v[0], &v[1..3], &v[4..6], &v[7..9], &v[9..])
            }
            Std::Iso8601SecondsTz | Std::NumSecondsTz => {
                if v.len() < 7 {
                    return None;
                }
                (v[0], &v[1..3], &v[3..5], &v[5..7], &v[7..])
            }
            _ => {
                if v.len() < 5 {
                    return None;
                }
                (v[0], &v[1..3], &v[3..5], b"00", &v[5..])
            }
        };
        let (h, _) = getnum(hh, true)?;
        let (m, _) = getnum(mm, true)?;
        let (s, _) = getnum(ss, true)?;
        let range = if h > 24 {
            Some("time zone offset hour")
        } else if m > 60 {
            Some("time zone offset minute")
        } else if s > 60 {
            Some("time zone offset second")
        } else {
            None
        };
        let offset = (h * 60 + m) * 60 + s;
        match sign {
            b'+' => Some((offset, rest, range)),
            b'-' => Some((-offset, rest, range)),
            _ => None,
        }
    }
}

/// Go's `regexp` syntax on the `regex` crate: RE2 is the same family; Go's `\d`, `\w`, `\s`
/// and `\b` are ASCII, the crate's Unicode, so those are rewritten.
mod go_regex {
    pub(super) fn compile(pattern: &str) -> Result<regex::Regex, String> {
        regex::Regex::new(&translate(pattern)).map_err(|e| format!("error parsing regexp: {e}"))
    }

    fn translate(pattern: &str) -> String {
        let mut out = String::with_capacity(pattern.len());
        let mut chars = pattern.chars().peekable();
        let mut in_class = false;
        // Whether the class has just opened (a `]` there is literal).
        let mut class_start = false;
        while let Some(c) = chars.next() {
            let at_start = class_start;
            class_start = false;
            match c {
                '\\' => {
                    let Some(next) = chars.next() else {
                        out.push('\\');
                        break;
                    };
                    let replacement = match (next, in_class) {
                        ('d', false) => Some("[0-9]"),
                        ('D', false) => Some("[^0-9]"),
                        ('w', false) => Some("[0-9A-Za-z_]"),
                        ('W', false) => Some("[^0-9A-Za-z_]"),
                        ('s', false) => Some("[\\t\\n\\f\\r ]"),
                        ('S', false) => Some("[^\\t\\n\\f\\r ]"),
                        ('b', false) => Some("(?-u:\\b)"),
                        ('B', false) => Some("(?-u:\\B)"),
                        ('d', true) => Some("0-9"),
                        ('D', true) => Some("[^0-9]"),
                        ('w', true) => Some("0-9A-Za-z_"),
                        ('W', true) => Some("[^0-9A-Za-z_]"),
                        ('s', true) => Some("\\t\\n\\f\\r "),
                        ('S', true) => Some("[^\\t\\n\\f\\r ]"),
                        _ => None,
                    };
                    match replacement {
                        Some(r) => out.push_str(r),
                        None => {
                            out.push('\\');
                            out.push(next);
                        }
                    }
                }
                '[' if !in_class => {
                    out.push('[');
                    in_class = true;
                    if chars.peek() == Some(&'^') {
                        chars.next();
                        out.push('^');
                    }
                    class_start = true;
                }
                '[' if chars.peek() == Some(&':') => {
                    // `[:alpha:]` inside a class.
                    out.push('[');
                    for c in chars.by_ref() {
                        out.push(c);
                        if c == ']' {
                            break;
                        }
                    }
                }
                '[' => out.push_str("\\["),
                ']' if in_class && !at_start => {
                    out.push(']');
                    in_class = false;
                }
                ']' if in_class => out.push_str("\\]"),
                '&' | '~' | '-' if in_class && chars.peek() == Some(&c) => {
                    // Set operators in the crate's classes, literal in Go's.
                    out.push('\\');
                    out.push(c);
                }
                other => out.push(other),
            }
        }
        out
    }

    #[cfg(test)]
    pub(super) fn translated(pattern: &str) -> String {
        translate(pattern)
    }
}

/// MD5 (RFC 1321), for Kyverno's `md5` naming helper; not used for anything secure.
mod md5 {
    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];

    /// floor(|sin(i + 1)| × 2^32).
    #[rustfmt::skip]
    pub(super) const K: [u32; 64] = [
        0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee, 0xf57c_0faf, 0x4787_c62a, 0xa830_4613,
        0xfd46_9501, 0x6980_98d8, 0x8b44_f7af, 0xffff_5bb1, 0x895c_d7be, 0x6b90_1122, 0xfd98_7193,
        0xa679_438e, 0x49b4_0821, 0xf61e_2562, 0xc040_b340, 0x265e_5a51, 0xe9b6_c7aa, 0xd62f_105d,
        0x0244_1453, 0xd8a1_e681, 0xe7d3_fbc8, 0x21e1_cde6, 0xc337_07d6, 0xf4d5_0d87, 0x455a_14ed,
        0xa9e3_e905, 0xfcef_a3f8, 0x676f_02d9, 0x8d2a_4c8a, 0xfffa_3942, 0x8771_f681, 0x6d9d_6122,
        0xfde5_380c, 0xa4be_ea44, 0x4bde_cfa9, 0xf6bb_4b60, 0xbebf_bc70, 0x289b_7ec6, 0xeaa1_27fa,
        0xd4ef_3085, 0x0488_1d05, 0xd9d4_d039, 0xe6db_99e5, 0x1fa2_7cf8, 0xc4ac_5665, 0xf429_2244,
        0x432a_ff97, 0xab94_23a7, 0xfc93_a039, 0x655b_59c3, 0x8f0c_cc92, 0xffef_f47d, 0x8584_5dd1,
        0x6fa8_7e4f, 0xfe2c_e6e0, 0xa301_4314, 0x4e08_11a1, 0xf753_7e82, 0xbd3a_f235, 0x2ad7_d2bb,
        0xeb86_d391,
    ];

    pub(super) fn digest(data: &[u8]) -> [u8; 16] {
        let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
        let mut message = data.to_vec();
        message.push(0x80);
        while message.len() % 64 != 56 {
            message.push(0);
        }
        message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
        for block in message.chunks_exact(64) {
            let mut m = [0u32; 16];
            for (word, bytes) in m.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
            let [mut a, mut b, mut c, mut d] = state;
            for (i, (k, shift)) in K.iter().zip(SHIFTS).enumerate() {
                let (f, g) = match i / 16 {
                    0 => ((b & c) | (!b & d), i),
                    1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                    2 => (b ^ c ^ d, (3 * i + 5) % 16),
                    _ => (c ^ (b | !d), (7 * i) % 16),
                };
                let rotated = a
                    .wrapping_add(f)
                    .wrapping_add(*k)
                    .wrapping_add(m[g])
                    .rotate_left(shift);
                (a, b, c, d) = (d, b.wrapping_add(rotated), b, c);
            }
            for (s, v) in state.iter_mut().zip([a, b, c, d]) {
                *s = s.wrapping_add(v);
            }
        }
        let mut out = [0u8; 16];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        out
    }
}
