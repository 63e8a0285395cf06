//! The Helm chart (`charts/sealgate`) and the image (`Dockerfile`).
//!
//! No helm binary is packaged for Debian, so the chart is rendered by `tools/render-chart` (Go's
//! text/template with Debian's packaged sprig and yaml.v2, built here in GOPATH mode into
//! `target/render-chart/`, once per change of its source). A missing Go or Go package fails
//! the test naming the apt package, never skips it.
//!
//! What is checked:
//!
//! - the renderer itself, on a chart of its own: values typed and merged as Helm does (values
//!   files' numbers through JSON, -f deep merge with null deleting, --set typing), include,
//!   tpl, toYaml, toJson, missing values empty, .Chart/.Release/.Capabilities, install order
//!   with hooks last (--no-hooks), empty and comment-only documents dropped, NOTES.txt;
//! - the default rendering, the cert-manager one and one with `secretNamespaces`: every
//!   document is the k8s-openapi type of its kind and serialises back to exactly itself (an
//!   unknown kind fails; cert-manager's Issuer and Certificate, whose CRDs the test API server
//!   does not have, are checked field by field here); 3 replicas, a PodDisruptionBudget over
//!   the Pods, preferred anti-affinity by hostname, probes on /readyz and /healthz over HTTPS,
//!   the locked-down securityContext, the exact RBAC rules, the TLS flags of each mode, the
//!   audit token mounted where --audit-token-file points;
//! - the Deployment's arguments are flags of the built `sealgate serve` (`target/debug/sealgate`,
//!   `cargo build -p sealgate`), and parse;
//! - against a real kube-apiserver 1.20.2, rendered with that server's `.Capabilities` (its API
//!   versions: policy/v1beta1 for the PodDisruptionBudget, as `helm install` would see them):
//!   `kubectl apply --dry-run=server`, then a real apply, accepted; `kubectl auth can-i` as the
//!   chart's ServiceAccount says yes to each call sealgate makes and no to everything else
//!   (Secrets beyond its TLS Secret, other namespaces, writes to workloads…), and the same for
//!   the uninstall hook's ServiceAccount (whose Job's command, `sealgate uninstall`, run under
//!   its token, removes sealgate's two configurations and no other) and for `secretNamespaces`. The policy/v1 PDB of the
//!   default rendering (1.21 and later) cannot be applied to 1.20: it is checked as a
//!   k8s-openapi `policy/v1` object instead;
//! - `deploy/sealgate.yaml` agrees with the chart's default rendering (release `sealgate` in
//!   namespace `sealgate`) on everything that matters: RBAC rules, arguments, environment,
//!   securityContext, probes, resources, replicas, the PDB;
//! - the Dockerfile: multi-stage, builds package `sealgate` --locked, copies the binary cargo
//!   makes for it, runs as a numeric non-root user, the binary as ENTRYPOINT (so the chart's
//!   and the manifest's containers give only args, starting with `serve`).

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sealgate_test_cluster::{KUBECTL_BINARY, TestCluster};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const RELEASE: &str = "sealgate";
const NAMESPACE: &str = "sealgate";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:sealgate:sealgate";
const UNINSTALL_ACCOUNT: &str = "system:serviceaccount:sealgate:sealgate-uninstall";

/// The Go packages the renderer imports, and the Debian packages that hold them.
const GO_PACKAGES: [(&str, &str); 2] = [
    (
        "github.com/Masterminds/sprig",
        "golang-github-masterminds-sprig-dev",
    ),
    ("gopkg.in/yaml.v2", "golang-gopkg-yaml.v2-dev"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/sealgate")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// `tools/render-chart`, built with Debian's Go against Debian's packaged Go libraries
/// (GOPATH mode, offline), rebuilt only when its source is newer than the binary.
fn renderer() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let source = repo_root().join("tools/render-chart");
        let dir = target_dir().join("render-chart");
        let binary = dir.join("render-chart");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let (Some(built), Some(changed)) = (modified(&binary), modified(&source.join("main.go")))
            && built >= changed
        {
            return binary;
        }
        std::fs::create_dir_all(&dir).unwrap();
        let go = ["/usr/bin/go", "/usr/lib/go/bin/go"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| {
                panic!(
                    "Go is not installed (/usr/bin/go): apt-get install golang-go \
                     golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev; it builds \
                     tools/render-chart, which renders the Helm chart (no helm binary is packaged)"
                )
            });
        for (package, deb) in GO_PACKAGES {
            let dir = Path::new("/usr/share/gocode/src").join(package);
            assert!(
                dir.is_dir(),
                "{} is missing: apt-get install {deb} (tools/render-chart imports {package})",
                dir.display()
            );
        }
        // Built under a temporary name and renamed: other test binaries may build it at once.
        let partial = dir.join(format!("render-chart.{}", std::process::id()));
        let output = Command::new(go)
            .args(["build", "-o"])
            .arg(&partial)
            .arg(".")
            .current_dir(&source)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        for (package, deb) in GO_PACKAGES {
            assert!(
                !stderr.contains(&format!("cannot find package \"{package}")),
                "{stderr}\napt-get install {deb}"
            );
        }
        assert!(
            output.status.success(),
            "go build tools/render-chart failed (apt-get install golang-go \
             golang-github-masterminds-sprig-dev golang-gopkg-yaml.v2-dev):\n{stderr}"
        );
        std::fs::rename(&partial, &binary).unwrap();
        binary
    })
}

