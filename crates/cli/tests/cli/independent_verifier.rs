//! Our verdict on Sigstore bundles beside an independent verifier's (sigstore-python), on the
//! upstream fixtures and on copies with one byte changed.
//!
//! sigstore-python 4.5.1 (PyPI `sigstore`) is installed in a venv by
//! `scripts/install-sigstore-python` (`.ci/run` and `scripts/test` run it); the test finds its
//! CLI at `$SEALGATE_SIGSTORE_PYTHON` or the script's default venv, and fails when it is missing.
//!
//! For each of the two real keyless v0.3 bundles (kubewarden-controller's cosign v3 signature and
//! sigstore/cosign's attestation) the original and its tampered copies are pushed to the test
//! registry as OCI referrers of the digest they sign, and sealgate's verdict is that of
//! `sealgate verify` / `verify-attestation --offline --trusted-root` with the signer's identity,
//! as tests/cli/verify_bundle.rs runs them. sigstore-python's verdict, with a ClientTrustConfig
//! made here from the same trusted root, is taken twice:
//!
//! - its library's `Verifier.verify_dsse` with an `Identity` policy (the driver below, run by the
//!   venv's python): the certificate chain at the log's and TSA's times, the SCT, the identity,
//!   the inclusion proof and its checkpoint, the SET, the DSSE signature, the entry body's
//!   consistency. This is the verdict compared with sealgate's, case by case.
//! - its CLI, `sigstore verify identity --offline --bundle`: the same, then it parses the payload
//!   with its in-toto model and matches the subject's digest. That model rejects both real
//!   statements (see [`cli_in_toto_model`]), so the CLI refuses every case, originals included;
//!   the test asserts that too, and that a tampered copy is refused before the statement is read.
//!
//! The verdicts agree on every case, the RFC3161 timestamp's included: a timestamp that is no
//! longer DER is refused by both, one whose signature is broken is dropped by both beside the
//! log's verified time; see [`expected`]. The legacy keyless `.sig`, converted to a v0.1 bundle,
//! is one sigstore-python cannot verify offline (no inclusion proof); see the last test.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sealgate_core::Digest;
use sealgate_test_registry::TestRegistry;
use serde_json::{Value, json};

use crate::common::{Run, Workdir, image};
use crate::verify_bundle::{
    ACTIONS, CODY, COSIGN_IMAGE, GITHUB, KUBEWARDEN, TLS_AUTH, WORKFLOW, push_referrer, run,
    testdata,
};

/// The pinned version `scripts/install-sigstore-python` installs.
const SIGSTORE_PYTHON_VERSION: &str = "4.5.1";

/// sigstore-python's library verdict on one bundle: `OK <payloadType>` (`OK artifact`) and exit
/// 0, or `FAIL <error class>: <message>` and exit 1 for sigstore's own errors (what a verifier
/// rejects with); anything else (a broken driver, an import error) exits 3. A DSSE bundle goes to
/// `verify_dsse`; with a fifth argument, a file, a message-signature bundle and that file go to
/// `verify_artifact`.
const DRIVER: &str = r#"
import sys
from pathlib import Path

from sigstore.errors import Error
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier, policy

trust_config, bundle, identity, issuer = sys.argv[1:5]
artifact = sys.argv[5] if len(sys.argv) > 5 else None
try:
    config = ClientTrustConfig.from_json(Path(trust_config).read_text())
    verifier = Verifier(trusted_root=config.trusted_root)
    parsed = Bundle.from_json(Path(bundle).read_bytes())
    identity_policy = policy.Identity(identity=identity, issuer=issuer)
    if artifact is None:
        payload_type, _ = verifier.verify_dsse(parsed, identity_policy)
    else:
        verifier.verify_artifact(Path(artifact).read_bytes(), parsed, identity_policy)
        payload_type = "artifact"
except Error as e:
    print(f"FAIL {type(e).__name__}: {e}")
    sys.exit(1)
