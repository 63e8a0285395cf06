//! The real RFC 3161 timestamp of sigstore-rs's kubewarden v0.3 bundle (by the public-good
//! sigstore TSA) verified against the fixture trusted root, and copies with one thing changed,
//! each failing with its own reason.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::*;
use crate::sigstore::bundle::{
    Bundle, BundleError, TimestampCheck, TimestampRefusal, judge_timestamps,
};
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::parse_rfc3339;

const V03: &[u8] = include_bytes!("../../testdata/sigstore/bundle_v03.json");
const ROOT: &[u8] = include_bytes!("../../testdata/sigstore/sigstore_trusted_root.json");
const TSA: &str = "https://timestamp.sigstore.dev/api/v1/timestamp";
/// The timestamp's genTime (the same second as the log entry's integratedTime).
const GEN_TIME: &str = "2026-04-09T07:23:29Z";

fn root() -> TrustedRoot {
    TrustedRoot::from_json(ROOT).unwrap()
}

fn bundle() -> Bundle {
    Bundle::parse(V03).unwrap()
}

/// The bundle's timestamp response, DER.
fn timestamp_der() -> Vec<u8> {
    let v: Value = serde_json::from_slice(V03).unwrap();
    let b64 = v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
        ["signedTimestamp"]
        .as_str()
        .unwrap();
    STANDARD.decode(b64).unwrap()
}

/// The bundle with its timestamp replaced by `der`.
fn with_timestamp(der: &[u8]) -> Result<Bundle, BundleError> {
    let mut v: Value = serde_json::from_slice(V03).unwrap();
    v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"] =
        Value::String(STANDARD.encode(der));
    Bundle::parse(&serde_json::to_vec(&v).unwrap())
}

/// Where `needle` starts in `haystack` (once).
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    let at: Vec<usize> = haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "{needle:02x?} found {} times", at.len());
    at[0]
}

fn flipped(mut der: Vec<u8>, index: usize) -> Vec<u8> {
    der[index] ^= 0x01;
    der
}

/// The one authority's refusal of a timestamp.
fn refusal(e: TimestampError) -> AuthorityRefusal {
    match e {
        TimestampError::Unverified(mut list) if list.len() == 1 => list.remove(0).1,
        other => panic!("not one authority's refusal: {other}"),
    }
}

fn verify(b: &Bundle, root: &TrustedRoot) -> Result<VerifiedTimestamp, TimestampError> {
    b.rfc3161_timestamps[0].verify(b.signature_bytes(), &root.timestamp_authorities)
}

#[test]
fn the_real_timestamp_is_read() {
    let b = bundle();
    let ts = &b.rfc3161_timestamps[0];
    assert_eq!(ts.imprint_hash, TimestampHash::Sha256);
    assert_eq!(
        hex_encode(&ts.imprint),
        "4bcce1de3c36ddcc98d54938bdb5acdaf8ed4e81703b9181b98491808584a03f"
    );
    assert_eq!(Some(ts.gen_time), parse_rfc3339(GEN_TIME));
    assert_eq!(ts.gen_time, b.tlog_entries[0].integrated_time);
    assert_eq!(ts.serial.len(), 21);
    assert_eq!(ts.nonce, None);
    assert!(ts.tsa_name.is_some());
    // The token carries no certificate: the signer is the trusted root's TSA leaf.
    assert!(ts.certificates.is_empty());
    assert!(matches!(&ts.signer, SignerId::IssuerSerial { serial, .. } if serial.len() == 20));
    assert_eq!(ts.der, timestamp_der());
}

#[test]
fn the_real_timestamp_verifies_with_the_fixture_root_and_gives_its_gen_time() {
    let b = bundle();
    let v = verify(&b, &root()).unwrap();
    assert_eq!(v.uri, TSA);
    assert_eq!(Some(unix_seconds(v.time)), parse_rfc3339(GEN_TIME));
    // And with the embedded public-good root.
    assert_eq!(verify(&b, TrustedRoot::public_good()).unwrap(), v);
    let check = b.verify_timestamps(&root().timestamp_authorities);
    assert_eq!(check.verified, vec![(0, v)]);
    assert!(check.refused.is_empty());
}

#[test]
fn a_changed_tst_info_byte_breaks_the_message_digest() {
    // A byte of the TSTInfo's serialNumber: it still parses, its hash is not the signed one.
    let der = timestamp_der();
    let at = find(&der, &[0x02, 0x15, 0x00, 0xdb, 0x3e]) + 6;
    let b = with_timestamp(&flipped(der, at)).unwrap();
    let e = refusal(verify(&b, &root()).unwrap_err());
    assert!(
        matches!(e, AuthorityRefusal::ContentDigest { hash: "sha256", .. }),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(
            "the messageDigest attribute f9e3cc1594d7cbb3847b54a80d837429ba8dcfedf3ac25be450184c61767163e is not the sha256 of the TSTInfo"
        ),
        "{e}"
    );
}