/// The chart rendered with `args` (`--set`, `-f`, `--api-versions` …) as release `sealgate` in
/// namespace `sealgate`, in `format` (`yaml` or `json`).
fn render_as(format: &str, args: &[&str]) -> String {
    let output = Command::new(renderer())
        .args(["--name", RELEASE, "--namespace", NAMESPACE, "-o", format])
        .args(args)
        .arg(chart_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "render-chart {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The documents of a rendering, as JSON.
fn render(args: &[&str]) -> Vec<Value> {
    serde_json::from_str(&render_as("json", args)).unwrap()
}

/// Where `actual` lacks something `expected` has, as a JSON path.
fn missing_from(expected: &Value, actual: &Value, path: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            e.iter().find_map(|(key, value)| match a.get(key) {
                Some(other) => missing_from(value, other, &format!("{path}.{key}")),
                None => Some(format!("{path}.{key}: missing (expected {value})")),
            })
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (e, a))| missing_from(e, a, &format!("{path}[{i}]"))),
        _ if expected == actual => None,
        _ => Some(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// `doc` as a `K`, checked to serialise back to exactly `doc`.
fn typed<K>(doc: &Value) -> K
where
    K: Resource + DeserializeOwned + Serialize,
{
    let what = format!("{} {}", K::KIND, doc["metadata"]["name"]);
    let object: K = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} is not a {}: {e}", K::KIND));
    let back = serde_json::to_value(&object).unwrap();
    if let Some(diff) = missing_from(doc, &back, "") {
        panic!("{what}: a field {} does not know: {diff}", K::KIND);
    }
    if let Some(diff) = missing_from(&back, doc, "") {
        panic!("{what}: read back with more than it says: {diff}");
    }
    object
}

/// A rendering, every document read as its type.
#[derive(Default)]
struct Rendering {
    docs: Vec<Value>,
    service_accounts: Vec<ServiceAccount>,
    secrets: Vec<Secret>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    services: Vec<Service>,
    deployments: Vec<Deployment>,
    pdbs: Vec<PodDisruptionBudget>,
    jobs: Vec<Job>,
    /// cert-manager.io/v1 and monitoring.coreos.com/v1 documents, untyped.
    custom: Vec<Value>,
}

impl Rendering {
    fn of(args: &[&str]) -> Rendering {
        let mut r = Rendering {
            docs: render(args),
            ..Rendering::default()
        };
        for doc in r.docs.clone() {
            let api_version = doc["apiVersion"].as_str().unwrap_or_default();
            let kind = doc["kind"].as_str().unwrap_or_default();
            let is = |v: &str, k: &str| api_version == v && kind == k;
            if is(ServiceAccount::API_VERSION, ServiceAccount::KIND) {
                r.service_accounts.push(typed(&doc));
            } else if is(Secret::API_VERSION, Secret::KIND) {
                r.secrets.push(typed(&doc));
            } else if is(ClusterRole::API_VERSION, ClusterRole::KIND) {
                r.cluster_roles.push(typed(&doc));
            } else if is(ClusterRoleBinding::API_VERSION, ClusterRoleBinding::KIND) {
                r.cluster_role_bindings.push(typed(&doc));
            } else if is(Role::API_VERSION, Role::KIND) {
                r.roles.push(typed(&doc));
            } else if is(RoleBinding::API_VERSION, RoleBinding::KIND) {
                r.role_bindings.push(typed(&doc));
            } else if is(Service::API_VERSION, Service::KIND) {
                r.services.push(typed(&doc));
            } else if is(Deployment::API_VERSION, Deployment::KIND) {
                r.deployments.push(typed(&doc));
            } else if is(PodDisruptionBudget::API_VERSION, PodDisruptionBudget::KIND) {
                r.pdbs.push(typed(&doc));
            } else if is(Job::API_VERSION, Job::KIND) {
                r.jobs.push(typed(&doc));
            } else if api_version == "cert-manager.io/v1"
                || api_version == "monitoring.coreos.com/v1"
            {
                r.custom.push(doc);
            } else {
                panic!(
                    "unexpected kind {api_version}/{kind} ({}): add it to this test's kinds",
                    doc["metadata"]["name"]
                );
            }
        }
        r
    }

    fn deployment(&self) -> &Deployment {
        assert_eq!(self.deployments.len(), 1, "one Deployment");
        &self.deployments[0]
    }

    fn pod_spec(&self) -> &PodSpec {
        self.deployment()
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    fn container(&self) -> &Container {
        let spec = self.pod_spec();
        assert_eq!(spec.containers.len(), 1, "one container");
        &spec.containers[0]
    }

    fn args(&self) -> Vec<String> {
        self.container().args.clone().expect("args")
    }

    fn arg(&self, flag: &str) -> Option<String> {
        let args = self.args();
        let at = args.iter().position(|a| a == flag)?;
        args.get(at + 1).cloned()
    }

    fn role(&self, name: &str) -> &Role {
        self.roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Role {name}"))
    }

    fn cluster_role(&self, name: &str) -> &ClusterRole {
        self.cluster_roles
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no ClusterRole {name}"))
    }

    fn custom(&self, kind: &str, name: &str) -> &Value {
        self.custom
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }
}

/// A rule in a comparable form: API groups, resources, resource names, verbs, each sorted.
type Rule = (Vec<String>, Vec<String>, Vec<String>, Vec<String>);

fn rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Rule {
    let sorted = |items: &[&str]| {
        let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    (
        sorted(groups),
        sorted(resources),
        sorted(names),
        sorted(verbs),
    )
}

fn rules(rules: &Option<Vec<PolicyRule>>) -> BTreeSet<Rule> {
    let rules = rules.clone().unwrap_or_default();
    let set: BTreeSet<Rule> = rules
        .iter()
        .map(|r| {
            assert!(r.non_resource_urls.is_none(), "{r:?}");
            let sorted = |v: &Option<Vec<String>>| {
                let mut v = v.clone().unwrap_or_default();
                v.sort();
                v
            };
            (
                sorted(&r.api_groups),
                sorted(&r.resources),
                sorted(&r.resource_names),
                sorted(&Some(r.verbs.clone())),
            )
        })
        .collect();
    assert_eq!(set.len(), rules.len(), "a rule twice: {rules:?}");
    set
}

const HOOKS: [&str; 2] = [
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
];

/// What `serve --kubernetes` calls, cluster-wide.
fn expected_cluster_rules(webhook_name: &str) -> BTreeSet<Rule> {
    let read = ["get", "list", "watch"];
    BTreeSet::from([
        rule(
            &["kyverno.io"],
            &["clusterpolicies", "policies"],
            &[],
            &read,
        ),
        rule(
            &["kyverno.io"],
            &["clusterpolicies/status", "policies/status"],
            &[],
            &["patch", "update"],
        ),
        rule(&[""], &["namespaces"], &[], &read),
        rule(&[""], &["events"], &[], &["create", "patch"]),
        rule(
            &["wgpolicyk8s.io"],
            &["policyreports"],
            &[],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(&[""], &["pods", "replicationcontrollers"], &[], &read),
        rule(
            &["apps"],
            &["deployments", "replicasets", "statefulsets", "daemonsets"],
            &[],
            &read,
        ),
        rule(&["batch"], &["jobs", "cronjobs"], &[], &read),
        rule(
            &["admissionregistration.k8s.io"],
            &HOOKS,
            &[],
            &["get", "list", "watch", "create"],
        ),
        rule(
            &["admissionregistration.k8s.io"],
            &HOOKS,
            &[webhook_name],
            &["update", "delete"],
        ),
    ])
}

/// The TLS Secret and its Lease (self-managed mode), in the release namespace.
fn expected_tls_rules(secret: &str) -> BTreeSet<Rule> {
    BTreeSet::from([
        rule(&[""], &["secrets"], &[secret], &["get", "update"]),
        rule(&[""], &["secrets"], &[], &["create"]),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &[secret],
            &["get", "update"],
        ),
        rule(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
    ])
}

fn labels_select(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels(r: &Rendering) -> BTreeMap<String, String> {
    r.deployment()
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap()
}

/// The top-level fields of the chart's Chart.yaml.
fn chart_meta() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

#[test]
fn the_default_rendering_is_three_locked_down_replicas_with_exact_rbac() {
    let r = Rendering::of(&[]);
    assert!(r.custom.is_empty(), "no cert-manager objects by default");
    assert_eq!(r.service_accounts.len(), 2, "sealgate's and the hook's");

    // Replicas, spread, disruption budget.
    let deployment = r.deployment();
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pods = pod_labels(&r);
    assert!(labels_select(
        spec.selector.match_labels.as_ref().unwrap(),
        &pods
    ));
    let strategy = spec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        strategy.rolling_update.as_ref().unwrap().max_unavailable,
        Some(IntOrString::Int(0)),
        "no replica goes before its successor is ready"
    );
    assert_eq!(r.pdbs.len(), 1, "a PodDisruptionBudget");
    let pdb = r.pdbs[0].spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert!(pdb.min_available.is_none());
    assert!(labels_select(
        pdb.selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap(),
        &pods
    ));
    let pod = r.pod_spec();
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .expect("pod anti-affinity");
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none()
    );
    let preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(preferred.len(), 1);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    assert!(labels_select(
        term.label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap(),
        &pods
    ));

    // The Service selects the Pods, port 443 to the listen port.
    assert_eq!(r.services.len(), 1);
    let service = r.services[0].spec.as_ref().unwrap();
    assert!(labels_select(service.selector.as_ref().unwrap(), &pods));
    let ports = service.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 443);
    assert_eq!(ports[0].target_port, Some(IntOrString::Int(8443)));

    // The container: the image's entrypoint with args, probes, resources, lock-down.
    let container = r.container();
    let meta = chart_meta();
    assert_eq!(
        container.image.as_deref(),
        Some(format!("ghcr.io/sealgate/sealgate:{}", meta["appVersion"]).as_str())
    );
    assert!(container.command.is_none(), "the entrypoint is sealgate");
    assert_eq!(r.args()[0], "serve");
    assert_eq!(r.arg("--service").as_deref(), Some("sealgate/sealgate"));
    assert_eq!(
        r.arg("--tls-secret").as_deref(),
        Some("sealgate/sealgate-tls")
    );
    assert_eq!(r.arg("--listen").as_deref(), Some("0.0.0.0:8443"));
    assert_eq!(r.arg("--data-dir").as_deref(), Some("/data"));
    for flag in ["--tls-cert", "--tls-key", "--ca-bundle"] {
        assert!(r.arg(flag).is_none(), "{flag} in self-managed mode");
    }
    for (probe, path) in [
        (&container.readiness_probe, "/readyz"),
        (&container.liveness_probe, "/healthz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{path}");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::Int(8443), "{path}");
    }
    let resources = container.resources.as_ref().unwrap();
    let amounts =
        |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect::<BTreeMap<_, _>>()
        };
    assert_eq!(
        amounts(&resources.requests),
        BTreeMap::from([
            ("cpu".to_string(), "100m".to_string()),
            ("memory".to_string(), "64Mi".to_string())
        ])
    );
    assert_eq!(
        amounts(&resources.limits),
        BTreeMap::from([("memory".to_string(), "256Mi".to_string())])
    );
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(security.run_as_user, Some(65532));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.as_ref().unwrap();
    assert_eq!(capabilities.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(capabilities.add.is_none());
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    for seccomp in [&security.seccomp_profile, &pod_security.seccomp_profile] {
        assert_eq!(
            seccomp.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
    }
    assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
    let env: BTreeMap<String, String> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.value_from.unwrap().field_ref.unwrap().field_path))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("POD_NAME".to_string(), "metadata.name".to_string()),
            (
                "POD_NAMESPACE".to_string(),
                "metadata.namespace".to_string()
            ),
        ]),
        "POD_NAME is the Lease's holder identity"
    );

    // Writable: --data-dir and /tmp (emptyDirs); the audit token, read-only from its Secret.
    let mounts = container.volume_mounts.clone().unwrap();
    let volumes = pod.volumes.clone().unwrap();
    let volume_at = |path: &str| {
        let mount = mounts
            .iter()
            .find(|m| path.starts_with(&m.mount_path))
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        let volume = volumes.iter().find(|v| v.name == mount.name).unwrap();
        (mount.clone(), volume.clone())
    };
    for path in ["/data", "/tmp"] {
        let (mount, volume) = volume_at(path);
        assert_ne!(mount.read_only, Some(true), "{path}");
        assert!(volume.empty_dir.is_some(), "{path} is not an emptyDir");
    }
    let token_file = r.arg("--audit-token-file").expect("GET /audit is closed");
    let (mount, volume) = volume_at(&token_file);
    assert_eq!(mount.read_only, Some(true));
    let secret_volume = volume.secret.unwrap();
    let token_secret = r
        .secrets
        .iter()
        .find(|s| s.metadata.name == secret_volume.secret_name)
        .expect("the audit token Secret is rendered");
    let key = token_file.rsplit('/').next().unwrap();
    let token = &token_secret.data.as_ref().unwrap()[key];
    assert!(token.0.len() >= 32, "a long random token");
    assert_ne!(
        Rendering::of(&[]).secrets[0].data,
        token_secret.data,
        "a token of its own per install"
    );

    // RBAC: exactly what sealgate calls; no Secrets cluster-wide; its TLS Secret and Lease.
    let cluster_role = r.cluster_role("sealgate");
    assert_eq!(
        rules(&cluster_role.rules),
        expected_cluster_rules("sealgate")
    );
    let tls = r.role("sealgate-tls");
    assert_eq!(tls.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(rules(&tls.rules), expected_tls_rules("sealgate-tls"));
    assert_eq!(
        r.roles
            .iter()
            .filter(|role| role.metadata.name.as_deref() != Some("sealgate-uninstall"))
            .count(),
        1,
        "no other Role by default (beside the uninstall hook's)"
    );
    for binding in &r.cluster_role_bindings {
        let subjects = binding.subjects.as_ref().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
        assert_eq!(binding.role_ref.kind, "ClusterRole");
    }
    let binding = r
        .role_bindings
        .iter()
        .find(|b| b.role_ref.name == "sealgate-tls")
        .unwrap();
    assert_eq!(binding.subjects.as_ref().unwrap()[0].name, "sealgate");
    assert_eq!(pod.service_account_name.as_deref(), Some("sealgate"));

    // The uninstall hook: a pre-delete Job of `sealgate uninstall --webhook-name sealgate`
    // under its own ServiceAccount, allowed to delete the two configurations only.
    assert_eq!(r.jobs.len(), 1);
    let job = &r.jobs[0];
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["helm.sh/hook"], "pre-delete");
    let job_pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(
        job_pod.containers[0].args.as_deref().unwrap(),
        [
            "uninstall",
            "--webhook-name",
            "sealgate",
            "--scale-down",
            "sealgate/sealgate"
        ]
    );
    // It may scale sealgate's Deployment (and read it), nothing else in the namespace.
    assert_eq!(
        rules(&r.role("sealgate-uninstall").rules),
        BTreeSet::from([
            rule(&["apps"], &["deployments"], &["sealgate"], &["get"]),
            rule(&["apps"], &["deployments/scale"], &["sealgate"], &["patch"]),
        ])
    );
    assert_eq!(
        job_pod.containers[0].image, container.image,
        "the same image"
    );
    assert_eq!(
        job_pod.service_account_name.as_deref(),
        Some("sealgate-uninstall")
    );
    assert_eq!(
        rules(&r.cluster_role("sealgate-uninstall").rules),
        BTreeSet::from([rule(
            &["admissionregistration.k8s.io"],
            &HOOKS,
            &["sealgate"],
            &["delete"]
        )])
    );
    // The Job's Pods are not the Deployment's.
    let job_labels = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert!(!labels_select(
        spec.selector.match_labels.as_ref().unwrap(),
        &job_labels
    ));
}

