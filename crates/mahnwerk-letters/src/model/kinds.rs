//! Which letter, in which tone, language and DIN 5008 form.

use serde::{Deserialize, Serialize};

/// Which letter this is; selects the default template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterKind {
    /// Friendly payment reminder (Zahlungserinnerung), usually the step that causes default.
    Reminder,
    /// First dunning notice (1. Mahnung).
    FirstNotice,
    /// Last dunning notice before handover to collection (Letzte Mahnung).
    LastNotice,
    /// One notice for several overdue invoices of the same debtor (Sammelmahnung).
    ConsolidatedNotice,
    /// Cover letter to the creditor with a copy of the letter sent to the debtor.
    CreditorCopy,
    /// Confirmation of an agreed payment plan (Ratenzahlungsvereinbarung).
    PaymentPlanConfirmation,
}

impl LetterKind {
    /// Every kind, in the order of a dunning run.
    pub const ALL: [LetterKind; 6] = [
        LetterKind::Reminder,
        LetterKind::FirstNotice,
        LetterKind::LastNotice,
        LetterKind::ConsolidatedNotice,
        LetterKind::CreditorCopy,
        LetterKind::PaymentPlanConfirmation,
    ];

    /// The snake_case name used in template file names (`first_notice.de.j2`) and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LetterKind::Reminder => "reminder",
            LetterKind::FirstNotice => "first_notice",
            LetterKind::LastNotice => "last_notice",
            LetterKind::ConsolidatedNotice => "consolidated_notice",
            LetterKind::CreditorCopy => "creditor_copy",
            LetterKind::PaymentPlanConfirmation => "payment_plan_confirmation",
        }
    }

    /// Parse the snake_case name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// The tone of the wording; every default template has all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Friendly,
    Neutral,
    Firm,
}

impl Tone {
    pub const ALL: [Tone; 3] = [Tone::Friendly, Tone::Neutral, Tone::Firm];

    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Friendly => "friendly",
            Tone::Neutral => "neutral",
            Tone::Firm => "firm",
        }
    }
}

/// Language of the letter. German and English have default templates and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    De,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::De, Language::En];

    /// ISO 639-1 code, as in template file names (`reminder.en.j2`).
    pub fn as_str(self) -> &'static str {
        match self {
            Language::De => "de",
            Language::En => "en",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == code)
    }
}

/// DIN 5008 layout: where the letterhead ends and the address field starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Form A: letterhead 27 mm, address field 27–72 mm from the top, fold marks at 87/192 mm.
    FormA,
    /// Form B (the common one): letterhead 45 mm, address field 45–90 mm, fold marks at 105/210 mm.
    #[default]
    FormB,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::FormA => "form_a",
            Form::FormB => "form_b",
        }
    }

    /// Top of the address field in millimetres from the top edge of the page.
    pub fn address_field_top_mm(self) -> u32 {
        match self {
            Form::FormA => 27,
            Form::FormB => 45,
        }
    }
}
