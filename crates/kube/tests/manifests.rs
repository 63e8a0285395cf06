//! The manifests in `deploy/`: every document is the Kubernetes object its kind says (read
//! back through k8s-openapi with no field lost), `deploy/sealgate.yaml` is what docs/deploy.md
//! describes (three replicas sharing a TLS Secret, a PodDisruptionBudget, non-root, probes,
//! resources, exact least-privilege RBAC), and against
//! a real kube-apiserver (1.20.2, `sealgate-test-cluster`) it applies, keeps every field, grants
//! the ServiceAccount exactly what sealgate needs, and `sealgate serve` started with the
//! Deployment's own arguments under that ServiceAccount's token does its whole job.
//!
//! YAML is read by kubectl itself (`kubectl patch --local` with an empty merge patch prints each
//! document as JSON without a server), so the documents are read as the API's clients read them.
//! The `sealgate` binary is the workspace's `target/debug/sealgate` (`cargo build -p sealgate`);
//! a missing binary fails the test, never skips it.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::{Metadata, Resource};
use sealgate_test_cluster::{KUBECTL_BINARY, TestCluster};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NAME_LABEL: &str = "app.kubernetes.io/name";
const SERVICE_ACCOUNT: &str = "system:serviceaccount:sealgate:sealgate";
/// Where the Deployment mounts the audit token (--audit-token-file).
const AUDIT_TOKEN_FILE: &str = "/etc/sealgate/audit/token";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

fn sealgate_yaml() -> PathBuf {
    deploy_dir().join("sealgate.yaml")
}

/// The YAML files of `dir` (not below it), sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    files
}

/// Every document of `path` as JSON, in order, as kubectl reads it (no server involved).
fn documents(path: &Path) -> Vec<Value> {
    let output = Command::new(KUBECTL_BINARY)
        .args([
            "patch", "--local", "--type", "merge", "-p", "{}", "-o", "json", "-f",
        ])
        .arg(path)
        // Never the user's cluster: --local reads the file only.
        .env("KUBECONFIG", "/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {KUBECTL_BINARY}: {e}"));
    assert!(
        output.status.success(),
        "kubectl cannot read {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let docs: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map(|doc| doc.unwrap_or_else(|e| panic!("{}: kubectl's JSON: {e}", path.display())))
        .collect();
    // Every document of the file, none skipped: one top-level `kind:` line each.
    let text = std::fs::read_to_string(path).unwrap();
    let kinds = text.lines().filter(|l| l.starts_with("kind:")).count();
    assert_eq!(
        docs.len(),
        kinds,
        "{}: kubectl read {} documents, the file has {kinds} top-level kinds",
        path.display(),
        docs.len()
    );
    docs
}

/// Where `actual` lacks something `expected` has (a missing field, another value), as a JSON
/// path; `None` when `expected` is contained in `actual`.
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

/// `doc` as a `K`, checked to serialise back to exactly `doc`: a field the type does not have
/// (a typo, a wrong indentation) or a value of the wrong type fails, with its path.
fn typed<K>(doc: &Value, file: &Path) -> K
where
    K: Resource + DeserializeOwned + Serialize,
{
    let what = format!(
        "{}: {} {}",
        file.display(),
        K::KIND,
        doc["metadata"]["name"]
    );
    let object: K = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{what} is not a {}: {e}", K::KIND));
    let back = serde_json::to_value(&object).unwrap();
    if let Some(diff) = missing_from(doc, &back, "") {
        panic!(
            "{what}: a field {} does not know or of another type: {diff}",
            K::KIND
        );
    }
    if let Some(diff) = missing_from(&back, doc, "") {
        panic!("{what}: read back with more than it says: {diff}");
    }
    object
}

/// One object of a manifest, by kind. Every kind `deploy/` may hold is here; any other fails.
#[derive(Debug)]
enum Object {
    Namespace(Box<Namespace>),
    ServiceAccount(Box<ServiceAccount>),
    ClusterRole(Box<ClusterRole>),
    ClusterRoleBinding(Box<ClusterRoleBinding>),
    Role(Box<Role>),
    RoleBinding(Box<RoleBinding>),
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    PodDisruptionBudget(Box<PodDisruptionBudget>),
    CustomResourceDefinition(Box<CustomResourceDefinition>),
}

impl Object {
    fn read(doc: &Value, file: &Path) -> Object {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let is = |version: &str, name: &str| api_version == version && kind == name;
        if is(Namespace::API_VERSION, Namespace::KIND) {
            Object::Namespace(Box::new(typed(doc, file)))
        } else if is(ServiceAccount::API_VERSION, ServiceAccount::KIND) {
            Object::ServiceAccount(Box::new(typed(doc, file)))
        } else if is(ClusterRole::API_VERSION, ClusterRole::KIND) {
            Object::ClusterRole(Box::new(typed(doc, file)))
        } else if is(ClusterRoleBinding::API_VERSION, ClusterRoleBinding::KIND) {
            Object::ClusterRoleBinding(Box::new(typed(doc, file)))
        } else if is(Role::API_VERSION, Role::KIND) {
            Object::Role(Box::new(typed(doc, file)))
        } else if is(RoleBinding::API_VERSION, RoleBinding::KIND) {
            Object::RoleBinding(Box::new(typed(doc, file)))
        } else if is(Service::API_VERSION, Service::KIND) {
            Object::Service(Box::new(typed(doc, file)))
        } else if is(Deployment::API_VERSION, Deployment::KIND) {
            Object::Deployment(Box::new(typed(doc, file)))
        } else if is(PodDisruptionBudget::API_VERSION, PodDisruptionBudget::KIND) {
            Object::PodDisruptionBudget(Box::new(typed(doc, file)))
        } else if is(
            CustomResourceDefinition::API_VERSION,
            CustomResourceDefinition::KIND,
        ) {
            Object::CustomResourceDefinition(Box::new(typed(doc, file)))
        } else {
            panic!(
                "{}: unexpected kind {api_version}/{kind} ({}): add it to this test's kinds",
                file.display(),
                doc["metadata"]["name"]
            )
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => Namespace::KIND,
            Object::ServiceAccount(_) => ServiceAccount::KIND,
            Object::ClusterRole(_) => ClusterRole::KIND,
            Object::ClusterRoleBinding(_) => ClusterRoleBinding::KIND,
            Object::Role(_) => Role::KIND,
            Object::RoleBinding(_) => RoleBinding::KIND,
            Object::Service(_) => Service::KIND,
            Object::Deployment(_) => Deployment::KIND,
            Object::PodDisruptionBudget(_) => PodDisruptionBudget::KIND,
            Object::CustomResourceDefinition(_) => CustomResourceDefinition::KIND,
        }
    }

    fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => o.metadata(),
            Object::ServiceAccount(o) => o.metadata(),
            Object::ClusterRole(o) => o.metadata(),
            Object::ClusterRoleBinding(o) => o.metadata(),
            Object::Role(o) => o.metadata(),
            Object::RoleBinding(o) => o.metadata(),
            Object::Service(o) => o.metadata(),
            Object::Deployment(o) => o.metadata(),
            Object::PodDisruptionBudget(o) => o.metadata(),
            Object::CustomResourceDefinition(o) => o.metadata(),
        }
    }
}

/// `deploy/sealgate.yaml`, one object of each kind, in apply order.
#[derive(Debug)]
struct Manifest {
    objects: Vec<Object>,
}

impl Manifest {
    fn read() -> Manifest {
        let file = sealgate_yaml();
        Manifest {
            objects: documents(&file)
                .iter()
                .map(|doc| Object::read(doc, &file))
                .collect(),
        }
    }

    fn namespace(&self) -> &Namespace {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Namespace(n) => Some(&**n),
                _ => None,
            })
            .expect("no Namespace")
    }

    fn cluster_role(&self) -> &ClusterRole {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::ClusterRole(r) => Some(&**r),
                _ => None,
            })
            .expect("no ClusterRole")
    }

    fn binding(&self) -> &ClusterRoleBinding {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::ClusterRoleBinding(b) => Some(&**b),
                _ => None,
            })
            .expect("no ClusterRoleBinding")
    }

    fn service_account(&self) -> &ServiceAccount {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::ServiceAccount(s) => Some(&**s),
                _ => None,
            })
            .expect("no ServiceAccount")
    }

    fn service(&self) -> &Service {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Service(s) => Some(&**s),
                _ => None,
            })
            .expect("no Service")
    }

    fn tls_role(&self) -> &Role {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Role(r) => Some(&**r),
                _ => None,
            })
            .expect("no Role")
    }

    fn tls_role_binding(&self) -> &RoleBinding {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::RoleBinding(b) => Some(&**b),
                _ => None,
            })
            .expect("no RoleBinding")
    }

    fn pdb(&self) -> &PodDisruptionBudget {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::PodDisruptionBudget(p) => Some(&**p),
                _ => None,
            })
            .expect("no PodDisruptionBudget")
    }

    fn deployment(&self) -> &Deployment {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Deployment(d) => Some(&**d),
                _ => None,
            })
            .expect("no Deployment")
    }

    fn container(&self) -> &Container {
        let spec = self.pod_spec();
        assert_eq!(spec.containers.len(), 1, "one container");
        assert!(spec.init_containers.is_none(), "no init containers");
        &spec.containers[0]
    }

    fn pod_spec(&self) -> &k8s_openapi::api::core::v1::PodSpec {
        self.deployment()
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    fn args(&self) -> Vec<String> {
        self.container()
            .args
            .clone()
            .expect("the container has args")
    }

    /// The value after `flag` in the container's args.
    fn arg(&self, flag: &str) -> String {
        let args = self.args();
        let at = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
        args.get(at + 1).cloned().unwrap_or_default()
    }
}

/// The extra flags the manifest offers, commented out, for a TLS Secret.
fn commented_tls_args() -> Vec<String> {
    let text = std::fs::read_to_string(sealgate_yaml()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("# - "))
        .filter(|l| !l.contains(' ') && !l.contains(':'))
        .collect();
    lines.iter().map(|l| l.to_string()).collect()
}

const KEYS_FROM: &str = "# --- keys in Secrets: from here ---";
const KEYS_TO: &str = "# --- keys in Secrets: to here ---";

