#![no_main]
//! camt.052/053/054: any bytes must give entries or an error, never a panic or a hang.
use libfuzzer_sys::fuzz_target;
use mahnwerk_formats::camt::CamtReader;
use mahnwerk_formats::statement::ParseOptions;

fuzz_target!(|data: &[u8]| {
    for lenient_dates in [false, true] {
        if let Ok(r) = CamtReader::new(data, ParseOptions { lenient_dates }) {
            for item in r {
                if item.is_err() {
                    break;
                }
            }
        }
    }
});
