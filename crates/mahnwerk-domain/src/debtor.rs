//! The debtor: who owes the money. Consumer or business changes the law that applies.

use crate::error::FieldErrors;
use crate::personal::Personal;
use serde::{Deserialize, Serialize};

/// Consumer (§ 13 BGB) or business (§ 14 BGB): decides default interest (+5 / +9 pp), the € 40
/// lump sum and when default starts without a reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DebtorKind {
    Consumer,
    Business,
}

/// A postal address as printed in the window of a letter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PostalAddress {
    /// Street and house number, or a post box; one or two lines.
    pub street: Vec<String>,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
    /// ISO 3166-2 subdivision, e.g. `DE-BY` (see [`crate::subdivision`]): for a German debtor
    /// the federal state whose holidays move its payment dates (§ 193 BGB). `None`: not known
    /// (the tenant's state applies). Absent in events written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl PostalAddress {
    /// Street, postal code and city are all there: the address can go in a letter window.
    pub fn is_complete(&self) -> bool {
        !self.street.is_empty()
            && self.street.iter().all(|l| !l.trim().is_empty())
            && !self.postal_code.trim().is_empty()
            && !self.city.trim().is_empty()
    }
}

/// The debtor of one invoice. Personal fields are wrapped in [`Personal`] so they never reach a
/// log; the whole struct is the unit that is encrypted per debtor for GDPR erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debtor {
    pub name: Personal<String>,
    pub kind: DebtorKind,
    pub address: Personal<PostalAddress>,
    pub email: Option<Personal<String>>,
    /// BCP 47 primary language of the letters, e.g. `de`, `en`.
    pub language: String,
    /// The tenant's customer number for this debtor (not personal by itself).
    pub customer_number: Option<String>,
    /// VAT id (BT-48) when the debtor is a business.
    pub vat_id: Option<String>,
}

pub(crate) const MAX_TEXT: usize = 200;

pub(crate) fn check_text(errs: &mut FieldErrors, field: &str, value: &str, required: bool) {
    if required && value.trim().is_empty() {
        errs.push(field, "must not be empty");
    } else if value.chars().count() > MAX_TEXT {
        errs.push(field, format!("must be at most {MAX_TEXT} characters"));
    } else if value.chars().any(char::is_control) {
        errs.push(
            field,
            "must not contain control characters (CR, LF, NUL, ...)",
        );
    }
}

impl Debtor {
    /// Field-level checks; errors are named relative to the debtor (`address.city`).
    pub fn check(&self) -> FieldErrors {
        self.check_with(true)
    }

    /// [`Debtor::check`]; `address_required: false` accepts an address of only a country
    /// (an imported e-invoice that names no more, see `SourceDocument::postal_address_incomplete`);
    /// what is there must still be valid.
    pub fn check_with(&self, address_required: bool) -> FieldErrors {
        let mut errs = FieldErrors::default();
        check_text(&mut errs, "name", self.name.expose(), true);
        let addr = self.address.expose();
        if addr.street.is_empty() && address_required {
            errs.push("address.street", "must have at least one line");
        }
        if addr.street.len() > 3 {
            errs.push("address.street", "must have at most 3 lines");
        }
        for (i, line) in addr.street.iter().enumerate() {
            check_text(&mut errs, &format!("address.street[{i}]"), line, true);
        }
        check_text(
            &mut errs,
            "address.postal_code",
            &addr.postal_code,
            address_required,
        );
        if addr.postal_code.chars().count() > 16 {
            errs.push("address.postal_code", "must be at most 16 characters");
        }
        check_text(&mut errs, "address.city", &addr.city, address_required);
        if !crate::codes::is_country(&addr.country) {
            errs.push(
                "address.country",
                "must be an ISO 3166-1 alpha-2 code such as DE",
            );
        }
        if let Some(region) = &addr.region
            && let Err(why) = crate::subdivision::check_region(&addr.country, region)
        {
            errs.push("address.region", why);
        }
        if let Some(email) = &self.email {
            let e = email.expose();
            let valid = e.len() <= 254
                && e.split_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
                && !e.chars().any(char::is_whitespace);
            if !valid {
                errs.push("email", "not a valid email address");
            }
        }
        if !crate::codes::is_language(&self.language) {
            errs.push(
                "language",
                "must be an ISO 639-1 language, optionally with an ISO 3166-1 region (de, de-AT)",
            );
        }
        if let Some(n) = &self.customer_number {
            check_text(&mut errs, "customer_number", n, false);
        }
        if let Some(v) = &self.vat_id {
            check_text(&mut errs, "vat_id", v, false);
        }
        errs
    }
}
