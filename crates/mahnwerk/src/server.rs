//! Start the chosen services in one process; stop them in order (stop pulling, finish in
//! flight, stop gRPC) when the shutdown future resolves.

use crate::config::{ServeArgs, Service};
use anyhow::Context as _;
use mahnwerk_auth::KeyStore;
use mahnwerk_bus::Relay;
use mahnwerk_eventlog::EventLog;
use mahnwerk_ingest::Ingest;
use std::future::Future;
use tokio::sync::watch;

/// Open the event log and the service database (both at `url`), creating schemas.
pub async fn open_stores(url: &str) -> anyhow::Result<(EventLog, KeyStore, sqlx::AnyPool)> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let file = path.split('?').next().unwrap_or_default();
        if let Some(dir) = std::path::Path::new(file).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let log = EventLog::connect(url)
        .await
        .context("opening the event log")?;
    let pool = mahnwerk_auth::connect_any(url)
        .await
        .context("opening the service database")?;
    let keys = KeyStore::open(pool.clone())
        .await
        .context("preparing the key tables")?;
    mahnwerk_ingest::projection::ensure_schema(&pool)
        .await
        .context("preparing the projection tables")?;
    mahnwerk_bus::consumer::ensure_inbox(&pool)
        .await
        .context("preparing the inbox table")?;
    mahnwerk_matching::ensure_schema(&pool)
        .await
        .context("preparing the matching tables")?;
    Ok((log, keys, pool))
}

