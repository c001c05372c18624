#![allow(clippy::float_arithmetic)] // timing ratios for the report, no money
//! Memory and speed benchmark: writes a camt.053 of about `MAHNWERK_BENCH_MB` MB (default 1024)
//! into a temp dir, streams it with `CamtReader` and prints entries/s, MB/s and peak RSS
//! (VmHWM from /proc/self/status). Baseline in the same run: reading the file raw.
//! Run: `cargo run --release -p mahnwerk-formats --example camt_bench`.

use mahnwerk_formats::camt::CamtReader;
use mahnwerk_formats::statement::{ParseOptions, StatementItem};
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::Instant;

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

const ENTRY: &str = r#"<Ntry><Amt Ccy="EUR">12.34</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-01-02</Dt></BookgDt><ValDt><Dt>2026-01-02</Dt></ValDt><AcctSvcrRef>REF</AcctSvcrRef><BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn><Prtry><Cd>NTRF+166+00931</Cd><Issr>DK</Issr></Prtry></BkTxCd><NtryDtls><TxDtls><Refs><EndToEndId>E2E-0001</EndToEndId></Refs><Amt Ccy="EUR">12.34</Amt><CdtDbtInd>CRDT</CdtDbtInd><RltdPties><Dbtr><Pty><Nm>Erika Mustermann</Nm></Pty></Dbtr><DbtrAcct><Id><IBAN>DE89370400440532013000</IBAN></Id></DbtrAcct></RltdPties><RmtInf><Ustrd>Rechnung 2026-0001 Kundennummer 4711</Ustrd><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf></Strd></RmtInf></TxDtls></NtryDtls></Ntry>
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mb: u64 = std::env::var("MAHNWERK_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = std::env::temp_dir().join(format!("camt-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("big.camt053.xml");
    let n = mb * 1024 * 1024 / ENTRY.len() as u64;
    {
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        write!(
            w,
            r#"<?xml version="1.0" encoding="UTF-8"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt><GrpHdr><MsgId>B</MsgId></GrpHdr><Stmt><Id>S</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct><Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-01</Dt></Dt></Bal><Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{}.{:02}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-01-02</Dt></Dt></Bal>"#,
            n * 1234 / 100,
            n * 1234 % 100
        )?;
        for _ in 0..n {
            w.write_all(ENTRY.as_bytes())?;
        }
        w.write_all(b"</Stmt></BkToCstmrStmt></Document>\n")?;
    }
    let size = std::fs::metadata(&path)?.len();
    let size_mb = size as f64 / 1_048_576.0;
    let hwm_before = vm_hwm_kb();

    let t = Instant::now();
    let mut f = std::fs::File::open(&path)?;
    let mut buf = vec![0u8; 1 << 16];
    while f.read(&mut buf)? > 0 {}
    let raw = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let reader = CamtReader::new(
        BufReader::new(std::fs::File::open(&path)?),
        ParseOptions::default(),
    )?;
    let mut entries = 0u64;
    let mut balanced = None;
    for item in reader {
        match item? {
            StatementItem::Entry(_) => entries += 1,
            StatementItem::End(end) => balanced = end.balance_check.balanced(),
            StatementItem::Header(_) => {}
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let hwm = vm_hwm_kb();
    println!("| measure | value |\n|---|---|");
    println!("| file size | {size_mb:.0} MB |");
    println!("| entries | {entries} |");
    println!("| balance check | {balanced:?} |");
    println!("| raw read (baseline) | {:.0} MB/s |", size_mb / raw);
    println!(
        "| camt parse | {:.1} s, {:.0} entries/s, {:.1} MB/s |",
        secs,
        entries as f64 / secs,
        size_mb / secs
    );
    println!(
        "| peak RSS (VmHWM) | {:.1} MB (before parsing {:.1} MB) |",
        hwm as f64 / 1024.0,
        hwm_before as f64 / 1024.0
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
