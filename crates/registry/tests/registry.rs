//! The registry client against a real registry (Debian's `docker-registry`, started per test by
//! `sealgate-test-registry`), plus two raw-socket servers for what a real registry will not do
//! on demand: hang, and fail with 503; and the test harness' fault proxy to cut bodies short.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sealgate_core::{Digest, ImageRef};
use sealgate_registry::{AuthFiles, Client, Error, Limits, RegistryOptions, media_type};
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};
const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

fn descriptor_digest(value: &serde_json::Value) -> Digest {
    value["digest"].as_str().unwrap().parse().unwrap()
}

/// Waits (briefly) for the registry's access log to mention `needle` `count` times: the line is
/// written just after the response is sent.
fn wait_for_log_count(registry: &TestRegistry, needle: &str, count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let seen = registry.log().matches(needle).count();
        if seen >= count || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn tls_and_auth_push_resolve_and_fetch_round_trip() {
    let registry = TestRegistry::start(TLS_AUTH);
    let pushed = registry.push_image("app", "v1");
    let client = registry.client();
    let image = registry.image_ref("app:v1");

    assert_eq!(client.resolve(&image).await.unwrap(), pushed);
    assert_eq!(
        client
            .resolve(&image.with_digest(pushed.clone()))
            .await
            .unwrap(),
        pushed
    );

    let manifest = client
        .get_manifest(&image, &pushed.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.media_type, media_type::OCI_MANIFEST);
    assert_eq!(manifest.digest, pushed);
    assert!(pushed.matches(&manifest.bytes));
    let by_tag = client.get_manifest(&image, "v1").await.unwrap().unwrap();
    assert_eq!(by_tag, manifest);

    let parsed = json(&manifest.bytes);
    let layer_digest = descriptor_digest(&parsed["layers"][0]);
    let layer = client
        .get_blob(&image, &layer_digest, 1 << 20)
        .await
        .unwrap();
    assert!(layer_digest.matches(&layer));
    assert!(String::from_utf8_lossy(&layer).contains("sealgate test image"));
    let config = client
        .get_blob(&image, &descriptor_digest(&parsed["config"]), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        json(&config)["rootfs"]["diff_ids"][0].as_str().unwrap(),
        layer_digest.to_string()
    );

    // another tag, another repository: other content, other digests
    assert_ne!(registry.push_image("app", "v2"), pushed);
    assert_ne!(registry.push_image("other/app", "v1"), pushed);

    // Basic auth is learnt from the first 401 and then sent up front
    let stats = client.request_stats();
    assert_eq!(stats.count(registry.host(), 401), 1, "{stats:?}");
    assert!(stats.count(registry.host(), 200) >= 5, "{stats:?}");
}

#[tokio::test]
async fn plain_http_works_for_an_insecure_host() {
    let registry = TestRegistry::start(PLAIN);
    assert_eq!(
        registry.cli_args(),
        vec![
            "--allow-insecure-registry".to_string(),
            registry.host().to_string()
        ]
    );
    let pushed = registry.push_image("app", "v1");
    let client = registry.client();
    assert_eq!(
        client.resolve(&registry.image_ref("app:v1")).await.unwrap(),
        pushed
    );

    // a bare host name in insecure_hosts covers every port
    let options = RegistryOptions {
        insecure_hosts: vec!["127.0.0.1".into()],
        ..RegistryOptions::default()
    };
    let client = Client::new(options).unwrap();
    assert_eq!(
        client.resolve(&registry.image_ref("app:v1")).await.unwrap(),
        pushed
    );
}

#[tokio::test]
async fn https_to_a_plain_http_registry_suggests_allow_insecure_registry() {
    let registry = TestRegistry::start(PLAIN);
    let client = Client::new(RegistryOptions::default()).unwrap();
    let e = client
        .resolve(&registry.image_ref("app:v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::PlainHttpServer { .. }), "{e:?}");
    let hint = format!(
        "if {0} serves plain HTTP, pass --allow-insecure-registry {0}",
        registry.host()
    );
    assert!(e.to_string().ends_with(&hint), "{e}");
}

#[tokio::test]
async fn https_without_the_ca_suggests_registry_ca() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: false,
    });
    let client = Client::new(RegistryOptions::default()).unwrap();
    let e = client
        .resolve(&registry.image_ref("app:v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UntrustedCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains(registry.host()), "{e}");
    assert!(
        e.to_string()
            .ends_with("pass its CA with --registry-ca FILE"),
        "{e}"
    );

    // with the CA it works, and a missing tag is simply absent
    let client = registry.client();
    assert_eq!(
        client
            .get_manifest(&registry.image_ref("app:v1"), "v1")
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_401_errors_with_the_hint() {
    let registry = TestRegistry::start(TLS_AUTH);
    let image = registry.image_ref("app:v1");

    let options = RegistryOptions {
        password: Some("wrong".into()),
        ..registry.client_options()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&image)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::CredentialsRejected { username, .. } if username == "sealgate"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("check --registry-username/--registry-password"),
        "{e}"
    );

    let options = RegistryOptions {
        username: None,
        password: None,
        ..registry.client_options()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&image)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AuthenticationRequired { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "authentication required by {0} for {0}/app: pass --registry-username/--registry-password, add credentials to docker config.json, or (under serve --kubernetes) give the Pod an imagePullSecret or the rule imageRegistryCredentials.secrets",
            registry.host()
        )
    );
}

#[tokio::test]
async fn missing_manifests_are_none_and_missing_tags_do_not_resolve() {
    let registry = TestRegistry::start(PLAIN);
    let pushed = registry.push_image("app", "v1");
    let client = registry.client();
    let image = registry.image_ref("app:v1");

    assert_eq!(client.get_manifest(&image, "nope").await.unwrap(), None);
    assert_eq!(
        client
            .get_manifest(&registry.image_ref("no/such/repo:v1"), "v1")
            .await
            .unwrap(),
        None
    );
    // the cosign signature tag of an unsigned image
    let sig_tag = pushed.signature_tag();
    assert_eq!(client.get_manifest(&image, &sig_tag).await.unwrap(), None);
    let needle = format!("\"GET /v2/app/manifests/{sig_tag} HTTP/1.1\" 404");
    assert_eq!(
        wait_for_log_count(&registry, &needle, 1),
        1,
        "{}",
        registry.log()
    );

    let missing = registry.image_ref("app:missing");
    let e = client.resolve(&missing).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "manifest {missing} not found on {}",
            registry.host()
        )),
        "{e}"
    );

    let absent_blob = Digest::sha256_of(b"never pushed");
    let e = client
        .get_blob(&image, &absent_blob, 1024)
        .await
        .unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "blob {absent_blob} of {}/app not found",
            registry.host()
        )),
        "{e}"
    );
}

