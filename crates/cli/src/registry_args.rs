//! The registry flags every command that talks to a registry shares, and the client they build.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use sealgate_registry::{AuthFiles, Client, RegistryOptions};

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

    /// Also trust the CA certificates in this PEM file (repeatable).
    #[arg(long, value_name = "FILE", help_heading = "Registry")]
    registry_ca: Vec<PathBuf>,

    /// Talk plain HTTP to this registry host or host:port (repeatable). Never the default.
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
    /// A client configured from the flags, with docker config.json credentials as fallback.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        if self.registry_username.is_some() != self.registry_password.is_some() {
            bail!("--registry-username and --registry-password go together; pass both or neither");
        }
        let options = RegistryOptions {
            username: self.registry_username.clone(),
            password: self.registry_password.clone(),
            ca_files: self.registry_ca.clone(),
            insecure_hosts: self.allow_insecure_registry.clone(),
            request_timeout: Duration::from_secs(self.registry_timeout.max(1)),
            auth_files: AuthFiles::from_env(),
            ..RegistryOptions::default()
        };
        Ok(Client::new(options)?)
    }
}
