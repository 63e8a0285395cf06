//! [`DecisionRow`]: the audit records of one admission request as one row of table `decisions`.
//!
//! The request-level fields (time, uid, dry run, operation, namespace, kind, name, allowed,
//! duration) are stored once per request. Two filter columns let SQL skip rows that cannot
//! match before any JSON is read:
//!
//! - `results`: the distinct results of the request's checks, each with a space before and
//!   after (` pass fail `), so `instr(results, ' fail ') > 0` selects requests with a failed
//!   check;
//! - `images`: the distinct images, written the same way, so `instr(images, ' ghcr.io/') > 0`
//!   selects requests with an image starting with `ghcr.io/`.
//!
//! Both may let through a row whose checks do not match (an image containing a space), never the
//! reverse; the exact filters run on the expanded records.
//!
//! Column `checks` holds the checks as a JSON array, one 8-element array per check, in the order
//! they were recorded: `[image, digest, policy, rule, result, reason, signer, cause]` (`cause`
//! is the reason's kind, e.g. `signature_mismatch` or `fetch_budget`; rows written before it
//! existed have 7 elements and read back without one). An element is a string; `null` (no
//! digest, no signer, no cause); or a number `n`, standing for the n-th string (from 0)
//! written out earlier in the same array. Strings are escaped by `serde_json`. A Pod of 3 images under 10 policies repeats each
//! image, digest and reason 10 times and each policy and signer 3 times; with these
//! back-references its 30 checks take about 2.6 KB instead of 10 KB. A reference never leaves
//! its row, so deleting rows (retention) needs no bookkeeping.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::AuditRecord;

/// The fields shared by every check of one admission request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFields<'a> {
    pub(crate) time_unix_ms: i64,
    pub(crate) uid: &'a str,
    pub(crate) dry_run: bool,
    pub(crate) operation: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) name: &'a str,
    pub(crate) allowed: bool,
    /// Time taken for the whole request, in milliseconds.
    pub(crate) duration_ms: f64,
}

impl<'a> RequestFields<'a> {
    /// The request-level fields of `record`.
    pub(crate) fn of(record: &'a AuditRecord) -> RequestFields<'a> {
        RequestFields {
            time_unix_ms: record.time_unix_ms,
            uid: &record.uid,
            dry_run: record.dry_run,
            operation: &record.operation,
            namespace: &record.namespace,
            kind: &record.kind,
            name: &record.name,
            allowed: record.allowed,
            duration_ms: record.duration_ms,
        }
    }

    /// Whether `self` and `other` describe the same request, i.e. whether their checks can
    /// share a row and still come back exactly as recorded.
    pub(crate) fn same_request(&self, other: &RequestFields<'_>) -> bool {
        self.time_unix_ms == other.time_unix_ms
            && self.uid == other.uid
            && self.dry_run == other.dry_run
            && self.operation == other.operation
            && self.namespace == other.namespace
            && self.kind == other.kind
            && self.name == other.name
            && self.allowed == other.allowed
            && stored_duration(self.duration_ms).to_bits()
                == stored_duration(other.duration_ms).to_bits()
    }
}

/// SQLite stores NaN as NULL, which the NOT NULL column would refuse with the whole batch: a
/// duration that is not a finite number is stored as 0.
pub(crate) fn stored_duration(duration_ms: f64) -> f64 {
    if duration_ms.is_finite() {
        duration_ms
    } else {
        0.0
    }
}

/// What was decided about one image under one rule (or that no rule covered it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check<'a> {
    pub(crate) image: &'a str,
    pub(crate) digest: Option<&'a str>,
    pub(crate) policy: &'a str,
    pub(crate) rule: &'a str,
    pub(crate) result: &'a str,
    pub(crate) reason: &'a str,
    pub(crate) signer: Option<&'a str>,
    /// The reason's kind ([`Reason::as_str`](sealgate_core::engine::Reason::as_str)), when the
    /// engine gave one.
    pub(crate) cause: Option<&'a str>,
}