/// The manifest's commented-out Role and RoleBinding for keys in Secrets, uncommented, as a
/// file in `dir`.
fn secret_keys_rbac(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(sealgate_yaml()).unwrap();
    let (_, rest) = text
        .split_once(KEYS_FROM)
        .unwrap_or_else(|| panic!("no `{KEYS_FROM}` in deploy/sealgate.yaml"));
    let (block, _) = rest
        .split_once(KEYS_TO)
        .unwrap_or_else(|| panic!("no `{KEYS_TO}` in deploy/sealgate.yaml"));
    let yaml: String = block
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let line = l
                .strip_prefix("# ")
                .or_else(|| l.strip_prefix('#'))
                .unwrap_or_else(|| panic!("not a comment between the markers: {l}"));
            format!("{line}\n")
        })
        .collect();
    let path = dir.join("secret-keys-rbac.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[test]
fn the_commented_role_for_keys_in_secrets_reads_secrets_of_one_namespace_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = secret_keys_rbac(dir.path());
    let objects: Vec<Object> = documents(&file)
        .iter()
        .map(|doc| Object::read(doc, &file))
        .collect();
    let [Object::Role(role), Object::RoleBinding(binding)] = &objects[..] else {
        panic!("expected a Role and a RoleBinding, got {objects:?}");
    };
    let manifest = Manifest::read();
    let namespace = manifest.namespace().metadata.name.clone();
    for meta in [&role.metadata, &binding.metadata] {
        assert_eq!(meta.namespace, namespace);
        assert_eq!(
            meta.labels
                .as_ref()
                .and_then(|l| l.get(NAME_LABEL))
                .map(String::as_str),
            Some("sealgate")
        );
    }
    let rules = role.rules.clone().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].api_groups.as_deref(), Some(&["".to_string()][..]));
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["secrets".to_string()][..])
    );
    assert_eq!(rules[0].verbs, ["get", "list", "watch"]);
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let account = manifest.service_account();
    let subjects = binding.subjects.as_ref().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(Some(&subjects[0].name), account.metadata.name.as_ref());
    assert_eq!(subjects[0].namespace, account.metadata.namespace);
}

#[test]
fn every_document_in_deploy_is_the_object_its_kind_says() {
    let mut files = yaml_files(&deploy_dir());
    files.extend(yaml_files(&deploy_dir().join("crds")));
    for expected in [
        sealgate_yaml(),
        deploy_dir().join("crds/kyverno-policies.yaml"),
    ] {
        assert!(
            files.contains(&expected),
            "{} not found",
            expected.display()
        );
    }
    let mut seen = BTreeMap::new();
    for file in &files {
        for doc in documents(file) {
            let object = Object::read(&doc, file);
            *seen.entry(object.kind()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.get("CustomResourceDefinition"), Some(&4), "{seen:?}");
}

#[test]
fn the_manifest_is_in_apply_order_and_labelled() {
    let manifest = Manifest::read();
    let kinds: Vec<&str> = manifest.objects.iter().map(Object::kind).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget"
        ]
    );
    let namespace = manifest.namespace().metadata.name.clone().unwrap();
    assert_eq!(namespace, "sealgate");
    for object in &manifest.objects {
        let meta = object.metadata();
        let what = format!("{} {:?}", object.kind(), meta.name);
        let name = if matches!(object, Object::Role(_) | Object::RoleBinding(_)) {
            "sealgate-tls"
        } else {
            "sealgate"
        };
        assert_eq!(meta.name.as_deref(), Some(name), "{what}");
        assert_eq!(
            meta.labels
                .as_ref()
                .and_then(|l| l.get(NAME_LABEL))
                .map(String::as_str),
            Some("sealgate"),
            "{what} lacks the label {NAME_LABEL}: sealgate"
        );
        let namespaced = matches!(
            object,
            Object::ServiceAccount(_)
                | Object::Role(_)
                | Object::RoleBinding(_)
                | Object::Service(_)
                | Object::Deployment(_)
                | Object::PodDisruptionBudget(_)
        );
        let expected = namespaced.then_some(namespace.as_str());
        assert_eq!(meta.namespace.as_deref(), expected, "{what}");
    }
    // The webhooks leave sealgate's namespace alone by this label; 1.20 does not set it.
    let labels = manifest.namespace().metadata.labels.clone().unwrap();
    assert_eq!(
        labels
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("sealgate")
    );
}

