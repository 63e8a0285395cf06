//! DSSE and in-toto: the spec's vector, cosign's real attestation bundle, envelopes made here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use serde_json::{Value, json};

use super::*;
use crate::cosign::verify_attestation_bundle;
use crate::crypto::chain::cert_info;
use crate::sigstore::rekor::RekorError;
use crate::sigstore::trust::TrustedRoot;
use crate::timestamp::unix_time;

/// sigstore/cosign `pkg/cosign/testdata/oci-attestation.sigstore.json`: a v0.3 bundle holding a
/// DSSE attestation signed keyless, with its dsse tlog entry.
const COSIGN_ATTESTATION_BUNDLE: &str =
    include_str!("../../testdata/sigstore/oci-attestation.sigstore.json");

/// A big-endian byte string of the decimal `text`, `len` bytes long.
fn decimal_bytes(text: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for d in text.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in out.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "{text} does not fit in {len} bytes");
    }
    out
}

/// ASN.1 DER `SEQUENCE { INTEGER r, INTEGER s }` of a raw `r ‖ s` P-256 signature.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let int = |b: &[u8]| {
        let mut b: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        if b.first().is_some_and(|x| x & 0x80 != 0) {
            b.insert(0, 0);
        }
        [vec![0x02, b.len() as u8], b].concat()
    };
    let body = [int(&raw[..32]), int(&raw[32..])].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

