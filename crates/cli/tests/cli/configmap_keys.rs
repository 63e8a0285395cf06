//! Keys kept in a ConfigMap and read through a rule's `context` (`publicKeys:
//! "{{ keys.data.pub }}"`), under `sealgate serve --kubernetes` against a real kube-apiserver:
//! the ConfigMap is watched, a signed image is admitted with its key, the ConfigMap rotated to
//! another key refuses the same image, and a variable naming a key the ConfigMap lacks gives
//! an error result that names it. Attestation conditions read a ConfigMap the same way (the
//! builders allowed), and a change to it is in force at once, whatever the webhook cached.

use std::time::Duration;

use sealgate_test_cluster::TestCluster;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

use crate::attestations::attest_provenance;
use crate::common::{Workdir, image};
use crate::kubernetes::{
    eventually, install_crds, quick_start_policy, ready_condition, start_serve,
};

/// The Quick Start policy with its key read from ConfigMap keys/cosign-keys by `variable`.
fn configmap_policy(name: &str, pattern: &str, variable: &str) -> String {
    let policy = quick_start_policy(name, pattern, variable, "")
        .replace(
            &format!("publicKeys: |-\n                {variable}"),
            &format!("publicKeys: \"{variable}\""),
        )
        .replace(
            "    - name: check-signatures\n",
            "    - name: check-signatures\n      context:\n      - name: keys\n        configMap:\n          name: cosign-keys\n          namespace: keys\n",
        );
    assert!(
        policy.contains(&format!("publicKeys: \"{variable}\"")),
        "{policy}"
    );
    policy
}

