//! Kyverno's wildcard matching (`ext/wildcard`, go-wildcard v1.0.3).
//!
//! `*` matches any run of characters, including none and including `/`; `?` matches exactly one
//! character, `/` included; everything else is literal and case-sensitive; the whole string must
//! match. There is no escaping and there are no character classes. An empty pattern matches only
//! the empty string.

/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    if pattern.is_empty() {
        return text.is_empty();
    }
    if pattern == "*" {
        return true;
    }
    // A byte search: `*` and `?` are ASCII, so they never occur inside a multi-byte character
    // (and `str::find` with a char set decodes every character: a fifth of a decision's time).
    match first_wildcard(pattern) {
        None => return pattern == text,
        // `prefix*`, the usual image pattern: a prefix test.
        Some(i) if i + 1 == pattern.len() && pattern.ends_with('*') => {
            return text.starts_with(&pattern[..i]);
        }
        Some(_) => {}
    }
    if pattern.is_ascii() && text.is_ascii() {
        // One byte is one character: match bytes, without allocating.
        return match_units(pattern.as_bytes(), text.as_bytes(), b'*', b'?');
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    match_units(&p, &t, '*', '?')
}

/// Iterative matcher with single-star backtracking: linear in practice, never exponential.
fn match_units<T: Copy + PartialEq>(p: &[T], t: &[T], star_unit: T, any_unit: T) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_unit || (p[pi] != star_unit && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_unit {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star_unit)
}

/// Whether `text` matches any of `patterns`.
pub fn matches_any<S: AsRef<str>>(patterns: &[S], text: &str) -> bool {
    patterns.iter().any(|p| matches(p.as_ref(), text))
}

/// Whether a pattern contains wildcard characters.
pub fn has_wildcards(pattern: &str) -> bool {
    first_wildcard(pattern).is_some()
}

