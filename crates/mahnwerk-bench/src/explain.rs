//! D1: `ExplainCase` and `PreviewPolicy` over gRPC against the running dunning service with
//! 10,000 open cases of one tenant (issue 12, Must show 4). Latencies are reported, never
//! asserted; the aim is under a second each.
//!
//! Setup outside the clock: the cases of [`crate::b6::open_cases`] (30 % due for a step), the
//! scheduler's pass for that day (so explained cases have steps behind them), then the service
//! on 127.0.0.1:0 with an API key of the tenant. Measured: `ExplainCase` of 200 cases one after
//! the other (median, 99th percentile, max) against reading the same case streams from the log
//! (the floor of any explanation); `PreviewPolicy` of both default policies over every open case
//! until 120 days after the step day (3 calls each, the slowest reported) against one SQL read
//! of the same open cases' rows.

use crate::b6::open_cases;
use crate::infra::Env;
use crate::report::Row;
use anyhow::{Context, Result, bail};
use chrono::Duration;
use mahnwerk_auth::KeyStore;
use mahnwerk_clock::Clock as _;
use mahnwerk_dunning_service::grpc::DunningApi;
use mahnwerk_dunning_service::policies::{DEFAULT_BUSINESS, DEFAULT_CONSUMER};
use mahnwerk_proto::v1 as pb;
use pb::dunning_service_client::DunningServiceClient;
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// The `q`-quantile of sorted `xs` (nearest rank).
fn quantile(xs: &[f64], q: f64) -> f64 {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        clippy::as_conversions
    )]
    let i = ((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len().max(1)) - 1;
    xs.get(i).copied().unwrap_or(0.0)
}

/// `body` with the API key.
fn authed<T>(
    bearer: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    body: T,
) -> tonic::Request<T> {
    let mut req = tonic::Request::new(body);
    req.metadata_mut().insert("authorization", bearer.clone());
    req
}

pub async fn run(env: &Env, backend: &'static str, n: u64) -> Result<Vec<Row>> {
    let url = env.log_url(backend, "d1").await?;
    eprintln!("D1 {backend}: opening {n} cases");
    let tenant = "bench";
    let cases = open_cases(env, &url, tenant, n).await?;
    let days = (cases.step_day - cases.clock.today()).num_days();
    cases.clock.advance(Duration::days(days));
    let acted = cases.dunning.run_due(cases.step_day).await?;
    let pool = mahnwerk_auth::connect_any(&url).await?;
    let keys = KeyStore::open(pool.clone()).await?;
    keys.create_tenant(&cases.tenant, "Bench GmbH").await?;
    let token = keys
        .create_key(std::slice::from_ref(&cases.tenant), "bench")
        .await?
        .token;
    let api = DunningApi {
        dunning: cases.dunning.clone(),
        keys,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(mahnwerk_dunning_service::service(api))
            .serve_with_incoming(mahnwerk_auth::listen::incoming(listener))
            .await;
    });
    let mut client = DunningServiceClient::connect(format!("http://{addr}"))
        .await
        .context("connecting to the dunning service")?
        .max_decoding_message_size(256 << 20);
    let bearer: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {token}").parse().context("token")?;

    // ExplainCase: 200 cases spread over the tenant's, due group and others alike.
    let step = (cases.ids.len() / 200).max(1);
    let sample: Vec<_> = cases.ids.iter().step_by(step).take(200).copied().collect();
    let mut explain = Vec::with_capacity(sample.len());
    let mut with_steps = 0;
    for id in &sample {
        let t = Instant::now();
        let r = client
            .explain_case(authed(
                &bearer,
                pb::ExplainCaseRequest {
                    tenant: tenant.into(),
                    case_id: id.to_string(),
                },
            ))
            .await?
            .into_inner();
        explain.push(ms(t));
        if !r.steps.is_empty() {
            with_steps += 1;
        }
    }
    let mut raw = Vec::with_capacity(sample.len());
    for id in &sample {
        let t = Instant::now();
        let events = cases
            .dunning
            .log()
            .read_stream(&id.stream(&cases.tenant), 1, 1000)
            .await?;
        raw.push(ms(t));
        if events.is_empty() {
            bail!("D1: case {id} has no events");
        }
    }
    explain.sort_by(f64::total_cmp);
    raw.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        quantile(&explain, 0.5),
        quantile(&explain, 0.99),
        quantile(&explain, 1.0),
    );
    let mut explain_row = Row::new(
        &format!("D1/{backend}/explain"),
        format!(
            "ExplainCase over gRPC, {} calls one after the other, {n} open cases in the store ({backend})",
            sample.len()
        ),
        p99,
        "ms (p99)",
    )
    .against("reading the case stream, ms (p99)", Some(quantile(&raw, 0.99)), 0.0, "aim < 1000 ms");
    explain_row.target_met = Some(max < 1000.0);
    explain_row.notes.push(format!(
        "ExplainCase median {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms ({with_steps} of {} with steps); the stream read alone: median {:.2} ms",
        sample.len(),
        quantile(&raw, 0.5)
    ));

    // PreviewPolicy of each default policy over every open case.
    let until = (cases.step_day + Duration::days(120)).to_string();
    let mut slowest = 0.0_f64;
    let mut notes = Vec::new();
    for policy in [DEFAULT_CONSUMER, DEFAULT_BUSINESS] {
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let t = Instant::now();
            let r = client
                .preview_policy(authed(
                    &bearer,
                    pb::PreviewPolicyRequest {
                        tenant: tenant.into(),
                        policy_json: String::new(),
                        policy_id: policy.into(),
                        until: until.clone(),
                    },
                ))
                .await?
                .into_inner();
            times.push(ms(t));
            last = Some(r);
        }
        let r = last.context("no preview")?;
        let worst = times.iter().copied().fold(0.0, f64::max);
        slowest = slowest.max(worst);
        notes.push(format!(
            "PreviewPolicy {policy} until {until}: {} cases, {} steps, {} hand-overs, report {} kB; {:.0} / {:.0} / {:.0} ms",
            r.cases,
            r.steps,
            r.escalations,
            r.report_json.len() / 1024,
            times.first().copied().unwrap_or(0.0),
            times.get(1).copied().unwrap_or(0.0),
            times.get(2).copied().unwrap_or(0.0),
        ));
    }
    let t = Instant::now();
    let rows = mahnwerk_dunning_service::projection::open_states(&pool, tenant).await?;
    let raw_states = ms(t);
    server.abort();
    let mut preview_row = Row::new(
        &format!("D1/{backend}/preview"),
        format!(
            "PreviewPolicy over gRPC of a saved policy over every open case ({} of {n}; {acted} had a step on {}) until +120 days ({backend})",
            rows.len(),
            cases.step_day
        ),
        slowest,
        "ms (slowest of 6)",
    )
    .against(
        "one SQL read of the open cases' states, ms",
        Some(raw_states),
        0.0,
        "aim < 1000 ms",
    );
    preview_row.target_met = Some(slowest < 1000.0);
    preview_row.notes = notes;
    Ok(vec![explain_row, preview_row])
}
