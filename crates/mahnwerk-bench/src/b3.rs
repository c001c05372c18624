//! B3: the outbox relay publishing the whole log to JetStream (file storage, `Nats-Msg-Id`
//! dedupe, expected-sequence chaining, acks awaited) against raw async publishes with async-nats
//! into streams of the same configuration, with the same in-flight window, continuously:
//! - the baseline: the *identical* messages (same subjects, headers, `Nats-Msg-Id`,
//!   `Nats-Expected-Last-Sequence`, payloads), so the ratio measures the relay, not the server's
//!   dedupe and header work;
//! - beside it, the header-less raw publish of the same envelope bytes.
//!
//! The relay's figure includes what it does for real: reading the log, building envelopes and
//! headers, and saving its checkpoint. The baselines read and encode outside the clock.

use crate::infra::{CpuSplit, Env, cpu_seconds};
use crate::report::Row;
use anyhow::{Context, Result, bail};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use mahnwerk_bus::{Envelope, Relay, envelope};
use mahnwerk_eventlog::EventLog;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Publishes `msgs` with `window` acks in flight; the wall time.
async fn publish_all(
    js: &async_nats::jetstream::Context,
    msgs: Vec<(String, PublishMessage)>,
    window: usize,
) -> Result<Duration> {
    let t0 = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    for (subject, msg) in msgs {
        in_flight.push_back(js.send_publish(subject, msg).await?);
        if in_flight.len() >= window
            && let Some(ack) = in_flight.pop_front()
        {
            ack.await?;
        }
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
    }
    Ok(t0.elapsed())
}

pub async fn run(env: &Env, log: EventLog, n: u64, window: usize) -> Result<Row> {
    let read_batch = Relay::new(mahnwerk_bus::BusConfig::default()).batch;
    let cap = usize::try_from(n).unwrap_or(0);

    // The identical messages: what the relay sends, prepared before the clock starts (this is
    // also the relay's read + encode half, timed alone).
    eprintln!("B3: identical-message raw publish of {n} events (window {window})");
    let ident = env.namespace("ident").await?;
    let t0 = Instant::now();
    let mut identical = Vec::with_capacity(cap);
    let mut after = 0;
    let mut sequence = 0_u64;
    loop {
        let events = log.read_all_raw(after, read_batch).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        for e in &events {
            identical.push((
                envelope::subject(&ident.subject_prefix, e),
                Relay::message(e).expected_last_sequence(sequence),
            ));
            sequence += 1;
        }
    }
    let t_read = t0.elapsed();
    let c0 = CpuSplit::now();
    let t_ident = publish_all(&env.js, identical, window).await?;
    let cpu_ident = (c0, CpuSplit::now());
    let ident_count = env.stream_messages(&ident.stream).await?;
    if ident_count != n {
        bail!("B3 identical: stream holds {ident_count} messages, expected {n}");
    }

    // Header-less: the same envelope bytes on the same subjects, nothing else.
    eprintln!("B3: header-less raw publish of {n} envelopes (window {window})");
    let raw = env.namespace("raw").await?;
    let mut plain = Vec::with_capacity(cap);
    let mut bytes_total = 0_usize;
    let mut after = 0;
    loop {
        let events = log.read_all(after, read_batch).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        plain.extend(events.iter().map(|e| {
            let body = serde_json::to_vec(&Envelope::from(e)).unwrap_or_default();
            bytes_total += body.len();
            (
                envelope::subject(&raw.subject_prefix, e),
                PublishMessage::build().payload(Bytes::from(body)),
            )
        }));
    }
    let c0 = CpuSplit::now();
    let t_raw = publish_all(&env.js, plain, window).await?;
    let cpu_raw = (c0, CpuSplit::now());
    let raw_count = env.stream_messages(&raw.stream).await?;
    if raw_count != n {
        bail!("B3 raw: stream holds {raw_count} messages, expected {n}");
    }

    eprintln!("B3: relay publishing the {} log", log.backend_name());
    let bus = env.namespace("relay").await?;
    let mut relay = Relay::new(bus.clone());
    relay.window = window;
    let relay_window = relay.window;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (c0, split0, t0) = (cpu_seconds(), CpuSplit::now(), Instant::now());
    let task = tokio::spawn(relay.run(log.clone(), env.js.clone(), async move {
        let _ = stopped.await;
    }));
    let deadline = t0 + Duration::from_secs(3600);
    loop {
        let count = env.stream_messages(&bus.stream).await?;
        if count >= n {
            break;
        }
        if Instant::now() > deadline || task.is_finished() {
            bail!("B3 relay: only {count} of {n} messages published");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t_relay = t0.elapsed();
    let cpu_relay = cpu_seconds() - c0;
    let split_relay = CpuSplit::now();
    let _ = stop.send(());
    task.await.context("relay task")??;
    let count = env.stream_messages(&bus.stream).await?;
    if count != n {
        bail!("B3 relay: stream holds {count} messages, expected exactly {n}");
    }

    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let nf = n as f64;
    let rate = nf / t_relay.as_secs_f64();
    let ident_rate = nf / t_ident.as_secs_f64().max(1e-9);
    let raw_rate = nf / t_raw.as_secs_f64().max(1e-9);
    let mut row = Row::new(
        "B3",
        format!(
            "relay {n} events from the {} log to JetStream (file storage, Nats-Msg-Id, expected-sequence chaining, acks awaited, window {relay_window}, avg envelope {:.0} B)",
            log.backend_name(),
            bytes_total as f64 / nf
        ),
        rate,
        "events/s",
    )
    .against(
        "identical-message raw publish msgs/s",
        Some(ident_rate),
        0.8,
        ">= 0.8x identical raw",
    );
    row.notes.push(format!(
        "header-less raw publish (same envelope bytes and subjects, no headers, no Nats-Msg-Id): {raw_rate:.0} msgs/s, relay {:.2}x of it",
        rate / raw_rate
    ));
    row.notes.push(format!(
        "relay {:.1} s wall, bench-process CPU {:.1} µs/event (log read, envelope JSON, headers); identical raw {:.1} s; header-less raw {:.1} s",
        t_relay.as_secs_f64(),
        cpu_relay / nf * 1e6,
        t_ident.as_secs_f64(),
        t_raw.as_secs_f64()
    ));
    row.notes.push(format!(
        "CPU, relay: {}; identical raw: {}; header-less raw: {}",
        split_relay.per_item_since(&split0, n),
        cpu_ident.1.per_item_since(&cpu_ident.0, n),
        cpu_raw.1.per_item_since(&cpu_raw.0, n)
    ));
    row.notes.push(format!(
        "the relay's read + encode half alone: {:.0} events/s",
        nf / t_read.as_secs_f64()
    ));
    Ok(row)
}
