//! `mahnwerk invoice import` streams a JSON Lines file and prints the rejected items and the
//! counts of the (small) response; a bad line of the file sends nothing. The file holds 5,000
//! invoices; `MAHNWERK_IMPORT_CLI_ITEMS=1000000` for a million (issue 10, must-show 2: the CLI
//! once exited 1 after 100,000); the exit code, the counts and the time are printed.

mod common;

use common::*;
use std::io::Write as _;
use std::process::Command;

fn line(i: u64, name: &str) -> String {
    serde_json::json!({
        "invoiceNumber": format!("CLI-{i:07}"),
        "issueDate": "2026-03-01",
        "dueDate": "2026-03-15",
        "currency": "EUR",
        "netAmount": 10000, "taxAmount": 1900, "grossAmount": 11900,
        "debtor": {
            "name": name, "kind": "consumer", "language": "de", "customerNumber": "K-1",
            "address": { "street": ["Heidestraße 17"], "postalCode": "51147", "city": "Köln", "country": "DE" }
        },
        "creditorAccount": { "iban": "DE89370400440532013000" }
    })
    .to_string()
}

/// (exit code, stdout, stderr) of `mahnwerk invoice import FILE`.
fn import(
    addr: std::net::SocketAddr,
    key: &str,
    file: &std::path::Path,
) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(["invoice", "import"])
        .arg(file)
        .env("MAHNWERK_SERVER", format!("http://{addr}"))
        .env("MAHNWERK_API_KEY", key)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoice_import_reports_counts_and_the_rejected_items() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let n: u64 = std::env::var("MAHNWERK_IMPORT_CLI_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let bad_item = n / 4;
    let path = dir.path().join("invoices.jsonl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..n {
        let name = if i == bad_item {
            "Erika\u{0}"
        } else {
            "Erika Mustermann"
        };
        writeln!(f, "{}", line(i, name)).unwrap();
    }
    drop(f);
    let addr = server.addr;
    let started = std::time::Instant::now();
    let (code, out, err) = tokio::task::spawn_blocking({
        let (key, path) = (key.clone(), path.clone());
        move || import(addr, &key, &path)
    })
    .await
    .unwrap();
    let ok = code == Some(0);
    eprintln!(
        "mahnwerk invoice import of {n} invoices: exit {code:?}, {:.1} s; {}",
        started.elapsed().as_secs_f64(),
        out.lines().last().unwrap_or_default()
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains(&format!(
            "accepted {} (created {}), rejected 1",
            n - 1,
            n - 1
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "item {bad_item} (CLI-{bad_item:07}): INVALID_ARGUMENT"
        )),
        "{out}"
    );
    assert!(out.contains("invoice.debtor.name"), "{out}");
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    assert_eq!(log.head_position().await.unwrap() as u64, n - 1);

    // A line that is not an invoice JSON: nothing is sent.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{}\nnot json\n", line(90_000, "Max"))).unwrap();
    let (code, _, err) = tokio::task::spawn_blocking({
        let key = key.clone();
        move || import(addr, &key, &bad)
    })
    .await
    .unwrap();
    assert_ne!(code, Some(0));
    assert!(err.contains("bad.jsonl:2"), "{err}");
    assert_eq!(log.head_position().await.unwrap() as u64, n - 1);
    server.stop().await;
}

/// An import with more than 10,000 rejected items lists the first 10,000 and counts the rest,
/// so the response stays small whatever the input.
#[tokio::test]
async fn an_import_lists_at_most_ten_thousand_rejected_items() {
    use mahnwerk_proto::v1 as pb;
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let server = start(&url).await;
    let key = tenant_key(&url, "acme").await;
    let items = (0..10_050_u64).map(|i| {
        let mut inv = invoice(&format!("BAD-{i:05}"));
        inv.net_amount = -1;
        pb::ImportInvoicesRequest {
            tenant: if i == 7 {
                "other".into()
            } else {
                String::new()
            },
            invoice: Some(inv),
        }
    });
    let mut client = pb::invoice_service_client::InvoiceServiceClient::new(server.channel().await);
    let res = client
        .import_invoices(authed(&key, tokio_stream::iter(items)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            res.accepted,
            res.created,
            res.rejected,
            res.rejected_unreported
        ),
        (0, 0, 10_050, 50)
    );
    assert_eq!(res.results.len(), 10_000);
    assert!(
        res.results
            .iter()
            .enumerate()
            .all(|(i, r)| r.index == i as u64)
    );
    assert_eq!(res.results[7].error_code, "PERMISSION_DENIED");
    assert_eq!(res.results[7].violations[0].field, "tenant");
    assert_eq!(res.results[8].error_code, "INVALID_ARGUMENT");
    assert_eq!(res.results[8].violations[0].field, "invoice.net_amount");
    server.stop().await;
}
