//! The consumer library under faults, against a real NATS JetStream (NATS_URL; 2.11+ for pinned
//! priority groups) and real SQLite databases: outages are waited out in order, acks are
//! retried, crash-poison is bounded by `max_deliver`, dead letters are unique and replayable,
//! and several instances share the partitions with per-case order and exactly-once effects.

use async_nats::jetstream::Context;
use mahnwerk_bus::consumer::ConsumerStats;
use mahnwerk_bus::deadletter;
use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig, Envelope, Handler, HandlerError, Relay};
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use sqlx::{Any, Transaction};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn namespace() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn connect() -> Context {
    mahnwerk_bus::connect(&nats_url()).await.unwrap()
}

async fn wait_for<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The event log with `cases` case streams of `per_case` events each, and a relay publishing it.
struct Source {
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    relay: Option<JoinHandle<mahnwerk_bus::Result<()>>>,
}

impl Source {
    async fn start(bus: &BusConfig, js: &Context, cases: usize, per_case: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
        let log = EventLog::connect(&url).await.unwrap();
        // Interleave the cases: each round appends one event to every case.
        for round in 0..per_case {
            let batches = (0..cases)
                .map(|c| AppendBatch {
                    stream: format!("acme/case/c{c}").parse::<StreamId>().unwrap(),
                    expected: ExpectedVersion::Any,
                    events: vec![NewEvent {
                        event_id: event_id_now(),
                        event_type: if round == 0 {
                            "test.opened.v1".into()
                        } else {
                            "test.happened.v1".into()
                        },
                        payload: serde_json::json!({ "round": round }),
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
        let (stop, stopped) = oneshot::channel::<()>();
        let relay = tokio::spawn(Relay::new(bus.clone()).run(log, js.clone(), async {
            let _ = stopped.await;
        }));
        Source {
            _dir: dir,
            stop: Some(stop),
            relay: Some(relay),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.relay.take().unwrap().await.unwrap().unwrap();
    }
}

/// A service database whose `effects` table gets one row per handled event.
async fn service_db(dir: &tempfile::TempDir) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("svc.db").display());
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // WAL without an fsync per commit: the test is about order, not durability.
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA busy_timeout = 30000")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    sqlx::query("PRAGMA journal_mode = WAL")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS effects (stream TEXT NOT NULL, version BIGINT NOT NULL, instance TEXT NOT NULL, in_order BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("CREATE INDEX IF NOT EXISTS effects_stream ON effects (stream, version)")
        .execute(&pool)
        .await
        .unwrap();
    pool
}

/// Records every event in `effects`, noting whether it came right after the case's previous
/// one. Fails transiently while `outage` is set, permanently for events in `reject`, and
/// panics (a process-killing event) for `poison`; `gate` holds one event until released.
#[derive(Clone, Default)]
struct Recorder {
    instance: String,
    outage: Arc<AtomicBool>,
    reject: Arc<std::sync::Mutex<Vec<String>>>,
    poison: Option<(String, u64)>,
    calls: Arc<AtomicU64>,
    poison_calls: Arc<AtomicU64>,
    gate: Option<Gate>,
    /// Every event takes this long (a slow handler, not synchronisation).
    slow: Option<Duration>,
    /// Reject this (stream, version) as permanent.
    reject_at: Option<(String, u64)>,
    /// When handling this (stream, version), note in `dead_letters_seen` how many dead letters
    /// exist (plus one, so 0 means "not handled yet").
    observe_dead_letters: Option<(Context, BusConfig, String, u64)>,
    dead_letters_seen: Arc<AtomicU64>,
}

#[derive(Clone)]
struct Gate {
    stream: String,
    version: u64,
    entered: Arc<tokio::sync::Notify>,
    release: watch::Receiver<bool>,
}

#[allow(clippy::manual_async_fn)] // the trait asks for `impl Future + Send`
impl Handler for Recorder {
    fn handle<'a>(
        &'a self,
        event: &'a Envelope,
        tx: &'a mut Transaction<'static, Any>,
    ) -> impl std::future::Future<Output = Result<(), HandlerError>> + Send + 'a {
        async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some((stream, version)) = &self.poison
                && *stream == event.stream
                && *version == event.version
            {
                self.poison_calls.fetch_add(1, Ordering::SeqCst);
                panic!("simulated crash on a poison event");
            }
            if let Some(d) = self.slow {
                tokio::time::sleep(d).await;
            }
            if let Some(g) = &self.gate
                && g.stream == event.stream
                && g.version == event.version
            {
                g.entered.notify_one();
                let mut release = g.release.clone();
                let _ = release.wait_for(|r| *r).await;
            }
            if self.outage.load(Ordering::SeqCst) {
                return Err(HandlerError::Transient("database unavailable".into()));
            }
            if self.reject.lock().unwrap().contains(&event.event_id)
                || self.reject_at.as_ref() == Some(&(event.stream.clone(), event.version))
            {
                return Err(HandlerError::Permanent("rejected by the test".into()));
            }
            if let Some((js, bus, stream, version)) = &self.observe_dead_letters
                && *stream == event.stream
                && *version == event.version
            {
                let n = dead_letters(js, bus).await.len();
                self.dead_letters_seen
                    .store(u64::try_from(n).unwrap() + 1, Ordering::SeqCst);
            }
            let (prev,): (Option<i64>,) =
                sqlx::query_as("SELECT MAX(version) FROM effects WHERE stream = $1")
                    .bind(event.stream.clone())
                    .fetch_one(&mut **tx)
                    .await?;
            let version = i64::try_from(event.version).unwrap();
            let in_order = i64::from(prev.unwrap_or(0) == version - 1);
            sqlx::query(
                "INSERT INTO effects (stream, version, instance, in_order) VALUES ($1, $2, $3, $4)",
            )
            .bind(event.stream.clone())
            .bind(version)
            .bind(self.instance.clone())
            .bind(in_order)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    }
}

fn consumer_config(bus: &BusConfig) -> ConsumerConfig {
    let mut config = ConsumerConfig::new("svc", bus, ">");
    config.ack_wait = Duration::from_secs(2);
    config.pin_ttl = Duration::from_secs(2);
    config.backoff = vec![Duration::from_millis(5), Duration::from_millis(20)];
    config
}

struct Instance {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<mahnwerk_bus::Result<()>>,
    stats: Arc<ConsumerStats>,
}

fn start(
    js: &Context,
    bus: &BusConfig,
    config: ConsumerConfig,
    pool: &sqlx::AnyPool,
    handler: Recorder,
) -> Instance {
    let (stop, stopped) = oneshot::channel::<()>();
    let stats = config.stats.clone();
    let consumer = Consumer {
        config,
        bus: bus.clone(),
        pool: pool.clone(),
        handler,
    };
    let task = tokio::spawn(consumer.run(js.clone(), async {
        let _ = stopped.await;
    }));
    Instance {
        stop: Some(stop),
        task,
        stats,
    }
}

impl Instance {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn effects(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM effects")
        .fetch_one(pool)
        .await
        .unwrap()
        .0
}

/// Every case has versions 1..=per_case exactly once, each applied right after its
/// predecessor.
async fn assert_exactly_once_in_order(pool: &sqlx::AnyPool, cases: usize, per_case: usize) {
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT stream, version, in_order FROM effects")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), cases * per_case, "one effect per event");
    let mut by_case: HashMap<String, Vec<i64>> = HashMap::new();
    for (stream, version, in_order) in rows {
        assert_eq!(in_order, 1, "{stream} v{version} applied out of order");
        by_case.entry(stream).or_default().push(version);
    }
    assert_eq!(by_case.len(), cases);
    for (stream, mut versions) in by_case {
        versions.sort_unstable();
        let expected: Vec<i64> = (1..=i64::try_from(per_case).unwrap()).collect();
        assert_eq!(versions, expected, "{stream}: every version exactly once");
    }
}

async fn dead_letters(js: &Context, bus: &BusConfig) -> Vec<deadletter::DeadLetter> {
    deadletter::list(js, bus, None).await.unwrap()
}

/// Fails on the old library (5 attempts, then the event was dead-lettered and the case moved
/// on without it).
#[tokio::test]
async fn a_database_outage_longer_than_any_retry_budget_dead_letters_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace()).with_partitions(2);
    let source = Source::start(&bus, &js, 4, 5).await;
    let handler = Recorder {
        instance: "a".into(),
        ..Default::default()
    };
    handler.outage.store(true, Ordering::SeqCst);
    let instance = start(&js, &bus, consumer_config(&bus), &pool, handler.clone());
    // Far more failures than the old budget of 5 attempts per event.
    let stats = instance.stats.clone();
    wait_for("40 failed attempts", Duration::from_secs(20), || {
        let stats = stats.clone();
        async move { stats.retries.load(Ordering::SeqCst) >= 40 }
    })
    .await;
    assert_eq!(effects(&pool).await, 0);
    handler.outage.store(false, Ordering::SeqCst);
    wait_for("all 20 effects", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move { effects(&pool).await == 20 }
    })
    .await;
    instance.stop().await;
    source.stop().await;
    assert_exactly_once_in_order(&pool, 4, 5).await;
    assert!(
        dead_letters(&js, &bus).await.is_empty(),
        "an outage is not poison"
    );
}