#[test]
fn values_rename_the_webhook_and_reach_every_serve_flag() {
    let r = Rendering::of(&[
        "--set",
        "webhookName=sg",
        "--set",
        "policySelector=sealgate.dev/enforce=true",
        "--set",
        "budget=5s",
        "--set",
        "backgroundScanInterval=0s",
        "--set",
        "cacheTtl=2h",
        "--set",
        "digestCacheTtl=1m",
        "--set",
        "registry.concurrency=4",
        "--set",
        "logFormat=json",
        "--set",
        "audit.retention=48h",
        "--set",
        "audit.maxRows=5000",
        "--set",
        "audit.sync=true",
        "--set",
        "audit.token.existingSecret=my-token",
        "--set",
        "tls.secretName=my-tls",
        "--set",
        "tls.certValidity=720h",
        "--set",
        "replicaCount=2",
        "--set",
        "imagePullSecrets={pull-a}",
        "--set",
        "extraArgs={--allow-unknown-fields}",
        "--set",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]);
    for (flag, value) in [
        ("--webhook-name", "sg"),
        ("--policy-selector", "sealgate.dev/enforce=true"),
        ("--budget", "5s"),
        ("--background-scan-interval", "0s"),
        ("--cache-ttl", "2h"),
        ("--digest-cache-ttl", "1m"),
        ("--registry-concurrency", "4"),
        ("--log-format", "json"),
        ("--audit-retention", "48h"),
        ("--audit-max-rows", "5000"),
        ("--tls-secret", "sealgate/my-tls"),
        ("--cert-validity", "720h"),
    ] {
        assert_eq!(r.arg(flag).as_deref(), Some(value), "{flag}");
    }
    let args = r.args();
    assert!(args.contains(&"--audit-sync".to_string()));
    assert!(!args.contains(&"--no-policy-reports".to_string()));
    let quiet = Rendering::of(&["--set", "policyReports=false"]);
    assert!(quiet.args().contains(&"--no-policy-reports".to_string()));
    assert_eq!(
        args.last().map(String::as_str),
        Some("--allow-unknown-fields")
    );
    assert!(r.secrets.is_empty(), "an existing token Secret is not made");
    assert_eq!(r.deployment().spec.as_ref().unwrap().replicas, Some(2));
    assert_eq!(
        r.pod_spec().image_pull_secrets.as_ref().unwrap()[0].name,
        "pull-a"
    );
    assert!(r.container().image.as_deref().unwrap().ends_with(
        "sealgate@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    ));
    assert_eq!(
        rules(&r.cluster_role("sealgate").rules),
        expected_cluster_rules("sg")
    );
    assert_eq!(
        rules(&r.role("sealgate-tls").rules),
        expected_tls_rules("my-tls")
    );
    let volumes = r.pod_spec().volumes.clone().unwrap();
    assert!(volumes.iter().any(|v| {
        v.secret
            .as_ref()
            .is_some_and(|s| s.secret_name.as_deref() == Some("my-token"))
    }));

    // GET /audit open only when asked for.
    let open = Rendering::of(&["--set", "audit.token.enabled=false"]);
    assert!(open.arg("--audit-token-file").is_none());
    assert!(open.secrets.is_empty());
}

#[test]
fn cert_manager_mode_issues_the_serving_certificate_and_needs_no_secret_writes() {
    let r = Rendering::of(&["--set", "certManager.enabled=true"]);
    assert!(
        r.roles
            .iter()
            .all(|role| role.metadata.name.as_deref() == Some("sealgate-uninstall")),
        "no Role for a Secret or a Lease (only the uninstall hook's, to scale the Deployment)"
    );
    assert!(r.arg("--tls-secret").is_none());
    assert_eq!(r.arg("--tls-cert").as_deref(), Some("/tls/tls.crt"));
    assert_eq!(r.arg("--tls-key").as_deref(), Some("/tls/tls.key"));
    assert_eq!(r.arg("--ca-bundle").as_deref(), Some("/tls/ca.crt"));
    assert_eq!(
        rules(&r.cluster_role("sealgate").rules),
        expected_cluster_rules("sealgate")
    );

    for doc in &r.custom {
        assert_eq!(doc["apiVersion"], "cert-manager.io/v1", "{doc}");
        assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{doc}");
        assert!(
            matches!(doc["kind"].as_str(), Some("Issuer" | "Certificate")),
            "{doc}"
        );
    }
    assert_eq!(r.custom.len(), 4);
    let self_signed = r.custom("Issuer", "sealgate-selfsigned");
    assert_eq!(self_signed["spec"], serde_json::json!({"selfSigned": {}}));
    let ca = r.custom("Certificate", "sealgate-ca");
    assert_eq!(ca["spec"]["isCA"], true);
    assert_eq!(
        ca["spec"]["issuerRef"],
        serde_json::json!({"group": "cert-manager.io", "kind": "Issuer", "name": "sealgate-selfsigned"})
    );
    assert_eq!(ca["spec"]["duration"], "8760h");
    assert_eq!(
        ca["spec"]["privateKey"]["rotationPolicy"], "Never",
        "a renewed CA keeps its key: certificates it signed still verify"
    );
    let ca_issuer = r.custom("Issuer", "sealgate-ca");
    assert_eq!(
        ca_issuer["spec"]["ca"]["secretName"],
        ca["spec"]["secretName"]
    );
    let serving = r.custom("Certificate", "sealgate-tls");
    assert_eq!(
        serving["spec"]["issuerRef"],
        serde_json::json!({"group": "cert-manager.io", "kind": "Issuer", "name": "sealgate-ca"})
    );
    assert_eq!(
        serving["spec"]["dnsNames"],
        serde_json::json!([
            "sealgate.sealgate.svc",
            "sealgate.sealgate.svc.cluster.local"
        ]),
        "the names the API server calls the Service by"
    );
    assert!(serving["spec"].get("isCA").is_none());
    let usages = serving["spec"]["usages"].as_array().unwrap();
    assert!(usages.contains(&Value::from("server auth")), "{usages:?}");
    for field in ["duration", "renewBefore"] {
        assert!(serving["spec"][field].is_string(), "{field}");
    }

    // The serving certificate's Secret is what is mounted at /tls, read-only.
    let container = r.container();
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == "/tls")
        .expect("/tls mounted");
    assert_eq!(mount.read_only, Some(true));
    let volume = r
        .pod_spec()
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == mount.name)
        .unwrap();
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        serving["spec"]["secretName"].as_str()
    );
    assert_eq!(serving["spec"]["secretName"], "sealgate-tls");

    // And a ServiceMonitor when asked for.
    let monitored = Rendering::of(&["--set", "serviceMonitor.enabled=true"]);
    let monitor = &monitored.custom[0];
    assert_eq!(monitor["kind"], "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "https");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn config_map_namespaces_get_a_read_only_role_each() {
    let none = Rendering::of(&[]);
    assert!(
        none.roles
            .iter()
            .all(|r| r.metadata.name.as_deref() != Some("sealgate-config-maps")),
        "no ConfigMaps by default"
    );
    let r = Rendering::of(&["--set", "configMapNamespaces={default,team-a,default}"]);
    let roles: Vec<&Role> = r
        .roles
        .iter()
        .filter(|r| r.metadata.name.as_deref() == Some("sealgate-config-maps"))
        .collect();
    let namespaces: Vec<&str> = roles
        .iter()
        .map(|r| r.metadata.namespace.as_deref().unwrap())
        .collect();
    assert_eq!(namespaces, ["default", "team-a"], "one Role per namespace");
    for role in roles {
        assert_eq!(
            rules(&role.rules),
            BTreeSet::from([rule(&[""], &["configmaps"], &[], &["get", "list", "watch"])])
        );
        let binding = r
            .role_bindings
            .iter()
            .find(|b| {
                b.metadata.namespace == role.metadata.namespace
                    && Some(&b.role_ref.name) == role.metadata.name.as_ref()
            })
            .expect("bound");
        let subjects = binding.subjects.as_ref().unwrap();
        assert_eq!(
            (subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
            ("sealgate", Some(NAMESPACE))
        );
    }
}

#[test]
fn config_maps_everywhere_is_a_cluster_role_to_list_and_watch_them() {
    let none = Rendering::of(&[]);
    assert!(
        none.cluster_role_bindings
            .iter()
            .all(|b| b.role_ref.name != "sealgate-config-maps"),
        "not by default"
    );
    let r = Rendering::of(&["--set", "configMapsEverywhere=true"]);
    let role = r.cluster_role("sealgate-config-maps");
    assert_eq!(
        rules(&role.rules),
        BTreeSet::from([rule(&[""], &["configmaps"], &[], &["list", "watch"])])
    );
    let bound = r
        .cluster_role_bindings
        .iter()
        .find(|b| b.role_ref.name == "sealgate-config-maps")
        .expect("bound");
    let subject = &bound.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (subject.name.as_str(), subject.namespace.as_deref()),
        ("sealgate", Some(NAMESPACE))
    );
}

