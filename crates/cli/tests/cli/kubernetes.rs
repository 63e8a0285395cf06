//! `sealgate serve --kubernetes` against a real kube-apiserver (1.20.2, with etcd, on
//! loopback) and a real registry: the user's Quick Start through `kubectl apply -f` the
//! policy and `kubectl run` a signed and an unsigned image, with the webhook outside the
//! cluster registered by `--webhook-url`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use sealgate_test_cluster::TestCluster;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

use crate::common::{Workdir, image};
use crate::serve::{spawn_serve, wait_ready};

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The user's Quick Start policy (the guide's words), for this registry and key.
pub(crate) fn quick_start_policy(
    name: &str,
    registry: &str,
    pem: &str,
    extra_match: &str,
) -> String {
    format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: check-signatures
      match:
        any:
        - resources:
            kinds:
            - Pod{extra_match}
      verifyImages:
      - imageReferences:
        - \"{registry}\"
        attestors:
        - count: 1
          entries:
          - keys:
              publicKeys: |-
                {}
        mutateDigest: true
",
        pem.trim().replace('\n', "\n                ")
    )
}

/// Polls `probe` every 100 ms until it gives `Some`, at most `within`.
pub(crate) fn eventually<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The flags of `sealgate serve --kubernetes` against `cluster` on 127.0.0.1:`port`,
/// registered by `--webhook-url`, data in `./data`.
pub(crate) fn serve_args(cluster: &TestCluster, port: u16) -> Vec<String> {
    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    [
        "serve",
        "--kubernetes",
        "--kubeconfig",
        &kubeconfig,
        "--webhook-url",
        &format!("https://127.0.0.1:{port}"),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        "data",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Starts `sealgate serve --kubernetes` ([`serve_args`] and `extra`) in `w`; returns the
/// process, once it is ready, and its port.
pub(crate) fn start_serve(
    w: &Workdir,
    cluster: &TestCluster,
    extra: &[String],
) -> (crate::serve::Serving, u16) {
    let port = free_port();
    let mut args = serve_args(cluster, port);
    args.extend(extra.iter().cloned());
    let (serving, lines) = spawn_serve(w, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let (served_port, _ca) = wait_ready(w, &lines);
    assert_eq!(served_port, port.to_string());
    (serving, port)
}

/// [`start_serve`] with `registry`'s flags (its CA and credentials) and `extra`.
pub(crate) fn start_serve_with_registry(
    w: &Workdir,
    cluster: &TestCluster,
    registry: &TestRegistry,
    extra: &[&str],
) -> crate::serve::Serving {
    let mut args = registry.cli_args();
    args.extend(extra.iter().map(|a| a.to_string()));
    start_serve(w, cluster, &args).0
}

/// Applies the CRD files of deploy/crds named `files` and waits until they are served.
pub(crate) fn install_crds(cluster: &TestCluster, files: &[&str]) {
    for file in files {
        let path = format!("{}/../../deploy/crds/{file}", env!("CARGO_MANIFEST_DIR"));
        cluster.kubectl_ok(&["apply", "-f", &path]);
    }
    eventually("the CRDs are established", Duration::from_secs(20), || {
        let served = |resource: &str| cluster.kubectl(&["get", resource]).success();
        let policies = !files.contains(&"kyverno-policies.yaml") || served("clusterpolicies");
        let reports = !files.contains(&"policyreports.yaml") || served("policyreports");
        (policies && reports).then_some(())
    });
}

pub(crate) fn ready_condition(cluster: &TestCluster, policy: &str) -> Option<(String, String)> {
    let out = cluster.kubectl(&[
        "get",
        "clusterpolicy",
        policy,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}|{.status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    let text = out.stdout.trim().to_string();
    let (status, message) = text.split_once('|')?;
    (!status.is_empty()).then(|| (status.to_string(), message.to_string()))
}

#[test]
fn quick_start_through_a_real_api_server() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let signed = image(&registry, "app:v1");
    let unsigned = image(&registry, "app:v2");
    let tool = image(&registry, "tools/debug:v1");
    registry.push_image("app", "v1");
    registry.push_image("app", "v2");
    registry.push_image("tools/debug", "v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &signed])
        .success();
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();

    // Kyverno's kinds, from deploy/ (a cluster without Kyverno).
    install_crds(&cluster, &["kyverno-policies.yaml"]);
    let (_serving, port) = start_serve(&w, &cluster, &registry.cli_args());
    let url = format!("https://127.0.0.1:{port}");
    let kubeconfig = cluster.kubeconfig_path().display().to_string();
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();

    // Registered by itself, with the policies' failure policy (none yet: Ignore).
    let hooks = eventually(
        "the webhook configurations",
        Duration::from_secs(10),
        || {
            let out = cluster.kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                "sealgate",
                "-o",
                "json",
            ]);
            out.success().then_some(out.stdout)
        },
    );
    assert!(hooks.contains(&format!("{url}/mutate")), "{hooks}");
    assert!(
        cluster
            .kubectl(&["get", "validatingwebhookconfiguration", "sealgate"])
            .success()
    );

    // The guide: kubectl apply -f the policy.
    let policy = quick_start_policy(
        "require-signed-images",
        &format!("{}/app*", registry.host()),
        &pem,
        "",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &policy);
    let (status, message) = eventually(
        "the policy's Ready condition",
        Duration::from_secs(20),
        || ready_condition(&cluster, "require-signed-images"),
    );
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("True", "Ready"),
        "{}",
        log()
    );
    eventually(
        "failurePolicy Fail registered",
        Duration::from_secs(10),
        || {
            let out = cluster.kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                "sealgate",
                "-o",
                "jsonpath={.webhooks[0].failurePolicy}",
            ]);
            (out.stdout.trim() == "Fail").then_some(())
        },
    );

    // A signed image: created, pinned to its digest.
    cluster.kubectl_ok(&["run", "signed", "--image", &signed, "--restart=Never"]);
    let stored = cluster.kubectl_ok(&["get", "pod", "signed", "-o", "json"]);
    assert!(
        stored.contains(&format!("{signed}@sha256:")),
        "not pinned: {stored}"
    );
    assert!(stored.contains("kyverno.io/verify-images"), "{stored}");

    // An unsigned one: refused with the engine's message.
    let refused = cluster.kubectl(&["run", "unsigned", "--image", &unsigned, "--restart=Never"]);
    assert!(!refused.success(), "an unsigned image was admitted");
    assert!(
        refused.stderr.contains("denied the request"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("resource Pod/default/unsigned was blocked due to the following policies"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("require-signed-images"),
        "{}",
        refused.stderr
    );
    assert!(!cluster.kubectl(&["get", "pod", "unsigned"]).success());

    // kube-system is left out, on 1.20 too (where sealgate labels it kubernetes.io/metadata.name
    // itself, as 1.21+ does): an unsigned image runs there.
    let label = cluster.kubectl_ok(&[
        "get",
        "namespace",
        "kube-system",
        "-o",
        "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}",
    ]);
    assert_eq!(label.trim(), "kube-system", "{}", log());
    if !cluster
        .kubectl(&["get", "serviceaccount", "default", "-n", "kube-system"])
        .success()
    {
        cluster.kubectl_ok(&["create", "serviceaccount", "default", "-n", "kube-system"]);
    }
    cluster.kubectl_ok(&[
        "run",
        "system-tool",
        "-n",
        "kube-system",
        "--image",
        &unsigned,
        "--restart=Never",
    ]);

    // A Deployment of the unsigned image: refused through the autogen rule.
    let deployment = cluster.kubectl(&["create", "deployment", "web", "--image", &unsigned]);
    assert!(
        !deployment.success(),
        "a Deployment of an unsigned image was admitted"
    );
    assert!(
        deployment.stderr.contains("autogen-check-signatures"),
        "{}",
        deployment.stderr
    );

    // A namespaceSelector rule: only namespaces labelled env=prod; the labels come from the
    // namespace watch (without it, the selector would fail closed in both).
    for (ns, labels) in [("dev", ""), ("prod", "env=prod")] {
        cluster.kubectl_ok(&["create", "namespace", ns]);
        if !labels.is_empty() {
            cluster.kubectl_ok(&["label", "namespace", ns, labels]);
        }
        cluster.kubectl_ok(&["create", "serviceaccount", "default", "-n", ns]);
    }
    let prod_only = quick_start_policy(
        "prod-tools-signed",
        &format!("{}/tools/*", registry.host()),
        &pem,
        "\n            namespaceSelector:\n              matchLabels:\n                env: prod",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &prod_only);
    let (status, message) = eventually(
        "the namespace policy's status",
        Duration::from_secs(20),
        || ready_condition(&cluster, "prod-tools-signed"),
    );
    assert_eq!(status, "True", "{message}");
    eventually(
        "the dev namespace's labels are known",
        Duration::from_secs(10),
        || {
            let out = cluster.kubectl(&[
                "run",
                "tool",
                "-n",
                "dev",
                "--image",
                &tool,
                "--restart=Never",
            ]);
            out.success().then_some(())
        },
    );
    let prod = cluster.kubectl(&[
        "run",
        "tool",
        "-n",
        "prod",
        "--image",
        &tool,
        "--restart=Never",
    ]);
    assert!(
        !prod.success(),
        "an unsigned tool image was admitted in prod"
    );
    assert!(prod.stderr.contains("prod-tools-signed"), "{}", prod.stderr);

    // A key kept in a Secret (`publicKeys: k8s://keys/cosign-pub`), watched: a signed image
    // is admitted, and once the Secret holds another key the same image is refused.
    let keyed_signed = image(&registry, "keyed:v1");
    registry.push_image("keyed", "v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &keyed_signed])
        .success();
    cluster.kubectl_ok(&["create", "namespace", "keys"]);
    let public_path = w.path(&public).display().to_string();
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "cosign-pub",
        "-n",
        "keys",
        &format!("--from-file=cosign.pub={public_path}"),
    ]);
    let secret_policy = quick_start_policy(
        "secret-key",
        &format!("{}/keyed*", registry.host()),
        "k8s://keys/cosign-pub",
        "",
    )
    .replace(
        "publicKeys: |-\n                k8s://keys/cosign-pub",
        "publicKeys: k8s://keys/cosign-pub",
    );
    assert!(
        secret_policy.contains("publicKeys: k8s://keys/cosign-pub"),
        "{secret_policy}"
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &secret_policy);
    eventually(
        "the Secret's key verifies the signed image",
        Duration::from_secs(20),
        || {
            let out =
                cluster.kubectl(&["run", "keyed", "--image", &keyed_signed, "--restart=Never"]);
            out.success().then_some(())
        },
    );
    let (_other_key, other_public) = w.keys("other", "pw");
    let other_path = w.path(&other_public).display().to_string();
    let replaced = cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "cosign-pub",
        "-n",
        "keys",
        &format!("--from-file=cosign.pub={other_path}"),
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    cluster.kubectl_stdin(&["apply", "-f", "-"], &replaced);
    let rotated = eventually(
        "the rotated key refuses the old signature",
        Duration::from_secs(20),
        || {
            let out = cluster.kubectl(&[
                "run",
                "keyed-again",
                "--image",
                &keyed_signed,
                "--restart=Never",
            ]);
            (!out.success()).then_some(out.stderr)
        },
    );
    assert!(rotated.contains("secret-key"), "{rotated}\n{}", log());

    // A policy whose key Secret does not exist: in force (its images get an error result),
    // Ready says which Secret gives no key, and a Warning Event says so too.
    let absent = quick_start_policy(
        "absent-key",
        "example.com/absent/*",
        "k8s://keys/not-there",
        "",
    )
    .replace(
        "publicKeys: |-\n                k8s://keys/not-there",
        "publicKeys: k8s://keys/not-there",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &absent);
    let (status, message) = eventually(
        "the missing key is reported",
        Duration::from_secs(20),
        || ready_condition(&cluster, "absent-key").filter(|(_, m)| m != "Ready"),
    );
    assert_eq!(status, "True", "{message}");
    assert!(
        message.contains("no public key in Secret keys/not-there"),
        "{message}"
    );
    let events = cluster.kubectl_ok(&["get", "events", "-n", "default", "-o", "json"]);
    assert!(
        events.contains("SecretKeyUnavailable"),
        "{events}\n{}",
        log()
    );
    // Another controller's condition on the same object survives sealgate's status writes.
    cluster.kubectl_ok(&[
        "patch",
        "clusterpolicy",
        "absent-key",
        "--subresource=status",
        "--type=merge",
        "-p",
        &format!(
            r#"{{"status": {{"conditions": [{{"type": "Other", "status": "True", "reason": "Test", "message": "kept", "lastTransitionTime": "2026-01-01T00:00:00Z"}}, {{"type": "Ready", "status": "True", "reason": "Succeeded", "message": {}, "lastTransitionTime": "2026-01-01T00:00:00Z"}}]}}}}"#,
            serde_json::Value::String(message.clone())
        ),
    ]);
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "not-there",
        "-n",
        "keys",
        &format!("--from-file=cosign.pub={public_path}"),
    ]);
    eventually(
        "Ready once the Secret holds the key",
        Duration::from_secs(20),
        || ready_condition(&cluster, "absent-key").filter(|(_, m)| m == "Ready"),
    );
    let kept = cluster.kubectl_ok(&[
        "get",
        "clusterpolicy",
        "absent-key",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Other\")].message}",
    ]);
    assert_eq!(kept.trim(), "kept", "{}", log());
    cluster.kubectl_ok(&["delete", "clusterpolicy", "absent-key"]);

    // An invalid policy: applied (the CRD keeps unknown fields), reported Ready=False with the
    // loader's message, and the policies in force stay.
    let typo =
        quick_start_policy("typo", "example.com/*", &pem, "").replace("attestors:", "atestors:");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &typo);
    let (status, message) = eventually(
        "the invalid policy's status",
        Duration::from_secs(20),
        || ready_condition(&cluster, "typo"),
    );
    assert_eq!(status, "False", "{message}");
    assert!(
        message.contains("ClusterPolicy/typo") && message.contains("atestors"),
        "{message}"
    );
    let still = cluster.kubectl(&[
        "run",
        "unsigned-again",
        "--image",
        &unsigned,
        "--restart=Never",
    ]);
    assert!(
        !still.success(),
        "the valid policies stopped being enforced"
    );
    let events = cluster.kubectl_ok(&["get", "events", "-n", "default", "-o", "json"]);
    assert!(events.contains("PolicyInvalid"), "{events}\n{}", log());
    // Said once: the echo of sealgate's own status write is not logged again.
    std::thread::sleep(Duration::from_secs(1));
    let said = log()
        .lines()
        .filter(|l| l.contains("invalid policy") && l.contains("atestors"))
        .count();
    assert_eq!(said, 1, "{}", log());

    // Deleting the policy stops its enforcement.
    cluster.kubectl_ok(&["delete", "clusterpolicy", "require-signed-images"]);
    eventually(
        "the deleted policy is no longer enforced",
        Duration::from_secs(10),
        || {
            let out = cluster.kubectl(&[
                "run",
                "after-delete",
                "--image",
                &unsigned,
                "--restart=Never",
            ]);
            out.success().then_some(())
        },
    );

    // Uninstall leaves no webhook configuration.
    w.command(&["uninstall", "--kubeconfig", &kubeconfig])
        .output()
        .map(|o| assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr)))
        .unwrap();
    let left = cluster.kubectl_ok(&[
        "get",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "-o",
        "name",
    ]);
    assert!(!left.contains("sealgate"), "{left}");
}
