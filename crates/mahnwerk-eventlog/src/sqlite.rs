//! SQLite backend: one writer at a time (`BEGIN IMMEDIATE`, and an in-process mutex so tasks of
//! this process queue without busy-waiting), WAL so readers never block the writer, multi-row
//! `INSERT`s in a few fixed sizes so every statement stays prepared.

use crate::plan::{self, CurrentState, PreparedBatch, Row};
use crate::{Appended, RecordedEvent, Result, StoredRow};
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
     payload, occurred_at, recorded_at, correlation_id, causation_id, actor, traceparent, hash";

pub(crate) struct Sqlite {
    pool: SqlitePool,
    /// Serialises this process's appends; `BEGIN IMMEDIATE` serialises them against other processes.
    write: tokio::sync::Mutex<()>,
}

impl Sqlite {
    pub(crate) async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            // The log of record: a committed append survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
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
        Ok(Sqlite {
            pool,
            write: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) async fn commit(
        &self,
        batches: Vec<PreparedBatch>,
        recorded_at: DateTime<Utc>,
    ) -> Result<(Vec<(usize, Result<Appended>)>, Option<i64>)> {
        let (streams, ids) = plan::keys(&batches);
        let streams_json = serde_json::to_string(&streams).unwrap_or_else(|_| "[]".into());
        let ids_json = serde_json::to_string(
            &ids.iter()
                .map(|u| u.hyphenated().to_string())
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".into());
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut state = CurrentState::default();
        let tips = sqlx::query(
            "SELECT j.value AS stream_id, \
               (SELECT stream_version FROM events WHERE stream_id = j.value \
                ORDER BY stream_version DESC LIMIT 1) AS version, \
               (SELECT hash FROM events WHERE stream_id = j.value \
                ORDER BY stream_version DESC LIMIT 1) AS hash \
             FROM json_each(?1) AS j",
        )
        .bind(&streams_json)
        .fetch_all(&mut *tx)
        .await?;
        for r in tips {
            let version: Option<i64> = r.try_get("version")?;
            let hash: Option<String> = r.try_get("hash")?;
            if let (Some(v), Some(h)) = (version, hash) {
                state
                    .streams
                    .insert(r.try_get("stream_id")?, (u64::try_from(v).unwrap_or(0), h));
            }
        }
        let existing: Vec<String> = sqlx::query_scalar(
            "SELECT event_id FROM events WHERE event_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(&ids_json)
        .fetch_all(&mut *tx)
        .await?;
        state.existing_ids = existing
            .iter()
            .filter_map(|s| Uuid::parse_str(s).ok())
            .collect();
        state.head = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;

        let (rows, outcomes) = plan::assign(batches, state);
        let Some(last) = rows.last() else {
            tx.rollback().await?;
            return Ok((outcomes, None));
        };
        let head = last.position;
        let recorded_at = crate::canonical::format_time(&recorded_at);
        let mut rest: &[Row] = &rows;
        while !rest.is_empty() {
            let n = chunk_len(rest.len());
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(n)));
            for r in chunk {
                q = q
                    .bind(r.position)
                    .bind(r.event_id.hyphenated().to_string())
                    .bind(r.stream.as_str())
                    .bind(r.version)
                    .bind(r.tenant.as_str())
                    .bind(r.event_type.as_str())
                    .bind(r.payload.as_str())
                    .bind(crate::canonical::format_time(&r.occurred_at))
                    .bind(recorded_at.as_str())
                    .bind(r.correlation_id.as_deref())
                    .bind(r.causation_id.as_deref())
                    .bind(r.actor.as_str())
                    .bind(r.traceparent.as_deref())
                    .bind(r.hash.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok((outcomes, Some(head)))
    }

    pub(crate) async fn read_stream(
        &self,
        stream: &str,
        from_version: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>> {
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

    pub(crate) async fn read_all(
        &self,
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>> {
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
                 payload, occurred_at, recorded_at, correlation_id, causation_id, actor, traceparent, hash) VALUES ",
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
                sql.push(')');
            }
            v.push(Arc::from(sql));
            n *= 2;
        }
        v
    });
    cache[rows.trailing_zeros() as usize].clone()
}

fn decode(r: &SqliteRow) -> Result<RecordedEvent> {
    let event_id: String = r.try_get("event_id")?;
    let payload: String = r.try_get("payload")?;
    let occurred_at: String = r.try_get("occurred_at")?;
    let recorded_at: String = r.try_get("recorded_at")?;
    StoredRow {
        position: r.try_get("position")?,
        event_id: Uuid::parse_str(&event_id).map_err(|_| {
            crate::Error::Invalid(format!("stored event id {event_id:?} is not a UUID"))
        })?,
        stream: r.try_get("stream_id")?,
        version: r.try_get("stream_version")?,
        tenant: r.try_get("tenant")?,
        event_type: r.try_get("event_type")?,
        payload: &payload,
        occurred_at: parse_time(&occurred_at)?,
        recorded_at: parse_time(&recorded_at)?,
        correlation_id: r.try_get("correlation_id")?,
        causation_id: r.try_get("causation_id")?,
        actor: r.try_get("actor")?,
        traceparent: r.try_get("traceparent")?,
        hash: r.try_get("hash")?,
    }
    .into_recorded()
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
