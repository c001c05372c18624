//! `mahnwerk import invoices FILE|DIR…`: e-invoice files (XML or PDF, directories searched
//! recursively for `*.xml` and `*.pdf`) into a running mahnwerk over
//! `InvoiceService.ImportEInvoice`, one call per file, with a progress bar and a summary.
//! `mahnwerk import settings`: show or store the tenant's import settings
//! (`GetImportSettings`, `PutImportSettings`), which fill what an import leaves unset.

use mahnwerk_proto::v1 as pb;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `mahnwerk import invoices`.
#[derive(Debug, clap::Args)]
pub struct ImportInvoicesArgs {
    /// E-invoice files or directories (searched recursively for *.xml and *.pdf).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The kind of a buyer the document shows no business evidence for (default: the
    /// tenant's import settings, else consumer).
    #[arg(long, value_parser = ["consumer", "business"])]
    pub unknown_buyer: Option<String>,
    /// Days after the issue date when neither BT-9 nor the payment terms give a due date
    /// (default: the tenant's import settings, else 14).
    #[arg(long)]
    pub default_term_days: Option<u32>,
    /// The tenant's IBAN for documents that name no valid payee IBAN (direct debit, masked;
    /// default: the tenant's import settings).
    #[arg(long)]
    pub default_iban: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What an import did, file by file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub imported: u64,
    pub unchanged: u64,
    pub no_claim: u64,
    pub rejected: u64,
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_dir() {
        out.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    entries.sort();
    for p in entries {
        let is_invoice = p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("xml") || e.eq_ignore_ascii_case("pdf"));
        if p.is_dir() || is_invoice {
            collect(&p, out)?;
        }
    }
    Ok(())
}

/// Run the import; writes one line per file and the totals to `out`.
pub async fn import_invoices(
    server: &str,
    api_key: &str,
    tenant: &str,
    args: ImportInvoicesArgs,
    out: &mut (dyn Write + Send),
) -> Result<Summary, String> {
    let mut files = Vec::new();
    for p in &args.paths {
        collect(p, &mut files)?;
    }
    let mut client = pb::invoice_service_client::InvoiceServiceClient::connect(server.to_owned())
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?
        .max_decoding_message_size(16 << 20)
        .max_encoding_message_size(16 << 20);
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(files.len() as u64)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} files eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let kind = kind_arg(args.unknown_buyer.as_deref());
    let mut sum = Summary::default();
    let w = |out: &mut (dyn Write + Send), s: String| {
        writeln!(out, "{s}").map_err(|e| format!("output: {e}"))
    };
    for f in &files {
        let name = f.display().to_string();
        bar.set_message(name.clone());
        let content = std::fs::read(f).map_err(|e| format!("{name}: {e}"))?;
        let mut req = tonic::Request::new(pb::ImportEInvoiceRequest {
            tenant: tenant.to_owned(),
            content,
            file_name: name.clone(),
            unknown_buyer_kind: kind as i32,
            default_term_days: args.default_term_days.unwrap_or(0),
            default_creditor_account: args.default_iban.as_ref().map(|iban| pb::BankAccount {
                iban: iban.clone(),
                ..Default::default()
            }),
        });
        let auth = format!("Bearer {api_key}")
            .parse()
            .map_err(|_| "the API key is not a valid header value".to_owned())?;
        req.metadata_mut().insert("authorization", auth);
        let line = match client.import_e_invoice(req).await {
            Ok(resp) => {
                let r = resp.into_inner().result.unwrap_or_default();
                match r.outcome.as_str() {
                    "unchanged" => sum.unchanged += 1,
                    "no_claim" => sum.no_claim += 1,
                    _ => sum.imported += 1,
                }
                let why = if r.reason.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", r.reason)
                };
                format!("{name}: {} {}{why}", r.outcome, r.document_number)
            }
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unauthenticated
                        | tonic::Code::Unavailable
                        | tonic::Code::ResourceExhausted
                ) =>
            {
                bar.finish_and_clear();
                return Err(format!("{name}: {} ({:?})", s.message(), s.code()));
            }
            Err(s) => {
                sum.rejected += 1;
                format!("{name}: rejected: {}", s.message())
            }
        };
        bar.suspend(|| w(out, line))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    w(
        out,
        format!(
            "{} files: {} imported, {} unchanged, {} without claim, {} rejected",
            files.len(),
            sum.imported,
            sum.unchanged,
            sum.no_claim,
            sum.rejected
        ),
    )?;
    Ok(sum)
}

