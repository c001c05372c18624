//! The list pages: overview, invoices, debtors, payments to review; the layout they share.

use crate::i18n::Lang;
use crate::projection::{self, Filter, Overview, PAGE_SIZE};
use crate::session::Session;
use crate::stage::{Stage, dso};
use crate::web::{self, Shared, WebError, WebResult, authed, html};
use axum::extract::{Form, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect};
use mahnwerk_proto::v1 as pb;
use maud::{DOCTYPE, Markup, html as m};
use std::collections::HashMap;

/// The page frame: skip link, navigation, language switch, sign-out.
pub fn layout(lang: Lang, s: Option<&Session>, title: &str, body: Markup) -> Markup {
    m! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Mahnwerk" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                a.skip href="#main" { (lang.t("Zum Inhalt", "Skip to content")) }
                header {
                    nav aria-label=(lang.t("Hauptnavigation", "Main navigation")) {
                        a.brand href="/" { "Mahnwerk" }
                        @if let Some(s) = s {
                            a href="/" { (lang.t("Übersicht", "Overview")) }
                            a href="/invoices" { (lang.t("Rechnungen", "Invoices")) }
                            a href="/debtors" { (lang.t("Kunden", "Debtors")) }
                            a href="/payments/review" { (lang.t("Zahlungen prüfen", "Payments to review")) }
                            a href="/policies" { (lang.t("Mahnregeln", "Policy")) }
                            a href="/letterhead" { (lang.t("Briefkopf", "Letterhead")) }
                            span.who { (s.tenant) " · " (s.actor()) }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button type="submit" { (lang.t("Abmelden", "Sign out")) }
                            }
                        }
                        span.lang {
                            a href="/lang/de" lang="de" aria-current=[(lang == Lang::De).then_some("true")] { "DE" }
                            " | "
                            a href="/lang/en" lang="en" aria-current=[(lang == Lang::En).then_some("true")] { "EN" }
                        }
                    }
                }
                main #main { h1 { (title) } (body) }
            }
        }
    }
}

/// A table's head row: one column header per label.
pub fn column_heads(labels: &[&str]) -> Markup {
    m! { thead { tr { @for l in labels { th scope="col" { (l) } } } } }
}

pub fn error_page(status: u16, msg: &str) -> Markup {
    layout(
        Lang::De,
        None,
        &format!("{status}"),
        m! { p.error role="alert" { (msg) } p { a href="/" { "Mahnwerk" } } },
    )
}

pub fn login_page(lang: Lang, csrf: &str, error: Option<&str>) -> Markup {
    layout(
        lang,
        None,
        lang.t("Anmelden", "Sign in"),
        m! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.card method="post" action="/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="api_key" { (lang.t("API-Schlüssel", "API key")) }
                input #api_key type="password" name="api_key" required autocomplete="current-password" autofocus;
                label for="tenant" { (lang.t("Mandant (nur bei Schlüsseln mehrerer Mandanten)", "Tenant (only for keys of several tenants)")) }
                input #tenant type="text" name="tenant" autocomplete="organization";
                button type="submit" { (lang.t("Anmelden", "Sign in")) }
            }
        },
    )
}

