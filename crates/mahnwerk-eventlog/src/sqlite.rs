//! SQLite backend: one writer at a time (`BEGIN IMMEDIATE`, and an in-process mutex so tasks of
//! this process queue without busy-waiting), WAL so readers never block the writer, multi-row
//! `INSERT`s in a few fixed sizes so every statement stays prepared.

use crate::canonical::GENESIS;
use crate::plan::{self, Committed, CurrentState, PreparedBatch, Row, TipCache};
use crate::{Error, Result, StoredRow};
use chrono::{DateTime, Utc};
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use uuid::Uuid;

/// The sqlx migrations table of this crate. SQLite has no schemas (short of `ATTACH`), so the
/// table gets a name of its own instead of the shared `_sqlx_migrations`.
const MIGRATIONS_TABLE: &str = "_eventlog_migrations";

/// Largest multi-row `INSERT`; smaller groups are split into power-of-two statements so at most
/// nine different statements are ever prepared. 256 rows × 14 columns stays far below SQLite's
/// limit of 32766 bound parameters.
const MAX_ROWS_PER_STATEMENT: usize = 256;
const INSERT_COLUMNS: usize = 14;

const SELECT_COLUMNS: &str = "position, event_id, stream_id, stream_version, tenant, event_type, \
     payload, occurred_at, recorded_at, correlation_id, causation_id, actor, traceparent, hash, hash_version";

pub(crate) struct Sqlite {
    pool: SqlitePool,
    /// Serialises this process's appends; `BEGIN IMMEDIATE` serialises them against other processes.
    write: tokio::sync::Mutex<()>,
    tips: std::sync::Mutex<TipCache>,
}

