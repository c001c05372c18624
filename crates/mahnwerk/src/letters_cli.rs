//! `mahnwerk letters …`: the tenant's letterhead and template overrides, previews, the letters
//! of a case, their documents and resends, over gRPC (`LetterService`) against a running
//! mahnwerk. (`mahnwerk letter …` renders and checks offline, without a server.)

use crate::client::{Connection, authed, channel, status_error};
use anyhow::Context;
use mahnwerk_proto::v1 as pb;
use pb::letter_service_client::LetterServiceClient;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum LettersCommand {
    /// Set the letterhead and sender settings from a JSON file (`letterhead.updated.v1`:
    /// letterhead with logo and footer, signature, email_from, reply_to, copy_to,
    /// email_fallback_to_post, registered_steps, return_receipt_steps, drafts_only); `-` for stdin. Prints the
    /// version; the same settings again record nothing.
    SetLetterhead {
        /// JSON file, `-` for stdin.
        file: String,
    },
    /// Print the current settings (JSON), their version and the overridden templates.
    ShowLetterhead,
    /// Upload a template override (`first_notice.de.j2`, `notices.en.j2`, …; the file's name
    /// unless `--name`). Checked now; a rejection names the line and the reason.
    PutTemplate {
        file: PathBuf,
        #[arg(long)]
        name: Option<String>,
    },
    /// Render the letter of a case's reached step as PDF, without sending or recording it.
    Preview {
        /// Case id (UUID).
        #[arg(long)]
        case: String,
        #[arg(long)]
        step: u32,
        /// Where to write the PDF.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// The letters of a case: step, channel, recipient, state, document, provider id.
    List {
        #[arg(long)]
        case: String,
    },
    /// Save a stored document (a letter's PDF) by its SHA-256.
    Document {
        sha256: String,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Send a step's letter again: an explicit operator request, recorded with its actor.
    Resend {
        #[arg(long)]
        case: String,
        #[arg(long)]
        step: u32,
        /// email or post (default: the channel the step's letter went by).
        #[arg(long, default_value = "")]
        channel: String,
        /// Idempotency key (default: `resend-{case}-{step}`).
        #[arg(long)]
        request_id: Option<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
}

fn read_input(file: &str) -> anyhow::Result<String> {
    if file == "-" {
        return std::io::read_to_string(std::io::stdin()).context("reading stdin");
    }
    std::fs::read_to_string(file).with_context(|| format!("reading {file}"))
}

pub async fn run(conn: Connection, cmd: LettersCommand) -> anyhow::Result<()> {
    let mut api = LetterServiceClient::new(channel(&conn).await?);
    let tenant = conn.tenant.clone();
    match cmd {
        LettersCommand::SetLetterhead { file } => {
            let settings_json = read_input(&file)?;
            let v = api
                .put_letterhead(authed(
                    &conn,
                    pb::PutLetterheadRequest {
                        tenant,
                        settings_json,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("letterhead version {}", v.version);
        }
        LettersCommand::ShowLetterhead => {
            let l = api
                .get_letterhead(authed(&conn, pb::GetLetterheadRequest { tenant })?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("version {}", l.version);
            println!("templates: {}", l.templates.join(", "));
            println!("{}", l.settings_json);
        }
        LettersCommand::PutTemplate { file, name } => {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = match name {
                Some(n) => n,
                None => file
                    .file_name()
                    .and_then(|n| n.to_str())
                    .context("the template file has no name; use --name")?
                    .to_owned(),
            };
            let v = api
                .put_template(authed(
                    &conn,
                    pb::PutTemplateRequest {
                        tenant,
                        name: name.clone(),
                        source,
                    },
                )?)
                .await
                .map_err(|s| anyhow::anyhow!("{name}: {}", s.message()))?
                .into_inner();
            println!("template {name}: letterhead version {}", v.version);
        }
        LettersCommand::Preview { case, step, out } => {
            let d = api
                .preview_letter(authed(
                    &conn,
                    pb::PreviewLetterRequest {
                        tenant,
                        case_id: case,
                        step,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            std::fs::write(&out, &d.content)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} ({} bytes, sha256 {})",
                out.display(),
                d.content.len(),
                d.sha256
            );
        }
        LettersCommand::List { case } => {
            let r = api
                .list_letters(authed(
                    &conn,
                    pb::ListLettersRequest {
                        tenant,
                        case_id: case,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            for l in r.letters {
                let review = if l.review_required { " REVIEW" } else { "" };
                println!(
                    "step {} {} {} {}{review} document {} provider {} {}",
                    l.step,
                    l.recipient,
                    l.channel,
                    l.state,
                    l.document_sha256,
                    l.provider_id,
                    l.reason
                );
            }
        }
        LettersCommand::Document { sha256, out } => {
            let d = api
                .get_document(authed(&conn, pb::GetDocumentRequest { tenant, sha256 })?)
                .await
                .map_err(status_error)?
                .into_inner();
            std::fs::write(&out, &d.content)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{} ({} bytes, {})",
                out.display(),
                d.content.len(),
                d.content_type
            );
        }
        LettersCommand::Resend {
            case,
            step,
            channel,
            request_id,
            note,
        } => {
            let request_id = request_id.unwrap_or_else(|| format!("resend-{case}-{step}"));
            let r = api
                .resend(authed(
                    &conn,
                    pb::ResendRequest {
                        tenant,
                        case_id: case,
                        step,
                        channel,
                        request_id,
                        note,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!("resend requested: letter {}", r.letter_id);
        }
    }
    Ok(())
}
