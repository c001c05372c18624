//! The log's PostgreSQL connections run without Nagle's algorithm (`nodelay.rs`): sqlx 0.9.0
//! leaves it on, and every statement larger than a segment then waited up to 40 ms for the
//! server's delayed ACK. Alone in its test binary: no other pool of this process opens
//! sockets meanwhile.

use mahnwerk_eventlog::EventLog;
use mahnwerk_eventlog::nodelay::{sockets_with_nagle, tcp_sockets};

#[tokio::test]
async fn the_logs_connections_have_tcp_nodelay() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL not set: the PostgreSQL socket test did not run");
        return;
    };
    let port = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .get_port();
    let log = EventLog::connect(&url).await.unwrap();
    // Several connections at once (reads in parallel), so the pool opens more than one.
    let reads = (0..6).map(|_| log.head_position());
    for r in futures::future::join_all(reads).await {
        r.unwrap();
    }
    let open = tcp_sockets(port);
    if open == 0 {
        eprintln!("DATABASE_URL is not a TCP address: nothing to check");
        return;
    }
    assert_eq!(
        sockets_with_nagle(port),
        0,
        "{open} connections to port {port}, some with Nagle's algorithm on"
    );
}
