//! `mahnwerk_bus::connect` refuses NATS servers older than 2.10 and accepts current ones.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A loopback listener that speaks just enough of the NATS protocol to complete a client's
/// handshake while announcing `version` in its INFO line.
async fn fake_server(version: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let info = format!(
                    "INFO {{\"server_id\":\"fake\",\"server_name\":\"fake\",\"version\":\"{version}\",\
                     \"proto\":1,\"go\":\"go1.19\",\"host\":\"127.0.0.1\",\"port\":{port},\
                     \"headers\":true,\"max_payload\":1048576,\"jetstream\":true}}\r\n"
                );
                if write.write_all(info.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.starts_with("PING") && write.write_all(b"PONG\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("nats://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_server_older_than_2_10_is_refused_with_its_version_and_the_fix() {
    let url = fake_server("2.9.10").await;
    let err = tokio::time::timeout(Duration::from_secs(20), mahnwerk_bus::connect(&url))
        .await
        .expect("connect answers")
        .expect_err("2.9.10 is refused");
    assert!(err.is_fatal(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("2.9.10"), "names the version: {msg}");
    assert!(msg.contains("2.10 or newer"), "names the minimum: {msg}");
    assert!(msg.contains("NATS_URL"), "says how to fix it: {msg}");
}

#[tokio::test]
async fn the_current_server_is_accepted() {
    let js = mahnwerk_bus::connect(&nats_url())
        .await
        .expect("NATS_URL points at NATS 2.10+ (make test starts one)");
    // JetStream answers on it.
    js.query_account().await.expect("jetstream account info");
}