/// Run until `shutdown` resolves. `ready` receives the bound gRPC address.
pub async fn run(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    if let Some(path) = &args.base_rates {
        let table = mahnwerk_dunning::law::BaseRateTable::from_file(path)
            .map_err(|e| anyhow::anyhow!("MAHNWERK_BASE_RATES: {e}"))?;
        tracing::info!(file = %path.display(), rows = table.rows().len(), last_day = %table.last_day(), "base rates from file");
        mahnwerk_dunning::law::BaseRateTable::install(table)?;
    }
    let table = mahnwerk_dunning::law::BaseRateTable::in_force();
    if chrono::Utc::now().date_naive() > table.last_day() {
        tracing::warn!(last_day = %table.last_day(), "the base-rate table ends before today: interest past it uses the last published rate, marked provisional; install the new rate with --base-rates");
    }
    let (log, keys, pool) = open_stores(&args.store.database_url).await?;
    let keys = match client_cert_tenants(&args)? {
        Some(certs) => keys.with_client_certs(certs),
        None => keys,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks = tokio::task::JoinSet::new();

    let relay_checkpoint = args
        .runs(Service::Relay)
        .then(|| Relay::new(args.bus()).checkpoint);
    {
        // The log writer's totals as metrics: commits, events, and the writer's busy time
        // (busy near 100% of wall time means appends are waiting on the database).
        let (log, mut rx) = (log.clone(), stop_rx.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                let stats = log.commit_stats();
                metrics::counter!("mahnwerk_eventlog_commits_total").absolute(stats.commits);
                metrics::counter!("mahnwerk_eventlog_events_total").absolute(stats.events);
                metrics::gauge!("mahnwerk_eventlog_writer_busy_seconds")
                    .set(stats.busy.as_secs_f64());
                // Relay lag: the log's head minus the position the relay has published (and
                // JetStream acked); grows while NATS is away.
                if let Some(name) = &relay_checkpoint
                    && let (Ok(head), Ok(published)) =
                        (log.head_position().await, log.load_checkpoint(name).await)
                {
                    metrics::gauge!("mahnwerk_relay_lag_events")
                        .set((head - published).max(0) as f64);
                }
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = rx.wait_for(|s| *s) => return Ok(()),
                }
            }
        });
    }

    if args.runs(Service::Relay) {
        let js = mahnwerk_bus::connect(&args.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
        let mut relay = Relay::new(args.bus());
        relay.batch = args.relay_batch.max(1);
        relay.window = relay.window.min(relay.batch);
        let (log, rx) = (log.clone(), stop_rx.clone());
        tasks.spawn(async move {
            relay
                .run(log, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        });
        tracing::info!(namespace = %args.namespace, "relay started");
    }

    // Dunning: consumer and scheduler in the background, DunningService on the shared server.
    // One clock for every service of this process (dunning and collection share the day).
    let clock: mahnwerk_clock::SharedClock = match args.simulated_clock {
        Some(start) => {
            tracing::warn!(%start, "services run on a simulated clock");
            std::sync::Arc::new(mahnwerk_clock::SimulatedClock::starting_on(start))
        }
        None => std::sync::Arc::new(mahnwerk_clock::SystemClock),
    };
    let mut dunning_grpc = None;
    if args.runs(Service::Dunning) {
        mahnwerk_dunning_service::ensure_schema(&pool)
            .await
            .context("preparing the dunning tables")?;
        let dunning = mahnwerk_dunning_service::Dunning::new(
            log.clone(),
            pool.clone(),
            clock.clone(),
            args.dunning_state,
        );
        let js = mahnwerk_bus::connect(&args.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
        let config = mahnwerk_dunning_service::Config::new(args.bus());
        let (d, rx) = (dunning.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mahnwerk_dunning_service::run(config, d, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        });
        dunning_grpc = Some(mahnwerk_dunning_service::service(
            mahnwerk_dunning_service::grpc::DunningApi {
                dunning,
                keys: keys.clone(),
            },
        ));
        tracing::info!("dunning started");
    }
    // Letters: consumer + dispatch worker; its LetterService joins the gRPC server below.
    let letters_grpc = if args.runs(Service::Letters) {
        let js = mahnwerk_bus::connect(&args.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
        let config = args.letters.config(args.bus())?;
        let parts = mahnwerk_letters_service::Parts::open(config, &pool)
            .await
            .context("preparing the letters service")?;
        let svc = parts.service(log.clone(), keys.clone(), pool.clone());
        let (log2, pool2, rx) = (log.clone(), pool.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mahnwerk_letters_service::run(parts, log2, pool2, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        });
        tracing::info!("letters service started");
        Some(svc)
    } else {
        None
    };
    // Matching: its consumer keeps the open items; its PaymentService joins the gRPC server below.
    let payments = if args.runs(Service::Matching) {
        let js = mahnwerk_bus::connect(&args.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
        let config = mahnwerk_matching::MatchingConfig::new(args.bus());
        let (pool2, rx) = (pool.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mahnwerk_matching::run(config, pool2, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        });
        Some(mahnwerk_matching::service(
            mahnwerk_matching::Matching::new(
                log.clone(),
                keys.clone(),
                pool.clone(),
                mahnwerk_matching::engine::Settings::default(),
            ),
        ))
    } else {
        None
    };

    // Collection: its consumer hands escalated cases over and publishes them to the partners;
    // CollectionService joins the gRPC server below.
    let collection_grpc = if args.runs(Service::Collection) {
        mahnwerk_collection::ensure_schema(&pool)
            .await
            .context("preparing the collection tables")?;
        let mut config = mahnwerk_collection::Config::new(args.bus());
        // The letters' and ingest's document store (filesystem or S3), unless a test or
        // operator names another directory.
        config.documents = match &args.collection_documents_dir {
            Some(dir) => mahnwerk_docstore::DocumentConfig::Fs(dir.clone()),
            None => args.letters.documents(),
        };
        let collection = mahnwerk_collection::Collection::new(
            log.clone(),
            pool.clone(),
            clock.clone(),
            config
                .documents
                .open()
                .context("opening the collection's document store")?,
        );
        let js = mahnwerk_bus::connect(&args.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
        let (c, rx) = (collection.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mahnwerk_collection::run(config, c, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        });
        let partner_keys = mahnwerk_auth::partner::PartnerKeys::open(pool.clone())
            .await
            .context("preparing the partner key table")?
            .limited_by(&keys);
        tracing::info!("collection started");
        Some(mahnwerk_collection::service(
            mahnwerk_collection::grpc::CollectionApi {
                collection,
                keys: keys.clone(),
                partner_keys,
            },
        ))
    } else {
        None
    };

    // Ingest: its projection follower; InvoiceService and CaseService join the gRPC server below.
    let (mut invoices, mut cases) = (None, None);
    if args.runs(Service::Ingest) {
        let (log2, pool2, rx) = (log.clone(), pool.clone(), stop_rx.clone());
        tasks.spawn(async move {
            mahnwerk_ingest::projection::follow(log2, pool2, stopped(rx)).await;
            Ok(())
        });
        let ingest = Ingest {
            log: log.clone(),
            keys: keys.clone(),
            pool: pool.clone(),
            docs: args
                .letters
                .documents()
                .open()
                .context("opening the document store")?,
        };
        let (i, c) = mahnwerk_ingest::services(ingest);
        (invoices, cases) = (Some(i), Some(c));
    }

    // One gRPC server for whatever this process runs: every Deployment (`serve --services X`)
    // answers gRPC health and reflection, also one running only the relay.
    let grpc_addr = {
        let (health_reporter, health) = tonic_health::server::health_reporter();
        if invoices.is_some() {
            health_reporter
                .set_serving::<mahnwerk_proto::v1::invoice_service_server::InvoiceServiceServer<Ingest>>()
                .await;
            health_reporter
                .set_serving::<mahnwerk_proto::v1::case_service_server::CaseServiceServer<Ingest>>()
                .await;
        }
        if dunning_grpc.is_some() {
            health_reporter
                .set_serving::<mahnwerk_proto::v1::dunning_service_server::DunningServiceServer<
                    mahnwerk_dunning_service::grpc::DunningApi,
                >>()
                .await;
        }
        if letters_grpc.is_some() {
            health_reporter
                .set_serving::<mahnwerk_proto::v1::letter_service_server::LetterServiceServer<
                    mahnwerk_letters_service::service::Letters,
                >>()
                .await;
        }
        if payments.is_some() {
            health_reporter
                .set_serving::<mahnwerk_proto::v1::payment_service_server::PaymentServiceServer<
                    mahnwerk_matching::Matching,
                >>()
                .await;
        }
        if collection_grpc.is_some() {
            health_reporter
                .set_serving::<mahnwerk_proto::v1::collection_service_server::CollectionServiceServer<
                    mahnwerk_collection::grpc::CollectionApi,
                >>()
                .await;
        }
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mahnwerk_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mahnwerk_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding gRPC to {}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "grpc listening");
        if let Some(ready) = ready {
            let _ = ready.send(addr);
        }
        let rx = stop_rx.clone();
        // Bounded memory: at most `grpc_concurrency` requests in flight in all (others wait),
        // and no connection takes more than its share.
        let limit = args.grpc_concurrency.max(1);
        let mut grpc = tonic::transport::Server::builder();
        if let Some(tls) = tls_config(&args)? {
            grpc = grpc.tls_config(tls).context("gRPC TLS configuration")?;
        }
        tasks.spawn(async move {
            grpc.concurrency_limit_per_connection(limit.div_ceil(4))
                // HTTP/2 flow control sized so a client streaming small messages as fast as it
                // can (grpcio sends one or two small DATA frames per message) is slowed down by
                // flow control, not cut off: h2 closes a connection (GOAWAY
                // "too_many_data_frames") once the framing overhead of buffered small frames
                // exceeds half the connection window. A stream buffers at most STREAM_WINDOW
                // unread bytes; the connection window is 32 times that (see the constants).
                .initial_stream_window_size(GRPC_STREAM_WINDOW)
                .initial_connection_window_size(GRPC_CONNECTION_WINDOW)
                .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limit))
                .layer(crate::rpc_metrics::RpcMetricsLayer)
                .trace_fn(|req| {
                    // A child of the caller's span when it sends a W3C `traceparent`.
                    let span = tracing::info_span!("grpc", path = %req.uri().path());
                    mahnwerk_bus::trace::follow(
                        &span,
                        req.headers()
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok()),
                    );
                    span
                })
                .add_service(health)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_optional_service(invoices)
                .add_optional_service(cases)
                .add_optional_service(dunning_grpc)
                .add_optional_service(payments)
                .add_optional_service(letters_grpc)
                .add_optional_service(collection_grpc)
                .serve_with_incoming_shutdown(
                    mahnwerk_auth::listen::incoming(listener),
                    stopped(rx),
                )
                .await
                .map_err(anyhow::Error::from)
        });
        addr
    };

    // Console: HTTP for the creditor's staff; its projection consumer; actions go to the gRPC
    // services above (or MAHNWERK_CONSOLE_GRPC) with the signed-in user's key.
    if args.runs(Service::Console) {
        let endpoint = args
            .console_grpc
            .clone()
            .unwrap_or_else(|| format!("http://{grpc_addr}"));
        let channel = tonic::transport::Channel::from_shared(endpoint.clone())
            .with_context(|| format!("console gRPC endpoint {endpoint:?}"))?
            .connect_lazy();
        let config = mahnwerk_console::Config::new(args.bus(), args.console_listen);
        let listener = mahnwerk_console::bind(&config).await?;
        let console_addr = listener.local_addr()?;
        let js = mahnwerk_bus::connect(&args.nats_url)
            .await
            .with_context(|| format!("connecting to NATS at {}", args.nats_url))?;
        let console = mahnwerk_console::Console {
            pool: pool.clone(),
            keys: keys.clone(),
            clock: clock.clone(),
            channel,
        };
        let rx = stop_rx.clone();
        tasks.spawn(async move {
            mahnwerk_console::run(config, console, listener, js, stopped(rx))
                .await
                .map_err(anyhow::Error::from)
        });
        println!("console: http://{console_addr}/");
        tracing::info!(addr = %console_addr, "console started");
    }

    if args.demo {
        // The demo tenant with its letterhead (the built-in default policies apply), so an
        // overdue invoice leads to a real letter; then where everything is.
        let key = crate::demo::prepare_tenant(
            &keys,
            grpc_addr,
            args.runs(Service::Letters) && args.tls_cert.is_none(),
            args.letters.smtp_host.is_some(),
            "make run",
        )
        .await?;
        println!("{}", demo_banner(&args, grpc_addr, &key));
    }

    tokio::select! {
        () = shutdown => tracing::info!("shutting down"),
        Some(res) = tasks.join_next() => {
            let _ = stop_tx.send(true);
            res??;
            anyhow::bail!("a service stopped unexpectedly");
        }
    }
    let _ = stop_tx.send(true);
    // Every service stops on the signal; a stop must still not hang on one that does not
    // (e.g. a gRPC client holding its connection open): after the grace period the rest is
    // aborted, and the log names how many were left.
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while let Some(res) = tasks.join_next().await {
            res??;
        }
        anyhow::Ok(())
    })
    .await;
    match drained {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                left = tasks.len(),
                grace = ?STOP_GRACE,
                "services did not stop in time; aborting them"
            );
            tasks.abort_all();
            Ok(())
        }
    }
}