except Exception as e:
    print(f"DRIVER ERROR {type(e).__name__}: {e}")
    sys.exit(3)
print(f"OK {payload_type}")
"#;

/// sigstore-python's CLI: `$SEALGATE_SIGSTORE_PYTHON`, or where the install script puts it.
fn sigstore_cli() -> PathBuf {
    let path = match std::env::var_os("SEALGATE_SIGSTORE_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => {
            let venv = std::env::var_os("SEALGATE_SIGSTORE_PYTHON_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".cache/sealgate")
                        .join(format!("sigstore-python-{SIGSTORE_PYTHON_VERSION}"))
                });
            venv.join("bin/sigstore")
        }
    };
    assert!(
        path.is_file(),
        "sigstore-python's CLI is not at {} ($SEALGATE_SIGSTORE_PYTHON or the default venv): run scripts/install-sigstore-python",
        path.display()
    );
    let version = Command::new(&path).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("sigstore {SIGSTORE_PYTHON_VERSION}"),
        "{}: not the pinned sigstore-python; run scripts/install-sigstore-python",
        path.display()
    );
    path
}

/// A bundle and the signature it carries.
struct Fixture {
    /// Names the cases, and the test registry's repositories.
    name: &'static str,
    file: &'static str,
    /// The digest the bundle signs (its in-toto subject).
    digest: &'static str,
    identity: &'static str,
    issuer: &'static str,
    /// `verify` for a signature, `verify-attestation` for an attestation.
    command: &'static str,
}

const KUBEWARDEN_SIGNATURE: Fixture = Fixture {
    name: "kubewarden",
    file: "bundle_v03.json",
    digest: KUBEWARDEN,
    identity: WORKFLOW,
    issuer: ACTIONS,
    command: "verify",
};

const COSIGN_ATTESTATION: Fixture = Fixture {
    name: "cosign",
    file: "oci-attestation.sigstore.json",
    digest: COSIGN_IMAGE,
    identity: CODY,
    issuer: GITHUB,
    command: "verify-attestation",
};

/// The base64 field `value` with the byte at `index` (its decoded bytes; the middle when `None`)
/// changed, encoded again: a changed base64 character could leave the bytes as they were (the
/// padding bits of the last one), a changed byte cannot.
fn flip_base64(value: &mut Value, index: Option<usize>) {
    let mut bytes = STANDARD
        .decode(value.as_str().expect("a base64 string"))
        .unwrap();
    let i = index.unwrap_or(bytes.len() / 2);
    bytes[i] ^= 0x01;
    *value = json!(STANDARD.encode(bytes));
}

/// The one tlog entry of a bundle.
fn entry(bundle: &mut Value) -> &mut Value {
    &mut bundle["verificationMaterial"]["tlogEntries"][0]
}

