//! Attestors for tests that check what was signed with the engine's own checks: compiled from a
//! policy as users write one, so a test checks what a policy would.

use sealgate_core::policy::{Attestor, load};

/// The key attestor of a Kyverno policy whose one entry is `keys.publicKeys: public_pem`
/// (transparency log settings left at their defaults).
pub fn key_attestor(public_pem: &str) -> Attestor {
    let yaml = format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {{name: p}}\nspec:\n  \
validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: \
[Pod]}}}}]}}\n    verifyImages:\n    - imageReferences: [\"*\"]\n      mutateDigest: false\n      \
attestors:\n      - entries:\n        - keys:\n            publicKeys: |-\n              {}\n",
        public_pem.trim().replace('\n', "\n              ")
    );
    let loaded = load("key-attestor.yaml", &yaml);
    assert!(
        loaded.errors.is_empty(),
        "the key attestor's policy does not load: {:?}",
        loaded.errors
    );
    loaded.policies[0].rules[0].verify_images[0].attestors[0].entries[0].clone()
}
