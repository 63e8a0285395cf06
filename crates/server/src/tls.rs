//! TLS for the webhook: a rustls `ServerConfig` (ring provider, set explicitly) whose certificate
//! is reloaded from its files while the server runs, and a self-signed CA for running without
//! any certificate of one's own.
//!
//! - [`CertResolver`] answers every handshake with the certificate loaded last. A poll task
//!   ([`CertResolver::watch`]) looks at the files' size and modification time every second and
//!   swaps in the new pair once it loads and the key matches the certificate; until then, and
//!   whenever a rewrite is half done or broken, handshakes keep getting the previous pair. So a
//!   rotation never fails a request.
//! - [`SelfSigned::ensure`] makes (once) a CA and a server certificate for `localhost`, `127.0.0.1` and
//!   the listen host in `DATA_DIR/tls/`, reuses them while they are valid for those names, and
//!   renews the server certificate from the same CA 30 days before it expires, so the CA a client
//!   was given stays valid.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::metrics::Metrics;

/// The self-signed files' directory inside the data directory.
pub const SELF_SIGNED_DIR: &str = "tls";
/// The CA certificate clients trust (`caBundle`, `--cacert`).
pub const CA_CERT_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
const CERT_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key";
/// The generated CA's common name.
pub const CA_COMMON_NAME: &str = "sealgate webhook CA";
/// Validity of the generated CA.
const CA_DAYS: i64 = 3650;
/// Validity of the generated server certificate.
const SERVER_DAYS: i64 = 365;
/// A generated certificate is renewed when it has less than this left.
const RENEW_BEFORE: i64 = 30 * 86_400;
/// How long after a renewal attempt the next one may be made.
const RENEW_RETRY: Duration = Duration::from_secs(600);

/// Why TLS could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("reading {}: {detail}; check the file given with --tls-cert or --tls-key", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {detail}", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The key file holds no usable private key.
    #[error(
        "{} holds no usable private key (PKCS#8, SEC1 or PKCS#1 PEM): {detail}",
        path.display()
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The key does not belong to the certificate.
    #[error(
        "the key {} does not belong to the certificate {} ({detail}); pass the key issued with that certificate",
        key.display(),
        cert.display()
    )]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
    /// A file could not be written.
    #[error("writing {}: {detail}; check that --data-dir is writable", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// Generating a certificate failed.
    #[error("generating the self-signed certificate failed: {detail}")]
    Generate {
        /// What rcgen said.
        detail: String,
    },
    /// A certificate or key held in memory (e.g. a Kubernetes Secret) does not load.
    #[error("{origin}: {detail}")]
    Pem {
        /// Where the PEM came from, e.g. `Secret sealgate/sealgate-tls, key tls.crt`.
        origin: String,
        /// What is wrong with it.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("setting up TLS failed: {detail}")]
    Config {
        /// What rustls said.
        detail: String,
    },
}

/// A certificate file and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The crypto provider for every TLS config sealgate builds: ring, always, whatever else is
/// linked into the process.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A loaded certificate and when it expires.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The chain and key for rustls.
    pub key: Arc<CertifiedKey>,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
}

/// Reads and checks a certificate chain and its key.
pub fn load(files: &CertFiles) -> Result<Loaded, TlsError> {
    let read = |path: &Path, kind| {
        sealgate_files::read_bounded(path, kind).map_err(|e| TlsError::Read {
            path: path.to_path_buf(),
            detail: e.reason(),
        })
    };
    let cert_pem = read(&files.cert, sealgate_files::CERTIFICATE_FILE)?;
    let key_pem = read(&files.key, sealgate_files::KEY_FILE)?;
    parse_pair(&cert_pem, &key_pem).map_err(|e| match e {
        PairError::NoCertificate(detail) => TlsError::NoCertificate {
            path: files.cert.clone(),
            detail,
        },
        PairError::Key(detail) => TlsError::Key {
            path: files.key.clone(),
            detail,
        },
        PairError::Mismatch(detail) => TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
            detail,
        },
    })
}

