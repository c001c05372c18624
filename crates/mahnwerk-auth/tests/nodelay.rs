//! The services' `sqlx::Any` pools on PostgreSQL run without Nagle's algorithm, like the log's
//! (`mahnwerk_eventlog::nodelay`). Alone in its test binary.

use mahnwerk_eventlog::nodelay::{sockets_with_nagle, tcp_sockets};

#[tokio::test]
async fn service_pools_have_tcp_nodelay() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL not set: the PostgreSQL socket test did not run");
        return;
    };
    let options = url.parse::<sqlx::postgres::PgConnectOptions>().unwrap();
    let port = options.get_port();
    // A host that is a directory is the Unix socket: no TCP, nothing to check.
    let tcp = !options.get_host().starts_with('/');
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    let queries = (0..6).map(|_| sqlx::query("SELECT pg_sleep(0.05)").execute(&pool));
    for r in futures::future::join_all(queries).await {
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
