//! Render the sample letter of every kind to `OUT_DIR` (default `./letters`), with the sample
//! model as JSON next to each PDF: `cargo run -p mahnwerk-letters --example render_sample -- DIR`.

use mahnwerk_letters::model::{self, Form, LetterKind};
use mahnwerk_letters::{LetterRenderer, TemplateSet};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "letters".to_owned());
    std::fs::create_dir_all(&dir)?;
    let renderer = LetterRenderer::new(TemplateSet::defaults());
    for kind in LetterKind::ALL {
        for form in [Form::FormA, Form::FormB] {
            let mut m = model::sample_for(kind);
            m.form = form;
            let letter = renderer.render(&m)?;
            let stem = format!("{dir}/{}_{}", kind.as_str(), form.as_str());
            std::fs::write(format!("{stem}.pdf"), &letter.pdf)?;
            std::fs::write(format!("{stem}.json"), serde_json::to_string_pretty(&m)?)?;
            println!("{stem}.pdf {} bytes", letter.pdf.len());
        }
    }
    Ok(())
}
