//! Every camt and MT940 sample of the formats crate goes through the matching service's import
//! (real SQLite event log) and through `mahnwerk match`: entry counts agree with the parser's,
//! a balanced statement imports, an unbalanced one is rejected with its numbers, and a second
//! import applies nothing twice.

use mahnwerk_formats::statement::{BalanceCheck, StatementItem};
use mahnwerk_matching::Matching;
use mahnwerk_matching::cli::{MatchArgs, run as run_match};
use mahnwerk_matching::engine::Settings;
use mahnwerk_matching::entry::statement_reader;
use std::path::PathBuf;

fn samples() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mahnwerk-formats/tests/fixtures");
    let mut out = Vec::new();
    for dir in ["camt053", "mt940"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(out.len() >= 20, "samples missing: {out:?}");
    out
}

/// Entries and whether every statement balanced (None: some could not be checked).
fn parse(path: &PathBuf) -> Result<(u64, bool), String> {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut entries = 0;
    let mut unbalanced = false;
    for item in statement_reader(file, None, Default::default()).unwrap() {
        match item.map_err(|e| e.to_string())? {
            StatementItem::Entry(_) => entries += 1,
            StatementItem::End(end) => {
                unbalanced |= matches!(end.balance_check, BalanceCheck::Unbalanced { .. })
            }
            StatementItem::Header(_) => {}
        }
    }
    Ok((entries, unbalanced))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_statement_imports_once_and_runs_through_the_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh PostgreSQL database may be given to run the same on PostgreSQL.
    let url = std::env::var("MATCHING_TEST_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite:{}?mode=rwc", dir.path().join("mw.db").display()));
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    let keys = mahnwerk_auth::KeyStore::open(pool.clone()).await.unwrap();
    mahnwerk_matching::ensure_schema(&pool).await.unwrap();
    let m = Matching::new(log.clone(), keys, pool, Settings::default());
    let meta = mahnwerk_eventlog::Metadata {
        actor: "test".into(),
        ..Default::default()
    };
    let items = dir.path().join("items.jsonl");
    std::fs::write(&items, "").unwrap();
    let (mut imported, mut rejected, mut malformed) = (0, 0, 0);
    // A tenant per file: several samples are the same statement in other versions (same account,
    // references, dates), which one tenant would rightly see as the same entries.
    for (i, path) in samples().into_iter().enumerate() {
        let tenant: mahnwerk_domain::TenantId = format!("t{i}").parse().unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (entries, unbalanced) = match parse(&path) {
            Ok(v) => v,
            Err(msg) => {
                // Malformed (strictly read): rejected with the line, nothing recorded.
                let head = log.head_position().await.unwrap();
                match m.import_file(&tenant, &path, None, &meta, |_| {}).await {
                    Err(mahnwerk_matching::Error::Invalid { reason, .. }) => {
                        assert_eq!(reason, msg, "{name}")
                    }
                    other => panic!("{name}: {other:?}"),
                }
                assert_eq!(log.head_position().await.unwrap(), head, "{name}");
                malformed += 1;
                continue;
            }
        };

        let mut out = Vec::new();
        let args = MatchArgs {
            open_items: items.clone(),
            statement: path.clone(),
            json: true,
            threshold: 85,
            csv_mapping: None,
        };
        let summary = run_match(&args, &mut out).unwrap();
        assert_eq!(summary.entries, entries, "{name}: dry run");
        assert_eq!(
            String::from_utf8(out).unwrap().lines().count() as u64,
            entries
        );

        match m.import_file(&tenant, &path, None, &meta, |_| {}).await {
            Ok(s) => {
                assert!(!unbalanced, "{name}: an unbalanced statement was imported");
                assert_eq!(s.entries, entries, "{name}");
                assert_eq!(
                    s.duplicates, 0,
                    "{name}: entry ids must be unique within a file"
                );
                let again = m
                    .import_file(&tenant, &path, None, &meta, |_| {})
                    .await
                    .unwrap();
                assert_eq!(again.duplicates, entries, "{name}: re-import");
                imported += 1;
            }
            Err(mahnwerk_matching::Error::Rejected(msg)) => {
                assert!(
                    unbalanced,
                    "{name}: rejected without being unbalanced: {msg}"
                );
                assert!(msg.contains("closing balance"), "{name}: {msg}");
                rejected += 1;
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }
    println!(
        "samples: {imported} imported, {rejected} rejected as unbalanced, {malformed} as malformed"
    );
    assert!(imported > rejected);
}
