//! The event log's contract, run against every backend: SQLite always (a temporary file), and
//! PostgreSQL whenever `DATABASE_URL` is set (a fresh database `mahnwerk_el_<random>` per test,
//! dropped at the end). Each contract test is one async fn taking a [`TestDb`]; the `contract!`
//! macro generates `sqlite::<name>` and `postgres::<name>` tests from it.

use chrono::{TimeZone, Utc};
use mahnwerk_eventlog::{
    AppendBatch, Appended, Error, EventLog, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
    StreamId, TenantId, derived_event_id, event_id_now, verify_report_text,
};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// harness

enum Kind {
    Sqlite,
    Postgres { admin_url: String, database: String },
}

struct TestDb {
    url: String,
    kind: Kind,
    log: EventLog,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
        let log = EventLog::connect(&url).await.expect("connect sqlite");
        TestDb {
            url,
            kind: Kind::Sqlite,
            log,
            _dir: Some(dir),
        }
    }

    /// `None` when `DATABASE_URL` is unset.
    async fn postgres() -> Option<TestDb> {
        let admin_url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let database = format!("mahnwerk_el_{:016x}", rand::random::<u64>());
        let admin = admin(&admin_url).await;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let url = with_database(&admin_url, &database);
        let log = EventLog::connect(&url).await.expect("connect postgres");
        Some(TestDb {
            url,
            kind: Kind::Postgres {
                admin_url,
                database,
            },
            log,
            _dir: None,
        })
    }

    fn is_pg(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    /// A second, independent handle on the same database (its own pool: like another process).
    async fn reopen(&self) -> EventLog {
        EventLog::connect(&self.url).await.expect("reopen")
    }

    async fn cleanup(self) {
        let TestDb {
            kind, log, _dir, ..
        } = self;
        drop(log);
        if let Kind::Postgres {
            admin_url,
            database,
        } = kind
        {
            let admin = admin(&admin_url).await;
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
            admin.close().await;
        }
    }
}

async fn admin(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .expect("DATABASE_URL must point at a reachable PostgreSQL")
}

/// `postgres://user@host:port/db?params` with the database replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{database}?{q}"),
        None => format!("{host_part}/{database}"),
    }
}

/// Without `DATABASE_URL` the PostgreSQL half passes without running: say so where it shows
/// (straight to stderr, past the test harness's capture), once per run.
fn say_sqlite_only(test: &str) {
    use std::io::Write as _;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "mahnwerk-eventlog contract: DATABASE_URL is unset, so the contract ran on SQLite only \
             (postgres::{test} and the other postgres:: tests did nothing)"
        );
    });
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::TestDb::postgres().await else {
                        super::say_sqlite_only(stringify!($name));
                        return;
                    };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

