//! B1: group-committed appends to the event log (hash chain, expected-version checks, append-only
//! triggers) vs the same rows into a plain table of the same columns and keys by one multi-row
//! `INSERT` per batch (and, on PostgreSQL, by `COPY`, reported as extra information).
//!
//! The three writers take turns batch by batch, so all tables grow together and see the same
//! server state (checkpoints, cache); only the database calls are timed, the workload is
//! generated once per batch outside the clock.

use crate::infra::{Env, cpu_seconds, pg_backend_cpu};
use crate::report::Row;
use crate::workload::StreamSpread;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion};
use sqlx::{PgPool, QueryBuilder, SqlitePool};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Default)]
pub struct B1Results {
    pub rows: Vec<Row>,
    rates: Vec<(&'static str, f64)>,
    logs: Vec<(&'static str, EventLog, u64)>,
}

impl B1Results {
    pub fn rate(&self, backend: &str) -> Option<f64> {
        self.rates
            .iter()
            .find(|(b, _)| *b == backend)
            .map(|(_, r)| *r)
    }

    /// The filled log B3 relays: PostgreSQL's if measured, else SQLite's.
    pub fn log_for_relay(&self) -> Option<(EventLog, u64)> {
        self.logs
            .iter()
            .find(|(b, _, _)| *b == "postgres")
            .or_else(|| self.logs.first())
            .map(|(_, l, n)| (l.clone(), *n))
    }
}

pub async fn run(env: &Env, n: u64, batch: usize, report: bool) -> Result<B1Results> {
    let mut out = B1Results::default();
    for backend in env.backends() {
        eprintln!("B1 {backend}: appending {n} events in batches of {batch}");
        let (row, rate, log) = run_backend(env, backend, n, batch).await?;
        if report {
            eprintln!("B1 {backend}: {:.0} events/s", rate);
        }
        out.rows.push(row);
        out.rates.push((backend, rate));
        out.logs.push((backend, log, n));
    }
    Ok(out)
}

/// A row as the plain table stores it.
struct PlainRow {
    position: i64,
    event_id: Uuid,
    stream: String,
    version: i64,
    tenant: String,
    event_type: String,
    payload: String,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
    actor: String,
    traceparent: Option<String>,
    hash: String,
}

fn plain_rows(batches: &[AppendBatch], next_position: &mut i64) -> Vec<PlainRow> {
    let now = Utc::now();
    let mut rows = Vec::with_capacity(batches.len());
    for b in batches {
        let base = match b.expected {
            ExpectedVersion::Exact(v) => i64::try_from(v).unwrap_or(0),
            _ => 0,
        };
        for (version, e) in (base + 1..).zip(&b.events) {
            *next_position += 1;
            rows.push(PlainRow {
                position: *next_position,
                event_id: e.event_id.0,
                stream: b.stream.as_str().to_owned(),
                version,
                tenant: b.stream.tenant().to_string(),
                event_type: e.event_type.clone(),
                payload: e.payload.to_string(),
                occurred_at: e.occurred_at,
                recorded_at: now,
                correlation_id: e.metadata.correlation_id.clone(),
                causation_id: e.metadata.causation_id.clone(),
                actor: e.metadata.actor.clone(),
                traceparent: e.metadata.traceparent.clone(),
                // Same width as the log's SHA-256 hex; the baseline does not compute it.
                hash: format!("{:064x}", *next_position),
            });
        }
    }
    rows
}

const PG_PLAIN: &str = "(position BIGINT PRIMARY KEY, event_id UUID NOT NULL UNIQUE, \
    stream_id TEXT NOT NULL, stream_version BIGINT NOT NULL, tenant TEXT NOT NULL, \
    event_type TEXT NOT NULL, payload JSONB NOT NULL, occurred_at TIMESTAMPTZ NOT NULL, \
    recorded_at TIMESTAMPTZ NOT NULL, correlation_id TEXT, causation_id TEXT, actor TEXT NOT NULL, \
    traceparent TEXT, hash TEXT NOT NULL, UNIQUE (stream_id, stream_version))";

const SQLITE_PLAIN: &str = "(position INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, \
    stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL, tenant TEXT NOT NULL, \
    event_type TEXT NOT NULL, payload TEXT NOT NULL, occurred_at TEXT NOT NULL, \
    recorded_at TEXT NOT NULL, correlation_id TEXT, causation_id TEXT, actor TEXT NOT NULL, \
    traceparent TEXT, hash TEXT NOT NULL, UNIQUE (stream_id, stream_version)) STRICT";

const COLUMNS: &str = "position, event_id, stream_id, stream_version, tenant, event_type, payload, \
    occurred_at, recorded_at, correlation_id, causation_id, actor, traceparent, hash";

enum Plain {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

impl Plain {
    async fn insert(&self, rows: &[PlainRow]) -> Result<()> {
        match self {
            Plain::Pg(pool) => {
                let mut q = QueryBuilder::new(format!(
                    "INSERT INTO bench_plain.events_insert ({COLUMNS}) "
                ));
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.position)
                        .push_bind(r.event_id)
                        .push_bind(r.stream.as_str())
                        .push_bind(r.version)
                        .push_bind(r.tenant.as_str())
                        .push_bind(r.event_type.as_str())
                        .push_bind(r.payload.as_str())
                        .push_unseparated("::json")
                        .push_bind(r.occurred_at)
                        .push_bind(r.recorded_at)
                        .push_bind(r.correlation_id.as_deref())
                        .push_bind(r.causation_id.as_deref())
                        .push_bind(r.actor.as_str())
                        .push_bind(r.traceparent.as_deref())
                        .push_bind(r.hash.as_str());
                });
                q.build().execute(pool).await?;
            }
            Plain::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut q = QueryBuilder::new(format!("INSERT INTO events_insert ({COLUMNS}) "));
                q.push_values(rows, |mut b, r| {
                    b.push_bind(r.position)
                        .push_bind(r.event_id.hyphenated().to_string())
                        .push_bind(r.stream.as_str())
                        .push_bind(r.version)
                        .push_bind(r.tenant.as_str())
                        .push_bind(r.event_type.as_str())
                        .push_bind(r.payload.as_str())
                        .push_bind(r.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true))
                        .push_bind(r.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true))
                        .push_bind(r.correlation_id.as_deref())
                        .push_bind(r.causation_id.as_deref())
                        .push_bind(r.actor.as_str())
                        .push_bind(r.traceparent.as_deref())
                        .push_bind(r.hash.as_str());
                });
                q.build().execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    async fn copy(&self, rows: &[PlainRow]) -> Result<()> {
        let Plain::Pg(pool) = self else {
            return Ok(());
        };
        let mut csv = String::with_capacity(rows.len() * 900);
        for r in rows {
            csv_row(&mut csv, r);
        }
        let mut conn = pool.acquire().await?;
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY bench_plain.events_copy ({COLUMNS}) FROM STDIN (FORMAT csv)"
            ))
            .await?;
        copy.send(csv.into_bytes()).await?;
        copy.finish().await?;
        Ok(())
    }
}