#[test]
fn secret_namespaces_get_a_read_only_role_each() {
    assert!(
        Rendering::of(&[])
            .cluster_roles
            .iter()
            .all(|r| r.metadata.name.as_deref() != Some("sealgate-pull-secrets")),
        "no Secrets cluster-wide by default"
    );
    // Pull secrets: their namespaces (a NAME alone is in the release namespace) get the same
    // Role; --pod-pull-secrets a ClusterRole listing and watching Secrets everywhere (the
    // flags are checked against serve --help in the_deployments_arguments_…).
    let r = Rendering::of(&[
        "--set",
        "secretNamespaces={sealgate-keys,team-a}",
        "--set",
        "registryPullSecrets.secrets={regcred,team-a/robot,ci/robot}",
        "--set",
        "registryPullSecrets.fromPods=true",
    ]);
    let args = r.args();
    for (flag, value) in [
        ("--image-pull-secret", "regcred"),
        ("--image-pull-secret", "team-a/robot"),
        ("--image-pull-secret", "ci/robot"),
    ] {
        assert!(
            args.windows(2).any(|w| w[0] == flag && w[1] == value),
            "{flag} {value} in {args:?}"
        );
    }
    assert!(args.contains(&"--pod-pull-secrets".to_string()));
    let pull = r.cluster_role("sealgate-pull-secrets");
    assert_eq!(
        rules(&pull.rules),
        BTreeSet::from([rule(&[""], &["secrets"], &[], &["list", "watch"])])
    );
    let bound = r
        .cluster_role_bindings
        .iter()
        .find(|b| b.role_ref.name == "sealgate-pull-secrets")
        .expect("bound");
    assert_eq!(bound.subjects.as_ref().unwrap()[0].name, "sealgate");
    assert_eq!(
        rules(&r.cluster_role("sealgate").rules),
        expected_cluster_rules("sealgate"),
        "sealgate's own ClusterRole unchanged"
    );
    let with_pull: BTreeSet<&str> = r
        .roles
        .iter()
        .filter(|r| r.metadata.name.as_deref() == Some("sealgate-keys"))
        .map(|r| r.metadata.namespace.as_deref().unwrap())
        .collect();
    assert_eq!(
        with_pull,
        BTreeSet::from(["sealgate-keys", "team-a", NAMESPACE, "ci"]),
        "one Role per namespace"
    );

    let r = Rendering::of(&["--set", "secretNamespaces={sealgate-keys,team-a}"]);
    let keys: Vec<&Role> = r
        .roles
        .iter()
        .filter(|r| r.metadata.name.as_deref() == Some("sealgate-keys"))
        .collect();
    let namespaces: BTreeSet<&str> = keys
        .iter()
        .map(|r| r.metadata.namespace.as_deref().unwrap())
        .collect();
    assert_eq!(namespaces, BTreeSet::from(["sealgate-keys", "team-a"]));
    for role in keys {
        assert_eq!(
            rules(&role.rules),
            BTreeSet::from([rule(&[""], &["secrets"], &[], &["get", "list", "watch"])])
        );
        let binding = r
            .role_bindings
            .iter()
            .find(|b| {
                b.metadata.namespace == role.metadata.namespace
                    && Some(&b.role_ref.name) == role.metadata.name.as_ref()
            })
            .expect("bound");
        let subjects = binding.subjects.as_ref().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].name, "sealgate");
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
    }
}

/// `target/debug/sealgate`; fails when it is not built.
fn sealgate_binary() -> PathBuf {
    let binary = target_dir().join("debug/sealgate");
    assert!(
        binary.is_file(),
        "{} does not exist: run cargo build -p sealgate",
        binary.display()
    );
    binary
}

