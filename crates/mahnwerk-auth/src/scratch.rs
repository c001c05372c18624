//! A fresh PostgreSQL database on the server `DATABASE_URL` names, for tests that check what
//! PostgreSQL does with the services' tables (plans, sockets). Dropped again by [`ScratchDatabase::drop`].

use sqlx::AnyPool;

pub struct ScratchDatabase {
    /// A [`crate::connect_any`] pool on the new database.
    pub pool: AnyPool,
    admin: AnyPool,
    name: String,
}

impl ScratchDatabase {
    /// `None` (and a line on stderr) when `DATABASE_URL` is not set. Panics when the server
    /// is set but cannot be reached: a test must fail then, not pass without running.
    pub async fn create(prefix: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("DATABASE_URL") else {
            eprintln!("DATABASE_URL not set: the PostgreSQL part of this test did not run");
            return None;
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let admin = crate::connect_any(&admin_url)
            .await
            .expect("connecting to DATABASE_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("creating the scratch database");
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b);
        let pool = crate::connect_any(&format!("{base}/{name}"))
            .await
            .expect("connecting to the scratch database");
        Some(Self { pool, admin, name })
    }

    /// Close the pool and drop the database (best effort).
    pub async fn drop(self) {
        self.pool.close().await;
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {}", self.name)))
            .execute(&self.admin)
            .await;
        self.admin.close().await;
    }
}
