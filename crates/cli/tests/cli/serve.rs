//! `sealgate serve` through the binary: start it on a free port with the self-signed CA, send
//! AdmissionReviews over HTTPS trusting the CA it printed, read its metrics, stop it with SIGTERM
//! (exit 0), and find the decisions with `sealgate audit`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Workdir, image};
use base64::Engine as _;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::{Value, json};

/// `sealgate serve` on the workdir's `policies`, a free port and `data`.
pub(crate) const SERVE: [&str; 7] = [
    "serve",
    "--policies",
    "policies",
    "--listen",
    "127.0.0.1:0",
    "--data-dir",
    "data",
];

/// The server's child process, killed if the test fails before stopping it.
pub(crate) struct Serving(pub(crate) Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `sealgate ARGS` in `w` with stderr to `serve.log`; returns the process and its stdout
/// lines as they come.
pub(crate) fn spawn_serve(
    w: &Workdir,
    args: &[&str],
) -> (Serving, std::sync::mpsc::Receiver<String>) {
    let stderr = std::fs::File::create(w.path("serve.log")).unwrap();
    let mut child = w
        .command(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    (Serving(child), rx)
}

/// Waits for `sealgate serve`'s "sealgate listening on https://ADDR", "CA certificate: PATH",
/// "ready" on `lines`; returns the port and the CA file's path.
pub(crate) fn wait_ready(
    w: &Workdir,
    lines_rx: &std::sync::mpsc::Receiver<String>,
) -> (String, String) {
    // "sealgate listening on https://ADDR", "CA certificate: PATH", "ready".
    let mut printed = Vec::new();
    while printed.last().map(String::as_str) != Some("ready") {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "no 'ready' from sealgate serve; stdout {printed:?}\nstderr:\n{}",
                    std::fs::read_to_string(w.path("serve.log")).unwrap_or_default()
                )
            });
        printed.push(line);
    }
    let address = printed[0]
        .strip_prefix("sealgate listening on https://")
        .unwrap()
        .to_string();
    let ca = printed[1]
        .strip_prefix("CA certificate: ")
        .unwrap()
        .to_string();
    assert!(ca.ends_with("/data/tls/ca.pem"), "{ca}");
    let port = address.rsplit_once(':').unwrap().1.to_string();
    (port, ca)
}

pub(crate) fn review(uid: &str, image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "default",
            "operation": "CREATE",
            "userInfo": {"username": "kubernetes-admin"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": uid, "namespace": "default"},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "oldObject": null,
            "dryRun": false
        }
    })
}

