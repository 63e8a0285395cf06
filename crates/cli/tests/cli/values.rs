//! Values for policy variables as Kyverno's CLI takes them (issue 13): `apply --values-file`
//! (rule values, `globalValues`, `namespaceSelector`, `namespaces`, `request.operation`),
//! `apply --set`, and a test file's `variables:` and inline `values:`. A key a policy reads from
//! a ConfigMap (`publicKeys: "{{ keys.data.pub }}"`) is given by the values, and images signed
//! on the real test registry pass or fail with it. Bad values files fail with the file, the
//! line and the field's path. The fixed files are in `tests/testdata/values/`.

use std::collections::BTreeMap;
use std::path::Path;

use sealgate_test_registry::{TestRegistry, TestRegistryConfig};
use serde_json::Value;

use crate::common::{Run, Workdir, image};

const TLS_AUTH: TestRegistryConfig = TestRegistryConfig {
    tls: true,
    auth: true,
};

/// Copies `names` from `tests/testdata/values/` into the work directory.
fn copy_testdata(w: &Workdir, names: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/testdata/values");
    for name in names {
        std::fs::copy(dir.join(name), w.path(name)).unwrap();
    }
}

/// The Quick Start policy with its key read from ConfigMap keys/cosign-keys.
fn configmap_policy(host: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: check-images
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: check-signatures
      context:
      - name: keys
        configMap:
          name: cosign-keys
          namespace: keys
      match:
        any:
        - resources:
            kinds: [Pod]
      verifyImages:
      - imageReferences:
        - \"{host}/*\"
        mutateDigest: false
        verifyDigest: false
        attestors:
        - entries:
          - keys:
              publicKeys: \"{{{{ keys.data.pub }}}}\"
"
    )
}

pub(crate) fn pod(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
    )
}

/// `pem` as a YAML block scalar under a key indented by `indent` spaces.
pub(crate) fn block(pem: &str, indent: usize) -> String {
    let pad = " ".repeat(indent + 2);
    let lines: String = pem.trim().lines().map(|l| format!("{pad}{l}\n")).collect();
    format!("|\n{lines}")
}

/// Each resource's rule statuses from `apply -o json`.
pub(crate) fn statuses(run: &Run) -> BTreeMap<String, Vec<String>> {
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let statuses = r["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|rule| rule["status"].as_str().unwrap().to_string())
                .collect();
            (r["resource"].as_str().unwrap().to_string(), statuses)
        })
        .collect()
}

/// A registry with `app:v1` signed by `cosign` and `other:v1` signed by `other`, the policy,
/// the Pods and the PEM of `cosign.pub`.
struct Signed {
    registry: TestRegistry,
    w: Workdir,
    pem: String,
}

