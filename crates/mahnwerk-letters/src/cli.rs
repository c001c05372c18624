//! The `letter` subcommands of the `mahnwerk` binary. The binary parses arguments and calls
//! [`run`]; this is the only module of the crate that touches files.

use crate::error::Error;
use crate::templates::check_template;
use crate::{LetterModel, LetterRenderer, TemplateSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Letters: render a letter model to PDF, check a directory of letter templates.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum LetterCommand {
    /// Render a letter model (JSON, see `mahnwerk_letters::model::LetterModel`) to a PDF/A-2b
    /// file with GiroCode.
    Render {
        /// The letter model, a JSON file.
        model: PathBuf,
        /// Where to write the PDF.
        #[arg(long)]
        out: PathBuf,
        /// A directory of template overrides (`{kind}.{de|en}.j2`, `notices.{de|en}.j2`);
        /// templates not in it come from the defaults.
        #[arg(long)]
        template: Option<PathBuf>,
    },
    /// Check every `*.j2` template in a directory as it would be checked when saved: syntax,
    /// unknown variables, required blocks, a trial render. Exits non-zero naming the file, the
    /// line and the reason.
    CheckTemplate {
        /// The directory holding the templates.
        dir: PathBuf,
    },
}

/// Why a `letter` command failed. `Display` is the complete message for the user.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The model file is not a valid letter model JSON.
    #[error("{}, line {line}, column {column}: {reason}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    /// The model or a template was rejected, or rendering failed.
    #[error("{}", context.as_ref().map(|c| format!("{c}: {source}")).unwrap_or_else(|| source.to_string()))]
    Letter {
        /// The file the error is about, when it is not obvious from the message.
        context: Option<String>,
        source: Error,
    },
    /// One or more templates failed the check; one line per failure.
    #[error("{} template(s) rejected:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    TemplatesRejected(Vec<Error>),
}

/// Run one `letter` command, writing progress for the user to `out`.
pub fn run(cmd: LetterCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match cmd {
        LetterCommand::Render {
            model,
            out: pdf_path,
            template,
        } => render(&model, &pdf_path, template.as_deref(), out),
        LetterCommand::CheckTemplate { dir } => check_dir(&dir, out),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The `*.j2` files of `dir`, sorted by name, with their sources.
fn read_templates(dir: &Path) -> Result<Vec<(String, String)>, CliError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "j2") && path.is_file() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).map_err(io(&path))?;
            files.push((name, source));
        }
    }
    files.sort();
    Ok(files)
}

fn render(
    model_path: &Path,
    pdf_path: &Path,
    template_dir: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let json = std::fs::read_to_string(model_path).map_err(io(model_path))?;
    let model: LetterModel = {
        let de = &mut serde_json::Deserializer::from_str(&json);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            CliError::Json {
                path: model_path.to_owned(),
                line: inner.line(),
                column: inner.column(),
                reason: format!("{field}: {inner}"),
            }
        })?
    };
    let templates = match template_dir {
        Some(dir) => TemplateSet::with_overrides(read_templates(dir)?).map_err(|source| {
            CliError::Letter {
                context: Some(dir.display().to_string()),
                source,
            }
        })?,
        None => TemplateSet::defaults(),
    };
    let renderer = LetterRenderer::new(templates);
    let letter = renderer.render(&model).map_err(|source| CliError::Letter {
        context: Some(model_path.display().to_string()),
        source,
    })?;
    std::fs::write(pdf_path, &letter.pdf).map_err(io(pdf_path))?;
    writeln!(
        out,
        "wrote {} ({} bytes, sha256 {})",
        pdf_path.display(),
        letter.pdf.len(),
        letter.sha256
    )
    .map_err(io(Path::new("<stdout>")))?;
    Ok(())
}

