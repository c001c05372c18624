//! Read-back tests: generated PDFs are read by independent readers from PyPI (pdfplumber for
//! word positions, pypdf for text and XMP metadata) and the QR code is decoded by zxing-cpp on a
//! `pdftoppm` rendering of page 1 (see `tests/readback.py`).
//!
//! Needs the project's Python venv (`make pyenv`, or `MAHNWERK_PYTHON`) and `pdftoppm`
//! (Debian `poppler-utils`). A missing tool fails the test with instructions; it never skips.

// Page geometry in points and millimetres, as the PDF readers report it; no money here.
#![allow(clippy::float_arithmetic)]

use mahnwerk_domain::{Money, Personal, PostalAddress};
use mahnwerk_letters::model::{self, ClaimLine, Form, Language, LetterModel, Logo, LogoFormat};
use mahnwerk_letters::{LetterRenderer, TemplateSet};
use serde::Deserialize;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

#[derive(Debug, Deserialize)]
struct Readback {
    pages: Vec<Page>,
    qr: Vec<Qr>,
    xmp: String,
}

#[derive(Debug, Deserialize)]
struct Page {
    height: f64,
    words: Vec<Word>,
    text: String,
    lines: Vec<Line>,
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
struct Line {
    x0: f64,
    top: f64,
}

#[derive(Debug, Deserialize)]
struct Qr {
    format: String,
    text: String,
    ec_level: String,
}

const PT_PER_MM: f64 = 72.0 / 25.4;

fn mm(pt: f64) -> f64 {
    pt / PT_PER_MM
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MAHNWERK_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no Python for the read-back tests: run `make pyenv` (creates {} with pypdf, pdfplumber, zxing-cpp) or set MAHNWERK_PYTHON",
        venv.display()
    );
    venv
}

fn renderer() -> &'static LetterRenderer {
    static R: OnceLock<LetterRenderer> = OnceLock::new();
    R.get_or_init(|| LetterRenderer::new(TemplateSet::defaults()))
}

fn readback(pdf: &[u8]) -> Readback {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("letter.pdf");
    std::fs::write(&path, pdf).expect("write pdf");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/readback.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&path)
        .output()
        .expect("run python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "readback.py failed (needs pdfplumber, pypdf, zxing-cpp: `make pyenv`; and pdftoppm: `apt-get install poppler-utils`):\n{stderr}"
    );
    serde_json::from_slice(&out.stdout).expect("readback json")
}

