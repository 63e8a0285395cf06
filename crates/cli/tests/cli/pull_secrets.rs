//! Registry credentials from pull secrets under `serve --kubernetes`, against a real
//! kube-apiserver and a real registry with htpasswd auth, the server itself holding no
//! credentials: a Pod's `imagePullSecrets` (with `--pod-pull-secrets`), a rule's
//! `imageRegistryCredentials.secrets`, and a Secret rotated to a wrong password.

use std::time::Duration;

use sealgate_test_cluster::TestCluster;
use sealgate_test_registry::{TestRegistry, TestRegistryConfig};

use crate::common::{Workdir, image};
use crate::kubernetes::{
    eventually, install_crds, quick_start_policy, ready_condition, start_serve,
};

fn pod(name: &str, image: &str, pull_secret: Option<&str>) -> String {
    let secrets = pull_secret.map_or(String::new(), |s| {
        format!("\n  imagePullSecrets:\n  - name: {s}")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: app\nspec:{secrets}\n  containers:\n  - name: c\n    image: {image}\n"
    )
}

fn docker_registry_secret(
    cluster: &TestCluster,
    ns: &str,
    name: &str,
    registry: &TestRegistry,
    password: &str,
) {
    let yaml = cluster.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        name,
        "-n",
        ns,
        &format!("--docker-server={}", registry.host()),
        &format!("--docker-username={}", registry.username().unwrap()),
        &format!("--docker-password={password}"),
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    cluster.kubectl_stdin(&["apply", "-f", "-"], &yaml);
}

#[test]
fn pull_secrets_reach_the_registries_they_name() {
    let registry = TestRegistry::start(TestRegistryConfig {
        tls: true,
        auth: true,
    });
    let cluster = TestCluster::start();
    let w = Workdir::new();
    let (key, public) = w.keys("cosign", "pw");
    let app = image(&registry, "app:v1");
    let ruled = image(&registry, "ruled/app:v1");
    registry.push_image("app", "v1");
    registry.push_image("ruled/app", "v1");
    for signed in [&app, &ruled] {
        w.run_on(&registry, "pw", &["sign", "--key", &key, signed])
            .success();
    }
    let pem = std::fs::read_to_string(w.path(&public)).unwrap();
    install_crds(&cluster, &["kyverno-policies.yaml"]);
    for ns in ["app", "sealgate"] {
        cluster.kubectl_ok(&["create", "namespace", ns]);
    }
    cluster.kubectl_ok(&["create", "serviceaccount", "default", "-n", "app"]);
    let password = registry.password().unwrap().to_string();
    docker_registry_secret(&cluster, "app", "regcred", &registry, &password);

    // The server trusts the registry's CA but has no credentials of its own.
    let ca = registry.ca_pem_path().unwrap().display().to_string();
    let _serving = start_serve(
        &w,
        &cluster,
        &["--registry-ca".into(), ca, "--pod-pull-secrets".into()],
    );
    let log = || std::fs::read_to_string(w.path("serve.log")).unwrap_or_default();

    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &quick_start_policy(
            "require-signed-images",
            &format!("{}/*", registry.host()),
            &pem,
            "",
        ),
    );
    let (status, message) = eventually("Ready", Duration::from_secs(20), || {
        ready_condition(&cluster, "require-signed-images")
    });
    assert_eq!(status, "True", "{message}");
    eventually(
        "failurePolicy Fail registered",
        Duration::from_secs(10),
        || {
            let out = cluster.kubectl(&[
                "get",
                "mutatingwebhookconfiguration",
                "sealgate",
                "-o",
                "jsonpath={.webhooks[0].failurePolicy}",
            ]);
            (out.stdout.trim() == "Fail").then_some(())
        },
    );

    // Without a pull secret the registry refuses sealgate: denied, saying why.
    let anonymous = cluster.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &pod("anonymous", &app, None),
    );
    assert!(!anonymous.success(), "admitted without credentials");
    assert!(
        anonymous.stderr.contains("require-signed-images"),
        "{}",
        anonymous.stderr
    );
    assert!(
        anonymous.stderr.contains("authentication required by")
            && anonymous.stderr.contains("imagePullSecret"),
        "{}",
        anonymous.stderr
    );

    // The Pod's imagePullSecrets: the same image verified, and pinned.
    let created = cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        &pod("with-secret", &app, Some("regcred")),
    );
    assert!(created.success(), "{}\n{}", created.stderr, log());
    let stored = cluster.kubectl_ok(&["get", "pod", "with-secret", "-n", "app", "-o", "json"]);
    assert!(
        stored.contains(&format!("{app}@sha256:")),
        "not pinned: {stored}"
    );

    // What was fetched with the Pod's credentials is not shared with a review without them:
    // the anonymous Pod of the same image is still refused by the registry.
    let still_anonymous = cluster.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &pod("anonymous-again", &app, None),
    );
    assert!(
        !still_anonymous.success()
            && still_anonymous
                .stderr
                .contains("authentication required by"),
        "{}",
        still_anonymous.stderr
    );

    // A pull secret of another namespace's name does not serve this one.
    let elsewhere = cluster.kubectl_stdin(
        &["apply", "--dry-run=server", "-f", "-"],
        &pod("other-name", &ruled, Some("not-there")),
    );
    assert!(!elsewhere.success(), "admitted with a missing pull secret");

    // A rule's imageRegistryCredentials.secrets, in sealgate's namespace.
    docker_registry_secret(&cluster, "sealgate", "ruled-cred", &registry, &password);
    let ruled_policy = quick_start_policy(
        "ruled-images",
        &format!("{}/ruled/*", registry.host()),
        &pem,
        "",
    )
    .replace(
        "        mutateDigest: true\n",
        "        mutateDigest: true\n        imageRegistryCredentials:\n          secrets: [\"sealgate/ruled-cred\"]\n",
    );
    assert!(ruled_policy.contains("ruled-cred"), "{ruled_policy}");
    cluster.kubectl_stdin(&["apply", "-f", "-"], &ruled_policy);
    let (status, message) = eventually("Ready", Duration::from_secs(20), || {
        ready_condition(&cluster, "ruled-images")
    });
    assert_eq!(status, "True", "{message}");
    eventually("the rule's secret is used", Duration::from_secs(20), || {
        cluster
            .kubectl_stdin(
                &["apply", "--dry-run=server", "-f", "-"],
                &pod("ruled", &ruled, None),
            )
            .success()
            .then_some(())
    });
    assert!(
        !log().contains("imageRegistryCredentials is not used"),
        "{}",
        log()
    );

    // The Pod's secret rotated to a wrong password: its next fresh fetch is refused (a new
    // tag, so no cache answers for it).
    registry.push_image("fresh", "v1");
    let fresh = image(&registry, "fresh:v1");
    w.run_on(&registry, "pw", &["sign", "--key", &key, &fresh])
        .success();
    cluster.kubectl_ok(&["delete", "clusterpolicy", "ruled-images"]);
    docker_registry_secret(&cluster, "app", "regcred", &registry, "wrong-password");
    eventually(
        "the rotated secret takes effect",
        Duration::from_secs(20),
        || {
            let out = cluster.kubectl_stdin(
                &["apply", "--dry-run=server", "-f", "-"],
                &pod("rotated", &fresh, Some("regcred")),
            );
            (!out.success() && out.stderr.contains("require-signed-images")).then_some(())
        },
    );
}