/// The `--flags` of `sealgate serve --help`.
fn serve_flags(binary: &Path) -> BTreeSet<String> {
    let output = Command::new(binary)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',']))
        .filter(|t| t.starts_with("--"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_deployments_arguments_are_sealgate_serve_flags_in_both_modes() {
    let binary = sealgate_binary();
    let flags = serve_flags(&binary);
    let uninstall = Command::new(&binary)
        .args(["uninstall", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&uninstall.stdout).contains("--webhook-name"),
        "the hook's flag"
    );
    for values in [
        &[][..],
        &["--set", "certManager.enabled=true"][..],
        &[
            "--set",
            "policySelector=sealgate.dev/enforce=true",
            "--set",
            "audit.sync=true",
            "--set",
            "policyReports=false",
            "--set",
            "registryPullSecrets.secrets={regcred,ci/robot}",
            "--set",
            "registryPullSecrets.fromPods=true",
        ][..],
    ] {
        let r = Rendering::of(values);
        let args = r.args();
        assert_eq!(args[0], "serve");
        for arg in &args[1..] {
            if let Some(flag) = arg.strip_prefix("--") {
                let flag = format!("--{}", flag.split('=').next().unwrap());
                assert!(
                    flags.contains(&flag),
                    "{values:?}: {flag} is not a flag of sealgate serve: {flags:?}"
                );
            }
        }
        // The values parse too (clap checks each argument before it gets to --help).
        let output = Command::new(&binary)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "sealgate {} --help: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `kubectl auth can-i` as `account`.
fn can_i(cluster: &TestCluster, account: &str, args: &[&str]) -> bool {
    let mut full = vec!["auth", "can-i", "--as", account];
    full.extend_from_slice(args);
    let out = cluster.kubectl(&full);
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl {}: {} {}", full.join(" "), out.stdout, out.stderr),
    }
}

fn check_can(cluster: &TestCluster, account: &str, allowed: bool, list: &[Vec<&str>]) {
    for args in list {
        assert_eq!(
            can_i(cluster, account, args),
            allowed,
            "{account} {} {}",
            if allowed { "cannot" } else { "may" },
            args.join(" ")
        );
    }
}

#[test]
fn the_chart_applies_to_a_real_api_server_and_grants_exactly_what_sealgate_needs() {
    let cluster = TestCluster::start();
    // Kyverno's policy kinds and the PolicyReport kinds (deploy/crds), as on a cluster that
    // has them: `kubectl auth can-i` resolves a resource only when the server serves it.
    let crds = repo_root().join("deploy/crds");
    cluster.kubectl_ok(&["apply", "-f", crds.to_str().unwrap()]);
    cluster.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "-f",
        crds.to_str().unwrap(),
    ]);
    // `.Capabilities` of this cluster, as helm install would see them.
    let versions = cluster.kubectl_ok(&["api-versions"]);
    let server: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["version", "-o", "json"])).unwrap();
    let git_version = server["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut capabilities = vec!["--kube-version".to_string(), git_version];
    for version in versions.lines().filter(|l| !l.is_empty()) {
        capabilities.push("--api-versions".to_string());
        capabilities.push(version.to_string());
    }
    let with = |extra: &[&str]| -> String {
        let mut args: Vec<&str> = capabilities.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        render_as("yaml", &args)
    };
    let rendered = with(&[]);
    assert!(
        rendered.contains("apiVersion: policy/v1beta1\nkind: PodDisruptionBudget"),
        "1.20 serves policy/v1beta1 only:\n{rendered}"
    );

    // helm install -n sealgate --create-namespace: the namespace, then the release. The
    // uninstall hook's objects are applied too, to check them (Helm creates them only on
    // `helm uninstall`; here no controller runs the Job).
    cluster.kubectl_ok(&["create", "namespace", NAMESPACE]);
    let dry = cluster.kubectl_stdin(&["apply", "--dry-run=server", "-f", "-"], &rendered);
    assert!(dry.success(), "{}\n{rendered}", dry.stderr);
    for object in [
        "serviceaccount/sealgate",
        "secret/sealgate-audit-token",
        "clusterrole.rbac.authorization.k8s.io/sealgate",
        "clusterrolebinding.rbac.authorization.k8s.io/sealgate",
        "role.rbac.authorization.k8s.io/sealgate-tls",
        "rolebinding.rbac.authorization.k8s.io/sealgate-tls",
        "service/sealgate",
        "deployment.apps/sealgate",
        "poddisruptionbudget.policy/sealgate",
        "job.batch/sealgate-uninstall",
    ] {
        assert!(
            dry.stdout
                .contains(&format!("{object} created (server dry run)")),
            "{object}: {}",
            dry.stdout
        );
    }
    let applied = cluster.kubectl_stdin(&["apply", "-f", "-"], &rendered);
    assert!(applied.success(), "{}", applied.stderr);

    let ns = ["-n", NAMESPACE];
    let with_ns = |args: &[&'static str]| -> Vec<&'static str> {
        let mut v = args.to_vec();
        v.extend_from_slice(&ns);
        v
    };
    let hooks = [
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    ];
    let mut allowed: Vec<Vec<&str>> = Vec::new();
    for verb in ["get", "list", "watch"] {
        allowed.push(vec![verb, "clusterpolicies.kyverno.io"]);
        allowed.push(vec![verb, "policies.kyverno.io", "--all-namespaces"]);
        allowed.push(vec![verb, "namespaces"]);
        for resource in [
            "pods",
            "replicationcontrollers",
            "deployments.apps",
            "replicasets.apps",
            "statefulsets.apps",
            "daemonsets.apps",
            "jobs.batch",
            "cronjobs.batch",
        ] {
            allowed.push(vec![verb, resource, "--all-namespaces"]);
        }
    }
    for verb in ["patch", "update"] {
        allowed.push(vec![
            verb,
            "clusterpolicies.kyverno.io",
            "--subresource=status",
        ]);
        allowed.push(vec![
            verb,
            "policies.kyverno.io",
            "--subresource=status",
            "-n",
            "team-a",
        ]);
    }
    for verb in ["create", "patch"] {
        allowed.push(vec![verb, "events", "-n", "default"]);
        allowed.push(vec![verb, "events", "-n", "team-a"]);
    }
    for verb in [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ] {
        allowed.push(vec![verb, "policyreports.wgpolicyk8s.io", "-n", "team-a"]);
    }
    let hook_names: Vec<String> = hooks.iter().map(|h| format!("{h}/sealgate")).collect();
    for (hook, named) in hooks.iter().zip(&hook_names) {
        for verb in ["get", "list", "watch", "create"] {
            allowed.push(vec![verb, hook]);
        }
        allowed.push(vec!["update", named]);
        allowed.push(vec!["delete", named]);
    }
    // The TLS Secret and its Lease, by name; a create of each.
    allowed.push(with_ns(&["get", "secrets/sealgate-tls"]));
    allowed.push(with_ns(&["update", "secrets/sealgate-tls"]));
    allowed.push(with_ns(&["create", "secrets"]));
    allowed.push(with_ns(&["get", "leases.coordination.k8s.io/sealgate-tls"]));
    allowed.push(with_ns(&[
        "update",
        "leases.coordination.k8s.io/sealgate-tls",
    ]));
    allowed.push(with_ns(&["create", "leases.coordination.k8s.io"]));
    check_can(&cluster, SERVICE_ACCOUNT, true, &allowed);

    let mut refused: Vec<Vec<&str>> = vec![
        // No other Secret: not the audit token, not a list, not elsewhere.
        with_ns(&["get", "secrets/sealgate-audit-token"]),
        with_ns(&["update", "secrets/sealgate-audit-token"]),
        with_ns(&["list", "secrets"]),
        with_ns(&["watch", "secrets"]),
        with_ns(&["delete", "secrets/sealgate-tls"]),
        with_ns(&["patch", "secrets/sealgate-tls"]),
        vec!["get", "secrets", "-n", "default"],
        vec!["create", "secrets", "-n", "default"],
        vec!["list", "secrets", "--all-namespaces"],
        with_ns(&["update", "leases.coordination.k8s.io/other"]),
        with_ns(&["delete", "leases.coordination.k8s.io/sealgate-tls"]),
        vec!["create", "leases.coordination.k8s.io", "-n", "default"],
        // No workload writes, no escalation.
        vec!["create", "pods", "-n", "default"],
        vec!["delete", "pods", "-n", "default"],
        vec!["update", "deployments.apps", "-n", NAMESPACE],
        vec!["patch", "deployments.apps", "-n", "default"],
        vec!["create", "jobs.batch", "-n", "default"],
        vec!["delete", "namespaces"],
        vec!["get", "configmaps", "-n", "default"],
        vec!["create", "clusterpolicies.kyverno.io"],
        vec!["update", "clusterpolicies.kyverno.io"],
        vec!["delete", "events", "-n", "default"],
        vec![
            "deletecollection",
            "policyreports.wgpolicyk8s.io",
            "-n",
            "team-a",
        ],
        vec!["create", "clusterpolicyreports.wgpolicyk8s.io"],
        vec!["create", "serviceaccounts/token", "-n", NAMESPACE],
        vec!["bind", "clusterroles"],
        vec!["escalate", "clusterroles"],
        vec!["impersonate", "users"],
        vec!["create", "customresourcedefinitions.apiextensions.k8s.io"],
    ];
    let other_hooks: Vec<String> = hooks.iter().map(|h| format!("{h}/other")).collect();
    for (hook, other) in hooks.iter().zip(&other_hooks) {
        refused.push(vec!["update", other]);
        refused.push(vec!["delete", other]);
        refused.push(vec!["deletecollection", hook]);
    }
    check_can(&cluster, SERVICE_ACCOUNT, false, &refused);

    // The uninstall hook's ServiceAccount: the two deletes, nothing else.
    let hook_allowed: Vec<Vec<&str>> = hook_names.iter().map(|n| vec!["delete", n]).collect();
    check_can(&cluster, UNINSTALL_ACCOUNT, true, &hook_allowed);
    let mut hook_refused: Vec<Vec<&str>> = vec![
        vec!["get", "secrets", "-n", NAMESPACE],
        vec!["delete", "deployments.apps", "-n", NAMESPACE],
        vec!["patch", "deployments.apps", "-n", NAMESPACE],
        vec!["patch", "deployments.apps/other", "-n", NAMESPACE],
    ];
    for ((hook, named), other) in hooks.iter().zip(&hook_names).zip(&other_hooks) {
        hook_refused.push(vec!["create", hook]);
        hook_refused.push(vec!["update", named]);
        hook_refused.push(vec!["delete", other]);
    }
    check_can(&cluster, UNINSTALL_ACCOUNT, false, &hook_refused);
    // And the hook's own command under that ServiceAccount's token: it removes sealgate's two
    // configurations, another one stays.
    for (kind, name) in [
        ("MutatingWebhookConfiguration", "sealgate"),
        ("ValidatingWebhookConfiguration", "sealgate"),
        ("ValidatingWebhookConfiguration", "other"),
    ] {
        let object = format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\nwebhooks: []\n"
        );
        let created = cluster.kubectl_stdin(&["apply", "-f", "-"], &object);
        assert!(created.success(), "{}", created.stderr);
    }
    let work = tempfile::tempdir().unwrap();
    let kubeconfig = service_account_kubeconfig(&cluster, "sealgate-uninstall", work.path());
    let job = hook_job_args(&rendered);
    let running = Command::new(sealgate_binary())
        .args(&job)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // It scales the Deployment to 0 and waits for the replicas to go; this API server runs no
    // controller-manager, so the test plays the Deployment controller's part once the scale
    // has been asked for.
    let asked = (0..100).find(|_| {
        let replicas = cluster.kubectl_ok(&[
            "get",
            "deployment",
            "sealgate",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.replicas}/{.metadata.generation}",
        ]);
        if replicas.trim().starts_with("0/") {
            let generation = replicas.trim().trim_start_matches("0/").to_string();
            cluster.kubectl_ok(&[
                "patch",
                "deployment",
                "sealgate",
                "-n",
                NAMESPACE,
                "--subresource=status",
                "--type=merge",
                "-p",
                &format!(r#"{{"status": {{"observedGeneration": {generation}, "replicas": 0}}}}"#),
            ]);
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        false
    });
    assert!(asked.is_some(), "the hook never scaled the Deployment to 0");
    let uninstall = running.wait_with_output().unwrap();
    assert!(
        uninstall.status.success(),
        "sealgate {}: {}",
        job.join(" "),
        String::from_utf8_lossy(&uninstall.stderr)
    );
    let said = String::from_utf8_lossy(&uninstall.stdout);
    assert!(
        said.contains("scaled Deployment sealgate/sealgate to 0"),
        "{said}"
    );
    assert!(
        said.contains("deleted MutatingWebhookConfiguration/sealgate")
            && said.contains("deleted ValidatingWebhookConfiguration/sealgate"),
        "{said}"
    );
    let left = cluster.kubectl_ok(&[
        "get",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "-o",
        "name",
    ]);
    assert_eq!(
        left.trim(),
        "validatingwebhookconfiguration.admissionregistration.k8s.io/other"
    );

    // secretNamespaces (an upgrade with the value set): Secrets read there, nowhere else.
    cluster.kubectl_ok(&["create", "namespace", "keys"]);
    let keys = with(&["--set", "secretNamespaces={keys}"]);
    let upgraded = cluster.kubectl_stdin(&["apply", "-f", "-"], &keys);
    assert!(upgraded.success(), "{}", upgraded.stderr);
    let mut read: Vec<Vec<&str>> = Vec::new();
    for verb in ["get", "list", "watch"] {
        read.push(vec![verb, "secrets", "-n", "keys"]);
    }
    check_can(&cluster, SERVICE_ACCOUNT, true, &read);
    let mut still_refused: Vec<Vec<&str>> = vec![
        vec!["list", "secrets", "-n", "default"],
        with_ns(&["list", "secrets"]),
    ];
    for verb in ["create", "update", "patch", "delete"] {
        still_refused.push(vec![verb, "secrets", "-n", "keys"]);
    }
    check_can(&cluster, SERVICE_ACCOUNT, false, &still_refused);

    // registryPullSecrets.fromPods (--pod-pull-secrets): Secrets listed and watched in every
    // namespace, still never read one by one or written.
    let pods = with(&[
        "--set",
        "secretNamespaces={keys}",
        "--set",
        "registryPullSecrets.fromPods=true",
    ]);
    let upgraded = cluster.kubectl_stdin(&["apply", "-f", "-"], &pods);
    assert!(upgraded.success(), "{}", upgraded.stderr);
    let mut everywhere: Vec<Vec<&str>> = Vec::new();
    for verb in ["list", "watch"] {
        everywhere.push(vec![verb, "secrets", "--all-namespaces"]);
        everywhere.push(vec![verb, "secrets", "-n", "default"]);
    }
    check_can(&cluster, SERVICE_ACCOUNT, true, &everywhere);
    let mut still: Vec<Vec<&str>> = vec![vec!["get", "secrets", "-n", "default"]];
    for verb in ["create", "update", "patch", "delete"] {
        still.push(vec![verb, "secrets", "-n", "default"]);
    }
    check_can(&cluster, SERVICE_ACCOUNT, false, &still);

    // And in cert-manager mode the Secret and Lease rights are not rendered at all (its
    // Issuers and Certificates need cert-manager's CRDs, which this API server lacks).
    let cert_manager = with(&["--set", "certManager.enabled=true"]);
    for document in cert_manager
        .split("\n---")
        .filter(|d| d.contains("\nkind: Role\n"))
    {
        assert!(
            document.contains("name: sealgate-uninstall"),
            "a Role beside the uninstall hook's: {document}"
        );
    }
}

/// The uninstall hook Job's container args, from a YAML rendering.
fn hook_job_args(rendered: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, rendered).unwrap();
    let job = kubectl_documents(&file)
        .into_iter()
        .find(|d| d["kind"] == "Job")
        .expect("the uninstall Job");
    serde_json::from_value(job["spec"]["template"]["spec"]["containers"][0]["args"].clone())
        .unwrap()
}

