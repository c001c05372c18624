//! Every connection the gRPC API accepts runs without Nagle's algorithm
//! (`mahnwerk_auth::listen`). Alone in its test binary: the check scans this process's sockets.

use mahnwerk_eventlog::nodelay::{sockets_with_nagle, tcp_sockets};
use std::time::{Duration, Instant};
use tokio_stream::StreamExt as _;

#[tokio::test]
async fn accepted_connections_have_tcp_nodelay() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let mut incoming = std::pin::pin!(mahnwerk_auth::listen::incoming(listener));
        let mut kept = Vec::new();
        while let Some(s) = incoming.next().await {
            kept.push(s.unwrap());
        }
    });
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    for client in &clients {
        // The server's end of this connection is the socket whose peer is the client's port.
        let port = client.local_addr().unwrap().port();
        let deadline = Instant::now() + Duration::from_secs(5);
        while tcp_sockets(port) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            tcp_sockets(port),
            1,
            "the accepted socket for port {port} not found"
        );
        // Seen between accept and setsockopt: give the server's task a moment.
        let deadline = Instant::now() + Duration::from_secs(1);
        while sockets_with_nagle(port) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            sockets_with_nagle(port),
            0,
            "the accepted socket for port {port} has Nagle's algorithm on"
        );
    }
    accepted.abort();
}
