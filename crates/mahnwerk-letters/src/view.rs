//! Views of a validated model: the variables templates see ([`TemplateContext`]) and the
//! preformatted claim table and payment block that the PDF and the email bodies share.

use crate::format::{self, labels};
use crate::model::{ClaimLine, LetterModel};
use mahnwerk_domain::Money;
use mahnwerk_formats::rf::RfReference;
use serde::Serialize;

/// The variables a template may use. Amounts and dates are already formatted for the letter's
/// language, so templates never do arithmetic or formatting. Optional parts are `none` when the
/// letter lacks them (test with `{% if deadline %}`).
#[derive(Debug, Clone, Serialize)]
pub struct TemplateContext {
    /// `reminder`, `first_notice`, …
    pub kind: &'static str,
    /// `friendly`, `neutral` or `firm`.
    pub tone: &'static str,
    /// `de` or `en`.
    pub language: &'static str,
    /// Letter date, formatted.
    pub date: String,
    pub creditor: CreditorVars,
    pub recipient: RecipientVars,
    /// Salutation given in the model, if any.
    pub salutation: Option<String>,
    /// Title given in the model, if any.
    pub title: Option<String>,
    /// Closing given in the model, if any.
    pub closing: Option<String>,
    /// Name under the closing, if any.
    pub signature: Option<String>,
    /// Total of the claim table, formatted.
    pub total: String,
    /// Payment deadline, formatted.
    pub deadline: Option<String>,
    /// The open invoices.
    pub invoices: Vec<InvoiceVars>,
    /// Number of open invoices.
    pub invoice_count: usize,
    /// Sum of interest lines, when there are any.
    pub interest: Option<String>,
    /// Sum of fees, when there are any.
    pub fees: Option<String>,
    /// Sum of € 40 lump sums, when there are any.
    pub lump_sum: Option<String>,
    /// Sum of payments received, when there are any.
    pub payments_received: Option<String>,
    pub payment: Option<PaymentVars>,
    pub notices: NoticeVars,
    pub references: ReferenceVars,
    pub plan: Option<PlanVars>,
    pub copy: Option<CopyVars>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreditorVars {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientVars {
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvoiceVars {
    pub number: String,
    pub date: String,
    pub due_date: Option<String>,
    pub amount: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PaymentVars {
    pub payee: String,
    pub iban: String,
    pub bic: Option<String>,
    pub reference: String,
    pub amount: String,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct NoticeVars {
    pub consumer_default_notice: bool,
    pub disregard_if_paid: bool,
    pub offer_payment_plan: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReferenceVars {
    pub customer_number: Option<String>,
    pub case_reference: Option<String>,
    pub our_sign: Option<String>,
    pub your_sign: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanVars {
    pub agreed_on: String,
    pub count: usize,
    pub instalments: Vec<InstalmentVars>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstalmentVars {
    pub number: usize,
    pub due: String,
    pub amount: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyVars {
    pub debtor_name: String,
    pub letter_title: String,
    pub sent_on: String,
}

/// One row of the claim table, formatted: description, date or period, amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    pub text: String,
    pub period: String,
    pub amount: String,
}

/// Sum the lines that `pick` selects; `None` when none does.
fn sum_of(model: &LetterModel, pick: impl Fn(&ClaimLine) -> bool) -> Option<Money> {
    let mut sum: Option<Money> = None;
    for line in model.claims.iter().filter(|l| pick(l)) {
        let amount = match line {
            ClaimLine::Payment { amount, .. } => *amount,
            other => other.signed_amount(),
        };
        sum = Some(match sum {
            None => amount,
            // Currencies were checked by `validate`; a mismatch cannot reach here.
            Some(s) => s.checked_add(amount).unwrap_or(s),
        });
    }
    sum
}

impl TemplateContext {
    /// Build the variables of a model that passed [`LetterModel::validate`] with `total`.
    pub fn new(model: &LetterModel, total: Money) -> Self {
        let lang = model.language;
        let fmt_money = |m: Money| format::money(m, lang);
        let fmt_date = |d| format::date(d, lang);
        let invoices: Vec<InvoiceVars> = model
            .claims
            .iter()
            .filter_map(|l| match l {
                ClaimLine::Invoice {
                    number,
                    date,
                    due_date,
                    amount,
                } => Some(InvoiceVars {
                    number: number.clone(),
                    date: fmt_date(*date),
                    due_date: due_date.map(fmt_date),
                    amount: fmt_money(*amount),
                }),
                _ => None,
            })
            .collect();
        let payment = model.payment.as_ref().map(|p| PaymentVars {
            payee: p
                .recipient
                .clone()
                .unwrap_or_else(|| model.letterhead.name.clone()),
            iban: p.iban.to_print_format(),
            bic: p.bic.as_ref().map(|b| b.as_str().to_owned()),
            reference: RfReference::parse(&p.reference)
                .map(|r| r.to_print_format())
                .unwrap_or_else(|_| p.reference.clone()),
            amount: fmt_money(p.amount.unwrap_or(total)),
        });
        TemplateContext {
            kind: model.kind.as_str(),
            tone: model.tone.as_str(),
            language: lang.as_str(),
            date: fmt_date(model.date),
            creditor: CreditorVars {
                name: model.letterhead.name.clone(),
            },
            recipient: RecipientVars {
                name: model.recipient.name.expose().clone(),
            },
            salutation: model.salutation.clone(),
            title: model.title.clone(),
            closing: model.closing.clone(),
            signature: model.signature.clone(),
            total: fmt_money(total),
            deadline: model.deadline.map(fmt_date),
            invoice_count: invoices.len(),
            invoices,
            interest: sum_of(model, |l| matches!(l, ClaimLine::Interest { .. })).map(fmt_money),
            fees: sum_of(model, |l| matches!(l, ClaimLine::Fee { .. })).map(fmt_money),
            lump_sum: sum_of(model, |l| matches!(l, ClaimLine::LumpSum { .. })).map(fmt_money),
            payments_received: sum_of(model, |l| matches!(l, ClaimLine::Payment { .. }))
                .map(fmt_money),
            payment,
            notices: NoticeVars {
                consumer_default_notice: model.notices.consumer_default_notice,
                disregard_if_paid: model.notices.disregard_if_paid,
                offer_payment_plan: model.notices.offer_payment_plan,
            },
            references: ReferenceVars {
                customer_number: model.references.customer_number.clone(),
                case_reference: model.references.case_reference.clone(),
                our_sign: model.references.our_sign.clone(),
                your_sign: model.references.your_sign.clone(),
            },
            plan: model.payment_plan.as_ref().map(|p| PlanVars {
                agreed_on: fmt_date(p.agreed_on),
                count: p.instalments.len(),
                instalments: p
                    .instalments
                    .iter()
                    .enumerate()
                    .map(|(i, inst)| InstalmentVars {
                        number: i + 1,
                        due: fmt_date(inst.due),
                        amount: fmt_money(inst.amount),
                    })
                    .collect(),
            }),
            copy: model.copy_of.as_ref().map(|c| CopyVars {
                debtor_name: c.debtor_name.expose().clone(),
                letter_title: c.letter_title.clone(),
                sent_on: fmt_date(c.sent_on),
            }),
        }
    }
}

/// The claim table rows of a model, in model order.
pub fn claim_rows(model: &LetterModel) -> Vec<Row> {
    let lang = model.language;
    let l = labels(lang);
    let m = |x: Money| format::money(x, lang);
    let d = |x| format::date(x, lang);
    model
        .claims
        .iter()
        .map(|line| match line {
            ClaimLine::Invoice {
                number,
                date,
                due_date,
                amount,
            } => Row {
                text: format!("{} {number} {} {}", l.invoice, l.invoice_of, d(*date)),
                period: due_date
                    .map(|due| format!("{} {}", l.due, d(due)))
                    .unwrap_or_default(),
                amount: m(*amount),
            },
            ClaimLine::Fee { label, amount } => Row {
                text: label.clone().unwrap_or_else(|| l.fee.to_owned()),
                period: String::new(),
                amount: m(*amount),
            },
            ClaimLine::Interest {
                invoice,
                from,
                to,
                days,
                rate_percent,
                principal,
                amount,
            } => {
                let on = invoice
                    .as_ref()
                    .map(|i| format!(" ({} {i})", l.invoice))
                    .unwrap_or_default();
                Row {
                    text: format!(
                        "{}{on} {} {}, {} {}",
                        l.interest,
                        l.interest_on,
                        m(*principal),
                        format::rate(*rate_percent, lang),
                        l.per_year
                    ),
                    period: format!("{} – {} ({days} {})", d(*from), d(*to), l.days),
                    amount: m(*amount),
                }
            }
            ClaimLine::LumpSum { invoice, amount } => Row {
                text: match invoice {
                    Some(i) => format!("{} ({} {i})", l.lump_sum, l.invoice),
                    None => l.lump_sum.to_owned(),
                },
                period: String::new(),
                amount: m(*amount),
            },
            ClaimLine::Payment { date, amount } => Row {
                text: l.payment_received.to_owned(),
                period: d(*date),
                amount: format::money(Money::new(-amount.minor, amount.currency), lang),
            },
        })
        .collect()
}
