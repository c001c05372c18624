//! PDF output: the letter laid out by typst (`assets/letter.typ`) and written as PDF/A-2b.
//!
//! The typst engine with its fonts and the layout source is built once per [`PdfEngine`] and
//! reused for every letter. All data reaches typst through `sys.inputs` (a JSON string plus the
//! QR code and logo as bytes), so texts are shown, never evaluated. The PDF's document id and
//! timestamp come from the model (a hash of the layout data and the letter date), so the same
//! model and templates always give the same bytes.

use crate::error::{Error, Result};
use crate::format::labels;
use crate::model::{LetterModel, LogoFormat};
use crate::templates::Texts;
use crate::view::{Row, TemplateContext};
use base64::Engine as _;
use chrono::Datelike;
use serde::Serialize;
use sha2::{Digest, Sha256};
use typst::foundations::{Bytes, Dict, IntoValue, Smart, Str, Value};
use typst_as_lib::{TypstEngine, TypstTemplateMainFile};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

/// The typesetting template, embedded.
pub const LAYOUT_SOURCE: &str = include_str!("../assets/letter.typ");

/// The font family every letter is set in (Libertinus Serif, SIL Open Font License, shipped
/// with the crate through `typst-assets`; full Latin-1 and € coverage).
pub const FONT_FAMILY: &str = "Libertinus Serif";

/// How many compilations an unused typst cache entry survives. Bounded, so memory stays flat
/// over any number of letters while repeated parts (fonts, layout source) stay warm.
const CACHE_MAX_AGE: usize = 8;

