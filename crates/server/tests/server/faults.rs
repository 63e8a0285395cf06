//! Faults on the real registry, through the real HTTPS server: a registry stopped mid-run,
//! slowed past the budget by a delaying TCP proxy, and a misbehaving HTTP proxy answering 429
//! and 500, truncating bodies and altering manifests and blobs (sealgate-test-registry's fault
//! proxies, in front of a real docker-registry).
//!
//! Every case asserts three things: the decision (Enforce denies with 403, Audit admits with a
//! warning; never an allow under Enforce), the message (it names the image and what went wrong)
//! and the time it took (what cannot finish is decided at the budget; retries finish within it;
//! a registry that fails at once is answered at once). Bounds carry slack for a loaded 2-core
//! machine.

use std::path::Path;
use std::time::{Duration, Instant};

use sealgate_registry::{Client, RegistryOptions};
use sealgate_server::config::VerifyConfig;
use sealgate_server::{ServeConfig, Server, TlsSource};
use sealgate_test_registry::{
    Fault, FaultRule, HttpFaultProxy, TcpFaultProxy, TcpMode, TestRegistryConfig,
};
use serde_json::Value;

use crate::common::*;

/// The request budget of these tests (`--budget 2s`).
const BUDGET: Duration = Duration::from_secs(2);
/// How far past the budget an answer may come on a loaded machine (the decision itself, the
/// HTTPS round trip, scheduling).
const SLACK: Duration = Duration::from_secs(1);
/// "At once": a registry that fails immediately is answered well within the budget (one
/// dropped-connection retry of 200 ms at most, plus slack).
const FAST: Duration = Duration::from_millis(1000);
/// The registry client's retry waits with the default 3 retries: 200 + 400 + 800 ms.
const RETRY_WAITS: Duration = Duration::from_millis(1400);

const SECURE: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};
const PLAIN: TestRegistryConfig = TestRegistryConfig {
    tls: false,
    auth: false,
};

/// `sealgate serve` in-process over HTTPS (self-signed CA), with the budget above.
struct Webhook {
    url: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), sealgate_server::ServeError>>,
    _data: tempfile::TempDir,
}

impl Webhook {
    async fn start(policies: &Path, registry: RegistryOptions) -> Webhook {
        Webhook::start_with(
            policies,
            registry,
            VerifyConfig {
                budget: BUDGET,
                ..VerifyConfig::default()
            },
        )
        .await
    }

    async fn start_with(
        policies: &Path,
        registry: RegistryOptions,
        verify: VerifyConfig,
    ) -> Webhook {
        let data = tempfile::tempdir().unwrap();
        let mut config = ServeConfig::new(policies.to_path_buf(), Client::new(registry).unwrap());
        config.listen = "127.0.0.1:0".into();
        config.data_dir = data.path().to_path_buf();
        config.tls = TlsSource::SelfSigned;
        config.verify = verify;
        let server = Server::bind(config).await.unwrap();
        let ca = std::fs::read(server.ca_path().unwrap()).unwrap();
        let url = format!("https://localhost:{}", server.local_addr().port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        Webhook {
            url,
            http,
            stop: Some(stop),
            task,
            _data: data,
        }
    }

    /// POSTs a Pod CREATE running `image` to `/mutate`; returns the AdmissionReview's
    /// `response` and the time from sending to the whole answer.
    async fn review(&self, image: &str) -> (Value, Duration) {
        let review = review("pod-create", image);
        let start = Instant::now();
        let answer = self
            .http
            .post(format!("{}/mutate", self.url))
            .header("content-type", "application/json")
            .body(review.to_string())
            .send()
            .await
            .expect("the webhook answers");
        assert_eq!(answer.status(), 200, "{image}");
        let body: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        let took = start.elapsed();
        assert_eq!(body["response"]["uid"], review["request"]["uid"]);
        (body["response"].clone(), took)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }
}

/// The registry options `sealgate serve` would use for `env`'s registry reached through
/// `proxy_host`: its CA and credentials, plain HTTP for the proxy when the registry has no TLS,
/// and the CLI's defaults for retries (3) and the request timeout (30 s).
fn options(env: &Env, proxy_host: &str) -> RegistryOptions {
    let mut options = env.registry.client_options();
    if !env.registry.config().tls {
        options.insecure_hosts.push(proxy_host.to_string());
    }
    let defaults = RegistryOptions::default();
    options.max_retries = defaults.max_retries;
    options.request_timeout = defaults.request_timeout;
    options
}

/// An Enforce policy for `HOST/app*` and an Audit policy for `HOST/audited/*`.
fn write_policies(env: &Env, host: &str) {
    env.write_policy(
        "require-signed.yaml",
        &policy(
            "require-signed",
            &env.key,
            &format!("{host}/app*"),
            "Enforce",
            "",
        ),
    );
    env.write_policy(
        "audit-signed.yaml",
        &policy(
            "audit-signed",
            &env.key,
            &format!("{host}/audited/*"),
            "Audit",
            "\n        mutateDigest: false",
        ),
    );
}

/// A denial with 403 whose message holds every one of `needles`; returns the message.
fn denied(response: &Value, needles: &[&str]) -> String {
    assert_eq!(
        response["allowed"], false,
        "Enforce never allows on a fault: {response}"
    );
    assert_eq!(response["status"]["code"], 403, "{response}");
    let message = response["status"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("resource Pod/team-a/web was blocked due to the following policies"),
        "{message}"
    );
    assert!(message.contains("\nrequire-signed:\n"), "{message}");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in:\n{message}");
    }
    message
}

