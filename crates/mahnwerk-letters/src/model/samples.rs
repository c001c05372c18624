//! Sample letters for the examples, the benchmark, the CLI docs and the template check.

use super::*;
use chrono::NaiveDate;
use mahnwerk_domain::{Iban, Money, Personal, PostalAddress};
use rust_decimal::Decimal;

/// A complete sample letter (Form B, German, first notice to a business with two invoices,
/// interest and lump sum, GiroCode). Used by the examples, the benchmark, the CLI docs and the
/// template check, which renders every template against it.
pub fn sample() -> LetterModel {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    // Constants known to be valid.
    let iban: Iban = "DE89370400440532013000"
        .parse()
        .expect("constant IBAN is valid");
    LetterModel {
        kind: LetterKind::FirstNotice,
        tone: Tone::Neutral,
        language: Language::De,
        form: Form::FormB,
        date: d(2026, 3, 16),
        letterhead: Letterhead {
            name: "Muster Handels GmbH".into(),
            sender_line: "Muster Handels GmbH · Hauptstraße 1 · 10115 Berlin".into(),
            address: vec!["Hauptstraße 1".into(), "10115 Berlin".into()],
            logo: None,
            contact: vec![
                LabelValue {
                    label: "Telefon".into(),
                    value: "030 1234567".into(),
                },
                LabelValue {
                    label: "E-Mail".into(),
                    value: "buchhaltung@muster-handel.de".into(),
                },
            ],
            footer: vec![
                "Amtsgericht Charlottenburg HRB 123456 B".into(),
                "Geschäftsführerin: Erika Muster".into(),
                "USt-IdNr. DE123456789".into(),
            ],
            bank: Some(BankDetails {
                bank_name: "Commerzbank Köln".into(),
                iban: iban.clone(),
                bic: "COBADEFFXXX".parse().ok(),
            }),
            country: "DE".into(),
        },
        recipient: Recipient {
            name: Personal::new("Bäckerei Größl OHG".into()),
            extra_lines: Personal::new(vec!["z. Hd. Frau Jürgens".into()]),
            address: Personal::new(PostalAddress {
                street: vec!["Mühlenweg 12".into()],
                postal_code: "80331".into(),
                city: "München".into(),
                country: "DE".into(),
                region: None,
            }),
        },
        references: References {
            customer_number: Some("K-10042".into()),
            your_sign: None,
            our_sign: Some("EM/fb".into()),
            case_reference: Some("2026-000815".into()),
            contact_name: Some("Erika Muster".into()),
        },
        title: None,
        salutation: None,
        claims: vec![
            ClaimLine::Invoice {
                number: "RE-2026-0101".into(),
                date: d(2026, 1, 15),
                due_date: Some(d(2026, 1, 29)),
                amount: Money::eur(119_000),
            },
            ClaimLine::Invoice {
                number: "RE-2026-0117".into(),
                date: d(2026, 1, 22),
                due_date: Some(d(2026, 2, 5)),
                amount: Money::eur(45_990),
            },
            ClaimLine::Interest {
                invoice: Some("RE-2026-0101".into()),
                from: d(2026, 1, 30),
                to: d(2026, 3, 16),
                days: 46,
                rate_percent: Decimal::new(1027, 2),
                principal: Money::eur(119_000),
                amount: Money::eur(1540),
            },
            ClaimLine::LumpSum {
                invoice: Some("RE-2026-0101".into()),
                amount: Money::eur(4000),
            },
            ClaimLine::Fee {
                label: None,
                amount: Money::eur(500),
            },
        ],
        total: Some(Money::eur(171_030)),
        deadline: Some(d(2026, 3, 30)),
        payment: Some(PaymentDetails {
            recipient: None,
            iban,
            bic: "COBADEFFXXX".parse().ok(),
            reference: "RF18539007547034".into(),
            amount: None,
        }),
        closing: None,
        signature: Some("Erika Muster, Buchhaltung".into()),
        notices: Notices {
            consumer_default_notice: false,
            disregard_if_paid: true,
            offer_payment_plan: true,
        },
        payment_plan: None,
        copy_of: None,
        interest_method: None,
        endorsement: None,
    }
}

/// The sample adapted to `kind`: a reminder for one invoice without costs, a last notice with a
/// higher fee, a consolidated notice over three invoices, a creditor copy, a payment plan.
pub fn sample_for(kind: LetterKind) -> LetterModel {
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    let mut m = sample();
    m.kind = kind;
    match kind {
        LetterKind::Reminder => {
            m.claims.truncate(1);
            m.total = Some(Money::eur(119_000));
            m.notices.offer_payment_plan = false;
        }
        LetterKind::FirstNotice => {}
        LetterKind::LastNotice => {
            m.claims.push(ClaimLine::Fee {
                label: Some("Mahngebühr 2. Mahnung".into()),
                amount: Money::eur(500),
            });
            m.total = Some(Money::eur(171_530));
        }
        LetterKind::ConsolidatedNotice => {
            m.claims.insert(
                2,
                ClaimLine::Invoice {
                    number: "RE-2026-0142".into(),
                    date: d(2026, 2, 2),
                    due_date: Some(d(2026, 2, 16)),
                    amount: Money::eur(23_800),
                },
            );
            m.total = Some(Money::eur(194_830));
        }
        LetterKind::CreditorCopy => {
            m.copy_of = Some(CopyOf {
                debtor_name: Personal::new("Bäckerei Größl OHG".into()),
                letter_title: "1. Mahnung".into(),
                sent_on: d(2026, 3, 16),
            });
            m.payment = None;
        }
        LetterKind::PaymentPlanConfirmation => {
            m.payment_plan = Some(PaymentPlan {
                agreed_on: d(2026, 3, 10),
                instalments: vec![
                    Instalment {
                        due: d(2026, 4, 1),
                        amount: Money::eur(85_515),
                    },
                    Instalment {
                        due: d(2026, 5, 1),
                        amount: Money::eur(85_515),
                    },
                ],
            });
            if let Some(p) = &mut m.payment {
                p.amount = Some(Money::eur(85_515));
            }
            m.deadline = Some(d(2026, 4, 1));
            m.notices.offer_payment_plan = false;
        }
    }
    m
}

/// The sample with every optional part filled in, for the template check: every variable a
/// template may use has a value.
pub fn full_sample() -> LetterModel {
    let mut m = sample();
    let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap_or_default();
    m.kind = LetterKind::PaymentPlanConfirmation;
    m.salutation = Some("Sehr geehrte Frau Jürgens,".into());
    m.title = Some("Betreff".into());
    m.closing = Some("Mit freundlichen Grüßen".into());
    m.notices = Notices {
        consumer_default_notice: true,
        disregard_if_paid: true,
        offer_payment_plan: true,
    };
    m.claims.push(ClaimLine::Payment {
        date: d(2026, 3, 1),
        amount: Money::eur(10_000),
    });
    m.total = None;
    m.payment_plan = Some(PaymentPlan {
        agreed_on: d(2026, 3, 10),
        instalments: vec![
            Instalment {
                due: d(2026, 4, 1),
                amount: Money::eur(80_515),
            },
            Instalment {
                due: d(2026, 5, 1),
                amount: Money::eur(80_515),
            },
        ],
    });
    m.copy_of = Some(CopyOf {
        debtor_name: Personal::new("Bäckerei Größl OHG".into()),
        letter_title: "1. Mahnung".into(),
        sent_on: d(2026, 3, 16),
    });
    m
}