impl<'a> Check<'a> {
    /// The check-level fields of `record`.
    pub(crate) fn of(record: &'a AuditRecord) -> Check<'a> {
        Check {
            image: &record.image,
            digest: record.digest.as_deref(),
            policy: &record.policy,
            rule: &record.rule,
            result: &record.result,
            reason: &record.reason,
            signer: record.signer.as_deref(),
            cause: record.cause.as_deref(),
        }
    }
}

/// One admission request, encoded for table `decisions`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DecisionRow {
    pub(crate) time_unix_ms: i64,
    pub(crate) uid: String,
    pub(crate) dry_run: bool,
    pub(crate) operation: String,
    pub(crate) namespace: String,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) allowed: bool,
    /// Finite (see [`stored_duration`]).
    pub(crate) duration_ms: f64,
    /// How many checks (audit records) the row holds.
    pub(crate) check_count: usize,
    /// ` result result `: the distinct results.
    pub(crate) results: String,
    /// ` image image `: the distinct images.
    pub(crate) images: String,
    /// The checks, as described in the module documentation.
    pub(crate) checks: String,
}

impl DecisionRow {
    /// `records` as rows: each run of consecutive records of the same request (the same
    /// request-level fields) becomes one row. A request's records, as the webhook records them,
    /// give one row.
    pub(crate) fn from_records(records: &[AuditRecord]) -> Vec<DecisionRow> {
        let mut rows = Vec::new();
        let mut rest = records;
        while let Some(first) = rest.first() {
            let request = RequestFields::of(first);
            let len = rest
                .iter()
                .position(|r| !request.same_request(&RequestFields::of(r)))
                .unwrap_or(rest.len());
            let (run, tail) = rest.split_at(len);
            let mut builder = DecisionBuilder::new(request, run.len());
            for r in run {
                builder.check(&Check::of(r));
            }
            rows.push(builder.finish());
            rest = tail;
        }
        rows
    }

    /// About how much memory the row holds: its fixed size, its text and an allocation header
    /// for each string (for the writer's queue bound).
    pub(crate) fn bytes(&self) -> usize {
        const PER_ALLOCATION: usize = 16;
        let strings = [
            &self.uid,
            &self.operation,
            &self.namespace,
            &self.kind,
            &self.name,
            &self.results,
            &self.images,
            &self.checks,
        ];
        std::mem::size_of::<DecisionRow>()
            + strings
                .iter()
                .map(|s| s.capacity() + PER_ALLOCATION)
                .sum::<usize>()
    }
}

/// The eight fields of a check, in stored order.
const FIELDS: usize = 8;
/// The fields of a check written before `cause` existed.
const FIELDS_BEFORE_CAUSE: usize = 7;
const IMAGE: usize = 0;
const RESULT: usize = 4;

/// How many earlier strings of the same field a new string is compared with before it is
/// written out again. Requests list checks rule by rule, image by image, so repeats are near.
const LOOK_BACK: usize = 32;

/// A string written out in the checks array, for back-references.
#[derive(Debug, Clone, Copy)]
struct Written {
    /// Its escaped text: `checks[start..end]`.
    start: usize,
    end: usize,
    /// The index a reference to it uses.
    index: usize,
    /// The previous string written for the same field, if any.
    previous: Option<usize>,
}

/// Encodes one request's checks into a [`DecisionRow`] without copying its strings more than
/// once: the request's own fields are copied into the row, each check's strings are escaped
/// straight into the checks column or replaced by a reference.
#[derive(Debug)]
pub(crate) struct DecisionBuilder {
    row: DecisionRow,
    /// The checks column as it is written (made the row's `checks` by `finish`).
    checks: Vec<u8>,
    written: Vec<Written>,
    /// For each field, the last string written for it (an index into `written`).
    last: [Option<usize>; FIELDS],
}

impl DecisionBuilder {
    /// A row for `request`, sized for about `checks` checks.
    pub(crate) fn new(request: RequestFields<'_>, checks: usize) -> DecisionBuilder {
        let mut encoded = Vec::with_capacity(128 + 96 * checks);
        encoded.push(b'[');
        DecisionBuilder {
            row: DecisionRow {
                time_unix_ms: request.time_unix_ms,
                uid: request.uid.to_owned(),
                dry_run: request.dry_run,
                operation: request.operation.to_owned(),
                namespace: request.namespace.to_owned(),
                kind: request.kind.to_owned(),
                name: request.name.to_owned(),
                allowed: request.allowed,
                duration_ms: stored_duration(request.duration_ms),
                check_count: 0,
                results: String::new(),
                images: String::new(),
                checks: String::new(),
            },
            checks: encoded,
            written: Vec::with_capacity(32),
            last: [None; FIELDS],
        }
    }

