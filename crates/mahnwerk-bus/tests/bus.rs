//! Relay and consumer against a real NATS JetStream server (NATS_URL, default 127.0.0.1:4222)
//! and a real SQLite event log (plus PostgreSQL when DATABASE_URL is set, see the workspace tests).

use futures::StreamExt;
use mahnwerk_bus::consumer::Applied;
use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig, Envelope, Handler, HandlerError, Relay};
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use sqlx::{Any, Transaction};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn namespace() -> String {
    format!("t{}", hex_id())
}

fn hex_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

async fn sqlite_log(dir: &tempfile::TempDir) -> (EventLog, String) {
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
    (EventLog::connect(&url).await.unwrap(), url)
}

async fn append_events(log: &EventLog, streams: usize, per_stream: usize) {
    let mut batches = Vec::new();
    for s in 0..streams {
        let stream: StreamId = format!("acme/case/{s}").parse().unwrap();
        let events = (0..per_stream)
            .map(|i| NewEvent {
                event_id: event_id_now(),
                event_type: "test.happened.v1".into(),
                payload: serde_json::json!({ "i": i, "s": s }),
                occurred_at: chrono::Utc::now(),
                metadata: Metadata {
                    actor: "test".into(),
                    ..Default::default()
                },
            })
            .collect();
        batches.push(AppendBatch {
            stream,
            expected: ExpectedVersion::Any,
            events,
        });
    }
    for r in log.append_many(batches).await.unwrap() {
        r.unwrap();
    }
}

async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stream_positions(js: &async_nats::jetstream::Context, bus: &BusConfig) -> Vec<i64> {
    let mut stream = js.get_stream(&bus.stream).await.unwrap();
    let n = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=n {
        let msg = stream.get_raw_message(seq).await.unwrap();
        let env: Envelope = serde_json::from_slice(&msg.payload).unwrap();
        out.push(env.position);
    }
    out
}