#[test]
fn the_deployment_runs_three_locked_down_replicas_behind_the_service() {
    let manifest = Manifest::read();
    let deployment = manifest.deployment();
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(
        spec.replicas,
        Some(3),
        "three replicas sharing the TLS Secret"
    );
    let strategy = spec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    assert_eq!(
        strategy.rolling_update.as_ref().unwrap().max_unavailable,
        Some(IntOrString::Int(0)),
        "a new replica is ready before an old one goes"
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    assert_eq!(
        template_labels.get(NAME_LABEL).map(String::as_str),
        Some("sealgate")
    );
    let selects = |selector: &BTreeMap<String, String>| {
        selector
            .iter()
            .all(|(k, v)| template_labels.get(k) == Some(v))
    };
    assert!(selects(spec.selector.match_labels.as_ref().unwrap()));
    let pdb = manifest.pdb().spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(1)));
    assert!(selects(
        pdb.selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()
    ));

    let pod = manifest.pod_spec();
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("preferred pod anti-affinity");
    assert_eq!(
        anti[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert!(selects(
        anti[0]
            .pod_affinity_term
            .label_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap()
    ));
    assert_eq!(pod.service_account_name.as_deref(), Some("sealgate"));
    assert_eq!(pod.automount_service_account_token, Some(true));
    assert!(pod.host_network.is_none() && pod.host_pid.is_none() && pod.host_ipc.is_none());
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));

    let container = manifest.container();
    assert_eq!(
        container.image.as_deref(),
        Some("ghcr.io/sealgate/sealgate:0.1.0")
    );
    assert!(
        container.command.is_none(),
        "the image's entrypoint is sealgate"
    );
    assert_eq!(
        manifest.args(),
        [
            "serve",
            "--kubernetes",
            "--service",
            "sealgate/sealgate",
            "--service-port",
            "443",
            "--webhook-name",
            "sealgate",
            "--listen",
            "0.0.0.0:8443",
            "--data-dir",
            "/data",
            "--tls-secret",
            "sealgate/sealgate-tls",
            "--ca-validity",
            "8760h",
            "--cert-validity",
            "2160h",
            "--rotation-overlap",
            "10m",
            "--background-scan-interval",
            "1h",
            "--budget",
            "8s",
            "--cache-ttl",
            "1h",
            "--digest-cache-ttl",
            "5m",
            "--registry-concurrency",
            "16",
            "--max-concurrent-verifications",
            "64",
            "--unattended-fetch-limit",
            "30s",
            "--audit-retention",
            "720h",
            "--audit-max-rows",
            "1000000",
            "--audit-token-file",
            AUDIT_TOKEN_FILE,
            "--log-format",
            "text"
        ]
    );
    let env: BTreeMap<String, String> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|var| {
            let path = var
                .value_from
                .and_then(|from| from.field_ref)
                .map(|field| field.field_path)
                .unwrap_or_else(|| panic!("{} is not from the downward API", var.name));
            (var.name, path)
        })
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            (
                "POD_NAMESPACE".to_string(),
                "metadata.namespace".to_string()
            ),
            ("POD_NAME".to_string(), "metadata.name".to_string()),
        ])
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
    for seccomp in [&security.seccomp_profile, &pod_security.seccomp_profile] {
        assert_eq!(
            seccomp.as_ref().map(|s| s.type_.as_str()),
            Some("RuntimeDefault")
        );
    }

    // The listen port is the container port, the probes' port and the Service's target.
    let listen_port: i32 = manifest
        .arg("--listen")
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert_eq!(listen_port, 8443);
    let ports = container.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].container_port, listen_port);
    for (probe, path) in [
        (&container.readiness_probe, "/readyz"),
        (&container.liveness_probe, "/healthz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "{path}");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::Int(listen_port), "{path}");
    }

    let resources = container.resources.as_ref().unwrap();
    let amounts = |map: &Option<
        BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >| {
        map.clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect::<BTreeMap<String, String>>()
    };
    assert_eq!(
        amounts(&resources.requests),
        BTreeMap::from([
            ("cpu".to_string(), "100m".to_string()),
            ("memory".to_string(), "64Mi".to_string()),
        ])
    );
    assert_eq!(
        amounts(&resources.limits),
        BTreeMap::from([("memory".to_string(), "256Mi".to_string())]),
        "a memory limit only (a CPU limit would throttle admissions)"
    );

    // --data-dir and /tmp are writable emptyDirs; the audit token comes from its Secret.
    let volumes = pod.volumes.as_ref().unwrap();
    for volume in volumes {
        let token = volume.name == "audit-token";
        assert_eq!(
            volume.empty_dir.is_some(),
            !token,
            "volume {} is not an emptyDir",
            volume.name
        );
        if token {
            let secret = volume.secret.as_ref().unwrap();
            assert_eq!(secret.secret_name.as_deref(), Some("sealgate-audit-token"));
        }
    }
    let token_mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "audit-token")
        .unwrap();
    assert_eq!(token_mount.read_only, Some(true));
    assert!(AUDIT_TOKEN_FILE.starts_with(&format!("{}/", token_mount.mount_path)));
    let data_dir = manifest.arg("--data-dir");
    let mount = container
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.mount_path == data_dir)
        .unwrap_or_else(|| panic!("nothing is mounted at --data-dir {data_dir}"));
    assert_ne!(mount.read_only, Some(true));
    assert!(volumes.iter().any(|v| v.name == mount.name));

    // The Service --service names: port 443 (--service-port's default) to the listen port.
    let service = manifest.service();
    assert_eq!(
        manifest.arg("--service"),
        format!(
            "{}/{}",
            service.metadata.namespace.as_deref().unwrap(),
            service.metadata.name.as_deref().unwrap()
        )
    );
    let service_spec = service.spec.as_ref().unwrap();
    assert!(selects(service_spec.selector.as_ref().unwrap()));
    let service_ports = service_spec.ports.as_ref().unwrap();
    assert_eq!(service_ports.len(), 1);
    assert_eq!(service_ports[0].port, 443);
    assert_eq!(
        service_ports[0].target_port,
        Some(IntOrString::Int(listen_port))
    );
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

