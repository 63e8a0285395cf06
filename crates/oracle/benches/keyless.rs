//! sigstore-rs' in-process check of the same real keyless signature that
//! `cargo bench -p sealgate-core --bench keyless` measures (the connaisseur `.sig` in
//! `crates/core/testdata/connaisseur/`: Fulcio leaf, chain, Rekor bundle), for a side-by-side
//! comparison:
//!
//! - `sigstore/keyless/trusted_layers`: sigstore-rs' public cosign path, as
//!   [`sealgate_oracle::verify_keyless`] uses it: `trusted_signature_layers` with the public-good
//!   Fulcio certificates and Rekor keys (per layer: digest, simple-signing JSON, the Rekor SET, the
//!   Fulcio chain with webpki + aws-lc-rs, the validity at the integrated time, the identity
//!   extensions), then `verify_constraints` with a `CertSubjectEmailVerifier`. sigstore-rs'
//!   crate-private layer checks can only be reached through its registry client, so the client
//!   talks to a loopback plain-HTTP registry in this process with sigstore-rs' own in-memory
//!   registry cache on (`enable_registry_caching`, entries kept 60 s): after the warm-up no
//!   request leaves the process, and what is left of the fetch is cloning the cached manifest and
//!   blobs, which `sigstore/keyless/untrusted_layers` measures.
//! - `sigstore/keyless/untrusted_layers`: the same client with no trust material: sigstore-rs
//!   then skips the bundle and certificate (what remains is the cache, the async call, parsing).
//! - `sigstore/keyless/payload_signature`: the one check sigstore-rs' keyless constraint does not
//!   make and sealgate does: the payload signature by the certificate's key
//!   (`CosignVerificationKey::verify_signature`, aws-lc-rs). sigstore-rs' cosign path does not
//!   check the embedded SCT either.
//! - `webpki/fulcio_chain/aws_lc_rs`: rustls-webpki 0.103 validating the Fulcio chain (leaf →
//!   intermediate → root, code signing, at the Rekor time) with aws-lc-rs, as sealgate's
//!   `keyless/chain/uncached` does with ring: the only difference is the P-384 code.
//!   `oracle/p384_sha384/{ring,aws_lc_rs}`: one bare P-384 verification (the intermediate's
//!   signature over the leaf) with each.
//!
//! This crate's rustls-webpki has only the aws-lc-rs provider on purpose: with ring also on (as
//! in a `cargo test --workspace` build), webpki's `ALL_VERIFICATION_ALGS`, which sigstore-rs checks
//! chains with, lists ring's algorithms first, and sigstore-rs would measure ring's P-384.
//!
//! Run with `cargo bench -p sealgate-oracle --bench keyless`.

// A benchmark: a broken fixture should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, criterion_group, criterion_main};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use sigstore::cosign::verification_constraint::cert_subject_email_verifier::StringVerifier;
use sigstore::cosign::verification_constraint::{
    CertSubjectEmailVerifier, VerificationConstraintVec,
};
use sigstore::cosign::{ClientBuilder, CosignCapabilities, SignatureLayer};
use sigstore::crypto::Signature;
use sigstore::registry::{Auth, ClientConfig, ClientProtocol, OciReference};
use x509_parser::prelude::{FromDer, X509Certificate};

