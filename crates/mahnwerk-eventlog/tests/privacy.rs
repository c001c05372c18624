//! Sealed personal data (ADR 006) on both backends: the stored payload carries only ciphertext,
//! readers with the key get the clear object back, an erasure turns every copy into
//! placeholders while the hash chains verify, an erased debtor cannot be written to, and a
//! batch of an erased debtor does not take the other batches of a group commit with it.

use mahnwerk_eventlog::privacy::MasterKey;
use mahnwerk_eventlog::{
    AppendBatch, Error, EventLog, ExpectedVersion, Limits, Metadata, NewEvent, StreamId,
    event_id_now,
};
use serde_json::json;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

async fn urls(dir: &tempfile::TempDir) -> Vec<String> {
    let mut urls = vec![format!(
        "sqlite:{}?mode=rwc",
        dir.path().join("log.db").display()
    )];
    if let Ok(admin) = std::env::var("DATABASE_URL") {
        let name = format!("mw_priv_{}", &uuid_hex()[..12]);
        let pool = sqlx::PgPool::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&pool)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        urls.push(format!("{base}/{name}"));
    }
    urls
}

fn uuid_hex() -> String {
    event_id_now()
        .0
        .simple()
        .to_string()
        .chars()
        .rev()
        .collect()
}

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

#[tokio::test]
async fn sealed_on_append_opened_on_read_erased_by_key() {
    let dir = tempfile::tempdir().unwrap();
    for url in urls(&dir).await {
        let master = MasterKey::from_hex(KEY).unwrap();
        let log = EventLog::connect_with_key(&url, Limits::default(), Some(master))
            .await
            .unwrap();
        let results = log
            .append_many(vec![
                batch("acme/case/a", issued("RE-1", Some("K-1"), "Quirinius")),
                batch("acme/case/b", issued("RE-2", None, "Waltraud")),
            ])
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");

        // Stored: ciphertext only; kind, language and customer number in clear.
        let raw = log.read_all_raw(0, 10).await.unwrap();
        for e in &raw {
            let text = e.payload.as_str();
            assert!(
                !text.contains("Quirinius") && !text.contains("Waltraud"),
                "{text}"
            );
            assert!(
                !text.contains("example.org") && !text.contains("Geheimweg"),
                "{text}"
            );
            assert!(text.contains("\"sealed\"") && text.contains("\"kind\":\"consumer\""));
        }
        assert!(raw[0].payload.as_str().contains("customer:K-1"));
        assert!(raw[1].payload.as_str().contains("stream:acme/case/b"));

        // Read: clear again.
        let all = log.read_all(0, 10).await.unwrap();
        assert_eq!(all[0].payload["invoice"]["debtor"]["name"], "Quirinius");
        assert_eq!(
            all[1].payload["invoice"]["debtor"]["address"]["city"],
            "Berlin"
        );
        assert!(all[0].payload["invoice"]["debtor"].get("sealed").is_none());

        // Another process with another master key cannot open the data keys.
        let wrong = MasterKey::from_hex(&KEY.replace('0', "1")).unwrap();
        let other = EventLog::connect_with_key(&url, Limits::default(), Some(wrong))
            .await
            .unwrap();
        assert!(other.read_all(0, 10).await.is_err());
        drop(other);

        // Erase K-1: placeholders, the other debtor untouched, verify passes.
        let keyring = log.keyring().unwrap();
        assert!(keyring.erase("acme", "customer:K-1").await.unwrap());
        assert!(!keyring.erase("acme", "customer:K-1").await.unwrap());
        let all = log.read_all(0, 10).await.unwrap();
        let d = &all[0].payload["invoice"]["debtor"];
        assert_eq!(d["name"], "[erased]");
        assert_eq!(d["erased"], true);
        assert_eq!(d["email"], serde_json::Value::Null);
        assert_eq!(all[0].payload["invoice"]["gross"], 11900);
        assert_eq!(all[1].payload["invoice"]["debtor"]["name"], "Waltraud");
        let report = log.verify().await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.events, 2);

        // An erased debtor cannot be written to; the other batch of the commit still lands.
        let results = log
            .append_many(vec![
                batch("acme/case/c", issued("RE-3", Some("K-1"), "Quirinius")),
                batch("acme/case/d", issued("RE-4", Some("K-2"), "Ottokar")),
            ])
            .await
            .unwrap();
        assert!(
            matches!(&results[0], Err(Error::Erased { subject }) if subject == "customer:K-1"),
            "{results:?}"
        );
        assert!(results[1].is_ok(), "{results:?}");
        assert_eq!(log.head_position().await.unwrap(), 3);
    }
}

#[tokio::test]
async fn payer_ibans_are_subjects_by_hmac_and_a_bad_master_key_is_refused() {
    assert!(MasterKey::from_hex("abc").is_err());
    assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("p.db").display());
    let log = EventLog::connect_with_key(
        &url,
        Limits::default(),
        Some(MasterKey::from_hex(KEY).unwrap()),
    )
    .await
    .unwrap();
    let payload = json!({"entry_id": "e-1", "amount": {"minor": 500, "currency": "EUR"},
        "payer": {"name": "Hildegard", "iban": "DE02 1203 0000 0000 2020 51", "references": ["RF1"],
                  "remittance": "Rechnung", "ultimate_debtor": null, "end_to_end_id": "E2E"}});
    let e = NewEvent {
        event_id: event_id_now(),
        event_type: "bank_transaction.received.v1".into(),
        payload,
        occurred_at: chrono::Utc::now(),
        metadata: Metadata::default(),
    };
    log.append(batch("acme/statement/e-1", e)).await.unwrap();
    let raw = log.read_all_raw(0, 1).await.unwrap().remove(0);
    let text = raw.payload.as_str();
    assert!(!text.contains("Hildegard") && !text.contains("DE02") && !text.contains("2020"));
    let keyring = log.keyring().unwrap();
    let subject = keyring.iban_subject("de02120300000000202051");
    assert_eq!(subject, keyring.iban_subject("DE02 1203 0000 0000 2020 51"));
    assert!(text.contains(&subject), "{text}");
    assert!(!subject.contains("DE02"));
    let read = log.read_all(0, 1).await.unwrap().remove(0);
    assert_eq!(read.payload["payer"]["iban"], "DE02 1203 0000 0000 2020 51");
    keyring.erase("acme", &subject).await.unwrap();
    let read = log.read_all(0, 1).await.unwrap().remove(0);
    assert_eq!(read.payload["payer"]["name"], serde_json::Value::Null);
    assert_eq!(read.payload["payer"]["references"], json!([]));
    assert_eq!(read.payload["amount"]["minor"], 500);
}
