//! Two `sealgate serve --kubernetes` replicas against one real kube-apiserver, sharing their
//! certificates through a Secret (`--tls-secret`) and a Lease: one holds the Lease, rotates the
//! CA and registers; a full CA rotation (new CA registered, served, old CA retired) happens under
//! a stream of admissions without one failing; the other replica takes over when the holder
//! stops; an edited webhook configuration is put back, a deleted one stays deleted.

use std::io::BufRead as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealgate_test_cluster::TestCluster;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

use crate::common::{Workdir, image};
use crate::kubernetes::{
    eventually, free_port, install_crds, quick_start_policy, ready_condition, serve_args,
};
use crate::serve::Serving;

/// One replica: its process, its port, its log.
struct Replica {
    process: Serving,
    port: u16,
    dir: Workdir,
}

impl Replica {
    fn start(cluster: &TestCluster, registry: &TestRegistry, name: &str) -> Replica {
        let dir = Workdir::new();
        let port = free_port();
        let mut args = serve_args(cluster, port);
        args.extend(
            [
                "--tls-secret",
                "sealgate/sealgate-tls",
                // A CA's whole life in a test: rotated in once 15 s are left, 3 s per step.
                "--ca-validity",
                "45s",
                "--cert-validity",
                "15s",
                "--rotation-overlap",
                "3s",
            ]
            .map(String::from),
        );
        args.extend(registry.cli_args());
        let stderr = std::fs::File::create(dir.path("serve.log")).unwrap();
        let mut child = dir
            .command(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .env("POD_NAME", name)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let replica = Replica {
            process: Serving(child),
            port,
            dir,
        };
        let mut printed = Vec::new();
        while printed.last().map(String::as_str) != Some("ready") {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!("{name}: no 'ready'; stdout {printed:?}\n{}", replica.log())
                });
            printed.push(line);
        }
        assert!(
            printed
                .iter()
                .any(|l| l == "certificates: Secret sealgate/sealgate-tls (rotated by the holder of the Lease sealgate/sealgate-tls)"),
            "{printed:?}"
        );
        replica
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("serve.log")).unwrap_or_default()
    }

    /// SIGTERM, and wait for the exit.
    fn stop(mut self) -> String {
        let pid = self.process.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.process.0.wait().unwrap();
        assert!(status.success(), "{status}\n{}", self.log());
        self.log()
    }
}

/// `openssl s_client` to `port`, verifying with `bundle` (PEM): whether the handshake verified.
fn verifies(port: u16, bundle: &str, dir: &Workdir) -> bool {
    let path = dir.path("bundle.pem");
    std::fs::write(&path, bundle).unwrap();
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            &path.display().to_string(),
            "-verify_return_error",
            "-brief",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (.ci/run installs it)");
    out.status.success()
}

fn secret_field(cluster: &TestCluster, key: &str) -> String {
    let out = cluster.kubectl_ok(&[
        "get",
        "secret",
        "sealgate-tls",
        "-n",
        "sealgate",
        "-o",
        &format!("jsonpath={{.data.{}}}", key.replace('.', "\\.")),
    ]);
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(out.trim())
            .unwrap(),
    )
    .unwrap()
}