contract!(
    append_then_read_by_stream_and_position,
    expected_version_is_checked_and_conflicts_write_nothing,
    two_concurrent_writers_one_wins_the_other_conflicts,
    append_many_commits_good_batches_and_refuses_bad_ones,
    duplicate_event_id_is_refused_for_idempotent_handlers,
    invalid_events_are_refused_before_anything_is_written,
    update_delete_and_replace_are_refused_by_the_database,
    tampered_payload_makes_verify_name_the_event,
    other_tampering_is_named_too,
    verify_names_a_deleted_last_event_of_a_stream,
    verify_names_a_payload_with_a_duplicate_key,
    verify_names_a_changed_recorded_at,
    verify_accepts_an_untouched_log_with_awkward_json,
    concurrent_appenders_and_a_follower_see_every_event_once_without_gaps,
    another_writer_between_appends_is_not_missed,
    concurrent_appends_on_one_handle_share_transactions,
    an_abandoned_append_commits_whole_or_not_at_all,
    checkpoints_round_trip,
    watch_head_follows_commits,
    migrations_are_idempotent_and_kept_apart,
    the_tail_carries_each_commit_exactly_as_the_log_reads_it,
    enqueued_appends_apply_in_call_order,
);

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_across_calls() {
    let log = EventLog::connect("sqlite::memory:").await.expect("memory");
    let s = stream("acme", "mem");
    log.append(batch(&s, ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    assert_eq!(log.read_stream(&s, 1, 10).await.unwrap().len(), 3);
    assert_eq!(log.head_position().await.unwrap(), 3);
    assert!(log.verify().await.unwrap().is_ok());
}

#[tokio::test]
async fn unknown_url_schemes_are_refused() {
    assert!(matches!(
        EventLog::connect("mysql://x/y").await,
        Err(Error::Invalid(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// helpers

fn tenant(t: &str) -> TenantId {
    t.parse().expect("tenant")
}

fn stream(t: &str, id: &str) -> StreamId {
    StreamId::new(&tenant(t), "case", id)
}

fn meta() -> Metadata {
    Metadata {
        correlation_id: Some("corr-1".into()),
        causation_id: None,
        actor: "test".into(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: "invoice.issued.v1".into(),
        payload: json!({"n": n, "amount": {"minor": 125_000 + n, "currency": "EUR"}, "note": "Grüße"}),
        occurred_at: Utc
            .with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
            .single()
            .expect("time")
            + chrono::Duration::nanoseconds(123_456_789),
        metadata: meta(),
    }
}

fn batch(stream: &StreamId, expected: ExpectedVersion, n: usize) -> AppendBatch {
    AppendBatch {
        stream: stream.clone(),
        expected,
        events: (0..n as u64).map(event).collect(),
    }
}

async fn all_events(log: &EventLog) -> Vec<RecordedEvent> {
    log.read_all(0, usize::MAX).await.expect("read_all")
}

/// Runs raw SQL on the backend's own pool and returns the error text, if any.
async fn raw(db: &TestDb, sql: &str) -> Result<u64, String> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    let r = if let Some(pool) = db.log.pg_pool() {
        sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    } else if let Some(pool) = db.log.sqlite_pool() {
        sqlx::query(sql)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    } else {
        unreachable!()
    };
    r.map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// the contract

async fn append_then_read_by_stream_and_position(db: &TestDb) {
    let log = &db.log;
    assert_eq!(log.head_position().await.unwrap(), 0);
    let a = stream("acme", "a");
    let b = stream("beta", "b");
    assert_eq!(log.stream_version(&a).await.unwrap(), None);

    let sent = batch(&a, ExpectedVersion::NoStream, 3);
    let got = log.append(sent.clone()).await.expect("append a");
    assert_eq!(
        got,
        Appended {
            stream: a.clone(),
            first_version: 1,
            last_version: 3,
            first_position: 1,
            last_position: 3
        }
    );
    let got_b = log
        .append(batch(&b, ExpectedVersion::Any, 2))
        .await
        .expect("append b");
    assert_eq!(
        (
            got_b.first_position,
            got_b.last_position,
            got_b.last_version
        ),
        (4, 5, 2)
    );

    let read = log.read_stream(&a, 1, 100).await.unwrap();
    assert_eq!(read.len(), 3);
    for (i, (r, s)) in read.iter().zip(&sent.events).enumerate() {
        assert_eq!(r.version, i as u64 + 1);
        assert_eq!(r.position, i as i64 + 1);
        assert_eq!(r.event_id, s.event_id);
        assert_eq!(r.stream, a);
        assert_eq!(r.tenant, tenant("acme"));
        assert_eq!(r.event_type, s.event_type);
        assert_eq!(r.payload, s.payload);
        assert_eq!(r.metadata, s.metadata);
        // Stored with microsecond precision.
        assert_eq!(
            r.occurred_at.timestamp_micros(),
            s.occurred_at.timestamp_micros()
        );
        assert_eq!(r.occurred_at.timestamp_subsec_nanos() % 1000, 0);
        assert_eq!(r.hash.len(), 64);
        assert!(r.hash.bytes().all(|c| c.is_ascii_hexdigit()));
    }
    let hashes: HashSet<_> = read.iter().map(|r| r.hash.clone()).collect();
    assert_eq!(hashes.len(), 3, "every event has its own hash");

    let from2 = log.read_stream(&a, 2, 1).await.unwrap();
    assert_eq!(from2.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2]);
    assert!(
        log.read_stream(&stream("acme", "nope"), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let all = all_events(log).await;
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(all[3].stream, b);
    assert_eq!(all[3].tenant, tenant("beta"));
    let after3 = log.read_all(3, 1).await.unwrap();
    assert_eq!(after3.len(), 1);
    assert_eq!(after3[0].position, 4);
    assert!(log.read_all(5, 10).await.unwrap().is_empty());

    assert_eq!(log.head_position().await.unwrap(), 5);
    assert_eq!(log.stream_version(&a).await.unwrap(), Some(3));
    assert_eq!(log.stream_version(&b).await.unwrap(), Some(2));
    let expected_backend = if db.is_pg() { "postgres" } else { "sqlite" };
    assert_eq!(log.backend_name(), expected_backend);
}

async fn expected_version_is_checked_and_conflicts_write_nothing(db: &TestDb) {
    let log = &db.log;
    let s = stream("acme", "ev");
    // Exact on a missing stream.
    match log.append(batch(&s, ExpectedVersion::Exact(5), 1)).await {
        Err(Error::Conflict {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(
                (stream, expected, actual),
                (s.clone(), ExpectedVersion::Exact(5), None)
            );
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    log.append(batch(&s, ExpectedVersion::Exact(0), 2))
        .await
        .expect("Exact(0) == NoStream");
    match log.append(batch(&s, ExpectedVersion::NoStream, 1)).await {
        Err(Error::Conflict {
            actual: Some(2), ..
        }) => {}
        other => panic!("expected conflict with actual 2, got {other:?}"),
    }
    match log.append(batch(&s, ExpectedVersion::Exact(1), 1)).await {
        Err(
            e @ Error::Conflict {
                actual: Some(2), ..
            },
        ) => {
            assert!(
                e.to_string().contains("version conflict on acme/case/ev"),
                "{e}"
            );
        }
        other => panic!("expected conflict, got {other:?}"),
    }
    assert_eq!(
        log.stream_version(&s).await.unwrap(),
        Some(2),
        "conflicts wrote nothing"
    );
    assert_eq!(log.head_position().await.unwrap(), 2);
    let ok = log
        .append(batch(&s, ExpectedVersion::Exact(2), 2))
        .await
        .unwrap();
    assert_eq!(
        (
            ok.first_version,
            ok.last_version,
            ok.first_position,
            ok.last_position
        ),
        (3, 4, 3, 4)
    );
    let ok = log
        .append(batch(&s, ExpectedVersion::Any, 1))
        .await
        .unwrap();
    assert_eq!(ok.last_version, 5);
    let versions: Vec<u64> = log
        .read_stream(&s, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
}

/// Must show 1: two concurrent writers to one stream with the same expected version: exactly
/// one wins, the other gets a conflict; the stream's versions are 1..n without gap or duplicate.
async fn two_concurrent_writers_one_wins_the_other_conflicts(db: &TestDb) {
    // Two independent handles (pools), as two processes would have.
    let w1 = db.log.clone();
    let w2 = db.reopen().await;
    let s = stream("acme", "race");
    let rounds = 40u64;
    let mut version = 0u64;
    for round in 0..rounds {
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        // Batches of different sizes, so a lost update would show as a wrong version count.
        let b1 = batch(&s, expected, 1 + (round % 3) as usize);
        let b2 = batch(&s, expected, 1);
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let spawn = |w: EventLog, b: AppendBatch| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                w.append(b).await
            })
        };
        // Odd rounds: both writers share one handle (its writer task groups them into one
        // transaction, where the second must still conflict).
        let second = if round % 2 == 0 {
            w2.clone()
        } else {
            w1.clone()
        };
        let (t1, t2) = (spawn(w1.clone(), b1.clone()), spawn(second, b2.clone()));
        let (r1, r2) = (t1.await.expect("task 1"), t2.await.expect("task 2"));
        let (winner, loser, won) = match (&r1, &r2) {
            (Ok(a), Err(e)) => (a.clone(), e, &b1),
            (Err(e), Ok(a)) => (a.clone(), e, &b2),
            other => panic!("round {round}: exactly one writer must win, got {other:?}"),
        };
        match loser {
            Error::Conflict {
                stream,
                expected: e,
                actual,
            } => {
                assert_eq!(stream, &s);
                assert_eq!(*e, expected);
                assert_eq!(
                    *actual,
                    Some(winner.last_version),
                    "the loser sees the winner's version"
                );
            }
            other => panic!("round {round}: the loser must get a conflict, got {other:?}"),
        }
        assert_eq!(winner.first_version, version + 1);
        assert_eq!(winner.last_version, version + won.events.len() as u64);
        version = winner.last_version;
        assert_eq!(db.log.stream_version(&s).await.unwrap(), Some(version));
    }
    let events = db.log.read_stream(&s, 0, usize::MAX).await.unwrap();
    let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
    assert_eq!(
        versions,
        (1..=version).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let ids: HashSet<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), events.len());
    assert!(db.log.verify().await.unwrap().is_ok());
}

async fn append_many_commits_good_batches_and_refuses_bad_ones(db: &TestDb) {
    let log = &db.log;
    let existing = stream("acme", "existing");
    let first = log
        .append(batch(&existing, ExpectedVersion::NoStream, 2))
        .await
        .unwrap();
    let recorded_id = log.read_stream(&existing, 1, 1).await.unwrap()[0].event_id;

    let a = stream("acme", "a");
    let b = stream("beta", "b");
    let mut dup = batch(&stream("acme", "dup"), ExpectedVersion::Any, 2);
    dup.events[1].event_id = recorded_id;
    let batches = vec![
        batch(&a, ExpectedVersion::NoStream, 3),        // 0: ok
        batch(&existing, ExpectedVersion::Exact(1), 1), // 1: conflict (is 2)
        dup,                                            // 2: duplicate event id
        batch(&b, ExpectedVersion::NoStream, 1),        // 3: ok
        batch(&a, ExpectedVersion::Exact(3), 2),        // 4: ok, chains on batch 0
        AppendBatch {
            stream: b.clone(),
            expected: ExpectedVersion::Any,
            events: vec![],
        }, // 5: invalid
        batch(&existing, ExpectedVersion::Exact(2), 1), // 6: ok
        batch(&b, ExpectedVersion::NoStream, 1),        // 7: conflict with batch 3
    ];
    let results = log.append_many(batches).await.expect("group commit");
    assert_eq!(results.len(), 8);
    let ok = |i: usize| {
        results[i]
            .as_ref()
            .unwrap_or_else(|e| panic!("batch {i}: {e}"))
            .clone()
    };
    let r0 = ok(0);
    assert_eq!((r0.first_version, r0.last_version), (1, 3));
    assert_eq!(r0.first_position, first.last_position + 1);
    assert!(
        matches!(
            results[1],
            Err(Error::Conflict {
                actual: Some(2),
                ..
            })
        ),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[2], Err(Error::DuplicateEvent(id)) if id == recorded_id),
        "{:?}",
        results[2]
    );
    let r3 = ok(3);
    let r4 = ok(4);
    assert!(
        matches!(results[5], Err(Error::Invalid(_))),
        "{:?}",
        results[5]
    );
    let r6 = ok(6);
    assert!(
        matches!(
            results[7],
            Err(Error::Conflict {
                actual: Some(1),
                ..
            })
        ),
        "{:?}",
        results[7]
    );
    assert_eq!((r4.first_version, r4.last_version), (4, 5));
    assert_eq!(r6.first_version, 3);
    // Positions of the committed batches are dense and in batch order.
    assert_eq!(r3.first_position, r0.last_position + 1);
    assert_eq!(r4.first_position, r3.last_position + 1);
    assert_eq!(r6.first_position, r4.last_position + 1);
    assert_eq!(log.head_position().await.unwrap(), r6.last_position);
    assert!(
        log.read_stream(&stream("acme", "dup"), 0, 10)
            .await
            .unwrap()
            .is_empty(),
        "refused batch not written"
    );
    let all = all_events(log).await;
    assert_eq!(all.len() as i64, r6.last_position);
    assert!(all.windows(2).all(|w| w[1].position == w[0].position + 1));
    assert!(log.verify().await.unwrap().is_ok());

    // A group where every batch fails writes nothing and still answers per batch.
    let results = log
        .append_many(vec![batch(&a, ExpectedVersion::NoStream, 1)])
        .await
        .unwrap();
    assert!(matches!(results[0], Err(Error::Conflict { .. })));
    assert!(log.append_many(vec![]).await.unwrap().is_empty());
    assert_eq!(log.head_position().await.unwrap(), r6.last_position);
}

async fn duplicate_event_id_is_refused_for_idempotent_handlers(db: &TestDb) {
    let log = &db.log;
    let source = event_id_now();
    let id = derived_event_id(source, "dunning", 0);
    assert_eq!(id, derived_event_id(source, "dunning", 0), "deterministic");
    assert_ne!(id, derived_event_id(source, "dunning", 1));
    assert_ne!(id, derived_event_id(source, "letters", 0));
    let s = stream("acme", "idem");
    let mut b = batch(&s, ExpectedVersion::Any, 1);
    b.events[0].event_id = id;
    log.append(b.clone()).await.expect("first time");
    match log.append(b.clone()).await {
        Err(e @ Error::DuplicateEvent(_)) => assert!(e.to_string().contains(&id.to_string())),
        other => panic!("expected duplicate, got {other:?}"),
    }
    // Also on another stream: event ids are unique in the whole log.
    let mut other = batch(&stream("acme", "other"), ExpectedVersion::Any, 1);
    other.events[0].event_id = id;
    assert!(matches!(log.append(other).await, Err(Error::DuplicateEvent(d)) if d == id));
    // The same id twice in one batch.
    let mut twice = batch(&stream("acme", "twice"), ExpectedVersion::Any, 2);
    twice.events[1].event_id = twice.events[0].event_id;
    assert!(matches!(
        log.append(twice).await,
        Err(Error::DuplicateEvent(_))
    ));
    // The same id in two batches of one group: the first wins.
    let fresh = event_id_now();
    let mut g1 = batch(&stream("acme", "g1"), ExpectedVersion::Any, 1);
    let mut g2 = batch(&stream("acme", "g2"), ExpectedVersion::Any, 1);
    g1.events[0].event_id = fresh;
    g2.events[0].event_id = fresh;
    let r = log.append_many(vec![g1, g2]).await.unwrap();
    assert!(r[0].is_ok());
    assert!(matches!(r[1], Err(Error::DuplicateEvent(d)) if d == fresh));
    assert_eq!(log.head_position().await.unwrap(), 2);
}

async fn invalid_events_are_refused_before_anything_is_written(db: &TestDb) {
    let log = &db.log;
    let s = stream("acme", "bad");
    let mut nul = batch(&s, ExpectedVersion::Any, 2);
    nul.events[1].payload = json!({"name": "a\u{0}b"});
    assert!(matches!(log.append(nul).await, Err(Error::Invalid(_))));
    for bad_type in ["", "has space", "x\ny"] {
        let mut b = batch(&s, ExpectedVersion::Any, 1);
        b.events[0].event_type = bad_type.into();
        assert!(
            matches!(log.append(b).await, Err(Error::Invalid(_))),
            "type {bad_type:?}"
        );
    }
    let mut far = batch(&s, ExpectedVersion::Any, 1);
    far.events[0].occurred_at = Utc.with_ymd_and_hms(12000, 1, 1, 0, 0, 0).single().unwrap();
    assert!(matches!(log.append(far).await, Err(Error::Invalid(_))));
    assert!(matches!(
        log.append(AppendBatch {
            stream: s.clone(),
            expected: ExpectedVersion::Any,
            events: vec![]
        })
        .await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(log.head_position().await.unwrap(), 0);
    assert!(all_events(log).await.is_empty());
}

/// Must show 2, first half: the database itself refuses UPDATE and DELETE (and on PostgreSQL
/// TRUNCATE, and also with `session_replication_role = replica`; on SQLite `INSERT OR REPLACE`).
async fn update_delete_and_replace_are_refused_by_the_database(db: &TestDb) {
    let log = &db.log;
    let s = stream("acme", "guarded");
    log.append(batch(&s, ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    let update = raw(
        db,
        "UPDATE events SET event_type = 'x.v1' WHERE position = 2",
    )
    .await;
    assert!(
        update.as_ref().is_err_and(|e| e.contains("append-only")),
        "UPDATE must fail: {update:?}"
    );
    let delete = raw(db, "DELETE FROM events WHERE position = 3").await;
    assert!(
        delete.as_ref().is_err_and(|e| e.contains("append-only")),
        "DELETE must fail: {delete:?}"
    );
    let delete_none = raw(db, "DELETE FROM events WHERE position = 999").await;
    if db.is_pg() {
        // Statement-level: even a DELETE that matches nothing is refused.
        assert!(delete_none.is_err(), "{delete_none:?}");
        let truncate = raw(db, "TRUNCATE events").await;
        assert!(
            truncate.as_ref().is_err_and(|e| e.contains("append-only")),
            "TRUNCATE must fail: {truncate:?}"
        );
        // Switching to replica mode (which silences ordinary triggers) does not help.
        let pool = log.pg_pool().unwrap();
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SET session_replication_role = replica")
            .execute(&mut *conn)
            .await
            .unwrap();
        let r = sqlx::query("UPDATE events SET payload = '{}' WHERE position = 1")
            .execute(&mut *conn)
            .await;
        assert!(r.is_err(), "UPDATE in replica mode must fail");
        sqlx::query("RESET session_replication_role")
            .execute(&mut *conn)
            .await
            .unwrap();
    } else {
        let replace = raw(
            db,
            "INSERT OR REPLACE INTO events SELECT position, event_id, stream_id, stream_version, tenant, \
             event_type, '{\"forged\":true}', occurred_at, recorded_at, correlation_id, causation_id, actor, \
             traceparent, hash, hash_version FROM events WHERE position = 1",
        )
        .await;
        assert!(
            replace.as_ref().is_err_and(|e| e.contains("append-only")),
            "REPLACE must fail: {replace:?}"
        );
        let upsert = raw(
            db,
            "INSERT INTO events SELECT * FROM events WHERE position = 1 \
             ON CONFLICT (position) DO UPDATE SET payload = '{}'",
        )
        .await;
        assert!(upsert.is_err(), "upsert must fail: {upsert:?}");
    }
    let events = log.read_stream(&s, 0, 10).await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].event_type, "invoice.issued.v1");
    assert!(events[0].payload.get("forged").is_none());
    assert!(log.verify().await.unwrap().is_ok());
}

/// Must show 2, second half: a superuser disables the guard and changes one stored payload;
/// `verify` names exactly that event.
async fn tampered_payload_makes_verify_name_the_event(db: &TestDb) {
    let log = &db.log;
    let a = stream("acme", "a");
    let b = stream("acme", "b");
    for _ in 0..3 {
        log.append(batch(&a, ExpectedVersion::Any, 2))
            .await
            .unwrap();
        log.append(batch(&b, ExpectedVersion::Any, 1))
            .await
            .unwrap();
    }
    // Stream a: positions 1,2 | 4,5 | 7,8; the victim is a's version 3 at position 4.
    let victim = log.read_all(3, 1).await.unwrap().remove(0);
    assert_eq!(
        (victim.position, victim.stream.clone(), victim.version),
        (4, a.clone(), 3)
    );
    let report = log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!((report.streams, report.events), (2, 9));
    assert!(verify_report_text(&report).starts_with("ok"));

    if db.is_pg() {
        let pool = log.pg_pool().unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
            .execute(&mut *tx)
            .await
            .unwrap();
        let n = sqlx::query(
            "UPDATE events SET payload = jsonb_set(payload::jsonb, '{amount,minor}', '1')::json WHERE position = 4",
        )
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(n, 1);
        sqlx::query("ALTER TABLE events ENABLE ALWAYS TRIGGER events_no_update_delete")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    } else {
        let pool = log.sqlite_pool().unwrap();
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("DROP TRIGGER events_no_update")
            .execute(&mut *tx)
            .await
            .unwrap();
        let n = sqlx::query(
            "UPDATE events SET payload = json_set(payload, '$.amount.minor', 1) WHERE position = 4",
        )
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(n, 1);
        tx.commit().await.unwrap();
    }
    let changed = log.read_all(3, 1).await.unwrap().remove(0);
    assert_eq!(
        changed.payload["amount"]["minor"],
        json!(1),
        "the tamper took effect"
    );

    let report = log.verify().await.unwrap();
    let broken = report
        .first_broken
        .clone()
        .expect("verify must find the tampered event");
    assert_eq!(broken.position, 4);
    assert_eq!(broken.stream, a);
    assert_eq!(broken.version, 3);
    assert_eq!(broken.event_id, victim.event_id);
    assert!(broken.reason.contains("hash mismatch"), "{}", broken.reason);
    assert_eq!((report.streams, report.events), (2, 9));
    let text = verify_report_text(&report);
    assert!(
        text.contains("position 4") && text.contains(&victim.event_id.to_string()),
        "{text}"
    );
    assert!(text.contains("acme/case/a"), "{text}");
}

async fn verify_accepts_an_untouched_log_with_awkward_json(db: &TestDb) {
    let log = &db.log;
    let empty = log.verify().await.unwrap();
    assert_eq!(
        (empty.streams, empty.events, empty.first_broken.is_none()),
        (0, 0, true)
    );
    // Keys out of order, nested objects, floats, big integers, unicode and escapes: a store that
    // reorders and reformats all of this (PostgreSQL jsonb did, before ADR 003), or a reader
    // that re-encodes it, must not change the canonical hash.
    let payloads = [
        serde_json::from_str::<serde_json::Value>(
            r#"{"z": 1, "a": {"y": [3, 2, {"k": "v", "b": null}], "x": true}, "m": 1.50, "e": 1e-7}"#,
        )
        .unwrap(),
        json!({"big": 9_007_199_254_740_993_u64, "neg": -42, "f": 0.1, "huge": 1e300, "tiny": 5e-324}),
        // Parses one ULP off without serde_json's float_roundtrip (a false tamper alarm).
        json!({"ulp": 1.354_193_882_001_396e-259, "max": f64::MAX, "min": -f64::MAX}),
        json!({"text": "Grüße € 😀 \"quoted\" \\ \n\t \u{1f} \u{2028}", "\u{fb33}": 1, "\u{20ac}": 2, "😀": 3}),
        json!([1, "two", [3], {"four": 4}]),
        json!("just a string"),
        json!(null),
        json!({}),
    ];
    let s = stream("acme", "json");
    for p in &payloads {
        let mut b = batch(&s, ExpectedVersion::Any, 1);
        b.events[0].payload = p.clone();
        b.events[0].metadata = Metadata {
            actor: "a \"quoted\" actor".into(),
            ..Metadata::default()
        };
        log.append(b).await.unwrap();
    }
    let report = log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, payloads.len() as u64);
    let read = log.read_stream(&s, 0, 100).await.unwrap();
    for (r, p) in read.iter().zip(&payloads) {
        assert_eq!(&r.payload, p);
    }
}

/// The "sequence hands out positions before commit" trap: appenders race, a follower reading
/// `position > last seen` must see every event exactly once, in a gap-free order.
async fn concurrent_appenders_and_a_follower_see_every_event_once_without_gaps(db: &TestDb) {
    const WRITERS: usize = 8;
    let per_writer: usize = if db.is_pg() { 300 } else { 500 };
    let total = WRITERS * per_writer;
    let follower_log = db.reopen().await;
    let mut head_rx = db.log.watch_head();
    let follower = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(total);
        let mut ids = HashSet::with_capacity(total);
        let mut last = 0i64;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while seen.len() < total {
            assert!(
                tokio::time::Instant::now() < deadline,
                "follower saw only {} of {total}",
                seen.len()
            );
            let page = follower_log.read_all(last, 500).await.expect("follow");
            if page.is_empty() {
                // Wake on a commit, or poll again after a short while.
                let _ = tokio::time::timeout(Duration::from_millis(20), head_rx.changed()).await;
                continue;
            }
            for e in page {
                assert_eq!(e.position, last + 1, "gap or reorder after position {last}");
                assert!(ids.insert(e.event_id), "event {} seen twice", e.event_id);
                last = e.position;
                seen.push(e.event_id);
            }
        }
        seen
    });
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        // Half the writers share the main handle, half have their own pool.
        let log = if w % 2 == 0 {
            db.log.clone()
        } else {
            db.reopen().await
        };
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(per_writer);
            let mut i = 0;
            while i < per_writer {
                // Mix single appends and small groups over a few shared streams.
                let s = stream("acme", &format!("s{}", (w + i) % 5));
                if i % 7 == 0 && i + 3 <= per_writer {
                    let batches: Vec<_> = (0..3)
                        .map(|k| {
                            batch(
                                &stream("beta", &format!("w{w}-{}", (i + k) % 4)),
                                ExpectedVersion::Any,
                                1,
                            )
                        })
                        .collect();
                    ids.extend(batches.iter().map(|b| b.events[0].event_id));
                    for r in log.append_many(batches).await.expect("append_many") {
                        r.expect("group batch");
                    }
                    i += 3;
                } else {
                    let b = batch(&s, ExpectedVersion::Any, 1);
                    ids.push(b.events[0].event_id);
                    log.append(b).await.expect("append");
                    i += 1;
                }
            }
            ids
        }));
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    let seen = follower.await.expect("follower");
    assert_eq!(written.len(), total);
    assert_eq!(seen.len(), total);
    assert_eq!(
        seen.iter().copied().collect::<HashSet<_>>(),
        written,
        "follower saw exactly what was written"
    );
    assert_eq!(db.log.head_position().await.unwrap(), total as i64);
    // Every stream's versions are gap-free too.
    let all = all_events(&db.log).await;
    let mut versions: std::collections::HashMap<StreamId, u64> = std::collections::HashMap::new();
    for e in &all {
        let v = versions.entry(e.stream.clone()).or_insert(0);
        assert_eq!(e.version, *v + 1, "stream {} version gap", e.stream);
        *v = e.version;
    }
    let report = db.log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, total as u64);
}

async fn checkpoints_round_trip(db: &TestDb) {
    let log = &db.log;
    assert_eq!(log.load_checkpoint("relay").await.unwrap(), 0);
    log.save_checkpoint("relay", 42).await.unwrap();
    log.save_checkpoint("consumer.dunning", 7).await.unwrap();
    assert_eq!(log.load_checkpoint("relay").await.unwrap(), 42);
    log.save_checkpoint("relay", 43).await.unwrap();
    assert_eq!(log.load_checkpoint("relay").await.unwrap(), 43);
    assert_eq!(
        db.reopen()
            .await
            .load_checkpoint("consumer.dunning")
            .await
            .unwrap(),
        7
    );
}

async fn watch_head_follows_commits(db: &TestDb) {
    let log = &db.log;
    let mut rx = log.watch_head();
    assert_eq!(*rx.borrow_and_update(), 0);
    log.append(batch(&stream("acme", "w"), ExpectedVersion::Any, 3))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), rx.changed())
        .await
        .expect("woken")
        .unwrap();
    assert_eq!(*rx.borrow_and_update(), 3);
    // A clone shares the watch.
    log.clone()
        .append(batch(&stream("acme", "w"), ExpectedVersion::Any, 1))
        .await
        .unwrap();
    assert_eq!(*log.watch_head().borrow(), 4);

    // Another handle starts at the current head.
    let other = db.reopen().await;
    let mut other_rx = other.watch_head();
    assert_eq!(*other_rx.borrow_and_update(), 4);
    log.append(batch(&stream("acme", "w"), ExpectedVersion::Any, 2))
        .await
        .unwrap();
    if db.is_pg() {
        // Commits of another process arrive through LISTEN/NOTIFY.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while *other_rx.borrow_and_update() < 6 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "NOTIFY of another handle's commit never arrived"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), other_rx.changed()).await;
        }
    } else {
        // SQLite has no cross-process signal: head_position() refreshes the watch.
        assert_eq!(other.head_position().await.unwrap(), 6);
        assert_eq!(*other_rx.borrow_and_update(), 6);
    }
}

