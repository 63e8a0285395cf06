//! A real registry for tests: Debian's `docker-registry` (CNCF distribution 2.8.2) on a free
//! loopback port, with an optional TLS certificate from a throw-away CA and optional htpasswd
//! authentication.
//!
//! ```no_run
//! use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
//!
//! let registry = TestRegistry::start(TestRegistryConfig { tls: true, auth: true });
//! let digest = registry.push_image("app", "v1");
//! let client = registry.client(); // trusts the CA and knows the password
//! # let _ = (digest, client);
//! ```
//!
//! There is no skipping: if `docker-registry` is not installed, [`TestRegistry::start`] panics
//! with the command that installs it. The registry's access log is kept ([`TestRegistry::log`]),
//! so tests can count the requests it served. The process is killed when the value is dropped.
//!
//! The API is synchronous and safe to call from inside a tokio runtime: async work runs on a
//! private runtime in a helper thread.
//!
//! For fault tests, [`TcpFaultProxy`] (delay, black hole, stop mid-run; TLS passes through) and
//! [`HttpFaultProxy`] (429/500 answers, truncated bodies, content that does not match its digest,
//! and the OCI 1.1 referrers API the registry lacks: [`ReferrersApi`]) sit in front of a
//! registry.

// A test harness: failing loudly, with the registry log, is its whole job.
#![allow(clippy::panic, clippy::expect_used)]

mod attestors;
mod certs;
mod fake_fetch;
mod fault_proxy;
mod image;
mod pki;

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ring::rand::SecureRandom as _;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::{Client, Error, RegistryOptions};

pub use attestors::key_attestor;
pub use certs::{CA_COMMON_NAME, SERVER_NAMES};
pub use fake_fetch::FakeFetch;
pub use fault_proxy::{
    Fault, FaultRule, HttpFaultProxy, RedirectTo, ReferrersApi, StorageRequest, TcpFaultProxy,
    TcpMode,
};
pub use image::{INDEX_PLATFORMS, push_tiny_image, push_tiny_index};
pub use pki::CodeSigningPki;

/// Where Debian installs distribution.
const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// The user name of the htpasswd file.
pub const USERNAME: &str = "sealgate";
/// The htpasswd realm.
pub const AUTH_REALM: &str = "sealgate-test";
/// How long the registry may take to answer `/v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// bcrypt cost for the htpasswd entry: the minimum Go accepts is 4; tests want speed.
const BCRYPT_COST: u32 = 5;
/// How often a start is retried when another process took the port first.
const PORT_ATTEMPTS: u32 = 3;

/// What kind of registry to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TestRegistryConfig {
    /// Serve HTTPS with a certificate from a fresh CA (see [`TestRegistry::ca_pem_path`]).
    pub tls: bool,
    /// Require Basic authentication as [`USERNAME`] with a random password.
    pub auth: bool,
}

/// A running `docker-registry`, stopped on drop.
#[derive(Debug)]
pub struct TestRegistry {
    config: TestRegistryConfig,
    dir: PathBuf,
    /// Deletes `dir` on drop when the registry made it.
    _temp_dir: Option<tempfile::TempDir>,
    host: String,
    password: Option<String>,
    child: Child,
}

impl TestRegistry {
    /// Starts a registry in a fresh temporary directory. Panics (with the registry log) if it
    /// does not answer within 10 s.
    pub fn start(config: TestRegistryConfig) -> TestRegistry {
        let temp_dir = tempfile::Builder::new()
            .prefix("sealgate-test-registry-")
            .tempdir()
            .expect("cannot create a temporary directory for the test registry");
        let dir = temp_dir.path().to_path_buf();
        let mut registry = TestRegistry::start_in(config, &dir);
        registry._temp_dir = Some(temp_dir);
        registry
    }

    /// Starts a registry listening on `listen` (e.g. `127.0.0.1:443`) that tests reach as `host`
    /// (e.g. `registry.company.com`, resolved to loopback by the test's own `/etc/hosts` in a
    /// network namespace). Its TLS certificate is valid for `registry.company.com`.
    pub fn start_as(config: TestRegistryConfig, listen: &str, host: &str) -> TestRegistry {
        let temp_dir = tempfile::Builder::new()
            .prefix("sealgate-test-registry-")
            .tempdir()
            .expect("cannot create a temporary directory for the test registry");
        let dir = temp_dir.path().to_path_buf();
        fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let password = config.auth.then(|| random_hex(16));
        write_support_files(config, &dir, password.as_deref());
        let config_path = dir.join("config.yml");
        fs::write(&config_path, distribution_config(config, &dir, listen))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let child = spawn(&registry_binary(), &config_path, &dir.join("registry.log"));
        let mut registry = TestRegistry {
            config,
            dir,
            _temp_dir: Some(temp_dir),
            host: listen.to_string(),
            password,
            child,
        };
        if let Err(log) = registry.wait_until_ready() {
            panic!(
                "docker-registry did not start on {listen} within {}s; its log:\n{log}",
                READY_TIMEOUT.as_secs()
            );
        }
        registry.host = host.to_string();
        registry
    }

