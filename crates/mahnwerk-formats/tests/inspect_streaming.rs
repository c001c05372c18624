//! `mahnwerk inspect statement` streams its input: what it has read is printed before the rest
//! of the file exists. The file is a named pipe whose writer holds back the second half until
//! the first statement's output has appeared; an inspector that read the whole input first
//! would wait forever (here: until the writer gives up after 20 s and the test fails).

use mahnwerk_formats::cli::{InspectCommand, run};
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// Sends everything written to it over a channel, so another thread sees the output as it
/// is produced.
struct Tap(mpsc::Sender<Vec<u8>>);

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn statement(id: &str, minor: i64) -> String {
    let amt = format!("{}.{:02}", minor / 100, minor % 100);
    format!(
        "<Stmt><Id>{id}</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>\
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-03</Dt></Dt></Bal>\
<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"EUR\">{amt}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-03</Dt></Dt></Bal>\
<Ntry><Amt Ccy=\"EUR\">{amt}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts><BookgDt><Dt>2026-11-03</Dt></BookgDt><AcctSvcrRef>{id}-1</AcctSvcrRef><BkTxCd/></Ntry></Stmt>\n"
    )
}

#[test]
fn inspect_prints_the_first_statement_before_the_rest_of_the_file_is_written() {
    let fifo = std::env::temp_dir().join(format!(
        "mahnwerk-inspect-{}-{}.xml",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt><GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-03T18:00:00</CreDtTm></GrpHdr>\n{}",
        statement("FIRST-STMT", 12345)
    );
    // Pad so the first half outgrows the inspector's first read of the pipe.
    let padding = "<!-- padding -->\n".repeat(64);
    let tail = format!(
        "{}</BkToCstmrStmt></Document>\n",
        statement("SECOND-STMT", 500)
    );
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        f.write_all(padding.as_bytes()).unwrap();
        f.flush().unwrap();
        // Hold back the rest until the first statement was printed.
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut streamed = false;
        while std::time::Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(chunk) => seen.extend(chunk),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if String::from_utf8_lossy(&seen).contains("closing balance 123.45") {
                streamed = true;
                break;
            }
        }
        f.write_all(tail.as_bytes()).unwrap();
        drop(f);
        // Whatever else comes, for the assertions below.
        while let Ok(chunk) = rx.recv_timeout(Duration::from_secs(20)) {
            seen.extend(chunk);
        }
        (streamed, String::from_utf8_lossy(&seen).into_owned())
    });
    let cmd = InspectCommand::Statement {
        files: vec![fifo.clone()],
        json: false,
        lenient_dates: false,
        encoding: None,
        csv_mapping: None,
    };
    let mut out = Tap(tx);
    run(cmd, &mut out).unwrap();
    drop(out);
    let (streamed, text) = writer.join().unwrap();
    let _ = std::fs::remove_file(&fifo);
    assert!(
        streamed,
        "the first statement was not printed before the rest of the file arrived:\n{text}"
    );
    assert!(text.contains("statement SECOND-STMT"), "{text}");
}