/// A TCP proxy in front of NATS whose connections the test can cut and restore.
struct Proxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
}

async fn proxy() -> Proxy {
    let upstream = nats_url().trim_start_matches("nats://").to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cut_rx) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            if *cut_rx.borrow() {
                drop(inbound);
                continue;
            }
            let upstream = upstream.clone();
            let mut cut_rx = cut_rx.clone();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {},
                    _ = cut_rx.wait_for(|c| *c) => {},
                }
            });
        }
    });
    Proxy { addr, cut }
}

/// NATS goes away while an event is being handled: its ack fails after the commit. The
/// consumer retries the ack (or the server redelivers, and the inbox absorbs it); the case's
/// later events follow in order, each applied once, nothing dead-lettered.
#[tokio::test]
async fn a_failed_ack_is_retried_and_the_case_does_not_move_on() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    let source = Source::start(&bus, &js, 2, 4).await;
    let proxy = proxy().await;
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(500)))
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(format!("nats://{}", proxy.addr))
        .await
        .unwrap();
    let consumer_js = async_nats::jetstream::new(client.clone());
    let (release, release_rx) = watch::channel(false);
    let gate = Gate {
        stream: "acme/case/c0".into(),
        version: 2,
        entered: Arc::new(tokio::sync::Notify::new()),
        release: release_rx,
    };
    let handler = Recorder {
        instance: "a".into(),
        gate: Some(gate.clone()),
        ..Default::default()
    };
    let mut config = consumer_config(&bus);
    config.ack_wait = Duration::from_secs(5);
    let instance = start(&consumer_js, &bus, config, &pool, handler);
    gate.entered.notified().await;
    // Cut NATS while the handler works; it commits, then its ack cannot reach the server.
    proxy.cut.send_replace(true);
    wait_for("the client notices", Duration::from_secs(10), || {
        let state = client.connection_state();
        async move { state != async_nats::connection::State::Connected }
    })
    .await;
    release.send_replace(true);
    let stats = instance.stats.clone();
    wait_for("a failed ack", Duration::from_secs(10), || {
        let stats = stats.clone();
        async move { stats.ack_failures.load(Ordering::SeqCst) >= 1 }
    })
    .await;
    proxy.cut.send_replace(false);
    wait_for("all 8 effects", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move { effects(&pool).await == 8 }
    })
    .await;
    instance.stop().await;
    source.stop().await;
    assert_exactly_once_in_order(&pool, 2, 4).await;
    assert!(dead_letters(&js, &bus).await.is_empty());
}

