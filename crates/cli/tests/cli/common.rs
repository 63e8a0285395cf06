//! What the integration tests share: a scratch directory with an isolated environment for
//! running the `sealgate` binary, and assertions on its exit code and output.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use sealgate_core::Digest;
use sealgate_core::cosign::ImageManifest;
use sealgate_test_registry::TestRegistry;

/// A scratch directory and an isolated environment for running the binary: no docker config
/// from the machine, the password given or none.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sealgate"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("DOCKER_CONFIG", self.dir.path().join("no-docker-config"))
            .env_remove("REGISTRY_AUTH_FILE")
            // podman's auth.json locations: inside the test's directory, never the machine's
            .env("XDG_RUNTIME_DIR", self.dir.path().join("no-runtime-dir"))
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SEALGATE_REGISTRY_USERNAME")
            .env_remove("SEALGATE_REGISTRY_PASSWORD")
            .env_remove("SEALGATE_REGISTRY_AUTH_HOST")
            .env_remove("COSIGN_PASSWORD")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs with `COSIGN_PASSWORD` set.
    pub fn run(&self, password: &str, args: &[&str]) -> Run {
        Run(self
            .command(args)
            .env("COSIGN_PASSWORD", password)
            .output()
            .unwrap())
    }

    /// Runs with registry flags appended.
    pub fn run_on(&self, registry: &TestRegistry, password: &str, args: &[&str]) -> Run {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(registry.cli_args());
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.run(password, &refs)
    }

    pub fn keys(&self, prefix: &str, password: &str) -> (String, String) {
        self.run(
            password,
            &["generate-key-pair", "--output-key-prefix", prefix],
        )
        .success();
        (format!("{prefix}.key"), format!("{prefix}.pub"))
    }
}

#[derive(Debug)]
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn success(&self) -> &Run {
        self.expect_code(0)
    }
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout()
        );
        self
    }
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr()
        );
        self
    }
}

pub fn image(registry: &TestRegistry, name: &str) -> String {
    format!("{}/{name}", registry.host())
}

/// The layers of the `.sig` image of `digest` in `repo`.
pub fn signature_layers(registry: &TestRegistry, repo: &str, digest: &Digest) -> usize {
    let client = registry.client();
    let repo_ref = registry.image_ref(&format!("{repo}:x"));
    let tag = digest.signature_tag();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let manifest = rt.block_on(client.get_manifest(&repo_ref, &tag)).unwrap();
    manifest.map_or(0, |m| ImageManifest::parse(&m.bytes).unwrap().layers.len())
}
