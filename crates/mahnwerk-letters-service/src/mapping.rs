//! The one mapping from a dunning step (`dunning.step_reached.v1`, with its amounts and their
//! derivation) and the invoice (`invoice.issued.v1`) to the letter model. Pure.
//!
//! - kind: [`mahnwerk_letters::events::kind_for_template`] (the dunning core's `reminder`,
//!   `dunning-1`, `dunning-final` and the letters crate's names); tone: same three names.
//! - claim lines: the open principal, every interest period of the step's derivation (period,
//!   days, rate = base rate + 5/9 points, principal), the lump sum and fee of this step, and
//!   whatever else the balance holds (costs of earlier letters, or payments credited to costs
//!   and interest) as one line, so the table adds up to the step's balance, which the model
//!   states as its total and the renderer checks.

use crate::error::{Error, Result};
use mahnwerk_domain::{CaseId, Invoice, Money, Personal};
use mahnwerk_dunning::dunning_case::StepReached;
use mahnwerk_letters::events::{LetterSettings, kind_for_template};
use mahnwerk_letters::model::{
    self, ClaimLine, Form, Language, LetterKind, LetterModel, Notices, PaymentDetails, Recipient,
    References, Tone,
};

pub fn tone(t: mahnwerk_dunning::policy::Tone) -> Tone {
    use mahnwerk_dunning::policy::Tone as D;
    match t {
        D::Friendly => Tone::Friendly,
        D::Neutral => Tone::Neutral,
        D::Firm => Tone::Firm,
    }
}

/// The letter's language from the debtor's BCP 47 tag (`de`, `de-AT`, `en-GB`); German otherwise.
pub fn language(tag: &str) -> Language {
    let primary = tag.split(['-', '_']).next().unwrap_or_default();
    Language::parse(&primary.to_ascii_lowercase()).unwrap_or(Language::De)
}

/// The payment reference: the invoice's when it is a valid RF reference, else one made from
/// the invoice number (letters and digits, at most 21), else from the case id. The derivation is
/// [`mahnwerk_formats::rf::for_invoice`], which the matching engine uses too: a debtor paying
/// with the reference of a letter is matched by it.
pub fn rf_reference(invoice: &Invoice, case: CaseId) -> String {
    mahnwerk_formats::rf::for_invoice(
        invoice.payment_reference.as_deref(),
        invoice.number.as_str(),
        &case.0.simple().to_string(),
    )
    .map(|r| r.as_str().to_owned())
    .unwrap_or_default()
}

fn field(e: mahnwerk_domain::MoneyError) -> Error {
    Error::Invalid {
        field: "step.balance".into(),
        reason: e.to_string(),
    }
}

