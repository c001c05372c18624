//! The document store against the filesystem and a real S3-compatible server (moto in server
//! mode, started by the test).

mod common;

use bytes::Bytes;
use mahnwerk_letters_service::documents::{DocumentStore, FsDocuments, S3Documents, sha256_hex};

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
    let moto = mahnwerk_docstore::testing::moto(&common::workspace_root(), "letters").await;
    let store = S3Documents::new(&moto.config).expect("s3 store");
    exercise(&store).await;
}
