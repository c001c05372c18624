//! The calls many tests make to set a tenant up: the sample letterhead, an invoice whose case
//! id they need, waiting for dunning to open a case, a collection partner.

use super::{authed, wait_for};
use mahnwerk_proto::v1 as pb;
use tonic::transport::Channel;

/// Store the letters model's sample letterhead for the key's tenant (sender address, signature
/// "Erika Muster", creditor copies to the inbox).
pub async fn put_sample_letterhead(channel: &Channel, key: &str) {
    let settings = serde_json::json!({
        "letterhead": serde_json::to_value(mahnwerk_letters::model::sample().letterhead).unwrap(),
        "email_from": "buchhaltung@muster-handel.test",
        "signature": "Erika Muster",
        "copy_to": {"mode": "inbox"}
    });
    pb::letter_service_client::LetterServiceClient::new(channel.clone())
        .put_letterhead(authed(
            key,
            pb::PutLetterheadRequest {
                tenant: String::new(),
                settings_json: settings.to_string(),
            },
        ))
        .await
        .unwrap();
}

/// `CreateInvoice` of `invoice` for the key's tenant; returns the case id.
pub async fn create_case_of(channel: &Channel, key: &str, invoice: pb::Invoice) -> String {
    pb::invoice_service_client::InvoiceServiceClient::new(channel.clone())
        .create_invoice(authed(
            key,
            pb::CreateInvoiceRequest {
                invoice: Some(invoice),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .invoice
        .unwrap()
        .case_id
}

/// An `ImportEInvoice` of `content` whose payee account, when the file names none, is the
/// usual test IBAN held by `holder`.
pub fn einvoice_request(
    content: Vec<u8>,
    file_name: &str,
    holder: &str,
) -> pb::ImportEInvoiceRequest {
    pb::ImportEInvoiceRequest {
        content,
        file_name: file_name.into(),
        default_creditor_account: Some(pb::BankAccount {
            iban: "DE89370400440532013000".into(),
            bic: String::new(),
            holder: holder.into(),
        }),
        ..Default::default()
    }
}

/// Wait (at most `secs`) until the dunning service explains the case: it has opened it.
pub async fn wait_dunning_opened(channel: &Channel, key: &str, case_id: &str, secs: u64) {
    let dunning = pb::dunning_service_client::DunningServiceClient::new(channel.clone());
    wait_for("dunning to open the case", secs, || {
        let mut d = dunning.clone();
        let req = authed(
            key,
            pb::ExplainCaseRequest {
                case_id: case_id.to_owned(),
                ..Default::default()
            },
        );
        async move { d.explain_case(req).await.is_ok() }
    })
    .await;
}

/// The partner "inkasso-nord" (consumer cases in DE from 10.00 EUR, active) in `mode`.
pub fn partner(mode: pb::HandoverMode, waive_costs_if_principal_paid: bool) -> pb::Partner {
    pb::Partner {
        partner_id: "inkasso-nord".into(),
        name: "Inkasso Nord GmbH".into(),
        subject_token: "nord".into(),
        min_amount_minor: 1000,
        debtor_kinds: vec![pb::DebtorKind::Consumer as i32],
        countries: vec!["DE".into()],
        mode: mode as i32,
        waive_costs_if_principal_paid,
        active: true,
    }
}

/// `PutPartner` of `partner` for the key's tenant.
pub async fn put_partner(channel: &Channel, key: &str, partner: pb::Partner) {
    pb::collection_service_client::CollectionServiceClient::new(channel.clone())
        .put_partner(authed(
            key,
            pb::PutPartnerRequest {
                tenant: String::new(),
                partner: Some(partner),
            },
        ))
        .await
        .unwrap();
}

/// A letter PDF as independent readers see it (pdfplumber, pypdf, pdftoppm + zxing-cpp:
/// `mahnwerk-letters/tests/readback.py`): the text of each page and the QR payloads.
pub fn read_back(pdf: &[u8]) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("letter.pdf");
    std::fs::write(&path, pdf).unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../mahnwerk-letters/tests/readback.py");
    let out = std::process::Command::new(super::python("pdfplumber, pypdf and zxing-cpp"))
        .arg(script)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "readback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let strings = |list: &serde_json::Value, field: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(|x| x[field].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    (strings(&v["pages"], "text"), strings(&v["qr"], "text"))
}

/// A case's events over `CaseService.GetCaseFile`: (type, payload) in stream order.
pub async fn case_file_events(
    server: &super::Running,
    key: &str,
    case_id: &str,
) -> Vec<(String, serde_json::Value)> {
    pb::case_service_client::CaseServiceClient::new(server.channel().await)
        .get_case_file(authed(
            key,
            pb::GetCaseFileRequest {
                tenant: String::new(),
                case_id: case_id.into(),
                invoice_number: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events
        .into_iter()
        .map(|e| (e.r#type, serde_json::from_str(&e.payload_json).unwrap()))
        .collect()
}
