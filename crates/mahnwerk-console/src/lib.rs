//! # mahnwerk-console
//!
//! The creditor console: one tenant's staff see every invoice's stage, who paid when, and
//! intervene. Server-rendered HTML (maud, compile-time templates with escaping) on axum, no
//! script needed: every page is a plain link or form, so it works with the keyboard, a screen
//! reader and at phone width, and there is nothing to build or install.
//!
//! Same shape as every service (design §6): a pure core ([`stage`]: what a case looks like,
//! ageing, DSO), an event handler on the consumer library ([`projection`]: the indexed read side
//! the overview and the invoice list query), the HTTP service ([`web`], [`pages`],
//! [`case_page`]) and [`run`]. The console writes nothing itself: each action is the owning
//! service's RPC (dunning, ingest, collection, letters, matching) called with the signed-in
//! user's API key, so the log records that key as the actor, with a request id per form.
//!
//! # Layout
//! - [`stage`]: pure: the case view folded from case events, ageing buckets, DSO.
//! - [`projection`]: `console_*` tables, their handler, the overview/list/debtor queries.
//! - [`session`]: sessions (HttpOnly, SameSite=Strict cookie), CSRF tokens.
//! - [`i18n`]: German and English texts, amounts and dates.
//! - [`web`]: router, sign-in, errors (another tenant's id is a 404 like an unknown one).
//! - [`pages`]: overview, invoices, debtors (with the offers to take over dunning), payments
//!   to review.
//! - [`policy_page`]: the tenant's policies, a draft previewed over the open cases, saved.
//! - [`letterhead_page`]: letterhead and logo ([`multipart`] upload), templates, letter previews.
//! - [`case_page`]: timeline in words, claim, next action, actions, letter PDFs.

pub mod case_page;
pub mod i18n;
pub mod letterhead_page;
pub mod multipart;
pub mod pages;
pub mod policy_page;
pub mod projection;
pub mod session;
pub mod stage;
pub mod web;

use mahnwerk_bus::{BusConfig, Consumer, ConsumerConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the console listens and how it reaches the rest.
#[derive(Debug, Clone)]
pub struct Config {
    pub bus: BusConfig,
    /// Durable consumer name of the projection.
    pub consumer: String,
    /// HTTP listen address.
    pub listen: SocketAddr,
}

impl Config {
    pub fn new(bus: BusConfig, listen: SocketAddr) -> Self {
        Config {
            bus,
            consumer: "console".into(),
            listen,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("console database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("console bus: {0}")]
    Bus(#[from] mahnwerk_bus::Error),
    #[error("console http on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The console's dependencies: its database (projection, keys for sign-in), the shared clock
/// (overdue "as of today"), and a channel to the services' gRPC server.
pub struct Console {
    pub pool: sqlx::AnyPool,
    pub keys: mahnwerk_auth::KeyStore,
    pub clock: mahnwerk_clock::SharedClock,
    pub channel: tonic::transport::Channel,
}

/// Bind the HTTP listener (so the caller can print the address before serving).
pub async fn bind(config: &Config) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Http {
            addr: config.listen,
            source,
        })
}

/// Run the projection consumer and the HTTP server until `shutdown` resolves.
pub async fn run(
    config: Config,
    console: Console,
    listener: tokio::net::TcpListener,
    js: async_nats::jetstream::Context,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    projection::ensure_schema(&console.pool).await?;
    mahnwerk_bus::consumer::ensure_inbox(&console.pool).await?;
    let addr = listener.local_addr().map_err(|source| Error::Http {
        addr: config.listen,
        source,
    })?;
    let app = Arc::new(web::App {
        pool: console.pool.clone(),
        keys: console.keys,
        clock: console.clock,
        channel: console.channel,
        sessions: session::Sessions::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let consumer = Consumer {
        config: ConsumerConfig::new(&config.consumer, &config.bus, ">"),
        bus: config.bus.clone(),
        pool: console.pool,
        handler: projection::Projection,
    };
    let consume = consumer.run(js, stopped(stop_rx.clone()));
    let router = web::router(app).into_make_service_with_connect_info::<SocketAddr>();
    // Without Nagle's algorithm: a page's last small write must not wait for a delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY could not be set on a console connection");
        }
    });
    let serve = axum::serve(listener, router).with_graceful_shutdown(stopped(stop_rx));
    tracing::info!(%addr, "console listening");
    let stopper = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let (c, s, ()) = tokio::join!(consume, serve.into_future(), stopper);
    s.map_err(|source| Error::Http { addr, source })?;
    c?;
    Ok(())
}
