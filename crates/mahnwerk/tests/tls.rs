//! gRPC over TLS and mutual TLS by configuration (MAHNWERK_TLS_CERT / _KEY / _CLIENT_CA), with
//! certificates this test generates (rcgen): a client with a certificate of the client CA and
//! an API key is served; without a client certificate, or over plain HTTP/2, it is not.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use pb::invoice_service_client::InvoiceServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
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
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("m.db").display());
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