/// An event that kills the process on every delivery is dead-lettered with reason
/// `max_deliver` on its last delivery instead of being handled again; the case then goes on.
/// Fails on the old library, which had no delivery bound (the restarts never end).
#[tokio::test]
async fn crash_poison_is_bounded_by_max_deliver_and_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    let source = Source::start(&bus, &js, 2, 3).await;
    let handler = Recorder {
        instance: "a".into(),
        poison: Some(("acme/case/c1".into(), 2)),
        ..Default::default()
    };
    let mut config = consumer_config(&bus);
    config.max_deliver = 3;
    config.ack_wait = Duration::from_secs(1);
    config.pin_ttl = Duration::from_secs(1);
    // Restart the "process" whenever it dies, until the dead letter is there.
    let mut restarts = 0;
    loop {
        let mut instance = start(&js, &bus, config.clone(), &pool, handler.clone());
        let done = tokio::select! {
            res = &mut instance.task => {
                assert!(res.unwrap_err().is_panic(), "the consumer died of the poison event");
                restarts += 1;
                assert!(restarts < 10, "max_deliver did not stop the crashes");
                false
            }
            () = wait_for("five effects", Duration::from_secs(30), || {
                let pool = pool.clone();
                async move { effects(&pool).await == 5 }
            }) => true,
        };
        if done {
            instance.stop().await;
            break;
        }
    }
    source.stop().await;
    // Deliveries 1 and 2 ran the handler (and killed it); the third was dead-lettered.
    assert_eq!(handler.poison_calls.load(Ordering::SeqCst), 2);
    let letters = dead_letters(&js, &bus).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, "max_deliver");
    assert_eq!(letters[0].delivered, 3);
    assert_eq!(letters[0].consumer, "svc");
    assert_eq!(letters[0].event_type.as_deref(), Some("test.happened.v1"));
    let versions: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM effects WHERE stream = 'acme/case/c1' ORDER BY rowid")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        versions,
        vec![(1,), (3,)],
        "the case went on after its dead letter"
    );
}

