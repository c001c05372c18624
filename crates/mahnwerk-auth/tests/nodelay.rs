//! The services' `sqlx::Any` pools on PostgreSQL run without Nagle's algorithm, like the log's
//! (`mahnwerk_eventlog::nodelay`). Alone in its test binary.

use mahnwerk_eventlog::nodelay::{sockets_with_nagle, tcp_sockets};

#[tokio::test]
async fn service_pools_have_tcp_nodelay() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL not set: the PostgreSQL socket test did not run");
        return;
    };
    let port = url
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .get_port();
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    let queries = (0..6).map(|_| sqlx::query("SELECT pg_sleep(0.05)").execute(&pool));
    for r in futures::future::join_all(queries).await {
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
