//! Collection partners and which one takes a case.

use super::{Refused, invalid};
use mahnwerk_domain::DebtorKind;
use serde::{Deserialize, Serialize};

/// How a tenant hands cases to this partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandoverMode {
    /// Right after the dunning case escalates.
    Auto,
    /// Only after an operator approves.
    Approval,
}

/// A collection partner of one tenant (stream `{tenant}/partner/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partner {
    pub id: String,
    pub name: String,
    /// Token of the public subject `<ns>.collection.{tenant}.{subject_token}.handover`.
    pub subject_token: String,
    /// Smallest principal open the partner takes (minor units of the case's currency).
    pub min_amount_minor: i64,
    /// Debtor kinds the partner takes (empty: all).
    pub debtor_kinds: Vec<DebtorKind>,
    /// ISO 3166-1 alpha-2 countries of debtors the partner takes (empty: all).
    pub countries: Vec<String>,
    pub mode: HandoverMode,
    /// Collection costs are not claimed when the debtor pays the principal (the creditor's
    /// choice: "nicht in Rechnung stellen, wenn der Kunde die Hauptsumme bezahlt").
    pub waive_costs_if_principal_paid: bool,
    pub active: bool,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl Partner {
    /// Check the fields; the first problem names its field.
    pub fn validate(&self) -> Result<(), Refused> {
        if !is_token(&self.id) {
            return Err(invalid("partner_id", "1–64 of a-z, 0-9, - and _"));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(invalid("name", "must be 1–200 characters"));
        }
        if !is_token(&self.subject_token) {
            return Err(invalid("subject_token", "1–64 of a-z, 0-9, - and _"));
        }
        if self.min_amount_minor < 0 {
            return Err(invalid("min_amount_minor", "must not be negative"));
        }
        for (i, c) in self.countries.iter().enumerate() {
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    &format!("countries[{i}]"),
                    "must be an ISO 3166-1 alpha-2 code in upper case",
                ));
            }
        }
        Ok(())
    }

    /// Whether this partner takes a case of `kind` in `country` with `principal_open`.
    pub fn takes(&self, kind: DebtorKind, country: &str, principal_open: i64) -> bool {
        self.active
            && principal_open >= self.min_amount_minor
            && (self.debtor_kinds.is_empty() || self.debtor_kinds.contains(&kind))
            && (self.countries.is_empty() || self.countries.iter().any(|c| c == country))
    }
}

/// The first active partner (by id) that takes the case.
pub fn select_partner<'a>(
    partners: &'a [Partner],
    kind: DebtorKind,
    country: &str,
    principal_open: i64,
) -> Option<&'a Partner> {
    let mut sorted: Vec<&Partner> = partners.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
        .into_iter()
        .find(|p| p.takes(kind, country, principal_open))
}