    /// Appends one check.
    pub(crate) fn check(&mut self, check: &Check<'_>) {
        if self.row.check_count > 0 {
            self.checks.push(b',');
        }
        self.row.check_count += 1;
        let fields = [
            Some(check.image),
            check.digest,
            Some(check.policy),
            Some(check.rule),
            Some(check.result),
            Some(check.reason),
            check.signer,
            check.cause,
        ];
        for (field, value) in fields.into_iter().enumerate() {
            self.checks.push(if field == 0 { b'[' } else { b',' });
            self.field(field, value);
        }
        self.checks.push(b']');
    }

    /// The finished row.
    pub(crate) fn finish(mut self) -> DecisionRow {
        self.checks.push(b']');
        // Only strings (serde_json's output) and ASCII went in, so the bytes are UTF-8.
        self.row.checks = String::from_utf8(self.checks)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        self.row
    }

    /// Writes `value` for field `field`: `null`, a reference, or the escaped string.
    fn field(&mut self, field: usize, value: Option<&str>) {
        let Some(value) = value else {
            self.checks.extend_from_slice(b"null");
            return;
        };
        let mut at = self.last[field];
        for _ in 0..LOOK_BACK {
            let Some(i) = at else { break };
            let w = self.written[i];
            // Only a string written without escapes is compared, so equal text means an equal
            // string; one that needed escapes is simply written again.
            if w.end - w.start == value.len()
                && self.checks.get(w.start..w.end) == Some(value.as_bytes())
            {
                self.checks
                    .extend_from_slice(itoa::Buffer::new().format(w.index).as_bytes());
                return;
            }
            at = w.previous;
        }
        // The quoted, escaped string; `start..end` is its inside.
        let start = self.checks.len() + 1;
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.checks, value);
        let end = self.checks.len() - 1;
        let index = self.written.len();
        self.written.push(Written {
            start,
            end,
            index,
            previous: self.last[field],
        });
        self.last[field] = Some(index);
        // A string not seen before for this field: a new image or result, unless it is beyond
        // the look-back (then listing it twice does no harm).
        if field == IMAGE {
            push_listed(&mut self.row.images, value);
        } else if field == RESULT {
            push_listed(&mut self.row.results, value);
        }
    }
}

/// Appends `value` to a ` a b ` list.
fn push_listed(list: &mut String, value: &str) {
    if list.is_empty() {
        list.push(' ');
    }
    list.push_str(value);
    list.push(' ');
}

/// Why a row's `checks` column could not be read back.
#[derive(Debug, thiserror::Error)]
#[error(
    "decision {id}: column checks is not readable ({detail}); the row was not written by sealgate"
)]
pub(crate) struct CorruptChecks {
    /// The row's id.
    pub(crate) id: i64,
    /// What is wrong.
    pub(crate) detail: String,
}

/// One element of a stored check.
#[derive(Debug)]
enum Element<'a> {
    Text(Cow<'a, str>),
    Reference(u64),
    Null,
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ElementVisitor;
        impl<'de> Visitor<'de> for ElementVisitor {
            type Value = Element<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a back-reference number or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Element::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Element::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Element::Text(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Element::Reference(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Element::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Element::Null)
            }
        }
        deserializer.deserialize_any(ElementVisitor)
    }
}

/// A check read back, its strings borrowed from the column where they needed no unescaping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredCheck<'a> {
    pub(crate) image: Cow<'a, str>,
    pub(crate) digest: Option<Cow<'a, str>>,
    pub(crate) policy: Cow<'a, str>,
    pub(crate) rule: Cow<'a, str>,
    pub(crate) result: Cow<'a, str>,
    pub(crate) reason: Cow<'a, str>,
    pub(crate) signer: Option<Cow<'a, str>>,
    pub(crate) cause: Option<Cow<'a, str>>,
}

impl StoredCheck<'_> {
    /// The audit record of this check of `request`.
    pub(crate) fn into_record(self, request: &RequestFields<'_>) -> AuditRecord {
        AuditRecord {
            time_unix_ms: request.time_unix_ms,
            uid: request.uid.to_owned(),
            dry_run: request.dry_run,
            operation: request.operation.to_owned(),
            namespace: request.namespace.to_owned(),
            kind: request.kind.to_owned(),
            name: request.name.to_owned(),
            image: self.image.into_owned(),
            digest: self.digest.map(Cow::into_owned),
            policy: self.policy.into_owned(),
            rule: self.rule.into_owned(),
            result: self.result.into_owned(),
            allowed: request.allowed,
            reason: self.reason.into_owned(),
            signer: self.signer.map(Cow::into_owned),
            duration_ms: request.duration_ms,
            cause: self.cause.map(Cow::into_owned),
        }
    }
}

