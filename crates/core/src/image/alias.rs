//! When two references name the same repository for a container runtime, and every spelling of
//! one image.
//!
//! Kyverno matches `imageReferences` against the reference as written (normalised only by adding
//! `docker.io/` and `:latest`), so `REGISTRY.COMPANY.COM/app:v1`, `registry.company.com:443/app:v1`
//! and `registry.company.com./app:v1` escape `registry.company.com/*`, although a runtime pulls
//! each of them from the same registry. Here the same repository is:
//!
//! - the registry host compared case-insensitively and without a trailing dot;
//! - `:443` equal to no port (sealgate speaks HTTPS to registries; a plain-HTTP registry on port
//!   443 is not a thing);
//! - `docker.io` = `index.docker.io` = `registry-1.docker.io`;
//! - on Docker Hub, `nginx` = `library/nginx` (its implicit `library/`).
//!
//! [`spellings`] lists an image's equivalent spellings, Kyverno's own first, so a rule covers
//! the image when any of them matches a pattern and every Kyverno decision stays the same where
//! Kyverno checked.

use super::reference::ImageRef;

/// Docker Hub's registry names, the canonical one first.
const DOCKER_HUB_NAMES: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// The registry host as a runtime reaches it: lower-case, no trailing dot, no `:443`, Docker
/// Hub's aliases as `docker.io`.
pub fn canonical_registry(registry: &str) -> String {
    let mut host = registry.to_ascii_lowercase();
    if let Some(stripped) = host.strip_suffix(":443") {
        host = stripped.to_string();
    }
    // `host.:port` and `host.`
    if let Some((name, port)) = host.rsplit_once(':')
        && !name.ends_with(']')
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        if let Some(name) = name.strip_suffix('.') {
            host = format!("{name}:{port}");
        }
    } else if let Some(name) = host.strip_suffix('.') {
        host = name.to_string();
    }
    if DOCKER_HUB_NAMES.contains(&host.as_str()) {
        return DOCKER_HUB_NAMES[0].to_string();
    }
    host
}

/// Whether `a` and `b` name the same repository (tags and digests aside).
pub fn same_repository(a: &ImageRef, b: &ImageRef) -> bool {
    canonical_repository(a) == canonical_repository(b)
}

/// `registry/path` in canonical form (`docker.io/library/nginx`).
pub fn canonical_repository(image: &ImageRef) -> String {
    let registry = canonical_registry(image.registry());
    let path = image.path();
    if registry == DOCKER_HUB_NAMES[0] && !path.contains('/') {
        format!("{registry}/library/{path}")
    } else {
        format!("{registry}/{path}")
    }
}

/// Every spelling of `image` in Kyverno's normalised format (`registry/path:tag` or
/// `registry/path@digest`), Kyverno's own ([`ImageRef::normalized`]) first, each once.
pub fn spellings(image: &ImageRef) -> Vec<String> {
    let normalized = image.normalized();
    // What follows `registry/path`: `:tag` or `@digest`.
    let suffix = normalized
        .get(image.registry().len() + 1 + image.path().len()..)
        .unwrap_or_default();
    let registry = canonical_registry(image.registry());
    let hub = registry == DOCKER_HUB_NAMES[0];
    let hosts: Vec<String> = if hub {
        DOCKER_HUB_NAMES.iter().map(|h| h.to_string()).collect()
    } else if has_port(&registry) {
        vec![registry]
    } else {
        vec![registry.clone(), format!("{registry}:443")]
    };
    let path = image.path();
    let mut paths = vec![path.to_string()];
    if hub {
        match path.strip_prefix("library/") {
            Some(name) if !name.contains('/') => paths.push(name.to_string()),
            _ if !path.contains('/') => paths.push(format!("library/{path}")),
            _ => {}
        }
    }
    let mut out = vec![normalized.to_string()];
    for host in &hosts {
        for path in &paths {
            let spelling = format!("{host}/{path}{suffix}");
            // A host that is a registry only by its upper case or its trailing dot (`REGISCOM`,
            // `myhost.`) reads as a Docker Hub repository once lower-cased or stripped
            // (`regiscom/app` is `docker.io/regiscom/app`): such a spelling names another
            // image and is left out (found by fuzzing).
            let same = ImageRef::parse(&spelling).is_ok_and(|s| same_repository(&s, image));
            if same && !out.contains(&spelling) {
                out.push(spelling);
            }
        }
    }
    out
}

