//! Must-show 5 of issue 10 (GDPR Art. 17, ADR 006): a debtor's personal data is sealed under a
//! per-debtor key wherever it is stored; after `mahnwerk debtor erase` no stored byte anywhere
//! (the SQLite database with its WAL, the JetStream store directory of a private nats-server,
//! on PostgreSQL the relation files and WAL segments written meanwhile, the document store with
//! the letter PDF and the original e-invoice, the post spool) contains their name, email or IBAN
//! in clear, readers see placeholders, dunning stops, the debtor cannot be written to again, and
//! `mahnwerk verify` passes. Documents and spool files are sealed objects from the start and read
//! transparently while the key exists (LetterService.GetDocument, the store, the spool pickup),
//! unreadable after. The case export under the master key verifies offline before and after
//! the erasure (`verify --archive`), and after it holds no clear personal data.
//!
//! The server runs as a child process (`mahnwerk serve`) because the master key is process
//! configuration (`MAHNWERK_MASTER_KEY`).

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::invoice_service_client::InvoiceServiceClient;
use pb::payment_service_client::PaymentServiceClient;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

// More of this binary, by idea (one binary: one link).
#[path = "erasure/debtor.rs"]
mod debtor;
use debtor::*;

const MASTER: &str = "8c1f0d7a5b3e9f2c4a6d8e0b1c3f5a7d9e2b4c6a8f0e1d3c5b7a9f2e4d6c8b0a";

fn mahnwerk(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(args)
        .env("MAHNWERK_MASTER_KEY", MASTER)
        .env_remove("MAHNWERK_MASTER_KEY_FILE")
        .output()
        .unwrap()
}