/// What the overview shows, rendered (the bench measures this function with its queries).
pub fn overview_markup(lang: Lang, s: &Session, o: &Overview) -> Markup {
    let currency = o.stages.first().map_or("EUR", |f| f.currency.as_str());
    let max_ageing = o
        .ageing
        .iter()
        .map(|f| f.open_minor)
        .max()
        .unwrap_or(0)
        .max(1);
    let labels = ["0–30", "31–60", "61–90", "90+"];
    layout(
        lang,
        Some(s),
        lang.t("Übersicht", "Overview"),
        m! {
            section aria-labelledby="stages" {
                h2 #stages { (lang.t("Rechnungen nach Stadium", "Invoices by stage")) }
                table {
                    (column_heads(&[lang.t("Stadium", "Stage"), lang.t("Anzahl", "Count"), lang.t("Offen", "Open")]))
                    tbody {
                        @for f in &o.stages {
                            @let href = match f.stage {
                                Stage::Dunning => format!("/invoices?stage=dunning&step={}", f.step),
                                st => format!("/invoices?stage={}", st.as_str()),
                            };
                            tr {
                                th scope="row" { a href=(href) data-stage=(f.stage.as_str()) { (lang.stage(f.stage, f.step, "")) } }
                                td.num { (f.figure.count) }
                                td.num { (lang.money(f.figure.open_minor, &f.currency)) }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="ageing" {
                h2 #ageing { (lang.t("Altersstruktur überfälliger Forderungen (Tage)", "Ageing of overdue receivables (days)")) }
                ul.bars {
                    @for (i, f) in o.ageing.iter().enumerate() {
                        li {
                            a href=(format!("/invoices?ageing={i}")) {
                                span.label { (labels[i]) }
                                span.bar style=(format!("width: {}%", (f.open_minor.max(0) * 100 / max_ageing).max(1))) {}
                                span.value { (f.count) " · " (lang.money(f.open_minor, currency)) }
                            }
                        }
                    }
                }
            }
            section.figures aria-label=(lang.t("Kennzahlen", "Key figures")) {
                a.figure href="/invoices?stage=settled" {
                    span.k { (lang.t("Zahlungen (30 Tage)", "Payments (30 days)")) }
                    span.v { (o.paid_30_days.count) " · " (lang.money(o.paid_30_days.open_minor, currency)) }
                }
                a.figure href="/invoices?overdue_as_of=" {
                    span.k { "DSO" }
                    span.v { @match dso(o.open_total, o.sales_90_days, 90) { Some(d) => { (d) " " (lang.t("Tage", "days")) } None => { "–" } } }
                }
                a.figure #review-queue href="/payments/review" {
                    span.k { (lang.t("Zahlungen zu prüfen", "Payments to review")) }
                    span.v { (o.review_queue) }
                }
            }
        },
    )
}

pub async fn overview(State(app): State<Shared>, headers: HeaderMap) -> WebResult {
    let s = web::session(&app, &headers)?;
    let o = projection::overview(&app.pool, &s.tenant, app.clock.today()).await?;
    Ok(html(overview_markup(web::lang(&headers), &s, &o)))
}

fn query_string(f: &Filter, page: u32) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("stage", f.stage.as_str()),
        ("debtor", f.debtor.as_str()),
        ("overdue_as_of", f.overdue_as_of.as_str()),
        ("min", f.min.as_str()),
        ("max", f.max.as_str()),
        ("q", f.q.as_str()),
    ] {
        if !v.is_empty() {
            q.append_pair(k, v);
        }
    }
    if let Some(step) = f.step {
        q.append_pair("step", &step.to_string());
    }
    if let Some(a) = f.ageing {
        q.append_pair("ageing", &a.to_string());
    }
    q.append_pair("page", &page.to_string());
    q.finish()
}

pub async fn invoices(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(f): Query<Filter>,
) -> WebResult {
    let s = web::session(&app, &headers)?;
    let lang = web::lang(&headers);
    let today = app.clock.today();
    let (rows, more) = projection::list(&app.pool, &s.tenant, today, &f)
        .await
        .map_err(WebError::Bad)?;
    let stages = [
        "",
        "open",
        "overdue",
        "dunning",
        "escalated",
        "handed_over",
        "settled",
        "written_off",
        "cancelled",
    ];
    Ok(html(layout(
        lang,
        Some(&s),
        lang.t("Rechnungen", "Invoices"),
        m! {
            form.filters method="get" action="/invoices" role="search" {
                label { (lang.t("Suche", "Search")) input type="search" name="q" value=(f.q); }
                label { (lang.t("Stadium", "Stage"))
                    select name="stage" {
                        @for st in stages {
                            option value=(st) selected[f.stage == st] {
                                @match Stage::parse(st) { Some(x) => { (lang.stage(x, 0, "")) } None => { (lang.t("alle", "all")) } }
                            }
                        }
                    }
                }
                @if let Some(step) = f.step { input type="hidden" name="step" value=(step); }
                label { (lang.t("Kunde (Kundennummer)", "Debtor (customer number)")) input type="text" name="debtor" value=(f.debtor); }
                label { (lang.t("überfällig am", "overdue as of")) input type="date" name="overdue_as_of" value=(f.overdue_as_of); }
                label { (lang.t("offen ab", "open from")) input type="text" inputmode="decimal" name="min" value=(f.min); }
                label { (lang.t("offen bis", "open up to")) input type="text" inputmode="decimal" name="max" value=(f.max); }
                button type="submit" { (lang.t("Filtern", "Filter")) }
            }
            div.scroll {
                table #invoices {
                    (column_heads(&[lang.t("Rechnung", "Invoice"), lang.t("Kunde", "Debtor"), lang.t("fällig", "due"), lang.t("Stadium", "Stage"), lang.t("offen", "open"), lang.t("letztes Schreiben", "last letter")]))
                    tbody {
                        @for r in &rows {
                            tr {
                                td { a href=(format!("/cases/{}", r.case_id)) { (r.view.invoice_number) } }
                                td { a href=(format!("/invoices?debtor={}", form_urlencoded::byte_serialize(r.view.debtor_key.as_bytes()).collect::<String>())) { (r.view.debtor_name) } }
                                td { (lang.date(r.view.due_date)) }
                                td { (lang.stage(r.view.stage_on(today), r.view.step, &r.view.step_title))
                                     @if r.view.paused { " · " (lang.t("pausiert", "paused")) }
                                     @if r.view.disputed { " · " (lang.t("bestritten", "disputed")) } }
                                td.num { (lang.money(r.view.open_minor, &r.view.currency)) }
                                td { @if let Some(l) = &r.view.last_letter { (lang.t("Stufe", "step")) " " (l.step) ", " (lang.date(l.on)) } }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p { (lang.t("Keine Rechnungen für diese Auswahl.", "No invoices for this selection.")) } }
            nav.pager aria-label=(lang.t("Seiten", "Pages")) {
                @if f.page > 0 { a rel="prev" href=(format!("/invoices?{}", query_string(&f, f.page - 1))) { "← " (lang.t("zurück", "previous")) } }
                span { (lang.t("Seite", "Page")) " " (f.page + 1) " (" (PAGE_SIZE) " " (lang.t("je Seite", "per page")) ")" }
                @if more { a rel="next" href=(format!("/invoices?{}", query_string(&f, f.page + 1))) { (lang.t("weiter", "next")) " →" } }
            }
        },
    )))
}

pub async fn debtors(State(app): State<Shared>, headers: HeaderMap) -> WebResult {
    let s = web::session(&app, &headers)?;
    let lang = web::lang(&headers);
    let list = projection::debtors(&app.pool, &s.tenant, 100).await?;
    let offers = projection::offers(&app.pool, &s.tenant, 100).await?;
    Ok(html(layout(
        lang,
        Some(&s),
        lang.t(
            "Kunden und Zahlungsverhalten",
            "Debtors and payment behaviour",
        ),
        m! {
            div.scroll { table {
                (column_heads(&[lang.t("Kunde", "Debtor"), lang.t("Rechnungen", "Invoices"), lang.t("Anteil gemahnt", "Share dunned"), lang.t("Ø Tage verspätet", "Avg. days late"), lang.t("offen", "open"), lang.t("Zahlungszusagen", "Promises"), lang.t("davon gebrochen", "broken")]))
                tbody { @for d in &list { tr {
                    td { a href=(format!("/invoices?debtor={}", form_urlencoded::byte_serialize(d.debtor_key.as_bytes()).collect::<String>())) { (d.name) } }
                    td.num { (d.invoices) }
                    td.num { (d.dunned * 100 / d.invoices.max(1)) " %" }
                    td.num { @match d.avg_days_late { Some(x) => { (x) } None => { "–" } } }
                    td.num { (lang.money(d.open_minor, "EUR")) }
                    td.num { (d.promises) }
                    td.num { (d.broken_promises) }
                } } }
            } }
            (offers_markup(lang, &s, &offers))
        },
    )))
}

/// The offers to take over dunning (approval mode), each with approve and decline.
fn offers_markup(lang: Lang, s: &Session, offers: &[projection::Offer]) -> Markup {
    let form = |case_id: &str, action: &str, label: &str| {
        m! {
            form.inline method="post" action=(format!("/offers/{case_id}")) data-action=(action) {
                input type="hidden" name="csrf" value=(s.csrf);
                input type="hidden" name="request_id" value=(crate::session::random_token()[..32].to_owned());
                input type="hidden" name="action" value=(action);
                button type="submit" { (label) }
            }
        }
    };
    m! {
        section #offers aria-labelledby="offers-h" {
            h2 #offers-h { (lang.t("Mahnung übernehmen? Angebote zur Freigabe", "Take over dunning? Offers awaiting approval")) }
            @if offers.is_empty() {
                p { (lang.t("Keine Angebote offen.", "No offers waiting.")) }
            } @else {
                div.scroll { table #offer-list {
                    (column_heads(&[lang.t("Rechnung", "Invoice"), lang.t("Kunde", "Debtor"), lang.t("angeboten am", "offered on"), lang.t("offen", "open"), lang.t("Entscheidung", "Decision")]))
                    tbody { @for o in offers { tr data-case=(o.case_id) {
                        td { a href=(format!("/cases/{}", o.case_id)) { (o.view.invoice_number) } }
                        td { (o.view.debtor_name) }
                        td { (lang.date(o.offered_on)) }
                        td.num { (lang.money(o.view.open_minor, &o.view.currency)) }
                        td {
                            (form(&o.case_id, "approve", lang.t("Mahnwerk mahnt", "Let Mahnwerk dun")))
                            " "
                            (form(&o.case_id, "decline", lang.t("Selbst mahnen", "Dun it myself")))
                        }
                    } } }
                } }
            }
        }
    }
}

/// Approve or decline an offer to take over dunning (DunningService `ApproveDunning` /
/// `DeclineDunning` with the user's key).
pub async fn offer_action(
    State(app): State<Shared>,
    Path(case_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = web::session_checked(&app, &headers, &form)?;
    // Another tenant's case: 404 before any service is called.
    web::own_case(&app, &s, &case_id).await?;
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("");
    let request_id = match get("request_id") {
        "" => crate::session::random_token()[..32].to_owned(),
        id => id.to_owned(),
    };
    let mut dunning = pb::dunning_service_client::DunningServiceClient::new(app.channel.clone());
    match get("action") {
        "approve" => {
            dunning
                .approve_dunning(authed(
                    &s,
                    pb::ApproveDunningRequest {
                        tenant: s.tenant.clone(),
                        request_id,
                        case_id: case_id.clone(),
                    },
                ))
                .await?;
        }
        "decline" => {
            dunning
                .decline_dunning(authed(
                    &s,
                    pb::DeclineDunningRequest {
                        tenant: s.tenant.clone(),
                        request_id,
                        case_id: case_id.clone(),
                    },
                ))
                .await?;
        }
        other => return Err(WebError::Bad(format!("action: unknown action {other:?}"))),
    }
    tracing::info!(actor = %s.actor(), case_id = %case_id, action = %get("action"), "console offer decision");
    Ok(Redirect::to("/debtors#offers").into_response())
}

pub async fn review(State(app): State<Shared>, headers: HeaderMap) -> WebResult {
    let s = web::session(&app, &headers)?;
    let lang = web::lang(&headers);
    let mut payments = pb::payment_service_client::PaymentServiceClient::new(app.channel.clone());
    let entries = payments
        .list_unmatched(authed(
            &s,
            pb::ListUnmatchedRequest {
                tenant: s.tenant.clone(),
                page_size: 100,
                page_token: String::new(),
            },
        ))
        .await?
        .into_inner()
        .entries;
    let mut candidates: HashMap<String, (String, String, i64)> = HashMap::new();
    for e in &entries {
        for c in &e.candidate_case_ids {
            if let Some(v) = projection::case(&app.pool, &s.tenant, c).await? {
                candidates.insert(c.clone(), (v.invoice_number, v.debtor_name, v.open_minor));
            }
        }
    }
    Ok(html(layout(
        lang,
        Some(&s),
        lang.t("Zahlungen prüfen", "Payments to review"),
        m! {
            @if entries.is_empty() { p { (lang.t("Keine Zahlungen zu prüfen.", "No payments to review.")) } }
            @for e in &entries {
                @let money = e.amount.clone().unwrap_or_default();
                article.card.entry data-entry=(e.entry_id) {
                    h2 { (lang.money(money.minor, &money.currency)) " · " (e.counterparty_name) " · " (e.booking_date) }
                    p { (lang.t("Verwendungszweck", "Remittance")) ": " (e.remittance) }
                    p { (lang.t("Grund", "Reason")) ": " (e.reason) }
                    form method="post" action=(format!("/payments/review/{}", e.entry_id)) {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="action" value="match";
                        input type="hidden" name="request_id" value=(crate::session::random_token()[..32].to_owned());
                        fieldset {
                            legend { (lang.t("Zuordnen", "Match")) }
                            @for c in &e.candidate_case_ids {
                                @if let Some((num, name, open)) = candidates.get(c) {
                                    label.choice { input type="radio" name="case_id" value=(c) required; (num) " · " (name) " · " (lang.t("offen", "open")) " " (lang.money(*open, &money.currency)) }
                                }
                            }
                            label { (lang.t("oder Rechnungsnummer", "or invoice number")) input type="text" name="invoice_number"; }
                            label { (lang.t("Betrag", "Amount")) input type="text" inputmode="decimal" name="amount" value=(format!("{}.{:02}", money.minor / 100, money.minor % 100)); }
                            label { (lang.t("Aufteilen (Rechnungsnr.=Betrag; …)", "Split (invoice no.=amount; …)")) input type="text" name="split"; }
                            button type="submit" { (lang.t("Zuordnen", "Match")) }
                        }
                    }
                    form method="post" action=(format!("/payments/review/{}", e.entry_id)) {
                        input type="hidden" name="csrf" value=(s.csrf);
                        input type="hidden" name="action" value="not_ours";
                        input type="hidden" name="request_id" value=(crate::session::random_token()[..32].to_owned());
                        button type="submit" { (lang.t("Nicht unsere Zahlung", "Not ours")) }
                    }
                }
            }
        },
    )))
}

pub async fn review_action(
    State(app): State<Shared>,
    Path(entry_id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = web::session_checked(&app, &headers, &form)?;
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("");
    let mut payments = pb::payment_service_client::PaymentServiceClient::new(app.channel.clone());
    // The page's forms carry one request id each, so a resubmitted form is the same request; a
    // client posting without one gets a fresh id (no retry safety, but the same checks).
    let request_id = match get("request_id") {
        "" => crate::session::random_token()[..32].to_owned(),
        id => id.to_owned(),
    };
    match get("action") {
        "not_ours" => {
            payments
                .mark_not_ours(authed(
                    &s,
                    pb::MarkNotOursRequest {
                        tenant: s.tenant.clone(),
                        entry_id,
                        note: "console".into(),
                        request_id: request_id.clone(),
                    },
                ))
                .await?;
        }
        "match" => {
            let mut allocations = Vec::new();
            let resolve = |number: String| {
                let app = app.clone();
                let tenant = s.tenant.clone();
                async move {
                    projection::case_by_number(&app.pool, &tenant, &number)
                        .await?
                        .ok_or_else(|| {
                            WebError::Bad(format!("invoice_number: no invoice {number:?}"))
                        })
                }
            };
            if !get("split").is_empty() {
                for part in get("split").split(';').filter(|p| !p.trim().is_empty()) {
                    let (num, amount) = part.split_once('=').ok_or_else(|| {
                        WebError::Bad(format!("split: {part:?} is not invoice=amount"))
                    })?;
                    let minor = projection::parse_amount("split", amount)
                        .map_err(WebError::Bad)?
                        .unwrap_or(0);
                    allocations.push(pb::ManualAllocation {
                        case_id: resolve(num.trim().to_owned()).await?,
                        amount_minor: minor,
                    });
                }
            } else {
                let case_id = match (get("case_id"), get("invoice_number")) {
                    (_, n) if !n.is_empty() => resolve(n.to_owned()).await?,
                    (c, _) if !c.is_empty() => {
                        // A case id from the form must be this tenant's.
                        web::own_case(&app, &s, c).await?;
                        c.to_owned()
                    }
                    _ => {
                        return Err(WebError::Bad(
                            "case_id: choose an invoice or enter its number".into(),
                        ));
                    }
                };
                let minor = projection::parse_amount("amount", get("amount"))
                    .map_err(WebError::Bad)?
                    .ok_or_else(|| WebError::Bad("amount: required".into()))?;
                allocations.push(pb::ManualAllocation {
                    case_id,
                    amount_minor: minor,
                });
            }
            payments
                .match_manually(authed(
                    &s,
                    pb::MatchManuallyRequest {
                        tenant: s.tenant.clone(),
                        entry_id,
                        allocations,
                        note: "console".into(),
                        request_id: request_id.clone(),
                    },
                ))
                .await?;
        }
        other => return Err(WebError::Bad(format!("action: unknown action {other:?}"))),
    }
    Ok(Redirect::to("/payments/review?done=1").into_response())
}