/// The original bundle (its bytes unchanged) and each copy with one byte changed, by case name.
fn cases(original: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let bundle: Value = serde_json::from_slice(original).unwrap();
    // The original's bytes, and the same bundle written again by serde_json (other spacing and
    // key order, no byte of a value changed): the control for the tampered copies, which are
    // written that way too, so a refusal of theirs is for the byte changed.
    let mut cases = vec![
        ("original", original.to_vec()),
        ("re-encoded", serde_json::to_vec(&bundle).unwrap()),
    ];
    let mut tampered = |name: &'static str, change: &dyn Fn(&mut Value)| {
        let mut copy = bundle.clone();
        change(&mut copy);
        assert_ne!(copy, bundle, "{name}: nothing changed");
        cases.push((name, serde_json::to_vec(&copy).unwrap()));
    };
    tampered("dsse-payload", &|b| {
        flip_base64(&mut b["dsseEnvelope"]["payload"], None)
    });
    tampered("dsse-signature", &|b| {
        flip_base64(&mut b["dsseEnvelope"]["signatures"][0]["sig"], None)
    });
    tampered("set", &|b| {
        flip_base64(
            &mut entry(b)["inclusionPromise"]["signedEntryTimestamp"],
            None,
        )
    });
    tampered("certificate", &|b| {
        flip_base64(
            &mut b["verificationMaterial"]["certificate"]["rawBytes"],
            None,
        )
    });
    tampered("inclusion-proof-hash", &|b| {
        flip_base64(&mut entry(b)["inclusionProof"]["hashes"][0], None)
    });
    // The checkpoint's tree size (its second line), last digit + 1: the note its signature covers.
    tampered("checkpoint", &|b| {
        let note = &mut entry(b)["inclusionProof"]["checkpoint"]["envelope"];
        let mut lines: Vec<String> = note
            .as_str()
            .unwrap()
            .split('\n')
            .map(str::to_string)
            .collect();
        let size = &mut lines[1];
        let last = size.pop().unwrap().to_digit(10).unwrap();
        size.push(char::from_digit((last + 1) % 10, 10).unwrap());
        *note = json!(lines.join("\n"));
    });
    tampered("canonicalized-body", &|b| {
        flip_base64(&mut entry(b)["canonicalizedBody"], None)
    });
    // A decimal string in the bundle's JSON, last digit + 1 (second precision: still inside
    // the certificate's validity window).
    tampered("integrated-time", &|b| {
        let time = &mut entry(b)["integratedTime"];
        let t: u64 = time.as_str().unwrap().parse().unwrap();
        *time = json!((t + 1).to_string());
    });
    if bundle["verificationMaterial"]["timestampVerificationData"].is_object() {
        // Three bytes from the end of the TimeStampResponse: inside the TSA's signature value,
        // so it still parses, and does not verify.
        tampered("rfc3161-timestamp", &|b| {
            let ts = &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
                [0]["signedTimestamp"];
            let len = STANDARD.decode(ts.as_str().unwrap()).unwrap().len();
            flip_base64(ts, Some(len - 3));
        });
        // Its first byte (the outer SEQUENCE tag, 0x30 to 0x31): no longer a TimeStampResponse.
        tampered("rfc3161-timestamp-der", &|b| {
            flip_base64(
                &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
                    ["signedTimestamp"],
                Some(0),
            );
        });
    }
    cases
}

/// Whether sealgate and sigstore-python accept a case: the originals (and their re-encoding),
/// no tampered copy, except the RFC3161 timestamp whose signature is broken. sealgate reads every
/// timestamp with the bundle and verifies it against the trusted root's timestamp authorities
/// (core's `sigstore::rfc3161`, judged by `sigstore::bundle::judge_timestamps` as sigstore-go
/// does):
///
/// - `rfc3161-timestamp` (a byte of the TSA's signature): accepted by both. The timestamp still
///   parses and does not verify; both drop it, as sigstore-go's `VerifySignedTimestamp` does,
///   because the log entry gives a verified time (sigstore-python's `_verify_timestamp_authority`
///   keeps the verified ones; one verified time, here the SET's, is its threshold). Neither
///   reports the timestamp as bad.
/// - `rfc3161-timestamp-der` (its first byte: not DER any more): refused by both. sigstore-python
///   decodes every timestamp on load ("Invalid Timestamp Response"); sealgate reads every
///   timestamp with the bundle and refuses it as unreadable ("the bundle's rfc3161 timestamp 0 is
///   not a valid DER timestamp response: ..."). (sigstore-go only decodes it while verifying, and
///   would drop it.)
fn expected(case: &str) -> (bool, bool) {
    match case {
        "original" | "re-encoded" | "rfc3161-timestamp" => (true, true),
        _ => (false, false),
    }
}

/// sigstore-python's CLI parses a DSSE payload with its own in-toto model after verifying, and
/// that model is stricter than the statements cosign writes: cosign v3's sign statement
/// (kubewarden) has a subject without `name` (`subject.0.name: Field required`), and sigstore's
/// attestation is an in-toto Statement v0.1 (the model takes `_type` v1 only). So the CLI refuses
/// both real bundles with "malformed in-toto statement" after everything cryptographic passed:
/// a difference of statement parsing, not of verification. sealgate reads both statements.
const CLI_IN_TOTO_REFUSAL: &str = "malformed in-toto statement";