/// Two malformed messages get two dead letters (the old library gave both the id "malformed",
/// and the server dropped the second as a duplicate), each naming its origin.
#[tokio::test]
async fn two_malformed_messages_get_two_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    for i in 0..2 {
        js.publish(
            format!("{}.acme.case.test.garbage.v1.g{i}", bus.subject_prefix),
            format!("not json {i}").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let instance = start(&js, &bus, consumer_config(&bus), &pool, Recorder::default());
    wait_for("two dead letters", Duration::from_secs(20), || {
        let (js, bus) = (js.clone(), bus.clone());
        async move { dead_letters(&js, &bus).await.len() == 2 }
    })
    .await;
    instance.stop().await;
    let letters = dead_letters(&js, &bus).await;
    for (i, dl) in letters.iter().enumerate() {
        assert_eq!(dl.reason, "malformed");
        assert_eq!(dl.consumer, "svc");
        assert_eq!(dl.original_stream, bus.stream);
        assert_eq!(dl.original_sequence, u64::try_from(i).unwrap() + 1);
        assert_eq!(
            dl.original_subject,
            format!("{}.acme.case.test.garbage.v1.g{i}", bus.subject_prefix)
        );
        assert_eq!(dl.payload.as_ref(), format!("not json {i}").as_bytes());
    }
    assert_ne!(
        letters[0].headers.get("Nats-Msg-Id"),
        letters[1].headers.get("Nats-Msg-Id")
    );
}

/// An event rejected as Permanent is dead-lettered; once the cause is fixed an operator replays
/// it and the consumer handles it (exactly once, even if replayed twice).
#[tokio::test]
async fn a_replayed_dead_letter_is_handled_once() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace()).with_partitions(3);
    // Find the id of c0's second event as it will be published: append, then reject it.
    let source = Source::start(&bus, &js, 3, 2).await;
    let handler = Recorder {
        instance: "a".into(),
        ..Default::default()
    };
    let stream = bus.ensure_streams(&js).await.unwrap();
    wait_for("6 events published", Duration::from_secs(20), || {
        let mut stream = stream.clone();
        async move { stream.info().await.unwrap().state.messages == 6 }
    })
    .await;
    let mut rejected = None;
    for seq in 1..=6 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let env: Envelope = serde_json::from_slice(&m.payload).unwrap();
        // Stored under the public subject plus the partition token of the case.
        let id = env.stream.rsplit('/').next().unwrap().to_owned();
        let (public, partition) = m.subject.rsplit_once('.').unwrap();
        assert_eq!(
            public,
            format!("{}.acme.case.{}.{id}", bus.subject_prefix, env.event_type)
        );
        assert!(partition.parse::<u16>().unwrap() < 3);
        if env.stream == "acme/case/c0" && env.version == 2 {
            rejected = Some(env.event_id);
        }
    }
    let rejected = rejected.unwrap();
    handler.reject.lock().unwrap().push(rejected.clone());
    let instance = start(&js, &bus, consumer_config(&bus), &pool, handler.clone());
    wait_for(
        "5 effects and a dead letter",
        Duration::from_secs(20),
        || {
            let (js, bus, pool) = (js.clone(), bus.clone(), pool.clone());
            async move { effects(&pool).await == 5 && dead_letters(&js, &bus).await.len() == 1 }
        },
    )
    .await;
    let letters = dead_letters(&js, &bus).await;
    assert_eq!(letters[0].reason, "permanent");
    assert!(letters[0].error.contains("rejected by the test"));
    assert_eq!(letters[0].event_id.as_deref(), Some(rejected.as_str()));
    assert!(
        letters[0].original_subject.ends_with(".c0.2")
            || letters[0].original_subject.contains(".c0.")
    );
    // The cause is fixed; replay twice (an operator's double click).
    handler.reject.lock().unwrap().clear();
    let first = deadletter::replay(&js, &bus, letters[0].sequence)
        .await
        .unwrap();
    assert_eq!(first.subject, format!("{}.svc", bus.replay_prefix));
    let second = deadletter::replay(&js, &bus, letters[0].sequence)
        .await
        .unwrap();
    assert!(second.duplicate, "the second replay is recognised");
    wait_for("the replayed effect", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move { effects(&pool).await == 6 }
    })
    .await;
    // A replay of an event handled meanwhile changes nothing: publish it once more under a new id.
    js.publish(
        format!("{}.svc", bus.replay_prefix),
        letters[0].payload.clone(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let stats = instance.stats.clone();
    wait_for("the duplicate recognised", Duration::from_secs(20), || {
        let stats = stats.clone();
        async move { stats.duplicates.load(Ordering::SeqCst) >= 1 }
    })
    .await;
    instance.stop().await;
    source.stop().await;
    assert_exactly_once_in_order(&pool, 3, 2).await;
}

/// Three instances share 6 partitions of 10,000 events over 500 cases; one is killed in the
/// middle. Its in-flight events go to the others after the ack wait; every case's events are
/// applied in order, each exactly once. Fails on the old library (three instances on one consumer
/// interleave a case's events; there were no partitions).
#[tokio::test]
async fn three_instances_share_partitions_and_survive_one_being_killed() {
    const CASES: usize = 500;
    const PER_CASE: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace()).with_partitions(6);
    let source = Source::start(&bus, &js, CASES, PER_CASE).await;
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        // Each instance has its own connection, as separate processes would.
        let js = connect().await;
        let handler = Recorder {
            instance: name.into(),
            ..Default::default()
        };
        instances.push(start(&js, &bus, consumer_config(&bus), &pool, handler));
    }
    wait_for("a third of the events", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { effects(&pool).await >= 3_000 }
    })
    .await;
    let killed = instances.remove(0);
    killed.task.abort();
    assert!(killed.task.await.unwrap_err().is_cancelled());
    let at_kill = effects(&pool).await;
    wait_for("all 10,000 effects", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move { effects(&pool).await == 10_000 }
    })
    .await;
    for i in instances {
        i.stop().await;
    }
    source.stop().await;
    assert_exactly_once_in_order(&pool, CASES, PER_CASE).await;
    let after: Vec<(String, i64)> = sqlx::query_as(
        "SELECT instance, COUNT(*) FROM effects GROUP BY instance ORDER BY instance",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // Every instance did a share of the work, the killed one before it died.
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|(_, n)| *n > 0), "{after:?}");
    assert!(at_kill < 10_000);
    assert!(dead_letters(&js, &bus).await.is_empty());
}

