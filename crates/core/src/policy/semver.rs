//! Semantic versions and ranges as blang/semver v4 reads them: Kyverno's conditions compare
//! versions with it (`GreaterThan` & co., `semver.Parse`) and its `semver_compare` function
//! matches ranges (`semver.ParseRange`: `>=1.2.x`, `>1.0.0 <2.0.0 || 3.x`).
//!
//! A version is `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, strictly: no `v`, no leading zeros,
//! the three numbers all there. Build metadata is checked and otherwise ignored.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pre {
    Number(u64),
    Text(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Pre>,
}

fn digits_only(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit())
}

fn alphanumeric(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn number(s: &str, what: &str) -> Result<u64, String> {
    if !digits_only(s) {
        return Err(format!("Invalid character(s) found in {what} number {s:?}"));
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err(format!(
            "{what} number must not contain leading zeroes {s:?}"
        ));
    }
    s.parse().map_err(|e| format!("{what} number {s:?}: {e}"))
}

impl Version {
    /// `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, strictly.
    pub(crate) fn parse(s: &str) -> Result<Version, String> {
        if s.is_empty() {
            return Err("Version string empty".into());
        }
        let mut parts = s.splitn(3, '.');
        let (Some(major), Some(minor), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err("No Major.Minor.Patch elements found".into());
        };
        let major = number(major, "major")?;
        let minor = number(minor, "minor")?;
        let (rest, build) = match rest.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (rest, None),
        };
        let (patch, pre) = match rest.split_once('-') {
            Some((p, pre)) => (p, Some(pre)),
            None => (rest, None),
        };
        let patch = number(patch, "patch")?;
        let mut version = Version {
            major,
            minor,
            patch,
            pre: Vec::new(),
        };
        for part in pre.into_iter().flat_map(|p| p.split('.')) {
            if part.is_empty() {
                return Err("Prerelease is empty".into());
            }
            if digits_only(part) {
                if part.len() > 1 && part.starts_with('0') {
                    return Err(format!(
                        "Numeric PreRelease version must not contain leading zeroes {part:?}"
                    ));
                }
                version.pre.push(Pre::Number(
                    part.parse()
                        .map_err(|e| format!("prerelease {part:?}: {e}"))?,
                ));
            } else if alphanumeric(part) {
                version.pre.push(Pre::Text(part.to_string()));
            } else {
                return Err(format!("Invalid character(s) found in prerelease {part:?}"));
            }
        }
        for part in build.into_iter().flat_map(|b| b.split('.')) {
            if part.is_empty() {
                return Err("Build meta data is empty".into());
            }
            if !alphanumeric(part) {
                return Err(format!(
                    "Invalid character(s) found in build meta data {part:?}"
                ));
            }
        }
        Ok(version)
    }

    /// SemVer precedence: the numbers, then the pre-release (build metadata is ignored).
    pub(crate) fn compare(&self, other: &Version) -> Ordering {
        let core =
            (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        if core != Ordering::Equal {
            return core;
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Greater,
            (false, true) => return Ordering::Less,
            (false, false) => {}
        }
        for (a, b) in self.pre.iter().zip(&other.pre) {
            let o = match (a, b) {
                (Pre::Number(x), Pre::Number(y)) => x.cmp(y),
                (Pre::Number(_), Pre::Text(_)) => Ordering::Less,
                (Pre::Text(_), Pre::Number(_)) => Ordering::Greater,
                (Pre::Text(x), Pre::Text(y)) => x.cmp(y),
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        self.pre.len().cmp(&other.pre.len())
    }
}

#[derive(Debug, Clone, Copy)]
enum Comparator {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// `OR` of `AND`s of comparisons.
#[derive(Debug)]
pub(crate) struct Range(Vec<Vec<(Comparator, Version)>>);

/// Splits at spaces, except after `>`, `<` and `=`; drops one-character pieces (as blang
/// does) and the spaces inside pieces.
fn split_and_trim(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut last = 0usize;
    let mut last_char = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if c == b' ' && !matches!(last_char, b'>' | b'<' | b'=') {
            if last + 1 < i {
                out.push(&s[last..i]);
            }
            last = i + 1;
        } else if c != b' ' {
            last_char = c;
        }
    }
    if last + 1 < b.len() {
        out.push(&s[last..]);
    }
    out.into_iter().map(|p| p.replace(' ', "")).collect()
}

fn split_comparator(s: &str) -> Result<(&str, &str), String> {
    let i = s
        .find(|c: char| c.is_ascii_digit())
        .ok_or_else(|| format!("Could not get version from string: {s:?}"))?;
    Ok((s[..i].trim(), &s[i..]))
}

fn increment(version: &str, index: usize) -> Option<String> {
    let mut parts: Vec<String> = version.split('.').map(str::to_string).collect();
    let n: i64 = parts.get(index)?.parse().ok()?;
    *parts.get_mut(index)? = (n + 1).to_string();
    Some(parts.join("."))
}

/// blang's wildcard expansion (`>=1.2.x` → `>=1.2.0`, `!1.2.x` → `<1.2.0 >=1.3.0`, …).
fn expand(part: &str, out: &mut Vec<String>) -> Result<(), String> {
    if !part.contains('x') {
        out.push(part.to_string());
        return Ok(());
    }
    let (op, version) = split_comparator(part)?;
    let pieces: Vec<&str> = version.split('.').collect();
    // `1.x` is a minor wildcard, `1.2.x` (and `1.x.x`) a patch one.
    let wildcard = match (pieces.last(), pieces.len()) {
        (Some(&"x"), 2) => Some(0),
        (Some(&"x"), 3) => Some(1),
        _ => None,
    };
    let mut flat = version.replacen(".x.x", ".x", 1).replacen(".x", ".0", 1);
    if flat.split('.').count() == 2 {
        flat.push_str(".0");
    }
    let (operator, bump) = match op {
        ">" => (">=", true),
        ">=" => (">=", false),
        "<" => ("<", false),
        "<=" => ("<", true),
        "" | "=" | "==" => {
            out.push(format!(">={flat}"));
            ("<", true)
        }
        "!=" | "!" => {
            out.push(format!("<{flat}"));
            (">=", true)
        }
        _ => ("", false),
    };
    let version = if bump {
        wildcard
            .and_then(|i| increment(&flat, i))
            .unwrap_or_default()
    } else {
        flat
    };
    out.push(format!("{operator}{version}"));
    Ok(())
}

impl Range {
    pub(crate) fn parse(s: &str) -> Result<Range, String> {
        let parts = split_and_trim(s);
        let mut groups: Vec<Vec<String>> = vec![Vec::new()];
        for (i, part) in parts.iter().enumerate() {
            if part == "||" {
                if i == 0 {
                    return Err("First element in range is '||'".into());
                }
                groups.push(Vec::new());
            } else if let Some(group) = groups.last_mut() {
                group.push(part.clone());
            }
        }
        if groups.last().is_some_and(Vec::is_empty) {
            return Err("Last element in range is '||'".into());
        }
        let mut out = Vec::new();
        for group in groups {
            let mut expanded = Vec::new();
            for part in &group {
                expand(part, &mut expanded)?;
            }
            let mut all = Vec::new();
            for part in expanded {
                let (op, version) = split_comparator(&part)?;
                let comparator = match op {
                    "" | "=" | "==" => Comparator::Eq,
                    "!" | "!=" => Comparator::Ne,
                    ">" => Comparator::Gt,
                    ">=" => Comparator::Ge,
                    "<" => Comparator::Lt,
                    "<=" => Comparator::Le,
                    other => {
                        return Err(format!(
                            "Could not parse Range {part:?}: Could not parse comparator {other:?}"
                        ));
                    }
                };
                let version = Version::parse(version).map_err(|e| {
                    format!(
                        "Could not parse Range {part:?}: Could not parse version {version:?}: {e}"
                    )
                })?;
                all.push((comparator, version));
            }
            out.push(all);
        }
        Ok(Range(out))
    }

    pub(crate) fn matches(&self, version: &Version) -> bool {
        self.0.iter().any(|all| {
            all.iter().all(|(c, v)| {
                let o = version.compare(v);
                match c {
                    Comparator::Eq => o == Ordering::Equal,
                    Comparator::Ne => o != Ordering::Equal,
                    Comparator::Gt => o == Ordering::Greater,
                    Comparator::Ge => o != Ordering::Less,
                    Comparator::Lt => o == Ordering::Less,
                    Comparator::Le => o != Ordering::Greater,
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_versions() {
        let v = |s: &str| Version::parse(s).ok();
        let cmp = |a: &str, b: &str| v(a).unwrap().compare(&v(b).unwrap());
        assert_eq!(cmp("1.2.3", "1.2.3"), Ordering::Equal);
        assert_eq!(cmp("1.2.3", "1.10.0"), Ordering::Less);
        assert_eq!(cmp("1.0.0-alpha", "1.0.0"), Ordering::Less);
        assert_eq!(cmp("1.0.0-alpha", "1.0.0-alpha.1"), Ordering::Less);
        assert_eq!(cmp("1.0.0-alpha.1", "1.0.0-alpha.beta"), Ordering::Less);
        assert_eq!(cmp("1.0.0-beta.2", "1.0.0-beta.11"), Ordering::Less);
        assert_eq!(cmp("1.0.0-rc.1", "1.0.0"), Ordering::Less);
        assert_eq!(cmp("1.0.0+build.1", "1.0.0+build.2"), Ordering::Equal);
        for bad in [
            "", "1.2", "v1.2.3", "01.2.3", "1.2.03", "1.2.3-", "1.2.3-01", "1.2.3+", "1.2.3.4",
            "1.2.x",
        ] {
            assert!(v(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn errors_have_blang_messages() {
        let error = |s: &str| Version::parse(s).err();
        assert_eq!(error(""), Some("Version string empty".into()));
        assert_eq!(
            error("1.2"),
            Some("No Major.Minor.Patch elements found".into())
        );
        assert_eq!(
            error("1.2.3-01"),
            Some(r#"Numeric PreRelease version must not contain leading zeroes "01""#.into())
        );
        assert_eq!(error("1.2.3+"), Some("Build meta data is empty".into()));
        let range = |s: &str| Range::parse(s).map(|r| r.matches(&Version::parse("1.2.3").unwrap()));
        assert_eq!(range(">=1.2.x <1.3.0"), Ok(true));
        assert_eq!(range("!1.2.x"), Ok(false));
        assert!(range("~>1.0.0").is_err());
    }
}
