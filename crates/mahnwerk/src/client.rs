//! CLI commands that call the gRPC API, for the common operator tasks. They use the same
//! authentication as any billing platform: `--api-key` / `MAHNWERK_API_KEY`.

use anyhow::Context as _;
use mahnwerk_proto::v1 as pb;
use pb::case_service_client::CaseServiceClient;
use pb::invoice_service_client::InvoiceServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// gRPC address of a running mahnwerk.
    #[arg(
        long,
        env = "MAHNWERK_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// API key (`mwk_…`), from `mahnwerk apikey create` or `make run`.
    #[arg(long, env = "MAHNWERK_API_KEY", hide_env_values = true)]
    pub api_key: String,
    /// Tenant to act for (needed only when the key has several).
    #[arg(long, env = "MAHNWERK_TENANT", default_value = "")]
    pub tenant: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum InvoiceCommand {
    /// Record an invoice from a JSON file in the shape of the gRPC `Invoice` message
    /// (proto3 JSON field names, e.g. `invoiceNumber` or `invoice_number`).
    Create {
        /// JSON file, `-` for stdin.
        file: String,
    },
    /// Import invoices from a JSON Lines file (one `Invoice` per line) over one stream.
    Import {
        /// JSON Lines file.
        file: String,
    },
    /// Show one invoice.
    Get {
        /// The tenant's invoice number.
        invoice_number: String,
    },
    /// List invoices.
    List {
        /// Only invoices open and overdue on this date (YYYY-MM-DD).
        #[arg(long)]
        overdue_as_of: Option<String>,
        /// Only this debtor customer number.
        #[arg(long)]
        customer: Option<String>,
        /// Page size.
        #[arg(long, default_value_t = 100)]
        limit: i32,
    },
    /// Cancel an invoice.
    Cancel {
        invoice_number: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Record a dispute: dunning pauses.
    Dispute {
        invoice_number: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Move the due date later.
    ExtendDueDate {
        invoice_number: String,
        /// New due date (YYYY-MM-DD).
        #[arg(long)]
        to: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

pub(crate) async fn channel(c: &Connection) -> anyhow::Result<Channel> {
    Channel::from_shared(c.server.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", c.server))
}

pub(crate) fn authed<T>(c: &Connection, body: T) -> anyhow::Result<tonic::Request<T>> {
    let mut req = tonic::Request::new(body);
    let value: MetadataValue<_> = format!("Bearer {}", c.api_key).parse()?;
    req.metadata_mut().insert("authorization", value);
    Ok(req)
}

pub(crate) fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// The first of `keys` present in `obj` (proto3 JSON accepts snake_case and camelCase names).
fn field<'a>(obj: &'a serde_json::Value, keys: &[&str]) -> Option<&'a serde_json::Value> {
    keys.iter().find_map(|k| obj.get(*k))
}

fn text(obj: &serde_json::Value, keys: &[&str]) -> String {
    field(obj, keys)
        .and_then(|x| x.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Integers may come as JSON numbers or, as proto3 JSON writes int64, as strings.
fn int(obj: &serde_json::Value, keys: &[&str]) -> i64 {
    field(obj, keys)
        .and_then(|x| {
            x.as_i64()
                .or_else(|| x.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or_default()
}

/// Parse an `Invoice` from JSON (proto field names, snake_case or camelCase).
pub fn invoice_from_json(json: &str) -> anyhow::Result<pb::Invoice> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let null = serde_json::Value::Null;
    let d = field(&v, &["debtor"]).unwrap_or(&null);
    let a = field(d, &["address"]).unwrap_or(&null);
    let acc = field(&v, &["creditor_account", "creditorAccount"]).unwrap_or(&null);
    let kind = match text(d, &["kind"]).as_str() {
        "DEBTOR_KIND_CONSUMER" | "consumer" => pb::DebtorKind::Consumer,
        "DEBTOR_KIND_BUSINESS" | "business" => pb::DebtorKind::Business,
        _ => pb::DebtorKind::Unspecified,
    };
    Ok(pb::Invoice {
        invoice_number: text(&v, &["invoice_number", "invoiceNumber"]),
        issue_date: text(&v, &["issue_date", "issueDate"]),
        due_date: text(&v, &["due_date", "dueDate"]),
        currency: text(&v, &["currency"]),
        net_amount: int(&v, &["net_amount", "netAmount"]),
        tax_amount: int(&v, &["tax_amount", "taxAmount"]),
        gross_amount: int(&v, &["gross_amount", "grossAmount"]),
        debtor: Some(pb::Debtor {
            name: text(d, &["name"]),
            kind: kind as i32,
            address: Some(pb::PostalAddress {
                street: field(a, &["street"])
                    .and_then(|x| x.as_array())
                    .map(|xs| {
                        xs.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                postal_code: text(a, &["postal_code", "postalCode"]),
                city: text(a, &["city"]),
                country: text(a, &["country"]),
                region: String::new(),
            }),
            email: text(d, &["email"]),
            language: text(d, &["language"]),
            customer_number: text(d, &["customer_number", "customerNumber"]),
            vat_id: text(d, &["vat_id", "vatId"]),
        }),
        payment_reference: text(&v, &["payment_reference", "paymentReference"]),
        creditor_account: Some(pb::BankAccount {
            iban: text(acc, &["iban"]),
            bic: text(acc, &["bic"]),
            holder: text(acc, &["holder"]),
        }),
        default_notice: field(&v, &["default_notice", "defaultNotice"])
            .and_then(|x| x.as_bool())
            .unwrap_or(false),
        ..Default::default()
    })
}

fn print_invoice(i: &pb::Invoice) {
    let status = pb::InvoiceStatus::try_from(i.status)
        .map(|s| s.as_str_name())
        .unwrap_or("?");
    println!(
        "{:<20} {:<10} due {} open {:>12} {}  {}  case {}",
        i.invoice_number,
        i.issue_date,
        i.current_due_date,
        i.open_amount,
        i.currency,
        status,
        i.case_id
    );
}

pub async fn run(conn: Connection, cmd: InvoiceCommand) -> anyhow::Result<()> {
    let ch = channel(&conn).await?;
    let mut client = InvoiceServiceClient::new(ch);
    let tenant = conn.tenant.clone();
    match cmd {
        InvoiceCommand::Create { file } => {
            let text = if file == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
            };
            let invoice =
                invoice_from_json(&text).with_context(|| format!("{file}: not an invoice JSON"))?;
            let res = client
                .create_invoice(authed(
                    &conn,
                    pb::CreateInvoiceRequest {
                        tenant,
                        invoice: Some(invoice),
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "{}",
                if res.created {
                    "created"
                } else {
                    "already recorded"
                }
            );
            if let Some(i) = res.invoice {
                print_invoice(&i);
            }
        }
        InvoiceCommand::Import { file } => {
            // Two passes over the file, neither holding it: check every line first (a bad line
            // sends nothing), then stream the items while the server commits them.
            let lines = || -> anyhow::Result<_> {
                use std::io::BufRead as _;
                let f = std::fs::File::open(&file).with_context(|| format!("reading {file}"))?;
                Ok(std::io::BufReader::new(f)
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty())))
            };
            for (n, line) in lines()? {
                let line = line.with_context(|| format!("reading {file}"))?;
                invoice_from_json(&line)
                    .with_context(|| format!("{file}:{}: not an invoice JSON", n + 1))?;
            }
            let items = lines()?.filter_map(move |(_, line)| {
                let invoice = invoice_from_json(&line.ok()?).ok()?;
                Some(pb::ImportInvoicesRequest {
                    tenant: tenant.clone(),
                    invoice: Some(invoice),
                })
            });
            let res = client
                .import_invoices(authed(&conn, tokio_stream::iter(items))?)
                .await
                .map_err(status_error)?
                .into_inner();
            for r in &res.results {
                let fields: Vec<String> = r
                    .violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect();
                println!(
                    "item {} ({}): {} {} {}",
                    r.index,
                    r.invoice_number,
                    r.error_code,
                    r.error_message,
                    fields.join("; ")
                );
            }
            if res.rejected_unreported > 0 {
                println!("... and {} more rejected items", res.rejected_unreported);
            }
            println!(
                "accepted {} (created {}), rejected {}",
                res.accepted, res.created, res.rejected
            );
        }
        InvoiceCommand::Get { invoice_number } => {
            let i = client
                .get_invoice(authed(
                    &conn,
                    pb::GetInvoiceRequest {
                        tenant,
                        invoice_number,
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner()
                .invoice
                .unwrap_or_default();
            print_invoice(&i);
        }
        InvoiceCommand::List {
            overdue_as_of,
            customer,
            limit,
        } => {
            let mut page_token = String::new();
            loop {
                let res = client
                    .list_invoices(authed(
                        &conn,
                        pb::ListInvoicesRequest {
                            tenant: tenant.clone(),
                            overdue_as_of: overdue_as_of.clone().unwrap_or_default(),
                            debtor_customer_number: customer.clone().unwrap_or_default(),
                            page_size: limit,
                            page_token,
                            ..Default::default()
                        },
                    )?)
                    .await
                    .map_err(status_error)?
                    .into_inner();
                res.invoices.iter().for_each(print_invoice);
                if res.next_page_token.is_empty() {
                    break;
                }
                page_token = res.next_page_token;
            }
        }
        InvoiceCommand::Cancel {
            invoice_number,
            reason,
        } => {
            let i = client
                .cancel_invoice(authed(
                    &conn,
                    pb::CancelInvoiceRequest {
                        tenant,
                        invoice_number,
                        reason,
                        ..Default::default()
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner()
                .invoice
                .unwrap_or_default();
            print_invoice(&i);
        }
        InvoiceCommand::Dispute {
            invoice_number,
            reason,
        } => {
            let i = client
                .dispute_invoice(authed(
                    &conn,
                    pb::DisputeInvoiceRequest {
                        tenant,
                        invoice_number,
                        reason,
                        ..Default::default()
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner()
                .invoice
                .unwrap_or_default();
            print_invoice(&i);
        }
        InvoiceCommand::ExtendDueDate {
            invoice_number,
            to,
            reason,
        } => {
            let i = client
                .extend_due_date(authed(
                    &conn,
                    pb::ExtendDueDateRequest {
                        tenant,
                        invoice_number,
                        new_due_date: to,
                        reason,
                        ..Default::default()
                    },
                )?)
                .await
                .map_err(status_error)?
                .into_inner()
                .invoice
                .unwrap_or_default();
            print_invoice(&i);
        }
    }
    Ok(())
}

/// `mahnwerk case file` over gRPC.
pub async fn case_file(conn: Connection, case: String) -> anyhow::Result<pb::GetCaseFileResponse> {
    let ch = channel(&conn).await?;
    let mut client = CaseServiceClient::new(ch);
    let (case_id, invoice_number) = if uuid_like(&case) {
        (case, String::new())
    } else {
        (String::new(), case)
    };
    Ok(client
        .get_case_file(authed(
            &conn,
            pb::GetCaseFileRequest {
                tenant: conn.tenant.clone(),
                case_id,
                invoice_number,
            },
        )?)
        .await
        .map_err(status_error)?
        .into_inner())
}

/// `mahnwerk clock …`.
#[derive(Debug, clap::Subcommand)]
pub enum ClockCommand {
    /// Advance the simulated clock day by day, running each day's dunning steps.
    Advance {
        /// Days to move forward.
        #[arg(long)]
        days: u32,
    },
}

pub async fn clock(conn: Connection, cmd: ClockCommand) -> anyhow::Result<()> {
    let ClockCommand::Advance { days } = cmd;
    let mut client = pb::dunning_service_client::DunningServiceClient::new(channel(&conn).await?);
    let r = client
        .advance_clock(authed(&conn, pb::AdvanceClockRequest { days })?)
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "today is {}; {} case(s) acted on",
        r.today, r.cases_advanced
    );
    Ok(())
}

pub fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoice_json_accepts_snake_and_camel_case() {
        let snake = invoice_from_json(
            r#"{"invoice_number":"RE-1","net_amount":100,"gross_amount":"119",
                "debtor":{"kind":"business","address":{"postal_code":"10115","street":["A 1"]}},
                "creditor_account":{"iban":"DE89370400440532013000"},"default_notice":true}"#,
        )
        .unwrap();
        let camel = invoice_from_json(
            r#"{"invoiceNumber":"RE-1","netAmount":"100","grossAmount":119,
                "debtor":{"kind":"DEBTOR_KIND_BUSINESS","address":{"postalCode":"10115","street":["A 1"]}},
                "creditorAccount":{"iban":"DE89370400440532013000"},"defaultNotice":true}"#,
        )
        .unwrap();
        assert_eq!(snake, camel);
        assert_eq!(snake.gross_amount, 119);
        assert_eq!(
            snake.debtor.as_ref().unwrap().kind,
            pb::DebtorKind::Business as i32
        );
        assert_eq!(
            snake.creditor_account.unwrap().iban,
            "DE89370400440532013000"
        );
        assert!(snake.default_notice);
    }
}
