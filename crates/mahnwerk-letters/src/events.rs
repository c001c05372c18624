//! The events of the letters service, written on the case stream `{tenant}/case/{id}` (and the
//! tenant's letterhead stream `{tenant}/letterhead/default`). Type names and JSON payloads are
//! the public contract (docs/events.md); they live in this pure crate so every reader of the
//! case file (collection, console) shares them.

use crate::model::{LetterKind, Letterhead};
use serde::{Deserialize, Serialize};

/// `letter.rendered.v1`: the letter for a step was rendered and stored; it is about to be sent.
/// Appended with the case version read by the check just before sending, so a settlement,
/// pause or dispute recorded in between makes the append conflict and the check run again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterRendered {
    /// Stable id of the letter (one per case, step, recipient and resend).
    pub letter_id: String,
    /// The dunning step (1-based).
    pub step: u32,
    pub kind: LetterKind,
    /// Hex SHA-256 of the PDF in the document store.
    pub document_sha256: String,
    /// Version of the tenant's letterhead stream the letter used (0: none configured).
    pub letterhead_version: u64,
    /// Template names overridden by the tenant (the rest are the defaults of this release).
    #[serde(default)]
    pub templates: Vec<String>,
    /// Rendered for the creditor to send themselves: never dispatched.
    #[serde(default)]
    pub draft: bool,
    /// The RF creditor reference the letter prints (GiroCode and remittance line), electronic
    /// format: what a debtor pays with. Derived by `mahnwerk_formats::rf::for_invoice`, which
    /// the matching engine uses too. Absent on drafts and on letters rendered before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_reference: Option<String>,
}

/// `letter.dispatched.v1`: the letter was handed to a channel and accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterDispatched {
    pub letter_id: String,
    pub step: u32,
    /// `email` or `post`.
    pub channel: String,
    /// The SMTP Message-ID (email) or the spool job id (post).
    pub provider_id: String,
    pub document_sha256: String,
    /// Sent by registered mail (Einschreiben).
    #[serde(default)]
    pub registered: bool,
}

/// `letter.failed.v1`: a channel refused the letter, or its outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterFailed {
    pub letter_id: String,
    pub step: u32,
    pub channel: String,
    /// `debtor` or `creditor`.
    pub recipient: String,
    /// What happened, without personal data (e.g. `smtp 550`, `outcome unknown`).
    pub reason: String,
    /// The channel will not take it on a retry (an SMTP 5xx).
    pub permanent: bool,
    /// Killed during the send: it may or may not have gone out. Never retried automatically;
    /// an operator decides (`Resend`).
    pub review_required: bool,
    /// The channel tried next, if any (e.g. `post` after a permanent email rejection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

/// `letter.copy_sent.v1`: the creditor's copy of a letter was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterCopySent {
    pub letter_id: String,
    pub step: u32,
    /// `email` (to the tenant's copy address) or `inbox` (the creditor inbox in the console).
    pub channel: String,
    /// Message-ID of the copy email, or the inbox entry id.
    pub provider_id: String,
    pub document_sha256: String,
}

/// `letter.suppressed.v1`: no letter went out because of the case's state just before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterSuppressed {
    pub letter_id: String,
    pub step: u32,
    /// `settled`, `paused`, `disputed`, `cancelled`, `credited`, `written_off`.
    pub reason: String,
}

/// `letter.held.v1`: the letter cannot go out as the step says and waits for the creditor,
/// e.g. by post to a debtor without a postal address (an imported e-invoice that named only
/// the country). Nothing was rendered; it is rendered and sent once the reason is gone (the
/// address given, `invoice.debtor_address_updated.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterHeld {
    pub letter_id: String,
    pub step: u32,
    /// The channel it waits for (`post`).
    pub channel: String,
    /// Why, without personal data: `postal address missing`.
    pub reason: String,
}

/// `letter.resend_requested.v1`: an operator asked for a letter to be sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LetterResendRequested {
    /// The request's idempotency key.
    pub request_id: String,
    pub step: u32,
    /// The id of the new letter.
    pub letter_id: String,
    /// The API key (or operator) who asked.
    pub actor: String,
    pub note: String,
}

