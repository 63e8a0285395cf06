//! Where a key password comes from, as cosign does it: `COSIGN_PASSWORD` when it is set (even to
//! the empty string), else a prompt on the terminal, else all of standard input.

use std::io::{IsTerminal, Read};

use anyhow::{Context, bail};

/// The environment variable cosign and sealgate read the password from.
pub(crate) const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

/// Why the password is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// To encrypt a new key: ask twice on a terminal.
    NewKey,
    /// To decrypt an existing key.
    ExistingKey,
}

/// Reads the password for `purpose`.
pub(crate) fn read(purpose: Purpose) -> anyhow::Result<Vec<u8>> {
    if let Some(pw) = std::env::var_os(PASSWORD_ENV) {
        let pw = pw.into_encoded_bytes();
        if purpose == Purpose::NewKey && pw.is_empty() {
            warn_unprotected(&format!("{PASSWORD_ENV} is set to the empty string"));
        }
        return Ok(pw);
    }
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Enter password for private key: ")
            .context("reading the password from the terminal")?;
        if purpose == Purpose::NewKey {
            let again = rpassword::prompt_password("Enter password for private key again: ")
                .context("reading the password from the terminal")?;
            if again != first {
                bail!("the passwords do not match; nothing was written");
            }
        }
        return Ok(first.into_bytes());
    }
    let mut pw = Vec::new();
    std::io::stdin().read_to_end(&mut pw).with_context(|| {
        format!("reading the password from standard input (or set {PASSWORD_ENV})")
    })?;
    if purpose == Purpose::NewKey && pw.is_empty() {
        warn_unprotected("standard input, which is not a terminal, was empty");
    }
    Ok(pw)
}

/// Warns that a new key is written with the empty password, which came from `source` without
/// anyone typing it (cosign accepts it silently; sealgate does too, but says so).
fn warn_unprotected(source: &str) {
    eprintln!(
        "warning: the new private key gets an empty password ({source}): anyone who can read \
the key file can sign with it; set {PASSWORD_ENV} to a password to protect it"
    );
}
