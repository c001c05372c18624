#![no_main]
//! MT940/MT942: any bytes must give entries or an error, never a panic or a hang.
use libfuzzer_sys::fuzz_target;
use mahnwerk_formats::mt940::{Mt940Options, Mt940Reader};
use mahnwerk_formats::statement::ParseOptions;

fuzz_target!(|data: &[u8]| {
    let options = Mt940Options {
        parse: ParseOptions {
            lenient_dates: data.first().is_some_and(|b| b & 1 == 1),
        },
        ..Mt940Options::default()
    };
    for item in Mt940Reader::new(data, options) {
        if item.is_err() {
            break;
        }
    }
});
