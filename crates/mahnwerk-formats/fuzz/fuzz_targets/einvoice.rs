#![no_main]
//! E-invoices (UBL, CII, PDF with embedded XML): any bytes give an invoice or an error.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mahnwerk_formats::einvoice::read_einvoice(data);
});
