//! `mahnwerk deadletter list|show|replay` against a real NATS and a consumer on a real SQLite
//! database: an event rejected as permanent is listed and shown, and once the cause is gone a
//! replay through the CLI gets it handled.

mod common;

use common::*;
use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig, Envelope, Handler, HandlerError};
use sqlx::{Any, Transaction};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Clone)]
struct Picky {
    reject: Arc<AtomicBool>,
}

#[allow(clippy::manual_async_fn)] // the trait asks for `impl Future + Send`
impl Handler for Picky {
    fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send + 'a {
        async move {
            if self.reject.load(Ordering::SeqCst) {
                return Err(HandlerError::Permanent("unknown dunning policy".into()));
            }
            sqlx::query("INSERT INTO seen (event_id) VALUES ($1)")
                .bind(event.event_id.clone())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }
}

fn cli(ns: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .arg("deadletter")
        .args(args)
        .args(["--nats-url", &nats_url(), "--namespace", ns])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mahnwerk deadletter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn seen(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM seen")
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn list_show_and_replay_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("svc.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE seen (event_id TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let ns = unique("t");
    let bus = BusConfig::with_namespace(&ns);
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    bus.ensure_streams(&js).await.unwrap();
    // One event as the relay would publish it.
    let event_id = uuid::Uuid::now_v7().to_string();
    let envelope = serde_json::json!({
        "event_id": event_id, "stream": "acme/case/c1", "version": 1, "position": 1,
        "tenant": "acme", "type": "invoice.issued.v1",
        "occurred_at": "2026-12-01T08:00:00Z", "recorded_at": "2026-12-01T08:00:00Z",
        "metadata": {"correlation_id": null, "causation_id": null, "actor": "test", "traceparent": null},
        "payload": {}, "hash": "00",
    });
    js.publish(
        format!("{}.acme.case.invoice.issued.v1.c1", bus.subject_prefix),
        serde_json::to_vec(&envelope).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let reject = Arc::new(AtomicBool::new(true));
    let consumer = Consumer {
        config: ConsumerConfig::new("dunning", &bus, "*.case.>"),
        bus: bus.clone(),
        pool: pool.clone(),
        handler: Picky {
            reject: reject.clone(),
        },
    };
    let stats = consumer.config.stats.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(js.clone(), async {
        let _ = stopped.await;
    }));
    wait_for("the dead letter", 20, || {
        let stats = stats.clone();
        async move { stats.dead_lettered.load(Ordering::SeqCst) == 1 }
    })
    .await;

    let list = cli(&ns, &["list"]);
    assert!(list.contains("dunning"), "{list}");
    assert!(list.contains("permanent"), "{list}");
    assert!(list.contains("invoice.issued.v1"), "{list}");
    assert!(list.contains("unknown dunning policy"), "{list}");
    assert!(list.contains("1 dead letter(s)"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(cli(&ns, &["list", "--json"]).trim()).unwrap();
    let seq = json["sequence"].as_u64().unwrap();
    assert_eq!(json["event_id"], event_id.as_str());
    let shown: serde_json::Value =
        serde_json::from_str(&cli(&ns, &["show", &seq.to_string()])).unwrap();
    assert_eq!(shown["reason"], "permanent");
    assert_eq!(shown["event"]["event_id"], event_id.as_str());
    assert_eq!(
        shown["original_subject"],
        format!("{}.acme.case.invoice.issued.v1.c1", bus.subject_prefix)
    );
    assert_eq!(shown["headers"]["Mahnwerk-Consumer"], "dunning");
    assert_eq!(seen(&pool).await, 0);

    // The cause is fixed; the operator replays it.
    reject.store(false, Ordering::SeqCst);
    let replayed = cli(&ns, &["replay", &seq.to_string()]);
    assert!(replayed.contains("replayed dead letter"), "{replayed}");
    wait_for("the replayed event handled", 20, || {
        let pool = pool.clone();
        async move { seen(&pool).await == 1 }
    })
    .await;
    let again = cli(&ns, &["replay", &seq.to_string()]);
    assert!(again.contains("already replayed"), "{again}");
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(seen(&pool).await, 1);
}