#[test]
fn a_changed_cms_signature_byte_does_not_verify() {
    // Three bytes from the end: inside the ECDSA signature's s.
    let der = timestamp_der();
    let len = der.len();
    let b = with_timestamp(&flipped(der, len - 3)).unwrap();
    let e = verify(&b, &root()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "is not verified by any timestamp authority of the trusted root: {TSA}: the signature over the signed attributes does not verify with the key of 'O=sigstore.dev, CN=sigstore-tsa'"
        )
    );
    assert!(matches!(refusal(e), AuthorityRefusal::Signature(_)));
    // A changed signed attribute (the signingTime) is the same refusal.
    let der = timestamp_der();
    let at = find(&der, b"\x17\x0d260409072329Z") + 12;
    let b = with_timestamp(&flipped(der, at)).unwrap();
    assert!(matches!(
        refusal(verify(&b, &root()).unwrap_err()),
        AuthorityRefusal::Signature(_)
    ));
}

#[test]
fn a_changed_message_imprint_is_not_over_the_bundle_signature() {
    let der = timestamp_der();
    let at = find(&der, &[0x04, 0x20, 0x4b, 0xcc, 0xe1, 0xde]) + 2;
    let b = with_timestamp(&flipped(der, at)).unwrap();
    let e = verify(&b, &root()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "covers sha256 4acce1de3c36ddcc98d54938bdb5acdaf8ed4e81703b9181b98491808584a03f, not the bundle's signature (sha256 4bcce1de3c36ddcc98d54938bdb5acdaf8ed4e81703b9181b98491808584a03f)"
    );
    // The real timestamp over other signature bytes: the same refusal.
    let ts = &bundle().rfc3161_timestamps[0];
    assert!(matches!(
        ts.verify(b"other", &root().timestamp_authorities),
        Err(TimestampError::Imprint { .. })
    ));
}

#[test]
fn a_timestamp_that_is_not_der_makes_the_bundle_unreadable() {
    // The outer SEQUENCE tag 0x30 to 0x31, as the cross-check with sigstore-python changes it.
    let e = with_timestamp(&flipped(timestamp_der(), 0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the bundle's rfc3161 timestamp 0 is not a valid DER timestamp response: the TimeStampResp has tag 0x31, not 0x30"
    );
    assert!(matches!(
        e,
        BundleError::Timestamp {
            index: 0,
            error: TimestampError::Malformed(_)
        }
    ));
    // Truncated, with bytes after it, not base64, empty, a refused status.
    let der = timestamp_der();
    let reason = |der: &[u8]| match with_timestamp(der) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{} bytes read as a timestamp", der.len()),
    };
    assert!(
        reason(&der[..der.len() - 1]).ends_with("the TimeStampResp is truncated or not DER"),
        "{}",
        reason(&der[..der.len() - 1])
    );
    let mut longer = der.clone();
    longer.push(0);
    assert!(reason(&longer).ends_with("1 bytes follow the TimeStampResp"));
    assert!(reason(&[]).ends_with("the TimeStampResp is truncated or not DER"));
    let mut refused = der.clone();
    refused[8] = 2; // the PKIStatus value: rejection
    assert_eq!(
        reason(&refused),
        "the bundle's rfc3161 timestamp 0 is a refused timestamp response (status 2)"
    );
    let mut v: Value = serde_json::from_slice(V03).unwrap();
    v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"] =
        Value::String("not base64!".into());
    assert_eq!(
        Bundle::parse(&serde_json::to_vec(&v).unwrap())
            .unwrap_err()
            .to_string(),
        "the bundle's rfc3161 timestamp 0 is not a valid DER timestamp response: signedTimestamp is not base64"
    );
    // Every prefix and every single-byte change: an error or a timestamp, never a panic.
    for i in 0..der.len() {
        let _ = SignedTimestamp::parse(&der[..i]);
        let _ = SignedTimestamp::parse(&flipped(der.clone(), i));
    }
}

#[test]
fn too_many_or_oversized_timestamps_are_refused() {
    let mut v: Value = serde_json::from_slice(V03).unwrap();
    let one =
        v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0].clone();
    v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
        Value::Array(vec![one; MAX_TIMESTAMPS + 1]);
    let e = Bundle::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the Sigstore bundle is malformed: 33 rfc3161 timestamps is over the limit of 32"
    );
    let big = vec![0x30; MAX_TIMESTAMP_BYTES + 1];
    assert!(
        SignedTimestamp::parse(&big)
            .unwrap_err()
            .to_string()
            .contains("over the 65536-byte limit")
    );
}

