//! Footguns of issue 14: runs that checked nothing must not pass, a reader that closes the pipe
//! early is not a crash, and no input is read without bound.

use std::process::Stdio;

use crate::common::{Run, Workdir};
use sealgate_server::audit::{AUDIT_DB_FILE, AuditRecord, AuditStore, Retention, now_unix_ms};

/// A policy whose only rule needs no registry for images outside registry.example.com.
const POLICY: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      mutateDigest: false\n      verifyDigest: true\n      required: false\n";

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: other.example.com/app:v1\n";

fn workdir() -> Workdir {
    let w = Workdir::new();
    std::fs::write(w.path("policy.yaml"), POLICY).unwrap();
    std::fs::write(w.path("pod.yaml"), POD).unwrap();
    std::fs::create_dir(w.path("empty")).unwrap();
    w
}

#[test]
fn apply_with_a_policy_and_a_pod_passes() {
    // The baseline the refusals below differ from.
    workdir()
        .run("", &["apply", "policy.yaml", "--resource", "pod.yaml"])
        .success();
}

#[test]
fn apply_refuses_an_empty_policy_folder() {
    workdir()
        .run("", &["apply", "empty", "--resource", "pod.yaml"])
        .expect_code(2)
        .stderr_has("empty holds no *.yaml, *.yml or *.json file, so there is no policy to check");
}

#[test]
fn apply_refuses_an_empty_resource_folder() {
    workdir()
        .run("", &["apply", "policy.yaml", "--resource", "empty"])
        .expect_code(2)
        .stderr_has("empty holds no Kubernetes resource, so there is nothing to check");
}

#[test]
fn apply_with_swapped_arguments_says_so() {
    let w = workdir();
    w.run("", &["apply", "pod.yaml", "--resource", "policy.yaml"])
        .expect_code(2)
        .stderr_has("pod.yaml holds Pods, not policies; did you swap the arguments?");
    // Policies given as resources, the policy argument right: the resource side says it.
    w.run("", &["apply", "policy.yaml", "--resource", "policy.yaml"])
        .expect_code(2)
        .stderr_has(
            "policy.yaml holds Kyverno policies, not resources; did you swap the arguments?",
        );
}

#[test]
fn a_file_of_policies_without_verify_images_rules_says_so_rather_than_holding_no_document() {
    let w = workdir();
    std::fs::write(
        w.path("empty-rules.yaml"),
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: nothing\nspec:\n  rules: []\n",
    )
    .unwrap();
    for command in [
        &["lint", "empty-rules.yaml"][..],
        &[
            "apply",
            "empty-rules.yaml",
            "--resource",
            "empty-rules.yaml",
        ][..],
    ] {
        w.run("", command)
            .expect_code(2)
            .stderr_has("empty-rules.yaml holds Kyverno policies but none with a verifyImages rule, so there is no policy for sealgate to check")
            .stderr_has("policy nothing: spec.rules: the policy has no verifyImages rule");
    }
}

#[test]
fn lint_of_a_file_without_policies_names_what_it_holds() {
    let w = workdir();
    std::fs::write(
        w.path("mixed.yaml"),
        format!("{POD}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: n\n"),
    )
    .unwrap();
    w.run("", &["lint", "mixed.yaml"])
        .expect_code(2)
        .stderr_has("mixed.yaml holds no Kyverno policy (kind ClusterPolicy or Policy, apiVersion kyverno.io/v1): it holds Pods, Deployments and NetworkPolicies");
    w.run("", &["lint", "empty"])
        .expect_code(2)
        .stderr_has("no policy to check");
    w.run("", &["lint", "policy.yaml"]).success();
}

