//! Parsing and normalising image references (distribution's grammar, Kyverno's normalisation).

use std::fmt;
use std::str::FromStr;

use crate::image::digest::Digest;

/// The registry Kyverno assumes when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The name cosign and go-containerregistry give Docker Hub in signature payloads.
pub const DOCKER_HUB_INDEX: &str = "index.docker.io";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed image reference: `[registry/]path[:tag][@digest]`.
///
/// Equality compares the normalised parts, so `nginx` equals `docker.io/nginx:latest`.
#[derive(Debug, Clone)]
pub struct ImageRef {
    registry: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
    /// Kyverno's normalised form, made once: every policy pattern and cache key uses it.
    normalized: String,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference '{input}': {kind}")]
pub struct ParseError {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub kind: ParseErrorKind,
}

/// What is wrong with an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// Empty or only whitespace.
    #[error("it is empty")]
    Empty,
    /// Longer than distribution allows.
    #[error("the name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    /// A repository path component breaks the grammar.
    #[error(
        "repository component '{0}' must be lower-case letters and digits, separated by '.', '_', '__' or '-'"
    )]
    BadPathComponent(String),
    /// The registry host (and port) is malformed.
    #[error("registry '{0}' is not a valid host[:port]")]
    BadRegistry(String),
    /// The tag breaks the grammar.
    #[error("tag '{0}' must be 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    BadTag(String),
    /// The digest is malformed.
    #[error("{0}")]
    BadDigest(#[from] crate::image::digest::ParseError),
}

