//! The demo's timeline (pure): one readable line per case event, and when a case has nothing
//! left in flight.

use mahnwerk_proto::v1 as pb;
use serde_json::Value;

/// `11900, "EUR"` → `119.00 EUR`.
pub fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02} {currency}", m / 100, m % 100)
}

fn m(v: &Value) -> String {
    money(
        v["minor"].as_i64().unwrap_or_default(),
        v["currency"].as_str().unwrap_or("EUR"),
    )
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

/// What a case event means, in a line; `None` for bookkeeping nobody needs to read.
pub fn describe(event_type: &str, payload_json: &str) -> Option<String> {
    let p: Value = serde_json::from_str(payload_json).unwrap_or(Value::Null);
    Some(match event_type {
        "invoice.issued.v1" => format!(
            "invoice recorded{}: {} due {}",
            match &p["invoice"]["source"] {
                Value::Null => String::new(),
                src => format!(
                    " from an e-invoice ({} {}, file sha256 {}…)",
                    s(&src["syntax"]).to_uppercase(),
                    if src["specification"]
                        .as_str()
                        .is_some_and(|x| x.contains("xrechnung"))
                    {
                        "XRechnung"
                    } else {
                        "EN 16931"
                    },
                    s(&src["sha256"]).chars().take(12).collect::<String>()
                ),
            },
            money(
                p["invoice"]["gross"].as_i64().unwrap_or_default(),
                p["invoice"]["currency"].as_str().unwrap_or("EUR")
            ),
            s(&p["invoice"]["due_date"])
        ),
        "dunning.case_opened.v1" => format!(
            "dunning follows it under policy {} v{}",
            s(&p["policy"]["id"]),
            p["policy"]["version"]
        ),
        "dunning.step_reached.v1" => format!(
            "step {} \"{}\" on {}: fee {}, balance {}, pay by {}",
            p["number"],
            s(&p["title"]),
            s(&p["date"]),
            m(&p["fee"]),
            m(&p["balance"]),
            s(&p["deadline"]["deadline"])
        ),
        "letter.rendered.v1" => format!(
            "letter {} rendered (PDF sha256 {}…)",
            s(&p["kind"]),
            &s(&p["document_sha256"])
                .chars()
                .take(12)
                .collect::<String>()
        ),
        "letter.dispatched.v1" => format!("letter sent to the debtor by {}", s(&p["channel"])),
        "letter.failed.v1" => format!(
            "letter to the {} by {} failed: {}{}",
            s(&p["recipient"]),
            s(&p["channel"]),
            s(&p["reason"]),
            p["fallback"]
                .as_str()
                .map(|f| format!(", falls back to {f}"))
                .unwrap_or_default()
        ),
        "letter.copy_sent.v1" => format!("copy to the creditor by {}", s(&p["channel"])),
        "letter.suppressed.v1" => format!("no letter for step {}: {}", p["step"], s(&p["reason"])),
        "payment.applied.v1" => format!(
            "payment of {} applied (matched by {}), open {}",
            m(&p["amount"]),
            s(&p["rule"]),
            m(&p["open_after"])
        ),
        "invoice.settled.v1" => "invoice paid in full".into(),
        "invoice.disputed.v1" => format!("disputed: {}", s(&p["reason"])),
        "dunning.paused.v1" => format!("dunning paused ({})", s(&p["pause"]["kind"])),
        "dunning.resumed.v1" => "dunning resumed".into(),
        "dunning.settled.v1" => "dunning ends: settled".into(),
        "dunning.escalated.v1" => format!(
            "escalated to collection: principal open {}, balance {}",
            m(&p["principal_open"]),
            m(&p["balance"])
        ),
        "case.handed_over.v1" => format!(
            "handed over to collection partner {} with the complete case file",
            s(&p["partner_id"])
        ),
        "collection.status_reported.v1" => {
            let r = &p["report"];
            match r["kind"].as_str() {
                Some("payment_collected") => format!(
                    "partner reports a payment: principal {}, costs {}",
                    m(&r["principal"]),
                    m(&r["costs"])
                ),
                Some(k) => format!("partner reports: {k}"),
                None => "partner report".into(),
            }
        }
        "case.closed.v1" => format!("case closed: {}", s(&p["outcome"])),
        "dunning.payment_recorded.v1" | "dunning.credit_recorded.v1" => return None,
        other => other.to_owned(),
    })
}

fn payloads<'a>(events: &'a [pb::CaseEvent], t: &'a str) -> impl Iterator<Item = Value> + 'a {
    events
        .iter()
        .filter(move |e| e.r#type == t)
        .map(|e| serde_json::from_str(&e.payload_json).unwrap_or(Value::Null))
}

/// Nothing of the case is still under way: every step reached has its letter's outcome (sent,
/// suppressed, or failed with no fallback left), every letter sent has its copy's outcome, and
/// an escalated business case (the demo partner takes those) has been handed over.
pub fn case_settled(events: &[pb::CaseEvent], business: bool) -> bool {
    let has = |t: &str, step: &Value, recipient: Option<&str>| {
        payloads(events, t).any(|p| {
            &p["step"] == step
                && recipient.is_none_or(|r| p["recipient"] == r)
                && (t != "letter.failed.v1" || p["fallback"].is_null())
        })
    };
    let letters_done = payloads(events, "dunning.step_reached.v1").all(|p| {
        let n = &p["number"];
        has("letter.dispatched.v1", n, None)
            || has("letter.suppressed.v1", n, None)
            || has("letter.failed.v1", n, Some("debtor"))
    });
    let copies_done = payloads(events, "letter.dispatched.v1").all(|p| {
        let n = &p["step"];
        has("letter.copy_sent.v1", n, None) || has("letter.failed.v1", n, Some("creditor"))
    });
    let escalated = events.iter().any(|e| e.r#type == "dunning.escalated.v1");
    let handed = events.iter().any(|e| e.r#type == "case.handed_over.v1");
    letters_done && copies_done && (!escalated || !business || handed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: &str, p: Value) -> pb::CaseEvent {
        pb::CaseEvent {
            r#type: t.into(),
            payload_json: p.to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn a_step_is_settled_once_its_letter_and_copy_have_outcomes() {
        let step = ev("dunning.step_reached.v1", serde_json::json!({"number": 1}));
        let fallback = ev(
            "letter.failed.v1",
            serde_json::json!({"step": 1, "recipient": "debtor", "fallback": "post"}),
        );
        let sent = ev("letter.dispatched.v1", serde_json::json!({"step": 1}));
        let copy = ev("letter.copy_sent.v1", serde_json::json!({"step": 1}));
        assert!(!case_settled(std::slice::from_ref(&step), false));
        assert!(!case_settled(&[step.clone(), fallback.clone()], false));
        assert!(!case_settled(
            &[step.clone(), fallback.clone(), sent.clone()],
            false
        ));
        assert!(case_settled(&[step.clone(), fallback, sent, copy], false));
        let escalated = ev("dunning.escalated.v1", serde_json::json!({}));
        assert!(case_settled(std::slice::from_ref(&escalated), false));
        assert!(!case_settled(std::slice::from_ref(&escalated), true));
        assert!(case_settled(
            &[escalated, ev("case.handed_over.v1", serde_json::json!({}))],
            true
        ));
    }

    #[test]
    fn an_invoice_from_an_e_invoice_says_so() {
        let plain = serde_json::json!({"invoice": {"gross": 11900, "currency": "EUR", "due_date": "2026-10-01"}});
        assert_eq!(
            describe("invoice.issued.v1", &plain.to_string()).unwrap(),
            "invoice recorded: 119.00 EUR due 2026-10-01"
        );
        let mut from_file = plain.clone();
        from_file["invoice"]["source"] = serde_json::json!({
            "syntax": "ubl",
            "specification": "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
            "sha256": "0123456789abcdef",
        });
        assert_eq!(
            describe("invoice.issued.v1", &from_file.to_string()).unwrap(),
            "invoice recorded from an e-invoice (UBL XRechnung, file sha256 0123456789ab…): 119.00 EUR due 2026-10-01"
        );
    }

    #[test]
    fn money_reads_like_an_amount() {
        assert_eq!(money(11900, "EUR"), "119.00 EUR");
        assert_eq!(money(-5, "EUR"), "-0.05 EUR");
    }
}
