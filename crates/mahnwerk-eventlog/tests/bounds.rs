//! Memory bounds of the append path on a real SQLite log: the writer queue applies
//! backpressure by bytes, and the in-process tail holds at most its byte budget.

use futures::FutureExt;
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Limits, Metadata, NewEvent, event_id_now,
};
use sqlx::Connection;
use std::time::Duration;

/// One batch of `n` events of about `size` bytes each on its own stream.
fn batch(name: &str, n: usize, size: usize) -> AppendBatch {
    AppendBatch {
        stream: format!("acme/case/{name}").parse::<StreamId>().unwrap(),
        expected: ExpectedVersion::Any,
        events: (0..n)
            .map(|i| NewEvent {
                event_id: event_id_now(),
                event_type: "test.happened.v1".into(),
                payload: serde_json::json!({ "i": i, "pad": "x".repeat(size) }),
                occurred_at: chrono::Utc::now(),
                metadata: Metadata {
                    actor: "test".into(),
                    ..Default::default()
                },
            })
            .collect(),
    }
}

async fn log_with(dir: &tempfile::TempDir, limits: Limits) -> (EventLog, String) {
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
    (EventLog::connect_with(&url, limits).await.unwrap(), url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_writer_queue_makes_appenders_wait_until_the_writer_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        queue_bytes: 64 * 1024,
        ..Limits::default()
    };
    let (log, url) = log_with(&dir, limits).await;
    log.append(batch("warmup", 1, 10)).await.unwrap();

    // Another connection holds SQLite's write lock, so the writer cannot commit.
    let mut blocker = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();

    // 40 KiB fits the 64 KiB queue at once; a second 40 KiB does not.
    let first = log
        .enqueue_many(vec![batch("a", 40, 1000)])
        .now_or_never()
        .expect("room in the queue: queued at once");
    let second = tokio::spawn({
        let log = log.clone();
        async move {
            log.enqueue_many(vec![batch("b", 40, 1000)])
                .await
                .outcome()
                .await
        }
    });
    // The writer is stuck behind the lock, so the second appender keeps waiting for room.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        !second.is_finished(),
        "a full queue holds the appender back"
    );

    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    let a = tokio::time::timeout(Duration::from_secs(20), first.outcome())
        .await
        .expect("first commits once the lock is gone")
        .unwrap();
    assert!(a.iter().all(Result::is_ok));
    let b = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("second is queued and commits once there is room")
        .unwrap()
        .unwrap();
    assert!(b.iter().all(Result::is_ok));
    assert_eq!(log.head_position().await.unwrap(), 81);

    // A request larger than the whole queue still commits (alone).
    let big = log.append(batch("big", 100, 1000)).await.unwrap();
    assert_eq!(big.last_position, 181);
}

#[tokio::test]
async fn the_tail_holds_at_most_its_byte_budget_and_followers_see_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        tail_bytes: 16 * 1024,
        ..Limits::default()
    };
    let (log, _) = log_with(&dir, limits).await;
    let mut tail = log.tail();
    // Ten commits of about 4 KiB while the follower reads nothing: only what fits the 16 KiB
    // budget is held for it.
    for i in 0..10 {
        log.append(batch(&format!("s{i}"), 4, 1000)).await.unwrap();
    }
    let mut held = Vec::new();
    while let Ok(commit) = tail.try_recv() {
        held.push(commit);
    }
    assert!(
        !held.is_empty(),
        "the tail carries commits while it has room"
    );
    assert!(held.len() < 10, "not every commit was held: {}", held.len());
    let positions: Vec<i64> = held
        .iter()
        .flat_map(|c| c.iter().map(|e| e.position))
        .collect();
    assert_eq!(
        positions,
        (1..=i64::try_from(positions.len()).unwrap()).collect::<Vec<_>>()
    );
    let bytes: usize = held
        .iter()
        .flat_map(|c| c.iter())
        .map(|e| e.payload.as_str().len())
        .sum();
    assert!(bytes <= 16 * 1024, "{bytes} payload bytes held");

    // Once the follower has let go of them, new commits are offered again; the positions
    // in between are missing from the tail (a gap: the follower reads them from the log).
    drop(held);
    let next = log.append(batch("later", 1, 10)).await.unwrap();
    let commit = tail.try_recv().expect("room again");
    assert_eq!(commit[0].position, next.first_position);
    assert!(next.first_position > i64::try_from(positions.len()).unwrap() + 1);
}
