//! The case page: the case file from the log as a timeline in words, the claim broken down,
//! what happens next (`ExplainCase`), the letters' PDFs, and the actions, each one the owning
//! service's RPC called with the signed-in user's key and a request id per form.

use crate::i18n::Lang;
use crate::pages::{column_heads, layout};
use crate::projection;
use crate::session::{Session, random_token};
use crate::web::{self, Shared, WebError, WebResult, authed, html};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect};
use mahnwerk_proto::v1 as pb;
use maud::{Markup, html as m};
use serde_json::Value;
use std::collections::HashMap;

fn money(lang: Lang, v: &Value) -> String {
    let minor = v.get("minor").and_then(Value::as_i64).unwrap_or(0);
    let cur = v.get("currency").and_then(Value::as_str).unwrap_or("EUR");
    lang.money(minor, cur)
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// One event of the case file in words.
pub fn describe(lang: Lang, ty: &str, p: &Value) -> String {
    let base = ty.rsplit_once('.').map_or(ty, |(t, _)| t);
    let de = lang == Lang::De;
    match base {
        "invoice.issued" => {
            let inv = &p["invoice"];
            let gross = inv["gross"].as_i64().unwrap_or(0);
            let cur = text(inv, "currency");
            if de {
                format!(
                    "Rechnung {} über {} gestellt, fällig am {}",
                    text(inv, "number"),
                    lang.money(gross, cur),
                    text(inv, "due_date")
                )
            } else {
                format!(
                    "Invoice {} issued for {}, due {}",
                    text(inv, "number"),
                    lang.money(gross, cur),
                    text(inv, "due_date")
                )
            }
        }
        "invoice.cancelled" => format!(
            "{}: {}",
            lang.t("Storniert", "Cancelled"),
            text(p, "reason")
        ),
        "invoice.credited" => format!(
            "{} {} ({})",
            lang.t("Gutschrift", "Credit note"),
            text(p, "credit_note_number"),
            money(lang, &p["amount"])
        ),
        "invoice.disputed" => format!(
            "{}: {}",
            lang.t("Bestritten", "Disputed"),
            text(p, "reason")
        ),
        "dispute.resolved" => format!(
            "{}: {} {}",
            lang.t("Einwand erledigt", "Dispute resolved"),
            text(p, "outcome"),
            text(p, "note")
        ),
        "due_date.extended" => format!(
            "{} {} → {}",
            lang.t("Fälligkeit verschoben", "Due date extended"),
            text(p, "previous_due_date"),
            text(p, "new_due_date")
        ),
        "payment.applied" => {
            if de {
                format!(
                    "Zahlung {} am {} verbucht (Kontoauszug-Eintrag {}, Regel {}), offen danach {}",
                    money(lang, &p["amount"]),
                    text(p, "booked_on"),
                    text(p, "entry_id"),
                    text(p, "rule"),
                    money(lang, &p["open_after"])
                )
            } else {
                format!(
                    "Payment {} booked {} (statement entry {}, rule {}), open after {}",
                    money(lang, &p["amount"]),
                    text(p, "booked_on"),
                    text(p, "entry_id"),
                    text(p, "rule"),
                    money(lang, &p["open_after"])
                )
            }
        }
        "payment.reversed" => format!(
            "{} {}: {}",
            lang.t("Zahlung zurückgebucht", "Payment reversed"),
            money(lang, &p["amount"]),
            text(p, "reason")
        ),
        "overpayment.recorded" => format!(
            "{} {}",
            lang.t("Überzahlung", "Overpayment"),
            money(lang, &p["amount"])
        ),
        "invoice.settled" => format!(
            "{} {}",
            lang.t("Ausgeglichen am", "Settled on"),
            text(p, "settled_on")
        ),
        "dunning.case_opened" => lang
            .t("Mahnverfahren eröffnet", "Dunning opened")
            .to_owned(),
        "dunning.step_reached" if p["repeat"].is_object() => format!(
            "{} {} „{}“ {} {} ({})",
            lang.t("Stufe", "Step"),
            p["number"],
            text(p, "title"),
            lang.t("erneut versandt am", "sent again on"),
            text(p, "date"),
            text(&p["repeat"], "reason")
        ),
        "dunning.step_reached" => {
            if de {
                format!(
                    "Stufe {} „{}“ erreicht am {}, Gebühr {}, Frist bis {}",
                    p["number"],
                    text(p, "title"),
                    text(p, "date"),
                    money(lang, &p["fee"]),
                    text(&p["deadline"], "deadline")
                )
            } else {
                format!(
                    "Step {} \"{}\" reached on {}, fee {}, pay by {}",
                    p["number"],
                    text(p, "title"),
                    text(p, "date"),
                    money(lang, &p["fee"]),
                    text(&p["deadline"], "deadline")
                )
            }
        }
        "dunning.escalated" => format!(
            "{} {}",
            lang.t("Zur Übergabe an Inkasso am", "Escalated for hand-over on"),
            text(p, "escalated_on")
        ),
        "dunning.paused" => {
            let pause = &p["pause"];
            match text(pause, "kind") {
                "promise_to_pay" => format!(
                    "{} {} {} {}",
                    lang.t("Zahlungszusage:", "Promise to pay:"),
                    money(lang, &pause["amount"]),
                    lang.t("bis", "by"),
                    text(pause, "until")
                ),
                "payment_plan" => format!(
                    "{} ({} {})",
                    lang.t("Ratenplan vereinbart", "Payment plan agreed"),
                    pause["instalments"].as_array().map_or(0, Vec::len),
                    lang.t("Raten", "instalments")
                ),
                "hold" => format!(
                    "{}: {}",
                    lang.t("Mahnung pausiert", "Dunning paused"),
                    text(pause, "reason")
                ),
                "settlement" => format!(
                    "{} {} {} {}",
                    lang.t("Vergleich:", "Settlement:"),
                    money(lang, &pause["amount"]),
                    lang.t("bis", "by"),
                    text(pause, "pay_by")
                ),
                kind => format!("{} ({kind})", lang.t("Mahnung pausiert", "Dunning paused")),
            }
        }
        "dunning.resumed" => format!(
            "{} ({}, {})",
            lang.t("Mahnung fortgesetzt", "Dunning resumed"),
            p["pause"].as_str().unwrap_or(""),
            text(&p["why"], "reason")
        ),
        "dunning.written_off" => lang.t("Ausgebucht", "Written off").to_owned(),
        "dunning.step_skipped" => format!(
            "{} {} „{}“ {}: {}",
            lang.t("Stufe", "Step"),
            p["skipped_step"],
            text(p, "title"),
            lang.t("übersprungen", "skipped"),
            text(p, "reason")
        ),
        "dunning.offered" => format!(
            "{} „{}“ ({})",
            lang.t(
                "Mahnung angeboten, wartet auf Freigabe:",
                "Dunning offered, awaiting approval:"
            ),
            text(p, "first_step"),
            money(lang, &p["balance"])
        ),
        "dunning.approved" => lang.t("Mahnung freigegeben", "Dunning approved").to_owned(),
        "dunning.declined" => lang
            .t(
                "Mahnung abgelehnt: der Gläubiger mahnt selbst (Entwürfe)",
                "Dunning declined: the creditor sends the letters itself (drafts)",
            )
            .to_owned(),
        "dunning.settled" => lang
            .t("Mahnverfahren: ausgeglichen", "Dunning: settled")
            .to_owned(),
        "letter.rendered" => format!(
            "{} {} ({})",
            lang.t("Schreiben erstellt, Stufe", "Letter rendered, step"),
            p["step"],
            text(p, "kind")
        ),
        "letter.dispatched" => format!(
            "{} {} {} {}",
            lang.t("Schreiben versandt, Stufe", "Letter sent, step"),
            p["step"],
            lang.t("per", "by"),
            text(p, "channel")
        ),
        "letter.failed" => format!(
            "{} ({}): {}",
            lang.t("Versand fehlgeschlagen", "Sending failed"),
            text(p, "channel"),
            text(p, "reason")
        ),
        "letter.copy_sent" => lang
            .t("Kopie an den Gläubiger", "Copy sent to the creditor")
            .to_owned(),
        "letter.suppressed" => format!(
            "{}: {}",
            lang.t("Schreiben unterdrückt", "Letter suppressed"),
            text(p, "reason")
        ),
        "letter.resend_requested" => format!(
            "{} {}",
            lang.t(
                "Erneuter Versand angefordert, Stufe",
                "Resend requested, step"
            ),
            p["step"]
        ),
        "collection.approval_requested" => format!(
            "{} {}",
            lang.t(
                "Übergabe wartet auf Freigabe:",
                "Hand-over awaiting approval:"
            ),
            text(p, "partner_id")
        ),
        "collection.held" => format!(
            "{}: {}",
            lang.t("Übergabe angehalten", "Hand-over held"),
            text(p, "reason")
        ),
        "case.handed_over" => format!(
            "{} {} ({})",
            lang.t("An Inkasso übergeben:", "Handed over to"),
            text(p, "partner_id"),
            text(p, "handed_over_on")
        ),
        "collection.status_reported" => format!(
            "{} {}: {}",
            lang.t("Bericht von", "Report from"),
            text(p, "partner_id"),
            text(&p["report"], "kind")
        ),
        "collection.recalled" => format!(
            "{}: {}",
            lang.t("Zurückgerufen", "Recalled"),
            text(p, "reason")
        ),
        "case.closed" => format!(
            "{}: {}",
            lang.t("Fall abgeschlossen", "Case closed"),
            text(p, "outcome")
        ),
        _ => ty.to_owned(),
    }
}

fn claim(lang: Lang, step: Option<&Value>) -> Markup {
    let Some(p) = step else {
        return m! { p { (lang.t("Noch keine Mahnstufe: nur die Hauptforderung.", "No dunning step yet: the principal only.")) } };
    };
    let periods = p["interest"]["periods"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    m! {
        dl.claim {
            dt { (lang.t("Hauptforderung offen", "Principal open")) } dd { (money(lang, &p["principal_open"])) }
            dt { (lang.t("Mahngebühr", "Fee")) } dd { (money(lang, &p["fee"])) }
            dt { (lang.t("Pauschale (§ 288 Abs. 5 BGB)", "Lump sum (§ 288 (5) BGB)")) } dd { (money(lang, &p["lump_sum"])) }
            dt { (lang.t("Zinsen", "Interest")) } dd { (money(lang, &p["interest_charged"])) }
            dt { (lang.t("Gesamt", "Balance")) } dd { (money(lang, &p["balance"])) }
        }
        @if !periods.is_empty() {
            div.scroll { table {
                caption { (lang.t("Zinsperioden", "Interest periods")) }
                (column_heads(&[lang.t("von", "from"), lang.t("bis", "to"), lang.t("Tage", "days"), lang.t("Satz % p.a.", "rate % p.a."), lang.t("Zinsen", "interest")]))
                tbody { @for r in &periods { tr {
                    td { (text(r, "from")) } td { (text(r, "to")) } td.num { (r["days"]) }
                    td.num { (r["rate"].as_str().map_or_else(|| r["rate"].to_string(), str::to_owned)) }
                    td.num { (lang.money(r["interest"].as_i64().unwrap_or(0), p["interest"]["currency"].as_str().unwrap_or("EUR"))) }
                } } }
            } }
        }
    }
}

fn action_form(s: &Session, case_id: &str, action: &str, label: &str, fields: Markup) -> Markup {
    m! {
        form.action method="post" action=(format!("/cases/{case_id}/actions")) data-action=(action) {
            input type="hidden" name="csrf" value=(s.csrf);
            input type="hidden" name="request_id" value=(random_token()[..32].to_owned());
            input type="hidden" name="action" value=(action);
            (fields)
            button type="submit" { (label) }
        }
    }
}

pub async fn case(
    State(app): State<Shared>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
) -> WebResult {
    let s = web::session(&app, &headers)?;
    let lang = web::lang(&headers);
    // Tenant scope first: a case id of another tenant is not found, whatever the services say.
    let view = web::own_case(&app, &s, &case_id).await?;
    let mut cases = pb::case_service_client::CaseServiceClient::new(app.channel.clone());
    let file = cases
        .get_case_file(authed(
            &s,
            pb::GetCaseFileRequest {
                tenant: s.tenant.clone(),
                case_id: case_id.clone(),
                invoice_number: String::new(),
            },
        ))
        .await?
        .into_inner();
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(app.channel.clone());
    let explain = dunning
        .explain_case(authed(
            &s,
            pb::ExplainCaseRequest {
                tenant: s.tenant.clone(),
                case_id: case_id.clone(),
            },
        ))
        .await
        .ok()
        .map(tonic::Response::into_inner);
    let events: Vec<(pb::CaseEvent, Value)> = file
        .events
        .into_iter()
        .map(|e| {
            let v = serde_json::from_str(&e.payload_json).unwrap_or(Value::Null);
            (e, v)
        })
        .collect();
    let last_step = events
        .iter()
        .rev()
        .find(|(e, _)| e.r#type.starts_with("dunning.step_reached."))
        .map(|(_, p)| p);
    let today = app.clock.today();
    let title = format!("{} {}", lang.t("Rechnung", "Invoice"), view.invoice_number);
    let cid = case_id.as_str();
    Ok(html(layout(
        lang,
        Some(&s),
        &title,
        m! {
            section.card aria-labelledby="summary" {
                h2 #summary { (view.debtor_name) }
                dl.claim {
                    dt { (lang.t("Stadium", "Stage")) } dd #stage { (lang.stage(view.stage_on(today), view.step, &view.step_title)) @if view.paused { " · " (lang.t("pausiert", "paused")) } }
                    dt { (lang.t("Betrag", "Amount")) } dd { (lang.money(view.gross_minor, &view.currency)) }
                    dt { (lang.t("Offen", "Open")) } dd { (lang.money(view.open_minor, &view.currency)) }
                    dt { (lang.t("Fällig", "Due")) } dd { (lang.date(view.due_date)) }
                    dt { (lang.t("Bezahlt", "Paid")) } dd { (lang.money(view.paid_minor, &view.currency)) }
                }
            }
            section aria-labelledby="next" {
                h2 #next { (lang.t("Was als Nächstes geschieht", "What happens next")) }
                @match &explain {
                    Some(x) => {
                        p #next-action { @if x.next_action.is_empty() { (lang.t("Nichts geplant.", "Nothing scheduled.")) } @else { (x.next_action) " · " (x.next_action_on) } }
                        @for p in &x.pauses { p { (lang.t("Pause", "Pause")) ": " (p) } }
                    }
                    None => { p { "–" } }
                }
            }
            section aria-labelledby="claim" {
                h2 #claim { (lang.t("Forderung", "Claim")) }
                (claim(lang, last_step))
            }
            section aria-labelledby="timeline" {
                h2 #timeline { (lang.t("Verlauf", "Timeline")) }
                ol.timeline {
                    @for (e, p) in &events {
                        li data-type=(e.r#type) {
                            time datetime=(e.occurred_at) { (e.occurred_at.get(..10).unwrap_or("")) }
                            " " span.what { (describe(lang, &e.r#type, p)) }
                            @if let Some(sha) = p.get("document_sha256").and_then(Value::as_str).filter(|_| e.r#type.starts_with("letter.dispatched") || e.r#type.starts_with("letter.rendered")) {
                                " " a.pdf href=(format!("/cases/{cid}/documents/{sha}")) target="_blank" rel="noopener" { "PDF" }
                            }
                            " " small.actor { (e.metadata.as_ref().map(|m| m.actor.as_str()).unwrap_or("")) }
                        }
                    }
                }
            }
            section aria-labelledby="actions" {
                h2 #actions { (lang.t("Eingreifen", "Intervene")) }
                div.actions {
                    @if view.held() {
                        (action_form(&s, cid, "resume", lang.t("Mahnung fortsetzen", "Resume dunning"), m! {}))
                    } @else {
                        (action_form(&s, cid, "pause", lang.t("Mahnung pausieren", "Pause dunning"), m! {
                            label { (lang.t("Grund", "Reason")) input type="text" name="reason" required; }
                            label { (lang.t("bis (optional)", "until (optional)")) input type="date" name="until"; }
                        }))
                    }
                    (action_form(&s, cid, "promise", lang.t("Zahlungszusage erfassen", "Record promise to pay"), m! {
                        label { (lang.t("zahlt bis", "pays by")) input type="date" name="until" required; }
                        label { (lang.t("Betrag", "Amount")) input type="text" inputmode="decimal" name="amount" required; }
                    }))
                    (action_form(&s, cid, "plan", lang.t("Ratenplan vereinbaren", "Agree payment plan"), m! {
                        label { (lang.t("Raten (JJJJ-MM-TT=Betrag; …)", "Instalments (YYYY-MM-DD=amount; …)")) input type="text" name="instalments" required; }
                    }))
                    @if view.disputed {
                        (action_form(&s, cid, "resolve", lang.t("Einwand erledigen", "Resolve dispute"), m! {
                            label { (lang.t("Ergebnis", "Outcome")) select name="outcome" { option value="rejected" { (lang.t("Forderung besteht", "claim stands")) } option value="upheld" { (lang.t("Kunde hat recht", "debtor is right")) } } }
                            label { (lang.t("Notiz", "Note")) input type="text" name="note"; }
                        }))
                    } @else {
                        (action_form(&s, cid, "dispute", lang.t("Einwand erfassen", "Record dispute"), m! {
                            label { (lang.t("Grund", "Reason")) input type="text" name="reason" required; }
                        }))
                    }
                    (action_form(&s, cid, "approve", lang.t("Übergabe freigeben", "Approve hand-over"), m! {}))
                    (action_form(&s, cid, "hold", lang.t("Übergabe anhalten", "Hold hand-over"), m! {
                        label { (lang.t("Grund", "Reason")) input type="text" name="reason" required; }
                    }))
                    (action_form(&s, cid, "resend", lang.t("Schreiben erneut senden", "Resend letter"), m! {
                        label { (lang.t("Stufe", "Step")) input type="number" name="step" min="1" value=(view.step.max(1)) required; }
                    }))
                    (action_form(&s, cid, "write_off", lang.t("Ausbuchen", "Write off"), m! {
                        label { (lang.t("Grund", "Reason")) input type="text" name="reason" required; }
                    }))
                }
            }
        },
    )))
}

fn money_pb(minor: i64, currency: &str) -> Option<pb::Money> {
    Some(pb::Money {
        minor,
        currency: currency.to_owned(),
    })
}

pub async fn action(
    State(app): State<Shared>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = web::session_checked(&app, &headers, &form)?;
    // Another tenant's case id: 404 before any service is called, nothing changes.
    let view = web::own_case(&app, &s, &case_id).await?;
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let request_id = get("request_id");
    if request_id.is_empty() {
        return Err(WebError::Bad(
            "request_id: missing (reload the page)".into(),
        ));
    }
    let tenant = s.tenant.clone();
    let ch = app.channel.clone();
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(ch.clone());
    let mut invoices = pb::invoice_service_client::InvoiceServiceClient::new(ch.clone());
    let mut collection = pb::collection_service_client::CollectionServiceClient::new(ch.clone());
    let mut letters = pb::letter_service_client::LetterServiceClient::new(ch);
    let note = |reason: String| pb::CaseNoteRequest {
        tenant: tenant.clone(),
        request_id: request_id.clone(),
        case_id: case_id.clone(),
        reason,
    };
    match get("action").as_str() {
        "pause" => {
            dunning
                .pause_case(authed(
                    &s,
                    pb::PauseCaseRequest {
                        tenant: tenant.clone(),
                        request_id: request_id.clone(),
                        case_id: case_id.clone(),
                        reason: get("reason"),
                        until: get("until"),
                    },
                ))
                .await?;
        }
        "resume" => {
            dunning
                .resume_case(authed(
                    &s,
                    pb::ResumeCaseRequest {
                        tenant: tenant.clone(),
                        request_id: request_id.clone(),
                        case_id: case_id.clone(),
                    },
                ))
                .await?;
        }
        "promise" => {
            let minor = projection::parse_amount("amount", &get("amount"))
                .map_err(WebError::Bad)?
                .ok_or_else(|| WebError::Bad("amount: required".into()))?;
            dunning
                .record_promise_to_pay(authed(
                    &s,
                    pb::RecordPromiseToPayRequest {
                        tenant: tenant.clone(),
                        request_id: request_id.clone(),
                        case_id: case_id.clone(),
                        until: get("until"),
                        amount: money_pb(minor, &view.currency),
                    },
                ))
                .await?;
        }
        "plan" => {
            let mut instalments = Vec::new();
            for part in get("instalments")
                .split(';')
                .filter(|p| !p.trim().is_empty())
            {
                let (date, amount) = part.split_once('=').ok_or_else(|| {
                    WebError::Bad(format!("instalments: {part:?} is not YYYY-MM-DD=amount"))
                })?;
                let minor = projection::parse_amount("instalments", amount)
                    .map_err(WebError::Bad)?
                    .unwrap_or(0);
                instalments.push(pb::Instalment {
                    date: date.trim().to_owned(),
                    amount: money_pb(minor, &view.currency),
                });
            }
            dunning
                .agree_payment_plan(authed(
                    &s,
                    pb::AgreePaymentPlanRequest {
                        tenant: tenant.clone(),
                        request_id: request_id.clone(),
                        case_id: case_id.clone(),
                        instalments,
                    },
                ))
                .await?;
        }
        "write_off" => {
            dunning
                .write_off(authed(
                    &s,
                    pb::WriteOffRequest {
                        tenant: tenant.clone(),
                        request_id: request_id.clone(),
                        case_id: case_id.clone(),
                        reason: get("reason"),
                    },
                ))
                .await?;
        }
        "dispute" => {
            invoices
                .dispute_invoice(authed(
                    &s,
                    pb::DisputeInvoiceRequest {
                        tenant: tenant.clone(),
                        invoice_number: view.invoice_number.clone(),
                        reason: get("reason"),
                        request_id: request_id.clone(),
                    },
                ))
                .await?;
        }
        "resolve" => {
            let outcome = match get("outcome").as_str() {
                "upheld" => pb::DisputeOutcome::Upheld,
                "rejected" => pb::DisputeOutcome::Rejected,
                o => {
                    return Err(WebError::Bad(format!(
                        "outcome: {o:?} is not upheld or rejected"
                    )));
                }
            };
            invoices
                .resolve_dispute(authed(
                    &s,
                    pb::ResolveDisputeRequest {
                        tenant: tenant.clone(),
                        invoice_number: view.invoice_number.clone(),
                        outcome: outcome as i32,
                        note: get("note"),
                        request_id: request_id.clone(),
                    },
                ))
                .await?;
        }
        "approve" => {
            collection
                .approve_handover(authed(
                    &s,
                    pb::ApproveHandoverRequest {
                        tenant: tenant.clone(),
                        request_id: request_id.clone(),
                        case_id: case_id.clone(),
                        partner_id: String::new(),
                    },
                ))
                .await?;
        }
        "hold" => {
            collection
                .hold_handover(authed(&s, note(get("reason"))))
                .await?;
        }
        "resend" => {
            let step = get("step")
                .parse::<u32>()
                .map_err(|_| WebError::Bad("step: not a step number".into()))?;
            letters
                .resend(authed(
                    &s,
                    pb::ResendRequest {
                        tenant: tenant.clone(),
                        case_id: case_id.clone(),
                        step,
                        channel: String::new(),
                        request_id: request_id.clone(),
                        note: "console".into(),
                    },
                ))
                .await?;
        }
        other => return Err(WebError::Bad(format!("action: unknown action {other:?}"))),
    }
    tracing::info!(actor = %s.actor(), case_id = %case_id, action = %get("action"), "console action");
    Ok(Redirect::to(&format!("/cases/{case_id}#timeline")).into_response())
}

/// A letter PDF of the case, from the document store through LetterService (which answers only
/// for documents of the caller's tenant).
pub async fn document(
    State(app): State<Shared>,
    Path((case_id, sha)): Path<(String, String)>,
    headers: HeaderMap,
) -> WebResult {
    let s = web::session(&app, &headers)?;
    web::own_case(&app, &s, &case_id).await?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WebError::NotFound);
    }
    let mut letters = pb::letter_service_client::LetterServiceClient::new(app.channel.clone());
    let doc = letters
        .get_document(authed(
            &s,
            pb::GetDocumentRequest {
                tenant: s.tenant.clone(),
                sha256: sha.clone(),
            },
        ))
        .await?
        .into_inner();
    let mut resp = doc.content.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pdf"),
    );
    if let Ok(v) = format!("inline; filename=\"{}.pdf\"", &sha[..12]).parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