fn signed_images() -> Signed {
    let registry = TestRegistry::start(TLS_AUTH);
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let (other_key, _) = w.keys("other", "pw");
    registry.push_image("app", "v1");
    registry.push_image("other", "v1");
    let app = image(&registry, "app:v1");
    let other = image(&registry, "other:v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &app])
        .success();
    w.run_on(&registry, "pw", &["sign", "--key", &other_key, &other])
        .success();
    std::fs::write(w.path("policy.yaml"), configmap_policy(registry.host())).unwrap();
    std::fs::write(
        w.path("pods.yaml"),
        format!("{}---\n{}", pod("signed", &app), pod("foreign", &other)),
    )
    .unwrap();
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    Signed { registry, w, pem }
}

const VALUES_HEAD: &str = "apiVersion: cli.kyverno.io/v1alpha1\nkind: Values\n";

fn apply(s: &Signed, extra: &[&str]) -> Run {
    let mut args = vec![
        "apply",
        "policy.yaml",
        "--resource",
        "pods.yaml",
        "-o",
        "json",
    ];
    args.extend(extra);
    s.w.run_on(&s.registry, "", &args)
}

/// The image signed with the values' key passes, the one signed with another key fails.
fn assert_pass_and_fail(run: &Run) {
    run.expect_code(1);
    let statuses = statuses(run);
    assert_eq!(statuses["Pod/default/signed"], ["pass"], "{run:?}");
    assert_eq!(statuses["Pod/default/foreign"], ["fail"], "{run:?}");
}

#[test]
fn apply_takes_the_configmap_key_from_rule_values_global_values_and_set() {
    let s = signed_images();

    // Without values: the ConfigMap is not read by apply, and the images get an error result
    // naming it.
    let run = apply(&s, &[]);
    assert_ne!(run.code(), 0, "{run:?}");
    assert_eq!(statuses(&run)["Pod/default/signed"], ["error"], "{run:?}");
    assert!(
        run.stdout()
            .contains("`{{ keys.data.pub }}` from ConfigMap keys/cosign-keys: context entry `keys` has no value"),
        "{run:?}"
    );

    // The rule's values, as in Kyverno's values files.
    std::fs::write(
        s.w.path("rule-values.yaml"),
        format!(
            "{VALUES_HEAD}policies:\n- name: check-images\n  rules:\n  - name: check-signatures\n    values:\n      keys.data.pub: {}",
            block(&s.pem, 6)
        ),
    )
    .unwrap();
    let run = apply(&s, &["--values-file", "rule-values.yaml"]);
    assert_pass_and_fail(&run);
    let run = apply(&s, &["-f", "rule-values.yaml"]);
    assert_pass_and_fail(&run);

    // globalValues.
    std::fs::write(
        s.w.path("global-values.yaml"),
        format!(
            "{VALUES_HEAD}globalValues:\n  keys.data.pub: {}",
            block(&s.pem, 2)
        ),
    )
    .unwrap();
    assert_pass_and_fail(&apply(&s, &["--values-file", "global-values.yaml"]));

    // --set, as a global value (the PEM's base64 padding '=' is part of the value).
    let set = format!("keys.data.pub={}", s.pem);
    assert_pass_and_fail(&apply(&s, &["--set", &set]));
    assert_pass_and_fail(&apply(&s, &["-s", &set]));

    // --set and --values-file together: refused, as by kyverno apply.
    let run = apply(&s, &["--set", &set, "--values-file", "global-values.yaml"]);
    run.expect_code(2);
    assert!(run.stderr().contains("cannot be used with"), "{run:?}");

    // The older form without apiVersion and kind: refused, as by Kyverno.
    std::fs::write(
        s.w.path("older.yaml"),
        format!("globalValues:\n  keys.data.pub: {}", block(&s.pem, 2)),
    )
    .unwrap();
    let run = apply(&s, &["--values-file", "older.yaml"]);
    run.expect_code(2).stderr_has(
        "older.yaml:1: the file has no apiVersion and kind: kyverno refuses this older form too (\"uses a deprecated schema\"); begin the file with apiVersion: cli.kyverno.io/v1alpha1 and kind: Values",
    );

    // Values for a rule the policy does not have: a warning naming it, and the ConfigMap's
    // error as without values.
    std::fs::write(
        s.w.path("misnamed.yaml"),
        std::fs::read_to_string(s.w.path("rule-values.yaml"))
            .unwrap()
            .replace("- name: check-signatures", "- name: check-signature"),
    )
    .unwrap();
    let run = apply(&s, &["--values-file", "misnamed.yaml"]);
    assert_ne!(run.code(), 0, "{run:?}");
    run.stderr_has("warning: misnamed.yaml:6: policies[0].rules[0].name: policy check-images has no rule check-signature, so these values are not used; its rules are check-signatures");
    assert_eq!(statuses(&run)["Pod/default/signed"], ["error"], "{run:?}");
}

#[test]
fn namespace_labels_from_values_decide_a_namespace_selector() {
    let w = Workdir::new();
    copy_testdata(
        &w,
        &[
            "namespace-policy.yaml",
            "pods.yaml",
            "namespace-selector.yaml",
            "namespaces.yaml",
        ],
    );
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "namespace-policy.yaml", "--resource", "pods.yaml"];
        args.extend(extra);
        w.run("", &args)
    };
    let denied = |run: &Run, name: &str| run.stdout().contains(&format!("Pod/{name}: DENIED"));

    // No labels: the rule applies to neither Pod.
    let run = apply(&[]);
    run.success();
    assert!(!denied(&run, "shop/shop-web"), "{run:?}");

    // shop is env=prod, staging env=dev: only the Pod in shop is checked (its tag fails).
    let run = apply(&["--values-file", "namespace-selector.yaml"]);
    run.expect_code(1);
    assert!(denied(&run, "shop/shop-web"), "{run:?}");
    assert!(!denied(&run, "staging/staging-web"), "{run:?}");

    // The Namespace object for staging (env=prod) wins over its namespaceSelector entry.
    let run = apply(&["--values-file", "namespaces.yaml"]);
    run.expect_code(1);
    assert!(denied(&run, "staging/staging-web"), "{run:?}");
    assert!(!denied(&run, "shop/shop-web"), "{run:?}");
}

