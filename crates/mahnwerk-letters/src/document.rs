//! Documents other than letters (the one-page case file summary of a collection export, for
//! one), laid out by typst with the letters' embedded fonts and written as PDF/A-2b like the
//! letters. The caller brings the typst source; the data reaches it only as the JSON string
//! `sys.inputs.data`, so texts are shown, never evaluated as markup. The same source and data
//! always give the same bytes (document id = hash of the data, timestamp = the given date).

use crate::error::{Error, Result};
use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};
use typst::foundations::{Dict, Smart, Str, Value};
use typst_as_lib::{TypstEngine, TypstTemplateMainFile};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

/// A rendered document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub pdf: Vec<u8>,
    pub pages: usize,
}

/// A typst layout with the fonts loaded once; `&DocumentEngine` is `Sync`.
pub struct DocumentEngine {
    engine: TypstEngine<TypstTemplateMainFile>,
}

impl std::fmt::Debug for DocumentEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentEngine").finish_non_exhaustive()
    }
}

impl DocumentEngine {
    /// Load the embedded fonts and the layout `source` (typst markup reading
    /// `json(bytes(sys.inputs.data))`).
    pub fn new(source: &'static str) -> Self {
        let engine = TypstEngine::builder()
            .main_file(source)
            .fonts(typst_assets::fonts())
            .build();
        DocumentEngine { engine }
    }

    /// Lay out `data` and write a PDF/A-2b file dated `date`, with `creator` as its /Creator.
    pub fn render(
        &self,
        data: &serde_json::Value,
        date: NaiveDate,
        creator: &str,
    ) -> Result<Rendered> {
        let json = serde_json::to_string(data).map_err(|e| Error::Layout(e.to_string()))?;
        let ident = hex::encode(Sha256::digest(json.as_bytes()));
        let mut inputs = Dict::new();
        inputs.insert(Str::from("data"), Value::Str(json.as_str().into()));
        let compiled = self.engine.compile_with_input::<_, PagedDocument>(inputs);
        let doc = compiled.output.map_err(|e| Error::Layout(e.to_string()))?;
        let timestamp = typst::foundations::Datetime::from_ymd_hms(
            date.year(),
            u8::try_from(date.month()).unwrap_or(1),
            u8::try_from(date.day()).unwrap_or(1),
            0,
            0,
            0,
        )
        .map(Timestamp::new_utc);
        let standards = PdfStandards::new(&[PdfStandard::A_2b])
            .map_err(|e| Error::Layout(format!("PDF standard: {e:?}")))?;
        let options = PdfOptions {
            ident: Smart::Custom(ident),
            creator: Smart::Custom(Some(creator.trim().to_owned()).filter(|c| !c.is_empty())),
            timestamp,
            page_ranges: None,
            standards,
            tagged: true,
            pretty: false,
        };
        let pdf = typst_pdf::pdf(&doc, &options).map_err(|diags| {
            Error::Layout(
                diags
                    .iter()
                    .map(|d| d.message.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(Rendered {
            pdf,
            pages: doc.pages().len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str =
        "#let d = json(bytes(sys.inputs.data))\n#set text(font: \"Libertinus Serif\")\n#d.title\n";

    #[test]
    fn data_is_shown_as_text_and_the_same_data_gives_the_same_bytes() {
        let engine = DocumentEngine::new(SOURCE);
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let data = serde_json::json!({"title": "#panic(\"no\") Übersicht"});
        let a = engine.render(&data, date, "ACME GmbH").unwrap();
        assert!(a.pdf.starts_with(b"%PDF-"));
        assert_eq!(a.pages, 1);
        assert_eq!(engine.render(&data, date, "ACME GmbH").unwrap(), a);
    }
}
