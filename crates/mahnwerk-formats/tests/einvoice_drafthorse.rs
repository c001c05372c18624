//! Must-show 3 of issue 3: e-invoices produced by an independent producer (`drafthorse`, and
//! `factur-x` for the PDF/A-3) from randomised data parse back to exactly the data they were
//! produced from; our IBAN/BIC validation agrees with `schwifty`.
//!
//! The generator is `tests/py/gen_einvoices.py`; it runs in the workspace venv (`make pyenv`),
//! found as `MAHNWERK_PYTHON` or `<workspace>/.venv/bin/python`. The seed is random per run and
//! printed; rerun one with `MAHNWERK_TEST_SEED=<seed>`. `MAHNWERK_TEST_INVOICES` sets the count.

use mahnwerk_formats::einvoice::{DueDateSource, EInvoice, Syntax, read_einvoice};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MAHNWERK_PYTHON") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        p.exists(),
        "{} not found: run make pyenv (or set MAHNWERK_PYTHON)",
        p.display()
    );
    p
}

fn seed() -> u64 {
    match std::env::var("MAHNWERK_TEST_SEED") {
        Ok(s) => s.parse().expect("MAHNWERK_TEST_SEED is a number"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::from(t.subsec_nanos()) ^ t.as_secs() ^ u64::from(std::process::id())
        }
    }
}