/// Checks a PEM certificate chain and its key held in memory; `origin` says where they came
/// from in errors (e.g. `Secret sealgate/sealgate-tls`).
pub fn load_pem(cert_pem: &[u8], key_pem: &[u8], origin: &str) -> Result<Loaded, TlsError> {
    parse_pair(cert_pem, key_pem).map_err(|e| TlsError::Pem {
        origin: origin.to_string(),
        detail: match e {
            PairError::NoCertificate(d) => format!("tls.crt holds no PEM certificate: {d}"),
            PairError::Key(d) => format!("tls.key holds no usable private key: {d}"),
            PairError::Mismatch(d) => {
                format!("the key tls.key does not belong to the certificate tls.crt ({d})")
            }
        },
    })
}

/// Why a certificate and key did not load, before it is said where they came from.
enum PairError {
    NoCertificate(String),
    Key(String),
    Mismatch(String),
}

fn parse_pair(cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, PairError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PairError::NoCertificate(e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(PairError::NoCertificate("it is empty".into()));
    };
    let not_after = leaf_info(leaf.as_ref())
        .map(|i| i.not_after)
        .map_err(PairError::NoCertificate)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| PairError::Key(e.to_string()))?;
    let certified = CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| PairError::Mismatch(e.to_string()))?;
    Ok(Loaded {
        key: Arc::new(certified),
        not_after,
    })
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    /// `-----BEGIN CERTIFICATE-----` …
    pub cert: String,
    /// `-----BEGIN PRIVATE KEY-----` …
    pub key: String,
}

impl std::fmt::Debug for PemPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert", &self.cert)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Subject common name.
    pub subject: String,
    /// Issuer common name.
    pub issuer: String,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// DNS names and IP addresses (as text) it is valid for.
    pub names: Vec<String>,
}

/// The facts of every certificate in `pem`, in order.
pub fn certificate_facts(pem: &str) -> Result<Vec<CertificateFacts>, String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let mut out = Vec::new();
    for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let der = der.map_err(|e| e.to_string())?;
        let info = leaf_info(der.as_ref())?;
        let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| e.to_string())?;
        let cn = |name: &x509_parser::x509::X509Name<'_>| {
            name.iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        out.push(CertificateFacts {
            subject: cn(cert.subject()),
            issuer: cn(cert.issuer()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: info.not_after,
            names: info.names,
        });
    }
    if out.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(out)
}