/// An admission with exactly one warning, from the Audit policy, holding every one of
/// `needles`; returns the warning.
fn warned(response: &Value, needles: &[&str]) -> String {
    assert_eq!(response["allowed"], true, "Audit admits: {response}");
    assert!(response.get("status").is_none(), "{response}");
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{response}");
    let warning = warnings[0].as_str().unwrap().to_string();
    assert!(
        warning.starts_with("policy audit-signed.check-signature: "),
        "{warning}"
    );
    for needle in needles {
        assert!(warning.contains(needle), "{needle:?} not in:\n{warning}");
    }
    warning
}

fn allowed(response: &Value) {
    assert_eq!(response["allowed"], true, "{response}");
    assert!(response.get("status").is_none(), "{response}");
}

fn took_between(took: Duration, min: Duration, max: Duration, what: &str) {
    eprintln!("fault timing: {what}: {took:?} (bounds {min:?} ..= {max:?})");
    assert!(
        took >= min && took <= max,
        "{what} took {took:?}, expected between {min:?} and {max:?}"
    );
}

/// `count(what)` of the proxy, with its request list when it differs.
fn assert_count(proxy: &HttpFaultProxy, what: &str, want: usize) {
    assert_eq!(
        proxy.count(what),
        want,
        "requests counted as {what}; all requests:\n{}",
        proxy.requests().join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_stopped_mid_run_keeps_what_was_verified_and_denies_new_images_at_once() {
    let env = Env::new(SECURE);
    let proxy = TcpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    env.push_signed("app", "v2").await;
    env.push_signed("audited/app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;

    // TLS and authentication end to end through the proxy: verified, pinned, cached.
    let verified = format!("{host}/app:v1");
    let (response, _) = webhook.review(&verified).await;
    allowed(&response);
    assert!(proxy.connections() >= 1);

    proxy.stop();

    // What was just verified is still admitted: digest and outcome come from the caches.
    let (response, took) = webhook.review(&verified).await;
    allowed(&response);
    took_between(took, Duration::ZERO, FAST, "a cached admission");

    // A new image cannot be resolved: denied at once, not at the budget.
    let new = format!("{host}/app:v2");
    let (response, took) = webhook.review(&new).await;
    denied(
        &response,
        &[&format!(
            "check-signature: could not resolve the digest of {new}: could not connect to {host}: connection refused; is the registry running and is the address right?"
        )],
    );
    took_between(took, Duration::ZERO, FAST, "a denial for a dead registry");

    // Audit admits it with the same reason as a warning.
    let audited = format!("{host}/audited/app:v1");
    let (response, took) = webhook.review(&audited).await;
    warned(
        &response,
        &[&format!(
            "could not resolve the digest of {audited}: could not connect to {host}: connection refused"
        )],
    );
    took_between(took, Duration::ZERO, FAST, "a warning for a dead registry");
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_stops_during_a_fetch_is_denied_before_the_budget() {
    let env = Env::new(SECURE);
    let proxy = TcpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;

    // The fetch hangs on the slow proxy; the registry then dies under it.
    proxy.set_mode(TcpMode::Delay(Duration::from_secs(30)));
    let image = format!("{host}/app:v1");
    let (result, ()) = tokio::join!(webhook.review(&image), async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.stop();
    });
    let (response, took) = result;
    denied(
        &response,
        &[&format!(
            "check-signature: could not resolve the digest of {image}: could not connect to {host}: "
        )],
    );
    // Half a second of hanging, then at once (one retry of the dropped connection).
    took_between(
        took,
        Duration::from_millis(500),
        Duration::from_millis(500) + FAST,
        "a denial for a registry that died mid-fetch",
    );
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_slowed_past_the_budget_is_decided_at_the_budget_naming_the_slow_step() {
    let env = Env::new(SECURE);
    let proxy = TcpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    let digest = env.push_signed("app", "v1").await;
    env.push_signed("audited/app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;
    proxy.set_mode(TcpMode::Delay(Duration::from_secs(3)));

    let tagged = format!("{host}/app:v1");
    let pinned = format!("{host}/app@{digest}");
    let audited = format!("{host}/audited/app:v1");
    let ((by_tag, t1), (by_digest, t2), (audit, t3)) = tokio::join!(
        webhook.review(&tagged),
        webhook.review(&pinned),
        webhook.review(&audited),
    );
    denied(
        &by_tag,
        &[&format!(
            "check-signature: verification of {tagged} did not finish within 2s: waiting for {host} to answer the tag resolution of {tagged}"
        )],
    );
    denied(
        &by_digest,
        &[&format!(
            "check-signature: verification of {pinned} did not finish within 2s: waiting for {host} to send the signatures of {host}/app@{digest}"
        )],
    );
    warned(
        &audit,
        &[&format!(
            "verification of {audited} did not finish within 2s: waiting for {host} to answer the tag resolution of {audited}"
        )],
    );
    for (took, what) in [(t1, "tag"), (t2, "digest"), (t3, "audit")] {
        took_between(took, BUDGET, BUDGET + SLACK, what);
    }
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_of_429_that_stop_within_the_retries_are_admitted_within_the_budget() {
    let env = Env::new(PLAIN);
    let proxy = HttpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    env.push_signed("app", "v2").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;

    // Two 429s without Retry-After: the client backs off 200 ms, then 400 ms.
    let too_many = Fault::Status {
        status: 429,
        retry_after: None,
    };
    proxy.set_rule(FaultRule::new(too_many).on_paths("/manifests/").times(2));
    let (response, took) = webhook.review(&format!("{host}/app:v1")).await;
    allowed(&response);
    took_between(took, Duration::from_millis(600), BUDGET, "two 429s");
    assert_count(&proxy, "429", 2);

    // One 429 with Retry-After: 1: the client waits the second the registry asked for.
    let slow_down = Fault::Status {
        status: 429,
        retry_after: Some(1),
    };
    proxy.set_rule(FaultRule::new(slow_down).on_paths("/manifests/").times(1));
    let (response, took) = webhook.review(&format!("{host}/app:v2")).await;
    allowed(&response);
    took_between(
        took,
        Duration::from_secs(1),
        BUDGET,
        "a 429 with Retry-After",
    );
    assert_count(&proxy, "429", 3);
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_answering_429_for_ever_is_denied_after_the_retries_and_says_so() {
    let env = Env::new(PLAIN);
    let proxy = HttpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    env.push_signed("audited/app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;
    proxy.set_rule(FaultRule::new(Fault::Status {
        status: 429,
        retry_after: None,
    }));

    let image = format!("{host}/app:v1");
    let audited = format!("{host}/audited/app:v1");
    let ((response, took), (audit, audit_took)) =
        tokio::join!(webhook.review(&image), webhook.review(&audited));
    denied(
        &response,
        &[&format!(
            "check-signature: could not resolve the digest of {image}: {host} kept failing GET /v2/app/manifests/v1 (429 Too Many Requests) after 4 tries; the registry is overloaded or failing, try again later"
        )],
    );
    warned(
        &audit,
        &[&format!(
            "could not resolve the digest of {audited}: {host} kept failing GET /v2/audited/app/manifests/v1 (429 Too Many Requests) after 4 tries"
        )],
    );
    // The retries' waits, and the answer within the budget: no timeout.
    took_between(took, RETRY_WAITS, BUDGET, "429 for ever");
    took_between(audit_took, RETRY_WAITS, BUDGET, "429 for ever (audit)");
    assert_count(&proxy, "429", 8);
    assert_count(&proxy, "forwarded", 0);

    // A Retry-After longer than the budget allows: decided at the budget, as a slow registry.
    proxy.set_rule(FaultRule::new(Fault::Status {
        status: 429,
        retry_after: Some(5),
    }));
    env.push_signed("app", "v2").await;
    let image = format!("{host}/app:v2");
    let (response, took) = webhook.review(&image).await;
    denied(
        &response,
        &[&format!(
            "check-signature: verification of {image} did not finish within 2s: waiting for {host} to answer the tag resolution of {image}"
        )],
    );
    took_between(took, BUDGET, BUDGET + SLACK, "429 with Retry-After: 5");
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_for_one_repository_holds_back_only_that_repository() {
    let env = Env::new(PLAIN);
    let proxy = HttpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    env.push_signed("app-limited", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;
    // The limited repository's 429 asks for 5 s, more than the budget.
    proxy.set_rule(
        FaultRule::new(Fault::Status {
            status: 429,
            retry_after: Some(5),
        })
        .on_paths("/v2/app-limited/"),
    );
    let limited = format!("{host}/app-limited:v1");
    let image = format!("{host}/app:v1");
    let ((held, _), (response, took)) = tokio::join!(webhook.review(&limited), async {
        // Let the limited repository's 429 arrive first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        webhook.review(&image).await
    });
    denied(
        &held,
        &[&format!(
            "verification of {limited} did not finish within 2s: waiting for {host} to answer the tag resolution of {limited}"
        )],
    );
    // The other repository of the same host is not held back by that 429.
    allowed(&response);
    assert!(took < Duration::from_millis(1500), "{took:?}");
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_answering_500_for_ever_is_denied_after_the_retries() {
    let env = Env::new(PLAIN);
    let proxy = HttpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    let digest = env.push_signed("app", "v1").await;
    env.push_signed("audited/app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;
    let failing = Fault::Status {
        status: 500,
        retry_after: None,
    };

    // On the tag resolution.
    proxy.set_rule(FaultRule::new(failing));
    let image = format!("{host}/app:v1");
    let audited = format!("{host}/audited/app:v1");
    let ((response, took), (audit, audit_took)) =
        tokio::join!(webhook.review(&image), webhook.review(&audited));
    denied(
        &response,
        &[&format!(
            "check-signature: could not resolve the digest of {image}: {host} kept failing GET /v2/app/manifests/v1 (500 Internal Server Error) after 4 tries; the registry is overloaded or failing, try again later"
        )],
    );
    warned(
        &audit,
        &[&format!(
            "could not resolve the digest of {audited}: {host} kept failing GET /v2/audited/app/manifests/v1 (500 Internal Server Error) after 4 tries"
        )],
    );
    took_between(took, RETRY_WAITS, BUDGET, "500 for ever");
    took_between(audit_took, RETRY_WAITS, BUDGET, "500 for ever (audit)");
    assert_count(&proxy, "500", 8);

    // On the signature payload only: the tag resolves, the signatures cannot be read.
    proxy.set_rule(FaultRule::new(failing).on_paths("/blobs/"));
    let (response, took) = webhook.review(&image).await;
    let payload_path = "/v2/app/blobs/sha256:";
    denied(
        &response,
        &[
            &format!(
                "check-signature: image {image} ({digest}): attestor set 1 of 1 needs 1 signature, got 0: "
            ),
            &format!("{host} kept failing GET {payload_path}"),
            "(500 Internal Server Error) after 4 tries",
        ],
    );
    took_between(took, RETRY_WAITS, BUDGET, "500 on the payload");
    assert_count(&proxy, "500", 12);
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_manifests_and_blobs_are_denied_at_once() {
    let env = Env::new(PLAIN);
    let proxy = HttpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    let digest = env.push_signed("app", "v2").await;
    env.push_signed("audited/app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;

    // The tag's manifest cut short.
    proxy.set_rule(FaultRule::new(Fault::Truncate).on_paths("/manifests/"));
    let image = format!("{host}/app:v1");
    let (response, took) = webhook.review(&image).await;
    denied(
        &response,
        &[
            &format!(
                "check-signature: could not resolve the digest of {image}: manifest {image} from {host} ended early: "
            ),
            " bytes arrived before the connection was cut (end of file before message length reached); try again",
        ],
    );
    took_between(took, Duration::ZERO, FAST, "a truncated manifest");
    let audited = format!("{host}/audited/app:v1");
    let (audit, took) = webhook.review(&audited).await;
    warned(
        &audit,
        &[&format!(
            "could not resolve the digest of {audited}: manifest {audited} from {host} ended early"
        )],
    );
    took_between(took, Duration::ZERO, FAST, "a truncated manifest (audit)");

    // The signature payload cut short.
    proxy.set_rule(FaultRule::new(Fault::Truncate).on_paths("/blobs/"));
    let image = format!("{host}/app:v2");
    let (response, took) = webhook.review(&image).await;
    denied(
        &response,
        &[
            &format!(
                "check-signature: image {image} ({digest}): attestor set 1 of 1 needs 1 signature, got 0: "
            ),
            &format!("of {host}/app from {host} ended early"),
        ],
    );
    took_between(took, Duration::ZERO, FAST, "a truncated blob");
    assert!(proxy.count("truncated") >= 3, "{:?}", proxy.counts());
    webhook.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_and_blobs_that_do_not_match_their_digest_are_denied_at_once() {
    let env = Env::new(PLAIN);
    let proxy = HttpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    let digest = env.push_signed("app", "v1").await;
    let digest2 = env.push_signed("app", "v2").await;
    env.push_signed("audited/app", "v1").await;
    let webhook = Webhook::start(&env.policies_dir(), options(&env, &host)).await;

    // The tag's manifest altered, its Docker-Content-Digest kept: the digest the registry
    // announced is what the bytes fail to match.
    proxy.set_rule(FaultRule::new(Fault::Corrupt).on_paths("/manifests/"));
    let image = format!("{host}/app:v1");
    let (response, took) = webhook.review(&image).await;
    let message = denied(
        &response,
        &[&format!(
            "check-signature: could not resolve the digest of {image}: digest mismatch for manifest {image}: expected {digest}, but the content hashes to sha256:"
        )],
    );
    took_between(took, Duration::ZERO, FAST, "an altered manifest");
    assert!(
        !message.contains(&format!("content hashes to {digest}")),
        "{message}"
    );
    let audited = format!("{host}/audited/app:v1");
    let (audit, took) = webhook.review(&audited).await;
    warned(
        &audit,
        &[&format!(
            "could not resolve the digest of {audited}: digest mismatch for manifest {audited}: expected sha256:"
        )],
    );
    took_between(took, Duration::ZERO, FAST, "an altered manifest (audit)");

    // A pinned image: its .sig manifest altered.
    let pinned = format!("{host}/app@{digest}");
    let (response, took) = webhook.review(&pinned).await;
    denied(
        &response,
        &[
            &format!(
                "check-signature: image {pinned} ({digest}): attestor set 1 of 1 needs 1 signature, got 0: "
            ),
            &format!(
                "digest mismatch for manifest {host}/app:{}",
                digest.signature_tag()
            ),
        ],
    );
    took_between(took, Duration::ZERO, FAST, "an altered signature manifest");

    // The signature payload altered.
    proxy.set_rule(FaultRule::new(Fault::Corrupt).on_paths("/blobs/"));
    let image = format!("{host}/app:v2");
    let (response, took) = webhook.review(&image).await;
    denied(
        &response,
        &[
            &format!(
                "check-signature: image {image} ({digest2}): attestor set 1 of 1 needs 1 signature, got 0: "
            ),
            "digest mismatch for blob sha256:",
            &format!("of {host}/app: expected sha256:"),
        ],
    );
    took_between(took, Duration::ZERO, FAST, "an altered blob");
    assert_eq!(proxy.count("corrupted"), 4, "{:?}", proxy.counts());
    webhook.stop().await;
}

/// `--registry-concurrency 1`: while one fetch holds the only connection slot to a slow
/// registry, a fetch for another image of that registry waits for the slot, and its denial at
/// the budget says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_registry_limit_holds_and_the_denial_names_the_busy_slots() {
    let env = Env::new(SECURE);
    let proxy = TcpFaultProxy::start(env.registry.host());
    let host = proxy.host();
    write_policies(&env, &host);
    env.push_signed("app", "v1").await;
    env.push_signed("app", "v2").await;
    let webhook = Webhook::start_with(
        &env.policies_dir(),
        options(&env, &host),
        VerifyConfig {
            budget: BUDGET,
            per_registry_concurrency: 1,
            ..VerifyConfig::default()
        },
    )
    .await;
    proxy.set_mode(TcpMode::Delay(Duration::from_secs(3)));

    let first = format!("{host}/app:v1");
    let second = format!("{host}/app:v2");
    let ((holds, t1), (waits, t2)) = tokio::join!(webhook.review(&first), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        webhook.review(&second).await
    });
    denied(
        &holds,
        &[&format!(
            "waiting for {host} to answer the tag resolution of {first}"
        )],
    );
    denied(
        &waits,
        &[&format!(
            "verification of {second} did not finish within 2s: waiting for one of the 1 connection slots to {host} (all busy)"
        )],
    );
    took_between(t1, BUDGET, BUDGET + SLACK, "first");
    took_between(t2, BUDGET, BUDGET + SLACK, "second");
    webhook.stop().await;
}
