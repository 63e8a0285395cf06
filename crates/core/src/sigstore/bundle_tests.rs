//! The two real v0.3 bundles: sigstore-rs's keyless cosign v3 signature of
//! kubewarden-controller v1.34.0 and sigstore/cosign's keyless attestation; their inclusion proofs
//! and checkpoints checked against the public-good Rekor key, and copies with one thing changed.

use super::*;
use crate::sigstore::rekor::RekorError;
use crate::sigstore::trust::TrustedRoot;

const V03: &[u8] = include_bytes!("../../testdata/sigstore/bundle_v03.json");
const ATTESTATION: &[u8] = include_bytes!("../../testdata/sigstore/oci-attestation.sigstore.json");

fn logs() -> &'static [LogKey] {
    &TrustedRoot::public_good().tlogs
}

fn edited(data: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(data).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn the_real_v03_bundles_parse() {
    let b = Bundle::parse(V03).unwrap();
    assert_eq!(b.version, BundleVersion::V03);
    assert!(matches!(b.material, Material::Certificate(_)));
    assert_eq!(b.rfc3161_timestamps.len(), 1);
    assert_eq!(b.predicate_type().as_deref(), Some(COSIGN_SIGN_PREDICATE));
    let e = &b.tlog_entries[0];
    assert_eq!(e.log_index, 1_261_105_807);
    assert_eq!(e.inclusion_proof.as_ref().unwrap().log_index, 1_139_201_545);
    assert_eq!(
        e.log_id,
        "c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d"
    );
    assert_eq!((e.kind.as_str(), e.version.as_str()), ("dsse", "0.0.1"));
    let a = Bundle::parse(ATTESTATION).unwrap();
    assert_eq!(
        a.predicate_type().as_deref(),
        Some("https://cosign.sigstore.dev/attestation/v1")
    );
}

#[test]
fn the_real_inclusion_proofs_and_checkpoints_verify() {
    for data in [V03, ATTESTATION] {
        let b = Bundle::parse(data).unwrap();
        assert!(b.tlog_entries[0].verify_inclusion(logs()).unwrap());
    }
}

#[test]
fn the_real_sets_verify_through_the_legacy_bundle_form() {
    // The SET is over the top-level logIndex: the rekor module checks it, and the envelope.
    for data in [V03, ATTESTATION] {
        let b = Bundle::parse(data).unwrap();
        let Content::Dsse { envelope, json } = &b.content else {
            panic!("not DSSE")
        };
        let leaf = b.material.leaf().unwrap();
        let legacy = b.tlog_entries[0].legacy_rekor_bundle().unwrap();
        crate::cosign::verify_attestation_bundle(&legacy, json, envelope, &[leaf], logs()).unwrap();
    }
}

#[test]
fn a_changed_set_fails_as_a_bad_set() {
    let data = edited(V03, |v| {
        let e = &mut v["verificationMaterial"]["tlogEntries"][0];
        e["logIndex"] = Value::String("1139201545".into());
    });
    let b = Bundle::parse(&data).unwrap();
    let Content::Dsse { envelope, json } = &b.content else {
        panic!()
    };
    let legacy = b.tlog_entries[0].legacy_rekor_bundle().unwrap();
    assert!(matches!(
        crate::cosign::verify_attestation_bundle(
            &legacy,
            json,
            envelope,
            &[b.material.leaf().unwrap()],
            logs()
        ),
        Err(RekorError::BadSet(_))
    ));
}

#[test]
fn a_changed_body_path_root_or_checkpoint_fails_with_its_own_error() {
    let body = |v: &mut Value| {
        let e = &mut v["verificationMaterial"]["tlogEntries"][0];
        let mut raw = STANDARD
            .decode(e["canonicalizedBody"].as_str().unwrap())
            .unwrap();
        raw[20] ^= 1;
        e["canonicalizedBody"] = Value::String(STANDARD.encode(raw));
    };
    let path = |v: &mut Value| {
        let h = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"][3];
        let mut raw = STANDARD.decode(h.as_str().unwrap()).unwrap();
        raw[0] ^= 1;
        *h = Value::String(STANDARD.encode(raw));
    };
    for edit in [body, path] {
        let b = Bundle::parse(&edited(V03, edit)).unwrap();
        assert!(matches!(
            b.tlog_entries[0].verify_inclusion(logs()),
            Err(BundleError::InclusionProof(_))
        ));
    }
    // A checkpoint for another tree, and one whose signature is changed.
    let other_tree = edited(V03, |v| {
        let c = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
        *c = Value::String(
            c.as_str()
                .unwrap()
                .replace("\n1139201557\n", "\n1139201558\n"),
        );
    });
    let b = Bundle::parse(&other_tree).unwrap();
    let err = b.tlog_entries[0].verify_inclusion(logs()).unwrap_err();
    assert!(
        matches!(&err, BundleError::Checkpoint(m) if m.contains("size 1139201558")),
        "{err}"
    );
    let bad_sig = edited(V03, |v| {
        let c = &mut v["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
        *c = Value::String(c.as_str().unwrap().replace("BPClICIHaNm", "BPClICIHaNn"));
    });
    let b = Bundle::parse(&bad_sig).unwrap();
    let err = b.tlog_entries[0].verify_inclusion(logs()).unwrap_err();
    assert!(
        matches!(&err, BundleError::Checkpoint(m) if m.contains("does not verify")),
        "{err}"
    );
    // Without the log's key the checkpoint cannot be checked.
    let b = Bundle::parse(V03).unwrap();
    assert!(matches!(
        b.tlog_entries[0].verify_inclusion(&[]),
        Err(BundleError::UnknownLog(_))
    ));
}

#[test]
fn media_types_and_missing_parts_are_refused() {
    let other = edited(V03, |v| {
        v["mediaType"] = Value::String("application/json".into())
    });
    assert!(matches!(
        Bundle::parse(&other),
        Err(BundleError::MediaType(m)) if m == "application/json"
    ));
    let v01 = edited(V03, |v| {
        v["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.1".into();
    });
    assert_eq!(Bundle::parse(&v01).unwrap().version, BundleVersion::V01);
    let no_proof = edited(V03, |v| {
        v["verificationMaterial"]["tlogEntries"][0]
            .as_object_mut()
            .unwrap()
            .remove("inclusionProof");
    });
    assert!(matches!(
        Bundle::parse(&no_proof),
        Err(BundleError::Malformed(m)) if m.contains("no inclusion proof")
    ));
    let no_content = edited(V03, |v| {
        v.as_object_mut().unwrap().remove("dsseEnvelope");
    });
    assert!(matches!(
        Bundle::parse(&no_content),
        Err(BundleError::Malformed(_))
    ));
    let key = edited(V03, |v| {
        v["verificationMaterial"] = serde_json::json!({"publicKey": {"hint": "abc"}});
    });
    assert_eq!(
        Bundle::parse(&key).unwrap().material,
        Material::PublicKey { hint: "abc".into() }
    );
    assert!(Bundle::parse(b"[]").is_err());
}

#[test]
fn merkle_paths_follow_rfc_9162() {
    // A tree of three leaves: root = H(H(l0, l1), l2).
    let leaf = |b: u8| sha256(&[0, b]);
    let (l0, l1, l2) = (leaf(0), leaf(1), leaf(2));
    let root = node_hash(&node_hash(&l0, &l1), &l2);
    assert_eq!(
        merkle_root_from_proof(2, 3, l2, &[node_hash(&l0, &l1).to_vec()]).unwrap(),
        root
    );
    assert_eq!(
        merkle_root_from_proof(0, 3, l0, &[l1.to_vec(), l2.to_vec()]).unwrap(),
        root
    );
    assert!(merkle_root_from_proof(3, 3, l0, &[]).is_err());
    assert!(merkle_root_from_proof(0, 3, l0, &[l1.to_vec()]).is_err());
}