/// The data the layout template reads (`sys.inputs.data`), all texts preformatted.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LayoutData {
    pub form: &'static str,
    pub lang: &'static str,
    /// Letter date as `[year, month, day]` (document metadata).
    pub date: [i32; 3],
    pub creditor: String,
    pub sender_line: String,
    /// `Einschreiben` etc. in the Vermerkzone; empty for none.
    pub endorsement: String,
    pub recipient: Vec<String>,
    pub info: Vec<[String; 2]>,
    pub title: String,
    pub salutation: String,
    pub body: Vec<String>,
    pub table: TableData,
    pub plan: Option<PlanData>,
    pub payment: Option<PaymentData>,
    pub notices: Vec<String>,
    pub closing: String,
    pub signature: Option<String>,
    pub footer: Vec<Vec<String>>,
    pub page_label: &'static str,
    pub of_label: &'static str,
    pub logo_format: &'static str,
    pub logo_height_mm: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TableData {
    pub header: [&'static str; 3],
    pub rows: Vec<Row>,
    pub total_label: &'static str,
    pub total: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlanData {
    pub heading: &'static str,
    pub header: [&'static str; 3],
    pub rows: Vec<[String; 3]>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PaymentData {
    pub heading: &'static str,
    pub rows: Vec<[String; 2]>,
    pub caption: &'static str,
}

impl LayoutData {
    /// Assemble the layout data of a validated model.
    pub fn new(model: &LetterModel, ctx: &TemplateContext, texts: &Texts, rows: Vec<Row>) -> Self {
        let lang = model.language;
        let l = labels(lang);
        let mut info: Vec<[String; 2]> = Vec::new();
        let mut push = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                info.push([k.to_owned(), v.clone()]);
            }
        };
        push(l.your_sign, &model.references.your_sign);
        push(l.our_sign, &model.references.our_sign);
        push(l.customer_number, &model.references.customer_number);
        push(l.case_reference, &model.references.case_reference);
        push(l.contact_name, &model.references.contact_name);
        for c in &model.letterhead.contact {
            info.push([c.label.clone(), c.value.clone()]);
        }
        info.push([l.date.to_owned(), ctx.date.clone()]);

        let payment = ctx.payment.as_ref().map(|p| {
            let mut rows = vec![
                [l.payee.to_owned(), p.payee.clone()],
                [l.iban.to_owned(), p.iban.clone()],
            ];
            if let Some(bic) = &p.bic {
                rows.push([l.bic.to_owned(), bic.clone()]);
            }
            rows.push([l.reference.to_owned(), p.reference.clone()]);
            rows.push([l.amount.to_owned(), p.amount.clone()]);
            if let Some(deadline) = &ctx.deadline {
                rows.push([l.pay_until.to_owned(), deadline.clone()]);
            }
            PaymentData {
                heading: l.payment_heading,
                rows,
                caption: l.qr_caption,
            }
        });
        let plan = ctx.plan.as_ref().map(|p| PlanData {
            heading: l.instalments_heading,
            header: [l.instalment, l.due, l.amount],
            rows: p
                .instalments
                .iter()
                .map(|i| [format!("{}.", i.number), i.due.clone(), i.amount.clone()])
                .collect(),
        });

        let lh = &model.letterhead;
        let mut footer = vec![
            std::iter::once(lh.name.clone())
                .chain(lh.address.iter().cloned())
                .collect::<Vec<_>>(),
        ];
        if let Some(bank) = &lh.bank {
            let mut col = vec![
                bank.bank_name.clone(),
                format!("{} {}", l.iban, bank.iban.to_print_format()),
            ];
            if let Some(bic) = &bank.bic {
                col.push(format!("{} {bic}", l.bic));
            }
            footer.push(col);
        }
        if !lh.footer.is_empty() {
            footer.push(lh.footer.clone());
        }
        let (logo_format, logo_height_mm) = match &lh.logo {
            Some(logo) => (
                match logo.format {
                    LogoFormat::Png => "png",
                    LogoFormat::Svg => "svg",
                },
                logo.height_mm.unwrap_or(15).clamp(5, 25),
            ),
            None => ("png", 15),
        };
        let total = ctx.total.clone();
        LayoutData {
            form: model.form.as_str(),
            lang: lang.as_str(),
            date: [
                model.date.year(),
                i32::try_from(model.date.month()).unwrap_or(1),
                i32::try_from(model.date.day()).unwrap_or(1),
            ],
            creditor: lh.name.clone(),
            sender_line: lh.sender_line.clone(),
            endorsement: model
                .endorsement
                .map(|e| e.text(model.language).to_owned())
                .unwrap_or_default(),
            recipient: model.recipient_lines(),
            info,
            title: texts.title.clone(),
            salutation: texts.salutation.clone(),
            body: texts.body.clone(),
            table: TableData {
                header: [l.position, l.period, l.amount],
                rows,
                total_label: l.total,
                total,
            },
            plan,
            payment,
            notices: interest_explanation(model)
                .into_iter()
                .chain(texts.notices.iter().cloned())
                .collect(),
            closing: texts.closing.clone(),
            signature: model.signature.clone(),
            footer,
            page_label: l.page,
            of_label: l.of,
            logo_format,
            logo_height_mm,
        }
    }
}

/// How the interest was computed, one paragraph: per period the days, the rate as base rate
/// plus margin, the principal; the day count and the rounding rule.
pub fn interest_explanation(model: &LetterModel) -> Option<String> {
    use crate::format::{date, money, rate};
    use crate::model::{ClaimLine, DayCount, Language};
    let method = model.interest_method?;
    let lang = model.language;
    let periods: Vec<String> = model
        .claims
        .iter()
        .filter_map(|c| match c {
            ClaimLine::Interest {
                from,
                to,
                days,
                rate_percent,
                principal,
                ..
            } => {
                let base = *rate_percent - method.margin_points;
                Some(match lang {
                    Language::De => format!(
                        "{} bis {}: {days} Tage, {} p. a. ({} Basiszinssatz + {} Prozentpunkte) auf {}",
                        date(*from, lang),
                        date(*to, lang),
                        rate(*rate_percent, lang),
                        rate(base, lang),
                        points(method.margin_points, lang),
                        money(*principal, lang)
                    ),
                    Language::En => format!(
                        "{} to {}: {days} days at {} p.a. ({} base rate + {} percentage points) on {}",
                        date(*from, lang),
                        date(*to, lang),
                        rate(*rate_percent, lang),
                        rate(base, lang),
                        points(method.margin_points, lang),
                        money(*principal, lang)
                    ),
                })
            }
            _ => None,
        })
        .collect();
    if periods.is_empty() {
        return None;
    }
    let (days, rounding) = match (lang, method.day_count) {
        (Language::De, DayCount::Act365) => (
            "tatsächliche Tage / 365",
            "je Zeitraum kaufmännisch auf den Cent gerundet, die Summe ist die Summe der gerundeten Zeiträume",
        ),
        (Language::De, DayCount::ActAct) => (
            "tatsächliche Tage / Tage des Kalenderjahres",
            "je Zeitraum kaufmännisch auf den Cent gerundet, die Summe ist die Summe der gerundeten Zeiträume",
        ),
        (Language::En, DayCount::Act365) => (
            "actual days / 365",
            "each period rounded half-up to the cent, the total is the sum of the rounded periods",
        ),
        (Language::En, DayCount::ActAct) => (
            "actual days / days of the calendar year",
            "each period rounded half-up to the cent, the total is the sum of the rounded periods",
        ),
    };
    Some(match lang {
        Language::De => format!(
            "So haben wir die Verzugszinsen (§ 288 BGB) berechnet: {}. Zinstage: {days}; {rounding}.",
            periods.join("; ")
        ),
        Language::En => format!(
            "How the default interest (§ 288 BGB) was computed: {}. Day count: {days}; {rounding}.",
            periods.join("; ")
        ),
    })
}

fn points(p: rust_decimal::Decimal, lang: crate::model::Language) -> String {
    let s = p.normalize().to_string();
    match lang {
        crate::model::Language::De => s.replace('.', ","),
        crate::model::Language::En => s,
    }
}

/// The typst engine with fonts and layout loaded once. Cheap to share across threads
/// (`&PdfEngine` is `Sync`); each render builds only its own inputs.
pub struct PdfEngine {
    engine: TypstEngine<TypstTemplateMainFile>,
}

impl std::fmt::Debug for PdfEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfEngine").finish_non_exhaustive()
    }
}