/// Build the letter for `step` of the case of `invoice`; `endorsement`: it goes by registered
/// post, with or without return receipt (the Vermerkzone says so).
pub fn letter_model(
    step: &StepReached,
    invoice: &Invoice,
    case: CaseId,
    settings: &LetterSettings,
    endorsement: Option<model::Endorsement>,
) -> Result<LetterModel> {
    let kind = kind_for_template(&step.template_id, step.number);
    let language = language(&invoice.debtor.language);
    let currency = step.balance.currency;
    let mut claims = vec![ClaimLine::Invoice {
        number: invoice.number.as_str().to_owned(),
        date: invoice.issue_date,
        due_date: Some(invoice.due_date),
        amount: step.principal_open,
    }];
    if let Some(calc) = &step.interest {
        for p in calc.periods.iter().filter(|p| p.interest > 0) {
            claims.push(ClaimLine::Interest {
                invoice: Some(invoice.number.as_str().to_owned()),
                from: p.from,
                to: p.to,
                days: u32::try_from((p.to - p.from).num_days() + 1).unwrap_or(0),
                rate_percent: p.rate,
                principal: Money::new(p.principal, currency),
                amount: Money::new(p.interest, currency),
            });
        }
    }
    if step.lump_sum.minor > 0 {
        claims.push(ClaimLine::LumpSum {
            invoice: Some(invoice.number.as_str().to_owned()),
            amount: step.lump_sum,
        });
    }
    if step.fee.minor > 0 {
        claims.push(ClaimLine::Fee {
            label: Some(step.title.clone()),
            amount: step.fee,
        });
    }
    let mut listed = Money::zero(currency);
    for line in &claims {
        listed = listed.checked_add(line.signed_amount()).map_err(field)?;
    }
    let rest = step
        .balance
        .checked_add(Money::new(-listed.minor, currency))
        .map_err(field)?;
    if rest.minor > 0 {
        claims.push(ClaimLine::Fee {
            label: Some(
                match language {
                    Language::De => "Kosten früherer Schreiben",
                    Language::En => "Costs of earlier letters",
                }
                .into(),
            ),
            amount: rest,
        });
    } else if rest.minor < 0 {
        claims.push(ClaimLine::Payment {
            date: step.date,
            amount: Money::new(-rest.minor, currency),
        });
    }
    let debtor = &invoice.debtor;
    let account = &invoice.creditor_account;
    Ok(LetterModel {
        kind,
        tone: tone(step.tone),
        language,
        form: Form::FormB,
        date: step.date,
        letterhead: settings.letterhead.clone(),
        recipient: Recipient {
            name: debtor.name.clone(),
            extra_lines: Personal::new(Vec::new()),
            address: debtor.address.clone(),
        },
        references: References {
            customer_number: debtor.customer_number.clone(),
            your_sign: None,
            our_sign: None,
            case_reference: Some(invoice.number.as_str().to_owned()),
            contact_name: None,
        },
        title: Some(step.title.clone()),
        salutation: None,
        claims,
        total: Some(step.balance),
        deadline: Some(step.deadline.deadline),
        payment: Some(PaymentDetails {
            recipient: account.holder.clone(),
            iban: account.iban.clone(),
            bic: account.bic.clone(),
            reference: rf_reference(invoice, case),
            amount: None,
        }),
        closing: None,
        signature: settings.signature.clone(),
        notices: Notices {
            consumer_default_notice: debtor.kind == mahnwerk_domain::DebtorKind::Consumer
                && !invoice.default_notice
                && step.default.is_none(),
            disregard_if_paid: true,
            offer_payment_plan: kind != LetterKind::Reminder,
        },
        payment_plan: None,
        copy_of: None,
        interest_method: step.interest.as_ref().and_then(|calc| {
            let margin = calc.periods.first()?.margin;
            Some(model::InterestMethod {
                margin_points: margin,
                day_count: match calc.day_count {
                    mahnwerk_dunning::law::interest::DayCount::Act365 => model::DayCount::Act365,
                    mahnwerk_dunning::law::interest::DayCount::ActAct => model::DayCount::ActAct,
                },
            })
        }),
        endorsement,
    })
}

/// One invoice of a consolidated letter: its case, its line's step, its invoice.
#[derive(Debug, Clone)]
pub struct Member {
    pub case: CaseId,
    pub step: StepReached,
    pub invoice: Invoice,
}

/// The RF reference of a consolidated letter ([`mahnwerk_formats::rf::for_consolidation`]).
pub fn consolidation_reference(consolidation_id: &str) -> String {
    mahnwerk_formats::rf::for_consolidation(consolidation_id)
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default()
}

/// The consolidated letter ("Sammelmahnung") over `members` (oldest due date first): each
/// invoice's lines as its own letter would list them (open principal, interest periods, lump
/// sum, the one fee on the line that carries it, earlier costs), the total of their balances,
/// the title, tone and (latest) deadline of the consolidation, and one RF reference for the
/// whole letter, which every member's `letter.rendered.v1` records for the matching.
pub fn consolidated_model(
    c: &mahnwerk_dunning::consolidate::Consolidation,
    members: &[Member],
    settings: &LetterSettings,
    endorsement: Option<model::Endorsement>,
) -> Result<LetterModel> {
    let first = members
        .first()
        .ok_or_else(|| Error::invalid("consolidation", "no member left"))?;
    let mut model = letter_model(
        &first.step,
        &first.invoice,
        first.case,
        settings,
        endorsement,
    )?;
    let currency = first.step.balance.currency;
    let mut claims = Vec::new();
    let mut total = Money::zero(currency);
    let mut consumer_notice = false;
    for m in members {
        let one = letter_model(&m.step, &m.invoice, m.case, settings, endorsement)?;
        claims.extend(one.claims);
        total = total.checked_add(m.step.balance).map_err(field)?;
        consumer_notice |= one.notices.consumer_default_notice;
        if model.interest_method.is_none() {
            model.interest_method = one.interest_method;
        }
    }
    model.kind = LetterKind::ConsolidatedNotice;
    model.tone = tone(c.tone);
    model.title = Some(c.title.clone());
    model.claims = claims;
    model.total = Some(total);
    model.deadline = Some(c.deadline);
    model.references.case_reference = None;
    model.notices.consumer_default_notice = consumer_notice;
    model.notices.offer_payment_plan = true;
    if let Some(p) = &mut model.payment {
        p.reference = consolidation_reference(&c.id);
    }
    Ok(model)
}