#[test]
fn request_operation_in_values_sets_the_operation_rules_match() {
    let w = Workdir::new();
    copy_testdata(
        &w,
        &[
            "operation-policy.yaml",
            "pods.yaml",
            "update.yaml",
            "update-one-resource.yaml",
            "bad-operation.yaml",
        ],
    );
    let apply = |extra: &[&str]| {
        let mut args = vec!["apply", "operation-policy.yaml", "--resource", "pods.yaml"];
        args.extend(extra);
        w.run("", &args)
    };
    // CREATE by default: the UPDATE rule does not apply.
    apply(&[]).success();
    // globalValues request.operation: UPDATE: both Pods are checked.
    let run = apply(&["--values-file", "update.yaml"]);
    run.expect_code(1)
        .stdout_has("Pod/shop/shop-web: DENIED")
        .stdout_has("Pod/staging/staging-web: DENIED");
    // The same with --set.
    apply(&["--set", "request.operation=UPDATE"])
        .expect_code(1)
        .stdout_has("Pod/shop/shop-web: DENIED");
    // One resource's values: only that Pod.
    let run = apply(&["--values-file", "update-one-resource.yaml"]);
    run.expect_code(1)
        .stdout_has("Pod/staging/staging-web: DENIED");
    assert!(
        !run.stdout().contains("Pod/shop/shop-web: DENIED"),
        "{run:?}"
    );
    // Not an operation: refused, as by Kyverno (NormalizeValuesOperation).
    apply(&["--values-file", "bad-operation.yaml"])
        .expect_code(2)
        .stderr_has("bad-operation.yaml:4: globalValues[\"request.operation\"]: request.operation 'PATCH' is not an operation: give CREATE, UPDATE, DELETE or CONNECT (upper case)");
}

#[test]
fn bad_values_files_name_the_file_line_and_field() {
    let w = Workdir::new();
    let files = [
        "namespace-policy.yaml",
        "pods.yaml",
        "not-yaml.yaml",
        "wrong-kind.yaml",
        "policies-not-a-list.yaml",
        "values-not-a-mapping.yaml",
        "older-form.yaml",
        "unknown-field.yaml",
    ];
    copy_testdata(&w, &files);
    for (file, want) in [
        ("not-yaml.yaml", "not-yaml.yaml:4: invalid YAML"),
        (
            "wrong-kind.yaml",
            "wrong-kind.yaml:2: kind is Test, not Values: give a kind: Values file here (apiVersion: cli.kyverno.io/v1alpha1)",
        ),
        (
            "policies-not-a-list.yaml",
            "policies-not-a-list.yaml:3: policies must be a list of policies (found a mapping)",
        ),
        (
            "values-not-a-mapping.yaml",
            "values-not-a-mapping.yaml:8: policies[0].rules[1].values must be a mapping of variable names to values (found a list)",
        ),
        (
            "older-form.yaml",
            "older-form.yaml:1: the file has no apiVersion and kind: kyverno refuses this older form too",
        ),
        (
            "unknown-field.yaml",
            "unknown-field.yaml:7: policies[0].rules[0].valeus: unknown field; a rules entry holds name, values and foreachValues (kyverno refuses unknown fields too)",
        ),
        (
            "missing.yaml",
            "reading missing.yaml: No such file or directory",
        ),
    ] {
        let run = w.run(
            "",
            &[
                "apply",
                "namespace-policy.yaml",
                "--resource",
                "pods.yaml",
                "--values-file",
                file,
            ],
        );
        run.expect_code(2).stderr_has(want);
    }
    // --set entries that are not name=value.
    let run = w.run(
        "",
        &[
            "apply",
            "namespace-policy.yaml",
            "--resource",
            "pods.yaml",
            "--set",
            "novalue",
        ],
    );
    run.expect_code(2)
        .stderr_has("--set 'novalue': not name=value; give --set name=value");
}

