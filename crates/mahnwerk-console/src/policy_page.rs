//! The policy page: the tenant's policies (versions, steps) from DunningService, and a draft
//! tried with `PreviewPolicy` over the open cases before it is saved with `PutPolicy` (a new
//! version; idempotent by content, so a resubmitted save stores nothing twice).

use crate::i18n::Lang;
use crate::pages::{column_heads, layout};
use crate::projection;
use crate::session::Session;
use crate::web::{self, Shared, WebError, WebResult, authed, html};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use mahnwerk_proto::v1 as pb;
use maud::{Markup, html as m};
use serde_json::Value;
use std::collections::HashMap;

/// Lines of a preview shown on the page (the totals cover all).
const PREVIEW_LINES: usize = 200;

#[derive(Debug, Default, serde::Deserialize)]
pub struct Which {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub saved: Option<u32>,
}

fn money(lang: Lang, v: &Value) -> String {
    lang.money(
        v.get("minor").and_then(Value::as_i64).unwrap_or(0),
        v.get("currency").and_then(Value::as_str).unwrap_or("EUR"),
    )
}

fn money_pb(lang: Lang, m: Option<&pb::Money>) -> String {
    m.map_or_else(|| "–".into(), |m| lang.money(m.minor, &m.currency))
}

/// The steps of a policy (JSON) as a table, with what follows the last step.
pub fn steps_markup(lang: Lang, policy: &Value) -> Markup {
    let steps = policy["steps"].as_array().cloned().unwrap_or_default();
    let after = &policy["after_last"];
    m! {
        div.scroll { table #steps {
            caption { (lang.t("Stufen", "Steps")) }
            (column_heads(&["#", lang.t("Titel", "Title"), lang.t("Tage nach", "Days after"), lang.t("Ton", "Tone"), lang.t("Vorlage", "Template"), lang.t("Gebühr", "Fee"), lang.t("Zinsen", "Interest"), lang.t("Zahlungsfrist (Tage)", "Pay within (days)"), lang.t("Kanäle", "Channels")]))
            tbody { @for (i, st) in steps.iter().enumerate() { tr {
                td.num { (i + 1) }
                td { (st["title"].as_str().unwrap_or("")) }
                td { (st["offset"]["days"]) " · " (match st["offset"]["after"].as_str() {
                    Some("due_date") => lang.t("Fälligkeit", "due date"),
                    Some("previous_step") => lang.t("vorige Stufe", "previous step"),
                    _ => "",
                }) }
                td { (st["tone"].as_str().unwrap_or("")) }
                td { (st["template_id"].as_str().unwrap_or("")) }
                td.num { (money(lang, &st["fee"])) }
                td { @if st["charge_interest"].as_bool().unwrap_or(false) { (lang.t("ja", "yes")) } @else { (lang.t("nein", "no")) } }
                td.num { (st["payment_deadline_days"]) }
                td { (st["channels"].as_array().map(|c| c.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
            } } }
        } }
        p #after-last {
            (lang.t("Nach der letzten Stufe", "After the last step")) ": "
            @match after["action"].as_str() {
                Some("collection") => { (lang.t("Übergabe an Inkasso nach", "hand-over to collection after")) " " (after["after_days"]) " " (lang.t("Tagen", "days")) }
                _ => { (lang.t("Mahnung endet", "dunning stops")) }
            }
            " · " (lang.t("Freigabe", "Approval")) ": "
            @match policy["approval"].as_str() {
                Some("creditor") => { (lang.t("durch den Gläubiger", "by the creditor")) }
                _ => { (lang.t("automatisch", "automatic")) }
            }
        }
    }
}

/// What the page shows besides the list.
#[derive(Default)]
struct View {
    selected: Option<pb::GetPolicyResponse>,
    draft: String,
    until: String,
    preview: Option<pb::PreviewPolicyResponse>,
    error: Option<String>,
    saved: Option<u32>,
}

async fn render(app: &Shared, s: &Session, lang: Lang, status: StatusCode, v: View) -> WebResult {
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(app.channel.clone());
    let list = dunning
        .list_policies(authed(
            s,
            pb::ListPoliciesRequest {
                tenant: s.tenant.clone(),
            },
        ))
        .await?
        .into_inner()
        .policies;
    let selected_json: Value = v
        .selected
        .as_ref()
        .and_then(|p| serde_json::from_str(&p.policy_json).ok())
        .unwrap_or(Value::Null);
    // Case ids of the preview's lines as invoice numbers.
    let mut numbers: HashMap<String, String> = HashMap::new();
    let report: Value = v
        .preview
        .as_ref()
        .and_then(|p| serde_json::from_str(&p.report_json).ok())
        .unwrap_or(Value::Null);
    let lines = report["lines"].as_array().cloned().unwrap_or_default();
    for l in lines.iter().take(PREVIEW_LINES) {
        let id = l["case_id"].as_str().unwrap_or("").to_owned();
        if !numbers.contains_key(&id)
            && let Some(view) = projection::case(&app.pool, &s.tenant, &id).await?
        {
            numbers.insert(id, view.invoice_number);
        }
    }
    let body = m! {
        @if let Some(e) = &v.error { p.error role="alert" #policy-error { (e) } }
        @if let Some(ver) = v.saved { p role="status" #policy-saved { (lang.t("Gespeichert als Version", "Saved as version")) " " (ver) } }
        section aria-labelledby="policies-h" {
            h2 #policies-h { (lang.t("Mahnregeln des Mandanten", "The tenant's policies")) }
            div.scroll { table #policies {
                (column_heads(&[lang.t("Regel", "Policy"), lang.t("Name", "Name"), lang.t("aktuelle Version", "current version"), lang.t("Versionen", "versions")]))
                tbody { @for p in &list { tr data-policy=(p.policy_id) {
                    td { a href=(format!("/policies?id={}", form_urlencoded::byte_serialize(p.policy_id.as_bytes()).collect::<String>())) { (p.policy_id) } }
                    td { (p.name) @if p.builtin { " (" (lang.t("eingebaut", "built-in")) ")" } }
                    td.num { (p.current_version) }
                    td { @for (i, ver) in p.versions.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(format!("/policies?id={}&version={ver}", form_urlencoded::byte_serialize(p.policy_id.as_bytes()).collect::<String>())) { (ver) }
                    } }
                } } }
            } }
        }
        @if let Some(p) = &v.selected {
            section aria-labelledby="selected-h" {
                h2 #selected-h { (p.policy_id) " · " (lang.t("Version", "version")) " " (p.version) }
                (steps_markup(lang, &selected_json))
            }
        }
        section aria-labelledby="draft-h" {
            h2 #draft-h { (lang.t("Entwurf ausprobieren und speichern", "Try a draft and save it")) }
            form.draft method="post" action="/policies/preview" {
                input type="hidden" name="csrf" value=(s.csrf);
                label for="policy_json" { (lang.t("Regel als JSON (die id benennt die Regel)", "Policy as JSON (its id names the policy)")) }
                textarea #policy_json name="policy_json" rows="20" spellcheck="false" required { (v.draft) }
                label for="until" { (lang.t("Vorschau bis", "Preview until")) }
                input #until type="date" name="until" value=(v.until) required;
                div.buttons {
                    button type="submit" name="op" value="preview" { (lang.t("Vorschau über die offenen Fälle", "Preview over the open cases")) }
                    " "
                    button type="submit" name="op" value="save" formaction="/policies/save" { (lang.t("Als neue Version speichern", "Save as a new version")) }
                }
            }
        }
        @if let Some(pr) = &v.preview {
            section aria-labelledby="preview-h" #preview {
                h2 #preview-h { (lang.t("Was der Entwurf senden würde", "What the draft would send")) " (" (lang.t("bis", "until")) " " (v.until) ")" }
                dl.claim {
                    dt { (lang.t("Offene Fälle", "Open cases")) } dd #preview-cases { (pr.cases) }
                    dt { (lang.t("Schreiben (Stufen)", "Letters (steps)")) } dd #preview-steps { (pr.steps) }
                    dt { (lang.t("Übergaben an Inkasso", "Hand-overs")) } dd #preview-escalations { (pr.escalations) }
                    dt { (lang.t("Gebühren", "Fees")) } dd #preview-fees { (money_pb(lang, pr.fees.as_ref())) }
                    dt { (lang.t("Pauschalen", "Lump sums")) } dd { (money_pb(lang, pr.lump_sums.as_ref())) }
                    dt { (lang.t("Zinsen", "Interest")) } dd { (money_pb(lang, pr.interest.as_ref())) }
                }
                div.scroll { table #preview-lines {
                    (column_heads(&[lang.t("Datum", "Date"), lang.t("Rechnung", "Invoice"), lang.t("Ereignis", "Event"), lang.t("Gebühr", "Fee"), lang.t("Saldo", "Balance")]))
                    tbody { @for l in lines.iter().take(PREVIEW_LINES) { tr {
                        td { (l["date"].as_str().unwrap_or("")) }
                        td { @let id = l["case_id"].as_str().unwrap_or(""); a href=(format!("/cases/{id}")) { (numbers.get(id).map_or(id, String::as_str)) } }
                        td { @if let Some(t) = l["title"].as_str() { (lang.t("Stufe", "Step")) " " (l["step"]) " „" (t) "“" } @else { (l["event_type"].as_str().unwrap_or("")) } }
                        td.num { (money(lang, &l["fee"])) }
                        td.num { (money(lang, &l["balance"])) }
                    } } }
                } }
                @if lines.len() > PREVIEW_LINES { p { (lines.len() - PREVIEW_LINES) " " (lang.t("weitere Zeilen", "more lines")) } }
            }
        }
    };
    Ok((
        status,
        html(layout(lang, Some(s), lang.t("Mahnregeln", "Policy"), body)),
    )
        .into_response())
}