#[test]
fn a_kyverno_test_without_policies_or_resources_is_refused() {
    let w = workdir();
    std::fs::create_dir(w.path("t")).unwrap();
    std::fs::copy(w.path("policy.yaml"), w.path("t/policy.yaml")).unwrap();
    std::fs::copy(w.path("pod.yaml"), w.path("t/pod.yaml")).unwrap();
    let test = |policies: &str, resources: &str| {
        format!(
            "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: t\npolicies: {policies}\nresources: {resources}\nresults:\n- policy: p\n  rule: r\n  resources: [web]\n  result: pass\n"
        )
    };
    std::fs::write(
        w.path("t/kyverno-test.yaml"),
        test("[policy.yaml]", "[pod.yaml]"),
    )
    .unwrap();
    w.run("", &["test", "t"]).success();
    std::fs::write(w.path("t/kyverno-test.yaml"), test("[]", "[pod.yaml]")).unwrap();
    w.run("", &["test", "t"])
        .expect_code(2)
        .stderr_has("the test lists no policies, so it would check nothing");
    std::fs::write(w.path("t/kyverno-test.yaml"), test("[policy.yaml]", "[]")).unwrap();
    w.run("", &["test", "t"])
        .expect_code(2)
        .stderr_has("the test lists no resources, so it would check nothing");
    // The test's policy entry points at the pods: said, not passed as "Excluded".
    std::fs::write(
        w.path("t/kyverno-test.yaml"),
        test("[pod.yaml]", "[pod.yaml]"),
    )
    .unwrap();
    w.run("", &["test", "t"])
        .expect_code(2)
        .stderr_has("pod.yaml holds Pods, not policies");
}

/// Runs `args` with standard output a pipe whose reading end is closed before sealgate writes
/// (what `| head -c1` does once it has its byte, without the race of a fast writer finishing
/// first): sealgate's first write fails with EPIPE.
fn run_into_closed_pipe(w: &Workdir, args: &[&str]) -> Run {
    let mut child = w
        .command(args)
        .env("COSIGN_PASSWORD", "")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    Run(child.wait_with_output().unwrap())
}

fn audit_record(time_unix_ms: i64, name: &str) -> AuditRecord {
    AuditRecord {
        time_unix_ms,
        uid: format!("uid-{name}"),
        dry_run: false,
        operation: "CREATE".into(),
        namespace: "team-a".into(),
        kind: "Pod".into(),
        name: name.into(),
        image: format!("registry.company.com/team-a/{name}:v1"),
        digest: None,
        policy: "require-signed".into(),
        rule: "check-signature".into(),
        result: "fail".into(),
        allowed: false,
        reason: format!("{name}: fail"),
        signer: None,
        cause: None,
        duration_ms: 1.0,
    }
}

fn audit_data(w: &Workdir, records: usize) {
    let now = now_unix_ms();
    let all: Vec<AuditRecord> = (0..records)
        .map(|i| audit_record(now - 1000 - i as i64, &format!("pod-{i}")))
        .collect();
    let mut store =
        AuditStore::open(&w.path("data").join(AUDIT_DB_FILE), Retention::default()).unwrap();
    store.insert(&all).unwrap();
}

#[test]
fn a_reader_that_closes_the_pipe_early_ends_every_printing_command_quietly() {
    let w = workdir();
    let (key, _) = w.keys("cosign", "");
    audit_data(&w, 3);
    std::fs::create_dir(w.path("t")).unwrap();
    std::fs::copy(w.path("policy.yaml"), w.path("t/policy.yaml")).unwrap();
    std::fs::copy(w.path("pod.yaml"), w.path("t/pod.yaml")).unwrap();
    std::fs::write(
        w.path("t/kyverno-test.yaml"),
        "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata:\n  name: t\npolicies: [policy.yaml]\nresources: [pod.yaml]\nresults:\n- policy: p\n  rule: r\n  resources: [web]\n  result: pass\n",
    )
    .unwrap();
    let commands: [&[&str]; 7] = [
        &["apply", "policy.yaml", "--resource", "pod.yaml"],
        &[
            "apply",
            "policy.yaml",
            "--resource",
            "pod.yaml",
            "-o",
            "json",
        ],
        &["test", "t"],
        &["lint", "policy.yaml"],
        &["audit", "--data-dir", "data"],
        &["audit", "--data-dir", "data", "-o", "json"],
        &["public-key", "--key", &key],
    ];
    for args in commands {
        let run = run_into_closed_pipe(&w, args);
        assert!(
            !run.stderr().contains("panicked"),
            "{args:?} panicked:\n{}",
            run.stderr()
        );
        assert_eq!(run.code(), 0, "{args:?}: {}", run.stderr());
    }
}

