//! B8: a transaction recorded over gRPC (`PaymentService.RecordTransactions`) until its
//! `invoice.settled` is seen by a consumer on NATS, under a background load of transactions
//! settling other invoices of the same tenant (1,000/s at scale 1).
//!
//! Everything real and in-process: the matching gRPC server on 127.0.0.1, the outbox relay
//! (log -> JetStream), the matching projection consumer, and a second durable consumer (the
//! consumer library dunning uses, inbox row per event) filtered on `invoice.settled`, which
//! stamps the time it is handed each event. A probe's latency: from just before its call is
//! sent to that stamp. Baseline in the same run: the probes' own gRPC response times (the call
//! alone, without relay, NATS and consumer).

use crate::b5::{case_of, issue_invoices, open_invoice};
use crate::infra::Env;
use crate::report::Row;
use anyhow::{Context, Result, bail};
use mahnwerk_auth::KeyStore;
use mahnwerk_bus::{Consumer, ConsumerConfig, Envelope, Handler, HandlerError, Relay};
use mahnwerk_domain::TenantId;
use mahnwerk_eventlog::EventLog;
use mahnwerk_formats::rf::RfReference;
use mahnwerk_matching::engine::Settings;
use mahnwerk_matching::{Matching, MatchingConfig};
use mahnwerk_proto::v1 as pb;
use pb::payment_service_client::PaymentServiceClient;
use sqlx::{Any, Transaction};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tonic::transport::Channel;

/// Time between two probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// Stamps every `invoice.settled` it is handed.
struct Seen(mpsc::UnboundedSender<(String, Instant)>);

impl Handler for Seen {
    async fn handle(
        &self,
        event: &Envelope,
        _tx: &mut Transaction<'static, Any>,
    ) -> std::result::Result<(), HandlerError> {
        let _ = self.0.send((event.stream.clone(), Instant::now()));
        Ok(())
    }
}

fn transaction(run: &str, i: u64, tag: &str, by_rf: bool) -> Result<pb::Transaction> {
    let p = open_invoice(run, i)?;
    let remittance = if by_rf {
        format!(
            "Zahlung {}",
            RfReference::parse(&p.payment_reference)
                .context("RF")?
                .to_print_format()
        )
    } else {
        format!("Rechnung {}", p.invoice_number)
    };
    Ok(pb::Transaction {
        bank_reference: format!("B8{tag}{run}{i}"),
        account: crate::b5::ACCOUNT.into(),
        amount: Some(pb::Money {
            minor: p.gross_amount,
            currency: "EUR".into(),
        }),
        booking_date: "2026-11-20".into(),
        counterparty_name: p.debtor.map(|d| d.name).unwrap_or_default(),
        counterparty_iban: "DE02120300000000202051".into(),
        remittance,
        ..Default::default()
    })
}

fn authed<T>(token: &str, msg: T) -> Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().context("token header")?,
    );
    Ok(r)
}