fn csv_field(out: &mut String, v: Option<&str>) {
    if let Some(v) = v {
        out.push('"');
        out.push_str(&v.replace('"', "\"\""));
        out.push('"');
    }
}

fn csv_row(out: &mut String, r: &PlainRow) {
    let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let fields: [Option<String>; 14] = [
        Some(r.position.to_string()),
        Some(r.event_id.to_string()),
        Some(r.stream.clone()),
        Some(r.version.to_string()),
        Some(r.tenant.clone()),
        Some(r.event_type.clone()),
        Some(r.payload.clone()),
        Some(ts(&r.occurred_at)),
        Some(ts(&r.recorded_at)),
        r.correlation_id.clone(),
        r.causation_id.clone(),
        Some(r.actor.clone()),
        r.traceparent.clone(),
        Some(r.hash.clone()),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f.as_deref());
    }
    out.push('\n');
}

fn per_sec(n: u64, d: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let n = n as f64;
    n / d.as_secs_f64().max(1e-9)
}

async fn run_backend(
    env: &Env,
    backend: &'static str,
    n: u64,
    batch: usize,
) -> Result<(Row, f64, EventLog)> {
    let url = env.log_url(backend, "b1").await?;
    let log = EventLog::connect(&url)
        .await
        .with_context(|| format!("connecting the {backend} log"))?;
    let plain = if backend == "postgres" {
        // The baseline's sockets without Nagle's algorithm too, like the log's.
        let port = url.parse::<sqlx::postgres::PgConnectOptions>()?.get_port();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .after_connect(move |_, _| {
                Box::pin(async move {
                    mahnwerk_eventlog::nodelay::disable_nagle(port);
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        sqlx::query("CREATE SCHEMA bench_plain")
            .execute(&pool)
            .await?;
        for t in ["events_insert", "events_copy"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE bench_plain.{t} {PG_PLAIN}"
            )))
            .execute(&pool)
            .await?;
        }
        Plain::Pg(pool)
    } else {
        // Same settings as the log: WAL, synchronous=FULL, 32 MiB page cache.
        let opts: sqlx::sqlite::SqliteConnectOptions = env.sqlite_url("b1-plain.db").parse()?;
        let opts = opts
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .pragma("cache_size", "-32768")
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE events_insert {SQLITE_PLAIN}"
        )))
        .execute(&pool)
        .await?;
        Plain::Sqlite(pool)
    };
    let tenant = "bench".parse().context("tenant")?;
    let streams = (n / 4).max(u64::try_from(batch).unwrap_or(1000));
    let mut spread = StreamSpread::new(&env.run, tenant, streams);
    let (mut t_log, mut t_insert, mut t_copy) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut cpu_log, mut cpu_insert) = (0.0, 0.0);
    // Server CPU (PostgreSQL backends of this database), sampled around each timed call.
    let (mut srv_log, mut srv_insert, mut srv_copy) = (0.0, 0.0, 0.0);
    let pg = match &plain {
        Plain::Pg(pool) => Some(pool.clone()),
        Plain::Sqlite(_) => None,
    };
    let srv = async |pg: &Option<PgPool>| match pg {
        Some(pool) => pg_backend_cpu(pool).await,
        None => 0.0,
    };
    let mut payload_bytes = 0_usize;
    let mut position = 0_i64;
    let mut i = 0_u64;
    let step = u64::try_from(batch).unwrap_or(1000);
    while i < n {
        let to = (i + step).min(n);
        let batches = spread.batches(i, to)?;
        let rows = plain_rows(&batches, &mut position);
        payload_bytes += rows.iter().map(|r| r.payload.len()).sum::<usize>();

        let s0 = srv(&pg).await;
        let (c0, t0) = (cpu_seconds(), Instant::now());
        let results = log.append_many(batches).await?;
        t_log += t0.elapsed();
        cpu_log += cpu_seconds() - c0;
        let s1 = srv(&pg).await;
        srv_log += s1 - s0;
        if let Some(err) = results.into_iter().find_map(Result::err) {
            bail!("B1 append failed: {err}");
        }

        let (c0, t0) = (cpu_seconds(), Instant::now());
        plain.insert(&rows).await?;
        t_insert += t0.elapsed();
        cpu_insert += cpu_seconds() - c0;
        let s2 = srv(&pg).await;
        srv_insert += s2 - s1;

        if matches!(plain, Plain::Pg(_)) {
            let t0 = Instant::now();
            plain.copy(&rows).await?;
            t_copy += t0.elapsed();
            srv_copy += srv(&pg).await - s2;
        }
        i = to;
    }
    let head = log.head_position().await?;
    if u64::try_from(head).unwrap_or(0) != n {
        bail!("B1 {backend}: log head is {head}, expected {n}");
    }
    let rate = per_sec(n, t_log);
    let insert_rate = per_sec(n, t_insert);
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let avg_payload = payload_bytes as f64 / n as f64;
    let mut row = Row::new(
        &format!("B1/{backend}"),
        format!(
            "append {n} invoice.issued events (avg payload {avg_payload:.0} B, {streams} streams, {batch} per group commit) to the {backend} log"
        ),
        rate,
        "events/s",
    )
    .against("plain multi-row INSERT rows/s", Some(insert_rate), 0.5, ">= 0.5x INSERT");
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let nf = n as f64;
    row.notes.push(format!(
        "log: {:.1} s wall, bench-process CPU {:.1} µs/event (canonical JSON, SHA-256 chain, encoding); INSERT: {:.1} s wall, CPU {:.1} µs/row",
        t_log.as_secs_f64(),
        cpu_log / nf * 1e6,
        t_insert.as_secs_f64(),
        cpu_insert / nf * 1e6
    ));
    if pg.is_some() {
        row.notes.push(format!(
            "PostgreSQL backend CPU: log {:.1} µs/event, INSERT {:.1} µs/row, COPY {:.1} µs/row (10 ms ticks)",
            srv_log / nf * 1e6,
            srv_insert / nf * 1e6,
            srv_copy / nf * 1e6
        ));
    }
    if !t_copy.is_zero() {
        row.notes.push(format!(
            "COPY (csv) into the same plain table: {:.0} rows/s",
            per_sec(n, t_copy)
        ));
    }
    Ok((row, rate, log))
}