/// The process's name in traces: `mahnwerk` running everything, else `mahnwerk-` and its
/// services (`mahnwerk-dunning`, `mahnwerk-ingest-relay`).
pub fn service_name(args: &ServeArgs) -> String {
    use clap::ValueEnum as _;
    if args.services.is_empty() {
        return "mahnwerk".into();
    }
    let names: Vec<String> = args
        .services
        .iter()
        .filter_map(|s| s.to_possible_value().map(|v| v.get_name().to_owned()))
        .collect();
    format!("mahnwerk-{}", names.join("-"))
}

/// What `serve --demo` (`make run`) prints: where everything is.
fn demo_banner(args: &ServeArgs, addr: std::net::SocketAddr, key: &str) -> String {
    let letters = &args.letters;
    let email = match &letters.smtp_host {
        Some(h) => format!("by email through SMTP {h}:{}", letters.smtp_port),
        None => "by post only (no MAHNWERK_SMTP_HOST: emails fall back to post)".into(),
    };
    let documents = match &letters.documents_s3_bucket {
        Some(b) => format!("S3 bucket {b}"),
        None => letters.documents_dir.display().to_string(),
    };
    let metrics = if args.metrics_listen == "off" {
        "off".to_owned()
    } else {
        format!("http://{}/metrics", args.metrics_listen)
    };
    format!(
        "\nMahnwerk is running.\n  gRPC:    http://{addr}\n  tenant:  demo (letterhead Demo GmbH, default dunning policies)\n  API key: {key}\n  letters: post spool {}, {email}; copies to the creditor\n  PDFs:    {documents}\n  metrics: {metrics}\n\n  export MAHNWERK_API_KEY={key}\n  Stop with Ctrl-C.\n",
        letters.post_spool.display()
    )
}

