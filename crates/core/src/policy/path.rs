//! Paths into a policy document: `spec.rules[0].verifyImages[0].attestors[1].entries[0]`.
//!
//! A [`JsonPath`] names one node of the JSON value a YAML document became. The loader uses it
//! to find a node's line and column in the [`SourceMap`](super::SourceMap), and every error and
//! warning carries one so that a user can find the field even without a line number.

use std::fmt;

/// One step of a [`JsonPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A mapping member, by key.
    Field(String),
    /// A sequence item, by 0-based index.
    Index(usize),
}

/// The path from a document's root to one of its nodes. The root is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

impl JsonPath {
    /// The document root.
    pub fn root() -> JsonPath {
        JsonPath::default()
    }

    /// Parses the display form (`spec.rules[0].name`, `metadata.annotations["a.b/c"]`); for tests
    /// and for callers naming fields by hand. Returns `None` for malformed text.
    pub fn parse(text: &str) -> Option<JsonPath> {
        let mut path = JsonPath::root();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("[\"") {
                let end = after.find("\"]")?;
                path.push_field(&after[..end]);
                rest = &after[end + 2..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']')?;
                path.push_index(after[..end].parse().ok()?);
                rest = &after[end + 1..];
            } else {
                let after = rest.strip_prefix('.').unwrap_or(rest);
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return None;
                }
                path.push_field(&after[..end]);
                rest = &after[end..];
            }
        }
        Some(path)
    }

    /// This path extended by the member `name`.
    #[must_use]
    pub fn field(&self, name: &str) -> JsonPath {
        let mut path = self.clone();
        path.push_field(name);
        path
    }

    /// This path extended by the item `index`.
    #[must_use]
    pub fn index(&self, index: usize) -> JsonPath {
        let mut path = self.clone();
        path.push_index(index);
        path
    }

    /// Appends a member step in place.
    pub fn push_field(&mut self, name: &str) {
        self.segments.push(Segment::Field(name.to_string()));
    }

    /// Appends an index step in place.
    pub fn push_index(&mut self, index: usize) {
        self.segments.push(Segment::Index(index));
    }

    /// Removes the last step; `None` at the root.
    pub fn pop(&mut self) -> Option<Segment> {
        self.segments.pop()
    }

    /// The parent path; `None` at the root.
    pub fn parent(&self) -> Option<JsonPath> {
        let mut parent = self.clone();
        parent.pop().map(|_| parent)
    }

    /// The steps, from the root.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// Whether `prefix` is this path or one of its ancestors.
    pub fn starts_with(&self, prefix: &JsonPath) -> bool {
        self.segments.starts_with(&prefix.segments)
    }

    /// The node this path names in `value`, if there is one.
    pub fn lookup<'v>(&self, value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        self.segments
            .iter()
            .try_fold(value, |node, segment| match segment {
                Segment::Field(name) => node.get(name.as_str()),
                Segment::Index(i) => node.get(*i),
            })
    }

    /// The last member name, if the path ends with one.
    pub fn last_field(&self) -> Option<&str> {
        match self.segments.last() {
            Some(Segment::Field(name)) => Some(name),
            _ => None,
        }
    }
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Field(name) if is_plain_name(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Field(name) => write!(f, "[\"{name}\"]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_kubectl_explain() {
        let path = JsonPath::root()
            .field("spec")
            .field("rules")
            .index(0)
            .field("verifyImages")
            .index(0)
            .field("attestors")
            .index(1)
            .field("entries")
            .index(0)
            .field("keys")
            .field("publicKeys");
        assert_eq!(
            path.to_string(),
            "spec.rules[0].verifyImages[0].attestors[1].entries[0].keys.publicKeys"
        );
        assert_eq!(JsonPath::parse(&path.to_string()), Some(path));
    }

    #[test]
    fn odd_keys_are_quoted() {
        let path = JsonPath::root()
            .field("metadata")
            .field("annotations")
            .field("pod-policies.kyverno.io/autogen-controllers");
        let text = path.to_string();
        assert_eq!(
            text,
            "metadata.annotations[\"pod-policies.kyverno.io/autogen-controllers\"]"
        );
        assert_eq!(JsonPath::parse(&text), Some(path));
        assert_eq!(JsonPath::root().to_string(), "");
    }

    #[test]
    fn parents_and_prefixes() {
        let path = JsonPath::parse("spec.rules[2].name").unwrap();
        assert_eq!(path.parent().unwrap().to_string(), "spec.rules[2]");
        assert!(path.starts_with(&JsonPath::parse("spec.rules").unwrap()));
        assert!(!path.starts_with(&JsonPath::parse("spec.rules[1]").unwrap()));
        assert_eq!(path.last_field(), Some("name"));
        assert!(JsonPath::root().parent().is_none());
        assert!(JsonPath::parse("a..b").is_none());
    }
}
