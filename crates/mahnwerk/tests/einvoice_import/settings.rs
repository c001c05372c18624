//! The tenant's stored import settings (`PutImportSettings`) fill what a request leaves unset.

use super::*;

const RABATTE: &str = "mustang_ZUGFeRD-invoice_rabatte_3_abschlag_duepayableamount.xml";

/// The tenant's import settings are stored (`PutImportSettings`, versioned as events) and fill
/// every field an `ImportEInvoice` request leaves unset; a field the request sets still wins.
/// The "rabatte" sample names no payee IBAN, no due date and no business evidence, so all
/// three settings decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_import_settings_fill_what_a_request_leaves_unset() {
    let e = env(sqlite_db).await;
    let url = e.server.database_url.clone();
    let key = tenant_key(&url, "acme").await;
    let mut client = InvoiceServiceClient::new(e.server.channel().await);
    let bare = |content: Vec<u8>| pb::ImportEInvoiceRequest {
        content,
        file_name: "bare".into(),
        ..Default::default()
    };
    let get_settings = |client: &mut InvoiceServiceClient<Channel>| {
        let mut c = client.clone();
        let key = key.clone();
        async move {
            c.get_import_settings(authed(&key, pb::GetImportSettingsRequest::default()))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let none = get_settings(&mut client).await;
    assert_eq!(none.version, 0);
    assert_eq!(none.settings, Some(pb::ImportSettings::default()));
    // Nothing stored, nothing sent: no account for a document without a payee IBAN.
    let s = client
        .import_e_invoice(authed(&key, bare(sample(RABATTE))))
        .await
        .unwrap_err();
    assert!(
        s.message().contains("no default account of the tenant"),
        "{s}"
    );

    let settings = pb::ImportSettings {
        unknown_buyer_kind: pb::DebtorKind::Business as i32,
        default_term_days: 30,
        default_creditor_account: Some(pb::BankAccount {
            iban: "DE89370400440532013000".into(),
            bic: String::new(),
            holder: "Tenant GmbH".into(),
        }),
    };
    let put = |s: pb::ImportSettings, rid: &str| {
        authed(
            &key,
            pb::PutImportSettingsRequest {
                tenant: String::new(),
                settings: Some(s),
                request_id: rid.into(),
            },
        )
    };
    let bad = client
        .put_import_settings(put(
            pb::ImportSettings {
                default_term_days: 400,
                ..settings.clone()
            },
            "s-0",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(
        bad.message().contains("settings.default_term_days"),
        "{bad}"
    );
    let stored = client
        .put_import_settings(put(settings.clone(), "s-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stored.version, stored.settings),
        (1, Some(settings.clone()))
    );
    // Retried: nothing new; the key for other settings is ALREADY_EXISTS.
    let retried = client
        .put_import_settings(put(settings.clone(), "s-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.version, 1);
    let other = client
        .put_import_settings(put(
            pb::ImportSettings {
                default_term_days: 10,
                ..settings.clone()
            },
            "s-1",
        ))
        .await
        .unwrap_err();
    assert_eq!(other.code(), tonic::Code::AlreadyExists, "{other}");
    let got = get_settings(&mut client).await;
    assert_eq!((got.version, got.settings), (1, Some(settings.clone())));
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    let tenant: mahnwerk_domain::TenantId = "acme".parse().unwrap();
    let events = log
        .read_stream(
            &mahnwerk_domain::StreamId::new(&tenant, "import_settings", "default"),
            1,
            10,
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "import_settings.updated.v1");

    // The request sends nothing: the stored settings decide.
    let r = client
        .import_e_invoice(authed(&key, bare(sample(RABATTE))))
        .await
        .unwrap_or_else(|s| panic!("{s}"))
        .into_inner()
        .result
        .unwrap();
    assert_eq!(r.outcome, "created", "{r:?}");
    let i = get(&mut client, &key, "ST-1499").await;
    assert_eq!(
        i.debtor.as_ref().unwrap().kind,
        pb::DebtorKind::Business as i32
    );
    assert_eq!(i.due_date, "2019-08-25", "2019-07-26 + 30 days");
    assert_eq!(
        i.creditor_account.as_ref().unwrap().iban,
        "DE89370400440532013000"
    );
    // The request sets two fields: they win; the account still comes from the settings.
    let other_doc = String::from_utf8(sample(RABATTE))
        .unwrap()
        .replace("<ram:ID>ST-1499</ram:ID>", "<ram:ID>ST-1500</ram:ID>");
    let mut req = bare(other_doc.into_bytes());
    req.unknown_buyer_kind = pb::DebtorKind::Consumer as i32;
    req.default_term_days = 10;
    client
        .import_e_invoice(authed(&key, req))
        .await
        .unwrap_or_else(|s| panic!("{s}"));
    let i = get(&mut client, &key, "ST-1500").await;
    assert_eq!(
        i.debtor.as_ref().unwrap().kind,
        pb::DebtorKind::Consumer as i32
    );
    assert_eq!(i.due_date, "2019-08-05", "2019-07-26 + 10 days");
    assert_eq!(
        i.creditor_account.as_ref().unwrap().iban,
        "DE89370400440532013000"
    );
    // The CLI shows them, and stores new ones (twice the same command: one change).
    let server = format!("http://{}", e.server.addr);
    let cli = |term: Option<u32>| mahnwerk::einvoice_import::ImportSettingsArgs {
        unknown_buyer: term.map(|_| "business".into()),
        default_term_days: term,
        default_iban: term.map(|_| "DE89370400440532013000".into()),
        default_holder: None,
        request_id: None,
    };
    let mut out = Vec::new();
    mahnwerk::einvoice_import::import_settings(&server, &key, "", cli(None), &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "import settings version 1: unknown buyer business, default term days 30, default IBAN DE89370400440532013000\n"
    );
    for _ in 0..2 {
        let mut out = Vec::new();
        mahnwerk::einvoice_import::import_settings(&server, &key, "", cli(Some(20)), &mut out)
            .await
            .unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with(
            "import settings version 2: unknown buyer business, default term days 20"
        ),);
    }
    // Another tenant does not see acme's settings.
    let beta = tenant_key(&url, "beta").await;
    let s = client
        .import_e_invoice(authed(&beta, bare(sample(RABATTE))))
        .await
        .unwrap_err();
    assert!(
        s.message().contains("no default account of the tenant"),
        "{s}"
    );
    e.server.stop().await;
}
