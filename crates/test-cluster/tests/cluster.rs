//! The harness against the real thing: these tests fail, never skip, when kube-apiserver, etcd
//! or kubectl is missing (`./scripts/build-kube-apiserver` provides all three).

#![allow(clippy::panic, clippy::expect_used)]

use std::time::Instant;

use sealgate_test_cluster::TestCluster;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("kubectl printed no JSON ({e}):\n{text}"))
}

#[test]
fn namespaces_and_pods_are_stored() {
    let started = Instant::now();
    let cluster = TestCluster::start();
    eprintln!("TestCluster::start() took {:?}", started.elapsed());
    assert!(cluster.server_url().starts_with("https://127.0.0.1:"));
    assert!(
        String::from_utf8_lossy(cluster.ca_pem()).contains("-----BEGIN CERTIFICATE-----"),
        "the CA is not PEM"
    );
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig_path()).expect("read kubeconfig");
    assert!(!kubeconfig.contains("insecure-skip-tls-verify"));
    assert!(kubeconfig.contains(cluster.token()));

    let applied = cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1
kind: Namespace
metadata:
  name: team-a
  labels:
    sealgate.dev/verify: enforce
",
    );
    assert!(
        applied.success(),
        "kubectl apply failed: {}",
        applied.stderr
    );
    assert!(
        applied.stdout.contains("namespace/team-a created"),
        "{}",
        applied.stdout
    );

    let namespace = json(&cluster.kubectl_ok(&["get", "ns", "team-a", "-o", "json"]));
    assert_eq!(
        namespace["metadata"]["labels"]["sealgate.dev/verify"], "enforce",
        "{namespace:#}"
    );

    // No controller-manager: a new namespace's default ServiceAccount is made by hand.
    cluster.kubectl_ok(&["create", "serviceaccount", "default", "-n", "team-a"]);
    for namespace in ["default", "team-a"] {
        let created = cluster.kubectl(&[
            "run",
            "app",
            "--image=registry.example/app:v1",
            "--restart=Never",
            "-n",
            namespace,
        ]);
        assert!(
            created.success(),
            "creating a Pod in {namespace} failed: {}",
            created.stderr
        );
        let pod = json(&cluster.kubectl_ok(&["get", "pod", "app", "-n", namespace, "-o", "json"]));
        assert_eq!(
            pod["spec"]["containers"][0]["image"], "registry.example/app:v1",
            "{pod:#}"
        );
        // Nothing schedules it, and the ServiceAccount plugin mounted a projected token.
        assert_eq!(pod["status"]["phase"], "Pending", "{pod:#}");
        assert_eq!(pod["spec"]["serviceAccountName"], "default", "{pod:#}");
    }

    // The webhooks the project needs are among the admission plugins.
    let log = cluster.apiserver_log();
    for plugin in ["MutatingAdmissionWebhook", "ValidatingAdmissionWebhook"] {
        assert!(log.contains(plugin), "{plugin} is not loaded:\n{log}");
    }
}

#[test]
fn two_clusters_run_at_once() {
    let started = Instant::now();
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(TestCluster::start);
        let second = scope.spawn(TestCluster::start);
        (
            first
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            second
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    eprintln!(
        "two TestCluster::start() in parallel took {:?}",
        started.elapsed()
    );
    assert_ne!(first.server_url(), second.server_url());
    assert_ne!(first.token(), second.token());

    first.kubectl_ok(&["create", "namespace", "only-in-first"]);
    let missing = second.kubectl(&["get", "namespace", "only-in-first"]);
    assert!(
        !missing.success(),
        "the second cluster sees the first's namespace"
    );
    assert!(missing.stderr.contains("NotFound"), "{}", missing.stderr);

    // The other cluster's token is refused.
    let server = format!("--server={}", first.server_url());
    let token = format!("--token={}", second.token());
    let refused = first.kubectl(&[&server, &token, "get", "namespaces"]);
    assert!(
        !refused.success(),
        "the first cluster took the second's token"
    );
    // kubectl 1.20 says "Unauthorized", later ones "provide credentials".
    assert!(
        refused.stderr.contains("Unauthorized") || refused.stderr.contains("provide credentials"),
        "{}",
        refused.stderr
    );

    let dir = first.dir().to_path_buf();
    drop(first);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    second.kubectl_ok(&["get", "namespaces"]);
}