async fn migrations_are_idempotent_and_kept_apart(db: &TestDb) {
    db.log
        .append(batch(&stream("acme", "m"), ExpectedVersion::Any, 1))
        .await
        .unwrap();
    // Connecting again re-runs the migrator: nothing to do, data kept.
    let again = db.reopen().await;
    assert_eq!(again.head_position().await.unwrap(), 1);
    if let Some(pool) = db.log.pg_pool() {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(
            tables,
            vec![
                "eventlog._sqlx_migrations",
                "eventlog.checkpoints",
                "eventlog.events"
            ]
        );
    } else {
        let pool = db.log.sqlite_pool().unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(
            tables,
            vec!["_eventlog_migrations", "checkpoints", "events"]
        );
    }
    // A foreign sqlx migration history in the default table does not disturb ours.
    if db.is_pg() {
        raw(
            db,
            "CREATE TABLE public._sqlx_migrations (version BIGINT PRIMARY KEY)",
        )
        .await
        .unwrap();
    } else {
        raw(
            db,
            "CREATE TABLE _sqlx_migrations (version INTEGER PRIMARY KEY)",
        )
        .await
        .unwrap();
    }
    raw(
        db,
        if db.is_pg() {
            "INSERT INTO public._sqlx_migrations VALUES (99)"
        } else {
            "INSERT INTO _sqlx_migrations VALUES (99)"
        },
    )
    .await
    .unwrap();
    let third = db.reopen().await;
    assert_eq!(third.head_position().await.unwrap(), 1);
}

