//! Test support (feature `testing`): a real S3-compatible server, moto in server mode, started
//! from the project's Python (`MAHNWERK_PYTHON`, default `.venv/bin/python` at the workspace
//! root; `make pyenv` installs `moto[server]` from tests/requirements.txt), with one bucket.
//! Shared by every crate whose tests run against S3, so no test copies it.

use crate::S3Config;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running moto server, killed when dropped; `config` reaches its bucket.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub config: S3Config,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with moto: `MAHNWERK_PYTHON`, else `{workspace}/.venv/bin/python`.
pub fn python(workspace: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("MAHNWERK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace.join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the S3 tests: run `make pyenv` (creates {} with moto[server]) or set MAHNWERK_PYTHON",
        venv.display()
    );
    venv
}

/// Start moto on a free port and create `bucket` (moto accepts an unsigned path-style PUT).
/// `workspace` is the workspace root (to find `.venv`). Panics with a message if it cannot.
pub async fn moto(workspace: &Path, bucket: &str) -> Moto {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let py = python(workspace);
    let child = Command::new(&py)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", py.display()));
    let mut moto = Moto {
        child,
        port,
        config: S3Config {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            bucket: bucket.into(),
            region: "eu-central-1".into(),
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
            prefix: "documents/".into(),
        },
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut s = loop {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            break s;
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto exited with {status} before listening on port {port}: is moto[server] installed in {}? (`make pyenv`)",
                py.display()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "moto did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let req = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.expect("read");
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    moto
}
