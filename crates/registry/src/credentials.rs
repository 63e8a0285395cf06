//! Registry credentials from docker-style files (`config.json`, podman's `auth.json`) and
//! `docker-credential-<name>` helpers.
//!
//! [`AuthFiles`] is a list of candidate files, read only when a registry first asks for
//! credentials. The first file with an entry for the host wins. Within a file, a `credHelpers`
//! entry for the host comes first, then inline `auths` credentials, then the `credsStore` helper,
//! as docker does. Keys may be written as `host`, `host:port`, `https://host/v1/` or any URL;
//! Docker Hub's key is `https://index.docker.io/v1/`.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::AsyncWriteExt as _;

use crate::error::Error;

/// The key docker writes for Docker Hub, and the server URL it gives credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// The host names that all mean Docker Hub.
const DOCKER_HUB_HOSTS: [&str; 3] = ["index.docker.io", "registry-1.docker.io", "docker.io"];
/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest credential file read: a config with thousands of registries stays far below.
const MAX_AUTH_FILE_BYTES: u64 = 1024 * 1024;
/// The user name a helper returns when `Secret` is an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// A user name and password (or personal access token), sent as Basic auth or to the token
    /// service.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token service.
    IdentityToken(String),
}

impl Credentials {
    /// The user name to show in messages (`<token>` for an identity token).
    pub fn username(&self) -> &str {
        match self {
            Credentials::Basic { username, .. } => username,
            Credentials::IdentityToken(_) => IDENTITY_TOKEN_USER,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// What the credential files are found from: the variables docker, podman and skopeo read,
/// and the home directory. [`CredentialEnvironment::from_process`] reads them from the
/// process; tests build one by hand, so no test changes the process environment. An empty
/// variable counts as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialEnvironment {
    /// `REGISTRY_AUTH_FILE`: the one file podman and skopeo use when it is set.
    pub registry_auth_file: Option<PathBuf>,
    /// `DOCKER_CONFIG`: the folder holding docker's `config.json`, instead of `~/.docker`.
    pub docker_config: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR`: holds podman's primary `containers/auth.json`.
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`: holds `containers/auth.json`; `~/.config` when unset.
    pub xdg_config_home: Option<PathBuf>,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// The user id, for `/run/containers/$UID/auth.json` when `XDG_RUNTIME_DIR` is unset.
    pub uid: Option<u32>,
}

impl CredentialEnvironment {
    /// The process' own environment (and, on Unix, its user id).
    pub fn from_process() -> CredentialEnvironment {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        CredentialEnvironment {
            registry_auth_file: var("REGISTRY_AUTH_FILE"),
            docker_config: var("DOCKER_CONFIG"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            home: var("HOME"),
            uid: process_uid(),
        }
    }
}

/// The user id the process runs as: the owner of `/proc/self` (Linux); `None` elsewhere.
#[cfg(unix)]
fn process_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(not(unix))]
fn process_uid() -> Option<u32> {
    None
}

/// Docker-style credential files to consult, in order.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles {
    paths: Vec<PathBuf>,
    /// Where to find `docker-credential-*` helpers; `None` means `PATH`.
    helper_dir: Option<PathBuf>,
}

impl AuthFiles {
    /// No files: only explicit credentials are used.
    pub fn none() -> AuthFiles {
        AuthFiles::default()
    }

    /// The files found from the process environment: [`AuthFiles::from_environment`] of
    /// [`CredentialEnvironment::from_process`]. Reads only the environment now; the files are
    /// read when first needed, and missing ones are skipped.
    pub fn from_env() -> AuthFiles {
        AuthFiles::from_environment(&CredentialEnvironment::from_process())
    }