/// pypdf's text with no-break spaces as plain spaces.
fn text(rb: &Readback) -> String {
    rb.pages
        .iter()
        .map(|p| p.text.replace('\u{a0}', " "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The words of page 1 that make up `line` (matched word by word, in reading order).
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

fn assert_address_in_window(model: &LetterModel, rb: &Readback) {
    let page = &rb.pages[0];
    let top = f64::from(model.form.address_field_top_mm());
    // Anschriftzone: the lower 27.3 mm of the 45 mm field, 20..105 mm from the left.
    let (zone_top, zone_bottom) = (top + 17.7, top + 45.0);
    for line in model.recipient_lines() {
        for w in find_line(page, &line) {
            assert!(
                mm(w.x0) >= 20.0 && mm(w.x1) <= 105.0,
                "{:?} outside the window horizontally: {:.1}..{:.1} mm",
                w.text,
                mm(w.x0),
                mm(w.x1)
            );
            assert!(
                mm(w.top) >= zone_top && mm(w.bottom) <= zone_bottom,
                "{:?} of {line:?} outside the address zone {zone_top}..{zone_bottom} mm: {:.1}..{:.1} mm",
                w.text,
                mm(w.top),
                mm(w.bottom)
            );
        }
    }
    // The return-address line sits in the 17.7 mm zone above the address.
    for w in find_line(page, &model.letterhead.sender_line) {
        assert!(
            mm(w.top) >= top && mm(w.bottom) <= zone_top,
            "sender line word {:?} at {:.1} mm",
            w.text,
            mm(w.top)
        );
    }
}

fn assert_marks(form: Form, rb: &Readback) {
    let page = &rb.pages[0];
    let expected: &[f64] = match form {
        Form::FormA => &[87.0, 148.5, 192.0],
        Form::FormB => &[105.0, 148.5, 210.0],
    };
    for y in expected {
        assert!(
            page.lines
                .iter()
                .any(|l| (mm(l.top) - y).abs() < 0.3 && mm(l.x0) < 10.0),
            "no fold/punch mark at {y} mm: {:?}",
            page.lines
        );
    }
}

#[test]
fn form_a_and_b_put_the_recipient_in_the_window_and_carry_the_payment_facts() {
    for form in [Form::FormA, Form::FormB] {
        let mut m = model::sample();
        m.form = form;
        let letter = renderer().render(&m).expect("render");
        let rb = readback(&letter.pdf);
        assert_eq!(
            rb.pages.len(),
            1,
            "{form:?}: the sample is a one-page letter"
        );
        assert_address_in_window(&m, &rb);
        assert_marks(form, &rb);
        let t = text(&rb);
        for needle in [
            "1.710,30 €",
            "30.03.2026",
            "DE89 3704 0044 0532 0130 00",
            "RF18 5390 0754 7034",
            "Bäckerei Größl OHG",
            "Mühlenweg",
            "München",
            "Jürgens",
            "Geschäftsführerin",
            "Gesamtbetrag",
        ] {
            assert!(t.contains(needle), "{form:?}: {needle:?} missing in:\n{t}");
        }
        // Capital umlauts are checked by the English letter below.
        for c in ['ä', 'ö', 'ü', 'ß', '€', '§'] {
            assert!(t.contains(c), "{form:?}: {c} lost");
        }
        // No page number on page 1.
        assert!(!t.contains("Seite 1"), "{form:?}: page number on page 1");
        assert!(
            rb.xmp.contains("<pdfaid:part>2</pdfaid:part>"),
            "PDF/A part"
        );
        assert!(
            rb.xmp
                .contains("<pdfaid:conformance>B</pdfaid:conformance>"),
            "PDF/A conformance"
        );
    }
}

#[test]
fn qr_code_decodes_to_the_models_epc_payload() {
    let m = model::sample();
    let letter = renderer().render(&m).expect("render");
    let rb = readback(&letter.pdf);
    assert_eq!(rb.qr.len(), 1, "exactly one QR code on page 1: {:?}", rb.qr);
    let qr = &rb.qr[0];
    assert_eq!(qr.format, "QR Code");
    assert_eq!(qr.ec_level, "M", "EPC069-12 requires error correction M");
    assert_eq!(Some(qr.text.as_str()), letter.epc_payload.as_deref());
    let lines: Vec<&str> = qr.text.split('\n').collect();
    assert_eq!(&lines[..4], ["BCD", "002", "1", "SCT"]);
    let p = m.payment.as_ref().expect("payment");
    assert_eq!(lines[6], p.iban.as_str(), "IBAN");
    assert_eq!(lines[7], "EUR1710.30", "amount = model total");
    assert_eq!(lines[9], p.reference, "RF reference");
    assert_eq!(lines[5], m.letterhead.name, "beneficiary");
}

#[test]
fn english_letter_with_capital_umlauts_and_foreign_recipient() {
    let mut m = model::sample_for(mahnwerk_letters::model::LetterKind::LastNotice);
    m.language = Language::En;
    m.form = Form::FormA;
    m.recipient.name = Personal::new("Ölmühle Übersee GmbH & Co. KG".into());
    m.recipient.address = Personal::new(PostalAddress {
        street: vec!["Äußere Wiener Straße 5".into()],
        postal_code: "1010".into(),
        city: "Wien".into(),
        country: "AT".into(),
        region: None,
    });
    let letter = renderer().render(&m).expect("render");
    let rb = readback(&letter.pdf);
    assert_address_in_window(&m, &rb);
    let t = text(&rb);
    for needle in [
        "€1,715.30",
        "Ölmühle Übersee GmbH & Co. KG",
        "Äußere Wiener Straße 5",
        "AUSTRIA",
        "Final notice",
        "30 March 2026",
        "Pay by",
    ] {
        assert!(t.contains(needle), "{needle:?} missing in:\n{t}");
    }
    let payload = rb.qr.first().map(|q| q.text.clone()).unwrap_or_default();
    assert!(payload.contains("\nEUR1715.30\n"), "{payload}");
}

#[test]
fn long_claim_table_breaks_across_pages_with_repeated_header_and_page_numbers() {
    let mut m = model::sample_for(mahnwerk_letters::model::LetterKind::ConsolidatedNotice);
    let date = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).expect("date");
    m.claims = (0..60)
        .map(|i| ClaimLine::Invoice {
            number: format!("RE-2026-{i:04}"),
            date,
            due_date: Some(date),
            amount: Money::eur(10_000 + i),
        })
        .collect();
    m.total = None;
    // The friendly wording does not list the invoice numbers in the text.
    m.tone = mahnwerk_letters::model::Tone::Friendly;
    let letter = renderer().render(&m).expect("render");
    let rb = readback(&letter.pdf);
    let n = rb.pages.len();
    assert!(n >= 2, "60 lines need more than one page, got {n}");
    assert!(
        !rb.pages[0].text.contains("Seite 1 von"),
        "no number on page 1"
    );
    for (i, page) in rb.pages.iter().enumerate().skip(1) {
        let t = page.text.replace('\u{a0}', " ");
        assert!(
            t.contains(&format!("Seite {} von {n}", i + 1)),
            "page {} lacks its number:\n{t}",
            i + 1
        );
    }
    // The table header repeats at the top of page 2, above the continued rows.
    let p2 = &rb.pages[1];
    let header = p2
        .words
        .iter()
        .find(|w| w.text == "Position")
        .expect("repeated header on page 2");
    let first_row = p2
        .words
        .iter()
        .filter(|w| w.text.starts_with("RE-2026-"))
        .map(|w| w.top)
        .fold(f64::MAX, f64::min);
    assert!(header.top < first_row, "header above the rows");
    assert!(mm(header.top) < 40.0, "header at the top of page 2");
    // Every invoice made it, once.
    let all = text(&rb);
    for i in 0..60 {
        let number = format!("RE-2026-{i:04}");
        assert_eq!(all.matches(&number).count(), 1, "{number}");
    }
    // Page bottoms stay clear of the footer zone (text area ends 32 mm above the edge).
    for page in &rb.pages {
        for w in page.words.iter().filter(|w| w.text.starts_with("RE-2026-")) {
            assert!(
                mm(page.height - w.bottom) > 30.0,
                "row runs into the footer"
            );
        }
    }
}

#[test]
fn output_is_byte_identical_for_the_same_model() {
    let m = model::sample();
    let a = renderer().render(&m).expect("render a");
    let b = renderer().render(&m).expect("render b");
    let fresh = LetterRenderer::new(TemplateSet::defaults())
        .render(&m)
        .expect("render fresh");
    assert_eq!(a.pdf, b.pdf);
    assert_eq!(a.pdf, fresh.pdf);
    assert_eq!(a.sha256, fresh.sha256);
    let mut other = m.clone();
    other.date = chrono::NaiveDate::from_ymd_opt(2026, 3, 17).expect("date");
    assert_ne!(renderer().render(&other).expect("render").sha256, a.sha256);
}

#[test]
fn svg_logo_is_embedded_and_text_stays_extractable() {
    use base64::Engine as _;
    let svg = r##"<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20" viewBox="0 0 60 20"><rect width="60" height="20" fill="#1a5fb4"/><circle cx="10" cy="10" r="6" fill="#ffffff"/></svg>"##;
    let mut m = model::sample();
    m.letterhead.logo = Some(Logo {
        format: LogoFormat::Svg,
        data_base64: base64::engine::general_purpose::STANDARD.encode(svg),
        height_mm: Some(12),
    });
    let letter = renderer().render(&m).expect("render");
    let rb = readback(&letter.pdf);
    assert!(text(&rb).contains("Muster Handels GmbH"));
    assert_eq!(rb.pages.len(), 1);

    m.letterhead.logo = Some(Logo {
        format: LogoFormat::Png,
        data_base64: "not base64!".into(),
        height_mm: None,
    });
    let err = renderer().render(&m).expect_err("bad logo");
    assert!(
        err.to_string().starts_with("letterhead.logo.data_base64"),
        "{err}"
    );
}

#[test]
fn registered_letter_prints_einschreiben_in_the_vermerkzone_above_the_return_line() {
    for form in [Form::FormA, Form::FormB] {
        let mut m = model::sample();
        m.form = form;
        m.endorsement = Some(model::Endorsement::RegisteredWithReturnReceipt);
        let letter = renderer().render(&m).expect("render");
        let rb = readback(&letter.pdf);
        assert_address_in_window(&m, &rb);
        let page = &rb.pages[0];
        let mark = find_line(page, "Einschreiben mit Rückschein");
        assert!(!mark.is_empty(), "{form:?}: endorsement missing");
        let sender = find_line(page, &m.letterhead.sender_line);
        assert!(!sender.is_empty(), "{form:?}: return line missing");
        let top = f64::from(form.address_field_top_mm());
        assert!(
            mm(mark[0].top) >= top,
            "{form:?}: endorsement above the address field"
        );
        assert!(
            mark[0].bottom <= sender[0].top,
            "{form:?}: endorsement not above the return line"
        );
    }
}

/// DIN 5008: the return address (Rücksendeangabe) is the last line of the 17.7 mm Zusatz- und
/// Vermerkzone, directly above the address zone, aligned with the address 5 mm inside the
/// field (25 mm from the left edge), smaller than the address.
#[test]
fn return_line_sits_at_the_foot_of_the_vermerkzone_aligned_with_the_address() {
    for form in [Form::FormA, Form::FormB] {
        let mut m = model::sample();
        m.form = form;
        let letter = renderer().render(&m).expect("render");
        let rb = readback(&letter.pdf);
        let page = &rb.pages[0];
        let zone_top = f64::from(form.address_field_top_mm()) + 17.7;
        let sender = find_line(page, &m.letterhead.sender_line);
        let bottom = sender.iter().map(|w| mm(w.bottom)).fold(0.0, f64::max);
        assert!(
            bottom <= zone_top && bottom >= zone_top - 4.0,
            "{form:?}: return line ends at {bottom:.1} mm, not just above the address zone at {zone_top} mm"
        );
        let recipient = find_line(page, &m.recipient_lines()[0]);
        let (s0, r0) = (mm(sender[0].x0), mm(recipient[0].x0));
        assert!(
            (s0 - 25.0).abs() < 1.0 && (r0 - 25.0).abs() < 1.0,
            "{form:?}: return line at {s0:.1} mm, address at {r0:.1} mm from the left"
        );
        let height = |w: &Word| w.bottom - w.top;
        assert!(
            height(sender[0]) < height(recipient[0]),
            "{form:?}: the return line is not smaller than the address"
        );
    }
}
