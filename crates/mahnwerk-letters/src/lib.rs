//! # Mahnwerk letters
//!
//! The letter rendering core: a [`LetterModel`] (serde, documented) goes in, a white-label
//! DIN 5008 PDF with an EPC QR code ("GiroCode") and the matching email bodies come out. The
//! letter must look like the creditor wrote it, be legally complete and make paying effortless.
//!
//! ```no_run
//! use mahnwerk_letters::{LetterRenderer, TemplateSet, model};
//! let renderer = LetterRenderer::new(TemplateSet::defaults());
//! let letter = renderer.render(&model::sample()).expect("valid sample");
//! assert!(letter.pdf.starts_with(b"%PDF"));
//! ```
//!
//! # Layout
//! - [`model`]: the letter model and its validation (totals add up, interest days match their
//!   period, address fits the window, RF reference valid); sample letters.
//! - [`templates`]: the wording, from sandboxed minijinja templates (defaults for six letter
//!   kinds × German/English × friendly/neutral/firm, tenant overrides), checked when saved.
//! - [`view`]: what templates see ([`view::TemplateContext`]) and the formatted claim table.
//! - [`format`]: amounts, dates, rates and labels per language; money never passes a float.
//! - [`qr`]: the EPC069-12 payload (from `mahnwerk_formats::epc`) as a QR code, level M.
//! - [`pdf`]: the typst layout (`assets/letter.typ`): Form A/B, window field, information block,
//!   fold and punch marks, page numbers from page 2, claim table that breaks across pages with a
//!   repeated header, payment block with QR code; PDF/A-2b with embedded fonts.
//! - [`email`]: plain-text and HTML email bodies from the same texts.
//! - [`document`]: other documents on the same typst engine and fonts (the collection export's
//!   one-page case summary), PDF/A-2b like the letters.
//! - [`cli`]: `letter render` and `letter check-template` for the `mahnwerk` binary.
//! - [`events`]: the letters service's event payloads (`letter.*`, letterhead and templates)
//!   and the one mapping from dunning template ids to letter kinds.
//!
//! # Invariants
//! - Pure: no IO except the assets embedded at compile time (fonts, layout, default templates);
//!   the clock is never read (the letter date is in the model). Only [`cli::run`] touches files.
//! - Deterministic: the same model and templates give byte-identical PDFs (document id from a
//!   hash of the layout data, timestamp from the letter date).
//! - Data is never code: model texts reach typst as strings in `sys.inputs`, never spliced into
//!   typst source; templates run sandboxed with a fuel limit.
//! - A template is rejected when it is saved (syntax, unknown variable, missing block, render
//!   error against sample letters), never at send time.
//! - Fonts and templates are loaded once per [`LetterRenderer`]; typst's caches are evicted
//!   after a bounded age, so memory stays flat over any number of letters.

pub mod cli;
pub mod document;
pub mod email;
pub mod error;
pub mod events;
pub mod format;
pub mod model;
pub mod pdf;
pub mod qr;
pub mod templates;
pub mod view;

pub use email::EmailBody;
pub use error::{Error, Result};
pub use model::LetterModel;
pub use templates::{TemplateSet, Texts, check_template};

/// One rendered letter: the PDF, the email bodies and the EPC payload in the QR code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedLetter {
    /// PDF/A-2b bytes.
    pub pdf: Vec<u8>,
    /// Subject, plain text and HTML body of the email carrying the PDF.
    pub email: EmailBody,
    /// The EPC069-12 payload encoded in the QR code, when the letter has one.
    pub epc_payload: Option<String>,
    /// SHA-256 of the PDF, hex (the document hash of `letter.rendered`).
    pub sha256: String,
}

/// Renders letters. Build once (fonts, layout and templates are loaded here) and reuse for
/// every letter; `&LetterRenderer` can be shared across threads.
#[derive(Debug)]
pub struct LetterRenderer {
    templates: TemplateSet,
    pdf: pdf::PdfEngine,
}

impl LetterRenderer {
    /// A renderer using `templates` (see [`TemplateSet::defaults`] and
    /// [`TemplateSet::with_overrides`]).
    pub fn new(templates: TemplateSet) -> Self {
        LetterRenderer {
            templates,
            pdf: pdf::PdfEngine::new(),
        }
    }

    /// The template set in use.
    pub fn templates(&self) -> &TemplateSet {
        &self.templates
    }

    /// Validate the model and produce everything but the PDF: the layout data, the email bodies
    /// and the EPC payload.
    fn prepare(&self, model: &LetterModel) -> Result<(pdf::LayoutData, EmailBody, Option<String>)> {
        let total = model.validate()?;
        let ctx = view::TemplateContext::new(model, total);
        let texts = self.templates.render(model, &ctx)?;
        let rows = view::claim_rows(model);
        let data = pdf::LayoutData::new(model, &ctx, &texts, rows);
        let email = email::build(model, &data);
        let epc = qr::payload(model, total)?;
        Ok((data, email, epc))
    }

    /// The email bodies only (no PDF): cheap, for previews and snapshot tests.
    pub fn render_email(&self, model: &LetterModel) -> Result<EmailBody> {
        self.prepare(model).map(|(_, email, _)| email)
    }

    /// Render the complete letter.
    pub fn render(&self, model: &LetterModel) -> Result<RenderedLetter> {
        let (data, email, epc_payload) = self.prepare(model)?;
        let qr_svg = epc_payload.as_deref().map(qr::svg).transpose()?;
        let logo = pdf::decode_logo(model)?;
        let pdf = self.pdf.render(&data, qr_svg.as_deref(), logo.as_deref())?;
        let sha256 = {
            use sha2::Digest as _;
            hex::encode(sha2::Sha256::digest(&pdf))
        };
        Ok(RenderedLetter {
            pdf,
            email,
            epc_payload,
            sha256,
        })
    }
}