/// Pinned mode: the server pins each partition to one instance; when the pinned instance is
/// killed its partitions move to the standby after the pin TTL, and order and exactly-once hold.
#[tokio::test]
async fn pinned_partitions_move_to_the_standby_when_their_instance_is_killed() {
    const CASES: usize = 40;
    const PER_CASE: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace()).with_partitions(2);
    let source = Source::start(&bus, &js, CASES, PER_CASE).await;
    let mut config = consumer_config(&bus);
    config.pinned = true;
    config.pin_ttl = Duration::from_secs(2);
    let start_instance = |name: &str, js: Context| {
        start(
            &js,
            &bus,
            config.clone(),
            &pool,
            Recorder {
                instance: name.into(),
                ..Default::default()
            },
        )
    };
    let first = start_instance("a", connect().await);
    wait_for(
        "the first instance at work",
        Duration::from_secs(20),
        || {
            let pool = pool.clone();
            async move { effects(&pool).await >= 50 }
        },
    )
    .await;
    let standby = start_instance("b", connect().await);
    first.task.abort();
    assert!(first.task.await.unwrap_err().is_cancelled());
    wait_for("all effects", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { effects(&pool).await == i64::try_from(CASES * PER_CASE).unwrap() }
    })
    .await;
    standby.stop().await;
    source.stop().await;
    assert_exactly_once_in_order(&pool, CASES, PER_CASE).await;
    let (by_standby,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM effects WHERE instance = 'b'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(by_standby > 0, "the standby took the partitions over");
}

