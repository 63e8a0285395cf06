//! The user's four policies end to end, unmodified but for their keys and certificate, against a
//! real registry that answers as `registry.company.com`: the test re-runs itself in a fresh
//! network and mount namespace whose `/etc/hosts` maps that name to loopback, and starts Debian's
//! docker-registry there on port 443 with TLS from a generated CA and htpasswd auth.
//!
//! `unshare` (util-linux) and `ip` (iproute2) are required; without them the test fails, it
//! never skips.

use std::path::Path;
use std::process::Command;

use crate::common::{Run, Workdir};
use sealgate_test_registry::{CodeSigningPki, TestRegistry, TestRegistryConfig};
use serde_json::Value;

const HOST: &str = "registry.company.com";
const IN_NAMESPACE: &str = "SEALGATE_TEST_IN_NETNS";
const SEED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../core/testdata/policies/seed"
);

/// Runs `test_name` of this binary inside a new network and mount namespace with
/// `registry.company.com` on loopback, and fails if it fails there.
fn rerun_in_namespace(test_name: &str) {
    let hosts = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        hosts.path(),
        format!("127.0.0.1 localhost {HOST}\n::1 localhost\n"),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let root = unsafe_free_is_root();
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    let script = r#"ip link set lo up && mount --bind "$1" /etc/hosts && exec "$2" --exact "$3" --nocapture --test-threads 1"#;
    let status = cmd
        .args(["--net", "--mount", "--", "sh", "-c", script, "sh"])
        .arg(hosts.path())
        .arg(&exe)
        .arg(test_name)
        .env(IN_NAMESPACE, "1")
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run unshare (apt-get install util-linux iproute2): {e}")
        });
    assert!(
        status.success(),
        "{test_name} failed inside its network namespace ({status})"
    );
}

/// Whether we run as root (then no user namespace is needed).
fn unsafe_free_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0"))
        .unwrap_or(false)
}

/// The seed policy `name` with its PEM blocks replaced, in order, by `pems`.
fn seed_with(name: &str, pems: &[&str]) -> String {
    let text = std::fs::read_to_string(Path::new(SEED).join(name)).unwrap();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut next = pems.iter();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("-----BEGIN ") {
            let indent = &line[..line.len() - line.trim_start().len()];
            for l in lines.by_ref() {
                if l.trim_start().starts_with("-----END ") {
                    break;
                }
            }
            let pem = next.next().expect("as many PEM blocks as replacements");
            for p in pem.trim_end().lines() {
                out.push_str(indent);
                out.push_str(p);
                out.push('\n');
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        next.next().is_none(),
        "more replacements than PEM blocks in {name}"
    );
    out
}

fn pod(name: &str, namespace: &str, images: &[&str]) -> String {
    let containers: Vec<String> = images
        .iter()
        .enumerate()
        .map(|(i, img)| format!("  - name: c{i}\n    image: {img}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  containers:\n{}",
        containers.concat()
    )
}

struct Setup {
    registry: TestRegistry,
    w: Workdir,
}

impl Setup {
    fn new() -> Setup {
        let registry = TestRegistry::start_as(
            TestRegistryConfig {
                tls: true,
                auth: true,
            },
            "127.0.0.1:443",
            HOST,
        );
        Setup {
            registry,
            w: Workdir::new(),
        }
    }

    fn key(&self, prefix: &str) -> String {
        self.w.keys(prefix, "pw");
        std::fs::read_to_string(self.w.path(&format!("{prefix}.pub"))).unwrap()
    }

    fn sign(&self, prefix: &str, image: &str) {
        self.w
            .run_on(
                &self.registry,
                "pw",
                &[
                    "sign",
                    "--key",
                    &format!("{prefix}.key"),
                    &format!("{HOST}/{image}"),
                ],
            )
            .success();
    }

    fn write(&self, name: &str, text: &str) -> String {
        std::fs::write(self.w.path(name), text).unwrap();
        name.to_string()
    }

    /// `sealgate apply POLICY --resource POD -o json` → (exit code, report of the one resource).
    fn apply(&self, policy: &str, pod: &str) -> (i32, Value, Run) {
        let run = self.w.run_on(
            &self.registry,
            "",
            &["apply", policy, "--resource", pod, "-o", "json"],
        );
        let report: Value = serde_json::from_str(&run.stdout())
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout(), run.stderr()));
        (run.code(), report["resources"][0].clone(), run)
    }
}

#[test]
fn seed_policies_end_to_end_as_registry_company_com() {
    if std::env::var_os(IN_NAMESPACE).is_none() {
        rerun_in_namespace("seed_policies::seed_policies_end_to_end_as_registry_company_com");
        return;
    }
    let s = Setup::new();
    quick_start(&s);
    dual_signatures(&s);
    environments(&s);
    certificates(&s);
    kyverno_test_file(&s);
}

