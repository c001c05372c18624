//! The document store against the filesystem and a real S3-compatible server (moto in server
//! mode, started by the test).

mod common;

use bytes::Bytes;
use mahnwerk_letters_service::documents::{
    DocumentStore, FsDocuments, S3Config, S3Documents, sha256_hex,
};

async fn exercise(store: &dyn DocumentStore) {
    let a = Bytes::from_static(b"%PDF-1.7 letter one");
    let sha = store.put(a.clone()).await.expect("put");
    assert_eq!(sha, sha256_hex(&a));
    assert_eq!(
        store.put(a.clone()).await.expect("put again"),
        sha,
        "same bytes, same key"
    );
    assert_eq!(store.get(&sha).await.expect("get"), Some(a));
    let other = sha256_hex(b"never stored");
    assert_eq!(store.get(&other).await.expect("get missing"), None);
    let err = store.get("../../etc/passwd").await.expect_err("not a hash");
    assert!(err.to_string().contains("sha256"), "{err}");
}

#[tokio::test]
async fn filesystem_store_is_content_addressed_and_verifies_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FsDocuments::new(dir.path().join("documents"));
    exercise(&store).await;
    // A tampered object is an error, never a wrong letter.
    let b = Bytes::from_static(b"%PDF tamper me");
    let sha = store.put(b).await.expect("put");
    let path = dir
        .path()
        .join("documents")
        .join(&sha[..2])
        .join(format!("{sha}.pdf"));
    std::fs::write(&path, b"%PDF swapped").expect("overwrite");
    assert!(store.get(&sha).await.is_err());
}

#[tokio::test]
async fn s3_store_against_moto_server() {
    let port = common::free_port();
    let port_s = port.to_string();
    let _moto = common::start_python(
        "moto server (pip install 'moto[server]')",
        &["-m", "moto.server", "-H", "127.0.0.1", "-p", &port_s],
        port,
    )
    .await;
    // Create the bucket (moto accepts an unsigned path-style PUT).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let req = format!(
            "PUT /letters HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.expect("write");
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.expect("read");
        assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
    }
    let store = S3Documents::new(&S3Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        bucket: "letters".into(),
        region: "eu-central-1".into(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
        prefix: "documents/".into(),
    })
    .expect("s3 store");
    exercise(&store).await;
}