    /// The files docker, podman and skopeo read, in the order sealgate consults them (pure: no
    /// file is touched here):
    ///
    /// 1. `$REGISTRY_AUTH_FILE`, when set, and then no other file (podman and skopeo treat it
    ///    as the one file to use).
    /// 2. `$XDG_RUNTIME_DIR/containers/auth.json` (without `XDG_RUNTIME_DIR`,
    ///    `/run/containers/$UID/auth.json`), podman's primary file.
    /// 3. `$XDG_CONFIG_HOME/containers/auth.json` (default `~/.config/containers/auth.json`).
    /// 4. `$DOCKER_CONFIG/config.json` when `DOCKER_CONFIG` is set, else
    ///    `~/.docker/config.json`: `DOCKER_CONFIG` replaces the default folder, as docker,
    ///    cosign and podman do.
    ///
    /// Credentials given as options (`--registry-username`) come before all of them.
    pub fn from_environment(environment: &CredentialEnvironment) -> AuthFiles {
        let mut paths = Vec::new();
        if let Some(file) = &environment.registry_auth_file {
            paths.push(file.clone());
            return AuthFiles::from_paths(paths);
        }
        match (&environment.xdg_runtime_dir, environment.uid) {
            (Some(dir), _) => paths.push(dir.join("containers").join("auth.json")),
            (None, Some(uid)) => {
                paths.push(Path::new(&format!("/run/containers/{uid}")).join("auth.json"));
            }
            (None, None) => {}
        }
        let config_home = environment
            .xdg_config_home
            .clone()
            .or_else(|| environment.home.as_ref().map(|home| home.join(".config")));
        if let Some(dir) = config_home {
            paths.push(dir.join("containers").join("auth.json"));
        }
        let docker_dir = environment
            .docker_config
            .clone()
            .or_else(|| environment.home.as_ref().map(|home| home.join(".docker")));
        if let Some(dir) = docker_dir {
            paths.push(dir.join("config.json"));
        }
        AuthFiles::from_paths(paths)
    }

    /// Exactly these files, in this order.
    pub fn from_paths(paths: impl IntoIterator<Item = PathBuf>) -> AuthFiles {
        AuthFiles {
            paths: paths.into_iter().collect(),
            helper_dir: None,
        }
    }

    /// The files consulted, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The credentials for registry `host` (`host[:port]`, as on the wire), from the first file
    /// that has an entry for it.
    pub async fn lookup(&self, host: &str) -> Result<Option<Credentials>, Error> {
        for path in &self.paths {
            let Some(config) = read_config(path).await? else {
                continue;
            };
            if let Some(found) = self.lookup_in(&config, path, host).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    async fn lookup_in(
        &self,
        config: &DockerConfig,
        path: &Path,
        host: &str,
    ) -> Result<Option<Credentials>, Error> {
        if let Some(helper) = find_entry(&config.cred_helpers, host)
            && let Some(found) = self.run_helper(helper, host).await?
        {
            return Ok(Some(found));
        }
        if let Some(entry) = find_entry(&config.auths, host)
            && let Some(found) = entry.credentials(path, host)?
        {
            return Ok(Some(found));
        }
        match config.creds_store.as_deref().filter(|s| !s.is_empty()) {
            Some(store) => self.run_helper(store, host).await,
            None => Ok(None),
        }
    }

    /// Runs `docker-credential-<helper> get` with the server URL on stdin.
    async fn run_helper(&self, helper: &str, host: &str) -> Result<Option<Credentials>, Error> {
        let fail = |detail: String| Error::CredentialHelper {
            helper: helper.to_string(),
            host: host.to_string(),
            detail,
        };
        if helper.is_empty() || helper.contains(['/', '\\']) {
            return Err(fail("the helper name must be a plain name".into()));
        }
        let program = format!("docker-credential-{helper}");
        let program = match &self.helper_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        };
        let mut child = tokio::process::Command::new(&program)
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => fail(format!(
                    "{} is not installed or not on PATH",
                    program.display()
                )),
                _ => fail(format!("could not start {}: {e}", program.display())),
            })?;
        let server_url = if is_docker_hub(host) {
            DOCKER_HUB_KEY
        } else {
            host
        };
        if let Some(mut stdin) = child.stdin.take() {
            match stdin.write_all(server_url.as_bytes()).await {
                // a helper may answer without reading its input; its exit status tells
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(fail(format!("could not write to it: {e}"))),
            }
        }
        let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| fail(format!("no answer within {}s", HELPER_TIMEOUT.as_secs())))?
            .map_err(|e| fail(format!("could not read its answer: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            // docker-credential-helpers' credentials.errCredentialsNotFound
            if stdout.contains("credentials not found") {
                return Ok(None);
            }
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(fail(format!(
                "it exited with {}: {}",
                output.status,
                first_line(&stdout, &stderr)
            )));
        }
        let answer: HelperAnswer = serde_json::from_str(stdout.trim()).map_err(|e| {
            fail(format!(
                "its answer is not the expected JSON {{Username, Secret}}: {e}"
            ))
        })?;
        if answer.secret.is_empty() {
            return Ok(None);
        }
        if answer.username == IDENTITY_TOKEN_USER {
            return Ok(Some(Credentials::IdentityToken(answer.secret)));
        }
        Ok(Some(Credentials::Basic {
            username: answer.username,
            password: answer.secret,
        }))
    }
}

fn first_line<'a>(stdout: &'a str, stderr: &'a str) -> &'a str {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
}

/// Registry credentials held in memory: the `auths` of docker config documents, such as the
/// `.dockerconfigjson` of a `kubernetes.io/dockerconfigjson` Secret or the `.dockercfg` of a
/// `kubernetes.io/dockercfg` one, in the order added; the first document with an entry for a
/// host answers for it. Keys match hosts as in the files (`host`, `host:port`, URLs, Docker
/// Hub's aliases). No helper is ever run for them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    documents: Vec<Vec<(String, Credentials)>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<&str> = self
            .documents
            .iter()
            .flatten()
            .map(|(key, _)| key.as_str())
            .collect();
        f.debug_struct("Keyring").field("hosts", &hosts).finish()
    }
}

