//! `sealgate-test-registry`: a local registry for the README quick start.
//!
//! `serve --dir DIR [--tls] [--auth]` runs Debian's `docker-registry` with its files in DIR,
//! writes `DIR/registry.env` (shell lines `REGISTRY_HOST=…`, `REGISTRY_CA=…`,
//! `REGISTRY_USERNAME=…`, `REGISTRY_PASSWORD=…`) and runs until SIGTERM or SIGINT.
//! `push --dir DIR REPO:TAG` pushes a tiny image to that registry and prints its digest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use sealgate_core::ImageRef;
use sealgate_registry::{Client, RegistryOptions};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig, push_tiny_image};

/// Runs a throw-away local registry, or pushes a tiny image to one.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a registry and run until SIGTERM or SIGINT.
    Serve {
        /// Directory for its configuration, certificates, data, log and registry.env.
        #[arg(long)]
        dir: PathBuf,
        /// Serve HTTPS with a certificate from a fresh CA (DIR/ca.pem).
        #[arg(long)]
        tls: bool,
        /// Require the user 'sealgate' with a random password.
        #[arg(long)]
        auth: bool,
    },
    /// Push a tiny image to the registry described by DIR/registry.env; print its digest.
    Push {
        /// The directory given to `serve`.
        #[arg(long)]
        dir: PathBuf,
        /// Repository and tag, e.g. app:v1.
        image: String,
    },
}

const ENV_FILE: &str = "registry.env";

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Serve { dir, tls, auth } => serve(&dir, TestRegistryConfig { tls, auth }),
        Command::Push { dir, image } => push(&dir, &image),
    }
}

fn serve(dir: &Path, config: TestRegistryConfig) -> anyhow::Result<()> {
    let registry = TestRegistry::start_in(config, dir);
    let env_path = dir.join(ENV_FILE);
    let ca = registry
        .ca_pem_path()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let lines = [
        ("REGISTRY_HOST", registry.host().to_string()),
        ("REGISTRY_URL", registry.url()),
        ("REGISTRY_CA", ca),
        (
            "REGISTRY_USERNAME",
            registry.username().unwrap_or_default().to_string(),
        ),
        (
            "REGISTRY_PASSWORD",
            registry.password().unwrap_or_default().to_string(),
        ),
    ];
    let text: String = lines
        .iter()
        .map(|(k, v)| format!("{k}={}\n", shell_quote(v)))
        .collect();
    // written whole, then renamed: scripts wait for the file and source it at once
    let partial = dir.join(format!("{ENV_FILE}.partial"));
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &env_path)
        .with_context(|| format!("cannot write {}", env_path.display()))?;
    println!(
        "registry at {} (log: {}); settings in {}",
        registry.url(),
        dir.join("registry.log").display(),
        env_path.display()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = terminate.recv() => Ok::<_, std::io::Error>("SIGTERM"),
            result = tokio::signal::ctrl_c() => result.map(|()| "SIGINT"),
        }
    })?;
    let _ = std::fs::remove_file(&env_path);
    drop(registry);
    println!("{signal}: registry stopped");
    Ok(())
}

fn push(dir: &Path, image: &str) -> anyhow::Result<()> {
    let env_path = dir.join(ENV_FILE);
    let text = std::fs::read_to_string(&env_path).with_context(|| {
        format!(
            "cannot read {}; is `sealgate-test-registry serve --dir {}` running?",
            env_path.display(),
            dir.display()
        )
    })?;
    let env = parse_env(&text);
    let get = |key: &str| env.get(key).cloned().filter(|v| !v.is_empty());
    let Some(host) = get("REGISTRY_HOST") else {
        bail!("{} has no REGISTRY_HOST", env_path.display());
    };
    let ca = get("REGISTRY_CA");
    let options = RegistryOptions {
        username: get("REGISTRY_USERNAME"),
        password: get("REGISTRY_PASSWORD"),
        insecure_hosts: if ca.is_none() {
            vec![host.clone()]
        } else {
            Vec::new()
        },
        ca_files: ca.into_iter().map(PathBuf::from).collect(),
        request_timeout: Duration::from_secs(30),
        ..RegistryOptions::default()
    };
    let image = ImageRef::parse(&format!("{host}/{image}"))?;
    let client = Client::new(options)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let digest = runtime.block_on(push_tiny_image(&client, &image))?;
    println!("{digest}");
    Ok(())
}

/// `'value'` with embedded single quotes escaped, for `sh`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Reads the `KEY='value'` lines [`serve`] writes.
fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| {
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            (key.trim().to_string(), value.replace(r"'\''", "'"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_round_trip() {
        let text = format!(
            "A={}\nB={}\n",
            shell_quote("/tmp/my dir/ca.pem"),
            shell_quote("it's")
        );
        let env = parse_env(&text);
        assert_eq!(env["A"], "/tmp/my dir/ca.pem");
        assert_eq!(env["B"], "it's");
    }
}