/// Makes a CA named `common_name`, valid from `not_before` to `not_after` (Unix seconds, to
/// the second).
pub fn make_ca(common_name: &str, not_before: i64, not_after: i64) -> Result<PemPair, TlsError> {
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = ca_params_named(common_name)?;
    exact_validity(&mut params, not_before, not_after)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Makes a serving certificate for `names` issued by `ca` (made by [`make_ca`]), valid from
/// `not_before` to `not_after` (Unix seconds).
pub fn make_serving(
    ca: &PemPair,
    names: &[String],
    not_before: i64,
    not_after: i64,
) -> Result<PemPair, TlsError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(generate)?;
    let ca_name = certificate_facts(&ca.cert)
        .map_err(|detail| TlsError::Generate { detail })?
        .remove(0)
        .subject;
    let issuer = Issuer::new(ca_params_named(&ca_name)?, ca_key);
    let mut params = serving_params(names)?;
    exact_validity(&mut params, not_before, not_after)?;
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;
    Ok(PemPair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// Sets a validity period from `from` to `to`, Unix seconds, to the second.
fn exact_validity(params: &mut CertificateParams, from: i64, to: i64) -> Result<(), TlsError> {
    let since_epoch = |secs: i64| {
        u64::try_from(secs)
            .map(Duration::from_secs)
            .map_err(|_| TlsError::Generate {
                detail: format!("cannot represent the time {secs}"),
            })
    };
    params.not_before = date_time_ymd(1970, 1, 1) + since_epoch(from)?;
    params.not_after = date_time_ymd(1970, 1, 1) + since_epoch(to)?;
    Ok(())
}

/// What matters of a leaf certificate.
#[derive(Debug, Clone)]
struct LeafInfo {
    not_after: i64,
    /// DNS names and IP addresses (as text) it is valid for.
    names: Vec<String>,
}

fn leaf_info(der: &[u8]) -> Result<LeafInfo, String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => {
                        names.push(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string())
                    }
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        names.push(std::net::Ipv6Addr::from(b).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok(LeafInfo {
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

/// Modification time and size of a file: what changes when it is rewritten.
type Stamp = Option<(Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok(), meta.len()))
}

/// Serves the certificate loaded last: reloaded from its files when they change, or set by its
/// owner ([`CertResolver::set`], e.g. from a Kubernetes Secret).
#[derive(Debug)]
pub struct CertResolver {
    /// The files polled; `None`: the owner sets each certificate.
    files: Option<CertFiles>,
    current: RwLock<Loaded>,
    /// The stamps of the files as last loaded, or last found unloadable.
    seen: Mutex<(Stamp, Stamp)>,
    metrics: Metrics,
}

impl CertResolver {
    /// Loads `files` (an error if they do not load: the server cannot start without them).
    pub fn new(files: CertFiles, metrics: Metrics) -> Result<CertResolver, TlsError> {
        let seen = (stamp(&files.cert), stamp(&files.key));
        let loaded = load(&files)?;
        metrics.set_certificate_not_after(loaded.not_after);
        Ok(CertResolver {
            files: Some(files),
            current: RwLock::new(loaded),
            seen: Mutex::new(seen),
            metrics,
        })
    }

    /// Serves `loaded` until [`CertResolver::set`] replaces it; no files are polled.
    pub fn from_loaded(loaded: Loaded, metrics: Metrics) -> CertResolver {
        metrics.set_certificate_not_after(loaded.not_after);
        CertResolver {
            files: None,
            current: RwLock::new(loaded),
            seen: Mutex::new((None, None)),
            metrics,
        }
    }

    /// Serves `loaded` from the next handshake on.
    pub fn set(&self, loaded: Loaded) {
        self.metrics.set_certificate_not_after(loaded.not_after);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
    }

    /// The leaf's notAfter of the certificate served now.
    pub fn not_after(&self) -> i64 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .not_after
    }

    /// Reloads the files if they changed since they were last looked at. Returns whether a new
    /// certificate is now served.
    pub fn reload_if_changed(&self) -> bool {
        let Some(files) = &self.files else {
            return false;
        };
        let now = (stamp(&files.cert), stamp(&files.key));
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(files) {
            Ok(loaded) => {
                let not_after = loaded.not_after;
                self.set(loaded);
                tracing::info!(
                    cert = %files.cert.display(),
                    not_after = %sealgate_core::timestamp::format_rfc3339(not_after),
                    "serving certificate reloaded"
                );
                true
            }
            Err(e) => {
                // Often a rotation caught half way (certificate written, key not yet); the next
                // change of either file is tried again.
                tracing::warn!(
                    error = %e,
                    "certificate files changed but do not load; still serving the previous certificate"
                );
                false
            }
        }
    }

    /// Polls the files every `every` until `stop` resolves; with `renew`, also renews a
    /// self-signed certificate that is about to expire. Without files, waits for `stop`.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        renew: Option<SelfSigned>,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        if self.files.is_none() {
            return stop.await;
        }
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_renewal: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {
                    let due = last_renewal.is_none_or(|t| t.elapsed() >= RENEW_RETRY);
                    if let Some(renew) = &renew
                        && due
                        && self.not_after() - unix_now() < RENEW_BEFORE
                    {
                        last_renewal = Some(tokio::time::Instant::now());
                        match renew.ensure() {
                            Ok(what) => tracing::info!(action = what, "self-signed certificate"),
                            Err(e) => tracing::error!(
                                error = %e,
                                "renewing the self-signed certificate failed; retrying in 10 minutes"
                            ),
                        }
                    }
                    self.reload_if_changed();
                }
            }
        }
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .key,
        ))
    }
}

/// A rustls server config answering with `resolver`'s certificate, HTTP/2 and HTTP/1.1.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config {
            detail: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The self-signed CA and server certificate in a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// `DATA_DIR/tls`.
    pub dir: PathBuf,
    /// The names the server certificate must be valid for.
    pub names: Vec<String>,
}

