//! Where an imported e-invoice goes on: its original into the S3 document store, its claim
//! through matching (a Skonto payment) and dunning.

use super::*;

/// The original of an imported e-invoice is kept in the S3 document store (moto) under its
/// SHA-256, which `invoice.issued` names; the filesystem store is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_is_kept_in_the_s3_document_store_under_the_hash_invoice_issued_names() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let fs_docs = dir.path().join("documents");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let moto = mahnwerk_docstore::testing::moto(&root, "mahnwerk-einvoices").await;
    let c = moto.config.clone();
    let d = fs_docs.clone();
    let server = start_with(&url, move |a| {
        a.services = vec![mahnwerk::config::Service::Ingest];
        a.letters.documents_dir = d;
        use_s3(a, &c);
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let mut client = InvoiceServiceClient::new(server.channel().await);
    let content = sample("xrechnung_01.07a-INVOICE_ubl.xml");
    let r = import(&mut client, &key, content.clone(), "x.xml")
        .await
        .unwrap();
    assert_eq!(r.outcome, "created", "{r:?}");
    let sha = mahnwerk_docstore::sha256_hex(&content);
    assert_eq!(r.document_sha256, sha);
    // invoice.issued names the file by its hash.
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    let tenant: mahnwerk_domain::TenantId = "acme".parse().unwrap();
    let case: mahnwerk_domain::CaseId = r.case_id.parse().unwrap();
    let events = log.read_stream(&case.stream(&tenant), 1, 10).await.unwrap();
    assert_eq!(events[0].event_type, "invoice.issued.v1");
    let source = &events[0].payload["invoice"]["source"];
    assert_eq!(source["sha256"], sha.as_str(), "{source}");
    assert_eq!(source["size"], content.len() as u64);
    assert_eq!(source["media_type"], "application/xml");
    // The bytes are in the bucket, read back through the store as an operator configures it.
    let store = mahnwerk_docstore::DocumentConfig::S3(moto.config.clone())
        .open()
        .unwrap();
    let kept = store.get(&sha).await.unwrap().expect("the original in S3");
    assert_eq!(kept.as_ref(), content.as_slice(), "byte for byte");
    assert!(
        !fs_docs.exists() || std::fs::read_dir(&fs_docs).unwrap().next().is_none(),
        "the S3 run must not touch the filesystem store"
    );
    server.stop().await;
}

/// The Skonto hand-off: an e-invoice with "2 % Skonto innerhalb 10 Tagen, 30 Tage netto"
/// (571.04 EUR issued 2020-11-21: discount 11.42 until 2020-12-01, net 2020-12-21) paid with
/// the discounted 559.62 within the 10 days settles in full, for matching and for dunning (no
/// claim left, no dunning step ever); the same amount after day 10 leaves the 2 % open. The
/// payments go through PaymentService against the running matching and dunning services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skonto_payment_within_the_period_settles_in_full_and_after_it_leaves_the_discount_open()
{
    use pb::dunning_service_client::DunningServiceClient;
    use pb::payment_service_client::PaymentServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let docs = dir.path().join("documents");
    let server = start_with(&url, move |a| {
        a.services = vec![
            mahnwerk::config::Service::Ingest,
            mahnwerk::config::Service::Relay,
            mahnwerk::config::Service::Matching,
            mahnwerk::config::Service::Dunning,
        ];
        a.simulated_clock = Some("2020-11-25".parse().unwrap());
        a.letters.documents_dir = docs;
    })
    .await;
    let key = tenant_key(&url, "acme").await;
    let ch = server.channel().await;
    let mut invoices = InvoiceServiceClient::new(ch.clone());
    let mut payments = PaymentServiceClient::new(ch.clone());
    let dunning = DunningServiceClient::new(ch);
    let skonto = |number: &str| {
        String::from_utf8(sample(FX_SAMPLE))
            .unwrap()
            .replace("RE-20201121/508", number)
            .replace(
                "<ram:Description>Zahlbar ohne Abzug bis 12.12.2020</ram:Description>",
                "<ram:Description>2 % Skonto innerhalb 10 Tagen, 30 Tage netto</ram:Description>",
            )
            .replace(
                "<ram:DueDateDateTime>\n          <udt:DateTimeString format=\"102\">20201212</udt:DateTimeString>\n        </ram:DueDateDateTime>",
                "",
            )
            .into_bytes()
    };
    let mut cases = Vec::new();
    for number in ["RE-SKONTO-1", "RE-SKONTO-2"] {
        let r = import(&mut invoices, &key, skonto(number), number)
            .await
            .unwrap_or_else(|s| panic!("{number}: {s}"));
        assert_eq!(r.outcome, "created", "{r:?}");
        let i = get(&mut invoices, &key, number).await;
        assert_eq!(i.due_date, "2020-12-21", "30 Tage netto");
        let d: Vec<(String, String, i64)> = i
            .cash_discounts
            .iter()
            .map(|c| (c.until.clone(), c.percent.clone(), c.discount_amount))
            .collect();
        assert_eq!(d, [("2020-12-01".into(), "2.00".into(), 1142)]);
        cases.push(r.case_id);
    }
    let explain = |case_id: &str| {
        let mut d = dunning.clone();
        let req = authed(
            &key,
            pb::ExplainCaseRequest {
                case_id: case_id.to_owned(),
                ..Default::default()
            },
        );
        async move { d.explain_case(req).await.map(|r| r.into_inner()) }
    };
    // Dunning opened the cases, and matching's open items hold them (its own table).
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    for c in &cases {
        wait_for("dunning to open the case", 30, || async {
            explain(c).await.is_ok()
        })
        .await;
        wait_for("matching to know the open item", 30, || async {
            let n: Result<(i64,), _> =
                sqlx::query_as("SELECT COUNT(*) FROM matching_items WHERE case_id = $1")
                    .bind(c.clone())
                    .fetch_one(&pool)
                    .await;
            n.is_ok_and(|(n,)| n == 1)
        })
        .await;
    }
    let pay = |reference: &str, number: &str, booked: &str| pb::Transaction {
        bank_reference: reference.into(),
        account: "DE88200800000970375700".into(),
        amount: Some(pb::Money {
            minor: 55962,
            currency: "EUR".into(),
        }),
        booking_date: booked.into(),
        counterparty_name: "Theodor Est".into(),
        remittance: format!("Rechnung {number} abzgl. 2 % Skonto"),
        ..Default::default()
    };
    let res = payments
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![
                    // Day 9: within the discount period.
                    pay("SK-1", "RE-SKONTO-1", "2020-11-30"),
                    // Day 14: too late for the discount.
                    pay("SK-2", "RE-SKONTO-2", "2020-12-05"),
                ],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let open_after = |r: &pb::EntryResult| {
        r.allocations
            .iter()
            .map(|a| a.open_after.as_ref().map_or(-1, |m| m.minor))
            .collect::<Vec<_>>()
    };
    assert_eq!(res.results[0].decision, "applied", "{:?}", res.results[0]);
    assert_eq!(open_after(&res.results[0]), [0], "{:?}", res.results[0]);
    assert_eq!(open_after(&res.results[1]), [1142], "{:?}", res.results[1]);

    // Dunning: the first case is settled with nothing left, the second owes the 2 %.
    wait_for("dunning to see both payments", 30, || async {
        let a = explain(&cases[0]).await.unwrap();
        let b = explain(&cases[1]).await.unwrap();
        a.status == "settled" && b.principal_open.as_ref().is_some_and(|m| m.minor == 1142)
    })
    .await;
    let a = explain(&cases[0]).await.unwrap();
    assert_eq!(a.balance.as_ref().map(|m| m.minor), Some(0), "{a:?}");
    assert_eq!(a.principal_open.as_ref().map(|m| m.minor), Some(0), "{a:?}");
    // Months later: no dunning for the settled case; the other one is dunned for the rest.
    dunning
        .clone()
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 90 }))
        .await
        .unwrap();
    let a = explain(&cases[0]).await.unwrap();
    assert_eq!(a.status, "settled");
    assert!(a.steps.is_empty(), "no dunning of a Skonto payment: {a:?}");
    let b = explain(&cases[1]).await.unwrap();
    assert_ne!(b.status, "settled", "{b:?}");
    assert!(!b.steps.is_empty(), "the 2 % left open is dunned: {b:?}");
    server.stop().await;
}

const FX_SAMPLE: &str = "mustang_factur-x.xml";