/// Which of the two bundles the CLI's in-toto model refuses, and the field it names.
fn cli_in_toto_model(fixture: &Fixture) -> &'static str {
    match fixture.name {
        "kubewarden" => "subject.0.name",
        _ => "https://in-toto.io/Statement/v0.1",
    }
}

/// What one verifier said about one case.
#[derive(Debug)]
struct Verdict {
    accepted: bool,
    /// The verifier's words, for the failure message.
    said: String,
}

fn sealgate_verdict(out: &Run) -> Verdict {
    let accepted = match out.code() {
        0 => true,
        1 => false,
        code => panic!(
            "sealgate exited {code} (a usage or runtime error, not a verdict)\nstdout:\n{}\nstderr:\n{}",
            out.stdout(),
            out.stderr()
        ),
    };
    let said = if accepted { out.stdout() } else { out.stderr() };
    Verdict {
        accepted,
        said: said.trim().to_string(),
    }
}

/// The driver's verdict on `bundle` for the signer `identity`, `issuer` (and `artifact`, for a
/// message-signature bundle).
fn library_verdict(
    python: &Path,
    dir: &Path,
    bundle: &Path,
    (identity, issuer): (&str, &str),
    artifact: Option<&Path>,
) -> Verdict {
    let out = Command::new(python)
        .arg(dir.join("driver.py"))
        .arg(dir.join("trust_config.json"))
        .arg(bundle)
        .args([identity, issuer])
        .args(artifact)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted = match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "the sigstore-python driver failed on {}: {said}",
            bundle.display()
        ),
    };
    Verdict {
        accepted,
        said: said.trim().to_string(),
    }
}

/// `sigstore verify identity --offline` on `bundle` for the signer `identity`, `issuer`, and
/// `input` (`sha256:<hex>`, or a file).
fn cli_verdict(
    cli: &Path,
    dir: &Path,
    bundle: &Path,
    (identity, issuer): (&str, &str),
    input: &std::ffi::OsStr,
) -> Verdict {
    let out = Command::new(cli)
        .arg("--trust-config")
        .arg(dir.join("trust_config.json"))
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", identity])
        .args(["--cert-oidc-issuer", issuer])
        .arg(input)
        // rich wraps its log lines at the terminal's width: one line per message.
        .env("COLUMNS", "1000")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let accepted = match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        code => panic!(
            "sigstore verify identity exited {code:?} on {}: {said}",
            bundle.display()
        ),
    };
    Verdict {
        accepted,
        said: said.trim().to_string(),
    }
}

/// The last line of what a verifier said: its reason, or what it verified.
fn last_line(said: &str) -> &str {
    said.lines().last().unwrap_or("").trim()
}

/// sealgate's words in short: why the one bundle did not verify (after the referrer it names).
fn sealgate_reason(verdict: &Verdict) -> &str {
    if verdict.accepted {
        return "exit 0";
    }
    let first = verdict.said.lines().next().unwrap_or("");
    first
        .rsplit_once(" verifies: ")
        .and_then(|(_, why)| why.split_once(": "))
        .map_or(first, |(_, why)| why)
}

/// Writes into `w` the trusted root (`trusted_root.json`, for sealgate), the same as
/// sigstore-python's ClientTrustConfig (`trust_config.json`) and the driver (`driver.py`).
fn trust_files(w: &Workdir) {
    let trusted_root = testdata("sigstore_trusted_root.json");
    std::fs::write(w.path("trusted_root.json"), &trusted_root).unwrap();
    // sigstore-python's --trust-config takes a ClientTrustConfig: the same trusted root, and a
    // signing config (required by the format) with no services, as nothing is signed.
    let trust_config = json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": serde_json::from_slice::<Value>(&trusted_root).unwrap(),
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [], "oidcUrls": [], "rekorTlogUrls": [], "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        },
    });
    std::fs::write(
        w.path("trust_config.json"),
        serde_json::to_vec(&trust_config).unwrap(),
    )
    .unwrap();
    std::fs::write(w.path("driver.py"), DRIVER).unwrap();
}