fn generate(seed: u64, count: usize, pdf: bool) -> (PathBuf, Value) {
    let dir = std::env::temp_dir().join(format!(
        "mahnwerk-drafthorse-{}-{seed}-{pdf}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/gen_einvoices.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .arg(seed.to_string())
        .arg(count.to_string())
        .arg(&dir);
    if pdf {
        cmd.arg("--pdf");
    }
    let out = cmd
        .output()
        .expect("python starts (run make pyenv if it is missing)");
    assert!(
        out.status.success(),
        "generator failed (seed {seed}; run make pyenv if a module is missing):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    (dir, manifest)
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn check(inv: &EInvoice, exp: &Value, what: &str) {
    let ctx = |field: &str| format!("{what}: {field}");
    assert_eq!(inv.syntax, Syntax::Cii, "{}", ctx("syntax"));
    assert_eq!(
        Some(inv.invoice_number.as_str()),
        s(&exp["invoice_number"]),
        "{}",
        ctx("number")
    );
    assert_eq!(
        Some(inv.type_code.as_str()),
        s(&exp["type_code"]),
        "{}",
        ctx("type")
    );
    assert_eq!(
        Some(inv.issue_date.to_string().as_str()),
        s(&exp["issue_date"]),
        "{}",
        ctx("issue date")
    );
    assert_eq!(
        Some(inv.currency.as_str()),
        s(&exp["currency"]),
        "{}",
        ctx("currency")
    );
    match (s(&exp["due_date"]), exp["payment_terms_days"].as_u64()) {
        (Some(due), _) => {
            assert_eq!(
                inv.due_date.map(|d| d.to_string()).as_deref(),
                Some(due),
                "{}",
                ctx("due")
            );
            assert_eq!(
                inv.due_date_source,
                Some(DueDateSource::DueDate),
                "{}",
                ctx("due source")
            );
        }
        (None, Some(days)) => {
            let from_terms = inv.issue_date + chrono::Days::new(days);
            assert_eq!(inv.due_date, Some(from_terms), "{}", ctx("due from terms"));
            assert_eq!(
                inv.due_date_source,
                Some(DueDateSource::PaymentTermsDays),
                "{}",
                ctx("due source")
            );
        }
        (None, None) => assert_eq!(inv.due_date, None, "{}", ctx("due")),
    }
    assert_eq!(
        inv.payment_terms.as_deref(),
        s(&exp["payment_terms"]),
        "{}",
        ctx("terms")
    );
    let amounts = [
        ("line_total_amount", inv.line_total_amount),
        ("net_amount", Some(inv.net_amount)),
        ("tax_amount", Some(inv.tax_amount)),
        ("gross_amount", Some(inv.gross_amount)),
        ("prepaid_amount", Some(inv.prepaid_amount)),
        ("payable_amount", Some(inv.payable_amount)),
        ("allowance_total_amount", inv.allowance_total_amount),
        ("charge_total_amount", inv.charge_total_amount),
    ];
    for (name, got) in amounts {
        assert_eq!(got, exp[name].as_i64(), "{}", ctx(name));
    }
    let b = &exp["buyer"];
    let d = &inv.debtor;
    assert_eq!(
        Some(d.name.as_str()),
        s(&b["name"]),
        "{}",
        ctx("buyer name")
    );
    let street: Vec<&str> = b["street"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(d.address.street, street, "{}", ctx("buyer street"));
    assert_eq!(
        Some(d.address.postal_code.as_str()),
        s(&b["postal_code"]),
        "{}",
        ctx("postcode")
    );
    assert_eq!(
        Some(d.address.city.as_str()),
        s(&b["city"]),
        "{}",
        ctx("city")
    );
    assert_eq!(
        Some(d.address.country.as_str()),
        s(&b["country"]),
        "{}",
        ctx("country")
    );
    assert_eq!(d.email.as_deref(), s(&b["email"]), "{}", ctx("email"));
    assert_eq!(d.vat_id.as_deref(), s(&b["vat_id"]), "{}", ctx("vat id"));
    if b["vat_id"].is_string() {
        assert_eq!(
            d.business_evidence,
            Some(mahnwerk_formats::einvoice::BusinessEvidence::VatId),
            "{}",
            ctx("a VAT id makes a business")
        );
    }
    let accounts: Vec<(String, Option<String>, bool)> = inv
        .creditor_accounts
        .iter()
        .map(|a| (a.iban.clone(), a.bic.clone(), a.iban_valid))
        .collect();
    let expected: Vec<(String, Option<String>, bool)> = exp["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                s(&a["iban"]).unwrap().to_owned(),
                s(&a["bic"]).map(str::to_owned),
                true,
            )
        })
        .collect();
    assert_eq!(accounts, expected, "{}", ctx("seller accounts"));
    assert_eq!(
        inv.creditor_account.as_ref().map(|a| a.iban.as_str()),
        expected.first().map(|a| a.0.as_str()),
        "{}",
        ctx("creditor account")
    );
    assert_eq!(
        inv.payment_reference.as_deref(),
        s(&exp["payment_reference"]),
        "{}",
        ctx("BT-83")
    );
    assert_eq!(
        inv.mandate_id.as_deref(),
        s(&exp["mandate_id"]),
        "{}",
        ctx("BT-89")
    );
    assert_eq!(
        inv.creditor_id.as_deref(),
        s(&exp["creditor_id"]),
        "{}",
        ctx("BT-90")
    );
    assert_eq!(
        inv.debtor_account_iban.as_deref(),
        s(&exp["debtor_iban"]),
        "{}",
        ctx("BT-91")
    );
    let code = if exp["direct_debit"].as_bool().unwrap() {
        "59"
    } else {
        "58"
    };
    assert_eq!(
        inv.payment_means_code.as_deref(),
        Some(code),
        "{}",
        ctx("BT-81")
    );
}

#[test]
fn drafthorse_invoices_parse_back_to_what_was_produced() {
    let seed = seed();
    let count: usize = std::env::var("MAHNWERK_TEST_INVOICES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(12);
    eprintln!("drafthorse seed {seed} ({count} invoices); rerun with MAHNWERK_TEST_SEED={seed}");
    let (dir, manifest) = generate(seed, count, true);
    let invoices = manifest["invoices"].as_array().unwrap();
    assert_eq!(invoices.len(), count);
    let mut direct_debits = 0;
    for exp in invoices {
        let xml = std::fs::read(s(&exp["xml"]).unwrap()).unwrap();
        let inv =
            read_einvoice(&xml).unwrap_or_else(|e| panic!("seed {seed}: {}: {e}", exp["xml"]));
        check(&inv, exp, &format!("seed {seed}, {}", exp["xml"]));
        let pdf = std::fs::read(s(&exp["pdf"]).unwrap()).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        let from_pdf =
            read_einvoice(&pdf).unwrap_or_else(|e| panic!("seed {seed}: {}: {e}", exp["pdf"]));
        assert_eq!(from_pdf, inv, "seed {seed}: PDF and XML differ");
        direct_debits += usize::from(exp["direct_debit"].as_bool().unwrap());
    }
    eprintln!("{count} invoices, {direct_debits} direct debits");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn iban_and_bic_validation_agree_with_schwifty() {
    let seed = seed();
    eprintln!("schwifty seed {seed}; rerun with MAHNWERK_TEST_SEED={seed}");
    let (dir, manifest) = generate(seed, 25, false);
    let ibans = manifest["ibans"].as_array().unwrap();
    let (mut valid, mut invalid) = (0, 0);
    for i in ibans {
        let text = s(&i["iban"]).unwrap();
        let theirs = i["schwifty_valid"].as_bool().unwrap();
        let ours = text.parse::<mahnwerk_domain::Iban>().is_ok();
        assert_eq!(
            ours, theirs,
            "seed {seed}: IBAN {text}: ours {ours}, schwifty {theirs}"
        );
        if theirs {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    // Every corrupted IBAN must be caught (checksum or length): the list alternates valid and
    // corrupted, and both kinds must be present for the comparison to mean anything.
    assert!(
        valid >= 25 && invalid >= 20,
        "valid {valid}, invalid {invalid}"
    );
    for b in manifest["bics"].as_array().unwrap() {
        let text = s(&b["bic"]).unwrap();
        assert_eq!(
            text.parse::<mahnwerk_domain::Bic>().is_ok(),
            b["schwifty_valid"].as_bool().unwrap(),
            "seed {seed}: BIC {text}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
