//! gRPC over TLS and mutual TLS by configuration (MAHNWERK_TLS_CERT / _KEY / _CLIENT_CA), with
//! certificates this test generates (rcgen): a client with a certificate of the client CA and
//! an API key is served; without a client certificate, or over plain HTTP/2, it is not.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::invoice_service_client::InvoiceServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sha2::Digest as _;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    ca: String,
    /// The CA whose client certificates the server accepts.
    client_ca: String,
    server: (String, String),
    client: (String, String),
    /// A client certificate from another CA (not trusted by the server).
    stranger: (String, String),
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(names: &[&str], issuer: &CertifiedIssuer<'static, KeyPair>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let server_ca = ca("mahnwerk test server ca");
    let client_ca = ca("mahnwerk test client ca");
    let other_ca = ca("somebody else");
    Pki {
        ca: server_ca.pem(),
        client_ca: client_ca.pem(),
        server: leaf(&["localhost"], &server_ca),
        client: leaf(&["billing.example"], &client_ca),
        stranger: leaf(&["billing.example"], &other_ca),
    }
}

async fn channel(
    addr: std::net::SocketAddr,
    ca: &str,
    identity: Option<&(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://localhost:{}", addr.port()))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

async fn get(channel: Channel, key: &str) -> Result<(), tonic::Status> {
    let mut client = InvoiceServiceClient::new(channel);
    match client
        .get_invoice(authed(
            key,
            pb::GetInvoiceRequest {
                invoice_number: "RE-1".into(),
                ..Default::default()
            },
        ))
        .await
    {
        // Authenticated and served: the invoice simply does not exist.
        Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
        Err(s) => Err(s),
        Ok(_) => panic!("no invoice was created"),
    }
}

#[tokio::test]
async fn grpc_over_mutual_tls_serves_only_clients_with_a_trusted_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let pki = pki();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    std::fs::write(&cert, &pki.server.0).unwrap();
    std::fs::write(&key, &pki.server.1).unwrap();
    let client_ca = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca, &pki.client_ca).unwrap();
    let api_key = tenant_key(&url, "acme").await;
    let server = start_with(&url, |a| {
        a.tls_cert = Some(cert.clone());
        a.tls_key = Some(key.clone());
        a.tls_client_ca = Some(client_ca.clone());
    })
    .await;

    // A trusted client certificate and an API key: served.
    let ch = channel(server.addr, &pki.ca, Some(&pki.client))
        .await
        .unwrap();
    get(ch, &api_key).await.unwrap();
    // The certificate alone is not enough: the API key is still required.
    let ch = channel(server.addr, &pki.ca, Some(&pki.client))
        .await
        .unwrap();
    assert_eq!(
        get(ch, "mwk_00_00").await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    // No client certificate, or one of another CA: the handshake (or the first call) fails.
    for identity in [None, Some(&pki.stranger)] {
        let refused = match channel(server.addr, &pki.ca, identity).await {
            Err(_) => true,
            Ok(ch) => get(ch, &api_key).await.is_err(),
        };
        assert!(refused, "a client without a trusted certificate was served");
    }
    // Plain HTTP/2 to the TLS port: refused.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(ch) = plain {
        assert!(get(ch, &api_key).await.is_err());
    }
    server.stop().await;
}