/// Quick Start: signed admitted and pinned; unsigned company image denied; nginx not covered.
fn quick_start(s: &Setup) {
    let key = s.key("cosign");
    let policy = s.write("quick-start.yaml", &seed_with("quick-start.yaml", &[&key]));
    let digest = s.registry.push_image("app", "v1.0.0");
    s.registry.push_image("unsigned", "v1");
    s.sign("cosign", "app:v1.0.0");

    let pod_signed = s.write(
        "signed.yaml",
        &pod("test", "default", &[&format!("{HOST}/app:v1.0.0")]),
    );
    let (code, report, _) = s.apply(&policy, &pod_signed);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["allowed"], true);
    let patch = report["patch"].as_array().unwrap();
    assert!(
        patch
            .iter()
            .any(|p| p["op"] == "replace" && p["value"] == format!("{HOST}/app:v1.0.0@{digest}")),
        "pinned: {report}"
    );

    let pod_unsigned = s.write(
        "unsigned.yaml",
        &pod("test", "default", &[&format!("{HOST}/unsigned:v1")]),
    );
    let (code, report, run) = s.apply(&policy, &pod_unsigned);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["allowed"], false);
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains(
            "require-signed-images:\n  check-signatures: image registry.company.com/unsigned:v1"
        ),
        "{message}"
    );
    assert!(
        message.contains("no signatures found at registry.company.com/unsigned:sha256-"),
        "{message}"
    );
    assert!(
        run.stderr().is_empty() || !run.stderr().contains("error:"),
        "{}",
        run.stderr()
    );

    // "kubectl run test --image=nginx:latest (should fail)": as in Kyverno, no rule covers it.
    let pod_nginx = s.write("nginx.yaml", &pod("test", "default", &["nginx:latest"]));
    let (code, report, _) = s.apply(&policy, &pod_nginx);
    assert_eq!(code, 0);
    assert_eq!(report["notCovered"][0], "docker.io/nginx:latest");
    let table = s.w.run_on(
        &s.registry,
        "",
        &["apply", &policy, "--resource", &pod_nginx],
    );
    assert!(
        table
            .stdout()
            .contains("not covered by any verifyImages rule"),
        "{}",
        table.stdout()
    );
}

