//! B3: the outbox relay publishing the whole log to JetStream (file storage, `Nats-Msg-Id`
//! dedupe, acks awaited) vs raw async publishes of the same envelopes with async-nats into a
//! stream of the same configuration, with the same in-flight window, continuously.
//!
//! The relay's figure includes what it does for real: reading the log, building envelopes and
//! headers, and saving its checkpoint. The baseline reads and encodes outside the clock.

use crate::infra::{CpuSplit, Env, cpu_seconds};
use crate::report::Row;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use mahnwerk_bus::{Envelope, Relay, envelope};
use mahnwerk_eventlog::EventLog;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub async fn run(env: &Env, log: EventLog, n: u64, window: usize) -> Result<Row> {
    eprintln!("B3: raw async publish of {n} envelopes (window {window})");
    let raw = env.namespace("raw").await?;
    let relay_defaults = Relay::new(raw.clone());
    let read_batch = relay_defaults.batch;
    // Everything is read and encoded before the clock starts; then one continuous windowed
    // publish of all N, like the relay (no pause between read batches).
    let mut msgs: Vec<(String, Bytes)> = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut after = 0;
    loop {
        let events = log.read_all(after, read_batch).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        msgs.extend(events.iter().map(|e| {
            let body = serde_json::to_vec(&Envelope::from(e)).unwrap_or_default();
            (envelope::subject(&raw.subject_prefix, e), Bytes::from(body))
        }));
    }
    let bytes_total: usize = msgs.iter().map(|(_, b)| b.len()).sum();
    let (t0, c0) = (Instant::now(), CpuSplit::now());
    let mut in_flight = VecDeque::with_capacity(window);
    for (subject, body) in msgs {
        in_flight.push_back(env.js.publish(subject, body).await?);
        if in_flight.len() >= window
            && let Some(ack) = in_flight.pop_front()
        {
            ack.await?;
        }
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
    }
    let t_raw = t0.elapsed();
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

    // Where the relay's time goes: the log read + encoding alone, and the publishing of the
    // relay's own messages (headers, Nats-Msg-Id) alone, each with the other outside the clock.
    let t0 = Instant::now();
    let mut prepared = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut after = 0;
    loop {
        let events = log.read_all_raw(after, read_batch).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        for e in &events {
            prepared.push((envelope::subject(&bus.subject_prefix, e), Relay::message(e)));
        }
    }
    let t_read = t0.elapsed();
    let hdr = env.namespace("hdr").await?;
    let t0 = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    for (subject, msg) in prepared {
        let subject = subject.replacen(&bus.subject_prefix, &hdr.subject_prefix, 1);
        in_flight.push_back(env.js.send_publish(subject, msg).await?);
        if in_flight.len() >= window
            && let Some(ack) = in_flight.pop_front()
        {
            ack.await?;
        }
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
    }
    let t_hdr = t0.elapsed();

    #[allow(clippy::cast_precision_loss, clippy::as_conversions)]
    let nf = n as f64;
    let rate = nf / t_relay.as_secs_f64();
    let raw_rate = nf / t_raw.as_secs_f64().max(1e-9);
    let mut row = Row::new(
        "B3",
        format!(
            "relay {n} events from the {} log to JetStream (file storage, Nats-Msg-Id, acks awaited, window {relay_window}, avg envelope {:.0} B)",
            log.backend_name(),
            bytes_total as f64 / nf
        ),
        rate,
        "events/s",
    )
    .against("raw async publish msgs/s", Some(raw_rate), 0.7, ">= 0.7x raw");
    row.notes.push(format!(
        "relay {:.1} s wall, bench-process CPU {:.1} µs/event (log read, envelope JSON, headers); raw {:.1} s (publish only, window {window}, no headers/msg-id)",
        t_relay.as_secs_f64(),
        cpu_relay / nf * 1e6,
        t_raw.as_secs_f64()
    ));
    row.notes.push(format!(
        "CPU, relay: {}; raw: {}",
        split_relay.per_item_since(&split0, n),
        cpu_raw.1.per_item_since(&cpu_raw.0, n)
    ));
    row.notes.push(format!(
        "relay parts, each alone: log read + envelope/headers {:.0} events/s; publishing the relay's messages (headers, Nats-Msg-Id) {:.0} msgs/s",
        nf / t_read.as_secs_f64(),
        nf / t_hdr.as_secs_f64()
    ));
    Ok(row)
}
