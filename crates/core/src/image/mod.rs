//! Container image references, their digests and Kyverno's wildcard patterns.
//!
//! [`ImageRef`] parses what a Pod spec or a command line says (`nginx`, `ghcr.io/a/b:v1@sha256:…`)
//! and gives both views sealgate needs: the normalised string Kyverno matches policies against
//! (`docker.io/nginx:latest`, see [`ImageRef::normalized`]) and the registry host and repository
//! to put on the wire (`registry-1.docker.io`, `library/nginx`). [`wildcard::matches`] is Kyverno's
//! `*`/`?` matcher; [`alias`] says when two references name the same repository for a container
//! runtime, so that no spelling of an image escapes a rule.

pub mod alias;
pub mod digest;
mod reference;
pub mod wildcard;

pub use reference::{
    DEFAULT_REGISTRY, DOCKER_HUB_API_HOST, DOCKER_HUB_INDEX, ImageRef, ParseError, ParseErrorKind,
};