/// A kubeconfig for the cluster that authenticates as ServiceAccount `account` of the release
/// namespace (a token from the TokenRequest API).
fn service_account_kubeconfig(cluster: &TestCluster, account: &str, dir: &Path) -> PathBuf {
    let token = cluster.kubectl_ok(&[
        "create",
        "token",
        account,
        "-n",
        NAMESPACE,
        "--duration",
        "1h",
    ]);
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, cluster.ca_pem()).unwrap();
    let kubeconfig = dir.join(format!("{account}.kubeconfig"));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {}
    certificate-authority: {}
users:
- name: {account}
  user:
    token: {}
contexts:
- name: {account}
  context: {{cluster: test, user: {account}, namespace: {NAMESPACE}}}
current-context: {account}
",
            cluster.server_url(),
            ca.display(),
            token.trim()
        ),
    )
    .unwrap();
    kubeconfig
}

/// Every document of a YAML file, as kubectl reads it (no server).
fn kubectl_documents(path: &Path) -> Vec<Value> {
    let output = Command::new(KUBECTL_BINARY)
        .args([
            "patch", "--local", "--type", "merge", "-p", "{}", "-o", "json", "-f",
        ])
        .arg(path)
        .env("KUBECONFIG", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kubectl cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter::<Value>()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn deploy_sealgate_yaml_agrees_with_the_charts_default_rendering() {
    let chart = render(&[]);
    let manifest = kubectl_documents(&repo_root().join("deploy/sealgate.yaml"));
    let find = |docs: &[Value], kind: &str, name: &str| -> Value {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let from_both =
        |kind: &str, name: &str| (find(&chart, kind, name), find(&manifest, kind, name));

    for (kind, name) in [("ClusterRole", "sealgate"), ("Role", "sealgate-tls")] {
        let (c, m) = from_both(kind, name);
        let of = |d: &Value| -> Option<Vec<PolicyRule>> {
            Some(serde_json::from_value(d["rules"].clone()).unwrap())
        };
        assert_eq!(rules(&of(&c)), rules(&of(&m)), "{kind} {name}'s rules");
        assert_eq!(
            c["metadata"]["namespace"], m["metadata"]["namespace"],
            "{kind} {name}"
        );
    }
    for (kind, name) in [
        ("ClusterRoleBinding", "sealgate"),
        ("RoleBinding", "sealgate-tls"),
    ] {
        let (c, m) = from_both(kind, name);
        assert_eq!(c["roleRef"], m["roleRef"], "{kind} {name}");
        assert_eq!(c["subjects"], m["subjects"], "{kind} {name}");
    }

    let (c, m) = from_both("Deployment", "sealgate");
    for path in [
        "/spec/replicas",
        "/spec/strategy",
        "/spec/template/spec/serviceAccountName",
        "/spec/template/spec/automountServiceAccountToken",
        "/spec/template/spec/securityContext",
        "/spec/template/spec/containers/0/image",
        "/spec/template/spec/containers/0/command",
        "/spec/template/spec/containers/0/args",
        "/spec/template/spec/containers/0/env",
        "/spec/template/spec/containers/0/ports",
        "/spec/template/spec/containers/0/readinessProbe",
        "/spec/template/spec/containers/0/livenessProbe",
        "/spec/template/spec/containers/0/resources",
        "/spec/template/spec/containers/0/securityContext",
        "/spec/template/spec/containers/0/volumeMounts",
    ] {
        assert_eq!(c.pointer(path), m.pointer(path), "Deployment {path}");
    }
    // The volumes by name and kind (the manifest's audit token Secret is the user's).
    let volumes = |d: &Value| -> BTreeMap<String, Vec<String>> {
        d.pointer("/spec/template/spec/volumes")
            .and_then(Value::as_array)
            .unwrap()
            .iter()
            .map(|v| {
                let mut kinds: Vec<String> = v
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| *k != "name")
                    .cloned()
                    .collect();
                kinds.sort();
                (v["name"].as_str().unwrap().to_string(), kinds)
            })
            .collect()
    };
    assert_eq!(volumes(&c), volumes(&m));

    let (c, m) = from_both("Service", "sealgate");
    assert_eq!(c["spec"]["ports"], m["spec"]["ports"]);
    let (c, m) = from_both("PodDisruptionBudget", "sealgate");
    assert_eq!(c["apiVersion"], m["apiVersion"]);
    assert_eq!(c["spec"]["maxUnavailable"], m["spec"]["maxUnavailable"]);
    let (c, m) = from_both("Deployment", "sealgate");
    let anti = "/spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/0/podAffinityTerm/topologyKey";
    assert_eq!(c.pointer(anti), m.pointer(anti), "anti-affinity");
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            joined.push(std::mem::take(&mut current));
        }
    }
    joined
        .into_iter()
        .map(|l| {
            let (word, rest) = l.split_once(' ').unwrap_or((&l, ""));
            (word.to_uppercase(), rest.trim().to_string())
        })
        .collect()
}