#[test]
fn a_key_in_a_configmap_is_watched_and_rotated() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let signed = image(&registry, "app:v1");
    registry.push_image("app", "v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &signed])
        .success();
    let (_other_key, other_public) = w.keys("other", "pw");

    install_crds(&cluster, &["kyverno-policies.yaml"]);
    let (_serving, _port) = start_serve(&w, &cluster, &registry.cli_args());
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();

    cluster.kubectl_ok(&["create", "namespace", "keys"]);
    let public_path = w.path(&public).display().to_string();
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "cosign-keys",
        "-n",
        "keys",
        &format!("--from-file=pub={public_path}"),
    ]);
    let policy = configmap_policy(
        "configmap-key",
        &format!("{}/app*", registry.host()),
        "{{ keys.data.pub }}",
    );
    apply_until_ready(&cluster, "configmap-key", &policy, &log);

    // The ConfigMap's key verifies the signed image.
    admitted_eventually(
        &cluster,
        "the ConfigMap's key verifies the signed image",
        "signed",
        &signed,
    );

    // Rotated to another key: the same image is refused.
    let other_path = w.path(&other_public).display().to_string();
    let replaced = cluster.kubectl_ok(&[
        "create",
        "configmap",
        "cosign-keys",
        "-n",
        "keys",
        &format!("--from-file=pub={other_path}"),
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    cluster.kubectl_stdin(&["apply", "-f", "-"], &replaced);
    let refused = refused_eventually(
        &cluster,
        "the rotated key refuses the old signature",
        "signed-again",
        &signed,
    );
    assert!(refused.contains("configmap-key"), "{refused}\n{}", log());
    assert!(
        log().contains("ConfigMap changed: policy compiled again"),
        "{}",
        log()
    );

    // A variable naming a key the ConfigMap does not have: in force, and its images get an
    // error result naming the variable and the ConfigMap (denied under Enforce).
    let tool = image(&registry, "tools/debug:v1");
    registry.push_image("tools/debug", "v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &tool])
        .success();
    let missing = configmap_policy(
        "configmap-missing-key",
        &format!("{}/tools/*", registry.host()),
        "{{ keys.data.missing }}",
    );
    apply_until_ready(&cluster, "configmap-missing-key", &missing, &log);
    let refused = refused_eventually(
        &cluster,
        "the image under the missing key is refused",
        "tool",
        &tool,
    );
    assert!(
        refused
            .contains("`{{ keys.data.missing }}` from ConfigMap keys/cosign-keys: no such value"),
        "{refused}\n{}",
        log()
    );

    // A policy naming a ConfigMap that does not exist: in force, Ready says which ConfigMap is
    // not there, and its images get an error result naming it.
    let absent = configmap_policy(
        "configmap-absent",
        &format!("{}/absent*", registry.host()),
        "{{ keys.data.pub }}",
    )
    .replace("name: cosign-keys", "name: not-there");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &absent);
    let (status, message) = eventually(
        "the absent ConfigMap is named in Ready",
        Duration::from_secs(20),
        || {
            ready_condition(&cluster, "configmap-absent")
                .filter(|(_, m)| m.contains("no ConfigMap keys/not-there"))
        },
    );
    assert_eq!(status, "True", "{message}");
    let events = cluster.kubectl_ok(&["get", "events", "-A"]);
    assert!(events.contains("ConfigMapUnavailable"), "{events}");
    let absent_image = image(&registry, "absent:v1");
    registry.push_image("absent", "v1");
    let refused = cluster.kubectl(&["run", "absent", "--image", &absent_image, "--restart=Never"]);
    assert!(!refused.success());
    assert!(
        refused.stderr.contains("from ConfigMap keys/not-there: context entry `keys` has no value: the ConfigMap is not found"),
        "{}\n{}",
        refused.stderr,
        log()
    );
}

#[test]
fn lint_accepts_a_configmap_key_and_apply_says_configmaps_are_read_only_by_serve() {
    let w = Workdir::new();
    let policy = configmap_policy(
        "configmap-key",
        "registry.example.com/*",
        "{{ keys.data.pub }}",
    )
    .replace(
        "mutateDigest: true",
        "mutateDigest: false\n        verifyDigest: false",
    );
    std::fs::write(w.path("policy.yaml"), policy).unwrap();
    // By digest: nothing to fetch for an attestor that cannot be evaluated.
    std::fs::write(
        w.path("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
    )
    .unwrap();
    let lint = w.run("", &["lint", "policy.yaml"]);
    lint.success();
    assert!(!lint.stdout().contains("not supported"), "{lint:?}");
    let run = w.run("", &["apply", "policy.yaml", "--resource", "pod.yaml"]);
    assert_ne!(run.code(), 0, "{run:?}");
    let out = run.stdout() + &run.stderr();
    assert!(
        out.contains("`{{ keys.data.pub }}` from ConfigMap keys/cosign-keys: context entry `keys` has no value: ConfigMaps are read only by `sealgate serve --kubernetes`"),
        "{out}"
    );
}

/// Applies `policy` (the ClusterPolicy `name`) and waits until its Ready condition is True.
fn apply_until_ready(cluster: &TestCluster, name: &str, policy: &str, log: &dyn Fn() -> String) {
    cluster.kubectl_stdin(&["apply", "-f", "-"], policy);
    let (status, message) = eventually(
        &format!("the Ready condition of policy {name}"),
        Duration::from_secs(20),
        || ready_condition(cluster, name),
    );
    assert_eq!(status, "True", "{message}\n{}", log());
}

/// `kubectl run POD --image IMAGE` in the default namespace until it is admitted (`what`
/// says what that shows), at most 20 s.
fn admitted_eventually(cluster: &TestCluster, what: &str, pod: &str, image: &str) {
    eventually(what, Duration::from_secs(20), || {
        run_pod(cluster, pod, "default", image)
            .success()
            .then_some(())
    });
}

/// The same until it is refused; the refusal.
fn refused_eventually(cluster: &TestCluster, what: &str, pod: &str, image: &str) -> String {
    eventually(what, Duration::from_secs(20), || {
        let out = run_pod(cluster, pod, "default", image);
        (!out.success()).then_some(out.stderr)
    })
}

/// `kubectl run NAME -n NAMESPACE --image IMAGE --restart=Never`.
fn run_pod(
    cluster: &TestCluster,
    name: &str,
    namespace: &str,
    image: &str,
) -> sealgate_test_cluster::Kubectl {
    cluster.kubectl(&[
        "run",
        name,
        "-n",
        namespace,
        "--image",
        image,
        "--restart=Never",
    ])
}

/// Each team's namespace keeps its key in its own ConfigMap `team-keys`; the policy reads the
/// one of the namespace under review (`namespace: "{{ request.namespace }}"`), watched in every
/// namespace by name.
#[test]
fn each_namespace_s_own_configmap_key_verifies_its_pods() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("team-a", "pw");
    let (_other, other_public) = w.keys("team-b", "pw");
    let signed = image(&registry, "app:v1");
    registry.push_image("app", "v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &signed])
        .success();

    install_crds(&cluster, &["kyverno-policies.yaml"]);
    let (_serving, _port) = start_serve(&w, &cluster, &registry.cli_args());
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();
    // The test cluster runs no controller manager: each namespace gets its service account.
    let namespace_for_pods = |namespace: &str| {
        cluster.kubectl_ok(&["create", "namespace", namespace]);
        cluster.kubectl_ok(&["create", "serviceaccount", "default", "-n", namespace]);
    };
    for (namespace, public) in [("team-a", &public), ("team-b", &other_public)] {
        namespace_for_pods(namespace);
        let path = w.path(public).display().to_string();
        cluster.kubectl_ok(&[
            "create",
            "configmap",
            "team-keys",
            "-n",
            namespace,
            &format!("--from-file=pub={path}"),
        ]);
    }
    namespace_for_pods("team-c");
    let policy = configmap_policy(
        "team-keys",
        &format!("{}/app*", registry.host()),
        "{{ keys.data.pub }}",
    )
    .replace("name: cosign-keys", "name: team-keys")
    .replace(
        "namespace: keys\n",
        "namespace: \"{{ request.namespace }}\"\n",
    );
    assert!(policy.contains("{{ request.namespace }}"), "{policy}");
    apply_until_ready(&cluster, "team-keys", &policy, &log);

    // Team a's key verifies team a's pod.
    eventually(
        "team a's key verifies the image in team-a",
        Duration::from_secs(20),
        || {
            let out = run_pod(&cluster, "signed", "team-a", &signed);
            out.success().then_some(())
        },
    );
    // Team b's key does not verify team a's signature.
    let refused = run_pod(&cluster, "signed", "team-b", &signed);
    assert!(!refused.success(), "team-b admitted team a's image");
    assert!(refused.stderr.contains("team-keys"), "{}", refused.stderr);
    // A namespace without the ConfigMap: the error names the one it looked for.
    let refused = run_pod(&cluster, "signed", "team-c", &signed);
    assert!(!refused.success(), "team-c admitted without a key");
    assert!(
        refused.stderr.contains("ConfigMap team-c/team-keys"),
        "{}\n{}",
        refused.stderr,
        log()
    );
    // Team c's ConfigMap created with team a's key: watched everywhere, so it takes effect.
    let path = w.path(&public).display().to_string();
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "team-keys",
        "-n",
        "team-c",
        &format!("--from-file=pub={path}"),
    ]);
    eventually(
        "team c's new ConfigMap verifies the image in team-c",
        Duration::from_secs(20),
        || {
            let out = run_pod(&cluster, "signed", "team-c", &signed);
            out.success().then_some(())
        },
    );

    // A ConfigMap whose name is a variable, in a namespace the policy names: that namespace's
    // ConfigMaps are watched, and the one of the request's name is read.
    let tool = image(&registry, "tool:v1");
    registry.push_image("tool", "v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &tool])
        .success();
    cluster.kubectl_ok(&["create", "namespace", "shared"]);
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "team-a-key",
        "-n",
        "shared",
        &format!("--from-file=pub={path}"),
    ]);
    let by_name = configmap_policy(
        "keys-by-name",
        &format!("{}/tool*", registry.host()),
        "{{ keys.data.pub }}",
    )
    .replace("name: cosign-keys", "name: \"{{ request.namespace }}-key\"")
    .replace("namespace: keys\n", "namespace: shared\n");
    apply_until_ready(&cluster, "keys-by-name", &by_name, &log);
    eventually(
        "shared/team-a-key verifies the tool in team-a",
        Duration::from_secs(20),
        || {
            let out = run_pod(&cluster, "tool", "team-a", &tool);
            out.success().then_some(())
        },
    );
    let refused = run_pod(&cluster, "tool", "team-b", &tool);
    assert!(
        !refused.success(),
        "team-b admitted without shared/team-b-key"
    );
    assert!(
        refused.stderr.contains("ConfigMap shared/team-b-key"),
        "{}\n{}",
        refused.stderr,
        log()
    );
}