/// Beyond a changed payload: changed metadata, a payload garbled into invalid JSON (SQLite keeps
/// text), and a deleted event (a version gap) are each named by `verify`.
async fn other_tampering_is_named_too(db: &TestDb) {
    let log = &db.log;
    let a = stream("acme", "a");
    let b = stream("acme", "b");
    log.append(batch(&a, ExpectedVersion::NoStream, 3))
        .await
        .unwrap(); // 1..3
    log.append(batch(&b, ExpectedVersion::NoStream, 3))
        .await
        .unwrap(); // 4..6
    assert!(log.verify().await.unwrap().is_ok());
    let b2 = log.read_stream(&b, 2, 1).await.unwrap().remove(0);
    let a3 = log.read_stream(&a, 3, 1).await.unwrap().remove(0);

    // 1. metadata of b's version 2 (position 5)
    if db.is_pg() {
        raw(
            db,
            "ALTER TABLE events DISABLE TRIGGER events_no_update_delete",
        )
        .await
        .unwrap();
        raw(
            db,
            "UPDATE events SET actor = 'someone else' WHERE position = 5",
        )
        .await
        .unwrap();
    } else {
        raw(db, "DROP TRIGGER events_no_update").await.unwrap();
        raw(db, "DROP TRIGGER events_no_delete").await.unwrap();
        raw(
            db,
            "UPDATE events SET actor = 'someone else' WHERE position = 5",
        )
        .await
        .unwrap();
    }
    let broken = log
        .verify()
        .await
        .unwrap()
        .first_broken
        .expect("metadata change found");
    assert_eq!(
        (
            broken.position,
            broken.stream.clone(),
            broken.version,
            broken.event_id
        ),
        (5, b.clone(), 2, b2.event_id)
    );

    // 2. a deleted event: a's version 2 (position 2) goes, version 3 now follows version 1.
    raw(db, "DELETE FROM events WHERE position = 2")
        .await
        .unwrap();
    let report = log.verify().await.unwrap();
    let broken = report.first_broken.expect("deletion found");
    assert_eq!(
        (broken.position, broken.version, broken.event_id),
        (3, 3, a3.event_id),
        "{}",
        broken.reason
    );
    assert!(
        broken.reason.contains("follows version 1"),
        "{}",
        broken.reason
    );
    assert_eq!(report.events, 5);

    // 3. SQLite only: a payload that is no longer JSON at all (position 1) is named, not an error.
    if !db.is_pg() {
        raw(
            db,
            "UPDATE events SET payload = '{not json' WHERE position = 1",
        )
        .await
        .unwrap();
        let broken = log
            .verify()
            .await
            .unwrap()
            .first_broken
            .expect("garbled payload found");
        assert_eq!((broken.position, broken.version), (1, 1));
        assert!(
            broken.reason.contains("cannot be read back"),
            "{}",
            broken.reason
        );
    }
}