const SIG_MANIFEST: &[u8] = include_bytes!("../../core/testdata/connaisseur/sig-manifest.json");
const PAYLOAD: &[u8] = include_bytes!("../../core/testdata/connaisseur/payload.json");
const TRUSTED_ROOT: &[u8] = include_bytes!("../../core/trust/public-good-trusted-root.json");
/// The digest the connaisseur payload signs.
const DIGEST: &str = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
const EMAIL: &str = "philipp.belitz@securesystems.de";
const GITHUB: &str = "https://github.com/login/oauth";
/// The Rekor integrated time of the signature.
const SIGNED_AT: u64 = 1_717_082_297;
const CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plain-HTTP registry of `phbelitz/rekor-test` answering what sigstore-rs asks about the
/// connaisseur signature (as in `crates/cli/tests/cli/keyless.rs`): the `HEAD` of the image
/// manifest with the digest, the `.sig` manifest, its payload and config blobs; 404 otherwise.
fn shim_registry() -> SocketAddr {
    let manifest: serde_json::Value = serde_json::from_slice(SIG_MANIFEST).unwrap();
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    // The config cosign writes for one layer (the fixture lacks the blob; these are its bytes).
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}},"config":{{}}}}"#
    )
    .into_bytes();
    let sha256 = |b: &[u8]| format!("sha256:{}", sha256_hex(b));
    assert_eq!(
        sha256(&config),
        manifest["config"]["digest"].as_str().unwrap()
    );
    let mut routes: BTreeMap<String, (Vec<u8>, String, &'static str)> = BTreeMap::new();
    let repo = "/v2/phbelitz/rekor-test";
    let oci = "application/vnd.oci.image.manifest.v1+json";
    routes.insert(
        format!("{repo}/manifests/{DIGEST}"),
        (Vec::new(), DIGEST.to_string(), oci),
    );
    routes.insert(
        format!("{repo}/manifests/{}.sig", DIGEST.replace(':', "-")),
        (SIG_MANIFEST.to_vec(), sha256(SIG_MANIFEST), oci),
    );
    for blob in [PAYLOAD.to_vec(), config] {
        let d = sha256(&blob);
        routes.insert(
            format!("{repo}/blobs/{d}"),
            (blob, d, "application/octet-stream"),
        );
    }
    routes.insert(
        "/v2/".to_string(),
        (b"{}".to_vec(), String::new(), "application/json"),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            if reader.read_line(&mut first).is_err() {
                continue;
            }
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let mut parts = first.split_whitespace();
            let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let path = target.split('?').next().unwrap_or("");
            let (status, body, digest, media_type) = match routes.get(path) {
                Some((body, digest, media_type)) => {
                    ("200 OK", body.clone(), digest.clone(), *media_type)
                }
                None => (
                    "404 Not Found",
                    br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not here"}]}"#.to_vec(),
                    String::new(),
                    "application/json",
                ),
            };
            let mut head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {media_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            if !digest.is_empty() {
                head.push_str(&format!("Docker-Content-Digest: {digest}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
    });
    addr
}

/// The public-good Fulcio certificates (every one, as sigstore-rs' `ManualTrustRoot` takes them)
/// and Rekor keys by log ID.
fn public_good() -> sigstore::trust::ManualTrustRoot<'static> {
    let root: serde_json::Value = serde_json::from_slice(TRUSTED_ROOT).unwrap();
    let b64 = |v: &serde_json::Value| STANDARD.decode(v.as_str().unwrap()).unwrap();
    let mut fulcio_certs = Vec::new();
    for ca in root["certificateAuthorities"].as_array().unwrap() {
        for cert in ca["certChain"]["certificates"].as_array().unwrap() {
            fulcio_certs.push(CertificateDer::from(b64(&cert["rawBytes"])));
        }
    }
    let mut rekor_keys = BTreeMap::new();
    for log in root["tlogs"].as_array().unwrap() {
        let key = b64(&log["publicKey"]["rawBytes"]);
        rekor_keys.insert(sha256_hex(&key), key);
    }
    sigstore::trust::ManualTrustRoot {
        fulcio_certs,
        rekor_keys,
        ctfe_keys: BTreeMap::new(),
    }
}

/// The DER certificates of a PEM bundle.
fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    pem.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|block| {
            let body = block.split("-----END CERTIFICATE-----").next().unwrap();
            let b64: String = body.split_whitespace().collect();
            STANDARD.decode(b64).unwrap()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let shim = shim_registry();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    };
    let trust = public_good();
    let mut trusted = ClientBuilder::default()
        .with_oci_client_config(config.clone())
        .with_trust_repository(&trust)
        .unwrap()
        .enable_registry_caching()
        .build()
        .unwrap();
    let mut untrusted = ClientBuilder::default()
        .with_oci_client_config(config)
        .enable_registry_caching()
        .build()
        .unwrap();
    let image: OciReference = format!("{shim}/phbelitz/rekor-test@{DIGEST}")
        .parse()
        .unwrap();
    let constraints: VerificationConstraintVec = vec![Box::new(CertSubjectEmailVerifier {
        email: StringVerifier::ExactMatch(EMAIL.to_string()),
        issuer: Some(StringVerifier::ExactMatch(GITHUB.to_string())),
    })];
    let check = |client: &mut sigstore::cosign::Client| -> (Vec<SignatureLayer>, bool) {
        let layers = rt
            .block_on(client.trusted_signature_layers(&Auth::Anonymous, &image))
            .unwrap();
        let verified = sigstore::cosign::verify_constraints(&layers, constraints.iter()).is_ok();
        (layers, verified)
    };
    // Measure only what verifies: the trusted client accepts the certificate and the identity;
    // the untrusted one sees the layer and trusts nothing in it.
    let (layers, verified) = check(&mut trusted);
    assert!(verified && layers.len() == 1 && layers[0].bundle.is_some());
    let certificate = layers[0].certificate_signature.clone().unwrap();
    let (plain, verified) = check(&mut untrusted);
    assert!(!verified && plain.len() == 1 && plain[0].certificate_signature.is_none());

    c.bench_function("sigstore/keyless/trusted_layers", |b| {
        b.iter(|| {
            let (_, verified) = check(&mut trusted);
            assert!(verified);
        })
    });
    c.bench_function("sigstore/keyless/untrusted_layers", |b| {
        b.iter(|| check(&mut untrusted))
    });
    let signature = STANDARD
        .decode(layers[0].signature.as_deref().unwrap())
        .unwrap();
    assert!(
        certificate
            .verification_key
            .verify_signature(Signature::Raw(&signature), PAYLOAD)
            .is_ok()
    );
    c.bench_function("sigstore/keyless/payload_signature", |b| {
        b.iter(|| {
            certificate
                .verification_key
                .verify_signature(Signature::Raw(black_box(&signature)), PAYLOAD)
                .is_ok()
        })
    });

    // The Fulcio chain through webpki with each provider.
    let manifest: serde_json::Value = serde_json::from_slice(SIG_MANIFEST).unwrap();
    let annotations = &manifest["layers"][0]["annotations"];
    let leaf = pem_ders(
        annotations["dev.sigstore.cosign/certificate"]
            .as_str()
            .unwrap(),
    )
    .remove(0);
    let chain = pem_ders(annotations["dev.sigstore.cosign/chain"].as_str().unwrap());
    let (intermediate, root) = (CertificateDer::from(chain[0].clone()), &chain[1]);
    let root_der = CertificateDer::from(root.as_slice());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der).unwrap()];
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(SIGNED_AT));
    let intermediates = std::slice::from_ref(&intermediate);
    let algs: &[&dyn SignatureVerificationAlgorithm] = &[
        webpki::aws_lc_rs::ECDSA_P384_SHA384,
        webpki::aws_lc_rs::ECDSA_P256_SHA256,
    ];
    let verify = || {
        ee.verify_for_usage(
            algs,
            &anchors,
            intermediates,
            at,
            webpki::KeyUsage::required_if_present(CODE_SIGNING),
            None,
            None,
        )
        .map(|_| ())
    };
    verify().unwrap();
    c.bench_function("webpki/fulcio_chain/aws_lc_rs", |b| {
        b.iter(|| black_box(verify()))
    });

    // One P-384/SHA-384 verification: the intermediate's signature over the leaf.
    let (_, parsed) = X509Certificate::from_der(&leaf).unwrap();
    let tbs = parsed.tbs_certificate.as_ref().to_vec();
    let leaf_signature = parsed.signature_value.data.to_vec();
    let (_, issuer) = X509Certificate::from_der(&chain[0]).unwrap();
    let issuer_key = issuer
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec();
    webpki::aws_lc_rs::ECDSA_P384_SHA384
        .verify_signature(&issuer_key, &tbs, &leaf_signature)
        .unwrap();
    c.bench_function("oracle/p384_sha384/aws_lc_rs", |b| {
        b.iter(|| {
            webpki::aws_lc_rs::ECDSA_P384_SHA384.verify_signature(
                &issuer_key,
                black_box(&tbs),
                &leaf_signature,
            )
        })
    });
    let ring_key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_ASN1,
        &issuer_key,
    );
    ring_key.verify(&tbs, &leaf_signature).unwrap();
    c.bench_function("oracle/p384_sha384/ring", |b| {
        b.iter(|| ring_key.verify(black_box(&tbs), &leaf_signature))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
