//! `context` entries under `apply` against the real test registry (issue 13): an
//! `imageRegistry` entry reads the image's config to choose the key (and a missing image's
//! data is the attestor's error result, naming where the value was to come from), a
//! `variable` entry reads the resource, and an `apiCall` entry gives the rule's images an error
//! result saying sealgate does not make it.

use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

use crate::common::{Run, Workdir, image};
use crate::values::{block, pod, statuses};

/// A policy over `host/*` whose key is `keys."{{ choice }}"`, with `context` entries `keys`
/// (a variable holding a key per choice) and `extra`, the entries that make `choice`.
fn policy(host: &str, keys: &[(&str, &str)], extra: &str, choice: &str) -> String {
    let keys: String = keys
        .iter()
        .map(|(name, pem)| format!("            {name}: {}", block(pem, 12)))
        .collect();
    format!(
        "apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: chosen-key
spec:
  validationFailureAction: Enforce
  background: false
  rules:
    - name: check
      context:
      - name: keys
        variable:
          value:
{keys}{extra}      match:
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
              publicKeys: '{{{{ keys.\"{{{{ {choice} }}}}\" }}}}'
"
    )
}

struct Setup {
    registry: TestRegistry,
    w: Workdir,
    cosign: String,
    other: String,
}

fn setup() -> Setup {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let (_, other_public) = w.keys("other", "pw");
    registry.push_image("app", "v1");
    w.run_on(
        &registry,
        "pw",
        &["sign", "--key", &key, &image(&registry, "app:v1")],
    )
    .success();
    let cosign = std::fs::read_to_string(w.path(&public)).unwrap();
    let other = std::fs::read_to_string(w.path(&other_public)).unwrap();
    Setup {
        registry,
        w,
        cosign,
        other,
    }
}

fn apply(s: &Setup, policy: &str, pods: &str) -> Run {
    std::fs::write(s.w.path("policy.yaml"), policy).unwrap();
    std::fs::write(s.w.path("pods.yaml"), pods).unwrap();
    s.w.run_on(
        &s.registry,
        "",
        &[
            "apply",
            "policy.yaml",
            "--resource",
            "pods.yaml",
            "-o",
            "json",
        ],
    )
}

#[test]
fn an_image_registry_entry_reads_the_image_config_from_the_registry() {
    let s = setup();
    let image_data = "      - name: arch\n        imageRegistry:\n          reference: \"{{ images.containers.c.reference }}\"\n          jmesPath: configData.architecture\n";
    let pods = format!(
        "{}---\n{}",
        pod("signed", &image(&s.registry, "app:v1")),
        pod("absent", &image(&s.registry, "absent:v1"))
    );
    // The test image's config says amd64: the amd64 key verifies it.
    let good = policy(
        s.registry.host(),
        &[("amd64", &s.cosign), ("arm64", &s.other)],
        image_data,
        "arch",
    );
    let run = apply(&s, &good, &pods);
    let found = statuses(&run);
    assert_eq!(found["Pod/default/signed"], ["pass"], "{run:?}");
    // An image the registry does not have: an error (its tag does not resolve).
    assert_eq!(found["Pod/default/absent"], ["error"], "{run:?}");
    // The entry names an image the registry does not have: the attestor's error says where
    // the value was to come from.
    let missing = image(&s.registry, "config-source:v9");
    let elsewhere = good.replace("{{ images.containers.c.reference }}", &missing);
    let run = apply(
        &s,
        &elsewhere,
        &pod("signed", &image(&s.registry, "app:v1")),
    );
    assert_eq!(statuses(&run)["Pod/default/signed"], ["error"], "{run:?}");
    assert!(
        run.stdout()
            .contains(&format!("from the registry's data for {missing}")),
        "{run:?}"
    );
    assert!(run.stdout().contains("not found"), "{run:?}");
    // The keys swapped: the amd64 key is the other one, and the image fails.
    let swapped = policy(
        s.registry.host(),
        &[("amd64", &s.other), ("arm64", &s.cosign)],
        image_data,
        "arch",
    );
    let run = apply(&s, &swapped, &pod("signed", &image(&s.registry, "app:v1")));
    run.expect_code(1);
    assert_eq!(statuses(&run)["Pod/default/signed"], ["fail"], "{run:?}");
}