impl Default for PdfEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl PdfEngine {
    /// Load the embedded fonts and the layout template.
    pub fn new() -> Self {
        let engine = TypstEngine::builder()
            .main_file(LAYOUT_SOURCE)
            .fonts(typst_assets::fonts())
            .comemo_evict_max_age(Some(CACHE_MAX_AGE))
            .build();
        PdfEngine { engine }
    }

    /// Lay out `data` (with the QR code SVG and logo bytes) and write a PDF/A-2b file.
    pub fn render(
        &self,
        data: &LayoutData,
        qr_svg: Option<&str>,
        logo: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let json = serde_json::to_string(data).map_err(|e| Error::Layout(e.to_string()))?;
        let ident = hex::encode(Sha256::digest(json.as_bytes()));
        let mut inputs = Dict::new();
        inputs.insert(Str::from("data"), Value::Str(json.as_str().into()));
        inputs.insert(
            Str::from("qr"),
            qr_svg.map_or(Value::None, |s| {
                Bytes::from_string(s.to_owned()).into_value()
            }),
        );
        inputs.insert(
            Str::from("logo"),
            logo.map_or(Value::None, |b| Bytes::new(b.to_vec()).into_value()),
        );
        let compiled = self.engine.compile_with_input::<_, PagedDocument>(inputs);
        let doc = compiled.output.map_err(|e| Error::Layout(e.to_string()))?;
        let [y, m, d] = data.date;
        let timestamp = typst::foundations::Datetime::from_ymd_hms(
            y,
            u8::try_from(m).unwrap_or(1),
            u8::try_from(d).unwrap_or(1),
            0,
            0,
            0,
        )
        .map(Timestamp::new_utc);
        let standards = PdfStandards::new(&[PdfStandard::A_2b])
            .map_err(|e| Error::Layout(format!("PDF standard: {e:?}")))?;
        let options = PdfOptions {
            ident: Smart::Custom(ident),
            // White label: the creditor's name (or nothing) as /Creator, XMP CreatorTool and
            // softwareAgent, never the software's.
            creator: Smart::Custom(Some(data.creditor.trim().to_owned()).filter(|c| !c.is_empty())),
            timestamp,
            page_ranges: None,
            standards,
            tagged: true,
            pretty: false,
        };
        typst_pdf::pdf(&doc, &options).map_err(|diags| {
            Error::Layout(
                diags
                    .iter()
                    .map(|d| d.message.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }
}

/// Decode a model's base64 logo.
pub fn decode_logo(model: &LetterModel) -> Result<Option<Vec<u8>>> {
    model
        .letterhead
        .logo
        .as_ref()
        .map(|logo| {
            base64::engine::general_purpose::STANDARD
                .decode(logo.data_base64.trim())
                .map_err(|e| Error::invalid("letterhead.logo.data_base64", e.to_string()))
        })
        .transpose()
}