fn check_dir(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    let files = read_templates(dir)?;
    if files.is_empty() {
        return Err(CliError::TemplatesRejected(vec![Error::Template {
            name: dir.display().to_string(),
            line: 1,
            reason: "no *.j2 templates in this directory".into(),
        }]));
    }
    let mut failures = Vec::new();
    for (name, source) in &files {
        match check_template(name, source) {
            Ok(()) => writeln!(out, "ok {name}").map_err(io(Path::new("<stdout>")))?,
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::TemplatesRejected(failures))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_template_reports_file_line_and_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, source) in crate::templates::DEFAULTS.iter().take(2) {
            std::fs::write(dir.path().join(name), source).expect("write");
        }
        std::fs::write(
            dir.path().join("last_notice.de.j2"),
            "{% block title %}T{% endblock %}\n{% block salutation %}S{% endblock %}\n{% block body %}{{ betrag }}{% endblock %}\n{% block closing %}C{% endblock %}\n",
        )
        .expect("write");
        let mut out = Vec::new();
        let err = run(
            LetterCommand::CheckTemplate {
                dir: dir.path().to_owned(),
            },
            &mut out,
        )
        .expect_err("rejected");
        let msg = err.to_string();
        assert!(msg.starts_with("1 template(s) rejected:"), "{msg}");
        assert!(
            msg.contains("template last_notice.de.j2, line 3: unknown variable `betrag`"),
            "{msg}"
        );
        let printed = String::from_utf8(out).expect("utf8");
        assert!(printed.contains("ok reminder.de.j2"), "{printed}");
    }

    #[test]
    fn check_template_accepts_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, source) in crate::templates::DEFAULTS {
            std::fs::write(dir.path().join(name), source).expect("write");
        }
        let mut out = Vec::new();
        run(
            LetterCommand::CheckTemplate {
                dir: dir.path().to_owned(),
            },
            &mut out,
        )
        .expect("defaults pass");
    }

    #[test]
    fn render_reports_json_position_and_model_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = dir.path().join("m.json");
        std::fs::write(&model, "{\n  \"kind\": \"reminder\",\n  \"tone\": 3\n}").expect("write");
        let cmd = LetterCommand::Render {
            model: model.clone(),
            out: dir.path().join("x.pdf"),
            template: None,
        };
        let err = run(cmd, &mut Vec::new()).expect_err("bad json");
        assert!(err.to_string().contains("line 3"), "{err}");

        let mut m = crate::model::sample();
        m.total = Some(mahnwerk_domain::Money::eur(1));
        std::fs::write(&model, serde_json::to_string(&m).expect("json")).expect("write");
        let cmd = LetterCommand::Render {
            model,
            out: dir.path().join("x.pdf"),
            template: None,
        };
        let err = run(cmd, &mut Vec::new()).expect_err("bad total");
        assert!(
            err.to_string().contains("total: the claim lines add up to"),
            "{err}"
        );
    }

    #[test]
    fn render_writes_a_pdf_with_template_override() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tdir = dir.path().join("templates");
        std::fs::create_dir(&tdir).expect("mkdir");
        std::fs::write(
            tdir.join("first_notice.de.j2"),
            "{% block title %}Eigene Mahnung{% endblock %}{% block salutation %}Moin,{% endblock %}\n{% block body %}Bitte zahlen Sie {{ total }}.{% endblock %}{% block closing %}Tschüss{% endblock %}",
        )
        .expect("write");
        let model = dir.path().join("m.json");
        std::fs::write(
            &model,
            serde_json::to_string(&crate::model::sample()).expect("json"),
        )
        .expect("write");
        let pdf = dir.path().join("out.pdf");
        let mut out = Vec::new();
        run(
            LetterCommand::Render {
                model,
                out: pdf.clone(),
                template: Some(tdir),
            },
            &mut out,
        )
        .expect("render");
        let bytes = std::fs::read(&pdf).expect("pdf");
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(String::from_utf8(out).expect("utf8").starts_with("wrote "));
    }
}