fn has_port(host: &str) -> bool {
    match host.rsplit_once(':') {
        Some((name, port)) => !name.ends_with('[') && port.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn image(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn a_host_that_is_a_registry_only_by_case_or_dot_keeps_spellings_of_its_own() {
        for given in [
            "REGISCOM/critical/app:v1",
            "myhost./team/app:v1",
            "MyHost/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let original = image(given);
            let all = spellings(&original);
            assert!(all.len() >= 2, "{given}: {all:?}");
            for spelling in &all {
                let other = image(spelling);
                assert!(
                    same_repository(&other, &original),
                    "{given}: {spelling} names {}",
                    other.normalized()
                );
                assert!(
                    !other.is_docker_hub(),
                    "{given}: {spelling} reads as Docker Hub"
                );
            }
        }
    }

    #[test]
    fn hosts_are_compared_as_a_runtime_reaches_them() {
        for (given, canonical) in [
            ("REGISTRY.COMPANY.COM", "registry.company.com"),
            ("Registry.Company.Com", "registry.company.com"),
            ("registry.company.com:443", "registry.company.com"),
            ("registry.company.com.", "registry.company.com"),
            ("registry.company.com.:5000", "registry.company.com:5000"),
            ("registry.company.com:5000", "registry.company.com:5000"),
            ("index.docker.io", "docker.io"),
            ("registry-1.docker.io", "docker.io"),
            ("Docker.IO", "docker.io"),
            ("[::1]:5000", "[::1]:5000"),
        ] {
            assert_eq!(canonical_registry(given), canonical, "{given}");
        }
    }

    #[test]
    fn the_same_repository_under_every_spelling() {
        let same = [
            "registry.company.com/critical/app:v1",
            "REGISTRY.COMPANY.COM/critical/app:v2",
            "registry.company.com:443/critical/app",
            "registry.company.com./critical/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ];
        for a in same {
            for b in same {
                assert!(same_repository(&image(a), &image(b)), "{a} ~ {b}");
            }
        }
        let hub = [
            "nginx:1",
            "docker.io/nginx",
            "docker.io/library/nginx",
            "index.docker.io/library/nginx:1",
            "registry-1.docker.io/nginx:1",
        ];
        for a in hub {
            for b in hub {
                assert!(same_repository(&image(a), &image(b)), "{a} ~ {b}");
            }
        }
        assert!(!same_repository(
            &image("registry.company.com:5000/app"),
            &image("registry.company.com/app")
        ));
        assert!(!same_repository(
            &image("docker.io/team/nginx"),
            &image("nginx")
        ));
        assert!(!same_repository(&image("ghcr.io/nginx"), &image("nginx")));
    }

    #[test]
    fn spellings_start_with_kyvernos_and_cover_every_alias() {
        assert_eq!(
            spellings(&image("nginx:1")),
            [
                "docker.io/nginx:1",
                "docker.io/library/nginx:1",
                "index.docker.io/nginx:1",
                "index.docker.io/library/nginx:1",
                "registry-1.docker.io/nginx:1",
                "registry-1.docker.io/library/nginx:1",
            ]
        );
        assert_eq!(
            spellings(&image("REGISTRY.COMPANY.COM/critical/app:v1")),
            [
                "REGISTRY.COMPANY.COM/critical/app:v1",
                "registry.company.com/critical/app:v1",
                "registry.company.com:443/critical/app:v1",
            ]
        );
        assert_eq!(
            spellings(&image("registry.company.com:5000/app")),
            ["registry.company.com:5000/app:latest"]
        );
        assert_eq!(spellings(&image("ghcr.io/a/b:v1"))[0], "ghcr.io/a/b:v1");
        assert_eq!(spellings(&image("ghcr.io/a/b:v1")).len(), 2);
    }
}
