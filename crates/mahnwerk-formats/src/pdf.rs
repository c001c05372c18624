//! Minimal extraction of the invoice XML embedded in a PDF/A-3 (ZUGFeRD, Factur-X, XRechnung
//! hybrid): every stream is inflated (FlateDecode) or taken raw, and the first one whose content
//! is a CII or UBL invoice is returned. No PDF object model, no JavaScript, no external access.

use crate::error::{Error, Result};

/// Largest inflated stream accepted (bytes).
pub const MAX_XML_BYTES: usize = 64 << 20;

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn rfind(hay: &[u8], needle: &[u8], before: usize) -> Option<usize> {
    hay.get(..before)?
        .windows(needle.len())
        .rposition(|w| w == needle)
}

fn is_invoice_xml(data: &[u8]) -> bool {
    let head = &data[..data.len().min(4096)];
    [
        &b"CrossIndustryInvoice"[..],
        b"<Invoice",
        b":Invoice",
        b"<CreditNote",
        b":CreditNote",
    ]
    .iter()
    .any(|n| find(head, n, 0).is_some())
}

/// The invoice XML embedded in a PDF.
pub fn embedded_invoice_xml(pdf: &[u8]) -> Result<Vec<u8>> {
    let mut at = 0;
    while let Some(s) = find(pdf, b"stream", at) {
        at = s + 6;
        // Skip the `endstream` keyword itself.
        if s >= 3 && &pdf[s - 3..s] == b"end" {
            continue;
        }
        let mut start = s + 6;
        if pdf.get(start) == Some(&b'\r') {
            start += 1;
        }
        if pdf.get(start) == Some(&b'\n') {
            start += 1;
        }
        let Some(end) = find(pdf, b"endstream", start) else {
            break;
        };
        let dict_start = rfind(pdf, b"obj", s).unwrap_or(0);
        let dict = &pdf[dict_start..s];
        let raw = &pdf[start..end];
        let mut data = raw;
        while let Some((last, rest)) = data.split_last() {
            if *last == b'\n' || *last == b'\r' {
                data = rest;
            } else {
                break;
            }
        }
        let content = if find(dict, b"/FlateDecode", 0).is_some() {
            // Inflate the untrimmed bytes first: compressed data may itself end in CR/LF bytes
            // (the Adler-32 checksum), which the trimming would cut off; the inflater stops at
            // the end of the zlib stream and ignores the end-of-line before `endstream`.
            let inflate =
                |d| miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(d, MAX_XML_BYTES);
            match inflate(raw).or_else(|_| inflate(data)) {
                Ok(v) => v,
                Err(_) => continue,
            }
        } else if find(dict, b"/Filter", 0).is_none() {
            data.to_vec()
        } else {
            continue;
        };
        if is_invoice_xml(&content) {
            return Ok(content);
        }
        at = end + 9;
    }
    Err(Error::Unsupported(
        "the PDF has no embedded CII or UBL invoice XML".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_flate_and_plain_embedded_xml() {
        let xml = b"<?xml version=\"1.0\"?><rsm:CrossIndustryInvoice xmlns:rsm=\"x\"/>";
        let z = miniz_oxide::deflate::compress_to_vec_zlib(xml, 6);
        let mut pdf = b"%PDF-1.7\n1 0 obj\n<</Length 3>>\nstream\nabc\nendstream\nendobj\n2 0 obj\n<</Type/EmbeddedFile/Filter/FlateDecode>>\nstream\n".to_vec();
        pdf.extend_from_slice(&z);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF");
        assert_eq!(embedded_invoice_xml(&pdf).unwrap(), xml);
        let plain = [
            &b"%PDF-1.4\n3 0 obj\n<</Type/EmbeddedFile>>\nstream\r\n"[..],
            xml,
            b"\r\nendstream\nendobj",
        ]
        .concat();
        assert_eq!(embedded_invoice_xml(&plain).unwrap(), xml);
        assert!(embedded_invoice_xml(b"%PDF-1.4\nno streams").is_err());
    }

    /// Found by the drafthorse/factur-x round trip (seed 2): a compressed stream whose last
    /// byte (part of the Adler-32 checksum) is a line feed.
    #[test]
    fn compressed_stream_ending_in_a_line_feed() {
        let mut found = 0;
        for n in 0..600 {
            let xml = format!(
                "<rsm:CrossIndustryInvoice xmlns:rsm=\"x\"><n>{}</n></rsm:CrossIndustryInvoice>",
                "y".repeat(n)
            );
            let z = miniz_oxide::deflate::compress_to_vec_zlib(xml.as_bytes(), 6);
            if !matches!(z.last(), Some(b'\n' | b'\r')) {
                continue;
            }
            found += 1;
            for eol in [&b"\n"[..], b"\r\n", b""] {
                let pdf = [
                    &b"%PDF-1.7\n2 0 obj\n<</Type/EmbeddedFile/Filter/FlateDecode>>\nstream\n"[..],
                    &z,
                    eol,
                    b"endstream\nendobj\n%%EOF",
                ]
                .concat();
                assert_eq!(embedded_invoice_xml(&pdf).unwrap(), xml.as_bytes(), "n={n}");
            }
        }
        assert!(found > 0, "no sample ends in CR/LF");
    }
}