/// The window of a letter emailed to a debtor without a postal address (an e-invoice that
/// named only the country): the name, "per E-Mail" and the email address (and the country),
/// never an empty window.
pub fn email_window(model: &mut LetterModel, invoice: &Invoice) {
    let email = invoice
        .debtor
        .email
        .as_ref()
        .map(|e| e.expose().clone())
        .unwrap_or_default();
    let by = match model.language {
        Language::De => "per E-Mail",
        Language::En => "by email",
    };
    let country = invoice.debtor.address.expose().country.clone();
    model.recipient.address = Personal::new(mahnwerk_domain::PostalAddress {
        street: vec![by.to_owned()],
        postal_code: String::new(),
        city: email,
        country,
        region: None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use mahnwerk_dunning::law::calendar::Deadline;
    use mahnwerk_dunning::law::interest::{DayCount, InterestCalculation, InterestPeriod};
    use mahnwerk_letters::events::CopyTo;
    use rust_decimal::Decimal;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn fixture(balance: i64) -> (StepReached, Invoice, LetterSettings) {
        let sample = mahnwerk_letters::model::sample();
        let invoice: Invoice = serde_json::from_value(serde_json::json!({
            "number": "RE-2026-0101", "issue_date": "2026-01-15", "due_date": "2026-01-29",
            "currency": "EUR", "net": 100000, "tax": 19000, "gross": 119000,
            "debtor": {"name": "Bäckerei Größl OHG", "kind": "business",
                "address": {"street": ["Mühlenweg 12"], "postal_code": "80331", "city": "München", "country": "DE"},
                "email": null, "language": "de", "customer_number": "K-1", "vat_id": null},
            "payment_reference": null,
            "creditor_account": {"iban": "DE89370400440532013000", "bic": null, "holder": "Muster Handels GmbH"},
            "default_notice": false
        }))
        .expect("invoice");
        let step = StepReached {
            number: 2,
            title: "1. Mahnung".into(),
            tone: mahnwerk_dunning::policy::Tone::Neutral,
            template_id: "dunning-1".into(),
            channels: vec![],
            date: d(2026, 3, 16),
            fee: Money::eur(500),
            fee_waived: None,
            lump_sum: Money::eur(4000),
            fee_offset: None,
            interest_charged: Money::eur(1540),
            interest: Some(InterestCalculation {
                currency: mahnwerk_domain::Currency::EUR,
                day_count: DayCount::Act365,
                rounding: String::new(),
                periods: vec![InterestPeriod {
                    from: d(2026, 1, 30),
                    to: d(2026, 3, 16),
                    days: 46,
                    base_rate: Decimal::new(127, 2),
                    margin: Decimal::from(9),
                    rate: Decimal::new(1027, 2),
                    day_basis: 365,
                    principal: 119_000,
                    interest: 1540,
                    to_verify: false,
                    provisional: false,
                }],
                interest_total: 1540,
                allocations: vec![],
                principal_open: 119_000,
                interest_open: 1540,
                costs_open: 4500,
                surplus: 0,
                provisional: false,
            }),
            default: None,
            creates_default: false,
            deadline: Deadline {
                deadline: d(2026, 3, 30),
                unmoved: d(2026, 3, 30),
                reasons: vec![],
            },
            principal_open: Money::eur(119_000),
            balance: Money::eur(balance),
            draft: false,
            consolidation: None,
            repeat: None,
        };
        let settings = LetterSettings {
            letterhead: sample.letterhead,
            signature: None,
            email_from: "a@b.test".into(),
            reply_to: None,
            copy_to: CopyTo::Inbox,
            email_fallback_to_post: true,
            registered_steps: vec![],
            return_receipt_steps: vec![],
            drafts_only: false,
        };
        (step, invoice, settings)
    }

    #[test]
    fn claim_lines_add_up_to_the_steps_balance_with_the_interest_derivation() {
        let (step, invoice, settings) = fixture(125_040);
        let case = CaseId(uuid::Uuid::nil());
        let m = letter_model(&step, &invoice, case, &settings, None).expect("model");
        assert_eq!(m.kind, LetterKind::FirstNotice);
        assert_eq!(m.validate().expect("valid"), Money::eur(125_040));
        assert!(matches!(m.claims[1], ClaimLine::Interest { days: 46, .. }));
        assert_eq!(
            m.interest_method.map(|i| i.margin_points),
            Some(Decimal::from(9))
        );
        // Earlier letters' costs still open: one more line, the total still the balance.
        let (step, invoice, settings) = fixture(125_290);
        let m = letter_model(&step, &invoice, case, &settings, None).expect("model");
        assert_eq!(m.validate().expect("valid"), Money::eur(125_290));
        // Payments credited to costs and interest (§ 367): a payment line.
        let (step, invoice, settings) = fixture(124_000);
        let m = letter_model(
            &step,
            &invoice,
            case,
            &settings,
            Some(model::Endorsement::Registered),
        )
        .expect("model");
        assert_eq!(m.validate().expect("valid"), Money::eur(124_000));
        assert!(matches!(m.claims.last(), Some(ClaimLine::Payment { .. })));
        assert!(m.endorsement.is_some());
        assert!(
            mahnwerk_formats::rf::RfReference::parse(&m.payment.expect("payment").reference)
                .is_ok()
        );
    }

    /// Issue 15: a debtor with only a country (an imported Kleinbetragsrechnung) is never
    /// rendered with an empty window: by email the window says so, and without the email
    /// window the model is refused.
    #[test]
    fn an_emailed_letter_to_a_debtor_without_postal_address_names_the_email_in_the_window() {
        let (step, mut invoice, settings) = fixture(125_040);
        invoice.debtor.address = Personal::new(mahnwerk_domain::PostalAddress {
            country: "DE".into(),
            ..Default::default()
        });
        invoice.debtor.email = Some(Personal::new("kunde@debtor.test".into()));
        let case = CaseId(uuid::Uuid::nil());
        let mut m = letter_model(&step, &invoice, case, &settings, None).expect("model");
        assert!(m.validate().is_err(), "an empty window is refused");
        email_window(&mut m, &invoice);
        assert_eq!(m.validate().expect("valid"), Money::eur(125_040));
        assert_eq!(
            m.recipient_lines(),
            ["Bäckerei Größl OHG", "per E-Mail", "kunde@debtor.test"]
        );
    }

    /// The GiroCode pays the account holder the invoice names (a factor, a parent company),
    /// not the letterhead's name; without a holder the letterhead name stands in.
    #[test]
    fn qr_payee_name_is_the_account_holder_when_one_is_given() {
        let (step, mut invoice, settings) = fixture(125_040);
        invoice.creditor_account.holder = Some("Muster Factoring KG".into());
        assert_ne!(settings.letterhead.name, "Muster Factoring KG");
        let case = CaseId(uuid::Uuid::nil());
        let renderer =
            mahnwerk_letters::LetterRenderer::new(mahnwerk_letters::TemplateSet::defaults());
        let name_line = |m: &LetterModel| {
            let letter = renderer.render(m).expect("render");
            let payload = letter.epc_payload.expect("a GiroCode");
            // EPC069-12: BCD, version, charset, SCT, BIC, name, IBAN, amount, …
            payload.lines().nth(5).expect("name line").to_owned()
        };
        let m = letter_model(&step, &invoice, case, &settings, None).expect("model");
        assert_eq!(name_line(&m), "Muster Factoring KG");
        invoice.creditor_account.holder = None;
        let m = letter_model(&step, &invoice, case, &settings, None).expect("model");
        assert_eq!(name_line(&m), settings.letterhead.name);
    }
}
