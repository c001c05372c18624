//! Must-show 3: the relay killed (SIGKILL, not a clean stop) in the middle of publishing 10,000
//! events, then restarted: the JetStream stream holds exactly 10,000 messages, one per event,
//! in log order.

mod common;

use common::*;
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use std::process::{Child, Command, Stdio};

fn spawn_relay(url: &str, namespace: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(["serve", "--services", "relay"])
        .env("MAHNWERK_DATABASE_URL", url)
        .env("MAHNWERK_NAMESPACE", namespace)
        .env("NATS_URL", nats_url())
        .env("MAHNWERK_RELAY_BATCH", "50")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mahnwerk serve")
}

#[tokio::test]
async fn relay_killed_mid_publish_then_restarted_publishes_each_event_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let log = EventLog::connect(&url).await.unwrap();
        let batches: Vec<AppendBatch> = (0..1000)
            .map(|s| AppendBatch {
                stream: format!("acme/case/{s}").parse::<StreamId>().unwrap(),
                expected: ExpectedVersion::NoStream,
                events: (0..10)
                    .map(|i| NewEvent {
                        event_id: event_id_now(),
                        event_type: "test.happened.v1".into(),
                        payload: serde_json::json!({ "s": s, "i": i, "pad": "x".repeat(200) }),
                        occurred_at: chrono::Utc::now(),
                        metadata: Metadata {
                            actor: "test".into(),
                            ..Default::default()
                        },
                    })
                    .collect(),
            })
            .collect();
        for chunk in batches.chunks(100) {
            for r in log.append_many(chunk.to_vec()).await.unwrap() {
                r.unwrap();
            }
        }
        assert_eq!(log.head_position().await.unwrap(), 10_000);

        let namespace = unique("crash");
        let mut relay = spawn_relay(&url, &namespace);
        // Kill it once it has published some but not all.
        let mut seen = 0;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        while seen < 500 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "relay published nothing"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            seen = stream_messages(&namespace).await;
        }
        relay.kill().unwrap();
        relay.wait().unwrap();
        let at_kill = stream_messages(&namespace).await;
        assert!(
            at_kill < 10_000,
            "the relay finished before it was killed ({at_kill})"
        );

        let mut relay = spawn_relay(&url, &namespace);
        let ns = namespace.clone();
        wait_for("10,000 messages", 120, || {
            let ns = ns.clone();
            async move { stream_messages(&ns).await >= 10_000 }
        })
        .await;
        // A duplicating relay would show more within a moment.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        relay.kill().unwrap();
        relay.wait().unwrap();

        let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
        let bus = mahnwerk_bus::BusConfig::with_namespace(&namespace);
        let mut stream = js.get_stream(&bus.stream).await.unwrap();
        assert_eq!(stream.info().await.unwrap().state.messages, 10_000);
        let log_events = log.read_all(0, 10_000).await.unwrap();
        for (seq, expected) in (1..=10_000_u64).zip(&log_events) {
            let msg = stream.get_raw_message(seq).await.unwrap();
            let env: mahnwerk_bus::Envelope = serde_json::from_slice(&msg.payload).unwrap();
            assert_eq!(
                env.position, expected.position,
                "message {seq} out of log order"
            );
            assert_eq!(env.event_id, expected.event_id.to_string());
        }
        eprintln!("killed at {at_kill} of 10000 on {}", log.backend_name());
        js.delete_stream(&bus.stream).await.unwrap();
        js.delete_stream(&bus.dead_letter_stream).await.unwrap();
    }
}
