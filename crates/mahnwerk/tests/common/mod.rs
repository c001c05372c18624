//! Test harness: a fresh database per test (SQLite always, PostgreSQL when DATABASE_URL is set),
//! a unique JetStream namespace, and the services started in-process on 127.0.0.1:0.
//! `calls`: the setup calls many tests make (letterhead, invoices, partner); `process`: the
//! Python, ports, child processes and nats-server of the tests that run more than that.

#![allow(dead_code)]

mod calls;
mod process;
// Each test binary uses part of the harness.
#[allow(unused_imports)]
pub use calls::*;
#[allow(unused_imports)]
pub use process::*;

use mahnwerk::config::{ServeArgs, Service, StoreArgs};
use mahnwerk_proto::v1 as pb;
use std::net::SocketAddr;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A database URL per backend for one test: SQLite in `dir`, plus a fresh PostgreSQL database
/// when DATABASE_URL is set.
pub async fn databases(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("mahnwerk.db").display()
    )];
    if let Ok(admin) = std::env::var("DATABASE_URL") {
        let name = unique("mwt_");
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("DATABASE_URL must reach PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin)
            .to_owned();
        urls.push(format!("{base}/{name}"));
    } else {
        eprintln!("DATABASE_URL not set: this test ran on SQLite only");
    }
    urls
}

/// A SQLite database `m.db` in `dir`.
pub fn sqlite_db(dir: &tempfile::TempDir) -> String {
    format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display())
}

pub struct Running {
    pub addr: SocketAddr,
    pub namespace: String,
    pub database_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

pub async fn start(database_url: &str) -> Running {
    start_with(database_url, |_| {}).await
}

/// [`start`] with changed arguments (e.g. a simulated clock).
pub async fn start_with(database_url: &str, change: impl FnOnce(&mut ServeArgs)) -> Running {
    let namespace = unique("t");
    let mut args = ServeArgs {
        store: StoreArgs {
            database_url: database_url.to_owned(),
        },
        nats_url: nats_url(),
        listen: "127.0.0.1:0".parse().unwrap(),
        namespace: namespace.clone(),
        // What these tests check: ingest and the relay; a test that needs more names it.
        services: vec![Service::Ingest, Service::Relay],
        relay_batch: 2000,
        grpc_concurrency: 256,
        partitions: 1,
        stream_replicas: 1,
        metrics_listen: "off".into(),
        letters: Default::default(),
        demo: false,
        simulated_clock: None,
        dunning_state: mahnwerk_dunning::law::calendar::FederalState::NW,
        base_rates: None,
        collection_documents_dir: None,
        tls_cert: None,
        tls_key: None,
        tls_client_ca: None,
        tls_client_tenants: None,
        console_listen: "127.0.0.1:0".parse().unwrap(),
        console_grpc: None,
    };
    change(&mut args);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, addr) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(mahnwerk::server::run(
        args,
        async {
            let _ = stopped.await;
        },
        Some(ready),
    ));
    let addr = addr.await.expect("server started");
    Running {
        addr,
        namespace,
        database_url: database_url.to_owned(),
        stop: Some(stop),
        task,
    }
}

/// Keep documents in the S3 bucket of `c` (e.g. a `mahnwerk_docstore::testing::moto` server).
pub fn use_s3(a: &mut ServeArgs, c: &mahnwerk_docstore::S3Config) {
    a.letters.documents_s3_bucket = Some(c.bucket.clone());
    a.letters.documents_s3_endpoint = c.endpoint.clone();
    a.letters.documents_s3_region = c.region.clone();
    a.letters.documents_s3_prefix = c.prefix.clone();
    a.letters.documents_s3_access_key_id = c.access_key_id.clone();
    a.letters.documents_s3_secret_access_key = c.secret_access_key.clone();
}

/// Create a tenant and a key for it directly in the store (as `mahnwerk tenant create` does).
pub async fn tenant_key(database_url: &str, tenant: &str) -> String {
    let (_, keys, _) = mahnwerk::server::open_stores(database_url).await.unwrap();
    let t = tenant.parse().unwrap();
    keys.create_tenant(&t, tenant).await.unwrap();
    keys.create_key(&[t], "test").await.unwrap().token
}

pub fn authed<T>(key: &str, body: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

pub fn invoice(number: &str) -> pb::Invoice {
    pb::Invoice {
        invoice_number: number.into(),
        issue_date: "2026-03-01".into(),
        due_date: "2026-03-15".into(),
        currency: "EUR".into(),
        net_amount: 10000,
        tax_amount: 1900,
        gross_amount: 11900,
        debtor: Some(pb::Debtor {
            name: "Erika Mustermann".into(),
            kind: pb::DebtorKind::Consumer as i32,
            address: Some(pb::PostalAddress {
                street: vec!["Heidestraße 17".into()],
                postal_code: "51147".into(),
                city: "Köln".into(),
                country: "DE".into(),
                region: String::new(),
            }),
            email: "erika@example.org".into(),
            language: "de".into(),
            customer_number: "K-1".into(),
            vat_id: String::new(),
        }),
        payment_reference: "RF18539007547034".into(),
        creditor_account: Some(pb::BankAccount {
            iban: "DE89 3704 0044 0532 0130 00".into(),
            bic: "COBADEFFXXX".into(),
            holder: String::new(),
        }),
        ..Default::default()
    }
}

pub async fn wait_for<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

pub async fn stream_messages(namespace: &str) -> u64 {
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = mahnwerk_bus::BusConfig::with_namespace(namespace);
    match js.get_stream(&bus.stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}