impl ImageRef {
    /// Parses a reference as Kubernetes and Kyverno read it.
    pub fn parse(input: &str) -> Result<ImageRef, ParseError> {
        let err = |kind| ParseError {
            input: input.to_string(),
            kind,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err(ParseErrorKind::Empty));
        }
        let (rest, digest) = match s.rsplit_once('@') {
            Some((rest, d)) => (rest, Some(d.parse::<Digest>().map_err(|e| err(e.into()))?)),
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(err(ParseErrorKind::BadTag(tag.to_string())));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(err(ParseErrorKind::NameTooLong));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if is_registry_like(first) => (first.to_string(), path),
            _ => (DEFAULT_REGISTRY.to_string(), name),
        };
        // The limit holds for the name as normalised (distribution checks it after adding
        // `docker.io/`), so every reference that parses has a normal form that parses too
        // (found by fuzzing: a 250-character Docker Hub name).
        if registry.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(err(ParseErrorKind::NameTooLong));
        }
        if !valid_registry(&registry) {
            return Err(err(ParseErrorKind::BadRegistry(registry)));
        }
        for component in path.split('/') {
            if !valid_path_component(component) {
                return Err(err(ParseErrorKind::BadPathComponent(component.to_string())));
            }
        }
        Ok(ImageRef::new(
            registry,
            path.to_string(),
            tag.map(str::to_string),
            digest,
        ))
    }

    fn new(
        registry: String,
        path: String,
        tag: Option<String>,
        digest: Option<Digest>,
    ) -> ImageRef {
        let normalized = match &digest {
            Some(d) => format!("{registry}/{path}@{d}"),
            None => format!("{registry}/{path}:{}", tag.as_deref().unwrap_or("latest")),
        };
        ImageRef {
            registry,
            path,
            tag,
            digest,
            normalized,
        }
    }

    /// The registry as Kyverno names it (`docker.io` when the reference names none).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry as written (`nginx`, `test/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The last path component (`nginx` for `docker.io/test/nginx`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The tag as written, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest as written, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository alone (no tag, no digest), e.g. where an image's signatures are kept.
    pub fn repository_ref(&self) -> ImageRef {
        ImageRef::new(self.registry.clone(), self.path.clone(), None, None)
    }

    /// `registry/path`, e.g. `docker.io/nginx`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// Kyverno's normalised string, the one every policy pattern is matched against:
    /// `registry/path@digest` when there is a digest (the tag is dropped), else
    /// `registry/path:tag` with `latest` as the default tag.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// `registry/path:tag`, as Kyverno's `referenceWithTag` (empty tag for digest-only references).
    pub fn reference_with_tag(&self) -> String {
        let tag = match (&self.tag, &self.digest) {
            (Some(t), _) => t.as_str(),
            (None, Some(_)) => "",
            (None, None) => "latest",
        };
        format!("{}/{}:{}", self.registry, self.path, tag)
    }

    /// The tag to resolve when there is no digest (`latest` by default).
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// This reference pinned to `digest`, keeping its tag: `registry/path:tag@digest`.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef::new(
            self.registry.clone(),
            self.path.clone(),
            self.tag.clone(),
            Some(digest),
        )
    }

    /// [`pinned_string`](ImageRef::pinned_string) of this reference pinned to `digest`, without
    /// building the pinned reference.
    pub fn pinned_string_at(&self, digest: &Digest) -> String {
        match self.tag() {
            Some(tag) => format!("{}/{}:{tag}@{digest}", self.registry, self.path),
            None => format!("{}/{}@{digest}", self.registry, self.path),
        }
    }

    /// [`normalized`](ImageRef::normalized) of this reference pinned to `digest`
    /// (`registry/path@digest`), without building the pinned reference.
    pub fn normalized_at(&self, digest: &Digest) -> String {
        format!("{}/{}@{digest}", self.registry, self.path)
    }

    /// `registry/path:tag@digest` (or `registry/path@digest` without a tag): what a mutated pod
    /// spec carries after tag-to-digest pinning.
    pub fn pinned_string(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.path);
        if let Some(tag) = self.tag() {
            s.push(':');
            s.push_str(tag);
        } else if self.digest.is_none() {
            s.push_str(":latest");
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }

    /// Whether the image lives on Docker Hub.
    pub fn is_docker_hub(&self) -> bool {
        matches!(
            self.registry.as_str(),
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        ) || super::alias::canonical_registry(&self.registry) == DEFAULT_REGISTRY
    }

    /// The host (and port) to send registry API requests to.
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository name on the wire: Docker Hub's official images live under `library/`.
    pub fn api_repository(&self) -> String {
        if self.is_docker_hub() && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        }
    }

    /// The repository as cosign writes it into `docker-reference`
    /// (`index.docker.io/library/nginx` for Docker Hub).
    pub fn cosign_identity(&self) -> String {
        if self.is_docker_hub() {
            format!("{DOCKER_HUB_INDEX}/{}", self.api_repository())
        } else {
            self.repository()
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

impl PartialEq for ImageRef {
    fn eq(&self, other: &ImageRef) -> bool {
        self.registry == other.registry
            && self.path == other.path
            && self.tag_or_latest() == other.tag_or_latest()
            && self.digest == other.digest
    }
}

impl Eq for ImageRef {}

impl std::hash::Hash for ImageRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // The parts `eq` compares, so equal references hash alike.
        self.registry.hash(state);
        self.path.hash(state);
        self.tag_or_latest().hash(state);
        self.digest.hash(state);
    }
}

impl FromStr for ImageRef {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<ImageRef, ParseError> {
        ImageRef::parse(s)
    }
}

