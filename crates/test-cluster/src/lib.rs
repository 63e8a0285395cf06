//! A real Kubernetes API server for end-to-end tests: kube-apiserver 1.20.2 (built from Debian's
//! `kubernetes` source package by `./scripts/build-kube-apiserver`) and Debian's etcd 3.4, both on
//! free loopback ports, driven with `kubectl`.
//!
//! ```no_run
//! use sealgate_test_cluster::TestCluster;
//!
//! let cluster = TestCluster::start();
//! cluster.kubectl_ok(&["create", "namespace", "team-a"]);
//! let namespaces = cluster.kubectl_ok(&["get", "namespaces", "-o", "name"]);
//! assert!(namespaces.contains("namespace/team-a"));
//! ```
//!
//! A start takes about 4 s on a 2-core machine (most of it kube-apiserver's own start-up), so
//! tests may each start their own cluster; several run at once.
//!
//! There is no skipping: when the kube-apiserver binary, etcd or kubectl is missing,
//! [`TestCluster::start`] panics with the command that provides it. Both processes are killed
//! and the temporary directory removed when the value is dropped.
//!
//! What the cluster is, and is not:
//!
//! - Only etcd and the API server run: no controller-manager, scheduler or kubelet. Pods stay
//!   Pending, which is enough for admission (it happens on create). Nothing creates
//!   ServiceAccounts: [`TestCluster::start`] creates `default` in namespace `default`; a Pod in
//!   any other namespace needs that namespace's `default` ServiceAccount created first
//!   (`kubectl create serviceaccount default -n NAMESPACE`), or the ServiceAccount admission
//!   plugin refuses it.
//! - The admission plugins are kube-apiserver 1.20's defaults, which include
//!   MutatingAdmissionWebhook and ValidatingAdmissionWebhook. The ServiceAccount plugin stays on
//!   with the `BoundServiceAccountTokenVolume` feature gate (alpha in 1.20, on by default from
//!   1.21), so Pods get the projected `kube-api-access-…` token volume as on a current cluster
//!   and need no `automountServiceAccountToken: false` (without a token controller, the legacy
//!   secret-based token would never appear and every Pod would wait for it).
//! - Authentication is one bearer token ([`TestCluster::token`]) for user `admin` in group
//!   `system:masters`; authorization is RBAC. The serving certificate is the one kube-apiserver
//!   generates in its `--cert-dir` (a chain of a leaf for IP 127.0.0.1 and the `kubernetes.default…`
//!   names, not `localhost`, and the throw-away CA that signed it), which
//!   [`TestCluster::ca_pem`] returns and the kubeconfig trusts.
//! - Kubernetes 1.20 predates the automatic `kubernetes.io/metadata.name` namespace label.

// A test harness: failing loudly, with the API server's log, is its whole job.
#![allow(clippy::panic, clippy::expect_used)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

/// The environment variable that names the kube-apiserver binary.
pub const KUBE_APISERVER_ENV: &str = "SEALGATE_KUBE_APISERVER";
/// Where `./scripts/build-kube-apiserver` puts the binary, under `$HOME`.
const KUBE_APISERVER_HOME_PATH: &str = ".cache/sealgate/kube-apiserver-1.20.2/kube-apiserver";
/// The command that builds kube-apiserver and installs etcd and kubectl.
const BUILD_COMMAND: &str = "./scripts/build-kube-apiserver";
/// Debian's etcd (package etcd-server).
const ETCD_BINARY: &str = "/usr/bin/etcd";
/// The kubectl every command runs.
pub const KUBECTL_BINARY: &str = "/usr/bin/kubectl";
/// How long etcd and the API server together may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a start is retried when another process took one of the ports first.
const PORT_ATTEMPTS: u32 = 3;
/// How many lines of the API server's log a panic shows.
const LOG_TAIL_LINES: usize = 50;
/// The feature gate that lets Pods be admitted without a token controller (see the crate docs).
const FEATURE_GATES: &str = "BoundServiceAccountTokenVolume=true";

/// A running etcd and kube-apiserver, stopped on drop.
#[derive(Debug)]
pub struct TestCluster {
    // Fields drop in this order: the API server first (so that it does not log a minute of
    // etcd reconnection attempts), then etcd, then the directory.
    _apiserver: Process,
    _etcd: Process,
    port: u16,
    token: String,
    ca_pem: Vec<u8>,
    kubeconfig: PathBuf,
    /// Holds the configuration, keys, certificates, etcd's data and both logs.
    dir: tempfile::TempDir,
}

