//! cosign's certificate flags (`cmd/cosign/cli/options/certificate.go`, `CertVerifyOptions`),
//! shared by the commands that verify keyless signatures, and the keyless attestor they stand
//! for.
//!
//! The flags become a Kyverno `keyless` attestor entry compiled by the policy loader, exactly as a
//! policy's entry is (so the checks are the engine's, with nothing re-implemented here), with
//! cosign's semantics kept where they differ from Kyverno's:
//!
//! - `--certificate-identity` and `--certificate-oidc-issuer` compare exactly (Kyverno's
//!   `subject`/`issuer` take wildcards): a value holding `*` or `?` becomes an anchored, escaped
//!   `subjectRegExp`/`issuerRegExp`;
//! - the regexp flags are RE2 and unanchored, as in both; `--certificate-oidc-issuer-regexp`
//!   wins over `--certificate-oidc-issuer` (cosign's `switch`), and an identity with its regexp
//!   is refused, as cosign does;
//! - `--certificate-github-workflow-*` become `additionalExtensions`;
//! - `--certificate-chain`: its last certificate is the one trusted root (the entry's `roots`)
//!   and the others path hints; `--certificate`: the certificate the signatures are checked with
//!   instead of the one each carries (see [`KeylessFlags::signatures_to_check`]).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sealgate_core::cosign::{CERTIFICATE_ANNOTATION, CHAIN_ANNOTATION, SignatureSet};
use sealgate_core::crypto::cert::{Certificate, parse_pem_certificates};
use sealgate_core::policy::{Attestor, AttestorKind, PolicyWarningKind};

/// cosign's keyless error when no identity flag is given (`CertVerifyOptions.Identities`).
pub(crate) const IDENTITY_REQUIRED: &str = "--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode";
/// cosign's keyless error when no issuer flag is given.
pub(crate) const ISSUER_REQUIRED: &str = "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for verification in keyless mode";
/// cosign's `KeyAndIdentityParseError`, its first sentence.
pub(crate) const KEY_AND_IDENTITY: &str = "exactly one of: key reference (--key) or certificate identity (--certificate-identity or --certificate-identity-regexp), must be provided";

/// The GitHub workflow flags: flag, the Fulcio extension's name as Kyverno's
/// `additionalExtensions` and cosign's JSON output spell it.
const WORKFLOW_FLAGS: [(&str, &str); 5] = [
    (
        "--certificate-github-workflow-trigger",
        "githubWorkflowTrigger",
    ),
    ("--certificate-github-workflow-sha", "githubWorkflowSha"),
    ("--certificate-github-workflow-name", "githubWorkflowName"),
    (
        "--certificate-github-workflow-repository",
        "githubWorkflowRepository",
    ),
    ("--certificate-github-workflow-ref", "githubWorkflowRef"),
];

/// cosign's certificate verification flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct IdentityArgs {
    /// The identity expected in a valid Fulcio certificate (an e-mail address, DNS name, IP
    /// address or URI), compared exactly. Keyless verification needs it or
    /// --certificate-identity-regexp.
    #[arg(
        long,
        value_name = "IDENTITY",
        help_heading = "Keyless (cosign's flags)"
    )]
    certificate_identity: Option<String>,

    /// A regular expression (RE2, unanchored) alternative to --certificate-identity.
    #[arg(long, value_name = "REGEXP", help_heading = "Keyless (cosign's flags)")]
    certificate_identity_regexp: Option<String>,

    /// The OIDC issuer expected in a valid Fulcio certificate, compared exactly, e.g.
    /// https://token.actions.githubusercontent.com or https://oauth2.sigstore.dev/auth.
    /// Keyless verification needs it or --certificate-oidc-issuer-regexp.
    #[arg(long, value_name = "ISSUER", help_heading = "Keyless (cosign's flags)")]
    certificate_oidc_issuer: Option<String>,

    /// A regular expression (RE2, unanchored) alternative to --certificate-oidc-issuer (which
    /// it overrides, as in cosign).
    #[arg(long, value_name = "REGEXP", help_heading = "Keyless (cosign's flags)")]
    certificate_oidc_issuer_regexp: Option<String>,

    /// The event_name claim of the GitHub OIDC token (Fulcio extension 1.3.6.1.4.1.57264.1.2),
    /// compared exactly.
    #[arg(
        long,
        value_name = "TRIGGER",
        help_heading = "Keyless (cosign's flags)"
    )]
    certificate_github_workflow_trigger: Option<String>,

    /// The sha claim of the GitHub OIDC token: the commit the workflow ran on (.1.3).
    #[arg(long, value_name = "SHA", help_heading = "Keyless (cosign's flags)")]
    certificate_github_workflow_sha: Option<String>,

    /// The workflow claim of the GitHub OIDC token: the workflow's name (.1.4).
    #[arg(long, value_name = "NAME", help_heading = "Keyless (cosign's flags)")]
    certificate_github_workflow_name: Option<String>,

    /// The repository claim of the GitHub OIDC token, e.g. org/repo (.1.5).
    #[arg(long, value_name = "REPO", help_heading = "Keyless (cosign's flags)")]
    certificate_github_workflow_repository: Option<String>,

    /// The ref claim of the GitHub OIDC token, e.g. refs/heads/main (.1.6).
    #[arg(long, value_name = "REF", help_heading = "Keyless (cosign's flags)")]
    certificate_github_workflow_ref: Option<String>,

    /// A PEM certificate to check the signatures with instead of the one each carries; it is
    /// verified against the Fulcio CAs of the trusted root unless --certificate-chain is given.
    #[arg(long, value_name = "FILE", help_heading = "Keyless (cosign's flags)")]
    certificate: Option<PathBuf>,

    /// PEM CA certificates for the signing certificate's chain: its parent intermediate first,
    /// the root last. The root replaces the trusted root's Fulcio CAs.
    #[arg(long, value_name = "FILE", help_heading = "Keyless (cosign's flags)")]
    certificate_chain: Option<PathBuf>,

    /// Do not require the certificate's embedded SCT (its proof of inclusion in a certificate
    /// transparency log).
    #[arg(
        long,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL",
        help_heading = "Keyless (cosign's flags)"
    )]
    insecure_ignore_sct: Option<bool>,
}