#[test]
fn the_cluster_role_grants_exactly_what_sealgate_calls() {
    let manifest = Manifest::read();
    let role = manifest.cluster_role();
    assert!(role.aggregation_rule.is_none());
    let rules: BTreeSet<Rule> = role
        .rules
        .clone()
        .unwrap()
        .into_iter()
        .map(|r| {
            assert!(r.non_resource_urls.is_none(), "{r:?}");
            let sorted = |v: Option<Vec<String>>| {
                let mut v = v.unwrap_or_default();
                v.sort();
                v
            };
            (
                sorted(r.api_groups),
                sorted(r.resources),
                sorted(r.resource_names),
                sorted(Some(r.verbs)),
            )
        })
        .collect();
    let hooks = [
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
    ];
    let expected = BTreeSet::from([
        rule(
            &["kyverno.io"],
            &["clusterpolicies", "policies"],
            &[],
            &["get", "list", "watch"],
        ),
        rule(
            &["kyverno.io"],
            &["clusterpolicies/status", "policies/status"],
            &[],
            &["patch", "update"],
        ),
        rule(&[""], &["namespaces"], &[], &["get", "list", "watch"]),
        rule(&[""], &["events"], &[], &["create", "patch"]),
        rule(
            &["wgpolicyk8s.io"],
            &["policyreports"],
            &[],
            &[
                "get", "list", "watch", "create", "update", "patch", "delete",
            ],
        ),
        rule(
            &[""],
            &["pods", "replicationcontrollers"],
            &[],
            &["get", "list", "watch"],
        ),
        rule(
            &["apps"],
            &["deployments", "replicasets", "statefulsets", "daemonsets"],
            &[],
            &["get", "list", "watch"],
        ),
        rule(
            &["batch"],
            &["jobs", "cronjobs"],
            &[],
            &["get", "list", "watch"],
        ),
        rule(
            &["admissionregistration.k8s.io"],
            &hooks,
            &[],
            &["get", "list", "watch", "create"],
        ),
        rule(
            &["admissionregistration.k8s.io"],
            &hooks,
            &["sealgate"],
            &["update", "delete"],
        ),
    ]);
    assert_eq!(rules, expected);
    assert_eq!(
        role.rules.as_ref().unwrap().len(),
        expected.len(),
        "no rule twice"
    );

    // Bound to the ServiceAccount the Pod runs as, and nothing else.
    let binding = manifest.binding();
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects = binding.subjects.as_ref().unwrap();
    assert_eq!(subjects.len(), 1);
    let account = manifest.service_account();
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(Some(&subjects[0].name), account.metadata.name.as_ref());
    assert_eq!(subjects[0].namespace, account.metadata.namespace);
    assert_eq!(
        manifest.pod_spec().service_account_name,
        account.metadata.name
    );

    // The TLS Secret and its Lease, in sealgate's namespace, by the name --tls-secret gives.
    let secret = manifest.arg("--tls-secret");
    let (namespace, name) = secret.split_once('/').unwrap();
    let role = manifest.tls_role();
    assert_eq!(role.metadata.namespace.as_deref(), Some(namespace));
    let tls_rules: BTreeSet<Rule> = role
        .rules
        .clone()
        .unwrap()
        .into_iter()
        .map(|r| {
            let sorted = |v: Option<Vec<String>>| {
                let mut v = v.unwrap_or_default();
                v.sort();
                v
            };
            (
                sorted(r.api_groups),
                sorted(r.resources),
                sorted(r.resource_names),
                sorted(Some(r.verbs)),
            )
        })
        .collect();
    assert_eq!(
        tls_rules,
        BTreeSet::from([
            rule(&[""], &["secrets"], &[name], &["get", "update"]),
            rule(&[""], &["secrets"], &[], &["create"]),
            rule(
                &["coordination.k8s.io"],
                &["leases"],
                &[name],
                &["get", "update"]
            ),
            rule(&["coordination.k8s.io"], &["leases"], &[], &["create"]),
        ])
    );
    let tls_binding = manifest.tls_role_binding();
    assert_eq!(tls_binding.role_ref.kind, "Role");
    assert_eq!(
        Some(&tls_binding.role_ref.name),
        role.metadata.name.as_ref()
    );
    assert_eq!(tls_binding.subjects.as_ref().unwrap()[..], subjects[..]);
}