fn kind_arg(kind: Option<&str>) -> pb::DebtorKind {
    match kind {
        Some("business") => pb::DebtorKind::Business,
        Some("consumer") => pb::DebtorKind::Consumer,
        _ => pb::DebtorKind::Unspecified,
    }
}

/// Arguments of `mahnwerk import settings`: without any, print the stored settings.
#[derive(Debug, clap::Args)]
pub struct ImportSettingsArgs {
    /// The kind of a buyer the document shows no business evidence for.
    #[arg(long, value_parser = ["consumer", "business"])]
    pub unknown_buyer: Option<String>,
    /// Days after the issue date when neither BT-9 nor the payment terms give a due date.
    #[arg(long)]
    pub default_term_days: Option<u32>,
    /// The tenant's IBAN for documents that name no valid payee IBAN.
    #[arg(long)]
    pub default_iban: Option<String>,
    /// The account holder printed with the default IBAN.
    #[arg(long)]
    pub default_holder: Option<String>,
    /// Idempotency key of the change (default: one made from the settings, so running the
    /// same command again changes nothing).
    #[arg(long)]
    pub request_id: Option<String>,
}

fn with_key<T>(api_key: &str, body: T) -> Result<tonic::Request<T>, String> {
    let mut req = tonic::Request::new(body);
    let auth = format!("Bearer {api_key}")
        .parse()
        .map_err(|_| "the API key is not a valid header value".to_owned())?;
    req.metadata_mut().insert("authorization", auth);
    Ok(req)
}

/// Show (no setting given) or store (the settings given, the rest unset) the tenant's import
/// settings; prints them as stored.
pub async fn import_settings(
    server: &str,
    api_key: &str,
    tenant: &str,
    args: ImportSettingsArgs,
    out: &mut (dyn Write + Send),
) -> Result<(), String> {
    let mut client = pb::invoice_service_client::InvoiceServiceClient::connect(server.to_owned())
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    let change = args.unknown_buyer.is_some()
        || args.default_term_days.is_some()
        || args.default_iban.is_some();
    let (settings, version) = if change {
        let settings = pb::ImportSettings {
            unknown_buyer_kind: kind_arg(args.unknown_buyer.as_deref()) as i32,
            default_term_days: args.default_term_days.unwrap_or(0),
            default_creditor_account: args.default_iban.as_ref().map(|iban| pb::BankAccount {
                iban: iban.clone(),
                bic: String::new(),
                holder: args.default_holder.clone().unwrap_or_default(),
            }),
        };
        let request_id = args.request_id.clone().unwrap_or_else(|| {
            let text = format!("{settings:?}");
            format!(
                "cli-{}",
                &mahnwerk_docstore::sha256_hex(text.as_bytes())[..32]
            )
        });
        let r = client
            .put_import_settings(with_key(
                api_key,
                pb::PutImportSettingsRequest {
                    tenant: tenant.to_owned(),
                    settings: Some(settings),
                    request_id,
                },
            )?)
            .await
            .map_err(|s| format!("{} ({:?})", s.message(), s.code()))?
            .into_inner();
        (r.settings.unwrap_or_default(), r.version)
    } else {
        let r = client
            .get_import_settings(with_key(
                api_key,
                pb::GetImportSettingsRequest {
                    tenant: tenant.to_owned(),
                },
            )?)
            .await
            .map_err(|s| format!("{} ({:?})", s.message(), s.code()))?
            .into_inner();
        (r.settings.unwrap_or_default(), r.version)
    };
    let kind = match pb::DebtorKind::try_from(settings.unknown_buyer_kind) {
        Ok(pb::DebtorKind::Business) => "business",
        Ok(pb::DebtorKind::Consumer) => "consumer",
        _ => "unset (consumer)",
    };
    let term = match settings.default_term_days {
        0 => "unset (14)".to_owned(),
        n => n.to_string(),
    };
    let iban = settings
        .default_creditor_account
        .as_ref()
        .map_or("unset".to_owned(), |a| a.iban.clone());
    writeln!(
        out,
        "import settings version {version}: unknown buyer {kind}, default term days {term}, default IBAN {iban}"
    )
    .map_err(|e| format!("output: {e}"))
}