#[tokio::test]
async fn relay_publishes_every_event_once_in_log_order_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = sqlite_log(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    append_events(&log, 20, 10).await;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(Relay::new(bus.clone()).run(log.clone(), js.clone(), async {
        let _ = stopped.await;
    }));
    let count = |js: async_nats::jetstream::Context, name: String| async move {
        js.get_stream(&name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages
    };
    wait_for("200 messages", || {
        count(js.clone(), bus.stream.clone()).then_eq(200)
    })
    .await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();

    // More events, a fresh relay: it resumes and publishes only the new ones.
    append_events(&log, 5, 2).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(Relay::new(bus.clone()).run(log.clone(), js.clone(), async {
        let _ = stopped.await;
    }));
    wait_for("210 messages", || {
        count(js.clone(), bus.stream.clone()).then_eq(210)
    })
    .await;
    // Give a wrongly re-publishing relay time to show itself before checking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    let positions = stream_positions(&js, &bus).await;
    assert_eq!(positions, (1..=210).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caught_up_relay_misses_nothing_another_writer_commits_between_its_own() {
    // The relay follows its own handle's in-process tail; a second handle on the same log
    // (another process, as far as the tail can tell) commits in between, leaving gaps in that
    // tail. Every event must still be published exactly once, in log order.
    let dir = tempfile::tempdir().unwrap();
    let (log, url) = sqlite_log(&dir).await;
    let other = EventLog::connect(&url).await.unwrap();
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(Relay::new(bus.clone()).run(log.clone(), js.clone(), async {
        let _ = stopped.await;
    }));
    let mut expected = 0;
    for round in 0..30 {
        let writer = if round % 3 == 1 { &other } else { &log };
        append_events(writer, 2, 3).await;
        expected += 6;
        if round % 5 == 0 {
            // Sometimes let the relay catch up, so it is following the tail when the next
            // (possibly foreign) commit arrives.
            let n = expected;
            wait_for("caught up", || {
                let (js, bus) = (js.clone(), bus.clone());
                async move { stream_positions(&js, &bus).await.len() == n }
            })
            .await;
        }
    }
    wait_for("every event", || {
        let (js, bus) = (js.clone(), bus.clone());
        async move { stream_positions(&js, &bus).await.len() >= expected }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    let positions = stream_positions(&js, &bus).await;
    let want: Vec<i64> = (1..=i64::try_from(expected).unwrap()).collect();
    assert_eq!(positions, want);
}

trait ThenEq {
    fn then_eq(self, n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;
}

impl<F: std::future::Future<Output = u64> + Send + 'static> ThenEq for F {
    fn then_eq(self, n: u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> {
        Box::pin(async move { self.await == n })
    }
}

/// Counts events into a table of the service database, inside the consumer's transaction.
#[derive(Clone)]
struct Counter {
    calls: Arc<AtomicU32>,
    fail_type: Option<&'static str>,
}

#[allow(clippy::manual_async_fn)] // the trait asks for `impl Future + Send`
impl Handler for Counter {
    fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send + 'a {
        async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.fail_type == Some(event.event_type.as_str()) {
                return Err(HandlerError::Permanent("simulated bad event".into()));
            }
            sqlx::query("UPDATE counter SET n = n + 1")
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    }
}

async fn service_db(dir: &tempfile::TempDir) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("svc.db").display());
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE counter (n BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO counter (n) VALUES (0)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

async fn counted(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT n FROM counter")
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn a_consumer_that_crashes_after_commit_before_ack_changes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = sqlite_log(&dir).await;
    let pool = service_db(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    append_events(&log, 1, 3).await;
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(Relay::new(bus.clone()).run(log.clone(), js.clone(), async {
        let _ = relay_stopped.await;
    }));

    let calls = Arc::new(AtomicU32::new(0));
    let mut config = ConsumerConfig::new("counter", &bus, ">");
    config.ack_wait = Duration::from_secs(1);
    let consumer = Consumer {
        config,
        bus: bus.clone(),
        pool: pool.clone(),
        handler: Counter {
            calls: calls.clone(),
            fail_type: None,
        },
    };
    // The relay has published all three before the first fetch (which does not wait).
    wait_for("3 events published", || {
        let (js, bus) = (js.clone(), bus.clone());
        async move { stream_positions(&js, &bus).await.len() == 3 }
    })
    .await;
    // The first delivery: handled and committed, then the "process" dies before acking.
    let pull = consumer.open(&js).await.unwrap();
    let mut batch = pull.fetch().max_messages(1).messages().await.unwrap();
    let msg = batch.next().await.unwrap().unwrap();
    let event: Envelope = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(consumer.apply_once(&event).await.unwrap(), Applied::Done);
    drop(msg);
    drop(batch);
    assert_eq!(counted(&pool).await, 1);

    // A restarted consumer gets the first event again after ack_wait, and all three once.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(js.clone(), async {
        let _ = stopped.await;
    }));
    let consumer_acked = |js: async_nats::jetstream::Context, stream: String| async move {
        let s = js.get_stream(&stream).await.unwrap();
        let mut c: async_nats::jetstream::consumer::PullConsumer =
            s.get_consumer("counter").await.unwrap();
        let info = c.info().await.unwrap();
        info.ack_floor.stream_sequence == 3 && info.num_ack_pending == 0
    };
    wait_for("all acked", || {
        consumer_acked(js.clone(), bus.stream.clone())
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    stop_relay.send(()).unwrap();
    relay.await.unwrap().unwrap();
    assert_eq!(counted(&pool).await, 3, "each event changed the state once");
    let inbox: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bus_inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(inbox.0, 3);
}

#[tokio::test]
async fn a_permanently_failing_event_is_retried_then_dead_lettered_and_the_consumer_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = sqlite_log(&dir).await;
    let pool = service_db(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    let stream: StreamId = "acme/case/poison".parse().unwrap();
    let event = |t: &str| NewEvent {
        event_id: event_id_now(),
        event_type: t.into(),
        payload: serde_json::json!({}),
        occurred_at: chrono::Utc::now(),
        metadata: Metadata::default(),
    };
    log.append(AppendBatch {
        stream,
        expected: ExpectedVersion::NoStream,
        events: vec![event("test.poison.v1"), event("test.fine.v1")],
    })
    .await
    .unwrap();
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(Relay::new(bus.clone()).run(log.clone(), js.clone(), async {
        let _ = relay_stopped.await;
    }));
    let calls = Arc::new(AtomicU32::new(0));
    let mut config = ConsumerConfig::new("poisoned", &bus, ">");
    config.max_attempts = 3;
    config.backoff = vec![Duration::from_millis(10), Duration::from_millis(20)];
    let consumer = Consumer {
        config,
        bus: bus.clone(),
        pool: pool.clone(),
        handler: Counter {
            calls: calls.clone(),
            fail_type: Some("test.poison.v1"),
        },
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(consumer.run(js.clone(), async {
        let _ = stopped.await;
    }));
    let dlq = bus.dead_letter_stream.clone();
    let js2 = js.clone();
    wait_for("dead letter", || {
        let js = js2.clone();
        let dlq = dlq.clone();
        async move {
            js.get_stream(&dlq)
                .await
                .unwrap()
                .info()
                .await
                .unwrap()
                .state
                .messages
                == 1
        }
    })
    .await;
    let pool2 = pool.clone();
    wait_for("next event handled", || {
        let pool = pool2.clone();
        async move { counted(&pool).await == 1 }
    })
    .await;
    stop.send(()).unwrap();
    run.await.unwrap().unwrap();
    stop_relay.send(()).unwrap();
    relay.await.unwrap().unwrap();
    // 3 attempts for the poison event, 1 for the good one.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    let letter = js
        .get_stream(&dlq)
        .await
        .unwrap()
        .get_raw_message(1)
        .await
        .unwrap();
    assert_eq!(
        letter.subject.as_str(),
        format!("{}.poisoned", bus.dead_letter_prefix)
    );
    let error = letter
        .headers
        .get("Mahnwerk-Error")
        .unwrap()
        .as_str()
        .to_owned();
    assert!(error.contains("simulated bad event"), "{error}");
    let env: Envelope = serde_json::from_slice(&letter.payload).unwrap();
    assert_eq!(env.event_type, "test.poison.v1");
}
