//! Email bodies (plain text and HTML) from the same texts and claim table as the PDF. The PDF is
//! the attachment; the body repeats what the debtor needs to pay without opening it.

use crate::model::LetterModel;
use crate::pdf::LayoutData;
use std::fmt::Write as _;

/// Subject and the two bodies of the email that carries a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailBody {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Build both bodies from the layout data of a letter.
pub fn build(model: &LetterModel, data: &LayoutData) -> EmailBody {
    EmailBody {
        subject: data.title.clone(),
        text: text(model, data),
        html: html(model, data),
    }
}

fn text(model: &LetterModel, d: &LayoutData) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}\n", d.salutation);
    for p in &d.body {
        let _ = writeln!(out, "{p}\n");
    }
    if !d.table.rows.is_empty() {
        for r in &d.table.rows {
            let detail = if r.period.is_empty() {
                String::new()
            } else {
                format!(", {}", r.period)
            };
            let _ = writeln!(out, "- {}{detail}: {}", r.text, r.amount);
        }
        let _ = writeln!(out, "= {}: {}\n", d.table.total_label, d.table.total);
    }
    if let Some(plan) = &d.plan {
        let _ = writeln!(out, "{}:", plan.heading);
        for [n, due, amount] in &plan.rows {
            let _ = writeln!(out, "{n} {due}: {amount}");
        }
        out.push('\n');
    }
    if let Some(p) = &d.payment {
        let _ = writeln!(out, "{}:", p.heading);
        for [k, v] in &p.rows {
            let _ = writeln!(out, "{k}: {v}");
        }
        out.push('\n');
    }
    for p in &d.notices {
        let _ = writeln!(out, "{p}\n");
    }
    let _ = writeln!(out, "{}", d.closing);
    if let Some(sig) = &d.signature {
        let _ = writeln!(out, "{sig}");
    }
    let _ = writeln!(out, "{}", model.letterhead.name);
    out
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(model: &LetterModel, d: &LayoutData) -> String {
    let e = |s: &str| escape(s);
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head><meta charset=\"utf-8\"><title>{}</title></head>\n<body>\n",
        d.lang,
        e(&d.title)
    );
    let _ = writeln!(out, "<p>{}</p>", e(&d.salutation));
    for p in &d.body {
        let _ = writeln!(out, "<p>{}</p>", e(p));
    }
    if !d.table.rows.is_empty() {
        let [a, b, c] = d.table.header;
        let _ = writeln!(
            out,
            "<table>\n<thead><tr><th align=\"left\">{}</th><th align=\"left\">{}</th><th align=\"right\">{}</th></tr></thead>\n<tbody>",
            e(a),
            e(b),
            e(c)
        );
        for r in &d.table.rows {
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td align=\"right\">{}</td></tr>",
                e(&r.text),
                e(&r.period),
                e(&r.amount)
            );
        }
        let _ = writeln!(
            out,
            "</tbody>\n<tfoot><tr><th align=\"left\">{}</th><td></td><th align=\"right\">{}</th></tr></tfoot>\n</table>",
            e(d.table.total_label),
            e(&d.table.total)
        );
    }
    if let Some(plan) = &d.plan {
        let _ = writeln!(out, "<p><strong>{}</strong></p>\n<ul>", e(plan.heading));
        for [n, due, amount] in &plan.rows {
            let _ = writeln!(out, "<li>{} {}: {}</li>", e(n), e(due), e(amount));
        }
        let _ = writeln!(out, "</ul>");
    }
    if let Some(p) = &d.payment {
        let _ = writeln!(out, "<p><strong>{}</strong></p>\n<table>", e(p.heading));
        for [k, v] in &p.rows {
            let _ = writeln!(out, "<tr><td>{}</td><td>{}</td></tr>", e(k), e(v));
        }
        let _ = writeln!(out, "</table>");
    }
    for p in &d.notices {
        let _ = writeln!(out, "<p>{}</p>", e(p));
    }
    let _ = write!(out, "<p>{}", e(&d.closing));
    if let Some(sig) = &d.signature {
        let _ = write!(out, "<br>{}", e(sig));
    }
    let _ = writeln!(out, "<br>{}</p>", e(&model.letterhead.name));
    let _ = writeln!(
        out,
        "<p style=\"font-size:smaller\">{}</p>\n</body>\n</html>",
        d.footer
            .iter()
            .flatten()
            .map(|s| e(s))
            .collect::<Vec<_>>()
            .join(" · ")
    );
    out
}

#[cfg(test)]
mod tests {
    use crate::model::{Language, LetterKind, Tone, sample_for};
    use crate::{LetterRenderer, TemplateSet};

    /// Every default template × language × tone: subject and plain-text body.
    #[test]
    fn text_bodies_of_every_default_template_language_and_tone() {
        let renderer = LetterRenderer::new(TemplateSet::defaults());
        for kind in LetterKind::ALL {
            for lang in Language::ALL {
                for tone in Tone::ALL {
                    let mut m = sample_for(kind);
                    m.language = lang;
                    m.tone = tone;
                    let email = renderer.render_email(&m).expect("render");
                    let name = format!("{}.{}.{}", kind.as_str(), lang.as_str(), tone.as_str());
                    insta::assert_snapshot!(
                        name,
                        format!("Subject: {}\n\n{}", email.subject, email.text)
                    );
                }
            }
        }
    }

    #[test]
    fn html_body_escapes_model_text() {
        let renderer = LetterRenderer::new(TemplateSet::defaults());
        let mut m = sample_for(LetterKind::FirstNotice);
        m.signature = Some("<script>alert(1)</script> & Co".into());
        let email = renderer.render_email(&m).expect("render");
        assert!(
            email
                .html
                .contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co")
        );
        assert!(!email.html.contains("<script>"));
        insta::assert_snapshot!("first_notice.de.neutral.html", email.html);
    }
}
