//! `LetterService` over real gRPC: letterhead and templates (checked at upload, versioned as
//! events), preview, the letters of a case, documents (tenant-scoped) and the operator's resend.

mod common;

use common::*;
use mahnwerk_letters::events::CopyTo;
use mahnwerk_letters_service::store::state;
use mahnwerk_proto::v1 as pb;
use pb::letter_service_client::LetterServiceClient;
use tonic::Code;
use tonic::transport::Channel;

fn authed<T>(token: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    r
}

async fn serve(h: &Harness) -> LetterServiceClient<Channel> {
    let svc = h
        .parts
        .service(h.log.clone(), h.keys.clone(), h.pool.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("serve");
    });
    LetterServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letterhead_templates_preview_documents_and_resend() {
    let h = Harness::start(&[]).await;
    let mut client = serve(&h).await;
    let token = h
        .keys
        .create_key(std::slice::from_ref(&h.tenant), "test")
        .await
        .expect("key")
        .token;
    let other: mahnwerk_domain::TenantId = "other".parse().expect("tenant");
    h.keys
        .create_tenant(&other, "Other GmbH")
        .await
        .expect("tenant");
    let other_token = h
        .keys
        .create_key(&[other], "other")
        .await
        .expect("key")
        .token;

    // Unauthenticated calls are refused.
    let err = client
        .get_letterhead(pb::GetLetterheadRequest::default())
        .await
        .expect_err("no key");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Letterhead: versioned, idempotent by content.
    let s = settings(CopyTo::Email {
        address: "kopien@muster-handel.test".into(),
    });
    let json = serde_json::to_string(&s).expect("json");
    let put = |json: String| pb::PutLetterheadRequest {
        tenant: String::new(),
        settings_json: json,
    };
    let v1 = client
        .put_letterhead(authed(&token, put(json.clone())))
        .await
        .expect("put")
        .into_inner()
        .version;
    let again = client
        .put_letterhead(authed(&token, put(json.clone())))
        .await
        .expect("put again")
        .into_inner()
        .version;
    assert_eq!((v1, again), (1, 1));
    let mut bad = s.clone();
    bad.letterhead.name = String::new();
    let err = client
        .put_letterhead(authed(
            &token,
            put(serde_json::to_string(&bad).expect("json")),
        ))
        .await
        .expect_err("empty name");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("letterhead.name"),
        "{}",
        err.message()
    );
    let got = client
        .get_letterhead(authed(&token, pb::GetLetterheadRequest::default()))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.version, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got.settings_json).expect("json"),
        serde_json::to_value(&s).expect("json")
    );

    // Templates: a syntax error and an unknown variable are rejected at upload, naming the line.
    let template = |name: &str, source: &str| pb::PutTemplateRequest {
        tenant: String::new(),
        name: name.into(),
        source: source.into(),
    };
    let default_src = mahnwerk_letters::templates::DEFAULTS
        .iter()
        .find(|(n, _)| *n == "first_notice.de.j2")
        .map(|(_, s)| *s)
        .expect("default template");
    let syntax = "{% block title %}Mahnung{% endblock %}\n{% block salutation %}Hallo{% endblock %}\n{% block body %}{% if %}{% endblock %}\n{% block closing %}Gruß{% endblock %}\n";
    let err = client
        .put_template(authed(&token, template("first_notice.de.j2", syntax)))
        .await
        .expect_err("syntax");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("line 3"), "{}", err.message());
    let unknown = "{% block title %}Mahnung{% endblock %}\n{% block salutation %}Hallo {{ debtor_shoe_size }}{% endblock %}\n{% block body %}x{% endblock %}\n{% block closing %}Gruß{% endblock %}\n";
    let err = client
        .put_template(authed(&token, template("first_notice.de.j2", unknown)))
        .await
        .expect_err("unknown variable");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("line 2") && err.message().contains("debtor_shoe_size"),
        "{}",
        err.message()
    );
    let custom = default_src.replacen("{% block closing %}", "{% block closing %}Herzlich, ", 1);
    assert_ne!(
        custom, default_src,
        "the default template has a closing block"
    );
    let v2 = client
        .put_template(authed(&token, template("first_notice.de.j2", &custom)))
        .await
        .expect("valid template")
        .into_inner()
        .version;
    assert_eq!(v2, 2);

    // A case reaches step 1 and its letter goes out.
    let inv = invoice("RE-GRPC-1", Some("kunde@debtor.test"));
    let (case, stream) = case_of(&h.tenant, &inv);
    append(&h.log, &stream, vec![issued(&inv), step_event(&step(1))]).await;
    let service = h.spawn_service();
    let list = |token: &str| {
        authed(
            token,
            pb::ListLettersRequest {
                tenant: String::new(),
                case_id: case.0.to_string(),
            },
        )
    };
    let mut client2 = client.clone();
    wait_for("letter and copy sent", 60, || {
        let mut c = client2.clone();
        let req = list(&token);
        async move {
            let letters = c
                .list_letters(req)
                .await
                .map(|r| r.into_inner().letters)
                .unwrap_or_default();
            letters.len() == 2 && letters.iter().all(|l| l.state == state::SENT)
        }
    })
    .await;
    let letters = client2
        .list_letters(list(&token))
        .await
        .expect("list")
        .into_inner()
        .letters;
    let debtor = letters
        .iter()
        .find(|l| l.recipient == "debtor")
        .expect("debtor letter");
    assert_eq!(debtor.channel, "email");
    assert!(!debtor.provider_id.is_empty());

    // The document, and the preview renders the same bytes (deterministic, same templates).
    let doc = client
        .get_document(authed(
            &token,
            pb::GetDocumentRequest {
                tenant: String::new(),
                sha256: debtor.document_sha256.clone(),
            },
        ))
        .await
        .expect("document")
        .into_inner();
    assert!(doc.content.starts_with(b"%PDF"));
    assert_eq!(
        mahnwerk_letters_service::documents::sha256_hex(&doc.content),
        debtor.document_sha256
    );
    let err = client
        .get_document(authed(
            &other_token,
            pb::GetDocumentRequest {
                tenant: String::new(),
                sha256: debtor.document_sha256.clone(),
            },
        ))
        .await
        .expect_err("another tenant's document");
    assert_eq!(err.code(), Code::NotFound);
    let preview = client
        .preview_letter(authed(
            &token,
            pb::PreviewLetterRequest {
                tenant: String::new(),
                case_id: case.0.to_string(),
                step: 1,
            },
        ))
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.sha256, debtor.document_sha256);
    let err = client
        .preview_letter(authed(
            &token,
            pb::PreviewLetterRequest {
                tenant: String::new(),
                case_id: case.0.to_string(),
                step: 2,
            },
        ))
        .await
        .expect_err("step not reached");
    assert_eq!(err.code(), Code::NotFound);

    // The email used the tenant's template override.
    let mails = received(&h.mail_dir);
    assert!(
        mails
            .iter()
            .any(|m| m.starts_with("X-Rcpt-To: kunde@debtor.test") && m.contains("Herzlich")),
        "override used"
    );

    // Resend: explicit, recorded with its actor, idempotent by request id.
    let resend = |note: &str| pb::ResendRequest {
        tenant: String::new(),
        case_id: case.0.to_string(),
        step: 1,
        channel: String::new(),
        request_id: "op-1".into(),
        note: note.into(),
    };
    let first = client
        .resend(authed(&token, resend("debtor lost it")))
        .await
        .expect("resend")
        .into_inner();
    let same = client
        .resend(authed(&token, resend("debtor lost it")))
        .await
        .expect("resend again")
        .into_inner();
    assert_eq!(first.letter_id, same.letter_id);
    let err = client
        .resend(authed(&token, resend("something else")))
        .await
        .expect_err("different request, same key");
    assert_eq!(err.code(), Code::AlreadyExists);
    wait_for("resent letter sent", 60, || {
        let mut c = client2.clone();
        let req = list(&token);
        let id = first.letter_id.clone();
        async move {
            let letters = c
                .list_letters(req)
                .await
                .map(|r| r.into_inner().letters)
                .unwrap_or_default();
            letters
                .iter()
                .any(|l| l.letter_id == id && l.state == state::SENT)
        }
    })
    .await;
    let events = event_types(&h.log, &stream).await;
    let req = events
        .iter()
        .find(|(t, _)| t == "letter.resend_requested.v1")
        .expect("resend event");
    assert!(
        req.1["actor"]
            .as_str()
            .unwrap_or_default()
            .starts_with("apikey:"),
        "{}",
        req.1
    );
    assert_eq!(
        events
            .iter()
            .filter(|(t, _)| t == "letter.resend_requested.v1")
            .count(),
        1
    );
    let to_debtor = received(&h.mail_dir)
        .iter()
        .filter(|m| m.starts_with("X-Rcpt-To: kunde@debtor.test"))
        .count();
    assert_eq!(to_debtor, 2, "the letter and its one resend");
    service.abort();
}