    /// Starts a registry whose configuration, certificates, data and log live in `dir` (created
    /// if missing, left in place afterwards).
    pub fn start_in(config: TestRegistryConfig, dir: &Path) -> TestRegistry {
        let binary = registry_binary();
        fs::create_dir_all(dir.join("data"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut password = config.auth.then(|| random_hex(16));
        write_support_files(config, dir, password.as_deref());
        let mut attempt = 1;
        loop {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let config_path = dir.join("config.yml");
            fs::write(&config_path, distribution_config(config, dir, &host))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
            let child = spawn(&binary, &config_path, &dir.join("registry.log"));
            let mut registry = TestRegistry {
                config,
                dir: dir.to_path_buf(),
                _temp_dir: None,
                host,
                password,
                child,
            };
            match registry.wait_until_ready() {
                Ok(()) => return registry,
                Err(log) if log.contains("address already in use") && attempt < PORT_ATTEMPTS => {
                    attempt += 1;
                    password = registry.password.take();
                }
                Err(log) => panic!(
                    "docker-registry did not start on {} within {}s; its log:\n{log}",
                    registry.host,
                    READY_TIMEOUT.as_secs()
                ),
            }
        }
    }

    /// `127.0.0.1:PORT`: the registry part of image references.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `https://127.0.0.1:PORT` or `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.config.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// What kind of registry this is.
    pub fn config(&self) -> TestRegistryConfig {
        self.config
    }

    /// The CA certificate that signed the server's, when serving TLS.
    pub fn ca_pem_path(&self) -> Option<PathBuf> {
        self.config.tls.then(|| self.dir.join("ca.pem"))
    }

    /// [`USERNAME`] when authentication is on.
    pub fn username(&self) -> Option<&str> {
        self.config.auth.then_some(USERNAME)
    }

    /// The random password when authentication is on.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The directory with the configuration, certificates, log and data.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registry's storage root.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The registry's log so far: its own messages and its access log (one line per request,
    /// such as `"GET /v2/app/manifests/sha256-….sig HTTP/1.1" 404`). The access line is written
    /// once the response is sent, so allow a moment before counting.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// `host/repository_and_tag` as an image reference, e.g. `image_ref("app:v1")`.
    pub fn image_ref(&self, repository_and_tag: &str) -> ImageRef {
        let reference = format!("{}/{repository_and_tag}", self.host);
        ImageRef::parse(&reference).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Options for a [`Client`] of this registry: its CA, its credentials, and plain HTTP for
    /// its host when it serves no TLS. A short timeout and no retries, as tests want.
    pub fn client_options(&self) -> RegistryOptions {
        RegistryOptions {
            username: self.username().map(str::to_string),
            password: self.password.clone(),
            ca_files: self.ca_pem_path().into_iter().collect(),
            insecure_hosts: if self.config.tls {
                Vec::new()
            } else {
                vec![self.host.clone()]
            },
            request_timeout: Duration::from_secs(10),
            max_retries: 0,
            ..RegistryOptions::default()
        }
    }

    /// A client configured by [`TestRegistry::client_options`].
    pub fn client(&self) -> Client {
        Client::new(self.client_options())
            .unwrap_or_else(|e| panic!("cannot build a client for {}: {e}", self.host))
    }

    /// The flags sealgate's CLI needs for this registry: `--registry-ca`,
    /// `--registry-username`/`--registry-password` and `--allow-insecure-registry` as they apply.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(ca) = self.ca_pem_path() {
            args.extend(["--registry-ca".to_string(), ca.display().to_string()]);
        } else {
            args.extend(["--allow-insecure-registry".to_string(), self.host.clone()]);
        }
        if let (Some(username), Some(password)) = (self.username(), self.password()) {
            args.extend([
                "--registry-username".to_string(),
                username.to_string(),
                "--registry-password".to_string(),
                password.to_string(),
                "--registry-auth-host".to_string(),
                self.host.clone(),
            ]);
        }
        args
    }

    /// Pushes a tiny one-layer OCI image as `repository:tag`; returns its manifest digest.
    /// Content depends on the repository and tag, so digests differ between them.
    pub fn push_image(&self, repository: &str, tag: &str) -> Digest {
        let image = self.image_ref(&format!("{repository}:{tag}"));
        let client = self.client();
        block_on(async move { push_tiny_image(&client, &image).await }).unwrap_or_else(|e| {
            panic!(
                "pushing {repository}:{tag} to {} failed: {e}\n{}",
                self.host,
                self.log()
            )
        })
    }

    /// Pushes an OCI index of two tiny images (linux/amd64, linux/arm64) as `repository:tag`;
    /// returns the index digest.
    pub fn push_image_index(&self, repository: &str, tag: &str) -> Digest {
        let image = self.image_ref(&format!("{repository}:{tag}"));
        let client = self.client();
        block_on(async move { push_tiny_index(&client, &image).await }).unwrap_or_else(|e| {
            panic!(
                "pushing index {repository}:{tag} to {} failed: {e}\n{}",
                self.host,
                self.log()
            )
        })
    }

    /// Polls `GET /v2/` until it answers. `Err` carries the log when the registry exited or
    /// did not answer in time.
    fn wait_until_ready(&mut self) -> Result<(), String> {
        let mut options = self.client_options();
        options.request_timeout = Duration::from_secs(2);
        let client = Client::new(options).unwrap_or_else(|e| panic!("{e}"));
        let host = self.host.clone();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "(docker-registry exited with {status})\n{}",
                    self.log()
                ));
            }
            let client = client.clone();
            let host = host.clone();
            match block_on(async move { client.ping(&host).await }) {
                Ok(()) => return Ok(()),
                Err(Error::Connect { .. } | Error::Timeout { .. }) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(format!("({e})\n{}", self.log())),
            }
        }
    }

    fn stop(&mut self) {
        // The child may have exited already; either way, reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `future` to completion on a private runtime in a helper thread, so that callers may
/// themselves be inside a runtime.
fn block_on<F>(future: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("cannot build a tokio runtime")
                    .block_on(future)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `/usr/bin/docker-registry`, or `docker-registry` on `PATH`.
fn registry_binary() -> PathBuf {
    let installed = PathBuf::from(REGISTRY_BINARY);
    if installed.is_file() {
        return installed;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("docker-registry"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("docker-registry is not installed: apt-get install docker-registry")
        })
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("the system random generator failed");
    sealgate_core::image::digest::hex_encode(&buf)
}

/// Writes the certificates and the htpasswd file the configuration refers to.
fn write_support_files(config: TestRegistryConfig, dir: &Path, password: Option<&str>) {
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        fs::write(&path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    };
    if config.tls {
        let tls =
            certs::generate().unwrap_or_else(|e| panic!("cannot generate test certificates: {e}"));
        write("ca.pem", &tls.ca_pem);
        write("server.pem", &tls.server_cert_pem);
        write("server-key.pem", &tls.server_key_pem);
    }
    if let Some(password) = password {
        // distribution checks with Go's bcrypt, which reads $2a$, $2b$ and $2y$ alike
        let hash = bcrypt::hash_with_result(password, BCRYPT_COST)
            .unwrap_or_else(|e| panic!("bcrypt failed: {e}"))
            .format_for_version(bcrypt::Version::TwoY);
        write("htpasswd", &format!("{USERNAME}:{hash}\n"));
    }
}

/// distribution's `config.yml`. Paths are written as JSON strings, which YAML reads as-is.
fn distribution_config(config: TestRegistryConfig, dir: &Path, host: &str) -> String {
    let path = |name: &str| serde_json::to_string(&dir.join(name)).unwrap_or_default();
    let secret = random_hex(16);
    let mut yaml = format!(
        "version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {host}
  secret: {secret}
  headers:
    X-Content-Type-Options: [nosniff]
",
        data = path("data"),
    );
    if config.tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            path("server.pem"),
            path("server-key.pem")
        ));
    }
    if config.auth {
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: {AUTH_REALM}\n    path: {}\n",
            path("htpasswd")
        ));
    }
    yaml
}

fn spawn(binary: &Path, config: &Path, log: &Path) -> Child {
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let stderr = log_file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    Command::new(binary)
        .arg("serve")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}