impl SelfSigned {
    /// The self-signed files for a server listening on `listen_host`, in `data_dir`, valid also
    /// for `extra_names` (`--tls-san`: the Service DNS name the API server calls, e.g.
    /// `sealgate.sealgate.svc`).
    pub fn new(data_dir: &Path, listen_host: &str, extra_names: &[String]) -> SelfSigned {
        let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let host = listen_host.trim_start_matches('[').trim_end_matches(']');
        let unspecified = host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified());
        if !host.is_empty() && !unspecified && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
        for name in extra_names {
            let name = name.trim();
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        SelfSigned {
            dir: data_dir.join(SELF_SIGNED_DIR),
            names,
        }
    }

    /// The CA certificate clients should trust.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// The server certificate and key.
    pub fn files(&self) -> CertFiles {
        CertFiles {
            cert: self.dir.join(CERT_FILE),
            key: self.dir.join(KEY_FILE),
        }
    }

    /// Makes sure a valid CA and server certificate for [`SelfSigned::names`] exist: reuses them,
    /// renews the server certificate from the existing CA, or makes both. Returns what it did.
    pub fn ensure(&self) -> Result<&'static str, TlsError> {
        let now = unix_now();
        let ca_key = self.read_ca();
        let ca_ok = ca_key.is_some();
        if ca_ok && self.server_cert_ok(now) {
            return Ok("reused");
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| TlsError::Write {
            path: self.dir.clone(),
            detail: e.to_string(),
        })?;
        let ca_key = match ca_key {
            Some(k) => k,
            None => {
                let key = KeyPair::generate().map_err(generate)?;
                let ca = ca_params(now)?.self_signed(&key).map_err(generate)?;
                write(&self.dir.join(CA_KEY_FILE), &key.serialize_pem(), true)?;
                write(&self.ca_path(), &ca.pem(), false)?;
                key
            }
        };
        let issuer = Issuer::new(ca_params(now)?, ca_key);
        let mut params = serving_params(&self.names)?;
        validity(&mut params, now - 86_400, now + SERVER_DAYS * 86_400)?;
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &issuer).map_err(generate)?;
        // Key first: a watcher that sees only the certificate changed waits for a matching key.
        let files = self.files();
        write_atomically(&files.key, &key.serialize_pem(), true)?;
        write_atomically(&files.cert, &cert.pem(), false)?;
        Ok(if ca_ok { "renewed" } else { "created" })
    }

    /// The CA key, when the CA certificate and key exist, belong together and the CA is valid
    /// for longer than a server certificate will be.
    fn read_ca(&self) -> Option<KeyPair> {
        let cert = std::fs::read(self.ca_path()).ok()?;
        let key = std::fs::read_to_string(self.dir.join(CA_KEY_FILE)).ok()?;
        let key = KeyPair::from_pem(&key).ok()?;
        let der = CertificateDer::from_pem_slice(&cert).ok()?;
        let info = leaf_info(der.as_ref()).ok()?;
        let (_, parsed) = {
            use x509_parser::prelude::{FromDer, X509Certificate};
            X509Certificate::from_der(der.as_ref()).ok()?
        };
        let same_key = parsed.public_key().subject_public_key.data.as_ref() == key.public_key_raw();
        // The CA must outlive the server certificates it is about to issue.
        (same_key && info.not_after - unix_now() > RENEW_BEFORE + SERVER_DAYS * 86_400)
            .then_some(key)
    }

    fn server_cert_ok(&self, now: i64) -> bool {
        let files = self.files();
        let Ok(loaded) = load(&files) else {
            return false;
        };
        let Some(leaf) = loaded.key.cert.first() else {
            return false;
        };
        let Ok(info) = leaf_info(leaf.as_ref()) else {
            return false;
        };
        loaded.not_after - now > RENEW_BEFORE && self.names.iter().all(|n| info.names.contains(n))
    }
}

fn ca_params(now: i64) -> Result<CertificateParams, TlsError> {
    let mut params = ca_params_named(CA_COMMON_NAME)?;
    validity(&mut params, now - 86_400, now + CA_DAYS * 86_400)?;
    Ok(params)
}