/// Each handle remembers the stream tips it wrote; another writer in between (another process)
/// must make it look again: versions, conflicts and the hash chain stay right.
async fn another_writer_between_appends_is_not_missed(db: &TestDb) {
    let a = db.log.clone();
    let b = db.reopen().await;
    let s = stream("acme", "shared");
    let t = stream("acme", "created-elsewhere");
    a.append(batch(&s, ExpectedVersion::NoStream, 2))
        .await
        .unwrap();
    b.append(batch(&s, ExpectedVersion::Exact(2), 1))
        .await
        .unwrap();
    b.append(batch(&t, ExpectedVersion::NoStream, 1))
        .await
        .unwrap();
    // `a` last saw `s` at version 2 and never saw `t`.
    assert!(matches!(
        a.append(batch(&s, ExpectedVersion::Exact(2), 1)).await,
        Err(Error::Conflict {
            actual: Some(3),
            ..
        })
    ));
    assert!(matches!(
        a.append(batch(&t, ExpectedVersion::NoStream, 1)).await,
        Err(Error::Conflict {
            actual: Some(1),
            ..
        })
    ));
    let ok = a.append(batch(&s, ExpectedVersion::Any, 1)).await.unwrap();
    assert_eq!((ok.first_version, ok.first_position), (4, 5));
    // A refused group (a recorded id) leaves `a` consistent for the next append.
    let recorded = a.read_stream(&s, 1, 1).await.unwrap()[0].event_id;
    let mut dup = batch(&s, ExpectedVersion::Any, 2);
    dup.events[1].event_id = recorded;
    let r = a
        .append_many(vec![dup, batch(&t, ExpectedVersion::Exact(1), 1)])
        .await
        .unwrap();
    assert!(matches!(r[0], Err(Error::DuplicateEvent(_))));
    assert_eq!(r[1].as_ref().unwrap().first_version, 2);
    let next = b
        .append(batch(&s, ExpectedVersion::Exact(4), 1))
        .await
        .unwrap();
    assert_eq!(next.first_version, 5);
    let versions: Vec<u64> = a
        .read_stream(&s, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    let report = a.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events, 7);
}

