//! Malformed statement files (issue 11, "Must show" 5) through the import path
//! (`Matching::import_file`, what `ImportStatement` runs on the uploaded file): each is rejected
//! with a message that says what and where, and nothing is recorded. Truncated XML, unbalanced
//! statements and a billion-laughs payload are also sent over gRPC in `service.rs`.

use mahnwerk_matching::Matching;
use mahnwerk_matching::engine::Settings;
use rand::{Rng, SeedableRng};

struct World {
    dir: tempfile::TempDir,
    log: mahnwerk_eventlog::EventLog,
    matching: Matching,
}

impl World {
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}?mode=rwc", dir.path().join("mw.db").display());
        let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
        let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
        let keys = mahnwerk_auth::KeyStore::open(pool.clone()).await.unwrap();
        mahnwerk_matching::ensure_schema(&pool).await.unwrap();
        let matching = Matching::new(log.clone(), keys, pool, Settings::default());
        World { dir, log, matching }
    }

    /// Imports `bytes` as a statement file: the error's message, and that nothing was recorded.
    async fn rejected(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let head = self.log.head_position().await.unwrap();
        let meta = mahnwerk_eventlog::Metadata {
            actor: "test".into(),
            ..Default::default()
        };
        let tenant = "acme".parse().unwrap();
        let err = match self
            .matching
            .import_file(&tenant, &path, None, &meta, |_| {})
            .await
        {
            Ok(s) => panic!("{name}: imported {s:?}"),
            Err(e) => e,
        };
        assert_eq!(
            self.log.head_position().await.unwrap(),
            head,
            "{name}: nothing recorded"
        );
        assert!(
            matches!(err, mahnwerk_matching::Error::Invalid { .. }),
            "{name}: {err:?}"
        );
        println!("{name}: {err}");
        err.to_string()
    }
}

/// A camt.053 with one booked credit of 100.00 EUR, booked on `date`.
fn camt(doctype: &str, date: &str, text: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{doctype}<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId><CreDtTm>2026-11-03T18:00:00</CreDtTm></GrpHdr>\n<Stmt><Id>S1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>\n<Ntry><Amt Ccy=\"EUR\">100.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>{date}</Dt></BookgDt><AcctSvcrRef>K-1</AcctSvcrRef><BkTxCd/><NtryDtls><TxDtls><RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>\n</Stmt></BkToCstmrStmt></Document>\n"
    )
}

#[tokio::test]
async fn a_good_file_imports_so_the_rejections_below_are_about_the_defect() {
    let w = World::new().await;
    let path = w.dir.path().join("good.xml");
    std::fs::write(&path, camt("", "2026-11-03", "RE-1")).unwrap();
    let meta = mahnwerk_eventlog::Metadata::default();
    let s = w
        .matching
        .import_file(&"acme".parse().unwrap(), &path, None, &meta, |_| {})
        .await
        .unwrap();
    assert_eq!(s.entries, 1);
}

#[tokio::test]
async fn an_impossible_booking_date_is_rejected_with_its_line() {
    let w = World::new().await;
    let msg = w
        .rejected("date.xml", camt("", "2026-02-30", "RE-1").as_bytes())
        .await;
    assert!(msg.contains("2026-02-30"), "{msg}");
    assert!(msg.contains("line 4, Ntry/BookgDt"), "{msg}");
}

#[tokio::test]
async fn external_entities_and_entity_expansion_are_refused() {
    let w = World::new().await;
    let xxe = camt(
        "<!DOCTYPE Document [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n",
        "2026-11-03",
        "&x;",
    );
    let msg = w.rejected("xxe.xml", xxe.as_bytes()).await;
    assert!(!msg.contains("root:"), "{msg}");
    assert!(msg.to_lowercase().contains("dtd"), "{msg}");
    let lol = "<!ENTITY l0 \"lol\">".to_owned()
        + &(1..10)
            .map(|i| format!("<!ENTITY l{i} \"{}\">", format!("&l{};", i - 1).repeat(10)))
            .collect::<String>();
    let laughs = camt(
        &format!("<!DOCTYPE Document [{lol}]>\n"),
        "2026-11-03",
        "&l9;",
    );
    let msg = w.rejected("laughs.xml", laughs.as_bytes()).await;
    assert!(msg.to_lowercase().contains("dtd"), "{msg}");
}

#[tokio::test]
async fn ten_megabytes_of_random_bytes_are_rejected() {
    let w = World::new().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut bytes = vec![0_u8; 10 * 1024 * 1024];
    rng.fill(&mut bytes[..]);
    let msg = w.rejected("random.bin", &bytes).await;
    assert!(!msg.is_empty());
    // Printable random text (no format recognised) too.
    let text: String = (0..1024 * 1024)
        .map(|_| char::from(rng.random_range(b' '..=b'~')))
        .collect();
    let msg = w.rejected("random.txt", text.as_bytes()).await;
    assert!(!msg.is_empty());
}