impl Keyring {
    /// Adds a docker config document: `{"auths": {KEY: ENTRY}}` (`.dockerconfigjson`) or the
    /// older `{KEY: ENTRY}` (`.dockercfg`). `origin` names it in errors, e.g.
    /// `Secret default/regcred`.
    pub fn add_docker_config(&mut self, origin: &str, bytes: &[u8]) -> Result<(), Error> {
        let fail = |detail: String| Error::AuthFile {
            path: PathBuf::from(origin),
            detail,
        };
        if bytes.len() as u64 > MAX_AUTH_FILE_BYTES {
            return Err(fail("is larger than any credential document needs".into()));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| fail(format!("is not valid JSON: {e}")))?;
        let auths = match value.get("auths") {
            Some(auths) => auths.clone(),
            None => value,
        };
        let entries: HashMap<String, AuthEntry> = serde_json::from_value(auths).map_err(|e| {
            fail(format!(
                "is not a docker config (auths: {{HOST: {{auth}}}}): {e}"
            ))
        })?;
        let mut document = Vec::new();
        for (key, entry) in entries {
            if let Some(credentials) = entry.credentials(Path::new(origin), &key)? {
                document.push((key, credentials));
            }
        }
        // Exact keys are tried first in lookups; the order among the others is by key.
        document.sort_by(|a, b| a.0.cmp(&b.0));
        self.documents.push(document);
        Ok(())
    }

    /// Adds the documents of `other` after its own.
    pub fn extend(&mut self, other: &Keyring) {
        self.documents.extend(other.documents.iter().cloned());
    }

    /// Whether it holds no credentials.
    pub fn is_empty(&self) -> bool {
        self.documents.iter().all(Vec::is_empty)
    }

    /// The credentials for registry `host`, from the first document with an entry for it.
    pub fn lookup(&self, host: &str) -> Option<Credentials> {
        self.documents.iter().find_map(|document| {
            document
                .iter()
                .find(|(key, _)| key == host)
                .or_else(|| document.iter().find(|(key, _)| key_matches(key, host)))
                .map(|(_, c)| c.clone())
        })
    }

