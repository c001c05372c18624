//! Logs to stderr (JSON with `MAHNWERK_LOG_FORMAT=json`), filtered by `RUST_LOG`, and traces
//! exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. With traces on, the event
//! log takes a missing `traceparent` from the current span (`mahnwerk_bus::trace`), so one trace
//! follows a case through every service.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the exporter alive; call [`Telemetry::shutdown`] before the runtime stops.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes the spans still queued (blocking: call it outside the runtime's workers, e.g.
    /// through `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(p) = self.provider {
            let _ = p.shutdown();
        }
    }
}

/// Must run inside the tokio runtime (the OTLP exporter needs it).
/// `service_name` names the process in the traces (`OTEL_SERVICE_NAME` overrides it).
pub fn init(default_filter: &str, service_name: &str) -> anyhow::Result<Telemetry> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("MAHNWERK_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    let provider = if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_ok() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(
                            std::env::var("OTEL_SERVICE_NAME")
                                .unwrap_or_else(|_| service_name.to_owned()),
                        )
                        .build(),
                )
                .build(),
        )
    } else {
        None
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("mahnwerk")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    if provider.is_some() {
        mahnwerk_eventlog::set_trace_context(mahnwerk_bus::trace::current_traceparent);
    }
    Ok(Telemetry { provider })
}