/// sealgate's and sigstore-python's verdicts on every case of `fixture`, asserted together so
/// a failure lists them all.
fn cross_check(fixture: &Fixture) {
    let cli = sigstore_cli();
    let python = cli.with_file_name("python");
    let registry = TestRegistry::start(TLS_AUTH);
    let w = Workdir::new();
    trust_files(&w);
    let digest: Digest = fixture.digest.parse().unwrap();

    let mut table = Vec::new();
    let mut wrong = Vec::new();
    for (case, bytes) in cases(&testdata(fixture.file)) {
        let label = format!("{}/{case}", fixture.name);
        let file = w.path(&format!("{}-{case}.json", fixture.name));
        std::fs::write(&file, &bytes).unwrap();

        // Each case in a repository of its own: its one referrer is the bundle.
        let repo = format!("{}-{case}", fixture.name);
        push_referrer(&registry, &repo, &digest, &bytes);
        let img = format!("{}@{}", image(&registry, &repo), fixture.digest);
        let ours = sealgate_verdict(&run(
            &w,
            &registry,
            &[
                fixture.command,
                "--offline",
                "--trusted-root",
                "trusted_root.json",
                "--certificate-identity",
                fixture.identity,
                "--certificate-oidc-issuer",
                fixture.issuer,
                &img,
            ],
        ));
        let signer = (fixture.identity, fixture.issuer);
        let theirs = library_verdict(&python, w.dir.path(), &file, signer, None);
        let their_cli = cli_verdict(&cli, w.dir.path(), &file, signer, fixture.digest.as_ref());

        let (sealgate_accepts, sigstore_python_accepts) = expected(case);
        let word = |v: &Verdict| if v.accepted { "accepts" } else { "rejects" };
        table.push(format!(
            "{label}: sealgate {}, sigstore-python {} (CLI {})\n    sealgate: {}\n    sigstore-python: {}",
            word(&ours),
            word(&theirs),
            word(&their_cli),
            sealgate_reason(&ours),
            last_line(&theirs.said)
        ));
        let to = |accept: bool| if accept { "accept" } else { "reject" };
        if ours.accepted != sealgate_accepts {
            wrong.push(format!(
                "{label}: sealgate {} (expected to {}; sigstore-python {}):\n{}",
                word(&ours),
                to(sealgate_accepts),
                word(&theirs),
                ours.said
            ));
        }
        if theirs.accepted != sigstore_python_accepts {
            wrong.push(format!(
                "{label}: sigstore-python {} (expected to {}):\n{}",
                word(&theirs),
                to(sigstore_python_accepts),
                theirs.said
            ));
        }
        // The CLI: refused every time; where the library accepts, for the in-toto model only
        // (everything before it passed); where the library rejects, before the statement.
        let in_toto = their_cli.said.contains(CLI_IN_TOTO_REFUSAL)
            && their_cli.said.contains(cli_in_toto_model(fixture));
        if their_cli.accepted || in_toto != theirs.accepted {
            wrong.push(format!(
                "{label}: sigstore verify identity {} ({}expected: refused {}):\n{}",
                word(&their_cli),
                if in_toto { "in-toto model; " } else { "" },
                if theirs.accepted {
                    "by its in-toto model only"
                } else {
                    "before reading the statement"
                },
                their_cli.said
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n\nverdicts:\n{}",
        wrong.join("\n\n"),
        table.join("\n")
    );
    // The cases that ran, for the log (`cargo test -- --nocapture`).
    println!("{}", table.join("\n"));
}

#[test]
fn cross_check_of_the_real_keyless_signature_bundle_with_sigstore_python() {
    cross_check(&KUBEWARDEN_SIGNATURE);
}

#[test]
fn cross_check_of_the_real_keyless_attestation_bundle_with_sigstore_python() {
    cross_check(&COSIGN_ATTESTATION);
}

/// The digest connaisseur's keyless `.sig` signs, and its signer.
const CONNAISSEUR: &str = "sha256:31dc72a13a0c34b40eb95419d2b2fd67320c856baf3b72da518023ee8d370aee";
const PHILIPP: &str = "philipp.belitz@securesystems.de";

fn connaisseur(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/testdata/connaisseur")
            .join(name),
    )
    .unwrap()
}

/// Pushes the connaisseur payload, the `.sig` config and manifest as the `.sig` of
/// [`CONNAISSEUR`] in `repo`, as tests/cli/verify_keyless.rs does.
fn push_legacy_signature(registry: &TestRegistry, repo: &str) {
    let manifest = connaisseur("sig-manifest.json");
    let parsed = sealgate_core::cosign::ImageManifest::parse(&manifest).unwrap();
    let (_, config) = sealgate_core::cosign::signature_image(&parsed.layers);
    let digest: Digest = CONNAISSEUR.parse().unwrap();
    let repo = registry.image_ref(&format!("{repo}:x"));
    let client = registry.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        client
            .push_blob(&repo, &connaisseur("payload.json"))
            .await
            .unwrap();
        client.push_blob(&repo, &config).await.unwrap();
        client
            .put_manifest(
                &repo,
                &digest.signature_tag(),
                "application/vnd.oci.image.manifest.v1+json",
                &manifest,
            )
            .await
            .unwrap();
    });
}