/// Reads the `checks` column of row `id` back, in recorded order.
pub(crate) fn decode_checks(id: i64, checks: &str) -> Result<Vec<StoredCheck<'_>>, CorruptChecks> {
    let corrupt = |detail: String| CorruptChecks { id, detail };
    let elements: Vec<Vec<Element<'_>>> =
        serde_json::from_str(checks).map_err(|e| corrupt(e.to_string()))?;
    let mut table: Vec<Cow<'_, str>> = Vec::new();
    let mut out = Vec::with_capacity(elements.len());
    for (n, fields) in elements.into_iter().enumerate() {
        if fields.len() != FIELDS && fields.len() != FIELDS_BEFORE_CAUSE {
            return Err(corrupt(format!(
                "check {n} has {} fields, not {FIELDS}",
                fields.len()
            )));
        }
        let mut values: [Option<Cow<'_, str>>; FIELDS] = Default::default();
        for (value, element) in values.iter_mut().zip(fields) {
            *value = match element {
                Element::Text(text) => {
                    table.push(text.clone());
                    Some(text)
                }
                Element::Reference(i) => {
                    let found = usize::try_from(i).ok().and_then(|i| table.get(i));
                    let Some(text) = found else {
                        return Err(corrupt(format!(
                            "check {n} refers to string {i}, but only {} came before",
                            table.len()
                        )));
                    };
                    Some(text.clone())
                }
                Element::Null => None,
            };
        }
        let [image, digest, policy, rule, result, reason, signer, cause] = values;
        out.push(StoredCheck {
            image: required(image, id, n, "image")?,
            digest,
            policy: required(policy, id, n, "policy")?,
            rule: required(rule, id, n, "rule")?,
            result: required(result, id, n, "result")?,
            reason: required(reason, id, n, "reason")?,
            signer,
            cause,
        });
    }
    Ok(out)
}