#[test]
fn the_dockerfile_builds_sealgate_in_one_stage_and_runs_it_as_a_non_root_entrypoint() {
    let instructions = dockerfile_instructions();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(i, _)| i == "FROM")
        .map(|(_, rest)| rest)
        .collect();
    assert_eq!(froms.len(), 2, "multi-stage: a build and a runtime stage");
    let (build_image, build_stage) = froms[0].split_once(" AS ").expect("FROM IMAGE AS NAME");
    assert!(build_image.starts_with("rust:"), "{build_image}");
    let runtime = froms[1].as_str();
    assert!(
        runtime.starts_with("gcr.io/distroless/cc-debian12") || runtime.starts_with("debian:"),
        "a minimal glibc runtime: {runtime}"
    );
    // Everything after the second FROM is the runtime stage.
    let second = instructions
        .iter()
        .position(|(i, r)| i == "FROM" && r == runtime)
        .unwrap();
    let (build, run) = instructions.split_at(second);

    // The build: package sealgate, --release --locked; its binary is the bin of crates/cli.
    let cargo_toml = std::fs::read_to_string(repo_root().join("crates/cli/Cargo.toml")).unwrap();
    assert!(
        cargo_toml.contains("name = \"sealgate\"\n"),
        "package sealgate"
    );
    let bin = cargo_toml
        .split("[[bin]]")
        .nth(1)
        .and_then(|b| b.lines().find_map(|l| l.strip_prefix("name = ")))
        .map(|n| n.trim_matches('"').to_string())
        .expect("crates/cli has a [[bin]]");
    let cargo = build
        .iter()
        .find(|(i, r)| i == "RUN" && r.contains("cargo build"))
        .map(|(_, r)| r.as_str())
        .expect("a RUN cargo build");
    for part in ["--release", "-p sealgate", "--locked"] {
        assert!(cargo.contains(part), "{part} in {cargo}");
    }
    let produced = format!("target/release/{bin}");
    assert!(
        cargo.contains(&produced),
        "the build stage takes {produced}: {cargo}"
    );
    let copy = run
        .iter()
        .find(|(i, r)| i == "COPY" && r.starts_with("--from="))
        .map(|(_, r)| r.as_str())
        .expect("COPY --from the build stage");
    assert!(
        copy.starts_with(&format!("--from={build_stage} ")),
        "{copy}"
    );
    let installed = copy.split_whitespace().last().unwrap().to_string();
    // The path copied out of the build stage is where the build put cargo's binary.
    let source = copy.split_whitespace().nth(1).unwrap();
    assert!(
        cargo.contains(&format!("{produced} {source}")) || source.ends_with(&produced),
        "the stage copies {source}, which the build made from {produced}: {cargo}"
    );

    // The runtime: a numeric non-root user, the binary as ENTRYPOINT (exec form).
    let user = run
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .map(|(_, r)| r.as_str())
        .expect("USER");
    for id in user.split(':') {
        let id: u32 = id
            .parse()
            .unwrap_or_else(|_| panic!("USER {user}: numeric"));
        assert_ne!(id, 0, "USER {user}: not root");
    }
    assert!(user.starts_with("65532"), "the UID the chart runs as");
    let entrypoint = run
        .iter()
        .find(|(i, _)| i == "ENTRYPOINT")
        .map(|(_, r)| r.as_str())
        .expect("ENTRYPOINT");
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint)
        .unwrap_or_else(|e| panic!("ENTRYPOINT {entrypoint}: exec form (JSON): {e}"));
    assert_eq!(entrypoint, std::slice::from_ref(&installed));
    assert!(installed.ends_with(&format!("/{bin}")));
    assert!(
        !run.iter().any(|(i, _)| i == "VOLUME"),
        "no anonymous volumes: the chart mounts /data and /tmp"
    );

    // What runs the image gives only args, starting with the subcommand.
    let r = Rendering::of(&[]);
    assert!(r.container().command.is_none());
    assert_eq!(r.args()[0], "serve");
    let manifest = kubectl_documents(&repo_root().join("deploy/sealgate.yaml"));
    let deployment = manifest.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("command").is_none());
    assert_eq!(container["args"][0], "serve");
    let job = &r.jobs[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    assert!(job.command.is_none());

    // .dockerignore keeps target/ out of the build context.
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim_end_matches('/') == "target"));
}

