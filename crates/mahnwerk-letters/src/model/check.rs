//! Parsing and validation of a letter model: every error names its field.

use super::*;
use crate::error::{Error, Result};
use mahnwerk_domain::{Currency, Money};

/// Longest free text accepted in a single-line field (name, title, line of an address).
const MAX_LINE: usize = 200;
/// Characters of an address line that fit the 75 mm text width of the window at 10 pt without
/// wrapping (conservative: Libertinus Serif averages ~4.7 pt per character; ~50 wrap).
const ADDRESS_LINE_CHARS: usize = 42;
/// Most claim lines per letter; the table breaks across pages well before that.
const MAX_CLAIMS: usize = 500;

impl LetterModel {
    /// Parse the model's JSON; an error names the field (`payment.iban: invalid IBAN: …`).
    pub fn from_json(json: &str) -> Result<LetterModel> {
        let de = &mut serde_json::Deserializer::from_str(json);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            Error::invalid(
                if field == "." {
                    "model".to_owned()
                } else {
                    field
                },
                format!(
                    "{} (line {}, column {})",
                    strip_position(&inner.to_string()),
                    inner.line(),
                    inner.column()
                ),
            )
        })
    }

    /// The sum of the claim table in the letter's currency. Errors when the table is empty, mixes
    /// currencies or overflows.
    pub fn computed_total(&self) -> Result<Money> {
        let first = self
            .claims
            .first()
            .ok_or_else(|| Error::invalid("claims", "the claim table is empty"))?;
        let currency: Currency = first.signed_amount().currency;
        let mut total = Money::zero(currency);
        for (i, line) in self.claims.iter().enumerate() {
            total = total
                .checked_add(line.signed_amount())
                .map_err(|e| Error::invalid(format!("claims[{i}].amount"), e.to_string()))?;
        }
        Ok(total)
    }

    /// Check the model before rendering; every error names the field.
    pub fn validate(&self) -> Result<Money> {
        line_field("letterhead.name", &self.letterhead.name, true)?;
        line_field("letterhead.sender_line", &self.letterhead.sender_line, true)?;
        line_field("recipient.name", self.recipient.name.expose(), true)?;
        for (i, l) in self.recipient.extra_lines.expose().iter().enumerate() {
            line_field(&format!("recipient.extra_lines[{i}]"), l, true)?;
        }
        let addr = self.recipient.address.expose();
        for (i, l) in addr.street.iter().enumerate() {
            line_field(&format!("recipient.address.street[{i}]"), l, true)?;
        }
        line_field("recipient.address.city", &addr.city, true)?;
        line_field("recipient.address.postal_code", &addr.postal_code, false)?;
        // DIN 5008 Anschriftzone: at most 6 lines (name, extras, streets, city, country).
        let lines = self.recipient_lines().len();
        if lines > 6 {
            return Err(Error::invalid(
                "recipient",
                format!("the address has {lines} lines, the window field holds 6"),
            ));
        }
        // As printed: a line longer than the window is wide wraps and takes two (or more)
        // printed lines; six printed lines fill the 27.3 mm address zone at 10 pt.
        let printed: usize = self
            .recipient_fields()
            .iter()
            .map(|(_, l)| l.chars().count().div_ceil(ADDRESS_LINE_CHARS).max(1))
            .sum();
        if printed > 6 {
            let (field, line) = self
                .recipient_fields()
                .into_iter()
                .max_by_key(|(_, l)| l.chars().count())
                .unwrap_or_default();
            return Err(Error::invalid(
                field,
                format!(
                    "{} characters wrap in the window (at most {ADDRESS_LINE_CHARS} per printed line); the address would need {printed} printed lines, the window field holds 6",
                    line.chars().count()
                ),
            ));
        }
        for (field, value) in [("title", &self.title), ("salutation", &self.salutation)] {
            if let Some(v) = value {
                line_field(field, v, true)?;
            }
        }
        if self.claims.len() > MAX_CLAIMS {
            return Err(Error::invalid(
                "claims",
                format!("at most {MAX_CLAIMS} lines, got {}", self.claims.len()),
            ));
        }
        for (i, line) in self.claims.iter().enumerate() {
            let field = format!("claims[{i}]");
            if line.signed_amount().minor == 0
                || matches!(line, ClaimLine::Payment { amount, .. } if amount.is_negative())
            {
                return Err(Error::invalid(field, "amounts are positive and not zero"));
            }
            match line {
                ClaimLine::Invoice { amount, .. }
                | ClaimLine::Fee { amount, .. }
                | ClaimLine::LumpSum { amount, .. }
                    if amount.is_negative() =>
                {
                    return Err(Error::invalid(field, "amounts are positive and not zero"));
                }
                ClaimLine::Interest {
                    from,
                    to,
                    days,
                    amount,
                    rate_percent,
                    principal,
                    ..
                } => {
                    if principal.minor <= 0 {
                        return Err(Error::invalid(
                            format!("claims[{i}].principal"),
                            "the principal interest runs on is positive",
                        ));
                    }
                    if to < from {
                        return Err(Error::invalid(
                            field,
                            "interest period ends before it starts",
                        ));
                    }
                    let expected = (*to - *from).num_days() + 1;
                    if i64::from(*days) != expected {
                        return Err(Error::invalid(
                            format!("claims[{i}].days"),
                            format!("{from}..={to} has {expected} interest days, got {days}"),
                        ));
                    }
                    if amount.is_negative() || rate_percent.is_sign_negative() {
                        return Err(Error::invalid(field, "interest is never negative"));
                    }
                }
                _ => {}
            }
        }
        let total = self.computed_total()?;
        if let Some(stated) = self.total
            && stated != total
        {
            return Err(Error::invalid(
                "total",
                format!("the claim lines add up to {total}, the model states {stated}"),
            ));
        }
        if total.minor <= 0 {
            return Err(Error::invalid(
                "claims",
                format!("nothing is owed: total {total}"),
            ));
        }
        if let Some(p) = &self.payment {
            mahnwerk_formats::rf::RfReference::parse(&p.reference)
                .map_err(|e| Error::invalid("payment.reference", e.to_string()))?;
            if let Some(name) = &p.recipient {
                line_field("payment.recipient", name, true)?;
            }
        }
        if self.kind == LetterKind::PaymentPlanConfirmation {
            let plan = self.payment_plan.as_ref().ok_or_else(|| {
                Error::invalid("payment_plan", "required for a payment plan confirmation")
            })?;
            if plan.instalments.is_empty() {
                return Err(Error::invalid("payment_plan.instalments", "no instalments"));
            }
        }
        if let Some(plan) = &self.payment_plan {
            for (i, inst) in plan.instalments.iter().enumerate() {
                if inst.amount.minor <= 0 {
                    return Err(Error::invalid(
                        format!("payment_plan.instalments[{i}].amount"),
                        "amounts are positive and not zero",
                    ));
                }
            }
        }
        if self.kind == LetterKind::CreditorCopy && self.copy_of.is_none() {
            return Err(Error::invalid("copy_of", "required for a creditor copy"));
        }
        Ok(total)
    }

    /// The address lines with the field each comes from (for errors).
    fn recipient_fields(&self) -> Vec<(String, String)> {
        let lines = self.recipient_lines();
        let extras = self.recipient.extra_lines.expose().len();
        let streets = self.recipient.address.expose().street.len();
        lines
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let field = match i {
                    0 => "recipient.name".to_owned(),
                    i if i <= extras => format!("recipient.extra_lines[{}]", i - 1),
                    i if i <= extras + streets => {
                        format!("recipient.address.street[{}]", i - 1 - extras)
                    }
                    i if i == extras + streets + 1 => "recipient.address.city".to_owned(),
                    _ => "recipient.address.country".to_owned(),
                };
                (field, l)
            })
            .collect()
    }

    /// The lines of the address field: name, extra lines, street lines, `postal code city`, and
    /// the country (upper case) when it differs from the creditor's.
    pub fn recipient_lines(&self) -> Vec<String> {
        let addr = self.recipient.address.expose();
        let mut out = vec![self.recipient.name.expose().clone()];
        out.extend(self.recipient.extra_lines.expose().iter().cloned());
        out.extend(addr.street.iter().cloned());
        let city = format!("{} {}", addr.postal_code, addr.city);
        out.push(city.trim().to_owned());
        if !addr.country.is_empty() && !addr.country.eq_ignore_ascii_case(&self.letterhead.country)
        {
            out.push(crate::format::country_name(&addr.country, self.language).to_uppercase());
        }
        out
    }
}

/// serde_json's message without its trailing ` at line L column C`.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

fn line_field(field: &str, value: &str, required: bool) -> Result<()> {
    if required && value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_LINE {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_LINE} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}
