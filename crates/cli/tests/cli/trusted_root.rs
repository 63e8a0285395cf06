//! `--trusted-root FILE` on apply, test and serve: a file that is missing or no trusted root is
//! a usage error naming it and what to give; a trusted root and a ClientTrustConfig holding one
//! are read.

use crate::common::Workdir;

const POLICY: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match: {any: [{resources: {kinds: [Pod]}}]}\n    verifyImages:\n    - imageReferences: [\"registry.example.com/*\"]\n      failureAction: Enforce\n      required: false\n      mutateDigest: false\n      verifyDigest: false\n";
const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: registry.example.com/app@sha256:0000000000000000000000000000000000000000000000000000000000000000\n";

#[test]
fn a_trusted_root_file_is_read_and_a_bad_one_is_refused_naming_it() {
    let w = Workdir::new();
    std::fs::write(w.path("policy.yaml"), POLICY).unwrap();
    std::fs::write(w.path("pod.yaml"), POD).unwrap();
    let apply = |root: &str| {
        w.run(
            "",
            &[
                "apply",
                "policy.yaml",
                "--resource",
                "pod.yaml",
                "--trusted-root",
                root,
            ],
        )
    };
    apply("missing.json")
        .expect_code(2)
        .stderr_has("reading the trusted root missing.json");
    std::fs::write(w.path("bad.json"), "{\"tlogs\": 3}").unwrap();
    apply("bad.json")
        .expect_code(2)
        .stderr_has("bad.json is not a Sigstore trusted root");
    let root = include_str!("../../../core/trust/public-good-trusted-root.json");
    std::fs::write(w.path("root.json"), root).unwrap();
    apply("root.json").expect_code(0);
    std::fs::write(
        w.path("config.json"),
        format!(
            "{{\"mediaType\":\"application/vnd.dev.sigstore.clienttrustconfig.v0.1+json\",\"trustedRoot\":{root}}}"
        ),
    )
    .unwrap();
    apply("config.json").expect_code(0);
    // serve refuses to start with a bad one.
    w.run(
        "",
        &[
            "serve",
            "--policies",
            "policy.yaml",
            "--listen",
            "127.0.0.1:0",
            "--trusted-root",
            "bad.json",
        ],
    )
    .expect_code(2)
    .stderr_has("bad.json is not a Sigstore trusted root");
}
