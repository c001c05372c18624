//! The debtor this test erases (name, email, a fresh IBAN, street), their e-invoice, and where
//! to look for them: every stored byte under a directory, and the sealed objects of a store.

use std::path::{Path, PathBuf};

/// An e-invoice (a CII sample) whose buyer is the debtor: its original is stored, sealed.
pub(super) fn einvoice() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mahnwerk-formats/tests/fixtures/einvoice/en16931_CII_example2.xml");
    let xml = std::fs::read_to_string(path).unwrap();
    let mut out = xml.clone();
    for (from, to) in [
        (
            r#"<ram:GlobalID schemeID="0088">3456789012098</ram:GlobalID>
                <ram:Name>The Buyercompany</ram:Name>"#,
            format!("<ram:ID>K-77</ram:ID>\n                <ram:Name>{NAME}</ram:Name>"),
        ),
        (
            "<ram:LineOne>Anystreet 8</ram:LineOne>",
            format!("<ram:LineOne>{STREET}</ram:LineOne>"),
        ),
        (
            "<ram:URIID>john@buyercompany.no</ram:URIID>",
            format!("<ram:URIID>{EMAIL}</ram:URIID>"),
        ),
    ] {
        assert!(out.contains(from), "fixture changed: {from}");
        out = out.replacen(from, &to, 1);
    }
    out.into_bytes()
}

/// Every stored object under `dir` (temporary files aside) is a sealed object, never a PDF,
/// an XML file or a JSON job in clear; returns how many there are.
pub(super) fn all_sealed(dir: &Path) -> usize {
    let mut files = Vec::new();
    if dir.exists() {
        files_under(dir, &mut files);
    }
    files.retain(|f| !f.file_name().unwrap().to_string_lossy().starts_with('.'));
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            bytes.starts_with(b"MWSEALED1\n"),
            "{} is not sealed: {:?}",
            f.display(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        );
    }
    files.len()
}

pub(super) const NAME: &str = "Zacharias Quellenberger-Ylvisaker";
pub(super) const EMAIL: &str = "zq.ylvisaker@erasure.example";

/// The debtor's IBAN, fresh for every run: a fixed one (the usual test IBAN) is also written by
/// the tests that ran before this one, and PostgreSQL's WAL segment in which this test starts
/// still holds their bytes, so a hit on it would prove nothing about this debtor.
pub(super) fn iban() -> &'static str {
    static FRESH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    FRESH.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let seed = nanos ^ (u128::from(std::process::id()) << 64);
        let bban = format!("{:018}", seed % 1_000_000_000_000_000_000);
        // ISO 13616: check digits = 98 - (BBAN + "DE00" as digits) mod 97.
        let digits = format!("{bban}131400");
        let rem = digits
            .bytes()
            .fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
        format!("DE{:02}{bban}", 98 - rem)
    })
}

/// The IBAN as it appears on paper and in remittance data: in groups of four.
pub(super) fn iban_spaced() -> String {
    iban()
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}
pub(super) const STREET: &str = "Brombeerweg 4711";

/// Every needle found in `bytes`, by name.
pub(super) fn found(bytes: &[u8], needles: &[(&str, Vec<u8>)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| bytes.windows(n.len()).any(|w| w == n.as_slice()))
        .map(|(what, _)| (*what).to_owned())
        .collect()
}

pub(super) fn needles() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("name", NAME.as_bytes().to_vec()),
        ("name surname", b"Quellenberger".to_vec()),
        ("email", EMAIL.as_bytes().to_vec()),
        ("iban", iban().as_bytes().to_vec()),
        ("iban spaced", iban_spaced().into_bytes()),
        ("street", STREET.as_bytes().to_vec()),
    ]
}

pub(super) fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// (file, needle) pairs found in every file under `dir`, and the bytes scanned.
pub(super) fn grep_dir(dir: &Path, needles: &[(&str, Vec<u8>)]) -> (Vec<String>, u64) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    let mut hits = Vec::new();
    let mut bytes = 0;
    for f in files {
        let data = std::fs::read(&f).unwrap_or_default();
        bytes += data.len() as u64;
        for what in found(&data, needles) {
            hits.push(format!("{}: {what}", f.display()));
        }
    }
    (hits, bytes)
}
