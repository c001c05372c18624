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
use mahnwerk_dunning::case::StepReached;
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
/// the invoice number (letters and digits, at most 21), else from the case id.
pub fn rf_reference(invoice: &Invoice, case: CaseId) -> String {
    use mahnwerk_formats::rf::RfReference;
    if let Some(r) = &invoice.payment_reference
        && let Ok(rf) = RfReference::parse(r)
    {
        return rf.as_str().to_owned();
    }
    let body: String = invoice
        .number
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let tail = |s: &str| s[s.len().saturating_sub(21)..].to_owned();
    RfReference::create(&tail(&body))
        .or_else(|_| RfReference::create(&tail(&case.0.simple().to_string())))
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default()
}

fn field(e: mahnwerk_domain::MoneyError) -> Error {
    Error::Invalid {
        field: "step.balance".into(),
        reason: e.to_string(),
    }
}

/// Build the letter for `step` of the case of `invoice`; `registered`: it goes by registered
/// post (the Vermerkzone says so).
pub fn letter_model(
    step: &StepReached,
    invoice: &Invoice,
    case: CaseId,
    settings: &LetterSettings,
    registered: bool,
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
        endorsement: registered.then_some(model::Endorsement::Registered),
    })
}