#[test]
fn public_key_of_dev_zero_is_refused_after_one_mebibyte() {
    let started = std::time::Instant::now();
    workdir()
        .run("", &["public-key", "--key", "/dev/zero"])
        .expect_code(2)
        .stderr_has("/dev/zero is larger than 1 MiB; key files are at most 1 MiB");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_policy_or_resource_argument_of_dev_zero_is_refused() {
    let w = workdir();
    w.run("", &["lint", "/dev/zero"]).expect_code(2).stderr_has(
        "/dev/zero is larger than 32 MiB; policy and resource files are at most 32 MiB",
    );
    w.run("", &["apply", "policy.yaml", "--resource", "/dev/zero"])
        .expect_code(2)
        .stderr_has("/dev/zero is larger than 32 MiB");
    w.run(
        "",
        &[
            "verify",
            "--key",
            "/dev/zero",
            "registry.example.com/app:v1",
        ],
    )
    .expect_code(2)
    .stderr_has("/dev/zero is larger than 1 MiB; key files are at most 1 MiB");
}

#[test]
fn a_policy_file_over_the_limit_names_its_size() {
    let w = workdir();
    let file = std::fs::File::create(w.path("huge.yaml")).unwrap();
    // Sparse: 40 MiB that take no disk.
    file.set_len(40 << 20).unwrap();
    w.run("", &["lint", "huge.yaml"])
        .expect_code(2)
        .stderr_has("huge.yaml is 40 MiB; policy and resource files are at most 32 MiB");
}

#[test]
fn a_key_written_with_an_empty_password_from_non_interactive_input_is_warned_about() {
    let w = Workdir::new();
    w.run("", &["generate-key-pair", "--output-key-prefix", "env"])
        .success()
        .stderr_has("warning: the new private key gets an empty password (COSIGN_PASSWORD is set to the empty string)");
    // No COSIGN_PASSWORD and an empty standard input (not a terminal).
    let run = Run(w
        .command(&["generate-key-pair", "--output-key-prefix", "stdin"])
        .output()
        .unwrap());
    run.success().stderr_has(
        "warning: the new private key gets an empty password (standard input, which is not a terminal, was empty)",
    );
    let protected = w.run("pw", &["generate-key-pair", "--output-key-prefix", "pw"]);
    protected.success();
    assert!(
        !protected.stderr().contains("warning"),
        "{}",
        protected.stderr()
    );
}

#[test]
fn audit_says_when_it_shows_fewer_records_than_match() {
    let w = Workdir::new();
    audit_data(&w, 1001);
    let run = w.run("", &["audit", "--data-dir", "data", "-o", "json"]);
    run.success()
        .stderr_has("showing 1,000 of 1,001 records (use --limit");
    let shown: Vec<AuditRecord> = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(shown.len(), 1000);
    w.run("", &["audit", "--data-dir", "data", "--limit", "2"])
        .success()
        .stderr_has("showing 2 of 1,001 records");
    let all = w.run("", &["audit", "--data-dir", "data", "--limit", "1001"]);
    all.success();
    assert!(!all.stderr().contains("showing"), "{}", all.stderr());
}

#[test]
fn refused_environment_credentials_name_the_auth_host_variable() {
    let w = workdir();
    let run = Run(w
        .command(&["apply", "policy.yaml", "--resource", "pod.yaml"])
        .env("SEALGATE_REGISTRY_USERNAME", "u")
        .env("SEALGATE_REGISTRY_PASSWORD", "p")
        .output()
        .unwrap());
    run.expect_code(2)
        .stderr_has("SEALGATE_REGISTRY_AUTH_HOST=HOST");
}

/// A registry behind a proxy that holds every chunk 1.5 s: each request waits about 3 s.
fn slow_registry() -> (
    sealgate_test_registry::TestRegistry,
    sealgate_test_registry::TcpFaultProxy,
) {
    use sealgate_test_registry::{TcpFaultProxy, TcpMode};
    let registry =
        sealgate_test_registry::TestRegistry::start(sealgate_test_registry::TestRegistryConfig {
            tls: false,
            auth: false,
        });
    registry.push_image("unsigned", "v1");
    let proxy = TcpFaultProxy::start(registry.host());
    proxy.set_mode(TcpMode::Delay(std::time::Duration::from_millis(1500)));
    (registry, proxy)
}

#[test]
fn a_registry_request_that_waits_more_than_two_seconds_is_reported() {
    let (_registry, proxy) = slow_registry();
    let w = Workdir::new();
    let (_, public) = w.keys("cosign", "");
    let host = proxy.host();
    let image = format!("{host}/unsigned:v1");
    let insecure = ["--allow-insecure-registry", host.as_str()];
    let waiting = format!("waiting for {host} … (resolving {image}");

    let mut args = vec!["verify", "--key", &public, &image];
    args.extend(insecure);
    w.run("", &args).expect_code(1).stderr_has(&waiting);
    args.extend(["-o", "json"]);
    let quiet = w.run("", &args);
    quiet.expect_code(1);
    assert!(
        !quiet.stderr().contains("waiting for"),
        "{}",
        quiet.stderr()
    );

    // apply: the driver's fetches report too.
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    std::fs::write(
        w.path("policy.yaml"),
        format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"{host}/*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n              {}\n",
            pem.trim().replace('\n', "\n              ")
        ),
    )
    .unwrap();
    std::fs::write(
        w.path("pod.yaml"),
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: {image}\n"),
    )
    .unwrap();
    let mut args = vec!["apply", "policy.yaml", "--resource", "pod.yaml"];
    args.extend(insecure);
    w.run("", &args).expect_code(1).stderr_has(&waiting);
}

