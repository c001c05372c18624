//! The gRPC API's accepted connections, without Nagle's algorithm.
//!
//! tonic applies `Server::tcp_nodelay` only to listeners it binds itself; `serve_with_incoming*`
//! (which every server here uses, to report the bound port and to share one listener) ignores
//! it. A response is then written in small pieces (HEADERS, DATA, trailers) and the last one
//! waits for the client's delayed ACK: about 40 ms per unary call (`ExplainCase` over 10,000
//! cases took a median of 44 ms for 0.3 ms of reading). [`incoming`] sets `TCP_NODELAY` on
//! every accepted connection before tonic sees it.

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt as _};

/// The connections `listener` accepts, each with `TCP_NODELAY` set (an accept error is passed
/// on as tonic expects; a socket that refuses the option is served as it is, with a warning).
pub fn incoming(listener: TcpListener) -> impl Stream<Item = std::io::Result<TcpStream>> {
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|accepted| {
        accepted.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::warn!(error = %e, "TCP_NODELAY could not be set on a gRPC connection");
            }
        })
    })
}
