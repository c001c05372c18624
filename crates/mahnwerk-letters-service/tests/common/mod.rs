//! Test harness: real helper servers (moto for S3, aiosmtpd for SMTP) started from the
//! project's Python (`MAHNWERK_PYTHON`, default `.venv/bin/python` at the workspace root), real
//! NATS (`NATS_URL`) and a real SQLite event log. A missing tool fails the test with a message.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MAHNWERK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the letters service tests: run `make pyenv` (creates {} with moto[server] and aiosmtpd from tests/requirements.txt) or set MAHNWERK_PYTHON",
        venv.display()
    );
    venv
}

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `python args…` and wait until it accepts connections on `port`.
pub async fn start_python(what: &str, args: &[&str], port: u16) -> ChildGuard {
    let py = python();
    let child = Command::new(&py)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} with {}: {e}", py.display()));
    let mut guard = ChildGuard(child);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return guard;
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            panic!(
                "{what} exited with {status} before listening on port {port}: is it installed in {}? (`make pyenv`, tests/requirements.txt)",
                py.display()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for `cond` with a deadline (no sleeps as synchronisation).
pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An SMTP server (aiosmtpd) saving every message to `dir` as `{n}.eml`; RCPT TO any address
/// in `reject` is answered 550.
pub async fn smtp_sink(dir: &std::path::Path, reject: &[&str]) -> (ChildGuard, u16) {
    let port = free_port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
    let port_s = port.to_string();
    let dir_s = dir.display().to_string();
    let reject_s = reject.join(",");
    let guard = start_python(
        "aiosmtpd",
        &[
            script.to_str().expect("utf-8 path"),
            &port_s,
            &dir_s,
            &reject_s,
        ],
        port,
    )
    .await;
    (guard, port)
}

/// The messages the sink saved.
pub fn received(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "eml") {
                out.push(std::fs::read_to_string(&p).unwrap_or_default());
            }
        }
    }
    out
}