#[tokio::test]
async fn size_limits_apply_to_manifests_and_blobs() {
    let registry = TestRegistry::start(PLAIN);
    let pushed = registry.push_image("app", "v1");
    let image = registry.image_ref("app:v1");

    let limits = Limits {
        manifest_bytes: 100,
        ..Limits::default()
    };
    let client = Client::new(RegistryOptions {
        limits,
        ..registry.client_options()
    })
    .unwrap();
    let e = client.resolve(&image).await.unwrap_err();
    assert!(matches!(e, Error::TooLarge { limit: 100, .. }), "{e:?}");
    assert!(
        e.to_string().ends_with("is larger than the 100-byte limit"),
        "{e}"
    );

    let client = registry.client();
    let manifest = client
        .get_manifest(&image, &pushed.to_string())
        .await
        .unwrap()
        .unwrap();
    let layer = descriptor_digest(&json(&manifest.bytes)["layers"][0]);
    let e = client.get_blob(&image, &layer, 16).await.unwrap_err();
    assert!(matches!(e, Error::TooLarge { limit: 16, .. }), "{e:?}");

    // pushing is bounded too
    let limits = Limits {
        blob_bytes: 8,
        ..Limits::default()
    };
    let client = Client::new(RegistryOptions {
        limits,
        ..registry.client_options()
    })
    .unwrap();
    let e = client
        .push_blob(&image, b"more than eight bytes")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge { limit: 8, .. }), "{e:?}");
}

#[tokio::test]
async fn blobs_are_uploaded_once_and_manifests_by_digest_must_match() {
    let registry = TestRegistry::start(TLS_AUTH);
    let client = registry.client();
    let image = registry.image_ref("app:v1");
    let blob = b"some blob content";
    let digest = client.push_blob(&image, blob).await.unwrap();
    assert_eq!(client.push_blob(&image, blob).await.unwrap(), digest);
    let uploads = "\"POST /v2/app/blobs/uploads/ HTTP/2.0\" 202";
    assert_eq!(
        wait_for_log_count(&registry, uploads, 1),
        1,
        "second push must only HEAD\n{}",
        registry.log()
    );
    assert_eq!(client.get_blob(&image, &digest, 1024).await.unwrap(), blob);

    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let wrong = Digest::sha256_of(b"something else");
    let e = client
        .put_manifest(&image, &wrong.to_string(), media_type::OCI_INDEX, manifest)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e:?}");
    let right = Digest::sha256_of(manifest);
    let pushed = client
        .put_manifest(&image, &right.to_string(), media_type::OCI_INDEX, manifest)
        .await
        .unwrap();
    assert_eq!(pushed, right);
    let fetched = client
        .get_manifest(&image, &right.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.bytes, manifest);
    assert_eq!(fetched.media_type, media_type::OCI_INDEX);
}