#[test]
fn a_variable_entry_reads_the_resource_and_an_api_call_is_an_error_result() {
    let s = setup();
    // The team label of the Pod chooses the key; `default` when it has none.
    let team = "      - name: team\n        variable:\n          jmesPath: request.object.metadata.labels.team\n          default: a\n";
    let labelled = |name: &str, team: &str| {
        pod(name, &image(&s.registry, "app:v1")).replace(
            &format!("name: {name}\n"),
            &format!("name: {name}\n  labels:\n    team: {team}\n"),
        )
    };
    let pods = format!(
        "{}---\n{}---\n{}",
        labelled("team-a", "a"),
        labelled("team-b", "b"),
        pod("unlabelled", &image(&s.registry, "app:v1"))
    );
    let chosen = policy(
        s.registry.host(),
        &[("a", &s.cosign), ("b", &s.other)],
        team,
        "team",
    );
    let run = apply(&s, &chosen, &pods);
    run.expect_code(1);
    let found = statuses(&run);
    assert_eq!(found["Pod/default/team-a"], ["pass"], "{run:?}");
    assert_eq!(found["Pod/default/team-b"], ["fail"], "{run:?}");
    assert_eq!(found["Pod/default/unlabelled"], ["pass"], "{run:?}");

    // An apiCall entry: sealgate makes no call; the rule's images get an error result.
    let api = chosen.replace(
        team,
        "      - name: team\n        apiCall:\n          urlPath: /api/v1/namespaces\n          jmesPath: items[0].metadata.name\n",
    );
    let run = apply(&s, &api, &pod("signed", &image(&s.registry, "app:v1")));
    assert_ne!(run.code(), 0, "{run:?}");
    assert_eq!(statuses(&run)["Pod/default/signed"], ["error"], "{run:?}");
    assert!(
        run.stdout()
            .contains("context entry `team` is an apiCall, which sealgate does not make"),
        "{run:?}"
    );
    let lint = s.w.run("", &["lint", "policy.yaml"]);
    assert!(
        lint.stdout().contains("context entry `team` is an apiCall")
            || lint.stderr().contains("context entry `team` is an apiCall"),
        "{lint:?}"
    );
}

/// `quick_start_policy` with `preconditions` on the requester's user name.
fn for_users(name: &str, pattern: &str, pem: &str, users: &str) -> String {
    crate::kubernetes::quick_start_policy(name, pattern, pem, "").replace(
        "      verifyImages:\n",
        &format!(
            "      preconditions:\n        all:\n        - key: \"{{{{ request.userInfo.username || '' }}}}\"\n          operator: AnyIn\n          value: [{users}]\n          message: not a user this policy checks\n      verifyImages:\n"
        ),
    )
}

