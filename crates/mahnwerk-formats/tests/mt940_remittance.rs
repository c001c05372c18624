//! The remittance text of every MT940 sample entry against the independent `mt-940` parser
//! (PyPI, run live in the venv): its `purpose` (the `?20`–`?29`/`?60`–`?63` subfields of a
//! structured `:86:`) or, for an unstructured `:86:`, its `transaction_details`.

use mahnwerk_formats::mt940::{Mt940Options, Mt940Reader};
use mahnwerk_formats::statement::{ParseOptions, collect_statements};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mt940")
}

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("MAHNWERK_PYTHON") {
        return PathBuf::from(p);
    }
    let root = std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap();
    root.join(".venv/bin/python")
}

#[test]
fn mt940_remittance_agrees_with_python_mt940() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sta"))
        .collect();
    paths.sort();
    let script = r#"
import sys, json, mt940
out = {}
for p in sys.argv[1:]:
    out[p] = [[tr.data.get('purpose'), tr.data.get('transaction_details')] for tr in mt940.parse(p)]
print(json.dumps(out))
"#;
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python mt-940 failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let live: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut compared = 0;
    let mut diffs = Vec::new();
    let mut explained: std::collections::BTreeMap<&str, usize> = Default::default();
    for path in &paths {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let options = Mt940Options {
            parse: ParseOptions {
                lenient_dates: name.contains("wrapped"),
            },
            fallback_encoding: if name.contains("mBank") {
                encoding_rs::WINDOWS_1250
            } else {
                encoding_rs::WINDOWS_1252
            },
        };
        let ours: Vec<Option<String>> =
            collect_statements(Mt940Reader::new(bytes.as_slice(), options))
                .unwrap()
                .into_iter()
                .flat_map(|s| s.entries)
                .map(|e| e.remittance)
                .collect();
        let theirs = live[path.to_str().unwrap()].as_array().unwrap();
        assert_eq!(ours.len(), theirs.len(), "{name}: entries");
        for (i, (o, t)) in ours.iter().zip(theirs).enumerate() {
            let purpose = t[0].as_str();
            let details = t[1].as_str();
            compared += 1;
            let why = explain(&name, o.as_deref(), purpose, details);
            match why {
                Ok(None) => {}
                Ok(Some(why)) => *explained.entry(why).or_insert(0) += 1,
                Err(()) => diffs.push(format!(
                    "{name} #{i}: ours {o:?}\n   theirs purpose {purpose:?} details {details:?}"
                )),
            }
        }
    }
    println!("{compared} entries compared; differences explained: {explained:?}");
    assert!(
        diffs.is_empty(),
        "{} unexplained differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    // Every kind of difference is seen in the samples (else its rule is dead and goes).
    assert_eq!(explained.len(), 5, "{explained:?}");
    assert!(compared >= 150, "{compared}");
}

/// Equal (`Ok(None)`), a difference of a known kind (`Ok(Some(kind))`), or not explained.
fn explain(
    name: &str,
    ours: Option<&str>,
    purpose: Option<&str>,
    details: Option<&str>,
) -> Result<Option<&'static str>, ()> {
    let theirs = purpose.or(details);
    if ours == theirs {
        return Ok(None);
    }
    let ours_text = ours.unwrap_or("");
    if let Some(p) = purpose {
        // We trim the text; python-mt940 keeps a leading space of `?20`.
        if ours == Some(p.trim()) {
            return Ok(Some("surrounding spaces trimmed"));
        }
        // `?60`–`?63` continue the remittance text (DFÜ-Abkommen Anlage 3: Verwendungszweck
        // lines 11–14; the SEPA samples cut "Richter R" / "enate" across ?29 and ?60).
        // python-mt940's `purpose` stops at `?29`, we append them.
        if ours_text.len() > p.len() && ours_text.starts_with(p) {
            return Ok(Some("?60-?63 appended"));
        }
    }
    if let Some(d) = details {
        // An unstructured `:86:` over several lines: python keeps the line breaks, we join the
        // lines with a space (what a person reads; numbers cut by a break are re-joined by the
        // matching's number search either way).
        let joined = d.replace('\n', " ");
        if ours == Some(joined.as_str()) {
            return Ok(Some("line breaks joined"));
        }
        // A `:86:` after `:62F:` is information for the account owner about the whole
        // statement (ING: `D000004C000002D25,24C28,71`, the counts and sums of debits and
        // credits); python-mt940 appends it to the last entry, we do not.
        if name.contains("ing")
            && joined.starts_with(ours_text)
            && joined.contains("D000004C000002")
        {
            return Ok(Some("statement-level :86: not appended to the last entry"));
        }
        // Structured `:86:` with `/EREF/…/REMI/…/` (Rabobank): the remittance is the `/REMI/`
        // field (none when empty); python-mt940 returns the whole field.
        if let Some(remi) = d.replace('\n', "").split("/REMI/").nth(1) {
            let remi = remi.split('/').next().unwrap_or("");
            if ours_text == remi {
                return Ok(Some("/REMI/ field of a structured :86:"));
            }
        }
    }
    Err(())
}
