//! W3C trace context across the log and the bus, so one trace follows a case: the gRPC layer and
//! the consumer library open their spans as children of the `traceparent` they receive (request
//! header, event metadata), the relay opens one per published event, and the log fills a
//! missing `traceparent` of an appended event from [`current_traceparent`] (see
//! `mahnwerk_eventlog::set_trace_context`).
//!
//! Without an OpenTelemetry layer in the subscriber nothing here has an effect: spans carry no
//! context, so [`current_traceparent`] is `None` and [`follow`] does nothing.

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::HashMap;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span, when it belongs to a valid trace.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The remote context a `traceparent` names; `None` when it is not a valid W3C trace context.
pub fn context_of(traceparent: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Make `span` a child of the span `traceparent` names (no-op for `None` or an invalid one).
pub fn follow(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(cx) = traceparent.and_then(context_of) {
        // Fails only for a span already entered or without the OpenTelemetry layer.
        let _ = span.set_parent(cx);
    }
}

/// The trace id (32 hex digits) of a `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<String> {
    context_of(traceparent).map(|cx| cx.span().span_context().trace_id().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_and_refuses_invalid_trace_contexts() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            assert!(context_of(bad).is_none(), "{bad}");
        }
        // Without an OpenTelemetry layer there is no current trace.
        assert_eq!(current_traceparent(), None);
    }
}