/// The keyless attestor the flags stand for, and the certificates given in files.
#[derive(Debug, Clone)]
pub(crate) struct KeylessFlags {
    /// The compiled `keyless` entry.
    pub(crate) attestor: Attestor,
    /// `--certificate`, when given.
    pub(crate) certificate: Option<Certificate>,
    /// `--certificate-chain`, when given.
    pub(crate) chain: Vec<Certificate>,
    /// Whether `--insecure-ignore-tlog` was given.
    pub(crate) ignore_tlog: bool,
    /// Whether `--insecure-ignore-sct` was given.
    pub(crate) ignore_sct: bool,
    /// How the flags read as the attestor's fields, for failure messages.
    pub(crate) reading: String,
}

/// A non-empty flag value (cosign treats `--flag ""` as not given).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// `text` as a regular expression matching exactly `text` (the regex crate's `escape`).
fn exact_regexp(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('^');
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('$');
    out
}

/// Refuses a value the policy loader would read as a Kyverno variable.
fn no_variable(flag: &str, value: &str) -> anyhow::Result<()> {
    if value.contains("{{") {
        bail!(
            "{flag} {value}: sealgate checks this flag as a Kyverno keyless attestor, where '{{{{' starts a variable; write the value without '{{{{' (for a regexp, '\\{{' matches a brace)"
        );
    }
    Ok(())
}

impl IdentityArgs {
    /// Whether an identity flag was given (cosign refuses them with `--key`).
    pub(crate) fn names_identity(&self) -> bool {
        given(&self.certificate_identity).is_some()
            || given(&self.certificate_identity_regexp).is_some()
    }