/// A Kyverno test directory: the policy, the Pods, and `kyverno-test.yaml` expecting the
/// signed Pod to pass and the foreign one to fail.
fn test_dir(s: &Signed, values: &str) -> std::path::PathBuf {
    let dir = s.w.path("t");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(s.w.path("policy.yaml"), dir.join("policy.yaml")).unwrap();
    std::fs::copy(s.w.path("pods.yaml"), dir.join("resources.yaml")).unwrap();
    std::fs::write(
        dir.join("kyverno-test.yaml"),
        format!(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: configmap-key\npolicies: [policy.yaml]\nresources: [resources.yaml]\n{values}results:\n- policy: check-images\n  rule: check-signatures\n  kind: Pod\n  resources: [signed]\n  result: pass\n- policy: check-images\n  rule: check-signatures\n  kind: Pod\n  resources: [foreign]\n  result: fail\n"
        ),
    )
    .unwrap();
    dir
}

#[test]
fn kyverno_test_reads_variables_files_and_inline_values() {
    let s = signed_images();
    let rule_values = |indent: usize| {
        let pad = " ".repeat(indent);
        format!(
            "{pad}policies:\n{pad}- name: check-images\n{pad}  rules:\n{pad}  - name: check-signatures\n{pad}    values:\n{pad}      keys.data.pub: {}",
            block(&s.pem, indent + 6)
        )
    };

    // variables: a values file beside the test file.
    let dir = test_dir(&s, "variables: values.yaml\n");
    std::fs::write(
        dir.join("values.yaml"),
        format!("{VALUES_HEAD}{}", rule_values(0)),
    )
    .unwrap();
    let run = s.w.run_on(&s.registry, "", &["test", "t"]);
    run.success()
        .stdout_has("Test Summary: 2 tests passed and 0 tests failed");
    let ok_rows = run
        .stdout()
        .lines()
        .filter(|l| l.trim_end().ends_with(" Ok"))
        .count();
    assert_eq!(ok_rows, 2, "{run:?}");

    // Inline values.
    test_dir(&s, &format!("values:\n{}", rule_values(2)));
    std::fs::remove_file(dir.join("values.yaml")).unwrap();
    s.w.run_on(&s.registry, "", &["test", "t"])
        .success()
        .stdout_has("Test Summary: 2 tests passed and 0 tests failed");

    // Without values, the signed Pod's result is an error, not the pass expected.
    test_dir(&s, "");
    s.w.run_on(&s.registry, "", &["test", "t"])
        .expect_code(1)
        .stdout_has("Want pass, got error")
        .stdout_has("Test Summary: 0 tests passed and 2 tests failed");

    // A variables file that is not there, and inline values with a bad field.
    test_dir(&s, "variables: nowhere.yaml\n");
    s.w.run_on(&s.registry, "", &["test", "t"])
        .expect_code(2)
        .stderr_has("nowhere.yaml: No such file or directory");
    test_dir(&s, "values:\n  policies: {}\n");
    s.w.run_on(&s.registry, "", &["test", "t"])
        .expect_code(2)
        .stderr_has(
            "kyverno-test.yaml:8: values.policies must be a list of policies (found a mapping)",
        );
}