fn lease_holder(cluster: &TestCluster) -> String {
    cluster
        .kubectl(&[
            "get",
            "lease",
            "sealgate-tls",
            "-n",
            "sealgate",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .stdout
        .trim()
        .to_string()
}

fn registered(cluster: &TestCluster, kind: &str, path: &str) -> String {
    cluster
        .kubectl(&["get", kind, "sealgate", "-o", &format!("jsonpath={path}")])
        .stdout
        .trim()
        .to_string()
}

#[test]
fn two_replicas_share_a_rotating_certificate_and_hand_the_lease_over() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let signed = image(&registry, "app:v1");
    let unsigned = image(&registry, "app:v2");
    registry.push_image("app", "v1");
    registry.push_image("app", "v2");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &signed])
        .success();
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    install_crds(&cluster, &["kyverno-policies.yaml"]);
    cluster.kubectl_ok(&["create", "namespace", "sealgate"]);

    let a = Replica::start(&cluster, &registry, "replica-a");
    let b = Replica::start(&cluster, &registry, "replica-b");
    assert_eq!(lease_holder(&cluster), "replica-a", "{}", a.log());
    assert!(!b.log().contains("holding the lease"), "{}", b.log());
    // The holder registered itself, with the Secret's bundle.
    let url_a = format!("https://127.0.0.1:{}/mutate", a.port);
    eventually("replica-a registered", Duration::from_secs(10), || {
        (registered(
            &cluster,
            "mutatingwebhookconfiguration",
            "{.webhooks[0].clientConfig.url}",
        ) == url_a)
            .then_some(())
    });

    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &quick_start_policy(
            "require-signed-images",
            &format!("{}/app*", registry.host()),
            &pem,
            "",
        ),
    );
    let (status, _) = eventually("Ready", Duration::from_secs(20), || {
        ready_condition(&cluster, "require-signed-images")
    });
    assert_eq!(status, "True");

    // Admissions through a whole CA rotation: every signed Pod admitted, every unsigned one
    // refused by the policy (never a TLS failure), while the Secret moves through its steps.
    let started = Instant::now();
    let mut issuers = Vec::new();
    let mut two_cas_seen = false;
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(45) {
        n += 1;
        let ok = cluster.kubectl(&[
            "run",
            &format!("signed-{n}"),
            "--image",
            &signed,
            "--restart=Never",
            "--dry-run=server",
        ]);
        assert!(
            ok.success(),
            "admission {n} failed after {:?}: {}\n{}",
            started.elapsed(),
            ok.stderr,
            a.log()
        );
        let refused = cluster.kubectl(&[
            "run",
            &format!("unsigned-{n}"),
            "--image",
            &unsigned,
            "--restart=Never",
            "--dry-run=server",
        ]);
        assert!(!refused.success());
        assert!(
            refused.stderr.contains("require-signed-images")
                && !refused.stderr.contains("failed calling webhook"),
            "refusal {n}: {}",
            refused.stderr
        );
        let bundle = secret_field(&cluster, "ca.crt");
        if bundle.matches("BEGIN CERTIFICATE").count() == 2 {
            two_cas_seen = true;
        }
        let issuer = secret_field(&cluster, "issuer.crt");
        if !issuers.contains(&issuer) {
            issuers.push(issuer);
        }
        // Both replicas serve a certificate the registered bundle verifies.
        let registered_bundle = registered(
            &cluster,
            "validatingwebhookconfiguration",
            "{.webhooks[0].clientConfig.caBundle}",
        );
        use base64::Engine as _;
        let registered_bundle = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(registered_bundle)
                .unwrap(),
        )
        .unwrap();
        for (name, port) in [("a", a.port), ("b", b.port)] {
            // A replica picks a new serving certificate up within a poll (a quarter overlap).
            let fine = verifies(port, &registered_bundle, &w) || {
                std::thread::sleep(Duration::from_millis(900));
                verifies(port, &registered_bundle, &w)
            };
            assert!(
                fine,
                "replica {name} serves a certificate the registered bundle does not verify"
            );
        }
    }
    assert!(n >= 20, "only {n} rounds");
    assert!(
        two_cas_seen,
        "never saw two CAs registered during a rotation"
    );
    assert!(issuers.len() >= 2, "the CA was never rotated: {}", a.log());
    let log_a = a.log();
    for step in [
        "CA rotation begun",
        "CA rotation: serving a certificate of the new CA",
        "CA rotation done",
        "the serving certificate reissued",
    ] {
        assert!(log_a.contains(step), "{step}: {log_a}");
    }
    assert!(
        b.log()
            .contains("serving certificate reloaded from the Secret"),
        "{}",
        b.log()
    );

    // The holder stops: it releases the Lease, the other replica takes over and registers.
    let log_a = a.stop();
    assert!(log_a.contains("lease released"), "{log_a}");
    let url_b = format!("https://127.0.0.1:{}/mutate", b.port);
    eventually("replica-b registered", Duration::from_secs(15), || {
        (registered(
            &cluster,
            "mutatingwebhookconfiguration",
            "{.webhooks[0].clientConfig.url}",
        ) == url_b)
            .then_some(())
    });
    assert_eq!(lease_holder(&cluster), "replica-b");
    cluster.kubectl_ok(&[
        "run",
        "after",
        "--image",
        &signed,
        "--restart=Never",
        "--dry-run=server",
    ]);
    let refused = cluster.kubectl(&[
        "run",
        "after-unsigned",
        "--image",
        &unsigned,
        "--restart=Never",
        "--dry-run=server",
    ]);
    assert!(
        refused.stderr.contains("require-signed-images"),
        "{}",
        refused.stderr
    );

    // An edited configuration is put back; a deleted one stays deleted.
    cluster.kubectl_ok(&[
        "patch",
        "mutatingwebhookconfiguration",
        "sealgate",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/webhooks/0/timeoutSeconds","value":29}]"#,
    ]);
    eventually("the edit undone", Duration::from_secs(10), || {
        (registered(
            &cluster,
            "mutatingwebhookconfiguration",
            "{.webhooks[0].timeoutSeconds}",
        ) == "10")
            .then_some(())
    });
    cluster.kubectl_ok(&["delete", "validatingwebhookconfiguration", "sealgate"]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !cluster
            .kubectl(&["get", "validatingwebhookconfiguration", "sealgate"])
            .success(),
        "a deleted configuration was re-created"
    );
    assert!(
        b.log().contains("webhook configuration deleted"),
        "{}",
        b.log()
    );

    // The CA's expiry is a metric.
    let metrics = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", b.port),
            "-quiet",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(
                b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains("sealgate_ca_certificate_expiry_seconds "),
        "{text}"
    );
    assert!(
        text.contains("sealgate_certificate_expiry_seconds "),
        "{text}"
    );
    drop(b);
}
