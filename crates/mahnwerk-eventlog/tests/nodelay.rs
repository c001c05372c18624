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
    let options = url.parse::<sqlx::postgres::PgConnectOptions>().unwrap();
    let port = options.get_port();
    // A host that is a directory is the Unix socket: no TCP, nothing to check.
    let tcp = !options.get_host().starts_with('/');
    let log = EventLog::connect(&url).await.unwrap();
    // Several connections at once (reads in parallel), so the pool opens more than one.
    let reads = (0..6).map(|_| log.head_position());
    for r in futures::future::join_all(reads).await {
        r.unwrap();
    }
    let open = tcp_sockets(port);
    if !tcp {
        eprintln!("DATABASE_URL is a Unix socket: nothing to check");
        return;
    }
    // Found by the same scan that sets the option: a scan that sees nothing fails here.
    assert!(open > 0, "no TCP connection to port {port} found");
    assert_eq!(
        sockets_with_nagle(port),
        0,
        "{open} connections to port {port}, some with Nagle's algorithm on"
    );
}
