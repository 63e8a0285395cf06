//! The webhook's caching, sharing and deadline logic on a hand-written fake [`FakeFetch`] behind
//! the real [`CachingFetcher`](sealgate_server::fetcher::CachingFetcher): the same properties as
//! the registry tests in `caching.rs` and `deadline.rs`, in milliseconds, counted on the fake.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealgate_core::Digest;
use sealgate_core::crypto::key::SigningKey;
use sealgate_core::engine::FetchFailureKind;
use sealgate_server::config::{CacheConfig, VerifyConfig};
use sealgate_test_registry::FakeFetch;
use serde_json::{Value, json};

use crate::common::*;

const HOST: &str = "registry.company.com";

struct Fake {
    _dir: tempfile::TempDir,
    fake: Arc<FakeFetch>,
    key: SigningKey,
    state: sealgate_server::AppState,
    app: axum::Router,
}

fn fake_with(action: &str, extra: &str, verify: VerifyConfig) -> Fake {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        policy("require-signed", &key, &format!("{HOST}/*"), action, extra),
    )
    .unwrap();
    let fake = FakeFetch::new();
    let (state, app) = fake_state(dir.path(), verify, fake.clone());
    Fake {
        _dir: dir,
        fake,
        key,
        state,
        app,
    }
}

impl Fake {
    /// A signed image `HOST/NAME:v1`, its tag resolving to a digest of its own.
    fn signed(&self, name: &str) -> (String, Digest) {
        let image = format!("{HOST}/{name}:v1");
        let digest = Digest::sha256_of(name.as_bytes());
        self.fake.tag(&image, &digest);
        self.fake.sign(&image, &digest, &self.key);
        (image, digest)
    }

    async fn admit(&self, path: &str, image: &str) -> Value {
        tokio::time::timeout(
            Duration::from_secs(5),
            admit(&self.app, path, &review("pod-create", image)),
        )
        .await
        .expect("the webhook answers; it never hangs")
    }
}

fn message(response: &Value) -> &str {
    response["status"]["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_simultaneous_admissions_share_one_resolution_one_fetch_and_few_checks() {
    let f = fake_with("Enforce", "", VerifyConfig::default());
    let (image, _) = f.signed("app");
    f.fake.set_delay(Duration::from_millis(30));
    let app = Arc::new(f);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (app, image) = (app.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = review("pod-create", &image);
            r["request"]["uid"] = json!(format!("uid-{i}"));
            admit(&app.app, "/mutate", &r).await
        }));
    }
    for t in tasks {
        let response = t.await.unwrap();
        assert_eq!(response["allowed"], true, "{response}");
    }
    assert_eq!(app.fake.resolves(), 1, "one tag resolution");
    assert_eq!(app.fake.signature_fetches(), 1, "one signature fetch");
    let metrics = app.state.metrics();
    let shared = |fetch| {
        metrics.counter(
            sealgate_server::metrics::FETCHES_SHARED,
            &[("fetch", fetch)],
        )
    };
    let hits = |cache| metrics.counter(sealgate_server::metrics::CACHE_HITS, &[("cache", cache)]);
    assert_eq!(shared("digest") + hits("digest"), 99.0);
    // The requests that joined the fetch found the first one's verified outcome instead of
    // checking the same signature again: far fewer checks than requests.
    assert!(
        hits("outcome_after_fetch") + hits("outcome") >= 50.0,
        "outcome hits: {} + {}",
        hits("outcome"),
        hits("outcome_after_fetch")
    );
}

#[tokio::test]
async fn a_second_request_costs_nothing_until_the_ttls_pass_and_failures_are_not_cached() {
    let verify = VerifyConfig {
        cache: CacheConfig {
            outcome_ttl: Duration::from_millis(150),
            digest_ttl: Duration::from_millis(150),
            signature_set_ttl: Duration::from_millis(150),
            ..CacheConfig::default()
        },
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (image, digest) = f.signed("app");
    assert_eq!(f.admit("/mutate", &image).await["allowed"], true);
    assert_eq!((f.fake.resolves(), f.fake.signature_fetches()), (1, 1));
    for _ in 0..5 {
        let response = f.admit("/mutate", &image).await;
        assert_eq!(response["allowed"], true, "{response}");
    }
    assert_eq!((f.fake.resolves(), f.fake.signature_fetches()), (1, 1));

    // A pinned image needs no resolution, and its outcome is the cached one.
    let pinned = format!("{HOST}/app@{digest}");
    assert_eq!(f.admit("/mutate", &pinned).await["allowed"], true);
    assert_eq!((f.fake.resolves(), f.fake.signature_fetches()), (1, 1));

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.admit("/mutate", &image).await["allowed"], true);
    assert_eq!((f.fake.resolves(), f.fake.signature_fetches()), (2, 2));

    // A failure is never cached: the next request asks again and succeeds.
    let (other, _) = f.signed("other");
    f.fake.fail(
        HOST,
        FetchFailureKind::Unreachable {
            reason: format!("could not connect to {HOST}: connection refused"),
        },
    );
    let response = f.admit("/mutate", &other).await;
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("connection refused"),
        "{response}"
    );
    f.fake.heal(HOST);
    let response = f.admit("/mutate", &other).await;
    assert_eq!(response["allowed"], true, "{response}");
}

