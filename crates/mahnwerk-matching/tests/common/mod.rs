//! The in-process matching service the gRPC tests run against: a real SQLite event log and a
//! real NATS JetStream (NATS_URL), relay, consumer projection and gRPC server, a fresh namespace
//! per test.
#![allow(dead_code, unused_imports)]

pub use mahnwerk_auth::KeyStore;
pub use mahnwerk_bus::{BusConfig, Relay};
pub use mahnwerk_domain::lifecycle::{CaseEvent, InvoiceIssued};
pub use mahnwerk_domain::{
    BankAccount, CaseId, Currency, Debtor, DebtorKind, Invoice, PostalAddress, TenantId,
};
pub use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now,
};
pub use mahnwerk_formats::rf::RfReference;
pub use mahnwerk_matching::engine::Settings;
pub use mahnwerk_matching::{Matching, MatchingConfig};
pub use mahnwerk_proto::v1 as pb;
pub use pb::payment_service_client::PaymentServiceClient;
pub use std::time::Duration;
pub use tokio::sync::watch;
pub use tonic::transport::Channel;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A business invoice of `gross` cents to `name` in Berlin, due 2026-10-15, as ingest writes it.
pub fn invoice(number: &str, name: &str, gross: i64, rf: Option<&str>) -> Invoice {
    Invoice {
        number: number.parse().unwrap(),
        issue_date: "2026-10-01".parse().unwrap(),
        due_date: "2026-10-15".parse().unwrap(),
        currency: Currency::EUR,
        net: gross,
        tax: 0,
        gross,
        debtor: Debtor {
            name: name.to_owned().into(),
            kind: DebtorKind::Business,
            address: PostalAddress {
                street: vec!["Hauptstr. 1".into()],
                postal_code: "10115".into(),
                city: "Berlin".into(),
                country: "DE".into(),
                region: None,
            }
            .into(),
            email: None,
            language: "de".into(),
            customer_number: None,
            vat_id: None,
        },
        payment_reference: rf.map(str::to_owned),
        creditor_account: BankAccount {
            iban: "DE89370400440532013000".parse().unwrap(),
            bic: None,
            holder: None,
        },
        default_notice: false,
        prepaid: 0,
        rounding: 0,
        cash_discounts: vec![],
        source: None,
        direct_debit: None,
        due_date_by_calendar: false,
    }
}

pub struct Env {
    pub _dir: tempfile::TempDir,
    pub log: EventLog,
    pub pool: sqlx::AnyPool,
    pub tenant: TenantId,
    pub token: String,
    pub client: PaymentServiceClient<Channel>,
    pub addr: std::net::SocketAddr,
    pub js: async_nats::jetstream::Context,
    pub bus: BusConfig,
    pub stop: watch::Sender<bool>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Env {
    pub async fn start() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("mw.db").display());
        let log = EventLog::connect(&url).await.unwrap();
        let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
        let keys = KeyStore::open(pool.clone()).await.unwrap();
        let tenant: TenantId = "acme".parse().unwrap();
        keys.create_tenant(&tenant, "ACME GmbH").await.unwrap();
        let token = keys
            .create_key(std::slice::from_ref(&tenant), "test")
            .await
            .unwrap()
            .token;
        mahnwerk_matching::ensure_schema(&pool).await.unwrap();
        let ns = format!("m{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let bus = BusConfig::with_namespace(&ns);
        let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
        let (stop, rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let mut tasks = Vec::new();
        {
            let (relay, log, js, rx) =
                (Relay::new(bus.clone()), log.clone(), js.clone(), rx.clone());
            tasks.push(tokio::spawn(async move {
                relay.run(log, js, stopped(rx)).await.unwrap();
            }));
        }
        {
            let (cfg, pool, js, rx) = (
                MatchingConfig::new(bus.clone()),
                pool.clone(),
                js.clone(),
                rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                mahnwerk_matching::run(cfg, pool, js, stopped(rx))
                    .await
                    .unwrap();
            }));
        }
        let matching = Matching::new(log.clone(), keys, pool.clone(), Settings::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        {
            let rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(mahnwerk_matching::service(matching))
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(listener),
                        stopped(rx),
                    )
                    .await
                    .unwrap();
            }));
        }
        let client = PaymentServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        Env {
            _dir: dir,
            log,
            pool,
            tenant,
            token,
            client,
            addr,
            js,
            bus,
            stop,
            tasks,
        }
    }

    pub fn req<T>(&self, msg: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        r
    }

    /// Issue an invoice as ingest would, and wait until the matching projection has it.
    pub async fn issue(&self, number: &str, name: &str, gross: i64, rf: Option<&str>) -> String {
        let inv = invoice(number, name, gross, rf);
        let case = CaseId::for_invoice(&self.tenant, &inv.number);
        let ev = CaseEvent::InvoiceIssued(InvoiceIssued { invoice: inv });
        self.log
            .append(AppendBatch {
                stream: case.stream(&self.tenant),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: event_id_now(),
                    event_type: ev.event_type().into(),
                    payload: ev.to_payload(),
                    occurred_at: chrono::Utc::now(),
                    metadata: Metadata {
                        actor: "test".into(),
                        ..Default::default()
                    },
                }],
            })
            .await
            .unwrap();
        let id = case.to_string();
        wait_for("the open item in the projection", || async {
            mahnwerk_matching::projection::has_item(&self.pool, "acme", &id)
                .await
                .unwrap()
        })
        .await;
        id
    }

    pub async fn case_types(&self, case_id: &str) -> Vec<String> {
        let case: CaseId = case_id.parse().unwrap();
        self.log
            .read_stream(&case.stream(&self.tenant), 1, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let _ = self.js.delete_stream(&self.bus.stream).await;
        let _ = self.js.delete_stream(&self.bus.dead_letter_stream).await;
    }
}

pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn tx(bank_ref: &str, minor: i64, text: &str) -> pb::Transaction {
    pb::Transaction {
        bank_reference: bank_ref.into(),
        account: "DE89370400440532013000".into(),
        amount: Some(pb::Money {
            minor,
            currency: "EUR".into(),
        }),
        booking_date: "2026-11-03".into(),
        counterparty_name: "Müller Metallbau GmbH".into(),
        counterparty_iban: "DE02120300000000202051".into(),
        remittance: text.into(),
        ..Default::default()
    }
}

/// A camt.052 or camt.053 of one statement of account DE89…3000 with these booked credits
/// (bank reference, minor units, remittance text) and balances.
#[allow(dead_code)]
pub fn camt(kind: &str, entries: &[(&str, i64, &str)], opening: i64, closing: i64) -> String {
    let (root, stmt) = if kind == "052" {
        ("BkToCstmrAcctRpt", "Rpt")
    } else {
        ("BkToCstmrStmt", "Stmt")
    };
    let bal = |code: &str, minor: i64| {
        format!(
            "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">{}.{:02}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-03</Dt></Dt></Bal>",
            minor / 100,
            minor % 100
        )
    };
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.{kind}.001.08\"><{root}><GrpHdr><MsgId>M-{kind}</MsgId><CreDtTm>2026-11-03T18:00:00</CreDtTm></GrpHdr><{stmt}><Id>S-{kind}</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>{}{}",
        bal(if kind == "052" { "ITBD" } else { "OPBD" }, opening),
        bal(if kind == "052" { "ITAV" } else { "CLBD" }, closing),
    );
    for (r, minor, text) in entries {
        x.push_str(&format!(
            "<Ntry><Amt Ccy=\"EUR\">{}.{:02}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-03</Dt></BookgDt><ValDt><Dt>2026-11-03</Dt></ValDt><AcctSvcrRef>{r}</AcctSvcrRef><BkTxCd/><NtryDtls><TxDtls><RltdPties><Dbtr><Pty><Nm>Weiß KG</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>DE02120300000000202051</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
            minor / 100,
            minor % 100
        ));
    }
    x.push_str(&format!("</{stmt}></{root}></Document>"));
    x
}

/// `ImportStatement` of `file` for tenant acme, in three chunks.
#[allow(dead_code)]
pub async fn import(
    env: &mut Env,
    file: &str,
) -> Result<pb::ImportStatementResponse, tonic::Status> {
    // Three chunks, as a client streaming a big file would send them.
    let bytes = file.as_bytes().to_vec();
    let third = bytes.len() / 3 + 1;
    let msgs: Vec<pb::ImportStatementRequest> = bytes
        .chunks(third)
        .map(|c| pb::ImportStatementRequest {
            tenant: "acme".into(),
            csv_mapping: String::new(),
            chunk: c.to_vec(),
        })
        .collect();
    env.client
        .import_statement(env.req(futures::stream::iter(msgs)))
        .await
        .map(|r| r.into_inner())
}