/// The `q`-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        clippy::as_conversions
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[allow(clippy::too_many_lines)]
pub async fn run(env: &Env, backend: &'static str, scale: f64) -> Result<Row> {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::as_conversions
    )]
    let probes = (1000.0 * scale).round().max(100.0) as u64;
    let rate = (1000.0 * scale).max(10.0);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        clippy::as_conversions
    )]
    let background = (rate * probes as f64 * PROBE_EVERY.as_secs_f64() * 1.5) as u64 + 100;
    let run = format!("{}{}8", env.run, &backend[..1]);
    eprintln!(
        "B8 {backend}: {probes} probes every {} ms under {rate:.0} transactions/s ({background} background invoices)",
        PROBE_EVERY.as_millis()
    );

    let url = env.log_url(backend, "b8").await?;
    let log = EventLog::connect(&url)
        .await
        .with_context(|| format!("connecting the {backend} log"))?;
    let pool = mahnwerk_auth::connect_any(&url).await?;
    mahnwerk_matching::ensure_schema(&pool).await?;
    let keys = KeyStore::open(pool.clone()).await?;
    let tenant: TenantId = "bench".parse().context("tenant")?;
    keys.create_tenant(&tenant, "Bench GmbH").await?;
    let token = keys
        .create_key(std::slice::from_ref(&tenant), "bench")
        .await?
        .token;
    let bus = env.namespace(&format!("b8{backend}")).await?;

    let (stop, stopped_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut tasks: Vec<tokio::task::JoinHandle<Result<()>>> = Vec::new();
    {
        let (relay, log, js, rx) = (
            Relay::new(bus.clone()),
            log.clone(),
            env.js.clone(),
            stopped_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            relay.run(log, js, stopped(rx)).await?;
            Ok(())
        }));
    }
    {
        let (cfg, pool, js, rx) = (
            MatchingConfig::new(bus.clone()),
            pool.clone(),
            env.js.clone(),
            stopped_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            mahnwerk_matching::run(cfg, pool, js, stopped(rx)).await?;
            Ok(())
        }));
    }
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    {
        let consumer = Consumer {
            config: ConsumerConfig::new(
                "b8-settled",
                &bus,
                &format!("{tenant}.case.invoice.settled.v1.>"),
            ),
            bus: bus.clone(),
            pool: pool.clone(),
            handler: Seen(seen_tx),
        };
        let (js, rx) = (env.js.clone(), stopped_rx.clone());
        tasks.push(tokio::spawn(async move {
            consumer.run(js, stopped(rx)).await?;
            Ok(())
        }));
    }
    let matching = Matching::new(log.clone(), keys, pool.clone(), Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    {
        let rx = stopped_rx.clone();
        tasks.push(tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(mahnwerk_matching::service(matching))
                .serve_with_incoming_shutdown(
                    mahnwerk_auth::listen::incoming(listener),
                    stopped(rx),
                )
                .await?;
            Ok(())
        }));
    }

    // Open invoices 0..probes for the probes, the rest for the background; wait until the
    // projection consumer has them all.
    let total = probes + background;
    issue_invoices(&log, &tenant, &run, 0, total).await?;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM matching_items WHERE tenant = $1")
                .bind(tenant.to_string())
                .fetch_one(&pool)
                .await?;
        if u64::try_from(count).unwrap_or(0) >= total {
            break;
        }
        if Instant::now() > deadline {
            bail!("B8 {backend}: the projection has {count} of {total} open items");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let channel: Channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;

    // Background: every 10 ms the transactions due by then, one call each tick, at most 64
    // calls in flight (when the service falls behind, the achieved rate says so).
    let bg_done = Arc::new(AtomicU64::new(0));
    let bg_failed = Arc::new(AtomicU64::new(0));
    let (bg_stop, bg_stop_rx) = watch::channel(false);
    let bg = {
        let (client, token, run) = (
            PaymentServiceClient::new(channel.clone()),
            token.clone(),
            run.clone(),
        );
        let (done, failed) = (bg_done.clone(), bg_failed.clone());
        tokio::spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(64));
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let start = Instant::now();
            let mut next = probes;
            let mut calls = Vec::new();
            while !*bg_stop_rx.borrow() && next < total {
                tick.tick().await;
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    clippy::as_conversions
                )]
                let due = probes + (start.elapsed().as_secs_f64() * rate) as u64;
                let upto = due.min(total);
                if upto <= next {
                    continue;
                }
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let txs: Result<Vec<_>> = (next..upto)
                    .map(|i| transaction(&run, i, "bg", false))
                    .collect();
                let (mut client, token) = (client.clone(), token.clone());
                let (done, failed) = (done.clone(), failed.clone());
                let k = upto - next;
                next = upto;
                calls.push(tokio::spawn(async move {
                    let _permit = permit;
                    let ok = match txs.and_then(|t| {
                        authed(
                            &token,
                            pb::RecordTransactionsRequest {
                                tenant: String::new(),
                                transactions: t,
                            },
                        )
                    }) {
                        Ok(req) => client.record_transactions(req).await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        done.fetch_add(k, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(k, Ordering::Relaxed);
                    }
                }));
            }
            for c in calls {
                let _ = c.await;
            }
            start.elapsed()
        })
    };

    // Probes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut probe_case: HashMap<String, u64> = HashMap::new();
    for i in 0..probes {
        let case = case_of(&tenant, &open_invoice(&run, i)?)?;
        probe_case.insert(case.stream(&tenant).to_string(), i);
    }
    let mut calls = Vec::new();
    let t_probes = Instant::now();
    let mut tick = tokio::time::interval(PROBE_EVERY);
    for i in 0..probes {
        tick.tick().await;
        let mut client = PaymentServiceClient::new(channel.clone());
        let req = authed(
            &token,
            pb::RecordTransactionsRequest {
                tenant: String::new(),
                transactions: vec![transaction(&run, i, "probe", true)?],
            },
        )?;
        calls.push(tokio::spawn(async move {
            let sent = Instant::now();
            let res = client.record_transactions(req).await;
            (sent, sent.elapsed(), res)
        }));
    }
    let mut sent = vec![None; usize::try_from(probes).unwrap_or(0)];
    let mut response = Vec::new();
    for (i, c) in calls.into_iter().enumerate() {
        let (at, took, res) = c.await?;
        let res = res.context("probe RecordTransactions")?.into_inner();
        let decision = res.results.first().map(|r| r.decision.as_str());
        if decision != Some("applied") {
            bail!("B8 {backend}: probe {i} was {decision:?}, not applied");
        }
        sent[i] = Some(at);
        response.push(ms(took));
    }
    let probe_span = t_probes.elapsed();
    let _ = bg_stop.send(true);
    let bg_span = bg.await.context("background task")?;

    // Collect the settlements of the probes.
    let mut seen: HashMap<u64, Instant> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.len() < sent.len() {
        match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
            Ok(Some((stream, at))) => {
                if let Some(i) = probe_case.get(&stream) {
                    seen.entry(*i).or_insert(at);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    let _ = stop.send(true);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(30), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("B8 {backend}: a task ended with {e:#}"),
            Ok(Err(e)) => eprintln!("B8 {backend}: a task panicked: {e}"),
            Err(_) => eprintln!("B8 {backend}: a task did not stop in time"),
        }
    }
    if seen.len() != sent.len() {
        bail!(
            "B8 {backend}: only {} of {} probe settlements seen on NATS",
            seen.len(),
            sent.len()
        );
    }
    let mut latency: Vec<f64> = seen
        .iter()
        .filter_map(|(i, at)| {
            let s = sent.get(usize::try_from(*i).ok()?).copied().flatten()?;
            Some(ms(at.saturating_duration_since(s)))
        })
        .collect();
    latency.sort_by(f64::total_cmp);
    response.sort_by(f64::total_cmp);
    let (p50, p99) = (quantile(&latency, 0.5), quantile(&latency, 0.99));
    let (r50, r99) = (quantile(&response, 0.5), quantile(&response, 0.99));
    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let achieved = bg_done.load(Ordering::Relaxed) as f64 / bg_span.as_secs_f64().max(1e-9);
    let mut row = Row::new(
        &format!("B8/{backend}"),
        format!(
            "RecordTransactions -> invoice.settled seen by a NATS consumer, {probes} probes, p99 under {rate:.0} background transactions/s"
        ),
        p99,
        "ms p99",
    );
    row.baseline = "p99 of the probes' gRPC responses, ms".into();
    row.baseline_figure = Some(r99);
    row.ratio = (r99 > 0.0).then(|| p99 / r99);
    row.target = "p99 < 200 ms".into();
    row.target_met = Some(p99 < 200.0);
    row.notes.push(format!(
        "to invoice.settled on NATS: p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms; gRPC response alone: p50 {r50:.1} ms, p99 {r99:.1} ms",
        latency.last().copied().unwrap_or(f64::NAN)
    ));
    row.notes.push(format!(
        "background achieved {achieved:.0} of {rate:.0} transactions/s over {:.1} s ({} failed); probes spanned {:.1} s; same tenant, so probes queue behind background calls",
        bg_span.as_secs_f64(),
        bg_failed.load(Ordering::Relaxed),
        probe_span.as_secs_f64()
    ));
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v[..10], 0.99), 10.0);
        assert_eq!(quantile(&[7.0], 0.5), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