/// A CA that issues server certificates only (path length 0).
fn ca_params_named(common_name: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(generate)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// A TLS server certificate for `names`.
fn serving_params(names: &[String]) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(names.to_vec()).map_err(generate)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "sealgate webhook");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn generate(e: rcgen::Error) -> TlsError {
    TlsError::Generate {
        detail: e.to_string(),
    }
}

/// The UTC (year, month, day) of Unix time `secs`, for rcgen's `date_time_ymd`.
fn ymd(secs: i64) -> Result<(i32, u8, u8), TlsError> {
    let text = sealgate_core::timestamp::format_rfc3339(secs);
    let bad = || TlsError::Generate {
        detail: format!("cannot represent the date {text}"),
    };
    let y: i32 = text
        .get(0..4)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let m: u8 = text
        .get(5..7)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let d: u8 = text
        .get(8..10)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((y, m, d))
}

/// Sets a validity period of whole UTC days around `from` and `to`.
fn validity(params: &mut CertificateParams, from: i64, to: i64) -> Result<(), TlsError> {
    let (y, m, d) = ymd(from)?;
    params.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = ymd(to)?;
    params.not_after = date_time_ymd(y, m, d);
    Ok(())
}

fn write(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let err = |e: std::io::Error| TlsError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let mut file = options.open(path).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)
}

/// Writes `path` through a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, text: &str, secret: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    write(&tmp, text, secret)?;
    std::fs::rename(&tmp, path).map_err(|e| TlsError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn unix_now() -> i64 {
    use sealgate_core::timestamp::Clock as _;
    sealgate_core::timestamp::unix_seconds(sealgate_registry::driver::SystemClock.now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_signed_ca_is_made_once_and_a_new_listen_host_renews_only_the_server_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ss = SelfSigned::new(dir.path(), "0.0.0.0", &[]);
        assert_eq!(ss.names, ["localhost", "127.0.0.1"], "0.0.0.0 is no name");
        assert_eq!(ss.ensure().unwrap(), "created");
        assert_eq!(ss.ensure().unwrap(), "reused");
        let ca = std::fs::read(ss.ca_path()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(ss.files().key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let other = SelfSigned::new(dir.path(), "webhook.example.internal", &[]);
        assert_eq!(other.ensure().unwrap(), "renewed");
        assert_eq!(
            std::fs::read(other.ca_path()).unwrap(),
            ca,
            "the CA is kept"
        );
        let loaded = load(&other.files()).unwrap();
        let info = leaf_info(loaded.key.cert[0].as_ref()).unwrap();
        assert!(info.names.contains(&"webhook.example.internal".to_string()));
        assert!(info.names.contains(&"127.0.0.1".to_string()));
        let days = (loaded.not_after - unix_now()) / 86_400;
        assert!((360..=366).contains(&days), "{days}");

        // --tls-san: the Service name the API server calls is added, the CA still kept.
        let service = SelfSigned::new(
            dir.path(),
            "0.0.0.0",
            &["sealgate.sealgate.svc".to_string(), "localhost".to_string()],
        );
        assert_eq!(
            service.names,
            ["localhost", "127.0.0.1", "sealgate.sealgate.svc"]
        );
        assert_eq!(service.ensure().unwrap(), "renewed");
        assert_eq!(std::fs::read(service.ca_path()).unwrap(), ca);
        let loaded = load(&service.files()).unwrap();
        let info = leaf_info(loaded.key.cert[0].as_ref()).unwrap();
        assert!(info.names.contains(&"sealgate.sealgate.svc".to_string()));
        assert_eq!(service.ensure().unwrap(), "reused");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = SelfSigned::new(&dir.path().join("a"), "localhost", &[]);
        let b = SelfSigned::new(&dir.path().join("b"), "localhost", &[]);
        a.ensure().unwrap();
        b.ensure().unwrap();
        let files = CertFiles {
            cert: a.files().cert,
            key: b.files().key,
        };
        let e = load(&files).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "the key {} does not belong to the certificate {}",
                files.key.display(),
                files.cert.display()
            )),
            "{e}"
        );
        let missing = CertFiles {
            cert: dir.path().join("nope.crt"),
            key: files.key,
        };
        let e = load(&missing).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("reading {}", missing.cert.display())),
            "{e}"
        );
    }
}