/// Kyverno's `addDefaultRegistry` test: the first component names a registry when it has a `.`
/// or a `:`, is `localhost`, or has upper-case letters (which a repository path cannot have).
fn is_registry_like(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_registry(registry: &str) -> bool {
    let (host_ok, port) = match registry.strip_prefix('[') {
        Some(rest) => {
            let Some((ip, tail)) = rest.split_once(']') else {
                return false;
            };
            let ip_ok = !ip.is_empty() && ip.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
            match tail {
                "" => (ip_ok, None),
                _ => match tail.strip_prefix(':') {
                    Some(port) => (ip_ok, Some(port)),
                    None => return false,
                },
            }
        }
        None => {
            let (host, port) = match registry.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (registry, None),
            };
            // A fully qualified name may end with a dot (`registry.company.com.`): the same
            // host to a resolver, so it must parse (and match) as that host.
            let host = host.strip_suffix('.').unwrap_or(host);
            (
                !host.is_empty() && host.split('.').all(valid_domain_component),
                port,
            )
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b.iter().all(|x| x.is_ascii_alphanumeric() || *x == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < b.len() {
        if alnum(b[i]) {
            expect_alnum = false;
            i += 1;
            continue;
        }
        if expect_alnum {
            return false;
        }
        // a separator: '.', '_', '__' or one or more '-'
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        expect_alnum = true;
    }
    !expect_alnum
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|x| word(*x) || *x == b'.' || *x == b'-')
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_length_limit_holds_for_the_normalised_name() {
        let long = "a".repeat(250);
        let e = ImageRef::parse(&long).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::NameTooLong);
        let fits = "a".repeat(255 - "docker.io/".len());
        let image = ImageRef::parse(&fits).unwrap();
        assert_eq!(ImageRef::parse(image.normalized()).unwrap(), image);
        assert!(ImageRef::parse(&format!("registry.example/{}", "b".repeat(238))).is_ok());
        assert!(ImageRef::parse(&format!("registry.example/{}", "b".repeat(239))).is_err());
    }

    #[test]
    fn pinned_and_normalized_at_a_digest_are_those_of_the_pinned_reference() {
        let digest: crate::Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        for text in [
            "nginx",
            "nginx:1.25",
            "registry.company.com:5000/team/app:v1",
            "ghcr.io/o/a",
        ] {
            let image = ImageRef::parse(text).unwrap();
            let pinned = image.with_digest(digest.clone());
            assert_eq!(
                image.pinned_string_at(&digest),
                pinned.pinned_string(),
                "{text}"
            );
            assert_eq!(image.normalized_at(&digest), pinned.normalized(), "{text}");
        }
    }

    use super::*;

    const D: &str = "sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f";

    /// input, name, path, registry, tag, digest, String(), referenceWithTag
    type Vector = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        String,
    );

    /// Kyverno's `pkg/utils/image/infos_test.go` vectors (default registry docker.io):
    /// input, name, path, registry, tag, digest, String(), referenceWithTag.
    #[test]
    fn kyverno_normalisation_vectors() {
        let cases: &[Vector] = &[
            (
                "nginx",
                "nginx",
                "nginx",
                "docker.io",
                None,
                None,
                "docker.io/nginx:latest",
                "docker.io/nginx:latest".into(),
            ),
            (
                "nginx:v10.3",
                "nginx",
                "nginx",
                "docker.io",
                Some("v10.3"),
                None,
                "docker.io/nginx:v10.3",
                "docker.io/nginx:v10.3".into(),
            ),
            (
                "docker.io/test/nginx:v10.3",
                "nginx",
                "test/nginx",
                "docker.io",
                Some("v10.3"),
                None,
                "docker.io/test/nginx:v10.3",
                "docker.io/test/nginx:v10.3".into(),
            ),
            (
                "test/nginx",
                "nginx",
                "test/nginx",
                "docker.io",
                None,
                None,
                "docker.io/test/nginx:latest",
                "docker.io/test/nginx:latest".into(),
            ),
            (
                "localhost:4443/test/nginx",
                "nginx",
                "test/nginx",
                "localhost:4443",
                None,
                None,
                "localhost:4443/test/nginx:latest",
                "localhost:4443/test/nginx:latest".into(),
            ),
            (
                "docker.io/test/centos@sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f",
                "centos",
                "test/centos",
                "docker.io",
                None,
                Some(D),
                "docker.io/test/centos@sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f",
                "docker.io/test/centos:".into(),
            ),
        ];
        for (input, name, path, registry, tag, digest, string, with_tag) in cases {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.name(), *name, "{input}");
            assert_eq!(r.path(), *path, "{input}");
            assert_eq!(r.registry(), *registry, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(
                r.digest().map(ToString::to_string).as_deref(),
                *digest,
                "{input}"
            );
            assert_eq!(r.normalized(), *string, "{input}");
            assert_eq!(&r.reference_with_tag(), with_tag, "{input}");
        }
    }

    #[test]
    fn default_registry_rules() {
        assert_eq!(
            ImageRef::parse("localhost/netd:v0.4.4-gke.0")
                .unwrap()
                .normalized(),
            "localhost/netd:v0.4.4-gke.0"
        );
        assert_eq!(
            ImageRef::parse("myregistry.org/test/nginx:v10.3")
                .unwrap()
                .registry(),
            "myregistry.org"
        );
        assert_eq!(
            ImageRef::parse(&format!("test/centos@{D}"))
                .unwrap()
                .normalized(),
            format!("docker.io/test/centos@{D}")
        );
        // a digest drops the tag
        assert_eq!(
            ImageRef::parse(&format!("nginx:latest@{D}"))
                .unwrap()
                .normalized(),
            format!("docker.io/nginx@{D}")
        );
    }

    #[test]
    fn wire_names_for_docker_hub() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.api_repository(), "library/nginx");
        assert_eq!(r.cosign_identity(), "index.docker.io/library/nginx");
        let r = ImageRef::parse("bitnami/redis").unwrap();
        assert_eq!(r.api_repository(), "bitnami/redis");
        let r = ImageRef::parse("127.0.0.1:5000/app:v1").unwrap();
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.api_repository(), "app");
        assert_eq!(r.cosign_identity(), "127.0.0.1:5000/app");
    }

    #[test]
    fn pinned_string_keeps_the_tag() {
        let r = ImageRef::parse("registry.company.com/app:v1.0.0").unwrap();
        let d: Digest = D.parse().unwrap();
        assert_eq!(
            r.with_digest(d).pinned_string(),
            format!("registry.company.com/app:v1.0.0@{D}")
        );
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.pinned_string(), "docker.io/nginx:latest");
    }

    #[test]
    fn rejects_what_distribution_rejects() {
        for bad in [
            "++",
            "",
            "  ",
            "Nginx",
            "nginx:",
            "nginx:-x",
            "a//b",
            "a/B",
            "nginx@sha256:abc",
            "-a/b",
            "reg.io:port/x",
            "a/b_",
            "a..b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in [
            "a",
            "a__b",
            "a-----b",
            "a.b/c_d",
            "[::1]:5000/x",
            "UPPER.io/x",
            "ghcr.io/a/b/c:tag_1.2-3",
            "a:1",
        ] {
            assert!(ImageRef::parse(good).is_ok(), "{good:?} should parse");
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever the input, parsing never panics, and what parses normalises to a string that
        /// parses back to the same reference.
        #[test]
        fn parse_never_panics_and_normalisation_is_stable(input in "\\PC{0,80}") {
            if let Ok(r) = ImageRef::parse(&input) {
                let again = ImageRef::parse(r.normalized()).unwrap();
                prop_assert_eq!(&again, &r);
                prop_assert_eq!(again.normalized(), r.normalized());
            }
        }

        /// Generated valid references parse into their parts.
        #[test]
        fn valid_references_parse_into_their_parts(
            registry in proptest::option::of("[a-z]([a-z0-9-]{0,6}[a-z0-9])?\\.(io|com|dev)(:[0-9]{2,5})?"),
            path in "[a-z0-9]{1,6}(/[a-z0-9]{1,6}(-[a-z0-9]{1,4})?){0,3}",
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of("[0-9a-f]{64}"),
        ) {
            let mut s = String::new();
            if let Some(r) = &registry { s.push_str(r); s.push('/'); }
            s.push_str(&path);
            if let Some(t) = &tag { s.push(':'); s.push_str(t); }
            if let Some(d) = &digest { s.push_str("@sha256:"); s.push_str(d); }
            let r = ImageRef::parse(&s).unwrap();
            prop_assert_eq!(r.registry(), registry.as_deref().unwrap_or("docker.io"));
            prop_assert_eq!(r.path(), path.as_str());
            prop_assert_eq!(r.tag(), tag.as_deref());
            prop_assert_eq!(r.digest().map(|d| d.hex().to_string()), digest.clone());
            let expected_suffix = match (&digest, &tag) {
                (Some(d), _) => format!("@sha256:{d}"),
                (None, Some(t)) => format!(":{t}"),
                (None, None) => ":latest".to_string(),
            };
            prop_assert!(r.normalized().ends_with(&expected_suffix));
        }
    }

    #[test]
    fn error_names_the_input_and_the_part() {
        let e = ImageRef::parse("registry.io/App:v1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid image reference 'registry.io/App:v1': repository component 'App' must be lower-case letters and digits, separated by '.', '_', '__' or '-'"
        );
    }
}