    /// The keyless-only flags given, by name (for a note when `--key` makes them moot).
    pub(crate) fn keyless_only_flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if given(&self.certificate_oidc_issuer).is_some() {
            flags.push("--certificate-oidc-issuer");
        }
        if given(&self.certificate_oidc_issuer_regexp).is_some() {
            flags.push("--certificate-oidc-issuer-regexp");
        }
        for ((flag, _), value) in WORKFLOW_FLAGS.iter().zip(self.workflow_values()) {
            if given(value).is_some() {
                flags.push(*flag);
            }
        }
        if self.certificate_chain.is_some() {
            flags.push("--certificate-chain");
        }
        if self.insecure_ignore_sct.is_some() {
            flags.push("--insecure-ignore-sct");
        }
        flags
    }

    fn workflow_values(&self) -> [&Option<String>; 5] {
        [
            &self.certificate_github_workflow_trigger,
            &self.certificate_github_workflow_sha,
            &self.certificate_github_workflow_name,
            &self.certificate_github_workflow_repository,
            &self.certificate_github_workflow_ref,
        ]
    }

    /// The keyless attestor for these flags, with `annotations` required in the payload and the
    /// transparency log skipped when `ignore_tlog`: cosign's flag errors first (an identity and
    /// an issuer are required), then the certificate files read.
    pub(crate) fn keyless(
        &self,
        annotations: &[(String, String)],
        ignore_tlog: bool,
    ) -> anyhow::Result<KeylessFlags> {
        let identity = given(&self.certificate_identity);
        let identity_regexp = given(&self.certificate_identity_regexp);
        let issuer = given(&self.certificate_oidc_issuer);
        let issuer_regexp = given(&self.certificate_oidc_issuer_regexp);
        if identity.is_some() && identity_regexp.is_some() {
            bail!(
                "{KEY_AND_IDENTITY}: --certificate-identity and --certificate-identity-regexp were both given; keep one"
            );
        }
        if identity.is_none() && identity_regexp.is_none() {
            bail!(
                "{IDENTITY_REQUIRED} (the signer's e-mail or workflow URI, e.g. --certificate-identity https://github.com/ORG/REPO/.github/workflows/release.yml@refs/heads/main; or --key for a key-signed image)"
            );
        }
        if issuer.is_none() && issuer_regexp.is_none() {
            bail!(
                "{ISSUER_REQUIRED} (e.g. --certificate-oidc-issuer https://token.actions.githubusercontent.com for GitHub Actions)"
            );
        }
        if issuer.is_some() && issuer_regexp.is_some() {
            eprintln!(
                "note: --certificate-oidc-issuer is not used when --certificate-oidc-issuer-regexp is given (as in cosign)"
            );
        }

        let mut keyless = serde_json::Map::new();
        let mut reading = Vec::new();
        // One identity constraint: exact (a plain subject, or an escaped regexp when the value
        // holds Kyverno's wildcard characters), or the regexp as given.
        let mut constraint = |plain_flag: &str,
                              plain: Option<&str>,
                              regexp_flag: &str,
                              regexp: Option<&str>,
                              field: &str|
         -> anyhow::Result<()> {
            let regexp_field = format!("{field}RegExp");
            match (regexp, plain) {
                (Some(re), _) => {
                    no_variable(regexp_flag, re)?;
                    keyless.insert(regexp_field.clone(), re.into());
                    reading.push(format!("{regexp_flag} as {regexp_field}"));
                }
                (None, Some(text)) if text.contains(['*', '?']) || text.contains("{{") => {
                    keyless.insert(regexp_field.clone(), exact_regexp(text).into());
                    reading.push(format!(
                        "{plain_flag} as {regexp_field} (escaped and anchored: cosign compares exactly)"
                    ));
                }
                (None, Some(text)) => {
                    keyless.insert(field.to_string(), text.into());
                    reading.push(format!("{plain_flag} as {field}"));
                }
                (None, None) => {}
            }
            Ok(())
        };
        constraint(
            "--certificate-identity",
            identity,
            "--certificate-identity-regexp",
            identity_regexp,
            "subject",
        )?;
        constraint(
            "--certificate-oidc-issuer",
            issuer,
            "--certificate-oidc-issuer-regexp",
            issuer_regexp,
            "issuer",
        )?;

        let mut extensions = serde_json::Map::new();
        for ((flag, name), value) in WORKFLOW_FLAGS.iter().zip(self.workflow_values()) {
            let Some(value) = given(value) else { continue };
            if value.contains(['*', '?']) {
                bail!(
                    "{flag} {value}: cosign compares this value exactly, and sealgate checks it as Kyverno's additionalExtensions.{name}, where '*' and '?' are wildcards; give a value without them (or write a policy with the wildcard you mean)"
                );
            }
            no_variable(flag, value)?;
            extensions.insert((*name).to_string(), value.into());
            reading.push(format!("{flag} as additionalExtensions.{name}"));
        }
        if !extensions.is_empty() {
            keyless.insert("additionalExtensions".into(), extensions.into());
        }

        let certificate = match &self.certificate {
            Some(path) => Some(
                read_certificates(path, "--certificate")?
                    .into_iter()
                    .next()
                    .context("no certificate")?,
            ),
            None => None,
        };
        let chain = match &self.certificate_chain {
            Some(path) => read_certificates(path, "--certificate-chain")?,
            None => Vec::new(),
        };
        if let Some(root) = chain.last() {
            keyless.insert("roots".into(), root.pem().into());
            reading.push(
                "the last certificate of --certificate-chain as the policy's roots".to_string(),
            );
        }
        keyless.insert(
            "rekor".into(),
            serde_json::json!({
                "url": sealgate_core::policy::DEFAULT_REKOR_URL,
                "ignoreTlog": ignore_tlog,
            }),
        );
        keyless.insert(
            "ctlog".into(),
            serde_json::json!({ "ignoreSCT": self.insecure_ignore_sct.unwrap_or(false) }),
        );

        let mut entry = serde_json::Map::new();
        entry.insert("keyless".into(), keyless.into());
        if !annotations.is_empty() {
            let mut wanted = serde_json::Map::new();
            for (k, v) in annotations {
                no_variable("-a", v)?;
                no_variable("-a", k)?;
                wanted.insert(k.clone(), v.clone().into());
            }
            entry.insert("annotations".into(), wanted.into());
        }
        Ok(KeylessFlags {
            attestor: compile_entry(entry)?,
            certificate,
            chain,
            ignore_tlog,
            ignore_sct: self.insecure_ignore_sct.unwrap_or(false),
            reading: reading.join(", "),
        })
    }
}