fn pretty(json: &str) -> String {
    serde_json::from_str::<Value>(json)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| json.to_owned())
}

fn default_until(app: &Shared) -> String {
    (app.clock.today() + chrono::Duration::days(90)).to_string()
}

/// GET /policies: the list, the chosen (else the first) policy with its steps, its JSON as
/// the draft.
pub async fn page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(w): Query<Which>,
) -> WebResult {
    let s = web::session(&app, &headers)?;
    let lang = web::lang(&headers);
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(app.channel.clone());
    let id = if w.id.is_empty() {
        dunning
            .list_policies(authed(
                &s,
                pb::ListPoliciesRequest {
                    tenant: s.tenant.clone(),
                },
            ))
            .await?
            .into_inner()
            .policies
            .first()
            .map(|p| p.policy_id.clone())
            .unwrap_or_default()
    } else {
        w.id.clone()
    };
    let selected = if id.is_empty() {
        None
    } else {
        Some(
            dunning
                .get_policy(authed(
                    &s,
                    pb::GetPolicyRequest {
                        tenant: s.tenant.clone(),
                        policy_id: id,
                        version: w.version,
                    },
                ))
                .await?
                .into_inner(),
        )
    };
    let draft = selected
        .as_ref()
        .map(|p| pretty(&p.policy_json))
        .unwrap_or_default();
    let view = View {
        selected,
        draft,
        until: default_until(&app),
        saved: w.saved,
        ..View::default()
    };
    render(&app, &s, lang, StatusCode::OK, view).await
}