#[tokio::test]
async fn use_cache_false_fetches_and_verifies_every_time() {
    let f = fake_with(
        "Enforce",
        "\n        useCache: false",
        VerifyConfig::default(),
    );
    let (image, _) = f.signed("app");
    for n in 1..=3 {
        assert_eq!(f.admit("/mutate", &image).await["allowed"], true);
        assert_eq!(f.fake.signature_fetches(), n);
    }
}

#[tokio::test]
async fn what_does_not_finish_within_the_budget_is_decided_at_the_budget_naming_the_slow_step() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(200),
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (image, digest) = f.signed("app");
    f.fake.hang(HOST);

    let start = Instant::now();
    let response = f.admit("/mutate", &image).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        message(&response).contains(&format!(
            "check-signature: verification of {image} did not finish within 200ms: waiting for {HOST} to answer the tag resolution of {image}"
        )),
        "{response}"
    );
    // The next request joins the stuck resolution instead of starting another.
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(f.fake.resolves(), 1);
    assert_eq!(
        f.state.metrics().counter(
            sealgate_server::metrics::DEADLINE_EXCEEDED,
            &[("webhook", "mutate")]
        ),
        2.0
    );
    // A pinned image: the signature fetch is what runs out of time.
    let pinned = format!("{HOST}/app@{digest}");
    let response = f.admit("/mutate", &pinned).await;
    assert!(
        message(&response).contains(&format!(
            "verification of {pinned} did not finish within 200ms: waiting for {HOST} to send the signatures of {HOST}/app@{digest}"
        )),
        "{response}"
    );
    // Once the registry answers, the fetch that ran on filled the cache.
    f.fake.release(HOST);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(f.fake.resolves(), 1);
}

#[tokio::test]
async fn audit_admits_what_does_not_finish_with_a_warning() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(100),
        ..VerifyConfig::default()
    };
    let f = fake_with("Audit", "\n        mutateDigest: false", verify);
    let (image, _) = f.signed("app");
    f.fake.hang(HOST);
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        response["warnings"][0],
        format!(
            "policy require-signed.check-signature: verification of {image} did not finish within 100ms: waiting for {HOST} to answer the tag resolution of {image}"
        )
    );
}

#[tokio::test]
async fn busy_host_slots_are_what_the_denial_names() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(150),
        per_registry_concurrency: 1,
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (first, _) = f.signed("first");
    let (second, _) = f.signed("second");
    f.fake.hang(HOST);
    // The first request holds the host's one slot with a fetch that never ends.
    let _ = f.admit("/mutate", &first).await;
    let response = f.admit("/mutate", &second).await;
    assert!(
        message(&response).contains(&format!(
            "verification of {second} did not finish within 150ms: waiting for one of the 1 connection slots to {HOST} (all busy)"
        )),
        "{response}"
    );
    assert_eq!(f.fake.resolves(), 1, "the second fetch never got a slot");
}

#[tokio::test]
async fn a_slow_tag_does_not_hold_up_a_pinned_image_on_another_host() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(300),
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (_, digest) = f.signed("app");
    let pinned = format!("{HOST}/app@{digest}");
    // One Pod, two images: a tag on a hung host (not covered by the policy) and the pinned image.
    let slow = "slow.example/app:v1";
    f.fake.hang("slow.example");
    let mut r = review("pod-create", &pinned);
    r["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "slow", "image": slow}));
    let start = Instant::now();
    let response = admit(&f.app, "/mutate", &r).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_fetch_nobody_waits_for_is_cancelled_at_the_unattended_limit_and_counted() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(100),
        unattended_fetch_limit: Duration::from_millis(200),
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (image, _) = f.signed("app");
    f.fake.hang(HOST);
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], false, "{response}");
    let unattended = |end| {
        f.state.metrics().counter(
            sealgate_server::metrics::FETCHES_UNATTENDED,
            &[("fetch", "digest"), ("end", end)],
        )
    };
    // Answered at the budget; the resolution runs on unattended, within its limit.
    assert_eq!(unattended("cancelled"), 0.0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(unattended("cancelled"), 1.0);
    assert_eq!(unattended("finished"), 0.0);
    // It is gone: once the registry answers, the next request resolves the tag anew.
    f.fake.release(HOST);
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(f.fake.resolves(), 2);
}

