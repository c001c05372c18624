//! Request counts and latencies of the one gRPC server, as a tower layer:
//! `mahnwerk_rpc_requests_total{path,code}` (gRPC status code; `error` when the transport
//! failed) and the histogram `mahnwerk_rpc_duration_seconds{path}`: time to the response
//! headers (a unary call's whole work; a server-streaming call's first message).
//!
//! Paths outside the Mahnwerk and gRPC namespaces are counted as `other`, so a client cannot
//! grow the label set.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::codegen::http;

/// Histogram buckets of `mahnwerk_rpc_duration_seconds` (seconds).
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Adds [`RpcMetrics`] around the server's routes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

/// The label of a request path.
fn path_label(path: &str) -> String {
    if path.starts_with("/mahnwerk.") || path.starts_with("/grpc.") {
        path.to_owned()
    } else {
        "other".to_owned()
    }
}

impl<S, B, RB> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = path_label(req.uri().path());
        let started = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let code = match &res {
                // A trailers-only response (every error) has the status in its headers; a
                // successful one sends it in the trailers: 0.
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_owned(),
                Err(_) => "error".to_owned(),
            };
            metrics::histogram!("mahnwerk_rpc_duration_seconds", "path" => path.clone())
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("mahnwerk_rpc_requests_total", "path" => path, "code" => code)
                .increment(1);
            res
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(
            super::path_label("/mahnwerk.v1.InvoiceService/CreateInvoice"),
            "/mahnwerk.v1.InvoiceService/CreateInvoice"
        );
        assert_eq!(super::path_label("/x/y"), "other");
        assert_eq!(
            super::path_label("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
    }
}
