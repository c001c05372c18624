//! A consumer with several filters (`ConsumerConfig::with_filters`) takes exactly the events of
//! those types, per case in log order, partitioned or not; a durable left with the old single
//! filter is brought to the new ones. Against a real NATS JetStream (NATS_URL) and SQLite.

use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig, Envelope, Handler, HandlerError, Relay};
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use sqlx::{Any, Transaction};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CASES: usize = 6;
/// Per case, in this order: two wanted types among two unwanted ones.
const TYPES: [&str; 4] = [
    "test.opened.v1",
    "letter.sent.v1",
    "test.happened.v1",
    "test.other.v1",
];
const WANTED: [&str; 2] = ["*.case.test.opened.v1", "*.case.test.happened.v1"];

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, u64, String)>>>);

impl Handler for Seen {
    async fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        _tx: &'a mut Transaction<'static, Any>,
    ) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push((
            event.stream.clone(),
            event.version,
            event.event_type.clone(),
        ));
        Ok(())
    }
}

async fn run_with_filters(partitions: u16) {
    let ns = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let bus = BusConfig::with_namespace(&ns).with_partitions(partitions);
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let js = mahnwerk_bus::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
    let log = EventLog::connect(&log_url).await.unwrap();
    for t in TYPES {
        let batches = (0..CASES)
            .map(|c| AppendBatch {
                stream: format!("acme/case/c{c}").parse::<StreamId>().unwrap(),
                expected: ExpectedVersion::Any,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: t.into(),
                    payload: serde_json::json!({}),
                    occurred_at: chrono::Utc::now(),
                    metadata: Metadata {
                        actor: "test".into(),
                        ..Default::default()
                    },
                }],
            })
            .collect();
        for r in log.append_many(batches).await.unwrap() {
            r.unwrap();
        }
    }
    let (stop_relay, relay_stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(Relay::new(bus.clone()).run(log, js.clone(), async {
        let _ = relay_stopped.await;
    }));

    sqlx::any::install_default_drivers();
    let db = format!("sqlite:{}?mode=rwc", dir.path().join("svc.db").display());
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(&db)
        .await
        .unwrap();
    // The durables as the old library left them: every case event.
    let old = Consumer {
        config: ConsumerConfig::new("svc", &bus, "*.case.>"),
        bus: bus.clone(),
        pool: pool.clone(),
        handler: Seen::default(),
    };
    for p in 0..partitions {
        old.open_source(&js, mahnwerk_bus::consumer::Source::Partition(p))
            .await
            .unwrap();
    }

    let seen = Seen::default();
    let consumer = Consumer {
        config: ConsumerConfig::with_filters("svc", &bus, &WANTED),
        bus: bus.clone(),
        pool: pool.clone(),
        handler: seen.clone(),
    };
    for p in 0..partitions {
        let mut durable = consumer
            .open_source(&js, mahnwerk_bus::consumer::Source::Partition(p))
            .await
            .unwrap();
        let info = durable.info().await.unwrap();
        assert_eq!(info.config.filter_subject, "");
        assert_eq!(info.config.filter_subjects.len(), WANTED.len());
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(consumer.run(js.clone(), async {
        let _ = stopped.await;
    }));
    let want = CASES * WANTED.len();
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.0.lock().unwrap().len() < want {
        assert!(tokio::time::Instant::now() < until, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for anything unwanted to arrive, if the filters let it through.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let _ = stop_relay.send(());
    relay.await.unwrap().unwrap();

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(seen.len(), want, "{seen:?}");
    for c in 0..CASES {
        let stream = format!("acme/case/c{c}");
        let of_case: Vec<(u64, &str)> = seen
            .iter()
            .filter(|(s, _, _)| *s == stream)
            .map(|(_, v, t)| (*v, t.as_str()))
            .collect();
        assert_eq!(
            of_case,
            vec![(1, "test.opened.v1"), (3, "test.happened.v1")],
            "{stream}"
        );
    }
    let _ = js.delete_stream(&bus.stream).await;
}

#[tokio::test]
async fn several_filters_take_only_their_events_in_order() {
    run_with_filters(1).await;
}

#[tokio::test]
async fn several_filters_on_a_partitioned_bus() {
    run_with_filters(3).await;
}