#[test]
fn a_root_without_that_tsa_does_not_verify_it() {
    let b = bundle();
    let mut root = root();
    root.timestamp_authorities.clear();
    assert_eq!(
        verify(&b, &root).unwrap_err().to_string(),
        "cannot be verified: the trusted root has no timestamp authorities"
    );
    // Another authority: Fulcio's chain under the TSA's name.
    let fulcio = root.certificate_authorities[1].clone();
    root.timestamp_authorities.push(TimestampAuthority {
        uri: "https://other.example/tsa".into(),
        chain: fulcio.chain,
        valid_from: None,
        valid_until: None,
    });
    let e = verify(&b, &root).unwrap_err();
    let reason = refusal(e.clone());
    assert!(
        matches!(
            reason,
            AuthorityRefusal::NoSigner | AuthorityRefusal::SignerNotFound
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with(
        "is not verified by any timestamp authority of the trusted root: https://other.example/tsa: "
    ));
    // The TSA's root alone (no leaf): the token carries no certificate to check.
    let mut root_only = self::root();
    let tsa = &mut root_only.timestamp_authorities[0];
    tsa.chain.remove(0);
    assert_eq!(
        refusal(verify(&b, &root_only).unwrap_err()),
        AuthorityRefusal::NoSigner
    );
}

#[test]
fn a_gen_time_outside_valid_for_is_refused() {
    let b = bundle();
    let at_gen = parse_rfc3339(GEN_TIME).unwrap();
    for (from, until) in [(Some(at_gen + 1), None), (None, Some(at_gen - 1))] {
        let mut root = root();
        let tsa = &mut root.timestamp_authorities[0];
        tsa.valid_from = from.map(unix_time);
        tsa.valid_until = until.map(unix_time);
        let e = refusal(verify(&b, &root).unwrap_err());
        assert!(matches!(e, AuthorityRefusal::OutsideValidity { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("genTime 2026-04-09T07:23:29Z is outside the authority's validFor"),
            "{e}"
        );
    }
    // The edges are inside.
    let mut root = root();
    root.timestamp_authorities[0].valid_from = Some(unix_time(at_gen));
    root.timestamp_authorities[0].valid_until = Some(unix_time(at_gen));
    verify(&b, &root).unwrap();
}

#[test]
fn a_second_timestamp_by_the_same_authority_counts_once() {
    let mut v: Value = serde_json::from_slice(V03).unwrap();
    let one =
        v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0].clone();
    v["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
        Value::Array(vec![one.clone(), one]);
    let b = Bundle::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
    let check = b.verify_timestamps(&root().timestamp_authorities);
    assert_eq!(check.verified.len(), 1);
    assert_eq!(
        check.refused,
        vec![(1, TimestampError::DuplicateAuthority(TSA.into()))]
    );
}

#[test]
fn failed_timestamps_are_dropped_when_the_log_gives_a_time_and_refuse_otherwise() {
    let der = timestamp_der();
    let len = der.len();
    let b = with_timestamp(&flipped(der, len - 3)).unwrap();
    let check = b.verify_timestamps(&root().timestamp_authorities);
    assert!(check.verified.is_empty());
    assert_eq!(check.refused.len(), 1);
    // The log entry's time stands: the timestamp is dropped (sigstore-go's VerifySignedTimestamp).
    judge_timestamps(&check, true, None).unwrap();
    // Nothing else gives a time: its failure is the refusal.
    let e = judge_timestamps(&check, false, None).unwrap_err();
    assert!(matches!(e, TimestampRefusal::Unverified { index: 0, .. }));
    assert!(
        e.to_string().starts_with(
            "its rfc3161 timestamp 0 is not verified by any timestamp authority of the trusted root: "
        ),
        "{e}"
    );
    // No timestamps: nothing to judge.
    judge_timestamps(&TimestampCheck::default(), false, None).unwrap();
}

#[test]
fn the_signing_certificate_must_be_valid_at_a_verified_timestamp() {
    let b = bundle();
    let check = b.verify_timestamps(&root().timestamp_authorities);
    let at_gen = parse_rfc3339(GEN_TIME).unwrap();
    let cert = crate::crypto::chain::cert_info(b.material.leaf().unwrap()).unwrap();
    judge_timestamps(&check, true, Some((cert.not_before, cert.not_after))).unwrap();
    let e = judge_timestamps(
        &check,
        true,
        Some((unix_time(at_gen + 1), unix_time(at_gen + 600))),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the signing certificate was not valid at the time of its rfc3161 timestamp 0 ({GEN_TIME} by {TSA}; valid 2026-04-09T07:23:30Z to 2026-04-09T07:33:29Z)"
        )
    );
}
