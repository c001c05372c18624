//! Fixes from review and the outside read-back of generated letters; each test failed before.

use mahnwerk_domain::Money;
use mahnwerk_letters::model::{self, ClaimLine, LetterKind};
use mahnwerk_letters::{LetterRenderer, TemplateSet};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// White label means white label: the PDF's `/Creator`, XMP `CreatorTool` and the provenance
/// event's `softwareAgent` named the software ("Mahnwerk"); now they name the creditor.
#[test]
fn pdf_metadata_names_the_creditor_not_the_software() {
    let r = LetterRenderer::new(TemplateSet::defaults());
    let pdf = r.render(&model::sample()).expect("render").pdf;
    for software in [&b"Mahnwerk"[..], b"mahnwerk", b"Typst", b"typst"] {
        assert!(
            !contains(&pdf, software),
            "the PDF names {:?}",
            String::from_utf8_lossy(software)
        );
    }
    assert!(contains(
        &pdf,
        b"<xmp:CreatorTool>Muster Handels GmbH</xmp:CreatorTool>"
    ));
    assert!(contains(
        &pdf,
        b"<stEvt:softwareAgent>Muster Handels GmbH</stEvt:softwareAgent>"
    ));
}

/// Negative payment-plan instalments were accepted and printed.
#[test]
fn negative_instalment_is_refused_with_the_field_named() {
    let mut m = model::sample_for(LetterKind::PaymentPlanConfirmation);
    if let Some(plan) = &mut m.payment_plan {
        plan.instalments[1].amount = Money::eur(-85_515);
    }
    let err = m.validate().expect_err("negative instalment");
    assert!(
        err.to_string()
            .starts_with("payment_plan.instalments[1].amount"),
        "{err}"
    );
}

/// A negative principal on an interest line was accepted and printed.
#[test]
fn negative_interest_principal_is_refused_with_the_field_named() {
    let mut m = model::sample();
    if let ClaimLine::Interest { principal, .. } = &mut m.claims[2] {
        *principal = Money::eur(-119_000);
    }
    let err = m.validate().expect_err("negative principal");
    assert!(err.to_string().starts_with("claims[2].principal"), "{err}");
}

/// A full 6-line address with one ~50-character line wraps at 10 pt and ends below the window
/// (Form B) or over the subject line (Form A); it was accepted.
#[test]
fn six_line_address_with_a_wrapping_line_is_refused_with_the_field_named() {
    use mahnwerk_domain::{Personal, PostalAddress};
    let mut m = model::sample();
    m.recipient.extra_lines = Personal::new(vec![
        "z. Hd. Frau Jürgens".into(),
        "Abteilung Rechnungsprüfung und Zahlungsverkehr Süd".into(),
    ]);
    m.recipient.address = Personal::new(PostalAddress {
        street: vec!["Mühlenweg 12".into(), "Hinterhaus".into()],
        postal_code: "80331".into(),
        city: "München".into(),
        country: "DE".into(),
        region: None,
    });
    assert_eq!(m.recipient_lines().len(), 6);
    let err = m.validate().expect_err("does not fit the window");
    assert!(
        err.to_string().starts_with("recipient.extra_lines[1]:"),
        "{err}"
    );
    // Without the wrapping line it fits and renders.
    m.recipient.extra_lines = Personal::new(vec!["z. Hd. Frau Jürgens".into(), "Einkauf".into()]);
    m.validate().expect("six short lines fit");
}

/// IBAN errors in the model named no field, and a too-short IBAN was called a checksum error.
#[test]
fn too_short_iban_names_the_field_and_is_not_a_checksum_error() {
    let mut v = serde_json::to_value(model::sample()).expect("json");
    v["payment"]["iban"] = serde_json::Value::from("DE8937040044");
    let err = model::LetterModel::from_json(&v.to_string()).expect_err("short IBAN");
    let msg = err.to_string();
    assert!(msg.starts_with("payment.iban:"), "{msg}");
    assert!(!msg.contains("checksum"), "{msg}");
    v["payment"]["iban"] = serde_json::Value::from("DE88370400440532013000");
    let msg = model::LetterModel::from_json(&v.to_string())
        .expect_err("checksum")
        .to_string();
    assert!(
        msg.starts_with("payment.iban:") && msg.contains("checksum"),
        "{msg}"
    );
}

/// Letters that charge interest must state how it was computed: period, days, base rate plus
/// 5 or 9 points, day count and rounding rule.
#[test]
fn interest_letter_states_how_the_interest_was_computed() {
    use rust_decimal::Decimal;
    let mut m = model::sample();
    m.interest_method = Some(model::InterestMethod {
        margin_points: Decimal::from(9),
        day_count: model::DayCount::Act365,
    });
    let r = LetterRenderer::new(TemplateSet::defaults());
    let text = r.render_email(&m).expect("email").text;
    for needle in [
        "30.01.2026 bis 16.03.2026: 46 Tage",
        "10,27\u{a0}% p. a. (1,27\u{a0}% Basiszinssatz + 9 Prozentpunkte)",
        "Zinstage: tatsächliche Tage / 365",
        "kaufmännisch auf den Cent gerundet",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in:\n{text}");
    }
}