/// Where the creditor's copy of every letter goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum CopyTo {
    /// Emailed to this address.
    Email { address: String },
    /// Kept in the creditor's inbox in the console.
    Inbox,
}

/// A tenant's letter settings (`letterhead.updated.v1` on `{tenant}/letterhead/default`): the
/// letterhead printed on every letter plus the sender identity of the emails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LetterSettings {
    pub letterhead: Letterhead,
    /// Name and role under the closing.
    #[serde(default)]
    pub signature: Option<String>,
    /// `From:` of the emails (the creditor's address: white label).
    pub email_from: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    pub copy_to: CopyTo,
    /// Fall back to post when an email is permanently rejected (default true).
    #[serde(default = "yes")]
    pub email_fallback_to_post: bool,
    /// Steps (1-based) sent by registered mail when they go by post.
    #[serde(default)]
    pub registered_steps: Vec<u32>,
    /// Steps (1-based) sent as "Einschreiben mit Rückschein" (registered with return receipt)
    /// when they go by post; registered is implied.
    #[serde(default)]
    pub return_receipt_steps: Vec<u32>,
    /// The creditor sends the letters themselves: render drafts, never dispatch.
    #[serde(default)]
    pub drafts_only: bool,
}

impl LetterSettings {
    /// Whether `step` goes by registered post (with or without return receipt).
    pub fn is_registered(&self, step: u32) -> bool {
        self.registered_steps.contains(&step) || self.return_receipt_steps.contains(&step)
    }

    /// Whether `step` goes as "Einschreiben mit Rückschein".
    pub fn return_receipt(&self, step: u32) -> bool {
        self.return_receipt_steps.contains(&step)
    }

    /// The Vermerkzone endorsement of `step` when it goes by post.
    pub fn endorsement(&self, step: u32) -> Option<crate::model::Endorsement> {
        if self.return_receipt(step) {
            Some(crate::model::Endorsement::RegisteredWithReturnReceipt)
        } else if self.is_registered(step) {
            Some(crate::model::Endorsement::Registered)
        } else {
            None
        }
    }
}

fn yes() -> bool {
    true
}

/// `template.uploaded.v1` on the letterhead stream: a tenant's template override, checked
/// before it was recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateUploaded {
    /// e.g. `first_notice.de.j2`.
    pub name: String,
    pub source: String,
}

/// The letter kind of a dunning step: one mapping for the dunning core's `template_id`s
/// (`reminder`, `dunning-1`, `dunning-final`) and this crate's kinds (`first_notice`, …).
/// Unknown ids fall back by step number: 1 reminder, 2 first notice, later last notice.
pub fn kind_for_template(template_id: &str, step: u32) -> LetterKind {
    match template_id {
        "reminder" | "payment_reminder" => LetterKind::Reminder,
        "dunning-1" | "dunning_1" | "first_notice" => LetterKind::FirstNotice,
        "dunning-final" | "dunning_final" | "last_notice" => LetterKind::LastNotice,
        "consolidated" | "consolidated_notice" => LetterKind::ConsolidatedNotice,
        other => LetterKind::parse(other).unwrap_or(match step {
            0 | 1 => LetterKind::Reminder,
            2 => LetterKind::FirstNotice,
            _ => LetterKind::LastNotice,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dunning_template_ids_map_to_letter_kinds() {
        assert_eq!(kind_for_template("reminder", 1), LetterKind::Reminder);
        assert_eq!(kind_for_template("dunning-1", 2), LetterKind::FirstNotice);
        assert_eq!(
            kind_for_template("dunning-final", 3),
            LetterKind::LastNotice
        );
        assert_eq!(
            kind_for_template("first_notice", 9),
            LetterKind::FirstNotice
        );
        assert_eq!(kind_for_template("custom", 2), LetterKind::FirstNotice);
        assert_eq!(kind_for_template("custom", 4), LetterKind::LastNotice);
    }
}