async fn run_case(url: &str, dir: &Path, pg: bool) {
    // A private nats-server with its own store directory.
    let js_dir = dir.join("jetstream");
    std::fs::create_dir_all(&js_dir).unwrap();
    let nats_port = free_port();
    let _nats = Kill(
        Command::new(nats_server_bin())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &nats_port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&js_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (set NATS_SERVER_BIN)"),
    );
    wait_port(nats_port, "nats-server");
    let nats_url = format!("nats://127.0.0.1:{nats_port}");

    // PostgreSQL: the WAL written from here on is scanned too.
    let pg_pool = if pg {
        Some(sqlx::PgPool::connect(url).await.unwrap())
    } else {
        None
    };
    let wal_start: Option<String> = match &pg_pool {
        Some(p) => Some(
            sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
                .fetch_one(p)
                .await
                .unwrap(),
        ),
        None => None,
    };

    let key = tenant_key(url, "acme").await;
    let (docs_dir, spool_dir) = (dir.join("documents"), dir.join("spool"));
    // Exports are written outside `dir`: the one before the erasure holds clear data by design.
    let exports = tempfile::tempdir().unwrap();
    let port = free_port();
    let namespace = unique("gdpr");
    let mut server = Kill(
        Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .args([
                "serve",
                "--database-url",
                url,
                "--nats-url",
                &nats_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--namespace",
                &namespace,
                "--services",
                "ingest,relay,matching,dunning,letters,collection",
                "--metrics-listen",
                "off",
            ])
            // The letter PDFs, the original e-invoices and the post spool (no SMTP: letters go
            // by post) live under `dir` and are scanned with it.
            .env("MAHNWERK_DOCUMENTS_DIR", &docs_dir)
            .env("MAHNWERK_POST_SPOOL", &spool_dir)
            .env_remove("MAHNWERK_SMTP_HOST")
            .env_remove("MAHNWERK_DOCUMENTS_S3_BUCKET")
            .env("MAHNWERK_MASTER_KEY", MASTER)
            .env_remove("MAHNWERK_MASTER_KEY_FILE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_port(port, "mahnwerk serve");
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut invoices = InvoiceServiceClient::new(channel.clone());
    let mut payments = PaymentServiceClient::new(channel.clone());
    put_sample_letterhead(&channel, &key).await;
    let mut letters = pb::letter_service_client::LetterServiceClient::new(channel.clone());

    let mut inv = invoice("RE-GDPR-1");
    {
        let d = inv.debtor.as_mut().unwrap();
        d.name = NAME.into();
        d.email = EMAIL.into();
        d.customer_number = "K-77".into();
        d.address.as_mut().unwrap().street = vec![STREET.into()];
    }
    let create = |inv: pb::Invoice| {
        authed(
            &key,
            pb::CreateInvoiceRequest {
                tenant: String::new(),
                invoice: Some(inv),
            },
        )
    };
    let case1 = invoices
        .create_invoice(create(inv.clone()))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .case_id;
    let mut second = inv.clone();
    second.invoice_number = "RE-GDPR-2".into();
    second.payment_reference = String::new();
    let case2 = invoices
        .create_invoice(create(second))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .case_id;
    // A third invoice of the debtor: handed over to a collection partner before the erasure.
    let mut third = inv.clone();
    third.invoice_number = "RE-GDPR-4".into();
    third.payment_reference = String::new();
    let case4 = invoices
        .create_invoice(create(third))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .case_id;
    // The debtor's e-invoice: its original goes to the document store.
    let original = einvoice();
    let imported = invoices
        .import_e_invoice(authed(
            &key,
            einvoice_request(original.clone(), "TOSL108.xml", "Tenant GmbH"),
        ))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(imported.outcome, "created", "{imported:?}");
    // Another debtor, untouched by the erasure.
    let mut other = invoice("RE-OTHER-1");
    other.payment_reference = String::new();
    invoices.create_invoice(create(other)).await.unwrap();

    // The consumers (dunning, matching's open items) have seen the invoices.
    for n in ["RE-GDPR-1", "RE-GDPR-2", "RE-GDPR-4"] {
        wait_for("dunning to open the cases", 30, || async {
            let out = mahnwerk(&[
                "case",
                "show",
                "--database-url",
                url,
                "--tenant",
                "acme",
                "--json",
                n,
            ]);
            String::from_utf8_lossy(&out.stdout).contains("dunning.case_opened.v1")
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A payment from the debtor's IBAN (applied: the matching projection learns the IBAN), and
    // one the engine cannot place (the review queue keeps the payer).
    let tx = |r: &str, minor: i64, text: &str| pb::Transaction {
        bank_reference: r.into(),
        account: "DE89370400440532013000".into(),
        amount: Some(pb::Money {
            minor,
            currency: "EUR".into(),
        }),
        booking_date: "2026-11-03".into(),
        counterparty_name: NAME.into(),
        counterparty_iban: iban_spaced(),
        remittance: text.into(),
        references: if text.starts_with("RF") {
            vec![text.into()]
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    let res = payments
        .record_transactions(authed(
            &key,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![
                    tx("PSP-1", 11900, "RF18539007547034"),
                    tx("PSP-2", 777, "irgendwas"),
                ],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(res.results[0].decision, "applied", "{:?}", res.results[0]);

    // Consumers with the key read clear data.
    let get = |n: &str| {
        authed(
            &key,
            pb::GetInvoiceRequest {
                tenant: String::new(),
                invoice_number: n.into(),
            },
        )
    };
    let before = invoices
        .get_invoice(get("RE-GDPR-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.invoice.unwrap().debtor.unwrap().name, NAME);
    let list = |key: &str| {
        authed(
            key,
            pb::ListInvoicesRequest {
                tenant: String::new(),
                debtor_customer_number: "K-77".into(),
                ..Default::default()
            },
        )
    };
    wait_for("the invoice projection", 30, || {
        let mut c = invoices.clone();
        let req = list(&key);
        async move {
            c.list_invoices(req)
                .await
                .map(|r| r.into_inner().invoices.len() == 4)
                .unwrap_or(false)
        }
    })
    .await;
    let listed = invoices
        .list_invoices(list(&key))
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed
            .invoices
            .iter()
            .all(|i| i.debtor.as_ref().unwrap().name == NAME)
    );

    // Dunning's first step for the unpaid case becomes a letter in the post spool.
    let list_letters = |case: &str| {
        authed(
            &key,
            pb::ListLettersRequest {
                tenant: String::new(),
                case_id: case.into(),
            },
        )
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let letter = loop {
        // An RPC error fails here, loudly, instead of looking like an empty list.
        let list = letters
            .list_letters(list_letters(&case2))
            .await
            .unwrap_or_else(|status| panic!("ListLetters failed: {status:?}"))
            .into_inner()
            .letters;
        if let Some(l) = list
            .iter()
            .find(|l| l.recipient == "debtor" && l.channel == "post" && l.state == "sent")
        {
            break l.clone();
        }
        if tokio::time::Instant::now() >= deadline {
            let mut others = Vec::new();
            for c in [&case1, &case4] {
                others.push(
                    letters
                        .list_letters(list_letters(c))
                        .await
                        .unwrap_or_else(|status| panic!("ListLetters failed: {status:?}"))
                        .into_inner()
                        .letters,
                );
            }
            panic!(
                "no letter to the debtor in the post spool: {list:?}; the debtor's other cases: {others:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let get_document = |sha: &str| {
        authed(
            &key,
            pb::GetDocumentRequest {
                tenant: String::new(),
                sha256: sha.into(),
            },
        )
    };
    // Stored and spooled sealed, read in clear through the service and with the key.
    let pdf = letters
        .get_document(get_document(&letter.document_sha256))
        .await
        .unwrap()
        .into_inner()
        .content;
    assert!(pdf.starts_with(b"%PDF"));
    assert!(
        all_sealed(&docs_dir) >= 2,
        "the letter PDF and the e-invoice"
    );
    assert!(all_sealed(&spool_dir) >= 2, "the spool job's PDF and JSON");
    let keyed = mahnwerk_eventlog::EventLog::connect_with_key(
        url,
        Default::default(),
        Some(mahnwerk_eventlog::privacy::MasterKey::from_hex(MASTER).unwrap()),
    )
    .await
    .unwrap();
    use mahnwerk_docstore::DocumentStore as _;
    let store = mahnwerk_docstore::FsDocuments::new(&docs_dir);
    assert_eq!(
        store.get(&imported.document_sha256).await.unwrap().unwrap(),
        original,
        "the original e-invoice opens with the key"
    );
    let spool = mahnwerk_letters_service::channels::PostSpool {
        dir: spool_dir.clone(),
    };
    let (job, spooled) = spool.read(&letter.provider_id).await.unwrap();
    assert!(spooled.starts_with(b"%PDF"));
    assert!(job.to_string().contains(NAME), "{job}");
    // The third case is handed over to a collection partner before the erasure: the
    // partner reads the debtor in clear through the CollectionService, while the hand-over's
    // copies (the log, the partner's subject in JetStream) carry it only sealed.
    let handed_over = hand_over(&channel, &key, &case4).await;
    assert_eq!(handed_over.0["debtor"]["name"], NAME, "{}", handed_over.0);
    // The case export under the master key verifies offline.
    let export = |name: &str| {
        let path = exports.path().join(name);
        let out = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .args(["case", "export", "--database-url", url, "--tenant", "acme"])
            .arg(&case2)
            .arg("--out")
            .arg(&path)
            .arg("--documents-dir")
            .arg(&docs_dir)
            .env("MAHNWERK_MASTER_KEY", MASTER)
            .env_remove("MAHNWERK_MASTER_KEY_FILE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "export: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let check = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .args([
                "verify",
                "--database-url",
                "sqlite:/nonexistent/none.db",
                "--archive",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "verify --archive {name}: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        std::fs::read(&path).unwrap()
    };
    let names = |tar: &[u8]| -> Vec<String> {
        mahnwerk_collection::archive::read_tar(tar)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    };
    let before = export("before.tar");
    let letter_name = format!("documents/{}.pdf", letter.document_sha256);
    // Every document of the case's letters: the debtor's cases reaching their first step the
    // same day share one consolidated letter, rendered again (another document) when RE-GDPR-1
    // is paid before it goes out, so the case's stream can name more than the one sent.
    let mut letter_documents: Vec<String> = letters
        .list_letters(list_letters(&case2))
        .await
        .unwrap()
        .into_inner()
        .letters
        .iter()
        .filter(|l| !l.document_sha256.is_empty())
        .map(|l| format!("documents/{}.pdf", l.document_sha256))
        .collect();
    letter_documents.sort();
    letter_documents.dedup();
    assert!(
        names(&before).contains(&letter_name),
        "the export holds the letter PDF: {:?}",
        names(&before)
    );
    // Leaving a document out as "erased" is accepted only when the events record an erasure:
    // the archive before it, with the letter PDF removed and listed so, fails.
    {
        use mahnwerk_collection::archive::{Entry, read_tar, verify, write_tar};
        let mut entries: Vec<Entry> = read_tar(&before)
            .unwrap()
            .into_iter()
            .filter(|e| e.name != letter_name)
            .collect();
        let m = entries
            .iter_mut()
            .find(|e| e.name == "manifest.json")
            .unwrap();
        let mut manifest: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        manifest["files"]
            .as_object_mut()
            .unwrap()
            .remove(&letter_name);
        manifest["erased"] = serde_json::json!([letter_name]);
        m.bytes = serde_json::to_vec_pretty(&manifest).unwrap();
        let problems = verify(&write_tar(&entries)).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("listed as erased, but no case.debtor_erased.v1")),
            "{problems:?}"
        );
    }

    // Wait for the relay (JetStream holds every event) and dunning (the cases are opened).
    let js = mahnwerk_bus::connect(&nats_url).await.unwrap();
    let bus = mahnwerk_bus::BusConfig::with_namespace(&namespace);
    let log_head = || async {
        let out = mahnwerk(&["verify", "--database-url", url, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["events"].as_u64().unwrap_or(0)
    };
    let js_count = || {
        let js = js.clone();
        let name = bus.stream.clone();
        async move {
            match js.get_stream(&name).await {
                Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
                Err(_) => 0,
            }
        }
    };

    // Erase, as the operator.
    let out = mahnwerk(&[
        "debtor",
        "erase",
        "--database-url",
        url,
        "--tenant",
        "acme",
        "--customer-number",
        "K-77",
        "--iban",
        iban(),
        "--reason",
        "Art. 17 request 2026-117",
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("erasure recorded") && text.contains("4 cases"),
        "{text}"
    );

    // Readers see placeholders; amounts and dates stay.
    wait_for("the erased debtor to read as erased", 30, || {
        let mut c = invoices.clone();
        let req = get("RE-GDPR-1");
        async move {
            c.get_invoice(req)
                .await
                .map(|r| r.into_inner().invoice.unwrap().debtor.unwrap().name == "[erased]")
                .unwrap_or(false)
        }
    })
    .await;
    let after = invoices
        .get_invoice(get("RE-GDPR-1"))
        .await
        .unwrap()
        .into_inner();
    let after = after.invoice.unwrap();
    assert_eq!(after.gross_amount, 11900);
    assert_eq!(after.due_date, "2026-03-15");
    let other = invoices
        .get_invoice(get("RE-OTHER-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        other.invoice.unwrap().debtor.unwrap().name,
        "Erika Mustermann"
    );
    // Dunning stops with a clear event on the case without a payment.
    wait_for(
        "dunning to stop on the erased debtor's open case",
        30,
        || async {
            let out = mahnwerk(&[
                "case",
                "show",
                "--database-url",
                url,
                "--tenant",
                "acme",
                "--json",
                "RE-GDPR-2",
            ]);
            let t = String::from_utf8_lossy(&out.stdout).into_owned();
            t.contains("case.debtor_erased.v1") && t.contains("dunning.cancelled.v1")
        },
    )
    .await;
    // An erased debtor cannot be written to.
    let mut again = inv.clone();
    again.invoice_number = "RE-GDPR-3".into();
    let err = invoices.create_invoice(create(again)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    // The same erasure over the API: idempotent, nothing more destroyed; a bad request names
    // its field.
    let mut cases = CaseServiceClient::new(channel.clone());
    let erase = |reason: &str| {
        authed(
            &key,
            pb::EraseDebtorRequest {
                tenant: String::new(),
                customer_number: "K-77".into(),
                invoice_numbers: Vec::new(),
                ibans: vec![iban().into()],
                reason: reason.into(),
            },
        )
    };
    let again = cases
        .erase_debtor(erase("Art. 17 request 2026-117"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.keys_erased, 0);
    assert_eq!(again.case_ids.len(), 4);
    let err = cases.erase_debtor(erase("")).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("reason"), "{err:?}");

    // The partner now reads placeholders; amounts stay.
    let file = partner_case_file(&channel, &handed_over.1, &case4).await;
    assert_eq!(file["debtor"]["name"], "[erased]", "{file}");
    assert_eq!(
        file["claim"]["principal_open"],
        handed_over.0["claim"]["principal_open"]
    );
    // The documents and the spooled job are unreadable now, for the service and with the key
    // (a process trusts a cached data key for at most 5 s).
    let err = letters
        .get_document(get_document(&letter.document_sha256))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    wait_for("the stored e-invoice to be unreadable", 30, || async {
        matches!(
            store.get(&imported.document_sha256).await,
            Err(mahnwerk_docstore::Error::Erased { .. })
        )
    })
    .await;
    assert!(matches!(
        spool.read(&letter.provider_id).await,
        Err(mahnwerk_docstore::Error::Erased { .. })
    ));
    drop(keyed);
    // The export still verifies, without the erased documents and without clear data.
    let after = export("after.tar");
    assert!(
        !names(&after).contains(&letter_name),
        "the erased letter PDF is left out"
    );
    let manifest = mahnwerk_collection::archive::read_tar(&after)
        .unwrap()
        .into_iter()
        .find(|e| e.name == "manifest.json")
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(
        manifest["erased"],
        serde_json::json!(letter_documents),
        "{manifest}"
    );
    let hits = found(&after, &needles());
    assert!(hits.is_empty(), "personal data in the export: {hits:?}");

    wait_for("JetStream to hold every event", 30, || async {
        let (h, n) = (log_head().await, js_count().await);
        h > 0 && h == n
    })
    .await;

    // The hand-over reached the partner's subject: its JetStream copy is scanned too.
    let partner_stream = mahnwerk_collection::Subjects::of(&bus).stream;
    wait_for("the hand-over on the partner's subject", 30, || async {
        match js.get_stream(&partner_stream).await {
            Ok(mut s) => s.info().await.is_ok_and(|i| i.state.messages >= 1),
            Err(_) => false,
        }
    })
    .await;

    // Stop everything, so every byte is on disk.
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let _ = server.0.wait();
    drop(js);

    let needles = needles();
    let control = vec![("invoice number", b"RE-GDPR-1".to_vec())];
    if let Some(pool) = &pg_pool {
        sqlx::query("CHECKPOINT").execute(pool).await.unwrap();
        let files: Vec<String> = sqlx::query_scalar(
            "SELECT pg_relation_filepath(c.oid) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('r', 't', 'i', 'm') \
             AND pg_relation_filepath(c.oid) IS NOT NULL",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let wal_end: String = sqlx::query_scalar("SELECT pg_walfile_name(pg_current_wal_lsn())")
            .fetch_one(pool)
            .await
            .unwrap();
        let wal_start = wal_start.unwrap();
        let wal: Vec<String> = sqlx::query_scalar(
            "SELECT 'pg_wal/' || name FROM pg_ls_waldir() WHERE name >= $1 AND name <= $2 AND length(name) = 24 ORDER BY name",
        )
        .bind(&wal_start)
        .bind(&wal_end)
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(
            !wal.is_empty(),
            "no WAL segment between {wal_start} and {wal_end}"
        );
        let (mut hits, mut controls, mut scanned) = (Vec::new(), 0, 0_u64);
        for f in files.iter().chain(&wal) {
            // Segments (relations over 1 GiB) beyond the first are not read: test data is small.
            let Ok(bytes) = sqlx::query_scalar::<_, Vec<u8>>("SELECT pg_read_binary_file($1)")
                .bind(f)
                .fetch_one(pool)
                .await
            else {
                continue;
            };
            scanned += bytes.len() as u64;
            controls += found(&bytes, &control).len();
            for what in found(&bytes, &needles) {
                hits.push(format!("{f}: {what}"));
            }
        }
        eprintln!(
            "PostgreSQL: scanned {} relation files and {} WAL segments ({scanned} bytes)",
            files.len(),
            wal.len()
        );
        assert!(
            controls > 0,
            "the scan must see the invoice number somewhere"
        );
        assert!(
            hits.is_empty(),
            "personal data in clear on PostgreSQL: {hits:?}"
        );
    }
    drop(_nats);

    let (hits, scanned) = grep_dir(dir, &needles);
    let (controls, _) = grep_dir(dir, &control);
    eprintln!("scanned {scanned} bytes under {}", dir.display());
    assert!(!controls.is_empty(), "the scan must see the invoice number");
    if !pg {
        assert!(
            controls.iter().any(|c| c.contains("mahnwerk.db")),
            "the SQLite files hold the invoice number: {controls:?}"
        );
    }
    assert!(
        controls.iter().any(|c| c.contains("jetstream")),
        "the JetStream store holds the invoice number: {controls:?}"
    );
    assert!(hits.is_empty(), "personal data in clear: {hits:?}");

    let out = mahnwerk(&["verify", "--database-url", url]);
    assert!(
        out.status.success(),
        "verify: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The case file a partner key reads through `CollectionService.GetHandedOverCase`.
async fn partner_case_file(
    channel: &tonic::transport::Channel,
    partner_key: &str,
    case_id: &str,
) -> serde_json::Value {
    let mut col = pb::collection_service_client::CollectionServiceClient::new(channel.clone());
    let handed = col
        .get_handed_over_case(authed(
            partner_key,
            pb::GetHandedOverCaseRequest {
                tenant: String::new(),
                case_id: case_id.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&handed.case_file_json).unwrap()
}

/// Hand `case_id` over to a new partner (the operator's approval) and wait until the
/// hand-over is on the partner's subject; returns the partner's case file and key.
async fn hand_over(
    channel: &tonic::transport::Channel,
    key: &str,
    case_id: &str,
) -> (serde_json::Value, String) {
    let mut col = pb::collection_service_client::CollectionServiceClient::new(channel.clone());
    let partner = pb::Partner {
        partner_id: "inkasso-gdpr".into(),
        name: "Inkasso GDPR GmbH".into(),
        subject_token: "gdpr".into(),
        min_amount_minor: 1000,
        debtor_kinds: vec![pb::DebtorKind::Consumer as i32],
        countries: vec!["DE".into()],
        mode: pb::HandoverMode::Approval as i32,
        waive_costs_if_principal_paid: false,
        active: true,
    };
    col.put_partner(authed(
        key,
        pb::PutPartnerRequest {
            tenant: String::new(),
            partner: Some(partner),
        },
    ))
    .await
    .unwrap();
    let pkey = col
        .create_partner_key(authed(
            key,
            pb::CreatePartnerKeyRequest {
                tenant: String::new(),
                partner_id: "inkasso-gdpr".into(),
                label: "erasure test".into(),
                request_id: "gdpr-partner-key".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    // Dunning opens the case from the log (the approval needs its claim).
    wait_for("the hand-over to be approved", 30, || {
        let mut c = col.clone();
        let req = authed(
            key,
            pb::ApproveHandoverRequest {
                tenant: String::new(),
                request_id: "gdpr-handover".into(),
                case_id: case_id.into(),
                partner_id: "inkasso-gdpr".into(),
            },
        );
        async move {
            match c.approve_handover(req).await {
                Ok(r) => r.into_inner().phase == "handed_over",
                Err(e) => {
                    eprintln!("approve: {e:?}");
                    false
                }
            }
        }
    })
    .await;
    // Published on the partner's subject (a JetStream stream of its own).
    let file = partner_case_file(channel, &pkey, case_id).await;
    (file, pkey)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_debtor_leaves_no_clear_byte_and_verify_passes() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().join("sqlite");
    std::fs::create_dir_all(&sqlite_dir).unwrap();
    let url = format!(
        "sqlite:{}?mode=rwc",
        sqlite_dir.join("mahnwerk.db").display()
    );
    run_case(&url, &sqlite_dir, false).await;

    for url in databases(&dir).await {
        if url.starts_with("postgres") {
            let pg_dir = dir.path().join("pg");
            std::fs::create_dir_all(&pg_dir).unwrap();
            run_case(&url, &pg_dir, true).await;
        }
    }
}

/// Without a master key nothing is sealed, so the API refuses to pretend it erased anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_without_a_master_key_is_a_failed_precondition() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let mut cases = CaseServiceClient::new(server.channel().await);
    let err = cases
        .erase_debtor(authed(
            &key,
            pb::EraseDebtorRequest {
                customer_number: "K-1".into(),
                reason: "request 1".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("MAHNWERK_MASTER_KEY"));
    server.stop().await;
}
