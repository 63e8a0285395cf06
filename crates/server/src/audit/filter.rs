//! [`AuditFilter`] and its parsing from `GET /audit` query parameters and `sealgate audit` flags.

use std::collections::HashMap;

use super::AuditError;

/// The results a record can have, in the order they are documented.
pub const RESULTS: [&str; 5] = ["pass", "fail", "skip", "error", "none"];

/// The largest `limit` a query may ask for.
pub const MAX_QUERY_LIMIT: usize = 100_000;

/// Which records a query returns. The default returns the newest 1000 real (not dry-run) ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only records at or after this time (milliseconds since the Unix epoch).
    pub since_unix_ms: Option<i64>,
    /// Only images matching this Kyverno wildcard pattern (`*` also across `/`, `?` one
    /// character), matched against the normalised image as recorded.
    pub image: Option<String>,
    /// Only this namespace; `Some("")` means cluster-scoped resources only.
    pub namespace: Option<String>,
    /// Only this result: pass, fail, skip, error or none.
    pub result: Option<String>,
    /// Include dry-run decisions, which are excluded unless asked for.
    pub include_dry_run: bool,
    /// At most this many records, newest first; 0 means 1000.
    pub limit: usize,
}

/// The time `s` designates: a duration before `now_unix_ms` (`45s`, `30m`, `1h`, `2d`, `1w`) or
/// an RFC 3339 time (`2025-01-31T12:00:00Z`).
pub fn parse_since(s: &str, now_unix_ms: i64) -> Result<i64, AuditError> {
    let invalid = || AuditError::InvalidSince {
        value: s.to_string(),
    };
    if let Some(secs) = sealgate_core::timestamp::parse_rfc3339(s) {
        return secs.checked_mul(1000).ok_or_else(invalid);
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = s.split_at(digits);
    let unit_ms: i64 = match unit {
        "s" => 1000,
        "m" => 60 * 1000,
        "h" => 3600 * 1000,
        "d" => 24 * 3600 * 1000,
        "w" => 7 * 24 * 3600 * 1000,
        _ => return Err(invalid()),
    };
    let number: i64 = number.parse().map_err(|_| invalid())?;
    number
        .checked_mul(unit_ms)
        .and_then(|ago| now_unix_ms.checked_sub(ago))
        .ok_or_else(invalid)
}

/// Checks a result filter value.
pub(crate) fn parse_result(s: &str) -> Result<String, AuditError> {
    if RESULTS.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(AuditError::InvalidResult {
            value: s.to_string(),
        })
    }
}

/// The filter of `GET /audit?since=1h&image=...&namespace=...&result=fail&limit=100&dryRun=true`.
///
/// Every parameter is optional and, when given, applied as given (`namespace=` selects
/// cluster-scoped resources). Unknown parameters are refused rather than ignored, so a typo
/// does not silently widen the answer.
pub fn filter_from_query(
    params: &HashMap<String, String>,
    now_unix_ms: i64,
) -> Result<AuditFilter, AuditError> {
    let mut filter = AuditFilter::default();
    // Sorted, so the first unknown parameter reported does not depend on hashing.
    let mut names: Vec<&String> = params.keys().collect();
    names.sort();
    for name in names {
        let value = &params[name];
        match name.as_str() {
            "since" => filter.since_unix_ms = Some(parse_since(value, now_unix_ms)?),
            "image" => filter.image = Some(value.clone()),
            "namespace" => filter.namespace = Some(value.clone()),
            "result" => filter.result = Some(parse_result(value)?),
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_QUERY_LIMIT).contains(n))
                    .ok_or_else(|| AuditError::InvalidLimit {
                        value: value.clone(),
                    })?;
            }
            "dryRun" => {
                filter.include_dry_run = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(AuditError::InvalidDryRun {
                            value: value.clone(),
                        });
                    }
                }
            }
            _ => {
                return Err(AuditError::UnknownParameter { name: name.clone() });
            }
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn since_takes_durations_and_rfc3339_times() {
        assert_eq!(parse_since("45s", NOW).unwrap(), NOW - 45_000);
        assert_eq!(parse_since("30m", NOW).unwrap(), NOW - 30 * 60_000);
        assert_eq!(parse_since("1h", NOW).unwrap(), NOW - 3_600_000);
        assert_eq!(parse_since("2d", NOW).unwrap(), NOW - 2 * 86_400_000);
        assert_eq!(parse_since("1w", NOW).unwrap(), NOW - 7 * 86_400_000);
        assert_eq!(parse_since("0s", NOW).unwrap(), NOW);
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z", NOW).unwrap(),
            1_700_000_000_000
        );
    }

    #[test]
    fn since_refuses_what_it_cannot_read_and_says_what_works() {
        for bad in [
            "",
            "h",
            "1",
            "1x",
            "-1h",
            "1.5h",
            "1 h",
            "1H",
            "99999999999999999999s",
        ] {
            let err = parse_since(bad, NOW).unwrap_err();
            assert!(matches!(err, AuditError::InvalidSince { .. }), "{bad}");
            assert!(
                err.to_string().contains("such as 45s, 30m, 1h or 2d"),
                "{err}"
            );
        }
        // Overflow of the multiplication and of the subtraction.
        assert!(parse_since("9223372036854775807d", NOW).is_err());
        assert!(parse_since("9223372036854775s", i64::MIN + 1).is_err());
    }

    #[test]
    fn query_parameters_become_a_filter() {
        let filter = filter_from_query(
            &params(&[
                ("since", "1h"),
                ("image", "registry.company.com/*"),
                ("namespace", "team-a"),
                ("result", "fail"),
                ("limit", "50"),
                ("dryRun", "true"),
            ]),
            NOW,
        )
        .unwrap();
        assert_eq!(
            filter,
            AuditFilter {
                since_unix_ms: Some(NOW - 3_600_000),
                image: Some("registry.company.com/*".into()),
                namespace: Some("team-a".into()),
                result: Some("fail".into()),
                include_dry_run: true,
                limit: 50,
            }
        );
        assert_eq!(
            filter_from_query(&HashMap::new(), NOW).unwrap(),
            AuditFilter::default()
        );
        assert_eq!(
            filter_from_query(&params(&[("namespace", "")]), NOW)
                .unwrap()
                .namespace,
            Some(String::new())
        );
    }

    #[test]
    fn bad_query_parameters_are_refused_with_what_to_use() {
        let cases: &[(&str, &str, &str)] = &[
            ("result", "failed", "use pass, fail, skip, error or none"),
            ("limit", "0", "from 1 to 100000"),
            ("limit", "100001", "from 1 to 100000"),
            ("limit", "ten", "from 1 to 100000"),
            ("dryRun", "yes", "use true or false"),
            ("since", "yesterday", "such as 45s"),
            (
                "namespaces",
                "x",
                "use since, image, namespace, result, limit or dryRun",
            ),
        ];
        for (name, value, hint) in cases {
            let err = filter_from_query(&params(&[(name, value)]), NOW).unwrap_err();
            let message = err.to_string();
            assert!(message.contains(hint), "{name}={value}: {message}");
        }
    }
}