/// A field that may not be `null`.
fn required<'a>(
    value: Option<Cow<'a, str>>,
    id: i64,
    n: usize,
    what: &str,
) -> Result<Cow<'a, str>, CorruptChecks> {
    value.ok_or_else(|| CorruptChecks {
        id,
        detail: format!("check {n} has no {what}"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::audit::test_support::{record, request};

    /// The records `row` holds, read back.
    fn expand(row: &DecisionRow) -> Vec<AuditRecord> {
        let request = RequestFields {
            time_unix_ms: row.time_unix_ms,
            uid: &row.uid,
            dry_run: row.dry_run,
            operation: &row.operation,
            namespace: &row.namespace,
            kind: &row.kind,
            name: &row.name,
            allowed: row.allowed,
            duration_ms: row.duration_ms,
        };
        decode_checks(1, &row.checks)
            .unwrap()
            .into_iter()
            .map(|c| c.into_record(&request))
            .collect()
    }

    #[test]
    fn repeated_strings_become_references_to_their_first_appearance() {
        let mut records = request(1, 2, 2);
        records[3].signer = None;
        let rows = DecisionRow::from_records(&records);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        let d0 = format!("sha256:{}", "00".repeat(32));
        let d1 = format!("sha256:{}", "01".repeat(32));
        let s0 = format!("key sha256:{}", "00".repeat(32));
        let s1 = format!("key sha256:{}", "01".repeat(32));
        let i0 = "registry.company.com/team-a/app-0:v1";
        let i1 = "registry.company.com/team-a/app-1:v1";
        let r0 = format!("verified image signatures for {i0} ({d0})");
        let r1 = format!("verified image signatures for {i1} ({d1})");
        assert_eq!(
            row.checks,
            format!(
                "[[\"{i0}\",\"{d0}\",\"require-signed-00\",\"check-signature\",\"pass\",\"{r0}\",\"{s0}\",\"verified\"],\
                 [\"{i1}\",\"{d1}\",2,3,4,\"{r1}\",6,7],\
                 [0,1,\"require-signed-01\",3,4,5,\"{s1}\",7],\
                 [8,9,11,3,4,10,null,7]]"
            )
        );
        assert_eq!(row.check_count, 4);
        assert_eq!(row.results, " pass ");
        assert_eq!(row.images, format!(" {i0} {i1} "));
        assert_eq!(expand(row), records);
    }

    #[test]
    fn strings_that_need_escapes_round_trip_and_are_not_confused() {
        let mut records = Vec::new();
        for reason in [
            "a \"quoted\" \\ reason\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f} ü 名前 🦀",
            "a \"quoted\" \\ reason\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f} ü 名前 🦀",
            "a \\\"quoted\\\" \\\\ reason",
            "a \\\"quoted\\\" \\\\ reason",
            "",
            "",
            "1",
            "null",
        ] {
            let mut r = record(5);
            r.reason = reason.into();
            records.push(r);
        }
        let rows = DecisionRow::from_records(&records);
        assert_eq!(rows.len(), 1);
        // Valid JSON by serde_json's reading, and exactly the strings written.
        let parsed: serde_json::Value = serde_json::from_str(&rows[0].checks).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 8);
        assert_eq!(expand(&rows[0]), records);
    }

    #[test]
    fn each_run_of_one_requests_records_is_one_row() {
        let mut records = request(1, 3, 2);
        records.extend(request(1, 1, 1).into_iter().map(|mut r| {
            r.uid = "other".into();
            r
        }));
        records.extend(request(2, 2, 1));
        let mut changed = request(2, 2, 1);
        changed[1].allowed = false;
        records.extend(changed);
        let mut nan = record(3);
        nan.duration_ms = f64::NAN;
        records.push(nan.clone());
        nan.duration_ms = 0.0;
        records.push(nan);
        let rows = DecisionRow::from_records(&records);
        let counts: Vec<usize> = rows.iter().map(|r| r.check_count).collect();
        // The 2nd request's records at time 2 and the first of the next one share every
        // request-level field: that run is one row. A duration that is not a number is stored as
        // 0, so the two last records are one request too.
        assert_eq!(counts, vec![6, 1, 3, 1, 2]);
        assert_eq!(rows.iter().flat_map(expand).count(), records.len());
        assert!(DecisionRow::from_records(&[]).is_empty());
    }

    #[test]
    fn references_only_look_back_so_far() {
        // 100 policies: a policy repeated after 40 others is written out again, still correct.
        let mut records = request(1, 1, 100);
        for i in 0..50 {
            let mut r = records[i].clone();
            r.image = "later.example/x:v1".into();
            records.push(r);
        }
        let rows = DecisionRow::from_records(&records);
        assert_eq!(rows.len(), 1);
        assert_eq!(expand(&rows[0]), records);
    }

    #[test]
    fn corrupt_checks_are_an_error_naming_the_row() {
        for (checks, detail) in [
            ("not json", "expected ident"),
            (
                "[[\"a\",null,\"p\",\"r\",\"pass\",\"why\"]]",
                "check 0 has 6 fields, not 8",
            ),
            (
                "[[\"a\",null,\"p\",\"r\",\"pass\",\"why\",null,null,null]]",
                "check 0 has 9 fields, not 8",
            ),
            (
                "[[0,null,\"p\",\"r\",\"pass\",\"why\",null]]",
                "refers to string 0, but only 0",
            ),
            (
                "[[null,null,\"p\",\"r\",\"pass\",\"why\",null]]",
                "check 0 has no image",
            ),
            (
                "[[\"a\",null,\"p\",\"r\",\"pass\",true,null]]",
                "a string, a back-reference",
            ),
            (
                "[[\"a\",null,\"p\",\"r\",\"pass\",-1,null]]",
                "a string, a back-reference",
            ),
        ] {
            let err = decode_checks(42, checks).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with("decision 42: column checks"),
                "{message}"
            );
            assert!(message.contains(detail), "{checks}: {message}");
        }
        assert!(decode_checks(1, "[]").unwrap().is_empty());
    }

    #[test]
    fn checks_written_before_causes_were_kept_read_back_without_one() {
        let checks = decode_checks(1, "[[\"a\",null,\"p\",\"r\",\"pass\",\"why\",null]]").unwrap();
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].reason, "why");
        assert_eq!(checks[0].cause, None);
        let checks = decode_checks(
            1,
            "[[\"a\",null,\"p\",\"r\",\"fail\",\"why\",null,\"no_signatures\"]]",
        )
        .unwrap();
        assert_eq!(checks[0].cause.as_deref(), Some("no_signatures"));
    }
}