/// Group commit across callers: concurrent `append`s on one handle are committed together (one
/// transaction stamps one `recorded_at`), each with its own outcome.
async fn concurrent_appends_on_one_handle_share_transactions(db: &TestDb) {
    let n = 200;
    let hot = stream("acme", "hot");
    let mut tasks = Vec::new();
    for i in 0..n {
        let log = db.log.clone();
        // Every fourth append expects a fresh stream that another append of the group creates:
        // exactly one of those per stream can win.
        let b = if i % 4 == 0 {
            batch(&hot, ExpectedVersion::NoStream, 1)
        } else {
            batch(
                &stream("acme", &format!("c{i}")),
                ExpectedVersion::NoStream,
                2,
            )
        };
        tasks.push(tokio::spawn(async move { log.append(b).await }));
    }
    let mut won_hot = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(a) if a.stream == hot => won_hot += 1,
            Ok(a) => assert_eq!((a.first_version, a.last_version), (1, 2)),
            Err(Error::Conflict {
                stream,
                actual: Some(1),
                ..
            }) if stream == hot => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won_hot, 1);
    let all = all_events(&db.log).await;
    assert_eq!(all.len(), 1 + (n - n / 4) * 2);
    assert!(all.windows(2).all(|w| w[1].position == w[0].position + 1));
    let transactions: HashSet<_> = all.iter().map(|e| e.recorded_at).collect();
    assert!(
        transactions.len() < n,
        "{} transactions for {n} concurrent appends",
        transactions.len()
    );
    assert!(db.log.verify().await.unwrap().is_ok());
}

