//! Erasing a debtor's personal data (GDPR Art. 17, ADR 006): `mahnwerk debtor erase` and
//! `CaseService.EraseDebtor`.
//!
//! The personal parts of every event, projection row and document are sealed under data keys
//! (`mahnwerk_eventlog::privacy`). Erasing a debtor destroys the keys of every subject that
//! names them: the customer number, each of their cases (found by customer number in the
//! invoice projection, or named by invoice number), and each IBAN they paid from. Then it
//! records the erasure, without personal data: `debtor.erased.v1` on its own stream and
//! `case.debtor_erased.v1` on each case, on which dunning stops (`dunning.cancelled.v1`). Amounts,
//! dates and hash chains stay (bookkeeping retention, § 147 AO / § 257 HGB); `verify` passes.

use mahnwerk_domain::{CaseId, InvoiceNumber, StreamId, TenantId};
use mahnwerk_eventlog::privacy::Keyring;
use mahnwerk_eventlog::{
    AppendBatch, Error as LogError, EventLog, ExpectedVersion, Metadata, NewEvent, derived_event_id,
};
use sqlx::AnyPool;

/// Who to erase.
#[derive(Debug, Clone, Default)]
pub struct EraseRequest {
    pub tenant: String,
    /// The tenant's customer number of the debtor (all their cases).
    pub customer_number: Option<String>,
    /// Invoices of the debtor (cases without a customer number).
    pub invoice_numbers: Vec<String>,
    /// IBANs the debtor paid from (bank entries and the matching projection).
    pub ibans: Vec<String>,
    /// Why (the data subject's request, its reference): recorded, so no personal data.
    pub reason: String,
    /// Recorded as the erasure's actor (`apikey:…`, `cli:…`).
    pub actor: String,
}

/// What [`erase_debtor`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    /// Data keys destroyed now (0 on a repeated erasure).
    pub keys_erased: usize,
    /// Case ids the erasure was recorded on.
    pub cases: Vec<String>,
    /// The `debtor.erased.v1` stream.
    pub stream: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// A field of the request is wrong (name, reason).
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// No master key: personal data is stored in clear and cannot be erased by destroying keys.
    #[error(
        "no master key configured (MAHNWERK_MASTER_KEY or MAHNWERK_MASTER_KEY_FILE): personal data is not sealed, so it cannot be erased"
    )]
    NoMasterKey,
    #[error("event log: {0}")]
    Log(#[from] LogError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ErasureError {
    ErasureError::Invalid {
        field,
        reason: reason.into(),
    }
}

const ERASURE_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d61_686e_7765_726b_e4a5_0000_6764_7072);

/// Erase a debtor. Idempotent: the same request again destroys nothing more and records nothing
/// new (the events have ids derived from the subjects).
pub async fn erase_debtor(
    log: &EventLog,
    pool: &AnyPool,
    req: &EraseRequest,
) -> Result<Erased, ErasureError> {
    let keyring: &Keyring = log.keyring().ok_or(ErasureError::NoMasterKey)?;
    let tenant: TenantId = req
        .tenant
        .parse()
        .map_err(|_| invalid("tenant", "not a valid tenant id"))?;
    let customer = req
        .customer_number
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    if customer.is_none() && req.invoice_numbers.is_empty() && req.ibans.is_empty() {
        return Err(invalid(
            "customer_number",
            "name the debtor: a customer number, invoice numbers or IBANs",
        ));
    }
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        return Err(invalid(
            "reason",
            "required, at most 500 characters, no control characters",
        ));
    }
    let mut cases: Vec<CaseId> = Vec::new();
    if let Some(c) = customer {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT case_id FROM ingest_invoices WHERE tenant = $1 AND customer_number = $2",
        )
        .bind(tenant.to_string())
        .bind(c.to_owned())
        .fetch_all(pool)
        .await?;
        for (id,) in rows {
            if let Ok(id) = id.parse() {
                cases.push(id);
            }
        }
    }
    for (i, n) in req.invoice_numbers.iter().enumerate() {
        let number: InvoiceNumber = n.parse().map_err(|_| {
            invalid(
                "invoice_numbers",
                format!("[{i}] is not a valid invoice number"),
            )
        })?;
        cases.push(CaseId::for_invoice(&tenant, &number));
    }
    cases.sort();
    cases.dedup();

    let mut subjects: Vec<String> = Vec::new();
    if let Some(c) = customer {
        subjects.push(Keyring::debtor_subject(Some(c), ""));
    }
    for case in &cases {
        subjects.push(Keyring::debtor_subject(None, case.stream(&tenant).as_str()));
    }
    for (i, iban) in req.ibans.iter().enumerate() {
        if iban.trim().is_empty() {
            return Err(invalid("ibans", format!("[{i}] is empty")));
        }
        subjects.push(keyring.iban_subject(iban));
    }
    subjects.sort();
    subjects.dedup();

    let mut keys_erased = 0;
    for s in &subjects {
        if keyring.erase(tenant.as_str(), s).await? {
            keys_erased += 1;
        }
    }

    // Record it, without personal data (subject ids of customers name the customer number,
    // which the tenant keeps for bookkeeping; IBAN subjects are HMACs).
    let key = uuid::Uuid::new_v5(&ERASURE_NAMESPACE, subjects.join("\u{1f}").as_bytes());
    let stream = StreamId::new(&tenant, "erasure", &key.to_string());
    let source = mahnwerk_domain::EventId(key);
    let metadata = Metadata {
        actor: req.actor.clone(),
        causation_id: Some(format!("erasure:{key}")),
        ..Default::default()
    };
    let now = chrono::Utc::now();
    let case_ids: Vec<String> = cases.iter().map(|c| c.0.to_string()).collect();
    let mut batches = vec![AppendBatch {
        stream: stream.clone(),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            event_id: derived_event_id(source, "erasure", 0),
            event_type: "debtor.erased.v1".into(),
            payload: serde_json::json!({
                "subjects": subjects.len(),
                "cases": case_ids,
                "ibans": req.ibans.len(),
                "reason": reason,
                "erased_on": now.date_naive(),
            }),
            occurred_at: now,
            metadata: metadata.clone(),
        }],
    }];
    for (i, case) in cases.iter().enumerate() {
        batches.push(AppendBatch {
            stream: case.stream(&tenant),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent {
                event_id: derived_event_id(
                    source,
                    "erasure.case",
                    u32::try_from(i + 1).unwrap_or(u32::MAX),
                ),
                event_type: "case.debtor_erased.v1".into(),
                payload: serde_json::json!({
                    "erasure": stream.to_string(),
                    "erased_on": now.date_naive(),
                }),
                occurred_at: now,
                metadata: metadata.clone(),
            }],
        });
    }
    for outcome in log.append_many(batches).await? {
        match outcome {
            Ok(_) | Err(LogError::DuplicateEvent(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(tenant = %tenant, subjects = subjects.len(), keys_erased, cases = cases.len(), "debtor erased");
    Ok(Erased {
        keys_erased,
        cases: cases.iter().map(|c| c.0.to_string()).collect(),
        stream: stream.to_string(),
    })
}
