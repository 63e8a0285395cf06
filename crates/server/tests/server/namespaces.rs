//! Namespace labels from a [`NamespaceLabelSource`] (in a cluster, the kube crate's watched
//! store; here a fixed one): a `namespaceSelector` is evaluated on the labels when they are known,
//! fails closed when they are not, and the answer says why when a source has not synced.

use std::collections::BTreeMap;
use std::sync::Arc;

use sealgate_registry::Client;
use sealgate_server::{NamespaceLabelSource, NamespaceLabels};
use sealgate_test_registry::TestRegistryConfig;

use crate::common::*;

#[derive(Debug)]
struct Fixed(NamespaceLabels);

impl NamespaceLabelSource for Fixed {
    fn labels(&self, _namespace: &str) -> NamespaceLabels {
        self.0.clone()
    }
}

fn known(env: &str) -> Option<Arc<dyn NamespaceLabelSource>> {
    Some(Arc::new(Fixed(NamespaceLabels::Known(BTreeMap::from([(
        "env".to_string(),
        env.to_string(),
    )])))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_selector_is_decided_on_the_labels_the_source_knows() {
    let env = Env::new(TestRegistryConfig {
        tls: false,
        auth: false,
    });
    let pattern = format!("{}/*", env.registry.host());
    let text = policy("prod-signed", &env.key, &pattern, "Enforce", "").replace(
        "            - Pod\n",
        "            - Pod\n            namespaceSelector:\n              matchLabels:\n                env: prod\n",
    );
    env.write_policy("p.yaml", &text);
    env.push_unsigned("app", "v1");
    let image = env.image("app:v1");
    let review = review("pod-create", &image);
    let dir = env.policies_dir();
    let decide = |namespaces| {
        let client = Client::new(env.registry.client_options()).unwrap();
        let (_state, app) = state_with_namespaces(&dir, client, namespaces);
        let review = review.clone();
        async move { admit(&app, "/mutate", &review).await }
    };

    let dev = decide(known("dev")).await;
    assert_eq!(
        dev["allowed"], true,
        "not prod: the rule does not apply\n{dev}"
    );

    let prod = decide(known("prod")).await;
    assert_eq!(prod["allowed"], false, "{prod}");
    assert!(
        prod["status"]["message"]
            .as_str()
            .unwrap()
            .contains("prod-signed"),
        "{prod}"
    );

    // A source that has not listed the namespaces yet: fail closed, and say why.
    let unsynced: Option<Arc<dyn NamespaceLabelSource>> = Some(Arc::new(Fixed(
        NamespaceLabels::Unknown("the namespace watch has not listed the namespaces yet"),
    )));
    let early = decide(unsynced).await;
    assert_eq!(early["allowed"], false, "{early}");
    let warnings = early["warnings"].to_string();
    assert!(
        warnings.contains("are not known: the namespace watch has not listed the namespaces yet")
            && warnings.contains("fail closed"),
        "{early}"
    );

    // No source at all (serve --policies): fail closed as before, without that warning.
    let alone = decide(None).await;
    assert_eq!(alone["allowed"], false, "{alone}");
    assert!(
        !alone["warnings"].to_string().contains("are not known"),
        "{alone}"
    );
}