/// A child process that is killed and reaped when dropped, also when a start fails half-way.
#[derive(Debug)]
struct Process(Child);

impl Process {
    /// The exit status if the process has exited.
    fn exited(&mut self, name: &str) -> Option<ExitStatus> {
        self.0
            .try_wait()
            .unwrap_or_else(|e| panic!("cannot wait for {name}: {e}"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // It may have exited already; either way, reap it.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a `kubectl` run returned.
#[derive(Debug, Clone)]
pub struct Kubectl {
    /// kubectl's exit status.
    pub status: ExitStatus,
    /// Its standard output, lossily decoded.
    pub stdout: String,
    /// Its standard error, lossily decoded.
    pub stderr: String,
}

impl Kubectl {
    /// Whether kubectl exited with status 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Why one start attempt failed.
enum StartError {
    /// Another process took a port between [`free_port`] and the bind: try other ports.
    PortClash,
    /// Anything else: the message for the panic.
    Failed(String),
}

impl TestCluster {
    /// Starts etcd and kube-apiserver on free loopback ports in a fresh temporary directory,
    /// waits until `GET /readyz` answers `ok` (60 s at most), then creates the `default`
    /// ServiceAccount in namespace `default`. Panics, with the end of the API server's log, when
    /// a binary is missing or the cluster does not become ready.
    pub fn start() -> TestCluster {
        let apiserver_binary = apiserver_binary();
        for (binary, package) in [(ETCD_BINARY, "etcd-server"), (KUBECTL_BINARY, "kubectl")] {
            if !Path::new(binary).is_file() {
                panic!(
                    "{binary} is not installed ({package}); {BUILD_COMMAND} installs it with \
                     apt-get (it also builds kube-apiserver)"
                );
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("sealgate-test-cluster-")
            .tempdir()
            .expect("cannot create a temporary directory for the test cluster");
        let token = random_hex(16);
        write_file(
            &dir.path().join("tokens.csv"),
            format!("{token},admin,admin,system:masters\n").as_bytes(),
        );
        generate_service_account_key(&dir.path().join("service-account.key"));

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut attempt = 1;
        loop {
            match start_processes(dir.path(), &apiserver_binary, &token, deadline) {
                Ok((etcd, apiserver, port, ca_pem)) => {
                    let cluster = TestCluster {
                        kubeconfig: dir.path().join("kubeconfig"),
                        dir,
                        port,
                        token,
                        ca_pem,
                        _apiserver: apiserver,
                        _etcd: etcd,
                    };
                    cluster.create_default_service_account(deadline);
                    return cluster;
                }
                Err(StartError::PortClash) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(StartError::PortClash) => panic!(
                    "etcd or kube-apiserver found its port taken {PORT_ATTEMPTS} times in a row; \
                     the end of the API server's log:\n{}",
                    log_tail(&dir.path().join("apiserver.log"))
                ),
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// A kubeconfig whose current context reaches this cluster as `admin`: the CA is
    /// [`TestCluster::ca_pem`] (no `insecure-skip-tls-verify`), the user [`TestCluster::token`].
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The PEM certificates the API server's serving certificate verifies against: its leaf for
    /// IP 127.0.0.1 (not `localhost`) and the self-signed CA that issued it, as kube-apiserver
    /// wrote them to `apiserver.crt` in its `--cert-dir`.
    pub fn ca_pem(&self) -> &[u8] {
        &self.ca_pem
    }

    /// The bearer token of user `admin` (group `system:masters`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The directory with the configuration, certificates, etcd's data and both logs
    /// (`apiserver.log`, `etcd.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `kubectl --kubeconfig KUBECONFIG ARGS…` and returns what it did.
    pub fn kubectl(&self, args: &[&str]) -> Kubectl {
        self.run_kubectl(args, None)
    }

    /// Like [`TestCluster::kubectl`], with `stdin` on kubectl's standard input, e.g.
    /// `kubectl_stdin(&["apply", "-f", "-"], MANIFEST)`.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Kubectl {
        self.run_kubectl(args, Some(stdin))
    }

    /// Runs kubectl and returns its standard output; panics with the command, its standard
    /// error and the end of the API server's log when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        if !output.success() {
            panic!(
                "`kubectl {}` failed ({}):\n{}\n{}\nthe end of the API server's log:\n{}",
                args.join(" "),
                output.status,
                output.stderr.trim_end(),
                output.stdout.trim_end(),
                log_tail(&self.dir.path().join("apiserver.log"))
            );
        }
        output.stdout
    }

    /// The API server's log so far (its standard error and output).
    pub fn apiserver_log(&self) -> String {
        read_lossy(&self.dir.path().join("apiserver.log"))
    }

    fn run_kubectl(&self, args: &[&str], stdin: Option<&str>) -> Kubectl {
        run_kubectl(&self.kubeconfig, args, stdin)
    }

    /// Nothing else creates ServiceAccounts (there is no controller-manager). The API server
    /// creates namespace `default` itself, shortly after it is ready: retry until it has.
    fn create_default_service_account(&self, deadline: Instant) {
        let args = [
            "create",
            "serviceaccount",
            "default",
            "--namespace",
            "default",
        ];
        loop {
            let output = self.kubectl(&args);
            if output.success() || output.stderr.contains("AlreadyExists") {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "`kubectl {}` kept failing: {}\nthe end of the API server's log:\n{}",
                    args.join(" "),
                    output.stderr.trim_end(),
                    log_tail(&self.dir.path().join("apiserver.log"))
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `$SEALGATE_KUBE_APISERVER`, else where `./scripts/build-kube-apiserver` puts it. Panics with
/// the build command when it is not there.
fn apiserver_binary() -> PathBuf {
    let path = match std::env::var_os(KUBE_APISERVER_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| {
                panic!(
                    "HOME is not set, so kube-apiserver cannot be found; set {KUBE_APISERVER_ENV}"
                )
            });
            Path::new(&home).join(KUBE_APISERVER_HOME_PATH)
        }
    };
    if !path.is_file() {
        panic!(
            "kube-apiserver is not built: {} does not exist; run {BUILD_COMMAND} (or set \
             {KUBE_APISERVER_ENV} to a kube-apiserver binary)",
            path.display()
        );
    }
    path
}

/// One attempt: etcd and the API server on fresh ports. On success, the processes, the API
/// server's port and its certificates (the kubeconfig is written).
fn start_processes(
    dir: &Path,
    apiserver_binary: &Path,
    token: &str,
    deadline: Instant,
) -> Result<(Process, Process, u16, Vec<u8>), StartError> {
    let etcd_port = free_port();
    let peer_port = distinct_free_port(&[etcd_port]);
    let api_port = distinct_free_port(&[etcd_port, peer_port]);
    let etcd_log = dir.join("etcd.log");
    let apiserver_log = dir.join("apiserver.log");
    let data_dir = dir.join("etcd");
    let cert_dir = dir.join("certs");
    // A previous attempt's leftovers: a fresh etcd member and fresh certificates for this port.
    let _ = fs::remove_dir_all(&data_dir);
    let _ = fs::remove_dir_all(&cert_dir);

    let client_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut etcd = spawn(
        Command::new(ETCD_BINARY)
            .arg("--name=sealgate")
            .arg(arg("--data-dir=", &data_dir))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=sealgate={peer_url}")),
        &etcd_log,
    );
    let etcd_addr = SocketAddr::from(([127, 0, 0, 1], etcd_port));
    loop {
        if let Some(status) = etcd.exited("etcd") {
            return Err(exited("etcd", status, &etcd_log));
        }
        if TcpStream::connect_timeout(&etcd_addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(StartError::Failed(format!(
                "etcd did not listen on {client_url} within {}s; its log:\n{}",
                READY_TIMEOUT.as_secs(),
                log_tail(&etcd_log)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let service_account_key = dir.join("service-account.key");
    let mut apiserver = spawn(
        Command::new(apiserver_binary)
            .arg(format!("--etcd-servers={client_url}"))
            .arg(format!("--secure-port={api_port}"))
            // 1.20 still serves plain HTTP on 127.0.0.1:8080 unless told not to, and two
            // clusters cannot share that.
            .arg("--insecure-port=0")
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg(arg("--cert-dir=", &cert_dir))
            .arg(arg("--token-auth-file=", &dir.join("tokens.csv")))
            .arg("--authorization-mode=RBAC")
            .arg("--service-account-issuer=https://kubernetes.default.svc.cluster.local")
            .arg(arg("--service-account-key-file=", &service_account_key))
            .arg(arg(
                "--service-account-signing-key-file=",
                &service_account_key,
            ))
            .arg("--service-cluster-ip-range=10.96.0.0/24")
            // The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse:
            // without this, the log repeats that error every 10 s.
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--feature-gates={FEATURE_GATES}")),
        &apiserver_log,
    );

    let kubeconfig = dir.join("kubeconfig");
    let _ = fs::remove_file(&kubeconfig);
    let api_addr = SocketAddr::from(([127, 0, 0, 1], api_port));
    let mut ca_pem = None;
    let mut last_answer = String::new();
    loop {
        if let Some(status) = apiserver.exited("kube-apiserver") {
            return Err(exited("kube-apiserver", status, &apiserver_log));
        }
        if let Some(status) = etcd.exited("etcd") {
            return Err(exited("etcd", status, &etcd_log));
        }
        // The API server writes its certificate, then its key, before it listens.
        if ca_pem.is_none() && cert_dir.join("apiserver.key").is_file() {
            let pem = fs::read(cert_dir.join("apiserver.crt")).unwrap_or_else(|e| {
                panic!(
                    "cannot read {}: {e}",
                    cert_dir.join("apiserver.crt").display()
                )
            });
            write_kubeconfig(&kubeconfig, api_port, &pem, token);
            ca_pem = Some(pem);
        }
        if let Some(pem) = &ca_pem
            && TcpStream::connect_timeout(&api_addr, Duration::from_millis(200)).is_ok()
        {
            let readyz = run_kubectl(&kubeconfig, &["get", "--raw", "/readyz"], None);
            if readyz.success() && readyz.stdout.trim() == "ok" {
                return Ok((etcd, apiserver, api_port, pem.clone()));
            }
            last_answer = format!("{}{}", readyz.stdout, readyz.stderr);
        }
        if Instant::now() >= deadline {
            return Err(StartError::Failed(format!(
                "kube-apiserver was not ready on https://127.0.0.1:{api_port} within {}s \
                 (last /readyz answer: {}); the last {LOG_TAIL_LINES} lines of its log:\n{}",
                READY_TIMEOUT.as_secs(),
                last_answer.trim_end(),
                log_tail(&apiserver_log)
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A process that exited during start: a port clash, or a failure with its log.
fn exited(name: &str, status: ExitStatus, log: &Path) -> StartError {
    let text = read_lossy(log);
    if text.contains("address already in use") {
        return StartError::PortClash;
    }
    StartError::Failed(format!(
        "{name} exited with {status} while starting; the last {LOG_TAIL_LINES} lines of its log \
         ({}):\n{}",
        log.display(),
        tail(&text)
    ))
}

fn run_kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Kubectl {
    let mut command = Command::new(KUBECTL_BINARY);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let describe = || format!("kubectl {}", args.join(" "));
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", describe()));
    let output = std::thread::scope(|scope| {
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A thread, so that a large input cannot deadlock against a full output pipe.
            scope.spawn(move || {
                // kubectl may exit without reading everything (bad flags): its status says why.
                let _ = pipe.write_all(input.as_bytes());
            });
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("cannot wait for `{}`: {e}", describe()))
    });
    Kubectl {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A kubeconfig for `https://127.0.0.1:PORT` that trusts `ca_pem` and sends `token`.
fn write_kubeconfig(path: &Path, port: u16, ca_pem: &[u8], token: &str) {
    let ca_data = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sealgate-test
  cluster:
    server: https://127.0.0.1:{port}
    certificate-authority-data: {ca_data}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: sealgate-test
  context:
    cluster: sealgate-test
    user: admin
    namespace: default
current-context: sealgate-test
preferences: {{}}
"
    );
    write_file(path, config.as_bytes());
}

/// An RSA key pair for service-account tokens: the API server signs with the private key and
/// reads the public key from the same file.
fn generate_service_account_key(path: &Path) {
    let output = Command::new("openssl")
        .arg("genrsa")
        .arg("-out")
        .arg(path)
        .arg("2048")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `openssl genrsa` (is openssl installed?): {e}"));
    if !output.status.success() {
        panic!(
            "`openssl genrsa -out {} 2048` failed ({}): {}",
            path.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn spawn(command: &mut Command, log: &Path) -> Process {
    let log_file =
        File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
    let stderr = log_file
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", command.get_program().display()));
    Process(child)
}

/// `flag` followed by `path`, as one argument.
fn arg(flag: &str, path: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from(flag);
    arg.push(path);
    arg
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    listener
        .local_addr()
        .expect("a bound socket has an address")
        .port()
}

/// A free port that is none of `taken` (the listeners of [`free_port`] are closed at once, so
/// the kernel may hand out the same port twice).
fn distinct_free_port(taken: &[u16]) -> u16 {
    loop {
        let port = free_port();
        if !taken.contains(&port) {
            return port;
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut buf))
        .expect("cannot read /dev/urandom");
    buf.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

fn write_file(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

fn log_tail(path: &Path) -> String {
    tail(&read_lossy(path))
}

/// The last [`LOG_TAIL_LINES`] lines of `text`.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
