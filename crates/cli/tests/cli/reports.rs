//! PolicyReports written by `sealgate serve --kubernetes` against a real kube-apiserver (1.20.2,
//! with etcd) and a real registry: under Audit policies a signed and an unsigned Pod are both
//! admitted, and each gets a `wgpolicyk8s.io/v1alpha2` PolicyReport (from the CRD in
//! deploy/crds) with its pass or fail, owned by the Pod; a second policy's results merge into
//! the same report, keeping another engine's result; a Deployment gets its own report, and a
//! dry run none.

use std::time::Duration;

use sealgate_test_cluster::TestCluster;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::{Value, json};

use crate::common::{Workdir, image};
use crate::kubernetes::{
    eventually, install_crds, quick_start_policy, ready_condition, start_serve_with_registry,
};

/// The Quick Start policy under Audit: failures are admitted (and reported).
fn audit_policy(name: &str, registry: &str, pem: &str) -> String {
    let policy = quick_start_policy(name, registry, pem, "");
    assert!(
        policy.contains("validationFailureAction: Enforce"),
        "{policy}"
    );
    policy.replace(
        "validationFailureAction: Enforce",
        "validationFailureAction: Audit",
    )
}

/// The PolicyReports of `namespace`, as `kubectl get policyreports -o json` lists them.
fn reports(cluster: &TestCluster, namespace: &str) -> Vec<Value> {
    let out = cluster.kubectl_ok(&["get", "policyreports", "-n", namespace, "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The report whose scope is `kind/name`, once it holds a result for every one of `policies`.
fn report_for(
    cluster: &TestCluster,
    namespace: &str,
    kind: &str,
    name: &str,
    policies: &[&str],
    log: &dyn Fn() -> String,
) -> Value {
    let found = std::cell::RefCell::new(Vec::new());
    let probe = || {
        let all = reports(cluster, namespace);
        let report = all
            .iter()
            .find(|r| r["scope"]["kind"] == kind && r["scope"]["name"] == name)
            .cloned();
        *found.borrow_mut() = all;
        let report = report?;
        let results = report["results"].as_array()?;
        policies
            .iter()
            .all(|p| results.iter().any(|r| r["policy"] == *p))
            .then_some(report)
    };
    let within = Duration::from_secs(30);
    let start = std::time::Instant::now();
    loop {
        if let Some(report) = probe() {
            return report;
        }
        assert!(
            start.elapsed() < within,
            "no report for {kind}/{name} with {policies:?} within {within:?}; reports: {:#}\nlog:\n{}",
            Value::Array(found.borrow().clone()),
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The report's results as (source, policy, rule, result).
fn rows(report: &Value) -> Vec<(String, String, String, String)> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (text("source"), text("policy"), text("rule"), text("result"))
        })
        .collect()
}

fn uid_of(cluster: &TestCluster, kind: &str, name: &str) -> String {
    cluster
        .kubectl_ok(&["get", kind, name, "-o", "jsonpath={.metadata.uid}"])
        .trim()
        .to_string()
}

#[test]
fn admitted_resources_get_policy_reports_with_their_results() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let (_other, other_public) = w.keys("other", "pw");
    let signed = image(&registry, "app:v1");
    let unsigned = image(&registry, "app:v2");
    registry.push_image("app", "v1");
    registry.push_image("app", "v2");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &signed])
        .success();
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    let other_pem = std::fs::read_to_string(w.path(&other_public)).unwrap();

    // Kyverno's policy kinds and the report kinds, from deploy/crds.
    install_crds(&cluster, &["kyverno-policies.yaml", "policyreports.yaml"]);

    let _serving = start_serve_with_registry(&w, &cluster, &registry, &["--log-format", "json"]);
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();

    let apps = format!("{}/app*", registry.host());
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &audit_policy("audit-signatures", &apps, &pem),
    );
    let (status, message) = eventually(
        "the policy's Ready condition",
        Duration::from_secs(20),
        || ready_condition(&cluster, "audit-signatures"),
    );
    assert_eq!(status, "True", "{message}\n{}", log());
    // The webhook enforces it (Audit: a warning for the unsigned image) before Pods are made.
    let warned = eventually("the policy is enforced", Duration::from_secs(20), || {
        let out = cluster.kubectl(&[
            "run",
            "probe",
            "--image",
            &unsigned,
            "--restart=Never",
            "--dry-run=server",
        ]);
        (out.success() && out.stderr.contains("audit-signatures")).then_some(out.stderr)
    });
    assert!(warned.contains("Warning"), "{warned}");

    // Both admitted under Audit.
    cluster.kubectl_ok(&["run", "signed", "--image", &signed, "--restart=Never"]);
    let run = cluster.kubectl(&["run", "unsigned", "--image", &unsigned, "--restart=Never"]);
    assert!(run.success(), "{}", run.stderr);

    // The signed Pod's report: named by its uid, owned and scoped by it, one pass.
    let signed_uid = uid_of(&cluster, "pod", "signed");
    let report = report_for(
        &cluster,
        "default",
        "Pod",
        "signed",
        &["audit-signatures"],
        &log,
    );
    assert_eq!(
        report["metadata"]["name"],
        format!("sealgate-{signed_uid}"),
        "{report:#}"
    );
    assert_eq!(
        report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "sealgate"
    );
    assert_eq!(
        report["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "signed", "uid": signed_uid}])
    );
    assert_eq!(
        report["scope"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "signed", "uid": signed_uid})
    );
    assert_eq!(
        rows(&report),
        [(
            "sealgate".into(),
            "audit-signatures".into(),
            "check-signatures".into(),
            "pass".into()
        )]
    );
    let result = &report["results"][0];
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .starts_with("verified image signatures for"),
        "{result:#}"
    );
    assert_eq!(result["properties"]["process"], "admission review");
    assert_eq!(result["scored"], true);
    assert!(result["timestamp"]["seconds"].as_i64().unwrap() > 1_600_000_000);
    assert_eq!(
        report["summary"],
        json!({"pass": 1, "fail": 0, "warn": 0, "error": 0, "skip": 0})
    );

    // The unsigned Pod's: one fail, with the engine's words.
    let report = report_for(
        &cluster,
        "default",
        "Pod",
        "unsigned",
        &["audit-signatures"],
        &log,
    );
    assert_eq!(
        report["metadata"]["name"],
        format!("sealgate-{}", uid_of(&cluster, "pod", "unsigned"))
    );
    assert_eq!(rows(&report)[0].3, "fail", "{report:#}");
    let message = report["results"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("no signatures found") && message.contains("app:v2"),
        "{message}"
    );
    assert_eq!(
        report["summary"],
        json!({"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );

    // Another engine's result in the signed Pod's report is kept when sealgate merges.
    let name = format!("sealgate-{signed_uid}");
    let foreign = json!([{"op": "add", "path": "/results/-", "value": {
        "source": "kyverno", "policy": "other-engine", "rule": "r", "result": "pass",
        "timestamp": {"seconds": 1_700_000_000, "nanos": 0}
    }}]);
    cluster.kubectl_ok(&[
        "patch",
        "policyreport",
        &name,
        "-n",
        "default",
        "--type",
        "json",
        "-p",
        &foreign.to_string(),
    ]);

    // A second policy (another key: the signed image fails it); the Pod's next admission (an
    // update) merges its result into the same report.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &audit_policy("audit-other-key", &apps, &other_pem),
    );
    let (status, message) = eventually(
        "the second policy's Ready condition",
        Duration::from_secs(20),
        || ready_condition(&cluster, "audit-other-key"),
    );
    assert_eq!(status, "True", "{message}");
    eventually(
        "the second policy is enforced",
        Duration::from_secs(20),
        || {
            let out = cluster.kubectl(&[
                "run",
                "probe",
                "--image",
                &signed,
                "--restart=Never",
                "--dry-run=server",
            ]);
            (out.success() && out.stderr.contains("audit-other-key")).then_some(())
        },
    );
    cluster.kubectl_ok(&["label", "pod", "signed", "reviewed=yes"]);
    let report = report_for(
        &cluster,
        "default",
        "Pod",
        "signed",
        &["audit-signatures", "audit-other-key", "other-engine"],
        &log,
    );
    assert_eq!(report["metadata"]["name"], name);
    assert_eq!(
        rows(&report),
        [
            (
                "sealgate".into(),
                "audit-other-key".into(),
                "check-signatures".into(),
                "fail".into()
            ),
            (
                "sealgate".into(),
                "audit-signatures".into(),
                "check-signatures".into(),
                "pass".into()
            ),
            (
                "kyverno".into(),
                "other-engine".into(),
                "r".into(),
                "pass".into()
            ),
        ],
        "{report:#}"
    );
    assert_eq!(
        report["summary"],
        json!({"pass": 2, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );
    assert_eq!(
        reports(&cluster, "default")
            .iter()
            .filter(|r| r["scope"]["name"] == "signed")
            .count(),
        1,
        "one report per resource"
    );

    // A Deployment is reported on its own (the autogen rules), in its own report.
    cluster.kubectl_ok(&["create", "deployment", "web", "--image", &signed]);
    let report = report_for(
        &cluster,
        "default",
        "Deployment",
        "web",
        &["audit-signatures", "audit-other-key"],
        &log,
    );
    assert_eq!(report["scope"]["apiVersion"], "apps/v1");
    assert_eq!(
        report["metadata"]["name"],
        format!("sealgate-{}", uid_of(&cluster, "deployment", "web"))
    );
    let deployment_rows = rows(&report);
    assert!(
        deployment_rows
            .iter()
            .all(|(_, _, rule, _)| rule == "autogen-check-signatures"),
        "{deployment_rows:?}"
    );

    // Dry runs are never reported: by now every probe would have been written.
    assert!(
        reports(&cluster, "default")
            .iter()
            .all(|r| r["scope"]["name"] != "probe"),
        "a dry run was reported"
    );
}

#[test]
fn the_background_scan_reports_resources_admitted_before_the_policy() {
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
    install_crds(&cluster, &["kyverno-policies.yaml", "policyreports.yaml"]);

    // Admitted before sealgate runs: no webhook, no report.
    cluster.kubectl_ok(&["run", "early-signed", "--image", &signed, "--restart=Never"]);
    cluster.kubectl_ok(&[
        "run",
        "early-unsigned",
        "--image",
        &unsigned,
        "--restart=Never",
    ]);
    cluster.kubectl_ok(&["create", "deployment", "early-web", "--image", &unsigned]);

    let _serving = start_serve_with_registry(
        &w,
        &cluster,
        &registry,
        &["--background-scan-interval", "3s"],
    );
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();

    // A background policy and an admission-only one (background: false is not scanned).
    let apps = format!("{}/app*", registry.host());
    let scanned = audit_policy("scan-signatures", &apps, &pem)
        .replace("background: false", "background: true");
    assert!(scanned.contains("background: true"), "{scanned}");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &scanned);
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &audit_policy("admission-only", &apps, &pem),
    );
    for policy in ["scan-signatures", "admission-only"] {
        let (status, message) = eventually(
            "the policy's Ready condition",
            Duration::from_secs(20),
            || ready_condition(&cluster, policy),
        );
        assert_eq!(status, "True", "{policy}: {message}\n{}", log());
    }

    let report = report_for(
        &cluster,
        "default",
        "Pod",
        "early-signed",
        &["scan-signatures"],
        &log,
    );
    let uid = uid_of(&cluster, "pod", "early-signed");
    assert_eq!(report["metadata"]["name"], format!("sealgate-{uid}"));
    assert_eq!(
        rows(&report),
        [(
            "sealgate".into(),
            "scan-signatures".into(),
            "check-signatures".into(),
            "pass".into()
        )],
        "{report:#}"
    );
    assert_eq!(
        report["results"][0]["properties"]["process"],
        "background scan"
    );
    let report = report_for(
        &cluster,
        "default",
        "Pod",
        "early-unsigned",
        &["scan-signatures"],
        &log,
    );
    assert_eq!(rows(&report).len(), 1, "{report:#}");
    assert_eq!(rows(&report)[0].3, "fail", "{report:#}");
    assert_eq!(
        report["summary"],
        json!({"pass": 0, "fail": 1, "warn": 0, "error": 0, "skip": 0})
    );
    // The Deployment, through the autogen rule.
    let report = report_for(
        &cluster,
        "default",
        "Deployment",
        "early-web",
        &["scan-signatures"],
        &log,
    );
    assert_eq!(
        rows(&report),
        [(
            "sealgate".into(),
            "scan-signatures".into(),
            "autogen-check-signatures".into(),
            "fail".into()
        )],
        "{report:#}"
    );

    // Every interval again: a deleted report comes back.
    let name = format!("sealgate-{uid}");
    cluster.kubectl_ok(&["delete", "policyreport", &name, "-n", "default"]);
    report_for(
        &cluster,
        "default",
        "Pod",
        "early-signed",
        &["scan-signatures"],
        &log,
    );
    assert!(log().contains("background scan finished"), "{}", log());
}

#[test]
fn without_the_report_crd_admissions_go_on_and_reports_start_once_it_is_installed() {
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
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    // Kyverno's kinds only: no PolicyReport CRD yet.
    install_crds(&cluster, &["kyverno-policies.yaml"]);
    let serving = start_serve_with_registry(&w, &cluster, &registry, &[]);
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();
    let apps = format!("{}/app*", registry.host());
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &audit_policy("audit-signatures", &apps, &pem),
    );
    let (status, message) = eventually(
        "the policy's Ready condition",
        Duration::from_secs(20),
        || ready_condition(&cluster, "audit-signatures"),
    );
    assert_eq!(status, "True", "{message}");

    // Admitted as ever; the writer says once why it writes nothing.
    cluster.kubectl_ok(&["run", "before", "--image", &signed, "--restart=Never"]);
    eventually("the missing CRD is logged", Duration::from_secs(20), || {
        log()
            .contains("the API server does not serve PolicyReports (wgpolicyk8s.io/v1alpha2)")
            .then_some(())
    });
    cluster.kubectl_ok(&["run", "before-2", "--image", &signed, "--restart=Never"]);

    // Installed: the next admission is reported.
    install_crds(&cluster, &["policyreports.yaml"]);
    cluster.kubectl_ok(&["run", "after", "--image", &signed, "--restart=Never"]);
    let report = report_for(
        &cluster,
        "default",
        "Pod",
        "after",
        &["audit-signatures"],
        &log,
    );
    assert_eq!(rows(&report)[0].3, "pass", "{report:#}");
    assert_eq!(
        log()
            .matches("the API server does not serve PolicyReports")
            .count(),
        1,
        "logged once while the CRD was missing\n{}",
        log()
    );

    // --no-policy-reports: admitted, never reported.
    drop(serving);
    let _serving = start_serve_with_registry(&w, &cluster, &registry, &["--no-policy-reports"]);
    eventually(
        "the new server is registered and enforces",
        Duration::from_secs(20),
        || {
            let out = cluster.kubectl(&[
                "run",
                "probe",
                "--image",
                &image(&registry, "app:v2"),
                "--restart=Never",
                "--dry-run=server",
            ]);
            (out.success() && out.stderr.contains("audit-signatures")).then_some(())
        },
    );
    cluster.kubectl_ok(&["run", "unreported", "--image", &signed, "--restart=Never"]);
    std::thread::sleep(Duration::from_secs(3));
    let names: Vec<String> = reports(&cluster, "default")
        .iter()
        .map(|r| r["scope"]["name"].as_str().unwrap_or_default().to_string())
        .collect();
    // `before` was dropped while the CRD was missing (`before-2` may have been written either
    // way: it waited for its Pod while the CRD was being installed); `unreported` never is.
    assert!(names.contains(&"after".to_string()), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "before" || n == "unreported"),
        "{names:?}\n{}",
        log()
    );
}
