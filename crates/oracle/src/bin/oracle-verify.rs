//! `oracle-verify --key KEY [--ca CA] [--username U --password P] [--plain-http] IMAGE`: the
//! check `sealgate verify --key KEY IMAGE` makes, done by sigstore-rs, for side-by-side
//! benchmarks. Exit codes as sealgate's: 0 verified, 1 not verified, 2 usage or runtime error.

use std::process::ExitCode;

use sealgate_oracle::RegistryAccess;

const USAGE: &str =
    "usage: oracle-verify --key KEY [--ca CA] [--username U --password P] [--plain-http] IMAGE";

/// Parsed command line.
#[derive(Debug)]
struct Args {
    key: String,
    image: String,
    access: RegistryAccess,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut access = RegistryAccess::default();
    let (mut key, mut image, mut user, mut password) = (None, None, None, None);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--key" => key = Some(value()?),
            "--ca" => {
                let path = value()?;
                let pem = std::fs::read(&path).map_err(|e| format!("reading {path}: {e}"))?;
                access.ca_pem = Some(pem);
            }
            "--username" => user = Some(value()?),
            "--password" => password = Some(value()?),
            "--plain-http" => access.plain_http = true,
            s if s.starts_with('-') => return Err(format!("unknown flag {s}")),
            _ if image.is_some() => return Err("one image at a time".to_string()),
            _ => image = Some(a),
        }
    }
    access.credentials = match (user, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => return Err("--username and --password go together".to_string()),
    };
    match (key, image) {
        (Some(key), Some(image)) => Ok(Args { key, image, access }),
        _ => Err("--key and an image are required".to_string()),
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let pem = match std::fs::read(&args.key) {
        Ok(pem) => pem,
        Err(e) => {
            eprintln!("reading {}: {e}", args.key);
            return ExitCode::from(2);
        }
    };
    // One thread, as `sealgate verify` uses.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(sealgate_oracle::verify(&args.image, &pem, &args.access)) {
        Ok(v) if v.verified => {
            println!(
                "verified {} ({} of {} signature layers by the key)",
                args.image, v.by_key, v.layers
            );
            ExitCode::SUCCESS
        }
        Ok(v) => {
            eprintln!(
                "not verified {}: {} of {} signature layers by the key",
                args.image, v.by_key, v.layers
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