    /// A number that differs between keyrings holding different credentials (for cache keys).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::hash::DefaultHasher::new();
        for document in &self.documents {
            document.len().hash(&mut hasher);
            for (key, credentials) in document {
                key.hash(&mut hasher);
                match credentials {
                    Credentials::Basic { username, password } => {
                        0u8.hash(&mut hasher);
                        username.hash(&mut hasher);
                        password.hash(&mut hasher);
                    }
                    Credentials::IdentityToken(token) => {
                        1u8.hash(&mut hasher);
                        token.hash(&mut hasher);
                    }
                }
            }
        }
        hasher.finish()
    }
}

/// The parts of a docker `config.json` (or containers `auth.json`) that hold credentials.
#[derive(Debug, Default, serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

/// One `auths` entry.
#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl AuthEntry {
    fn credentials(&self, path: &Path, host: &str) -> Result<Option<Credentials>, Error> {
        if let Some(token) = self.identitytoken.as_ref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credentials::IdentityToken(token.clone())));
        }
        if let Some(auth) = self
            .auth
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let bad = |detail: &str| Error::AuthFile {
                path: path.to_path_buf(),
                detail: format!("the 'auth' entry for {host} {detail}"),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(auth))
                .map_err(|_| bad("is not base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8 text"))?;
            let Some((username, password)) = decoded.split_once(':') else {
                return Err(bad("is not base64 of 'user:password'"));
            };
            return Ok(Some(Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        match (&self.username, &self.password) {
            (Some(username), Some(password)) if !username.is_empty() => {
                Ok(Some(Credentials::Basic {
                    username: username.clone(),
                    password: password.clone(),
                }))
            }
            _ => Ok(None),
        }
    }
}

/// A credential helper's answer to `get`.
#[derive(Debug, serde::Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Reads and parses one file, at most [`MAX_AUTH_FILE_BYTES`]; `None` if it does not exist.
async fn read_config(path: &Path) -> Result<Option<DockerConfig>, Error> {
    use tokio::io::AsyncReadExt as _;

    let fail = |detail: String| Error::AuthFile {
        path: path.to_path_buf(),
        detail,
    };
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot be read: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_AUTH_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| fail(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_AUTH_FILE_BYTES {
        return Err(fail(format!(
            "is larger than {} MiB, more than any credential file needs; is it the right file?",
            MAX_AUTH_FILE_BYTES / (1024 * 1024)
        )));
    }
    parse_config(&bytes).map(Some).map_err(|e| {
        // serde_json's message ends with " at line L column C": say it once, up front
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(head, _)| head)
            .to_string();
        fail(format!(
            "line {}, column {}: is not valid JSON: {message}",
            e.line(),
            e.column()
        ))
    })
}

fn parse_config(bytes: &[u8]) -> Result<DockerConfig, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(DockerConfig::default());
    }
    serde_json::from_slice(bytes)
}

/// The value whose key names `host`.
fn find_entry<'a, T>(entries: &'a HashMap<String, T>, host: &str) -> Option<&'a T> {
    // an exact key first, so `host` beats `https://host/v1/` when both are present
    entries.get(host).or_else(|| {
        entries
            .iter()
            .find(|(key, _)| key_matches(key, host))
            .map(|(_, v)| v)
    })
}

/// Whether a config key (`host`, `https://host/v1/`, `http://host:5000`) names `host`.
fn key_matches(key: &str, host: &str) -> bool {
    let key_host = key_host(key);
    if key_host.eq_ignore_ascii_case(host) {
        return true;
    }
    is_docker_hub(host) && is_docker_hub(key_host)
}