/// How long a stop waits for the services to finish what they are doing.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Unread request bytes one gRPC stream may buffer on the server (HTTP/2 stream window).
const GRPC_STREAM_WINDOW: u32 = 256 * 1024;
/// Unread request bytes one connection may buffer (HTTP/2 connection window). h2's budget for
/// the framing overhead of small DATA frames is half of it: 16 times the stream window, so a
/// stalled stream of frames averaging 16 bytes or more never exhausts it.
const GRPC_CONNECTION_WINDOW: u32 = 32 * GRPC_STREAM_WINDOW;

/// Client certificates bound to tenants (MAHNWERK_TLS_CLIENT_TENANTS; mutual TLS only).
fn client_cert_tenants(
    args: &ServeArgs,
) -> anyhow::Result<Option<mahnwerk_auth::client_cert::CertTenants>> {
    let Some(path) = &args.tls_client_tenants else {
        return Ok(None);
    };
    if args.tls_client_ca.is_none() {
        anyhow::bail!("MAHNWERK_TLS_CLIENT_TENANTS needs mutual TLS (MAHNWERK_TLS_CLIENT_CA)");
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = mahnwerk_auth::client_cert::CertTenants::parse(&text)
        .map_err(|e| anyhow::anyhow!("MAHNWERK_TLS_CLIENT_TENANTS {}: {e}", path.display()))?;
    tracing::info!(
        certificates = certs.len(),
        "client certificates bound to tenants"
    );
    Ok(Some(certs))
}

/// The gRPC server's TLS (and mutual TLS) from MAHNWERK_TLS_CERT / _KEY / _CLIENT_CA.
fn tls_config(args: &ServeArgs) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).with_context(|| format!("reading {}", p.display()))
    };
    let mut tls = tonic::transport::ServerTlsConfig::new().identity(
        tonic::transport::Identity::from_pem(read(cert)?, read(key)?),
    );
    if let Some(ca) = &args.tls_client_ca {
        tls = tls.client_ca_root(tonic::transport::Certificate::from_pem(read(ca)?));
    }
    tracing::info!(mutual = args.tls_client_ca.is_some(), "grpc tls enabled");
    Ok(Some(tls))
}