/// A handler slower than the ack wait keeps its message (progress acks): the server does not
/// redeliver it, so it is neither handled twice nor counted towards crash-poison.
#[tokio::test]
async fn a_handler_slower_than_the_ack_wait_is_not_redelivered() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    let source = Source::start(&bus, &js, 1, 2).await;
    let mut config = consumer_config(&bus);
    config.ack_wait = Duration::from_secs(1);
    config.max_deliver = 2;
    let handler = Recorder {
        instance: "a".into(),
        slow: Some(Duration::from_millis(2500)),
        ..Default::default()
    };
    let instance = start(&js, &bus, config, &pool, handler.clone());
    wait_for("both effects", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move { effects(&pool).await == 2 }
    })
    .await;
    instance.stop().await;
    source.stop().await;
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        2,
        "each event handled once"
    );
    let mut c: async_nats::jetstream::consumer::PullConsumer = js
        .get_stream(&bus.stream)
        .await
        .unwrap()
        .get_consumer("svc")
        .await
        .unwrap();
    assert_eq!(c.info().await.unwrap().num_redelivered, 0);
    assert!(dead_letters(&js, &bus).await.is_empty());
}

/// A stream created with one partition count is refused by a process configured with another
/// (its consumers would miss events), by `ensure_streams` and by a consumer's `run`.
#[tokio::test]
async fn a_stream_with_another_partition_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let ns = namespace();
    BusConfig::with_namespace(&ns)
        .with_partitions(4)
        .ensure_streams(&js)
        .await
        .unwrap();
    for other in [1, 3] {
        let bus = BusConfig::with_namespace(&ns).with_partitions(other);
        let err = bus.ensure_streams(&js).await.unwrap_err();
        assert!(matches!(err, mahnwerk_bus::Error::Partitions(_)), "{err}");
        let consumer = Consumer {
            config: consumer_config(&bus),
            bus: bus.clone(),
            pool: pool.clone(),
            handler: Recorder::default(),
        };
        let res = consumer.run(js.clone(), std::future::pending()).await;
        assert!(matches!(res, Err(mahnwerk_bus::Error::Partitions(_))));
    }
}

/// A real database outage: another connection holds the service database's write lock, so the
/// consumer's transactions fail ("database is locked") for far longer than the old retry budget.
/// Nothing is dead-lettered, and once the lock is gone every event applies once, in order.
#[tokio::test]
async fn a_locked_service_database_is_waited_out() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let setup = service_db(&dir).await;
    setup.close().await;
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("svc.db").display());
    // The consumer's pool gives up on a lock after 20 ms (sqlx would wait 5 s).
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("PRAGMA busy_timeout = 20")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    mahnwerk_bus::consumer::ensure_inbox(&pool).await.unwrap();
    let mut locker = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut locker)
        .await
        .unwrap();
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    let source = Source::start(&bus, &js, 3, 4).await;
    let instance = start(
        &js,
        &bus,
        consumer_config(&bus),
        &pool,
        Recorder {
            instance: "a".into(),
            ..Default::default()
        },
    );
    let stats = instance.stats.clone();
    wait_for("20 failed attempts", Duration::from_secs(30), || {
        let stats = stats.clone();
        async move { stats.retries.load(Ordering::SeqCst) >= 20 }
    })
    .await;
    assert_eq!(stats.handled.load(Ordering::SeqCst), 0);
    sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
    wait_for("all 12 effects", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move { effects(&pool).await == 12 }
    })
    .await;
    instance.stop().await;
    source.stop().await;
    assert_exactly_once_in_order(&pool, 3, 4).await;
    assert!(dead_letters(&js, &bus).await.is_empty());
}

