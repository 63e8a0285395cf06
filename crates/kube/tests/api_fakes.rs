//! What a real API server cannot be made to do on demand, answered by a kube-rs `tower-test`
//! fake speaking the API's JSON: a watch that expires (410 Gone) after bookmarks and is listed
//! again, a Lease write that loses a race (409 Conflict), an API that stops answering while a
//! replica holds the Lease, and the release on a graceful stop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use sealgate_kube::lease::LeaseConfig;
use sealgate_kube::namespaces::NamespaceStore;
use sealgate_server::{NamespaceLabelSource, NamespaceLabels};
use serde_json::{Value, json};
use tokio::sync::watch;

/// One request the fake saw.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    /// Path and query.
    uri: String,
    body: Value,
}

type Responder = Box<dyn FnMut(&Seen) -> (u16, String) + Send>;

/// A client whose every request `respond` answers; returns it and the requests seen.
fn fake(mut respond: Responder) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let uri = request
                .uri()
                .path_and_query()
                .map(ToString::to_string)
                .unwrap_or_default();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let request = Seen { method, uri, body };
            let (status, text) = respond(&request);
            log.lock().unwrap().push(request);
            send.send_response(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(text.into_bytes()))
                    .unwrap(),
            );
        }
    });
    (Client::new(service, "default"), seen)
}

fn status(code: u16, reason: &str, message: &str) -> String {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
    .to_string()
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "resourceVersion": "1", "labels": labels}})
}

fn list(rv: &str, items: Vec<Value>) -> String {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
        "metadata": {"resourceVersion": rv}, "items": items})
    .to_string()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 5 s");
}

#[tokio::test]
async fn a_namespace_watch_that_expires_after_bookmarks_is_listed_again() {
    let lists = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&lists);
    let (client, seen) = fake(Box::new(move |r| {
        assert_eq!(r.method, Method::GET, "{r:?}");
        if !r.uri.contains("watch=true") {
            let mut n = counted.lock().unwrap();
            *n += 1;
            return match *n {
                1 => (
                    200,
                    list(
                        "10",
                        vec![
                            namespace("team-a", json!({"env": "prod"})),
                            namespace("team-b", json!({})),
                        ],
                    ),
                ),
                _ => (
                    200,
                    list("20", vec![namespace("team-a", json!({"env": "dev"}))]),
                ),
            };
        }
        if r.uri.contains("resourceVersion=10") {
            // Two bookmarks, then the resource version is too old: 410 Gone, as an ERROR event.
            let events = [
                json!({"type": "BOOKMARK", "object": {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"resourceVersion": "12"}}}),
                json!({"type": "BOOKMARK", "object": {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"resourceVersion": "15"}}}),
                json!({"type": "ERROR", "object": serde_json::from_str::<Value>(&status(410, "Expired", "too old resource version: 10 (15)")).unwrap()}),
            ];
            let text: Vec<String> = events.iter().map(Value::to_string).collect();
            return (200, text.join("\n") + "\n");
        }
        // After the second list: a watch that ends with nothing new.
        (200, String::new())
    }));
    let store = NamespaceStore::new();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(Arc::clone(&store).run(client, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    let env = |store: &NamespaceStore, ns: &str| match store.labels(ns) {
        NamespaceLabels::Known(l) => l.get("env").cloned(),
        NamespaceLabels::Unknown(_) => None,
    };
    until("the first list", || {
        env(&store, "team-a").as_deref() == Some("prod")
    })
    .await;
    // The 410 makes the watcher list again: team-b is gone and team-a relabelled.
    until("the list after 410 Gone", || {
        env(&store, "team-a").as_deref() == Some("dev")
    })
    .await;
    assert!(
        matches!(store.labels("team-b"), NamespaceLabels::Unknown(w) if w.contains("not seen")),
        "a namespace missing from the new list is forgotten"
    );
    let requests = seen.lock().unwrap().clone();
    let watches: Vec<&Seen> = requests
        .iter()
        .filter(|r| r.uri.contains("watch=true"))
        .collect();
    assert!(
        watches[0].uri.contains("allowWatchBookmarks=true"),
        "{:?}",
        watches[0]
    );
    assert!(*lists.lock().unwrap() >= 2, "{requests:?}");
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/sealgate/leases/sealgate-tls";

fn lease(holder: Option<&str>, renewed: &str, rv: &str) -> String {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "sealgate-tls", "namespace": "sealgate", "resourceVersion": rv},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 3,
                 "renewTime": renewed, "acquireTime": renewed, "leaseTransitions": 4}})
    .to_string()
}

