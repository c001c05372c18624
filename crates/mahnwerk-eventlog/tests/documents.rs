//! Documents sealed with the event log's keyring (ADR 006). Its own test binary: the keyring a
//! log opens with is registered for the whole process (`mahnwerk_docstore::set_keys`), so no
//! other test may open a log with another key meanwhile.

use mahnwerk_eventlog::privacy::MasterKey;
use mahnwerk_eventlog::{
    AppendBatch, EventLog, ExpectedVersion, Limits, Metadata, NewEvent, StreamId, event_id_now,
};
use serde_json::json;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn issued(number: &str, customer: Option<&str>, name: &str) -> NewEvent {
    NewEvent {
        event_id: event_id_now(),
        event_type: "invoice.issued.v1".into(),
        payload: json!({"invoice": {"number": number, "gross": 11900, "debtor": {
            "name": name, "kind": "consumer", "language": "de", "customer_number": customer,
            "email": format!("{}@example.org", name.to_lowercase()), "vat_id": null,
            "address": {"street": ["Geheimweg 1"], "postal_code": "12345", "city": "Berlin", "country": "DE"}
        }}}),
        occurred_at: chrono::Utc::now(),
        metadata: Metadata {
            actor: "test".into(),
            ..Default::default()
        },
    }
}

fn batch(stream: &str, e: NewEvent) -> AppendBatch {
    AppendBatch {
        stream: stream.parse::<StreamId>().unwrap(),
        expected: ExpectedVersion::Any,
        events: vec![e],
    }
}

/// Documents sealed with the keyring (ADR 006): a log opened with a master key makes every
/// document store of the process seal a debtor's document under the debtor's data key (the
/// object on disk holds no clear byte of it, its key stays the document's hash), opens it while
/// the key exists, and refuses it once the debtor is erased. `read_stream_stored` gives the
/// payloads as hashed (sealed), so they verify against their hashes outside the log.
#[tokio::test]
async fn documents_are_sealed_with_the_debtors_key_and_stored_reads_keep_the_hash() {
    use mahnwerk_docstore::{DocumentStore, FsDocuments, Owner, sha256_hex};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("d.db").display());
    let log = EventLog::connect_with_key(
        &url,
        Limits::default(),
        Some(MasterKey::from_hex(KEY).unwrap()),
    )
    .await
    .unwrap();
    let stream = "acme/case/0193a0b4-0000-7000-8000-00000000d0c5";
    log.append(batch(stream, issued("RE-DOC", Some("K-9"), "Quirinius")))
        .await
        .unwrap();
    let store = FsDocuments::new(dir.path().join("documents"));
    let owner = Owner {
        tenant: "acme".into(),
        subject: mahnwerk_eventlog::privacy::Keyring::debtor_subject(Some("K-9"), stream),
    };
    let doc = b"<Invoice><Buyer>Quirinius Geheimweg 1</Buyer></Invoice>".to_vec();
    let sha = store
        .put_owned(&owner, bytes::Bytes::from(doc.clone()))
        .await
        .unwrap();
    assert_eq!(sha, sha256_hex(&doc));
    let object = store.read_object(&sha).await.unwrap().unwrap();
    assert!(object.starts_with(b"MWSEALED1\n"));
    assert!(!object.windows(9).any(|w| w == b"Quirinius"));
    assert_eq!(store.get(&sha).await.unwrap().unwrap(), doc);

    let stream_id: StreamId = stream.parse().unwrap();
    let stored = log.read_stream_stored(&stream_id, 1, 10).await.unwrap();
    assert!(stored[0].payload["invoice"]["debtor"]["sealed"].is_object());
    assert!(!stored[0].payload.to_string().contains("Quirinius"));
    let opened = log.read_stream(&stream_id, 1, 10).await.unwrap();
    assert_eq!(opened[0].hash, stored[0].hash);
    assert_eq!(opened[0].payload["invoice"]["debtor"]["name"], "Quirinius");

    let keyring = log.keyring().unwrap();
    assert!(keyring.erase("acme", &owner.subject).await.unwrap());
    assert!(matches!(
        store.get(&sha).await,
        Err(mahnwerk_docstore::Error::Erased { .. })
    ));
    assert!(matches!(
        store
            .put_owned(&owner, bytes::Bytes::from_static(b"more"))
            .await,
        Err(mahnwerk_docstore::Error::Erased { .. })
    ));
    // The event's chain still verifies; its hash is over the sealed form.
    let report = log.verify().await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}
