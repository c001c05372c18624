//! The demo's one e-invoice (pure): a debtor's invoice as the XRechnung 3.0 UBL file a
//! billing platform would send, written from the same cast data as the gRPC invoices, so the
//! case it opens is the same claim (number, dates, amounts, debtor, the creditor's account).

use super::cast::{self, Debtor, xml_escape};

/// Amount as UBL writes it: `595.00`.
fn amount(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The file name the demo leaves the e-invoice under.
pub fn file_name(d: &Debtor) -> String {
    format!("{}.xrechnung.xml", d.invoice_number)
}

/// The debtor's invoice as an XRechnung 3.0 (UBL 2.1) document: one line at 19 % VAT, due on
/// the cast's due date, payable by credit transfer to the creditor's IBAN. The buyer's VAT id
/// (BT-48) is what makes it a business; its email is the buyer's electronic address (BT-49).
pub fn ubl(d: &Debtor) -> String {
    let (issue, due, _) = cast::dates();
    let e = xml_escape;
    let vat = d.vat_id.unwrap_or_default();
    let buyer_tax = if vat.is_empty() {
        String::new()
    } else {
        format!(
            "<cac:PartyTaxScheme><cbc:CompanyID>{}</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>",
            e(vat)
        )
    };
    let endpoint = d
        .email
        .map(|m| format!("<cbc:EndpointID schemeID=\"EM\">{}</cbc:EndpointID>", e(m)))
        .unwrap_or_default();
    let contact = d
        .email
        .map(|m| {
            format!(
                "<cac:Contact><cbc:ElectronicMail>{}</cbc:ElectronicMail></cac:Contact>",
                e(m)
            )
        })
        .unwrap_or_default();
    let payment_id = d
        .reference
        .map(|r| format!("<cbc:PaymentID>{}</cbc:PaymentID>", e(r)))
        .unwrap_or_default();
    let (net, tax, gross) = (amount(d.net), amount(d.tax), amount(d.gross()));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<ubl:Invoice xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
             xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
             xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>{number}</cbc:ID>
  <cbc:IssueDate>{issue}</cbc:IssueDate>
  <cbc:DueDate>{due}</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>{number}</cbc:BuyerReference>
  <cac:AccountingSupplierParty>
    <cac:Party>
      <cbc:EndpointID schemeID="EM">buchhaltung@demo-gmbh.example</cbc:EndpointID>
      <cac:PostalAddress>
        <cbc:StreetName>Musterweg 1</cbc:StreetName>
        <cbc:CityName>Köln</cbc:CityName>
        <cbc:PostalZone>50667</cbc:PostalZone>
        <cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      <cac:PartyTaxScheme><cbc:CompanyID>DE000000000</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
      <cac:PartyLegalEntity><cbc:RegistrationName>{creditor}</cbc:RegistrationName></cac:PartyLegalEntity>
      <cac:Contact><cbc:Name>Buchhaltung</cbc:Name><cbc:Telephone>0221 000000</cbc:Telephone><cbc:ElectronicMail>buchhaltung@demo-gmbh.example</cbc:ElectronicMail></cac:Contact>
    </cac:Party>
  </cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty>
    <cac:Party>
      {endpoint}
      <cac:PostalAddress>
        <cbc:StreetName>{street}</cbc:StreetName>
        <cbc:CityName>{city}</cbc:CityName>
        <cbc:PostalZone>{postal}</cbc:PostalZone>
        <cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      {buyer_tax}
      <cac:PartyLegalEntity><cbc:RegistrationName>{name}</cbc:RegistrationName></cac:PartyLegalEntity>
      {contact}
    </cac:Party>
  </cac:AccountingCustomerParty>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode>58</cbc:PaymentMeansCode>
    {payment_id}
    <cac:PayeeFinancialAccount>
      <cbc:ID>{iban}</cbc:ID>
      <cbc:Name>{creditor}</cbc:Name>
      <cac:FinancialInstitutionBranch><cbc:ID>COBADEFFXXX</cbc:ID></cac:FinancialInstitutionBranch>
    </cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:PaymentTerms><cbc:Note>Zahlbar bis {due} ohne Abzug.</cbc:Note></cac:PaymentTerms>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">{tax}</cbc:TaxAmount>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">{net}</cbc:TaxableAmount>
      <cbc:TaxAmount currencyID="EUR">{tax}</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
    </cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">{net}</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">{net}</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">{gross}</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">{gross}</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">{net}</cbc:LineExtensionAmount>
    <cac:Item>
      <cbc:Name>Lieferung laut Auftrag</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">{net}</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</ubl:Invoice>
"#,
        number = e(d.invoice_number),
        creditor = e(cast::CREDITOR),
        street = e(d.street),
        city = e(d.city),
        postal = e(d.postal_code),
        name = e(d.name),
        iban = cast::CREDITOR_IBAN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mahnwerk_formats::einvoice::claim::OriginalFile;
    use mahnwerk_formats::einvoice::{Claim, ImportPolicy, read_einvoice};

    /// The file reads back as the claim the gRPC invoice of the same debtor makes.
    #[test]
    fn the_xrechnung_reads_back_as_the_casts_invoice() {
        let d = cast::debtors()
            .into_iter()
            .find(|d| d.xrechnung)
            .expect("one debtor's invoice comes as XRechnung");
        let xml = ubl(&d);
        let e = read_einvoice(xml.as_bytes()).unwrap();
        assert_eq!(e.profile, mahnwerk_formats::einvoice::Profile::XRechnung);
        let file = OriginalFile {
            sha256: "0".repeat(64),
            media_type: "application/xml".into(),
            size: xml.len() as u64,
        };
        let Claim::Invoice { invoice, replaces } =
            e.to_domain(&ImportPolicy::default(), &file).unwrap()
        else {
            panic!("not an invoice claim");
        };
        assert_eq!(replaces, None);
        let want = cast::invoice(&d);
        assert_eq!(invoice.number.to_string(), want.invoice_number);
        assert_eq!(invoice.issue_date.to_string(), want.issue_date);
        assert_eq!(invoice.due_date.to_string(), want.due_date);
        assert_eq!(
            (invoice.net, invoice.tax, invoice.gross),
            (want.net_amount, want.tax_amount, want.gross_amount)
        );
        assert_eq!(invoice.debtor.kind, mahnwerk_domain::DebtorKind::Business);
        assert_eq!(invoice.debtor.language, "de");
        assert_eq!(
            invoice.creditor_account.iban.to_string(),
            cast::CREDITOR_IBAN
        );
        let source = invoice.source.expect("the source document");
        assert_eq!(
            (source.syntax.as_str(), source.debtor_kind_rule.as_str()),
            ("ubl", "vat_id")
        );
        assert_eq!(source.due_date_rule, "due_date");
    }
}