fn config() -> LeaseConfig {
    LeaseConfig {
        namespace: "sealgate".into(),
        name: "sealgate-tls".into(),
        identity: "replica-b".into(),
        duration: Duration::from_secs(3),
    }
}

fn now_micro() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

#[tokio::test]
async fn a_lease_take_over_that_loses_the_race_stays_a_follower() {
    let gets = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&gets);
    let (client, seen) = fake(Box::new(move |r| {
        assert!(r.uri.starts_with(LEASE), "{r:?}");
        match r.method {
            Method::GET => {
                let mut n = counted.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    // Expired long ago: worth taking over.
                    (
                        200,
                        lease(Some("replica-a"), "2020-01-01T00:00:00.000000Z", "5"),
                    )
                } else {
                    // The winner of the race renews it.
                    (200, lease(Some("replica-c"), &now_micro(), "7"))
                }
            }
            Method::PUT => (
                409,
                status(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on leases.coordination.k8s.io \"sealgate-tls\": the object has been modified; please apply your changes to the latest version and try again",
                ),
            ),
            _ => panic!("unexpected {r:?}"),
        }
    }));
    let (held_tx, held) = watch::channel(false);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(config().run(client, held_tx, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    until("a second read", || *gets.lock().unwrap() >= 2).await;
    assert!(!*held.borrow(), "held after losing the race");
    let requests = seen.lock().unwrap().clone();
    let put = requests.iter().find(|r| r.method == Method::PUT).unwrap();
    // The take-over carried the version read, our identity and one more transition.
    assert_eq!(put.body["metadata"]["resourceVersion"], "5", "{put:?}");
    assert_eq!(put.body["spec"]["holderIdentity"], "replica-b");
    assert_eq!(put.body["spec"]["leaseTransitions"], 5);
    assert_eq!(
        requests.iter().filter(|r| r.method == Method::PUT).count(),
        1,
        "a live holder is followed, not written: {requests:?}"
    );
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_holder_that_cannot_renew_lets_go_before_the_lease_expires_and_releases_on_stop() {
    let down = Arc::new(Mutex::new(false));
    let api_down = Arc::clone(&down);
    let stored: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let store = Arc::clone(&stored);
    let (client, seen) = fake(Box::new(move |r| {
        if *api_down.lock().unwrap() {
            return (503, status(503, "ServiceUnavailable", "etcd is down"));
        }
        let mut lease = store.lock().unwrap();
        match r.method {
            Method::GET => match lease.as_ref() {
                Some(l) => (200, l.clone()),
                None => (
                    404,
                    status(
                        404,
                        "NotFound",
                        "leases.coordination.k8s.io \"sealgate-tls\" not found",
                    ),
                ),
            },
            Method::POST | Method::PUT => {
                let mut body = r.body.clone();
                body["metadata"]["resourceVersion"] = json!("9");
                *lease = Some(body.to_string());
                (
                    if r.method == Method::POST { 201 } else { 200 },
                    body.to_string(),
                )
            }
            _ => panic!("unexpected {r:?}"),
        }
    }));
    let (held_tx, mut held) = watch::channel(false);
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let task = tokio::spawn(config().run(client.clone(), held_tx, async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    tokio::time::timeout(Duration::from_secs(5), held.wait_for(|h| *h))
        .await
        .expect("created and held")
        .unwrap();
    let created = seen
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.method == Method::POST)
        .cloned()
        .unwrap();
    assert_eq!(created.body["spec"]["holderIdentity"], "replica-b");
    assert_eq!(created.body["spec"]["leaseDurationSeconds"], 3);

    // The API stops answering: the holder gives up within the lease's 3 s, before another
    // replica could take over (renewTime + 3 s).
    *down.lock().unwrap() = true;
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(4), held.wait_for(|h| !*h))
        .await
        .expect("let go")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Back: held again (the lease is still ours), then a graceful stop releases it.
    *down.lock().unwrap() = false;
    tokio::time::timeout(Duration::from_secs(5), held.wait_for(|h| *h))
        .await
        .expect("held again")
        .unwrap();
    stop_tx.send(true).unwrap();
    task.await.unwrap();
    let released: Value = serde_json::from_str(stored.lock().unwrap().as_ref().unwrap()).unwrap();
    assert!(released["spec"]["holderIdentity"].is_null(), "{released}");
    assert_eq!(released["spec"]["leaseDurationSeconds"], 1);
}
