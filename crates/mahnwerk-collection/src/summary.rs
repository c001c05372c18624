//! The one-page summary of a case export (`summary.pdf`): the invoice, the claim, the history
//! of the case and its hash-chain head, for a person or a court who opens the archive first.
//! [`data`] is pure (the case stream in, the layout data out); [`render`] lays it out with the
//! letters' typst engine (`mahnwerk_letters::document`, `assets/case_summary.typ`). The archive
//! itself stays the evidence: the summary is a file of it like any other, checked by its hash.

use crate::engine::Claim;
use chrono::NaiveDate;
use mahnwerk_eventlog::RecordedEvent;
use mahnwerk_letters::document::{DocumentEngine, Rendered};
use serde_json::{Value, json};

/// The typst layout of the summary.
pub const LAYOUT: &str = include_str!("../assets/case_summary.typ");

/// Most history lines on the page; earlier ones are counted, not shown.
pub const MAX_HISTORY: usize = 24;

/// `1.234,56 EUR` from minor units (two fraction digits; the currencies the cases use).
pub fn amount(minor: i64, currency: &str) -> String {
    let abs = minor.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(c);
    }
    let sign = if minor < 0 { "-" } else { "" };
    format!("{sign}{grouped},{:02} {currency}", abs % 100)
}

fn money(v: &Value) -> Option<String> {
    Some(amount(
        v.get("minor")?.as_i64()?,
        v.get("currency")?.as_str()?,
    ))
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// One history line of an event, if it is one a reader needs.
fn line(e: &RecordedEvent) -> Option<(String, String)> {
    let p = &e.payload;
    let day = |keys: &[&str]| {
        keys.iter()
            .map(|k| s(p, k))
            .find(|d| !d.is_empty())
            .map_or_else(|| e.occurred_at.date_naive().to_string(), str::to_owned)
    };
    let m = |k: &str| p.get(k).and_then(money).unwrap_or_default();
    let text = match e.event_type.as_str() {
        "invoice.issued.v1" => format!(
            "Rechnung {} über {} gestellt",
            s(p, "/invoice/number"),
            p.pointer("/invoice/gross")
                .and_then(Value::as_i64)
                .map(|g| amount(g, s(p, "/invoice/currency")))
                .unwrap_or_default()
        ),
        "payment.applied.v1" => format!(
            "Zahlung {} zugeordnet ({}), offen danach {}",
            m("amount"),
            s(p, "/rule"),
            m("open_after")
        ),
        "payment.reversed.v1" => format!(
            "Zahlung {} zurückgebucht ({}), offen danach {}",
            m("amount"),
            s(p, "/reason"),
            m("open_after")
        ),
        "invoice.settled.v1" => "Rechnung ausgeglichen".to_owned(),
        "invoice.cancelled.v1" => "Rechnung storniert".to_owned(),
        "invoice.credited.v1" => format!("Gutschrift {}", m("amount")),
        "dunning.step_reached.v1" => format!(
            "Mahnstufe {}: {}",
            p.get("number").and_then(Value::as_u64).unwrap_or(0),
            s(p, "/title")
        ),
        "dunning.escalated.v1" => "Mahnverfahren ausgeschöpft, zur Abgabe bereit".to_owned(),
        "dunning.paused.v1" => format!("Mahnungen pausiert ({})", s(p, "/pause/kind")),
        "dunning.resumed.v1" => "Mahnungen fortgesetzt".to_owned(),
        "letter.rendered.v1" => format!(
            "Schreiben {} (Stufe {}) erstellt, SHA-256 {}…",
            s(p, "/kind"),
            p.get("step").and_then(Value::as_u64).unwrap_or(0),
            s(p, "/document_sha256").get(..12).unwrap_or("")
        ),
        "letter.dispatched.v1" => format!("Schreiben versandt ({})", s(p, "/channel")),
        "case.handed_over.v1" => format!(
            "An Inkassopartner {} übergeben, offen {}",
            s(p, "/partner/name"),
            m("principal_open")
        ),
        "collection.status_reported.v1" => format!(
            "Bericht des Partners: {}{}",
            s(p, "/report/kind"),
            p.pointer("/report/principal")
                .and_then(money)
                .map(|x| format!(", Hauptforderung {x}"))
                .unwrap_or_default()
        ),
        "collection.recalled.v1" => format!("Vom Partner zurückgerufen: {}", s(p, "/reason")),
        "collection.costs_waived.v1" => "Inkassokosten erlassen".to_owned(),
        "case.closed.v1" => format!("Fall geschlossen: {}", s(p, "/outcome")),
        _ => return None,
    };
    let date = day(&[
        "/booked_on",
        "/reversed_on",
        "/date",
        "/escalated_on",
        "/handed_over_on",
        "/closed_on",
        "/invoice/issue_date",
    ]);
    Some((date, text))
}

/// The layout data of the summary of `events` (one case stream, in order). `claim` is the
/// claim on `today` when the case has a dunning state; `status` its collection phase.
pub fn data(
    events: &[RecordedEvent],
    claim: Option<&Claim>,
    status: &str,
    today: NaiveDate,
) -> Value {
    let issued = events
        .iter()
        .find(|e| e.event_type == "invoice.issued.v1")
        .map(|e| &e.payload);
    let inv = |k: &str| issued.map_or("", |p| s(p, &format!("/invoice/{k}")));
    let creditor = events
        .first()
        .map_or_else(String::new, |e| e.tenant.to_string());
    let stream = events
        .first()
        .map_or_else(String::new, |e| e.stream.to_string());
    let gross = issued
        .and_then(|p| p.pointer("/invoice/gross"))
        .and_then(Value::as_i64)
        .map(|g| amount(g, inv("currency")))
        .unwrap_or_default();
    let invoice = json!([
        ["Nummer", inv("number")],
        ["Rechnungsdatum", inv("issue_date")],
        ["Fällig", inv("due_date")],
        ["Betrag", gross],
        ["Schuldner", inv("debtor/name")],
        ["Stand", status],
    ]);
    let claim_rows: Vec<Value> = match claim {
        Some(c) => {
            let cur = c.currency.to_string();
            let a = |m: mahnwerk_domain::Money| amount(m.minor, &cur);
            vec![
                json!(["Hauptforderung", a(c.principal)]),
                json!(["Gutschriften", a(c.credited)]),
                json!(["Zahlungen", a(c.paid)]),
                json!(["Hauptforderung offen", a(c.principal_open)]),
                json!(["Mahngebühren", a(c.dunning_fees)]),
                json!(["Pauschale § 288 Abs. 5 BGB", a(c.lump_sum)]),
                json!([format!("Zinsen bis {}", c.interest_to), a(c.interest_open)]),
                json!(["Gesamt offen", a(c.total_open)]),
            ]
        }
        None => vec![json!(["Gesamt", gross])],
    };
    let lines: Vec<(String, String)> = events.iter().filter_map(line).collect();
    let omitted = lines.len().saturating_sub(MAX_HISTORY);
    let history: Vec<Value> = lines[omitted..]
        .iter()
        .map(|(d, t)| json!([d, t]))
        .collect();
    let head = events.last().map_or("", |e| e.hash.as_str());
    json!({
        "title": format!("Fallakte {}", inv("number")),
        "subtitle": format!("Gläubiger {creditor} · Stream {stream} · erstellt am {today}"),
        "creditor": creditor,
        "invoice": invoice,
        "claim": claim_rows,
        "history": history,
        "omitted": if omitted > 0 {
            format!("{omitted} frühere Einträge nicht gezeigt (alle in case.json)")
        } else {
            String::new()
        },
        "chain": [
            ["Ereignisse", events.len().to_string()],
            ["Letzter Hash", head],
            ["Prüfen", "mahnwerk verify --archive DATEI (ohne Datenbank)"],
        ],
        "footer": format!("Zusammenfassung der Fallakte {stream}; maßgeblich sind case.json und die Dokumente des Archivs."),
    })
}

/// Lay the summary out: a one-page PDF/A-2b dated `today`.
pub fn render(
    engine: &DocumentEngine,
    events: &[RecordedEvent],
    claim: Option<&Claim>,
    status: &str,
    today: NaiveDate,
) -> Result<Rendered, String> {
    let data = data(events, claim, status, today);
    let creditor = data["creditor"].as_str().unwrap_or_default().to_owned();
    engine
        .render(&data, today, &creditor)
        .map_err(|e| format!("summary: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped_with_two_fraction_digits() {
        assert_eq!(amount(0, "EUR"), "0,00 EUR");
        assert_eq!(amount(11900, "EUR"), "119,00 EUR");
        assert_eq!(amount(123_456_789, "EUR"), "1.234.567,89 EUR");
        assert_eq!(amount(-5, "EUR"), "-0,05 EUR");
    }
}