/// Scenario 1: both teams must sign.
fn dual_signatures(s: &Setup) {
    let (security, development) = (s.key("security"), s.key("development"));
    let policy = s.write(
        "dual.yaml",
        &seed_with(
            "scenario-1-dual-signatures.yaml",
            &[&security, &development],
        ),
    );
    s.registry.push_image("critical/app", "v1");
    let pod = s.write(
        "critical.yaml",
        &pod("critical", "default", &[&format!("{HOST}/critical/app:v1")]),
    );

    s.sign("security", "critical/app:v1");
    let (code, report, _) = s.apply(&policy, &pod);
    assert_eq!(code, 1, "only one team signed: {report}");
    assert!(
        report["message"].as_str().unwrap().contains("attestor set 2 of 2 needs 1 signature, got 0: entry 0: none of 1 signature at registry.company.com/critical/app:sha256-"),
        "{report}"
    );
    s.sign("development", "critical/app:v1");
    let (code, report, _) = s.apply(&policy, &pod);
    assert_eq!(code, 0, "both signed: {report}");
    assert_eq!(
        report["results"][0]["images"][0]["signers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Scenario 2: production strict, development and staging audited.
fn environments(s: &Setup) {
    let (production, development) = (s.key("production"), s.key("dev-env"));
    let policy = s.write(
        "envs.yaml",
        &seed_with("scenario-2-environments.yaml", &[&production, &development]),
    );
    s.registry.push_image("web", "v2");
    let image = format!("{HOST}/web:v2");

    let prod = s.write("prod.yaml", &pod("web", "production", &[&image]));
    let (code, report, _) = s.apply(&policy, &prod);
    assert_eq!(code, 1, "production: unsigned is denied: {report}");
    // `*` covers Docker Hub images too; they cannot be fetched here, and Enforce fails closed.
    let prod_hub = s.write("prod-hub.yaml", &pod("web", "production", &["nginx:1.25"]));
    let (code, report, _) = s.apply(&policy, &prod_hub);
    assert_ne!(code, 0, "{report}");
    assert_eq!(report["allowed"], false);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("could not resolve the digest of docker.io/nginx:1.25"),
        "{report}"
    );

    for ns in ["development", "staging"] {
        let dev = s.write(&format!("{ns}.yaml"), &pod("web", ns, &[&image]));
        let (code, report, _) = s.apply(&policy, &dev);
        assert_eq!(code, 0, "{ns}: Audit allows: {report}");
        assert_eq!(report["allowed"], true);
        assert!(
            report["warnings"][0]
                .as_str()
                .unwrap()
                .contains("development-warn-unsigned"),
            "{report}"
        );
        assert!(
            report["patch"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["op"] != "replace"),
            "not pinned unverified: {report}"
        );
    }
    s.sign("production", "web:v2");
    let (code, report, _) = s.apply(&policy, &prod);
    assert_eq!(code, 0, "production: signed is admitted: {report}");
}

/// Scenario 3: certificates. The seed's policy names a Rekor URL, so a signature without a
/// transparency-log entry is refused with that reason; with `ignoreTlog: true` the generated
/// chain passes and a foreign one fails.
fn certificates(s: &Setup) {
    let pki = CodeSigningPki::generate("Company");
    let foreign = CodeSigningPki::generate("Foreign");
    std::fs::write(s.w.path("leaf.key"), &pki.leaf_key_pem).unwrap();
    std::fs::write(s.w.path("company-cert.pem"), &pki.leaf_pem).unwrap();
    std::fs::write(s.w.path("ca-chain.pem"), pki.chain_pem()).unwrap();
    s.registry.push_image("myapp", "v1.0.0");
    s.w.run_on(
        &s.registry,
        "",
        &[
            "sign",
            "--key",
            "leaf.key",
            "--cert",
            "company-cert.pem",
            "--cert-chain",
            "ca-chain.pem",
            &format!("{HOST}/myapp:v1.0.0"),
        ],
    )
    .success();
    let pod = s.write(
        "myapp.yaml",
        &pod("myapp", "default", &[&format!("{HOST}/myapp:v1.0.0")]),
    );

    let as_written = s.write(
        "certs.yaml",
        &seed_with("scenario-3-certificates.yaml", &[&pki.leaf_pem]),
    );
    let (code, report, _) = s.apply(&as_written, &pod);
    assert_eq!(code, 1, "{report}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("the transparency-log proof is missing"),
        "{report}"
    );

    let ignore_tlog = |text: String| {
        text.replace(
            "url: https://rekor.sigstore.dev",
            "url: https://rekor.sigstore.dev\n                ignoreTlog: true",
        )
    };
    let leaf_ok = s.write(
        "certs-ok.yaml",
        &ignore_tlog(seed_with("scenario-3-certificates.yaml", &[&pki.leaf_pem])),
    );
    let (code, report, _) = s.apply(&leaf_ok, &pod);
    assert_eq!(code, 0, "{report}");
    assert!(
        report["results"][0]["images"][0]["signers"][0]
            .as_str()
            .unwrap()
            .contains("Company release signing"),
        "{report}"
    );

    // certChain instead of cert: the leaf on the signature must chain to the policy's roots.
    let chain_policy = |root: &str| {
        ignore_tlog(seed_with("scenario-3-certificates.yaml", &[root]))
            .replace("cert: |-", "certChain: |-")
    };
    let chain_ok = s.write("chain-ok.yaml", &chain_policy(&pki.root_pem));
    let (code, report, _) = s.apply(&chain_ok, &pod);
    assert_eq!(code, 0, "{report}");
    let chain_foreign = s.write("chain-foreign.yaml", &chain_policy(&foreign.root_pem));
    let (code, report, _) = s.apply(&chain_foreign, &pod);
    assert_eq!(code, 1, "{report}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("does not chain to the roots in certChain"),
        "{report}"
    );
    let leaf_foreign = s.write(
        "certs-foreign.yaml",
        &ignore_tlog(seed_with(
            "scenario-3-certificates.yaml",
            &[&foreign.leaf_pem],
        )),
    );
    let (code, report, _) = s.apply(&leaf_foreign, &pod);
    assert_eq!(code, 1, "{report}");
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("another certificate than the policy's cert"),
        "{report}"
    );
}

/// `sealgate test` on a kyverno-test.yaml naming the Quick Start policy.
fn kyverno_test_file(s: &Setup) {
    let dir = s.w.path("kyverno-tests");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.w.path("quick-start.yaml"), dir.join("policy.yaml")).unwrap();
    std::fs::write(
        dir.join("resources.yaml"),
        format!(
            "{}---\n{}",
            pod("signed", "default", &[&format!("{HOST}/app:v1.0.0")]),
            pod("unsigned", "default", &[&format!("{HOST}/unsigned:v1")])
        ),
    )
    .unwrap();
    let test = "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: quick-start\npolicies: [policy.yaml]\nresources: [resources.yaml]\nresults:\n- policy: require-signed-images\n  rule: check-signatures\n  kind: Pod\n  resources: [signed]\n  result: pass\n- policy: require-signed-images\n  rule: check-signatures\n  kind: Pod\n  resources: [unsigned]\n  result: fail\n";
    std::fs::write(dir.join("kyverno-test.yaml"), test).unwrap();
    let run = s.w.run_on(&s.registry, "", &["test", "kyverno-tests"]);
    run.success();
    assert!(
        run.stdout()
            .contains("Test Summary: 2 tests passed and 0 tests failed"),
        "{}",
        run.stdout()
    );
    // A wrong expectation fails with exit 1 and says what it got.
    std::fs::write(
        dir.join("kyverno-test.yaml"),
        test.replace("result: fail", "result: pass"),
    )
    .unwrap();
    let run = s.w.run_on(&s.registry, "", &["test", "kyverno-tests"]);
    run.expect_code(1);
    assert!(
        run.stdout().contains("Want pass, got fail"),
        "{}",
        run.stdout()
    );
}