/// A service's refusal of the draft shown on the page (the message names the field).
fn refusal(e: tonic::Status) -> Result<String, WebError> {
    match WebError::from(e) {
        WebError::Bad(m) => Ok(m),
        other => Err(other),
    }
}

/// POST /policies/preview: run the draft over the open cases (no side effects).
pub async fn preview(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = web::session_checked(&app, &headers, &form)?;
    let lang = web::lang(&headers);
    let draft = form.get("policy_json").cloned().unwrap_or_default();
    let until = form
        .get("until")
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default_until(&app));
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(app.channel.clone());
    let res = dunning
        .preview_policy(authed(
            &s,
            pb::PreviewPolicyRequest {
                tenant: s.tenant.clone(),
                policy_json: draft.clone(),
                policy_id: String::new(),
                until: until.clone(),
            },
        ))
        .await;
    let (status, preview, error) = match res {
        Ok(r) => (StatusCode::OK, Some(r.into_inner()), None),
        Err(e) => (StatusCode::BAD_REQUEST, None, Some(refusal(e)?)),
    };
    let view = View {
        draft,
        until,
        preview,
        error,
        ..View::default()
    };
    render(&app, &s, lang, status, view).await
}

/// POST /policies/save: store the draft as the policy's next version.
pub async fn save(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = web::session_checked(&app, &headers, &form)?;
    let lang = web::lang(&headers);
    let draft = form.get("policy_json").cloned().unwrap_or_default();
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(app.channel.clone());
    match dunning
        .put_policy(authed(
            &s,
            pb::PutPolicyRequest {
                tenant: s.tenant.clone(),
                policy_json: draft.clone(),
            },
        ))
        .await
    {
        Ok(r) => {
            let r = r.into_inner();
            tracing::info!(actor = %s.actor(), policy = %r.policy_id, version = r.version, "console policy saved");
            let id: String = form_urlencoded::byte_serialize(r.policy_id.as_bytes()).collect();
            Ok(Redirect::to(&format!("/policies?id={id}&saved={}", r.version)).into_response())
        }
        Err(e) => {
            let view = View {
                draft,
                until: form
                    .get("until")
                    .cloned()
                    .unwrap_or_else(|| default_until(&app)),
                error: Some(refusal(e)?),
                ..View::default()
            };
            render(&app, &s, lang, StatusCode::BAD_REQUEST, view).await
        }
    }
}
