//! Must-show 2 through the operator's command: changing one stored payload by hand (with the
//! append-only guard disabled, as a database superuser could) makes `mahnwerk verify` exit 1 and
//! name that event; untouched logs verify.

mod common;

use common::*;
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use std::process::Command;

fn verify(url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(["verify", "--database-url", url])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn verify_names_the_first_tampered_event() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(&dir).await {
        let log = EventLog::connect(&url).await.unwrap();
        for s in 0..3 {
            let stream: StreamId = format!("acme/case/c{s}").parse().unwrap();
            let events = (0..3)
                .map(|i| NewEvent {
                    event_id: event_id_now(),
                    event_type: "test.happened.v1".into(),
                    payload: serde_json::json!({ "amount": { "minor": 100 * i, "currency": "EUR" } }),
                    occurred_at: chrono::Utc::now(),
                    metadata: Metadata { actor: "test".into(), ..Default::default() },
                })
                .collect();
            log.append(AppendBatch {
                stream,
                expected: ExpectedVersion::NoStream,
                events,
            })
            .await
            .unwrap();
        }
        let (ok, text) = verify(&url);
        assert!(ok, "{text}");
        let victim = log.read_all(4, 1).await.unwrap().remove(0);
        assert_eq!(victim.position, 5);

        // The guard refuses a plain UPDATE ...
        if let Some(pool) = log.pg_pool() {
            assert!(
                sqlx::query("UPDATE events SET actor = 'x' WHERE position = 5")
                    .execute(pool)
                    .await
                    .is_err()
            );
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("UPDATE events SET payload = jsonb_set(payload::jsonb, '{amount,minor}', '999')::json WHERE position = 5")
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        } else {
            let pool = log.sqlite_pool().unwrap();
            assert!(
                sqlx::query("UPDATE events SET actor = 'x' WHERE position = 5")
                    .execute(pool)
                    .await
                    .is_err()
            );
            assert!(
                sqlx::query("DELETE FROM events WHERE position = 5")
                    .execute(pool)
                    .await
                    .is_err()
            );
            sqlx::query("DROP TRIGGER events_no_update")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("UPDATE events SET payload = json_set(payload, '$.amount.minor', 999) WHERE position = 5")
                .execute(pool)
                .await
                .unwrap();
        }
        // ... and verify finds the change and names the event.
        let (ok, text) = verify(&url);
        assert!(!ok, "verify must fail: {text}");
        assert!(text.contains(&victim.event_id.to_string()), "{text}");
        assert!(text.contains(victim.stream.as_str()), "{text}");
    }
}
