//! `mahnwerk migrate`: create or upgrade the schemas. On PostgreSQL, with `--app-role`, the
//! owner of the event log (the role of `--database-url`) migrates it and grants the services'
//! role only what they need: read the log, append to it, move their checkpoints, and keep their
//! own tables. The app role is not the owner and not a member of it, so it cannot disable the
//! append-only triggers, drop or alter the log, or replace the trigger function
//! (deploy/README.md, "Database roles").

use crate::config::StoreArgs;
use anyhow::Context as _;
use sqlx::Row as _;

#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// PostgreSQL: the role `serve` connects as. Migrate only the event log, as the owner role
    /// of the database URL, and grant this role what the services need on it and nothing more
    /// (it must exist, and be neither the owner, a member of it, nor a superuser).
    #[arg(long, env = "MAHNWERK_APP_ROLE", value_name = "ROLE")]
    pub app_role: Option<String>,
}

pub async fn run(args: &MigrateArgs) -> anyhow::Result<()> {
    let url = &args.store.database_url;
    let Some(role) = &args.app_role else {
        crate::server::open_stores(url).await?;
        println!("schemas are up to date");
        return Ok(());
    };
    if !url.starts_with("postgres") {
        anyhow::bail!("--app-role: database roles exist on PostgreSQL only, not at {url}");
    }
    check_role_name(role)?;
    mahnwerk_eventlog::EventLog::connect(url)
        .await
        .context("migrating the event log")?;
    let pool = sqlx::PgPool::connect(url)
        .await
        .context("connecting as the owner")?;
    let found = sqlx::query(
        "SELECT r.rolsuper, r.rolbypassrls, pg_has_role(r.rolname, current_user, 'MEMBER') AS member, \
         r.rolname = current_user AS is_owner FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(role)
    .fetch_optional(&pool)
    .await?;
    let Some(found) = found else {
        anyhow::bail!(
            "--app-role: role {role} does not exist (CREATE ROLE {role} LOGIN PASSWORD …)"
        );
    };
    let (superuser, bypass, member, is_owner): (bool, bool, bool, bool) = (
        found.try_get("rolsuper")?,
        found.try_get("rolbypassrls")?,
        found.try_get("member")?,
        found.try_get("is_owner")?,
    );
    if superuser || bypass {
        anyhow::bail!("--app-role: {role} is a superuser: it could change anything");
    }
    if is_owner || member {
        anyhow::bail!(
            "--app-role: {role} is the owner role of this URL (or a member of it): the services' role must be another one, or it could disable the append-only triggers"
        );
    }
    let db_owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&pool)
    .await?;
    if db_owner == *role {
        anyhow::bail!("--app-role: {role} owns the database: it could drop it with the log");
    }
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE schemaname = 'eventlog' AND tablename = 'events'",
    )
    .fetch_one(&pool)
    .await?;
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&pool)
        .await?;
    let r = format!("\"{role}\"");
    let o = format!("\"{owner}\"");
    let grants = [
        format!("GRANT CONNECT ON DATABASE \"{db}\" TO {r}"),
        format!("GRANT USAGE ON SCHEMA eventlog TO {r}"),
        format!("GRANT SELECT, INSERT ON eventlog.events TO {r}"),
        format!("GRANT SELECT, INSERT, UPDATE ON eventlog.checkpoints TO {r}"),
        format!("GRANT SELECT ON eventlog._sqlx_migrations TO {r}"),
        // The services' own tables (keys, projections, inbox, ...) are theirs: created by
        // `serve` as this role. Tables the owner created there before are granted below.
        format!("GRANT USAGE, CREATE ON SCHEMA public TO {r}"),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r}"
        ),
    ];
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user",
    )
    .fetch_all(&pool)
    .await?;
    let grants = grants.into_iter().chain(
        owned
            .iter()
            .map(|t| format!("GRANT SELECT, INSERT, UPDATE, DELETE ON public.\"{t}\" TO {r}")),
    );
    let mut tx = pool.begin().await?;
    for g in grants {
        sqlx::query(sqlx::AssertSqlSafe(g.clone()))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("granting: {g}"))?;
    }
    tx.commit().await?;
    println!(
        "event log is up to date (owner {owner}); {role} may read it and append to it, not change, disable or drop it"
    );
    Ok(())
}

/// A plain PostgreSQL identifier (what `CREATE ROLE name` accepts unquoted).
fn check_role_name(role: &str) -> anyhow::Result<()> {
    let ok = !role.is_empty()
        && role.len() <= 63
        && role
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        anyhow::bail!("--app-role: {role:?} is not a plain role name (a-z, 0-9, _; at most 63)");
    }
    Ok(())
}