#[test]
fn the_userinfo_file_gives_the_service_account_a_key_is_chosen_by() {
    let s = signed_images();
    // The key is chosen by the requester's service account name.
    let policy = std::fs::read_to_string(s.w.path("policy.yaml"))
        .unwrap()
        .replace(
            "{{ keys.data.pub }}",
            "{{ keys.data.{{ serviceAccountName }} }}",
        );
    std::fs::write(s.w.path("policy.yaml"), &policy).unwrap();
    std::fs::write(
        s.w.path("values.yaml"),
        format!(
            "{VALUES_HEAD}policies:\n- name: check-images\n  rules:\n  - name: check-signatures\n    values:\n      keys.data.deployer: {}",
            block(&s.pem, 6)
        ),
    )
    .unwrap();
    let user = "apiVersion: cli.kyverno.io/v1alpha1\nkind: UserInfo\nclusterRoles: [ci-deployer]\nuserInfo:\n  username: system:serviceaccount:ci:deployer\n  groups: [system:serviceaccounts]\n";
    std::fs::write(s.w.path("user.yaml"), user).unwrap();
    assert_pass_and_fail(&apply(
        &s,
        &["--values-file", "values.yaml", "--userinfo", "user.yaml"],
    ));
    // Another service account has no key in the values: an error result.
    std::fs::write(
        s.w.path("intruder.yaml"),
        user.replace("ci:deployer", "ci:intruder"),
    )
    .unwrap();
    let run = apply(&s, &["--values-file", "values.yaml", "-u", "intruder.yaml"]);
    assert_ne!(run.code(), 0, "{run:?}");
    assert_eq!(statuses(&run)["Pod/default/signed"], ["error"], "{run:?}");
    // The form without apiVersion and kind: a warning under apply, as kyverno apply.
    std::fs::write(
        s.w.path("old-user.yaml"),
        user.replace("apiVersion: cli.kyverno.io/v1alpha1\nkind: UserInfo\n", ""),
    )
    .unwrap();
    let run = apply(&s, &["--values-file", "values.yaml", "-u", "old-user.yaml"]);
    assert_pass_and_fail(&run);
    run.stderr_has("warning: old-user.yaml: the user info file has no apiVersion or kind");
    // An unknown field: refused with its line.
    std::fs::write(
        s.w.path("typo-user.yaml"),
        user.replace("  groups:", "  group:"),
    )
    .unwrap();
    apply(&s, &["--values-file", "values.yaml", "-u", "typo-user.yaml"])
        .expect_code(2)
        .stderr_has("typo-user.yaml:6: userInfo.group: unknown field; userInfo holds username, uid, groups and extra");

    // kyverno test: `userinfo:` beside `variables:`; the deprecated form is refused there.
    let dir = test_dir(&s, "variables: values.yaml\nuserinfo: user.yaml\n");
    std::fs::copy(s.w.path("values.yaml"), dir.join("values.yaml")).unwrap();
    std::fs::copy(s.w.path("user.yaml"), dir.join("user.yaml")).unwrap();
    s.w.run_on(&s.registry, "", &["test", "t"])
        .success()
        .stdout_has("Test Summary: 2 tests passed and 0 tests failed");
    std::fs::copy(s.w.path("old-user.yaml"), dir.join("user.yaml")).unwrap();
    s.w.run_on(&s.registry, "", &["test", "t"])
        .expect_code(2)
        .stderr_has("user.yaml: the user info file has no apiVersion or kind: kyverno test refuses this deprecated form too");
    test_dir(&s, "variables: values.yaml\nuserInfo: user.yaml\n");
    s.w.run_on(&s.registry, "", &["test", "t"])
        .expect_code(2)
        .stderr_has("unknown field `userInfo`: kyverno's test file spells it `userinfo`");
}