/// Every certificate of a PEM file (or base64 of PEM, as cosign also reads).
fn read_certificates(path: &Path, flag: &str) -> anyhow::Result<Vec<Certificate>> {
    let text = sealgate_files::read_text_bounded(path, sealgate_files::CERTIFICATE_FILE)
        .with_context(|| format!("{flag}: reading {}", path.display()))?;
    parse_pem_certificates(&text).with_context(|| {
        format!(
            "{flag} {}: give PEM certificates ('-----BEGIN CERTIFICATE-----' blocks)",
            path.display()
        )
    })
}

/// Compiles one attestor entry through the policy loader, as a policy's would be.
fn compile_entry(entry: serde_json::Map<String, serde_json::Value>) -> anyhow::Result<Attestor> {
    let policy = serde_json::json!({
        "apiVersion": "kyverno.io/v1",
        "kind": "ClusterPolicy",
        "metadata": { "name": "sealgate-verify" },
        "spec": {
            "rules": [{
                "name": "verify",
                "match": { "any": [{ "resources": { "kinds": ["Pod"] } }] },
                "verifyImages": [{
                    "imageReferences": ["*"],
                    "attestors": [{ "entries": [entry] }],
                }],
            }],
        },
    });
    let loaded = sealgate_core::policy::load("the --certificate-* flags", &policy.to_string());
    for warning in &loaded.warnings {
        if let PolicyWarningKind::InvalidIdentityRegexp { field, reason } = &warning.kind {
            let flag = if *field == "subjectRegExp" {
                "--certificate-identity-regexp"
            } else {
                "--certificate-oidc-issuer-regexp"
            };
            bail!(
                "{flag}: not a valid regular expression: {reason}; write an RE2 regular expression (Go's regexp syntax)"
            );
        }
    }
    if let Some(error) = loaded.errors.first() {
        bail!("the keyless flags do not make a valid keyless attestor: {error}");
    }
    let attestor = loaded
        .policies
        .into_iter()
        .next()
        .and_then(|p| p.rules.into_iter().next())
        .and_then(|r| r.verify_images.into_iter().next())
        .and_then(|v| v.attestors.into_iter().next())
        .and_then(|s| s.entries.into_iter().next())
        .context("the keyless flags compiled to no attestor")?;
    if !matches!(attestor.kind, AttestorKind::Keyless(_)) {
        bail!("the keyless flags compiled to another kind of attestor");
    }
    Ok(attestor)
}

impl KeylessFlags {
    /// The signatures as the checks see them: with `--certificate`, each layer carries that
    /// certificate instead of its own (cosign verifies every signature with the given
    /// certificate's key); with `--certificate-chain`, its certificates join each layer's chain
    /// as path hints.
    pub(crate) fn signatures_to_check(&self, set: &SignatureSet) -> SignatureSet {
        if self.certificate.is_none() && self.chain.is_empty() {
            return set.clone();
        }
        let mut set = set.clone();
        for layer in &mut set.layers {
            let annotations = layer.descriptor.annotations.get_or_insert_default();
            if let Some(cert) = &self.certificate {
                annotations.insert(CERTIFICATE_ANNOTATION.to_string(), cert.pem().to_string());
            }
            if !self.chain.is_empty() {
                let mut chain = annotations.remove(CHAIN_ANNOTATION).unwrap_or_default();
                for c in &self.chain {
                    if !chain.is_empty() && !chain.ends_with('\n') {
                        chain.push('\n');
                    }
                    chain.push_str(c.pem());
                }
                annotations.insert(CHAIN_ANNOTATION.to_string(), chain);
            }
        }
        set
    }
}