#[tokio::test]
async fn multi_platform_index_resolves_to_the_index_digest() {
    let registry = TestRegistry::start(PLAIN);
    let index_digest = registry.push_image_index("multi", "v1");
    let client = registry.client();
    let image = registry.image_ref("multi:v1");
    assert_eq!(client.resolve(&image).await.unwrap(), index_digest);
    let index = client.get_manifest(&image, "v1").await.unwrap().unwrap();
    assert_eq!(index.media_type, media_type::OCI_INDEX);
    let manifests = json(&index.bytes)["manifests"].as_array().unwrap().clone();
    assert_eq!(manifests.len(), 2);
    for entry in manifests {
        let child = client
            .get_manifest(&image, entry["digest"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(child.media_type, media_type::OCI_MANIFEST);
    }
}

#[tokio::test]
async fn docker_config_credentials_are_used() {
    let registry = TestRegistry::start(TLS_AUTH);
    let pushed = registry.push_image("app", "v1");
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        registry.username().unwrap(),
        registry.password().unwrap()
    ));
    let config = dir.path().join("config.json");
    let key = format!("https://{}/v1/", registry.host());
    std::fs::write(
        &config,
        serde_json::json!({"auths": {key: {"auth": auth}}}).to_string(),
    )
    .unwrap();

    let options = RegistryOptions {
        username: None,
        password: None,
        auth_files: AuthFiles::from_paths([dir.path().join("missing.json"), config]),
        ..registry.client_options()
    };
    let client = Client::new(options).unwrap();
    assert_eq!(
        client.resolve(&registry.image_ref("app:v1")).await.unwrap(),
        pushed
    );

    // explicit options override the file
    let options = RegistryOptions {
        password: Some("wrong".into()),
        auth_files: AuthFiles::from_paths([dir.path().join("config.json")]),
        ..registry.client_options()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&registry.image_ref("app:v1"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CredentialsRejected { .. }), "{e:?}");
}

#[tokio::test]
async fn an_unreachable_port_is_a_connect_error_with_a_hint() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let client = Client::new(RegistryOptions {
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    })
    .unwrap();
    let started = Instant::now();
    let e = client
        .resolve(&ImageRef::parse(&format!("{host}/app:v1")).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "could not connect to {host}: connection refused; is the registry running and is the address right?"
        )
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a refused connection is not retried"
    );
}

/// A server on loopback that answers each request with `respond(n, head)` (n counts from 1,
/// head is the request line and headers), one request per connection, and counts the requests.
fn raw_server(
    respond: impl Fn(usize, &str) -> Option<String> + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    raw_server_on(listener, respond)
}

fn raw_server_on(
    listener: TcpListener,
    respond: impl Fn(usize, &str) -> Option<String> + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let host = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                head.push_str(&line);
                line.clear();
            }
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            match respond(n, &head) {
                Some(response) => {
                    let _ = stream.write_all(response.as_bytes());
                }
                None => held.push(stream), // never answer
            }
        }
    });
    (host, count)
}

/// An HTTP/1.1 response that closes the connection.
fn http_response(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    response
}