/// The legacy `.sig` layer as a v0.1 bundle (what `cosign verify --bundle` of cosign v2 read):
/// the leaf certificate, the Rekor bundle annotation as the tlog entry (hashedrekord 0.0.1, its
/// SET as the inclusion promise; the annotation has no inclusion proof), the signature over the
/// sha256 of the payload. With `placeholder_proof`, an inclusion proof that cannot verify (tree
/// of one, zero root, a checkpoint that is no note) is added, so the bundle gets past
/// sigstore-python's model to its verification steps.
fn legacy_bundle(placeholder_proof: bool) -> Vec<u8> {
    let manifest: Value = serde_json::from_slice(&connaisseur("sig-manifest.json")).unwrap();
    let annotations = &manifest["layers"][0]["annotations"];
    let rekor: Value =
        serde_json::from_str(annotations["dev.sigstore.cosign/bundle"].as_str().unwrap()).unwrap();
    let leaf: String = annotations["dev.sigstore.cosign/certificate"]
        .as_str()
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let payload = &rekor["Payload"];
    let body: Value =
        serde_json::from_slice(&STANDARD.decode(payload["body"].as_str().unwrap()).unwrap())
            .unwrap();
    let log_id = payload["logID"].as_str().unwrap();
    let log_id: Vec<u8> = (0..log_id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&log_id[i..i + 2], 16).unwrap())
        .collect();
    let digest: Digest = Digest::sha256_of(&connaisseur("payload.json"));
    let digest_bytes: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&digest.hex()[i..i + 2], 16).unwrap())
        .collect();
    let mut entry = json!({
        "logIndex": payload["logIndex"].to_string(),
        "logId": {"keyId": STANDARD.encode(log_id)},
        "kindVersion": {"kind": body["kind"], "version": body["apiVersion"]},
        "integratedTime": payload["integratedTime"].to_string(),
        "inclusionPromise": {"signedEntryTimestamp": rekor["SignedEntryTimestamp"]},
        "canonicalizedBody": payload["body"],
    });
    if placeholder_proof {
        entry["inclusionProof"] = json!({
            "logIndex": "0",
            "rootHash": STANDARD.encode([0u8; 32]),
            "treeSize": "1",
            "hashes": [],
            "checkpoint": {"envelope": "placeholder"},
        });
    }
    serde_json::to_vec(&json!({
        "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": [{"rawBytes": leaf}]},
            "tlogEntries": [entry],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": STANDARD.encode(digest_bytes)},
            "signature": annotations["dev.cosignproject.cosign/signature"],
        },
    }))
    .unwrap()
}

