//! Validated identifiers. Parsing validates; `Display` round-trips.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        string_id!($(#[$doc])* $name, normalize = |s: &str| s.to_owned(), $check);
    };
    ($(#[$doc:meta])* $name:ident, normalize = $normalize:expr, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, FieldError> {
                let normalize: fn(&str) -> String = $normalize;
                let check: fn(&str) -> Result<(), String> = $check;
                let s = normalize(s);
                check(&s).map_err(|reason| FieldError::new("", reason))?;
                Ok(Self(s))
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;
            fn try_from(s: String) -> Result<Self, FieldError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A tenant (creditor): 1–64 characters of `a-z`, `0-9` and `-`, starting with a letter or
    /// digit. Used in stream ids and NATS subjects, hence the narrow alphabet.
    TenantId,
    |s| {
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            || s.starts_with('-')
        {
            return Err("only a-z, 0-9 and '-' allowed, not starting with '-'".into());
        }
        Ok(())
    }
);

/// What an invoice number means, whatever a billing export padded it with: surrounding
/// whitespace (also no-break and narrow no-break spaces) and zero-width characters are trimmed,
/// no-break spaces inside become plain spaces. Case and everything else are kept.
fn normalize_invoice_number(s: &str) -> String {
    let invisible =
        |c: char| c.is_whitespace() || matches!(c, '\u{200b}' | '\u{2060}' | '\u{feff}');
    s.trim_matches(invisible)
        .chars()
        .map(|c| match c {
            '\u{a0}' | '\u{202f}' | '\u{2007}' => ' ',
            c => c,
        })
        .collect()
}

string_id!(
    /// The tenant's own invoice number (BT-1): 1–64 printable characters, no control characters,
    /// normalised by `normalize_invoice_number` (so `" RE-1\u{a0}"` is `RE-1`).
    InvoiceNumber,
    normalize = normalize_invoice_number,
    |s| {
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        if s.chars().count() > 64 {
            return Err("must be at most 64 characters".into());
        }
        if s.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(())
    }
);

/// A case: one invoice and everything that happens to it. Derived deterministically from tenant
/// and invoice number (UUIDv5), so a retried create lands on the same case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CaseId(pub Uuid);

/// Namespace for [`CaseId::for_invoice`] (a fixed random UUID; never change it).
const CASE_NAMESPACE: Uuid = Uuid::from_u128(0x6d61_686e_7765_726b_8a1e_4c3b_2f90_d117);

impl CaseId {
    pub fn for_invoice(tenant: &TenantId, number: &InvoiceNumber) -> Self {
        let name = format!("{}\u{1f}{}", tenant.as_str(), number.as_str());
        CaseId(Uuid::new_v5(&CASE_NAMESPACE, name.as_bytes()))
    }

    /// The case's stream in the event log: `{tenant}/case/{id}`.
    pub fn stream(&self, tenant: &TenantId) -> StreamId {
        StreamId::new(tenant, "case", &self.0.to_string())
    }
}

impl FromStr for CaseId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Uuid::parse_str(s)
            .map(CaseId)
            .map_err(|_| FieldError::new("", "not a UUID"))
    }
}

impl fmt::Display for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for CaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaseId({})", self.0)
    }
}

/// An event's id: a UUIDv7 (time-ordered), also the JetStream `Nats-Msg-Id`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

/// A stream of the event log: `{tenant}/{kind}/{id}`, e.g. `acme/case/0190…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    pub fn new(tenant: &TenantId, kind: &str, id: &str) -> Self {
        StreamId(format!("{}/{kind}/{id}", tenant.as_str()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parts(&self) -> (&str, &str, &str) {
        let mut it = self.0.splitn(3, '/');
        let tenant = it.next().unwrap_or_default();
        let kind = it.next().unwrap_or_default();
        let id = it.next().unwrap_or_default();
        (tenant, kind, id)
    }

    pub fn tenant(&self) -> TenantId {
        TenantId(self.parts().0.to_owned())
    }

    pub fn kind(&self) -> &str {
        self.parts().1
    }

    pub fn id(&self) -> &str {
        self.parts().2
    }
}

impl FromStr for StreamId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        let mut it = s.splitn(3, '/');
        let (Some(tenant), Some(kind), Some(id)) = (it.next(), it.next(), it.next()) else {
            return Err(FieldError::new("", "stream id must be tenant/kind/id"));
        };
        tenant.parse::<TenantId>()?;
        if kind.is_empty()
            || !kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            || id.is_empty()
            || id.len() > 200
        {
            return Err(FieldError::new(
                "",
                "stream kind must be a-z/_ and id 1-200 chars",
            ));
        }
        Ok(StreamId(s.to_owned()))
    }
}

impl TryFrom<String> for StreamId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, FieldError> {
        s.parse()
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_narrow() {
        assert!("acme-gmbh".parse::<TenantId>().is_ok());
        assert!("Acme".parse::<TenantId>().is_err());
        assert!("".parse::<TenantId>().is_err());
        assert!("a.b".parse::<TenantId>().is_err());
        assert!("-a".parse::<TenantId>().is_err());
    }

    #[test]
    fn invoice_numbers_reject_empty_and_oversized() {
        assert!("RE-2026-0001".parse::<InvoiceNumber>().is_ok());
        assert!("  ".parse::<InvoiceNumber>().is_err());
        assert!("x".repeat(65).parse::<InvoiceNumber>().is_err());
        assert!("a\nb".parse::<InvoiceNumber>().is_err());
    }

    /// Regression (issue 10): a billing export that pads numbers created a second case.
    #[test]
    fn padded_invoice_numbers_are_the_same_number_and_case() {
        let tenant: TenantId = "acme".parse().unwrap();
        let plain: InvoiceNumber = "RE-1 A".parse().unwrap();
        for padded in [
            " RE-1 A",
            "RE-1 A  ",
            "\u{a0}RE-1\u{a0}A\u{202f}",
            "\u{feff}RE-1 A\t",
            "\u{200b}RE-1 A",
        ] {
            let n: InvoiceNumber = padded.parse().unwrap();
            assert_eq!(n, plain, "{padded:?}");
            assert_eq!(
                CaseId::for_invoice(&tenant, &n),
                CaseId::for_invoice(&tenant, &plain)
            );
        }
        assert_ne!("re-1 a".parse::<InvoiceNumber>().unwrap(), plain);
        assert!("\u{a0}\u{a0}".parse::<InvoiceNumber>().is_err());
    }

    #[test]
    fn case_id_is_deterministic_per_tenant_and_number() {
        let a: TenantId = "a".parse().unwrap();
        let b: TenantId = "b".parse().unwrap();
        let n: InvoiceNumber = "1".parse().unwrap();
        assert_eq!(CaseId::for_invoice(&a, &n), CaseId::for_invoice(&a, &n));
        assert_ne!(CaseId::for_invoice(&a, &n), CaseId::for_invoice(&b, &n));
    }

    #[test]
    fn stream_id_round_trips() {
        let t: TenantId = "acme".parse().unwrap();
        let s = StreamId::new(&t, "case", "42");
        assert_eq!(s.to_string().parse::<StreamId>().unwrap(), s);
        assert_eq!((s.tenant(), s.kind(), s.id()), (t, "case", "42"));
        assert!("acme/case".parse::<StreamId>().is_err());
    }
}
