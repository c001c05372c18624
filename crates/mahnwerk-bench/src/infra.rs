//! Per-run resources: a fresh PostgreSQL database per log, SQLite files in a temp dir, unique
//! JetStream namespaces; all removed by [`Env::cleanup`].

use anyhow::{Context, Result};
use mahnwerk_bus::BusConfig;
use rand::Rng;
use sqlx::{Connection, PgConnection};
use std::sync::Mutex;

pub struct Env {
    /// Short random id of this run (database and namespace names, invoice numbers).
    pub run: String,
    /// Admin URL of the PostgreSQL server, when there is one.
    pub pg_admin: Option<String>,
    pub tmp: tempfile::TempDir,
    pub js: async_nats::jetstream::Context,
    databases: Mutex<Vec<String>>,
    namespaces: Mutex<Vec<String>>,
}

impl Env {
    pub async fn start(database_url: Option<String>, nats_url: &str) -> Result<Self> {
        let run = format!("{:08x}", rand::rng().random::<u32>());
        let js = mahnwerk_bus::connect(nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {nats_url}"))?;
        if let Some(url) = &database_url {
            let conn = PgConnection::connect(url)
                .await
                .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
            conn.close().await?;
        }
        Ok(Self {
            run,
            pg_admin: database_url.filter(|u| !u.is_empty()),
            tmp: tempfile::Builder::new()
                .prefix("mahnwerk-bench-")
                .tempdir()?,
            js,
            databases: Mutex::default(),
            namespaces: Mutex::default(),
        })
    }

    /// `["sqlite"]`, plus `"postgres"` when a server is configured.
    pub fn backends(&self) -> Vec<&'static str> {
        let mut b = vec!["sqlite"];
        if self.pg_admin.is_some() {
            b.insert(0, "postgres");
        }
        b
    }

    /// A fresh database `mahnwerk_bench_<run>_<suffix>`; returns its URL.
    pub async fn pg_database(&self, suffix: &str) -> Result<String> {
        let admin = self
            .pg_admin
            .as_deref()
            .context("no PostgreSQL configured")?;
        let name = format!("mahnwerk_bench_{}_{suffix}", self.run);
        let mut conn = PgConnection::connect(admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        conn.close().await?;
        if let Ok(mut dbs) = self.databases.lock() {
            dbs.push(name.clone());
        }
        Ok(with_database(admin, &name))
    }

    /// A SQLite URL for a new file in this run's temp dir.
    pub fn sqlite_url(&self, name: &str) -> String {
        format!("sqlite:{}?mode=rwc", self.tmp.path().join(name).display())
    }

    /// A URL of the given backend for a fresh log.
    pub async fn log_url(&self, backend: &str, suffix: &str) -> Result<String> {
        if backend == "postgres" {
            self.pg_database(suffix).await
        } else {
            Ok(self.sqlite_url(&format!("{suffix}.db")))
        }
    }

    /// A unique JetStream namespace, its streams created.
    pub async fn namespace(&self, suffix: &str) -> Result<BusConfig> {
        let ns = format!("bench{}{suffix}", self.run);
        if let Ok(mut n) = self.namespaces.lock() {
            n.push(ns.clone());
        }
        let bus = BusConfig::with_namespace(&ns);
        bus.ensure_streams(&self.js).await?;
        Ok(bus)
    }

    /// Number of messages in a JetStream stream.
    pub async fn stream_messages(&self, stream: &str) -> Result<u64> {
        let mut s = self.js.get_stream(stream).await?;
        Ok(s.info().await?.state.messages)
    }

    /// Deletes this run's streams and databases.
    pub async fn cleanup(&self) -> Result<()> {
        let namespaces = self
            .namespaces
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default();
        for ns in namespaces {
            let bus = BusConfig::with_namespace(&ns);
            for stream in [bus.stream, bus.dead_letter_stream] {
                if let Err(e) = self.js.delete_stream(&stream).await {
                    eprintln!("warning: deleting stream {stream}: {e}");
                }
            }
        }
        let databases = self.databases.lock().map(|d| d.clone()).unwrap_or_default();
        if let Some(admin) = &self.pg_admin {
            let mut conn = PgConnection::connect(admin).await?;
            for name in databases {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .with_context(|| format!("DROP DATABASE {name}"))?;
            }
            conn.close().await?;
        }
        Ok(())
    }
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// CPU seconds (user + system) this process has used so far.
pub fn cpu_seconds() -> f64 {
    proc_cpu_seconds("self")
}

/// CPU seconds of the PostgreSQL backends serving the pool's database, when the server runs on
/// this machine (their `/proc` entries are readable); 0 otherwise.
pub async fn pg_backend_cpu(pool: &sqlx::PgPool) -> f64 {
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    pids.iter().map(|p| proc_cpu_seconds(&p.to_string())).sum()
}

/// CPU seconds used so far by this process, by every local `nats-server` and by every local
/// `postgres` process (backends, WAL writer, checkpointer): where a phase's work went on a
/// machine whose cores the bench shares with its servers.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSplit {
    pub bench: f64,
    pub nats: f64,
    pub postgres: f64,
}

impl CpuSplit {
    pub fn now() -> Self {
        let mut split = CpuSplit {
            bench: cpu_seconds(),
            ..Self::default()
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return split;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            match comm.trim_end() {
                "nats-server" => split.nats += proc_cpu_seconds(pid),
                "postgres" => split.postgres += proc_cpu_seconds(pid),
                _ => {}
            }
        }
        split
    }

    /// "bench X, nats-server Y, postgres Z µs per item" since `before`.
    pub fn per_item_since(&self, before: &CpuSplit, items: u64) -> String {
        #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
        let per = |a: f64, b: f64| (a - b) / items.max(1) as f64 * 1e6;
        format!(
            "bench process {:.1}, nats-server {:.1}, postgres {:.1} µs CPU per item",
            per(self.bench, before.bench),
            per(self.nats, before.nats),
            per(self.postgres, before.postgres)
        )
    }
}

fn proc_cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // fields[0] is field 3 (state); utime = field 14 -> index 11, stime -> index 12.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