/// The `host[:port]` of a config key.
fn key_host(key: &str) -> &str {
    let without_scheme = key.split_once("://").map_or(key, |(_, rest)| rest);
    without_scheme.split('/').next().unwrap_or(without_scheme)
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB_HOSTS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(u: &str, p: &str) -> Option<Credentials> {
        Some(Credentials::Basic {
            username: u.into(),
            password: p.into(),
        })
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    #[tokio::test]
    async fn reads_every_key_form() {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{hub}"}},
                "registry.company.com":{{"auth":"{plain}"}},
                "https://ghcr.io/v1/":{{"username":"gh","password":"ghp_x"}},
                "http://127.0.0.1:5000":{{"auth":"{local}"}},
                "quay.io":{{"identitytoken":"refresh-me"}},
                "empty.io":{{}}
            }}}}"#,
            hub = b64("hubuser:hubpass"),
            plain = b64("alice:pa:ss"),
            local = b64("sealgate:pw"),
        );
        let files = AuthFiles::from_paths([write(dir.path(), "config.json", &config)]);
        assert_eq!(
            files.lookup("registry-1.docker.io").await.unwrap(),
            basic("hubuser", "hubpass")
        );
        assert_eq!(
            files.lookup("index.docker.io").await.unwrap(),
            basic("hubuser", "hubpass")
        );
        assert_eq!(
            files.lookup("registry.company.com").await.unwrap(),
            basic("alice", "pa:ss")
        );
        assert_eq!(files.lookup("ghcr.io").await.unwrap(), basic("gh", "ghp_x"));
        assert_eq!(
            files.lookup("127.0.0.1:5000").await.unwrap(),
            basic("sealgate", "pw")
        );
        assert_eq!(
            files.lookup("127.0.0.1:5001").await.unwrap(),
            None,
            "another port is another registry"
        );
        assert_eq!(
            files.lookup("quay.io").await.unwrap(),
            Some(Credentials::IdentityToken("refresh-me".into()))
        );
        assert_eq!(files.lookup("empty.io").await.unwrap(), None);
        assert_eq!(files.lookup("unknown.io").await.unwrap(), None);
    }

    #[tokio::test]
    async fn first_file_with_an_entry_wins_and_missing_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.json",
            &format!(r#"{{"auths":{{"one.io":{{"auth":"{}"}}}}}}"#, b64("a:1")),
        );
        let b = write(
            dir.path(),
            "b.json",
            &format!(
                r#"{{"auths":{{"one.io":{{"auth":"{}"}},"two.io":{{"auth":"{}"}}}}}}"#,
                b64("b:1"),
                b64("b:2")
            ),
        );
        let files = AuthFiles::from_paths([dir.path().join("missing.json"), a, b]);
        assert_eq!(files.lookup("one.io").await.unwrap(), basic("a", "1"));
        assert_eq!(files.lookup("two.io").await.unwrap(), basic("b", "2"));
    }

    #[tokio::test]
    async fn broken_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.json", "{not json");
        let e = AuthFiles::from_paths([path.clone()])
            .lookup("x.io")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::AuthFile { path: p, .. } if *p == path),
            "{e}"
        );
        assert!(e.to_string().contains("config.json"), "{e}");

        let path = write(
            dir.path(),
            "bad-auth.json",
            r#"{"auths":{"x.io":{"auth":"!!!"}}}"#,
        );
        let e = AuthFiles::from_paths([path])
            .lookup("x.io")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("the 'auth' entry for x.io is not base64"),
            "{e}"
        );

        let path = write(dir.path(), "blank.json", "  \n");
        assert_eq!(
            AuthFiles::from_paths([path]).lookup("x.io").await.unwrap(),
            None
        );
    }

    fn paths(environment: &CredentialEnvironment) -> Vec<PathBuf> {
        AuthFiles::from_environment(environment).paths().to_vec()
    }

    #[test]
    fn default_order_is_containers_files_then_docker() {
        let environment = CredentialEnvironment {
            home: Some("/home/u".into()),
            uid: Some(1000),
            ..CredentialEnvironment::default()
        };
        assert_eq!(
            paths(&environment),
            [
                PathBuf::from("/run/containers/1000/auth.json"),
                PathBuf::from("/home/u/.config/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json"),
            ]
        );
        let environment = CredentialEnvironment {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            xdg_config_home: Some("/cfg".into()),
            ..environment
        };
        assert_eq!(
            paths(&environment),
            [
                PathBuf::from("/run/user/1000/containers/auth.json"),
                PathBuf::from("/cfg/containers/auth.json"),
                PathBuf::from("/home/u/.docker/config.json"),
            ]
        );
        assert!(paths(&CredentialEnvironment::default()).is_empty());
    }

    #[test]
    fn registry_auth_file_is_the_only_file_when_set() {
        let environment = CredentialEnvironment {
            registry_auth_file: Some("/run/auth.json".into()),
            docker_config: Some("/etc/docker-cfg".into()),
            xdg_runtime_dir: Some("/run/user/1000".into()),
            home: Some("/home/u".into()),
            ..CredentialEnvironment::default()
        };
        assert_eq!(paths(&environment), [PathBuf::from("/run/auth.json")]);
    }

    /// Issue 11: with `DOCKER_CONFIG` set, `~/.docker/config.json` is not read, as docker and
    /// cosign do not read it.
    #[test]
    fn docker_config_replaces_the_home_docker_folder() {
        let environment = CredentialEnvironment {
            docker_config: Some("/etc/docker-cfg".into()),
            home: Some("/home/u".into()),
            ..CredentialEnvironment::default()
        };
        assert_eq!(
            paths(&environment),
            [
                PathBuf::from("/home/u/.config/containers/auth.json"),
                PathBuf::from("/etc/docker-cfg/config.json"),
            ]
        );
    }

    /// A fake home with every location in it, each holding credentials for its own registry and
    /// for `shared.io` (so the order shows), with the environment pointing into it.
    struct FakeHome {
        dir: tempfile::TempDir,
    }

    impl FakeHome {
        const LOCATIONS: [(&'static str, &'static str); 5] = [
            ("auth-file.json", "auth-file"),
            ("run/containers/auth.json", "runtime"),
            ("home/.config/containers/auth.json", "config-home"),
            ("home/.docker/config.json", "home-docker"),
            ("docker-cfg/config.json", "docker-config"),
        ];

        fn new() -> FakeHome {
            let dir = tempfile::tempdir().unwrap();
            for (file, name) in FakeHome::LOCATIONS {
                let path = dir.path().join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let config = format!(
                    r#"{{"auths":{{"{name}.io":{{"auth":"{own}"}},"shared.io":{{"auth":"{own}"}}}}}}"#,
                    own = b64(&format!("{name}:pw")),
                );
                std::fs::write(path, config).unwrap();
            }
            std::fs::create_dir_all(dir.path().join("empty-docker-cfg")).unwrap();
            FakeHome { dir }
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.dir.path().join(relative)
        }

        /// Everything but REGISTRY_AUTH_FILE and DOCKER_CONFIG set.
        fn environment(&self) -> CredentialEnvironment {
            CredentialEnvironment {
                xdg_runtime_dir: Some(self.path("run")),
                home: Some(self.path("home")),
                ..CredentialEnvironment::default()
            }
        }
    }

    async fn user_for(environment: &CredentialEnvironment, host: &str) -> Option<String> {
        AuthFiles::from_environment(environment)
            .lookup(host)
            .await
            .unwrap()
            .map(|c| c.username().to_string())
    }

    #[tokio::test]
    async fn each_location_is_read_in_order() {
        let home = FakeHome::new();
        let environment = home.environment();
        for name in ["runtime", "config-home", "home-docker"] {
            assert_eq!(
                user_for(&environment, &format!("{name}.io"))
                    .await
                    .as_deref(),
                Some(name),
                "{name}"
            );
        }
        assert_eq!(
            user_for(&environment, "shared.io").await.as_deref(),
            Some("runtime"),
            "the first file with an entry wins"
        );
        assert_eq!(user_for(&environment, "docker-config.io").await, None);
        assert_eq!(user_for(&environment, "auth-file.io").await, None);

        let environment = CredentialEnvironment {
            xdg_config_home: Some(home.path("home/.docker")),
            xdg_runtime_dir: None,
            ..home.environment()
        };
        assert_eq!(
            user_for(&environment, "config-home.io").await,
            None,
            "XDG_CONFIG_HOME replaces ~/.config"
        );

        let environment = CredentialEnvironment {
            registry_auth_file: Some(home.path("auth-file.json")),
            ..home.environment()
        };
        assert_eq!(
            user_for(&environment, "shared.io").await.as_deref(),
            Some("auth-file")
        );
        assert_eq!(
            user_for(&environment, "home-docker.io").await,
            None,
            "REGISTRY_AUTH_FILE is the only file"
        );
    }

    #[tokio::test]
    async fn docker_config_without_config_json_reads_no_docker_file() {
        let home = FakeHome::new();
        let environment = CredentialEnvironment {
            docker_config: Some(home.path("empty-docker-cfg")),
            ..home.environment()
        };
        assert_eq!(
            user_for(&environment, "home-docker.io").await,
            None,
            "~/.docker/config.json must not be read when DOCKER_CONFIG is set"
        );
        let environment = CredentialEnvironment {
            docker_config: Some(home.path("docker-cfg")),
            ..home.environment()
        };
        assert_eq!(
            user_for(&environment, "docker-config.io").await.as_deref(),
            Some("docker-config")
        );
        assert_eq!(user_for(&environment, "home-docker.io").await, None);
    }

    #[tokio::test]
    async fn malformed_and_oversized_files_are_errors_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "auth.json", "{\n  \"auths\": {,}\n}\n");
        let e = AuthFiles::from_paths([path.clone()])
            .lookup("x.io")
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "docker credential file {}: line 2, column 13: is not valid JSON: key must be a string",
                path.display()
            )
        );
        let path = write(
            dir.path(),
            "huge.json",
            &" ".repeat(usize::try_from(MAX_AUTH_FILE_BYTES).unwrap() + 1),
        );
        let e = AuthFiles::from_paths([path.clone()])
            .lookup("x.io")
            .await
            .unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "docker credential file {}: is larger than 1 MiB",
                path.display()
            )),
            "{e}"
        );
        let e = AuthFiles::from_paths([dir.path().to_path_buf()])
            .lookup("x.io")
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::AuthFile { path, .. } if path == dir.path()),
            "a folder where a file should be is an error: {e}"
        );
    }

    #[test]
    fn key_forms() {
        assert_eq!(key_host("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(key_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(key_host("ghcr.io"), "ghcr.io");
        assert_eq!(key_host("registry.company.com/v2/"), "registry.company.com");
        assert!(key_matches("docker.io", "registry-1.docker.io"));
        assert!(!key_matches("docker.io", "ghcr.io"));
    }

    /// Writes a fake `docker-credential-<name>` script into `dir`.
    #[cfg(unix)]
    fn helper(dir: &Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = write(
            dir,
            &format!("docker-credential-{name}"),
            &format!("#!/bin/sh\n{script}\n"),
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn credential_helpers_and_store() {
        let dir = tempfile::tempdir().unwrap();
        // echoes the server URL it was asked about as the user name
        helper(
            dir.path(),
            "echo",
            r#"read host; printf '{"ServerURL":"%s","Username":"%s","Secret":"s3cret"}' "$host" "$host""#,
        );
        helper(
            dir.path(),
            "token",
            r#"printf '{"Username":"<token>","Secret":"refresh"}'"#,
        );
        helper(
            dir.path(),
            "none",
            r#"echo "credentials not found in native keychain"; exit 1"#,
        );
        helper(
            dir.path(),
            "broken",
            r#"echo "keychain locked" >&2; exit 3"#,
        );
        let config = format!(
            r#"{{"credHelpers":{{"ghcr.io":"echo","quay.io":"token","nothing.io":"none","broken.io":"broken","gone.io":"not-installed"}},
                "credsStore":"echo",
                "auths":{{"inline.io":{{"auth":"{}"}},"nothing.io":{{"auth":"{}"}}}}}}"#,
            b64("in:line"),
            b64("fall:back")
        );
        let mut files = AuthFiles::from_paths([write(dir.path(), "config.json", &config)]);
        files.helper_dir = Some(dir.path().to_path_buf());

        assert_eq!(
            files.lookup("ghcr.io").await.unwrap(),
            basic("ghcr.io", "s3cret")
        );
        assert_eq!(
            files.lookup("quay.io").await.unwrap(),
            Some(Credentials::IdentityToken("refresh".into()))
        );
        assert_eq!(
            files.lookup("nothing.io").await.unwrap(),
            basic("fall", "back"),
            "helper found nothing"
        );
        assert_eq!(
            files.lookup("inline.io").await.unwrap(),
            basic("in", "line")
        );
        // everything else goes to credsStore; Docker Hub is asked for under its v1 URL
        assert_eq!(
            files.lookup("other.io").await.unwrap(),
            basic("other.io", "s3cret")
        );
        assert_eq!(
            files.lookup("registry-1.docker.io").await.unwrap(),
            basic(DOCKER_HUB_KEY, "s3cret")
        );

        let e = files.lookup("broken.io").await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "credential helper docker-credential-broken failed for broken.io: it exited with exit status: 3: keychain locked"
        );
        let e = files.lookup("gone.io").await.unwrap_err();
        assert!(
            e.to_string().contains("is not installed or not on PATH"),
            "{e}"
        );
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::Basic {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credentials::IdentityToken("tok".into())).contains("tok"));
    }

    #[test]
    fn a_keyring_reads_both_secret_formats_and_answers_only_the_hosts_it_names() {
        use base64::Engine as _;
        let auth =
            |u: &str, p: &str| base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        let mut keyring = Keyring::default();
        assert!(keyring.is_empty());
        // kubernetes.io/dockerconfigjson
        keyring
            .add_docker_config(
                "Secret default/regcred",
                format!(
                    r#"{{"auths": {{"registry.company.com:5000": {{"auth": "{}"}}, "https://index.docker.io/v1/": {{"username": "hub", "password": "h"}}}}}}"#,
                    auth("ci", "s3cret")
                )
                .as_bytes(),
            )
            .unwrap();
        // kubernetes.io/dockercfg: no "auths" level; a later document loses to an earlier one.
        keyring
            .add_docker_config(
                "Secret ops/legacy",
                format!(
                    r#"{{"registry.company.com:5000": {{"auth": "{}"}}, "quay.io": {{"auth": "{}"}}}}"#,
                    auth("other", "x"),
                    auth("q", "y")
                )
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(
            keyring.lookup("registry.company.com:5000"),
            basic("ci", "s3cret")
        );
        assert_eq!(keyring.lookup("registry-1.docker.io"), basic("hub", "h"));
        assert_eq!(keyring.lookup("quay.io"), basic("q", "y"));
        assert_eq!(keyring.lookup("registry.company.com"), None, "another port");
        assert_eq!(keyring.lookup("attacker.example"), None);
        assert!(!format!("{keyring:?}").contains("s3cret"));

        let before = keyring.fingerprint();
        let mut other = keyring.clone();
        other
            .add_docker_config(
                "Secret a/b",
                br#"{"auths": {"ghcr.io": {"username": "u", "password": "p"}}}"#,
            )
            .unwrap();
        assert_ne!(other.fingerprint(), before);
        assert_eq!(keyring.clone().fingerprint(), before);

        let e = Keyring::default()
            .add_docker_config("Secret default/broken", b"{not json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Secret default/broken") && e.contains("is not valid JSON"),
            "{e}"
        );
        let e = Keyring::default()
            .add_docker_config(
                "Secret default/bad",
                br#"{"auths": {"r.io": {"auth": "%%%"}}}"#,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("the 'auth' entry for r.io is not base64"), "{e}");
    }
}
