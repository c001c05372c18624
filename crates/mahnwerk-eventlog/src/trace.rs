//! Trace context on append: an event appended without a W3C `traceparent` gets its stream's
//! trace or the caller's ([`set_trace_context`]), before it is hashed.

use crate::{AppendBatch, EventLog, ExpectedVersion, StreamId};

/// Where appends take the trace context of an event that has none (see
/// [`set_trace_context`]).
pub(crate) static TRACE_CONTEXT: std::sync::OnceLock<fn() -> Option<String>> =
    std::sync::OnceLock::new();

/// Install, once per process, the source of the current W3C `traceparent` (the binary passes
/// `mahnwerk_bus::trace::current_traceparent` when it exports traces). From then on an
/// appended event without a `traceparent` gets its stream's trace or the caller's, before it is
/// hashed (the trace context is part of the hashed metadata).
pub fn set_trace_context(current: fn() -> Option<String>) {
    let _ = TRACE_CONTEXT.set(current);
}

impl EventLog {
    /// Gives every event without a `traceparent` one, so a case's events share one trace:
    /// the trace of the stream's last event when the stream has one (a scheduler or worker
    /// appending outside any request continues the case's trace; the current span is used
    /// when it is part of that trace), else the current span's. One extra read per batch
    /// appended to an existing stream without a trace context, only while tracing is on.
    pub(crate) async fn fill_trace_context(
        &self,
        batches: &mut [AppendBatch],
        current: fn() -> Option<String>,
    ) {
        let here = current();
        for b in batches.iter_mut() {
            if b.events.iter().all(|e| e.metadata.traceparent.is_some()) {
                continue;
            }
            let inherited = match b.expected {
                ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => None,
                _ => self.last_traceparent(&b.stream).await,
            };
            let chosen = match (inherited, &here) {
                (Some(i), Some(h)) if i.get(3..35) == h.get(3..35) => Some(h.clone()),
                (Some(i), _) => Some(i),
                (None, h) => h.clone(),
            };
            for e in b.events.iter_mut() {
                if e.metadata.traceparent.is_none() {
                    e.metadata.traceparent.clone_from(&chosen);
                }
            }
        }
    }

    /// The `traceparent` of the last event of `stream` (`None`: no stream, none, or an error).
    async fn last_traceparent(&self, stream: &StreamId) -> Option<String> {
        let version = self.stream_version(stream).await.ok()??;
        let last = self.read_stream(stream, version, 1).await.ok()?;
        last.into_iter().next()?.metadata.traceparent
    }
}