/// NATS goes away just as an event is to be dead-lettered: the dead-letter publish fails. The
/// consumer retries it and does not handle the case's next event before the dead letter is
/// stored. Fails on the old library, which moved on to the next (prefetched) event.
#[tokio::test]
async fn a_failed_dead_letter_publish_is_retried_before_the_case_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    let source = Source::start(&bus, &js, 1, 3).await;
    let proxy = proxy().await;
    let client = async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_millis(500)))
        .reconnect_delay_callback(|_| Duration::from_millis(50))
        .connect(format!("nats://{}", proxy.addr))
        .await
        .unwrap();
    let consumer_js = async_nats::jetstream::new(client.clone());
    let (release, release_rx) = watch::channel(false);
    let gate = Gate {
        stream: "acme/case/c0".into(),
        version: 2,
        entered: Arc::new(tokio::sync::Notify::new()),
        release: release_rx,
    };
    let handler = Recorder {
        instance: "a".into(),
        gate: Some(gate.clone()),
        reject_at: Some(("acme/case/c0".into(), 2)),
        observe_dead_letters: Some((js.clone(), bus.clone(), "acme/case/c0".into(), 3)),
        ..Default::default()
    };
    let mut config = consumer_config(&bus);
    config.ack_wait = Duration::from_secs(5);
    let instance = start(&consumer_js, &bus, config, &pool, handler.clone());
    gate.entered.notified().await;
    proxy.cut.send_replace(true);
    wait_for("the client notices", Duration::from_secs(10), || {
        let state = client.connection_state();
        async move { state != async_nats::connection::State::Connected }
    })
    .await;
    release.send_replace(true);
    let stats = instance.stats.clone();
    wait_for(
        "a failed dead-letter publish",
        Duration::from_secs(10),
        || {
            let stats = stats.clone();
            async move { stats.dead_letter_failures.load(Ordering::SeqCst) >= 1 }
        },
    )
    .await;
    assert_eq!(
        handler.dead_letters_seen.load(Ordering::SeqCst),
        0,
        "the next event waits while the dead letter is not stored"
    );
    proxy.cut.send_replace(false);
    wait_for("the next event handled", Duration::from_secs(20), || {
        let handler = handler.clone();
        async move { handler.dead_letters_seen.load(Ordering::SeqCst) > 0 }
    })
    .await;
    instance.stop().await;
    source.stop().await;
    assert_eq!(
        handler.dead_letters_seen.load(Ordering::SeqCst),
        2,
        "the dead letter was stored before the next event was handled"
    );
    assert_eq!(dead_letters(&js, &bus).await.len(), 1);
    let versions: Vec<(i64,)> = sqlx::query_as("SELECT version FROM effects ORDER BY rowid")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, vec![(1,), (3,)]);
}

/// A durable consumer left by the old library (1000 in flight, no delivery bound) is brought to
/// one in flight and a bounded delivery count when the consumer opens it.
#[tokio::test]
async fn an_old_durable_consumer_is_updated_to_one_in_flight() {
    use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
    let dir = tempfile::tempdir().unwrap();
    let pool = service_db(&dir).await;
    let js = connect().await;
    let bus = BusConfig::with_namespace(&namespace());
    let stream = bus.ensure_streams(&js).await.unwrap();
    let config = consumer_config(&bus);
    let _: PullConsumer = stream
        .create_consumer(pull::Config {
            durable_name: Some("svc".into()),
            filter_subject: config.filter_subject.clone(),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = Consumer {
        config,
        bus: bus.clone(),
        pool,
        handler: Recorder::default(),
    };
    let mut opened = consumer.open(&js).await.unwrap();
    let info = opened.info().await.unwrap();
    assert_eq!(info.config.max_ack_pending, 1);
    assert_eq!(info.config.max_deliver, 6);
    assert_eq!(info.config.ack_wait, Duration::from_secs(2));
}
