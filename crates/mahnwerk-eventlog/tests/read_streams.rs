//! `EventLog::read_streams` (many whole streams in one read), on SQLite always and on
//! PostgreSQL when `DATABASE_URL` is set: the same events, per stream, as `read_stream`, in the
//! order asked for, empty for a stream without events, a stream asked twice given twice, and
//! more streams than one SQLite statement takes.

use chrono::Utc;
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, StreamId, TenantId, event_id_now,
};
use serde_json::json;

async fn logs(dir: &tempfile::TempDir) -> Vec<EventLog> {
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
    let mut out = vec![EventLog::connect(&url).await.unwrap()];
    if let Ok(admin_url) = std::env::var("DATABASE_URL") {
        let name = format!("mahnwerk_el_rs_{:016x}", rand::random::<u64>());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        out.push(EventLog::connect(&format!("{base}/{name}")).await.unwrap());
    } else {
        eprintln!("DATABASE_URL not set: this test ran on SQLite only");
    }
    out
}

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: "invoice.issued.v1".into(),
        payload: json!({"n": n, "note": "Grüße"}),
        occurred_at: Utc::now(),
        metadata: Metadata {
            actor: "test".into(),
            ..Default::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_streams_gives_each_stream_whole_in_the_order_asked() {
    let dir = tempfile::tempdir().unwrap();
    let tenant: TenantId = "acme".parse().unwrap();
    for log in logs(&dir).await {
        // 300 streams of 1 to 3 events (more than one SQLite statement's 256), appended in an
        // order unlike the one they are read in.
        let streams: Vec<StreamId> = (0..300)
            .map(|i| StreamId::new(&tenant, "case", &format!("c{i:03}")))
            .collect();
        let batches = streams
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| AppendBatch {
                stream: s.clone(),
                expected: ExpectedVersion::NoStream,
                events: (0..=i % 3).map(|k| event(i * 10 + k)).collect(),
            })
            .collect();
        for r in log.append_many(batches).await.unwrap() {
            r.unwrap();
        }
        let missing = StreamId::new(&tenant, "case", "none");
        let mut asked: Vec<StreamId> = streams.iter().rev().cloned().collect();
        asked.insert(7, missing.clone());
        asked.push(streams[5].clone());
        let got = log.read_streams(&asked).await.unwrap();
        assert_eq!(got.len(), asked.len());
        for (s, events) in asked.iter().zip(&got) {
            let one = log.read_stream(s, 1, 1000).await.unwrap();
            assert_eq!(*events, one, "{s}");
            assert!(events.iter().all(|e| e.stream == *s));
        }
        assert!(got[7].is_empty(), "a stream without events");
        assert_eq!(got.last().unwrap().len(), 3, "a stream asked twice");
        assert!(log.read_streams(&[]).await.unwrap().is_empty());
    }
}