#[test]
fn pae_is_the_dsse_spec_vector() {
    let encoded = pae("http://example.com/HelloWorld", b"hello world");
    assert_eq!(
        encoded,
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    // Lengths are byte lengths, in decimal, with nothing but spaces around them.
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    assert_eq!(
        pae("é", b"\x00\x01"),
        b"DSSEv1 2 \xc3\xa9 2 \x00\x01".to_vec()
    );
    assert_eq!(
        pae(IN_TOTO_PAYLOAD_TYPE, b"{}"),
        b"DSSEv1 28 application/vnd.in-toto+json 2 {}".to_vec()
    );
}

#[test]
fn the_dsse_spec_envelope_verifies_with_its_key() {
    // protocol.md's test vector: ECDSA P-256 (X, Y), signature as raw r ‖ s.
    let x = decimal_bytes(
        "46950820868899156662930047687818585632848591499744589407958293238635476079160",
        32,
    );
    let y = decimal_bytes(
        "5640078356564379163099075877009565129882514886557779369047442380624545832820",
        32,
    );
    let spki_prefix: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    let key = PublicKey::from_spki_der(&[spki_prefix, &x, &y].concat()).unwrap();
    let spec = br#"{"payload": "aGVsbG8gd29ybGQ=",
 "payloadType": "http://example.com/HelloWorld",
 "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}"#;
    let mut envelope = Envelope::parse(spec).unwrap();
    assert_eq!(envelope.payload, b"hello world");
    assert_eq!(envelope.signatures[0].keyid, "");
    // sealgate verifies DER signatures, as cosign writes them.
    envelope.signatures[0].sig = der_signature(&envelope.signatures[0].sig);
    assert_eq!(
        envelope.verify(&key, SignatureHash::Sha256).unwrap(),
        Some(0)
    );
    // The signature is over the PAE, not the payload: another type breaks it.
    envelope.payload_type = "http://example.com/HelloWorld2".into();
    assert_eq!(envelope.verify(&key, SignatureHash::Sha256).unwrap(), None);
}

/// cosign's attestation bundle: the envelope (bytes as cosign would store them in a layer), the
/// leaf certificate's DER and the legacy Rekor bundle cosign builds from its tlog entry.
fn cosign_attestation() -> (Vec<u8>, Vec<u8>, String) {
    let bundle: Value = serde_json::from_str(COSIGN_ATTESTATION_BUNDLE).unwrap();
    let envelope = serde_json::to_vec(&bundle["dsseEnvelope"]).unwrap();
    let cert = STANDARD
        .decode(
            bundle["verificationMaterial"]["certificate"]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let log_id = STANDARD
        .decode(entry["logId"]["keyId"].as_str().unwrap())
        .unwrap();
    // cosign's RekorBundleFromProtoTlogEntry.
    let legacy = json!({
        "SignedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
        "Payload": {
            "body": entry["canonicalizedBody"],
            "integratedTime": entry["integratedTime"].as_str().unwrap().parse::<i64>().unwrap(),
            "logIndex": entry["logIndex"].as_str().unwrap().parse::<i64>().unwrap(),
            "logID": crate::image::digest::hex_encode(&log_id),
        }
    });
    (envelope, cert, legacy.to_string())
}

#[test]
fn cosign_real_attestation_envelope_verifies_with_its_certificate_key() {
    let (bytes, cert, _) = cosign_attestation();
    let envelope = Envelope::parse(&bytes).unwrap();
    assert_eq!(envelope.payload_type, IN_TOTO_PAYLOAD_TYPE);
    let key = cert_info(&cert).unwrap().public_key;
    assert_eq!(
        envelope.verify(&key, SignatureHash::Sha256).unwrap(),
        Some(0)
    );
    let statement = Statement::parse(&envelope.payload).unwrap();
    assert_eq!(statement.statement_type, IN_TOTO_STATEMENT_V01);
    assert_eq!(statement.predicate_type, COSIGN_CUSTOM_PREDICATE);
    assert_eq!(statement.value["type"], json!(COSIGN_CUSTOM_PREDICATE));
    // cosign's custom predicate keeps the file as text (Kyverno reads it so too).
    assert_eq!(statement.predicate["Data"], json!("{\"foo\": \"bar\"}\n"));
    let digest: Digest = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
        .parse()
        .unwrap();
    let subject = statement.subject_for(&digest).unwrap();
    assert_eq!(subject.name.as_deref(), Some("127.0.0.1:60943/repo"));
    let other = Digest::sha256_of(b"another image");
    assert!(statement.subject_for(&other).is_none());

    // One byte of the statement changed: the signature no longer holds.
    let mut tampered = envelope.clone();
    let at = tampered.payload.len() / 2;
    tampered.payload[at] ^= 1;
    assert_eq!(tampered.verify(&key, SignatureHash::Sha256).unwrap(), None);
    // Another key does not verify it.
    let rng = SystemRandom::new();
    let stranger = SigningKey::generate(&rng).unwrap();
    assert_eq!(
        envelope
            .verify(stranger.public_key(), SignatureHash::Sha256)
            .unwrap(),
        None
    );
}

#[test]
fn cosign_real_attestation_tlog_entry_verifies_offline() {
    let (bytes, cert, legacy) = cosign_attestation();
    let envelope = Envelope::parse(&bytes).unwrap();
    let logs = &TrustedRoot::public_good().tlogs;
    let proof = verify_attestation_bundle(&legacy, &bytes, &envelope, &[&cert], logs).unwrap();
    assert_eq!(proof.integrated_time, unix_time(1_740_770_291));
    assert_eq!(proof.log_index, 175_508_996);

    // The entry is about this statement, this signature and this certificate only.
    let mut other = envelope.clone();
    other.payload = b"{}".to_vec();
    assert!(matches!(
        verify_attestation_bundle(&legacy, &bytes, &other, &[&cert], logs),
        Err(RekorError::BodyMismatch(_))
    ));
    let rng = SystemRandom::new();
    let stranger = SigningKey::generate(&rng).unwrap();
    assert!(matches!(
        verify_attestation_bundle(
            &legacy,
            &bytes,
            &envelope,
            &[stranger.public_key().spki_der()],
            logs
        ),
        Err(RekorError::BodyMismatch(_))
    ));
    // A SET changed by one byte does not verify.
    let mut set: Value = serde_json::from_str(&legacy).unwrap();
    let mut raw = STANDARD
        .decode(set["SignedEntryTimestamp"].as_str().unwrap())
        .unwrap();
    raw[10] ^= 1;
    set["SignedEntryTimestamp"] = json!(STANDARD.encode(raw));
    assert!(matches!(
        verify_attestation_bundle(&set.to_string(), &bytes, &envelope, &[&cert], logs),
        Err(RekorError::BadSet(_))
    ));
}

#[test]
fn envelopes_made_here_verify_and_are_written_as_cosign_v3_writes_them() {
    let rng = SystemRandom::new();
    let key = SigningKey::generate(&rng).unwrap();
    let envelope = Envelope::sign(&key, &rng, IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}").unwrap();
    let json = envelope.to_json();
    let text = String::from_utf8(json.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"payload":"eyJhIjoxfQ==","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":""#),
        "{text}"
    );
    let back = Envelope::parse(&json).unwrap();
    assert_eq!(back, envelope);
    assert_eq!(
        back.verify(key.public_key(), SignatureHash::Sha256)
            .unwrap(),
        Some(0)
    );
    // URL-safe base64 without padding is DSSE too.
    let url = format!(
        r#"{{"payloadType":"x","payload":"{}","signatures":[{{"keyid":"k","sig":"AA"}}]}}"#,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff])
    );
    let parsed = Envelope::parse(url.as_bytes()).unwrap();
    assert_eq!(parsed.payload, vec![0xfb, 0xff]);
    assert_eq!(parsed.signatures[0].keyid, "k");
    assert!(matches!(
        Envelope::parse(br#"{"payloadType":"x","payload":"e30=","signatures":[]}"#),
        Err(EnvelopeError::Unsigned)
    ));
    assert!(matches!(
        Envelope::parse(b"{\"critical\":{}}"),
        Err(EnvelopeError::Malformed(_))
    ));
}

#[test]
fn statements_are_made_as_cosign_attest_makes_them() {
    let digest = Digest::sha256_of(b"image");
    let custom = statement(
        "custom",
        b"hello!\n",
        "registry.example/app",
        &digest,
        "2021-10-05T05:18:11Z",
    )
    .unwrap();
    let parsed = Statement::parse(&custom).unwrap();
    assert_eq!(parsed.predicate_type, COSIGN_CUSTOM_PREDICATE);
    assert_eq!(
        parsed.predicate,
        json!({"Data": "hello!\n", "Timestamp": "2021-10-05T05:18:11Z"})
    );
    assert!(parsed.subject_for(&digest).is_some());
    assert_eq!(
        parsed.subjects[0].name.as_deref(),
        Some("registry.example/app")
    );

    let slsa = statement(
        "slsaprovenance",
        br#"{"builder":{"id":"https://ci.example/b"}}"#,
        "r/a",
        &digest,
        "",
    )
    .unwrap();
    let parsed = Statement::parse(&slsa).unwrap();
    assert_eq!(parsed.predicate_type, "https://slsa.dev/provenance/v0.2");
    assert_eq!(
        parsed.predicate["builder"]["id"],
        json!("https://ci.example/b")
    );

    let uri = statement(
        "https://example.com/CodeReview/v1",
        br#"{"repo":{"branch":"main"}}"#,
        "r/a",
        &digest,
        "",
    )
    .unwrap();
    assert_eq!(
        Statement::parse(&uri).unwrap().predicate_type,
        "https://example.com/CodeReview/v1"
    );
    let spdx = statement("spdx", b"SPDXVersion: SPDX-2.2\n", "r/a", &digest, "").unwrap();
    assert_eq!(
        Statement::parse(&spdx).unwrap().predicate,
        json!("SPDXVersion: SPDX-2.2\n")
    );
    assert!(matches!(
        statement("cyclonedx", b"[1]", "r/a", &digest, ""),
        Err(PredicateError::NotAnObject { .. })
    ));
    assert!(matches!(
        statement("provenance", b"{}", "r/a", &digest, ""),
        Err(PredicateError::UnknownType(_))
    ));
}

#[test]
fn predicate_type_names_are_cosigns() {
    for (name, uri) in [
        ("custom", "https://cosign.sigstore.dev/attestation/v1"),
        ("slsaprovenance", "https://slsa.dev/provenance/v0.2"),
        ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
        ("link", "https://in-toto.io/Link/v1"),
        ("spdx", "https://spdx.dev/Document"),
        ("spdxjson", "https://spdx.dev/Document"),
        ("cyclonedx", "https://cyclonedx.org/bom"),
        ("vuln", "https://cosign.sigstore.dev/attestation/vuln/v1"),
        ("openvex", "https://openvex.dev/ns"),
        ("https://example.com/x/v1", "https://example.com/x/v1"),
        ("urn:example:x", "urn:example:x"),
    ] {
        assert_eq!(predicate_type_uri(name).unwrap(), uri, "{name}");
    }
    for bad in ["", "sbom", "slsa provenance", "1http://x"] {
        assert!(predicate_type_uri(bad).is_err(), "{bad}");
    }
}

#[test]
fn statements_that_are_not_in_toto_are_refused() {
    assert!(matches!(
        Statement::parse(b"[]"),
        Err(StatementError::NotJson(_))
    ));
    assert!(matches!(
        Statement::parse(br#"{"subject":[]}"#),
        Err(StatementError::Missing("predicateType"))
    ));
    assert!(matches!(
        Statement::parse(br#"{"predicateType":"x"}"#),
        Err(StatementError::Missing(_))
    ));
    assert!(matches!(
        Statement::parse(br#"{"predicateType":"x","subject":[{"name":"a"}]}"#),
        Err(StatementError::BadSubject(1))
    ));
}
