//! The `sealgate` command line: keys, signing and verification now; policies and the webhook
//! build on the same core.
//!
//! `main` parses arguments into the command types of [`cmd`], runs one, and turns the result
//! into an exit code: 0 success, 1 a verification (or policy check) failed, 2 a usage or runtime
//! error. `anyhow` lives here and in `cmd` only; the library crates return typed errors.

mod cmd;
mod evaluate;
mod inputs;
mod password;
mod progress;
mod registry_args;
mod render;
mod trust_args;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes shared by every command.
const EXIT_CODES: &str = "Exit codes: 0 success, 1 verification failed, 2 usage or runtime error \
(bad flags, unreachable registry, unreadable key).";

/// sealgate lets only signed container images run on Kubernetes. It signs and verifies images in
/// cosign's formats (keys, `.sig` signatures) against any OCI registry.
#[derive(Debug, Parser)]
#[command(name = "sealgate", version, about, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!("features `jemalloc` and `mimalloc` each pick the global allocator: enable one");

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cmd::run(cli.command) {
        Ok(outcome) => outcome.exit_code(),
        // The reader of standard output closed it early (`| head`): it has what it wanted.
        Err(err) if render::is_closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
