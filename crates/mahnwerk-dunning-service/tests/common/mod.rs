//! Setup shared by the dunning service's tests: dates, fresh databases (SQLite, plus
//! PostgreSQL when DATABASE_URL is set), unique names.
#![allow(dead_code)]

use chrono::NaiveDate;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// `prefix` followed by 12 random hex characters.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// SQLite in `dir`, plus a fresh PostgreSQL database when DATABASE_URL is set.
pub async fn databases(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("mahnwerk.db").display()
    )];
    if let Ok(admin) = std::env::var("DATABASE_URL") {
        let name = unique("mwd_");
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("DATABASE_URL must reach PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        urls.push(format!("{base}/{name}"));
    } else {
        eprintln!("DATABASE_URL not set: this test ran on SQLite only");
    }
    urls
}
