//! The GiroCode (EPC QR code) of a letter: payload from the formats crate's EPC069-12 v002
//! builder, encoded with error correction level M, drawn as an SVG path.

use crate::error::{Error, Result};
use crate::model::LetterModel;
use mahnwerk_domain::{Currency, Money};
use mahnwerk_formats::epc::{EpcTransfer, epc_payload};
use qrcode::{EcLevel, QrCode, render::svg};

/// The EPC payload of the letter, or `None` when the letter has no payment details or is not in
/// EUR (the EPC QR code carries EUR only).
pub fn payload(model: &LetterModel, total: Money) -> Result<Option<String>> {
    let Some(p) = &model.payment else {
        return Ok(None);
    };
    let amount = p.amount.unwrap_or(total);
    if amount.currency != Currency::EUR {
        return Ok(None);
    }
    let transfer = EpcTransfer {
        bic: p.bic.clone(),
        name: p
            .recipient
            .clone()
            .unwrap_or_else(|| model.letterhead.name.clone()),
        iban: p.iban.clone(),
        amount,
        purpose: None,
        reference: Some(p.reference.clone()),
        text: None,
        note: None,
    };
    epc_payload(&transfer)
        .map(Some)
        .map_err(|e| Error::invalid("payment", e.to_string()))
}

/// Encode `payload` as a QR code (error correction M) and draw it as SVG with a quiet zone.
pub fn svg(payload: &str) -> Result<String> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)
        .map_err(|e| Error::invalid("payment", format!("QR code: {e}")))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(4, 4)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sample;

    #[test]
    fn payload_carries_iban_amount_reference() {
        let m = sample();
        let total = m.validate().expect("valid");
        let p = payload(&m, total).expect("payload").expect("some");
        let lines: Vec<&str> = p.lines().collect();
        assert_eq!(&lines[..4], ["BCD", "002", "1", "SCT"]);
        assert!(lines.contains(&"DE89370400440532013000"));
        assert!(lines.contains(&"EUR1710.30"));
        assert!(lines.contains(&"RF18539007547034"));
        let s = svg(&p).expect("svg");
        assert!(s.starts_with("<?xml") || s.starts_with("<svg"));
    }

    #[test]
    fn invalid_rf_reference_is_rejected_by_validate_and_payload() {
        let mut m = sample();
        if let Some(p) = &mut m.payment {
            p.reference = "RF00123".into();
        }
        let err = m.validate().expect_err("bad rf");
        assert!(err.to_string().starts_with("payment.reference:"), "{err}");
        let err = payload(&m, Money::eur(100)).expect_err("bad rf");
        assert!(matches!(err, Error::InvalidModel { .. }), "{err}");
    }
}