/// A policy requiring an SLSA provenance by `pem` whose builder is one of those listed in
/// ConfigMap keys/builders (`allowed`, comma-separated).
fn builders_policy(name: &str, pattern: &str, pem: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: {name}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: built-by-an-allowed-builder
      match:
        any:
        - resources:
            kinds:
            - Pod
      context:
      - name: builders
        configMap:
          name: builders
          namespace: keys
      verifyImages:
      - imageReferences:
        - "{pattern}"
        attestations:
        - type: https://slsa.dev/provenance/v0.2
          attestors:
          - entries:
            - keys:
                publicKeys: |-
                  {key}
          conditions:
          - all:
            - key: "{{{{ builder.id }}}}"
              operator: AnyIn
              value: "{{{{ split(builders.data.allowed, ',') }}}}"
              message: "{{{{ builder.id }}}} is not an allowed builder"
"#,
        key = pem.trim().replace('\n', "\n                  ")
    )
}

#[test]
fn allowed_builders_in_a_configmap_are_watched_for_attestation_conditions() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let app = image(&registry, "app:v1");
    registry.push_image("app", "v1");
    attest_provenance(&registry, &w, &key, &app, "https://ci.company.com/builder");

    install_crds(&cluster, &["kyverno-policies.yaml"]);
    let (_serving, _port) = start_serve(&w, &cluster, &registry.cli_args());
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();
    cluster.kubectl_ok(&["create", "namespace", "keys"]);
    let builders = |allowed: &str| {
        cluster.kubectl_ok(&[
            "create",
            "configmap",
            "builders",
            "-n",
            "keys",
            &format!("--from-literal=allowed={allowed}"),
            "--dry-run=client",
            "-o",
            "yaml",
        ])
    };
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &builders("https://ci.company.com/builder,https://ci2.company.com/builder"),
    );
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    let policy = builders_policy(
        "allowed-builders",
        &format!("{}/app*", registry.host()),
        &pem,
    );
    apply_until_ready(&cluster, "allowed-builders", &policy, &log);

    // The ConfigMap allows the image's builder: admitted (and its verified outcome cached).
    admitted_eventually(&cluster, "the attested image is admitted", "built", &app);
    // The builder taken off the ConfigMap's list: the same image is refused, the cached
    // outcome of the old list notwithstanding.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &builders("https://ci2.company.com/builder"),
    );
    let refused = refused_eventually(
        &cluster,
        "the builder taken off the list is refused",
        "built-again",
        &app,
    );
    assert!(
        refused.contains("https://ci.company.com/builder is not an allowed builder"),
        "{refused}\n{}",
        log()
    );
    assert!(
        log().contains("ConfigMap changed: policy compiled again"),
        "{}",
        log()
    );
}