/// A caller that gives up waiting (a cancelled request) cannot leave half an append behind.
async fn an_abandoned_append_commits_whole_or_not_at_all(db: &TestDb) {
    let s = stream("acme", "abandoned");
    for _ in 0..20 {
        let b = batch(&s, ExpectedVersion::Any, 5);
        let _ = tokio::time::timeout(Duration::from_micros(50), db.log.append(b)).await;
    }
    // Whatever was abandoned has either committed whole or not at all.
    let done = db
        .log
        .append(batch(&s, ExpectedVersion::Any, 1))
        .await
        .unwrap();
    let versions: Vec<u64> = db
        .log
        .read_stream(&s, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(
        versions.len() % 5,
        1,
        "{} events: a batch was split",
        versions.len()
    );
    assert_eq!(versions, (1..=done.last_version).collect::<Vec<_>>());
    assert!(db.log.verify().await.unwrap().is_ok());
}

async fn the_tail_carries_each_commit_exactly_as_the_log_reads_it(db: &TestDb) {
    let log = &db.log;
    // Nothing is built for the tail while nobody follows it; a commit before subscribing is
    // not delivered.
    log.append(batch(&stream("acme", "t0"), ExpectedVersion::Any, 2))
        .await
        .unwrap();
    let mut tail = log.tail();
    let mut awkward = event(9);
    awkward.payload = json!({"z": 1, "a": {"ü": "€ \"q\"", "n": [1.5, null]}});
    let group = vec![
        batch(&stream("acme", "t1"), ExpectedVersion::NoStream, 3),
        AppendBatch {
            stream: stream("acme", "t2"),
            expected: ExpectedVersion::Any,
            events: vec![awkward],
        },
        // Refused (wrong expected version): not on the tail.
        batch(&stream("acme", "t0"), ExpectedVersion::Exact(7), 1),
    ];
    let outcomes = log.append_many(group).await.unwrap();
    assert!(outcomes[2].is_err());
    let mut got = Vec::new();
    while got.len() < 4 {
        let commit = tokio::time::timeout(Duration::from_secs(5), tail.recv())
            .await
            .expect("a tail message")
            .expect("not lagged");
        got.extend(commit.iter().cloned());
    }
    let read = log.read_all_raw(2, 100).await.unwrap();
    assert_eq!(got, read, "the tail is what a reader of the log gets");
    assert_eq!(
        got.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![3, 4, 5, 6]
    );
    // The stored payload is the canonical text the hash covers (ADR 003).
    assert_eq!(
        read[3].payload.as_str(),
        r#"{"a":{"n":[1.5,null],"ü":"€ \"q\""},"z":1}"#
    );
    assert_eq!(
        read[3].payload.parse::<serde_json::Value>().unwrap(),
        all_events(log).await[5].payload
    );
    assert!(
        tail.try_recv().is_err(),
        "one message per commit, nothing else"
    );
}

async fn enqueued_appends_apply_in_call_order(db: &TestDb) {
    let log = &db.log;
    let s = stream("acme", "order");
    // Queued before any is awaited: the second and third depend on the first being applied.
    let first = log
        .enqueue_many(vec![batch(&s, ExpectedVersion::NoStream, 2)])
        .await;
    let second = log
        .enqueue_many(vec![batch(&s, ExpectedVersion::Exact(2), 1)])
        .await;
    let third = log
        .enqueue_many(vec![batch(&s, ExpectedVersion::Exact(3), 1)])
        .await;
    let (a, b, c) = tokio::join!(third.outcome(), first.outcome(), second.outcome());
    for outcome in [a, b, c] {
        let outcome = outcome.unwrap();
        assert!(outcome[0].is_ok(), "{outcome:?}");
    }
    let versions: Vec<u64> = log
        .read_stream(&s, 1, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4]);
    // The writer's totals: four events, in one to three transactions (queued requests may
    // share one).
    let stats = log.commit_stats();
    assert_eq!(stats.events, 4);
    assert!((1..=3).contains(&stats.commits), "{stats:?}");
}