#[test]
fn preconditions_read_the_admission_request_under_serve_and_skip_in_apply_and_test() {
    use std::time::Duration;

    use crate::kubernetes::{eventually, install_crds, ready_condition, start_serve};
    use sealgate_test_cluster::TestCluster;

    let s = setup();
    let host = s.registry.host().to_string();
    // Under serve: the API server's requester is `admin`.
    let cluster = TestCluster::start();
    install_crds(&cluster, &["kyverno-policies.yaml"]);
    let (_serving, _port) = start_serve(&s.w, &cluster, &s.registry.cli_args());
    let log = || std::fs::read_to_string(s.w.path("serve.log")).unwrap_or_default();
    let for_admin = for_users(
        "for-admin",
        &format!("{host}/unsigned-a*"),
        &s.cosign,
        "admin",
    );
    let for_ci = for_users(
        "for-ci",
        &format!("{host}/unsigned-b*"),
        &s.cosign,
        "ci-bot",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], &format!("{for_admin}---\n{for_ci}"));
    for name in ["for-admin", "for-ci"] {
        let (status, message) = eventually(
            "the policy's Ready condition",
            Duration::from_secs(20),
            || ready_condition(&cluster, name),
        );
        assert_eq!(status, "True", "{message}\n{}", log());
    }
    s.registry.push_image("unsigned-a", "v1");
    s.registry.push_image("unsigned-b", "v1");
    let refused = eventually(
        "an unsigned image under the admin's policy is refused",
        Duration::from_secs(20),
        || {
            let out = cluster.kubectl(&[
                "run",
                "a",
                "--image",
                &image(&s.registry, "unsigned-a:v1"),
                "--restart=Never",
            ]);
            (!out.success()).then_some(out.stderr)
        },
    );
    assert!(refused.contains("for-admin"), "{refused}\n{}", log());
    // The CI bot's policy does not apply to admin: skipped, the unsigned image admitted.
    let admitted = cluster.kubectl(&[
        "run",
        "b",
        "--image",
        &image(&s.registry, "unsigned-b:v1"),
        "--restart=Never",
    ]);
    assert!(admitted.success(), "{}\n{}", admitted.stderr, log());

    // apply: no requester, so the user name is empty (`|| ''`: without it the variable would
    // not resolve, an error as in Kyverno) and neither policy applies: a skip.
    let both = format!("{for_admin}---\n{for_ci}");
    let run = apply(
        &s,
        &both,
        &pod("signed", &image(&s.registry, "unsigned-a:v1")),
    );
    run.expect_code(0);
    assert_eq!(statuses(&run)["Pod/default/signed"], ["skip"], "{run:?}");
    assert!(
        run.stdout()
            .contains("preconditions not met; not a user this policy checks"),
        "{run:?}"
    );
    // With --userinfo naming admin, the admin's policy applies and the unsigned image fails.
    std::fs::write(
        s.w.path("user.yaml"),
        "apiVersion: cli.kyverno.io/v1alpha1\nkind: UserInfo\nuserInfo:\n  username: admin\n",
    )
    .unwrap();
    std::fs::write(s.w.path("policy.yaml"), &for_admin).unwrap();
    let run = s.w.run_on(
        &s.registry,
        "",
        &[
            "apply",
            "policy.yaml",
            "--resource",
            "pods.yaml",
            "--userinfo",
            "user.yaml",
            "-o",
            "json",
        ],
    );
    run.expect_code(1);
    assert_eq!(statuses(&run)["Pod/default/signed"], ["fail"], "{run:?}");

    // sealgate test: the skip is a result a test file can expect.
    std::fs::write(
        s.w.path("kyverno-test.yaml"),
        "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: skips\npolicies: [policy.yaml]\nresources: [pods.yaml]\nresults:\n- policy: for-admin\n  rule: check-signatures\n  resources: [signed]\n  kind: Pod\n  result: skip\n",
    )
    .unwrap();
    let run = s.w.run_on(&s.registry, "", &["test", "."]);
    assert_eq!(run.code(), 0, "{run:?}");
    assert!(
        run.stdout().contains("1 tests passed and 0 tests failed"),
        "{run:?}"
    );
}

#[test]
fn values_stand_in_for_an_image_registry_entry_and_not_for_a_variable_entry() {
    let s = setup();
    let image_data = "      - name: arch\n        imageRegistry:\n          reference: \"{{ images.containers.c.reference }}\"\n          jmesPath: configData.architecture\n";
    let chosen = policy(
        s.registry.host(),
        &[("amd64", &s.cosign), ("arm64", &s.other)],
        image_data,
        "arch",
    );
    std::fs::write(s.w.path("policy.yaml"), &chosen).unwrap();
    std::fs::write(
        s.w.path("pods.yaml"),
        pod("signed", &image(&s.registry, "app:v1")),
    )
    .unwrap();
    let values = |name: &str, value: &str| {
        std::fs::write(
            s.w.path("values.yaml"),
            format!("apiVersion: cli.kyverno.io/v1alpha1\nkind: Values\npolicies:\n- name: chosen-key\n  rules:\n  - name: check\n    values:\n      {name}: {value}\n"),
        )
        .unwrap();
        s.w.run_on(
            &s.registry,
            "",
            &[
                "apply",
                "policy.yaml",
                "--resource",
                "pods.yaml",
                "--values-file",
                "values.yaml",
                "-o",
                "json",
            ],
        )
    };
    // The image's config says amd64; the values say arm64, and stand in for the registry (as in
    // Kyverno's CLI without --registry): the arm64 key is the other one, so the image fails.
    let run = values("arch", "arm64");
    run.expect_code(1);
    assert_eq!(statuses(&run)["Pod/default/signed"], ["fail"], "{run:?}");
    let run = values("arch", "amd64");
    assert_eq!(statuses(&run)["Pod/default/signed"], ["pass"], "{run:?}");

    // A variable entry is computed after the values, as in Kyverno: its own value wins.
    let team = "      - name: team\n        variable:\n          value: a\n";
    let variable = policy(
        s.registry.host(),
        &[("a", &s.cosign), ("b", &s.other)],
        team,
        "team",
    );
    std::fs::write(s.w.path("policy.yaml"), variable).unwrap();
    let run = values("team", "b");
    assert_eq!(statuses(&run)["Pod/default/signed"], ["pass"], "{run:?}");
}
