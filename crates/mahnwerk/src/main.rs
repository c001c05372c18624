//! `mahnwerk`: run the services and operate them. See `mahnwerk --help`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mahnwerk::client::{self, Connection, InvoiceCommand};
use mahnwerk::config::{ServeArgs, StoreArgs};
use mahnwerk_domain::{CaseId, TenantId};
use std::process::ExitCode;

/// mimalloc: the relay and the import allocate and free per event across worker threads, where
/// glibc's allocator spent ~20% of the relay's CPU (BENCHMARKS.md, B3).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Mahnwerk: receivables and dunning, event-sourced.
#[derive(Debug, Parser)]
#[command(name = "mahnwerk", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run all services (or the chosen ones) in this process.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schemas, then exit (`--app-role`: as the owner of the
    /// event log, for the services' role on PostgreSQL).
    Migrate(mahnwerk::migrate::MigrateArgs),
    /// Recompute every stream's hash chain; exit 1 and name the first broken event if any.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Check an exported case archive (`mahnwerk case export`) offline instead, without the
        /// database; names every file or event that changed.
        #[arg(long, value_name = "FILE")]
        archive: Option<std::path::PathBuf>,
    },
    /// Manage tenants (creditors).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Read case files.
    #[command(subcommand)]
    Case(CaseCommand),
    /// Manage a tenant's collection partners and their keys.
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Call the InvoiceService of a running mahnwerk.
    Invoice {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: InvoiceCommand,
    },
    /// Read bank statements and e-invoices and print what Mahnwerk understands of them.
    #[command(subcommand)]
    Inspect(mahnwerk_formats::cli::InspectCommand),
    /// Statutory calculators: default interest and deadlines.
    #[command(subcommand)]
    Law(mahnwerk_dunning::cli::LawCommand),
    /// Check and simulate dunning policies.
    #[command(subcommand)]
    Policy(mahnwerk_dunning::cli::PolicyCommand),
    /// Render letters and check letter templates.
    #[command(subcommand)]
    Letter(mahnwerk_letters::cli::LetterCommand),
    /// The tenant's letterhead and templates, previews, a case's letters, documents and resends
    /// over the LetterService of a running mahnwerk.
    Letters {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: mahnwerk::letters_cli::LettersCommand,
    },
    /// List, inspect and replay events a consumer dead-lettered.
    #[command(subcommand)]
    Deadletter(mahnwerk::deadletter::DeadletterCommand),
    /// Erase a debtor's personal data (GDPR Art. 17).
    #[command(subcommand)]
    Debtor(mahnwerk::debtor::DebtorCommand),
    /// A print shop's pickup of the letters service's post spool (opened with the master key).
    #[command(subcommand)]
    Spool(mahnwerk::spool::SpoolCommand),
    /// Move the simulated clock of a running mahnwerk (started with --simulated-clock).
    Clock {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: client::ClockCommand,
    },
    /// Dunning decisions: approve/decline (approval mode), policy per debtor or group, move a
    /// case to another policy version.
    Dunning {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: mahnwerk::dunning_cli::DunningCommand,
    },
    /// Dry run of the matching engine: which invoice each entry of a statement would pay.
    Match(mahnwerk_matching::cli::MatchArgs),
    /// The seeds' process end to end on a simulated clock against a fresh directory: every
    /// service in this process, driven over gRPC day by day; prints the timeline (make demo).
    Demo(mahnwerk::demo::DemoArgs),
    /// Check and print the configuration of `serve`.
    #[command(subcommand)]
    Config(mahnwerk::config_check::ConfigCommand),
    /// Import bank statements (PaymentService) or e-invoices (InvoiceService) into a running
    /// mahnwerk.
    Import {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: ImportWhat,
    },
    /// Work the review queue of a running mahnwerk: list, show, match or split, not ours, undo.
    Review {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: mahnwerk_matching::review_cli::ReviewCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ImportWhat {
    #[command(flatten)]
    Statements(mahnwerk_matching::cli::ImportCommand),
    /// Import e-invoice files (UBL, CII, XRechnung, ZUGFeRD/Factur-X XML or PDF; directories
    /// searched recursively) over `InvoiceService.ImportEInvoice`, with a progress bar and a
    /// summary; exits 1 when a file was rejected. Importing a file again changes nothing.
    Invoices(mahnwerk::einvoice_import::ImportInvoicesArgs),
    /// Show the tenant's e-invoice import settings, or store them (`--unknown-buyer`,
    /// `--default-term-days`, `--default-iban`): imports use them where they leave a field unset.
    Settings(mahnwerk::einvoice_import::ImportSettingsArgs),
}

#[derive(Debug, Subcommand)]
enum PartnerCommand {
    /// Create or change a partner from its JSON (`mahnwerk_collection::engine::Partner`:
    /// id, name, subject_token, min_amount_minor, debtor_kinds, countries, mode, …).
    Put {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
        /// The partner as JSON.
        json: String,
    },
    /// List the tenant's partners (JSON lines).
    List {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
    },
    /// Create a partner-scoped API key; the key is printed once.
    Key {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        tenant: String,
        partner: String,
        #[arg(long, default_value = "")]
        label: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Tenant id: a-z, 0-9 and '-', at most 64 characters.
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Create an API key bound to one or more tenants; the key is printed once.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Tenant the key may act for (repeat for several).
        #[arg(long = "tenant", required = true)]
        tenants: Vec<String>,
        /// A label to recognise the key by.
        #[arg(long, default_value = "")]
        label: String,
        /// The key stops working at this instant (RFC 3339, e.g. 2027-01-01T00:00:00Z).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Rotate a key: a new key for the same tenants; the old one keeps working until revoked
    /// (`apikey revoke`), so clients can switch without downtime.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        key_id: String,
        /// The new key stops working at this instant (RFC 3339).
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// List keys (ids, labels, tenants; never secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by its id.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum CaseCommand {
    /// Write one archive (tar) with the case file as JSON, every letter PDF and a manifest, for
    /// humans and courts; `mahnwerk verify --archive FILE` checks it offline.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Tenant of the case.
        #[arg(long)]
        tenant: String,
        /// Case id (UUID) or the tenant's invoice number.
        case: String,
        /// The archive to write.
        #[arg(long)]
        out: std::path::PathBuf,
        /// A filesystem document store to read from; default the store of `MAHNWERK_DOCUMENTS_*`
        /// (`MAHNWERK_DOCUMENTS_S3_BUCKET` for S3, else `MAHNWERK_DOCUMENTS_DIR`/`var/documents`).
        #[arg(long)]
        documents_dir: Option<std::path::PathBuf>,
    },
    /// Print a case file from the event log: a readable timeline, or JSON.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Tenant of the case.
        #[arg(long)]
        tenant: String,
        /// Case id (UUID) or the tenant's invoice number.
        case: String,
        /// Print every event as JSON (one array).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    // `serve` and `config check` also read MAHNWERK_CONFIG_FILE; a bad value names its key.
    let (argv, from_file) = match mahnwerk::config_check::with_file(std::env::args_os().collect()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("configuration: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => match mahnwerk::config_check::explain(&argv, &e) {
            Some(msg) => {
                eprintln!("{msg}");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    let mut out = std::io::stdout().lock();
    // Offline commands: no runtime needed.
    let offline = match cli.command {
        Command::Inspect(cmd) => {
            Some(mahnwerk_formats::cli::run(cmd, &mut out).map_err(|e| e.to_string()))
        }
        Command::Law(cmd) => {
            Some(mahnwerk_dunning::cli::run_law(cmd, &mut out).map_err(|e| e.to_string()))
        }
        Command::Policy(cmd) => {
            Some(mahnwerk_dunning::cli::run_policy(cmd, &mut out).map_err(|e| e.to_string()))
        }
        Command::Letter(cmd) => {
            Some(mahnwerk_letters::cli::run(cmd, &mut out).map_err(|e| e.to_string()))
        }
        Command::Config(mahnwerk::config_check::ConfigCommand::Check(_)) => Some(
            mahnwerk::config_check::check(&argv, &from_file, &mut out)
                .map_err(|e| format!("configuration: {e:#}")),
        ),
        Command::Match(args) => {
            Some(mahnwerk_matching::cli::main(&args, &mut out).map_err(|e| e.to_string()))
        }
        other => {
            drop(out);
            return run_online(other);
        }
    };
    match offline {
        Some(Err(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
        _ => ExitCode::SUCCESS,
    }
}

fn run_online(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(online(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn online(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => {
            let args = *args;
            mahnwerk::config_check::validate(&args).context("configuration")?;
            let telemetry = mahnwerk::telemetry::init(
                "info,sqlx=warn,async_nats=warn",
                &mahnwerk::server::service_name(&args),
            )?;
            if args.metrics_listen != "off" {
                let addr: std::net::SocketAddr =
                    args.metrics_listen.parse().with_context(|| {
                        format!(
                            "MAHNWERK_METRICS_LISTEN {:?} is not host:port",
                            args.metrics_listen
                        )
                    })?;
                metrics_exporter_prometheus::PrometheusBuilder::new()
                    .with_http_listener(addr)
                    .set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            "mahnwerk_rpc_duration_seconds".into(),
                        ),
                        mahnwerk::rpc_metrics::BUCKETS,
                    )
                    .context("metrics buckets")?
                    .install()
                    .context("starting the metrics endpoint")?;
                tracing::info!(%addr, "metrics listening");
            }
            for key in mahnwerk::config_check::unknown_vars() {
                tracing::warn!(%key, "set in the environment but not a configuration key");
            }
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("installing SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            };
            let res = mahnwerk::server::run(args, shutdown, None).await;
            // Flush the queued spans before exiting (the exporter needs the runtime running).
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            res?;
        }
        Command::Demo(args) => {
            let telemetry = mahnwerk::telemetry::init("warn", "mahnwerk-demo")?;
            let res = mahnwerk::demo::run(args, &mut std::io::stdout()).await;
            telemetry.shutdown();
            res?;
        }
        Command::Migrate(args) => mahnwerk::migrate::run(&args).await?,
        Command::Verify {
            archive: Some(path),
            ..
        } => {
            let bytes = std::fs::read(&path)?;
            match mahnwerk_collection::archive::verify(&bytes) {
                Ok(v) => println!(
                    "ok: {} events of {} and {} documents, hash chain intact (head {})",
                    v.events,
                    v.stream,
                    v.documents,
                    v.head.unwrap_or_default()
                ),
                Err(problems) => {
                    for p in problems {
                        println!("changed: {p}");
                    }
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
        Command::Verify { store, json, .. } => {
            let log = mahnwerk_eventlog::EventLog::connect(&store.database_url).await?;
            let report = log.verify().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", mahnwerk_eventlog::verify_report_text(&report));
            }
            if report.first_broken.is_some() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Tenant(TenantCommand::Create { store, id, name }) => {
            let tenant: TenantId = id
                .parse()
                .map_err(|e| anyhow::anyhow!("tenant id {id:?}: {e}"))?;
            let (_, keys, _) = mahnwerk::server::open_stores(&store.database_url).await?;
            keys.create_tenant(&tenant, &name).await?;
            println!("created tenant {tenant}");
        }
        Command::Tenant(TenantCommand::List { store }) => {
            let (_, keys, _) = mahnwerk::server::open_stores(&store.database_url).await?;
            for (id, name) in keys.list_tenants().await? {
                println!("{id}\t{name}");
            }
        }
        Command::Apikey(ApikeyCommand::Rotate {
            store,
            key_id,
            expires_at,
        }) => {
            let (_, keys, _) = mahnwerk::server::open_stores(&store.database_url).await?;
            let Some(key) = keys.rotate_key(&key_id, expires_at).await? else {
                anyhow::bail!("no active key with id {key_id}");
            };
            eprintln!(
                "key id {} replaces {key_id}, which stays valid until revoked (the key below is shown only once)",
                key.key_id
            );
            println!("{}", key.token);
        }
        Command::Apikey(ApikeyCommand::Create {
            store,
            tenants,
            label,
            expires_at,
        }) => {
            let tenants = tenants
                .iter()
                .map(|t| {
                    t.parse::<TenantId>()
                        .map_err(|e| anyhow::anyhow!("tenant {t:?}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let (_, keys, _) = mahnwerk::server::open_stores(&store.database_url).await?;
            let key = keys
                .create_key_expiring(&tenants, &label, expires_at)
                .await?;
            eprintln!("key id {} (the key below is shown only once)", key.key_id);
            println!("{}", key.token);
        }
        Command::Apikey(ApikeyCommand::List { store }) => {
            let (_, keys, _) = mahnwerk::server::open_stores(&store.database_url).await?;
            for (id, label, tenants, revoked) in keys.list_keys().await? {
                println!(
                    "{id}\t{tenants}\t{label}{}",
                    if revoked { "\t(revoked)" } else { "" }
                );
            }
        }
        Command::Apikey(ApikeyCommand::Revoke { store, key_id }) => {
            let (_, keys, _) = mahnwerk::server::open_stores(&store.database_url).await?;
            if !keys.revoke_key(&key_id).await? {
                anyhow::bail!("no active key with id {key_id}");
            }
            println!("revoked {key_id}");
        }
        Command::Partner(cmd) => {
            let (store, tenant) = match &cmd {
                PartnerCommand::Put { store, tenant, .. }
                | PartnerCommand::List { store, tenant }
                | PartnerCommand::Key { store, tenant, .. } => (store, tenant),
            };
            let tenant: TenantId = tenant.parse().map_err(|e| anyhow::anyhow!("tenant: {e}"))?;
            let (log, _, pool) = mahnwerk::server::open_stores(&store.database_url).await?;
            mahnwerk_collection::ensure_schema(&pool).await?;
            let collection = mahnwerk_collection::Collection::new(
                log,
                pool.clone(),
                std::sync::Arc::new(mahnwerk_clock::SystemClock),
                std::sync::Arc::new(mahnwerk_docstore::FsDocuments::new(
                    std::path::PathBuf::new(),
                )),
            );
            match cmd {
                PartnerCommand::Put { json, .. } => {
                    let partner: mahnwerk_collection::engine::Partner = serde_json::from_str(&json)
                        .map_err(|e| anyhow::anyhow!("partner JSON: {e}"))?;
                    let meta = mahnwerk_eventlog::Metadata {
                        actor: "cli".into(),
                        ..Default::default()
                    };
                    let id = partner.id.clone();
                    let version = collection
                        .put_partner(&tenant, partner, &meta)
                        .await
                        .map_err(|e| anyhow::anyhow!("partner: {e}"))?;
                    println!("partner {id} version {version}");
                }
                PartnerCommand::List { .. } => {
                    for (version, p) in collection
                        .partners(&tenant)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                    {
                        println!("{}", serde_json::json!({"version": version, "partner": p}));
                    }
                }
                PartnerCommand::Key { partner, label, .. } => {
                    if collection
                        .partner(&tenant, &partner)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .is_none()
                    {
                        anyhow::bail!("no partner {partner} for tenant {tenant}");
                    }
                    let keys = mahnwerk_auth::partner::PartnerKeys::open(pool).await?;
                    let key = keys.create(&tenant, &partner, &label).await?;
                    eprintln!("key id {} (the key below is shown only once)", key.key_id);
                    println!("{}", key.token);
                }
            }
        }
        Command::Case(CaseCommand::Export {
            store,
            tenant,
            case,
            out,
            documents_dir,
        }) => {
            let tenant: TenantId = tenant.parse().map_err(|e| anyhow::anyhow!("tenant: {e}"))?;
            let case_id = if client::uuid_like(&case) {
                case.parse::<CaseId>()
                    .map_err(|e| anyhow::anyhow!("case id: {e}"))?
            } else {
                CaseId::for_invoice(
                    &tenant,
                    &case
                        .parse()
                        .map_err(|e| anyhow::anyhow!("invoice number: {e}"))?,
                )
            };
            let log = mahnwerk_eventlog::EventLog::connect(&store.database_url).await?;
            let pool = mahnwerk_auth::connect_any(&store.database_url).await?;
            // `--documents-dir`, else the store of `MAHNWERK_DOCUMENTS_*` (filesystem or S3).
            let docs = match documents_dir {
                Some(dir) => mahnwerk_docstore::DocumentConfig::Fs(dir),
                None => mahnwerk::config::documents_from_env()?,
            }
            .open()
            .context("opening the document store")?;
            let collection = mahnwerk_collection::Collection::new(
                log,
                pool,
                std::sync::Arc::new(mahnwerk_clock::SystemClock),
                docs,
            );
            let bytes = collection
                .export(&tenant, case_id)
                .await
                .map_err(|e| anyhow::anyhow!("export of case {case}: {e}"))?;
            std::fs::write(&out, &bytes)?;
            println!("wrote {} ({} bytes)", out.display(), bytes.len());
        }
        Command::Case(CaseCommand::Show {
            store,
            tenant,
            case,
            json,
        }) => {
            let tenant: TenantId = tenant.parse().map_err(|e| anyhow::anyhow!("tenant: {e}"))?;
            let case_id = if client::uuid_like(&case) {
                case.parse::<CaseId>()
                    .map_err(|e| anyhow::anyhow!("case id: {e}"))?
            } else {
                CaseId::for_invoice(
                    &tenant,
                    &case
                        .parse()
                        .map_err(|e| anyhow::anyhow!("invoice number: {e}"))?,
                )
            };
            let log = mahnwerk_eventlog::EventLog::connect(&store.database_url).await?;
            let events = log
                .read_stream(&case_id.stream(&tenant), 1, usize::MAX >> 1)
                .await?;
            if events.is_empty() {
                anyhow::bail!("no case {case} for tenant {tenant}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                println!("case {case_id} ({} events)", events.len());
                for e in &events {
                    println!(
                        "{:>4}  {}  {:<24} pos {:<8} by {}",
                        e.version,
                        e.occurred_at.format("%Y-%m-%d %H:%M:%S"),
                        e.event_type,
                        e.position,
                        e.metadata.actor
                    );
                }
            }
        }
        Command::Invoice { conn, command } => client::run(conn, command)
            .await
            .context("invoice command failed")?,
        Command::Deadletter(cmd) => {
            mahnwerk::deadletter::run(cmd, &mut std::io::stdout().lock()).await?;
        }
        Command::Debtor(cmd) => {
            mahnwerk::debtor::run(cmd, &mut std::io::stdout().lock()).await?;
        }
        Command::Spool(cmd) => {
            mahnwerk::spool::run(cmd, &mut std::io::stdout().lock()).await?;
        }
        Command::Clock { conn, command } => client::clock(conn, command)
            .await
            .context("clock command failed")?,
        Command::Dunning { conn, command } => mahnwerk::dunning_cli::run(conn, command)
            .await
            .context("dunning command failed")?,
        Command::Letters { conn, command } => mahnwerk::letters_cli::run(conn, command)
            .await
            .context("letters command failed")?,
        Command::Import {
            conn,
            command: ImportWhat::Invoices(args),
        } => {
            let mut out = std::io::stdout();
            let sum = mahnwerk::einvoice_import::import_invoices(
                &conn.server,
                &conn.api_key,
                &conn.tenant,
                args,
                &mut out,
            )
            .await
            .map_err(anyhow::Error::msg)
            .context("import failed")?;
            if sum.rejected > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Import {
            conn,
            command: ImportWhat::Settings(args),
        } => mahnwerk::einvoice_import::import_settings(
            &conn.server,
            &conn.api_key,
            &conn.tenant,
            args,
            &mut std::io::stdout(),
        )
        .await
        .map_err(anyhow::Error::msg)
        .context("import settings failed")?,
        Command::Import {
            conn,
            command: ImportWhat::Statements(command),
        } => {
            let mut out = std::io::stdout();
            mahnwerk_matching::cli::import(
                &conn.server,
                &conn.api_key,
                &conn.tenant,
                command,
                &mut out,
            )
            .await
            .map_err(anyhow::Error::msg)
            .context("import failed")?;
        }
        Command::Review { conn, command } => {
            let mut out = std::io::stdout();
            mahnwerk_matching::review_cli::review(
                &conn.server,
                &conn.api_key,
                &conn.tenant,
                command,
                &mut out,
            )
            .await
            .map_err(anyhow::Error::msg)
            .context("review failed")?;
        }
        Command::Inspect(_)
        | Command::Law(_)
        | Command::Policy(_)
        | Command::Letter(_)
        | Command::Config(_)
        | Command::Match(_) => {
            unreachable!("handled offline")
        }
    }
    Ok(ExitCode::SUCCESS)
}