/// The legacy keyless `.sig` (connaisseur, cosign v2's layout: a SET and no inclusion proof):
/// sealgate verifies it offline, as cosign does (the SET is the log's proof, its integratedTime
/// the signing time). sigstore-python cannot: it requires an inclusion proof with a checkpoint in
/// every tlog entry, v0.1 bundles included (`TransparencyLogEntry._validate`, and its bundle model
/// makes `inclusionProof` a required field), and offline it has no way to fetch one. So the
/// verdicts differ on the original, by design on both sides, not by a bug:
///
/// - the bundle as converted: refused on load, `inclusionProof` "Field required";
/// - with a placeholder proof: refused at the proof, "invalid log entry: inclusion proof ...",
///   which sigstore-python checks after the certificate chain at the SET's time, the SCT and the
///   identity: those passed, as in sealgate. With another identity it is refused at the identity.
#[test]
fn the_legacy_keyless_sig_verifies_in_sealgate_and_sigstore_python_wants_an_inclusion_proof() {
    let cli = sigstore_cli();
    let python = cli.with_file_name("python");
    let registry = TestRegistry::start(TLS_AUTH);
    let w = Workdir::new();
    trust_files(&w);
    push_legacy_signature(&registry, "legacy");
    let img = format!("{}@{CONNAISSEUR}", image(&registry, "legacy"));
    let sealgate = |identity: &str| {
        sealgate_verdict(&run(
            &w,
            &registry,
            &[
                "verify",
                "--offline",
                "--trusted-root",
                "trusted_root.json",
                "--certificate-identity",
                identity,
                "--certificate-oidc-issuer",
                GITHUB,
                &img,
            ],
        ))
    };
    let ours = sealgate(PHILIPP);
    assert!(
        ours.accepted,
        "legacy/original: sealgate rejects:\n{}",
        ours.said
    );
    let other = sealgate("someone@example.com");
    assert!(
        !other.accepted,
        "legacy/other-identity: sealgate accepts:\n{}",
        other.said
    );

    let payload = w.path("payload.json");
    std::fs::write(&payload, connaisseur("payload.json")).unwrap();
    let verdict = |case: &str, placeholder: bool, identity: &str| {
        let file = w.path(&format!("legacy-{case}.json"));
        std::fs::write(&file, legacy_bundle(placeholder)).unwrap();
        let signer = (identity, GITHUB);
        (
            library_verdict(&python, w.dir.path(), &file, signer, Some(&payload)),
            cli_verdict(&cli, w.dir.path(), &file, signer, payload.as_os_str()),
        )
    };
    let refused_for = |case: &str, v: &Verdict, why: &[&str]| {
        assert!(
            !v.accepted && why.iter().all(|w| v.said.contains(w)),
            "legacy/{case}: sigstore-python {} (expected: refused for {why:?}):\n{}",
            if v.accepted { "accepts" } else { "rejects" },
            v.said
        );
    };
    let missing_proof = ["inclusionProof", "Field required"];
    let (library, command) = verdict("original", false, PHILIPP);
    refused_for("original", &library, &missing_proof);
    refused_for("original (CLI)", &command, &missing_proof);
    let at_the_proof = ["invalid log entry: inclusion proof contains invalid root hash"];
    let (library, command) = verdict("placeholder-proof", true, PHILIPP);
    refused_for("placeholder-proof", &library, &at_the_proof);
    refused_for("placeholder-proof (CLI)", &command, &at_the_proof);
    let (library, _) = verdict(
        "placeholder-proof-other-identity",
        true,
        "someone@example.com",
    );
    refused_for(
        "placeholder-proof-other-identity",
        &library,
        &["Certificate's SANs do not match someone@example.com"],
    );
}
