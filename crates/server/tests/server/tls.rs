//! The server over real HTTPS: the self-signed CA (made once, then reused), two certificate
//! rotations under load (health checks and AdmissionReviews) without a failed request, and
//! graceful shutdown that finishes the request in flight and flushes the audit trail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use sealgate_registry::{Client, RegistryOptions};
use sealgate_server::audit::{AUDIT_DB_FILE, AuditFilter, query_async};
use sealgate_server::config::VerifyConfig;
use sealgate_server::{ServeConfig, Server, TlsSource};
use serde_json::Value;

use crate::common::*;

fn config(policies: &Path, data: &Path, tls: TlsSource) -> ServeConfig {
    let mut config = ServeConfig::new(
        policies.to_path_buf(),
        Client::new(RegistryOptions::default()).unwrap(),
    );
    config.listen = "127.0.0.1:0".into();
    config.data_dir = data.to_path_buf();
    config.tls = tls;
    config.cert_poll = Duration::from_millis(100);
    config
}

/// Starts `server`; returns its base URL, the shutdown trigger and the serving task.
fn start(
    server: Server,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), sealgate_server::ServeError>>,
) {
    let url = format!("https://localhost:{}", server.local_addr().port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async {
        let _ = stopped.await;
    }));
    (url, stop, task)
}