/// Lifts the append-only guard of the backend so a test can tamper like a superuser would.
async fn lift_guards(db: &TestDb) {
    if db.is_pg() {
        raw(
            db,
            "ALTER TABLE events DISABLE TRIGGER events_no_update_delete",
        )
        .await
        .unwrap();
    } else {
        raw(db, "DROP TRIGGER events_no_update").await.unwrap();
        raw(db, "DROP TRIGGER events_no_delete").await.unwrap();
    }
}

/// Regression (issue 10): deleting the last event of a stream in the middle of the log leaves
/// no version gap behind, so `verify` used to pass; the gap in the positions names it now.
async fn verify_names_a_deleted_last_event_of_a_stream(db: &TestDb) {
    let log = &db.log;
    let a = stream("acme", "a");
    let b = stream("acme", "b");
    log.append(batch(&a, ExpectedVersion::NoStream, 2))
        .await
        .unwrap(); // 1, 2
    log.append(batch(&b, ExpectedVersion::NoStream, 2))
        .await
        .unwrap(); // 3, 4
    log.append(batch(&a, ExpectedVersion::Exact(2), 1))
        .await
        .unwrap(); // 5
    assert!(log.verify().await.unwrap().is_ok());
    let a3 = log.read_stream(&a, 3, 1).await.unwrap().remove(0);
    lift_guards(db).await;
    // b's last event (version 2, position 4): b's chain stays intact, a's too.
    raw(db, "DELETE FROM events WHERE position = 4")
        .await
        .unwrap();
    let report = log.verify().await.unwrap();
    let broken = report.first_broken.expect("the deletion must be found");
    assert_eq!(
        (broken.position, broken.stream.clone(), broken.event_id),
        (5, a.clone(), a3.event_id)
    );
    assert!(
        broken.reason.contains("position 4 is missing"),
        "{}",
        broken.reason
    );
    assert_eq!(report.events, 4);
}

/// Regression (issue 10): a stored payload text with a duplicate key parses to the same value
/// (the last key wins), so its recomputed hash matched; the stored bytes are now compared with
/// their canonical form byte for byte.
async fn verify_names_a_payload_with_a_duplicate_key(db: &TestDb) {
    let log = &db.log;
    let a = stream("acme", "a");
    log.append(batch(&a, ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    assert!(log.verify().await.unwrap().is_ok());
    lift_guards(db).await;
    // `{"amount":…}` becomes `{"n":999,"amount":…}` while `"n":1` still follows: same value.
    let sql = if db.is_pg() {
        "UPDATE events SET payload = ('{\"n\":999,' || substr(payload::text, 2))::json WHERE position = 2"
    } else {
        "UPDATE events SET payload = '{\"n\":999,' || substr(payload, 2) WHERE position = 2"
    };
    assert_eq!(raw(db, sql).await.unwrap(), 1);
    let read = log.read_stream(&a, 2, 1).await.unwrap().remove(0);
    assert_eq!(read.payload["n"], json!(1), "the last duplicate key wins");
    let broken = log
        .verify()
        .await
        .unwrap()
        .first_broken
        .expect("the duplicate key must be found");
    assert_eq!((broken.position, broken.version), (2, 2));
    assert!(
        broken.reason.contains("canonical form"),
        "{}",
        broken.reason
    );
}

/// Regression (issue 10): `recorded_at` was outside the hash, so backdating when an event was
/// recorded passed `verify`; hash version 2 covers it.
async fn verify_names_a_changed_recorded_at(db: &TestDb) {
    let log = &db.log;
    let a = stream("acme", "a");
    log.append(batch(&a, ExpectedVersion::NoStream, 2))
        .await
        .unwrap();
    assert!(log.verify().await.unwrap().is_ok());
    lift_guards(db).await;
    let sql = if db.is_pg() {
        "UPDATE events SET recorded_at = recorded_at - interval '3 days' WHERE position = 2"
    } else {
        "UPDATE events SET recorded_at = '2020-01-01T00:00:00.000000Z' WHERE position = 2"
    };
    assert_eq!(raw(db, sql).await.unwrap(), 1);
    let broken = log
        .verify()
        .await
        .unwrap()
        .first_broken
        .expect("the changed recorded_at must be found");
    assert_eq!((broken.position, broken.version), (2, 2));
    assert!(broken.reason.contains("hash mismatch"), "{}", broken.reason);
}
