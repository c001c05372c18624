//! PostgreSQL backend: tables in the schema `eventlog` (queries name it; the pool's
//! `search_path` is `eventlog` too, for tools), migrations tracked in
//! `eventlog._sqlx_migrations`, appends serialised by a transaction-scoped advisory lock so
//! commit order is position order, rows inserted with one `UNNEST` statement per group.

use crate::canonical::GENESIS;
use crate::plan::{self, Committed, CurrentState, PreparedBatch, Row, TipCache};
use crate::{Error, Result, StoredRow};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Key of the advisory lock every append takes (`'mahnwerk.eventlog'` folded into an i64; any
/// constant works as long as every writer uses the same one).
const APPEND_LOCK_KEY: i64 = 0x6d61_686e_7765_726b;

/// Channel of the `NOTIFY` sent with every commit; the payload is the new head position.
pub(crate) const NOTIFY_CHANNEL: &str = "mahnwerk_eventlog";

pub(crate) struct Pg {
    pool: PgPool,
    write: tokio::sync::Mutex<()>,
    tips: std::sync::Mutex<TipCache>,
}

const SELECT_COLUMNS: &str = "position, event_id, stream_id, stream_version, tenant, event_type, \
     payload::text AS payload, occurred_at, recorded_at, correlation_id, causation_id, actor, \
     traceparent, hash, hash_version";

impl Pg {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        // No JIT: the log's statements are short index lookups, and while a freshly written
        // table has no statistics the planner's estimates for them run into the millions of
        // rows, past `jit_above_cost`, and each read would pay for compiling itself.
        let options =
            PgConnectOptions::from_str(url)?.options([("search_path", "eventlog"), ("jit", "off")]);
        let port = options.get_port();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |_, _| {
                Box::pin(async move {
                    crate::nodelay::disable_nagle(port);
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        // Text that reads back differently would fail verify: insist on UTF-8 storage.
        let encoding: String = sqlx::query_scalar("SHOW server_encoding")
            .fetch_one(&pool)
            .await?;
        if encoding != "UTF8" {
            return Err(Error::Invalid(format!(
                "the event log needs a UTF8 PostgreSQL database, this one is {encoding}"
            )));
        }
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        migrator.create_schema("eventlog");
        migrator.dangerous_set_table_name("eventlog._sqlx_migrations");
        // Up to date: nothing to run, so the services' role (which may read and append, not
        // create or alter anything in the schema: `mahnwerk migrate --app-role`) connects too.
        // Anything missing is migrated here, which only the owner role may do.
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM eventlog._sqlx_migrations WHERE success")
                .fetch_all(&pool)
                .await
                .unwrap_or_default();
        if !migrator.iter().all(|m| applied.contains(&m.version))
            && let Err(e) = migrator.run(&pool).await
        {
            // A failed run keeps sqlx's session advisory lock on its connection: close the pool
            // so a migration by the owner role does not wait for this process to exit.
            pool.close().await;
            return Err(e.into());
        }
        let head = head_of(&pool).await?;
        Ok(Pg {
            pool,
            write: tokio::sync::Mutex::new(()),
            tips: std::sync::Mutex::new(TipCache::new(head)),
        })
    }

    /// Commits a group. The fast path trusts the tip cache and leaves recorded event ids to the
    /// unique index; if the insert is refused it starts over on the slow path, which looks
    /// everything up and so gives each batch its precise outcome.
    pub(crate) async fn commit(
        &self,
        batches: &[PreparedBatch],
        recorded_at: DateTime<Utc>,
        tail: bool,
    ) -> Result<Committed> {
        // One append transaction per process at a time: the others wait here without holding
        // a pooled connection (readers keep theirs), and the tip cache sees no races.
        let _writer = self.write.lock().await;
        match self.commit_once(batches, recorded_at, true, tail).await {
            Err(Error::Database(e)) if e.as_database_error().is_some() => {
                tracing::debug!(error = %e, "eventlog fast path refused, retrying with lookups");
                self.commit_once(batches, recorded_at, false, tail).await
            }
            other => other,
        }
    }

    async fn commit_once(
        &self,
        batches: &[PreparedBatch],
        recorded_at: DateTime<Utc>,
        fast: bool,
        tail: bool,
    ) -> Result<Committed> {
        let result = self.commit_tx(batches, recorded_at, fast, tail).await;
        if result.is_err() {
            // Also when the commit's outcome is unknown: trust nothing cached.
            self.cache().invalidate();
        }
        result
    }

    async fn commit_tx(
        &self,
        batches: &[PreparedBatch],
        recorded_at: DateTime<Utc>,
        fast: bool,
        tail: bool,
    ) -> Result<Committed> {
        let (streams, ids) = plan::keys(batches);
        let (known, fetch) = if fast {
            self.cache().plan(&streams)
        } else {
            (Default::default(), streams.clone())
        };
        let check_ids: &[Uuid] = if fast { &[] } else { &ids };
        let mut tx = self.pool.begin().await?;
        // Everything below runs while no other append can: a transaction that takes positions
        // commits before the next one reads the head, so commit order == position order.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(APPEND_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        let mut state = fetch_state(&mut tx, &fetch, check_ids).await?;
        let cache_valid = self.cache().check(state.head);
        if fast {
            if cache_valid {
                state.streams.extend(known);
            } else {
                // Another writer appended since this process last did: look every stream up.
                state.streams = fetch_state(&mut tx, &streams, &[]).await?.streams;
            }
        }
        let read_head = state.head;
        let recorded_at_text = crate::canonical::format_time(&recorded_at);
        let (rows, outcomes, tips) = plan::assign(batches, state, &recorded_at_text);
        let Some(last) = rows.last() else {
            tx.rollback().await?;
            return Ok(Committed {
                outcomes,
                head: None,
                events: None,
            });
        };
        let head = last.position;
        insert(&mut tx, &rows, recorded_at, head).await?;
        tx.commit().await?;
        self.cache().committed(read_head, head, tips);
        Ok(Committed {
            outcomes,
            head: Some(head),
            events: tail.then(|| plan::recorded(&rows, recorded_at)),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, TipCache> {
        self.tips
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) async fn read_stream(
        &self,
        stream: &str,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<StoredRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM eventlog.events WHERE stream_id = $1 AND stream_version >= $2 \
             ORDER BY stream_version LIMIT $3"
        )))
        .bind(stream)
        .bind(from_version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every event of each of `streams` (each stream once however often it is asked for), in
    /// one statement.
    ///
    /// One index range per stream (`unnest` + `LATERAL`), not `stream_id = ANY($1)`: for the
    /// latter the planner multiplies a default selectivity by the array's length and, while the
    /// table has no fresh statistics (right after a bulk write), a batch of a few hundred streams
    /// is estimated at the whole table and read by a (parallel) sequential scan.
    pub(crate) async fn read_streams(&self, streams: &[&str]) -> Result<Vec<StoredRow>> {
        let mut ids: Vec<String> = streams.iter().map(|s| (*s).to_owned()).collect();
        ids.sort_unstable();
        ids.dedup();
        let rows = sqlx::query(sqlx::AssertSqlSafe(read_streams_sql()))
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn read_all(&self, after_position: i64, limit: i64) -> Result<Vec<StoredRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM eventlog.events WHERE position > $1 ORDER BY position LIMIT $2"
        )))
        .bind(after_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn head_position(&self) -> Result<i64> {
        head_of(&self.pool).await
    }

    pub(crate) async fn stream_version(&self, stream: &str) -> Result<Option<i64>> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT max(stream_version) FROM eventlog.events WHERE stream_id = $1",
        )
        .bind(stream)
        .fetch_one(&self.pool)
        .await?;
        Ok(v)
    }

    pub(crate) async fn load_checkpoint(&self, name: &str) -> Result<i64> {
        let p: Option<i64> =
            sqlx::query_scalar("SELECT position FROM eventlog.checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(p.unwrap_or(0))
    }

    pub(crate) async fn save_checkpoint(&self, name: &str, position: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO eventlog.checkpoints (name, position, updated_at) VALUES ($1, $2, now()) \
             ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()",
        )
        .bind(name)
        .bind(position)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Follows `NOTIFY`s of other processes' commits into `head`. Hints only: after a reconnect
    /// the head is re-read, and followers poll anyway.
    pub(crate) fn spawn_listener(&self, head: watch::Sender<i64>) -> tokio::task::AbortHandle {
        let pool = self.pool.clone();
        let task = tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(l) => l,
                    Err(err) => {
                        tracing::debug!(error = %err, "eventlog listener cannot connect");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(err) = listener.listen(NOTIFY_CHANNEL).await {
                    tracing::debug!(error = %err, "eventlog listen failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                // Catch up on what was committed while not listening.
                if let Ok(h) = sqlx::query_scalar::<_, i64>(
                    "SELECT COALESCE(max(position), 0) FROM eventlog.events",
                )
                .fetch_one(&pool)
                .await
                {
                    crate::raise_head(&head, h);
                }
                // `Ok(None)` or an error: connection lost; reconnect, re-listen, re-read the head.
                while let Ok(Some(n)) = listener.try_recv().await {
                    if let Ok(h) = n.payload().parse::<i64>() {
                        crate::raise_head(&head, h);
                    }
                }
            }
        });
        task.abort_handle()
    }

    /// Runs raw SQL on the log's pool (tests and tools).
    #[doc(hidden)]
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// One round trip for the tips of `streams`, which of `ids` are recorded, and the head.
/// The statement of [`Pg::read_streams`]; `$1` is the `text[]` of stream ids, each once.
fn read_streams_sql() -> String {
    format!(
        "SELECT e.* FROM unnest($1::text[]) WITH ORDINALITY AS u(s, n) \
         CROSS JOIN LATERAL (SELECT {SELECT_COLUMNS} FROM eventlog.events WHERE stream_id = u.s \
                             ORDER BY stream_version) e \
         ORDER BY u.n, e.stream_version"
    )
}

async fn fetch_state(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    streams: &[String],
    ids: &[Uuid],
) -> Result<CurrentState> {
    let rows = sqlx::query(
        "SELECT 0 AS kind, u.s AS key, e.stream_version AS version, e.hash AS hash \
         FROM unnest($1::text[]) AS u(s) \
         CROSS JOIN LATERAL (SELECT stream_version, hash FROM eventlog.events WHERE stream_id = u.s \
                             ORDER BY stream_version DESC LIMIT 1) e \
         UNION ALL \
         SELECT 1, event_id::text, NULL, NULL FROM eventlog.events WHERE event_id = ANY($2::uuid[]) \
         UNION ALL \
         SELECT 2, NULL, COALESCE((SELECT max(position) FROM eventlog.events), 0), NULL",
    )
    .bind(streams)
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    let mut state = CurrentState::default();
    for r in rows {
        let kind: i32 = r.try_get("kind")?;
        match kind {
            0 => {
                let version: i64 = r.try_get("version")?;
                let hash: String = r.try_get("hash")?;
                state.streams.insert(
                    r.try_get("key")?,
                    (
                        u64::try_from(version).unwrap_or(0),
                        plan::decode_hash(&hash).unwrap_or(GENESIS),
                    ),
                );
            }
            1 => {
                let id: String = r.try_get("key")?;
                if let Ok(id) = Uuid::parse_str(&id) {
                    state.existing_ids.insert(id);
                }
            }
            _ => state.head = r.try_get("version")?,
        }
    }
    Ok(state)
}

async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    rows: &[Row<'_>],
    recorded_at: DateTime<Utc>,
    head: i64,
) -> Result<()> {
    let n = rows.len();
    let mut position = Vec::with_capacity(n);
    let mut event_id = Vec::with_capacity(n);
    let mut stream = Vec::with_capacity(n);
    let mut version = Vec::with_capacity(n);
    let mut tenant = Vec::with_capacity(n);
    let mut event_type = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    let mut occurred_at = Vec::with_capacity(n);
    let mut correlation_id = Vec::with_capacity(n);
    let mut causation_id = Vec::with_capacity(n);
    let mut actor = Vec::with_capacity(n);
    let mut traceparent = Vec::with_capacity(n);
    let mut hash = Vec::with_capacity(n);
    for r in rows {
        position.push(r.position);
        event_id.push(r.event_id);
        stream.push(r.stream.as_str());
        version.push(r.version);
        tenant.push(r.tenant.as_str());
        event_type.push(r.event_type);
        payload.push(r.payload);
        occurred_at.push(r.occurred_at);
        correlation_id.push(r.metadata.correlation_id.as_deref());
        causation_id.push(r.metadata.causation_id.as_deref());
        actor.push(r.metadata.actor.as_str());
        traceparent.push(r.metadata.traceparent.as_deref());
        hash.push(r.hash.as_str());
    }
    // One statement for the whole group; the NOTIFY is delivered at commit.
    sqlx::query(
        "WITH ins AS ( \
           INSERT INTO eventlog.events (position, event_id, stream_id, stream_version, tenant, event_type, \
                               payload, occurred_at, recorded_at, correlation_id, causation_id, \
                               actor, traceparent, hash) \
           SELECT p, e, s, v, t, ty, pl::json, o, $9, c, ca, a, tp, h \
           FROM UNNEST($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], \
                       $7::text[], $8::timestamptz[], $10::text[], $11::text[], $12::text[], \
                       $13::text[], $14::text[]) \
                AS u(p, e, s, v, t, ty, pl, o, c, ca, a, tp, h)) \
         SELECT pg_notify('mahnwerk_eventlog', $15)",
    )
    .bind(&position)
    .bind(&event_id)
    .bind(&stream)
    .bind(&version)
    .bind(&tenant)
    .bind(&event_type)
    .bind(&payload)
    .bind(&occurred_at)
    .bind(recorded_at)
    .bind(&correlation_id)
    .bind(&causation_id)
    .bind(&actor)
    .bind(&traceparent)
    .bind(&hash)
    .bind(head.to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn head_of(pool: &PgPool) -> Result<i64> {
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM eventlog.events")
        .fetch_one(pool)
        .await?;
    Ok(head)
}

fn decode(r: &PgRow) -> Result<StoredRow> {
    // By index, in SELECT_COLUMNS order (no per-row name lookups on the hot read path).
    Ok(StoredRow {
        position: r.try_get(0)?,
        event_id: r.try_get(1)?,
        stream: r.try_get(2)?,
        version: r.try_get(3)?,
        tenant: r.try_get(4)?,
        event_type: r.try_get(5)?,
        payload: r.try_get(6)?,
        occurred_at: r.try_get(7)?,
        recorded_at: r.try_get(8)?,
        correlation_id: r.try_get(9)?,
        causation_id: r.try_get(10)?,
        actor: r.try_get(11)?,
        traceparent: r.try_get(12)?,
        hash: r.try_get(13)?,
        hash_version: r.try_get::<i16, _>(14)?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan of [`read_streams_sql`] for a chunk of streams (the dunning pass reads 64 at a
    /// time), on an events table of 20,000 rows without statistics (as right after a bulk
    /// write, before autovacuum analyses it): one index range per stream, never a sequential
    /// scan (`stream_id = ANY($1)` was estimated at a third of the table and scanned it whole),
    /// and no JIT. Needs `DATABASE_URL` (a role that may create databases).
    #[tokio::test]
    async fn read_streams_reads_by_index_without_statistics() {
        let Ok(admin_url) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL not set: the PostgreSQL plan test did not run");
            return;
        };
        let name = format!("mahnwerk_el_plan_{:016x}", rand::random::<u64>());
        let admin = PgPool::connect(&admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let pg = Pg::connect(&format!("{base}/{name}")).await.unwrap();
        sqlx::query("ALTER TABLE eventlog.events SET (autovacuum_enabled = false)")
            .execute(&pg.pool)
            .await
            .unwrap();
        // 10,000 streams of two events (the planner reads only the counts and the keys).
        sqlx::query(
            "INSERT INTO eventlog.events (position, event_id, stream_id, stream_version, tenant, \
             event_type, payload, occurred_at, recorded_at, actor, hash) \
             SELECT g, gen_random_uuid(), 'acme/case/c' || ((g + 1) / 2), 2 - g % 2, 'acme', \
             'invoice.issued.v1', '{\"n\": 1}', now(), now(), 'test', repeat('0', 64) \
             FROM generate_series(1, 20000) g",
        )
        .execute(&pg.pool)
        .await
        .unwrap();
        let ids: Vec<String> = (0..64)
            .map(|i| format!("acme/case/c{}", i * 150 + 1))
            .collect();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN {}",
            read_streams_sql()
        )))
        .bind(&ids)
        .fetch_all(&pg.pool)
        .await
        .unwrap();
        let plan = plan.join("\n");
        assert!(!plan.contains("Seq Scan"), "a sequential scan: {plan}");
        assert!(plan.contains("Index Cond"), "no index lookup: {plan}");
        assert!(!plan.contains("JIT"), "compiled: {plan}");
        // And the rows: each stream once, by stream as asked, then version.
        let rows = pg
            .read_streams(&["acme/case/c3", "acme/case/c1", "acme/case/c3"])
            .await
            .unwrap();
        let got: Vec<(String, i64)> = rows.iter().map(|r| (r.stream.clone(), r.version)).collect();
        let want: Vec<(String, i64)> = [("c1", 1), ("c1", 2), ("c3", 1), ("c3", 2)]
            .into_iter()
            .map(|(s, v)| (format!("acme/case/{s}"), v))
            .collect();
        assert_eq!(got, want);
        pg.pool.close().await;
        admin.close().await;
    }
}