/// The byte index of the first `*` or `?` in `pattern`.
fn first_wildcard(pattern: &str) -> Option<usize> {
    pattern.bytes().position(|b| b == b'*' || b == b'?')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Kyverno's `ext/wildcard/match_test.go`, all 52 cases in order.
    #[test]
    fn kyverno_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "s3:GetObject", true),
            ("", "s3:GetObject", false),
            ("", "", true),
            ("s3:*", "s3:ListMultipartUploadParts", true),
            ("s3:ListBucketMultipartUploads", "s3:ListBucket", false),
            ("s3:ListBucket", "s3:ListBucket", true),
            (
                "s3:ListBucketMultipartUploads",
                "s3:ListBucketMultipartUploads",
                true,
            ),
            ("my-bucket/oo*", "my-bucket/oo", true),
            ("my-bucket/In*", "my-bucket/India/Karnataka/", true),
            ("my-bucket/In*", "my-bucket/Karnataka/India/", false),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Ban/Ban/Ban/Ban/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Area1/Area2/Area3/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/State1/State2/Karnataka/Area1/Area2/Area3/Ban",
                true,
            ),
            (
                "my-bucket/In*/Ka*/Ban",
                "my-bucket/India/Karnataka/Bangalore",
                false,
            ),
            (
                "my-bucket/In*/Ka*/Ban*",
                "my-bucket/India/Karnataka/Bangalore",
                true,
            ),
            ("my-bucket/*", "my-bucket/India", true),
            ("my-bucket/oo*", "my-bucket/odo", false),
            ("my-bucket?/abc*", "mybucket/abc", false),
            ("my-bucket?/abc*", "my-bucket1/abc", true),
            ("my-?-bucket/abc*", "my--bucket/abc", false),
            ("my-?-bucket/abc*", "my-1-bucket/abc", true),
            ("my-?-bucket/abc*", "my-k-bucket/abc", true),
            ("my??bucket/abc*", "mybucket/abc", false),
            ("my??bucket/abc*", "my4abucket/abc", true),
            ("my-bucket?abc*", "my-bucket/abc", true),
            ("my-bucket/abc?efg", "my-bucket/abcdefg", true),
            ("my-bucket/abc?efg", "my-bucket/abc/efg", true),
            ("my-bucket/abc????", "my-bucket/abc", false),
            ("my-bucket/abc????", "my-bucket/abcde", false),
            ("my-bucket/abc????", "my-bucket/abcdefg", true),
            ("my-bucket/abc?", "my-bucket/abc", false),
            ("my-bucket/abc?", "my-bucket/abcd", true),
            ("my-bucket/abc?", "my-bucket/abcde", false),
            ("my-bucket/mnop*?", "my-bucket/mnop", false),
            ("my-bucket/mnop*?", "my-bucket/mnopqrst/mnopqr", true),
            ("my-bucket/mnop*?", "my-bucket/mnopqrst/mnopqrs", true),
            ("my-bucket/mnop*?", "my-bucket/mnop", false),
            ("my-bucket/mnop*?", "my-bucket/mnopq", true),
            ("my-bucket/mnop*?", "my-bucket/mnopqr", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopqand", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopand", false),
            ("my-bucket/mnop*?and", "my-bucket/mnopqand", true),
            ("my-bucket/mnop*?", "my-bucket/mn", false),
            ("my-bucket/mnop*?", "my-bucket/mnopqrst/mnopqrs", true),
            ("my-bucket/mnop*??", "my-bucket/mnopqrst", true),
            ("my-bucket/mnop*qrst", "my-bucket/mnopabcdegqrst", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopqand", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopand", false),
            ("my-bucket/mnop*?and?", "my-bucket/mnopqanda", true),
            ("my-bucket/mnop*?and", "my-bucket/mnopqanda", false),
            ("my-?-bucket/abc*", "my-bucket/mnopqanda", false),
        ];
        for (i, (pattern, text, want)) in cases.iter().enumerate() {
            assert_eq!(
                matches(pattern, text),
                *want,
                "case {}: {pattern:?} vs {text:?}",
                i + 1
            );
        }
    }

    #[test]
    fn image_patterns_as_kyverno_documents_them() {
        assert!(matches(
            "registry.company.com/*",
            "registry.company.com/a/b/c:tag"
        ));
        assert!(!matches("registry.company.com/*", "docker.io/nginx:latest"));
        assert!(!matches("nginx:*", "docker.io/nginx:latest"));
        assert!(!matches(
            "ghcr.io/kyverno/zulu:*",
            "ghcr.io/kyverno/zulu@sha256:476b"
        ));
        assert!(matches(
            "ghcr.io/kyverno/zulu*",
            "ghcr.io/kyverno/zulu@sha256:476b"
        ));
        assert!(!matches("Ghcr.io/*", "ghcr.io/x:1"), "case-sensitive");
        assert!(matches("é?", "éß"), "? is one character, not one byte");
    }

    /// A reference implementation by plain recursion, to compare against.
    fn naive(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some('*'), _) => naive(&p[1..], t) || (!t.is_empty() && naive(p, &t[1..])),
            (Some('?'), Some(_)) => naive(&p[1..], &t[1..]),
            (Some(c), Some(d)) => c == d && naive(&p[1..], &t[1..]),
            (Some(_), None) => false,
        }
    }

    proptest! {
        #[test]
        fn agrees_with_naive_recursion(p in "[ab*?/]{0,8}", t in "[ab/]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            let want = if p.is_empty() { t.is_empty() } else { naive(&pc, &tc) };
            prop_assert_eq!(matches(&p, &t), want);
        }

        #[test]
        fn agrees_with_naive_recursion_beyond_ascii(p in "[aé*?/]{0,8}", t in "[aé/]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            let want = if p.is_empty() { t.is_empty() } else { naive(&pc, &tc) };
            prop_assert_eq!(matches(&p, &t), want);
        }

        #[test]
        fn a_string_matches_itself_and_star(t in "[a-z0-9./:@-]{0,40}") {
            prop_assert!(matches(&t, &t));
            prop_assert!(matches("*", &t));
            let with_star = format!("{t}*");
            prop_assert!(matches(&with_star, &t));
        }
    }
}
