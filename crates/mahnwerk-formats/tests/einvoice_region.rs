//! BT-54, the buyer's country subdivision (UBL `cac:PostalAddress/cbc:CountrySubentity`, CII
//! `ram:CountrySubDivisionName`): a German state named unambiguously becomes the address's
//! ISO 3166-2 region (`DE-BY`); anything else (the samples' `RegionB` in Norway) none.

use mahnwerk_formats::einvoice::read_einvoice;
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/einvoice")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// `xml` with `insert` placed before the first `before` after the first `after`.
fn insert_after(xml: &str, after: &str, before: &str, insert: &str) -> String {
    let start = xml.find(after).unwrap();
    let at = start + xml[start..].find(before).unwrap();
    format!("{}{insert}{}", &xml[..at], &xml[at..])
}

fn region(xml: &str) -> Option<String> {
    read_einvoice(xml.as_bytes()).unwrap().debtor.address.region
}

#[test]
fn a_ubl_buyer_in_bayern_is_de_by() {
    let xml = fixture("xrechnung_01.10a-INVOICE_ubl.xml");
    assert_eq!(region(&xml), None, "the sample names no subdivision");
    for (text, want) in [
        ("Bayern", Some("DE-BY")),
        ("DE-HH", Some("DE-HH")),
        ("Oberbayern", None),
    ] {
        let with = insert_after(
            &xml,
            "AccountingCustomerParty",
            "<cac:Country>",
            &format!("<cbc:CountrySubentity>{text}</cbc:CountrySubentity>"),
        );
        assert_eq!(region(&with).as_deref(), want, "{text}");
    }
}

#[test]
fn a_cii_buyer_in_bavaria_is_de_by() {
    let xml = fixture("xrechnung_01.10a-INVOICE_uncefact.xml");
    assert_eq!(region(&xml), None);
    let with = insert_after(
        &xml,
        "BuyerTradeParty",
        "</ram:PostalTradeAddress>",
        "<ram:CountrySubDivisionName>Bavaria</ram:CountrySubDivisionName>",
    );
    assert_eq!(region(&with).as_deref(), Some("DE-BY"));
}

#[test]
fn a_subdivision_that_is_no_german_state_gives_no_region() {
    // The EN 16931 example: a Norwegian buyer in "RegionB".
    let inv = read_einvoice(fixture("en16931_ubl-tc434-example2.xml").as_bytes()).unwrap();
    assert_eq!(inv.debtor.address.country, "NO");
    assert_eq!(inv.debtor.address.region, None);
}