#[tokio::test]
async fn blob_redirects_are_followed_without_sending_credentials_elsewhere() {
    let blob = "layer bytes in object storage";
    let digest = Digest::sha256_of(blob.as_bytes());
    let storage_saw_authorization = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saw = storage_saw_authorization.clone();
    let (storage, _) = raw_server(move |_, head| {
        saw.store(
            head.to_ascii_lowercase().contains("\r\nauthorization:"),
            Ordering::SeqCst,
        );
        Some(http_response("200 OK", &[], blob))
    });
    let location = format!("http://{storage}/bucket/blob?signature=abc");
    let (host, _) = raw_server(move |_, head| {
        if !head
            .to_ascii_lowercase()
            .contains("\r\nauthorization: basic ")
        {
            return Some(http_response(
                "401 Unauthorized",
                &[("WWW-Authenticate", r#"Basic realm="r""#)],
                "",
            ));
        }
        if head.starts_with("GET /v2/app/blobs/") {
            return Some(http_response(
                "307 Temporary Redirect",
                &[("Location", &location)],
                "",
            ));
        }
        Some(http_response(
            "403 Forbidden",
            &[],
            r#"{"errors":[{"code":"DENIED"}]}"#,
        ))
    });
    let options = RegistryOptions {
        username: Some("alice".into()),
        password: Some("pw".into()),
        insecure_hosts: vec![host.clone(), storage.clone()],
        ..RegistryOptions::default()
    };
    let client = Client::new(options).unwrap();
    let image = ImageRef::parse(&format!("{host}/app:v1")).unwrap();
    assert_eq!(
        client.get_blob(&image, &digest, 1024).await.unwrap(),
        blob.as_bytes()
    );
    assert!(
        !storage_saw_authorization.load(Ordering::SeqCst),
        "credentials leaked to the storage host"
    );

    let e = client.get_manifest(&image, "v1").await.unwrap_err();
    assert!(
        matches!(e, Error::Forbidden { action: "pull", .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{host} denied pull access to {host}/app (403 forbidden); the credentials lack that permission on the repository: grant it, or pass credentials that have it (--registry-username/--registry-password with --registry-auth-host {host}, or docker config.json)"
        )
    );
}

#[tokio::test]
async fn bearer_tokens_are_fetched_with_credentials_cached_per_scope_and_sent_up_front() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let challenge = format!(r#"Bearer realm="http://{host}/token",service="test-registry""#);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:pw")
    );
    let manifest =
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let token_requests = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = token_requests.clone();
    let (_, count) = raw_server_on(listener, move |_, head| {
        let request_line = head.lines().next().unwrap_or_default().to_string();
        let authorization = head
            .lines()
            .find_map(|l| {
                l.strip_prefix("authorization: ")
                    .or_else(|| l.strip_prefix("Authorization: "))
            })
            .unwrap_or_default()
            .trim()
            .to_string();
        if request_line.starts_with("GET /token?") {
            seen.lock().unwrap().push(request_line.clone());
            if authorization != basic {
                return Some(http_response("401 Unauthorized", &[], ""));
            }
            let token = if request_line.contains("pull%2Cpush") {
                "push-token"
            } else {
                "pull-token"
            };
            let body = format!(r#"{{"access_token":"{token}","expires_in":300}}"#);
            return Some(http_response(
                "200 OK",
                &[("Content-Type", "application/json")],
                &body,
            ));
        }
        let needed = if request_line.starts_with("HEAD") {
            "Bearer push-token"
        } else {
            "Bearer pull-token"
        };
        if authorization != needed {
            return Some(http_response(
                "401 Unauthorized",
                &[("WWW-Authenticate", &challenge)],
                "",
            ));
        }
        if request_line.starts_with("HEAD") {
            return Some(http_response("200 OK", &[], ""));
        }
        Some(http_response(
            "200 OK",
            &[("Content-Type", media_type::OCI_MANIFEST)],
            manifest,
        ))
    });

    let options = RegistryOptions {
        username: Some("alice".into()),
        password: Some("pw".into()),
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    };
    let client = Client::new(options).unwrap();
    let image = ImageRef::parse(&format!("{host}/team/app:v1")).unwrap();
    let expected = Digest::sha256_of(manifest.as_bytes());
    assert_eq!(client.resolve(&image).await.unwrap(), expected);
    assert_eq!(count.load(Ordering::SeqCst), 3, "401, token, retry");
    assert_eq!(client.resolve(&image).await.unwrap(), expected);
    assert_eq!(
        count.load(Ordering::SeqCst),
        4,
        "the cached token is sent up front"
    );
    // push access needs another token (HEAD of an existing blob, so nothing is uploaded)
    assert_eq!(
        client.push_blob(&image, b"x").await.unwrap(),
        Digest::sha256_of(b"x")
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        6,
        "token for pull,push, then HEAD"
    );

    let tokens = token_requests.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert!(
        tokens[0]
            .contains("service=test-registry&scope=repository%3Ateam%2Fapp%3Apull&account=alice"),
        "{tokens:?}"
    );
    assert!(
        tokens[1].contains("scope=repository%3Ateam%2Fapp%3Apull%2Cpush"),
        "{tokens:?}"
    );

    // the token service refusing the password is a credentials error; with no credentials at
    // all, authentication is required
    let options = RegistryOptions {
        username: Some("alice".into()),
        password: Some("wrong".into()),
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&image)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::CredentialsRejected { username, .. } if username == "alice"),
        "{e:?}"
    );
    let options = RegistryOptions {
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&image)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AuthenticationRequired { .. }), "{e:?}");
}

