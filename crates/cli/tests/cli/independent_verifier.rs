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

/// sigstore-python's library verdict on one bundle: `OK <payloadType>` and exit 0, or
/// `FAIL <error class>: <message>` and exit 1 for sigstore's own errors (what a verifier
/// rejects with); anything else (a broken driver, an import error) exits 3.
const DRIVER: &str = r#"
import sys
from pathlib import Path

from sigstore.errors import Error
from sigstore.models import Bundle, ClientTrustConfig
from sigstore.verify import Verifier, policy

trust_config, bundle, identity, issuer = sys.argv[1:5]
try:
    config = ClientTrustConfig.from_json(Path(trust_config).read_text())
    verifier = Verifier(trusted_root=config.trusted_root)
    parsed = Bundle.from_json(Path(bundle).read_bytes())
    payload_type, _ = verifier.verify_dsse(
        parsed, policy.Identity(identity=identity, issuer=issuer)
    )
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
        // so it still parses (a byte in the middle may break the DER, refused by both on sight).
        tampered("rfc3161-timestamp", &|b| {
            let ts = &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
                [0]["signedTimestamp"];
            let len = STANDARD.decode(ts.as_str().unwrap()).unwrap().len();
            flip_base64(ts, Some(len - 3));
        });
    }
    cases
}

/// The cases where a verifier accepts: the original, and (both verifiers) a bundle whose RFC3161
/// timestamp does not verify. Neither needs the TSA's time when the log's is there: sealgate
/// does not read `timestampVerificationData` at all (it establishes the signing time from the
/// SET's integratedTime only), and sigstore-python verifies each timestamp but drops the ones
/// that fail (`_verify_timestamp_authority` keeps the verified ones; one verified time, here the
/// SET's, is its threshold). A bundle with a broken timestamp therefore passes both; a verifier
/// that required every timestamp to verify (sigstore-go with a TSA threshold) would refuse it.
fn accepted_by_both(case: &str) -> bool {
    matches!(case, "original" | "re-encoded" | "rfc3161-timestamp")
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

fn library_verdict(python: &Path, dir: &Path, bundle: &Path, fixture: &Fixture) -> Verdict {
    let out = Command::new(python)
        .arg(dir.join("driver.py"))
        .arg(dir.join("trust_config.json"))
        .arg(bundle)
        .args([fixture.identity, fixture.issuer])
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

fn cli_verdict(cli: &Path, dir: &Path, bundle: &Path, fixture: &Fixture) -> Verdict {
    let out = Command::new(cli)
        .arg("--trust-config")
        .arg(dir.join("trust_config.json"))
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", fixture.identity])
        .args(["--cert-oidc-issuer", fixture.issuer])
        .arg(fixture.digest)
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

/// sealgate's and sigstore-python's verdicts on every case of `fixture`, asserted together so
/// a failure lists them all.
fn cross_check(fixture: &Fixture) {
    let cli = sigstore_cli();
    let python = cli.with_file_name("python");
    let registry = TestRegistry::start(TLS_AUTH);
    let w = Workdir::new();
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
        let theirs = library_verdict(&python, w.dir.path(), &file, fixture);
        let their_cli = cli_verdict(&cli, w.dir.path(), &file, fixture);

        let expected = accepted_by_both(case);
        let word = |v: &Verdict| if v.accepted { "accepts" } else { "rejects" };
        table.push(format!(
            "{label}: sealgate {}, sigstore-python {} (CLI {})\n    sealgate: {}\n    sigstore-python: {}",
            word(&ours),
            word(&theirs),
            word(&their_cli),
            sealgate_reason(&ours),
            last_line(&theirs.said)
        ));
        if ours.accepted != expected {
            wrong.push(format!(
                "{label}: sealgate {} (expected to {}):\n{}",
                word(&ours),
                if expected { "accept" } else { "reject" },
                ours.said
            ));
        }
        if theirs.accepted != expected {
            wrong.push(format!(
                "{label}: sigstore-python {} (expected to {}):\n{}",
                word(&theirs),
                if expected { "accept" } else { "reject" },
                theirs.said
            ));
        }
        if ours.accepted != theirs.accepted {
            wrong.push(format!(
                "{label}: the verdicts differ: sealgate {}:\n{}\nsigstore-python {}:\n{}",
                word(&ours),
                ours.said,
                word(&theirs),
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
fn sealgate_and_sigstore_python_agree_on_the_real_keyless_signature_bundle() {
    cross_check(&KUBEWARDEN_SIGNATURE);
}

#[test]
fn sealgate_and_sigstore_python_agree_on_the_real_keyless_attestation_bundle() {
    cross_check(&COSIGN_ATTESTATION);
}