#[tokio::test]
async fn a_fetch_that_finishes_after_its_request_was_answered_fills_the_cache_and_is_counted() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(100),
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (image, _) = f.signed("app");
    f.fake.hang(HOST);
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], false, "{response}");
    f.fake.release(HOST);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        f.state.metrics().counter(
            sealgate_server::metrics::FETCHES_UNATTENDED,
            &[("fetch", "digest"), ("end", "finished")]
        ),
        1.0
    );
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        f.fake.resolves(),
        1,
        "the resolution that ran on is the one used"
    );
}
/// Log lines written through a `tracing` subscriber, for tests.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn every_line_of_a_review_carries_its_span_filled_once_with_the_decision() {
    use sealgate_server::log::{LogFormat, subscriber};
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    // A current-thread runtime: the review runs on this thread, under this dispatcher.
    let _logging =
        tracing::subscriber::set_default(subscriber(LogFormat::Json, move || writer.clone()));
    let f = fake_with("Enforce", "", VerifyConfig::default());
    let image = format!("{HOST}/unsigned:v1");
    f.fake.tag(&image, &Digest::sha256_of(b"unsigned"));
    let response = f.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], false, "{response}");

    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let decisions: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["msg"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 1, "{text}");
    let d = &decisions[0];
    assert_eq!(d["level"], "info");
    assert_eq!(d["uid"], "0df28fbd-5f5f-11e8-bc74-36e6bb280816", "{d}");
    assert_eq!(d["webhook"], "mutate");
    assert_eq!(d["operation"], "CREATE");
    assert_eq!(d["kind"], "Pod");
    assert_eq!(d["namespace"], "team-a");
    assert_eq!(d["name"], "web");
    assert_eq!(d["decision"], "denied");
    assert_eq!(d["allowed"], false);
    assert!(d["duration_ms"].as_f64().is_some(), "{d}");
    assert!(
        d["reasons"].as_str().unwrap().contains("require-signed"),
        "{d}"
    );
}