#[tokio::test]
async fn a_silent_registry_times_out_with_the_timeout_hint() {
    let (host, _) = raw_server(|_, _| None);
    let options = RegistryOptions {
        insecure_hosts: vec![host.clone()],
        request_timeout: Duration::from_millis(300),
        ..RegistryOptions::default()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&ImageRef::parse(&format!("{host}/app:v1")).unwrap())
        .await;
    let e = e.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "request to {host} timed out after 0.3s; if the registry is slow, raise --registry-timeout"
        )
    );
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_and_other_4xx_are_not() {
    let unavailable = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (host, count) = raw_server(move |_, _| Some(unavailable.to_string()));
    let options = RegistryOptions {
        insecure_hosts: vec![host.clone()],
        max_retries: 2,
        ..RegistryOptions::default()
    };
    let client = Client::new(options).unwrap();
    let image = ImageRef::parse(&format!("{host}/app:v1")).unwrap();
    let e = client.resolve(&image).await.unwrap_err();
    assert!(
        matches!(e, Error::RetriesExhausted { tries: 3, .. }),
        "{e:?}"
    );
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert!(
        e.to_string()
            .contains("(503 Service Unavailable) after 3 tries"),
        "{e}"
    );
    assert_eq!(client.request_stats().count(&host, 503), 3);

    // a 503 then success: the retry is invisible to the caller
    let manifest =
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
    let ok = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{manifest}",
        manifest.len()
    );
    let (host, count) = raw_server(move |n, _| {
        Some(if n == 1 {
            unavailable.to_string()
        } else {
            ok.clone()
        })
    });
    let options = RegistryOptions {
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    };
    let started = Instant::now();
    let digest = Client::new(options)
        .unwrap()
        .resolve(&ImageRef::parse(&format!("{host}/app:v1")).unwrap())
        .await;
    assert_eq!(digest.unwrap(), Digest::sha256_of(manifest.as_bytes()));
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "Retry-After: 0 is honoured"
    );

    // a lying Docker-Content-Digest is caught
    let liar = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{manifest}",
        Digest::sha256_of(b"other"),
        manifest.len()
    );
    let (host, _) = raw_server(move |_, _| Some(liar.clone()));
    let options = RegistryOptions {
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&ImageRef::parse(&format!("{host}/app:v1")).unwrap())
        .await;
    assert!(matches!(e, Err(Error::DigestMismatch { .. })), "{e:?}");

    // 400 is not retried
    let bad =
        "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request";
    let (host, count) = raw_server(move |_, _| Some(bad.to_string()));
    let options = RegistryOptions {
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    };
    let e = Client::new(options)
        .unwrap()
        .resolve(&ImageRef::parse(&format!("{host}/app:v1")).unwrap())
        .await;
    let e = e.unwrap_err();
    assert!(
        matches!(e, Error::UnexpectedStatus { status: 400, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("{host} answered 400 to GET /v2/app/manifests/v1: bad request")
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_body_cut_short_is_an_error_naming_what_ended_early() {
    use sealgate_test_registry::{Fault, FaultRule};

    let registry = TestRegistry::start(PLAIN);
    let pushed = registry.push_image("app", "v1");
    let (proxy, host, client) = behind_fault_proxy(&registry);
    let image = ImageRef::parse(&format!("{host}/app:v1")).unwrap();
    proxy.set_rule(FaultRule::new(Fault::Truncate));

    let e = client.get_manifest(&image, "v1").await.unwrap_err();
    let Error::Truncated {
        received,
        announced: Some(announced),
        ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert_eq!(*received, announced / 2);
    assert_eq!(
        e.to_string(),
        format!(
            "manifest {host}/app:v1 from {host} ended early: {received} of {announced} bytes arrived before the connection was cut (end of file before message length reached); try again"
        )
    );

    let layer = json(
        &registry
            .client()
            .get_manifest(&registry.image_ref("app:v1"), "v1")
            .await
            .unwrap()
            .unwrap()
            .bytes,
    )["layers"][0]
        .clone();
    let digest = descriptor_digest(&layer);
    let e = client.get_blob(&image, &digest, 1 << 20).await.unwrap_err();
    assert!(
        e.to_string().starts_with(&format!(
            "blob {digest} of {host}/app from {host} ended early: "
        )),
        "{e}"
    );
    assert_eq!(proxy.count("truncated"), 2, "{:?}", proxy.requests());

    // Once the proxy behaves, the same client reads it all.
    proxy.clear_rule();
    assert_eq!(client.resolve(&image).await.unwrap(), pushed);
}

#[test]
fn cli_args_name_the_ca_and_credentials() {
    let registry = TestRegistry::start(TLS_AUTH);
    let ca: PathBuf = registry.ca_pem_path().unwrap();
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        registry.cli_args(),
        vec![
            "--registry-ca".to_string(),
            ca.display().to_string(),
            "--registry-username".into(),
            "sealgate".into(),
            "--registry-password".into(),
            registry.password().unwrap().to_string(),
            "--registry-auth-host".into(),
            registry.host().to_string(),
        ]
    );
    assert!(registry.url().starts_with("https://127.0.0.1:"));
    assert!(registry.data_dir().is_dir());
}

/// One unusable layer does not hide the others: a `.sig` image whose first layer's payload is
/// over the 1 MiB limit still yields the valid signature in its second layer, and the first is
/// reported as a payload that could not be fetched.
#[tokio::test]
async fn an_oversized_signature_payload_spoils_only_its_own_layer() {
    use sealgate_core::cosign::{
        Descriptor, LayerVerdict, SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE, SignatureLayer,
        Verification, payload, verify_with_key,
    };
    use sealgate_core::crypto::key::{SignatureHash, SigningKey};
    use sealgate_registry::signatures::{fetch_signatures, push_signature};

    let registry = TestRegistry::start(PLAIN);
    let digest = registry.push_image("app", "v1");
    let client = registry.client();
    let image = ImageRef::parse(&format!("{}/app:v1", registry.host())).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let layer = |payload: Vec<u8>, key: &SigningKey| {
        let signature = key.sign(&rng, &payload).unwrap();
        let mut descriptor = Descriptor::of(SIMPLE_SIGNING_MEDIA_TYPE, &payload);
        descriptor.annotations = Some(
            [(
                SIGNATURE_ANNOTATION.to_string(),
                base64::engine::general_purpose::STANDARD.encode(signature),
            )]
            .into_iter()
            .collect(),
        );
        SignatureLayer {
            descriptor,
            payload,
        }
    };
    let stranger = SigningKey::generate(&rng).unwrap();
    let oversized = layer(vec![b' '; 1024 * 1024 + 1], &stranger);
    push_signature(&client, &image, &digest, &oversized, stranger.public_key())
        .await
        .unwrap();
    let key = SigningKey::generate(&rng).unwrap();
    let good = layer(
        payload::build(&image.cosign_identity(), &digest, &Default::default()),
        &key,
    );
    push_signature(&client, &image, &digest, &good, key.public_key())
        .await
        .unwrap();

    let set = fetch_signatures(&client, &image, &digest).await.unwrap();
    assert_eq!(set.layers.len(), 2);
    assert!(
        set.layers[0].payload.is_empty(),
        "the oversized payload is not read"
    );
    let Verification::Verified(verified) =
        verify_with_key(&set, key.public_key(), SignatureHash::Sha256)
    else {
        panic!("the valid second layer must verify");
    };
    assert_eq!(verified[0].layer_index(), 1);
    let Verification::Failed(failure) =
        verify_with_key(&set, stranger.public_key(), SignatureHash::Sha256)
    else {
        panic!("the stranger's only layer is unusable");
    };
    let text = failure.to_string();
    assert!(
        text.contains(&LayerVerdict::PayloadUnavailable.to_string()),
        "{text}"
    );
}

/// A 429 holds back every request of the client to that host, not only the one it answered:
/// a second resolution started while the first waits out `Retry-After` waits too.
#[tokio::test]
async fn a_429_holds_back_every_request_to_that_host() {
    use sealgate_test_registry::{Fault, FaultRule};

    let registry = TestRegistry::start(PLAIN);
    let v1 = registry.push_image("app", "v1");
    let v2 = registry.push_image("app", "v2");
    let (proxy, host, client) = behind_fault_proxy(&registry);
    proxy.set_rule(
        FaultRule::new(Fault::Status {
            status: 429,
            retry_after: Some(2),
        })
        .on_paths("/manifests/v1")
        .times(1),
    );
    let start = Instant::now();
    let first = {
        let client = client.clone();
        let image = ImageRef::parse(&format!("{host}/app:v1")).unwrap();
        tokio::spawn(async move { (client.resolve(&image).await, start.elapsed()) })
    };
    // Let the first request meet its 429.
    while proxy.count("429") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            proxy.requests()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let image = ImageRef::parse(&format!("{host}/app:v2")).unwrap();
    let second = client.resolve(&image).await.unwrap();
    let second_took = start.elapsed();
    let (first, first_took) = first.await.unwrap();
    assert_eq!(first.unwrap(), v1);
    assert_eq!(second, v2);
    assert!(
        second_took >= Duration::from_millis(1800),
        "the second request went out {second_took:?} after the 429's Retry-After: 2 began; {:?}",
        proxy.requests()
    );
    assert!(first_took >= Duration::from_millis(1800), "{first_took:?}");
    assert_eq!(proxy.count("429"), 1);
}

/// An HTTP fault proxy in front of the plain-HTTP `registry`, its host, and a client for it.
fn behind_fault_proxy(
    registry: &TestRegistry,
) -> (sealgate_test_registry::HttpFaultProxy, String, Client) {
    let proxy = sealgate_test_registry::HttpFaultProxy::start(registry.host());
    let host = proxy.host();
    let client = Client::new(RegistryOptions {
        insecure_hosts: vec![host.clone()],
        ..RegistryOptions::default()
    })
    .unwrap();
    (proxy, host, client)
}

/// A TLS registry with authentication behind a TLS fault proxy, an image pushed to it, and
/// options for a client of the proxy (the registry's CA and credentials).
fn registry_behind_tls_proxy() -> (
    TestRegistry,
    sealgate_test_registry::HttpFaultProxy,
    RegistryOptions,
) {
    let registry = TestRegistry::start(TLS_AUTH);
    registry.push_image("app", "v1");
    let proxy = sealgate_test_registry::HttpFaultProxy::in_front_of(&registry);
    let options = registry.client_options();
    (registry, proxy, options)
}

/// Fetches `app:v1`'s manifest by digest and its layer through `client` and `proxy`.
async fn fetch_manifest_and_layer(
    client: &Client,
    proxy: &sealgate_test_registry::HttpFaultProxy,
    digest: &Digest,
) -> Result<Vec<u8>, Error> {
    let image = ImageRef::parse(&format!("{}/app:v1", proxy.host())).unwrap();
    let manifest = client
        .get_manifest(&image, &digest.to_string())
        .await?
        .unwrap();
    assert_eq!(manifest.digest, *digest);
    let layer = descriptor_digest(&json(&manifest.bytes)["layers"][0]);
    client.get_blob(&image, &layer, 1 << 20).await
}

/// Issue 11, Must 3: a registry redirecting manifest and blob downloads to object storage on
/// another port: followed, digests checked, and the storage never sees `Authorization`.
#[tokio::test]
async fn redirects_to_storage_are_followed_without_credentials() {
    use sealgate_test_registry::{Fault, FaultRule, RedirectTo};
    let (registry, proxy, options) = registry_behind_tls_proxy();
    let digest = registry
        .client()
        .resolve(&registry.image_ref("app:v1"))
        .await
        .unwrap();
    for to in [RedirectTo::TlsStorage, RedirectTo::PlainStorage] {
        proxy.set_rule(FaultRule::new(Fault::Redirect(to)).on_paths("/sha256:"));
        let before = proxy.storage_requests().len();
        let mut options = options.clone();
        if to == RedirectTo::PlainStorage {
            // https -> http is followed only to a host allowed plain HTTP
            options.insecure_hosts = vec![proxy.plain_storage_host()];
        }
        let client = Client::new(options).unwrap();
        let layer = fetch_manifest_and_layer(&client, &proxy, &digest)
            .await
            .unwrap_or_else(|e| panic!("{to:?}: {e}\n{:?}", proxy.requests()));
        assert!(String::from_utf8_lossy(&layer).contains("sealgate test image"));
        let storage = &proxy.storage_requests()[before..];
        assert_eq!(
            storage.len(),
            2,
            "{to:?}: manifest and layer from storage: {storage:?}"
        );
        assert!(
            storage.iter().all(|r| r.authorization.is_none()),
            "{to:?}: credentials leaked to object storage: {storage:?}"
        );
        assert!(
            !proxy.requests_with_authorization().is_empty(),
            "the registry itself got the credentials"
        );
    }
}

/// Issue 11, Must 3: an HTTPS registry redirecting to plain HTTP on a host not allowed it.
#[tokio::test]
async fn a_redirect_from_https_to_plain_http_is_refused_unless_allowed() {
    use sealgate_test_registry::{Fault, FaultRule, RedirectTo};
    let (registry, proxy, options) = registry_behind_tls_proxy();
    let digest = registry
        .client()
        .resolve(&registry.image_ref("app:v1"))
        .await
        .unwrap();
    proxy.set_rule(FaultRule::new(Fault::Redirect(RedirectTo::PlainStorage)).on_paths("/sha256:"));
    let client = Client::new(options).unwrap();
    let e = fetch_manifest_and_layer(&client, &proxy, &digest)
        .await
        .unwrap_err();
    let storage = proxy.plain_storage_host();
    assert!(matches!(e, Error::InsecureRedirect { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} redirected to plain http (http://{storage}/objects/0); sealgate does not leave https: if {storage} really serves plain http, pass --allow-insecure-registry {storage}",
            proxy.host()
        ),
        "the signature in the query is not shown"
    );
    assert!(proxy.storage_requests().is_empty());
}

/// A redirect within the registry's own origin keeps the credentials (the registry needs
/// them on the second request too).
#[tokio::test]
async fn a_redirect_to_the_same_origin_keeps_credentials() {
    use sealgate_test_registry::{Fault, FaultRule, RedirectTo};
    let (registry, proxy, options) = registry_behind_tls_proxy();
    let digest = registry
        .client()
        .resolve(&registry.image_ref("app:v1"))
        .await
        .unwrap();
    proxy.set_rule(FaultRule::new(Fault::Redirect(RedirectTo::SameOrigin)).on_paths("/sha256:"));
    let client = Client::new(options).unwrap();
    fetch_manifest_and_layer(&client, &proxy, &digest)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:?}", proxy.requests()));
    let authorized = proxy.requests_with_authorization();
    let redirected: Vec<_> = authorized
        .iter()
        .filter(|r| r.contains("sealgate-redirected=1"))
        .collect();
    // the first manifest request goes out before the registry's challenge, without
    // credentials; the manifest and the layer are then fetched with them, across the redirect
    assert_eq!(
        redirected.len(),
        2,
        "{authorized:?}\n{:?}",
        proxy.requests()
    );
    assert_eq!(proxy.count("redirected"), 3, "{:?}", proxy.requests());
}

/// Issue 11, Must 3: a TLS registry whose challenge names a token service over plain HTTP
/// gets neither the credentials nor a token request there, unless that host is allowed.
#[tokio::test]
async fn a_token_realm_over_plain_http_is_refused_unless_allowed() {
    use sealgate_test_registry::{Fault, FaultRule};
    let (_registry, proxy, options) = registry_behind_tls_proxy();
    proxy.set_rule(FaultRule::new(Fault::PlainHttpTokenRealm));
    let image = ImageRef::parse(&format!("{}/app:v1", proxy.host())).unwrap();
    let realm_host = proxy.plain_storage_host();

    let client = Client::new(options.clone()).unwrap();
    let e = client.resolve(&image).await.unwrap_err();
    assert!(matches!(e, Error::InsecureTokenRealm { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "{} names a token service over plain http (http://{realm_host}/token); sealgate sends no credentials or token request in the clear: if {realm_host} really serves plain http, pass --allow-insecure-registry {realm_host}",
            proxy.host()
        )
    );
    assert_eq!(
        proxy.count("challenge rewritten"),
        1,
        "{:?}",
        proxy.requests()
    );
    assert!(
        proxy.storage_requests().is_empty(),
        "the plain-HTTP realm was asked: {:?}",
        proxy.storage_requests()
    );

    // allowed plain HTTP, the realm is asked (with the credentials)
    let client = Client::new(RegistryOptions {
        insecure_hosts: vec![realm_host.clone()],
        ..options
    })
    .unwrap();
    let e = client.resolve(&image).await.unwrap_err();
    assert!(!matches!(e, Error::InsecureTokenRealm { .. }), "{e:?}");
    let asked = proxy.storage_requests();
    assert!(
        asked
            .iter()
            .any(|r| r.path_and_query.starts_with("/token?") && r.authorization.is_some()),
        "{asked:?}"
    );
}

/// Redirects are followed at most 5 times per request.
#[tokio::test]
async fn redirects_are_bounded() {
    let (host, count) = raw_server(move |n, _| {
        Some(http_response(
            "307 Temporary Redirect",
            &[("Location", &format!("/v2/app/manifests/v{n}"))],
            "",
        ))
    });
    let client = Client::new(RegistryOptions {
        insecure_hosts: vec![host.clone()],
        max_retries: 0,
        ..RegistryOptions::default()
    })
    .unwrap();
    let image = ImageRef::parse(&format!("{host}/app:v0")).unwrap();
    let e = client.get_manifest(&image, "v0").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "request to {host} failed: more than 5 redirects for GET /v2/app/manifests/v0 (the last to http://{host}/v2/app/manifests/v5)"
        )
    );
    assert_eq!(
        count.load(Ordering::SeqCst),
        6,
        "the first request and 5 redirects"
    );
}

#[tokio::test]
async fn image_data_is_the_manifest_and_config_as_kyverno_s_image_registry_entry_holds_them() {
    let registry = TestRegistry::start(TLS_AUTH);
    let client = registry.client();
    let pushed = registry.push_image("app", "v1");
    let image = registry.image_ref("app:v1");
    let reference = format!("{}/app:v1", registry.host());
    let data = sealgate_registry::image_data::image_data(&client, &image, &reference)
        .await
        .unwrap();
    assert_eq!(data["image"], reference.as_str());
    assert_eq!(
        data["resolvedImage"],
        format!("{}/app@{pushed}", registry.host()).as_str()
    );
    assert_eq!(data["registry"], registry.host());
    assert_eq!(data["repository"], "app");
    assert_eq!(data["identifier"], "v1");
    assert!(data["manifestList"].is_null());
    assert_eq!(data["manifest"]["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(data["configData"]["architecture"], "amd64");
    assert!(data["configData"]["rootfs"]["diff_ids"][0].is_string());

    // An index: the linux/amd64 image's manifest and config, the index as manifestList.
    let index = registry.push_image_index("multi", "v1");
    let image = registry.image_ref("multi:v1");
    let data = sealgate_registry::image_data::image_data(&client, &image, "multi:v1")
        .await
        .unwrap();
    assert_eq!(
        data["manifestList"]["manifests"].as_array().unwrap().len(),
        2
    );
    assert_eq!(data["configData"]["architecture"], "amd64");
    assert_eq!(data["configData"]["os"], "linux");
    assert!(
        data["resolvedImage"]
            .as_str()
            .unwrap()
            .ends_with(&index.to_string())
    );

    // A tag that is not there: the registry's not-found error, naming the manifest.
    let missing = registry.image_ref("app:v9");
    let e = sealgate_registry::image_data::image_data(&client, &missing, "app:v9")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("app:v9"), "{e}");
}
