//! The registry flags every command that talks to a registry shares, and the client they build.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use sealgate_core::ImageRef;
use sealgate_registry::{AuthFiles, Client, RegistryOptions};

/// The images a command names itself (sign, verify), and how to reach their registries.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImageTargets {
    /// Images, by tag or by digest (`registry/repository:tag` or `...@sha256:...`).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<String>,

    #[command(flatten)]
    registry: RegistryArgs,
}

impl ImageTargets {
    /// The images, parsed; the first that does not parse is the error.
    pub(crate) fn images(&self) -> anyhow::Result<Vec<ImageRef>> {
        self.images.iter().map(|s| parse_image(s)).collect()
    }

    /// A client whose explicit credentials go to these images' registries (see
    /// [`RegistryArgs::client_for`]).
    pub(crate) fn client_for(&self, images: &[ImageRef]) -> anyhow::Result<Client> {
        self.registry.client_for(images)
    }
}

/// Parses an image reference given on the command line.
pub(crate) fn parse_image(s: &str) -> anyhow::Result<ImageRef> {
    ImageRef::parse(s).with_context(|| "check the image argument".to_string())
}

/// How to reach registries: credentials, trust and plain-HTTP exceptions.
#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryArgs {
    /// User name for the registry (overrides docker config.json; needs --registry-password).
    #[arg(
        long,
        value_name = "USER",
        env = "SEALGATE_REGISTRY_USERNAME",
        help_heading = "Registry"
    )]
    registry_username: Option<String>,

    /// Password or token for --registry-username.
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "SEALGATE_REGISTRY_PASSWORD",
        hide_env_values = true,
        help_heading = "Registry"
    )]
    registry_password: Option<String>,

    /// Send --registry-username/--registry-password only to this registry host (repeatable;
    /// host:port for that port only). sign, verify and triangulate default to the image's
    /// registry; apply, test and serve, whose images come from resources, need it.
    #[arg(
        long,
        value_name = "HOST",
        env = "SEALGATE_REGISTRY_AUTH_HOST",
        value_delimiter = ',',
        help_heading = "Registry"
    )]
    registry_auth_host: Vec<String>,

    /// Also trust the CA certificates in this PEM file (repeatable).
    #[arg(long, value_name = "FILE", help_heading = "Registry")]
    registry_ca: Vec<PathBuf>,

    /// Talk plain HTTP to this registry host or host:port (repeatable): a registry, a redirect
    /// target or a token service. Never the default.
    #[arg(long, value_name = "HOST", help_heading = "Registry")]
    allow_insecure_registry: Vec<String>,

    /// Timeout of each registry request, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        help_heading = "Registry"
    )]
    registry_timeout: u64,
}

impl RegistryArgs {
    /// A client for commands whose images come from resources (apply, test, serve): explicit
    /// credentials go only to the `--registry-auth-host` hosts, which must be named.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        if self.registry_username.is_some() && self.registry_auth_host.is_empty() {
            bail!(
                "--registry-username needs --registry-auth-host HOST here (or, for credentials from \
SEALGATE_REGISTRY_USERNAME and SEALGATE_REGISTRY_PASSWORD, SEALGATE_REGISTRY_AUTH_HOST=HOST): the \
images come from resources, which may name any registry, and the password must go only to yours"
            );
        }
        self.build(self.registry_auth_host.clone())
    }

    /// A client for a command that names its images itself (sign, verify, triangulate):
    /// explicit credentials go to those images' registries unless `--registry-auth-host` says
    /// otherwise.
    pub(crate) fn client_for(&self, images: &[ImageRef]) -> anyhow::Result<Client> {
        let hosts = if self.registry_auth_host.is_empty() {
            images.iter().map(|i| i.api_host().to_string()).collect()
        } else {
            self.registry_auth_host.clone()
        };
        self.build(hosts)
    }

    /// A client configured from the flags, with the docker and podman credential files (found
    /// from the process environment) as fallback.
    fn build(&self, credential_hosts: Vec<String>) -> anyhow::Result<Client> {
        if self.registry_username.is_some() != self.registry_password.is_some() {
            bail!(
                "--registry-username and --registry-password (SEALGATE_REGISTRY_USERNAME and \
SEALGATE_REGISTRY_PASSWORD) go together; pass both or neither"
            );
        }
        let options = RegistryOptions {
            username: self.registry_username.clone(),
            password: self.registry_password.clone(),
            credential_hosts: Some(credential_hosts),
            ca_files: self.registry_ca.clone(),
            insecure_hosts: self.allow_insecure_registry.clone(),
            request_timeout: Duration::from_secs(self.registry_timeout.max(1)),
            auth_files: AuthFiles::from_env(),
            ..RegistryOptions::default()
        };
        Ok(Client::new(options)?)
    }
}