#[tokio::test]
async fn image_checks_are_counted_by_result_and_reason_kind() {
    use sealgate_server::metrics::IMAGE_CHECKS;
    let f = fake_with("Enforce", "", VerifyConfig::default());
    let (signed, _) = f.signed("app");
    let unsigned = format!("{HOST}/unsigned:v1");
    f.fake.tag(&unsigned, &Digest::sha256_of(b"unsigned"));
    let checks = |result: &str, reason: &str| {
        f.state
            .metrics()
            .counter(IMAGE_CHECKS, &[("result", result), ("reason", reason)])
    };
    assert_eq!(f.admit("/mutate", &unsigned).await["allowed"], false);
    assert_eq!(checks("fail", "no_signatures"), 1.0);
    assert_eq!(checks("pass", "verified"), 0.0);
    assert_eq!(f.admit("/mutate", &signed).await["allowed"], true);
    assert_eq!(f.admit("/validate", &unsigned).await["allowed"], false);
    assert_eq!(checks("fail", "no_signatures"), 2.0);
    assert_eq!(checks("pass", "verified"), 1.0);
    // An image no rule covers is counted as the audit trail records it.
    f.admit("/mutate", "docker.io/library/nginx:1.27").await;
    assert_eq!(checks("none", "not_covered"), 1.0);

    let (status, body) = call(&f.app, "GET", "/metrics", axum::body::Body::empty()).await;
    assert_eq!(status, axum::http::StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    for line in [
        "sealgate_image_checks_total{result=\"fail\",reason=\"no_signatures\"} 2",
        "sealgate_image_checks_total{result=\"pass\",reason=\"verified\"} 1",
        "sealgate_image_checks_total{result=\"none\",reason=\"not_covered\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
}

const SIGSTORE_BUNDLE: &str = "\n        type: SigstoreBundle";

impl Fake {
    /// An image `HOST/NAME:v1` signed the cosign v3 way only: a bundle among its referrers.
    fn bundle_signed(&self, name: &str) -> (String, Digest) {
        let image = format!("{HOST}/{name}:v1");
        let digest = Digest::sha256_of(name.as_bytes());
        self.fake.tag(&image, &digest);
        self.fake.sign_bundle(&image, &digest, &self.key);
        (image, digest)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_admissions_share_one_referrers_fetch_and_the_verified_bundle_is_cached() {
    let f = fake_with("Enforce", SIGSTORE_BUNDLE, VerifyConfig::default());
    let (image, _) = f.bundle_signed("app");
    f.fake.set_delay(Duration::from_millis(30));
    let app = Arc::new(f);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (app, image) = (app.clone(), image.clone());
        tasks.push(tokio::spawn(async move {
            let mut r = review("pod-create", &image);
            r["request"]["uid"] = json!(format!("uid-{i}"));
            admit(&app.app, "/mutate", &r).await
        }));
    }
    for t in tasks {
        let response = t.await.unwrap();
        assert_eq!(response["allowed"], true, "{response}");
    }
    // The referrers only: one fetch of them, no `.sig`.
    assert_eq!(app.fake.resolves(), 1);
    assert_eq!(app.fake.bundle_fetches(), 1, "one referrers fetch");
    assert_eq!(app.fake.signature_fetches(), 0);
    let metrics = app.state.metrics();
    let shared = metrics.counter(
        sealgate_server::metrics::FETCHES_SHARED,
        &[("fetch", "bundles")],
    );
    let hits = |cache| metrics.counter(sealgate_server::metrics::CACHE_HITS, &[("cache", cache)]);
    assert!(
        shared + hits("bundles") + hits("outcome") + hits("outcome_after_fetch") >= 49.0,
        "shared {shared}, bundle hits {}, outcome hits {} + {}",
        hits("bundles"),
        hits("outcome"),
        hits("outcome_after_fetch")
    );
    // Later admissions are answered from the outcome cache: nothing fetched.
    let response = app.admit("/mutate", &image).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(app.fake.bundle_fetches(), 1);
}

#[tokio::test]
async fn a_cosign_rule_reads_the_referrers_when_there_is_no_sig_and_caches_what_verified() {
    let verify = VerifyConfig {
        cache: CacheConfig {
            signature_set_ttl: Duration::from_millis(50),
            ..CacheConfig::default()
        },
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", "", verify);
    let (v3, _) = f.bundle_signed("v3");
    assert_eq!(f.admit("/mutate", &v3).await["allowed"], true);
    assert_eq!(
        (f.fake.signature_fetches(), f.fake.bundle_fetches()),
        (1, 1)
    );
    // The outcome verified from the bundle is cached under the Cosign rule's key.
    assert_eq!(f.admit("/mutate", &v3).await["allowed"], true);
    assert_eq!(
        (f.fake.signature_fetches(), f.fake.bundle_fetches()),
        (1, 1)
    );

    // A legacy `.sig`: the referrers are not read.
    let (legacy, _) = f.signed("legacy");
    assert_eq!(f.admit("/mutate", &legacy).await["allowed"], true);
    assert_eq!(
        (f.fake.signature_fetches(), f.fake.bundle_fetches()),
        (2, 1)
    );

    // Neither: denied naming both places; a failure is not cached, so the next one asks again.
    let unsigned = format!("{HOST}/unsigned:v1");
    let digest = Digest::sha256_of(b"unsigned");
    f.fake.tag(&unsigned, &digest);
    let response = f.admit("/mutate", &unsigned).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        message(&response).contains(&format!(
            "entry 0: no signatures found at {HOST}/unsigned:{}; no Sigstore bundle signatures found among the referrers at {HOST}/unsigned:{} (referrers tag)",
            digest.signature_tag(),
            digest.referrers_tag()
        )),
        "{response}"
    );
    assert_eq!(
        (f.fake.signature_fetches(), f.fake.bundle_fetches()),
        (3, 2)
    );
    // Signed the v3 way since: once the fetched sets expire, the next admission reads the
    // referrers again and passes.
    f.fake.sign_bundle(&unsigned, &digest, &f.key);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let response = f.admit("/mutate", &unsigned).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        (f.fake.signature_fetches(), f.fake.bundle_fetches()),
        (4, 3)
    );
}

#[tokio::test]
async fn a_referrers_fetch_cut_off_by_the_budget_names_the_referrers() {
    let verify = VerifyConfig {
        budget: Duration::from_millis(200),
        ..VerifyConfig::default()
    };
    let f = fake_with("Enforce", SIGSTORE_BUNDLE, verify);
    let (_, digest) = f.bundle_signed("app");
    f.fake.hang(HOST);
    let pinned = format!("{HOST}/app@{digest}");
    let response = f.admit("/mutate", &pinned).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert!(
        message(&response).contains(&format!(
            "verification of {pinned} did not finish within 200ms: waiting for {HOST} to send the Sigstore bundles among the referrers of {HOST}/app@{digest}"
        )),
        "{response}"
    );
    // The next request joins the stuck fetch; once it ends, the fetch filled the cache.
    let response = f.admit("/mutate", &pinned).await;
    assert_eq!(response["allowed"], false);
    assert_eq!(f.fake.bundle_fetches(), 1);
    f.fake.release(HOST);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let response = f.admit("/mutate", &pinned).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(f.fake.bundle_fetches(), 1);
}