/// Every command's `--help` ends with two or three examples, each of which parses (run with
/// `--help` appended, an unknown flag or value would fail before the help is printed).
#[test]
fn every_command_help_ends_with_examples_that_parse() {
    let w = Workdir::new();
    for command in [
        "generate-key-pair",
        "public-key",
        "sign",
        "verify",
        "triangulate",
        "apply",
        "test",
        "lint",
        "audit",
        "serve",
    ] {
        let help = w.run("", &[command, "--help"]);
        help.success();
        let text = help.stdout();
        let (_, examples) = text
            .rsplit_once("Examples:\n")
            .unwrap_or_else(|| panic!("{command} --help has no examples:\n{text}"));
        let examples: Vec<&str> = examples.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!((2..=3).contains(&examples.len()), "{command}: {examples:?}");
        for example in examples {
            let line = example
                .split(" #")
                .next()
                .unwrap()
                .split(" >")
                .next()
                .unwrap();
            let words: Vec<String> = line
                .split_whitespace()
                .skip_while(|w| w.contains('='))
                .map(|w| w.trim_matches('\'').to_string())
                .collect();
            assert_eq!(words[..2], ["sealgate", command], "{example}");
            let mut args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            args.push("--help");
            let parsed = w.run("", &args);
            assert_eq!(parsed.code(), 0, "{example}: {}", parsed.stderr());
        }
    }
}

/// `scripts/quickstart` runs the binaries cargo built under `CARGO_TARGET_DIR`. Stubs stand in
/// for cargo (builds nothing), the tools it checks for, and the harness, which records that it
/// ran and makes the script stop at once.
#[test]
fn quickstart_runs_the_binaries_under_cargo_target_dir() {
    use std::os::unix::fs::PermissionsExt;
    let w = Workdir::new();
    let stub = |path: &std::path::Path, body: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let bin = w.path("bin");
    for tool in ["cargo", "curl", "jq", "docker-registry"] {
        stub(&bin.join(tool), "exit 0");
    }
    let target = w.path("elsewhere");
    let marker = w.path("harness-ran");
    // `serve --dir WORK …`: the script then sources WORK/registry.env, which ends it.
    stub(
        &target.join("debug/sealgate-test-registry"),
        &format!(
            "echo \"$0\" > '{}'\necho 'exit 7' > \"$3/registry.env\"",
            marker.display()
        ),
    );
    stub(&target.join("debug/sealgate"), "exit 7");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/quickstart");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = Run(std::process::Command::new(script)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", &target)
        .stdin(Stdio::null())
        .output()
        .unwrap());
    assert_eq!(run.code(), 7, "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        target
            .join("debug/sealgate-test-registry")
            .display()
            .to_string()
    );
}
