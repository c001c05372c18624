//! Conversions at the gRPC edge: request metadata, results and transactions.

use super::*;

pub(super) fn request_metadata<T>(req: &Request<T>, caller: &Caller) -> Metadata {
    let header = |name: &str| {
        req.metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("x-request-id").unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    Metadata {
        correlation_id: Some(header("x-correlation-id").unwrap_or_else(|| request_id.clone())),
        causation_id: Some(format!("request:{request_id}")),
        actor: caller.actor(),
        traceparent: header("traceparent"),
    }
}

pub(super) fn money_pb(m: Money) -> pb::Money {
    pb::Money {
        minor: m.minor,
        currency: m.currency.to_string(),
    }
}

pub(super) fn result_pb(p: &Processed) -> pb::EntryResult {
    let d = &p.decision;
    pb::EntryResult {
        entry_id: p.entry_id.clone(),
        decision: d.outcome.as_str().to_owned(),
        allocations: d
            .allocations
            .iter()
            .map(|a| pb::Allocation {
                case_id: a.case_id.clone(),
                amount: Some(money_pb(a.amount)),
                open_after: Some(money_pb(a.open_after)),
            })
            .collect(),
        rule: d.rule.as_str().to_owned(),
        confidence: u32::from(d.confidence),
        reason: d.reason.clone(),
        duplicate: p.duplicate,
        overpaid: d.overpayment.map(money_pb),
    }
}

pub(super) fn date(field: &str, s: &str, required: bool) -> Result<Option<chrono::NaiveDate>> {
    if s.is_empty() {
        return if required {
            Err(Error::invalid(field, "required (YYYY-MM-DD)"))
        } else {
            Ok(None)
        };
    }
    s.parse()
        .map(Some)
        .map_err(|_| Error::invalid(field, "must be a date YYYY-MM-DD"))
}

pub(super) fn some(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// A transaction from the API as a statement entry (so both share one identity).
pub(super) fn transaction_entry(i: usize, t: &pb::Transaction) -> Result<Incoming> {
    let f = |name: &str| format!("transactions[{i}].{name}");
    if t.bank_reference.trim().is_empty() || t.bank_reference.len() > 140 {
        return Err(Error::invalid(
            f("bank_reference"),
            "1 to 140 characters required",
        ));
    }
    if t.account.trim().is_empty() || t.account.len() > 64 {
        return Err(Error::invalid(f("account"), "1 to 64 characters required"));
    }
    let m = t
        .amount
        .as_ref()
        .ok_or_else(|| Error::invalid(f("amount"), "required"))?;
    let currency: Currency = m
        .currency
        .parse()
        .map_err(|_| Error::invalid(f("amount.currency"), "not an ISO 4217 code"))?;
    if m.minor == 0 {
        return Err(Error::invalid(f("amount.minor"), "must not be zero"));
    }
    if t.remittance.chars().count() > 1000 {
        return Err(Error::invalid(f("remittance"), "at most 1000 characters"));
    }
    let mut e = Entry::new(Money::new(m.minor, currency), 0);
    e.booking_date = date(&f("booking_date"), &t.booking_date, true)?;
    e.value_date = date(&f("value_date"), &t.value_date, false)?;
    e.bank_reference = some(&t.bank_reference);
    e.end_to_end_id = some(&t.end_to_end_id);
    e.counterparty.name = some(&t.counterparty_name);
    e.counterparty.iban = some(&t.counterparty_iban);
    e.remittance = some(&t.remittance);
    e.structured_references = t.references.iter().filter_map(|r| some(r)).collect();
    e.reversal = t.reversal;
    e.return_reason = some(&t.return_reason);
    if t.pending {
        e.status = Some("PDNG".into());
    }
    let id = entry_id(t.account.trim(), &e);
    let mut be = bank_entry(id, &e);
    be.ultimate_debtor = some(&t.ultimate_debtor);
    let fingerprint = {
        let v = serde_json::json!([
            t.bank_reference,
            t.account,
            m.minor,
            m.currency,
            t.booking_date,
            t.value_date,
            t.counterparty_name,
            t.counterparty_iban,
            t.remittance,
            t.references,
            t.end_to_end_id,
            t.reversal,
            t.return_reason,
            t.ultimate_debtor,
            t.pending
        ]);
        hex::encode(Sha256::digest(v.to_string().as_bytes()))
    };
    Ok(Incoming {
        entry: be,
        charges: None,
        bank_reference: e.bank_reference.clone(),
        source: "api",
        fingerprint: Some(fingerprint),
        end_to_end_id: e.end_to_end_id.clone(),
    })
}
