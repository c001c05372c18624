//! Must-show 1 for letters made the way the service makes them: generated cases (invoice and
//! dunning step, business and consumer, with and without interest) through the service's one
//! mapping (`mapping::letter_model`), rendered, and read back by independent readers (the letters
//! crate's `tests/readback.py`: pdfplumber, pypdf, `pdftoppm` + zxing-cpp): the recipient inside
//! the window, total and deadline in the text, the QR code decodes to an EPC069-12 payload whose
//! IBAN, amount and RF reference are the case's (`rf_loop.rs` in `mahnwerk` closes the loop with
//! the matching service).

// Page geometry in millimetres as the PDF readers report it; no money here.
#![allow(clippy::float_arithmetic)]

mod common;

use common::*;
use mahnwerk_domain::{CaseId, Money, TenantId};
use mahnwerk_letters::model::Language;
use mahnwerk_letters_service::mapping;
use serde::Deserialize;
use std::process::Command;

#[derive(Debug, Deserialize)]
struct Readback {
    pages: Vec<Page>,
    qr: Vec<Qr>,
}

#[derive(Debug, Deserialize)]
struct Page {
    words: Vec<Word>,
    text: String,
}

#[derive(Debug, Deserialize)]
struct Word {
    text: String,
    x0: f64,
    x1: f64,
    top: f64,
    bottom: f64,
}

#[derive(Debug, Deserialize)]
struct Qr {
    text: String,
}

fn mm(pt: f64) -> f64 {
    pt * 25.4 / 72.0
}

fn readback(pdf: &[u8]) -> Readback {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("letter.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let script = workspace_root().join("crates/mahnwerk-letters/tests/readback.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "readback.py failed (needs pdfplumber, pypdf, zxing-cpp: `make pyenv`; pdftoppm: poppler-utils):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("readback json")
}

/// The words of page 1 that make up `line`, in reading order.
fn find_line<'a>(page: &'a Page, line: &str) -> Vec<&'a Word> {
    let parts: Vec<&str> = line.split_whitespace().collect();
    for start in 0..page.words.len() {
        let window: Vec<&Word> = page.words.iter().skip(start).take(parts.len()).collect();
        if window.len() == parts.len() && window.iter().zip(&parts).all(|(w, p)| w.text == *p) {
            return window;
        }
    }
    panic!("line {line:?} not found on page 1");
}

#[test]
fn letters_for_generated_cases_read_back_with_the_cases_payment_facts() {
    let tenant: TenantId = "acme".parse().expect("tenant");
    let settings = settings(mahnwerk_letters::events::CopyTo::Inbox);
    let renderer = mahnwerk_letters::LetterRenderer::new(mahnwerk_letters::TemplateSet::defaults());
    for i in 0..3_i64 {
        let mut inv = invoice(&format!("RE-GEN-{i:04}"), None);
        inv.gross = 119_000 + i * 12_345;
        inv.net = inv.gross * 100 / 119;
        inv.tax = inv.gross - inv.net;
        if i % 2 == 1 {
            inv.debtor.kind = mahnwerk_domain::DebtorKind::Consumer;
            inv.debtor.name = mahnwerk_domain::Personal::new(format!("Jürgen Öztürk-Weiß {i}"));
        }
        let mut s = step(1 + u32::try_from(i % 3).expect("step"));
        s.principal_open = Money::eur(inv.gross);
        s.lump_sum = Money::eur(if i % 2 == 1 { 0 } else { 4000 });
        s.balance = Money::eur(inv.gross + s.fee.minor + s.lump_sum.minor);
        let case = CaseId::for_invoice(&tenant, &inv.number);
        let model = mapping::letter_model(&s, &inv, case, &settings, None).expect("model");
        let letter = renderer.render(&model).expect("render");
        let rb = readback(&letter.pdf);
        let page = &rb.pages[0];

        // The recipient inside the window's address zone (Form B unless the template says A).
        let top = f64::from(model.form.address_field_top_mm());
        for line in model.recipient_lines() {
            for w in find_line(page, &line) {
                assert!(
                    mm(w.x0) >= 20.0 && mm(w.x1) <= 105.0,
                    "case {i}: {:?} outside the window horizontally",
                    w.text
                );
                assert!(
                    mm(w.top) >= top + 17.7 && mm(w.bottom) <= top + 45.0,
                    "case {i}: {:?} outside the address zone",
                    w.text
                );
            }
        }
        // Total and deadline in the text.
        let text = page.text.replace('\u{a0}', " ");
        let total = mahnwerk_letters::format::money(s.balance, Language::De).replace('\u{a0}', " ");
        let deadline = mahnwerk_letters::format::date(s.deadline.deadline, Language::De);
        assert!(
            text.contains(&total),
            "case {i}: total {total} missing:\n{text}"
        );
        assert!(
            text.contains(&deadline),
            "case {i}: deadline {deadline} missing"
        );

        // The QR code: EPC069-12 with the case's IBAN, amount and RF reference.
        assert_eq!(rb.qr.len(), 1, "case {i}: one QR code");
        let lines: Vec<&str> = rb.qr[0].text.split('\n').collect();
        assert_eq!(&lines[..4], ["BCD", "002", "1", "SCT"], "case {i}");
        assert_eq!(lines[5], "Muster Handels GmbH", "case {i}: payee = holder");
        assert_eq!(
            lines[6],
            inv.creditor_account.iban.as_str(),
            "case {i}: IBAN"
        );
        let minor = s.balance.minor;
        assert_eq!(
            lines[7],
            format!("EUR{}.{:02}", minor / 100, minor % 100),
            "case {i}: amount"
        );
        let rf = mapping::rf_reference(&inv, case);
        assert_eq!(lines[9], rf, "case {i}: RF reference");
        assert!(
            mahnwerk_formats::rf::RfReference::parse(lines[9]).is_ok(),
            "case {i}: {rf} is a valid RF reference"
        );
    }
}