/// A client trusting `ca_pem` only, opening a new connection per request. (TLS sessions are
/// still resumed, without a certificate: use a fresh client to see the one served now.)
fn client(ca_pem: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem).unwrap())
        .pool_max_idle_per_host(0)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_mode_serves_https_with_a_ca_made_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (policies, data) = (dir.path().join("policies"), dir.path().join("data"));
    std::fs::create_dir(&policies).unwrap();

    let server = Server::bind(config(&policies, &data, TlsSource::SelfSigned))
        .await
        .unwrap();
    let ca_path = server.ca_path().unwrap();
    assert!(ca_path.is_absolute(), "{}", ca_path.display());
    assert_eq!(ca_path, data.canonicalize().unwrap().join("tls/ca.pem"));
    let ca = std::fs::read(&ca_path).unwrap();
    let (url, stop, task) = start(server);
    let http = client(&ca);
    for path in ["/healthz", "/readyz"] {
        let response = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let ip_url = url.replace("localhost", "127.0.0.1");
    let response = http.get(format!("{ip_url}/metrics")).send().await.unwrap();
    let metrics = response.text().await.unwrap();
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sealgate_certificate_expiry_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(expiry > 300.0 * 86_400.0, "{expiry}");
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();

    // A restart reuses the CA: clients configured with it keep working.
    let server = Server::bind(config(&policies, &data, TlsSource::SelfSigned))
        .await
        .unwrap();
    assert_eq!(std::fs::read(server.ca_path().unwrap()).unwrap(), ca);
    let (url, stop, task) = start(server);
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// A CA and a way to issue server certificates for localhost from it.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "rotation test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// (certificate PEM, key PEM, certificate DER).
    fn issue(&self, name: &str) -> (String, String, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

fn peer_certificate(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

/// Writes a new certificate and key in place, certificate first (for a moment the files do not
/// match), and waits until a fresh client is served the new certificate.
async fn rotate(pki: &Pki, name: &str, cert_file: &Path, key_file: &Path, url: &str) -> Vec<u8> {
    let (cert, key, der) = pki.issue(name);
    std::fs::write(cert_file, &cert).unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    std::fs::write(key_file, &key).unwrap();
    let start = Instant::now();
    loop {
        let fresh = client(pki.ca.pem().as_bytes());
        let response = fresh.get(format!("{url}/healthz")).send().await.unwrap();
        if peer_certificate(&response) == der {
            return der;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the {name} certificate is served within 5s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request of a load loop: `GET /healthz` or an AdmissionReview on `POST /validate`
/// (no policy covers it: allowed), answered correctly or counted as a failure.
async fn load_request(http: &reqwest::Client, url: &str, n: usize) -> Result<(), String> {
    if n.is_multiple_of(2) {
        let response = http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        return match response.status().as_u16() {
            200 => Ok(()),
            status => Err(format!("GET /healthz: status {status}")),
        };
    }
    let review = review("pod-create", "registry.example/app:v1");
    let response = http
        .post(format!("{url}/validate"))
        .body(review.to_string())
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    if response.status() != 200 {
        return Err(format!("POST /validate: status {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| format!("{e:?}"))?;
    let answer: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    match answer["response"]["allowed"].as_bool() {
        Some(true) => Ok(()),
        _ => Err(format!("POST /validate: {answer}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_certificate_files_twice_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let (policies, data) = (dir.path().join("policies"), dir.path().join("data"));
    std::fs::create_dir(&policies).unwrap();
    let pki = Pki::new();
    let (cert_a, key_a, der_a) = pki.issue("first");
    let (cert_file, key_file): (PathBuf, PathBuf) =
        (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &cert_a).unwrap();
    std::fs::write(&key_file, &key_a).unwrap();
    let tls = TlsSource::Files {
        cert: cert_file.clone(),
        key: key_file.clone(),
    };
    let server = Server::bind(config(&policies, &data, tls)).await.unwrap();
    assert!(server.ca_path().is_none());
    let (url, stop, task) = start(server);
    let http = client(pki.ca.pem().as_bytes());

    let response = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(peer_certificate(&response), der_a);

    // Clients hammer the server while the files change twice: health checks and
    // AdmissionReviews, half the loops resuming TLS sessions, half with a full handshake each
    // time.
    const LOOPS: usize = 6;
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut loops = Vec::new();
    let ca_pem = pki.ca.pem();
    for i in 0..LOOPS {
        let (url, running, ok, failed) = (url.clone(), running.clone(), ok.clone(), failed.clone());
        let shared = http.clone();
        let ca_pem = ca_pem.clone();
        loops.push(tokio::spawn(async move {
            let mut n = i;
            while running.load(Ordering::SeqCst) {
                let http = if i % 2 == 0 {
                    shared.clone()
                } else {
                    client(ca_pem.as_bytes())
                };
                match load_request(&http, &url, n).await {
                    Ok(()) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        eprintln!("request failed: {e}");
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let der_b = rotate(&pki, "second", &cert_file, &key_file, &url).await;
    let after_first = ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let der_c = rotate(&pki, "third", &cert_file, &key_file, &url).await;
    assert_ne!(der_b, der_c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    running.store(false, Ordering::SeqCst);
    for l in loops {
        l.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("two rotations under load: {ok} requests, {failed} failed");
    assert_eq!(failed, 0);
    assert!(
        after_first > 20,
        "{after_first} requests before the first rotation was served"
    );
    assert!(ok > after_first + 20, "{ok} requests in all");

    // The last certificate is the one served now.
    let fresh = client(ca_pem.as_bytes());
    let response = fresh.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(peer_certificate(&response), der_c);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_request_in_flight_and_flushes_the_audit_trail() {
    // A registry that never answers keeps a request in flight for its whole budget.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = silent.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let (policies, data) = (dir.path().join("policies"), dir.path().join("data"));
    std::fs::create_dir(&policies).unwrap();
    let key =
        sealgate_core::crypto::key::SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    std::fs::write(
        policies.join("p.yaml"),
        policy("require-signed", &key, &format!("{host}/*"), "Enforce", ""),
    )
    .unwrap();
    let mut config = config(&policies, &data, TlsSource::SelfSigned);
    config.registry = Client::new(RegistryOptions {
        insecure_hosts: vec![host.clone()],
        max_retries: 0,
        ..RegistryOptions::default()
    })
    .unwrap();
    config.verify = VerifyConfig {
        budget: Duration::from_millis(1500),
        ..VerifyConfig::default()
    };
    let server = Server::bind(config).await.unwrap();
    let ca = std::fs::read(server.ca_path().unwrap()).unwrap();
    let (url, stop, task) = start(server);
    let http = client(&ca);

    let review = review("pod-create", &format!("{host}/app:v1"));
    let in_flight = {
        let (http, url) = (http.clone(), url.clone());
        tokio::spawn(async move {
            http.post(format!("{url}/mutate"))
                .body(review.to_string())
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    stop.send(()).unwrap();

    let answer: Value = serde_json::from_slice(&in_flight.await.unwrap()).unwrap();
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1.5s"),
        "{answer}"
    );
    task.await.unwrap().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(5));
    assert!(
        http.get(format!("{url}/healthz")).send().await.is_err(),
        "no new connections after shutdown"
    );

    let records = query_async(data.join(AUDIT_DB_FILE), AuditFilter::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].result, "error");
    assert!(!records[0].allowed);
    assert!(records[0].reason.contains("did not finish within 1.5s"));
    assert_eq!(records[0].cause.as_deref(), Some("fetch_budget"));
}

/// Over HTTP/2 as over HTTP/1.1, a body over the limit gets its 413 and the one-line reason,
/// not a stream reset the client sees as a transport error (the API server would report that
/// as a failed call, not as the refusal it is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_gets_its_413_over_http2_and_http1() {
    let dir = tempfile::tempdir().unwrap();
    let (policies, data) = (dir.path().join("policies"), dir.path().join("data"));
    std::fs::create_dir(&policies).unwrap();
    let server = Server::bind(config(&policies, &data, TlsSource::SelfSigned))
        .await
        .unwrap();
    let ca = std::fs::read(server.ca_path().unwrap()).unwrap();
    let (url, stop, task) = start(server);
    let body = format!(
        "{{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"pad\":\"{}\"}}",
        "x".repeat(4 * 1024 * 1024)
    );
    let ca_cert = reqwest::Certificate::from_pem(&ca).unwrap();
    let base = || {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca_cert.clone())
            .timeout(Duration::from_secs(10))
    };
    let h2 = base().http2_prior_knowledge().build().unwrap();
    let h1 = base().http1_only().build().unwrap();
    for (client, want_version) in [
        (&h2, reqwest::Version::HTTP_2),
        (&h1, reqwest::Version::HTTP_11),
    ] {
        for path in ["/mutate", "/validate"] {
            let response = client
                .post(format!("{url}{path}"))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{want_version:?} {path}: {e:?}"));
            assert_eq!(response.version(), want_version, "{path}");
            assert_eq!(response.status(), 413, "{want_version:?} {path}");
            let text = response.text().await.unwrap();
            assert!(
                text.starts_with("the AdmissionReview is larger than 3145728 bytes"),
                "{want_version:?} {path}: {text}"
            );
        }
        // The connection stays usable after the refusal.
        let response = client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{want_version:?} after the refusal: {e:?}"));
        assert_eq!(response.status(), 200, "{want_version:?}");
    }
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