impl Sqlite {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            // The log of record: a committed append survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // 32 MiB page cache per connection (SQLite's default is 2 MiB): a large log's
            // index pages stay in memory instead of being re-read on every group commit.
            .pragma("cache_size", "-32768")
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            // An in-memory database lives as long as its last connection: keep exactly one.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?
        };
        let mut migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator.run(&pool).await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
            .fetch_one(&pool)
            .await?;
        Ok(Sqlite {
            pool,
            write: tokio::sync::Mutex::new(()),
            tips: std::sync::Mutex::new(TipCache::new(head)),
        })
    }

    /// Commits a group; fast path and slow path as on PostgreSQL (see `pg::Pg::commit`).
    pub(crate) async fn commit(
        &self,
        batches: &[PreparedBatch],
        recorded_at: DateTime<Utc>,
        tail: bool,
    ) -> Result<Committed> {
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let mut state = CurrentState {
            head,
            ..CurrentState::default()
        };
        // Under BEGIN IMMEDIATE the head is known before the lookups: ask the cache now.
        let cache_valid = self.cache().check(head);
        let fetch = if fast && cache_valid {
            let (known, fetch) = self.cache().plan(&streams);
            state.streams = known;
            fetch
        } else {
            streams
        };
        if !fetch.is_empty() {
            let json = serde_json::to_string(&fetch).unwrap_or_else(|_| "[]".into());
            // The version from the (stream_id, stream_version) index, then the row by rowid.
            let tips = sqlx::query(
                "SELECT e.stream_id, e.stream_version, e.hash FROM json_each(?1) AS j \
                 JOIN events AS e ON e.position = (SELECT position FROM events \
                      WHERE stream_id = j.value ORDER BY stream_version DESC LIMIT 1)",
            )
            .bind(&json)
            .fetch_all(&mut *tx)
            .await?;
            for r in tips {
                let version: i64 = r.try_get("stream_version")?;
                let hash: String = r.try_get("hash")?;
                state.streams.insert(
                    r.try_get("stream_id")?,
                    (
                        u64::try_from(version).unwrap_or(0),
                        plan::decode_hash(&hash).unwrap_or(GENESIS),
                    ),
                );
            }
        }
        if !fast {
            let json = serde_json::to_string(
                &ids.iter()
                    .map(|u| u.simple().to_string())
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|_| "[]".into());
            let existing: Vec<Uuid> = sqlx::query_scalar(
                "SELECT event_id FROM events WHERE event_id IN (SELECT unhex(value) FROM json_each(?1))",
            )
            .bind(&json)
            .fetch_all(&mut *tx)
            .await?;
            state.existing_ids = existing.into_iter().collect();
        }

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
        let new_head = last.position;
        let mut rest: &[Row<'_>] = &rows;
        while !rest.is_empty() {
            let n = chunk_len(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(n)));
            for r in chunk {
                q = q
                    .bind(r.position)
                    .bind(r.event_id)
                    .bind(r.stream.as_str())
                    .bind(r.version)
                    .bind(r.tenant.as_str())
                    .bind(r.event_type)
                    .bind(r.payload)
                    .bind(r.occurred_at_text)
                    .bind(recorded_at_text.as_str())
                    .bind(r.metadata.correlation_id.as_deref())
                    .bind(r.metadata.causation_id.as_deref())
                    .bind(r.metadata.actor.as_str())
                    .bind(r.metadata.traceparent.as_deref())
                    .bind(r.hash.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.cache().committed(head, new_head, tips);
        Ok(Committed {
            outcomes,
            head: Some(new_head),
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
            "SELECT {SELECT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version >= ?2 \
             ORDER BY stream_version LIMIT ?3"
        )))
        .bind(stream)
        .bind(from_version)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every event of each of `streams`, by stream then version (one statement per
    /// [`MAX_ROWS_PER_STATEMENT`] streams).
    pub(crate) async fn read_streams(&self, streams: &[&str]) -> Result<Vec<StoredRow>> {
        let mut out = Vec::new();
        for chunk in streams.chunks(MAX_ROWS_PER_STATEMENT) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("?{i}")).collect();
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {SELECT_COLUMNS} FROM events WHERE stream_id IN ({}) \
                 ORDER BY stream_id, stream_version",
                list.join(", ")
            )));
            for s in chunk {
                q = q.bind(*s);
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push(decode(&row)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn read_all(&self, after_position: i64, limit: i64) -> Result<Vec<StoredRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
        )))
        .bind(after_position)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn head_position(&self) -> Result<i64> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(head)
    }

    pub(crate) async fn stream_version(&self, stream: &str) -> Result<Option<i64>> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT max(stream_version) FROM events WHERE stream_id = ?1")
                .bind(stream)
                .fetch_one(&self.pool)
                .await?;
        Ok(v)
    }

    pub(crate) async fn load_checkpoint(&self, name: &str) -> Result<i64> {
        let p: Option<i64> = sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(p.unwrap_or(0))
    }

    pub(crate) async fn save_checkpoint(&self, name: &str, position: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(position)
        .bind(crate::canonical::format_time(&Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[doc(hidden)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// The largest power of two ≤ `remaining`, capped at [`MAX_ROWS_PER_STATEMENT`].
fn chunk_len(remaining: usize) -> usize {
    if remaining >= MAX_ROWS_PER_STATEMENT {
        MAX_ROWS_PER_STATEMENT
    } else {
        1 << (usize::BITS - 1 - remaining.leading_zeros())
    }
}

/// The multi-row `INSERT` for `rows` rows (a power of two), built once per size.
fn insert_sql(rows: usize) -> Arc<str> {
    static CACHE: OnceLock<Vec<Arc<str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        let mut v = Vec::new();
        let mut n = 1;
        while n <= MAX_ROWS_PER_STATEMENT {
            let mut sql = String::from(
                "INSERT INTO events (position, event_id, stream_id, stream_version, tenant, event_type, \
                 payload, occurred_at, recorded_at, correlation_id, causation_id, actor, traceparent, hash, hash_version) VALUES ",
            );
            for i in 0..n {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..INSERT_COLUMNS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push('?');
                }
                // hash_version: every append writes version 2 (it covers `recorded_at`).
                sql.push_str(",2)");
            }
            v.push(Arc::from(sql));
            n *= 2;
        }
        v
    });
    cache[rows.trailing_zeros() as usize].clone()
}

fn decode(r: &SqliteRow) -> Result<StoredRow> {
    // By index, in SELECT_COLUMNS order (no per-row name lookups on the hot read path).
    let occurred_at: &str = r.try_get(7)?;
    let recorded_at: &str = r.try_get(8)?;
    Ok(StoredRow {
        position: r.try_get(0)?,
        event_id: r.try_get(1)?,
        stream: r.try_get(2)?,
        version: r.try_get(3)?,
        tenant: r.try_get(4)?,
        event_type: r.try_get(5)?,
        payload: r.try_get(6)?,
        occurred_at: parse_time(occurred_at)?,
        recorded_at: parse_time(recorded_at)?,
        correlation_id: r.try_get(9)?,
        causation_id: r.try_get(10)?,
        actor: r.try_get(11)?,
        traceparent: r.try_get(12)?,
        hash: r.try_get(13)?,
        hash_version: r.try_get(14)?,
    })
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| crate::Error::Invalid(format!("stored time {s:?} is not RFC 3339")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_up_to_the_cap() {
        assert_eq!(chunk_len(1), 1);
        assert_eq!(chunk_len(3), 2);
        assert_eq!(chunk_len(255), 128);
        assert_eq!(chunk_len(256), 256);
        assert_eq!(chunk_len(10_000), 256);
        assert_eq!(insert_sql(4).matches('(').count(), 1 + 4);
    }
}
