//! Client certificates bound to tenants (mutual TLS), like API keys.
//!
//! An operator lists certificates by their SHA-256 fingerprint (of the DER encoding, as
//! `openssl x509 -noout -fingerprint -sha256` prints it) with the tenants each may act for. A
//! request over a connection whose client certificate is listed:
//! - without `authorization` is authenticated by the certificate alone (actor `cert:<first 16
//!   hex digits>`), for its tenants;
//! - with an API key acts only for the tenants both are bound to; none in common is
//!   `PERMISSION_DENIED`, so a leaked key is useless from another tenant's client.
//!
//! A certificate not listed admits the connection only; the API key decides, as without the
//! mapping. The file format, one certificate per line, `#` starts a comment:
//!
//! ```text
//! # fingerprint                                                      tenants
//! 3f:a2:...:09  acme
//! 9b01...e4     acme,beta
//! ```

use mahnwerk_domain::TenantId;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Tenants by client certificate fingerprint (lowercase hex SHA-256 of the DER).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertTenants {
    by_fingerprint: HashMap<String, Vec<TenantId>>,
}

/// The lowercase hex SHA-256 of a certificate's DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

impl CertTenants {
    /// Parse the mapping; an error names the line and what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut by_fingerprint = HashMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |what: String| format!("line {}: {what}", n + 1);
            let mut parts = line.split_whitespace();
            let (Some(fp), Some(tenants), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(at(
                    "expected `<sha-256 fingerprint> <tenant>[,<tenant>…]`".into()
                ));
            };
            let fp = fp.replace(':', "").to_ascii_lowercase();
            if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at(format!(
                    "{fp:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
                )));
            }
            let tenants = tenants
                .split(',')
                .map(|t| {
                    t.parse::<TenantId>()
                        .map_err(|e| at(format!("tenant {t:?}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if by_fingerprint.insert(fp.clone(), tenants).is_some() {
                return Err(at(format!("certificate {fp} is listed twice")));
            }
        }
        Ok(Self { by_fingerprint })
    }

    /// The tenants of the certificate with this DER encoding, if it is listed.
    pub fn tenants(&self, der: &[u8]) -> Option<(String, &[TenantId])> {
        let fp = fingerprint(der);
        let tenants = self.by_fingerprint.get(&fp)?;
        Some((fp, tenants.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.by_fingerprint.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_fingerprint.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_with_colons_or_without_and_errors_name_the_line() {
        let der = b"not really a certificate";
        let fp = fingerprint(der);
        let colons: Vec<String> = fp
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
            .collect();
        let text = format!("# clients\n{}  acme,beta # billing\n\n", colons.join(":"));
        let map = CertTenants::parse(&text).unwrap();
        let (got, tenants) = map.tenants(der).unwrap();
        assert_eq!(got, fp);
        let names: Vec<&str> = tenants.iter().map(TenantId::as_str).collect();
        assert_eq!(names, ["acme", "beta"]);
        assert!(map.tenants(b"another").is_none());

        let err = CertTenants::parse(&format!("{fp} acme\nabc acme\n")).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = CertTenants::parse(&format!("{fp} Not A Tenant\n")).unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
        let err = CertTenants::parse(&format!("{fp} acme\n{fp} beta\n")).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }
}
