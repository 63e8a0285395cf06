//! Policy-loading footguns of issue 14: typos in fields, kinds and groups are errors, not a pass
//! that checks nothing; lint foresees a Rekor requirement that `sealgate sign` cannot meet.

use crate::common::Workdir;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: registry.example.com/app:v1\n";

/// A policy with the `atestors:` typo: Kyverno's API server refuses it under strict validation.
const TYPO: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      mutateDigest: false\n      required: false\n      atestors: []\n";

fn workdir() -> Workdir {
    let w = Workdir::new();
    std::fs::write(w.path("typo.yaml"), TYPO).unwrap();
    std::fs::write(w.path("pod.yaml"), POD).unwrap();
    w
}

#[test]
fn a_misspelled_field_fails_lint_and_apply_with_a_suggestion() {
    let w = workdir();
    w.run("", &["lint", "typo.yaml"])
        .expect_code(1)
        .stdout_has("typo.yaml:17:7: policy p, rule r: spec.rules[0].verifyImages[0].atestors: unknown field 'atestors'; did you mean 'attestors'?");
    // apply has no valid policy left: the run fails instead of admitting the Pod unchecked.
    let run = w.run("", &["apply", "typo.yaml", "--resource", "pod.yaml"]);
    assert_ne!(run.code(), 0, "{run:?}");
    assert!(
        (run.stdout() + &run.stderr()).contains("unknown field 'atestors'"),
        "{run:?}"
    );
}

#[test]
fn allow_unknown_fields_keeps_the_lenient_reading_with_a_warning() {
    workdir()
        .run("", &["lint", "--allow-unknown-fields", "typo.yaml"])
        .success()
        .stdout_has("warning: typo.yaml:17:7: policy p, rule r: spec.rules[0].verifyImages[0].atestors: unknown field; did you mean attestors?");
}

#[test]
fn a_misspelled_kind_is_an_error_and_apply_does_not_admit_everything() {
    let w = workdir();
    std::fs::write(
        w.path("kind.yaml"),
        TYPO.replace("kind: ClusterPolicy", "kind: ClusterPolcy")
            .replace("atestors", "attestors"),
    )
    .unwrap();
    w.run("", &["lint", "kind.yaml"])
        .expect_code(1)
        .stdout_has("unknown kind 'ClusterPolcy' for kyverno.io/v1; did you mean 'ClusterPolicy'?");
    let run = w.run("", &["apply", "kind.yaml", "--resource", "pod.yaml"]);
    assert_ne!(run.code(), 0, "{run:?}");
}

#[test]
fn lint_warns_that_a_rekor_block_refuses_signatures_made_without_rekor() {
    let w = workdir();
    let key = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/testdata/policies/keys/dev-team.pub"
    ))
    .unwrap();
    let indented: String = key
        .lines()
        .map(|l| format!("              {l}\n"))
        .collect();
    let policy = TYPO.replace(
        "      atestors: []\n",
        &format!("      attestors:\n      - entries:\n        - keys:\n            rekor:\n              url: https://rekor.sigstore.dev\n            publicKeys: |-\n{indented}"),
    );
    std::fs::write(w.path("rekor.yaml"), &policy).unwrap();
    w.run("", &["lint", "rekor.yaml"])
        .success()
        .stdout_has("this keys attestor has a rekor block, so every signature must carry a transparency-log (Rekor) proof: signatures made without a Rekor upload, as `sealgate sign` makes them, will be refused")
        .stdout_has("ignoreTlog: true");
    std::fs::write(
        w.path("ignored.yaml"),
        policy.replace(
            "              url: https://rekor.sigstore.dev\n",
            "              url: https://rekor.sigstore.dev\n              ignoreTlog: true\n",
        ),
    )
    .unwrap();
    let run = w.run("", &["lint", "ignored.yaml"]);
    run.success();
    assert!(!run.stdout().contains("rekor block"), "{run:?}");
}

#[test]
fn two_policies_with_one_name_are_an_error_naming_both_files() {
    let w = workdir();
    let valid = TYPO.replace("      atestors: []\n", "");
    std::fs::write(w.path("a.yaml"), &valid).unwrap();
    std::fs::write(w.path("b.yaml"), &valid).unwrap();
    w.run("", &["lint", "a.yaml", "b.yaml"])
        .expect_code(1)
        .stdout_has("b.yaml:1:1: policy p: metadata.name: ClusterPolicy 'p' is defined twice: first at a.yaml:1");
}

#[test]
fn a_file_of_a_million_documents_is_refused_at_the_document_cap() {
    let w = workdir();
    std::fs::write(w.path("many.yaml"), "a: 1\n---\n".repeat(1_000_000)).unwrap();
    w.run("", &["lint", "many.yaml"])
        .expect_code(1)
        .stdout_has("the text holds more than 10000 documents: split it into several files");
}
