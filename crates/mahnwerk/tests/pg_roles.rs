//! Issue 10 on PostgreSQL (DATABASE_URL): the services' database role cannot disable the
//! append-only triggers or drop the log. `mahnwerk migrate --app-role` runs as the owner;
//! `serve` runs as the app role and works; every attempt of the app role to alter, drop,
//! truncate, update or delete the log (or to switch its triggers off) fails, and `verify` passes.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::invoice_service_client::InvoiceServiceClient;
use std::process::Command;

fn mahnwerk(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn the_app_role_can_append_but_cannot_disable_the_triggers_or_drop_the_log() {
    let Ok(admin_url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL not set: the PostgreSQL role test did not run");
        return;
    };
    let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
    let id = unique("");
    let (db, owner, app) = (
        format!("mwt_roles_{id}"),
        format!("mwt_owner_{id}"),
        format!("mwt_app_{id}"),
    );
    for stmt in [
        format!("CREATE ROLE {owner} LOGIN NOSUPERUSER"),
        format!("CREATE ROLE {app} LOGIN NOSUPERUSER"),
        format!("CREATE DATABASE {db} OWNER {owner}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&admin)
            .await
            .unwrap();
    }
    // Same server, other user and database (trust authentication on the test machines).
    let rest = admin_url.split_once("://").unwrap().1;
    let host = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host = host.split_once('/').map_or(host, |(h, _)| h);
    let url_as = |role: &str| format!("postgres://{role}@{host}/{db}");
    let (owner_url, app_url) = (url_as(&owner), url_as(&app));

    // The app role before migrate: serve cannot create the log (only the owner may).
    let refused = mahnwerk::server::open_stores(&app_url).await;
    assert!(refused.is_err(), "the app role created the event log");
    // The owner role cannot be the app role, nor a superuser.
    let (ok, text) = mahnwerk(&[
        "migrate",
        "--database-url",
        &owner_url,
        "--app-role",
        &owner,
    ]);
    assert!(!ok && text.contains("owner"), "{text}");
    let (ok, text) = mahnwerk(&[
        "migrate",
        "--database-url",
        &owner_url,
        "--app-role",
        "postgres",
    ]);
    assert!(!ok && text.contains("superuser"), "{text}");
    let (ok, text) = mahnwerk(&["migrate", "--database-url", &owner_url, "--app-role", &app]);
    assert!(ok, "{text}");

    // serve as the app role: ingest and the relay work (tables of its own, the log appended).
    let server = start(&app_url).await;
    let key = tenant_key(&app_url, "acme").await;
    let mut client = InvoiceServiceClient::new(server.channel().await);
    for n in ["RE-ROLE-1", "RE-ROLE-2"] {
        client
            .create_invoice(authed(
                &key,
                pb::CreateInvoiceRequest {
                    invoice: Some(invoice(n)),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
    let ns = server.namespace.clone();
    wait_for("the relay to publish as the app role", 30, || {
        let ns = ns.clone();
        async move { stream_messages(&ns).await == 2 }
    })
    .await;
    server.stop().await;

    // Everything that would change the log, as the app role: refused by the database.
    let app_pool = sqlx::PgPool::connect(&app_url).await.unwrap();
    let attempts = [
        "ALTER TABLE eventlog.events DISABLE TRIGGER ALL",
        "ALTER TABLE eventlog.events DISABLE TRIGGER events_no_update_delete",
        "ALTER TABLE eventlog.events DISABLE TRIGGER events_no_truncate",
        "ALTER TABLE eventlog.events ENABLE REPLICA TRIGGER events_no_update_delete",
        "DROP TRIGGER events_no_update_delete ON eventlog.events",
        "CREATE OR REPLACE FUNCTION eventlog.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
        "ALTER TABLE eventlog.events ADD COLUMN x TEXT",
        "ALTER TABLE eventlog.events RENAME TO old_events",
        "DROP TABLE eventlog.events",
        "DROP SCHEMA eventlog CASCADE",
        "TRUNCATE eventlog.events",
        "UPDATE eventlog.events SET actor = 'forged'",
        "DELETE FROM eventlog.events",
        "SET session_replication_role = replica",
        "CREATE TABLE eventlog.shadow (x INT)",
    ];
    for sql in attempts {
        let res = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&app_pool)
            .await;
        assert!(res.is_err(), "the app role could run: {sql}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM eventlog.events")
        .fetch_one(&app_pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
    app_pool.close().await;

    // The log verifies as the app role; migrate again (an upgrade) as the owner is a no-op.
    let (ok, text) = mahnwerk(&["verify", "--database-url", &app_url]);
    assert!(ok, "{text}");
    let (ok, text) = mahnwerk(&["migrate", "--database-url", &owner_url, "--app-role", &app]);
    assert!(ok, "{text}");

    for stmt in [
        format!("DROP DATABASE {db} WITH (FORCE)"),
        format!("DROP ROLE {app}"),
        format!("DROP ROLE {owner}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(stmt))
            .execute(&admin)
            .await
            .unwrap();
    }
}