/// What render-chart says when it refuses `args`.
fn render_error(args: &[&str]) -> String {
    let output = Command::new(renderer())
        .args(["--name", RELEASE, "--namespace", NAMESPACE])
        .args(args)
        .arg(chart_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "render-chart {args:?} succeeded");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_notes_render_and_values_that_cannot_work_are_refused() {
    let notes = render_as("yaml", &["--notes"]);
    assert!(
        notes.contains("kubectl -n sealgate get secret sealgate-audit-token"),
        "{notes}"
    );
    assert!(notes.contains("sealgate uninstall --scale-down"), "{notes}");
    assert!(!notes.contains("predates"), "{notes}");
    let old = render_as("yaml", &["--notes", "--kube-version", "v1.20.2"]);
    assert!(
        old.contains("kubectl label namespace sealgate kubernetes.io/metadata.name=sealgate"),
        "{old}"
    );
    let open = render_as("yaml", &["--notes", "--set", "audit.token.enabled=false"]);
    assert!(
        open.contains("WARNING: GET /audit answers anyone"),
        "{open}"
    );

    // Chart.yaml's kubeVersion, as helm checks it.
    let error = render_error(&["--kube-version", "v1.19.3"]);
    assert!(
        error.contains("incompatible with Kubernetes v1.19.3"),
        "{error}"
    );

    // Registry credentials need the hosts they may be sent to.
    let error = render_error(&["--set", "registry.credentialsSecret=registry-login"]);
    assert!(error.contains("registry.authHosts"), "{error}");
    let r = Rendering::of(&[
        "--set",
        "registry.credentialsSecret=registry-login",
        "--set",
        "registry.authHosts={registry.example.com,mirror.example.com}",
    ]);
    let env = r.container().env.clone().unwrap();
    let by_name = |name: &str| env.iter().find(|v| v.name == name).unwrap().clone();
    assert_eq!(
        by_name("SEALGATE_REGISTRY_AUTH_HOST").value.as_deref(),
        Some("registry.example.com,mirror.example.com")
    );
    for (name, key) in [
        ("SEALGATE_REGISTRY_USERNAME", "username"),
        ("SEALGATE_REGISTRY_PASSWORD", "password"),
    ] {
        let secret = by_name(name).value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("registry-login", key)
        );
    }
}

/// render-chart on a chart of its own: what it implements of Helm, as Helm does it.
#[test]
fn the_renderer_implements_the_helm_features_the_chart_uses_as_helm_does() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("demo");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(chart.join(path), text).unwrap();
    write(
        "Chart.yaml",
        "apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: \"4.5\"\nkubeVersion: \">=1.20.0-0\"\n",
    );
    write(
        "values.yaml",
        "count: 3\nbig: 1000000\nnested:\n  a: 1\n  b: two\n  gone: here\nlist: [x]\nflag: false\n",
    );
    write(
        "templates/_helpers.tpl",
        "{{- define \"demo.name\" -}}{{ .Release.Name }}-{{ .Chart.Name }}{{- end -}}\n",
    );
    // A hook first, then an empty document, a comment-only one and two objects of kinds
    // Helm installs in the other order.
    write(
        "templates/a.yaml",
        "apiVersion: batch/v1
kind: Job
metadata:
  name: hook
  annotations:
    helm.sh/hook: pre-delete
---
---
# only a comment
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include \"demo.name\" . }}
  namespace: {{ .Release.Namespace }}
data:
  count: {{ .Values.count }}
  big: {{ .Values.big | int64 }}
  bigYaml: {{ toYaml .Values.big }}
  nested: {{ toJson .Values.nested }}
  list: {{ join \",\" .Values.list }}
  flag: {{ .Values.flag }}
  missing: \"{{ .Values.nothing }}\"
  chart: {{ .Chart.Name }}-{{ .Chart.Version }}-{{ .Chart.AppVersion }}
  service: {{ .Release.Service }}
  kube: {{ .Capabilities.KubeVersion.Version }}
  pdb: {{ if .Capabilities.APIVersions.Has \"policy/v1\" }}v1{{ else }}v1beta1{{ end }}
  tpl: {{ tpl \"{{ .Release.Name }}\" . }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa
",
    );
    write(
        "templates/b.yaml",
        "{{- if .Values.flag }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: flagged\n{{- end }}\n",
    );
    write("templates/NOTES.txt", "notes for {{ .Release.Name }}\n");
    write(
        "override.yaml",
        "nested:\n  b: three\n  gone: null\nlist: [p, q]\n",
    );
    let run = |args: &[&str]| {
        let output = Command::new(renderer())
            .args(["--name", "rel", "--namespace", "ns", "-o", "json"])
            .args(args)
            .arg(&chart)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
    };

    let docs = run(&[]);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "Deployment", "Job"],
        "install order, hooks last, empty and comment-only documents dropped"
    );
    let data = &docs[1]["data"];
    assert_eq!(docs[1]["metadata"]["name"], "rel-demo");
    assert_eq!(docs[1]["metadata"]["namespace"], "ns");
    assert_eq!(data["count"], 3);
    assert_eq!(data["big"], 1_000_000);
    assert_eq!(
        data["bigYaml"], 1_000_000,
        "toYaml through JSON, as sigs.k8s.io/yaml"
    );
    assert_eq!(
        data["nested"],
        serde_json::json!({"a": 1, "b": "two", "gone": "here"})
    );
    assert_eq!(data["list"], "x");
    assert_eq!(data["flag"], false);
    assert_eq!(data["missing"], "", "a missing value renders empty");
    assert_eq!(data["chart"], "demo-1.2.3-4.5");
    assert_eq!(data["service"], "Helm");
    assert_eq!(data["kube"], "v1.33.0");
    assert_eq!(data["pdb"], "v1");
    assert_eq!(data["tpl"], "rel");

    // -f merges maps deeply (null deletes), replaces lists; --set after it, typed.
    let override_file = chart.join("override.yaml");
    let docs = run(&[
        "-f",
        override_file.to_str().unwrap(),
        "--set",
        "count=5",
        "--set",
        "flag=true",
        "--set",
        "nested.a=007",
        "--kube-version",
        "v1.20.2",
        "--api-versions",
        "policy/v1beta1",
        "--no-hooks",
    ]);
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["ServiceAccount", "ConfigMap", "Deployment"]);
    let data = &docs[2]["data"];
    assert_eq!(data["count"], 5);
    assert_eq!(data["flag"], true);
    assert_eq!(
        data["nested"],
        serde_json::json!({"a": "007", "b": "three"})
    );
    assert_eq!(data["list"], "p,q");
    assert_eq!(data["kube"], "v1.20.2");
    assert_eq!(data["pdb"], "v1beta1");

    let notes = Command::new(renderer())
        .args(["--name", "rel", "--notes"])
        .arg(&chart)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&notes.stdout), "notes for rel\n");
}

#[test]
fn another_release_name_and_namespace_name_everything_consistently() {
    let output = Command::new(renderer())
        .args(["--name", "gate", "--namespace", "admission", "-o", "json"])
        .arg(chart_dir())
        .output()
        .unwrap();
    assert!(output.status.success());
    let docs: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    for doc in &docs {
        let name = doc["metadata"]["name"].as_str().unwrap();
        assert!(name.starts_with("gate-sealgate"), "{name}");
        if let Some(namespace) = doc["metadata"]["namespace"].as_str() {
            assert_eq!(namespace, "admission", "{name}");
        }
    }
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args: Vec<String> = serde_json::from_value(
        deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone(),
    )
    .unwrap();
    let arg = |flag: &str| {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1].clone()
    };
    assert_eq!(arg("--service"), "admission/gate-sealgate");
    assert_eq!(arg("--tls-secret"), "admission/gate-sealgate-tls");
    let service = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(service["metadata"]["name"], "gate-sealgate");
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "gate-sealgate-tls")
        .unwrap();
    assert_eq!(
        role["rules"][0]["resourceNames"],
        serde_json::json!(["gate-sealgate-tls"])
    );
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "ClusterRoleBinding" && d["metadata"]["name"] == "gate-sealgate")
        .unwrap();
    assert_eq!(
        binding["subjects"],
        serde_json::json!([{"kind": "ServiceAccount", "name": "gate-sealgate", "namespace": "admission"}])
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "gate-sealgate"
    );
    // The selector tells two releases' Pods apart.
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
        "gate"
    );
}