/// A client certificate and its SHA-256 fingerprint (of the DER), as an operator lists it.
fn leaf_with_fingerprint(
    name: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> ((String, String), String) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    let fp: Vec<String> = sha2::Sha256::digest(cert.der().as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    ((cert.pem(), key.serialize_pem()), fp.join(":"))
}

/// Issue 10: a client certificate can be bound to a tenant like a key
/// (MAHNWERK_TLS_CLIENT_TENANTS): alone it acts for its tenant only; with an API key of another
/// tenant it is PERMISSION_DENIED; a certificate not listed still needs a key.
#[tokio::test]
async fn a_client_certificate_bound_to_a_tenant_acts_for_that_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_db(&dir);
    let server_ca = ca("mahnwerk test server ca");
    let client_ca = ca("mahnwerk test client ca");
    let (server_cert, server_key) = leaf(&["localhost"], &server_ca);
    let (acme_cert, acme_fp) = leaf_with_fingerprint("billing.acme.example", &client_ca);
    let (beta_cert, beta_fp) = leaf_with_fingerprint("billing.beta.example", &client_ca);
    let (unlisted, _) = leaf_with_fingerprint("other.example", &client_ca);
    let files = [
        ("server.pem", server_cert),
        ("server.key", server_key),
        ("client-ca.pem", client_ca.pem()),
        (
            "tenants.txt",
            format!("# client certificates\n{acme_fp} acme\n{beta_fp}   beta  # second\n"),
        ),
    ];
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let acme_key = tenant_key(&url, "acme").await;
    let beta_key = tenant_key(&url, "beta").await;
    let path = |n: &str| Some(dir.path().join(n));
    let server = start_with(&url, |a| {
        a.tls_cert = path("server.pem");
        a.tls_key = path("server.key");
        a.tls_client_ca = path("client-ca.pem");
        a.tls_client_tenants = path("tenants.txt");
    })
    .await;
    let (ca_pem, addr) = (server_ca.pem(), server.addr);
    let client = |id: (String, String)| {
        let ca_pem = ca_pem.clone();
        async move { InvoiceServiceClient::new(channel(addr, &ca_pem, Some(&id)).await.unwrap()) }
    };
    let bare = |body: pb::CreateInvoiceRequest| tonic::Request::new(body);
    let create = pb::CreateInvoiceRequest {
        invoice: Some(invoice("RE-CERT-1")),
        ..Default::default()
    };
    let get = pb::GetInvoiceRequest {
        invoice_number: "RE-CERT-1".into(),
        ..Default::default()
    };

    // acme's certificate alone creates and reads acme's invoice.
    let mut acme = client(acme_cert.clone()).await;
    let created = acme
        .create_invoice(bare(create.clone()))
        .await
        .expect("the certificate authenticates alone")
        .into_inner();
    assert!(created.created);
    let got = acme
        .get_invoice(tonic::Request::new(get.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.invoice.unwrap().invoice_number, "RE-CERT-1");
    // Asking for another tenant is refused; beta's certificate does not see acme's invoice.
    let err = acme
        .get_invoice(tonic::Request::new(pb::GetInvoiceRequest {
            tenant: "beta".into(),
            ..get.clone()
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let mut beta = client(beta_cert).await;
    let err = beta
        .get_invoice(tonic::Request::new(get.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    // With an API key: the key must be bound to the certificate's tenant too.
    let err = acme
        .get_invoice(authed(&beta_key, get.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    acme.get_invoice(authed(&acme_key, get.clone()))
        .await
        .expect("acme's key with acme's certificate");
    // A certificate of the client CA that is not listed: the API key decides, as before.
    let mut other = client(unlisted).await;
    let err = other
        .get_invoice(tonic::Request::new(get.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    other
        .get_invoice(authed(&acme_key, get.clone()))
        .await
        .expect("an unlisted certificate with a key");

    // The case file names the certificate as the actor.
    let log = mahnwerk_eventlog::EventLog::connect(&url).await.unwrap();
    let stream = format!("acme/case/{}", created.invoice.unwrap().case_id)
        .parse()
        .unwrap();
    let first = log.read_stream(&stream, 1, 1).await.unwrap().remove(0);
    let fp: String = acme_fp.replace(':', "").to_ascii_lowercase();
    assert_eq!(first.metadata.actor, format!("cert:{}", &fp[..16]));
    server.stop().await;

    // A mapping that does not parse stops `serve` at start, naming the file and the line.
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, format!("{acme_fp} acme\nnot-a-fingerprint acme\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
        .args(["serve", "--database-url", &url, "--listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "off", "--services", "ingest"])
        .arg("--tls-cert")
        .arg(dir.path().join("server.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("server.key"))
        .arg("--tls-client-ca")
        .arg(dir.path().join("client-ca.pem"))
        .arg("--tls-client-tenants")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");
}