/// `target/debug/sealgate` (or under `$CARGO_TARGET_DIR`); fails when it is not built.
fn sealgate_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let binary = target.join("debug/sealgate");
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
    let help = String::from_utf8(output.stdout).unwrap();
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .flat_map(|l| l.split([' ', ',']))
        .filter(|token| token.starts_with("--"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_deployments_arguments_are_sealgate_serve_flags() {
    let binary = sealgate_binary();
    let flags = serve_flags(&binary);
    assert!(flags.contains("--kubernetes"), "{flags:?}");
    let manifest = Manifest::read();
    let args = manifest.args();
    assert_eq!(args[0], "serve");
    let alternative = commented_tls_args();
    assert_eq!(
        alternative,
        [
            "--tls-cert",
            "/tls/tls.crt",
            "--tls-key",
            "/tls/tls.key",
            "--ca-bundle",
            "/tls/ca.crt"
        ]
    );
    for arg in args[1..].iter().chain(&alternative) {
        if let Some(flag) = arg.strip_prefix("--") {
            let flag = format!("--{}", flag.split('=').next().unwrap());
            assert!(
                flags.contains(&flag),
                "{flag} is not a flag of sealgate serve: {flags:?}"
            );
        }
    }
    // The values parse too (clap checks each argument before it gets to --help), as written
    // and with the alternative in place of the TLS Secret's 8 arguments.
    let self_managed = [
        "--tls-secret",
        "--ca-validity",
        "--cert-validity",
        "--rotation-overlap",
    ];
    let mut own_certificate: Vec<String> = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if self_managed.contains(&arg.as_str()) {
            rest.next();
        } else {
            own_certificate.push(arg.clone());
        }
    }
    assert_eq!(own_certificate.len() + 8, args.len());
    own_certificate.extend(alternative.iter().cloned());
    for variant in [&args, &own_certificate] {
        let output = Command::new(&binary)
            .args(variant)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "sealgate {} --help: {}",
            variant.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Polls `probe` every 100 ms until it gives `Some`, at most `within`.
fn eventually<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kubectl auth can-i` as sealgate's ServiceAccount.
fn can_i(cluster: &TestCluster, args: &[&str]) -> bool {
    let mut full = vec!["auth", "can-i", "--as", SERVICE_ACCOUNT];
    full.extend_from_slice(args);
    let out = cluster.kubectl(&full);
    match out.stdout.trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl {}: {} {}", full.join(" "), out.stdout, out.stderr),
    }
}

/// A `sealgate serve` process, killed when dropped.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serving {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the `ready` line on stdout.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == "ready" => return,
                Ok(_) => {}
                Err(_) => panic!("sealgate serve did not get ready; its log:\n{}", self.log()),
            }
        }
    }
}

fn ready_condition(cluster: &TestCluster, args: &[&str]) -> Option<(String, String)> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&[
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}|{.status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    let out = cluster.kubectl(&full);
    let text = out.stdout.trim().to_string();
    let (status, message) = text.split_once('|')?;
    (!status.is_empty()).then(|| (status.to_string(), message.to_string()))
}

/// A valid policy (the Quick Start's, for a registry that is not called) and an invalid one.
fn policy(kind: &str, name: &str, namespace: Option<&str>, pem: &str, attestors: &str) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("\n  namespace: {ns}"));
    format!(
        "apiVersion: kyverno.io/v1
kind: {kind}
metadata:
  name: {name}{namespace}
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: check-signatures
      match:
        any:
        - resources:
            kinds:
            - Pod
      verifyImages:
      - imageReferences:
        - \"registry.example.com/*\"
        {attestors}:
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

fn public_key_pem(dir: &Path) -> String {
    let key = dir.join("key.pem");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let key_path = key.to_str().unwrap();
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        key_path,
    ]);
    run(&["ec", "-in", key_path, "-pubout"])
}

#[test]
fn the_manifests_apply_to_a_real_api_server_and_the_service_account_suffices() {
    let binary = sealgate_binary();
    let cluster = TestCluster::start();
    let crds = deploy_dir().join("crds");
    let manifest_path = sealgate_yaml();

    // docs/deploy.md's steps: the CRDs, then the manifest (dry run first; namespaced objects
    // need their Namespace to exist, so it is created for real before).
    cluster.kubectl_ok(&["apply", "-f", crds.to_str().unwrap()]);
    eventually("the CRDs are established", Duration::from_secs(20), || {
        cluster
            .kubectl(&["get", "clusterpolicies"])
            .success()
            .then_some(())
    });
    // The PodDisruptionBudget is policy/v1 (Kubernetes 1.21 and later), which 1.20 does not
    // serve: it is checked as a k8s-openapi policy/v1 object above, and the rest is applied.
    let all = documents(&manifest_path);
    let docs: Vec<Value> = all
        .iter()
        .filter(|d| d["kind"] != "PodDisruptionBudget")
        .cloned()
        .collect();
    assert_eq!(docs.len() + 1, all.len(), "one PodDisruptionBudget");
    let work = tempfile::tempdir().unwrap();
    let applied_path = work.path().join("sealgate-1.20.json");
    std::fs::write(
        &applied_path,
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": docs}).to_string(),
    )
    .unwrap();
    let manifest_file = applied_path.to_str().unwrap();
    let namespace = docs.iter().find(|d| d["kind"] == "Namespace").unwrap();
    cluster.kubectl_stdin(&["apply", "-f", "-"], &namespace.to_string());
    let dry = cluster.kubectl_ok(&["apply", "--dry-run=server", "-f", manifest_file]);
    for object in [
        "deployment.apps/sealgate",
        "role.rbac.authorization.k8s.io/sealgate-tls",
        "rolebinding.rbac.authorization.k8s.io/sealgate-tls",
    ] {
        assert!(
            dry.contains(&format!("{object} created (server dry run)")),
            "{dry}"
        );
    }
    cluster.kubectl_ok(&["apply", "-f", manifest_file]);

    // Stored as written: the API server dropped no field as unknown.
    let stored: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "-f", manifest_file, "-o", "json"]))
            .unwrap();
    let stored = stored["items"].as_array().unwrap();
    assert_eq!(stored.len(), docs.len());
    for (doc, object) in docs.iter().zip(stored) {
        if let Some(diff) = missing_from(doc, object, "") {
            panic!(
                "{} {} as stored: {diff}",
                doc["kind"], doc["metadata"]["name"]
            );
        }
    }

    // What sealgate needs, allowed; nothing else.
    let hooks = [
        "mutatingwebhookconfigurations.admissionregistration.k8s.io",
        "validatingwebhookconfigurations.admissionregistration.k8s.io",
    ];
    let mut allowed: Vec<Vec<String>> = Vec::new();
    let mut add = |args: &[&str]| allowed.push(args.iter().map(|s| s.to_string()).collect());
    for verb in ["get", "list", "watch"] {
        add(&[verb, "clusterpolicies.kyverno.io"]);
        add(&[verb, "policies.kyverno.io", "--all-namespaces"]);
        add(&[verb, "policies.kyverno.io", "-n", "team-a"]);
        add(&[verb, "namespaces"]);
    }
    for verb in ["patch", "update"] {
        add(&[verb, "clusterpolicies.kyverno.io", "--subresource=status"]);
        add(&[
            verb,
            "policies.kyverno.io",
            "--subresource=status",
            "-n",
            "team-a",
        ]);
    }
    for verb in ["create", "patch"] {
        add(&[verb, "events", "-n", "default"]);
        add(&[verb, "events", "-n", "team-a"]);
    }
    for verb in [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ] {
        add(&[verb, "policyreports.wgpolicyk8s.io", "-n", "team-a"]);
    }
    for verb in ["get", "list", "watch"] {
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
            add(&[verb, resource, "--all-namespaces"]);
        }
    }
    // Its TLS Secret and the Lease of the same name, and a create of each.
    for verb in ["get", "update"] {
        add(&[verb, "secrets/sealgate-tls", "-n", "sealgate"]);
        add(&[
            verb,
            "leases.coordination.k8s.io/sealgate-tls",
            "-n",
            "sealgate",
        ]);
    }
    add(&["create", "secrets", "-n", "sealgate"]);
    add(&["create", "leases.coordination.k8s.io", "-n", "sealgate"]);
    for hook in hooks {
        for verb in ["get", "list", "watch", "create"] {
            add(&[verb, hook]);
        }
        for verb in ["update", "delete"] {
            add(&[verb, &format!("{hook}/sealgate")]);
        }
    }
    for args in &allowed {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(can_i(&cluster, &args), "sealgate cannot {}", args.join(" "));
    }
    let mut refused: Vec<Vec<String>> = Vec::new();
    let mut deny = |args: &[&str]| refused.push(args.iter().map(|s| s.to_string()).collect());
    deny(&["get", "secrets", "-n", "sealgate"]);
    deny(&["get", "secrets/sealgate-audit-token", "-n", "sealgate"]);
    deny(&["update", "secrets/other", "-n", "sealgate"]);
    deny(&["delete", "secrets/sealgate-tls", "-n", "sealgate"]);
    deny(&["create", "secrets", "-n", "default"]);
    deny(&[
        "update",
        "leases.coordination.k8s.io/other",
        "-n",
        "sealgate",
    ]);
    deny(&["create", "leases.coordination.k8s.io", "-n", "default"]);
    deny(&["list", "secrets", "--all-namespaces"]);
    deny(&["delete", "pods", "-n", "default"]);
    deny(&["patch", "deployments.apps", "-n", "default"]);
    deny(&["create", "pods", "-n", "default"]);
    deny(&["delete", "namespaces"]);
    deny(&["patch", "namespaces"]);
    deny(&["get", "configmaps", "-n", "default"]);
    deny(&["create", "clusterpolicies.kyverno.io"]);
    deny(&["update", "clusterpolicies.kyverno.io"]);
    deny(&["delete", "policies.kyverno.io", "-n", "team-a"]);
    deny(&["delete", "events", "-n", "default"]);
    deny(&["create", "serviceaccounts/token", "-n", "sealgate"]);
    deny(&["bind", "clusterroles"]);
    deny(&["escalate", "clusterroles"]);
    deny(&["impersonate", "users"]);
    deny(&["update", "deployments.apps", "-n", "sealgate"]);
    deny(&["create", "customresourcedefinitions.apiextensions.k8s.io"]);
    for hook in hooks {
        deny(&[
            "update",
            &format!("{hook}/kyverno-resource-mutating-webhook-cfg"),
        ]);
        deny(&["delete", &format!("{hook}/other")]);
        deny(&["deletecollection", hook]);
        deny(&["patch", &format!("{hook}/sealgate")]);
    }
    for args in &refused {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert!(!can_i(&cluster, &args), "sealgate may {}", args.join(" "));
    }

    // The commented-out Role for keys in Secrets: this namespace's Secrets, read only.
    let keys_rbac = secret_keys_rbac(work.path());
    cluster.kubectl_ok(&["apply", "-f", keys_rbac.to_str().unwrap()]);
    for verb in ["get", "list", "watch"] {
        assert!(
            can_i(&cluster, &[verb, "secrets", "-n", "sealgate"]),
            "{verb}"
        );
        assert!(
            !can_i(&cluster, &[verb, "secrets", "-n", "default"]),
            "{verb}"
        );
    }
    for verb in ["update", "patch", "delete"] {
        assert!(
            !can_i(&cluster, &[verb, "secrets", "-n", "sealgate"]),
            "{verb}"
        );
    }

    // And sealgate itself, started with the Deployment's arguments (listen and data directory
    // moved to this machine) under the ServiceAccount's own token: lists, statuses, Events,
    // webhook registration and its update, a key from a Secret, then `uninstall` — no call
    // forbidden.
    let token = cluster.kubectl_ok(&[
        "create",
        "token",
        "sealgate",
        "-n",
        "sealgate",
        "--duration",
        "1h",
    ]);
    let ca = work.path().join("ca.pem");
    std::fs::write(&ca, cluster.ca_pem()).unwrap();
    let kubeconfig = work.path().join("sealgate.kubeconfig");
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
- name: sealgate
  user:
    token: {}
contexts:
- name: sealgate
  context: {{cluster: test, user: sealgate, namespace: sealgate}}
current-context: sealgate
",
            cluster.server_url(),
            ca.display(),
            token.trim()
        ),
    )
    .unwrap();
    let manifest = Manifest::read();
    let data = work.path().join("data");
    let token_file = work.path().join("audit-token");
    std::fs::write(&token_file, "0123456789abcdef0123456789abcdef").unwrap();
    let args: Vec<String> = manifest
        .args()
        .into_iter()
        .map(|arg| match arg.as_str() {
            "0.0.0.0:8443" => "127.0.0.1:0".to_string(),
            "/data" => data.display().to_string(),
            AUDIT_TOKEN_FILE => token_file.display().to_string(),
            _ => arg,
        })
        .collect();
    let log = work.path().join("serve.log");
    let mut child = Command::new(&binary)
        .args(&args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("POD_NAMESPACE", "sealgate")
        .env("POD_NAME", "sealgate-test")
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    let mut serving = Serving { child, lines, log };
    serving.wait_ready();

    let webhook = |kind: &str, path: &str| {
        let out = cluster.kubectl(&["get", kind, "sealgate", "-o", &format!("jsonpath={path}")]);
        out.success().then(|| out.stdout.trim().to_string())
    };
    // Created (no policy yet: Ignore), for the Service.
    let service = eventually(
        "the webhook configurations",
        Duration::from_secs(20),
        || {
            webhook(
                "validatingwebhookconfiguration",
                "{.webhooks[0].failurePolicy}",
            )?;
            webhook(
                "mutatingwebhookconfiguration",
                "{.webhooks[0].clientConfig.service.namespace}/{.webhooks[0].clientConfig.service.name}:{.webhooks[0].clientConfig.service.port}",
            )
        },
    );
    assert_eq!(service, "sealgate/sealgate:443", "{}", serving.log());
    // The certificates in the TLS Secret, under the Role above, and the Lease held by this
    // process (POD_NAME).
    let tls_type = cluster.kubectl_ok(&[
        "get",
        "secret",
        "sealgate-tls",
        "-n",
        "sealgate",
        "-o",
        "jsonpath={.type}",
    ]);
    assert_eq!(tls_type.trim(), "kubernetes.io/tls", "{}", serving.log());
    let holder = cluster.kubectl_ok(&[
        "get",
        "lease",
        "sealgate-tls",
        "-n",
        "sealgate",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert_eq!(holder.trim(), "sealgate-test", "{}", serving.log());

    cluster.kubectl_ok(&["create", "namespace", "team-a"]);
    let pem = public_key_pem(work.path());
    let valid = policy(
        "ClusterPolicy",
        "require-signed-images",
        None,
        &pem,
        "attestors",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &valid);
    let (status, message) = eventually("the policy's status", Duration::from_secs(20), || {
        ready_condition(&cluster, &["clusterpolicy", "require-signed-images"])
    });
    assert_eq!(
        (status.as_str(), message.as_str()),
        ("True", "Ready"),
        "{}",
        serving.log()
    );
    // Replaced with the policy's failurePolicy (Fail, Kyverno's default).
    eventually("failurePolicy Fail", Duration::from_secs(20), || {
        (webhook(
            "mutatingwebhookconfiguration",
            "{.webhooks[0].failurePolicy}",
        )? == "Fail")
            .then_some(())
    });

    // A key in a Secret of sealgate's namespace, read under the Role above: the policy is
    // compiled again when the key in the Secret is rotated.
    let key_file = work.path().join("cosign.pub");
    let secret = |pem: &str| {
        std::fs::write(&key_file, pem).unwrap();
        let from_file = format!("--from-file=cosign.pub={}", key_file.display());
        let yaml = cluster.kubectl_ok(&[
            "create",
            "secret",
            "generic",
            "sealgate-keys",
            "-n",
            "sealgate",
            &from_file,
            "--dry-run=client",
            "-o",
            "yaml",
        ]);
        cluster.kubectl_stdin(&["apply", "-f", "-"], &yaml);
    };
    secret(&pem);
    let from_secret = policy(
        "ClusterPolicy",
        "key-in-a-secret",
        None,
        "k8s://sealgate/sealgate-keys",
        "attestors",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &from_secret);
    let (status, message) = eventually(
        "the Secret policy's status",
        Duration::from_secs(20),
        || ready_condition(&cluster, &["clusterpolicy", "key-in-a-secret"]),
    );
    assert_eq!(status, "True", "{message}\n{}", serving.log());
    secret(&public_key_pem(work.path()));
    eventually(
        "the rotated key is compiled",
        Duration::from_secs(20),
        || {
            serving
                .log()
                .contains("keys in a Secret changed: policy compiled again")
                .then_some(())
        },
    );

    // An invalid Policy in team-a: its status and an Event in its namespace.
    let invalid = policy("Policy", "typo", Some("team-a"), &pem, "atestors");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &invalid);
    let (status, message) = eventually(
        "the invalid policy's status",
        Duration::from_secs(20),
        || ready_condition(&cluster, &["policy", "typo", "-n", "team-a"]),
    );
    assert_eq!(status, "False", "{message}");
    assert!(message.contains("atestors"), "{message}");
    eventually("the PolicyInvalid Event", Duration::from_secs(20), || {
        let events = cluster.kubectl_ok(&[
            "get",
            "events",
            "-n",
            "team-a",
            "-o",
            "jsonpath={range .items[*]}{.reason} {.involvedObject.name}{\"\\n\"}{end}",
        ]);
        events
            .lines()
            .any(|l| l == "PolicyInvalid typo")
            .then_some(())
    });

    // sealgate's own namespace is outside its webhooks, also on 1.20 (by the Namespace's
    // label): the Service has no endpoints here, so a call to the webhook would fail, and
    // failurePolicy is Fail. sealgate's Pods can always be (re)created; elsewhere they cannot.
    // (A create: `kubectl apply` of an unchanged object sends nothing to admit.)
    let create_in = |namespace: &str| {
        cluster.kubectl(&[
            "create",
            "deployment",
            "probe",
            "-n",
            namespace,
            "--image",
            "registry.example.com/web:v1",
            "--dry-run=server",
        ])
    };
    let own = create_in("sealgate");
    assert!(
        own.success(),
        "sealgate's own namespace is sent to its webhook: {}",
        own.stderr
    );
    let elsewhere = create_in("default");
    assert!(
        !elsewhere.success(),
        "the webhook was not called in default"
    );
    assert!(
        elsewhere.stderr.contains("sealgate.dev"),
        "{}",
        elsewhere.stderr
    );

    let log = serving.log();
    assert!(!log.contains("Secret watch failed"), "{log}");
    // One refusal is by design: on 1.20 sealgate tries to label kube-system with
    // kubernetes.io/metadata.name, which the ClusterRole does not allow (no namespace writes);
    // it then logs the kubectl command that does it (docs/deploy.md says to run it).
    let label = "has no kubernetes.io/metadata.name label";
    for line in log.lines().filter(|l| l.contains(label)) {
        assert!(
            line.contains(
                "kubectl label namespace kube-system kubernetes.io/metadata.name=kube-system"
            ),
            "{line}"
        );
    }
    assert!(
        log.lines().filter(|l| l.contains(label)).count() <= 1,
        "the refusal is said once, not on every policy change:\n{log}"
    );
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.to_lowercase().contains("forbidden") && !l.contains(label))
        .collect();
    assert!(
        refused.is_empty(),
        "sealgate was refused something:\n{}",
        refused.join("\n")
    );
    drop(serving);

    // `sealgate uninstall` with the same token.
    let uninstall = Command::new(&binary)
        .arg("uninstall")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .unwrap();
    assert!(
        uninstall.status.success(),
        "{}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
    let left = cluster.kubectl_ok(&[
        "get",
        "mutatingwebhookconfigurations,validatingwebhookconfigurations",
        "-o",
        "name",
    ]);
    assert!(!left.contains("sealgate"), "{left}");
}