#[test]
fn serve_answers_over_https_and_stops_cleanly_on_sigterm() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let signed = image(&registry, "app:v1");
    let unsigned = image(&registry, "app:v2");
    registry.push_image("app", "v1");
    registry.push_image("app", "v2");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &signed])
        .success();
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    std::fs::create_dir(w.path("policies")).unwrap();
    std::fs::write(
        w.path("policies/require-signed.yaml"),
        format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: require-signed\nspec:\n  rules:\n  - name: check\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"{}/*\"]\n      failureAction: Enforce\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n              {}\n",
            registry.host(),
            pem.trim().replace('\n', "\n              ")
        ),
    )
    .unwrap();

    let token = "9f2c4e8a1b7d3f6e0a5c9b2d8e4f1a7c";
    std::fs::write(w.path("audit-token"), format!("{token}\n")).unwrap();
    let mut args: Vec<String> = SERVE
        .iter()
        .chain(&["--log-format", "json", "--audit-token-file", "audit-token"])
        .map(|a| a.to_string())
        .collect();
    args.extend(registry.cli_args());
    let (mut serving, lines_rx) =
        spawn_serve(&w, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let (port, ca) = wait_ready(&w, &lines_rx);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let base = format!("https://localhost:{port}");
        let post = |uid: &str, img: &str| {
            let http = http.clone();
            let url = format!("{base}/mutate");
            let body = review(uid, img).to_string();
            async move {
                let r = http.post(url).body(body).send().await.unwrap();
                assert_eq!(r.status(), 200);
                serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap()["response"]
                    .clone()
            }
        };
        let allowed = post("signed-pod", &signed).await;
        assert_eq!(allowed["uid"], "signed-pod");
        assert_eq!(allowed["allowed"], true, "{allowed}");
        let patch: Value = serde_json::from_slice(
            &base64::engine::general_purpose::STANDARD
                .decode(allowed["patch"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(
            patch.to_string().contains(&format!("{signed}@sha256:")),
            "{patch}"
        );

        let denied = post("unsigned-pod", &unsigned).await;
        assert_eq!(denied["allowed"], false, "{denied}");
        assert_eq!(denied["status"]["code"], 403);
        assert!(
            denied["status"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("check: image {unsigned}")),
            "{denied}"
        );

        let metrics = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for want in [
            "sealgate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"true\"} 1",
            "sealgate_admission_requests_total{webhook=\"mutate\",operation=\"CREATE\",kind=\"Pod\",allowed=\"false\"} 1",
        ] {
            assert!(metrics.contains(want), "{want}\n{metrics}");
        }

        // GET /audit wants the token: none or a wrong one is 401, the right one gets the
        // records (the writer stores them within 200 ms).
        let audit_url = format!("{base}/audit");
        for authorization in [None, Some(format!("Bearer {token}0"))] {
            let mut request = http.get(&audit_url);
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 401, "{authorization:?}");
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
            assert!(r.text().await.unwrap().contains("--audit-token-file"));
        }
        let mut records = Vec::new();
        for _ in 0..50 {
            let r = http
                .get(&audit_url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            records = serde_json::from_slice::<Vec<Value>>(&r.bytes().await.unwrap()).unwrap();
            if records.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(records.len(), 2, "{records:?}");
    });

    // The client's connections close with its runtime (an idle HTTP/2 connection that nobody
    // closes would hold the drain for its whole timeout).
    drop(rt);

    // SIGTERM: drain, flush, exit 0.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &serving.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(exit) = serving.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(w.path("serve.log")).unwrap();
    assert_eq!(exit.code(), Some(0), "{log}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "drained at once: {log}"
    );
    let decisions: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["msg"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 2, "{log}");
    assert!(
        log.contains("\"msg\":\"audit trail flushed; stopped\""),
        "{log}"
    );

    let audit = w.run("", &["audit", "--data-dir", "data", "-o", "json"]);
    audit.success();
    let records: Vec<Value> = serde_json::from_str(&audit.stdout()).unwrap();
    assert_eq!(records.len(), 2, "{}", audit.stdout());
    assert!(
        records
            .iter()
            .any(|r| r["uid"] == "signed-pod" && r["result"] == "pass")
    );
    assert!(
        records
            .iter()
            .any(|r| r["uid"] == "unsigned-pod" && r["result"] == "fail")
    );
}

#[test]
fn an_unusable_audit_token_file_stops_serve_before_it_listens() {
    let w = Workdir::new();
    std::fs::create_dir(w.path("policies")).unwrap();
    std::fs::write(w.path("short-token"), "abc\n").unwrap();
    for (file, why) in [
        ("short-token", "fewer than 16"),
        ("no-such-file", "No such file"),
    ] {
        w.run("", &[&SERVE[..], &["--audit-token-file", file]].concat())
            .expect_code(2)
            .stderr_has(&format!("cannot use the audit token file {file}"))
            .stderr_has(why);
    }
}

#[test]
fn serve_says_it_is_not_ready_while_every_policy_file_is_invalid() {
    let w = Workdir::new();
    std::fs::create_dir(w.path("policies")).unwrap();
    std::fs::write(
        w.path("policies/broken.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: broken}\nspec:\n  rules: [",
    )
    .unwrap();
    let (_serving, rx) = spawn_serve(&w, &SERVE);
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.starts_with("not ready")) {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no 'not ready' line; stdout {lines:?}"));
        assert_ne!(line, "ready", "{lines:?}");
        lines.push(line);
    }
    assert!(
        lines.last().unwrap().contains("/readyz answers 503"),
        "{lines:?}"
    );
}
