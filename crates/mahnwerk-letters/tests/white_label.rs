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
    assert!(contains(&pdf, b"<xmp:CreatorTool>Muster Handels GmbH</xmp:CreatorTool>"));
    assert!(contains(&pdf, b"<stEvt:softwareAgent>Muster Handels GmbH</stEvt:softwareAgent>"));
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
        err.to_string().starts_with("payment_plan.instalments[1].amount"),
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
