//! The letterhead and templates page: the tenant's letter settings from LetterService
//! (`GetLetterhead`), a form for the letterhead data with a logo upload (saved with
//! `PutLetterhead`, idempotent by content), template overrides (`PutTemplate`, checked by the
//! service), and each step's letter as PDF under the current letterhead (`PreviewLetter` of the
//! latest case that reached the step: nothing is sent or recorded).

use crate::i18n::Lang;
use crate::multipart;
use crate::pages::layout;
use crate::projection;
use crate::session::Session;
use crate::web::{self, Shared, WebError, WebResult, authed, html};
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use base64::Engine as _;
use mahnwerk_proto::v1 as pb;
use maud::html as m;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Largest logo accepted (the letters service embeds it in every PDF).
const MAX_LOGO: usize = 512 * 1024;

#[derive(Debug, Default, serde::Deserialize)]
pub struct Saved {
    #[serde(default)]
    pub saved: Option<u64>,
}

fn lines(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn contact_lines(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    format!(
                        "{}: {}",
                        c["label"].as_str().unwrap_or(""),
                        c["value"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The settings a tenant without any starts from.
fn empty_settings() -> Value {
    json!({"letterhead": {"name": "", "sender_line": ""}, "email_from": "", "copy_to": {"mode": "inbox"}})
}

/// Apply the form's fields (and an uploaded logo) to the current settings; the fields the form
/// does not show are kept. Errors name the field.
pub fn apply_form(
    mut settings: Value,
    fields: &HashMap<String, String>,
    logo: Option<(&str, &[u8])>,
) -> Result<Value, String> {
    let get = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let list = |k: &str| -> Vec<Value> {
        get(k)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| Value::String(l.to_owned()))
            .collect()
    };
    if !settings["letterhead"].is_object() {
        settings["letterhead"] = json!({});
    }
    let mut contact = Vec::new();
    for (i, l) in get("contact")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let (label, value) = l
            .split_once(':')
            .ok_or_else(|| format!("contact: line {} {l:?} is not \"Label: value\"", i + 1))?;
        contact.push(json!({"label": label.trim(), "value": value.trim()}));
    }
    let lh = &mut settings["letterhead"];
    lh["name"] = get("name").into();
    lh["sender_line"] = get("sender_line").into();
    lh["address"] = list("address").into();
    lh["contact"] = contact.into();
    lh["footer"] = list("footer").into();
    let (bank_name, iban, bic) = (get("bank_name"), get("iban"), get("bic"));
    lh["bank"] = if bank_name.is_empty() && iban.is_empty() {
        Value::Null
    } else {
        let mut b = json!({"bank_name": bank_name, "iban": iban.replace(' ', "")});
        if !bic.is_empty() {
            b["bic"] = bic.into();
        }
        b
    };
    if fields.contains_key("remove_logo") {
        lh["logo"] = Value::Null;
    }
    if let Some((name, data)) = logo {
        if data.len() > MAX_LOGO {
            return Err(format!(
                "logo: {} KiB, at most {} KiB",
                data.len() / 1024,
                MAX_LOGO / 1024
            ));
        }
        let format = if data.starts_with(b"\x89PNG\r\n\x1a\n") {
            "png"
        } else if name.to_ascii_lowercase().ends_with(".svg")
            || data.starts_with(b"<svg")
            || data.starts_with(b"<?xml")
        {
            "svg"
        } else {
            return Err("logo: not a PNG or SVG file".into());
        };
        let mut logo = json!({"format": format, "data_base64": base64::engine::general_purpose::STANDARD.encode(data)});
        let h = get("logo_height_mm");
        if !h.is_empty() {
            let mm: u32 = h
                .parse()
                .map_err(|_| format!("logo_height_mm: {h:?} is not a number of millimetres"))?;
            logo["height_mm"] = mm.into();
        }
        lh["logo"] = logo;
    }
    settings["email_from"] = get("email_from").into();
    let sig = get("signature");
    settings["signature"] = if sig.is_empty() {
        Value::Null
    } else {
        sig.into()
    };
    Ok(settings)
}

struct View {
    settings: Value,
    templates: Vec<String>,
    version: u64,
    error: Option<String>,
    saved: Option<u64>,
}

async fn current(app: &Shared, s: &Session) -> Result<pb::Letterhead, WebError> {
    let mut letters = pb::letter_service_client::LetterServiceClient::new(app.channel.clone());
    Ok(letters
        .get_letterhead(authed(
            s,
            pb::GetLetterheadRequest {
                tenant: s.tenant.clone(),
            },
        ))
        .await?
        .into_inner())
}

fn settings_of(l: &pb::Letterhead) -> Value {
    serde_json::from_str(&l.settings_json).unwrap_or_else(|_| empty_settings())
}

async fn render(app: &Shared, s: &Session, lang: Lang, status: StatusCode, v: View) -> WebResult {
    let previews = projection::case_per_step(&app.pool, &s.tenant).await?;
    let lh = &v.settings["letterhead"];
    let bank = &lh["bank"];
    let logo = &lh["logo"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let body = m! {
        @if let Some(e) = &v.error { p.error role="alert" #letterhead-error { (e) } }
        @if let Some(ver) = v.saved { p role="status" #letterhead-saved { (lang.t("Gespeichert, Version", "Saved, version")) " " (ver) } }
        section aria-labelledby="lh-h" {
            h2 #lh-h { (lang.t("Briefkopf", "Letterhead")) @if v.version > 0 { " · " (lang.t("Version", "version")) " " (v.version) } }
            form.card.wide method="post" action="/letterhead" enctype="multipart/form-data" {
                input type="hidden" name="csrf" value=(s.csrf);
                label { (lang.t("Firmenname", "Company name")) input type="text" name="name" value=(text(&lh["name"])) required; }
                label { (lang.t("Absenderzeile (über der Anschrift)", "Sender line (above the address)")) input type="text" name="sender_line" value=(text(&lh["sender_line"])) required; }
                label { (lang.t("Anschrift (eine Zeile je Zeile)", "Address (one line each)")) textarea name="address" rows="3" { (lines(&lh["address"])) } }
                label { (lang.t("Kontakt (Bezeichnung: Wert)", "Contact (label: value)")) textarea name="contact" rows="3" { (contact_lines(&lh["contact"])) } }
                label { (lang.t("Fußzeilen (Register, Geschäftsführung, USt-IdNr.)", "Footer lines (register, directors, VAT id)")) textarea name="footer" rows="3" { (lines(&lh["footer"])) } }
                label { (lang.t("Bank", "Bank")) input type="text" name="bank_name" value=(text(&bank["bank_name"])); }
                label { "IBAN" input type="text" name="iban" value=(text(&bank["iban"])) autocomplete="off"; }
                label { "BIC" input type="text" name="bic" value=(text(&bank["bic"])) autocomplete="off"; }
                label { (lang.t("Absender der E-Mails", "Emails from")) input type="email" name="email_from" value=(text(&v.settings["email_from"])) required; }
                label { (lang.t("Unterschrift", "Signature")) input type="text" name="signature" value=(text(&v.settings["signature"])); }
                label { (lang.t("Logo (PNG oder SVG)", "Logo (PNG or SVG)")) input type="file" name="logo" accept="image/png,image/svg+xml,.png,.svg"; }
                label { (lang.t("Logohöhe in mm", "Logo height in mm")) input type="number" name="logo_height_mm" min="5" max="40" value=(logo["height_mm"].as_u64().map(|h| h.to_string()).unwrap_or_default()); }
                @if logo.is_object() {
                    p #logo-state { (lang.t("Logo hinterlegt", "Logo set")) " (" (text(&logo["format"])) ")" }
                    label.choice { input type="checkbox" name="remove_logo" value="1"; (lang.t("Logo entfernen", "Remove the logo")) }
                }
                button type="submit" { (lang.t("Briefkopf speichern", "Save letterhead")) }
            }
        }
        section aria-labelledby="preview-h" {
            h2 #preview-h { (lang.t("Schreiben je Stufe als PDF", "Each step's letter as PDF")) }
            @if previews.is_empty() {
                p { (lang.t("Sobald ein Fall eine Mahnstufe erreicht hat, steht hier sein Schreiben als Vorschau.", "Once a case has reached a dunning step, its letter can be previewed here.")) }
            } @else {
                ul #previews { @for (step, case_id, number) in &previews {
                    li { a.pdf href=(format!("/letterhead/preview?case={case_id}&step={step}")) target="_blank" rel="noopener" data-step=(step) {
                        (lang.t("Stufe", "Step")) " " (step) " · " (lang.t("mit Rechnung", "with invoice")) " " (number) " (PDF)"
                    } }
                } }
            }
        }
        section aria-labelledby="tpl-h" {
            h2 #tpl-h { (lang.t("Vorlagen", "Templates")) }
            @if v.templates.is_empty() { p { (lang.t("Keine eigenen Vorlagen: die mitgelieferten gelten.", "No own templates: the shipped ones apply.")) } }
            @else { ul #templates { @for t in &v.templates { li { code { (t) } } } } }
            form.card.wide method="post" action="/letterhead/templates" {
                input type="hidden" name="csrf" value=(s.csrf);
                label { (lang.t("Name (z. B. first_notice.de.j2)", "Name (e.g. first_notice.de.j2)")) input type="text" name="template_name" required; }
                label { (lang.t("Quelltext", "Source")) textarea name="source" rows="10" spellcheck="false" required {} }
                button type="submit" { (lang.t("Vorlage prüfen und speichern", "Check and save the template")) }
            }
        }
    };
    Ok((
        status,
        html(layout(
            lang,
            Some(s),
            lang.t("Briefkopf und Vorlagen", "Letterhead and templates"),
            body,
        )),
    )
        .into_response())
}

pub async fn page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Saved>,
) -> WebResult {
    let s = web::session(&app, &headers)?;
    let l = current(&app, &s).await?;
    let view = View {
        settings: settings_of(&l),
        templates: l.templates,
        version: l.version,
        error: None,
        saved: q.saved,
    };
    render(&app, &s, web::lang(&headers), StatusCode::OK, view).await
}

/// A refusal the user can correct, shown on the page; anything else is an error page.
fn refusal(e: WebError) -> Result<String, WebError> {
    match e {
        WebError::Bad(m) => Ok(m),
        other => Err(other),
    }
}

/// POST /letterhead (multipart: the fields and the logo file).
pub async fn save(State(app): State<Shared>, headers: HeaderMap, body: Bytes) -> WebResult {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let parts = multipart::parse(ctype, &body).map_err(WebError::Bad)?;
    let mut fields = HashMap::new();
    let mut logo = None;
    for p in &parts {
        match &p.filename {
            Some(name) if p.name == "logo" => {
                if !p.data.is_empty() {
                    logo = Some((name.as_str(), p.data.as_slice()));
                }
            }
            _ => {
                fields.insert(p.name.clone(), p.text());
            }
        }
    }
    let s = web::session_checked(&app, &headers, &fields)?;
    let lang = web::lang(&headers);
    let l = current(&app, &s).await?;
    let before = settings_of(&l);
    let result = match apply_form(before.clone(), &fields, logo) {
        Ok(settings) => {
            let mut letters =
                pb::letter_service_client::LetterServiceClient::new(app.channel.clone());
            letters
                .put_letterhead(authed(
                    &s,
                    pb::PutLetterheadRequest {
                        tenant: s.tenant.clone(),
                        settings_json: settings.to_string(),
                    },
                ))
                .await
                .map(|r| r.into_inner().version)
                .map_err(|e| (settings, WebError::from(e)))
        }
        Err(m) => Err((before, WebError::Bad(m))),
    };
    match result {
        Ok(version) => {
            tracing::info!(actor = %s.actor(), version, "console letterhead saved");
            Ok(Redirect::to(&format!("/letterhead?saved={version}")).into_response())
        }
        Err((settings, e)) => {
            let view = View {
                settings,
                templates: l.templates,
                version: l.version,
                error: Some(refusal(e)?),
                saved: None,
            };
            render(&app, &s, lang, StatusCode::BAD_REQUEST, view).await
        }
    }
}

/// POST /letterhead/templates: a template override, checked by the letters service.
pub async fn save_template(
    State(app): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let s = web::session_checked(&app, &headers, &form)?;
    let lang = web::lang(&headers);
    let mut letters = pb::letter_service_client::LetterServiceClient::new(app.channel.clone());
    let res = letters
        .put_template(authed(
            &s,
            pb::PutTemplateRequest {
                tenant: s.tenant.clone(),
                name: form
                    .get("template_name")
                    .map(|n| n.trim().to_owned())
                    .unwrap_or_default(),
                source: form.get("source").cloned().unwrap_or_default(),
            },
        ))
        .await;
    match res {
        Ok(r) => Ok(
            Redirect::to(&format!("/letterhead?saved={}", r.into_inner().version)).into_response(),
        ),
        Err(e) => {
            let l = current(&app, &s).await?;
            let view = View {
                settings: settings_of(&l),
                templates: l.templates,
                version: l.version,
                error: Some(refusal(WebError::from(e))?),
                saved: None,
            };
            render(&app, &s, lang, StatusCode::BAD_REQUEST, view).await
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct PreviewQuery {
    #[serde(default)]
    pub case: String,
    #[serde(default)]
    pub step: u32,
}

/// GET /letterhead/preview?case=…&step=…: the step's letter rendered now (PDF, inline).
pub async fn preview(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PreviewQuery>,
) -> WebResult {
    let s = web::session(&app, &headers)?;
    // Another tenant's case is not found before the service is asked.
    web::own_case(&app, &s, &q.case).await?;
    let mut letters = pb::letter_service_client::LetterServiceClient::new(app.channel.clone());
    let doc = letters
        .preview_letter(authed(
            &s,
            pb::PreviewLetterRequest {
                tenant: s.tenant.clone(),
                case_id: q.case.clone(),
                step: q.step,
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
    if let Ok(v) = format!("inline; filename=\"preview-step-{}.pdf\"", q.step).parse() {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(kv: &[(&str, &str)]) -> HashMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_form_changes_the_shown_fields_keeps_the_rest_and_names_bad_ones() {
        let mut before = empty_settings();
        before["registered_steps"] = json!([3]);
        let f = fields(&[
            ("name", " Nordlicht GmbH "),
            ("sender_line", "Nordlicht GmbH · Kai 1 · 20457 Hamburg"),
            ("address", "Kai 1\n\n20457 Hamburg\n"),
            ("contact", "Telefon: 040 123\nE-Mail: a@b.test"),
            ("footer", "HRB 1"),
            ("email_from", "a@b.test"),
            ("logo_height_mm", "20"),
        ]);
        let png = b"\x89PNG\r\n\x1a\nrest";
        let s = apply_form(before.clone(), &f, Some(("l.png", png))).unwrap();
        assert_eq!(s["letterhead"]["name"], "Nordlicht GmbH");
        assert_eq!(
            s["letterhead"]["address"],
            json!(["Kai 1", "20457 Hamburg"])
        );
        assert_eq!(
            s["letterhead"]["contact"][1],
            json!({"label": "E-Mail", "value": "a@b.test"})
        );
        assert_eq!(s["letterhead"]["logo"]["format"], "png");
        assert_eq!(s["letterhead"]["logo"]["height_mm"], 20);
        assert_eq!(s["letterhead"]["bank"], Value::Null);
        assert_eq!(s["registered_steps"], json!([3]));
        // Without a new file the logo stays; remove_logo drops it.
        let kept = apply_form(s.clone(), &f, None).unwrap();
        assert_eq!(kept["letterhead"]["logo"]["format"], "png");
        let mut rm = f.clone();
        rm.insert("remove_logo".into(), "1".into());
        assert_eq!(
            apply_form(s, &rm, None).unwrap()["letterhead"]["logo"],
            Value::Null
        );
        let e = apply_form(before.clone(), &f, Some(("l.gif", b"GIF89a"))).unwrap_err();
        assert!(e.starts_with("logo:"), "{e}");
        let mut bad = f.clone();
        bad.insert("contact".into(), "no colon".into());
        assert!(
            apply_form(before, &bad, None)
                .unwrap_err()
                .starts_with("contact: line 1")
        );
    }
}
